//! What a directory holds, for checking that a call changed nothing on
//! disk. Shared by `tests/out_is_in.rs` and `tests/shrink_files.rs`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Every entry of `d` (one level) and its bytes.
pub fn snapshot(d: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    std::fs::read_dir(d)
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            let bytes = std::fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect()
}
