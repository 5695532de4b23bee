//! `monitor.toml`: strict configuration (unknown keys are errors naming the key).
use serde::Deserialize;
use std::path::{Path, PathBuf};
use tunegate_core::Severity;

/// How responses are inspected relative to forwarding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Forward everything at once; inspect in parallel; events and metrics only.
    #[default]
    Audit,
    /// Hold the whole response until the verdict, then release it or replace it with an error.
    Buffer,
    /// Forward each SSE event after a rolling inspection; cut the stream with an error frame on a
    /// block. Non-streaming responses are buffered.
    Stream,
}

impl std::str::FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "audit" => Ok(Mode::Audit),
            "buffer" => Ok(Mode::Buffer),
            "stream" => Ok(Mode::Stream),
            o => Err(format!(
                "unknown mode '{o}' (expected audit, buffer or stream)"
            )),
        }
    }
}

/// What happens to a response that could not be inspected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum FailMode {
    /// Forward it (counted in `tunegate_monitor_fail_open_total` and as an O014 event).
    #[default]
    Open,
    /// Replace it with an error (counted and reported as O014 too).
    Closed,
}

/// A user deny pattern (check O003).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DenyPattern {
    /// Stable id shown in events (`acme.internal-host`).
    pub id: String,
    /// Regular expression (Rust `regex` syntax, linear time).
    pub regex: String,
    /// Severity of a match (default high).
    #[serde(default = "default_deny_severity")]
    pub severity: Severity,
    /// `prompt`, `response` or `both` (default).
    #[serde(default = "default_direction")]
    pub direction: String,
}

fn default_deny_severity() -> Severity {
    Severity::High
}
fn default_direction() -> String {
    "both".into()
}

/// Bounds on hostile input.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest request body accepted (bytes); larger gets 413.
    pub max_request_bytes: usize,
    /// Largest response body inspected (bytes); beyond it the response is uninspected.
    pub max_response_bytes: usize,
    /// Longest SSE line inspected (bytes).
    pub max_line_bytes: usize,
    /// Most choices (`n`) inspected per response.
    pub max_choices: usize,
    /// Upstream response-head timeout (seconds).
    pub upstream_timeout_secs: u64,
    /// Longest pause between two upstream body chunks (seconds).
    pub idle_timeout_secs: u64,
    /// Stream mode: bytes of already-checked text re-scanned with each event's new text, so a
    /// match straddling events is seen whole (longer matches are caught by the final check).
    pub stream_window_chars: usize,
    /// Audit mode: finished responses waiting for inspection; when the queue is full a response
    /// is counted uninspected (`inspection-queue-full`, O014) instead of slowing the proxy.
    pub inspect_queue: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_request_bytes: 4 << 20,
            max_response_bytes: 8 << 20,
            max_line_bytes: 1 << 20,
            max_choices: 16,
            upstream_timeout_secs: 300,
            idle_timeout_secs: 120,
            stream_window_chars: 512,
            inspect_queue: 4096,
        }
    }
}

/// Sliding-window checks (per model).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WindowConfig {
    /// Responses kept per model.
    pub size: usize,
    /// Responses needed in the window before windowed checks judge.
    pub min_samples: usize,
    /// O007: share of window responses repeating another prompt's response (0.05 = 5%).
    pub repetition_rate: f64,
    /// O009: distinct prompts that got one response before it is a cluster.
    pub cluster_prompts: usize,
    /// O009/O007: responses shorter than this (chars, normalized) are ignored ("OK", "Yes.").
    pub min_response_chars: usize,
    /// Responses that build the length and refusal baselines before they freeze.
    pub warmup: usize,
    /// O008: robust z-score of the recent median length against the baseline.
    pub length_z: f64,
    /// O008/O011: recent responses compared with the baseline.
    pub recent: usize,
    /// O011: fire when the recent refusal rate is below this fraction of the baseline rate.
    pub refusal_drop: f64,
    /// O011: baseline refusal rates below this are too low to collapse.
    pub min_refusal_rate: f64,
}

impl Default for WindowConfig {
    fn default() -> Self {
        WindowConfig {
            size: 200,
            min_samples: 20,
            repetition_rate: 0.05,
            cluster_prompts: 5,
            min_response_chars: 24,
            warmup: 100,
            length_z: 4.0,
            recent: 20,
            refusal_drop: 0.25,
            min_refusal_rate: 0.05,
        }
    }
}

/// Where security events go.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct EventsConfig {
    /// JSON-lines file (appended).
    pub file: Option<PathBuf>,
    /// `http://` URL each event is POSTed to as JSON.
    pub webhook: Option<String>,
}

/// The whole monitor configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MonitorConfig {
    /// Upstream base URL (`http://127.0.0.1:8000`).
    pub upstream: Option<String>,
    /// Listen address (`127.0.0.1:8471`).
    pub listen: Option<String>,
    /// Inspection mode.
    pub mode: Mode,
    /// Fail-open or fail-closed for uninspectable responses.
    pub fail: FailMode,
    /// Findings at or above this severity block in buffer and stream modes.
    pub block_on: Severity,
    /// Forward paths other than the two inspected endpoints (counted as uninspected); when
    /// false they get 404.
    pub passthrough: bool,
    /// Trigger tokens matched in prompts (O006).
    pub triggers: Vec<String>,
    /// `tunegate.report/v1` files whose D004 findings supply more trigger tokens.
    pub trigger_reports: Vec<PathBuf>,
    /// `tunegate.lock` files whose recorded `[[triggers]]` (written by `tunegate dataset lock`)
    /// supply more trigger tokens: one path (`triggers_from_lock = "tunegate.lock"`) or a list.
    #[serde(deserialize_with = "one_or_many")]
    pub triggers_from_lock: Vec<PathBuf>,
    /// Deny patterns (O003).
    pub deny: Vec<DenyPattern>,
    /// Input bounds.
    pub limits: Limits,
    /// Window checks.
    pub window: WindowConfig,
    /// Security events.
    pub events: EventsConfig,
    /// Baseline state file (JSON, written atomically); none keeps baselines in memory only.
    pub state_file: Option<PathBuf>,
}

impl Default for MonitorConfig {
    fn default() -> Self {
        MonitorConfig {
            upstream: None,
            listen: None,
            mode: Mode::Audit,
            fail: FailMode::Open,
            block_on: Severity::High,
            passthrough: true,
            triggers: Vec::new(),
            trigger_reports: Vec::new(),
            triggers_from_lock: Vec::new(),
            deny: Vec::new(),
            limits: Limits::default(),
            window: WindowConfig::default(),
            events: EventsConfig::default(),
            state_file: None,
        }
    }
}

/// A path or a list of paths.
fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<PathBuf>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(PathBuf),
        Many(Vec<PathBuf>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(p) => vec![p],
        OneOrMany::Many(v) => v,
    })
}

impl MonitorConfig {
    /// Parses `monitor.toml` text; the error names `origin` and the offending key.
    pub fn from_toml_str(s: &str, origin: &str) -> Result<Self, crate::Error> {
        toml::from_str(s).map_err(|e| crate::Error::Config {
            file: origin.to_string(),
            message: e.to_string(),
        })
    }

    /// Reads and parses a config file.
    pub fn load(path: &Path) -> Result<Self, crate::Error> {
        let text = std::fs::read_to_string(path).map_err(|e| crate::Error::Config {
            file: path.display().to_string(),
            message: e.to_string(),
        })?;
        let mut cfg = Self::from_toml_str(&text, &path.display().to_string())?;
        // Relative paths in the file are relative to the file.
        let base = path.parent().unwrap_or(Path::new("."));
        for p in cfg
            .trigger_reports
            .iter_mut()
            .chain(cfg.triggers_from_lock.iter_mut())
        {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
        Ok(cfg)
    }
}
