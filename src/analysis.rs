//! The e-class analysis: tensor type, const-ness and small constant values.
//!
//! [`Facts`] are derived from e-nodes by [`crate::graph::infer::infer`], the same
//! function that types graphs on load, so an e-class' type is exactly the type
//! its members would have as graph nodes. Two e-classes with different types can
//! only be merged by an unsound rule; such merges are recorded in
//! [`TensorAnalysis::conflicts`] with the rule being applied, and the saturation
//! driver stops with [`crate::Error::UnsoundRule`].

use crate::dtype::TensorType;
use crate::graph::tensor::ConstInit;
use crate::graph::{Constant, Graph};
use crate::lang::{Attr, TNode, TOp, decode_op};
use egg::{Analysis, DidMerge, EGraph, Id, Symbol};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// Constants with at most this many elements carry their values in the analysis
/// (for predicates such as "is the scalar 1").
pub const SMALL_CONST_ELEMENTS: usize = 16;

/// What is known about one e-class.
#[derive(Clone, Debug, PartialEq)]
pub enum Facts {
    /// An attribute leaf.
    Attr(Attr),
    /// A tensor-valued class.
    Tensor(TensorFacts),
    /// An e-node whose attributes or input types do not fit its op (only rules can
    /// create these; they are never extracted).
    Invalid(String),
}

/// Facts about a tensor-valued e-class.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorFacts {
    /// Shape and dtype.
    pub ty: TensorType,
    /// True if the value depends on constants only.
    pub is_const: bool,
    /// Row-major values, for constants of at most [`SMALL_CONST_ELEMENTS`] elements.
    pub value: Option<Arc<[f64]>>,
}

impl Facts {
    /// The tensor facts, if tensor-valued.
    pub fn tensor(&self) -> Option<&TensorFacts> {
        match self {
            Facts::Tensor(t) => Some(t),
            _ => None,
        }
    }

    /// The tensor type, if tensor-valued.
    pub fn ty(&self) -> Option<&TensorType> {
        self.tensor().map(|t| &t.ty)
    }

    /// The attribute, if an attribute leaf.
    pub fn attr(&self) -> Option<&Attr> {
        match self {
            Facts::Attr(a) => Some(a),
            _ => None,
        }
    }
}

/// A merge of two e-classes whose types disagree.
#[derive(Clone, Debug, PartialEq)]
pub struct Conflict {
    /// The rule being applied when it happened.
    pub rule: String,
    /// Type of the class kept.
    pub kept: String,
    /// Type of the class merged into it.
    pub merged: String,
}

/// The analysis state: the graph's inputs and constants, and recorded conflicts.
#[derive(Clone, Debug, Default)]
pub struct TensorAnalysis {
    /// Graph inputs by name.
    pub inputs: BTreeMap<String, TensorType>,
    /// The constant table: `(const NAME)` e-nodes refer to these.
    pub constants: BTreeMap<String, Constant>,
    /// Type conflicts seen on merge.
    pub conflicts: Vec<Conflict>,
    /// Name of the rule currently being applied (set by the rule appliers).
    pub current_rule: Option<Symbol>,
    /// Computed constants by the key of the computation that made them, so a
    /// builtin applied again to the same inputs reuses its constant.
    memo: BTreeMap<String, String>,
    /// Materialized constant data by name.
    cache: BTreeMap<String, Arc<crate::graph::tensor::Tensor>>,
    /// Numbers computed alongside memoized constants (an approximation's error), by key.
    values: BTreeMap<String, f64>,
    /// Names of the constants added by rules ([`TensorAnalysis::add_constant`]).
    computed: BTreeSet<String>,
    /// Singular value decompositions of constant matrices, by constant name
    /// (`None`: the decomposition failed).
    svds: BTreeMap<String, Option<Arc<Svd>>>,
}

/// A thin singular value decomposition `W = U·diag(σ)·Vᵀ` of a constant matrix
/// `W` of shape `[rows, cols]`, with the first `kept` singular vectors.
#[derive(Clone, Debug, PartialEq)]
pub struct Svd {
    /// Rows of `W`.
    pub rows: usize,
    /// Columns of `W`.
    pub cols: usize,
    /// All `min(rows, cols)` singular values, non-increasing.
    pub sigma: Vec<f64>,
    /// Singular vectors kept (at most `sigma.len()`).
    pub kept: usize,
    /// The first `kept` left singular vectors as columns: row-major `[rows, kept]`.
    pub u: Vec<f64>,
    /// The first `kept` right singular vectors as rows: row-major `[kept, cols]`.
    pub vt: Vec<f64>,
}

/// The e-graph type used throughout eqopt.
pub type TEGraph = EGraph<TNode, TensorAnalysis>;

impl TensorAnalysis {
    /// An analysis over `graph`'s inputs and constants.
    pub fn for_graph(graph: &Graph) -> Self {
        TensorAnalysis {
            inputs: graph.inputs.iter().map(|i| (i.name.clone(), i.ty.clone())).collect(),
            constants: graph.constants.iter().map(|c| (c.name.clone(), c.clone())).collect(),
            conflicts: Vec::new(),
            current_rule: None,
            memo: BTreeMap::new(),
            cache: BTreeMap::new(),
            values: BTreeMap::new(),
            computed: BTreeSet::new(),
            svds: BTreeMap::new(),
        }
    }

    /// The data of constant `name` (materialized once and cached).
    pub fn constant_data(&mut self, name: &str) -> Option<Arc<crate::graph::tensor::Tensor>> {
        if let Some(t) = self.cache.get(name) {
            return Some(t.clone());
        }
        let c = self.constants.get(name)?;
        let t = c.init.materialize(&c.ty);
        self.cache.insert(name.to_string(), t.clone());
        Some(t)
    }

    /// The constant computed by `key` (a text naming the computation and its inputs):
    /// the existing one if `key` was seen, else `make()` added under a name derived from `base`.
    pub fn memo_constant(
        &mut self,
        key: &str,
        base: &str,
        make: impl FnOnce(&mut Self) -> Option<crate::graph::tensor::Tensor>,
    ) -> Option<String> {
        if let Some(name) = self.memo.get(key) {
            return Some(name.clone());
        }
        let t = make(self)?;
        let name = self.add_constant(base, t);
        self.memo.insert(key.to_string(), name.clone());
        Some(name)
    }

    /// Remembers `value` under `key` (for numbers derived with a memoized
    /// constant, such as the error of a rounded weight).
    pub fn remember_value(&mut self, key: &str, value: f64) {
        self.values.insert(key.to_string(), value);
    }

    /// The value remembered under `key`.
    pub fn remembered_value(&self, key: &str) -> Option<f64> {
        self.values.get(key).copied()
    }

    /// The SVD of constant `name`: computed by `make` on the first request and
    /// remembered, also when `make` gives `None` (later requests get `None`
    /// without calling `make` again).
    pub fn memo_svd(&mut self, name: &str, make: impl FnOnce(&mut Self) -> Option<Svd>) -> Option<Arc<Svd>> {
        if let Some(svd) = self.svds.get(name) {
            return svd.clone();
        }
        let svd = make(self).map(Arc::new);
        self.svds.insert(name.to_string(), svd.clone());
        svd
    }

    /// True if constant `name` was added by a rule rather than read from the graph.
    pub fn is_computed(&self, name: &str) -> bool {
        self.computed.contains(name)
    }

    /// Adds a computed constant under a fresh name derived from `base`; returns the name used.
    pub fn add_constant(&mut self, base: &str, tensor: crate::graph::tensor::Tensor) -> String {
        let mut name = base.to_string();
        let mut k = 1;
        while self.constants.contains_key(&name) || self.inputs.contains_key(&name) {
            k += 1;
            name = format!("{base}#{k}");
        }
        let ty = tensor.ty.clone();
        self.computed.insert(name.clone());
        self.constants.insert(
            name.clone(),
            Constant {
                name: name.clone(),
                ty,
                init: ConstInit::Data(Arc::new(tensor)),
            },
        );
        name
    }
}

/// Adds `(const NAME)` for a constant already in the table and returns its class.
pub fn add_const_node(egraph: &mut TEGraph, name: &str) -> Id {
    let leaf = egraph.add(TNode::attr(Attr::Sym(Symbol::from(name))));
    egraph.add(TNode {
        op: TOp::Const,
        children: vec![leaf],
    })
}

/// The facts for an e-node given its children's facts.
pub fn make_facts(analysis: &TensorAnalysis, enode: &TNode, child: &dyn Fn(Id) -> Facts) -> Facts {
    let name_of = |id: Id| match child(id) {
        Facts::Attr(Attr::Sym(s)) => Some(s.to_string()),
        _ => None,
    };
    match &enode.op {
        TOp::Attr(a) => Facts::Attr(a.clone()),
        TOp::Input => match enode.children.first().and_then(|&c| name_of(c)) {
            Some(n) => match analysis.inputs.get(&n) {
                Some(ty) => Facts::Tensor(TensorFacts {
                    ty: ty.clone(),
                    is_const: false,
                    value: None,
                }),
                None => Facts::Invalid(format!("no graph input named \"{n}\"")),
            },
            None => Facts::Invalid("input without a name".into()),
        },
        TOp::Const => match enode.children.first().and_then(|&c| name_of(c)) {
            Some(n) => match analysis.constants.get(&n) {
                Some(c) => Facts::Tensor(TensorFacts {
                    ty: c.ty.clone(),
                    is_const: true,
                    value: c.init.small_values(&c.ty, SMALL_CONST_ELEMENTS).map(Arc::from),
                }),
                None => Facts::Invalid(format!("no constant named \"{n}\"")),
            },
            None => Facts::Invalid("const without a name".into()),
        },
        op => {
            let attr_facts: Vec<Facts> = enode.attr_children().iter().map(|&c| child(c)).collect();
            let attrs: Option<Vec<&Attr>> = attr_facts.iter().map(Facts::attr).collect();
            let Some(decoded) = attrs.and_then(|a| decode_op(op, &a)) else {
                return Facts::Invalid(format!("{} with ill-formed attributes", op.name()));
            };
            let input_facts: Vec<Facts> = enode.inputs().iter().map(|&c| child(c)).collect();
            let Some(tys) = input_facts.iter().map(Facts::ty).collect::<Option<Vec<&TensorType>>>() else {
                return Facts::Invalid(format!("{} with a non-tensor input", op.name()));
            };
            let (lo, hi) = decoded.arity();
            if tys.len() < lo || tys.len() > hi {
                return Facts::Invalid(format!("{} with {} inputs", op.name(), tys.len()));
            }
            match crate::graph::infer::infer(&decoded, &tys) {
                Ok(ty) => {
                    let is_const = input_facts.iter().all(|f| f.tensor().is_some_and(|t| t.is_const));
                    let value = if is_const && ty.numel() <= SMALL_CONST_ELEMENTS {
                        small_value(&decoded, &input_facts)
                    } else {
                        None
                    };
                    Facts::Tensor(TensorFacts { ty, is_const, value })
                }
                Err(e) => Facts::Invalid(format!("{}: expected {}, found {}", op.name(), e.expected, e.found)),
            }
        }
    }
}

/// The value of a small constant computed from small constant inputs, by the
/// reference interpreter.
fn small_value(op: &crate::graph::Op, inputs: &[Facts]) -> Option<Arc<[f64]>> {
    let tensors: Option<Vec<crate::graph::tensor::Tensor>> = inputs
        .iter()
        .map(|f| {
            let t = f.tensor()?;
            Some(crate::graph::tensor::Tensor::from_f64(t.ty.clone(), t.value.as_deref()?))
        })
        .collect();
    let tensors = tensors?;
    let refs: Vec<&crate::graph::tensor::Tensor> = tensors.iter().collect();
    crate::eval::eval_op(op, &refs).ok().map(|t| Arc::from(t.to_f64()))
}

impl Analysis<TNode> for TensorAnalysis {
    type Data = Facts;

    fn make(egraph: &mut TEGraph, enode: &TNode, _id: Id) -> Facts {
        let child = |id: Id| egraph[id].data.clone();
        make_facts(&egraph.analysis, enode, &child)
    }

    fn merge(&mut self, a: &mut Facts, b: Facts) -> DidMerge {
        match (&mut *a, b) {
            (Facts::Tensor(x), Facts::Tensor(y)) => {
                if x.ty != y.ty {
                    self.conflicts.push(Conflict {
                        rule: self.current_rule.map_or_else(|| "(congruence)".to_string(), |r| r.to_string()),
                        kept: x.ty.to_string(),
                        merged: format!("type {}", y.ty),
                    });
                    return DidMerge(false, true);
                }
                let mut changed_a = false;
                if !x.is_const && y.is_const {
                    x.is_const = true;
                    changed_a = true;
                }
                if x.value.is_none() && y.value.is_some() {
                    x.value = y.value.clone();
                    changed_a = true;
                }
                let changed_b = (x.is_const && !y.is_const) || (x.value.is_some() && y.value.is_none());
                DidMerge(changed_a, changed_b)
            }
            (Facts::Invalid(_), b @ Facts::Tensor(_)) => {
                *a = b;
                DidMerge(true, false)
            }
            (Facts::Tensor(_), Facts::Invalid(_)) => DidMerge(false, true),
            (Facts::Invalid(_), Facts::Invalid(_)) => DidMerge(false, false),
            (Facts::Attr(x), Facts::Attr(y)) if *x == y => DidMerge(false, false),
            (kept, merged) => {
                self.conflicts.push(Conflict {
                    rule: self.current_rule.map_or_else(|| "(congruence)".to_string(), |r| r.to_string()),
                    kept: describe(kept),
                    merged: describe(&merged),
                });
                DidMerge(false, true)
            }
        }
    }
}

fn describe(f: &Facts) -> String {
    match f {
        Facts::Attr(a) => format!("attribute {a}"),
        Facts::Tensor(t) => t.ty.to_string(),
        Facts::Invalid(why) => format!("invalid node ({why})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::json;

    #[test]
    fn small_constant_values_propagate_through_ops() {
        let text = r#"{"format": "eqopt-graph", "version": 1,
            "inputs": [{"name": "x", "shape": [3], "dtype": "f32"}], "outputs": ["y"],
            "constants": [{"name": "two", "shape": [], "dtype": "f32", "values": [2.0]},
                          {"name": "half", "shape": [], "dtype": "f32", "values": [0.5]}],
            "nodes": [{"name": "one", "op": "Mul", "inputs": ["two", "half"]},
                      {"name": "y", "op": "Mul", "inputs": ["x", "one"]}]}"#;
        let g = json::parse(text, "t.json".as_ref()).unwrap();
        let (eg, ids) = crate::saturate::graph_to_egraph(&g);
        let one = eg[ids["one"]].data.tensor().unwrap();
        assert!(one.is_const);
        assert_eq!(one.value.as_deref(), Some(&[1.0][..]));
        let y = eg[ids["y"]].data.tensor().unwrap();
        assert!(!y.is_const && y.value.is_none());
    }

    #[test]
    fn merging_different_types_records_a_conflict_naming_the_rule() {
        let mut a = TensorAnalysis {
            current_rule: Some(Symbol::from("test/rule")),
            ..Default::default()
        };
        let f = |shape: Vec<usize>| {
            Facts::Tensor(TensorFacts {
                ty: TensorType::new(shape, crate::dtype::DType::F32),
                is_const: false,
                value: None,
            })
        };
        let mut kept = f(vec![2, 3]);
        let flags = a.merge(&mut kept, f(vec![3, 2]));
        assert_eq!((flags.0, flags.1), (false, true));
        assert_eq!(a.conflicts.len(), 1);
        assert_eq!(a.conflicts[0].rule, "test/rule");
        let mut same = f(vec![2, 3]);
        let flags = a.merge(&mut same, f(vec![2, 3]));
        assert_eq!((flags.0, flags.1), (false, false));
    }
}
