//! Every case PyTorch computed (tests/fixtures/torch-cases.jsonl) must pass.

#[path = "support/conformance.rs"]
mod conformance;

#[test]
fn all_torch_cases_pass() {
    let text = include_str!("fixtures/torch-cases.jsonl");
    let report = conformance::check_file(text);
    for (id, why) in &report.failures {
        eprintln!("FAIL {id}: {why}");
    }
    assert!(report.passed >= 342, "{}", report.summary());
    assert!(report.failures.is_empty(), "{}", report.summary());
}
