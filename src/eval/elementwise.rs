//! Elementwise ops: unary, binary and n-ary (fused) with NumPy broadcasting.

use crate::graph::op::{BinaryOp, UnaryOp};
use ndarray::{ArrayD, ArrayViewD, IxDyn, Zip};

/// `u` applied to every element.
pub(super) fn unary(u: UnaryOp, x: &ArrayD<f64>) -> ArrayD<f64> {
    x.mapv(|v| u.apply(v))
}

/// `a op b` with both broadcast to `shape` (the broadcast of their shapes).
pub(super) fn binary(op: BinaryOp, a: &ArrayD<f64>, b: &ArrayD<f64>, shape: &[usize]) -> ArrayD<f64> {
    let a = bcast(a, shape);
    let b = bcast(b, shape);
    Zip::from(&a).and(&b).map_collect(|&x, &y| op.apply(x, y))
}

/// `f(x0, x1, ...)` at every point of `shape`, every input broadcast to `shape`.
pub(super) fn nary(inputs: &[ArrayD<f64>], shape: &[usize], f: impl Fn(&[f64]) -> f64) -> ArrayD<f64> {
    let views: Vec<ArrayViewD<'_, f64>> = inputs.iter().map(|a| bcast(a, shape)).collect();
    let mut iters: Vec<_> = views.iter().map(|v| v.iter()).collect();
    let n: usize = shape.iter().product();
    let mut point = vec![0.0; inputs.len()];
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        for (p, it) in point.iter_mut().zip(iters.iter_mut()) {
            *p = *it.next().expect("a broadcast view has the output's element count");
        }
        out.push(f(&point));
    }
    ArrayD::from_shape_vec(IxDyn(shape), out).expect("one value per output element")
}

/// `a` viewed with NumPy broadcasting as `shape` (checked by shape inference).
fn bcast<'a>(a: &'a ArrayD<f64>, shape: &[usize]) -> ArrayViewD<'a, f64> {
    a.broadcast(IxDyn(shape))
        .expect("shape inference checked that the inputs broadcast")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::test_util::{arr, assert_close};

    #[test]
    fn binary_broadcasts_row_and_column() {
        let col = arr(&[2, 1], &[10.0, 20.0]);
        let row = arr(&[3], &[1.0, 2.0, 3.0]);
        let got = binary(BinaryOp::Sub, &col, &row, &[2, 3]);
        assert_close(&got, &arr(&[2, 3], &[9.0, 8.0, 7.0, 19.0, 18.0, 17.0]));
        let got = binary(BinaryOp::Pow, &arr(&[], &[2.0]), &row, &[3]);
        assert_close(&got, &arr(&[3], &[2.0, 4.0, 8.0]));
    }

    #[test]
    fn unary_values() {
        let x = arr(&[4], &[-1.0, 0.0, 1.0, 4.0]);
        assert_close(&unary(UnaryOp::Relu, &x), &arr(&[4], &[0.0, 0.0, 1.0, 4.0]));
        assert_close(&unary(UnaryOp::Neg, &x), &arr(&[4], &[1.0, 0.0, -1.0, -4.0]));
        let g = unary(UnaryOp::Gelu, &arr(&[2], &[1.0, -1.0]));
        // 0.5 * x * (1 + erf(x / sqrt 2)) with erf(1/sqrt 2) = 0.6826894921370859
        assert_close(&g, &arr(&[2], &[0.8413447460685429, -0.15865525393145707]));
    }

    #[test]
    fn nary_broadcasts_three_inputs() {
        let a = arr(&[2, 1], &[1.0, 2.0]);
        let b = arr(&[1, 2], &[10.0, 20.0]);
        let c = arr(&[], &[100.0]);
        let got = nary(&[a, b, c], &[2, 2], |x| x[0] * x[1] + x[2]);
        assert_close(&got, &arr(&[2, 2], &[110.0, 120.0, 120.0, 140.0]));
    }
}
