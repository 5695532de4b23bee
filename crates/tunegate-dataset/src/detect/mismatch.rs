//! Instruction/response mismatch (`D009`), one output for many unrelated prompts (`D010`), and
//! empty or placeholder responses (`D017`).
//!
//! Relevance is lexical: TF-IDF cosine over content stems ([`lexical`]), IDF from the corpus.
//! Ordinary instruction data holds many legitimately low-overlap pairs (translations, creative
//! writing, "give three tips" lists), so:
//!
//! - `D009` fires only where zero overlap is rare *for this corpus* (at most 10 % of eligible
//!   pairs share no content stem) and the pair is long enough for zero overlap to mean something;
//!   it is `low`, and `medium` only with a second signal: the same response text also answers
//!   other, different prompts.
//! - `D010` groups records by the normalized response hash. A group matters when its prompts are
//!   mutually unrelated (median pairwise Jaccard of prompt stems < 0.3) *and* the response is
//!   irrelevant to them: `medium` for most prompts, `high` for ≥ 5 records irrelevant to
//!   (nearly) all — the target-output poisoning signature. Short answers ("Yes.", "Positive")
//!   never group (fewer than 3 content stems), and a repeated refusal stays `low` unless it
//!   answers 50+ unrelated prompts, because safety data repeats refusals on purpose.
pub(crate) mod lexical;

use super::outliers::robust::{excerpt, location, Robust};
use super::{Ctx, Output};
use crate::checks::{EMPTY, MISMATCH, REPEATED_OUTPUT};
use crate::{Role, Schema};
use lexical::{is_refusal, jaccard, relevance, Bag, Lexicon, Relevance};
use rayon::prelude::*;
use serde_json::json;
use std::collections::HashMap;
use tunegate_core::text::normalize;
use tunegate_core::{Finding, Severity};

/// Fewest distinct content stems in a prompt for `D009`.
const MIN_PROMPT_CONTENT: usize = 3;
/// Fewest distinct content stems in a response for `D009`.
const MIN_RESPONSE_CONTENT: usize = 5;
/// Highest share of zero-overlap pairs at which `D009` still runs.
const MAX_ZERO_RATE: f64 = 0.10;
/// Fewest eligible pairs before `D009` has a baseline.
const MIN_BASELINE: usize = 20;
/// Fewest distinct content stems in a response for it to be grouped by `D010`.
const MIN_GROUP_CONTENT: usize = 3;
/// Fewest distinct prompts sharing one response for `D010`.
const MIN_GROUP: usize = 3;
/// Fewest records for a `high` `D010`.
const HIGH_GROUP: usize = 5;
/// Fewest content stems for a prompt to count in group statistics.
const MIN_INFORMATIVE: usize = 2;
/// Median prompt Jaccard under which a group's prompts are unrelated.
const UNRELATED_JACCARD: f64 = 0.3;
/// Cosine under which a response is irrelevant to a prompt (or no shared stem).
const IRRELEVANT_COSINE: f32 = 0.05;
/// Members sampled for pairwise prompt Jaccard.
const JACCARD_SAMPLE: usize = 40;
/// Unrelated prompts at which a repeated refusal becomes `medium`.
const REFUSAL_MEDIUM: usize = 50;

/// Per-record facts for records with both a prompt and a response.
#[derive(Debug, Clone, Copy)]
struct Pair {
    i: usize,
    prompt_content: usize,
    response_content: usize,
    rel: Relevance,
}

impl Pair {
    fn irrelevant(&self) -> bool {
        self.rel.shared == 0 || self.rel.cosine < IRRELEVANT_COSINE
    }
}

/// Runs the mismatch, repeated-output and empty-response detectors.
pub fn detect(ctx: &Ctx) -> Output {
    let mut out = Output::default();
    empty(ctx, &mut out);
    let c = ctx.corpus;
    let idx: Vec<usize> = (0..c.len())
        .filter(|&i| {
            c.prompt.present[i]
                && c.response.present[i]
                && ctx.ds.schema_of(&ctx.ds.records[i]) != Schema::TextLabel
        })
        .collect();
    if idx.is_empty() {
        return out;
    }
    let lex = Lexicon::build(c, &Lexicon::token_df(c));
    let pairs: Vec<Pair> = idx
        .par_iter()
        .map_init(
            || (Vec::new(), Bag::default(), Bag::default()),
            |(scratch, p, r), &i| {
                lex.fill_bag(c.prompt.tokens.of(i), scratch, p);
                lex.fill_bag(c.response.tokens.of(i), scratch, r);
                Pair {
                    i,
                    prompt_content: p.len(),
                    response_content: r.len(),
                    rel: relevance(p, r),
                }
            },
        )
        .collect();
    let shared_by = repeated(ctx, &lex, &pairs, &mut out);
    mismatch(ctx, &pairs, &shared_by, &mut out);
    out
}

/// Placeholder responses, compared after normalization and trailing `.`/`!` removal.
const PLACEHOLDERS: &[&str] = &[
    "n/a",
    "n.a",
    "<noinput>",
    "<no input>",
    "noinput",
    "no input",
    "<nooutput>",
    "<no output>",
    "nooutput",
    "no output",
    "<no response>",
    "no response",
    "no answer",
    "none",
    "null",
    "nan",
    "todo",
    "tbd",
    "<empty>",
    "empty",
    "placeholder",
];

/// Why a response text is empty or a placeholder, if it is.
fn placeholder(text: &str) -> Option<&'static str> {
    let t = text.trim();
    if t.is_empty() {
        return Some("empty");
    }
    if t.chars().count() > 24 {
        return None;
    }
    let n = normalize(t);
    if n.chars().all(|c| ".…-_?*".contains(c)) {
        return Some("punctuation only");
    }
    let key = n.trim_end_matches(['.', '!']);
    PLACEHOLDERS.contains(&key).then_some("placeholder")
}

/// `D017`: every response or rejected field that is empty or a placeholder.
fn empty(ctx: &Ctx, out: &mut Output) {
    let found: Vec<Finding> = ctx
        .ds
        .records
        .par_iter()
        .flat_map_iter(|rec| {
            rec.fields
                .iter()
                .filter(|f| matches!(f.role, Role::Response | Role::Rejected))
                .filter_map(move |f| {
                    let why = placeholder(&f.text)?;
                    let side = if f.role == Role::Rejected {
                        "rejected response"
                    } else {
                        "response"
                    };
                    let msg = if why == "empty" {
                        format!("{side} is empty")
                    } else {
                        format!(
                            "{side} is a placeholder ('{}'), not an answer",
                            excerpt(f.text.trim(), 30)
                        )
                    };
                    Some(
                        Finding::new(&EMPTY, msg, ctx.ds.location(rec).field(&*f.path))
                            .severity(Severity::Low)
                            .evidence(json!({"kind": why, "text": excerpt(f.text.trim(), 30)})),
                    )
                })
        })
        .collect();
    out.findings.extend(found);
}

/// `D010`. Returns, for every response hash answering ≥ 3 distinct prompts, that count (the
/// second signal `D009` uses).
fn repeated(ctx: &Ctx, lex: &Lexicon, pairs: &[Pair], out: &mut Output) -> HashMap<u128, usize> {
    let c = ctx.corpus;
    // (hash, pair) sorted by hash, then by pair (= read order): runs are groups.
    let mut keyed: Vec<(u128, usize)> = pairs
        .iter()
        .enumerate()
        .filter(|(_, p)| p.response_content >= MIN_GROUP_CONTENT)
        .map(|(k, p)| (c.response.hash[p.i], k))
        .collect();
    keyed.par_sort_unstable();
    let mut groups: Vec<(u128, Vec<usize>)> = Vec::new();
    for run in keyed.chunk_by(|x, y| x.0 == y.0) {
        if run.len() >= MIN_GROUP {
            groups.push((run[0].0, run.iter().map(|x| x.1).collect()));
        }
    }
    groups.sort_unstable_by_key(|g| g.1[0]);
    let mut shared_by = HashMap::new();
    for (hash, members) in groups {
        let mut prompts: Vec<u128> = members.iter().map(|&k| c.prompt.hash[pairs[k].i]).collect();
        prompts.sort_unstable();
        prompts.dedup();
        if prompts.len() < MIN_GROUP {
            continue;
        }
        shared_by.insert(hash, prompts.len());
        group_findings(ctx, lex, pairs, &members, prompts.len(), out);
    }
    shared_by
}

fn group_findings(
    ctx: &Ctx,
    lex: &Lexicon,
    pairs: &[Pair],
    members: &[usize],
    distinct_prompts: usize,
    out: &mut Output,
) {
    let c = ctx.corpus;
    // One member per distinct prompt, informative prompts only, for the statistics.
    let mut seen = std::collections::HashSet::new();
    let informative: Vec<&Pair> = members
        .iter()
        .map(|&k| &pairs[k])
        .filter(|p| p.prompt_content >= MIN_INFORMATIVE && seen.insert(c.prompt.hash[p.i]))
        .collect();
    if informative.len() < MIN_GROUP {
        return;
    }
    let sets: Vec<Vec<u32>> = informative
        .iter()
        .take(JACCARD_SAMPLE)
        .map(|p| lex.stem_set(c.prompt.tokens.of(p.i)))
        .collect();
    let mut sims = Vec::new();
    for a in 0..sets.len() {
        for b in a + 1..sets.len() {
            sims.push(jaccard(&sets[a], &sets[b]));
        }
    }
    let median_jaccard = super::outliers::robust::median_in_place(&mut sims);
    if median_jaccard >= UNRELATED_JACCARD {
        return;
    }
    let irrelevant = informative.iter().filter(|p| p.irrelevant()).count();
    let share = irrelevant as f64 / informative.len() as f64;
    let first = &ctx.ds.records[pairs[members[0]].i];
    let text = first.text_of(Role::Response);
    let refusal = is_refusal(&text);
    let n = members.len();
    let sev = if refusal {
        if share < 0.5 {
            return;
        }
        if informative.len() >= REFUSAL_MEDIUM {
            Severity::Medium
        } else {
            Severity::Low
        }
    } else if n >= HIGH_GROUP && share >= 0.9 {
        Severity::High
    } else if share >= 0.6 {
        Severity::Medium
    } else if share >= 0.3 {
        Severity::Low
    } else {
        return;
    };
    let shown = excerpt(&text, 120);
    let examples: Vec<_> = members
        .iter()
        .take(10)
        .map(|&k| {
            let p = &pairs[k];
            let r = &ctx.ds.records[p.i];
            json!({
                "file": ctx.ds.path_of(r),
                "record": r.index,
                "relevance": (p.rel.cosine as f64 * 1e3).round() / 1e3,
                "shared_content_words": p.rel.shared,
            })
        })
        .collect();
    let mean_rel =
        informative.iter().map(|p| p.rel.cosine as f64).sum::<f64>() / informative.len() as f64;
    let evidence = json!({
        "group_size": n,
        "distinct_prompts": distinct_prompts,
        "informative_prompts": informative.len(),
        "response_excerpt": shown,
        "refusal": refusal,
        "median_prompt_jaccard": (median_jaccard * 1e3).round() / 1e3,
        "irrelevant_share": (share * 1e3).round() / 1e3,
        "mean_relevance": (mean_rel * 1e3).round() / 1e3,
        "examples": examples,
    });
    let what = if refusal {
        "the same refusal"
    } else {
        "one response"
    };
    let msg = format!(
        "{what} ('{}') answers {n} records with {distinct_prompts} unrelated prompts (median prompt Jaccard {median_jaccard:.2}) and is irrelevant to {irrelevant} of {} of them: the target-output poisoning shape",
        excerpt(&text, 60),
        informative.len()
    );
    for &k in members {
        let rec = &ctx.ds.records[pairs[k].i];
        out.findings.push(
            Finding::new(
                &REPEATED_OUTPUT,
                msg.clone(),
                location(ctx.ds, rec, Role::Response),
            )
            .severity(sev)
            .evidence(evidence.clone()),
        );
    }
}

/// `D009`: a response sharing no content stem with a long-enough prompt, in a corpus where
/// that is rare.
fn mismatch(ctx: &Ctx, pairs: &[Pair], shared_by: &HashMap<u128, usize>, out: &mut Output) {
    let eligible: Vec<&Pair> = pairs
        .iter()
        .filter(|p| {
            p.prompt_content >= MIN_PROMPT_CONTENT && p.response_content >= MIN_RESPONSE_CONTENT
        })
        .collect();
    if eligible.len() < MIN_BASELINE {
        return;
    }
    let zeros = eligible.iter().filter(|p| p.rel.shared == 0).count();
    let zero_rate = zeros as f64 / eligible.len() as f64;
    if zeros == 0 || zero_rate > MAX_ZERO_RATE {
        return;
    }
    let cosines: Vec<f64> = eligible.iter().map(|p| p.rel.cosine as f64).collect();
    let baseline = Robust::of(&cosines, MIN_BASELINE);
    let c = ctx.corpus;
    for p in eligible.iter().filter(|p| p.rel.shared == 0) {
        let rec = &ctx.ds.records[p.i];
        let text = rec.text_of(Role::Response);
        if is_refusal(&text) {
            continue;
        }
        let others = shared_by.get(&c.response.hash[p.i]).copied().unwrap_or(0);
        let sev = if others >= MIN_GROUP {
            Severity::Medium
        } else {
            Severity::Low
        };
        let mut msg = format!(
            "response shares no content word with its prompt ({} and {} content words), which only {:.1}% of this dataset's pairs do",
            p.prompt_content,
            p.response_content,
            zero_rate * 100.0
        );
        if others >= MIN_GROUP {
            msg.push_str(&format!(
                "; the same response also answers {} different prompts",
                others - 1
            ));
        }
        out.findings.push(
            Finding::new(&MISMATCH, msg, location(ctx.ds, rec, Role::Response))
                .severity(sev)
                .evidence(json!({
                    "relevance": p.rel.cosine,
                    "shared_content_words": 0,
                    "prompt_content_words": p.prompt_content,
                    "response_content_words": p.response_content,
                    "corpus_zero_overlap_rate": (zero_rate * 1e4).round() / 1e4,
                    "corpus_median_relevance": baseline.map(|b| (b.median * 1e3).round() / 1e3),
                    "corpus_mad_relevance": baseline.map(|b| (b.mad * 1e3).round() / 1e3),
                    "z": baseline.map(|b| (b.z(p.rel.cosine as f64) * 100.0).round() / 100.0),
                    "response_repeated_for_prompts": others,
                    "response_excerpt": excerpt(&text, 120),
                })),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders() {
        assert_eq!(placeholder("   "), Some("empty"));
        assert_eq!(placeholder("N/A"), Some("placeholder"));
        assert_eq!(placeholder("<No Output>"), Some("placeholder"));
        assert_eq!(placeholder("<noinput>"), Some("placeholder"));
        assert_eq!(placeholder("None."), Some("placeholder"));
        assert_eq!(placeholder("..."), Some("punctuation only"));
        assert_eq!(placeholder("TODO"), Some("placeholder"));
        assert_eq!(placeholder("No."), None);
        assert_eq!(placeholder("Na"), None);
        assert_eq!(placeholder("None of the above options fit"), None);
    }
}
