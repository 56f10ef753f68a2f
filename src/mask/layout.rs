//! Memory layout, normalised at the door: every array the crate keeps (a
//! parameter, a buffer, a mask, what a user's method returns) is in
//! standard (row-major, contiguous) layout from the moment it comes in, so
//! the kernels may walk its data as one slice.

use ndarray::ArrayD;

/// `a` in standard layout: itself when it is, else a row-major copy (a
/// transposed, Fortran-order, sliced or negatively strided array holds the
/// same values at the same indices).
pub(crate) fn standard<T: Clone>(a: ArrayD<T>) -> ArrayD<T> {
    if a.is_standard_layout() {
        a
    } else {
        a.as_standard_layout().into_owned()
    }
}

/// The flat row-major data of an array the crate keeps.
pub(crate) fn flat<T>(a: &ArrayD<T>) -> &[T] {
    a.as_slice()
        .expect("arrays are made standard-layout where they enter the crate")
}

/// The flat row-major data of an array the crate keeps, mutable.
pub(crate) fn flat_mut<T>(a: &mut ArrayD<T>) -> &mut [T] {
    a.as_slice_mut()
        .expect("arrays are made standard-layout where they enter the crate")
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{ArrayD, Axis, IxDyn, ShapeBuilder};

    #[test]
    fn every_layout_becomes_row_major_with_the_same_values() {
        let a = ArrayD::from_shape_vec(vec![3, 4], (0..12).collect::<Vec<i32>>()).unwrap();
        let fortran = ArrayD::from_shape_vec(IxDyn(&[3, 4]).f(), (0..12).collect()).unwrap();
        let mut flipped = a.clone();
        flipped.invert_axis(Axis(1));
        for x in [
            a.clone(),
            a.t().to_owned(),
            a.clone().reversed_axes(),
            fortran,
            flipped,
        ] {
            let s = standard(x.clone());
            assert!(s.is_standard_layout());
            assert_eq!(s, x);
            assert_eq!(flat(&s).len(), 12);
        }
    }
}
