//! bf16-compute GEMM: `C[b] = bf16(A[b]) · B[b]` with a `bf16` `B`, products
//! summed in `f32` — the arithmetic of AVX-512 BF16's `vdpbf16ps` (and of GPU
//! tensor cores), for the approximate "activations in bf16" rewrites.
//!
//! Two implementations, with the same products (a product of two `bf16` is
//! exact in `f32`) and different summation orders:
//!
//! * **dot** ([`super::kernel_avx512_bf16`]): on a CPU with AVX512_BF16 and
//!   [`Isa::Avx512`] asked for, `A` is rounded while packed into `bf16` k-pairs
//!   and a 14 × 32 `vdpbf16ps` micro-kernel runs; about twice the `f32`
//!   kernel's rate. It treats denormal `bf16` inputs as zero.
//! * **widen**: otherwise (no AVX512_BF16, [`Isa::Avx2`], [`Isa::Scalar`], or
//!   [`gemm_bf16_widened_with_isa`]), each output block's rows of `A` are
//!   rounded to `bf16` into a scratch copy and the ordinary `f32` kernels of
//!   the ISA run on it, `B` widened exactly while packed. Denormals are kept.
//!
//! Both use the blocking and threading of the `f32` GEMM ([`super::driver`]):
//! the output is cut into blocks over rayon's current pool, and the epilogue
//! runs on each block right after it is computed.

use half::bf16;

use super::driver::{self, Compute};
use super::{Epilogue, GemmDims, MatLayout, WeightRef, validate};
use crate::KernelError;
use crate::simd::{Isa, Simd, SimdKernel};

/// Writes the rows of `A` starting at `a[off]` (row `i`, step `p` at
/// `off + i·rs + p·cs`), rounded to `bf16` ([`Simd::round_bf16`]), into `dst`
/// as `dst.len() / k` dense rows of `k`. A unit `cs` runs `isa`'s vector form.
///
/// Panics if an element lies outside `a` (the caller validated the span).
pub(crate) fn round_rows(isa: Isa, a: &[f32], off: usize, rs: usize, cs: usize, k: usize, dst: &mut [f32]) {
    struct Rows<'a> {
        a: &'a [f32],
        off: usize,
        rs: usize,
        k: usize,
        dst: &'a mut [f32],
    }
    impl SimdKernel for Rows<'_> {
        type Output = ();
        #[inline(always)]
        fn run<S: Simd>(self, s: S) {
            let l = S::LANES;
            for (i, d) in self.dst.chunks_exact_mut(self.k).enumerate() {
                let src = &self.a[self.off + i * self.rs..][..self.k];
                let full = self.k - self.k % l;
                for p in (0..full).step_by(l) {
                    s.store(s.round_bf16(s.load(&src[p..])), &mut d[p..]);
                }
                s.store_partial(s.round_bf16(s.load_partial(&src[full..])), &mut d[full..]);
            }
        }
    }
    if cs == 1 {
        return isa.dispatch(Rows { a, off, rs, k, dst });
    }
    for (i, d) in dst.chunks_exact_mut(k).enumerate() {
        for (p, x) in d.iter_mut().enumerate() {
            *x = bf16::from_f32(a[off + i * rs + p * cs]).to_f32();
        }
    }
}

/// Whether [`gemm_bf16`] (with [`Isa::Avx512`]) runs the AVX-512 BF16
/// `vdpbf16ps` kernel on this CPU (AVX-512 F/BW/DQ/VL and AVX512_BF16; the
/// answer is cached by the standard library's feature detection).
pub fn bf16_dot_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        super::kernel_avx512_bf16::available()
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Computes `C[b] = bf16(A[b]) · B[b]` for every batch `b` — each element of
/// `A` rounded to the nearest `bf16` (ties to even), multiplied by the `bf16`
/// elements of `B`, the products summed in `f32` — then runs `epilogue` (if
/// any) on each output block as soon as it is written.
///
/// Operands and layouts are as for [`super::gemm()`] (any strides, batch
/// stride 0 to broadcast, `C` with unit column stride and non-overlapping rows
/// and batches); `k == 0` writes zeros before the epilogue. Runs on rayon's
/// current pool with the kernels of [`Isa::detect`] (see [`gemm_bf16_with_isa`]).
///
/// Accuracy: each product is exact, so against the exact product of the
/// *rounded* operands the error is that of an `f32` sum, at most about
/// `k · 2⁻²⁴ · Σ_p |bf16(a_ip)·b_pj|`. Against the unrounded `A` it adds the
/// rounding of `A`: a relative error up to `2⁻⁹` per element (about 3
/// significant digits). The AVX-512 BF16 kernel reads denormal (below
/// `2⁻¹²⁶`) `A` and `B` elements as zero and flushes denormal sums to zero.
///
/// # Errors
/// As [`super::gemm()`]: [`KernelError::BufferLength`] if a slice is too short
/// for its layout, [`KernelError::Shape`] for an unsupported output layout or
/// an index overflow, or what [`Epilogue::check`] reports. Nothing is written
/// on error.
#[allow(clippy::too_many_arguments)]
pub fn gemm_bf16(
    dims: GemmDims,
    a: &[f32],
    a_layout: MatLayout,
    b: &[bf16],
    b_layout: MatLayout,
    c: &mut [f32],
    c_layout: MatLayout,
    epilogue: Option<&dyn Epilogue>,
) -> Result<(), KernelError> {
    gemm_bf16_with_isa(Isa::detect(), dims, a, a_layout, b, b_layout, c, c_layout, epilogue)
}

/// [`gemm_bf16`] with the kernels of an explicit instruction set: the
/// `vdpbf16ps` kernel for [`Isa::Avx512`] when [`bf16_dot_available`], else the
/// widening path on the `f32` micro-kernels of `isa` (an ISA the CPU lacks
/// falls back to the next one down, as [`Isa::dispatch`] does).
///
/// # Errors
/// As [`gemm_bf16`].
#[allow(clippy::too_many_arguments)]
pub fn gemm_bf16_with_isa(
    isa: Isa,
    dims: GemmDims,
    a: &[f32],
    a_layout: MatLayout,
    b: &[bf16],
    b_layout: MatLayout,
    c: &mut [f32],
    c_layout: MatLayout,
    epilogue: Option<&dyn Epilogue>,
) -> Result<(), KernelError> {
    let dot = isa == Isa::Avx512 && bf16_dot_available();
    run(isa, dot, dims, a, a_layout, b, b_layout, c, c_layout, epilogue)
}

/// [`gemm_bf16_with_isa`] that never uses the `vdpbf16ps` kernel: `A` is
/// rounded into a scratch copy and `isa`'s `f32` micro-kernels run (the path
/// of a CPU without AVX512_BF16), so tests and benchmarks can compare both on
/// one machine. Same results up to summation order, except that denormals
/// are kept.
///
/// # Errors
/// As [`gemm_bf16`].
#[allow(clippy::too_many_arguments)]
pub fn gemm_bf16_widened_with_isa(
    isa: Isa,
    dims: GemmDims,
    a: &[f32],
    a_layout: MatLayout,
    b: &[bf16],
    b_layout: MatLayout,
    c: &mut [f32],
    c_layout: MatLayout,
    epilogue: Option<&dyn Epilogue>,
) -> Result<(), KernelError> {
    run(isa, false, dims, a, a_layout, b, b_layout, c, c_layout, epilogue)
}

/// Validates, then runs the blocked driver with [`Compute::Bf16Dot`] (`dot`:
/// the caller checked [`bf16_dot_available`]) or [`Compute::Bf16Widen`].
#[allow(clippy::too_many_arguments)]
fn run(
    isa: Isa,
    dot: bool,
    dims: GemmDims,
    a: &[f32],
    a_layout: MatLayout,
    b: &[bf16],
    b_layout: MatLayout,
    c: &mut [f32],
    c_layout: MatLayout,
    epilogue: Option<&dyn Epilogue>,
) -> Result<(), KernelError> {
    let b = WeightRef::BF16(b);
    if !validate(&dims, a.len(), &a_layout, &b, &b_layout, c.len(), &c_layout, epilogue)? {
        return Ok(());
    }
    let job = driver::Job {
        dims,
        a,
        a_layout,
        b,
        b_layout,
        c_layout,
        epilogue,
        isa,
        compute: if dot { Compute::Bf16Dot } else { Compute::Bf16Widen },
    };
    driver::run(&job, c);
    Ok(())
}
