//! `tunegate monitor`: strict config parsing (exit 2 naming file and key), the checks list, and
//! a real process serving /metrics that shuts down cleanly on SIGTERM.
use assert_cmd::Command;
use predicates::prelude::*;
use std::io::{BufRead, BufReader, Read, Write};

#[test]
fn unknown_config_key_exits_2_naming_file_and_key() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("monitor.toml");
    std::fs::write(
        &p,
        "upstream = \"http://127.0.0.1:9\"\n[window]\nrepetition_rat = 0.1\n",
    )
    .unwrap();
    Command::cargo_bin("tunegate")
        .unwrap()
        .args(["monitor", "--config"])
        .arg(&p)
        .assert()
        .code(2)
        .stderr(
            predicate::str::contains("monitor.toml")
                .and(predicate::str::contains("repetition_rat")),
        );
}

#[test]
fn bad_upstream_and_bad_trigger_report_exit_2() {
    Command::cargo_bin("tunegate")
        .unwrap()
        .args([
            "monitor",
            "--upstream",
            "https://example.invalid",
            "--listen",
            "127.0.0.1:0",
        ])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("http://host:port"));
    let d = tempfile::tempdir().unwrap();
    let r = d.path().join("r.json");
    std::fs::write(&r, "{\"findings\": []}").unwrap();
    Command::cargo_bin("tunegate")
        .unwrap()
        .args([
            "monitor",
            "--upstream",
            "http://127.0.0.1:9",
            "--listen",
            "127.0.0.1:0",
            "--triggers",
        ])
        .arg(&r)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("r.json"));
}

#[test]
fn checks_lists_the_monitor_ids() {
    Command::cargo_bin("tunegate")
        .unwrap()
        .arg("checks")
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "O009  monitor.identical-response-cluster",
        ));
}

#[cfg(unix)]
#[test]
fn serves_metrics_and_stops_on_sigterm() {
    let d = tempfile::tempdir().unwrap();
    let state = d.path().join("state.json");
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("tunegate"))
        .args([
            "monitor",
            "--upstream",
            "http://127.0.0.1:9",
            "--listen",
            "127.0.0.1:0",
            "--state",
        ])
        .arg(&state)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    err.read_line(&mut line).unwrap();
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_string();
    let mut s = std::net::TcpStream::connect(&addr).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    assert!(resp.contains("# TYPE deployed_model_suspicious_output_total counter"));
    let st = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    let mut rest = String::new();
    err.read_to_string(&mut rest).unwrap();
    assert!(rest.contains("shutting down"), "{rest}");
    assert!(state.exists(), "baselines saved on shutdown");
}
