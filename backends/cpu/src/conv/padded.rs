//! Stride-1 `NCHW` convolution over a zero-padded copy of the input, with the
//! output computed on the padded width.
//!
//! The input planes of one (image, group) are copied once into `Xp[i, Hp, Wp]`
//! (zero borders). Output pixel `(oh, ow)` then reads `Xp[i, oh + kh·dh, ow +
//! kw·dw]`, and if the output is indexed on the padded width, `q = oh·Wp + ow`,
//! that is `Xp_flat[i·Hp·Wp + kh·dh·Wp + kw·dw + q]`: for a fixed im2col row
//! `(i, kh, kw)` consecutive `q` are consecutive input elements. So packing a
//! `B` micro-panel row is one contiguous copy, with no padding tests and no
//! runs broken at output rows, where the implicit im2col
//! ([`super::implicit`]) copies a few runs per panel row. The `q` with `ow ≥
//! OW` (`Wp − OW` of every `Wp` columns) are computed and dropped when the
//! block is copied out to the real output, so this path is taken only where
//! that waste is small. DenseNet's 3×3 128→32 at 56² ran at 73 GFLOP/s with the
//! implicit im2col, the plain GEMM of its shape at 90.

use rayon::prelude::*;

use super::im2col::IMPLICIT_PIXELS;
use super::{ConvEpilogue, DataLayout, Geom};
use crate::gemm::{Epilogue, PackB, SendPtr, Tile, packed_tile_cols, sgemm_with_packer, with_scratch};
use crate::simd::Isa;

/// Whether this path computes `g` on `isa`: `NCHW`, one group, stride 1, a
/// packed micro-kernel, more than a 1×1 kernel, an im2col depth of at least
/// [`MIN_DEPTH`], and at most one column in 8 of
/// the padded width wasted, or the virtual columns needing no more tile
/// panels than the real ones. (A 7×7 image padded to 9 columns is 63 virtual
/// columns against 49 real ones, two 32-column panels either way; its implicit
/// im2col copies runs of 7 elements: DenseNet's 3×3 128→32 at 7×7 ran at 34
/// GFLOP/s that way, 57 here.)
pub(super) fn applies(g: &Geom, isa: Isa) -> bool {
    let p = &g.p;
    let wp = p.in_w + p.pads[1] + p.pads[3];
    let Some(nr) = packed_tile_cols(isa) else {
        return false;
    };
    // The virtual columns fill no more tile panels than the real ones would.
    let same_panels = (g.oh * wp).div_ceil(nr) <= g.pixels().div_ceil(nr);
    p.layout == DataLayout::Nchw
        && p.groups == 1
        && (p.stride_h, p.stride_w) == (1, 1)
        && g.depth() >= MIN_DEPTH
        && p.kernel_h * p.kernel_w > 1
        && (8 * (wp - g.ow) <= wp || same_panels)
}

/// Shallowest im2col depth (`I·KH·KW`) for this path: its copy of each block
/// from the virtual to the real output costs the same per output element
/// whatever the depth, and below this the implicit im2col, which writes the
/// output in place, measured faster (VGG-19's first layer, depth 27: 55 → 70
/// GFLOP/s; depth 72: 87 → 90; about even at 144, this path faster from 288).
const MIN_DEPTH: usize = 96;

/// Sizes shared by the tasks.
#[derive(Clone, Copy)]
struct Padded {
    /// Padded plane length.
    plane: usize,
    /// Virtual output columns (`oh · wp`).
    virt: usize,
}

/// The im2col matrix of one (image, group) over the padded planes: row `(i,
/// kh, kw)` is the contiguous run of the planes starting at `offs[row]`.
struct PaddedPanels<'a> {
    xp: &'a [f32],
    offs: &'a [usize],
    /// Virtual column of column 0.
    q0: usize,
}

impl PackB for PaddedPanels<'_> {
    unsafe fn pack(&self, pc: usize, jc: usize, kc: usize, nc: usize, nr: usize, dst: &mut [f32]) {
        let panels = nc.div_ceil(nr);
        for q in 0..panels {
            let (col, width) = (self.q0 + jc + q * nr, nr.min(nc - q * nr));
            let panel = &mut dst[q * kc * nr..][..kc * nr];
            for (t, row) in panel.chunks_exact_mut(nr).enumerate() {
                let at = self.offs[pc + t] + col;
                row[..width].copy_from_slice(&self.xp[at..at + width]);
                row[width..].fill(0.0);
                prefetch(self.xp, at + PREFETCH_PANELS * nr);
            }
        }
    }
}

/// Panels ahead that [`PaddedPanels`] prefetches each source run. A block's
/// panels read one run from each of `ig·KH·KW` rows spread over every input
/// plane: too many streams for the hardware prefetchers once the planes
/// outgrow the L2 (224² images: the copies took 22% of the time, 10% at 112²).
const PREFETCH_PANELS: usize = 2;

/// Hints the cache line of `xp[at]` (if inside `xp`) into L1.
#[inline(always)]
fn prefetch(xp: &[f32], at: usize) {
    #[cfg(target_arch = "x86_64")]
    if at < xp.len() {
        // SAFETY: a prefetch of an address inside `xp` (prefetches never fault).
        unsafe { std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(xp.as_ptr().add(at) as *const i8) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (xp, at);
}

/// Writes `plane` (`in_h × in_w`) into `dst` (`Hp × wp`) with `p`'s zero pads.
fn pad_plane(p: &super::Conv2dParams, wp: usize, plane: &[f32], dst: &mut [f32]) {
    let [pt, pl, _, _] = p.pads;
    let (rows, after) = dst.split_at_mut((pt + p.in_h) * wp);
    after.fill(0.0);
    rows[..pt * wp].fill(0.0);
    for (d, row) in rows[pt * wp..].chunks_exact_mut(wp).zip(plane.chunks_exact(p.in_w)) {
        d[..pl].fill(0.0);
        d[pl..pl + p.in_w].copy_from_slice(row);
        d[pl + p.in_w..].fill(0.0);
    }
}

/// The convolution `g` (which [`applies`]) with `[O, I/g, KH, KW]` weights `w`.
pub(super) fn nchw(g: &Geom, input: &[f32], w: &[f32], output: &mut [f32], epi: &ConvEpilogue<'_>) {
    let p = &g.p;
    let isa = Isa::detect();
    let nr = packed_tile_cols(isa).unwrap_or(16);
    let wp = p.in_w + p.pads[1] + p.pads[3];
    let hp = p.in_h + p.pads[0] + p.pads[2];
    let sh = Padded {
        plane: hp * wp,
        virt: g.oh * wp,
    };
    // The last virtual columns (`ow ≥ OW` of the last output row) read up to
    // `(KW−1)·dw` elements past the planes.
    let slack = (p.kernel_w - 1) * p.dilation_w;
    let offs: Vec<usize> = (0..g.ig)
        .flat_map(|i| {
            (0..p.kernel_h).flat_map(move |kh| (0..p.kernel_w).map(move |kw| i * sh.plane + kh * p.dilation_h * wp + kw * p.dilation_w))
        })
        .collect();
    let threads = rayon::current_num_threads();
    // Virtual columns per task: as the implicit im2col's pixel blocks. With
    // fewer than 8 tile widths per thread, whole-tile blocks would be uneven
    // (224 columns over 2 threads: 128 + 96), so the output channels are
    // split over the threads instead, when there are 32 or more per thread.
    let mut vblocks = sh.virt.div_ceil(IMPLICIT_PIXELS);
    let split_channels = threads > 1 && sh.virt < threads * 8 * nr && g.og >= 32 * threads;
    if threads > 1 && !split_channels {
        vblocks = vblocks.div_ceil(threads) * threads;
    }
    let vb = (sh.virt.div_ceil(vblocks).div_ceil(nr) * nr).max(nr);
    let vblocks = sh.virt.div_ceil(vb);
    let cblocks = if split_channels { threads } else { 1 };
    let cb = g.og.div_ceil(cblocks);
    let tasks = vblocks * g.og.div_ceil(cb);
    let (h, wd, pixels) = (p.in_h, p.in_w, g.pixels());
    let out = SendPtr(output.as_mut_ptr());
    // One group (`applies`): the image's channels are the group's, from output channel 0.
    for n in 0..p.batch {
        let planes = &input[n * p.in_channels * h * wd..][..g.ig * h * wd];
        with_scratch(g.ig * sh.plane + slack, |xp| {
            let (body, tail) = xp.split_at_mut(g.ig * sh.plane);
            tail.fill(0.0);
            let fill = |(dst, plane): (&mut [f32], &[f32])| pad_plane(p, wp, plane, dst);
            if threads <= 1 {
                body.chunks_exact_mut(sh.plane).zip(planes.chunks_exact(h * wd)).for_each(fill);
            } else {
                body.par_chunks_exact_mut(sh.plane)
                    .zip(planes.par_chunks_exact(h * wd))
                    .for_each(fill);
            }
            let xp = &*xp;
            let task = |t: usize| {
                let (b, c0) = (t % vblocks, (t / vblocks) * cb);
                let cn = cb.min(g.og - c0);
                let q0 = b * vb;
                let nv = vb.min(sh.virt - q0);
                let packer = PaddedPanels { xp, offs: &offs, q0 };
                // Real pixels of the block: rows q0/wp.., columns < ow.
                let (first_row, last_row) = (q0 / wp, (q0 + nv - 1) / wp);
                // Row stride of the block's product: `nv` unless a multiple of
                // 256 floats (1 KiB), whose tile rows would share L1 sets (224²
                // images: 1024-column blocks, rows 4 KiB apart, ran at 82
                // GFLOP/s against 97 for 56² ones).
                let ld = if nv.is_multiple_of(256) { nv + 16 } else { nv };
                with_scratch(cn * ld, |virt| {
                    // SAFETY: the weights of the group are og rows of depth
                    // elements (length validated by conv2d), rows c0..c0+cn
                    // among them; `packer` reads offsets below ig·plane + slack
                    // inside `xp`; `virt` is a cn × nv matrix of row stride
                    // ld ≥ nv owned by this task.
                    let done = unsafe {
                        let wr = w.as_ptr().add(c0 * g.depth());
                        sgemm_with_packer(isa, cn, g.depth(), nv, wr, g.depth(), 1, &packer, virt.as_mut_ptr(), ld)
                    };
                    debug_assert!(done, "applies() checked the packed kernel");
                    let mut p_start = usize::MAX;
                    let mut p_end = 0;
                    for oh in first_row..=last_row {
                        let (c_lo, c_hi) = ((oh * wp).max(q0), (oh * wp + g.ow).min(q0 + nv));
                        if c_lo >= c_hi {
                            continue;
                        }
                        let px = oh * g.ow + (c_lo - oh * wp);
                        p_start = p_start.min(px);
                        p_end = px + (c_hi - c_lo);
                        for (o, vrow) in virt.chunks_exact(ld).enumerate() {
                            // SAFETY: channel c0 + o, pixels px.. of image n are
                            // inside the output, and tasks write disjoint
                            // (channel, pixel) ranges.
                            unsafe {
                                let dst = out.get().add((n * p.out_channels + c0 + o) * pixels + px);
                                std::ptr::copy_nonoverlapping(vrow[c_lo - q0..].as_ptr(), dst, c_hi - c_lo);
                            }
                        }
                    }
                    if p_start < p_end && !epi.is_noop() {
                        // SAFETY: the block's pixels of channels c0..c0+cn,
                        // written above by this task only.
                        let mut tile = unsafe {
                            Tile::from_raw(
                                out.get().add((n * p.out_channels + c0) * pixels + p_start),
                                pixels,
                                n,
                                c0,
                                cn,
                                p_start,
                                p_end - p_start,
                            )
                        };
                        epi.apply(&mut tile);
                    }
                });
            };
            if threads <= 1 || tasks == 1 {
                (0..tasks).for_each(task);
            } else {
                (0..tasks).into_par_iter().with_max_len(1).for_each(task);
            }
        });
    }
}
