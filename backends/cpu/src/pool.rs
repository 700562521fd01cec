//! 2-D pooling (max, average) and global pooling over `NCHW` or `NHWC`
//! activations. Parallel over channel planes (`NCHW`) or output rows (`NHWC`).
//!
//! Output size is `floor((in + pad_begin + pad_end - ((k-1)·dilation + 1)) / stride) + 1`
//! (no `ceil_mode`). Each pad must be smaller than the dilated kernel extent,
//! and parameters for which some window covers only padding are rejected.

use rayon::prelude::*;

use crate::KernelError;
use crate::conv::DataLayout;
use crate::gemm::mv::wide;
use crate::gemm::with_scratch;
use crate::phases::{Phases, PlaneGeometry, reduce_taps};
use crate::window::tap_index;

const KERNEL: &str = "pool2d";
/// Output elements per `NCHW` task: planes smaller than this are grouped.
const PLANES_PER_TASK_ELEMS: usize = 4096;

/// What a pooling window computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PoolKind {
    /// Maximum over the window (padding never wins).
    Max,
    /// Mean over the window.
    Avg {
        /// Divide by the full window size (`true`, padding counts as zeros)
        /// or by the number of input elements in the window (`false`).
        count_include_pad: bool,
    },
}

/// Shape and hyper-parameters of a 2-D pooling.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pool2dParams {
    /// Images.
    pub batch: usize,
    /// Channels.
    pub channels: usize,
    /// Input height.
    pub in_h: usize,
    /// Input width.
    pub in_w: usize,
    /// Window height.
    pub kernel_h: usize,
    /// Window width.
    pub kernel_w: usize,
    /// Vertical stride (≥ 1).
    pub stride_h: usize,
    /// Horizontal stride (≥ 1).
    pub stride_w: usize,
    /// Padding `[top, left, bottom, right]`, each smaller than the dilated kernel extent.
    pub pads: [usize; 4],
    /// Vertical dilation (≥ 1).
    pub dilation_h: usize,
    /// Horizontal dilation (≥ 1).
    pub dilation_w: usize,
    /// Layout of input and output.
    pub layout: DataLayout,
}

impl Pool2dParams {
    /// A `kernel_h × kernel_w` window with stride equal to the kernel, no padding, `NCHW`.
    pub fn new(batch: usize, channels: usize, in_h: usize, in_w: usize, kernel_h: usize, kernel_w: usize) -> Self {
        Pool2dParams {
            batch,
            channels,
            in_h,
            in_w,
            kernel_h,
            kernel_w,
            stride_h: kernel_h,
            stride_w: kernel_w,
            pads: [0; 4],
            dilation_h: 1,
            dilation_w: 1,
            layout: DataLayout::Nchw,
        }
    }
    /// With strides `(h, w)`.
    pub fn with_stride(self, h: usize, w: usize) -> Self {
        Pool2dParams {
            stride_h: h,
            stride_w: w,
            ..self
        }
    }
    /// With pads `[top, left, bottom, right]`.
    pub fn with_pads(self, pads: [usize; 4]) -> Self {
        Pool2dParams { pads, ..self }
    }
    /// With dilations `(h, w)`.
    pub fn with_dilation(self, h: usize, w: usize) -> Self {
        Pool2dParams {
            dilation_h: h,
            dilation_w: w,
            ..self
        }
    }
    /// With activation layout `layout`.
    pub fn with_layout(self, layout: DataLayout) -> Self {
        Pool2dParams { layout, ..self }
    }

    /// Checks the parameters and returns the output size `(out_h, out_w)`.
    ///
    /// # Errors
    /// [`KernelError::Shape`] for zero kernel/stride/dilation, a pad not smaller
    /// than the dilated kernel extent, a window larger than the padded input,
    /// or an element count that overflows.
    pub fn output_hw(&self) -> Result<(usize, usize), KernelError> {
        let bad = |what: String| Err(KernelError::Shape { kernel: KERNEL, what });
        if [
            self.kernel_h,
            self.kernel_w,
            self.stride_h,
            self.stride_w,
            self.dilation_h,
            self.dilation_w,
        ]
        .contains(&0)
        {
            return bad(format!("kernel, strides and dilations must be ≥ 1 ({self:?})"));
        }
        let ext_h = (self.kernel_h - 1).saturating_mul(self.dilation_h).saturating_add(1);
        let ext_w = (self.kernel_w - 1).saturating_mul(self.dilation_w).saturating_add(1);
        let [pt, pl, pb, pr] = self.pads;
        if pt >= ext_h || pb >= ext_h || pl >= ext_w || pr >= ext_w {
            return bad(format!(
                "pads {:?} must be smaller than the window extent {ext_h}×{ext_w}",
                self.pads
            ));
        }
        let (ph, pw) = (self.in_h + pt + pb, self.in_w + pl + pr);
        if ph < ext_h || pw < ext_w {
            return bad(format!("window {ext_h}×{ext_w} larger than the padded input {ph}×{pw}"));
        }
        let (oh, ow) = ((ph - ext_h) / self.stride_h + 1, (pw - ext_w) / self.stride_w + 1);
        // With dilation a window can still fall entirely into the padding.
        let empty_h = (0..oh).any(|o| taps(o, self.stride_h, pt, self.kernel_h, self.dilation_h, self.in_h) == 0);
        let empty_w = (0..ow).any(|o| taps(o, self.stride_w, pl, self.kernel_w, self.dilation_w, self.in_w) == 0);
        if empty_h || empty_w {
            return bad(format!("some window covers only padding ({self:?})"));
        }
        let fits = |d: [usize; 4]| d.iter().try_fold(1usize, |a, &x| a.checked_mul(x)).is_some();
        if !fits([self.batch, self.channels, self.in_h, self.in_w]) || !fits([self.batch, self.channels, oh, ow]) {
            return bad("element count overflows".to_string());
        }
        Ok((oh, ow))
    }
}

fn check_len(operand: &'static str, expected: usize, found: usize) -> Result<(), KernelError> {
    KernelError::check_len(KERNEL, operand, expected, found)
}

/// Number of kernel taps along one axis that land inside the input for output position `o`.
fn taps(o: usize, stride: usize, pad: usize, k: usize, dil: usize, len: usize) -> usize {
    (0..k).filter(|&t| tap_index(o, t, stride, dil, pad, len).is_some()).count()
}

/// 2-D pooling of `input` into `output` (both in `p.layout`; output overwritten).
///
/// # Errors
/// [`KernelError::Shape`] for invalid parameters (see [`Pool2dParams::output_hw`]),
/// [`KernelError::BufferLength`] when a slice's length differs from the shape's.
pub fn pool2d(p: &Pool2dParams, kind: PoolKind, input: &[f32], output: &mut [f32]) -> Result<(), KernelError> {
    let (oh, ow) = p.output_hw()?;
    check_len("input", p.batch * p.channels * p.in_h * p.in_w, input.len())?;
    check_len("output", p.batch * p.channels * oh * ow, output.len())?;
    if output.is_empty() {
        return Ok(());
    }
    let whole_plane = (p.kernel_h, p.kernel_w) == (p.in_h, p.in_w) && p.pads == [0; 4];
    if whole_plane {
        // One window covering each unpadded plane (a 7×7 average at the end of
        // Inception): the global pooling's single pass over each plane.
        return global_pool(kind, p.layout, p.batch, p.channels, p.in_h * p.in_w, input, output);
    }
    let is_max = kind == PoolKind::Max;
    let init = if is_max { f32::NEG_INFINITY } else { 0.0 };
    // Divisor per output position (separable: rows × columns).
    let (div_h, div_w): (Vec<f32>, Vec<f32>) = match kind {
        PoolKind::Avg { count_include_pad: false } => (
            (0..oh)
                .map(|o| taps(o, p.stride_h, p.pads[0], p.kernel_h, p.dilation_h, p.in_h) as f32)
                .collect(),
            (0..ow)
                .map(|o| taps(o, p.stride_w, p.pads[1], p.kernel_w, p.dilation_w, p.in_w) as f32)
                .collect(),
        ),
        _ => (vec![p.kernel_h as f32; oh], vec![p.kernel_w as f32; ow]),
    };
    let combine = |acc: &mut f32, x: f32| {
        if is_max { *acc = acc.max(x) } else { *acc += x }
    };
    match p.layout {
        DataLayout::Nchw => {
            // Each plane in stride phases (see `crate::phases`): every tap is one
            // contiguous run over the whole output plane at the phases' row pitch.
            let geometry = PlaneGeometry {
                h: p.in_h,
                w: p.in_w,
                pads: p.pads,
                stride_h: p.stride_h,
                stride_w: p.stride_w,
                oh,
            };
            let phases = Phases::new(&geometry);
            let starts = phases.tap_starts([p.kernel_h, p.kernel_w], [p.dilation_h, p.dilation_w]);
            let (plane_in, plane_out) = (p.in_h * p.in_w, oh * ow);
            // Reciprocal of each output's divisor (average only), multiplied in.
            let inv: Vec<f32> = if is_max {
                Vec::new()
            } else {
                div_h.iter().flat_map(|&dh| div_w.iter().map(move |&dw| 1.0 / (dh * dw))).collect()
            };
            // Planes per task: small planes are grouped so the per-plane set-up
            // (scratch, dispatch) is not paid 1024 times for 7×7 planes.
            let group = PLANES_PER_TASK_ELEMS.div_ceil(plane_out).clamp(1, p.batch * p.channels);
            let body = |t: usize, outs: &mut [f32]| {
                with_scratch(phases.len() + phases.out_len(), |scratch| {
                    let (buf, acc) = scratch.split_at_mut(phases.len());
                    wide(|| {
                        for (q, out) in outs.chunks_exact_mut(plane_out).enumerate() {
                            let x = &input[(t * group + q) * plane_in..][..plane_in];
                            phases.fill(&geometry, x, init, buf);
                            reduce_taps(buf, &starts, is_max, acc);
                            let rows = out.chunks_exact_mut(ow).zip(acc.chunks_exact(phases.wp));
                            if is_max {
                                rows.for_each(|(orow, arow)| orow.copy_from_slice(&arow[..ow]));
                            } else {
                                for ((orow, arow), irow) in rows.zip(inv.chunks_exact(ow)) {
                                    for ((o, &a), &i) in orow.iter_mut().zip(arow).zip(irow) {
                                        *o = a * i;
                                    }
                                }
                            }
                        }
                    });
                });
            };
            par_chunks(output, group * plane_out, body);
        }
        DataLayout::Nhwc => {
            let c = p.channels;
            let body = |t: usize, out: &mut [f32]| {
                let (n, r) = (t / oh, t % oh);
                out.fill(init);
                wide(|| {
                    for (col, opix) in out.chunks_exact_mut(c).enumerate() {
                        for kh in 0..p.kernel_h {
                            let Some(ih) = tap_index(r, kh, p.stride_h, p.dilation_h, p.pads[0], p.in_h) else {
                                continue;
                            };
                            for kw in 0..p.kernel_w {
                                let Some(iw) = tap_index(col, kw, p.stride_w, p.dilation_w, p.pads[1], p.in_w) else {
                                    continue;
                                };
                                let xpix = &input[((n * p.in_h + ih) * p.in_w + iw) * c..][..c];
                                opix.iter_mut().zip(xpix).for_each(|(a, &v)| combine(a, v));
                            }
                        }
                        if !is_max {
                            let d = div_h[r] * div_w[col];
                            opix.iter_mut().for_each(|a| *a /= d);
                        }
                    }
                });
            };
            par_chunks(output, ow * c, body);
        }
    }
    Ok(())
}

fn par_chunks(out: &mut [f32], chunk: usize, f: impl Fn(usize, &mut [f32]) + Sync + Send) {
    if rayon::current_num_threads() <= 1 {
        out.chunks_mut(chunk).enumerate().for_each(|(t, c)| f(t, c));
    } else {
        out.par_chunks_mut(chunk).enumerate().for_each(|(t, c)| f(t, c));
    }
}

/// Global pooling: `output[n, c]` is the max or mean of `input[n, c, :]` over
/// `spatial` positions (`input` is `[N, C, spatial]` for `NCHW`, `[N, spatial, C]`
/// for `NHWC`; `output` is `[N, C]`, i.e. `[N, C, 1, 1]` or `[N, 1, 1, C]`).
/// [`PoolKind::Avg`] ignores `count_include_pad` (there is no padding).
///
/// # Errors
/// [`KernelError::BufferLength`] when a slice's length differs from the shape's,
/// [`KernelError::Shape`] if `spatial == 0` or the element count overflows.
pub fn global_pool(
    kind: PoolKind,
    layout: DataLayout,
    batch: usize,
    channels: usize,
    spatial: usize,
    input: &[f32],
    output: &mut [f32],
) -> Result<(), KernelError> {
    const K: &str = "global_pool";
    let Some(len) = batch.checked_mul(channels).and_then(|x| x.checked_mul(spatial)) else {
        return Err(KernelError::Shape {
            kernel: K,
            what: format!("{batch}×{channels}×{spatial} overflows"),
        });
    };
    if spatial == 0 {
        return Err(KernelError::Shape {
            kernel: K,
            what: "no spatial positions to pool".to_string(),
        });
    }
    if input.len() != len {
        return Err(KernelError::BufferLength {
            kernel: K,
            operand: "input",
            expected: len,
            found: input.len(),
        });
    }
    if output.len() != batch * channels {
        return Err(KernelError::BufferLength {
            kernel: K,
            operand: "output",
            expected: batch * channels,
            found: output.len(),
        });
    }
    let is_max = kind == PoolKind::Max;
    let scale = 1.0 / spatial as f32;
    match layout {
        DataLayout::Nchw => {
            let reduce = |plane: &[f32]| -> f32 {
                wide(|| {
                    if is_max {
                        let mut acc = [f32::NEG_INFINITY; 16];
                        let mut ch = plane.chunks_exact(16);
                        for c in &mut ch {
                            for l in 0..16 {
                                acc[l] = acc[l].max(c[l]);
                            }
                        }
                        ch.remainder().iter().chain(&acc).fold(f32::NEG_INFINITY, |a, &b| a.max(b))
                    } else {
                        let mut acc = [0.0f32; 16];
                        let mut ch = plane.chunks_exact(16);
                        for c in &mut ch {
                            for l in 0..16 {
                                acc[l] += c[l];
                            }
                        }
                        (ch.remainder().iter().sum::<f32>() + acc.iter().sum::<f32>()) * scale
                    }
                })
            };
            if rayon::current_num_threads() <= 1 {
                output.iter_mut().zip(input.chunks_exact(spatial)).for_each(|(o, x)| *o = reduce(x));
            } else {
                output
                    .par_iter_mut()
                    .zip(input.par_chunks_exact(spatial))
                    .for_each(|(o, x)| *o = reduce(x));
            }
        }
        DataLayout::Nhwc => {
            let body = |n: usize, out: &mut [f32]| {
                out.fill(if is_max { f32::NEG_INFINITY } else { 0.0 });
                wide(|| {
                    for px in input[n * spatial * channels..][..spatial * channels].chunks_exact(channels) {
                        if is_max {
                            out.iter_mut().zip(px).for_each(|(a, &v)| *a = a.max(v));
                        } else {
                            out.iter_mut().zip(px).for_each(|(a, &v)| *a += v);
                        }
                    }
                    if !is_max {
                        out.iter_mut().for_each(|a| *a *= scale);
                    }
                });
            };
            if channels > 0 {
                par_chunks(output, channels, body);
            }
        }
    }
    Ok(())
}
