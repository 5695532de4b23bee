//! A small Python tokenizer for `tunegate lint`: enough of the language's lexical grammar that a
//! call site inside a comment, a docstring or any other string literal never looks like code.
//!
//! Handled: `#` comments; single-, double- and triple-quoted strings with every prefix (`r`,
//! `b`, `u`, `f`, `t` and their combinations, any case), escapes (raw strings still skip an
//! escaped quote, as CPython does); f-string replacement fields, including nested strings and
//! nested f-strings (PEP 701 style) up to [`MAX_FSTRING_NESTING`]; backslash line continuations;
//! bracket nesting (newlines inside brackets do not end a logical line). Everything is one
//! linear pass with no recursion beyond the bounded f-string nesting, and malformed input
//! (unterminated strings, stray closing brackets) never fails: an unterminated triple-quoted
//! string runs to the end of the input, an unterminated single-quoted one to the end of its line,
//! the way CPython's error recovery would read it.
//!
//! Tokens carry byte offsets and the 1-based line they start on; columns are computed on demand
//! by the caller (only findings need them).

/// f-strings nested inside f-string replacement fields deeper than this are scanned as plain
/// strings (CPython itself stops at a small fixed depth).
pub const MAX_FSTRING_NESTING: u8 = 8;

/// What a token is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An identifier or keyword.
    Name,
    /// A numeric literal.
    Number,
    /// A string literal, prefix and quotes included.
    Str,
    /// An operator or delimiter (`(`, `.`, `=`, `**`, ...).
    Op,
    /// The end of a logical line (a newline outside brackets).
    Newline,
}

/// One token: `src[start..end]`, starting on 1-based `line`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Token {
    /// Kind.
    pub kind: Kind,
    /// Byte offset of the first byte.
    pub start: u32,
    /// Byte offset one past the last byte.
    pub end: u32,
    /// 1-based line of the first byte.
    pub line: u32,
}

impl Token {
    /// The token's text.
    pub fn text<'a>(&self, src: &'a str) -> &'a str {
        &src[self.start as usize..self.end as usize]
    }
}

const STRING_PREFIXES: &[&str] = &["r", "u", "b", "f", "t", "br", "rb", "fr", "rf", "tr", "rt"];

struct Lexer<'a> {
    b: &'a [u8],
    i: usize,
    line: u32,
}

impl Lexer<'_> {
    fn peek(&self, k: usize) -> u8 {
        self.b.get(self.i + k).copied().unwrap_or(0)
    }

    /// Consumes a newline at `i` (`\n`, `\r\n` or `\r`) and counts it.
    fn newline(&mut self) {
        if self.peek(0) == b'\r' && self.peek(1) == b'\n' {
            self.i += 2;
        } else {
            self.i += 1;
        }
        self.line = self.line.saturating_add(1);
    }

    /// Scans a string body from just after its opening quote(s); leaves `i` after the closing
    /// quote(s) or at the end (triple-quoted) / line end (single-quoted) when unterminated.
    fn string_body(&mut self, quote: u8, triple: bool, fstring: bool, depth: u8) {
        while self.i < self.b.len() {
            let c = self.b[self.i];
            match c {
                b'\\' => {
                    self.i += 1;
                    if matches!(self.peek(0), b'\n' | b'\r') {
                        self.newline();
                    } else if self.i < self.b.len() {
                        self.i += 1;
                    }
                }
                b'\n' | b'\r' => {
                    if !triple {
                        return;
                    }
                    self.newline();
                }
                _ if c == quote => {
                    if !triple {
                        self.i += 1;
                        return;
                    }
                    if self.peek(1) == quote && self.peek(2) == quote {
                        self.i += 3;
                        return;
                    }
                    self.i += 1;
                }
                b'{' if fstring => {
                    if self.peek(1) == b'{' {
                        self.i += 2;
                    } else {
                        self.i += 1;
                        self.replacement_field(depth);
                    }
                }
                _ => self.i += 1,
            }
        }
    }

    /// Skips an f-string replacement field (after its `{`) up to its closing `}`, skipping
    /// nested strings and brackets.
    fn replacement_field(&mut self, depth: u8) {
        let mut nest = 0u32;
        while self.i < self.b.len() {
            let c = self.b[self.i];
            match c {
                b'{' | b'(' | b'[' => {
                    nest += 1;
                    self.i += 1;
                }
                b')' | b']' => {
                    nest = nest.saturating_sub(1);
                    self.i += 1;
                }
                b'}' => {
                    self.i += 1;
                    if nest == 0 {
                        return;
                    }
                    nest -= 1;
                }
                b'\'' | b'"' => {
                    // A nested string; its prefix letters were skipped as ordinary bytes, so
                    // look back for an `f` to know whether it has fields of its own.
                    let f = self.i > 0 && matches!(self.b[self.i - 1], b'f' | b'F');
                    self.open_string(c, f && depth < MAX_FSTRING_NESTING, depth + 1);
                }
                b'\n' | b'\r' => self.newline(),
                _ => self.i += 1,
            }
        }
    }

    /// At an opening quote: consumes the whole literal.
    fn open_string(&mut self, quote: u8, fstring: bool, depth: u8) {
        let triple = self.peek(1) == quote && self.peek(2) == quote;
        self.i += if triple { 3 } else { 1 };
        self.string_body(quote, triple, fstring, depth);
    }
}

fn is_name_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_' || c >= 0x80
}

fn is_name_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c >= 0x80
}

/// Tokenizes Python source. Never fails; see the module docs for how malformed input reads.
/// Sources longer than `u32::MAX` bytes are cut there (callers bound sizes far below that).
pub fn tokenize(src: &str) -> Vec<Token> {
    let b = &src.as_bytes()[..src.len().min(u32::MAX as usize)];
    let mut lx = Lexer { b, i: 0, line: 1 };
    let mut out: Vec<Token> = Vec::new();
    let mut depth: u32 = 0;
    while lx.i < b.len() {
        let c = b[lx.i];
        let start = lx.i;
        let line = lx.line;
        let push = |out: &mut Vec<Token>, kind: Kind, end: usize| {
            out.push(Token {
                kind,
                start: start as u32,
                end: end as u32,
                line,
            })
        };
        match c {
            b' ' | b'\t' | b'\x0c' => lx.i += 1,
            b'\n' | b'\r' => {
                lx.newline();
                if depth == 0 && out.last().is_some_and(|t| t.kind != Kind::Newline) {
                    push(&mut out, Kind::Newline, start);
                }
            }
            b'#' => {
                while lx.i < b.len() && !matches!(b[lx.i], b'\n' | b'\r') {
                    lx.i += 1;
                }
            }
            b'\\' if matches!(lx.peek(1), b'\n' | b'\r') => {
                lx.i += 1;
                lx.newline();
            }
            b'\'' | b'"' => {
                lx.open_string(c, false, 0);
                push(&mut out, Kind::Str, lx.i);
            }
            _ if is_name_start(c) => {
                while lx.i < b.len() && is_name_char(b[lx.i]) {
                    lx.i += 1;
                }
                let word = &src[start..lx.i];
                let q = lx.peek(0);
                if (q == b'\'' || q == b'"')
                    && word.len() <= 2
                    && STRING_PREFIXES.contains(&word.to_ascii_lowercase().as_str())
                {
                    let lower = word.to_ascii_lowercase();
                    let fstring = lower.contains('f') || lower.contains('t');
                    lx.open_string(q, fstring, 0);
                    push(&mut out, Kind::Str, lx.i);
                } else {
                    push(&mut out, Kind::Name, lx.i);
                }
            }
            _ if c.is_ascii_digit() || (c == b'.' && lx.peek(1).is_ascii_digit()) => {
                while lx.i < b.len() {
                    let d = b[lx.i];
                    if matches!(d, b'e' | b'E')
                        && matches!(lx.peek(1), b'+' | b'-')
                        && !src[start..lx.i].starts_with("0x")
                        && !src[start..lx.i].starts_with("0X")
                    {
                        lx.i += 2;
                    } else if d.is_ascii_alphanumeric() || d == b'_' || d == b'.' {
                        lx.i += 1;
                    } else {
                        break;
                    }
                }
                push(&mut out, Kind::Number, lx.i);
            }
            _ => {
                let two = [c, lx.peek(1)];
                let len = match &two {
                    b"**" | b"//" | b"<<" | b">>" => {
                        if lx.peek(2) == b'=' {
                            3
                        } else {
                            2
                        }
                    }
                    b"->" | b":=" => 2,
                    [x, b'='] if b"=!<>*/%&|^@+-:".contains(x) => 2,
                    b".." if lx.peek(2) == b'.' => 3,
                    _ => {
                        // One character, which may be multi-byte (stray non-ASCII is a Name).
                        1
                    }
                };
                match c {
                    b'(' | b'[' | b'{' => depth = depth.saturating_add(1),
                    b')' | b']' | b'}' => depth = depth.saturating_sub(1),
                    _ => {}
                }
                lx.i += len;
                push(&mut out, Kind::Op, lx.i);
            }
        }
    }
    if out.last().is_some_and(|t| t.kind != Kind::Newline) {
        out.push(Token {
            kind: Kind::Newline,
            start: b.len() as u32,
            end: b.len() as u32,
            line: lx.line,
        });
    }
    out
}

/// The value of a plain string literal token (prefix and quotes stripped, escapes left as
/// written), or `None` for f-strings and non-strings.
pub fn string_value(text: &str) -> Option<&str> {
    let q = text.find(['\'', '"'])?;
    let prefix = text[..q].to_ascii_lowercase();
    if prefix.contains('f') || prefix.contains('t') {
        return None;
    }
    let body = &text[q..];
    for quotes in ["\"\"\"", "'''", "\"", "'"] {
        if body.len() >= 2 * quotes.len() && body.starts_with(quotes) && body.ends_with(quotes) {
            return Some(&body[quotes.len()..body.len() - quotes.len()]);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(src: &str) -> Vec<(Kind, &str)> {
        tokenize(src)
            .iter()
            .map(|t| (t.kind, t.text(src)))
            .collect()
    }

    fn names(src: &str) -> Vec<&str> {
        kinds(src)
            .into_iter()
            .filter(|(k, _)| *k == Kind::Name)
            .map(|(_, t)| t)
            .collect()
    }

    #[test]
    fn comments_and_strings_hide_code() {
        let src = "# pickle.load(f)\nx = 'pickle.load(f)'  # torch.load\ny = \"\"\"\ntorch.load(p)\n\"\"\"\n";
        assert_eq!(names(src), ["x", "y"]);
    }

    #[test]
    fn prefixes_triple_quotes_and_escapes() {
        let src = r#"a = rb'\'' ; b = F"x{y}" ; c = Br"""q""" ; d = '\\' ; e"#;
        assert_eq!(names(src), ["a", "b", "c", "d", "e"]);
        let strs: Vec<_> = kinds(src)
            .into_iter()
            .filter(|(k, _)| *k == Kind::Str)
            .map(|(_, t)| t)
            .collect();
        assert_eq!(strs, [r"rb'\''", r#"F"x{y}""#, r#"Br"""q""""#, r"'\\'"]);
    }

    #[test]
    fn fstring_fields_with_nested_quotes_and_braces() {
        let src = "s = f\"{d[\"k\"]} {{literal}} {f'{x!r}'} {g({'a': 1})}\"\nz = 1\n";
        assert_eq!(names(src), ["s", "z"]);
    }

    #[test]
    fn continuation_and_brackets_join_logical_lines() {
        let src = "x = f(a,\n      b) \\\n  + 1\ny = 2\n";
        let t = tokenize(src);
        let newlines: Vec<u32> = t
            .iter()
            .filter(|t| t.kind == Kind::Newline)
            .map(|t| t.line)
            .collect();
        assert_eq!(newlines, [3, 4]);
        let y = t.iter().find(|t| t.text(src) == "y").unwrap();
        assert_eq!(y.line, 4);
    }

    #[test]
    fn line_numbers_count_newlines_inside_strings() {
        let src = "a = '''\n\n'''\nb = 'x\\\ny'\nc\r\nd";
        let t = tokenize(src);
        let line = |n: &str| t.iter().find(|t| t.text(src) == n).unwrap().line;
        assert_eq!((line("a"), line("b"), line("c"), line("d")), (1, 4, 6, 7));
    }

    #[test]
    fn unterminated_strings_do_not_swallow_the_file() {
        let src = "x = 'oops\ntorch.load(p)\n";
        assert!(names(src).contains(&"torch"));
        // An unterminated triple-quoted string runs to the end, as CPython reads it.
        assert_eq!(names("x = '''\ntorch.load(p)\n"), ["x"]);
    }

    #[test]
    fn operators() {
        let ops: Vec<_> = kinds("a == b; c = d; f(**k); e <= 1; x := 2; ...")
            .into_iter()
            .filter(|(k, _)| *k == Kind::Op)
            .map(|(_, t)| t)
            .collect();
        assert_eq!(
            ops,
            ["==", ";", "=", ";", "(", "**", ")", ";", "<=", ";", ":=", ";", "..."]
        );
    }

    #[test]
    fn string_values() {
        assert_eq!(
            string_value("'trust_remote_code'"),
            Some("trust_remote_code")
        );
        assert_eq!(string_value("r\"\"\"x\"\"\""), Some("x"));
        assert_eq!(string_value("f'x'"), None);
        assert_eq!(string_value("'"), None);
    }

    #[test]
    fn arbitrary_text_never_panics() {
        for s in [
            "'",
            "\"\"\"",
            "f'{",
            "f'{'",
            "\\",
            "((((",
            "))))",
            "1e+",
            "0x1e-",
            "é(",
            "f\"{f'{f\"{",
            "\r",
        ] {
            let t = tokenize(s);
            for tok in &t {
                assert!(tok.start <= tok.end && tok.end as usize <= s.len());
                let _ = tok.text(s);
            }
        }
    }
}
