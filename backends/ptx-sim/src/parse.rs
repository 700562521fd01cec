//! Module structure: header directives, entries, declarations, labels and the
//! raw (not yet decoded) instructions. `decode` turns an entry's body into
//! executable form.
//!
//! Layout rules enforced here (SUBSET.md, "Module layout"): the header is
//! `.version X.Y`, `.target sm_80|sm_90`, `.address_size 64` in that order;
//! then any number of `.visible .entry` definitions. In an entry body every
//! statement (declaration, label, instruction) is on one line and alone on it.

use crate::decode;
use crate::error::SimError;
use crate::instr::{Entry, Ty};
use crate::lex::{self, Kind, Tok};

/// An immediate operand as written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Imm {
    /// A decimal or `0x` integer, possibly negated.
    Int(i128),
    /// `0fXXXXXXXX`: the bits of an `f32`.
    F32(u32),
}

/// An operand as written.
#[derive(Clone, Debug)]
pub(crate) enum Operand<'a> {
    /// `%name` (a register or a special register).
    Reg(&'a str),
    Imm(Imm),
    /// `[base]` or `[base+off]`; `base` is a register or (for `ld.param`) a symbol.
    Addr {
        base: &'a str,
        off: Option<i64>,
    },
    /// `{%a, %b, ...}`.
    Vector(Vec<&'a str>),
    /// A bare name: a label, a shared array or a parameter.
    Sym(&'a str),
}

/// One instruction before decoding.
#[derive(Debug)]
pub(crate) struct RawInstr<'a> {
    pub line: usize,
    /// `@%p` (false) or `@!%p` (true).
    pub guard: Option<(&'a str, bool)>,
    pub opcode: &'a str,
    pub operands: Vec<Operand<'a>>,
}

/// The declarations and instructions of one entry body, in source order.
#[derive(Debug, Default)]
pub(crate) struct Body<'a> {
    /// `(prefix, type, count, line)` of each `.reg`.
    pub regs: Vec<(&'a str, Ty, u32, usize)>,
    /// `(name, align, bytes, line)` of each `.shared`.
    pub shared: Vec<(&'a str, u32, u32, usize)>,
    /// `(label, index of the next instruction, line)`.
    pub labels: Vec<(&'a str, usize, usize)>,
    pub instrs: Vec<RawInstr<'a>>,
    /// Line of the closing brace.
    pub end_line: usize,
}

/// A parsed module: its target and decoded entries in file order.
pub(crate) struct Parsed {
    pub target: String,
    pub entries: Vec<Entry>,
}

struct Parser<'a> {
    toks: Vec<Tok<'a>>,
    pos: usize,
    lines: Vec<&'a str>,
}

/// Parses and decodes a whole module.
pub(crate) fn parse(src: &str) -> Result<Parsed, SimError> {
    let mut p = Parser {
        toks: lex::lex(src)?,
        pos: 0,
        lines: lex::clean_lines(src),
    };
    let target = p.header()?;
    let mut entries: Vec<Entry> = Vec::new();
    while let Some(t) = p.peek() {
        if t.text != ".visible" {
            return Err(p.unsupported(t.line, "module-level statement (only `.visible .entry`)"));
        }
        let (name, params, maxntid) = p.entry_header()?;
        if entries.iter().any(|e| e.name == name) {
            return Err(SimError::Duplicate {
                line: t.line,
                name: name.to_string(),
            });
        }
        let body = p.body()?;
        entries.push(decode::build_entry(name, params, maxntid, body, &p.lines)?);
    }
    Ok(Parsed { target, entries })
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<Tok<'a>> {
        self.toks.get(self.pos).copied()
    }

    fn text(&self, line: usize) -> String {
        self.lines.get(line.wrapping_sub(1)).copied().unwrap_or("").to_string()
    }

    /// The line of the current token (the last line at end of input).
    fn here(&self) -> usize {
        self.peek().map(|t| t.line).unwrap_or(self.lines.len())
    }

    fn syntax(&self, expected: &'static str) -> SimError {
        let line = self.here();
        SimError::Syntax {
            line,
            text: self.text(line),
            expected,
        }
    }

    fn unsupported(&self, line: usize, what: &'static str) -> SimError {
        SimError::Unsupported {
            line,
            text: self.text(line),
            what,
        }
    }

    fn next(&mut self, expected: &'static str) -> Result<Tok<'a>, SimError> {
        let t = self.peek().ok_or_else(|| self.syntax(expected))?;
        self.pos += 1;
        Ok(t)
    }

    fn is_punct(&self, c: char) -> bool {
        self.peek().is_some_and(|t| t.kind == Kind::Punct(c))
    }

    fn punct(&mut self, c: char, expected: &'static str) -> Result<(), SimError> {
        if self.is_punct(c) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.syntax(expected))
        }
    }

    fn word(&mut self, expected: &'static str) -> Result<&'a str, SimError> {
        match self.peek() {
            Some(t) if t.kind == Kind::Word => {
                self.pos += 1;
                Ok(t.text)
            }
            _ => Err(self.syntax(expected)),
        }
    }

    /// A name: a word that is neither a directive nor a register.
    fn name(&mut self, expected: &'static str) -> Result<&'a str, SimError> {
        match self.peek() {
            Some(t) if t.kind == Kind::Word && !t.text.starts_with(['.', '%']) => {
                self.pos += 1;
                Ok(t.text)
            }
            _ => Err(self.syntax(expected)),
        }
    }

    fn keyword(&mut self, w: &'static str, expected: &'static str) -> Result<(), SimError> {
        if self.peek().is_some_and(|t| t.text == w) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.syntax(expected))
        }
    }

    /// A non-negative integer that fits `u32`.
    fn count(&mut self, expected: &'static str) -> Result<u32, SimError> {
        match self.peek() {
            Some(t) if t.kind == Kind::Num => match parse_number(t.text, false) {
                Some(Imm::Int(v)) if (0..=u32::MAX as i128).contains(&v) => {
                    self.pos += 1;
                    Ok(v as u32)
                }
                _ => Err(self.syntax(expected)),
            },
            _ => Err(self.syntax(expected)),
        }
    }

    fn header(&mut self) -> Result<String, SimError> {
        if self.peek().is_none_or(|t| t.text != ".version") {
            return Err(SimError::MissingDirective { directive: ".version" });
        }
        self.pos += 1;
        let major = self.next("a version number X.Y")?;
        let minor = self.next("a version number X.Y")?;
        let minor_ok = minor.text.len() > 1 && minor.text.starts_with('.') && minor.text[1..].bytes().all(|b| b.is_ascii_digit());
        if major.kind != Kind::Num || !major.text.bytes().all(|b| b.is_ascii_digit()) || !minor_ok || major.line != minor.line {
            return Err(SimError::Syntax {
                line: major.line,
                text: self.text(major.line),
                expected: "a version number X.Y",
            });
        }
        if self.peek().is_none_or(|t| t.text != ".target") {
            return Err(SimError::MissingDirective { directive: ".target" });
        }
        self.pos += 1;
        let target = self.next("a target")?;
        if !matches!(target.text, "sm_80" | "sm_90") {
            return Err(self.unsupported(target.line, "target (only sm_80 and sm_90)"));
        }
        if self.peek().is_none_or(|t| t.text != ".address_size") {
            return Err(SimError::MissingDirective {
                directive: ".address_size",
            });
        }
        self.pos += 1;
        let size = self.next("64")?;
        if size.text != "64" {
            return Err(self.unsupported(size.line, "address size (only 64)"));
        }
        Ok(target.text.to_string())
    }

    /// `.visible .entry NAME( .param .u64 P, ... ) [.maxntid X[, Y[, Z]]] {`
    #[allow(clippy::type_complexity)]
    fn entry_header(&mut self) -> Result<(&'a str, Vec<(&'a str, usize)>, Option<[u32; 3]>), SimError> {
        self.keyword(".visible", "`.visible`")?;
        self.keyword(".entry", "`.entry`")?;
        let name = self.name("an entry name")?;
        self.punct('(', "`(`")?;
        let mut params = Vec::new();
        if !self.is_punct(')') {
            loop {
                self.keyword(".param", "`.param .u64 NAME`")?;
                let ty = self.next("`.u64`")?;
                if ty.text != ".u64" {
                    return Err(self.unsupported(ty.line, "parameter type (only .param .u64)"));
                }
                let line = self.here();
                params.push((self.name("a parameter name")?, line));
                if self.is_punct(',') {
                    self.pos += 1;
                } else {
                    break;
                }
            }
        }
        self.punct(')', "`)` or `,`")?;
        let mut maxntid = None;
        if let Some(t) = self.peek() {
            if t.text == ".maxntid" {
                self.pos += 1;
                let mut dims = [1u32; 3];
                for (i, d) in dims.iter_mut().enumerate() {
                    if i > 0 {
                        if !self.is_punct(',') {
                            break;
                        }
                        self.pos += 1;
                    }
                    *d = self.count("a thread count")?;
                }
                maxntid = Some(dims);
            } else if t.kind == Kind::Word {
                return Err(self.unsupported(t.line, "entry directive (only .maxntid)"));
            }
        }
        self.punct('{', "`{`")?;
        Ok((name, params, maxntid))
    }

    /// The statements up to the entry's closing `}` (consumed).
    fn body(&mut self) -> Result<Body<'a>, SimError> {
        let mut body = Body::default();
        loop {
            let start = self.pos;
            let t = self.next("`}` closing the entry")?;
            let line = t.line;
            match (t.kind, t.text) {
                (Kind::Punct('}'), _) => {
                    body.end_line = line;
                    return Ok(body);
                }
                (_, ".reg") => {
                    let ty = self.word("a register type")?;
                    let ty = match ty.strip_prefix('.').and_then(Ty::parse) {
                        Some(ty @ (Ty::Pred | Ty::B16 | Ty::B32 | Ty::U32 | Ty::S32 | Ty::B64 | Ty::U64 | Ty::S64 | Ty::F32)) => ty,
                        _ => return Err(self.unsupported(line, "register type")),
                    };
                    let prefix = self.word("`%name<N>`")?;
                    if !prefix.starts_with('%') || prefix.contains('.') {
                        return Err(SimError::Syntax {
                            line,
                            text: self.text(line),
                            expected: "`%name<N>`",
                        });
                    }
                    self.punct('<', "`%name<N>`")?;
                    let n = self.count("a register count")?;
                    self.punct('>', "`>`")?;
                    self.punct(';', "`;`")?;
                    body.regs.push((prefix, ty, n, line));
                }
                (_, ".shared") => {
                    let mut align = 1;
                    if self.peek().is_some_and(|t| t.text == ".align") {
                        self.pos += 1;
                        align = self.count("an alignment")?;
                        if !align.is_power_of_two() {
                            return Err(SimError::Syntax {
                                line,
                                text: self.text(line),
                                expected: "a power-of-two alignment",
                            });
                        }
                    }
                    if self.peek().is_none_or(|t| t.text != ".b8") {
                        return Err(self.unsupported(line, "shared array type (only .b8)"));
                    }
                    self.pos += 1;
                    let name = self.name("a shared array name")?;
                    self.punct('[', "`[`")?;
                    let n = self.count("an array size")?;
                    self.punct(']', "`]`")?;
                    self.punct(';', "`;`")?;
                    body.shared.push((name, align, n, line));
                }
                (Kind::Word, w) if self.is_punct(':') && !w.starts_with(['.', '%']) => {
                    self.pos += 1;
                    body.labels.push((w, body.instrs.len(), line));
                }
                (Kind::Word, w) if w.starts_with('.') => return Err(self.unsupported(line, "directive in an entry body")),
                (Kind::Punct('@'), _) | (Kind::Word, _) => {
                    self.pos = start;
                    let instr = self.instruction()?;
                    body.instrs.push(instr);
                }
                _ => return Err(self.syntax("a declaration, a label or an instruction")),
            }
            if self.toks[start..self.pos].iter().any(|t| t.line != line) || self.peek().is_some_and(|t| t.line == line) {
                return Err(SimError::Syntax {
                    line,
                    text: self.text(line),
                    expected: "one statement per line",
                });
            }
        }
    }

    fn instruction(&mut self) -> Result<RawInstr<'a>, SimError> {
        let line = self.here();
        let mut guard = None;
        if self.is_punct('@') {
            self.pos += 1;
            let negate = self.is_punct('!');
            if negate {
                self.pos += 1;
            }
            guard = Some((self.word("a predicate register")?, negate));
        }
        let opcode = self.word("an opcode")?;
        if opcode.starts_with(['.', '%']) {
            return Err(SimError::Syntax {
                line,
                text: self.text(line),
                expected: "an opcode",
            });
        }
        let mut operands = Vec::new();
        if !self.is_punct(';') {
            loop {
                operands.push(self.operand()?);
                if self.is_punct(',') {
                    self.pos += 1;
                } else {
                    break;
                }
            }
        }
        self.punct(';', "`;` ending the instruction")?;
        Ok(RawInstr {
            line,
            guard,
            opcode,
            operands,
        })
    }

    fn operand(&mut self) -> Result<Operand<'a>, SimError> {
        let t = self.next("an operand")?;
        Ok(match t.kind {
            Kind::Punct('[') => {
                let base = self.word("an address register or parameter")?;
                let mut off = None;
                if self.is_punct('+') {
                    self.pos += 1;
                    let neg = self.is_punct('-');
                    if neg {
                        self.pos += 1;
                    }
                    off = Some(self.int(neg)?);
                }
                self.punct(']', "`]`")?;
                Operand::Addr { base, off }
            }
            Kind::Punct('{') => {
                let mut regs = vec![self.word("a register")?];
                while self.is_punct(',') {
                    self.pos += 1;
                    regs.push(self.word("a register")?);
                }
                self.punct('}', "`}` closing the vector")?;
                Operand::Vector(regs)
            }
            Kind::Punct('-') => Operand::Imm(Imm::Int(self.int(true)?.into())),
            Kind::Num => Operand::Imm(parse_number(t.text, false).ok_or_else(|| self.syntax_at(t.line, "a number"))?),
            Kind::Word if t.text.starts_with('%') => Operand::Reg(t.text),
            Kind::Word if !t.text.starts_with('.') => Operand::Sym(t.text),
            _ => return Err(self.syntax_at(t.line, "an operand")),
        })
    }

    fn syntax_at(&self, line: usize, expected: &'static str) -> SimError {
        SimError::Syntax {
            line,
            text: self.text(line),
            expected,
        }
    }

    /// An integer literal (the sign already consumed when `neg`).
    fn int(&mut self, neg: bool) -> Result<i64, SimError> {
        let t = self.next("an integer")?;
        match (t.kind, parse_number(t.text, neg)) {
            (Kind::Num, Some(Imm::Int(v))) if i64::try_from(v).is_ok() => Ok(v as i64),
            _ => Err(self.syntax_at(t.line, "an integer")),
        }
    }
}

/// Parses a number token: decimal, `0x` hex (both at most 64 bits, negated
/// when `neg`), or `0fXXXXXXXX` (exactly 8 hex digits, never negated).
pub(crate) fn parse_number(text: &str, neg: bool) -> Option<Imm> {
    let (digits, radix) = if let Some(h) = text.strip_prefix("0f").or_else(|| text.strip_prefix("0F")) {
        if neg || h.len() != 8 || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        return u32::from_str_radix(h, 16).ok().map(Imm::F32);
    } else if let Some(h) = text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        (h, 16)
    } else {
        (text, 10)
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let v = u64::from_str_radix(digits, radix).ok()? as i128;
    Some(Imm::Int(if neg { -v } else { v }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers() {
        assert_eq!(parse_number("42", false), Some(Imm::Int(42)));
        assert_eq!(parse_number("42", true), Some(Imm::Int(-42)));
        assert_eq!(parse_number("0xff", false), Some(Imm::Int(255)));
        assert_eq!(parse_number("0f3f800000", false), Some(Imm::F32(0x3f80_0000)));
        assert_eq!(parse_number("0f3f80000", false), None);
        assert_eq!(parse_number("0f3f800000", true), None);
        assert_eq!(parse_number("12a", false), None);
        assert_eq!(parse_number("18446744073709551616", false), None);
    }
}
