//! `DequantizeLinear` of constants. A dequantized int8 or int4 `k × n` matrix
//! read only as the `b` operand of GEMMs (`MatMul`, `FusedMatMul`) keeps its
//! stored form: one quantized kir constant ([`ConstData::Int8`],
//! [`ConstData::Int4`]) that the GEMM dequantizes while packing it. Any other
//! dequantization of constants (another reader, another layout) is done here,
//! at compile time, into an `f32` constant; a dequantization of a computed
//! value is a lowering error.
//!
//! The quantized and scale constants read only by dequantizations get no buffer
//! of their own (see [`super::consts`]); the optimizer keeps such dequantizations
//! in the graph for this (see [`crate::extraction::fold_constants`]).

use super::Lowering;
use crate::error::Result;
use crate::graph::op::Op;
use crate::graph::{Graph, Node};
use crate::quant::{QuantFormat, dequantize, kir_const};
use eqopt_kir::{BufferKind, ConstData, ElemType, View};
use std::sync::Arc;

/// True when every reader of `value` takes it as the `b` operand of a GEMM (and
/// not also as its `a`), and it is no graph output.
fn read_as_gemm_weights(graph: &Graph, value: &str) -> bool {
    if graph.outputs.iter().any(|o| o == value) {
        return false;
    }
    let mut read = false;
    for n in &graph.nodes {
        for (k, i) in n.inputs.iter().enumerate() {
            if i != value {
                continue;
            }
            if k != 1 || n.inputs[0] == value || !matches!(n.op, Op::MatMul | Op::FusedMatMul { .. }) {
                return false;
            }
            read = true;
        }
    }
    read
}

/// True when `name` is read only by `DequantizeLinear` nodes (and is no graph output).
pub(super) fn only_dequantized(graph: &Graph, name: &str) -> bool {
    !graph.outputs.iter().any(|o| o == name)
        && graph
            .nodes
            .iter()
            .filter(|n| n.inputs.iter().any(|i| i == name))
            .all(|n| matches!(n.op, Op::Dequantize { .. }))
}

impl Lowering<'_> {
    /// Lowers `node` when it is a `DequantizeLinear` (see the module docs);
    /// returns false for any other node.
    pub(super) fn dequantize(&mut self, node: &Node) -> Result<bool> {
        let Op::Dequantize { axis, block_size } = node.op else {
            return Ok(false);
        };
        let graph = self.graph;
        let constant = |i: usize| graph.constants.iter().find(|c| c.name == node.inputs[i]);
        let (Some(x), Some(scale)) = (constant(0), constant(1)) else {
            return Err(Self::unsupported(
                node,
                format!(
                    "dequantizes constants only; \"{}\" and \"{}\" must both be constants",
                    node.inputs[0], node.inputs[1]
                ),
            ));
        };
        let (xt, st) = (x.init.materialize(&x.ty), scale.init.materialize(&scale.ty));
        let format = QuantFormat::of(&x.ty, &scale.ty, axis, block_size).filter(|_| read_as_gemm_weights(graph, &node.name));
        let stored = format.and_then(|f| kir_const(&xt, &st, f));
        let view = match stored {
            Some(data) => {
                let key = (format!("{}*{}", x.name, scale.name), true);
                match self.reduced_buffers.get(&key) {
                    Some(v) => v.clone(),
                    None => {
                        let elem = match data {
                            ConstData::Int4 { .. } => ElemType::I4,
                            _ => ElemType::I8,
                        };
                        let id = self.add_buffer(&x.name, elem, x.ty.numel(), Some(BufferKind::Constant(data)));
                        let v = View::dense(id, &x.ty.shape);
                        self.reduced_buffers.insert(key, v.clone());
                        v
                    }
                }
            }
            None if node.ty.dtype != crate::dtype::DType::F32 => {
                return Err(Self::unsupported(
                    node,
                    format!("runs f32 tensors, the output is {}", node.ty.dtype.name()),
                ));
            }
            None => {
                let values: Vec<f32> = dequantize(&xt, &st, axis, block_size).into_iter().map(|v| v as f32).collect();
                let data = ConstData::F32(Arc::new(values));
                let id = self.add_buffer(&node.name, ElemType::F32, node.ty.numel(), Some(BufferKind::Constant(data)));
                View::dense(id, &node.ty.shape)
            }
        };
        self.values.insert(node.name.clone(), view);
        Ok(true)
    }
}
