//! Preprocessing shared by the extractors: dense integer views of the
//! e-graph, dominated-node pruning, and the set of classes that have an
//! acyclic extraction at all (with one such "safe" choice per class).

use crate::egraph::{ClassId, CostedEGraph, NodeId};
use crate::error::ExtractError;
use crate::extraction::Extraction;

/// Marks "no node" in per-class choice vectors.
pub(crate) const NONE: u32 = u32::MAX;

/// Classes with more nodes than this skip the quadratic dominance check.
const DOMINANCE_LIMIT: usize = 256;

/// A pruned, index-based view of a [`CostedEGraph`].
pub(crate) struct Prepared {
    /// Class of each node.
    pub node_class: Vec<u32>,
    /// Own cost of each node (finite for usable nodes).
    pub node_cost: Vec<f64>,
    /// Sorted, de-duplicated child classes of each node.
    pub node_children: Vec<Vec<u32>>,
    /// Usable nodes of each class: finite cost, not dominated, all children
    /// feasible, no child equal to the node's own class.
    pub class_nodes: Vec<Vec<u32>>,
    /// Usable nodes that have the class as a child.
    pub parents: Vec<Vec<u32>>,
    /// Whether the class has an acyclic, finite extraction.
    pub feasible: Vec<bool>,
    /// For feasible classes, a node whose children were all proven feasible
    /// before the class: together these form an acyclic choice.
    pub safe_choice: Vec<u32>,
    /// Order in which classes were proven feasible (a topological rank of
    /// the safe choice; children rank lower).
    pub rank: Vec<u32>,
    /// Root classes.
    pub roots: Vec<u32>,
}

impl Prepared {
    /// Prepares `g`, failing with [`ExtractError::NoRoots`] or
    /// [`ExtractError::Infeasible`] when nothing can be extracted.
    pub fn new(g: &CostedEGraph) -> Result<Prepared, ExtractError> {
        if g.roots().is_empty() {
            return Err(ExtractError::NoRoots);
        }
        let nc = g.num_classes();
        let nn = g.num_nodes();
        let mut node_class = Vec::with_capacity(nn);
        let mut node_cost = Vec::with_capacity(nn);
        let mut node_children = Vec::with_capacity(nn);
        for (_, node) in g.nodes() {
            node_class.push(node.class.0);
            node_cost.push(node.cost.value());
            let mut ch: Vec<u32> = node.children.iter().map(|c| c.0).collect();
            ch.sort_unstable();
            ch.dedup();
            node_children.push(ch);
        }
        // Candidate nodes: finite cost, no self loop, not dominated.
        let mut candidate = vec![false; nn];
        for c in 0..nc {
            let nodes = g.class_nodes(ClassId(c as u32));
            let ok: Vec<u32> = nodes
                .iter()
                .map(|n| n.0)
                .filter(|&n| node_cost[n as usize].is_finite() && node_children[n as usize].binary_search(&(c as u32)).is_err())
                .collect();
            for &b in &ok {
                let dominated = ok.len() <= DOMINANCE_LIMIT && ok.iter().any(|&a| a != b && dominates(a, b, &node_cost, &node_children));
                candidate[b as usize] = !dominated;
            }
        }
        // Bottom-up feasibility (Kahn style over distinct children).
        let mut parents_all: Vec<Vec<u32>> = vec![Vec::new(); nc];
        let mut missing = vec![0u32; nn];
        let mut queue = std::collections::VecDeque::new();
        for n in 0..nn {
            if !candidate[n] {
                continue;
            }
            missing[n] = node_children[n].len() as u32;
            for &ch in &node_children[n] {
                parents_all[ch as usize].push(n as u32);
            }
            if missing[n] == 0 {
                queue.push_back(n as u32);
            }
        }
        let mut feasible = vec![false; nc];
        let mut safe_choice = vec![NONE; nc];
        let mut rank = vec![NONE; nc];
        let mut next_rank = 0;
        while let Some(n) = queue.pop_front() {
            let c = node_class[n as usize] as usize;
            if feasible[c] {
                continue;
            }
            feasible[c] = true;
            safe_choice[c] = n;
            rank[c] = next_rank;
            next_rank += 1;
            for &p in &parents_all[c] {
                missing[p as usize] -= 1;
                if missing[p as usize] == 0 {
                    queue.push_back(p);
                }
            }
        }
        let usable = |n: usize| candidate[n] && missing[n] == 0;
        let mut class_nodes = vec![Vec::new(); nc];
        let mut parents = vec![Vec::new(); nc];
        for n in 0..nn {
            if usable(n) {
                class_nodes[node_class[n] as usize].push(n as u32);
                for &ch in &node_children[n] {
                    parents[ch as usize].push(n as u32);
                }
            }
        }
        let roots: Vec<u32> = g.roots().iter().map(|c| c.0).collect();
        let bad: Vec<ClassId> = roots.iter().filter(|&&r| !feasible[r as usize]).map(|&r| ClassId(r)).collect();
        if !bad.is_empty() {
            return Err(ExtractError::Infeasible {
                roots: g.class_names(&bad),
            });
        }
        Ok(Prepared {
            node_class,
            node_cost,
            node_children,
            class_nodes,
            parents,
            feasible,
            safe_choice,
            rank,
            roots,
        })
    }

    /// Number of classes.
    pub fn num_classes(&self) -> usize {
        self.class_nodes.len()
    }

    /// The DAG cost of a per-class choice vector (acyclic, complete on the
    /// reachable part), computed exactly from scratch.
    pub fn dag_cost(&self, choice: &[u32]) -> f64 {
        let mut seen = vec![false; self.num_classes()];
        let mut stack: Vec<u32> = self.roots.clone();
        let mut total = 0.0;
        while let Some(c) = stack.pop() {
            if std::mem::replace(&mut seen[c as usize], true) {
                continue;
            }
            let n = choice[c as usize] as usize;
            total += self.node_cost[n];
            stack.extend(self.node_children[n].iter().filter(|&&x| !seen[x as usize]));
        }
        total
    }

    /// Converts a per-class choice vector to an [`Extraction`] restricted
    /// to the classes reachable from the roots.
    pub fn to_extraction(&self, g: &CostedEGraph, choice: &[u32]) -> Extraction {
        let mut out = Extraction::new(g.num_classes());
        let mut seen = vec![false; self.num_classes()];
        let mut stack: Vec<u32> = self.roots.clone();
        while let Some(c) = stack.pop() {
            if std::mem::replace(&mut seen[c as usize], true) {
                continue;
            }
            let n = choice[c as usize];
            out.set_choice(ClassId(c), NodeId(n));
            stack.extend(self.node_children[n as usize].iter().filter(|&&x| !seen[x as usize]));
        }
        out
    }
}

/// Whether node `a` makes node `b` (same class) useless: no more expensive
/// and needing a subset of its children; ties keep the lower index.
fn dominates(a: u32, b: u32, cost: &[f64], children: &[Vec<u32>]) -> bool {
    let (ca, cb) = (cost[a as usize], cost[b as usize]);
    if ca > cb {
        return false;
    }
    let (ka, kb) = (&children[a as usize], &children[b as usize]);
    if ka.len() > kb.len() {
        return false;
    }
    if ca == cb && ka.len() == kb.len() && a > b {
        // Equal cost and (if subset) equal children: keep the lower index.
        return false;
    }
    // Both sorted: subset test by merging.
    let mut j = 0;
    for &x in ka {
        while j < kb.len() && kb[j] < x {
            j += 1;
        }
        if j == kb.len() || kb[j] != x {
            return false;
        }
        j += 1;
    }
    true
}
