//! Portable `f32` SIMD: one small trait, [`Simd`], with one implementation per
//! instruction set, and [`Isa`] to pick one at run time.
//!
//! # How kernels use it
//!
//! A kernel writes its inner loop once, generic over `S: Simd`, inside a type that
//! implements [`SimdKernel`], and runs it with [`Isa::dispatch`]. `dispatch` enters a
//! function compiled with the ISA's `#[target_feature]`s and calls
//! [`SimdKernel::run`] there. Every method of [`Simd`] is `#[inline(always)]`, and a
//! kernel's `run` (and the generic helpers it calls) must be too: the whole call tree
//! then inlines into the target-feature function, where the intrinsics compile to
//! single instructions. A helper that is not inlined still computes the right result,
//! only slowly (intrinsics become calls).
//!
//! Closures running on other threads (rayon) leave the target-feature context, so
//! parallel kernels split the work first and dispatch once per task.
//!
//! # Accuracy of the vector math
//!
//! The transcendental functions ([`Simd::exp`], [`Simd::log`], [`Simd::tanh`],
//! [`Simd::sigmoid`], [`Simd::erf`], [`Simd::gelu`]) are polynomial or rational
//! approximations. Measured against `f64` over dense sweeps (see the crate's
//! `tests/simd_kernels.rs`), the maximum relative errors are about:
//!
//! | function | max relative error | domain swept |
//! |----------|--------------------|--------------|
//! | `exp`    | 8.2e-8             | [-87, 88]    |
//! | `log`    | 7.8e-8             | [1e-30, 1e30]|
//! | `tanh`   | 1.3e-7             | [-10, 10]    |
//! | `sigmoid`| 1.4e-7             | [-80, 20]    |
//! | `erf`    | 4.4e-7 (near ±3.9) | [-5, 5]      |
//! | `gelu`   | 2.3e-6             | [-5, 10]     |
//! | `gelu`   | 1.8e-5             | [-12, -5]    |
//!
//! (`gelu`'s error comes from the rounding of the `-z²` exponent in its `erfc`;
//! below -5 its values are under 1.5e-6 in magnitude.) Results agree across ISAs up
//! to FMA contraction (the scalar ISA does not fuse), since every function is
//! written once against the trait's primitives.

mod isa;
mod math;
mod scalar;

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;

#[cfg(target_arch = "x86_64")]
pub use avx2::Avx2;
#[cfg(target_arch = "x86_64")]
pub use avx512::Avx512;
pub use isa::{Isa, SimdKernel};
pub use scalar::Scalar;

/// A vector of `f32` lanes for one instruction set.
///
/// Implementations are zero-sized *tokens*: a value of an implementing type exists
/// only once the CPU is known to support its instructions (see [`Isa::dispatch`]),
/// which is what makes the methods safe.
///
/// Slice arguments: [`load`](Simd::load) and [`store`](Simd::store) need at least
/// [`LANES`](Simd::LANES) elements and panic otherwise; the `_partial` variants touch
/// `min(len, LANES)` elements and never read or write past the slice.
pub trait Simd: Copy + Send + Sync + std::fmt::Debug + 'static {
    /// The vector register type.
    type V: Copy;
    /// The result of a lane-wise comparison, consumed by [`select`](Simd::select).
    type M: Copy;
    /// Lanes per vector.
    const LANES: usize;
    /// The instruction set this implements.
    const ISA: Isa;

    /// All lanes `x`.
    fn splat(self, x: f32) -> Self::V;
    /// Loads `src[..LANES]`. Panics if `src` is shorter.
    fn load(self, src: &[f32]) -> Self::V;
    /// Loads `min(src.len(), LANES)` elements; the other lanes are zero.
    fn load_partial(self, src: &[f32]) -> Self::V;
    /// Stores all lanes to `dst[..LANES]`. Panics if `dst` is shorter.
    fn store(self, v: Self::V, dst: &mut [f32]);
    /// Stores the first `min(dst.len(), LANES)` lanes.
    fn store_partial(self, v: Self::V, dst: &mut [f32]);
    /// Lanes `src[0], src[2], …, src[2·(LANES − 1)]` (a stride-2 gather, as a
    /// stride-2 convolution or pooling window reads a row); lanes whose index
    /// falls past the slice are zero. Reads only elements inside `src`.
    fn load_even(self, src: &[f32]) -> Self::V;

    /// `a + b`.
    fn add(self, a: Self::V, b: Self::V) -> Self::V;
    /// `a - b`.
    fn sub(self, a: Self::V, b: Self::V) -> Self::V;
    /// `a * b`.
    fn mul(self, a: Self::V, b: Self::V) -> Self::V;
    /// `a / b` (IEEE division, correctly rounded).
    fn div(self, a: Self::V, b: Self::V) -> Self::V;
    /// `a * b + c`, fused (one rounding) where the ISA has FMA; the scalar ISA
    /// rounds twice (a software `fmaf` would be far slower).
    fn mul_add(self, a: Self::V, b: Self::V, c: Self::V) -> Self::V;
    /// Lane-wise maximum with [`f32::max`]'s NaN rule: if one operand is NaN, the
    /// other is returned.
    fn max(self, a: Self::V, b: Self::V) -> Self::V;
    /// Lane-wise minimum with [`f32::min`]'s NaN rule.
    fn min(self, a: Self::V, b: Self::V) -> Self::V;
    /// `|a|` (clears the sign bit).
    fn abs(self, a: Self::V) -> Self::V;
    /// `-a` (flips the sign bit).
    fn neg(self, a: Self::V) -> Self::V;
    /// Square root (correctly rounded).
    fn sqrt(self, a: Self::V) -> Self::V;
    /// Rounds to the nearest integer, ties to even.
    fn round(self, a: Self::V) -> Self::V;
    /// Rounds each lane to the nearest bfloat16 (ties to even), kept in `f32`:
    /// bit-identical to `half::bf16::from_f32(x).to_f32()` — NaN stays NaN
    /// (made quiet, payload's top bits kept), `±inf` and `±0` stay, denormals
    /// are rounded (not flushed), and values that round past the largest
    /// bf16 become `±inf`. (AVX512_BF16's `vcvtneps2bf16` flushes denormal
    /// inputs to zero, so the vector ISAs use the integer form
    /// `(u + 0x7FFF + ((u >> 16) & 1)) & 0xFFFF0000` instead.)
    fn round_bf16(self, x: Self::V) -> Self::V;
    /// The magnitude of `mag` with the sign of `sign`.
    fn copysign(self, mag: Self::V, sign: Self::V) -> Self::V;
    /// `2^n` for lanes of `n` holding integers in `[-126, 127]` (other values give
    /// unspecified results).
    fn exp2i(self, n: Self::V) -> Self::V;
    /// For positive, normal, finite lanes `x`: `(m, e)` with `x = m · 2^e`,
    /// `m ∈ [1, 2)` and `e` an integer (as `f32`). Other inputs give unspecified
    /// (but not undefined) results.
    fn split_exp(self, x: Self::V) -> (Self::V, Self::V);

    /// `a < b` (false where either is NaN).
    fn lt(self, a: Self::V, b: Self::V) -> Self::M;
    /// `a <= b` (false where either is NaN).
    fn le(self, a: Self::V, b: Self::V) -> Self::M;
    /// `a == b` (false where either is NaN).
    fn eq(self, a: Self::V, b: Self::V) -> Self::M;
    /// Lanes that are NaN.
    fn is_nan(self, a: Self::V) -> Self::M;
    /// Lane-wise `if m { t } else { f }`.
    fn select(self, m: Self::M, t: Self::V, f: Self::V) -> Self::V;

    /// The sum of the lanes (in an unspecified order).
    fn reduce_sum(self, v: Self::V) -> f32;
    /// The largest lane, NaN lanes ignored as by [`f32::max`] (all NaN gives NaN).
    fn reduce_max(self, v: Self::V) -> f32;

    /// All lanes zero.
    #[inline(always)]
    fn zero(self) -> Self::V {
        self.splat(0.0)
    }
    /// `max(x, 0)`, except that NaN stays NaN and `-0.0` stays `-0.0`.
    #[inline(always)]
    fn relu(self, x: Self::V) -> Self::V {
        let z = self.zero();
        self.select(self.lt(x, z), z, x)
    }
    /// `1 / x` (IEEE division).
    #[inline(always)]
    fn recip(self, x: Self::V) -> Self::V {
        self.div(self.splat(1.0), x)
    }
    /// `e^x`; about 1 ulp. Overflows to `+inf` above ≈ 88.72, underflows through
    /// subnormals to `0`, NaN stays NaN.
    #[inline(always)]
    fn exp(self, x: Self::V) -> Self::V {
        math::exp(self, x)
    }
    /// Natural logarithm: `-inf` at `±0`, NaN below zero, `+inf` at `+inf`;
    /// subnormal inputs are handled.
    #[inline(always)]
    fn log(self, x: Self::V) -> Self::V {
        math::log(self, x)
    }
    /// Hyperbolic tangent.
    #[inline(always)]
    fn tanh(self, x: Self::V) -> Self::V {
        math::tanh(self, x)
    }
    /// Logistic sigmoid `1 / (1 + e^-x)`.
    #[inline(always)]
    fn sigmoid(self, x: Self::V) -> Self::V {
        let one = self.splat(1.0);
        self.div(one, self.add(one, self.exp(self.neg(x))))
    }
    /// The error function.
    #[inline(always)]
    fn erf(self, x: Self::V) -> Self::V {
        math::erf(self, x)
    }
    /// Exact GELU, `0.5 · x · (1 + erf(x / √2))`, computed as `0.5 · x · erfc(-x/√2)`
    /// so that it stays accurate (relative) for negative `x`.
    #[inline(always)]
    fn gelu(self, x: Self::V) -> Self::V {
        math::gelu(self, x)
    }
    /// Applies `f` to every lane (through memory; for operations without a vector
    /// form, such as a general `powf`).
    #[inline(always)]
    fn map_lanes(self, v: Self::V, f: impl Fn(f32) -> f32) -> Self::V {
        let mut buf = [0.0f32; 16];
        let buf = &mut buf[..Self::LANES];
        self.store(v, buf);
        for x in buf.iter_mut() {
            *x = f(*x);
        }
        self.load(buf)
    }
    /// Applies `f` to every pair of lanes (through memory).
    #[inline(always)]
    fn zip_lanes(self, a: Self::V, b: Self::V, f: impl Fn(f32, f32) -> f32) -> Self::V {
        let mut ba = [0.0f32; 16];
        let mut bb = [0.0f32; 16];
        let (ba, bb) = (&mut ba[..Self::LANES], &mut bb[..Self::LANES]);
        self.store(a, ba);
        self.store(b, bb);
        for (x, y) in ba.iter_mut().zip(bb.iter()) {
            *x = f(*x, *y);
        }
        self.load(ba)
    }
    /// Lane 0.
    #[inline(always)]
    fn first(self, v: Self::V) -> f32 {
        let mut buf = [0.0f32; 1];
        self.store_partial(v, &mut buf);
        buf[0]
    }
}
