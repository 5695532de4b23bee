"""The normalizer, tokenizer and 5-gram shingles of tunegate's dedup, in Python (stdlib only).

Mirrors `tunegate_core::text::{normalize, words}` and the dataset near-duplicate detector:

- normalize: NFKC, default-ignorable code points removed, lowercase, whitespace collapsed;
- words: maximal runs of alphanumerics plus `_ ' |`, apostrophes trimmed from both ends,
  tokens without any alphanumeric dropped;
- shingles: word 5-grams over the whole record (instruction + input + output, newline-joined;
  tunegate's prompt tokens followed by its response tokens), a record with 1..4 tokens is
  shingled on character 5-grams of its words joined by spaces, an empty record has none.

Known gap: Python's `str.isalnum` (used by `\\w`) excludes combining marks that Rust's
`char::is_alphanumeric` counts as Alphabetic (e.g. Devanagari vowel signs). The generated
benchmark data is ASCII, so the two agree on it.
"""

import re
import unicodedata

SHINGLE = 5

# Default_Ignorable_Code_Point ranges, the same list as tunegate_core::text::unicode::is_default_ignorable.
_IGNORABLE_RANGES = [
    (0x00AD, 0x00AD), (0x034F, 0x034F), (0x061C, 0x061C), (0x115F, 0x1160), (0x17B4, 0x17B5),
    (0x180B, 0x180F), (0x200B, 0x200F), (0x202A, 0x202E), (0x2060, 0x206F), (0x3164, 0x3164),
    (0xFE00, 0xFE0F), (0xFEFF, 0xFEFF), (0xFFA0, 0xFFA0), (0xFFF0, 0xFFF8), (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A), (0xE0000, 0xE0FFF),
]
_DROP = {cp: None for lo, hi in _IGNORABLE_RANGES for cp in range(lo, hi + 1)}
_TOKEN = re.compile(r"[\w'|]+")
_ALNUM = re.compile(r"[^\W_]")


def normalize(text: str) -> str:
    t = text
    if not t.isascii():
        t = unicodedata.normalize("NFKC", t).translate(_DROP)
        if "\u03a3" in t:  # Rust lowercases char by char: no final-sigma rule
            t = "".join(c.lower() for c in t)
        else:
            t = t.lower()
    else:
        t = t.lower()
    return " ".join(t.split())


def words(normalized: str) -> list:
    toks = _TOKEN.findall(normalized)
    if "'" not in normalized and "_" not in normalized and "|" not in normalized:
        return toks  # runs of alphanumerics only: nothing to trim or drop
    out = []
    for w in toks:
        if "'" in w:
            w = w.strip("'")
        if w and _ALNUM.search(w):
            out.append(w)
    return out


def record_text(rec: dict) -> str:
    """The dedup view of one Alpaca-style record."""
    return "\n".join(str(rec.get(k) or "") for k in ("instruction", "input", "output"))


def shingle_list(tokens: list) -> list:
    n = len(tokens)
    if n == 0:
        return []
    if n < SHINGLE:
        # tunegate: character 5-grams of the words joined by spaces (one shingle under 5
        # characters), in their own hash domain (here: a \x00 prefix) so never equal to a word shingle
        text = " ".join(tokens)
        if len(text) <= SHINGLE:
            return ["\x00" + text]
        return ["\x00" + text[i:i + SHINGLE] for i in range(len(text) - SHINGLE + 1)]
    t = tokens
    return list(map(" ".join, zip(t, t[1:], t[2:], t[3:], t[4:])))


def shingles(text: str) -> set:
    return set(shingle_list(words(normalize(text))))


def record_shingles(rec: dict) -> set:
    return shingles(record_text(rec))


def jaccard(a: set, b: set) -> float:
    if not a and not b:
        return 1.0
    inter = len(a & b)
    return inter / (len(a) + len(b) - inter)
