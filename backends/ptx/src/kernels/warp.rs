//! Warp-level building blocks of the kernels that give one warp a row (softmax,
//! layer normalization) or a query (attention): lane and warp indices, loops,
//! and butterfly reductions and broadcasts with `shfl.sync` (all 32 lanes take
//! part in every shuffle, as `SUBSET.md` requires).

use crate::builder::{F32, Kb, Pred, R32, R64, fimm};
use crate::index::for_range;

/// Lanes in a warp.
pub const WARP: u32 = 32;

/// A thread's lane and its warp's index in the grid.
pub struct WarpIds {
    /// `%laneid` (0..32).
    pub lane: R32,
    /// The warp's index over the whole grid.
    pub warp: R32,
    /// Warps in the grid (the step of a warp-stride loop).
    pub warps: R32,
}

/// The lane, global warp index and warp count, for blocks of `warps_per_block` warps.
pub fn warp_ids(kb: &mut Kb, warps_per_block: u32) -> WarpIds {
    let tid = kb.special("%tid.x");
    let lane = kb.r32();
    kb.op(&format!("and.b32 {lane}, {tid}, 31"));
    let wib = kb.r32();
    kb.op(&format!("shr.u32 {wib}, {tid}, 5"));
    let ctaid = kb.special("%ctaid.x");
    let nctaid = kb.special("%nctaid.x");
    let warp = kb.r32();
    kb.op(&format!("mad.lo.u32 {warp}, {ctaid}, {warps_per_block}, {wib}"));
    let warps = kb.r32();
    kb.op(&format!("mul.lo.u32 {warps}, {nctaid}, {warps_per_block}"));
    WarpIds { lane, warp, warps }
}

/// Grid and block for `items` warp-sized work items, `warps_per_block` warps a
/// block (at most [`super::MAX_GRID_BLOCKS`] blocks; a warp-stride loop does the rest).
pub fn launch(items: usize, warps_per_block: u32) -> ([u32; 3], [u32; 3]) {
    ([super::blocks_for(items, warps_per_block), 1, 1], [warps_per_block * WARP, 1, 1])
}

/// `for i in start..n step step` where `step` is an immediate.
pub fn for_step(kb: &mut Kb, start: R32, n: usize, step: u32, body: impl FnOnce(&mut Kb, R32)) {
    let s = kb.imm32(step as i64);
    for_range(kb, start, n, s, body);
}

/// `for i in 0..n`.
pub fn for_count(kb: &mut Kb, n: usize, body: impl FnOnce(&mut Kb, R32)) {
    let z = kb.imm32(0);
    for_step(kb, z, n, 1, body);
}

/// `base + i·stride` (signed 32-bit element offsets).
pub fn offset_at(kb: &mut Kb, base: R32, i: R32, stride: isize) -> R32 {
    let d = kb.r32();
    match stride {
        0 => kb.op(&format!("mov.u32 {d}, {base}")),
        1 => kb.op(&format!("add.s32 {d}, {base}, {i}")),
        s => kb.op(&format!("mad.lo.s32 {d}, {i}, {}, {base}", s as i32)),
    }
    d
}

/// `[base + imm]` (PTX's `[%rd+-IMM]` form for a negative `imm`).
pub fn at(base: R64, imm: isize) -> String {
    match imm {
        0 => format!("[{base}]"),
        i if i < 0 => format!("[{base}+-{}]", -i),
        i => format!("[{base}+{i}]"),
    }
}

/// A 64-bit register holding a copy of `a`, for in-place pointer updates.
pub fn carried_ptr(kb: &mut Kb, a: R64) -> R64 {
    let p = kb.r64();
    kb.op(&format!("mov.b64 {p}, {a}"));
    p
}

/// `p += bytes`.
pub fn advance(kb: &mut Kb, p: R64, bytes: isize) {
    if bytes != 0 {
        kb.op(&format!("add.s64 {p}, {p}, {bytes}"));
    }
}

/// A fresh `f32` register holding `v` that the caller updates in place (a
/// loop-carried value).
pub fn carried(kb: &mut Kb, v: f32) -> F32 {
    let r = kb.f32();
    kb.op(&format!("mov.f32 {r}, {}", fimm(v)));
    r
}

/// `acc = op(acc, v)` in place (`op` a two-operand `f32` instruction such as `add.rn.f32`).
pub fn update(kb: &mut Kb, op: &str, acc: F32, v: F32) {
    kb.op(&format!("{op} {acc}, {acc}, {v}"));
}

/// `acc = op(acc, v)` in place where `p` holds.
pub fn update_if(kb: &mut Kb, p: Pred, op: &str, acc: F32, v: F32) {
    kb.op_if(p, false, &format!("{op} {acc}, {acc}, {v}"));
}

fn butterfly(kb: &mut Kb, x: F32, op: &str) -> F32 {
    let mut acc = x;
    for off in [16, 8, 4, 2, 1] {
        let t = kb.f32();
        kb.op(&format!("shfl.sync.bfly.b32 {t}, {acc}, {off}, 31, 0xffffffff"));
        let d = kb.f32();
        kb.op(&format!("{op} {d}, {acc}, {t}"));
        acc = d;
    }
    acc
}

/// The maximum of `x` over the warp, in every lane (`max.f32`: NaNs ignored
/// unless every lane holds one, as `f32::max`).
pub fn warp_max(kb: &mut Kb, x: F32) -> F32 {
    butterfly(kb, x, "max.f32")
}

/// The sum of `x` over the warp, in every lane (a butterfly: every lane adds
/// the same pairs in the same order, so all lanes hold the same bits).
pub fn warp_sum(kb: &mut Kb, x: F32) -> F32 {
    butterfly(kb, x, "add.rn.f32")
}

/// `x` of lane `src` (a register or an immediate), in every lane.
pub fn shfl_idx(kb: &mut Kb, x: F32, src: &str) -> F32 {
    let d = kb.f32();
    kb.op(&format!("shfl.sync.idx.b32 {d}, {x}, {src}, 31, 0xffffffff"));
    d
}
