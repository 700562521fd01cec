//! Running a launch: blocks one after another, and within a block the
//! scheduling of threads around barriers and warp collectives.
//!
//! The rules are those of the crate docs ("Execution model"): `Block::run`
//! alternates running every runnable thread (`exec::run`) with completing
//! the warp collectives whose lanes are all waiting (`Block::collectives`)
//! and, when none is, releasing the barrier or reporting a deadlock.

use crate::collective;
use crate::error::SimError;
use crate::exec::{self, Stop};
use crate::instr::{Entry, Op};
use crate::memory::{Fault, Global};
use crate::{Launch, LaunchStats};

/// Threads a block may have on the hardware we target.
pub(crate) const MAX_THREADS: u64 = 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Ready,
    Barrier,
    Collective,
    Done,
}

/// What one block needs besides the device memory.
struct Block<'e> {
    entry: &'e Entry,
    /// Register files of all threads, thread `t` at `regs[t * file ..]`.
    regs: Vec<u64>,
    file: usize,
    pcs: Vec<usize>,
    state: Vec<State>,
    shared: Vec<u8>,
    block_dim: [u32; 3],
    /// Index of the block being run.
    ctaid: [u32; 3],
    budget: u64,
    initial_budget: u64,
}

/// Validates the launch and runs every block of it.
pub(crate) fn launch(global: &mut Global, entry: &Entry, launch: &Launch, params: &[u64]) -> Result<LaunchStats, SimError> {
    let name = || entry.name.clone();
    if params.len() != entry.params.len() {
        return Err(SimError::ParamCount {
            entry: name(),
            expected: entry.params.len(),
            got: params.len(),
        });
    }
    if launch.grid.contains(&0) || launch.block.contains(&0) {
        return Err(SimError::EmptyLaunch {
            entry: name(),
            grid: launch.grid,
            block: launch.block,
        });
    }
    let threads: u64 = launch.block.iter().map(|&d| u64::from(d)).product();
    if threads > MAX_THREADS {
        return Err(SimError::TooManyThreads {
            entry: name(),
            threads,
            limit: MAX_THREADS,
            source_of_limit: "hardware",
        });
    }
    if let Some(max) = entry.maxntid {
        let limit: u64 = max.iter().map(|&d| u64::from(d)).product();
        if threads > limit {
            return Err(SimError::TooManyThreads {
                entry: name(),
                threads,
                limit,
                source_of_limit: ".maxntid",
            });
        }
    }
    let n = threads as usize;
    let file = entry.template.len();
    let mut template = entry.template.clone();
    let pb = Entry::param_base(entry.nregs) as usize;
    template[pb..pb + params.len()].copy_from_slice(params);
    let sb = Entry::special_base(entry.nregs) as usize;
    for i in 0..3 {
        template[sb + 3 + i] = u64::from(launch.block[i]);
        template[sb + 9 + i] = u64::from(launch.grid[i]);
    }
    let mut block = Block {
        entry,
        regs: vec![0; n * file],
        file,
        pcs: vec![0; n],
        state: vec![State::Ready; n],
        shared: vec![0; entry.shared_bytes as usize],
        block_dim: launch.block,
        ctaid: [0; 3],
        budget: launch.instruction_budget,
        initial_budget: launch.instruction_budget,
    };
    let [bx, by, _] = launch.block.map(|d| d as usize);
    let mut blocks = 0u64;
    for z in 0..launch.grid[2] {
        for y in 0..launch.grid[1] {
            for x in 0..launch.grid[0] {
                block.ctaid = [x, y, z];
                for i in 0..3 {
                    template[sb + 6 + i] = u64::from(block.ctaid[i]);
                }
                for (t, r) in block.regs.chunks_exact_mut(file).enumerate() {
                    r.copy_from_slice(&template);
                    r[sb] = (t % bx) as u64;
                    r[sb + 1] = ((t / bx) % by) as u64;
                    r[sb + 2] = (t / (bx * by)) as u64;
                    r[sb + 12] = (t % 32) as u64;
                }
                block.shared.fill(0);
                block.run(global)?;
                blocks += 1;
            }
        }
    }
    Ok(LaunchStats {
        instructions: launch.instruction_budget - block.budget,
        blocks,
    })
}

impl Block<'_> {
    fn thread_index(&self, t: usize) -> [u32; 3] {
        let [bx, by, _] = self.block_dim.map(|d| d as usize);
        [(t % bx) as u32, ((t / bx) % by) as u32, (t / (bx * by)) as u32]
    }

    fn fault(&self, t: usize, fault: Fault) -> SimError {
        let pc = self.pcs[t];
        let (entry, line, instruction) = (self.entry.name.clone(), self.entry.lines[pc], self.entry.texts[pc].clone());
        let (block, thread) = (self.ctaid, self.thread_index(t));
        match fault {
            Fault::OutOfBounds { space, addr, size } => SimError::OutOfBounds {
                entry,
                line,
                instruction,
                space,
                addr,
                size,
                block,
                thread,
            },
            Fault::Misaligned { space, addr, size } => SimError::Misaligned {
                entry,
                line,
                instruction,
                space,
                addr,
                size,
                block,
                thread,
            },
            Fault::DivisionByZero => SimError::DivisionByZero {
                entry,
                line,
                instruction,
                block,
                thread,
            },
            Fault::Budget => SimError::BudgetExceeded {
                entry,
                budget: self.initial_budget,
                line,
                instruction,
                block,
                thread,
            },
        }
    }

    /// Runs the current block to completion (registers and shared memory already initialised).
    fn run(&mut self, global: &mut Global) -> Result<(), SimError> {
        let n = self.pcs.len();
        self.pcs.fill(0);
        self.state.fill(State::Ready);
        let code = &self.entry.code;
        loop {
            for t in 0..n {
                if self.state[t] != State::Ready {
                    continue;
                }
                let r = &mut self.regs[t * self.file..(t + 1) * self.file];
                match exec::run(code, r, &mut self.pcs[t], global, &mut self.shared, &mut self.budget) {
                    Ok(Stop::Done) => self.state[t] = State::Done,
                    Ok(Stop::Barrier) => self.state[t] = State::Barrier,
                    Ok(Stop::Collective) => self.state[t] = State::Collective,
                    Err(f) => return Err(self.fault(t, f)),
                }
            }
            if self.collectives()? {
                continue;
            }
            let waiting = self.state.iter().filter(|&&s| s == State::Barrier).count();
            if waiting == 0 {
                return Ok(());
            }
            let ended = n - waiting;
            if ended > 0 {
                let first = self.state.iter().position(|&s| s == State::Barrier).unwrap_or(0);
                let pc = self.pcs[first];
                return Err(SimError::Deadlock {
                    entry: self.entry.name.clone(),
                    block: self.ctaid,
                    line: self.entry.lines[pc],
                    instruction: self.entry.texts[pc].clone(),
                    waiting: waiting as u32,
                    ended: ended as u32,
                });
            }
            for (s, pc) in self.state.iter_mut().zip(self.pcs.iter_mut()) {
                *s = State::Ready;
                *pc += 1;
            }
        }
    }

    /// Executes every warp collective all of whose lanes are waiting at it.
    /// Returns whether any ran. Called when no thread is runnable.
    fn collectives(&mut self) -> Result<bool, SimError> {
        let n = self.pcs.len();
        let mut ran = false;
        for w in 0..n.div_ceil(32) {
            let lanes = w * 32..n.min(w * 32 + 32);
            let Some(first) = lanes.clone().find(|&t| self.state[t] == State::Collective) else {
                continue;
            };
            let pc = self.pcs[first];
            let line = self.entry.lines[pc];
            let instruction = || self.entry.texts[pc].clone();
            if let Some(t) = lanes
                .clone()
                .find(|&t| self.state[t] == State::Barrier || (self.state[t] == State::Collective && self.pcs[t] != pc))
            {
                return Err(SimError::Divergence {
                    entry: self.entry.name.clone(),
                    block: self.ctaid,
                    warp: w as u32,
                    line,
                    instruction: instruction(),
                    other_line: self.entry.lines[self.pcs[t]],
                });
            }
            let live = lanes.clone().filter(|&t| self.state[t] != State::Done).count();
            if live < 32 {
                return Err(SimError::PartialWarp {
                    entry: self.entry.name.clone(),
                    block: self.ctaid,
                    warp: w as u32,
                    line,
                    instruction: instruction(),
                    live: live as u32,
                });
            }
            let warp = &mut self.regs[w * 32 * self.file..(w * 32 + 32) * self.file];
            match self.entry.code[pc].op {
                Op::Shfl { d, a, b, mode } => collective::shfl(warp, self.file, d, a, b, mode),
                Op::Mma { index } => collective::mma(warp, self.file, &self.entry.mma[index as usize]),
                _ => unreachable!("exec::run stops with Stop::Collective only at shfl and mma"),
            }
            for t in lanes {
                self.state[t] = State::Ready;
                self.pcs[t] = pc + 1;
            }
            ran = true;
        }
        Ok(ran)
    }
}
