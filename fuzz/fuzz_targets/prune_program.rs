//! Random pruning programs through ndprune's public API (see
//! `tests/support/program.rs`): no panic but a user method's own, masks
//! 0/1, `w == w_orig * w_mask` after every call, and a failing call
//! changes nothing.
//!
//! ```text
//! cargo +nightly fuzz run prune_program -- -max_total_time=600
//! ```
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../tests/support/program.rs"]
mod program;

fuzz_target!(|data: &[u8]| {
    static QUIET: std::sync::Once = std::sync::Once::new();
    QUIET.call_once(program::quiet_deliberate_panics);
    if let Err(e) = program::run(data) {
        panic!("{e}");
    }
});
