//! A safe front for the `gemm` crate's `f32` matrix product: one of the two `unsafe` blocks in
//! facepipe (the other is `alloc`'s `mallopt`).
//!
//! `gemm::gemm` takes raw pointers and strides. [`matmul`] takes slices with their shapes and
//! strides, checks that every element the product reads or writes lies inside its slice and
//! that the destination's elements are distinct, and only then calls it: the borrow checker
//! already guarantees that the destination does not alias an operand.

/// A read-only strided view: element `(i, j)` is `data[i * rs + j * cs]`.
#[derive(Clone, Copy, Debug)]
pub struct Mat<'a> {
    pub data: &'a [f32],
    pub rows: usize,
    pub cols: usize,
    pub rs: usize,
    pub cs: usize,
}

/// A writable strided view, laid out like [`Mat`].
#[derive(Debug)]
pub struct MatMut<'a> {
    pub data: &'a mut [f32],
    pub rows: usize,
    pub cols: usize,
    pub rs: usize,
    pub cs: usize,
}

impl<'a> Mat<'a> {
    /// A row-major `rows × cols` matrix.
    pub fn rows(data: &'a [f32], rows: usize, cols: usize) -> Self {
        Mat {
            data,
            rows,
            cols,
            rs: cols,
            cs: 1,
        }
    }

    /// The transpose, as a view of the same data.
    pub fn t(self) -> Self {
        Mat {
            data: self.data,
            rows: self.cols,
            cols: self.rows,
            rs: self.cs,
            cs: self.rs,
        }
    }
}

impl<'a> MatMut<'a> {
    /// A row-major `rows × cols` matrix.
    pub fn rows(data: &'a mut [f32], rows: usize, cols: usize) -> Self {
        MatMut {
            data,
            rows,
            cols,
            rs: cols,
            cs: 1,
        }
    }
}

fn fits(len: usize, rows: usize, cols: usize, rs: usize, cs: usize) -> bool {
    rows == 0 || cols == 0 || (rows - 1) * rs + (cols - 1) * cs < len
}

/// `dst = a · b`, or `dst += a · b` when `accumulate`. `parallel` lets gemm split the product
/// over rayon's threads (worth it for one large product, not inside an already parallel loop).
///
/// # Panics
/// When the shapes disagree, a view reaches outside its slice, or two destination elements
/// share a place.
pub fn matmul(dst: MatMut<'_>, a: Mat<'_>, b: Mat<'_>, accumulate: bool, parallel: bool) {
    assert!(
        a.rows == dst.rows && b.cols == dst.cols && a.cols == b.rows,
        "matmul: {}x{} · {}x{} into {}x{}",
        a.rows,
        a.cols,
        b.rows,
        b.cols,
        dst.rows,
        dst.cols
    );
    assert!(
        fits(a.data.len(), a.rows, a.cols, a.rs, a.cs),
        "matmul: lhs view out of bounds"
    );
    assert!(
        fits(b.data.len(), b.rows, b.cols, b.rs, b.cs),
        "matmul: rhs view out of bounds"
    );
    assert!(
        fits(dst.data.len(), dst.rows, dst.cols, dst.rs, dst.cs),
        "matmul: destination view out of bounds"
    );
    let distinct = dst.rows * dst.cols <= 1
        || (dst.rows == 1 && dst.cs >= 1)
        || (dst.cols == 1 && dst.rs >= 1)
        || (dst.cs >= 1 && dst.rs >= dst.cols * dst.cs)
        || (dst.rs >= 1 && dst.cs >= dst.rows * dst.rs);
    assert!(distinct, "matmul: destination elements overlap");
    if dst.rows == 0 || dst.cols == 0 {
        return;
    }
    if a.cols == 0 {
        if !accumulate {
            for i in 0..dst.rows {
                for j in 0..dst.cols {
                    dst.data[i * dst.rs + j * dst.cs] = 0.0;
                }
            }
        }
        return;
    }
    let par = if parallel {
        gemm::Parallelism::Rayon(rayon::current_num_threads())
    } else {
        gemm::Parallelism::None
    };
    let s = |x: usize| x as isize;
    // SAFETY: the asserts above show that every (i, j) the product touches, i < rows and
    // j < cols of each view, indexes inside the view's slice; the destination is a unique
    // borrow whose elements are pairwise distinct, and the operands are shared borrows, so
    // nothing is written while read elsewhere.
    #[allow(unsafe_code)]
    unsafe {
        gemm::gemm(
            dst.rows,
            dst.cols,
            a.cols,
            dst.data.as_mut_ptr(),
            s(dst.cs),
            s(dst.rs),
            accumulate,
            a.data.as_ptr(),
            s(a.cs),
            s(a.rs),
            b.data.as_ptr(),
            s(b.cs),
            s(b.rs),
            1.0,
            1.0,
            false,
            false,
            false,
            par,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(a: Mat<'_>, b: Mat<'_>) -> Vec<f32> {
        let mut out = vec![0.0; a.rows * b.cols];
        for i in 0..a.rows {
            for j in 0..b.cols {
                out[i * b.cols + j] = (0..a.cols)
                    .map(|k| a.data[i * a.rs + k * a.cs] * b.data[k * b.rs + j * b.cs])
                    .sum();
            }
        }
        out
    }

    #[test]
    fn products_with_transposed_views_and_accumulation_match_a_naive_loop() {
        let a: Vec<f32> = (0..35).map(|i| (i as f32 * 0.37).sin()).collect();
        let b: Vec<f32> = (0..35).map(|i| (i as f32 * 0.11).cos()).collect();
        // a: 5x7, b viewed as the transpose of a 5x7 matrix (7x5)
        let (av, bv) = (Mat::rows(&a, 5, 7), Mat::rows(&b, 5, 7).t());
        let want = naive(av, bv);
        for parallel in [false, true] {
            let mut out = vec![1.0; 25];
            matmul(MatMut::rows(&mut out, 5, 5), av, bv, false, parallel);
            for (o, w) in out.iter().zip(&want) {
                assert!((o - w).abs() < 1e-5);
            }
            matmul(MatMut::rows(&mut out, 5, 5), av, bv, true, parallel);
            for (o, w) in out.iter().zip(&want) {
                assert!((o - 2.0 * w).abs() < 1e-5);
            }
        }
    }

    #[test]
    #[should_panic(expected = "out of bounds")]
    fn a_view_past_its_slice_is_refused() {
        let a = vec![0.0; 6];
        let mut out = vec![0.0; 9];
        matmul(
            MatMut::rows(&mut out, 3, 3),
            Mat::rows(&a, 3, 3),
            Mat::rows(&a, 3, 3),
            false,
            false,
        );
    }
}
