//! In-place chains and best-fit placement of the planner's items.

use super::{BufferReq, Order, legal_inplace};

/// One thing to place: a request, or a chain of requests that take each other's
/// bytes over in place (same size, consecutive lifetimes touching at one kernel).
struct Item {
    /// First kernel of the chain.
    start: usize,
    /// Last kernel of the chain.
    end: usize,
    /// Aligned bytes.
    size: usize,
}

/// Squeaky-wheel passes before the hill climb in [`Items::improve`].
const SQUEAKY_ROUNDS: usize = 16;

/// Above this many pairs of items live at a common kernel, placement scans the
/// placed items instead of keeping a conflict list per item (bounds the memory).
const MAX_CONFLICT_PAIRS: usize = 1 << 21;

/// The items of a request list, and which item each request belongs to.
pub(super) struct Items {
    items: Vec<Item>,
    /// For each item, the items live at a common kernel (`conflicts[at[i]..at[i + 1]]`),
    /// unless there are too many.
    conflicts: Option<(Vec<usize>, Vec<u32>)>,
    /// Item of each request.
    item_of: Vec<usize>,
    /// Predecessor of each request in its chain.
    inplace: Vec<Option<usize>>,
}

impl Items {
    /// Groups `reqs` (validated, with aligned `sizes`) into items: with `merge`,
    /// legal in-place pairs are linked into chains, earliest definition first,
    /// as long as no two requests of a chain other than neighbours are live at a
    /// common kernel.
    pub(super) fn new(reqs: &[BufferReq], sizes: &[usize], merge: bool) -> Items {
        let n = reqs.len();
        let mut pred: Vec<Option<usize>> = vec![None; n];
        let mut succ: Vec<Option<usize>> = vec![None; n];
        if merge {
            let mut pairs: Vec<(usize, usize)> = (0..n).filter_map(|j| legal_inplace(reqs, j).map(|i| (i, j))).collect();
            pairs.sort_unstable_by_key(|&(_, j)| (reqs[j].def, j));
            for (i, j) in pairs {
                // `i` must end its chain and `j` start its own; the kernel they
                // share, `k`, must see no other member of either chain: the
                // predecessor of `i` ends at `i.def`, the successor of `j` starts
                // at `j.last_use`, and the other members lie further out.
                let k = reqs[j].def;
                if succ[i].is_some() || pred[j].is_some() {
                    continue;
                }
                if (reqs[i].def == k && pred[i].is_some()) || (reqs[j].last_use == k && succ[j].is_some()) {
                    continue;
                }
                let mut head = i;
                while let Some(p) = pred[head] {
                    head = p;
                }
                if head == j {
                    continue; // a cycle (only possible with one-kernel lifetimes)
                }
                pred[j] = Some(i);
                succ[i] = Some(j);
            }
        }
        let mut items = Vec::new();
        let mut item_of = vec![usize::MAX; n];
        for head in (0..n).filter(|&h| pred[h].is_none()) {
            let (mut end, mut member) = (reqs[head].last_use, head);
            item_of[head] = items.len();
            while let Some(next) = succ[member] {
                member = next;
                item_of[member] = items.len();
                end = end.max(reqs[member].last_use);
            }
            items.push(Item {
                start: reqs[head].def,
                end,
                size: sizes[head],
            });
        }
        let conflicts = conflict_lists(&items, MAX_CONFLICT_PAIRS);
        Items {
            items,
            conflicts,
            item_of,
            inplace: pred,
        }
    }

    /// For each request, the one whose bytes it takes over in place.
    pub(super) fn inplace(&self) -> &[Option<usize>] {
        &self.inplace
    }

    /// The offset of each request from the offset of each item.
    pub(super) fn request_offsets(&self, item_offsets: &[usize]) -> Vec<usize> {
        self.item_of.iter().map(|&t| item_offsets[t]).collect()
    }

    /// The items in `order`.
    pub(super) fn order(&self, order: Order) -> Vec<usize> {
        match order {
            Order::Size => self.by_size((0..self.items.len()).collect()),
            Order::Breadth => self.by_breadth(),
            Order::Start => {
                let mut ids: Vec<usize> = (0..self.items.len()).collect();
                ids.sort_unstable_by_key(|&i| (self.items[i].start, std::cmp::Reverse(self.items[i].size), i));
                ids
            }
        }
    }

    /// Improves on `order` (placed at `offsets`, `arena`) while above `bound`:
    /// first up to [`SQUEAKY_ROUNDS`] "squeaky wheel" passes, each moving the
    /// items the previous pass put above `bound` to the front (each group keeps
    /// its order); then hill climbing from the best order so far: swap one to
    /// three random pairs, keep the new order when its arena is no larger. Passes
    /// are counted together against `passes`. The swaps come from a fixed-seed
    /// generator: the result is deterministic. Returns the best offsets and arena.
    pub(super) fn improve(
        &self,
        order: Vec<usize>,
        offsets: Vec<usize>,
        arena: usize,
        ceiling: Option<usize>,
        bound: usize,
        passes: usize,
    ) -> (Vec<usize>, usize) {
        let n = order.len();
        let mut best = (order.clone(), offsets.clone(), arena);
        let (mut order, mut offsets) = (order, offsets);
        let mut rng = SplitMix(0x5EED);
        for pass in 0..passes {
            if best.2 <= bound || n < 2 {
                break;
            }
            let next = if pass < SQUEAKY_ROUNDS {
                let high = |&i: &usize| offsets[i] + self.items[i].size > bound;
                let mut next: Vec<usize> = order.iter().copied().filter(high).collect();
                next.extend(order.iter().copied().filter(|i| !high(i)));
                next
            } else {
                let mut next = best.0.clone();
                for _ in 0..1 + rng.below(3) {
                    next.swap(rng.below(n), rng.below(n));
                }
                next
            };
            let (next_offsets, size) = self.place(&next, ceiling);
            if size <= best.2 {
                best = (next.clone(), next_offsets.clone(), size);
            }
            (order, offsets) = (next, next_offsets);
        }
        (best.1, best.2)
    }

    /// Places the items in `order`, each at the smallest gap that holds it among
    /// the placed items live at a common kernel, else right above them. With a
    /// `ceiling` (a multiple of the alignment), the space up to it counts as a gap
    /// too, and an item in a gap that reaches the ceiling but not the floor goes
    /// against the ceiling, leaving the middle free: a chain of lifetimes then
    /// alternates between floor and ceiling. Returns the offset of each item and
    /// the arena size.
    pub(super) fn place(&self, order: &[usize], ceiling: Option<usize>) -> (Vec<usize>, usize) {
        let mut offsets = vec![0usize; self.items.len()];
        let mut placed = vec![false; self.items.len()];
        // Without conflict lists: placed items with bytes sorted by (offset, item).
        let mut by_offset: Vec<(usize, usize)> = Vec::new();
        // Byte ranges of the placed items that conflict with the one being placed.
        let mut busy: Vec<(usize, usize)> = Vec::new();
        let mut arena = 0usize;
        for &i in order {
            let it = &self.items[i];
            if it.size == 0 {
                continue;
            }
            busy.clear();
            match &self.conflicts {
                Some((at, list)) => {
                    busy.extend(list[at[i]..at[i + 1]].iter().map(|&j| j as usize).filter(|&j| placed[j]).map(|j| {
                        let o = offsets[j];
                        (o, o + self.items[j].size)
                    }));
                    busy.sort_unstable();
                }
                None => busy.extend(
                    by_offset
                        .iter()
                        .map(|&(o, j)| (o, &self.items[j]))
                        .filter_map(|(o, jt)| (jt.start <= it.end && it.start <= jt.end).then_some((o, o + jt.size))),
                ),
            }
            let offset = best_fit(&busy, it.size, ceiling);
            offsets[i] = offset;
            placed[i] = true;
            arena = arena.max(offset + it.size);
            if self.conflicts.is_none() {
                let at = by_offset.partition_point(|&p| p < (offset, i));
                by_offset.insert(at, (offset, i));
            }
        }
        (offsets, arena)
    }

    /// `ids` largest first; ties by start, then index.
    fn by_size(&self, mut ids: Vec<usize>) -> Vec<usize> {
        ids.sort_unstable_by_key(|&i| (std::cmp::Reverse(self.items[i].size), self.items[i].start, i));
        ids
    }

    /// Kernels (where some item starts) by decreasing live bytes, ties by kernel;
    /// at each, its unplaced live items largest first.
    fn by_breadth(&self) -> Vec<usize> {
        let items = &self.items;
        let n = items.len();
        let mut by_start: Vec<usize> = (0..n).collect();
        by_start.sort_unstable_by_key(|&i| (items[i].start, i));
        let mut ends: Vec<(usize, usize)> = items.iter().map(|it| (it.end, it.size)).collect();
        ends.sort_unstable();
        // (live bytes, kernel, an item starting there, items starting up to there)
        let mut kernels: Vec<(usize, usize, usize, usize)> = Vec::new();
        let (mut live, mut p, mut e) = (0usize, 0usize, 0usize);
        while p < n {
            let (k, first) = (items[by_start[p]].start, by_start[p]);
            while p < n && items[by_start[p]].start == k {
                live += items[by_start[p]].size;
                p += 1;
            }
            while e < n && ends[e].0 < k {
                live -= ends[e].1;
                e += 1;
            }
            kernels.push((live, k, first, p));
        }
        kernels.sort_unstable_by_key(|&(bytes, k, _, _)| (std::cmp::Reverse(bytes), k));
        let mut taken = vec![false; n];
        let mut order = Vec::with_capacity(n);
        for (_, k, first, upto) in kernels {
            if order.len() == n {
                break;
            }
            let fresh = |&i: &usize| !taken[i] && items[i].start <= k && k <= items[i].end;
            // Everything live at `k` is live together with `first`.
            let live: Vec<usize> = match &self.conflicts {
                Some((at, list)) => std::iter::once(first)
                    .chain(list[at[first]..at[first + 1]].iter().map(|&j| j as usize))
                    .filter(fresh)
                    .collect(),
                None => by_start[..upto].iter().copied().filter(fresh).collect(),
            };
            for i in self.by_size(live) {
                taken[i] = true;
                order.push(i);
            }
        }
        order
    }
}

/// SplitMix64: the deterministic source of [`Items::improve`]'s swaps.
struct SplitMix(u64);

impl SplitMix {
    /// Uniform-ish in `0..n` (`n > 0`).
    fn below(&mut self, n: usize) -> usize {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) % n as u64) as usize
    }
}

/// The offset for `size` bytes among the `busy` byte ranges (sorted by start):
/// the smallest gap that holds it, else right above them all. With a ceiling,
/// the space from the last busy byte up to it is a gap too, and a gap reaching
/// the ceiling but not the floor is used at its top.
fn best_fit(busy: &[(usize, usize)], size: usize, ceiling: Option<usize>) -> usize {
    let mut cursor = 0usize;
    let mut best: Option<(usize, usize)> = None; // (gap, offset)
    let mut consider = |lo: usize, hi: usize| {
        let gap = hi - lo;
        if gap >= size && best.is_none_or(|(g, _)| gap < g) {
            let top = lo > 0 && Some(hi) == ceiling;
            best = Some((gap, if top { hi - size } else { lo }));
        }
    };
    for &(start, end) in busy {
        if start > cursor {
            consider(cursor, start);
        }
        cursor = cursor.max(end);
    }
    if let Some(c) = ceiling.filter(|&c| c > cursor) {
        consider(cursor, c);
    }
    best.map_or(cursor, |(_, o)| o)
}

/// For each item, the items live at a common kernel, in CSR form; `None` past
/// `max_pairs` pairs (or more than `u32` items).
fn conflict_lists(items: &[Item], max_pairs: usize) -> Option<(Vec<usize>, Vec<u32>)> {
    let n = items.len();
    if u32::try_from(n).is_err() {
        return None;
    }
    let mut by_start: Vec<usize> = (0..n).collect();
    by_start.sort_unstable_by_key(|&i| (items[i].start, i));
    let mut pairs: Vec<(u32, u32)> = Vec::new();
    for (p, &i) in by_start.iter().enumerate() {
        for &j in by_start[p + 1..].iter().take_while(|&&j| items[j].start <= items[i].end) {
            if pairs.len() == max_pairs {
                return None;
            }
            pairs.push((i as u32, j as u32));
        }
    }
    let mut at = vec![0usize; n + 1];
    for &(i, j) in &pairs {
        at[i as usize + 1] += 1;
        at[j as usize + 1] += 1;
    }
    for k in 0..n {
        at[k + 1] += at[k];
    }
    let mut fill = at.clone();
    let mut list = vec![0u32; 2 * pairs.len()];
    for &(i, j) in &pairs {
        list[fill[i as usize]] = j;
        fill[i as usize] += 1;
        list[fill[j as usize]] = i;
        fill[j as usize] += 1;
    }
    Some((at, list))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The scan used past [`MAX_CONFLICT_PAIRS`] places exactly as the lists do.
    #[test]
    fn scan_and_conflict_lists_agree() {
        let mut state = 12345u64;
        let mut next = |m: usize| {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((state >> 33) as usize) % m
        };
        for _ in 0..200 {
            let n = next(80);
            let reqs: Vec<BufferReq> = (0..n)
                .map(|j| {
                    let def = next(30);
                    let of = next(n + 4);
                    BufferReq {
                        size: next(5) * 64,
                        def,
                        last_use: def + next(8),
                        inplace_of: (of < n && of != j).then_some(of),
                    }
                })
                .collect();
            let sizes: Vec<usize> = reqs.iter().map(|r| r.size).collect();
            for merge in [true, false] {
                let lists = Items::new(&reqs, &sizes, merge);
                assert!(lists.conflicts.is_some());
                let scan = Items {
                    conflicts: None,
                    ..Items::new(&reqs, &sizes, merge)
                };
                for kind in [Order::Size, Order::Breadth, Order::Start] {
                    let order = lists.order(kind);
                    assert_eq!(order, scan.order(kind));
                    for ceiling in [None, Some(256)] {
                        assert_eq!(lists.place(&order, ceiling), scan.place(&order, ceiling));
                    }
                }
            }
        }
    }
}
