//! The interpreter's error type.
//!
//! Parse errors name the 1-based source line and its text (comment removed);
//! run-time errors name the entry, the source line of the faulting
//! instruction, its text, and the block and thread that executed it.

use std::fmt;

/// The memory space of a faulting access.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Space {
    /// Device global memory (addresses returned by [`crate::Device::alloc`]).
    Global,
    /// The block's shared window (offsets of the entry's `.shared` arrays).
    Shared,
}

impl fmt::Display for Space {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Space::Global => "global",
            Space::Shared => "shared",
        })
    }
}

/// Everything that can go wrong parsing or running a module.
#[derive(thiserror::Error, Debug)]
pub enum SimError {
    /// An opcode outside the subset (the interpreter never skips one).
    #[error("line {line}: unknown instruction `{opcode}` in `{text}`")]
    UnknownInstruction {
        /// 1-based source line.
        line: usize,
        /// The opcode as written (e.g. `add.sat.s32`).
        opcode: String,
        /// The source line.
        text: String,
    },
    /// A statement that does not have the shape the subset allows.
    #[error("line {line}: malformed `{text}`: expected {expected}")]
    Syntax {
        /// 1-based source line.
        line: usize,
        /// The source line (empty at end of input).
        text: String,
        /// What the parser wanted at that point.
        expected: &'static str,
    },
    /// A directive or declaration the subset does not include.
    #[error("line {line}: unsupported {what} in `{text}`")]
    Unsupported {
        /// 1-based source line.
        line: usize,
        /// The source line.
        text: String,
        /// What is not supported (e.g. "target").
        what: &'static str,
    },
    /// A required module directive (`.version`, `.target`, `.address_size`) is missing.
    #[error("missing `{directive}` directive")]
    MissingDirective {
        /// The directive.
        directive: &'static str,
    },
    /// A `%name` that is neither a declared register nor an allowed special register.
    #[error("line {line}: `{name}` is not a declared register in `{text}`")]
    UnknownRegister {
        /// 1-based source line.
        line: usize,
        /// The register as written.
        name: String,
        /// The source line.
        text: String,
    },
    /// A name (parameter, shared array) that is not declared in this entry.
    #[error("line {line}: unknown symbol `{name}` in `{text}`")]
    UnknownSymbol {
        /// 1-based source line.
        line: usize,
        /// The symbol.
        name: String,
        /// The source line.
        text: String,
    },
    /// A branch to a label not defined in the entry.
    #[error("line {line}: unknown label `{label}` in `{text}`")]
    UnknownLabel {
        /// 1-based source line.
        line: usize,
        /// The label.
        label: String,
        /// The source line.
        text: String,
    },
    /// A register, label, parameter, shared array or entry declared twice.
    #[error("line {line}: `{name}` is declared twice")]
    Duplicate {
        /// 1-based source line of the second declaration.
        line: usize,
        /// The name.
        name: String,
    },
    /// An operand of the wrong kind or type for its instruction.
    #[error("line {line}: operand {index} of `{text}` must be {expected}")]
    Operand {
        /// 1-based source line.
        line: usize,
        /// 0-based operand position.
        index: usize,
        /// What the instruction needs there.
        expected: &'static str,
        /// The source line.
        text: String,
    },
    /// [`crate::Device::launch`] named an entry the module does not have.
    #[error("no entry `{entry}` in the module")]
    UnknownEntry {
        /// The requested name.
        entry: String,
    },
    /// The launch passed a different number of parameters than the entry declares.
    #[error("entry `{entry}` takes {expected} parameters, the launch passed {got}")]
    ParamCount {
        /// The entry.
        entry: String,
        /// Declared parameters.
        expected: usize,
        /// Parameters passed.
        got: usize,
    },
    /// A grid or block dimension is zero.
    #[error("entry `{entry}`: empty launch shape (grid {grid:?}, block {block:?})")]
    EmptyLaunch {
        /// The entry.
        entry: String,
        /// The grid.
        grid: [u32; 3],
        /// The block.
        block: [u32; 3],
    },
    /// The block has more threads than the hardware (1024) or the entry's `.maxntid` allows.
    #[error("entry `{entry}`: block of {threads} threads exceeds the limit of {limit} ({source_of_limit})")]
    TooManyThreads {
        /// The entry.
        entry: String,
        /// Threads per block requested.
        threads: u64,
        /// The limit.
        limit: u64,
        /// Where the limit comes from: "hardware" or ".maxntid".
        source_of_limit: &'static str,
    },
    /// A load or store outside one allocation (global) or outside the shared window.
    #[error(
        "entry `{entry}`, line {line} `{instruction}`: {space} access of {size} bytes at {addr:#x} is out of bounds \
         (block {block:?}, thread {thread:?})"
    )]
    OutOfBounds {
        /// The entry.
        entry: String,
        /// 1-based source line.
        line: usize,
        /// The instruction's source text.
        instruction: String,
        /// Global or shared.
        space: Space,
        /// The address (global) or offset in the shared window.
        addr: u64,
        /// Access size in bytes.
        size: u64,
        /// The block index.
        block: [u32; 3],
        /// The thread index in the block.
        thread: [u32; 3],
    },
    /// A load or store not aligned to its size.
    #[error(
        "entry `{entry}`, line {line} `{instruction}`: {space} access of {size} bytes at {addr:#x} is misaligned \
         (block {block:?}, thread {thread:?})"
    )]
    Misaligned {
        /// The entry.
        entry: String,
        /// 1-based source line.
        line: usize,
        /// The instruction's source text.
        instruction: String,
        /// Global or shared.
        space: Space,
        /// The address (global) or offset in the shared window.
        addr: u64,
        /// Access size in bytes.
        size: u64,
        /// The block index.
        block: [u32; 3],
        /// The thread index in the block.
        thread: [u32; 3],
    },
    /// Integer `div` or `rem` by zero.
    #[error("entry `{entry}`, line {line} `{instruction}`: integer division by zero (block {block:?}, thread {thread:?})")]
    DivisionByZero {
        /// The entry.
        entry: String,
        /// 1-based source line.
        line: usize,
        /// The instruction's source text.
        instruction: String,
        /// The block index.
        block: [u32; 3],
        /// The thread index in the block.
        thread: [u32; 3],
    },
    /// The launch executed more instructions than its budget (a runaway loop).
    #[error("entry `{entry}`: instruction budget of {budget} exceeded at line {line} `{instruction}` (block {block:?}, thread {thread:?})")]
    BudgetExceeded {
        /// The entry.
        entry: String,
        /// The budget.
        budget: u64,
        /// 1-based source line of the instruction that would have exceeded it.
        line: usize,
        /// Its source text.
        instruction: String,
        /// The block index.
        block: [u32; 3],
        /// The thread index in the block.
        thread: [u32; 3],
    },
    /// Lanes of one warp wait at different collectives, or some at a collective and others at `bar.sync`.
    #[error("entry `{entry}`, block {block:?}, warp {warp}: lanes diverge between line {line} `{instruction}` and line {other_line}")]
    Divergence {
        /// The entry.
        entry: String,
        /// The block index.
        block: [u32; 3],
        /// Warp index in the block.
        warp: u32,
        /// Line of the collective the first waiting lane is at.
        line: usize,
        /// Its source text.
        instruction: String,
        /// Line where another lane of the warp waits.
        other_line: usize,
    },
    /// A warp collective with fewer than 32 live lanes (a partial warp, or lanes that ended).
    #[error("entry `{entry}`, block {block:?}, warp {warp}: line {line} `{instruction}` needs 32 live lanes, {live} are")]
    PartialWarp {
        /// The entry.
        entry: String,
        /// The block index.
        block: [u32; 3],
        /// Warp index in the block.
        warp: u32,
        /// Line of the collective.
        line: usize,
        /// Its source text.
        instruction: String,
        /// Lanes of the warp that have not ended.
        live: u32,
    },
    /// Threads wait at `bar.sync` while others of the block have ended and never will reach it.
    #[error("entry `{entry}`, block {block:?}: {waiting} threads wait at line {line} `{instruction}` but {ended} threads ended")]
    Deadlock {
        /// The entry.
        entry: String,
        /// The block index.
        block: [u32; 3],
        /// Line of the barrier the first waiting thread is at.
        line: usize,
        /// Its source text.
        instruction: String,
        /// Threads waiting at a barrier.
        waiting: u32,
        /// Threads that have ended.
        ended: u32,
    },
    /// [`crate::Device::read`] or [`crate::Device::write`] outside one allocation.
    #[error("host access of {len} bytes at {addr:#x} is not inside one allocation")]
    HostAccess {
        /// The address.
        addr: u64,
        /// The length in bytes.
        len: u64,
    },
}
