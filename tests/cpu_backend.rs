//! The CPU backend against the reference interpreter: every test graph and example,
//! original and optimized for cpu and h100 (NHWC convolutions, heads-interleaved
//! attention), lowered, planned and run on random inputs.

mod common;

use common::{corpus, rel};
use eqopt::backend::CpuModel;
use eqopt::cost::HardwareProfile;
use eqopt::eval::{compare, random_inputs, run};
use eqopt::graph::json;
use eqopt::optimize::{OptimizeOptions, optimize};
use eqopt::rules::RuleSet;

fn check(label: &str, g: &eqopt::graph::Graph) {
    let model = match CpuModel::compile(g) {
        Ok(m) => m,
        Err(e) => panic!("{label}: {e}"),
    };
    let mem = model.memory();
    assert!(
        mem.lower_bound_bytes <= mem.arena_bytes && mem.arena_bytes <= mem.no_reuse_bytes,
        "{label}: {mem:?}"
    );
    for seed in [1, 2] {
        let inputs = random_inputs(g, seed);
        let want = run(g, &inputs).unwrap();
        let got = model.run(&inputs).unwrap_or_else(|e| panic!("{label}: {e}"));
        for name in &g.outputs {
            let c = compare(&got[name], &want[name]);
            let scale = want[name].to_f64().iter().fold(1e-3f64, |m, x| m.max(x.abs()));
            assert!(
                c.shape_equal && c.max_abs <= 1e-4 * scale,
                "{label}: output {name}: max abs error {:.3e} (scale {scale:.3e})",
                c.max_abs
            );
        }
    }
}

/// Unoptimized graphs keep their elementwise ops as separate kernels, so the plan
/// runs some in place over their dead inputs; the outputs still match the
/// reference, and the planned arena shrinks below the no-reuse figure.
#[test]
fn elementwise_kernels_run_in_place_over_dead_inputs() {
    for example in ["examples/bert_layer.json", "examples/mlp.json", "examples/resnet_blocks.json"] {
        let g = json::load(&common::root().join(example)).unwrap();
        let model = CpuModel::compile(&g).unwrap();
        let mem = model.memory();
        assert!(mem.in_place_kernels > 0, "{example}: {mem:?}");
        check(example, &g);
    }
}

/// Elementwise kernels over outputs whose blocks cut a dimension mid-way
/// (`[2, 700, 5, 7]`: 35-element planes, blocks of a few hundred channels,
/// two images; `[3, 20000]`: rows longer than a block), with per-channel
/// operands, unoptimized so several run in place.
#[test]
fn elementwise_blocks_cut_dimensions() {
    for (shape, channels) in [(vec![2usize, 700, 5, 7], 700usize), (vec![3, 20000], 20000)] {
        let param = |name: &str, seed: u64, mean: f64| {
            format!(
                r#"{{"name": "{name}", "shape": [{channels}], "dtype": "f32", "random": {{"dist": "uniform", "low": {}, "high": {}, "seed": {seed}}}}}"#,
                mean - 0.5,
                mean + 0.5
            )
        };
        let consts: Vec<String> = (0..2)
            .flat_map(|i| {
                [
                    param(&format!("s{i}"), 10 * i + 1, 1.0),
                    param(&format!("b{i}"), 10 * i + 2, 0.0),
                    param(&format!("m{i}"), 10 * i + 3, 0.0),
                    param(&format!("v{i}"), 10 * i + 4, 1.0),
                ]
            })
            .collect();
        let bn = |i: usize, x: &str| {
            format!(
                r#"{{"name": "bn{i}", "op": "BatchNormalization", "inputs": ["{x}", "s{i}", "b{i}", "m{i}", "v{i}"], "attrs": {{"epsilon": 1e-5}}}}, {{"name": "r{i}", "op": "Relu", "inputs": ["bn{i}"]}}"#
            )
        };
        let text = format!(
            r#"{{"format": "eqopt-graph", "version": 1, "name": "blocks", "inputs": [{{"name": "x", "shape": {shape:?}, "dtype": "f32"}}],
                "outputs": ["y"], "constants": [{}],
                "nodes": [{}, {}, {{"name": "y", "op": "Add", "inputs": ["r1", "x"]}}]}}"#,
            consts.join(", "),
            bn(0, "x"),
            bn(1, "r0"),
        );
        let g = json::parse(&text, std::path::Path::new("blocks.json")).unwrap();
        let model = CpuModel::compile(&g).unwrap();
        assert!(model.memory().in_place_kernels > 0, "{shape:?}: {:?}", model.memory());
        check(&format!("blocks {shape:?}"), &g);
    }
}

fn f32_only(g: &eqopt::graph::Graph) -> bool {
    use eqopt::dtype::DType;
    g.inputs.iter().all(|i| matches!(i.ty.dtype, DType::F32 | DType::I64 | DType::I32)) && g.nodes.iter().all(|n| n.ty.dtype == DType::F32)
}

#[test]
fn test_graphs_and_examples_run_like_the_reference() {
    let rules = RuleSet::defaults().unwrap();
    let mut checked = 0;
    for dir in ["tests/graphs", "examples"] {
        for path in corpus(dir, "json") {
            let g = json::load(&path).unwrap();
            if !f32_only(&g) {
                continue;
            }
            check(&rel(&path), &g);
            for target in ["cpu", "h100"] {
                let opts = OptimizeOptions::new(HardwareProfile::load(target).unwrap());
                let (opt, _) = optimize(&g, &rules, &opts).unwrap();
                check(&format!("{} optimized for {target}", rel(&path)), &opt);
            }
            checked += 1;
        }
    }
    assert!(checked >= 20, "only {checked} graphs checked");
}

#[test]
fn compile_bench_and_run_commands() {
    use common::bin::{eqopt, fails, ok};
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("mlp-cpu");
    let text = ok(&eqopt(&["compile", "examples/mlp.json", "--optimize", "-o", out.to_str().unwrap()]));
    assert!(text.contains("kernels") && text.contains("arena"), "{text}");
    let program = std::fs::read_to_string(out.join("program.txt")).unwrap();
    assert!(program.starts_with("program ") && program.contains(" gemm "), "{program}");
    let memory: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("memory.json")).unwrap()).unwrap();
    let bytes = |k: &str| memory[k].as_u64().unwrap();
    assert!(bytes("lower_bound_bytes") <= bytes("arena_bytes") && bytes("arena_bytes") <= bytes("no_reuse_bytes"));

    let text = ok(&eqopt(&[
        "bench",
        "examples/mlp.json",
        "--threads",
        "1",
        "--runs",
        "3",
        "--warmup",
        "1",
    ]));
    assert!(
        text.contains("1 threads, 3 runs after 1 warm-up") && text.contains("latency: median"),
        "{text}"
    );
    let e = fails(&eqopt(&["bench", "examples/mlp.json", "--runs", "0"]));
    assert!(e.contains("--runs") && e.contains("at least 1"), "{e}");

    // A graph of f64 tensors is refused by the backend with a pointer to --reference.
    let g = dir.path().join("f64.json");
    std::fs::write(
        &g,
        r#"{"format": "eqopt-graph", "version": 1, "name": "f64",
            "inputs": [{"name": "x", "shape": [3], "dtype": "f64"}], "outputs": ["y"],
            "nodes": [{"name": "y", "op": "Relu", "inputs": ["x"]}]}"#,
    )
    .unwrap();
    let e = fails(&eqopt(&["run", g.to_str().unwrap(), "--random-inputs", "1"]));
    assert!(e.contains("\"x\" (input)") && e.contains("f64") && e.contains("--reference"), "{e}");
    ok(&eqopt(&["run", g.to_str().unwrap(), "--random-inputs", "1", "--reference"]));
}

/// `eqopt calibrate` writes a profile that `--target cpu` then uses, and
/// `bench --per-kernel` compares every kernel with its prediction on it.
#[test]
fn calibrate_then_per_kernel_bench_on_the_calibrated_profile() {
    use common::bin::{eqopt_with_config, fails, ok};
    let config = tempfile::tempdir().unwrap();
    let text = ok(&eqopt_with_config(&["calibrate", "--quick", "--threads", "1"], config.path()));
    assert!(text.contains("| 1 |") && text.contains("`--target cpu` now uses it"), "{text}");
    let path = config.path().join("targets").join("cpu.json");
    let profile = eqopt::cost::HardwareProfile::load(path.to_str().unwrap()).unwrap();
    let cal = profile.calibration.as_ref().unwrap();
    assert_eq!(cal.threads, 1);
    assert_eq!(
        profile.peak(eqopt::dtype::DType::F32),
        cal.per_threads[0].peak_flops[&eqopt::dtype::DType::F32]
    );

    let out = dir_file(&config, "opt.json");
    let text = ok(&eqopt_with_config(&["optimize", "examples/mlp.json", "-o", &out], config.path()));
    assert!(text.contains("calibrated profile"), "{text}");

    let text = ok(&eqopt_with_config(
        &[
            "bench",
            "examples/mlp.json",
            "--threads",
            "1",
            "--runs",
            "3",
            "--per-kernel",
            "--json",
        ],
        config.path(),
    ));
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let kernels = v["per_kernel"]["kernels"].as_array().unwrap();
    assert_eq!(kernels.len() as u64, v["kernels"].as_u64().unwrap());
    assert!(
        kernels
            .iter()
            .all(|k| k["predicted_s"].as_f64().unwrap() > 0.0 && k["measured_s"].as_f64().unwrap() > 0.0)
    );
    assert!(v["per_kernel"]["spearman"].as_f64().is_some_and(|r| r.abs() <= 1.0 + 1e-9) || kernels.len() < 2);
    let text = ok(&eqopt_with_config(
        &["bench", "examples/mlp.json", "--runs", "2", "--per-kernel"],
        config.path(),
    ));
    assert!(text.contains("rank correlation") && text.contains("slowest kernels"), "{text}");

    // A broken calibrated profile is reported, not silently replaced by the built-in one.
    std::fs::write(&path, "{").unwrap();
    let e = fails(&eqopt_with_config(&["bench", "examples/mlp.json", "--per-kernel"], config.path()));
    assert!(e.contains("cpu.json") && e.contains("invalid profile"), "{e}");
    let e = fails(&eqopt_with_config(&["calibrate", "--quick", "--threads", "0"], config.path()));
    assert!(e.contains("--threads"), "{e}");
}

fn dir_file(dir: &tempfile::TempDir, name: &str) -> String {
    dir.path().join(name).to_str().unwrap().to_string()
}

/// The whole backend on the AVX2 and scalar paths (`EQOPT_ISA` caps the detected
/// instruction set): a machine without AVX-512 runs these.
#[test]
fn every_instruction_set_runs_the_examples_like_the_reference() {
    let dir = tempfile::tempdir().unwrap();
    for example in [
        "examples/bert_layer.json",
        "examples/inception_block.json",
        "examples/resnet_blocks.json",
    ] {
        let reference = dir.path().join("reference.npz");
        common::bin::ok(&common::bin::eqopt(&[
            "run",
            example,
            "--reference",
            "--random-inputs",
            "3",
            "-o",
            reference.to_str().unwrap(),
        ]));
        let want = eqopt::tensor_io::read_npz(&reference).unwrap();
        for isa in ["avx512", "avx2", "scalar"] {
            let out = dir.path().join(format!("{isa}.npz"));
            let o = std::process::Command::new(env!("CARGO_BIN_EXE_eqopt"))
                .args(["run", example, "--random-inputs", "3", "-o", out.to_str().unwrap()])
                .env("EQOPT_ISA", isa)
                .env("EQOPT_CONFIG_DIR", common::bin::NO_CONFIG_DIR)
                .current_dir(common::root())
                .output()
                .unwrap();
            assert!(
                o.status.success(),
                "{example} with EQOPT_ISA={isa}: {}",
                String::from_utf8_lossy(&o.stderr)
            );
            let got = eqopt::tensor_io::read_npz(&out).unwrap();
            for (name, w) in &want {
                let c = compare(&got[name], w);
                let scale = w.to_f64().iter().fold(1e-3f64, |m, x| m.max(x.abs()));
                assert!(c.max_abs <= 1e-4 * scale, "{example} {isa} {name}: {c:?}");
            }
        }
    }
}
