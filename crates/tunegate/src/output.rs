//! Report output shared by every report-producing command: format selection, `--output`,
//! `--metrics-file`, and the exit code.
use anyhow::{Context, Result};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use tunegate_core::render::{self, Format};
use tunegate_core::{CheckInfo, Report, Severity, Verdict};

/// Flags every report-producing command takes.
#[derive(Debug, Clone, clap::Args)]
pub struct ReportArgs {
    /// Output format: text, json, sarif or html (text by default).
    #[arg(long, value_parser = parse_format)]
    pub format: Option<Format>,
    /// Write the report to FILE instead of stdout.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Fail the gate on findings at or above this severity.
    #[arg(long, value_name = "SEVERITY", value_parser = parse_severity)]
    pub fail_on: Option<Severity>,
    /// No progress bars or chatter on stderr.
    #[arg(long, short = 'q')]
    pub quiet: bool,
    /// Also write this gate's telemetry in Prometheus text format (node_exporter textfile).
    #[arg(long, value_name = "FILE")]
    pub metrics_file: Option<PathBuf>,
}

fn parse_format(s: &str) -> Result<Format, String> {
    s.parse()
}

fn parse_severity(s: &str) -> Result<Severity, String> {
    s.parse()
}

/// Every check the binary knows, in id order.
pub fn all_checks() -> Vec<CheckInfo> {
    let mut v: Vec<CheckInfo> = tunegate_dataset::CHECKS.to_vec();
    v.extend_from_slice(crate::model_cmd::CHECKS);
    v.extend_from_slice(crate::infra_cmd::CHECKS);
    v.extend_from_slice(crate::sign_cmd::CHECKS);
    v.extend_from_slice(crate::monitor_cmd::CHECKS);
    v.extend_from_slice(crate::registry_cmd::CHECKS);
    v.extend(crate::scan_cmd::checks());
    v.sort_by_key(|c| c.id);
    v
}

impl ReportArgs {
    /// A progress sink: a bar on stderr unless quiet or stderr is not a terminal.
    pub fn progress(&self) -> Box<dyn tunegate_core::progress::Progress> {
        if self.quiet {
            Box::new(tunegate_core::progress::NoProgress)
        } else {
            Self::bar()
        }
    }

    /// A bar on stderr when stderr is a terminal, nothing otherwise.
    pub fn bar() -> Box<dyn tunegate_core::progress::Progress> {
        if std::io::stderr().is_terminal() {
            Box::new(tunegate_core::progress::Bar::stderr())
        } else {
            Box::new(tunegate_core::progress::NoProgress)
        }
    }

    /// Re-evaluates `report` at `--fail-on` when given, then [`ReportArgs::emit`]s it with the
    /// gate's telemetry from `metrics`.
    pub fn emit_with_fail_on(&self, report: Report, metrics: fn(&Report) -> String) -> Result<u8> {
        let report = match self.fail_on {
            Some(f) => report.with_fail_on(f),
            None => report,
        };
        self.emit(&report, &metrics(&report))
    }

    /// Renders and writes `report`, writes metrics, and returns the exit code.
    pub fn emit(&self, report: &Report, metrics: &str) -> Result<u8> {
        let format = self.format.unwrap_or(Format::Text);
        let text = render::render(report, format, &all_checks());
        write_out(self.output.as_deref(), &text)?;
        if let Some(m) = &self.metrics_file {
            std::fs::write(m, metrics).with_context(|| format!("writing {}", m.display()))?;
        }
        if !self.quiet {
            if let Some(o) = &self.output {
                eprintln!(
                    "tunegate: {} report written to {} ({}, {} findings)",
                    report.gate,
                    o.display(),
                    match report.verdict {
                        Verdict::Pass => "pass",
                        Verdict::Fail => "FAIL",
                    },
                    report.findings.len()
                );
            }
        }
        Ok(match report.verdict {
            Verdict::Pass => 0,
            Verdict::Fail => 1,
        })
    }
}

/// Writes `text` to `path` or stdout.
pub fn write_out(path: Option<&Path>, text: &str) -> Result<()> {
    match path {
        Some(p) => std::fs::write(p, text).with_context(|| format!("writing {}", p.display())),
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(text.as_bytes())
                .and_then(|_| out.flush())
                .or_else(|e| {
                    // A closed pipe (`| head`) is not an error worth a stack of messages.
                    if e.kind() == std::io::ErrorKind::BrokenPipe {
                        Ok(())
                    } else {
                        Err(e)
                    }
                })
                .context("writing to stdout")
        }
    }
}

/// Escapes a Prometheus label value.
pub fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// A batch gate's telemetry in Prometheus text format: `{prefix}_{name}` (a gauge of
/// `summary.records`, when `scanned` names it), `{prefix}_findings{severity}` and
/// `{prefix}_gate_failed`, each with the extra `labels` (`key="value",…`, may be empty).
pub fn gate_metrics(
    prefix: &str,
    labels: &str,
    scanned: Option<(&str, &str)>,
    report: &Report,
) -> String {
    let join = |extra: &str| -> String {
        match (labels.is_empty(), extra.is_empty()) {
            (true, true) => String::new(),
            (true, false) => format!("{{{extra}}}"),
            (false, true) => format!("{{{labels}}}"),
            (false, false) => format!("{{{labels},{extra}}}"),
        }
    };
    let mut out = String::new();
    if let Some((name, help)) = scanned {
        out.push_str(&format!("# HELP {prefix}_{name} {help}\n"));
        out.push_str(&format!("# TYPE {prefix}_{name} gauge\n"));
        out.push_str(&format!(
            "{prefix}_{name}{} {}\n",
            join(""),
            report.summary.records.unwrap_or(0)
        ));
    }
    out.push_str(&format!(
        "# HELP {prefix}_findings Findings of the last run by severity.\n"
    ));
    out.push_str(&format!("# TYPE {prefix}_findings gauge\n"));
    for s in Severity::ALL {
        let n = report
            .summary
            .findings_by_severity
            .get(&s)
            .copied()
            .unwrap_or(0);
        out.push_str(&format!(
            "{prefix}_findings{} {n}\n",
            join(&format!("severity=\"{s}\""))
        ));
    }
    out.push_str(&format!(
        "# HELP {prefix}_gate_failed 1 when the last run of the gate failed.\n"
    ));
    out.push_str(&format!("# TYPE {prefix}_gate_failed gauge\n"));
    out.push_str(&format!(
        "{prefix}_gate_failed{} {}\n",
        join(""),
        u8::from(report.verdict == tunegate_core::Verdict::Fail)
    ));
    out
}
