//! bf16-compute GEMM (`gemm_bf16`): one suite applied to every implementation
//! — the AVX-512 BF16 `vdpbf16ps` kernel, the widening path on the AVX-512,
//! AVX2 and scalar `f32` kernels — against an `f64` reference computed from the
//! bf16-rounded operands, with an `f32`-summation error bound; plus checks that
//! `A` really is rounded, argument errors, and 1 vs 2 threads.

use eqopt_cpu::KernelError;
use eqopt_cpu::gemm::{
    BiasAct, Epilogue, GemmDims, MatLayout, bf16_dot_available, gemm_bf16, gemm_bf16_widened_with_isa, gemm_bf16_with_isa,
};
use eqopt_cpu::simd::Isa;
use half::bf16;

type GemmFn = fn(GemmDims, &[f32], MatLayout, &[bf16], MatLayout, &mut [f32], MatLayout, Option<&dyn Epilogue>) -> Result<(), KernelError>;

/// Every implementation: (name, function). The first is the `vdpbf16ps`
/// kernel when this CPU has it (else the AVX-512 widening path again).
fn impls() -> Vec<(&'static str, GemmFn)> {
    vec![
        ("avx512 (bf16 dot when available)", |d, a, al, b, bl, c, cl, e| {
            gemm_bf16_with_isa(Isa::Avx512, d, a, al, b, bl, c, cl, e)
        }),
        ("avx512 widened", |d, a, al, b, bl, c, cl, e| {
            gemm_bf16_widened_with_isa(Isa::Avx512, d, a, al, b, bl, c, cl, e)
        }),
        ("avx2", |d, a, al, b, bl, c, cl, e| {
            gemm_bf16_with_isa(Isa::Avx2, d, a, al, b, bl, c, cl, e)
        }),
        ("scalar", |d, a, al, b, bl, c, cl, e| {
            gemm_bf16_with_isa(Isa::Scalar, d, a, al, b, bl, c, cl, e)
        }),
        ("detected", gemm_bf16),
    ]
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    /// Uniform in [-1, 1), with full f32 mantissas (not bf16-representable).
    fn f(&mut self) -> f32 {
        (self.next() as f32 / (1u64 << 31) as f32) * 2.0 - 1.0
    }
    fn vec(&mut self, len: usize) -> Vec<f32> {
        (0..len).map(|_| self.f()).collect()
    }
}

/// `C = f(A, B)` for dense row-major `A: m×k`, `B: k×n`, no epilogue.
fn run_dense(f: GemmFn, m: usize, k: usize, n: usize, a: &[f32], b: &[bf16]) -> Vec<f32> {
    let mut c = vec![0.0; m * n];
    let (al, bl, cl) = (MatLayout::row_major(m, k), MatLayout::row_major(k, n), MatLayout::row_major(m, n));
    f(GemmDims::new(m, k, n), a, al, b, bl, &mut c, cl, None).unwrap();
    c
}

fn rbf(x: f32) -> f64 {
    bf16::from_f32(x).to_f64()
}

/// One case: dims and layouts of A, B, C, the operands, and an optional bias/relu.
struct Case {
    d: GemmDims,
    a: Vec<f32>,
    al: MatLayout,
    b: Vec<bf16>,
    bl: MatLayout,
    cl: MatLayout,
    c_len: usize,
    bias: Option<Vec<f32>>,
    relu: bool,
}

fn layout(rows: usize, cols: usize, transposed: bool, pad: usize, offset: usize) -> MatLayout {
    let l = if transposed {
        MatLayout::col_major(rows + pad, cols).with_offset(offset)
    } else {
        MatLayout::row_major(rows, cols + pad).with_offset(offset)
    };
    l.with_batch_stride((rows + pad) * (cols + pad))
}

impl Case {
    #[allow(clippy::too_many_arguments)]
    fn new(rng: &mut Rng, d: GemmDims, ta: bool, tb: bool, broadcast_b: bool, pad: usize, bias: bool, relu: bool) -> Case {
        let al = layout(d.m, d.k, ta, pad, 3);
        let mut bl = layout(d.k, d.n, tb, pad, 1);
        if broadcast_b {
            bl = bl.broadcast();
        }
        let cl = MatLayout::row_major(d.m, d.n + pad).with_offset(2);
        let a = rng.vec(al.span(d.batch, d.m, d.k).unwrap());
        let b = rng
            .vec(bl.span(d.batch, d.k, d.n).unwrap())
            .into_iter()
            .map(bf16::from_f32)
            .collect();
        Case {
            d,
            a,
            al,
            b,
            bl,
            cl,
            c_len: cl.span(d.batch, d.m, d.n).unwrap() + 5,
            bias: bias.then(|| rng.vec(d.n)),
            relu,
        }
    }

    /// Per element of C (batch × m × n): (reference from rounded operands,
    /// bound on |error|, the f32-A product without rounding).
    fn reference(&self) -> Vec<(f64, f64, f64)> {
        let Case { d, a, al, b, bl, .. } = self;
        let mut out = Vec::new();
        for bi in 0..d.batch {
            for i in 0..d.m {
                for j in 0..d.n {
                    let (mut s, mut mag, mut raw) = (0.0f64, 0.0f64, 0.0f64);
                    for p in 0..d.k {
                        let x = a[al.offset + bi * al.batch_stride + i * al.row_stride + p * al.col_stride];
                        let y = b[bl.offset + bi * bl.batch_stride + p * bl.row_stride + j * bl.col_stride].to_f64();
                        s += rbf(x) * y;
                        raw += x as f64 * y;
                        mag += (rbf(x) * y).abs();
                    }
                    let bias = self.bias.as_ref().map_or(0.0, |v| v[j] as f64);
                    let fin = |v: f64| if self.relu { (v + bias).max(0.0) } else { v + bias };
                    // f32 summation of k exact products, then one bias add.
                    let bound = (d.k as f64 + 1.0) * 2f64.powi(-23) * (mag + bias.abs()) + 1e-30;
                    out.push((fin(s), bound, fin(raw)));
                }
            }
        }
        out
    }

    fn run(&self, f: GemmFn) -> Vec<f32> {
        let mut c = vec![f32::NAN; self.c_len];
        let epi = BiasAct {
            col_bias: self.bias.as_deref(),
            row_bias: None,
            relu: self.relu,
        };
        let e: Option<&dyn Epilogue> = (self.bias.is_some() || self.relu).then_some(&epi);
        f(self.d, &self.a, self.al, &self.b, self.bl, &mut c, self.cl, e).unwrap();
        c
    }

    /// Checks `c` against the reference; returns the largest |c - unrounded
    /// product| divided by the bound (> 1: the rounding of A is visible).
    fn check(&self, name: &str, c: &[f32], want: &[(f64, f64, f64)]) -> f64 {
        let (d, cl) = (self.d, self.cl);
        let mut visible: f64 = 0.0;
        for bi in 0..d.batch {
            for i in 0..d.m {
                for j in 0..d.n {
                    let g = c[cl.offset + bi * cl.batch_stride + i * cl.row_stride + j] as f64;
                    let (w, bound, raw) = want[(bi * d.m + i) * d.n + j];
                    assert!(
                        (g - w).abs() <= bound,
                        "{name}: ({bi},{i},{j}) got {g}, want {w} ± {bound} (dims {d:?}, A {:?}, B {:?})",
                        self.al,
                        self.bl
                    );
                    visible = visible.max((g - raw).abs() / bound);
                }
            }
        }
        visible
    }
}

fn check_all(case: &Case) -> f64 {
    let want = case.reference();
    let mut visible = f64::INFINITY;
    for (name, f) in impls() {
        let c = case.run(f);
        visible = visible.min(case.check(name, &c, &want));
    }
    visible
}

#[test]
fn dot_kernel_is_available_on_avx512_bf16_cpus() {
    // Informational on other CPUs; on one with the feature the first
    // implementation above must really be the vdpbf16ps kernel.
    #[cfg(target_arch = "x86_64")]
    assert_eq!(
        bf16_dot_available(),
        Isa::Avx512.is_supported() && std::arch::is_x86_feature_detected!("avx512bf16")
    );
}

#[test]
fn random_shapes_layouts_and_epilogues() {
    let mut rng = Rng(7);
    const SIZES: &[usize] = &[1, 2, 3, 13, 14, 15, 16, 17, 31, 32, 33, 47, 64, 100];
    for case_no in 0..60 {
        let d = GemmDims {
            batch: 1 + rng.below(3),
            m: SIZES[rng.below(SIZES.len())],
            k: SIZES[rng.below(SIZES.len())],
            n: SIZES[rng.below(SIZES.len())],
        };
        let case = Case::new(
            &mut rng,
            d,
            case_no % 3 == 1,
            case_no % 5 == 2,
            case_no % 2 == 0,
            case_no % 3,
            case_no % 4 < 2,
            case_no % 4 == 1,
        );
        check_all(&case);
    }
}

#[test]
fn edge_sizes_k1_odd_k_large_k_and_cache_blocks() {
    let mut rng = Rng(11);
    let shapes = [
        (1, 1, 1),
        (5, 1, 40),
        (14, 3, 32),
        (15, 5, 33),
        (29, 511, 17),
        (7, 513, 65),
        (3, 1025, 9),
        (20, 3001, 45),
        (350, 40, 70),   // more rows than one packed A block (MC = 336)
        (40, 600, 4200), // more columns than one packed B block (NC = 4096)
    ];
    for (m, k, n) in shapes {
        for ta in [false, true] {
            let case = Case::new(&mut rng, GemmDims::new(m, k, n), ta, false, false, 1, ta, ta);
            check_all(&case);
        }
    }
}

#[test]
fn batched_with_broadcast_b_and_transposed_b() {
    let mut rng = Rng(5);
    for (batch, m, k, n, tb) in [(3, 17, 33, 40, false), (4, 30, 7, 19, true), (2, 1, 64, 33, false)] {
        let case = Case::new(&mut rng, GemmDims::new(m, k, n).batched(batch), true, tb, true, 2, true, false);
        check_all(&case);
    }
}

#[test]
fn rounding_of_a_is_visible() {
    // A = 1 + 2^-12 rounds to 1.0 in bf16; B = 1: every output is exactly k,
    // while the f32 product would be k·(1 + 2^-12).
    let (m, k, n) = (20, 37, 35);
    let a = vec![1.0 + 2f32.powi(-12); m * k];
    let b = vec![bf16::ONE; k * n];
    for (name, f) in impls() {
        let c = run_dense(f, m, k, n, &a, &b);
        assert!(c.iter().all(|&x| x == k as f32), "{name}: {:?}", &c[..4]);
    }
    // Random operands: somewhere the result is farther from the unrounded
    // product than the summation bound allows, so the rounding happened.
    let mut rng = Rng(3);
    let case = Case::new(&mut rng, GemmDims::new(30, 200, 40), false, false, false, 0, false, false);
    assert!(check_all(&case) > 10.0);
}

#[test]
fn one_and_two_threads_agree_with_reference() {
    let mut rng = Rng(13);
    let case = Case::new(&mut rng, GemmDims::new(128, 384, 96).batched(2), false, false, true, 0, true, true);
    let want = case.reference();
    for threads in [1, 2] {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        for (name, f) in impls() {
            let c = pool.install(|| case.run(f));
            case.check(name, &c, &want);
        }
    }
}

#[test]
fn bad_arguments_are_errors_and_write_nothing() {
    let (m, k, n) = (4, 5, 6);
    let a = vec![1.0; m * k];
    let b = vec![bf16::ONE; k * n];
    let (al, bl, cl) = (MatLayout::row_major(m, k), MatLayout::row_major(k, n), MatLayout::row_major(m, n));
    let d = GemmDims::new(m, k, n);
    let short_bias = [0.0f32; 2];
    let epi = BiasAct {
        col_bias: Some(&short_bias),
        ..BiasAct::default()
    };
    for (name, f) in impls() {
        let mut c = vec![7.0; m * n];
        let cases: [(&str, Result<(), KernelError>); 6] = [
            ("short A", f(d, &a[..m * k - 1], al, &b, bl, &mut c, cl, None)),
            ("short B", f(d, &a, al, &b[..k * n - 1], bl, &mut c, cl, None)),
            ("short C", f(d, &a, al, &b, bl, &mut vec![0.0; m * n - 1], cl, None)),
            ("C col stride", f(d, &a, al, &b, bl, &mut c, MatLayout::col_major(m, n), None)),
            (
                "overflow",
                f(
                    d,
                    &a,
                    al.with_batch_stride(usize::MAX).with_offset(usize::MAX),
                    &b,
                    bl,
                    &mut c,
                    cl,
                    None,
                ),
            ),
            ("short bias", f(d, &a, al, &b, bl, &mut c, cl, Some(&epi))),
        ];
        for (what, r) in cases {
            assert!(r.is_err(), "{name}: {what} accepted");
        }
        assert!(c.iter().all(|&x| x == 7.0), "{name}: wrote on error");
    }
    // k = 0 writes zeros (then the epilogue); empty products are fine.
    for (name, f) in impls() {
        let mut c = vec![7.0; m * n];
        f(GemmDims::new(m, 0, n), &[], al, &[], bl, &mut c, cl, None).unwrap();
        assert!(c.iter().all(|&x| x == 0.0), "{name}: k = 0");
        f(GemmDims::new(0, k, n), &[], al, &b, bl, &mut [], cl, None).unwrap();
    }
}

#[test]
fn denormals_are_zero_only_in_the_dot_kernel() {
    // Documented difference: vdpbf16ps reads denormal bf16 inputs as zero.
    let (m, k, n) = (2, 2, 3);
    let tiny = f32::from_bits(0x0001_0000); // a bf16 denormal
    let a = vec![tiny; m * k];
    let b = vec![bf16::from_f32(2f32.powi(100)); k * n];
    let run = |f: GemmFn| run_dense(f, m, k, n, &a, &b);
    let widened = run(impls()[1].1);
    let want = 2.0 * tiny as f64 * 2f64.powi(100);
    assert!(widened.iter().all(|&x| x as f64 == want));
    let dot = run(impls()[0].1);
    if bf16_dot_available() {
        assert!(dot.iter().all(|&x| x == 0.0), "{dot:?}");
    } else {
        assert_eq!(dot, widened);
    }
}

#[test]
fn accuracy_against_the_unrounded_product() {
    // What computing in bf16 costs on the MiniLM shapes, with A, B uniform in
    // [-1, 1): relative Frobenius error of gemm_bf16 against the exact product
    // of (a) the unrounded A and the bf16 B (the cost of rounding activations),
    // (b) the unrounded A and the f32 B it came from (activations and weights).
    // Printed with `--nocapture`; bounded by the per-element worst case 2^-8.
    let mut rng = Rng(17);
    for (m, k, n) in [(128, 384, 384), (128, 1536, 384)] {
        let a = rng.vec(m * k);
        let b32 = rng.vec(k * n);
        let b: Vec<bf16> = b32.iter().map(|&x| bf16::from_f32(x)).collect();
        let c = run_dense(gemm_bf16, m, k, n, &a, &b);
        let (mut ea, mut eb, mut norm) = (0.0f64, 0.0f64, 0.0f64);
        for i in 0..m {
            for j in 0..n {
                let (mut sa, mut sb) = (0.0f64, 0.0f64);
                for p in 0..k {
                    sa += a[i * k + p] as f64 * b[p * n + j].to_f64();
                    sb += a[i * k + p] as f64 * b32[p * n + j] as f64;
                }
                let g = c[i * n + j] as f64;
                ea += (g - sa).powi(2);
                eb += (g - sb).powi(2);
                norm += sb * sb;
            }
        }
        let (ra, rb) = ((ea / norm).sqrt(), (eb / norm).sqrt());
        println!("{m}x{k}x{n}: relative error {ra:.2e} (A rounded), {rb:.2e} (A and B rounded)");
        assert!(ra < 2f64.powi(-8) && rb < 2f64.powi(-8), "{ra} {rb}");
        assert!(ra > 2f64.powi(-16), "A was not rounded: {ra}");
    }
}
