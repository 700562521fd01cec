//! Normalizations and reductions: softmax, layer norm, batch norm, reduce.

use super::pool::nan_max;
use crate::graph::op::ReduceKind;
use ndarray::{ArrayD, Axis, IxDyn};

/// Softmax along `axis`, subtracting each lane's max before `exp` for stability.
pub(super) fn softmax(x: &ArrayD<f64>, axis: usize) -> ArrayD<f64> {
    let mut out = x.to_owned();
    for mut lane in out.lanes_mut(Axis(axis)) {
        let m = lane.iter().copied().fold(f64::NEG_INFINITY, nan_max);
        lane.mapv_inplace(|v| (v - m).exp());
        let sum: f64 = lane.sum();
        lane.mapv_inplace(|v| v / sum);
    }
    out
}

/// Layer normalization over the dims `axis..`: each slice is shifted to mean 0 and
/// divided by `sqrt(var + epsilon)` (biased variance), then scaled and shifted by
/// `scale` and `bias` broadcast to those dims.
pub(super) fn layer_norm(x: &ArrayD<f64>, scale: &ArrayD<f64>, bias: &ArrayD<f64>, axis: usize, epsilon: f64) -> ArrayD<f64> {
    let norm_shape = &x.shape()[axis..];
    let inner: usize = norm_shape.iter().product();
    let flat = |a: &ArrayD<f64>| -> Vec<f64> {
        a.broadcast(IxDyn(norm_shape))
            .expect("shape inference checked scale and bias")
            .iter()
            .copied()
            .collect()
    };
    let (sc, bi) = (flat(scale), flat(bias));
    let xd = x.as_standard_layout();
    let xd = xd.as_slice().expect("standard layout");
    let mut out = Vec::with_capacity(xd.len());
    for row in xd.chunks_exact(inner.max(1)) {
        let n = row.len() as f64;
        let mean = row.iter().sum::<f64>() / n;
        let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
        let std = (var + epsilon).sqrt();
        out.extend(row.iter().enumerate().map(|(j, v)| (v - mean) / std * sc[j] + bi[j]));
    }
    ArrayD::from_shape_vec(IxDyn(x.shape()), out).expect("one value per element")
}

/// Inference batch normalization along axis 1:
/// `(x − mean[c]) / sqrt(var[c] + epsilon) · scale[c] + bias[c]`.
pub(super) fn batch_norm(x: &ArrayD<f64>, scale: &[f64], bias: &[f64], mean: &[f64], var: &[f64], epsilon: f64) -> ArrayD<f64> {
    let c = x.shape()[1];
    let inner: usize = x.shape()[2..].iter().product();
    let xd = x.as_standard_layout();
    let xd = xd.as_slice().expect("standard layout");
    let out: Vec<f64> = xd
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            let ch = (i / inner.max(1)) % c;
            (v - mean[ch]) / (var[ch] + epsilon).sqrt() * scale[ch] + bias[ch]
        })
        .collect();
    ArrayD::from_shape_vec(IxDyn(x.shape()), out).expect("one value per element")
}

/// Sum, mean or max over `axes` (max propagates NaN); reduced dims are kept as
/// size 1 if `keepdims`. No axes means no reduction, as shape inference has it.
pub(super) fn reduce(kind: ReduceKind, x: &ArrayD<f64>, axes: &[usize], keepdims: bool) -> ArrayD<f64> {
    let mut axes = axes.to_vec();
    axes.sort_unstable();
    axes.dedup();
    let mut out = x.to_owned();
    for &a in axes.iter().rev() {
        out = match kind {
            ReduceKind::Sum | ReduceKind::Mean => out.sum_axis(Axis(a)),
            ReduceKind::Max => out.fold_axis(Axis(a), f64::NEG_INFINITY, |&m, &v| nan_max(m, v)),
        };
    }
    if kind == ReduceKind::Mean {
        let count: usize = axes.iter().map(|&a| x.shape()[a]).product();
        out.mapv_inplace(|v| v / count as f64);
    }
    if keepdims {
        for &a in &axes {
            out.insert_axis_inplace(Axis(a));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::test_util::{arr, assert_close, iota};

    #[test]
    fn softmax_rows_sum_to_one_and_match_hand_values() {
        let x = arr(&[2, 3], &[1.0, 2.0, 3.0, 1000.0, 1000.0, 1000.0]);
        let got = softmax(&x, 1);
        let e = [1.0f64.exp(), 2.0f64.exp(), 3.0f64.exp()];
        let s: f64 = e.iter().sum();
        let third = 1.0 / 3.0;
        assert_close(&got, &arr(&[2, 3], &[e[0] / s, e[1] / s, e[2] / s, third, third, third]));
        // 0.09003057317038046 is softmax([1, 2, 3])[0] to 16 digits.
        assert!((got[[0, 0]] - 0.09003057317038046).abs() < 1e-15);
        let cols = softmax(&iota(&[3, 4]), 0);
        for s in cols.sum_axis(Axis(0)) {
            assert!((s - 1.0).abs() < 1e-12, "column sum {s}");
        }
    }

    #[test]
    fn layer_norm_gives_mean_zero_variance_one_then_affine() {
        let x = iota(&[2, 2, 3]).mapv(|v| (v * 1.3).sin() * 5.0 + 2.0);
        let ones = arr(&[3], &[1.0; 3]);
        let zeros = arr(&[], &[0.0]);
        let y = layer_norm(&x, &ones, &zeros, 1, 0.0);
        for row in y.to_shape((2, 6)).unwrap().rows() {
            let mean = row.sum() / 6.0;
            let var = row.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / 6.0;
            assert!(mean.abs() < 1e-12 && (var - 1.0).abs() < 1e-12, "mean {mean} var {var}");
        }
        // [1, 3] over the last axis: mean 2, var 1 -> [-1, 1], then * 2 + [1, -1].
        let got = layer_norm(&arr(&[1, 2], &[1.0, 3.0]), &arr(&[1], &[2.0]), &arr(&[2], &[1.0, -1.0]), 1, 0.0);
        assert_close(&got, &arr(&[1, 2], &[-1.0, 1.0]));
        let eps = layer_norm(&arr(&[2], &[1.0, 3.0]), &arr(&[], &[1.0]), &arr(&[], &[0.0]), 0, 3.0);
        assert_close(&eps, &arr(&[2], &[-0.5, 0.5]));
    }

    #[test]
    fn batch_norm_by_hand() {
        // x[n, c, 2]: channel 0 normalized with mean 1 var 4, channel 1 with mean -1 var 1.
        let x = arr(&[1, 2, 2], &[1.0, 5.0, 0.0, 2.0]);
        let got = batch_norm(&x, &[2.0, 1.0], &[0.5, 0.0], &[1.0, -1.0], &[4.0, 1.0], 0.0);
        assert_close(&got, &arr(&[1, 2, 2], &[0.5, 4.5, 1.0, 3.0]));
        let eps = batch_norm(&arr(&[1, 1], &[4.0]), &[1.0], &[0.0], &[0.0], &[12.0], 4.0);
        assert_close(&eps, &arr(&[1, 1], &[1.0]));
    }

    #[test]
    fn reduce_sum_mean_max_with_and_without_keepdims() {
        let x = iota(&[2, 3, 2]);
        assert_close(&reduce(ReduceKind::Sum, &x, &[1], false), &arr(&[2, 2], &[6.0, 9.0, 24.0, 27.0]));
        assert_close(&reduce(ReduceKind::Mean, &x, &[0, 2], true), &arr(&[1, 3, 1], &[3.5, 5.5, 7.5]));
        assert_close(&reduce(ReduceKind::Max, &x, &[0, 1, 2], false), &arr(&[], &[11.0]));
        assert_close(&reduce(ReduceKind::Sum, &x, &[], false), &x);
        let nan = reduce(ReduceKind::Max, &arr(&[2], &[f64::NAN, 1.0]), &[0], false);
        assert!(nan[[]].is_nan());
    }
}
