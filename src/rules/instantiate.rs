//! Random instantiation of rule patterns: well-typed terms, with random shapes
//! and data, whose variables satisfy the rule's conditions as far as the
//! generator can arrange (the rest is left to rejection: a rule that does not
//! fire on an instance is simply not checked on it).
//!
//! Generation walks the pattern bottom-up. A variable gets its value at its
//! first parent, from that parent's op and the siblings already known: a
//! matmul's right operand gets the left operand's inner dimension, a conv's
//! weights the input's channels, a transpose's permutation the input's rank.

use super::predicates::{Arg, Condition, PREDICATES};
use crate::dtype::{DType, TensorType};
use crate::graph::infer::infer;
use crate::graph::op::{BinaryOp, ConvParams, Layout, PoolParams, UnaryOp};
use crate::graph::tensor::{Distribution, SplitMix64, Tensor, random_values};
use crate::lang::{Attr, TNode, TOp, conv_attr, decode_op, pool_attr};
use egg::{ENodeOrVar, Id, PatternAst, Var};
use std::collections::BTreeMap;

/// The value a pattern variable is instantiated with.
#[derive(Clone, Debug)]
pub enum VarValue {
    /// A tensor: a graph input, or a constant when `is_const`.
    Tensor {
        /// The data.
        value: Tensor,
        /// Whether it is a constant of the graph (else an input).
        is_const: bool,
    },
    /// An attribute.
    Attr(Attr),
}

impl std::fmt::Display for VarValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            VarValue::Tensor { value, is_const } => write!(f, "{}{}", if *is_const { "const " } else { "" }, value.ty),
            VarValue::Attr(a) => write!(f, "{a}"),
        }
    }
}

/// What the conditions ask of one variable, used to steer generation.
#[derive(Clone, Debug, Default)]
struct Hint {
    rank: Option<usize>,
    is_const: bool,
    scalar_value: Option<f64>,
    same_as: Option<Var>,
    identity_perm: bool,
    inverse_of: Option<Var>,
    swap_last_two: bool,
    shape_of: Option<Var>,
    dtype_of: Option<Var>,
    channels_of: Option<Var>,
    last_dim_of: Option<Var>,
    last_axis_of: Option<Var>,
    one_element: bool,
    positive: bool,
}

fn hints(conditions: &[Condition], asts: &[&PatternAst<TNode>]) -> BTreeMap<Var, Hint> {
    let mut h: BTreeMap<Var, Hint> = BTreeMap::new();
    let var = |a: &Arg| match a {
        Arg::Var(v) => Some(*v),
        _ => None,
    };
    for c in conditions {
        let args = &c.args;
        let (Some(v0), v1) = (var(&args[0]), args.get(1).and_then(var)) else {
            continue;
        };
        let e = h.entry(v0).or_default();
        match PREDICATES[c.predicate].name {
            "rank" => e.rank = if let Arg::Int(n) = args[1] { usize::try_from(n).ok() } else { None },
            "is-const" => e.is_const = true,
            "is-scalar-value" => {
                e.is_const = true;
                e.scalar_value = match args[1] {
                    Arg::Number(x) => Some(x),
                    Arg::Int(i) => Some(i as f64),
                    _ => None,
                };
            }
            "same-shape" | "same-type" => {
                if let Some(v1) = v1 {
                    h.entry(v1).or_default().same_as = Some(v0);
                }
            }
            "identity-perm" => e.identity_perm = true,
            "perms-inverse" => {
                e.inverse_of = v1;
                if let Some(v1) = v1 {
                    h.entry(v1).or_default().inverse_of = Some(v0);
                }
            }
            "swaps-last-two" => e.swap_last_two = true,
            "shape-is" => e.shape_of = v1,
            "dtype-attr-is" => e.dtype_of = v1,
            "channel-vector" => e.channels_of = v1,
            "last-dim-vector" => e.last_dim_of = v1,
            "last-axis" => e.last_axis_of = v1,
            "one-element" => e.one_element = true,
            _ => {}
        }
    }
    // Variables read by sqrt, log, reciprocal, as a divisor or a batch-norm variance get positive data.
    for ast in asts {
        let items = ast.as_ref();
        for item in items {
            let ENodeOrVar::ENode(n) = item else { continue };
            let positive_at: &[usize] = match n.op {
                TOp::Unary(UnaryOp::Sqrt | UnaryOp::Log | UnaryOp::Reciprocal) => &[0],
                TOp::Binary(BinaryOp::Div | BinaryOp::Pow) => &[1, 0],
                TOp::BatchNorm => &[5],
                _ => &[],
            };
            for &k in positive_at {
                if let Some(ENodeOrVar::Var(v)) = n.children.get(k).map(|&c| &items[usize::from(c)]) {
                    h.entry(*v).or_default().positive = true;
                }
            }
        }
    }
    h
}

/// A generator of instances for one rule's left-hand side.
pub struct Instantiator<'a> {
    asts: Vec<&'a PatternAst<TNode>>,
    hints: BTreeMap<Var, Hint>,
}

/// One instance: a value for every variable of the patterns.
pub struct Instance {
    /// Variable values, by variable.
    pub vars: BTreeMap<Var, VarValue>,
}

enum Slot {
    Tensor(TensorType),
    Attr(Attr),
    Pending(Var),
}

struct Gen<'g> {
    rng: SplitMix64,
    vars: BTreeMap<Var, VarValue>,
    hints: &'g BTreeMap<Var, Hint>,
    /// Shapes already given to unconstrained variables: a later one often takes a
    /// near copy, so that siblings under different parents (the inputs of a
    /// concatenation of transposes, say) can fit together.
    free_shapes: Vec<Vec<usize>>,
}

impl Gen<'_> {
    fn below(&mut self, n: usize) -> usize {
        (self.rng.next_u64() % n.max(1) as u64) as usize
    }

    fn chance(&mut self, p: f64) -> bool {
        self.rng.next_f64() < p
    }

    fn dim(&mut self) -> usize {
        if self.chance(0.1) { 1 } else { 2 + self.below(4) }
    }

    fn shape(&mut self, rank: usize) -> Vec<usize> {
        (0..rank).map(|_| self.dim()).collect()
    }

    fn hint(&self, v: Var) -> Hint {
        self.hints.get(&v).cloned().unwrap_or_default()
    }

    fn tensor_ty(&self, v: Var) -> Option<TensorType> {
        match self.vars.get(&v)? {
            VarValue::Tensor { value, .. } => Some(value.ty.clone()),
            VarValue::Attr(_) => None,
        }
    }

    fn attr_of(&self, v: Var) -> Option<Attr> {
        match self.vars.get(&v)? {
            VarValue::Attr(a) => Some(a.clone()),
            VarValue::Tensor { .. } => None,
        }
    }

    /// Assigns tensor variable `v` a value of shape `shape` (unless the hints override it).
    fn set_tensor(&mut self, v: Var, mut shape: Vec<usize>) -> TensorType {
        let h = self.hint(v);
        if let Some(other) = h.same_as.and_then(|o| self.tensor_ty(o)) {
            shape = other.shape;
        }
        if let Some(x) = h.channels_of.and_then(|o| self.tensor_ty(o)) {
            shape = vec![x.shape.get(1).copied().unwrap_or(1)];
        }
        if let Some(x) = h.last_dim_of.and_then(|o| self.tensor_ty(o)) {
            shape = vec![x.shape.last().copied().unwrap_or(1)];
        }
        if h.scalar_value.is_some() || h.one_element {
            shape = vec![];
        }
        let ty = TensorType::new(shape, DType::F32);
        let n = ty.numel();
        let values = match (h.scalar_value, h.positive) {
            (Some(x), _) => vec![x; n],
            (None, true) => random_values(&Distribution::Uniform { low: 0.5, high: 1.5 }, self.rng.next_u64(), n),
            (None, false) => random_values(&Distribution::Normal { mean: 0.0, std: 1.0 }, self.rng.next_u64(), n),
        };
        let value = Tensor::from_f64(ty.clone(), &values);
        self.vars.insert(
            v,
            VarValue::Tensor {
                value,
                is_const: h.is_const,
            },
        );
        ty
    }

    /// A generic shape for tensor variable `v` when nothing constrains it.
    fn free_shape(&mut self, v: Var, default_rank: usize) -> Vec<usize> {
        let rank = self.hint(v).rank.unwrap_or(default_rank);
        let earlier: Vec<Vec<usize>> = self.free_shapes.iter().filter(|s| s.len() == rank).cloned().collect();
        let shape = if !earlier.is_empty() && self.chance(0.5) {
            let mut s = earlier[self.below(earlier.len())].clone();
            if rank > 0 && self.chance(0.5) {
                let axis = self.below(rank);
                s[axis] = self.dim();
            }
            s
        } else {
            self.shape(rank)
        };
        self.free_shapes.push(shape.clone());
        shape
    }

    fn perm(&mut self, v: Var, rank: usize) -> Vec<usize> {
        let h = self.hint(v);
        if h.identity_perm {
            return (0..rank).collect();
        }
        if h.swap_last_two && rank >= 2 {
            let mut p: Vec<usize> = (0..rank).collect();
            p.swap(rank - 2, rank - 1);
            return p;
        }
        if let Some(q) = h.inverse_of.and_then(|o| self.attr_of(o)).and_then(|a| a.as_usizes()) {
            if q.len() == rank {
                let mut p = vec![0; rank];
                for (i, &qi) in q.iter().enumerate() {
                    p[qi] = i;
                }
                return p;
            }
        }
        let mut p: Vec<usize> = (0..rank).collect();
        for i in (1..rank).rev() {
            let j = self.below(i + 1);
            p.swap(i, j);
        }
        p
    }

    fn reshape_target(&mut self, v: Var, x: &TensorType) -> Vec<usize> {
        if let Some(t) = self.hint(v).shape_of.and_then(|o| self.tensor_ty(o)) {
            return t.shape;
        }
        if self.chance(0.3) {
            return x.shape.clone();
        }
        let mut left = x.numel();
        let mut out = Vec::new();
        for p in [2, 3, 5] {
            while left % p == 0 && self.chance(0.6) {
                out.push(p);
                left /= p;
            }
        }
        out.push(left);
        out
    }

    /// The value of an attribute variable at child `k` of an e-node with operator `op`
    /// whose tensor inputs have types `inputs`.
    fn attr(&mut self, v: Var, op: &TOp, k: usize, inputs: &[Option<TensorType>]) -> Attr {
        let x = inputs
            .first()
            .cloned()
            .flatten()
            .unwrap_or_else(|| TensorType::new(vec![2, 3], DType::F32));
        let rank = x.rank();
        if let Some(t) = self.hint(v).dtype_of.and_then(|o| self.tensor_ty(o)) {
            return Attr::DType(t.dtype);
        }
        if let Some(t) = self.hint(v).last_axis_of.and_then(|o| self.tensor_ty(o)) {
            let last = t.rank().saturating_sub(1) as i64;
            return if matches!(op, TOp::Reduce(_)) {
                Attr::Ints(vec![last])
            } else {
                Attr::Int(last)
            };
        }
        match (op, k) {
            (TOp::Transpose, _) => Attr::Ints(self.perm(v, rank).into_iter().map(|i| i as i64).collect()),
            (TOp::Reshape, _) => Attr::Ints(self.reshape_target(v, &x).into_iter().map(|i| i as i64).collect()),
            (TOp::Cast, _) => Attr::DType(DType::F32),
            (TOp::BatchNorm, _) | (TOp::LayerNorm, 1) => Attr::float(1e-5),
            (TOp::Conv | TOp::FusedConv, 0) => {
                let c = x.shape.get(1).copied().unwrap_or(1);
                let group = if c > 1 && c % 2 == 0 && self.chance(0.3) { 2 } else { 1 };
                let pad = self.below(2);
                let stride = 1 + self.below(2);
                conv_attr(&ConvParams {
                    strides: [stride, stride],
                    pads: [pad; 4],
                    dilations: [1, 1],
                    group,
                    layout: Layout::Nchw,
                })
            }
            (TOp::Pool(_), _) => {
                let kernel = 1 + self.below(3);
                let pad = self.below(kernel);
                pool_attr(&PoolParams {
                    kernel: [kernel, kernel],
                    strides: [1 + self.below(2); 2],
                    pads: [pad; 4],
                    layout: Layout::Nchw,
                })
            }
            (TOp::Flatten, _) => Attr::Int(self.below(rank + 1) as i64),
            (TOp::Reduce(_), 0) => Attr::Ints(vec![self.below(rank.max(1)) as i64]),
            (TOp::Reduce(_), _) => Attr::Int(self.below(2) as i64),
            // A valid slice of the last axis: axes, starts (first half), ends (second half), steps.
            (TOp::Slice, k) => {
                let axis = rank.saturating_sub(1);
                let dim = x.shape.get(axis).copied().unwrap_or(1);
                let half = dim / 2;
                let v = match k {
                    0 => axis,
                    1 => self.below(half.max(1)),
                    2 => (half + 1 + self.below(dim - half)).min(dim),
                    _ => 1 + self.below(2),
                };
                Attr::Ints(vec![v as i64])
            }
            _ => Attr::Int(self.below(rank.max(1)) as i64),
        }
    }

    /// The shape for a pending tensor child at input position `pos` of `op`,
    /// given the (possibly unknown) types of its sibling inputs.
    fn tensor_shape(&mut self, v: Var, op: &TOp, pos: usize, known: &[Option<TensorType>], attrs: &[Attr]) -> Vec<usize> {
        let first = known.iter().flatten().next().cloned();
        match op {
            TOp::MatMul | TOp::FusedMatMul if pos == 1 => match &known[0] {
                Some(a) => {
                    let rank = self.hint(v).rank.unwrap_or(2);
                    let mut s = self.shape(rank.max(1));
                    if rank >= 2 {
                        s[rank - 2] = *a.shape.last().unwrap_or(&1);
                    } else {
                        s[0] = *a.shape.last().unwrap_or(&1);
                    }
                    s
                }
                None => self.free_shape(v, 2),
            },
            TOp::MatMul | TOp::FusedMatMul if pos == 0 => match &known[1] {
                Some(b) if b.rank() >= 2 => {
                    let mut s = self.free_shape(v, 2);
                    let r = s.len();
                    s[r - 1] = b.shape[b.rank() - 2];
                    s
                }
                _ => self.free_shape(v, 2),
            },
            TOp::Conv | TOp::FusedConv => {
                let p = attrs.first().and_then(crate::lang::conv_params).unwrap_or_default();
                match (pos, &known[0]) {
                    (0, _) => vec![
                        1 + self.below(2),
                        p.group * (1 + self.below(3)),
                        4 + self.below(4),
                        4 + self.below(4),
                    ],
                    (1, Some(x)) => {
                        let k = if self.chance(0.5) { 1 } else { 3 };
                        vec![p.group * (1 + self.below(3)), x.shape[1] / p.group.max(1), k, k]
                    }
                    (2, _) => match &known[1] {
                        Some(w) if *op == TOp::Conv => vec![w.shape[0]],
                        _ => first.map(|t| t.shape).unwrap_or_default(),
                    },
                    _ => first.map(|t| t.shape).unwrap_or_default(),
                }
            }
            TOp::BatchNorm => match (pos, &known[0]) {
                (0, _) => vec![1, 1 + self.below(4), 2 + self.below(3), 2 + self.below(3)],
                (_, Some(x)) => vec![x.shape[1]],
                _ => vec![1],
            },
            TOp::Pool(_) | TOp::GlobalPool(_) => vec![1, 1 + self.below(3), 3 + self.below(4), 3 + self.below(4)],
            TOp::LayerNorm => match (pos, &known[0]) {
                (0, _) => self.free_shape(v, 2),
                (_, Some(x)) => x.shape[x.rank().saturating_sub(1)..].to_vec(),
                _ => vec![1],
            },
            _ => match first {
                Some(t) if self.chance(0.75) => t.shape,
                Some(t) => {
                    // A broadcast-compatible variant: drop leading dims or set some to 1.
                    let keep = self.below(t.rank() + 1);
                    t.shape[t.rank() - keep..]
                        .iter()
                        .map(|&d| if self.chance(0.3) { 1 } else { d })
                        .collect()
                }
                None => {
                    let r = 1 + self.below(3);
                    self.free_shape(v, r)
                }
            },
        }
    }
}

/// The attribute child count and the op of an e-node, for pattern walking.
fn layout(n: &TNode) -> usize {
    n.op.attr_count().min(n.children.len())
}

impl<'a> Instantiator<'a> {
    /// An instantiator for the left-hand side patterns `asts` under `conditions`.
    pub fn new(asts: Vec<&'a PatternAst<TNode>>, conditions: &[Condition]) -> Self {
        let hints = hints(conditions, &asts);
        Instantiator { asts, hints }
    }

    /// One attempt with `seed`; `None` when the generated term does not type-check.
    pub fn instance(&self, seed: u64) -> Option<Instance> {
        let mut g = Gen {
            rng: SplitMix64::new(seed),
            vars: BTreeMap::new(),
            hints: &self.hints,
            free_shapes: Vec::new(),
        };
        for ast in &self.asts {
            let items = ast.as_ref();
            let mut slots: Vec<Slot> = Vec::with_capacity(items.len());
            for item in items {
                let slot = match item {
                    ENodeOrVar::Var(v) => match g.vars.get(v) {
                        Some(VarValue::Tensor { value, .. }) => Slot::Tensor(value.ty.clone()),
                        Some(VarValue::Attr(a)) => Slot::Attr(a.clone()),
                        None => Slot::Pending(*v),
                    },
                    ENodeOrVar::ENode(n) => match &n.op {
                        TOp::Attr(a) => Slot::Attr(a.clone()),
                        TOp::Input | TOp::Const => return None,
                        op => Slot::Tensor(Self::typed_node(&mut g, op, n, &slots)?),
                    },
                };
                slots.push(slot);
            }
            if let Some(Slot::Pending(v)) = slots.last() {
                let shape = g.free_shape(*v, 2);
                g.set_tensor(*v, shape);
            }
        }
        Some(Instance { vars: g.vars })
    }

    fn typed_node(g: &mut Gen<'_>, op: &TOp, n: &TNode, slots: &[Slot]) -> Option<TensorType> {
        let na = layout(n);
        let child = |slots: &[Slot], c: Id| -> Option<TensorType> {
            match &slots[usize::from(c)] {
                Slot::Tensor(t) => Some(t.clone()),
                _ => None,
            }
        };
        let resolve = |g: &Gen<'_>, slot: &Slot| -> Option<TensorType> {
            match slot {
                Slot::Tensor(t) => Some(t.clone()),
                Slot::Pending(v) => g.tensor_ty(*v),
                Slot::Attr(_) => None,
            }
        };
        // Conv-like ops need their input before their parameters, and their parameters before the weights.
        let conv_like = matches!(op, TOp::Conv | TOp::FusedConv);
        let mut attrs: Vec<Attr> = Vec::new();
        let inputs: Vec<Id> = n.children[na..].to_vec();
        let mut known: Vec<Option<TensorType>> = inputs
            .iter()
            .map(|&c| child(slots, c).or_else(|| resolve(g, &slots[usize::from(c)])))
            .collect();
        let fill_input = |g: &mut Gen<'_>, pos: usize, attrs: &[Attr], known: &mut Vec<Option<TensorType>>| {
            if let Slot::Pending(v) = slots[usize::from(inputs[pos])] {
                if g.vars.contains_key(&v) {
                    known[pos] = g.tensor_ty(v);
                } else {
                    let shape = g.tensor_shape(v, op, pos, known, attrs);
                    known[pos] = Some(g.set_tensor(v, shape));
                }
            }
        };
        if conv_like && !inputs.is_empty() {
            fill_input(g, 0, &attrs, &mut known);
        } else {
            for pos in 0..inputs.len() {
                fill_input(g, pos, &attrs, &mut known);
            }
        }
        for k in 0..na {
            let attr = match &slots[usize::from(n.children[k])] {
                Slot::Attr(a) => a.clone(),
                Slot::Pending(v) => match g.attr_of(*v) {
                    Some(a) => a,
                    None => {
                        let a = g.attr(*v, op, k, &known);
                        g.vars.insert(*v, VarValue::Attr(a.clone()));
                        a
                    }
                },
                Slot::Tensor(_) => return None,
            };
            attrs.push(attr);
        }
        if conv_like {
            for pos in 1..inputs.len() {
                fill_input(g, pos, &attrs, &mut known);
            }
        }
        let tys: Option<Vec<TensorType>> = known.into_iter().collect();
        let tys = tys?;
        let refs: Vec<&Attr> = attrs.iter().collect();
        let decoded = decode_op(op, &refs)?;
        let (lo, hi) = decoded.arity();
        if tys.len() < lo || tys.len() > hi {
            return None;
        }
        let trefs: Vec<&TensorType> = tys.iter().collect();
        infer(&decoded, &trefs).ok()
    }
}
