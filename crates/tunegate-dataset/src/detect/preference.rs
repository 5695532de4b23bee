//! Preference-pair checks for records with a rejected side: identical pairs (`D013`), tokens
//! systematically present only on the chosen side (`D014`), and chosen responses that are
//! off-topic while the rejected ones are on-topic (`D015`).
//!
//! `D014` is the preference form of the trigger test (research note §4.3): for every token `t`
//! count the pairs where `t` is in chosen but not rejected (`a`) and the reverse (`b`). Under no
//! bias a token that differs between the sides lands on the chosen side with the corpus-wide
//! rate `p0` (clamped to ≥ ½, because chosen responses are often longer); a token is flagged
//! when it is rare (document frequency ≤ `trigger_max_df`), seen chosen-only in at least
//! `max(5, trigger_min_count)` pairs, (almost) never on any rejected side, mostly not echoed from
//! the prompt, and its one-sided binomial tail `P(X ≥ a | a + b, p0)` survives a Bonferroni
//! correction over every token tested. Common words that chosen responses merely favour
//! ("sure", "happy", "here") fail both the rarity and the rejected-side test.
use super::mismatch::lexical::{is_refusal, relevance, Bag, Lexicon};
use super::outliers::robust::{chunked, count_ids, location};
use super::{Ctx, Output};
use crate::checks::{PREF_IDENTICAL, PREF_OFF_TOPIC, PREF_TOKEN};
use crate::Role;
use rayon::prelude::*;
use serde_json::json;
use tunegate_core::{Finding, Severity};

/// Token Jaccard at or above which chosen and rejected are near-identical.
const NEAR_IDENTICAL: f64 = 0.95;
/// Floor on the chosen-only count of a flagged token.
const MIN_CHOSEN_ONLY: usize = 5;
/// Family-wise error rate for `D014` (Bonferroni over tested tokens).
const ALPHA: f64 = 0.05;
/// Fewest content stems for `D015` (prompt, chosen, rejected).
const OFF_TOPIC_MIN: [usize; 3] = [3, 5, 5];
/// Rejected-side relevance at which it counts as on-topic.
const ON_TOPIC_COSINE: f32 = 0.1;
/// Share of eligible pairs above which off-topic chosen responses are the dataset's norm.
const OFF_TOPIC_NORM: f64 = 0.1;

/// Runs the preference-pair detectors.
pub fn detect(ctx: &Ctx) -> Output {
    let c = ctx.corpus;
    let idx: Vec<usize> = (0..c.len())
        .filter(|&i| c.rejected.present[i] && c.response.present[i])
        .collect();
    let mut out = Output::default();
    if idx.is_empty() {
        return out;
    }
    let pass = pair_pass(ctx, &idx);
    identical(ctx, &pass, &mut out);
    token_bias(ctx, &idx, &pass, &mut out);
    off_topic(ctx, &idx, &pass.df, &mut out);
    out
}

fn set(t: &[u32]) -> Vec<u32> {
    let mut s = t.to_vec();
    s.sort_unstable();
    s.dedup();
    s
}

/// Elements of sorted set `a` not in sorted set `b`.
fn minus<'a>(a: &'a [u32], b: &'a [u32]) -> impl Iterator<Item = u32> + 'a {
    let mut j = 0;
    a.iter().copied().filter(move |&x| {
        while j < b.len() && b[j] < x {
            j += 1;
        }
        !(j < b.len() && b[j] == x)
    })
}

/// Per-token counts over pairs, document frequencies over all records, and the `D013` pairs.
struct Pass {
    /// Pairs with the token in chosen but not rejected.
    chosen_only: Vec<u32>,
    /// Pairs with the token in rejected but not chosen.
    rejected_only: Vec<u32>,
    /// Pairs with the token anywhere in rejected.
    rejected_any: Vec<u32>,
    /// Records (all of them, pairs or not) containing the token in any role.
    df: Vec<u32>,
    /// (record, token Jaccard of chosen vs rejected; 1 for identical after normalization).
    identical: Vec<(usize, f64)>,
}

impl Pass {
    fn new(vocab: usize) -> Pass {
        Pass {
            chosen_only: vec![0; vocab],
            rejected_only: vec![0; vocab],
            rejected_any: vec![0; vocab],
            df: vec![0; vocab],
            identical: Vec::new(),
        }
    }
}

// Flags kept in the low bits of a per-token stamp; the high bits hold the pair's position + 1,
// so a stamp from an earlier pair reads as "not seen".
const IN_REJECTED: u64 = 1;
const IN_CHOSEN: u64 = 2;
const REJECTED_COUNTED: u64 = 4;
const SHIFT: u32 = 3;

/// One pass over the pairs (stamp arrays instead of per-pair sets), plus document frequencies
/// of the records that are not pairs.
fn pair_pass(ctx: &Ctx, idx: &[usize]) -> Pass {
    let c = ctx.corpus;
    let vocab = c.vocab.len();
    let parts = chunked(idx.len(), |range| {
        let mut k = Pass::new(vocab);
        let mut stamp = vec![0u64; vocab];
        for pos in range {
            let i = idx[pos];
            let mark = (pos as u64 + 1) << SHIFT;
            // The token's stamp for this pair, counting its document frequency on first sight.
            let touch = |stamp: &mut [u64], df: &mut [u32], t: u32| -> u64 {
                let s = &mut stamp[t as usize];
                if *s >> SHIFT != pos as u64 + 1 {
                    *s = mark;
                    df[t as usize] += 1;
                }
                *s
            };
            for &t in c.prompt.tokens.of(i) {
                touch(&mut stamp, &mut k.df, t);
            }
            let (ch, rj) = (c.response.tokens.of(i), c.rejected.tokens.of(i));
            let (mut n_r, mut n_c, mut inter) = (0usize, 0usize, 0usize);
            for &t in rj {
                if touch(&mut stamp, &mut k.df, t) & IN_REJECTED == 0 {
                    stamp[t as usize] |= IN_REJECTED;
                    k.rejected_any[t as usize] += 1;
                    n_r += 1;
                }
            }
            for &t in ch {
                let s = touch(&mut stamp, &mut k.df, t);
                if s & IN_CHOSEN == 0 {
                    stamp[t as usize] |= IN_CHOSEN;
                    n_c += 1;
                    if s & IN_REJECTED != 0 {
                        inter += 1;
                    } else {
                        k.chosen_only[t as usize] += 1;
                    }
                }
            }
            for &t in rj {
                let s = &mut stamp[t as usize];
                if *s & (REJECTED_COUNTED | IN_CHOSEN) == 0 {
                    k.rejected_only[t as usize] += 1;
                }
                *s |= REJECTED_COUNTED;
            }
            if c.response.hash[i] == c.rejected.hash[i] {
                k.identical.push((i, 1.0));
            } else if n_c > 0 && n_r > 0 {
                let j = inter as f64 / (n_c + n_r - inter) as f64;
                if j >= NEAR_IDENTICAL {
                    k.identical.push((i, j));
                }
            }
        }
        k
    });
    let mut it = parts.into_iter();
    let mut acc = it.next().unwrap_or_else(|| Pass::new(vocab));
    for p in it {
        for (x, y) in [
            (&mut acc.chosen_only, p.chosen_only),
            (&mut acc.rejected_only, p.rejected_only),
            (&mut acc.rejected_any, p.rejected_any),
            (&mut acc.df, p.df),
        ] {
            for (u, v) in x.iter_mut().zip(y) {
                *u += v;
            }
        }
        acc.identical.extend(p.identical);
    }
    if idx.len() < c.len() {
        let mut is_pair = vec![false; c.len()];
        for &i in idx {
            is_pair[i] = true;
        }
        let rest = count_ids(c.len(), vocab, true, |i, buf| {
            if !is_pair[i] {
                for v in [&c.prompt, &c.response, &c.rejected] {
                    buf.extend_from_slice(v.tokens.of(i));
                }
            }
        });
        for (u, v) in acc.df.iter_mut().zip(rest) {
            *u += v;
        }
    }
    acc
}

/// `D013` findings from the pass.
fn identical(ctx: &Ctx, pass: &Pass, out: &mut Output) {
    let c = ctx.corpus;
    for &(i, j) in &pass.identical {
        let rec = &ctx.ds.records[i];
        let loc = location(ctx.ds, rec, Role::Rejected);
        out.findings.push(if j >= 1.0 && c.response.hash[i] == c.rejected.hash[i] {
            Finding::new(
                &PREF_IDENTICAL,
                "chosen and rejected responses are identical after normalization: the pair carries no preference (a broken or tampered pair)",
                loc,
            )
            .severity(Severity::Medium)
            .evidence(json!({"jaccard": 1.0, "chars": c.response.chars[i]}))
        } else {
            Finding::new(
                &PREF_IDENTICAL,
                format!(
                    "chosen and rejected responses are near-identical (token Jaccard {j:.3}): the pair carries little preference signal"
                ),
                loc,
            )
            .severity(Severity::Low)
            .evidence(json!({"jaccard": (j * 1e4).round() / 1e4, "threshold": NEAR_IDENTICAL}))
        });
    }
}

/// ln P(X ≥ k) for X ~ Binomial(n, p).
fn ln_binomial_tail(k: u64, n: u64, p: f64) -> f64 {
    if k == 0 {
        return 0.0;
    }
    let (lp, lq) = (p.ln(), (1.0 - p).ln());
    // ln C(n, j) built incrementally from j = k.
    let mut ln_c: f64 = (1..=k).map(|j| ((n - k + j) as f64 / j as f64).ln()).sum();
    let mut terms = Vec::new();
    for j in k..=n {
        terms.push(ln_c + j as f64 * lp + (n - j) as f64 * lq);
        if j < n {
            ln_c += ((n - j) as f64 / (j + 1) as f64).ln();
        }
    }
    let m = terms.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    m + terms.iter().map(|t| (t - m).exp()).sum::<f64>().ln()
}

/// `D014`.
fn token_bias(ctx: &Ctx, idx: &[usize], k: &Pass, out: &mut Output) {
    let c = ctx.corpus;
    let total_a: f64 = k.chosen_only.iter().map(|&x| x as f64).sum();
    let total_b: f64 = k.rejected_only.iter().map(|&x| x as f64).sum();
    if total_a + total_b == 0.0 {
        return;
    }
    let p0 = (total_a / (total_a + total_b)).clamp(0.5, 0.95);
    let n = c.len();
    let df = &k.df;
    let max_df = (ctx.opts.trigger_max_df * n as f64).max(1.0);
    let min_a = MIN_CHOSEN_ONLY.max(ctx.opts.trigger_min_count) as u32;
    // Every rare token seen often enough on one side is a test.
    let tested: Vec<u32> = (0..c.vocab.len() as u32)
        .filter(|&t| {
            let t = t as usize;
            (df[t] as f64) <= max_df && k.chosen_only[t] + k.rejected_only[t] >= min_a
        })
        .collect();
    let ln_alpha = (ALPHA / tested.len().max(1) as f64).ln();
    let mut flagged: Vec<(u32, f64)> = tested
        .iter()
        .copied()
        .filter_map(|t| {
            let (a, b) = (k.chosen_only[t as usize], k.rejected_only[t as usize]);
            let tolerated = a / 20;
            if a < min_a || b > tolerated || k.rejected_any[t as usize] > tolerated {
                return None;
            }
            let lp = ln_binomial_tail(a as u64, (a + b) as u64, p0);
            (lp <= ln_alpha).then_some((t, lp))
        })
        .collect();
    if flagged.is_empty() {
        return;
    }
    // Second pass: the pairs carrying a flagged token on the chosen side only, and how often
    // the token also sits in the prompt (echoing the prompt is relevance, not a planted token).
    let mut is_flagged = vec![false; c.vocab.len()];
    for &(t, _) in &flagged {
        is_flagged[t as usize] = true;
    }
    let hits: Vec<(usize, u32, bool)> = idx
        .par_iter()
        .filter(|&&i| {
            c.response
                .tokens
                .of(i)
                .iter()
                .any(|&t| is_flagged[t as usize])
        })
        .flat_map_iter(|&i| {
            let (a, b) = (set(c.response.tokens.of(i)), set(c.rejected.tokens.of(i)));
            let p = set(c.prompt.tokens.of(i));
            minus(&a, &b)
                .filter(|&t| is_flagged[t as usize])
                .map(|t| (i, t, p.binary_search(&t).is_ok()))
                .collect::<Vec<_>>()
        })
        .collect();
    flagged.sort_by(|x, y| x.1.total_cmp(&y.1).then(x.0.cmp(&y.0)));
    for (t, lp) in flagged {
        let members: Vec<usize> = hits.iter().filter(|h| h.1 == t).map(|h| h.0).collect();
        let in_prompt = hits.iter().filter(|h| h.1 == t && h.2).count();
        if members.is_empty() || in_prompt * 2 > members.len() {
            continue;
        }
        let (a, b) = (k.chosen_only[t as usize], k.rejected_only[t as usize]);
        let word = c.word(t);
        let p_value = lp.exp();
        let log_odds = ((a as f64 + 0.5) / (b as f64 + 0.5)).ln() - (p0 / (1.0 - p0)).ln();
        let examples: Vec<_> = members
            .iter()
            .take(10)
            .map(|&i| {
                let r = &ctx.ds.records[i];
                json!({"file": ctx.ds.path_of(r), "record": r.index})
            })
            .collect();
        let evidence = json!({
            "token": word,
            "chosen_only_pairs": a,
            "rejected_only_pairs": b,
            "rejected_any_pairs": k.rejected_any[t as usize],
            "in_prompt_pairs": in_prompt,
            "document_frequency": df[t as usize],
            "document_share": (df[t as usize] as f64 / n as f64 * 1e4).round() / 1e4,
            "pairs": idx.len(),
            "p0": (p0 * 1e3).round() / 1e3,
            "p_value": p_value,
            "ln_p_value": (lp * 100.0).round() / 100.0,
            "log_odds": (log_odds * 100.0).round() / 100.0,
            "tested_tokens": tested.len(),
            "alpha": ALPHA,
            "examples": examples,
        });
        let msg = format!(
            "token '{word}' is in the chosen response but not the rejected one in {a} pairs and the reverse in {b} (one-sided binomial p = {p_value:.1e} against the corpus rate {p0:.2}, {} tokens tested; in {:.2}% of records): a reward-hacking or backdoor trigger candidate",
            tested.len(),
            df[t as usize] as f64 / n as f64 * 100.0
        );
        for &i in &members {
            let rec = &ctx.ds.records[i];
            out.findings.push(
                Finding::new(
                    &PREF_TOKEN,
                    msg.clone(),
                    location(ctx.ds, rec, Role::Response),
                )
                .severity(Severity::High)
                .evidence(evidence.clone()),
            );
        }
    }
}

/// `D015`. A stem-level pass (stamp arrays, no sorting) finds the pairs whose chosen side
/// shares no content stem with the prompt while the rejected side shares at least two; only
/// those get TF-IDF bags.
fn off_topic(ctx: &Ctx, idx: &[usize], token_df: &[u32], out: &mut Output) {
    let c = ctx.corpus;
    let with_prompt: Vec<usize> = idx
        .iter()
        .copied()
        .filter(|&i| c.prompt.present[i])
        .collect();
    if with_prompt.is_empty() {
        return;
    }
    let lex = Lexicon::build(c, token_df);
    const P: u64 = 1;
    const C: u64 = 2;
    const R: u64 = 4;
    let parts = chunked(with_prompt.len(), |range| {
        let mut stamp = vec![0u64; lex.stems()];
        let (mut eligible, mut cands) = (0usize, Vec::new());
        for pos in range {
            let i = with_prompt[pos];
            let cur = pos as u64 + 1;
            // Distinct stems of one side, and how many of them the prompt has.
            let mut side = |tokens: &[u32], flag: u64| -> (usize, usize) {
                let (mut distinct, mut shared) = (0, 0);
                for &t in tokens {
                    let Some(s) = lex.stem_of(t) else { continue };
                    let st = &mut stamp[s as usize];
                    if *st >> 3 != cur {
                        *st = cur << 3;
                    }
                    if *st & flag == 0 {
                        *st |= flag;
                        distinct += 1;
                        if flag != P && *st & P != 0 {
                            shared += 1;
                        }
                    }
                }
                (distinct, shared)
            };
            let (np, _) = side(c.prompt.tokens.of(i), P);
            let (nc, sc) = side(c.response.tokens.of(i), C);
            let (nr, sr) = side(c.rejected.tokens.of(i), R);
            if np >= OFF_TOPIC_MIN[0] && nc >= OFF_TOPIC_MIN[1] && nr >= OFF_TOPIC_MIN[2] {
                eligible += 1;
                if sc == 0 && sr >= 2 {
                    cands.push(i);
                }
            }
        }
        (eligible, cands)
    });
    let eligible: usize = parts.iter().map(|p| p.0).sum();
    let mut scratch = Vec::new();
    let (mut p, mut ch, mut rj) = (Bag::default(), Bag::default(), Bag::default());
    let mut hits = Vec::new();
    for i in parts.into_iter().flat_map(|p| p.1) {
        lex.fill_bag(c.prompt.tokens.of(i), &mut scratch, &mut p);
        lex.fill_bag(c.response.tokens.of(i), &mut scratch, &mut ch);
        lex.fill_bag(c.rejected.tokens.of(i), &mut scratch, &mut rj);
        let (rc, rr) = (relevance(&p, &ch), relevance(&p, &rj));
        if rr.cosine >= ON_TOPIC_COSINE && !is_refusal(&ctx.ds.records[i].text_of(Role::Response)) {
            hits.push((i, rc, rr));
        }
    }
    let share = hits.len() as f64 / eligible.max(1) as f64;
    // When off-topic chosen responses are the norm (a translation or style-transfer set), they
    // are a property of the dataset, not of a record.
    let sev = if share > OFF_TOPIC_NORM {
        Severity::Low
    } else {
        Severity::Medium
    };
    for (i, rc, rr) in hits {
        let rec = &ctx.ds.records[i];
        out.findings.push(
            Finding::new(
                &PREF_OFF_TOPIC,
                format!(
                    "chosen response shares no content word with the prompt while the rejected one shares {} (relevance {:.2} vs {:.2}): the preference rewards going off-topic",
                    rr.shared, rc.cosine, rr.cosine
                ),
                location(ctx.ds, rec, Role::Response),
            )
            .severity(sev)
            .evidence(json!({
                "chosen_relevance": (rc.cosine as f64 * 1e3).round() / 1e3,
                "rejected_relevance": (rr.cosine as f64 * 1e3).round() / 1e3,
                "chosen_shared_content_words": rc.shared,
                "rejected_shared_content_words": rr.shared,
                "dataset_off_topic_share": (share * 1e4).round() / 1e4,
            })),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binomial_tail() {
        // P(X >= 15 | 15, 0.5) = 2^-15.
        assert!((ln_binomial_tail(15, 15, 0.5) - (0.5f64).powi(15).ln()).abs() < 1e-9);
        // P(X >= 0) = 1.
        assert_eq!(ln_binomial_tail(0, 10, 0.5), 0.0);
        // P(X >= 1 | 2, 0.5) = 3/4.
        assert!((ln_binomial_tail(1, 2, 0.5).exp() - 0.75).abs() < 1e-9);
    }

    #[test]
    fn set_difference() {
        let a = [1, 3, 5, 7];
        let b = [3, 4, 7];
        assert_eq!(minus(&a, &b).collect::<Vec<_>>(), vec![1, 5]);
        assert_eq!(minus(&b, &a).collect::<Vec<_>>(), vec![4]);
    }
}
