//! The HTTP proxy: routes, forwarding, the three modes, fail-open/closed, metrics and events.
use crate::config::{FailMode, Mode, MonitorConfig};
use crate::events::{Event, EventSink};
use crate::inspect::{Direction, Hit, Inspector};
use crate::metrics::Metrics;
use crate::sse::{self, Collected, SseParser};
use crate::window::Windows;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Body, Frame, Incoming};
use hyper::header::{HeaderMap, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tunegate_core::Location;

/// Boxed error of response bodies.
pub type BoxErr = Box<dyn std::error::Error + Send + Sync>;
/// The response body type.
pub type RespBody = http_body_util::combinators::BoxBody<Bytes, BoxErr>;
/// The upstream client.
pub type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// A pooled HTTP/1 client (plain http; no TLS).
pub fn http_client() -> HttpClient {
    let mut c = HttpConnector::new();
    c.set_nodelay(true);
    c.set_connect_timeout(Some(Duration::from_secs(10)));
    Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(512)
        .pool_idle_timeout(Duration::from_secs(60))
        .build(c)
}

/// A whole body.
pub fn full(b: impl Into<Bytes>) -> Full<Bytes> {
    Full::new(b.into())
}

fn boxed_full(b: impl Into<Bytes>) -> RespBody {
    Full::new(b.into()).map_err(|n| match n {}).boxed()
}

/// State shared by every connection.
pub struct Shared {
    /// The configuration.
    pub cfg: MonitorConfig,
    upstream_base: String,
    client: HttpClient,
    /// The per-text checks.
    pub inspector: Inspector,
    /// Per-model windows.
    pub windows: Mutex<Windows>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Event sink.
    pub events: Mutex<Option<EventSink>>,
    ids: AtomicU64,
    boot: u64,
    /// Responses whose inspection has not finished yet.
    pub inflight: std::sync::atomic::AtomicUsize,
    models: Mutex<std::collections::HashSet<String>>,
    /// Audit mode's inspection queue (bounded by `limits.inspect_queue`).
    queue: mpsc::Sender<Job>,
    queue_rx: Mutex<Option<mpsc::Receiver<Job>>>,
}

/// One finished audit-mode response waiting for the inspection task.
struct Job {
    collected: Collected,
    info: ReqInfo,
    rid: String,
    /// Seconds from request head to the last byte handed to the client.
    elapsed: f64,
}

impl Shared {
    /// Builds the shared state. `upstream` must be `http://host:port[/base]`.
    pub fn new(
        cfg: MonitorConfig,
        upstream: &str,
        inspector: Inspector,
        windows: Windows,
        metrics: Arc<Metrics>,
        events: EventSink,
    ) -> Result<Self, crate::Error> {
        let uri: hyper::Uri = upstream
            .parse()
            .map_err(|e| crate::Error::Input(format!("upstream '{upstream}': {e}")))?;
        if uri.scheme_str() != Some("http") || uri.authority().is_none() {
            return Err(crate::Error::Input(format!(
                "upstream '{upstream}' must be an http://host:port URL (terminate TLS in front of the model server)"
            )));
        }
        let (queue, queue_rx) = mpsc::channel(cfg.limits.inspect_queue.max(1));
        let boot = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        Ok(Shared {
            cfg,
            upstream_base: upstream.trim_end_matches('/').to_string(),
            client: http_client(),
            inspector,
            windows: Mutex::new(windows),
            metrics,
            events: Mutex::new(Some(events)),
            ids: AtomicU64::new(0),
            boot,
            inflight: std::sync::atomic::AtomicUsize::new(0),
            models: Mutex::new(std::collections::HashSet::new()),
            queue,
            queue_rx: Mutex::new(Some(queue_rx)),
        })
    }

    /// Starts the task that inspects audit-mode responses off the response path (once; needs
    /// a Tokio runtime). It holds the state weakly and ends when the state is dropped.
    pub fn start_inspection(self: &Arc<Self>) {
        let rx = self
            .queue_rx
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(mut rx) = rx {
            let weak = Arc::downgrade(self);
            tokio::spawn(async move {
                while let Some(job) = rx.recv().await {
                    let Some(sh) = weak.upgrade() else { break };
                    sh.inspect_job(job);
                }
            });
        }
    }

    /// Queues a finished audit-mode response; a full queue counts it uninspected.
    fn enqueue(&self, job: Job) {
        if let Err(e) = self.queue.try_send(job) {
            let job = match e {
                mpsc::error::TrySendError::Full(j) | mpsc::error::TrySendError::Closed(j) => j,
            };
            self.uninspected(
                "inspection-queue-full",
                &job.rid,
                &job.info.model,
                job.info.endpoint,
            );
            self.done(&job.info, "fail-open", job.elapsed);
        }
    }

    /// Inspects one queued response and records its outcome.
    fn inspect_job(&self, job: Job) {
        let outcome = if let Some(reason) = job.collected.failed {
            self.uninspected(reason, &job.rid, &job.info.model, job.info.endpoint);
            "fail-open"
        } else {
            self.finish(
                &job.collected,
                &job.info.prompt,
                &job.rid,
                &job.info.model,
                job.info.endpoint,
            );
            "ok"
        };
        self.done(&job.info, outcome, job.elapsed);
    }

    /// Records a relayed response's outcome and ends its in-flight count.
    fn done(&self, info: &ReqInfo, outcome: &str, elapsed: f64) {
        self.outcome(info, outcome, elapsed);
        self.inflight.fetch_sub(1, Ordering::SeqCst);
    }

    /// Records a response's outcome: the request counter and the request-time histogram.
    fn outcome(&self, info: &ReqInfo, outcome: &str, elapsed: f64) {
        self.metrics.inc(
            "tunegate_monitor_requests_total",
            &[
                ("model", &info.model),
                ("endpoint", info.endpoint),
                ("outcome", outcome),
            ],
            1,
        );
        self.metrics.observe(
            "tunegate_monitor_request_seconds",
            &[("endpoint", info.endpoint)],
            elapsed,
        );
    }

    /// The model name as labels, windows and events use it: cut at 128 chars; after
    /// [`crate::window::MAX_MODELS`] distinct names, new ones read `other` (clients choose the
    /// name, and label cardinality must stay bounded).
    fn model_label(&self, raw: &str) -> String {
        let name: String = raw.chars().take(128).collect();
        let mut known = self.models.lock().unwrap_or_else(|p| p.into_inner());
        if known.contains(&name) {
            return name;
        }
        if known.len() >= crate::window::MAX_MODELS {
            return "other".into();
        }
        known.insert(name.clone());
        name
    }

    fn emit(
        &self,
        hits: &[Hit],
        rid: &str,
        model: &str,
        endpoint: &str,
        choice: Option<usize>,
        action: &str,
    ) {
        let ts = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        for h in hits {
            let sev = h.severity.to_string();
            let dir = h.direction.as_str();
            self.metrics.inc(
                "tunegate_monitor_findings_total",
                &[
                    ("check", h.check.id),
                    ("severity", &sev),
                    ("direction", dir),
                    ("model", model),
                ],
                1,
            );
            if h.direction == Direction::Response {
                self.metrics.inc(
                    "deployed_model_suspicious_output_total",
                    &[("model_version", model), ("issue_type", h.check.name)],
                    1,
                );
            }
            self.metrics.inc(
                "tunegate_monitor_actions_total",
                &[("action", action), ("check", h.check.id)],
                1,
            );
            let mut loc = Location {
                file: Some(endpoint.to_string()),
                ..Default::default()
            };
            loc.field = Some(match (h.direction, choice) {
                (Direction::Response, Some(i)) => format!("choices[{i}]"),
                (Direction::Response, None) => "response".into(),
                (Direction::Prompt, _) => "prompt".into(),
            });
            let ev = Event {
                ts,
                id: h.check.id.into(),
                check: h.check.name.into(),
                severity: h.severity,
                message: h.message.clone(),
                location: loc,
                evidence: h.evidence.clone(),
                request_id: rid.into(),
                model: model.into(),
                direction: dir.into(),
                action: action.into(),
            };
            if let Some(s) = self
                .events
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .as_ref()
            {
                s.send(ev, &self.metrics);
            }
        }
    }

    fn blocks(&self, hits: &[Hit]) -> bool {
        self.cfg.mode != Mode::Audit && hits.iter().any(|h| h.severity >= self.cfg.block_on)
    }

    /// Counts an uninspected response and reports it as O014; returns true when it must be
    /// blocked (fail-closed).
    fn uninspected(&self, reason: &str, rid: &str, model: &str, endpoint: &str) -> bool {
        self.metrics.inc(
            "tunegate_monitor_uninspected_total",
            &[("reason", reason)],
            1,
        );
        let closed = self.cfg.fail == FailMode::Closed && self.cfg.mode != Mode::Audit;
        if !closed {
            self.metrics
                .inc("tunegate_monitor_fail_open_total", &[("reason", reason)], 1);
        }
        let hit = Hit {
            check: &crate::checks::UNINSPECTED,
            severity: crate::checks::UNINSPECTED.severity,
            message: format!("response not inspected: {reason}"),
            evidence: json!({"reason": reason}),
            direction: Direction::Response,
        };
        self.emit(
            &[hit],
            rid,
            model,
            endpoint,
            None,
            if closed { "fail-closed" } else { "fail-open" },
        );
        closed
    }

    /// Inspects a finished response: per-choice checks, then the window. Returns every hit.
    fn finish(
        &self,
        c: &Collected,
        prompt: &str,
        rid: &str,
        model: &str,
        endpoint: &str,
    ) -> Vec<Hit> {
        let t = Instant::now();
        let mut all = Vec::new();
        for (idx, text) in &c.choices {
            let mut hits = self.inspector.inspect(text, Direction::Response);
            let wh = {
                let mut w = self.windows.lock().unwrap_or_else(|p| p.into_inner());
                let h = w.record(&self.cfg.window, model, prompt, text);
                if let Some(rate) = w.repetition_rate(model) {
                    self.metrics.set(
                        "deployed_model_output_repetition_rate",
                        &[("model_version", model)],
                        rate,
                    );
                }
                h
            };
            hits.extend(wh);
            let action = if self.blocks(&hits) { "block" } else { "audit" };
            self.emit(&hits, rid, model, endpoint, Some(*idx), action);
            all.extend(hits);
        }
        if c.choices.is_empty() && c.failed.is_none() && !c.upstream_error {
            // An empty completion still counts for the window (length collapse).
            let mut w = self.windows.lock().unwrap_or_else(|p| p.into_inner());
            let h = w.record(&self.cfg.window, model, prompt, "");
            drop(w);
            self.emit(
                &h,
                rid,
                model,
                endpoint,
                Some(0),
                if self.blocks(&h) { "block" } else { "audit" },
            );
            all.extend(h);
        }
        self.metrics.observe(
            "tunegate_monitor_inspection_seconds",
            &[("phase", "response")],
            t.elapsed().as_secs_f64(),
        );
        all
    }

    /// Saves baselines when a state file is configured.
    pub fn save_state(&self) {
        if let Some(p) = &self.cfg.state_file {
            let w = self.windows.lock().unwrap_or_else(|p| p.into_inner());
            if let Err(e) = w.save_state(p) {
                eprintln!("tunegate monitor: cannot write state {}: {e}", p.display());
            }
        }
    }
}

/// An OpenAI-shaped error body.
fn error_json(message: &str, kind: &str, code: &str) -> Vec<u8> {
    serde_json::to_vec(
        &json!({"error": {"message": message, "type": kind, "param": null, "code": code}}),
    )
    .unwrap_or_default()
}

fn error_response(
    status: StatusCode,
    message: &str,
    kind: &str,
    code: &str,
    rid: &str,
) -> Response<RespBody> {
    let mut r = Response::new(boxed_full(error_json(message, kind, code)));
    *r.status_mut() = status;
    r.headers_mut()
        .insert("content-type", HeaderValue::from_static("application/json"));
    if let Ok(v) = HeaderValue::from_str(rid) {
        r.headers_mut().insert("x-tunegate-request-id", v);
    }
    r
}

fn block_message(hits: &[Hit]) -> String {
    let mut ids: Vec<&str> = hits.iter().map(|h| h.check.id).collect();
    ids.sort_unstable();
    ids.dedup();
    format!("blocked by tunegate monitor ({})", ids.join(", "))
}

/// The SSE frame that cuts a blocked stream.
fn block_frame(msg: &str) -> Bytes {
    let mut v = b"data: ".to_vec();
    v.extend(error_json(msg, "content_filter", "tunegate_blocked"));
    v.extend_from_slice(b"\n\ndata: [DONE]\n\n");
    Bytes::from(v)
}

const HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "host",
    "content-length",
    "proxy-authenticate",
    "proxy-authorization",
];

fn copy_headers(from: &HeaderMap, to: &mut HeaderMap) {
    for (k, v) in from {
        if !HOP.contains(&k.as_str()) {
            to.append(k.clone(), v.clone());
        }
    }
}

/// Serves one request.
pub async fn handle(
    shared: Arc<Shared>,
    req: Request<Incoming>,
) -> Result<Response<RespBody>, std::convert::Infallible> {
    let start = Instant::now();
    let rid = format!(
        "tg-{:x}-{:x}",
        shared.boot,
        shared.ids.fetch_add(1, Ordering::Relaxed)
    );
    let path = req.uri().path().to_string();
    let resp = match (req.method(), path.as_str()) {
        (&Method::GET, "/metrics") => {
            let mut r = Response::new(boxed_full(shared.metrics.render()));
            r.headers_mut().insert(
                "content-type",
                HeaderValue::from_static("text/plain; version=0.0.4"),
            );
            r
        }
        (&Method::POST, "/beta/litellm_basic_guardrail_api") => litellm(&shared, req, &rid).await,
        (&Method::POST, "/v1/chat/completions") | (&Method::POST, "/v1/completions") => {
            inspected(shared.clone(), req, &rid, start).await
        }
        _ => passthrough(&shared, req, &rid).await,
    };
    Ok(resp)
}

async fn read_body(
    shared: &Shared,
    body: Incoming,
    rid: &str,
) -> Result<Bytes, Response<RespBody>> {
    match Limited::new(body, shared.cfg.limits.max_request_bytes)
        .collect()
        .await
    {
        Ok(b) => Ok(b.to_bytes()),
        Err(e)
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            Err(error_response(
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!(
                    "request body over {} bytes",
                    shared.cfg.limits.max_request_bytes
                ),
                "invalid_request_error",
                "request_too_large",
                rid,
            ))
        }
        Err(e) => Err(error_response(
            StatusCode::BAD_REQUEST,
            &format!("cannot read request body: {e}"),
            "invalid_request_error",
            "bad_request",
            rid,
        )),
    }
}

/// Sends a request upstream; maps failures to 502/504 responses.
async fn forward(
    shared: &Shared,
    parts: &hyper::http::request::Parts,
    body: Bytes,
    rid: &str,
    identity: bool,
) -> Result<Response<Incoming>, Response<RespBody>> {
    let pq = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let url = format!("{}{}", shared.upstream_base, pq);
    let mut b = Request::builder().method(parts.method.clone()).uri(url);
    if let Some(h) = b.headers_mut() {
        copy_headers(&parts.headers, h);
        if identity {
            // Inspection reads plain text: a client asking for gzip must not make the response
            // uninspectable.
            h.insert("accept-encoding", HeaderValue::from_static("identity"));
        }
    }
    let req = match b.body(full(body)) {
        Ok(r) => r,
        Err(e) => {
            return Err(error_response(
                StatusCode::BAD_REQUEST,
                &format!("bad request: {e}"),
                "invalid_request_error",
                "bad_request",
                rid,
            ))
        }
    };
    let t = Instant::now();
    let res = tokio::time::timeout(
        Duration::from_secs(shared.cfg.limits.upstream_timeout_secs),
        shared.client.request(req),
    )
    .await;
    shared.metrics.observe(
        "tunegate_monitor_upstream_seconds",
        &[],
        t.elapsed().as_secs_f64(),
    );
    match res {
        Ok(Ok(r)) => Ok(r),
        Ok(Err(e)) => Err(error_response(
            StatusCode::BAD_GATEWAY,
            &format!("upstream unreachable or failed: {e}"),
            "upstream_error",
            "bad_gateway",
            rid,
        )),
        Err(_) => Err(error_response(
            StatusCode::GATEWAY_TIMEOUT,
            "upstream did not answer in time",
            "upstream_error",
            "gateway_timeout",
            rid,
        )),
    }
}

fn relay_head(up: &Response<Incoming>, rid: &str) -> hyper::http::response::Builder {
    let mut b = Response::builder()
        .status(up.status())
        .version(hyper::Version::HTTP_11);
    if let Some(h) = b.headers_mut() {
        copy_headers(up.headers(), h);
        if let Ok(v) = HeaderValue::from_str(rid) {
            h.insert("x-tunegate-request-id", v);
        }
    }
    b
}

/// The response with `head` and `body`; a head hyper refuses becomes a 502.
fn respond(head: hyper::http::response::Builder, body: RespBody, rid: &str) -> Response<RespBody> {
    head.body(body).unwrap_or_else(|_| {
        error_response(
            StatusCode::BAD_GATEWAY,
            "bad upstream head",
            "upstream_error",
            "bad_gateway",
            rid,
        )
    })
}

/// The upstream response relayed as it is, uninspected.
fn relay_as_is(up: Response<Incoming>, rid: &str) -> Response<RespBody> {
    let head = relay_head(&up, rid);
    respond(head, incoming_body(up.into_body()), rid)
}

fn incoming_body(b: Incoming) -> RespBody {
    b.map_err(|e| Box::new(e) as BoxErr).boxed()
}

async fn passthrough(shared: &Shared, req: Request<Incoming>, rid: &str) -> Response<RespBody> {
    if !shared.cfg.passthrough {
        return error_response(
            StatusCode::NOT_FOUND,
            "path not served by the tunegate monitor",
            "invalid_request_error",
            "not_found",
            rid,
        );
    }
    shared.metrics.inc(
        "tunegate_monitor_uninspected_total",
        &[("reason", "passthrough-path")],
        1,
    );
    shared.metrics.inc(
        "tunegate_monitor_requests_total",
        &[
            ("model", ""),
            ("endpoint", "other"),
            ("outcome", "passthrough"),
        ],
        1,
    );
    let (parts, body) = req.into_parts();
    let body = match read_body(shared, body, rid).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    match forward(shared, &parts, body, rid, false).await {
        Ok(up) => relay_as_is(up, rid),
        Err(r) => r,
    }
}

/// What the request said.
struct ReqInfo {
    model: String,
    prompt: String,
    endpoint: &'static str,
}

async fn inspected(
    shared: Arc<Shared>,
    req: Request<Incoming>,
    rid: &str,
    start: Instant,
) -> Response<RespBody> {
    let endpoint: &'static str = if req.uri().path() == "/v1/chat/completions" {
        "/v1/chat/completions"
    } else {
        "/v1/completions"
    };
    let (parts, body) = req.into_parts();
    let body = match read_body(&shared, body, rid).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let parsed: Option<Value> = serde_json::from_slice(&body).ok().filter(Value::is_object);
    let Some(parsed) = parsed else {
        // Not ours to judge: the upstream answers a malformed request; counted, never silent.
        shared.metrics.inc(
            "tunegate_monitor_uninspected_total",
            &[("reason", "request-not-json")],
            1,
        );
        return match forward(&shared, &parts, body, rid, false).await {
            Ok(up) => relay_as_is(up, rid),
            Err(r) => r,
        };
    };
    let model = shared.model_label(parsed.get("model").and_then(Value::as_str).unwrap_or(""));
    let info = ReqInfo {
        prompt: sse::prompt_text(&parsed),
        model,
        endpoint,
    };
    let t = Instant::now();
    let phits = shared.inspector.inspect(&info.prompt, Direction::Prompt);
    shared.metrics.observe(
        "tunegate_monitor_inspection_seconds",
        &[("phase", "prompt")],
        t.elapsed().as_secs_f64(),
    );
    let block = shared.blocks(&phits);
    shared.emit(
        &phits,
        rid,
        &info.model,
        endpoint,
        None,
        if block { "block" } else { "audit" },
    );
    if block {
        shared.metrics.inc(
            "tunegate_monitor_requests_total",
            &[
                ("model", &info.model),
                ("endpoint", endpoint),
                ("outcome", "blocked-prompt"),
            ],
            1,
        );
        return error_response(
            StatusCode::BAD_REQUEST,
            &block_message(&phits),
            "invalid_request_error",
            "tunegate_blocked",
            rid,
        );
    }
    let up = match forward(&shared, &parts, body, rid, true).await {
        Ok(up) => up,
        Err(r) => {
            shared.metrics.inc(
                "tunegate_monitor_requests_total",
                &[
                    ("model", &info.model),
                    ("endpoint", endpoint),
                    ("outcome", "upstream-failed"),
                ],
                1,
            );
            return r;
        }
    };
    if !up.status().is_success() {
        // Passed on faithfully: status, headers and body as the upstream sent them.
        shared.metrics.inc(
            "tunegate_monitor_uninspected_total",
            &[("reason", "upstream-error-status")],
            1,
        );
        shared.metrics.inc(
            "tunegate_monitor_requests_total",
            &[
                ("model", &info.model),
                ("endpoint", endpoint),
                ("outcome", "upstream-error"),
            ],
            1,
        );
        return relay_as_is(up, rid);
    }
    let encoded = up
        .headers()
        .get("content-encoding")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| !v.eq_ignore_ascii_case("identity"));
    if encoded {
        shared.metrics.inc(
            "tunegate_monitor_requests_total",
            &[
                ("model", &info.model),
                ("endpoint", endpoint),
                ("outcome", "uninspected"),
            ],
            1,
        );
        if shared.uninspected("content-encoded", rid, &info.model, endpoint) {
            return error_response(
                StatusCode::BAD_GATEWAY,
                "response not inspectable (content-encoded); blocked by policy",
                "upstream_error",
                "tunegate_uninspected",
                rid,
            );
        }
        return relay_as_is(up, rid);
    }
    let is_sse = up
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    let mode = match (shared.cfg.mode, is_sse) {
        (Mode::Stream, false) => Mode::Buffer,
        (m, _) => m,
    };
    match mode {
        Mode::Buffer => buffered(shared, up, info, rid, is_sse, start).await,
        Mode::Audit => relayed(shared, up, info, rid, is_sse, Relay::Audit, start),
        Mode::Stream => relayed(shared, up, info, rid, is_sse, Relay::Stream, start),
    }
}

/// Reads the next upstream frame's data with the idle timeout. `Ok(None)` is the end.
async fn next_data(body: &mut Incoming, idle: Duration) -> Result<Option<Bytes>, &'static str> {
    loop {
        match tokio::time::timeout(idle, body.frame()).await {
            Err(_) => return Err("upstream-idle-timeout"),
            Ok(None) => return Ok(None),
            Ok(Some(Err(_))) => return Err("upstream-body-error"),
            Ok(Some(Ok(f))) => {
                if let Ok(d) = f.into_data() {
                    return Ok(Some(d));
                }
            }
        }
    }
}

async fn buffered(
    shared: Arc<Shared>,
    up: Response<Incoming>,
    info: ReqInfo,
    rid: &str,
    is_sse: bool,
    start: Instant,
) -> Response<RespBody> {
    let head = relay_head(&up, rid);
    let mut body = up.into_body();
    let idle = Duration::from_secs(shared.cfg.limits.idle_timeout_secs);
    let max = shared.cfg.limits.max_response_bytes;
    let mut buf: Vec<u8> = Vec::new();
    let mut failure: Option<&'static str> = None;
    loop {
        match next_data(&mut body, idle).await {
            Ok(Some(d)) => {
                if buf.len() + d.len() > max {
                    // Held, not inspected: a fail-open release still sends every byte.
                    buf.extend_from_slice(&d);
                    failure = Some("response-too-large");
                    break;
                }
                buf.extend_from_slice(&d);
            }
            Ok(None) => break,
            Err(r) => {
                failure = Some(r);
                break;
            }
        }
    }
    let collected = if failure.is_some() {
        Collected::default()
    } else {
        let mut acc = Accumulator::new(&shared.cfg.limits, is_sse);
        acc.scan(&buf);
        acc.finish()
    };
    let failure = failure.or(collected.failed);
    let outcome;
    let resp = if let Some(reason) = failure {
        let closed = shared.uninspected(reason, rid, &info.model, info.endpoint);
        if closed {
            outcome = "fail-closed";
            error_response(
                StatusCode::BAD_GATEWAY,
                &format!("response not inspectable ({reason}); blocked by policy"),
                "upstream_error",
                "tunegate_uninspected",
                rid,
            )
        } else if reason == "response-too-large" {
            // Fail-open: release what was held, then the rest as it comes, uninspected.
            outcome = "fail-open";
            let tail = RelayBody::new(body, idle, Some(Bytes::from(buf)), None);
            respond(head, tail.boxed(), rid)
        } else if matches!(reason, "upstream-idle-timeout" | "upstream-body-error") {
            // The upstream broke mid-body: no whole response exists to release.
            outcome = "upstream-failed";
            error_response(
                StatusCode::BAD_GATEWAY,
                &format!("upstream response failed ({reason})"),
                "upstream_error",
                "bad_gateway",
                rid,
            )
        } else {
            outcome = "fail-open";
            respond(head, boxed_full(buf), rid)
        }
    } else {
        let hits = shared.finish(&collected, &info.prompt, rid, &info.model, info.endpoint);
        if shared.blocks(&hits) {
            outcome = "blocked";
            error_response(
                StatusCode::BAD_REQUEST,
                &block_message(&hits),
                "invalid_request_error",
                "tunegate_blocked",
                rid,
            )
        } else {
            outcome = "ok";
            respond(head, boxed_full(buf), rid)
        }
    };
    shared.outcome(&info, outcome, start.elapsed().as_secs_f64());
    let mut resp = resp;
    if let Ok(v) = HeaderValue::from_str(&format!("{:.3}", start.elapsed().as_secs_f64() * 1000.0))
    {
        resp.headers_mut().insert("x-tunegate-inspection-ms", v);
    }
    resp
}

/// The text of a response gathered as its bytes pass: an SSE parser, or a bounded buffer for a
/// whole JSON body. Audit, buffer and stream modes all read responses through it.
struct Accumulator {
    is_sse: bool,
    parser: SseParser,
    json_buf: Vec<u8>,
    max_bytes: usize,
    max_choices: usize,
    /// Set when the response stopped being inspectable.
    failure: Option<&'static str>,
}

impl Accumulator {
    fn new(l: &crate::config::Limits, is_sse: bool) -> Self {
        Accumulator {
            is_sse,
            parser: SseParser::new(l.max_line_bytes, l.max_choices, l.max_response_bytes),
            json_buf: Vec::new(),
            max_bytes: l.max_response_bytes,
            max_choices: l.max_choices,
            failure: None,
        }
    }

    /// Reads bytes the caller relays itself.
    fn scan(&mut self, d: &[u8]) {
        if self.failure.is_some() {
            return;
        }
        if self.is_sse {
            self.parser.scan(d);
            self.failure = self.parser.collected.failed;
        } else if self.json_buf.len() + d.len() > self.max_bytes {
            self.failure = Some("response-too-large");
            self.json_buf = Vec::new();
        } else {
            self.json_buf.extend_from_slice(d);
        }
    }

    /// The whole response's text (flushing an unterminated last SSE event); `failed` is set
    /// when inspection gave up on the way.
    fn finish(mut self) -> Collected {
        let mut c = if self.is_sse {
            self.parser.scan(b"\n\n");
            self.parser.collected
        } else if self.failure.is_none() {
            sse::parse_body(&self.json_buf, self.max_choices, self.max_bytes)
        } else {
            Collected::default()
        };
        if c.failed.is_none() {
            c.failed = self.failure;
        }
        c
    }
}

/// What a relayed body does with the bytes passing through it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Relay {
    /// Forward each frame at once and read it on the way; inspect after the end, off the
    /// response path (the inspection queue).
    Audit,
    /// Hold each SSE event until it is complete and the rolling window over the choices it grew
    /// is clean, then forward it byte for byte; on a block, a provider-shaped error event and
    /// the end of the stream.
    Stream,
}

/// How a relayed body ended.
enum End {
    /// The upstream body ended (or hyper saw its end).
    Done,
    /// The upstream failed mid-body.
    Failed(&'static str),
    /// The client went away before the end.
    ClientGone,
}

/// A response body relayed from the upstream with no task and no channel: frames are read,
/// inspected and handed on inside `poll_frame`, with an idle timeout between upstream frames.
/// Without a state it is a plain relay (buffer mode's fail-open remainder, already counted).
struct RelayBody {
    inner: Incoming,
    idle: Duration,
    sleep: Pin<Box<tokio::time::Sleep>>,
    /// Bytes to hand out before reading the upstream again.
    queued: Option<Bytes>,
    /// Set when nothing follows `queued` (a block, or the upstream's end in stream mode).
    finished: bool,
    st: Option<Box<RelayState>>,
}

struct RelayState {
    shared: Arc<Shared>,
    info: ReqInfo,
    rid: String,
    relay: Relay,
    acc: Accumulator,
    /// Stream mode: per choice, the text length already inspected.
    scanned: std::collections::HashMap<usize, usize>,
    /// Stream mode: the stream was cut.
    blocked: bool,
    /// The failure was already counted uninspected (stream mode counts parse failures when
    /// they happen, to decide fail-open or fail-closed then).
    counted: bool,
    start: Instant,
}

/// What stream mode does with one upstream chunk.
enum Step {
    /// Forward these bytes (possibly none yet: an event is still incomplete).
    Forward(Vec<u8>),
    /// Cut the stream with this frame.
    Cut(Bytes),
}

impl RelayState {
    /// Stream mode: parse `d`, inspect the new text of every choice it grew (with an overlap so
    /// a match straddling two events is seen whole) and say what goes to the client.
    fn step(&mut self, d: &[u8]) -> Step {
        let sh = self.shared.clone();
        if self.acc.failure.is_some() {
            // Inspection gave up earlier and the policy is fail-open: the rest passes as is.
            return Step::Forward(self.acc.parser.feed(d));
        }
        let ready = self.acc.parser.feed(d);
        if let Some(reason) = self.acc.parser.collected.failed {
            self.acc.failure = Some(reason);
            self.counted = true;
            if sh.uninspected(reason, &self.rid, &self.info.model, self.info.endpoint) {
                self.blocked = true;
                return Step::Cut(block_frame(&format!(
                    "response not inspectable ({reason}); blocked by policy"
                )));
            }
            return Step::Forward(ready);
        }
        let window = sh.cfg.limits.stream_window_chars;
        let mut hits = Vec::new();
        for idx in &self.acc.parser.touched {
            if let Some(text) = self.acc.parser.collected.choices.get(idx) {
                let seen = self.scanned.insert(*idx, text.len()).unwrap_or(0);
                let tail = tail_chars(text, text.len() - seen + window);
                hits.extend(sh.inspector.inspect(tail, Direction::Response));
            }
        }
        if sh.blocks(&hits) {
            let block: Vec<Hit> = hits
                .into_iter()
                .filter(|h| h.severity >= sh.cfg.block_on)
                .collect();
            sh.emit(
                &block,
                &self.rid,
                &self.info.model,
                self.info.endpoint,
                None,
                "block",
            );
            self.blocked = true;
            return Step::Cut(block_frame(&block_message(&block)));
        }
        Step::Forward(ready)
    }

    /// Final accounting: the verdict (audit mode queues it), events, metrics, windows.
    fn end(self, end: End) {
        let sh = self.shared.clone();
        let elapsed = self.start.elapsed().as_secs_f64();
        let (rid, model, endpoint) = (&self.rid, &self.info.model, self.info.endpoint);
        match (end, self.acc.failure) {
            // A cut stream was reported when it was cut.
            _ if self.blocked => sh.done(&self.info, "blocked", elapsed),
            (End::ClientGone, _) => {
                sh.uninspected("client-disconnected", rid, model, endpoint);
                sh.done(&self.info, "client-gone", elapsed);
            }
            (End::Failed(reason), _) | (End::Done, Some(reason)) => {
                if !self.counted {
                    sh.uninspected(reason, rid, model, endpoint);
                }
                sh.done(&self.info, "fail-open", elapsed);
            }
            (End::Done, None) => {
                let collected = self.acc.finish();
                match self.relay {
                    Relay::Audit => sh.enqueue(Job {
                        collected,
                        info: self.info,
                        rid: self.rid,
                        elapsed,
                    }),
                    Relay::Stream => {
                        let outcome = if let Some(reason) = collected.failed {
                            sh.uninspected(reason, rid, model, endpoint);
                            "fail-open"
                        } else {
                            sh.finish(&collected, &self.info.prompt, rid, model, endpoint);
                            "ok"
                        };
                        sh.done(&self.info, outcome, elapsed);
                    }
                }
            }
        }
    }
}

impl RelayBody {
    fn new(
        inner: Incoming,
        idle: Duration,
        queued: Option<Bytes>,
        st: Option<Box<RelayState>>,
    ) -> Self {
        RelayBody {
            inner,
            idle,
            sleep: Box::pin(tokio::time::sleep(idle)),
            queued,
            finished: false,
            st,
        }
    }

    fn end(&mut self, end: End) {
        if let Some(st) = self.st.take() {
            st.end(end);
        }
    }

    fn stream_mode(&self) -> bool {
        self.st.as_ref().is_some_and(|s| s.relay == Relay::Stream)
    }
}

impl Body for RelayBody {
    type Data = Bytes;
    type Error = BoxErr;
    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxErr>>> {
        let this = self.get_mut();
        loop {
            if let Some(b) = this.queued.take() {
                if !b.is_empty() {
                    return Poll::Ready(Some(Ok(Frame::data(b))));
                }
            }
            if this.finished {
                this.end(End::Done);
                return Poll::Ready(None);
            }
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Ready(Some(Ok(f))) => {
                    let next = tokio::time::Instant::now() + this.idle;
                    this.sleep.as_mut().reset(next);
                    let stream = this.stream_mode();
                    let Some(st) = this.st.as_mut() else {
                        return Poll::Ready(Some(Ok(f)));
                    };
                    if !stream {
                        if let Some(d) = f.data_ref() {
                            st.acc.scan(d);
                        }
                        return Poll::Ready(Some(Ok(f)));
                    }
                    // Stream mode forwards what it has inspected; trailers carry no text and
                    // would end the body before held bytes, so they are dropped.
                    let Ok(d) = f.into_data() else { continue };
                    match st.step(&d) {
                        Step::Forward(ready) => this.queued = Some(Bytes::from(ready)),
                        Step::Cut(frame) => {
                            this.queued = Some(frame);
                            this.finished = true;
                        }
                    }
                }
                Poll::Ready(Some(Err(e))) => {
                    this.end(End::Failed("upstream-body-error"));
                    return Poll::Ready(Some(Err(Box::new(e))));
                }
                Poll::Ready(None) => {
                    // Stream mode holds back an unterminated last event; it goes out now.
                    if let Some(st) = this.st.as_mut().filter(|s| s.relay == Relay::Stream) {
                        if st.acc.failure.is_none() {
                            this.queued = Some(Bytes::from(st.acc.parser.take_rest()));
                        }
                    }
                    this.finished = true;
                }
                Poll::Pending => {
                    if std::future::Future::poll(this.sleep.as_mut(), cx).is_ready() {
                        this.end(End::Failed("upstream-idle-timeout"));
                        return Poll::Ready(Some(Err("upstream-idle-timeout".into())));
                    }
                    return Poll::Pending;
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        if self.queued.as_ref().is_some_and(|b| !b.is_empty()) {
            return false;
        }
        if self.finished {
            return self.st.is_none();
        }
        // Stream mode may still hold an unterminated event when the upstream ends.
        !self.stream_mode() && self.inner.is_end_stream()
    }
}

impl Drop for RelayBody {
    fn drop(&mut self) {
        if self.st.is_some() {
            let end = if self.finished || self.inner.is_end_stream() {
                End::Done
            } else {
                End::ClientGone
            };
            self.end(end);
        }
    }
}

/// Audit and stream modes: the response relayed through a [`RelayBody`].
fn relayed(
    shared: Arc<Shared>,
    up: Response<Incoming>,
    info: ReqInfo,
    rid: &str,
    is_sse: bool,
    relay: Relay,
    start: Instant,
) -> Response<RespBody> {
    let head = relay_head(&up, rid);
    let l = &shared.cfg.limits;
    let idle = Duration::from_secs(l.idle_timeout_secs);
    let acc = Accumulator::new(l, is_sse);
    shared.inflight.fetch_add(1, Ordering::SeqCst);
    let st = RelayState {
        shared,
        info,
        rid: rid.to_string(),
        relay,
        acc,
        scanned: std::collections::HashMap::new(),
        blocked: false,
        counted: false,
        start,
    };
    let body = RelayBody::new(up.into_body(), idle, None, Some(Box::new(st)));
    respond(head, body.boxed(), rid)
}

fn tail_chars(s: &str, n: usize) -> &str {
    if s.len() <= n {
        return s;
    }
    let mut start = s.len() - n;
    while !s.is_char_boundary(start) {
        start += 1;
    }
    // Start the window at a char boundary; `n` bytes covers at least n/4 chars.
    &s[start..]
}

/// LiteLLM's generic guardrail API (`POST /beta/litellm_basic_guardrail_api`).
async fn litellm(shared: &Shared, req: Request<Incoming>, rid: &str) -> Response<RespBody> {
    let body = match read_body(shared, req.into_body(), rid).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let bad = |m: &str| {
        error_response(
            StatusCode::BAD_REQUEST,
            m,
            "invalid_request_error",
            "bad_request",
            rid,
        )
    };
    let Ok(v) = serde_json::from_slice::<Value>(&body) else {
        return bad("body is not JSON");
    };
    let Some(texts) = v.get("texts").and_then(Value::as_array) else {
        return bad("missing \"texts\" array");
    };
    let dir = match v.get("input_type").and_then(Value::as_str) {
        Some("request") | None => Direction::Prompt,
        Some("response") => Direction::Response,
        Some(o) => return bad(&format!("input_type '{o}' is not request or response")),
    };
    let model = shared.model_label(
        v.pointer("/request_data/model")
            .and_then(Value::as_str)
            .unwrap_or("litellm"),
    );
    let call = v
        .get("litellm_call_id")
        .and_then(Value::as_str)
        .unwrap_or(rid)
        .to_string();
    let mut hits = Vec::new();
    for (i, t) in texts
        .iter()
        .enumerate()
        .take(shared.cfg.limits.max_choices.max(1) * 8)
    {
        let Some(t) = t.as_str() else { continue };
        let mut h = shared.inspector.inspect(t, dir);
        if dir == Direction::Response {
            let mut w = shared.windows.lock().unwrap_or_else(|p| p.into_inner());
            h.extend(w.record(&shared.cfg.window, &model, &format!("{call}#{i}"), t));
        }
        hits.extend(h);
    }
    let block = hits.iter().any(|h| h.severity >= shared.cfg.block_on);
    shared.emit(
        &hits,
        &call,
        &model,
        "/beta/litellm_basic_guardrail_api",
        None,
        if block { "block" } else { "audit" },
    );
    shared.metrics.inc(
        "tunegate_monitor_requests_total",
        &[
            ("model", &model),
            ("endpoint", "litellm-guardrail"),
            ("outcome", if block { "blocked" } else { "ok" }),
        ],
        1,
    );
    let out = if block {
        json!({"action": "BLOCKED", "blocked_reason": block_message(&hits)})
    } else {
        json!({"action": "NONE"})
    };
    let mut r = Response::new(boxed_full(serde_json::to_vec(&out).unwrap_or_default()));
    r.headers_mut()
        .insert("content-type", HeaderValue::from_static("application/json"));
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::EventSink;
    use crate::window::Windows;

    fn job(n: u32) -> Job {
        let mut collected = Collected::default();
        collected.choices.insert(0, format!("answer number {n}"));
        Job {
            collected,
            info: ReqInfo {
                model: "m".into(),
                prompt: format!("question {n}"),
                endpoint: "/v1/chat/completions",
            },
            rid: format!("r{n}"),
            elapsed: 0.001,
        }
    }

    #[test]
    fn a_full_inspection_queue_counts_the_response_uninspected() {
        let mut cfg = MonitorConfig::default();
        cfg.limits.inspect_queue = 1;
        let metrics = Arc::new(Metrics::default());
        let (sink, task) = EventSink::start(None, None, metrics.clone());
        assert!(task.is_none());
        let inspector = Inspector::new(&cfg).unwrap();
        let sh = Shared::new(
            cfg,
            "http://127.0.0.1:9",
            inspector,
            Windows::default(),
            metrics.clone(),
            sink,
        )
        .unwrap();
        // No inspection task runs: the first response fills the queue, the second finds it full.
        sh.inflight.fetch_add(2, Ordering::SeqCst);
        sh.enqueue(job(1));
        sh.enqueue(job(2));
        let count = |name, l: &[(&'static str, &str)]| metrics.counter(name, l);
        assert_eq!(
            count(
                "tunegate_monitor_uninspected_total",
                &[("reason", "inspection-queue-full")]
            ),
            1
        );
        assert_eq!(
            count(
                "tunegate_monitor_findings_total",
                &[("check", crate::checks::UNINSPECTED.id)]
            ),
            1
        );
        assert_eq!(
            count(
                "tunegate_monitor_requests_total",
                &[("outcome", "fail-open")]
            ),
            1
        );
        assert_eq!(sh.inflight.load(Ordering::SeqCst), 1);
        // The queued response is inspected when the task takes it.
        let queued = sh
            .queue_rx
            .lock()
            .unwrap()
            .as_mut()
            .unwrap()
            .try_recv()
            .unwrap();
        assert_eq!(queued.rid, "r1");
        sh.inspect_job(queued);
        assert_eq!(
            count("tunegate_monitor_requests_total", &[("outcome", "ok")]),
            1
        );
        assert_eq!(
            count("tunegate_monitor_uninspected_total", &[]),
            1,
            "only the dropped response is uninspected"
        );
        assert_eq!(sh.inflight.load(Ordering::SeqCst), 0);
    }
}
