//! Saturation and extraction time on the example models (criterion).
//!
//! `cargo bench --bench optimize`. Each example is measured in two parts so the
//! 2-second budget of `eqopt optimize` can be split: saturation (rules on the
//! e-graph) and extraction (costing, DAG extraction, rebuilding the graph).

use criterion::{Criterion, criterion_group, criterion_main};
use eqopt::cost::HardwareProfile;
use eqopt::extraction::extract_graph;
use eqopt::graph::json;
use eqopt::rules::RuleSet;
use eqopt::saturate::{Limits, saturate};
use std::path::Path;
use std::time::Duration;

fn bench_examples(c: &mut Criterion) {
    let rules = RuleSet::defaults().unwrap();
    let target = HardwareProfile::load("h100").unwrap();
    let limits = Limits::default();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    let mut group = c.benchmark_group("optimize");
    group.sample_size(10).measurement_time(Duration::from_secs(5));
    for path in files {
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        let graph = json::load(&path).unwrap();
        group.bench_function(format!("{name}/saturate"), |b| {
            b.iter(|| saturate(&graph, &rules, &limits).unwrap())
        });
        let sat = saturate(&graph, &rules, &limits).unwrap();
        group.bench_function(format!("{name}/extract"), |b| {
            b.iter(|| extract_graph(&graph, &sat, &target, eqopt_extract::DEFAULT_EXTRACTOR, Duration::from_secs(1)).unwrap())
        });
    }
    group.finish();
}

criterion_group!(benches, bench_examples);
criterion_main!(benches);
