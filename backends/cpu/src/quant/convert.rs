//! Dequantization of contiguous runs of a row: `dst[t] = q[t] · scales[t]`,
//! with AVX2 when the caller's instruction set allows it and the CPU has it
//! (detected at run time, as [`crate::gemm`]'s F16C conversion is), else
//! scalar. Both give bit-identical results (one `f32` multiply per element).

use crate::simd::Isa;

/// Which conversion code runs: the AVX2 one only when the CPU supports it
/// (the only way to get `Cvt(true)` is [`Cvt::for_isa`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Cvt(bool);

impl Cvt {
    /// AVX2 conversion when `isa` is not [`Isa::Scalar`] and the CPU has AVX2
    /// and FMA; scalar otherwise (so the scalar ISA also tests the fallback).
    pub(crate) fn for_isa(isa: Isa) -> Cvt {
        Cvt(isa != Isa::Scalar && Isa::Avx2.is_supported())
    }

    /// Whether AVX2 and FMA may be used.
    pub(crate) fn avx2(self) -> bool {
        self.0
    }
}

/// The value of the 4-bit element at nibble position `c` of `bytes` (low
/// nibble first, stored as `q + 8`).
#[inline(always)]
pub(crate) fn nibble(bytes: &[u8], c: usize) -> i32 {
    let b = bytes[c / 2];
    (if c.is_multiple_of(2) { b & 0x0F } else { b >> 4 }) as i32 - 8
}

/// `dst[t] = src[t] · scales[t]` for `t < dst.len()`.
///
/// # Panics
/// If `src` or `scales` is shorter than `dst` (an internal invariant).
#[inline]
pub(crate) fn i8_run(src: &[i8], scales: &[f32], dst: &mut [f32], cvt: Cvt) {
    let n = dst.len();
    let (src, scales) = (&src[..n], &scales[..n]);
    #[cfg(target_arch = "x86_64")]
    if cvt.avx2() {
        // SAFETY: `Cvt(true)` is only made when the CPU has AVX2; lengths are equal.
        return unsafe { i8_run_avx2(src, scales, dst) };
    }
    let _ = cvt;
    for ((d, &q), &s) in dst.iter_mut().zip(src).zip(scales) {
        *d = q as f32 * s;
    }
}

/// `dst[t] = value(col + t) · scales[t]` for `t < dst.len()`, where `value(c)`
/// is the 4-bit element at nibble position `c` of `bytes` (see [`nibble`]).
///
/// # Panics
/// If `bytes` holds fewer than `col + dst.len()` nibbles or `scales` is
/// shorter than `dst` (an internal invariant).
#[inline]
pub(crate) fn i4_run(bytes: &[u8], col: usize, scales: &[f32], dst: &mut [f32], cvt: Cvt) {
    let n = dst.len();
    if n == 0 {
        return;
    }
    let scales = &scales[..n];
    let bytes = &bytes[..(col + n).div_ceil(2)];
    let mut t = 0;
    if col % 2 == 1 {
        dst[0] = nibble(bytes, col) as f32 * scales[0];
        t = 1;
    }
    let even = &bytes[(col + t) / 2..];
    #[cfg(target_arch = "x86_64")]
    if cvt.avx2() {
        // SAFETY: `Cvt(true)` is only made when the CPU has AVX2; `even` holds
        // the n - t nibbles from position 0 and `scales`, `dst` n - t values past t.
        return unsafe { i4_run_avx2(even, &scales[t..], &mut dst[t..]) };
    }
    let _ = cvt;
    for (c, (d, &s)) in dst[t..].iter_mut().zip(&scales[t..]).enumerate() {
        *d = nibble(even, c) as f32 * s;
    }
}

/// [`i8_run`] with AVX2: 8 values per step (`vpmovsxbd`, `vcvtdq2ps`, multiply).
///
/// # Safety
/// AVX2 is available; `src`, `scales` and `dst` have the same length.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn i8_run_avx2(src: &[i8], scales: &[f32], dst: &mut [f32]) {
    use std::arch::x86_64::*;
    let n = dst.len();
    assert!(src.len() == n && scales.len() == n);
    let mut i = 0;
    while i + 8 <= n {
        // SAFETY: i + 8 <= n: 8 bytes, 8 scales readable and 8 floats writable.
        unsafe {
            let q = _mm_loadl_epi64(src.as_ptr().add(i) as *const __m128i);
            let f = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q));
            let s = _mm256_loadu_ps(scales.as_ptr().add(i));
            _mm256_storeu_ps(dst.as_mut_ptr().add(i), _mm256_mul_ps(f, s));
        }
        i += 8;
    }
    for j in i..n {
        dst[j] = src[j] as f32 * scales[j];
    }
}

/// Decodes 16 nibbles (8 bytes, low nibble first, stored as `q + 8`) into 16
/// signed bytes `q` in order.
///
/// # Safety
/// Inlined only into functions with AVX2 enabled; `p` points at 8 readable bytes.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub(crate) unsafe fn decode16(p: *const u8) -> std::arch::x86_64::__m128i {
    use std::arch::x86_64::*;
    // SAFETY: the caller guarantees 8 readable bytes and SSE2 (implied by AVX2).
    unsafe {
        let b = _mm_loadl_epi64(p as *const __m128i);
        let mask = _mm_set1_epi8(0x0F);
        let lo = _mm_and_si128(b, mask);
        let hi = _mm_and_si128(_mm_srli_epi16::<4>(b), mask);
        _mm_sub_epi8(_mm_unpacklo_epi8(lo, hi), _mm_set1_epi8(8))
    }
}

/// [`i4_run`] from an even nibble position with AVX2: 16 values per step.
///
/// # Safety
/// AVX2 is available; `bytes` holds at least `dst.len()` nibbles, `scales` and
/// `dst` have the same length.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn i4_run_avx2(bytes: &[u8], scales: &[f32], dst: &mut [f32]) {
    use std::arch::x86_64::*;
    let n = dst.len();
    assert!(bytes.len() * 2 >= n && scales.len() == n);
    let mut i = 0;
    while i + 16 <= n {
        // SAFETY: i + 16 <= n ≤ 2·bytes.len(), so bytes i/2..i/2 + 8 are readable;
        // 16 scales readable and 16 floats writable from i.
        unsafe {
            let q = decode16(bytes.as_ptr().add(i / 2));
            let f0 = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q));
            let f1 = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128::<8>(q)));
            let (s, d) = (scales.as_ptr().add(i), dst.as_mut_ptr().add(i));
            _mm256_storeu_ps(d, _mm256_mul_ps(f0, _mm256_loadu_ps(s)));
            _mm256_storeu_ps(d.add(8), _mm256_mul_ps(f1, _mm256_loadu_ps(s.add(8))));
        }
        i += 16;
    }
    for c in i..n {
        dst[c] = nibble(bytes, c) as f32 * scales[c];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vector_and_scalar_runs_agree_bit_for_bit() {
        let src: Vec<i8> = (0..77).map(|i| ((i * 37) % 255 - 127) as i8).collect();
        let bytes: Vec<u8> = (0..40).map(|i| (i * 73 % 256) as u8).collect();
        let scales: Vec<f32> = (0..77).map(|i| 0.01 * (i as f32 + 1.0)).collect();
        for isa in Isa::available() {
            for len in [0, 1, 7, 8, 9, 16, 17, 33, 70] {
                for col in [0, 1, 2, 5] {
                    let (mut v, mut s) = (vec![0.0; len], vec![0.0; len]);
                    i8_run(&src[col..], &scales, &mut v, Cvt::for_isa(isa));
                    i8_run(&src[col..], &scales, &mut s, Cvt(false));
                    assert_eq!(v, s, "i8 {isa:?} len {len} col {col}");
                    i4_run(&bytes, col, &scales, &mut v, Cvt::for_isa(isa));
                    i4_run(&bytes, col, &scales, &mut s, Cvt(false));
                    assert_eq!(v, s, "i4 {isa:?} len {len} col {col}");
                    for (t, x) in s.iter().enumerate() {
                        assert_eq!(*x, nibble(&bytes, col + t) as f32 * scales[t]);
                    }
                }
            }
        }
    }
}
