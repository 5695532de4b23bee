//! tunegate-monitor: the production stage. An OpenAI-compatible proxy that inspects
//! `/v1/chat/completions` and `/v1/completions` traffic (streaming and not, `n > 1`), runs
//! per-response checks (secrets, deny patterns, injection markers, invisible Unicode, trigger
//! tokens, dangerous content, degenerate repetition) and per-model window checks (repetition
//! rate, identical-response clusters, length anomalies, refusal collapse), writes security
//! events as JSON lines, exports Prometheus metrics, and answers LiteLLM's generic guardrail API.
//!
//! Modes: `audit` (forward, inspect in parallel), `buffer` (hold until the verdict) and `stream`
//! (forward each SSE event after a rolling inspection; cut with an error frame on a block).
#![deny(missing_docs)]

pub mod checks;
pub mod config;
pub mod events;
pub mod inspect;
pub mod metrics;
pub mod proxy;
pub mod sse;
pub mod window;

pub use checks::CHECKS;
pub use config::{FailMode, Mode, MonitorConfig};

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Errors of the monitor library.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A config file that does not parse (names the file; the message names the key).
    #[error("{file}: {message}")]
    Config {
        /// The file.
        file: String,
        /// What is wrong, with the key.
        message: String,
    },
    /// Bad input: an option, a pattern, a report or state file.
    #[error("{0}")]
    Input(String),
    /// Binding or serving failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// A running monitor.
pub struct Monitor {
    addr: SocketAddr,
    shared: Arc<proxy::Shared>,
    stop: watch::Sender<bool>,
    server: tokio::task::JoinHandle<()>,
    writer: Option<tokio::task::JoinHandle<()>>,
}

/// How long shutdown waits for open connections to finish.
const DRAIN: Duration = Duration::from_secs(10);
/// How often baselines are saved while running.
const SAVE_EVERY: Duration = Duration::from_secs(30);

impl Monitor {
    /// Binds `cfg.listen`, connects nothing yet, and starts serving. Needs a Tokio runtime.
    pub async fn start(cfg: MonitorConfig) -> Result<Monitor, Error> {
        let upstream = cfg.upstream.clone().ok_or_else(|| {
            Error::Input("no upstream given (--upstream or upstream = in the config)".into())
        })?;
        let listen = cfg
            .listen
            .clone()
            .unwrap_or_else(|| "127.0.0.1:8471".into());
        let inspector = inspect::Inspector::new(&cfg)?;
        let state = match &cfg.state_file {
            Some(p) => window::Windows::load_state(p)?,
            None => None,
        };
        let windows = window::Windows::from_state(state);
        let metrics = Arc::new(metrics::Metrics::default());
        let (sink, writer) = events::EventSink::start(
            cfg.events.file.clone(),
            cfg.events.webhook.clone(),
            metrics.clone(),
        );
        if let Some(url) = &cfg.events.webhook {
            if !url.starts_with("http://") {
                return Err(Error::Input(format!(
                    "events.webhook '{url}' must be an http:// URL"
                )));
            }
        }
        let shared = Arc::new(proxy::Shared::new(
            cfg, &upstream, inspector, windows, metrics, sink,
        )?);
        shared.start_inspection();
        let listener = tokio::net::TcpListener::bind(&listen)
            .await
            .map_err(|e| Error::Input(format!("cannot listen on {listen}: {e}")))?;
        let addr = listener.local_addr()?;
        let (stop, stop_rx) = watch::channel(false);
        let server = tokio::spawn(serve(listener, shared.clone(), stop_rx));
        Ok(Monitor {
            addr,
            shared,
            stop,
            server,
            writer,
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The metrics.
    pub fn metrics(&self) -> &metrics::Metrics {
        &self.shared.metrics
    }

    /// Waits (up to 10 s) until every forwarded response has been inspected: in audit and
    /// stream modes inspection finishes after the client got the last byte.
    pub async fn settle(&self) {
        let t = std::time::Instant::now();
        while self
            .shared
            .inflight
            .load(std::sync::atomic::Ordering::SeqCst)
            > 0
            && t.elapsed() < DRAIN
        {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// Trigger tokens in use.
    pub fn triggers(&self) -> Vec<String> {
        self.shared.inspector.triggers().to_vec()
    }

    /// Stops accepting, lets open connections finish (up to 10 s), saves baselines and flushes
    /// events.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        let _ = (&mut self.server).await;
        self.settle().await;
        self.shared.save_state();
        let sink = self
            .shared
            .events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        drop(sink);
        if let Some(w) = self.writer.take() {
            let _ = tokio::time::timeout(DRAIN, w).await;
        }
    }
}

async fn serve(
    listener: tokio::net::TcpListener,
    shared: Arc<proxy::Shared>,
    mut stop: watch::Receiver<bool>,
) {
    let mut conns = tokio::task::JoinSet::new();
    let mut save = tokio::time::interval(SAVE_EVERY);
    save.tick().await;
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            _ = save.tick() => shared.save_state(),
            acc = listener.accept() => {
                let (sock, _) = match acc {
                    Ok(a) => a,
                    Err(_) => {
                        // Out of descriptors and the like: back off, never die.
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = sock.set_nodelay(true);
                let sh = shared.clone();
                let mut stop_c = stop.clone();
                conns.spawn(async move {
                    let svc = service_fn(move |req| proxy::handle(sh.clone(), req));
                    let conn = http1::Builder::new()
                        .timer(hyper_util::rt::TokioTimer::new())
                        .header_read_timeout(Duration::from_secs(30))
                        .max_buf_size(256 << 10)
                        .serve_connection(TokioIo::new(sock), svc);
                    tokio::pin!(conn);
                    tokio::select! {
                        _ = conn.as_mut() => {}
                        _ = stop_c.changed() => {
                            conn.as_mut().graceful_shutdown();
                            let _ = conn.await;
                        }
                    }
                });
                while conns.try_join_next().is_some() {}
            }
        }
    }
    drop(listener);
    let _ = tokio::time::timeout(DRAIN, async { while conns.join_next().await.is_some() {} }).await;
    conns.abort_all();
}

/// Runs the monitor until SIGINT or SIGTERM (the CLI's entry point).
pub fn run_until_signal(cfg: MonitorConfig) -> Result<(), Error> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let m = Monitor::start(cfg).await?;
        eprintln!(
            "tunegate monitor: listening on http://{} (mode {:?}, {} trigger token(s))",
            m.addr(),
            m.shared.cfg.mode,
            m.triggers().len()
        );
        for n in m.shared.inspector.notes() {
            eprintln!("tunegate monitor: note: {n}");
        }
        wait_for_signal().await;
        eprintln!("tunegate monitor: shutting down");
        m.shutdown().await;
        Ok(())
    })
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
