//! `f32` arithmetic on [`Kb`] registers, and the transcendental functions the
//! elementwise expressions need, written with the same algorithms and
//! coefficients as the CPU backend's vector math (`eqopt-cpu`'s `simd::math`),
//! so both backends agree to a few ulp.
//!
//! Additions and multiplications are emitted with `.rn`, which forbids `ptxas`
//! from contracting them into an FMA: the rounding the CPU backend does is kept.

use crate::builder::{F32, Kb, Pred, R32};

impl Kb {
    fn f_bin(&mut self, op: &str, a: F32, b: F32) -> F32 {
        let d = self.f32();
        self.op(&format!("{op} {d}, {a}, {b}"));
        d
    }
    fn f_un(&mut self, op: &str, a: F32) -> F32 {
        let d = self.f32();
        self.op(&format!("{op} {d}, {a}"));
        d
    }
    /// `a + b`.
    pub fn fadd(&mut self, a: F32, b: F32) -> F32 {
        self.f_bin("add.rn.f32", a, b)
    }
    /// `a - b`.
    pub fn fsub(&mut self, a: F32, b: F32) -> F32 {
        self.f_bin("sub.rn.f32", a, b)
    }
    /// `a · b`.
    pub fn fmul(&mut self, a: F32, b: F32) -> F32 {
        self.f_bin("mul.rn.f32", a, b)
    }
    /// `a / b`, IEEE.
    pub fn fdiv(&mut self, a: F32, b: F32) -> F32 {
        self.f_bin("div.rn.f32", a, b)
    }
    /// `a · b + c`, one rounding.
    pub fn ffma(&mut self, a: F32, b: F32, c: F32) -> F32 {
        let d = self.f32();
        self.op(&format!("fma.rn.f32 {d}, {a}, {b}, {c}"));
        d
    }
    /// `a · k + c` with an immediate `k`.
    pub fn ffma_k(&mut self, a: F32, k: f32, c: F32) -> F32 {
        let kr = self.fconst(k);
        self.ffma(a, kr, c)
    }
    /// `max(a, b)` (a NaN operand yields the other).
    pub fn fmax(&mut self, a: F32, b: F32) -> F32 {
        self.f_bin("max.f32", a, b)
    }
    /// `min(a, b)` (a NaN operand yields the other).
    pub fn fmin(&mut self, a: F32, b: F32) -> F32 {
        self.f_bin("min.f32", a, b)
    }
    /// `-a`.
    pub fn fneg(&mut self, a: F32) -> F32 {
        self.f_un("neg.f32", a)
    }
    /// `|a|`.
    pub fn fabs(&mut self, a: F32) -> F32 {
        self.f_un("abs.f32", a)
    }
    /// `√a`, IEEE.
    pub fn fsqrt(&mut self, a: F32) -> F32 {
        self.f_un("sqrt.rn.f32", a)
    }
    /// `1/a`, IEEE.
    pub fn frcp(&mut self, a: F32) -> F32 {
        self.f_un("rcp.rn.f32", a)
    }
    /// A predicate `a CMP b` (`cmp` one of PTX's float comparisons).
    pub fn fsetp(&mut self, cmp: &str, a: F32, b: F32) -> Pred {
        let p = self.pred();
        self.op(&format!("setp.{cmp}.f32 {p}, {a}, {b}"));
        p
    }
    /// `p ? a : b`.
    pub fn fsel(&mut self, p: Pred, a: F32, b: F32) -> F32 {
        let d = self.f32();
        self.op(&format!("selp.f32 {d}, {a}, {b}, {p}"));
        d
    }
    /// True where `a` is NaN.
    pub fn is_nan(&mut self, a: F32) -> Pred {
        self.fsetp("nan", a, a)
    }
    /// `x` unless `x` is NaN, in which case `x` itself (keeps NaN inputs NaN).
    fn keep_nan(&mut self, x: F32, r: F32) -> F32 {
        let p = self.is_nan(x);
        self.fsel(p, x, r)
    }
    /// The bits of `a` as a 32-bit register.
    pub fn fbits(&mut self, a: F32) -> R32 {
        let r = self.r32();
        self.op(&format!("mov.b32 {r}, {a}"));
        r
    }
    /// A float from the bits in `r`.
    pub fn from_bits(&mut self, r: R32) -> F32 {
        let f = self.f32();
        self.op(&format!("mov.b32 {f}, {r}"));
        f
    }
    /// `|mag|` with the sign of `sign`.
    pub fn copysign(&mut self, mag: F32, sign: F32) -> F32 {
        let m = self.fbits(mag);
        let s = self.fbits(sign);
        let r = self.r32();
        self.op(&format!("and.b32 {m}, {m}, 0x7FFFFFFF"));
        self.op(&format!("and.b32 {s}, {s}, 0x80000000"));
        self.op(&format!("or.b32 {r}, {m}, {s}"));
        self.from_bits(r)
    }
    /// `2^n` for an integral `n ∈ [-126, 127]` held in an `f32`, built from its bits.
    fn exp2i(&mut self, n: F32) -> F32 {
        let i = self.r32();
        self.op(&format!("cvt.rzi.s32.f32 {i}, {n}"));
        self.op(&format!("add.s32 {i}, {i}, 127"));
        self.op(&format!("shl.b32 {i}, {i}, 23"));
        self.from_bits(i)
    }

    /// `e^x` (Cody–Waite reduction, Cephes polynomial, two-half scaling).
    pub fn exp(&mut self, x: F32) -> F32 {
        let lo = self.fconst(-104.0);
        let hi = self.fconst(89.0);
        let xc = self.fmax(x, lo);
        let xc = self.fmin(xc, hi);
        let l2e = self.fconst(std::f32::consts::LOG2_E);
        let t = self.fmul(xc, l2e);
        let n = self.f32();
        self.op(&format!("cvt.rni.f32.f32 {n}, {t}"));
        let r = self.ffma_k(n, -0.693_359_4, xc);
        let r = self.ffma_k(n, 2.121_944_4e-4, r);
        let p = self.poly(r, &[1.987_569_1e-4, 1.398_2e-3, 8.333_452e-3, 4.166_579_6e-2, 1.666_666_5e-1, 0.5]);
        let r2 = self.fmul(r, r);
        let y = self.ffma(p, r2, r);
        let one = self.fconst(1.0);
        let y = self.fadd(y, one);
        let half = self.fconst(0.5);
        let n1 = self.fmul(n, half);
        let n1r = self.f32();
        self.op(&format!("cvt.rni.f32.f32 {n1r}, {n1}"));
        let n2 = self.fsub(n, n1r);
        let s1 = self.exp2i(n1r);
        let s2 = self.exp2i(n2);
        let y = self.fmul(y, s1);
        let y = self.fmul(y, s2);
        self.keep_nan(x, y)
    }

    /// Horner evaluation `((c0·x + c1)·x + c2)...` with FMAs.
    pub fn poly(&mut self, x: F32, c: &[f32]) -> F32 {
        let mut p = self.fconst(c[0]);
        for &k in &c[1..] {
            let kr = self.fconst(k);
            p = self.ffma(p, x, kr);
        }
        p
    }

    /// Natural logarithm through `lg2.approx` (relative error about 2^-22).
    pub fn log(&mut self, x: F32) -> F32 {
        let l = self.f_un("lg2.approx.f32", x);
        let ln2 = self.fconst(std::f32::consts::LN_2);
        self.fmul(l, ln2)
    }

    /// `tanh`: odd polynomial for `|x| < 0.625`, `1 - 2/(e^{2|x|}+1)` elsewhere.
    pub fn tanh(&mut self, x: F32) -> F32 {
        let one = self.fconst(1.0);
        let ax = self.fabs(x);
        let z = self.fmul(x, x);
        let p = self.poly(z, &[-5.704_988_7e-3, 2.063_909e-2, -5.373_971_6e-2, 1.333_144_2e-1, -3.333_328e-1]);
        let pz = self.fmul(p, z);
        let small = self.ffma(pz, x, x);
        let two_ax = self.fadd(ax, ax);
        let e = self.exp(two_ax);
        let ep1 = self.fadd(e, one);
        let two = self.fconst(2.0);
        let q = self.fdiv(two, ep1);
        let large = self.fsub(one, q);
        let large = self.copysign(large, x);
        let k = self.fconst(0.625);
        let is_small = self.fsetp("lt", ax, k);
        self.fsel(is_small, small, large)
    }

    /// `erf`: the rational approximation on `[-4, 4]` the CPU backend uses.
    pub fn erf(&mut self, x: F32) -> F32 {
        let lo = self.fconst(-4.0);
        let hi = self.fconst(4.0);
        let xc = self.fmax(x, lo);
        let xc = self.fmin(xc, hi);
        let x2 = self.fmul(xc, xc);
        let p = self.poly(
            x2,
            &[
                -2.726_142_3e-10,
                2.770_681_4e-8,
                -2.101_024e-6,
                -5.692_506_4e-5,
                -7.349_906_3e-4,
                -2.954_6e-3,
                -1.609_603_3e-2,
            ],
        );
        let p = self.fmul(p, xc);
        let q = self.poly(
            x2,
            &[-1.456_607_2e-5, -2.133_740_6e-4, -1.682_827e-3, -7.373_329e-3, -1.426_473_9e-2],
        );
        let r = self.fdiv(p, q);
        let ax = self.fabs(x);
        let k = self.fconst(3.92);
        let big = self.fsetp("lt", k, ax);
        let one = self.fconst(1.0);
        let s = self.copysign(one, x);
        let r = self.fsel(big, s, r);
        self.keep_nan(x, r)
    }

    /// `erfc(z)` for `z ≥ 0` (the Chebyshev fit the CPU backend uses).
    fn erfc_nonneg(&mut self, z: F32) -> F32 {
        let one = self.fconst(1.0);
        let d = self.ffma_k(z, 0.5, one);
        let t = self.fdiv(one, d);
        let p = self.poly(
            t,
            &[
                0.170_872_77,
                -0.822_152_23,
                1.488_515_9,
                -1.135_204,
                0.278_868_07,
                -0.186_288_06,
                0.096_784_18,
                0.374_091_96,
                1.000_023_7,
                -1.265_512_2,
            ],
        );
        let hi = self.fmul(z, z);
        let nhi = self.fneg(hi);
        let lo = self.ffma(z, z, nhi);
        let a = self.fsub(p, lo);
        let arg = self.fsub(a, hi);
        let e = self.exp(arg);
        self.fmul(t, e)
    }

    /// Exact GELU, `0.5·x·erfc(-x/√2)`.
    pub fn gelu(&mut self, x: F32) -> F32 {
        let k = self.fconst(-std::f32::consts::FRAC_1_SQRT_2);
        let z = self.fmul(x, k);
        let az = self.fabs(z);
        let c = self.erfc_nonneg(az);
        let zero = self.fconst(0.0);
        let neg = self.fsetp("lt", z, zero);
        let two = self.fconst(2.0);
        let tc = self.fsub(two, c);
        let e = self.fsel(neg, tc, c);
        let half = self.fconst(0.5);
        let hx = self.fmul(half, x);
        let r = self.fmul(hx, e);
        self.keep_nan(x, r)
    }

    /// `1 / (1 + e^-x)`.
    pub fn sigmoid(&mut self, x: F32) -> F32 {
        let nx = self.fneg(x);
        let e = self.exp(nx);
        let one = self.fconst(1.0);
        let d = self.fadd(one, e);
        self.fdiv(one, d)
    }

    /// `max(x, 0)` with NaN kept.
    pub fn relu(&mut self, x: F32) -> F32 {
        let zero = self.fconst(0.0);
        let neg = self.fsetp("lt", x, zero);
        self.fsel(neg, zero, x)
    }

    /// `x` rounded to the nearest bfloat16 (ties to even), NaN kept.
    pub fn round_bf16(&mut self, x: F32) -> F32 {
        let b = self.fbits(x);
        let lsb = self.r32();
        self.op(&format!("shr.u32 {lsb}, {b}, 16"));
        self.op(&format!("and.b32 {lsb}, {lsb}, 1"));
        let r = self.r32();
        self.op(&format!("add.s32 {r}, {b}, 32767"));
        self.op(&format!("add.s32 {r}, {r}, {lsb}"));
        self.op(&format!("and.b32 {r}, {r}, 0xFFFF0000"));
        let y = self.from_bits(r);
        self.keep_nan(x, y)
    }

    /// `a^b` as `powf`: `2^(b·log2|a|)` with the sign and special cases of `powf`
    /// (`b = 0` or `a = 1` → 1; negative `a`: an integral `b` gives the sign of
    /// `a^b`, any other `b` NaN).
    pub fn pow(&mut self, a: F32, b: F32) -> F32 {
        let aa = self.fabs(a);
        let l = self.f_un("lg2.approx.f32", aa);
        let t = self.fmul(b, l);
        let m = self.f_un("ex2.approx.f32", t);
        // Integral b: odd when b/2 is not integral.
        let bi = self.f32();
        self.op(&format!("cvt.rzi.f32.f32 {bi}, {b}"));
        let integral = self.fsetp("eq", bi, b);
        let half = self.fconst(0.5);
        let hb = self.fmul(b, half);
        let hbi = self.f32();
        self.op(&format!("cvt.rzi.f32.f32 {hbi}, {hb}"));
        let even = self.fsetp("eq", hbi, hb);
        let neg_m = self.fneg(m);
        let signed = self.fsel(even, m, neg_m);
        let nan = self.fconst(f32::NAN);
        let neg_result = self.fsel(integral, signed, nan);
        let zero = self.fconst(0.0);
        let a_neg = self.fsetp("lt", a, zero);
        let r = self.fsel(a_neg, neg_result, m);
        let one = self.fconst(1.0);
        let b0 = self.fsetp("eq", b, zero);
        let a1 = self.fsetp("eq", a, one);
        let r = self.fsel(b0, one, r);
        self.fsel(a1, one, r)
    }
}
