//! Built-in appliers of the channels-last rules (`layout/*-nhwc`): an NCHW
//! convolution or pooling rewritten as its NHWC form between two transposes.
//!
//! Both take the matched (NCHW) op's parameters and produce
//! `transpose[0,3,1,2](op_nhwc(...))`; the transposes cancel against those of the
//! neighbouring ops once they too are in NHWC (`layout/transpose-cancel`), so a
//! region of convolutions pays for conversion only at its boundary. Convolution
//! weights are transposed OIHW → HWIO by a `transpose` of the constant, which is
//! folded at compile time.

use super::builtins::{add_attr, attr_of};
use crate::analysis::TEGraph;
use crate::graph::op::{Layout, NCHW_TO_NHWC, NHWC_TO_NCHW, OIHW_TO_HWIO};
use crate::lang::{Attr, TNode, TOp, conv_attr, conv_params, pool_attr, pool_params};
use egg::Id;

fn transpose(egraph: &mut TEGraph, perm: &[usize], x: Id) -> Id {
    let p = add_attr(egraph, Attr::Ints(perm.iter().map(|&a| a as i64).collect()));
    egraph.add(TNode {
        op: TOp::Transpose,
        children: vec![p, x],
    })
}

/// `(@conv-nhwc ?params ?x ?w [?b])`: the NCHW convolution `conv(params, x, w[, b])`
/// as `transpose[0,3,1,2](conv_nhwc(transpose[0,2,3,1](x), transpose[2,3,1,0](w)[, b]))`.
/// `None` for a convolution already in NHWC.
pub(super) fn conv_nhwc(egraph: &mut TEGraph, args: &[Id]) -> Option<Id> {
    let mut p = conv_params(&attr_of(egraph, args[0])?)?;
    if p.layout != Layout::Nchw {
        return None;
    }
    p.layout = Layout::Nhwc;
    let params = add_attr(egraph, conv_attr(&p));
    let x = transpose(egraph, &NCHW_TO_NHWC, args[1]);
    let w = transpose(egraph, &OIHW_TO_HWIO, args[2]);
    let mut children = vec![params, x, w];
    children.extend(args.get(3).copied());
    let conv = egraph.add(TNode { op: TOp::Conv, children });
    Some(transpose(egraph, &NHWC_TO_NCHW, conv))
}

/// `(@pool-nhwc ?params ?x)`, matched on `(POOL ?params (transpose [0,3,1,2] ?x))`:
/// the same pooling (each pool e-node of the matched class with these parameters)
/// applied to the NHWC tensor `x`, then transposed back to NCHW.
pub(super) fn pool_nhwc(egraph: &mut TEGraph, eclass: Id, args: &[Id]) -> Vec<Id> {
    let Some(mut p) = attr_of(egraph, args[0]).as_ref().and_then(pool_params) else {
        return Vec::new();
    };
    if p.layout != Layout::Nchw {
        return Vec::new();
    }
    let params_id = egraph.find(args[0]);
    let kinds: Vec<TOp> = egraph[eclass]
        .nodes
        .iter()
        .filter(|n| matches!(n.op, TOp::Pool(_)) && egraph.find(n.children[0]) == params_id)
        .map(|n| n.op.clone())
        .collect();
    p.layout = Layout::Nhwc;
    let params = add_attr(egraph, pool_attr(&p));
    let mut out = Vec::new();
    for op in kinds {
        let pooled = egraph.add(TNode {
            op,
            children: vec![params, args[1]],
        });
        out.push(transpose(egraph, &NHWC_TO_NCHW, pooled));
    }
    out
}

/// `(@binary-const-nhwc ?p ?a ?c)`, matched on `(OP (transpose ?p ?a) ?c)` with a
/// constant `?c`: the same binary op (each such e-node of the matched class) applied
/// to `?a` and the constant transposed the inverse way (first reshaped to the rank
/// of `?a`, broadcasting as before), then transposed by `?p`. Both the reshape and
/// the transpose of the constant fold at compile time, so a per-channel scale or
/// shift `[C,1,1]` becomes `[1,1,C]` next to an NHWC tensor.
pub(super) fn binary_const_nhwc(egraph: &mut TEGraph, eclass: Id, args: &[Id]) -> Vec<Id> {
    let (p_id, a, c) = (args[0], args[1], args[2]);
    let (Some(perm), Some(ta), Some(tc)) = (
        attr_of(egraph, p_id).and_then(|p| p.as_usizes()),
        egraph[a].data.ty().cloned(),
        egraph[c].data.ty().cloned(),
    ) else {
        return Vec::new();
    };
    let rank = ta.rank();
    if perm.len() != rank || tc.rank() > rank {
        return Vec::new();
    }
    let t_class = egraph.find(a);
    let c_class = egraph.find(c);
    let ops: Vec<TOp> = egraph[eclass]
        .nodes
        .iter()
        .filter(|n| {
            matches!(n.op, TOp::Binary(_))
                && egraph.find(n.children[1]) == c_class
                && egraph[n.children[0]].nodes.iter().any(|t| {
                    t.op == TOp::Transpose && egraph.find(t.children[1]) == t_class && egraph.find(t.children[0]) == egraph.find(p_id)
                })
        })
        .map(|n| n.op.clone())
        .collect();
    if ops.is_empty() {
        return Vec::new();
    }
    let mut shape = vec![1usize; rank - tc.rank()];
    shape.extend(&tc.shape);
    let shape_attr = add_attr(egraph, Attr::Ints(shape.iter().map(|&d| d as i64).collect()));
    let full = egraph.add(TNode {
        op: TOp::Reshape,
        children: vec![shape_attr, c],
    });
    let mut inverse = vec![0; rank];
    for (i, &pi) in perm.iter().enumerate() {
        inverse[pi] = i;
    }
    let c_t = transpose(egraph, &inverse, full);
    let mut out = Vec::new();
    for op in ops {
        let inner = egraph.add(TNode {
            op,
            children: vec![a, c_t],
        });
        out.push(transpose(egraph, &perm, inner));
    }
    out
}

#[cfg(test)]
mod tests {
    use crate::graph::op::{HWIO_TO_OIHW, NCHW_TO_NHWC, NHWC_TO_NCHW, OIHW_TO_HWIO};

    #[test]
    fn layout_permutations_are_inverse_pairs() {
        for (p, q) in [(NCHW_TO_NHWC, NHWC_TO_NCHW), (OIHW_TO_HWIO, HWIO_TO_OIHW)] {
            for i in 0..4 {
                assert_eq!(q[p[i]], i, "{p:?} then {q:?}");
            }
        }
        // OIHW [O, I, KH, KW] transposed by OIHW_TO_HWIO is [KH, KW, I, O].
        let oihw = ['O', 'I', 'H', 'W'];
        let hwio: Vec<char> = OIHW_TO_HWIO.iter().map(|&a| oihw[a]).collect();
        assert_eq!(hwio, ['H', 'W', 'I', 'O']);
    }
}
