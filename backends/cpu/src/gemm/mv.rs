//! Run-time multiversioning for the crate's auto-vectorised loops.
//!
//! The crate is compiled for the baseline target (SSE2 on x86-64), so plain
//! loops vectorise only to 128 bits. [`wide`] runs a closure inside a function
//! compiled with AVX-512 or AVX2 enabled (whichever the CPU has), so loops that
//! LLVM inlines into it use the wider registers. Hot inner loops called from
//! the closure should be `#[inline(always)]` so they are compiled there.

use crate::simd::Isa;

/// Runs `f` inside a function compiled for the instruction set [`Isa::detect`]
/// chose (so `EQOPT_ISA` caps it, as for the `Simd` kernels). The result is the
/// same as calling `f()` directly, up to FMA contraction.
#[inline(always)]
pub(crate) fn wide<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx2,fma")]
        unsafe fn avx512<R>(f: impl FnOnce() -> R) -> R {
            f()
        }
        #[target_feature(enable = "avx2,fma")]
        unsafe fn avx2<R>(f: impl FnOnce() -> R) -> R {
            f()
        }
        match Isa::detect() {
            // SAFETY: `detect` returns an ISA only when the CPU supports all of
            // its features, which include every feature `avx512` is compiled with.
            Isa::Avx512 => return unsafe { avx512(f) },
            // SAFETY: as above, for AVX2 and FMA.
            Isa::Avx2 => return unsafe { avx2(f) },
            Isa::Scalar => {}
        }
    }
    f()
}

/// `y[i] += a * x[i]` over the common length, written so it vectorises.
#[inline(always)]
pub(crate) fn axpy(y: &mut [f32], a: f32, x: &[f32]) {
    let n = y.len().min(x.len());
    let (y, x) = (&mut y[..n], &x[..n]);
    for (yi, xi) in y.iter_mut().zip(x) {
        *yi += a * *xi;
    }
}

/// Dot product with 16 independent partial sums (so it vectorises; the
/// summation order is fixed, so results are deterministic).
#[inline(always)]
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0.0f32; 16];
    let mut ca = a.chunks_exact(16);
    let mut cb = b.chunks_exact(16);
    for (x, y) in (&mut ca).zip(&mut cb) {
        for l in 0..16 {
            acc[l] += x[l] * y[l];
        }
    }
    let mut tail = 0.0f32;
    for (x, y) in ca.remainder().iter().zip(cb.remainder()) {
        tail += x * y;
    }
    let mut s = 0.0f32;
    for v in acc {
        s += v;
    }
    s + tail
}
