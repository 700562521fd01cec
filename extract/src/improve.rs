//! Any-time improvement of an acyclic choice by exact-delta local search.
//!
//! [`State`] holds one node per feasible class (a *global* choice: also for
//! classes the roots do not currently reach), kept acyclic at all times, and
//! maintains incrementally:
//! * reference counts: how many chosen edges (plus root marks) point at each
//!   class; a class is in the extracted DAG iff its count is positive, and
//!   the DAG cost is updated exactly when a switch adds or drops subgraphs;
//! * a height potential `h` with `h[parent] > h[child]` on every chosen edge,
//!   which prunes the cycle check of a switch to classes above the switched
//!   one.
//!
//! A *move* switches one class to another node, then *repairs*: for each
//! class the switch newly pulled into the DAG, parents of it that could now
//! share it are switched too when that alone improves. The whole compound
//! move is kept only if it lowers the DAG cost, so a profitable merge such as
//! "compute two matmuls as one wider matmul plus splits" is found even though
//! its first step alone costs more.

use crate::prepare::{NONE, Prepared};

/// Improvement smaller than this is treated as no improvement.
pub(crate) const EPS: f64 = 1e-10;

/// An acyclic global choice with incremental DAG cost (see module docs).
pub(crate) struct State<'p> {
    p: &'p Prepared,
    choice: Vec<u32>,
    h: Vec<u32>,
    rc: Vec<u32>,
    total: f64,
    stamp: Vec<u32>,
    epoch: u32,
    undo: Vec<(u32, u32)>,
    added: Vec<u32>,
    stack: Vec<u32>,
}

impl<'p> State<'p> {
    /// The safe choice of every feasible class, then `preferred[c]` for each
    /// class (bottom-up) wherever that keeps the choice acyclic.
    pub fn with_preferred(p: &'p Prepared, preferred: &[u32]) -> State<'p> {
        let nc = p.num_classes();
        let mut s = State {
            p,
            choice: p.safe_choice.clone(),
            h: p.rank.iter().map(|&r| r.wrapping_add(1)).collect(),
            rc: vec![0; nc],
            total: 0.0,
            stamp: vec![0; nc],
            epoch: 0,
            undo: Vec::new(),
            added: Vec::new(),
            stack: Vec::new(),
        };
        let mut order: Vec<u32> = (0..nc as u32).filter(|&c| p.feasible[c as usize]).collect();
        order.sort_by_key(|&c| p.rank[c as usize]);
        for c in order {
            let b = preferred[c as usize];
            if b != NONE && b != s.choice[c as usize] && !s.creates_cycle(c, b) {
                s.apply(c, b);
            }
        }
        s.recount();
        s
    }

    /// Recomputes reference counts and the total from scratch.
    fn recount(&mut self) {
        self.rc.iter_mut().for_each(|r| *r = 0);
        self.total = 0.0;
        for i in 0..self.p.roots.len() {
            let r = self.p.roots[i];
            self.inc(r);
        }
        self.added.clear();
    }

    /// The current choice vector (indexed by class).
    pub fn choices(&self) -> &[u32] {
        &self.choice
    }

    /// Whether class `c` is in the extracted DAG.
    pub fn is_live(&self, c: u32) -> bool {
        self.rc[c as usize] > 0
    }

    /// Whether choosing node `b` for class `c` would close a cycle.
    pub fn creates_cycle(&mut self, c: u32, b: u32) -> bool {
        self.epoch = self.epoch.wrapping_add(1);
        if self.epoch == 0 {
            self.stamp.iter_mut().for_each(|s| *s = 0);
            self.epoch = 1;
        }
        let hc = self.h[c as usize];
        self.stack.clear();
        self.stack.extend_from_slice(&self.p.node_children[b as usize]);
        while let Some(x) = self.stack.pop() {
            if x == c {
                return true;
            }
            let xi = x as usize;
            if self.h[xi] <= hc || self.stamp[xi] == self.epoch {
                continue;
            }
            self.stamp[xi] = self.epoch;
            let n = self.choice[xi] as usize;
            self.stack.extend_from_slice(&self.p.node_children[n]);
        }
        false
    }

    /// Sets `choice[c] = b` (must keep the choice acyclic), updating heights,
    /// reference counts and the total.
    fn apply(&mut self, c: u32, b: u32) {
        let old = std::mem::replace(&mut self.choice[c as usize], b);
        self.fix_heights(c);
        if self.rc[c as usize] > 0 {
            let p = self.p;
            for &y in &p.node_children[b as usize] {
                self.inc(y);
            }
            for &y in &p.node_children[old as usize] {
                self.dec(y);
            }
            self.total += p.node_cost[b as usize] - p.node_cost[old as usize];
        }
    }

    /// Switches `c` to `b`, recording the old choice for [`State::rollback`].
    fn switch(&mut self, c: u32, b: u32) {
        self.undo.push((c, self.choice[c as usize]));
        self.apply(c, b);
    }

    /// Undoes journaled switches until only `mark` remain.
    pub fn rollback(&mut self, mark: usize) {
        while self.undo.len() > mark {
            let (c, old) = self.undo.pop().expect("len > mark");
            self.apply(c, old);
        }
    }

    fn fix_heights(&mut self, c: u32) {
        let p = self.p;
        let need = p.node_children[self.choice[c as usize] as usize]
            .iter()
            .map(|&y| self.h[y as usize])
            .max()
            .map_or(0, |m| m + 1);
        if self.h[c as usize] >= need {
            return;
        }
        self.h[c as usize] = need;
        let mut work = vec![c];
        while let Some(x) = work.pop() {
            let hx = self.h[x as usize];
            for &e in &p.parents[x as usize] {
                let pc = p.node_class[e as usize];
                if self.choice[pc as usize] == e && self.h[pc as usize] <= hx {
                    self.h[pc as usize] = hx + 1;
                    work.push(pc);
                }
            }
        }
    }

    fn inc(&mut self, y: u32) {
        let p = self.p;
        let mut stack = vec![y];
        while let Some(x) = stack.pop() {
            let xi = x as usize;
            self.rc[xi] += 1;
            if self.rc[xi] == 1 {
                let n = self.choice[xi] as usize;
                self.total += p.node_cost[n];
                self.added.push(x);
                stack.extend_from_slice(&p.node_children[n]);
            }
        }
    }

    fn dec(&mut self, y: u32) {
        let p = self.p;
        let mut stack = vec![y];
        while let Some(x) = stack.pop() {
            let xi = x as usize;
            self.rc[xi] -= 1;
            if self.rc[xi] == 0 {
                let n = self.choice[xi] as usize;
                self.total -= p.node_cost[n];
                stack.extend_from_slice(&p.node_children[n]);
            }
        }
    }

    /// The current length of the undo journal, for [`State::rollback`].
    pub fn mark(&self) -> usize {
        self.undo.len()
    }

    /// Forgets the undo journal (the current state becomes the base).
    pub fn commit(&mut self) {
        self.undo.clear();
    }

    /// Tries the compound move "switch `c` to `b`, then repair"; keeps it
    /// (journaled, see [`State::mark`]) and returns `true` iff it lowers the
    /// DAG cost by more than [`EPS`].
    pub fn try_move(&mut self, c: u32, b: u32) -> bool {
        if self.choice[c as usize] == b || self.creates_cycle(c, b) {
            return false;
        }
        let mark = self.undo.len();
        let start = self.total;
        self.added.clear();
        self.switch(c, b);
        let mut i = 0;
        while i < self.added.len() {
            let x = self.added[i];
            i += 1;
            if self.rc[x as usize] == 0 {
                continue;
            }
            let p = self.p;
            for &e in &p.parents[x as usize] {
                let pc = p.node_class[e as usize];
                if pc == c || self.rc[pc as usize] == 0 || self.choice[pc as usize] == e {
                    continue;
                }
                if self.creates_cycle(pc, e) {
                    continue;
                }
                let (m2, a2, t0) = (self.undo.len(), self.added.len(), self.total);
                self.switch(pc, e);
                if self.total - t0 >= -EPS {
                    self.rollback(m2);
                    self.added.truncate(a2);
                }
            }
        }
        if self.total - start < -EPS {
            true
        } else {
            self.rollback(mark);
            false
        }
    }

    /// Forces `c` to `b` (journaled) if that stays acyclic, whatever the
    /// cost.
    pub fn force(&mut self, c: u32, b: u32) -> bool {
        if self.choice[c as usize] == b || self.creates_cycle(c, b) {
            return false;
        }
        self.switch(c, b);
        true
    }

    /// Sweeps all live classes and their alternatives with [`State::try_move`]
    /// until a sweep finds nothing or `out_of_time` says stop. Returns whether
    /// the sweep loop converged (a local optimum).
    pub fn descend(&mut self, out_of_time: &mut dyn FnMut() -> bool) -> bool {
        let p = self.p;
        loop {
            let mut improved = false;
            for c in 0..p.num_classes() as u32 {
                let alts = &p.class_nodes[c as usize];
                if alts.len() < 2 || self.rc[c as usize] == 0 {
                    continue;
                }
                if out_of_time() {
                    return false;
                }
                for &b in alts {
                    if self.rc[c as usize] == 0 {
                        break;
                    }
                    improved |= self.try_move(c, b);
                }
            }
            if !improved {
                return true;
            }
        }
    }
}
