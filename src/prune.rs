//! The functions of `torch.nn.utils.prune`, one for one.
//!
//! Each takes a module (any [`Module`]: a layer, or the root of a tree) and
//! the dotted path of the tensor to prune, changes the module in place, and
//! returns `Ok(())`, or an error and no change at all.
//!
//! | PyTorch | ndprune |
//! |---|---|
//! | `prune.identity(m, "weight")` | `prune::identity(&mut m, "weight")` |
//! | `prune.l1_unstructured(m, "weight", amount=0.3)` | `prune::l1_unstructured(&mut m, "weight", Amount::Fraction(0.3), None)` |
//! | `prune.random_unstructured(m, "weight", amount=3)` | `prune::random_unstructured(&mut m, "weight", Amount::Count(3), &mut rng)` |
//! | `prune.ln_structured(m, "weight", 0.5, n=2, dim=0)` | `prune::ln_structured(&mut m, "weight", Amount::Fraction(0.5), Norm::L(2.0), Dim(0), None)` |
//! | `prune.random_structured(m, "weight", 0.5, dim=-1)` | `prune::random_structured(&mut m, "weight", Amount::Fraction(0.5), Dim(-1), &mut rng)` |
//! | `prune.custom_from_mask(m, "weight", mask)` | `prune::custom_from_mask(&mut m, "weight", mask.view())` |
//! | `prune.global_unstructured(params, prune.L1Unstructured, amount=0.2)` | `prune::global_unstructured(&mut root, &paths, &L1Unstructured::new(Amount::Fraction(0.2))?, None)` |
//! | `prune.remove(m, "weight")` | `prune::remove(&mut m, "weight")` |
//! | `prune.is_pruned(m)` | `prune::is_pruned(&m)` |
//! | `MyMethod.apply(m, "weight", ...)` | `prune::apply(&mut m, "weight", &my_method, None)` |
//!
//! Beyond `torch.nn.utils.prune`, with `torch.ao.pruning`'s semantics:
//!
//! | PyTorch | ndprune |
//! |---|---|
//! | `WeightNormSparsifier(sparsity_level=1.0, sparse_block_shape=(1, 4), zeros_per_block=2)` | `prune::nm_structured(&mut m, "weight", 2, 4, Dim(1), None)` |
//! | `WeightNormSparsifier(sparsity_level=0.5, sparse_block_shape=(4, 4))` | `prune::block_sparsity(&mut m, "weight", &BlockSparsity::new(0.5, (4, 4))?, None)` |

use std::collections::HashMap;

use ndarray::{ArrayD, ArrayViewD};
use rand::Rng;

use crate::reparam;
use crate::{
    Amount, BlockSparsity, CustomFromMask, Dim, Identity, L1Unstructured, LnStructured, Module,
    NmStructured, Norm, PruneError, PruneFloat, PruningMethod, RandomStructured,
    RandomUnstructured,
};

/// Applies any pruning method, built-in or your own, to the tensor at
/// `name`, with optional importance scores (default: the tensor as it is
/// now, pruned entries included as zeros).
///
/// ```
/// use ndprune::prelude::*;
/// use ndarray::ArrayD;
///
/// # fn main() -> Result<(), PruneError> {
/// let mut layer = Layer::<f64>::new().with_parameter("weight", ArrayD::from_elem(vec![6], 1.0))?;
/// let method = L1Unstructured::new(Amount::Count(2))?;
/// prune::apply(&mut layer, "weight", &method, None)?;
/// prune::apply(&mut layer, "weight", &method, None)?; // 2 more of the 4 left
/// assert_eq!(layer.buffer("weight_mask").unwrap().sum(), 2.0);
/// assert_eq!(layer.pruning_history("weight").map(|h| h.len()), Some(2));
/// # Ok(()) }
/// ```
pub fn apply<T, M, P>(
    module: &mut M,
    name: &str,
    method: &P,
    importance_scores: Option<ArrayViewD<'_, T>>,
) -> Result<(), PruneError>
where
    T: PruneFloat,
    M: Module<T> + ?Sized,
    P: PruningMethod<T> + ?Sized,
{
    reparam::prune_one(module, name, method, importance_scores)
}

/// Sets up the reparametrization without pruning anything (all-ones mask).
///
/// ```
/// use ndprune::prelude::*;
/// # fn main() -> Result<(), PruneError> {
/// let mut layer = Layer::<f32>::new().with_parameter("bias", ndarray::ArrayD::ones(vec![3]))?;
/// prune::identity(&mut layer, "bias")?;
/// assert!(prune::is_pruned(&layer));
/// # Ok(()) }
/// ```
pub fn identity<T: PruneFloat, M: Module<T> + ?Sized>(
    module: &mut M,
    name: &str,
) -> Result<(), PruneError> {
    apply(module, name, &Identity, None)
}

/// Prunes the `amount` entries of smallest magnitude (of `importance_scores`
/// if given, else of the tensor).
///
/// ```
/// use ndprune::prelude::*;
/// use ndarray::array;
/// # fn main() -> Result<(), PruneError> {
/// let mut layer = Layer::new().with_parameter("weight", array![[0.5f32, -0.1], [2.0, 0.05]].into_dyn())?;
/// prune::l1_unstructured(&mut layer, "weight", Amount::Fraction(0.5), None)?;
/// assert_eq!(layer.tensor("weight").unwrap(), &array![[0.5f32, -0.0], [2.0, 0.0]].into_dyn());
/// // Half of the 2 that are left: the smaller of 0.5 and 2.0.
/// prune::l1_unstructured(&mut layer, "weight", Amount::Fraction(0.5), None)?;
/// assert_eq!(layer.buffer("weight_mask").unwrap(), &array![[0.0f32, 0.0], [1.0, 0.0]].into_dyn());
/// # Ok(()) }
/// ```
pub fn l1_unstructured<T: PruneFloat, M: Module<T> + ?Sized>(
    module: &mut M,
    name: &str,
    amount: Amount,
    importance_scores: Option<ArrayViewD<'_, T>>,
) -> Result<(), PruneError> {
    apply(
        module,
        name,
        &L1Unstructured::new(amount)?,
        importance_scores,
    )
}

/// Prunes `amount` of the unpruned entries, chosen uniformly at random with
/// a seed drawn from `rng`.
///
/// ```
/// use ndprune::prelude::*;
/// use rand::SeedableRng;
/// # fn main() -> Result<(), PruneError> {
/// let mut rng = rand::rngs::StdRng::seed_from_u64(3);
/// let mut layer = Layer::<f32>::new().with_parameter("weight", ndarray::ArrayD::ones(vec![4, 5]))?;
/// prune::random_unstructured(&mut layer, "weight", Amount::Fraction(0.25), &mut rng)?;
/// assert_eq!(layer.buffer("weight_mask").unwrap().sum(), 15.0);
/// # Ok(()) }
/// ```
pub fn random_unstructured<T, M, R>(
    module: &mut M,
    name: &str,
    amount: Amount,
    rng: &mut R,
) -> Result<(), PruneError>
where
    T: PruneFloat,
    M: Module<T> + ?Sized,
    R: Rng + ?Sized,
{
    apply(
        module,
        name,
        &RandomUnstructured::from_rng(amount, rng)?,
        None,
    )
}

/// Prunes the `amount` channels along `dim` of smallest norm `n` (of
/// `importance_scores` if given, else of the tensor).
///
/// ```
/// use ndprune::prelude::*;
/// use ndarray::array;
/// # fn main() -> Result<(), PruneError> {
/// let w = array![[1.0f32, 1.0], [3.0, 0.0], [0.1, 0.2]].into_dyn();
/// let mut layer = Layer::new().with_parameter("weight", w)?;
/// prune::ln_structured(&mut layer, "weight", Amount::Count(1), Norm::L(1.0), Dim(0), None)?;
/// assert_eq!(layer.buffer("weight_mask").unwrap(), &array![[1.0f32, 1.0], [1.0, 1.0], [0.0, 0.0]].into_dyn());
/// // A second call ranks only the two rows left.
/// prune::ln_structured(&mut layer, "weight", Amount::Fraction(0.5), Norm::Inf, Dim(0), None)?;
/// assert_eq!(layer.buffer("weight_mask").unwrap(), &array![[0.0f32, 0.0], [1.0, 1.0], [0.0, 0.0]].into_dyn());
/// # Ok(()) }
/// ```
pub fn ln_structured<T: PruneFloat, M: Module<T> + ?Sized>(
    module: &mut M,
    name: &str,
    amount: Amount,
    n: Norm,
    dim: Dim,
    importance_scores: Option<ArrayViewD<'_, T>>,
) -> Result<(), PruneError> {
    apply(
        module,
        name,
        &LnStructured::new(amount, n, dim)?,
        importance_scores,
    )
}

/// Prunes `amount` of the channels along `dim` not yet pruned, chosen
/// uniformly at random with a seed drawn from `rng`.
///
/// ```
/// use ndprune::prelude::*;
/// use rand::SeedableRng;
/// # fn main() -> Result<(), PruneError> {
/// let mut rng = rand::rngs::StdRng::seed_from_u64(3);
/// let mut layer = Layer::<f32>::new().with_parameter("weight", ndarray::ArrayD::ones(vec![4, 5]))?;
/// prune::random_structured(&mut layer, "weight", Amount::Count(2), Dim(1), &mut rng)?;
/// assert_eq!(layer.buffer("weight_mask").unwrap().sum(), 12.0);
/// # Ok(()) }
/// ```
pub fn random_structured<T, M, R>(
    module: &mut M,
    name: &str,
    amount: Amount,
    dim: Dim,
    rng: &mut R,
) -> Result<(), PruneError>
where
    T: PruneFloat,
    M: Module<T> + ?Sized,
    R: Rng + ?Sized,
{
    apply(
        module,
        name,
        &RandomStructured::from_rng(amount, dim, rng)?,
        None,
    )
}

/// Keeps `n` of every `m` consecutive entries along `dim`, those of
/// largest magnitude (of `importance_scores` if given, else of the
/// tensor): N:M sparsity, see [`NmStructured`].
///
/// ```
/// use ndprune::prelude::*;
/// use ndarray::array;
/// # fn main() -> Result<(), PruneError> {
/// let w = array![[0.5f32, -0.1, 2.0, 0.05], [1.0, 2.0, 3.0, 4.0]].into_dyn();
/// let mut layer = Layer::new().with_parameter("weight", w)?;
/// prune::nm_structured(&mut layer, "weight", 2, 4, Dim(1), None)?;
/// assert_eq!(
///     layer.buffer("weight_mask").unwrap(),
///     &array![[1.0f32, 0.0, 1.0, 0.0], [0.0, 0.0, 1.0, 1.0]].into_dyn()
/// );
/// // A row of 6 is not whole groups of 4: refused, nothing changes.
/// let mut odd = Layer::new().with_parameter("weight", ndarray::ArrayD::<f32>::ones(vec![2, 6]))?;
/// assert!(prune::nm_structured(&mut odd, "weight", 2, 4, Dim(1), None).is_err());
/// assert!(!prune::is_pruned(&odd));
/// # Ok(()) }
/// ```
pub fn nm_structured<T: PruneFloat, M: Module<T> + ?Sized>(
    module: &mut M,
    name: &str,
    n: usize,
    m: usize,
    dim: Dim,
    importance_scores: Option<ArrayViewD<'_, T>>,
) -> Result<(), PruneError> {
    apply(
        module,
        name,
        &NmStructured::new(n, m, dim)?,
        importance_scores,
    )
}

/// Block sparsity of a 2-D tensor, as `torch.ao`'s
/// `WeightNormSparsifier` (see [`BlockSparsity`]), scored by
/// `importance_scores` if given, else by the tensor.
///
/// ```
/// use ndprune::prelude::*;
/// use ndarray::array;
/// # fn main() -> Result<(), PruneError> {
/// let w = array![[1.0f32, 0.2, 3.0, 4.0], [0.5, 0.1, 2.0, 1.0]].into_dyn();
/// let mut layer = Layer::new().with_parameter("weight", w)?;
/// // Half of the 1x2 blocks, and in each of those, 1 of its 2 entries.
/// let method = BlockSparsity::new(0.5, (1, 2))?.with_zeros_per_block(1)?;
/// prune::block_sparsity(&mut layer, "weight", &method, None)?;
/// assert_eq!(
///     layer.buffer("weight_mask").unwrap(),
///     &array![[1.0f32, 0.0, 1.0, 1.0], [1.0, 0.0, 1.0, 1.0]].into_dyn()
/// );
/// # Ok(()) }
/// ```
pub fn block_sparsity<T: PruneFloat, M: Module<T> + ?Sized>(
    module: &mut M,
    name: &str,
    method: &BlockSparsity,
    importance_scores: Option<ArrayViewD<'_, T>>,
) -> Result<(), PruneError> {
    apply(module, name, method, importance_scores)
}

/// Prunes where `mask` is 0 (same shape as the tensor, only 0 and 1).
///
/// ```
/// use ndprune::prelude::*;
/// use ndarray::array;
/// # fn main() -> Result<(), PruneError> {
/// let mut layer = Layer::new().with_parameter("weight", array![1.0f64, 2.0, 3.0].into_dyn())?;
/// prune::custom_from_mask(&mut layer, "weight", array![0.0, 1.0, 1.0].into_dyn().view())?;
/// assert_eq!(layer.tensor("weight").unwrap(), &array![0.0, 2.0, 3.0].into_dyn());
/// assert!(prune::custom_from_mask(&mut layer, "weight", array![0.5, 1.0, 1.0].into_dyn().view()).is_err());
/// # Ok(()) }
/// ```
pub fn custom_from_mask<T: PruneFloat, M: Module<T> + ?Sized>(
    module: &mut M,
    name: &str,
    mask: ArrayViewD<'_, T>,
) -> Result<(), PruneError> {
    apply(module, name, &CustomFromMask::new(mask), None)
}

/// Prunes the tensors at `targets` together, as one flat tensor, with an
/// unstructured method ([`L1Unstructured`] or [`RandomUnstructured`], or
/// your own): the amount is measured on all their unpruned entries together.
/// `importance_scores` maps a target's path to its scores (default: the
/// tensor as it is now). `targets` may be `&str`s or `String`s, such as
/// the paths a [`Selector`](crate::Selector) picks.
///
/// ```
/// use ndprune::prelude::*;
/// use ndarray::array;
/// # fn main() -> Result<(), PruneError> {
/// let mut model = Sequential::new()
///     .with_child("a", Layer::new().with_parameter("weight", array![0.1f32, 5.0].into_dyn())?)?
///     .with_child("b", Layer::new().with_parameter("weight", array![0.2f32, 0.3, 4.0].into_dyn())?)?;
/// let method = L1Unstructured::new(Amount::Count(3))?;
/// prune::global_unstructured(&mut model, &["a.weight", "b.weight"], &method, None)?;
/// assert_eq!(model.buffer("a.weight_mask").unwrap(), &array![0.0f32, 1.0].into_dyn());
/// assert_eq!(model.buffer("b.weight_mask").unwrap(), &array![0.0f32, 0.0, 1.0].into_dyn());
/// # Ok(()) }
/// ```
pub fn global_unstructured<T, M, P, S>(
    module: &mut M,
    targets: &[S],
    method: &P,
    importance_scores: Option<&HashMap<String, ArrayD<T>>>,
) -> Result<(), PruneError>
where
    T: PruneFloat,
    M: Module<T> + ?Sized,
    P: PruningMethod<T> + ?Sized,
    S: AsRef<str>,
{
    let targets: Vec<&str> = targets.iter().map(AsRef::as_ref).collect();
    reparam::prune_global(module, &targets, method, importance_scores)
}

/// Makes pruning permanent: `name` becomes a plain parameter holding
/// `orig * mask`, and `name_orig` and `name_mask` go.
///
/// ```
/// use ndprune::prelude::*;
/// use ndarray::array;
/// # fn main() -> Result<(), PruneError> {
/// let mut layer = Layer::new().with_parameter("weight", array![1.0f32, -2.0].into_dyn())?;
/// prune::l1_unstructured(&mut layer, "weight", Amount::Count(1), None)?;
/// prune::remove(&mut layer, "weight")?;
/// assert_eq!(layer.parameter("weight").unwrap(), &array![0.0f32, -2.0].into_dyn());
/// assert!(layer.buffer("weight_mask").is_none() && !prune::is_pruned(&layer));
/// assert!(prune::remove(&mut layer, "weight").is_err());
/// # Ok(()) }
/// ```
pub fn remove<T: PruneFloat, M: Module<T> + ?Sized>(
    module: &mut M,
    name: &str,
) -> Result<(), PruneError> {
    reparam::remove(module, name)
}

/// Whether any tensor anywhere in the module tree is pruned.
///
/// ```
/// use ndprune::prelude::*;
/// assert!(!prune::is_pruned(&Layer::<f32>::new()));
/// ```
pub fn is_pruned<T: PruneFloat, M: Module<T> + ?Sized>(module: &M) -> bool {
    let mut any = false;
    module.visit_stores("", &mut |_, store| any |= store.any_pruned());
    any
}
