//! `registry serve`: a JSON API and server-rendered HTML pages over the same store.
//!
//! Reads (pages and `GET /api/v1/...`) are open, like the registry file itself to its readers;
//! every change needs `Authorization: Bearer TOKEN` of a principal whose role allows it
//! (401 without a valid token, 403 for the wrong role). Bind to loopback unless a proxy with
//! TLS sits in front.
use crate::error::Error;
use crate::registry::{evidence_from_bytes, Registry};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use serde_json::json;
use std::fmt::Write as _;
use std::sync::Arc;

type Resp = Response<Full<Bytes>>;

/// Serves until the listener fails or the task is dropped.
pub async fn serve(reg: Arc<Registry>, listener: tokio::net::TcpListener) -> std::io::Result<()> {
    loop {
        let (stream, _) = listener.accept().await?;
        let reg = reg.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| {
                let reg = reg.clone();
                async move { Ok::<_, std::convert::Infallible>(handle(reg, req).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                .await;
        });
    }
}

fn resp(status: StatusCode, ctype: &str, body: impl Into<Bytes>) -> Resp {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut()
        .insert("content-type", ctype.parse().expect("static header"));
    r
}

fn json_resp(status: StatusCode, v: serde_json::Value) -> Resp {
    resp(
        status,
        "application/json",
        serde_json::to_vec_pretty(&v).unwrap_or_default(),
    )
}

fn err_resp(e: Error) -> Resp {
    let status = match &e {
        Error::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
        Error::Forbidden(_) => StatusCode::FORBIDDEN,
        Error::Input(m) if m.starts_with("no version") => StatusCode::NOT_FOUND,
        Error::Input(_) | Error::Policy(_) => StatusCode::BAD_REQUEST,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    let mut r = json_resp(status, json!({"error": e.to_string()}));
    if status == StatusCode::UNAUTHORIZED {
        r.headers_mut()
            .insert("www-authenticate", "Bearer".parse().expect("static header"));
    }
    r
}

fn pct_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Some(v) = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(if b[i] == b'+' { b' ' } else { b[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn query(req: &Request<Incoming>, key: &str) -> Option<String> {
    req.uri().query()?.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        (pct_decode(k) == key).then(|| pct_decode(v))
    })
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// Splits `NAME/versions/V[/ACTION]` (NAME may contain '/').
fn split_version(rest: &str) -> Option<(String, i64, String)> {
    let i = rest.rfind("/versions/")?;
    let name = pct_decode(&rest[..i]);
    let tail = &rest[i + "/versions/".len()..];
    let (v, action) = tail.split_once('/').unwrap_or((tail, ""));
    Some((name, v.parse().ok()?, action.to_string()))
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f)
        .await
        .expect("registry task panicked")
}

async fn handle(reg: Arc<Registry>, req: Request<Incoming>) -> Resp {
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    if method == Method::GET {
        let r = reg.clone();
        return blocking(move || get(&r, &path)).await;
    }
    if method != Method::POST {
        return resp(StatusCode::METHOD_NOT_ALLOWED, "text/plain", "GET or POST");
    }
    // Every change needs a principal.
    let token = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|t| t.trim().to_string());
    let Some(token) = token else {
        return err_resp(Error::Unauthenticated(
            "send Authorization: Bearer TOKEN".into(),
        ));
    };
    let to = query(&req, "to");
    let ev_name = query(&req, "name").unwrap_or_else(|| "upload".into());
    let kind = query(&req, "kind");
    let body = match Limited::new(
        req.into_body(),
        crate::registry::MAX_EVIDENCE_BYTES as usize,
    )
    .collect()
    .await
    {
        Ok(b) => b.to_bytes().to_vec(),
        Err(_) => return err_resp(Error::Input("request body too large or unreadable".into())),
    };
    blocking(move || {
        let actor = match reg.authenticate(None, &token) {
            Ok(a) => a,
            Err(e) => return err_resp(e),
        };
        let Some(rest) = path.strip_prefix("/api/v1/models/") else {
            return resp(StatusCode::NOT_FOUND, "text/plain", "not found");
        };
        if let Some(name) = rest.strip_suffix("/rollback") {
            let name = pct_decode(name);
            let Some(v) = to.and_then(|t| t.parse::<i64>().ok()) else {
                return err_resp(Error::Input("rollback needs ?to=VERSION".into()));
            };
            return match reg.rollback(&actor, &name, v) {
                Ok(()) => json_resp(StatusCode::OK, json!({"model": name, "production": v})),
                Err(e) => err_resp(e),
            };
        }
        let Some((name, v, action)) = split_version(rest) else {
            return resp(StatusCode::NOT_FOUND, "text/plain", "not found");
        };
        let out = match action.as_str() {
            "promote" => {
                let stage = to.unwrap_or_default();
                reg.promote(&actor, &name, v, &stage).map(|e| {
                    json_resp(
                        if e.allowed() { StatusCode::OK } else { StatusCode::CONFLICT },
                        json!({"promoted": e.allowed(), "to": stage, "chain": e.items, "report": e.report}),
                    )
                })
            }
            "approve" => reg
                .approve(&actor, &name, v)
                .map(|_| json_resp(StatusCode::OK, json!({"approved": true, "by": actor.name}))),
            "demote" => reg
                .demote(&actor, &name, v)
                .map(|to| json_resp(StatusCode::OK, json!({"stage": to}))),
            "archive" => reg
                .archive(&actor, &name, v)
                .map(|_| json_resp(StatusCode::OK, json!({"stage": "archived"}))),
            "evidence" => evidence_from_bytes(&ev_name, kind, body, &actor.name)
                .and_then(|e| reg.attach_loaded(&actor, &name, v, &[e]))
                .map(|_| json_resp(StatusCode::OK, json!({"attached": ev_name}))),
            _ => return resp(StatusCode::NOT_FOUND, "text/plain", "not found"),
        };
        out.unwrap_or_else(err_resp)
    })
    .await
}

fn get(reg: &Registry, path: &str) -> Resp {
    let r = match path {
        "/" | "/models" => page_models(reg),
        "/audit" => page_audit(reg),
        "/api/v1/models" => reg
            .versions(None)
            .map(|v| json_resp(StatusCode::OK, json!({"versions": v}))),
        "/api/v1/audit" => reg.audit().map(|a| {
            let rep = crate::audit::verify(&a);
            json_resp(
                StatusCode::OK,
                json!({"verified": rep.findings.is_empty(), "report": rep, "entries": a}),
            )
        }),
        p => {
            if let Some(rest) = p.strip_prefix("/api/v1/models/") {
                match split_version(rest) {
                    Some((name, v, a)) if a.is_empty() => reg
                        .version(&name, v)
                        .and_then(|(ver, _, ap)| {
                            let e = reg.evaluate(&name, v, "production")?;
                            Ok(json_resp(StatusCode::OK, json!({"version": ver, "approvals": ap,
                                "production_allowed": e.allowed(), "chain": e.items, "report": e.report})))
                        }),
                    _ => Ok(resp(StatusCode::NOT_FOUND, "text/plain", "not found")),
                }
            } else if let Some(rest) = p.strip_prefix("/models/") {
                match split_version(rest) {
                    Some((name, v, a)) if a.is_empty() => page_version(reg, &name, v),
                    _ => page_model(reg, &pct_decode(rest.trim_end_matches('/'))),
                }
            } else {
                Ok(resp(StatusCode::NOT_FOUND, "text/plain", "not found"))
            }
        }
    };
    r.unwrap_or_else(err_resp)
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:.35em .7em;text-align:left;vertical-align:top}th{background:#f3f3f3}.ok{color:#fff;background:#2a7d2a}.bad{color:#fff;background:#b3261e}.warn{background:#f0c040}.tag{padding:.1em .5em;border-radius:.3em;font-size:.9em}code{font-size:.85em;word-break:break-all}td{max-width:40em}nav a{margin-right:1em}.chain{display:flex;gap:.5em;align-items:stretch;flex-wrap:wrap}.link{border:2px solid #888;border-radius:.5em;padding:.5em .8em;min-width:9em}.link.ok{border-color:#2a7d2a;background:#e8f5e8;color:#222}.link.bad{border-color:#b3261e;background:#fbe9e7;color:#222}.arrow{align-self:center;font-size:1.5em}";

fn page(title: &str, body: &str) -> Resp {
    let html = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{t} · tunegate registry</title><style>{STYLE}</style></head><body><nav><a href=\"/\">models</a><a href=\"/audit\">audit log</a></nav><h1>{t}</h1>{body}</body></html>",
        t = esc(title)
    );
    resp(StatusCode::OK, "text/html; charset=utf-8", html)
}

fn stage_tag(s: &str) -> String {
    let class = match s {
        "production" => "ok",
        "staging" => "warn",
        _ => "",
    };
    format!("<span class=\"tag {class}\">{}</span>", esc(s))
}

fn page_models(reg: &Registry) -> crate::Result<Resp> {
    let vs = reg.versions(None)?;
    let mut b = String::from(
        "<table><tr><th>model</th><th>versions</th><th>production</th><th>staging</th></tr>",
    );
    let mut names: Vec<&str> = vs.iter().map(|v| v.model.as_str()).collect();
    names.dedup();
    for n in names {
        let of: Vec<_> = vs.iter().filter(|v| v.model == n).collect();
        let at = |s: &str| {
            of.iter()
                .filter(|v| v.stage == s)
                .map(|v| {
                    format!(
                        "<a href=\"/models/{n}/versions/{0}\">v{0}</a>",
                        v.version,
                        n = esc(n)
                    )
                })
                .collect::<Vec<_>>()
                .join(" ")
        };
        let _ = write!(
            b,
            "<tr><td><a href=\"/models/{0}\">{0}</a></td><td>{1}</td><td>{2}</td><td>{3}</td></tr>",
            esc(n),
            of.len(),
            at("production"),
            at("staging")
        );
    }
    b.push_str("</table>");
    Ok(page("Models", &b))
}

fn page_model(reg: &Registry, name: &str) -> crate::Result<Resp> {
    let vs = reg.versions(Some(name))?;
    if vs.is_empty() {
        return Ok(resp(StatusCode::NOT_FOUND, "text/plain", "no such model"));
    }
    let mut b = String::from("<table><tr><th>version</th><th>stage</th><th>registered by</th><th>registered</th><th>root digest</th></tr>");
    for v in &vs {
        let _ = write!(
            b,
            "<tr><td><a href=\"/models/{n}/versions/{ver}\">v{ver}</a></td><td>{}</td><td>{}</td><td>{}</td><td><code>sha256:{}</code></td></tr>",
            stage_tag(&v.stage),
            esc(&v.registered_by),
            crate::time::format(v.registered_at),
            esc(&v.root),
            n = esc(name),
            ver = v.version
        );
    }
    b.push_str("</table>");
    Ok(page(name, &b))
}

fn page_version(reg: &Registry, name: &str, v: i64) -> crate::Result<Resp> {
    let (ver, _, approvals) = reg.version(name, v)?;
    let e = reg.evaluate(name, v, "production")?;
    let mut b = format!(
        "<p>stage {} · registered by <b>{}</b> at {} · root <code>sha256:{}</code> · {} files</p>",
        stage_tag(&ver.stage),
        esc(&ver.registered_by),
        crate::time::format(ver.registered_at),
        esc(&ver.root),
        ver.files.len()
    );
    b.push_str("<h2>Evidence chain</h2><div class=\"chain\">");
    for (i, kind) in crate::policy::KINDS.iter().enumerate() {
        let items: Vec<_> = e.items.iter().filter(|it| it.kind == *kind).collect();
        if items.is_empty()
            && !["dataset", "base", "provenance", "signature", "model"].contains(kind)
        {
            continue;
        }
        if i > 0 {
            b.push_str("<div class=\"arrow\">→</div>");
        }
        let good = items.iter().any(|it| it.status == "ok");
        let class = if good { "ok" } else { "bad" };
        let status = if items.is_empty() {
            "missing".to_string()
        } else {
            items
                .iter()
                .map(|it| it.status.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let _ = write!(
            b,
            "<div class=\"link {class}\"><b>{}</b><br>{}</div>",
            esc(kind),
            esc(&status)
        );
    }
    b.push_str("</div><h2>Evidence</h2><table><tr><th>kind</th><th>file</th><th>status</th><th>signer</th><th>detail</th></tr>");
    for it in &e.items {
        let class = if it.status == "ok" { "ok" } else { "bad" };
        let _ = write!(
            b,
            "<tr><td>{}</td><td>{}<br><code>{}</code></td><td><span class=\"tag {class}\">{}</span></td><td>{}</td><td>{}</td></tr>",
            esc(&it.kind),
            esc(&it.name),
            esc(&crate::eval::short(&it.sha256, 16)),
            esc(&it.status),
            esc(it.signer.as_deref().unwrap_or("—")),
            esc(&it.detail)
        );
    }
    b.push_str("</table><h2>Approvals</h2><ul>");
    for a in &approvals {
        let _ = write!(
            b,
            "<li>{} ({}) at {}</li>",
            esc(&a.approver),
            esc(&a.role),
            crate::time::format(a.at)
        );
    }
    let _ = write!(
        b,
        "</ul><h2>Production policy: <span class=\"tag {}\">{}</span></h2><table><tr><th>id</th><th>severity</th><th>finding</th></tr>",
        if e.allowed() { "ok" } else { "bad" },
        if e.allowed() { "allowed" } else { "blocked" }
    );
    let mut findings: Vec<_> = e.report.findings.iter().collect();
    findings.sort_by_key(|f| std::cmp::Reverse(f.severity));
    for f in findings {
        let _ = write!(
            b,
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&f.id),
            f.severity,
            esc(&f.message)
        );
    }
    b.push_str("</table>");
    Ok(page(&format!("{name} v{v}"), &b))
}

fn page_audit(reg: &Registry) -> crate::Result<Resp> {
    let log = reg.audit()?;
    let rep = crate::audit::verify(&log);
    let head = rep
        .subjects
        .first()
        .and_then(|s| s.digest.get("sha256"))
        .cloned()
        .unwrap_or_default();
    let mut b = format!(
        "<p>chain <span class=\"tag {}\">{}</span> · {} entries · head <code>{}</code></p>",
        if rep.findings.is_empty() { "ok" } else { "bad" },
        if rep.findings.is_empty() {
            "verified"
        } else {
            "BROKEN"
        },
        log.len(),
        esc(&head)
    );
    for f in &rep.findings {
        let _ = write!(
            b,
            "<p class=\"tag bad\">{} {}</p>",
            esc(&f.id),
            esc(&f.message)
        );
    }
    b.push_str("<table><tr><th>#</th><th>time</th><th>actor</th><th>action</th><th>version</th><th>detail</th><th>hash</th></tr>");
    for a in log.iter().rev() {
        let _ = write!(
            b,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td><td><code>{}</code></td></tr>",
            a.seq,
            crate::time::format(a.ts),
            esc(&a.actor),
            esc(&a.action),
            if a.version > 0 { format!("{}@{}", esc(&a.model), a.version) } else { "—".into() },
            esc(&a.detail),
            esc(&crate::eval::short(&a.hash, 12))
        );
    }
    b.push_str("</table>");
    Ok(page("Audit log", &b))
}

/// Binds `addr` and serves on a multi-threaded runtime until interrupted (Ctrl-C).
pub fn run(reg: Registry, addr: &str) -> std::io::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let l = tokio::net::TcpListener::bind(addr).await?;
        eprintln!("tunegate: registry serving on http://{}", l.local_addr()?);
        tokio::select! {
            r = serve(Arc::new(reg), l) => r,
            _ = tokio::signal::ctrl_c() => Ok(()),
        }
    })
}
