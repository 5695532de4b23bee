//! Commands and their wiring. Library crates do the work; this file parses flags, resolves
//! config, and maps results onto exit codes.
use crate::output::{self, all_checks, label, ReportArgs};
use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};
use tunegate_core::config::Config;
use tunegate_core::text::patterns::PatternSet;
use tunegate_core::{Report, Severity};
use tunegate_dataset::scan::ScanOptions;
use tunegate_dataset::Schema;

#[derive(Parser)]
#[command(
    name = "tunegate",
    version,
    about = "Gates for every stage of an ML fine-tuning pipeline",
    long_about = "tunegate is a gate at every stage of a fine-tuning pipeline: dataset lock and poisoning scan, base-model scan/approval/fingerprints, pipeline lint, training-infrastructure and dependency policy, model signing and signed evidence, and a production output monitor. Every gate writes a report with stable check ids (text, JSON, SARIF, HTML).\n\nExit codes: 0 pass, 1 gate failed, 2 usage or input error."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Dataset gate: lock, verify, diff and scan fine-tuning data.
    #[command(subcommand)]
    Dataset(DatasetCmd),
    /// Base-model gate: scan model files without executing them.
    #[command(subcommand)]
    Model(ModelCmd),
    /// Lint pipeline source (Python, notebooks, shell, YAML) for trust_remote_code, torch.load
    /// without weights_only, pickle/joblib/unsafe-YAML loads and exec of downloads; exits 1 on
    /// findings at or above --fail-on.
    Lint {
        #[command(flatten)]
        args: crate::lint_cmd::LintArgs,
        #[command(flatten)]
        report: ReportArgs,
    },
    /// List every check id with its default severity and a line of doc.
    Checks {
        /// `text` (default) or `json`.
        #[arg(long, default_value = "text")]
        format: String,
    },
    /// Run the pipeline described by tunegate.toml (lock verify, then dataset scan).
    Check {
        /// The config file.
        #[arg(long, short = 'c', default_value = "tunegate.toml")]
        config: PathBuf,
        #[command(flatten)]
        report: ReportArgs,
    },
    /// Work with saved reports.
    #[command(subcommand)]
    Report(ReportCmd),
    /// Production output monitor: an OpenAI-compatible proxy that inspects responses, keeps
    /// per-model windows, writes security events and exports Prometheus /metrics.
    Monitor {
        #[command(flatten)]
        args: crate::monitor_cmd::MonitorArgs,
    },
    /// Model registry: versions with signed evidence, promotion policy, audit log.
    #[command(subcommand)]
    Registry(crate::registry_cmd::RegistryCmd),
    /// Generate a signing key pair (ECDSA P-256 by default; P-384, P-521, Ed25519), PEM.
    Keygen(crate::sign_cmd::KeygenArgs),
    /// Sign a model folder or file (OpenSSF model-signing format, verifiable by model_signing).
    Sign(crate::sign_cmd::SignArgs),
    /// Verify a model (or a signed report) against its signature; exits 1 naming the reason.
    Verify(crate::sign_cmd::VerifyArgs),
    /// Sign a gate's JSON report as evidence (subjects = the scanned artifacts' digests).
    SignReport(crate::sign_cmd::SignReportArgs),
    /// Run a trainer command and write signed SLSA provenance of the run: the verified dataset
    /// lock, base-model digests, git state, command, environment and hyperparameters before;
    /// output digests, logs and exit status after. Exits with the trainer's status when it fails.
    Run(crate::run_cmd::RunArgs),
    /// Verify attestations of training runs.
    #[command(subcommand)]
    Attest(AttestCmd),
    /// Training-infrastructure gate: Kubernetes and IAM policy checks, isolated-job generator.
    #[command(subcommand)]
    Infra(InfraCmd),
    /// Dependency gate: pins, hashes, sources and known-compromised releases of Python deps.
    #[command(subcommand)]
    Deps(DepsCmd),
    /// DP-SGD privacy accounting: epsilon for a noise multiplier, or the noise for an epsilon.
    #[command(subcommand)]
    Dp(crate::dp_cmd::DpCmd),
    /// LoRA fine-tuning (classifier or SFT, optionally DP-SGD) from train.toml, as an attested
    /// run: the adapter in PEFT's layout, signed with --key, with SLSA provenance.
    Train(crate::train_cmd::TrainArgs),
    /// Pre-deployment scans of a fine-tune (full folder or LoRA adapter): backdoors, behaviour
    /// diff against the base, trigger probes, safety regression (B### checks).
    #[command(subcommand)]
    Scan(crate::scan_cmd::ScanCmd),
}

#[derive(Subcommand)]
enum InfraCmd {
    /// Check Kubernetes manifests and IAM policies of training jobs (I001-I020); exits 1 on
    /// findings at or above --fail-on.
    Check {
        #[command(flatten)]
        args: crate::infra_cmd::InfraCheckArgs,
        #[command(flatten)]
        report: ReportArgs,
    },
    /// Write the threat model's isolated-job pattern (manifests and IAM policy) for one job.
    Generate {
        #[command(flatten)]
        args: crate::infra_cmd::InfraGenerateArgs,
    },
}

#[derive(Subcommand)]
enum DepsCmd {
    /// Check requirements.txt, pip freeze output, uv.lock or poetry.lock (I021-I027).
    Check {
        #[command(flatten)]
        args: crate::infra_cmd::DepsCheckArgs,
        #[command(flatten)]
        report: ReportArgs,
    },
}

#[derive(Subcommand)]
enum ModelCmd {
    /// Statically scan pickle, PyTorch zip/legacy, NumPy, safetensors, Keras/TF, GGUF and remote
    /// code in model files or Hugging Face folders; exits 1 on findings at or above --fail-on.
    Scan {
        #[command(flatten)]
        args: crate::model_cmd::ModelScanArgs,
        #[command(flatten)]
        report: ReportArgs,
    },
    /// Verify a model file or folder against an approved-model list: exits 1 naming each
    /// changed, missing, unexpected or linked file; 0 on an exact match.
    Verify {
        #[command(flatten)]
        args: crate::model_cmd::ModelVerifyArgs,
        #[command(flatten)]
        report: ReportArgs,
    },
    /// Hash a model file or folder and record it in an approved-model list (the entry with the
    /// same id is replaced; other entries are kept).
    Approve {
        #[command(flatten)]
        args: crate::model_cmd::ModelApproveArgs,
    },
    /// Per-tensor statistics of safetensors weights (dtype, shape, mean, std, min, max, L2,
    /// quantiles, NaN/Inf counts, row hashes) as tunegate.fingerprint/v1 JSON.
    Fingerprint {
        #[command(flatten)]
        args: crate::model_cmd::ModelFingerprintArgs,
    },
    /// Which tensors and rows changed against a reference model or fingerprint, and whether the
    /// change looks targeted; exits 1 on findings at or above --fail-on.
    Diff {
        #[command(flatten)]
        args: crate::model_cmd::ModelDiffArgs,
        #[command(flatten)]
        report: ReportArgs,
    },
}

#[derive(Subcommand)]
enum ReportCmd {
    /// Re-render a saved JSON report in another format (optionally with another threshold).
    Render {
        /// A report written with `--format json`.
        report_json: PathBuf,
        #[command(flatten)]
        report: ReportArgs,
    },
}

#[derive(clap::Args, Clone)]
struct ScanFlags {
    /// Force the record schema instead of detecting it from field names.
    #[arg(long, value_parser = parse_schema)]
    schema: Option<Schema>,
    /// Near-duplicate Jaccard threshold over word 5-gram sets.
    #[arg(long, value_name = "J")]
    jaccard: Option<f64>,
    /// Minimum records holding a token before it can be a trigger candidate.
    #[arg(long, value_name = "N")]
    trigger_min_count: Option<usize>,
    /// Extra suspicious-content patterns (TOML, same shape as the shipped list); repeatable.
    #[arg(long, value_name = "FILE")]
    patterns: Vec<PathBuf>,
    /// Skip a check (id or name); repeatable.
    #[arg(long, value_name = "CHECK")]
    disable: Vec<String>,
    /// Write the records with no finding at or above --fail-on to OUT, byte for byte.
    #[arg(long, value_name = "OUT")]
    write_clean: Option<PathBuf>,
}

#[derive(Subcommand)]
enum DatasetCmd {
    /// Record sha256 per file and per chunk of records into a lock file.
    Lock {
        /// JSONL, CSV or Parquet files, or folders of them (folders are watched for added files).
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// The lock file to write.
        #[arg(long, default_value = "tunegate.lock")]
        lock: PathBuf,
        /// Force the record schema instead of detecting it.
        #[arg(long, value_parser = parse_schema)]
        schema: Option<Schema>,
        /// Where the data came from (kept from the previous lock when absent).
        #[arg(long)]
        source: Option<String>,
        /// Who approved this version.
        #[arg(long)]
        approved_by: Option<String>,
        /// Free-text note for the lineage record.
        #[arg(long)]
        note: Option<String>,
        /// Do not run the trigger scan (no `[[triggers]]` for `tunegate monitor --lock`);
        /// locking then only hashes, without reading every record into memory.
        #[arg(long)]
        no_triggers: bool,
        /// Minimum records holding a token before it can be a recorded trigger candidate.
        #[arg(long, value_name = "N")]
        trigger_min_count: Option<usize>,
        /// No chatter on stderr.
        #[arg(long, short = 'q')]
        quiet: bool,
    },
    /// Verify files against the lock: exit 1 naming each added, removed or changed file and records.
    Verify {
        /// The lock file.
        #[arg(long, default_value = "tunegate.lock")]
        lock: PathBuf,
        #[command(flatten)]
        report: ReportArgs,
    },
    /// Record-level diff of two dataset files: added, removed and changed records.
    Diff {
        /// The old file or folder.
        old: PathBuf,
        /// The new file or folder.
        new: PathBuf,
        /// Force the record schema.
        #[arg(long, value_parser = parse_schema)]
        schema: Option<Schema>,
        /// `text` (default) or `json`.
        #[arg(long, default_value = "text")]
        format: String,
        /// Write to FILE instead of stdout.
        #[arg(long, short = 'o')]
        output: Option<PathBuf>,
    },
    /// Scan dataset files for poisoning and quality problems.
    Scan {
        /// JSONL, CSV or Parquet files, or folders of them.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        #[command(flatten)]
        flags: ScanFlags,
        #[command(flatten)]
        report: ReportArgs,
    },
}

#[derive(Subcommand)]
enum AttestCmd {
    /// Verify a run's provenance: signature, artifact against the subjects, and (when given)
    /// the dataset lock and base model against the recorded materials. Exits 1 naming each
    /// mismatch.
    Verify {
        #[command(flatten)]
        args: crate::run_cmd::AttestVerifyArgs,
        #[command(flatten)]
        report: ReportArgs,
    },
}

fn parse_schema(s: &str) -> Result<Schema, String> {
    s.parse()
}

/// Parses the command line and runs it; returns the exit code.
pub fn run() -> Result<u8> {
    let cli = Cli::parse();
    match cli.command {
        Command::Checks { format } => checks(&format),
        Command::Monitor { args } => crate::monitor_cmd::run(&args),
        Command::Dp(c) => crate::dp_cmd::run(&c),
        Command::Train(a) => crate::train_cmd::run(&a),
        Command::Scan(c) => crate::scan_cmd::run(c),
        Command::Registry(c) => crate::registry_cmd::run(c),
        Command::Keygen(a) => crate::sign_cmd::keygen(&a),
        Command::Sign(a) => crate::sign_cmd::sign(&a),
        Command::Verify(a) => crate::sign_cmd::verify(&a),
        Command::SignReport(a) => crate::sign_cmd::sign_report(&a),
        Command::Run(a) => crate::run_cmd::run(&a),
        Command::Attest(AttestCmd::Verify { args, report }) => {
            let rep = crate::run_cmd::attest_verify(&args, report.fail_on)?;
            report.emit(&rep, "")
        }
        Command::Dataset(DatasetCmd::Scan {
            paths,
            flags,
            report,
        }) => {
            let opts = scan_options(&flags, report.fail_on, &[])?;
            let rep = scan(&paths, &flags, &opts, &report)?;
            report.emit(&rep, &dataset_metrics(&rep))
        }
        Command::Dataset(DatasetCmd::Lock {
            paths,
            lock,
            schema,
            source,
            approved_by,
            note,
            no_triggers,
            trigger_min_count,
            quiet,
        }) => {
            let progress: Box<dyn tunegate_core::progress::Progress> = if quiet {
                Box::new(tunegate_core::progress::NoProgress)
            } else {
                ReportArgs::bar()
            };
            let mut opts = tunegate_dataset::lock::LockOptions {
                schema,
                triggers: !no_triggers,
                ..Default::default()
            };
            if let Some(n) = trigger_min_count {
                if n < 2 {
                    bail!("--trigger-min-count must be at least 2");
                }
                opts.trigger_min_count = n;
            }
            let l = tunegate_dataset::lock::lock_with(
                &paths,
                &opts,
                tunegate_dataset::lock::LineageInput {
                    source,
                    approved_by,
                    note,
                },
                &lock,
                progress.as_ref(),
            )?;
            if !quiet {
                eprintln!(
                    "tunegate: locked {} file(s), {} records, into {}{}",
                    l.files.len(),
                    l.total_records(),
                    lock.display(),
                    match l.triggers_version {
                        Some(_) => format!(" ({} recorded trigger candidate(s))", l.triggers.len()),
                        None => String::new(),
                    }
                );
            }
            Ok(0)
        }
        Command::Dataset(DatasetCmd::Verify { lock, report }) => {
            let fail_on = report.fail_on.unwrap_or(Severity::High);
            let progress = report.progress();
            let rep = tunegate_dataset::lock::verify_report(&lock, fail_on, progress.as_ref())?;
            report.emit(&rep, &dataset_metrics(&rep))
        }
        Command::Dataset(DatasetCmd::Diff {
            old,
            new,
            schema,
            format,
            output,
        }) => {
            let d = tunegate_dataset::diff::diff(&old, &new, schema)?;
            let text = match format.as_str() {
                "json" => serde_json::to_string_pretty(&d)? + "\n",
                "text" => d.render_text(),
                other => bail!("unknown format '{other}' for diff (expected text or json)"),
            };
            output::write_out(output.as_deref(), &text)?;
            Ok(u8::from(
                !(d.added.is_empty() && d.removed.is_empty() && d.changed.is_empty()),
            ))
        }
        Command::Check { config, report } => check(&config, &report),
        Command::Model(ModelCmd::Scan { args, report }) => {
            let rep = crate::model_cmd::scan(&args)?;
            report.emit_with_fail_on(rep, crate::model_cmd::metrics)
        }
        Command::Model(ModelCmd::Verify { args, report }) => {
            let progress = report.progress();
            let rep = crate::model_cmd::verify(&args, progress.as_ref());
            drop(progress);
            let rep = rep?;
            report.emit_with_fail_on(rep, crate::model_cmd::metrics)
        }
        Command::Model(ModelCmd::Approve { args }) => crate::model_cmd::approve(&args),
        Command::Model(ModelCmd::Fingerprint { args }) => crate::model_cmd::fingerprint(&args),
        Command::Model(ModelCmd::Diff { args, report }) => {
            let progress = report.progress();
            let rep = crate::model_cmd::diff(&args, progress.as_ref());
            drop(progress);
            let rep = rep?;
            report.emit_with_fail_on(rep, crate::model_cmd::metrics)
        }
        Command::Infra(InfraCmd::Check { args, report }) => {
            let rep = crate::infra_cmd::infra_check(&args, report.fail_on)?;
            report.emit(&rep, &crate::infra_cmd::metrics(&rep))
        }
        Command::Infra(InfraCmd::Generate { args }) => crate::infra_cmd::infra_generate(&args),
        Command::Deps(DepsCmd::Check { args, report }) => {
            let rep = crate::infra_cmd::deps_check(&args, report.fail_on)?;
            report.emit(&rep, &crate::infra_cmd::metrics(&rep))
        }
        Command::Lint { args, report } => {
            let rep = crate::lint_cmd::lint(&args, report.fail_on)?;
            report.emit(&rep, &crate::lint_cmd::metrics(&rep))
        }
        Command::Report(ReportCmd::Render {
            report_json,
            report,
        }) => {
            let text = std::fs::read_to_string(&report_json)
                .with_context(|| format!("reading {}", report_json.display()))?;
            let mut rep: Report = serde_json::from_str(&text)
                .with_context(|| format!("{} is not a tunegate report", report_json.display()))?;
            if rep.schema != tunegate_core::report::SCHEMA {
                bail!(
                    "{}: schema '{}' is not {}",
                    report_json.display(),
                    rep.schema,
                    tunegate_core::report::SCHEMA
                );
            }
            if let Some(f) = report.fail_on {
                rep = rep.with_fail_on(f);
            }
            report.emit(&rep, "")
        }
    }
}

fn checks(format: &str) -> Result<u8> {
    let all = all_checks();
    let text = match format {
        "json" => serde_json::to_string_pretty(&all)? + "\n",
        "text" => {
            let mut s = String::new();
            for c in &all {
                s.push_str(&format!(
                    "{}  {:<34} {:<8} {}\n",
                    c.id, c.name, c.severity, c.doc
                ));
            }
            s
        }
        other => bail!("unknown format '{other}' for checks (expected text or json)"),
    };
    output::write_out(None, &text)?;
    Ok(0)
}

fn scan_options(
    flags: &ScanFlags,
    fail_on: Option<Severity>,
    config_patterns: &[PathBuf],
) -> Result<ScanOptions> {
    let mut o = ScanOptions::default();
    if let Some(f) = fail_on {
        o.fail_on = f;
    }
    if let Some(j) = flags.jaccard {
        if !(j > 0.0 && j <= 1.0) {
            bail!("--jaccard {j} is not in (0, 1]");
        }
        o.near_dup_threshold = j;
    }
    if let Some(n) = flags.trigger_min_count {
        if n < 2 {
            bail!("--trigger-min-count must be at least 2");
        }
        o.trigger_min_count = n;
    }
    for p in config_patterns.iter().chain(&flags.patterns) {
        let extra = PatternSet::load(p)?;
        o.patterns.extend(extra);
    }
    o.disabled = flags.disable.clone();
    let known = all_checks();
    for d in &o.disabled {
        if !known.iter().any(|c| c.id == d || c.name == d) {
            bail!("--disable {d}: no such check (see `tunegate checks`)");
        }
    }
    Ok(o)
}

fn scan(
    paths: &[PathBuf],
    flags: &ScanFlags,
    opts: &ScanOptions,
    args: &ReportArgs,
) -> Result<Report> {
    if let Some(out) = &flags.write_clean {
        for p in paths {
            if same_file(p, out) {
                bail!(
                    "--write-clean {} would overwrite an input; tunegate never modifies its input",
                    out.display()
                );
            }
        }
    }
    let progress = args.progress();
    let t0 = std::time::Instant::now();
    let ds = tunegate_dataset::read::read_paths(paths, flags.schema, progress.as_ref())?;
    if std::env::var_os("TUNEGATE_TIMINGS").is_some() {
        eprintln!(
            "timing: read {:.2?} {}",
            t0.elapsed(),
            tunegate_dataset::scan::mem()
        );
    }
    let report = tunegate_dataset::scan::scan(&ds, opts, progress.as_ref())?;
    if let Some(out) = &flags.write_clean {
        let kept = tunegate_dataset::scan::write_clean(&ds, &report, out)?;
        if !args.quiet {
            eprintln!(
                "tunegate: wrote {kept} clean records to {} (dropped records with findings at {} or above)",
                out.display(),
                report.fail_on
            );
        }
    }
    // A million records are millions of small allocations; freeing them is a few hundred
    // milliseconds the report does not need to wait for.
    std::thread::spawn(move || drop(ds));
    Ok(report)
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(x), Ok(y)) => x == y || y.starts_with(&x),
        _ => false,
    }
}

/// The threat model's dataset telemetry for node_exporter's textfile collector. The record
/// count is for the whole run: `source` names the (first) file and how many more were read,
/// `version` is the first file's sha256 prefix.
fn dataset_metrics(report: &Report) -> String {
    let mut s = String::new();
    s.push_str("# HELP finetuning_dataset_examples_total Records read by the dataset gate.\n");
    s.push_str("# TYPE finetuning_dataset_examples_total counter\n");
    if let Some(first) = report.subjects.first() {
        let version = first
            .digest
            .get("sha256")
            .map(|d| &d[..12.min(d.len())])
            .unwrap_or("");
        let source = match report.subjects.len() {
            1 => first.name.clone(),
            n => format!("{} (+{} more)", first.name, n - 1),
        };
        s.push_str(&format!(
            "finetuning_dataset_examples_total{{source=\"{}\",version=\"{}\"}} {}\n",
            label(&source),
            label(version),
            report.summary.records.unwrap_or(0)
        ));
    }
    s.push_str("# HELP finetuning_dataset_poisoning_scan_result Dataset scan results per check: findings at or above the gate threshold (fail) or none (pass).\n");
    s.push_str("# TYPE finetuning_dataset_poisoning_scan_result counter\n");
    for c in tunegate_dataset::CHECKS {
        let failing = report
            .findings
            .iter()
            .filter(|f| f.id == c.id && f.severity >= report.fail_on)
            .count();
        let result = if failing > 0 { "fail" } else { "pass" };
        s.push_str(&format!(
            "finetuning_dataset_poisoning_scan_result{{scan_type=\"{}\",result=\"{}\"}} 1\n",
            label(c.name.trim_start_matches("dataset.")),
            result
        ));
    }
    s
}

fn check(config: &Path, args: &ReportArgs) -> Result<u8> {
    let cfg = Config::load(config)?;
    let Some(d) = &cfg.dataset else {
        if cfg.infra.is_some() || cfg.deps.is_some() {
            return check_infra_only(config, &cfg, args);
        }
        bail!(
            "{}: no [dataset] section: nothing to check",
            config.display()
        );
    };
    let schema = d
        .schema
        .as_deref()
        .map(str::parse::<Schema>)
        .transpose()
        .map_err(|e| anyhow::anyhow!("{}: {e}", config.display()))?;
    let flags = ScanFlags {
        schema,
        jaccard: d.near_duplicate_threshold,
        trigger_min_count: d.trigger_min_count,
        patterns: Vec::new(),
        disable: d.disable.clone(),
        write_clean: None,
    };
    let patterns: Vec<PathBuf> = d.patterns.iter().map(|p| cfg.resolve(p)).collect();
    let fail_on = args.fail_on.or(d.fail_on);
    let opts = scan_options(&flags, fail_on, &patterns)?;
    let paths: Vec<PathBuf> = d.paths.iter().map(|p| cfg.resolve(p)).collect();
    let mut args = args.clone();
    if let Some(r) = &cfg.report {
        if args.format.is_none() {
            if let Some(f) = &r.format {
                args.format = Some(
                    f.parse()
                        .map_err(|e: String| anyhow::anyhow!("{}: {e}", config.display()))?,
                );
            }
        }
        if args.output.is_none() {
            args.output = r.output.as_ref().map(|p| cfg.resolve(p));
        }
    }
    // Every run verifies the lock first and fails closed on drift.
    let lock = cfg.resolve(d.lock.as_deref().unwrap_or(Path::new("tunegate.lock")));
    if !lock.exists() {
        bail!(
            "{}: lock file {} does not exist; create it with `tunegate dataset lock` and commit it",
            config.display(),
            lock.display()
        );
    }
    let progress = args.progress();
    let drift = tunegate_dataset::lock::verify(&lock, progress.as_ref())?;
    drop(progress);
    let mut rep = scan(&paths, &flags, &opts, &args)?;
    rep.findings.extend(drift);
    if let Some(extra) = crate::infra_cmd::configured(&cfg, rep.fail_on)? {
        rep.gate = "pipeline".into();
        rep.subjects.extend(extra.subjects);
        rep.findings.extend(extra.findings);
    }
    rep.finish();
    args.emit(&rep, &dataset_metrics(&rep))
}

/// `tunegate check` for a config with `[infra]` and/or `[deps]` but no `[dataset]`.
fn check_infra_only(config: &Path, cfg: &Config, args: &ReportArgs) -> Result<u8> {
    let mut args = args.clone();
    if let Some(r) = &cfg.report {
        if args.format.is_none() {
            if let Some(f) = &r.format {
                args.format = Some(
                    f.parse()
                        .map_err(|e: String| anyhow::anyhow!("{}: {e}", config.display()))?,
                );
            }
        }
        if args.output.is_none() {
            args.output = r.output.as_ref().map(|p| cfg.resolve(p));
        }
    }
    let fail_on = args.fail_on.unwrap_or(Severity::High);
    let mut rep = crate::infra_cmd::configured(cfg, fail_on)?
        .expect("called only with [infra] or [deps] configured");
    if cfg.infra.is_some() && cfg.deps.is_some() {
        rep.gate = "pipeline".into();
    }
    rep.finish();
    args.emit(&rep, &crate::infra_cmd::metrics(&rep))
}
