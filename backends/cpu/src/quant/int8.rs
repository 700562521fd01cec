//! int8, symmetric, one scale per output column.

use super::convert::{Cvt, i8_run};
use super::{WeightError, check_len, check_weights, checked_mul, quantize_value};
use crate::KernelError;

/// A `k × n` weight matrix `B` stored as int8 with one `f32` scale per column:
/// `B̂[p, j] = data[p·n + j] as f32 · scales[j]` (`data` row-major, `k·n`
/// values; `scales`, `n` values).
///
/// Made by [`quantize_int8`] (values in `[-127, 127]`) or [`QuantInt8::from_parts`]
/// (any `i8`, `-128` included). Lengths are consistent by construction.
#[derive(Clone, Debug, PartialEq)]
pub struct QuantInt8 {
    data: Vec<i8>,
    scales: Vec<f32>,
    k: usize,
    n: usize,
}

/// A borrowed [`QuantInt8`] (or int8 data and scales kept elsewhere, checked by
/// [`QuantInt8Ref::new`]); what [`crate::gemm::WeightRef::Int8`] holds.
#[derive(Clone, Copy, Debug)]
pub struct QuantInt8Ref<'a> {
    data: &'a [i8],
    scales: &'a [f32],
    k: usize,
    n: usize,
}

/// Quantizes the row-major `k × n` matrix `b` to int8, symmetric per column:
/// `scale_j = max_p |b[p, j]| / 127` and `q = round_ties_even(b / scale_j)`
/// clamped to `[-127, 127]` (the clamp only absorbs rounding of the quotient:
/// no value is saturated). A column of zeros gets scale 0 and all-zero values
/// (no NaN); so does a column whose maximum is so small (below `127·2⁻¹⁴⁹`)
/// that the scale underflows to 0. Deterministic.
///
/// # Errors
/// [`KernelError::BufferLength`] when `b.len() != k·n`, [`KernelError::Shape`]
/// when `k·n` overflows, [`KernelError::NonFinite`] for a NaN or infinite weight.
pub fn quantize_int8(b: &[f32], k: usize, n: usize) -> Result<QuantInt8, KernelError> {
    check_weights(b, k, n)?;
    let mut amax = vec![0.0f32; n];
    for row in b.chunks_exact(n.max(1)) {
        for (m, &w) in amax.iter_mut().zip(row) {
            *m = m.max(w.abs());
        }
    }
    let scales: Vec<f32> = amax.iter().map(|&m| m / 127.0).collect();
    let mut data = Vec::with_capacity(b.len());
    for row in b.chunks_exact(n.max(1)) {
        data.extend(row.iter().zip(&scales).map(|(&w, &s)| quantize_value(w, s, 127.0)));
    }
    Ok(QuantInt8 { data, scales, k, n })
}

impl QuantInt8 {
    /// Wraps stored int8 data (`k·n` values, row-major) and `n` column scales.
    ///
    /// # Errors
    /// As [`QuantInt8Ref::new`].
    pub fn from_parts(data: Vec<i8>, scales: Vec<f32>, k: usize, n: usize) -> Result<QuantInt8, KernelError> {
        QuantInt8Ref::new(&data, &scales, k, n)?;
        Ok(QuantInt8 { data, scales, k, n })
    }

    /// The borrowed form the GEMM takes.
    pub fn view(&self) -> QuantInt8Ref<'_> {
        QuantInt8Ref {
            data: &self.data,
            scales: &self.scales,
            k: self.k,
            n: self.n,
        }
    }

    /// The stored values, row-major `k × n`.
    pub fn data(&self) -> &[i8] {
        &self.data
    }

    /// The column scales (`n`).
    pub fn scales(&self) -> &[f32] {
        &self.scales
    }

    /// Rows (the reduction dimension).
    pub fn k(&self) -> usize {
        self.k
    }

    /// Columns (output channels).
    pub fn n(&self) -> usize {
        self.n
    }

    /// The stored values and scales.
    pub fn into_parts(self) -> (Vec<i8>, Vec<f32>) {
        (self.data, self.scales)
    }

    /// `B̂` as `f32`, row-major `k × n` (exactly the values the GEMM multiplies by).
    pub fn dequantize(&self) -> Vec<f32> {
        self.view().dequantize()
    }

    /// Bytes of storage: data plus scales (`k·n + 4·n`).
    pub fn weight_bytes(&self) -> usize {
        self.view().weight_bytes()
    }

    /// The error of `B̂` against `original` (row-major `k × n`).
    ///
    /// # Errors
    /// [`KernelError::BufferLength`] when `original.len() != k·n`.
    pub fn error(&self, original: &[f32]) -> Result<WeightError, KernelError> {
        WeightError::between(original, &self.dequantize())
    }
}

impl<'a> QuantInt8Ref<'a> {
    /// Views int8 `data` (`k·n` values, row-major) with column `scales` (`n`).
    ///
    /// # Errors
    /// [`KernelError::Shape`] when `k·n` overflows, [`KernelError::BufferLength`]
    /// (operand `data` or `scales`) when a length does not match.
    pub fn new(data: &'a [i8], scales: &'a [f32], k: usize, n: usize) -> Result<QuantInt8Ref<'a>, KernelError> {
        check_len("data", checked_mul(k, n, "int8 data")?, data.len())?;
        check_len("scales", n, scales.len())?;
        Ok(QuantInt8Ref { data, scales, k, n })
    }

    /// The stored values, row-major `k × n`.
    pub fn data(&self) -> &'a [i8] {
        self.data
    }

    /// The column scales (`n`).
    pub fn scales(&self) -> &'a [f32] {
        self.scales
    }

    /// Rows (the reduction dimension).
    pub fn k(&self) -> usize {
        self.k
    }

    /// Columns (output channels).
    pub fn n(&self) -> usize {
        self.n
    }

    /// `B̂` as `f32`, row-major `k × n`.
    pub fn dequantize(&self) -> Vec<f32> {
        let mut out = vec![0.0f32; self.data.len()];
        for (row, dst) in out.chunks_exact_mut(self.n.max(1)).enumerate() {
            self.dequant_run(row, 0, dst, Cvt::for_isa(crate::simd::Isa::Scalar));
        }
        out
    }

    /// Bytes of storage: data plus scales (`k·n + 4·n`).
    pub fn weight_bytes(&self) -> usize {
        self.data.len() + 4 * self.scales.len()
    }

    /// Dequantized element `(p, j)`, `p < k`, `j < n`.
    #[inline]
    pub(crate) fn value(&self, p: usize, j: usize) -> f32 {
        self.data[p * self.n + j] as f32 * self.scales[j]
    }

    /// Dequantizes `(row, col..col + dst.len())` into `dst` (inside the matrix).
    #[inline]
    pub(crate) fn dequant_run(&self, row: usize, col: usize, dst: &mut [f32], cvt: Cvt) {
        i8_run(&self.data[row * self.n + col..], &self.scales[col..], dst, cvt);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_get_their_own_scale_and_zero_columns_stay_zero() {
        // 2 × 3: column 0 max 127, column 1 all zero, column 2 max 0.5.
        let b = [127.0, 0.0, -0.5, -63.5, 0.0, 0.25];
        let q = quantize_int8(&b, 2, 3).unwrap();
        assert_eq!(q.scales(), &[1.0, 0.0, 0.5 / 127.0]);
        assert_eq!(q.data(), &[127, 0, -127, -64, 0, 64]);
        let d = q.dequantize();
        assert!(d.iter().all(|x| x.is_finite()));
        assert_eq!(d[1], 0.0);
        assert_eq!(q.weight_bytes(), 6 + 12);
    }

    #[test]
    fn bad_inputs_are_errors() {
        assert!(matches!(quantize_int8(&[1.0; 5], 2, 3), Err(KernelError::BufferLength { .. })));
        assert!(matches!(
            quantize_int8(&[1.0, f32::NAN], 1, 2),
            Err(KernelError::NonFinite { position: 1, .. })
        ));
        assert!(matches!(quantize_int8(&[], usize::MAX, 2), Err(KernelError::Shape { .. })));
        assert!(matches!(
            QuantInt8::from_parts(vec![0; 6], vec![1.0; 2], 2, 3),
            Err(KernelError::BufferLength { operand: "scales", .. })
        ));
        let q = quantize_int8(&[], 0, 4).unwrap();
        assert_eq!((q.k(), q.n(), q.dequantize().len()), (0, 4, 0));
    }
}
