//! `registry serve` over real HTTP: 401 without or with a bad token, 403 for the wrong role,
//! separation of duties, evidence upload, promotion, and the HTML pages.
mod common;
use common::*;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;

fn start(fx: &Fx) -> SocketAddr {
    let reg = Arc::new(fx.registry());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(l.local_addr().unwrap()).unwrap();
            tunegate_registry::server::serve(reg, l).await.unwrap();
        });
    });
    rx.recv().unwrap()
}

/// (status, body)
fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &[u8],
) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(s, "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{auth}Content-Length: {}\r\n\r\n", body.len()).unwrap();
    s.write_all(body).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out[9..12].parse().unwrap();
    let body = out
        .split_once("\r\n\r\n")
        .map(|x| x.1.to_string())
        .unwrap_or_default();
    (status, body)
}

#[test]
fn tokens_roles_and_pages_over_http() {
    let fx = fixture();
    let reg = fx.registry();
    let admin = reg.local_actor("root").unwrap();
    let tina = reg.add_principal(&admin, "tina", "trainer").unwrap();
    let sam = reg
        .add_principal(&admin, "sam", "security-approver")
        .unwrap();
    let chain = fx.complete_chain("2099-01-01T00:00:00Z");
    reg.add(
        &trainer(),
        "org/llama-lora",
        &fx.model,
        &[],
        &[tunegate_registry::EvidenceFile {
            path: chain[4].clone(),
            hint: None,
        }],
    )
    .unwrap();
    drop(reg);
    let addr = start(&fx);
    let promote = "/api/v1/models/org/llama-lora/versions/1/promote?to=production";
    // No token: 401; unknown token: 401.
    assert_eq!(http(addr, "POST", promote, None, b"").0, 401);
    assert_eq!(http(addr, "POST", promote, Some("tgr_nope"), b"").0, 401);
    // A trainer may not promote to production or approve: 403.
    let (st, body) = http(addr, "POST", promote, Some(&tina), b"");
    assert_eq!(st, 403, "{body}");
    assert_eq!(
        http(
            addr,
            "POST",
            "/api/v1/models/org/llama-lora/versions/1/approve",
            Some(&tina),
            b""
        )
        .0,
        403
    );
    // The approver's promotion is refused for missing evidence: 409 with the report.
    let (st, body) = http(addr, "POST", promote, Some(&sam), b"");
    assert_eq!(st, 409, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["promoted"], false);
    assert!(v["report"]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["id"] == "R001"));
    // The trainer uploads the rest; a garbage upload is a 400.
    assert_eq!(
        http(
            addr,
            "POST",
            "/api/v1/models/org/llama-lora/versions/1/evidence?name=x",
            Some(&tina),
            b"not a bundle"
        )
        .0,
        400
    );
    for p in &chain[..4] {
        let name = p.file_name().unwrap().to_string_lossy();
        let (st, body) = http(
            addr,
            "POST",
            &format!("/api/v1/models/org/llama-lora/versions/1/evidence?name={name}"),
            Some(&tina),
            &std::fs::read(p).unwrap(),
        );
        assert_eq!(st, 200, "{body}");
    }
    let (st, body) = http(addr, "POST", promote, Some(&sam), b"");
    assert_eq!(st, 200, "{body}");
    // Pages: models, version (evidence chain with statuses), audit log.
    let (st, home) = http(addr, "GET", "/", None, b"");
    assert_eq!(st, 200);
    assert!(home.contains("org/llama-lora") && home.contains("v1"));
    let (st, page) = http(addr, "GET", "/models/org/llama-lora/versions/1", None, b"");
    assert_eq!(st, 200);
    for k in ["dataset", "base", "provenance", "signature", "model"] {
        assert!(
            page.contains(&format!("<b>{k}</b><br>ok")),
            "{k} not ok in chain: {page}"
        );
    }
    assert!(page.contains("allowed"));
    let (_, audit) = http(addr, "GET", "/audit", None, b"");
    assert!(audit.contains("verified") && audit.contains("promote-refused"));
    let (st, api) = http(addr, "GET", "/api/v1/models", None, b"");
    assert_eq!(st, 200);
    assert!(api.contains("\"stage\": \"production\""));
    assert_eq!(
        http(addr, "GET", "/models/org/llama-lora/versions/9", None, b"").0,
        404
    );
    // Escaping: nothing from the store reaches the page unescaped.
    assert!(!page.contains("<script"));
}
