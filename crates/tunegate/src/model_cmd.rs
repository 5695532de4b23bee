//! `tunegate model scan`: the base-model gate's scan command. Rendering, `--fail-on` and exit
//! codes come from the shared report flags; this module only turns arguments into a report.
use anyhow::Result;
use std::path::PathBuf;
use tunegate_core::{Report, Severity};

/// Every model check (`M###`), for `tunegate checks`.
pub const CHECKS: &[tunegate_core::CheckInfo] = tunegate_artifact::CHECKS;

/// Arguments of `tunegate model scan`.
#[derive(Debug, Clone, clap::Args)]
pub struct ModelScanArgs {
    /// Model files or folders (Hugging Face layout); folders are walked recursively.
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
}

/// Scans the paths into a `model` gate report (threshold `high`; the caller may re-evaluate it
/// with `Report::with_fail_on`). An unreadable path is an error (exit 2).
pub fn scan(args: &ModelScanArgs) -> Result<Report> {
    Ok(tunegate_artifact::scan_paths(&args.paths)?)
}

/// Arguments of `tunegate model fingerprint`.
#[derive(Debug, Clone, clap::Args)]
pub struct ModelFingerprintArgs {
    /// A .safetensors file, a model.safetensors.index.json, or a folder holding either.
    #[arg(value_name = "PATH")]
    pub path: PathBuf,
    /// Write the fingerprint (tunegate.fingerprint/v1 JSON) to FILE instead of stdout.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// No chatter on stderr.
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

/// Arguments of `tunegate model diff`.
#[derive(Debug, Clone, clap::Args)]
pub struct ModelDiffArgs {
    /// The model: a .safetensors file, an index, or a folder.
    #[arg(value_name = "PATH")]
    pub path: PathBuf,
    /// The reference: weights (file, index or folder) or a fingerprint written by
    /// `tunegate model fingerprint` (a .json file).
    #[arg(long, value_name = "REF")]
    pub reference: PathBuf,
    /// The model is claimed identical to the reference: any difference fails the gate.
    #[arg(long)]
    pub identical: bool,
}

/// Fingerprints a model and writes the JSON; returns 0. NaN and infinite values are reported on
/// stderr (they are findings of `model diff`).
pub fn fingerprint(args: &ModelFingerprintArgs) -> Result<u8> {
    let progress: Box<dyn tunegate_core::progress::Progress> = if args.quiet {
        Box::new(tunegate_core::progress::NoProgress)
    } else {
        crate::output::ReportArgs::bar()
    };
    let fp = tunegate_artifact::weights::fingerprint(&args.path, progress.as_ref())?;
    drop(progress);
    let text = serde_json::to_string_pretty(&fp)? + "\n";
    crate::output::write_out(args.output.as_deref(), &text)?;
    if !args.quiet {
        for (name, t) in &fp.tensors {
            if t.nan + t.inf > 0 {
                eprintln!(
                    "tunegate: warning: tensor '{name}' ({}) holds {} NaN and {} infinite values",
                    t.file, t.nan, t.inf
                );
            }
        }
        if let Some(o) = &args.output {
            eprintln!(
                "tunegate: fingerprint of {} tensors in {} file(s) written to {}",
                fp.tensors.len(),
                fp.files.len(),
                o.display()
            );
        }
    }
    Ok(0)
}

/// Diffs a model against its reference into a `model` gate report (threshold `high`).
pub fn diff(
    args: &ModelDiffArgs,
    progress: &dyn tunegate_core::progress::Progress,
) -> Result<Report> {
    let opts = tunegate_artifact::weights::DiffOptions {
        identical: args.identical,
    };
    Ok(tunegate_artifact::weights::diff(
        &args.path,
        &args.reference,
        &opts,
        progress,
    )?)
}

/// The model gate's telemetry in Prometheus text format (for `--metrics-file`).
pub fn metrics(report: &Report) -> String {
    let mut out = String::new();
    out.push_str("# HELP tunegate_model_files_scanned Model files scanned by the last run.\n");
    out.push_str("# TYPE tunegate_model_files_scanned gauge\n");
    out.push_str(&format!(
        "tunegate_model_files_scanned {}\n",
        report.summary.records.unwrap_or(0)
    ));
    out.push_str("# HELP tunegate_model_findings Findings of the last run by severity.\n");
    out.push_str("# TYPE tunegate_model_findings gauge\n");
    for s in Severity::ALL {
        let n = report
            .summary
            .findings_by_severity
            .get(&s)
            .copied()
            .unwrap_or(0);
        out.push_str(&format!(
            "tunegate_model_findings{{severity=\"{s}\"}} {n}\n"
        ));
    }
    out.push_str("# HELP tunegate_model_gate_failed 1 when the last model gate failed.\n");
    out.push_str("# TYPE tunegate_model_gate_failed gauge\n");
    out.push_str(&format!(
        "tunegate_model_gate_failed {}\n",
        u8::from(report.verdict == tunegate_core::Verdict::Fail)
    ));
    out
}
