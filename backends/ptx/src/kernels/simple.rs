//! One thread per output element, in a grid-stride loop: fused elementwise
//! expressions, copies (transposes, slices, concatenation parts) and gathers.

use super::{ELEMENTWISE_BLOCK, Emitted, Kc, blocks_for};
use crate::expr::emit_expr;
use crate::index::{Walk, for_range, grid_stride, linear_combination, load_f32, split_index, store_f32};
use eqopt_kir::{Kernel, Program, View};

fn launch(n: usize) -> ([u32; 3], [u32; 3]) {
    ([blocks_for(n, ELEMENTWISE_BLOCK), 1, 1], [ELEMENTWISE_BLOCK, 1, 1])
}

/// `out[i] = expr(inputs[i]...)`: every operand read at the output's coordinates.
pub fn elementwise(program: &Program, name: &str, kernel: &Kernel) -> Emitted {
    let Kernel::Elementwise { expr, inputs, out } = kernel else {
        unreachable!("dispatched on the kind")
    };
    let mut kc = Kc::new(program, name, ELEMENTWISE_BLOCK, kernel);
    let views: Vec<&View> = inputs.iter().chain([out]).collect();
    let strides: Vec<&[isize]> = views.iter().map(|v| v.strides.as_slice()).collect();
    let walk = Walk::new(&out.shape, &strides);
    let bases: Vec<usize> = views.iter().map(|v| v.offset).collect();
    let regs: Vec<_> = views.iter().map(|v| (kc.base(v.buffer), kc.elem(v.buffer))).collect();
    let n = out.numel();
    kc.kb
        .comment(&format!("elementwise over {:?}: {} operands", out.shape, inputs.len()));
    let (start, step) = grid_stride(&mut kc.kb);
    for_range(&mut kc.kb, start, n, step, |kb, i| {
        let offs = walk.offsets(kb, i, &bases);
        let operands: Vec<_> = (0..inputs.len()).map(|k| load_f32(kb, regs[k].0, regs[k].1, offs[k])).collect();
        let r = emit_expr(kb, expr, &operands);
        store_f32(kb, regs[inputs.len()].0, offs[inputs.len()], r);
    });
    let (grid, block) = launch(n);
    kc.finish(grid, block)
}

/// `dst = src`, element by element over the shared shape.
pub fn copy(program: &Program, name: &str, kernel: &Kernel) -> Emitted {
    let Kernel::Copy { src, dst } = kernel else {
        unreachable!("dispatched on the kind")
    };
    let mut kc = Kc::new(program, name, ELEMENTWISE_BLOCK, kernel);
    let walk = Walk::new(&dst.shape, &[&src.strides, &dst.strides]);
    let (sb, se, db) = (kc.base(src.buffer), kc.elem(src.buffer), kc.base(dst.buffer));
    let n = dst.numel();
    kc.kb.comment(&format!("copy of {:?}", dst.shape));
    let (start, step) = grid_stride(&mut kc.kb);
    for_range(&mut kc.kb, start, n, step, |kb, i| {
        let offs = walk.offsets(kb, i, &[src.offset, dst.offset]);
        let v = load_f32(kb, sb, se, offs[0]);
        store_f32(kb, db, offs[1], v);
    });
    let (grid, block) = launch(n);
    kc.finish(grid, block)
}

/// `out = data` gathered along `axis` at `indices`: an index below zero counts
/// from the end; one outside the axis after that yields NaN (a kernel cannot
/// report an error, and NaN makes the bad result visible downstream).
pub fn gather(program: &Program, name: &str, kernel: &Kernel) -> Emitted {
    let Kernel::Gather { data, indices, axis, out } = kernel else {
        unreachable!("dispatched on the kind")
    };
    let axis = *axis;
    let r = indices.shape.len();
    let mut kc = Kc::new(program, name, ELEMENTWISE_BLOCK, kernel);
    let (db, de, ib, ob) = (
        kc.base(data.buffer),
        kc.elem(data.buffer),
        kc.base(indices.buffer),
        kc.base(out.buffer),
    );
    let n = out.numel();
    let dim = data.shape[axis];
    kc.kb.comment(&format!("gather along axis {axis} of {:?}", data.shape));
    let (start, step) = grid_stride(&mut kc.kb);
    for_range(&mut kc.kb, start, n, step, |kb, i| {
        let coords = split_index(kb, i, &out.shape);
        // The index: indices at coords[axis..axis + r].
        let iterms: Vec<_> = (0..r).map(|d| (coords[axis + d], indices.strides[d])).collect();
        let ioff = linear_combination(kb, indices.offset, &iterms);
        let ia = crate::index::address(kb, ib, ioff, 8);
        let idx64 = kb.r64();
        kb.op(&format!("ld.global.s64 {idx64}, [{ia}]"));
        let neg = kb.pred();
        kb.op(&format!("setp.lt.s64 {neg}, {idx64}, 0"));
        kb.op_if(neg, false, &format!("add.s64 {idx64}, {idx64}, {dim}"));
        let bad = kb.pred();
        let hi = kb.pred();
        kb.op(&format!("setp.lt.s64 {bad}, {idx64}, 0"));
        kb.op(&format!("setp.ge.s64 {hi}, {idx64}, {dim}"));
        kb.op(&format!("or.pred {bad}, {bad}, {hi}"));
        let idx = kb.r32();
        kb.op(&format!("cvt.u32.u64 {idx}, {idx64}"));
        kb.op_if(bad, false, &format!("mov.u32 {idx}, 0"));
        let mut dterms: Vec<_> = (0..axis).map(|d| (coords[d], data.strides[d])).collect();
        dterms.push((idx, data.strides[axis]));
        dterms.extend((axis + 1..data.shape.len()).map(|d| (coords[d - 1 + r], data.strides[d])));
        let doff = linear_combination(kb, data.offset, &dterms);
        let v = load_f32(kb, db, de, doff);
        let nan = kb.fconst(f32::NAN);
        let v = kb.fsel(bad, nan, v);
        let ooff = linear_combination(kb, out.offset, &[(i, 1)]);
        store_f32(kb, ob, ooff, v);
    });
    let (grid, block) = launch(n);
    kc.finish(grid, block)
}
