//! conv2d against an f64 reference: strides, asymmetric pads, dilation,
//! groups/depthwise, 1×1, NCHW vs NHWC, HWIO weights, f16 weights, bias +
//! epilogue, threading, argument errors.

use eqopt_cpu::KernelError;
use eqopt_cpu::conv::{Conv2dParams, ConvWeightLayout, DataLayout, conv2d, pack_weights};
use eqopt_cpu::gemm::{Tile, WeightRef};
use eqopt_cpu::layout::{nchw_to_nhwc, nhwc_to_nchw};
use half::f16;
use proptest::prelude::*;

fn rand_vec(len: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
    (0..len)
        .map(|_| {
            s = s.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

/// NCHW/OIHW reference: (value, Σ|terms|).
fn reference(p: &Conv2dParams, x: &[f32], w: &dyn Fn(usize) -> f64, bias: Option<&[f32]>) -> Vec<(f64, f64)> {
    let (oh, ow) = p.output_hw().unwrap();
    let (ig, og) = (p.in_channels / p.groups, p.out_channels / p.groups);
    let mut out = Vec::new();
    for n in 0..p.batch {
        for o in 0..p.out_channels {
            let g = o / og;
            for y in 0..oh {
                for xo in 0..ow {
                    let b = bias.map_or(0.0, |b| b[o] as f64);
                    let (mut s, mut mag) = (b, b.abs());
                    for i in 0..ig {
                        for kh in 0..p.kernel_h {
                            for kw in 0..p.kernel_w {
                                let ih = (y * p.stride_h + kh * p.dilation_h) as isize - p.pads[0] as isize;
                                let iw = (xo * p.stride_w + kw * p.dilation_w) as isize - p.pads[1] as isize;
                                if ih < 0 || iw < 0 || ih >= p.in_h as isize || iw >= p.in_w as isize {
                                    continue;
                                }
                                let xv = x[((n * p.in_channels + g * ig + i) * p.in_h + ih as usize) * p.in_w + iw as usize] as f64;
                                let t = xv * w(((o * ig + i) * p.kernel_h + kh) * p.kernel_w + kw);
                                s += t;
                                mag += t.abs();
                            }
                        }
                    }
                    out.push((s, mag));
                }
            }
        }
    }
    out
}

fn check(got_nchw: &[f32], want: &[(f64, f64)], what: &str) {
    assert_eq!(got_nchw.len(), want.len());
    for (idx, (g, (w, mag))) in got_nchw.iter().zip(want).enumerate() {
        assert!(
            (*g as f64 - w).abs() <= 1e-5 * mag + 1e-6,
            "{what}: element {idx}: got {g}, want {w}"
        );
    }
}

/// Runs the convolution in both layouts (NHWC also with HWIO weights) and checks all against the reference.
fn run_all(p: Conv2dParams, bias: bool, f16_weights: bool) {
    let (oh, ow) = p.output_hw().unwrap();
    let x = rand_vec(p.input_len(), 11);
    let wf = rand_vec(p.weight_len(), 12);
    let w16: Vec<f16> = wf.iter().map(|&v| f16::from_f32(v)).collect();
    let b = rand_vec(p.out_channels, 13);
    let bias = bias.then_some(&b[..]);
    let (w, wget): (WeightRef<'_>, Box<dyn Fn(usize) -> f64>) = if f16_weights {
        (WeightRef::F16(&w16), Box::new(|i| w16[i].to_f64()))
    } else {
        (WeightRef::F32(&wf), Box::new(|i| wf[i] as f64))
    };
    let want = reference(&p, &x, &*wget, bias);
    let what = format!("{p:?} f16={f16_weights}");

    let mut y = vec![f32::NAN; p.output_len()];
    conv2d(&p, &x, w, ConvWeightLayout::Oihw, bias, &mut y, None).unwrap();
    check(&y, &want, &format!("NCHW {what}"));

    let ph = p.with_layout(DataLayout::Nhwc);
    let mut xh = vec![0.0; x.len()];
    nchw_to_nhwc(&x, [p.batch, p.in_channels, p.in_h, p.in_w], &mut xh).unwrap();
    let hwio = pack_weights(&p, w, ConvWeightLayout::Oihw, ConvWeightLayout::Hwio).unwrap();
    for (wr, wl) in [(w, ConvWeightLayout::Oihw), (WeightRef::F32(&hwio), ConvWeightLayout::Hwio)] {
        let mut yh = vec![f32::NAN; p.output_len()];
        conv2d(&ph, &xh, wr, wl, bias, &mut yh, None).unwrap();
        let mut back = vec![0.0; yh.len()];
        nhwc_to_nchw(&yh, [p.batch, oh, ow, p.out_channels], &mut back).unwrap();
        check(&back, &want, &format!("NHWC {wl:?} {what}"));
    }
    // HWIO weights with NCHW activations.
    let mut y2 = vec![f32::NAN; p.output_len()];
    conv2d(&p, &x, WeightRef::F32(&hwio), ConvWeightLayout::Hwio, bias, &mut y2, None).unwrap();
    check(&y2, &want, &format!("NCHW/HWIO {what}"));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(160))]
    #[test]
    fn matches_reference(
        batch in 1usize..3, cg in 1usize..5, og in 1usize..5, groups in prop::sample::select(vec![1usize, 2, 3]),
        h in 1usize..12, w in 1usize..12, kh in 1usize..4, kw in 1usize..4, sh in 1usize..3, sw in 1usize..3,
        dh in 1usize..3, dw in 1usize..3, pads in prop::array::uniform4(0usize..3), bias: bool, f16w: bool,
    ) {
        let p = Conv2dParams::new(batch, cg * groups, h, w, og * groups, kh, kw)
            .with_stride(sh, sw).with_dilation(dh, dw).with_pads(pads).with_groups(groups);
        prop_assume!(p.output_hw().is_ok());
        run_all(p, bias, f16w);
    }
}

#[test]
fn named_cases() {
    let cases = [
        // 1×1 direct GEMM path (odd sizes), and 1×1 with stride (im2col path).
        Conv2dParams::new(2, 17, 7, 5, 33, 1, 1),
        Conv2dParams::new(1, 3, 9, 9, 7, 1, 1).with_stride(2, 2),
        // depthwise, multiplier 1 and 2, stride 2, asymmetric pads.
        Conv2dParams::new(2, 33, 15, 17, 33, 3, 3)
            .with_groups(33)
            .with_stride(2, 2)
            .with_pads([1, 0, 2, 1]),
        Conv2dParams::new(1, 16, 9, 8, 32, 3, 3)
            .with_groups(16)
            .with_pads([1, 1, 1, 1])
            .with_dilation(2, 2),
        // grouped with many channels per group (im2col per group).
        Conv2dParams::new(1, 40, 9, 9, 36, 3, 3).with_groups(2).with_pads([1, 1, 1, 1]),
        // first ResNet layer shape, small image; many pixel blocks (depth 576).
        Conv2dParams::new(1, 3, 23, 21, 8, 7, 7).with_stride(2, 2).with_pads([3, 3, 3, 3]),
        Conv2dParams::new(1, 64, 33, 33, 17, 3, 3).with_pads([1, 1, 1, 1]),
        // last-stage shape: few pixels, many output channels.
        Conv2dParams::new(1, 32, 3, 3, 65, 3, 3).with_pads([1, 1, 1, 1]),
    ];
    for p in cases {
        run_all(p, true, false);
    }
}

/// `p` on `pool` with bias `b` and, when `relu`, a ReLU epilogue after it.
fn run_conv(pool: &rayon::ThreadPool, p: &Conv2dParams, x: &[f32], w: &[f32], b: &[f32], relu: bool) -> Vec<f32> {
    let epi = |t: &mut Tile<'_>| t.for_each_row(|_, r| r.iter_mut().for_each(|x| *x = x.max(0.0)));
    let mut y = vec![f32::NAN; p.output_len()];
    pool.install(|| {
        conv2d(
            p,
            x,
            WeightRef::F32(w),
            ConvWeightLayout::Oihw,
            Some(b),
            &mut y,
            if relu { Some(&epi) } else { None },
        )
    })
    .unwrap();
    y
}

/// The implicit-im2col path's blocking: more output pixels than one block
/// holds (1147, past 1024), an uneven last block, and (on 2 threads) few
/// pixels with many output channels, where the channels are split instead.
#[test]
fn implicit_blocks_and_channel_splits() {
    let cases = [
        Conv2dParams::new(1, 5, 37, 31, 19, 3, 3).with_pads([1, 1, 1, 1]),
        Conv2dParams::new(2, 3, 40, 33, 9, 3, 3).with_pads([1, 0, 1, 0]),
        Conv2dParams::new(1, 9, 13, 11, 133, 3, 3).with_pads([1, 1, 1, 1]),
        Conv2dParams::new(1, 7, 5, 5, 257, 2, 2),
        // 64 pixels fill whole tile panels: not transposed, channels split.
        Conv2dParams::new(1, 7, 9, 9, 257, 2, 2),
    ];
    for t in [1, 2] {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(t).build().unwrap();
        for p in cases {
            pool.install(|| run_all(p, true, false));
        }
    }
}

/// Each of `cases` on 1 and 2 threads: against the reference with a bias
/// (and, when `f16`, also with `f16` weights and no bias), and with a ReLU
/// epilogue after the bias against the plain output.
fn on_threads_with_epilogue(cases: &[Conv2dParams], f16: bool) {
    for t in [1, 2] {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(t).build().unwrap();
        for &p in cases {
            pool.install(|| {
                run_all(p, true, false);
                if f16 {
                    run_all(p, false, true);
                }
            });
            let x = rand_vec(p.input_len(), 31);
            let w = rand_vec(p.weight_len(), 32);
            let b = rand_vec(p.out_channels, 33);
            let (plain, fused) = (run_conv(&pool, &p, &x, &w, &b, false), run_conv(&pool, &p, &x, &w, &b, true));
            assert!(plain.iter().zip(&fused).all(|(a, f)| a.max(0.0) == *f), "{p:?}");
        }
    }
}

/// The padded-width path (`NCHW`, stride 1, one group, im2col depth ≥ 96, images wide enough that
/// the padded width wastes at most 1 column in 8, or small enough that the
/// padded columns fill no more tile panels): kernel shapes, dilation,
/// asymmetric pads, two images, output blocks cutting output rows, output
/// channels split over the threads, on 1 and 2 threads, with a user epilogue
/// after the bias.
#[test]
fn padded_width_path() {
    let cases = [
        Conv2dParams::new(2, 11, 19, 33, 30, 3, 3).with_pads([1, 1, 1, 1]),
        Conv2dParams::new(1, 5, 23, 40, 17, 5, 5).with_pads([2, 1, 0, 2]),
        Conv2dParams::new(1, 11, 12, 37, 9, 3, 3)
            .with_pads([1, 1, 1, 1])
            .with_dilation(2, 2),
        Conv2dParams::new(1, 32, 9, 70, 33, 1, 3).with_pads([0, 1, 0, 1]),
        Conv2dParams::new(1, 32, 40, 29, 20, 3, 1).with_pads([1, 0, 1, 0]),
        Conv2dParams::new(1, 16, 47, 47, 32, 3, 3).with_pads([1, 1, 1, 1]),
        Conv2dParams::new(1, 16, 7, 7, 32, 3, 3).with_pads([1, 1, 1, 1]),
        Conv2dParams::new(2, 11, 4, 6, 20, 3, 3).with_pads([1, 1, 1, 1]),
        // Few virtual columns, many channels: split over the output channels
        // on 2 threads.
        Conv2dParams::new(1, 12, 14, 14, 70, 3, 3).with_pads([1, 1, 1, 1]),
        Conv2dParams::new(2, 11, 7, 7, 65, 3, 3).with_pads([1, 1, 1, 1]),
    ];
    on_threads_with_epilogue(&cases, false);
}

/// The transposed few-pixel path (`NCHW`, one group, output pixels filling
/// under 80% of the tile columns, at least 64 output channels filling them
/// better): 1×1 read in place, 1×1 strided, 3×3 with padding, stride and
/// dilation, two images, `f16` weights, on 1 and 2 threads, with a user
/// epilogue after the bias.
#[test]
fn transposed_few_pixel_path() {
    let cases = [
        Conv2dParams::new(1, 19, 7, 7, 64, 1, 1),
        Conv2dParams::new(2, 33, 5, 7, 96, 1, 1),
        Conv2dParams::new(1, 20, 13, 13, 95, 1, 1).with_stride(2, 2),
        Conv2dParams::new(2, 24, 7, 7, 96, 3, 3).with_pads([1, 1, 1, 1]),
        Conv2dParams::new(1, 9, 13, 14, 127, 3, 3).with_stride(2, 2).with_pads([1, 0, 1, 2]),
        Conv2dParams::new(1, 5, 9, 5, 64, 3, 3).with_dilation(2, 2).with_pads([2, 1, 0, 1]),
        Conv2dParams::new(1, 3, 1, 1, 200, 1, 1),
    ];
    on_threads_with_epilogue(&cases, true);
}

/// The depthwise 3×3 path (stride 1 and 2, every pad below 3, planes from
/// 1×1 to wider than a vector, several planes per task, two images), on 1
/// and 2 threads.
#[test]
fn depthwise_3x3_strides_and_pads() {
    let mut cases = Vec::new();
    for (h, w) in [(1, 1), (7, 7), (14, 14), (5, 19), (18, 3)] {
        for stride in [1, 2] {
            for pads in [[1, 1, 1, 1], [0, 0, 0, 0], [2, 0, 1, 2], [0, 2, 2, 1]] {
                let p = Conv2dParams::new(2, 21, h, w, 21, 3, 3)
                    .with_groups(21)
                    .with_stride(stride, stride)
                    .with_pads(pads);
                if p.output_hw().is_ok() {
                    cases.push(p);
                }
            }
        }
    }
    assert!(cases.len() > 30);
    for t in [1, 2] {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(t).build().unwrap();
        for &p in &cases {
            pool.install(|| run_all(p, true, false));
        }
    }
}

#[test]
fn epilogue_after_bias_and_threading() {
    let p1 = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
    let p2 = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
    for base in [
        Conv2dParams::new(2, 16, 14, 14, 24, 1, 1),
        Conv2dParams::new(1, 24, 20, 20, 24, 3, 3).with_groups(24).with_pads([1, 1, 1, 1]),
        Conv2dParams::new(1, 32, 30, 30, 48, 3, 3).with_pads([1, 1, 1, 1]).with_stride(2, 2),
        Conv2dParams::new(3, 8, 5, 5, 64, 3, 3),
    ] {
        for layout in [DataLayout::Nchw, DataLayout::Nhwc] {
            let p = base.with_layout(layout);
            let x = rand_vec(p.input_len(), 21);
            let w = rand_vec(p.weight_len(), 22);
            let b = rand_vec(p.out_channels, 23);
            let run = |pool: &rayon::ThreadPool, epi: bool| run_conv(pool, &p, &x, &w, &b, epi);
            let plain = run(&p1, false);
            let r1 = run(&p1, true);
            let r2 = run(&p2, true);
            for ((a, b1), b2) in plain.iter().zip(&r1).zip(&r2) {
                assert_eq!(a.max(0.0), *b1);
                assert!((b1 - b2).abs() <= 1e-5 * b1.abs().max(1.0), "{p:?}: {b1} vs {b2}");
            }
        }
    }
}

#[test]
fn bad_arguments_are_errors() {
    let p = Conv2dParams::new(1, 4, 5, 5, 6, 3, 3);
    let (x, w) = (vec![0.0; p.input_len()], vec![0.0; p.weight_len()]);
    let mut y = vec![0.0; p.output_len()];
    let wr = WeightRef::F32(&w);
    let oihw = ConvWeightLayout::Oihw;
    assert!(matches!(
        conv2d(&p, &x[1..], wr, oihw, None, &mut y, None),
        Err(KernelError::BufferLength { operand: "input", .. })
    ));
    assert!(matches!(
        conv2d(&p, &x, WeightRef::F32(&w[1..]), oihw, None, &mut y, None),
        Err(KernelError::BufferLength { operand: "weight", .. })
    ));
    assert!(matches!(
        conv2d(&p, &x, wr, oihw, None, &mut y[1..], None),
        Err(KernelError::BufferLength { operand: "output", .. })
    ));
    assert!(matches!(
        conv2d(&p, &x, wr, oihw, Some(&[0.0; 5]), &mut y, None),
        Err(KernelError::BufferLength { operand: "bias", .. })
    ));
    for bad in [
        p.with_groups(3),
        p.with_groups(0),
        p.with_stride(0, 1),
        p.with_dilation(1, 0),
        Conv2dParams::new(1, 4, 2, 2, 6, 3, 3),
    ] {
        assert!(
            matches!(conv2d(&bad, &x, wr, oihw, None, &mut y, None), Err(KernelError::Shape { .. })),
            "{bad:?}"
        );
    }
    let huge = Conv2dParams::new(usize::MAX / 2, 4, 5, 5, 6, 3, 3);
    assert!(matches!(huge.output_hw(), Err(KernelError::Shape { .. })));
}

/// Channel counts around the vector widths, for each implementation path:
/// 1×1 GEMM, im2col (one or several groups of ≥ 16 channels) and the direct
/// kernel (depthwise with multiplier 1–2, or few channels per group).
fn wide_channel_params() -> impl Strategy<Value = Conv2dParams> {
    let per_group = prop::sample::select(vec![1usize, 3, 8, 16, 17, 33]);
    let grouped = (per_group.clone(), prop::sample::select(vec![1usize, 2, 16, 17]), 1usize..4).prop_map(|(ig, og, g)| (ig * g, og * g, g));
    let depthwise = (prop::sample::select(vec![7usize, 8, 16, 17, 33]), 1usize..3).prop_map(|(c, mult)| (c, c * mult, c));
    (
        prop_oneof![grouped, depthwise],
        (1usize..3, 1usize..9, 1usize..9),
        (1usize..4, 1usize..4, 1usize..3, 1usize..3, 1usize..3),
        prop::array::uniform4(0usize..2),
    )
        .prop_map(|((i, o, g), (n, h, w), (kh, kw, s, dh, dw), pads)| {
            Conv2dParams::new(n, i, h, w, o, kh, kw)
                .with_groups(g)
                .with_stride(s, s)
                .with_dilation(dh, dw)
                .with_pads(pads)
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn wide_channels_match_reference(p in wide_channel_params(), bias: bool, pointwise in prop::bool::weighted(0.2)) {
        // The 1×1 direct-GEMM path needs stride 1, no padding and one group.
        let p = if pointwise { Conv2dParams::new(p.batch, p.in_channels, p.in_h, p.in_w, p.out_channels, 1, 1) } else { p };
        prop_assume!(p.output_hw().is_ok());
        for t in [1, 2] {
            rayon::ThreadPoolBuilder::new().num_threads(t).build().unwrap().install(|| run_all(p, bias, false));
        }
    }
}
