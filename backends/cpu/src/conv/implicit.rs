//! Implicit im2col: a convolution's input packed straight into the packed
//! SGEMM's `B` micro-panels, with no im2col matrix in between.
//!
//! For `NCHW`, one (image, group)'s product is `Y[O_g, P] = W_g[O_g, D] ·
//! col[D, P]` with `D = ig·KH·KW` rows ordered `(i, kh, kw)` and `P` the output
//! pixels. [`Im2colPanels`] writes any `kc × nc` block of `col` in the panel
//! layout of [`crate::gemm::PackB`], reading the input planes directly: each
//! panel row is a few runs of one input row (one per output row the panel's
//! columns cover), copied (stride 1) or gathered (larger strides), with the
//! padding columns zeroed. Compared with materialising `col` and packing it,
//! every `col` element is written once instead of written, read and written again.

use super::Conv2dParams;
use super::depthwise::copy_run;
use super::im2col::{InRange, RowSegment, segment_tables};
use crate::gemm::{PackB, with_scratch};
use crate::simd::{Isa, Simd, SimdKernel};

/// The implicit `NCHW` im2col matrix of one (image, group): `depth` rows by the
/// output pixels `p0..` (columns).
pub(super) struct Im2colPanels<'a> {
    /// The group's `ig` input planes of the image, `in_h · in_w` each.
    pub planes: &'a [f32],
    /// The convolution (kernel, strides, pads, dilations, input size).
    pub p: &'a Conv2dParams,
    /// Output width.
    pub ow: usize,
    /// Output pixel of column 0.
    pub p0: usize,
}

impl PackB for Im2colPanels<'_> {
    unsafe fn pack(&self, pc: usize, jc: usize, kc: usize, nc: usize, nr: usize, dst: &mut [f32]) {
        let p = self.p;
        // One piece per output row the block covers (`at`: its offset in a
        // block row), so a piece is as long as the row allows; each block row
        // is filled into a buffer, then cut into the panels.
        let mut pieces = Vec::with_capacity(nc.div_ceil(self.ow) + 1);
        let mut j = 0;
        while j < nc {
            let pix = self.p0 + jc + j;
            let (oh, ow0) = (pix / self.ow, pix % self.ow);
            let run = (self.ow - ow0).min(nc - j);
            pieces.push(RowSegment { at: j, run, oh, ow0 });
            j += run;
        }
        let (cols, rows) = segment_tables(p, &pieces);
        let dst = &mut dst[..nc.div_ceil(nr) * nr * kc];
        with_scratch(nc, |row_buf| {
            Isa::detect().dispatch(FillPanels {
                src: self,
                pieces: &pieces,
                cols: &cols,
                rows: &rows,
                pc,
                kc,
                nr,
                row_buf,
                dst,
            })
        });
    }
}

/// Steps `pc..pc + kc` of the panels: each step's block row filled from its
/// pieces into `row_buf`, then copied `nr` columns to a panel (zeros past `nc`
/// in the last one), at one ISA's vector width.
struct FillPanels<'a> {
    src: &'a Im2colPanels<'a>,
    pieces: &'a [RowSegment],
    cols: &'a [Vec<InRange>],
    rows: &'a [Vec<Option<usize>>],
    pc: usize,
    kc: usize,
    nr: usize,
    row_buf: &'a mut [f32],
    dst: &'a mut [f32],
}

impl SimdKernel for FillPanels<'_> {
    type Output = ();
    #[inline(always)]
    fn run<S: Simd>(self, s: S) {
        let p = self.src.p;
        let (h, wd, khw) = (p.in_h, p.in_w, p.kernel_h * p.kernel_w);
        let (nr, nc) = (self.nr, self.row_buf.len());
        let (full, rest) = (nc / nr, nc % nr);
        for t in 0..self.kc {
            let r = self.pc + t;
            let (i, kk) = (r / khw, r % khw);
            let (kh, kw) = (kk / p.kernel_w, kk % p.kernel_w);
            let plane = &self.src.planes[i * h * wd..][..h * wd];
            for ((piece, ih), range) in self.pieces.iter().zip(&self.rows[kh]).zip(&self.cols[kw]) {
                let d = &mut self.row_buf[piece.at..][..piece.run];
                match ih {
                    Some(ih) => fill_run(s, d, &plane[ih * wd..][..wd], *range, p.stride_w),
                    None => zero_run(s, d),
                }
            }
            for q in 0..full {
                copy_run(s, &self.row_buf[q * nr..][..nr], &mut self.dst[(q * self.kc + t) * nr..][..nr]);
            }
            if rest > 0 {
                let d = &mut self.dst[(full * self.kc + t) * nr..][..nr];
                d[..rest].copy_from_slice(&self.row_buf[full * nr..]);
                d[rest..].fill(0.0);
            }
        }
    }
}

/// Zeroes `dst`.
#[inline(always)]
fn zero_run<S: Simd>(s: S, dst: &mut [f32]) {
    for i in (0..dst.len()).step_by(S::LANES) {
        s.store_partial(s.zero(), &mut dst[i..]);
    }
}

/// `dst[j] = row[r.start + (j − r.lo)·stride]` for `j` in `r.lo..r.hi`, zero
/// elsewhere: vector copies at stride 1, [`Simd::load_even`] at stride 2, a
/// scalar gather beyond.
#[inline(always)]
fn fill_run<S: Simd>(s: S, dst: &mut [f32], row: &[f32], r: InRange, stride: usize) {
    zero_run(s, &mut dst[..r.lo]);
    zero_run(s, &mut dst[r.hi..]);
    let seg = &mut dst[r.lo..r.hi];
    let src = &row[r.start..];
    match stride {
        1 => copy_run(s, &src[..seg.len()], seg),
        2 => {
            for i in (0..seg.len()).step_by(S::LANES) {
                s.store_partial(s.load_even(&src[2 * i..]), &mut seg[i..]);
            }
        }
        _ => {
            for (d, x) in seg.iter_mut().zip(src.iter().step_by(stride)) {
                *d = *x;
            }
        }
    }
}
