//! Bad programs and bad arguments come back as errors, never panics, and leave
//! the output untouched.

use eqopt_cpu::KernelError;
use eqopt_cpu::elementwise::{BinaryOp, EwInput, EwProgram, Instr, UnaryOp, eval};

fn invalid(r: Result<EwProgram, KernelError>) -> usize {
    match r {
        Err(KernelError::InvalidProgram { instr, .. }) => instr,
        other => panic!("expected InvalidProgram, got {other:?}"),
    }
}

#[test]
fn malformed_programs() {
    assert_eq!(invalid(EwProgram::new(1, vec![])), 0);
    assert_eq!(invalid(EwProgram::new(1, vec![Instr::Input(1)])), 0);
    assert_eq!(invalid(EwProgram::new(2, vec![Instr::Input(0), Instr::Unary(UnaryOp::Exp, 1)])), 1);
    assert_eq!(
        invalid(EwProgram::new(
            2,
            vec![Instr::Input(0), Instr::Input(1), Instr::Binary(BinaryOp::Add, 0, 2)]
        )),
        2
    );
    assert_eq!(
        invalid(EwProgram::new(0, vec![Instr::Const(1.0), Instr::Binary(BinaryOp::Mul, 5, 0)])),
        1
    );
    let ok = EwProgram::new(0, vec![Instr::Const(1.0)]).expect("constant program");
    assert_eq!(ok.num_inputs(), 0);
    assert_eq!(ok.instrs(), &[Instr::Const(1.0)]);
}

fn add() -> EwProgram {
    EwProgram::new(2, vec![Instr::Input(0), Instr::Input(1), Instr::Binary(BinaryOp::Add, 0, 1)]).expect("valid")
}

#[test]
fn bad_arguments() {
    let prog = add();
    let a = vec![1.0f32; 12];
    let mut out = vec![-7.0f32; 12];
    let shape = [3, 4];
    let good = EwInput::contiguous(&a, &shape);

    // Wrong number of inputs.
    let r = eval(&prog, std::slice::from_ref(&good), &mut out, &shape);
    assert!(matches!(r, Err(KernelError::Shape { .. })), "{r:?}");
    // Strides of the wrong rank.
    let r = eval(&prog, &[good.clone(), EwInput::strided(&a, 0, vec![1])], &mut out, &shape);
    assert!(matches!(r, Err(KernelError::Shape { .. })), "{r:?}");
    // Output of the wrong length.
    let r = eval(&prog, &[good.clone(), good.clone()], &mut out[..11], &shape);
    assert!(
        matches!(
            r,
            Err(KernelError::BufferLength {
                expected: 12,
                found: 11,
                ..
            })
        ),
        "{r:?}"
    );
    // A short buffer.
    let r = eval(&prog, &[good.clone(), EwInput::contiguous(&a[..11], &shape)], &mut out, &shape);
    assert!(
        matches!(
            r,
            Err(KernelError::ViewOutOfBounds {
                index: 1,
                max: 11,
                len: 11,
                ..
            })
        ),
        "{r:?}"
    );
    // An offset past the end.
    let r = eval(&prog, &[EwInput::strided(&a, 1, vec![4, 1]), good.clone()], &mut out, &shape);
    assert!(matches!(r, Err(KernelError::ViewOutOfBounds { index: 0, .. })), "{r:?}");
    // A negative stride reaching before the start.
    let r = eval(
        &prog,
        &[good.clone(), EwInput::strided(&a, 3, vec![4, -1]).clone()],
        &mut out,
        &shape,
    );
    assert!(r.is_ok(), "offset 3 with stride -1 stays in bounds: {r:?}");
    let r = eval(&prog, &[good.clone(), EwInput::strided(&a, 2, vec![4, -1])], &mut out, &shape);
    assert!(matches!(r, Err(KernelError::ViewOutOfBounds { min: -1, .. })), "{r:?}");
    // Strides whose span overflows.
    let r = eval(
        &prog,
        &[good.clone(), EwInput::strided(&a, 0, vec![isize::MAX, 1])],
        &mut out,
        &shape,
    );
    assert!(matches!(r, Err(KernelError::ViewOutOfBounds { .. })), "{r:?}");
    // A shape whose element count overflows.
    let r = eval(
        &prog,
        &[EwInput::strided(&a, 0, vec![0, 0]), good.clone()],
        &mut out,
        &[usize::MAX, 2],
    );
    assert!(matches!(r, Err(KernelError::Shape { .. })), "{r:?}");
    // Incompatible broadcast.
    assert!(matches!(EwInput::broadcast(&a, &[3], &[3, 4]), Err(KernelError::Shape { .. })));
    assert!(matches!(
        EwInput::broadcast(&a, &[1, 3, 4], &[3, 4]),
        Err(KernelError::Shape { .. })
    ));
    // Nothing was written by the failed calls (the one successful call above did).
    let mut fresh = vec![-7.0f32; 12];
    let r = eval(&prog, &[good.clone(), EwInput::contiguous(&a[..11], &shape)], &mut fresh, &shape);
    assert!(r.is_err());
    assert!(fresh.iter().all(|&v| v == -7.0));
    // An empty output needs no in-bounds inputs.
    let r = eval(&prog, &[EwInput::strided(&[], 0, vec![1, 1]), good], &mut [], &[0, 4]);
    assert!(r.is_ok(), "{r:?}");
}
