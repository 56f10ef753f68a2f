//! All or nothing: the stores a multi-tensor change touches, saved before
//! and put back if any part of it fails.

use crate::module::split_path;
use crate::{Module, PruneFloat, TensorStore};

/// Copies of the stores of the modules holding some tensors.
pub(crate) struct Snapshot<T> {
    stores: Vec<(String, TensorStore<T>)>,
}

impl<T: PruneFloat> Snapshot<T> {
    /// Saves the store of every module that holds one of `tensors` (dotted
    /// paths; modules that are not there are skipped: the change will fail
    /// on them before it touches anything).
    pub(crate) fn take<'a, M: Module<T> + ?Sized>(
        model: &M,
        tensors: impl Iterator<Item = &'a str>,
    ) -> Self {
        let mut stores: Vec<(String, TensorStore<T>)> = Vec::new();
        for path in tensors {
            let (module, _) = split_path(path);
            if stores.iter().any(|(m, _)| m == module) {
                continue;
            }
            if let Some(store) = model.store_at(module) {
                stores.push((module.to_string(), store.clone()));
            }
        }
        Snapshot { stores }
    }

    /// Puts every saved store back.
    pub(crate) fn restore<M: Module<T> + ?Sized>(self, model: &mut M) {
        for (module, store) in self.stores {
            let slot = model
                .store_at_mut(&module)
                .expect("a saved module is still there: changes never remove modules");
            *slot = store;
        }
    }
}
