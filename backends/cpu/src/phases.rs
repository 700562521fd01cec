//! Stride phases of a padded plane: the layout that turns every tap of a strided,
//! padded 2-D window (a depthwise convolution, a pooling) into one long
//! contiguous run, so the inner loop is a plain vector loop over a whole output
//! plane instead of a short, bounds-checked loop per output row.
//!
//! The padded plane `P` (`H + pad_top + pad_bottom` rows, `W + pad_left +
//! pad_right` columns, padding filled with a given value) is split by the strides
//! `(sh, sw)` into `sh·sw` phase planes: phase `(a, b)` holds `P[sh·i + a][sw·j + b]`
//! at row `i`, column `j`, every phase with the same row pitch `wp = ceil(W'/sw)`.
//! A tap at offset `(dy, dx)` of the window anchored at output `(r, c)` reads
//! `P[sh·r + dy][sw·c + dx]` = phase `(dy mod sh, dx mod sw)` at row
//! `r + dy/sh`, column `c + dx/sw`. Computing the output with the same row pitch
//! `wp` (columns `ow..wp` of each row are scratch, dropped afterwards), every tap
//! is the flat run `phase[(dy/sh)·wp + dx/sw ..][.. oh·wp]` ([`Phases::tap_starts`]).
//!
//! Invariant (checked by the tests): for every real output `(r < oh, c < ow)` the
//! element a tap reads lies in its phase's real part, so scratch columns never
//! leak into real outputs; each phase has one spare row so the scratch columns of
//! the last row stay in bounds.

/// Geometry of the phases of one plane.
use crate::simd::{Isa, Simd, SimdKernel};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Phases {
    /// Vertical and horizontal strides.
    sh: usize,
    sw: usize,
    /// Rows and row pitch of each phase (`hp + 1` rows are allocated).
    hp: usize,
    pub(crate) wp: usize,
    /// Output rows.
    oh: usize,
}

/// Window placement: the input plane `h × w`, the pads `[top, left, bottom,
/// right]`, the strides and the output size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PlaneGeometry {
    pub h: usize,
    pub w: usize,
    pub pads: [usize; 4],
    pub stride_h: usize,
    pub stride_w: usize,
    pub oh: usize,
}

impl Phases {
    pub(crate) fn new(g: &PlaneGeometry) -> Phases {
        let (ph, pw) = (g.h + g.pads[0] + g.pads[2], g.w + g.pads[1] + g.pads[3]);
        Phases {
            sh: g.stride_h,
            sw: g.stride_w,
            hp: ph.div_ceil(g.stride_h),
            wp: pw.div_ceil(g.stride_w),
            oh: g.oh,
        }
    }

    /// Elements of one phase plane, its spare row included.
    fn phase_len(&self) -> usize {
        (self.hp + 1) * self.wp
    }

    /// Scratch elements [`Phases::fill`] needs.
    pub(crate) fn len(&self) -> usize {
        self.sh * self.sw * self.phase_len()
    }

    /// Elements of an output accumulator with row pitch `wp`.
    pub(crate) fn out_len(&self) -> usize {
        self.oh * self.wp
    }

    /// Writes the phases of `plane` (`g.h × g.w`, dense) into `dst` (at least
    /// [`Phases::len`] elements), `pad` everywhere outside the plane.
    pub(crate) fn fill(&self, g: &PlaneGeometry, plane: &[f32], pad: f32, dst: &mut [f32]) {
        let dst = &mut dst[..self.len()];
        dst.fill(pad);
        let (pt, pl) = (g.pads[0], g.pads[1]);
        for (y, row) in plane.chunks_exact(g.w).take(g.h).enumerate() {
            let py = y + pt;
            let (a, i) = (py % self.sh, py / self.sh);
            if self.sw == 2 && g.w >= 2 {
                // Deinterleave even and odd columns in one pass (vectorizes).
                let (b0, b1) = (pl % 2, (pl + 1) % 2);
                let at = |b: usize, j: usize| (a * 2 + b) * self.phase_len() + i * self.wp + j;
                let (d0, d1) = (at(b0, pl / 2), at(b1, pl.div_ceil(2)));
                let (o0, o1) = disjoint_runs(dst, d0, d1, g.w.div_ceil(2));
                for ((e, o), pair) in o0.iter_mut().zip(o1.iter_mut()).zip(row.chunks_exact(2)) {
                    *e = pair[0];
                    *o = pair[1];
                }
                if g.w % 2 == 1 {
                    o0[g.w / 2] = row[g.w - 1];
                }
                continue;
            }
            for b in 0..self.sw {
                // Columns x with (x + pl) % sw == b, i.e. x = first + sw·k.
                let first = (b + self.sw - pl % self.sw) % self.sw;
                if first >= g.w {
                    continue;
                }
                let j0 = (first + pl) / self.sw;
                let base = (a * self.sw + b) * self.phase_len() + i * self.wp + j0;
                let out = &mut dst[base..];
                if self.sw == 1 {
                    out[..g.w].copy_from_slice(row);
                } else {
                    let count = (g.w - first).div_ceil(self.sw);
                    let (out, src) = (&mut out[..count], &row[first..first + (count - 1) * self.sw + 1]);
                    for (k, o) in out.iter_mut().enumerate() {
                        *o = src[k * self.sw];
                    }
                }
            }
        }
    }
}

/// The runs `buf[a..a + len]` and `buf[b..b + len]` (disjoint, in either order)
/// as two mutable slices. Panics if they overlap or leave `buf`.
fn disjoint_runs(buf: &mut [f32], a: usize, b: usize, len: usize) -> (&mut [f32], &mut [f32]) {
    if a < b {
        let (lo, hi) = buf.split_at_mut(b);
        (&mut lo[a..a + len], &mut hi[..len])
    } else {
        let (lo, hi) = buf.split_at_mut(a);
        let (x, y) = (&mut hi[..len], &mut lo[b..b + len]);
        (x, y)
    }
}

/// Vectors of output kept in registers while the taps are combined into them.
const BLOCK_VECTORS: usize = 4;

/// `out[j] += Σ_t weights[t] · buf[starts[t] + j]` for every `j`, a block of
/// [`BLOCK_VECTORS`] vectors at a time, so each output is loaded and stored once
/// rather than once per tap. `buf` must hold `starts[t] + out.len()` elements for
/// every `t` (else it panics).
pub(crate) fn weighted_taps(buf: &[f32], starts: &[usize], weights: &[f32], out: &mut [f32]) {
    Isa::detect().dispatch(Taps {
        buf,
        starts,
        op: TapOp::Weighted(weights),
        out,
    });
}

/// `out[j] = ` the maximum (`max == true`, with [`f32::max`]'s NaN rule) or the
/// sum over `t` of `buf[starts[t] + j]`, blocked like [`weighted_taps`].
pub(crate) fn reduce_taps(buf: &[f32], starts: &[usize], max: bool, out: &mut [f32]) {
    let op = if max { TapOp::Max } else { TapOp::Sum };
    Isa::detect().dispatch(Taps { buf, starts, op, out });
}

#[derive(Clone, Copy)]
enum TapOp<'a> {
    Weighted(&'a [f32]),
    Max,
    Sum,
}

struct Taps<'a> {
    buf: &'a [f32],
    starts: &'a [usize],
    op: TapOp<'a>,
    out: &'a mut [f32],
}

impl Taps<'_> {
    /// Combines every tap into the `n ≤ BLOCK_VECTORS·LANES` outputs at `j`.
    #[inline(always)]
    fn block<S: Simd>(&mut self, s: S, j: usize, n: usize) {
        let lanes = S::LANES;
        let load = |src: &[f32], v: usize| {
            let part = &src[(v * lanes).min(n)..n.min((v + 1) * lanes)];
            if part.len() == lanes { s.load(part) } else { s.load_partial(part) }
        };
        let out = &mut self.out[j..j + n];
        let mut acc = [s.zero(); BLOCK_VECTORS];
        match self.op {
            TapOp::Weighted(w) => {
                for (v, a) in acc.iter_mut().enumerate() {
                    *a = load(out, v);
                }
                for (&st, &wt) in self.starts.iter().zip(w) {
                    let (x, wv) = (&self.buf[st + j..st + j + n], s.splat(wt));
                    for (v, a) in acc.iter_mut().enumerate() {
                        *a = s.mul_add(wv, load(x, v), *a);
                    }
                }
            }
            TapOp::Max | TapOp::Sum => {
                let max = matches!(self.op, TapOp::Max);
                acc = [s.splat(if max { f32::NEG_INFINITY } else { 0.0 }); BLOCK_VECTORS];
                for &st in self.starts {
                    let x = &self.buf[st + j..st + j + n];
                    for (v, a) in acc.iter_mut().enumerate() {
                        let xv = load(x, v);
                        *a = if max { s.max(*a, xv) } else { s.add(*a, xv) };
                    }
                }
            }
        }
        for (v, a) in acc.iter().enumerate() {
            let dst = &mut out[(v * lanes).min(n)..n.min((v + 1) * lanes)];
            if dst.len() == lanes {
                s.store(*a, dst);
            } else {
                s.store_partial(*a, dst);
            }
        }
    }
}

impl SimdKernel for Taps<'_> {
    type Output = ();

    #[inline(always)]
    fn run<S: Simd>(mut self, s: S) {
        let step = BLOCK_VECTORS * S::LANES;
        let len = self.out.len();
        let mut j = 0;
        while j < len {
            let n = step.min(len - j);
            self.block(s, j, n);
            j += n;
        }
    }
}

impl Phases {
    /// Start offsets of every tap `(kh·dil_h, kw·dil_w)` of a `kernel_h × kernel_w`
    /// window, row-major (for [`weighted_taps`] and [`reduce_taps`]).
    pub(crate) fn tap_starts(&self, kernel: [usize; 2], dilation: [usize; 2]) -> Vec<usize> {
        let mut v = Vec::with_capacity(kernel[0] * kernel[1]);
        for kh in 0..kernel[0] {
            for kw in 0..kernel[1] {
                let (dy, dx) = (kh * dilation[0], kw * dilation[1]);
                let phase = (dy % self.sh) * self.sw + dx % self.sw;
                v.push(phase * self.phase_len() + (dy / self.sh) * self.wp + dx / self.sw);
            }
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every tap read through the phases equals the padded plane's element, for
    /// every real output, over odd sizes, strides, dilations and pads.
    #[test]
    fn taps_read_the_padded_plane() {
        for (h, w, k, s, d, pads) in [
            (7, 5, 3, 2, 1, [1, 1, 1, 1]),
            (8, 9, 3, 1, 1, [1, 0, 2, 1]),
            (5, 6, 2, 3, 1, [0, 1, 1, 0]),
            (9, 9, 3, 2, 2, [2, 2, 2, 2]),
            (1, 1, 1, 1, 1, [0, 0, 0, 0]),
            (4, 11, 5, 2, 1, [2, 2, 2, 2]),
        ] {
            let ext = (k - 1) * d + 1;
            let (oh, ow) = ((h + pads[0] + pads[2] - ext) / s + 1, (w + pads[1] + pads[3] - ext) / s + 1);
            let g = PlaneGeometry {
                h,
                w,
                pads,
                stride_h: s,
                stride_w: s,
                oh,
            };
            let plane: Vec<f32> = (0..h * w).map(|i| i as f32 + 1.0).collect();
            let p = Phases::new(&g);
            let mut buf = vec![f32::NAN; p.len()];
            p.fill(&g, &plane, -1.0, &mut buf);
            let at = |y: isize, x: isize| {
                let (y, x) = (y - pads[0] as isize, x - pads[1] as isize);
                if y < 0 || x < 0 || y >= h as isize || x >= w as isize {
                    -1.0
                } else {
                    plane[y as usize * w + x as usize]
                }
            };
            let starts = p.tap_starts([k, k], [d, d]);
            for kh in 0..k {
                for kw in 0..k {
                    let run = &buf[starts[kh * k + kw]..][..p.out_len()];
                    for r in 0..oh {
                        for c in 0..ow {
                            let want = at((r * s + kh * d) as isize, (c * s + kw * d) as isize);
                            assert_eq!(
                                run[r * p.wp + c],
                                want,
                                "{h}x{w} k{k} s{s} d{d} {pads:?} tap ({kh},{kw}) out ({r},{c})"
                            );
                        }
                    }
                }
            }
        }
    }
}
