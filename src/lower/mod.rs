//! Lowering: an (extracted) graph becomes a kernel-level program
//! ([`eqopt_kir::Program`]) that a backend executes.
//!
//! Every node becomes at most a few kernels, following the cost model's view of
//! what is a kernel (`cost::work`):
//! - reshapes, flattens, identities, dropouts, slices and transposes that only move
//!   unit axes are **views** of their input's buffer (a reshape of a strided view
//!   is first copied to a dense buffer);
//! - any other transpose is a [`Kernel::Copy`] into a dense buffer;
//! - a concatenation is one [`Kernel::Copy`] per input into its region of the output,
//!   except for inputs whose producing kernel writes straight into that region (a
//!   dense region of a single-use kernel output: channel concatenations at batch 1);
//! - everything else is one kernel writing a fresh dense buffer, reading its inputs
//!   through strided views (broadcasts are zero strides).
//!
//! Graph outputs are written by their producing kernel straight into the output
//! buffer, or copied there when the output is a view, an input or a constant.

mod consts;
mod expr;
mod quant;
mod round;

use crate::dtype::{DType, TensorType};
use crate::error::{Error, Result};
use crate::graph::op::{AttentionLayout, BinaryOp, KEYS_TO_KT, Layout, Op, PoolKind, ReduceKind, SWAP_HEADS, UnaryOp};
use crate::graph::{Graph, Node};
use eqopt_kir::{Buffer, BufferId, BufferKind, ConvGeometry, ElemType, Epilogue, Kernel, Program, View, dense_strides};
pub use expr::lower_expr;
use std::collections::{BTreeMap, BTreeSet};

struct Lowering<'g> {
    graph: &'g Graph,
    buffers: Vec<Buffer>,
    kernels: Vec<Kernel>,
    values: BTreeMap<String, View>,
    /// Concatenations whose buffer exists before their inputs are lowered.
    concat_out: BTreeMap<String, View>,
    /// Node outputs to be written straight into their region of a concatenation.
    placed: BTreeMap<String, View>,
    /// The placed outputs whose producer did write into its region.
    written_in_place: BTreeSet<String>,
    /// `f16`/`bf16` constants read only through casts to f32 (see [`consts`]).
    reduced: BTreeMap<String, crate::graph::Constant>,
    /// Their buffers: (constant, kept in its precision) -> the whole buffer; also
    /// the quantized buffers of `quant` (keyed by values and scales).
    reduced_buffers: BTreeMap<(String, bool), View>,
    /// The bf16-operand products and the roundings they absorb (see [`round`]).
    bf16: crate::cost::Bf16Products<'g>,
}

/// True for ops whose lowering writes one fresh dense buffer obtained from
/// `Lowering::temp` under the node's name (so it can be given a region instead).
fn writes_fresh_buffer(op: &Op) -> bool {
    !matches!(
        op,
        Op::Unary(UnaryOp::Identity | UnaryOp::Dropout)
            | Op::Reshape { .. }
            | Op::Flatten { .. }
            | Op::Slice { .. }
            | Op::Transpose { .. }
            | Op::Cast { .. }
            | Op::Concat { .. }
    )
}

/// `view` broadcast to `shape` (NumPy rules: aligned right, size-1 dims get stride 0).
fn broadcast_view(view: &View, shape: &[usize]) -> View {
    let pad = shape.len().saturating_sub(view.shape.len());
    let mut strides = vec![0isize; shape.len()];
    for (i, (&d, &s)) in view.shape.iter().zip(&view.strides).enumerate() {
        if d != 1 {
            strides[pad + i] = s;
        }
    }
    View {
        buffer: view.buffer,
        offset: view.offset,
        shape: shape.to_vec(),
        strides,
    }
}

/// `view` with its axes permuted (`out[i] = in[perm[i]]`).
fn permute_view(view: &View, perm: &[usize]) -> View {
    View {
        buffer: view.buffer,
        offset: view.offset,
        shape: perm.iter().map(|&p| view.shape[p]).collect(),
        strides: perm.iter().map(|&p| view.strides[p]).collect(),
    }
}

/// A dense `view` seen with another shape of the same size.
fn reshaped(view: &View, shape: &[usize]) -> View {
    View {
        buffer: view.buffer,
        offset: view.offset,
        shape: shape.to_vec(),
        strides: dense_strides(shape),
    }
}

/// `view` (possibly strided) seen with `shape`, without copying, when its elements'
/// row-major order can be addressed by strides of the new shape (NumPy's
/// `attempt_nocopy_reshape`): each run of new dims must split one run of old dims
/// that is contiguous in memory. `None` when a copy is needed.
fn reshape_strided(view: &View, shape: &[usize]) -> Option<View> {
    let old: Vec<(usize, isize)> = view
        .shape
        .iter()
        .zip(&view.strides)
        .filter(|(d, _)| **d != 1)
        .map(|(&d, &s)| (d, s))
        .collect();
    let mut strides = vec![0isize; shape.len()];
    let (mut oi, mut ni) = (0usize, 0usize);
    while ni < shape.len() {
        if shape[ni] == 1 {
            ni += 1;
            continue;
        }
        // Take the smallest runs old[oi..oj] and new[ni..nj] of equal size.
        let (mut oj, mut nj) = (oi + 1, ni + 1);
        let (mut op, mut np) = (old.get(oi)?.0, shape[ni]);
        while op != np {
            if op < np {
                op *= old.get(oj)?.0;
                oj += 1;
            } else {
                np *= *shape.get(nj)?;
                nj += 1;
            }
        }
        // The old run must be contiguous: stride[k] = stride[k+1]·dim[k+1].
        if (oi..oj - 1).any(|k| old[k].1 != old[k + 1].1 * old[k + 1].0 as isize) {
            return None;
        }
        // The new dims get strides from the run's innermost stride outwards.
        let mut acc = old[oj - 1].1;
        for k in (ni..nj).rev() {
            strides[k] = acc;
            acc *= shape[k] as isize;
        }
        oi = oj;
        ni = nj;
    }
    (oi == old.len()).then(|| View {
        buffer: view.buffer,
        offset: view.offset,
        shape: shape.to_vec(),
        strides,
    })
}

impl<'g> Lowering<'g> {
    fn unsupported(node: &Node, problem: impl Into<String>) -> Error {
        Error::Unsupported {
            node: node.name.clone(),
            op: node.op.name().to_string(),
            problem: problem.into(),
        }
    }

    fn add_buffer(&mut self, name: &str, elem: ElemType, len: usize, kind: Option<BufferKind>) -> BufferId {
        self.buffers.push(Buffer {
            name: name.to_string(),
            elem,
            len,
            kind,
        });
        self.buffers.len() - 1
    }

    /// A fresh dense intermediate for a node's value, or the node's region of the
    /// concatenation it feeds when [`plan_concats`] placed it there.
    fn temp(&mut self, name: &str, ty: &TensorType) -> View {
        if let Some(region) = self.placed.remove(name) {
            self.written_in_place.insert(name.to_string());
            return region;
        }
        let id = self.add_buffer(name, ElemType::F32, ty.numel(), None);
        View::dense(id, &ty.shape)
    }

    /// Concatenations whose inputs can write straight into their regions: the
    /// region must be dense (every axis before the concatenation axis has size 1,
    /// as a channel concatenation at batch 1), and the input a kernel's fresh output
    /// used by nothing else (not a graph output, not another node's input).
    fn plan_concats(&mut self) {
        let graph = self.graph;
        let uses = graph.use_counts();
        let producers: BTreeMap<&str, &Node> = graph.nodes.iter().map(|n| (n.name.as_str(), n)).collect();
        for c in &graph.nodes {
            let Op::Concat { axis } = c.op else {
                continue;
            };
            if c.ty.shape[..axis].iter().any(|&d| d != 1) {
                continue;
            }
            let eligible = |i: &String| {
                uses.get(i.as_str()) == Some(&1)
                    && producers
                        .get(i.as_str())
                        .is_some_and(|p| writes_fresh_buffer(&p.op) && p.ty.dtype == DType::F32)
            };
            if !c.inputs.iter().any(eligible) {
                continue;
            }
            let id = self.add_buffer(&c.name, ElemType::F32, c.ty.numel(), None);
            let out = View::dense(id, &c.ty.shape);
            let mut start = 0usize;
            for i in &c.inputs {
                let ty = graph.type_of(i).expect("validated graph");
                if eligible(i) {
                    let mut region = out.clone();
                    region.offset += start * out.strides[axis] as usize;
                    region.shape = ty.shape.clone();
                    region.strides = dense_strides(&ty.shape);
                    self.placed.insert(i.clone(), region);
                }
                start += ty.shape[axis];
            }
            self.concat_out.insert(c.name.clone(), out);
        }
    }

    fn value(&self, name: &str) -> View {
        self.values[name].clone()
    }

    /// The input views of `node`, each broadcast to `shape`.
    fn broadcast_inputs(&self, node: &Node, shape: &[usize]) -> Vec<View> {
        node.inputs.iter().map(|i| broadcast_view(&self.value(i), shape)).collect()
    }

    /// A dense copy of `view` (or `view` itself when it is already dense).
    fn dense(&mut self, view: View, name: &str) -> View {
        if view.is_dense() {
            return view;
        }
        let ty = TensorType::new(view.shape.clone(), DType::F32);
        let out = self.temp(&format!("{name}/dense"), &ty);
        self.kernels.push(Kernel::Copy {
            src: view,
            dst: out.clone(),
        });
        out
    }

    fn check_f32(&self, node: &Node) -> Result<()> {
        let int_input = |k: usize| match node.op {
            Op::Gather { .. } => k == 1,
            Op::Cast { .. } => k == 0,
            _ => false,
        };
        for (k, i) in node.inputs.iter().enumerate() {
            let ty = self.graph.type_of(i).expect("validated graph");
            let ok = ty.dtype == DType::F32 || (int_input(k) && matches!(ty.dtype, DType::I64 | DType::I32));
            if !ok {
                return Err(Self::unsupported(
                    node,
                    format!("runs f32 tensors, input \"{i}\" is {}", ty.dtype.name()),
                ));
            }
        }
        if node.ty.dtype != DType::F32 {
            return Err(Self::unsupported(
                node,
                format!("runs f32 tensors, the output is {}", node.ty.dtype.name()),
            ));
        }
        Ok(())
    }

    fn epilogue(&self, node: &Node, expr: &crate::ewexpr::EwExpr, extras: &[String]) -> Result<Epilogue> {
        let expr = lower_expr(expr).ok_or_else(|| Self::unsupported(node, "cannot evaluate this epilogue expression"))?;
        Ok(Epilogue {
            expr,
            extras: extras.iter().map(|i| broadcast_view(&self.value(i), &node.ty.shape)).collect(),
        })
    }

    fn node(&mut self, node: &Node) -> Result<()> {
        if self.widening_cast(node) || self.dequantize(node)? || self.rounding_cast(node)? {
            return Ok(());
        }
        self.check_f32(node)?;
        let name = node.name.as_str();
        let shape = node.ty.shape.clone();
        // Every op has at least one input (validated graph).
        let x0 = self.value(&node.inputs[0]);
        let x = || x0.clone();
        let view = match &node.op {
            Op::Unary(UnaryOp::Identity | UnaryOp::Dropout) => x(),
            Op::Cast { .. } => {
                let in_ty = self.graph.type_of(&node.inputs[0]).expect("validated graph");
                if in_ty.dtype == DType::F32 {
                    x()
                } else {
                    // Integers to f32: a converting copy.
                    let out = self.temp(name, &node.ty);
                    self.kernels.push(Kernel::Copy {
                        src: x(),
                        dst: out.clone(),
                    });
                    out
                }
            }
            Op::Dequantize { .. } => return Err(Self::unsupported(node, "is lowered by Lowering::dequantize")),
            Op::Reshape { .. } | Op::Flatten { .. } => match reshape_strided(&x(), &shape) {
                Some(v) => v,
                None => {
                    let v = self.dense(x(), name);
                    reshaped(&v, &shape)
                }
            },
            Op::Slice { axes, starts, steps, .. } => {
                let mut v = x();
                for (k, &a) in axes.iter().enumerate() {
                    let off = (starts[k] as isize).saturating_mul(v.strides[a]);
                    v.offset = (v.offset as isize + off) as usize;
                    v.strides[a] = v.strides[a].saturating_mul(steps[k] as isize);
                }
                v.shape = shape.clone();
                v
            }
            Op::Transpose { perm } => {
                let v = permute_view(&x(), perm);
                let in_ty = self.graph.type_of(&node.inputs[0]).expect("validated graph");
                if crate::cost::is_unit_axes_transpose(&node.op, in_ty) {
                    v
                } else {
                    let out = self.temp(name, &node.ty);
                    self.kernels.push(Kernel::Copy { src: v, dst: out.clone() });
                    out
                }
            }
            Op::Unary(_) | Op::Binary(_) | Op::FusedElementwise { .. } => {
                let e = match &node.op {
                    Op::Unary(u) => crate::ewexpr::EwExpr::Unary(*u, Box::new(crate::ewexpr::EwExpr::Input(0))),
                    Op::Binary(b) => crate::ewexpr::EwExpr::Binary(
                        *b,
                        Box::new(crate::ewexpr::EwExpr::Input(0)),
                        Box::new(crate::ewexpr::EwExpr::Input(1)),
                    ),
                    Op::FusedElementwise { expr } => expr.clone(),
                    _ => unreachable!("matched above"),
                };
                let expr = lower_expr(&e).ok_or_else(|| Self::unsupported(node, "cannot evaluate this expression"))?;
                let inputs = self.broadcast_inputs(node, &shape);
                let out = self.temp(name, &node.ty);
                self.kernels.push(Kernel::Elementwise {
                    expr,
                    inputs,
                    out: out.clone(),
                });
                out
            }
            Op::MatMul | Op::FusedMatMul { .. } => self.gemm(node)?,
            Op::Conv(p) | Op::FusedConv { params: p, .. } => {
                let out = self.temp(name, &node.ty);
                let (bias, epilogue) = match &node.op {
                    Op::Conv(_) => (node.inputs.get(2).map(|b| self.value(b)), None),
                    Op::FusedConv { epilogue, .. } => (None, Some(self.epilogue(node, epilogue, &node.inputs[2..])?)),
                    _ => unreachable!("matched above"),
                };
                self.kernels.push(Kernel::Conv {
                    x: x(),
                    w: self.value(&node.inputs[1]),
                    bias,
                    out: out.clone(),
                    geometry: ConvGeometry {
                        strides: p.strides,
                        pads: p.pads,
                        dilations: p.dilations,
                        group: p.group,
                        nhwc: p.layout == Layout::Nhwc,
                    },
                    epilogue,
                });
                out
            }
            Op::Pool(kind, p) => {
                let out = self.temp(name, &node.ty);
                self.kernels.push(Kernel::Pool {
                    kind: pool_kind(*kind),
                    kernel: p.kernel,
                    strides: p.strides,
                    pads: p.pads,
                    nhwc: p.layout == Layout::Nhwc,
                    x: x(),
                    out: out.clone(),
                });
                out
            }
            Op::GlobalPool(kind) => {
                let out = self.temp(name, &node.ty);
                let kind = if *kind == PoolKind::Max {
                    eqopt_kir::ReduceKind::Max
                } else {
                    eqopt_kir::ReduceKind::Mean
                };
                self.kernels.push(Kernel::Reduce {
                    kind,
                    axes: vec![2, 3],
                    x: x(),
                    out: out.clone(),
                });
                out
            }
            Op::Reduce { kind, axes, keepdims } => {
                let in_ty = self.graph.type_of(&node.inputs[0]).expect("validated graph").clone();
                let mut kept = in_ty.shape.clone();
                for &a in axes {
                    kept[a] = 1;
                }
                let kept_ty = TensorType::new(kept, DType::F32);
                let out = self.temp(name, &kept_ty);
                let kind = match kind {
                    ReduceKind::Sum => eqopt_kir::ReduceKind::Sum,
                    ReduceKind::Mean => eqopt_kir::ReduceKind::Mean,
                    ReduceKind::Max => eqopt_kir::ReduceKind::Max,
                };
                let mut axes = axes.clone();
                axes.sort_unstable();
                self.kernels.push(Kernel::Reduce {
                    kind,
                    axes,
                    x: x(),
                    out: out.clone(),
                });
                if *keepdims { out } else { reshaped(&out, &shape) }
            }
            Op::BatchNorm { epsilon } => {
                // (x − mean) / sqrt(var + ε) · scale + bias, per channel (axis 1).
                let c = shape[1];
                let mut per_channel = vec![1usize; shape.len() - 1];
                per_channel[0] = c;
                let mut inputs = vec![x()];
                for i in &node.inputs[1..] {
                    inputs.push(broadcast_view(&reshaped(&self.value(i), &per_channel), &shape));
                }
                use crate::ewexpr::EwExpr as E;
                let inp = |k| Box::new(E::Input(k));
                let norm = E::Binary(
                    BinaryOp::Div,
                    Box::new(E::Binary(BinaryOp::Sub, inp(0), inp(3))),
                    Box::new(E::Unary(
                        UnaryOp::Sqrt,
                        Box::new(E::Binary(BinaryOp::Add, inp(4), Box::new(E::Lit(*epsilon)))),
                    )),
                );
                let e = E::Binary(BinaryOp::Add, Box::new(E::Binary(BinaryOp::Mul, Box::new(norm), inp(1))), inp(2));
                let expr = lower_expr(&e).expect("batch norm uses supported ops");
                let out = self.temp(name, &node.ty);
                self.kernels.push(Kernel::Elementwise {
                    expr,
                    inputs,
                    out: out.clone(),
                });
                out
            }
            Op::Concat { axis } => {
                let out = match self.concat_out.remove(name) {
                    Some(out) => out,
                    None => self.temp(name, &node.ty),
                };
                let mut start = 0usize;
                for i in &node.inputs {
                    let src = self.value(i);
                    let mut dst = out.clone();
                    dst.offset += start * out.strides[*axis] as usize;
                    dst.shape[*axis] = src.shape[*axis];
                    start += src.shape[*axis];
                    // An input written in place by its producer needs no copy.
                    if src.numel() > 0 && !self.written_in_place.contains(i) {
                        self.kernels.push(Kernel::Copy { src, dst });
                    }
                }
                out
            }
            Op::Gather { axis } => {
                let out = self.temp(name, &node.ty);
                self.kernels.push(Kernel::Gather {
                    data: x(),
                    indices: self.value(&node.inputs[1]),
                    axis: *axis,
                    out: out.clone(),
                });
                out
            }
            Op::Softmax { axis } => {
                let last = shape.len() - 1;
                if *axis == last {
                    let out = self.temp(name, &node.ty);
                    self.kernels.push(Kernel::Softmax { x: x(), out: out.clone() });
                    out
                } else {
                    // Softmax along another axis: over a view with that axis moved last.
                    let mut perm: Vec<usize> = (0..shape.len()).filter(|&a| a != *axis).collect();
                    perm.push(*axis);
                    let moved = permute_view(&x(), &perm);
                    let moved_ty = TensorType::new(moved.shape.clone(), DType::F32);
                    let tmp = self.temp(&format!("{name}/axis_last"), &moved_ty);
                    self.kernels.push(Kernel::Softmax {
                        x: moved,
                        out: tmp.clone(),
                    });
                    let mut inverse = vec![0; perm.len()];
                    for (i, &p) in perm.iter().enumerate() {
                        inverse[p] = i;
                    }
                    let out = self.temp(name, &node.ty);
                    self.kernels.push(Kernel::Copy {
                        src: permute_view(&tmp, &inverse),
                        dst: out.clone(),
                    });
                    out
                }
            }
            Op::LayerNorm { axis, epsilon } => {
                let norm_shape = &shape[*axis..];
                let out = self.temp(name, &node.ty);
                let scale = broadcast_view(&self.value(&node.inputs[1]), norm_shape);
                let bias = broadcast_view(&self.value(&node.inputs[2]), norm_shape);
                self.kernels.push(Kernel::LayerNorm {
                    x: x(),
                    scale,
                    bias,
                    axis: *axis,
                    epsilon: *epsilon as f32,
                    out: out.clone(),
                });
                out
            }
            Op::FusedAttention { divide, layout } => self.attention(node, *divide, *layout)?,
        };
        self.values.insert(name.to_string(), view);
        Ok(())
    }

    fn gemm(&mut self, node: &Node) -> Result<View> {
        let (mut a, mut b) = (self.value(&node.inputs[0]), self.value(&node.inputs[1]));
        // A vector operand becomes a one-row (a) or one-column (b) matrix; the
        // output then gains that unit dim for the kernel.
        let mut out_shape = node.ty.shape.clone();
        if a.shape.len() == 1 {
            a.shape.insert(0, 1);
            a.strides.insert(0, 0);
            out_shape.insert(out_shape.len() - usize::from(b.shape.len() != 1), 1);
        }
        if b.shape.len() == 1 {
            b.shape.push(1);
            b.strides.push(0);
            out_shape.push(1);
        }
        let r = out_shape.len();
        let batch = &out_shape[..r - 2];
        let batched = |v: &View| {
            let mut full = batch.to_vec();
            full.extend(&v.shape[v.shape.len() - 2..]);
            broadcast_view(v, &full)
        };
        let (a, b) = (batched(&a), batched(&b));
        let buf = self.temp(&node.name, &node.ty);
        let out = reshaped(&buf, &out_shape);
        let epilogue = match &node.op {
            Op::FusedMatMul { epilogue } => {
                let mut e = self.epilogue(node, epilogue, &node.inputs[2..])?;
                for v in &mut e.extras {
                    *v = broadcast_view(&reshaped_strides(v, &node.ty.shape, &out_shape), &out_shape);
                }
                Some(e)
            }
            _ => None,
        };
        self.kernels.push(Kernel::Gemm {
            a,
            b,
            out,
            epilogue,
            compute: self.gemm_compute(node),
        });
        Ok(buf)
    }

    fn attention(&mut self, node: &Node, divide: bool, layout: AttentionLayout) -> Result<View> {
        let (q, k, v) = (
            self.value(&node.inputs[0]),
            self.value(&node.inputs[1]),
            self.value(&node.inputs[2]),
        );
        let scale = self.value(&node.inputs[3]);
        let buf = self.temp(&node.name, &node.ty);
        let (q, kt, v, out) = match layout {
            AttentionLayout::Bhsd => (q, k, v, buf.clone()),
            AttentionLayout::Bshd => (
                permute_view(&q, &SWAP_HEADS),
                permute_view(&k, &KEYS_TO_KT),
                permute_view(&v, &SWAP_HEADS),
                permute_view(&buf, &SWAP_HEADS),
            ),
        };
        let r = out.shape.len();
        let batch = out.shape[..r - 2].to_vec();
        let with_batch = |x: &View| {
            let mut full = batch.clone();
            full.extend(&x.shape[x.shape.len() - 2..]);
            broadcast_view(x, &full)
        };
        let (q, kt, v) = (with_batch(&q), with_batch(&kt), with_batch(&v));
        let mut scores = batch.clone();
        scores.extend([q.shape[r - 2], kt.shape[r - 1]]);
        let mask = node.inputs.get(4).map(|m| broadcast_view(&self.value(m), &scores));
        self.kernels.push(Kernel::Attention {
            q,
            kt,
            v,
            out,
            mask,
            scale,
            divide,
        });
        Ok(buf)
    }
}

/// An epilogue operand broadcast to the node's shape, re-expressed for the
/// kernel's output shape when a vector operand added a unit dim.
fn reshaped_strides(v: &View, node_shape: &[usize], out_shape: &[usize]) -> View {
    if node_shape == out_shape {
        return v.clone();
    }
    let b = broadcast_view(v, node_shape);
    let mut shape = Vec::with_capacity(out_shape.len());
    let mut strides = Vec::with_capacity(out_shape.len());
    let mut i = 0;
    for &d in out_shape {
        if i < b.shape.len() && b.shape[i] == d {
            shape.push(d);
            strides.push(b.strides[i]);
            i += 1;
        } else {
            shape.push(d);
            strides.push(0);
        }
    }
    View {
        buffer: v.buffer,
        offset: v.offset,
        shape,
        strides,
    }
}

fn pool_kind(k: PoolKind) -> eqopt_kir::PoolKind {
    match k {
        PoolKind::Max => eqopt_kir::PoolKind::Max,
        PoolKind::AvgExcludePad => eqopt_kir::PoolKind::AvgExcludePad,
        PoolKind::AvgIncludePad => eqopt_kir::PoolKind::AvgIncludePad,
    }
}

/// Lowers `graph` (any valid graph of f32 tensors) to a kernel program.
///
/// Errors: [`Error::Unsupported`] naming the first node whose op or dtype the CPU
/// backend does not run; [`Error::Program`] if the result breaks a program
/// contract (a bug).
pub fn lower(graph: &Graph) -> Result<Program> {
    let mut l = Lowering {
        graph,
        buffers: Vec::new(),
        kernels: Vec::new(),
        values: BTreeMap::new(),
        concat_out: BTreeMap::new(),
        placed: BTreeMap::new(),
        written_in_place: BTreeSet::new(),
        reduced: BTreeMap::new(),
        reduced_buffers: BTreeMap::new(),
        bf16: crate::cost::bf16_products(graph),
    };
    let mut inputs = Vec::new();
    for i in &graph.inputs {
        let elem = match i.ty.dtype {
            DType::F32 => ElemType::F32,
            DType::I64 | DType::I32 => ElemType::I64,
            other => {
                return Err(Error::Unsupported {
                    node: i.name.clone(),
                    op: "input".into(),
                    problem: format!("runs f32 tensors (and integer indices), this input is {}", other.name()),
                });
            }
        };
        let id = l.add_buffer(&i.name, elem, i.ty.numel(), Some(BufferKind::Input));
        l.values.insert(i.name.clone(), View::dense(id, &i.ty.shape));
        inputs.push((id, i.ty.shape.clone()));
    }
    l.constants()?;
    l.plan_concats();
    for n in &graph.nodes {
        l.node(n)?;
    }
    let mut outputs = Vec::new();
    let mut claimed: BTreeMap<BufferId, ()> = BTreeMap::new();
    for o in &graph.outputs {
        let v = l.value(o);
        let ty = graph.type_of(o).expect("validated graph").clone();
        let buf = &l.buffers[v.buffer];
        // The producer writes the output buffer directly when the value is the whole
        // of a dense intermediate that no other output claimed.
        let whole = v.offset == 0 && v.is_dense() && buf.len == v.numel() && buf.kind.is_none();
        if whole && claimed.insert(v.buffer, ()).is_none() {
            l.buffers[v.buffer].kind = Some(BufferKind::Output);
            l.buffers[v.buffer].name = o.clone();
            outputs.push((v.buffer, ty.shape.clone()));
        } else {
            let id = l.add_buffer(o, ElemType::F32, ty.numel(), Some(BufferKind::Output));
            let dst = View::dense(id, &ty.shape);
            l.kernels.push(Kernel::Copy { src: v, dst });
            outputs.push((id, ty.shape.clone()));
        }
    }
    let program = Program {
        name: graph.name.clone(),
        buffers: l.buffers,
        kernels: l.kernels,
        inputs,
        outputs,
    };
    program.validate()?;
    tracing::debug!(
        kernels = program.kernels.len(),
        buffers = program.buffers.len(),
        "lowered {}",
        program.name
    );
    Ok(program)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(shape: &[usize], strides: &[isize]) -> View {
        View {
            buffer: 0,
            offset: 3,
            shape: shape.to_vec(),
            strides: strides.to_vec(),
        }
    }

    #[test]
    fn strided_reshapes_without_copies_where_numpy_can() {
        // A column slice [128, 384] of a [128, 1152] matrix split into heads.
        let v = reshape_strided(&view(&[128, 384], &[1152, 1]), &[1, 128, 12, 32]).unwrap();
        assert_eq!(v.strides, vec![0, 1152, 32, 1]);
        assert_eq!(v.offset, 3);
        // Heads merged back: [1, 128, 12, 32] dense -> [1, 128, 384].
        let v = reshape_strided(&view(&[1, 128, 12, 32], &[49152, 384, 32, 1]), &[1, 128, 384]).unwrap();
        assert_eq!(v.strides[1..], [384, 1]);
        // A transposed matrix cannot be flattened without a copy.
        assert!(reshape_strided(&view(&[4, 6], &[1, 4]), &[24]).is_none());
        // ...but its unit-dim reshapes can.
        let v = reshape_strided(&view(&[4, 6], &[1, 4]), &[4, 1, 6]).unwrap();
        assert_eq!((v.strides[0], v.strides[2]), (1, 4));
        // Dense views keep dense strides.
        assert_eq!(
            reshape_strided(&view(&[2, 3, 4], &[12, 4, 1]), &[6, 4]).unwrap().strides,
            vec![4, 1]
        );
    }
}
