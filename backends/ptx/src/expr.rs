//! Elementwise expressions ([`Expr`]) as straight-line PTX over `f32` registers:
//! the body of elementwise kernels and of GEMM and convolution epilogues.

use crate::builder::{F32, Kb};
use eqopt_kir::{BinaryOp, Expr, Instr, UnaryOp};

/// Emits `expr` over `operands` (operand `k` is `Instr::Input(k)`) and returns the
/// register holding its result. A `Pow` whose exponent is the constant 1, 2, 3,
/// 0.5, -0.5 or -1 is emitted as the exact operation the CPU backend also uses.
///
/// # Panics
/// If `expr` reads an operand `operands` lacks, or is empty (the program
/// validator rejects both before emission).
pub fn emit_expr(kb: &mut Kb, expr: &Expr, operands: &[F32]) -> F32 {
    let mut values: Vec<F32> = Vec::with_capacity(expr.instrs.len());
    for instr in &expr.instrs {
        let v = match *instr {
            Instr::Input(k) => operands[k],
            Instr::Const(c) => kb.fconst(c),
            Instr::Unary(op, a) => unary(kb, op, values[a]),
            Instr::Binary(BinaryOp::Pow, a, b) => match expr.instrs[b] {
                Instr::Const(c) => pow_const(kb, values[a], values[b], c),
                _ => kb.pow(values[a], values[b]),
            },
            Instr::Binary(op, a, b) => binary(kb, op, values[a], values[b]),
        };
        values.push(v);
    }
    *values.last().expect("a validated expression is not empty")
}

fn unary(kb: &mut Kb, op: UnaryOp, x: F32) -> F32 {
    match op {
        UnaryOp::Relu => kb.relu(x),
        UnaryOp::Sigmoid => kb.sigmoid(x),
        UnaryOp::Tanh => kb.tanh(x),
        UnaryOp::Gelu => kb.gelu(x),
        UnaryOp::Exp => kb.exp(x),
        UnaryOp::Log => kb.log(x),
        UnaryOp::Sqrt => kb.fsqrt(x),
        UnaryOp::Neg => kb.fneg(x),
        UnaryOp::Abs => kb.fabs(x),
        UnaryOp::Erf => kb.erf(x),
        UnaryOp::Recip => kb.frcp(x),
        UnaryOp::Identity => x,
        UnaryOp::RoundBf16 => kb.round_bf16(x),
    }
}

fn binary(kb: &mut Kb, op: BinaryOp, a: F32, b: F32) -> F32 {
    match op {
        BinaryOp::Add => kb.fadd(a, b),
        BinaryOp::Sub => kb.fsub(a, b),
        BinaryOp::Mul => kb.fmul(a, b),
        BinaryOp::Div => kb.fdiv(a, b),
        BinaryOp::Pow => kb.pow(a, b),
        BinaryOp::Max => kb.fmax(a, b),
        BinaryOp::Min => kb.fmin(a, b),
    }
}

fn pow_const(kb: &mut Kb, a: F32, b: F32, c: f32) -> F32 {
    match c {
        1.0 => a,
        2.0 => kb.fmul(a, a),
        3.0 => {
            let sq = kb.fmul(a, a);
            kb.fmul(sq, a)
        }
        0.5 => kb.fsqrt(a),
        -0.5 => {
            let s = kb.fsqrt(a);
            kb.frcp(s)
        }
        -1.0 => kb.frcp(a),
        _ => kb.pow(a, b),
    }
}
