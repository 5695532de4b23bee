//! `tunegate scan backdoor MODEL --clean prompts.jsonl [--base BASE]` for a causal LM: target
//! inversion ([`super::bait`]) and trigger probing ([`super::probe`], with candidates from the
//! caller's list when given and from the model's drift or gradient ranking) on the same benign
//! prompts. The model-level score is the larger of the two scores (each in `[0, 1]`).
use super::bait::{bait, BaitConfig};
use super::probe::{probe, ProbeConfig};
use crate::runtime::Result;
use crate::scan::model::{Prompt, ScanModel, ScanOutcome};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tunegate_core::progress::Progress;

/// Settings of [`lm_backdoor`] (`[bait]` and `[probe]` tables).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct LmBackdoorConfig {
    /// Target inversion.
    pub bait: BaitConfig,
    /// Trigger probing.
    pub probe: ProbeConfig,
    /// Skip the probe (target inversion only) [false].
    pub skip_probe: bool,
}

/// Backdoor scan of a causal LM. `candidates` may be empty (the probe then uses the model's own
/// ranking only); `prompts` empty uses the built-in benign prompts. The summary holds `bait`,
/// `probe` and `model_score` (the larger of their model scores).
pub fn lm_backdoor(
    model: &ScanModel,
    base: Option<&ScanModel>,
    prompts: &[Prompt],
    candidates: &[String],
    cfg: &LmBackdoorConfig,
    progress: &dyn Progress,
) -> Result<ScanOutcome> {
    let b = bait(model, base, prompts, &cfg.bait, progress)?;
    let mut score = b.model_score;
    let mut out = ScanOutcome::default();
    out.merge("bait", b.outcome(model));
    if !cfg.skip_probe {
        let p = probe(model, base, candidates, prompts, &cfg.probe, progress)?;
        score = score.max(p.model_score);
        out.merge("probe", p.outcome(model, cfg.probe.max_findings));
    }
    out.summary["model_score"] = json!(score);
    Ok(out)
}
