//! What a directory holds, for checking that a call changed nothing on
//! disk. Shared by the tests that write files.
#![allow(dead_code)]

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

/// The names of the entries of `d`, sorted.
pub fn names(d: &Path) -> Vec<String> {
    let mut n: Vec<String> = std::fs::read_dir(d)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    n.sort();
    n
}
