//! The built-in fusion rules (`@elementwise-chain`, `@gemm-epilogue`,
//! `@conv-epilogue`): fused kernels built from an elementwise consumer and its
//! producer, within the bounds of [`super::builtins::MAX_FUSED_OPS`],
//! [`super::builtins::MAX_FUSED_INPUTS`] and [`super::builtins::MAX_FUSED_PER_CLASS`].

use super::builtins::{FuseKind, MAX_FUSED_INPUTS, MAX_FUSED_OPS, MAX_FUSED_PER_CLASS, add_attr, attr_of, is_fused, ty_of};
use crate::analysis::{Facts, TEGraph};
use crate::ewexpr::EwExpr;
use crate::graph::op::{Layout, UnaryOp};
use crate::lang::{Attr, TNode, TOp, conv_params};
use egg::Id;

/// The elementwise expression an e-node computes over its inputs, if it is elementwise.
fn elementwise_expr(egraph: &TEGraph, n: &TNode) -> Option<EwExpr> {
    match &n.op {
        TOp::Unary(UnaryOp::Identity | UnaryOp::Dropout) => None,
        TOp::Unary(u) => Some(EwExpr::Unary(*u, Box::new(EwExpr::Input(0)))),
        TOp::Binary(b) => Some(EwExpr::Binary(*b, Box::new(EwExpr::Input(0)), Box::new(EwExpr::Input(1)))),
        TOp::FusedElementwise => EwExpr::parse(attr_of(egraph, n.children[0])?.as_sym()?).ok(),
        _ => None,
    }
}

/// A producer an epilogue can attach to: the anchor op, its anchor inputs and its
/// current epilogue with extra inputs (`x0` = anchor output, `x1..` = extras).
struct Producer {
    op: TOp,
    attrs: Vec<Id>,
    anchor_inputs: Vec<Id>,
    epilogue: EwExpr,
    extras: Vec<Id>,
}

fn producer(egraph: &mut TEGraph, n: &TNode, kind: FuseKind) -> Option<Producer> {
    let expr_at = |i: usize| attr_of(egraph, n.children[i]).and_then(|a| a.as_sym().and_then(|s| EwExpr::parse(s).ok()));
    match (kind, &n.op) {
        (FuseKind::Elementwise, _) => {
            let e = elementwise_expr(egraph, n)?;
            Some(Producer {
                op: TOp::FusedElementwise,
                attrs: vec![],
                anchor_inputs: vec![],
                epilogue: e,
                extras: n.inputs().to_vec(),
            })
        }
        (FuseKind::Gemm, TOp::MatMul) => Some(Producer {
            op: TOp::FusedMatMul,
            attrs: vec![],
            anchor_inputs: n.children.clone(),
            epilogue: EwExpr::Input(0),
            extras: vec![],
        }),
        (FuseKind::Gemm, TOp::FusedMatMul) => {
            let e = expr_at(0)?;
            Some(Producer {
                op: TOp::FusedMatMul,
                attrs: vec![],
                anchor_inputs: n.children[1..3].to_vec(),
                epilogue: e,
                extras: n.children[3..].to_vec(),
            })
        }
        (FuseKind::Conv, TOp::Conv) => {
            let params = n.children[0];
            let (x, w) = (n.children[1], n.children[2]);
            match n.children.get(3) {
                None => Some(Producer {
                    op: TOp::FusedConv,
                    attrs: vec![params],
                    anchor_inputs: vec![x, w],
                    epilogue: EwExpr::Input(0),
                    extras: vec![],
                }),
                Some(&b) => {
                    // The bias [O] broadcast along the channel axis: as [O,1,1] in NCHW,
                    // as itself in NHWC (channels last).
                    let rb = match conv_params(&attr_of(egraph, params)?)?.layout {
                        Layout::Nhwc => b,
                        Layout::Nchw => {
                            let o = ty_of(egraph, b)?.shape[0];
                            let shape = add_attr(egraph, Attr::Ints(vec![o as i64, 1, 1]));
                            egraph.add(TNode {
                                op: TOp::Reshape,
                                children: vec![shape, b],
                            })
                        }
                    };
                    let add = EwExpr::Binary(
                        crate::graph::op::BinaryOp::Add,
                        Box::new(EwExpr::Input(0)),
                        Box::new(EwExpr::Input(1)),
                    );
                    Some(Producer {
                        op: TOp::FusedConv,
                        attrs: vec![params],
                        anchor_inputs: vec![x, w],
                        epilogue: add,
                        extras: vec![rb],
                    })
                }
            }
        }
        (FuseKind::Conv, TOp::FusedConv) => {
            let e = expr_at(1)?;
            Some(Producer {
                op: TOp::FusedConv,
                attrs: vec![n.children[0]],
                anchor_inputs: n.children[2..4].to_vec(),
                epilogue: e,
                extras: n.children[4..].to_vec(),
            })
        }
        _ => None,
    }
}

fn index_of(list: &mut Vec<Id>, id: Id) -> usize {
    match list.iter().position(|&x| x == id) {
        Some(i) => i,
        None => {
            list.push(id);
            list.len() - 1
        }
    }
}

/// True if the class holds an elementwise consumer with a fusable producer input.
pub fn class_has_fusion(egraph: &TEGraph, eclass: Id, kind: FuseKind) -> bool {
    if egraph[eclass].nodes.iter().filter(|n| is_fused(n)).count() >= MAX_FUSED_PER_CLASS {
        return false;
    }
    egraph[eclass].nodes.iter().any(|n| {
        elementwise_expr(egraph, n).is_some()
            && n.inputs().iter().any(|&c| {
                c != eclass
                    && egraph[c].nodes.iter().any(|p| match kind {
                        FuseKind::Elementwise => elementwise_expr(egraph, p).is_some(),
                        FuseKind::Gemm => matches!(p.op, TOp::MatMul | TOp::FusedMatMul),
                        FuseKind::Conv => matches!(p.op, TOp::Conv | TOp::FusedConv),
                    })
            })
    })
}

/// Builds fused e-nodes for class `eclass` (consumer node × input × producer node)
/// within [`MAX_FUSED_OPS`] and [`MAX_FUSED_INPUTS`]; returns `(eclass, new)` pairs.
///
/// When there are more candidates than the class' remaining budget
/// ([`MAX_FUSED_PER_CLASS`]), those reading the fewest tensors win, then those with
/// the fewest operators: they are the ones that save memory traffic.
pub fn fuse_class(egraph: &mut TEGraph, eclass: Id, kind: FuseKind) -> Vec<(Id, Id)> {
    let target_ty = ty_of(egraph, eclass);
    let mut budget = MAX_FUSED_PER_CLASS.saturating_sub(egraph[eclass].nodes.iter().filter(|n| is_fused(n)).count());
    let consumers: Vec<TNode> = egraph[eclass].nodes.clone();
    let mut candidates: Vec<FusionCandidate> = Vec::new();
    for c in consumers {
        let Some(ce) = elementwise_expr(egraph, &c) else { continue };
        let cin: Vec<Id> = c.inputs().to_vec();
        for (j, &input) in cin.iter().enumerate() {
            if input == eclass {
                continue;
            }
            if kind != FuseKind::Elementwise && ty_of(egraph, input) != target_ty {
                continue;
            }
            let producers: Vec<TNode> = egraph[input].nodes.clone();
            for p in producers {
                // A producer reading its own class (x = f(x) after merges) would nest forever.
                if p.inputs().iter().any(|&c| egraph.find(c) == input) {
                    continue;
                }
                let Some(prod) = producer(egraph, &p, kind) else { continue };
                // Inputs of the new kernel: for epilogues slot 0 is the anchor output.
                let base = usize::from(kind != FuseKind::Elementwise);
                let mut extras: Vec<Id> = Vec::new();
                let pmap: Vec<usize> = prod.extras.iter().map(|&e| index_of(&mut extras, e)).collect();
                let cmap: Vec<usize> = cin.iter().map(|&e| index_of(&mut extras, e)).collect();
                let pexpr = prod.epilogue.remap_inputs(&|k| {
                    if base == 1 && k == 0 {
                        EwExpr::Input(0)
                    } else {
                        EwExpr::Input(pmap[k - base] + base)
                    }
                });
                let expr = ce.remap_inputs(&|i| if i == j { pexpr.clone() } else { EwExpr::Input(cmap[i] + base) });
                // The consumer input j itself is not read by the fused kernel unless used elsewhere.
                let used: Vec<usize> = (0..extras.len()).filter(|&k| expr_uses(&expr, k + base)).collect();
                let compact: Vec<Id> = used.iter().map(|&k| extras[k]).collect();
                let expr = expr.remap_inputs(&|i| {
                    if base == 1 && i == 0 {
                        EwExpr::Input(0)
                    } else {
                        EwExpr::Input(used.iter().position(|&k| k + base == i).map_or(i, |p| p + base))
                    }
                });
                if expr.num_ops() > MAX_FUSED_OPS || compact.len() + prod.anchor_inputs.len() > MAX_FUSED_INPUTS {
                    continue;
                }
                let mut tensors = prod.anchor_inputs.clone();
                tensors.extend(&compact);
                let reads = tensors.iter().collect::<std::collections::BTreeSet<_>>().len();
                candidates.push((reads, expr.num_ops(), expr.to_atom(), prod.op.clone(), prod.attrs.clone(), tensors));
            }
        }
    }
    candidates.sort();
    candidates.dedup();
    let mut out = Vec::new();
    for (_, _, atom, op, attrs, tensors) in candidates {
        if budget == 0 {
            break;
        }
        let leaf = add_attr(egraph, Attr::Sym(atom.into()));
        let mut children = attrs;
        children.push(leaf);
        children.extend(tensors);
        let new = egraph.add(TNode { op, children });
        if egraph.find(new) != egraph.find(eclass) && matches!(egraph[new].data, Facts::Tensor(_) | Facts::Invalid(_)) {
            budget -= 1;
            out.push((eclass, new));
        }
    }
    out
}

/// A fused e-node not yet added: (tensors read, operators, expression atom, op,
/// attribute children, tensor children). Sorting puts the cheapest-to-run first.
type FusionCandidate = (usize, usize, String, TOp, Vec<Id>, Vec<Id>);

fn expr_uses(e: &EwExpr, i: usize) -> bool {
    match e {
        EwExpr::Input(k) => *k == i,
        EwExpr::Lit(_) => false,
        EwExpr::Unary(_, a) => expr_uses(a, i),
        EwExpr::Binary(_, a, b) => expr_uses(a, i) || expr_uses(b, i),
    }
}
