//! The readable form of a program (`eqopt compile --backend cpu` writes it).
//!
//! One line per buffer, then one line per kernel:
//! `k3 gemm %4[128, 384] = %1[128, 384] x %2[384, 384] epilogue relu(add(x0, x1)) x1=%3[128, 384] strides [0, 1]`.

use crate::program::{BinaryOp, BufferKind, Epilogue, Expr, GemmCompute, Instr, Kernel, Program, UnaryOp};
use std::fmt;

fn expr_text(e: &Expr) -> String {
    let mut vals: Vec<String> = Vec::with_capacity(e.instrs.len());
    for i in &e.instrs {
        let s = match *i {
            Instr::Input(k) => format!("x{k}"),
            Instr::Const(c) => format!("{c:?}"),
            Instr::Unary(op, a) => format!("{}({})", unary_name(op), vals[a]),
            Instr::Binary(op, a, b) => format!("{}({}, {})", binary_name(op), vals[a], vals[b]),
        };
        vals.push(s);
    }
    vals.pop().unwrap_or_default()
}

fn unary_name(op: UnaryOp) -> &'static str {
    match op {
        UnaryOp::Relu => "relu",
        UnaryOp::Sigmoid => "sigmoid",
        UnaryOp::Tanh => "tanh",
        UnaryOp::Gelu => "gelu",
        UnaryOp::Exp => "exp",
        UnaryOp::Log => "log",
        UnaryOp::Sqrt => "sqrt",
        UnaryOp::Neg => "neg",
        UnaryOp::Abs => "abs",
        UnaryOp::Erf => "erf",
        UnaryOp::Recip => "recip",
        UnaryOp::Identity => "identity",
        UnaryOp::RoundBf16 => "round_bf16",
    }
}

fn binary_name(op: BinaryOp) -> &'static str {
    match op {
        BinaryOp::Add => "add",
        BinaryOp::Sub => "sub",
        BinaryOp::Mul => "mul",
        BinaryOp::Div => "div",
        BinaryOp::Pow => "pow",
        BinaryOp::Max => "max",
        BinaryOp::Min => "min",
    }
}

fn epilogue_text(e: &Option<Epilogue>) -> String {
    match e {
        None => String::new(),
        Some(e) => {
            let mut s = format!(" epilogue {}", expr_text(&e.expr));
            for (i, v) in e.extras.iter().enumerate() {
                s.push_str(&format!(" x{}={v}", i + 1));
            }
            s
        }
    }
}

impl fmt::Display for Program {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "program {}", self.name)?;
        for (i, b) in self.buffers.iter().enumerate() {
            let kind = match &b.kind {
                None => "temp",
                Some(BufferKind::Input) => "input",
                Some(BufferKind::Output) => "output",
                Some(BufferKind::Constant(_)) => "const",
            };
            writeln!(f, "buffer %{i} {kind} {:?} {} \"{}\"", b.elem, b.len, b.name)?;
        }
        for (k, kernel) in self.kernels.iter().enumerate() {
            write!(f, "k{k} {} {} = ", kernel.name(), kernel.output())?;
            match kernel {
                Kernel::Gemm {
                    a, b, epilogue, compute, ..
                } => {
                    let arith = match compute {
                        GemmCompute::F32 => "",
                        GemmCompute::Bf16 => " compute bf16",
                    };
                    write!(f, "{a} x {b}{arith}{}", epilogue_text(epilogue))?
                }
                Kernel::Conv {
                    x,
                    w,
                    bias,
                    geometry: g,
                    epilogue,
                    ..
                } => {
                    write!(
                        f,
                        "conv {x} {w} strides {:?} pads {:?} dilations {:?} group {}{}",
                        g.strides,
                        g.pads,
                        g.dilations,
                        g.group,
                        if g.nhwc { " nhwc" } else { "" }
                    )?;
                    if let Some(b) = bias {
                        write!(f, " bias {b}")?;
                    }
                    write!(f, "{}", epilogue_text(epilogue))?;
                }
                Kernel::Elementwise { expr, inputs, .. } => {
                    write!(f, "{}", expr_text(expr))?;
                    for (i, v) in inputs.iter().enumerate() {
                        write!(f, " x{i}={v}")?;
                    }
                }
                Kernel::Pool {
                    kind,
                    kernel,
                    strides,
                    pads,
                    nhwc,
                    x,
                    ..
                } => write!(
                    f,
                    "{kind:?} {x} kernel {kernel:?} strides {strides:?} pads {pads:?}{}",
                    if *nhwc { " nhwc" } else { "" }
                )?,
                Kernel::Softmax { x, .. } => write!(f, "softmax {x}")?,
                Kernel::LayerNorm {
                    x,
                    scale,
                    bias,
                    axis,
                    epsilon,
                    ..
                } => write!(f, "layernorm {x} scale {scale} bias {bias} axis {axis} eps {epsilon:e}")?,
                Kernel::Reduce { kind, axes, x, .. } => write!(f, "{kind:?} {x} axes {axes:?}")?,
                Kernel::Attention {
                    q,
                    kt,
                    v,
                    mask,
                    scale,
                    divide,
                    ..
                } => {
                    write!(f, "attention q {q} kt {kt} v {v} {} {scale}", if *divide { "div" } else { "mul" })?;
                    if let Some(m) = mask {
                        write!(f, " mask {m}")?;
                    }
                }
                Kernel::Gather { data, indices, axis, .. } => write!(f, "gather {data} {indices} axis {axis}")?,
                Kernel::Copy { src, .. } => write!(f, "copy {src}")?,
            }
            writeln!(f)?;
        }
        Ok(())
    }
}
