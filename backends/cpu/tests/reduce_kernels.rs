//! Softmax, layer norm and axis reductions against `f64` references, on every ISA.

use eqopt_cpu::KernelError;
use eqopt_cpu::reduce::{ReduceOp, layer_norm, layer_norm_with, reduce, reduce_with, softmax, softmax_with};
use eqopt_cpu::simd::Isa;
use proptest::prelude::*;

fn data(seed: u64, n: usize, scale: f32) -> Vec<f32> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            let u = (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 40) as f32 / (1u64 << 24) as f32;
            (u * 2.0 - 1.0) * scale
        })
        .collect()
}

/// `|got - want| <= rtol·|want| + atol` elementwise (NaN matches NaN).
fn close(what: &str, got: &[f32], want: &[f64], rtol: f64, atol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let ok = if w.is_nan() {
            g.is_nan()
        } else {
            (g as f64 - w).abs() <= rtol * w.abs() + atol || g as f64 == w
        };
        assert!(ok, "{what}: element {i}: got {g}, want {w}");
    }
}

fn softmax_ref(x: &[f32], n: usize) -> Vec<f64> {
    x.chunks(n)
        .flat_map(|r| {
            let m = r.iter().fold(f64::NEG_INFINITY, |a, &b| a.max(b as f64));
            let e: Vec<f64> = r.iter().map(|&v| (v as f64 - m).exp()).collect();
            let s: f64 = e.iter().sum();
            e.into_iter().map(move |v| v / s)
        })
        .collect()
}

fn layer_norm_ref(x: &[f32], g: Option<&[f32]>, b: Option<&[f32]>, n: usize, eps: f32) -> Vec<f64> {
    x.chunks(n)
        .flat_map(|r| {
            let mean = r.iter().map(|&v| v as f64).sum::<f64>() / n as f64;
            let var = r.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n as f64;
            let rstd = 1.0 / (var + eps as f64).sqrt();
            (0..n)
                .map(|j| {
                    let gj = g.map_or(1.0, |g| g[j] as f64);
                    let bj = b.map_or(0.0, |b| b[j] as f64);
                    (r[j] as f64 - mean) * rstd * gj + bj
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The reference and the scale of its rounding errors (`Σ|x|` per output).
fn reduce_ref(op: ReduceOp, x: &[f32], outer: usize, n: usize, inner: usize) -> (Vec<f64>, Vec<f64>) {
    let mut out = Vec::new();
    let mut mag = Vec::new();
    for o in 0..outer {
        for i in 0..inner {
            let col = (0..n).map(|k| x[(o * n + k) * inner + i] as f64);
            let (v, m) = match op {
                ReduceOp::Sum => (col.clone().sum(), col.map(f64::abs).sum()),
                ReduceOp::Mean => (col.clone().sum::<f64>() / n as f64, col.map(f64::abs).sum::<f64>() / n as f64),
                ReduceOp::Max => (col.fold(f64::NEG_INFINITY, f64::max), 0.0),
            };
            out.push(v);
            mag.push(m);
        }
    }
    (out, mag)
}

fn dim() -> impl Strategy<Value = usize> {
    prop_oneof![
        Just(1usize),
        Just(3),
        Just(7),
        Just(16),
        Just(17),
        Just(33),
        Just(100),
        1usize..300,
        Just(1000)
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn softmax_matches(rows in dim(), n in dim(), seed in any::<u64>(), scale in prop_oneof![Just(1.0f32), Just(30.0)]) {
        let x = data(seed, rows * n, scale);
        let want = softmax_ref(&x, n);
        for isa in Isa::available() {
            let mut out = vec![f32::NAN; rows * n];
            softmax_with(isa, &x, &mut out, rows, n).expect("softmax");
            // exp(x - m) inherits the rounding of x - m (relative error ~ ulp(|x - m|)),
            // and the row sum its accumulation error (~ √n ulp for one accumulator).
            for (r, (o, w)) in out.chunks(n).zip(want.chunks(n)).enumerate() {
                let xr = &x[r * n..(r + 1) * n];
                let m = xr.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
                for j in 0..n {
                    let rtol = 1e-6 + 1.2e-7 * (m - xr[j]) as f64 + 2e-7 * (n as f64).sqrt();
                    prop_assert!((o[j] as f64 - w[j]).abs() <= rtol * w[j], "{:?} softmax [{}, {}] ({}, {}): {} vs {}", isa, rows, n, r, j, o[j], w[j]);
                }
            }
        }
    }

    #[test]
    fn layer_norm_matches(rows in dim(), n in dim(), seed in any::<u64>(), affine in any::<bool>(), offset in prop_oneof![Just(0.0f32), Just(100.0)]) {
        let x: Vec<f32> = data(seed, rows * n, 3.0).into_iter().map(|v| v + offset).collect();
        let g = data(seed ^ 1, n, 2.0);
        let b = data(seed ^ 2, n, 1.0);
        let (g, b) = if affine { (Some(&g[..]), Some(&b[..])) } else { (None, None) };
        let want = layer_norm_ref(&x, g, b, n, 1e-5);
        for isa in Isa::available() {
            let mut out = vec![f32::NAN; rows * n];
            layer_norm_with(isa, &x, g, b, &mut out, rows, n, 1e-5).expect("layer norm");
            // Rounding of x itself (offset 100) limits the achievable accuracy.
            let atol = if offset == 0.0 { 1e-5 } else { 1e-4 };
            close(&format!("{isa:?} layer_norm [{rows}, {n}]"), &out, &want, 1e-5, atol);
        }
    }

    #[test]
    fn reductions_match(outer in dim(), n in dim(), inner in prop_oneof![Just(1usize), Just(3), Just(16), Just(37)], seed in any::<u64>(), op in 0usize..3) {
        prop_assume!(outer * n * inner <= 400_000);
        let op = [ReduceOp::Sum, ReduceOp::Mean, ReduceOp::Max][op];
        let x = data(seed, outer * n * inner, 5.0);
        let (want, mag) = reduce_ref(op, &x, outer, n, inner);
        for isa in Isa::available() {
            let mut out = vec![f32::NAN; outer * inner];
            reduce_with(isa, op, &x, &mut out, outer, n, inner).expect("reduce");
            for (i, ((&g, &w), &m)) in out.iter().zip(&want).zip(&mag).enumerate() {
                // Summation error scales with Σ|x| (and n); max is exact.
                let tol = 2e-7 * m * (n as f64).sqrt().max(4.0);
                prop_assert!((g as f64 - w).abs() <= tol, "{:?} {:?} [{}, {}, {}] out {}: {} vs {}", isa, op, outer, n, inner, i, g, w);
            }
        }
    }
}

#[test]
fn softmax_extremes() {
    let inf = f32::INFINITY;
    // Rows: huge spread, all -inf but one, all equal, one NaN.
    let x = [
        1000.0,
        -1000.0,
        0.0,
        999.0,
        -inf,
        -inf,
        5.0,
        -inf,
        3.0,
        3.0,
        3.0,
        3.0,
        1.0,
        f32::NAN,
        2.0,
        0.0,
    ];
    for isa in Isa::available() {
        let mut out = [0.0f32; 16];
        softmax_with(isa, &x, &mut out, 4, 4).expect("softmax");
        let e = (-1.0f64).exp();
        close(
            &format!("{isa:?}"),
            &out[..4],
            &[1.0 / (1.0 + e), 0.0, 0.0, e / (1.0 + e)],
            1e-6,
            0.0,
        );
        assert_eq!(&out[4..8], &[0.0, 0.0, 1.0, 0.0]);
        assert_eq!(&out[8..12], &[0.25; 4]);
        assert!(out[12..].iter().all(|v| v.is_nan()));
    }
    // Fully masked row: NaN, as a naive softmax gives.
    let mut out = [0.0f32; 3];
    softmax(&[-inf; 3], &mut out, 1, 3).expect("softmax");
    assert!(out.iter().all(|v| v.is_nan()));
}

#[test]
fn empty_axes_and_errors() {
    let mut out = vec![1.0f32; 6];
    for (op, want) in [(ReduceOp::Sum, 0.0f32), (ReduceOp::Max, f32::NEG_INFINITY)] {
        reduce(op, &[], &mut out, 2, 0, 3).expect("empty axis");
        assert!(out.iter().all(|&v| v == want));
    }
    reduce(ReduceOp::Mean, &[], &mut out, 2, 0, 3).expect("empty axis");
    assert!(out.iter().all(|v| v.is_nan()));

    let x = vec![0.5f32; 12];
    let mut out = vec![0.0f32; 12];
    assert!(matches!(
        softmax(&x[..11], &mut out, 3, 4),
        Err(KernelError::BufferLength { operand: "x", .. })
    ));
    assert!(matches!(
        softmax(&x, &mut out[..10], 3, 4),
        Err(KernelError::BufferLength { operand: "out", .. })
    ));
    assert!(matches!(softmax(&x, &mut out, usize::MAX, 4), Err(KernelError::Shape { .. })));
    let g = [1.0f32; 3];
    assert!(matches!(
        layer_norm(&x, Some(&g), None, &mut out, 3, 4, 1e-5),
        Err(KernelError::BufferLength {
            operand: "gamma",
            expected: 4,
            found: 3,
            ..
        })
    ));
    assert!(matches!(
        layer_norm(&x, None, Some(&g), &mut out, 3, 4, 1e-5),
        Err(KernelError::BufferLength { operand: "beta", .. })
    ));
    assert!(matches!(
        reduce(ReduceOp::Sum, &x, &mut out[..5], 2, 2, 3),
        Err(KernelError::BufferLength { operand: "out", .. })
    ));
    assert!(out.iter().all(|&v| v == 0.0), "failed calls wrote nothing");
    // Zero rows: nothing to do.
    softmax(&[], &mut [], 0, 7).expect("no rows");
    layer_norm(&[], None, None, &mut [], 0, 7, 1e-5).expect("no rows");
}

/// Big enough to take the parallel paths, with odd sizes.
#[test]
fn large_parallel() {
    let (rows, n) = (523, 301);
    let x = data(3, rows * n, 4.0);
    let mut out = vec![0.0f32; rows * n];
    softmax(&x, &mut out, rows, n).expect("softmax");
    close("softmax", &out, &softmax_ref(&x, n), 2e-6, 1e-30);
    layer_norm(&x, None, None, &mut out, rows, n, 1e-6).expect("layer norm");
    close("layer_norm", &out, &layer_norm_ref(&x, None, None, n, 1e-6), 1e-5, 1e-5);
    let (outer, n, inner) = (97, 61, 19);
    let x = data(5, outer * n * inner, 1.0);
    let mut out = vec![0.0f32; outer * inner];
    reduce(ReduceOp::Max, &x, &mut out, outer, n, inner).expect("reduce");
    close("max", &out, &reduce_ref(ReduceOp::Max, &x, outer, n, inner).0, 0.0, 0.0);
}
