//! GEMM right-hand operands that may be stored in reduced precision.

use half::{bf16, f16};

/// The `B` operand of a GEMM: `f32`, or weights stored as IEEE half (`f16`) or
/// bfloat16 (`bf16`). Reduced-precision weights are converted to `f32` while the
/// kernel packs them into its micro-panels, so they stay stored at
/// half size; the product is then computed in `f32`.
#[derive(Clone, Copy, Debug)]
pub enum WeightRef<'a> {
    /// Single precision.
    F32(&'a [f32]),
    /// IEEE 754 half precision.
    F16(&'a [f16]),
    /// bfloat16.
    BF16(&'a [bf16]),
}

impl WeightRef<'_> {
    /// Number of stored elements.
    pub fn len(&self) -> usize {
        match self {
            WeightRef::F32(s) => s.len(),
            WeightRef::F16(s) => s.len(),
            WeightRef::BF16(s) => s.len(),
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
