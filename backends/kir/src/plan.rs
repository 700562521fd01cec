//! Static memory planning: offsets of intermediate buffers in one arena.
//!
//! Every request is a buffer with a size and a lifetime over the kernel order
//! (written first by kernel `def`, read last by kernel `last_use`, inclusive).
//! Two buffers may share bytes only when their lifetimes are disjoint, or when
//! one is the declared, legal in-place successor of the other (see
//! [`BufferReq::inplace_of`]); such a pair gets the same offset.
//!
//! The planner merges legal in-place pairs into chains, then lays the chains
//! out with best-fit placement (each at the smallest gap between already placed,
//! time-overlapping buffers that holds it, else above them) in three orders:
//! largest first ("greedy by size", the offset calculation of TFLite's planner,
//! Pisarchyk & Lee 2020), kernel by kernel from the busiest kernel down
//! ("greedy by breadth", same paper), and by definition kernel. Each order is
//! also tried under a ceiling at the lower bound, placing against the ceiling
//! what would otherwise go on top (on a chain of lifetimes buffers then
//! alternate between floor and ceiling, which reaches the bound), and without
//! merging in-place pairs. The smallest arena wins; while it is above the lower
//! bound, a bounded number of passes perturb the winner's order ("squeaky
//! wheel", then hill climbing with swaps from a fixed seed). Everything is
//! deterministic: ties break by definition kernel, then request index.

mod place;

use place::Items;

/// One intermediate buffer: its size and the kernels that write it first (`def`)
/// and read it last (`last_use`, inclusive).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BufferReq {
    /// Bytes (0 is allowed: such a buffer occupies nothing).
    pub size: usize,
    /// First kernel that touches it.
    pub def: usize,
    /// Last kernel that touches it (`>= def`).
    pub last_use: usize,
    /// A request (index into the same list) whose bytes this buffer may take
    /// over in place: its writer, an elementwise kernel, reads that buffer for the
    /// last time. The planner may honour it only when it is legal: same `size`,
    /// and the other's `last_use` equals this one's `def`; otherwise it is ignored.
    /// An index out of range, or the request itself, is an error.
    pub inplace_of: Option<usize>,
}

/// How [`plan_with`] orders the buffers it places.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Order {
    /// Largest first; ties by definition kernel, then index.
    Size,
    /// The kernels by decreasing total live bytes; at each, its unplaced buffers
    /// largest first.
    Breadth,
    /// By definition kernel; ties largest first, then index.
    Start,
}

/// One planning strategy: an order, whether legal in-place pairs are merged,
/// and whether placement works under a ceiling (the lower bound).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Strategy {
    /// Placement order.
    pub order: Order,
    /// Give legal in-place pairs one offset (else every buffer is separate).
    pub merge_inplace: bool,
    /// Treat the space up to the lower bound as free and put a buffer that would
    /// otherwise go on top of everything against that ceiling instead (buffers
    /// that fit nowhere under it still go on top).
    pub ceiling: bool,
}

impl Strategy {
    /// Every strategy, in the order [`plan`] tries them (the first of equally good
    /// plans wins).
    pub const ALL: [Strategy; 12] = {
        let orders = [Order::Size, Order::Breadth, Order::Start];
        let mut all = [Strategy {
            order: Order::Size,
            merge_inplace: true,
            ceiling: false,
        }; 12];
        let mut n = 0;
        while n < 12 {
            all[n] = Strategy {
                order: orders[n % 3],
                merge_inplace: n < 6,
                ceiling: n % 6 >= 3,
            };
            n += 1;
        }
        all
    };
}

/// A memory plan for a list of [`BufferReq`]s.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// Byte offset of each request in the arena, a multiple of [`Plan::align`].
    pub offsets: Vec<usize>,
    /// Arena size in bytes: every buffer lies in `0..arena_bytes`.
    pub arena_bytes: usize,
    /// Sum of the aligned sizes: the memory without reuse.
    pub no_reuse_bytes: usize,
    /// Peak over kernels of the aligned bytes live at that kernel, a legal in-place
    /// pair counted once where it touches: no valid plan has a smaller arena.
    pub lower_bound: usize,
    /// For each request, the request whose bytes it takes over in place (then
    /// both have the same offset); `None` when it has bytes of its own.
    pub inplace: Vec<Option<usize>>,
    /// The alignment the plan was made for.
    pub align: usize,
    /// The strategy that produced it.
    pub strategy: Strategy,
}

/// Why a plan could not be made, or why [`Plan::check`] rejects one.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// A request ends before it starts.
    #[error("buffer {index}: last use {last_use} before its definition {def}")]
    Lifetime {
        /// Request index.
        index: usize,
        /// Its definition.
        def: usize,
        /// Its last use.
        last_use: usize,
    },
    /// A request's `inplace_of` names itself or no request.
    #[error("buffer {index}: in-place candidate {target} is not another request")]
    InplaceIndex {
        /// Request index.
        index: usize,
        /// The index it names.
        target: usize,
    },
    /// The alignment is not a power of two.
    #[error("alignment {0} is not a power of two")]
    Alignment(usize),
    /// Sizes overflow `usize`.
    #[error("buffer sizes overflow the address space")]
    Overflow,
    /// A plan's vectors do not have one entry per request.
    #[error("the plan has {found} entries for {expected} requests")]
    Length {
        /// Number of requests.
        expected: usize,
        /// Entries in the plan.
        found: usize,
    },
    /// A plan places a buffer at an offset that is not a multiple of the alignment.
    #[error("buffer {index}: offset {offset} is not aligned")]
    Misaligned {
        /// Request index.
        index: usize,
        /// Its offset.
        offset: usize,
    },
    /// A plan places a buffer (partly) past the end of the arena.
    #[error("buffer {index} ends past the arena")]
    OutsideArena {
        /// Request index.
        index: usize,
    },
    /// A plan records an in-place pair that is not a legal declared pair, or
    /// whose offsets differ.
    #[error("buffer {index} cannot take over buffer {source_index} in place")]
    BadInplace {
        /// Request index.
        index: usize,
        /// The request it claims to take over.
        source_index: usize,
    },
    /// A plan places two live buffers on the same bytes (a planner bug).
    #[error("buffers {a} and {b} are live together and overlap")]
    Overlap {
        /// One request.
        a: usize,
        /// The other.
        b: usize,
    },
}

/// At most this many improvement passes after the strategies (see [`plan_with`]).
const IMPROVE_PASSES: usize = 256;

/// ... and at most this many item placements in all of them (bounds the time on
/// large programs: each pass places every item).
const IMPROVE_WORK: usize = 1 << 16;

/// Plans `reqs` with every offset a multiple of `align` (a power of two): the
/// smallest arena of [`Strategy::ALL`], refined as [`plan_with`] describes.
///
/// Errors: [`PlanError::Alignment`], [`PlanError::Lifetime`],
/// [`PlanError::InplaceIndex`], [`PlanError::Overflow`] (when the aligned sizes
/// do not sum within `usize`). The plan returned passes [`Plan::check`].
pub fn plan(reqs: &[BufferReq], align: usize) -> Result<Plan, PlanError> {
    plan_with(reqs, align, &Strategy::ALL)
}

/// Like [`plan`], trying only `strategies` (in order, stopping at one that
/// reaches the lower bound; the first of equally good plans wins; none means
/// `Strategy::ALL[0]`). Then, while the best arena is above the lower bound,
/// up to 256 more passes of the winner (fewer past 256
/// buffers: 2^16 buffer placements in all) perturb its order: 16 "squeaky
/// wheel" passes, each placing first what the previous one put above the lower
/// bound, then hill climbing (one to three pairs of the best order swapped,
/// kept when the arena is no larger). The swaps are drawn from a fixed seed:
/// the plan is deterministic. The smallest arena of all passes is kept.
pub fn plan_with(reqs: &[BufferReq], align: usize, strategies: &[Strategy]) -> Result<Plan, PlanError> {
    let sizes = aligned_sizes(reqs, align)?;
    let no_reuse_bytes = sizes.iter().try_fold(0usize, |a, &s| a.checked_add(s)).ok_or(PlanError::Overflow)?;
    // Every offset the placement computes ends at most at the sum of the sizes,
    // which fits: no arithmetic below overflows.
    let lower_bound = lower_bound(reqs, &sizes);
    let merged = Items::new(reqs, &sizes, true);
    let separate = Items::new(reqs, &sizes, false);
    let run = |s: Strategy| {
        let items = if s.merge_inplace { &merged } else { &separate };
        let order = items.order(s.order);
        let (offsets, arena) = items.place(&order, s.ceiling.then_some(lower_bound));
        (arena, offsets, s, order)
    };
    let (first, rest) = strategies.split_first().unwrap_or((&Strategy::ALL[0], &[]));
    let mut best = run(*first);
    for &s in rest {
        if best.0 == lower_bound {
            break; // nothing does better
        }
        let candidate = run(s);
        if candidate.0 < best.0 {
            best = candidate;
        }
    }
    // Improve on the winner's order, within a budget of item placements.
    let (arena, offsets, strategy, order) = best;
    let items = if strategy.merge_inplace { &merged } else { &separate };
    let passes = (IMPROVE_WORK / reqs.len().max(1)).min(IMPROVE_PASSES);
    let ceiling = strategy.ceiling.then_some(lower_bound);
    let (item_offsets, arena_bytes) = items.improve(order, offsets, arena, ceiling, lower_bound, passes);
    let plan = Plan {
        offsets: items.request_offsets(&item_offsets),
        arena_bytes,
        no_reuse_bytes,
        lower_bound,
        inplace: items.inplace().to_vec(),
        align,
        strategy,
    };
    plan.check(reqs)?;
    Ok(plan)
}

/// The aligned size of every request, after checking `align` and the requests.
fn aligned_sizes(reqs: &[BufferReq], align: usize) -> Result<Vec<usize>, PlanError> {
    if !align.is_power_of_two() {
        return Err(PlanError::Alignment(align));
    }
    let mut sizes = Vec::with_capacity(reqs.len());
    for (index, r) in reqs.iter().enumerate() {
        if r.last_use < r.def {
            return Err(PlanError::Lifetime {
                index,
                def: r.def,
                last_use: r.last_use,
            });
        }
        match r.inplace_of {
            Some(target) if target >= reqs.len() || target == index => {
                return Err(PlanError::InplaceIndex { index, target });
            }
            _ => {}
        }
        sizes.push(r.size.checked_next_multiple_of(align).ok_or(PlanError::Overflow)?);
    }
    Ok(sizes)
}

/// The request `j` may legally take over in place (see [`BufferReq::inplace_of`]).
/// `reqs` must have passed [`aligned_sizes`].
fn legal_inplace(reqs: &[BufferReq], j: usize) -> Option<usize> {
    let i = reqs[j].inplace_of?;
    (reqs[i].size == reqs[j].size && reqs[i].last_use == reqs[j].def).then_some(i)
}

/// Peak over kernels of the live aligned bytes, minus at each kernel the sizes of
/// the buffers read there for the last time that a legal in-place successor
/// defined there could take over. Each such source saves at most once, and any
/// set of pairs sharing bytes at one kernel uses distinct sources, so this never
/// exceeds the bytes a valid plan needs at that kernel.
fn lower_bound(reqs: &[BufferReq], sizes: &[usize]) -> usize {
    // (kernel, kind, bytes): kind 0 starts, 1 saves, 2 ends (after the kernel).
    let mut events: Vec<(usize, u8, usize)> = Vec::with_capacity(3 * reqs.len());
    let mut saved = vec![false; reqs.len()];
    for (j, (r, &s)) in reqs.iter().zip(sizes).enumerate() {
        events.push((r.def, 0, s));
        events.push((r.last_use, 2, s));
        match legal_inplace(reqs, j) {
            Some(i) if !saved[i] => {
                saved[i] = true;
                events.push((r.def, 1, sizes[i]));
            }
            _ => {}
        }
    }
    events.sort_unstable();
    let (mut live, mut saving, mut peak) = (0usize, 0usize, 0usize);
    for (n, &(k, kind, bytes)) in events.iter().enumerate() {
        match kind {
            0 => live += bytes,
            1 => saving += bytes,
            _ => {}
        }
        // Measure once per kernel, after its starts and savings, before its ends.
        let last_before_ends = events.get(n + 1).is_none_or(|&(k2, kind2, _)| k2 != k || kind2 == 2);
        if kind != 2 && last_before_ends {
            peak = peak.max(live - saving);
            saving = 0;
        }
        if kind == 2 {
            live -= bytes;
        }
    }
    peak
}

impl Plan {
    /// Checks the plan against the requests it was made for: one entry per
    /// request; every offset a multiple of [`Plan::align`]; every buffer inside
    /// `0..arena_bytes`; every recorded in-place pair legal and at one offset; and
    /// no two buffers live at a common kernel sharing a byte, except a recorded
    /// in-place pair. (Zero-size buffers share nothing.)
    pub fn check(&self, reqs: &[BufferReq]) -> Result<(), PlanError> {
        let sizes = aligned_sizes(reqs, self.align)?;
        for found in [self.offsets.len(), self.inplace.len()] {
            if found != reqs.len() {
                return Err(PlanError::Length {
                    expected: reqs.len(),
                    found,
                });
            }
        }
        for (index, (&offset, &size)) in self.offsets.iter().zip(&sizes).enumerate() {
            if offset % self.align != 0 {
                return Err(PlanError::Misaligned { index, offset });
            }
            if offset.checked_add(size).is_none_or(|end| end > self.arena_bytes) {
                return Err(PlanError::OutsideArena { index });
            }
        }
        for (index, &source) in self.inplace.iter().enumerate() {
            let Some(source_index) = source else { continue };
            if legal_inplace(reqs, index) != Some(source_index) || self.offsets[index] != self.offsets[source_index] {
                return Err(PlanError::BadInplace { index, source_index });
            }
        }
        // Sweep over time: compare each buffer with those still live at its def.
        let mut by_def: Vec<usize> = (0..reqs.len()).filter(|&i| sizes[i] > 0).collect();
        by_def.sort_unstable_by_key(|&i| (reqs[i].def, i));
        let mut live: Vec<usize> = Vec::new();
        for &a in &by_def {
            live.retain(|&b| reqs[b].last_use >= reqs[a].def);
            let (lo, hi) = (self.offsets[a], self.offsets[a] + sizes[a]);
            for &b in &live {
                let paired = self.inplace[a] == Some(b) || self.inplace[b] == Some(a);
                if !paired && self.offsets[b] < hi && lo < self.offsets[b] + sizes[b] {
                    return Err(PlanError::Overlap { a: a.min(b), b: a.max(b) });
                }
            }
            live.push(a);
        }
        Ok(())
    }
}
