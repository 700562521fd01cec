//! Vector transcendental functions, written once against [`Simd`]'s primitives.
//!
//! All functions are `#[inline(always)]` so that they compile inside the caller's
//! target-feature context (see the module docs of [`super`]).

use super::Simd;

/// `e^x`: Cody–Waite range reduction `x = n·ln2 + r`, `|r| ≤ ln2/2`, a degree-6
/// polynomial for `e^r` (Cephes `expf` coefficients), and a scale by `2^n` applied
/// in two halves so that results in the subnormal range and up to `f32::MAX` come out
/// right without special cases.
#[inline(always)]
pub(super) fn exp<S: Simd>(s: S, x: S::V) -> S::V {
    let xc = s.min(s.max(x, s.splat(-104.0)), s.splat(89.0));
    let n = s.round(s.mul(xc, s.splat(std::f32::consts::LOG2_E)));
    // ln2 = C1 + C2 with C1 exactly representable in 9 bits, so n·C1 is exact.
    let r = s.mul_add(n, s.splat(-0.693_359_4), xc);
    let r = s.mul_add(n, s.splat(2.121_944_4e-4), r);
    let mut p = s.splat(1.987_569_1e-4);
    p = s.mul_add(p, r, s.splat(1.398_2e-3));
    p = s.mul_add(p, r, s.splat(8.333_452e-3));
    p = s.mul_add(p, r, s.splat(4.166_579_6e-2));
    p = s.mul_add(p, r, s.splat(1.666_666_5e-1));
    p = s.mul_add(p, r, s.splat(0.5));
    let r2 = s.mul(r, r);
    let y = s.add(s.mul_add(p, r2, r), s.splat(1.0));
    // n ∈ [-150, 129]: split into two halves, each inside exp2i's [-126, 127].
    let n1 = s.round(s.mul(n, s.splat(0.5)));
    let n2 = s.sub(n, n1);
    let y = s.mul(s.mul(y, s.exp2i(n1)), s.exp2i(n2));
    s.select(s.is_nan(x), x, y)
}

/// Natural logarithm: `x = m·2^e` with `m ∈ [√½, √2)`, then Cephes `logf`'s
/// degree-9 polynomial in `f = m - 1`.
#[inline(always)]
pub(super) fn log<S: Simd>(s: S, x: S::V) -> S::V {
    let zero = s.zero();
    let one = s.splat(1.0);
    // Scale subnormals into the normal range first.
    let tiny = s.lt(x, s.splat(f32::MIN_POSITIVE));
    let xs = s.select(tiny, s.mul(x, s.splat(8_388_608.0)), x);
    let e_adj = s.select(tiny, s.splat(-23.0), zero);
    let (m, e) = s.split_exp(xs);
    let e = s.add(e, e_adj);
    let big = s.lt(s.splat(std::f32::consts::SQRT_2), m);
    let m = s.select(big, s.mul(m, s.splat(0.5)), m);
    let e = s.select(big, s.add(e, one), e);
    let f = s.sub(m, one);
    let z = s.mul(f, f);
    let mut p = s.splat(7.037_683_6e-2);
    p = s.mul_add(p, f, s.splat(-1.151_461e-1));
    p = s.mul_add(p, f, s.splat(1.167_699_9e-1));
    p = s.mul_add(p, f, s.splat(-1.242_014_1e-1));
    p = s.mul_add(p, f, s.splat(1.424_932_3e-1));
    p = s.mul_add(p, f, s.splat(-1.666_805_8e-1));
    p = s.mul_add(p, f, s.splat(2.000_071_4e-1));
    p = s.mul_add(p, f, s.splat(-2.499_999_4e-1));
    p = s.mul_add(p, f, s.splat(3.333_333e-1));
    let mut y = s.mul(s.mul(p, f), z);
    y = s.mul_add(e, s.splat(-2.121_944_4e-4), y);
    y = s.mul_add(z, s.splat(-0.5), y);
    let r = s.add(f, y);
    let r = s.mul_add(e, s.splat(0.693_359_4), r);
    // Special values: +inf → +inf, 0 → -inf, negative → NaN, NaN → NaN.
    let inf = s.splat(f32::INFINITY);
    let r = s.select(s.eq(x, inf), inf, r);
    let r = s.select(s.eq(x, zero), s.splat(f32::NEG_INFINITY), r);
    let r = s.select(s.lt(x, zero), s.splat(f32::NAN), r);
    s.select(s.is_nan(x), x, r)
}

/// `tanh`: an odd polynomial (Cephes `tanhf`) for `|x| < 0.625`, where
/// `1 - 2/(e^{2|x|} + 1)` would cancel; that formula (with the sign restored)
/// elsewhere.
#[inline(always)]
pub(super) fn tanh<S: Simd>(s: S, x: S::V) -> S::V {
    let one = s.splat(1.0);
    let ax = s.abs(x);
    let z = s.mul(x, x);
    let mut p = s.splat(-5.704_988_7e-3);
    p = s.mul_add(p, z, s.splat(2.063_909e-2));
    p = s.mul_add(p, z, s.splat(-5.373_971_6e-2));
    p = s.mul_add(p, z, s.splat(1.333_144_2e-1));
    p = s.mul_add(p, z, s.splat(-3.333_328e-1));
    let small = s.mul_add(s.mul(p, z), x, x);
    let e = exp(s, s.add(ax, ax));
    let large = s.sub(one, s.div(s.splat(2.0), s.add(e, one)));
    let large = s.copysign(large, x);
    s.select(s.lt(ax, s.splat(0.625)), small, large)
}

/// `erf`: a rational approximation `x·P(x²)/Q(x²)` on `[-4, 4]` (the one used by
/// Eigen and XLA), clamped outside (where `erf` rounds to `±1`).
#[inline(always)]
pub(super) fn erf<S: Simd>(s: S, x: S::V) -> S::V {
    let xc = s.min(s.max(x, s.splat(-4.0)), s.splat(4.0));
    let x2 = s.mul(xc, xc);
    let mut p = s.splat(-2.726_142_3e-10);
    p = s.mul_add(p, x2, s.splat(2.770_681_4e-8));
    p = s.mul_add(p, x2, s.splat(-2.101_024e-6));
    p = s.mul_add(p, x2, s.splat(-5.692_506_4e-5));
    p = s.mul_add(p, x2, s.splat(-7.349_906_3e-4));
    p = s.mul_add(p, x2, s.splat(-2.954_6e-3));
    p = s.mul_add(p, x2, s.splat(-1.609_603_3e-2));
    let p = s.mul(p, xc);
    let mut q = s.splat(-1.456_607_2e-5);
    q = s.mul_add(q, x2, s.splat(-2.133_740_6e-4));
    q = s.mul_add(q, x2, s.splat(-1.682_827e-3));
    q = s.mul_add(q, x2, s.splat(-7.373_329e-3));
    q = s.mul_add(q, x2, s.splat(-1.426_473_9e-2));
    let r = s.div(p, q);
    // Beyond 3.92, erf rounds to ±1 in f32 (the fit is a few ulp short of it).
    let r = s.select(s.lt(s.splat(3.92), s.abs(x)), s.copysign(s.splat(1.0), x), r);
    s.select(s.is_nan(x), x, r)
}

/// `erfc(z)` for `z ≥ 0` (Numerical Recipes' `erfcc`, a Chebyshev fit with
/// relative error below 1.2e-7 in exact arithmetic): `t·e^{-z² + P(t)}`,
/// `t = 1/(1 + z/2)`. Keeps relative accuracy deep into the tail, where
/// `1 - erf(z)` would cancel.
#[inline(always)]
fn erfc_nonneg<S: Simd>(s: S, z: S::V) -> S::V {
    let one = s.splat(1.0);
    let t = s.div(one, s.mul_add(z, s.splat(0.5), one));
    let mut p = s.splat(0.170_872_77);
    p = s.mul_add(p, t, s.splat(-0.822_152_23));
    p = s.mul_add(p, t, s.splat(1.488_515_9));
    p = s.mul_add(p, t, s.splat(-1.135_204));
    p = s.mul_add(p, t, s.splat(0.278_868_07));
    p = s.mul_add(p, t, s.splat(-0.186_288_06));
    p = s.mul_add(p, t, s.splat(0.096_784_18));
    p = s.mul_add(p, t, s.splat(0.374_091_96));
    p = s.mul_add(p, t, s.splat(1.000_023_7));
    p = s.mul_add(p, t, s.splat(-1.265_512_2));
    // z² = hi + lo exactly where the ISA fuses (lo = 0 on the scalar ISA), which
    // keeps the large exponent's rounding error out of the tail.
    let hi = s.mul(z, z);
    let lo = s.mul_add(z, z, s.neg(hi));
    let arg = s.sub(s.sub(p, lo), hi);
    s.mul(t, exp(s, arg))
}

/// Exact GELU, `0.5·x·erfc(-x/√2)`: for `x < 0` this keeps relative accuracy
/// where `1 + erf(x/√2)` would cancel; for `x ≥ 0`, `erfc(-z) = 2 - erfc(z)`.
#[inline(always)]
pub(super) fn gelu<S: Simd>(s: S, x: S::V) -> S::V {
    let z = s.mul(x, s.splat(-std::f32::consts::FRAC_1_SQRT_2));
    let c = erfc_nonneg(s, s.abs(z));
    let e = s.select(s.lt(z, s.zero()), s.sub(s.splat(2.0), c), c);
    let r = s.mul(s.mul(s.splat(0.5), x), e);
    s.select(s.is_nan(x), x, r)
}
