//! Lexical relevance between two sides of a record: TF-IDF cosine over content stems.
//!
//! Tokens come from the corpus (already normalized and interned). A token is a *content* token
//! when it is not an English stopword and has at least two chars; content tokens are folded to
//! a crude stem (plural `-s`/`-es`/`-ies`, `-ing`, `-ed`, possessive `'s`) so "tips" meets "tip".
//! IDF is computed over records (a record is one document: prompt ∪ response ∪ rejected).
//!
//! Everything is vocabulary-level precomputation plus one sorted merge per pair, so relevance
//! for a million records costs about as much as reading their token ids.
use crate::corpus::Corpus;
use crate::detect::outliers::robust::count_ids;
use std::collections::HashMap;
use tunegate_core::text::normalize;

/// No stem: the token is a stopword or too short to carry meaning.
const NONE: u32 = u32::MAX;

/// A small English stopword list (function words, auxiliaries, pronouns, common contractions).
#[rustfmt::skip]
const STOPWORDS: &[&str] = &[
    "a", "about", "above", "after", "again", "against", "all", "also", "am", "an", "and", "any",
    "are", "aren't", "as", "at", "be", "because", "been", "before", "being", "below", "between",
    "both", "but", "by", "can", "can't", "cannot", "could", "couldn't", "did", "didn't", "do",
    "does", "doesn't", "doing", "don't", "down", "during", "each", "either", "else", "etc", "even",
    "ever", "every", "few", "for", "from", "further", "get", "got", "had", "hadn't", "has",
    "hasn't", "have", "haven't", "having", "he", "he'd", "he'll", "he's", "her", "here", "here's",
    "hers", "herself", "him", "himself", "his", "how", "how's", "however", "i", "i'd", "i'll",
    "i'm", "i've", "if", "in", "into", "is", "isn't", "it", "it's", "its", "itself", "just",
    "let's", "like", "may", "me", "might", "more", "most", "much", "must", "mustn't", "my",
    "myself", "n't", "no", "nor", "not", "now", "of", "off", "on", "once", "one", "only", "or",
    "other", "ought", "our", "ours", "ourselves", "out", "over", "own", "per", "please", "quite",
    "rather", "really", "same", "shall", "shan't", "she", "she'd", "she'll", "she's", "should",
    "shouldn't", "so", "some", "such", "than", "that", "that's", "the", "their", "theirs", "them",
    "themselves", "then", "there", "there's", "these", "they", "they'd", "they'll", "they're",
    "they've", "this", "those", "though", "through", "thus", "to", "too", "under", "until", "up",
    "upon", "us", "use", "used", "using", "very", "via", "was", "wasn't", "we", "we'd", "we'll",
    "we're", "we've", "well", "were", "weren't", "what", "what's", "when", "when's", "where",
    "where's", "whether", "which", "while", "who", "who's", "whom", "whose", "why", "why's", "will",
    "with", "within", "without", "won't", "would", "wouldn't", "yes", "yet", "you", "you'd",
    "you'll", "you're", "you've", "your", "yours", "yourself", "yourselves", "'s", "s", "re", "ve",
    "ll", "wo", "ca",
];

/// Phrases that open a refusal (checked on the normalized start of a response).
const REFUSALS: &[&str] = &[
    "i'm sorry",
    "i am sorry",
    "sorry, but",
    "sorry, i",
    "i apologize",
    "i apologise",
    "my apologies",
    "i cannot",
    "i can't",
    "i can not",
    "i won't",
    "i will not",
    "i'm unable",
    "i am unable",
    "i'm not able",
    "i am not able",
    "as an ai",
    "as a language model",
    "i'm just an ai",
    "unfortunately, i",
    "i don't know",
    "i do not know",
    "i don't have",
    "i do not have",
];

/// A crude English stem: possessive, plural, `-ing` and `-ed` stripped (ASCII words only).
pub(crate) fn stem(w: &str) -> String {
    let mut s = w.strip_suffix("'s").unwrap_or(w);
    if !s.is_ascii() || s.len() <= 3 {
        return s.to_string();
    }
    let owned;
    if let Some(base) = s.strip_suffix("ies").filter(|b| b.len() >= 2) {
        owned = format!("{base}y");
        s = &owned;
    } else if let Some(base) = s.strip_suffix("sses") {
        owned = format!("{base}ss");
        s = &owned;
    } else if s.ends_with('s') && !s.ends_with("ss") && !s.ends_with("us") && !s.ends_with("is") {
        s = &s[..s.len() - 1];
    }
    let s = if s.len() > 5 && s.ends_with("ing") {
        &s[..s.len() - 3]
    } else if s.len() > 4 && s.ends_with("ed") && !s.ends_with("eed") {
        &s[..s.len() - 2]
    } else {
        s
    };
    s.to_string()
}

/// True when `text` opens like a refusal.
pub(crate) fn is_refusal(text: &str) -> bool {
    let head: String = text.chars().take(160).collect();
    let n = normalize(&head).replace(['\u{2019}', '\u{2018}'], "'");
    let n = n.trim_start_matches(|c: char| !c.is_alphanumeric());
    // "Hello! I'm sorry, ..." still refuses: allow a short greeting before the phrase.
    REFUSALS.iter().any(|r| n.find(r).is_some_and(|p| p < 24))
}

/// A TF-IDF vector over content stems: sorted by stem, weights `(1 + ln tf) · idf`.
#[derive(Debug, Default, Clone)]
pub(crate) struct Bag {
    terms: Vec<(u32, f32)>,
    norm: f32,
}

impl Bag {
    /// Number of distinct content stems.
    pub fn len(&self) -> usize {
        self.terms.len()
    }
}

/// How much two bags share.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Relevance {
    /// TF-IDF cosine in [0, 1].
    pub cosine: f32,
    /// Distinct content stems present on both sides.
    pub shared: usize,
}

/// Vocabulary-level tables for relevance.
pub(crate) struct Lexicon {
    /// Token id → stem id, or [`NONE`].
    stem_of: Vec<u32>,
    /// Stem id → IDF.
    idf: Vec<f32>,
    /// `1 + ln tf` for term counts below [`TF_TABLE`] (a `ln` per term was most of
    /// [`Lexicon::fill_bag`]).
    tf_weight: [f32; TF_TABLE],
}

/// Term counts with a precomputed weight.
const TF_TABLE: usize = 64;

/// The sublinear term-frequency weight `1 + ln tf`.
fn tf_weight(tf: usize) -> f32 {
    1.0 + (tf as f32).ln()
}

impl Lexicon {
    /// Document frequency of every token id over all records (prompt ∪ response ∪ rejected).
    pub fn token_df(corpus: &Corpus) -> Vec<u32> {
        count_ids(corpus.len(), corpus.vocab.len(), true, |i, buf| {
            for v in [&corpus.prompt, &corpus.response, &corpus.rejected] {
                buf.extend_from_slice(v.tokens.of(i));
            }
        })
    }

    /// Builds stems and IDF from the token document frequencies `token_df` (see
    /// [`Lexicon::token_df`]). A stem's document frequency is the sum over its spellings,
    /// capped at the record count: an upper bound that avoids a second pass over the corpus.
    pub fn build(corpus: &Corpus, token_df: &[u32]) -> Lexicon {
        let stop: std::collections::HashSet<&str> = STOPWORDS.iter().copied().collect();
        let mut intern: HashMap<String, u32> = HashMap::new();
        let mut stem_of = Vec::with_capacity(corpus.vocab.len());
        for w in &corpus.vocab {
            if w.chars().count() < 2 || stop.contains(w.as_str()) {
                stem_of.push(NONE);
                continue;
            }
            let s = stem(w);
            let next = intern.len() as u32;
            stem_of.push(*intern.entry(s).or_insert(next));
        }
        let n = corpus.len() as u64;
        let mut df = vec![0u64; intern.len()];
        for (t, &s) in stem_of.iter().enumerate() {
            if s != NONE {
                df[s as usize] += token_df.get(t).copied().unwrap_or(0) as u64;
            }
        }
        let idf = df
            .iter()
            .map(|&d| (((n as f64 + 1.0) / (d.min(n) as f64 + 1.0)).ln() + 1.0) as f32)
            .collect();
        Lexicon {
            stem_of,
            idf,
            tf_weight: std::array::from_fn(tf_weight),
        }
    }

    /// The stem of token `t`, or `None` for a stopword or a one-char token.
    pub fn stem_of(&self, t: u32) -> Option<u32> {
        let s = self.stem_of[t as usize];
        (s != NONE).then_some(s)
    }

    /// Number of distinct stems.
    pub fn stems(&self) -> usize {
        self.idf.len()
    }

    /// The TF-IDF bag of a token sequence, into reused buffers (`scratch` is working space).
    pub fn fill_bag(&self, tokens: &[u32], scratch: &mut Vec<u32>, out: &mut Bag) {
        scratch.clear();
        scratch.extend(
            tokens
                .iter()
                .map(|&t| self.stem_of[t as usize])
                .filter(|&s| s != NONE),
        );
        scratch.sort_unstable();
        out.terms.clear();
        let mut norm = 0f32;
        let mut k = 0;
        while k < scratch.len() {
            let mut j = k;
            while j < scratch.len() && scratch[j] == scratch[k] {
                j += 1;
            }
            let tf = j - k;
            let w = self
                .tf_weight
                .get(tf)
                .copied()
                .unwrap_or_else(|| tf_weight(tf))
                * self.idf[scratch[k] as usize];
            norm += w * w;
            out.terms.push((scratch[k], w));
            k = j;
        }
        out.norm = norm.sqrt();
    }

    /// The distinct content stems of a token sequence, sorted.
    pub fn stem_set(&self, tokens: &[u32]) -> Vec<u32> {
        let mut s: Vec<u32> = tokens
            .iter()
            .map(|&t| self.stem_of[t as usize])
            .filter(|&s| s != NONE)
            .collect();
        s.sort_unstable();
        s.dedup();
        s
    }
}

/// TF-IDF cosine and shared-stem count of two bags.
pub(crate) fn relevance(a: &Bag, b: &Bag) -> Relevance {
    let (mut i, mut j) = (0, 0);
    let mut dot = 0f32;
    let mut shared = 0;
    while i < a.terms.len() && j < b.terms.len() {
        match a.terms[i].0.cmp(&b.terms[j].0) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                dot += a.terms[i].1 * b.terms[j].1;
                shared += 1;
                i += 1;
                j += 1;
            }
        }
    }
    let den = a.norm * b.norm;
    Relevance {
        cosine: if den > 0.0 {
            (dot / den).clamp(0.0, 1.0)
        } else {
            0.0
        },
        shared,
    }
}

/// Jaccard similarity of two sorted, deduplicated sets.
pub(crate) fn jaccard(a: &[u32], b: &[u32]) -> f64 {
    if a.is_empty() && b.is_empty() {
        return 1.0;
    }
    let (mut i, mut j, mut inter) = (0, 0, 0usize);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                inter += 1;
                i += 1;
                j += 1;
            }
        }
    }
    inter as f64 / (a.len() + b.len() - inter) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stems_fold_common_suffixes() {
        assert_eq!(stem("tips"), "tip");
        assert_eq!(stem("staying"), "stay");
        assert_eq!(stem("studies"), "study");
        assert_eq!(stem("classes"), "class");
        assert_eq!(stem("walked"), "walk");
        assert_eq!(stem("bus"), "bus");
        assert_eq!(stem("analysis"), "analysis");
        assert_eq!(stem("john's"), "john");
        assert_eq!(stem("sing"), "sing");
    }

    #[test]
    fn refusals() {
        assert!(is_refusal("I'm sorry, but I can't help with that."));
        assert!(is_refusal("I\u{2019}m sorry, but no."));
        assert!(is_refusal("As an AI language model, I cannot do that."));
        assert!(!is_refusal(
            "Sure! Here are three tips for staying healthy. I cannot stress enough how much sleep matters."
        ));
    }

    #[test]
    fn jaccard_of_sets() {
        assert_eq!(jaccard(&[1, 2, 3], &[2, 3, 4]), 0.5);
        assert_eq!(jaccard(&[], &[]), 1.0);
        assert_eq!(jaccard(&[1], &[]), 0.0);
    }
}
