//! Pooling against an f64 reference, NCHW and NHWC, plus argument errors.

use eqopt_cpu::KernelError;
use eqopt_cpu::conv::DataLayout;
use eqopt_cpu::layout::{nchw_to_nhwc, nhwc_to_nchw};
use eqopt_cpu::pool::{Pool2dParams, PoolKind, global_pool, pool2d};
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

fn reference(p: &Pool2dParams, kind: PoolKind, x: &[f32]) -> Vec<f64> {
    let (oh, ow) = p.output_hw().unwrap();
    let mut out = Vec::new();
    for plane in x.chunks(p.in_h * p.in_w) {
        for y in 0..oh {
            for xo in 0..ow {
                let (mut mx, mut sum, mut cnt) = (f64::NEG_INFINITY, 0.0, 0usize);
                for kh in 0..p.kernel_h {
                    for kw in 0..p.kernel_w {
                        let ih = (y * p.stride_h + kh * p.dilation_h) as isize - p.pads[0] as isize;
                        let iw = (xo * p.stride_w + kw * p.dilation_w) as isize - p.pads[1] as isize;
                        if ih < 0 || iw < 0 || ih >= p.in_h as isize || iw >= p.in_w as isize {
                            continue;
                        }
                        let v = plane[ih as usize * p.in_w + iw as usize] as f64;
                        mx = mx.max(v);
                        sum += v;
                        cnt += 1;
                    }
                }
                out.push(match kind {
                    PoolKind::Max => mx,
                    PoolKind::Avg { count_include_pad: true } => sum / (p.kernel_h * p.kernel_w) as f64,
                    PoolKind::Avg { count_include_pad: false } => sum / cnt as f64,
                });
            }
        }
    }
    out
}

fn run_both(p: Pool2dParams, kind: PoolKind) {
    let (oh, ow) = p.output_hw().unwrap();
    let x = rand_vec(p.batch * p.channels * p.in_h * p.in_w, 31);
    let want = reference(&p, kind, &x);
    let mut y = vec![f32::NAN; want.len()];
    pool2d(&p, kind, &x, &mut y).unwrap();
    let mut xh = vec![0.0; x.len()];
    nchw_to_nhwc(&x, [p.batch, p.channels, p.in_h, p.in_w], &mut xh).unwrap();
    let mut yh = vec![f32::NAN; want.len()];
    pool2d(&p.with_layout(DataLayout::Nhwc), kind, &xh, &mut yh).unwrap();
    let mut back = vec![0.0; want.len()];
    nhwc_to_nchw(&yh, [p.batch, oh, ow, p.channels], &mut back).unwrap();
    for (i, w) in want.iter().enumerate() {
        assert!((y[i] as f64 - w).abs() <= 1e-6, "NCHW {p:?} {kind:?} [{i}]: {} vs {w}", y[i]);
        assert!((back[i] as f64 - w).abs() <= 1e-6, "NHWC {p:?} {kind:?} [{i}]: {} vs {w}", back[i]);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    #[test]
    fn matches_reference(
        batch in 1usize..3, c in 1usize..5, h in 1usize..14, w in 1usize..14, kh in 1usize..4, kw in 1usize..4,
        sh in 1usize..4, sw in 1usize..4, dh in 1usize..3, dw in 1usize..3, pads in prop::array::uniform4(0usize..3), kind in 0u8..3,
    ) {
        let p = Pool2dParams::new(batch, c, h, w, kh, kw).with_stride(sh, sw).with_dilation(dh, dw).with_pads(pads);
        prop_assume!(p.output_hw().is_ok());
        let kind = match kind { 0 => PoolKind::Max, 1 => PoolKind::Avg { count_include_pad: true }, _ => PoolKind::Avg { count_include_pad: false } };
        run_both(p, kind);
    }
}

#[test]
fn resnet_maxpool_and_threads() {
    let p = Pool2dParams::new(2, 17, 33, 33, 3, 3).with_stride(2, 2).with_pads([1, 1, 1, 1]);
    run_both(p, PoolKind::Max);
    let x = rand_vec(2 * 17 * 33 * 33, 32);
    let (oh, ow) = p.output_hw().unwrap();
    let run = |t: usize| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(t).build().unwrap();
        let mut y = vec![0.0; 2 * 17 * oh * ow];
        pool.install(|| pool2d(&p, PoolKind::Avg { count_include_pad: false }, &x, &mut y))
            .unwrap();
        y
    };
    assert_eq!(run(1), run(2));
}

/// Small planes grouped several per task (37 planes of 20×20 in groups of
/// 11, the last one short; 2 images × 19 planes of 15×16 outputs in groups
/// of 18, one spanning both images; 300 tiny planes in one task), and windows covering
/// the whole unpadded plane (run as global pooling), each kind, NCHW and NHWC,
/// on 1 and 2 threads.
#[test]
fn grouped_planes_and_whole_plane_windows() {
    let cases = [
        Pool2dParams::new(1, 37, 20, 20, 3, 3).with_pads([1, 1, 1, 1]),
        Pool2dParams::new(2, 19, 30, 31, 3, 3).with_stride(2, 2).with_pads([0, 0, 1, 1]),
        Pool2dParams::new(1, 300, 3, 4, 2, 2),
        Pool2dParams::new(2, 9, 5, 6, 5, 6),
        Pool2dParams::new(1, 3, 7, 7, 7, 7).with_pads([1, 0, 0, 0]),
    ];
    let kinds = [
        PoolKind::Max,
        PoolKind::Avg { count_include_pad: true },
        PoolKind::Avg { count_include_pad: false },
    ];
    for t in [1, 2] {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(t).build().unwrap();
        for p in cases {
            for kind in kinds {
                pool.install(|| run_both(p, kind));
            }
        }
    }
}

#[test]
fn global_pools() {
    for (n, c, s) in [(1, 1, 1), (2, 3, 49), (3, 17, 65), (1, 64, 1000)] {
        let x = rand_vec(n * c * s, 33);
        for kind in [PoolKind::Max, PoolKind::Avg { count_include_pad: false }] {
            let mut y = vec![0.0; n * c];
            global_pool(kind, DataLayout::Nchw, n, c, s, &x, &mut y).unwrap();
            let mut xh = vec![0.0; x.len()];
            nchw_to_nhwc(&x, [n, c, s, 1], &mut xh).unwrap();
            let mut yh = vec![0.0; n * c];
            global_pool(kind, DataLayout::Nhwc, n, c, s, &xh, &mut yh).unwrap();
            for (i, plane) in x.chunks(s).enumerate() {
                let want = match kind {
                    PoolKind::Max => plane.iter().fold(f64::NEG_INFINITY, |a, &b| a.max(b as f64)),
                    _ => plane.iter().map(|&v| v as f64).sum::<f64>() / s as f64,
                };
                assert!((y[i] as f64 - want).abs() <= 1e-5, "{kind:?} {i}");
                assert!((yh[i] as f64 - want).abs() <= 1e-5, "{kind:?} NHWC {i}");
            }
        }
    }
}

#[test]
fn bad_arguments_are_errors() {
    let p = Pool2dParams::new(1, 2, 6, 6, 2, 2);
    let x = vec![0.0; 72];
    let mut y = vec![0.0; 18];
    assert!(matches!(
        pool2d(&p, PoolKind::Max, &x[1..], &mut y),
        Err(KernelError::BufferLength { operand: "input", .. })
    ));
    assert!(matches!(
        pool2d(&p, PoolKind::Max, &x, &mut y[1..]),
        Err(KernelError::BufferLength { operand: "output", .. })
    ));
    for bad in [
        p.with_stride(0, 1),
        p.with_pads([2, 0, 0, 0]),
        Pool2dParams::new(1, 2, 1, 1, 3, 3),
        p.with_dilation(0, 1),
    ] {
        assert!(
            matches!(pool2d(&bad, PoolKind::Max, &x, &mut y), Err(KernelError::Shape { .. })),
            "{bad:?}"
        );
    }
    let mut g = vec![0.0; 2];
    assert!(matches!(
        global_pool(PoolKind::Max, DataLayout::Nchw, 1, 2, 35, &x, &mut g),
        Err(KernelError::BufferLength { .. })
    ));
    assert!(matches!(
        global_pool(PoolKind::Max, DataLayout::Nchw, 1, 2, 0, &[], &mut g),
        Err(KernelError::Shape { .. })
    ));
}

fn channels() -> impl Strategy<Value = usize> {
    prop_oneof![Just(1usize), Just(7), Just(8), Just(15), Just(16), Just(17), Just(33), 1usize..70]
}

/// Runs `f` in a 1-thread and in a 2-thread pool.
fn on_1_and_2_threads(mut f: impl FnMut() + Send) {
    for t in [1, 2] {
        rayon::ThreadPoolBuilder::new().num_threads(t).build().unwrap().install(&mut f);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Channel counts around the vector widths (the NHWC kernels vectorise
    /// along channels), on the serial and the parallel paths.
    #[test]
    fn wide_channels_match_reference(
        batch in 1usize..3, c in channels(), h in 1usize..10, w in 1usize..10, kh in 1usize..4, kw in 1usize..4,
        sh in 1usize..3, sw in 1usize..3, pads in prop::array::uniform4(0usize..2), kind in 0u8..3,
    ) {
        // Pads below the kernel extent, so (almost) every shape is valid.
        let pads = [pads[0].min(kh - 1), pads[1].min(kw - 1), pads[2].min(kh - 1), pads[3].min(kw - 1)];
        let p = Pool2dParams::new(batch, c, h, w, kh, kw).with_stride(sh, sw).with_pads(pads);
        prop_assume!(p.output_hw().is_ok());
        let kind = match kind { 0 => PoolKind::Max, 1 => PoolKind::Avg { count_include_pad: true }, _ => PoolKind::Avg { count_include_pad: false } };
        on_1_and_2_threads(|| run_both(p, kind));
    }

    /// Global max/average over odd, 1-sized and long spatial extents, both
    /// layouts, 1 and 2 threads, against an f64 reference.
    #[test]
    fn global_pool_matches_reference(
        n in 1usize..4, c in channels(),
        s in prop_oneof![Just(1usize), Just(15), Just(16), Just(17), Just(49), 1usize..300, Just(3136)],
        max: bool, seed in any::<u64>(),
    ) {
        let kind = if max { PoolKind::Max } else { PoolKind::Avg { count_include_pad: true } };
        let x = rand_vec(n * c * s, seed);
        let want: Vec<f64> = x.chunks(s).map(|plane| if max {
            plane.iter().fold(f64::NEG_INFINITY, |a, &b| a.max(b as f64))
        } else {
            plane.iter().map(|&v| v as f64).sum::<f64>() / s as f64
        }).collect();
        let mut xh = vec![0.0; x.len()];
        nchw_to_nhwc(&x, [n, c, s, 1], &mut xh).unwrap();
        // Max is exact. The mean of s zero-mean terms in [-1, 1) has a rounding
        // error of a few ulp; √s·5e-7 is far above that yet below one dropped term.
        let tol = if max { 0.0 } else { 5e-7 * (s as f64).sqrt() + 1e-7 };
        on_1_and_2_threads(|| {
            for (layout, input) in [(DataLayout::Nchw, &x), (DataLayout::Nhwc, &xh)] {
                let mut y = vec![f32::NAN; n * c];
                global_pool(kind, layout, n, c, s, input, &mut y).unwrap();
                for (i, (&g, &w)) in y.iter().zip(&want).enumerate() {
                    assert!((g as f64 - w).abs() <= tol, "{kind:?} {layout:?} [{n}, {c}, {s}] out {i}: {g} vs {w}");
                }
            }
        });
    }
}
