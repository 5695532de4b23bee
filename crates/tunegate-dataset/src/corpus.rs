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
    /// xxh3-128 over the per-role digests and the normalized label: equal exactly when the
    /// normalized prompt, response, rejected text and label are all equal.
    pub record_hash: Vec<u128>,
    /// Token id → token text.
    pub vocab: Vec<String>,
}

/// One record's normalized text per role, with token positions, kept only while its chunk is
/// interned.
struct Prepared {
    text: [String; 3],
    /// (hash, byte start, byte end) of each token in `text[role]`.
    toks: [Vec<(u64, u32, u32)>; 3],
    hash: [u128; 3],
    present: [bool; 3],
    chars: [u32; 3],
    record: u128,
}

const ROLES: [Role; 3] = [Role::Prompt, Role::Response, Role::Rejected];

/// Records normalized in parallel per chunk; the chunk bounds transient memory (normalized
/// strings and 64-bit token hashes exist for one chunk at a time, not for the whole corpus).
const CHUNK: usize = 32 * 1024;

/// A hasher for keys that are already uniformly distributed 64-bit hashes.
#[derive(Default, Clone, Copy)]
struct PreHashed(u64);

impl std::hash::Hasher for PreHashed {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

type Interner = HashMap<u64, u32, std::hash::BuildHasherDefault<PreHashed>>;

fn prepare(r: &crate::Record) -> Prepared {
    let mut p = Prepared {
        text: Default::default(),
        toks: Default::default(),
        hash: [0; 3],
        present: [false; 3],
        chars: [0; 3],
        record: 0,
    };
    for (k, role) in ROLES.iter().enumerate() {
        let mut fields = r.fields.iter().filter(|f| f.role == *role);
        let Some(first) = fields.next() else {
            continue;
        };
        // One field per role is the common case: normalize it in place, no joined copy.
        let n = if fields.next().is_none() {
            normalize(&first.text)
        } else {
            normalize(&r.text_of(*role))
        };
        p.present[k] = true;
        p.hash[k] = xxh3_128(n.as_bytes());
        p.chars[k] = if n.is_ascii() {
            n.len() as u32
        } else {
            n.chars().count() as u32
        };
        let base = n.as_ptr() as usize;
        let mut toks = Vec::with_capacity(n.len() / 5 + 1);
        toks.extend(words(&n).map(|w| {
            let start = (w.as_ptr() as usize - base) as u32;
            (
                xxhash_rust::xxh3::xxh3_64(w.as_bytes()),
                start,
                start + w.len() as u32,
            )
        }));
        p.toks[k] = toks;
        p.text[k] = n;
    }
    // The whole-record digest combines the per-role digests (and the label) instead of hashing
    // the text a second time.
    let mut all = xxhash_rust::xxh3::Xxh3::new();
    for k in 0..3 {
        all.update(&[u8::from(p.present[k])]);
        all.update(&p.hash[k].to_le_bytes());
    }
    if let Some(l) = &r.label {
        all.update(&[2]);
        all.update(normalize(l).as_bytes());
    }
    p.record = all.digest128();
    p
}

impl Corpus {
    /// Builds the corpus for `ds`: records are normalized and tokenized in parallel, chunk by
    /// chunk, and tokens are interned in record order, so ids are deterministic.
    pub fn build(ds: &Dataset) -> Corpus {
        let mut intern = Interner::default();
        let mut vocab: Vec<String> = Vec::new();
        let mut views: [View; 3] = Default::default();
        for v in views.iter_mut() {
            v.tokens.offsets.reserve(ds.records.len() + 1);
            v.tokens.offsets.push(0);
            v.hash.reserve(ds.records.len());
            v.present.reserve(ds.records.len());
            v.chars.reserve(ds.records.len());
        }
        let mut record_hash = Vec::with_capacity(ds.records.len());
        // Pipeline: while one chunk is interned (sequential, deterministic ids), the next one
        // is normalized and tokenized on the other threads.
        let mut intern_chunk = |prepared: Vec<Prepared>| {
            for p in &prepared {
                for (k, v) in views.iter_mut().enumerate() {
                    for &(h, s, e) in &p.toks[k] {
                        let id = *intern.entry(h).or_insert_with(|| {
                            vocab.push(p.text[k][s as usize..e as usize].to_string());
                            (vocab.len() - 1) as u32
                        });
                        v.tokens.ids.push(id);
                    }
                    v.tokens.offsets.push(v.tokens.ids.len());
                    v.hash.push(p.hash[k]);
                    v.present.push(p.present[k]);
                    v.chars.push(p.chars[k]);
                }
                record_hash.push(p.record);
            }
        };
        let mut pending: Option<Vec<Prepared>> = None;
        for chunk in ds.records.chunks(CHUNK) {
            let (prepared, ()) = rayon::join(
                || chunk.par_iter().map(prepare).collect::<Vec<Prepared>>(),
                || {
                    if let Some(p) = pending.take() {
                        intern_chunk(p);
                    }
                },
            );
            pending = Some(prepared);
        }
        if let Some(p) = pending.take() {
            intern_chunk(p);
        }
        let [prompt, response, rejected] = views;
        Corpus {
            prompt,
            response,
            rejected,
            record_hash,
            vocab,
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
