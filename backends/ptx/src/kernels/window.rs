//! Reductions over axes and 2-D pooling: one thread per output element, in a
//! grid-stride loop, each looping over its own reduced set or window.
//!
//! There is no cooperation between threads: a reduction with few outputs and a
//! large reduced set (a global pooling of a big image) runs on few threads.
//! The lowering produces such reductions rarely and small (global pooling after
//! the convolutions, means over one feature axis), so the simple form is kept.
//!
//! Semantics are the CPU backend's (`eqopt-cpu`'s `reduce.rs` and `pool.rs`):
//! - reduce: the reduced dims are merged where contiguous, one counted loop per
//!   remaining dim, the innermost read [`LANES`] elements at a time into as
//!   many accumulators (as the CPU backend's vector lanes do; combined pairwise
//!   at the end); sum from `0`, mean the sum divided by the count (so `NaN` over
//!   an empty set), max from `-inf` with `max.f32` (NaNs ignored, as
//!   `f32::max`; `-inf` over an empty set);
//! - pool (NCHW or NHWC, pads and strides, no dilation): taps in row-major
//!   window order, taps in the padding skipped; max from `-inf` (padding never
//!   wins), average the sum over the window divided by the number of taps inside
//!   the input (exclude-pad) or by `kh·kw` (include-pad). The CPU backend
//!   rejects windows lying wholly in the padding; here such a window gives
//!   `-inf` (max), `NaN` (exclude-pad) or `0` (include-pad).

use super::warp::{advance, at, carried, carried_ptr, for_count, offset_at, update, update_if};
use super::{ELEMENTWISE_BLOCK, Emitted, Kc, blocks_for};
use crate::builder::{F32, Kb, R32};
use crate::error::PtxError;
use crate::index::{Walk, address, for_range, grid_stride, split_index, store_f32};
use eqopt_kir::{Kernel, PoolKind, Program, ReduceKind, View};

/// Emits kernel `index` (`kernel`) of `program` as entry `name`.
pub fn emit(program: &Program, name: &str, kernel: &Kernel, index: usize) -> Result<Emitted, PtxError> {
    let unsupported = |reason: String| PtxError::Unsupported {
        kernel: index,
        kind: kernel.name(),
        reason,
    };
    match kernel {
        Kernel::Reduce { kind, axes, x, out } => {
            let r = x.shape.len();
            let kept_ok = out.shape.len() == r && (0..r).all(|d| out.shape[d] == if axes.contains(&d) { 1 } else { x.shape[d] });
            if axes.iter().any(|&a| a >= r) || !kept_ok {
                return Err(unsupported(format!("axes {axes:?} of {:?} into {:?}", x.shape, out.shape)));
            }
            Ok(reduce(program, name, kernel, *kind, axes, x, out))
        }
        Kernel::Pool {
            kind,
            kernel: window,
            strides,
            pads,
            nhwc,
            x,
            out,
        } => {
            if x.shape.len() != 4 || out.shape.len() != 4 || strides.contains(&0) {
                return Err(unsupported(format!(
                    "pooling of {:?} into {:?} with strides {strides:?}",
                    x.shape, out.shape
                )));
            }
            let geometry = PoolGeometry {
                kind: *kind,
                window: *window,
                strides: *strides,
                pads: *pads,
                nhwc: *nhwc,
            };
            Ok(pool(program, name, kernel, &geometry, x, out))
        }
        _ => unreachable!("dispatched on the kind"),
    }
}

/// Accumulators a reduction keeps (over the innermost reduced dim, like the
/// CPU backend's vector lanes): fewer rounding steps in one chain, more loads in flight.
const LANES: usize = 8;

fn launch(n: usize) -> ([u32; 3], [u32; 3]) {
    ([blocks_for(n, ELEMENTWISE_BLOCK), 1, 1], [ELEMENTWISE_BLOCK, 1, 1])
}

/// Emits loops over `dims` (`(size, stride)`, outermost first) and calls `body`
/// with the element offset `base + Σ coordinate·stride` of each point, in
/// row-major order.
fn nest(kb: &mut Kb, dims: &[(usize, isize)], base: R32, body: &mut dyn FnMut(&mut Kb, R32)) {
    match dims.split_first() {
        None => body(kb, base),
        Some((&(n, s), rest)) => for_count(kb, n, |kb, i| {
            let off = offset_at(kb, base, i, s);
            nest(kb, rest, off, body);
        }),
    }
}

/// `out[kept] = op over the reduced coordinates of x[...]`.
fn reduce(program: &Program, name: &str, kernel: &Kernel, kind: ReduceKind, axes: &[usize], x: &View, out: &View) -> Emitted {
    let mut kc = Kc::new(program, name, ELEMENTWISE_BLOCK, kernel);
    let (xb, ob) = (kc.base(x.buffer), kc.base(out.buffer));
    // Output coordinates (the reduced axes have size 1 and drop out of the walk).
    let kept = Walk::new(&out.shape, &[&x.strides, &out.strides]);
    let red_shape: Vec<usize> = axes.iter().map(|&a| x.shape[a]).collect();
    let red_strides: Vec<isize> = axes.iter().map(|&a| x.strides[a]).collect();
    let red = Walk::new(&red_shape, &[&red_strides]);
    let dims: Vec<(usize, isize)> = red.shape.iter().copied().zip(red.strides[0].iter().copied()).collect();
    let count: usize = red_shape.iter().product();
    let n = out.numel();
    let kb = &mut kc.kb;
    kb.comment(&format!("{kind:?} of {:?} over axes {axes:?}: {count} elements a thread", x.shape));
    let (start, step) = grid_stride(kb);
    let cnt = kb.fconst(count as f32);
    let (init, op) = match kind {
        ReduceKind::Max => (f32::NEG_INFINITY, "max.f32"),
        ReduceKind::Sum | ReduceKind::Mean => (0.0, "add.rn.f32"),
    };
    // The innermost reduced dim is read LANES at a time into as many accumulators.
    let (outer_dims, (n_in, s_in)) = match dims.split_last() {
        Some((&last, rest)) => (rest, last),
        None => (&[][..], (1, 0)),
    };
    let lanes = n_in.clamp(1, LANES);
    for_range(kb, start, n, step, |kb, i| {
        let offs = kept.offsets(kb, i, &[x.offset, out.offset]);
        let accs: Vec<F32> = (0..lanes).map(|_| carried(kb, init)).collect();
        nest(kb, outer_dims, offs[0], &mut |kb, off| {
            let a = address(kb, xb, off, 4);
            let ptr = carried_ptr(kb, a);
            let fold = |kb: &mut Kb, count: usize| {
                for (k, &acc) in accs.iter().enumerate().take(count) {
                    let v = kb.f32();
                    kb.op(&format!("ld.global.f32 {v}, {}", at(ptr, 4 * k as isize * s_in)));
                    update(kb, op, acc, v);
                }
            };
            if n_in / lanes > 0 {
                for_count(kb, n_in / lanes, |kb, _| {
                    fold(kb, lanes);
                    advance(kb, ptr, 4 * (lanes as isize) * s_in);
                });
            }
            fold(kb, n_in % lanes);
        });
        // Combine the accumulators pairwise.
        let mut level = accs;
        while level.len() > 1 {
            level = level
                .chunks(2)
                .map(|pair| match *pair {
                    [a, b] => {
                        let d = kb.f32();
                        kb.op(&format!("{op} {d}, {a}, {b}"));
                        d
                    }
                    [a] => a,
                    _ => unreachable!("chunks of at most 2"),
                })
                .collect();
        }
        let acc = level[0];
        let y = match kind {
            ReduceKind::Mean => kb.fdiv(acc, cnt),
            _ => acc,
        };
        store_f32(kb, ob, offs[1], y);
    });
    let (grid, block) = launch(n);
    kc.finish(grid, block)
}

/// A pooling's parameters.
struct PoolGeometry {
    kind: PoolKind,
    window: [usize; 2],
    strides: [usize; 2],
    pads: [usize; 4],
    nhwc: bool,
}

/// 2-D pooling, one thread per output element.
fn pool(program: &Program, name: &str, kernel: &Kernel, g: &PoolGeometry, x: &View, out: &View) -> Emitted {
    let mut kc = Kc::new(program, name, ELEMENTWISE_BLOCK, kernel);
    let (xb, ob) = (kc.base(x.buffer), kc.base(out.buffer));
    // Axis positions of N, C, H, W in both views' layout.
    let [an, ac, ah, aw] = if g.nhwc { [0, 3, 1, 2] } else { [0, 1, 2, 3] };
    let (h, w) = (x.shape[ah], x.shape[aw]);
    let [kh, kw] = g.window;
    let n = out.numel();
    let kb = &mut kc.kb;
    kb.comment(&format!(
        "{:?} pooling {}, {kh}x{kw} window, strides {:?}, pads {:?}, of {:?} into {:?}",
        g.kind,
        if g.nhwc { "NHWC" } else { "NCHW" },
        g.strides,
        g.pads,
        x.shape,
        out.shape
    ));
    let (start, step) = grid_stride(kb);
    for_range(kb, start, n, step, |kb, i| {
        let c = split_index(kb, i, &out.shape);
        let base = crate::index::linear_combination(kb, x.offset, &[(c[an], x.strides[an]), (c[ac], x.strides[ac])]);
        // The window's top-left input position (negative in the padding).
        let ih0 = kb.r32();
        kb.op(&format!("mad.lo.s32 {ih0}, {}, {}, {}", c[ah], g.strides[0], -(g.pads[0] as i64)));
        let iw0 = kb.r32();
        kb.op(&format!("mad.lo.s32 {iw0}, {}, {}, {}", c[aw], g.strides[1], -(g.pads[1] as i64)));
        let is_max = g.kind == PoolKind::Max;
        let acc = carried(kb, if is_max { f32::NEG_INFINITY } else { 0.0 });
        let taps = kb.imm32(0);
        for_count(kb, kh, |kb, th| {
            let ih = kb.r32();
            kb.op(&format!("add.s32 {ih}, {ih0}, {th}"));
            let vh = kb.pred();
            kb.op(&format!("setp.lt.u32 {vh}, {ih}, {h}"));
            let row = offset_at(kb, base, ih, x.strides[ah]);
            for_count(kb, kw, |kb, tw| {
                let iw = kb.r32();
                kb.op(&format!("add.s32 {iw}, {iw0}, {tw}"));
                let inside = kb.pred();
                kb.op(&format!("setp.lt.u32 {inside}, {iw}, {w}"));
                kb.op(&format!("and.pred {inside}, {inside}, {vh}"));
                let off = offset_at(kb, row, iw, x.strides[aw]);
                let a = address(kb, xb, off, 4);
                let v = kb.f32();
                kb.op_if(inside, false, &format!("ld.global.f32 {v}, [{a}]"));
                update_if(kb, inside, if is_max { "max.f32" } else { "add.rn.f32" }, acc, v);
                kb.op_if(inside, false, &format!("add.u32 {taps}, {taps}, 1"));
            });
        });
        let y = match g.kind {
            PoolKind::Max => acc,
            PoolKind::AvgIncludePad => {
                let d = kb.fconst((kh as f32) * (kw as f32));
                kb.fdiv(acc, d)
            }
            PoolKind::AvgExcludePad => {
                let d = kb.f32();
                kb.op(&format!("cvt.rn.f32.u32 {d}, {taps}"));
                kb.fdiv(acc, d)
            }
        };
        let oo = crate::index::linear_combination(kb, out.offset, &[(i, 1)]);
        store_f32(kb, ob, oo, y);
    });
    let (grid, block) = launch(n);
    kc.finish(grid, block)
}
