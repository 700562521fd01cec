//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::time::Duration;

use eqopt_extract::{ClassId, Cost, CostedEGraph, ExtractOptions, Extraction, NodeId};

/// Shorthand for a finite cost.
pub fn c(v: f64) -> Cost {
    Cost::new(v).unwrap()
}

/// Options with a generous limit so that debug builds finish every phase.
pub fn opts() -> ExtractOptions {
    ExtractOptions::default().with_time_limit(Duration::from_secs(20))
}

/// SplitMix64 for reproducible random graphs.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A random e-graph with class 0 as root; cycles and zero costs allowed.
pub fn random_egraph(rng: &mut Rng) -> CostedEGraph {
    let mut g = CostedEGraph::new();
    let nc = 2 + rng.below(5) as u32;
    for i in 0..nc {
        g.add_class(format!("k{i}"));
    }
    for i in 0..nc {
        let nodes = 1 + rng.below(3);
        for j in 0..nodes {
            let cost = match rng.below(10) {
                0 => Cost::ZERO,
                1 => Cost::INFINITY,
                k => c(k as f64 * 0.5),
            };
            let arity = rng.below(3);
            let children = (0..arity).map(|_| ClassId(rng.below(nc as u64) as u32)).collect();
            g.add_node(ClassId(i), format!("op{i}_{j}"), cost, children);
        }
    }
    g.add_root(ClassId(0));
    g
}

/// The optimal DAG cost over all complete acyclic choices, by enumeration
/// (`None` if no acyclic finite choice exists).
pub fn brute_force(g: &CostedEGraph) -> Option<f64> {
    let nc = g.num_classes();
    let mut idx = vec![0usize; nc];
    let mut best: Option<f64> = None;
    loop {
        let choices: Vec<Option<NodeId>> = (0..nc).map(|i| g.class_nodes(ClassId(i as u32)).get(idx[i]).copied()).collect();
        let ex = Extraction::from_choices(choices);
        if ex.find_cycle(g).is_none() {
            let cost = ex.dag_cost(g);
            if cost.is_finite() && best.is_none_or(|b| cost.value() < b) {
                best = Some(cost.value());
            }
        }
        // Next assignment (odometer).
        let mut i = 0;
        loop {
            if i == nc {
                return best;
            }
            idx[i] += 1;
            if idx[i] < g.class_nodes(ClassId(i as u32)).len().max(1) {
                break;
            }
            idx[i] = 0;
            i += 1;
        }
    }
}
