//! The tile executor: evaluates a compiled [`Plan`] over a contiguous chunk of the
//! output, one row segment and one tile (≤ [`TILE`] elements) at a time, each step
//! a SIMD loop over the whole tile.

use super::BinaryOp;
use super::program::{Op, Plan, Step, UOp, UnaryOp, ValueDef};
use super::view::{EwInput, Layout};
use crate::simd::{Simd, SimdKernel};

/// Elements per tile buffer.
pub(super) const TILE: usize = 512;

/// Where one input's current row comes from.
#[derive(Clone, Copy)]
enum RowSrc<'d> {
    /// Inner stride 1: the row's elements.
    Contig(&'d [f32]),
    /// Inner stride 0: one value for the whole row.
    Scalar(f32),
    /// Any other inner stride: gathered per tile into gather buffer `slot`.
    Strided {
        data: &'d [f32],
        base: isize,
        stride: isize,
        slot: usize,
    },
    /// A multi-row tile's per-row values, each repeated over its row, already
    /// written to gather buffer `slot`.
    Expanded { slot: usize },
}

/// An operand of one step over one tile.
#[derive(Clone, Copy)]
enum Src<'t> {
    Vec(&'t [f32]),
    Scalar(f32),
}

/// A value's state during one tile.
#[derive(Clone, Copy)]
enum Val {
    Input(usize),
    Scalar(f32),
    Slot(usize),
}

/// Evaluates the program for `out`, the output's flat elements
/// `start .. start + out.len()`. Bounds were checked by the caller.
pub(super) struct Chunk<'p, 'd, 'o> {
    pub plan: &'p Plan,
    pub layout: &'p Layout,
    pub inputs: &'p [EwInput<'d>],
    pub out: &'o mut [f32],
    pub start: usize,
}

impl SimdKernel for Chunk<'_, '_, '_> {
    type Output = ();
    #[inline(always)]
    fn run<S: Simd>(self, s: S) {
        run_chunk(s, self)
    }
}

#[inline(always)]
fn run_chunk<S: Simd>(s: S, c: Chunk<'_, '_, '_>) {
    let Chunk {
        plan,
        layout,
        inputs,
        out,
        start,
    } = c;
    let n = layout.row_len();
    let inner = layout.shape.len() - 1;
    // Short rows ([C, 7·7] under a per-channel operand) are evaluated several
    // to a tile, so the per-step cost is paid per tile rather than per row:
    // every operand must be contiguous across consecutive rows (inner stride 1,
    // row stride n) or one value per row (inner stride 0).
    let multi = 2 * n <= TILE
        && inner > 0
        && layout.strides.iter().all(|st| match st[inner] {
            0 => true,
            1 => st[inner - 1] == n as isize,
            _ => false,
        });
    let tile = if multi { TILE } else { TILE.min(n.next_multiple_of(16)) };
    let mut gslot = vec![usize::MAX; inputs.len()];
    let mut ngather = 0;
    for (k, st) in layout.strides.iter().enumerate() {
        if !matches!(st[inner], 0 | 1) || (multi && st[inner] == 0) {
            gslot[k] = ngather;
            ngather += 1;
        }
    }
    // Tile buffers start on a 64-byte boundary (see the alignment note below).
    let mut tile_buf = vec![0.0f32; plan.num_slots * tile + 16];
    let skew = tile_buf.as_ptr().align_offset(64).min(16);
    let tiles = &mut tile_buf[skew..skew + plan.num_slots * tile];
    let mut gather = vec![0.0f32; ngather * tile];
    let mut vals: Vec<Val> = plan
        .defs
        .iter()
        .map(|d| match *d {
            ValueDef::Input(k) => Val::Input(k),
            ValueDef::Const(c) => Val::Scalar(c),
            ValueDef::Computed(_) => Val::Scalar(f32::NAN),
        })
        .collect();
    let mut rows: Vec<RowSrc<'_>> = Vec::with_capacity(inputs.len());
    let total = out.len();
    let mut pos = 0;
    while pos < total {
        let flat = start + pos;
        let (row, col) = (flat / n, flat % n);
        if multi && col == 0 {
            // Whole rows, within one index of the dims outside the row pair.
            let d1 = layout.shape[inner - 1];
            let k = (TILE / n).min(d1 - row % d1).min((total - pos) / n);
            if k >= 2 {
                let len = k * n;
                rows.clear();
                for (i, inp) in inputs.iter().enumerate() {
                    let base = layout.row_base(i, inp.offset, row);
                    rows.push(if layout.strides[i][inner] == 1 {
                        RowSrc::Contig(&inp.data[base as usize..base as usize + len])
                    } else {
                        let (step, slot) = (layout.strides[i][inner - 1], gslot[i]);
                        for (r, part) in gather[slot * tile..slot * tile + len].chunks_exact_mut(n).enumerate() {
                            part.fill(inp.data[(base + r as isize * step) as usize]);
                        }
                        RowSrc::Expanded { slot }
                    });
                }
                let io = TileIo {
                    rows: &rows,
                    gather: &gather,
                    tile,
                    c0: 0,
                    len,
                };
                eval_tile(s, plan, &io, &mut vals, tiles, &mut out[pos..pos + len]);
                pos += len;
                continue;
            }
        }
        let seg = (n - col).min(total - pos);
        rows.clear();
        for (k, inp) in inputs.iter().enumerate() {
            let base = layout.row_base(k, inp.offset, row);
            rows.push(match layout.strides[k][inner] {
                0 => RowSrc::Scalar(inp.data[base as usize]),
                1 => RowSrc::Contig(&inp.data[base as usize..base as usize + n]),
                stride => RowSrc::Strided {
                    data: inp.data,
                    base,
                    stride,
                    slot: gslot[k],
                },
            });
        }
        let out_row = &mut out[pos..pos + seg];
        // Vector loads and stores that straddle cache lines cost noticeably in
        // streaming kernels (AVX-512 most). On long rows, a short first tile brings
        // the output to a 64-byte boundary; inputs allocated alike follow.
        let lead = match out_row.as_ptr().align_offset(64) {
            a if seg >= 256 && a < 16 => a,
            _ => 0,
        };
        let mut t = 0;
        while t < seg {
            let len = if t == 0 && lead > 0 { lead } else { tile.min(seg - t) };
            let c0 = col + t;
            for r in &rows {
                if let RowSrc::Strided { data, base, stride, slot } = *r {
                    let g = &mut gather[slot * tile..slot * tile + len];
                    for (i, x) in g.iter_mut().enumerate() {
                        *x = data[(base + (c0 + i) as isize * stride) as usize];
                    }
                }
            }
            let io = TileIo {
                rows: &rows,
                gather: &gather,
                tile,
                c0,
                len,
            };
            eval_tile(s, plan, &io, &mut vals, tiles, &mut out_row[t..t + len]);
            t += len;
        }
        pos += seg;
    }
}

/// Read-only sources of one tile.
struct TileIo<'a, 'd> {
    rows: &'a [RowSrc<'d>],
    gather: &'a [f32],
    tile: usize,
    c0: usize,
    len: usize,
}

impl TileIo<'_, '_> {
    /// Resolves a value for this tile; slot `j` lives in `lo` (below the step's
    /// destination slot `d`) or `hi` (above it).
    #[inline(always)]
    fn src<'t>(&'t self, v: Val, lo: &'t [f32], hi: &'t [f32], d: usize) -> Src<'t> {
        let (tile, len) = (self.tile, self.len);
        match v {
            Val::Scalar(x) => Src::Scalar(x),
            Val::Slot(j) if j < d => Src::Vec(&lo[j * tile..j * tile + len]),
            Val::Slot(j) => {
                let o = (j - d - 1) * tile;
                Src::Vec(&hi[o..o + len])
            }
            Val::Input(k) => match self.rows[k] {
                RowSrc::Contig(r) => Src::Vec(&r[self.c0..self.c0 + len]),
                RowSrc::Scalar(x) => Src::Scalar(x),
                RowSrc::Strided { slot, .. } | RowSrc::Expanded { slot } => Src::Vec(&self.gather[slot * tile..slot * tile + len]),
            },
        }
    }
}

#[inline(always)]
fn eval_tile<S: Simd>(s: S, plan: &Plan, io: &TileIo<'_, '_>, vals: &mut [Val], tiles: &mut [f32], out: &mut [f32]) {
    let tile = io.tile;
    for &Step { value, op, a, b } in &plan.steps {
        let dst_slot = match plan.defs[value] {
            ValueDef::Computed(Some(d)) => Some(d),
            _ => None,
        };
        let (va, vb) = (vals[a], vals[b]);
        let result = match dst_slot {
            Some(d) => {
                let (lo, rest) = tiles.split_at_mut(d * tile);
                let (dst, hi) = rest.split_at_mut(tile);
                let (sa, sb) = (io.src(va, lo, hi, d), io.src(vb, lo, hi, d));
                apply(s, op, sa, sb, &mut dst[..io.len]).map_or(Val::Slot(d), Val::Scalar)
            }
            None => {
                let (sa, sb) = (io.src(va, tiles, &[], usize::MAX), io.src(vb, tiles, &[], usize::MAX));
                if let Some(x) = apply(s, op, sa, sb, out) {
                    out.fill(x);
                }
                Val::Scalar(f32::NAN)
            }
        };
        vals[value] = result;
    }
    // A program whose output is an input or a constant has no step writing `out`.
    if !matches!(plan.defs[plan.output], ValueDef::Computed(_)) {
        match io.src(vals[plan.output], &[], &[], usize::MAX) {
            Src::Vec(v) => out.copy_from_slice(v),
            Src::Scalar(x) => out.fill(x),
        }
    }
}

/// `f(x)` over a slice into `dst` (`dst.len()` elements), full vectors then a
/// partial tail.
macro_rules! map1 {
    ($s:ident, $a:expr, $dst:expr, |$x:ident| $body:expr) => {{
        let dst: &mut [f32] = $dst;
        let n = dst.len();
        let a: &[f32] = &$a[..n];
        let l = S::LANES;
        let full = n - n % l;
        for (xa, d) in a[..full].chunks_exact(l).zip(dst[..full].chunks_exact_mut(l)) {
            let $x = $s.load(xa);
            $s.store($body, d);
        }
        if full < n {
            let $x = $s.load_partial(&a[full..]);
            $s.store_partial($body, &mut dst[full..]);
        }
    }};
}

/// `f(x, y)` over two operands (each a slice or a scalar) into `dst`.
macro_rules! map2 {
    ($s:ident, $a:expr, $b:expr, $dst:expr, |$x:ident, $y:ident| $body:expr) => {{
        let dst: &mut [f32] = $dst;
        match ($a, $b) {
            (Src::Vec(a), Src::Vec(b)) => {
                let n = dst.len();
                let (a, b) = (&a[..n], &b[..n]);
                let l = S::LANES;
                let full = n - n % l;
                let ab = a[..full].chunks_exact(l).zip(b[..full].chunks_exact(l));
                for ((xa, xb), d) in ab.zip(dst[..full].chunks_exact_mut(l)) {
                    let ($x, $y) = ($s.load(xa), $s.load(xb));
                    $s.store($body, d);
                }
                if full < n {
                    let ($x, $y) = ($s.load_partial(&a[full..]), $s.load_partial(&b[full..]));
                    $s.store_partial($body, &mut dst[full..]);
                }
            }
            (Src::Vec(a), Src::Scalar(b)) => {
                let $y = $s.splat(b);
                map1!($s, a, dst, |$x| $body)
            }
            (Src::Scalar(a), Src::Vec(b)) => {
                let $x = $s.splat(a);
                map1!($s, b, dst, |$y| $body)
            }
            (Src::Scalar(a), Src::Scalar(b)) => {
                let ($x, $y) = ($s.splat(a), $s.splat(b));
                dst.fill($s.first($body));
            }
        }
    }};
}

/// Runs one step into `dst`, or returns its value if every operand is a scalar
/// (then `dst` is untouched).
#[inline(always)]
fn apply<S: Simd>(s: S, op: Op, a: Src<'_>, b: Src<'_>, dst: &mut [f32]) -> Option<f32> {
    match (op, a, b) {
        (Op::Unary(u), Src::Scalar(x), _) => Some(s.first(unary_v(s, u, s.splat(x)))),
        (Op::Binary(o), Src::Scalar(x), Src::Scalar(y)) => Some(s.first(binary_v(s, o, s.splat(x), s.splat(y)))),
        (Op::Unary(u), Src::Vec(a), _) => {
            unary(s, u, a, dst);
            None
        }
        (Op::Binary(o), a, b) => {
            binary(s, o, a, b, dst);
            None
        }
    }
}

#[inline(always)]
fn unary<S: Simd>(s: S, op: UOp, a: &[f32], dst: &mut [f32]) {
    use UnaryOp as U;
    let one = s.splat(1.0);
    match op {
        UOp::U(U::Relu) => map1!(s, a, dst, |x| s.relu(x)),
        UOp::U(U::Sigmoid) => map1!(s, a, dst, |x| s.sigmoid(x)),
        UOp::U(U::Tanh) => map1!(s, a, dst, |x| s.tanh(x)),
        UOp::U(U::Gelu) => map1!(s, a, dst, |x| s.gelu(x)),
        UOp::U(U::Exp) => map1!(s, a, dst, |x| s.exp(x)),
        UOp::U(U::Log) => map1!(s, a, dst, |x| s.log(x)),
        UOp::U(U::Sqrt) => map1!(s, a, dst, |x| s.sqrt(x)),
        UOp::U(U::Neg) => map1!(s, a, dst, |x| s.neg(x)),
        UOp::U(U::Abs) => map1!(s, a, dst, |x| s.abs(x)),
        UOp::U(U::Erf) => map1!(s, a, dst, |x| s.erf(x)),
        UOp::U(U::Recip) => map1!(s, a, dst, |x| s.div(one, x)),
        UOp::U(U::Identity) => dst.copy_from_slice(&a[..dst.len()]),
        UOp::U(U::RoundBf16) => map1!(s, a, dst, |x| s.round_bf16(x)),
        UOp::Square => map1!(s, a, dst, |x| s.mul(x, x)),
        UOp::Cube => map1!(s, a, dst, |x| s.mul(s.mul(x, x), x)),
        UOp::Rsqrt => map1!(s, a, dst, |x| s.div(one, s.sqrt(x))),
        UOp::PowConst(c) => map1!(s, a, dst, |x| s.map_lanes(x, |v| v.powf(c))),
    }
}

#[inline(always)]
fn binary<S: Simd>(s: S, op: BinaryOp, a: Src<'_>, b: Src<'_>, dst: &mut [f32]) {
    match op {
        BinaryOp::Add => map2!(s, a, b, dst, |x, y| s.add(x, y)),
        BinaryOp::Sub => map2!(s, a, b, dst, |x, y| s.sub(x, y)),
        BinaryOp::Mul => map2!(s, a, b, dst, |x, y| s.mul(x, y)),
        BinaryOp::Div => map2!(s, a, b, dst, |x, y| s.div(x, y)),
        BinaryOp::Max => map2!(s, a, b, dst, |x, y| s.max(x, y)),
        BinaryOp::Min => map2!(s, a, b, dst, |x, y| s.min(x, y)),
        BinaryOp::Pow => map2!(s, a, b, dst, |x, y| s.zip_lanes(x, y, f32::powf)),
    }
}

/// One vector of a unary op (used for scalar operands, through lane 0).
#[inline(always)]
fn unary_v<S: Simd>(s: S, op: UOp, x: S::V) -> S::V {
    use UnaryOp as U;
    let one = s.splat(1.0);
    match op {
        UOp::U(U::Relu) => s.relu(x),
        UOp::U(U::Sigmoid) => s.sigmoid(x),
        UOp::U(U::Tanh) => s.tanh(x),
        UOp::U(U::Gelu) => s.gelu(x),
        UOp::U(U::Exp) => s.exp(x),
        UOp::U(U::Log) => s.log(x),
        UOp::U(U::Sqrt) => s.sqrt(x),
        UOp::U(U::Neg) => s.neg(x),
        UOp::U(U::Abs) => s.abs(x),
        UOp::U(U::Erf) => s.erf(x),
        UOp::U(U::Recip) => s.div(one, x),
        UOp::U(U::Identity) => x,
        UOp::U(U::RoundBf16) => s.round_bf16(x),
        UOp::Square => s.mul(x, x),
        UOp::Cube => s.mul(s.mul(x, x), x),
        UOp::Rsqrt => s.div(one, s.sqrt(x)),
        UOp::PowConst(c) => s.map_lanes(x, |v| v.powf(c)),
    }
}

/// One vector of a binary op (used for scalar operands, through lane 0).
#[inline(always)]
fn binary_v<S: Simd>(s: S, op: BinaryOp, x: S::V, y: S::V) -> S::V {
    match op {
        BinaryOp::Add => s.add(x, y),
        BinaryOp::Sub => s.sub(x, y),
        BinaryOp::Mul => s.mul(x, y),
        BinaryOp::Div => s.div(x, y),
        BinaryOp::Max => s.max(x, y),
        BinaryOp::Min => s.min(x, y),
        BinaryOp::Pow => s.zip_lanes(x, y, f32::powf),
    }
}
