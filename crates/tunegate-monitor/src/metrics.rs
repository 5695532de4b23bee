//! Prometheus text exposition, hand-written (bounded label sets, no extra dependency).
use std::collections::HashMap;
use std::fmt::Write;
use std::hash::{Hash, Hasher};
use std::sync::Mutex;

/// Histogram bucket upper bounds (seconds): 50 µs to 30 s.
const BUCKETS: &[f64] = &[
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 5.0, 10.0, 30.0,
];

#[derive(Default, Clone)]
struct Hist {
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

type Labels = Vec<(&'static str, String)>;

/// Series of one kind, found without allocating: a hash of the borrowed name and labels picks a
/// bucket, labels are compared in place, and only a new series allocates its owned labels.
struct Series<V> {
    buckets: HashMap<u64, Vec<(&'static str, Labels, V)>>,
}

impl<V> Default for Series<V> {
    fn default() -> Self {
        Series {
            buckets: HashMap::new(),
        }
    }
}

fn key_hash(name: &str, l: &[(&'static str, &str)]) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    name.hash(&mut h);
    for (k, v) in l {
        k.hash(&mut h);
        v.hash(&mut h);
    }
    h.finish()
}

impl<V> Series<V> {
    fn entry(
        &mut self,
        name: &'static str,
        l: &[(&'static str, &str)],
        new: impl FnOnce() -> V,
    ) -> &mut V {
        let b = self.buckets.entry(key_hash(name, l)).or_default();
        let same = |(n, k, _): &(&'static str, Labels, V)| {
            *n == name
                && k.len() == l.len()
                && k.iter().zip(l).all(|((a, x), (b, y))| a == b && x == y)
        };
        let i = match b.iter().position(same) {
            Some(i) => i,
            None => {
                b.push((name, labels(l), new()));
                b.len() - 1
            }
        };
        &mut b[i].2
    }

    /// Every series, ordered by name then labels (stable exposition).
    fn sorted(&self) -> Vec<(&'static str, &Labels, &V)> {
        let mut v: Vec<_> = self
            .buckets
            .values()
            .flatten()
            .map(|(n, l, v)| (*n, l, v))
            .collect();
        v.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
        v
    }
}

#[derive(Default)]
struct Inner {
    counters: Series<u64>,
    gauges: Series<f64>,
    hists: Series<Hist>,
}

/// The monitor's metrics.
#[derive(Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
}

const HELP: &[(&str, &str, &str)] = &[
    (
        "deployed_model_suspicious_output_total",
        "counter",
        "Suspicious outputs (threat-model telemetry), by model version and issue type.",
    ),
    (
        "deployed_model_output_repetition_rate",
        "gauge",
        "Share of the model's window responses repeating another prompt's response.",
    ),
    (
        "tunegate_monitor_requests_total",
        "counter",
        "Requests handled, by model, endpoint and outcome.",
    ),
    (
        "tunegate_monitor_findings_total",
        "counter",
        "Findings, by check, severity, direction and model.",
    ),
    (
        "tunegate_monitor_actions_total",
        "counter",
        "Actions taken (block, audit), by action and check.",
    ),
    (
        "tunegate_monitor_uninspected_total",
        "counter",
        "Responses or requests forwarded or blocked without inspection, by reason.",
    ),
    (
        "tunegate_monitor_fail_open_total",
        "counter",
        "Uninspectable responses forwarded because fail = open, by reason.",
    ),
    (
        "tunegate_monitor_events_dropped_total",
        "counter",
        "Security events that could not be written or delivered.",
    ),
    (
        "tunegate_monitor_inspection_seconds",
        "histogram",
        "Time spent in inspection, by phase.",
    ),
    (
        "tunegate_monitor_upstream_seconds",
        "histogram",
        "Upstream time to response head.",
    ),
    (
        "tunegate_monitor_request_seconds",
        "histogram",
        "Total time from request head to the last byte sent, by endpoint.",
    ),
];

fn lock(m: &Mutex<Inner>) -> std::sync::MutexGuard<'_, Inner> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn labels(l: &[(&'static str, &str)]) -> Labels {
    l.iter().map(|(k, v)| (*k, v.to_string())).collect()
}

impl Metrics {
    /// Adds `by` to a counter.
    pub fn inc(&self, name: &'static str, l: &[(&'static str, &str)], by: u64) {
        *lock(&self.inner).counters.entry(name, l, || 0) += by;
    }
    /// Sets a gauge.
    pub fn set(&self, name: &'static str, l: &[(&'static str, &str)], v: f64) {
        *lock(&self.inner).gauges.entry(name, l, || 0.0) = v;
    }
    /// Observes a histogram value (seconds).
    pub fn observe(&self, name: &'static str, l: &[(&'static str, &str)], v: f64) {
        let mut g = lock(&self.inner);
        let h = g.hists.entry(name, l, || Hist {
            counts: vec![0; BUCKETS.len()],
            ..Default::default()
        });
        if let Some(i) = BUCKETS.iter().position(|b| v <= *b) {
            h.counts[i] += 1;
        }
        h.sum += v;
        h.count += 1;
    }
    /// A counter's value (tests, summaries).
    pub fn counter(&self, name: &str, l: &[(&'static str, &str)]) -> u64 {
        let key = labels(l);
        lock(&self.inner)
            .counters
            .buckets
            .values()
            .flatten()
            .filter(|(n, k, _)| *n == name && key.iter().all(|kv| k.contains(kv)))
            .map(|(_, _, v)| *v)
            .sum()
    }

    /// The Prometheus text format.
    pub fn render(&self) -> String {
        let g = lock(&self.inner);
        let (counters, gauges, hists) = (g.counters.sorted(), g.gauges.sorted(), g.hists.sorted());
        let mut s = String::new();
        for (name, kind, help) in HELP {
            let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (n, l, v) in &counters {
                if n == name {
                    let _ = writeln!(s, "{name}{} {v}", fmt_labels(l, None));
                }
            }
            for (n, l, v) in &gauges {
                if n == name {
                    let _ = writeln!(s, "{name}{} {v}", fmt_labels(l, None));
                }
            }
            for (n, l, h) in &hists {
                if n != name {
                    continue;
                }
                let mut cum = 0;
                for (b, c) in BUCKETS.iter().zip(&h.counts) {
                    cum += c;
                    let _ = writeln!(
                        s,
                        "{name}_bucket{} {cum}",
                        fmt_labels(l, Some(&b.to_string()))
                    );
                }
                let _ = writeln!(
                    s,
                    "{name}_bucket{} {}",
                    fmt_labels(l, Some("+Inf")),
                    h.count
                );
                let _ = writeln!(s, "{name}_sum{} {}", fmt_labels(l, None), h.sum);
                let _ = writeln!(s, "{name}_count{} {}", fmt_labels(l, None), h.count);
            }
        }
        s
    }
}

fn fmt_labels(l: &Labels, le: Option<&str>) -> String {
    let mut parts: Vec<String> = l
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
        .collect();
    if let Some(le) = le {
        parts.push(format!("le=\"{le}\""));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", parts.join(","))
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
