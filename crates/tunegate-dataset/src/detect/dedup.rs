//! Exact duplicates (`D002`) and conflicting responses (`D016`).
//!
//! Both work on the xxh3-128 hashes of normalized text that [`crate::corpus::Corpus`] computes
//! once (NFKC, lowercase, default-ignorables removed, whitespace collapsed), so case, width,
//! spacing and invisible-character variants count as the same text.
//!
//! - **Exact duplicates**: records are grouped by whole-record hash (prompt, response, rejected
//!   and label). The lowest-index record of a group is its representative and gets nothing;
//!   every later member gets a low `D002` naming the representative. Records whose text is
//!   empty everywhere are ignored. Groups span files, so a record of an eval file that repeats a
//!   training record is reported too.
//! - **Conflicts**: records are grouped by prompt hash (non-empty prompts only). When a group's
//!   members teach different outputs — different normalized responses, or different labels for
//!   text/label data — every member gets a low `D016` listing the lowest-index record of each
//!   other output. Records without a non-empty response or label take no part. Preference data
//!   is skipped: one prompt with several chosen responses is how such sets are built.
//!
//! Responses repeated across *different* prompts are the repeated-output detector's concern.
//! Hashes are grouped by sorting `(hash, index)` pairs, so the output is deterministic.
use super::{Ctx, Output};
use crate::checks::{CONFLICT, EXACT_DUP};
use crate::{Record, Schema};
use rayon::prelude::*;
use serde_json::{json, Value};
use tunegate_core::Finding;

/// Other outputs listed in a conflict's evidence.
const MAX_LISTED: usize = 20;

/// Runs the detector.
pub fn detect(ctx: &Ctx) -> Output {
    let mut out = Output::default();
    exact(ctx, &mut out);
    conflicts(ctx, &mut out);
    out
}

/// The output a record teaches, as (kind, hash): kind 0 is its normalized response, kind 1 its
/// normalized label (used when it has no non-empty response). `None` when it has neither.
pub(crate) fn output_key(ctx: &Ctx, i: usize) -> Option<(u8, u128)> {
    let c = ctx.corpus;
    if c.response.present.get(i).copied().unwrap_or(false)
        && c.response.chars.get(i).copied().unwrap_or(0) > 0
    {
        return Some((0, c.response.hash[i]));
    }
    let label = ctx.ds.records.get(i)?.label.as_deref()?;
    let norm = tunegate_core::text::normalize(label);
    (!norm.is_empty()).then(|| (1, xxhash_rust::xxh3::xxh3_128(norm.as_bytes())))
}

fn is_empty(ctx: &Ctx, i: usize) -> bool {
    let c = ctx.corpus;
    [&c.prompt, &c.response, &c.rejected]
        .iter()
        .all(|v| v.chars.get(i).copied().unwrap_or(0) == 0)
}

/// Runs of equal keys in a sorted slice, as `start..end` pairs with at least two members.
fn runs<K: PartialEq>(sorted: &[(K, u32)]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut s = 0;
    while s < sorted.len() {
        let mut e = s + 1;
        while e < sorted.len() && sorted[e].0 == sorted[s].0 {
            e += 1;
        }
        if e - s >= 2 {
            out.push((s, e));
        }
        s = e;
    }
    out
}

fn exact(ctx: &Ctx, out: &mut Output) {
    let n = ctx.corpus.len().min(ctx.ds.records.len());
    let mut order: Vec<(u128, u32)> = (0..n)
        .filter(|&i| !is_empty(ctx, i))
        .map(|i| (ctx.corpus.record_hash[i], i as u32))
        .collect();
    order.par_sort_unstable();
    for (s, e) in runs(&order) {
        let rep = &ctx.ds.records[order[s].1 as usize];
        let size = e - s;
        let message = format!(
            "record is an exact duplicate of record {}",
            describe(ctx, rep)
        );
        let ev = json!({
            "group_size": size,
            "representative": loc(ctx, rep),
            "view": "record",
        });
        for &(_, i) in &order[s + 1..e] {
            let rec = &ctx.ds.records[i as usize];
            out.findings.push(
                Finding::new(&EXACT_DUP, message.clone(), ctx.ds.location(rec))
                    .evidence(ev.clone()),
            );
        }
    }
}

fn conflicts(ctx: &Ctx, out: &mut Output) {
    let c = ctx.corpus;
    let n = c.len().min(ctx.ds.records.len());
    let keys: Vec<Option<(u8, u128)>> =
        (0..n).into_par_iter().map(|i| output_key(ctx, i)).collect();
    let mut order: Vec<(u128, u32)> = (0..n)
        .filter(|&i| {
            c.prompt.present[i]
                && c.prompt.chars[i] > 0
                && keys[i].is_some()
                && ctx.ds.schema_of(&ctx.ds.records[i]) != Schema::Preference
        })
        .map(|i| (c.prompt.hash[i], i as u32))
        .collect();
    order.par_sort_unstable();
    for (s, e) in runs(&order) {
        let group = &order[s..e];
        // Variants: (first member, key, size), in order of first member.
        let mut by_key: Vec<((u8, u128), u32)> = group
            .iter()
            .filter_map(|&(_, i)| Some((keys[i as usize]?, i)))
            .collect();
        by_key.sort_unstable();
        let mut variants: Vec<(u32, (u8, u128), usize)> = Vec::new();
        let mut k = 0;
        while k < by_key.len() {
            let mut end = k + 1;
            while end < by_key.len() && by_key[end].0 == by_key[k].0 {
                end += 1;
            }
            variants.push((by_key[k].1, by_key[k].0, end - k));
            k = end;
        }
        if variants.len() < 2 {
            continue;
        }
        variants.sort_unstable();
        let size = group.len();
        for &(_, i) in group {
            let Some(mine) = keys[i as usize] else {
                continue;
            };
            let rec = &ctx.ds.records[i as usize];
            let this_size = variants.iter().find(|v| v.1 == mine).map_or(0, |v| v.2);
            let others: Vec<&(u32, (u8, u128), usize)> =
                variants.iter().filter(|v| v.1 != mine).collect();
            let Some(first) = others.first() else {
                continue;
            };
            let kind = if mine.0 == 0 { "response" } else { "label" };
            let first_rec = &ctx.ds.records[first.0 as usize];
            let message = if kind == "label" {
                format!(
                    "the same text has label '{}' in record {} but '{}' here ({} records with this text, {} labels)",
                    first_rec.label.as_deref().unwrap_or(""),
                    describe(ctx, first_rec),
                    rec.label.as_deref().unwrap_or(""),
                    size,
                    variants.len()
                )
            } else {
                format!(
                    "the same prompt has a different response in record {} ({} records with this prompt, {} responses)",
                    describe(ctx, first_rec),
                    size,
                    variants.len()
                )
            };
            let listed: Vec<Value> = others
                .iter()
                .take(MAX_LISTED)
                .map(|v| {
                    let r = &ctx.ds.records[v.0 as usize];
                    let mut l = loc(ctx, r);
                    l["records_with_this_output"] = json!(v.2);
                    if v.1 .0 == 1 {
                        l["label"] = json!(r.label);
                    }
                    l
                })
                .collect();
            let ev = json!({
                "view": "prompt",
                "kind": kind,
                "group_size": size,
                "variants": variants.len(),
                "same_output": this_size,
                "conflicting_total": size - this_size,
                "others": listed,
            });
            out.findings
                .push(Finding::new(&CONFLICT, message, ctx.ds.location(rec)).evidence(ev));
        }
    }
}

/// "12 (line 13) of data/x.jsonl".
pub(crate) fn describe(ctx: &Ctx, r: &Record) -> String {
    match r.line {
        Some(l) => format!("{} (line {}) of {}", r.index, l, ctx.ds.path_of(r)),
        None => format!("{} of {}", r.index, ctx.ds.path_of(r)),
    }
}

/// A record's location as evidence: `{"file", "record", "line"}`.
pub(crate) fn loc(ctx: &Ctx, r: &Record) -> Value {
    json!({"file": ctx.ds.path_of(r), "record": r.index, "line": r.line})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_find_groups_of_two_or_more() {
        let v = [(1u8, 0u32), (1, 1), (2, 2), (3, 3), (3, 4), (3, 5)];
        assert_eq!(runs(&v), vec![(0, 2), (3, 6)]);
        assert!(runs::<u8>(&[]).is_empty());
    }
}
