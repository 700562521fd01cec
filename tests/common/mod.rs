//! Shared helpers for the integration tests (included with `mod common;`).
#![allow(dead_code)]

use eqopt::eval::{compare, random_inputs, run};
use eqopt::graph::Graph;
use std::path::{Path, PathBuf};

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Files with extension `ext` in `dir` (relative to the root), sorted.
pub fn corpus(dir: &str, ext: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(root().join(dir))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .collect();
    v.sort();
    v
}

/// Path relative to the root, with forward slashes (stable in snapshots).
pub fn rel(p: &Path) -> String {
    p.strip_prefix(root()).unwrap_or(p).to_string_lossy().replace('\\', "/")
}

/// Asserts that `optimized` computes what `original` computes on random inputs
/// (two seeds), within a tolerance suited to f32 with reassociated arithmetic.
pub fn assert_same_function(original: &Graph, optimized: &Graph) {
    for seed in [7, 1234] {
        let inputs = random_inputs(original, seed);
        let want = run(original, &inputs).expect("original evaluates");
        let got = run(optimized, &inputs).expect("optimized evaluates");
        assert_eq!(want.keys().collect::<Vec<_>>(), got.keys().collect::<Vec<_>>());
        for (name, w) in &want {
            let c = compare(&got[name], w);
            assert!(c.within(1e-4, 1e-3), "{}: output {name} differs: {c}", original.name);
        }
    }
}
