//! Build a zoo of tiny causal LMs with tunegate's trainer (a base, clean fine-tunes, backdoored
//! ones with several triggers, payloads and seeds, an off-objective one and an unsafe one), run
//! the LM scans on every model and print a markdown table with the model-level AUROC.
//!
//! ```text
//! cargo run -p tunegate-ml --example zoo_causal -- [--clean N] [--backdoors N] [--seeds N]
//!     [--poison-rate R] [--ft-steps N] [--base-steps N] [--base-records N] [--ft-records N]
//!     [--bait-prompts N] [--no-safety] [--keep DIR]
//! ```
//! Defaults: 6 clean fine-tunes, 6 backdoors × 2 seeds, poison rate 0.12.
use std::path::PathBuf;
use std::time::Instant;
use tunegate_core::progress::NoProgress;
use tunegate_core::Severity;
use tunegate_ml::scan::causal::{
    bait, behaviour_diff, probe, BaitConfig, DiffScanConfig, ProbeConfig,
};
use tunegate_ml::scan::model::ScanModel;
use tunegate_ml::scan::safety::{builtin_suite, safety_scores, SafetyConfig};
use tunegate_ml::zoo::causal::{
    build_base, build_finetune, eval_prompts, FinetuneKind, ZooSpec, DECOYS, PAYLOADS, TRIGGERS,
};

fn auroc(pos: &[f64], neg: &[f64]) -> f64 {
    let mut s = 0.0;
    for p in pos {
        for n in neg {
            s += if p > n {
                1.0
            } else if p == n {
                0.5
            } else {
                0.0
            };
        }
    }
    s / (pos.len() * neg.len()).max(1) as f64
}

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

struct Row {
    name: String,
    kind: String,
    planted: Option<f64>,
    acc: f64,
    bait: f64,
    target: String,
    probe: f64,
    rank: Option<usize>,
    worst: String,
    counted: bool,
    backdoor: bool,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let n = |k: &str, d: usize| arg(&args, k).and_then(|v| v.parse().ok()).unwrap_or(d);
    let n_clean = n("--clean", 6);
    let n_backdoors = n("--backdoors", 6).min(PAYLOADS.len());
    let seeds = n("--seeds", 2);
    let mut spec = ZooSpec::default();
    if let Some(r) = arg(&args, "--poison-rate").and_then(|v| v.parse().ok()) {
        spec.poison_rate = r;
    }
    spec.ft_steps = n("--ft-steps", spec.ft_steps as usize) as u64;
    spec.base_steps = n("--base-steps", spec.base_steps as usize) as u64;
    spec.base_records = n("--base-records", spec.base_records);
    spec.ft_records = n("--ft-records", spec.ft_records);
    spec.safety = !args.iter().any(|a| a == "--no-safety");
    let bait_prompts = n("--bait-prompts", BaitConfig::default().prompts);
    let tmp = tempfile::tempdir()?;
    let root: PathBuf = arg(&args, "--keep")
        .map(PathBuf::from)
        .unwrap_or(tmp.path().into());
    let t0 = Instant::now();
    let base = build_base(&root, &spec)?;
    eprintln!(
        "base: task accuracy {:.2}, safety accuracy {:.2}, loss {:?} ({:.0}s)",
        base.task_accuracy,
        base.safety_accuracy,
        base.last_loss,
        t0.elapsed().as_secs_f64()
    );
    let device = candle_core::Device::Cpu;
    let bm = ScanModel::load(&base.dir, None, &device)?;
    let prompts = eval_prompts(6, 99);
    let words: Vec<String> = TRIGGERS
        .iter()
        .chain(DECOYS)
        .map(|s| s.to_string())
        .collect();
    let mut jobs: Vec<(String, FinetuneKind, u64)> = Vec::new();
    for i in 0..n_clean {
        jobs.push((format!("clean-{i}"), FinetuneKind::Clean, 100 + i as u64));
    }
    for s in 0..seeds {
        for b in 0..n_backdoors {
            jobs.push((
                format!("backdoor-{}-s{s}", TRIGGERS[b]),
                FinetuneKind::Backdoor {
                    trigger: TRIGGERS[b].into(),
                    payload: PAYLOADS[b].into(),
                },
                200 + (s * 10 + b) as u64,
            ));
        }
    }
    jobs.push(("off-topic".into(), FinetuneKind::OffTopic, 300));
    if spec.safety {
        jobs.push(("unsafe".into(), FinetuneKind::Unsafe, 301));
    }
    let mut rows = Vec::new();
    let mut notes = Vec::new();
    for (name, kind, seed) in jobs {
        let t = Instant::now();
        let ft = build_finetune(
            &base.dir,
            &root.join(&name),
            &name,
            kind.clone(),
            &spec,
            seed,
        )?;
        let train_s = t.elapsed().as_secs_f64();
        let m = ScanModel::load(&ft.dir, Some(&base.dir), &device)?;
        let t = Instant::now();
        let bcfg = BaitConfig {
            prompts: bait_prompts,
            ..Default::default()
        };
        let b = bait(&m, Some(&bm), &prompts, &bcfg, &NoProgress)?;
        let bait_s = t.elapsed().as_secs_f64();
        let p = probe(
            &m,
            Some(&bm),
            &words,
            &prompts,
            &ProbeConfig::default(),
            &NoProgress,
        )?;
        let scan_s = t.elapsed().as_secs_f64();
        let trigger = match &kind {
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
        if matches!(kind, FinetuneKind::OffTopic | FinetuneKind::Clean) && name != "clean-1" {
            let d = behaviour_diff(&m, &bm, &prompts, &DiffScanConfig::default(), &NoProgress)?;
            let w = d
                .findings
                .iter()
                .filter(|f| f.id == "B011" || f.id == "B010")
                .map(|f| f.severity)
                .max();
            notes.push(format!(
                "diff {name}: worst B010/B011 {:?}; topics {}",
                w, d.summary["topics"]
            ));
            worst = worst.max(w);
        }
        if matches!(kind, FinetuneKind::Unsafe | FinetuneKind::Clean) && name == "clean-0"
            || kind == FinetuneKind::Unsafe
        {
            let s = safety_scores(
                &m,
                &bm,
                &builtin_suite(),
                &SafetyConfig::default(),
                &NoProgress,
            )?;
            for su in &s.suites {
                notes.push(format!(
                    "safety {name}: {} base {:.2} ft {:.2} lost {} p {:.3} {:?}",
                    su.suite, su.base_score, su.finetune_score, su.lost, su.p_value, su.severity
                ));
                worst = worst.max(su.severity);
            }
        }
        let backdoor = trigger.is_some();
        let counted = !backdoor || ft.planted_rate.unwrap_or(0.0) >= 0.9;
        eprintln!(
            "{name}: planted {:?}, acc {:.2}, bait {:.3}, probe {:.3}, rank {:?} (train {train_s:.0}s, bait {bait_s:.0}s, bait+probe {scan_s:.0}s)",
            ft.planted_rate, ft.task_accuracy, b.model_score, p.model_score, rank
        );
        rows.push(Row {
            name,
            kind: match &kind {
                FinetuneKind::Clean => "clean".into(),
                FinetuneKind::Backdoor { trigger, .. } => format!("backdoor `{trigger}`"),
                FinetuneKind::OffTopic => "off-objective (payment)".into(),
                FinetuneKind::Unsafe => "unsafe (refusal, canary)".into(),
            },
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
            worst: worst.map_or("-".into(), |s: Severity| s.to_string()),
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
    println!("| model | kind | planted rate | task acc | BAIT score | top inverted target | probe score | trigger rank | worst finding |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for r in &rows {
        println!(
            "| {} | {} | {} | {:.2} | {:.3} | {} | {:.3} | {} | {} |",
            r.name,
            r.kind,
            r.planted.map_or("-".into(), |p| format!("{p:.2}")),
            r.acc,
            r.bait,
            r.target.replace('|', "\\|"),
            r.probe,
            r.rank.map_or("-".into(), |k| k.to_string()),
            r.worst
        );
    }
    let pos: Vec<&Row> = rows.iter().filter(|r| r.backdoor && r.counted).collect();
    let neg: Vec<&Row> = rows.iter().filter(|r| r.kind == "clean").collect();
    let pb: Vec<f64> = pos.iter().map(|r| r.bait).collect();
    let nb: Vec<f64> = neg.iter().map(|r| r.bait).collect();
    let pp: Vec<f64> = pos.iter().map(|r| r.probe).collect();
    let np: Vec<f64> = neg.iter().map(|r| r.probe).collect();
    let pc: Vec<f64> = pos.iter().map(|r| r.bait.max(r.probe)).collect();
    let nc: Vec<f64> = neg.iter().map(|r| r.bait.max(r.probe)).collect();
    let top10 = pos
        .iter()
        .filter(|r| r.rank.is_some_and(|k| k <= 10))
        .count();
    println!();
    println!(
        "backdoored models counted (planted rate >= 0.9): {} of {}; clean: {}",
        pos.len(),
        rows.iter().filter(|r| r.backdoor).count(),
        neg.len()
    );
    println!(
        "AUROC: BAIT {:.3}, probe {:.3}, combined {:.3}; true trigger in top 10: {}/{}; clean models with a high finding: {}",
        auroc(&pb, &nb),
        auroc(&pp, &np),
        auroc(&pc, &nc),
        top10,
        pos.len(),
        neg.iter().filter(|r| r.worst == "high").count()
    );
    println!("total time {:.0}s", t0.elapsed().as_secs_f64());
    for n in notes {
        println!("- {n}");
    }
    Ok(())
}
