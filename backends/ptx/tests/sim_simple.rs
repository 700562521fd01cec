//! Elementwise, copy and gather kernels on the PTX interpreter against the CPU
//! backend, on random shapes (odd sizes, 1-sized dims, broadcast and transposed views).

mod common;

use common::sim::{assert_matches_cpu, assert_matches_cpu_with_indices};
use common::{P, Rng};
use eqopt_kir::{BinaryOp, Expr, Instr, Kernel, UnaryOp, View, dense_strides};

fn shape(rng: &mut Rng, rank: usize) -> Vec<usize> {
    (0..rank).map(|_| [1, 2, 3, 5, 7, 33, 64][rng.below(7)]).collect()
}

const UNARY: [UnaryOp; 13] = [
    UnaryOp::Relu,
    UnaryOp::Sigmoid,
    UnaryOp::Tanh,
    UnaryOp::Gelu,
    UnaryOp::Exp,
    UnaryOp::Log,
    UnaryOp::Sqrt,
    UnaryOp::Neg,
    UnaryOp::Abs,
    UnaryOp::Erf,
    UnaryOp::Recip,
    UnaryOp::Identity,
    UnaryOp::RoundBf16,
];

#[test]
fn every_unary_op_matches_the_cpu_backend() {
    for (i, op) in UNARY.into_iter().enumerate() {
        let mut p = P::new(&format!("unary_{op:?}"));
        let s = vec![3, 37];
        let x = p.input("x", &s);
        let y = p.output("y", &s);
        // Scale the inputs to exercise the ranges that matter (exp/tanh tails, log of
        // values near 0 and large).
        let instrs = vec![
            Instr::Input(0),
            Instr::Const(6.0),
            Instr::Binary(BinaryOp::Mul, 0, 1),
            Instr::Unary(op, 2),
        ];
        p.0.kernels.push(Kernel::Elementwise {
            expr: Expr { instrs, num_inputs: 1 },
            inputs: vec![View::dense(x, &s)],
            out: View::dense(y, &s),
        });
        // log and sqrt of negative inputs are NaN on both; recip near 0 is large.
        assert_matches_cpu(&p.0, i as u64, 1e-6, 2e-6);
    }
}

#[test]
fn every_binary_op_with_broadcast_matches_the_cpu_backend() {
    let ops = [
        BinaryOp::Add,
        BinaryOp::Sub,
        BinaryOp::Mul,
        BinaryOp::Div,
        BinaryOp::Pow,
        BinaryOp::Max,
        BinaryOp::Min,
    ];
    let mut rng = Rng(99);
    for (i, op) in ops.into_iter().enumerate() {
        for rank in 1..=4 {
            let s = shape(&mut rng, rank);
            let mut p = P::new(&format!("binary_{op:?}_{rank}"));
            let a = p.input("a", &s);
            // b broadcasts along every other dim.
            let bshape: Vec<usize> = s.iter().enumerate().map(|(d, &n)| if d % 2 == 0 { 1 } else { n }).collect();
            let b = p.input("b", &bshape);
            let y = p.output("y", &s);
            let mut bstrides = dense_strides(&bshape);
            for (d, st) in bstrides.iter_mut().enumerate() {
                if bshape[d] == 1 {
                    *st = 0;
                }
            }
            let instrs = if op == BinaryOp::Pow {
                // |a| ^ (3b): defined for every sign of b.
                vec![
                    Instr::Input(0),
                    Instr::Unary(UnaryOp::Abs, 0),
                    Instr::Input(1),
                    Instr::Const(3.0),
                    Instr::Binary(BinaryOp::Mul, 2, 3),
                    Instr::Binary(op, 1, 4),
                ]
            } else {
                vec![Instr::Input(0), Instr::Input(1), Instr::Binary(op, 0, 1)]
            };
            p.0.kernels.push(Kernel::Elementwise {
                expr: Expr { instrs, num_inputs: 2 },
                inputs: vec![
                    View::dense(a, &s),
                    View {
                        buffer: b,
                        offset: 0,
                        shape: s.clone(),
                        strides: bstrides,
                    },
                ],
                out: View::dense(y, &s),
            });
            // powf through lg2/ex2.approx: a few ulp more than the CPU's powf.
            let rtol = if op == BinaryOp::Pow { 2e-5 } else { 1e-6 };
            assert_matches_cpu(&p.0, (i * 10 + rank) as u64, 1e-6, rtol);
        }
    }
}

#[test]
fn constant_exponents_use_the_exact_forms() {
    for c in [1.0f32, 2.0, 3.0, 0.5, -0.5, -1.0] {
        let mut p = P::new("pow_const");
        let x = p.input("x", &[2, 9]);
        let y = p.output("y", &[2, 9]);
        let instrs = vec![
            Instr::Input(0),
            Instr::Unary(UnaryOp::Abs, 0),
            Instr::Const(c),
            Instr::Binary(BinaryOp::Pow, 1, 2),
        ];
        p.0.kernels.push(Kernel::Elementwise {
            expr: Expr { instrs, num_inputs: 1 },
            inputs: vec![View::dense(x, &[2, 9])],
            out: View::dense(y, &[2, 9]),
        });
        assert_matches_cpu(&p.0, 5, 0.0, 0.0);
    }
}

#[test]
fn transposing_copies_and_concatenation_parts_match() {
    let mut rng = Rng(3);
    for case in 0..12 {
        let s = shape(&mut rng, 3);
        let mut p = P::new("copy");
        let x = p.input("x", &s);
        // dst: a concatenation along axis 1 of width s[1] + 4; this copy fills the
        // part after the first 4 columns, from x transposed (0, 2, 1) and back.
        let t = p.temp("t", s.iter().product());
        let tshape = vec![s[0], s[2], s[1]];
        p.0.kernels.push(Kernel::Copy {
            src: View {
                buffer: x,
                offset: 0,
                shape: tshape.clone(),
                strides: vec![(s[1] * s[2]) as isize, 1, s[2] as isize],
            },
            dst: View::dense(t, &tshape),
        });
        let oshape = vec![s[0], s[1] + 4, s[2]];
        let y = p.output("y", &oshape);
        let ostr = dense_strides(&oshape);
        p.0.kernels.push(Kernel::Copy {
            src: View {
                buffer: t,
                offset: 0,
                shape: s.clone(),
                strides: vec![(s[1] * s[2]) as isize, 1, s[1] as isize],
            },
            dst: View {
                buffer: y,
                offset: 4 * s[2],
                shape: s.clone(),
                strides: ostr,
            },
        });
        assert_matches_cpu(&p.0, case, 0.0, 0.0);
    }
}

#[test]
fn gathers_with_negative_indices_match() {
    for axis in 0..3 {
        let s = [5usize, 4, 3];
        let mut p = P::new("gather");
        let d = p.input("data", &s);
        let idx_shape = [2usize, 3];
        let i = p.input_i64("idx", &idx_shape);
        let mut oshape: Vec<usize> = s[..axis].to_vec();
        oshape.extend(idx_shape);
        oshape.extend(&s[axis + 1..]);
        let y = p.output("y", &oshape);
        p.0.kernels.push(Kernel::Gather {
            data: View::dense(d, &s),
            indices: View::dense(i, &idx_shape),
            axis,
            out: View::dense(y, &oshape),
        });
        // Indices in [-3, 3): valid on every axis, negative ones included.
        assert_matches_cpu_with_indices(&p.0, axis as u64, 3, 0.0, 0.0);
    }
}
