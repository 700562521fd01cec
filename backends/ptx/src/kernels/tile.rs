//! The shared tiling core of the GEMM and convolution kernels: a
//! shared-memory tiled `C = A · B` over an `M × N × K` problem whose operands
//! are read through caller-supplied closures ("load A(m, k)", "load B(k, n)")
//! and whose results go to a caller-supplied "store C(m, n)" closure (the
//! epilogue, bias and the output address live there). The GEMM kernel reads
//! strided views; the convolution computes input coordinates in its B (NCHW)
//! or A (NHWC) loader (implicit GEMM).
//!
//! # Blocks and tiles
//!
//! Every block has [`THREADS`] = 256 threads and computes one
//! [`TILE_M`] × [`TILE_N`] = 64 × 64 tile of `C`. The tiles of one problem are
//! numbered row-major (`%ctaid.x = tile_row · tiles_n + tile_col`, so
//! consecutive blocks share the same rows of `A`); `%ctaid.y` is unused and
//! `%ctaid.z` is left to the caller (batch index, convolution group). The
//! reduction runs over `K` in steps of 16 (`f32`) or 32 (`bf16`); each step
//! the block stages a slice of A (64 × BK) and of B (BK × 64) in shared memory.
//! Every bound is a compile-time constant: loads outside `M`, `N` or `K` give
//! 0 (the loaders are predicated), stores outside `M × N` are skipped, so any
//! size works (1-sized dims, `K` not a multiple of the step, `K = 0`).
//!
//! # Loading (both arithmetics)
//!
//! Each thread loads four elements (f32) or four pairs along `k` (bf16) of each
//! operand per step: its `k` slot `q` and its row slot `r` (a row of A is an
//! `m`, a "row" of B an `n`) come from its thread index `tid`, rows `r + 16i`
//! for `i < 4`. When the operand is contiguous along `k` ("k-fast", e.g. a
//! row-major A, a transposed B) `q = tid mod 16, r = tid / 16`, else
//! `q = tid / 16, r = tid mod 16`, so that neighbouring threads read
//! neighbouring addresses. The next step's values are fetched into registers
//! before the current step's products (software prefetch): one block barrier
//! after the shared stores, one after the products.
//!
//! # `f32` arithmetic (`fma.rn.f32`)
//!
//! Shared memory: `As[k][m]` and `Bs[k][n]`, 16 rows of 65 words each (one word
//! of padding against bank conflicts on the stores): 2 × 4160 = 8320 bytes.
//! Thread `tid` owns outputs `(ty + 16i, tx + 16j)`, `i, j < 4`, with
//! `tx = tid mod 16`, `ty = tid / 16` (a 4 × 4 register tile whose rows and
//! columns are 16 apart: the 16 threads of a half-warp read 16 consecutive
//! words of `Bs` and one broadcast word of `As`). Per `k`: 4 + 4 shared loads
//! and 16 FMAs.
//!
//! # `bf16` arithmetic (tensor cores)
//!
//! `mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32`. The loaders' `f32`
//! values are rounded to bf16 (ties to even) and packed two along `k` by
//! `cvt.rn.bf16x2.f32` into `As[m][k/2]` and `Bs[n][k/2]`: 64 rows of 16 pair
//! words plus 4 of padding (the fragment loads of the 8 row groups of a warp
//! then hit distinct banks): 2 × 5120 = 10240 bytes. The 8 warps form a 2 × 4
//! grid: warp `w` owns rows `32·(w mod 2) ..+32` and columns `16·(w / 2) ..+16`
//! of the tile, i.e. 2 × 2 `m16n8` fragments (16 `f32` accumulators per
//! thread); each 32-deep step is two `k16` sub-steps of 4 `mma`s. The
//! accumulator layout is the one in `SUBSET.md`.

use crate::builder::{F32, Kb, Pred, R32, R64};
use crate::index::address;
use eqopt_kir::ElemType;

/// Rows of `C` per block.
pub const TILE_M: usize = 64;
/// Columns of `C` per block.
pub const TILE_N: usize = 64;
/// Threads per block.
pub const THREADS: u32 = 256;
/// `k` per step, `f32` arithmetic.
const STEP_F32: usize = 16;
/// `k` per step, `bf16` arithmetic.
const STEP_BF16: usize = 32;
/// Words per `k` row of the `f32` tiles (64 + 1 padding).
const PITCH_F32: usize = TILE_M + 1;
/// Words per row of the `bf16` pair tiles (16 pairs + 4 padding).
const PITCH_BF16: usize = STEP_BF16 / 2 + 4;
/// Rows (or pairs) each thread loads per operand and step.
const SLOTS: usize = 4;

/// The arithmetic of the products.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arith {
    /// `f32` products and sums (`fma.rn.f32`).
    F32,
    /// Both operands rounded to bf16, products exact, sums in `f32` (`mma.sync`).
    Bf16,
}

/// "Load A(m, k)" (called with `m, k, valid`) or "load B(k, n)" (called with
/// `k, n, valid`): returns the element, or 0 where `valid` is false (the
/// closure must not touch memory then).
pub type LoadFn<'a> = dyn Fn(&mut Kb, R32, R32, Pred) -> F32 + 'a;
/// "Store C(m, n)": called with `m, n` inside the problem and the accumulator.
pub type StoreFn<'a> = dyn Fn(&mut Kb, R32, R32, F32) + 'a;

/// One tiled product `C (M × N) = A (M × K) · B (K × N)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tiling {
    /// Rows of `C`.
    pub m: usize,
    /// Columns of `C`.
    pub n: usize,
    /// The reduction length.
    pub k: usize,
    /// The arithmetic.
    pub arith: Arith,
    /// A is contiguous (or cheapest to walk) along `k` rather than `m`.
    pub a_k_fast: bool,
    /// B is contiguous along `k` rather than `n`.
    pub b_k_fast: bool,
}

/// The per-thread load slots of one operand.
struct Side {
    /// `k` of the thread's first element in the step (`q`, or `2q` for pairs).
    k_in_step: R32,
    /// Absolute row (A: `m`, B: `n`) of each slot.
    rows: [R32; SLOTS],
    /// Row inside the problem.
    row_ok: [Pred; SLOTS],
    /// Shared address each slot is stored at.
    smem: [R32; SLOTS],
}

impl Tiling {
    /// Blocks the grid needs along `x`.
    pub fn tiles(&self) -> usize {
        self.m.div_ceil(TILE_M) * self.n.div_ceil(TILE_N)
    }

    fn step(&self) -> usize {
        match self.arith {
            Arith::F32 => STEP_F32,
            Arith::Bf16 => STEP_BF16,
        }
    }

    /// Emits the whole tiled product for the block `%ctaid.x` names.
    pub fn emit(&self, kb: &mut Kb, load_a: &LoadFn<'_>, load_b: &LoadFn<'_>, store: &StoreFn<'_>) {
        let tiles_n = self.n.div_ceil(TILE_N);
        kb.comment(&format!(
            "tiled product {}x{}x{} ({:?}), {TILE_M}x{TILE_N} tiles, {} tiles along n",
            self.m, self.n, self.k, self.arith, tiles_n
        ));
        let cta = kb.special("%ctaid.x");
        let m0 = kb.r32();
        let n0 = kb.r32();
        kb.op(&format!("div.u32 {m0}, {cta}, {tiles_n}"));
        kb.op(&format!("rem.u32 {n0}, {cta}, {tiles_n}"));
        kb.op(&format!("mul.lo.u32 {m0}, {m0}, {TILE_M}"));
        kb.op(&format!("mul.lo.u32 {n0}, {n0}, {TILE_N}"));
        let tid = kb.special("%tid.x");
        let (pitch, words) = match self.arith {
            Arith::F32 => (PITCH_F32, STEP_F32 * PITCH_F32),
            Arith::Bf16 => (PITCH_BF16, TILE_M * PITCH_BF16),
        };
        let a_smem = kb.shared(words * 4);
        let b_smem = kb.shared(words * 4);
        let a = self.side(kb, tid, m0, self.m, self.a_k_fast, a_smem, pitch);
        let b = self.side(kb, tid, n0, self.n, self.b_k_fast, b_smem, pitch);
        let load_bt = |kb: &mut Kb, row: R32, k: R32, valid: Pred| load_b(kb, k, row, valid);
        let out = match self.arith {
            Arith::F32 => self.emit_f32(kb, tid, (&a, load_a), (&b, &load_bt), a_smem, b_smem),
            Arith::Bf16 => self.emit_bf16(kb, tid, (&a, load_a), (&b, &load_bt), a_smem, b_smem),
        };
        kb.comment("store the tile");
        for (row, col, acc) in out {
            let r = kb.r32();
            let c = kb.r32();
            kb.op(&format!("add.u32 {r}, {m0}, {row}"));
            kb.op(&format!("add.u32 {c}, {n0}, {col}"));
            let skip = kb.label("skip_store");
            let p = kb.pred();
            let q = kb.pred();
            kb.op(&format!("setp.ge.u32 {p}, {r}, {}", self.m));
            kb.op(&format!("setp.ge.u32 {q}, {c}, {}", self.n));
            kb.op(&format!("or.pred {p}, {p}, {q}"));
            kb.op_if(p, false, &format!("bra {skip}"));
            store(kb, r, c, acc);
            kb.place(&skip);
        }
    }

    /// The load slots of one operand whose rows start at `row0` and number `rows`.
    #[allow(clippy::too_many_arguments)]
    fn side(&self, kb: &mut Kb, tid: R32, row0: R32, rows: usize, k_fast: bool, smem: R32, pitch: usize) -> Side {
        let q = kb.r32();
        let r = kb.r32();
        let (low, high) = if k_fast { (q, r) } else { (r, q) };
        kb.op(&format!("and.b32 {low}, {tid}, 15"));
        kb.op(&format!("shr.u32 {high}, {tid}, 4"));
        let k_in_step = match self.arith {
            Arith::F32 => q,
            Arith::Bf16 => {
                let k2 = kb.r32();
                kb.op(&format!("shl.b32 {k2}, {q}, 1"));
                k2
            }
        };
        // Shared word of slot 0: f32 `[q][r]`, bf16 `[r][q]`.
        let word = kb.r32();
        match self.arith {
            Arith::F32 => kb.op(&format!("mad.lo.u32 {word}, {q}, {pitch}, {r}")),
            Arith::Bf16 => kb.op(&format!("mad.lo.u32 {word}, {r}, {pitch}, {q}")),
        }
        let base = kb.r32();
        kb.op(&format!("mad.lo.u32 {base}, {word}, 4, {smem}"));
        let slot_words = match self.arith {
            Arith::F32 => 16,
            Arith::Bf16 => 16 * pitch,
        };
        let mut side_rows = [r; SLOTS];
        let mut row_ok = [Pred(0); SLOTS];
        let mut addrs = [r; SLOTS];
        for i in 0..SLOTS {
            let row = kb.r32();
            kb.op(&format!("add.u32 {row}, {row0}, {r}"));
            if i > 0 {
                kb.op(&format!("add.u32 {row}, {row}, {}", 16 * i));
            }
            let ok = kb.pred();
            kb.op(&format!("setp.lt.u32 {ok}, {row}, {rows}"));
            let at = kb.r32();
            kb.op(&format!("add.u32 {at}, {base}, {}", 4 * slot_words * i));
            side_rows[i] = row;
            row_ok[i] = ok;
            addrs[i] = at;
        }
        Side {
            k_in_step,
            rows: side_rows,
            row_ok,
            smem: addrs,
        }
    }

    /// Loads one step of an operand (its slots at `k0`) into fresh registers,
    /// as the 32-bit words stored to shared memory (an `f32`'s bits, or a
    /// packed bf16 pair).
    fn fetch(&self, kb: &mut Kb, side: &Side, k0: R32, load: &LoadFn<'_>) -> [R32; SLOTS] {
        let kk = kb.r32();
        kb.op(&format!("add.u32 {kk}, {k0}, {}", side.k_in_step));
        let kok = kb.pred();
        kb.op(&format!("setp.lt.u32 {kok}, {kk}, {}", self.k));
        let pair = (self.arith == Arith::Bf16).then(|| {
            let k1 = kb.r32();
            kb.op(&format!("add.u32 {k1}, {kk}, 1"));
            let ok1 = kb.pred();
            kb.op(&format!("setp.lt.u32 {ok1}, {k1}, {}", self.k));
            (k1, ok1)
        });
        let mut words = [kk; SLOTS];
        for (w, (&row, &row_ok)) in words.iter_mut().zip(side.rows.iter().zip(&side.row_ok)) {
            let valid = kb.pred();
            kb.op(&format!("and.pred {valid}, {row_ok}, {kok}"));
            let lo = load(kb, row, kk, valid);
            *w = kb.r32();
            match pair {
                None => kb.op(&format!("mov.b32 {w}, {lo}")),
                Some((k1, ok1)) => {
                    let v1 = kb.pred();
                    kb.op(&format!("and.pred {v1}, {row_ok}, {ok1}"));
                    let hi = load(kb, row, k1, v1);
                    kb.op(&format!("cvt.rn.bf16x2.f32 {w}, {hi}, {lo}"));
                }
            }
        }
        words
    }

    /// The step loop shared by both arithmetics: stage, barrier, prefetch the
    /// next step, `products`, barrier.
    fn step_loop(&self, kb: &mut Kb, a: (&Side, &LoadFn<'_>), b: (&Side, &LoadFn<'_>), products: &mut dyn FnMut(&mut Kb)) {
        if self.k == 0 {
            return;
        }
        let k0 = kb.imm32(0);
        let staged: Vec<R32> = (0..2 * SLOTS).map(|_| kb.r32()).collect();
        let fetch_both = |kb: &mut Kb| {
            let wa = self.fetch(kb, a.0, k0, a.1);
            let wb = self.fetch(kb, b.0, k0, b.1);
            for (s, w) in staged.iter().zip(wa.iter().chain(&wb)) {
                kb.op(&format!("mov.b32 {s}, {w}"));
            }
        };
        fetch_both(kb);
        let top = kb.label("kstep");
        let skip = kb.label("no_prefetch");
        kb.place(&top);
        for (s, at) in staged.iter().zip(a.0.smem.iter().chain(&b.0.smem)) {
            kb.op(&format!("st.shared.b32 [{at}], {s}"));
        }
        kb.op("bar.sync 0");
        kb.op(&format!("add.u32 {k0}, {k0}, {}", self.step()));
        let done = kb.pred();
        kb.op(&format!("setp.ge.u32 {done}, {k0}, {}", self.k));
        kb.op_if(done, false, &format!("bra {skip}"));
        fetch_both(kb);
        kb.place(&skip);
        products(kb);
        kb.op("bar.sync 0");
        kb.op_if(done, true, &format!("bra {top}"));
    }

    /// The `f32` product: returns each thread's (row, column, accumulator) in the tile.
    fn emit_f32(
        &self,
        kb: &mut Kb,
        tid: R32,
        a: (&Side, &LoadFn<'_>),
        b: (&Side, &LoadFn<'_>),
        a_smem: R32,
        b_smem: R32,
    ) -> Vec<(R32, R32, F32)> {
        let tx = kb.r32();
        let ty = kb.r32();
        kb.op(&format!("and.b32 {tx}, {tid}, 15"));
        kb.op(&format!("shr.u32 {ty}, {tid}, 4"));
        let a_rd = kb.r32();
        let b_rd = kb.r32();
        kb.op(&format!("mad.lo.u32 {a_rd}, {ty}, 4, {a_smem}"));
        kb.op(&format!("mad.lo.u32 {b_rd}, {tx}, 4, {b_smem}"));
        let acc: Vec<F32> = (0..16).map(|_| kb.fconst(0.0)).collect();
        self.step_loop(kb, a, b, &mut |kb: &mut Kb| {
            for kk in 0..STEP_F32 {
                let load = |kb: &mut Kb, base: R32, i: usize| {
                    let v = kb.f32();
                    kb.op(&format!("ld.shared.f32 {v}, [{base}+{}]", 4 * (kk * PITCH_F32 + 16 * i)));
                    v
                };
                let av: Vec<F32> = (0..4).map(|i| load(kb, a_rd, i)).collect();
                let bv: Vec<F32> = (0..4).map(|j| load(kb, b_rd, j)).collect();
                for i in 0..4 {
                    for j in 0..4 {
                        let c = acc[4 * i + j];
                        kb.op(&format!("fma.rn.f32 {c}, {}, {}, {c}", av[i], bv[j]));
                    }
                }
            }
        });
        let mut out = Vec::with_capacity(16);
        for i in 0..4 {
            for j in 0..4 {
                let row = kb.r32();
                let col = kb.r32();
                kb.op(&format!("add.u32 {row}, {ty}, {}", 16 * i));
                kb.op(&format!("add.u32 {col}, {tx}, {}", 16 * j));
                out.push((row, col, acc[4 * i + j]));
            }
        }
        out
    }

    /// The tensor-core product: returns each thread's (row, column, accumulator) in the tile.
    fn emit_bf16(
        &self,
        kb: &mut Kb,
        tid: R32,
        a: (&Side, &LoadFn<'_>),
        b: (&Side, &LoadFn<'_>),
        a_smem: R32,
        b_smem: R32,
    ) -> Vec<(R32, R32, F32)> {
        let (lane, g, t, wm, wn) = (kb.r32(), kb.r32(), kb.r32(), kb.r32(), kb.r32());
        kb.op(&format!("and.b32 {lane}, {tid}, 31"));
        kb.op(&format!("shr.u32 {g}, {lane}, 2"));
        kb.op(&format!("and.b32 {t}, {lane}, 3"));
        kb.op(&format!("shr.u32 {wm}, {tid}, 5"));
        kb.op(&format!("shr.u32 {wn}, {wm}, 1"));
        kb.op(&format!("and.b32 {wm}, {wm}, 1"));
        // Fragment row bases: rows 32·wm + g (A), columns 16·wn + g (B).
        let (ar, bc) = (kb.r32(), kb.r32());
        kb.op(&format!("mad.lo.u32 {ar}, {wm}, 32, {g}"));
        kb.op(&format!("mad.lo.u32 {bc}, {wn}, 16, {g}"));
        let (a_rd, b_rd) = (kb.r32(), kb.r32());
        for (rd, row, smem) in [(a_rd, ar, a_smem), (b_rd, bc, b_smem)] {
            kb.op(&format!("mad.lo.u32 {rd}, {row}, {PITCH_BF16}, {t}"));
            kb.op(&format!("mad.lo.u32 {rd}, {rd}, 4, {smem}"));
        }
        // acc[(mi·2 + ni)·4 + e]
        let acc: Vec<F32> = (0..16).map(|_| kb.fconst(0.0)).collect();
        self.step_loop(kb, a, b, &mut |kb: &mut Kb| {
            for ks in 0..STEP_BF16 / 16 {
                let word = |kb: &mut Kb, base: R32, row: usize, pair: usize| {
                    let v = kb.r32();
                    kb.op(&format!("ld.shared.b32 {v}, [{base}+{}]", 4 * (row * PITCH_BF16 + ks * 8 + pair)));
                    v
                };
                let af: Vec<[R32; 4]> = (0..2)
                    .map(|mi| [(0, 0), (8, 0), (0, 4), (8, 4)].map(|(r, p)| word(kb, a_rd, 16 * mi + r, p)))
                    .collect();
                let bf: Vec<[R32; 2]> = (0..2).map(|ni| [0, 4].map(|p| word(kb, b_rd, 8 * ni, p))).collect();
                for mi in 0..2 {
                    for ni in 0..2 {
                        let c = &acc[(mi * 2 + ni) * 4..][..4];
                        let cs = format!("{{{}, {}, {}, {}}}", c[0], c[1], c[2], c[3]);
                        let a4 = &af[mi];
                        let b2 = &bf[ni];
                        kb.op(&format!(
                            "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {cs}, {{{}, {}, {}, {}}}, {{{}, {}}}, {cs}",
                            a4[0], a4[1], a4[2], a4[3], b2[0], b2[1]
                        ));
                    }
                }
            }
        });
        let mut out = Vec::with_capacity(16);
        for mi in 0..2 {
            for ni in 0..2 {
                for e in 0..4 {
                    let row = kb.r32();
                    let col = kb.r32();
                    kb.op(&format!("add.u32 {row}, {ar}, {}", 16 * mi + 8 * (e >> 1)));
                    kb.op(&format!("mad.lo.u32 {col}, {t}, 2, {}", 8 * ni + (e & 1)));
                    kb.op(&format!("mad.lo.u32 {col}, {wn}, 16, {col}"));
                    out.push((row, col, acc[(mi * 2 + ni) * 4 + e]));
                }
            }
        }
        out
    }
}

/// Element `offset` of a float buffer (`f32`, or `f16`/`bf16` widened
/// exactly) at `base` where `valid`, else 0 (memory untouched).
pub fn load_guarded(kb: &mut Kb, base: R64, elem: ElemType, offset: R32, valid: Pred) -> F32 {
    let d = kb.f32();
    match elem {
        ElemType::F16 => {
            let a = address(kb, base, offset, 2);
            let h = kb.h16();
            let w = kb.f32();
            kb.op_if(valid, false, &format!("ld.global.b16 {h}, [{a}]"));
            kb.op(&format!("cvt.f32.f16 {w}, {h}"));
            kb.op(&format!("selp.f32 {d}, {w}, 0f00000000, {valid}"));
        }
        ElemType::BF16 => {
            let a = address(kb, base, offset, 2);
            let r = kb.r32();
            kb.op(&format!("mov.u32 {r}, 0"));
            kb.op_if(valid, false, &format!("ld.global.u16 {r}, [{a}]"));
            kb.op(&format!("shl.b32 {r}, {r}, 16"));
            kb.op(&format!("mov.b32 {d}, {r}"));
        }
        _ => {
            let a = address(kb, base, offset, 4);
            kb.op(&format!("mov.f32 {d}, 0f00000000"));
            kb.op_if(valid, false, &format!("ld.global.f32 {d}, [{a}]"));
        }
    }
    d
}
