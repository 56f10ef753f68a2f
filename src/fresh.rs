//! Fresh full-size outputs: allocated untouched, and on Linux backed by
//! transparent huge pages where the system allows them on request.
//!
//! Writing a freshly allocated tensor costs more in page faults than in
//! stores: one fault per 4 KiB page. With transparent huge pages in their
//! common `madvise` mode, a region advised with `MADV_HUGEPAGE` before its
//! first write faults once per 2 MiB instead. The advice changes no value,
//! only how the kernel backs the pages; where it is refused or unavailable
//! nothing changes.

use ndarray::{ArrayD, IxDyn};
use num_traits::Zero;

/// Below this many bytes a tensor cannot hold a whole huge page.
const HUGE_PAGE: usize = 2 << 20;

/// A zeroed array of `shape` whose memory has not been touched yet (the
/// allocator hands out fresh zero pages for large sizes), advised to use
/// huge pages: for outputs that are written once, in full, right after.
pub(crate) fn zeros<T: Clone + Zero>(shape: IxDyn) -> ArrayD<T> {
    let mut out = ArrayD::zeros(shape);
    if let Some(data) = out.as_slice_mut() {
        advise_huge_pages(data);
    }
    out
}

/// Advises the kernel to back the whole 2 MiB pages inside `data` with
/// huge pages (Linux); elsewhere, or for small buffers, does nothing.
fn advise_huge_pages<T>(data: &mut [T]) {
    let start = data.as_mut_ptr() as usize;
    let end = start + std::mem::size_of_val(data);
    let first = start.next_multiple_of(HUGE_PAGE);
    let last = end / HUGE_PAGE * HUGE_PAGE;
    if last <= first {
        return;
    }
    #[cfg(target_os = "linux")]
    // SAFETY: `[first, last)` lies inside the allocation behind `data`,
    // which we hold mutably, and is aligned to a page; MADV_HUGEPAGE only
    // changes how the kernel backs those pages, never their contents. A
    // failure (THP disabled or unsupported) is harmless and ignored.
    unsafe {
        libc::madvise(
            first as *mut libc::c_void,
            last - first,
            libc::MADV_HUGEPAGE,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_arrays_are_zero_whatever_their_size() {
        for n in [0usize, 1, 1000, 3 << 20] {
            let a: ArrayD<f32> = zeros(IxDyn(&[n]));
            assert_eq!(a.len(), n);
            assert!(a.iter().all(|&x| x == 0.0));
        }
    }
}
