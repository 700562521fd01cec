//! Every kernel kind's emitted module is accepted by NVIDIA's `ptxas` for
//! `sm_80` and `sm_90`.

mod common;

use common::{P, assemble, offsets, ptxas};
use eqopt_kir::{BinaryOp, Expr, Instr, Kernel, UnaryOp, View};
use eqopt_ptx::{SmTarget, compile};

fn elementwise_program() -> eqopt_kir::Program {
    let mut p = P::new("ew");
    let x = p.input("x", &[3, 5]);
    let b = p.input("b", &[5]);
    let y = p.output("y", &[3, 5]);
    let mut instrs = vec![Instr::Input(0), Instr::Input(1), Instr::Binary(BinaryOp::Add, 0, 1)];
    for op in [
        UnaryOp::Gelu,
        UnaryOp::Tanh,
        UnaryOp::Sigmoid,
        UnaryOp::Exp,
        UnaryOp::Log,
        UnaryOp::Erf,
        UnaryOp::RoundBf16,
    ] {
        let last = instrs.len() - 1;
        instrs.push(Instr::Unary(op, last));
    }
    let last = instrs.len() - 1;
    instrs.push(Instr::Const(1.5));
    instrs.push(Instr::Binary(BinaryOp::Pow, last, last + 1));
    p.0.kernels.push(Kernel::Elementwise {
        expr: Expr { instrs, num_inputs: 2 },
        inputs: vec![
            View::dense(x, &[3, 5]),
            View {
                buffer: b,
                offset: 0,
                shape: vec![3, 5],
                strides: vec![0, 1],
            },
        ],
        out: View::dense(y, &[3, 5]),
    });
    p.0
}

#[test]
fn elementwise_module_assembles_for_both_targets() {
    let Some(ptxas) = ptxas() else { return };
    let program = elementwise_program();
    let (offs, _) = offsets(&program);
    for target in SmTarget::ALL {
        let c = compile(&program, &offs, target).unwrap();
        let report = assemble(&ptxas, &c.ptx, target.name());
        assert!(report.contains("Compiling entry function 'k0_elementwise'"), "{report}");
    }
}
