//! Invisible, bidi, tag and confusable characters, with spans.
//!
//! Two scanners share this module:
//!
//! - [`scan_invisible`] reports characters a reader cannot see but a tokenizer can: zero-width
//!   characters, bidi controls (Trojan Source), Unicode tags (ASCII smuggling), variation
//!   selectors (byte smuggling), Hangul fillers, C0/C1 controls and private-use characters.
//! - [`scan_confusable`] reports words whose letters look Latin but are not: a Latin word with
//!   Cyrillic or Greek homoglyphs (`pаypal`), a whole word of Latin look-alikes in an otherwise
//!   Latin text, and fullwidth or mathematically styled Latin that NFKC folds away.
//!
//! Design decision: **severity depends on context, not only on the code point.** Scanners that
//! flag every format character drown users in emoji and Persian text (ZWJ inside 👨‍👩‍👧, ZWNJ in
//! `می‌خواهم`, a BOM at the start of a pasted file, a right-to-left mark in Hebrew). Each class
//! therefore has a rule that looks at the neighbouring characters and the text's scripts, and
//! benign uses are not reported at all. The rules are listed on [`InvisibleClass`].
//!
//! Invariant for every hit: `span` is a half-open range of chars (Unicode scalar values, not
//! bytes) into the scanned text, non-empty, and hits come out sorted by `span[0]` and never
//! overlap.
use crate::Severity;
use serde::Serialize;
use std::fmt::Write as _;
use unicode_normalization::char::is_combining_mark;
use unicode_normalization::UnicodeNormalization;
use unicode_script::{Script, UnicodeScript};

/// True for Default_Ignorable_Code_Point characters (zero-width, joiners, soft hyphen, tags,
/// variation selectors, bidi format controls, Hangul fillers, ...).
pub fn is_default_ignorable(c: char) -> bool {
    matches!(c as u32,
        0x00AD | 0x034F | 0x061C | 0x115F..=0x1160 | 0x17B4..=0x17B5 | 0x180B..=0x180F
        | 0x200B..=0x200F | 0x202A..=0x202E | 0x2060..=0x206F | 0x3164 | 0xFE00..=0xFE0F
        | 0xFEFF | 0xFFA0 | 0xFFF0..=0xFFF8 | 0x1BCA0..=0x1BCA3 | 0x1D173..=0x1D17A
        | 0xE0000..=0xE0FFF)
}

/// The kind of invisible character a [`UnicodeHit`] reports, with the rule that sets its
/// severity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum InvisibleClass {
    /// Bidi embeddings and overrides U+202A–U+202E (LRE, RLE, PDF, LRO, RLO): reorder what is
    /// displayed (Trojan Source). High; embeddings in genuinely right-to-left text are medium.
    BidiOverride,
    /// Bidi isolates U+2066–U+2069 (LRI, RLI, FSI, PDI). High, low in right-to-left text.
    BidiIsolate,
    /// Directional marks U+200E LRM, U+200F RLM, U+061C ALM. High; not reported in
    /// right-to-left text, where they are ordinary.
    BidiMark,
    /// Unicode tags U+E0000–U+E007F, each an invisible copy of one ASCII character (ASCII
    /// smuggling). High; the emoji subdivision flags (🏴 + tags + CANCEL TAG) are not reported.
    Tag,
    /// U+200B ZERO WIDTH SPACE, U+2060 WORD JOINER, U+FEFF ZERO WIDTH NO-BREAK SPACE (BOM),
    /// U+180E MONGOLIAN VOWEL SEPARATOR. Inside a word (token-boundary manipulation) medium,
    /// elsewhere low; ZWSP between letters of scripts written without spaces (Thai, Khmer, CJK,
    /// ...) low; a BOM at offset 0 is not reported, elsewhere medium.
    ZeroWidth,
    /// U+200D ZERO WIDTH JOINER and U+200C ZERO WIDTH NON-JOINER. Not reported between emoji
    /// (ZWJ sequences) or next to letters of joining and Indic scripts (Arabic, Persian,
    /// Devanagari, ...); otherwise medium inside a word, low elsewhere.
    Joiner,
    /// U+00AD SOFT HYPHEN. Medium inside a word, low elsewhere.
    SoftHyphen,
    /// Invisible math operators U+2061–U+2064. Medium inside a word, low elsewhere.
    InvisibleOperator,
    /// Variation selectors U+FE00–U+FE0F and U+E0100–U+E01EF. One selector after an emoji,
    /// keycap base, CJK ideograph or math symbol is a normal variation sequence and not
    /// reported; elsewhere medium; a run of two or three medium; a run of four or more
    /// (bytes smuggled behind a character) high.
    VariationSelector,
    /// Hangul fillers U+3164, U+FFA0 (medium), U+115F and U+1160 outside conjoining jamo
    /// (medium), and U+2800 BRAILLE PATTERN BLANK in text without other braille (low).
    Filler,
    /// C0 and C1 control characters other than tab, line feed and carriage return, and DEL.
    /// Medium.
    Control,
    /// Private-use characters (U+E000–U+F8FF, planes 15 and 16). Low.
    PrivateUse,
    /// Other default-ignorable or format characters: deprecated format controls
    /// U+206A–U+206F, interlinear annotation U+FFF9–U+FFFB and unassigned ignorables in the tag
    /// plane (medium); combining grapheme joiner, Khmer inherent vowels, shorthand and musical
    /// format controls, unassigned U+2065 and U+FFF0–U+FFF8 (low); Mongolian free variation
    /// selectors outside Mongolian text (medium).
    Format,
}

impl InvisibleClass {
    /// The kebab-case name used in reports (`zero-width`, `bidi-override`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            InvisibleClass::BidiOverride => "bidi-override",
            InvisibleClass::BidiIsolate => "bidi-isolate",
            InvisibleClass::BidiMark => "bidi-mark",
            InvisibleClass::Tag => "tag",
            InvisibleClass::ZeroWidth => "zero-width",
            InvisibleClass::Joiner => "joiner",
            InvisibleClass::SoftHyphen => "soft-hyphen",
            InvisibleClass::InvisibleOperator => "invisible-operator",
            InvisibleClass::VariationSelector => "variation-selector",
            InvisibleClass::Filler => "filler",
            InvisibleClass::Control => "control",
            InvisibleClass::PrivateUse => "private-use",
            InvisibleClass::Format => "format",
        }
    }

    /// A plural noun for messages (`zero-width characters`, `tag characters`).
    pub fn noun(self) -> &'static str {
        match self {
            InvisibleClass::BidiOverride => "bidi embedding/override controls",
            InvisibleClass::BidiIsolate => "bidi isolate controls",
            InvisibleClass::BidiMark => "directional marks",
            InvisibleClass::Tag => "tag characters",
            InvisibleClass::ZeroWidth => "zero-width characters",
            InvisibleClass::Joiner => "zero-width joiners",
            InvisibleClass::SoftHyphen => "soft hyphens",
            InvisibleClass::InvisibleOperator => "invisible operators",
            InvisibleClass::VariationSelector => "variation selectors",
            InvisibleClass::Filler => "blank filler characters",
            InvisibleClass::Control => "control characters",
            InvisibleClass::PrivateUse => "private-use characters",
            InvisibleClass::Format => "invisible format characters",
        }
    }
}

impl std::fmt::Display for InvisibleClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a run of invisible characters sits, as far as its severity is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Placement {
    /// Letters or digits on both sides: the run splits a word.
    InsideWord,
    /// Anywhere else (between words, at the start or end, next to punctuation).
    Elsewhere,
}

/// One run of adjacent invisible characters of one class.
///
/// Invariant: `span` is a non-empty half-open char range; every char in it has class `class`;
/// `severity` is the highest severity any char of the run earned in its context.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UnicodeHit {
    /// What kind of character.
    pub class: InvisibleClass,
    /// How much it matters here.
    pub severity: Severity,
    /// Half-open char range of the run.
    pub span: [usize; 2],
    /// The distinct code points of the run in order of first appearance, as
    /// `U+200B ZERO WIDTH SPACE` (at most 16, then `… and N more`).
    pub code_points: Vec<String>,
    /// For tags: the ASCII the tag characters spell. For a long variation-selector run: the
    /// bytes it encodes, when they are printable UTF-8.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decoded: Option<String>,
    /// Whether the run splits a word.
    pub placement: Placement,
    /// When inside a word: the word, with the run shown as `<U+200B>` markers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub word: Option<String>,
}

impl UnicodeHit {
    /// Number of chars in the run.
    pub fn count(&self) -> usize {
        self.span[1] - self.span[0]
    }
}

/// What kind of look-alike a [`ConfusableHit`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConfusableKind {
    /// A word mixing Latin letters with Cyrillic or Greek look-alikes (`pаypal`). Medium.
    MixedScript,
    /// A word written entirely in Cyrillic or Greek letters that all look Latin (`рау`), in a
    /// text at least 80% of whose letters are Latin. Medium; low when capitalized (most often
    /// a name such as `Вера`).
    WholeScript,
    /// Fullwidth Latin letters (`ＩＧＮＯＲＥ`). Low: NFKC folds them.
    Fullwidth,
    /// Mathematical alphanumeric "styled" letters (`𝐢𝐠𝐧𝐨𝐫𝐞`). Low: NFKC folds them.
    Styled,
}

impl ConfusableKind {
    /// The kebab-case name used in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            ConfusableKind::MixedScript => "mixed-script",
            ConfusableKind::WholeScript => "whole-script",
            ConfusableKind::Fullwidth => "fullwidth",
            ConfusableKind::Styled => "styled",
        }
    }
}

/// One word that looks like something it is not.
///
/// Invariant: `span` is the word's half-open char range in the scanned text and `word` is
/// exactly those chars.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConfusableHit {
    /// What kind of look-alike.
    pub kind: ConfusableKind,
    /// How much it matters.
    pub severity: Severity,
    /// The word as written.
    pub word: String,
    /// Half-open char range of the word.
    pub span: [usize; 2],
    /// Scripts of the word's letters in order of first appearance (`["Latin", "Cyrillic"]`).
    pub scripts: Vec<String>,
    /// What the word reads as: Latin with each look-alike replaced by its UTS #39 prototype
    /// (`paypal`), or the NFKC form for fullwidth and styled letters (`IGNORE`).
    pub skeleton: String,
    /// The look-alike characters, as `U+0430 CYRILLIC SMALL LETTER A` (distinct, in order).
    pub lookalikes: Vec<String>,
}

// ---------------------------------------------------------------------------------------------
// Character classes and facts
// ---------------------------------------------------------------------------------------------

/// The class of `c`, or `None` for an ordinary character.
pub fn classify(c: char) -> Option<InvisibleClass> {
    use InvisibleClass::*;
    let cp = c as u32;
    Some(match cp {
        0x09 | 0x0A | 0x0D => return None,
        0x00..=0x1F | 0x7F..=0x9F => Control,
        0x00AD => SoftHyphen,
        0x061C | 0x200E | 0x200F => BidiMark,
        0x202A..=0x202E => BidiOverride,
        0x2066..=0x2069 => BidiIsolate,
        0x200B | 0x2060 | 0xFEFF | 0x180E => ZeroWidth,
        0x200C | 0x200D => Joiner,
        0x2061..=0x2064 => InvisibleOperator,
        0xFE00..=0xFE0F | 0xE0100..=0xE01EF => VariationSelector,
        0xE0000..=0xE007F => Tag,
        0x115F | 0x1160 | 0x3164 | 0xFFA0 | 0x2800 => Filler,
        0xE000..=0xF8FF | 0xF0000..=0xFFFFD | 0x100000..=0x10FFFD => PrivateUse,
        0x034F | 0x17B4 | 0x17B5 | 0x180B..=0x180D | 0x180F | 0x2065 | 0x206A..=0x206F => Format,
        0xFFF0..=0xFFFB | 0x1BCA0..=0x1BCA3 | 0x1D173..=0x1D17A | 0xE0080..=0xE00FF => Format,
        0xE01F0..=0xE0FFF => Format,
        _ => return None,
    })
}

/// The display name of a code point as `U+200B ZERO WIDTH SPACE`; `U+XXXX` alone for
/// characters outside the small table this module ships (the characters it flags, and the
/// Cyrillic and Greek letters it reports as look-alikes).
pub fn code_point_name(c: char) -> String {
    match char_name(c) {
        Some(name) => format!("U+{:04X} {name}", c as u32),
        None => format!("U+{:04X}", c as u32),
    }
}

const C0_NAMES: [&str; 32] = [
    "NULL",
    "START OF HEADING",
    "START OF TEXT",
    "END OF TEXT",
    "END OF TRANSMISSION",
    "ENQUIRY",
    "ACKNOWLEDGE",
    "BELL",
    "BACKSPACE",
    "CHARACTER TABULATION",
    "LINE FEED",
    "LINE TABULATION",
    "FORM FEED",
    "CARRIAGE RETURN",
    "SHIFT OUT",
    "SHIFT IN",
    "DATA LINK ESCAPE",
    "DEVICE CONTROL ONE",
    "DEVICE CONTROL TWO",
    "DEVICE CONTROL THREE",
    "DEVICE CONTROL FOUR",
    "NEGATIVE ACKNOWLEDGE",
    "SYNCHRONOUS IDLE",
    "END OF TRANSMISSION BLOCK",
    "CANCEL",
    "END OF MEDIUM",
    "SUBSTITUTE",
    "ESCAPE",
    "INFORMATION SEPARATOR FOUR",
    "INFORMATION SEPARATOR THREE",
    "INFORMATION SEPARATOR TWO",
    "INFORMATION SEPARATOR ONE",
];

/// ASCII punctuation names for U+0021–U+007E (letters and digits are computed).
fn ascii_punct_name(b: u8) -> Option<&'static str> {
    Some(match b {
        b' ' => "SPACE",
        b'!' => "EXCLAMATION MARK",
        b'"' => "QUOTATION MARK",
        b'#' => "NUMBER SIGN",
        b'$' => "DOLLAR SIGN",
        b'%' => "PERCENT SIGN",
        b'&' => "AMPERSAND",
        b'\'' => "APOSTROPHE",
        b'(' => "LEFT PARENTHESIS",
        b')' => "RIGHT PARENTHESIS",
        b'*' => "ASTERISK",
        b'+' => "PLUS SIGN",
        b',' => "COMMA",
        b'-' => "HYPHEN-MINUS",
        b'.' => "FULL STOP",
        b'/' => "SOLIDUS",
        b':' => "COLON",
        b';' => "SEMICOLON",
        b'<' => "LESS-THAN SIGN",
        b'=' => "EQUALS SIGN",
        b'>' => "GREATER-THAN SIGN",
        b'?' => "QUESTION MARK",
        b'@' => "COMMERCIAL AT",
        b'[' => "LEFT SQUARE BRACKET",
        b'\\' => "REVERSE SOLIDUS",
        b']' => "RIGHT SQUARE BRACKET",
        b'^' => "CIRCUMFLEX ACCENT",
        b'_' => "LOW LINE",
        b'`' => "GRAVE ACCENT",
        b'{' => "LEFT CURLY BRACKET",
        b'|' => "VERTICAL LINE",
        b'}' => "RIGHT CURLY BRACKET",
        b'~' => "TILDE",
        _ => return None,
    })
}

const DIGIT_NAMES: [&str; 10] = [
    "ZERO", "ONE", "TWO", "THREE", "FOUR", "FIVE", "SIX", "SEVEN", "EIGHT", "NINE",
];

/// Names of the basic Russian alphabet U+0430–U+044F (small; capitals are U+0410–U+042F).
const CYRILLIC_NAMES: [&str; 32] = [
    "A",
    "BE",
    "VE",
    "GHE",
    "DE",
    "IE",
    "ZHE",
    "ZE",
    "I",
    "SHORT I",
    "KA",
    "EL",
    "EM",
    "EN",
    "O",
    "PE",
    "ER",
    "ES",
    "TE",
    "U",
    "EF",
    "HA",
    "TSE",
    "CHE",
    "SHA",
    "SHCHA",
    "HARD SIGN",
    "YERU",
    "SOFT SIGN",
    "E",
    "YU",
    "YA",
];

/// Names of the Greek alphabet U+03B1–U+03C9 (small; capitals are U+0391–U+03A9).
const GREEK_NAMES: [&str; 25] = [
    "ALPHA",
    "BETA",
    "GAMMA",
    "DELTA",
    "EPSILON",
    "ZETA",
    "ETA",
    "THETA",
    "IOTA",
    "KAPPA",
    "LAMDA",
    "MU",
    "NU",
    "XI",
    "OMICRON",
    "PI",
    "RHO",
    "FINAL SIGMA",
    "SIGMA",
    "TAU",
    "UPSILON",
    "PHI",
    "CHI",
    "PSI",
    "OMEGA",
];

fn char_name(c: char) -> Option<String> {
    let cp = c as u32;
    let fixed = match cp {
        0x00..=0x1F => C0_NAMES[cp as usize],
        0x7F => "DELETE",
        0x85 => "NEXT LINE",
        0xA0 => "NO-BREAK SPACE",
        0xAD => "SOFT HYPHEN",
        0x034F => "COMBINING GRAPHEME JOINER",
        0x061C => "ARABIC LETTER MARK",
        0x115F => "HANGUL CHOSEONG FILLER",
        0x1160 => "HANGUL JUNGSEONG FILLER",
        0x17B4 => "KHMER VOWEL INHERENT AQ",
        0x17B5 => "KHMER VOWEL INHERENT AA",
        0x180B => "MONGOLIAN FREE VARIATION SELECTOR ONE",
        0x180C => "MONGOLIAN FREE VARIATION SELECTOR TWO",
        0x180D => "MONGOLIAN FREE VARIATION SELECTOR THREE",
        0x180E => "MONGOLIAN VOWEL SEPARATOR",
        0x180F => "MONGOLIAN FREE VARIATION SELECTOR FOUR",
        0x200B => "ZERO WIDTH SPACE",
        0x200C => "ZERO WIDTH NON-JOINER",
        0x200D => "ZERO WIDTH JOINER",
        0x200E => "LEFT-TO-RIGHT MARK",
        0x200F => "RIGHT-TO-LEFT MARK",
        0x202A => "LEFT-TO-RIGHT EMBEDDING",
        0x202B => "RIGHT-TO-LEFT EMBEDDING",
        0x202C => "POP DIRECTIONAL FORMATTING",
        0x202D => "LEFT-TO-RIGHT OVERRIDE",
        0x202E => "RIGHT-TO-LEFT OVERRIDE",
        0x2060 => "WORD JOINER",
        0x2061 => "FUNCTION APPLICATION",
        0x2062 => "INVISIBLE TIMES",
        0x2063 => "INVISIBLE SEPARATOR",
        0x2064 => "INVISIBLE PLUS",
        0x2066 => "LEFT-TO-RIGHT ISOLATE",
        0x2067 => "RIGHT-TO-LEFT ISOLATE",
        0x2068 => "FIRST STRONG ISOLATE",
        0x2069 => "POP DIRECTIONAL ISOLATE",
        0x206A => "INHIBIT SYMMETRIC SWAPPING",
        0x206B => "ACTIVATE SYMMETRIC SWAPPING",
        0x206C => "INHIBIT ARABIC FORM SHAPING",
        0x206D => "ACTIVATE ARABIC FORM SHAPING",
        0x206E => "NATIONAL DIGIT SHAPES",
        0x206F => "NOMINAL DIGIT SHAPES",
        0x2800 => "BRAILLE PATTERN BLANK",
        0x3164 => "HANGUL FILLER",
        0xFEFF => "ZERO WIDTH NO-BREAK SPACE",
        0xFFA0 => "HALFWIDTH HANGUL FILLER",
        0xFFF9 => "INTERLINEAR ANNOTATION ANCHOR",
        0xFFFA => "INTERLINEAR ANNOTATION SEPARATOR",
        0xFFFB => "INTERLINEAR ANNOTATION TERMINATOR",
        0xE0001 => "LANGUAGE TAG",
        0xE007F => "CANCEL TAG",
        0x0456 => "CYRILLIC SMALL LETTER BYELORUSSIAN-UKRAINIAN I",
        0x0406 => "CYRILLIC CAPITAL LETTER BYELORUSSIAN-UKRAINIAN I",
        0x0458 => "CYRILLIC SMALL LETTER JE",
        0x0408 => "CYRILLIC CAPITAL LETTER JE",
        0x0455 => "CYRILLIC SMALL LETTER DZE",
        0x0405 => "CYRILLIC CAPITAL LETTER DZE",
        0x04BB => "CYRILLIC SMALL LETTER SHHA",
        0x04BA => "CYRILLIC CAPITAL LETTER SHHA",
        0x04CF => "CYRILLIC SMALL LETTER PALOCHKA",
        0x04C0 => "CYRILLIC LETTER PALOCHKA",
        0x0501 => "CYRILLIC SMALL LETTER KOMI DE",
        0x051B => "CYRILLIC SMALL LETTER QA",
        0x051D => "CYRILLIC SMALL LETTER WE",
        0x04AF => "CYRILLIC SMALL LETTER STRAIGHT U",
        0x04AE => "CYRILLIC CAPITAL LETTER STRAIGHT U",
        0x0451 => "CYRILLIC SMALL LETTER IO",
        0x0401 => "CYRILLIC CAPITAL LETTER IO",
        0x03F2 => "GREEK LUNATE SIGMA SYMBOL",
        0x03F3 => "GREEK LETTER YOT",
        _ => "",
    };
    if !fixed.is_empty() {
        return Some(fixed.to_string());
    }
    Some(match cp {
        0xFE00..=0xFE0F => format!("VARIATION SELECTOR-{}", cp - 0xFE00 + 1),
        0xE0100..=0xE01EF => format!("VARIATION SELECTOR-{}", cp - 0xE0100 + 17),
        0xE0020..=0xE007E => {
            let b = (cp - 0xE0000) as u8;
            format!("TAG {}", ascii_name(b)?)
        }
        0x0430..=0x044F => format!(
            "CYRILLIC SMALL LETTER {}",
            CYRILLIC_NAMES[(cp - 0x0430) as usize]
        ),
        0x0410..=0x042F => format!(
            "CYRILLIC CAPITAL LETTER {}",
            CYRILLIC_NAMES[(cp - 0x0410) as usize]
        ),
        0x03B1..=0x03C9 => format!("GREEK SMALL LETTER {}", GREEK_NAMES[(cp - 0x03B1) as usize]),
        // U+03A2 is unassigned (there is no capital final sigma).
        0x0391..=0x03A9 if cp != 0x03A2 => format!(
            "GREEK CAPITAL LETTER {}",
            GREEK_NAMES[(cp - 0x0391) as usize]
        ),
        0xFF21..=0xFF3A => format!(
            "FULLWIDTH LATIN CAPITAL LETTER {}",
            char::from(b'A' + (cp - 0xFF21) as u8)
        ),
        0xFF41..=0xFF5A => format!(
            "FULLWIDTH LATIN SMALL LETTER {}",
            char::from(b'A' + (cp - 0xFF41) as u8)
        ),
        _ => return None,
    })
}

/// The Unicode name of an ASCII character (letters, digits and punctuation).
fn ascii_name(b: u8) -> Option<String> {
    Some(match b {
        b'A'..=b'Z' => format!("LATIN CAPITAL LETTER {}", b as char),
        b'a'..=b'z' => format!("LATIN SMALL LETTER {}", b.to_ascii_uppercase() as char),
        b'0'..=b'9' => format!("DIGIT {}", DIGIT_NAMES[(b - b'0') as usize]),
        _ => ascii_punct_name(b)?.to_string(),
    })
}

/// Characters that start or continue an emoji presentation sequence.
fn is_emoji_base(c: char) -> bool {
    matches!(c as u32,
        0x00A9 | 0x00AE | 0x203C | 0x2049 | 0x2122 | 0x2139 | 0x2194..=0x21FF | 0x231A..=0x23FF
        | 0x24C2 | 0x25A0..=0x25FF | 0x2600..=0x27BF | 0x2934..=0x2935 | 0x2B00..=0x2BFF
        | 0x3030 | 0x303D | 0x3297 | 0x3299 | 0x1F000..=0x1FAFF)
}

/// Bases of keycap sequences (`1️⃣`, `#️⃣`).
fn is_keycap_base(c: char) -> bool {
    c.is_ascii_digit() || c == '#' || c == '*'
}

/// Characters with strong right-to-left direction (Hebrew, Arabic, Syriac, Thaana, N'Ko, ...).
fn is_rtl_letter(c: char) -> bool {
    matches!(c as u32,
        0x0590..=0x08FF | 0xFB1D..=0xFDFF | 0xFE70..=0xFEFE | 0x10800..=0x10FFF
        | 0x1E800..=0x1EFFF)
        && c.is_alphabetic()
}

/// Scripts whose letters legitimately take ZWJ/ZWNJ (cursive joining and Indic conjuncts).
fn is_joining_script(s: Script) -> bool {
    use Script::*;
    matches!(
        s,
        Arabic
            | Syriac
            | Nko
            | Mongolian
            | Mandaic
            | Manichaean
            | Psalter_Pahlavi
            | Adlam
            | Hanifi_Rohingya
            | Sogdian
            | Devanagari
            | Bengali
            | Gurmukhi
            | Gujarati
            | Oriya
            | Tamil
            | Telugu
            | Kannada
            | Malayalam
            | Sinhala
            | Tibetan
            | Myanmar
            | Khmer
            | Lao
            | Thai
            | Balinese
            | Javanese
            | Tirhuta
            | Grantha
            | Newa
            | Sharada
            | Takri
            | Kaithi
            | Brahmi
            | Chakma
            | Syloti_Nagri
            | Limbu
            | Tai_Tham
            | Meetei_Mayek
            | Ol_Chiki
    )
}

/// Scripts written without spaces between words, where ZWSP marks word breaks.
fn is_spaceless_script(s: Script) -> bool {
    use Script::*;
    matches!(
        s,
        Thai | Lao
            | Khmer
            | Myanmar
            | Tibetan
            | Han
            | Hiragana
            | Katakana
            | Javanese
            | Balinese
            | Tai_Tham
            | New_Tai_Lue
            | Tai_Le
    )
}

fn is_wordish(c: char) -> bool {
    c.is_alphanumeric() || is_combining_mark(c)
}

// ---------------------------------------------------------------------------------------------
// scan_invisible
// ---------------------------------------------------------------------------------------------

/// Whether `text` can hold anything [`scan_invisible`] reports (cheap pre-check): true when
/// some byte is neither printable ASCII nor tab, newline or carriage return. Blocks of bytes
/// are tested without an early exit inside the block, so that the test vectorises.
fn may_hold_invisible(text: &str) -> bool {
    let plain = |b: u8| (0x20..0x7F).contains(&b) || b == b'\t' || b == b'\n' || b == b'\r';
    text.as_bytes()
        .chunks(64)
        .any(|block| !block.iter().fold(true, |all, &b| all & plain(b)))
}

/// Finds invisible and format characters in `text` and rates each run by its context (see
/// [`InvisibleClass`] for the rules). Adjacent characters of one class form one hit. Benign
/// uses (emoji sequences, joiners in Persian or Hindi, a leading BOM, marks in Hebrew) produce
/// no hit. Never panics; linear in the length of `text`.
pub fn scan_invisible(text: &str) -> Vec<UnicodeHit> {
    if !may_hold_invisible(text) {
        return Vec::new();
    }
    let chars: Vec<char> = text.chars().collect();
    let ctx = TextFacts::of(&chars);
    let mut hits = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let Some(class) = classify(chars[i]) else {
            i += 1;
            continue;
        };
        let mut j = i + 1;
        while j < chars.len() && classify(chars[j]) == Some(class) {
            j += 1;
        }
        if let Some(hit) = rate_run(&chars, &ctx, class, i, j) {
            hits.push(hit);
        }
        i = j;
    }
    hits
}

/// Facts about the whole text that some rules need.
struct TextFacts {
    /// The text genuinely contains right-to-left letters.
    rtl: bool,
    /// The text contains braille patterns other than the blank.
    braille: bool,
}

impl TextFacts {
    fn of(chars: &[char]) -> TextFacts {
        let rtl_letters = chars.iter().filter(|c| is_rtl_letter(**c)).count();
        TextFacts {
            rtl: rtl_letters >= 2,
            braille: chars.iter().any(|c| ('\u{2801}'..='\u{28FF}').contains(c)),
        }
    }
}

/// The nearest char before `i` that is not a combining mark.
fn left_base(chars: &[char], i: usize) -> Option<char> {
    chars[..i]
        .iter()
        .rev()
        .copied()
        .find(|c| !is_combining_mark(*c))
}

/// The nearest char left of `i`, skipping variation selectors, skin-tone modifiers, tags and
/// keycap marks: the base of an emoji sequence that a ZWJ at `i` continues.
fn left_emoji_base(chars: &[char], i: usize) -> Option<char> {
    chars[..i].iter().rev().copied().find(
        |c| !matches!(*c as u32, 0xFE00..=0xFE0F | 0x1F3FB..=0x1F3FF | 0xE0020..=0xE007F | 0x20E3),
    )
}

fn rate_run(
    chars: &[char],
    facts: &TextFacts,
    class: InvisibleClass,
    start: usize,
    end: usize,
) -> Option<UnicodeHit> {
    use InvisibleClass::*;
    let mut start = start;
    // A BOM at offset 0 is an encoding artifact of a pasted file, not hidden text.
    if class == ZeroWidth && start == 0 && chars[0] == '\u{FEFF}' {
        start = 1;
        if start == end {
            return None;
        }
    }
    let run = &chars[start..end];
    let prev = start.checked_sub(1).map(|p| chars[p]);
    let next = chars.get(end).copied();
    let prev_base = left_base(chars, start);
    let inside_word =
        prev_base.is_some_and(is_wordish) && next.is_some_and(|c| c.is_alphanumeric());
    let placement = if inside_word {
        Placement::InsideWord
    } else {
        Placement::Elsewhere
    };
    let word_sev = if inside_word {
        Severity::Medium
    } else {
        Severity::Low
    };
    let mut decoded = None;
    let severity = match class {
        BidiOverride => {
            let only_embeddings = run.iter().all(|c| matches!(*c as u32, 0x202A..=0x202C));
            if only_embeddings && facts.rtl {
                Severity::Medium
            } else {
                Severity::High
            }
        }
        BidiIsolate => {
            if facts.rtl {
                Severity::Low
            } else {
                Severity::High
            }
        }
        BidiMark => {
            if facts.rtl {
                return None;
            }
            Severity::High
        }
        Tag => {
            if is_emoji_flag_tags(prev, run) {
                return None;
            }
            decoded = Some(decode_tags(run));
            Severity::High
        }
        ZeroWidth => {
            let mongolian = |c: Option<char>| c.is_some_and(|c| c.script() == Script::Mongolian);
            if run.iter().all(|c| *c == '\u{180E}') && (mongolian(prev) || mongolian(next)) {
                return None;
            }
            let mut sev = if run.contains(&'\u{FEFF}') {
                Severity::Medium
            } else {
                word_sev
            };
            let spaceless = |c: Option<char>| c.is_some_and(|c| is_spaceless_script(c.script()));
            if sev == Severity::Medium
                && !run.contains(&'\u{FEFF}')
                && spaceless(prev_base)
                && spaceless(next)
            {
                sev = Severity::Low;
            }
            sev
        }
        Joiner => {
            if run.len() == 1 {
                let zwj = run[0] == '\u{200D}';
                let emoji_left = left_emoji_base(chars, start).is_some_and(is_emoji_base);
                let emoji_right = next.is_some_and(is_emoji_base);
                if zwj && emoji_left && emoji_right {
                    return None;
                }
            }
            let joining = |c: Option<char>| c.is_some_and(|c| is_joining_script(c.script()));
            if joining(prev_base) || joining(next) {
                return None;
            }
            word_sev
        }
        SoftHyphen | InvisibleOperator => word_sev,
        VariationSelector => {
            if run.len() == 1 && is_benign_variation(run[0], prev, next) {
                return None;
            }
            if run.len() >= 4 {
                decoded = decode_variation_bytes(run);
                Severity::High
            } else {
                Severity::Medium
            }
        }
        Filler => {
            let all_braille = run.iter().all(|c| *c == '\u{2800}');
            if all_braille {
                if facts.braille {
                    return None;
                }
                Severity::Low
            } else {
                let jamo = |c: Option<char>| {
                    c.is_some_and(
                        |c| matches!(c as u32, 0x1100..=0x11FF | 0xA960..=0xA97F | 0xD7B0..=0xD7FF),
                    )
                };
                let conjoining = run.iter().all(|c| matches!(*c as u32, 0x115F | 0x1160));
                if conjoining && (jamo(prev) || jamo(next)) {
                    return None;
                }
                Severity::Medium
            }
        }
        Control => Severity::Medium,
        PrivateUse => Severity::Low,
        Format => {
            let mongolian_fvs = run
                .iter()
                .all(|c| matches!(*c as u32, 0x180B..=0x180D | 0x180F));
            if mongolian_fvs {
                if prev_base.is_some_and(|c| c.script() == Script::Mongolian) {
                    return None;
                }
                Severity::Medium
            } else if run
                .iter()
                .any(|c| matches!(*c as u32, 0x206A..=0x206F | 0xFFF9..=0xFFFB | 0xE0080..=0xE00FF | 0xE01F0..=0xE0FFF))
            {
                Severity::Medium
            } else {
                Severity::Low
            }
        }
    };
    let word = inside_word.then(|| marked_word(chars, start, end));
    Some(UnicodeHit {
        class,
        severity,
        span: [start, end],
        code_points: distinct_names(run),
        decoded,
        placement,
        word,
    })
}

/// `🏴` followed by lowercase/digit tags and CANCEL TAG: an emoji subdivision flag
/// (England, Scotland, Wales, ...).
fn is_emoji_flag_tags(prev: Option<char>, run: &[char]) -> bool {
    prev == Some('\u{1F3F4}')
        && run.len() >= 2
        && run.len() <= 8
        && run.last() == Some(&'\u{E007F}')
        && run[..run.len() - 1]
            .iter()
            .all(|c| matches!(*c as u32, 0xE0030..=0xE0039 | 0xE0061..=0xE007A))
}

/// The ASCII that tag characters spell; LANGUAGE TAG and CANCEL TAG are dropped.
fn decode_tags(run: &[char]) -> String {
    run.iter()
        .filter_map(|c| match *c as u32 {
            cp @ 0xE0020..=0xE007E => Some(char::from((cp - 0xE0000) as u8)),
            _ => None,
        })
        .collect()
}

/// One variation selector after a character that takes it in a standard variation sequence.
fn is_benign_variation(vs: char, prev: Option<char>, next: Option<char>) -> bool {
    let Some(base) = prev else {
        return false;
    };
    let emoji_vs = matches!(vs, '\u{FE0E}' | '\u{FE0F}');
    if emoji_vs && (is_emoji_base(base) || (is_keycap_base(base) && next == Some('\u{20E3}'))) {
        return true;
    }
    match base.script() {
        // Standardized and ideographic variation sequences (CJK, Myanmar, Phags-pa, ...).
        Script::Han | Script::Myanmar | Script::Phags_Pa | Script::Manichaean => true,
        _ => {
            // Math symbols with standardized variants (≩︀).
            vs == '\u{FE00}' && matches!(base as u32, 0x2200..=0x22FF | 0x2A00..=0x2AFF)
        }
    }
}

/// The bytes a run of variation selectors encodes (U+FE00–FE0F → 0–15, U+E0100–E01EF →
/// 16–255), when they are UTF-8 text without control characters.
fn decode_variation_bytes(run: &[char]) -> Option<String> {
    let bytes: Vec<u8> = run
        .iter()
        .map(|c| match *c as u32 {
            cp @ 0xFE00..=0xFE0F => (cp - 0xFE00) as u8,
            cp => (cp - 0xE0100 + 16) as u8,
        })
        .collect();
    let s = String::from_utf8(bytes).ok()?;
    let printable = s
        .chars()
        .all(|c| !c.is_control() || matches!(c, '\n' | '\t' | '\r'));
    printable.then_some(s)
}

const MAX_NAMES: usize = 16;

fn distinct_names(run: &[char]) -> Vec<String> {
    let mut seen: Vec<char> = Vec::new();
    for c in run {
        if !seen.contains(c) {
            seen.push(*c);
            if seen.len() > MAX_NAMES {
                break;
            }
        }
    }
    let total = {
        let mut all: Vec<char> = run.to_vec();
        all.sort_unstable();
        all.dedup();
        all.len()
    };
    let mut out: Vec<String> = seen
        .iter()
        .take(MAX_NAMES)
        .map(|c| code_point_name(*c))
        .collect();
    if total > MAX_NAMES {
        out.push(format!("… and {} more", total - MAX_NAMES));
    }
    out
}

/// The word around `[start, end)` with the run shown as markers.
fn marked_word(chars: &[char], start: usize, end: usize) -> String {
    let mut ws = start;
    while ws > 0 && (is_wordish(chars[ws - 1]) || is_default_ignorable(chars[ws - 1])) {
        ws -= 1;
    }
    let mut we = end;
    while we < chars.len() && (is_wordish(chars[we]) || is_default_ignorable(chars[we])) {
        we += 1;
    }
    // Keep messages short on pathological input.
    let ws = ws.max(start.saturating_sub(40));
    let we = we.min(end + 40);
    reveal_chars(&chars[ws..we])
}

/// `text` with every character [`classify`] knows shown as a `<U+XXXX>` marker (a run of one
/// code point as `<U+200B×3>`), so a reader sees where hidden characters are. Tabs, line feeds
/// and carriage returns stay as they are.
pub fn reveal(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    reveal_chars(&chars)
}

fn reveal_chars(chars: &[char]) -> String {
    let mut out = String::with_capacity(chars.len() + 8);
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if classify(c).is_none() {
            out.push(c);
            i += 1;
            continue;
        }
        let mut j = i + 1;
        while j < chars.len() && chars[j] == c {
            j += 1;
        }
        if j - i == 1 {
            let _ = write!(out, "<U+{:04X}>", c as u32);
        } else {
            let _ = write!(out, "<U+{:04X}×{}>", c as u32, j - i);
        }
        i = j;
    }
    out
}

/// A short visible excerpt of `text` around the char range `span`: up to `radius` chars on
/// each side, with `…` where it was cut and hidden characters shown as markers (see
/// [`reveal`]). Out-of-range spans are clamped.
pub fn reveal_excerpt(text: &str, span: [usize; 2], radius: usize) -> String {
    let chars: Vec<char> = text.chars().collect();
    let end = span[1].min(chars.len());
    let start = span[0].min(end);
    let from = start.saturating_sub(radius);
    let to = end.saturating_add(radius).min(chars.len());
    // A long hidden run is summarized rather than spelled out marker by marker.
    let inner = if end - start > 2 * radius.max(8) {
        let head = reveal_chars(&chars[start..start + radius.max(8)]);
        format!("{head}…")
    } else {
        reveal_chars(&chars[start..end])
    };
    let mut out = String::new();
    if from > 0 {
        out.push('…');
    }
    out.push_str(&reveal_chars(&chars[from..start]));
    out.push_str(&inner);
    out.push_str(&reveal_chars(&chars[end..to]));
    if to < chars.len() {
        out.push('…');
    }
    out
}

/// `text` without the characters a reader cannot see: every default-ignorable code point
/// (zero-width characters, joiners, bidi controls, tags, variation selectors, Hangul fillers)
/// and C0/C1 controls other than tab, line feed and carriage return. Private-use characters
/// are kept (fonts draw them). Unlike [`scan_invisible`] this does not look at context, so it
/// also removes the ZWJ of emoji sequences.
pub fn strip_invisible(text: &str) -> String {
    text.chars()
        .filter(|c| {
            !(is_default_ignorable(*c) || (c.is_control() && !matches!(c, '\t' | '\n' | '\r')))
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// scan_confusable
// ---------------------------------------------------------------------------------------------

fn is_fullwidth_latin(c: char) -> bool {
    matches!(c as u32, 0xFF21..=0xFF3A | 0xFF41..=0xFF5A)
}

fn is_styled_latin(c: char) -> bool {
    // Mathematical Alphanumeric Symbols: bold, italic, script, fraktur, double-struck, ...
    matches!(c as u32, 0x1D400..=0x1D6A5)
}

fn is_homoglyph_script(s: Script) -> bool {
    matches!(s, Script::Cyrillic | Script::Greek)
}

/// The Latin reading of a Cyrillic or Greek letter (its UTS #39 prototype) when that is one
/// ASCII letter: `а` (U+0430) → `a`, `Ρ` (U+03A1) → `P`; `None` for other characters.
pub fn latin_prototype(c: char) -> Option<char> {
    if c.is_ascii() || !is_homoglyph_script(c.script()) {
        return None;
    }
    let mut buf = [0u8; 4];
    let s: &str = c.encode_utf8(&mut buf);
    let mut sk = unicode_security::skeleton(s);
    let first = sk.next()?;
    if sk.next().is_some() || !first.is_ascii_alphabetic() {
        return None;
    }
    Some(first)
}

/// Finds words that look Latin but are not (see [`ConfusableKind`]): Latin words with
/// Cyrillic or Greek homoglyphs, whole words of Latin look-alikes in Latin text, fullwidth and
/// styled Latin. Words in genuinely Cyrillic or Greek text do not fire: the whole-script rule
/// applies only when at least 80% of the text's letters are Latin. Never panics.
pub fn scan_confusable(text: &str) -> Vec<ConfusableHit> {
    if text.is_ascii() {
        return Vec::new();
    }
    let chars: Vec<char> = text.chars().collect();
    let (mut latin, mut letters) = (0usize, 0usize);
    for c in &chars {
        if c.is_alphabetic() {
            letters += 1;
            if c.script() == Script::Latin && !is_fullwidth_latin(*c) {
                latin += 1;
            }
        }
    }
    let latin_text = letters > 0 && latin * 5 >= letters * 4;
    let mut hits = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if !chars[i].is_alphanumeric() {
            i += 1;
            continue;
        }
        let mut j = i + 1;
        while j < chars.len()
            && (is_wordish(chars[j])
                || (is_default_ignorable(chars[j])
                    && chars.get(j + 1).is_some_and(|c| is_wordish(*c))))
        {
            j += 1;
        }
        if let Some(hit) = rate_word(&chars[i..j], i, latin_text) {
            hits.push(hit);
        }
        i = j;
    }
    hits
}

/// The first run of two or more fullwidth or styled Latin letters (digits may join) in `word`.
fn compat_run(word: &[char], start: usize) -> Option<ConfusableHit> {
    let kind_of = |c: char| {
        if is_fullwidth_latin(c) || matches!(c as u32, 0xFF10..=0xFF19) {
            Some(ConfusableKind::Fullwidth)
        } else if is_styled_latin(c) || matches!(c as u32, 0x1D7CE..=0x1D7FF) {
            Some(ConfusableKind::Styled)
        } else {
            None
        }
    };
    let mut i = 0;
    while i < word.len() {
        let Some(kind) = kind_of(word[i]) else {
            i += 1;
            continue;
        };
        let mut j = i + 1;
        while j < word.len() && kind_of(word[j]) == Some(kind) {
            j += 1;
        }
        let run = &word[i..j];
        let letters = run.iter().filter(|c| c.is_alphabetic()).count();
        if letters >= 2 {
            let text: String = run.iter().collect();
            let mut lookalikes: Vec<char> = Vec::new();
            for c in run {
                if !lookalikes.contains(c) {
                    lookalikes.push(*c);
                }
            }
            let script = if kind == ConfusableKind::Fullwidth {
                "Latin"
            } else {
                "Common"
            };
            return Some(ConfusableHit {
                kind,
                severity: Severity::Low,
                skeleton: text.nfkc().collect(),
                word: text,
                span: [start + i, start + j],
                scripts: vec![script.to_string()],
                lookalikes: lookalikes
                    .iter()
                    .take(MAX_NAMES)
                    .map(|c| code_point_name(*c))
                    .collect(),
            });
        }
        i = j;
    }
    None
}

fn rate_word(word: &[char], start: usize, latin_text: bool) -> Option<ConfusableHit> {
    let text: String = word.iter().collect();
    let span = [start, start + word.len()];
    let letters: Vec<char> = word.iter().copied().filter(|c| c.is_alphabetic()).collect();
    let mut scripts: Vec<Script> = Vec::new();
    for c in &letters {
        let s = c.script();
        if !matches!(s, Script::Common | Script::Inherited | Script::Unknown)
            && !scripts.contains(&s)
        {
            scripts.push(s);
        }
    }
    let script_names = |scripts: &[Script]| -> Vec<String> {
        scripts.iter().map(|s| s.full_name().to_string()).collect()
    };

    // Fullwidth and styled Latin: NFKC folds them to ASCII. Reported as the run of such
    // letters only (Japanese text runs `ＡＩの研究` together without spaces).
    if let Some(hit) = compat_run(word, start) {
        return Some(hit);
    }

    let has_latin = scripts.contains(&Script::Latin);
    let has_homoglyph_script = scripts.iter().any(|s| is_homoglyph_script(*s));
    if !has_homoglyph_script {
        return None;
    }
    // Every script in the word must be Latin, Cyrillic or Greek for a Latin reading.
    if scripts
        .iter()
        .any(|s| *s != Script::Latin && !is_homoglyph_script(*s))
    {
        return None;
    }
    let latin_letters = letters
        .iter()
        .filter(|c| c.script() == Script::Latin)
        .count();
    let kind = if has_latin {
        // Math variables (`αx`, `Δt`) are short; real words are not.
        if letters.len() < 3 && scripts.contains(&Script::Greek) {
            return None;
        }
        if letters.len() < 2 || latin_letters == 0 {
            return None;
        }
        ConfusableKind::MixedScript
    } else {
        if !latin_text || letters.len() < 3 {
            return None;
        }
        ConfusableKind::WholeScript
    };
    // A capitalized whole-script word in Latin text is most often a name (Вера, Ася): low.
    let severity = if kind == ConfusableKind::WholeScript && letters[0].is_uppercase() {
        Severity::Low
    } else {
        Severity::Medium
    };
    // Read the word as Latin: every foreign letter must have a one-letter Latin prototype.
    let mut skeleton = String::with_capacity(text.len());
    let mut lookalikes: Vec<char> = Vec::new();
    for c in word {
        if is_default_ignorable(*c) {
            continue;
        }
        if is_homoglyph_script(c.script()) && c.is_alphabetic() {
            let p = latin_prototype(*c)?;
            skeleton.push(p);
            if !lookalikes.contains(c) {
                lookalikes.push(*c);
            }
        } else {
            skeleton.push(*c);
        }
    }
    Some(ConfusableHit {
        kind,
        severity,
        word: text,
        span,
        scripts: script_names(&scripts),
        skeleton,
        lookalikes: lookalikes
            .iter()
            .take(MAX_NAMES)
            .map(|c| code_point_name(*c))
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str) -> UnicodeHit {
        let hits = scan_invisible(text);
        assert_eq!(hits.len(), 1, "expected one hit in {text:?}, got {hits:#?}");
        hits.into_iter().next().unwrap()
    }

    fn none_at_all(text: &str) {
        let hits = scan_invisible(text);
        assert!(
            hits.is_empty(),
            "expected no hit in {text:?}, got {hits:#?}"
        );
    }

    // ---- benign controls -------------------------------------------------------------------

    #[test]
    fn plain_ascii_tabs_and_newlines_are_clean() {
        none_at_all("hello\tworld\r\nsecond line\n");
        none_at_all("");
        assert!(scan_confusable("hello world").is_empty());
    }

    #[test]
    fn emoji_zwj_sequences_are_benign() {
        none_at_all("family: 👨\u{200D}👩\u{200D}👧 ok");
        none_at_all("pride 🏳\u{FE0F}\u{200D}🌈 flag");
        none_at_all("coder 👨🏽\u{200D}💻 and ❤\u{FE0F}\u{200D}🔥");
        none_at_all("keycap 1\u{FE0F}\u{20E3} and #\u{FE0F}\u{20E3}");
        none_at_all("sun ☀\u{FE0F} text-style ☺\u{FE0E}");
    }

    #[test]
    fn emoji_subdivision_flag_tags_are_benign() {
        // England: 🏴 g b e n g CANCEL TAG
        none_at_all("go \u{1F3F4}\u{E0067}\u{E0062}\u{E0065}\u{E006E}\u{E0067}\u{E007F} team");
    }

    #[test]
    fn persian_zwnj_is_benign() {
        none_at_all("می\u{200C}خواهم بروم");
        // Devanagari conjunct control with ZWJ.
        none_at_all("क्\u{200D}ष");
    }

    #[test]
    fn leading_bom_is_skipped_but_later_bom_is_medium() {
        none_at_all("\u{FEFF}hello");
        let h = one("\u{FEFF}hello \u{FEFF}world");
        assert_eq!(h.class, InvisibleClass::ZeroWidth);
        assert_eq!(h.span, [7, 8]);
        assert_eq!(h.severity, Severity::Medium);
        assert_eq!(h.code_points, ["U+FEFF ZERO WIDTH NO-BREAK SPACE"]);
    }

    #[test]
    fn hebrew_with_rlm_is_benign() {
        none_at_all("שלום\u{200F} עולם");
        none_at_all("مرحبا\u{061C} بالعالم");
    }

    #[test]
    fn accented_latin_russian_and_greek_are_clean() {
        for t in [
            "naïve café, crème brûlée",
            "Привет, как дела? Это обычное русское предложение.",
            "Καλημέρα σας, τι κάνετε σήμερα;",
            "Москва — столица России, а Париж — Франции.",
        ] {
            none_at_all(t);
            assert!(
                scan_confusable(t).is_empty(),
                "{t}: {:#?}",
                scan_confusable(t)
            );
        }
    }

    #[test]
    fn cjk_ivs_and_thai_zwsp_are_not_medium() {
        none_at_all("葛\u{E0100}飾区");
        none_at_all("漢\u{FE00}字");
        let hits = scan_invisible("สวัสดี\u{200B}ครับ");
        assert!(
            hits.iter().all(|h| h.severity <= Severity::Low),
            "{hits:#?}"
        );
    }

    #[test]
    fn greek_math_variables_do_not_fire() {
        assert!(scan_confusable("let αx + βy = Δt").is_empty());
    }

    // ---- malicious -------------------------------------------------------------------------

    #[test]
    fn zwsp_inside_a_word_is_medium() {
        let h = one("the pass\u{200B}word is");
        assert_eq!(h.class, InvisibleClass::ZeroWidth);
        assert_eq!(h.span, [8, 9]);
        assert_eq!(h.severity, Severity::Medium);
        assert_eq!(h.placement, Placement::InsideWord);
        assert_eq!(h.word.as_deref(), Some("pass<U+200B>word"));
        assert_eq!(h.code_points, ["U+200B ZERO WIDTH SPACE"]);
    }

    #[test]
    fn zwsp_between_words_is_low_and_adjacent_runs_merge() {
        let h = one("a \u{200B}\u{200B}\u{2060} b");
        assert_eq!(h.span, [2, 5]);
        assert_eq!(h.count(), 3);
        assert_eq!(h.severity, Severity::Low);
        assert_eq!(h.placement, Placement::Elsewhere);
        assert_eq!(
            h.code_points,
            ["U+200B ZERO WIDTH SPACE", "U+2060 WORD JOINER"]
        );
    }

    #[test]
    fn soft_hyphen_and_joiners_inside_latin_words_are_medium() {
        let h = one("ad\u{00AD}min");
        assert_eq!(
            (h.class, h.span, h.severity),
            (InvisibleClass::SoftHyphen, [2, 3], Severity::Medium)
        );
        let h = one("pass\u{200D}word");
        assert_eq!(
            (h.class, h.span, h.severity),
            (InvisibleClass::Joiner, [4, 5], Severity::Medium)
        );
        let h = one("end\u{200C} ");
        assert_eq!(
            (h.class, h.severity),
            (InvisibleClass::Joiner, Severity::Low)
        );
        let h = one("sin\u{2062}x");
        assert_eq!(
            (h.class, h.severity),
            (InvisibleClass::InvisibleOperator, Severity::Medium)
        );
    }

    #[test]
    fn rlo_span_is_high() {
        // "access" displayed as if reversed: a Trojan Source shape.
        let t = "if user == \u{202E}nimda\u{202C} {";
        let hits = scan_invisible(t);
        assert_eq!(hits.len(), 2, "{hits:#?}");
        assert_eq!(hits[0].class, InvisibleClass::BidiOverride);
        assert_eq!(hits[0].span, [11, 12]);
        assert_eq!(hits[0].severity, Severity::High);
        assert_eq!(hits[0].code_points, ["U+202E RIGHT-TO-LEFT OVERRIDE"]);
        assert_eq!(hits[1].span, [17, 18]);
        assert_eq!(hits[1].severity, Severity::High);
    }

    #[test]
    fn isolates_and_marks_depend_on_rtl_text() {
        let hits = scan_invisible("abc\u{2067}def\u{2069}");
        assert_eq!(hits.len(), 2);
        assert!(hits.iter().all(|h| h.severity == Severity::High));
        let hits = scan_invisible("שלום \u{2067}abc\u{2069}");
        assert!(
            hits.iter().all(|h| h.severity == Severity::Low),
            "{hits:#?}"
        );
        let h = one("price\u{200F} 100");
        assert_eq!(
            (h.class, h.severity),
            (InvisibleClass::BidiMark, Severity::High)
        );
    }

    #[test]
    fn tag_smuggled_ascii_is_decoded() {
        let tags: String = "ignore"
            .chars()
            .map(|c| char::from_u32(0xE0000 + c as u32).unwrap())
            .collect();
        let t = format!("Hello{tags} there");
        let h = one(&t);
        assert_eq!(h.class, InvisibleClass::Tag);
        assert_eq!(h.span, [5, 11]);
        assert_eq!(h.severity, Severity::High);
        assert_eq!(h.decoded.as_deref(), Some("ignore"));
        assert_eq!(h.code_points[0], "U+E0069 TAG LATIN SMALL LETTER I");
    }

    #[test]
    fn variation_selectors_outside_emoji_and_runs() {
        let h = one("te\u{FE01}xt");
        assert_eq!(
            (h.class, h.span, h.severity),
            (InvisibleClass::VariationSelector, [2, 3], Severity::Medium)
        );
        // "hi" smuggled behind an emoji: h = 0x68 → U+E0100 + 0x58, i = 0x69 → U+E0100 + 0x59.
        let bytes = b"hidden";
        let run: String = bytes
            .iter()
            .map(|b| char::from_u32(0xE0100 + u32::from(*b) - 16).unwrap())
            .collect();
        let t = format!("😀{run}!");
        let h = one(&t);
        assert_eq!(h.span, [1, 7]);
        assert_eq!(h.severity, Severity::High);
        assert_eq!(h.decoded.as_deref(), Some("hidden"));
        let h = one("x\u{FE0F}\u{FE0F} y");
        assert_eq!((h.span, h.severity), ([1, 3], Severity::Medium));
    }

    #[test]
    fn fillers_controls_and_private_use() {
        let h = one("name:\u{3164}end");
        assert_eq!(
            (h.class, h.span, h.severity),
            (InvisibleClass::Filler, [5, 6], Severity::Medium)
        );
        let h = one("bell\u{7}\u{1b}[31m red");
        assert_eq!(
            (h.class, h.span, h.severity),
            (InvisibleClass::Control, [4, 6], Severity::Medium)
        );
        assert_eq!(h.code_points, ["U+0007 BELL", "U+001B ESCAPE"]);
        let h = one("logo \u{F8FF}");
        assert_eq!(
            (h.class, h.severity),
            (InvisibleClass::PrivateUse, Severity::Low)
        );
        assert_eq!(h.code_points, ["U+F8FF"]);
        let h = one("a\u{0085}b");
        assert_eq!(h.code_points, ["U+0085 NEXT LINE"]);
        none_at_all("ᄀ\u{1160}ᆨ");
    }

    #[test]
    fn reveal_and_strip() {
        assert_eq!(reveal("a\u{200B}\u{200B}b\u{202E}"), "a<U+200B×2>b<U+202E>");
        assert_eq!(reveal("tab\tok"), "tab\tok");
        assert_eq!(strip_invisible("pa\u{200B}ss\u{E0041}\u{7}\n"), "pass\n");
        assert_eq!(
            reveal_excerpt("0123456789pass\u{200B}word0123456789", [14, 15], 4),
            "…pass<U+200B>word…"
        );
        assert_eq!(reveal_excerpt("ab", [5, 9], 3), "ab");
    }

    #[test]
    fn odd_input_never_panics() {
        for t in [
            "\u{200B}",
            "\u{FEFF}",
            "\u{FEFF}\u{FEFF}",
            "\u{200D}",
            "\u{FE0F}",
            "\u{E007F}",
            "\u{1F3F4}\u{E007F}",
            "\u{0}",
            "\u{10FFFD}",
            "а",
            "ＡＢ",
            "\u{0301}\u{200B}",
        ] {
            let _ = scan_invisible(t);
            let _ = scan_confusable(t);
            let _ = reveal_excerpt(t, [0, 100], 2);
        }
    }

    // ---- confusables -----------------------------------------------------------------------

    #[test]
    fn cyrillic_a_in_paypal_is_medium() {
        let hits = scan_confusable("log in to your pаypal account");
        assert_eq!(hits.len(), 1, "{hits:#?}");
        let h = &hits[0];
        assert_eq!(h.kind, ConfusableKind::MixedScript);
        assert_eq!(h.word, "pаypal");
        assert_eq!(h.span, [15, 21]);
        assert_eq!(h.scripts, ["Latin", "Cyrillic"]);
        assert_eq!(h.skeleton, "paypal");
        assert_eq!(h.severity, Severity::Medium);
        assert_eq!(h.lookalikes, ["U+0430 CYRILLIC SMALL LETTER A"]);
    }

    #[test]
    fn whole_cyrillic_lookalike_word_in_english_is_medium() {
        // "рау" is Cyrillic р, а, у.
        let hits = scan_confusable("please send the рау to this account today");
        assert_eq!(hits.len(), 1, "{hits:#?}");
        assert_eq!(hits[0].kind, ConfusableKind::WholeScript);
        assert_eq!(hits[0].skeleton, "pay");
        assert_eq!(hits[0].span, [16, 19]);
        assert_eq!(hits[0].scripts, ["Cyrillic"]);
    }

    #[test]
    fn capitalized_whole_script_name_is_low_and_japanese_fullwidth_run_is_narrow() {
        let hits = scan_confusable("Our guest Вера arrived early for the meeting today");
        assert_eq!(hits.len(), 1, "{hits:#?}");
        assert_eq!(
            (hits[0].kind, hits[0].severity),
            (ConfusableKind::WholeScript, Severity::Low)
        );
        let hits = scan_confusable("ＡＩの研究をしています");
        assert_eq!(hits.len(), 1, "{hits:#?}");
        assert_eq!((hits[0].word.as_str(), hits[0].span), ("ＡＩ", [0, 2]));
        assert_eq!(hits[0].skeleton, "AI");
    }

    #[test]
    fn fullwidth_word_is_low() {
        let hits = scan_confusable("please ＩＧＮＯＲＥ the rules");
        assert_eq!(hits.len(), 1);
        assert_eq!(hits[0].kind, ConfusableKind::Fullwidth);
        assert_eq!(hits[0].severity, Severity::Low);
        assert_eq!(hits[0].skeleton, "IGNORE");
        assert_eq!(hits[0].span, [7, 13]);
        let hits = scan_confusable("𝐢𝐠𝐧𝐨𝐫𝐞 this");
        assert_eq!(hits[0].kind, ConfusableKind::Styled);
        assert_eq!(hits[0].skeleton, "ignore");
    }

    #[test]
    fn code_point_names() {
        assert_eq!(code_point_name('\u{200B}'), "U+200B ZERO WIDTH SPACE");
        assert_eq!(code_point_name('\u{FE0F}'), "U+FE0F VARIATION SELECTOR-16");
        assert_eq!(
            code_point_name('\u{E0100}'),
            "U+E0100 VARIATION SELECTOR-17"
        );
        assert_eq!(code_point_name('\u{E0020}'), "U+E0020 TAG SPACE");
        assert_eq!(code_point_name('\u{E0030}'), "U+E0030 TAG DIGIT ZERO");
        assert_eq!(
            code_point_name('\u{0440}'),
            "U+0440 CYRILLIC SMALL LETTER ER"
        );
        assert_eq!(
            code_point_name('\u{039F}'),
            "U+039F GREEK CAPITAL LETTER OMICRON"
        );
        assert_eq!(
            code_point_name('\u{03C9}'),
            "U+03C9 GREEK SMALL LETTER OMEGA"
        );
        assert_eq!(code_point_name('\u{E000}'), "U+E000");
        assert_eq!(code_point_name('\u{1F600}'), "U+1F600");
    }

    mod props {
        use super::super::*;
        use proptest::prelude::*;

        /// Characters the rules care about, mixed with ordinary ones.
        fn interesting() -> impl Strategy<Value = char> {
            prop_oneof![
                Just('a'),
                Just('p'),
                Just(' '),
                Just('\n'),
                Just('\u{200B}'),
                Just('\u{200C}'),
                Just('\u{200D}'),
                Just('\u{200F}'),
                Just('\u{202E}'),
                Just('\u{2067}'),
                Just('\u{FEFF}'),
                Just('\u{FE0F}'),
                Just('\u{E0100}'),
                Just('\u{E0041}'),
                Just('\u{E007F}'),
                Just('\u{1F3F4}'),
                Just('\u{1F468}'),
                Just('\u{0301}'),
                Just('\u{0430}'),
                Just('\u{03B1}'),
                Just('\u{05D0}'),
                Just('\u{0645}'),
                Just('\u{FF21}'),
                Just('\u{1D400}'),
                Just('\u{3164}'),
                Just('\u{1160}'),
                Just('\u{1B}'),
                Just('\u{E000}'),
                any::<char>(),
            ]
        }

        proptest! {
            #[test]
            fn hits_are_sorted_disjoint_and_in_range(chars in prop::collection::vec(interesting(), 0..64)) {
                let text: String = chars.iter().collect();
                let n = chars.len();
                let hits = scan_invisible(&text);
                let mut last = 0;
                for h in &hits {
                    prop_assert!(h.span[0] < h.span[1] && h.span[1] <= n);
                    prop_assert!(h.span[0] >= last);
                    last = h.span[1];
                    prop_assert!(chars[h.span[0]..h.span[1]].iter().all(|c| classify(*c) == Some(h.class)));
                }
                let mut last = 0;
                for h in scan_confusable(&text) {
                    prop_assert!(h.span[0] < h.span[1] && h.span[1] <= n);
                    prop_assert!(h.span[0] >= last);
                    last = h.span[1];
                    let word: String = chars[h.span[0]..h.span[1]].iter().collect();
                    prop_assert_eq!(word, h.word);
                }
                let _ = reveal_excerpt(&text, [n / 2, n + 3], 5);
                let _ = strip_invisible(&text);
                for h in crate::text::patterns::PatternSet::builtin().scan(&text) {
                    prop_assert!(h.span[0] < h.span[1] && h.span[1] <= n);
                }
            }
        }
    }
}
