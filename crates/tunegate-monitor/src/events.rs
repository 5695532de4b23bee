//! Security events: one JSON object per line, the report schema's finding shape plus
//! `request_id`, `model`, `direction` and `action`. Written by one background task so request
//! paths never wait on disk or a webhook.
use serde::Serialize;
use serde_json::Value;
use std::path::PathBuf;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

/// One security event.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    /// Seconds since the Unix epoch.
    pub ts: f64,
    /// Check id (`O001`).
    pub id: String,
    /// Check name.
    pub check: String,
    /// Severity.
    pub severity: tunegate_core::Severity,
    /// One sentence.
    pub message: String,
    /// Where: the endpoint and, for a choice, its index as the field.
    pub location: tunegate_core::Location,
    /// Evidence (secrets redacted).
    #[serde(skip_serializing_if = "Value::is_null")]
    pub evidence: Value,
    /// The proxy's request id (also sent to the client as `x-tunegate-request-id`).
    pub request_id: String,
    /// The model named by the request.
    pub model: String,
    /// `prompt` or `response`.
    pub direction: String,
    /// `block`, `audit` (recorded, forwarded), `fail-open` or `fail-closed`.
    pub action: String,
}

/// Sends events to the writer task.
#[derive(Clone)]
pub struct EventSink {
    tx: Option<mpsc::Sender<Event>>,
}

/// Queue bound: beyond it events are dropped and counted.
const QUEUE: usize = 4096;

impl EventSink {
    /// A sink writing to `file` and/or POSTing to `webhook`; none of both drops events silently
    /// except for the metrics. Returns the sink and the writer task.
    pub fn start(
        file: Option<PathBuf>,
        webhook: Option<String>,
        metrics: std::sync::Arc<crate::metrics::Metrics>,
    ) -> (EventSink, Option<tokio::task::JoinHandle<()>>) {
        if file.is_none() && webhook.is_none() {
            return (EventSink { tx: None }, None);
        }
        let (tx, mut rx) = mpsc::channel::<Event>(QUEUE);
        let task = tokio::spawn(async move {
            let mut out = match &file {
                Some(p) => match tokio::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)
                    .await
                {
                    Ok(f) => Some(f),
                    Err(e) => {
                        eprintln!(
                            "tunegate monitor: cannot open events file {}: {e}",
                            p.display()
                        );
                        None
                    }
                },
                None => None,
            };
            let client = webhook.as_ref().map(|_| crate::proxy::http_client());
            while let Some(ev) = rx.recv().await {
                let mut line = match serde_json::to_vec(&ev) {
                    Ok(l) => l,
                    Err(_) => continue,
                };
                if let Some(f) = out.as_mut() {
                    line.push(b'\n');
                    if f.write_all(&line).await.is_err() || f.flush().await.is_err() {
                        metrics.inc(
                            "tunegate_monitor_events_dropped_total",
                            &[("sink", "file")],
                            1,
                        );
                    }
                    line.pop();
                }
                if let (Some(url), Some(c)) = (&webhook, &client) {
                    let req = hyper::Request::post(url.as_str())
                        .header("content-type", "application/json")
                        .body(crate::proxy::full(line));
                    let ok = match req {
                        Ok(r) => matches!(
                            tokio::time::timeout(std::time::Duration::from_secs(10), c.request(r)).await,
                            Ok(Ok(resp)) if resp.status().is_success()
                        ),
                        Err(_) => false,
                    };
                    if !ok {
                        metrics.inc(
                            "tunegate_monitor_events_dropped_total",
                            &[("sink", "webhook")],
                            1,
                        );
                    }
                }
            }
        });
        (EventSink { tx: Some(tx) }, Some(task))
    }

    /// Queues an event (never blocks; a full queue drops and counts).
    pub fn send(&self, ev: Event, metrics: &crate::metrics::Metrics) {
        if let Some(tx) = &self.tx {
            if tx.try_send(ev).is_err() {
                metrics.inc(
                    "tunegate_monitor_events_dropped_total",
                    &[("sink", "queue")],
                    1,
                );
            }
        }
    }

    /// Closes the queue so the writer task drains and ends.
    pub fn close(&mut self) {
        self.tx = None;
    }
}
