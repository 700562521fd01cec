//! Row normalizations: softmax over the last axis and layer normalization over
//! the trailing dims from `axis`.
//!
//! One warp per row, [`WARPS`] warps a block, rows over the grid's warps in a
//! warp-stride loop. A row is read in strided passes (lane `l` takes elements
//! `l, l + 32, ...`), each pass ending in a butterfly reduction
//! (`shfl.sync.bfly`) that leaves the result in every lane; nothing is kept in
//! shared memory or registers between passes, so rows of any length work and
//! the input is read once per pass.
//!
//! The arithmetic is the CPU backend's (`eqopt-cpu`'s `reduce.rs`), only the
//! order of the additions differs:
//! - softmax: `m = max x` (`f32::max`'s NaN rule), `s = Σ exp(x - m)`,
//!   `out = exp(x - m) · (1/s)` (the exponential recomputed in the last pass).
//!   A row holding `+inf` or NaN, or all `-inf`, comes out NaN, as on the CPU.
//! - layer normalization: deviations from the row's first element `x0`,
//!   `md = Σ (x - x0) / n`, the biased variance `var = Σ ((x - x0) - md)² / n`
//!   from a second pass (FMA accumulation), `rstd = 1/√(var + ε)` and
//!   `out = fma(((x - x0) - md)·rstd, scale, bias)`.
//!
//! Views may be strided; the normalized dims of a layer normalization are
//! walked with [`Walk`] (merged where contiguous), `scale` and `bias` through
//! their own strides (broadcast strides 0 included).

use super::warp::{WARP, carried, for_step, launch, offset_at, update, warp_ids, warp_max, warp_sum};
use super::{Emitted, Kc};
use crate::builder::Kb;
use crate::error::PtxError;
use crate::index::{Walk, for_range, load_f32, store_f32};
use eqopt_kir::{Kernel, Program, View};

/// Warps a block.
pub const WARPS: u32 = 8;

/// Emits kernel `index` (`kernel`) of `program` as entry `name`.
pub fn emit(program: &Program, name: &str, kernel: &Kernel, index: usize) -> Result<Emitted, PtxError> {
    let unsupported = |reason: String| PtxError::Unsupported {
        kernel: index,
        kind: kernel.name(),
        reason,
    };
    match kernel {
        Kernel::Softmax { x, out } => {
            if out.shape != x.shape {
                return Err(unsupported(format!(
                    "output shape {:?} differs from the input's {:?}",
                    out.shape, x.shape
                )));
            }
            Ok(softmax(program, name, kernel, x, out))
        }
        Kernel::LayerNorm {
            x,
            scale,
            bias,
            axis,
            epsilon,
            out,
        } => {
            let axis = *axis;
            if axis > x.shape.len() || out.shape != x.shape {
                return Err(unsupported(format!("axis {axis} of {:?} into {:?}", x.shape, out.shape)));
            }
            for (what, v) in [("scale", scale), ("bias", bias)] {
                if v.shape != x.shape[axis..] {
                    return Err(unsupported(format!(
                        "{what} of shape {:?}, the normalized dims are {:?}",
                        v.shape,
                        &x.shape[axis..]
                    )));
                }
            }
            Ok(layer_norm(program, name, kernel, x, scale, bias, axis, *epsilon, out))
        }
        _ => unreachable!("dispatched on the kind"),
    }
}

/// Softmax along the last axis of `x` (a rank-0 `x` is one row of one element).
fn softmax(program: &Program, name: &str, kernel: &Kernel, x: &View, out: &View) -> Emitted {
    let r = x.shape.len();
    let (n, xs, os) = match r {
        0 => (1, 0, 0),
        _ => (x.shape[r - 1], x.strides[r - 1], out.strides[r - 1]),
    };
    let outer = &x.shape[..r.saturating_sub(1)];
    let rows = if n == 0 { 0 } else { outer.iter().product::<usize>() };
    let mut kc = Kc::new(program, name, WARPS * WARP, kernel);
    let (xb, xe, ob) = (kc.base(x.buffer), kc.elem(x.buffer), kc.base(out.buffer));
    let walk = Walk::new(outer, &[&x.strides[..outer.len()], &out.strides[..outer.len()]]);
    let kb = &mut kc.kb;
    kb.comment(&format!(
        "softmax over the last axis of {:?}: {rows} rows of {n}, a warp a row",
        x.shape
    ));
    let ids = warp_ids(kb, WARPS);
    let lane = ids.lane;
    for_range(kb, ids.warp, rows, ids.warps, |kb, row| {
        let bases = walk.offsets(kb, row, &[x.offset, out.offset]);
        let (xr, or) = (bases[0], bases[1]);
        // Pass 1: the row's maximum.
        let m = carried(kb, f32::NEG_INFINITY);
        for_step(kb, lane, n, WARP, |kb, j| {
            let off = offset_at(kb, xr, j, xs);
            let v = load_f32(kb, xb, xe, off);
            update(kb, "max.f32", m, v);
        });
        let m = warp_max(kb, m);
        // Pass 2: Σ exp(x - m).
        let s = carried(kb, 0.0);
        for_step(kb, lane, n, WARP, |kb, j| {
            let off = offset_at(kb, xr, j, xs);
            let v = load_f32(kb, xb, xe, off);
            let d = kb.fsub(v, m);
            let e = kb.exp(d);
            update(kb, "add.rn.f32", s, e);
        });
        let s = warp_sum(kb, s);
        let inv = kb.frcp(s);
        // Pass 3: exp(x - m) / s.
        for_step(kb, lane, n, WARP, |kb, j| {
            let off = offset_at(kb, xr, j, xs);
            let v = load_f32(kb, xb, xe, off);
            let d = kb.fsub(v, m);
            let e = kb.exp(d);
            let y = kb.fmul(e, inv);
            let oo = offset_at(kb, or, j, os);
            store_f32(kb, ob, oo, y);
        });
    });
    let (grid, block) = launch(rows, WARPS);
    kc.finish(grid, block)
}

/// Layer normalization over dims `axis..` of `x`, then `· scale + bias`.
#[allow(clippy::too_many_arguments)]
fn layer_norm(
    program: &Program,
    name: &str,
    kernel: &Kernel,
    x: &View,
    scale: &View,
    bias: &View,
    axis: usize,
    epsilon: f32,
    out: &View,
) -> Emitted {
    let n: usize = x.shape[axis..].iter().product();
    let rows = if n == 0 { 0 } else { x.shape[..axis].iter().product::<usize>() };
    let mut kc = Kc::new(program, name, WARPS * WARP, kernel);
    let (xb, xe, ob) = (kc.base(x.buffer), kc.elem(x.buffer), kc.base(out.buffer));
    let (sb, se, bb, be) = (
        kc.base(scale.buffer),
        kc.elem(scale.buffer),
        kc.base(bias.buffer),
        kc.elem(bias.buffer),
    );
    let outer = Walk::new(&x.shape[..axis], &[&x.strides[..axis], &out.strides[..axis]]);
    // The normalized dims: x, scale, bias and the (dense) output.
    let inner = Walk::new(
        &x.shape[axis..],
        &[&x.strides[axis..], &scale.strides, &bias.strides, &out.strides[axis..]],
    );
    let kb = &mut kc.kb;
    kb.comment(&format!(
        "layer normalization of {:?} over dims {axis}..: {rows} rows of {n}, a warp a row",
        x.shape
    ));
    let ids = warp_ids(kb, WARPS);
    let lane = ids.lane;
    let nf = kb.fconst(n as f32);
    let eps = kb.fconst(epsilon);
    for_range(kb, ids.warp, rows, ids.warps, |kb, row| {
        let bases = outer.offsets(kb, row, &[x.offset, out.offset]);
        let (xr, or) = (bases[0], bases[1]);
        // Element j of the row: offsets in x, scale, bias and out.
        let elem = |kb: &mut Kb, j| {
            let offs = inner.offsets(kb, j, &[0, scale.offset, bias.offset, 0]);
            let xo = kb.r32();
            kb.op(&format!("add.s32 {xo}, {xr}, {}", offs[0]));
            let oo = kb.r32();
            kb.op(&format!("add.s32 {oo}, {or}, {}", offs[3]));
            (xo, offs[1], offs[2], oo)
        };
        let x0 = load_f32(kb, xb, xe, xr);
        // Pass 1: md = Σ (x - x0) / n.
        let sd = carried(kb, 0.0);
        for_step(kb, lane, n, WARP, |kb, j| {
            let (xo, ..) = elem(kb, j);
            let v = load_f32(kb, xb, xe, xo);
            let d = kb.fsub(v, x0);
            update(kb, "add.rn.f32", sd, d);
        });
        let sd = warp_sum(kb, sd);
        let md = kb.fdiv(sd, nf);
        // Pass 2: var = Σ ((x - x0) - md)² / n.
        let sq = carried(kb, 0.0);
        for_step(kb, lane, n, WARP, |kb, j| {
            let (xo, ..) = elem(kb, j);
            let v = load_f32(kb, xb, xe, xo);
            let d = kb.fsub(v, x0);
            let d = kb.fsub(d, md);
            kb.op(&format!("fma.rn.f32 {sq}, {d}, {d}, {sq}"));
        });
        let sq = warp_sum(kb, sq);
        let var = kb.fdiv(sq, nf);
        let ve = kb.fadd(var, eps);
        let sd = kb.fsqrt(ve);
        let rstd = kb.frcp(sd);
        // Pass 3: out = ((x - x0) - md)·rstd·scale + bias.
        for_step(kb, lane, n, WARP, |kb, j| {
            let (xo, so, bo, oo) = elem(kb, j);
            let v = load_f32(kb, xb, xe, xo);
            let g = load_f32(kb, sb, se, so);
            let b = load_f32(kb, bb, be, bo);
            let d = kb.fsub(v, x0);
            let d = kb.fsub(d, md);
            let t = kb.fmul(d, rstd);
            let y = kb.ffma(t, g, b);
            store_f32(kb, ob, oo, y);
        });
    });
    let (grid, block) = launch(rows, WARPS);
    kc.finish(grid, block)
}
