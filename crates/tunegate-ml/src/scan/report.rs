//! The scan gate's checks (`B###`) and the conversion of detector results into findings and
//! charts for the `tunegate.report/v1` report.
use super::detectors::{
    AcReport, AnomalyIndex, Calibration, DiffReport, ExampleScores, SpectralReport,
};
use super::linalg;
use serde_json::json;
use tunegate_core::{Chart, ChartKind, CheckInfo, Finding, Location};

tunegate_core::declare_checks! {
    AC_CLASS_SPLIT = "B001", "scan.ac-class-split", High,
        "Activation clustering: a class's activations split into a small, well-separated cluster (silhouette above what clean or null data of the class reach): likely poisoned rows.";
    AC_EXAMPLE = "B002", "scan.ac-example", Medium,
        "Activation clustering: a training row in the small cluster of a flagged class.";
    SPECTRAL_CLASS = "B003", "scan.spectral-class", High,
        "Spectral signatures: a class has far more rows out along its top singular direction than clean data would (binomial test against the calibrated rate).";
    SPECTRAL_EXAMPLE = "B004", "scan.spectral-example", Medium,
        "Spectral signatures: a training row beyond the calibrated threshold in a flagged class.";
    MAHALANOBIS_INPUT = "B005", "scan.mahalanobis-input", Medium,
        "An input's features lie farther from the clean class statistics (Mahalanobis, shrunk covariance) than the threshold set at the target false-positive rate on clean data.";
    STRIP_INPUT = "B006", "scan.strip-low-entropy", Medium,
        "STRIP: an input's prediction barely changes under perturbation (entropy below the clean-input threshold at the target rejection rate): a trigger may pin it.";
    INPUT_EXCESS = "B007", "scan.input-excess-outliers", High,
        "An input detector (Mahalanobis or STRIP) flags far more inputs than its calibrated false-positive rate allows for clean data (binomial test).";
    TRIGGER_ANOMALY = "B008", "scan.trigger-anomaly-index", High,
        "A class's reverse-engineered trigger is abnormally small against the other classes (Neural Cleanse anomaly index above the threshold): a likely backdoor target.";
    ANOMALY_NOT_APPLICABLE = "B009", "scan.anomaly-index-not-applicable", Info,
        "The trigger anomaly index was not computed: fewer than 3 classes, where a median/MAD rule means nothing.";
    DIFF_PROMPT = "B010", "scan.diff-prompt-outlier", Medium,
        "Behaviour diff: the fine-tune's output distribution on a prompt diverges from the base far more than on the rest of the suite (robust z of log-KL or of the log-prob ratio).";
    DIFF_TOPIC = "B011", "scan.diff-topic-outlier", High,
        "Behaviour diff: the prompts of one topic diverge from the base far more than the rest of the suite: a change off the fine-tune's objective.";
    CLASS_NOT_ANALYSED = "B012", "scan.class-not-analysed", Low,
        "A class was too small or degenerate for activation clustering or spectral signatures; it was not scanned.";
    DETECTOR_SUMMARY = "B013", "scan.detector-summary", Info,
        "What a detector ran on, how its threshold was calibrated, and how many rows it flagged.";
    FINDINGS_TRUNCATED = "B014", "scan.findings-truncated", Info,
        "More rows were flagged than are listed one by one; the rest are counted here.";
}

/// How to name classes and locate examples in the findings.
pub struct Describe<'a> {
    /// The dataset location (file, record, line) of example `i`, in the order fed to the detector.
    pub locate: &'a dyn Fn(usize) -> Location,
    /// A readable name of class `c` (the label string).
    pub class_name: &'a dyn Fn(usize) -> String,
    /// At most this many per-example findings per check; the rest go into one
    /// [`FINDINGS_TRUNCATED`] finding.
    pub max_example_findings: usize,
}

/// Pushes one per-example finding per index in `rows` (up to the cap) plus a truncation note.
fn example_findings(
    out: &mut Vec<Finding>,
    check: &CheckInfo,
    rows: &[usize],
    d: &Describe<'_>,
    mut make: impl FnMut(usize) -> (String, serde_json::Value),
) {
    for &i in rows.iter().take(d.max_example_findings) {
        let (msg, ev) = make(i);
        out.push(Finding::new(check, msg, (d.locate)(i)).evidence(ev));
    }
    if rows.len() > d.max_example_findings {
        let left = rows.len() - d.max_example_findings;
        let rest: Vec<usize> = rows[d.max_example_findings..].to_vec();
        out.push(
            Finding::new(
                &FINDINGS_TRUNCATED,
                format!(
                    "{left} more rows flagged by {} are not listed one by one",
                    check.name
                ),
                Location::default(),
            )
            .evidence(json!({"check": check.id, "not_listed": left, "rows": rest})),
        );
    }
}

fn calibration_name(c: Calibration) -> &'static str {
    match c {
        Calibration::CleanReference => "clean-reference",
        Calibration::NullModel => "null-model",
    }
}

/// Findings of [`super::detectors::activation_clustering`]: one per flagged class (B001), one
/// per row in its small cluster (B002), one per class not analysed (B012) and a summary (B013).
pub fn ac_findings(r: &AcReport, d: &Describe<'_>) -> Vec<Finding> {
    let mut out = Vec::new();
    for c in &r.classes {
        let name = (d.class_name)(c.class);
        if !c.analysed {
            out.push(
                Finding::new(
                    &CLASS_NOT_ANALYSED,
                    format!("activation clustering skipped class '{name}': {}", c.rationale),
                    Location::default(),
                )
                .evidence(json!({"detector": "activation-clustering", "class": name, "rows": c.members.len()})),
            );
            continue;
        }
        if !c.flagged {
            continue;
        }
        let rows: Vec<usize> = c
            .members
            .iter()
            .zip(&c.in_minority)
            .filter(|(_, &m)| m)
            .map(|(&i, _)| i)
            .collect();
        out.push(
            Finding::new(
                &AC_CLASS_SPLIT,
                format!(
                    "class '{name}': {} of {} rows form a separate cluster ({})",
                    rows.len(),
                    c.members.len(),
                    c.rationale
                ),
                Location::default(),
            )
            .evidence(json!({
                "class": name,
                "rows": c.members.len(),
                "minority_rows": rows.len(),
                "minority_fraction": c.minority_fraction,
                "silhouette": c.silhouette,
                "silhouette_threshold": c.silhouette_threshold,
                "null_silhouette_max": c.null_silhouette_max,
                "calibration": calibration_name(c.calibration),
            })),
        );
        example_findings(&mut out, &AC_EXAMPLE, &rows, d, |i| {
            (
                format!("row in the small activation cluster of class '{name}'"),
                json!({"class": name, "score": r.scores[i]}),
            )
        });
    }
    let analysed = r.classes.iter().filter(|c| c.analysed).count();
    let flagged = r.classes.iter().filter(|c| c.flagged).count();
    out.push(
        Finding::new(
            &DETECTOR_SUMMARY,
            format!(
                "activation clustering: {analysed} classes analysed, {flagged} split, {} rows flagged",
                r.flagged.len()
            ),
            Location::default(),
        )
        .evidence(json!({"detector": "activation-clustering", "classes": analysed, "flagged_classes": flagged, "flagged_rows": r.flagged.len()})),
    );
    out
}

/// Findings of [`super::detectors::spectral_signatures`]: B003 per flagged class, B004 per
/// outlier row in it, B012 per class not analysed, and a summary (B013).
pub fn spectral_findings(r: &SpectralReport, d: &Describe<'_>) -> Vec<Finding> {
    let mut out = Vec::new();
    for c in &r.classes {
        let name = (d.class_name)(c.class);
        if !c.analysed {
            out.push(
                Finding::new(
                    &CLASS_NOT_ANALYSED,
                    format!("spectral signatures skipped class '{name}': {}", c.rationale),
                    Location::default(),
                )
                .evidence(json!({"detector": "spectral-signatures", "class": name, "rows": c.members.len()})),
            );
            continue;
        }
        if !c.flagged {
            continue;
        }
        out.push(
            Finding::new(
                &SPECTRAL_CLASS,
                format!("class '{name}': {}", c.rationale),
                Location::default(),
            )
            .evidence(json!({
                "class": name,
                "rows": c.members.len(),
                "outliers": c.outliers,
                "expected": c.expected,
                "p_value": c.p_value,
                "threshold": c.threshold,
                "calibration": calibration_name(c.calibration),
            })),
        );
        let rows: Vec<usize> = c
            .members
            .iter()
            .copied()
            .filter(|&i| r.scores[i] > c.threshold)
            .collect();
        example_findings(&mut out, &SPECTRAL_EXAMPLE, &rows, d, |i| {
            (
                format!(
                    "row far out along the top singular direction of class '{name}' (score {:.3}, threshold {:.3})",
                    r.scores[i], c.threshold
                ),
                json!({"class": name, "score": r.scores[i], "threshold": c.threshold}),
            )
        });
    }
    let flagged = r.classes.iter().filter(|c| c.flagged).count();
    out.push(
        Finding::new(
            &DETECTOR_SUMMARY,
            format!(
                "spectral signatures: {} classes analysed, {flagged} flagged, {} rows flagged",
                r.classes.iter().filter(|c| c.analysed).count(),
                r.flagged.len()
            ),
            Location::default(),
        )
        .evidence(json!({"detector": "spectral-signatures", "flagged_classes": flagged, "flagged_rows": r.flagged.len()})),
    );
    out
}

/// Which input-level detector produced an [`ExampleScores`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputDetector {
    /// [`super::detectors::mahalanobis_detector`].
    Mahalanobis,
    /// [`super::detectors::strip_detector`].
    Strip,
}

/// Findings of an input-level detector calibrated at `target_rate` on clean data: one per
/// flagged input (B005 or B006), B007 when the number flagged is improbable for clean inputs
/// (binomial p-value below `alpha`), and a summary (B013).
pub fn input_findings(
    kind: InputDetector,
    s: &ExampleScores,
    target_rate: f64,
    alpha: f64,
    d: &Describe<'_>,
) -> Vec<Finding> {
    let (check, name, unit) = match kind {
        InputDetector::Mahalanobis => (&MAHALANOBIS_INPUT, "mahalanobis", "distance"),
        InputDetector::Strip => (&STRIP_INPUT, "strip", "entropy (nats)"),
    };
    let mut out = Vec::new();
    example_findings(&mut out, check, &s.flagged, d, |i| {
        (
            format!(
                "{name}: {unit} {:.4} is {} the clean threshold {:.4}",
                s.scores[i],
                match s.direction {
                    super::detectors::Direction::Above => "above",
                    super::detectors::Direction::Below => "below",
                },
                s.threshold
            ),
            json!({"detector": name, "score": s.scores[i], "threshold": s.threshold}),
        )
    });
    let n = s.scores.len();
    let p = linalg::binomial_sf(s.flagged.len(), n, target_rate);
    if p < alpha {
        out.push(
            Finding::new(
                &INPUT_EXCESS,
                format!(
                    "{name} flagged {} of {n} inputs where at most {:.1} are expected from clean data (binomial p = {p:.2e})",
                    s.flagged.len(),
                    n as f64 * target_rate
                ),
                Location::default(),
            )
            .evidence(json!({"detector": name, "flagged": s.flagged.len(), "inputs": n, "target_rate": target_rate, "p_value": p})),
        );
    }
    out.push(
        Finding::new(
            &DETECTOR_SUMMARY,
            format!("{name}: {} of {n} inputs flagged; {}", s.flagged.len(), s.rationale),
            Location::default(),
        )
        .evidence(json!({"detector": name, "threshold": s.threshold, "flagged": s.flagged.len(), "inputs": n})),
    );
    out
}

/// Findings of [`super::detectors::anomaly_index`]: B008 per flagged class, or B009 when not
/// applicable.
pub fn anomaly_findings(ai: &AnomalyIndex, class_name: &dyn Fn(usize) -> String) -> Vec<Finding> {
    match ai {
        AnomalyIndex::NotApplicable { classes, reason } => vec![Finding::new(
            &ANOMALY_NOT_APPLICABLE,
            format!("trigger anomaly index not computed: {reason}"),
            Location::default(),
        )
        .evidence(json!({"classes": classes}))],
        AnomalyIndex::Computed {
            index,
            median,
            flagged,
            threshold,
            ..
        } => flagged
            .iter()
            .map(|&c| {
                Finding::new(
                    &TRIGGER_ANOMALY,
                    format!(
                        "class '{}': trigger anomaly index {:.2} (threshold {threshold}): its inverted trigger is far smaller than the other classes'",
                        class_name(c),
                        index[c]
                    ),
                    Location::default(),
                )
                .evidence(json!({"class": class_name(c), "anomaly_index": index[c], "median_norm": median, "threshold": threshold}))
            })
            .collect(),
    }
}

/// Findings of [`super::detectors::behaviour_diff`]: B010 per flagged prompt (located by
/// `locate_prompt`, capped), B011 per flagged topic, and a summary (B013).
pub fn diff_findings(r: &DiffReport, d: &Describe<'_>) -> Vec<Finding> {
    let mut out = Vec::new();
    example_findings(&mut out, &DIFF_PROMPT, &r.flagged_prompts, d, |i| {
        let p = &r.prompts[i];
        (
            format!(
                "prompt diverges from the base: KL {:.4} nats (robust z {:.1}), log-prob ratio {:.3} nats/token (robust z {:.1})",
                p.kl, p.z_kl, p.logprob_ratio, p.z_ratio
            ),
            json!({"kl": p.kl, "z_kl": p.z_kl, "logprob_ratio": p.logprob_ratio, "z_ratio": p.z_ratio}),
        )
    });
    for t in r.topics.iter().filter(|t| t.flagged) {
        out.push(
            Finding::new(
                &DIFF_TOPIC,
                format!(
                    "topic '{}' ({} prompts) diverges from the base far more than the rest: median KL {:.4} nats vs {:.4} overall, effect {:.1} robust SDs",
                    t.topic, t.prompts, t.median_kl, r.median_kl, t.effect
                ),
                Location::default(),
            )
            .evidence(json!({"topic": t.topic, "prompts": t.prompts, "median_kl": t.median_kl, "effect": t.effect, "suite_median_kl": r.median_kl})),
        );
    }
    out.push(
        Finding::new(
            &DETECTOR_SUMMARY,
            format!(
                "behaviour diff: {} prompts, median KL {:.4} nats, {} prompts and {} topics stand out",
                r.prompts.len(),
                r.median_kl,
                r.flagged_prompts.len(),
                r.topics.iter().filter(|t| t.flagged).count()
            ),
            Location::default(),
        )
        .evidence(json!({"detector": "behaviour-diff", "rule": r.rationale})),
    );
    out
}

/// Format a number for a chart label.
fn lab(v: f64) -> String {
    if v != 0.0 && (v.abs() >= 1e4 || v.abs() < 1e-2) {
        format!("{v:.2e}")
    } else {
        format!("{v:.2}")
    }
}

/// A histogram chart of `values` over `bins` equal-width bins between their min and max.
pub fn histogram(id: &str, title: &str, values: &[f64], bins: usize, unit: &str) -> Chart {
    let vals: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    let bins = bins.max(1);
    let (lo, hi) = vals
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| {
            (a.min(v), b.max(v))
        });
    let (labels, counts) = if vals.is_empty() {
        (Vec::new(), Vec::new())
    } else {
        let width = if hi > lo {
            (hi - lo) / bins as f64
        } else {
            1.0
        };
        let nb = if hi > lo { bins } else { 1 };
        let mut counts = vec![0.0; nb];
        for v in &vals {
            let b = (((v - lo) / width) as usize).min(nb - 1);
            counts[b] += 1.0;
        }
        let labels = (0..nb)
            .map(|b| {
                format!(
                    "{}–{}",
                    lab(lo + width * b as f64),
                    lab(lo + width * (b + 1) as f64)
                )
            })
            .collect();
        (labels, counts)
    };
    Chart {
        id: id.to_string(),
        title: title.to_string(),
        kind: ChartKind::Histogram,
        labels,
        values: counts,
        unit: unit.to_string(),
    }
}

const GRID_COLS: usize = 24;
const GRID_ROWS: usize = 16;

/// A density grid of points on (PC1, PC2) as a heatmap: rows are PC2 bins (highest first),
/// columns PC1 bins, cells count points (empty cells are left blank). `keep` selects the points
/// counted; the bins cover all points so that two grids of one class line up.
fn scatter_grid(id: String, title: String, pts: &[[f64; 2]], keep: &[bool]) -> Chart {
    let (mut x0, mut x1, mut y0, mut y1) = (
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::INFINITY,
        f64::NEG_INFINITY,
    );
    for p in pts {
        x0 = x0.min(p[0]);
        x1 = x1.max(p[0]);
        y0 = y0.min(p[1]);
        y1 = y1.max(p[1]);
    }
    let wx = if x1 > x0 {
        (x1 - x0) / GRID_COLS as f64
    } else {
        1.0
    };
    let wy = if y1 > y0 {
        (y1 - y0) / GRID_ROWS as f64
    } else {
        1.0
    };
    let mut cells = vec![0.0; GRID_ROWS * GRID_COLS];
    for (p, &k) in pts.iter().zip(keep) {
        if !k {
            continue;
        }
        let c = (((p[0] - x0) / wx) as usize).min(GRID_COLS - 1);
        let r = (((p[1] - y0) / wy) as usize).min(GRID_ROWS - 1);
        cells[(GRID_ROWS - 1 - r) * GRID_COLS + c] += 1.0;
    }
    cells
        .iter_mut()
        .filter(|v| **v == 0.0)
        .for_each(|v| *v = -1.0);
    Chart {
        id,
        title,
        kind: ChartKind::Heatmap {
            columns: (0..GRID_COLS)
                .map(|c| format!("PC1 {}", lab(x0 + wx * (c as f64 + 0.5))))
                .collect(),
        },
        labels: (0..GRID_ROWS)
            .map(|r| format!("PC2 {}", lab(y0 + wy * ((GRID_ROWS - 1 - r) as f64 + 0.5))))
            .collect(),
        values: cells,
        unit: "rows per cell".into(),
    }
}

/// Charts of activation clustering: for up to `max_classes` analysed classes (flagged ones
/// first), the class on its first two principal components as a density grid, and for flagged
/// classes a second grid with only the small cluster (same bins).
pub fn ac_charts(
    r: &AcReport,
    class_name: &dyn Fn(usize) -> String,
    max_classes: usize,
) -> Vec<Chart> {
    let mut order: Vec<&super::detectors::AcClass> =
        r.classes.iter().filter(|c| c.analysed).collect();
    order.sort_by_key(|c| (!c.flagged, c.class));
    let mut out = Vec::new();
    for c in order.into_iter().take(max_classes) {
        let name = class_name(c.class);
        let all = vec![true; c.pc2.len()];
        out.push(scatter_grid(
            format!("ac-scatter-{}", c.class),
            format!(
                "Activation clustering, class '{name}': rows on PC1 × PC2 (silhouette {:.2}, threshold {:.2})",
                c.silhouette, c.silhouette_threshold
            ),
            &c.pc2,
            &all,
        ));
        if c.flagged {
            out.push(scatter_grid(
                format!("ac-scatter-{}-minority", c.class),
                format!(
                    "Activation clustering, class '{name}': the flagged small cluster ({:.1}% of the class)",
                    100.0 * c.minority_fraction
                ),
                &c.pc2,
                &c.in_minority,
            ));
        }
    }
    out
}

/// Charts of spectral signatures: a histogram of row scores per flagged class.
pub fn spectral_charts(r: &SpectralReport, class_name: &dyn Fn(usize) -> String) -> Vec<Chart> {
    r.classes
        .iter()
        .filter(|c| c.flagged)
        .map(|c| {
            let vals: Vec<f64> = c.members.iter().map(|&i| r.scores[i]).collect();
            histogram(
                &format!("spectral-scores-{}", c.class),
                &format!(
                    "Spectral signature scores, class '{}' (threshold {:.3})",
                    class_name(c.class),
                    c.threshold
                ),
                &vals,
                30,
                "rows",
            )
        })
        .collect()
}

/// A histogram of an input detector's scores, with its threshold in the title.
pub fn input_chart(kind: InputDetector, s: &ExampleScores) -> Chart {
    let (id, what) = match kind {
        InputDetector::Mahalanobis => ("mahalanobis-scores", "Mahalanobis distance"),
        InputDetector::Strip => ("strip-entropy", "STRIP mean entropy (nats)"),
    };
    histogram(
        id,
        &format!("{what} per input (threshold {:.4})", s.threshold),
        &s.scores,
        30,
        "inputs",
    )
}

/// The anomaly index per class as bars (`None` when not applicable).
pub fn anomaly_chart(ai: &AnomalyIndex, class_name: &dyn Fn(usize) -> String) -> Option<Chart> {
    match ai {
        AnomalyIndex::NotApplicable { .. } => None,
        AnomalyIndex::Computed {
            index, threshold, ..
        } => Some(Chart {
            id: "trigger-anomaly-index".into(),
            title: format!("Trigger anomaly index per class (flagged above {threshold})"),
            kind: ChartKind::Bar,
            labels: (0..index.len()).map(class_name).collect(),
            values: index.clone(),
            unit: "robust SDs below the median trigger norm".into(),
        }),
    }
}

/// Charts of the behaviour diff: the per-prompt divergence histogram (log10 KL) and, with
/// topics, the median KL per topic.
pub fn diff_charts(r: &DiffReport) -> Vec<Chart> {
    let logs: Vec<f64> = r.prompts.iter().map(|p| (p.kl + 1e-6).log10()).collect();
    let mut out = vec![histogram(
        "diff-kl-histogram",
        "Per-prompt divergence from the base: log10 KL(fine-tune ‖ base)",
        &logs,
        30,
        "prompts",
    )];
    if !r.topics.is_empty() {
        out.push(Chart {
            id: "diff-topic-kl".into(),
            title: "Median KL(fine-tune ‖ base) per topic".into(),
            kind: ChartKind::Bar,
            labels: r.topics.iter().map(|t| t.topic.clone()).collect(),
            values: r.topics.iter().map(|t| t.median_kl).collect(),
            unit: "nats".into(),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_well_formed_and_unique_in_range() {
        tunegate_core::checks::validate(CHECKS).unwrap();
        for c in CHECKS {
            let n: u32 = c.id[1..].parse().unwrap();
            assert!(c.id.starts_with('B') && (1..=30).contains(&n), "{}", c.id);
        }
    }

    #[test]
    fn histogram_bins_and_degenerate_input() {
        let h = histogram("h", "t", &[0.0, 1.0, 2.0, 3.0], 2, "u");
        assert_eq!(h.values, vec![2.0, 2.0]);
        assert_eq!(h.labels.len(), 2);
        let h = histogram("h", "t", &[5.0, 5.0], 10, "u");
        assert_eq!(h.values, vec![2.0]);
        let h = histogram("h", "t", &[], 10, "u");
        assert!(h.values.is_empty());
    }

    #[test]
    fn scatter_grid_counts_every_kept_point() {
        let pts = [[0.0, 0.0], [1.0, 1.0], [1.0, 1.0], [0.5, 0.2]];
        let g = scatter_grid("g".into(), "t".into(), &pts, &[true, true, true, false]);
        let ChartKind::Heatmap { columns } = &g.kind else {
            panic!("not a heatmap")
        };
        assert_eq!(g.values.len(), g.labels.len() * columns.len());
        let total: f64 = g.values.iter().filter(|v| **v > 0.0).sum();
        assert_eq!(total, 3.0);
        // The highest PC2 values are in the first row, the highest PC1 in the last column.
        assert_eq!(g.values[GRID_COLS - 1], 2.0);
    }
}
