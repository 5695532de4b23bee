//! `tunegate scan backdoor | diff | probe | safety`: the pre-deployment gate. Each command loads
//! the model to scan (a Hugging Face folder, or a PEFT LoRA adapter over its base), runs the
//! scans of `tunegate_ml::scan` that fit its task (classifier or causal LM), and writes a report
//! in the shared schema whose subjects are the scanned model's files, so the signed report is
//! evidence about exactly that version for the registry (`backdoor` and `safety` evidence kinds).
//!
//! Gate names: `backdoor` (scan backdoor), `backdoor-probe` (scan probe), `behaviour-diff` (scan
//! diff) and `safety` (scan safety). The digests of every other input (base model, clean data,
//! prompts, candidate lists) are recorded in the report's `B060` inputs finding.
use crate::output::ReportArgs;
use anyhow::{bail, Context, Result};
use serde::Deserialize;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use tunegate_core::{Finding, Location, Report, Severity, Subject};
use tunegate_ml::runtime::Task;
use tunegate_ml::scan::causal::{self, DiffScanConfig, LmBackdoorConfig};
use tunegate_ml::scan::classifier::{self, ClassifierScanConfig};
use tunegate_ml::scan::model::{
    read_candidates, read_labeled, read_prompts, LabeledText, Prompt, ScanModel, ScanOutcome,
};
use tunegate_ml::scan::safety::{self, SafetyConfig};

tunegate_core::declare_checks! {
    SCAN_INPUTS = "B060", "scan.inputs", Info,
        "What a scan ran on: the scanned model's task, the digest of every other input (base model, clean or training data, prompts, candidate triggers, config, suites) and the scans' summary.";
}

/// Every scan check (`B###`), for `tunegate checks`.
pub fn checks() -> Vec<tunegate_core::CheckInfo> {
    let mut v: Vec<tunegate_core::CheckInfo> = tunegate_ml::scan::report::CHECKS.to_vec();
    v.extend_from_slice(CHECKS);
    v.extend_from_slice(classifier::CHECKS);
    v.extend_from_slice(causal::CHECKS);
    v.extend_from_slice(safety::CHECKS);
    v.sort_by_key(|c| c.id);
    v
}

/// The scan gate's commands.
#[derive(Debug, clap::Subcommand)]
pub enum ScanCmd {
    /// Scan a fine-tune for backdoors. Classifiers: a trigger search over the vocabulary
    /// (first-order pruning, exact flip rates, phrases, soft-trigger inversion with the Neural
    /// Cleanse anomaly index for 3+ classes) on --clean inputs, and with --train Activation
    /// Clustering, spectral signatures, Mahalanobis and STRIP over the training rows. Causal
    /// LMs: target inversion (BAIT), embedding drift and an activation diff against --base.
    Backdoor {
        #[command(flatten)]
        args: BackdoorArgs,
        #[command(flatten)]
        report: ReportArgs,
    },
    /// Compare a causal-LM fine-tune's behaviour with its base on a prompt suite: per-prompt
    /// divergence, outputs, topics that diverge far more than the rest (off-objective change).
    Diff {
        #[command(flatten)]
        args: DiffArgs,
        #[command(flatten)]
        report: ReportArgs,
    },
    /// Probe a model with candidate triggers (a dataset report's D004 candidates, a dataset
    /// lock's recorded triggers, or a words file): flip rates (classifiers) or output change and
    /// payloads (causal LMs), against the base when given.
    Probe {
        #[command(flatten)]
        args: ProbeArgs,
        #[command(flatten)]
        report: ReportArgs,
    },
    /// Safety regression of a causal-LM fine-tune against its base: refusals, canary leakage,
    /// prompt injection, insecure code (built-in suites and your own JSONL suites).
    Safety {
        #[command(flatten)]
        args: SafetyArgs,
        #[command(flatten)]
        report: ReportArgs,
    },
}

/// What every scan command takes besides its own inputs.
#[derive(Debug, Clone, clap::Args)]
pub struct ModelArgs {
    /// The model to scan: a Hugging Face folder, or a PEFT LoRA adapter folder (loaded onto
    /// --base, else onto the local folder its adapter_config.json names).
    #[arg(value_name = "MODEL")]
    pub model: PathBuf,
    /// The base model: what the fine-tune is compared with, and what an adapter is loaded onto.
    #[arg(long, value_name = "DIR")]
    pub base: Option<PathBuf>,
    /// Scan settings (TOML with `[classifier]`, `[lm]` and `[safety]` tables; every key and
    /// default is in the README). Unknown keys are errors.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// `tunegate scan backdoor`.
#[derive(Debug, Clone, clap::Args)]
pub struct BackdoorArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Clean labelled inputs (`{"text", "label"}` JSONL) for a classifier: the trigger search
    /// inserts candidates into them, and they calibrate the training-data detectors. For a
    /// causal LM: benign prompts (JSONL with `prompt`; a built-in set when omitted).
    #[arg(long, value_name = "FILE")]
    pub clean: Option<PathBuf>,
    /// The training data (`{"text", "label"}` JSONL) whose activations are clustered per class
    /// (classifiers).
    #[arg(long, value_name = "FILE")]
    pub train: Option<PathBuf>,
    /// Extra candidate triggers (dataset report JSON, dataset lock, or one per line).
    #[arg(long, value_name = "FILE")]
    pub triggers: Option<PathBuf>,
}

/// `tunegate scan diff`.
#[derive(Debug, Clone, clap::Args)]
pub struct DiffArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// The prompt suite (JSONL: `prompt` or `instruction`/`input` or `messages`, optional
    /// `topic`).
    #[arg(long, value_name = "FILE")]
    pub prompts: PathBuf,
}

/// `tunegate scan probe`.
#[derive(Debug, Clone, clap::Args)]
pub struct ProbeArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Candidate triggers: a dataset report (JSON), a dataset lock, or one candidate per line.
    #[arg(long, value_name = "FILE")]
    pub triggers: PathBuf,
    /// Classifiers: clean labelled inputs the candidates are inserted into (required). Causal
    /// LMs: benign prompts (a built-in set when omitted).
    #[arg(long, value_name = "FILE")]
    pub clean: Option<PathBuf>,
}

/// `tunegate scan safety`.
#[derive(Debug, Clone, clap::Args)]
pub struct SafetyArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Suites to run: `builtin` (default) or a JSONL suite file; repeatable.
    #[arg(long, value_name = "builtin|FILE")]
    pub suite: Vec<String>,
}

/// `--config` of the scans: one table per scan family.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScanConfig {
    /// `scan backdoor` and `scan probe` on classifiers.
    #[serde(default)]
    classifier: ClassifierScanConfig,
    /// `scan backdoor` and `scan probe` on causal LMs (`[lm.bait]`, `[lm.probe]`).
    #[serde(default)]
    lm: LmBackdoorConfig,
    /// `scan diff`.
    #[serde(default)]
    diff: DiffScanConfig,
    /// `scan safety`.
    #[serde(default)]
    safety: SafetyConfig,
}

/// Largest scan config read (bytes).
const MAX_CONFIG_BYTES: u64 = 1 << 20;

fn load_config(path: Option<&Path>) -> Result<ScanConfig> {
    let Some(p) = path else {
        return Ok(ScanConfig::default());
    };
    let meta = std::fs::metadata(p).with_context(|| format!("{}: scan config", p.display()))?;
    if meta.len() > MAX_CONFIG_BYTES {
        bail!("{}: scan config over the 1 MiB limit", p.display());
    }
    let text =
        std::fs::read_to_string(p).with_context(|| format!("{}: scan config", p.display()))?;
    toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))
}

/// The models of one command: the one scanned and, when given, the base loaded alone.
struct Loaded {
    model: ScanModel,
    base: Option<ScanModel>,
    subjects: Vec<Subject>,
    inputs: Vec<Value>,
}

fn device() -> Result<candle_core::Device> {
    // The GPU when built with `--features cuda` and one is present; the CPU otherwise.
    Ok(candle_core::Device::cuda_if_available(0)?)
}

fn digest_input(inputs: &mut Vec<Value>, role: &str, path: &Path) -> Result<()> {
    if path.is_dir() {
        let tree = tunegate_artifact::hash::hash_tree(path, &Default::default())
            .with_context(|| format!("{}: {role}", path.display()))?;
        inputs.push(json!({"role": role, "name": path.display().to_string(),
            "folder_sha256": tree.folder_digest()}));
    } else {
        let (sha, _) = tunegate_core::digest::sha256_file(path)
            .with_context(|| format!("{}: {role}", path.display()))?;
        inputs.push(json!({"role": role, "name": path.display().to_string(), "sha256": sha}));
    }
    Ok(())
}

fn load(a: &ModelArgs, say: &dyn Fn(String)) -> Result<Loaded> {
    let dev = device()?;
    // Subjects: the scanned folder's files, digested before anything reads them as a model.
    let tree = tunegate_artifact::hash::hash_tree(&a.model, &Default::default())
        .with_context(|| format!("{}: model to scan", a.model.display()))?;
    let subjects: Vec<Subject> = tree
        .files
        .iter()
        .map(|f| Subject::sha256(a.model.join(&f.path).display().to_string(), &f.sha256))
        .collect();
    if subjects.is_empty() {
        bail!("{}: no files to scan", a.model.display());
    }
    say(format!("loading {}", a.model.display()));
    let model = ScanModel::load(&a.model, a.base.as_deref(), &dev)?;
    let mut inputs = Vec::new();
    if let Some(b) = &model.base_path {
        digest_input(&mut inputs, "adapter-base", b)?;
    }
    let base = match &a.base {
        Some(b) => {
            say(format!("loading base {}", b.display()));
            digest_input(&mut inputs, "base", b)?;
            Some(ScanModel::load(b, None, &dev)?)
        }
        None => None,
    };
    if let Some(c) = &a.config {
        digest_input(&mut inputs, "config", c)?;
    }
    Ok(Loaded {
        model,
        base,
        subjects,
        inputs,
    })
}

fn labeled(path: &Path, inputs: &mut Vec<Value>, role: &str) -> Result<Vec<LabeledText>> {
    digest_input(inputs, role, path)?;
    Ok(read_labeled(path, 0)?)
}

/// The report of a scan: subjects, the outcome's findings and charts, and one `B060` finding
/// with the inputs' digests and the outcome's summary.
fn report(gate: &str, l: &Loaded, out: ScanOutcome, records: u64, what: &str) -> Report {
    let mut r = Report::new(gate, Severity::High);
    r.subjects = l.subjects.clone();
    r.findings = out.findings;
    r.charts = out.charts;
    r.findings.push(
        Finding::new(
            &SCAN_INPUTS,
            format!(
                "{what} of {} ({}): {} finding(s)",
                l.model.path.display(),
                match l.model.task() {
                    Task::Classify(n) => format!("classifier, {n} classes"),
                    Task::CausalLm(v) => format!("causal LM, vocabulary {v}"),
                },
                r.findings.len()
            ),
            Location::default(),
        )
        .evidence(json!({"inputs": l.inputs, "summary": out.summary})),
    );
    r.summary.records = Some(records);
    r.finish();
    r
}

/// Runs `tunegate scan …`; returns the exit code.
pub fn run(cmd: ScanCmd) -> Result<u8> {
    match cmd {
        ScanCmd::Backdoor { args, report: ra } => {
            let rep = backdoor(&args, &ra)?;
            ra.emit_with_fail_on(rep, metrics)
        }
        ScanCmd::Probe { args, report: ra } => {
            let rep = probe(&args, &ra)?;
            ra.emit_with_fail_on(rep, metrics)
        }
        ScanCmd::Diff { args, report: ra } => {
            let rep = diff(&args, &ra)?;
            ra.emit_with_fail_on(rep, metrics)
        }
        ScanCmd::Safety { args, report: ra } => {
            let rep = safety(&args, &ra)?;
            ra.emit_with_fail_on(rep, metrics)
        }
    }
}

fn sayer(ra: &ReportArgs) -> impl Fn(String) {
    let quiet = ra.quiet;
    move |m: String| {
        if !quiet {
            eprintln!("tunegate: {m}");
        }
    }
}

fn backdoor(a: &BackdoorArgs, ra: &ReportArgs) -> Result<Report> {
    let say = sayer(ra);
    let cfg = load_config(a.model.config.as_deref())?;
    let mut l = load(&a.model, &say)?;
    let candidates = match &a.triggers {
        Some(t) => {
            digest_input(&mut l.inputs, "triggers", t)?;
            read_candidates(t)?
        }
        None => Vec::new(),
    };
    let progress = ra.progress();
    let (out, records) = match l.model.task() {
        Task::Classify(_) => {
            let clean_path = a.clean.as_deref().context(
                "scan backdoor on a classifier needs --clean FILE (clean labelled inputs)",
            )?;
            let clean = labeled(clean_path, &mut l.inputs, "clean")?;
            let train = match &a.train {
                Some(t) => Some(labeled(t, &mut l.inputs, "train")?),
                None => None,
            };
            let n = train.as_ref().map_or(clean.len(), Vec::len) as u64;
            let out = classifier::scan_classifier(
                &l.model,
                l.base.as_ref(),
                &clean,
                train.as_deref(),
                &candidates,
                &cfg.classifier,
                progress.as_ref(),
            )?;
            (out, n)
        }
        Task::CausalLm(_) => {
            if a.train.is_some() {
                bail!("--train is for classifiers; a causal LM is scanned with --clean prompts");
            }
            let prompts = lm_prompts(a.clean.as_deref(), &mut l.inputs)?;
            let out = causal::lm_backdoor(
                &l.model,
                l.base.as_ref(),
                &prompts,
                &candidates,
                &cfg.lm,
                progress.as_ref(),
            )?;
            (out, prompts.len() as u64)
        }
    };
    drop(progress);
    Ok(report("backdoor", &l, out, records, "backdoor scan"))
}

fn probe(a: &ProbeArgs, ra: &ReportArgs) -> Result<Report> {
    let say = sayer(ra);
    let cfg = load_config(a.model.config.as_deref())?;
    let mut l = load(&a.model, &say)?;
    digest_input(&mut l.inputs, "triggers", &a.triggers)?;
    let candidates = read_candidates(&a.triggers)?;
    let progress = ra.progress();
    let (out, records) = match l.model.task() {
        Task::Classify(_) => {
            let clean_path = a
                .clean
                .as_deref()
                .context("scan probe on a classifier needs --clean FILE (clean labelled inputs)")?;
            let clean = labeled(clean_path, &mut l.inputs, "clean")?;
            let out = classifier::probe_classifier(
                &l.model,
                l.base.as_ref(),
                &clean,
                &candidates,
                &cfg.classifier,
                progress.as_ref(),
            )?;
            (out, clean.len() as u64)
        }
        Task::CausalLm(_) => {
            let prompts = lm_prompts(a.clean.as_deref(), &mut l.inputs)?;
            let out = causal::probe_scan(
                &l.model,
                l.base.as_ref(),
                &candidates,
                &prompts,
                &cfg.lm.probe,
                progress.as_ref(),
            )?;
            (out, prompts.len() as u64)
        }
    };
    drop(progress);
    Ok(report("backdoor-probe", &l, out, records, "trigger probe"))
}

/// Benign prompts of a causal-LM scan: the file given (digested as an input), else the
/// built-in set.
fn lm_prompts(path: Option<&Path>, inputs: &mut Vec<Value>) -> Result<Vec<Prompt>> {
    match path {
        Some(p) => {
            digest_input(inputs, "prompts", p)?;
            Ok(read_prompts(p, causal::MAX_PROMPTS)?)
        }
        None => Ok(causal::builtin_benign_prompts()),
    }
}

fn need_lm(l: &Loaded, what: &str) -> Result<()> {
    if let Task::Classify(_) = l.model.task() {
        bail!(
            "{}: scan {what} compares causal language models; this is a classifier (use scan backdoor or scan probe)",
            l.model.path.display()
        );
    }
    Ok(())
}

fn diff(a: &DiffArgs, ra: &ReportArgs) -> Result<Report> {
    let say = sayer(ra);
    if a.model.base.is_none() {
        bail!("scan diff needs --base DIR (the model the fine-tune started from)");
    }
    let cfg = load_config(a.model.config.as_deref())?;
    let mut l = load(&a.model, &say)?;
    need_lm(&l, "diff")?;
    digest_input(&mut l.inputs, "prompts", &a.prompts)?;
    let prompts = read_prompts(&a.prompts, cfg.diff.max_prompts)?;
    let base = l.base.as_ref().context("scan diff needs --base DIR")?;
    let progress = ra.progress();
    let out = causal::behaviour_diff(&l.model, base, &prompts, &cfg.diff, progress.as_ref())?;
    drop(progress);
    Ok(report(
        "behaviour-diff",
        &l,
        out,
        prompts.len() as u64,
        "behaviour diff",
    ))
}

fn safety(a: &SafetyArgs, ra: &ReportArgs) -> Result<Report> {
    let say = sayer(ra);
    if a.model.base.is_none() {
        bail!("scan safety needs --base DIR (the regression is measured against the base)");
    }
    let cfg = load_config(a.model.config.as_deref())?;
    let mut l = load(&a.model, &say)?;
    need_lm(&l, "safety")?;
    let specs: Vec<String> = if a.suite.is_empty() {
        vec!["builtin".into()]
    } else {
        a.suite.clone()
    };
    let mut items = Vec::new();
    for spec in &specs {
        if !spec.starts_with("builtin") {
            digest_input(&mut l.inputs, "suite", Path::new(spec))?;
        }
        items.extend(safety::load_suite(spec)?);
    }
    let base = l.base.as_ref().context("scan safety needs --base DIR")?;
    let progress = ra.progress();
    let out = safety::safety_regression(&l.model, base, &items, &cfg.safety, progress.as_ref())?;
    let n = items.len() as u64;
    drop(progress);
    Ok(report("safety", &l, out, n, "safety regression"))
}

/// The scan gates' telemetry: the threat model's `neural_cleanse_anomaly_index{model_version,
/// class_id}` and `activation_clustering_minority_fraction{model_version}` where the scan
/// computed them, plus the gate's findings and verdict.
pub fn metrics(report: &Report) -> String {
    let version = report
        .subjects
        .first()
        .map(|s| {
            Path::new(&s.name)
                .parent()
                .map(|p| p.display().to_string())
                .unwrap_or_default()
        })
        .unwrap_or_default();
    let v = crate::output::label(&version);
    let mut out = String::new();
    let mut nc: Vec<(u64, f64)> = Vec::new();
    let mut ac: Option<f64> = None;
    for f in &report.findings {
        let ev = &f.evidence;
        // Every class's anomaly index, from the trigger search's summary.
        if f.id == SCAN_INPUTS.id {
            let ai = ev
                .pointer("/summary/trigger/anomaly_index/index")
                .and_then(Value::as_array);
            for (c, val) in ai.into_iter().flatten().enumerate() {
                if let Some(x) = val.as_f64() {
                    nc.push((c as u64, x));
                }
            }
            // The largest minority-cluster fraction of any analysed class.
            let classes = ev
                .pointer("/summary/inputs/activation_clustering")
                .and_then(Value::as_array);
            for c in classes.into_iter().flatten() {
                if let Some(m) = c.get("minority_fraction").and_then(Value::as_f64) {
                    ac = Some(ac.map_or(m, |a: f64| a.max(m)));
                }
            }
        }
    }
    nc.sort_by_key(|a| a.0);
    nc.dedup_by(|a, b| a.0 == b.0);
    if !nc.is_empty() {
        out.push_str("# HELP neural_cleanse_anomaly_index Anomaly index of each class's inverted trigger (above 2 is a backdoor candidate).\n# TYPE neural_cleanse_anomaly_index gauge\n");
        for (c, ai) in nc {
            out.push_str(&format!(
                "neural_cleanse_anomaly_index{{model_version=\"{v}\",class_id=\"{c}\"}} {ai}\n"
            ));
        }
    }
    if let Some(m) = ac {
        out.push_str("# HELP activation_clustering_minority_fraction Largest minority-cluster fraction over the classes activation clustering analysed.\n# TYPE activation_clustering_minority_fraction gauge\n");
        out.push_str(&format!(
            "activation_clustering_minority_fraction{{model_version=\"{v}\"}} {m}\n"
        ));
    }
    out.push_str(&crate::output::gate_metrics(
        "tunegate_scan",
        &format!("gate=\"{}\"", crate::output::label(&report.gate)),
        Some((
            "inputs_scanned",
            "Inputs (rows or prompts) the last scan ran on.",
        )),
        report,
    ));
    out
}
