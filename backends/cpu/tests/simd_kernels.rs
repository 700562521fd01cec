//! The `simd` module's primitives and vector math, on every ISA this CPU has,
//! against `f64` references.

use eqopt_cpu::simd::{Isa, Simd, SimdKernel};

#[derive(Clone, Copy, Debug)]
enum F {
    Exp,
    Log,
    Tanh,
    Sigmoid,
    Erf,
    Gelu,
    Sqrt,
    Abs,
    Neg,
    Relu,
    Recip,
    RoundBf16,
}

/// Applies `f` to `x` into `out` with full vectors and a partial tail.
struct Map<'a> {
    f: F,
    x: &'a [f32],
    out: &'a mut [f32],
}

#[inline(always)]
fn apply<S: Simd>(s: S, f: F, v: S::V) -> S::V {
    match f {
        F::Exp => s.exp(v),
        F::Log => s.log(v),
        F::Tanh => s.tanh(v),
        F::Sigmoid => s.sigmoid(v),
        F::Erf => s.erf(v),
        F::Gelu => s.gelu(v),
        F::Sqrt => s.sqrt(v),
        F::Abs => s.abs(v),
        F::Neg => s.neg(v),
        F::Relu => s.relu(v),
        F::Recip => s.recip(v),
        F::RoundBf16 => s.round_bf16(v),
    }
}

impl SimdKernel for Map<'_> {
    type Output = ();
    #[inline(always)]
    fn run<S: Simd>(self, s: S) {
        let l = S::LANES;
        let n = self.x.len();
        let full = n - n % l;
        for i in (0..full).step_by(l) {
            let v = s.load(&self.x[i..]);
            s.store(apply(s, self.f, v), &mut self.out[i..]);
        }
        let v = s.load_partial(&self.x[full..]);
        s.store_partial(apply(s, self.f, v), &mut self.out[full..]);
    }
}

fn map(isa: Isa, f: F, x: &[f32]) -> Vec<f32> {
    let mut out = vec![0.0; x.len()];
    isa.dispatch(Map { f, x, out: &mut out });
    out
}

/// `erf(|x|)` and `erfc(|x|)` in f64: Taylor series below 3, a continued fraction
/// for `erfc` above.
fn erf_erfc_abs(x: f64) -> (f64, f64) {
    let a = x.abs();
    if a < 3.0 {
        let (mut term, mut sum, mut n) = (a, a, 0.0f64);
        while term.abs() > 1e-18 * sum.abs() {
            n += 1.0;
            term *= -a * a / n;
            sum += term / (2.0 * n + 1.0);
        }
        let erf = sum * 2.0 / std::f64::consts::PI.sqrt();
        (erf, 1.0 - erf)
    } else {
        let mut t = a;
        for k in (1..=300).rev() {
            t = a + (k as f64 / 2.0) / t;
        }
        let erfc = (-a * a).exp() / std::f64::consts::PI.sqrt() / t;
        (1.0 - erfc, erfc)
    }
}

fn erf64(x: f64) -> f64 {
    erf_erfc_abs(x).0.copysign(x)
}

fn erfc64(x: f64) -> f64 {
    let c = erf_erfc_abs(x).1;
    if x < 0.0 { 2.0 - c } else { c }
}

fn reference(f: F, x: f64) -> f64 {
    match f {
        F::Exp => x.exp(),
        F::Log => x.ln(),
        F::Tanh => x.tanh(),
        F::Sigmoid => 1.0 / (1.0 + (-x).exp()),
        F::Erf => erf64(x),
        F::Gelu => 0.5 * x * erfc64(-x / std::f64::consts::SQRT_2),
        F::Sqrt => x.sqrt(),
        F::Abs => x.abs(),
        F::Neg => -x,
        F::Relu => x.max(0.0),
        F::Recip => 1.0 / x,
        F::RoundBf16 => half::bf16::from_f32(x as f32).to_f64(),
    }
}

/// Max relative error (with an absolute floor `atol` in the denominator) of `f`
/// over `x`, and the worst input.
fn max_err(isa: Isa, f: F, x: &[f32], atol: f64) -> (f64, f32) {
    let y = map(isa, f, x);
    let mut worst = (0.0, 0.0);
    for (&xi, &yi) in x.iter().zip(&y) {
        let r = reference(f, xi as f64);
        let e = (yi as f64 - r).abs() / r.abs().max(atol);
        if e > worst.0 || e.is_nan() {
            worst = (e, xi);
        }
    }
    worst
}

fn sweep(lo: f32, hi: f32, n: usize) -> Vec<f32> {
    (0..=n).map(|i| lo + (hi - lo) * (i as f32 / n as f32)).collect()
}

fn log_sweep(lo: f32, hi: f32, n: usize) -> Vec<f32> {
    let (a, b) = (lo.ln(), hi.ln());
    (0..=n).map(|i| (a + (b - a) * (i as f32 / n as f32)).exp()).collect()
}

#[test]
fn transcendental_accuracy_on_every_isa() {
    let cases: [(F, Vec<f32>, f64, f64); 8] = [
        (F::Exp, sweep(-87.0, 88.0, 400_001), 0.0, 3e-7),
        (F::Log, log_sweep(1e-30, 1e30, 400_001), 0.0, 3e-7),
        (F::Log, sweep(0.5, 2.0, 100_001), 0.0, 3e-7),
        (F::Tanh, sweep(-10.0, 10.0, 400_001), 0.0, 4e-7),
        (F::Sigmoid, sweep(-80.0, 20.0, 400_001), 0.0, 4e-7),
        (F::Erf, sweep(-5.0, 5.0, 400_001), 0.0, 6e-7),
        (F::Gelu, sweep(-5.0, 10.0, 400_001), 1e-30, 3e-6),
        (F::Gelu, sweep(-12.0, -5.0, 400_001), 1e-30, 5e-5),
    ];
    for isa in Isa::available() {
        for (f, x, atol, tol) in &cases {
            let (e, at) = max_err(isa, *f, x, *atol);
            println!("{isa:?} {f:?}: max rel err {e:.3e} at {at}");
            assert!(e <= *tol, "{isa:?} {f:?}: error {e:.3e} at x = {at} exceeds {tol:e}");
        }
        // Tiny arguments keep relative accuracy.
        for f in [F::Tanh, F::Erf] {
            let x = log_sweep(1e-30, 1e-2, 10_001);
            let (e, at) = max_err(isa, f, &x, 0.0);
            assert!(e <= 4e-7, "{isa:?} {f:?} tiny: error {e:.3e} at {at}");
        }
    }
}

#[test]
fn special_values_on_every_isa() {
    let inf = f32::INFINITY;
    for isa in Isa::available() {
        let x = [-inf, inf, f32::NAN, 0.0, -0.0, 89.0, 88.7, -88.0, -100.0, -104.0, -200.0, 1e-40];
        let e = map(isa, F::Exp, &x);
        assert_eq!(e[0], 0.0);
        assert_eq!(e[1], inf);
        assert!(e[2].is_nan());
        assert_eq!((e[3], e[4]), (1.0, 1.0));
        assert_eq!(e[5], inf);
        assert!(
            (e[6] as f64 / (88.7f32 as f64).exp() - 1.0).abs() < 1e-6,
            "{isa:?} exp(88.7) = {}",
            e[6]
        );
        // Subnormal results.
        assert!((e[7] as f64 / (-88.0f64).exp() - 1.0).abs() < 1e-5, "{isa:?} exp(-88) = {}", e[7]);
        assert!((e[8] as f64 / (-100.0f64).exp() - 1.0).abs() < 0.05, "{isa:?} exp(-100) = {}", e[8]);
        assert_eq!((e[9], e[10], e[11]), (0.0, 0.0, 1.0));

        let x = [0.0, -0.0, -1.0, inf, f32::NAN, 1e-40, 1.0, f32::MAX, -inf];
        let l = map(isa, F::Log, &x);
        assert_eq!((l[0], l[1]), (-inf, -inf));
        assert!(l[2].is_nan() && l[4].is_nan() && l[8].is_nan());
        assert_eq!(l[3], inf);
        assert!(
            (l[5] as f64 / (1e-40f32 as f64).ln() - 1.0).abs() < 1e-6,
            "{isa:?} log(1e-40) = {}",
            l[5]
        );
        assert_eq!(l[6], 0.0);
        assert!((l[7] as f64 / (f32::MAX as f64).ln() - 1.0).abs() < 1e-6);

        let x = [-inf, inf, f32::NAN, 0.0, 50.0, -50.0];
        for f in [F::Tanh, F::Erf] {
            let y = map(isa, f, &x);
            assert_eq!((y[0], y[1], y[3], y[4], y[5]), (-1.0, 1.0, 0.0, 1.0, -1.0), "{isa:?} {f:?}");
            assert!(y[2].is_nan());
        }
        let y = map(isa, F::Sigmoid, &x);
        assert_eq!((y[0], y[1], y[3], y[4]), (0.0, 1.0, 0.5, 1.0));
        assert!(y[2].is_nan());
        let y = map(isa, F::Relu, &[-1.0, 2.0, f32::NAN, -0.0]);
        assert_eq!((y[0], y[1]), (0.0, 2.0));
        assert!(y[2].is_nan());
    }
}

#[test]
fn exact_ops_match_scalar_rust() {
    let x: Vec<f32> = (0..997).map(|i| ((i as f32) * 0.731).sin() * 100.0 + 0.25).collect();
    for isa in Isa::available() {
        for f in [F::Sqrt, F::Abs, F::Neg, F::Relu, F::Recip] {
            let y = map(isa, f, &x);
            for (&xi, &yi) in x.iter().zip(&y) {
                let r = reference(f, xi as f64) as f32;
                assert!(yi == r || (yi.is_nan() && r.is_nan()), "{isa:?} {f:?}({xi}) = {yi}, want {r}");
            }
        }
    }
}

/// Exercises the binary ops, FMA, comparisons and reductions of one ISA.
struct Binary<'a> {
    a: &'a [f32],
    b: &'a [f32],
    out: &'a mut [[f32; 8]],
    sums: &'a mut Vec<(f32, f32)>,
}

impl SimdKernel for Binary<'_> {
    type Output = ();
    #[inline(always)]
    fn run<S: Simd>(self, s: S) {
        let l = S::LANES;
        for i in (0..self.a.len()).step_by(l) {
            let (x, y) = (s.load_partial(&self.a[i..]), s.load_partial(&self.b[i..]));
            let res = [
                s.add(x, y),
                s.sub(x, y),
                s.mul(x, y),
                s.div(x, y),
                s.mul_add(x, y, x),
                s.max(x, y),
                s.min(x, y),
                s.select(s.lt(x, y), x, y),
            ];
            let m = (self.a.len() - i).min(l);
            for (j, r) in res.iter().enumerate() {
                let mut buf = [0.0f32; 16];
                s.store(*r, &mut buf[..l]);
                for (k, v) in buf[..m].iter().enumerate() {
                    self.out[i + k][j] = *v;
                }
            }
            self.sums.push((s.reduce_sum(x), s.reduce_max(x)));
        }
    }
}

#[test]
fn binary_ops_and_reductions() {
    let n = 101;
    let mut a: Vec<f32> = (0..n).map(|i| ((i as f32) * 1.37).cos() * 3.0).collect();
    let mut b: Vec<f32> = (0..n).map(|i| ((i as f32) * 0.61).sin() * 2.0 + 0.01).collect();
    a[5] = f32::NAN;
    b[7] = f32::NAN;
    for isa in Isa::available() {
        let mut out = vec![[0.0f32; 8]; n];
        let mut sums = Vec::new();
        isa.dispatch(Binary {
            a: &a,
            b: &b,
            out: &mut out,
            sums: &mut sums,
        });
        for i in 0..n {
            let (x, y) = (a[i], b[i]);
            let fma = x.mul_add(y, x);
            let want = [x + y, x - y, x * y, x / y, fma, x.max(y), x.min(y), if x < y { x } else { y }];
            for j in 0..8 {
                let (g, w) = (out[i][j], want[j]);
                let ok = if j == 4 { (g - w).abs() <= 1e-6 * w.abs().max(1.0) } else { g == w };
                assert!(ok || (g.is_nan() && w.is_nan()), "{isa:?} op {j} at {i}: {g} vs {w}");
            }
        }
        let l = isa.lanes();
        for (c, (sum, max)) in sums.iter().enumerate() {
            let lanes = &a[c * l..((c + 1) * l).min(n)];
            // Partial loads zero the missing lanes.
            let pad = if lanes.len() < l { 0.0 } else { f32::NAN };
            let want_max = lanes.iter().copied().fold(pad, f32::max);
            assert!(
                *max == want_max || (max.is_nan() && want_max.is_nan()),
                "{isa:?} reduce_max chunk {c}: {max} vs {want_max}"
            );
            let want_sum: f64 = lanes.iter().map(|&v| v as f64).sum();
            assert!(
                (*sum as f64 - want_sum).abs() <= 1e-5 || (sum.is_nan() && want_sum.is_nan()),
                "{isa:?} reduce_sum chunk {c}: {sum} vs {want_sum}"
            );
        }
    }
}

/// Partial loads read and stores write exactly `min(len, LANES)` elements.
struct Partial<'a> {
    results: &'a mut Vec<(usize, Vec<f32>)>,
}

impl SimdKernel for Partial<'_> {
    type Output = ();
    #[inline(always)]
    fn run<S: Simd>(self, s: S) {
        let src: Vec<f32> = (1..=20).map(|i| i as f32).collect();
        for len in 0..=S::LANES + 2 {
            let v = s.load_partial(&src[..len]);
            let mut dst = vec![-1.0f32; 20];
            s.store_partial(s.add(v, s.splat(0.5)), &mut dst[..len]);
            self.results.push((len, dst));
        }
    }
}

/// `load_even` gathers `src[2i]` and zeroes lanes past the slice.
struct Even<'a> {
    results: &'a mut Vec<(usize, Vec<f32>)>,
}

impl SimdKernel for Even<'_> {
    type Output = ();
    #[inline(always)]
    fn run<S: Simd>(self, s: S) {
        let src: Vec<f32> = (1..=40).map(|i| i as f32).collect();
        for len in 0..=2 * S::LANES + 3 {
            let mut dst = vec![-1.0f32; S::LANES];
            s.store(s.load_even(&src[..len]), &mut dst);
            self.results.push((len, dst));
        }
    }
}

#[test]
fn load_even_gathers_stride_two() {
    for isa in Isa::available() {
        let mut results = Vec::new();
        isa.dispatch(Even { results: &mut results });
        assert!(!results.is_empty());
        for (len, dst) in results {
            for (i, &v) in dst.iter().enumerate() {
                let want = if 2 * i < len { (2 * i + 1) as f32 } else { 0.0 };
                assert_eq!(v, want, "{isa:?} len {len} lane {i}");
            }
        }
    }
}

#[test]
fn partial_load_store() {
    for isa in Isa::available() {
        let mut results = Vec::new();
        isa.dispatch(Partial { results: &mut results });
        assert!(!results.is_empty());
        for (len, dst) in results {
            let m = len.min(isa.lanes());
            for (i, &v) in dst.iter().enumerate() {
                let want = if i < m { i as f32 + 1.5 } else { -1.0 };
                assert_eq!(v, want, "{isa:?} len {len} index {i}");
            }
        }
    }
}

#[test]
fn isa_detection() {
    let avail = Isa::available();
    assert_eq!(avail.last(), Some(&Isa::Scalar));
    assert_eq!(Isa::detect(), Isa::detect());
    // `EQOPT_ISA` caps the choice: the best available ISA at or below the cap.
    let cap = match std::env::var("EQOPT_ISA").as_deref() {
        Ok("scalar") => Isa::Scalar,
        Ok("avx2") => Isa::Avx2,
        _ => Isa::Avx512,
    };
    let want = *avail.iter().find(|&&i| i >= cap).expect("scalar is always available");
    assert_eq!(Isa::detect(), want);
    #[cfg(target_arch = "x86_64")]
    if cap == Isa::Avx512 && is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512dq") {
        assert_eq!(Isa::detect(), Isa::Avx512);
    }
}

#[test]
fn round_bf16_matches_half_bit_exactly() {
    let mut x: Vec<f32> = vec![
        0.0,
        -0.0,
        1.0,
        -1.0,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
        -f32::NAN,
        f32::from_bits(0x7F80_0001), // signalling NaN: made quiet
        f32::from_bits(0xFFBF_FFFF),
        f32::from_bits(0x7FC0_1234),
        f32::MAX,
        -f32::MAX,
        f32::from_bits(0x7F7F_7FFF), // just below the tie to inf: rounds down
        f32::from_bits(0x7F7F_8000), // tie, odd: rounds up to inf
        f32::MIN_POSITIVE,
        f32::from_bits(1),           // smallest denormal
        f32::from_bits(0x0000_8000), // denormal tie, even: rounds to 0
        f32::from_bits(0x0001_8000), // denormal tie, odd: rounds up
        f32::from_bits(0x007F_FFFF), // largest denormal: rounds to MIN_POSITIVE
        f32::from_bits(0x8001_0000),
        f32::from_bits(0x3F80_8000), // 1 + 2^-8: tie, even: rounds down
        f32::from_bits(0x3F81_8000), // tie, odd: rounds up
        f32::from_bits(0x3F80_8001), // just above the tie
        f32::from_bits(0x3F80_7FFF), // just below the tie
        f32::from_bits(0xBF81_8000),
    ];
    // Plus a sweep of bit patterns across every exponent (and low-bit patterns
    // around the rounding point).
    let mut u: u32 = 0x1234_5678;
    for i in 0..20_000u32 {
        u = u.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        let low = [0x7FFF, 0x8000, 0x8001, 0x18000, 0x17FFF][(i % 5) as usize];
        x.push(f32::from_bits(if i % 2 == 0 { u } else { (u & 0xFFFE_0000) | low }));
    }
    for isa in Isa::available() {
        let y = map(isa, F::RoundBf16, &x);
        for (&xi, &yi) in x.iter().zip(&y) {
            let want = half::bf16::from_f32(xi).to_f32();
            assert_eq!(yi.to_bits(), want.to_bits(), "{isa:?}: round_bf16({xi:e} = {:#010x})", xi.to_bits());
        }
    }
}
