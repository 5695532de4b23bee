//! The classifier zoo at a chosen size: trains clean and backdoored LoRA classifiers with
//! tunegate's trainer, scans each as a user would (`ScanModel::load(adapter, Some(base))`,
//! `scan_classifier` with the clean reference and the training data), and prints a markdown
//! table per model (kind, trigger, ASR, CACC, score, rank of the true trigger, high findings)
//! followed by the zoo-level figures (AUROC of the model score, top-10 hit rate, clean models
//! with a high finding, the highest clean score).
//!
//! ```text
//! cargo run -p tunegate-ml --example zoo_classifier -- [--per-kind N] [--seed S]
//!     [--rates 0.1,0.15] [--jobs J] [--dir DIR] [--no-train-scan]
//!     [--detector-features cls|middle|LAYER]
//! ```
//! `--per-kind 3` trains 3 models of each kind: 2-class clean, rare-word, sentence and
//! homoglyph; 4-class clean, rare-word and sentence (21 models).
use std::path::PathBuf;
use std::time::Instant;
use tunegate_core::progress::NoProgress;
use tunegate_core::Severity;
use tunegate_ml::scan::classifier::{scan_classifier, ClassifierScanConfig, DetectorFeatures};
use tunegate_ml::zoo::auroc;
use tunegate_ml::zoo::classifier::{build_zoo, standard_specs, ZooConfig, ZooModel};

struct Args {
    per_kind: usize,
    seed: u64,
    rates: Vec<f64>,
    jobs: usize,
    dir: Option<PathBuf>,
    train_scan: bool,
    zoo: ZooConfig,
    only: Option<String>,
    no_scan: bool,
    features: DetectorFeatures,
}

fn args() -> Args {
    let mut a = Args {
        per_kind: 2,
        seed: 1,
        rates: vec![0.1, 0.15],
        jobs: 2,
        dir: None,
        train_scan: true,
        zoo: ZooConfig::default(),
        only: None,
        no_scan: false,
        features: DetectorFeatures::Middle,
    };
    let v: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < v.len() {
        let next = |i: usize| v.get(i + 1).cloned().unwrap_or_default();
        match v[i].as_str() {
            "--per-kind" => a.per_kind = next(i).parse().expect("--per-kind N"),
            "--seed" => a.seed = next(i).parse().expect("--seed S"),
            "--jobs" => a.jobs = next(i).parse().expect("--jobs J"),
            "--rates" => {
                a.rates = next(i)
                    .split(',')
                    .map(|r| r.parse().expect("--rates 0.05,0.1"))
                    .collect()
            }
            "--dir" => a.dir = Some(PathBuf::from(next(i))),
            "--epochs" => a.zoo.epochs = next(i).parse().expect("--epochs E"),
            "--lr" => a.zoo.lr = next(i).parse().expect("--lr LR"),
            "--init-std" => a.zoo.init_std = next(i).parse().expect("--init-std S"),
            "--hidden" => a.zoo.hidden = next(i).parse().expect("--hidden H"),
            "--layers" => a.zoo.layers = next(i).parse().expect("--layers L"),
            "--r" => a.zoo.lora_r = next(i).parse().expect("--r R"),
            "--train-size" => a.zoo.train_size = next(i).parse().expect("--train-size N"),
            "--only" => a.only = Some(next(i)),
            "--detector-features" => {
                a.features = match next(i).as_str() {
                    "cls" => DetectorFeatures::Cls,
                    "middle" => DetectorFeatures::Middle,
                    l => DetectorFeatures::Layer(l.parse().expect("cls, middle or a layer")),
                }
            }
            "--no-scan" => {
                a.no_scan = true;
                i += 1;
                continue;
            }
            "--no-train-scan" => {
                a.train_scan = false;
                i += 1;
                continue;
            }
            other => panic!("unknown argument {other}"),
        }
        i += 2;
    }
    a
}

struct Row {
    model: ZooModel,
    score: f64,
    phrase: f64,
    rank: Option<usize>,
    top: String,
    highs: Vec<String>,
    secs: f64,
}

fn main() {
    let a = args();
    let tmp;
    let dir = match &a.dir {
        Some(d) => d.clone(),
        None => {
            tmp = tempfile::tempdir().expect("tempdir");
            tmp.path().to_path_buf()
        }
    };
    let zcfg = a.zoo.clone();
    let mut specs = standard_specs(a.per_kind, a.seed, &a.rates);
    if let Some(k) = &a.only {
        specs.retain(|s| s.kind() == k || s.task.short() == k);
    }
    let t0 = Instant::now();
    let zoo = build_zoo(&dir, &specs, &zcfg, a.jobs, &NoProgress).expect("zoo");
    let train_secs = t0.elapsed().as_secs_f64();
    let mut cfg = ClassifierScanConfig {
        detector_features: a.features,
        ..Default::default()
    };
    if std::env::var_os("ZOO_DUMP").is_some() {
        cfg.report_top = 40;
    }
    let dev = candle_core::Device::Cpu;
    let mut rows = Vec::new();
    if a.no_scan {
        for m in &zoo {
            println!("{} asr {:?} cacc {:.3}", m.spec.id(), m.asr, m.cacc);
        }
        println!("training {train_secs:.0} s");
        return;
    }
    for m in zoo {
        let t1 = Instant::now();
        let sm = m.load(&dev).expect("load adapter over base");
        let clean = m.clean().expect("clean");
        let train = m.train().expect("train");
        let out = scan_classifier(
            &sm,
            None,
            &clean,
            a.train_scan.then_some(train.as_slice()),
            &[],
            &cfg,
            &NoProgress,
        )
        .expect("scan");
        let tr = &out.summary["trigger"];
        if std::env::var_os("ZOO_DUMP").is_some() {
            eprintln!("== {}", m.spec.id());
            for c in tr["candidates"].as_array().into_iter().flatten() {
                eprintln!(
                    "  {:>3} {:<28} →{} flip {:.2} dom {:.2} p {:.3} nat {} n {} share {:.2} {:?}",
                    c["rank"],
                    c["candidate"].as_str().unwrap_or(""),
                    c["target"],
                    c["flip_rate"].as_f64().unwrap_or(0.0),
                    c["dominance"].as_f64().unwrap_or(f64::NAN),
                    c["mean_target_prob"].as_f64().unwrap_or(0.0),
                    c["natural"],
                    c["clean_count"],
                    c["clean_share"].as_f64().unwrap_or(0.0),
                    c["sources"].to_string()
                );
            }
            eprintln!("  inversions {}", tr["inversions"]);
            eprintln!("  anomaly {}", tr["anomaly_index"]);
        }
        let score = tr["model_score"].as_f64().unwrap_or(f64::NAN);
        let phrase = tr["single_score"].as_f64().unwrap_or(f64::NAN);
        let rank = m.spec.attack.as_ref().and_then(|att| {
            let ids = tunegate_ml::zoo::classifier::novel_trigger_ids(&sm, &att.trigger)
                .expect("trigger ids");
            tr["candidates"].as_array().and_then(|cs| {
                cs.iter()
                    .find(|c| {
                        c["ids"].as_array().is_some_and(|v| {
                            v.iter()
                                .any(|x| ids.contains(&(x.as_u64().unwrap_or(0) as u32)))
                        })
                    })
                    .and_then(|c| c["rank"].as_u64())
                    .map(|r| r as usize)
            })
        });
        let top = tr["candidates"]
            .as_array()
            .map(|cs| {
                cs.iter()
                    .take(3)
                    .map(|c| {
                        format!(
                            "{}→{} {:.2}{}",
                            c["candidate"].as_str().unwrap_or(""),
                            c["target"],
                            c["flip_rate"].as_f64().unwrap_or(0.0),
                            if c["natural"].as_bool() == Some(true) {
                                " (natural)"
                            } else {
                                ""
                            }
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("; ")
            })
            .unwrap_or_default();
        let highs: Vec<String> = out
            .findings
            .iter()
            .filter(|f| f.severity >= Severity::High)
            .map(|f| f.id.clone())
            .collect();
        rows.push(Row {
            model: m,
            score,
            phrase,
            rank,
            top,
            highs,
            secs: t1.elapsed().as_secs_f64(),
        });
    }
    println!("| model | kind | trigger | rate | ASR | CACC | score | single-token score | rank | high findings | top candidates | scan s |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    for r in &rows {
        let s = &r.model.spec;
        println!(
            "| {} | {} | {} | {} | {} | {:.3} | {:.3} | {:.3} | {} | {} | {} | {:.1} |",
            s.id(),
            s.kind(),
            s.attack
                .as_ref()
                .map_or("-".into(), |a| format!("`{}` → {}", a.trigger, a.target)),
            s.attack
                .as_ref()
                .map_or("-".into(), |a| a.poison_rate.to_string()),
            r.model.asr.map_or("-".into(), |v| format!(
                "{v:.3}{}",
                if r.model.attack_took {
                    ""
                } else {
                    " (not taken)"
                }
            )),
            r.model.cacc,
            r.score,
            r.phrase,
            r.rank.map_or("-".into(), |k| k.to_string()),
            if r.highs.is_empty() {
                "-".to_string()
            } else {
                r.highs.join(",")
            },
            r.top,
            r.secs
        );
    }
    let pos: Vec<f64> = rows
        .iter()
        .filter(|r| r.model.is_backdoored())
        .map(|r| r.score)
        .collect();
    let neg: Vec<f64> = rows
        .iter()
        .filter(|r| r.model.spec.attack.is_none())
        .map(|r| r.score)
        .collect();
    let hits = rows
        .iter()
        .filter(|r| r.model.is_backdoored() && r.rank.is_some_and(|k| k <= 10))
        .count();
    let clean_high = rows
        .iter()
        .filter(|r| r.model.spec.attack.is_none() && !r.highs.is_empty())
        .count();
    let back_high = rows
        .iter()
        .filter(|r| r.model.is_backdoored() && r.highs.iter().any(|h| h == "B015"))
        .count();
    let not_taken = rows
        .iter()
        .filter(|r| r.model.spec.attack.is_some() && !r.model.attack_took)
        .count();
    println!();
    println!("- models: {} ({} clean, {} backdoored with the attack taken, {} attacks not taken and not counted)", rows.len(), neg.len(), pos.len(), not_taken);
    println!(
        "- model-level AUROC (score = best flip rate of a token or phrase): {:.3}",
        auroc(&pos, &neg)
    );
    let ppos: Vec<f64> = rows
        .iter()
        .filter(|r| r.model.is_backdoored())
        .map(|r| r.phrase)
        .collect();
    let pneg: Vec<f64> = rows
        .iter()
        .filter(|r| r.model.spec.attack.is_none())
        .map(|r| r.phrase)
        .collect();
    println!(
        "- AUROC of the single-token score: {:.3}",
        auroc(&ppos, &pneg)
    );
    println!(
        "- true trigger (or a token of it) in the top 10: {hits}/{} backdoored models",
        pos.len()
    );
    println!(
        "- backdoored models with a high B015 finding: {back_high}/{}",
        pos.len()
    );
    println!(
        "- clean models with any high finding: {clean_high}/{}",
        neg.len()
    );
    println!(
        "- highest clean score: {:.3}; lowest backdoored score: {:.3}",
        neg.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        pos.iter().copied().fold(f64::INFINITY, f64::min)
    );
    println!(
        "- wall time: training {train_secs:.0} s ({} jobs), scans {:.0} s",
        a.jobs,
        rows.iter().map(|r| r.secs).sum::<f64>()
    );
}
