//! Window checks per model: repetition rate (O007), identical-response clusters (O009), length
//! anomalies against a warmed-up robust baseline (O008) and refusal-rate collapse (O011).
//!
//! "Near-identical" means equal after normalization: lowercased, digits and punctuation
//! dropped, whitespace collapsed. Baselines (median/MAD of lengths, refusal rate) are learnt
//! from the first `warmup` responses of a model, then frozen and persisted, so a restart does
//! not relearn an attacked distribution. Window events fire when a condition starts to hold and
//! re-arm once it stops holding (no event storm). Canned refusals repeat by design: they feed
//! O011 only, never O007/O009. Prompts count as distinct when their trimmed text differs.
use crate::checks;
use crate::config::WindowConfig;
use crate::inspect::Hit;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::{HashMap, VecDeque};
use std::path::Path;

/// One response as the window sees it.
#[derive(Debug, Clone)]
struct Entry {
    prompt: u64,
    response: u64,
    /// Response long enough to count for repetition and clusters.
    counted: bool,
    len: f64,
    refusal: bool,
}

/// A model's frozen (or warming) baseline; this is what persists.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Baseline {
    /// Lengths seen during warm-up (cleared once frozen).
    #[serde(default)]
    pub warm_lengths: Vec<f64>,
    /// Refusals seen during warm-up.
    #[serde(default)]
    pub warm_refusals: usize,
    /// Frozen median length (words).
    pub median: Option<f64>,
    /// Frozen median absolute deviation of lengths.
    pub mad: Option<f64>,
    /// Frozen refusal rate.
    pub refusal_rate: Option<f64>,
}

/// One response's counted window entries: per distinct prompt, and in total.
#[derive(Default)]
struct Given {
    prompts: HashMap<u64, usize>,
    total: usize,
}

impl Given {
    fn len(&self) -> usize {
        self.prompts.len()
    }
    fn is_empty(&self) -> bool {
        self.prompts.is_empty()
    }
}

#[derive(Default)]
struct ModelWindow {
    entries: VecDeque<Entry>,
    /// response hash -> its window entries per distinct prompt
    by_response: HashMap<u64, Given>,
    /// Counted window entries whose response was given to more than one distinct prompt
    /// (kept up to date on every insert and eviction, so O007 costs O(1) per response).
    repeated: usize,
    baseline: Baseline,
    armed_rep: bool,
    armed_len: bool,
    armed_ref: bool,
    cluster_fired: HashMap<u64, ()>,
    last_rate: f64,
}

/// All models' windows.
#[derive(Default)]
pub struct Windows {
    models: HashMap<String, ModelWindow>,
}

/// On-disk state (`state_file`).
#[derive(Debug, Serialize, Deserialize)]
pub struct State {
    /// Format tag.
    pub format: String,
    /// Baselines per model.
    pub models: HashMap<String, Baseline>,
}

const STATE_FORMAT: &str = "tunegate.monitor-state/v1";
/// At most this many models keep windows; more share one `other` window.
pub const MAX_MODELS: usize = 64;

/// Normalizes for near-identity: lowercase alphanumerics and single spaces, digits dropped.
pub fn normalize(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut space = false;
    for c in text.chars() {
        if c.is_alphabetic() {
            if space && !out.is_empty() {
                out.push(' ');
            }
            space = false;
            out.extend(c.to_lowercase());
        } else if c.is_whitespace() {
            space = true;
        }
    }
    out
}

/// 64-bit FNV-1a.
pub fn hash(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// Whether a response opens like a refusal.
pub fn is_refusal(text: &str) -> bool {
    let head: String = text
        .trim_start()
        .chars()
        .take(80)
        .collect::<String>()
        .to_lowercase();
    const OPENINGS: &[&str] = &[
        "i can't",
        "i can’t",
        "i cannot",
        "i'm sorry",
        "i’m sorry",
        "i am sorry",
        "sorry, but",
        "i won't",
        "i won’t",
        "i will not",
        "i am unable",
        "i'm unable",
        "i’m unable",
        "as an ai",
        "i'm not able",
        "i am not able",
        "i must decline",
    ];
    OPENINGS.iter().any(|o| head.starts_with(o))
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n == 0 {
        0.0
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

impl Windows {
    /// Windows seeded with persisted baselines.
    pub fn from_state(state: Option<State>) -> Self {
        let mut w = Windows::default();
        if let Some(s) = state {
            for (m, b) in s.models.into_iter().take(MAX_MODELS) {
                w.models.insert(
                    m,
                    ModelWindow {
                        baseline: b,
                        ..Default::default()
                    },
                );
            }
        }
        w
    }

    /// Reads a state file; a missing file is no state. Errors name the file.
    pub fn load_state(path: &Path) -> Result<Option<State>, crate::Error> {
        match std::fs::read(path) {
            Ok(b) => {
                let s: State = serde_json::from_slice(&b).map_err(|e| {
                    crate::Error::Input(format!("{}: bad monitor state: {e}", path.display()))
                })?;
                if s.format != STATE_FORMAT {
                    return Err(crate::Error::Input(format!(
                        "{}: state format '{}' is not {STATE_FORMAT}",
                        path.display(),
                        s.format
                    )));
                }
                Ok(Some(s))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(crate::Error::Input(format!("{}: {e}", path.display()))),
        }
    }

    /// The persistable state.
    pub fn state(&self) -> State {
        State {
            format: STATE_FORMAT.into(),
            models: self
                .models
                .iter()
                .map(|(k, v)| (k.clone(), v.baseline.clone()))
                .collect(),
        }
    }

    /// Writes the state atomically (temp file in the same folder, then rename).
    pub fn save_state(&self, path: &Path) -> std::io::Result<()> {
        let bytes = serde_json::to_vec_pretty(&self.state()).map_err(std::io::Error::other)?;
        let tmp = path.with_extension("tmp");
        {
            use std::io::Write;
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, path)
    }

    /// The current repetition rate of a model's window.
    pub fn repetition_rate(&self, model: &str) -> Option<f64> {
        self.models.get(model).map(|m| m.last_rate)
    }

    /// Records one response and returns the window findings it triggers.
    pub fn record(
        &mut self,
        cfg: &WindowConfig,
        model: &str,
        prompt: &str,
        response: &str,
    ) -> Vec<Hit> {
        let model = if self.models.len() >= MAX_MODELS && !self.models.contains_key(model) {
            "other"
        } else {
            model
        };
        if !self.models.contains_key(model) {
            self.models
                .insert(model.to_string(), ModelWindow::default());
        }
        let Some(w) = self.models.get_mut(model) else {
            return Vec::new();
        };
        let norm = normalize(response);
        let refusal = is_refusal(response);
        let e = Entry {
            // Prompts are distinct when their text differs (numbers included).
            prompt: hash(prompt.trim()),
            response: hash(&norm),
            // Canned refusals repeat by design; they are judged by O011, not O007/O009.
            counted: norm.chars().count() >= cfg.min_response_chars && !refusal,
            len: response.split_whitespace().count() as f64,
            refusal,
        };
        let mut out = Vec::new();
        // Baseline warm-up.
        let b = &mut w.baseline;
        if b.median.is_none() {
            b.warm_lengths.push(e.len);
            b.warm_refusals += usize::from(e.refusal);
            if b.warm_lengths.len() >= cfg.warmup.max(1) {
                let n = b.warm_lengths.len() as f64;
                let mut l = std::mem::take(&mut b.warm_lengths);
                let med = median(&mut l);
                let mut dev: Vec<f64> = l.iter().map(|x| (x - med).abs()).collect();
                b.median = Some(med);
                b.mad = Some(median(&mut dev));
                b.refusal_rate = Some(b.warm_refusals as f64 / n);
            }
        }
        // Window bookkeeping.
        if e.counted {
            let p = w.by_response.entry(e.response).or_default();
            let before = contribution(p);
            *p.prompts.entry(e.prompt).or_default() += 1;
            p.total += 1;
            w.repeated = w.repeated + contribution(p) - before;
        }
        w.entries.push_back(e.clone());
        while w.entries.len() > cfg.size.max(1) {
            let old = w.entries.pop_front().expect("non-empty");
            if old.counted {
                if let Some(p) = w.by_response.get_mut(&old.response) {
                    let before = contribution(p);
                    if let Some(c) = p.prompts.get_mut(&old.prompt) {
                        *c -= 1;
                        p.total -= 1;
                        if *c == 0 {
                            p.prompts.remove(&old.prompt);
                        }
                    }
                    w.repeated = w.repeated + contribution(p) - before;
                    if p.is_empty() {
                        w.by_response.remove(&old.response);
                        w.cluster_fired.remove(&old.response);
                    }
                }
            }
        }
        // O009: this response given to many distinct prompts.
        if e.counted {
            let prompts = w.by_response.get(&e.response).map_or(0, |p| p.len());
            if prompts >= cfg.cluster_prompts && !w.cluster_fired.contains_key(&e.response) {
                w.cluster_fired.insert(e.response, ());
                let excerpt: String = response.chars().take(120).collect();
                out.push(window_hit(
                    &checks::RESPONSE_CLUSTER,
                    format!(
                        "model '{model}' returned one response to {prompts} distinct prompts in its last {} responses",
                        w.entries.len()
                    ),
                    json!({"distinct_prompts": prompts, "window": w.entries.len(),
                        "response_hash": format!("{:016x}", e.response), "excerpt": excerpt}),
                ));
            }
        }
        // O007: share of window responses that repeat another prompt's response.
        let n = w.entries.len();
        let repeated = w.repeated;
        debug_assert_eq!(
            repeated,
            w.entries
                .iter()
                .filter(|x| x.counted
                    && w.by_response.get(&x.response).is_some_and(|p| p.len() > 1))
                .count()
        );
        let rate = repeated as f64 / n as f64;
        w.last_rate = rate;
        if n >= cfg.min_samples {
            let over = rate > cfg.repetition_rate;
            if over && !w.armed_rep {
                out.push(window_hit(
                    &checks::REPETITION_RATE,
                    format!(
                        "model '{model}': {:.1}% of the last {n} responses repeat a response given to another prompt (limit {:.1}%)",
                        rate * 100.0,
                        cfg.repetition_rate * 100.0
                    ),
                    json!({"rate": (rate * 1e4).round() / 1e4, "limit": cfg.repetition_rate, "window": n}),
                ));
            }
            w.armed_rep = over;
        }
        // O008 / O011 against the frozen baseline, over the recent responses.
        if let (Some(med), Some(mad), Some(rr)) =
            (w.baseline.median, w.baseline.mad, w.baseline.refusal_rate)
        {
            let k = cfg.recent.max(1);
            if n >= k {
                let recent: Vec<&Entry> = w.entries.iter().rev().take(k).collect();
                let mut lens: Vec<f64> = recent.iter().map(|x| x.len).collect();
                let rmed = median(&mut lens);
                let scale = (1.4826 * mad).max(1.0).max(0.05 * med);
                let z = (rmed - med) / scale;
                let over = z.abs() > cfg.length_z;
                if over && !w.armed_len {
                    out.push(window_hit(
                        &checks::LENGTH_ANOMALY,
                        format!(
                            "model '{model}': median length of the last {k} responses is {rmed:.0} words against a baseline of {med:.0} (robust z = {z:.1})"
                        ),
                        json!({"recent_median": rmed, "baseline_median": med, "baseline_mad": mad, "z": (z * 100.0).round() / 100.0}),
                    ));
                }
                w.armed_len = over;
                let rrate = recent.iter().filter(|x| x.refusal).count() as f64 / k as f64;
                let over = rr >= cfg.min_refusal_rate && rrate < rr * cfg.refusal_drop;
                if over && !w.armed_ref {
                    out.push(window_hit(
                        &checks::REFUSAL_COLLAPSE,
                        format!(
                            "model '{model}': refusal rate of the last {k} responses is {:.1}% against a baseline of {:.1}%",
                            rrate * 100.0,
                            rr * 100.0
                        ),
                        json!({"recent_rate": rrate, "baseline_rate": rr}),
                    ));
                }
                w.armed_ref = over;
            }
        }
        out
    }
}

/// How many window entries one response's prompt counts make "repeated": all of them once the
/// response was given to two or more distinct prompts, none before.
fn contribution(given: &Given) -> usize {
    if given.len() > 1 {
        given.total
    } else {
        0
    }
}

fn window_hit(
    check: &'static tunegate_core::CheckInfo,
    message: String,
    evidence: serde_json::Value,
) -> Hit {
    Hit {
        check,
        severity: check.severity,
        message,
        evidence,
        direction: crate::inspect::Direction::Response,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The rate kept up to date on insert and eviction equals a recount of the window.
    #[test]
    fn incremental_repetition_rate_matches_a_recount_through_evictions() {
        let cfg = WindowConfig {
            size: 7,
            min_response_chars: 1,
            ..Default::default()
        };
        let mut w = Windows::default();
        let mut log: Vec<(String, String)> = Vec::new();
        for i in 0..200usize {
            // Responses drawn from a few texts, prompts from a few more: repeats come and go.
            let prompt = format!("prompt {}", (i * 7) % 5);
            let response = ["alpha beta", "gamma delta", "epsilon", "zeta eta theta"]
                [(i * 3 + i / 4) % 4]
                .to_string();
            w.record(&cfg, "m", &prompt, &response);
            log.push((prompt, response));
            let window = &log[log.len().saturating_sub(7)..];
            let repeated = window
                .iter()
                .filter(|(_, r)| {
                    let mut ps: Vec<&str> = window
                        .iter()
                        .filter(|(_, r2)| r2 == r)
                        .map(|(p, _)| p.as_str())
                        .collect();
                    ps.sort_unstable();
                    ps.dedup();
                    ps.len() > 1
                })
                .count();
            let want = repeated as f64 / window.len() as f64;
            let got = w.repetition_rate("m").unwrap();
            assert!((got - want).abs() < 1e-12, "step {i}: {got} vs {want}");
        }
    }
}
