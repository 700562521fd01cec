//! Elementwise programs: the public instruction set, validation, and the compiled
//! plan (dead-code elimination, constant-exponent `Pow` rewriting, tile-buffer
//! allocation) the executor runs.

use crate::KernelError;

const KERNEL: &str = "elementwise";

pub use eqopt_kir::{BinaryOp, Instr, UnaryOp};

/// A validated elementwise program over `num_inputs` inputs; its last instruction
/// is the output.
#[derive(Debug, Clone)]
pub struct EwProgram {
    instrs: Vec<Instr>,
    num_inputs: usize,
    pub(super) plan: Plan,
}

impl EwProgram {
    /// Validates and compiles a program. Errors ([`KernelError::InvalidProgram`])
    /// if it is empty, an operand does not name an earlier instruction, or an
    /// input index is not below `num_inputs`.
    pub fn new(num_inputs: usize, instrs: Vec<Instr>) -> Result<Self, KernelError> {
        let bad = |instr, reason| KernelError::InvalidProgram {
            kernel: KERNEL,
            instr,
            reason,
        };
        if instrs.is_empty() {
            return Err(bad(0, "the program is empty"));
        }
        for (i, ins) in instrs.iter().enumerate() {
            match *ins {
                Instr::Input(k) if k >= num_inputs => return Err(bad(i, "input index out of range")),
                Instr::Unary(_, a) if a >= i => return Err(bad(i, "operand does not name an earlier instruction")),
                Instr::Binary(_, a, b) if a >= i || b >= i => return Err(bad(i, "operand does not name an earlier instruction")),
                _ => {}
            }
        }
        let plan = Plan::compile(&instrs);
        Ok(EwProgram { instrs, num_inputs, plan })
    }

    /// The instructions, as given.
    pub fn instrs(&self) -> &[Instr] {
        &self.instrs
    }

    /// How many inputs the program reads.
    pub fn num_inputs(&self) -> usize {
        self.num_inputs
    }
}

/// A unary operation as executed: the public ones plus `Pow` rewrites.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum UOp {
    U(UnaryOp),
    Square,
    Cube,
    Rsqrt,
    PowConst(f32),
}

/// An executed operation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Op {
    Unary(UOp),
    Binary(BinaryOp),
}

/// What a program value is before execution.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum ValueDef {
    Input(usize),
    Const(f32),
    /// Computed by a step, into this tile buffer (`None`: the output, written
    /// straight to the output tile).
    Computed(Option<usize>),
}

/// One executed step: `value = op(args)`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Step {
    pub value: usize,
    pub op: Op,
    pub a: usize,
    /// Second operand (equal to `a` for unary steps).
    pub b: usize,
}

/// The compiled form of a program.
#[derive(Debug, Clone)]
pub(super) struct Plan {
    pub defs: Vec<ValueDef>,
    pub steps: Vec<Step>,
    pub output: usize,
    pub num_slots: usize,
}

impl Plan {
    fn compile(instrs: &[Instr]) -> Plan {
        let n = instrs.len();
        let output = n - 1;
        // Rewrite constant-exponent Pow into unary ops.
        let ops: Vec<Option<(Op, usize, usize)>> = instrs
            .iter()
            .map(|ins| match *ins {
                Instr::Unary(u, a) => Some((Op::Unary(UOp::U(u)), a, a)),
                Instr::Binary(BinaryOp::Pow, a, b) => match instrs[b] {
                    Instr::Const(c) => Some((Op::Unary(pow_const(c)), a, a)),
                    _ => Some((Op::Binary(BinaryOp::Pow), a, b)),
                },
                Instr::Binary(op, a, b) => Some((Op::Binary(op), a, b)),
                _ => None,
            })
            .collect();
        // Liveness: which values the output depends on.
        let mut live = vec![false; n];
        live[output] = true;
        for i in (0..n).rev() {
            if let (true, Some((_, a, b))) = (live[i], ops[i]) {
                live[a] = true;
                live[b] = true;
            }
        }
        let mut last_use = vec![0usize; n];
        for (i, op) in ops.iter().enumerate() {
            if let (true, Some((_, a, b))) = (live[i], op) {
                last_use[*a] = i;
                last_use[*b] = i;
            }
        }
        let mut defs = Vec::with_capacity(n);
        let mut steps = Vec::new();
        let mut slot_of = vec![None; n];
        let mut free: Vec<usize> = Vec::new();
        let mut num_slots = 0;
        for (i, ins) in instrs.iter().enumerate() {
            let def = match (*ins, ops[i]) {
                (Instr::Input(k), _) => ValueDef::Input(k),
                (Instr::Const(c), _) => ValueDef::Const(c),
                (_, Some((op, a, b))) if live[i] => {
                    // Allocate before freeing the operands' buffers, so a step never
                    // writes the buffer it reads.
                    let slot = (i != output).then(|| {
                        free.pop().unwrap_or_else(|| {
                            num_slots += 1;
                            num_slots - 1
                        })
                    });
                    slot_of[i] = slot;
                    steps.push(Step { value: i, op, a, b });
                    for v in if a == b { vec![a] } else { vec![a, b] } {
                        match slot_of[v] {
                            Some(s) if last_use[v] == i => free.push(s),
                            _ => {}
                        }
                    }
                    ValueDef::Computed(slot)
                }
                _ => ValueDef::Computed(None),
            };
            defs.push(def);
        }
        Plan {
            defs,
            steps,
            output,
            num_slots,
        }
    }
}

fn pow_const(c: f32) -> UOp {
    match c {
        1.0 => UOp::U(UnaryOp::Identity),
        2.0 => UOp::Square,
        3.0 => UOp::Cube,
        0.5 => UOp::U(UnaryOp::Sqrt),
        -0.5 => UOp::Rsqrt,
        -1.0 => UOp::U(UnaryOp::Recip),
        _ => UOp::PowConst(c),
    }
}
