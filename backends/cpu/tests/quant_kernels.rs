//! Quantized weights: the int8/int4 quantizers (round trip within half a
//! scale, reported error against a direct computation) and the GEMM with a
//! quantized `B` against the `f32` GEMM on the dequantized weights, for every
//! instruction set, on odd shapes, batched and strided operands, sub-blocks of
//! the stored matrix, with and without an epilogue, on one and two threads;
//! argument errors.

use eqopt_cpu::KernelError;
use eqopt_cpu::conv::{Conv2dParams, ConvWeightLayout, pack_weights};
use eqopt_cpu::gemm::{BiasAct, Epilogue, GemmDims, MatLayout, WeightRef, gemm, gemm_with_isa};
use eqopt_cpu::quant::{QuantInt4, QuantInt4Ref, QuantInt8, QuantInt8Ref, WeightError, quantize_int4, quantize_int8};
use eqopt_cpu::simd::Isa;
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

/// A `k × n` weight matrix whose columns have very different magnitudes, with
/// an all-zero column when `n > 2`.
fn weights(k: usize, n: usize, seed: u64) -> Vec<f32> {
    let mut w = rand_vec(k * n, seed);
    for (i, x) in w.iter_mut().enumerate() {
        let j = i % n;
        *x *= if n > 2 && j == n / 2 { 0.0 } else { 10f32.powi((j % 5) as i32 - 2) };
    }
    w
}

/// The direct `‖W − Ŵ‖₂` and `‖W − Ŵ‖₂ / ‖W‖₂`.
fn direct_error(w: &[f32], d: &[f32]) -> (f64, f64) {
    let diff: f64 = w.iter().zip(d).map(|(&a, &b)| (a as f64 - b as f64).powi(2)).sum();
    let norm: f64 = w.iter().map(|&a| (a as f64).powi(2)).sum();
    (diff.sqrt(), diff.sqrt() / norm.sqrt())
}

fn assert_error_matches(e: WeightError, w: &[f32], d: &[f32]) {
    let (abs, rel) = direct_error(w, d);
    assert!((e.abs - abs).abs() <= 1e-12 * abs.max(1e-30), "{e:?} vs {abs}");
    if abs > 0.0 {
        assert!((e.rel - rel).abs() <= 1e-12 * rel, "{e:?} vs {rel}");
    } else {
        assert_eq!(e.rel, 0.0);
    }
}

/// `|w − ŵ| ≤ scale / 2`, up to the `f32` rounding of the quotient and product.
fn assert_within_half_scale(w: f32, d: f32, scale: f32, at: (usize, usize)) {
    let bound = scale as f64 * (0.5 + 1e-5) + 1e-30;
    assert!((w as f64 - d as f64).abs() <= bound, "{at:?}: {w} vs {d}, scale {scale}");
}

const GROUPS: &[usize] = &[1, 3, 32, 64, 128];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn int8_round_trip_is_within_half_a_column_scale(k in 0usize..150, n in 1usize..40, seed in 0u64..1000) {
        let w = weights(k, n, seed);
        let q = quantize_int8(&w, k, n).unwrap();
        let d = q.dequantize();
        prop_assert_eq!(d.len(), k * n);
        prop_assert!(q.data().iter().all(|&v| (-127..=127).contains(&v)));
        for p in 0..k {
            for j in 0..n {
                assert_within_half_scale(w[p * n + j], d[p * n + j], q.scales()[j], (p, j));
            }
        }
        for j in 0..n {
            let amax = (0..k).map(|p| w[p * n + j].abs()).fold(0.0f32, f32::max);
            prop_assert_eq!(q.scales()[j], amax / 127.0);
        }
        assert_error_matches(q.error(&w).unwrap(), &w, &d);
        prop_assert_eq!(q.weight_bytes(), k * n + 4 * n);
        prop_assert_eq!(quantize_int8(&w, k, n).unwrap(), q, "deterministic");
    }

    #[test]
    fn int4_round_trip_is_within_half_a_group_scale(
        k in 0usize..300, n in 1usize..24, gi in 0..GROUPS.len(), seed in 0u64..1000,
    ) {
        let group = GROUPS[gi];
        let w = weights(k, n, seed);
        let q = quantize_int4(&w, k, n, group).unwrap();
        let d = q.dequantize();
        prop_assert_eq!(q.scales().len(), k.div_ceil(group) * n);
        for p in 0..k {
            for j in 0..n {
                let byte = q.data()[p * n.div_ceil(2) + j / 2];
                let code = if j.is_multiple_of(2) { byte & 15 } else { byte >> 4 };
                prop_assert!((1..=15).contains(&code), "code {} is outside [-7, 7] + 8", code);
                let scale = q.scales()[(p / group) * n + j];
                prop_assert_eq!(d[p * n + j], (code as i32 - 8) as f32 * scale);
                assert_within_half_scale(w[p * n + j], d[p * n + j], scale, (p, j));
            }
        }
        assert_error_matches(q.error(&w).unwrap(), &w, &d);
        prop_assert_eq!(q.weight_bytes(), k * n.div_ceil(2) + 4 * k.div_ceil(group) * n);
        prop_assert_eq!(quantize_int4(&w, k, n, group).unwrap(), q, "deterministic");
    }
}

/// A quantized `B` and how the GEMM reads it.
enum Stored {
    Int8(QuantInt8),
    Int4(QuantInt4),
}

impl Stored {
    fn make(int4: bool, group: usize, k: usize, n: usize, seed: u64) -> Stored {
        let w = weights(k, n, seed);
        if int4 {
            Stored::Int4(quantize_int4(&w, k, n, group).unwrap())
        } else {
            Stored::Int8(quantize_int8(&w, k, n).unwrap())
        }
    }
    fn weight(&self) -> WeightRef<'_> {
        match self {
            Stored::Int8(q) => q.into(),
            Stored::Int4(q) => q.into(),
        }
    }
    fn dequantize(&self) -> Vec<f32> {
        match self {
            Stored::Int8(q) => q.dequantize(),
            Stored::Int4(q) => q.dequantize(),
        }
    }
}

/// How `B` sits in its stored matrix; returns (stored k, stored n, layout).
fn b_placement(case: u8, batch: usize, k: usize, n: usize, col0: usize) -> (usize, usize, MatLayout) {
    match case {
        // One matrix per batch, stacked along k.
        0 => (batch * k, n, MatLayout::row_major(k, n)),
        // Shared over the batch.
        1 => (k, n, MatLayout::row_major(k, n).broadcast()),
        // A sub-block: rows 1..=k, columns col0..col0 + n of a wider matrix.
        2 => {
            let nq = n + 3;
            (k + 1, nq, MatLayout::row_major(k, nq).with_offset(nq + col0).broadcast())
        }
        // Every other stored row.
        _ => {
            let nq = n + col0;
            let l = MatLayout {
                offset: col0,
                row_stride: 2 * nq,
                col_stride: 1,
                batch_stride: 0,
            };
            (2 * k, nq, l)
        }
    }
}

/// Runs `C = A · B` with the quantized `B` and with its dequantized `f32`
/// copy (same layout, same ISA, same epilogue) and compares them within
/// `1e-5` of `Σ |a · b̂|`.
#[allow(clippy::too_many_arguments)]
fn check_case(isa: Isa, d: GemmDims, int4: bool, group: usize, case: u8, col0: usize, ta: bool, epi: bool, seed: u64) {
    let GemmDims { batch, m, k, n } = d;
    let (kq, nq, bl) = b_placement(case, batch, k, n, col0);
    let stored = Stored::make(int4, group, kq, nq, seed);
    let deq = stored.dequantize();
    let al = if ta {
        MatLayout::col_major(m, k).with_offset(2).with_batch_stride(m * k + 3)
    } else {
        MatLayout {
            offset: 1,
            row_stride: k + 2,
            col_stride: 1,
            batch_stride: m * (k + 2) + 1,
        }
    };
    let a = rand_vec(al.span(batch, m, k).unwrap().max(1), seed + 1);
    let cl = MatLayout {
        offset: 2,
        row_stride: n + 1,
        col_stride: 1,
        batch_stride: m * (n + 1) + 1,
    };
    let (col_bias, row_bias) = (rand_vec(n, seed + 2), rand_vec(m, seed + 3));
    let bias = BiasAct {
        col_bias: Some(&col_bias),
        row_bias: Some(&row_bias),
        relu: true,
    };
    let epilogue = epi.then_some(&bias as &dyn Epilogue);
    let run = |w: WeightRef<'_>| {
        let mut c = vec![f32::NAN; cl.span(batch, m, n).unwrap()];
        gemm_with_isa(isa, d, &a, al, w, bl, &mut c, cl, epilogue).unwrap();
        c
    };
    let (got, want) = (run(stored.weight()), run(WeightRef::F32(&deq)));
    for bi in 0..batch {
        for i in 0..m {
            for j in 0..n {
                let mut mag = 1.0f64;
                for p in 0..k {
                    let x = a[al.offset + bi * al.batch_stride + i * al.row_stride + p * al.col_stride] as f64;
                    let y = deq[bl.offset + bi * bl.batch_stride + p * bl.row_stride + j * bl.col_stride] as f64;
                    mag += (x * y).abs();
                }
                let at = cl.offset + bi * cl.batch_stride + i * cl.row_stride + j;
                let (g, w) = (got[at] as f64, want[at] as f64);
                assert!(
                    (g - w).abs() <= 1e-5 * mag,
                    "{isa:?} ({bi},{i},{j}): got {g}, want {w}; {d:?} int4 {int4} group {group} case {case} col0 {col0} ta {ta} epi {epi}"
                );
            }
        }
    }
}

const MS: &[usize] = &[1, 2, 7, 33];
const KS: &[usize] = &[1, 5, 31, 33, 70, 129, 300];
const NS: &[usize] = &[1, 3, 17, 31, 33, 50, 100];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]
    #[test]
    fn quantized_gemm_matches_f32_gemm_on_dequantized_weights(
        mi in 0..MS.len(), ki in 0..KS.len(), ni in 0..NS.len(), batch in 1usize..3,
        int4: bool, gi in 0..GROUPS.len(), case in 0u8..4, col0 in 0usize..4, ta: bool, epi: bool, seed in 0u64..1000,
    ) {
        let d = GemmDims { batch, m: MS[mi], k: KS[ki], n: NS[ni] };
        for isa in Isa::ALL {
            check_case(isa, d, int4, GROUPS[gi], case, col0, ta, epi, seed);
        }
    }
}

#[test]
fn quantized_gemm_covers_tiles_blocks_and_two_threads() {
    let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
    // m > 1 beyond a micro-tile and a cache block of k; m == 1 over several
    // column chunks (n > 1024) and groups ending mid-chunk.
    let shapes = [(1, 384, 1536), (1, 1000, 1100), (33, 300, 97), (50, 257, 70), (2, 700, 33)];
    for isa in Isa::ALL {
        for (s, &(m, k, n)) in shapes.iter().enumerate() {
            for int4 in [false, true] {
                let d = GemmDims::new(m, k, n);
                check_case(isa, d, int4, 64, 2, 1, false, s.is_multiple_of(2), s as u64);
                pool.install(|| check_case(isa, d.batched(2), int4, 128, 1, 0, false, true, s as u64 + 7));
            }
        }
    }
}

#[test]
fn degenerate_sizes_with_quantized_weights() {
    let q8 = quantize_int8(&[], 0, 3).unwrap();
    let q4 = quantize_int4(&[], 0, 3, 32).unwrap();
    for w in [WeightRef::from(&q8), WeightRef::from(&q4)] {
        for m in [1, 2] {
            let mut c = vec![5.0; m * 3];
            let d = GemmDims::new(m, 0, 3);
            gemm(
                d,
                &[],
                MatLayout::row_major(m, 0),
                w,
                MatLayout::row_major(0, 3),
                &mut c,
                MatLayout::row_major(m, 3),
                None,
            )
            .unwrap();
            assert_eq!(c, vec![0.0; m * 3]);
        }
    }
    let q = quantize_int8(&[127.0, 1.0], 2, 1).unwrap();
    let mut c = [0.0; 2];
    let d = GemmDims::new(2, 2, 1);
    gemm(
        d,
        &[1.0, 1.0, 1.0, -1.0],
        MatLayout::row_major(2, 2),
        (&q).into(),
        MatLayout::row_major(2, 1),
        &mut c,
        MatLayout::row_major(2, 1),
        None,
    )
    .unwrap();
    assert_eq!(c, [128.0, 126.0]);
}

#[test]
fn bad_arguments_are_errors() {
    let (k, n) = (4, 6);
    let q8 = quantize_int8(&rand_vec(k * n, 1), k, n).unwrap();
    let q4 = quantize_int4(&rand_vec(k * n, 1), k, n, 3).unwrap();
    let a = rand_vec(4 * k, 2);
    let d = GemmDims::new(2, k, n);
    let rm = MatLayout::row_major;
    for w in [WeightRef::from(&q8), WeightRef::from(&q4)] {
        for isa in Isa::ALL {
            let mut c = vec![0.0; 2 * n];
            let mut run = |d: GemmDims, bl: MatLayout| gemm_with_isa(isa, d, &a, rm(d.m, k), w, bl, &mut c, rm(d.m, d.n), None);
            let shape = |r: Result<(), KernelError>| assert!(matches!(r, Err(KernelError::Shape { .. })), "{r:?}");
            // Transposed: column stride k.
            shape(run(d, MatLayout::col_major(k, n)));
            // Row stride not a whole stored row.
            shape(run(GemmDims::new(2, 3, 5), MatLayout::row_major(3, 7)));
            // Columns 2..7 of rows of 6.
            shape(run(GemmDims::new(2, 2, 5), rm(2, n).with_offset(2)));
            // Batches not whole stored rows.
            shape(run(GemmDims::new(2, 1, 3).batched(2), rm(1, 3).with_batch_stride(3)));
            // Past the end of the stored matrix.
            let r = run(d, rm(k, n).with_offset(1));
            assert!(matches!(r, Err(KernelError::BufferLength { operand: "B", .. })), "{r:?}");
            assert!(c.iter().all(|&x| x == 0.0), "nothing written on error");
        }
    }
    let bad8 = |d: &[i8], s: &[f32], k, n| QuantInt8Ref::new(d, s, k, n).map(|_| ());
    assert!(matches!(
        bad8(&[0; 5], &[1.0; 3], 2, 3),
        Err(KernelError::BufferLength { operand: "data", .. })
    ));
    assert!(matches!(
        bad8(&[0; 6], &[1.0; 2], 2, 3),
        Err(KernelError::BufferLength { operand: "scales", .. })
    ));
    let bad4 = |d: &[u8], s: &[f32], k, n, g| QuantInt4Ref::new(d, s, k, n, g).map(|_| ());
    assert!(matches!(
        bad4(&[0; 4], &[1.0; 6], 3, 3, 2),
        Err(KernelError::BufferLength { operand: "data", .. })
    ));
    assert!(matches!(
        bad4(&[0; 6], &[1.0; 3], 3, 3, 2),
        Err(KernelError::BufferLength { operand: "scales", .. })
    ));
    assert!(matches!(bad4(&[0; 6], &[1.0; 6], 3, 3, 0), Err(KernelError::Shape { .. })));
    assert!(matches!(quantize_int4(&[0.0; 6], 2, 3, 0), Err(KernelError::Shape { .. })));
    assert!(matches!(quantize_int8(&[0.0; 5], 2, 3), Err(KernelError::BufferLength { .. })));
    assert!(matches!(quantize_int8(&[f32::NAN], 1, 1), Err(KernelError::NonFinite { .. })));
    assert!(matches!(q8.error(&[0.0; 3]), Err(KernelError::BufferLength { .. })));
}

#[test]
fn other_kernels_read_quantized_weights_dequantized() {
    // A convolution takes any WeightRef: quantized weights act as their dequantized values.
    let p = Conv2dParams::new(1, 3, 5, 5, 4, 3, 3);
    let (o, rest) = (p.out_channels, p.weight_len() / p.out_channels);
    let w = rand_vec(p.weight_len(), 9);
    let q8 = quantize_int8(&w, o, rest).unwrap();
    let q4 = quantize_int4(&w, o, rest, 2).unwrap();
    for (wq, deq) in [(WeightRef::from(&q8), q8.dequantize()), (WeightRef::from(&q4), q4.dequantize())] {
        for (from, to) in [
            (ConvWeightLayout::Oihw, ConvWeightLayout::Hwio),
            (ConvWeightLayout::Oihw, ConvWeightLayout::Oihw),
        ] {
            let got = pack_weights(&p, wq, from, to).unwrap();
            let want = pack_weights(&p, WeightRef::F32(&deq), from, to).unwrap();
            assert_eq!(got, want);
        }
    }
}
