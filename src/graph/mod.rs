//! The graph IR: named inputs, constants, single-output nodes in topological order,
//! and named outputs. Loaded from and written to graph.json (see [`json`]).
//!
//! Invariants of a [`Graph`] built by [`Graph::new`] (and so by every loader):
//! names are unique across inputs, constants and nodes; every node's inputs are
//! defined earlier; every node's `ty` is what [`infer::infer`] gives for its op and
//! input types; every output names a defined tensor.

pub mod build;
pub mod infer;
pub mod json;
pub mod op;
pub mod tensor;

use crate::dtype::TensorType;
use crate::error::{Error, Result};
pub use op::Op;
use std::collections::BTreeMap;
use tensor::ConstInit;

/// A graph input: a tensor supplied by the caller.
#[derive(Clone, Debug, PartialEq)]
pub struct Input {
    /// Tensor name.
    pub name: String,
    /// Shape and dtype.
    pub ty: TensorType,
}

/// A constant tensor (weights, biases, small literals).
#[derive(Clone, Debug)]
pub struct Constant {
    /// Tensor name.
    pub name: String,
    /// Shape and dtype.
    pub ty: TensorType,
    /// Where the values come from.
    pub init: ConstInit,
}

/// One operator application with a single output tensor named like the node.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    /// Node name, also the name of its output tensor.
    pub name: String,
    /// The operator and its attributes.
    pub op: Op,
    /// Names of the input tensors, in the op's positional order.
    pub inputs: Vec<String>,
    /// Inferred output type.
    pub ty: TensorType,
}

/// What a tensor name refers to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValueRef {
    /// `inputs[i]`
    Input(usize),
    /// `constants[i]`
    Constant(usize),
    /// `nodes[i]`
    Node(usize),
}

/// A checked model graph.
#[derive(Clone, Debug)]
pub struct Graph {
    /// Graph name (free text).
    pub name: String,
    /// Caller-supplied tensors.
    pub inputs: Vec<Input>,
    /// Constant tensors.
    pub constants: Vec<Constant>,
    /// Nodes in topological order.
    pub nodes: Vec<Node>,
    /// Names of the output tensors.
    pub outputs: Vec<String>,
    index: BTreeMap<String, ValueRef>,
}

impl Graph {
    /// Builds a graph, checking names, order, arity and types of every node.
    ///
    /// Nodes may come in any order; they are sorted topologically (stable: among
    /// ready nodes the earliest given goes first). Each node's `ty` is recomputed.
    pub fn new(
        name: impl Into<String>,
        inputs: Vec<Input>,
        constants: Vec<Constant>,
        nodes: Vec<Node>,
        outputs: Vec<String>,
    ) -> Result<Graph> {
        let mut index: BTreeMap<String, ValueRef> = BTreeMap::new();
        let define = |name: &str, what: ValueRef, index: &mut BTreeMap<String, ValueRef>| {
            if let Some(prev) = index.get(name) {
                return Err(Error::DuplicateName {
                    name: name.to_string(),
                    first: describe(*prev),
                    second: describe(what),
                });
            }
            index.insert(name.to_string(), what);
            Ok(())
        };
        for (i, inp) in inputs.iter().enumerate() {
            define(&inp.name, ValueRef::Input(i), &mut index)?;
            check_size(&inp.name, &inp.ty)?;
        }
        for (i, c) in constants.iter().enumerate() {
            define(&c.name, ValueRef::Constant(i), &mut index)?;
            check_size(&c.name, &c.ty)?;
        }
        for (i, n) in nodes.iter().enumerate() {
            define(&n.name, ValueRef::Node(i), &mut index)?;
        }
        for n in &nodes {
            for inp in &n.inputs {
                if !index.contains_key(inp) {
                    return Err(Error::DanglingInput {
                        node: n.name.clone(),
                        input: inp.clone(),
                    });
                }
            }
        }
        let edges: Vec<(&str, &[String])> = nodes.iter().map(|n| (n.name.as_str(), n.inputs.as_slice())).collect();
        let order = topo_order(&edges, &index)?;
        let mut sorted: Vec<Node> = Vec::with_capacity(nodes.len());
        let mut slots: Vec<Option<Node>> = nodes.into_iter().map(Some).collect();
        for i in order {
            sorted.push(slots[i].take().expect("topological order visits each node once"));
        }
        let mut graph = Graph {
            name: name.into(),
            inputs,
            constants,
            nodes: Vec::new(),
            outputs,
            index,
        };
        for (i, n) in sorted.iter().enumerate() {
            graph.index.insert(n.name.clone(), ValueRef::Node(i));
        }
        for mut node in sorted {
            let tys: Vec<&TensorType> = node.inputs.iter().map(|n| graph.type_of_defined(n)).collect();
            node.ty = infer::infer_node(&node.name, &node.op, &tys)?;
            check_size(&node.name, &node.ty)?;
            graph.nodes.push(node);
        }
        for out in &graph.outputs {
            if !graph.index.contains_key(out) {
                return Err(Error::UnknownOutput { output: out.clone() });
            }
        }
        Ok(graph)
    }

    /// What a tensor name refers to, if defined.
    pub fn lookup(&self, name: &str) -> Option<ValueRef> {
        self.index.get(name).copied()
    }

    /// Type of a defined tensor, if defined.
    pub fn type_of(&self, name: &str) -> Option<&TensorType> {
        self.lookup(name).map(|r| self.type_of_ref(r))
    }

    fn type_of_defined(&self, name: &str) -> &TensorType {
        self.type_of(name).expect("names are checked before typing")
    }

    /// Type of a referenced tensor.
    pub fn type_of_ref(&self, r: ValueRef) -> &TensorType {
        match r {
            ValueRef::Input(i) => &self.inputs[i].ty,
            ValueRef::Constant(i) => &self.constants[i].ty,
            ValueRef::Node(i) => &self.nodes[i].ty,
        }
    }

    /// Number of uses of each tensor name by nodes and graph outputs.
    pub fn use_counts(&self) -> BTreeMap<&str, usize> {
        let mut uses: BTreeMap<&str, usize> = BTreeMap::new();
        for n in &self.nodes {
            for i in &n.inputs {
                *uses.entry(i.as_str()).or_default() += 1;
            }
        }
        for o in &self.outputs {
            *uses.entry(o.as_str()).or_default() += 1;
        }
        uses
    }
}

pub(crate) fn describe(r: ValueRef) -> String {
    match r {
        ValueRef::Input(i) => format!("inputs[{i}]"),
        ValueRef::Constant(i) => format!("constants[{i}]"),
        ValueRef::Node(i) => format!("nodes[{i}]"),
    }
}

pub(crate) fn check_size(name: &str, ty: &TensorType) -> Result<()> {
    if crate::dtype::checked_numel(&ty.shape, ty.dtype.size_bytes()).is_none() {
        return Err(Error::DimOverflow {
            what: format!("\"{name}\""),
            shape: crate::dtype::ShapeDisplay(&ty.shape).to_string(),
        });
    }
    Ok(())
}

/// Kahn's algorithm over `(name, inputs)` pairs whose names are in `index` as
/// [`ValueRef::Node`] positions into the slice; stable in the given order.
/// Reports a cycle by node names.
pub(crate) fn topo_order(nodes: &[(&str, &[String])], index: &BTreeMap<String, ValueRef>) -> Result<Vec<usize>> {
    let n = nodes.len();
    let mut indeg = vec![0usize; n];
    let mut users: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (i, node) in nodes.iter().enumerate() {
        for inp in node.1.iter() {
            if let Some(ValueRef::Node(j)) = index.get(inp) {
                indeg[i] += 1;
                users[*j].push(i);
            }
        }
    }
    let mut ready: std::collections::BTreeSet<usize> = (0..n).filter(|&i| indeg[i] == 0).collect();
    let mut order = Vec::with_capacity(n);
    while let Some(i) = ready.pop_first() {
        order.push(i);
        for &u in &users[i] {
            indeg[u] -= 1;
            if indeg[u] == 0 {
                ready.insert(u);
            }
        }
    }
    if order.len() == n {
        return Ok(order);
    }
    // Walk back along unresolved inputs from any blocked node until a node repeats.
    let blocked = (0..n).find(|&i| indeg[i] > 0).expect("some node is blocked");
    let mut path = vec![blocked];
    let mut cur = blocked;
    loop {
        let next = nodes[cur]
            .1
            .iter()
            .filter_map(|inp| match index.get(inp) {
                Some(ValueRef::Node(j)) if indeg[*j] > 0 => Some(*j),
                _ => None,
            })
            .next()
            .expect("a blocked node has a blocked input");
        if let Some(pos) = path.iter().position(|&p| p == next) {
            let mut cyc: Vec<String> = path[pos..].iter().rev().map(|&k| nodes[k].0.to_string()).collect();
            cyc.push(cyc[0].clone());
            return Err(Error::Cycle { nodes: cyc });
        }
        path.push(next);
        cur = next;
    }
}
