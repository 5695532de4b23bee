//! `tunegate lint`: static analysis of pipeline source for untrusted-code and pickle loading.
//! Rendering, `--fail-on` and exit codes come from the shared report flags; this module only
//! turns arguments into a `lint` gate report.
use anyhow::Result;
use std::path::PathBuf;
use tunegate_core::{Report, Severity};

/// Arguments of `tunegate lint`.
#[derive(Debug, Clone, clap::Args)]
pub struct LintArgs {
    /// Python (.py), notebook (.ipynb), shell (.sh) or YAML files, or folders of them (walked
    /// recursively, skipping dot-folders, __pycache__, node_modules and site-packages).
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
}

/// Lints the paths into a `lint` gate report (threshold `high`, re-evaluated with `--fail-on`).
/// An unreadable path or an explicitly named file of another kind is an error (exit 2).
pub fn lint(args: &LintArgs, fail_on: Option<Severity>) -> Result<Report> {
    let mut rep = tunegate_artifact::lint::lint_paths(&args.paths)?;
    if let Some(f) = fail_on {
        rep = rep.with_fail_on(f);
    }
    Ok(rep)
}

/// The lint gate's telemetry in Prometheus text format (for `--metrics-file`).
pub fn metrics(report: &Report) -> String {
    crate::output::gate_metrics(
        "tunegate_lint",
        "",
        Some(("files_scanned", "Source files linted by the last run.")),
        report,
    )
}
