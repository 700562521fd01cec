//! 2-D convolution over `NCHW` or `NHWC` activations.
//!
//! Weights are `[O, I/groups, KH, KW]` ([`ConvWeightLayout::Oihw`], the ONNX
//! layout) or pre-packed `[KH, KW, I/groups, O]` ([`ConvWeightLayout::Hwio`],
//! what the `NHWC` paths use internally), in `f32`, `f16` or `bf16`.
//!
//! Paths, chosen from the parameters:
//! * `NCHW`, one group, few output pixels (filling under 80% of the tile
//!   columns) and many output channels: the product computed transposed,
//!   pixels on the tile rows ([`transposed`]).
//! * 1×1, stride 1, no padding, one group: a direct GEMM on the activations
//!   (`NCHW`: `W[O,I] · X[I,HW]`; `NHWC`: `X[HW,I] · Wᵀ`), no copies.
//! * depthwise 3×3, stride 1 or 2, `NCHW`: a register-blocked kernel over
//!   zero-padded planes ([`depthwise`]).
//! * other grouped convolutions with few channels per group (depthwise
//!   included, any channel multiplier): a direct kernel whose inner loop runs
//!   along the output width (`NCHW`) or the channels (`NHWC`).
//! * `NCHW` stride 1, one group: a GEMM over a zero-padded copy of the input,
//!   the output computed on the padded width ([`padded`]).
//! * everything else: im2col of a block of output pixels (scratch bounded to
//!   about 1 MiB per thread) followed by a GEMM on that block.
//!
//! Work is spread over rayon's current pool by (image, group, pixel block,
//! output-channel block), or by output planes/rows in the direct kernel.
//!
//! The optional bias is added, and the optional [`Epilogue`] run, on each output
//! block right after it is computed. The epilogue sees one image's output as a
//! matrix: `[O, OH·OW]` for `NCHW`, `[OH·OW, O]` for `NHWC`, with
//! [`Tile::batch`](crate::gemm::Tile::batch) the image index.

mod depthwise;
mod direct;
mod im2col;
mod implicit;
mod padded;
mod transposed;

use std::borrow::Cow;

use crate::KernelError;
use crate::gemm::{Epilogue, GemmDims, MatLayout, Tile, WeightRef, gemm};

const KERNEL: &str = "conv2d";

/// Memory order of activations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataLayout {
    /// `[N, C, H, W]`.
    Nchw,
    /// `[N, H, W, C]`.
    Nhwc,
}

/// Memory order of convolution weights.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConvWeightLayout {
    /// `[O, I/groups, KH, KW]` (ONNX, PyTorch).
    Oihw,
    /// `[KH, KW, I/groups, O]`: pre-packed for `NHWC` (see [`pack_weights`]).
    Hwio,
}

/// Shape and hyper-parameters of a 2-D convolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2dParams {
    /// Images in the batch.
    pub batch: usize,
    /// Input channels.
    pub in_channels: usize,
    /// Input height.
    pub in_h: usize,
    /// Input width.
    pub in_w: usize,
    /// Output channels.
    pub out_channels: usize,
    /// Kernel height.
    pub kernel_h: usize,
    /// Kernel width.
    pub kernel_w: usize,
    /// Vertical stride (≥ 1).
    pub stride_h: usize,
    /// Horizontal stride (≥ 1).
    pub stride_w: usize,
    /// Zero padding `[top, left, bottom, right]`.
    pub pads: [usize; 4],
    /// Vertical dilation (≥ 1).
    pub dilation_h: usize,
    /// Horizontal dilation (≥ 1).
    pub dilation_w: usize,
    /// Groups (divides both channel counts); `groups == in_channels` is depthwise.
    pub groups: usize,
    /// Layout of input and output.
    pub layout: DataLayout,
}

impl Conv2dParams {
    /// A convolution with stride 1, no padding, dilation 1, one group, `NCHW`.
    pub fn new(batch: usize, in_channels: usize, in_h: usize, in_w: usize, out_channels: usize, kernel_h: usize, kernel_w: usize) -> Self {
        Conv2dParams {
            batch,
            in_channels,
            in_h,
            in_w,
            out_channels,
            kernel_h,
            kernel_w,
            stride_h: 1,
            stride_w: 1,
            pads: [0; 4],
            dilation_h: 1,
            dilation_w: 1,
            groups: 1,
            layout: DataLayout::Nchw,
        }
    }
    /// With strides `(h, w)`.
    pub fn with_stride(self, h: usize, w: usize) -> Self {
        Conv2dParams {
            stride_h: h,
            stride_w: w,
            ..self
        }
    }
    /// With pads `[top, left, bottom, right]`.
    pub fn with_pads(self, pads: [usize; 4]) -> Self {
        Conv2dParams { pads, ..self }
    }
    /// With dilations `(h, w)`.
    pub fn with_dilation(self, h: usize, w: usize) -> Self {
        Conv2dParams {
            dilation_h: h,
            dilation_w: w,
            ..self
        }
    }
    /// With `groups` groups.
    pub fn with_groups(self, groups: usize) -> Self {
        Conv2dParams { groups, ..self }
    }
    /// With activation layout `layout`.
    pub fn with_layout(self, layout: DataLayout) -> Self {
        Conv2dParams { layout, ..self }
    }

    /// Checks the parameters and returns the output size `(out_h, out_w)`.
    ///
    /// # Errors
    /// [`KernelError::Shape`] for zero strides/dilations/groups/kernel sizes,
    /// channel counts not divisible by `groups`, a (dilated) kernel larger than
    /// the padded input, or sizes whose element counts overflow.
    pub fn output_hw(&self) -> Result<(usize, usize), KernelError> {
        let bad = |what: String| Err(KernelError::Shape { kernel: KERNEL, what });
        if self.stride_h == 0 || self.stride_w == 0 || self.dilation_h == 0 || self.dilation_w == 0 {
            return bad(format!(
                "strides {:?} and dilations {:?} must be ≥ 1",
                (self.stride_h, self.stride_w),
                (self.dilation_h, self.dilation_w)
            ));
        }
        if self.kernel_h == 0 || self.kernel_w == 0 {
            return bad(format!("kernel {}×{} is empty", self.kernel_h, self.kernel_w));
        }
        if self.in_channels.checked_rem(self.groups) != Some(0) || self.out_channels.checked_rem(self.groups) != Some(0) {
            return bad(format!(
                "groups {} must divide in_channels {} and out_channels {}",
                self.groups, self.in_channels, self.out_channels
            ));
        }
        let dim = |size: usize, p0: usize, p1: usize, k: usize, d: usize, s: usize| -> Option<usize> {
            let padded = size.checked_add(p0)?.checked_add(p1)?;
            let span = (k - 1).checked_mul(d)?.checked_add(1)?;
            if padded < span { None } else { Some((padded - span) / s + 1) }
        };
        let [pt, pl, pb, pr] = self.pads;
        let (Some(oh), Some(ow)) = (
            dim(self.in_h, pt, pb, self.kernel_h, self.dilation_h, self.stride_h),
            dim(self.in_w, pl, pr, self.kernel_w, self.dilation_w, self.stride_w),
        ) else {
            return bad(format!(
                "dilated kernel larger than the padded input {}×{} (pads {:?})",
                self.in_h, self.in_w, self.pads
            ));
        };
        let counts = [
            [self.batch, self.in_channels, self.in_h, self.in_w],
            [self.batch, self.out_channels, oh, ow],
            [self.out_channels, self.in_channels / self.groups, self.kernel_h, self.kernel_w],
        ];
        if counts
            .iter()
            .any(|c| c.iter().try_fold(1usize, |acc, &x| acc.checked_mul(x)).is_none())
        {
            return bad("element count overflows".to_string());
        }
        Ok((oh, ow))
    }

    /// Elements of the input tensor.
    pub fn input_len(&self) -> usize {
        self.batch * self.in_channels * self.in_h * self.in_w
    }
    /// Elements of the weight tensor.
    pub fn weight_len(&self) -> usize {
        self.out_channels * (self.in_channels / self.groups.max(1)) * self.kernel_h * self.kernel_w
    }
    /// Elements of the output tensor (0 if the parameters are invalid).
    pub fn output_len(&self) -> usize {
        self.output_hw().map_or(0, |(oh, ow)| self.batch * self.out_channels * oh * ow)
    }
    /// Floating-point operations (2 per multiply-add; 0 if invalid).
    pub fn flops(&self) -> f64 {
        2.0 * self.output_len() as f64 * (self.in_channels / self.groups.max(1) * self.kernel_h * self.kernel_w) as f64
    }
}

/// Derived sizes shared by the implementation paths.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Geom {
    pub p: Conv2dParams,
    pub oh: usize,
    pub ow: usize,
    /// Input channels per group.
    pub ig: usize,
    /// Output channels per group.
    pub og: usize,
}

impl Geom {
    /// Output pixels per image.
    pub fn pixels(&self) -> usize {
        self.oh * self.ow
    }
    /// GEMM depth per group (`ig·KH·KW`).
    pub fn depth(&self) -> usize {
        self.ig * self.p.kernel_h * self.p.kernel_w
    }
}

/// Bias, then the caller's epilogue, on a tile of one image's output matrix.
pub(crate) struct ConvEpilogue<'a> {
    pub bias: Option<&'a [f32]>,
    /// `true` when channels are the tile's rows (`NCHW`).
    pub channel_rows: bool,
    pub user: Option<&'a dyn Epilogue>,
}

impl ConvEpilogue<'_> {
    /// Whether applying it would do nothing.
    pub fn is_noop(&self) -> bool {
        self.bias.is_none() && self.user.is_none()
    }
}

impl Epilogue for ConvEpilogue<'_> {
    fn apply(&self, tile: &mut Tile<'_>) {
        if let Some(bias) = self.bias {
            let (c0, cols) = (tile.first_col(), tile.cols());
            let channel_rows = self.channel_rows;
            crate::gemm::mv::wide(|| {
                tile.for_each_row(|i, row| {
                    if channel_rows {
                        let b = bias[i];
                        row.iter_mut().for_each(|x| *x += b);
                    } else {
                        row.iter_mut().zip(&bias[c0..c0 + cols]).for_each(|(x, b)| *x += *b);
                    }
                });
            });
        }
        if let Some(user) = self.user {
            user.apply(tile);
        }
    }
}

/// Repacks `weight` (in `from` layout, any precision) into `f32` `[KH, KW, I/g, O]`
/// (`to == Hwio`) or `[O, I/g, KH, KW]` (`to == Oihw`).
///
/// # Errors
/// [`KernelError::Shape`] for invalid parameters, [`KernelError::BufferLength`]
/// if `weight` does not hold [`Conv2dParams::weight_len`] elements.
pub fn pack_weights(
    p: &Conv2dParams,
    weight: WeightRef<'_>,
    from: ConvWeightLayout,
    to: ConvWeightLayout,
) -> Result<Vec<f32>, KernelError> {
    p.output_hw()?;
    check_len("weight", p.weight_len(), weight.len())?;
    Ok(repack(p, weight, from, to))
}

fn repack(p: &Conv2dParams, w: WeightRef<'_>, from: ConvWeightLayout, to: ConvWeightLayout) -> Vec<f32> {
    let (o_n, i_n, kh_n, kw_n) = (p.out_channels, p.in_channels / p.groups, p.kernel_h, p.kernel_w);
    let mut out = vec![0.0f32; p.weight_len()];
    if from == to {
        w.convert_run(0, &mut out);
        return out;
    }
    for o in 0..o_n {
        for i in 0..i_n {
            for kh in 0..kh_n {
                for kw in 0..kw_n {
                    let oihw = ((o * i_n + i) * kh_n + kh) * kw_n + kw;
                    let hwio = ((kh * kw_n + kw) * i_n + i) * o_n + o;
                    let (src, dst) = if from == ConvWeightLayout::Oihw {
                        (oihw, hwio)
                    } else {
                        (hwio, oihw)
                    };
                    out[dst] = w.get(src);
                }
            }
        }
    }
    out
}

/// `f32` weights in layout `want`, borrowed when they already are.
fn weights_as<'a>(p: &Conv2dParams, w: WeightRef<'a>, have: ConvWeightLayout, want: ConvWeightLayout) -> Cow<'a, [f32]> {
    match w {
        WeightRef::F32(s) if have == want => Cow::Borrowed(s),
        _ => Cow::Owned(repack(p, w, have, want)),
    }
}

fn check_len(operand: &'static str, expected: usize, found: usize) -> Result<(), KernelError> {
    KernelError::check_len(KERNEL, operand, expected, found)
}

/// 2-D convolution: `output = conv(input, weight) + bias`, then `epilogue` on
/// each output block. `input`, `output` in `p.layout`; `weight` in
/// `weight_layout` (any precision; converted to `f32` inside); `bias` has
/// `out_channels` elements. The output is overwritten. Runs on rayon's current pool.
///
/// # Errors
/// [`KernelError::Shape`] for invalid parameters (see [`Conv2dParams::output_hw`]),
/// [`KernelError::BufferLength`] when a slice's length differs from what the
/// shape needs, or what the epilogue's [`Epilogue::check`] reports (given the
/// per-image output matrix: `batch = N`, `m × n` = `O × OH·OW` for `NCHW`,
/// `OH·OW × O` for `NHWC`, `k = I/groups·KH·KW`). Nothing is written on error.
pub fn conv2d(
    p: &Conv2dParams,
    input: &[f32],
    weight: WeightRef<'_>,
    weight_layout: ConvWeightLayout,
    bias: Option<&[f32]>,
    output: &mut [f32],
    epilogue: Option<&dyn Epilogue>,
) -> Result<(), KernelError> {
    let (oh, ow) = p.output_hw()?;
    check_len("input", p.input_len(), input.len())?;
    check_len("weight", p.weight_len(), weight.len())?;
    check_len("output", p.batch * p.out_channels * oh * ow, output.len())?;
    if let Some(b) = bias {
        check_len("bias", p.out_channels, b.len())?;
    }
    let g = Geom {
        p: *p,
        oh,
        ow,
        ig: p.in_channels / p.groups,
        og: p.out_channels / p.groups,
    };
    let nchw = p.layout == DataLayout::Nchw;
    let (m, n) = if nchw {
        (p.out_channels, g.pixels())
    } else {
        (g.pixels(), p.out_channels)
    };
    if let Some(e) = epilogue {
        e.check(&GemmDims {
            batch: p.batch,
            m,
            k: g.depth(),
            n,
        })?;
    }
    if output.is_empty() {
        return Ok(());
    }
    let epi = ConvEpilogue {
        bias,
        channel_rows: nchw,
        user: epilogue,
    };
    if transposed::applies(&g, &weight, crate::simd::Isa::detect()) && weight_layout == ConvWeightLayout::Oihw {
        return transposed::nchw(&g, input, weight, output, &epi);
    }
    let pointwise = p.kernel_h == 1 && p.kernel_w == 1 && p.stride_h == 1 && p.stride_w == 1 && p.pads == [0; 4] && p.groups == 1;
    if pointwise {
        return pointwise_conv(&g, input, weight, weight_layout, output, &epi);
    }
    if depthwise::applies(&g) {
        let w = weights_as(p, weight, weight_layout, ConvWeightLayout::Oihw);
        depthwise::nchw(&g, input, &w, output, &epi);
        return Ok(());
    }
    if p.groups > 1 && g.ig.min(g.og) < 16 {
        if nchw {
            let w = weights_as(p, weight, weight_layout, ConvWeightLayout::Oihw);
            direct::nchw(&g, input, &w, output, &epi);
        } else {
            let w = weights_as(p, weight, weight_layout, ConvWeightLayout::Hwio);
            direct::nhwc(&g, input, &w, output, &epi);
        }
        return Ok(());
    }
    if padded::applies(&g, crate::simd::Isa::detect()) {
        let w = weights_as(p, weight, weight_layout, ConvWeightLayout::Oihw);
        padded::nchw(&g, input, &w, output, &epi);
        return Ok(());
    }
    if nchw {
        let w = weights_as(p, weight, weight_layout, ConvWeightLayout::Oihw);
        im2col::nchw(&g, input, &w, output, &epi);
    } else {
        let w = weights_as(p, weight, weight_layout, ConvWeightLayout::Hwio);
        im2col::nhwc(&g, input, &w, output, &epi);
    }
    Ok(())
}

/// 1×1 stride-1 unpadded single-group convolution as one batched GEMM.
fn pointwise_conv(
    g: &Geom,
    input: &[f32],
    weight: WeightRef<'_>,
    wl: ConvWeightLayout,
    output: &mut [f32],
    epi: &ConvEpilogue<'_>,
) -> Result<(), KernelError> {
    let p = &g.p;
    let (i, o, hw) = (p.in_channels, p.out_channels, g.pixels());
    let e: Option<&dyn Epilogue> = if epi.is_noop() { None } else { Some(epi) };
    match p.layout {
        DataLayout::Nchw => {
            // Y_n[O, HW] = W[O, I] · X_n[I, HW]; weights are the (broadcast) A operand.
            let w = weights_as(p, weight, wl, ConvWeightLayout::Oihw);
            let dims = GemmDims {
                batch: p.batch,
                m: o,
                k: i,
                n: hw,
            };
            let a = MatLayout::row_major(o, i).broadcast();
            gemm(
                dims,
                &w,
                a,
                WeightRef::F32(input),
                MatLayout::row_major(i, hw),
                output,
                MatLayout::row_major(o, hw),
                e,
            )
        }
        DataLayout::Nhwc => {
            // Y_n[HW, O] = X_n[HW, I] · Wᵀ; weights stay in their storage precision.
            let dims = GemmDims {
                batch: p.batch,
                m: hw,
                k: i,
                n: o,
            };
            let b = match wl {
                ConvWeightLayout::Oihw => MatLayout::col_major(i, o),
                ConvWeightLayout::Hwio => MatLayout::row_major(i, o),
            };
            gemm(
                dims,
                input,
                MatLayout::row_major(hw, i),
                weight,
                b.broadcast(),
                output,
                MatLayout::row_major(hw, o),
                e,
            )
        }
    }
}
