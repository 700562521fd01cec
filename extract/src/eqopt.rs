//! The default extractor: greedy start, then any-time local search.

use std::time::Instant;

use crate::egraph::CostedEGraph;
use crate::error::ExtractError;
use crate::extraction::Extraction;
use crate::greedy::greedy_choices;
use crate::improve::{EPS, State};
use crate::prepare::Prepared;
use crate::{ExtractOptions, Extractor};

/// Greedy DAG start improved by exact-delta local search with compound
/// moves, then iterated local search: deterministic pseudo-random
/// perturbations, each followed by descent, keeping the best solution.
#[derive(Clone, Copy, Debug, Default)]
pub struct EqoptExtractor;

impl Extractor for EqoptExtractor {
    fn name(&self) -> &'static str {
        "eqopt"
    }

    fn extract(&self, g: &CostedEGraph, opts: &ExtractOptions) -> Result<Extraction, ExtractError> {
        let p = Prepared::new(g)?;
        let choice = improve_choices(&p, opts, Instant::now() + opts.time_limit);
        Ok(p.to_extraction(g, &choice))
    }
}

/// SplitMix64: a tiny deterministic generator for perturbations.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Runs greedy plus improvement on a prepared graph until `deadline` or
/// `opts.max_rounds` perturbation rounds; returns the best global choice
/// vector found (always acyclic).
pub(crate) fn improve_choices(p: &Prepared, opts: &ExtractOptions, deadline: Instant) -> Vec<u32> {
    let preferred = greedy_choices(p, deadline);
    let mut state = State::with_preferred(p, &preferred);
    let mut counter = 0u32;
    let mut out_of_time = || {
        counter = counter.wrapping_add(1);
        counter % 32 == 0 && Instant::now() >= deadline
    };
    if !state.descend(&mut out_of_time) {
        return state.choices().to_vec();
    }
    state.commit();
    let mut best_total = p.dag_cost(state.choices());
    let mut rng = SplitMix(opts.seed);
    let mut candidates: Vec<u32> = Vec::new();
    for _ in 0..opts.max_rounds {
        candidates.clear();
        candidates.extend((0..p.num_classes() as u32).filter(|&c| state.is_live(c) && p.class_nodes[c as usize].len() > 1));
        if candidates.is_empty() {
            break;
        }
        let mark = state.mark();
        let kicks = 1 + rng.below(3);
        for _ in 0..kicks {
            let c = candidates[rng.below(candidates.len())];
            if !state.is_live(c) {
                continue;
            }
            let alts = &p.class_nodes[c as usize];
            state.force(c, alts[rng.below(alts.len())]);
        }
        if !state.descend(&mut out_of_time) {
            // Out of time mid-descent: the state may be worse than the best.
            state.rollback(mark);
            break;
        }
        let total = p.dag_cost(state.choices());
        if total < best_total - EPS {
            best_total = total;
            state.commit();
        } else if total <= best_total + EPS {
            // Sideways: keep drifting on the plateau, but stay restorable.
            state.commit();
        } else {
            state.rollback(mark);
        }
    }
    state.choices().to_vec()
}
