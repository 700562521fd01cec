//! The work of one kernel of a [`Program`]: its arithmetic and its memory traffic,
//! counted the way the root crate's roofline model counts a graph op, so a
//! program's kernels can be given a predicted time and compared with measurement.
//!
//! Conventions (contracts the counts keep):
//! - Bytes read are the *distinct* elements of each input view (a broadcast
//!   dimension, stride 0, is read once) times the element size, except that a
//!   gather reads only the rows its indices select; bytes written
//!   are the output view's elements. Caches are not modelled: an operand read
//!   twice by the algorithm is counted once, as in a perfectly blocked kernel.
//! - Operations: a multiply-add is 2; an elementwise instruction (including a
//!   transcendental) is 1 per element; softmax is 4 per element (max,
//!   subtract-exp, sum, scale), layer norm 8, a reduction 1 per input element,
//!   a pooling window tap 1, an attention score 7 besides its two products
//!   (scale, mask, softmax). Copies and gathers do no arithmetic.

use crate::program::{Epilogue, Expr, Instr, Kernel, Program, View};

/// Arithmetic and memory traffic of one kernel.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KernelWork {
    /// Floating-point operations.
    pub flops: u64,
    /// Bytes read from its input views.
    pub bytes_read: u64,
    /// Bytes written to its output view.
    pub bytes_written: u64,
}

fn numel(shape: &[usize]) -> u64 {
    shape.iter().map(|&d| d as u64).product()
}

/// Elements of `view` at distinct addresses, counting a stride-0 dim once.
fn distinct_elements(view: &View) -> u64 {
    view.shape
        .iter()
        .zip(&view.strides)
        .map(|(&d, &s)| if s == 0 { 1 } else { d as u64 })
        .product()
}

/// Operations per element of an expression: its unary and binary instructions.
fn expr_ops(expr: &Expr) -> u64 {
    expr.instrs
        .iter()
        .filter(|i| matches!(i, Instr::Unary(..) | Instr::Binary(..)))
        .count() as u64
}

fn epilogue_ops(e: Option<&Epilogue>) -> u64 {
    e.map_or(0, |e| expr_ops(&e.expr))
}

impl Program {
    /// Bytes of `view`'s distinct elements, at its buffer's element size (a
    /// quantized matrix, always read whole: its stored bytes, scales included).
    fn view_bytes(&self, view: &View) -> u64 {
        if let Some(buf) = self.buffers.get(view.buffer).filter(|b| b.elem.is_quantized()) {
            return buf.bytes() as u64;
        }
        let size = self.buffers.get(view.buffer).map_or(4, |b| b.elem.size()) as u64;
        distinct_elements(view).saturating_mul(size)
    }

    /// The work of kernel `k`, or `None` if there is no such kernel.
    pub fn kernel_work(&self, k: usize) -> Option<KernelWork> {
        let kernel = self.kernels.get(k)?;
        let out = kernel.output();
        let out_elems = numel(&out.shape);
        let flops = match kernel {
            Kernel::Gemm { a, epilogue, .. } => {
                let depth = a.shape.last().copied().unwrap_or(0) as u64;
                out_elems.saturating_mul(2 * depth + epilogue_ops(epilogue.as_ref()))
            }
            Kernel::Conv {
                w,
                bias,
                geometry,
                epilogue,
                ..
            } => {
                let out_channels = if geometry.nhwc { out.shape.get(3) } else { out.shape.get(1) };
                let taps = numel(&w.shape) / out_channels.map_or(1, |&o| o.max(1) as u64);
                out_elems.saturating_mul(2 * taps + u64::from(bias.is_some()) + epilogue_ops(epilogue.as_ref()))
            }
            Kernel::Elementwise { expr, .. } => out_elems.saturating_mul(expr_ops(expr)),
            Kernel::Pool { kernel: window, .. } => out_elems.saturating_mul((window[0] * window[1]) as u64),
            Kernel::Softmax { .. } => out_elems.saturating_mul(4),
            Kernel::LayerNorm { .. } => out_elems.saturating_mul(8),
            Kernel::Reduce { x, .. } => numel(&x.shape),
            Kernel::Attention { q, kt, v, .. } => {
                let dim = |view: &View, from_end: usize| view.shape.len().checked_sub(from_end).map_or(0, |i| view.shape[i] as u64);
                let (s, d, t, e) = (dim(q, 2), dim(q, 1), dim(kt, 1), dim(v, 1));
                let batches = out_elems.checked_div(s * e).unwrap_or(0);
                batches.saturating_mul(s * t * (2 * d + 2 * e + 7))
            }
            Kernel::Gather { .. } | Kernel::Copy { .. } => 0,
        };
        let bytes_read = match kernel {
            // A gather reads the indices and only the rows they select.
            Kernel::Gather { data, indices, .. } => {
                let size = self.buffers.get(data.buffer).map_or(4, |b| b.elem.size()) as u64;
                self.view_bytes(indices).saturating_add(out_elems.saturating_mul(size))
            }
            _ => kernel.inputs().iter().map(|v| self.view_bytes(v)).sum(),
        };
        Some(KernelWork {
            flops,
            bytes_read,
            bytes_written: self.view_bytes(out),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::program::{Buffer, ElemType, GemmCompute};

    fn buf(len: usize) -> Buffer {
        Buffer {
            name: String::new(),
            elem: ElemType::F32,
            len,
            kind: None,
        }
    }

    #[test]
    fn gemm_counts_two_flops_per_multiply_add_and_each_operand_once() {
        let (m, k, n) = (3, 5, 7);
        let p = Program {
            name: "g".into(),
            buffers: vec![buf(m * k), buf(k * n), buf(m * n)],
            kernels: vec![Kernel::Gemm {
                a: View::dense(0, &[m, k]),
                b: View::dense(1, &[k, n]),
                out: View::dense(2, &[m, n]),
                epilogue: None,
                compute: GemmCompute::F32,
            }],
            inputs: vec![],
            outputs: vec![],
        };
        let w = p.kernel_work(0).unwrap();
        assert_eq!(w.flops, 2 * (m * k * n) as u64);
        assert_eq!(w.bytes_read, 4 * (m * k + k * n) as u64);
        assert_eq!(w.bytes_written, 4 * (m * n) as u64);
        assert_eq!(p.kernel_work(1), None);
    }

    #[test]
    fn a_broadcast_operand_is_read_once() {
        let mut bias = View::dense(1, &[4, 6]);
        bias.strides = vec![0, 1];
        let p = Program {
            name: "g".into(),
            buffers: vec![buf(24), buf(6), buf(24)],
            kernels: vec![Kernel::Elementwise {
                expr: Expr {
                    instrs: vec![Instr::Input(0), Instr::Input(1), Instr::Binary(crate::BinaryOp::Add, 0, 1)],
                    num_inputs: 2,
                },
                inputs: vec![View::dense(0, &[4, 6]), bias],
                out: View::dense(2, &[4, 6]),
            }],
            inputs: vec![],
            outputs: vec![],
        };
        let w = p.kernel_work(0).unwrap();
        assert_eq!(w.flops, 24);
        assert_eq!(w.bytes_read, 4 * (24 + 6));
    }
}
