//! Shared precomputation for the detectors: each record's prompt, response and rejected text
//! normalized once ([`tunegate_core::text::normalize`]), tokenized into interned ids, and hashed.
//!
//! Invariant: every per-record vector is indexed like [`Dataset::records`].
use crate::{Dataset, Role};
use rayon::prelude::*;
use std::collections::HashMap;
use tunegate_core::text::{normalize, words};
use xxhash_rust::xxh3::xxh3_128;

/// Token ids of one role for every record, stored flat.
#[derive(Debug, Default, Clone)]
pub struct Tokens {
    ids: Vec<u32>,
    offsets: Vec<usize>,
}

impl Tokens {
    /// The token ids of record `i`.
    pub fn of(&self, i: usize) -> &[u32] {
        &self.ids[self.offsets[i]..self.offsets[i + 1]]
    }
    /// Number of records.
    pub fn len(&self) -> usize {
        self.offsets.len().saturating_sub(1)
    }
    /// True when there are no records.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One role's view of every record.
#[derive(Debug, Default, Clone)]
pub struct View {
    /// Token ids.
    pub tokens: Tokens,
    /// xxh3-128 of the normalized text; 0 when the record has no field with this role.
    pub hash: Vec<u128>,
    /// Whether the record has a field with this role.
    pub present: Vec<bool>,
    /// Normalized length in chars.
    pub chars: Vec<u32>,
}

/// The precomputed corpus.
#[derive(Debug, Default, Clone)]
pub struct Corpus {
    /// Prompt side (instruction + input, user turns, prompt, classification text).
    pub prompt: View,
    /// Response side (output, assistant turns, completion, chosen).
    pub response: View,
    /// Rejected side of preference pairs.
    pub rejected: View,
    /// xxh3-128 of the whole normalized record (prompt, response, rejected, label).
    pub record_hash: Vec<u128>,
    /// Token id → token text.
    pub vocab: Vec<String>,
}

struct Prepared {
    toks: [Vec<u64>; 3],
    hash: [u128; 3],
    present: [bool; 3],
    chars: [u32; 3],
    record: u128,
}

const ROLES: [Role; 3] = [Role::Prompt, Role::Response, Role::Rejected];

impl Corpus {
    /// Builds the corpus for `ds` (parallel over records).
    pub fn build(ds: &Dataset) -> Corpus {
        let prepared: Vec<Prepared> = ds
            .records
            .par_iter()
            .map(|r| {
                let mut p = Prepared {
                    toks: Default::default(),
                    hash: [0; 3],
                    present: [false; 3],
                    chars: [0; 3],
                    record: 0,
                };
                let mut all = String::new();
                for (k, role) in ROLES.iter().enumerate() {
                    if !r.has(*role) {
                        continue;
                    }
                    let n = normalize(&r.text_of(*role));
                    p.present[k] = true;
                    p.hash[k] = xxh3_128(n.as_bytes());
                    p.chars[k] = n.chars().count() as u32;
                    p.toks[k] = words(&n)
                        .map(|w| xxhash_rust::xxh3::xxh3_64(w.as_bytes()))
                        .collect();
                    all.push_str(&n);
                    all.push('\u{1}');
                }
                if let Some(l) = &r.label {
                    all.push_str(&normalize(l));
                }
                p.record = xxh3_128(all.as_bytes());
                p
            })
            .collect();

        // Intern token hashes to dense u32 ids; keep one spelling per id for reports.
        let mut intern: HashMap<u64, u32> = HashMap::new();
        let mut vocab = Vec::new();
        let mut views: [View; 3] = Default::default();
        for v in views.iter_mut() {
            v.tokens.offsets.push(0);
        }
        for (i, p) in prepared.iter().enumerate() {
            for k in 0..3 {
                let v = &mut views[k];
                for &h in &p.toks[k] {
                    let id = *intern.entry(h).or_insert_with(|| {
                        vocab.push(h);
                        (vocab.len() - 1) as u32
                    });
                    v.tokens.ids.push(id);
                }
                v.tokens.offsets.push(v.tokens.ids.len());
                v.hash.push(p.hash[k]);
                v.present.push(p.present[k]);
                v.chars.push(p.chars[k]);
            }
            let _ = i;
        }
        // Recover spellings: one pass over the records that introduced each id.
        let mut spelled: Vec<Option<String>> = vec![None; vocab.len()];
        let mut missing = vocab.len();
        'outer: for r in &ds.records {
            for role in ROLES {
                if !r.has(role) {
                    continue;
                }
                let n = normalize(&r.text_of(role));
                for w in words(&n) {
                    let h = xxhash_rust::xxh3::xxh3_64(w.as_bytes());
                    if let Some(&id) = intern.get(&h) {
                        let slot = &mut spelled[id as usize];
                        if slot.is_none() {
                            *slot = Some(w.to_string());
                            missing -= 1;
                            if missing == 0 {
                                break 'outer;
                            }
                        }
                    }
                }
            }
        }
        let [prompt, response, rejected] = views;
        Corpus {
            prompt,
            response,
            rejected,
            record_hash: prepared.iter().map(|p| p.record).collect(),
            vocab: spelled.into_iter().map(Option::unwrap_or_default).collect(),
        }
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.record_hash.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.record_hash.is_empty()
    }

    /// The spelling of token `id`.
    pub fn word(&self, id: u32) -> &str {
        &self.vocab[id as usize]
    }
}
