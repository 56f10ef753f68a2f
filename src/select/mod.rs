//! Choosing which entries or channels to prune.
//!
//! # Ranking and ties
//!
//! Entries are ranked by the magnitude of their importance score and
//! channels by their norm; the `k` smallest are pruned (for channels: all
//! but the `n − k` largest are). NaN ranks above every number (as in
//! `torch.topk`), infinities rank as numbers, and `-0.0` equals `0.0`.
//!
//! Where equal scores straddle the cut (say 10 zeros and 4 of them to
//! prune), ndprune picks exactly the ones PyTorch picks: its CPU `topk`
//! runs the C++ library's `nth_element` or `partial_sort` on `(value,
//! index)` pairs, and ndprune replays those algorithms step for step.
//! That choice is deterministic (a function of the scores alone), and it is
//! tested against `torch.topk` itself on hundreds of tie-heavy inputs.
//!
//! Unstructured selection first finds the cut in O(n) by a radix select on
//! the magnitude bits (parallel histograms, no sorting, no copy of the
//! scores); only when ties straddle the cut does [`TieBreak::Torch`] replay
//! PyTorch's order over the candidates, which costs O(n) expected time and a
//! temporary of 4 bytes per candidate (`f32`; 8 for `f64`).
//! [`TieBreak::LowestIndex`] skips that replay: among equal scores at the
//! cut, the lower index (the earlier tensor, in global pruning) is pruned
//! first.
//!
//! The parts: `tie` (the [`TieBreak`] rule and which tied candidates each
//! rule prunes), `radix` (finding the cut), `apply` (writing the masks for a
//! cut), `topk` (the replay of PyTorch's `topk`), `channels` (structured
//! selection by norm), `sample` (random sampling) and `stream`
//! ([`StreamingSelect`], the radix select fed one tensor at a time).

mod apply;
mod channels;
mod group;
mod radix;
mod sample;
mod stream;
mod tie;
pub(crate) mod topk;

pub use stream::StreamingSelect;
pub use tie::TieBreak;

pub(crate) use apply::{prune_smallest, MaskSlot};
pub(crate) use channels::channels_to_keep;
pub(crate) use group::{smallest_in_group, smallest_of_many};
pub(crate) use radix::count_candidates;
pub(crate) use sample::sample_in_order;
