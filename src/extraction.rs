//! From a saturated e-graph back to a graph: costing, extraction, rebuilding.
//!
//! Each e-node is costed by the roofline model ([`crate::cost`]); the e-graph is
//! handed to `eqopt-extract` as a generic costed e-graph, so the DAG cost of the
//! result counts a shared subterm once. The chosen e-nodes are rebuilt into a
//! [`Graph`] that keeps the original tensor names where a class still computes
//! an original tensor, and whose constant-only nodes are evaluated into constants.

use crate::analysis::{Facts, TEGraph};
use crate::cost::{HardwareProfile, as_stored, reads_stored_weights, work};
use crate::dtype::{DType, TensorType};
use crate::error::{Error, Result};
use crate::graph::op::{Op, UnaryOp};
use crate::graph::tensor::ConstInit;
use crate::graph::{Constant, Graph, Input, Node};
use crate::lang::{Attr, TNode, TOp, approx_error, decode_op};
use egg::Id;
use eqopt_extract::{ClassId, Cost, CostedEGraph, ExtractOptions, Extraction};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

/// The costed view of an e-graph, with the maps back to egg ids.
pub struct CostedView {
    /// The generic costed e-graph.
    pub costed: CostedEGraph,
    /// egg class of each costed class (by index).
    pub class_ids: Vec<Id>,
    /// egg e-node of each costed node (by index).
    pub nodes: Vec<TNode>,
    /// Costed class of each egg class.
    pub class_of: BTreeMap<Id, ClassId>,
}

/// Roofline time of one e-node, or `None` if it cannot be costed (invalid
/// children) or must not be chosen (an `(approx ERR x)` node).
pub fn enode_time(egraph: &TEGraph, n: &TNode, target: &HardwareProfile) -> Option<f64> {
    if matches!(n.op, TOp::Attr(_) | TOp::Input | TOp::Const) {
        return Some(0.0);
    }
    if n.op == TOp::Approx {
        // Never chosen by plain extraction: only the budgeted one prices the
        // error (`crate::budget`), so an e-graph holding approximate terms still
        // extracts to the exact function here.
        return None;
    }
    let attrs: Option<Vec<&Attr>> = n.attr_children().iter().map(|&c| egraph[c].data.attr()).collect();
    let op = decode_op(&n.op, &attrs?)?;
    let facts: Option<Vec<&crate::analysis::TensorFacts>> = n.inputs().iter().map(|&c| egraph[c].data.tensor()).collect();
    let facts = facts?;
    let mut owned: Vec<TensorType> = facts.iter().map(|f| f.ty.clone()).collect();
    if reads_stored_weights(&op) {
        if let (Some(w), Some(d)) = (owned.get_mut(1), n.inputs().get(1).and_then(|&c| widened_const(egraph, c))) {
            *w = as_stored(w, d);
        }
    }
    if rounding_cast(egraph, n) {
        return Some(0.0);
    }
    let tys: Vec<&TensorType> = owned.iter().collect();
    let consts: Vec<bool> = facts.iter().map(|f| f.is_const).collect();
    let out = crate::graph::infer::infer(&op, &facts.iter().map(|f| &f.ty).collect::<Vec<_>>()).ok()?;
    let mut w = work(&op, &tys, &consts, &out);
    if bf16_product(egraph, n) {
        w.dtype = DType::BF16;
    }
    Some(target.kernel_time(&w))
}

/// True for the casts of an activation rounded to bf16: `cast bf16` of a
/// non-constant f32 tensor, and `cast f32` of a non-constant bf16 tensor. They
/// cost nothing: the bf16-operand GEMMs they feed round while packing
/// ([`crate::cost::Bf16Products`]; a rounded value some other op reads costs
/// one elementwise kernel more than charged here).
fn rounding_cast(egraph: &TEGraph, n: &TNode) -> bool {
    let (Some(to), Some(&x)) = (n.children.first().and_then(|&c| egraph[c].data.attr()), n.inputs().first()) else {
        return false;
    };
    let Some(x) = egraph[x].data.tensor() else { return false };
    n.op == TOp::Cast
        && !x.is_const
        && matches!(
            (to, x.ty.dtype),
            (Attr::DType(DType::BF16), DType::F32) | (Attr::DType(DType::F32), DType::BF16)
        )
}

/// True when `n` is a product of an activation rounded to bf16 by a bf16
/// weight (widened by a cast): it runs on bf16 operands, at the `bf16` peak.
fn bf16_product(egraph: &TEGraph, n: &TNode) -> bool {
    if !matches!(n.op, TOp::MatMul | TOp::FusedMatMul) {
        return false;
    }
    let (Some(&a), Some(&b)) = (n.inputs().first(), n.inputs().get(1)) else {
        return false;
    };
    let rounded = egraph[a].nodes.iter().any(|c| {
        rounding_cast(egraph, c)
            && c.inputs()
                .first()
                .is_some_and(|&y| egraph[y].nodes.iter().any(|m| rounding_cast(egraph, m)))
    });
    rounded && egraph[b].nodes.iter().any(|c| widened_cast(egraph, c) == Some(DType::BF16))
}

/// The stored dtype of class `id` when it holds a cast to f32 of an `f16`/`bf16`
/// constant (a weight the kernels read at 2 bytes per element) or a
/// dequantization of an `i8`/`i4` constant (1 or ½ byte per element).
pub(crate) fn widened_const(egraph: &TEGraph, id: Id) -> Option<DType> {
    egraph[id].nodes.iter().find_map(|n| {
        let x = *n.inputs().first()?;
        match n.op {
            // Data movement of a widened weight is folded on the stored data
            // (`fold_constants`), so it is read at the stored precision too.
            TOp::Transpose => egraph[x].nodes.iter().find_map(|c| widened_cast(egraph, c)),
            _ => widened_cast(egraph, n).or_else(|| dequantized_const(egraph, n)),
        }
    })
}

/// The stored dtype if `n` is a dequantization of an `i8`/`i4` constant.
fn dequantized_const(egraph: &TEGraph, n: &TNode) -> Option<DType> {
    if n.op != TOp::Dequantize {
        return None;
    }
    let x = egraph[*n.inputs().first()?].data.tensor()?;
    (x.is_const && x.ty.dtype.is_quantized()).then_some(x.ty.dtype)
}

/// The stored dtype if `n` is a cast to f32 of an `f16`/`bf16` constant.
fn widened_cast(egraph: &TEGraph, n: &TNode) -> Option<DType> {
    let to = egraph[*n.children.first()?].data.attr()?;
    if n.op != TOp::Cast || *to != Attr::DType(DType::F32) {
        return None;
    }
    let x = egraph[*n.inputs().first()?].data.tensor()?;
    (x.is_const && x.ty.dtype.is_reduced_float()).then_some(x.ty.dtype)
}

/// The cost of one e-node for extraction, or `None` for "never choose it".
pub type NodeCost<'a> = &'a dyn Fn(&TEGraph, &TNode) -> Option<f64>;

/// Builds the costed e-graph of `egraph` with roots `roots` (classes sorted by id),
/// costing e-nodes by the roofline model on `target`.
pub fn costed_view(egraph: &TEGraph, roots: &[Id], target: &HardwareProfile) -> Result<CostedView> {
    costed_view_with(egraph, roots, &|eg, n| enode_time(eg, n, target))
}

/// Builds the costed e-graph of `egraph` with roots `roots`, costing e-nodes by `node_cost`.
pub fn costed_view_with(egraph: &TEGraph, roots: &[Id], node_cost: NodeCost<'_>) -> Result<CostedView> {
    let mut costed = CostedEGraph::new();
    let mut class_ids: Vec<Id> = egraph.classes().map(|c| c.id).collect();
    class_ids.sort_unstable();
    let mut class_of = BTreeMap::new();
    for &id in &class_ids {
        class_of.insert(id, costed.add_class(format!("{id}")));
    }
    let mut nodes = Vec::new();
    for &id in &class_ids {
        let invalid = matches!(egraph[id].data, Facts::Invalid(_));
        let mut members: Vec<&TNode> = egraph[id].nodes.iter().collect();
        members.sort();
        for n in members {
            let time = if invalid { None } else { node_cost(egraph, n) };
            let cost = match time {
                Some(t) => Cost::new(t)?,
                None => Cost::INFINITY,
            };
            let children = n.children.iter().map(|c| class_of[&egraph.find(*c)]).collect();
            costed.add_node(class_of[&id], n.op.name(), cost, children);
            nodes.push(n.clone());
        }
    }
    for r in roots {
        costed.add_root(class_of[&egraph.find(*r)]);
    }
    Ok(CostedView {
        costed,
        class_ids,
        nodes,
        class_of,
    })
}

/// Statistics of one extraction.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct ExtractStats {
    /// Extractor used.
    pub extractor: String,
    /// DAG cost of the chosen term (seconds on the target).
    pub dag_cost_s: f64,
    /// Wall time of extraction in seconds.
    pub time_s: f64,
    /// The e-node chosen for each node and constant of the rebuilt graph, by name
    /// (before constant folding); `optimize --explain` traces them to rules.
    #[serde(skip)]
    pub chosen: BTreeMap<String, TNode>,
    /// The approximate e-nodes (`(approx ERR x)`) in the chosen term: node name
    /// and declared relative error, by name. Empty unless approximate rules ran.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub approx: Vec<(String, f64)>,
}

impl ExtractStats {
    /// The estimated relative output error of the chosen term: the declared
    /// errors of its approximate nodes added in quadrature (independent
    /// perturbations, each passed to the output at unit gain, to first order).
    pub fn estimated_error(&self) -> f64 {
        // `+ 0.0`: the empty sum is -0.0, and an exact graph's error is 0.
        (self.approx.iter().map(|(_, e)| e * e).sum::<f64>() + 0.0).sqrt()
    }
}

/// Extracts the cheapest graph equal to `original` from a saturated e-graph.
pub fn extract_graph(
    original: &Graph,
    sat: &crate::saturate::Saturation,
    target: &HardwareProfile,
    extractor: &str,
    time_limit: Duration,
) -> Result<(Graph, ExtractStats)> {
    extract_graph_with(original, sat, &|eg, n| enode_time(eg, n, target), extractor, time_limit)
}

/// Extracts the graph of least total `node_cost` equal to `original` from a saturated e-graph.
pub fn extract_graph_with(
    original: &Graph,
    sat: &crate::saturate::Saturation,
    node_cost: NodeCost<'_>,
    extractor: &str,
    time_limit: Duration,
) -> Result<(Graph, ExtractStats)> {
    let start = std::time::Instant::now();
    let eg = &sat.egraph;
    let roots: Vec<Id> = original.outputs.iter().map(|o| eg.find(sat.classes[o])).collect();
    let view = costed_view_with(eg, &roots, node_cost)?;
    let ex = eqopt_extract::extractor_by_name(extractor)?;
    let extraction = ex.extract(&view.costed, &ExtractOptions::default().with_time_limit(time_limit))?;
    let dag = extraction.validate(&view.costed)?;
    if !dag.is_finite() {
        return Err(Error::BadExtraction {
            problem: "the cheapest term has infinite cost (an untypeable e-node was chosen)".into(),
        });
    }
    let (graph, chosen) = rebuild(original, sat, &view, &extraction)?;
    let graph = fold_constants(graph)?;
    let approx: Vec<_> = chosen
        .iter()
        .filter_map(|(name, n)| approx_error(n, |c| eg[c].data.attr().cloned()).map(|e| (name.clone(), e)))
        .collect();
    let time_s = start.elapsed().as_secs_f64();
    tracing::debug!(
        extractor = ex.name(),
        dag_cost_s = dag.value(),
        nodes = graph.nodes.len(),
        approx = approx.len(),
        seconds = time_s,
        "extracted"
    );
    Ok((
        graph,
        ExtractStats {
            extractor: ex.name().to_string(),
            dag_cost_s: dag.value(),
            time_s,
            chosen,
            approx,
        },
    ))
}

/// The chosen term as a graph, and the e-node chosen for each of its names.
fn rebuild(
    original: &Graph,
    sat: &crate::saturate::Saturation,
    view: &CostedView,
    ex: &Extraction,
) -> Result<(Graph, BTreeMap<String, TNode>)> {
    let eg = &sat.egraph;
    // Original tensor names by class: the first in input, constant, node order.
    let mut orig_name: BTreeMap<Id, String> = BTreeMap::new();
    let ordered = original
        .inputs
        .iter()
        .map(|i| &i.name)
        .chain(original.constants.iter().map(|c| &c.name))
        .chain(original.nodes.iter().map(|n| &n.name));
    for name in ordered {
        orig_name.entry(eg.find(sat.classes[name])).or_insert_with(|| name.clone());
    }
    let reserved: BTreeSet<String> = sat.classes.keys().cloned().chain(eg.analysis.constants.keys().cloned()).collect();
    let chosen = |id: Id| -> Result<&TNode> {
        let c = view.class_of[&eg.find(id)];
        let n = ex.choice(c).ok_or_else(|| Error::BadExtraction {
            problem: format!("class {id} has no chosen e-node"),
        })?;
        Ok(&view.nodes[n.index()])
    };
    let mut names: BTreeMap<Id, String> = BTreeMap::new();
    let mut used: BTreeSet<String> = BTreeSet::new();
    let mut nodes: Vec<Node> = Vec::new();
    let mut consts: Vec<String> = Vec::new();
    let mut fresh = 0usize;
    let mut chosen_by_name: BTreeMap<String, TNode> = BTreeMap::new();
    // Outputs first claim their own names for their classes.
    for o in &original.outputs {
        let id = eg.find(sat.classes[o]);
        if !names.contains_key(&id) && !matches!(chosen(id)?.op, TOp::Input | TOp::Const) && used.insert(o.clone()) {
            names.insert(id, o.clone());
        }
    }
    // Iterative post-order from the roots.
    let roots: Vec<Id> = original.outputs.iter().map(|o| eg.find(sat.classes[o])).collect();
    let mut done: BTreeSet<Id> = BTreeSet::new();
    let mut on_stack: BTreeSet<Id> = BTreeSet::new();
    for &root in &roots {
        let mut stack: Vec<(Id, bool)> = vec![(root, false)];
        while let Some((id, expanded)) = stack.pop() {
            let id = eg.find(id);
            if done.contains(&id) {
                continue;
            }
            let n = chosen(id)?;
            if !expanded {
                if !on_stack.insert(id) {
                    return Err(Error::BadExtraction {
                        problem: format!("cycle through class {id}"),
                    });
                }
                stack.push((id, true));
                for &c in n.inputs().iter().rev() {
                    if !done.contains(&eg.find(c)) {
                        stack.push((c, false));
                    }
                }
                continue;
            }
            on_stack.remove(&id);
            done.insert(id);
            let leaf_name = |n: &TNode| eg[n.children[0]].data.attr().and_then(Attr::as_sym).map(str::to_string);
            match n.op {
                TOp::Input => {
                    names.insert(
                        id,
                        leaf_name(n).ok_or_else(|| Error::BadExtraction {
                            problem: "unnamed input".into(),
                        })?,
                    );
                }
                TOp::Const => {
                    let name = leaf_name(n).ok_or_else(|| Error::BadExtraction {
                        problem: "unnamed constant".into(),
                    })?;
                    if !consts.contains(&name) {
                        consts.push(name.clone());
                        chosen_by_name.insert(name.clone(), n.clone());
                    }
                    names.insert(id, name);
                }
                _ => {
                    let attrs: Option<Vec<&Attr>> = n.attr_children().iter().map(|&c| eg[c].data.attr()).collect();
                    let op = attrs.and_then(|a| decode_op(&n.op, &a)).ok_or_else(|| Error::BadExtraction {
                        problem: format!("ill-formed {} e-node", n.op.name()),
                    })?;
                    let name = match names.get(&id) {
                        Some(nm) => nm.clone(),
                        None => {
                            let candidate = orig_name.get(&id).filter(|nm| !used.contains(*nm)).cloned();
                            let nm = candidate.unwrap_or_else(|| {
                                loop {
                                    fresh += 1;
                                    let c = format!("{}_{fresh}", n.op.name());
                                    if !reserved.contains(&c) && !used.contains(&c) {
                                        break c;
                                    }
                                }
                            });
                            used.insert(nm.clone());
                            names.insert(id, nm.clone());
                            nm
                        }
                    };
                    let inputs = n.inputs().iter().map(|c| names[&eg.find(*c)].clone()).collect();
                    let ty = eg[id].data.ty().cloned().ok_or_else(|| Error::BadExtraction {
                        problem: format!("class of {name} is not a tensor"),
                    })?;
                    chosen_by_name.insert(name.clone(), n.clone());
                    nodes.push(Node { name, op, inputs, ty });
                }
            }
        }
    }
    for (o, &root) in original.outputs.iter().zip(&roots) {
        if names[&root] != *o {
            let ty = eg[root].data.ty().cloned().expect("roots are tensors");
            nodes.push(Node {
                name: o.clone(),
                op: Op::Unary(UnaryOp::Identity),
                inputs: vec![names[&root].clone()],
                ty,
            });
        }
    }
    let inputs: Vec<Input> = original.inputs.clone();
    let constants: Vec<Constant> = consts.iter().map(|c| eg.analysis.constants[c].clone()).collect();
    let graph = Graph::new(original.name.clone(), inputs, constants, nodes, original.outputs.clone())
        .map_err(|e| Error::BadExtraction { problem: e.to_string() })?;
    Ok((graph, chosen_by_name))
}

/// The name of a folded constant: a convolution weight transposed to HWIO is
/// `W.hwio`, anything else keeps its node's name. `taken` holds every name in use.
fn folded_name(n: &crate::graph::Node, taken: &BTreeSet<String>) -> String {
    let base = match &n.op {
        crate::graph::op::Op::Transpose { perm } if perm[..] == crate::graph::op::OIHW_TO_HWIO[..] => format!("{}.hwio", n.inputs[0]),
        _ => return n.name.clone(),
    };
    let mut name = base.clone();
    let mut k = 2;
    while taken.contains(&name) {
        name = format!("{base}#{k}");
        k += 1;
    }
    name
}

/// Replaces every node whose inputs are all constants by a constant holding its
/// value (computed by the reference interpreter), named as the node was (weights
/// transposed for an NHWC convolution are named `W.hwio`).
///
/// One exception keeps reduced-precision weights reduced: a `Cast` to f32 of an
/// f16/bf16 constant (an exact widening) stays a node when something other than a
/// folded computation reads it, so the lowering can hand the 2-byte data to a GEMM
/// or convolution. Data movement applied to such a cast (`Transpose`, `Reshape`,
/// `Flatten`, `Identity`) is folded on the f16/bf16 data, under the cast: the new
/// constant is named `NAME.f16` (or `.bf16`) and the cast keeps the node's name.
/// Likewise a `DequantizeLinear` of an int8/int4 constant stays a node (the
/// lowering hands the quantized matrix to the GEMM); data movement applied to it
/// is folded to `f32`.
pub fn fold_constants(graph: Graph) -> Result<Graph> {
    let mut consts: BTreeMap<String, Constant> = graph.constants.iter().map(|c| (c.name.clone(), c.clone())).collect();
    let mut order: Vec<String> = graph.constants.iter().map(|c| c.name.clone()).collect();
    let mut nodes = Vec::new();
    let outputs: BTreeSet<&String> = graph.outputs.iter().collect();
    let mut taken: BTreeSet<String> = graph
        .inputs
        .iter()
        .map(|i| i.name.clone())
        .chain(graph.constants.iter().map(|c| c.name.clone()))
        .chain(graph.nodes.iter().map(|n| n.name.clone()))
        .collect();
    let mut renamed: BTreeMap<String, String> = BTreeMap::new();
    // Kept widening casts: node name -> the f16/bf16 constant it reads (empty for
    // a kept dequantization). Each also has its f32 value in `consts` (not in
    // `order`) for folding its other readers.
    let mut widened: BTreeMap<String, String> = BTreeMap::new();
    let eval = |name: &str, op: &Op, inputs: &[&Constant]| -> Result<crate::graph::tensor::Tensor> {
        let vals: Vec<Arc<crate::graph::tensor::Tensor>> = inputs.iter().map(|c| c.init.materialize(&c.ty)).collect();
        let refs: Vec<&crate::graph::tensor::Tensor> = vals.iter().map(|v| v.as_ref()).collect();
        crate::eval::eval_node(name, op, &refs).map_err(|e| Error::BadExtraction {
            problem: format!("constant folding: {e}"),
        })
    };
    let data_const = |name: &str, t: crate::graph::tensor::Tensor| Constant {
        name: name.to_string(),
        ty: t.ty.clone(),
        init: ConstInit::Data(Arc::new(t)),
    };
    for n in &graph.nodes {
        let mut n = n.clone();
        for i in &mut n.inputs {
            if let Some(new) = renamed.get(i) {
                *i = new.clone();
            }
        }
        let all_const = !n.inputs.is_empty() && n.inputs.iter().all(|i| consts.contains_key(i));
        if !all_const || outputs.contains(&n.name) {
            nodes.push(n);
            continue;
        }
        let low = |i: &str| consts[i].ty.dtype.is_reduced_float();
        let widening = matches!(n.op, Op::Cast { to: DType::F32 }) && !widened.contains_key(&n.inputs[0]) && low(&n.inputs[0]);
        let dequantizing = matches!(n.op, Op::Dequantize { .. }) && consts[&n.inputs[0]].ty.dtype.is_quantized();
        let moves = n.op.is_view() || matches!(n.op, Op::Transpose { .. });
        if dequantizing {
            // Kept like a widening cast, but data movement is not folded under it.
            let ins: Vec<&Constant> = n.inputs.iter().map(|i| &consts[i]).collect();
            let f32_value = eval(&n.name, &n.op, &ins)?;
            consts.insert(n.name.clone(), data_const(&n.name, f32_value));
            widened.insert(n.name.clone(), String::new());
            nodes.push(n);
            continue;
        }
        if widening {
            let f32_value = eval(&n.name, &n.op, &[&consts[&n.inputs[0]]])?;
            consts.insert(n.name.clone(), data_const(&n.name, f32_value));
            widened.insert(n.name.clone(), n.inputs[0].clone());
            nodes.push(n);
            continue;
        }
        let name = folded_name(&n, &taken);
        if name != n.name {
            taken.insert(name.clone());
            renamed.insert(n.name.clone(), name.clone());
        }
        if moves && let Some(src) = widened.get(&n.inputs[0]).filter(|s| !s.is_empty()).cloned() {
            // op(cast(c)) = cast(op(c)) for data movement: fold op on c's data.
            let moved = eval(&n.name, &n.op, &[&consts[&src]])?;
            let dtype = moved.ty.dtype;
            let mut low_name = format!("{name}.{}", dtype.name());
            let mut k = 2;
            while taken.contains(&low_name) {
                low_name = format!("{name}.{}#{k}", dtype.name());
                k += 1;
            }
            taken.insert(low_name.clone());
            consts.insert(low_name.clone(), data_const(&low_name, moved));
            order.push(low_name.clone());
            let cast = Node {
                name: name.clone(),
                op: Op::Cast { to: DType::F32 },
                inputs: vec![low_name.clone()],
                ty: n.ty.clone(),
            };
            let f32_value = eval(&name, &cast.op, &[&consts[&low_name]])?;
            consts.insert(name.clone(), data_const(&name, f32_value));
            widened.insert(name, low_name);
            nodes.push(cast);
            continue;
        }
        let ins: Vec<&Constant> = n.inputs.iter().map(|i| &consts[i]).collect();
        let t = eval(&n.name, &n.op, &ins)?;
        consts.insert(name.clone(), data_const(&name, t));
        order.push(name);
    }
    // Kept casts that only folded computations read are dropped.
    let read: BTreeSet<String> = nodes
        .iter()
        .filter(|n| !widened.contains_key(&n.name))
        .flat_map(|n| n.inputs.iter().cloned())
        .chain(graph.outputs.iter().cloned())
        .collect();
    nodes.retain(|n| !widened.contains_key(&n.name) || read.contains(&n.name));
    let used: BTreeSet<&String> = nodes.iter().flat_map(|n| n.inputs.iter()).chain(graph.outputs.iter()).collect();
    let constants: Vec<Constant> = order
        .iter()
        .filter(|c| used.contains(c) && !widened.contains_key(*c))
        .map(|c| consts[c].clone())
        .collect();
    Graph::new(graph.name.clone(), graph.inputs.clone(), constants, nodes, graph.outputs.clone())
}
