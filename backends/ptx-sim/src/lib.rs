//! An interpreter for the PTX subset eqopt emits (`backends/ptx/SUBSET.md`).
//!
//! Tests use it to run the PTX the project generates on machines without a
//! GPU and compare with the CPU backend. It accepts exactly the subset:
//! any other instruction, directive, operand form or type is an error naming
//! its source line, never skipped.
//!
//! A [`Module`] is parsed once into a decoded form (typed operations over
//! register slots, branch targets resolved), so execution touches no
//! strings. A [`Device`] is one simulated GPU's global memory; [`Device::launch`]
//! runs an entry over a grid, deterministically: blocks one after another,
//! and within a block each thread until it reaches a barrier, a warp
//! collective or its end (see the `launch` module docs for the exact rules
//! and the errors that detect divergence, partial warps and deadlocks).
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
