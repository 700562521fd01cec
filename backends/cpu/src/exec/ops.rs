//! One kernel of a program, run with this crate's kernels.

use super::Mem;
use super::epilogue::TileEpilogue;
use crate::KernelError;
use crate::attention::{self, AttentionShape, MatView, ScoreScale};
use crate::conv::{Conv2dParams, ConvWeightLayout, DataLayout};
use crate::elementwise::{self, EwInput, EwProgram};
use crate::gemm::{self, GemmDims, MatLayout, WeightRef};
use crate::{layout, pool, reduce};
use eqopt_kir::{Epilogue, GemmCompute, Kernel, View, dense_strides};
use rayon::prelude::*;
use std::borrow::Cow;

const K: &str = "exec";

fn shape_err(what: String) -> KernelError {
    KernelError::Shape { kernel: K, what }
}

/// The elements of `view` (f32), dense row-major: borrowed when already dense.
fn dense<'a>(mem: &'a Mem, view: &View) -> Result<Cow<'a, [f32]>, KernelError> {
    let data = mem.f32(view.buffer);
    let n = view.numel();
    if view.is_dense() {
        return data
            .get(view.offset..view.offset + n)
            .map(Cow::Borrowed)
            .ok_or_else(|| shape_err(format!("a view of {} reaches past its end", mem.name(view.buffer))));
    }
    let mut out = vec![0f32; n];
    layout::strided_copy(data, view.offset, &view.shape, &view.strides, &mut out)?;
    Ok(Cow::Owned(out))
}

/// Convolution weights, dense, in their stored precision.
enum DenseWeight<'a> {
    /// Borrowed as stored (dense `f32`, `f16` or `bf16`).
    Stored(WeightRef<'a>),
    /// A strided view gathered into a dense `f32` copy.
    Copied(Vec<f32>),
}

impl DenseWeight<'_> {
    fn as_ref(&self) -> WeightRef<'_> {
        match self {
            DenseWeight::Stored(w) => *w,
            DenseWeight::Copied(v) => WeightRef::F32(v),
        }
    }
}

/// The elements of the weight `view` dense row-major, borrowed in their stored
/// precision when the view is dense, else converted to a dense `f32` copy.
fn dense_weight<'a>(mem: &'a Mem, view: &View) -> Result<DenseWeight<'a>, KernelError> {
    let w = mem.weight(view.buffer);
    if let WeightRef::F32(_) = w {
        return Ok(match dense(mem, view)? {
            Cow::Borrowed(s) => DenseWeight::Stored(WeightRef::F32(s)),
            Cow::Owned(v) => DenseWeight::Copied(v),
        });
    }
    let n = view.numel();
    let past_end = || shape_err(format!("a view of {} reaches past its end", mem.name(view.buffer)));
    if view.is_dense() {
        let end = view.offset + n;
        if end > w.len() {
            return Err(past_end());
        }
        match w {
            WeightRef::F16(s) => return Ok(DenseWeight::Stored(WeightRef::F16(&s[view.offset..end]))),
            WeightRef::BF16(s) => return Ok(DenseWeight::Stored(WeightRef::BF16(&s[view.offset..end]))),
            WeightRef::F32(s) => return Ok(DenseWeight::Stored(WeightRef::F32(&s[view.offset..end]))),
            // A quantized matrix cannot be sliced; the whole of it is kept as stored.
            WeightRef::Int8(_) | WeightRef::Int4(_) if view.offset == 0 && end == w.len() => {
                return Ok(DenseWeight::Stored(w));
            }
            WeightRef::Int8(_) | WeightRef::Int4(_) => {}
        }
    }
    // A strided low-precision view, or part of a quantized matrix (the lowering
    // makes neither today).
    let mut idx = vec![0usize; view.shape.len()];
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let at: isize = view.offset as isize + idx.iter().zip(&view.strides).map(|(&i, &s)| i as isize * s).sum::<isize>();
        if at < 0 || at as usize >= w.len() {
            return Err(past_end());
        }
        out.push(w.get(at as usize));
        for a in (0..idx.len()).rev() {
            idx[a] += 1;
            if idx[a] < view.shape[a] {
                break;
            }
            idx[a] = 0;
        }
    }
    Ok(DenseWeight::Copied(out))
}

fn ew_input<'a>(mem: &'a Mem, view: &View) -> EwInput<'a> {
    EwInput::strided(mem.f32(view.buffer), view.offset, view.strides.clone())
}

/// The dense output region of `view` in its buffer.
#[allow(clippy::mut_from_ref)]
fn out_slice<'a>(mem: &'a Mem, view: &View) -> Result<&'a mut [f32], KernelError> {
    let n = view.numel();
    let name = mem.name(view.buffer).to_string();
    mem.f32_mut(view.buffer)
        .get_mut(view.offset..view.offset + n)
        .ok_or_else(|| shape_err(format!("the output view of {name} reaches past its end")))
}

/// Applies `epilogue` (operand 0: the values already in `out`) in place over the
/// dense output `view`, block by block: each block of the accumulator is copied to
/// scratch and the expression written back over it.
fn apply_epilogue(mem: &Mem, prog: &EwProgram, epilogue: &Epilogue, out: &View) -> Result<(), KernelError> {
    let operands: Vec<Option<&View>> = std::iter::once(None).chain(epilogue.extras.iter().map(Some)).collect();
    blockwise_over_output(mem, prog, &operands, out)
}

/// True when `v` reads memory the output view `out` writes: within one buffer,
/// overlapping extents; across buffers, storage the memory plan shares (an
/// in-place pair).
fn aliases(mem: &Mem, v: &View, out: &View) -> bool {
    if v.buffer == out.buffer {
        return match (v.extent(), out.extent()) {
            (Some((a, b)), Some((c, d))) => a <= d && c <= b,
            _ => false,
        };
    }
    mem.overlaps(v.buffer, out.buffer, out.offset..out.offset + out.numel())
}

/// An elementwise kernel whose memory plan put its output over one of its
/// inputs (the input's last use): every operand view on that region must be the
/// output's own dense region; they read a copy of each output block.
fn run_in_place(mem: &Mem, prog: &EwProgram, inputs: &[View], out: &View) -> Result<(), KernelError> {
    let operands: Vec<Option<&View>> = inputs
        .iter()
        .map(|v| {
            if !aliases(mem, v, out) {
                Ok(Some(v))
            } else if mem.same_address(v.buffer, v.offset, out.buffer, out.offset) && v.shape == out.shape && v.is_dense() {
                Ok(None)
            } else {
                Err(shape_err(format!(
                    "an operand of {} overlaps the output without being its region",
                    mem.name(v.buffer)
                )))
            }
        })
        .collect::<Result<_, _>>()?;
    blockwise_over_output(mem, prog, &operands, out)
}

/// Evaluates `prog` over the dense output `view` block by block; operand `k` is
/// `operands[k]`, or for `None` the block's current values (copied to scratch
/// before the block is overwritten).
///
/// A block is a run of about [`BLOCK`](blockwise_over_output) elements: the
/// trailing dims that fit whole (`inner`), times a range of the dim before
/// them, so a `[1, 1024, 7, 7]` output is 4 blocks of `[≤ 334, 7, 7]`, not 1024
/// blocks of 49 elements, each paying the evaluator's setup.
fn blockwise_over_output(mem: &Mem, prog: &EwProgram, operands: &[Option<&View>], out: &View) -> Result<(), KernelError> {
    const BLOCK: usize = 16 * 1024;
    let shape = &out.shape;
    // Inner dims (the last one always) of at most BLOCK elements where the shape allows.
    let (mut split, mut inner) = match shape.last() {
        Some(&d) => (shape.len() - 1, d),
        None => (0, 1),
    };
    while split > 0 && inner * shape[split - 1] <= BLOCK {
        inner *= shape[split - 1];
        split -= 1;
    }
    // Dim `split - 1` (if any) is cut into ranges of `per` indices.
    let cut_len = split.checked_sub(1).map_or(1, |d| shape[d]);
    let per = (BLOCK / inner.max(1)).clamp(1, cut_len.max(1));
    let ranges = cut_len.div_ceil(per);
    let outer_shape = shape[..split.saturating_sub(1)].to_vec();
    let outer: usize = outer_shape.iter().product();
    let outer_strides = dense_strides(&outer_shape);
    let out_all = out_slice(mem, out)?;
    if out_all.is_empty() {
        return Ok(());
    }
    let blocks = outer.max(1) * ranges;
    let run = |b: usize, block: &mut [f32]| -> Result<(), KernelError> {
        let (o, r) = (b / ranges, b % ranges);
        let (j0, len) = (r * per, per.min(cut_len - r * per));
        let mut coords: Vec<usize> = outer_strides
            .iter()
            .zip(&outer_shape)
            .map(|(&s, &d)| (o / s as usize) % d.max(1))
            .collect();
        let mut block_shape = shape[split..].to_vec();
        if split > 0 {
            coords.push(j0);
            block_shape.insert(0, len);
        }
        let acc = block.to_vec();
        let inputs: Vec<EwInput<'_>> = operands
            .iter()
            .map(|v| match v {
                None => EwInput::strided(&acc, 0, dense_strides(&block_shape)),
                Some(v) => {
                    let base: isize = coords.iter().zip(&v.strides).map(|(&c, &s)| c as isize * s).sum();
                    // The block's dims: `cut` and the inner ones (all dims when split is 0).
                    EwInput::strided(
                        mem.f32(v.buffer),
                        (v.offset as isize + base) as usize,
                        v.strides[split.saturating_sub(1)..].to_vec(),
                    )
                }
            })
            .collect();
        elementwise::eval(prog, &inputs, block, &block_shape)
    };
    // Blocks are consecutive in the dense output: block b starts at
    // (o·cut_len + j0)·inner.
    let mut pieces: Vec<(usize, &mut [f32])> = Vec::with_capacity(blocks);
    let mut rest = out_all;
    for b in 0..blocks {
        let r = b % ranges;
        let len = (per.min(cut_len - r * per) * inner).min(rest.len());
        let (head, tail) = std::mem::take(&mut rest).split_at_mut(len);
        pieces.push((b, head));
        rest = tail;
    }
    if rayon::current_num_threads() <= 1 || pieces.len() == 1 {
        pieces.into_iter().try_for_each(|(b, blk)| run(b, blk))
    } else {
        pieces.into_par_iter().try_for_each(|(b, blk)| run(b, blk))
    }
}

/// Runs one kernel.
pub(super) fn run_kernel(kernel: &Kernel, expr: Option<&EwProgram>, mem: &Mem) -> Result<(), KernelError> {
    match kernel {
        Kernel::Elementwise { inputs, out, .. } => {
            let prog = expr.ok_or_else(|| shape_err("elementwise kernel without a program".into()))?;
            if inputs.iter().any(|v| aliases(mem, v, out)) {
                return run_in_place(mem, prog, inputs, out);
            }
            let ins: Vec<EwInput<'_>> = inputs.iter().map(|v| ew_input(mem, v)).collect();
            elementwise::eval(prog, &ins, out_slice(mem, out)?, &out.shape)
        }
        Kernel::Gemm {
            a,
            b,
            out,
            epilogue,
            compute,
        } => {
            let fused = run_gemm(mem, a, b, out, epilogue.as_ref().zip(expr), *compute)?;
            match (epilogue, expr) {
                (Some(e), Some(p)) if !fused => apply_epilogue(mem, p, e, out),
                _ => Ok(()),
            }
        }
        Kernel::Conv {
            x,
            w,
            bias,
            out,
            geometry: g,
            epilogue,
        } => {
            let xs = dense(mem, x)?;
            let ws = dense_weight(mem, w)?;
            let bs = bias.as_ref().map(|b| dense(mem, b)).transpose()?;
            let (n, c, h, wd) = if g.nhwc {
                (x.shape[0], x.shape[3], x.shape[1], x.shape[2])
            } else {
                (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
            };
            let (o, kh, kw) = if g.nhwc {
                (w.shape[3], w.shape[0], w.shape[1])
            } else {
                (w.shape[0], w.shape[2], w.shape[3])
            };
            let p = Conv2dParams::new(n, c, h, wd, o, kh, kw)
                .with_stride(g.strides[0], g.strides[1])
                .with_pads(g.pads)
                .with_dilation(g.dilations[0], g.dilations[1])
                .with_groups(g.group)
                .with_layout(if g.nhwc { DataLayout::Nhwc } else { DataLayout::Nchw });
            let wl = if g.nhwc { ConvWeightLayout::Hwio } else { ConvWeightLayout::Oihw };
            // The epilogue runs on each output tile inside the convolution when its
            // operands flatten to the (image, row, column) matrix; else after it.
            let axes = if g.nhwc { [0..1, 1..3, 3..4] } else { [0..1, 1..2, 2..4] };
            let fused = match (epilogue, expr) {
                (Some(e), Some(pr)) => TileEpilogue::new(mem, pr, &e.extras, &out.shape, axes, &[]),
                _ => None,
            };
            let user = fused.as_ref().map(|f| f as &dyn gemm::Epilogue);
            crate::conv::conv2d(&p, &xs, ws.as_ref(), wl, bs.as_deref(), out_slice(mem, out)?, user)?;
            match (epilogue, expr, &fused) {
                (Some(e), Some(pr), None) => apply_epilogue(mem, pr, e, out),
                _ => Ok(()),
            }
        }
        Kernel::Pool {
            kind,
            kernel,
            strides,
            pads,
            nhwc,
            x,
            out,
        } => {
            let xs = dense(mem, x)?;
            let (n, c, h, w) = if *nhwc {
                (x.shape[0], x.shape[3], x.shape[1], x.shape[2])
            } else {
                (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
            };
            let p = pool::Pool2dParams::new(n, c, h, w, kernel[0], kernel[1])
                .with_stride(strides[0], strides[1])
                .with_pads(*pads)
                .with_layout(if *nhwc { DataLayout::Nhwc } else { DataLayout::Nchw });
            let kind = match kind {
                eqopt_kir::PoolKind::Max => pool::PoolKind::Max,
                eqopt_kir::PoolKind::AvgExcludePad => pool::PoolKind::Avg { count_include_pad: false },
                eqopt_kir::PoolKind::AvgIncludePad => pool::PoolKind::Avg { count_include_pad: true },
            };
            pool::pool2d(&p, kind, &xs, out_slice(mem, out)?)
        }
        Kernel::Softmax { x, out } => {
            let xs = dense(mem, x)?;
            let n = *x.shape.last().unwrap_or(&1);
            reduce::softmax(&xs, out_slice(mem, out)?, x.numel() / n.max(1), n)
        }
        Kernel::LayerNorm {
            x,
            scale,
            bias,
            axis,
            epsilon,
            out,
        } => {
            let xs = dense(mem, x)?;
            let (sc, bi) = (dense(mem, scale)?, dense(mem, bias)?);
            let n: usize = x.shape[*axis..].iter().product();
            reduce::layer_norm(&xs, Some(&sc), Some(&bi), out_slice(mem, out)?, x.numel() / n.max(1), n, *epsilon)
        }
        Kernel::Reduce { kind, axes, x, out } => run_reduce(mem, *kind, axes, x, out),
        Kernel::Attention {
            q,
            kt,
            v,
            out,
            mask,
            scale,
            divide,
        } => run_attention(mem, q, kt, v, out, mask.as_ref(), scale, *divide),
        Kernel::Gather { data, indices, axis, out } => {
            let ds = dense(mem, data)?;
            let idx: Cow<'_, [i64]> = if mem.is_i64(indices.buffer) {
                let raw = mem.i64(indices.buffer);
                let mut v = vec![0i64; indices.numel()];
                layout::strided_copy(raw, indices.offset, &indices.shape, &indices.strides, &mut v)?;
                Cow::Owned(v)
            } else {
                let f = dense(mem, indices)?;
                Cow::Owned(f.iter().map(|&x| x as i64).collect())
            };
            layout::gather(&ds, &data.shape, *axis, &idx, out_slice(mem, out)?)
        }
        Kernel::Copy { src, dst } => run_copy(mem, src, dst),
    }
}

/// Runs a GEMM kernel, with its epilogue inside the GEMM's tiles when the
/// epilogue's operands allow (see [`TileEpilogue`]); returns whether it did.
/// A GEMM kernel; with [`GemmCompute::Bf16`] it runs [`gemm::gemm_bf16`], which
/// needs `b` to be a `bf16` buffer (a [`KernelError`] otherwise). Returns
/// whether the epilogue was fused into the product.
fn run_gemm(
    mem: &Mem,
    a: &View,
    b: &View,
    out: &View,
    epilogue: Option<(&Epilogue, &EwProgram)>,
    compute: GemmCompute,
) -> Result<bool, KernelError> {
    let r = out.shape.len();
    if r < 2 || a.shape.len() != r || b.shape.len() != r {
        return Err(shape_err(format!(
            "gemm views of ranks {}, {}, {}",
            a.shape.len(),
            b.shape.len(),
            r
        )));
    }
    let (m, k, n) = (a.shape[r - 2], a.shape[r - 1], b.shape[r - 1]);
    if a.strides.iter().chain(&b.strides).any(|&s| s < 0) {
        return Err(shape_err("gemm operands with negative strides".into()));
    }
    let batch_dims = &out.shape[..r - 2];
    let (outer_dims, last) = match batch_dims.split_last() {
        Some((&last, rest)) => (rest.to_vec(), last),
        None => (vec![], 1),
    };
    let outer: usize = outer_dims.iter().product();
    let outer_strides = dense_strides(&outer_dims);
    let bstride = |v: &View| if r > 2 { v.strides[r - 3] as usize } else { 0 };
    let c_all = out_slice(mem, out)?;
    let per_outer = last * m * n;
    let (ad, bd) = (mem.f32(a.buffer), mem.weight(b.buffer));
    let coords_of = |o: usize| -> Vec<usize> {
        outer_strides
            .iter()
            .zip(&outer_dims)
            .map(|(&s, &d)| (o / s as usize) % d.max(1))
            .collect()
    };
    // One tile epilogue per outer batch index, or none at all (two-pass path).
    let axes = [r.saturating_sub(3)..r - 2, r - 2..r - 1, r - 1..r];
    let tile_epilogues: Option<Vec<TileEpilogue<'_>>> = epilogue.and_then(|(e, p)| {
        (0..outer.max(1))
            .map(|o| TileEpilogue::new(mem, p, &e.extras, &out.shape, axes.clone(), &coords_of(o)))
            .collect()
    });
    for o in 0..outer.max(1) {
        let coords = coords_of(o);
        let off = |v: &View| -> usize { v.offset + coords.iter().zip(&v.strides).map(|(&c, &s)| c * s as usize).sum::<usize>() };
        let al = MatLayout {
            offset: off(a),
            row_stride: a.strides[r - 2] as usize,
            col_stride: a.strides[r - 1] as usize,
            batch_stride: bstride(a),
        };
        let bl = MatLayout {
            offset: off(b),
            row_stride: b.strides[r - 2] as usize,
            col_stride: b.strides[r - 1] as usize,
            batch_stride: bstride(b),
        };
        let cl = MatLayout {
            offset: 0,
            row_stride: n,
            col_stride: 1,
            batch_stride: m * n,
        };
        let c = &mut c_all[o * per_outer..(o + 1) * per_outer];
        let user = tile_epilogues.as_ref().map(|t| &t[o] as &dyn gemm::Epilogue);
        let dims = GemmDims { batch: last, m, k, n };
        match (compute, bd) {
            (GemmCompute::F32, _) => gemm::gemm(dims, ad, al, bd, bl, c, cl, user)?,
            (GemmCompute::Bf16, WeightRef::BF16(bd)) => gemm::gemm_bf16(dims, ad, al, bd, bl, c, cl, user)?,
            (GemmCompute::Bf16, _) => {
                return Err(shape_err(format!(
                    "gemm computing in bf16 needs a bf16 b operand (buffer {})",
                    b.buffer
                )));
            }
        }
    }
    Ok(tile_epilogues.is_some())
}

fn run_reduce(mem: &Mem, kind: eqopt_kir::ReduceKind, axes: &[usize], x: &View, out: &View) -> Result<(), KernelError> {
    let op = match kind {
        eqopt_kir::ReduceKind::Sum => reduce::ReduceOp::Sum,
        eqopt_kir::ReduceKind::Mean => reduce::ReduceOp::Mean,
        eqopt_kir::ReduceKind::Max => reduce::ReduceOp::Max,
    };
    let contiguous = axes.windows(2).all(|w| w[1] == w[0] + 1);
    if contiguous && !axes.is_empty() {
        let xs = dense(mem, x)?;
        let (a0, a1) = (axes[0], axes[axes.len() - 1]);
        let outer: usize = x.shape[..a0].iter().product();
        let n: usize = x.shape[a0..=a1].iter().product();
        let inner: usize = x.shape[a1 + 1..].iter().product();
        return reduce::reduce(op, &xs, out_slice(mem, out)?, outer, n, inner);
    }
    // Reduced axes moved last (kept axes keep their order), then one reduction.
    let mut perm: Vec<usize> = (0..x.shape.len()).filter(|a| !axes.contains(a)).collect();
    perm.extend(axes);
    let moved = View {
        buffer: x.buffer,
        offset: x.offset,
        shape: perm.iter().map(|&p| x.shape[p]).collect(),
        strides: perm.iter().map(|&p| x.strides[p]).collect(),
    };
    let xs = dense(mem, &moved)?;
    let n: usize = axes.iter().map(|&a| x.shape[a]).product();
    reduce::reduce(op, &xs, out_slice(mem, out)?, x.numel() / n.max(1), n, 1)
}

fn mat_view<'a>(mem: &'a Mem, v: &View) -> Result<MatView<'a>, KernelError> {
    let r = v.shape.len();
    if r < 2 {
        return Err(shape_err(format!("attention operand of rank {r}")));
    }
    Ok(MatView {
        data: mem.f32(v.buffer),
        offset: v.offset,
        batch_strides: v.strides[..r - 2].to_vec(),
        row_stride: v.strides[r - 2],
        col_stride: v.strides[r - 1],
    })
}

#[allow(clippy::too_many_arguments)]
fn run_attention(
    mem: &Mem,
    q: &View,
    kt: &View,
    v: &View,
    out: &View,
    mask: Option<&View>,
    scale: &View,
    divide: bool,
) -> Result<(), KernelError> {
    let r = q.shape.len();
    let s = *dense(mem, scale)?
        .first()
        .ok_or_else(|| shape_err("an empty attention scale".into()))?;
    let shape = AttentionShape {
        batch: q.shape[..r - 2].to_vec(),
        queries: q.shape[r - 2],
        keys: kt.shape[r - 1],
        head_dim: q.shape[r - 1],
        value_dim: v.shape[r - 1],
    };
    let scale = if divide { ScoreScale::Div(s) } else { ScoreScale::Mul(s) };
    let (qv, kv, vv) = (mat_view(mem, q)?, mat_view(mem, kt)?, mat_view(mem, v)?);
    let mv = mask.map(|m| mat_view(mem, m)).transpose()?;
    if out.is_dense() {
        return attention::attention(&shape, &qv, &kv, &vv, mv.as_ref(), scale, out_slice(mem, out)?);
    }
    // A heads-interleaved output: computed dense, then scattered through its strides.
    let mut tmp = vec![0f32; out.numel()];
    attention::attention(&shape, &qv, &kv, &vv, mv.as_ref(), scale, &mut tmp)?;
    let src = View::dense(usize::MAX, &out.shape);
    scatter(&tmp, &src, mem.f32_mut(out.buffer), out)
}

/// Copies `src` (a view of `data`) into the region `dst` of `target`, in
/// row-major order of the shape, one innermost row at a time (a slice copy when
/// both rows are contiguous).
fn scatter(data: &[f32], src: &View, target: &mut [f32], dst: &View) -> Result<(), KernelError> {
    let n = dst.numel();
    if n == 0 {
        return Ok(());
    }
    let inside = |v: &View, len: usize| matches!(v.extent(), Some((lo, hi)) if lo >= 0 && (hi as usize) < len);
    if !inside(dst, target.len()) {
        return Err(shape_err("a copy destination reaches outside its buffer".into()));
    }
    if !inside(src, data.len()) {
        return Err(shape_err("a copy source reaches outside its buffer".into()));
    }
    let shape = &dst.shape;
    let r = shape.len();
    let (inner, ss, ds) = match r {
        0 => (1, 0, 0),
        _ => (shape[r - 1], src.strides[r - 1], dst.strides[r - 1]),
    };
    let outer_dims = &shape[..r.saturating_sub(1)];
    let mut idx = vec![0usize; outer_dims.len()];
    for _ in 0..n / inner.max(1) {
        // In bounds: both extents were checked above.
        let so = idx.iter().zip(&src.strides).map(|(&i, &s)| i as isize * s).sum::<isize>() + src.offset as isize;
        let d = idx.iter().zip(&dst.strides).map(|(&i, &s)| i as isize * s).sum::<isize>() + dst.offset as isize;
        if ss == 1 && ds == 1 {
            let (so, d) = (so as usize, d as usize);
            target[d..d + inner].copy_from_slice(&data[so..so + inner]);
        } else {
            for j in 0..inner as isize {
                target[(d + j * ds) as usize] = data[(so + j * ss) as usize];
            }
        }
        for a in (0..outer_dims.len()).rev() {
            idx[a] += 1;
            if idx[a] < outer_dims[a] {
                break;
            }
            idx[a] = 0;
        }
    }
    Ok(())
}

fn run_copy(mem: &Mem, src: &View, dst: &View) -> Result<(), KernelError> {
    if mem.is_i64(src.buffer) {
        // Integers to f32 (a cast).
        let raw = mem.i64(src.buffer);
        let mut ints = vec![0i64; src.numel()];
        layout::strided_copy(raw, src.offset, &src.shape, &src.strides, &mut ints)?;
        let floats: Vec<f32> = ints.iter().map(|&i| i as f32).collect();
        return scatter(&floats, &View::dense(usize::MAX, &dst.shape), mem.f32_mut(dst.buffer), dst);
    }
    if dst.is_dense() {
        let out = out_slice(mem, dst)?;
        return layout::strided_copy(mem.f32(src.buffer), src.offset, &src.shape, &src.strides, out);
    }
    let data = dense(mem, src)?;
    scatter(&data, &View::dense(usize::MAX, &dst.shape), mem.f32_mut(dst.buffer), dst)
}
