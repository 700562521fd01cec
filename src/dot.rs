//! Graphviz DOT of graphs and e-graphs (`eqopt dot`).
//!
//! [`graph_dot`] draws a [`Graph`]: one box per op labelled with its name, op and
//! output type; graph inputs, constants and outputs each in their own style. A
//! fused kernel (`FusedElementwise`, `FusedMatMul`, `FusedConv`,
//! `FusedAttention`) is drawn as a `subgraph cluster_N` holding the ops it fuses
//! (its expression expanded), so the kernels of an optimized graph show as boxes
//! around the work each one does. [`egraph_dot`] draws an e-graph: one cluster per
//! e-class, its e-nodes inside, an edge from each e-node to each input class.
//!
//! The output is a function of its arguments only: everything is written in graph
//! order (e-classes by id), never in hash order.

use crate::analysis::TEGraph;
use crate::ewexpr::EwExpr;
use crate::graph::Graph;
use crate::graph::op::Op;
use crate::lang::TNode;
use egg::Id;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

const FONT: &str = "Helvetica";
const INPUT_FILL: &str = "#cfe2f3";
const CONST_FILL: &str = "#eeeeee";
const OUTPUT_FILL: &str = "#d9ead3";
const KERNEL_FILL: &str = "#fff2cc";
const KERNEL_PEN: &str = "#b45f06";
const CHOSEN_FILL: &str = "#fce5cd";

/// `s` as the inside of a DOT double-quoted string (line breaks as `\n`).
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// The op name with the attributes that tell two ops of one kind apart
/// (`Transpose perm [0,2,1]`, `FusedMatMul epilogue relu(add(x0, x1))`).
pub fn op_label(op: &Op) -> String {
    let attrs = op_attrs(op);
    if attrs.is_empty() {
        op.name().to_string()
    } else {
        format!("{} {attrs}", op.name())
    }
}

/// The attributes of [`op_label`], without the op name (empty when none tell ops apart).
pub fn op_attrs(op: &Op) -> String {
    let ints = |v: &[usize]| format!("[{}]", v.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(","));
    let conv = |p: &crate::graph::op::ConvParams| {
        let mut s = format!("stride {}", ints(&p.strides));
        if p.pads.iter().any(|&x| x > 0) {
            s += &format!(" pad {}", ints(&p.pads));
        }
        if p.dilations != [1, 1] {
            s += &format!(" dilation {}", ints(&p.dilations));
        }
        if p.group > 1 {
            s += &format!(" group {}", p.group);
        }
        if p.layout != crate::graph::op::Layout::Nchw {
            s += &format!(" {}", p.layout.name());
        }
        s
    };
    match op {
        Op::Cast { to } => format!("to {to}"),
        Op::Conv(p) => conv(p),
        Op::FusedConv { params, epilogue } => format!("{} epilogue {epilogue}", conv(params)),
        Op::Pool(_, p) => format!("window {} stride {}", ints(&p.kernel), ints(&p.strides)),
        Op::Concat { axis } | Op::Flatten { axis } | Op::Gather { axis } | Op::Softmax { axis } | Op::LayerNorm { axis, .. } => {
            format!("axis {axis}")
        }
        Op::Reshape { shape } => format!("shape {}", ints(shape)),
        Op::Transpose { perm } => format!("perm {}", ints(perm)),
        Op::Slice { axes, starts, ends, .. } => format!("axes {} from {} to {}", ints(axes), ints(starts), ints(ends)),
        Op::Reduce { axes, .. } => format!("axes {}", ints(axes)),
        Op::FusedElementwise { expr } => format!("expr {expr}"),
        Op::FusedMatMul { epilogue } => format!("epilogue {epilogue}"),
        Op::FusedAttention { divide, layout } => {
            format!("{} by s, {}", if *divide { "divide" } else { "multiply" }, layout.name())
        }
        _ => String::new(),
    }
}

/// An operand of one op inside a fused kernel.
#[derive(Clone, Debug, PartialEq)]
pub enum KernelArg {
    /// Input `i` of the fused node.
    Input(usize),
    /// The result of op `j` of the kernel (an earlier one).
    Op(usize),
    /// A scalar literal of the expression.
    Lit(f64),
}

/// One op inside a fused kernel: its name and operands.
#[derive(Clone, Debug, PartialEq)]
pub struct KernelOp {
    /// Op name, as in graph.json (`MatMul`, `Add`, `Relu`, ...).
    pub name: String,
    /// Operands, in order.
    pub args: Vec<KernelArg>,
}

/// The ops a fused kernel performs, in an order where operands come first (the
/// last computes the kernel's output); `None` for an op that is not a fused kernel.
pub fn kernel_ops(op: &Op, inputs: usize) -> Option<Vec<KernelOp>> {
    let mut ops = Vec::new();
    let k = |name: &str, args: Vec<KernelArg>| KernelOp {
        name: name.to_string(),
        args,
    };
    match op {
        Op::FusedElementwise { expr } => expand(expr, &|i| KernelArg::Input(i), &mut ops),
        Op::FusedMatMul { epilogue } | Op::FusedConv { epilogue, .. } => {
            let head = if matches!(op, Op::FusedMatMul { .. }) { "MatMul" } else { "Conv" };
            ops.push(k(head, vec![KernelArg::Input(0), KernelArg::Input(1)]));
            expand(
                epilogue,
                &|i| if i == 0 { KernelArg::Op(0) } else { KernelArg::Input(i + 1) },
                &mut ops,
            );
        }
        Op::FusedAttention { divide, .. } => {
            ops.push(k("MatMul", vec![KernelArg::Input(0), KernelArg::Input(1)]));
            ops.push(k(if *divide { "Div" } else { "Mul" }, vec![KernelArg::Op(0), KernelArg::Input(3)]));
            if inputs > 4 {
                ops.push(k("Add", vec![KernelArg::Op(1), KernelArg::Input(4)]));
            }
            ops.push(k("Softmax", vec![KernelArg::Op(ops.len() - 1)]));
            ops.push(k("MatMul", vec![KernelArg::Op(ops.len() - 1), KernelArg::Input(2)]));
        }
        _ => return None,
    }
    Some(ops)
}

/// Appends the ops of `e` (operands first); its inputs `xi` become `input(i)`.
/// The last op pushed computes `e` (an `Identity` when `e` is a bare operand).
fn expand(e: &EwExpr, input: &dyn Fn(usize) -> KernelArg, ops: &mut Vec<KernelOp>) {
    fn arg(e: &EwExpr, input: &dyn Fn(usize) -> KernelArg, ops: &mut Vec<KernelOp>) -> KernelArg {
        match e {
            EwExpr::Input(i) => input(*i),
            EwExpr::Lit(v) => KernelArg::Lit(*v),
            EwExpr::Unary(u, a) => {
                let a = arg(a, input, ops);
                ops.push(KernelOp {
                    name: u.onnx_name().to_string(),
                    args: vec![a],
                });
                KernelArg::Op(ops.len() - 1)
            }
            EwExpr::Binary(b, x, y) => {
                let x = arg(x, input, ops);
                let y = arg(y, input, ops);
                ops.push(KernelOp {
                    name: b.onnx_name().to_string(),
                    args: vec![x, y],
                });
                KernelArg::Op(ops.len() - 1)
            }
        }
    }
    let root = arg(e, input, ops);
    if !matches!(root, KernelArg::Op(j) if j + 1 == ops.len()) {
        ops.push(KernelOp {
            name: "Identity".into(),
            args: vec![root],
        });
    }
}

/// What a fused kernel's input `i` is called inside it (`x1`, `q`, ...), for edge labels.
fn slot_name(op: &Op, i: usize) -> String {
    match op {
        Op::FusedElementwise { .. } => format!("x{i}"),
        Op::FusedMatMul { .. } | Op::FusedConv { .. } if i < 2 => String::new(),
        Op::FusedMatMul { .. } | Op::FusedConv { .. } => format!("x{}", i - 1),
        Op::FusedAttention { .. } => ["q", "kt", "v", "s", "mask"].get(i).copied().unwrap_or("").to_string(),
        _ => String::new(),
    }
}

/// The DOT text of `graph`, titled `title`. Fused kernels are clusters
/// (`subgraph cluster_N`, numbered in node order) of the ops they fuse; an edge
/// leaving a kernel names its tensor (`taillabel`), an edge entering one names
/// the kernel's operand it feeds (`headlabel`: `x1`, `mask`, ...).
pub fn graph_dot(graph: &Graph, title: &str) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "digraph \"{}\" {{", esc(&graph.name));
    let _ = writeln!(
        s,
        "  graph [label=\"{}\", labelloc=t, fontname=\"{FONT}\", rankdir=TB, compound=true];",
        esc(title)
    );
    let _ = writeln!(s, "  node [fontname=\"{FONT}\", fontsize=10, shape=box, style=rounded];");
    let _ = writeln!(s, "  edge [fontname=\"{FONT}\", fontsize=8];");
    let mut producers = Producers::default();
    for (k, i) in graph.inputs.iter().enumerate() {
        let id = format!("i{k}");
        let _ = writeln!(
            s,
            "  {id} [label=\"{}\\ninput {}\", shape=invhouse, style=filled, fillcolor=\"{INPUT_FILL}\"];",
            esc(&i.name),
            i.ty
        );
        producers.0.insert(&i.name, (id, false));
    }
    for (k, c) in graph.constants.iter().enumerate() {
        let id = format!("c{k}");
        let _ = writeln!(
            s,
            "  {id} [label=\"{}\\n{}\", shape=note, style=filled, fillcolor=\"{CONST_FILL}\", fontsize=8];",
            esc(&c.name),
            c.ty
        );
        producers.0.insert(&c.name, (id, false));
    }
    let mut edges: Vec<String> = Vec::new();
    let mut clusters = 0usize;
    for (k, n) in graph.nodes.iter().enumerate() {
        let id = format!("n{k}");
        let Some(ops) = kernel_ops(&n.op, n.inputs.len()) else {
            let _ = writeln!(s, "  {id} [label=\"{}\\n{}\\n{}\"];", esc(&n.name), esc(&op_label(&n.op)), n.ty);
            for i in &n.inputs {
                edges.push(producers.edge(i, &id, ""));
            }
            producers.0.insert(&n.name, (id, false));
            continue;
        };
        let _ = writeln!(s, "  subgraph cluster_{clusters} {{");
        clusters += 1;
        let _ = writeln!(
            s,
            "    label=\"{}\\n{}\"; style=\"rounded,filled\"; fillcolor=\"{KERNEL_FILL}\"; color=\"{KERNEL_PEN}\";",
            esc(&n.name),
            esc(&op_label(&n.op))
        );
        let last = ops.len() - 1;
        for (j, op) in ops.iter().enumerate() {
            let ty = if j == last { format!("\\n{}", n.ty) } else { String::new() };
            let _ = writeln!(s, "    {id}_{j} [label=\"{}{ty}\"];", esc(&op.name));
            for (a, arg) in op.args.iter().enumerate() {
                match arg {
                    KernelArg::Op(p) => edges.push(format!("  {id}_{p} -> {id}_{j};")),
                    KernelArg::Input(i) => {
                        if let Some(t) = n.inputs.get(*i) {
                            edges.push(producers.edge(t, &format!("{id}_{j}"), &slot_name(&n.op, *i)));
                        }
                    }
                    KernelArg::Lit(v) => {
                        let _ = writeln!(s, "    {id}_{j}_{a} [label=\"{v:?}\", shape=plaintext];");
                        edges.push(format!("  {id}_{j}_{a} -> {id}_{j};"));
                    }
                }
            }
        }
        let _ = writeln!(s, "  }}");
        producers.0.insert(&n.name, (format!("{id}_{last}"), true));
    }
    for (k, o) in graph.outputs.iter().enumerate() {
        let id = format!("o{k}");
        let _ = writeln!(
            s,
            "  {id} [label=\"{}\\noutput\", shape=house, style=filled, fillcolor=\"{OUTPUT_FILL}\"];",
            esc(o)
        );
        edges.push(producers.edge(o, &id, ""));
    }
    for e in edges {
        s += &e;
        s.push('\n');
    }
    s += "}\n";
    s
}

/// The DOT id of the statement producing each tensor, and whether it is the
/// last op of a fused kernel (whose out-edges then name the tensor).
#[derive(Default)]
struct Producers<'a>(BTreeMap<&'a str, (String, bool)>);

impl Producers<'_> {
    /// The edge statement from `tensor`'s producer to `to`; `slot` names the
    /// kernel operand it feeds (empty: none).
    fn edge(&self, tensor: &str, to: &str, slot: &str) -> String {
        let (from, fused) = self.0.get(tensor).cloned().unwrap_or_else(|| ("missing".into(), false));
        let mut attrs = Vec::new();
        if fused {
            attrs.push(format!("taillabel=\"{}\"", esc(tensor)));
        }
        if !slot.is_empty() {
            attrs.push(format!("headlabel=\"{}\"", esc(slot)));
        }
        if attrs.is_empty() {
            format!("  {from} -> {to};")
        } else {
            format!("  {from} -> {to} [{}];", attrs.join(", "))
        }
    }
}

/// How [`egraph_dot`] marks the e-graph.
#[derive(Clone, Debug, Default)]
pub struct EGraphMarks {
    /// Classes that compute the graph's outputs, with the output names.
    pub roots: BTreeMap<Id, Vec<String>>,
    /// The e-nodes extraction chose (canonical), drawn filled.
    pub chosen: BTreeSet<TNode>,
}

/// The DOT text of `egraph`: one cluster per tensor e-class (`cluster_cN`, N the
/// class id), its e-nodes inside, labelled by operator with their attribute leaves
/// spelled out (`transpose [1,0]`, `input x`); an edge from each e-node to a node
/// of each of its input classes (ending at the cluster's border). Attribute leaf
/// classes are folded into their users' labels rather than drawn.
pub fn egraph_dot(egraph: &TEGraph, title: &str, marks: &EGraphMarks) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "digraph \"e-graph\" {{");
    let _ = writeln!(
        s,
        "  graph [label=\"{}\", labelloc=t, fontname=\"{FONT}\", compound=true, rankdir=TB];",
        esc(title)
    );
    let _ = writeln!(s, "  node [fontname=\"{FONT}\", fontsize=10, shape=box, style=rounded];");
    let _ = writeln!(s, "  edge [fontname=\"{FONT}\", fontsize=8];");
    let mut ids: Vec<Id> = egraph.classes().map(|c| c.id).collect();
    ids.sort_unstable();
    let drawn: BTreeSet<Id> = ids.iter().copied().filter(|&id| egraph[id].data.attr().is_none()).collect();
    let mut edges = Vec::new();
    for &id in &drawn {
        let class = &egraph[id];
        let ty = class.data.ty().map_or_else(|| "invalid".to_string(), |t| t.to_string());
        let _ = writeln!(s, "  subgraph cluster_c{id} {{");
        let outputs = marks
            .roots
            .get(&id)
            .map_or_else(String::new, |o| format!("\\noutput {}", esc(&o.join(", "))));
        let pen = if marks.roots.contains_key(&id) { " penwidth=2;" } else { "" };
        let _ = writeln!(s, "    label=\"c{id}: {ty}{outputs}\"; style=rounded; color=\"#999999\";{pen}");
        let mut members: Vec<&TNode> = class.nodes.iter().collect();
        members.sort();
        for (j, n) in members.iter().enumerate() {
            let attrs: Vec<String> = n
                .attr_children()
                .iter()
                .map(|&c| egraph[c].data.attr().map_or_else(|| "?".to_string(), |a| a.to_string()))
                .collect();
            let mut label = n.op.name();
            for a in attrs {
                label.push(' ');
                label += &a;
            }
            let canonical = (*n).clone();
            let fill = if marks.chosen.contains(&canonical) {
                format!(", style=\"rounded,filled,bold\", fillcolor=\"{CHOSEN_FILL}\"")
            } else {
                String::new()
            };
            let _ = writeln!(s, "    c{id}_{j} [label=\"{}\"{fill}];", esc(&label));
            for &c in n.inputs() {
                let c = egraph.find(c);
                if c == id {
                    // A member of its own input class (`dropout(x)` equal to `x`): a loop.
                    edges.push(format!("  c{id}_{j} -> c{id}_{j};"));
                } else if drawn.contains(&c) {
                    edges.push(format!("  c{id}_{j} -> c{c}_0 [lhead=cluster_c{c}];"));
                }
            }
        }
        let _ = writeln!(s, "  }}");
    }
    for e in edges {
        s += &e;
        s.push('\n');
    }
    s += "}\n";
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::op::AttentionLayout;

    #[test]
    fn kernels_expand_to_their_ops_operands_first() {
        let expr = EwExpr::parse("relu(add(x0, mul(x1, 0.5)))").unwrap();
        let ops = kernel_ops(&Op::FusedMatMul { epilogue: expr }, 3).unwrap();
        let names: Vec<&str> = ops.iter().map(|o| o.name.as_str()).collect();
        assert_eq!(names, ["MatMul", "Mul", "Add", "Relu"]);
        assert_eq!(ops[1].args, [KernelArg::Input(2), KernelArg::Lit(0.5)]);
        assert_eq!(ops[2].args, [KernelArg::Op(0), KernelArg::Op(1)]);
        let attention = Op::FusedAttention {
            divide: true,
            layout: AttentionLayout::Bhsd,
        };
        let names: Vec<String> = kernel_ops(&attention, 5).unwrap().into_iter().map(|o| o.name).collect();
        assert_eq!(names, ["MatMul", "Div", "Add", "Softmax", "MatMul"]);
        assert_eq!(kernel_ops(&attention, 4).unwrap().len(), 4);
        let bare = kernel_ops(&Op::FusedElementwise { expr: EwExpr::Input(0) }, 1).unwrap();
        assert_eq!(bare[0].name, "Identity");
        assert!(kernel_ops(&Op::MatMul, 2).is_none());
    }

    #[test]
    fn labels_are_escaped() {
        assert_eq!(esc("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
