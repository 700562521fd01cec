//! Convolution throughput per implementation path (1×1 GEMM, im2col + GEMM,
//! direct grouped/depthwise), NCHW and NHWC, 1 and 2 threads, on batch-1 layers
//! of ResNet-50, SqueezeNet 1.1, ShuffleNet (v1 g=3, v2) and ResNeXt-50.
//!
//! Throughput: `Throughput::Elements` = floating-point operations
//! (2 per multiply-add, [`Conv2dParams::flops`]), so criterion's "elem/s" is FLOP/s.
//!
//! Filter with e.g. `cargo bench -p eqopt-cpu --bench conv -- 'conv/r50_stem'`.

mod common;

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use eqopt_cpu::conv::{Conv2dParams, ConvWeightLayout, DataLayout, conv2d, pack_weights};
use eqopt_cpu::gemm::WeightRef;

use common::{THREADS, config, data, pool};

fn layers() -> Vec<(&'static str, Conv2dParams)> {
    let p1 = [1, 1, 1, 1];
    vec![
        // 1×1, stride 1: the direct-GEMM path.
        ("r50_1x1_64to256_56", Conv2dParams::new(1, 64, 56, 56, 256, 1, 1)),
        ("sqz_fire2_squeeze_1x1_64to16_55", Conv2dParams::new(1, 64, 55, 55, 16, 1, 1)),
        // 3×3, stride 1: im2col + GEMM.
        ("r50_3x3_64_56", Conv2dParams::new(1, 64, 56, 56, 64, 3, 3).with_pads(p1)),
        (
            "sqz_fire2_expand_3x3_16to64_55",
            Conv2dParams::new(1, 16, 55, 55, 64, 3, 3).with_pads(p1),
        ),
        // 3×3, stride 2 (ResNet-50 v1.5 layer2 downsampling).
        (
            "r50_3x3s2_128_56",
            Conv2dParams::new(1, 128, 56, 56, 128, 3, 3).with_stride(2, 2).with_pads(p1),
        ),
        // Depthwise 3×3 (ShuffleNet v2 stage 2, stride 1 and the stride-2 downsampling unit).
        (
            "shfv2_dw3x3_58_28",
            Conv2dParams::new(1, 58, 28, 28, 58, 3, 3).with_pads(p1).with_groups(58),
        ),
        (
            "shfv2_dw3x3s2_116_28",
            Conv2dParams::new(1, 116, 28, 28, 116, 3, 3)
                .with_stride(2, 2)
                .with_pads(p1)
                .with_groups(116),
        ),
        // Grouped: ShuffleNet v1 (g=3) 1×1 group conv (80 channels per group: im2col
        // per group) and ResNeXt-50 32×4d 3×3 (4 channels per group: direct kernel).
        (
            "shfv1_g3_1x1_240to60_28",
            Conv2dParams::new(1, 240, 28, 28, 60, 1, 1).with_groups(3),
        ),
        (
            "rnx50_g32_3x3_128_56",
            Conv2dParams::new(1, 128, 56, 56, 128, 3, 3).with_pads(p1).with_groups(32),
        ),
        // 7×7 stride-2 stem.
        (
            "r50_stem_7x7s2_3to64_224",
            Conv2dParams::new(1, 3, 224, 224, 64, 7, 7)
                .with_stride(2, 2)
                .with_pads([3, 3, 3, 3]),
        ),
    ]
}

fn bench_conv(cr: &mut Criterion) {
    for threads in THREADS {
        let pool = pool(threads);
        for (name, base) in layers() {
            let mut g = cr.benchmark_group(format!("conv/{name}/t{threads}"));
            // FLOPs (2 per multiply-add).
            g.throughput(Throughput::Elements(base.flops() as u64));
            for layout in [DataLayout::Nchw, DataLayout::Nhwc] {
                let p = base.with_layout(layout);
                let (x, w, b) = (data(p.input_len(), 3), data(p.weight_len(), 4), data(p.out_channels, 5));
                // Weights as the executor passes them (OIHW for NCHW, HWIO for NHWC:
                // see exec/ops.rs), so no per-call repacking is timed.
                let (w, wl) = match layout {
                    DataLayout::Nchw => (w, ConvWeightLayout::Oihw),
                    DataLayout::Nhwc => (
                        pack_weights(&p, WeightRef::F32(&w), ConvWeightLayout::Oihw, ConvWeightLayout::Hwio).expect("pack"),
                        ConvWeightLayout::Hwio,
                    ),
                };
                let mut y = vec![0.0f32; p.output_len()];
                g.bench_function(format!("{layout:?}"), |bch| {
                    pool.install(|| bch.iter(|| conv2d(&p, black_box(&x), WeightRef::F32(&w), wl, Some(&b), &mut y, None).expect("conv2d")))
                });
            }
            g.finish();
        }
    }
}

criterion_group! { name = benches; config = config(); targets = bench_conv }
criterion_main!(benches);
