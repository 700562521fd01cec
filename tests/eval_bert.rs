//! A BERT-base encoder layer (sequence 128) through the reference interpreter.
//! (About 1 s: the test profile builds with optimizations, see Cargo.toml.)

use eqopt::dtype::{DType, TensorType};
use eqopt::eval::{random_inputs, run};
use eqopt::graph::op::{BinaryOp, Op, UnaryOp};
use eqopt::graph::tensor::{ConstInit, Distribution};
use eqopt::graph::{Constant, Graph, Input, Node};
use std::time::Instant;

const S: usize = 128;
const H: usize = 768;
const HEADS: usize = 12;
const D: usize = 64;
const FF: usize = 3072;

fn ty(shape: &[usize]) -> TensorType {
    TensorType::new(shape.to_vec(), DType::F32)
}

fn bert_layer() -> Graph {
    let mut consts = Vec::new();
    let mut seed = 100;
    let mut weight = |name: &str, shape: &[usize]| {
        seed += 1;
        consts.push(Constant {
            name: name.into(),
            ty: ty(shape),
            init: ConstInit::Random {
                dist: Distribution::Normal { mean: 0.0, std: 0.02 },
                seed,
            },
        });
    };
    for p in ["q", "k", "v", "o"] {
        weight(&format!("w{p}"), &[H, H]);
        weight(&format!("b{p}"), &[H]);
    }
    weight("w1", &[H, FF]);
    weight("b1", &[FF]);
    weight("w2", &[FF, H]);
    weight("b2", &[H]);
    for (name, v) in [("ln_s", 1.0), ("ln_b", 0.0), ("scale", 0.125)] {
        let shape: &[usize] = if name == "scale" { &[] } else { &[H] };
        consts.push(Constant {
            name: name.into(),
            ty: ty(shape),
            init: ConstInit::Fill(v),
        });
    }
    let mut nodes = Vec::new();
    let mut add = |name: &str, op: Op, inputs: &[&str]| {
        nodes.push(Node {
            name: name.into(),
            op,
            inputs: inputs.iter().map(|s| s.to_string()).collect(),
            ty: ty(&[]),
        });
    };
    for p in ["q", "k", "v"] {
        add(&format!("{p}_mm"), Op::MatMul, &["x", &format!("w{p}")]);
        add(
            &format!("{p}_b"),
            Op::Binary(BinaryOp::Add),
            &[&format!("{p}_mm"), &format!("b{p}")],
        );
        add(
            &format!("{p}_r"),
            Op::Reshape {
                shape: vec![1, S, HEADS, D],
            },
            &[&format!("{p}_b")],
        );
    }
    add("q_t", Op::Transpose { perm: vec![0, 2, 1, 3] }, &["q_r"]);
    add("k_t", Op::Transpose { perm: vec![0, 2, 3, 1] }, &["k_r"]);
    add("v_t", Op::Transpose { perm: vec![0, 2, 1, 3] }, &["v_r"]);
    add("scores", Op::MatMul, &["q_t", "k_t"]);
    add("scaled", Op::Binary(BinaryOp::Mul), &["scores", "scale"]);
    add("probs", Op::Softmax { axis: 3 }, &["scaled"]);
    add("ctx", Op::MatMul, &["probs", "v_t"]);
    add("ctx_t", Op::Transpose { perm: vec![0, 2, 1, 3] }, &["ctx"]);
    add("ctx_r", Op::Reshape { shape: vec![1, S, H] }, &["ctx_t"]);
    add("o_mm", Op::MatMul, &["ctx_r", "wo"]);
    add("o_b", Op::Binary(BinaryOp::Add), &["o_mm", "bo"]);
    add("res1", Op::Binary(BinaryOp::Add), &["o_b", "x"]);
    add("h1", Op::LayerNorm { axis: 2, epsilon: 1e-12 }, &["res1", "ln_s", "ln_b"]);
    add("f1", Op::MatMul, &["h1", "w1"]);
    add("f1_b", Op::Binary(BinaryOp::Add), &["f1", "b1"]);
    add("g", Op::Unary(UnaryOp::Gelu), &["f1_b"]);
    add("f2", Op::MatMul, &["g", "w2"]);
    add("f2_b", Op::Binary(BinaryOp::Add), &["f2", "b2"]);
    add("res2", Op::Binary(BinaryOp::Add), &["f2_b", "h1"]);
    add("out", Op::LayerNorm { axis: 2, epsilon: 1e-12 }, &["res2", "ln_s", "ln_b"]);
    let inputs = vec![Input {
        name: "x".into(),
        ty: ty(&[1, S, H]),
    }];
    Graph::new("bert_layer", inputs, consts, nodes, vec!["out".into()]).unwrap()
}

#[test]
fn bert_base_layer_seq128() {
    let g = bert_layer();
    let inputs = random_inputs(&g, 0);
    let start = Instant::now();
    let out = run(&g, &inputs).unwrap();
    let elapsed = start.elapsed();
    eprintln!("BERT-base layer, seq {S}: {elapsed:?}");
    let y = &out["out"];
    assert_eq!(y.ty, ty(&[1, S, H]));
    let v = y.to_f64();
    assert!(v.iter().all(|x| x.is_finite()));
    for row in v.chunks(H) {
        let mean = row.iter().sum::<f64>() / H as f64;
        let var = row.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / H as f64;
        assert!(mean.abs() < 1e-5 && (var - 1.0).abs() < 1e-4, "row mean {mean} var {var}");
    }
}
