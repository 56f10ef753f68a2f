//! Random sampling: choosing `k` of `n` items uniformly, in order.

use rand::{Rng, RngExt};

/// Chooses `k` of `n` items uniformly at random, in one pass (selection
/// sampling): `pick` is called for each of the `n` items in order and
/// answers whether it is taken. Exactly `k` are taken.
pub(crate) fn sample_in_order<R: Rng + ?Sized>(
    rng: &mut R,
    n: usize,
    k: usize,
) -> impl FnMut() -> bool + '_ {
    let mut left = n;
    let mut wanted = k.min(n);
    move || {
        if left == 0 {
            return false;
        }
        let take = wanted > 0 && rng.random_range(0..left) < wanted;
        left -= 1;
        if take {
            wanted -= 1;
        }
        take
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn sampling_takes_exactly_k() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for (n, k) in [(10, 0), (10, 3), (10, 10), (1, 1)] {
            let mut pick = sample_in_order(&mut rng, n, k);
            let taken = (0..n).filter(|_| pick()).count();
            assert_eq!(taken, k);
        }
    }
}
