//! GEMM and convolution kernels run on the PTX interpreter agree with the CPU
//! backend, over seeded random shapes (odd sizes, 1-sized dims, `K` not a
//! multiple of the tile's step, `K` of several hundred) for every variant.

mod common;
mod gemm_conv;

use common::Rng;
use common::sim::assert_matches_cpu;
use gemm_conv::{ConvCase, GemmCase, Weights, conv_program, gemm_program};

/// Cases per randomized test.
const CASES: u64 = 24;

/// Sizes drawn for M, N (and small K): edges of the 64-wide tiles and of the
/// 16/32-deep steps, and 1.
const SIZES: [usize; 15] = [1, 2, 3, 5, 7, 15, 16, 17, 31, 32, 33, 63, 64, 65, 97];

fn size(rng: &mut Rng) -> usize {
    SIZES[rng.below(SIZES.len())]
}

/// A reduction length: usually small, sometimes at least 300.
fn depth(rng: &mut Rng) -> usize {
    if rng.below(3) == 0 { 300 + rng.below(250) } else { size(rng) }
}

/// Batch dims: none, one or two, sizes 1 to 3.
fn batch(rng: &mut Rng) -> Vec<usize> {
    (0..rng.below(3)).map(|_| 1 + rng.below(3)).collect()
}

/// Tolerance for a sum of `k` products of operands of magnitude about 1
/// (`f32` sums in a different order than the CPU's).
fn atol(k: usize) -> f32 {
    1e-4 + 1e-5 * k as f32
}

fn check_gemm(case: &GemmCase, seed: u64) {
    let program = gemm_program(case, seed);
    eprintln!("seed {seed}: {case:?}");
    assert_matches_cpu(&program, seed, atol(case.k), 1e-4);
}

fn check_conv(case: &ConvCase, seed: u64) {
    let program = conv_program(case, seed);
    eprintln!("seed {seed}: {case:?}");
    assert_matches_cpu(&program, seed, atol(case.c / case.group * case.kh * case.kw), 1e-4);
}

/// A random GEMM case with `b` stored as `b`.
fn random_gemm(rng: &mut Rng, b: Weights) -> GemmCase {
    let batch = batch(rng);
    let nonempty = !batch.is_empty();
    let quant = matches!(b, Weights::Int8 | Weights::Int4 { .. });
    GemmCase {
        b,
        a_transposed: rng.below(3) == 0,
        b_transposed: !quant && rng.below(3) == 0,
        a_broadcast: nonempty && rng.below(3) == 0,
        b_broadcast: quant || rng.below(3) == 0,
        epilogue: rng.below(2) == 0,
        ..GemmCase::new(&batch, size(rng), depth(rng), size(rng))
    }
}

#[test]
fn gemm_f32_random_shapes() {
    for seed in 0..CASES {
        let mut rng = Rng(seed * 7 + 1);
        check_gemm(&random_gemm(&mut rng, Weights::Input), seed);
    }
}

#[test]
fn gemm_f32_edges() {
    for (seed, (m, k, n)) in [
        (1, 1, 1),
        (1, 300, 1),
        (64, 16, 64),
        (65, 17, 65),
        (1, 0, 5),
        (0, 5, 3),
        (3, 333, 130),
    ]
    .into_iter()
    .enumerate()
    {
        check_gemm(&GemmCase::new(&[], m, k, n), seed as u64);
        check_gemm(
            &GemmCase {
                epilogue: true,
                ..GemmCase::new(&[2], m, k, n)
            },
            seed as u64,
        );
    }
}

#[test]
fn gemm_low_precision_b_random_shapes() {
    for seed in 0..CASES {
        let mut rng = Rng(seed * 11 + 3);
        let b = [Weights::F32, Weights::F16, Weights::Bf16][seed as usize % 3];
        check_gemm(&random_gemm(&mut rng, b), seed);
    }
}

#[test]
fn gemm_int8_random_shapes() {
    for seed in 0..CASES {
        let mut rng = Rng(seed * 13 + 5);
        check_gemm(&random_gemm(&mut rng, Weights::Int8), seed);
    }
}

#[test]
fn gemm_int4_random_shapes() {
    for seed in 0..CASES {
        let mut rng = Rng(seed * 17 + 7);
        let group = [1, 3, 4, 32, 64][seed as usize % 5];
        check_gemm(&random_gemm(&mut rng, Weights::Int4 { group }), seed);
    }
}

#[test]
fn gemm_bf16_tensor_cores_random_shapes() {
    for seed in 0..CASES {
        let mut rng = Rng(seed * 19 + 11);
        let case = GemmCase {
            bf16: true,
            ..random_gemm(&mut rng, Weights::Bf16)
        };
        check_gemm(&case, seed);
    }
}

#[test]
fn gemm_batch_broadcast_and_strides() {
    for seed in 0..CASES {
        let mut rng = Rng(seed * 23 + 13);
        let case = GemmCase {
            a_transposed: seed % 2 == 0,
            b_transposed: seed % 4 < 2,
            a_broadcast: seed % 3 == 0,
            b_broadcast: seed % 3 == 1,
            a_offset: seed as usize * 5,
            ..GemmCase::new(&[2, 1 + rng.below(3)], size(&mut rng), size(&mut rng), size(&mut rng))
        };
        check_gemm(&case, seed);
    }
}

/// A random convolution with `group` groups of `ig` input and `og` output
/// channels each.
fn random_conv(rng: &mut Rng, group: usize, ig: usize, og: usize) -> ConvCase {
    let (kh, kw) = (1 + rng.below(4), 1 + rng.below(4));
    let dilations = [1 + rng.below(2), 1 + rng.below(2)];
    let pads = [0; 4].map(|_| rng.below(3));
    let strides = [1 + rng.below(3), 1 + rng.below(3)];
    // The dilated kernel fits the padded input.
    let span = |k: usize, d: usize| (k - 1) * d + 1;
    let h = (span(kh, dilations[0]).saturating_sub(pads[0] + pads[2])).max(1) + rng.below(9);
    let w = (span(kw, dilations[1]).saturating_sub(pads[1] + pads[3])).max(1) + rng.below(9);
    ConvCase {
        n: 1 + rng.below(3),
        c: group * ig,
        h,
        w,
        o: group * og,
        kh,
        kw,
        strides,
        pads,
        dilations,
        group,
        nhwc: rng.below(2) == 0,
        weights: [Weights::F32, Weights::F16, Weights::Bf16, Weights::Input][rng.below(4)],
        bias: rng.below(2) == 0,
        epilogue: rng.below(2) == 0,
        x_offset: rng.below(2) * 7,
    }
}

#[test]
fn conv_random_geometry() {
    for seed in 0..CASES {
        let mut rng = Rng(seed * 29 + 17);
        let (ig, og) = (1 + rng.below(40), 1 + rng.below(70));
        check_conv(&random_conv(&mut rng, 1, ig, og), seed);
    }
}

#[test]
fn conv_grouped_implicit_gemm() {
    for seed in 0..CASES / 2 {
        let mut rng = Rng(seed * 31 + 19);
        let (group, ig, og) = (2 + rng.below(2), 16 + rng.below(5), 16 + rng.below(20));
        check_conv(&random_conv(&mut rng, group, ig, og), seed);
    }
}

#[test]
fn conv_depthwise_and_small_groups() {
    for seed in 0..CASES {
        let mut rng = Rng(seed * 37 + 23);
        let case = if seed % 2 == 0 {
            // Depthwise, channel multiplier 1 or 2.
            let (c, multiplier) = (1 + rng.below(20), 1 + rng.below(2));
            random_conv(&mut rng, c, 1, multiplier)
        } else {
            let (group, ig, og) = (2 + rng.below(3), 1 + rng.below(6), 1 + rng.below(20));
            random_conv(&mut rng, group, ig, og)
        };
        check_conv(&case, seed);
    }
}

#[test]
fn conv_fixed_cases() {
    let cases = [
        ConvCase::new(2, 8, 9, 11, 20),
        ConvCase {
            nhwc: true,
            kh: 1,
            kw: 1,
            pads: [0; 4],
            ..ConvCase::new(2, 70, 5, 5, 65)
        },
        ConvCase {
            strides: [2, 2],
            pads: [3; 4],
            kh: 7,
            kw: 7,
            bias: true,
            ..ConvCase::new(1, 3, 20, 18, 16)
        },
        ConvCase {
            group: 32,
            nhwc: true,
            bias: true,
            epilogue: true,
            weights: Weights::F16,
            ..ConvCase::new(2, 32, 9, 9, 32)
        },
        ConvCase {
            group: 4,
            kh: 7,
            kw: 7,
            pads: [3; 4],
            ..ConvCase::new(1, 12, 8, 8, 8)
        },
    ];
    for (seed, case) in cases.iter().enumerate() {
        check_conv(case, seed as u64);
    }
}
