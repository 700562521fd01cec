//! The executor: runs an [`eqopt_kir::Program`] with this crate's kernels.
//!
//! Intermediate buffers live in one arena at the element offsets the caller's
//! memory plan gives ([`Executable::new`]); inputs, outputs and constants have
//! their own storage. Kernels run in program order on rayon's current pool (run
//! [`Executable::run`] inside `pool.install` to size it). Operands that a kernel
//! needs dense (conv, pooling, softmax, layer norm, gather) and are not are
//! copied to scratch first.
//!
//! Constant `f16`/`bf16` buffers (GEMM `b` operands and convolution weights) are
//! handed to the kernels as [`WeightRef::F16`]/[`WeightRef::BF16`] and converted
//! to `f32` inside them; quantized constants (GEMM `b` operands) as
//! [`WeightRef::Int8`]/[`WeightRef::Int4`], dequantized while the GEMM packs
//! them; every other operand is `f32` (or `i64` gather indices).
//!
//! Epilogues run on each output tile inside the GEMM or convolution that
//! produces it, while the tile is in cache ([`epilogue`]); an epilogue whose
//! operands do not flatten to the kernel's output matrix runs as a second pass.

mod concurrent;
mod epilogue;
mod ops;

use std::sync::{Arc, Mutex};

use crate::KernelError;
use crate::elementwise::EwProgram;
use crate::gemm::WeightRef;
use crate::quant::{QuantInt4Ref, QuantInt8Ref};
use eqopt_kir::{BufferKind, ConstData, ElemType, Expr, Kernel, Program};

/// Caller-supplied tensor data for a program input.
#[derive(Clone, Copy, Debug)]
pub enum InputData<'a> {
    /// f32 elements.
    F32(&'a [f32]),
    /// i64 elements.
    I64(&'a [i64]),
}

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// The inputs do not match the program's.
    #[error("input {index} (\"{name}\"): expected {expected}, found {found}")]
    Input {
        /// Position among the program's inputs.
        index: usize,
        /// The input's name.
        name: String,
        /// What the program needs.
        expected: String,
        /// What was given.
        found: String,
    },
    /// A kernel refused its arguments.
    #[error("kernel {kernel} ({name}): {source}")]
    Kernel {
        /// Kernel index.
        kernel: usize,
        /// Kernel name.
        name: &'static str,
        /// The kernel's error.
        source: KernelError,
    },
    /// A concurrent run's streams or plan do not fit the program
    /// ([`Executable::run_streams`]).
    #[error("concurrent run: {problem}")]
    Streams {
        /// What is wrong.
        problem: &'static str,
    },
    /// The memory plan does not fit the program.
    #[error("memory plan: buffer {buffer} (\"{name}\") {problem}")]
    Plan {
        /// Buffer id.
        buffer: usize,
        /// Buffer name.
        name: String,
        /// What is wrong.
        problem: &'static str,
    },
}

/// One run's storage: the arena, the outputs, and the buffer table pointing
/// into them (the arena and outputs must outlive the table's use).
type RunStorage = (Vec<f32>, Vec<Vec<f32>>, Mem);

/// A program ready to run: its elementwise programs compiled and its arena sized.
pub struct Executable {
    program: Program,
    /// Element offset in the arena of each intermediate buffer (`None` for others).
    offsets: Vec<Option<usize>>,
    arena_len: usize,
    /// The compiled expression of each elementwise kernel or epilogue, by kernel.
    exprs: Vec<Option<EwProgram>>,
    /// Buffer names, for error messages (shared with every run's [`Mem`]).
    names: Arc<[String]>,
    /// The arena of the last finished run, taken by the next one: a fresh
    /// arena costs a page fault per 4 KiB touched, every run (VGG-19's is
    /// 24.5 MiB, some 6000 pages). A run that finds it taken (runs at the same
    /// time) allocates its own.
    spare_arena: Mutex<Vec<f32>>,
}

fn compile_expr(e: &Expr) -> Result<EwProgram, KernelError> {
    EwProgram::new(e.num_inputs, e.instrs.clone())
}

/// Storage of one buffer during a run: a base pointer and a length.
#[derive(Clone, Copy)]
enum Slot {
    F32(*mut f32, usize),
    I64(*const i64, usize),
    F16(*const half::f16, usize),
    BF16(*const half::bf16, usize),
    /// An int8 matrix: data (`k·n`), scales (`n`), `k`, `n`.
    Int8(*const i8, *const f32, usize, usize),
    /// An int4 matrix: data, its length, scales, their length, `k`, `n`, group.
    Int4(*const u8, usize, *const f32, usize, usize, usize, usize),
}

// SAFETY: slots are only dereferenced by `Executable::run`, which hands each
// kernel disjoint regions (see `Mem`); the pointers are plain data otherwise.
unsafe impl Send for Slot {}
unsafe impl Sync for Slot {}

/// The buffers of one run. Invariant (the memory plan's and the lowering's): while
/// a kernel runs, its output region overlaps none of its input regions, so handing
/// out `&mut` to the output and `&` to the inputs at once never aliases. The one
/// exception is an elementwise kernel the plan runs in place: an input buffer that
/// is exactly the output's region, which the kernel never borrows (it reads those
/// values from a copy of each output block; see `ops::run_in_place`).
pub(crate) struct Mem {
    slots: Vec<Slot>,
    names: Arc<[String]>,
}

impl Mem {
    /// The f32 data of buffer `b`.
    pub(crate) fn f32(&self, b: usize) -> &[f32] {
        match self.slots[b] {
            // SAFETY: the pointer and length describe a live allocation owned by `run`.
            Slot::F32(p, n) => unsafe { std::slice::from_raw_parts(p, n) },
            _ => &[],
        }
    }

    /// The data of buffer `b` as a GEMM or convolution weight operand, in its
    /// stored precision (`f32`, `f16` or `bf16`).
    pub(crate) fn weight(&self, b: usize) -> WeightRef<'_> {
        match self.slots[b] {
            // SAFETY: as for `f32`; constants are never written.
            Slot::F16(p, n) => WeightRef::F16(unsafe { std::slice::from_raw_parts(p, n) }),
            // SAFETY: as above.
            Slot::BF16(p, n) => WeightRef::BF16(unsafe { std::slice::from_raw_parts(p, n) }),
            Slot::Int8(d, s, k, n) => {
                // SAFETY: as above; the lengths are the constant's own (`k·n`
                // values and `n` scales, checked by `Program::validate`).
                let (data, scales) = unsafe { (std::slice::from_raw_parts(d, k * n), std::slice::from_raw_parts(s, n)) };
                // Parts that disagree (impossible after validation) give an empty
                // weight, which the GEMM rejects with a length error.
                QuantInt8Ref::new(data, scales, k, n).map_or(WeightRef::F32(&[]), WeightRef::Int8)
            }
            Slot::Int4(d, dl, s, sl, k, n, g) => {
                // SAFETY: as above, with the stored lengths.
                let (data, scales) = unsafe { (std::slice::from_raw_parts(d, dl), std::slice::from_raw_parts(s, sl)) };
                QuantInt4Ref::new(data, scales, k, n, g).map_or(WeightRef::F32(&[]), WeightRef::Int4)
            }
            _ => WeightRef::F32(self.f32(b)),
        }
    }

    /// The i64 data of buffer `b`.
    pub(crate) fn i64(&self, b: usize) -> &[i64] {
        match self.slots[b] {
            // SAFETY: as for `f32`.
            Slot::I64(p, n) => unsafe { std::slice::from_raw_parts(p, n) },
            _ => &[],
        }
    }

    /// The f32 data of buffer `b`, writable. The caller (a kernel) holds no other
    /// reference into this buffer (module invariant).
    #[allow(clippy::mut_from_ref)]
    pub(crate) fn f32_mut(&self, b: usize) -> &mut [f32] {
        match self.slots[b] {
            // SAFETY: see the struct invariant: no live shared reference overlaps it.
            Slot::F32(p, n) => unsafe { std::slice::from_raw_parts_mut(p, n) },
            _ => &mut [],
        }
    }

    /// True when buffer `b`'s storage overlaps elements `range` of buffer
    /// `other` (an elementwise kernel the memory plan runs in place).
    pub(crate) fn overlaps(&self, b: usize, other: usize, range: std::ops::Range<usize>) -> bool {
        let span = |slot: Slot| match slot {
            Slot::F32(p, n) => (p as usize, n * 4),
            Slot::I64(p, n) => (p as usize, n * 8),
            Slot::F16(p, n) => (p as usize, n * 2),
            Slot::BF16(p, n) => (p as usize, n * 2),
            Slot::Int8(p, _, k, n) => (p as usize, k * n),
            Slot::Int4(p, len, ..) => (p as usize, len),
        };
        let ((p, n), (q, _)) = (span(self.slots[b]), span(self.slots[other]));
        let (lo, hi) = (q + range.start * 4, q + range.end * 4);
        n > 0 && hi > lo && p < hi && lo < p + n
    }

    /// True when element `offset` of buffer `b` and element `other_offset` of
    /// buffer `other` are the same memory.
    pub(crate) fn same_address(&self, b: usize, offset: usize, other: usize, other_offset: usize) -> bool {
        let addr = |slot: Slot, off: usize| match slot {
            Slot::F32(p, _) => p as usize + off * 4,
            Slot::I64(p, _) => p as usize + off * 8,
            Slot::F16(p, _) => p as usize + off * 2,
            Slot::BF16(p, _) => p as usize + off * 2,
            Slot::Int8(p, ..) => p as usize + off,
            Slot::Int4(p, ..) => p as usize + off / 2,
        };
        addr(self.slots[b], offset) == addr(self.slots[other], other_offset)
    }

    pub(crate) fn is_i64(&self, b: usize) -> bool {
        matches!(self.slots[b], Slot::I64(..))
    }

    pub(crate) fn name(&self, b: usize) -> &str {
        &self.names[b]
    }
}

impl Executable {
    /// Prepares `program` with intermediates at the element offsets `offsets` (one
    /// entry per buffer; `Some` exactly for intermediates) in an arena of
    /// `arena_len` f32 elements.
    pub fn new(program: Program, offsets: Vec<Option<usize>>, arena_len: usize) -> Result<Executable, ExecError> {
        for (b, buf) in program.buffers.iter().enumerate() {
            let bad = |problem| ExecError::Plan {
                buffer: b,
                name: buf.name.clone(),
                problem,
            };
            match (buf.kind.is_none(), offsets.get(b).copied().flatten()) {
                (true, Some(o)) if o.checked_add(buf.len).is_some_and(|end| end <= arena_len) => {}
                (true, Some(_)) => return Err(bad("lies outside the arena")),
                (true, None) => return Err(bad("is an intermediate without an offset")),
                (false, Some(_)) => return Err(bad("is not an intermediate but has an offset")),
                (false, None) => {}
            }
            if buf.kind.is_none() && buf.elem != ElemType::F32 {
                return Err(bad("is an intermediate that is not f32"));
            }
        }
        let exprs = program
            .kernels
            .iter()
            .enumerate()
            .map(|(k, kernel)| {
                let e = match kernel {
                    Kernel::Elementwise { expr, .. } => Some(expr),
                    Kernel::Gemm { epilogue, .. } | Kernel::Conv { epilogue, .. } => epilogue.as_ref().map(|e| &e.expr),
                    _ => None,
                };
                e.map(compile_expr).transpose().map_err(|source| ExecError::Kernel {
                    kernel: k,
                    name: kernel.name(),
                    source,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let names = program.buffers.iter().map(|b| b.name.clone()).collect();
        Ok(Executable {
            program,
            offsets,
            arena_len,
            exprs,
            names,
            spare_arena: Mutex::new(Vec::new()),
        })
    }

    /// The program.
    pub fn program(&self) -> &Program {
        &self.program
    }

    /// Arena size in bytes.
    pub fn arena_bytes(&self) -> usize {
        self.arena_len * 4
    }

    /// Runs the program on `inputs` (in the program's input order) and returns its
    /// outputs (in its output order), each a dense row-major f32 vector.
    pub fn run(&self, inputs: &[InputData<'_>]) -> Result<Vec<Vec<f32>>, ExecError> {
        self.run_observed(inputs, None)
    }

    /// As [`Executable::run`], and also returns the wall time of each kernel, in
    /// program order. The kernels run exactly as in `run` (one clock read between
    /// two kernels is the only addition).
    pub fn run_timed(&self, inputs: &[InputData<'_>]) -> Result<(Vec<Vec<f32>>, Vec<std::time::Duration>), ExecError> {
        let mut times = vec![std::time::Duration::ZERO; self.program.kernels.len()];
        let outputs = self.run_observed(inputs, Some(&mut times))?;
        Ok((outputs, times))
    }

    /// An arena for one run: the spare one, or a new one filled with NaN, so
    /// that a kernel reading an intermediate before any kernel wrote it gives
    /// NaN on the first run as it would on a reused arena, instead of zeros.
    fn take_arena(&self) -> Vec<f32> {
        let spare = std::mem::take(&mut *self.spare_arena.lock().unwrap_or_else(|e| e.into_inner()));
        if spare.len() == self.arena_len {
            spare
        } else {
            vec![f32::NAN; self.arena_len]
        }
    }

    /// Keeps `arena` for the next run.
    fn return_arena(&self, arena: Vec<f32>) {
        *self.spare_arena.lock().unwrap_or_else(|e| e.into_inner()) = arena;
    }

    /// The storage of one run: the arena, the output vectors, and the buffer
    /// table pointing into them, the inputs and the constants.
    fn prepare(&self, inputs: &[InputData<'_>]) -> Result<RunStorage, ExecError> {
        let p = &self.program;
        if inputs.len() != p.inputs.len() {
            return Err(ExecError::Input {
                index: inputs.len().min(p.inputs.len()),
                name: String::new(),
                expected: format!("{} inputs", p.inputs.len()),
                found: format!("{}", inputs.len()),
            });
        }
        let mut arena = self.take_arena();
        let mut outputs: Vec<Vec<f32>> = p.outputs.iter().map(|(b, _)| vec![0f32; p.buffers[*b].len]).collect();
        let mut slots: Vec<Slot> = vec![Slot::F32(std::ptr::null_mut(), 0); p.buffers.len()];
        let arena_ptr = arena.as_mut_ptr();
        for (b, buf) in p.buffers.iter().enumerate() {
            slots[b] = match &buf.kind {
                // SAFETY: `new` checked offset + len <= arena_len.
                None => Slot::F32(unsafe { arena_ptr.add(self.offsets[b].unwrap_or(0)) }, buf.len),
                Some(BufferKind::Constant(ConstData::F32(v))) => Slot::F32(v.as_ptr() as *mut f32, v.len()),
                Some(BufferKind::Constant(ConstData::I64(v))) => Slot::I64(v.as_ptr(), v.len()),
                Some(BufferKind::Constant(ConstData::F16(v))) => Slot::F16(v.as_ptr(), v.len()),
                Some(BufferKind::Constant(ConstData::BF16(v))) => Slot::BF16(v.as_ptr(), v.len()),
                Some(BufferKind::Constant(ConstData::Int8 { data, scales, k, n })) if data.len() == k * n && scales.len() == *n => {
                    Slot::Int8(data.as_ptr(), scales.as_ptr(), *k, *n)
                }
                Some(BufferKind::Constant(ConstData::Int8 { .. })) => Slot::F32(std::ptr::null_mut(), 0),
                Some(BufferKind::Constant(ConstData::Int4 { data, scales, k, n, group })) => {
                    Slot::Int4(data.as_ptr(), data.len(), scales.as_ptr(), scales.len(), *k, *n, *group)
                }
                Some(BufferKind::Input | BufferKind::Output) => Slot::F32(std::ptr::null_mut(), 0),
            };
        }
        for (i, ((b, shape), data)) in p.inputs.iter().zip(inputs).enumerate() {
            let buf = &p.buffers[*b];
            let bad = |found: String| ExecError::Input {
                index: i,
                name: buf.name.clone(),
                expected: format!("{:?} of shape {shape:?} ({} elements)", buf.elem, buf.len),
                found,
            };
            slots[*b] = match (*data, buf.elem) {
                (InputData::F32(d), ElemType::F32) if d.len() == buf.len => Slot::F32(d.as_ptr() as *mut f32, d.len()),
                (InputData::I64(d), ElemType::I64) if d.len() == buf.len => Slot::I64(d.as_ptr(), d.len()),
                (InputData::F32(d), _) => return Err(bad(format!("F32 with {} elements", d.len()))),
                (InputData::I64(d), _) => return Err(bad(format!("I64 with {} elements", d.len()))),
            };
        }
        for ((b, _), out) in p.outputs.iter().zip(outputs.iter_mut()) {
            slots[*b] = Slot::F32(out.as_mut_ptr(), out.len());
        }
        let mem = Mem {
            slots,
            names: Arc::clone(&self.names),
        };
        Ok((arena, outputs, mem))
    }

    /// Runs the program; with `times` (one entry per kernel), records each
    /// kernel's wall time there (one `Instant` read per kernel; none without).
    fn run_observed(&self, inputs: &[InputData<'_>], mut times: Option<&mut [std::time::Duration]>) -> Result<Vec<Vec<f32>>, ExecError> {
        let p = &self.program;
        let (arena, outputs, mem) = self.prepare(inputs)?;
        let mut clock = times.as_ref().map(|_| std::time::Instant::now());
        for (k, kernel) in p.kernels.iter().enumerate() {
            ops::run_kernel(kernel, self.exprs[k].as_ref(), &mem).map_err(|source| ExecError::Kernel {
                kernel: k,
                name: kernel.name(),
                source,
            })?;
            if let (Some(times), Some(start)) = (times.as_deref_mut(), clock.as_mut()) {
                let now = std::time::Instant::now();
                times[k] = now - *start;
                *start = now;
            }
        }
        drop(mem);
        self.return_arena(arena);
        Ok(outputs)
    }
}
