//! Best-of-N GEMM/conv throughput probe, robust to a shared, noisy machine:
//! the libraries are timed in alternation and the fastest round is kept.
//! Not a correctness test; run with
//! `cargo run -p eqopt-cpu --release --example gemm_throughput`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use eqopt_cpu::conv::{Conv2dParams, ConvWeightLayout, DataLayout, conv2d};
use eqopt_cpu::gemm::{GemmDims, MatLayout, WeightRef, gemm};

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

/// Fastest per-call time of each closure over `rounds` alternating rounds of ~`slice`.
fn best_of(fs: &mut [&mut dyn FnMut()], rounds: usize, slice: Duration) -> Vec<f64> {
    let mut best = vec![f64::INFINITY; fs.len()];
    let reps: Vec<usize> = fs
        .iter_mut()
        .map(|f| {
            f();
            let t = Instant::now();
            f();
            ((slice.as_secs_f64() / t.elapsed().as_secs_f64().max(1e-7)) as usize).clamp(1, 100_000)
        })
        .collect();
    for _ in 0..rounds {
        for (i, f) in fs.iter_mut().enumerate() {
            let t = Instant::now();
            for _ in 0..reps[i] {
                f();
            }
            best[i] = best[i].min(t.elapsed().as_secs_f64() / reps[i] as f64);
        }
    }
    best
}

fn gemm_throughput() {
    let shapes = [
        (128, 384, 384),
        (128, 384, 1152),
        (128, 384, 1536),
        (128, 1536, 384),
        (3136, 64, 256),
        (784, 128, 512),
        (196, 256, 1024),
        (49, 512, 2048),
        (3136, 576, 64),
        (1, 4096, 4096),
        (1, 2048, 1000),
        (1024, 1024, 1024),
    ];
    println!("| shape m×k×n | threads | eqopt gemm (f32 B) | eqopt gemm (f16 B) | gemm crate alone | matrixmultiply alone (1 thread) |");
    println!("|---|---|---|---|---|---|");
    for threads in [1usize, 2] {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        for &(m, k, n) in &shapes {
            let (a, b) = (data(m * k, 1), data(k * n, 2));
            let b16: Vec<half::f16> = b.iter().map(|&x| half::f16::from_f32(x)).collect();
            let mut c = vec![0.0f32; m * n];
            let cp = Ptr(c.as_mut_ptr());
            let dims = GemmDims::new(m, k, n);
            let (al, bl, cl) = (MatLayout::row_major(m, k), MatLayout::row_major(k, n), MatLayout::row_major(m, n));
            let times = pool.install(|| {
                let mut f_eq = || {
                    gemm(
                        dims,
                        black_box(&a),
                        al,
                        WeightRef::F32(&b),
                        bl,
                        unsafe { std::slice::from_raw_parts_mut(cp.get(), m * n) },
                        cl,
                        None,
                    )
                    .unwrap()
                };
                let mut f_16 = || {
                    gemm(
                        dims,
                        black_box(&a),
                        al,
                        WeightRef::F16(&b16),
                        bl,
                        unsafe { std::slice::from_raw_parts_mut(cp.get(), m * n) },
                        cl,
                        None,
                    )
                    .unwrap()
                };
                let par = if threads > 1 {
                    gemm::Parallelism::Rayon(threads)
                } else {
                    gemm::Parallelism::None
                };
                // SAFETY: dense row-major buffers of the right sizes.
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
                        1,
                        n as isize,
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
                        n as isize,
                        1,
                        0.0,
                        cp.get(),
                        n as isize,
                        1,
                    )
                };
                best_of(&mut [&mut f_eq, &mut f_16, &mut f_gc, &mut f_mm], 12, Duration::from_millis(25))
            });
            let gf = |t: f64| 2.0 * (m * k * n) as f64 / t / 1e9;
            println!(
                "| {m}×{k}×{n} | {threads} | {:.1} | {:.1} | {:.1} | {:.1} |",
                gf(times[0]),
                gf(times[1]),
                gf(times[2]),
                if threads == 1 { gf(times[3]) } else { f64::NAN }
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
            "dw 3×3 144 56² (MobileNetV2)",
            Conv2dParams::new(1, 144, 56, 56, 144, 3, 3)
                .with_pads([1, 1, 1, 1])
                .with_groups(144),
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
                    best_of(&mut [&mut f], 10, Duration::from_millis(30))[0]
                });
                gfs.push(p.flops() / t / 1e9);
            }
            println!("| {name} | {threads} | {:.1} | {:.1} |", gfs[0], gfs[1]);
        }
    }
}

fn main() {
    gemm_throughput();
    conv_throughput();
}
