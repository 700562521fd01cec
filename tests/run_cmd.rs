//! End-to-end tests of `eqopt run`: every example runs, outputs are deterministic,
//! inputs and outputs round-trip through .npy / .npz / safetensors and match the
//! reference interpreter called in-process (`--reference`), the CPU backend runs every
//! example, and bad inputs fail with clear messages.

mod common;

use common::bin::{eqopt, fails, ok, s, stderr};
use eqopt::dtype::DType;
use eqopt::eval::{random_inputs, run};
use eqopt::graph::json;
use eqopt::graph::tensor::Tensor;
use eqopt::tensor_io::{npy_file_name, read_npy, read_npz, write_npy, write_npz};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn root(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// Asserts the summary has a line starting with each output name followed by its dtype.
fn assert_summary(out: &str, graph: &eqopt::graph::Graph) {
    let results_header = out
        .lines()
        .position(|l| l.starts_with("output "))
        .unwrap_or_else(|| panic!("no table:\n{out}"));
    let rows: Vec<&str> = out.lines().skip(results_header + 1).collect();
    for name in &graph.outputs {
        assert!(
            rows.iter().any(|l| l.split_whitespace().next() == Some(name.as_str())),
            "no summary line for output {name}:\n{out}"
        );
    }
}

/// A small graph with several outputs of different dtypes, names with `/`, and
/// NaN / -inf values (log of negative numbers and of zero).
const MULTI: &str = r#"{
  "format": "eqopt-graph",
  "version": 1,
  "name": "multi",
  "inputs": [
    {"name": "x", "shape": [2, 3], "dtype": "f32"},
    {"name": "ids", "shape": [4], "dtype": "i64"}
  ],
  "outputs": ["block/relu", "logx", "as_i32", "as_f16", "as_bool", "emb", "as_bf16"],
  "constants": [
    {"name": "table", "shape": [5, 2], "dtype": "f32", "values": [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]}
  ],
  "nodes": [
    {"name": "block/relu", "op": "Relu", "inputs": ["x"]},
    {"name": "logx", "op": "Log", "inputs": ["x"]},
    {"name": "as_i32", "op": "Cast", "inputs": ["x"], "attrs": {"to": "i32"}},
    {"name": "as_f16", "op": "Cast", "inputs": ["x"], "attrs": {"to": "f16"}},
    {"name": "as_bool", "op": "Cast", "inputs": ["x"], "attrs": {"to": "bool"}},
    {"name": "as_bf16", "op": "Cast", "inputs": ["x"], "attrs": {"to": "bf16"}},
    {"name": "emb", "op": "Gather", "inputs": ["table", "ids"], "attrs": {"axis": 0}}
  ]
}
"#;

fn multi_graph(dir: &Path) -> PathBuf {
    let p = dir.join("multi.json");
    std::fs::write(&p, MULTI).unwrap();
    p
}

#[test]
fn every_example_runs_with_random_inputs() {
    let mut n = 0;
    for entry in std::fs::read_dir(root("examples")).unwrap() {
        let p = entry.unwrap().path();
        if p.extension().is_none_or(|e| e != "json") {
            continue;
        }
        n += 1;
        let graph = json::load(&p).unwrap();
        let reference = ok(&eqopt(&["run", s(&p), "--random-inputs", "1", "--reference"]));
        assert!(reference.contains("reference interpreter"), "{reference}");
        let backend = ok(&eqopt(&["run", s(&p), "--random-inputs", "1", "--threads", "2"]));
        assert!(backend.contains("cpu backend (2 threads)"), "{backend}");
        for out in [&reference, &backend] {
            for i in &graph.inputs {
                assert!(out.contains(&format!("input {} {}: random (seed 1)", i.name, i.ty)), "{out}");
            }
            assert_summary(out, &graph);
        }
    }
    assert!(n >= 5, "found {n} examples");
}

#[test]
fn same_seed_gives_identical_files_and_another_seed_differs() {
    let dir = tempfile::tempdir().unwrap();
    let g = root("examples/mlp.json");
    let run_to = |seed: &str, out: &Path| ok(&eqopt(&["run", s(&g), "--reference", "--random-inputs", seed, "-o", s(out)]));
    let (a, b, c) = (dir.path().join("a"), dir.path().join("b"), dir.path().join("c"));
    let out_a = run_to("1", &a);
    let out_b = run_to("1", &b);
    assert_eq!(out_a.replace(s(&a), "OUT"), out_b.replace(s(&b), "OUT"), "summary is deterministic");
    run_to("2", &c);
    let file = npy_file_name("probs");
    let bytes = |d: &Path| std::fs::read(d.join(&file)).unwrap();
    assert_eq!(bytes(&a), bytes(&b));
    assert_ne!(bytes(&a), bytes(&c));
    // The same for .npz archives.
    let (za, zb, zc) = (dir.path().join("a.npz"), dir.path().join("b.npz"), dir.path().join("c.npz"));
    run_to("1", &za);
    run_to("1", &zb);
    run_to("2", &zc);
    assert_eq!(std::fs::read(&za).unwrap(), std::fs::read(&zb).unwrap());
    assert_ne!(std::fs::read(&za).unwrap(), std::fs::read(&zc).unwrap());
    assert_eq!(read_npz(&za).unwrap()["probs"], read_npy(&a.join(&file)).unwrap());
}

#[test]
fn npy_inputs_round_trip_to_the_in_process_interpreter() {
    let dir = tempfile::tempdir().unwrap();
    let gpath = multi_graph(dir.path());
    let graph = json::load(&gpath).unwrap();
    let inputs = random_inputs(&graph, 5);
    let mut args: Vec<String> = vec!["run".into(), s(&gpath).into(), "--reference".into()];
    for (name, t) in &inputs {
        let p = dir.path().join(format!("in_{name}.npy"));
        write_npy(&p, t).unwrap();
        assert_eq!(&read_npy(&p).unwrap(), t);
        args.push("--input".into());
        args.push(format!("{name}={}", p.display()));
    }
    let out_dir = dir.path().join("out");
    args.extend(["-o".to_string(), s(&out_dir).to_string()]);
    let out = ok(&eqopt(&args.iter().map(String::as_str).collect::<Vec<_>>()));
    assert_summary(&out, &graph);
    assert!(out.contains("bf16 outputs saved as f32"), "{out}");
    let want = run(&graph, &inputs).unwrap();
    let mut files: Vec<String> = std::fs::read_dir(&out_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    files.sort();
    let mut expected: Vec<String> = graph.outputs.iter().map(|n| npy_file_name(n)).collect();
    expected.sort();
    assert_eq!(files, expected, "one .npy per output, '/' replaced");
    assert!(files.contains(&"block_relu.npy".to_string()));
    for name in &graph.outputs {
        let got = read_npy(&out_dir.join(npy_file_name(name))).unwrap();
        let w = &want[name];
        if w.ty.dtype == DType::BF16 {
            assert_eq!(got.ty.dtype, DType::F32);
            assert_eq!(got.ty.shape, w.ty.shape);
        } else {
            assert_eq!(got.ty, w.ty, "{name}");
        }
        // Bitwise equality (NaN-safe) through f64.
        let bits = |t: &Tensor| t.to_f64().iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&got), bits(w), "{name}");
    }
}

#[test]
fn npz_output_holds_every_output_and_summary_counts_non_finite() {
    let dir = tempfile::tempdir().unwrap();
    let gpath = multi_graph(dir.path());
    let graph = json::load(&gpath).unwrap();
    let npz = dir.path().join("out.npz");
    let out = ok(&eqopt(&["run", s(&gpath), "--reference", "--random-inputs", "3", "-o", s(&npz)]));
    assert!(out.contains(&format!("wrote {}", npz.display())), "{out}");
    let back = read_npz(&npz).unwrap();
    let mut names: Vec<&String> = back.keys().collect();
    names.sort();
    let mut want: Vec<&String> = graph.outputs.iter().collect();
    want.sort();
    assert_eq!(names, want);
    let expected = run(&graph, &random_inputs(&graph, 3)).unwrap();
    assert_eq!(back["emb"], expected["emb"]);
    assert_eq!(back["as_bool"], expected["as_bool"]);
    assert_eq!(back["as_f16"], expected["as_f16"]);
    // Normal inputs: some x < 0, so log gives NaN and the summary says how many.
    let nan = expected["logx"].to_f64().iter().filter(|v| v.is_nan()).count();
    assert!(nan > 0);
    let line = out.lines().find(|l| l.starts_with("logx ")).unwrap();
    assert!(line.contains(&format!("{nan} nan")), "{line}");
}

#[test]
fn inputs_from_safetensors_and_npz_files() {
    let dir = tempfile::tempdir().unwrap();
    let gpath = multi_graph(dir.path());
    let graph = json::load(&gpath).unwrap();
    let inputs = random_inputs(&graph, 9);
    let want = run(&graph, &inputs).unwrap();

    let npz_in = dir.path().join("in.npz");
    let pairs: Vec<(&str, &Tensor)> = inputs.iter().map(|(k, v)| (k.as_str(), v)).collect();
    write_npz(&npz_in, &pairs).unwrap();
    let out1 = dir.path().join("o1.npz");
    ok(&eqopt(&["run", s(&gpath), "--reference", "--inputs", s(&npz_in), "-o", s(&out1)]));
    assert_eq!(read_npz(&out1).unwrap()["emb"], want["emb"]);

    let st_in = dir.path().join("in.safetensors");
    let bytes: BTreeMap<&str, Vec<u8>> = inputs.iter().map(|(k, v)| (k.as_str(), v.to_le_bytes())).collect();
    let views: Vec<(&str, safetensors::tensor::TensorView<'_>)> = inputs
        .iter()
        .map(|(k, v)| {
            let dt = match v.ty.dtype {
                DType::F32 => safetensors::Dtype::F32,
                DType::I64 => safetensors::Dtype::I64,
                d => panic!("{d}"),
            };
            (
                k.as_str(),
                safetensors::tensor::TensorView::new(dt, v.ty.shape.clone(), &bytes[k.as_str()]).unwrap(),
            )
        })
        .collect();
    std::fs::write(&st_in, safetensors::serialize(views, None).unwrap()).unwrap();
    let out2 = dir.path().join("o2.npz");
    ok(&eqopt(&["run", s(&gpath), "--reference", "--inputs", s(&st_in), "-o", s(&out2)]));
    assert_eq!(std::fs::read(&out1).unwrap(), std::fs::read(&out2).unwrap());

    // --input together with --inputs for the same name is refused.
    let x = dir.path().join("x.npy");
    write_npy(&x, &inputs["x"]).unwrap();
    let e = fails(&eqopt(&[
        "run",
        s(&gpath),
        "--inputs",
        s(&st_in),
        "--input",
        &format!("x={}", x.display()),
    ]));
    assert!(e.contains("\"x\" also given by --inputs"), "{e}");
}

#[test]
fn a_partial_set_of_inputs_is_completed_by_the_seed() {
    let dir = tempfile::tempdir().unwrap();
    let gpath = multi_graph(dir.path());
    let graph = json::load(&gpath).unwrap();
    let mut inputs = random_inputs(&graph, 4);
    let x = Tensor::from_f64(inputs["x"].ty.clone(), &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    inputs.insert("x".into(), x.clone());
    let xp = dir.path().join("x.npy");
    write_npy(&xp, &x).unwrap();
    let npz = dir.path().join("o.npz");
    let out = ok(&eqopt(&[
        "run",
        s(&gpath),
        "--reference",
        "--input",
        &format!("x={}", xp.display()),
        "--random-inputs",
        "4",
        "-o",
        s(&npz),
    ]));
    assert!(out.contains("input ids i64[4]: random (seed 4)"), "{out}");
    assert!(out.contains(&format!("input x f32[2, 3]: --input x={}", xp.display())), "{out}");
    assert_eq!(read_npz(&npz).unwrap()["emb"], run(&graph, &inputs).unwrap()["emb"]);
}

#[test]
fn missing_input_without_seed_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let e = fails(&eqopt(&["run", "examples/mlp.json"]));
    assert!(e.contains("x (f32[1, 784])") && e.contains("--random-inputs SEED"), "{e}");
    // Only the missing one of two is named.
    let hidden = dir.path().join("hidden.npy");
    write_npy(
        &hidden,
        &Tensor::from_f64(eqopt::dtype::TensorType::new(vec![1, 128, 768], DType::F32), &vec![0.5; 128 * 768]),
    )
    .unwrap();
    let e = fails(&eqopt(&[
        "run",
        "examples/bert_layer.json",
        "--input",
        &format!("hidden={}", hidden.display()),
    ]));
    assert!(e.contains("mask (f32[1, 1, 1, 128])") && !e.contains("hidden ("), "{e}");
}

#[test]
fn wrong_shape_or_dtype_is_an_error_naming_the_input() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("x.npy");
    write_npy(
        &p,
        &Tensor::from_f64(eqopt::dtype::TensorType::new(vec![1, 783], DType::F32), &vec![1.0; 783]),
    )
    .unwrap();
    let e = fails(&eqopt(&["run", "examples/mlp.json", "--input", &format!("x={}", p.display())]));
    assert!(
        e.contains("graph input \"x\"") && e.contains("f32[1, 784]") && e.contains("f32[1, 783]"),
        "{e}"
    );
    write_npy(
        &p,
        &Tensor::from_f64(eqopt::dtype::TensorType::new(vec![1, 784], DType::F64), &vec![1.0; 784]),
    )
    .unwrap();
    let e = fails(&eqopt(&["run", "examples/mlp.json", "--input", &format!("x={}", p.display())]));
    assert!(e.contains("expected f32[1, 784]") && e.contains("found f64[1, 784]"), "{e}");
}

#[test]
fn unknown_input_name_is_an_error_listing_the_inputs() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("y.npy");
    write_npy(
        &p,
        &Tensor::from_f64(eqopt::dtype::TensorType::new(vec![2], DType::F32), &[1.0, 2.0]),
    )
    .unwrap();
    let e = fails(&eqopt(&[
        "run",
        "examples/bert_layer.json",
        "--input",
        &format!("hiden={}", p.display()),
    ]));
    assert!(
        e.contains("\"hiden\"") && e.contains("hidden (f32[1, 128, 768])") && e.contains("mask (f32[1, 1, 1, 128])"),
        "{e}"
    );
    // The name is checked before the file is read.
    let e = fails(&eqopt(&["run", "examples/mlp.json", "--input", "nope=/nonexistent.npy"]));
    assert!(e.contains("\"nope\""), "{e}");
    // Malformed --input values are usage errors from the argument parser.
    let o = eqopt(&["run", "examples/mlp.json", "--input", "x"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("NAME=FILE.npy"), "{}", stderr(&o));
}

#[test]
fn corrupt_npy_files_are_errors_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.npy");
    write_npy(
        &good,
        &Tensor::from_f64(eqopt::dtype::TensorType::new(vec![1, 784], DType::F32), &vec![1.0; 784]),
    )
    .unwrap();
    let bytes = std::fs::read(&good).unwrap();
    let cases: [(&str, Vec<u8>, &str); 4] = [
        ("truncated.npy", bytes[..bytes.len() - 10].to_vec(), "truncated"),
        ("header_cut.npy", bytes[..30].to_vec(), "not a valid .npy"),
        (
            "magic.npy",
            [b"\x89PNG\r\n\x1a\n".as_slice(), &bytes[8..]].concat(),
            "not a valid .npy",
        ),
        (
            "uint.npy",
            {
                let mut b = bytes.clone();
                let at = b.windows(3).position(|w| w == b"<f4").unwrap();
                b[at + 1] = b'u';
                b
            },
            "unsupported dtype '<u4'",
        ),
    ];
    for (name, content, msg) in cases {
        let p = dir.path().join(name);
        std::fs::write(&p, content).unwrap();
        let e = fails(&eqopt(&["run", "examples/mlp.json", "--input", &format!("x={}", p.display())]));
        assert!(e.contains(&p.display().to_string()) && e.contains(msg), "{name}: {e}");
    }
    let e = fails(&eqopt(&["run", "examples/mlp.json", "--input", "x=/nonexistent/x.npy"]));
    assert!(e.contains("/nonexistent/x.npy"), "{e}");
    let e = fails(&eqopt(&["run", "examples/mlp.json", "--inputs", s(&good)]));
    assert!(e.contains("good.npy") && e.contains("safetensors"), "{e}");
}

#[test]
fn output_path_that_is_an_existing_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("taken.txt");
    std::fs::write(&f, "keep me").unwrap();
    let e = fails(&eqopt(&["run", "examples/mlp.json", "--random-inputs", "1", "-o", s(&f)]));
    assert!(e.contains("taken.txt"), "{e}");
    assert_eq!(std::fs::read_to_string(&f).unwrap(), "keep me");
}

/// `--backend ptx-sim` runs the PTX module on the interpreter: its outputs agree
/// with the CPU backend's (saved as .npz and compared); `--backend cuda` without
/// the `cuda` feature is a usage error that says how to get it.
#[test]
fn the_ptx_backend_runs_on_the_interpreter_and_cuda_needs_its_feature() {
    let dir = tempfile::tempdir().unwrap();
    let model = root("tests/ptx/small_cnn.json");
    let (cpu, sim) = (dir.path().join("cpu.npz"), dir.path().join("sim.npz"));
    ok(&eqopt(&["run", s(&model), "--random-inputs", "3", "-o", s(&cpu)]));
    let out = ok(&eqopt(&[
        "run",
        s(&model),
        "--random-inputs",
        "3",
        "--backend",
        "ptx-sim",
        "-o",
        s(&sim),
    ]));
    assert!(out.contains("the ptx backend on the PTX interpreter"), "{out}");
    let (a, b) = (read_npz(&cpu).unwrap(), read_npz(&sim).unwrap());
    let (a, b) = (a["probs"].to_f64(), b["probs"].to_f64());
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(&b) {
        assert!((x - y).abs() <= 1e-6 + 1e-4 * x.abs(), "cpu {x}, ptx-sim {y}");
    }
    if cfg!(not(feature = "cuda")) {
        let err = fails(&eqopt(&["run", s(&model), "--random-inputs", "3", "--backend", "cuda"]));
        assert!(err.contains("--features cuda"), "{err}");
    }
}
