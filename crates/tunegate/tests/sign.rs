//! `tunegate keygen | sign | verify | sign-report` end to end: roundtrips for every key type and
//! with a passphrase, exit codes (0 verified, 1 rejected with its S### reason, 2 input error),
//! and signed gate reports.
use assert_cmd::Command;
use predicates::prelude::*;
use std::path::Path;

fn tg() -> Command {
    let mut c = Command::cargo_bin("tunegate").unwrap();
    c.env_remove("TUNEGATE_KEY_PASSPHRASE");
    c
}

fn model(dir: &Path) -> std::path::PathBuf {
    let m = dir.join("adapter");
    std::fs::create_dir_all(m.join("sub")).unwrap();
    std::fs::write(m.join("adapter_config.json"), b"{\"r\": 8}").unwrap();
    std::fs::write(m.join("sub/adapter_model.safetensors"), vec![3u8; 4096]).unwrap();
    m
}

#[test]
fn roundtrip_every_key_type() {
    for alg in ["p256", "p384", "p521", "ed25519"] {
        let t = tempfile::tempdir().unwrap();
        let m = model(t.path());
        let k = t.path().join("signing");
        tg().args(["keygen", "--algorithm", alg, "-o"])
            .arg(&k)
            .assert()
            .success();
        let pem = std::fs::read_to_string(t.path().join("signing.pem")).unwrap();
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"), "{alg}");
        tg().arg("sign")
            .arg(&m)
            .arg("--key")
            .arg(t.path().join("signing.pem"))
            .assert()
            .success();
        assert!(t.path().join("adapter.sig").exists());
        tg().arg("verify")
            .arg(&m)
            .arg("--key")
            .arg(t.path().join("signing.pub"))
            .assert()
            .code(0)
            .stdout(predicate::str::contains("verified:"))
            .stdout(predicate::str::contains(
                "ok  sub/adapter_model.safetensors",
            ));
        // One changed byte: exit 1 naming the file and the check.
        std::fs::write(m.join("adapter_config.json"), b"{\"r\": 9}").unwrap();
        tg().arg("verify")
            .arg(&m)
            .arg("--key")
            .arg(t.path().join("signing.pub"))
            .assert()
            .code(1)
            .stdout(predicate::str::contains("S006"))
            .stdout(predicate::str::contains("changed: adapter_config.json"));
    }
}

#[test]
fn passphrase_from_env_and_file() {
    let t = tempfile::tempdir().unwrap();
    let m = model(t.path());
    let k = t.path().join("enc");
    tg().args(["keygen", "-o"])
        .arg(&k)
        .env("TUNEGATE_KEY_PASSPHRASE", "s3cret")
        .assert()
        .success();
    let pem = std::fs::read_to_string(t.path().join("enc.pem")).unwrap();
    assert!(pem.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(t.path().join("enc.pem"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "private key readable by others: {mode:o}");
    }
    // No passphrase: input error (2) that says so.
    tg().arg("sign")
        .arg(&m)
        .arg("--key")
        .arg(t.path().join("enc.pem"))
        .assert()
        .code(2)
        .stderr(predicate::str::contains("encrypted"));
    // Wrong passphrase: 2.
    tg().arg("sign")
        .arg(&m)
        .arg("--key")
        .arg(t.path().join("enc.pem"))
        .env("TUNEGATE_KEY_PASSPHRASE", "nope")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("wrong passphrase"));
    // From a file (prompt-free flag).
    let pf = t.path().join("pass.txt");
    std::fs::write(&pf, "s3cret\n").unwrap();
    tg().arg("sign")
        .arg(&m)
        .arg("--key")
        .arg(t.path().join("enc.pem"))
        .arg("--passphrase-file")
        .arg(&pf)
        .assert()
        .success();
    tg().arg("verify")
        .arg(&m)
        .arg("--key")
        .arg(t.path().join("enc.pub"))
        .assert()
        .code(0);
    // keygen refuses to overwrite.
    tg().args(["keygen", "-o"])
        .arg(&k)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--force"));
}

#[test]
fn input_errors_exit_2() {
    let t = tempfile::tempdir().unwrap();
    let m = model(t.path());
    tg().args(["keygen", "--algorithm", "rsa", "-o"])
        .arg(t.path().join("x"))
        .assert()
        .code(2);
    tg().arg("sign")
        .arg(&m)
        .arg("--key")
        .arg(t.path().join("missing.pem"))
        .assert()
        .code(2);
    tg().args(["keygen", "-o"])
        .arg(t.path().join("k"))
        .assert()
        .success();
    tg().arg("verify")
        .arg(&m)
        .arg("--key")
        .arg(t.path().join("k.pub"))
        .assert()
        .code(2)
        .stderr(predicate::str::contains("no such signature file"));
    // A truncated bundle is a verification failure (1), not an input error.
    tg().arg("sign")
        .arg(&m)
        .arg("--key")
        .arg(t.path().join("k.pem"))
        .assert()
        .success();
    let sig = t.path().join("adapter.sig");
    let b = std::fs::read(&sig).unwrap();
    std::fs::write(&sig, &b[..b.len() / 2]).unwrap();
    tg().arg("verify")
        .arg(&m)
        .arg("--key")
        .arg(t.path().join("k.pub"))
        .assert()
        .code(1)
        .stdout(predicate::str::contains("S001"));
}

#[test]
fn signature_inside_the_folder_and_ignored_paths() {
    let t = tempfile::tempdir().unwrap();
    let m = model(t.path());
    std::fs::write(m.join("notes.txt"), b"scratch").unwrap();
    tg().args(["keygen", "-o"])
        .arg(t.path().join("k"))
        .assert()
        .success();
    let sig = m.join("model.sig");
    tg().arg("sign")
        .arg(&m)
        .arg("--key")
        .arg(t.path().join("k.pem"))
        .arg("-o")
        .arg(&sig)
        .arg("--ignore-paths")
        .arg(m.join("notes.txt"))
        .assert()
        .success();
    // The ignored path and the signature are recorded in the signature: verify needs no flags.
    std::fs::write(m.join("notes.txt"), b"changed scratch").unwrap();
    tg().arg("verify")
        .arg(&m)
        .arg("--key")
        .arg(t.path().join("k.pub"))
        .arg("--signature")
        .arg(&sig)
        .assert()
        .code(0)
        .stdout(predicate::str::contains("2 file(s)"));
}

#[test]
fn signed_report_roundtrip_and_tamper() {
    let t = tempfile::tempdir().unwrap();
    let report = t.path().join("report.json");
    let r = serde_json::json!({
        "schema": "tunegate.report/v1",
        "tool": {"name": "tunegate", "version": "0.1.0"},
        "gate": "model",
        "subjects": [{"name": "model.safetensors", "digest": {"sha256": "ab".repeat(32)}}],
        "verdict": "pass",
        "summary": {"findings_by_severity": {}},
        "findings": []
    });
    std::fs::write(&report, serde_json::to_vec_pretty(&r).unwrap()).unwrap();
    tg().args(["keygen", "-o"])
        .arg(t.path().join("k"))
        .assert()
        .success();
    tg().arg("sign-report")
        .arg(&report)
        .arg("--key")
        .arg(t.path().join("k.pem"))
        .assert()
        .success();
    tg().arg("verify")
        .arg(&report)
        .arg("--key")
        .arg(t.path().join("k.pub"))
        .assert()
        .code(0)
        .stdout(predicate::str::contains("signed report"))
        .stdout(predicate::str::contains(format!(
            "model.safetensors  sha256:{}",
            "ab".repeat(32)
        )));
    // The statement's subject is the scanned artifact.
    let b: serde_json::Value =
        serde_json::from_slice(&std::fs::read(t.path().join("report.json.sig")).unwrap()).unwrap();
    use base64::Engine as _;
    let st: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::STANDARD
            .decode(b["dsseEnvelope"]["payload"].as_str().unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(st["subject"][0]["name"], "model.safetensors");
    assert_eq!(
        st["predicateType"],
        "https://tunegate.dev/attestation/report/v1"
    );
    // A report edited after signing (fail -> pass) is rejected.
    let mut r2 = r.clone();
    r2["verdict"] = serde_json::json!("fail");
    std::fs::write(&report, serde_json::to_vec_pretty(&r2).unwrap()).unwrap();
    tg().arg("verify")
        .arg(&report)
        .arg("--key")
        .arg(t.path().join("k.pub"))
        .assert()
        .code(1)
        .stdout(predicate::str::contains("S012"));
    // Not a report: 2.
    std::fs::write(&report, b"{\"schema\": \"other\"}").unwrap();
    tg().arg("sign-report")
        .arg(&report)
        .arg("--key")
        .arg(t.path().join("k.pem"))
        .assert()
        .code(2);
}

#[test]
fn checks_lists_signing_ids() {
    tg().args(["checks"])
        .assert()
        .success()
        .stdout(predicate::str::contains("S004"))
        .stdout(predicate::str::contains("sign.path-escape"));
}
