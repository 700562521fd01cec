//! `eqopt compile --backend ptx` on every model of the real-model corpus, as
//! given and optimized for `h100`: every module is accepted by NVIDIA's `ptxas`
//! for `sm_80` and `sm_90` with no register spills. Needs the corpus
//! (`EQOPT_REQUIRE_CORPUS=1` makes its absence an error, as in
//! `tests/onnx_corpus.rs`) and ptxas (`EQOPT_REQUIRE_PTXAS=1`). With
//! `--nocapture` it prints the table of docs/ptx-backend.md.

mod common;

use common::ptxas::{assemble, ptxas};
use common::root;
use eqopt::optimize::{OptimizeOptions, optimize};
use eqopt::ptx::PtxModel;
use eqopt::rules::RuleSet;
use eqopt_ptx::SmTarget;
use std::path::PathBuf;
use std::time::Instant;

fn corpus_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("EQOPT_CORPUS").map_or_else(|| root().join("corpus"), PathBuf::from);
    if dir.join("index.json").is_file() {
        return Some(dir);
    }
    assert!(
        std::env::var("EQOPT_REQUIRE_CORPUS").as_deref() != Ok("1"),
        "EQOPT_REQUIRE_CORPUS=1 but no corpus at {}",
        dir.display()
    );
    eprintln!("SKIPPED: no corpus at {}", dir.display());
    None
}

#[test]
fn every_corpus_module_assembles_for_sm80_and_sm90() {
    let Some(dir) = corpus_dir() else { return };
    let Some(ptxas) = ptxas() else { return };
    let index: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join("index.json")).unwrap()).unwrap();
    let rules = RuleSet::defaults().unwrap();
    let opts = OptimizeOptions::new(eqopt::cost::HardwareProfile::load("h100").unwrap());
    let mut table =
        String::from("| model | graph | kernels | PTX lines | registers (max) | spill bytes |\n|---|---|---:|---:|---:|---:|\n");
    let mut total = 0.0;
    for m in index["models"].as_array().unwrap() {
        let name = m["dir"].as_str().unwrap();
        let g =
            eqopt::onnx::import::load(&dir.join(name).join("model.onnx"), &Default::default()).unwrap_or_else(|e| panic!("{name}: {e}"));
        let opt = optimize(&g, &rules, &opts).unwrap_or_else(|e| panic!("{name}: {e}")).0;
        // The four modules (as given and optimized, for each target) go through
        // ptxas at once: it is single-threaded and this test has the machine.
        let mut jobs: Vec<(&str, PtxModel, SmTarget, String)> = Vec::new();
        for (which, graph) in [("as given", &g), ("optimized (h100)", &opt)] {
            for target in SmTarget::ALL {
                let model = PtxModel::compile(graph, target).unwrap_or_else(|e| panic!("{name} {which}: {e}"));
                let ptx = model.compiled.ptx.clone();
                jobs.push((which, model, target, ptx));
            }
        }
        let t = Instant::now();
        let results: Vec<_> = std::thread::scope(|s| {
            let handles: Vec<_> = jobs
                .iter()
                .map(|(which, _, target, ptx)| {
                    let (ptxas, label) = (&ptxas, format!("{name} {which}"));
                    s.spawn(move || assemble(ptxas, ptx, target.name(), &label))
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let seconds = t.elapsed().as_secs_f64();
        for which in ["as given", "optimized (h100)"] {
            let mut regs = 0;
            let mut launches = 0;
            let mut lines = 0;
            for ((w, model, target, ptx), a) in jobs.iter().zip(&results) {
                if *w != which {
                    continue;
                }
                assert_eq!(
                    a.entries,
                    model.compiled.launches.len(),
                    "{name} {which} {}: entries compiled",
                    target.name()
                );
                assert_eq!(a.spill_bytes, 0, "{name} {which} {}: register spills", target.name());
                regs = regs.max(a.max_registers);
                launches = model.compiled.launches.len();
                lines = ptx.lines().count();
            }
            table += &format!("| {name} | {which} | {launches} | {lines} | {regs} | 0 |\n");
        }
        total += seconds;
    }
    table += &format!("\nptxas wall time, all models, both targets, 4 modules at a time: {total:.1} s\n");
    eprintln!("{table}");
}
