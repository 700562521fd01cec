//! The 2-D convolution kernel, NCHW/OIHW or NHWC/HWIO, any stride, padding,
//! dilation and groups, optional bias `[O]`, then the epilogue. Two designs,
//! chosen like the CPU backend's:
//!
//! - **Implicit GEMM** (one group, or groups with at least 16 input and 16
//!   output channels each): per group, the product of the weights and the
//!   input's patches through the tiling core of [`super::tile`] (256 threads,
//!   64 × 64 output tiles, a 4 × 4 register tile per thread, `fma.rn.f32`,
//!   8320 bytes of shared memory), with the images folded into the pixel dim.
//!   No im2col buffer: the patch loader turns the reduction index `k` and the
//!   output pixel into input coordinates (padding reads as 0).
//!   - NCHW: `C[o, (img, oh, ow)] = W[o, (c, kh, kw)] · X̂[(c, kh, kw), (img, oh, ow)]`;
//!     A is the weights (contiguous along `k`), B the patches.
//!   - NHWC: `C[(img, oh, ow), o] = X̂[(img, oh, ow), (kh, kw, c)] · W[(kh, kw, c), o]`;
//!     A is the patches (contiguous along `c`), B the weights.
//!
//!   The grid is `[tiles, 1, groups]`: `%ctaid.z` is the group, which offsets
//!   the input channels by `z·C/groups` and the output channels by `z·O/groups`.
//! - **Direct** (grouped convolutions with fewer than 16 input or output
//!   channels per group, depthwise included): one thread per output element in
//!   a grid-stride loop over the output (256 threads a block, no shared
//!   memory), summing its group's `C/groups × KH × KW` taps with `fma.rn.f32`.
//!   A tiled product would waste most of a 64-wide tile there.
//!
//! Both add the bias of the output channel, then run the epilogue (operand 0
//! the sum, operands 1.. the extras at the output coordinates), then store.
//! Weights may be `f32`, `f16` or `bf16` (widened exactly as they are read);
//! every operand is read through its view's strides.

use super::tile::{self, Arith, THREADS, Tiling, load_guarded};
use super::{ELEMENTWISE_BLOCK, Emitted, Kc, blocks_for};
use crate::builder::{F32, Kb, Pred, R32, R64};
use crate::error::PtxError;
use crate::expr::emit_expr;
use crate::index::combine;
use crate::index::{Walk, for_range, grid_stride, load_f32, split_index, store_f32};
use eqopt_kir::{ConvGeometry, ElemType, Epilogue, Kernel, Program, View};

/// Channels per group below which a grouped convolution runs the direct kernel.
const DIRECT_BELOW: usize = 16;
/// The most groups one launch covers (`%ctaid.z`).
const MAX_GROUPS: usize = 65_535;

/// Sizes of one convolution.
#[derive(Clone, Copy, Debug)]
struct Dims {
    imgs: usize,
    h: usize,
    w: usize,
    o: usize,
    kh: usize,
    kw: usize,
    oh: usize,
    ow: usize,
    /// Input channels per group.
    ig: usize,
    /// Output channels per group.
    og: usize,
}

/// Element strides of the views in the logical order: `x` as `[N, C, H, W]`,
/// `w` as `[O, I/g, KH, KW]`, whatever the layout.
#[derive(Clone, Copy, Debug)]
struct Strides {
    x: [isize; 4],
    w: [isize; 4],
}

/// What the kernel needs of its operands once the parameters are loaded.
struct Regs {
    x: R64,
    w: R64,
    w_elem: ElemType,
    out: R64,
    bias: Option<(R64, usize, isize)>,
    extras: Vec<(R64, usize, Vec<isize>)>,
}

/// Emits kernel `index` (`kernel`) of `program` as entry `name`.
pub fn emit(program: &Program, name: &str, kernel: &Kernel, index: usize) -> Result<Emitted, PtxError> {
    let Kernel::Conv {
        x,
        w,
        bias,
        out,
        geometry: g,
        epilogue,
    } = kernel
    else {
        unreachable!("dispatched on the kind")
    };
    let fail = |reason: String| PtxError::Unsupported {
        kernel: index,
        kind: "conv",
        reason,
    };
    let (d, st) = dims(x, w, out, g).map_err(fail)?;
    if bias.as_ref().is_some_and(|b| b.shape.iter().product::<usize>() != d.o) {
        return Err(fail(format!(
            "a bias of shape {:?} for {} channels",
            bias.as_ref().map(|b| &b.shape),
            d.o
        )));
    }
    if epilogue.iter().flat_map(|e| e.extras.iter()).any(|e| e.shape != out.shape) {
        return Err(fail(format!(
            "an epilogue operand does not have the output's shape {:?}",
            out.shape
        )));
    }
    let direct = g.group > 1 && d.ig.min(d.og) < DIRECT_BELOW;
    let threads = if direct { ELEMENTWISE_BLOCK } else { THREADS };
    let mut kc = Kc::new(program, name, threads, kernel);
    if out.numel() == 0 {
        kc.kb.comment("empty output");
        return Ok(kc.finish([1, 1, 1], [threads, 1, 1]));
    }
    let regs = Regs {
        x: kc.base(x.buffer),
        w: kc.base(w.buffer),
        w_elem: kc.elem(w.buffer),
        out: kc.base(out.buffer),
        // The bias's stride along its one non-unit dim (any rank: [O], [1, O, 1, 1]).
        bias: bias.as_ref().map(|b| {
            let s = b.shape.iter().zip(&b.strides).find(|(n, _)| **n > 1).map_or(0, |(_, s)| *s);
            (kc.base(b.buffer), b.offset, s)
        }),
        extras: epilogue
            .iter()
            .flat_map(|e| e.extras.iter())
            .map(|e| (kc.base(e.buffer), e.offset, e.strides.clone()))
            .collect(),
    };
    kc.kb.comment(&format!(
        "conv {} x {:?} * {:?} -> {:?}, {} groups, strides {:?}, pads {:?}, dilations {:?}, {}",
        if g.nhwc { "nhwc" } else { "nchw" },
        x.shape,
        w.shape,
        out.shape,
        g.group,
        g.strides,
        g.pads,
        g.dilations,
        if direct { "direct" } else { "implicit gemm" }
    ));
    let k = Conv {
        d,
        st,
        g,
        x_off: x.offset,
        w_off: w.offset,
        out_off: out.offset,
        regs: &regs,
        epilogue: epilogue.as_ref(),
    };
    if direct {
        let n = out.numel();
        k.direct(&mut kc.kb, n);
        return Ok(kc.finish([blocks_for(n, ELEMENTWISE_BLOCK), 1, 1], [ELEMENTWISE_BLOCK, 1, 1]));
    }
    if g.group > MAX_GROUPS {
        return Err(fail(format!("{} groups exceed the grid", g.group)));
    }
    let tiling = k.implicit(&mut kc.kb).ok_or_else(|| fail("the output exceeds the grid".into()))?;
    Ok(kc.finish([tiling.tiles() as u32, 1, g.group as u32], [THREADS, 1, 1]))
}

/// The sizes and logical strides of a convolution, or why they are inconsistent.
fn dims(x: &View, w: &View, out: &View, g: &ConvGeometry) -> Result<(Dims, Strides), String> {
    if x.shape.len() != 4 || w.shape.len() != 4 || out.shape.len() != 4 {
        return Err(format!("views of ranks {}, {}, {}", x.shape.len(), w.shape.len(), out.shape.len()));
    }
    // Logical orders: x [N, C, H, W], w [O, I/g, KH, KW], out [N, O, OH, OW].
    let (xp, wp, op) = if g.nhwc {
        ([0, 3, 1, 2], [3, 2, 0, 1], [0, 3, 1, 2])
    } else {
        ([0, 1, 2, 3], [0, 1, 2, 3], [0, 1, 2, 3])
    };
    let pick = |v: &View, p: [usize; 4]| (p.map(|i| v.shape[i]), p.map(|i| v.strides[i]));
    let ((xs, xst), (ws, wst), (os, _)) = (pick(x, xp), pick(w, wp), pick(out, op));
    let [imgs, c, h, wd] = xs;
    let [o, ig, kh, kw] = ws;
    let [oh, ow] = [os[2], os[3]];
    let group = g.group;
    let size = |n: usize, p0: usize, p1: usize, k: usize, dl: usize, s: usize| {
        let span = k.saturating_sub(1) * dl + 1;
        (s > 0 && n + p0 + p1 >= span).then(|| (n + p0 + p1 - span) / s + 1)
    };
    let want = (
        size(h, g.pads[0], g.pads[2], kh, g.dilations[0], g.strides[0]),
        size(wd, g.pads[1], g.pads[3], kw, g.dilations[1], g.strides[1]),
    );
    let ok = group > 0
        && c % group == 0
        && o % group == 0
        && ig == c / group
        && os[0] == imgs
        && os[1] == o
        && kh > 0
        && kw > 0
        && want == (Some(oh), Some(ow));
    if !ok {
        return Err(format!(
            "input {:?}, weights {:?}, output {:?} and geometry {g:?} disagree",
            x.shape, w.shape, out.shape
        ));
    }
    let d = Dims {
        imgs,
        h,
        w: wd,
        o,
        kh,
        kw,
        oh,
        ow,
        ig,
        og: o / group,
    };
    Ok((d, Strides { x: xst, w: wst }))
}

/// One convolution being emitted.
struct Conv<'a> {
    d: Dims,
    st: Strides,
    g: &'a ConvGeometry,
    x_off: usize,
    w_off: usize,
    out_off: usize,
    regs: &'a Regs,
    epilogue: Option<&'a Epilogue>,
}

impl Conv<'_> {
    /// The input row and column tapped by output `(oh, ow)` at kernel
    /// `(kh, kw)`, and whether they are inside the input (not padding).
    fn tap(&self, kb: &mut Kb, oh: R32, ow: R32, kh: R32, kw: R32) -> (R32, R32, Pred) {
        let g = self.g;
        let ih = kb.r32();
        let iw = kb.r32();
        kb.op(&format!("mul.lo.s32 {ih}, {oh}, {}", g.strides[0]));
        kb.op(&format!("mad.lo.s32 {ih}, {kh}, {}, {ih}", g.dilations[0]));
        kb.op(&format!("sub.s32 {ih}, {ih}, {}", g.pads[0]));
        kb.op(&format!("mul.lo.s32 {iw}, {ow}, {}", g.strides[1]));
        kb.op(&format!("mad.lo.s32 {iw}, {kw}, {}, {iw}", g.dilations[1]));
        kb.op(&format!("sub.s32 {iw}, {iw}, {}", g.pads[1]));
        // Unsigned compares: a negative coordinate is a large unsigned one.
        let inside = kb.pred();
        let q = kb.pred();
        kb.op(&format!("setp.lt.u32 {inside}, {ih}, {}", self.d.h));
        kb.op(&format!("setp.lt.u32 {q}, {iw}, {}", self.d.w));
        kb.op(&format!("and.pred {inside}, {inside}, {q}"));
        (ih, iw, inside)
    }

    /// Input element `(img, c, ih, iw)` (`c` counted from `c0`) where `valid`, else 0.
    #[allow(clippy::too_many_arguments)]
    fn load_x(&self, kb: &mut Kb, c0: R32, img: R32, c: R32, ih: R32, iw: R32, valid: Pred) -> F32 {
        let s = self.st.x;
        let off = combine(kb, c0, &[(img, s[0]), (c, s[1]), (ih, s[2]), (iw, s[3])]);
        load_guarded(kb, self.regs.x, ElemType::F32, off, valid)
    }

    /// Bias, epilogue and store of output `(img, o, oh, ow)` at dense offset `at`.
    fn finish(&self, kb: &mut Kb, acc: F32, coords: [R32; 4], at: R32) {
        let mut v = acc;
        if let Some((base, off, s)) = self.regs.bias {
            let boff = combine_imm(kb, off, &[(coords[1], s)]);
            let b = load_f32(kb, base, ElemType::F32, boff);
            v = kb.fadd(v, b);
        }
        if let Some(e) = self.epilogue {
            // Extras have the output's shape, in its layout.
            let order = if self.g.nhwc { [0, 2, 3, 1] } else { [0, 1, 2, 3] };
            let mut operands = vec![v];
            for (base, off, strides) in &self.regs.extras {
                let terms: Vec<(R32, isize)> = order.iter().zip(strides).map(|(&i, &s)| (coords[i], s)).collect();
                let eoff = combine_imm(kb, *off, &terms);
                operands.push(load_f32(kb, *base, ElemType::F32, eoff));
            }
            v = emit_expr(kb, &e.expr, &operands);
        }
        store_f32(kb, self.regs.out, at, v);
    }

    /// The implicit-GEMM kernel; `None` when its tiles exceed the grid.
    fn implicit(&self, kb: &mut Kb) -> Option<Tiling> {
        let d = self.d;
        let (kh, kw) = (d.kh, d.kw);
        let pixels = d.imgs * d.oh * d.ow;
        let depth = d.ig * kh * kw;
        let nhwc = self.g.nhwc;
        let tiling = Tiling {
            m: if nhwc { pixels } else { d.og },
            n: if nhwc { d.og } else { pixels },
            k: depth,
            arith: Arith::F32,
            a_k_fast: true,
            b_k_fast: false,
        };
        if tiling.tiles() > i32::MAX as usize {
            return None;
        }
        let z = kb.special("%ctaid.z");
        let (sx, sw) = (self.st.x, self.st.w);
        // Group bases: input channel z·ig, output channel z·og.
        let x0 = kb.r32();
        kb.op(&format!("mul.lo.s32 {x0}, {z}, {}", d.ig as isize * sx[1]));
        kb.op(&format!("add.s32 {x0}, {x0}, {}", self.x_off));
        let w0 = kb.r32();
        kb.op(&format!("mul.lo.s32 {w0}, {z}, {}", d.og as isize * sw[0]));
        kb.op(&format!("add.s32 {w0}, {w0}, {}", self.w_off));
        let o0 = kb.r32();
        kb.op(&format!("mul.lo.u32 {o0}, {z}, {}", d.og));
        // The weights' k part: (c, kh, kw) for OIHW, (kh, kw, c) for HWIO.
        let (kshape, kstr) = if nhwc {
            ([kh, kw, d.ig], [sw[2], sw[3], sw[1]])
        } else {
            ([d.ig, kh, kw], [sw[1], sw[2], sw[3]])
        };
        let kwalk = Walk::new(&kshape, &[&kstr]);
        let (wb, we) = (self.regs.w, self.regs.w_elem);
        let load_w = |kb: &mut Kb, o: R32, k: R32, valid: Pred| {
            let kpart = kwalk.offsets(kb, k, &[0]);
            let off = combine(kb, w0, &[(o, sw[0]), (kpart[0], 1)]);
            load_guarded(kb, wb, we, off, valid)
        };
        // The patch element of output pixel `p` (img, oh, ow) at reduction index `k`.
        let load_patch = |kb: &mut Kb, p: R32, k: R32, valid: Pred| {
            let [img, oh, ow] = split3(kb, p, [d.imgs, d.oh, d.ow]);
            let (c, r, s) = if nhwc {
                let [r, s, c] = split3(kb, k, [kh, kw, d.ig]);
                (c, r, s)
            } else {
                let [c, r, s] = split3(kb, k, [d.ig, kh, kw]);
                (c, r, s)
            };
            let (ih, iw, inside) = self.tap(kb, oh, ow, r, s);
            let ok = kb.pred();
            kb.op(&format!("and.pred {ok}, {inside}, {valid}"));
            self.load_x(kb, x0, img, c, ih, iw, ok)
        };
        let store = |kb: &mut Kb, row: R32, col: R32, acc: F32| {
            let (p, ol) = if nhwc { (row, col) } else { (col, row) };
            let o = kb.r32();
            kb.op(&format!("add.u32 {o}, {o0}, {ol}"));
            let [img, oh, ow] = split3(kb, p, [d.imgs, d.oh, d.ow]);
            let at = kb.r32();
            if nhwc {
                kb.op(&format!("mad.lo.u32 {at}, {p}, {}, {o}", d.o));
            } else {
                // ((img·O + o)·OH + oh)·OW + ow
                kb.op(&format!("mad.lo.u32 {at}, {img}, {}, {o}", d.o));
                kb.op(&format!("mad.lo.u32 {at}, {at}, {}, {oh}", d.oh));
                kb.op(&format!("mad.lo.u32 {at}, {at}, {}, {ow}", d.ow));
            }
            kb.op(&format!("add.u32 {at}, {at}, {}", self.out_off));
            self.finish(kb, acc, [img, o, oh, ow], at);
        };
        let swapped = |kb: &mut Kb, k: R32, col: R32, valid: Pred| {
            if nhwc {
                load_w(kb, col, k, valid)
            } else {
                load_patch(kb, col, k, valid)
            }
        };
        if nhwc {
            tiling.emit(kb, &load_patch, &swapped, &store);
        } else {
            tiling.emit(kb, &load_w, &swapped, &store);
        }
        Some(tiling)
    }

    /// The direct kernel: one thread per output element.
    fn direct(&self, kb: &mut Kb, n: usize) {
        let d = self.d;
        let (sx, sw) = (self.st.x, self.st.w);
        let (start, step) = grid_stride(kb);
        for_range(kb, start, n, step, |kb, i| {
            let shape = if self.g.nhwc {
                [d.imgs, d.oh, d.ow, d.o]
            } else {
                [d.imgs, d.o, d.oh, d.ow]
            };
            let c = split_index(kb, i, &shape);
            let [img, o, oh, ow] = if self.g.nhwc {
                [c[0], c[3], c[1], c[2]]
            } else {
                [c[0], c[1], c[2], c[3]]
            };
            // Group of the output channel: its first input channel.
            let c0 = kb.r32();
            kb.op(&format!("div.u32 {c0}, {o}, {}", d.og));
            kb.op(&format!("mul.lo.s32 {c0}, {c0}, {}", d.ig as isize * sx[1]));
            kb.op(&format!("add.s32 {c0}, {c0}, {}", self.x_off));
            let w0 = combine_imm(kb, self.w_off, &[(o, sw[0])]);
            let acc = kb.fconst(0.0);
            // Small windows (up to 5 × 5) are unrolled, channels looped.
            let unroll = d.kh * d.kw <= 25;
            counted(kb, d.ig, d.ig == 1, &mut |kb, ci| {
                counted(kb, d.kh, unroll, &mut |kb, r| {
                    counted(kb, d.kw, unroll, &mut |kb, s| {
                        let (ih, iw, inside) = self.tap(kb, oh, ow, r, s);
                        let xv = self.load_x(kb, c0, img, ci, ih, iw, inside);
                        let woff = combine(kb, w0, &[(ci, sw[1]), (r, sw[2]), (s, sw[3])]);
                        let wv = tile::load_guarded(kb, self.regs.w, self.regs.w_elem, woff, inside);
                        kb.op(&format!("fma.rn.f32 {acc}, {xv}, {wv}, {acc}"));
                    });
                });
            });
            let at = combine_imm(kb, self.out_off, &[(i, 1)]);
            self.finish(kb, acc, [img, o, oh, ow], at);
        });
    }
}

/// `base + Σ c·s` with an immediate base.
fn combine_imm(kb: &mut Kb, base: usize, terms: &[(R32, isize)]) -> R32 {
    crate::index::linear_combination(kb, base, terms)
}

/// The three coordinates of `i` over `shape` (the outermost unreduced).
fn split3(kb: &mut Kb, i: R32, shape: [usize; 3]) -> [R32; 3] {
    let c = split_index(kb, i, &shape);
    [c[0], c[1], c[2]]
}

/// `for i in 0..n { body(i) }` (`n ≥ 1`): unrolled (the index an immediate in
/// a register) or a loop.
fn counted(kb: &mut Kb, n: usize, unroll: bool, body: &mut dyn FnMut(&mut Kb, R32)) {
    if unroll {
        for i in 0..n {
            let r = kb.imm32(i as i64);
            body(kb, r);
        }
        return;
    }
    let i = kb.imm32(0);
    let top = kb.label("tap");
    kb.place(&top);
    body(kb, i);
    kb.op(&format!("add.u32 {i}, {i}, 1"));
    let more = kb.pred();
    kb.op(&format!("setp.lt.u32 {more}, {i}, {n}"));
    kb.op_if(more, false, &format!("bra {top}"));
}
