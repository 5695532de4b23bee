//! `tunegate monitor`: the production output monitor (an inspecting OpenAI-compatible proxy).
use anyhow::{Context, Result};
use clap::Args;
use std::path::PathBuf;
use tunegate_monitor::{FailMode, Mode, MonitorConfig};

/// The monitor's checks, for `tunegate checks`.
pub const CHECKS: &[tunegate_core::CheckInfo] = tunegate_monitor::CHECKS;

/// Flags of `tunegate monitor`; flags override `--config`.
#[derive(Args, Debug)]
pub struct MonitorArgs {
    /// Upstream OpenAI-compatible server (`http://127.0.0.1:8000`).
    #[arg(long)]
    pub upstream: Option<String>,
    /// Address to listen on (default 127.0.0.1:8471).
    #[arg(long)]
    pub listen: Option<String>,
    /// monitor.toml (strict: unknown keys are errors).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// `audit` (default), `buffer` or `stream`.
    #[arg(long)]
    pub mode: Option<Mode>,
    /// Block responses that cannot be inspected (buffer and stream modes) instead of forwarding
    /// them.
    #[arg(long)]
    pub fail_closed: bool,
    /// A tunegate.report/v1 file whose D004 trigger findings are watched for in prompts
    /// (repeatable).
    #[arg(long = "triggers")]
    pub triggers: Vec<PathBuf>,
    /// A tunegate.lock whose recorded trigger candidates (`tunegate dataset lock`) are watched
    /// for in prompts (repeatable).
    #[arg(long = "lock")]
    pub lock: Vec<PathBuf>,
    /// JSON-lines file security events are appended to.
    #[arg(long)]
    pub events: Option<PathBuf>,
    /// Baseline state file (JSON, written atomically; read at start).
    #[arg(long)]
    pub state: Option<PathBuf>,
}

/// Builds the configuration from `--config` and flags.
pub fn config(args: &MonitorArgs) -> Result<MonitorConfig> {
    let mut cfg = match &args.config {
        Some(p) => MonitorConfig::load(p)?,
        None => MonitorConfig::default(),
    };
    if let Some(u) = &args.upstream {
        cfg.upstream = Some(u.clone());
    }
    if let Some(l) = &args.listen {
        cfg.listen = Some(l.clone());
    }
    if let Some(m) = args.mode {
        cfg.mode = m;
    }
    if args.fail_closed {
        cfg.fail = FailMode::Closed;
    }
    cfg.trigger_reports.extend(args.triggers.iter().cloned());
    cfg.triggers_from_lock.extend(args.lock.iter().cloned());
    if let Some(e) = &args.events {
        cfg.events.file = Some(e.clone());
    }
    if let Some(s) = &args.state {
        cfg.state_file = Some(s.clone());
    }
    Ok(cfg)
}

/// Runs the monitor until SIGINT/SIGTERM; exit 0 on a clean shutdown, 2 on bad input.
pub fn run(args: &MonitorArgs) -> Result<u8> {
    let cfg = config(args)?;
    tunegate_monitor::run_until_signal(cfg).context("monitor")?;
    Ok(0)
}
