//! Bottom-up greedy DAG extraction ("faster greedy DAG").
//!
//! Every class keeps the best *cost set* found so far: the classes its
//! current sub-extraction needs, each with the cost of the node chosen
//! there. A node's cost is its own cost plus the sum over the *union* of its
//! children's cost sets, so a subterm shared by several children is counted
//! once. A node whose children's union already contains its own class would
//! close a cycle and is skipped. A worklist re-evaluates the parents of a
//! class whenever that class improves.

use std::collections::VecDeque;
use std::rc::Rc;
use std::time::Instant;

use crate::egraph::CostedEGraph;
use crate::error::ExtractError;
use crate::extraction::Extraction;
use crate::improve::State;
use crate::prepare::{NONE, Prepared};
use crate::{ExtractOptions, Extractor};

/// The greedy DAG extractor (see the module docs).
#[derive(Clone, Copy, Debug, Default)]
pub struct GreedyExtractor;

impl Extractor for GreedyExtractor {
    fn name(&self) -> &'static str {
        "greedy"
    }

    fn extract(&self, g: &CostedEGraph, opts: &ExtractOptions) -> Result<Extraction, ExtractError> {
        let deadline = Instant::now() + opts.time_limit;
        let p = Prepared::new(g)?;
        let preferred = greedy_choices(&p, deadline);
        let state = State::with_preferred(&p, &preferred);
        Ok(p.to_extraction(g, state.choices()))
    }
}

/// One class's best sub-extraction: sorted `(class, node cost)` entries.
struct CostSet {
    entries: Rc<Vec<(u32, f64)>>,
    total: f64,
    node: u32,
}

/// Runs the greedy worklist; returns the preferred node per class
/// ([`NONE`] where greedy found nothing). Stops early at `deadline`
/// (classes not yet reached keep [`NONE`]).
pub(crate) fn greedy_choices(p: &Prepared, deadline: Instant) -> Vec<u32> {
    let nc = p.num_classes();
    let nn = p.node_class.len();
    let mut best: Vec<Option<CostSet>> = (0..nc).map(|_| None).collect();
    let mut queue: VecDeque<u32> = VecDeque::new();
    let mut queued = vec![false; nn];
    for nodes in &p.class_nodes {
        for &n in nodes {
            if p.node_children[n as usize].is_empty() {
                queue.push_back(n);
                queued[n as usize] = true;
            }
        }
    }
    let mut scratch: Vec<(u32, f64)> = Vec::new();
    let mut merged: Vec<(u32, f64)> = Vec::new();
    let mut steps: u32 = 0;
    while let Some(n) = queue.pop_front() {
        queued[n as usize] = false;
        steps = steps.wrapping_add(1);
        if steps % 1024 == 0 && Instant::now() >= deadline {
            break;
        }
        let c = p.node_class[n as usize];
        let own = p.node_cost[n as usize];
        let children = &p.node_children[n as usize];
        // Every child needs a cost set; the bound prunes hopeless merges.
        let mut bound = 0.0f64;
        let mut largest = None;
        let mut ready = true;
        for &ch in children {
            match &best[ch as usize] {
                None => {
                    ready = false;
                    break;
                }
                Some(s) => {
                    if s.total >= bound {
                        bound = s.total;
                    }
                    if largest.is_none_or(|(len, _)| s.entries.len() > len) {
                        largest = Some((s.entries.len(), ch));
                    }
                }
            }
        }
        if !ready {
            continue;
        }
        let current = best[c as usize].as_ref().map_or(f64::INFINITY, |s| s.total);
        if own + bound >= current {
            continue;
        }
        let entries: Rc<Vec<(u32, f64)>> = match largest {
            None => Rc::new(Vec::new()),
            Some((_, big)) => {
                let big_set = &best[big as usize].as_ref().expect("ready").entries;
                if children.len() == 1 {
                    Rc::clone(big_set)
                } else {
                    merged.clear();
                    merged.extend_from_slice(big_set);
                    for &ch in children {
                        if ch == big {
                            continue;
                        }
                        let other = &best[ch as usize].as_ref().expect("ready").entries;
                        union_into(&mut merged, other, &mut scratch);
                    }
                    Rc::new(std::mem::take(&mut merged))
                }
            }
        };
        let pos = match entries.binary_search_by_key(&c, |e| e.0) {
            Ok(_) => continue, // own class below: a cycle
            Err(pos) => pos,
        };
        let total = own + entries.iter().map(|e| e.1).sum::<f64>();
        if total >= current {
            if let Ok(v) = Rc::try_unwrap(entries) {
                merged = v;
            }
            continue;
        }
        let mut with_self = Vec::with_capacity(entries.len() + 1);
        with_self.extend_from_slice(&entries[..pos]);
        with_self.push((c, own));
        with_self.extend_from_slice(&entries[pos..]);
        best[c as usize] = Some(CostSet {
            entries: Rc::new(with_self),
            total,
            node: n,
        });
        for &parent in &p.parents[c as usize] {
            if !queued[parent as usize] {
                queued[parent as usize] = true;
                queue.push_back(parent);
            }
        }
    }
    best.iter().map(|b| b.as_ref().map_or(NONE, |s| s.node)).collect()
}

/// `acc := acc ∪ other` for sorted entry lists (entries of `acc` win ties).
fn union_into(acc: &mut Vec<(u32, f64)>, other: &[(u32, f64)], scratch: &mut Vec<(u32, f64)>) {
    scratch.clear();
    scratch.reserve(acc.len() + other.len());
    let (mut i, mut j) = (0, 0);
    while i < acc.len() && j < other.len() {
        let (a, b) = (acc[i], other[j]);
        if a.0 < b.0 {
            scratch.push(a);
            i += 1;
        } else if b.0 < a.0 {
            scratch.push(b);
            j += 1;
        } else {
            scratch.push(a);
            i += 1;
            j += 1;
        }
    }
    scratch.extend_from_slice(&acc[i..]);
    scratch.extend_from_slice(&other[j..]);
    std::mem::swap(acc, scratch);
}
