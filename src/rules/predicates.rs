//! Named predicates for `if` conditions in rule files.
//!
//! Each predicate takes variables bound by the left-hand side (`?x`) and literal
//! arguments (integers, integer lists, dtypes). [`PREDICATES`] documents them; the
//! rule compiler checks names and argument kinds when a rule file is loaded.

use crate::analysis::{Facts, TEGraph};
use crate::dtype::DType;
use crate::graph::infer::broadcast;
use crate::lang::{Attr, TOp};
use egg::{Subst, Var};

/// The kind of an argument a predicate takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArgKind {
    /// A variable bound to a tensor class.
    Tensor,
    /// A variable bound to an attribute leaf.
    AttrVar,
    /// A literal integer.
    Int,
    /// A literal number.
    Number,
    /// A literal dtype name.
    DType,
}

/// A predicate's name, arguments and meaning.
pub struct PredicateSpec {
    /// Name used in rule files.
    pub name: &'static str,
    /// Argument kinds, in order.
    pub args: &'static [ArgKind],
    /// What it means.
    pub doc: &'static str,
}

use ArgKind::*;

/// Every predicate, in documentation order.
pub const PREDICATES: &[PredicateSpec] = &[
    PredicateSpec {
        name: "is-const",
        args: &[Tensor],
        doc: "the tensor depends on constants only",
    },
    PredicateSpec {
        name: "not-const",
        args: &[Tensor],
        doc: "the tensor depends on a graph input",
    },
    PredicateSpec {
        name: "rank",
        args: &[Tensor, Int],
        doc: "the tensor has exactly this rank",
    },
    PredicateSpec {
        name: "rank-ge",
        args: &[Tensor, Int],
        doc: "the tensor has at least this rank",
    },
    PredicateSpec {
        name: "dtype",
        args: &[Tensor, DType],
        doc: "the tensor has this dtype",
    },
    PredicateSpec {
        name: "same-shape",
        args: &[Tensor, Tensor],
        doc: "the two tensors have equal shapes",
    },
    PredicateSpec {
        name: "same-type",
        args: &[Tensor, Tensor],
        doc: "the two tensors have equal shapes and dtypes",
    },
    PredicateSpec {
        name: "dims-equal",
        args: &[Tensor, Int, Tensor, Int],
        doc: "dim i of the first equals dim j of the second (negative counts from the end)",
    },
    PredicateSpec {
        name: "broadcasts-to",
        args: &[Tensor, Tensor],
        doc: "the first broadcasts to the second's shape without growing it",
    },
    PredicateSpec {
        name: "is-scalar-value",
        args: &[Tensor, Number],
        doc: "a small constant whose every element equals the number",
    },
    PredicateSpec {
        name: "identity-perm",
        args: &[AttrVar],
        doc: "the permutation is the identity",
    },
    PredicateSpec {
        name: "perms-inverse",
        args: &[AttrVar, AttrVar],
        doc: "(transpose p (transpose q x)) is x: q[p[i]] = i for every axis i",
    },
    PredicateSpec {
        name: "swaps-last-two",
        args: &[AttrVar],
        doc: "the permutation swaps the last two axes and keeps the rest",
    },
    PredicateSpec {
        name: "shape-is",
        args: &[AttrVar, Tensor],
        doc: "the shape attribute equals the tensor's shape",
    },
    PredicateSpec {
        name: "dtype-attr-is",
        args: &[AttrVar, Tensor],
        doc: "the dtype attribute equals the tensor's dtype",
    },
    PredicateSpec {
        name: "matmul-last-axis",
        args: &[AttrVar, Tensor, Tensor],
        doc: "the axis attribute is the last axis of (matmul a b)",
    },
    PredicateSpec {
        name: "fits-matmul",
        args: &[Tensor, Tensor, Tensor],
        doc: "the first broadcasts to the shape of (matmul a b) without growing it",
    },
    PredicateSpec {
        name: "last-axis",
        args: &[AttrVar, Tensor],
        doc: "the axis attribute (an integer or a one-element list) is the tensor's last axis",
    },
    PredicateSpec {
        name: "last-dim-vector",
        args: &[Tensor, Tensor],
        doc: "the first is a vector as long as the second's last dim (a per-feature parameter)",
    },
    PredicateSpec {
        name: "unit-steps",
        args: &[AttrVar],
        doc: "the slice steps attribute is all ones",
    },
    PredicateSpec {
        name: "one-element",
        args: &[Tensor],
        doc: "the tensor has exactly one element (a scalar, or any shape of ones)",
    },
    PredicateSpec {
        name: "channel-vector",
        args: &[Tensor, Tensor],
        doc: "the first is a vector as long as dim 1 of the second (a per-channel parameter)",
    },
    PredicateSpec {
        name: "not-conv-output",
        args: &[Tensor],
        doc: "no e-node of the tensor's class is a convolution (whatever would follow it can fold into the conv instead)",
    },
];

/// An argument of a compiled condition.
#[derive(Clone, Debug, PartialEq)]
pub enum Arg {
    /// A pattern variable.
    Var(Var),
    /// An integer literal.
    Int(i64),
    /// A number literal.
    Number(f64),
    /// A dtype literal.
    DType(DType),
}

/// A checked condition: a predicate and its arguments.
#[derive(Clone, Debug, PartialEq)]
pub struct Condition {
    /// Index into [`PREDICATES`].
    pub predicate: usize,
    /// Arguments, matching the predicate's kinds.
    pub args: Vec<Arg>,
}

fn dim(shape: &[usize], i: i64) -> Option<usize> {
    let idx = if i < 0 { shape.len() as i64 + i } else { i };
    usize::try_from(idx).ok().and_then(|k| shape.get(k).copied())
}

/// The type of `(matmul a b)`, if it is well-typed and of rank >= 1.
fn matmul_type(a: Option<&crate::analysis::TensorFacts>, b: Option<&crate::analysis::TensorFacts>) -> Option<crate::dtype::TensorType> {
    let t = crate::graph::infer::infer(&crate::graph::op::Op::MatMul, &[&a?.ty, &b?.ty]).ok()?;
    (t.rank() >= 1).then_some(t)
}

impl Condition {
    /// Evaluates the condition under `subst`. False when a variable is bound to
    /// something of the wrong kind (e.g. an invalid class).
    pub fn holds(&self, egraph: &TEGraph, subst: &Subst) -> bool {
        let facts = |k: usize| match &self.args[k] {
            Arg::Var(v) => subst.get(*v).map(|id| &egraph[*id].data),
            _ => None,
        };
        let tensor = |k: usize| facts(k).and_then(Facts::tensor);
        let perm = |k: usize| facts(k).and_then(Facts::attr).and_then(Attr::as_usizes);
        let int = |k: usize| match self.args[k] {
            Arg::Int(i) => i,
            _ => 0,
        };
        let name = PREDICATES[self.predicate].name;
        let result = match name {
            "is-const" => tensor(0).map(|t| t.is_const),
            "not-const" => tensor(0).map(|t| !t.is_const),
            "rank" => tensor(0).map(|t| t.ty.rank() as i64 == int(1)),
            "rank-ge" => tensor(0).map(|t| t.ty.rank() as i64 >= int(1)),
            "dtype" => tensor(0).map(|t| matches!(self.args[1], Arg::DType(d) if d == t.ty.dtype)),
            "same-shape" => tensor(0).zip(tensor(1)).map(|(a, b)| a.ty.shape == b.ty.shape),
            "same-type" => tensor(0).zip(tensor(1)).map(|(a, b)| a.ty == b.ty),
            "dims-equal" => tensor(0).zip(tensor(2)).map(|(a, b)| {
                let (x, y) = (dim(&a.ty.shape, int(1)), dim(&b.ty.shape, int(3)));
                x.is_some() && x == y
            }),
            "broadcasts-to" => tensor(0)
                .zip(tensor(1))
                .map(|(a, b)| broadcast(&a.ty.shape, &b.ty.shape).as_deref() == Some(&b.ty.shape[..])),
            "is-scalar-value" => tensor(0).map(|t| {
                let want = match self.args[1] {
                    Arg::Number(v) => v,
                    Arg::Int(i) => i as f64,
                    _ => f64::NAN,
                };
                t.value.as_ref().is_some_and(|v| !v.is_empty() && v.iter().all(|&x| x == want))
            }),
            "identity-perm" => perm(0).map(|p| p.iter().enumerate().all(|(i, &x)| i == x)),
            "perms-inverse" => perm(0)
                .zip(perm(1))
                .map(|(p, q)| p.len() == q.len() && p.iter().enumerate().all(|(i, &pi)| q.get(pi) == Some(&i))),
            "swaps-last-two" => perm(0).map(|p| {
                let n = p.len();
                n >= 2 && (0..n - 2).all(|i| p[i] == i) && p[n - 2] == n - 1 && p[n - 1] == n - 2
            }),
            "shape-is" => perm(0).zip(tensor(1)).map(|(s, t)| s == t.ty.shape),
            "dtype-attr-is" => facts(0)
                .and_then(Facts::attr)
                .zip(tensor(1))
                .map(|(a, t)| *a == Attr::DType(t.ty.dtype)),
            "matmul-last-axis" => facts(0)
                .and_then(Facts::attr)
                .and_then(Attr::as_f64)
                .zip(matmul_type(tensor(1), tensor(2)))
                .map(|(a, t)| a == (t.rank() - 1) as f64),
            "fits-matmul" => tensor(0)
                .zip(matmul_type(tensor(1), tensor(2)))
                .map(|(m, t)| broadcast(&m.ty.shape, &t.shape).as_deref() == Some(&t.shape[..])),
            "last-axis" => facts(0)
                .and_then(Facts::attr)
                .and_then(|a| a.as_usizes().or_else(|| a.as_f64().map(|f| vec![f as usize])))
                .zip(tensor(1))
                .map(|(axes, t)| t.ty.rank() >= 1 && axes == [t.ty.rank() - 1]),
            "last-dim-vector" => tensor(0)
                .zip(tensor(1))
                .map(|(v, x)| v.ty.rank() == 1 && x.ty.rank() >= 1 && v.ty.shape[0] == x.ty.shape[x.ty.rank() - 1]),
            "unit-steps" => perm(0).map(|s| s.iter().all(|&x| x == 1)),
            "one-element" => tensor(0).map(|t| t.ty.numel() == 1),
            "channel-vector" => tensor(0)
                .zip(tensor(1))
                .map(|(v, x)| v.ty.rank() == 1 && x.ty.rank() >= 2 && v.ty.shape[0] == x.ty.shape[1]),
            "not-conv-output" => match &self.args[0] {
                Arg::Var(v) => subst
                    .get(*v)
                    .map(|id| !egraph[*id].nodes.iter().any(|n| matches!(n.op, TOp::Conv | TOp::FusedConv))),
                _ => None,
            },
            _ => None,
        };
        result.unwrap_or(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_predicate_is_documented_once() {
        let mut names: Vec<&str> = PREDICATES.iter().map(|p| p.name).collect();
        names.sort_unstable();
        let n = names.len();
        names.dedup();
        assert_eq!(names.len(), n);
        assert!(PREDICATES.iter().all(|p| !p.doc.is_empty()));
    }
}
