//! Data movement: concatenation, reshape/flatten, transpose, slice and gather.

use ndarray::{ArrayD, ArrayViewD, Axis, IxDyn, Slice};

/// Concatenation along `axis` (shapes checked by shape inference).
pub(super) fn concat(inputs: &[ArrayD<f64>], axis: usize) -> ArrayD<f64> {
    let views: Vec<ArrayViewD<'_, f64>> = inputs.iter().map(|a| a.view()).collect();
    ndarray::concatenate(Axis(axis), &views).expect("shape inference checked the concat shapes")
}

/// The elements in row-major order laid out as `shape` (same element count).
pub(super) fn reshape(x: &ArrayD<f64>, shape: &[usize]) -> ArrayD<f64> {
    let flat: Vec<f64> = x.iter().copied().collect();
    ArrayD::from_shape_vec(IxDyn(shape), flat).expect("shape inference checked the element count")
}

/// Output axis `i` is input axis `perm[i]`.
pub(super) fn transpose(x: &ArrayD<f64>, perm: &[usize]) -> ArrayD<f64> {
    x.view().permuted_axes(IxDyn(perm)).as_standard_layout().into_owned()
}

/// [`transpose`] on the tensor's own element type (exact for every dtype, and
/// without widening: folding a transposed 100M-element weight stays cheap).
pub(super) fn transpose_native(
    x: &crate::graph::tensor::Tensor,
    perm: &[usize],
    ty: crate::dtype::TensorType,
) -> crate::graph::tensor::Tensor {
    use crate::graph::tensor::{Tensor, TensorData};
    fn permute<T: Copy + Default>(v: &[T], shape: &[usize], perm: &[usize]) -> Vec<T> {
        let r = shape.len();
        // Swapping the last two axes (weights of a transposed Gemm, K of attention):
        // a tiled loop, since element-by-element dynamic-rank iteration is slow on large weights.
        if r >= 2 && perm[..r - 2].iter().enumerate().all(|(i, &p)| p == i) && perm[r - 2] == r - 1 && perm[r - 1] == r - 2 {
            let (rows, cols) = (shape[r - 2], shape[r - 1]);
            let mut out = vec![T::default(); v.len()];
            const TILE: usize = 32;
            for (src, dst) in v.chunks(rows * cols).zip(out.chunks_mut(rows * cols)) {
                for i0 in (0..rows).step_by(TILE) {
                    for j0 in (0..cols).step_by(TILE) {
                        for i in i0..(i0 + TILE).min(rows) {
                            for j in j0..(j0 + TILE).min(cols) {
                                dst[j * rows + i] = src[i * cols + j];
                            }
                        }
                    }
                }
            }
            return out;
        }
        let a = ndarray::ArrayViewD::from_shape(IxDyn(shape), v).expect("data length checked against the type");
        a.permuted_axes(IxDyn(perm)).iter().copied().collect()
    }
    let shape = &x.ty.shape;
    let data = match &x.data {
        TensorData::F32(v) => TensorData::F32(permute(v, shape, perm)),
        TensorData::F64(v) => TensorData::F64(permute(v, shape, perm)),
        TensorData::F16(v) => TensorData::F16(permute(v, shape, perm)),
        TensorData::BF16(v) => TensorData::BF16(permute(v, shape, perm)),
        TensorData::I8(v) => TensorData::I8(permute(v, shape, perm)),
        TensorData::I4(v) => TensorData::I4(permute(v, shape, perm)),
        TensorData::I32(v) => TensorData::I32(permute(v, shape, perm)),
        TensorData::I64(v) => TensorData::I64(permute(v, shape, perm)),
        TensorData::Bool(v) => TensorData::Bool(permute(v, shape, perm)),
    };
    Tensor { ty, data }
}

/// Elements `starts[i], starts[i] + steps[i], ... < ends[i]` along each `axes[i]`.
pub(super) fn slice(x: &ArrayD<f64>, axes: &[usize], starts: &[usize], ends: &[usize], steps: &[usize]) -> ArrayD<f64> {
    let mut v = x.view();
    for i in 0..axes.len() {
        let s = Slice::new(starts[i] as isize, Some(ends[i] as isize), steps[i] as isize);
        v.slice_axis_inplace(Axis(axes[i]), s);
    }
    v.as_standard_layout().into_owned()
}

/// ONNX `Gather`: `out[a.., i.., b..] = data[a.., indices[i..], b..]`, negative
/// indices counting from the end. `Err((index, bound))` for an index outside
/// `-bound..bound`.
pub(super) fn gather(data: &ArrayD<f64>, indices: &[i64], indices_shape: &[usize], axis: usize) -> Result<ArrayD<f64>, (i64, usize)> {
    let shape = data.shape();
    let bound = shape[axis];
    let outer: usize = shape[..axis].iter().product();
    let inner: usize = shape[axis + 1..].iter().product();
    let mut rows = Vec::with_capacity(indices.len());
    for &i in indices {
        let r = if i < 0 { i.checked_add(bound as i64) } else { Some(i) };
        match r {
            Some(r) if r >= 0 && (r as u64) < bound as u64 => rows.push(r as usize),
            _ => return Err((i, bound)),
        }
    }
    let d = data.as_standard_layout();
    let d = d.as_slice().expect("standard layout");
    let mut out = Vec::with_capacity(outer * rows.len() * inner);
    for o in 0..outer {
        for &r in &rows {
            out.extend_from_slice(&d[(o * bound + r) * inner..][..inner]);
        }
    }
    let mut out_shape = shape[..axis].to_vec();
    out_shape.extend_from_slice(indices_shape);
    out_shape.extend_from_slice(&shape[axis + 1..]);
    Ok(ArrayD::from_shape_vec(IxDyn(&out_shape), out).expect("one value per output element"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::test_util::{arr, assert_close, iota};

    #[test]
    fn transpose_then_reshape_by_hand_and_round_trip() {
        let x = iota(&[2, 3]);
        let t = transpose(&x, &[1, 0]);
        assert_close(&t, &arr(&[3, 2], &[0.0, 3.0, 1.0, 4.0, 2.0, 5.0]));
        assert_close(&reshape(&t, &[6]), &arr(&[6], &[0.0, 3.0, 1.0, 4.0, 2.0, 5.0]));
        let y = iota(&[2, 3, 4]);
        let p = transpose(&y, &[2, 0, 1]);
        assert_eq!(p.shape(), &[4, 2, 3]);
        assert_eq!(p[[3, 1, 2]], y[[1, 2, 3]]);
        assert_close(&transpose(&p, &[1, 2, 0]), &y);
        assert_close(&reshape(&reshape(&y, &[6, 4]), &[2, 3, 4]), &y);
    }

    #[test]
    fn slice_with_step() {
        let x = iota(&[3, 7]);
        // rows 1..3, columns 1, 4 (start 1, end 7, step 3)
        let got = slice(&x, &[0, 1], &[1, 1], &[3, 7], &[1, 3]);
        assert_close(&got, &arr(&[2, 2], &[8.0, 11.0, 15.0, 18.0]));
        let empty = slice(&x, &[1], &[2], &[2], &[1]);
        assert_eq!(empty.shape(), &[3, 0]);
    }

    #[test]
    fn gather_with_negative_index_and_matrix_indices() {
        let data = iota(&[3, 2]);
        let got = gather(&data, &[0, -1, 1, 2], &[2, 2], 0).unwrap();
        assert_close(&got, &arr(&[2, 2, 2], &[0.0, 1.0, 4.0, 5.0, 2.0, 3.0, 4.0, 5.0]));
        let cols = gather(&data, &[-2], &[], 1).unwrap();
        assert_close(&cols, &arr(&[3], &[0.0, 2.0, 4.0]));
    }

    #[test]
    fn gather_out_of_range_reports_index_and_bound() {
        let data = iota(&[3, 2]);
        assert_eq!(gather(&data, &[0, 3], &[2], 0).unwrap_err(), (3, 3));
        assert_eq!(gather(&data, &[-4], &[1], 0).unwrap_err(), (-4, 3));
        assert_eq!(gather(&data, &[i64::MIN], &[1], 0).unwrap_err(), (i64::MIN, 3));
    }

    #[test]
    fn concat_along_last_axis() {
        let a = iota(&[2, 1]);
        let b = iota(&[2, 2]).mapv(|v| v + 10.0);
        assert_close(&concat(&[a, b], 1), &arr(&[2, 3], &[0.0, 10.0, 11.0, 1.0, 12.0, 13.0]));
    }
}

#[cfg(test)]
mod native_tests {
    use super::*;
    use crate::dtype::{DType, TensorType};
    use crate::graph::tensor::{Distribution, Tensor, random_values};

    #[test]
    fn native_transpose_matches_the_f64_transpose_for_every_perm() {
        let cases: &[(&[usize], &[usize])] = &[
            (&[3, 5, 7], &[0, 1, 2]),
            (&[3, 5, 7], &[0, 2, 1]),
            (&[3, 5, 7], &[1, 0, 2]),
            (&[3, 5, 7], &[1, 2, 0]),
            (&[3, 5, 7], &[2, 0, 1]),
            (&[3, 5, 7], &[2, 1, 0]),
            (&[2, 3, 33, 65], &[0, 1, 3, 2]),
            (&[70, 37], &[1, 0]),
        ];
        for (shape, perm) in cases {
            for dtype in [DType::F32, DType::I64, DType::F16] {
                let ty = TensorType::new(shape.to_vec(), dtype);
                let vals = random_values(&Distribution::Uniform { low: -100.0, high: 100.0 }, 3, ty.numel());
                let x = Tensor::from_f64(ty.clone(), &vals);
                let out_shape: Vec<usize> = perm.iter().map(|&p| shape[p]).collect();
                let got = transpose_native(&x, perm, TensorType::new(out_shape.clone(), dtype));
                let want = transpose(&crate::eval::to_array(&x), perm);
                assert_eq!(
                    got.to_f64(),
                    want.iter().copied().collect::<Vec<f64>>(),
                    "{shape:?} {perm:?} {dtype}"
                );
            }
        }
    }
}
