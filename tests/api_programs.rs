//! Random pruning programs through the public API (edge values, zero-size
//! dims, every memory layout, path aliases, user methods that misbehave or
//! panic), decoded from seeded random bytes: no panic, the invariants after
//! every call, and a failing call changes nothing. The same programs run
//! under cargo-fuzz: `fuzz/fuzz_targets/prune_program.rs`.

#[path = "support/program.rs"]
mod program;

use rand::{RngExt, SeedableRng};

#[test]
fn random_programs_keep_every_invariant() {
    program::quiet_deliberate_panics();
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed);
    let mut failures = Vec::new();
    for i in 0..20_000 {
        let len = rng.random_range(0..160);
        let data: Vec<u8> = (0..len).map(|_| rng.random()).collect();
        if let Err(e) = program::run(&data) {
            failures.push(format!("program {i} ({data:?}): {e}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} failed:\n{}",
        failures.len(),
        failures[..failures.len().min(5)].join("\n")
    );
}
