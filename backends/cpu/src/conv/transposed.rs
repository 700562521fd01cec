//! Few-pixel `NCHW` convolutions computed transposed: `Yᵀ[P, O] = colᵀ[P, D]
//! · Wᵀ[D, O]`, then `Y` written back channel-major.
//!
//! The `NCHW` product `Y[O, P] = W[O, D] · col[D, P]` puts the output pixels
//! on the micro-kernel's columns, which come in panels of 32 (AVX-512) or 16
//! (AVX2). A 7×7 image has 49 pixels: two panels, the second 17/32 full, so a
//! quarter of every FMA is wasted (ResNet-50's last stage ran at 63–76 GFLOP/s
//! against 100 for a full-panel GEMM). Transposed, the output channels (in
//! practice multiples of 32) take the columns and the pixels the rows, where a
//! short edge tile costs only its own rows. Measured on one thread, the GEMM
//! alone, `O × D × P` as `NCHW` then transposed: 512×2048×49 67 → 96,
//! 128×1024×49 67 → 89, 512×4608×196 92 → 95 GFLOP/s (at 196 pixels the
//! whole convolution did not gain, see [`MAX_PIXEL_PANEL_USE`]). With few
//! channels (32) the transposed product packs `col` for too few FMAs per
//! element and is slower (88 → 75), hence [`MIN_CHANNELS`].
//!
//! The input is the `A` operand read column-major in place (1×1, stride 1,
//! unpadded) or from an im2col copy; the weights are `B` read column-major
//! in their stored precision (no `f32` repack of `f16`/`bf16` weights). That
//! transposing pack runs on every call and at 49 pixels measured about 11%
//! of the time (each weight takes part in only 49 FMAs); weights stored
//! transposed (`[D, O]`) were no faster, their pack being a strided copy. The
//! product goes to a scratch `P × O` matrix, which is transposed into the
//! output by channel blocks, each block's bias and epilogue applied right
//! after it is written.

use rayon::prelude::*;

use super::im2col::fill_col;
use super::{ConvEpilogue, DataLayout, Geom};
use crate::KernelError;
use crate::gemm::{Epilogue, GemmDims, MatLayout, SendPtr, Tile, WeightRef, gemm, packed_tile_cols, with_scratch};
use crate::simd::Isa;

/// Most output pixels per image for this path: the `P × O` scratch product
/// and the im2col copy (`D × P`) stay a few MiB.
pub(super) const MAX_PIXELS: usize = 256;
/// Fewest output channels: below it the transposed product measured slower.
pub(super) const MIN_CHANNELS: usize = 64;
/// The path is taken only when the pixels fill less than this share of the
/// tile columns: at 196 pixels (7 panels of 32 for 6.125 of work) the
/// transposed product measured 4% faster for 1×1s with a deep input but 8%
/// slower for 3×3s (the im2col copy and the column-major weight packing cost
/// more than the columns saved); at 49 pixels it gained 0–37%.
pub(super) const MAX_PIXEL_PANEL_USE: f64 = 0.8;
/// Output channels per transpose-and-epilogue block.
const CHANNEL_BLOCK: usize = 64;

/// Share of `len` columns used when they are cut into panels of `nr`.
fn panel_use(len: usize, nr: usize) -> f64 {
    len as f64 / (len.div_ceil(nr) * nr) as f64
}

/// Whether `g` runs transposed on `isa`: `NCHW`, one group, weights in
/// `f32`/`f16`/`bf16`, a packed micro-kernel, at most [`MAX_PIXELS`] output
/// pixels, at least [`MIN_CHANNELS`] output channels, the pixels filling less
/// than [`MAX_PIXEL_PANEL_USE`] of the tile columns and the channels filling
/// them better (by more than 10 points).
pub(super) fn applies(g: &Geom, weight: &WeightRef<'_>, isa: Isa) -> bool {
    let p = &g.p;
    let Some(nr) = packed_tile_cols(isa) else {
        return false;
    };
    p.layout == DataLayout::Nchw
        && p.groups == 1
        && matches!(weight, WeightRef::F32(_) | WeightRef::F16(_) | WeightRef::BF16(_))
        && g.pixels() <= MAX_PIXELS
        && p.out_channels >= MIN_CHANNELS
        && panel_use(g.pixels(), nr) < MAX_PIXEL_PANEL_USE
        && panel_use(p.out_channels, nr) > panel_use(g.pixels(), nr) + 0.1
}

/// Whether the input itself is the im2col matrix (1×1, stride 1, unpadded).
fn input_is_col(g: &Geom) -> bool {
    let p = &g.p;
    p.kernel_h == 1 && p.kernel_w == 1 && (p.stride_h, p.stride_w) == (1, 1) && p.pads == [0; 4]
}

/// The convolution `g` (which [`applies`]) with `[O, I, KH, KW]` weights `w`.
///
/// # Errors
/// What [`gemm`] reports; with the lengths `conv2d` has validated, nothing.
pub(super) fn nchw(g: &Geom, input: &[f32], w: WeightRef<'_>, output: &mut [f32], epi: &ConvEpilogue<'_>) -> Result<(), KernelError> {
    let p = &g.p;
    let (o, d, pixels) = (p.out_channels, g.depth(), g.pixels());
    let image = p.in_channels * p.in_h * p.in_w;
    let direct = input_is_col(g);
    let dims = GemmDims::new(pixels, d, o);
    let out = SendPtr(output.as_mut_ptr());
    let blocks = o.div_ceil(CHANNEL_BLOCK);
    for n in 0..p.batch {
        let x = &input[n * image..][..image];
        with_scratch(
            pixels * o + if direct { 0 } else { d * pixels },
            |scratch| -> Result<(), KernelError> {
                let (yt, col) = scratch.split_at_mut(pixels * o);
                let a: &[f32] = if direct {
                    x
                } else {
                    fill_col(p, g.ow, x, 0, col);
                    col
                };
                // colᵀ is col read column-major; Wᵀ is W read column-major.
                gemm(
                    dims,
                    a,
                    MatLayout::col_major(pixels, d),
                    w,
                    MatLayout::col_major(d, o),
                    yt,
                    MatLayout::row_major(pixels, o),
                    None,
                )?;
                let yt = &*yt;
                let block = |b: usize| {
                    let (c0, cn) = (b * CHANNEL_BLOCK, CHANNEL_BLOCK.min(o - b * CHANNEL_BLOCK));
                    // SAFETY: channels c0..c0+cn of image n lie inside the output, and
                    // blocks write disjoint channel ranges.
                    let dst = unsafe { std::slice::from_raw_parts_mut(out.get().add((n * o + c0) * pixels), cn * pixels) };
                    for (px, src) in yt.chunks_exact(o).enumerate() {
                        for (c, &v) in src[c0..c0 + cn].iter().enumerate() {
                            dst[c * pixels + px] = v;
                        }
                    }
                    if !epi.is_noop() {
                        // SAFETY: the block written above, owned by this task.
                        let mut tile = unsafe { Tile::from_raw(dst.as_mut_ptr(), pixels, n, c0, cn, 0, pixels) };
                        epi.apply(&mut tile);
                    }
                };
                if rayon::current_num_threads() <= 1 || blocks == 1 {
                    (0..blocks).for_each(block);
                } else {
                    (0..blocks).into_par_iter().with_max_len(1).for_each(block);
                }
                Ok(())
            },
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conv::Conv2dParams;

    fn geom(p: Conv2dParams) -> Geom {
        let (oh, ow) = p.output_hw().unwrap();
        Geom {
            p,
            oh,
            ow,
            ig: p.in_channels / p.groups,
            og: p.out_channels / p.groups,
        }
    }

    /// Which shapes take the path, for the AVX-512 (32-column) and AVX2
    /// (16-column) tiles alike: ResNet-50's last stage and DenseNet's 7×7
    /// 1×1s do; 32 output channels, a 64-pixel image (whole panels), a
    /// 196-pixel one (7/8 of the columns used), a grouped convolution, `NHWC`
    /// and int8 weights do not.
    #[test]
    fn applies_where_the_pixels_waste_tile_columns() {
        let w = [0.0f32; 1];
        let f32w = WeightRef::F32(&w);
        for isa in [Isa::Avx512, Isa::Avx2] {
            if packed_tile_cols(isa).is_none() {
                continue;
            }
            let yes = [
                Conv2dParams::new(1, 512, 7, 7, 512, 3, 3).with_pads([1, 1, 1, 1]),
                Conv2dParams::new(1, 512, 7, 7, 2048, 1, 1),
                Conv2dParams::new(1, 1024, 7, 7, 128, 1, 1),
            ];
            for p in yes {
                assert!(applies(&geom(p), &f32w, isa), "{isa:?} {p:?}");
            }
            let no = [
                Conv2dParams::new(1, 128, 7, 7, 32, 3, 3).with_pads([1, 1, 1, 1]),
                Conv2dParams::new(1, 64, 8, 8, 256, 1, 1),
                Conv2dParams::new(1, 256, 14, 14, 256, 3, 3).with_pads([1, 1, 1, 1]),
                Conv2dParams::new(1, 512, 7, 7, 512, 3, 3).with_groups(2),
                Conv2dParams::new(1, 512, 7, 7, 512, 1, 1).with_layout(DataLayout::Nhwc),
            ];
            for p in no {
                assert!(!applies(&geom(p), &f32w, isa), "{isa:?} {p:?}");
            }
            let q = crate::quant::quantize_int8(&[0.5f32; 512 * 512], 512, 512).unwrap();
            let p = Conv2dParams::new(1, 512, 7, 7, 512, 1, 1);
            assert!(!applies(&geom(p), &WeightRef::from(&q), isa));
        }
    }
}
