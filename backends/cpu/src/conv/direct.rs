//! Direct kernel for grouped convolutions with few channels per group
//! (depthwise included): no im2col, inner loops along contiguous memory.

use rayon::prelude::*;

use super::{ConvEpilogue, Geom};
use crate::gemm::mv::{axpy, wide};
use crate::gemm::{Epilogue, Tile, with_scratch};
use crate::phases::{Phases, PlaneGeometry, weighted_taps};
use crate::window::tap_index;

fn par_chunks(out: &mut [f32], chunk: usize, f: impl Fn(usize, &mut [f32]) + Sync + Send) {
    if rayon::current_num_threads() <= 1 {
        out.chunks_mut(chunk).enumerate().for_each(|(t, c)| f(t, c));
    } else {
        out.par_chunks_mut(chunk).enumerate().for_each(|(t, c)| f(t, c));
    }
}

/// `NCHW` with `[O, I/g, KH, KW]` weights: one task per image and group.
/// The group's input planes are laid out in stride phases ([`Phases`]) once, so
/// every (input channel, tap) pair is one contiguous run over a whole output
/// plane (at the phases' row pitch); each of the group's output planes is then
/// one [`weighted_taps`] over all those runs, and its real columns are copied out.
pub(super) fn nchw(g: &Geom, input: &[f32], w: &[f32], output: &mut [f32], epi: &ConvEpilogue<'_>) {
    let p = &g.p;
    let (h, wd, khw, pixels) = (p.in_h, p.in_w, p.kernel_h * p.kernel_w, g.pixels());
    let geometry = PlaneGeometry {
        h,
        w: wd,
        pads: p.pads,
        stride_h: p.stride_h,
        stride_w: p.stride_w,
        oh: g.oh,
    };
    let phases = Phases::new(&geometry);
    let taps = phases.tap_starts([p.kernel_h, p.kernel_w], [p.dilation_h, p.dilation_w]);
    // Run starts of every (input channel of the group, tap), in the weights' order.
    let starts: Vec<usize> = (0..g.ig).flat_map(|i| taps.iter().map(move |&t| i * phases.len() + t)).collect();
    par_chunks(output, g.og * pixels, |t, group_out| {
        let (n, grp) = (t / p.groups, t % p.groups);
        with_scratch(g.ig * phases.len() + phases.out_len(), |scratch| {
            let (buf, acc) = scratch.split_at_mut(g.ig * phases.len());
            for (i, dst) in buf.chunks_exact_mut(phases.len()).enumerate() {
                let plane = &input[(n * p.in_channels + grp * g.ig + i) * h * wd..][..h * wd];
                phases.fill(&geometry, plane, 0.0, dst);
            }
            for (j, plane_out) in group_out.chunks_exact_mut(pixels).enumerate() {
                let o = grp * g.og + j;
                acc.fill(0.0);
                weighted_taps(buf, &starts, &w[o * g.ig * khw..][..g.ig * khw], acc);
                for (orow, arow) in plane_out.chunks_exact_mut(g.ow).zip(acc.chunks_exact(phases.wp)) {
                    orow.copy_from_slice(&arow[..g.ow]);
                }
                if !epi.is_noop()
                    && let Some(mut tile) = Tile::from_slice(plane_out, pixels, n, o, 1, 0, pixels)
                {
                    epi.apply(&mut tile);
                }
            }
        });
    });
}

/// `NHWC` with `[KH, KW, I/g, O]` weights: one task per output row `(n, oh)`,
/// the inner loop along the channels.
pub(super) fn nhwc(g: &Geom, input: &[f32], w: &[f32], output: &mut [f32], epi: &ConvEpilogue<'_>) {
    let p = &g.p;
    let (ci, co) = (p.in_channels, p.out_channels);
    let depthwise1 = g.ig == 1 && g.og == 1;
    par_chunks(output, g.ow * co, |t, row_out| {
        let (n, oh) = (t / g.oh, t % g.oh);
        row_out.fill(0.0);
        wide(|| {
            for (ow, opix) in row_out.chunks_exact_mut(co).enumerate() {
                for kh in 0..p.kernel_h {
                    let Some(ih) = tap_index(oh, kh, p.stride_h, p.dilation_h, p.pads[0], p.in_h) else {
                        continue;
                    };
                    for kw in 0..p.kernel_w {
                        let Some(iw) = tap_index(ow, kw, p.stride_w, p.dilation_w, p.pads[1], p.in_w) else {
                            continue;
                        };
                        let xpix = &input[((n * p.in_h + ih) * p.in_w + iw) * ci..][..ci];
                        let wk = &w[(kh * p.kernel_w + kw) * g.ig * co..][..g.ig * co];
                        if depthwise1 {
                            for ((y, x), wv) in opix.iter_mut().zip(xpix).zip(wk) {
                                *y += x * wv;
                            }
                        } else {
                            for grp in 0..p.groups {
                                let yg = &mut opix[grp * g.og..(grp + 1) * g.og];
                                for i in 0..g.ig {
                                    axpy(yg, xpix[grp * g.ig + i], &wk[i * co + grp * g.og..][..g.og]);
                                }
                            }
                        }
                    }
                }
            }
        });
        let tile = if epi.is_noop() {
            None
        } else {
            Tile::from_slice(row_out, co, n, oh * g.ow, g.ow, 0, co)
        };
        if let Some(mut tile) = tile {
            epi.apply(&mut tile);
        }
    });
}
