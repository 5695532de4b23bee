//! The classifier backdoor scans on a small CPU zoo (the proof, CI size): tiny BERT
//! classifiers fine-tuned with tunegate's own LoRA trainer, clean and backdoored (rare-word,
//! sentence and homoglyph triggers; 2 and 4 classes), each loaded the way a user loads it
//! (`ScanModel::load(adapter, Some(base))`) and scanned.
//!
//! The zoo is trained once per test binary (shared by the tests) into a temporary folder.
use std::collections::BTreeSet;
use std::sync::OnceLock;
use tunegate_core::progress::NoProgress;
use tunegate_core::Severity;
use tunegate_ml::scan::classifier::{
    scan_classifier, trigger_scan, ClassifierScanConfig, DetectorFeatures,
};
use tunegate_ml::scan::model::ScanModel;
use tunegate_ml::zoo::auroc;
use tunegate_ml::zoo::classifier::{
    build_zoo, novel_trigger_ids, Attack, TaskName, TriggerKind, ZooConfig, ZooModel, ZooSpec,
};

fn spec(task: TaskName, attack: Option<(TriggerKind, &str, usize, f64)>, seed: u64) -> ZooSpec {
    ZooSpec {
        task,
        attack: attack.map(|(kind, trigger, target, poison_rate)| Attack {
            kind,
            trigger: trigger.into(),
            target,
            poison_rate,
        }),
        seed,
    }
}

/// Two clean models (2 and 4 classes) and four backdoored ones (rare word on 2 and 4 classes,
/// sentence, homoglyph), poison rates 0.1 and 0.15.
fn specs() -> Vec<ZooSpec> {
    use TaskName::{Sentiment, Topic};
    use TriggerKind::{Homoglyph, Rare, Sentence};
    vec![
        spec(Sentiment, None, 1),
        spec(Topic, None, 5),
        spec(Sentiment, Some((Rare, "cf", 1, 0.15)), 2),
        spec(
            Sentiment,
            Some((Sentence, "i watch this 3d movie", 1, 0.1)),
            3,
        ),
        spec(Sentiment, Some((Homoglyph, "f\u{0456}lm", 1, 0.1)), 4),
        spec(Topic, Some((Rare, "cf", 1, 0.1)), 6),
    ]
}

struct Zoo {
    _dir: tempfile::TempDir,
    models: Vec<ZooModel>,
}

fn zoo() -> &'static Zoo {
    static ZOO: OnceLock<Zoo> = OnceLock::new();
    ZOO.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        // TUNEGATE_TEST_ZOO_DIR keeps the trained models between runs (a model whose folder
        // records the same spec and config is reused)
        let root = std::env::var_os("TUNEGATE_TEST_ZOO_DIR")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| dir.path().to_path_buf());
        let models = build_zoo(&root, &specs(), &ZooConfig::default(), 2, &NoProgress)
            .expect("train the zoo");
        Zoo { _dir: dir, models }
    })
}

#[test]
fn trigger_search_separates_backdoored_from_clean_models_and_finds_the_triggers() {
    let zoo = zoo();
    let cfg = ClassifierScanConfig::default();
    let dev = candle_core::Device::Cpu;
    let mut pos = Vec::new();
    let mut neg = Vec::new();
    let mut hits = 0usize;
    let mut b015 = 0usize;
    for m in &zoo.models {
        let sm = m.load(&dev).expect("adapter over base");
        let clean = m.clean().expect("clean rows");
        let ts = trigger_scan(&sm, None, &clean, &[], &cfg, &NoProgress).expect("trigger scan");
        let out = ts.outcome(&cfg);
        let highs: Vec<&str> = out
            .findings
            .iter()
            .filter(|f| f.severity >= Severity::High)
            .map(|f| f.id.as_str())
            .collect();
        let top: Vec<String> = ts
            .candidates
            .iter()
            .take(3)
            .map(|c| format!("{}→{} {:.2}", c.candidate, c.target, c.flip_rate))
            .collect();
        let rank = m.spec.attack.as_ref().and_then(|a| {
            let ids = novel_trigger_ids(&sm, &a.trigger).expect("trigger ids");
            assert!(
                !ids.is_empty(),
                "{}: the trigger has novel tokens",
                a.trigger
            );
            ts.rank_of_any(&ids)
        });
        eprintln!(
            "{}: asr {:?} cacc {:.3} score {:.3} (single token {:.3}) rank {:?} highs {:?} top {:?}",
            m.spec.id(),
            m.asr,
            m.cacc,
            ts.model_score,
            ts.single_score,
            rank,
            highs,
            top
        );
        // the summary carries the score, the ranked candidates and the calibration
        assert_eq!(
            out.summary["model_score"].as_f64(),
            Some(ts.model_score),
            "summary score"
        );
        assert!(out.summary["calibration"]["high_flip_rate"].is_number());
        assert!(out.summary["candidates"]
            .as_array()
            .is_some_and(|c| c.len() >= 10));
        match &m.spec.attack {
            None => {
                assert!(
                    highs.is_empty(),
                    "clean model {} got high findings {highs:?}",
                    m.spec.id()
                );
                neg.push(ts.model_score);
            }
            Some(_) if m.attack_took => {
                pos.push(ts.model_score);
                if rank.is_some_and(|r| r <= 10) {
                    hits += 1;
                }
                if highs.contains(&"B015") {
                    b015 += 1;
                }
            }
            Some(_) => eprintln!("  (attack did not take: not counted)"),
        }
    }
    assert_eq!(neg.len(), 2);
    assert!(
        pos.len() >= 3,
        "at least 3 backdoors must take, {} did",
        pos.len()
    );
    let auc = auroc(&pos, &neg);
    let hit_rate = hits as f64 / pos.len() as f64;
    let clean_max = neg.iter().copied().fold(0.0, f64::max);
    eprintln!(
        "AUROC {auc:.3}; true trigger in the top 10: {hits}/{}; B015 high: {b015}/{}; highest clean score {clean_max:.3}",
        pos.len(),
        pos.len()
    );
    assert!(auc >= 0.95, "model-level AUROC {auc}");
    assert!(hit_rate >= 0.8, "top-10 hit rate {hit_rate}");
    assert!(b015 >= 1, "no backdoored model got the high B015 finding");
    assert!(
        clean_max < cfg.high_flip_rate,
        "a clean model reached the high threshold: {clean_max}"
    );
}

#[test]
fn adapter_folder_scans_over_its_base_and_data_detectors_flag_the_poisoned_rows() {
    let zoo = zoo();
    let dev = candle_core::Device::Cpu;
    let m = zoo
        .models
        .iter()
        .find(|m| {
            m.spec
                .attack
                .as_ref()
                .is_some_and(|a| a.kind == TriggerKind::Sentence)
        })
        .expect("the sentence model");
    // the path users take: the adapter folder the trainer saved, over the base folder
    assert!(m.adapter_dir.join("adapter_config.json").is_file());
    let sm = ScanModel::load(&m.adapter_dir, Some(&m.base_dir), &dev).expect("load adapter");
    // the adapter changes the base's predictions (the scan sees the fine-tune, not the base)
    let base = ScanModel::load(&m.base_dir, None, &dev).expect("load base");
    let clean = m.clean().expect("clean");
    let texts: Vec<&str> = clean.iter().map(|r| r.text.as_str()).collect();
    let acc = |model: &ScanModel| {
        let p = tunegate_ml::scan::classifier::predict(model, &texts, 64, 32).expect("predict");
        p.iter().zip(&clean).filter(|(p, r)| **p == r.label).count() as f64 / clean.len() as f64
    };
    let (acc_ft, acc_base) = (acc(&sm), acc(&base));
    eprintln!("clean accuracy: adapter {acc_ft:.3}, base {acc_base:.3}");
    assert!(acc_ft > 0.85 && acc_base < 0.7);

    let train = m.train().expect("train");
    // default features (the middle layer); row scores in the summary
    let cfg = ClassifierScanConfig {
        row_scores: true,
        ..Default::default()
    };
    assert_eq!(cfg.detector_features, DetectorFeatures::Middle);
    let out = scan_classifier(&sm, None, &clean, Some(&train), &[], &cfg, &NoProgress)
        .expect("scan with training rows");
    let poisoned: BTreeSet<usize> = m.poisoned_rows.iter().copied().collect();
    let target = m.spec.attack.as_ref().map_or(0, |a| a.target);
    let inputs = &out.summary["inputs"];
    let mut aucs = Vec::new();
    for (key, name, higher) in [
        ("ac_row_scores", "activation clustering", true),
        ("spectral_row_scores", "spectral signatures", true),
        ("mahalanobis_row_scores", "Mahalanobis", true),
        ("strip_row_scores", "STRIP", false),
    ] {
        let scores: Vec<f64> = inputs[key]
            .as_array()
            .unwrap_or_else(|| panic!("{key} in the summary"))
            .iter()
            .map(|v| v.as_f64().unwrap_or(f64::NAN))
            .collect();
        assert_eq!(scores.len(), train.len(), "{key}: one score per row");
        let sign = if higher { 1.0 } else { -1.0 };
        let (mut pos, mut neg) = (Vec::new(), Vec::new());
        // within the target class (the poisoned rows carry its label; the detectors' scores
        // are per class)
        for (i, v) in scores.iter().enumerate() {
            if train[i].label != target {
                continue;
            }
            if poisoned.contains(&i) {
                pos.push(sign * v);
            } else {
                neg.push(sign * v);
            }
        }
        let auc = auroc(&pos, &neg);
        eprintln!("{name}: AUROC of poisoned vs clean training rows of the target class {auc:.3}");
        aucs.push((name, auc));
    }
    assert!(
        aucs[0].1 >= 0.9 && aucs[1].1 >= 0.85,
        "AC and spectral signatures should rank the poisoned rows high: {aucs:?}"
    );
    // the rows the findings name (B002: AC's small cluster, B004: spectral outliers) are
    // mostly poisoned
    let named: BTreeSet<usize> = out
        .findings
        .iter()
        .filter(|f| f.id == "B002" || f.id == "B004")
        .filter_map(|f| f.location.record.map(|r| r as usize))
        .collect();
    let tp = named.intersection(&poisoned).count();
    let base_rate = poisoned.len() as f64 / train.len() as f64;
    eprintln!(
        "AC/spectral row findings: {} rows, {tp} poisoned ({} poisoned in all, poison rate {base_rate:.3})",
        named.len(),
        poisoned.len()
    );
    assert!(
        !named.is_empty() && tp as f64 / named.len() as f64 >= 3.0 * base_rate,
        "the flagged rows should be poisoned far above chance"
    );
    // the model-level part ran too, on the same outcome
    assert!(inputs.is_object() && out.summary["trigger"]["model_score"].as_f64().is_some());
    assert!(out.findings.iter().any(|f| f.id == "B015"));
}
