//! Built-in appliers (`(@name ?args...)` on a right-hand side) and built-in rules
//! (`rule NAME = @name`): rewrites that compute something a pattern cannot, such
//! as a composed permutation, folded batch-norm weights, or a fused kernel's
//! expression.
//!
//! Contract: every builtin returns `(target, new)` pairs of e-classes to be
//! unified; the caller checks that their types agree before unifying, so a bug
//! here surfaces as an unsound-rule error, never as a silently wrong graph.

use crate::analysis::{TEGraph, add_const_node};
use crate::dtype::TensorType;
use crate::graph::op::{BinaryOp, ConvParams, Layout};
use crate::graph::tensor::Tensor;
use crate::lang::{Attr, TNode, TOp, conv_attr, conv_params};
use egg::Id;
use std::sync::Arc;

/// Fused kernels hold at most this many elementwise operators.
pub const MAX_FUSED_OPS: usize = 16;
/// Fused kernels read at most this many input tensors (epilogue extras included).
pub const MAX_FUSED_INPUTS: usize = 8;
/// A class holds at most this many fused e-nodes; fusion stops adding alternatives beyond.
pub const MAX_FUSED_PER_CLASS: usize = 16;

pub(super) fn is_fused(n: &TNode) -> bool {
    matches!(n.op, TOp::FusedElementwise | TOp::FusedMatMul | TOp::FusedConv)
}

/// A built-in applier's name, argument count and meaning.
pub struct BuiltinSpec {
    /// Name after `@`.
    pub name: &'static str,
    /// Accepted argument counts.
    pub arities: &'static [usize],
    /// What it builds.
    pub doc: &'static str,
}

/// Built-in appliers usable on right-hand sides.
pub const BUILTIN_APPLIERS: &[BuiltinSpec] = &[
    BuiltinSpec {
        name: "compose-transpose",
        arities: &[3],
        doc: "(@compose-transpose ?p ?q ?x): one transpose equal to (transpose ?p (transpose ?q ?x))",
    },
    BuiltinSpec {
        name: "fold-batchnorm",
        arities: &[8, 9],
        doc: "(@fold-batchnorm ?eps ?params ?x ?w [?bias] ?scale ?shift ?mean ?var): a conv with the batch norm folded into constant weights and bias",
    },
    BuiltinSpec {
        name: "grouped-convs",
        arities: &[5, 7],
        doc: "(@grouped-convs ?p ?x1 ?w1 [?b1] ?x2 ?w2 [?b2]): two one-group convolutions of same-shaped inputs, concatenated along channels, as one two-group convolution over the concatenated inputs with the constant weights (and biases) stacked",
    },
    BuiltinSpec {
        name: "batchnorm-affine",
        arities: &[6],
        doc: "(@batchnorm-affine ?eps ?x ?scale ?shift ?mean ?var): the batch norm as x·k + t with constants k and t computed at compile time",
    },
    BuiltinSpec {
        name: "softmax",
        arities: &[2],
        doc: "(@softmax ?axes ?x): softmax of ?x along the one axis of the reduction attribute ?axes",
    },
    BuiltinSpec {
        name: "layernorm",
        arities: &[5],
        doc: "(@layernorm ?axes ?eps ?x ?scale ?bias): layer normalization of ?x over its last axis, with the epsilon taken from the one-element constant ?eps",
    },
    BuiltinSpec {
        name: "merge-convs",
        arities: &[6, 8],
        doc: "(@merge-convs ?o1 ?o2 ?x ?params ?w1 [?b1] ?w2 [?b2]): one convolution of ?x with the constant weights (and biases) stacked along the output channels, sliced back into ?o1 and ?o2",
    },
    BuiltinSpec {
        name: "merge-convs-enlarge",
        arities: &[9],
        doc: "(@merge-convs-enlarge ?o1 ?o2 ?x ?p1 ?w1 ?b1 ?p2 ?w2 ?b2): a 1x1 convolution's constant weights zero-padded to the k x k kernel of a sibling convolution with 'same' padding and the same stride, then both merged as by @merge-convs",
    },
    BuiltinSpec {
        name: "join-slices",
        arities: &[7],
        doc: "(@join-slices ?axis ?axes ?s1 ?e1 ?s2 ?e2 ?x): the concatenation along ?axis of two adjacent unit-step slices of ?x along that axis, as one slice (or ?x itself when they cover it)",
    },
    BuiltinSpec {
        name: "conv-nhwc",
        arities: &[3, 4],
        doc: "(@conv-nhwc ?params ?x ?w [?b]): the NCHW convolution as an NHWC one (weights transposed to HWIO) between transposes of its input and output",
    },
    BuiltinSpec {
        name: "pool-nhwc",
        arities: &[2],
        doc: "(@pool-nhwc ?params ?x), matched on (POOL ?params (transpose [0,3,1,2] ?x)): the pooling of the NHWC tensor ?x, transposed back to NCHW",
    },
    BuiltinSpec {
        name: "binary-const-nhwc",
        arities: &[3],
        doc: "(@binary-const-nhwc ?p ?a ?c), matched on (OP (transpose ?p ?a) ?c) with ?c constant: (transpose ?p (OP ?a ?c')) where ?c' is ?c transposed the inverse way (folded at compile time)",
    },
    BuiltinSpec {
        name: "merge-matmuls",
        arities: &[5, 7],
        doc: "(@merge-matmuls ?o1 ?o2 ?x ?w1 ?w2 [?b1 ?b2]): one matmul of ?x with the concatenated constant weights (plus the concatenated bias vectors), sliced back into ?o1 and ?o2",
    },
];

/// Built-in whole rules (searcher and applier in Rust).
pub const BUILTIN_RULES: &[BuiltinSpec] = &[
    BuiltinSpec {
        name: "elementwise-chain",
        arities: &[0],
        doc: "an elementwise op (or fused kernel) whose input is produced by an elementwise op becomes one fused elementwise kernel",
    },
    BuiltinSpec {
        name: "gemm-epilogue",
        arities: &[0],
        doc: "an elementwise op on a matmul's product becomes that matmul's epilogue",
    },
    BuiltinSpec {
        name: "conv-epilogue",
        arities: &[0],
        doc: "an elementwise op on a convolution's output (bias included) becomes that conv's epilogue",
    },
    BuiltinSpec {
        name: "weights-f16",
        arities: &[0],
        doc: "approximate: a GEMM or convolution with an f32 constant weight of at least 1024 elements gets a variant reading the weight rounded to f16, wrapped in (approx ERR ...) with ERR the weight's relative rounding error",
    },
    BuiltinSpec {
        name: "weights-bf16",
        arities: &[0],
        doc: "approximate: as weights-f16, with the weight rounded to bfloat16",
    },
    BuiltinSpec {
        name: "weights-int8",
        arities: &[0],
        doc: "approximate: a matmul or fused_matmul with an f32 [k, n] constant weight of at least 1024 elements gets a variant reading it quantized to int8 with one scale per column, (dequantize 1 0 (const W.int8) (const W.int8.scale)), wrapped in (approx ERR ...) with ERR the weight's relative error",
    },
    BuiltinSpec {
        name: "weights-int4",
        arities: &[0],
        doc: "approximate: as weights-int8, quantized to int4 with one scale per 32 rows and column, (dequantize 0 32 ...)",
    },
    BuiltinSpec {
        name: "weights-int4-g64",
        arities: &[0],
        doc: "approximate: as weights-int4, with one scale per 64 rows and column",
    },
    BuiltinSpec {
        name: "lowrank",
        arities: &[0],
        doc: "approximate: a matmul or fused_matmul whose weight is an f32 [k, n] constant of the input graph with at least 1024 elements (and k·n·min(k, n) ≤ 2^32) gets, for up to three ranks r with r·(k+n) < k·n, the variant x·U·V with U·V the weight's rank-r truncated SVD, wrapped in (approx ERR ...) with ERR the truncation's relative Frobenius error; likewise a one-group NCHW 1x1 conv or fused_conv with such a weight [O, C, 1, 1] becomes a rank-r 1x1 conv (the original strides and pads) followed by a plain 1x1 conv",
    },
    BuiltinSpec {
        name: "gemm-bf16",
        arities: &[0],
        doc: "approximate: a matmul or fused_matmul with an f32 constant weight of at least 1024 elements and a non-constant f32 activation gets the variant whose activation is rounded to bfloat16 and whose weight is stored in bfloat16 (bf16 products, f32 sums), wrapped in (approx ERR ...) with ERR the two relative rounding errors added in quadrature",
    },
    BuiltinSpec {
        name: "prune-hidden",
        arities: &[0],
        doc: "approximate: a matmul or fused_matmul (OP ... (ACT (add (matmul x W1) b1)) W2 ...), ACT relu or gelu and W1, b1, W2 f32 constants of the input graph, gets for each fraction 1/8, 1/4, 1/2 the variant with that share of the hidden units of least saliency ‖W1 column, b1 entry‖·‖W2 row‖ removed from W1, b1 and W2, wrapped in (approx ERR ...) with ERR the removed share of the saliency (root of the sum of squares); likewise (OP P2 ... (ACT (conv P1 x W1 [b1])) W2 ...) for one-group NCHW convolutions, channels as units",
    },
];

/// A built-in whole rule (`rule NAME = @builtin`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WholeRule {
    /// A fusion rule.
    Fuse(FuseKind),
    /// An approximate rule storing weights in a lower precision.
    Weights(super::approx::WeightFormat),
    /// An approximate rule replacing GEMM weights by truncated SVDs.
    LowRank,
    /// An approximate rule computing matrix products on bf16 operands.
    Bf16Product,
    /// An approximate rule removing hidden units of two-layer perceptrons.
    Prune,
}

impl WholeRule {
    /// The built-in whole rule named `name`.
    pub fn by_name(name: &str) -> Option<WholeRule> {
        FuseKind::by_name(name)
            .map(WholeRule::Fuse)
            .or_else(|| super::approx::WeightFormat::by_rule_name(name).map(WholeRule::Weights))
            .or_else(|| (name == "lowrank").then_some(WholeRule::LowRank))
            .or_else(|| (name == "gemm-bf16").then_some(WholeRule::Bf16Product))
            .or_else(|| (name == "prune-hidden").then_some(WholeRule::Prune))
    }

    /// Whether the rule changes the computed function (within a declared error).
    pub fn is_approximate(self) -> bool {
        matches!(
            self,
            WholeRule::Weights(_) | WholeRule::LowRank | WholeRule::Bf16Product | WholeRule::Prune
        )
    }

    /// Whether class `eclass` holds something the rule would rewrite.
    pub fn matches_class(self, egraph: &TEGraph, eclass: Id) -> bool {
        match self {
            WholeRule::Fuse(kind) => super::fusion_builtins::class_has_fusion(egraph, eclass, kind),
            WholeRule::Weights(fmt) => super::approx::class_has_weights(egraph, eclass, fmt),
            WholeRule::LowRank => {
                super::lowrank::class_has_lowrank(egraph, eclass) || super::lowrank_conv::class_has_lowrank_conv(egraph, eclass)
            }
            WholeRule::Bf16Product => super::approx_compute::class_has_bf16_product(egraph, eclass),
            WholeRule::Prune => super::prune::class_has_prunable(egraph, eclass),
        }
    }

    /// Adds the rule's new e-nodes for class `eclass`; returns `(eclass, new)` pairs.
    pub fn apply_class(self, egraph: &mut TEGraph, eclass: Id) -> Vec<(Id, Id)> {
        match self {
            WholeRule::Fuse(kind) => super::fusion_builtins::fuse_class(egraph, eclass, kind),
            WholeRule::Weights(fmt) => super::approx::reduce_weights(egraph, eclass, fmt),
            WholeRule::LowRank => {
                let mut pairs = super::lowrank::lowrank_class(egraph, eclass);
                pairs.extend(super::lowrank_conv::lowrank_conv_class(egraph, eclass));
                pairs
            }
            WholeRule::Bf16Product => super::approx_compute::bf16_products(egraph, eclass),
            WholeRule::Prune => super::prune::prune_class(egraph, eclass),
        }
    }
}

/// Which built-in fusion rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FuseKind {
    /// `elementwise-chain`
    Elementwise,
    /// `gemm-epilogue`
    Gemm,
    /// `conv-epilogue`
    Conv,
}

impl FuseKind {
    /// The builtin named `name`.
    pub fn by_name(name: &str) -> Option<FuseKind> {
        match name {
            "elementwise-chain" => Some(FuseKind::Elementwise),
            "gemm-epilogue" => Some(FuseKind::Gemm),
            "conv-epilogue" => Some(FuseKind::Conv),
            _ => None,
        }
    }
}

pub(super) fn attr_of(egraph: &TEGraph, id: Id) -> Option<Attr> {
    egraph[id].data.attr().cloned()
}

pub(super) fn ty_of(egraph: &TEGraph, id: Id) -> Option<TensorType> {
    egraph[id].data.ty().cloned()
}

pub(super) fn add_attr(egraph: &mut TEGraph, a: Attr) -> Id {
    egraph.add(TNode::attr(a))
}

/// The name of a constant class: that of the first `(const NAME)` e-node in it.
pub fn const_name(egraph: &TEGraph, id: Id) -> Option<String> {
    let n = egraph[id].nodes.iter().find(|n| n.op == TOp::Const)?;
    Some(attr_of(egraph, n.children[0])?.as_sym()?.to_string())
}

/// The name and data of a constant class.
pub fn const_tensor(egraph: &mut TEGraph, id: Id) -> Option<(String, Arc<Tensor>)> {
    let name = const_name(egraph, id)?;
    let t = egraph.analysis.constant_data(&name)?;
    Some((name, t))
}

/// Runs built-in applier `name` on argument classes `args`; `eclass` is the matched class.
pub fn apply_builtin(name: &str, egraph: &mut TEGraph, eclass: Id, args: &[Id]) -> Vec<(Id, Id)> {
    match name {
        "compose-transpose" => compose_transpose(egraph, eclass, args).into_iter().collect(),
        "fold-batchnorm" => fold_batchnorm(egraph, eclass, args).into_iter().collect(),
        "merge-matmuls" => merge_matmuls(egraph, args).unwrap_or_default(),
        "merge-convs" => merge_convs(egraph, args, true).unwrap_or_default(),
        "merge-convs-enlarge" => merge_convs_enlarge(egraph, args).unwrap_or_default(),
        "join-slices" => join_slices(egraph, args).map(|n| (eclass, n)).into_iter().collect(),
        "layernorm" => layernorm(egraph, args).map(|n| (eclass, n)).into_iter().collect(),
        "softmax" => softmax(egraph, args).map(|n| (eclass, n)).into_iter().collect(),
        "grouped-convs" => grouped_convs(egraph, args).map(|n| (eclass, n)).into_iter().collect(),
        "batchnorm-affine" => batchnorm_affine(egraph, args).map(|n| (eclass, n)).into_iter().collect(),
        "conv-nhwc" => super::layout_builtins::conv_nhwc(egraph, args)
            .map(|n| (eclass, n))
            .into_iter()
            .collect(),
        "binary-const-nhwc" => super::layout_builtins::binary_const_nhwc(egraph, eclass, args)
            .into_iter()
            .map(|n| (eclass, n))
            .collect(),
        "pool-nhwc" => super::layout_builtins::pool_nhwc(egraph, eclass, args)
            .into_iter()
            .map(|n| (eclass, n))
            .collect(),
        _ => Vec::new(),
    }
}

fn compose_transpose(egraph: &mut TEGraph, eclass: Id, args: &[Id]) -> Option<(Id, Id)> {
    let p = attr_of(egraph, args[0])?.as_usizes()?;
    let q = attr_of(egraph, args[1])?.as_usizes()?;
    if p.len() != q.len() || p.iter().any(|&i| i >= q.len()) {
        return None;
    }
    let r: Vec<i64> = p.iter().map(|&i| q[i] as i64).collect();
    let perm = add_attr(egraph, Attr::Ints(r));
    let new = egraph.add(TNode {
        op: TOp::Transpose,
        children: vec![perm, args[2]],
    });
    Some((eclass, new))
}

/// conv(x, w, b) then batch norm: w' = w·s/√(v+ε) per output channel,
/// b' = (b − m)·s/√(v+ε) + β.
fn fold_batchnorm(egraph: &mut TEGraph, eclass: Id, args: &[Id]) -> Option<(Id, Id)> {
    let eps = attr_of(egraph, args[0])?.as_f64()?;
    let params: ConvParams = conv_params(&attr_of(egraph, args[1])?)?;
    if params.layout != Layout::Nchw {
        return None;
    }
    let x = args[2];
    let names: Vec<String> = args[3..].iter().map(|&c| const_name(egraph, c)).collect::<Option<_>>()?;
    let key = format!("fold-batchnorm {eps:?} {}", names.join(" "));
    let wname = names[0].clone();
    let mut folded: Option<(Tensor, Tensor)> = None;
    let wn = egraph.analysis.memo_constant(&key, &format!("{wname}.bnfold"), |a| {
        let data: Vec<Arc<Tensor>> = names.iter().map(|n| a.constant_data(n)).collect::<Option<_>>()?;
        folded = Some(fold_batchnorm_data(eps, &data)?);
        folded.as_ref().map(|f| f.0.clone())
    })?;
    let bn = egraph
        .analysis
        .memo_constant(&format!("{key} bias"), &format!("{wname}.bnfold_bias"), |_| folded.map(|f| f.1))?;
    let wid = add_const_node(egraph, &wn);
    let bid = add_const_node(egraph, &bn);
    let p = add_attr(egraph, conv_attr(&params));
    let new = egraph.add(TNode {
        op: TOp::Conv,
        children: vec![p, x, wid, bid],
    });
    Some((eclass, new))
}

/// `(@batchnorm-affine ?eps ?x ?scale ?shift ?mean ?var)`: inference batch norm of a
/// rank-`r` `x` as `x·k + t`, with `k = scale/√(var+ε)` and `t = shift − mean·k`
/// computed at compile time as constants of shape `[C, 1, ...]` (broadcasting along
/// axis 1). The two binary ops then fuse with their neighbours like any others.
fn batchnorm_affine(egraph: &mut TEGraph, args: &[Id]) -> Option<Id> {
    let eps = attr_of(egraph, args[0])?.as_f64()?;
    let x = args[1];
    let rank = ty_of(egraph, x)?.rank();
    let names: Vec<String> = args[2..].iter().map(|&c| const_name(egraph, c)).collect::<Option<_>>()?;
    let key = format!("batchnorm-affine {eps:?} {rank} {}", names.join(" "));
    let mut shift: Option<Tensor> = None;
    let kname = egraph.analysis.memo_constant(&key, &format!("{}.bn_scale", names[0]), |a| {
        let [s, b, m, v] = [0, 1, 2, 3].map(|i| a.constant_data(&names[i]).map(|t| t.to_f64()));
        let (s, b, m, v) = (s?, b?, m?, v?);
        let c = s.len();
        if [b.len(), m.len(), v.len()] != [c; 3] || rank < 2 {
            return None;
        }
        let k: Vec<f64> = (0..c).map(|i| s[i] / (v[i] + eps).sqrt()).collect();
        let t: Vec<f64> = (0..c).map(|i| b[i] - m[i] * k[i]).collect();
        let mut shape = vec![c];
        shape.resize(rank - 1, 1);
        let dtype = a.constant_data(&names[0])?.ty.dtype;
        shift = Some(Tensor::from_f64(TensorType::new(shape.clone(), dtype), &t));
        Some(Tensor::from_f64(TensorType::new(shape, dtype), &k))
    })?;
    let tname = egraph
        .analysis
        .memo_constant(&format!("{key} shift"), &format!("{}.bn_shift", names[0]), |_| shift)?;
    let (k, t) = (add_const_node(egraph, &kname), add_const_node(egraph, &tname));
    let scaled = egraph.add(TNode {
        op: TOp::Binary(BinaryOp::Mul),
        children: vec![x, k],
    });
    Some(egraph.add(TNode {
        op: TOp::Binary(BinaryOp::Add),
        children: vec![scaled, t],
    }))
}

/// `(@grouped-convs ?p ?x1 ?w1 [?b1] ?x2 ?w2 [?b2])`, matched on the channel
/// concatenation of two convolutions with equal parameters (one group) of
/// same-shaped inputs with same-shaped constant weights: one convolution with two
/// groups over the concatenated inputs, its weights (and biases) stacked (TASO's
/// grouped-conv merge). The input concatenation costs a copy unless the inputs
/// are adjacent slices of one tensor (`layout/concat-adjacent-slices`).
fn grouped_convs(egraph: &mut TEGraph, args: &[Id]) -> Option<Id> {
    let with_bias = args.len() == 7;
    let (params, x1, w1, x2, w2) = if with_bias {
        (args[0], args[1], args[2], args[4], args[5])
    } else {
        (args[0], args[1], args[2], args[3], args[4])
    };
    let mut p = conv_params(&attr_of(egraph, params)?)?;
    let (t1, t2) = (ty_of(egraph, w1)?, ty_of(egraph, w2)?);
    let (n1, n2) = (const_name(egraph, w1)?, const_name(egraph, w2)?);
    if p.group != 1 || p.layout != Layout::Nchw || t1 != t2 || t1.rank() != 4 || ty_of(egraph, x1)? != ty_of(egraph, x2)? {
        return None;
    }
    p.group = 2;
    let axis = add_attr(egraph, Attr::Int(1));
    let x = egraph.add(TNode {
        op: TOp::Concat,
        children: vec![axis, x1, x2],
    });
    let mut children = vec![add_attr(egraph, conv_attr(&p)), x, stack_axis0(egraph, &n1, &n2, &t1, &t2)?];
    if with_bias {
        let (b1, b2) = (args[3], args[6]);
        let (bn1, bn2) = (const_name(egraph, b1)?, const_name(egraph, b2)?);
        let (bt1, bt2) = (ty_of(egraph, b1)?, ty_of(egraph, b2)?);
        if bt1 != bt2 || bt1.shape != [t1.shape[0]] {
            return None;
        }
        children.push(stack_axis0(egraph, &bn1, &bn2, &bt1, &bt2)?);
    }
    let conv = egraph.add(TNode { op: TOp::Conv, children });
    ty_of(egraph, conv)?;
    Some(conv)
}

/// Folded weights and bias from `[w, (bias,) scale, shift, mean, var]`.
fn fold_batchnorm_data(eps: f64, data: &[Arc<Tensor>]) -> Option<(Tensor, Tensor)> {
    let w = &data[0];
    let (bias, rest) = if data.len() == 6 {
        (Some(data[1].to_f64()), &data[2..])
    } else {
        (None, &data[1..])
    };
    let [s, beta, m, v] = [0, 1, 2, 3].map(|i| rest[i].to_f64());
    let out_ch = *w.ty.shape.first()?;
    if [s.len(), beta.len(), m.len(), v.len()].iter().any(|&n| n != out_ch) || out_ch == 0 {
        return None;
    }
    let factor: Vec<f64> = (0..out_ch).map(|o| s[o] / (v[o] + eps).sqrt()).collect();
    let per = w.ty.numel() / out_ch;
    let new_w: Vec<f64> = w.to_f64().iter().enumerate().map(|(i, &x)| x * factor[i / per.max(1)]).collect();
    let b0 = bias.unwrap_or_else(|| vec![0.0; out_ch]);
    let new_b: Vec<f64> = (0..out_ch).map(|o| (b0[o] - m[o]) * factor[o] + beta[o]).collect();
    Some((
        Tensor::from_f64(w.ty.clone(), &new_w),
        Tensor::from_f64(TensorType::new(vec![out_ch], w.ty.dtype), &new_b),
    ))
}

fn merge_matmuls(egraph: &mut TEGraph, args: &[Id]) -> Option<Vec<(Id, Id)>> {
    let (o1, o2, x) = (args[0], args[1], args[2]);
    let (n1, n2) = (const_name(egraph, args[3])?, const_name(egraph, args[4])?);
    let (t1, t2) = (ty_of(egraph, args[3])?, ty_of(egraph, args[4])?);
    // Merged weights are named `a+b+...`; merging only sets whose parts are in
    // increasing order makes each union of weights appear once.
    let (p1, p2): (Vec<&str>, Vec<&str>) = (n1.split('+').collect(), n2.split('+').collect());
    let ordered = p1.iter().max() < p2.iter().min();
    if !ordered || t1.rank() != 2 || t2.rank() != 2 || t1.shape[0] != t2.shape[0] || t1.dtype != t2.dtype {
        return None;
    }
    let (k, a, b) = (t1.shape[0], t1.shape[1], t2.shape[1]);
    let merged_name = format!("{n1}+{n2}");
    let name = egraph
        .analysis
        .memo_constant(&format!("merge-matmuls {merged_name}"), &merged_name, |an| {
            let (v1, v2) = (an.constant_data(&n1)?.to_f64(), an.constant_data(&n2)?.to_f64());
            let mut merged = Vec::with_capacity(k * (a + b));
            for r in 0..k {
                merged.extend_from_slice(&v1[r * a..(r + 1) * a]);
                merged.extend_from_slice(&v2[r * b..(r + 1) * b]);
            }
            Some(Tensor::from_f64(TensorType::new(vec![k, a + b], t1.dtype), &merged))
        })?;
    let wid = add_const_node(egraph, &name);
    let mut mm = egraph.add(TNode {
        op: TOp::MatMul,
        children: vec![x, wid],
    });
    if args.len() == 7 {
        let (b1, b2) = (args[5], args[6]);
        let (bn1, bn2) = (const_name(egraph, b1)?, const_name(egraph, b2)?);
        let (bt1, bt2) = (ty_of(egraph, b1)?, ty_of(egraph, b2)?);
        if bt1.shape != [a] || bt2.shape != [b] || bt1.dtype != t1.dtype || bt2.dtype != t1.dtype {
            return None;
        }
        let bid = stack_axis0(egraph, &bn1, &bn2, &bt1, &bt2)?;
        mm = egraph.add(TNode {
            op: TOp::Binary(BinaryOp::Add),
            children: vec![mm, bid],
        });
    }
    let last = ty_of(egraph, mm)?.rank().checked_sub(1)?;
    let s1 = add_slice(egraph, mm, last, 0, a);
    let s2 = add_slice(egraph, mm, last, a, a + b);
    Some(vec![(o1, s1), (o2, s2)])
}

/// A softmax of `?x` along the single axis of a reduction's `?axes` attribute.
fn softmax(egraph: &mut TEGraph, args: &[Id]) -> Option<Id> {
    let [axis] = attr_of(egraph, args[0])?.as_usizes()?[..] else {
        return None;
    };
    let a = add_attr(egraph, Attr::Int(axis as i64));
    let s = egraph.add(TNode {
        op: TOp::Softmax,
        children: vec![a, args[1]],
    });
    ty_of(egraph, s)?;
    Some(s)
}

/// A layer normalization over the last axis of `?x` whose epsilon is the value of
/// the small constant `?eps` (a decomposed layer norm, recognized).
fn layernorm(egraph: &mut TEGraph, args: &[Id]) -> Option<Id> {
    let (axes, eps, x, g, b) = (args[0], args[1], args[2], args[3], args[4]);
    let rank = ty_of(egraph, x)?.rank();
    if rank == 0 || attr_of(egraph, axes)?.as_usizes()? != [rank - 1] {
        return None;
    }
    let eps = *egraph[eps].data.tensor()?.value.as_ref()?.first()?;
    let attrs = [Attr::Int(rank as i64 - 1), Attr::float(eps)].map(|a| add_attr(egraph, a));
    let ln = egraph.add(TNode {
        op: TOp::LayerNorm,
        children: vec![attrs[0], attrs[1], x, g, b],
    });
    ty_of(egraph, ln)?;
    Some(ln)
}

/// A 1×1 convolution (no padding) and a sibling k×k convolution with "same" padding
/// and the same stride compute on the same input grid: the 1×1 weights zero-padded
/// to k×k (centered) give the same output under the k×k parameters, and the two
/// then merge into one convolution (TASO's enlarge-and-merge; it trades FLOPs for
/// a launch and a concatenation, which extraction weighs).
fn merge_convs_enlarge(egraph: &mut TEGraph, args: &[Id]) -> Option<Vec<(Id, Id)>> {
    let (o1, o2, x, p1_id, w1, b1, p2_id, w2, b2) = (args[0], args[1], args[2], args[3], args[4], args[5], args[6], args[7], args[8]);
    let p1 = crate::lang::conv_params(&attr_of(egraph, p1_id)?)?;
    let p2 = crate::lang::conv_params(&attr_of(egraph, p2_id)?)?;
    let (t1, t2) = (ty_of(egraph, w1)?, ty_of(egraph, w2)?);
    let k = *t2.shape.get(2)?;
    let same_pad = (k - 1) / 2;
    let fits = t1.rank() == 4
        && t2.rank() == 4
        && t1.shape[2..] == [1, 1]
        && k > 1
        && k % 2 == 1
        && t2.shape[3] == k
        && t1.shape[1] == t2.shape[1]
        && p1.pads == [0; 4]
        && p2.pads == [same_pad; 4]
        && p1.strides == p2.strides
        && p1.dilations == [1, 1]
        && p2.dilations == [1, 1]
        && p1.group == 1
        && p2.group == 1
        && p1.layout == Layout::Nchw
        && p2.layout == Layout::Nchw;
    if !fits {
        return None;
    }
    let n1 = const_name(egraph, w1)?;
    let (o, c) = (t1.shape[0], t1.shape[1]);
    let padded_ty = TensorType::new(vec![o, c, k, k], t1.dtype);
    let base = format!("{n1}@{k}x{k}");
    let name = egraph.analysis.memo_constant(&format!("enlarge {base}"), &base, |an| {
        let v = an.constant_data(&n1)?.to_f64();
        let mut out = vec![0.0; o * c * k * k];
        for (i, &x) in v.iter().enumerate() {
            out[i * k * k + same_pad * k + same_pad] = x;
        }
        Some(Tensor::from_f64(padded_ty, &out))
    })?;
    let padded = add_const_node(egraph, &name);
    merge_convs(egraph, &[o1, o2, x, p2_id, padded, b1, w2, b2], false)
}

/// `concat(slice(x, [s1, e1)), slice(x, [e1, e2)))` along the sliced axis is one slice
/// `[s1, e2)` of `x`, or `x` itself when that covers the axis. The steps must be 1
/// (checked by the rule's shared step attribute and here).
fn join_slices(egraph: &mut TEGraph, args: &[Id]) -> Option<Id> {
    let one = |egraph: &TEGraph, id: Id| -> Option<usize> {
        match attr_of(egraph, id)?.as_usizes()?[..] {
            [v] => Some(v),
            _ => None,
        }
    };
    let axis = attr_of(egraph, args[0])?.as_f64()? as usize;
    let (slice_axis, s1, e1, s2, e2) = (
        one(egraph, args[1])?,
        one(egraph, args[2])?,
        one(egraph, args[3])?,
        one(egraph, args[4])?,
        one(egraph, args[5])?,
    );
    let x = args[6];
    let dim = *ty_of(egraph, x)?.shape.get(axis)?;
    if slice_axis != axis || e1 != s2 || s1 > e1 || e2 < s2 {
        return None;
    }
    if s1 == 0 && e2 == dim {
        return Some(x);
    }
    let s = add_slice(egraph, x, axis, s1, e2);
    ty_of(egraph, s)?;
    Some(s)
}

/// Constants stacked along axis 0 (row-major: the flat buffers one after the other).
fn stack_axis0(egraph: &mut TEGraph, n1: &str, n2: &str, t1: &TensorType, t2: &TensorType) -> Option<Id> {
    let merged_name = format!("{n1}+{n2}");
    let mut shape = t1.shape.clone();
    *shape.first_mut()? += t2.shape[0];
    let dtype = t1.dtype;
    let name = egraph.analysis.memo_constant(&format!("stack {merged_name}"), &merged_name, |an| {
        let mut v = an.constant_data(n1)?.to_f64();
        v.extend(an.constant_data(n2)?.to_f64());
        Some(Tensor::from_f64(TensorType::new(shape, dtype), &v))
    })?;
    Some(add_const_node(egraph, &name))
}

/// Slices `[start, end)` of axis `axis` of class `x`.
fn add_slice(egraph: &mut TEGraph, x: Id, axis: usize, start: usize, end: usize) -> Id {
    let attrs = [vec![axis as i64], vec![start as i64], vec![end as i64], vec![1]].map(|v| add_attr(egraph, Attr::Ints(v)));
    egraph.add(TNode {
        op: TOp::Slice,
        children: vec![attrs[0], attrs[1], attrs[2], attrs[3], x],
    })
}

/// Two convolutions of one input with equal parameters and constant weights become
/// one convolution with the weights (and biases) stacked along the output channels,
/// and two channel slices (views for batch 1 in NCHW). Inception's sibling 1×1 convs.
/// `ordered` merges only weight sets whose names are in increasing order, so that
/// each union of weights appears once whatever order the pairs are matched in.
fn merge_convs(egraph: &mut TEGraph, args: &[Id], ordered: bool) -> Option<Vec<(Id, Id)>> {
    let (o1, o2, x, params) = (args[0], args[1], args[2], args[3]);
    let with_bias = args.len() == 8;
    let (w1, w2) = if with_bias { (args[4], args[6]) } else { (args[4], args[5]) };
    let (n1, n2) = (const_name(egraph, w1)?, const_name(egraph, w2)?);
    let (t1, t2) = (ty_of(egraph, w1)?, ty_of(egraph, w2)?);
    let (p1, p2): (Vec<&str>, Vec<&str>) = (n1.split('+').collect(), n2.split('+').collect());
    let in_order = !ordered || p1.iter().max() < p2.iter().min();
    let p = crate::lang::conv_params(&attr_of(egraph, params)?)?;
    if !in_order || p.group != 1 || p.layout != Layout::Nchw || t1.rank() != 4 || t1.shape[1..] != t2.shape[1..] || t1.dtype != t2.dtype {
        return None;
    }
    let (c1, c2) = (t1.shape[0], t2.shape[0]);
    let wid = stack_axis0(egraph, &n1, &n2, &t1, &t2)?;
    let mut children = vec![params, x, wid];
    if with_bias {
        let (b1, b2) = (args[5], args[7]);
        let (bn1, bn2) = (const_name(egraph, b1)?, const_name(egraph, b2)?);
        let (bt1, bt2) = (ty_of(egraph, b1)?, ty_of(egraph, b2)?);
        if bt1.shape != [c1] || bt2.shape != [c2] || bt1.dtype != bt2.dtype {
            return None;
        }
        children.push(stack_axis0(egraph, &bn1, &bn2, &bt1, &bt2)?);
    }
    let conv = egraph.add(TNode { op: TOp::Conv, children });
    ty_of(egraph, conv)?;
    let s1 = add_slice(egraph, conv, 1, 0, c1);
    let s2 = add_slice(egraph, conv, 1, c1, c1 + c2);
    Some(vec![(o1, s1), (o2, s2)])
}
