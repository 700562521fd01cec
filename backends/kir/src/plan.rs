//! Static memory planning: offsets of intermediate buffers in one arena.
//!
//! Greedy by size (Pisarchyk & Lee 2020, the offset calculation of TFLite's
//! planner): buffers are placed largest first, each at the lowest aligned offset
//! where it fits between the buffers already placed whose lifetimes overlap its
//! own (best fit: the smallest gap that holds it). Deterministic: ties break by
//! definition kernel, then request index.

/// One intermediate buffer: its size and the kernels that write it first (`def`)
/// and read it last (`last_use`, inclusive).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BufferReq {
    /// Bytes.
    pub size: usize,
    /// First kernel that touches it.
    pub def: usize,
    /// Last kernel that touches it (`>= def`).
    pub last_use: usize,
    /// A request whose buffer this one may overwrite in place (same size, and its
    /// last use is this one's `def`). Not used by this planner yet; kept in the API.
    pub inplace_of: Option<usize>,
}

/// A memory plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// Byte offset of each request in the arena.
    pub offsets: Vec<usize>,
    /// Arena size in bytes.
    pub arena_bytes: usize,
    /// Sum of the aligned sizes: the memory without reuse.
    pub no_reuse_bytes: usize,
    /// Peak over kernels of the aligned bytes live at that kernel: no plan is smaller.
    pub lower_bound: usize,
}

/// Why a plan could not be made.
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
    /// The alignment is not a power of two.
    #[error("alignment {0} is not a power of two")]
    Alignment(usize),
    /// Sizes overflow `usize`.
    #[error("buffer sizes overflow the address space")]
    Overflow,
    /// A plan places two live buffers on the same bytes (a planner bug).
    #[error("buffers {a} and {b} are live together and overlap")]
    Overlap {
        /// One request.
        a: usize,
        /// The other.
        b: usize,
    },
}

fn aligned(size: usize, align: usize) -> Option<usize> {
    size.checked_add(align - 1).map(|s| s & !(align - 1))
}

fn overlap_in_time(a: &BufferReq, b: &BufferReq) -> bool {
    a.def <= b.last_use && b.def <= a.last_use
}

/// Plans `reqs` with every offset a multiple of `align` (a power of two).
pub fn plan(reqs: &[BufferReq], align: usize) -> Result<Plan, PlanError> {
    if align == 0 || !align.is_power_of_two() {
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
        sizes.push(aligned(r.size, align).ok_or(PlanError::Overflow)?);
    }
    let no_reuse_bytes = sizes.iter().try_fold(0usize, |a, &s| a.checked_add(s)).ok_or(PlanError::Overflow)?;
    let lower_bound = lower_bound(reqs, &sizes);
    let mut order: Vec<usize> = (0..reqs.len()).collect();
    order.sort_by(|&a, &b| sizes[b].cmp(&sizes[a]).then(reqs[a].def.cmp(&reqs[b].def)).then(a.cmp(&b)));
    let mut offsets = vec![0usize; reqs.len()];
    let mut placed: Vec<usize> = Vec::with_capacity(reqs.len());
    let mut arena = 0usize;
    for &i in &order {
        // Occupied byte ranges of placed buffers live at the same time, by offset.
        let mut busy: Vec<(usize, usize)> = placed
            .iter()
            .filter(|&&j| sizes[j] > 0 && overlap_in_time(&reqs[i], &reqs[j]))
            .map(|&j| (offsets[j], offsets[j] + sizes[j]))
            .collect();
        busy.sort_unstable();
        let mut best: Option<(usize, usize)> = None; // (gap size, offset)
        let mut cursor = 0usize;
        for &(start, end) in &busy {
            if start > cursor {
                let gap = start - cursor;
                if gap >= sizes[i] && best.is_none_or(|(g, _)| gap < g) {
                    best = Some((gap, cursor));
                }
            }
            cursor = cursor.max(end);
        }
        offsets[i] = best.map_or(cursor, |(_, o)| o);
        arena = arena.max(offsets[i].checked_add(sizes[i]).ok_or(PlanError::Overflow)?);
        placed.push(i);
    }
    let plan = Plan {
        offsets,
        arena_bytes: arena,
        no_reuse_bytes,
        lower_bound,
    };
    plan.check(reqs, align)?;
    Ok(plan)
}

fn lower_bound(reqs: &[BufferReq], sizes: &[usize]) -> usize {
    let mut events: Vec<(usize, bool, usize)> = Vec::with_capacity(2 * reqs.len());
    for (r, &s) in reqs.iter().zip(sizes) {
        events.push((r.def, true, s));
        events.push((r.last_use + 1, false, s));
    }
    // Ends before starts at the same kernel: a buffer last used at k is dead at k+1.
    events.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)));
    let (mut live, mut peak) = (0usize, 0usize);
    for (_, start, s) in events {
        if start {
            live += s;
            peak = peak.max(live);
        } else {
            live -= s;
        }
    }
    peak
}

impl Plan {
    /// Checks that no two buffers live at the same kernel share a byte, that every
    /// offset is aligned and that every buffer lies inside the arena.
    pub fn check(&self, reqs: &[BufferReq], align: usize) -> Result<(), PlanError> {
        let sizes: Vec<usize> = reqs.iter().map(|r| aligned(r.size, align).unwrap_or(usize::MAX)).collect();
        for i in 0..reqs.len() {
            if self.offsets[i] % align != 0 || self.offsets[i].saturating_add(sizes[i]) > self.arena_bytes {
                return Err(PlanError::Overflow);
            }
            for j in i + 1..reqs.len() {
                let bytes_overlap = self.offsets[i] < self.offsets[j] + sizes[j] && self.offsets[j] < self.offsets[i] + sizes[i];
                if sizes[i] > 0 && sizes[j] > 0 && bytes_overlap && overlap_in_time(&reqs[i], &reqs[j]) {
                    return Err(PlanError::Overlap { a: i, b: j });
                }
            }
        }
        Ok(())
    }
}
