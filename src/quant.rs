//! Quantized weights in the graph: the semantics of `DequantizeLinear`
//! ([`crate::graph::op::Op::Dequantize`]), the quantizers the approximate rules
//! use, and the conversion of a quantized constant to the CPU backend's layout.
//!
//! Two formats of a `k × n` GEMM weight `W` (`k` the reduction dimension):
//!
//! * [`QuantFormat::Int8`]: `i8` values and one `f32` scale per column,
//!   `DequantizeLinear(axis = 1)` with scale `[n]`;
//! * [`QuantFormat::Int4`]: `i4` values and one `f32` scale per `group` rows and
//!   column, `DequantizeLinear(axis = 0, block_size = group)` with scale
//!   `[⌈k / group⌉, n]`.
//!
//! Both are made by `eqopt_cpu::quant` (`quantize_int8`, `quantize_int4`), so the
//! graph's constants and the kernels' stored matrices hold the same values, and
//! dequantization multiplies in `f32` as the kernels do: the reference
//! interpreter and the CPU backend agree bit for bit on `Ŵ`.

use crate::dtype::{DType, TensorType};
use crate::graph::tensor::{Tensor, TensorData};
use eqopt_kir::ConstData;
use std::sync::Arc;

/// A quantized storage format for a `k × n` weight.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum QuantFormat {
    /// int8, one scale per column.
    Int8,
    /// int4, one scale per `group` rows and column.
    Int4 {
        /// Rows per scale.
        group: usize,
    },
}

impl QuantFormat {
    /// The attributes `(axis, block_size)` of the `DequantizeLinear` that reads it.
    pub fn dequantize_attrs(self) -> (usize, usize) {
        match self {
            QuantFormat::Int8 => (1, 0),
            QuantFormat::Int4 { group } => (0, group),
        }
    }

    /// The name used in constant names and rule names (`int8`, `int4-g32`).
    pub fn name(self) -> String {
        match self {
            QuantFormat::Int8 => "int8".into(),
            QuantFormat::Int4 { group } => format!("int4-g{group}"),
        }
    }

    /// The format a quantized `x` and its `scale` store, read by a
    /// `DequantizeLinear` with `axis` and `block_size`, when `x` is a `k × n`
    /// matrix in one of the two layouts the kernels take; `None` otherwise.
    pub fn of(x: &TensorType, scale: &TensorType, axis: usize, block_size: usize) -> Option<QuantFormat> {
        let [k, n] = x.shape[..] else { return None };
        if scale.dtype != DType::F32 {
            return None;
        }
        match (x.dtype, axis, block_size) {
            (DType::I8, 1, 0) if scale.shape == [n] => Some(QuantFormat::Int8),
            (DType::I4, 0, g) if g > 0 && scale.shape == [k.div_ceil(g), n] => Some(QuantFormat::Int4 { group: g }),
            _ => None,
        }
    }
}

/// A weight quantized by [`quantize`]: the values, the scales and the relative
/// error `‖W − Ŵ‖₂ / ‖W‖₂` of the dequantized matrix.
#[derive(Clone, Debug, PartialEq)]
pub struct Quantized {
    /// `i8` or `i4` values, `[k, n]`.
    pub values: Tensor,
    /// `f32` scales: `[n]` (int8) or `[⌈k / group⌉, n]` (int4).
    pub scales: Tensor,
    /// Relative Frobenius error of `Ŵ`.
    pub error: f64,
}

/// Quantizes the `f32` matrix `w` (`[k, n]`) to `format` with the CPU backend's
/// quantizers. `None` when `w` is not a finite `f32` matrix.
pub fn quantize(w: &Tensor, format: QuantFormat) -> Option<Quantized> {
    let [k, n] = w.ty.shape[..] else { return None };
    let TensorData::F32(b) = &w.data else { return None };
    match format {
        QuantFormat::Int8 => {
            let q = eqopt_cpu::quant::quantize_int8(b, k, n).ok()?;
            let error = q.error(b).ok()?.rel;
            let (data, scales) = q.into_parts();
            Some(Quantized {
                values: Tensor {
                    ty: TensorType::new(vec![k, n], DType::I8),
                    data: TensorData::I8(data),
                },
                scales: Tensor {
                    ty: TensorType::new(vec![n], DType::F32),
                    data: TensorData::F32(scales),
                },
                error,
            })
        }
        QuantFormat::Int4 { group } => {
            let q = eqopt_cpu::quant::quantize_int4(b, k, n, group).ok()?;
            let error = q.error(b).ok()?.rel;
            let rb = n.div_ceil(2);
            let values: Vec<i8> = (0..k * n)
                .map(|i| {
                    let (p, j) = (i / n, i % n);
                    let nib = (q.data()[p * rb + j / 2] >> (4 * (j % 2))) & 0x0F;
                    nib as i8 - 8
                })
                .collect();
            Some(Quantized {
                values: Tensor {
                    ty: TensorType::new(vec![k, n], DType::I4),
                    data: TensorData::I4(values),
                },
                scales: Tensor {
                    ty: TensorType::new(vec![k.div_ceil(group), n], DType::F32),
                    data: TensorData::F32(q.scales().to_vec()),
                },
                error,
            })
        }
    }
}

/// `DequantizeLinear` of `x` with `scale` (types already checked by
/// [`crate::graph::infer`]): each element times its scale, the product taken in
/// `f32` when the scale is `f32` (as the kernels do), in `f64` otherwise.
pub fn dequantize(x: &Tensor, scale: &Tensor, axis: usize, block_size: usize) -> Vec<f64> {
    let (xs, ss) = (x.to_f64(), scale.to_f64());
    let f32_scale = matches!(scale.data, TensorData::F32(_));
    let shape = &x.ty.shape;
    // Row-major strides of x and of the scale tensor.
    let strides = |s: &[usize]| -> Vec<usize> {
        let mut st = vec![1usize; s.len()];
        for i in (0..s.len().saturating_sub(1)).rev() {
            st[i] = st[i + 1] * s[i + 1];
        }
        st
    };
    let xst = strides(shape);
    let sst = strides(&scale.ty.shape);
    let per_tensor = ss.len() == 1 && block_size == 0;
    xs.iter()
        .enumerate()
        .map(|(i, &q)| {
            let si = if per_tensor {
                0
            } else if block_size == 0 {
                (i / xst[axis]) % shape[axis]
            } else {
                (0..shape.len())
                    .map(|d| {
                        let c = (i / xst[d]) % shape[d];
                        if d == axis { (c / block_size) * sst[d] } else { c * sst[d] }
                    })
                    .sum()
            };
            let s = ss[si];
            if f32_scale { (q as f32 * s as f32) as f64 } else { q * s }
        })
        .collect()
}

/// The CPU backend's stored form of a quantized `k × n` matrix: `x` (`i8` or
/// `i4` values) and `f32` scales in `format`'s layout (see [`QuantFormat::of`]).
/// `None` when the tensors do not hold that layout.
pub fn kir_const(x: &Tensor, scale: &Tensor, format: QuantFormat) -> Option<ConstData> {
    let [k, n] = x.ty.shape[..] else { return None };
    let TensorData::F32(scales) = &scale.data else { return None };
    match (format, &x.data) {
        (QuantFormat::Int8, TensorData::I8(v)) if scales.len() == n => Some(ConstData::Int8 {
            data: Arc::new(v.clone()),
            scales: Arc::new(scales.clone()),
            k,
            n,
        }),
        (QuantFormat::Int4 { group }, TensorData::I4(v)) if group > 0 && scales.len() == k.div_ceil(group) * n => {
            // Rows of ⌈n/2⌉ bytes, even columns in the low nibble, stored as q + 8.
            let rb = n.div_ceil(2);
            let mut data = vec![0x88u8; k * rb];
            for (i, &q) in v.iter().enumerate() {
                let (p, j) = (i / n, i % n);
                let code = (q.clamp(-8, 7) + 8) as u8;
                let byte = &mut data[p * rb + j / 2];
                *byte = if j % 2 == 0 {
                    (*byte & 0xF0) | code
                } else {
                    (*byte & 0x0F) | (code << 4)
                };
            }
            Some(ConstData::Int4 {
                data: Arc::new(data),
                scales: Arc::new(scales.clone()),
                k,
                n,
                group,
            })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::tensor::{Distribution, random_values};

    fn weight(k: usize, n: usize, seed: u64) -> Tensor {
        let v = random_values(&Distribution::Normal { mean: 0.0, std: 1.0 }, seed, k * n);
        Tensor::from_f64(TensorType::new(vec![k, n], DType::F32), &v)
    }

    #[test]
    fn graph_dequantization_equals_the_kernels() {
        let w = weight(70, 9, 3);
        let TensorData::F32(b) = &w.data else { unreachable!() };
        for format in [QuantFormat::Int8, QuantFormat::Int4 { group: 32 }] {
            let q = quantize(&w, format).unwrap();
            let (axis, block) = format.dequantize_attrs();
            assert_eq!(QuantFormat::of(&q.values.ty, &q.scales.ty, axis, block), Some(format));
            let graph: Vec<f32> = dequantize(&q.values, &q.scales, axis, block).iter().map(|&v| v as f32).collect();
            let kernel = match format {
                QuantFormat::Int8 => eqopt_cpu::quant::quantize_int8(b, 70, 9).unwrap().dequantize(),
                QuantFormat::Int4 { group } => eqopt_cpu::quant::quantize_int4(b, 70, 9, group).unwrap().dequantize(),
            };
            assert_eq!(graph, kernel, "{format:?}");
            let stored = kir_const(&q.values, &q.scales, format).unwrap();
            assert_eq!(stored.quant_mismatch(), None);
            assert!(q.error > 0.0 && q.error < 0.2, "{format:?}: {}", q.error);
        }
    }

    #[test]
    fn per_tensor_and_per_axis_scales() {
        let x = Tensor::from_f64(TensorType::new(vec![2, 2], DType::I8), &[1.0, 2.0, 3.0, 4.0]);
        let one = Tensor::from_f64(TensorType::new(vec![], DType::F32), &[0.5]);
        assert_eq!(dequantize(&x, &one, 1, 0), vec![0.5, 1.0, 1.5, 2.0]);
        let rows = Tensor::from_f64(TensorType::new(vec![2], DType::F32), &[1.0, 10.0]);
        assert_eq!(dequantize(&x, &rows, 0, 0), vec![1.0, 2.0, 30.0, 40.0]);
        assert_eq!(dequantize(&x, &rows, 1, 0), vec![1.0, 20.0, 3.0, 40.0]);
        let blocks = Tensor::from_f64(TensorType::new(vec![1, 2], DType::F32), &[1.0, 10.0]);
        assert_eq!(dequantize(&x, &blocks, 0, 2), vec![1.0, 20.0, 3.0, 40.0]);
    }
}
