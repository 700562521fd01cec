//! The GEMM kernel: `out[.., M, N] = a[.., M, K] · b[.., K, N]`, then the
//! epilogue, as one shared-memory tiled product per batch index.
//!
//! The tiling, the thread mapping and the shared-memory layout are those of
//! [`super::tile`]: 256 threads a block, one 64 × 64 output tile each, a 4 × 4
//! register tile per thread with `f32` arithmetic (8320 bytes of shared
//! memory), tensor-core `mma.sync` fragments with [`GemmCompute::Bf16`]
//! (10240 bytes). The grid is `[tiles, 1, batch]`: `%ctaid.z` is the row-major
//! index over the output's batch dims, decomposed once per block into
//! coordinates that every view (`a`, `b`, the epilogue's extras) combines with
//! its own strides (0 where it broadcasts; a size-1 dim of an operand
//! broadcasts whatever its stride).
//!
//! Operands are read through their views' strides, so a transposed view
//! (strides swapped) needs no copy; the loaders' thread mapping follows the
//! contiguous dim ([`super::tile`]). `b` may be:
//! - `f32`, `f16` or `bf16`, widened exactly to `f32` as it is loaded;
//! - int8 ([`ConstData::Int8`]): `q · scale[n]`, one `f32` product;
//! - int4 ([`ConstData::Int4`]): byte `k·⌈N/2⌉ + n/2`, the low nibble for an
//!   even `n`, minus 8, times `scale[(k / group)·N + n]`.
//!
//! The quantized scales start at [`scales_offset`] bytes after the values. With
//! [`GemmCompute::Bf16`] both operands are rounded to bf16 (ties to even;
//! exact for the bf16 `b`) and the products summed in `f32` by the tensor
//! cores. Each output element gets the epilogue (operand 0 the accumulator,
//! operands 1.. the extras read at its coordinates) before its store.

use super::tile::{self, Arith, THREADS, Tiling, load_guarded};
use super::{Emitted, Kc};
use crate::builder::{F32, Kb, Pred, R32, R64};
use crate::error::PtxError;
use crate::expr::emit_expr;
use crate::index::combine;
use crate::index::{Walk, address, load_f32, store_f32};
use crate::plan::scales_offset;
use eqopt_kir::{BufferKind, ConstData, ElemType, GemmCompute, Kernel, Program, View};

/// The most batch indices one launch covers (`%ctaid.z`).
const MAX_BATCH: usize = 65_535;

/// Emits kernel `index` (`kernel`) of `program` as entry `name`.
pub fn emit(program: &Program, name: &str, kernel: &Kernel, index: usize) -> Result<Emitted, PtxError> {
    let Kernel::Gemm {
        a,
        b,
        out,
        epilogue,
        compute,
    } = kernel
    else {
        unreachable!("dispatched on the kind")
    };
    let fail = |reason: String| PtxError::Unsupported {
        kernel: index,
        kind: "gemm",
        reason,
    };
    let r = out.shape.len();
    if r < 2 || a.shape.len() != r || b.shape.len() != r {
        return Err(fail(format!("views of ranks {}, {}, {}", a.shape.len(), b.shape.len(), r)));
    }
    let (m, k, n) = (a.shape[r - 2], a.shape[r - 1], b.shape[r - 1]);
    if b.shape[r - 2] != k || out.shape[r - 2..] != [m, n] {
        return Err(fail(format!("shapes {:?} · {:?} -> {:?} disagree", a.shape, b.shape, out.shape)));
    }
    let batch_shape = &out.shape[..r - 2];
    let batch: usize = batch_shape.iter().product();
    let extras: Vec<&View> = epilogue.iter().flat_map(|e| e.extras.iter()).collect();
    for v in [a, b].into_iter().chain(extras.iter().copied()) {
        let bad = v.shape[..r - 2].iter().zip(batch_shape).any(|(&d, &o)| d != o && d != 1);
        if v.shape.len() != r || bad {
            return Err(fail(format!(
                "an operand of shape {:?} does not broadcast to {:?}",
                v.shape, out.shape
            )));
        }
    }
    let arith = match compute {
        GemmCompute::F32 => Arith::F32,
        GemmCompute::Bf16 => Arith::Bf16,
    };
    let tiling = Tiling {
        m,
        n,
        k,
        arith,
        // Walk a along k unless only its rows are contiguous; b along n unless
        // only its k is (a transposed weight).
        a_k_fast: !(a.strides[r - 2] == 1 && a.strides[r - 1] != 1),
        b_k_fast: b.strides[r - 2] == 1 && b.strides[r - 1] != 1,
    };
    if batch > MAX_BATCH || tiling.tiles() > i32::MAX as usize {
        return Err(fail(format!("{batch} batch indices of {} tiles exceed the grid", tiling.tiles())));
    }
    let mut kc = Kc::new(program, name, THREADS, kernel);
    if out.numel() == 0 {
        kc.kb.comment("empty output");
        return Ok(kc.finish([1, 1, 1], [THREADS, 1, 1]));
    }
    let kb = &mut kc.kb;
    kb.comment(&format!(
        "gemm {:?} x {:?} -> {:?}, batch {batch}, {compute:?}, b {:?}",
        a.shape, b.shape, out.shape, program.buffers[b.buffer].elem
    ));
    // Batch offsets of a, b and the extras for %ctaid.z.
    let views: Vec<&View> = [a, b].into_iter().chain(extras.iter().copied()).collect();
    let bstrides: Vec<Vec<isize>> = views
        .iter()
        .map(|v| (0..r - 2).map(|d| if v.shape[d] == 1 { 0 } else { v.strides[d] }).collect())
        .collect();
    let refs: Vec<&[isize]> = bstrides.iter().map(Vec::as_slice).collect();
    let walk = Walk::new(batch_shape, &refs);
    let z = kb.special("%ctaid.z");
    let bases: Vec<usize> = views.iter().map(|v| v.offset).collect();
    let offs = walk.offsets(kb, z, &bases);
    let out0 = kb.r32();
    kb.op(&format!("mad.lo.u32 {out0}, {z}, {}, {}", m * n, out.offset));

    let (ab, bb, ob) = (kc.base(a.buffer), kc.base(b.buffer), kc.base(out.buffer));
    let ebases: Vec<R64> = extras.iter().map(|e| kc.base(e.buffer)).collect();
    let (a0, b0) = (offs[0], offs[1]);
    let (sam, sak) = (a.strides[r - 2], a.strides[r - 1]);
    let load_a = move |kb: &mut Kb, row: R32, kk: R32, valid: Pred| {
        let off = combine(kb, a0, &[(row, sam), (kk, sak)]);
        load_guarded(kb, ab, ElemType::F32, off, valid)
    };
    let load_b = b_loader(program, b, r, b0, bb);
    let store = |kb: &mut Kb, row: R32, col: R32, acc: F32| {
        let mut operands = vec![acc];
        for (i, e) in extras.iter().enumerate() {
            let off = combine(kb, offs[2 + i], &[(row, e.strides[r - 2]), (col, e.strides[r - 1])]);
            operands.push(load_f32(kb, ebases[i], ElemType::F32, off));
        }
        let v = match epilogue {
            Some(e) => emit_expr(kb, &e.expr, &operands),
            None => acc,
        };
        let at = kb.r32();
        kb.op(&format!("mad.lo.u32 {at}, {row}, {n}, {out0}"));
        kb.op(&format!("add.u32 {at}, {at}, {col}"));
        store_f32(kb, ob, at, v);
    };
    tiling.emit(&mut kc.kb, &load_a, &*load_b, &store);
    let grid = [tiling.tiles() as u32, 1, batch as u32];
    Ok(kc.finish(grid, [THREADS, 1, 1]))
}

/// The "load B(k, n)" closure for `b`'s element type: a strided float view, or
/// a whole quantized matrix (dequantized as it is read).
fn b_loader<'a>(program: &'a Program, b: &'a View, r: usize, b0: R32, bb: R64) -> Box<tile::LoadFn<'a>> {
    let (sbk, sbn) = (b.strides[r - 2], b.strides[r - 1]);
    let buf = &program.buffers[b.buffer];
    let data = match &buf.kind {
        Some(BufferKind::Constant(d @ (ConstData::Int8 { .. } | ConstData::Int4 { .. }))) => d,
        _ => {
            let elem = buf.elem;
            return Box::new(move |kb: &mut Kb, kk: R32, col: R32, valid: Pred| {
                let off = combine(kb, b0, &[(kk, sbk), (col, sbn)]);
                load_guarded(kb, bb, elem, off, valid)
            });
        }
    };
    let so = scales_offset(data);
    Box::new(move |kb: &mut Kb, kk: R32, col: R32, valid: Pred| {
        let q = kb.r32();
        kb.op(&format!("mov.u32 {q}, 0"));
        let si = kb.r32();
        match *data {
            ConstData::Int8 { n, .. } => {
                let at = kb.r32();
                kb.op(&format!("mad.lo.u32 {at}, {kk}, {n}, {col}"));
                let a = address(kb, bb, at, 1);
                kb.op_if(valid, false, &format!("ld.global.s8 {q}, [{a}]"));
                kb.op(&format!("mov.u32 {si}, {col}"));
            }
            ConstData::Int4 { n, group, .. } => {
                let at = kb.r32();
                kb.op(&format!("shr.u32 {at}, {col}, 1"));
                kb.op(&format!("mad.lo.u32 {at}, {kk}, {}, {at}", n.div_ceil(2)));
                let a = address(kb, bb, at, 1);
                kb.op_if(valid, false, &format!("ld.global.u8 {q}, [{a}]"));
                let sh = kb.r32();
                kb.op(&format!("and.b32 {sh}, {col}, 1"));
                kb.op(&format!("shl.b32 {sh}, {sh}, 2"));
                kb.op(&format!("shr.u32 {q}, {q}, {sh}"));
                kb.op(&format!("and.b32 {q}, {q}, 15"));
                kb.op(&format!("sub.s32 {q}, {q}, 8"));
                kb.op(&format!("div.u32 {si}, {kk}, {group}"));
                kb.op(&format!("mad.lo.u32 {si}, {si}, {n}, {col}"));
            }
            _ => unreachable!("quantized data"),
        }
        let scales = kb.r64();
        kb.op(&format!("add.s64 {scales}, {bb}, {so}"));
        let s = load_guarded(kb, scales, ElemType::F32, si, valid);
        let f = kb.f32();
        kb.op(&format!("cvt.rn.f32.s32 {f}, {q}"));
        kb.fmul(f, s)
    })
}
