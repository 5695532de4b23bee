//! Near-duplicates (`D003`) and poison clusters (`D018`) by MinHash LSH with exact verification.
//!
//! **View.** One item per distinct record: records with the same whole-record hash
//! (`Corpus::record_hash`) are exact duplicates, reported by [`super::dedup`], so only the
//! lowest-index record of each exact group is sketched; its copies join whatever cluster it
//! joins (they count in cluster sizes and poison clusters, but get no `D003`). The text of an
//! item is its prompt tokens followed by its response tokens (the normalized word tokens of
//! [`crate::corpus::Corpus`]).
//!
//! **Shingles.** Word 5-grams of token ids. A record with fewer than 5 word tokens is shingled
//! on character 5-grams of its words joined by single spaces (a text under 5 characters is one
//! shingle), so short records are still deduplicated instead of silently skipped as peers do; a
//! short record is never a near-duplicate of a long one, because the two shingle kinds hash into
//! different domains. Records with no tokens at all are not sketched.
//!
//! **Sketch and candidates** (see [Scheme](#scheme) and [`cluster`]): 128 permutations
//! `a·x + b mod 2^32` over folded xxh3-64 shingle hashes, banded by [`Banding::for_threshold`] (21 × 6 at
//! the default threshold 0.8), sort-based candidate generation, **exact** Jaccard verification of
//! every candidate against `ScanOptions::near_dup_threshold`, and union-find clusters whose
//! representative is the lowest record index. The output is deterministic.
//!
//! **Findings.** Each non-representative, non-exact-copy member of a cluster gets a low `D003`
//! naming the representative, its exact Jaccard similarity to it and the cluster size (records,
//! exact copies included); when the member joined through a chain (its similarity to the
//! representative is under the threshold) the message also names the member it matched. The
//! evidence's `cluster` id is the representative's position among all scanned records (its
//! record index for a single file without malformed records).
//!
//! **Response view.** [`response_clusters`] clusters records on their response tokens only
//! (identical normalized responses are one item, sketched once; same shingles, sketch and
//! threshold), so one payload with small variations behind many different prompts forms a
//! cluster even when the whole records do not. Such a record gets a low `D003` with evidence
//! `"view": "response"` naming the response cluster's representative, unless it is already in
//! the representative's whole-record cluster or its response is an exact repeat (identical to
//! the representative's or another record's: `D002`/`D010` report those). Whole-record findings
//! carry `"view": "record"`. The clusters are computed once per scan and shared with the trigger
//! detector (through [`Ctx::response_clusters`](super::Ctx::response_clusters)), which uses them as output families. Records without
//! a response (text/label data) have no response view.
//!
//! A cluster with at least 3 members (3 of them distinct) where ≥ 90 % of the members share one
//! normalized response (or, without responses, one label) and some prompt token occurs in ≥ 90 %
//! of the members while being rare in the corpus (document frequency ≤ 1 % of records and
//! ≤ 5 × the cluster size) has the backdoor shape — templated prompts carrying a trigger, one
//! payload — and every member gets a high `D018` with the same evidence. Benign near-duplicate
//! clusters (one template, different answers; or one answer, no rare shared token) stay `D003`.
//! A chart shows the cluster sizes.
//!
//! # Scheme
//! 1. Shingle hashes: xxh3-64 (seeded) of each window of 5 token ids as little-endian `u32`s
//!    ([`word_shingles`]), or of each 5-character window ([`char_shingles`], another seed).
//! 2. Signature ([`MinHasher`]): 128 permutations `h_i(x) = a_i·x + b_i mod 2^64` (`a_i` odd,
//!    parameters from a fixed splitmix64 stream), minimum per permutation. The inputs are already
//!    uniformly mixed, so each `h_i` is a random-looking bijection; one multiply-add per
//!    (shingle, permutation) keeps signing cheap, and a unit test checks the estimator's spread
//!    against the ideal `sqrt(J(1-J)/128)`.
//! 3. Bands ([`Banding`], [`bands`]): `b × r` rows folded into `b` band hashes; only their
//!    high 32 bits are kept (84 bytes per record at 21 × 6). Candidate probability
//!    `1 - (1 - J^r)^b` ([`Banding::probability`]): 0.998 at J = 0.8 for 21 × 6.
//! 4. Candidates and clusters ([`cluster`]): per band, sort `(hash, item)` pairs, verify each run
//!    of equal hashes by exact Jaccard ([`jaccard`]) over sorted shingle sets computed for
//!    candidates only (every pair in runs of up to 64 items; each item against up to 32
//!    leaders in runs of up to 1000; each item against the lowest one in larger runs),
//!    union-find, representative = lowest index.
//!
//! The core works on plain `u64` shingle hashes so benchmarks can drive it without a dataset:
//! ```
//! use tunegate_dataset::detect::minhash::{bands, word_shingles, Banding, MinHasher, SHINGLE};
//! let mut sh = Vec::new();
//! word_shingles(&[&[1, 2, 3, 4, 5, 6, 7]], SHINGLE, &mut sh);
//! let sig = MinHasher::default().signature(&sh);
//! let b = bands(&sig, Banding::default());
//! assert_eq!((sig.len(), b.len()), (128, 21));
//! ```
use super::dedup::{describe, loc, output_key};
use super::{Ctx, Output};
use crate::checks::{NEAR_DUP, POISON_CLUSTER};
use crate::Role;
use rayon::prelude::*;
use serde_json::{json, Value};
use std::cell::RefCell;
use std::collections::HashMap;

use tunegate_core::{Chart, ChartKind, Finding};

mod joint;
mod lsh;
mod sketch;

pub(crate) use joint::{sketches, Sketches, ViewSketch};

pub use lsh::{cluster, Clusters, LshParams, LshStats};
pub use sketch::{
    bands, char_shingles, estimate, intersection, into_set, jaccard, jaccard_at_least,
    word_shingles, Banding, MinHasher, CHAR_SEED, MAX_SHINGLE, NUM_PERM, PERM_SEED, SHINGLE,
    WORD_SEED,
};

/// Share of cluster members that must agree (on the output, and on carrying the rare token).
const POISON_SHARE: f64 = 0.9;
/// Minimum cluster size (and distinct members) for a poison cluster.
const POISON_MIN: usize = 3;
/// A poison token's document frequency is at most this share of the records...
const RARE_DF_SHARE: f64 = 0.01;
/// ...and at most this multiple of the cluster size.
const RARE_DF_CLUSTER: usize = 5;
/// Characters of the shared output quoted in evidence.
const EXCERPT: usize = 200;

thread_local! {
    static SHORT_TEXT: RefCell<String> = const { RefCell::new(String::new()) };
}

/// Runs the detector.
pub fn detect(ctx: &Ctx) -> Output {
    let corpus = ctx.corpus;
    let n = corpus.len().min(ctx.ds.records.len());
    let mut out = Output::default();
    if n == 0 {
        return out;
    }
    let threshold = clamp_threshold(ctx.opts.near_dup_threshold);

    // Exact groups: unit = lowest record index of each whole-record hash. The scan clusters
    // both views beforehand ([`Ctx::prepare_near_duplicates`]); called on its own, the detector
    // clusters its view here.
    let Clustered {
        reps,
        unit_of,
        clusters,
    } = match ctx.take_record_view() {
        Some(v) => v,
        None => cluster_view(ctx, View::Record, None).unwrap_or_default(),
    };

    // Expand unit clusters to records.
    let groups = clusters.groups();
    let mut group_of_unit = vec![u32::MAX; reps.len()];
    for (g, units) in groups.iter().enumerate() {
        for &u in units {
            group_of_unit[u as usize] = g as u32;
        }
    }
    let mut members: Vec<Vec<u32>> = vec![Vec::new(); groups.len()];
    for (i, &u) in unit_of.iter().enumerate() {
        let g = group_of_unit[u as usize];
        if g != u32::MAX {
            members[g as usize].push(i as u32);
        }
    }

    let poison = poison_clusters(ctx, &groups, &members, n);

    // Whole-record group of every record (u32::MAX outside any cluster), for the response view.
    let record_group: Vec<u32> = unit_of.iter().map(|&u| group_of_unit[u as usize]).collect();

    for (g, units) in groups.iter().enumerate() {
        let size = members[g].len();
        let rep_unit = units[0] as usize;
        let rep_i = reps[rep_unit] as usize;
        let rep = &ctx.ds.records[rep_i];
        for &u in &units[1..] {
            let i = reps[u as usize] as usize;
            let j = f64::from(clusters.jaccard_to_rep[u as usize]);
            let matched = clusters.best_match[u as usize];
            let rec = &ctx.ds.records[i];
            let message = match matched {
                Some((m, mj)) if j < threshold && m as usize != rep_unit => {
                    let mr = &ctx.ds.records[reps[m as usize] as usize];
                    format!(
                        "near-duplicate of record {} (Jaccard {:.2}) in the cluster of record {} (Jaccard {:.2} to it), cluster of {}",
                        mr.index,
                        mj,
                        describe(ctx, rep),
                        j,
                        size
                    )
                }
                _ => format!(
                    "near-duplicate of record {} (Jaccard {:.2}), cluster of {}",
                    describe(ctx, rep),
                    j,
                    size
                ),
            };
            let mut ev = json!({
                "cluster": rep_i,
                "size": size,
                "distinct": units.len(),
                "jaccard": round3(j),
                "threshold": threshold,
                "representative": loc(ctx, rep),
                "view": "record",
            });
            if let Some((m, mj)) = matched {
                let mut l = loc(ctx, &ctx.ds.records[reps[m as usize] as usize]);
                l["jaccard"] = json!(round3(f64::from(mj)));
                ev["matched"] = l;
            }
            out.findings
                .push(Finding::new(&NEAR_DUP, message, ctx.ds.location(rec)).evidence(ev));
        }
        if let Some(p) = poison.get(&(g as u32)) {
            let tokens: Vec<String> = p
                .rare
                .iter()
                .map(|(t, _, _)| format!("'{}'", corpus.word(*t)))
                .collect();
            let df = p.rare.first().map_or(0, |r| r.1);
            let message = format!(
                "one of {} near-duplicate records that share one {} and the rare token{} {} ({}in {} of {} records): the backdoor shape of templated prompts with a trigger and one payload",
                size,
                p.kind,
                if tokens.len() > 1 { "s" } else { "" },
                tokens.join(", "),
                if tokens.len() > 1 { "the rarest " } else { "" },
                df,
                n
            );
            let ev = json!({
                "cluster": rep_i,
                "size": size,
                "distinct": units.len(),
                "shared_output": {
                    "kind": p.kind,
                    "excerpt": p.excerpt,
                    "share": round3(p.share),
                },
                "rare_tokens": p.rare.iter().map(|(t, df, inside)| json!({
                    "token": corpus.word(*t),
                    "df": df,
                    "in_cluster": inside,
                })).collect::<Vec<Value>>(),
                "representative": loc(ctx, rep),
            });
            for &i in &members[g] {
                let rec = &ctx.ds.records[i as usize];
                out.findings.push(
                    Finding::new(&POISON_CLUSTER, message.clone(), ctx.ds.location(rec))
                        .evidence(ev.clone()),
                );
            }
        }
    }

    out.charts.push(size_chart(members.iter().map(Vec::len)));
    response_findings(
        ctx,
        &ctx.response_clusters(),
        &record_group,
        threshold,
        &mut out,
    );
    out
}

/// Groups items by an exact key. Returns the units' representatives (the lowest item of each
/// key, ascending; units are numbered in this order) and each item's unit (`u32::MAX` for items
/// without a key).
fn exact_units<F>(n: usize, key: F) -> (Vec<u32>, Vec<u32>)
where
    F: Fn(usize) -> Option<u128> + Sync,
{
    let mut order: Vec<(u128, u32)> = (0..n)
        .into_par_iter()
        .filter_map(|i| key(i).map(|k| (k, i as u32)))
        .collect();
    order.par_sort_unstable();
    let mut run_of = vec![u32::MAX; n];
    let mut run_rep: Vec<u32> = Vec::new();
    for run in order.chunk_by(|a, b| a.0 == b.0) {
        for &(_, i) in run {
            run_of[i as usize] = run_rep.len() as u32;
        }
        run_rep.push(run[0].1);
    }
    drop(order);
    let mut by_rep: Vec<u32> = (0..run_rep.len() as u32).collect();
    by_rep.sort_unstable_by_key(|&r| run_rep[r as usize]);
    let mut rank = vec![0u32; run_rep.len()];
    for (u, &r) in by_rep.iter().enumerate() {
        rank[r as usize] = u as u32;
    }
    let reps: Vec<u32> = by_rep.iter().map(|&r| run_rep[r as usize]).collect();
    let unit_of: Vec<u32> = run_of
        .into_iter()
        .map(|r| if r == u32::MAX { r } else { rank[r as usize] })
        .collect();
    (reps, unit_of)
}

/// A near-duplicate cluster of responses (the response view): records whose normalized
/// responses are near-duplicates, whatever their prompts.
#[derive(Debug, Clone, PartialEq)]
pub struct ResponseCluster {
    /// Record indices, ascending; the first is the representative.
    pub records: Vec<u32>,
    /// Exact Jaccard similarity of each record's response to the representative's (aligned
    /// with `records`; 1 for the representative and its identical copies).
    pub jaccard: Vec<f32>,
    /// Distinct normalized responses in the cluster (at least 2).
    pub distinct: usize,
}

/// Near-duplicate clusters over the **response** side only (`Corpus::response` tokens): records
/// with an identical normalized response form one item, sketched once; items are shingled like
/// whole records (word 5-grams, character 5-grams under 5 tokens) and clustered by
/// [`cluster`] at `ScanOptions::near_dup_threshold`. Only clusters of at least two *distinct*
/// responses are returned (identical responses alone are exact families, reported elsewhere),
/// ordered by representative; deterministic. Records without a response (text/label data) are
/// never clustered.
pub fn response_clusters(ctx: &Ctx) -> Vec<ResponseCluster> {
    response_clusters_of(cluster_view(ctx, View::Response, None))
}

/// One view clustered: its units ([`exact_units`]) and their clusters.
#[derive(Debug, Default)]
pub(crate) struct Clustered {
    reps: Vec<u32>,
    unit_of: Vec<u32>,
    clusters: Clusters,
}

/// Clusters `view`, from the band hashes in `sketch` when given (see [`sketches`]) or else
/// computing its units and band hashes. `None` for the response view when no record has a
/// response.
pub(crate) fn cluster_view(ctx: &Ctx, view: View, sketch: Option<ViewSketch>) -> Option<Clustered> {
    let c = ctx.corpus;
    let n = c.len().min(ctx.ds.records.len());
    let threshold = clamp_threshold(ctx.opts.near_dup_threshold);
    let shingle = |reps: &[u32], u: usize, buf: &mut Vec<u64>| {
        let i = reps[u] as usize;
        match view {
            View::Record => shingle_record(ctx, i, buf),
            View::Response => shingle_tokens(ctx, &[c.response.tokens.of(i)], buf),
        }
    };
    let (reps, unit_of, clusters) = match sketch {
        Some(ViewSketch {
            reps,
            unit_of,
            bands,
        }) => {
            let clusters = lsh::cluster_banded(bands, threshold, |u, buf| shingle(&reps, u, buf));
            (reps, unit_of, clusters)
        }
        None => {
            let (reps, unit_of) = match view {
                View::Record => exact_units(n, |i| Some(c.record_hash[i])),
                View::Response => {
                    let has = |i: usize| joint::has_response(ctx, i);
                    if !(0..n).any(has) {
                        return None;
                    }
                    exact_units(n, |i| has(i).then(|| c.response.hash[i]))
                }
            };
            let clusters = cluster(reps.len(), LshParams::for_threshold(threshold), |u, buf| {
                shingle(&reps, u, buf)
            });
            (reps, unit_of, clusters)
        }
    };
    Some(Clustered {
        reps,
        unit_of,
        clusters,
    })
}

/// The response clusters of the clustered response view (none without one).
pub(crate) fn response_clusters_of(view: Option<Clustered>) -> Vec<ResponseCluster> {
    let Some(Clustered {
        reps,
        unit_of,
        clusters,
    }) = view
    else {
        return Vec::new();
    };
    let groups = clusters.groups();
    let mut group_of_unit = vec![u32::MAX; reps.len()];
    for (g, units) in groups.iter().enumerate() {
        for &u in units {
            group_of_unit[u as usize] = g as u32;
        }
    }
    let mut out: Vec<ResponseCluster> = groups
        .iter()
        .map(|units| ResponseCluster {
            records: Vec::new(),
            jaccard: Vec::new(),
            distinct: units.len(),
        })
        .collect();
    for (i, &u) in unit_of.iter().enumerate() {
        if u == u32::MAX {
            continue;
        }
        let g = group_of_unit[u as usize];
        if g != u32::MAX {
            let rc = &mut out[g as usize];
            rc.records.push(i as u32);
            rc.jaccard.push(clusters.jaccard_to_rep[u as usize]);
        }
    }
    out
}

/// `D003` for the response view: a record whose response is a near-duplicate of its cluster
/// representative's, unless the two are already in one whole-record cluster or the record's
/// response is an exact repeat (identical to the representative's or to any other record's:
/// exact repeats are reported by `D002`/`D010`).
fn response_findings(
    ctx: &Ctx,
    clusters: &[ResponseCluster],
    record_group: &[u32],
    threshold: f64,
    out: &mut Output,
) {
    let c = ctx.corpus;
    for rc in clusters {
        let rep_i = rc.records[0] as usize;
        let rep = &ctx.ds.records[rep_i];
        let rep_hash = c.response.hash[rep_i];
        let rep_group = record_group[rep_i];
        let size = rc.records.len();
        // Identical copies are in the same cluster, so counting inside it finds every repeat.
        let mut copies: HashMap<u128, usize> = HashMap::new();
        for &i in &rc.records {
            *copies.entry(c.response.hash[i as usize]).or_insert(0) += 1;
        }
        for (&i, &j) in rc.records.iter().zip(&rc.jaccard).skip(1) {
            let i = i as usize;
            let h = c.response.hash[i];
            if h == rep_hash
                || copies[&h] > 1
                || (rep_group != u32::MAX && record_group[i] == rep_group)
            {
                continue;
            }
            let j = f64::from(j);
            let rec = &ctx.ds.records[i];
            let message = format!(
                "response is a near-duplicate of the response of record {} (Jaccard {:.2}) for a different prompt, response cluster of {}",
                describe(ctx, rep),
                j,
                size
            );
            let ev = json!({
                "view": "response",
                "cluster": rep_i,
                "size": size,
                "distinct": rc.distinct,
                "jaccard": round3(j),
                "threshold": threshold,
                "representative": loc(ctx, rep),
            });
            let mut l = ctx.ds.location(rec);
            if let Some(f) = rec.fields.iter().find(|f| f.role == Role::Response) {
                l = l.field(&*f.path);
            }
            out.findings
                .push(Finding::new(&NEAR_DUP, message, l).evidence(ev));
        }
    }
}

/// The two views a scan clusters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum View {
    /// Whole records (prompt + response tokens).
    Record,
    /// Responses alone.
    Response,
}

/// The verification threshold: NaN falls back to the default 0.8, others are clamped to
/// `[0.01, 1]` (a zero threshold would make every candidate a duplicate).
pub(crate) fn clamp_threshold(t: f64) -> f64 {
    if t.is_nan() {
        0.8
    } else {
        t.clamp(0.01, 1.0)
    }
}

/// Appends record `i`'s shingles: word 5-grams of prompt + response tokens, or character
/// 5-grams of its words when it has fewer than 5 tokens.
fn shingle_record(ctx: &Ctx, i: usize, out: &mut Vec<u64>) {
    let c = ctx.corpus;
    shingle_tokens(ctx, &[c.prompt.tokens.of(i), c.response.tokens.of(i)], out);
}

/// Appends the shingles of the concatenated token `parts`: word 5-grams, or character 5-grams
/// of the words joined by spaces when there are fewer than 5 tokens.
fn shingle_tokens(ctx: &Ctx, parts: &[&[u32]], out: &mut Vec<u64>) {
    let c = ctx.corpus;
    let len: usize = parts.iter().map(|p| p.len()).sum();
    if len >= SHINGLE {
        word_shingles(parts, SHINGLE, out);
    } else if len > 0 {
        SHORT_TEXT.with(|cell| {
            let mut text = cell.borrow_mut();
            text.clear();
            for &t in parts.iter().flat_map(|p| p.iter()) {
                if !text.is_empty() {
                    text.push(' ');
                }
                text.push_str(c.word(t));
            }
            char_shingles(&text, SHINGLE, out);
        });
    }
}

/// A cluster whose members share one output and some prompt tokens (before the rarity test).
struct Shaped {
    group: u32,
    /// 0: response, 1: label.
    kind: u8,
    /// Lowest member with the shared output.
    first: u32,
    /// Share of members with the shared output.
    share: f64,
    /// Tokens in ≥ 90 % of the members' prompts, with how many members carry them.
    cands: Vec<(u32, usize)>,
}

/// A poison cluster's shared evidence.
struct Poison {
    kind: &'static str,
    excerpt: String,
    share: f64,
    /// (token id, corpus document frequency, members carrying it), rarest first.
    rare: Vec<(u32, usize, usize)>,
}

/// Clusters with the backdoor shape, keyed by group number.
fn poison_clusters(
    ctx: &Ctx,
    groups: &[Vec<u32>],
    members: &[Vec<u32>],
    n: usize,
) -> HashMap<u32, Poison> {
    let c = ctx.corpus;
    let mut shaped: Vec<Shaped> = Vec::new();
    for (g, recs) in members.iter().enumerate() {
        let size = recs.len();
        if size < POISON_MIN || groups[g].len() < POISON_MIN {
            continue;
        }
        let mut counts: HashMap<(u8, u128), (usize, u32)> = HashMap::new();
        for &i in recs {
            if let Some(k) = output_key(ctx, i as usize) {
                counts.entry(k).or_insert((0, i)).0 += 1;
            }
        }
        let Some((&(kind, _), &(count, first))) = counts
            .iter()
            .max_by_key(|(k, (cnt, first))| (*cnt, std::cmp::Reverse(*first), **k))
        else {
            continue;
        };
        if (count as f64) < POISON_SHARE * size as f64 {
            continue;
        }
        let mut tok: HashMap<u32, usize> = HashMap::new();
        let mut seen: Vec<u32> = Vec::new();
        for &i in recs {
            seen.clear();
            seen.extend_from_slice(c.prompt.tokens.of(i as usize));
            seen.sort_unstable();
            seen.dedup();
            for &t in &seen {
                *tok.entry(t).or_insert(0) += 1;
            }
        }
        let mut cands: Vec<(u32, usize)> = tok
            .into_iter()
            .filter(|&(_, k)| k as f64 >= POISON_SHARE * size as f64)
            .collect();
        if cands.is_empty() {
            continue;
        }
        cands.sort_unstable();
        shaped.push(Shaped {
            group: g as u32,
            kind,
            first,
            share: count as f64 / size as f64,
            cands,
        });
    }
    if shaped.is_empty() {
        return HashMap::new();
    }

    // Corpus document frequency of the candidate tokens (prompt or response), one pass.
    // A dense token → slot table: the pass below looks up every token of every record, so a
    // hashed map there costs more than the whole vocabulary's worth of `u32`s.
    let mut slot_of = vec![u32::MAX; c.vocab.len()];
    let mut k = 0usize;
    for sh in &shaped {
        for &(t, _) in &sh.cands {
            if slot_of[t as usize] == u32::MAX {
                slot_of[t as usize] = k as u32;
                k += 1;
            }
        }
    }
    let df: Vec<usize> = (0..n)
        .into_par_iter()
        .fold(
            // Counts, and the last record that counted each slot (a record counts once).
            || (vec![0usize; k], vec![u32::MAX; k]),
            |(mut acc, mut last), i| {
                for &t in c.prompt.tokens.of(i).iter().chain(c.response.tokens.of(i)) {
                    let s = slot_of[t as usize] as usize;
                    if s != u32::MAX as usize && last[s] != i as u32 {
                        last[s] = i as u32;
                        acc[s] += 1;
                    }
                }
                (acc, last)
            },
        )
        .map(|(acc, _)| acc)
        .reduce(
            || vec![0usize; k],
            |mut a, b| {
                for (x, y) in a.iter_mut().zip(b) {
                    *x += y;
                }
                a
            },
        );

    let mut out = HashMap::new();
    for Shaped {
        group: g,
        kind,
        first,
        share,
        cands,
    } in shaped
    {
        let size = members[g as usize].len();
        let mut rare: Vec<(u32, usize, usize)> = cands
            .into_iter()
            .map(|(t, inside)| (t, df[slot_of[t as usize] as usize], inside))
            .filter(|&(_, d, _)| {
                d as f64 <= RARE_DF_SHARE * n as f64 && d <= RARE_DF_CLUSTER * size
            })
            .collect();
        if rare.is_empty() {
            continue;
        }
        rare.sort_by(|a, b| (a.1, c.word(a.0), a.0).cmp(&(b.1, c.word(b.0), b.0)));
        rare.truncate(10);
        let rec = &ctx.ds.records[first as usize];
        let (kind, text) = if kind == 0 {
            ("response", rec.text_of(Role::Response))
        } else {
            ("label", rec.label.clone().unwrap_or_default())
        };
        out.insert(
            g,
            Poison {
                kind,
                excerpt: excerpt(&text),
                share,
                rare,
            },
        );
    }
    out
}

fn excerpt(text: &str) -> String {
    let mut it = text.chars();
    let head: String = it.by_ref().take(EXCERPT).collect();
    if it.next().is_some() {
        format!("{head}…")
    } else {
        head
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Histogram of cluster sizes (records per cluster) in bins 2, 3–5, 6–10, 11–50, 51+.
fn size_chart(sizes: impl Iterator<Item = usize>) -> Chart {
    let mut values = [0f64; 5];
    for s in sizes {
        let bin = match s {
            0 | 1 => continue,
            2 => 0,
            3..=5 => 1,
            6..=10 => 2,
            11..=50 => 3,
            _ => 4,
        };
        values[bin] += 1.0;
    }
    Chart {
        id: "near-duplicate-cluster-sizes".into(),
        title: "near-duplicate cluster sizes".into(),
        kind: ChartKind::Histogram,
        labels: ["2", "3–5", "6–10", "11–50", "51+"]
            .iter()
            .map(|s| s.to_string())
            .collect(),
        values: values.to_vec(),
        unit: "clusters".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chart_bins() {
        let c = size_chart([2usize, 2, 3, 5, 6, 10, 11, 50, 51, 1000, 1].into_iter());
        assert_eq!(c.values, vec![2.0, 2.0, 2.0, 2.0, 2.0]);
        assert_eq!(c.kind, ChartKind::Histogram);
    }

    #[test]
    fn threshold_clamp() {
        assert_eq!(clamp_threshold(f64::NAN), 0.8);
        assert_eq!(clamp_threshold(0.0), 0.01);
        assert_eq!(clamp_threshold(2.0), 1.0);
        assert_eq!(clamp_threshold(0.85), 0.85);
    }

    #[test]
    fn excerpt_truncates_on_chars() {
        assert_eq!(excerpt("abc"), "abc");
        let long = "é".repeat(300);
        let e = excerpt(&long);
        assert_eq!(e.chars().count(), EXCERPT + 1);
        assert!(e.ends_with('…'));
    }
}
