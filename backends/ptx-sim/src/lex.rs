//! Tokenizer for the PTX subset.
//!
//! Tokens: words (`.entry`, `%r12`, `%tid.x`, `ld.global.f32`, `$L__BB0_1`,
//! `k_param_0` — they start with a letter, `_`, `$`, `%` or `.` and continue
//! with alphanumerics, `_`, `$`, `.`), numbers (start with a digit and continue
//! with alphanumerics: `42`, `0x1f`, `0f3f800000`), and the punctuation
//! `, ; : { } [ ] ( ) < > + - @ !`. `//` starts a comment to the end of the
//! line. Anything else is a syntax error naming its line.

use crate::error::SimError;

/// The class of a token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Word,
    Num,
    Punct(char),
}

/// One token and its 1-based line.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Tok<'a> {
    pub kind: Kind,
    pub text: &'a str,
    pub line: usize,
}

/// The source split into lines with comments removed and surrounding blanks
/// trimmed; `lines[i]` is line `i + 1`. Used for error messages.
pub(crate) fn clean_lines(src: &str) -> Vec<&str> {
    src.lines().map(|l| l.split("//").next().unwrap_or("").trim()).collect()
}

fn word_start(c: char) -> bool {
    c.is_ascii_alphabetic() || matches!(c, '_' | '$' | '%' | '.')
}

fn word_cont(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '$' | '.')
}

/// Tokenizes `src`.
pub(crate) fn lex(src: &str) -> Result<Vec<Tok<'_>>, SimError> {
    let mut toks = Vec::new();
    for (i, raw) in src.lines().enumerate() {
        let line = i + 1;
        let text = raw.split("//").next().unwrap_or("");
        let mut chars = text.char_indices().peekable();
        while let Some(&(start, c)) = chars.peek() {
            if c.is_whitespace() {
                chars.next();
                continue;
            }
            let kind = if word_start(c) {
                Kind::Word
            } else if c.is_ascii_digit() {
                Kind::Num
            } else if ",;:{}[]()<>+-@!".contains(c) {
                chars.next();
                toks.push(Tok {
                    kind: Kind::Punct(c),
                    text: &text[start..start + 1],
                    line,
                });
                continue;
            } else {
                return Err(SimError::Syntax {
                    line,
                    text: text.trim().to_string(),
                    expected: "a PTX token",
                });
            };
            chars.next();
            let mut end = start + c.len_utf8();
            while let Some(&(j, c)) = chars.peek() {
                let ok = match kind {
                    Kind::Word => word_cont(c),
                    _ => c.is_ascii_alphanumeric(),
                };
                if !ok {
                    break;
                }
                end = j + c.len_utf8();
                chars.next();
            }
            toks.push(Tok {
                kind,
                text: &text[start..end],
                line,
            });
        }
    }
    Ok(toks)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_numbers_and_punctuation() {
        let toks = lex("@!%p1 ld.global.f32 %f1, [%rd2+-4]; // c\n$L_1:").unwrap();
        let texts: Vec<&str> = toks.iter().map(|t| t.text).collect();
        assert_eq!(
            texts,
            [
                "@",
                "!",
                "%p1",
                "ld.global.f32",
                "%f1",
                ",",
                "[",
                "%rd2",
                "+",
                "-",
                "4",
                "]",
                ";",
                "$L_1",
                ":"
            ]
        );
        assert_eq!(toks[13].line, 2);
        assert_eq!(toks[10].kind, Kind::Num);
    }

    #[test]
    fn rejects_stray_characters() {
        assert!(matches!(lex("\n a = b;"), Err(SimError::Syntax { line: 2, .. })));
    }
}
