//! Best-of-N GEMM/conv throughput probe, robust to a shared, noisy machine:
//! the libraries are timed in alternation and the fastest round is kept.
//! Not a correctness test; run with
//! `cargo run -p eqopt-cpu --release --example gemm_throughput [-- gemm|conv|peak|big|quick]...`
//! (no argument: peak, gemm and conv tables; `big` adds 2048³ to the GEMM table,
//! `quick` keeps only the square shapes and one thread).
//! Single-threaded rows are timed on the thread's CPU-time clock, so time spent
//! descheduled on a busy machine does not count; 2-thread rows use wall time.
//!
//! Columns: eqopt's GEMM with its AVX-512 and AVX2 micro-kernels
//! (`gemm_with_isa`), with `f16` weights (AVX-512), the `gemm` crate alone and
//! `matrixmultiply` alone. `peak` times a register-only FMA loop: the ceiling
//! a GEMM kernel can reach on one core.

use std::hint::black_box;
use std::time::{Duration, Instant};

use eqopt_cpu::conv::{Conv2dParams, ConvWeightLayout, DataLayout, conv2d};
use eqopt_cpu::gemm::{GemmDims, MatLayout, WeightRef, gemm_with_isa};
use eqopt_cpu::simd::Isa;

#[derive(Clone, Copy)]
struct Ptr(*mut f32);
// SAFETY: the probe only writes through it from inside one GEMM call at a time.
unsafe impl Send for Ptr {}
// SAFETY: as above.
unsafe impl Sync for Ptr {}
impl Ptr {
    fn get(self) -> *mut f32 {
        self.0
    }
}

fn data(len: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
    (0..len)
        .map(|_| {
            s = s.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

/// Seconds on a clock: this thread's CPU time when `cpu` (single-threaded runs:
/// time the thread spends descheduled on a shared machine is not counted),
/// else wall time.
fn clock(cpu: bool) -> f64 {
    if cpu {
        let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        // SAFETY: `ts` is a valid timespec to write.
        unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
        ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
    } else {
        thread_local!(static T0: Instant = Instant::now());
        T0.with(|t| t.elapsed().as_secs_f64())
    }
}

/// Fastest per-call time of each closure over `rounds` alternating rounds of
/// ~`slice`, on [`clock`]`(cpu)`.
fn best_of(fs: &mut [&mut dyn FnMut()], rounds: usize, slice: Duration, cpu: bool) -> Vec<f64> {
    let mut best = vec![f64::INFINITY; fs.len()];
    let reps: Vec<usize> = fs
        .iter_mut()
        .map(|f| {
            f();
            let t = clock(cpu);
            f();
            ((slice.as_secs_f64() / (clock(cpu) - t).max(1e-7)) as usize).clamp(1, 100_000)
        })
        .collect();
    for _ in 0..rounds {
        for (i, f) in fs.iter_mut().enumerate() {
            let t = clock(cpu);
            for _ in 0..reps[i] {
                f();
            }
            best[i] = best[i].min((clock(cpu) - t) / reps[i] as f64);
        }
    }
    best
}

fn gemm_throughput(big: bool) {
    let mut shapes = vec![
        (1024, 1024, 1024),
        (128, 384, 384),
        (128, 384, 1152),
        (128, 384, 1536),
        (128, 1536, 384),
        (3136, 64, 256),
        (784, 128, 512),
        (196, 256, 1024),
        (49, 512, 2048),
        (3136, 576, 64),
        (3136, 576, 128),
        (1000, 1000, 1000),
        (1, 4096, 4096),
        (1, 2048, 1000),
    ];
    if big {
        shapes.insert(1, (2048, 2048, 2048));
    }
    if std::env::args().any(|a| a == "vgg") {
        // NCHW convolutions as plain GEMMs (O × I·KH·KW × pixels): VGG-19's 3×3s,
        // ResNet-50's 1×1s and DenseNet's 3×3 128→32s; the ceiling an
        // im2col-free convolution of the same shape could reach.
        shapes = vec![
            (64, 576, 50176),
            (256, 2304, 3136),
            (512, 4608, 784),
            (512, 4608, 196),
            (256, 64, 3136),
            (512, 128, 784),
            (1024, 256, 196),
            (2048, 512, 49),
            (32, 1152, 3136),
            (32, 1152, 784),
            (32, 1152, 196),
        ];
    }
    let quick = std::env::args().any(|a| a == "quick");
    if quick {
        shapes.retain(|s| s.0 == s.1 && s.1 == s.2);
    }
    // Rows with a transposed (column-major) B, e.g. `[out, in]` linear weights.
    let mut shapes: Vec<(usize, usize, usize, bool)> = shapes.into_iter().map(|(m, k, n)| (m, k, n, false)).collect();
    shapes.push((1024, 1024, 1024, true));
    if !quick {
        shapes.push((128, 384, 1152, true));
    }
    println!("| shape m×k×n | threads | eqopt AVX-512 | eqopt AVX2 | eqopt AVX-512, f16 B | gemm crate | matrixmultiply (1 thread) |");
    println!("|---|---|---|---|---|---|---|");
    for threads in [1usize, 2] {
        if quick && threads > 1 {
            break;
        }
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        for &(m, k, n, tb) in &shapes {
            let (a, b) = (data(m * k, 1), data(k * n, 2));
            let b16: Vec<half::f16> = b.iter().map(|&x| half::f16::from_f32(x)).collect();
            let mut c = vec![0.0f32; m * n];
            let cp = Ptr(c.as_mut_ptr());
            let dims = GemmDims::new(m, k, n);
            let (al, cl) = (MatLayout::row_major(m, k), MatLayout::row_major(m, n));
            let bl = if tb {
                MatLayout::col_major(k, n)
            } else {
                MatLayout::row_major(k, n)
            };
            let (rsb, csb) = (bl.row_stride as isize, bl.col_stride as isize);
            let times = pool.install(|| {
                let run = |isa: Isa, w: WeightRef<'_>| {
                    gemm_with_isa(
                        isa,
                        dims,
                        black_box(&a),
                        al,
                        w,
                        bl,
                        // SAFETY: the only live view of `c` during the call.
                        unsafe { std::slice::from_raw_parts_mut(cp.get(), m * n) },
                        cl,
                        None,
                    )
                    .unwrap()
                };
                let mut f_512 = || run(Isa::Avx512, WeightRef::F32(&b));
                let mut f_avx2 = || run(Isa::Avx2, WeightRef::F32(&b));
                let mut f_16 = || run(Isa::Avx512, WeightRef::F16(&b16));
                let par = if threads > 1 {
                    gemm::Parallelism::Rayon(threads)
                } else {
                    gemm::Parallelism::None
                };
                // SAFETY: dense buffers of the right sizes in the layouts given.
                let mut f_gc = || unsafe {
                    gemm::gemm(
                        m,
                        n,
                        k,
                        cp.get(),
                        1,
                        n as isize,
                        false,
                        a.as_ptr(),
                        1,
                        k as isize,
                        b.as_ptr(),
                        csb,
                        rsb,
                        0.0,
                        1.0,
                        false,
                        false,
                        false,
                        par,
                    )
                };
                // SAFETY: as above.
                let mut f_mm = || unsafe {
                    matrixmultiply::sgemm(
                        m,
                        k,
                        n,
                        1.0,
                        a.as_ptr(),
                        k as isize,
                        1,
                        b.as_ptr(),
                        rsb,
                        csb,
                        0.0,
                        cp.get(),
                        n as isize,
                        1,
                    )
                };
                best_of(
                    &mut [&mut f_512, &mut f_avx2, &mut f_16, &mut f_gc, &mut f_mm],
                    12,
                    Duration::from_millis(25),
                    threads == 1,
                )
            });
            let gf = |t: f64| 2.0 * (m * k * n) as f64 / t / 1e9;
            let t = if tb { " (Bᵀ)" } else { "" };
            println!(
                "| {m}×{k}×{n}{t} | {threads} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} |",
                gf(times[0]),
                gf(times[1]),
                gf(times[2]),
                gf(times[3]),
                if threads == 1 { gf(times[4]) } else { f64::NAN }
            );
            c[0] = 0.0;
        }
    }
}

fn conv_throughput() {
    let layers = [
        (
            "conv1 7×7/2 3→64 224²",
            Conv2dParams::new(1, 3, 224, 224, 64, 7, 7)
                .with_stride(2, 2)
                .with_pads([3, 3, 3, 3]),
        ),
        ("3×3 64→64 56²", Conv2dParams::new(1, 64, 56, 56, 64, 3, 3).with_pads([1, 1, 1, 1])),
        ("1×1 64→256 56²", Conv2dParams::new(1, 64, 56, 56, 256, 1, 1)),
        (
            "3×3/2 128→128 56²",
            Conv2dParams::new(1, 128, 56, 56, 128, 3, 3)
                .with_stride(2, 2)
                .with_pads([1, 1, 1, 1]),
        ),
        ("3×3 512→512 7²", Conv2dParams::new(1, 512, 7, 7, 512, 3, 3).with_pads([1, 1, 1, 1])),
        (
            "3×3 64→64 224² (VGG)",
            Conv2dParams::new(1, 64, 224, 224, 64, 3, 3).with_pads([1, 1, 1, 1]),
        ),
        (
            "3×3 256→256 56² (VGG)",
            Conv2dParams::new(1, 256, 56, 56, 256, 3, 3).with_pads([1, 1, 1, 1]),
        ),
        (
            "3×3 512→512 28² (VGG)",
            Conv2dParams::new(1, 512, 28, 28, 512, 3, 3).with_pads([1, 1, 1, 1]),
        ),
        (
            "3×3 512→512 14² (VGG)",
            Conv2dParams::new(1, 512, 14, 14, 512, 3, 3).with_pads([1, 1, 1, 1]),
        ),
        (
            "3×3 128→32 14² (DenseNet)",
            Conv2dParams::new(1, 128, 14, 14, 32, 3, 3).with_pads([1, 1, 1, 1]),
        ),
        (
            "dw 3×3 144 56² (MobileNetV2)",
            Conv2dParams::new(1, 144, 56, 56, 144, 3, 3)
                .with_pads([1, 1, 1, 1])
                .with_groups(144),
        ),
        (
            "dw 3×3 272 14² (ShuffleNet)",
            Conv2dParams::new(1, 272, 14, 14, 272, 3, 3)
                .with_pads([1, 1, 1, 1])
                .with_groups(272),
        ),
        (
            "dw 3×3 544 7² (ShuffleNet)",
            Conv2dParams::new(1, 544, 7, 7, 544, 3, 3).with_pads([1, 1, 1, 1]).with_groups(544),
        ),
        (
            "3×3 128→32 56² (DenseNet)",
            Conv2dParams::new(1, 128, 56, 56, 32, 3, 3).with_pads([1, 1, 1, 1]),
        ),
        (
            "3×3 128→32 28² (DenseNet)",
            Conv2dParams::new(1, 128, 28, 28, 32, 3, 3).with_pads([1, 1, 1, 1]),
        ),
        (
            "g4 1×1 272→272 14² (ShuffleNet)",
            Conv2dParams::new(1, 272, 14, 14, 272, 1, 1).with_groups(4),
        ),
    ];
    println!("| layer (batch 1) | threads | NCHW GFLOP/s | NHWC GFLOP/s |");
    println!("|---|---|---|---|");
    for threads in [1usize, 2] {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        for (name, base) in layers {
            let mut gfs = Vec::new();
            for layout in [DataLayout::Nchw, DataLayout::Nhwc] {
                let p = base.with_layout(layout);
                let (x, w, b) = (data(p.input_len(), 3), data(p.weight_len(), 4), data(p.out_channels, 5));
                let mut y = vec![0.0f32; p.output_len()];
                let t = pool.install(|| {
                    let mut f = || {
                        conv2d(
                            &p,
                            black_box(&x),
                            WeightRef::F32(&w),
                            ConvWeightLayout::Oihw,
                            Some(&b),
                            &mut y,
                            None,
                        )
                        .unwrap()
                    };
                    best_of(&mut [&mut f], 10, Duration::from_millis(30), threads == 1)[0]
                });
                gfs.push(p.flops() / t / 1e9);
            }
            println!("| {name} | {threads} | {:.1} | {:.1} |", gfs[0], gfs[1]);
        }
    }
}

/// Register-only FMA throughput (GFLOP/s, one thread): `CHAINS` independent
/// accumulators, enough to cover the FMA latency on every current x86 core.
#[cfg(target_arch = "x86_64")]
fn fma_peak() {
    use std::arch::x86_64::*;
    const CHAINS: usize = 12;
    const ITERS: usize = 20_000_000;
    #[target_feature(enable = "avx512f")]
    fn zmm(x: f32) -> f32 {
        let (m, a) = (_mm512_set1_ps(x), _mm512_set1_ps(1e-9));
        let mut acc = [_mm512_set1_ps(x); CHAINS];
        for _ in 0..ITERS {
            for r in acc.iter_mut() {
                *r = _mm512_fmadd_ps(*r, m, a);
            }
        }
        acc.iter().map(|&r| _mm512_reduce_add_ps(r)).sum()
    }
    #[target_feature(enable = "avx2,fma")]
    fn ymm(x: f32) -> f32 {
        let (m, a) = (_mm256_set1_ps(x), _mm256_set1_ps(1e-9));
        let mut acc = [_mm256_set1_ps(x); CHAINS];
        for _ in 0..ITERS {
            for r in acc.iter_mut() {
                *r = _mm256_fmadd_ps(*r, m, a);
            }
        }
        let mut out = [0.0f32; 8];
        // SAFETY: `out` holds 8 floats.
        unsafe { _mm256_storeu_ps(out.as_mut_ptr(), acc.iter().fold(_mm256_setzero_ps(), |s, &r| _mm256_add_ps(s, r))) };
        out.iter().sum()
    }
    for (name, lanes, isa) in [("AVX-512", 16, Isa::Avx512), ("AVX2", 8, Isa::Avx2)] {
        if !Isa::available().contains(&isa) {
            continue;
        }
        let mut best = f64::INFINITY;
        for _ in 0..5 {
            let t = clock(true);
            // SAFETY: the CPU supports the ISA (checked above).
            let r = unsafe {
                if lanes == 16 {
                    zmm(black_box(0.999))
                } else {
                    ymm(black_box(0.999))
                }
            };
            black_box(r);
            best = best.min(clock(true) - t);
        }
        let flops = (ITERS * CHAINS * lanes * 2) as f64;
        println!("FMA peak ({name}, 1 thread, register-only): {:.1} GFLOP/s", flops / best / 1e9);
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let all = args.iter().all(|a| a == "big" || a == "quick");
    let has = |s: &str| all || args.iter().any(|a| a == s);
    #[cfg(target_arch = "x86_64")]
    if has("peak") {
        fma_peak();
    }
    if has("gemm") {
        gemm_throughput(args.iter().any(|a| a == "big"));
    }
    if has("conv") {
        conv_throughput();
    }
}
