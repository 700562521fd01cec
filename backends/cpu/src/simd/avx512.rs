//! AVX-512 (F, BW, DQ, VL) with AVX2 and FMA, 16 lanes.
//!
//! Every method calls intrinsics that need those features; the token [`Avx512`]
//! can only be built by [`Avx512::new`], which checks that the CPU has all of them,
//! so each `unsafe` block below relies on that one fact.

use std::arch::x86_64::*;

use super::{Isa, Simd};

/// AVX-512 token (16 lanes). Construct with [`Avx512::new`].
#[derive(Debug, Clone, Copy)]
pub struct Avx512(());

impl Avx512 {
    /// The token, if this CPU has AVX-512 F/BW/DQ/VL, AVX2 and FMA.
    #[inline]
    pub fn new() -> Option<Self> {
        (is_x86_feature_detected!("avx512f")
            && is_x86_feature_detected!("avx512bw")
            && is_x86_feature_detected!("avx512dq")
            && is_x86_feature_detected!("avx512vl")
            && is_x86_feature_detected!("avx2")
            && is_x86_feature_detected!("fma"))
        .then_some(Avx512(()))
    }
}

#[inline(always)]
fn tail_mask(n: usize) -> __mmask16 {
    if n >= 16 { 0xffff } else { ((1u32 << n) - 1) as u16 }
}

impl Simd for Avx512 {
    type V = __m512;
    type M = __mmask16;
    const LANES: usize = 16;
    const ISA: Isa = Isa::Avx512;

    #[inline(always)]
    fn splat(self, x: f32) -> __m512 {
        // SAFETY: see the module docs (the token proves the features).
        unsafe { _mm512_set1_ps(x) }
    }
    #[inline(always)]
    fn load(self, src: &[f32]) -> __m512 {
        let src = &src[..16];
        // SAFETY: `src` has 16 elements; unaligned load; features per module docs.
        unsafe { _mm512_loadu_ps(src.as_ptr()) }
    }
    #[inline(always)]
    fn load_partial(self, src: &[f32]) -> __m512 {
        // SAFETY: the masked load touches only the first `min(len, 16)` elements,
        // all inside `src`; masked-off lanes never fault. Features per module docs.
        unsafe { _mm512_maskz_loadu_ps(tail_mask(src.len()), src.as_ptr()) }
    }
    #[inline(always)]
    fn load_even(self, src: &[f32]) -> __m512 {
        let (n, p) = (src.len(), src.as_ptr());
        // SAFETY: the masked loads touch only elements `..n` of `src` (the second
        // starts at 16 and is fully masked when n ≤ 16; masked-off lanes never
        // fault, and `wrapping_add` keeps the unused address computation defined).
        // Features per module docs.
        unsafe {
            let lo = _mm512_maskz_loadu_ps(tail_mask(n), p);
            let hi = _mm512_maskz_loadu_ps(tail_mask(n.saturating_sub(16)), p.wrapping_add(16));
            let even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
            _mm512_permutex2var_ps(lo, even, hi)
        }
    }
    #[inline(always)]
    fn store(self, v: __m512, dst: &mut [f32]) {
        let dst = &mut dst[..16];
        // SAFETY: `dst` has 16 elements; features per module docs.
        unsafe { _mm512_storeu_ps(dst.as_mut_ptr(), v) }
    }
    #[inline(always)]
    fn store_partial(self, v: __m512, dst: &mut [f32]) {
        // SAFETY: the masked store writes only the first `min(len, 16)` elements.
        unsafe { _mm512_mask_storeu_ps(dst.as_mut_ptr(), tail_mask(dst.len()), v) }
    }
    #[inline(always)]
    fn add(self, a: __m512, b: __m512) -> __m512 {
        // SAFETY: features per module docs.
        unsafe { _mm512_add_ps(a, b) }
    }
    #[inline(always)]
    fn sub(self, a: __m512, b: __m512) -> __m512 {
        // SAFETY: features per module docs.
        unsafe { _mm512_sub_ps(a, b) }
    }
    #[inline(always)]
    fn mul(self, a: __m512, b: __m512) -> __m512 {
        // SAFETY: features per module docs.
        unsafe { _mm512_mul_ps(a, b) }
    }
    #[inline(always)]
    fn div(self, a: __m512, b: __m512) -> __m512 {
        // SAFETY: features per module docs.
        unsafe { _mm512_div_ps(a, b) }
    }
    #[inline(always)]
    fn mul_add(self, a: __m512, b: __m512, c: __m512) -> __m512 {
        // SAFETY: features per module docs.
        unsafe { _mm512_fmadd_ps(a, b, c) }
    }
    #[inline(always)]
    fn max(self, a: __m512, b: __m512) -> __m512 {
        // `vmaxps` returns its second operand when either is NaN; lanes where `b` is
        // NaN take `a` instead (f32::max's rule).
        // SAFETY: features per module docs.
        unsafe { _mm512_mask_blend_ps(_mm512_cmp_ps_mask::<_CMP_UNORD_Q>(b, b), _mm512_max_ps(a, b), a) }
    }
    #[inline(always)]
    fn min(self, a: __m512, b: __m512) -> __m512 {
        // SAFETY: features per module docs.
        unsafe { _mm512_mask_blend_ps(_mm512_cmp_ps_mask::<_CMP_UNORD_Q>(b, b), _mm512_min_ps(a, b), a) }
    }
    #[inline(always)]
    fn abs(self, a: __m512) -> __m512 {
        // SAFETY: features per module docs.
        unsafe { _mm512_abs_ps(a) }
    }
    #[inline(always)]
    fn neg(self, a: __m512) -> __m512 {
        // SAFETY: features per module docs (avx512dq for the float xor).
        unsafe { _mm512_xor_ps(_mm512_set1_ps(-0.0), a) }
    }
    #[inline(always)]
    fn sqrt(self, a: __m512) -> __m512 {
        // SAFETY: features per module docs.
        unsafe { _mm512_sqrt_ps(a) }
    }
    #[inline(always)]
    fn round(self, a: __m512) -> __m512 {
        // SAFETY: features per module docs.
        unsafe { _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(a) }
    }
    #[inline(always)]
    fn round_bf16(self, x: __m512) -> __m512 {
        // SAFETY: features per module docs.
        unsafe {
            let u = _mm512_castps_si512(x);
            let hi = _mm512_set1_epi32(0xFFFF_0000u32 as i32);
            let odd = _mm512_and_si512(_mm512_srli_epi32::<16>(u), _mm512_set1_epi32(1));
            let r = _mm512_add_epi32(_mm512_add_epi32(u, _mm512_set1_epi32(0x7FFF)), odd);
            let quiet = _mm512_or_si512(u, _mm512_set1_epi32(0x0040_0000));
            let nan = _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(x, x);
            _mm512_castsi512_ps(_mm512_and_si512(_mm512_mask_blend_epi32(nan, r, quiet), hi))
        }
    }
    #[inline(always)]
    fn copysign(self, mag: __m512, sign: __m512) -> __m512 {
        // SAFETY: features per module docs.
        unsafe {
            let s = _mm512_set1_ps(-0.0);
            _mm512_or_ps(_mm512_andnot_ps(s, mag), _mm512_and_ps(s, sign))
        }
    }
    #[inline(always)]
    fn exp2i(self, n: __m512) -> __m512 {
        // SAFETY: features per module docs.
        unsafe {
            let i = _mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127));
            _mm512_castsi512_ps(_mm512_slli_epi32::<23>(i))
        }
    }
    #[inline(always)]
    fn split_exp(self, x: __m512) -> (__m512, __m512) {
        // SAFETY: features per module docs.
        unsafe {
            let bits = _mm512_castps_si512(x);
            let e = _mm512_sub_epi32(_mm512_srli_epi32::<23>(bits), _mm512_set1_epi32(127));
            let m = _mm512_or_si512(
                _mm512_and_si512(bits, _mm512_set1_epi32(0x007f_ffff)),
                _mm512_set1_epi32(0x3f80_0000),
            );
            (_mm512_castsi512_ps(m), _mm512_cvtepi32_ps(e))
        }
    }
    #[inline(always)]
    fn lt(self, a: __m512, b: __m512) -> __mmask16 {
        // SAFETY: features per module docs.
        unsafe { _mm512_cmp_ps_mask::<_CMP_LT_OQ>(a, b) }
    }
    #[inline(always)]
    fn le(self, a: __m512, b: __m512) -> __mmask16 {
        // SAFETY: features per module docs.
        unsafe { _mm512_cmp_ps_mask::<_CMP_LE_OQ>(a, b) }
    }
    #[inline(always)]
    fn eq(self, a: __m512, b: __m512) -> __mmask16 {
        // SAFETY: features per module docs.
        unsafe { _mm512_cmp_ps_mask::<_CMP_EQ_OQ>(a, b) }
    }
    #[inline(always)]
    fn is_nan(self, a: __m512) -> __mmask16 {
        // SAFETY: features per module docs.
        unsafe { _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(a, a) }
    }
    #[inline(always)]
    fn select(self, m: __mmask16, t: __m512, f: __m512) -> __m512 {
        // SAFETY: features per module docs.
        unsafe { _mm512_mask_blend_ps(m, f, t) }
    }
    #[inline(always)]
    fn reduce_sum(self, v: __m512) -> f32 {
        // SAFETY: features per module docs.
        unsafe { _mm512_reduce_add_ps(v) }
    }
    #[inline(always)]
    fn reduce_max(self, v: __m512) -> f32 {
        let mut buf = [0.0f32; 16];
        self.store(v, &mut buf);
        buf.iter().copied().fold(f32::NAN, f32::max)
    }
}
