//! General convolution: im2col of a block of output pixels, then a GEMM.

use rayon::prelude::*;

use super::implicit::Im2colPanels;
use super::{ConvEpilogue, Geom};
use crate::gemm::{Epilogue, SendPtr, Tile, packed_tile_cols, sgemm_raw, sgemm_with_packer, with_scratch};
use crate::simd::Isa;

/// Target scratch size of one im2col block, in `f32` elements (1 MiB).
const SCRATCH_ELEMS: usize = 1 << 18;
/// Most output pixels per block when the im2col matrix is implicit (packed
/// straight into the GEMM's panels, so no scratch bounds the block). Wide
/// blocks repack the weights (the `A` operand) less often and leave no narrow
/// remainder panels: 512→512 3×3 at 28² ran at 72 GFLOP/s in 48-pixel blocks
/// (the 1 MiB scratch bound), 98–104 in blocks of 512 to 4096. Past 1024 the
/// packed `B` block outgrows L2 (64→64 at 224²: 85 GFLOP/s at 1024, 79 at 4096;
/// one thread, this 2-core EPYC).
pub(super) const IMPLICIT_PIXELS: usize = 1024;

/// How a convolution's output is cut into tasks.
struct Blocks {
    /// Output pixels per block.
    pb: usize,
    pblocks: usize,
    /// Output channels (within a group) per block.
    obk: usize,
    oblocks: usize,
}

/// Blocks of at most `pb_max` pixels, a multiple of `granule` where the image
/// allows, balanced over the threads.
fn blocks(g: &Geom, pb_max: usize, granule: usize) -> Blocks {
    let threads = rayon::current_num_threads();
    let pixels = g.pixels();
    let pb_max = pb_max.max(granule) / granule * granule;
    let mut pblocks = pixels.div_ceil(pb_max);
    let images = g.p.batch * g.p.groups;
    // Fewer than 8 tile widths per thread: rounding the pixel blocks to whole
    // tiles would unbalance them (196 pixels over 2 threads: 128 + 68), so the
    // output channels are split instead (below), if there are at least 64
    // per thread.
    let few_pixels = pixels < threads * 8 * granule && g.og >= 64 * threads;
    if threads > 1 && images < 4 * threads && !few_pixels {
        // Few images: balance the pixel blocks over the threads.
        pblocks = pblocks.div_ceil(threads) * threads;
    }
    let pb = (pixels.div_ceil(pblocks).div_ceil(granule) * granule).clamp(1, pixels);
    let pblocks = pixels.div_ceil(pb);
    let mut oblocks = 1;
    let tasks = images * pblocks;
    if threads > 1 && tasks < threads {
        // Too few pixels (late layers, batch 1): also split the output channels.
        oblocks = threads.div_ceil(tasks).min(g.og.div_ceil(16)).max(1);
    }
    let obk = (g.og.div_ceil(oblocks).div_ceil(16) * 16).clamp(1, g.og);
    Blocks {
        pb,
        pblocks,
        obk,
        oblocks: g.og.div_ceil(obk),
    }
}

/// Blocks for a materialised im2col of `depth`-element columns: about
/// [`SCRATCH_ELEMS`] of scratch each.
fn scratch_blocks(g: &Geom) -> Blocks {
    blocks(g, (SCRATCH_ELEMS / g.depth().max(1)).max(16), 16)
}

/// Runs `task(n, group, pixel block, channel block)` over the grid.
fn for_tasks(g: &Geom, b: &Blocks, task: impl Fn(usize, usize, usize, usize) + Sync) {
    let per_image = b.pblocks * b.oblocks;
    let total = g.p.batch * g.p.groups * per_image;
    let run = |t: usize| {
        let (img, rest) = (t / per_image, t % per_image);
        task(img / g.p.groups, img % g.p.groups, rest / b.oblocks, rest % b.oblocks);
    };
    if rayon::current_num_threads() <= 1 || total == 1 {
        (0..total).for_each(run);
    } else {
        (0..total).into_par_iter().with_max_len(1).for_each(run);
    }
}

/// The in-range part of an im2col segment: output columns `lo..hi` of the
/// segment read input columns `start, start + stride, …`; the columns before
/// `lo` and from `hi` on fall in the padding.
#[derive(Clone, Copy)]
pub(super) struct InRange {
    pub lo: usize,
    pub hi: usize,
    pub start: usize,
}

/// [`InRange`] of a `len`-column segment whose output column `j` reads input
/// column `(ow0 + j)·stride + off` of a row of `row_len` columns.
pub(super) fn in_range(len: usize, row_len: usize, ow0: usize, stride: usize, off: isize) -> InRange {
    let base = (ow0 * stride) as isize + off;
    let s = stride as isize;
    // First j with base + j·s ≥ bound, clamped to len.
    let first_at_least = |bound: isize| -> usize {
        if base >= bound {
            0
        } else {
            ((bound - base + s - 1) / s).min(len as isize) as usize
        }
    };
    let lo = first_at_least(0);
    let hi = first_at_least(row_len as isize).max(lo);
    let start = if hi > lo { (base + lo as isize * s) as usize } else { 0 };
    InRange { lo, hi, start }
}

/// Fills `dst` from `row` as [`in_range`] describes: zeros, then the in-range
/// run (a `memcpy` at stride 1, an unchecked-index gather otherwise), then zeros.
#[inline(always)]
pub(super) fn fill_in_range(dst: &mut [f32], row: &[f32], r: InRange, stride: usize) {
    dst[..r.lo].fill(0.0);
    dst[r.hi..].fill(0.0);
    let seg = &mut dst[r.lo..r.hi];
    if stride == 1 {
        seg.copy_from_slice(&row[r.start..r.start + seg.len()]);
    } else if !seg.is_empty() {
        for (d, x) in seg.iter_mut().zip(row[r.start..].iter().step_by(stride)) {
            *d = *x;
        }
    }
}

/// Fills `dst[j] = row[ow·stride + off]` for output columns `ow = ow0 + j`,
/// zero where the input column falls outside `0..row.len()`.
#[cfg(test)]
fn fill_segment(dst: &mut [f32], row: &[f32], ow0: usize, stride: usize, off: isize) {
    fill_in_range(dst, row, in_range(dst.len(), row.len(), ow0, stride, off), stride);
}

/// A run of im2col columns inside one output row: `run` output pixels from
/// `(oh, ow0)` on, whose values go to `at..` (in the im2col block, or at step 0
/// of a packed panel).
pub(super) struct RowSegment {
    pub at: usize,
    pub run: usize,
    pub oh: usize,
    pub ow0: usize,
}

/// Per kernel column, each segment's in-range input columns ([`InRange`]);
/// per kernel row, each segment's input row (`None`: in the padding).
pub(super) type SegmentTables = (Vec<Vec<InRange>>, Vec<Vec<Option<usize>>>);

/// The [`SegmentTables`] of `segs` for convolution `p`.
pub(super) fn segment_tables(p: &super::Conv2dParams, segs: &[RowSegment]) -> SegmentTables {
    let cols = (0..p.kernel_w)
        .map(|kw| {
            let off = (kw * p.dilation_w) as isize - p.pads[1] as isize;
            segs.iter().map(|s| in_range(s.run, p.in_w, s.ow0, p.stride_w, off)).collect()
        })
        .collect();
    let rows = (0..p.kernel_h)
        .map(|kh| {
            segs.iter()
                .map(|s| {
                    let ih = (s.oh * p.stride_h + kh * p.dilation_h) as isize - p.pads[0] as isize;
                    (0..p.in_h as isize).contains(&ih).then_some(ih as usize)
                })
                .collect()
        })
        .collect();
    (cols, rows)
}

/// Writes the im2col matrix `col[D, np]` of output pixels `p0..p0 + np`
/// (`np = col.len() / D`, rows `(i, kh, kw)`, zeros in the padding) of the
/// `ig` input planes `planes` (`in_h × in_w` each) of one (image, group). The
/// block's output-row segments, and for each kernel column the in-range run of
/// every segment (for each kernel row, its input row), are computed once per
/// block, not once per row.
pub(super) fn fill_col(p: &super::Conv2dParams, ow: usize, planes: &[f32], p0: usize, col: &mut [f32]) {
    let (h, wd, khw) = (p.in_h, p.in_w, p.kernel_h * p.kernel_w);
    let np = col.len() / ((p.in_channels / p.groups) * khw);
    let mut segs = Vec::new();
    let mut j = 0;
    while j < np {
        let (oh, ow0) = ((p0 + j) / ow, (p0 + j) % ow);
        let run = (ow - ow0).min(np - j);
        segs.push(RowSegment { at: j, run, oh, ow0 });
        j += run;
    }
    let (cols, rows) = segment_tables(p, &segs);
    crate::gemm::mv::wide(|| {
        for (r, dst) in col.chunks_exact_mut(np).enumerate() {
            let (i, kk) = (r / khw, r % khw);
            let (kh, kw) = (kk / p.kernel_w, kk % p.kernel_w);
            let plane = &planes[i * h * wd..][..h * wd];
            for ((s, ih), range) in segs.iter().zip(&rows[kh]).zip(&cols[kw]) {
                let seg = &mut dst[s.at..s.at + s.run];
                match ih {
                    Some(ih) => fill_in_range(seg, &plane[ih * wd..][..wd], *range, p.stride_w),
                    None => seg.fill(0.0),
                }
            }
        }
    });
}

/// `NCHW`: per (image, group) `Y[O_g, P] = W_g[O_g, D] · col[D, P]`, `D = ig·KH·KW`.
pub(super) fn nchw(g: &Geom, input: &[f32], w: &[f32], output: &mut [f32], epi: &ConvEpilogue<'_>) {
    let p = &g.p;
    let b = match packed_tile_cols(Isa::detect()) {
        Some(nr) => blocks(g, IMPLICIT_PIXELS, nr),
        None => scratch_blocks(g),
    };
    let (pixels, depth) = (g.pixels(), g.depth());
    let (h, wd, khw) = (p.in_h, p.in_w, p.kernel_h * p.kernel_w);
    let out = SendPtr(output.as_mut_ptr());
    // A 1×1, stride-1, unpadded kernel's im2col is the input itself: its group's
    // channel rows (stride `pixels`), read in place.
    let identity = khw == 1 && p.stride_h == 1 && p.stride_w == 1 && p.pads == [0; 4];
    for_tasks(g, &b, |n, grp, pbi, obi| {
        let (p0, o0) = (pbi * b.pb, obi * b.obk);
        let (np, no) = (b.pb.min(pixels - p0), b.obk.min(g.og - o0));
        let oc = grp * g.og + o0;
        let c_off = (n * p.out_channels + oc) * pixels + p0;
        if identity {
            let x_off = (n * p.in_channels + grp * g.ig) * pixels + p0;
            // SAFETY: as below, with the input rows grp·ig.. of image n, columns
            // p0..p0+np (stride `pixels`) in place of `col`: inside `input`,
            // whose length was validated.
            unsafe {
                let c = out.get().add(c_off);
                sgemm_raw(
                    no,
                    depth,
                    np,
                    w.as_ptr().add(oc * depth),
                    depth,
                    1,
                    input.as_ptr().add(x_off),
                    pixels,
                    1,
                    c,
                    pixels,
                );
                if !epi.is_noop() {
                    epi.apply(&mut Tile::from_raw(c, pixels, n, oc, no, p0, np));
                }
            }
            return;
        }
        let planes = &input[(n * p.in_channels + grp * g.ig) * h * wd..][..g.ig * h * wd];
        let packer = Im2colPanels { planes, p, ow: g.ow, p0 };
        // SAFETY: as below, with `packer` standing for `col`: it reads only the
        // group's planes of image n (inside `input`, whose length was validated).
        let packed = unsafe {
            let c = out.get().add(c_off);
            let done = sgemm_with_packer(
                Isa::detect(),
                no,
                depth,
                np,
                w.as_ptr().add(oc * depth),
                depth,
                1,
                &packer,
                c,
                pixels,
            );
            if done && !epi.is_noop() {
                epi.apply(&mut Tile::from_raw(c, pixels, n, oc, no, p0, np));
            }
            done
        };
        if packed {
            return;
        }
        // No packed micro-kernel for this ISA: materialise `col` and use the
        // portable GEMM.
        with_scratch(depth * np, |col| {
            fill_col(p, g.ow, planes, p0, col);
            // SAFETY: the weight rows oc..oc+no hold `depth` elements each (weight
            // length validated); `col` is a dense depth × np buffer; the output block
            // (rows oc.., columns p0..p0+np, stride `pixels`) is inside `output` and
            // disjoint from every other task's block.
            unsafe {
                let c = out.get().add(c_off);
                sgemm_raw(no, depth, np, w.as_ptr().add(oc * depth), depth, 1, col.as_ptr(), np, 1, c, pixels);
                if !epi.is_noop() {
                    epi.apply(&mut Tile::from_raw(c, pixels, n, oc, no, p0, np));
                }
            }
        });
    });
}

/// `NHWC`: per (image, group) `Y[P, O_g] = col[P, D] · W_g[D, O_g]`, with `D`
/// ordered `(kh, kw, i)` to match `[KH, KW, I/g, O]` weights.
pub(super) fn nhwc(g: &Geom, input: &[f32], w: &[f32], output: &mut [f32], epi: &ConvEpilogue<'_>) {
    let p = &g.p;
    let b = scratch_blocks(g);
    let (pixels, depth, ci, co) = (g.pixels(), g.depth(), p.in_channels, p.out_channels);
    let out = SendPtr(output.as_mut_ptr());
    // As for NCHW: a 1×1, stride-1, unpadded kernel reads the input pixels in place.
    let identity = p.kernel_h * p.kernel_w == 1 && p.stride_h == 1 && p.stride_w == 1 && p.pads == [0; 4];
    for_tasks(g, &b, |n, grp, pbi, obi| {
        let (p0, o0) = (pbi * b.pb, obi * b.obk);
        let (np, no) = (b.pb.min(pixels - p0), b.obk.min(g.og - o0));
        let oc = grp * g.og + o0;
        let c_off = (n * pixels + p0) * co + oc;
        if identity {
            let x_off = (n * pixels + p0) * ci + grp * g.ig;
            // SAFETY: as below, with the input pixels p0..p0+np of image n, channels
            // grp·ig.. (row stride ci) in place of `col`: inside `input`, whose
            // length was validated.
            unsafe {
                let c = out.get().add(c_off);
                sgemm_raw(np, depth, no, input.as_ptr().add(x_off), ci, 1, w.as_ptr().add(oc), co, 1, c, co);
                if !epi.is_noop() {
                    epi.apply(&mut Tile::from_raw(c, co, n, p0, np, oc, no));
                }
            }
            return;
        }
        with_scratch(depth * np, |col| {
            for (j, dst) in col.chunks_exact_mut(depth).enumerate() {
                let (oh, ow) = ((p0 + j) / g.ow, (p0 + j) % g.ow);
                for (kk, seg) in dst.chunks_exact_mut(g.ig).enumerate() {
                    let (kh, kw) = (kk / p.kernel_w, kk % p.kernel_w);
                    let ih = (oh * p.stride_h + kh * p.dilation_h) as isize - p.pads[0] as isize;
                    let iw = (ow * p.stride_w + kw * p.dilation_w) as isize - p.pads[1] as isize;
                    if ih < 0 || iw < 0 || ih >= p.in_h as isize || iw >= p.in_w as isize {
                        seg.fill(0.0);
                    } else {
                        let at = ((n * p.in_h + ih as usize) * p.in_w + iw as usize) * ci + grp * g.ig;
                        seg.copy_from_slice(&input[at..at + g.ig]);
                    }
                }
            }
            // SAFETY: weight columns oc..oc+no of the [depth, co] matrix are in bounds
            // (weight length validated); `col` is dense np × depth; the output block
            // (rows p0..p0+np, columns oc..oc+no, stride co) is inside `output` and
            // disjoint from every other task's block.
            unsafe {
                let c = out.get().add(c_off);
                sgemm_raw(np, depth, no, col.as_ptr(), depth, 1, w.as_ptr().add(oc), co, 1, c, co);
                if !epi.is_noop() {
                    epi.apply(&mut Tile::from_raw(c, co, n, p0, np, oc, no));
                }
            }
        });
    });
}

#[cfg(test)]
mod tests {
    use super::fill_segment;

    /// Every (start column, stride, offset) against the per-element definition,
    /// including runs entirely inside, partly outside and entirely outside the row.
    #[test]
    fn fill_segment_matches_its_definition() {
        let row: Vec<f32> = (0..11).map(|x| x as f32 + 1.0).collect();
        for len in [0, 1, 5, 13] {
            for ow0 in 0..6 {
                for stride in 1..4 {
                    for off in -7isize..14 {
                        let mut got = vec![f32::NAN; len];
                        fill_segment(&mut got, &row, ow0, stride, off);
                        let want: Vec<f32> = (0..len)
                            .map(|j| {
                                let iw = ((ow0 + j) * stride) as isize + off;
                                if (0..row.len() as isize).contains(&iw) {
                                    row[iw as usize]
                                } else {
                                    0.0
                                }
                            })
                            .collect();
                        assert_eq!(got, want, "len {len} ow0 {ow0} stride {stride} off {off}");
                    }
                }
            }
        }
    }
}
