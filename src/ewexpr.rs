//! Elementwise expressions: the body of a fused kernel.
//!
//! An [`EwExpr`] is a tree of unary and binary elementwise ops over numbered inputs
//! `x0, x1, ...` and scalar literals. It has two spellings of one grammar:
//! `relu(add(x0, x1))` (graph.json, readable) and `relu[add[x0,x1]]` (an e-graph
//! atom, which may hold no spaces or parentheses). [`EwExpr::parse`] accepts both.
//! Inputs broadcast against each other with NumPy rules, like the binary ops.

use crate::graph::op::{BinaryOp, UnaryOp};
use std::fmt;

/// An elementwise expression tree.
#[derive(Clone, Debug, PartialEq, PartialOrd)]
pub enum EwExpr {
    /// Input number `i` of the kernel.
    Input(usize),
    /// A scalar literal.
    Lit(f64),
    /// A unary op.
    Unary(UnaryOp, Box<EwExpr>),
    /// A binary op.
    Binary(BinaryOp, Box<EwExpr>, Box<EwExpr>),
}

/// Why an expression failed to parse: the byte offset and what was expected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("at offset {offset}: expected {expected}")]
pub struct ExprParseError {
    /// Byte offset in the text.
    pub offset: usize,
    /// What the parser expected there.
    pub expected: &'static str,
}

impl EwExpr {
    /// Parses either spelling (`f(a, b)` or `f[a,b]`).
    pub fn parse(text: &str) -> Result<EwExpr, ExprParseError> {
        let mut p = Parser {
            s: text.as_bytes(),
            pos: 0,
        };
        let e = p.expr()?;
        p.ws();
        if p.pos != p.s.len() {
            return Err(ExprParseError {
                offset: p.pos,
                expected: "end of expression",
            });
        }
        Ok(e)
    }

    /// Number of inputs: one more than the largest input index used (0 if none).
    pub fn num_inputs(&self) -> usize {
        match self {
            EwExpr::Input(i) => i + 1,
            EwExpr::Lit(_) => 0,
            EwExpr::Unary(_, a) => a.num_inputs(),
            EwExpr::Binary(_, a, b) => a.num_inputs().max(b.num_inputs()),
        }
    }

    /// Number of operator nodes (the fused kernel's op count).
    pub fn num_ops(&self) -> usize {
        match self {
            EwExpr::Input(_) | EwExpr::Lit(_) => 0,
            EwExpr::Unary(_, a) => 1 + a.num_ops(),
            EwExpr::Binary(_, a, b) => 1 + a.num_ops() + b.num_ops(),
        }
    }

    /// Floating-point operations per output element.
    pub fn flops_per_element(&self) -> u64 {
        match self {
            EwExpr::Input(_) | EwExpr::Lit(_) => 0,
            EwExpr::Unary(u, a) => u.flops_per_element() + a.flops_per_element(),
            EwExpr::Binary(b, x, y) => b.flops_per_element() + x.flops_per_element() + y.flops_per_element(),
        }
    }

    /// Evaluates at one point given the input values.
    pub fn eval(&self, inputs: &[f64]) -> f64 {
        match self {
            EwExpr::Input(i) => inputs[*i],
            EwExpr::Lit(v) => *v,
            EwExpr::Unary(u, a) => u.apply(a.eval(inputs)),
            EwExpr::Binary(b, x, y) => b.apply(x.eval(inputs), y.eval(inputs)),
        }
    }

    /// Replaces every input index `i` by `map(i)`.
    pub fn remap_inputs(&self, map: &dyn Fn(usize) -> EwExpr) -> EwExpr {
        match self {
            EwExpr::Input(i) => map(*i),
            EwExpr::Lit(v) => EwExpr::Lit(*v),
            EwExpr::Unary(u, a) => EwExpr::Unary(*u, Box::new(a.remap_inputs(map))),
            EwExpr::Binary(b, x, y) => EwExpr::Binary(*b, Box::new(x.remap_inputs(map)), Box::new(y.remap_inputs(map))),
        }
    }

    /// The compact atom spelling, `relu[add[x0,x1]]`, used inside the e-graph.
    pub fn to_atom(&self) -> String {
        let mut s = String::new();
        self.write(&mut s, '[', ']', ",");
        s
    }

    fn write(&self, out: &mut String, open: char, close: char, sep: &str) {
        match self {
            EwExpr::Input(i) => out.push_str(&format!("x{i}")),
            EwExpr::Lit(v) => out.push_str(&format_lit(*v)),
            EwExpr::Unary(u, a) => {
                out.push_str(u.short_name());
                out.push(open);
                a.write(out, open, close, sep);
                out.push(close);
            }
            EwExpr::Binary(b, x, y) => {
                out.push_str(b.short_name());
                out.push(open);
                x.write(out, open, close, sep);
                out.push_str(sep);
                y.write(out, open, close, sep);
                out.push(close);
            }
        }
    }
}

/// Formats a literal so that it parses back to the same `f64`.
fn format_lit(v: f64) -> String {
    let s = format!("{v:?}");
    if s.starts_with('-') || s.starts_with(|c: char| c.is_ascii_digit()) {
        s
    } else {
        format!("0{s}")
    }
}

impl fmt::Display for EwExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = String::new();
        self.write(&mut s, '(', ')', ", ");
        f.write_str(&s)
    }
}

struct Parser<'a> {
    s: &'a [u8],
    pos: usize,
}

impl Parser<'_> {
    fn ws(&mut self) {
        while self.pos < self.s.len() && self.s[self.pos].is_ascii_whitespace() {
            self.pos += 1;
        }
    }

    fn err(&self, expected: &'static str) -> ExprParseError {
        ExprParseError {
            offset: self.pos,
            expected,
        }
    }

    fn expect_one_of(&mut self, chars: &[u8], expected: &'static str) -> Result<(), ExprParseError> {
        self.ws();
        if self.pos < self.s.len() && chars.contains(&self.s[self.pos]) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.err(expected))
        }
    }

    fn expr(&mut self) -> Result<EwExpr, ExprParseError> {
        self.ws();
        let start = self.pos;
        while self.pos < self.s.len() && (self.s[self.pos].is_ascii_alphanumeric() || b"._-+".contains(&self.s[self.pos])) {
            self.pos += 1;
        }
        let word = std::str::from_utf8(&self.s[start..self.pos]).unwrap_or("");
        if word.is_empty() {
            return Err(self.err("an op name, an input xN or a number"));
        }
        if let Some(idx) = word.strip_prefix('x') {
            if let Ok(i) = idx.parse::<usize>() {
                return Ok(EwExpr::Input(i));
            }
        }
        if let Ok(v) = word.parse::<f64>() {
            return Ok(EwExpr::Lit(v));
        }
        if let Some(u) = UnaryOp::ALL.into_iter().find(|u| u.short_name() == word) {
            self.expect_one_of(b"([", "'(' after a unary op")?;
            let a = self.expr()?;
            self.expect_one_of(b")]", "')' closing a unary op")?;
            return Ok(EwExpr::Unary(u, Box::new(a)));
        }
        if let Some(b) = BinaryOp::ALL.into_iter().find(|b| b.short_name() == word) {
            self.expect_one_of(b"([", "'(' after a binary op")?;
            let x = self.expr()?;
            self.expect_one_of(b",", "',' between operands")?;
            let y = self.expr()?;
            self.expect_one_of(b")]", "')' closing a binary op")?;
            return Ok(EwExpr::Binary(b, Box::new(x), Box::new(y)));
        }
        self.pos = start;
        Err(self.err("a known elementwise op, an input xN or a number"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_spellings_round_trip() {
        let e = EwExpr::parse("relu(add(x0, mul(x1, -0.5)))").unwrap();
        assert_eq!(e.to_atom(), "relu[add[x0,mul[x1,-0.5]]]");
        assert_eq!(EwExpr::parse(&e.to_atom()).unwrap(), e);
        assert_eq!(EwExpr::parse(&e.to_string()).unwrap(), e);
        assert_eq!(e.num_inputs(), 2);
        assert_eq!(e.num_ops(), 3);
        assert_eq!(e.eval(&[1.0, 4.0]), 0.0);
        assert_eq!(e.eval(&[3.0, 2.0]), 2.0);
    }

    #[test]
    fn parse_errors_give_offsets() {
        let err = EwExpr::parse("relu(add(x0 x1))").unwrap_err();
        assert_eq!(err.offset, 12);
        assert!(EwExpr::parse("frobnicate(x0)").is_err());
        assert!(EwExpr::parse("relu(x0))").is_err());
    }
}
