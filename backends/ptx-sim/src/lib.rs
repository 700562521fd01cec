//! An interpreter for the PTX subset eqopt emits (`backends/ptx/SUBSET.md`).
//!
//! Tests use it to run the PTX the project generates on machines without a
//! GPU and compare with the CPU backend. It accepts exactly the subset:
//! any other instruction, directive, operand form or type is an error naming
//! its source line, never skipped.
//!
//! A [`Module`] is parsed once into a decoded form (typed operations over
//! register slots, branch targets resolved), so execution touches no
//! strings. A [`Device`] is one simulated GPU's global memory;
//! [`Device::launch`] runs an entry over a grid.
//!
//! # Execution model
//!
//! Deterministic: blocks run one after another (x fastest, then y, z).
//! Within a block, threads are numbered linearly (`x` fastest, then `y`,
//! `z`); warp `w` is threads `32w .. 32w+32`, and `%laneid` is the number
//! mod 32. The scheduler repeats:
//!
//! 1. run every runnable thread, in order, until it ends (`ret`, or the end
//!    of the body), reaches `bar.sync`, or reaches a warp collective
//!    (`shfl.sync`, `mma.sync`);
//! 2. for every warp with a lane at a collective: every lane that has not
//!    ended must be at that same instruction ([`SimError::Divergence`]
//!    otherwise, also when some lanes wait at `bar.sync`), and all 32 lanes
//!    must exist and be live ([`SimError::PartialWarp`]); then the collective
//!    executes for the warp and its lanes become runnable;
//! 3. if no collective ran: when every thread has ended the block is done;
//!    otherwise every live thread waits at a barrier. If some thread of the
//!    block has ended, it will never arrive: [`SimError::Deadlock`]. Else all
//!    are released together. Any `bar.sync` counts as barrier 0, so threads
//!    may wait at different `bar.sync` lines (as on hardware).
//!
//! An instruction whose guard is false is skipped, a collective or barrier
//! included; the thread's warp or block then fails at its next stop if the
//! others wait for it. Registers start at zero. Shared memory is zeroed at
//! the start of every block; real hardware leaves it undefined, so a kernel
//! must not rely on that. Every instruction issued (guarded-off ones too)
//! counts against [`Launch::instruction_budget`].
//!
//! # Arithmetic
//!
//! As the PTX ISA states for each instruction: integer wraparound (also
//! `div.s32 MIN, -1`, which gives `MIN`; the ISA leaves it unspecified),
//! shifts by at least the width give 0 or the sign fill, IEEE `f32` for
//! `add sub mul fma div.rn sqrt.rn rcp.rn` (subnormals kept), `min`/`max`
//! return the non-NaN operand and order `-0 < +0`, float-to-int `cvt`
//! saturates and maps NaN to 0, `cvt.rn.bf16x2.f32` rounds to nearest even
//! and turns any NaN into `0x7fc0`. The `.approx` functions (`ex2 lg2 rsqrt
//! tanh`) are computed in `f64` and rounded to `f32`, so they are more
//! accurate than the hardware's. `mma.sync` computes each `D[i][j]` as
//! `acc = C[i][j]`, then `acc += A[i][k] * B[k][j]` for `k = 0, 1, ..., 15`
//! in `f32` without fusing (bf16 products are exact in `f32`); the
//! hardware's order and intermediate precision are unspecified, so compare
//! its results with a tolerance.
//!
//! ```
//! use eqopt_ptx_sim::{Device, Launch, Module};
//! let ptx = "
//! .version 8.0
//! .target sm_80
//! .address_size 64
//! .visible .entry fill(
//!     .param .u64 fill_param_0
//! )
//! {
//!     .reg .b32 %r<2>;
//!     .reg .b64 %rd<4>;
//!     ld.param.u64 %rd1, [fill_param_0];
//!     cvta.to.global.u64 %rd2, %rd1;
//!     mov.u32 %r1, %tid.x;
//!     mul.wide.u32 %rd3, %r1, 4;
//!     add.s64 %rd2, %rd2, %rd3;
//!     st.global.u32 [%rd2], %r1;
//!     ret;
//! }
//! ";
//! let module = Module::parse(ptx).unwrap();
//! let mut dev = Device::new();
//! let buf = dev.alloc(4 * 8);
//! dev.launch(&module, "fill", &Launch::new([1, 1, 1], [8, 1, 1]), &[buf]).unwrap();
//! let out = dev.read(buf, 32).unwrap();
//! assert_eq!(out[4 * 5], 5);
//! ```
#![warn(missing_docs)]

mod collective;
mod decode;
mod error;
mod exec;
mod float;
mod instr;
mod launch;
mod lex;
mod memory;
mod parse;

pub use error::{SimError, Space};

/// Default [`Launch::instruction_budget`]: 2^30 instructions per launch
/// (about ten to twenty seconds of interpretation in release mode), far more
/// than the test models' kernels need and small enough that a runaway loop
/// fails quickly.
pub const DEFAULT_INSTRUCTION_BUDGET: u64 = 1 << 30;

/// A parsed and decoded PTX module.
#[derive(Debug)]
pub struct Module {
    target: String,
    entries: Vec<instr::Entry>,
}

impl Module {
    /// Parses `text`, which must be a module in the subset: errors name the
    /// offending line.
    pub fn parse(text: &str) -> Result<Module, SimError> {
        let parsed = parse::parse(text)?;
        Ok(Module {
            target: parsed.target,
            entries: parsed.entries,
        })
    }

    /// The entry names, in file order.
    pub fn entries(&self) -> Vec<&str> {
        self.entries.iter().map(|e| e.name.as_str()).collect()
    }

    /// The `.target` (`"sm_80"` or `"sm_90"`).
    pub fn target(&self) -> &str {
        &self.target
    }
}

/// The shape and budget of one launch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Launch {
    /// Blocks in x, y, z (each at least 1).
    pub grid: [u32; 3],
    /// Threads per block in x, y, z (each at least 1, at most 1024 in all).
    pub block: [u32; 3],
    /// Instructions the whole launch may issue (every thread's, guarded-off
    /// ones included) before it fails with [`SimError::BudgetExceeded`].
    pub instruction_budget: u64,
}

impl Launch {
    /// A launch of `grid` blocks of `block` threads with [`DEFAULT_INSTRUCTION_BUDGET`].
    pub fn new(grid: [u32; 3], block: [u32; 3]) -> Launch {
        Launch {
            grid,
            block,
            instruction_budget: DEFAULT_INSTRUCTION_BUDGET,
        }
    }
}

/// What a successful launch did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LaunchStats {
    /// Instructions issued by all threads (guarded-off ones included).
    pub instructions: u64,
    /// Blocks run.
    pub blocks: u64,
}

/// The global memory of one simulated GPU.
///
/// Allocations are 256-aligned, never at address 0 (they start at 4 GiB, so
/// an address truncated to 32 bits faults), zero-filled, and separated by
/// unmapped gaps so an overrun faults instead of touching a neighbour.
#[derive(Debug, Default)]
pub struct Device {
    global: memory::Global,
}

impl Device {
    /// A device with no allocations.
    pub fn new() -> Device {
        Device::default()
    }

    /// Allocates `bytes` zeroed bytes and returns their address.
    pub fn alloc(&mut self, bytes: usize) -> u64 {
        self.global.alloc(bytes)
    }

    /// Copies `data` to `addr`; the range must lie inside one allocation.
    pub fn write(&mut self, addr: u64, data: &[u8]) -> Result<(), SimError> {
        self.global.write(addr, data).ok_or(SimError::HostAccess {
            addr,
            len: data.len() as u64,
        })
    }

    /// Copies `len` bytes from `addr`; the range must lie inside one allocation.
    pub fn read(&self, addr: u64, len: usize) -> Result<Vec<u8>, SimError> {
        self.global
            .read(addr, len)
            .map(<[u8]>::to_vec)
            .ok_or(SimError::HostAccess { addr, len: len as u64 })
    }

    /// Runs `entry` of `module` over `launch` with `params` (one `u64` per
    /// declared `.param`: an address from [`Device::alloc`] or an integer).
    /// Memory written before an error stays written.
    pub fn launch(&mut self, module: &Module, entry: &str, launch: &Launch, params: &[u64]) -> Result<LaunchStats, SimError> {
        let e = module
            .entries
            .iter()
            .find(|e| e.name == entry)
            .ok_or_else(|| SimError::UnknownEntry { entry: entry.to_string() })?;
        launch::launch(&mut self.global, e, launch, params)
    }
}
