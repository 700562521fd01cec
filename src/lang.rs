//! The e-graph language: one e-node per op application, attributes as leaf e-nodes.
//!
//! Pattern syntax (rule files use it): `(matmul ?a ?b)`, `(transpose [0,2,1,3] ?x)`,
//! `(conv ?params ?x ?w)`. Every e-node's children are its attribute leaves first,
//! then its tensor inputs, in the order of [`TOp::attr_count`]. Large constants
//! are never hashed: `(const w1)` names an entry of the analysis' constant table.

use crate::dtype::DType;
use crate::ewexpr::EwExpr;
use crate::graph::op::{AttentionLayout, BinaryOp, ConvParams, Layout, Op, PoolKind, PoolParams, ReduceKind, UnaryOp};
use egg::{Id, Language, Symbol};
use std::fmt;
use std::str::FromStr;

/// An attribute value held by a leaf e-node.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Attr {
    /// An integer (axes, counts). Spelled `3`.
    Int(i64),
    /// A list of integers (perms, shapes, packed window parameters). Spelled `[0,2,1]`.
    Ints(Vec<i64>),
    /// A float (epsilons), stored by bit pattern. Spelled with a `.` or exponent: `1e-5`, `0.5`.
    Float(u64),
    /// A dtype. Spelled `f32`, `bf16`, ...
    DType(DType),
    /// A name or expression text. Any other atom.
    Sym(Symbol),
}

impl Attr {
    /// A float attribute.
    pub fn float(v: f64) -> Attr {
        Attr::Float(v.to_bits())
    }

    /// The float value, if this is a float or an integer.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Attr::Float(b) => Some(f64::from_bits(*b)),
            Attr::Int(i) => Some(*i as f64),
            _ => None,
        }
    }

    /// The integer list, if this is a list (or a single integer).
    pub fn as_ints(&self) -> Option<Vec<i64>> {
        match self {
            Attr::Ints(v) => Some(v.clone()),
            Attr::Int(i) => Some(vec![*i]),
            _ => None,
        }
    }

    /// Non-negative integer list as `usize`.
    pub fn as_usizes(&self) -> Option<Vec<usize>> {
        self.as_ints()?.into_iter().map(|i| usize::try_from(i).ok()).collect()
    }

    /// The symbol text, if this is a symbol.
    pub fn as_sym(&self) -> Option<&str> {
        match self {
            Attr::Sym(s) => Some(s.as_str()),
            _ => None,
        }
    }
}

impl fmt::Display for Attr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Attr::Int(i) => write!(f, "{i}"),
            Attr::Ints(v) => {
                let parts: Vec<String> = v.iter().map(|i| i.to_string()).collect();
                write!(f, "[{}]", parts.join(","))
            }
            Attr::Float(b) => write!(f, "{:?}", f64::from_bits(*b)),
            Attr::DType(d) => write!(f, "{d}"),
            Attr::Sym(s) => write!(f, "{s}"),
        }
    }
}

impl FromStr for Attr {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Ok(i) = s.parse::<i64>() {
            return Ok(Attr::Int(i));
        }
        let numeric_start = s.starts_with(|c: char| c.is_ascii_digit() || c == '-' || c == '.');
        if numeric_start {
            if let Ok(v) = s.parse::<f64>() {
                return Ok(Attr::float(v));
            }
        }
        if let Some(inner) = s.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
            let parsed: Result<Vec<i64>, _> = inner
                .split(',')
                .filter(|p| !p.is_empty())
                .map(|p| p.trim().parse::<i64>())
                .collect();
            if let Ok(v) = parsed {
                return Ok(Attr::Ints(v));
            }
        }
        if let Ok(d) = s.parse::<DType>() {
            return Ok(Attr::DType(d));
        }
        Ok(Attr::Sym(Symbol::from(s)))
    }
}

/// The operator of an e-node (its discriminant, including a leaf's value).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TOp {
    /// `(input NAME)`: a graph input.
    Input,
    /// `(const NAME)`: an entry of the constant table.
    Const,
    /// `(relu x)`, `(gelu x)`, ...
    Unary(UnaryOp),
    /// `(add a b)`, `(mul a b)`, ...
    Binary(BinaryOp),
    /// `(cast DTYPE x)`
    Cast,
    /// `(matmul a b)`
    MatMul,
    /// `(dequantize AXIS BLOCK_SIZE x scale)`: ONNX `DequantizeLinear`, zero point 0
    Dequantize,
    /// `(conv [sh,sw,pt,pl,pb,pr,dh,dw,group] x w [b])`
    Conv,
    /// `(maxpool|avgpool|avgpool_incl [kh,kw,sh,sw,pt,pl,pb,pr] x)`
    Pool(PoolKind),
    /// `(gmaxpool x)`, `(gavgpool x)`
    GlobalPool(PoolKind),
    /// `(batchnorm EPS x scale bias mean var)`
    BatchNorm,
    /// `(concat AXIS x...)`
    Concat,
    /// `(flatten AXIS x)`
    Flatten,
    /// `(reshape [dims] x)`
    Reshape,
    /// `(transpose [perm] x)`
    Transpose,
    /// `(slice [axes] [starts] [ends] [steps] x)`
    Slice,
    /// `(gather AXIS data indices)`
    Gather,
    /// `(softmax AXIS x)`
    Softmax,
    /// `(layernorm AXIS EPS x scale bias)`
    LayerNorm,
    /// `(reduce_sum|reduce_mean|reduce_max [axes] KEEPDIMS x)`
    Reduce(ReduceKind),
    /// `(fused EXPR x0 x1 ...)`
    FusedElementwise,
    /// `(fused_matmul EPILOGUE a b x1 ...)`
    FusedMatMul,
    /// `(fused_conv [params] EPILOGUE x w x1 ...)`
    FusedConv,
    /// `(fused_attention DIVIDE q kt v s [mask])`, `DIVIDE` 0 (multiply by `s`) or 1
    FusedAttention,
    /// `(approx ERR x)`: `x` stands in for the value of the e-class it is in
    /// only approximately, with relative error `ERR` (a float: ‖x − v‖₂ / ‖v‖₂
    /// estimated for the class' value `v`). Only approximate rules add it; it
    /// computes nothing (it becomes an identity in the extracted graph), and
    /// extraction under an error budget charges its `ERR`.
    Approx,
    /// A leaf holding an attribute value.
    Attr(Attr),
}

impl TOp {
    /// Name in pattern syntax.
    pub fn name(&self) -> String {
        match self {
            TOp::Input => "input".into(),
            TOp::Const => "const".into(),
            TOp::Unary(u) => u.short_name().into(),
            TOp::Binary(b) => b.short_name().into(),
            TOp::Cast => "cast".into(),
            TOp::MatMul => "matmul".into(),
            TOp::Dequantize => "dequantize".into(),
            TOp::Conv => "conv".into(),
            TOp::Pool(PoolKind::Max) => "maxpool".into(),
            TOp::Pool(PoolKind::AvgExcludePad) => "avgpool".into(),
            TOp::Pool(PoolKind::AvgIncludePad) => "avgpool_incl".into(),
            TOp::GlobalPool(PoolKind::Max) => "gmaxpool".into(),
            TOp::GlobalPool(_) => "gavgpool".into(),
            TOp::BatchNorm => "batchnorm".into(),
            TOp::Concat => "concat".into(),
            TOp::Flatten => "flatten".into(),
            TOp::Reshape => "reshape".into(),
            TOp::Transpose => "transpose".into(),
            TOp::Slice => "slice".into(),
            TOp::Gather => "gather".into(),
            TOp::Softmax => "softmax".into(),
            TOp::LayerNorm => "layernorm".into(),
            TOp::Reduce(ReduceKind::Sum) => "reduce_sum".into(),
            TOp::Reduce(ReduceKind::Mean) => "reduce_mean".into(),
            TOp::Reduce(ReduceKind::Max) => "reduce_max".into(),
            TOp::FusedElementwise => "fused".into(),
            TOp::FusedMatMul => "fused_matmul".into(),
            TOp::FusedConv => "fused_conv".into(),
            TOp::FusedAttention => "fused_attention".into(),
            TOp::Approx => "approx".into(),
            TOp::Attr(a) => a.to_string(),
        }
    }

    /// Every non-leaf operator.
    pub fn all_ops() -> Vec<TOp> {
        let mut v = vec![TOp::Input, TOp::Const];
        v.extend(UnaryOp::ALL.map(TOp::Unary));
        v.extend(BinaryOp::ALL.map(TOp::Binary));
        v.extend([TOp::Cast, TOp::MatMul, TOp::Dequantize, TOp::Conv]);
        for k in [PoolKind::Max, PoolKind::AvgExcludePad, PoolKind::AvgIncludePad] {
            v.push(TOp::Pool(k));
        }
        v.extend([TOp::GlobalPool(PoolKind::Max), TOp::GlobalPool(PoolKind::AvgExcludePad)]);
        v.extend([TOp::BatchNorm, TOp::Concat, TOp::Flatten, TOp::Reshape, TOp::Transpose, TOp::Slice]);
        v.extend([TOp::Gather, TOp::Softmax, TOp::LayerNorm]);
        v.extend([ReduceKind::Sum, ReduceKind::Mean, ReduceKind::Max].map(TOp::Reduce));
        v.extend([TOp::FusedElementwise, TOp::FusedMatMul, TOp::FusedConv, TOp::FusedAttention]);
        v.push(TOp::Approx);
        v
    }

    /// Number of leading attribute children.
    pub fn attr_count(&self) -> usize {
        match self {
            TOp::Input | TOp::Const | TOp::Cast | TOp::Conv | TOp::Pool(_) | TOp::BatchNorm => 1,
            TOp::Concat | TOp::Flatten | TOp::Reshape | TOp::Transpose | TOp::Gather | TOp::Softmax => 1,
            TOp::FusedElementwise | TOp::FusedMatMul | TOp::Approx => 1,
            TOp::FusedAttention | TOp::Dequantize => 2,
            TOp::LayerNorm | TOp::Reduce(_) | TOp::FusedConv => 2,
            TOp::Slice => 4,
            TOp::Unary(_) | TOp::Binary(_) | TOp::MatMul | TOp::GlobalPool(_) | TOp::Attr(_) => 0,
        }
    }

    /// Allowed number of tensor inputs (after the attributes), inclusive.
    pub fn input_arity(&self) -> (usize, usize) {
        match self {
            TOp::Input | TOp::Const | TOp::Attr(_) => (0, 0),
            TOp::Unary(_) | TOp::Cast | TOp::Pool(_) | TOp::GlobalPool(_) | TOp::Approx => (1, 1),
            TOp::Flatten | TOp::Reshape | TOp::Transpose | TOp::Slice | TOp::Softmax | TOp::Reduce(_) => (1, 1),
            TOp::Binary(_) | TOp::MatMul | TOp::Gather | TOp::Dequantize => (2, 2),
            TOp::Conv => (2, 3),
            TOp::BatchNorm => (5, 5),
            TOp::LayerNorm => (3, 3),
            TOp::Concat | TOp::FusedElementwise => (1, usize::MAX),
            TOp::FusedMatMul | TOp::FusedConv => (2, usize::MAX),
            TOp::FusedAttention => (4, 5),
        }
    }
}

/// An e-node: an operator and its children (attribute leaves first, then inputs).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TNode {
    /// The operator.
    pub op: TOp,
    /// Children e-classes.
    pub children: Vec<Id>,
}

impl TNode {
    /// A leaf holding `attr`.
    pub fn attr(attr: Attr) -> TNode {
        TNode {
            op: TOp::Attr(attr),
            children: Vec::new(),
        }
    }

    /// The attribute children.
    pub fn attr_children(&self) -> &[Id] {
        &self.children[..self.op.attr_count().min(self.children.len())]
    }

    /// The tensor-input children.
    pub fn inputs(&self) -> &[Id] {
        &self.children[self.op.attr_count().min(self.children.len())..]
    }
}

impl Language for TNode {
    type Discriminant = TOp;

    fn discriminant(&self) -> TOp {
        self.op.clone()
    }

    fn matches(&self, other: &Self) -> bool {
        self.op == other.op && self.children.len() == other.children.len()
    }

    fn children(&self) -> &[Id] {
        &self.children
    }

    fn children_mut(&mut self) -> &mut [Id] {
        &mut self.children
    }
}

impl fmt::Display for TNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.op.name())
    }
}

/// Why an operator name and child count do not form an e-node.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("operator \"{op}\" takes {expected} children, found {found}")]
pub struct BadENode {
    /// Operator name.
    pub op: String,
    /// Allowed child count.
    pub expected: String,
    /// Children given.
    pub found: usize,
}

impl egg::FromOp for TNode {
    type Error = BadENode;

    fn from_op(op: &str, children: Vec<Id>) -> Result<Self, BadENode> {
        let known = TOp::all_ops().into_iter().find(|o| o.name() == op);
        match known {
            Some(top) => {
                let (lo, hi) = top.input_arity();
                let attrs = top.attr_count();
                let n = children.len();
                if n < attrs + lo || n.saturating_sub(attrs) > hi {
                    return Err(BadENode {
                        op: op.to_string(),
                        expected: crate::graph::infer::arity_text(attrs + lo, hi.saturating_add(attrs)),
                        found: n,
                    });
                }
                Ok(TNode { op: top, children })
            }
            None if children.is_empty() => Ok(TNode::attr(op.parse().expect("Attr parsing is infallible"))),
            None => Err(BadENode {
                op: op.to_string(),
                expected: "0 (an attribute leaf)".into(),
                found: children.len(),
            }),
        }
    }
}

/// Packs convolution parameters as `[sh,sw,pt,pl,pb,pr,dh,dw,group]`, with a tenth
/// entry `1` for [`Layout::Nhwc`] (NCHW, the ONNX layout, keeps the nine-entry form).
pub fn conv_attr(p: &ConvParams) -> Attr {
    let mut v: Vec<i64> = p.strides.iter().chain(&p.pads).chain(&p.dilations).map(|&x| x as i64).collect();
    v.push(p.group as i64);
    if p.layout == Layout::Nhwc {
        v.push(1);
    }
    Attr::Ints(v)
}

/// Unpacks [`conv_attr`].
pub fn conv_params(a: &Attr) -> Option<ConvParams> {
    let v = a.as_usizes()?;
    let layout = match v.len() {
        9 => Layout::Nchw,
        10 if v[9] == 1 => Layout::Nhwc,
        _ => return None,
    };
    Some(ConvParams {
        strides: [v[0], v[1]],
        pads: [v[2], v[3], v[4], v[5]],
        dilations: [v[6], v[7]],
        group: v[8],
        layout,
    })
}

/// Packs pooling parameters as `[kh,kw,sh,sw,pt,pl,pb,pr]`, with a ninth entry `1`
/// for [`Layout::Nhwc`].
pub fn pool_attr(p: &PoolParams) -> Attr {
    let mut v: Vec<i64> = p.kernel.iter().chain(&p.strides).chain(&p.pads).map(|&x| x as i64).collect();
    if p.layout == Layout::Nhwc {
        v.push(1);
    }
    Attr::Ints(v)
}

/// Unpacks [`pool_attr`].
pub fn pool_params(a: &Attr) -> Option<PoolParams> {
    let v = a.as_usizes()?;
    let layout = match v.len() {
        8 => Layout::Nchw,
        9 if v[8] == 1 => Layout::Nhwc,
        _ => return None,
    };
    Some(PoolParams {
        kernel: [v[0], v[1]],
        strides: [v[2], v[3]],
        pads: [v[4], v[5], v[6], v[7]],
        layout,
    })
}

fn ints(v: &[usize]) -> Attr {
    Attr::Ints(v.iter().map(|&x| x as i64).collect())
}

/// The operator and attribute leaves that encode `op`.
pub fn encode_op(op: &Op) -> (TOp, Vec<Attr>) {
    match op {
        Op::Unary(u) => (TOp::Unary(*u), vec![]),
        Op::Binary(b) => (TOp::Binary(*b), vec![]),
        Op::Cast { to } => (TOp::Cast, vec![Attr::DType(*to)]),
        Op::MatMul => (TOp::MatMul, vec![]),
        Op::Dequantize { axis, block_size } => (TOp::Dequantize, vec![Attr::Int(*axis as i64), Attr::Int(*block_size as i64)]),
        Op::Conv(p) => (TOp::Conv, vec![conv_attr(p)]),
        Op::Pool(k, p) => (TOp::Pool(*k), vec![pool_attr(p)]),
        Op::GlobalPool(k) => (TOp::GlobalPool(*k), vec![]),
        Op::BatchNorm { epsilon } => (TOp::BatchNorm, vec![Attr::float(*epsilon)]),
        Op::Concat { axis } => (TOp::Concat, vec![Attr::Int(*axis as i64)]),
        Op::Flatten { axis } => (TOp::Flatten, vec![Attr::Int(*axis as i64)]),
        Op::Reshape { shape } => (TOp::Reshape, vec![ints(shape)]),
        Op::Transpose { perm } => (TOp::Transpose, vec![ints(perm)]),
        Op::Slice { axes, starts, ends, steps } => (TOp::Slice, vec![ints(axes), ints(starts), ints(ends), ints(steps)]),
        Op::Gather { axis } => (TOp::Gather, vec![Attr::Int(*axis as i64)]),
        Op::Softmax { axis } => (TOp::Softmax, vec![Attr::Int(*axis as i64)]),
        Op::LayerNorm { axis, epsilon } => (TOp::LayerNorm, vec![Attr::Int(*axis as i64), Attr::float(*epsilon)]),
        Op::Reduce { kind, axes, keepdims } => (TOp::Reduce(*kind), vec![ints(axes), Attr::Int(i64::from(*keepdims))]),
        Op::FusedElementwise { expr } => (TOp::FusedElementwise, vec![Attr::Sym(expr.to_atom().into())]),
        Op::FusedMatMul { epilogue } => (TOp::FusedMatMul, vec![Attr::Sym(epilogue.to_atom().into())]),
        Op::FusedConv { params, epilogue } => (TOp::FusedConv, vec![conv_attr(params), Attr::Sym(epilogue.to_atom().into())]),
        Op::FusedAttention { divide, layout } => (
            TOp::FusedAttention,
            vec![Attr::Int(i64::from(*divide)), Attr::Sym(layout.name().into())],
        ),
    }
}

/// Decodes an operator and its attribute values back into an [`Op`].
/// `None` when the attributes do not have the right form (an ill-formed e-node).
pub fn decode_op(op: &TOp, attrs: &[&Attr]) -> Option<Op> {
    let usize_of = |a: &Attr| match a {
        Attr::Int(i) => usize::try_from(*i).ok(),
        _ => None,
    };
    let expr = |a: &Attr| a.as_sym().and_then(|s| EwExpr::parse(s).ok());
    Some(match op {
        TOp::Input | TOp::Const | TOp::Attr(_) => return None,
        TOp::Unary(u) => Op::Unary(*u),
        TOp::Approx => match attrs.first()?.as_f64()? {
            e if e >= 0.0 && e.is_finite() => Op::Unary(UnaryOp::Identity),
            _ => return None,
        },
        TOp::Binary(b) => Op::Binary(*b),
        TOp::Cast => match attrs.first()? {
            Attr::DType(d) => Op::Cast { to: *d },
            _ => return None,
        },
        TOp::MatMul => Op::MatMul,
        TOp::Dequantize => Op::Dequantize {
            axis: usize_of(attrs.first()?)?,
            block_size: usize_of(attrs.get(1)?)?,
        },
        TOp::Conv => Op::Conv(conv_params(attrs.first()?)?),
        TOp::Pool(k) => Op::Pool(*k, pool_params(attrs.first()?)?),
        TOp::GlobalPool(k) => Op::GlobalPool(*k),
        TOp::BatchNorm => Op::BatchNorm {
            epsilon: attrs.first()?.as_f64()?,
        },
        TOp::Concat => Op::Concat {
            axis: usize_of(attrs.first()?)?,
        },
        TOp::Flatten => Op::Flatten {
            axis: usize_of(attrs.first()?)?,
        },
        TOp::Reshape => Op::Reshape {
            shape: attrs.first()?.as_usizes()?,
        },
        TOp::Transpose => Op::Transpose {
            perm: attrs.first()?.as_usizes()?,
        },
        TOp::Slice => Op::Slice {
            axes: attrs.first()?.as_usizes()?,
            starts: attrs.get(1)?.as_usizes()?,
            ends: attrs.get(2)?.as_usizes()?,
            steps: attrs.get(3)?.as_usizes()?,
        },
        TOp::Gather => Op::Gather {
            axis: usize_of(attrs.first()?)?,
        },
        TOp::Softmax => Op::Softmax {
            axis: usize_of(attrs.first()?)?,
        },
        TOp::LayerNorm => Op::LayerNorm {
            axis: usize_of(attrs.first()?)?,
            epsilon: attrs.get(1)?.as_f64()?,
        },
        TOp::Reduce(kind) => Op::Reduce {
            kind: *kind,
            axes: attrs.first()?.as_usizes()?,
            keepdims: usize_of(attrs.get(1)?)? != 0,
        },
        TOp::FusedElementwise => Op::FusedElementwise {
            expr: expr(attrs.first()?)?,
        },
        TOp::FusedMatMul => Op::FusedMatMul {
            epilogue: expr(attrs.first()?)?,
        },
        TOp::FusedConv => Op::FusedConv {
            params: conv_params(attrs.first()?)?,
            epilogue: expr(attrs.get(1)?)?,
        },
        TOp::FusedAttention => Op::FusedAttention {
            divide: match usize_of(attrs.first()?)? {
                0 => false,
                1 => true,
                _ => return None,
            },
            layout: AttentionLayout::from_name(attrs.get(1)?.as_sym()?)?,
        },
    })
}

/// The relative error an `(approx ERR x)` e-node declares, or `None` for any
/// other e-node. `attr` reads an attribute child's value.
pub fn approx_error(n: &TNode, attr: impl Fn(Id) -> Option<Attr>) -> Option<f64> {
    match n.op {
        TOp::Approx => n.children.first().and_then(|&c| attr(c)).and_then(|a| a.as_f64()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attrs_parse_and_print() {
        for text in ["3", "-1", "[0,2,1,3]", "[]", "1e-5", "0.5", "f32", "w1", "relu[add[x0,x1]]"] {
            let a: Attr = text.parse().unwrap();
            let again: Attr = a.to_string().parse().unwrap();
            assert_eq!(a, again, "{text}");
        }
        assert_eq!("1e-5".parse::<Attr>().unwrap().as_f64(), Some(1e-5));
        assert!(matches!("bf16".parse::<Attr>().unwrap(), Attr::DType(DType::BF16)));
    }

    #[test]
    fn patterns_parse_with_arity_checks() {
        let ok: Result<egg::Pattern<TNode>, _> = "(transpose [1,0] (matmul ?a ?b))".parse();
        assert!(ok.is_ok());
        let bad: Result<egg::Pattern<TNode>, _> = "(matmul ?a)".parse();
        assert!(bad.is_err());
    }

    #[test]
    fn ops_round_trip_through_encoding() {
        let ops = [
            Op::Conv(ConvParams {
                strides: [2, 2],
                pads: [1, 1, 1, 1],
                dilations: [1, 1],
                group: 4,
                layout: Layout::Nchw,
            }),
            Op::Slice {
                axes: vec![1],
                starts: vec![0],
                ends: vec![4],
                steps: vec![2],
            },
            Op::LayerNorm { axis: 2, epsilon: 1e-12 },
            Op::Dequantize { axis: 0, block_size: 32 },
            Op::FusedMatMul {
                epilogue: EwExpr::parse("relu(add(x0, x1))").unwrap(),
            },
            Op::FusedAttention {
                divide: true,
                layout: AttentionLayout::Bhsd,
            },
            Op::FusedAttention {
                divide: false,
                layout: AttentionLayout::Bshd,
            },
        ];
        for op in ops {
            let (top, attrs) = encode_op(&op);
            let refs: Vec<&Attr> = attrs.iter().collect();
            assert_eq!(decode_op(&top, &refs), Some(op));
        }
    }
}
