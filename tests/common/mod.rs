//! Shared helpers for the integration tests (included with `mod common;`).
#![allow(dead_code)]

pub mod approx;
pub mod bin;
pub mod ptxas;
pub mod python;

use eqopt::dtype::{DType, TensorType};
use eqopt::eval::{compare, random_inputs, run};
use eqopt::graph::Graph;
use eqopt::graph::op::Op;
use eqopt::graph::tensor::{ConstInit, Tensor};
use eqopt::graph::{Constant, Input, Node};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Graphs whose lowered CPU programs are snapshotted (`tests/cpu_program.rs`,
/// `snapshots/cpu_program__<stem>.snap`).
pub const CPU_PROGRAM_GRAPHS: &[&str] = &[
    "tests/graphs/fusion_gemm_bias_relu.json",
    "tests/graphs/fusion_layernorm_decomposed.json",
    "tests/graphs/layout_attention_heads.json",
    "tests/graphs/layout_nhwc_cnn.json",
    "examples/inception_block.json",
    "examples/mlp.json",
];

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Files with extension `ext` in `dir` (relative to the root), sorted.
pub fn corpus(dir: &str, ext: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(root().join(dir))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .collect();
    v.sort();
    v
}

/// Path relative to the root, with forward slashes (stable in snapshots).
pub fn rel(p: &Path) -> String {
    p.strip_prefix(root()).unwrap_or(p).to_string_lossy().replace('\\', "/")
}

/// Asserts that `optimized` computes what `original` computes on random inputs
/// (two seeds), within a tolerance suited to f32 with reassociated arithmetic.
pub fn assert_same_function(original: &Graph, optimized: &Graph) {
    for seed in [7, 1234] {
        let inputs = random_inputs(original, seed);
        let want = run(original, &inputs).expect("original evaluates");
        let got = run(optimized, &inputs).expect("optimized evaluates");
        assert_eq!(want.keys().collect::<Vec<_>>(), got.keys().collect::<Vec<_>>());
        for (name, w) in &want {
            let c = compare(&got[name], w);
            assert!(c.within(1e-4, 1e-3), "{}: output {name} differs: {c}", original.name);
        }
    }
}

/// `max |got − want| / max(max |want|, TINY)` over the elements.
///
/// A NaN against a NaN, or an infinity against the same infinity, counts as
/// equal; any other non-finite mismatch, or a shape mismatch, is infinite.
/// Dtypes are not compared (see [`output_error`]).
pub fn normwise_rel_error(got: &Tensor, want: &Tensor) -> f64 {
    if got.ty.shape != want.ty.shape {
        return f64::INFINITY;
    }
    let (g, w) = (got.to_f64(), want.to_f64());
    let mut max_diff: f64 = 0.0;
    let mut max_ref: f64 = 0.0;
    for (&a, &b) in g.iter().zip(&w) {
        if b.is_finite() {
            max_ref = max_ref.max(b.abs());
        }
        let same_special = (a.is_nan() && b.is_nan()) || (a.is_infinite() && a == b);
        if same_special {
            continue;
        }
        if !(a.is_finite() && b.is_finite()) {
            return f64::INFINITY;
        }
        max_diff = max_diff.max((a - b).abs());
    }
    max_diff / max_ref.max(1e-30)
}

/// The graph with every f32 tensor widened to f64 (constants keep their
/// f32-rounded values), a near-exact reference for diagnosing rounding error.
pub fn widen_to_f64(g: &Graph) -> Option<Graph> {
    let wide = |ty: &TensorType| TensorType::new(ty.shape.clone(), if ty.dtype == DType::F32 { DType::F64 } else { ty.dtype });
    let inputs = g
        .inputs
        .iter()
        .map(|i| Input {
            name: i.name.clone(),
            ty: wide(&i.ty),
        })
        .collect();
    let constants = g
        .constants
        .iter()
        .map(|c| Constant {
            name: c.name.clone(),
            ty: wide(&c.ty),
            init: ConstInit::Values(c.init.materialize(&c.ty).to_f64()),
        })
        .collect();
    let nodes = g
        .nodes
        .iter()
        .map(|n| Node {
            name: n.name.clone(),
            op: match &n.op {
                Op::Cast { to: DType::F32 } => Op::Cast { to: DType::F64 },
                op => op.clone(),
            },
            inputs: n.inputs.clone(),
            ty: wide(&n.ty),
        })
        .collect();
    Graph::new(g.name.clone(), inputs, constants, nodes, g.outputs.clone()).ok()
}

/// `inputs` widened like [`widen_to_f64`] (exactly: f32 values are f64 values).
pub fn widen_inputs(inputs: &BTreeMap<String, Tensor>) -> BTreeMap<String, Tensor> {
    inputs
        .iter()
        .map(|(k, t)| {
            let ty = TensorType::new(t.ty.shape.clone(), if t.ty.dtype == DType::F32 { DType::F64 } else { t.ty.dtype });
            (k.clone(), Tensor::from_f64(ty, &t.to_f64()))
        })
        .collect()
}

/// Import options an ONNX fixture of `tests/onnx/ok` needs: the symbolic-dim
/// fixture gets its static shape.
pub fn fixture_import_options(path: &Path) -> eqopt::onnx::ImportOptions {
    let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    if stem == "symbolic_batch" {
        eqopt::onnx::ImportOptions::default().input_shape("x", vec![2, 3, 4])
    } else {
        eqopt::onnx::ImportOptions::default()
    }
}

/// `dir/<stem>.<suffix>` for a fixture `dir/<stem>.onnx` (its `inputs.npz`, `expected.npz`).
pub fn fixture_file(path: &Path, suffix: &str) -> PathBuf {
    let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    path.with_file_name(format!("{stem}.{suffix}"))
}
