//! Decoding an entry body: resolves registers to slots, immediates to
//! constant slots, labels to instruction indices, and checks every opcode and
//! operand against SUBSET.md. Anything outside the subset is an error naming
//! its line; nothing is skipped.

use std::collections::BTreeMap;

use crate::error::SimError;
use crate::instr::{Entry, FCmp, ICmp, Instr, MmaRegs, Op, SPECIALS, ShflMode, Ty};
use crate::parse::{Body, Imm, Operand, RawInstr};

/// Builds the executable form of one entry.
pub(crate) fn build_entry(
    name: &str,
    params: Vec<(&str, usize)>,
    maxntid: Option<[u32; 3]>,
    body: Body<'_>,
    lines: &[&str],
) -> Result<Entry, SimError> {
    let text = |line: usize| lines.get(line.wrapping_sub(1)).copied().unwrap_or("").to_string();
    let mut regs: BTreeMap<String, (u32, Ty)> = BTreeMap::new();
    let mut nregs: u32 = 0;
    for &(prefix, ty, n, line) in &body.regs {
        for i in 0..n {
            let full = format!("{prefix}{i}");
            if regs.contains_key(&full) {
                return Err(SimError::Duplicate { line, name: full });
            }
            regs.insert(full, (nregs, ty));
            nregs = nregs.checked_add(1).ok_or_else(|| SimError::Unsupported {
                line,
                text: text(line),
                what: "register count",
            })?;
        }
    }
    let mut param_slots: BTreeMap<&str, u32> = BTreeMap::new();
    for (i, &(p, line)) in params.iter().enumerate() {
        if param_slots.insert(p, Entry::param_base(nregs) + i as u32).is_some() {
            return Err(SimError::Duplicate { line, name: p.to_string() });
        }
    }
    let mut shared: BTreeMap<&str, u32> = BTreeMap::new();
    let mut window: u64 = 0;
    for &(s, align, bytes, line) in &body.shared {
        if shared.contains_key(s) || param_slots.contains_key(s) {
            return Err(SimError::Duplicate { line, name: s.to_string() });
        }
        let offset = window.next_multiple_of(u64::from(align));
        window = offset + u64::from(bytes);
        if window > u64::from(u32::MAX) {
            return Err(SimError::Unsupported {
                line,
                text: text(line),
                what: "shared window size",
            });
        }
        shared.insert(s, offset as u32);
    }
    let mut labels: BTreeMap<&str, u32> = BTreeMap::new();
    for &(l, index, line) in &body.labels {
        if labels.insert(l, index as u32).is_some() {
            return Err(SimError::Duplicate { line, name: l.to_string() });
        }
    }
    let const_base = Entry::param_base(nregs) + params.len() as u32;
    let mut dec = Decoder {
        regs: &regs,
        params: &param_slots,
        shared: &shared,
        labels: &labels,
        nregs,
        const_base,
        consts: Vec::new(),
        const_index: BTreeMap::new(),
        mma: Vec::new(),
        line: 0,
        text: String::new(),
    };
    let mut code = Vec::with_capacity(body.instrs.len() + 1);
    let mut code_lines = Vec::with_capacity(body.instrs.len() + 1);
    let mut texts = Vec::with_capacity(body.instrs.len() + 1);
    for raw in &body.instrs {
        dec.line = raw.line;
        dec.text = text(raw.line);
        code.push(dec.instr(raw)?);
        code_lines.push(raw.line);
        texts.push(dec.text.clone());
    }
    code.push(Instr {
        op: Op::Ret,
        guard: Entry::true_slot(nregs),
        negate: 0,
    });
    code_lines.push(body.end_line);
    texts.push("}".to_string());
    let mut template = vec![0u64; (const_base as usize) + dec.consts.len()];
    template[Entry::true_slot(nregs) as usize] = 1;
    template[const_base as usize..].copy_from_slice(&dec.consts);
    let mma = dec.mma;
    Ok(Entry {
        name: name.to_string(),
        params: params.iter().map(|p| p.0.to_string()).collect(),
        maxntid,
        code,
        lines: code_lines,
        texts,
        nregs,
        template,
        shared_bytes: window as u32,
        mma,
    })
}

struct Decoder<'m> {
    regs: &'m BTreeMap<String, (u32, Ty)>,
    params: &'m BTreeMap<&'m str, u32>,
    shared: &'m BTreeMap<&'m str, u32>,
    labels: &'m BTreeMap<&'m str, u32>,
    nregs: u32,
    const_base: u32,
    consts: Vec<u64>,
    const_index: BTreeMap<u64, u32>,
    mma: Vec<MmaRegs>,
    /// The instruction being decoded (for errors).
    line: usize,
    text: String,
}

/// What a register operand of type `t` must be, for errors.
fn reg_expect(t: Ty) -> &'static str {
    match t {
        Ty::Pred => "a .pred register",
        Ty::B16 => "a .b16 register",
        Ty::F32 => "an .f32 or .b32 register",
        Ty::B32 => "a 32-bit register",
        Ty::B64 => "a 64-bit register",
        Ty::U64 | Ty::S64 => "a 64-bit integer (.b64/.u64/.s64) register",
        _ => "a 32-bit integer (.b32/.u32/.s32) register",
    }
}

/// What a source operand of type `t` must be, for errors.
fn src_expect(t: Ty) -> &'static str {
    match t {
        Ty::Pred => "a .pred register or 0/1",
        Ty::F32 => "an .f32/.b32 register or a 0fXXXXXXXX immediate",
        Ty::B32 => "a 32-bit register or a 32-bit immediate",
        Ty::B64 | Ty::U64 | Ty::S64 => "a 64-bit integer register or a 64-bit integer",
        _ => "a 32-bit integer register or a 32-bit integer",
    }
}

/// The bits of immediate `imm` as an operand of type `t`, if it may be one:
/// integers for integer and bit types (in range of the width, signed or
/// unsigned, stored truncated to it), `0f` immediates for `f32` and `b32`,
/// 0/1 for predicates.
fn imm_bits(imm: Imm, t: Ty) -> Option<u64> {
    match (imm, t) {
        (Imm::F32(bits), Ty::F32 | Ty::B32) => Some(u64::from(bits)),
        (Imm::F32(_), _) | (Imm::Int(_), Ty::F32) => None,
        (Imm::Int(v), Ty::Pred) => (v == 0 || v == 1).then_some(v as u64),
        (Imm::Int(v), t) => {
            let w = t.bits();
            let ok = v >= -(1i128 << (w - 1)) && v < (1i128 << w);
            ok.then(|| if w == 64 { v as u64 } else { (v as u64) & ((1u64 << w) - 1) })
        }
    }
}

fn is_int(t: Ty) -> bool {
    matches!(t, Ty::U32 | Ty::S32 | Ty::U64 | Ty::S64)
}

impl Decoder<'_> {
    fn bad(&self, index: usize, expected: &'static str) -> SimError {
        SimError::Operand {
            line: self.line,
            index,
            expected,
            text: self.text.clone(),
        }
    }

    fn konst(&mut self, v: u64) -> u32 {
        if let Some(&slot) = self.const_index.get(&v) {
            return slot;
        }
        let slot = self.const_base + self.consts.len() as u32;
        self.consts.push(v);
        self.const_index.insert(v, slot);
        slot
    }

    /// The slot of declared register `name`, which must fit type `t`.
    fn reg(&self, name: &str, index: usize, t: Ty) -> Result<u32, SimError> {
        match self.regs.get(name) {
            Some(&(slot, ty)) if ty.fits(t) => Ok(slot),
            Some(_) => Err(self.bad(index, reg_expect(t))),
            None if SPECIALS.contains(&name) => {
                Err(self.bad(index, "a declared register (special registers only as the source of mov.u32)"))
            }
            None => Err(SimError::UnknownRegister {
                line: self.line,
                name: name.to_string(),
                text: self.text.clone(),
            }),
        }
    }

    fn dst(&self, ops: &[Operand<'_>], i: usize, t: Ty) -> Result<u32, SimError> {
        match &ops[i] {
            Operand::Reg(r) => self.reg(r, i, t),
            _ => Err(self.bad(i, reg_expect(t))),
        }
    }

    fn src_reg(&self, ops: &[Operand<'_>], i: usize, t: Ty) -> Result<u32, SimError> {
        self.dst(ops, i, t)
    }

    /// A register or an immediate of type `t`.
    fn src(&mut self, ops: &[Operand<'_>], i: usize, t: Ty) -> Result<u32, SimError> {
        match &ops[i] {
            Operand::Reg(r) => self.reg(r, i, t),
            Operand::Imm(imm) => match imm_bits(*imm, t) {
                Some(v) => Ok(self.konst(v)),
                None => Err(self.bad(i, src_expect(t))),
            },
            _ => Err(self.bad(i, src_expect(t))),
        }
    }

    /// `[%rd]` / `[%rd+IMM]` (global, 64-bit register) or `[%r]` / `[%r+IMM]`
    /// (shared, 32-bit register): the base slot and the offset's constant slot.
    fn addr(&mut self, ops: &[Operand<'_>], i: usize, shared: bool) -> Result<(u32, u32), SimError> {
        let (want, expected) = if shared {
            (Ty::U32, "a shared address [%r] or [%r+IMM] with a 32-bit register")
        } else {
            (Ty::U64, "a global address [%rd] or [%rd+IMM] with a 64-bit register")
        };
        match &ops[i] {
            Operand::Addr { base, off } if base.starts_with('%') => {
                let a = self.reg(base, i, want).map_err(|_| self.bad(i, expected))?;
                Ok((a, self.konst(off.unwrap_or(0) as u64)))
            }
            _ => Err(self.bad(i, expected)),
        }
    }

    fn arity(&self, ops: &[Operand<'_>], n: usize) -> Result<(), SimError> {
        if ops.len() == n {
            return Ok(());
        }
        let expected = match n {
            0 => "no operands",
            1 => "1 operand",
            2 => "2 operands",
            3 => "3 operands",
            4 => "4 operands",
            _ => "5 operands",
        };
        Err(SimError::Syntax {
            line: self.line,
            text: self.text.clone(),
            expected,
        })
    }

    fn vector(&self, ops: &[Operand<'_>], i: usize, n: usize, t: Ty) -> Result<Vec<u32>, SimError> {
        let expected = match (n, t) {
            (4, Ty::F32) => "a vector of 4 .f32 registers",
            (4, _) => "a vector of 4 .b32 registers",
            _ => "a vector of 2 .b32 registers",
        };
        match &ops[i] {
            Operand::Vector(v) if v.len() == n => v.iter().map(|r| self.reg(r, i, t).map_err(|_| self.bad(i, expected))).collect(),
            _ => Err(self.bad(i, expected)),
        }
    }

    fn instr(&mut self, raw: &RawInstr<'_>) -> Result<Instr, SimError> {
        let (guard, negate) = match raw.guard {
            None => (Entry::true_slot(self.nregs), 0),
            Some((p, neg)) => match self.regs.get(p) {
                Some(&(slot, Ty::Pred)) => (slot, u64::from(neg)),
                Some(_) => {
                    return Err(SimError::Syntax {
                        line: self.line,
                        text: self.text.clone(),
                        expected: "a .pred register as guard",
                    });
                }
                None => {
                    return Err(SimError::UnknownRegister {
                        line: self.line,
                        name: p.to_string(),
                        text: self.text.clone(),
                    });
                }
            },
        };
        let op = self.op(raw.opcode, &raw.operands)?;
        Ok(Instr { op, guard, negate })
    }

    fn op(&mut self, opcode: &str, ops: &[Operand<'_>]) -> Result<Op, SimError> {
        let (line, text) = (self.line, self.text.clone());
        let unknown = || SimError::UnknownInstruction {
            line,
            opcode: opcode.to_string(),
            text: text.clone(),
        };
        let parts: Vec<&str> = opcode.split('.').collect();
        let ty = |s: &str| Ty::parse(s).ok_or_else(unknown);
        Ok(match parts.as_slice() {
            ["ld", "param", "u64"] => {
                self.arity(ops, 2)?;
                let d = self.dst(ops, 0, Ty::U64)?;
                match &ops[1] {
                    Operand::Addr { base, off: None } if !base.starts_with('%') => match self.params.get(base) {
                        Some(&a) => Op::Mov { d, a },
                        None => {
                            return Err(SimError::UnknownSymbol {
                                line: self.line,
                                name: base.to_string(),
                                text: self.text.clone(),
                            });
                        }
                    },
                    _ => return Err(self.bad(1, "[PARAM]")),
                }
            }
            ["cvta", "to", "global", "u64"] => {
                self.arity(ops, 2)?;
                Op::Mov {
                    d: self.dst(ops, 0, Ty::U64)?,
                    a: self.src_reg(ops, 1, Ty::U64)?,
                }
            }
            ["ld", "global", rest @ ..] => {
                let t = match rest {
                    ["nc", t] | [t] => *t,
                    _ => return Err(unknown()),
                };
                self.arity(ops, 2)?;
                let (want, mk): (Ty, fn(u32, u32, u32) -> Op) = match t {
                    "f32" | "b32" | "u32" | "s32" => (ty(t)?, |d, a, off| Op::LdG32 { d, a, off }),
                    "b64" | "u64" | "s64" => (ty(t)?, |d, a, off| Op::LdG64 { d, a, off }),
                    "b16" => (Ty::B16, |d, a, off| Op::LdG16 { d, a, off }),
                    "u16" => (Ty::U32, |d, a, off| Op::LdG16 { d, a, off }),
                    "u8" => (Ty::U32, |d, a, off| Op::LdGU8 { d, a, off }),
                    "s8" => (Ty::U32, |d, a, off| Op::LdGS8 { d, a, off }),
                    _ => return Err(unknown()),
                };
                let d = self.dst(ops, 0, want)?;
                let (a, off) = self.addr(ops, 1, false)?;
                mk(d, a, off)
            }
            ["st", "global", t @ ("f32" | "b32" | "u32")] => {
                self.arity(ops, 2)?;
                let (a, off) = self.addr(ops, 0, false)?;
                Op::StG32 {
                    a,
                    off,
                    v: self.src(ops, 1, ty(t)?)?,
                }
            }
            ["ld", "shared", t @ ("f32" | "b32" | "u32")] => {
                self.arity(ops, 2)?;
                let d = self.dst(ops, 0, ty(t)?)?;
                let (a, off) = self.addr(ops, 1, true)?;
                Op::LdS32 { d, a, off }
            }
            ["st", "shared", t @ ("f32" | "b32" | "u32")] => {
                self.arity(ops, 2)?;
                let (a, off) = self.addr(ops, 0, true)?;
                Op::StS32 {
                    a,
                    off,
                    v: self.src(ops, 1, ty(t)?)?,
                }
            }
            ["mov", t @ ("u32" | "s32" | "b32" | "u64" | "s64" | "b64" | "f32" | "pred")] => self.mov(ty(t)?, ops)?,
            [o @ ("add" | "sub"), t] | [o @ ("add" | "sub"), "rn", t @ "f32"] => {
                let t = ty(t)?;
                let add = *o == "add";
                self.binary(ops, t, |t| match t {
                    Ty::U32 | Ty::S32 if add => Some(|d, a, b| Op::AddI32 { d, a, b }),
                    Ty::U64 | Ty::S64 if add => Some(|d, a, b| Op::AddI64 { d, a, b }),
                    Ty::F32 if add => Some(|d, a, b| Op::AddF32 { d, a, b }),
                    Ty::U32 | Ty::S32 => Some(|d, a, b| Op::SubI32 { d, a, b }),
                    Ty::U64 | Ty::S64 => Some(|d, a, b| Op::SubI64 { d, a, b }),
                    Ty::F32 => Some(|d, a, b| Op::SubF32 { d, a, b }),
                    _ => None,
                })
                .ok_or_else(unknown)??
            }
            ["mul", "lo", t] => self
                .binary(ops, ty(t)?, |t| match t {
                    Ty::U32 | Ty::S32 => Some(|d, a, b| Op::MulLoI32 { d, a, b }),
                    Ty::U64 | Ty::S64 => Some(|d, a, b| Op::MulLoI64 { d, a, b }),
                    _ => None,
                })
                .ok_or_else(unknown)??,
            ["mul", "f32"] | ["mul", "rn", "f32"] => self
                .binary(ops, Ty::F32, |_| Some(|d, a, b| Op::MulF32 { d, a, b }))
                .ok_or_else(unknown)??,
            ["mul", "wide", t @ ("u32" | "s32")] => {
                self.arity(ops, 3)?;
                let signed = *t == "s32";
                let (wide, narrow) = if signed { (Ty::S64, Ty::S32) } else { (Ty::U64, Ty::U32) };
                let d = self.dst(ops, 0, wide)?;
                let (a, b) = (self.src(ops, 1, narrow)?, self.src(ops, 2, narrow)?);
                if signed {
                    Op::MulWideS32 { d, a, b }
                } else {
                    Op::MulWideU32 { d, a, b }
                }
            }
            ["mad", "lo", t] => {
                let t = ty(t)?;
                if !is_int(t) {
                    return Err(unknown());
                }
                self.arity(ops, 4)?;
                let d = self.dst(ops, 0, t)?;
                let (a, b, c) = (self.src(ops, 1, t)?, self.src(ops, 2, t)?, self.src(ops, 3, t)?);
                if t.bits() == 32 {
                    Op::MadLoI32 { d, a, b, c }
                } else {
                    Op::MadLoI64 { d, a, b, c }
                }
            }
            ["fma", "rn", "f32"] => {
                self.arity(ops, 4)?;
                let d = self.dst(ops, 0, Ty::F32)?;
                Op::FmaF32 {
                    d,
                    a: self.src(ops, 1, Ty::F32)?,
                    b: self.src(ops, 2, Ty::F32)?,
                    c: self.src(ops, 3, Ty::F32)?,
                }
            }
            ["div", "rn", "f32"] => self
                .binary(ops, Ty::F32, |_| Some(|d, a, b| Op::DivF32 { d, a, b }))
                .ok_or_else(unknown)??,
            [o @ ("div" | "rem"), t] => {
                let div = *o == "div";
                self.binary(ops, ty(t)?, |t| match t {
                    Ty::U32 if div => Some(|d, a, b| Op::DivU32 { d, a, b }),
                    Ty::S32 if div => Some(|d, a, b| Op::DivS32 { d, a, b }),
                    Ty::U64 if div => Some(|d, a, b| Op::DivU64 { d, a, b }),
                    Ty::S64 if div => Some(|d, a, b| Op::DivS64 { d, a, b }),
                    Ty::U32 => Some(|d, a, b| Op::RemU32 { d, a, b }),
                    Ty::S32 => Some(|d, a, b| Op::RemS32 { d, a, b }),
                    Ty::U64 => Some(|d, a, b| Op::RemU64 { d, a, b }),
                    Ty::S64 => Some(|d, a, b| Op::RemS64 { d, a, b }),
                    _ => None,
                })
                .ok_or_else(unknown)??
            }
            [o @ ("min" | "max"), t] => {
                let min = *o == "min";
                self.binary(ops, ty(t)?, |t| match t {
                    Ty::U32 | Ty::U64 if min => Some(|d, a, b| Op::MinU { d, a, b }),
                    Ty::S32 if min => Some(|d, a, b| Op::MinS32 { d, a, b }),
                    Ty::S64 if min => Some(|d, a, b| Op::MinS64 { d, a, b }),
                    Ty::F32 if min => Some(|d, a, b| Op::MinF32 { d, a, b }),
                    Ty::U32 | Ty::U64 => Some(|d, a, b| Op::MaxU { d, a, b }),
                    Ty::S32 => Some(|d, a, b| Op::MaxS32 { d, a, b }),
                    Ty::S64 => Some(|d, a, b| Op::MaxS64 { d, a, b }),
                    Ty::F32 => Some(|d, a, b| Op::MaxF32 { d, a, b }),
                    _ => None,
                })
                .ok_or_else(unknown)??
            }
            [o @ ("neg" | "abs"), t @ ("s32" | "f32")] => {
                let t = ty(t)?;
                let mk: fn(u32, u32) -> Op = match (*o, t) {
                    ("neg", Ty::S32) => |d, a| Op::NegS32 { d, a },
                    ("abs", Ty::S32) => |d, a| Op::AbsS32 { d, a },
                    ("neg", _) => |d, a| Op::NegF32 { d, a },
                    _ => |d, a| Op::AbsF32 { d, a },
                };
                self.unary(ops, t, mk)?
            }
            [o @ ("and" | "or" | "xor"), t @ ("b32" | "b64" | "pred")] => {
                let t = ty(t)?;
                let mk: fn(u32, u32, u32) -> Op = match *o {
                    "and" => |d, a, b| Op::And { d, a, b },
                    "or" => |d, a, b| Op::Or { d, a, b },
                    _ => |d, a, b| Op::Xor { d, a, b },
                };
                self.binary(ops, t, |_| Some(mk)).ok_or_else(unknown)??
            }
            ["not", t @ ("b32" | "b64" | "pred")] => {
                let t = ty(t)?;
                let mk: fn(u32, u32) -> Op = match t {
                    Ty::B32 => |d, a| Op::Not32 { d, a },
                    Ty::B64 => |d, a| Op::Not64 { d, a },
                    _ => |d, a| Op::NotPred { d, a },
                };
                self.unary(ops, t, mk)?
            }
            [o @ ("shl" | "shr"), t] => {
                let t = ty(t)?;
                let mk: fn(u32, u32, u32) -> Op = match (*o, t) {
                    ("shl", Ty::B32) => |d, a, b| Op::Shl32 { d, a, b },
                    ("shl", Ty::B64) => |d, a, b| Op::Shl64 { d, a, b },
                    ("shr", Ty::B32 | Ty::U32) => |d, a, b| Op::ShrU32 { d, a, b },
                    ("shr", Ty::S32) => |d, a, b| Op::ShrS32 { d, a, b },
                    ("shr", Ty::B64 | Ty::U64) => |d, a, b| Op::ShrU64 { d, a, b },
                    ("shr", Ty::S64) => |d, a, b| Op::ShrS64 { d, a, b },
                    _ => return Err(unknown()),
                };
                self.arity(ops, 3)?;
                let d = self.dst(ops, 0, t)?;
                mk(d, self.src(ops, 1, t)?, self.src(ops, 2, Ty::U32)?)
            }
            ["setp", cmp, t] => self.setp(cmp, ty(t)?, ops).ok_or_else(unknown)??,
            ["selp", t @ ("u32" | "s32" | "b32" | "u64" | "s64" | "b64" | "f32")] => {
                let t = ty(t)?;
                self.arity(ops, 4)?;
                let d = self.dst(ops, 0, t)?;
                Op::Selp {
                    d,
                    a: self.src(ops, 1, t)?,
                    b: self.src(ops, 2, t)?,
                    p: self.src_reg(ops, 3, Ty::Pred)?,
                }
            }
            ["cvt", rest @ ..] => self.cvt(rest, ops).ok_or_else(unknown)??,
            [f @ ("sqrt" | "rcp"), "rn", "f32"] | [f @ ("rsqrt" | "ex2" | "lg2" | "tanh"), "approx", "f32"] => {
                let mk: fn(u32, u32) -> Op = match *f {
                    "sqrt" => |d, a| Op::SqrtF32 { d, a },
                    "rcp" => |d, a| Op::RcpF32 { d, a },
                    "rsqrt" => |d, a| Op::RsqrtF32 { d, a },
                    "ex2" => |d, a| Op::Ex2F32 { d, a },
                    "lg2" => |d, a| Op::Lg2F32 { d, a },
                    _ => |d, a| Op::TanhF32 { d, a },
                };
                self.unary(ops, Ty::F32, mk)?
            }
            ["bra"] | ["bra", "uni"] => {
                self.arity(ops, 1)?;
                match &ops[0] {
                    Operand::Sym(l) => match self.labels.get(l) {
                        Some(&target) => Op::Bra { target },
                        None => {
                            return Err(SimError::UnknownLabel {
                                line: self.line,
                                label: l.to_string(),
                                text: self.text.clone(),
                            });
                        }
                    },
                    _ => return Err(self.bad(0, "a label")),
                }
            }
            ["ret"] => {
                self.arity(ops, 0)?;
                Op::Ret
            }
            ["bar", "sync"] => {
                self.arity(ops, 1)?;
                match ops[0] {
                    Operand::Imm(Imm::Int(0)) => Op::BarSync,
                    _ => return Err(self.bad(0, "barrier 0")),
                }
            }
            ["shfl", "sync", mode @ ("bfly" | "down" | "idx"), "b32"] => {
                self.arity(ops, 5)?;
                let mode = match *mode {
                    "bfly" => ShflMode::Bfly,
                    "down" => ShflMode::Down,
                    _ => ShflMode::Idx,
                };
                let d = self.dst(ops, 0, Ty::B32)?;
                let a = self.src_reg(ops, 1, Ty::B32)?;
                let b = self.src(ops, 2, Ty::U32)?;
                if !matches!(ops[3], Operand::Imm(Imm::Int(31))) {
                    return Err(self.bad(3, "31 (full-warp clamp)"));
                }
                if !matches!(ops[4], Operand::Imm(Imm::Int(0xffff_ffff))) {
                    return Err(self.bad(4, "the full member mask 0xffffffff"));
                }
                Op::Shfl { d, a, b, mode }
            }
            ["mma", "sync", "aligned", "m16n8k16", "row", "col", "f32", "bf16", "bf16", "f32"] => {
                self.arity(ops, 4)?;
                let d = self.vector(ops, 0, 4, Ty::F32)?;
                let a = self.vector(ops, 1, 4, Ty::B32)?;
                let b = self.vector(ops, 2, 2, Ty::B32)?;
                let c = self.vector(ops, 3, 4, Ty::F32)?;
                self.mma.push(MmaRegs {
                    d: [d[0], d[1], d[2], d[3]],
                    a: [a[0], a[1], a[2], a[3]],
                    b: [b[0], b[1]],
                    c: [c[0], c[1], c[2], c[3]],
                });
                Op::Mma {
                    index: self.mma.len() as u32 - 1,
                }
            }
            _ => return Err(unknown()),
        })
    }

    /// `OP.t d, a, b` where `pick` gives the constructor for `t` (None: no such form).
    #[allow(clippy::type_complexity)]
    fn binary(&mut self, ops: &[Operand<'_>], t: Ty, pick: impl Fn(Ty) -> Option<fn(u32, u32, u32) -> Op>) -> Option<Result<Op, SimError>> {
        let mk = pick(t)?;
        Some((|| {
            self.arity(ops, 3)?;
            let d = self.dst(ops, 0, t)?;
            Ok(mk(d, self.src(ops, 1, t)?, self.src(ops, 2, t)?))
        })())
    }

    fn unary(&mut self, ops: &[Operand<'_>], t: Ty, mk: fn(u32, u32) -> Op) -> Result<Op, SimError> {
        self.arity(ops, 2)?;
        let d = self.dst(ops, 0, t)?;
        Ok(mk(d, self.src(ops, 1, t)?))
    }

    fn mov(&mut self, t: Ty, ops: &[Operand<'_>]) -> Result<Op, SimError> {
        self.arity(ops, 2)?;
        let d = self.dst(ops, 0, t)?;
        let a = match &ops[1] {
            Operand::Reg(r) if SPECIALS.contains(r) => {
                if t != Ty::U32 {
                    return Err(self.bad(1, "a register or immediate (special registers only with mov.u32)"));
                }
                let i = SPECIALS.iter().position(|s| s == r).unwrap_or(0) as u32;
                Entry::special_base(self.nregs) + i
            }
            Operand::Sym(s) => {
                if t != Ty::U32 {
                    return Err(self.bad(1, "a register or immediate (shared symbols only with mov.u32)"));
                }
                match self.shared.get(s) {
                    Some(&off) => self.konst(u64::from(off)),
                    None => {
                        return Err(SimError::UnknownSymbol {
                            line: self.line,
                            name: s.to_string(),
                            text: self.text.clone(),
                        });
                    }
                }
            }
            Operand::Vector(v) => {
                if t != Ty::B32 || v.len() != 2 {
                    return Err(self.bad(1, "a register or immediate (`{%lo, %hi}` only with mov.b32)"));
                }
                let lo = self.reg(v[0], 1, Ty::B16)?;
                let hi = self.reg(v[1], 1, Ty::B16)?;
                return Ok(Op::Pack16 { d, lo, hi });
            }
            _ => self.src(ops, 1, t)?,
        };
        Ok(Op::Mov { d, a })
    }

    fn setp(&mut self, cmp: &str, t: Ty, ops: &[Operand<'_>]) -> Option<Result<Op, SimError>> {
        let icmp = match cmp {
            "eq" => Some(ICmp::Eq),
            "ne" => Some(ICmp::Ne),
            "lt" => Some(ICmp::Lt),
            "le" => Some(ICmp::Le),
            "gt" => Some(ICmp::Gt),
            "ge" => Some(ICmp::Ge),
            _ => None,
        };
        let fcmp = match cmp {
            "eq" => FCmp::Eq,
            "ne" => FCmp::Ne,
            "lt" => FCmp::Lt,
            "le" => FCmp::Le,
            "gt" => FCmp::Gt,
            "ge" => FCmp::Ge,
            "equ" => FCmp::Equ,
            "neu" => FCmp::Neu,
            "ltu" => FCmp::Ltu,
            "leu" => FCmp::Leu,
            "gtu" => FCmp::Gtu,
            "geu" => FCmp::Geu,
            "num" => FCmp::Num,
            "nan" => FCmp::Nan,
            _ => return None,
        };
        if t != Ty::F32 && (icmp.is_none() || !is_int(t)) {
            return None;
        }
        Some((|| {
            self.arity(ops, 3)?;
            let d = self.dst(ops, 0, Ty::Pred)?;
            let (a, b) = (self.src(ops, 1, t)?, self.src(ops, 2, t)?);
            Ok(match (t, icmp) {
                (Ty::F32, _) => Op::SetpF32 { d, a, b, cmp: fcmp },
                (Ty::S32, Some(cmp)) => Op::SetpS32 { d, a, b, cmp },
                (Ty::S64, Some(cmp)) => Op::SetpS64 { d, a, b, cmp },
                (_, Some(cmp)) => Op::SetpU { d, a, b, cmp },
                (_, None) => unreachable!("integer setp without an integer comparison is rejected above"),
            })
        })())
    }

    /// The `cvt` forms of SUBSET.md (`rest` is the opcode after `cvt`).
    fn cvt(&mut self, rest: &[&str], ops: &[Operand<'_>]) -> Option<Result<Op, SimError>> {
        type Mk = fn(u32, u32) -> Op;
        let (dt, st, mk): (Ty, Ty, Mk) = match rest {
            ["u64", "u32"] => (Ty::U64, Ty::U32, |d, a| Op::Mov { d, a }),
            ["s64", "s32"] => (Ty::S64, Ty::S32, |d, a| Op::SextS32 { d, a }),
            ["u32", "u64"] => (Ty::U32, Ty::U64, |d, a| Op::Trunc32 { d, a }),
            ["s32", "s64"] => (Ty::S32, Ty::S64, |d, a| Op::Trunc32 { d, a }),
            ["rn", "f32", "s32"] => (Ty::F32, Ty::S32, |d, a| Op::CvtF32S32 { d, a }),
            ["rn", "f32", "u32"] => (Ty::F32, Ty::U32, |d, a| Op::CvtF32U32 { d, a }),
            ["rzi", "s32", "f32"] => (Ty::S32, Ty::F32, |d, a| Op::CvtS32F32Rzi { d, a }),
            ["rmi", "f32", "f32"] => (Ty::F32, Ty::F32, |d, a| Op::CvtF32Rmi { d, a }),
            ["rni", "f32", "f32"] => (Ty::F32, Ty::F32, |d, a| Op::CvtF32Rni { d, a }),
            ["rzi", "f32", "f32"] => (Ty::F32, Ty::F32, |d, a| Op::CvtF32Rzi { d, a }),
            ["f32", "f16"] => (Ty::F32, Ty::B16, |d, a| Op::CvtF32F16 { d, a }),
            ["rn", "bf16x2", "f32"] => {
                return Some((|| {
                    self.arity(ops, 3)?;
                    let d = self.dst(ops, 0, Ty::B32)?;
                    Ok(Op::CvtBf16x2 {
                        d,
                        hi: self.src_reg(ops, 1, Ty::F32)?,
                        lo: self.src_reg(ops, 2, Ty::F32)?,
                    })
                })());
            }
            _ => return None,
        };
        Some((|| {
            self.arity(ops, 2)?;
            let d = self.dst(ops, 0, dt)?;
            Ok(mk(d, self.src_reg(ops, 1, st)?))
        })())
    }
}
