//! Re-sharding a checkpoint by a maximum shard size: the size syntax
//! ([`parse_shard_size`]), the shards' names and how tensors are laid out
//! into them ([`Output::Shards`](super::Output::Shards)).

use thiserror::Error;

/// Why a maximum shard size was refused ([`parse_shard_size`],
/// [`Output::check`](super::Output::check)).
///
/// ```
/// use ndprune::io::{parse_shard_size, ShardSizeError};
/// assert_eq!(parse_shard_size("0"), Err(ShardSizeError::Zero));
/// assert!(matches!(parse_shard_size("5XB"), Err(ShardSizeError::UnknownUnit { .. })));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ShardSizeError {
    /// The text is no whole number followed by an optional unit.
    #[error("{text:?} is no size: expected a whole number with an optional unit (\"5GB\", \"500MB\", \"2GiB\", \"1000000\")")]
    Malformed {
        /// The text given.
        text: String,
    },
    /// The unit is none of B, KB, MB, GB, TB, KiB, MiB, GiB, TiB.
    #[error("{text:?}: unknown unit {unit:?} (B, KB, MB, GB, TB are powers of 1000; KiB, MiB, GiB, TiB powers of 1024)")]
    UnknownUnit {
        /// The text given.
        text: String,
        /// The unit it names.
        unit: String,
    },
    /// A shard of at most 0 bytes holds nothing.
    #[error("a maximum shard size of 0 bytes holds nothing")]
    Zero,
    /// More bytes than 64 bits count.
    #[error("{text:?} is more bytes than 2^64 - 1")]
    TooLarge {
        /// The text given.
        text: String,
    },
}

/// Reads a maximum shard size as Hugging Face's `max_shard_size` takes it:
/// a whole number of bytes, or one followed by a unit, case aside, with
/// optional blanks between: `KB`, `MB`, `GB`, `TB` are powers of 1000
/// (`5GB` is 5 000 000 000 bytes), `KiB`, `MiB`, `GiB`, `TiB` powers of
/// 1024 (`2GiB` is 2 147 483 648 bytes), `B` is bytes. Zero is refused.
///
/// ```
/// use ndprune::io::parse_shard_size;
/// assert_eq!(parse_shard_size("5GB"), Ok(5_000_000_000));
/// assert_eq!(parse_shard_size("500mb"), Ok(500_000_000));
/// assert_eq!(parse_shard_size("2GiB"), Ok(2 << 30));
/// assert_eq!(parse_shard_size("4096"), Ok(4096));
/// assert!(parse_shard_size("1.5GB").is_err());
/// ```
pub fn parse_shard_size(text: &str) -> Result<u64, ShardSizeError> {
    let trimmed = text.trim();
    let digits = trimmed.bytes().take_while(u8::is_ascii_digit).count();
    let (number, unit) = trimmed.split_at(digits);
    if number.is_empty() {
        return Err(ShardSizeError::Malformed { text: text.into() });
    }
    let unit = unit.trim_start();
    let scale: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        "tib" => 1 << 40,
        _ if unit.bytes().all(|b| b.is_ascii_alphabetic()) => {
            return Err(ShardSizeError::UnknownUnit {
                text: text.into(),
                unit: unit.into(),
            })
        }
        _ => return Err(ShardSizeError::Malformed { text: text.into() }),
    };
    let too_large = || ShardSizeError::TooLarge { text: text.into() };
    // Only digits: the one error left is overflow.
    let n: u64 = number.parse().map_err(|_| too_large())?;
    let bytes = n.checked_mul(scale).ok_or_else(too_large)?;
    if bytes == 0 {
        return Err(ShardSizeError::Zero);
    }
    Ok(bytes)
}

/// The name of shard `i` (from 0) of `n`, as Hugging Face names them:
/// `model-00001-of-00004.safetensors`.
pub(crate) fn shard_name(i: usize, n: usize) -> String {
    format!("model-{:05}-of-{:05}.safetensors", i + 1, n)
}

/// The index file of re-sharded output.
pub(crate) const SHARD_INDEX: &str = "model.safetensors.index.json";

/// The one file of re-sharded output that fits in one shard, written with
/// no index, as Hugging Face's `save_pretrained` writes it (and
/// `from_pretrained` reads it).
pub(crate) const SINGLE_SHARD: &str = "model.safetensors";

/// The shard of each tensor, given their byte sizes in write order and
/// whether each forms a unit with the next (`X_orig` before its `X_mask`),
/// for shards of at most `max` bytes of tensor data: tensors go into the
/// current shard until the next one (the next unit) would take it past
/// `max`, which starts a new shard. A unit that is larger than `max` on
/// its own is laid out tensor by tensor, and a tensor larger than `max`
/// gets a shard of its own. Always at least one shard.
pub(crate) fn layout(sizes: &[u64], with_next: &[bool], max: u64) -> Vec<usize> {
    let mut shard_of = Vec::with_capacity(sizes.len());
    let (mut shard, mut used, mut empty) = (0usize, 0u64, true);
    let mut place = |bytes: u64, count: usize, shard_of: &mut Vec<usize>| {
        if !empty && used.saturating_add(bytes) > max {
            shard += 1;
            used = 0;
        }
        shard_of.extend(std::iter::repeat_n(shard, count));
        used = used.saturating_add(bytes);
        empty = false;
    };
    let mut i = 0;
    while i < sizes.len() {
        let end = if with_next[i] && i + 1 < sizes.len() {
            i + 2
        } else {
            i + 1
        };
        let unit = sizes[i..end].iter().fold(0u64, |a, &b| a.saturating_add(b));
        if unit <= max {
            place(unit, end - i, &mut shard_of);
        } else {
            for &bytes in &sizes[i..end] {
                place(bytes, 1, &mut shard_of);
            }
        }
        i = end;
    }
    shard_of
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_as_hugging_face_reads_them() {
        assert_eq!(parse_shard_size("1KB"), Ok(1000));
        assert_eq!(parse_shard_size(" 3 kib "), Ok(3072));
        assert_eq!(parse_shard_size("7b"), Ok(7));
        assert_eq!(parse_shard_size("1TiB"), Ok(1 << 40));
        assert_eq!(parse_shard_size("0GB"), Err(ShardSizeError::Zero));
        assert!(matches!(
            parse_shard_size(""),
            Err(ShardSizeError::Malformed { .. })
        ));
        assert!(matches!(
            parse_shard_size("-5GB"),
            Err(ShardSizeError::Malformed { .. })
        ));
        assert!(matches!(
            parse_shard_size("GB"),
            Err(ShardSizeError::Malformed { .. })
        ));
        assert!(matches!(
            parse_shard_size("5 G B"),
            Err(ShardSizeError::Malformed { .. })
        ));
        assert!(matches!(
            parse_shard_size("5PB"),
            Err(ShardSizeError::UnknownUnit { .. })
        ));
        assert!(matches!(
            parse_shard_size("99999999999999999999"),
            Err(ShardSizeError::TooLarge { .. })
        ));
        assert!(matches!(
            parse_shard_size("20000000TB"),
            Err(ShardSizeError::TooLarge { .. })
        ));
    }

    #[test]
    fn names_are_hugging_faces() {
        assert_eq!(shard_name(0, 4), "model-00001-of-00004.safetensors");
        assert_eq!(shard_name(3, 4), "model-00004-of-00004.safetensors");
    }

    #[test]
    fn layout_fills_keeps_pairs_and_isolates_large_tensors() {
        // Fill to the limit.
        assert_eq!(layout(&[4, 4, 4], &[false; 3], 8), [0, 0, 1]);
        // A pair moves whole to the next shard rather than split.
        assert_eq!(layout(&[4, 3, 3], &[false, true, false], 8), [0, 1, 1]);
        // A tensor over the limit alone, and nothing after it joins it.
        assert_eq!(layout(&[2, 20, 2], &[false; 3], 8), [0, 1, 2]);
        // A pair over the limit is split, each in the normal way.
        assert_eq!(layout(&[6, 6], &[true, false], 8), [0, 1]);
        // An oversized first tensor starts the first shard.
        assert_eq!(layout(&[20, 1], &[false; 2], 8), [0, 1]);
        assert!(layout(&[], &[], 8).is_empty());
    }
}
