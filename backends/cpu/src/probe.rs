//! Probes of this machine's roofline, for calibration: the arithmetic peak of the
//! vector unit, the GEMM throughput the backend reaches (in `f32`, with
//! reduced-precision weights, and computing in bf16: [`gemm_bf16_rate`]), the
//! memory bandwidth, and the fixed cost of one kernel in the executor.
//!
//! Every probe runs on rayon's *current* pool (`pool.install` sizes it) and
//! returns the best of several rounds: on a shared machine the fastest round is
//! the one least disturbed by others, which is what a roofline ceiling means.

use std::hint::black_box;
use std::time::{Duration, Instant};

use rayon::prelude::*;

use crate::KernelError;
use crate::exec::{Executable, InputData};
use crate::gemm::{GemmDims, MatLayout, WeightRef, gemm, gemm_bf16};
use crate::simd::{Isa, Simd, SimdKernel};

/// Independent accumulator chains of the FMA probe: enough to cover an FMA
/// latency of 4–5 cycles on two ports, few enough to stay in 16 registers.
const FMA_CHAINS: usize = 10;

/// Best-of-`rounds` wall time of `f`, each round at least `min_round` long
/// (repeating `f` as needed); returns seconds per call.
pub fn best_time(rounds: usize, min_round: Duration, mut f: impl FnMut()) -> f64 {
    f();
    let mut reps = 1usize;
    loop {
        let t = Instant::now();
        for _ in 0..reps {
            f();
        }
        if t.elapsed() >= min_round / 4 || reps >= 1 << 20 {
            break;
        }
        reps *= 2;
    }
    let mut best = f64::INFINITY;
    for _ in 0..rounds.max(1) {
        let t = Instant::now();
        let mut done = 0;
        while done < reps || t.elapsed() < min_round {
            f();
            done += 1;
        }
        best = best.min(t.elapsed().as_secs_f64() / done as f64);
    }
    best
}

struct FmaLoop {
    iters: usize,
}

impl SimdKernel for FmaLoop {
    type Output = (f32, usize);

    #[inline(always)]
    fn run<S: Simd>(self, s: S) -> (f32, usize) {
        let lanes = std::mem::size_of::<S::V>() / std::mem::size_of::<f32>();
        let a = s.splat(black_box(0.999_99));
        let b = s.splat(black_box(1e-7));
        let mut acc = [s.splat(1.0); FMA_CHAINS];
        for _ in 0..self.iters {
            for x in acc.iter_mut() {
                *x = s.mul_add(*x, a, b);
            }
        }
        let mut total = s.zero();
        for x in acc {
            total = s.add(total, x);
        }
        (s.reduce_sum(total), lanes)
    }
}

/// Peak f32 arithmetic of the current pool, in FLOP/s: every thread runs
/// independent fused multiply-adds on registers with the widest ISA
/// ([`Isa::detect`]). This is the ceiling no kernel can pass.
pub fn fma_peak(rounds: usize, min_round: Duration) -> f64 {
    let threads = rayon::current_num_threads();
    let isa = Isa::detect();
    let iters = 1 << 16;
    let lanes = isa.dispatch(FmaLoop { iters: 1 }).1;
    let secs = best_time(rounds, min_round, || {
        (0..threads).into_par_iter().with_max_len(1).for_each(|_| {
            black_box(isa.dispatch(FmaLoop { iters: black_box(iters) }));
        });
    });
    (threads * iters * FMA_CHAINS * lanes * 2) as f64 / secs
}

/// The element type of a GEMM's `B` operand in [`gemm_rate`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WeightType {
    /// `f32`.
    F32,
    /// `f16`, converted in the kernel.
    F16,
    /// `bf16`, converted in the kernel.
    Bf16,
}

/// Throughput of the backend's GEMM on an `n×n·n×n` product with `B` in
/// `weights`, in FLOP/s on the current pool.
///
/// # Errors
/// What [`gemm`] reports (nothing for these well-formed operands).
pub fn gemm_rate(n: usize, weights: WeightType, rounds: usize, min_round: Duration) -> Result<f64, KernelError> {
    let a: Vec<f32> = (0..n * n).map(|i| ((i * 7919) % 1000) as f32 * 1e-3 - 0.5).collect();
    let b32: Vec<f32> = (0..n * n).map(|i| ((i * 104_729) % 1000) as f32 * 1e-3 - 0.5).collect();
    let b16: Vec<half::f16> = b32.iter().map(|&x| half::f16::from_f32(x)).collect();
    let bb16: Vec<half::bf16> = b32.iter().map(|&x| half::bf16::from_f32(x)).collect();
    let b = match weights {
        WeightType::F32 => WeightRef::F32(&b32),
        WeightType::F16 => WeightRef::F16(&b16),
        WeightType::Bf16 => WeightRef::BF16(&bb16),
    };
    let mut c = vec![0f32; n * n];
    let dims = GemmDims::new(n, n, n);
    let layout = MatLayout::row_major(n, n);
    let mut result = Ok(());
    let secs = best_time(rounds, min_round, || {
        if result.is_ok() {
            result = gemm(dims, &a, layout, b, layout, &mut c, layout, None);
        }
        black_box(&c);
    });
    result.map(|()| dims.flops() / secs)
}

/// Throughput of the backend's bf16-compute GEMM ([`gemm_bf16`]: `A` rounded to
/// bf16, `bf16` `B`, `f32` sums) on an `n×n·n×n` product, in FLOP/s on the
/// current pool. On a CPU with AVX512_BF16 this is the `vdpbf16ps` kernel
/// (about twice the `f32` rate); elsewhere the widening path, a little below
/// [`gemm_rate`] with `bf16` weights (it also rounds `A`). A cost model uses it
/// for GEMMs lowered with `GemmCompute::Bf16`.
///
/// # Errors
/// What [`gemm_bf16`] reports (nothing for these well-formed operands).
pub fn gemm_bf16_rate(n: usize, rounds: usize, min_round: Duration) -> Result<f64, KernelError> {
    let a: Vec<f32> = (0..n * n).map(|i| ((i * 7919) % 1000) as f32 * 1e-3 - 0.5).collect();
    let b: Vec<half::bf16> = (0..n * n)
        .map(|i| half::bf16::from_f32(((i * 104_729) % 1000) as f32 * 1e-3 - 0.5))
        .collect();
    let mut c = vec![0f32; n * n];
    let dims = GemmDims::new(n, n, n);
    let layout = MatLayout::row_major(n, n);
    let mut result = Ok(());
    let secs = best_time(rounds, min_round, || {
        if result.is_ok() {
            result = gemm_bf16(dims, &a, layout, &b, layout, &mut c, layout, None);
        }
        black_box(&c);
    });
    result.map(|()| dims.flops() / secs)
}

/// Sustained memory bandwidth of the current pool in bytes per second: a copy
/// of `bytes` bytes split across the threads, counting the bytes read and the
/// bytes written (the STREAM convention).
pub fn copy_bandwidth(bytes: usize, rounds: usize, min_round: Duration) -> f64 {
    let n = (bytes / 4).max(1 << 16);
    let src = vec![1f32; n];
    let mut dst = vec![0f32; n];
    let threads = rayon::current_num_threads().max(1);
    let chunk = n.div_ceil(threads);
    let secs = best_time(rounds, min_round, || {
        dst.par_chunks_mut(chunk)
            .zip(src.par_chunks(chunk))
            .for_each(|(d, s)| d.copy_from_slice(s));
        black_box(&dst);
    });
    (2 * n * 4) as f64 / secs
}

/// Fixed cost of one kernel in the executor, in seconds: a program of `kernels`
/// chained elementwise kernels on 16 elements each, so the arithmetic is
/// negligible and what is left is dispatch.
///
/// # Errors
/// What [`Executable::run`] reports (nothing for this well-formed program).
pub fn kernel_overhead(kernels: usize, rounds: usize, min_round: Duration) -> Result<f64, crate::exec::ExecError> {
    use eqopt_kir::{Buffer, BufferKind, ElemType, Expr, Instr, Kernel, Program, UnaryOp, View};
    const LEN: usize = 16;
    let kernels = kernels.max(1);
    let buffer = |name: String, kind| Buffer {
        name,
        elem: ElemType::F32,
        len: LEN,
        kind,
    };
    // Buffers: 0 input, 1 output, 2 and 3 intermediates used alternately.
    let buffers = vec![
        buffer("x".into(), Some(BufferKind::Input)),
        buffer("y".into(), Some(BufferKind::Output)),
        buffer("t0".into(), None),
        buffer("t1".into(), None),
    ];
    let relu = Expr {
        instrs: vec![Instr::Input(0), Instr::Unary(UnaryOp::Relu, 0)],
        num_inputs: 1,
    };
    let ks = (0..kernels)
        .map(|k| {
            let src = if k == 0 { 0 } else { 2 + (k - 1) % 2 };
            let dst = if k + 1 == kernels { 1 } else { 2 + k % 2 };
            Kernel::Elementwise {
                expr: relu.clone(),
                inputs: vec![View::dense(src, &[LEN])],
                out: View::dense(dst, &[LEN]),
            }
        })
        .collect();
    let program = Program {
        name: "kernel-overhead".into(),
        buffers,
        kernels: ks,
        inputs: vec![(0, vec![LEN])],
        outputs: vec![(1, vec![LEN])],
    };
    let exe = Executable::new(program, vec![None, None, Some(0), Some(LEN)], 2 * LEN)?;
    let x = [0.5f32; LEN];
    let mut result = Ok(());
    let secs = best_time(rounds, min_round, || {
        if result.is_ok() {
            result = exe.run(&[InputData::F32(&x)]).map(|o| {
                black_box(o);
            });
        }
    });
    result.map(|()| secs / kernels as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    const QUICK: Duration = Duration::from_millis(5);

    #[test]
    fn probes_return_finite_positive_rates() {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
        pool.install(|| {
            let peak = fma_peak(2, QUICK);
            let rate = gemm_rate(64, WeightType::F32, 2, QUICK).unwrap();
            let rate16 = gemm_rate(64, WeightType::F16, 1, QUICK).unwrap();
            let rate_bf16 = gemm_bf16_rate(64, 1, QUICK).unwrap();
            let bw = copy_bandwidth(1 << 20, 2, QUICK);
            let overhead = kernel_overhead(8, 2, QUICK).unwrap();
            for v in [peak, rate, rate16, rate_bf16, bw, overhead] {
                assert!(v.is_finite() && v > 0.0, "{v}");
            }
        });
    }
}
