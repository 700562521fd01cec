//! Windowed and global pooling over NCHW tensors (NHWC windowed pooling by permutation).

use super::linalg::{out_size, permuted};
use crate::graph::op::{Layout, NCHW_TO_NHWC, NHWC_TO_NCHW, PoolKind, PoolParams};
use ndarray::{ArrayD, IxDyn};

/// Max that propagates NaN (as NumPy's `max` reduction does).
pub(super) fn nan_max(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() { f64::NAN } else { a.max(b) }
}

/// `MaxPool` / `AveragePool` over each channel plane. Padded cells never win a max;
/// `AvgExcludePad` divides by the number of real cells in the window,
/// `AvgIncludePad` by `kernel[0] · kernel[1]`.
pub(super) fn pool(kind: PoolKind, p: &PoolParams, x: &ArrayD<f64>) -> ArrayD<f64> {
    if p.layout == Layout::Nhwc {
        let nchw = PoolParams {
            layout: Layout::Nchw,
            ..p.clone()
        };
        return permuted(&pool(kind, &nchw, &permuted(x, &NHWC_TO_NCHW)), &NCHW_TO_NHWC);
    }
    let (n, c, h, w) = (x.shape()[0], x.shape()[1], x.shape()[2], x.shape()[3]);
    let [kh, kw] = p.kernel;
    let [sh, sw] = p.strides;
    let [pt, pl, pb, pr] = p.pads;
    let oh = out_size(h, kh, sh, 1, pt + pb);
    let ow = out_size(w, kw, sw, 1, pl + pr);
    let xd = x.as_standard_layout();
    let xd = xd.as_slice().expect("standard layout");
    let mut out = Vec::with_capacity(n * c * oh * ow);
    for pi in 0..n * c {
        let plane = &xd[pi * h * w..][..h * w];
        for oy in 0..oh {
            // Real rows of the window: iy = oy·sh − pt + ky for ky in 0..kh, within 0..h.
            let y0 = (oy * sh) as isize - pt as isize;
            let rows = y0.max(0) as usize..((y0 + kh as isize).min(h as isize)).max(0) as usize;
            for ox in 0..ow {
                let x0 = (ox * sw) as isize - pl as isize;
                let cols = x0.max(0) as usize..((x0 + kw as isize).min(w as isize)).max(0) as usize;
                let cells = rows.clone().flat_map(|iy| plane[iy * w..][cols.clone()].iter().copied());
                let count = rows.len() * cols.len();
                out.push(match kind {
                    PoolKind::Max => cells.fold(f64::NEG_INFINITY, nan_max),
                    PoolKind::AvgExcludePad => cells.sum::<f64>() / count as f64,
                    PoolKind::AvgIncludePad => cells.sum::<f64>() / (kh * kw) as f64,
                });
            }
        }
    }
    ArrayD::from_shape_vec(IxDyn(&[n, c, oh, ow]), out).expect("one value per output element")
}

/// `GlobalMaxPool` (for [`PoolKind::Max`]) or `GlobalAveragePool` over H and W,
/// keeping them as dims of size 1.
pub(super) fn global_pool(kind: PoolKind, x: &ArrayD<f64>) -> ArrayD<f64> {
    let (n, c, h, w) = (x.shape()[0], x.shape()[1], x.shape()[2], x.shape()[3]);
    let xd = x.as_standard_layout();
    let xd = xd.as_slice().expect("standard layout");
    let out: Vec<f64> = (0..n * c)
        .map(|i| {
            let plane = &xd[i * h * w..][..h * w];
            match kind {
                PoolKind::Max => plane.iter().copied().fold(f64::NEG_INFINITY, nan_max),
                PoolKind::AvgExcludePad | PoolKind::AvgIncludePad => plane.iter().sum::<f64>() / (h * w) as f64,
            }
        })
        .collect();
    ArrayD::from_shape_vec(IxDyn(&[n, c, 1, 1]), out).expect("one value per output element")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::test_util::{arr, assert_close, iota};

    fn params(k: usize, s: usize, pads: [usize; 4]) -> PoolParams {
        PoolParams {
            kernel: [k, k],
            strides: [s, s],
            pads,
            layout: Layout::Nchw,
        }
    }

    #[test]
    fn avg_pool_include_vs_exclude_pad_at_corner() {
        // 3x3 of 1..9, 2x2 windows, stride 2, pad 1 on every side -> 2x2 output.
        let x = iota(&[1, 1, 3, 3]).mapv(|v| v + 1.0);
        let p = params(2, 2, [1, 1, 1, 1]);
        // Windows: {1}, {2,3}, {4,7}, {5,6,8,9}.
        let ex = pool(PoolKind::AvgExcludePad, &p, &x);
        assert_close(&ex, &arr(&[1, 1, 2, 2], &[1.0, 2.5, 5.5, 7.0]));
        let inc = pool(PoolKind::AvgIncludePad, &p, &x);
        assert_close(&inc, &arr(&[1, 1, 2, 2], &[0.25, 1.25, 2.75, 7.0]));
    }

    #[test]
    fn max_pool_padding_never_wins_over_negatives() {
        let x = arr(&[1, 1, 2, 2], &[-5.0, -3.0, -4.0, -1.0]);
        let p = params(2, 1, [1, 1, 1, 1]);
        // 3x3 output; the corner windows each hold one real (negative) cell.
        let got = pool(PoolKind::Max, &p, &x);
        let want = arr(&[1, 1, 3, 3], &[-5.0, -3.0, -3.0, -4.0, -1.0, -1.0, -4.0, -1.0, -1.0]);
        assert_close(&got, &want);
    }

    #[test]
    fn max_pool_propagates_nan() {
        let x = arr(&[1, 1, 1, 2], &[f64::NAN, 1.0]);
        let got = pool(PoolKind::Max, &params(1, 1, [0; 4]), &x);
        assert!(got[[0, 0, 0, 0]].is_nan());
        assert_eq!(got[[0, 0, 0, 1]], 1.0);
    }

    #[test]
    fn global_pools_keep_dims() {
        let x = iota(&[1, 2, 2, 2]).mapv(|v| v - 4.0);
        assert_close(&global_pool(PoolKind::AvgExcludePad, &x), &arr(&[1, 2, 1, 1], &[-2.5, 1.5]));
        assert_close(&global_pool(PoolKind::Max, &x), &arr(&[1, 2, 1, 1], &[-1.0, 3.0]));
    }
}
