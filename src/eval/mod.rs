//! The reference interpreter: a plain, obviously-correct evaluator of a [`Graph`].
//!
//! It is the ground truth that optimized graphs are tested against. Every op of
//! [`Op`] is evaluated with ONNX semantics (see the doc comments in
//! [`crate::graph::op`]). Values are computed in `f64` (as [`ndarray::ArrayD<f64>`])
//! and the result of every node is rounded to the node's dtype with
//! [`Tensor::from_f64`], so an `f32` graph sees `f32` rounding after each op, and
//! a cast to an integer type truncates toward zero, saturating. Fused ops
//! (`FusedElementwise`, `FusedMatMul`, `FusedConv`) are one node: their
//! intermediate values stay in `f64` and only the fused result is rounded.
//!
//! Data-movement ops (`Reshape`, `Transpose`, `Gather`, ...) also go through
//! `f64`, so `i64` data beyond ±2⁵³ would lose precision; `Gather` indices are
//! read exactly.
//!
//! Entry points: [`run`] (a whole graph), [`eval_op`] / [`eval_node`] (one op, for
//! constant folding), [`random_inputs`] (deterministic test inputs) and
//! [`compare`] (numpy `allclose`-style comparison of results).

mod compare;
mod elementwise;
mod linalg;
mod norm;
mod pool;
mod shape_ops;

pub use compare::{Comparison, compare};

use crate::dtype::{DType, TensorType};
use crate::graph::Graph;
use crate::graph::infer::{self, arity_text};
use crate::graph::op::{AttentionLayout, BinaryOp, KEYS_TO_KT, Op, SWAP_HEADS, UnaryOp};
use crate::graph::tensor::{Distribution, Tensor, TensorData, random_values};
use ndarray::{ArrayD, IxDyn};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Why a graph or an op could not be evaluated.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EvalError {
    /// A graph input was not supplied.
    #[error("graph input \"{input}\" is missing (expected a {expected} tensor)")]
    MissingInput {
        /// Input name.
        input: String,
        /// The declared type of the input.
        expected: String,
    },
    /// A graph input was supplied with a type other than the declared one.
    #[error("graph input \"{input}\": expected a {expected} tensor, found {found}")]
    InputType {
        /// Input name.
        input: String,
        /// The declared type.
        expected: String,
        /// The type supplied.
        found: String,
    },
    /// A tensor's data disagree with its own type (wrong element count or dtype).
    #[error("tensor \"{tensor}\": its type {ty} needs {expected}, but its data hold {found}")]
    BadData {
        /// Input, constant or node name (empty for an unnamed [`eval_op`] operand).
        tensor: String,
        /// The tensor's declared type.
        ty: String,
        /// Element count and dtype the type requires.
        expected: String,
        /// Element count and dtype of the data.
        found: String,
    },
    /// A node has the wrong number of inputs for its op.
    #[error("node \"{node}\" ({op}): expected {expected} inputs, found {found}")]
    Arity {
        /// Node name (empty when called through [`eval_op`]).
        node: String,
        /// Op name.
        op: String,
        /// Allowed input count, e.g. `2` or `2 to 3`.
        expected: String,
        /// Input count found.
        found: usize,
    },
    /// Input shapes or dtypes do not fit the op, or disagree with the node's declared type.
    #[error("node \"{node}\" ({op}): expected {expected}, found {found}")]
    TypeMismatch {
        /// Node name (empty when called through [`eval_op`]).
        node: String,
        /// Op name.
        op: String,
        /// What the op requires.
        expected: String,
        /// What it was given.
        found: String,
    },
    /// A `Gather` index lies outside `-bound..bound`.
    #[error("node \"{node}\" (Gather): index {index} is out of range for axis {axis} of size {bound}")]
    IndexOutOfRange {
        /// Node name (empty when called through [`eval_op`]).
        node: String,
        /// The offending index value.
        index: i64,
        /// The gathered axis of the data.
        axis: usize,
        /// Size of that axis.
        bound: usize,
    },
    /// A node reads a tensor that is not defined before it.
    #[error("node \"{node}\": input \"{input}\" is not defined before the node")]
    UndefinedTensor {
        /// Node name.
        node: String,
        /// The undefined tensor name.
        input: String,
    },
    /// A graph output names a tensor that is not defined.
    #[error("graph output \"{output}\" is not a graph input, constant or node output")]
    UnknownOutput {
        /// The output name.
        output: String,
    },
}

/// Evaluates one op on concrete inputs (used for constant folding).
///
/// The output type is [`infer::infer`]'s; the values are computed in `f64` and
/// rounded to the output dtype. Errors name no node (the `node` field is empty);
/// use [`eval_node`] to name one.
pub fn eval_op(op: &Op, inputs: &[&Tensor]) -> Result<Tensor, EvalError> {
    eval_node("", op, inputs)
}

/// Like [`eval_op`], naming the node `node` in errors.
pub fn eval_node(node: &str, op: &Op, inputs: &[&Tensor]) -> Result<Tensor, EvalError> {
    for t in inputs {
        check_data(node, t)?;
    }
    let ty = output_type(node, op, inputs)?;
    // Pure data movement keeps the elements as they are: no trip through f64.
    match op {
        Op::Reshape { .. } | Op::Flatten { .. } | Op::Unary(UnaryOp::Identity | UnaryOp::Dropout) => {
            return Ok(Tensor {
                ty,
                data: inputs[0].data.clone(),
            });
        }
        Op::Transpose { perm } => return Ok(shape_ops::transpose_native(inputs[0], perm, ty)),
        _ => {}
    }
    let values = compute(node, op, inputs, &ty)?;
    debug_assert_eq!(
        values.shape(),
        ty.shape.as_slice(),
        "kernel of {} gave the inferred shape",
        op.name()
    );
    Ok(from_array(ty, &values))
}

/// Evaluates `graph` on `inputs` and returns every graph output by name.
///
/// Every graph input must be present in `inputs` with exactly its declared type;
/// entries of `inputs` that are not graph inputs are ignored. Constants are
/// materialized with [`crate::graph::tensor::ConstInit::materialize`].
pub fn run(graph: &Graph, inputs: &BTreeMap<String, Tensor>) -> Result<BTreeMap<String, Tensor>, EvalError> {
    let mut values: BTreeMap<&str, Arc<Tensor>> = BTreeMap::new();
    for inp in &graph.inputs {
        let Some(t) = inputs.get(&inp.name) else {
            return Err(EvalError::MissingInput {
                input: inp.name.clone(),
                expected: inp.ty.to_string(),
            });
        };
        if t.ty != inp.ty {
            return Err(EvalError::InputType {
                input: inp.name.clone(),
                expected: inp.ty.to_string(),
                found: t.ty.to_string(),
            });
        }
        check_data(&inp.name, t)?;
        values.insert(&inp.name, Arc::new(t.clone()));
    }
    for c in &graph.constants {
        let t = c.init.materialize(&c.ty);
        if t.ty != c.ty {
            return Err(EvalError::BadData {
                tensor: c.name.clone(),
                ty: c.ty.to_string(),
                expected: format!("a {} tensor", c.ty),
                found: format!("a {} tensor", t.ty),
            });
        }
        check_data(&c.name, &t)?;
        values.insert(&c.name, t);
    }
    for n in &graph.nodes {
        let mut args: Vec<&Tensor> = Vec::with_capacity(n.inputs.len());
        for i in &n.inputs {
            match values.get(i.as_str()) {
                Some(t) => args.push(t),
                None => {
                    return Err(EvalError::UndefinedTensor {
                        node: n.name.clone(),
                        input: i.clone(),
                    });
                }
            }
        }
        let out = eval_node(&n.name, &n.op, &args)?;
        if out.ty != n.ty {
            return Err(EvalError::TypeMismatch {
                node: n.name.clone(),
                op: n.op.name().to_string(),
                expected: format!("the declared output type {}", n.ty),
                found: format!("inputs giving {}", out.ty),
            });
        }
        values.insert(&n.name, Arc::new(out));
    }
    let mut outputs = BTreeMap::new();
    for o in &graph.outputs {
        match values.get(o.as_str()) {
            Some(t) => outputs.insert(o.clone(), Tensor::clone(t)),
            None => return Err(EvalError::UnknownOutput { output: o.clone() }),
        };
    }
    Ok(outputs)
}

/// Deterministic inputs for `graph`.
///
/// Input number `i` (in `graph.inputs` order) is drawn with seed `seed + i`
/// (wrapping): floating-point inputs from the standard normal distribution,
/// `bool` inputs uniform on {0, 1}, other integer inputs uniform on `[0, d)`
/// where `d` is the smallest gathered-axis size over the `Gather` nodes that use
/// the input as indices (directly or through `Reshape`, `Flatten`, `Transpose`,
/// `Slice`, `Concat` or an integer `Cast`), or 10 if there is none.
pub fn random_inputs(graph: &Graph, seed: u64) -> BTreeMap<String, Tensor> {
    let mut out = BTreeMap::new();
    for (i, inp) in graph.inputs.iter().enumerate() {
        let s = seed.wrapping_add(i as u64);
        let n = inp.ty.numel();
        let dist = if inp.ty.dtype.is_float() {
            Distribution::Normal { mean: 0.0, std: 1.0 }
        } else if inp.ty.dtype == DType::Bool {
            Distribution::RandInt { low: 0, high: 2 }
        } else {
            let bound = index_bound(graph, &inp.name, 0).unwrap_or(10);
            Distribution::RandInt {
                low: 0,
                high: bound as i64,
            }
        };
        out.insert(inp.name.clone(), Tensor::from_f64(inp.ty.clone(), &random_values(&dist, s, n)));
    }
    out
}

/// Smallest gathered-axis size over the `Gather`s that use `name` as indices,
/// following index-preserving ops.
fn index_bound(graph: &Graph, name: &str, depth: usize) -> Option<usize> {
    if depth > graph.nodes.len() {
        return None;
    }
    let mut bound: Option<usize> = None;
    for n in &graph.nodes {
        let Some(pos) = n.inputs.iter().position(|i| i == name) else {
            continue;
        };
        let b = match &n.op {
            Op::Gather { axis } if n.inputs[1] == name => graph.type_of(&n.inputs[0]).and_then(|t| t.shape.get(*axis).copied()),
            Op::Reshape { .. } | Op::Flatten { .. } | Op::Transpose { .. } | Op::Slice { .. } | Op::Concat { .. } => {
                index_bound(graph, &n.name, depth + 1)
            }
            Op::Cast { to } if !to.is_float() && pos == 0 => index_bound(graph, &n.name, depth + 1),
            _ => None,
        };
        bound = match (bound, b) {
            (Some(x), Some(y)) => Some(x.min(y)),
            (x, y) => x.or(y),
        };
    }
    bound
}

fn output_type(node: &str, op: &Op, inputs: &[&Tensor]) -> Result<TensorType, EvalError> {
    let (lo, hi) = op.arity();
    if inputs.len() < lo || inputs.len() > hi {
        return Err(EvalError::Arity {
            node: node.to_string(),
            op: op.name().to_string(),
            expected: arity_text(lo, hi),
            found: inputs.len(),
        });
    }
    if inputs.is_empty() {
        // A fused expression without inputs has no shape to take.
        return Err(EvalError::Arity {
            node: node.to_string(),
            op: op.name().to_string(),
            expected: "at least 1".to_string(),
            found: 0,
        });
    }
    let tys: Vec<&TensorType> = inputs.iter().map(|t| &t.ty).collect();
    infer::infer(op, &tys).map_err(|e| mismatch(node, op, e.expected, e.found))
}

fn mismatch(node: &str, op: &Op, expected: impl Into<String>, found: impl Into<String>) -> EvalError {
    EvalError::TypeMismatch {
        node: node.to_string(),
        op: op.name().to_string(),
        expected: expected.into(),
        found: found.into(),
    }
}

/// Computes the op's values; `ty` is the inferred output type.
fn compute(node: &str, op: &Op, inputs: &[&Tensor], ty: &TensorType) -> Result<ArrayD<f64>, EvalError> {
    let arr = |i: usize| to_array(inputs[i]);
    let out = match op {
        Op::Unary(u) => elementwise::unary(*u, &arr(0)),
        Op::Binary(b) => elementwise::binary(*b, &arr(0), &arr(1), &ty.shape),
        Op::Cast { .. } => arr(0),
        Op::Dequantize { axis, block_size } => {
            ArrayD::from_shape_vec(IxDyn(&ty.shape), crate::quant::dequantize(inputs[0], inputs[1], *axis, *block_size))
                .expect("one value per element of x")
        }
        Op::MatMul => linalg::matmul(&arr(0), &arr(1)),
        Op::Conv(p) => {
            let bias = inputs.get(2).map(|b| b.to_f64());
            linalg::conv(&arr(0), &arr(1), bias.as_deref(), p)
        }
        Op::Pool(kind, p) => pool::pool(*kind, p, &arr(0)),
        Op::GlobalPool(kind) => pool::global_pool(*kind, &arr(0)),
        Op::BatchNorm { epsilon } => {
            let p: Vec<Vec<f64>> = inputs[1..].iter().map(|t| t.to_f64()).collect();
            norm::batch_norm(&arr(0), &p[0], &p[1], &p[2], &p[3], *epsilon)
        }
        Op::Concat { axis } => {
            let all: Vec<ArrayD<f64>> = inputs.iter().map(|t| to_array(t)).collect();
            shape_ops::concat(&all, *axis)
        }
        Op::Flatten { .. } | Op::Reshape { .. } => shape_ops::reshape(&arr(0), &ty.shape),
        Op::Transpose { perm } => shape_ops::transpose(&arr(0), perm),
        Op::Slice { axes, starts, ends, steps } => shape_ops::slice(&arr(0), axes, starts, ends, steps),
        Op::Gather { axis } => {
            let idx = index_values(inputs[1]);
            shape_ops::gather(&arr(0), &idx, &inputs[1].ty.shape, *axis).map_err(|(index, bound)| EvalError::IndexOutOfRange {
                node: node.to_string(),
                index,
                axis: *axis,
                bound,
            })?
        }
        Op::Softmax { axis } => norm::softmax(&arr(0), *axis),
        Op::FusedAttention {
            divide,
            layout: AttentionLayout::Bshd,
        } => {
            let (q, k, v) = (arr(0), arr(1), arr(2));
            let bhsd = |t: &ArrayD<f64>, perm: &[usize]| linalg::permuted(t, perm);
            let scores = linalg::matmul(&bhsd(&q, &SWAP_HEADS), &bhsd(&k, &KEYS_TO_KT));
            let shape = scores.shape().to_vec();
            let scale = if *divide { BinaryOp::Div } else { BinaryOp::Mul };
            let mut s = elementwise::binary(scale, &scores, &arr(3), &shape);
            if inputs.len() > 4 {
                s = elementwise::binary(BinaryOp::Add, &s, &arr(4), &shape);
            }
            let probs = norm::softmax(&s, shape.len() - 1);
            bhsd(&linalg::matmul(&probs, &bhsd(&v, &SWAP_HEADS)), &SWAP_HEADS)
        }
        Op::FusedAttention { divide, .. } => {
            let scores = linalg::matmul(&arr(0), &arr(1));
            let shape = scores.shape().to_vec();
            let scale = if *divide { BinaryOp::Div } else { BinaryOp::Mul };
            let mut s = elementwise::binary(scale, &scores, &arr(3), &shape);
            if inputs.len() > 4 {
                s = elementwise::binary(BinaryOp::Add, &s, &arr(4), &shape);
            }
            let probs = norm::softmax(&s, shape.len() - 1);
            linalg::matmul(&probs, &arr(2))
        }
        Op::LayerNorm { axis, epsilon } => norm::layer_norm(&arr(0), &arr(1), &arr(2), *axis, *epsilon),
        Op::Reduce { kind, axes, keepdims } => norm::reduce(*kind, &arr(0), axes, *keepdims),
        Op::FusedElementwise { expr } => {
            let all: Vec<ArrayD<f64>> = inputs.iter().map(|t| to_array(t)).collect();
            elementwise::nary(&all, &ty.shape, |xs| expr.eval(xs))
        }
        Op::FusedMatMul { epilogue } => {
            let acc = linalg::matmul(&arr(0), &arr(1));
            epilogue_over(acc, &inputs[2..], &ty.shape, |xs| epilogue.eval(xs))
        }
        Op::FusedConv { params, epilogue } => {
            let acc = linalg::conv(&arr(0), &arr(1), None, params);
            epilogue_over(acc, &inputs[2..], &ty.shape, |xs| epilogue.eval(xs))
        }
    };
    if out.shape() != ty.shape.as_slice() {
        return Err(mismatch(
            node,
            op,
            format!("a result of shape {:?}", ty.shape),
            format!("{:?}", out.shape()),
        ));
    }
    Ok(out)
}

/// Applies an epilogue with `x0 = acc` and `x1.. = extra` broadcast into `acc`'s shape.
fn epilogue_over(acc: ArrayD<f64>, extra: &[&Tensor], shape: &[usize], f: impl Fn(&[f64]) -> f64) -> ArrayD<f64> {
    let mut all = vec![acc];
    all.extend(extra.iter().map(|t| to_array(t)));
    elementwise::nary(&all, shape, f)
}

/// The tensor's values as a row-major `f64` array of its shape.
pub(crate) fn to_array(t: &Tensor) -> ArrayD<f64> {
    ArrayD::from_shape_vec(IxDyn(&t.ty.shape), t.to_f64()).expect("data length checked against the type")
}

/// A tensor of type `ty` holding `values` (in logical order) rounded to `ty.dtype`.
pub(crate) fn from_array(ty: TensorType, values: &ArrayD<f64>) -> Tensor {
    let flat: Vec<f64> = values.iter().copied().collect();
    Tensor::from_f64(ty, &flat)
}

/// Index values of an i32/i64 tensor, exactly (other dtypes through f64).
fn index_values(t: &Tensor) -> Vec<i64> {
    match &t.data {
        TensorData::I32(v) => v.iter().map(|&x| i64::from(x)).collect(),
        TensorData::I64(v) => v.clone(),
        _ => t.to_f64().into_iter().map(|x| x as i64).collect(),
    }
}

fn data_dtype_len(d: &TensorData) -> (DType, usize) {
    match d {
        TensorData::F32(v) => (DType::F32, v.len()),
        TensorData::F64(v) => (DType::F64, v.len()),
        TensorData::F16(v) => (DType::F16, v.len()),
        TensorData::BF16(v) => (DType::BF16, v.len()),
        TensorData::I8(v) => (DType::I8, v.len()),
        TensorData::I4(v) => (DType::I4, v.len()),
        TensorData::I32(v) => (DType::I32, v.len()),
        TensorData::I64(v) => (DType::I64, v.len()),
        TensorData::Bool(v) => (DType::Bool, v.len()),
    }
}

/// Checks that a tensor's data agree with its type, so kernels may index freely.
fn check_data(name: &str, t: &Tensor) -> Result<(), EvalError> {
    let (dtype, len) = data_dtype_len(&t.data);
    let numel = crate::dtype::checked_numel(&t.ty.shape, 1);
    if dtype != t.ty.dtype || numel != Some(len) {
        return Err(EvalError::BadData {
            tensor: name.to_string(),
            ty: t.ty.to_string(),
            expected: match numel {
                Some(n) => format!("{n} elements of {}", t.ty.dtype),
                None => "more elements than are addressable".to_string(),
            },
            found: format!("{len} elements of {dtype}"),
        });
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod test_util {
    use ndarray::{ArrayD, IxDyn};

    /// An f64 array of `shape` from row-major values.
    pub fn arr(shape: &[usize], v: &[f64]) -> ArrayD<f64> {
        ArrayD::from_shape_vec(IxDyn(shape), v.to_vec()).unwrap()
    }

    /// `0, 1, 2, ...` shaped as `shape`.
    pub fn iota(shape: &[usize]) -> ArrayD<f64> {
        let n: usize = shape.iter().product();
        arr(shape, &(0..n).map(|i| i as f64).collect::<Vec<_>>())
    }

    /// Asserts two arrays have one shape and agree to 1e-9 per element.
    #[track_caller]
    pub fn assert_close(got: &ArrayD<f64>, want: &ArrayD<f64>) {
        assert_eq!(got.shape(), want.shape(), "shape");
        for (i, (g, w)) in got.iter().zip(want.iter()).enumerate() {
            assert!(
                (g - w).abs() <= 1e-9 * (1.0 + w.abs()),
                "element {i}: got {g}, want {w}\ngot {got}\nwant {want}"
            );
        }
    }
}
