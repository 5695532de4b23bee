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
    /// Do not hash the files: report subjects carry names only. Hashing reads every byte (tensor
    /// payloads included); without it the scan reads only pickle opcodes, zip directories and
    /// pickle members, and safetensors headers.
    #[arg(long)]
    pub no_digest: bool,
}

/// Scans the paths into a `model` gate report (threshold `high`; the caller may re-evaluate it
/// with `Report::with_fail_on`). An unreadable path is an error (exit 2).
pub fn scan(args: &ModelScanArgs) -> Result<Report> {
    let opts = tunegate_artifact::ScanOptions {
        digest: !args.no_digest,
    };
    Ok(tunegate_artifact::scan_paths_with(&args.paths, &opts)?)
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
