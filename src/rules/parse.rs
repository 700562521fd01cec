//! The rule-file syntax (documented in `rules/README.md`).
//!
//! ```text
//! # a comment
//! rule layout/transpose-cancel
//!   (transpose ?p (transpose ?q ?x)) => ?x
//!   if (perms-inverse ?p ?q)
//!
//! rule fusion/merge-sibling-matmuls
//!   ?o1 = (matmul ?x ?w1), ?o2 = (matmul ?x ?w2) => (@merge-matmuls ?o1 ?o2 ?x ?w1 ?w2)
//!
//! rule fusion/elementwise-chain = @elementwise-chain
//! ```
//! Parsing yields [`RuleText`]s with positions; turning them into e-graph rewrites
//! (and checking predicates, builtins and variables) is [`super::compile`]'s job.

use crate::error::Error;

/// A position in a rule file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Pos {
    /// 1-based line.
    pub line: usize,
    /// 1-based column (in characters).
    pub column: usize,
}

/// An s-expression with the position of its first character.
#[derive(Clone, Debug, PartialEq)]
pub enum Sexp {
    /// An atom: an operator, a variable `?x`, a literal or a builtin `@name`.
    Atom(String, Pos),
    /// A parenthesized list.
    List(Vec<Sexp>, Pos),
}

impl Sexp {
    /// Where it starts.
    pub fn pos(&self) -> Pos {
        match self {
            Sexp::Atom(_, p) | Sexp::List(_, p) => *p,
        }
    }

    /// The atom text, if an atom.
    pub fn atom(&self) -> Option<&str> {
        match self {
            Sexp::Atom(a, _) => Some(a),
            Sexp::List(..) => None,
        }
    }
}

impl std::fmt::Display for Sexp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Sexp::Atom(a, _) => f.write_str(a),
            Sexp::List(items, _) => {
                f.write_str("(")?;
                for (i, it) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(" ")?;
                    }
                    write!(f, "{it}")?;
                }
                f.write_str(")")
            }
        }
    }
}

/// One side of a rule: a single pattern, or named patterns for a multi-pattern rule.
#[derive(Clone, Debug, PartialEq)]
pub enum Side {
    /// `(op ...)` or `?x`.
    Single(Sexp),
    /// `?a = (...), ?b = (...)`.
    Multi(Vec<(String, Sexp)>),
}

/// The direction of a rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Direction {
    /// `lhs => rhs`
    Forward,
    /// `lhs <=> rhs`: also adds `rhs => lhs`.
    Both,
}

/// The body of a rule.
#[derive(Clone, Debug, PartialEq)]
pub enum Body {
    /// A rewrite with optional conditions.
    Rewrite {
        /// Left-hand side.
        lhs: Side,
        /// Right-hand side.
        rhs: Side,
        /// `=>` or `<=>`.
        direction: Direction,
        /// `if` conditions, each `(predicate args...)`.
        conditions: Vec<Sexp>,
    },
    /// `= @name`: a rule implemented entirely by a built-in searcher and applier.
    Builtin(String, Pos),
}

/// A parsed rule.
#[derive(Clone, Debug, PartialEq)]
pub struct RuleText {
    /// `family/short-name`.
    pub name: String,
    /// Where `rule` was written.
    pub pos: Pos,
    /// Marked `approx` (changes the computed function within a declared error).
    pub approx: bool,
    /// The body.
    pub body: Body,
}

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Open,
    Close,
    Comma,
    Eq,
    Arrow,
    BiArrow,
    Atom(String),
}

fn describe(t: Option<&(Tok, Pos)>) -> String {
    match t {
        None => "end of file".into(),
        Some((Tok::Open, _)) => "'('".into(),
        Some((Tok::Close, _)) => "')'".into(),
        Some((Tok::Comma, _)) => "','".into(),
        Some((Tok::Eq, _)) => "'='".into(),
        Some((Tok::Arrow, _)) => "'=>'".into(),
        Some((Tok::BiArrow, _)) => "'<=>'".into(),
        Some((Tok::Atom(a), _)) => format!("\"{a}\""),
    }
}

fn tokenize(text: &str, file: &str) -> Result<Vec<(Tok, Pos)>, Error> {
    let mut toks = Vec::new();
    for (li, line) in text.lines().enumerate() {
        let chars: Vec<char> = line.chars().collect();
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            let pos = Pos {
                line: li + 1,
                column: i + 1,
            };
            if c == '#' {
                break;
            }
            if c.is_whitespace() {
                i += 1;
                continue;
            }
            let rest: String = chars[i..].iter().take(3).collect();
            let (tok, len) = if c == '(' {
                (Tok::Open, 1)
            } else if c == ')' {
                (Tok::Close, 1)
            } else if c == ',' {
                (Tok::Comma, 1)
            } else if rest.starts_with("<=>") {
                (Tok::BiArrow, 3)
            } else if rest.starts_with("=>") {
                (Tok::Arrow, 2)
            } else if c == '=' {
                (Tok::Eq, 1)
            } else if c == '[' {
                let Some(end) = chars[i..].iter().position(|&x| x == ']') else {
                    return Err(Error::RuleSyntax {
                        file: file.into(),
                        line: pos.line,
                        column: pos.column,
                        expected: "']' closing the list".into(),
                        found: "end of line".into(),
                    });
                };
                let s: String = chars[i..=i + end].iter().filter(|c| !c.is_whitespace()).collect();
                (Tok::Atom(s), end + 1)
            } else {
                let len = chars[i..]
                    .iter()
                    .position(|&x| x.is_whitespace() || "(),#=".contains(x))
                    .unwrap_or(chars.len() - i);
                let s: String = chars[i..i + len].iter().collect();
                (Tok::Atom(s), len)
            };
            toks.push((tok, pos));
            i += len;
        }
    }
    Ok(toks)
}

struct Parser<'a> {
    toks: Vec<(Tok, Pos)>,
    i: usize,
    file: &'a str,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&(Tok, Pos)> {
        self.toks.get(self.i)
    }

    fn err(&self, expected: &str) -> Error {
        let (line, column) = match self.peek() {
            Some((_, p)) => (p.line, p.column),
            None => self.toks.last().map_or((1, 1), |(_, p)| (p.line, p.column + 1)),
        };
        Error::RuleSyntax {
            file: self.file.into(),
            line,
            column,
            expected: expected.into(),
            found: describe(self.peek()),
        }
    }

    fn at_keyword(&self, kw: &str) -> bool {
        matches!(self.peek(), Some((Tok::Atom(a), _)) if a == kw)
    }

    fn sexp(&mut self) -> Result<Sexp, Error> {
        match self.peek().cloned() {
            Some((Tok::Atom(a), p)) => {
                self.i += 1;
                Ok(Sexp::Atom(a, p))
            }
            Some((Tok::Open, p)) => {
                self.i += 1;
                let mut items = Vec::new();
                loop {
                    match self.peek() {
                        Some((Tok::Close, _)) => {
                            self.i += 1;
                            break;
                        }
                        Some((Tok::Atom(_), _)) | Some((Tok::Open, _)) => items.push(self.sexp()?),
                        _ => return Err(self.err("an atom, '(' or ')'")),
                    }
                }
                if items.is_empty() || items[0].atom().is_none() {
                    return Err(Error::RuleSyntax {
                        file: self.file.into(),
                        line: p.line,
                        column: p.column,
                        expected: "an operator name after '('".into(),
                        found: if items.is_empty() { "()".into() } else { "a list".into() },
                    });
                }
                Ok(Sexp::List(items, p))
            }
            _ => Err(self.err("a pattern: an atom or '('")),
        }
    }

    fn side(&mut self) -> Result<Side, Error> {
        let first = self.sexp()?;
        if !matches!(self.peek(), Some((Tok::Eq, _))) {
            return Ok(Side::Single(first));
        }
        let mut items = Vec::new();
        let mut var = first;
        loop {
            let Some(v) = var.atom().filter(|a| a.starts_with('?')).map(str::to_string) else {
                return Err(Error::RuleSyntax {
                    file: self.file.into(),
                    line: var.pos().line,
                    column: var.pos().column,
                    expected: "a variable ?name before '='".into(),
                    found: var.to_string(),
                });
            };
            if !matches!(self.peek(), Some((Tok::Eq, _))) {
                return Err(self.err("'=' after the variable of a multi-pattern"));
            }
            self.i += 1;
            items.push((v, self.sexp()?));
            if matches!(self.peek(), Some((Tok::Comma, _))) {
                self.i += 1;
                var = self.sexp()?;
            } else {
                return Ok(Side::Multi(items));
            }
        }
    }

    fn rule(&mut self) -> Result<RuleText, Error> {
        let pos = self.peek().map(|(_, p)| *p).expect("called at 'rule'");
        self.i += 1;
        let name = match self.peek().cloned() {
            Some((Tok::Atom(a), _)) if a.contains('/') => {
                self.i += 1;
                a
            }
            _ => return Err(self.err("a rule name family/short-name")),
        };
        let approx = if self.at_keyword("approx") {
            self.i += 1;
            true
        } else {
            false
        };
        if matches!(self.peek(), Some((Tok::Eq, _))) {
            self.i += 1;
            return match self.peek().cloned() {
                Some((Tok::Atom(a), p)) if a.starts_with('@') => {
                    self.i += 1;
                    Ok(RuleText {
                        name,
                        pos,
                        approx,
                        body: Body::Builtin(a[1..].to_string(), p),
                    })
                }
                _ => Err(self.err("a built-in rule @name after '='")),
            };
        }
        let lhs = self.side()?;
        let direction = match self.peek() {
            Some((Tok::Arrow, _)) => Direction::Forward,
            Some((Tok::BiArrow, _)) => Direction::Both,
            _ => return Err(self.err("'=>' or '<=>'")),
        };
        self.i += 1;
        let rhs = self.side()?;
        let mut conditions = Vec::new();
        if self.at_keyword("if") {
            self.i += 1;
            while matches!(self.peek(), Some((Tok::Open, _))) {
                conditions.push(self.sexp()?);
            }
            if conditions.is_empty() {
                return Err(self.err("a condition (predicate args...) after 'if'"));
            }
        }
        if self.peek().is_some() && !self.at_keyword("rule") {
            return Err(self.err("'if', the next 'rule' or end of file"));
        }
        Ok(RuleText {
            name,
            pos,
            approx,
            body: Body::Rewrite {
                lhs,
                rhs,
                direction,
                conditions,
            },
        })
    }
}

/// Parses a whole rule file. `file` names it in errors.
pub fn parse_rules(text: &str, file: &str) -> Result<Vec<RuleText>, Error> {
    let mut p = Parser {
        toks: tokenize(text, file)?,
        i: 0,
        file,
    };
    let mut rules = Vec::new();
    while p.peek().is_some() {
        if !p.at_keyword("rule") {
            return Err(p.err("'rule'"));
        }
        rules.push(p.rule()?);
    }
    Ok(rules)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_form() {
        let text = "# c\nrule a/x (transpose [0, 2,1] ?x) => ?x if (identity-perm [0,2,1])\n\
                    rule a/y ?o = (matmul ?x ?w), ?p = (matmul ?x ?v) => (@merge ?o ?p)\n\
                    rule a/z approx = @thing\nrule a/w (neg (neg ?x)) <=> ?x\n";
        let rules = parse_rules(text, "t.rules").unwrap();
        assert_eq!(rules.len(), 4);
        let Body::Rewrite {
            lhs: Side::Single(l),
            conditions,
            ..
        } = &rules[0].body
        else {
            panic!("{:?}", rules[0])
        };
        assert_eq!(l.to_string(), "(transpose [0,2,1] ?x)");
        assert_eq!(conditions.len(), 1);
        assert!(matches!(&rules[1].body, Body::Rewrite { lhs: Side::Multi(v), .. } if v.len() == 2));
        assert!(rules[2].approx && matches!(&rules[2].body, Body::Builtin(n, _) if n == "thing"));
        assert!(matches!(
            &rules[3].body,
            Body::Rewrite {
                direction: Direction::Both,
                ..
            }
        ));
    }

    #[test]
    fn errors_point_at_line_and_column() {
        let err = parse_rules("rule a/x\n  (relu ?x) -> ?x\n", "f.rules").unwrap_err();
        assert_eq!(err.to_string(), "f.rules:2:13: expected '=>' or '<=>', found \"->\"");
        let err = parse_rules("rule nofamily (relu ?x) => ?x", "f.rules").unwrap_err();
        assert!(err.to_string().starts_with("f.rules:1:6: expected a rule name"), "{err}");
    }
}
