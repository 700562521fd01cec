//! Matrix multiply (NumPy `matmul`) and 2-D convolution (ONNX `Conv`), as plain
//! loops over contiguous row-major slices.

use crate::graph::infer::broadcast;
use crate::graph::op::{ConvParams, HWIO_TO_OIHW, Layout, NCHW_TO_NHWC, NHWC_TO_NCHW};
use ndarray::{ArrayD, IxDyn};
use std::ops::Range;

/// NumPy `matmul`: 1-D operands are promoted (`[k]` → `[1, k]` for `a`, `[k, 1]`
/// for `b`) and the promoted dim dropped from the result; leading batch dims
/// broadcast. Shapes were checked by shape inference.
pub(super) fn matmul(a: &ArrayD<f64>, b: &ArrayD<f64>) -> ArrayD<f64> {
    let a_shape: Vec<usize> = if a.ndim() == 1 { vec![1, a.len()] } else { a.shape().to_vec() };
    let b_shape: Vec<usize> = if b.ndim() == 1 { vec![b.len(), 1] } else { b.shape().to_vec() };
    let (a_batch, a_mat) = a_shape.split_at(a_shape.len() - 2);
    let (b_batch, b_mat) = b_shape.split_at(b_shape.len() - 2);
    let (m, k, n) = (a_mat[0], a_mat[1], b_mat[1]);
    debug_assert_eq!(k, b_mat[0]);
    let batch = broadcast(a_batch, b_batch).expect("shape inference checked the batch dims");
    let a_off = batch_offsets(&batch, a_batch);
    let b_off = batch_offsets(&batch, b_batch);
    let a_data = a.as_standard_layout();
    let b_data = b.as_standard_layout();
    let (a_data, b_data) = (
        a_data.as_slice().expect("standard layout"),
        b_data.as_slice().expect("standard layout"),
    );
    let mut out = vec![0.0; a_off.len() * m * n];
    for (i, o) in out.chunks_exact_mut((m * n).max(1)).enumerate().take(a_off.len()) {
        let am = &a_data[a_off[i] * m * k..][..m * k];
        let bm = &b_data[b_off[i] * k * n..][..k * n];
        matmul_2d(am, bm, o, m, k, n);
    }
    let mut shape = batch;
    if a.ndim() > 1 {
        shape.push(m);
    }
    if b.ndim() > 1 {
        shape.push(n);
    }
    ArrayD::from_shape_vec(IxDyn(&shape), out).expect("one value per output element")
}

/// `out[m, n] += a[m, k] · b[k, n]`, row-major, the inner loop over a row of `b`.
fn matmul_2d(a: &[f64], b: &[f64], out: &mut [f64], m: usize, k: usize, n: usize) {
    for i in 0..m {
        let orow = &mut out[i * n..(i + 1) * n];
        for p in 0..k {
            let av = a[i * k + p];
            let brow = &b[p * n..(p + 1) * n];
            for (o, &bv) in orow.iter_mut().zip(brow) {
                *o += av * bv;
            }
        }
    }
}

/// For each position of the broadcast batch shape `out` (row-major), the linear
/// batch index of the source with batch shape `src` (right-aligned, dims of 1 repeat).
fn batch_offsets(out: &[usize], src: &[usize]) -> Vec<usize> {
    let r = out.len();
    let pad = r - src.len();
    let mut strides = vec![0; r];
    let mut s = 1;
    for i in (0..src.len()).rev() {
        strides[pad + i] = if src[i] == 1 { 0 } else { s };
        s *= src[i];
    }
    let total: usize = out.iter().product();
    let mut res = Vec::with_capacity(total);
    let mut idx = vec![0; r];
    for _ in 0..total {
        res.push(idx.iter().zip(&strides).map(|(i, s)| i * s).sum());
        for d in (0..r).rev() {
            idx[d] += 1;
            if idx[d] < out[d] {
                break;
            }
            idx[d] = 0;
        }
    }
    res
}

/// Output positions `o` in `0..out_len` with `0 <= o·stride + offset < in_len`.
/// Computed in i128 so that extreme strides and offsets cannot overflow.
pub(super) fn valid_range(out_len: usize, stride: usize, offset: isize, in_len: usize) -> Range<usize> {
    let (s, offset, out_len) = (stride as i128, offset as i128, out_len as i128);
    let lo = if offset >= 0 { 0 } else { ((-offset + s - 1) / s).min(out_len) };
    let room = in_len as i128 - offset;
    let hi = if room <= 0 { 0 } else { ((room + s - 1) / s).min(out_len) };
    lo as usize..(hi.max(lo)) as usize
}

/// `x` with its axes permuted, in standard layout.
pub(super) fn permuted(x: &ArrayD<f64>, perm: &[usize]) -> ArrayD<f64> {
    x.view().permuted_axes(IxDyn(perm)).as_standard_layout().into_owned()
}

/// Output size of a strided, dilated, padded window (checked by shape inference).
pub(super) fn out_size(n: usize, k: usize, stride: usize, dil: usize, pad: usize) -> usize {
    (n + pad - (dil * (k - 1) + 1)) / stride + 1
}

/// ONNX `Conv` on NCHW `x` with OIHW weights `w` (NHWC `x` with HWIO `w` when
/// `p.layout` says so), zero padding, optional bias `[O]`.
pub(super) fn conv(x: &ArrayD<f64>, w: &ArrayD<f64>, bias: Option<&[f64]>, p: &ConvParams) -> ArrayD<f64> {
    if p.layout == Layout::Nhwc {
        let nchw = ConvParams {
            layout: Layout::Nchw,
            ..p.clone()
        };
        let x = permuted(x, &NHWC_TO_NCHW);
        let w = permuted(w, &HWIO_TO_OIHW);
        return permuted(&conv(&x, &w, bias, &nchw), &NCHW_TO_NHWC);
    }
    let (n, c, h, wd) = (x.shape()[0], x.shape()[1], x.shape()[2], x.shape()[3]);
    let (o, cg, kh, kw) = (w.shape()[0], w.shape()[1], w.shape()[2], w.shape()[3]);
    let [sh, sw] = p.strides;
    let [dh, dw] = p.dilations;
    let [pt, pl, pb, pr] = p.pads;
    let oh = out_size(h, kh, sh, dh, pt + pb);
    let ow = out_size(wd, kw, sw, dw, pl + pr);
    let og = o / p.group;
    let xd = x.as_standard_layout();
    let xd = xd.as_slice().expect("standard layout");
    let wt = w.as_standard_layout();
    let wt = wt.as_slice().expect("standard layout");
    let mut out = vec![0.0; n * o * oh * ow];
    for b in 0..n {
        for oc in 0..o {
            let group = oc / og;
            let plane = &mut out[(b * o + oc) * oh * ow..][..oh * ow];
            if let Some(bias) = bias {
                plane.fill(bias[oc]);
            }
            for icg in 0..cg {
                let ic = group * cg + icg;
                let xp = &xd[(b * c + ic) * h * wd..][..h * wd];
                for ky in 0..kh {
                    let ys = valid_range(oh, sh, (ky * dh) as isize - pt as isize, h);
                    for kx in 0..kw {
                        let wv = wt[((oc * cg + icg) * kh + ky) * kw + kx];
                        let xs = valid_range(ow, sw, (kx * dw) as isize - pl as isize, wd);
                        for oy in ys.clone() {
                            let iy = oy * sh + ky * dh - pt;
                            let xrow = &xp[iy * wd..][..wd];
                            let orow = &mut plane[oy * ow..][..ow];
                            for ox in xs.clone() {
                                orow[ox] += wv * xrow[ox * sw + kx * dw - pl];
                            }
                        }
                    }
                }
            }
        }
    }
    ArrayD::from_shape_vec(IxDyn(&[n, o, oh, ow]), out).expect("one value per output element")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::test_util::{arr, assert_close, iota};
    use ndarray::{Axis, Ix2, s};

    #[test]
    fn matmul_2d_by_hand() {
        let a = arr(&[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        let b = arr(&[3, 2], &[7.0, 8.0, 9.0, 10.0, 11.0, 12.0]);
        assert_close(&matmul(&a, &b), &arr(&[2, 2], &[58.0, 64.0, 139.0, 154.0]));
    }

    #[test]
    fn matmul_vector_promotion() {
        let a = arr(&[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        let v = arr(&[3], &[1.0, 0.0, -1.0]);
        assert_close(&matmul(&a, &v), &arr(&[2], &[-2.0, -2.0]));
        let u = arr(&[2], &[1.0, 1.0]);
        assert_close(&matmul(&u, &a), &arr(&[3], &[5.0, 7.0, 9.0]));
        assert_close(&matmul(&v, &v), &arr(&[], &[2.0]));
    }

    #[test]
    fn matmul_batched_broadcast_equals_loop() {
        // a: [2, 1, 2, 3], b: [3, 3, 4] -> [2, 3, 2, 4]
        let a = iota(&[2, 1, 2, 3]).mapv(|v| v * 0.5 - 1.0);
        let b = iota(&[3, 3, 4]).mapv(|v| (v * 0.37).sin());
        let got = matmul(&a, &b);
        assert_eq!(got.shape(), &[2, 3, 2, 4]);
        for i in 0..2 {
            for j in 0..3 {
                let am = a.slice(s![i, 0, .., ..]).into_dimensionality::<Ix2>().unwrap().to_owned();
                let bm = b.slice(s![j, .., ..]).into_dimensionality::<Ix2>().unwrap().to_owned();
                let want = am.dot(&bm).into_dyn();
                let g = got.index_axis(Axis(0), i).index_axis(Axis(0), j).to_owned();
                assert_close(&g, &want);
            }
        }
    }

    #[test]
    fn conv_3x3_pad1_stride2_by_hand() {
        // x = 1..16 as 4x4, all-ones 3x3 kernel, pad 1, stride 2 -> 2x2 of window sums.
        let x = iota(&[1, 1, 4, 4]).mapv(|v| v + 1.0);
        let w = arr(&[1, 1, 3, 3], &[1.0; 9]);
        let p = ConvParams {
            strides: [2, 2],
            pads: [1, 1, 1, 1],
            dilations: [1, 1],
            group: 1,
            layout: Layout::Nchw,
        };
        // windows centered at (0,0), (0,2), (2,0), (2,2):
        // (0,0): 1+2+5+6 = 14; (0,2): 2+3+4+6+7+8 = 30; (2,0): 5+6+9+10+13+14 = 57;
        // (2,2): 6+7+8+10+11+12+14+15+16 = 99
        let got = conv(&x, &w, Some(&[0.5]), &p);
        assert_close(&got, &arr(&[1, 1, 2, 2], &[14.5, 30.5, 57.5, 99.5]));
    }

    #[test]
    fn conv_dilation_and_asymmetric_pads() {
        // 1x5 row, kernel [1, -1] dilated by 2: y[i] = x[i] - x[i+2], pad right 2.
        let x = arr(&[1, 1, 1, 5], &[1.0, 4.0, 9.0, 16.0, 25.0]);
        let w = arr(&[1, 1, 1, 2], &[1.0, -1.0]);
        let p = ConvParams {
            strides: [1, 1],
            pads: [0, 0, 0, 2],
            dilations: [1, 2],
            group: 1,
            layout: Layout::Nchw,
        };
        let got = conv(&x, &w, None, &p);
        assert_close(&got, &arr(&[1, 1, 1, 5], &[-8.0, -12.0, -16.0, 16.0, 25.0]));
    }

    #[test]
    fn grouped_conv_is_concat_of_per_group_convs() {
        let x = iota(&[2, 4, 5, 5]).mapv(|v| (v * 0.11).cos());
        let w = iota(&[6, 2, 3, 3]).mapv(|v| (v * 0.07).sin());
        let bias = [0.1, 0.2, 0.3, -0.1, -0.2, -0.3];
        let p = ConvParams {
            strides: [2, 1],
            pads: [1, 0, 1, 2],
            dilations: [1, 1],
            group: 2,
            layout: Layout::Nchw,
        };
        let got = conv(&x, &w, Some(&bias), &p);
        let p1 = ConvParams { group: 1, ..p.clone() };
        let parts: Vec<ArrayD<f64>> = (0..2)
            .map(|g| {
                let xg = x.slice(s![.., 2 * g..2 * g + 2, .., ..]).to_owned().into_dyn();
                let wg = w.slice(s![3 * g..3 * g + 3, .., .., ..]).to_owned().into_dyn();
                conv(&xg, &wg, Some(&bias[3 * g..3 * g + 3]), &p1)
            })
            .collect();
        let views: Vec<_> = parts.iter().map(|a| a.view()).collect();
        let want = ndarray::concatenate(Axis(1), &views).unwrap();
        assert_close(&got, &want);
    }

    #[test]
    fn depthwise_conv_by_hand() {
        // 2 channels, group 2, 2x2 kernels: channel 0 sums, channel 1 takes the top-left.
        let x = iota(&[1, 2, 3, 3]);
        let w = arr(&[2, 1, 2, 2], &[1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0]);
        let p = ConvParams {
            strides: [1, 1],
            pads: [0; 4],
            dilations: [1, 1],
            group: 2,
            layout: Layout::Nchw,
        };
        let got = conv(&x, &w, None, &p);
        // channel 0 is 0..9: window sums 0+1+3+4=8, 12, 20, 24; channel 1 is 9..18.
        assert_close(&got, &arr(&[1, 2, 2, 2], &[8.0, 12.0, 20.0, 24.0, 9.0, 10.0, 12.0, 13.0]));
    }

    #[test]
    fn valid_range_edges() {
        assert_eq!(valid_range(3, 2, -1, 4), 1..3);
        assert_eq!(valid_range(5, 1, 2, 5), 0..3);
        assert_eq!(valid_range(2, 1, 7, 5), 0..0);
    }
}
