//! The PTX backend end to end, without a GPU: graphs are lowered, emitted as
//! PTX, executed by the PTX interpreter (`eqopt-ptx-sim`) and compared with the
//! CPU backend on the same seeded inputs — the small whole models in
//! `tests/ptx/` (an MLP, a transformer layer, a small CNN), `examples/mlp.json`
//! and every graph of the snapshot corpus (`tests/graphs/`), each unoptimized and
//! optimized for `h100`. Where `ptxas` is installed (`scripts/pyenv.sh
//! --ptxas`), every module is also assembled for `sm_80` and `sm_90`.

mod common;

use common::root;
use eqopt::backend::CpuModel;
use eqopt::graph::Graph;
use eqopt::optimize::{OptimizeOptions, optimize};
use eqopt::ptx::PtxModel;
use eqopt::rules::RuleSet;
use eqopt_ptx::SmTarget;
use eqopt_ptx::sim::SimGpu;
use std::path::PathBuf;

/// Elementwise agreement asked of the interpreted PTX against the CPU backend:
/// `|ptx - cpu| ≤ ATOL + RTOL·|cpu|`. The two differ in summation order (GEMM
/// tiles, warp reductions) and in `lg2.approx`-based `log`/`pow`, not in algorithm.
const RTOL: f32 = 1e-4;
const ATOL: f32 = 1e-5;

fn graphs() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = Vec::new();
    for dir in ["tests/ptx", "tests/graphs"] {
        let mut files: Vec<PathBuf> = std::fs::read_dir(root().join(dir))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        files.sort();
        v.extend(files);
    }
    v.push(root().join("examples/mlp.json"));
    v
}

fn optimized(g: &Graph) -> Graph {
    let rules = RuleSet::defaults().unwrap();
    let opts = OptimizeOptions::new(eqopt::cost::HardwareProfile::load("h100").unwrap());
    optimize(g, &rules, &opts).unwrap().0
}

fn check(label: &str, g: &Graph) -> usize {
    let inputs = eqopt::eval::random_inputs(g, 7);
    let cpu = CpuModel::compile(g).unwrap_or_else(|e| panic!("{label}: cpu backend: {e}"));
    let expected = cpu.run(&inputs).unwrap();
    let model = PtxModel::compile(g, SmTarget::Sm90).unwrap_or_else(|e| panic!("{label}: emission: {e}"));
    let mut gpu = SimGpu::new(&model.compiled.ptx).unwrap_or_else(|e| panic!("{label}: the interpreter rejected the module: {e}"));
    let got = model.run(&mut gpu, &inputs).unwrap_or_else(|e| panic!("{label}: {e}"));
    for (name, want) in &expected {
        let (w, h) = (want.to_f64(), got[name].to_f64());
        assert_eq!(w.len(), h.len(), "{label}: output {name}: lengths");
        for (i, (&a, &b)) in h.iter().zip(&w).enumerate() {
            let (a, b) = (a as f32, b as f32);
            let ok = if b.is_nan() {
                a.is_nan()
            } else {
                a == b || (a - b).abs() <= ATOL + RTOL * b.abs()
            };
            assert!(ok, "{label}: output {name}[{i}]: interpreted PTX {a}, CPU backend {b}");
        }
    }
    model.compiled.launches.len()
}

#[test]
fn every_test_model_runs_on_the_interpreter_like_the_cpu_backend() {
    let mut report = String::new();
    for path in graphs() {
        let g = eqopt::graph::json::load(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let name = path.file_stem().unwrap().to_string_lossy().to_string();
        let plain = check(&format!("{name} (unoptimized)"), &g);
        let opt = check(&format!("{name} (optimized for h100)"), &optimized(&g));
        report += &format!("{name}: {plain} launches unoptimized, {opt} optimized\n");
    }
    eprintln!("{report}");
}
