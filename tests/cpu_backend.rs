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
