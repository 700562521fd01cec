//! AVX2 + FMA, 8 lanes.
//!
//! Every method calls intrinsics that need `avx2`/`fma`; the token [`Avx2`] can
//! only be built by [`Avx2::new`], which checks that the CPU has both, so each
//! `unsafe` block below relies on that one fact.

use std::arch::x86_64::*;

use super::{Isa, Simd};

/// AVX2 + FMA token (8 lanes). Construct with [`Avx2::new`].
#[derive(Debug, Clone, Copy)]
pub struct Avx2(());

impl Avx2 {
    /// The token, if this CPU has AVX2 and FMA.
    #[inline]
    pub fn new() -> Option<Self> {
        (is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")).then_some(Avx2(()))
    }
}

/// `MASK[8 - n..][..8]` has `n` leading all-ones lanes.
static MASK: [i32; 16] = [-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0];

#[inline(always)]
fn tail_mask(n: usize) -> __m256i {
    let n = n.min(8);
    let m = &MASK[8 - n..16 - n];
    // SAFETY: `m` holds 8 i32s (32 bytes); the unaligned load reads exactly those.
    // The token exists, so AVX is available.
    unsafe { _mm256_loadu_si256(m.as_ptr().cast()) }
}

impl Simd for Avx2 {
    type V = __m256;
    type M = __m256;
    const LANES: usize = 8;
    const ISA: Isa = Isa::Avx2;

    #[inline(always)]
    fn splat(self, x: f32) -> __m256 {
        // SAFETY: see the module docs (the token proves AVX2 + FMA).
        unsafe { _mm256_set1_ps(x) }
    }
    #[inline(always)]
    fn load(self, src: &[f32]) -> __m256 {
        let src = &src[..8];
        // SAFETY: `src` has 8 elements; unaligned load; features per module docs.
        unsafe { _mm256_loadu_ps(src.as_ptr()) }
    }
    #[inline(always)]
    fn load_partial(self, src: &[f32]) -> __m256 {
        // SAFETY: the masked load touches only the first `min(len, 8)` elements, all
        // inside `src`; masked-off lanes never fault. Features per module docs.
        unsafe { _mm256_maskload_ps(src.as_ptr(), tail_mask(src.len())) }
    }
    #[inline(always)]
    fn load_even(self, src: &[f32]) -> __m256 {
        let lo = self.load_partial(src);
        let hi = self.load_partial(src.get(8..).unwrap_or(&[]));
        // SAFETY: register-only shuffles; features per module docs.
        unsafe {
            // [lo0 lo2 hi0 hi2 | lo4 lo6 hi4 hi6], then 64-bit lanes reordered 0, 2, 1, 3.
            let mixed = _mm256_shuffle_ps::<0b10_00_10_00>(lo, hi);
            _mm256_castpd_ps(_mm256_permute4x64_pd::<0b11_01_10_00>(_mm256_castps_pd(mixed)))
        }
    }
    #[inline(always)]
    fn store(self, v: __m256, dst: &mut [f32]) {
        let dst = &mut dst[..8];
        // SAFETY: `dst` has 8 elements; features per module docs.
        unsafe { _mm256_storeu_ps(dst.as_mut_ptr(), v) }
    }
    #[inline(always)]
    fn store_partial(self, v: __m256, dst: &mut [f32]) {
        // SAFETY: the masked store writes only the first `min(len, 8)` elements.
        unsafe { _mm256_maskstore_ps(dst.as_mut_ptr(), tail_mask(dst.len()), v) }
    }
    #[inline(always)]
    fn add(self, a: __m256, b: __m256) -> __m256 {
        // SAFETY: features per module docs.
        unsafe { _mm256_add_ps(a, b) }
    }
    #[inline(always)]
    fn sub(self, a: __m256, b: __m256) -> __m256 {
        // SAFETY: features per module docs.
        unsafe { _mm256_sub_ps(a, b) }
    }
    #[inline(always)]
    fn mul(self, a: __m256, b: __m256) -> __m256 {
        // SAFETY: features per module docs.
        unsafe { _mm256_mul_ps(a, b) }
    }
    #[inline(always)]
    fn div(self, a: __m256, b: __m256) -> __m256 {
        // SAFETY: features per module docs.
        unsafe { _mm256_div_ps(a, b) }
    }
    #[inline(always)]
    fn mul_add(self, a: __m256, b: __m256, c: __m256) -> __m256 {
        // SAFETY: features per module docs.
        unsafe { _mm256_fmadd_ps(a, b, c) }
    }
    #[inline(always)]
    fn max(self, a: __m256, b: __m256) -> __m256 {
        // `maxps` returns its second operand when either is NaN; patch lanes where
        // `b` is NaN to return `a` (f32::max's rule).
        // SAFETY: features per module docs.
        unsafe { _mm256_blendv_ps(_mm256_max_ps(a, b), a, _mm256_cmp_ps::<_CMP_UNORD_Q>(b, b)) }
    }
    #[inline(always)]
    fn min(self, a: __m256, b: __m256) -> __m256 {
        // SAFETY: features per module docs.
        unsafe { _mm256_blendv_ps(_mm256_min_ps(a, b), a, _mm256_cmp_ps::<_CMP_UNORD_Q>(b, b)) }
    }
    #[inline(always)]
    fn abs(self, a: __m256) -> __m256 {
        // SAFETY: features per module docs.
        unsafe { _mm256_andnot_ps(_mm256_set1_ps(-0.0), a) }
    }
    #[inline(always)]
    fn neg(self, a: __m256) -> __m256 {
        // SAFETY: features per module docs.
        unsafe { _mm256_xor_ps(_mm256_set1_ps(-0.0), a) }
    }
    #[inline(always)]
    fn sqrt(self, a: __m256) -> __m256 {
        // SAFETY: features per module docs.
        unsafe { _mm256_sqrt_ps(a) }
    }
    #[inline(always)]
    fn round(self, a: __m256) -> __m256 {
        // SAFETY: features per module docs.
        unsafe { _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(a) }
    }
    #[inline(always)]
    fn round_bf16(self, x: __m256) -> __m256 {
        // SAFETY: features per module docs.
        unsafe {
            let u = _mm256_castps_si256(x);
            let hi = _mm256_set1_epi32(0xFFFF_0000u32 as i32);
            let odd = _mm256_and_si256(_mm256_srli_epi32::<16>(u), _mm256_set1_epi32(1));
            let r = _mm256_add_epi32(_mm256_add_epi32(u, _mm256_set1_epi32(0x7FFF)), odd);
            let quiet = _mm256_or_si256(u, _mm256_set1_epi32(0x0040_0000));
            let nan = _mm256_castps_si256(_mm256_cmp_ps::<_CMP_UNORD_Q>(x, x));
            _mm256_castsi256_ps(_mm256_and_si256(_mm256_blendv_epi8(r, quiet, nan), hi))
        }
    }
    #[inline(always)]
    fn copysign(self, mag: __m256, sign: __m256) -> __m256 {
        // SAFETY: features per module docs.
        unsafe {
            let s = _mm256_set1_ps(-0.0);
            _mm256_or_ps(_mm256_andnot_ps(s, mag), _mm256_and_ps(s, sign))
        }
    }
    #[inline(always)]
    fn exp2i(self, n: __m256) -> __m256 {
        // SAFETY: features per module docs.
        unsafe {
            let i = _mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127));
            _mm256_castsi256_ps(_mm256_slli_epi32::<23>(i))
        }
    }
    #[inline(always)]
    fn split_exp(self, x: __m256) -> (__m256, __m256) {
        // SAFETY: features per module docs.
        unsafe {
            let bits = _mm256_castps_si256(x);
            let e = _mm256_sub_epi32(_mm256_srli_epi32::<23>(bits), _mm256_set1_epi32(127));
            let m = _mm256_or_si256(
                _mm256_and_si256(bits, _mm256_set1_epi32(0x007f_ffff)),
                _mm256_set1_epi32(0x3f80_0000),
            );
            (_mm256_castsi256_ps(m), _mm256_cvtepi32_ps(e))
        }
    }
    #[inline(always)]
    fn lt(self, a: __m256, b: __m256) -> __m256 {
        // SAFETY: features per module docs.
        unsafe { _mm256_cmp_ps::<_CMP_LT_OQ>(a, b) }
    }
    #[inline(always)]
    fn le(self, a: __m256, b: __m256) -> __m256 {
        // SAFETY: features per module docs.
        unsafe { _mm256_cmp_ps::<_CMP_LE_OQ>(a, b) }
    }
    #[inline(always)]
    fn eq(self, a: __m256, b: __m256) -> __m256 {
        // SAFETY: features per module docs.
        unsafe { _mm256_cmp_ps::<_CMP_EQ_OQ>(a, b) }
    }
    #[inline(always)]
    fn is_nan(self, a: __m256) -> __m256 {
        // SAFETY: features per module docs.
        unsafe { _mm256_cmp_ps::<_CMP_UNORD_Q>(a, a) }
    }
    #[inline(always)]
    fn select(self, m: __m256, t: __m256, f: __m256) -> __m256 {
        // SAFETY: features per module docs.
        unsafe { _mm256_blendv_ps(f, t, m) }
    }
    #[inline(always)]
    fn reduce_sum(self, v: __m256) -> f32 {
        // SAFETY: features per module docs.
        unsafe {
            let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
            let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
            let s = _mm_add_ss(s, _mm_shuffle_ps::<0b01>(s, s));
            _mm_cvtss_f32(s)
        }
    }
    #[inline(always)]
    fn reduce_max(self, v: __m256) -> f32 {
        let mut buf = [0.0f32; 8];
        self.store(v, &mut buf);
        buf.iter().copied().fold(f32::NAN, f32::max)
    }
}
