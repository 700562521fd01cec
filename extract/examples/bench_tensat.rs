//! Runs every extractor on every egraph-serialize JSON file of a directory
//! and prints a table of DAG costs against the best known ones.
//!
//! `cargo run --release -p eqopt-extract --example bench_tensat -- [DIR] [SECONDS]`
//! (default DIR: /work/shared/egraphs/tensat, default budget: 1 s). A third
//! argument runs only the extractor of that name. The environment variables
//! `SEED` and `ROUNDS` override [`ExtractOptions::seed`] and
//! [`ExtractOptions::max_rounds`].

use std::path::PathBuf;
use std::time::{Duration, Instant};

use eqopt_extract::{CostedEGraph, ExtractOptions, extractor_by_name, extractor_names};

/// Best known DAG costs of the public TENSAT benchmark files.
const BEST_KNOWN: &[(&str, f64)] = &[
    ("bert", 0.78179),
    ("bert_acyclic", 0.781534),
    ("resnet50", 4.39687),
    ("resnet50_acyclic", 4.41599),
    ("vgg", 4.85076),
    ("vgg_acyclic", 4.86677),
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(args.next().unwrap_or_else(|| "/work/shared/egraphs/tensat".into()));
    let secs: f64 = args.next().map_or(Ok(1.0), |s| s.parse())?;
    let only: Option<String> = args.next();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    let opts = ExtractOptions::default()
        .with_seed(
            std::env::var("SEED")
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(ExtractOptions::default().seed),
        )
        .with_time_limit(Duration::from_secs_f64(secs))
        .with_max_rounds(
            std::env::var("ROUNDS")
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(ExtractOptions::default().max_rounds),
        );
    println!("| file | nodes | extractor | DAG cost | best known | ratio | acyclic | optimal proven | seconds |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for file in files {
        let stem = file.file_stem().and_then(|s| s.to_str()).unwrap_or("?").to_string();
        let g = CostedEGraph::read_json(&file)?;
        let best = BEST_KNOWN.iter().find(|(n, _)| *n == stem).map(|&(_, b)| b);
        for name in extractor_names() {
            if only.as_deref().is_some_and(|o| o != *name) {
                continue;
            }
            let ex = extractor_by_name(name)?;
            let t = Instant::now();
            let out = ex.extract_with_status(&g, &opts)?;
            let secs = t.elapsed().as_secs_f64();
            let cost = out.extraction.dag_cost(&g).value();
            let acyclic = out.extraction.find_cycle(&g).is_none() && out.extraction.is_complete(&g);
            println!(
                "| {stem} | {} | {name} | {cost:.6} | {} | {} | {} | {} | {secs:.3} |",
                g.num_nodes(),
                best.map_or("-".into(), |b| format!("{b}")),
                best.map_or("-".into(), |b| format!("{:.5}", cost / b)),
                if acyclic { "yes" } else { "NO" },
                if out.proven_optimal { "yes" } else { "no" },
            );
        }
    }
    Ok(())
}
