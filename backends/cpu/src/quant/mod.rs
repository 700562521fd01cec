//! Quantized storage for constant GEMM weights, and the quantizers that make it.
//!
//! A weight matrix `B` is `k × n`, row-major: `k` is the reduction dimension
//! (rows), `n` the output channels (columns), as the `B` operand of
//! [`crate::gemm::gemm`]. Two formats are provided, both symmetric (no zero
//! point), dequantized as `B̂[p, j] = q[p, j] · scale`:
//!
//! * [`QuantInt8`]: one `i8` per element in `[-127, 127]`, one `f32` scale per
//!   column (`scale_j = max_p |B[p, j]| / 127`). 1 byte per weight plus `4·n`.
//! * [`QuantInt4`]: one 4-bit value per element in `[-7, 7]`, two per byte, one
//!   `f32` scale per group of `group` consecutive rows and column
//!   (`scale = max |B[p, j]| / 7` over the group). ½ byte per weight plus
//!   `4·⌈k / group⌉·n`.
//!
//! The quantizers ([`quantize_int8`], [`quantize_int4`]) are deterministic:
//! the same input gives the same bytes on every machine (plain `f32` division
//! and [`f32::round_ties_even`], no SIMD, no threads). Each element satisfies
//! `|B − B̂| ≤ scale / 2` (up to one `f32` rounding of the quotient and of the
//! product), because the scale is chosen so that no value is clamped.
//!
//! The GEMM takes the formats borrowed, as [`crate::gemm::WeightRef::Int8`] and
//! [`crate::gemm::WeightRef::Int4`] (from [`QuantInt8::view`] or
//! [`QuantInt8Ref::new`] over raw parts), and dequantizes while packing `B` or,
//! for `m == 1`, while streaming it (see [`crate::gemm`]). [`WeightError`]
//! reports how far a quantized matrix is from the original.

pub(crate) mod convert;
mod int4;
mod int8;

pub use int4::{QuantInt4, QuantInt4Ref, quantize_int4};
pub use int8::{QuantInt8, QuantInt8Ref, quantize_int8};

use crate::KernelError;

const KERNEL: &str = "quant";

/// How far an approximation `Ŵ` of a weight matrix `W` is from it, computed in
/// `f64` over all elements.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct WeightError {
    /// Frobenius norm of the difference, `‖W − Ŵ‖₂ = sqrt(Σ (w − ŵ)²)`.
    pub abs: f64,
    /// `‖W − Ŵ‖₂ / ‖W‖₂`; 0 when `W` is all zeros and `Ŵ` equals it, infinite
    /// when `W` is all zeros and `Ŵ` is not.
    pub rel: f64,
}

impl WeightError {
    /// The error of `approx` against `original` (same length, same element order).
    ///
    /// # Errors
    /// [`KernelError::BufferLength`] when the lengths differ.
    pub fn between(original: &[f32], approx: &[f32]) -> Result<WeightError, KernelError> {
        check_len("approx", original.len(), approx.len())?;
        let (mut diff, mut norm) = (0.0f64, 0.0f64);
        for (&w, &v) in original.iter().zip(approx) {
            let d = w as f64 - v as f64;
            diff += d * d;
            norm += w as f64 * w as f64;
        }
        let abs = diff.sqrt();
        let rel = if abs == 0.0 { 0.0 } else { abs / norm.sqrt() };
        Ok(WeightError { abs, rel })
    }
}

/// Errors unless `found == expected`.
fn check_len(operand: &'static str, expected: usize, found: usize) -> Result<(), KernelError> {
    KernelError::check_len(KERNEL, operand, expected, found)
}

/// `a · b`, or a [`KernelError::Shape`] naming `what` on overflow.
fn checked_mul(a: usize, b: usize, what: &str) -> Result<usize, KernelError> {
    a.checked_mul(b).ok_or_else(|| KernelError::Shape {
        kernel: KERNEL,
        what: format!("{what}: {a} × {b} overflows"),
    })
}

/// Checks that `b` holds `k · n` finite values.
fn check_weights(b: &[f32], k: usize, n: usize) -> Result<(), KernelError> {
    check_len("weights", checked_mul(k, n, "weights")?, b.len())?;
    match b.iter().position(|w| !w.is_finite()) {
        Some(position) => Err(KernelError::NonFinite {
            kernel: KERNEL,
            operand: "weights",
            position,
        }),
        None => Ok(()),
    }
}

/// `round_ties_even(w / scale)` clamped to `[-limit, limit]`; 0 when `scale` is 0.
#[inline]
fn quantize_value(w: f32, scale: f32, limit: f32) -> i8 {
    if scale == 0.0 {
        return 0;
    }
    (w / scale).round_ties_even().clamp(-limit, limit) as i8
}

/// A borrowed quantized matrix of either format (the GEMM's view of one).
#[derive(Clone, Copy, Debug)]
pub(crate) enum QuantRef<'a> {
    /// [`QuantInt8Ref`].
    Int8(QuantInt8Ref<'a>),
    /// [`QuantInt4Ref`].
    Int4(QuantInt4Ref<'a>),
}

impl QuantRef<'_> {
    /// Columns of the stored matrix.
    pub(crate) fn n(&self) -> usize {
        match self {
            QuantRef::Int8(q) => q.n(),
            QuantRef::Int4(q) => q.n(),
        }
    }

    /// Dequantizes elements `(row, col..col + dst.len())` into `dst`; the run
    /// lies inside the matrix.
    #[inline]
    pub(crate) fn dequant_run(&self, row: usize, col: usize, dst: &mut [f32], cvt: convert::Cvt) {
        match self {
            QuantRef::Int8(q) => q.dequant_run(row, col, dst, cvt),
            QuantRef::Int4(q) => q.dequant_run(row, col, dst, cvt),
        }
    }

    /// Dequantizes the flat (row-major) run `start..start + dst.len()` into
    /// `dst`; the run lies inside the matrix.
    pub(crate) fn dequant_flat(&self, start: usize, dst: &mut [f32], cvt: convert::Cvt) {
        let n = self.n();
        let mut done = 0;
        while done < dst.len() {
            let (row, col) = ((start + done) / n, (start + done) % n);
            let len = (n - col).min(dst.len() - done);
            self.dequant_run(row, col, &mut dst[done..done + len], cvt);
            done += len;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weight_error_of_known_vectors() {
        let e = WeightError::between(&[3.0, 4.0], &[3.0, 3.0]).unwrap();
        assert_eq!(e.abs, 1.0);
        assert_eq!(e.rel, 0.2);
        let z = WeightError::between(&[0.0; 3], &[0.0; 3]).unwrap();
        assert_eq!((z.abs, z.rel), (0.0, 0.0));
        assert!(WeightError::between(&[0.0], &[1.0]).unwrap().rel.is_infinite());
        assert!(matches!(WeightError::between(&[1.0], &[]), Err(KernelError::BufferLength { .. })));
    }

    #[test]
    fn quantize_value_rounds_ties_to_even_and_clamps() {
        assert_eq!(quantize_value(2.5, 1.0, 127.0), 2);
        assert_eq!(quantize_value(3.5, 1.0, 127.0), 4);
        assert_eq!(quantize_value(-2.5, 1.0, 127.0), -2);
        assert_eq!(quantize_value(9.0, 1.0, 7.0), 7);
        assert_eq!(quantize_value(-9.0, 1.0, 7.0), -7);
        assert_eq!(quantize_value(5.0, 0.0, 7.0), 0);
    }
}
