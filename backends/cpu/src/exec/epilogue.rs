//! A program's epilogue expression as an [`Epilogue`] of the GEMM and
//! convolution kernels, so it runs on each output tile right after the tile is
//! computed, while it is in cache, instead of as a second pass over the output.
//!
//! The kernels hand the epilogue tiles of a `batch × m × n` output matrix. Each
//! extra operand of the expression is a strided view over the kernel's output
//! shape; [`TileEpilogue::new`] re-expresses it as one stride per matrix axis
//! (batch, row, column), which is possible when each axis's output dims are
//! contiguous in the extra too (always so for dense and broadcast operands).
//! When that fails the caller keeps the two-pass path.

use super::Mem;
use crate::elementwise::{self, EwInput, EwProgram, check_view};
use crate::gemm::{Epilogue, Tile, with_scratch};
use eqopt_kir::View;
use std::ops::Range;

/// Elements per evaluation of a dense tile (64 KiB of accumulator: in L2).
const CHUNK: usize = 16 * 1024;

/// An extra operand: its data, the element offset of matrix element
/// `(0, 0, 0)`, and its strides along batch, row and column.
struct Extra<'a> {
    data: &'a [f32],
    base: usize,
    strides: [usize; 3],
}

/// The epilogue expression applied tile by tile.
pub(super) struct TileEpilogue<'a> {
    prog: &'a EwProgram,
    extras: Vec<Extra<'a>>,
    /// Set when the expression is a chain of additions, optionally under a
    /// ReLU, of operands each constant along a row or contiguous along it: run
    /// by plain loops instead of the general evaluator (the conv and GEMM
    /// epilogue of almost every CNN layer: bias, or bias and residual, then ReLU).
    add_chain: Option<AddChain>,
}

/// `relu?(((x[o₀] + x[o₁]) + x[o₂]) + …)` for `order = [o₀, o₁, …]`, in that
/// order of rounding, with `x[0]` the accumulator (`o₀ = 0` when it is first
/// or second: addition commutes exactly). Each extra is read at
/// `base + b·sb + i·si + j·sj` with `sj` 0 (one value per row) or 1 (a
/// contiguous run per row: a column bias, or a dense operand such as a residual).
#[derive(Clone, Debug, PartialEq)]
struct AddChain {
    order: Vec<usize>,
    relu: bool,
}

/// `max(y, 0)` with NaN kept, as the elementwise `Relu` (written as a compare
/// and select so it vectorizes).
#[inline(always)]
fn relu_f32(y: f32) -> f32 {
    if y < 0.0 { 0.0 } else { y }
}

/// Recognises an [`AddChain`]: the result is a left-deep sum of operands
/// (either operand order at each step), optionally under a ReLU.
fn add_chain(prog: &EwProgram) -> Option<AddChain> {
    use crate::elementwise::{BinaryOp, Instr, UnaryOp};
    #[derive(Clone)]
    enum Val {
        Leaf(usize),
        Chain(Vec<usize>),
        Other,
    }
    let instrs = prog.instrs();
    let mut vals: Vec<Val> = Vec::with_capacity(instrs.len());
    for ins in instrs {
        let v = match *ins {
            Instr::Input(k) => Val::Leaf(k),
            Instr::Binary(BinaryOp::Add, a, b) => match (&vals[a], &vals[b]) {
                (Val::Leaf(p), Val::Leaf(q)) => Val::Chain(vec![*p, *q]),
                (Val::Chain(c), Val::Leaf(q)) | (Val::Leaf(q), Val::Chain(c)) => Val::Chain([c.as_slice(), &[*q]].concat()),
                _ => Val::Other,
            },
            _ => Val::Other,
        };
        vals.push(v);
    }
    let (mut order, relu) = match (instrs.last()?, vals.last()?) {
        (_, Val::Chain(c)) => (c.clone(), false),
        (Instr::Unary(UnaryOp::Relu, a), _) => match &vals[*a] {
            Val::Chain(c) => (c.clone(), true),
            _ => return None,
        },
        _ => return None,
    };
    if order[1] == 0 {
        order.swap(0, 1);
    }
    // The accumulator is read once: the in-place loop overwrites it.
    if order.iter().filter(|&&k| k == 0).count() != 1 {
        return None;
    }
    Some(AddChain { order, relu })
}

/// The stride of the flattened dims `dims` of a view with `shape` and
/// `strides`, if they flatten: each non-unit dim's stride is the next non-unit
/// dim's stride times that dim's size. `None` also for negative strides.
fn flat_stride(shape: &[usize], strides: &[isize], dims: Range<usize>) -> Option<usize> {
    let mut flat: Option<usize> = None;
    let mut inner_extent = 1usize;
    for d in dims.rev() {
        if shape[d] == 1 {
            continue;
        }
        let s = usize::try_from(strides[d]).ok()?;
        match flat {
            None => flat = Some(s),
            Some(f) if s == f.checked_mul(inner_extent)? => {}
            Some(_) => return None,
        }
        inner_extent = inner_extent.checked_mul(shape[d])?;
    }
    Some(flat.unwrap_or(0))
}

impl<'a> TileEpilogue<'a> {
    /// The epilogue `prog` over `extras` for a kernel whose output has `shape`,
    /// with the output dims `axes[0]`, `axes[1]` and `axes[2]` forming the
    /// batch, row and column axes of the kernel's matrix, and `base` the
    /// coordinates of the dims before them (a GEMM's outer batch dims), or
    /// `None` when an extra does not flatten that way or reaches outside its buffer.
    pub(super) fn new(
        mem: &'a Mem,
        prog: &'a EwProgram,
        extras: &[View],
        shape: &[usize],
        axes: [Range<usize>; 3],
        base: &[usize],
    ) -> Option<TileEpilogue<'a>> {
        let extras = extras
            .iter()
            .enumerate()
            .map(|(k, v)| {
                let data = mem.f32(v.buffer);
                // Every element the tiles will read is inside the buffer.
                check_view("epilogue", "extra", k, data.len(), v.offset, shape, &v.strides).ok()?;
                let strides = [
                    flat_stride(shape, &v.strides, axes[0].clone())?,
                    flat_stride(shape, &v.strides, axes[1].clone())?,
                    flat_stride(shape, &v.strides, axes[2].clone())?,
                ];
                let lead: isize = base.iter().zip(&v.strides).map(|(&c, &s)| c as isize * s).sum();
                Some(Extra {
                    data,
                    base: usize::try_from(v.offset as isize + lead).ok()?,
                    strides,
                })
            })
            .collect::<Option<Vec<_>>>()?;
        let add_chain = add_chain(prog).filter(|c| c.order.iter().all(|&k| k == 0 || extras[k - 1].strides[2] <= 1));
        Some(TileEpilogue { prog, extras, add_chain })
    }
}

impl TileEpilogue<'_> {
    /// Evaluates the expression over `out` (`shape`, dense), the matrix block
    /// at batch `b`, first row `i0`, first column `c0`, with `acc` holding the
    /// accumulator (a copy of `out`).
    fn eval(&self, acc: &[f32], out: &mut [f32], shape: &[usize], b: usize, i0: usize, c0: usize) {
        let dense = elementwise::row_major_strides(shape);
        let mut inputs = Vec::with_capacity(1 + self.extras.len());
        inputs.push(EwInput::strided(acc, 0, dense));
        for e in &self.extras {
            let [sb, si, sj] = e.strides;
            let strides = if shape.len() == 2 {
                vec![si as isize, sj as isize]
            } else {
                vec![sj as isize]
            };
            inputs.push(EwInput::strided(e.data, e.base + b * sb + i0 * si + c0 * sj, strides));
        }
        // `new` checked every extra against the whole output, so a failure here
        // is an executor bug: fail loudly rather than leave the tile wrong.
        if let Err(e) = elementwise::eval(self.prog, &inputs, out, shape) {
            panic!("epilogue on a validated tile failed: {e}");
        }
    }
}

/// Elements per pass of an [`AddChain`] whose first operand is not the
/// accumulator (summed in a stack buffer, in L1).
const CHAIN_CHUNK: usize = 256;

/// One operand of an [`AddChain`] over a row: a value per row, or a run.
#[derive(Clone, Copy)]
enum Addend<'r> {
    Splat(f32),
    Run(&'r [f32]),
}

impl Addend<'_> {
    /// `dst[j] = self[from + j]`.
    #[inline(always)]
    fn write(self, from: usize, dst: &mut [f32]) {
        match self {
            Addend::Splat(v) => dst.fill(v),
            Addend::Run(r) => dst.copy_from_slice(&r[from..from + dst.len()]),
        }
    }
    /// `dst[j] += self[from + j]`.
    #[inline(always)]
    fn add_to(self, from: usize, dst: &mut [f32]) {
        match self {
            Addend::Splat(v) => dst.iter_mut().for_each(|x| *x += v),
            Addend::Run(r) => dst.iter_mut().zip(&r[from..]).for_each(|(x, v)| *x += *v),
        }
    }
}

impl TileEpilogue<'_> {
    /// Row `i` (columns `c0..`, of batch `b`) of the tile through `chain`.
    #[inline(always)]
    fn add_chain_row(&self, chain: &AddChain, b: usize, i: usize, c0: usize, row: &mut [f32]) {
        let cols = row.len();
        let addend = |k: usize| {
            let e = &self.extras[k - 1];
            let [sb, si, sj] = e.strides;
            let at = e.base + b * sb + i * si + c0 * sj;
            if sj == 0 {
                Addend::Splat(e.data[at])
            } else {
                Addend::Run(&e.data[at..at + cols])
            }
        };
        let relu = |xs: &mut [f32]| {
            if chain.relu {
                xs.iter_mut().for_each(|x| *x = relu_f32(*x));
            }
        };
        if chain.order[0] == 0 {
            let Some((&last, rest)) = chain.order[1..].split_last() else {
                relu(row);
                return;
            };
            for &k in rest {
                addend(k).add_to(0, row);
            }
            // The last addition and the ReLU in one pass (a convolution's bias
            // and ReLU: one read and write of the tile row, not two).
            match (addend(last), chain.relu) {
                (Addend::Splat(v), true) => row.iter_mut().for_each(|x| *x = relu_f32(*x + v)),
                (Addend::Run(r), true) => row.iter_mut().zip(r).for_each(|(x, v)| *x = relu_f32(*x + *v)),
                (a, false) => a.add_to(0, row),
            }
            return;
        }
        let mut buf = [0.0f32; CHAIN_CHUNK];
        for from in (0..cols).step_by(CHAIN_CHUNK) {
            let len = CHAIN_CHUNK.min(cols - from);
            let t = &mut buf[..len];
            let part = &mut row[from..from + len];
            for (n, &k) in chain.order.iter().enumerate() {
                match (n, k) {
                    (0, 0) => t.copy_from_slice(part),
                    (0, _) => addend(k).write(from, t),
                    (_, 0) => t.iter_mut().zip(part.iter()).for_each(|(x, v)| *x += *v),
                    _ => addend(k).add_to(from, t),
                }
            }
            relu(t);
            part.copy_from_slice(t);
        }
    }
}

impl Epilogue for TileEpilogue<'_> {
    fn apply(&self, tile: &mut Tile<'_>) {
        let (b, i0, c0, rows, cols) = (tile.batch(), tile.first_row(), tile.first_col(), tile.rows(), tile.cols());
        if let Some(chain) = &self.add_chain {
            crate::gemm::mv::wide(|| tile.for_each_row(|i, row| self.add_chain_row(chain, b, i, c0, row)));
            return;
        }
        if let Some(out) = tile.as_dense_mut() {
            // Evaluations over runs of whole rows of about CHUNK elements: the
            // per-call setup is amortized and the accumulator's copy stays in cache.
            let band = CHUNK.div_ceil(cols.max(1)).min(rows.max(1));
            with_scratch(band * cols, |scratch| {
                for (k, part) in out.chunks_mut(band * cols).enumerate() {
                    let acc = &mut scratch[..part.len()];
                    acc.copy_from_slice(part);
                    self.eval(acc, part, &[part.len() / cols, cols], b, i0 + k * band, c0);
                }
            });
            return;
        }
        with_scratch(cols, |acc| {
            tile.for_each_row(|i, row| {
                acc.copy_from_slice(row);
                self.eval(acc, row, &[cols], b, i, c0);
            });
        });
    }
}

#[cfg(test)]
mod tests {
    use super::{AddChain, Extra, TileEpilogue, add_chain, flat_stride};
    use crate::elementwise::{BinaryOp, EwProgram, Instr, UnaryOp};
    use crate::gemm::{Epilogue, Tile};

    fn add(a: usize, b: usize) -> Instr {
        Instr::Binary(BinaryOp::Add, a, b)
    }

    /// Each chain shape runs through the loops bit-identically to the general
    /// evaluator, on a tile that starts mid-matrix, with a per-row value, a
    /// column bias and a dense operand, and NaN and negative values.
    #[test]
    fn add_chains_match_the_general_evaluator() {
        use Instr::Input as In;
        let relu = |a| Instr::Unary(UnaryOp::Relu, a);
        let cases: Vec<(usize, Vec<Instr>, Option<AddChain>)> = vec![
            (
                2,
                vec![In(0), In(1), add(0, 1)],
                Some(AddChain {
                    order: vec![0, 1],
                    relu: false,
                }),
            ),
            (
                2,
                vec![In(1), In(0), add(0, 1), relu(2)],
                Some(AddChain {
                    order: vec![0, 1],
                    relu: true,
                }),
            ),
            (
                3,
                vec![In(0), In(1), add(0, 1), In(2), add(2, 3), relu(4)],
                Some(AddChain {
                    order: vec![0, 1, 2],
                    relu: true,
                }),
            ),
            (
                3,
                vec![In(1), In(2), add(0, 1), In(0), add(3, 2)],
                Some(AddChain {
                    order: vec![1, 2, 0],
                    relu: false,
                }),
            ),
            (
                4,
                vec![In(3), In(1), add(0, 1), In(2), add(3, 2), In(0), add(4, 5), relu(6)],
                Some(AddChain {
                    order: vec![3, 1, 2, 0],
                    relu: true,
                }),
            ),
            // Not chains: a sum of sums, a product, the accumulator twice.
            (4, vec![In(0), In(1), add(0, 1), In(2), In(3), add(3, 4), add(2, 5)], None),
            (2, vec![In(0), In(1), Instr::Binary(BinaryOp::Mul, 0, 1)], None),
            (2, vec![In(0), In(1), add(0, 1), In(0), add(2, 3)], None),
        ];
        let (rows, cols, ld) = (5usize, 300usize, 311usize);
        let val = |k: usize| ((k * 7919) % 97) as f32 / 8.0 - 6.0;
        let per_row: Vec<f32> = (0..rows + 3).map(|k| val(k + 1)).collect();
        let mut dense: Vec<f32> = (0..(rows + 3) * ld).map(|k| val(k + 5)).collect();
        dense[ld + 3] = f32::NAN;
        let col_bias: Vec<f32> = (0..ld).map(|k| val(k + 11)).collect();
        for (n, instrs, want) in cases {
            let prog = EwProgram::new(n, instrs.clone()).unwrap();
            assert_eq!(add_chain(&prog), want, "{instrs:?}");
            let extras = |k: usize| match k % 3 {
                0 => Extra {
                    data: &per_row,
                    base: 0,
                    strides: [0, 1, 0],
                },
                1 => Extra {
                    data: &col_bias,
                    base: 0,
                    strides: [0, 0, 1],
                },
                _ => Extra {
                    data: &dense,
                    base: 0,
                    strides: [0, ld, 1],
                },
            };
            let make = |chain: Option<AddChain>| TileEpilogue {
                prog: &prog,
                extras: (1..n).map(extras).collect(),
                add_chain: chain,
            };
            let run = |e: &TileEpilogue<'_>| {
                let mut out: Vec<f32> = (0..(rows + 2) * ld).map(|k| val(k + 3)).collect();
                out[2 * ld + 7] = f32::NAN;
                // SAFETY: rows 2.. of `out`, `cols` each, `ld` apart, are inside it and only used here.
                let mut tile = unsafe { Tile::from_raw(out.as_mut_ptr().add(2 * ld + 4), ld, 0, 2, rows, 4, cols) };
                e.apply(&mut tile);
                out
            };
            let (fast, general) = (run(&make(add_chain(&prog))), run(&make(None)));
            assert!(fast.iter().zip(&general).all(|(a, b)| a.to_bits() == b.to_bits()), "{instrs:?}");
        }
    }

    #[test]
    fn dims_flatten_only_when_contiguous() {
        // NCHW [1, 8, 5, 7]: a dense extra flattens H·W to stride 1, a per-channel bias to 0.
        assert_eq!(flat_stride(&[1, 8, 5, 7], &[280, 35, 7, 1], 2..4), Some(1));
        assert_eq!(flat_stride(&[1, 8, 5, 7], &[0, 1, 0, 0], 2..4), Some(0));
        assert_eq!(flat_stride(&[1, 8, 5, 7], &[0, 1, 0, 0], 1..2), Some(1));
        // A transposed extra does not flatten H·W.
        assert_eq!(flat_stride(&[1, 8, 5, 7], &[280, 1, 8, 40], 2..4), None);
        // Unit dims are skipped; an empty range is stride 0.
        assert_eq!(flat_stride(&[4, 1, 3], &[3, 99, 1], 0..3), Some(1));
        assert_eq!(flat_stride(&[4, 3], &[3, 1], 0..0), Some(0));
        assert_eq!(flat_stride(&[2, 3], &[-3, 1], 0..2), None);
    }
}
