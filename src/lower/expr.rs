//! Elementwise expressions ([`EwExpr`] trees) as the kernel program's SSA form.

use crate::ewexpr::EwExpr;
use crate::graph::op::{BinaryOp, UnaryOp};
use eqopt_kir::{Expr, Instr};

/// `e` in SSA form; `None` if it uses an op the kernels do not evaluate (none today:
/// identities and dropouts are pass-throughs).
pub fn lower_expr(e: &EwExpr) -> Option<Expr> {
    let mut instrs = Vec::new();
    emit(e, &mut instrs)?;
    Some(Expr {
        num_inputs: e.num_inputs(),
        instrs,
    })
}

fn emit(e: &EwExpr, out: &mut Vec<Instr>) -> Option<usize> {
    let instr = match e {
        EwExpr::Input(k) => Instr::Input(*k),
        EwExpr::Lit(v) => Instr::Const(*v as f32),
        EwExpr::Unary(UnaryOp::Identity | UnaryOp::Dropout, a) => return emit(a, out),
        EwExpr::Unary(u, a) => {
            let a = emit(a, out)?;
            let op = match u {
                UnaryOp::Relu => eqopt_kir::UnaryOp::Relu,
                UnaryOp::Sigmoid => eqopt_kir::UnaryOp::Sigmoid,
                UnaryOp::Tanh => eqopt_kir::UnaryOp::Tanh,
                UnaryOp::Gelu => eqopt_kir::UnaryOp::Gelu,
                UnaryOp::Exp => eqopt_kir::UnaryOp::Exp,
                UnaryOp::Log => eqopt_kir::UnaryOp::Log,
                UnaryOp::Sqrt => eqopt_kir::UnaryOp::Sqrt,
                UnaryOp::Neg => eqopt_kir::UnaryOp::Neg,
                UnaryOp::Abs => eqopt_kir::UnaryOp::Abs,
                UnaryOp::Erf => eqopt_kir::UnaryOp::Erf,
                UnaryOp::Reciprocal => eqopt_kir::UnaryOp::Recip,
                UnaryOp::Identity | UnaryOp::Dropout => unreachable!("handled above"),
            };
            Instr::Unary(op, a)
        }
        EwExpr::Binary(b, x, y) => {
            let (x, y) = (emit(x, out)?, emit(y, out)?);
            let op = match b {
                BinaryOp::Add => eqopt_kir::BinaryOp::Add,
                BinaryOp::Sub => eqopt_kir::BinaryOp::Sub,
                BinaryOp::Mul => eqopt_kir::BinaryOp::Mul,
                BinaryOp::Div => eqopt_kir::BinaryOp::Div,
                BinaryOp::Pow => eqopt_kir::BinaryOp::Pow,
                BinaryOp::Max => eqopt_kir::BinaryOp::Max,
                BinaryOp::Min => eqopt_kir::BinaryOp::Min,
            };
            Instr::Binary(op, x, y)
        }
    };
    out.push(instr);
    Some(out.len() - 1)
}
