//! A checkpoint's tensors as plain data, to compare outputs byte for byte,
//! and PyTorch's masks for the sharded fixture
//! (`tools/make_sharded_fixture.py`). Shared by `tests/sharded.rs`,
//! `tests/recipe.rs` and `tests/pth.rs`.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::Path;

use ndprune::io::{CheckpointFiles, Dtype, MappedFile, TensorEntry};

/// Tensors by name: dtype, shape, bytes.
pub type Tensors = BTreeMap<String, (Dtype, Vec<usize>, Vec<u8>)>;

fn collect<'e>(entries: impl Iterator<Item = (String, &'e TensorEntry<'e>)>) -> Tensors {
    entries
        .map(|(name, e)| (name, (e.dtype(), e.shape().to_vec(), e.data().to_vec())))
        .collect()
}

/// Every tensor of opened checkpoint files.
pub fn of_files(files: &CheckpointFiles) -> Tensors {
    let view = files.view().unwrap();
    collect(view.entries().iter().map(|e| (e.name().to_string(), e)))
}

/// Every tensor of the checkpoint at `path` (a file, an index or a
/// directory).
pub fn of_checkpoint(path: &Path) -> Tensors {
    of_files(&CheckpointFiles::open(path).unwrap())
}

/// PyTorch's masks for case `case` (`global`, `l1`, `recipe`, …) of the
/// sharded fixture, by tensor name.
pub fn expected(case: &str) -> Tensors {
    let file = MappedFile::open(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sharded_expected.safetensors"),
    )
    .unwrap();
    let view = file.view().unwrap();
    let prefix = format!("{case}/");
    collect(
        view.entries()
            .iter()
            .filter_map(|e| Some((e.name().strip_prefix(&prefix)?.to_string(), e))),
    )
}
