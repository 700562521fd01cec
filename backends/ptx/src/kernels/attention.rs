//! Fused attention `out = softmax(q·kt ∘ s + mask) · v` with the online
//! softmax: the `[S, T]` scores are computed and consumed 32 keys at a time and
//! never stored.
//!
//! Design: one warp per work item `(batch index, query row, tile of E)`,
//! [`WARPS`] warps a block, items over the grid's warps in a warp-stride loop.
//! An item's lanes split the output columns: lane `l` accumulates columns
//! `c0 + l + 32·i` for `i < cols` in registers, `cols = min(⌈E/32⌉,`
//! [`MAX_COLS_PER_LANE`]`)`, so one tile covers `32·cols` columns and a wider `E`
//! is split into several tiles (each recomputing the scores: registers stay
//! bounded for any `E`, and `E < 32` or not a multiple of 32 just leaves lanes
//! idle in the last columns).
//!
//! Keys go in chunks of 32; in a chunk lane `j` scores key `k0 + j`: the dot
//! product of the query row with column `k0 + j` of `kt` over `D` (FMAs in
//! increasing `d`, unrolled by 4), scaled (`·s`, or `/s` for `divide`), plus the
//! mask element (the mask broadcast to `[.., S, T]` through its strides).
//! Lanes past `T` in the last chunk (emitted separately, with its constant key
//! count) read the last key and score `-inf`. Then the online-softmax step of
//! the CPU backend (`eqopt-cpu`'s `attention.rs`), with the chunk's maximum and
//! sum from butterfly shuffles:
//! `m' = max(m, max_j x_j)`, `p_j = exp(x_j - m')`, `corr = exp(m - m')`,
//! `l' = l·corr + Σ p_j`, `acc' = acc·corr + Σ_j p_j·v[k0 + j]`, where each
//! `p_j` reaches every lane by `shfl.sync.idx`. While every score so far is
//! `-inf` (`m' = -inf`) the step uses `p_j = exp(x_j)` (0, or NaN for a NaN
//! score) and `corr = 1`, as the CPU skips the rescaling; at the end
//! `out = acc · (1/l)`. A fully masked row (`l = 0`) and `T = 0` give NaN, as on
//! the CPU. Only the order of the additions differs from the CPU backend.
//!
//! Every view is read through its own strides (batch dims included, broadcast
//! strides 0), and the output is written through its strides (dense, or the
//! heads-interleaved view of a BSHD output).

use super::warp::{
    WARP, advance, at, carried, carried_ptr, for_count, for_step, launch, offset_at, shfl_idx, warp_ids, warp_max, warp_sum,
};
use super::{Emitted, Kc};
use crate::builder::{F32, Kb, Pred, R32, R64};
use crate::error::PtxError;
use crate::index::{Walk, address, for_range, load_f32};
use eqopt_kir::{ElemType, Kernel, Program, View};

/// Warps a block.
pub const WARPS: u32 = 4;
/// The most output columns one lane accumulates (registers); an `E` wider than
/// `32·MAX_COLS_PER_LANE` is split into tiles.
pub const MAX_COLS_PER_LANE: usize = 8;
/// The dot product over `D` is unrolled this many times.
const DOT_UNROLL: usize = 4;

/// Emits kernel `index` (`kernel`) of `program` as entry `name`.
pub fn emit(program: &Program, name: &str, kernel: &Kernel, index: usize) -> Result<Emitted, PtxError> {
    let Kernel::Attention {
        q,
        kt,
        v,
        out,
        mask,
        scale,
        divide,
    } = kernel
    else {
        unreachable!("dispatched on the kind")
    };
    let r = q.shape.len();
    let shapes_ok = r >= 2 && {
        let (s, d) = (q.shape[r - 2], q.shape[r - 1]);
        let batch = &q.shape[..r - 2];
        let t = kt.shape.last().copied().unwrap_or(0);
        let e = v.shape.last().copied().unwrap_or(0);
        let is = |view: &View, rows: usize, cols: usize| {
            view.shape.len() == r && view.shape[..r - 2] == *batch && view.shape[r - 2..] == [rows, cols]
        };
        is(kt, d, t) && is(v, t, e) && is(out, s, e) && mask.as_ref().is_none_or(|m| is(m, s, t)) && scale.numel() >= 1
    };
    if !shapes_ok {
        return Err(PtxError::Unsupported {
            kernel: index,
            kind: kernel.name(),
            reason: format!(
                "views of shapes q {:?}, kt {:?}, v {:?}, out {:?}, mask {:?}, scale {:?} do not form an attention",
                q.shape,
                kt.shape,
                v.shape,
                out.shape,
                mask.as_ref().map(|m| &m.shape),
                scale.shape
            ),
        });
    }
    let views = Views {
        q,
        kt,
        v,
        out,
        mask: mask.as_ref(),
        scale,
        divide: *divide,
    };
    Ok(emit_attention(program, name, kernel, &views))
}

/// The operands of an attention kernel.
struct Views<'k> {
    q: &'k View,
    kt: &'k View,
    v: &'k View,
    out: &'k View,
    mask: Option<&'k View>,
    scale: &'k View,
    divide: bool,
}

/// Registers and constants of one work item, shared by its key chunks.
struct Item {
    /// Scores scale (`s`).
    scale: F32,
    /// Byte address of the query row's first element.
    q_row: R64,
    /// `kt`'s buffer, and the element offset of the item's batch entry in it.
    kt: (R64, R32),
    /// The mask's buffer and element type, and the element offset of the query row in it.
    mask: Option<(R64, ElemType, R32)>,
    /// The lane.
    lane: R32,
    /// Running maximum, running sum (in place).
    m: F32,
    l: F32,
    /// Accumulators, one per column the lane owns (in place).
    acc: Vec<F32>,
    /// Where column `i` of the lane is inside `E` (`None`: always).
    col_ok: Vec<Option<Pred>>,
    /// Byte address of the lane's first column in the next key's row of `v` (in place).
    v_ptr: R64,
}

fn emit_attention(program: &Program, name: &str, kernel: &Kernel, a: &Views<'_>) -> Emitted {
    let r = a.q.shape.len();
    let batch = &a.q.shape[..r - 2];
    let (s, d, t, e) = (a.q.shape[r - 2], a.q.shape[r - 1], a.kt.shape[r - 1], a.v.shape[r - 1]);
    let cols = e.div_ceil(WARP as usize).clamp(1, MAX_COLS_PER_LANE);
    let tile = cols * WARP as usize;
    let tiles = e.div_ceil(tile);
    let items = batch.iter().product::<usize>() * s * tiles;
    let mut kc = Kc::new(program, name, WARPS * WARP, kernel);
    let (qb, ktb, vb, ob) = (
        kc.base(a.q.buffer),
        kc.base(a.kt.buffer),
        kc.base(a.v.buffer),
        kc.base(a.out.buffer),
    );
    let mb = a.mask.map(|m| (kc.base(m.buffer), kc.elem(m.buffer)));
    let (scb, sce) = (kc.base(a.scale.buffer), kc.elem(a.scale.buffer));
    let mut bviews: Vec<&View> = vec![a.q, a.kt, a.v, a.out];
    bviews.extend(a.mask);
    let bstrides: Vec<&[isize]> = bviews.iter().map(|v| &v.strides[..r - 2]).collect();
    let walk = Walk::new(batch, &bstrides);
    let bases: Vec<usize> = bviews.iter().map(|v| v.offset).collect();
    let kb = &mut kc.kb;
    kb.comment(&format!(
        "attention: batch {batch:?}, S {s}, T {t}, D {d}, E {e}; {tiles} column tiles of {tile}, {cols} columns a lane; a warp an item"
    ));
    let ids = warp_ids(kb, WARPS);
    let lane = ids.lane;
    let so = kb.imm32(a.scale.offset as i64);
    let scale = load_f32(kb, scb, sce, so);
    for_range(kb, ids.warp, items, ids.warps, |kb, w| {
        // w = ((batch · S) + row) · tiles + tile
        let (bs, tix) = if tiles == 1 {
            (w, None)
        } else {
            let (q, rem) = (kb.r32(), kb.r32());
            kb.op(&format!("div.u32 {q}, {w}, {tiles}"));
            kb.op(&format!("rem.u32 {rem}, {w}, {tiles}"));
            (q, Some(rem))
        };
        let (b, row) = (kb.r32(), kb.r32());
        kb.op(&format!("div.u32 {b}, {bs}, {s}"));
        kb.op(&format!("rem.u32 {row}, {bs}, {s}"));
        let offs = walk.offsets(kb, b, &bases);
        let q_off = offset_at(kb, offs[0], row, a.q.strides[r - 2]);
        let q_row = address(kb, qb, q_off, 4);
        let out_row = offset_at(kb, offs[3], row, a.out.strides[r - 2]);
        let mask_row = a.mask.map(|m| offset_at(kb, offs[4], row, m.strides[r - 2]));
        // The lane's first column.
        let col0 = match tix {
            None => lane,
            Some(ti) => {
                let c = kb.r32();
                kb.op(&format!("mad.lo.u32 {c}, {ti}, {tile}, {lane}"));
                c
            }
        };
        let col_ok: Vec<Option<Pred>> = (0..cols)
            .map(|i| {
                if tiles == 1 && WARP as usize * (i + 1) <= e {
                    return None;
                }
                let c = kb.r32();
                kb.op(&format!("add.u32 {c}, {col0}, {}", WARP as usize * i));
                let p = kb.pred();
                kb.op(&format!("setp.lt.u32 {p}, {c}, {e}"));
                Some(p)
            })
            .collect();
        let v_off = offset_at(kb, offs[2], col0, a.v.strides[r - 1]);
        let v_addr = address(kb, vb, v_off, 4);
        let v_ptr = carried_ptr(kb, v_addr);
        let mut item = Item {
            scale,
            q_row,
            kt: (ktb, offs[1]),
            mask: mb.zip(mask_row).map(|((m, me), row)| (m, me, row)),
            lane,
            m: carried(kb, f32::NEG_INFINITY),
            l: carried(kb, 0.0),
            acc: (0..cols).map(|_| carried(kb, 0.0)).collect(),
            col_ok,
            v_ptr,
        };
        let full = t / WARP as usize * WARP as usize;
        let zero = kb.imm32(0);
        for_step(kb, zero, full, WARP, |kb, k0| chunk(kb, a, &item, k0, WARP as usize));
        if full < t {
            let k0 = kb.imm32(full as i64);
            chunk(kb, a, &item, k0, t - full);
        }
        // out = acc / l.
        let inv = kb.frcp(item.l);
        let o_off = offset_at(kb, out_row, col0, a.out.strides[r - 1]);
        let o_ptr = address(kb, ob, o_off, 4);
        for (i, acc) in std::mem::take(&mut item.acc).into_iter().enumerate() {
            let y = kb.fmul(acc, inv);
            let st = format!(
                "st.global.f32 {}, {y}",
                at(o_ptr, 4 * (WARP as usize * i) as isize * a.out.strides[r - 1])
            );
            match item.col_ok[i] {
                None => kb.op(&st),
                Some(p) => kb.op_if(p, false, &st),
            }
        }
    });
    let (grid, block) = launch(items, WARPS);
    kc.finish(grid, block)
}

/// One chunk of `count ≤ 32` keys from `k0`: scores, the online-softmax step
/// and the accumulation of `p · v`.
fn chunk(kb: &mut Kb, a: &Views<'_>, it: &Item, k0: R32, count: usize) {
    let r = a.q.shape.len();
    let (d, t) = (a.q.shape[r - 1], a.kt.shape[r - 1]);
    // This lane's key (clamped to the last key past T).
    let key = kb.r32();
    kb.op(&format!("add.u32 {key}, {k0}, {}", it.lane));
    let valid = (count < WARP as usize).then(|| {
        let p = kb.pred();
        kb.op(&format!("setp.lt.u32 {p}, {}, {count}", it.lane));
        kb.op(&format!("min.u32 {key}, {key}, {}", t - 1));
        p
    });
    let x = score(kb, a, it, key, d);
    let x = match valid {
        None => x,
        Some(p) => {
            let ninf = kb.fconst(f32::NEG_INFINITY);
            kb.fsel(p, x, ninf)
        }
    };
    // Online softmax.
    let cm = warp_max(kb, x);
    let m_new = kb.fmax(it.m, cm);
    let ninf = kb.fconst(f32::NEG_INFINITY);
    let fin = kb.fsetp("ne", m_new, ninf);
    let zero = kb.fconst(0.0);
    let shift = kb.fsel(fin, m_new, zero);
    let xd = kb.fsub(x, shift);
    let p = kb.exp(xd);
    let cs = warp_sum(kb, p);
    let dm = kb.fsub(it.m, m_new);
    let corr = kb.exp(dm);
    let one = kb.fconst(1.0);
    let corr = kb.fsel(fin, corr, one);
    kb.op(&format!("mul.rn.f32 {0}, {0}, {corr}", it.l));
    kb.op(&format!("add.rn.f32 {0}, {0}, {cs}", it.l));
    kb.op(&format!("mov.f32 {}, {m_new}", it.m));
    for &acc in &it.acc {
        kb.op(&format!("mul.rn.f32 {acc}, {acc}, {corr}"));
    }
    // acc += Σ_j p_j · v[k0 + j, cols].
    let vcs = a.v.strides[r - 1];
    let vrs = a.v.strides[r - 2];
    for_count(kb, count, |kb, j| {
        let pj = shfl_idx(kb, p, &j.to_string());
        for (i, &acc) in it.acc.iter().enumerate() {
            let vv = kb.f32();
            let ld = format!("ld.global.f32 {vv}, {}", at(it.v_ptr, 4 * (WARP as usize * i) as isize * vcs));
            let fma = format!("fma.rn.f32 {acc}, {pj}, {vv}, {acc}");
            match it.col_ok[i] {
                None => {
                    kb.op(&ld);
                    kb.op(&fma);
                }
                Some(ok) => {
                    kb.op_if(ok, false, &ld);
                    kb.op_if(ok, false, &fma);
                }
            }
        }
        advance(kb, it.v_ptr, 4 * vrs);
    });
}

/// Lane's score `(q_row · kt[:, key]) ∘ s + mask[row, key]`, the dot product
/// with FMAs in increasing `d`, [`DOT_UNROLL`] at a time.
fn score(kb: &mut Kb, a: &Views<'_>, it: &Item, key: R32, d: usize) -> F32 {
    let r = a.q.shape.len();
    let kt_off = offset_at(kb, it.kt.1, key, a.kt.strides[r - 1]);
    let kt_addr = address(kb, it.kt.0, kt_off, 4);
    let kp = carried_ptr(kb, kt_addr);
    let qp = carried_ptr(kb, it.q_row);
    let dot = carried(kb, 0.0);
    let (qs, ks) = (4 * a.q.strides[r - 1], 4 * a.kt.strides[r - 2]);
    let steps = |kb: &mut Kb, u: usize| {
        for i in 0..u as isize {
            let (qv, kv) = (kb.f32(), kb.f32());
            kb.op(&format!("ld.global.f32 {qv}, {}", at(qp, i * qs)));
            kb.op(&format!("ld.global.f32 {kv}, {}", at(kp, i * ks)));
            kb.op(&format!("fma.rn.f32 {dot}, {qv}, {kv}, {dot}"));
        }
        advance(kb, qp, u as isize * qs);
        advance(kb, kp, u as isize * ks);
    };
    if d / DOT_UNROLL > 0 {
        for_count(kb, d / DOT_UNROLL, |kb, _| steps(kb, DOT_UNROLL));
    }
    if d % DOT_UNROLL > 0 {
        steps(kb, d % DOT_UNROLL);
    }
    let x = if a.divide { kb.fdiv(dot, it.scale) } else { kb.fmul(dot, it.scale) };
    match (a.mask, it.mask) {
        (Some(m), Some((mb, me, row))) => {
            let mo = offset_at(kb, row, key, m.strides[r - 1]);
            let mv = load_f32(kb, mb, me, mo);
            kb.fadd(x, mv)
        }
        _ => x,
    }
}
