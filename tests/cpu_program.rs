//! Snapshots of the kernel programs lowered for the CPU backend (the text
//! `eqopt compile --backend cpu` writes), for small graphs optimized for cpu that
//! cover GEMM with epilogue, convolution, pooling, global pooling as a reduction,
//! elementwise kernels, softmax, layer norm, heads-interleaved attention, and copies
//! into a concatenation. Gather is covered by the corpus (MiniLM's embeddings).

mod common;

use common::{CPU_PROGRAM_GRAPHS, root};
use eqopt::backend::CpuModel;
use eqopt::cost::HardwareProfile;
use eqopt::graph::json;
use eqopt::optimize::{OptimizeOptions, optimize};
use eqopt::rules::RuleSet;

#[test]
fn lowered_programs_match_their_snapshots() {
    let rules = RuleSet::defaults().unwrap();
    let opts = OptimizeOptions::new(HardwareProfile::load("cpu").unwrap());
    for rel in CPU_PROGRAM_GRAPHS {
        let g = json::load(&root().join(rel)).unwrap();
        let (opt, _) = optimize(&g, &rules, &opts).unwrap();
        let model = CpuModel::compile(&opt).unwrap();
        let m = model.memory();
        let text = format!(
            "memory: no reuse {} B, arena {} B, lower bound {} B, {} kernels in place\n\n{}",
            m.no_reuse_bytes,
            m.arena_bytes,
            m.lower_bound_bytes,
            m.in_place_kernels,
            model.program()
        );
        let name = std::path::Path::new(rel).file_stem().unwrap().to_string_lossy().into_owned();
        insta::with_settings!({snapshot_path => root().join("snapshots"), prepend_module_to_snapshot => false, omit_expression => true}, {
            insta::assert_snapshot!(format!("cpu_program__{name}"), text);
        });
    }
}
