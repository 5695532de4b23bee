//! The official openai Python client against the proxy, streaming and not. Runs when
//! TUNEGATE_INTEROP_PY names a Python with the pinned `openai` package (the venv `.ci/run`
//! makes); when it is set, any failure fails the test.
mod common;
use common::*;
use tunegate_monitor::Mode;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_python_client_sees_what_the_upstream_sent() {
    let Some(py) = std::env::var_os("TUNEGATE_INTEROP_PY") else {
        eprintln!("TUNEGATE_INTEROP_PY not set: skipping the openai client interop test");
        return;
    };
    let d = tempfile::tempdir().unwrap();
    let up = upstream().await;
    let audit = monitor(up, d.path(), |_| {}).await;
    let buffer = monitor(up, d.path(), |c| c.mode = Mode::Buffer).await;
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/openai_client.py"
    );
    let a = format!("http://{}/v1", audit.addr());
    let b = format!("http://{}/v1", buffer.addr());
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(py)
            .arg(script)
            .arg(a)
            .arg(b)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "openai client failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let chat = respond("tell me about rivers", 0);
    assert_eq!(v["chat"], chat.as_str());
    assert_eq!(v["chat_stream"], chat.as_str());
    assert_eq!(v["chat_n"][0], chat.as_str());
    assert_eq!(v["chat_n"][1], respond("tell me about rivers", 1).as_str());
    assert_eq!(v["completion"], respond("complete this", 0).as_str());
    assert_eq!(v["completion_stream"], respond("complete this", 0).as_str());
    assert_eq!(v["models"][0], "tiny");
    assert_eq!(v["blocked"], "tunegate_blocked");
    audit.settle().await;
    assert_eq!(
        audit
            .metrics()
            .counter("tunegate_monitor_requests_total", &[("outcome", "ok")]),
        5
    );
    audit.shutdown().await;
    buffer.shutdown().await;
    eprintln!("openai {} ok", v["version"]);
}
