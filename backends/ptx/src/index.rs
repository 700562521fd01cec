//! Addressing: element offsets of strided views at coordinates computed from a
//! linear index, and typed loads and stores of buffer elements.
//!
//! Shapes and strides are compile-time constants baked into the instructions.
//! Element offsets are 32-bit signed (every buffer is checked to hold fewer
//! than 2^31 elements by [`crate::compile`]), widened to 64 bits only to form
//! the byte address.

use crate::builder::{F32, Kb, R32, R64};
use eqopt_kir::ElemType;

/// A shape and the strides of several views over it, with size-1 dims dropped
/// and adjacent dims merged where every view is contiguous across them
/// (fewer divisions when a linear index is split into coordinates).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Walk {
    /// Dims, outermost first (empty for a single element).
    pub shape: Vec<usize>,
    /// Per view, a stride per dim of `shape`.
    pub strides: Vec<Vec<isize>>,
}

impl Walk {
    /// The walk of `shape` for views with the given strides (each as long as `shape`).
    pub fn new(shape: &[usize], strides: &[&[isize]]) -> Walk {
        let mut dims: Vec<(usize, Vec<isize>)> = Vec::new();
        for (d, &n) in shape.iter().enumerate() {
            if n == 1 {
                continue;
            }
            let s: Vec<isize> = strides.iter().map(|v| v[d]).collect();
            if let Some((pn, ps)) = dims.last_mut() {
                // Merge into the previous (outer) dim when, for every view, the
                // outer stride is the inner stride times the inner size.
                if ps.iter().zip(&s).all(|(&o, &i)| o == i * n as isize) {
                    *pn *= n;
                    *ps = s;
                    continue;
                }
            }
            dims.push((n, s));
        }
        let shape = dims.iter().map(|(n, _)| *n).collect();
        let strides = (0..strides.len()).map(|v| dims.iter().map(|(_, s)| s[v]).collect()).collect();
        Walk { shape, strides }
    }

    /// Element offsets (one register per view, each plus its `bases` entry) of
    /// the element at row-major linear index `linear` of the walk's shape.
    pub fn offsets(&self, kb: &mut Kb, linear: R32, bases: &[usize]) -> Vec<R32> {
        let coords = split_index(kb, linear, &self.shape);
        (0..self.strides.len())
            .map(|v| {
                let terms: Vec<(R32, isize)> = coords.iter().copied().zip(self.strides[v].iter().copied()).collect();
                linear_combination(kb, bases[v], &terms)
            })
            .collect()
    }
}

/// Coordinates of row-major linear index `linear` over `shape` (outermost first).
/// The outermost coordinate is not reduced modulo its size.
pub fn split_index(kb: &mut Kb, linear: R32, shape: &[usize]) -> Vec<R32> {
    let mut coords = vec![linear; shape.len()];
    let mut rest = linear;
    for d in (0..shape.len()).rev() {
        if d == 0 {
            coords[0] = rest;
            break;
        }
        let c = kb.r32();
        let q = kb.r32();
        kb.op(&format!("rem.u32 {c}, {rest}, {}", shape[d]));
        kb.op(&format!("div.u32 {q}, {rest}, {}", shape[d]));
        coords[d] = c;
        rest = q;
    }
    coords
}

/// `base + Σ c·s` as a signed 32-bit element offset.
pub fn linear_combination(kb: &mut Kb, base: usize, terms: &[(R32, isize)]) -> R32 {
    let acc = kb.imm32(base as i64);
    add_terms(kb, acc, terms);
    acc
}

/// `base + Σ c·s` (signed 32-bit element offset) from a register base.
pub fn combine(kb: &mut Kb, base: R32, terms: &[(R32, isize)]) -> R32 {
    let acc = kb.r32();
    kb.op(&format!("mov.u32 {acc}, {base}"));
    add_terms(kb, acc, terms);
    acc
}

/// `acc += Σ c·s`, skipping zero strides and using an add for unit ones.
fn add_terms(kb: &mut Kb, acc: R32, terms: &[(R32, isize)]) {
    for &(c, s) in terms {
        match s {
            0 => {}
            1 => kb.op(&format!("add.s32 {acc}, {acc}, {c}")),
            _ => kb.op(&format!("mad.lo.s32 {acc}, {c}, {}, {acc}", s as i32)),
        }
    }
}

/// The byte address of element `offset` (signed) of a buffer of `size`-byte elements at `base`.
pub fn address(kb: &mut Kb, base: R64, offset: R32, size: usize) -> R64 {
    let t = kb.r64();
    kb.op(&format!("mul.wide.s32 {t}, {offset}, {size}"));
    let a = kb.r64();
    kb.op(&format!("add.s64 {a}, {base}, {t}"));
    a
}

/// Loads element `offset` of a float buffer (`f32`, or `f16`/`bf16` widened
/// exactly) at `base` as an `f32`.
pub fn load_f32(kb: &mut Kb, base: R64, elem: ElemType, offset: R32) -> F32 {
    let d = kb.f32();
    match elem {
        ElemType::F16 => {
            let a = address(kb, base, offset, 2);
            let h = kb.h16();
            kb.op(&format!("ld.global.b16 {h}, [{a}]"));
            kb.op(&format!("cvt.f32.f16 {d}, {h}"));
        }
        ElemType::BF16 => {
            let a = address(kb, base, offset, 2);
            let r = kb.r32();
            kb.op(&format!("ld.global.u16 {r}, [{a}]"));
            kb.op(&format!("shl.b32 {r}, {r}, 16"));
            kb.op(&format!("mov.b32 {d}, {r}"));
        }
        _ => {
            let a = address(kb, base, offset, 4);
            kb.op(&format!("ld.global.f32 {d}, [{a}]"));
        }
    }
    d
}

/// Stores `value` at element `offset` of the `f32` buffer at `base`.
pub fn store_f32(kb: &mut Kb, base: R64, offset: R32, value: F32) {
    let a = address(kb, base, offset, 4);
    kb.op(&format!("st.global.f32 [{a}], {value}"));
}

/// The global thread index and the grid's thread count, for grid-stride loops.
pub fn grid_stride(kb: &mut Kb) -> (R32, R32) {
    let tid = kb.special("%tid.x");
    let ntid = kb.special("%ntid.x");
    let ctaid = kb.special("%ctaid.x");
    let nctaid = kb.special("%nctaid.x");
    let i = kb.r32();
    kb.op(&format!("mad.lo.u32 {i}, {ctaid}, {ntid}, {tid}"));
    let step = kb.r32();
    kb.op(&format!("mul.lo.u32 {step}, {nctaid}, {ntid}"));
    (i, step)
}

/// Emits `for i in start..n step step { body(i) }` (a grid-stride loop).
pub fn for_range(kb: &mut Kb, start: R32, n: usize, step: R32, body: impl FnOnce(&mut Kb, R32)) {
    let top = kb.label("loop");
    let end = kb.label("end");
    let i = kb.r32();
    kb.op(&format!("mov.u32 {i}, {start}"));
    kb.place(&top);
    let p = kb.pred();
    kb.op(&format!("setp.ge.u32 {p}, {i}, {n}"));
    kb.op_if(p, false, &format!("bra {end}"));
    body(kb, i);
    kb.op(&format!("add.u32 {i}, {i}, {step}"));
    kb.op(&format!("bra.uni {top}"));
    kb.place(&end);
}

#[cfg(test)]
mod tests {
    use super::Walk;

    #[test]
    fn walk_merges_contiguous_dims_and_drops_unit_dims() {
        let w = Walk::new(&[2, 1, 3, 4], &[&[12, 12, 4, 1], &[0, 0, 0, 1]]);
        // The two outer dims merge (both views contiguous across them: the second
        // broadcasts over both); the last cannot (the second view restarts there).
        assert_eq!(w.shape, vec![6, 4]);
        assert_eq!(w.strides, vec![vec![4, 1], vec![0, 1]]);
        let t = Walk::new(&[3, 4], &[&[1, 3]]);
        assert_eq!(t.shape, vec![3, 4]);
        let all = Walk::new(&[2, 3, 4], &[&[12, 4, 1]]);
        assert_eq!(all.shape, vec![24]);
    }
}
