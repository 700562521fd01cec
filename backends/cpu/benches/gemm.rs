//! GEMM throughput: eqopt-cpu's `gemm` (blocked over rayon's current pool, the
//! project's packed SGEMM per block, with its AVX-512 and its AVX2 micro-kernels
//! via `gemm_with_isa`) against the `gemm` crate alone and `matrixmultiply`, on
//! 1024³ and model shapes, with 1 and 2 threads; plus ResNet-50 convolution
//! layers. Throughput is reported in "elements/s" where one element is one
//! floating-point operation (2·m·k·n). For a quick, noise-robust comparison on a
//! shared machine prefer `examples/gemm_throughput.rs` (alternating best-of-N).
//!
//! `gemm_bf16/*` compares the `f32` GEMM with the bf16-compute one (`gemm_bf16`:
//! the AVX-512 BF16 `vdpbf16ps` kernel where the CPU has it, and its widening
//! fallback on the `f32` AVX-512 kernel) on the MiniLM/BERT shapes and 1024³.
//!
//! Filter with e.g. `cargo bench -p eqopt-cpu --bench gemm -- 'gemm/bert'`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use eqopt_cpu::gemm::{GemmDims, MatLayout, WeightRef, gemm_bf16_widened_with_isa, gemm_bf16_with_isa, gemm_with_isa};
use eqopt_cpu::simd::Isa;

mod common;
use common::data;

/// (name, m, k, n)
const SHAPES: &[(&str, usize, usize, usize)] = &[
    ("square_1024", 1024, 1024, 1024),
    ("bert_qkv_128x384x1152", 128, 384, 1152),
    ("bert_proj_128x384x384", 128, 384, 384),
    ("bert_ffn1_128x384x1536", 128, 384, 1536),
    ("bert_ffn2_128x1536x384", 128, 1536, 384),
    ("r50_1x1_3136x64x256", 3136, 64, 256),
    ("r50_1x1_784x128x512", 784, 128, 512),
    ("r50_1x1_196x256x1024", 196, 256, 1024),
    ("r50_1x1_49x512x2048", 49, 512, 2048),
    ("r50_im2col_3136x576x64", 3136, 576, 64),
    ("fc_gemv_1x4096x4096", 1, 4096, 4096),
    ("fc_gemv_1x2048x1000", 1, 2048, 1000),
];

fn eq_gemm(isa: Isa, m: usize, k: usize, n: usize, a: &[f32], b: WeightRef<'_>, c: &mut [f32]) {
    let dims = GemmDims::new(m, k, n);
    gemm_with_isa(
        isa,
        dims,
        a,
        MatLayout::row_major(m, k),
        b,
        MatLayout::row_major(k, n),
        c,
        MatLayout::row_major(m, n),
        None,
    )
    .unwrap();
}

fn crate_gemm(m: usize, k: usize, n: usize, a: &[f32], b: &[f32], c: &mut [f32], threads: usize) {
    let par = if threads > 1 {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: dense row-major m×k, k×n, m×n buffers of the right lengths.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
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
    }
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
}

fn bench_shapes(cr: &mut Criterion) {
    for threads in [1usize, 2] {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        for &(name, m, k, n) in SHAPES {
            let (a, b) = (data(m * k, 1), data(k * n, 2));
            let b16: Vec<half::f16> = b.iter().map(|&x| half::f16::from_f32(x)).collect();
            let mut c = vec![0.0f32; m * n];
            let mut g = cr.benchmark_group(format!("gemm/{name}/t{threads}"));
            g.throughput(Throughput::Elements((2 * m * k * n) as u64));
            g.bench_function("eqopt", |bch| {
                pool.install(|| bch.iter(|| eq_gemm(Isa::Avx512, m, k, n, black_box(&a), WeightRef::F32(&b), &mut c)))
            });
            g.bench_function("eqopt_avx2", |bch| {
                pool.install(|| bch.iter(|| eq_gemm(Isa::Avx2, m, k, n, black_box(&a), WeightRef::F32(&b), &mut c)))
            });
            g.bench_function("gemm_crate", |bch| {
                pool.install(|| bch.iter(|| crate_gemm(m, k, n, black_box(&a), &b, &mut c, threads)))
            });
            g.bench_function("eqopt_f16w", |bch| {
                pool.install(|| bch.iter(|| eq_gemm(Isa::Avx512, m, k, n, black_box(&a), WeightRef::F16(&b16), &mut c)))
            });
            if threads == 1 {
                g.bench_function("matrixmultiply", |bch| {
                    bch.iter(|| {
                        // SAFETY: dense row-major buffers of the right lengths.
                        unsafe {
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
                                c.as_mut_ptr(),
                                n as isize,
                                1,
                            )
                        }
                    })
                });
            }
            g.finish();
        }
    }
}

/// `f32` GEMM against bf16-compute GEMM (dot kernel and widening fallback).
fn bench_bf16(cr: &mut Criterion) {
    const BF16_SHAPES: &[(&str, usize, usize, usize)] = &[
        ("bert_proj_128x384x384", 128, 384, 384),
        ("bert_ffn1_128x384x1536", 128, 384, 1536),
        ("bert_ffn2_128x1536x384", 128, 1536, 384),
        ("square_1024", 1024, 1024, 1024),
    ];
    for threads in [1usize, 2] {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        for &(name, m, k, n) in BF16_SHAPES {
            let (a, b) = (data(m * k, 1), data(k * n, 2));
            let bb: Vec<half::bf16> = b.iter().map(|&x| half::bf16::from_f32(x)).collect();
            let mut c = vec![0.0f32; m * n];
            let (dims, al, bl, cl) = (
                GemmDims::new(m, k, n),
                MatLayout::row_major(m, k),
                MatLayout::row_major(k, n),
                MatLayout::row_major(m, n),
            );
            let mut g = cr.benchmark_group(format!("gemm_bf16/{name}/t{threads}"));
            g.throughput(Throughput::Elements((2 * m * k * n) as u64));
            g.bench_function("f32", |bch| {
                pool.install(|| bch.iter(|| eq_gemm(Isa::Avx512, m, k, n, black_box(&a), WeightRef::F32(&b), &mut c)))
            });
            g.bench_function("bf16", |bch| {
                pool.install(|| bch.iter(|| gemm_bf16_with_isa(Isa::Avx512, dims, black_box(&a), al, &bb, bl, &mut c, cl, None).unwrap()))
            });
            g.bench_function("bf16_widened", |bch| {
                pool.install(|| {
                    bch.iter(|| gemm_bf16_widened_with_isa(Isa::Avx512, dims, black_box(&a), al, &bb, bl, &mut c, cl, None).unwrap())
                })
            });
            g.finish();
        }
    }
}

/// ResNet-50 (and one MobileNet depthwise) convolution layers, batch 1.
fn bench_conv(cr: &mut Criterion) {
    use eqopt_cpu::conv::{Conv2dParams, ConvWeightLayout, DataLayout, conv2d};
    let layers = [
        (
            "r50_conv1_7x7s2_3to64_224",
            Conv2dParams::new(1, 3, 224, 224, 64, 7, 7)
                .with_stride(2, 2)
                .with_pads([3, 3, 3, 3]),
        ),
        ("r50_3x3_64_56", Conv2dParams::new(1, 64, 56, 56, 64, 3, 3).with_pads([1, 1, 1, 1])),
        ("r50_1x1_64to256_56", Conv2dParams::new(1, 64, 56, 56, 256, 1, 1)),
        ("r50_3x3_512_7", Conv2dParams::new(1, 512, 7, 7, 512, 3, 3).with_pads([1, 1, 1, 1])),
        (
            "mbv2_dw3x3_144_56",
            Conv2dParams::new(1, 144, 56, 56, 144, 3, 3)
                .with_pads([1, 1, 1, 1])
                .with_groups(144),
        ),
    ];
    for threads in [1usize, 2] {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        for (name, base) in layers {
            let mut g = cr.benchmark_group(format!("conv/{name}/t{threads}"));
            g.throughput(Throughput::Elements(base.flops() as u64));
            for layout in [DataLayout::Nchw, DataLayout::Nhwc] {
                let p = base.with_layout(layout);
                let (x, w, b) = (data(p.input_len(), 3), data(p.weight_len(), 4), data(p.out_channels, 5));
                let mut y = vec![0.0f32; p.output_len()];
                g.bench_function(format!("{layout:?}"), |bch| {
                    pool.install(|| {
                        bch.iter(|| {
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
                        })
                    })
                });
            }
            g.finish();
        }
    }
}

criterion_group! { name = benches; config = config(); targets = bench_shapes, bench_bf16, bench_conv }
criterion_main!(benches);
