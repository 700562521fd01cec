//! Graph-level tests of the reference interpreter (`eqopt::eval`).

use eqopt::dtype::{DType, TensorType};
use eqopt::eval::{EvalError, compare, eval_node, eval_op, random_inputs, run};
use eqopt::ewexpr::EwExpr;
use eqopt::graph::op::{BinaryOp, ConvParams, Layout, NCHW_TO_NHWC, NHWC_TO_NCHW, OIHW_TO_HWIO, Op, UnaryOp};
use eqopt::graph::tensor::{ConstInit, Distribution, Tensor, TensorData, random_values};
use eqopt::graph::{Constant, Graph, Input, Node};
use std::collections::BTreeMap;

fn ty(shape: &[usize], dtype: DType) -> TensorType {
    TensorType::new(shape.to_vec(), dtype)
}

fn input(name: &str, shape: &[usize], dtype: DType) -> Input {
    Input {
        name: name.into(),
        ty: ty(shape, dtype),
    }
}

fn constant(name: &str, shape: &[usize], dtype: DType, values: &[f64]) -> Constant {
    Constant {
        name: name.into(),
        ty: ty(shape, dtype),
        init: ConstInit::Values(values.to_vec()),
    }
}

fn node(name: &str, op: Op, inputs: &[&str]) -> Node {
    // `ty` is recomputed by `Graph::new`.
    Node {
        name: name.into(),
        op,
        inputs: inputs.iter().map(|s| s.to_string()).collect(),
        ty: ty(&[], DType::F32),
    }
}

fn graph(inputs: Vec<Input>, constants: Vec<Constant>, nodes: Vec<Node>, outputs: &[&str]) -> Graph {
    Graph::new("test", inputs, constants, nodes, outputs.iter().map(|s| s.to_string()).collect()).unwrap()
}

fn tensor(shape: &[usize], dtype: DType, values: &[f64]) -> Tensor {
    Tensor::from_f64(ty(shape, dtype), values)
}

fn feeds(pairs: &[(&str, Tensor)]) -> BTreeMap<String, Tensor> {
    pairs.iter().map(|(n, t)| (n.to_string(), t.clone())).collect()
}

fn expr(text: &str) -> EwExpr {
    EwExpr::parse(text).unwrap()
}

/// Runs both graphs on the same random inputs and asserts every output agrees.
#[track_caller]
fn assert_same_function(a: &Graph, b: &Graph, seed: u64, atol: f64, rtol: f64) {
    let inputs = random_inputs(a, seed);
    let ra = run(a, &inputs).unwrap();
    let rb = run(b, &inputs).unwrap();
    assert_eq!(ra.keys().collect::<Vec<_>>(), rb.keys().collect::<Vec<_>>());
    for (name, ta) in &ra {
        let c = compare(ta, &rb[name]);
        assert!(c.within(atol, rtol), "output {name}: {c}");
        assert!(
            ta.to_f64().iter().any(|v| *v != 0.0),
            "output {name} is all zeros: a vacuous comparison"
        );
    }
}

#[test]
fn small_mlp_by_hand() {
    let g = graph(
        vec![input("x", &[1, 2], DType::F64)],
        vec![
            constant("w", &[2, 3], DType::F64, &[1.0, -1.0, 0.5, 2.0, 1.0, -2.0]),
            constant("b", &[3], DType::F64, &[0.5, 0.0, -10.0]),
        ],
        vec![
            node("mm", Op::MatMul, &["x", "w"]),
            node("add", Op::Binary(BinaryOp::Add), &["mm", "b"]),
            node("y", Op::Unary(UnaryOp::Relu), &["add"]),
        ],
        &["y", "mm"],
    );
    let out = run(&g, &feeds(&[("x", tensor(&[1, 2], DType::F64, &[3.0, 1.0]))])).unwrap();
    // x·w = [3+2, -3+1, 1.5-2] = [5, -2, -0.5]; + b = [5.5, -2, -10.5]; relu -> [5.5, 0, 0]
    assert_eq!(out["mm"].to_f64(), vec![5.0, -2.0, -0.5]);
    assert_eq!(out["y"].to_f64(), vec![5.5, 0.0, 0.0]);
    assert_eq!(out["y"].ty, ty(&[1, 3], DType::F64));
}

#[test]
fn every_node_is_rounded_to_its_dtype() {
    // (1 + 1e-8) - 1 is 1e-8 in f64 but 0 in f32, since 1 + 1e-8 rounds to 1.
    let nodes = |d| {
        graph(
            vec![input("a", &[1], d)],
            vec![constant("eps", &[1], d, &[1e-8]), constant("one", &[1], d, &[1.0])],
            vec![
                node("s", Op::Binary(BinaryOp::Add), &["a", "eps"]),
                node("d", Op::Binary(BinaryOp::Sub), &["s", "one"]),
            ],
            &["d"],
        )
    };
    let r32 = run(&nodes(DType::F32), &feeds(&[("a", tensor(&[1], DType::F32, &[1.0]))])).unwrap();
    assert_eq!(r32["d"].to_f64(), vec![0.0]);
    let r64 = run(&nodes(DType::F64), &feeds(&[("a", tensor(&[1], DType::F64, &[1.0]))])).unwrap();
    assert!((r64["d"].to_f64()[0] - 1e-8).abs() < 1e-15);
    // f16: 1/3 rounds to 0.333251953125.
    let third = eval_op(&Op::Unary(UnaryOp::Reciprocal), &[&tensor(&[1], DType::F16, &[3.0])]).unwrap();
    assert_eq!(third.to_f64(), vec![0.333251953125]);
}

#[test]
fn cast_truncates_toward_zero_and_saturates() {
    let x = tensor(&[5], DType::F32, &[-1.7, 2.9, 1e20, -1e20, 0.4]);
    let out = eval_op(&Op::Cast { to: DType::I32 }, &[&x]).unwrap();
    assert_eq!(out.data, TensorData::I32(vec![-1, 2, i32::MAX, i32::MIN, 0]));
    let back = eval_op(&Op::Cast { to: DType::F16 }, &[&out]).unwrap();
    assert_eq!(back.to_f64()[..2], [-1.0, 2.0]);
    assert_eq!(back.to_f64()[2], f64::INFINITY); // i32::MAX overflows f16
}

#[test]
fn gather_embedding_with_negative_index() {
    let g = graph(
        vec![input("ids", &[2, 2], DType::I64)],
        vec![constant("table", &[3, 2], DType::F32, &[0.0, 1.0, 10.0, 11.0, 20.0, 21.0])],
        vec![node("emb", Op::Gather { axis: 0 }, &["table", "ids"])],
        &["emb"],
    );
    let ids = tensor(&[2, 2], DType::I64, &[2.0, -1.0, 0.0, -3.0]);
    let out = run(&g, &feeds(&[("ids", ids)])).unwrap();
    assert_eq!(out["emb"].ty, ty(&[2, 2, 2], DType::F32));
    assert_eq!(out["emb"].to_f64(), vec![20.0, 21.0, 20.0, 21.0, 0.0, 1.0, 0.0, 1.0]);
}

#[test]
fn gather_index_out_of_range_is_an_error_naming_node_index_and_bound() {
    let g = graph(
        vec![input("ids", &[2], DType::I32)],
        vec![constant("table", &[3, 2], DType::F32, &[0.0; 6])],
        vec![node("emb", Op::Gather { axis: 0 }, &["table", "ids"])],
        &["emb"],
    );
    let err = run(&g, &feeds(&[("ids", tensor(&[2], DType::I32, &[1.0, 3.0]))])).unwrap_err();
    assert_eq!(
        err,
        EvalError::IndexOutOfRange {
            node: "emb".into(),
            index: 3,
            axis: 0,
            bound: 3
        }
    );
    let msg = err.to_string();
    assert!(
        msg.contains("\"emb\"") && msg.contains("index 3") && msg.contains("size 3"),
        "{msg}"
    );
    let err = run(&g, &feeds(&[("ids", tensor(&[2], DType::I32, &[-4.0, 0.0]))])).unwrap_err();
    assert!(matches!(err, EvalError::IndexOutOfRange { index: -4, .. }), "{err}");
}

#[test]
fn missing_and_mistyped_inputs_are_errors() {
    let g = graph(
        vec![input("x", &[2, 3], DType::F32)],
        vec![],
        vec![node("y", Op::Unary(UnaryOp::Exp), &["x"])],
        &["y"],
    );
    let err = run(&g, &BTreeMap::new()).unwrap_err();
    assert_eq!(
        err,
        EvalError::MissingInput {
            input: "x".into(),
            expected: "f32[2, 3]".into()
        }
    );
    let err = run(&g, &feeds(&[("x", tensor(&[3, 2], DType::F32, &[0.0; 6]))])).unwrap_err();
    assert_eq!(
        err,
        EvalError::InputType {
            input: "x".into(),
            expected: "f32[2, 3]".into(),
            found: "f32[3, 2]".into()
        }
    );
    let err = run(&g, &feeds(&[("x", tensor(&[2, 3], DType::F64, &[0.0; 6]))])).unwrap_err();
    assert!(matches!(&err, EvalError::InputType { found, .. } if found == "f64[2, 3]"), "{err}");
    // Data that disagree with the tensor's own type.
    let bad = Tensor {
        ty: ty(&[2, 3], DType::F32),
        data: TensorData::F32(vec![0.0; 5]),
    };
    let err = run(&g, &feeds(&[("x", bad)])).unwrap_err();
    assert!(
        matches!(&err, EvalError::BadData { tensor, found, .. } if tensor == "x" && found == "5 elements of f32"),
        "{err}"
    );
}

#[test]
fn eval_op_reports_arity_and_type_errors_without_panicking() {
    let a = tensor(&[2, 3], DType::F32, &[0.0; 6]);
    let b = tensor(&[2, 3], DType::F32, &[0.0; 6]);
    let err = eval_op(&Op::MatMul, &[&a, &b]).unwrap_err();
    assert!(matches!(&err, EvalError::TypeMismatch { op, .. } if op == "MatMul"), "{err}");
    let err = eval_node("mm", &Op::MatMul, &[&a]).unwrap_err();
    assert_eq!(
        err,
        EvalError::Arity {
            node: "mm".into(),
            op: "MatMul".into(),
            expected: "2".into(),
            found: 1
        }
    );
    let err = eval_op(&Op::FusedElementwise { expr: expr("1.5") }, &[]).unwrap_err();
    assert!(matches!(err, EvalError::Arity { found: 0, .. }), "{err}");
    let idx = tensor(&[1], DType::F32, &[0.0]);
    let err = eval_op(&Op::Gather { axis: 0 }, &[&a, &idx]).unwrap_err();
    assert!(matches!(err, EvalError::TypeMismatch { .. }), "{err}");
    let c = tensor(&[1, 1, 2, 2], DType::F32, &[0.0; 4]);
    let w = tensor(&[1, 1, 3, 3], DType::F32, &[0.0; 9]);
    let err = eval_op(&Op::Conv(ConvParams::default()), &[&c, &w]).unwrap_err();
    assert!(matches!(err, EvalError::TypeMismatch { .. }), "{err}");
}

#[test]
fn fused_matmul_equals_matmul_add_relu() {
    let ins = || {
        vec![
            input("a", &[2, 5, 8], DType::F32),
            input("b", &[8, 6], DType::F32),
            input("c", &[6], DType::F32),
        ]
    };
    let unfused = graph(
        ins(),
        vec![],
        vec![
            node("mm", Op::MatMul, &["a", "b"]),
            node("add", Op::Binary(BinaryOp::Add), &["mm", "c"]),
            node("y", Op::Unary(UnaryOp::Relu), &["add"]),
        ],
        &["y"],
    );
    let fused = graph(
        ins(),
        vec![],
        vec![node(
            "y",
            Op::FusedMatMul {
                epilogue: expr("relu(add(x0, x1))"),
            },
            &["a", "b", "c"],
        )],
        &["y"],
    );
    assert_same_function(&unfused, &fused, 11, 1e-5, 1e-5);
}

#[test]
fn fused_conv_equals_conv_then_epilogue() {
    let p = ConvParams {
        strides: [2, 1],
        pads: [1, 1, 0, 1],
        dilations: [1, 2],
        group: 2,
        layout: Layout::Nchw,
    };
    let ins = || {
        vec![
            input("x", &[2, 4, 7, 6], DType::F64),
            input("w", &[6, 2, 3, 2], DType::F64),
            input("bias", &[6], DType::F64),
            input("res", &[6, 1, 1], DType::F64),
        ]
    };
    let unfused = graph(
        ins(),
        vec![],
        vec![
            node("conv", Op::Conv(p.clone()), &["x", "w", "bias"]),
            node("mul", Op::Binary(BinaryOp::Mul), &["conv", "res"]),
            node("y", Op::Unary(UnaryOp::Sigmoid), &["mul"]),
        ],
        &["y"],
    );
    let fused = graph(
        ins(),
        vec![constant("bias3", &[6, 1, 1], DType::F64, &[0.0; 6])],
        vec![
            node("b3", Op::Reshape { shape: vec![6, 1, 1] }, &["bias"]),
            node(
                "y",
                Op::FusedConv {
                    params: p,
                    epilogue: expr("sigmoid(mul(add(x0, x1), x2))"),
                },
                &["x", "w", "b3", "res"],
            ),
        ],
        &["y"],
    );
    assert_same_function(&unfused, &fused, 3, 1e-12, 1e-12);
}

#[test]
fn fused_elementwise_equals_its_composition_with_broadcasting() {
    let ins = || {
        vec![
            input("p", &[3, 1, 4], DType::F32),
            input("q", &[5, 1], DType::F32),
            input("r", &[], DType::F32),
        ]
    };
    let unfused = graph(
        ins(),
        vec![],
        vec![
            node("t", Op::Unary(UnaryOp::Tanh), &["p"]),
            node("m", Op::Binary(BinaryOp::Mul), &["t", "q"]),
            node("y", Op::Binary(BinaryOp::Sub), &["m", "r"]),
        ],
        &["y"],
    );
    let fused = graph(
        ins(),
        vec![],
        vec![node(
            "y",
            Op::FusedElementwise {
                expr: expr("sub(mul(tanh(x0), x1), x2)"),
            },
            &["p", "q", "r"],
        )],
        &["y"],
    );
    let out = run(&fused, &random_inputs(&fused, 5)).unwrap();
    assert_eq!(out["y"].ty, ty(&[3, 5, 4], DType::F32));
    assert_same_function(&unfused, &fused, 5, 1e-6, 1e-6);
}

#[test]
fn batchnorm_equals_its_elementwise_expansion() {
    let ins = || {
        vec![
            input("x", &[2, 3, 4], DType::F64),
            input("scale", &[3], DType::F64),
            input("bias", &[3], DType::F64),
            input("mean", &[3], DType::F64),
        ]
    };
    let var = constant("var", &[3], DType::F64, &[0.5, 1.0, 2.0]);
    let bn = graph(
        ins(),
        vec![var.clone()],
        vec![node("y", Op::BatchNorm { epsilon: 1e-3 }, &["x", "scale", "bias", "mean", "var"])],
        &["y"],
    );
    let col = |n: &str, src: &str| node(n, Op::Reshape { shape: vec![3, 1] }, &[src]);
    let expanded = graph(
        ins(),
        vec![var],
        vec![
            col("s", "scale"),
            col("b", "bias"),
            col("m", "mean"),
            col("v", "var"),
            node(
                "y",
                Op::FusedElementwise {
                    expr: expr("add(mul(div(sub(x0, x3), sqrt(add(x4, 0.001))), x1), x2)"),
                },
                &["x", "s", "b", "m", "v"],
            ),
        ],
        &["y"],
    );
    assert_same_function(&bn, &expanded, 9, 1e-12, 1e-12);
}

#[test]
fn reshape_transpose_round_trip_through_a_graph() {
    let g = graph(
        vec![input("x", &[2, 3, 4], DType::F32)],
        vec![],
        vec![
            node("t", Op::Transpose { perm: vec![2, 0, 1] }, &["x"]),
            node("f", Op::Flatten { axis: 1 }, &["t"]),
            node("r", Op::Reshape { shape: vec![4, 2, 3] }, &["f"]),
            node("y", Op::Transpose { perm: vec![1, 2, 0] }, &["r"]),
        ],
        &["y", "f"],
    );
    let inputs = random_inputs(&g, 1);
    let out = run(&g, &inputs).unwrap();
    assert_eq!(out["y"], inputs["x"]);
    assert_eq!(out["f"].ty, ty(&[4, 6], DType::F32));
    // f[k, i*3 + j] = x[i, j, k]
    let (x, f) = (inputs["x"].to_f64(), out["f"].to_f64());
    assert_eq!(f[3 * 6 + 5], x[(3 + 2) * 4 + 3]);
}

#[test]
fn random_inputs_are_deterministic_and_indices_fit_the_gather() {
    let g = graph(
        vec![
            input("x", &[3, 4], DType::F32),
            input("ids", &[64], DType::I64),
            input("other", &[64], DType::I32),
            input("ids2", &[8, 8], DType::I32),
        ],
        vec![
            constant("table", &[5, 4], DType::F32, &[0.0; 20]),
            constant("t2", &[4, 7], DType::F32, &[0.0; 28]),
        ],
        vec![
            node("e", Op::Gather { axis: 0 }, &["table", "ids"]),
            node("flat", Op::Reshape { shape: vec![64] }, &["ids2"]),
            node("e2", Op::Gather { axis: 1 }, &["t2", "flat"]),
            node("e3", Op::Gather { axis: 0 }, &["table", "flat"]),
        ],
        &["e", "e2", "e3", "other"],
    );
    let a = random_inputs(&g, 42);
    assert_eq!(a, random_inputs(&g, 42));
    assert_ne!(a["x"], random_inputs(&g, 43)["x"]);
    let want_x = random_values(&Distribution::Normal { mean: 0.0, std: 1.0 }, 42, 12);
    assert_eq!(a["x"], Tensor::from_f64(ty(&[3, 4], DType::F32), &want_x));
    let in_range = |name: &str, d: f64| a[name].to_f64().iter().all(|&v| v >= 0.0 && v < d && v.fract() == 0.0);
    assert!(in_range("ids", 5.0));
    assert!(in_range("ids2", 5.0), "min over both gathers (7 and 5)");
    assert!(in_range("other", 10.0));
    assert!(a["other"].to_f64().iter().any(|&v| v >= 5.0), "unbounded ints use [0, 10)");
    assert!(a["ids"].to_f64().contains(&4.0), "the whole range is used");
    run(&g, &a).unwrap();
}

#[test]
fn pooling_and_layernorm_through_eval_op() {
    use eqopt::graph::op::{PoolKind, PoolParams};
    let x = tensor(&[1, 1, 2, 2], DType::F32, &[1.0, 2.0, 3.0, 4.0]);
    let p = PoolParams {
        kernel: [2, 2],
        strides: [1, 1],
        pads: [1, 1, 0, 0],
        layout: Layout::Nchw,
    };
    let ex = eval_op(&Op::Pool(PoolKind::AvgExcludePad, p.clone()), &[&x]).unwrap();
    let inc = eval_op(&Op::Pool(PoolKind::AvgIncludePad, p.clone()), &[&x]).unwrap();
    let mx = eval_op(&Op::Pool(PoolKind::Max, p), &[&x]).unwrap();
    assert_eq!(ex.to_f64(), vec![1.0, 1.5, 2.0, 2.5]);
    assert_eq!(inc.to_f64(), vec![0.25, 0.75, 1.0, 2.5]);
    assert_eq!(mx.to_f64(), vec![1.0, 2.0, 3.0, 4.0]);
    let ln = eval_op(
        &Op::LayerNorm { axis: 1, epsilon: 0.0 },
        &[
            &tensor(&[2, 2], DType::F64, &[1.0, 3.0, -2.0, 2.0]),
            &tensor(&[2], DType::F64, &[1.0, 2.0]),
            &tensor(&[1], DType::F64, &[0.5]),
        ],
    )
    .unwrap();
    assert_eq!(ln.to_f64(), vec![-0.5, 2.5, -0.5, 2.5]);
}

#[test]
fn empty_tensors_evaluate_without_panicking() {
    use eqopt::graph::op::{PoolKind, PoolParams, ReduceKind};
    let empty = tensor(&[1, 1, 0, 0], DType::F32, &[]);
    let p = PoolParams {
        kernel: [2, 2],
        strides: [1, 1],
        pads: [1, 1, 1, 1],
        layout: Layout::Nchw,
    };
    // The 1x1 output window covers only padding: max is -inf, the averages 0/0 and 0/4.
    let mx = eval_op(&Op::Pool(PoolKind::Max, p.clone()), &[&empty]).unwrap();
    assert_eq!(mx.to_f64(), vec![f64::NEG_INFINITY]);
    let ex = eval_op(&Op::Pool(PoolKind::AvgExcludePad, p.clone()), &[&empty]).unwrap();
    assert!(ex.to_f64()[0].is_nan());
    let inc = eval_op(&Op::Pool(PoolKind::AvgIncludePad, p), &[&empty]).unwrap();
    assert_eq!(inc.to_f64(), vec![0.0]);
    let w = tensor(&[2, 1, 1, 1], DType::F32, &[1.0, 2.0]);
    let b = tensor(&[2], DType::F32, &[0.5, -0.5]);
    let conv = Op::Conv(ConvParams {
        pads: [1, 0, 0, 1],
        ..ConvParams::default()
    });
    let y = eval_op(&conv, &[&empty, &w, &b]).unwrap();
    assert_eq!(y.ty, ty(&[1, 2, 1, 1], DType::F32));
    assert_eq!(y.to_f64(), vec![0.5, -0.5]);
    let m = eval_op(&Op::MatMul, &[&tensor(&[2, 0], DType::F32, &[]), &tensor(&[0, 3], DType::F32, &[])]).unwrap();
    assert_eq!(m.to_f64(), vec![0.0; 6]);
    let sum = Op::Reduce {
        kind: ReduceKind::Sum,
        axes: vec![1],
        keepdims: true,
    };
    let r = eval_op(&sum, &[&tensor(&[3, 0], DType::F32, &[])]).unwrap();
    assert_eq!((r.ty.shape.clone(), r.to_f64()), (vec![3, 1], vec![0.0; 3]));
    let ln = Op::LayerNorm { axis: 1, epsilon: 1e-5 };
    let z = tensor(&[2, 0], DType::F32, &[]);
    let s = tensor(&[0], DType::F32, &[]);
    assert_eq!(eval_op(&ln, &[&z, &s, &s]).unwrap().ty, ty(&[2, 0], DType::F32));
}

/// An NHWC convolution (HWIO weights) and NHWC pooling compute the NCHW results,
/// permuted: checked on odd sizes with strides, asymmetric pads, dilation and groups.
#[test]
fn nhwc_conv_and_pool_equal_nchw_permuted() {
    use eqopt::graph::op::{PoolKind, PoolParams};
    let permute = |t: &Tensor, perm: &[usize]| eval_op(&Op::Transpose { perm: perm.to_vec() }, &[t]).unwrap();
    let x = tensor(
        &[2, 4, 7, 5],
        DType::F64,
        &(0..280).map(|i| ((i * 37 % 101) as f64 - 50.0) / 25.0).collect::<Vec<_>>(),
    );
    let w = tensor(
        &[6, 2, 3, 2],
        DType::F64,
        &(0..72).map(|i| ((i * 13 % 29) as f64 - 14.0) / 10.0).collect::<Vec<_>>(),
    );
    let b = tensor(&[6], DType::F64, &[0.5, -1.0, 0.25, 2.0, 0.0, -0.75]);
    let nchw = ConvParams {
        strides: [2, 1],
        pads: [1, 0, 2, 1],
        dilations: [1, 2],
        group: 2,
        layout: Layout::Nchw,
    };
    let nhwc = ConvParams {
        layout: Layout::Nhwc,
        ..nchw.clone()
    };
    let want = eval_op(&Op::Conv(nchw), &[&x, &w, &b]).unwrap();
    let (xt, wt) = (permute(&x, &NCHW_TO_NHWC), permute(&w, &OIHW_TO_HWIO));
    let got = eval_op(&Op::Conv(nhwc), &[&xt, &wt, &b]).unwrap();
    let c = compare(&permute(&got, &NHWC_TO_NCHW), &want);
    assert!(c.shape_equal && c.max_abs < 1e-12, "conv: {c:?}");
    for kind in [PoolKind::Max, PoolKind::AvgExcludePad, PoolKind::AvgIncludePad] {
        let p = PoolParams {
            kernel: [3, 2],
            strides: [2, 1],
            pads: [1, 0, 1, 1],
            layout: Layout::Nchw,
        };
        let want = eval_op(&Op::Pool(kind, p.clone()), &[&x]).unwrap();
        let p = PoolParams { layout: Layout::Nhwc, ..p };
        let got = eval_op(&Op::Pool(kind, p), &[&xt]).unwrap();
        let c = compare(&permute(&got, &NHWC_TO_NCHW), &want);
        assert!(c.shape_equal && c.max_abs < 1e-12, "{kind:?}: {c:?}");
    }
}
