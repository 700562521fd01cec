//! int8 and int4 GEMM weights (`DequantizeLinear` of constants, made by the
//! `quant/weights-int8`, `-int4` and `-int4-g64` approximate rules): the CPU
//! backend keeps them quantized and agrees with the reference interpreter, the
//! graph.json/safetensors and ONNX round trips keep them, ONNX Runtime runs the
//! export, malformed dequantizations are clear errors, and budgeted
//! optimization picks them when the budget allows.

mod common;

use common::approx::{check_cpu, constant, constant_elems, node};
use common::python::ort_check_with;
use eqopt::backend::CpuModel;
use eqopt::budget::CpuMeter;
use eqopt::cost::HardwareProfile;
use eqopt::dtype::{DType, TensorType};
use eqopt::eval::{compare, random_inputs, run};
use eqopt::ewexpr::EwExpr;
use eqopt::graph::op::{BinaryOp, Op, UnaryOp};
use eqopt::graph::tensor::{Distribution, Tensor, random_values};
use eqopt::graph::{Graph, Input, json};
use eqopt::optimize::{OptimizeOptions, optimize_measured, weight_bytes};
use eqopt::quant::{QuantFormat, quantize};
use eqopt::rules::RuleSet;
use eqopt_kir::ElemType;

fn normal(shape: &[usize], seed: u64) -> Tensor {
    let ty = TensorType::new(shape.to_vec(), DType::F32);
    let v = random_values(&Distribution::Normal { mean: 0.0, std: 0.5 }, seed, ty.numel());
    Tensor::from_f64(ty, &v)
}

/// `y = x · dequantize(W)` (with `fused`, `relu(x·Ŵ + b)` as one FusedMatMul)
/// for a random `W` `[k, n]` quantized to `format`; `x` is `x_shape`.
fn quantized_gemm(format: QuantFormat, x_shape: &[usize], n: usize, fused: bool) -> Graph {
    let k = *x_shape.last().unwrap();
    let q = quantize(&normal(&[k, n], 7), format).unwrap();
    let (axis, block_size) = format.dequantize_attrs();
    let mut constants = vec![constant("wq", q.values), constant("ws", q.scales)];
    let mut nodes = vec![node("w", Op::Dequantize { axis, block_size }, &["wq", "ws"])];
    if fused {
        constants.push(constant("b", normal(&[n], 8)));
        let epilogue = EwExpr::parse("relu(add(x0, x1))").unwrap();
        nodes.push(node("y", Op::FusedMatMul { epilogue }, &["x", "w", "b"]));
    } else {
        nodes.push(node("y", Op::MatMul, &["x", "w"]));
    }
    Graph::new(
        "quantized_gemm",
        vec![Input {
            name: "x".into(),
            ty: TensorType::new(x_shape.to_vec(), DType::F32),
        }],
        constants,
        nodes,
        vec!["y".into()],
    )
    .unwrap()
}

#[test]
fn quantized_gemms_stay_stored_and_run_like_the_reference() {
    let formats = [
        (QuantFormat::Int8, ElemType::I8),
        (QuantFormat::Int4 { group: 32 }, ElemType::I4),
        (QuantFormat::Int4 { group: 64 }, ElemType::I4),
    ];
    // GEMV, GEMM, batched, odd n and k not a multiple of the group.
    let shapes: [(&[usize], usize); 4] = [(&[1, 96], 48), (&[8, 96], 48), (&[2, 5, 96], 48), (&[3, 70], 47)];
    for (format, elem) in formats {
        for (x, n) in shapes {
            for fused in [false, true] {
                let label = format!("{format:?} x{x:?} n={n} fused={fused}");
                let g = quantized_gemm(format, x, n, fused);
                let model = check_cpu(&label, &g, 1e-5);
                let k = *x.last().unwrap();
                let (want_bytes, extra) = match format {
                    QuantFormat::Int8 => (k * n + 4 * n, 0),
                    QuantFormat::Int4 { group } => (k * n.div_ceil(2) + 4 * k.div_ceil(group) * n, 0),
                };
                let bias = if fused { 4 * n } else { 0 };
                let mut want_elems = vec![elem];
                if fused {
                    want_elems.push(ElemType::F32);
                }
                let mut elems = constant_elems(&model);
                elems.sort();
                want_elems.sort();
                assert_eq!(elems, want_elems, "{label}:\n{}", model.program());
                assert_eq!(model.memory().constant_bytes, want_bytes + extra + bias, "{label}");
            }
        }
    }
}

#[test]
fn a_dequantization_read_elsewhere_is_done_at_compile_time() {
    let mut g = quantized_gemm(QuantFormat::Int8, &[64, 64], 64, false);
    // `w` now also feeds an Add: it becomes one f32 constant.
    g.nodes.push(node("z", Op::Binary(BinaryOp::Add), &["y", "w"]));
    g.nodes.push(node("out", Op::Unary(UnaryOp::Relu), &["z"]));
    let g = Graph::new(g.name.clone(), g.inputs, g.constants, g.nodes, vec!["out".into()]).unwrap();
    let model = CpuModel::compile(&g).unwrap();
    assert_eq!(constant_elems(&model), vec![ElemType::F32]);
    let inputs = random_inputs(&g, 3);
    let want = run(&g, &inputs).unwrap();
    let got = model.run(&inputs).unwrap();
    let c = compare(&got["out"], &want["out"]);
    assert!(c.max_rel <= 1e-4 || c.max_abs <= 1e-4, "{c:?}");
}

#[test]
fn graph_json_and_safetensors_keep_quantized_constants() {
    let tmp = tempfile::tempdir().unwrap();
    for format in [QuantFormat::Int8, QuantFormat::Int4 { group: 32 }] {
        let g = quantized_gemm(format, &[2, 96], 33, false);
        let path = tmp.path().join(format!("{}.json", format.name()));
        json::save(&g, &path).unwrap();
        let back = json::load(&path).unwrap();
        assert_eq!(json::to_json(&back, Some("w")), json::to_json(&g, Some("w")));
        for (a, b) in g.constants.iter().zip(&back.constants) {
            assert_eq!(a.ty, b.ty);
            assert_eq!(a.init.materialize(&a.ty), b.init.materialize(&b.ty), "{}", a.name);
        }
        // The weights file holds the values at their stored size: 96·33 bytes
        // (int8) or ⌈96·33 / 2⌉ (int4), plus the scales and the header.
        let file = std::fs::metadata(path.with_extension("safetensors")).unwrap().len() as usize;
        let values = match format {
            QuantFormat::Int8 => 96 * 33,
            QuantFormat::Int4 { .. } => (96 * 33usize).div_ceil(2),
        };
        let scales = g.constants[1].ty.numel() * 4;
        assert!(file >= values + scales && file < values + scales + 512, "{file} bytes");
        let inputs = random_inputs(&g, 5);
        assert_eq!(run(&g, &inputs).unwrap(), run(&back, &inputs).unwrap());
    }
}

fn load_err(nodes: &str, constants: &str) -> String {
    let text = format!(
        r#"{{"format": "eqopt-graph", "version": 1, "name": "bad",
  "inputs": [{{"name": "x", "shape": [2, 8], "dtype": "f32"}}], "outputs": ["y"],
  "constants": [{constants}],
  "nodes": [{nodes}, {{"name": "y", "op": "MatMul", "inputs": ["x", "w_dq"]}}]}}"#
    );
    json::parse(&text, "g.json".as_ref()).unwrap_err().to_string()
}

#[test]
fn malformed_dequantizations_are_clear_errors() {
    let dq = r#"{"name": "w_dq", "op": "DequantizeLinear", "inputs": ["wq", "ws"], "attrs": {"axis": 1}}"#;
    let q = |dtype: &str| format!(r#"{{"name": "wq", "shape": [8, 4], "dtype": "{dtype}", "fill": 1}}"#);
    let s = |shape: &str| format!(r#"{{"name": "ws", "shape": {shape}, "dtype": "f32", "fill": 0.5}}"#);
    // Wrong scale shape: per axis 1 needs [4].
    let e = load_err(dq, &format!("{}, {}", q("i8"), s("[8]")));
    assert!(e.contains("w_dq") && e.contains("DequantizeLinear"), "{e}");
    assert!(e.contains("scale of shape [4]") && e.contains("f32[8]"), "{e}");
    // Wrong data dtype.
    let e = load_err(dq, &format!("{}, {}", q("f32"), s("[4]")));
    assert!(e.contains("w_dq") && e.contains("i8 or i4") && e.contains("f32[8, 4]"), "{e}");
    // Wrong block shape.
    let blocked = r#"{"name": "w_dq", "op": "DequantizeLinear", "inputs": ["wq", "ws"], "attrs": {"axis": 0, "block_size": 4}}"#;
    let e = load_err(blocked, &format!("{}, {}", q("i4"), s("[4]")));
    assert!(
        e.contains("w_dq") && e.contains("scale of shape [2, 4]") && e.contains("block of 4"),
        "{e}"
    );
    // A well-formed one loads.
    let text = format!(
        r#"{{"format": "eqopt-graph", "version": 1, "name": "ok",
  "inputs": [{{"name": "x", "shape": [2, 8], "dtype": "f32"}}], "outputs": ["y"],
  "constants": [{}, {}],
  "nodes": [{blocked}, {{"name": "y", "op": "MatMul", "inputs": ["x", "w_dq"]}}]}}"#,
        q("i4"),
        s("[2, 4]")
    );
    json::parse(&text, "g.json".as_ref()).unwrap();
}

#[test]
fn onnx_export_runs_in_onnx_runtime_and_imports_back() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cases = Vec::new();
    for format in [QuantFormat::Int8, QuantFormat::Int4 { group: 32 }] {
        let g = quantized_gemm(format, &[4, 128], 96, true);
        let dir = tmp.path().join(format.name());
        std::fs::create_dir_all(&dir).unwrap();
        let model = dir.join("model.onnx");
        eqopt::onnx::export::save(&g, &model).unwrap();
        let inputs = random_inputs(&g, 4);
        let outputs = run(&g, &inputs).unwrap();
        let ins: Vec<(&str, &Tensor)> = inputs.iter().map(|(k, v)| (k.as_str(), v)).collect();
        eqopt::tensor_io::write_npz(&dir.join("inputs.npz"), &[ins[0]]).unwrap();
        eqopt::tensor_io::write_npz(&dir.join("expected.npz"), &[("y", &outputs["y"])]).unwrap();
        // The initializers are the quantized ones: smaller than the f32 weight alone.
        let size = std::fs::metadata(&model).unwrap().len() as usize;
        let f32_weight = 128 * 96 * 4;
        let stored = match format {
            QuantFormat::Int8 => 128 * 96 + 96 * 4,
            QuantFormat::Int4 { .. } => 128 * 96 / 2 + 4 * 96 * 4,
        };
        assert!(size < f32_weight / 2 && size >= stored, "{}: {size} bytes", format.name());
        // Import reads DequantizeLinear back, keeping the quantized constants.
        let back = eqopt::onnx::import::load(&model, &Default::default()).unwrap();
        assert!(back.nodes.iter().any(|n| matches!(n.op, Op::Dequantize { .. })), "{:?}", back.nodes);
        assert!(back.constants.iter().any(|c| c.ty.dtype.is_quantized()));
        // The export spells the fused epilogue as MatMul, Add, Relu: the
        // reference rounds after each of them instead of once.
        let again = run(&back, &inputs).unwrap();
        let c = compare(&again["y"], &outputs["y"]);
        let scale = outputs["y"].to_f64().iter().fold(1e-3f64, |m, x| m.max(x.abs()));
        assert!(c.shape_equal && c.max_abs <= 1e-5 * scale, "{}: {c:?}", format.name());
        cases.push(dir);
    }
    // As written (no ORT graph optimizations), ONNX Runtime computes what
    // eqopt's reference does.
    let Some(results) = ort_check_with(&cases, 1e-4, &["--no-graph-optimizations"]) else {
        return;
    };
    for r in &results {
        assert!(r.ok, "{}: {:?} (worst {:.2e})", r.case, r.error, r.worst);
    }
    // With its default optimizations ORT runs DequantizeLinear -> MatMul as a
    // fused kernel that also quantizes the activations (relative error about
    // 6e-3 here, for int8 and int4 alike).
    let results = ort_check_with(&cases, 2e-2, &[]).expect("python is present");
    for r in &results {
        assert!(r.ok, "{}: {:?} (worst {:.2e})", r.case, r.error, r.worst);
        eprintln!("{} with ORT's optimizations: relative error {:.2e}", r.case, r.worst);
    }
}

/// `layers` `[d, d]` layers with biases and ReLUs, weights from `N(0, 1/4)`.
fn mlp(layers: u64, d: usize) -> Graph {
    let mut constants = Vec::new();
    let mut nodes = Vec::new();
    let mut x = "x".to_string();
    for l in 0..layers {
        let (w, b) = (format!("w{l}"), format!("b{l}"));
        constants.push(constant(&w, normal(&[d, d], 20 + l)));
        constants.push(constant(&b, normal(&[d], 30 + l)));
        let (mm, add, y) = (format!("mm{l}"), format!("add{l}"), format!("y{l}"));
        nodes.push(node(&mm, Op::MatMul, &[&x, &w]));
        nodes.push(node(&add, Op::Binary(BinaryOp::Add), &[&mm, &b]));
        nodes.push(node(&y, Op::Unary(UnaryOp::Relu), &[&add]));
        x = y;
    }
    Graph::new(
        "mlp3",
        vec![Input {
            name: "x".into(),
            ty: TensorType::new(vec![1, d], DType::F32),
        }],
        constants,
        nodes,
        vec![x],
    )
    .unwrap()
}

#[test]
fn a_loose_budget_picks_quantized_weights_and_holds() {
    let opts = OptimizeOptions::new(HardwareProfile::load("cpu").unwrap());
    // int4 costs more error (about 0.1 a weight) than the bytes it saves over
    // int8 are worth in the Lagrangian search unless the weights are large.
    for (g, budget, want) in [(mlp(3, 256), 3e-2, DType::I8), (mlp(2, 2048), 0.3, DType::I4)] {
        let mut meter = CpuMeter::seeded(&g, 0, 2).unwrap();
        let (opt, report) = optimize_measured(
            &g,
            &RuleSet::defaults().unwrap(),
            &opts.clone().with_max_error(budget),
            Some(&mut meter),
        )
        .unwrap();
        let b = report.budget.as_ref().expect("a budget report");
        let measured = b.search.measured_error.expect("approximations were chosen and measured");
        assert!(measured <= budget, "budget {budget}: measured {measured}");
        assert!(b.search.estimated_error <= budget, "budget {budget}: {b:?}");
        let stored: Vec<String> = opt.constants.iter().map(|c| format!("{} {}", c.name, c.ty)).collect();
        assert!(
            opt.constants.iter().any(|c| c.ty.dtype == want),
            "budget {budget}: {stored:?}\n{b:?}"
        );
        assert!(opt.nodes.iter().any(|n| matches!(n.op, Op::Dequantize { .. })));
        assert_eq!(b.weight_bytes_after, weight_bytes(&opt));
        // int8 stores the f32 weights in about a quarter, int4 in an eighth.
        assert!(b.weight_bytes_after * 3 < b.weight_bytes_before, "budget {budget}: {b:?}");
        let model = CpuModel::compile(&opt).unwrap();
        assert!(constant_elems(&model).iter().any(|e| e.is_quantized()), "{}", model.program());
    }
}

#[test]
fn a_dequantization_of_a_computed_value_is_a_lowering_error() {
    let text = r#"{"format": "eqopt-graph", "version": 1, "name": "computed",
  "inputs": [{"name": "x", "shape": [2, 8], "dtype": "f32"}], "outputs": ["y"],
  "constants": [{"name": "s", "shape": [8], "dtype": "f32", "fill": 0.5}],
  "nodes": [{"name": "q", "op": "Cast", "inputs": ["x"], "attrs": {"to": "i8"}},
            {"name": "dq", "op": "DequantizeLinear", "inputs": ["q", "s"]},
            {"name": "y", "op": "Add", "inputs": ["dq", "x"]}]}"#;
    let g = json::parse(text, "g.json".as_ref()).unwrap();
    // The reference interpreter runs it; the CPU backend refuses it by name.
    run(&g, &random_inputs(&g, 1)).unwrap();
    let e = CpuModel::compile(&g).err().expect("an error, not a program").to_string();
    assert!(e.contains("\"q\"") && e.contains("i8"), "{e}");
}
