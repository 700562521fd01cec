//! Activations rounded to bfloat16 (`rules/activations.rules`).
//!
//! The graph spells the rounding `cast f32 (cast bf16 x)`; the CPU backend keeps
//! activations in f32, so the pair never makes a bf16 buffer. Which products
//! run on bf16 operands and which roundings fold into them is decided once, by
//! [`crate::cost::bf16_products`] (the cost model reads the same answer):
//! - `cast bf16 x` lowers to nothing; only casts back to f32 may read it;
//! - `cast f32` of it is `x` itself when every reader is a bf16-operand GEMM
//!   (which rounds while packing), else one elementwise `RoundBf16` kernel;
//! - the GEMMs of [`crate::cost::Bf16Products::products`] get
//!   [`GemmCompute::Bf16`] (rounding a rounded value changes nothing, so they
//!   may read either form).

use super::Lowering;
use crate::dtype::DType;
use crate::error::Result;
use crate::graph::Node;
use crate::graph::op::Op;
use eqopt_kir::{Expr, GemmCompute, Instr, Kernel, UnaryOp};

impl Lowering<'_> {
    /// Lowers `node` when it is one of a rounding pair's casts; returns false
    /// for any other node.
    ///
    /// # Errors
    /// [`crate::error::Error::Unsupported`] for a bf16 activation read by
    /// anything but a cast back to f32, or that is a graph output.
    pub(super) fn rounding_cast(&mut self, node: &Node) -> Result<bool> {
        let narrowing = node.op == (Op::Cast { to: DType::BF16 }) && self.bf16.fused_casts.contains_key(node.name.as_str());
        if narrowing {
            let graph = self.graph;
            let only_widened = !graph.outputs.iter().any(|o| o == &node.name)
                && graph
                    .nodes
                    .iter()
                    .filter(|n| n.inputs.iter().any(|i| i == &node.name))
                    .all(|n| n.op == (Op::Cast { to: DType::F32 }));
            if !only_widened {
                return Err(Self::unsupported(
                    node,
                    "the CPU backend keeps activations in f32: a bf16 activation may only be cast back to f32 (rounding it)",
                ));
            }
            return Ok(true);
        }
        let Some(x) = self.rounded_source(node) else { return Ok(false) };
        let source = self.value(&x);
        let view = if self.bf16.fused_casts.contains_key(node.name.as_str()) {
            source
        } else {
            let out = self.temp(&node.name, &node.ty);
            self.kernels.push(Kernel::Elementwise {
                expr: Expr {
                    instrs: vec![Instr::Input(0), Instr::Unary(UnaryOp::RoundBf16, 0)],
                    num_inputs: 1,
                },
                inputs: vec![source],
                out: out.clone(),
            });
            out
        };
        self.values.insert(node.name.clone(), view);
        Ok(true)
    }

    /// For `cast f32` of a `cast bf16 x` of an activation, `x`.
    fn rounded_source(&self, node: &Node) -> Option<String> {
        if node.op != (Op::Cast { to: DType::F32 }) {
            return None;
        }
        let narrowed = node.inputs.first()?;
        self.bf16.fused_casts.get(narrowed.as_str()).map(|x| x.to_string())
    }

    /// The arithmetic of GEMM node `node`.
    pub(super) fn gemm_compute(&self, node: &Node) -> GemmCompute {
        if self.bf16.products.contains(node.name.as_str()) {
            GemmCompute::Bf16
        } else {
            GemmCompute::F32
        }
    }
}
