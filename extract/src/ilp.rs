//! Exact extraction by integer linear programming with the pure-Rust
//! `microlp` solver (through `good_lp`).
//!
//! Model, over the usable nodes of the classes reachable from the roots:
//! * `x_n ∈ {0,1}`: node `n` is chosen; `a_c ∈ {0,1}`: class `c` is needed;
//! * every root is needed; a needed class chooses exactly one node
//!   (`Σ_{n∈c} x_n = a_c`); a chosen node needs its children (`x_n ≤ a_y`);
//! * acyclicity only where cycles are possible: for each edge inside a
//!   strongly connected component `S` of the class graph, a continuous
//!   order variable gives `t_c − t_y ≥ 1 − |S|·(1 − x_n)`;
//! * objective: `Σ cost_n · x_n` (the DAG cost).
//!
//! The `eqopt` heuristic runs first (on a quarter of the budget) and warm
//! starts the solver; if the solver runs out of time or fails, its best
//! solution (or the heuristic's) is returned with `proven_optimal = false`.

use std::time::{Duration, Instant};

use good_lp::solvers::microlp::microlp;
use good_lp::{Expression, ProblemVariables, Solution, SolutionStatus, SolverModel, Variable, WithTimeLimit, constraint, variable};

use crate::egraph::CostedEGraph;
use crate::eqopt::improve_choices;
use crate::error::ExtractError;
use crate::extraction::Extraction;
use crate::prepare::{NONE, Prepared};
use crate::{ExtractOptions, ExtractOutcome, Extractor};

/// Rough solver set-up time per model entry (node variable or child edge),
/// measured on bert (about 40k entries took 0.7 s beyond the deadline).
const SETUP_PER_ENTRY: Duration = Duration::from_micros(20);

/// Exact ILP extractor (see the module docs).
#[derive(Clone, Copy, Debug, Default)]
pub struct IlpExtractor;

impl Extractor for IlpExtractor {
    fn name(&self) -> &'static str {
        "ilp"
    }

    fn extract(&self, g: &CostedEGraph, opts: &ExtractOptions) -> Result<Extraction, ExtractError> {
        Ok(self.extract_with_status(g, opts)?.extraction)
    }

    fn extract_with_status(&self, g: &CostedEGraph, opts: &ExtractOptions) -> Result<ExtractOutcome, ExtractError> {
        let start = Instant::now();
        let deadline = start + opts.time_limit;
        let p = Prepared::new(g)?;
        let classes = relevant_classes(&p);
        // microlp checks its deadline only between phases; on models whose
        // set-up alone would eat the budget, skip it and give the heuristic
        // all the time.
        let size: usize = classes
            .iter()
            .flat_map(|&c| p.class_nodes[c as usize].iter())
            .map(|&n| 1 + p.node_children[n as usize].len())
            .sum();
        let setup = SETUP_PER_ENTRY * size as u32;
        let try_solver = setup <= opts.time_limit / 2;
        let heuristic_deadline = if try_solver { start + opts.time_limit / 2 } else { deadline };
        let warm = improve_choices(&p, opts, heuristic_deadline);
        let warm_cost = p.dag_cost(&warm);
        let remaining = deadline.saturating_duration_since(Instant::now());
        let outcome = if try_solver { solve(&p, &classes, &warm, remaining) } else { None };
        let (choice, proven_optimal) = match outcome {
            Some((choice, proven)) if p.dag_cost(&choice) <= warm_cost + 1e-9 => (choice, proven),
            _ => (warm, false),
        };
        Ok(ExtractOutcome {
            extraction: p.to_extraction(g, &choice),
            proven_optimal,
        })
    }
}

/// Classes reachable from the roots through usable nodes, in discovery
/// order.
fn relevant_classes(p: &Prepared) -> Vec<u32> {
    let mut seen = vec![false; p.num_classes()];
    let mut order = Vec::new();
    let mut stack = p.roots.clone();
    while let Some(c) = stack.pop() {
        if std::mem::replace(&mut seen[c as usize], true) {
            continue;
        }
        order.push(c);
        for &n in &p.class_nodes[c as usize] {
            stack.extend(p.node_children[n as usize].iter().filter(|&&y| !seen[y as usize]));
        }
    }
    order
}

/// Tarjan's strongly connected components over the usable class graph
/// restricted to `classes`; returns a component id per class (`NONE` for
/// classes outside) and each component's size.
fn components(p: &Prepared, classes: &[u32]) -> (Vec<u32>, Vec<u32>) {
    let nc = p.num_classes();
    let mut index = vec![NONE; nc];
    let mut low = vec![0u32; nc];
    let mut on_stack = vec![false; nc];
    let mut comp = vec![NONE; nc];
    let mut sizes = Vec::new();
    let mut stack = Vec::new();
    let mut next = 0u32;
    let succ = |c: u32| -> Vec<u32> {
        let mut s: Vec<u32> = p.class_nodes[c as usize]
            .iter()
            .flat_map(|&n| p.node_children[n as usize].iter().copied())
            .collect();
        s.sort_unstable();
        s.dedup();
        s
    };
    for &root in classes {
        if index[root as usize] != NONE {
            continue;
        }
        // Iterative Tarjan: frames of (class, successors, next successor).
        let mut frames: Vec<(u32, Vec<u32>, usize)> = Vec::new();
        index[root as usize] = next;
        low[root as usize] = next;
        next += 1;
        stack.push(root);
        on_stack[root as usize] = true;
        frames.push((root, succ(root), 0));
        while let Some(frame) = frames.last_mut() {
            let c = frame.0;
            if frame.2 < frame.1.len() {
                let y = frame.1[frame.2];
                frame.2 += 1;
                if index[y as usize] == NONE {
                    index[y as usize] = next;
                    low[y as usize] = next;
                    next += 1;
                    stack.push(y);
                    on_stack[y as usize] = true;
                    frames.push((y, succ(y), 0));
                } else if on_stack[y as usize] {
                    low[c as usize] = low[c as usize].min(index[y as usize]);
                }
            } else {
                frames.pop();
                if let Some(parent) = frames.last() {
                    let pc = parent.0 as usize;
                    low[pc] = low[pc].min(low[c as usize]);
                }
                if low[c as usize] == index[c as usize] {
                    let id = sizes.len() as u32;
                    let mut size = 0;
                    loop {
                        let x = stack.pop().expect("Tarjan stack holds the component");
                        on_stack[x as usize] = false;
                        comp[x as usize] = id;
                        size += 1;
                        if x == c {
                            break;
                        }
                    }
                    sizes.push(size);
                }
            }
        }
    }
    (comp, sizes)
}

/// Builds and solves the ILP within `time`. Returns the choice vector and
/// whether it is proven optimal, or `None` if no solution came back.
fn solve(p: &Prepared, classes: &[u32], warm: &[u32], time: Duration) -> Option<(Vec<u32>, bool)> {
    if time.is_zero() {
        return None;
    }
    let (comp, sizes) = components(p, classes);
    // Warm-start values: needed classes and chosen nodes of the heuristic.
    let mut live = vec![false; p.num_classes()];
    let mut stack = p.roots.clone();
    while let Some(c) = stack.pop() {
        if !std::mem::replace(&mut live[c as usize], true) {
            stack.extend_from_slice(&p.node_children[warm[c as usize] as usize]);
        }
    }
    let order = warm_order(p, warm, &live, &comp);
    let max_cost = classes
        .iter()
        .flat_map(|&c| p.class_nodes[c as usize].iter())
        .map(|&n| p.node_cost[n as usize])
        .fold(0.0f64, f64::max);
    let scale = if max_cost > 0.0 { 1000.0 / max_cost } else { 1.0 };

    let mut vars = ProblemVariables::new();
    let mut class_var: Vec<Option<Variable>> = vec![None; p.num_classes()];
    let mut order_var: Vec<Option<Variable>> = vec![None; p.num_classes()];
    let mut node_vars: Vec<(u32, Variable)> = Vec::new();
    let mut objective = Expression::from(0.0);
    for &c in classes {
        let ci = c as usize;
        class_var[ci] = Some(vars.add(variable().binary().initial(f64::from(u8::from(live[ci])))));
        let size = sizes[comp[ci] as usize];
        if size > 1 {
            order_var[ci] = Some(vars.add(variable().min(0.0).max(f64::from(size - 1)).initial(order[ci])));
        }
        for &n in &p.class_nodes[ci] {
            let chosen = live[ci] && warm[ci] == n;
            let v = vars.add(variable().binary().initial(f64::from(u8::from(chosen))));
            objective += p.node_cost[n as usize] * scale * v;
            node_vars.push((n, v));
        }
    }
    let mut model = vars.minimise(objective).using(microlp).with_time_limit(time.as_secs_f64());
    for &r in &p.roots {
        model.add_constraint(constraint!(class_var[r as usize].expect("root is relevant") == 1.0));
    }
    let mut by_class: Vec<Expression> = vec![Expression::from(0.0); p.num_classes()];
    for &(n, v) in &node_vars {
        let c = p.node_class[n as usize] as usize;
        by_class[c] += v;
        for &y in &p.node_children[n as usize] {
            let a_y = class_var[y as usize].expect("children of relevant classes are relevant");
            model.add_constraint(constraint!(v - a_y <= 0.0));
            if comp[y as usize] == comp[c] {
                let big = f64::from(sizes[comp[c] as usize]);
                let (tc, ty) = (order_var[c].expect("in SCC"), order_var[y as usize].expect("in SCC"));
                model.add_constraint(constraint!(tc - ty - big * v >= 1.0 - big));
            }
        }
    }
    for &c in classes {
        let sum = std::mem::replace(&mut by_class[c as usize], Expression::from(0.0));
        model.add_constraint(constraint!(sum - class_var[c as usize].expect("relevant") == 0.0));
    }
    let solution = model.solve().ok()?;
    let proven = matches!(solution.status(), SolutionStatus::Optimal);
    let mut choice = warm.to_vec();
    let mut best_val = vec![0.5f64; p.num_classes()];
    for &(n, v) in &node_vars {
        let c = p.node_class[n as usize] as usize;
        let val = solution.value(v);
        if val > best_val[c] {
            best_val[c] = val;
            choice[c] = n;
        }
    }
    // Reject anything inconsistent (numerical trouble) rather than trust it.
    let ok = is_acyclic_complete(p, &choice);
    ok.then_some((choice, proven))
}

/// Order-variable values for the warm start: within each SCC, the longest
/// chain of chosen in-component edges below a live class.
fn warm_order(p: &Prepared, warm: &[u32], live: &[bool], comp: &[u32]) -> Vec<f64> {
    let mut memo = vec![f64::NAN; p.num_classes()];
    for c in 0..p.num_classes() {
        if !live[c] || !memo[c].is_nan() {
            continue;
        }
        let mut stack = vec![(c as u32, false)];
        while let Some((x, done)) = stack.pop() {
            let xi = x as usize;
            let kids = &p.node_children[warm[xi] as usize];
            let same = kids.iter().filter(|&&y| comp[y as usize] == comp[xi] && comp[xi] != NONE);
            if done {
                memo[xi] = same.map(|&y| memo[y as usize] + 1.0).fold(0.0, f64::max);
            } else if memo[xi].is_nan() {
                stack.push((x, true));
                stack.extend(same.filter(|&&y| memo[y as usize].is_nan()).map(|&y| (y, false)));
            }
        }
    }
    memo.into_iter().map(|v| if v.is_nan() { 0.0 } else { v }).collect()
}

/// Whether the choice is complete and acyclic on the part reachable from
/// the roots.
fn is_acyclic_complete(p: &Prepared, choice: &[u32]) -> bool {
    let mut state = vec![0u8; p.num_classes()];
    for &r in &p.roots {
        let mut stack = vec![(r, 0usize)];
        if state[r as usize] != 0 {
            continue;
        }
        state[r as usize] = 1;
        while let Some(&mut (c, ref mut i)) = stack.last_mut() {
            let n = choice[c as usize];
            if n == NONE || p.node_class[n as usize] != c {
                return false;
            }
            let kids = &p.node_children[n as usize];
            if *i < kids.len() {
                let y = kids[*i];
                *i += 1;
                match state[y as usize] {
                    0 => {
                        state[y as usize] = 1;
                        stack.push((y, 0));
                    }
                    1 => return false,
                    _ => {}
                }
            } else {
                state[c as usize] = 2;
                stack.pop();
            }
        }
    }
    true
}
