//! Depthwise 3×3 convolution over `NCHW` (one input and one output channel per
//! group; stride 1 or 2, dilation 1, pads below the kernel size): the
//! depthwise layers of ShuffleNet and MobileNet.
//!
//! Each task takes a block of channel planes of one image. A plane is copied
//! into a zero-padded scratch plane of `wp` columns. At stride 1 the output is
//! computed over the *flattened* padded rows: virtual output `q = oh·wp + ow`
//! reads padded element `q + kh·wp + kw`, so one vector covers several short
//! output rows at once (a 7-wide plane no longer wastes 9 of 16 lanes); the
//! columns `ow ≥ OW` are discarded when the rows are copied out. At stride 2
//! each output row is computed alone, with [`Simd::load_even`]. Every load is
//! unmasked and bounds-free. [`CHAINS`] vectors are computed
//! together so their FMA chains overlap. The bias and epilogue run once over
//! the block (channels as rows), not once per plane.

use rayon::prelude::*;

use super::{ConvEpilogue, DataLayout, Geom};
use crate::gemm::{Epilogue, Tile, with_scratch};
use crate::simd::{Isa, Simd, SimdKernel};

/// Kernel height and width of this path.
const K: usize = 3;
/// Output vectors computed together (independent FMA chains).
const CHAINS: usize = 4;
/// Target output elements per task: enough work to amortize a task, small
/// enough that a block stays in L2 for the epilogue.
const TASK_ELEMS: usize = 16 * 1024;
/// Widest vector of any ISA, in lanes.
const MAX_LANES: usize = 16;
/// Zeros after the padded plane: the last virtual vector's loads reach at
/// most `2·MAX_LANES` past it (see [`Shape::at`]); twice that, for margin.
const SLACK: usize = 4 * MAX_LANES + 2 * K;

/// Whether this path computes `g`.
pub(super) fn applies(g: &Geom) -> bool {
    let p = &g.p;
    p.layout == DataLayout::Nchw
        && g.ig == 1
        && g.og == 1
        && (p.kernel_h, p.kernel_w) == (K, K)
        && p.stride_h == p.stride_w
        && (p.stride_h == 1 || p.stride_h == 2)
        && (p.dilation_h, p.dilation_w) == (1, 1)
        && p.pads.iter().all(|&x| x < K)
}

/// Sizes of the padded and virtual planes.
#[derive(Clone, Copy)]
struct Shape {
    stride: usize,
    /// Padded row length.
    wp: usize,
    /// Padded plane length, without the slack.
    plane: usize,
    /// Virtual output row length: `wp` at stride 1 (virtual rows are the
    /// flattened padded rows), `OW` rounded up to [`MAX_LANES`] at stride 2
    /// (one output row per virtual row, so no vector spans two).
    vw: usize,
    /// Virtual output length (`oh · vw`).
    virt: usize,
}

impl Shape {
    fn new(g: &Geom) -> Shape {
        let p = &g.p;
        let stride = p.stride_h;
        let wp = p.in_w + p.pads[1] + p.pads[3];
        let hp = p.in_h + p.pads[0] + p.pads[2];
        let vw = if stride == 1 { wp } else { g.ow.div_ceil(MAX_LANES) * MAX_LANES };
        Shape {
            stride,
            wp,
            plane: hp * wp,
            vw,
            virt: g.oh * vw,
        }
    }

    /// Padded element read by virtual output `q` at tap `(kh, kw)`: stride 1,
    /// `q + kh·wp + kw`; stride 2, row `2·oh + kh`, column `2·j + kw` for `q =
    /// oh·vw + j`. Reads reach at most `2·MAX_LANES` past the plane (the
    /// virtual columns past `OW` only at stride 2, where `2·OW ≤ wp`).
    #[inline(always)]
    fn at(&self, q: usize, kh: usize, kw: usize) -> usize {
        if self.stride == 1 {
            q + kh * self.wp + kw
        } else {
            (2 * (q / self.vw) + kh) * self.wp + 2 * (q % self.vw) + kw
        }
    }
}

/// The convolution `g` (which [`applies`]) with `[C, 1, 3, 3]` weights `w`.
pub(super) fn nchw(g: &Geom, input: &[f32], w: &[f32], output: &mut [f32], epi: &ConvEpilogue<'_>) {
    let p = &g.p;
    let (c, pixels) = (p.out_channels, g.pixels());
    let threads = rayon::current_num_threads();
    // Enough tasks to keep every thread busy (and balanced) when the image is small.
    let per_task = (TASK_ELEMS / pixels.max(1)).clamp(1, c).min(c.div_ceil(4 * threads)).max(1);
    let blocks_per_image = c.div_ceil(per_task);
    let shape = Shape::new(g);
    let task = |t: usize, out: &mut [f32]| {
        let (n, c0) = (t / blocks_per_image, (t % blocks_per_image) * per_task);
        let planes = out.len() / pixels;
        let virt_len = shape.virt.div_ceil(MAX_LANES) * MAX_LANES;
        with_scratch(shape.plane + SLACK + virt_len, |scratch| {
            let (pad, virt) = scratch.split_at_mut(shape.plane + SLACK);
            // The pad columns, pad rows and slack stay zero: planes only write the interior.
            pad.fill(0.0);
            Isa::detect().dispatch(Planes {
                g,
                shape,
                input: &input[(n * c + c0) * p.in_h * p.in_w..][..planes * p.in_h * p.in_w],
                w: &w[c0 * K * K..][..planes * K * K],
                pad,
                virt,
                out: &mut *out,
            });
        });
        if !epi.is_noop()
            && let Some(mut tile) = Tile::from_slice(out, pixels, n, c0, planes, 0, pixels)
        {
            epi.apply(&mut tile);
        }
    };
    // Blocks never span two images: split per image first.
    let blocks: Vec<(usize, &mut [f32])> = output
        .chunks_mut(c * pixels)
        .enumerate()
        .flat_map(|(n, img)| {
            img.chunks_mut(per_task * pixels)
                .enumerate()
                .map(move |(b, blk)| (n * blocks_per_image + b, blk))
        })
        .collect();
    if threads <= 1 || blocks.len() == 1 {
        blocks.into_iter().for_each(|(t, blk)| task(t, blk));
    } else {
        blocks.into_par_iter().with_max_len(1).for_each(|(t, blk)| task(t, blk));
    }
}

/// A block of consecutive planes of one image.
struct Planes<'a> {
    g: &'a Geom,
    shape: Shape,
    /// The block's input planes.
    input: &'a [f32],
    /// Their 3×3 weights, row-major, plane after plane.
    w: &'a [f32],
    /// The padded plane and its slack, zero outside the interior.
    pad: &'a mut [f32],
    /// The virtual output (at least `virt` rounded up to a vector).
    virt: &'a mut [f32],
    /// The block's output planes.
    out: &'a mut [f32],
}

/// `dst[..] = src[..]` (equal lengths) in vectors, with no library call (runs
/// of a few dozen values, too short for `memcpy`'s call to pay).
#[inline(always)]
pub(super) fn copy_run<S: Simd>(s: S, src: &[f32], dst: &mut [f32]) {
    for i in (0..dst.len()).step_by(S::LANES) {
        s.store_partial(s.load_partial(&src[i..]), &mut dst[i..]);
    }
}

impl SimdKernel for Planes<'_> {
    type Output = ();
    #[inline(always)]
    fn run<S: Simd>(self, s: S) {
        let p = &self.g.p;
        let sh = self.shape;
        let (h, wd, ow) = (p.in_h, p.in_w, self.g.ow);
        let (pt, pl) = (p.pads[0], p.pads[1]);
        let planes = self.input.chunks_exact(h * wd);
        let outs = self.out.chunks_exact_mut(self.g.pixels());
        for ((plane, out), w) in planes.zip(outs).zip(self.w.chunks_exact(K * K)) {
            for (y, row) in plane.chunks_exact(wd).enumerate() {
                copy_run(s, row, &mut self.pad[(pt + y) * sh.wp + pl..][..wd]);
            }
            let taps: [S::V; K * K] = std::array::from_fn(|i| s.splat(w[i]));
            let mut q = 0;
            while q + CHAINS * S::LANES <= sh.virt {
                vectors::<S, CHAINS>(s, self.pad, sh, &taps, q, self.virt);
                q += CHAINS * S::LANES;
            }
            while q < sh.virt {
                vectors::<S, 1>(s, self.pad, sh, &taps, q, self.virt);
                q += S::LANES;
            }
            for (o, v) in out.chunks_exact_mut(ow).zip(self.virt.chunks(sh.vw)) {
                copy_run(s, &v[..ow], o);
            }
        }
    }
}

/// Virtual outputs `q..q + V·LANES` into `virt`.
#[inline(always)]
fn vectors<S: Simd, const V: usize>(s: S, pad: &[f32], sh: Shape, taps: &[S::V; K * K], q: usize, virt: &mut [f32]) {
    let mut acc = [s.zero(); V];
    for kh in 0..K {
        for kw in 0..K {
            let t = taps[kh * K + kw];
            for (v, a) in acc.iter_mut().enumerate() {
                let at = sh.at(q + v * S::LANES, kh, kw);
                let x = if sh.stride == 1 {
                    s.load(&pad[at..])
                } else {
                    s.load_even(&pad[at..at + 2 * S::LANES])
                };
                *a = s.mul_add(x, t, *a);
            }
        }
    }
    for (v, a) in acc.iter().enumerate() {
        s.store(*a, &mut virt[q + v * S::LANES..]);
    }
}
