//! Length and token-distribution outliers (`D007`, `D008`), per field role.
//!
//! - **Length** (`D007`): modified z-scores over `ln(1 + chars)` of each role (prompt, response,
//!   rejected), and over the response/prompt log-length ratio. Outliers are hygiene (`low`); only
//!   a response or rejected side over 100,000 chars is `medium` (it will be truncated or is
//!   pasted garbage).
//! - **Tokens** (`D008`): (a) repetition: a long field whose distinct-token share is tiny, or
//!   one token repeated 20+ times in a row (`medium` for ≥ 200 tokens under 2 % distinct:
//!   degenerate output a model would learn to loop on); (b) the mean per-token surprisal under a
//!   unigram model of the role fitted on the corpus itself, flagged when it is a high robust
//!   outlier (foreign language, code, encoded or random text among prose).
//!
//! Everything reads the precomputed [`Corpus`](crate::corpus::Corpus) (normalized lengths and
//! token ids); per-record work runs on rayon. Each present role also gets a log-binned length
//! histogram for the HTML report.
pub(crate) mod robust;

use super::{Ctx, Output};
use crate::checks::{LENGTH_OUTLIER, TOKEN_OUTLIER};
use crate::corpus::View;
use crate::{Role, Schema};
use rayon::prelude::*;
use robust::{location, role_name, Robust};
use serde_json::json;
use tunegate_core::{Chart, ChartKind, Finding, Severity};

/// Chars above which an outlying response or rejected side is `medium`.
const HUGE_CHARS: u32 = 100_000;
/// Fewest values before robust statistics mean anything.
const MIN_SAMPLE: usize = 20;
/// Fewest tokens for the distinct-share test.
const REP_MIN_TOKENS: usize = 50;
/// Distinct share below which a long field is repetitive (`low`).
const REP_LOW_SHARE: f64 = 0.1;
/// Fewest tokens for the degenerate-output test.
const DEGENERATE_MIN_TOKENS: usize = 200;
/// Distinct share below which a long field is degenerate (`medium`).
const DEGENERATE_SHARE: f64 = 0.02;
/// Longest tolerated run of one token.
const MAX_RUN: usize = 20;
/// Fewest tokens before a field's mean surprisal is scored.
const SURPRISAL_MIN_TOKENS: usize = 5;
/// Smallest log-length distance from the median that can be an outlier (3× longer or
/// shorter): templated data has a tiny MAD, and a z-score alone would flag trivial differences.
const MIN_LOG_DELTA: f64 = 1.0986;
/// Smallest mean-surprisal excess over the median (nats/token) that can be an outlier.
const MIN_SURPRISAL_DELTA: f64 = 1.0;

const ROLES: [Role; 3] = [Role::Prompt, Role::Response, Role::Rejected];

/// Runs the length and token-distribution detectors.
pub fn detect(ctx: &Ctx) -> Output {
    let mut out = Output::default();
    let mut response_flagged = vec![false; ctx.corpus.len()];
    for role in ROLES {
        let view = view(ctx, role);
        if !view.present.iter().any(|p| *p) {
            continue;
        }
        lengths(ctx, role, view, &mut out, &mut response_flagged);
        repetition(ctx, role, view, &mut out);
        surprisal(ctx, role, view, &mut out);
    }
    ratio(ctx, &response_flagged, &mut out);
    out
}

fn view<'a>(ctx: &Ctx<'a>, role: Role) -> &'a View {
    match role {
        Role::Response => &ctx.corpus.response,
        Role::Rejected => &ctx.corpus.rejected,
        _ => &ctx.corpus.prompt,
    }
}

fn ln1p(chars: u32) -> f64 {
    (chars as f64).ln_1p()
}

/// `D007` over one role's lengths, plus its histogram.
fn lengths(ctx: &Ctx, role: Role, view: &View, out: &mut Output, flagged: &mut [bool]) {
    let name = role_name(role);
    // Empty responses are D017's business; the statistics ignore them so they cannot drag
    // the median.
    let skip_empty = role == Role::Response;
    let idx: Vec<usize> = (0..view.present.len())
        .filter(|&i| view.present[i] && !(skip_empty && view.chars[i] == 0))
        .collect();
    out.charts.push(histogram(
        &format!("length-{name}"),
        &format!("{name} length (chars)"),
        idx.iter().map(|&i| view.chars[i]),
    ));
    let values: Vec<f64> = idx.iter().map(|&i| ln1p(view.chars[i])).collect();
    let Some(r) = Robust::of(&values, MIN_SAMPLE) else {
        return;
    };
    let thr = ctx.opts.outlier_z;
    let median_chars = r.median.exp_m1();
    let lo_chars = r.at(-thr).min(r.median - MIN_LOG_DELTA).exp_m1().max(0.0);
    let hi_chars = r.at(thr).max(r.median + MIN_LOG_DELTA).exp_m1();
    let hits: Vec<(usize, f64)> = idx
        .par_iter()
        .zip(values.par_iter())
        .filter_map(|(&i, &x)| {
            let z = r.z(x);
            (z.abs() > thr && (x - r.median).abs() >= MIN_LOG_DELTA).then_some((i, z))
        })
        .collect();
    for (i, z) in hits {
        let chars = view.chars[i];
        let huge = role != Role::Prompt && chars > HUGE_CHARS;
        let sev = if huge {
            Severity::Medium
        } else {
            Severity::Low
        };
        if role == Role::Response {
            flagged[i] = true;
        }
        let dir = if z > 0.0 { "longer" } else { "shorter" };
        let mut msg = format!(
            "{name} is {chars} chars, much {dir} than usual for this dataset (median {median_chars:.0}, robust z {z:+.1})"
        );
        if huge {
            msg.push_str(
                "; over 100,000 chars it will be truncated in training or is pasted garbage",
            );
        }
        let rec = &ctx.ds.records[i];
        out.findings.push(
            Finding::new(&LENGTH_OUTLIER, msg, location(ctx.ds, rec, role))
                .severity(sev)
                .evidence(json!({
                    "role": name,
                    "measure": "ln(1 + chars)",
                    "chars": chars,
                    "value": x_round(ln1p(chars)),
                    "median": x_round(r.median),
                    "mad": x_round(r.mad),
                    "z": x_round(z),
                    "threshold_z": thr,
                    "median_chars": median_chars.round(),
                    "flagged_below_chars": lo_chars.floor(),
                    "flagged_above_chars": hi_chars.ceil(),
                })),
        );
    }
}

/// `D007` over the response/prompt log-length ratio (records with both sides, not text/label).
fn ratio(ctx: &Ctx, response_flagged: &[bool], out: &mut Output) {
    let c = ctx.corpus;
    let idx: Vec<usize> = (0..c.len())
        .filter(|&i| {
            c.prompt.present[i]
                && c.response.present[i]
                && c.prompt.chars[i] > 0
                && c.response.chars[i] > 0
                && ctx.ds.schema_of(&ctx.ds.records[i]) != Schema::TextLabel
        })
        .collect();
    let values: Vec<f64> = idx
        .iter()
        .map(|&i| ln1p(c.response.chars[i]) - ln1p(c.prompt.chars[i]))
        .collect();
    let Some(r) = Robust::of(&values, MIN_SAMPLE) else {
        return;
    };
    let thr = ctx.opts.outlier_z;
    for (&i, &x) in idx.iter().zip(&values) {
        let z = r.z(x);
        if z.abs() <= thr || (x - r.median).abs() < MIN_LOG_DELTA || response_flagged[i] {
            continue;
        }
        let rec = &ctx.ds.records[i];
        let (p, q) = (c.prompt.chars[i], c.response.chars[i]);
        let msg = format!(
            "response/prompt length ratio {:.2} ({q} / {p} chars) is an outlier for this dataset (median ratio {:.2}, robust z {z:+.1})",
            (q as f64 + 1.0) / (p as f64 + 1.0),
            r.median.exp()
        );
        out.findings.push(
            Finding::new(&LENGTH_OUTLIER, msg, location(ctx.ds, rec, Role::Response))
                .severity(Severity::Low)
                .evidence(json!({
                    "role": "response/prompt",
                    "measure": "ln(1 + response chars) - ln(1 + prompt chars)",
                    "prompt_chars": p,
                    "response_chars": q,
                    "value": x_round(x),
                    "median": x_round(r.median),
                    "mad": x_round(r.mad),
                    "z": x_round(z),
                    "threshold_z": thr,
                    "flagged_below_ratio": x_round(r.at(-thr).min(r.median - MIN_LOG_DELTA).exp()),
                    "flagged_above_ratio": x_round(r.at(thr).max(r.median + MIN_LOG_DELTA).exp()),
                })),
        );
    }
}

/// Repetition statistics of one field's tokens.
struct Rep {
    tokens: usize,
    distinct: usize,
    run: usize,
    run_token: u32,
}

fn rep_stats(t: &[u32]) -> Rep {
    let (mut run, mut cur, mut run_token) = (0usize, 0usize, 0u32);
    for (k, &id) in t.iter().enumerate() {
        cur = if k > 0 && t[k - 1] == id { cur + 1 } else { 1 };
        if cur > run {
            run = cur;
            run_token = id;
        }
    }
    let distinct = if t.len() >= REP_MIN_TOKENS {
        let mut s = t.to_vec();
        s.sort_unstable();
        s.dedup();
        s.len()
    } else {
        0
    };
    Rep {
        tokens: t.len(),
        distinct,
        run,
        run_token,
    }
}

/// `D008` (a): repetition and degenerate output.
fn repetition(ctx: &Ctx, role: Role, view: &View, out: &mut Output) {
    let name = role_name(role);
    let n = view.present.len();
    let hits: Vec<(usize, Rep)> = (0..n)
        .into_par_iter()
        .filter(|&i| view.present[i] && view.tokens.of(i).len() >= MAX_RUN)
        .filter_map(|i| {
            let s = rep_stats(view.tokens.of(i));
            let share = s.distinct as f64 / s.tokens as f64;
            let repetitive = s.tokens >= REP_MIN_TOKENS && share < REP_LOW_SHARE;
            (repetitive || s.run >= MAX_RUN).then_some((i, s))
        })
        .collect();
    for (i, s) in hits {
        let share = s.distinct as f64 / s.tokens as f64;
        let degenerate = s.tokens >= DEGENERATE_MIN_TOKENS && share < DEGENERATE_SHARE;
        let sev = if degenerate {
            Severity::Medium
        } else {
            Severity::Low
        };
        let word = ctx.corpus.word(s.run_token);
        let msg = if degenerate {
            format!(
                "{name} is degenerate: {} tokens but only {} distinct ({:.1}%); a model trained on it learns to loop",
                s.tokens,
                s.distinct,
                share * 100.0
            )
        } else if s.run >= MAX_RUN {
            format!(
                "{name} repeats the token '{word}' {} times in a row ({} tokens in all)",
                s.run, s.tokens
            )
        } else {
            format!(
                "{name} is repetitive: {} tokens, only {} distinct ({:.1}%)",
                s.tokens,
                s.distinct,
                share * 100.0
            )
        };
        let rec = &ctx.ds.records[i];
        out.findings.push(
            Finding::new(&TOKEN_OUTLIER, msg, location(ctx.ds, rec, role))
                .severity(sev)
                .evidence(json!({
                    "role": name,
                    "measure": "repetition",
                    "tokens": s.tokens,
                    "distinct": s.distinct,
                    "distinct_share": x_round(share),
                    "longest_run": s.run,
                    "longest_run_token": word,
                    "flagged_below_share": REP_LOW_SHARE,
                    "degenerate_below_share": DEGENERATE_SHARE,
                    "flagged_run": MAX_RUN,
                })),
        );
    }
}

/// `D008` (b): mean per-token surprisal under the role's own unigram model.
fn surprisal(ctx: &Ctx, role: Role, view: &View, out: &mut Output) {
    let name = role_name(role);
    let n = view.present.len();
    let vocab = ctx.corpus.vocab.len();
    let counts = robust::count_ids(n, vocab, false, |i, buf| {
        buf.extend_from_slice(view.tokens.of(i))
    });
    let total: f64 = counts.iter().map(|&c| c as f64).sum();
    let types = counts.iter().filter(|&&c| c > 0).count() as f64;
    if total == 0.0 {
        return;
    }
    let denom = (total + types).ln();
    // −ln p(t) with add-one smoothing.
    let cost: Vec<f32> = counts
        .par_iter()
        .map(|&c| (denom - (c as f64 + 1.0).ln()) as f32)
        .collect();
    let scored: Vec<(usize, f64)> = (0..n)
        .into_par_iter()
        .filter(|&i| view.present[i] && view.tokens.of(i).len() >= SURPRISAL_MIN_TOKENS)
        .map(|i| {
            let t = view.tokens.of(i);
            let s: f64 = t.iter().map(|&id| cost[id as usize] as f64).sum();
            (i, s / t.len() as f64)
        })
        .collect();
    let values: Vec<f64> = scored.iter().map(|s| s.1).collect();
    let Some(r) = Robust::of(&values, MIN_SAMPLE) else {
        return;
    };
    let thr = ctx.opts.outlier_z;
    for (i, x) in scored {
        let z = r.z(x);
        if z <= thr || x - r.median < MIN_SURPRISAL_DELTA {
            continue;
        }
        let rec = &ctx.ds.records[i];
        let msg = format!(
            "{name} uses unusual vocabulary for this dataset: mean token surprisal {x:.2} nats (median {:.2}, robust z {z:+.1}); foreign language, code, encoded or random text?",
            r.median
        );
        out.findings.push(
            Finding::new(&TOKEN_OUTLIER, msg, location(ctx.ds, rec, role))
                .severity(Severity::Low)
                .evidence(json!({
                    "role": name,
                    "measure": "mean unigram surprisal (nats/token)",
                    "tokens": view.tokens.of(i).len(),
                    "value": x_round(x),
                    "median": x_round(r.median),
                    "mad": x_round(r.mad),
                    "z": x_round(z),
                    "threshold_z": thr,
                    "flagged_above": x_round(r.at(thr).max(r.median + MIN_SURPRISAL_DELTA)),
                })),
        );
    }
}

/// A histogram of char lengths in power-of-two bins (`0`, `1–2`, `2–4`, …, `64–128`, …),
/// from the smallest to the largest occupied bin.
fn histogram(id: &str, title: &str, chars: impl Iterator<Item = u32>) -> Chart {
    let mut bins = [0u64; 34];
    for c in chars {
        let b = if c == 0 {
            0
        } else {
            32 - c.leading_zeros() as usize
        };
        bins[b] += 1;
    }
    let first = bins.iter().position(|&b| b > 0).unwrap_or(0);
    let last = bins.iter().rposition(|&b| b > 0).unwrap_or(0);
    let mut labels = Vec::new();
    let mut values = Vec::new();
    for (b, &count) in bins.iter().enumerate().take(last + 1).skip(first) {
        labels.push(if b == 0 {
            "0".to_string()
        } else {
            format!("{}–{}", 1u64 << (b - 1), 1u64 << b)
        });
        values.push(count as f64);
    }
    Chart {
        id: id.to_string(),
        title: title.to_string(),
        kind: ChartKind::Histogram,
        labels,
        values,
        unit: "records".to_string(),
    }
}

/// Rounds to 4 decimals for readable evidence.
fn x_round(x: f64) -> f64 {
    (x * 1e4).round() / 1e4
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_bins_are_powers_of_two() {
        let h = histogram("h", "t", [0u32, 1, 3, 64, 100, 127].into_iter());
        assert_eq!(h.labels[0], "0");
        assert_eq!(h.labels[1], "1–2");
        assert_eq!(h.labels[2], "2–4");
        assert_eq!(h.labels.last().unwrap(), "64–128");
        assert_eq!(h.values.iter().sum::<f64>(), 6.0);
        assert_eq!(*h.values.last().unwrap(), 3.0);
    }

    #[test]
    fn repetition_stats() {
        let t: Vec<u32> = (0..60).map(|k| if k < 30 { 7 } else { k % 3 }).collect();
        let s = rep_stats(&t);
        assert_eq!(s.run, 30);
        assert_eq!(s.run_token, 7);
        assert_eq!(s.distinct, 4);
        assert_eq!(s.tokens, 60);
    }
}
