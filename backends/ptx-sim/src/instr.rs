//! The decoded form of an entry: what the executor runs.
//!
//! Every operand is an index into the thread's register file ("slot"). The
//! file of a thread is laid out as
//!
//! ```text
//! [0, nregs)                declared registers, zero at thread start
//! nregs                     TRUE: always 1 (the guard of unguarded instructions)
//! nregs+1 .. nregs+14       %tid.{x,y,z} %ntid.{x,y,z} %ctaid.{x,y,z} %nctaid.{x,y,z} %laneid
//! params                    one slot per `.param` (the launch's values)
//! constants                 immediates, address offsets and shared-symbol offsets
//! ```
//!
//! Invariant of every slot: a value of width `w` bits is stored in the low `w`
//! bits of the `u64`, the upper bits zero (predicates are 0 or 1). Only
//! declared registers are ever written; the decoder guarantees every index is
//! inside the file and every branch target inside the code.

/// Number of special-register slots after the TRUE slot.
pub(crate) const SPECIALS: [&str; 13] = [
    "%tid.x",
    "%tid.y",
    "%tid.z",
    "%ntid.x",
    "%ntid.y",
    "%ntid.z",
    "%ctaid.x",
    "%ctaid.y",
    "%ctaid.z",
    "%nctaid.x",
    "%nctaid.y",
    "%nctaid.z",
    "%laneid",
];

/// A PTX type as used by registers and instruction suffixes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ty {
    Pred,
    B8,
    U8,
    S8,
    B16,
    U16,
    B32,
    U32,
    S32,
    B64,
    U64,
    S64,
    F32,
}

impl Ty {
    /// The type named by a suffix without its dot (`"u32"`).
    pub(crate) fn parse(s: &str) -> Option<Ty> {
        Some(match s {
            "pred" => Ty::Pred,
            "b8" => Ty::B8,
            "u8" => Ty::U8,
            "s8" => Ty::S8,
            "b16" => Ty::B16,
            "u16" => Ty::U16,
            "b32" => Ty::B32,
            "u32" => Ty::U32,
            "s32" => Ty::S32,
            "b64" => Ty::B64,
            "u64" => Ty::U64,
            "s64" => Ty::S64,
            "f32" => Ty::F32,
            _ => return None,
        })
    }

    /// Width in bits (1 for predicates).
    pub(crate) fn bits(self) -> u32 {
        match self {
            Ty::Pred => 1,
            Ty::B8 | Ty::U8 | Ty::S8 => 8,
            Ty::B16 | Ty::U16 => 16,
            Ty::B32 | Ty::U32 | Ty::S32 | Ty::F32 => 32,
            Ty::B64 | Ty::U64 | Ty::S64 => 64,
        }
    }

    fn is_bits(self) -> bool {
        matches!(self, Ty::B8 | Ty::B16 | Ty::B32 | Ty::B64)
    }

    fn is_int(self) -> bool {
        matches!(self, Ty::U8 | Ty::S8 | Ty::U16 | Ty::U32 | Ty::S32 | Ty::U64 | Ty::S64)
    }

    /// Whether a register declared `self` may be an operand of an instruction
    /// of type `want` (PTX's relaxed rules, as ptxas applies them: same size,
    /// and a bit-size type on either side, or both integer, or both float).
    pub(crate) fn fits(self, want: Ty) -> bool {
        if self.bits() != want.bits() {
            return false;
        }
        match want {
            Ty::Pred => self == Ty::Pred,
            Ty::F32 => matches!(self, Ty::F32 | Ty::B32),
            _ if want.is_bits() => true,
            _ => self.is_bits() || (self.is_int() && want.is_int()),
        }
    }
}

/// Integer comparison of `setp`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ICmp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// Float comparison of `setp.*.f32`: ordered ones are false when an operand
/// is NaN, the `*u` ones true; `Num` is "neither is NaN", `Nan` "either is".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FCmp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Equ,
    Neu,
    Ltu,
    Leu,
    Gtu,
    Geu,
    Num,
    Nan,
}

/// `shfl.sync` mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ShflMode {
    Bfly,
    Down,
    Idx,
}

/// One decoded operation. Fields are slots (see the module docs); `d` is the
/// destination. Names give the semantics: `I32`/`I64` are width-only integer
/// ops (wraparound), `U`/`S` distinguish signedness where it matters.
#[derive(Clone, Copy, Debug)]
#[allow(missing_docs)]
pub(crate) enum Op {
    /// Copy the slot's bits (mov, ld.param, cvta, cvt.u64.u32).
    Mov {
        d: u32,
        a: u32,
    },
    /// `mov.b32 d, {lo, hi}`: `d = lo | hi << 16`.
    Pack16 {
        d: u32,
        lo: u32,
        hi: u32,
    },
    AddI32 {
        d: u32,
        a: u32,
        b: u32,
    },
    AddI64 {
        d: u32,
        a: u32,
        b: u32,
    },
    SubI32 {
        d: u32,
        a: u32,
        b: u32,
    },
    SubI64 {
        d: u32,
        a: u32,
        b: u32,
    },
    MulLoI32 {
        d: u32,
        a: u32,
        b: u32,
    },
    MulLoI64 {
        d: u32,
        a: u32,
        b: u32,
    },
    MadLoI32 {
        d: u32,
        a: u32,
        b: u32,
        c: u32,
    },
    MadLoI64 {
        d: u32,
        a: u32,
        b: u32,
        c: u32,
    },
    MulWideU32 {
        d: u32,
        a: u32,
        b: u32,
    },
    MulWideS32 {
        d: u32,
        a: u32,
        b: u32,
    },
    DivU32 {
        d: u32,
        a: u32,
        b: u32,
    },
    DivS32 {
        d: u32,
        a: u32,
        b: u32,
    },
    DivU64 {
        d: u32,
        a: u32,
        b: u32,
    },
    DivS64 {
        d: u32,
        a: u32,
        b: u32,
    },
    RemU32 {
        d: u32,
        a: u32,
        b: u32,
    },
    RemS32 {
        d: u32,
        a: u32,
        b: u32,
    },
    RemU64 {
        d: u32,
        a: u32,
        b: u32,
    },
    RemS64 {
        d: u32,
        a: u32,
        b: u32,
    },
    /// Unsigned min/max of either width (values are zero-extended).
    MinU {
        d: u32,
        a: u32,
        b: u32,
    },
    MaxU {
        d: u32,
        a: u32,
        b: u32,
    },
    MinS32 {
        d: u32,
        a: u32,
        b: u32,
    },
    MaxS32 {
        d: u32,
        a: u32,
        b: u32,
    },
    MinS64 {
        d: u32,
        a: u32,
        b: u32,
    },
    MaxS64 {
        d: u32,
        a: u32,
        b: u32,
    },
    NegS32 {
        d: u32,
        a: u32,
    },
    AbsS32 {
        d: u32,
        a: u32,
    },
    /// Bitwise ops of any width, predicates included (inputs are zero-extended).
    And {
        d: u32,
        a: u32,
        b: u32,
    },
    Or {
        d: u32,
        a: u32,
        b: u32,
    },
    Xor {
        d: u32,
        a: u32,
        b: u32,
    },
    Not32 {
        d: u32,
        a: u32,
    },
    Not64 {
        d: u32,
        a: u32,
    },
    NotPred {
        d: u32,
        a: u32,
    },
    Shl32 {
        d: u32,
        a: u32,
        b: u32,
    },
    Shl64 {
        d: u32,
        a: u32,
        b: u32,
    },
    ShrU32 {
        d: u32,
        a: u32,
        b: u32,
    },
    ShrS32 {
        d: u32,
        a: u32,
        b: u32,
    },
    ShrU64 {
        d: u32,
        a: u32,
        b: u32,
    },
    ShrS64 {
        d: u32,
        a: u32,
        b: u32,
    },
    AddF32 {
        d: u32,
        a: u32,
        b: u32,
    },
    SubF32 {
        d: u32,
        a: u32,
        b: u32,
    },
    MulF32 {
        d: u32,
        a: u32,
        b: u32,
    },
    DivF32 {
        d: u32,
        a: u32,
        b: u32,
    },
    MinF32 {
        d: u32,
        a: u32,
        b: u32,
    },
    MaxF32 {
        d: u32,
        a: u32,
        b: u32,
    },
    FmaF32 {
        d: u32,
        a: u32,
        b: u32,
        c: u32,
    },
    NegF32 {
        d: u32,
        a: u32,
    },
    AbsF32 {
        d: u32,
        a: u32,
    },
    SqrtF32 {
        d: u32,
        a: u32,
    },
    RcpF32 {
        d: u32,
        a: u32,
    },
    RsqrtF32 {
        d: u32,
        a: u32,
    },
    Ex2F32 {
        d: u32,
        a: u32,
    },
    Lg2F32 {
        d: u32,
        a: u32,
    },
    TanhF32 {
        d: u32,
        a: u32,
    },
    /// Unsigned compare of either width (values are zero-extended).
    SetpU {
        d: u32,
        a: u32,
        b: u32,
        cmp: ICmp,
    },
    SetpS32 {
        d: u32,
        a: u32,
        b: u32,
        cmp: ICmp,
    },
    SetpS64 {
        d: u32,
        a: u32,
        b: u32,
        cmp: ICmp,
    },
    SetpF32 {
        d: u32,
        a: u32,
        b: u32,
        cmp: FCmp,
    },
    /// `d = p ? a : b`.
    Selp {
        d: u32,
        a: u32,
        b: u32,
        p: u32,
    },
    /// `cvt.s64.s32`.
    SextS32 {
        d: u32,
        a: u32,
    },
    /// `cvt.u32.u64`, `cvt.s32.s64`: keep the low 32 bits.
    Trunc32 {
        d: u32,
        a: u32,
    },
    CvtF32S32 {
        d: u32,
        a: u32,
    },
    CvtF32U32 {
        d: u32,
        a: u32,
    },
    /// `cvt.rzi.s32.f32`: toward zero, saturating, NaN gives 0.
    CvtS32F32Rzi {
        d: u32,
        a: u32,
    },
    CvtF32Rmi {
        d: u32,
        a: u32,
    },
    CvtF32Rni {
        d: u32,
        a: u32,
    },
    CvtF32Rzi {
        d: u32,
        a: u32,
    },
    CvtF32F16 {
        d: u32,
        a: u32,
    },
    /// `cvt.rn.bf16x2.f32 d, hi, lo`.
    CvtBf16x2 {
        d: u32,
        hi: u32,
        lo: u32,
    },
    /// Global loads at `slot[a] + slot[off]`: zero-extended 8 bits, sign-extended
    /// 8 bits (to 32), 16, 32, 64 bits.
    LdGU8 {
        d: u32,
        a: u32,
        off: u32,
    },
    LdGS8 {
        d: u32,
        a: u32,
        off: u32,
    },
    LdG16 {
        d: u32,
        a: u32,
        off: u32,
    },
    LdG32 {
        d: u32,
        a: u32,
        off: u32,
    },
    LdG64 {
        d: u32,
        a: u32,
        off: u32,
    },
    /// `st.global` of the low 32 bits of `v`.
    StG32 {
        a: u32,
        off: u32,
        v: u32,
    },
    /// Shared accesses at `(slot[a] + slot[off]) mod 2^32` in the block's window.
    LdS32 {
        d: u32,
        a: u32,
        off: u32,
    },
    StS32 {
        a: u32,
        off: u32,
        v: u32,
    },
    /// Jump to instruction index `target`.
    Bra {
        target: u32,
    },
    /// End the thread.
    Ret,
    /// `bar.sync 0`: the thread stops here until the block is released.
    BarSync,
    /// `shfl.sync.MODE.b32 d, a, b, 31, 0xffffffff`: a warp collective.
    Shfl {
        d: u32,
        a: u32,
        b: u32,
        mode: ShflMode,
    },
    /// `mma.sync...m16n8k16...`: a warp collective; the operands are `Entry::mma[index]`.
    Mma {
        index: u32,
    },
}

/// The register operands of one `mma.sync` (slots).
#[derive(Clone, Copy, Debug)]
pub(crate) struct MmaRegs {
    pub d: [u32; 4],
    pub a: [u32; 4],
    pub b: [u32; 2],
    pub c: [u32; 4],
}

/// A guarded operation: it executes when `slot[guard] ^ negate` is 1.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Instr {
    pub op: Op,
    pub guard: u32,
    pub negate: u64,
}

/// One decoded `.entry`.
#[derive(Debug)]
pub(crate) struct Entry {
    pub name: String,
    pub params: Vec<String>,
    /// `.maxntid` extents, if declared.
    pub maxntid: Option<[u32; 3]>,
    /// The instructions; the last one is always a synthetic `Ret` (falling off
    /// the end of the body ends the thread), so `pc` never runs past the end.
    pub code: Vec<Instr>,
    /// Source line of each instruction (1-based).
    pub lines: Vec<usize>,
    /// Source text of each instruction, for errors.
    pub texts: Vec<String>,
    /// Declared registers: slots `[0, nregs)`.
    pub nregs: u32,
    /// Initial register file of a thread except the special registers and
    /// the params (filled per launch / block / thread): see the module docs.
    pub template: Vec<u64>,
    /// Bytes of the shared window.
    pub shared_bytes: u32,
    /// Operands of the `mma.sync` instructions.
    pub mma: Vec<MmaRegs>,
}

impl Entry {
    /// The TRUE slot.
    pub(crate) fn true_slot(nregs: u32) -> u32 {
        nregs
    }

    /// First special-register slot (`%tid.x`).
    pub(crate) fn special_base(nregs: u32) -> u32 {
        nregs + 1
    }

    /// First parameter slot.
    pub(crate) fn param_base(nregs: u32) -> u32 {
        nregs + 1 + SPECIALS.len() as u32
    }
}
