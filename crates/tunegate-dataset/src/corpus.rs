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

/// A run of consecutive records prepared on one thread: normalized, tokenized, hashed, and each
/// token resolved against the vocabulary as it stood when the chunk started. Tokens the
/// vocabulary did not hold yet are listed in `unknown`, in record, role and token order, for
/// the in-order pass that gives them ids.
#[derive(Default)]
struct Part {
    /// Token ids per role (`u32::MAX` where `unknown` holds the token).
    ids: [Vec<u32>; 3],
    /// Tokens per record per role.
    lens: [Vec<u32>; 3],
    hash: [Vec<u128>; 3],
    present: [Vec<bool>; 3],
    chars: [Vec<u32>; 3],
    record: Vec<u128>,
    /// (role, position in `ids[role]`, token hash, byte range in `spelling`).
    unknown: Vec<(u8, u32, u64, u32, u32)>,
    /// The spellings of the unknown tokens, end to end.
    spelling: String,
}

const ROLES: [Role; 3] = [Role::Prompt, Role::Response, Role::Rejected];

/// Records per part (one parallel task).
const PART: usize = 512;
/// Records per chunk: the first chunk is small so that most of the vocabulary is known before
/// the big ones, whose tokens are then mostly resolved in parallel; chunks double up to
/// [`MAX_CHUNK`].
const FIRST_CHUNK: usize = 4 * 1024;
const MAX_CHUNK: usize = 64 * 1024;

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

/// Prepares `records` into one [`Part`], resolving tokens against `intern` (read only).
fn prepare(records: &[crate::Record], intern: &Interner) -> Part {
    let mut p = Part::default();
    for r in records {
        let mut hash = [0u128; 3];
        let mut present = [false; 3];
        for (k, role) in ROLES.iter().enumerate() {
            let mut fields = r.fields.iter().filter(|f| f.role == *role);
            let Some(first) = fields.next() else {
                p.lens[k].push(0);
                p.hash[k].push(0);
                p.present[k].push(false);
                p.chars[k].push(0);
                continue;
            };
            // One field per role is the common case: normalize it in place, no joined copy.
            let n = if fields.next().is_none() {
                normalize(&first.text)
            } else {
                normalize(&r.text_of(*role))
            };
            present[k] = true;
            hash[k] = xxh3_128(n.as_bytes());
            p.hash[k].push(hash[k]);
            p.present[k].push(true);
            p.chars[k].push(if n.is_ascii() {
                n.len() as u32
            } else {
                n.chars().count() as u32
            });
            let before = p.ids[k].len();
            for w in words(&n) {
                let h = xxhash_rust::xxh3::xxh3_64(w.as_bytes());
                let id = match intern.get(&h) {
                    Some(&id) => id,
                    None => {
                        let s = p.spelling.len() as u32;
                        p.spelling.push_str(w);
                        let pos = p.ids[k].len() as u32;
                        p.unknown
                            .push((k as u8, pos, h, s, p.spelling.len() as u32));
                        u32::MAX
                    }
                };
                p.ids[k].push(id);
            }
            p.lens[k].push((p.ids[k].len() - before) as u32);
        }
        // The whole-record digest combines the per-role digests (and the label) instead of
        // hashing the text a second time.
        let mut all = xxhash_rust::xxh3::Xxh3::new();
        for k in 0..3 {
            all.update(&[u8::from(present[k])]);
            all.update(&hash[k].to_le_bytes());
        }
        if let Some(l) = &r.label {
            all.update(&[2]);
            all.update(normalize(l).as_bytes());
        }
        p.record.push(all.digest128());
    }
    p
}

impl Corpus {
    /// Builds the corpus for `ds`. Records are normalized, tokenized and looked up in the
    /// vocabulary in parallel, chunk by chunk; an in-order pass over each chunk then gives the
    /// tokens new to the vocabulary their ids in order of first occurrence, so ids are the same
    /// whatever the thread count.
    pub fn build(ds: &Dataset) -> Corpus {
        let n = ds.records.len();
        let mut intern = Interner::default();
        let mut vocab: Vec<String> = Vec::new();
        let mut views: [View; 3] = Default::default();
        for v in views.iter_mut() {
            v.tokens.offsets.reserve(n + 1);
            v.tokens.offsets.push(0);
            v.hash.reserve(n);
            v.present.reserve(n);
            v.chars.reserve(n);
        }
        let mut record_hash = Vec::with_capacity(n);
        // Appends resolved parts to the flat arrays. It runs beside the next chunk's
        // preparation: the copy touches the arrays' memory for the first time, and page faults
        // on one thread would otherwise leave the other idle.
        let append = |parts: Vec<Part>, views: &mut [View; 3], record_hash: &mut Vec<u128>| {
            for part in parts {
                for (k, v) in views.iter_mut().enumerate() {
                    v.tokens.ids.extend_from_slice(&part.ids[k]);
                    let mut end = *v.tokens.offsets.last().unwrap_or(&0);
                    v.tokens.offsets.extend(part.lens[k].iter().map(|&l| {
                        end += l as usize;
                        end
                    }));
                    v.hash.extend_from_slice(&part.hash[k]);
                    v.present.extend_from_slice(&part.present[k]);
                    v.chars.extend_from_slice(&part.chars[k]);
                }
                record_hash.extend_from_slice(&part.record);
            }
        };
        let mut pending: Option<Vec<Part>> = None;
        let mut done = 0;
        let mut chunk = FIRST_CHUNK;
        while done < n {
            let records = &ds.records[done..(done + chunk).min(n)];
            let (mut parts, ()) = rayon::join(
                || {
                    records
                        .par_chunks(PART)
                        .map(|rs| prepare(rs, &intern))
                        .collect::<Vec<Part>>()
                },
                || {
                    if let Some(p) = pending.take() {
                        append(p, &mut views, &mut record_hash);
                    }
                },
            );
            // Tokens new to the vocabulary get ids in record order.
            for part in parts.iter_mut() {
                for &(k, pos, h, s, e) in &part.unknown {
                    let id = *intern.entry(h).or_insert_with(|| {
                        vocab.push(part.spelling[s as usize..e as usize].to_string());
                        (vocab.len() - 1) as u32
                    });
                    part.ids[k as usize][pos as usize] = id;
                }
            }
            if done == 0 && records.len() < n {
                // Reserve the token arrays once, from the first chunk's tokens per record
                // (with a margin), instead of doubling them as they grow: untouched capacity
                // costs address space, not memory.
                for (k, v) in views.iter_mut().enumerate() {
                    let seen: usize = parts.iter().map(|p| p.ids[k].len()).sum();
                    let per = seen as f64 / records.len() as f64;
                    v.tokens.ids.reserve((per * n as f64 * 1.25) as usize);
                }
            }
            pending = Some(parts);
            done += records.len();
            chunk = (chunk * 2).min(MAX_CHUNK);
        }
        if let Some(p) = pending.take() {
            append(p, &mut views, &mut record_hash);
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
