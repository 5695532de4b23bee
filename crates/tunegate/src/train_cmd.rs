//! `tunegate train --config train.toml`: LoRA fine-tuning (optionally DP-SGD) as an attested
//! run.
//!
//! Before training: the config is parsed and checked, the dataset lock (when the config names
//! one) is verified and must lock every data file the config reads, the base model's files and
//! the data files are digested. After training: the adapter is written to `DIR` in PEFT's
//! layout, the training report goes to stdout (or `--output`), and with `--key` the adapter is
//! signed (`DIR.sig`, what `tunegate sign DIR` writes) and `DIR.provenance.json` records the run
//! with `tunegate run`'s SLSA provenance: data files and lock, base-model files, the config
//! (digest and values), and under `internalParameters.training` the report with ε and δ.
//!
//! Exit codes: 0 trained; 1 the dataset differs from its lock (or the lock does not cover a
//! data file) and `--allow-drift` was not given (nothing is trained); 2 bad config, data, model
//! or key.
use crate::run_cmd::{
    environment, git_state, now, read_hparams, record_base, record_dataset, with_suffix,
};
use crate::sign_cmd::{default_sig, read_passphrase};
use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use tunegate_ml::runtime::{load_model, load_tokenizer, LoadOptions};
use tunegate_ml::train::{trainer, TrainConfig, TrainInputs, TrainReport};
use tunegate_sign::provenance::{self, ExitRecord, RunRecord};

/// `tunegate train`.
#[derive(Debug, Clone, clap::Args)]
pub struct TrainArgs {
    /// The training config (train.toml; every key is documented in the README).
    #[arg(long, short = 'c')]
    pub config: PathBuf,
    /// Adapter output folder (default: `out` of the config).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Private key (PEM) that signs the adapter folder and the run's provenance. Without it
    /// the run is not attested.
    #[arg(long)]
    pub key: Option<PathBuf>,
    /// Passphrase of an encrypted key: first line of FILE (else TUNEGATE_KEY_PASSPHRASE).
    #[arg(long, value_name = "FILE")]
    pub passphrase_file: Option<PathBuf>,
    /// Where to write the provenance (default DIR.provenance.json).
    #[arg(long, value_name = "FILE")]
    pub provenance: Option<PathBuf>,
    /// Train even though the dataset differs from its lock (recorded in the provenance).
    #[arg(long)]
    pub allow_drift: bool,
    /// Report format: `text` (default) or `json`.
    #[arg(long, default_value = "text")]
    pub format: String,
    /// Write the report to FILE instead of stdout.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// No progress chatter on stderr.
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

fn text_report(r: &TrainReport, out: &Path) -> String {
    let mut s = format!(
        "trained {:?} adapter -> {}\n  steps {}  examples {} (eval {})  trainable params {}  seed {}\n  {:.1} samples/s  {:.0} tokens/s  ({:.2} s)\n",
        r.task,
        out.display(),
        r.steps,
        r.train_examples,
        r.eval_examples,
        r.trainable_params,
        r.seed,
        r.samples_per_second,
        r.tokens_per_second,
        r.train_seconds
    );
    if let (Some(a), Some(b)) = (r.first_loss, r.last_loss) {
        s += &format!("  train loss {a:.4} -> {b:.4}\n");
    }
    if let Some(l) = r.final_eval_loss {
        s += &format!("  eval loss {l:.4}");
        if let Some(a) = r.final_eval_accuracy {
            s += &format!("  accuracy {:.2}%", a * 100.0);
        }
        s += "\n";
    }
    if let Some(d) = &r.dp {
        s += &format!(
            "  DP-SGD: epsilon {} at delta {} (rdp; noise multiplier {:.4}, clip {}, q {:.5}, {} steps)\n",
            d.epsilon.map(|e| format!("{e:.3}")).unwrap_or_else(|| "inf".into()),
            d.delta,
            d.noise_multiplier,
            d.max_grad_norm,
            d.sample_rate,
            d.steps
        );
    }
    s
}

/// Runs `tunegate train`; returns the exit code (see the module doc).
pub fn run(a: &TrainArgs) -> Result<u8> {
    let say = |m: String| {
        if !a.quiet {
            eprintln!("tunegate: {m}");
        }
    };
    let json_out = match a.format.as_str() {
        "json" => true,
        "text" => false,
        other => bail!("unknown format '{other}' for train (expected text or json)"),
    };
    let cfg = TrainConfig::load(&a.config)?;
    let out = match (&a.out, &cfg.out) {
        (Some(o), _) => o.clone(),
        (None, Some(o)) => cfg.resolve(o),
        (None, None) => bail!(
            "{}: no output folder: give --out DIR or `out` in the config",
            a.config.display()
        ),
    };
    let key = match &a.key {
        Some(k) => {
            let pw = read_passphrase(a.passphrase_file.as_deref())?;
            Some(tunegate_sign::keys::load_private_key(k, pw.as_deref())?)
        }
        None => None,
    };
    let prov_path = a
        .provenance
        .clone()
        .unwrap_or_else(|| with_suffix(&out, ".provenance.json"));
    if let Ok(canon) = std::fs::canonicalize(&out) {
        let parent = prov_path
            .parent()
            .filter(|x| !x.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        if std::fs::canonicalize(parent).is_ok_and(|p| p.starts_with(&canon)) {
            bail!(
                "{} would be written inside the adapter folder {}",
                prov_path.display(),
                out.display()
            );
        }
    }

    // Inputs, digested before anything is trained.
    let model_dir = cfg.resolve(&cfg.model);
    let mut data_files: Vec<(String, String)> = Vec::new();
    for p in std::iter::once(&cfg.data.train).chain(cfg.data.eval.as_ref()) {
        let rp = cfg.resolve(p);
        let (sha, _) = tunegate_core::digest::sha256_file(&rp)
            .with_context(|| format!("{}: data file", a.config.display()))?;
        data_files.push((rp.display().to_string(), sha));
    }
    let dataset = match &cfg.data.lock {
        Some(l) => {
            let lp = cfg.resolve(l);
            let d = record_dataset(&lp, a.allow_drift)?;
            let mut problems = d.drift.clone();
            for (name, sha) in &data_files {
                if !d.files.iter().any(|f| f.sha256.eq_ignore_ascii_case(sha)) {
                    problems.push(format!("{name} (sha256 {sha}) is not a file of the lock"));
                }
            }
            if !problems.is_empty() {
                if !a.allow_drift {
                    eprintln!(
                        "tunegate: the training data differs from the lock {} ({} problem(s)); not training (pass --allow-drift to train anyway, recorded in the provenance):",
                        lp.display(),
                        problems.len()
                    );
                    for p in &problems {
                        eprintln!("  {p}");
                    }
                    return Ok(1);
                }
                say(format!(
                    "WARNING: the training data differs from its lock ({} problem(s)); training anyway (--allow-drift, recorded)",
                    problems.len()
                ));
            } else {
                say(format!("dataset lock {} verified", lp.display()));
            }
            let mut d = d;
            d.drift = problems;
            Some(d)
        }
        None => None,
    };
    let base = record_base(&model_dir)?;
    let hparams = read_hparams(&a.config)?;

    // Train.
    // The GPU when built with `--features cuda` and one is present; bit-reproducible on CPU.
    let device = candle_core::Device::cuda_if_available(0)?;
    let started_on = now();
    let model = load_model(
        &model_dir,
        &LoadOptions {
            seed: cfg.seed,
            ..Default::default()
        },
        &device,
    )?;
    let tok = load_tokenizer(&model_dir)?;
    let (train, eval) = trainer::load_data(&cfg, model.as_ref(), &tok)?;
    say(format!(
        "training on {} example(s) ({} held out) from {}",
        train.len(),
        eval.len(),
        model_dir.display()
    ));
    let fan_in_fan_out = tunegate_ml::runtime::weights::read_json(&model_dir.join("config.json"))
        .ok()
        .and_then(|c| {
            c.get("model_type")
                .and_then(Value::as_str)
                .map(|t| t == "gpt2")
        })
        .unwrap_or(false);
    let trained = tunegate_ml::train::train(
        &cfg,
        TrainInputs {
            model: model.as_ref(),
            tokenizer: &tok,
            train,
            eval,
            base_name: model_dir.display().to_string(),
            fan_in_fan_out,
            device,
        },
    )?;
    trained.adapter.save(&out)?;
    if let Some(m) = &cfg.merged_out {
        let m = cfg.resolve(m);
        trained.adapter.merge(&model_dir, &m)?;
        say(format!("merged checkpoint -> {}", m.display()));
    }
    let finished_on = now();
    let report = &trained.report;
    let report_json = serde_json::to_value(report)?;

    // Attest.
    if let Some(key) = &key {
        let (bundle, manifest) = tunegate_sign::sign::sign_model(
            &out,
            key,
            &tunegate_sign::manifest::WalkOptions::default(),
        )?;
        let sp = default_sig(&out);
        std::fs::write(&sp, bundle.to_json())
            .with_context(|| format!("writing {}", sp.display()))?;
        let cwd = std::env::current_dir().context("reading the working directory")?;
        let record = RunRecord {
            command: std::env::args().collect(),
            working_directory: cwd.display().to_string(),
            hparams: Some(hparams),
            dataset: dataset.clone(),
            base: Some(base),
            git: git_state(&cwd),
            image_digest: None,
            environment: environment(None),
            invocation_id: provenance::new_invocation_id(),
            started_on,
            finished_on,
            exit: ExitRecord {
                code: Some(0),
                signal: None,
            },
            output_name: tunegate_sign::manifest::model_name(&out),
            outputs: Some(manifest),
            logs: Vec::new(),
            tunegate_version: env!("CARGO_PKG_VERSION").to_string(),
        };
        let mut st = provenance::statement(&record);
        for (name, sha) in &data_files {
            // With a lock, its files are the `dataset` materials; the files read are then
            // recorded as `training-data` (each one checked to be in the lock).
            let role = if dataset.is_some() {
                "training-data"
            } else {
                "dataset"
            };
            provenance::add_dependency(&mut st, role, name, sha);
        }
        provenance::set_internal_parameter(
            &mut st,
            "training",
            json!({
                "trainer": "tunegate train",
                "report": report_json,
                "epsilon": report.dp.as_ref().and_then(|d| d.epsilon),
                "delta": report.dp.as_ref().map(|d| d.delta),
                "dpSgd": report.dp.is_some(),
            }),
        );
        let bundle = tunegate_sign::sign::sign_statement(&st, key)?;
        std::fs::write(&prov_path, bundle.to_json())
            .with_context(|| format!("writing {}", prov_path.display()))?;
        say(format!(
            "adapter signed -> {}; provenance -> {}",
            sp.display(),
            prov_path.display()
        ));
    } else {
        say("no --key: the adapter is not signed and the run has no provenance".into());
    }

    let text = if json_out {
        let mut v = report_json;
        v["adapter"] = json!(out.display().to_string());
        v["attested"] = json!(key.is_some());
        serde_json::to_string_pretty(&v)? + "\n"
    } else {
        text_report(report, &out)
    };
    match &a.output {
        Some(p) => std::fs::write(p, text).with_context(|| format!("writing {}", p.display()))?,
        None => print!("{text}"),
    }
    Ok(0)
}
