//! GEMM right-hand operands that may be stored in reduced precision.

use half::{bf16, f16};

use super::{KERNEL, MatLayout};
use crate::KernelError;
use crate::quant::convert::Cvt;
use crate::quant::{QuantInt4, QuantInt4Ref, QuantInt8, QuantInt8Ref, QuantRef};
use crate::simd::Isa;

/// The `B` operand of a GEMM: `f32`, or weights stored as IEEE half (`f16`),
/// bfloat16 (`bf16`), or quantized int8/int4 ([`crate::quant`]). Reduced-precision
/// weights are converted to `f32` while the kernel packs them into its
/// micro-panels (or, for `m == 1`, while it streams them), so they stay stored
/// at their size; the product is then computed in `f32`.
///
/// Elements are numbered as a flat slice of [`WeightRef::len`] values, which a
/// [`MatLayout`] indexes. For the quantized variants that slice is the stored
/// `k × n` matrix in row-major order, and a GEMM accepts only layouts that
/// read whole stored rows left to right (see [`super::gemm()`]).
#[derive(Clone, Copy, Debug)]
pub enum WeightRef<'a> {
    /// Single precision.
    F32(&'a [f32]),
    /// IEEE 754 half precision.
    F16(&'a [f16]),
    /// bfloat16.
    BF16(&'a [bf16]),
    /// int8 with one scale per column ([`QuantInt8`]).
    Int8(QuantInt8Ref<'a>),
    /// int4 with one scale per group of rows and column ([`QuantInt4`]).
    Int4(QuantInt4Ref<'a>),
}

impl<'a> From<&'a QuantInt8> for WeightRef<'a> {
    fn from(q: &'a QuantInt8) -> Self {
        WeightRef::Int8(q.view())
    }
}

impl<'a> From<&'a QuantInt4> for WeightRef<'a> {
    fn from(q: &'a QuantInt4) -> Self {
        WeightRef::Int4(q.view())
    }
}

impl<'a> WeightRef<'a> {
    /// Number of elements (for the quantized variants, `k · n` values).
    pub fn len(&self) -> usize {
        match self {
            WeightRef::F32(s) => s.len(),
            WeightRef::F16(s) => s.len(),
            WeightRef::BF16(s) => s.len(),
            WeightRef::Int8(q) => q.k() * q.n(),
            WeightRef::Int4(q) => q.k() * q.n(),
        }
    }

    /// The quantized matrix, for the quantized variants.
    pub(crate) fn quant(&self) -> Option<QuantRef<'a>> {
        match *self {
            WeightRef::Int8(q) => Some(QuantRef::Int8(q)),
            WeightRef::Int4(q) => Some(QuantRef::Int4(q)),
            _ => None,
        }
    }

    /// Whether no elements are stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Element `i` as `f32`. The caller has validated `i < len()`.
    #[inline(always)]
    pub(crate) fn get(&self, i: usize) -> f32 {
        match self {
            WeightRef::F32(s) => s[i],
            WeightRef::F16(s) => s[i].to_f32(),
            WeightRef::BF16(s) => s[i].to_f32(),
            WeightRef::Int8(q) => q.value(i / q.n(), i % q.n()),
            WeightRef::Int4(q) => q.value(i / q.n(), i % q.n()),
        }
    }

    /// Converts the contiguous run `start..start + dst.len()` into `dst`.
    #[inline(always)]
    pub(crate) fn convert_run(&self, start: usize, dst: &mut [f32]) {
        let end = start + dst.len();
        match self {
            WeightRef::F32(s) => dst.copy_from_slice(&s[start..end]),
            WeightRef::F16(s) => f16_to_f32(&s[start..end], dst),
            WeightRef::BF16(s) => {
                for (d, x) in dst.iter_mut().zip(&s[start..end]) {
                    *d = f32::from_bits((x.to_bits() as u32) << 16);
                }
            }
            WeightRef::Int8(q) => QuantRef::Int8(*q).dequant_flat(start, dst, Cvt::for_isa(Isa::detect())),
            WeightRef::Int4(q) => QuantRef::Int4(*q).dequant_flat(start, dst, Cvt::for_isa(Isa::detect())),
        }
    }

    /// Converts the strided run `start, start + stride, ...` (`dst.len()` elements) into `dst`.
    #[inline(always)]
    pub(crate) fn convert_strided(&self, start: usize, stride: usize, dst: &mut [f32]) {
        if stride == 1 || dst.len() <= 1 {
            return self.convert_run(start, &mut dst[..]);
        }
        for (i, d) in dst.iter_mut().enumerate() {
            *d = self.get(start + i * stride);
        }
    }
}

/// Checks that a quantized `B` whose stored matrix has `nq` columns can be read
/// in `layout` for a `batch × k × n` GEMM operand: each of its rows must be a
/// run of `n` columns of one stored row (unit column stride; row and batch
/// strides whole stored rows). Strides of dimensions of size 1 are never
/// applied and are not checked. `layout` has passed the span check.
pub(crate) fn check_quant_layout(nq: usize, layout: &MatLayout, batch: usize, k: usize, n: usize) -> Result<(), KernelError> {
    if batch == 0 || k == 0 || n == 0 {
        return Ok(());
    }
    let fail = |what: String| {
        Err(KernelError::Shape {
            kernel: KERNEL,
            what: format!("quantized B (stored rows of {nq}) must be row-major: {what}"),
        })
    };
    // nq > 0: the span check found at least one element in k·nq.
    if n > 1 && layout.col_stride != 1 {
        return fail(format!("column stride {} is not 1", layout.col_stride));
    }
    if k > 1 && !layout.row_stride.is_multiple_of(nq) {
        return fail(format!("row stride {} is not a multiple of {nq}", layout.row_stride));
    }
    if batch > 1 && !layout.batch_stride.is_multiple_of(nq) {
        return fail(format!("batch stride {} is not a multiple of {nq}", layout.batch_stride));
    }
    let col = layout.offset % nq;
    if col + n > nq {
        return fail(format!("columns {col}..{} run past the end of a stored row", col + n));
    }
    Ok(())
}

/// Where a block of a quantized `B` starts in its stored matrix: for the flat
/// element offset `off` of the block's `(0, 0)` and the layout's row stride,
/// `(row, column, stored rows per step of k)`. The layout has passed
/// [`check_quant_layout`].
pub(crate) fn quant_origin(nq: usize, off: usize, row_stride: usize, k: usize) -> (usize, usize, usize) {
    let step = if k > 1 { row_stride / nq } else { 0 };
    (off / nq, off % nq, step)
}

/// Converts `src` into `dst` (same length), with F16C when the CPU has it.
#[inline]
pub(crate) fn f16_to_f32(src: &[f16], dst: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("f16c") && std::arch::is_x86_feature_detected!("avx") {
            // SAFETY: the CPU supports the features the function is compiled with.
            return unsafe { f16_to_f32_f16c(src, dst) };
        }
    }
    for (d, x) in dst.iter_mut().zip(src) {
        *d = x.to_f32();
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx,f16c")]
unsafe fn f16_to_f32_f16c(src: &[f16], dst: &mut [f32]) {
    use std::arch::x86_64::{__m128i, _mm_loadu_si128, _mm256_cvtph_ps, _mm256_storeu_ps};
    let n = src.len().min(dst.len());
    let mut i = 0;
    while i + 8 <= n {
        // SAFETY: i + 8 <= n, so 8 halves are readable and 8 floats writable; unaligned ops.
        unsafe {
            let h = _mm_loadu_si128(src.as_ptr().add(i) as *const __m128i);
            _mm256_storeu_ps(dst.as_mut_ptr().add(i), _mm256_cvtph_ps(h));
        }
        i += 8;
    }
    for j in i..n {
        dst[j] = src[j].to_f32();
    }
}
