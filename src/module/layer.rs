//! Ready-made modules: a leaf of named tensors, and a container of modules.

use ndarray::ArrayD;
use rand::{Rng, RngExt};

use crate::{Module, PruneError, PruneErrorKind, PruneFloat, TensorStore};

/// A leaf module holding any named tensors: a linear or conv layer, a norm
/// layer, or anything else that is a bag of tensors.
///
/// ```
/// use ndprune::prelude::*;
/// use ndarray::ArrayD;
/// use rand::SeedableRng;
///
/// let mut rng = rand::rngs::StdRng::seed_from_u64(0);
/// let fc = Layer::<f32>::linear(64, 10, &mut rng);
/// assert_eq!(fc.parameter("weight").unwrap().shape(), &[10, 64]);
/// assert_eq!(fc.parameter("bias").unwrap().shape(), &[10]);
///
/// let bn = Layer::<f32>::new()
///     .with_parameter("weight", ArrayD::ones(vec![8])).unwrap()
///     .with_buffer("running_mean", ArrayD::zeros(vec![8])).unwrap();
/// assert!(bn.buffer("running_mean").is_some());
/// ```
#[derive(Debug, Clone)]
pub struct Layer<T> {
    store: TensorStore<T>,
}

impl<T: PruneFloat> PartialEq for Layer<T> {
    fn eq(&self, other: &Self) -> bool {
        self.store == other.store
    }
}

impl<T> Default for Layer<T> {
    fn default() -> Self {
        Layer {
            store: TensorStore::default(),
        }
    }
}

impl<T: PruneFloat> Layer<T> {
    /// An empty layer.
    ///
    /// ```
    /// let layer = ndprune::Layer::<f64>::new();
    /// assert_eq!(layer.store().parameters().count(), 0);
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// The layer's tensors.
    ///
    /// ```
    /// let layer = ndprune::Layer::<f64>::new();
    /// assert!(!layer.store().any_pruned());
    /// ```
    pub fn store(&self) -> &TensorStore<T> {
        &self.store
    }

    /// Adds a parameter (builder style); fails, as
    /// [`TensorStore::add_parameter`], if the name is taken or holds a dot.
    /// Any memory layout is accepted (the tensor is kept row-major).
    ///
    /// ```
    /// use ndprune::{Layer, Module};
    /// # fn main() -> Result<(), ndprune::PruneError> {
    /// let layer = Layer::<f32>::new().with_parameter("weight", ndarray::ArrayD::zeros(vec![2, 2]))?;
    /// assert!(layer.parameter("weight").is_some());
    /// assert!(layer.with_parameter("weight", ndarray::ArrayD::zeros(vec![1])).is_err());
    /// # Ok(()) }
    /// ```
    pub fn with_parameter(mut self, name: &str, tensor: ArrayD<T>) -> Result<Self, PruneError> {
        self.store.add_parameter(name, tensor)?;
        Ok(self)
    }

    /// Adds a buffer (builder style); fails, as
    /// [`TensorStore::add_buffer`], if the name is taken or holds a dot.
    ///
    /// ```
    /// use ndprune::{Layer, Module};
    /// # fn main() -> Result<(), ndprune::PruneError> {
    /// let layer = Layer::<f32>::new().with_buffer("running_var", ndarray::ArrayD::ones(vec![4]))?;
    /// assert!(layer.buffer("running_var").is_some());
    /// # Ok(()) }
    /// ```
    pub fn with_buffer(mut self, name: &str, tensor: ArrayD<T>) -> Result<Self, PruneError> {
        self.store.add_buffer(name, tensor)?;
        Ok(self)
    }

    /// A linear layer (`weight` `[out, in]`, `bias` `[out]`) with PyTorch's
    /// default initialisation range: uniform in `±1/√in`.
    ///
    /// ```
    /// use ndprune::{Layer, Module};
    /// use rand::SeedableRng;
    /// let fc = Layer::<f32>::linear(3, 2, &mut rand::rngs::StdRng::seed_from_u64(1));
    /// assert!(fc.parameter("weight").unwrap().iter().all(|w| w.abs() <= 1.0 / 3f32.sqrt()));
    /// ```
    pub fn linear<R: Rng + ?Sized>(in_features: usize, out_features: usize, rng: &mut R) -> Self {
        let bound = 1.0 / (in_features.max(1) as f64).sqrt();
        let weight = uniform(vec![out_features, in_features], bound, rng);
        let bias = uniform(vec![out_features], bound, rng);
        Layer::weight_and_bias(weight, bias)
    }

    /// A 2-D convolution layer (`weight` `[out, in, k, k]`, `bias` `[out]`),
    /// uniform in `±1/√(in·k·k)` as PyTorch initialises it.
    ///
    /// ```
    /// use ndprune::{Layer, Module};
    /// use rand::SeedableRng;
    /// let conv = Layer::<f32>::conv2d(5, 3, 2, &mut rand::rngs::StdRng::seed_from_u64(1));
    /// assert_eq!(conv.parameter("weight").unwrap().shape(), &[3, 5, 2, 2]);
    /// ```
    pub fn conv2d<R: Rng + ?Sized>(
        in_channels: usize,
        out_channels: usize,
        kernel: usize,
        rng: &mut R,
    ) -> Self {
        let fan_in = (in_channels * kernel * kernel).max(1) as f64;
        let bound = 1.0 / fan_in.sqrt();
        let weight = uniform(vec![out_channels, in_channels, kernel, kernel], bound, rng);
        let bias = uniform(vec![out_channels], bound, rng);
        Layer::weight_and_bias(weight, bias)
    }
}

impl<T: PruneFloat> Layer<T> {
    /// A layer of the parameters `weight` and `bias`.
    fn weight_and_bias(weight: ArrayD<T>, bias: ArrayD<T>) -> Self {
        let mut layer = Layer::new();
        for (name, t) in [("weight", weight), ("bias", bias)] {
            layer
                .store
                .add_parameter(name, t)
                .expect("two distinct valid names in an empty store");
        }
        layer
    }
}

fn uniform<T: PruneFloat, R: Rng + ?Sized>(
    shape: Vec<usize>,
    bound: f64,
    rng: &mut R,
) -> ArrayD<T> {
    ArrayD::from_shape_simple_fn(shape, || T::from_f64(rng.random_range(-bound..=bound)))
}

impl<T: PruneFloat> Module<T> for Layer<T> {
    fn store(&self) -> &TensorStore<T> {
        &self.store
    }

    fn store_mut(&mut self) -> &mut TensorStore<T> {
        &mut self.store
    }
}

/// A module of named child modules (and, optionally, tensors of its own):
/// PyTorch's `nn.Sequential` when children are pushed, numbered `0`, `1`,
/// …, and a general tree when they are added by name.
///
/// ```
/// use ndprune::prelude::*;
/// use rand::SeedableRng;
///
/// # fn main() -> Result<(), PruneError> {
/// let mut rng = rand::rngs::StdRng::seed_from_u64(0);
/// let features = Sequential::<f32>::new()
///     .push(Layer::conv2d(1, 4, 3, &mut rng))
///     .push(Layer::conv2d(4, 8, 3, &mut rng));
/// let mut model = Sequential::new()
///     .with_child("features", features)?
///     .with_child("classifier", Layer::linear(32, 10, &mut rng))?;
/// prune::ln_structured(&mut model, "features.1.weight", Amount::Fraction(0.5), Norm::L(2.0), Dim(0), None)?;
/// assert!(model.buffer("features.1.weight_mask").is_some());
/// assert_eq!(model.named_parameters().len(), 6);
/// # Ok(()) }
/// ```
///
/// A `Sequential` is [`Clone`]: a clone is a deep copy, independent of the
/// original (pruning one leaves the other as it was). So every child must
/// be `Clone` too: `#[derive(Clone)]` on your own modules.
///
/// ```
/// use ndprune::prelude::*;
/// use ndarray::array;
///
/// # fn main() -> Result<(), PruneError> {
/// let model = Sequential::new().push(Layer::new().with_parameter("w", array![1.0f32, 2.0].into_dyn())?);
/// let mut copy = model.clone();
/// prune::l1_unstructured(&mut copy, "0.w", Amount::Count(1), None)?;
/// assert!(prune::is_pruned(&copy) && !prune::is_pruned(&model));
/// # Ok(()) }
/// ```
#[derive(Debug, Default)]
pub struct Sequential<T> {
    store: TensorStore<T>,
    children: Vec<(String, Box<dyn CloneModule<T>>)>,
}

/// A module that can be cloned behind a `Box`: what a [`Sequential`] holds
/// its children as, so that it is `Clone` itself. Implemented for every
/// `Module + Clone`; private, so `push` and `add_child` ask for
/// `Module<T> + Clone`.
trait CloneModule<T: PruneFloat>: Module<T> {
    fn clone_box(&self) -> Box<dyn CloneModule<T>>;
    /// `self` as a `dyn Module` (no trait upcasting before Rust 1.86).
    fn as_module(&self) -> &dyn Module<T>;
    fn as_module_mut(&mut self) -> &mut dyn Module<T>;
}

impl<T: PruneFloat, M: Module<T> + Clone + 'static> CloneModule<T> for M {
    fn clone_box(&self) -> Box<dyn CloneModule<T>> {
        Box::new(self.clone())
    }

    fn as_module(&self) -> &dyn Module<T> {
        self
    }

    fn as_module_mut(&mut self) -> &mut dyn Module<T> {
        self
    }
}

impl<T: PruneFloat> Clone for Sequential<T> {
    fn clone(&self) -> Self {
        Sequential {
            store: self.store.clone(),
            children: self
                .children
                .iter()
                .map(|(n, c)| (n.clone(), c.clone_box()))
                .collect(),
        }
    }
}

impl<T: PruneFloat> Sequential<T> {
    /// An empty container.
    ///
    /// ```
    /// use ndprune::{Module, Sequential};
    /// assert!(Sequential::<f32>::new().children().is_empty());
    /// ```
    pub fn new() -> Self {
        Sequential {
            store: TensorStore::default(),
            children: Vec::new(),
        }
    }

    /// A copy of any module tree as a `Sequential`: each module's tensors
    /// (parameters, buffers, pruned tensors with their masks and
    /// histories) and children, under the same names, so the copy has the
    /// same dotted paths, `state_dict` and pruning state. What
    /// [`Checkpoint::from_module`](crate::io::Checkpoint::from_module)
    /// saves a model of your own through.
    ///
    /// ```
    /// use ndprune::prelude::*;
    /// use rand::SeedableRng;
    /// # fn main() -> Result<(), PruneError> {
    /// let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    /// let mut layer = Layer::<f32>::linear(3, 2, &mut rng);
    /// prune::l1_unstructured(&mut layer, "weight", Amount::Count(2), None)?;
    /// let copy = Sequential::from_module(&layer);
    /// assert_eq!(copy.state_dict(), layer.state_dict());
    /// assert!(copy.store().is_pruned("weight"));
    /// # Ok(()) }
    /// ```
    pub fn from_module<M: Module<T> + ?Sized>(module: &M) -> Self {
        Sequential {
            store: module.store().clone(),
            children: module
                .children()
                .into_iter()
                .map(|(name, child)| {
                    let child: Box<dyn CloneModule<T>> = Box::new(Sequential::from_module(child));
                    (name.to_string(), child)
                })
                .collect(),
        }
    }

    /// Appends a child named by its position (`"0"`, `"1"`, …): the
    /// number of children so far, or the next number not taken by a child
    /// added by name.
    ///
    /// ```
    /// use ndprune::{Layer, Module, Sequential};
    /// let s = Sequential::<f32>::new().push(Layer::new()).push(Layer::new());
    /// assert_eq!(s.children().iter().map(|(n, _)| *n).collect::<Vec<_>>(), ["0", "1"]);
    /// ```
    pub fn push(mut self, child: impl Module<T> + Clone + 'static) -> Self {
        let name = (self.children.len()..)
            .map(|i| i.to_string())
            .find(|n| self.children.iter().all(|(c, _)| c != n))
            .expect("fewer children than numbers");
        self.children.push((name, Box::new(child)));
        self
    }

    /// Adds a named child (builder style); fails as
    /// [`Sequential::add_child`] does.
    ///
    /// ```
    /// use ndprune::{Layer, Module, Sequential};
    /// # fn main() -> Result<(), ndprune::PruneError> {
    /// let s = Sequential::<f32>::new().with_child("head", Layer::new())?;
    /// assert!(s.store_at("head").is_some());
    /// assert!(s.with_child("a.b", Layer::new()).is_err());
    /// # Ok(()) }
    /// ```
    pub fn with_child(
        mut self,
        name: &str,
        child: impl Module<T> + Clone + 'static,
    ) -> Result<Self, PruneError> {
        self.add_child(name, child)?;
        Ok(self)
    }

    /// Adds a named child; fails if the name is taken, empty or holds a
    /// dot (a dotted path could not address it).
    ///
    /// ```
    /// use ndprune::{Layer, Sequential};
    /// let mut s = Sequential::<f32>::new();
    /// assert!(s.add_child("a", Layer::new()).is_ok());
    /// assert!(s.add_child("a", Layer::new()).is_err());
    /// assert!(s.add_child("", Layer::new()).is_err());
    /// ```
    pub fn add_child(
        &mut self,
        name: &str,
        child: impl Module<T> + Clone + 'static,
    ) -> Result<(), PruneError> {
        let reason = if name.is_empty() {
            "a child module name must not be empty"
        } else if name.contains('.') {
            "a child module name must hold no dot"
        } else if self.children.iter().any(|(n, _)| n == name) {
            "a child of that name exists"
        } else {
            self.children.push((name.to_string(), Box::new(child)));
            return Ok(());
        };
        Err(PruneErrorKind::InvalidChildName {
            name: name.to_string(),
            reason,
        }
        .into())
    }
}

impl<T: PruneFloat> Module<T> for Sequential<T> {
    fn store(&self) -> &TensorStore<T> {
        &self.store
    }

    fn store_mut(&mut self) -> &mut TensorStore<T> {
        &mut self.store
    }

    fn children(&self) -> Vec<(&str, &dyn Module<T>)> {
        self.children
            .iter()
            .map(|(n, c)| (n.as_str(), c.as_module()))
            .collect()
    }

    fn children_mut(&mut self) -> Vec<(&str, &mut dyn Module<T>)> {
        self.children
            .iter_mut()
            .map(|(n, c)| (n.as_str(), c.as_module_mut()))
            .collect()
    }
}
