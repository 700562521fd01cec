//! The ONNX commands through the binary: `import`, `export`, and `optimize`/`run`
//! taking `.onnx` directly, with `--input-shape` for symbolic dims.

mod common;

use common::bin::{eqopt, fails, ok, s};
use eqopt::onnx::ImportOptions;

const CNN: &str = "tests/onnx/ok/mini_cnn.onnx";
const SYMBOLIC: &str = "tests/onnx/ok/symbolic_batch.onnx";

#[test]
fn import_writes_graph_json_that_runs_like_the_model() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("cnn.json");
    let out = ok(&eqopt(&["import", CNN, "-o", s(&json)]));
    assert!(out.contains("wrote") && out.contains("Conv"), "{out}");
    assert!(dir.path().join("cnn.safetensors").exists(), "weights go beside the graph");
    let from_json = eqopt::graph::json::load(&json).unwrap();
    let from_onnx = eqopt::onnx::import::load(&common::root().join(CNN), &ImportOptions::default()).unwrap();
    let inputs = eqopt::tensor_io::read_npz(&common::root().join("tests/onnx/ok/mini_cnn.inputs.npz")).unwrap();
    assert_eq!(
        eqopt::eval::run(&from_json, &inputs).unwrap(),
        eqopt::eval::run(&from_onnx, &inputs).unwrap()
    );
}

#[test]
fn optimize_onnx_to_onnx_and_export_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let opt = dir.path().join("cnn.opt.onnx");
    let out = ok(&eqopt(&["optimize", CNN, "-o", s(&opt)]));
    assert!(out.contains("estimated latency"), "{out}");
    let g = eqopt::onnx::import::load(&opt, &ImportOptions::default()).unwrap();
    assert!(!g.nodes.is_empty());
    // run accepts .onnx, and export goes graph.json -> ONNX.
    ok(&eqopt(&["run", s(&opt), "--random-inputs", "3"]));
    let json = dir.path().join("g.json");
    ok(&eqopt(&["import", s(&opt), "-o", s(&json)]));
    let back = dir.path().join("back.onnx");
    ok(&eqopt(&["export", s(&json), "-o", s(&back)]));
    assert!(std::fs::metadata(&back).unwrap().len() > 0);
}

#[test]
fn symbolic_dims_take_input_shape_on_every_command() {
    let e = fails(&eqopt(&["run", SYMBOLIC, "--random-inputs", "1"]));
    assert!(e.contains("--input-shape x=N,3,4"), "{e}");
    let out = ok(&eqopt(&["run", SYMBOLIC, "--input-shape", "x=2,3,4", "--random-inputs", "1"]));
    assert!(out.contains("f32[2, 3, 5]") || out.contains("[2, 3, 5]"), "{out}");
    let dir = tempfile::tempdir().unwrap();
    ok(&eqopt(&[
        "optimize",
        SYMBOLIC,
        "--input-shape",
        "x=7,3,4",
        "-o",
        s(&dir.path().join("o.onnx")),
    ]));
    let e = fails(&eqopt(&["run", SYMBOLIC, "--input-shape", "y=2,3,4", "--random-inputs", "1"]));
    assert!(e.contains("--input-shape") && e.contains("\"y\""), "{e}");
    // A malformed value is a command-line usage error (clap: exit status 2).
    let o = eqopt(&["run", SYMBOLIC, "--input-shape", "x=2,three", "--random-inputs", "1"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(common::bin::stderr(&o).contains("NAME=D0,D1"), "{}", common::bin::stderr(&o));
}

#[test]
fn wrong_extensions_and_bad_models_fail_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let e = fails(&eqopt(&["export", CNN, "-o", s(&dir.path().join("x.json"))]));
    assert!(e.contains(".onnx"), "{e}");
    let e = fails(&eqopt(&["import", CNN, "-o", s(&dir.path().join("x.onnx"))]));
    assert!(e.contains("graph.json"), "{e}");
    let e = fails(&eqopt(&[
        "optimize",
        "tests/onnx/bad/truncated.onnx",
        "-o",
        s(&dir.path().join("x.onnx")),
    ]));
    assert!(e.contains("not a valid ONNX model"), "{e}");
    assert!(!dir.path().join("x.onnx").exists(), "nothing is written on failure");
    let e = fails(&eqopt(&[
        "import",
        "examples/mlp.json",
        "--input-shape",
        "x=1",
        "-o",
        s(&dir.path().join("m.json")),
    ]));
    assert!(e.contains("--input-shape"), "{e}");
}

#[test]
fn export_and_optimize_are_byte_deterministic() {
    let dir = tempfile::tempdir().unwrap();
    let run = |k: usize| {
        let exported = dir.path().join(format!("e{k}.onnx"));
        let optimized = dir.path().join(format!("o{k}.onnx"));
        ok(&eqopt(&["export", "tests/onnx/ok/mini_transformer.onnx", "-o", s(&exported)]));
        ok(&eqopt(&["optimize", "tests/onnx/ok/mini_transformer.onnx", "-o", s(&optimized)]));
        (std::fs::read(exported).unwrap(), std::fs::read(optimized).unwrap())
    };
    assert_eq!(run(0), run(1));
}
