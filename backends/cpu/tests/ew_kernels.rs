//! The fused elementwise kernel against an `f64` reference, on every ISA, over
//! random shapes, random programs and random input views (contiguous, broadcast,
//! padded/permuted/reversed strided views).

use eqopt_cpu::elementwise::{BinaryOp, EwInput, EwProgram, Instr, UnaryOp, eval, eval_with};
use eqopt_cpu::simd::Isa;
use proptest::prelude::*;

/// xorshift64*: deterministic randomness derived from one proptest seed.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn f32_in(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * ((self.next() >> 40) as f32 / (1u64 << 24) as f32)
    }
}

/// An owned input view.
#[derive(Clone)]
struct View {
    data: Vec<f32>,
    offset: usize,
    strides: Vec<isize>,
}

impl View {
    fn input(&self) -> EwInput<'_> {
        EwInput::strided(&self.data, self.offset, self.strides.clone())
    }
    fn at(&self, coords: &[usize]) -> f32 {
        let off = self.offset as isize + coords.iter().zip(&self.strides).map(|(&c, &s)| c as isize * s).sum::<isize>();
        self.data[off as usize]
    }
}

fn values(rng: &mut Rng, n: usize, lo: f32, hi: f32) -> Vec<f32> {
    (0..n).map(|_| rng.f32_in(lo, hi)).collect()
}

/// A random view of `out_shape`: contiguous, NumPy-broadcast, or a strided window
/// of a larger, permuted buffer with some dimensions reversed.
fn random_view(rng: &mut Rng, out_shape: &[usize], lo: f32, hi: f32) -> View {
    let r = out_shape.len();
    match rng.below(3) {
        0 => {
            let n = out_shape.iter().product();
            View {
                data: values(rng, n, lo, hi),
                offset: 0,
                strides: EwInput::contiguous(&[], out_shape).strides,
            }
        }
        1 => {
            let drop = rng.below(r + 1);
            let in_shape: Vec<usize> = out_shape[drop..].iter().map(|&d| if rng.below(2) == 0 { 1 } else { d }).collect();
            let n = in_shape.iter().product();
            let data = values(rng, n, lo, hi);
            let strides = EwInput::broadcast(&data, &in_shape, out_shape).expect("compatible").strides;
            View { data, offset: 0, strides }
        }
        _ => {
            let pad: Vec<usize> = (0..r).map(|_| rng.below(3)).collect();
            let mut perm: Vec<usize> = (0..r).collect();
            for i in (1..r).rev() {
                perm.swap(i, rng.below(i + 1));
            }
            // Parent dims in permuted memory order; stride of output dim d.
            let mut strides = vec![0isize; r];
            let mut acc = 1isize;
            for &d in perm.iter().rev() {
                strides[d] = acc;
                acc *= (out_shape[d] + pad[d]) as isize;
            }
            let mut offset = 0isize;
            for d in 0..r {
                let start = rng.below(pad[d] + 1) as isize;
                if rng.below(4) == 0 {
                    offset += (start + out_shape[d] as isize - 1) * strides[d];
                    strides[d] = -strides[d];
                } else {
                    offset += start * strides[d];
                }
            }
            View {
                data: values(rng, acc as usize, lo, hi),
                offset: offset as usize,
                strides,
            }
        }
    }
}

fn coords(mut flat: usize, shape: &[usize]) -> Vec<usize> {
    let mut c = vec![0; shape.len()];
    for d in (0..shape.len()).rev() {
        c[d] = flat % shape[d];
        flat /= shape[d];
    }
    c
}

fn erf64(x: f64) -> f64 {
    let a = x.abs();
    let r = if a < 3.0 {
        let (mut term, mut sum, mut n) = (a, a, 0.0f64);
        while term.abs() > 1e-18 * sum.abs() {
            n += 1.0;
            term *= -a * a / n;
            sum += term / (2.0 * n + 1.0);
        }
        sum * 2.0 / std::f64::consts::PI.sqrt()
    } else {
        let mut t = a;
        for k in (1..=300).rev() {
            t = a + (k as f64 / 2.0) / t;
        }
        1.0 - (-a * a).exp() / std::f64::consts::PI.sqrt() / t
    };
    r.copysign(x)
}

fn unary64(op: UnaryOp, x: f64) -> f64 {
    match op {
        UnaryOp::Relu => {
            if x < 0.0 {
                0.0
            } else {
                x
            }
        }
        UnaryOp::Sigmoid => 1.0 / (1.0 + (-x).exp()),
        UnaryOp::Tanh => x.tanh(),
        UnaryOp::Gelu => 0.5 * x * (1.0 + erf64(x / std::f64::consts::SQRT_2)),
        UnaryOp::Exp => x.exp(),
        UnaryOp::Log => x.ln(),
        UnaryOp::Sqrt => x.sqrt(),
        UnaryOp::Neg => -x,
        UnaryOp::Abs => x.abs(),
        UnaryOp::Erf => erf64(x),
        UnaryOp::Recip => 1.0 / x,
        UnaryOp::Identity => x,
        UnaryOp::RoundBf16 => half::bf16::from_f32(x as f32).to_f64(),
    }
}

fn binary64(op: BinaryOp, a: f64, b: f64) -> f64 {
    match op {
        BinaryOp::Add => a + b,
        BinaryOp::Sub => a - b,
        BinaryOp::Mul => a * b,
        BinaryOp::Div => a / b,
        BinaryOp::Max => a.max(b),
        BinaryOp::Min => a.min(b),
        BinaryOp::Pow if b == 2.0 => a * a,
        BinaryOp::Pow => a.powf(b),
    }
}

/// The program at each output element, in f64, each instruction's result rounded
/// to f32 (so that correctly rounded f32 operations match it exactly).
fn reference(instrs: &[Instr], views: &[View], shape: &[usize]) -> Vec<f32> {
    let n: usize = shape.iter().product();
    let mut vals = vec![0.0f32; instrs.len()];
    (0..n)
        .map(|i| {
            let c = coords(i, shape);
            for (j, ins) in instrs.iter().enumerate() {
                vals[j] = match *ins {
                    Instr::Input(k) => views[k].at(&c),
                    Instr::Const(x) => x,
                    Instr::Unary(op, a) => unary64(op, vals[a] as f64) as f32,
                    Instr::Binary(op, a, b) => binary64(op, vals[a] as f64, vals[b] as f64) as f32,
                };
            }
            vals[instrs.len() - 1]
        })
        .collect()
}

fn run(isa: Isa, instrs: &[Instr], views: &[View], shape: &[usize]) -> Vec<f32> {
    let prog = EwProgram::new(views.len(), instrs.to_vec()).expect("valid program");
    let inputs: Vec<EwInput<'_>> = views.iter().map(View::input).collect();
    let mut out = vec![f32::NAN; shape.iter().product()];
    eval_with(isa, &prog, &inputs, &mut out, shape).expect("eval");
    out
}

/// Asserts `|got - want| <= rtol·|want| + atol` (NaN matches NaN, infinities must
/// be equal).
fn check(what: &str, got: &[f32], want: &[f32], rtol: f64, atol: f64) {
    assert_eq!(got.len(), want.len());
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let ok = if w.is_nan() || g.is_nan() {
            w.is_nan() && g.is_nan()
        } else if w.is_infinite() || g.is_infinite() {
            g == w
        } else {
            (g as f64 - w as f64).abs() <= rtol * (w as f64).abs() + atol
        };
        assert!(ok, "{what}: element {i}: got {g}, want {w}");
    }
}

const ARITH_UNARY: [UnaryOp; 7] = [
    UnaryOp::Relu,
    UnaryOp::RoundBf16,
    UnaryOp::Neg,
    UnaryOp::Abs,
    UnaryOp::Sqrt,
    UnaryOp::Recip,
    UnaryOp::Identity,
];
const BINARY: [BinaryOp; 6] = [
    BinaryOp::Add,
    BinaryOp::Sub,
    BinaryOp::Mul,
    BinaryOp::Div,
    BinaryOp::Max,
    BinaryOp::Min,
];
const TRANSCENDENTAL: [UnaryOp; 6] = [
    UnaryOp::Sigmoid,
    UnaryOp::Tanh,
    UnaryOp::Gelu,
    UnaryOp::Exp,
    UnaryOp::Erf,
    UnaryOp::Log,
];

/// A random program of correctly rounded operations over `k` inputs.
fn arith_program(rng: &mut Rng, k: usize) -> Vec<Instr> {
    let mut instrs: Vec<Instr> = (0..k).map(Instr::Input).collect();
    if rng.below(2) == 0 {
        instrs.push(Instr::Const(rng.f32_in(-2.0, 2.0)));
    }
    let ops = 1 + rng.below(8);
    for _ in 0..ops {
        let n = instrs.len();
        let ins = match rng.below(5) {
            0 => Instr::Unary(ARITH_UNARY[rng.below(ARITH_UNARY.len())], rng.below(n)),
            1 => {
                instrs.push(Instr::Const(2.0));
                Instr::Binary(BinaryOp::Pow, rng.below(n), n)
            }
            _ => Instr::Binary(BINARY[rng.below(BINARY.len())], rng.below(n), rng.below(n)),
        };
        instrs.push(ins);
    }
    instrs
}

fn shape_strategy(max_rank: usize) -> impl Strategy<Value = Vec<usize>> {
    let dim = prop_oneof![Just(1usize), Just(3), Just(7), Just(17), Just(33), 1usize..40, Just(100)];
    prop::collection::vec(dim, 0..=max_rank).prop_filter("bounded size", |s| s.iter().product::<usize>() <= 60_000)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    /// Programs of correctly rounded operations match the per-step-rounded
    /// reference exactly, whatever the views.
    #[test]
    fn arithmetic_programs_are_exact(shape in shape_strategy(4), seed in any::<u64>()) {
        let mut rng = Rng::new(seed);
        let k = 1 + rng.below(3);
        let views: Vec<View> = (0..k).map(|_| random_view(&mut rng, &shape, -2.0, 2.0)).collect();
        let instrs = arith_program(&mut rng, k);
        let want = reference(&instrs, &views, &shape);
        for isa in Isa::available() {
            let got = run(isa, &instrs, &views, &shape);
            check(&format!("{isa:?} {instrs:?} shape {shape:?}"), &got, &want, 0.0, 0.0);
        }
    }

    /// One transcendental function of an arithmetic combination of two views.
    #[test]
    fn transcendental_programs(shape in shape_strategy(3), seed in any::<u64>(), f in 0usize..6, g in 0usize..3) {
        let mut rng = Rng::new(seed);
        let views: Vec<View> = (0..2).map(|_| random_view(&mut rng, &shape, -2.0, 2.0)).collect();
        let combine = [BinaryOp::Add, BinaryOp::Mul, BinaryOp::Sub][g];
        let func = TRANSCENDENTAL[f];
        let mut instrs = vec![Instr::Input(0), Instr::Input(1), Instr::Binary(combine, 0, 1)];
        if func == UnaryOp::Log {
            instrs.push(Instr::Unary(UnaryOp::Abs, 2));
        }
        instrs.push(Instr::Unary(func, instrs.len() - 1));
        let want = reference(&instrs, &views, &shape);
        for isa in Isa::available() {
            let got = run(isa, &instrs, &views, &shape);
            check(&format!("{isa:?} {func:?} shape {shape:?}"), &got, &want, 4e-6, 1e-30);
        }
    }
}

#[test]
fn pow_exponents() {
    let mut rng = Rng::new(7);
    let shape = [5, 37];
    let base = View {
        data: values(&mut rng, 185, 0.1, 3.0),
        offset: 0,
        strides: vec![37, 1],
    };
    let expo = View {
        data: values(&mut rng, 37, -2.0, 2.0),
        offset: 0,
        strides: vec![0, 1],
    };
    for isa in Isa::available() {
        for c in [2.0f32, 3.0, 0.5, -0.5, -1.0, 1.0, 0.0, 1.7, -2.5] {
            let instrs = [Instr::Input(0), Instr::Const(c), Instr::Binary(BinaryOp::Pow, 0, 1)];
            let got = run(isa, &instrs, std::slice::from_ref(&base), &shape);
            let want: Vec<f32> = base.data.iter().map(|&x| (x as f64).powf(c as f64) as f32).collect();
            check(&format!("{isa:?} pow {c}"), &got, &want, 3e-7, 0.0);
        }
        let views = [base.clone(), expo.clone()];
        let instrs = [Instr::Input(0), Instr::Input(1), Instr::Binary(BinaryOp::Pow, 0, 1)];
        let got = run(isa, &instrs, &views, &shape);
        let want: Vec<f32> = (0..185)
            .map(|i| (base.data[i] as f64).powf(expo.data[i % 37] as f64) as f32)
            .collect();
        check(&format!("{isa:?} pow general"), &got, &want, 3e-7, 0.0);
    }
}

/// A realistic fused chain: `gelu(x·w + b) - sigmoid(x) / (1 + |x|)`, with `w`, `b`
/// broadcast per column and x a strided slice; large enough to run in parallel.
#[test]
fn fused_chain_parallel_and_broadcast() {
    let mut rng = Rng::new(11);
    let (rows, cols) = (301, 1111); // 334 411 elements: parallel, chunks split rows
    let x = View {
        data: values(&mut rng, rows * (cols + 5), -3.0, 3.0),
        offset: 2,
        strides: vec![(cols + 5) as isize, 1],
    };
    let w = View {
        data: values(&mut rng, cols, 0.5, 1.5),
        offset: 0,
        strides: vec![0, 1],
    };
    let b = View {
        data: values(&mut rng, rows, -0.5, 0.5),
        offset: 0,
        strides: vec![1, 0],
    };
    let instrs = vec![
        Instr::Input(0),
        Instr::Input(1),
        Instr::Input(2),
        Instr::Binary(BinaryOp::Mul, 0, 1),
        Instr::Binary(BinaryOp::Add, 3, 2),
        Instr::Unary(UnaryOp::Gelu, 4),
        Instr::Unary(UnaryOp::Sigmoid, 0),
        Instr::Unary(UnaryOp::Abs, 0),
        Instr::Const(1.0),
        Instr::Binary(BinaryOp::Add, 8, 7),
        Instr::Binary(BinaryOp::Div, 6, 9),
        Instr::Binary(BinaryOp::Sub, 5, 10),
    ];
    let shape = [rows, cols];
    let views = [x, w, b];
    let want = reference(&instrs, &views, &shape);
    for isa in Isa::available() {
        let got = run(isa, &instrs, &views, &shape);
        // Absolute floor: the final subtraction can cancel.
        check(&format!("{isa:?}"), &got, &want, 1e-5, 1e-6);
    }
    // The plain entry point (detected ISA) gives the same answer.
    let prog = EwProgram::new(3, instrs.clone()).expect("valid");
    let inputs: Vec<EwInput<'_>> = views.iter().map(View::input).collect();
    let mut out = vec![0.0; rows * cols];
    eval(&prog, &inputs, &mut out, &shape).expect("eval");
    assert_eq!(out, run(Isa::detect(), &instrs, &views, &shape));
}

/// Outputs that are an input, a constant, or a function of broadcast scalars only.
#[test]
fn degenerate_programs() {
    let shape = [4, 9];
    let x = View {
        data: (0..36).map(|i| i as f32).collect(),
        offset: 0,
        strides: vec![1, 4],
    };
    let s = View {
        data: vec![0.25, -1.0, 2.0, 4.0],
        offset: 0,
        strides: vec![1, 0],
    };
    for isa in Isa::available() {
        let views = [x.clone(), s.clone()];
        let copy = run(isa, &[Instr::Input(0), Instr::Input(1)], &views, &shape);
        assert_eq!(copy, reference(&[Instr::Input(0), Instr::Input(1)], &views, &shape));
        let konst = run(isa, &[Instr::Input(0), Instr::Input(1), Instr::Const(3.5)], &views, &shape);
        assert!(konst.iter().all(|&v| v == 3.5));
        let instrs = [
            Instr::Input(1),
            Instr::Input(0),
            Instr::Unary(UnaryOp::Exp, 1),
            Instr::Const(1.0),
            Instr::Binary(BinaryOp::Add, 2, 3),
        ];
        let got = run(isa, &instrs, &[views[1].clone(), views[0].clone()], &shape);
        let want: Vec<f32> = (0..36).map(|i| (s.data[i / 9] as f64).exp() as f32 + 1.0).collect();
        check("scalar row", &got, &want, 2e-7, 0.0);
        // Dead instructions are skipped; rank 0 works.
        let instrs = [Instr::Input(0), Instr::Unary(UnaryOp::Log, 0), Instr::Unary(UnaryOp::Neg, 0)];
        let one = View {
            data: vec![-3.0],
            offset: 0,
            strides: vec![],
        };
        assert_eq!(run(isa, &instrs, &[one], &[]), vec![3.0]);
    }
}

/// Short rows under per-channel operands (`[N, C, H·W]` with `H·W` well under a
/// tile), which the executor evaluates several rows to a tile, including
/// outputs large enough to be split into parallel chunks that start mid-row.
#[test]
fn short_rows_under_per_channel_operands() {
    let mut rng = Rng::new(11);
    for shape in [
        vec![2usize, 9, 7, 5],
        vec![1, 700, 7, 7],
        vec![2, 700, 7, 7],
        vec![3, 40, 1, 250],
        vec![5, 300],
    ] {
        let channel_shape: Vec<usize> = shape.iter().enumerate().map(|(d, &n)| if d == 1 { n } else { 1 }).collect();
        for trial in 0..4 {
            let k = 2 + trial % 2;
            let views: Vec<View> = (0..k)
                .map(|i| {
                    let dense = i == 0 || (trial == 3 && i == 2);
                    let in_shape = if dense { shape.clone() } else { channel_shape.clone() };
                    let data = values(&mut rng, in_shape.iter().product(), -2.0, 2.0);
                    let strides = EwInput::broadcast(&data, &in_shape, &shape).unwrap().strides;
                    View { data, offset: 0, strides }
                })
                .collect();
            let instrs = arith_program(&mut rng, k);
            let want = reference(&instrs, &views, &shape);
            for isa in Isa::available() {
                let got = run(isa, &instrs, &views, &shape);
                check(&format!("{isa:?} {instrs:?} shape {shape:?}"), &got, &want, 0.0, 0.0);
            }
        }
    }
}
