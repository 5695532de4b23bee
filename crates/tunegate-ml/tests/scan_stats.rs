//! The scan statistics on synthetic features with known ground truth: planted poison is found,
//! clean data is left alone at the calibrated rates, the anomaly index and the behaviour diff
//! single out the planted class and topic.
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tunegate_core::{ChartKind, Location, Severity};
use tunegate_ml::scan::detectors::{
    activation_clustering, anomaly_index, behaviour_diff, mahalanobis_detector,
    spectral_signatures, strip_detector, strip_entropies, AcConfig, AnomalyIndex, Calibration,
    DiffConfig, MahalanobisModel, PromptDiff, SpectralConfig,
};
use tunegate_ml::scan::linalg::{self, Features, Mat};
use tunegate_ml::scan::report::{self, Describe, InputDetector};

const D: usize = 32;
const CLASSES: usize = 3;

fn gauss(rng: &mut ChaCha8Rng) -> f64 {
    let u1: f64 = rng.gen::<f64>().max(1e-300);
    let u2: f64 = rng.gen();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

fn unit(rng: &mut ChaCha8Rng) -> Vec<f64> {
    let v: Vec<f64> = (0..D).map(|_| gauss(rng)).collect();
    let n = v.iter().map(|x| x * x).sum::<f64>().sqrt();
    v.into_iter().map(|x| x / n).collect()
}

/// A world of class-conditional Gaussians with an anisotropic spread (sd from 2 down to 1).
struct World {
    means: Vec<Vec<f64>>,
    sd: Vec<f64>,
    trigger: Vec<f64>,
}

impl World {
    fn new(seed: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let means = (0..CLASSES)
            .map(|_| unit(&mut rng).into_iter().map(|x| 20.0 * x).collect())
            .collect();
        let sd = (0..D).map(|j| 1.0 + (-(j as f64) / 3.0).exp()).collect();
        World {
            means,
            sd,
            trigger: unit(&mut rng),
        }
    }
    fn clean_row(&self, c: usize, rng: &mut ChaCha8Rng, out: &mut Vec<f32>) {
        for j in 0..D {
            out.push((self.means[c][j] + self.sd[j] * gauss(rng)) as f32);
        }
    }
    /// A poisoned row labelled `c`: the class's features moved 25 units along the trigger
    /// direction (what a learned trigger feature does to the last hidden layer).
    fn poison_row(&self, c: usize, rng: &mut ChaCha8Rng, out: &mut Vec<f32>) {
        for j in 0..D {
            out.push((self.means[c][j] + 25.0 * self.trigger[j] + self.sd[j] * gauss(rng)) as f32);
        }
    }
    /// `per_class` rows per class, shuffled; class `target` has `poison` of its rows poisoned.
    fn dataset(
        &self,
        per_class: usize,
        target: usize,
        poison: usize,
        seed: u64,
    ) -> (Vec<f32>, Vec<usize>, Vec<bool>) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut rows: Vec<(usize, bool)> = Vec::new();
        for c in 0..CLASSES {
            for i in 0..per_class {
                rows.push((c, c == target && i < poison));
            }
        }
        for i in (1..rows.len()).rev() {
            let j = rng.gen_range(0..=i);
            rows.swap(i, j);
        }
        let mut x = Vec::with_capacity(rows.len() * D);
        for &(c, p) in &rows {
            if p {
                self.poison_row(c, &mut rng, &mut x);
            } else {
                self.clean_row(c, &mut rng, &mut x);
            }
        }
        (
            x,
            rows.iter().map(|r| r.0).collect(),
            rows.iter().map(|r| r.1).collect(),
        )
    }
}

fn recall_and_false(flagged: &[usize], poison: &[bool]) -> (f64, usize) {
    let total = poison.iter().filter(|&&p| p).count();
    let hit = flagged.iter().filter(|&&i| poison[i]).count();
    (hit as f64 / total as f64, flagged.len() - hit)
}

#[test]
fn planted_poison_is_found_by_ac_and_spectral_at_1_5_10_percent() {
    let per_class = 1000;
    let target = 1;
    for (k, rate) in [0.01, 0.05, 0.10].into_iter().enumerate() {
        let w = World::new(10 + k as u64);
        let poison_n = (rate * per_class as f64) as usize;
        let (x, y, truth) = w.dataset(per_class, target, poison_n, 100 + k as u64);
        let f = Features::new("train", &x, y.len(), D).unwrap();
        // A clean reference from the same world (no poison).
        let (cx, cy, _) = w.dataset(400, target, 0, 200 + k as u64);
        let cf = Features::new("clean", &cx, cy.len(), D).unwrap();
        for clean in [None, Some((cf, cy.as_slice()))] {
            let mode = if clean.is_some() { "clean-ref" } else { "null" };
            let ac = activation_clustering(f, &y, clean, &AcConfig::default()).unwrap();
            for c in &ac.classes {
                assert_eq!(
                    c.flagged,
                    c.class == target,
                    "AC {mode} rate {rate}: class {} ({})",
                    c.class,
                    c.rationale
                );
                let want = if clean.is_some() {
                    Calibration::CleanReference
                } else {
                    Calibration::NullModel
                };
                assert_eq!(c.calibration, want);
            }
            let (rec, fp) = recall_and_false(&ac.flagged, &truth);
            assert!(rec >= 0.95, "AC {mode} rate {rate}: recall {rec}");
            assert!(fp <= 10, "AC {mode} rate {rate}: {fp} clean rows flagged");

            let ss = spectral_signatures(f, &y, clean, &SpectralConfig::default()).unwrap();
            for c in &ss.classes {
                assert_eq!(
                    c.flagged,
                    c.class == target,
                    "SS {mode} rate {rate}: class {} ({})",
                    c.class,
                    c.rationale
                );
            }
            let (rec, fp) = recall_and_false(&ss.flagged, &truth);
            assert!(rec >= 0.95, "SS {mode} rate {rate}: recall {rec}");
            assert!(fp <= 20, "SS {mode} rate {rate}: {fp} clean rows flagged");
        }
    }
}

#[test]
fn clean_classes_are_not_flagged_and_row_fpr_stays_at_target() {
    let cfg = SpectralConfig::default();
    let (mut exceed, mut rows) = (0usize, 0usize);
    for seed in 0..4u64 {
        let w = World::new(50 + seed);
        let (x, y, _) = w.dataset(600, 0, 0, 300 + seed);
        let f = Features::new("train", &x, y.len(), D).unwrap();
        let (cx, cy, _) = w.dataset(400, 0, 0, 400 + seed);
        let cf = Features::new("clean", &cx, cy.len(), D).unwrap();
        for clean in [None, Some((cf, cy.as_slice()))] {
            let ac = activation_clustering(
                f,
                &y,
                clean,
                &AcConfig {
                    seed,
                    ..AcConfig::default()
                },
            )
            .unwrap();
            assert!(
                ac.flagged.is_empty(),
                "seed {seed}: AC flagged {:?}",
                ac.classes.iter().map(|c| &c.rationale).collect::<Vec<_>>()
            );
            assert!(ac
                .classes
                .iter()
                .all(|c| c.analysed && c.minority_fraction > 0.0));
            let ss = spectral_signatures(f, &y, clean, &cfg).unwrap();
            assert!(
                ss.flagged.is_empty() && ss.classes.iter().all(|c| !c.flagged),
                "seed {seed}: SS flagged"
            );
            if clean.is_some() {
                // Per-row rate above the clean-calibrated threshold, on held-out clean rows.
                for c in &ss.classes {
                    exceed += c.outliers;
                    rows += c.members.len();
                }
            }
        }
    }
    let rate = exceed as f64 / rows as f64;
    assert!(
        rate <= cfg.target_fpr * 1.5,
        "row FPR {rate} vs target {}",
        cfg.target_fpr
    );
}

#[test]
fn mahalanobis_and_strip_hit_their_target_rates_on_held_out_clean_data() {
    let w = World::new(77);
    let (tx, ty, _) = w.dataset(500, 0, 0, 1);
    let model =
        MahalanobisModel::fit(Features::new("fit", &tx, ty.len(), D).unwrap(), &ty).unwrap();
    assert!(model.shrinkage >= 0.0 && model.shrinkage < 0.5);
    let (dx, dy, _) = w.dataset(700, 0, 0, 2);
    let (hx, hy, _) = w.dataset(2000, 0, 0, 3);
    let dev = Features::new("dev", &dx, dy.len(), D).unwrap();
    let held = Features::new("held", &hx, hy.len(), D).unwrap();
    for fpr in [0.01, 0.05] {
        let r = mahalanobis_detector(&model, dev, Some(&dy), held, Some(&hy), fpr).unwrap();
        let got = r.flagged.len() as f64 / hy.len() as f64;
        assert!(
            (got - fpr).abs() <= 0.5 * fpr + 0.003,
            "Mahalanobis FPR {got} vs {fpr}"
        );
        // Nearest-class scoring works without labels and is never larger.
        let r2 = mahalanobis_detector(&model, dev, None, held, None, fpr).unwrap();
        assert!(r2
            .scores
            .iter()
            .zip(&r.scores)
            .all(|(a, b)| *a <= *b + 1e-9));
    }
    // Poisoned inputs are far: all flagged at 1%.
    let (px, py, truth) = w.dataset(100, 2, 100, 4);
    let r = mahalanobis_detector(
        &model,
        dev,
        Some(&dy),
        Features::new("p", &px, py.len(), D).unwrap(),
        Some(&py),
        0.01,
    )
    .unwrap();
    let (rec, _) = recall_and_false(&r.flagged, &truth);
    assert_eq!(rec, 1.0);
    let findings =
        report::input_findings(InputDetector::Mahalanobis, &r, 0.01, 1e-3, &describe(50));
    assert!(
        findings.iter().any(|f| f.id == "B007"),
        "excess outliers reported"
    );
    assert_eq!(findings.iter().filter(|f| f.id == "B005").count(), 50);
    assert!(findings.iter().any(|f| f.id == "B014"));

    // STRIP: clean inputs' predictions under perturbation are spread (Dirichlet-like), trojaned
    // ones pinned. Build probabilities for K = 8 copies over 4 classes.
    let strip_probs = |n: usize, pinned: bool, seed: u64| {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut p = Vec::with_capacity(n * 8 * 4);
        for _ in 0..n {
            let temp = if pinned { 0.15 } else { 1.0 + rng.gen::<f64>() };
            for _ in 0..8 {
                let logits: Vec<f64> = (0..4)
                    .map(|c| {
                        (if c == 0 { 2.0 } else { 0.0 }) / temp
                            + gauss(&mut rng) * if pinned { 0.1 } else { 1.0 }
                    })
                    .collect();
                let m = logits.iter().copied().fold(f64::MIN, f64::max);
                let e: Vec<f64> = logits.iter().map(|l| (l - m).exp()).collect();
                let s: f64 = e.iter().sum();
                p.extend(e.iter().map(|v| (v / s) as f32));
            }
        }
        strip_entropies(&p, n, 8, 4).unwrap()
    };
    let clean_cal = strip_probs(600, false, 5);
    let clean_held = strip_probs(3000, false, 6);
    for frr in [0.01, 0.05] {
        let r = strip_detector(&clean_cal, &clean_held, frr).unwrap();
        let got = r.flagged.len() as f64 / clean_held.len() as f64;
        assert!(
            (got - frr).abs() <= 0.5 * frr + 0.003,
            "STRIP FRR {got} vs {frr}"
        );
    }
    let trojan = strip_probs(200, true, 7);
    let r = strip_detector(&clean_cal, &trojan, 0.01).unwrap();
    assert!(
        r.flagged.len() >= 190,
        "STRIP caught {} of 200",
        r.flagged.len()
    );
    assert!(
        strip_detector(&clean_cal[..50], &trojan, 0.01).is_err(),
        "50 clean inputs cannot support 1%"
    );
}

#[test]
fn anomaly_index_flags_the_one_abnormal_class_and_is_na_for_two() {
    // Nine clean classes spread like normal quantiles around 50, one target class at 12.
    let mut norms: Vec<f64> = vec![44.0, 47.0, 48.5, 50.0, 51.0, 52.5, 0.0, 54.0, 57.0, 49.0];
    norms[6] = 12.0;
    let ai = anomaly_index(&norms, 2.0).unwrap();
    let AnomalyIndex::Computed { flagged, index, .. } = &ai else {
        panic!("expected computed")
    };
    assert_eq!(flagged, &vec![6]);
    assert!(index[6] > 3.0);
    // A class with an abnormally large norm is not a backdoor target.
    norms[6] = 200.0;
    let AnomalyIndex::Computed { flagged, .. } = anomaly_index(&norms, 2.0).unwrap() else {
        panic!()
    };
    assert!(flagged.is_empty());
    let name = |c: usize| format!("c{c}");
    assert!(report::anomaly_chart(&ai, &name).is_some());
    let f = report::anomaly_findings(&ai, &name);
    assert_eq!(f.len(), 1);
    assert_eq!((f[0].id.as_str(), f[0].severity), ("B008", Severity::High));
    let na = anomaly_index(&[10.0, 2.0], 2.0).unwrap();
    assert!(matches!(na, AnomalyIndex::NotApplicable { classes: 2, .. }));
    assert!(report::anomaly_chart(&na, &name).is_none());
    assert_eq!(report::anomaly_findings(&na, &name)[0].id, "B009");
}

#[test]
fn behaviour_diff_finds_the_one_diverging_topic() {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let topics = ["cooking", "math", "travel", "finance", "history"];
    let mut diffs = Vec::new();
    let mut labels = Vec::new();
    for (t, name) in topics.iter().enumerate() {
        for _ in 0..20 {
            // Small on-objective drift everywhere, log-normal; "finance" diverges 30x.
            let base = 0.02 * (0.4 * gauss(&mut rng)).exp();
            let kl = if t == 3 { 30.0 * base } else { base };
            diffs.push(PromptDiff {
                kl,
                logprob_ratio: 0.05 * gauss(&mut rng) + if t == 3 { 1.5 } else { 0.0 },
            });
            labels.push(name.to_string());
        }
    }
    let r = behaviour_diff(&diffs, Some(&labels), &DiffConfig::default()).unwrap();
    let flagged: Vec<&str> = r
        .topics
        .iter()
        .filter(|t| t.flagged)
        .map(|t| t.topic.as_str())
        .collect();
    assert_eq!(flagged, vec!["finance"]);
    assert!(r.flagged_prompts.iter().all(|&i| labels[i] == "finance"));
    assert!(
        r.flagged_prompts.len() >= 18,
        "{} finance prompts flagged",
        r.flagged_prompts.len()
    );
    let f = report::diff_findings(&r, &describe(100));
    assert_eq!(f.iter().filter(|f| f.id == "B011").count(), 1);
    let charts = report::diff_charts(&r);
    assert_eq!(charts.len(), 2);
    assert_eq!(charts[0].values.iter().sum::<f64>(), 100.0);

    // A uniform fine-tune: nothing stands out.
    let calm: Vec<PromptDiff> = (0..100)
        .map(|_| PromptDiff {
            kl: 0.02 * (0.4 * gauss(&mut rng)).exp(),
            logprob_ratio: 0.05 * gauss(&mut rng),
        })
        .collect();
    let r = behaviour_diff(&calm, Some(&labels), &DiffConfig::default()).unwrap();
    assert!(r.topics.iter().all(|t| !t.flagged));
    assert!(r.flagged_prompts.len() <= 1);
    // Identical models: every KL is 0, nothing flagged, nothing NaN.
    let same = vec![
        PromptDiff {
            kl: 0.0,
            logprob_ratio: 0.0
        };
        10
    ];
    let r = behaviour_diff(&same, None, &DiffConfig::default()).unwrap();
    assert!(r.flagged_prompts.is_empty() && r.prompts.iter().all(|p| p.z_kl == 0.0));
    assert!(behaviour_diff(&same[..4], None, &DiffConfig::default()).is_err());
}

#[test]
fn pca_recovers_a_planted_direction() {
    let mut rng = ChaCha8Rng::seed_from_u64(12);
    let dir = unit(&mut rng);
    let n = 3000;
    let mut data = Vec::with_capacity(n * D);
    for _ in 0..n {
        let s = 4.0 * gauss(&mut rng);
        for dj in &dir {
            data.push(s * dj + gauss(&mut rng) + 3.0);
        }
    }
    let x = Mat::from_vec(n, D, data).unwrap();
    let p = linalg::top_components(&x, 2, 1).unwrap();
    let cos: f64 = p.components[0]
        .iter()
        .zip(&dir)
        .map(|(a, b)| a * b)
        .sum::<f64>()
        .abs();
    assert!(cos > 0.99, "cosine {cos}");
    assert!(
        (p.variances[0] - 17.0).abs() < 1.5,
        "variance {}",
        p.variances[0]
    );
    let orth: f64 = p.components[0]
        .iter()
        .zip(&p.components[1])
        .map(|(a, b)| a * b)
        .sum();
    assert!(orth.abs() < 1e-9);
}

#[test]
fn kmeans_silhouette_and_ac_edge_cases_never_panic() {
    // Identical points: errors, not NaN.
    let same = Mat::from_vec(10, 3, vec![1.5; 30]).unwrap();
    assert!(linalg::kmeans(&same, 2, 3, 0).is_err());
    assert!(linalg::top_components(&same, 2, 0).is_err());
    assert!(linalg::kmeans(&Mat::zeros(1, 3), 2, 3, 0).is_err());
    // A class of identical rows is reported as not analysed.
    let x = vec![0.25f32; 40 * 4];
    let y = vec![0usize; 40];
    let f = Features::new("x", &x, 40, 4).unwrap();
    let r = activation_clustering(f, &y, None, &AcConfig::default()).unwrap();
    assert!(!r.classes[0].analysed && r.flagged.is_empty());
    assert!(r.scores.iter().all(|s| s.is_finite()));
    let s = spectral_signatures(f, &y, None, &SpectralConfig::default()).unwrap();
    assert!(!s.classes[0].analysed);
    let fs = report::ac_findings(&r, &describe(10));
    assert!(fs.iter().any(|f| f.id == "B012"));
    // Empty input.
    let r = activation_clustering(
        Features::new("e", &[], 0, 4).unwrap(),
        &[],
        None,
        &AcConfig::default(),
    )
    .unwrap();
    assert!(r.classes.is_empty());
}

fn describe(cap: usize) -> Describe<'static> {
    Describe {
        locate: &|i| Location::file("train.jsonl").record(i as u64, Some(i as u64 + 1)),
        class_name: &|c| format!("label-{c}"),
        max_example_findings: cap,
    }
}

#[test]
fn findings_and_charts_point_at_the_poisoned_records() {
    let w = World::new(21);
    let (x, y, truth) = w.dataset(500, 2, 25, 22);
    let f = Features::new("train", &x, y.len(), D).unwrap();
    let ac = activation_clustering(f, &y, None, &AcConfig::default()).unwrap();
    let fs = report::ac_findings(&ac, &describe(1000));
    let class = fs.iter().find(|f| f.id == "B001").expect("class finding");
    assert_eq!(class.severity, Severity::High);
    assert!(class.message.contains("label-2"));
    let rows: Vec<u64> = fs
        .iter()
        .filter(|f| f.id == "B002")
        .map(|f| f.location.record.unwrap())
        .collect();
    assert_eq!(rows.len(), ac.flagged.len());
    assert!(rows.iter().all(|&r| truth[r as usize]));
    assert_eq!(
        fs.iter()
            .find(|f| f.id == "B002")
            .unwrap()
            .location
            .file
            .as_deref(),
        Some("train.jsonl")
    );
    let charts = report::ac_charts(&ac, &|c| format!("label-{c}"), 10);
    // Three class grids plus the small-cluster grid of the flagged class, first.
    assert_eq!(charts.len(), 4);
    assert_eq!(charts[1].id, "ac-scatter-2-minority");
    let counted: f64 = charts[1].values.iter().filter(|v| **v > 0.0).sum();
    assert_eq!(counted as usize, ac.flagged.len());
    assert!(matches!(charts[0].kind, ChartKind::Heatmap { .. }));
    let ss = spectral_signatures(f, &y, None, &SpectralConfig::default()).unwrap();
    let fs = report::spectral_findings(&ss, &describe(5));
    assert!(fs.iter().any(|f| f.id == "B003"));
    assert_eq!(fs.iter().filter(|f| f.id == "B004").count(), 5);
    let trunc = fs.iter().find(|f| f.id == "B014").expect("truncation note");
    assert!(trunc.evidence["not_listed"].as_u64().unwrap() >= 20);
    assert_eq!(report::spectral_charts(&ss, &|c| c.to_string()).len(), 1);
    // Findings are valid report content.
    let mut rep = tunegate_core::Report::new("scan", Severity::High);
    rep.findings.extend(fs);
    rep.charts.extend(charts);
    rep.finish();
    assert_eq!(rep.verdict, tunegate_core::Verdict::Fail);
    let html = tunegate_core::render::html::render(&rep, report::CHECKS);
    assert!(html.contains("ac-scatter-2-minority"));
}
