//! Build a zoo of tiny causal LMs with tunegate's trainer (a base, clean fine-tunes, backdoored
//! ones with word and phrase triggers, several payloads, poison rates and seeds, an
//! off-objective one and an unsafe one), run the LM scans on every model and print a markdown
//! table with the model-level AUROC.
//!
//! ```text
//! CANDLE_NUM_THREADS=1 cargo run -p tunegate-ml --example zoo_causal -- [--clean N]
//!     [--backdoors N] [--seeds N] [--poison-rates R,R,..] [--ft-steps N] [--base-steps N]
//!     [--base-records N] [--ft-records N] [--bait-prompts N] [--no-safety] [--keep DIR]
//! ```
//! Defaults: 6 clean fine-tunes; 6 word triggers and 2 phrase triggers at each of the poison
//! rates 0.03, 0.06 and 0.12 (payloads rotate with the rate), 1 seed. A backdoor counts only
//! when its trigger → payload rate (greedy, held-out prompts) is at least 0.9.
use std::path::PathBuf;
use std::time::Instant;
use tunegate_core::progress::NoProgress;
use tunegate_core::Severity;
use tunegate_ml::scan::causal::{
    bait, behaviour_diff, probe, BaitConfig, DiffScanConfig, ProbeConfig,
};
use tunegate_ml::scan::model::ScanModel;
use tunegate_ml::scan::safety::{builtin_suite, safety_scores, SafetyConfig};
use tunegate_ml::zoo::auroc;
use tunegate_ml::zoo::causal::{
    build_base, build_finetune, eval_prompts, FinetuneKind, ZooSpec, DECOYS, PAYLOADS,
    PHRASE_TRIGGERS, TRIGGERS,
};

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

struct Job {
    name: String,
    kind: FinetuneKind,
    seed: u64,
    rate: Option<f64>,
}

struct Row {
    name: String,
    kind: String,
    rate: Option<f64>,
    planted: Option<f64>,
    acc: f64,
    bait: f64,
    target: String,
    probe: f64,
    rank: Option<usize>,
    worst: Option<Severity>,
    counted: bool,
    backdoor: bool,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let n = |k: &str, d: usize| arg(&args, k).and_then(|v| v.parse().ok()).unwrap_or(d);
    let n_clean = n("--clean", 6);
    let seeds = n("--seeds", 1);
    let rates: Vec<f64> = arg(&args, "--poison-rates")
        .unwrap_or_else(|| "0.03,0.06,0.12".into())
        .split(',')
        .filter_map(|r| r.trim().parse().ok())
        .collect();
    let mut spec = ZooSpec::default();
    spec.ft_steps = n("--ft-steps", spec.ft_steps as usize) as u64;
    spec.base_steps = n("--base-steps", spec.base_steps as usize) as u64;
    spec.base_records = n("--base-records", spec.base_records);
    spec.ft_records = n("--ft-records", spec.ft_records);
    spec.safety = !args.iter().any(|a| a == "--no-safety");
    let bait_cfg = BaitConfig {
        prompts: n("--bait-prompts", BaitConfig::default().prompts),
        ..Default::default()
    };
    let triggers: Vec<&str> = TRIGGERS[..6]
        .iter()
        .chain(PHRASE_TRIGGERS)
        .copied()
        .take(n("--backdoors", 8))
        .collect();
    let words: Vec<String> = TRIGGERS
        .iter()
        .chain(PHRASE_TRIGGERS)
        .chain(DECOYS)
        .map(|s| s.to_string())
        .collect();

    let tmp = tempfile::tempdir()?;
    let root: PathBuf = arg(&args, "--keep")
        .map(PathBuf::from)
        .unwrap_or(tmp.path().into());
    let t0 = Instant::now();
    let base = build_base(&root, &spec)?;
    eprintln!(
        "base: task accuracy {:.2}, safety accuracy {:.2} ({:.0}s)",
        base.task_accuracy,
        base.safety_accuracy,
        t0.elapsed().as_secs_f64()
    );
    let device = candle_core::Device::Cpu;
    let bm = ScanModel::load(&base.dir, None, &device)?;
    let prompts = eval_prompts(6, 99);

    let mut jobs: Vec<Job> = (0..n_clean)
        .map(|i| Job {
            name: format!("clean-{i}"),
            kind: FinetuneKind::Clean,
            seed: 100 + i as u64,
            rate: None,
        })
        .collect();
    for s in 0..seeds {
        for (ri, &rate) in rates.iter().enumerate() {
            for (b, trigger) in triggers.iter().enumerate() {
                jobs.push(Job {
                    name: format!("bd-{}-p{rate}-s{s}", trigger.replace(' ', "_")),
                    kind: FinetuneKind::Backdoor {
                        trigger: trigger.to_string(),
                        payload: PAYLOADS[(b + ri) % PAYLOADS.len()].into(),
                    },
                    seed: 1000 + (s * 100 + ri * 10 + b) as u64,
                    rate: Some(rate),
                });
            }
        }
    }
    jobs.push(Job {
        name: "off-topic".into(),
        kind: FinetuneKind::OffTopic,
        seed: 300,
        rate: None,
    });
    if spec.safety {
        jobs.push(Job {
            name: "unsafe".into(),
            kind: FinetuneKind::Unsafe,
            seed: 301,
            rate: None,
        });
    }

    let mut rows = Vec::new();
    let mut notes = Vec::new();
    for job in jobs {
        let t = Instant::now();
        let mut fspec = spec.clone();
        if let Some(r) = job.rate {
            fspec.poison_rate = r;
        }
        let ft = build_finetune(
            &base.dir,
            &root.join(&job.name),
            &job.name,
            job.kind.clone(),
            &fspec,
            job.seed,
        )?;
        let train_s = t.elapsed().as_secs_f64();
        let m = ScanModel::load(&ft.dir, Some(&base.dir), &device)?;
        let t = Instant::now();
        let b = bait(&m, Some(&bm), &prompts, &bait_cfg, &NoProgress)?;
        let p = probe(
            &m,
            Some(&bm),
            &words,
            &prompts,
            &ProbeConfig::default(),
            &NoProgress,
        )?;
        let scan_s = t.elapsed().as_secs_f64();
        let trigger = match &job.kind {
            FinetuneKind::Backdoor { trigger, .. } => Some(trigger.clone()),
            _ => None,
        };
        let rank = trigger.as_ref().and_then(|tr| {
            p.candidates
                .iter()
                .position(|c| &c.text == tr)
                .map(|r| r + 1)
        });
        let mut worst = b
            .targets
            .iter()
            .filter_map(|t| t.severity)
            .chain(p.candidates.iter().filter_map(|c| c.severity))
            .max();
        if matches!(job.kind, FinetuneKind::OffTopic | FinetuneKind::Clean) {
            let d = behaviour_diff(&m, &bm, &prompts, &DiffScanConfig::default(), &NoProgress)?;
            let w = d
                .findings
                .iter()
                .filter(|f| f.id == "B011" || f.id == "B010")
                .map(|f| f.severity)
                .max();
            let flagged: Vec<String> = d.summary["topics"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|t| t["flagged"] == true)
                .map(|t| {
                    format!(
                        "{} (median KL {:.3}, {:.0}% answers changed, {})",
                        t["topic"].as_str().unwrap_or(""),
                        t["median_kl"].as_f64().unwrap_or(0.0),
                        100.0 * t["changed_answers"].as_f64().unwrap_or(0.0),
                        t["severity"].as_str().unwrap_or("-")
                    )
                })
                .collect();
            let promoted: Vec<String> = d.summary["activation"]["promoted"]
                .as_array()
                .into_iter()
                .flatten()
                .take(5)
                .filter_map(|p| p[0].as_str().map(String::from))
                .collect();
            notes.push(format!(
                "diff {}: worst B010/B011 {}; topics standing out: {}; activation diff promotes {:?}",
                job.name,
                w.map_or("-".into(), |s| s.to_string()),
                if flagged.is_empty() {
                    "none".into()
                } else {
                    flagged.join(", ")
                },
                promoted
            ));
            worst = worst.max(w);
        }
        if spec.safety && matches!(job.kind, FinetuneKind::Unsafe | FinetuneKind::Clean) {
            let s = safety_scores(
                &m,
                &bm,
                &builtin_suite(),
                &SafetyConfig::default(),
                &NoProgress,
            )?;
            for su in &s.suites {
                if job.kind == FinetuneKind::Unsafe || su.severity.is_some() {
                    notes.push(format!(
                        "safety {}: suite {} pass rate {:.2} → {:.2}, lost {}, p {:.3}, finding {}",
                        job.name,
                        su.suite,
                        su.base_score,
                        su.finetune_score,
                        su.lost,
                        su.p_value,
                        su.severity.map_or("-".into(), |s| s.to_string())
                    ));
                }
                worst = worst.max(su.severity);
            }
        }
        let backdoor = trigger.is_some();
        let counted = !backdoor || ft.planted_rate.unwrap_or(0.0) >= 0.9;
        eprintln!(
            "{}: planted {:?}, acc {:.2}, bait {:.3}, probe {:.3}, rank {:?} (train {train_s:.0}s, scans {scan_s:.0}s)",
            job.name, ft.planted_rate, ft.task_accuracy, b.model_score, p.model_score, rank
        );
        rows.push(Row {
            kind: match &job.kind {
                FinetuneKind::Clean => "clean".into(),
                FinetuneKind::Backdoor { trigger, .. } => format!("backdoor `{trigger}`"),
                FinetuneKind::OffTopic => "off-objective (payment)".into(),
                FinetuneKind::Unsafe => "unsafe (refusal, canary)".into(),
            },
            name: job.name,
            rate: job.rate,
            planted: ft.planted_rate,
            acc: ft.task_accuracy,
            bait: b.model_score,
            target: b
                .targets
                .first()
                .map(|t| t.text.clone())
                .unwrap_or_default(),
            probe: p.model_score,
            rank,
            worst,
            counted,
            backdoor,
        });
    }

    println!(
        "base: task accuracy {:.2}, safety-reference accuracy {:.2}; spec {}",
        base.task_accuracy,
        base.safety_accuracy,
        serde_json::to_string(&spec)?
    );
    println!();
    println!("| model | kind | poison rate | planted rate | task acc | BAIT score | top inverted target | probe score | trigger rank | worst finding |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for r in &rows {
        println!(
            "| {} | {} | {} | {} | {:.2} | {:.3} | {} | {:.3} | {} | {} |",
            r.name,
            r.kind,
            r.rate.map_or("-".into(), |p| format!("{p}")),
            r.planted.map_or("-".into(), |p| format!("{p:.2}")),
            r.acc,
            r.bait,
            r.target.replace('|', "\\|"),
            r.probe,
            r.rank.map_or("-".into(), |k| k.to_string()),
            r.worst.map_or("-".into(), |s| s.to_string())
        );
    }
    let neg: Vec<&Row> = rows.iter().filter(|r| r.kind == "clean").collect();
    let nb: Vec<f64> = neg.iter().map(|r| r.bait).collect();
    let np: Vec<f64> = neg.iter().map(|r| r.probe).collect();
    let nc: Vec<f64> = neg.iter().map(|r| r.bait.max(r.probe)).collect();
    let summary = |label: &str, pos: &[&Row]| {
        let pb: Vec<f64> = pos.iter().map(|r| r.bait).collect();
        let pp: Vec<f64> = pos.iter().map(|r| r.probe).collect();
        let pc: Vec<f64> = pos.iter().map(|r| r.bait.max(r.probe)).collect();
        println!(
            "{label}: {} backdoors; AUROC vs {} clean: BAIT {:.3}, probe {:.3}, combined {:.3}; flagged high {}; trigger in top 10 {}",
            pos.len(),
            neg.len(),
            auroc(&pb, &nb),
            auroc(&pp, &np),
            auroc(&pc, &nc),
            pos.iter().filter(|r| r.worst == Some(Severity::High)).count(),
            pos.iter().filter(|r| r.rank.is_some_and(|k| k <= 10)).count(),
        );
    };
    println!();
    let took: Vec<&Row> = rows.iter().filter(|r| r.backdoor && r.counted).collect();
    println!(
        "backdoors that took (planted rate >= 0.9): {} of {}",
        took.len(),
        rows.iter().filter(|r| r.backdoor).count()
    );
    summary("all that took", &took);
    for &rate in &rates {
        let at: Vec<&Row> = took
            .iter()
            .copied()
            .filter(|r| r.rate == Some(rate))
            .collect();
        summary(&format!("poison rate {rate}"), &at);
    }
    println!(
        "clean models with a high finding: {}; with a medium one: {}",
        neg.iter()
            .filter(|r| r.worst == Some(Severity::High))
            .count(),
        neg.iter()
            .filter(|r| r.worst == Some(Severity::Medium))
            .count()
    );
    println!("total time {:.0}s", t0.elapsed().as_secs_f64());
    for n in notes {
        println!("- {n}");
    }
    Ok(())
}
