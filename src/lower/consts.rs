//! Constants. `f16`/`bf16` constants read through a `Cast` to f32 keep their
//! 2-byte storage when the cast is read only as weights: the `b` operand of a
//! GEMM (`MatMul`, `FusedMatMul`, including transposed-by-strides views) or the
//! weights of a convolution, which convert them to f32 inside the kernel. Every
//! other reduced-precision constant is widened to f32 here, at compile time
//! (exact: every f16 and bf16 value is an f32).
//!
//! The optimizer keeps such casts in the graph for this (see
//! [`crate::extraction::fold_constants`]).

use super::Lowering;
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::graph::op::Op;
use crate::graph::tensor::TensorData;
use crate::graph::{Constant, Graph, Node};
use eqopt_kir::{BufferKind, ConstData, ElemType, View};
use half::{bf16, f16};
use std::sync::Arc;

/// True when every reader of `cast` takes it as weights (input 1 of a GEMM or
/// convolution, and not also its input 0) and it is no graph output.
fn read_as_weights(graph: &Graph, cast: &str) -> bool {
    if graph.outputs.iter().any(|o| o == cast) {
        return false;
    }
    let mut read = false;
    for n in &graph.nodes {
        for (k, i) in n.inputs.iter().enumerate() {
            if i != cast {
                continue;
            }
            let weights =
                k == 1 && n.inputs[0] != cast && matches!(n.op, Op::MatMul | Op::FusedMatMul { .. } | Op::Conv(_) | Op::FusedConv { .. });
            if !weights {
                return false;
            }
            read = true;
        }
    }
    read
}

/// True when `name` is read only by casts to f32 (and is no graph output).
fn only_widened(graph: &Graph, name: &str) -> bool {
    !graph.outputs.iter().any(|o| o == name)
        && graph
            .nodes
            .iter()
            .filter(|n| n.inputs.iter().any(|i| i == name))
            .all(|n| matches!(n.op, Op::Cast { to: DType::F32 }))
}

impl Lowering<'_> {
    /// A buffer for every constant, except `f16`/`bf16` constants read only through
    /// casts to f32: their buffers are made by [`Lowering::widening_cast`].
    pub(super) fn constants(&mut self) -> Result<()> {
        let graph = self.graph;
        for c in &graph.constants {
            if c.ty.dtype.is_reduced_float() && only_widened(graph, &c.name) {
                self.reduced.insert(c.name.clone(), c.clone());
                continue;
            }
            if super::quant::only_dequantized(graph, &c.name) {
                // Read from the graph by `Lowering::dequantize`.
                continue;
            }
            let t = c.init.materialize(&c.ty);
            let (elem, data) = match c.ty.dtype {
                DType::F32 | DType::F16 | DType::BF16 => (
                    ElemType::F32,
                    ConstData::F32(Arc::new(t.to_f64().into_iter().map(|v| v as f32).collect())),
                ),
                DType::I64 | DType::I32 => (
                    ElemType::I64,
                    ConstData::I64(Arc::new(t.to_f64().into_iter().map(|v| v as i64).collect())),
                ),
                other => {
                    return Err(Error::Unsupported {
                        node: c.name.clone(),
                        op: "constant".into(),
                        problem: format!("runs f32 tensors (and integer indices), this constant is {}", other.name()),
                    });
                }
            };
            let id = self.add_buffer(&c.name, elem, c.ty.numel(), Some(BufferKind::Constant(data)));
            self.values.insert(c.name.clone(), View::dense(id, &c.ty.shape));
        }
        Ok(())
    }

    /// Lowers `node` when it is a cast to f32 of an `f16`/`bf16` constant: its
    /// value is the constant as stored when it is read only as weights, else the
    /// constant widened to f32. Each buffer is made once per constant. Returns
    /// false for any other node.
    pub(super) fn widening_cast(&mut self, node: &Node) -> bool {
        if !matches!(node.op, Op::Cast { to: DType::F32 }) {
            return false;
        }
        let Some(c) = self.reduced.get(&node.inputs[0]).cloned() else {
            return false;
        };
        let stored = read_as_weights(self.graph, &node.name);
        let view = match self.reduced_buffers.get(&(c.name.clone(), stored)) {
            Some(v) => v.clone(),
            None => {
                let v = self.reduced_buffer(&c, stored);
                self.reduced_buffers.insert((c.name.clone(), stored), v.clone());
                v
            }
        };
        self.values.insert(node.name.clone(), view);
        true
    }

    fn reduced_buffer(&mut self, c: &Constant, stored: bool) -> View {
        let t = c.init.materialize(&c.ty);
        let (elem, data) = match (stored, &t.data) {
            (true, TensorData::F16(v)) => (ElemType::F16, ConstData::F16(Arc::new(v.clone()))),
            (true, TensorData::BF16(v)) => (ElemType::BF16, ConstData::BF16(Arc::new(v.clone()))),
            (true, _) if c.ty.dtype == DType::BF16 => (
                ElemType::BF16,
                ConstData::BF16(Arc::new(t.to_f64().into_iter().map(|v| bf16::from_f32(v as f32)).collect())),
            ),
            (true, _) => (
                ElemType::F16,
                ConstData::F16(Arc::new(t.to_f64().into_iter().map(f16::from_f64).collect())),
            ),
            (false, _) => (
                ElemType::F32,
                ConstData::F32(Arc::new(t.to_f64().into_iter().map(|v| v as f32).collect())),
            ),
        };
        let id = self.add_buffer(&c.name, elem, c.ty.numel(), Some(BufferKind::Constant(data)));
        View::dense(id, &c.ty.shape)
    }
}
