//! PyTorch's CPU random generator, so that random pruning can pick exactly
//! the entries and channels PyTorch picks after the same `torch.manual_seed`.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use rand_mt::Mt;

use crate::PruneFloat;

/// The random stream of PyTorch's default CPU generator.
///
/// `TorchGenerator::manual_seed(s)` starts where `torch.manual_seed(s)`
/// leaves PyTorch's CPU generator: a 32-bit Mersenne Twister (MT19937)
/// seeded with the low 32 bits of `s`. [`TorchGenerator::rand`] draws as
/// `torch.rand` does on the CPU: one 32-bit output per value for `f32`,
/// `f16` and `bf16` (its low 24, 11 or 8 bits, scaled into `[0, 1)`), two
/// for `f64` (53 bits of the 64 they make, the first output high).
///
/// Random methods made with [`crate::RandomUnstructured::with_torch_generator`]
/// and [`crate::RandomStructured::with_torch_generator`] draw from it as
/// PyTorch's `RandomUnstructured` and `RandomStructured` draw from theirs, so
/// a sequence of random pruning calls after `TorchGenerator::manual_seed(s)`
/// gives PyTorch's masks after `torch.manual_seed(s)`, bit for bit, as long as
/// nothing else draws in between. Clones share one stream, as every PyTorch
/// call shares the default generator.
///
/// ```
/// use ndprune::TorchGenerator;
///
/// // torch.manual_seed(0); torch.rand(3)
/// let gen = TorchGenerator::manual_seed(0);
/// let x: Vec<f32> = gen.rand(3);
/// assert_eq!(x, [0.496_256_59, 0.768_221_8, 0.088_477_43]);
/// // The stream goes on: torch.rand(1) after those three.
/// assert_eq!(gen.rand::<f32>(1), [0.132_030_49]);
/// // torch.manual_seed(0); torch.rand(3, dtype=torch.float64)
/// let gen = TorchGenerator::manual_seed(0);
/// assert_eq!(gen.rand::<f64>(3), [0.970_053_001_806_553_1, 0.707_819_864_399_788, 0.459_382_943_127_450_87]);
/// ```
#[derive(Clone)]
pub struct TorchGenerator {
    engine: Arc<Mutex<Mt>>,
}

impl TorchGenerator {
    /// The generator as `torch.manual_seed(seed)` leaves PyTorch's.
    ///
    /// ```
    /// use ndprune::TorchGenerator;
    /// let a = TorchGenerator::manual_seed(42);
    /// let b = TorchGenerator::manual_seed(42);
    /// assert_eq!(a.rand::<f64>(4), b.rand::<f64>(4));
    /// ```
    pub fn manual_seed(seed: u64) -> Self {
        // PyTorch's mt19937 keeps the low 32 bits of the seed.
        let engine = Mt::new(seed as u32);
        TorchGenerator {
            engine: Arc::new(Mutex::new(engine)),
        }
    }

    /// A new generator at this one's state, going on independently (a
    /// clone shares the stream; this copies it, as
    /// `g2 = torch.Generator(); g2.set_state(g.get_state())` does).
    ///
    /// ```
    /// use ndprune::TorchGenerator;
    /// let gen = TorchGenerator::manual_seed(5);
    /// let copy = gen.snapshot();
    /// assert_eq!(gen.rand::<f32>(3), copy.rand::<f32>(3));
    /// assert!(!gen.same_stream(&copy));
    /// ```
    pub fn snapshot(&self) -> TorchGenerator {
        let engine = self
            .engine
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        TorchGenerator {
            engine: Arc::new(Mutex::new(engine)),
        }
    }

    /// `n` values uniform in `[0, 1)`, as `torch.rand(n, dtype=T)` on the
    /// CPU draws them.
    ///
    /// ```
    /// use ndprune::TorchGenerator;
    /// let gen = TorchGenerator::manual_seed(7);
    /// let x: Vec<f64> = gen.rand(1000);
    /// assert!(x.iter().all(|v| (0.0..1.0).contains(v)));
    /// # #[cfg(feature = "half")] {
    /// // torch.manual_seed(61025); torch.rand(8, dtype=torch.bfloat16)[3]:
    /// // the f32 draw 0.99949 rounds to 1.0 in bf16, and PyTorch gives 0.0.
    /// let gen = TorchGenerator::manual_seed(61025);
    /// assert_eq!(gen.rand::<half::bf16>(8)[3], half::bf16::ZERO);
    /// # }
    /// ```
    pub fn rand<T: PruneFloat>(&self, n: usize) -> Vec<T> {
        if T::KEY_BITS == 16 {
            // PyTorch 2.15 draws a half-precision `rand` as its `f32` draw
            // rounded to the dtype (to nearest, ties to even), so equal
            // draws are frequent; a draw that rounds up to 1.0 becomes 0.0,
            // keeping the values in [0, 1) (checked against PyTorch on a
            // million draws in each dtype).
            return self
                .rand::<f32>(n)
                .into_iter()
                .map(|x| {
                    let v = T::from_f64(f64::from(x));
                    if v == T::one() {
                        T::zero()
                    } else {
                        v
                    }
                })
                .collect();
        }
        let digits = T::MANTISSA_DIGITS;
        let scale = 0.5f64.powi(digits as i32);
        let mask = (1u64 << digits) - 1;
        let mut engine = self.engine.lock().unwrap_or_else(PoisonError::into_inner);
        (0..n)
            .map(|_| {
                let bits = if digits > 32 {
                    let hi = u64::from(engine.next_u32());
                    let lo = u64::from(engine.next_u32());
                    (hi << 32) | lo
                } else {
                    u64::from(engine.next_u32())
                };
                // At most 53 significant bits: exact in f64 and in T.
                T::from_f64((bits & mask) as f64 * scale)
            })
            .collect()
    }

    /// Advances the stream past `n` `f32` draws (`torch.rand(n)`), without
    /// holding them.
    pub(crate) fn skip_f32(&self, n: usize) {
        let mut engine = self.engine.lock().unwrap_or_else(PoisonError::into_inner);
        for _ in 0..n {
            engine.next_u32();
        }
    }

    /// Whether `self` and `other` share one stream (one is a clone of the
    /// other).
    ///
    /// ```
    /// use ndprune::TorchGenerator;
    /// let a = TorchGenerator::manual_seed(1);
    /// assert!(a.same_stream(&a.clone()));
    /// assert!(!a.same_stream(&TorchGenerator::manual_seed(1)));
    /// ```
    pub fn same_stream(&self, other: &TorchGenerator) -> bool {
        Arc::ptr_eq(&self.engine, &other.engine)
    }
}

impl fmt::Debug for TorchGenerator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TorchGenerator")
    }
}
