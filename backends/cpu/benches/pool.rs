//! Pooling throughput: windowed max/average (`pool2d`) and global pooling,
//! NCHW and NHWC, 1 and 2 threads, on batch-1 layers of ResNet-50,
//! SqueezeNet 1.1 and ShuffleNet v2.
//!
//! Throughput: `Throughput::Bytes` = bytes moved (input read once + output
//! written), as these kernels are memory-bound.
//!
//! Filter with e.g. `cargo bench -p eqopt-cpu --bench pool -- 'pool/r50_maxpool'`.

mod common;

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use eqopt_cpu::conv::DataLayout;
use eqopt_cpu::pool::{Pool2dParams, PoolKind, global_pool, pool2d};

use common::{THREADS, config, data, pool};

const LAYOUTS: [DataLayout; 2] = [DataLayout::Nchw, DataLayout::Nhwc];

fn bench_pool2d(cr: &mut Criterion) {
    let p1 = [1, 1, 1, 1];
    let max = PoolKind::Max;
    let avg_excl = PoolKind::Avg { count_include_pad: false };
    let avg_incl = PoolKind::Avg { count_include_pad: true };
    let cases = [
        // Max 3×3 stride 2.
        (
            "r50_maxpool3x3s2_64_112",
            Pool2dParams::new(1, 64, 112, 112, 3, 3).with_stride(2, 2).with_pads(p1),
            max,
        ),
        (
            "shfv2_maxpool3x3s2_24_112",
            Pool2dParams::new(1, 24, 112, 112, 3, 3).with_stride(2, 2).with_pads(p1),
            max,
        ),
        (
            "sqz_maxpool3x3s2_64_111",
            Pool2dParams::new(1, 64, 111, 111, 3, 3).with_stride(2, 2),
            max,
        ),
        // Average 3×3 stride 1, padded (Inception-style), both divisor conventions.
        (
            "avgpool3x3_excl_64_56",
            Pool2dParams::new(1, 64, 56, 56, 3, 3).with_pads(p1),
            avg_excl,
        ),
        (
            "avgpool3x3_incl_64_56",
            Pool2dParams::new(1, 64, 56, 56, 3, 3).with_pads(p1),
            avg_incl,
        ),
        // Average 2×2 stride 2 (DenseNet transition).
        (
            "avgpool2x2s2_128_56",
            Pool2dParams::new(1, 128, 56, 56, 2, 2).with_stride(2, 2),
            avg_excl,
        ),
    ];
    for threads in THREADS {
        let pool = pool(threads);
        for (name, base, kind) in cases {
            let (oh, ow) = base.output_hw().expect("valid pooling");
            let (in_len, out_len) = (
                base.batch * base.channels * base.in_h * base.in_w,
                base.batch * base.channels * oh * ow,
            );
            let mut g = cr.benchmark_group(format!("pool/{name}/t{threads}"));
            // Bytes: input read + output written.
            g.throughput(Throughput::Bytes(((in_len + out_len) * 4) as u64));
            let x = data(in_len, 7);
            let mut y = vec![0.0f32; out_len];
            for layout in LAYOUTS {
                let p = base.with_layout(layout);
                g.bench_function(format!("{layout:?}"), |bch| {
                    pool.install(|| bch.iter(|| pool2d(&p, kind, black_box(&x), &mut y).expect("pool2d")))
                });
            }
            g.finish();
        }
    }
}

fn bench_global(cr: &mut Criterion) {
    // (name, channels, spatial)
    let cases = [
        ("r50_gap_2048_7x7", 2048, 49),
        ("shfv2_gap_1024_7x7", 1024, 49),
        ("sqz_gap_1000_13x13", 1000, 169),
    ];
    for threads in THREADS {
        let pool = pool(threads);
        for (name, c, s) in cases {
            let mut g = cr.benchmark_group(format!("global_pool/{name}/t{threads}"));
            // Bytes: input read + output written.
            g.throughput(Throughput::Bytes(((c * s + c) * 4) as u64));
            let x = data(c * s, 8);
            let mut y = vec![0.0f32; c];
            for layout in LAYOUTS {
                for (kname, kind) in [("avg", PoolKind::Avg { count_include_pad: false }), ("max", PoolKind::Max)] {
                    g.bench_function(format!("{kname}/{layout:?}"), |bch| {
                        pool.install(|| bch.iter(|| global_pool(kind, layout, 1, c, s, black_box(&x), &mut y).expect("global_pool")))
                    });
                }
            }
            g.finish();
        }
    }
}

criterion_group! { name = benches; config = config(); targets = bench_pool2d, bench_global }
criterion_main!(benches);
