//! The result of extraction: one chosen e-node per needed class.

use crate::cost::Cost;
use crate::egraph::{ClassId, CostedEGraph, NodeId};
use crate::error::ExtractError;

/// One chosen e-node per class that the result needs. Classes not reachable
/// from the roots through chosen nodes may have no choice.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Extraction {
    choices: Vec<Option<NodeId>>,
}

const WHITE: u8 = 0;
const GREY: u8 = 1;
const BLACK: u8 = 2;

impl Extraction {
    /// An extraction with no choices for an e-graph of `num_classes` classes.
    pub fn new(num_classes: usize) -> Self {
        Extraction {
            choices: vec![None; num_classes],
        }
    }

    /// Builds an extraction from a per-class choice vector.
    pub fn from_choices(choices: Vec<Option<NodeId>>) -> Self {
        Extraction { choices }
    }

    /// Sets the choice for class `c`.
    ///
    /// # Panics
    /// If `c` is out of range for the e-graph this extraction was made for.
    pub fn set_choice(&mut self, c: ClassId, n: NodeId) {
        self.choices[c.index()] = Some(n);
    }

    /// The chosen node of class `c`, if any.
    pub fn choice(&self, c: ClassId) -> Option<NodeId> {
        self.choices.get(c.index()).copied().flatten()
    }

    /// All choices, indexed by class.
    pub fn choices(&self) -> &[Option<NodeId>] {
        &self.choices
    }

    /// The classes reachable from the roots through chosen nodes, in
    /// depth-first preorder (each once). Classes without a choice are
    /// included but not expanded.
    pub fn reachable(&self, g: &CostedEGraph) -> Vec<ClassId> {
        let mut seen = vec![false; g.num_classes()];
        let mut order = Vec::new();
        let mut stack: Vec<ClassId> = g.roots().iter().rev().copied().collect();
        while let Some(c) = stack.pop() {
            if std::mem::replace(&mut seen[c.index()], true) {
                continue;
            }
            order.push(c);
            if let Some(n) = self.choice(c) {
                for &ch in g.node(n).children.iter().rev() {
                    if !seen[ch.index()] {
                        stack.push(ch);
                    }
                }
            }
        }
        order
    }

    /// The DAG cost: the sum of the costs of the chosen nodes of the classes
    /// reachable from the roots, each class counted once. Infinite if a
    /// reachable class has no choice.
    pub fn dag_cost(&self, g: &CostedEGraph) -> Cost {
        self.reachable(g)
            .into_iter()
            .map(|c| self.choice(c).map_or(Cost::INFINITY, |n| g.node(n).cost))
            .sum()
    }

    /// The tree cost: every use of a class counted again (saturating).
    /// Infinite if a reachable class has no choice or the choices are cyclic.
    pub fn tree_cost(&self, g: &CostedEGraph) -> Cost {
        let mut memo: Vec<Option<Cost>> = vec![None; g.num_classes()];
        let mut state = vec![WHITE; g.num_classes()];
        let mut total = Cost::ZERO;
        for &r in g.roots() {
            total += self.tree_cost_of(g, r, &mut memo, &mut state);
        }
        total
    }

    fn tree_cost_of(&self, g: &CostedEGraph, root: ClassId, memo: &mut [Option<Cost>], state: &mut [u8]) -> Cost {
        // Iterative post-order so deep graphs do not overflow the stack.
        let mut stack = vec![(root, false)];
        while let Some((c, expanded)) = stack.pop() {
            if memo[c.index()].is_some() {
                continue;
            }
            let Some(n) = self.choice(c) else {
                memo[c.index()] = Some(Cost::INFINITY);
                continue;
            };
            let node = g.node(n);
            if expanded {
                state[c.index()] = BLACK;
                let cost = node.cost + node.children.iter().map(|ch| memo[ch.index()].unwrap_or(Cost::INFINITY)).sum();
                memo[c.index()] = Some(cost);
                continue;
            }
            if state[c.index()] == GREY {
                // Reached again while its own subtree is open: a cycle.
                memo[c.index()] = Some(Cost::INFINITY);
                continue;
            }
            state[c.index()] = GREY;
            stack.push((c, true));
            for &ch in &node.children {
                match state[ch.index()] {
                    WHITE => stack.push((ch, false)),
                    GREY => memo[ch.index()] = Some(Cost::INFINITY),
                    _ => {}
                }
            }
        }
        memo[root.index()].unwrap_or(Cost::INFINITY)
    }

    /// A cycle among the chosen nodes reachable from the roots, as the list
    /// of classes on it, or `None` if that graph is acyclic.
    pub fn find_cycle(&self, g: &CostedEGraph) -> Option<Vec<ClassId>> {
        let mut state = vec![WHITE; g.num_classes()];
        for &r in g.roots() {
            if state[r.index()] != WHITE {
                continue;
            }
            // Stack of (class, index of next child to visit); it doubles as
            // the current DFS path.
            let mut stack: Vec<(ClassId, usize)> = vec![(r, 0)];
            state[r.index()] = GREY;
            while let Some(&mut (c, ref mut next)) = stack.last_mut() {
                let children = self.choice(c).map_or(&[][..], |n| &g.node(n).children[..]);
                if *next < children.len() {
                    let ch = children[*next];
                    *next += 1;
                    match state[ch.index()] {
                        WHITE => {
                            state[ch.index()] = GREY;
                            stack.push((ch, 0));
                        }
                        GREY => {
                            let start = stack.iter().position(|&(x, _)| x == ch).unwrap_or(0);
                            return Some(stack[start..].iter().map(|&(x, _)| x).collect());
                        }
                        _ => {}
                    }
                } else {
                    state[c.index()] = BLACK;
                    stack.pop();
                }
            }
        }
        None
    }

    /// Whether every class reachable from the roots has a choice (and that
    /// choice is a node of the class).
    pub fn is_complete(&self, g: &CostedEGraph) -> bool {
        self.reachable(g)
            .into_iter()
            .all(|c| self.choice(c).is_some_and(|n| n.index() < g.num_nodes() && g.node(n).class == c))
    }

    /// Checks that the extraction is complete and acyclic, returning its DAG
    /// cost; errors with [`ExtractError::Incomplete`] or
    /// [`ExtractError::Cycle`].
    pub fn validate(&self, g: &CostedEGraph) -> Result<Cost, ExtractError> {
        if g.roots().is_empty() {
            return Err(ExtractError::NoRoots);
        }
        for c in self.reachable(g) {
            let ok = self.choice(c).is_some_and(|n| n.index() < g.num_nodes() && g.node(n).class == c);
            if !ok {
                return Err(ExtractError::Incomplete {
                    class: g.class_name(c).to_string(),
                });
            }
        }
        if let Some(cycle) = self.find_cycle(g) {
            return Err(ExtractError::Cycle {
                classes: g.class_names(&cycle),
            });
        }
        Ok(self.dag_cost(g))
    }

    /// Keeps only the choices of classes reachable from the roots.
    pub fn restrict_to_reachable(&self, g: &CostedEGraph) -> Extraction {
        let mut out = Extraction::new(g.num_classes());
        for c in self.reachable(g) {
            out.choices[c.index()] = self.choice(c);
        }
        out
    }
}
