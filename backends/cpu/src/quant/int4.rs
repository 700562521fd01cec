//! int4, symmetric, one scale per group of rows and column.

use super::convert::{Cvt, i4_run, nibble};
use super::{KERNEL, WeightError, check_len, check_weights, checked_mul, quantize_value};
use crate::KernelError;

/// A `k × n` weight matrix `B` stored as 4-bit integers with one `f32` scale
/// per group of `group` consecutive rows and column:
/// `B̂[p, j] = q[p, j] as f32 · scales[(p / group)·n + j]`.
///
/// * `data`: `k` rows of `⌈n / 2⌉` bytes (each row starts on a byte). Element
///   `(p, j)` is in byte `p·⌈n/2⌉ + j/2`: the **low nibble for even `j`, the
///   high nibble for odd `j`**, stored offset-binary as `q + 8` (so nibble 8 is
///   0, nibble 0 is −8). When `n` is odd, the unused high nibble ending each row
///   is written as 8 by the quantizer and ignored when reading.
/// * `scales`: `⌈k / group⌉` rows of `n` values; the last group may hold fewer
///   than `group` rows (`k` need not be a multiple of `group`).
///
/// [`quantize_int4`] uses `[-7, 7]`, not `[-8, 7]`: with `scale = max|w| / 7`
/// the grid is symmetric, the largest weight of either sign is exact, and
/// `|w − ŵ| ≤ scale / 2` holds for every element. With `[-8, 7]` and
/// `scale = max|w| / 8`, a positive maximum would clamp to `7·scale`, an error
/// of a whole `scale`. [`QuantInt4::from_parts`] accepts all 16 codes.
#[derive(Clone, Debug, PartialEq)]
pub struct QuantInt4 {
    data: Vec<u8>,
    scales: Vec<f32>,
    k: usize,
    n: usize,
    group: usize,
}

/// A borrowed [`QuantInt4`] (or int4 data and scales kept elsewhere, checked by
/// [`QuantInt4Ref::new`]); what [`crate::gemm::WeightRef::Int4`] holds.
#[derive(Clone, Copy, Debug)]
pub struct QuantInt4Ref<'a> {
    data: &'a [u8],
    scales: &'a [f32],
    k: usize,
    n: usize,
    group: usize,
}

/// Quantizes the row-major `k × n` matrix `b` to int4, symmetric per group of
/// `group` rows and column: `scale = max |b[p, j]| / 7` over the group's rows
/// `p`, and `q = round_ties_even(b / scale)` clamped to `[-7, 7]` (the clamp
/// only absorbs rounding of the quotient). A group of zeros gets scale 0 and
/// values 0 (no NaN). Deterministic. Any `group ≥ 1` works (32, 64 and 128 are
/// the usual ones); `k` need not be a multiple of it.
///
/// # Errors
/// [`KernelError::Shape`] when `group == 0` or a size overflows,
/// [`KernelError::BufferLength`] when `b.len() != k·n`,
/// [`KernelError::NonFinite`] for a NaN or infinite weight.
pub fn quantize_int4(b: &[f32], k: usize, n: usize, group: usize) -> Result<QuantInt4, KernelError> {
    check_group(group)?;
    check_weights(b, k, n)?;
    let rb = n.div_ceil(2);
    let groups = k.div_ceil(group);
    let mut scales = vec![0.0f32; checked_mul(groups, n, "int4 scales")?];
    let mut data = vec![0x88u8; checked_mul(k, rb, "int4 data")?];
    if n == 0 {
        return Ok(QuantInt4 { data, scales, k, n, group });
    }
    for (g, srow) in scales.chunks_exact_mut(n).enumerate() {
        let rows = &b[g * group * n..(((g + 1) * group).min(k)) * n];
        for row in rows.chunks_exact(n) {
            for (s, &w) in srow.iter_mut().zip(row) {
                *s = s.max(w.abs());
            }
        }
        for s in srow.iter_mut() {
            *s /= 7.0;
        }
    }
    for (p, (row, bytes)) in b.chunks_exact(n).zip(data.chunks_exact_mut(rb)).enumerate() {
        let srow = &scales[(p / group) * n..][..n];
        for (j, (&w, &s)) in row.iter().zip(srow).enumerate() {
            let code = (quantize_value(w, s, 7.0) + 8) as u8;
            let byte = &mut bytes[j / 2];
            *byte = if j.is_multiple_of(2) {
                (*byte & 0xF0) | code
            } else {
                (*byte & 0x0F) | (code << 4)
            };
        }
    }
    Ok(QuantInt4 { data, scales, k, n, group })
}

fn check_group(group: usize) -> Result<(), KernelError> {
    if group == 0 {
        return Err(KernelError::Shape {
            kernel: KERNEL,
            what: "int4 group size is 0".into(),
        });
    }
    Ok(())
}

impl QuantInt4 {
    /// Wraps stored int4 data and scales (layouts as in the type's docs).
    ///
    /// # Errors
    /// As [`QuantInt4Ref::new`].
    pub fn from_parts(data: Vec<u8>, scales: Vec<f32>, k: usize, n: usize, group: usize) -> Result<QuantInt4, KernelError> {
        QuantInt4Ref::new(&data, &scales, k, n, group)?;
        Ok(QuantInt4 { data, scales, k, n, group })
    }

    /// The borrowed form the GEMM takes.
    pub fn view(&self) -> QuantInt4Ref<'_> {
        QuantInt4Ref {
            data: &self.data,
            scales: &self.scales,
            k: self.k,
            n: self.n,
            group: self.group,
        }
    }

    /// The packed values: `k` rows of `⌈n / 2⌉` bytes.
    pub fn data(&self) -> &[u8] {
        &self.data
    }

    /// The scales: `⌈k / group⌉` rows of `n`.
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

    /// Rows per scale group.
    pub fn group(&self) -> usize {
        self.group
    }

    /// The packed values and scales.
    pub fn into_parts(self) -> (Vec<u8>, Vec<f32>) {
        (self.data, self.scales)
    }

    /// `B̂` as `f32`, row-major `k × n` (exactly the values the GEMM multiplies by).
    pub fn dequantize(&self) -> Vec<f32> {
        self.view().dequantize()
    }

    /// Bytes of storage: data plus scales (`k·⌈n/2⌉ + 4·⌈k/group⌉·n`).
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

impl<'a> QuantInt4Ref<'a> {
    /// Views packed int4 `data` (`k` rows of `⌈n / 2⌉` bytes) with `scales`
    /// (`⌈k / group⌉` rows of `n`); layouts as in [`QuantInt4`]'s docs.
    ///
    /// # Errors
    /// [`KernelError::Shape`] when `group == 0` or a size overflows,
    /// [`KernelError::BufferLength`] (operand `data` or `scales`) when a length
    /// does not match.
    pub fn new(data: &'a [u8], scales: &'a [f32], k: usize, n: usize, group: usize) -> Result<QuantInt4Ref<'a>, KernelError> {
        check_group(group)?;
        checked_mul(k, n, "int4 elements")?;
        check_len("data", checked_mul(k, n.div_ceil(2), "int4 data")?, data.len())?;
        check_len("scales", checked_mul(k.div_ceil(group), n, "int4 scales")?, scales.len())?;
        Ok(QuantInt4Ref { data, scales, k, n, group })
    }

    /// The packed values: `k` rows of `⌈n / 2⌉` bytes.
    pub fn data(&self) -> &'a [u8] {
        self.data
    }

    /// The scales: `⌈k / group⌉` rows of `n`.
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

    /// Rows per scale group.
    pub fn group(&self) -> usize {
        self.group
    }

    /// `B̂` as `f32`, row-major `k × n`.
    pub fn dequantize(&self) -> Vec<f32> {
        let mut out = vec![0.0f32; self.k * self.n];
        for (row, dst) in out.chunks_exact_mut(self.n.max(1)).enumerate() {
            self.dequant_run(row, 0, dst, Cvt::for_isa(crate::simd::Isa::Scalar));
        }
        out
    }

    /// Bytes of storage: data plus scales (`k·⌈n/2⌉ + 4·⌈k/group⌉·n`).
    pub fn weight_bytes(&self) -> usize {
        self.data.len() + 4 * self.scales.len()
    }

    /// Bytes per stored row (`⌈n / 2⌉`).
    #[inline]
    pub(crate) fn row_bytes(&self) -> usize {
        self.n.div_ceil(2)
    }

    /// The packed bytes of stored row `p`.
    #[inline]
    pub(crate) fn row(&self, p: usize) -> &'a [u8] {
        let rb = self.row_bytes();
        &self.data[p * rb..(p + 1) * rb]
    }

    /// The scales of the group holding row `p` (`n` values).
    #[inline]
    pub(crate) fn scale_row(&self, p: usize) -> &'a [f32] {
        &self.scales[(p / self.group) * self.n..][..self.n]
    }

    /// Dequantized element `(p, j)`, `p < k`, `j < n`.
    #[inline]
    pub(crate) fn value(&self, p: usize, j: usize) -> f32 {
        nibble(self.row(p), j) as f32 * self.scale_row(p)[j]
    }

    /// Dequantizes `(row, col..col + dst.len())` into `dst` (inside the matrix).
    #[inline]
    pub(crate) fn dequant_run(&self, row: usize, col: usize, dst: &mut [f32], cvt: Cvt) {
        i4_run(self.row(row), col, &self.scale_row(row)[col..], dst, cvt);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nibbles_are_low_first_offset_binary_and_rows_start_on_a_byte() {
        // 2 × 3, one group: column scales 7/7, 1/7·0 (zero), 3.5/7.
        let b = [7.0, 0.0, -3.5, -1.0, 0.0, 3.5];
        let q = quantize_int4(&b, 2, 3, 32).unwrap();
        assert_eq!(q.scales(), &[1.0, 0.0, 0.5]);
        // Row 0: codes 15, 8, 1 → bytes [0x8F, 0x81]; row 1: 7, 8, 15 → [0x87, 0x8F].
        assert_eq!(q.data(), &[0x8F, 0x81, 0x87, 0x8F]);
        assert_eq!(q.dequantize(), vec![7.0, 0.0, -3.5, -1.0, 0.0, 3.5]);
        assert_eq!(q.weight_bytes(), 4 + 12);
    }

    #[test]
    fn last_group_may_be_short() {
        let b: Vec<f32> = (0..5).map(|p| p as f32).collect();
        let q = quantize_int4(&b, 5, 1, 2).unwrap();
        assert_eq!(q.scales(), &[1.0 / 7.0, 3.0 / 7.0, 4.0 / 7.0]);
        assert!((q.dequantize()[4] - 4.0).abs() <= 1e-6);
    }

    #[test]
    fn bad_inputs_are_errors() {
        assert!(matches!(quantize_int4(&[1.0; 6], 2, 3, 0), Err(KernelError::Shape { .. })));
        assert!(matches!(quantize_int4(&[1.0; 5], 2, 3, 2), Err(KernelError::BufferLength { .. })));
        assert!(matches!(
            quantize_int4(&[f32::INFINITY], 1, 1, 1),
            Err(KernelError::NonFinite { position: 0, .. })
        ));
        assert!(matches!(
            QuantInt4::from_parts(vec![0; 3], vec![1.0; 3], 2, 3, 2),
            Err(KernelError::BufferLength { operand: "data", .. })
        ));
        assert!(matches!(
            QuantInt4::from_parts(vec![0; 4], vec![1.0; 3], 3, 3, 2),
            Err(KernelError::BufferLength { .. })
        ));
        assert!(matches!(
            QuantInt4Ref::new(&[], &[], usize::MAX, 3, 2),
            Err(KernelError::Shape { .. })
        ));
    }
}
