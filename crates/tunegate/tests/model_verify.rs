//! `tunegate model approve` and `tunegate model verify` end to end: exit codes, what the report
//! names, the shared report flags, and strict errors for a bad list.
use assert_cmd::Command;
use std::path::{Path, PathBuf};

fn tg() -> Command {
    Command::cargo_bin("tunegate").unwrap()
}

fn model(dir: &Path) -> PathBuf {
    let m = dir.join("model");
    std::fs::create_dir_all(&m).unwrap();
    std::fs::write(m.join("config.json"), br#"{"model_type":"bert"}"#).unwrap();
    std::fs::write(m.join("tokenizer.json"), br#"{"vocab":{}}"#).unwrap();
    // Two shards, both bigger than one read buffer, with different content.
    let a: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let b: Vec<u8> = (0..2_500_000u32).map(|i| (i % 241) as u8).collect();
    std::fs::write(m.join("model-00001-of-00002.safetensors"), a).unwrap();
    std::fs::write(m.join("model-00002-of-00002.safetensors"), b).unwrap();
    m
}

fn approve(m: &Path, list: &Path, id: &str) {
    tg().arg("model")
        .arg("approve")
        .arg(m)
        .args(["--id", id, "--revision", "main", "--approved"])
        .arg(list)
        .assert()
        .code(0);
}

fn verify_json(m: &Path, list: &Path, code: i32) -> serde_json::Value {
    let out = tg()
        .arg("model")
        .arg("verify")
        .arg(m)
        .arg("--approved")
        .arg(list)
        .args(["--format", "json"])
        .assert()
        .code(code);
    serde_json::from_slice(&out.get_output().stdout).unwrap()
}

fn ids(report: &serde_json::Value) -> Vec<String> {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_str().unwrap().to_string())
        .collect()
}

fn messages(report: &serde_json::Value) -> String {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["message"].as_str().unwrap().to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn approve_then_verify_passes_and_says_which_model() {
    let d = tempfile::tempdir().unwrap();
    let m = model(d.path());
    let list = d.path().join("approved.toml");
    approve(&m, &list, "org/bert-tiny");
    let text = std::fs::read_to_string(&list).unwrap();
    assert!(text.contains("id = \"org/bert-tiny\""), "{text}");
    assert!(text.contains("\"model-00002-of-00002.safetensors\" = { digest = \"sha256:"));
    let r = verify_json(&m, &list, 0);
    assert_eq!(r["gate"], "model");
    assert_eq!(r["verdict"], "pass");
    assert_eq!(ids(&r), ["M026"]);
    assert!(messages(&r).contains("matches approved model org/bert-tiny@main"));
    // Text output names the model too.
    let out = tg()
        .arg("model")
        .arg("verify")
        .arg(&m)
        .arg("--approved")
        .arg(&list)
        .assert()
        .code(0);
    let s = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    assert!(s.contains("org/bert-tiny@main"), "{s}");
}

#[test]
fn each_tampering_fails_naming_the_file() {
    let d = tempfile::tempdir().unwrap();
    let m = model(d.path());
    let list = d.path().join("approved.toml");
    approve(&m, &list, "org/bert");

    // One byte.
    let shard = m.join("model-00001-of-00002.safetensors");
    let orig = std::fs::read(&shard).unwrap();
    let mut b = orig.clone();
    b[2_999_999] ^= 0x80;
    std::fs::write(&shard, &b).unwrap();
    let r = verify_json(&m, &list, 1);
    assert_eq!(ids(&r), ["M020"]);
    assert!(messages(&r).starts_with("model-00001-of-00002.safetensors differs from org/bert@main"));
    std::fs::write(&shard, &orig).unwrap();
    verify_json(&m, &list, 0);

    // Missing.
    std::fs::rename(m.join("tokenizer.json"), d.path().join("t.json")).unwrap();
    let r = verify_json(&m, &list, 1);
    assert_eq!(ids(&r), ["M021"]);
    assert!(messages(&r).contains("tokenizer.json is missing"));

    // Renamed.
    std::fs::rename(d.path().join("t.json"), m.join("tokenizer.json.old")).unwrap();
    let r = verify_json(&m, &list, 1);
    assert_eq!(ids(&r), ["M021", "M022"]);
    assert!(messages(&r).contains("tokenizer.json.old is not in org/bert@main's approved files"));
    std::fs::rename(m.join("tokenizer.json.old"), m.join("tokenizer.json")).unwrap();

    // Extra file: remote code beside the weights.
    std::fs::write(m.join("modeling_bert.py"), b"import os\nos.system('id')\n").unwrap();
    let r = verify_json(&m, &list, 1);
    assert_eq!(ids(&r), ["M022"]);
    assert!(messages(&r).starts_with("modeling_bert.py is not in"));
    std::fs::remove_file(m.join("modeling_bert.py")).unwrap();

    // Swapped shards.
    let other = m.join("model-00002-of-00002.safetensors");
    let tmp = d.path().join("swap");
    std::fs::rename(&shard, &tmp).unwrap();
    std::fs::rename(&other, &shard).unwrap();
    std::fs::rename(&tmp, &other).unwrap();
    let r = verify_json(&m, &list, 1);
    assert_eq!(ids(&r), ["M020", "M020"]);
    let msg = messages(&r);
    assert!(msg.contains("model-00001-of-00002.safetensors differs"));
    assert!(msg.contains("model-00002-of-00002.safetensors differs"));
    assert!(msg.contains("swapped"));
}

#[cfg(unix)]
#[test]
fn symlink_fails_and_cannot_be_approved() {
    let d = tempfile::tempdir().unwrap();
    let m = model(d.path());
    let list = d.path().join("approved.toml");
    approve(&m, &list, "org/bert");
    std::os::unix::fs::symlink("/etc/hostname", m.join("extra.txt")).unwrap();
    let r = verify_json(&m, &list, 1);
    assert_eq!(ids(&r), ["M024"]);
    assert!(messages(&r).contains("extra.txt is a symbolic link to /etc/hostname"));
    let before = std::fs::read(&list).unwrap();
    let out = tg()
        .arg("model")
        .arg("approve")
        .arg(&m)
        .args(["--id", "org/bert", "--approved"])
        .arg(&list)
        .assert()
        .code(2);
    let err = String::from_utf8(out.get_output().stderr.clone()).unwrap();
    assert!(err.contains("extra.txt: it is a symbolic link"), "{err}");
    assert_eq!(
        std::fs::read(&list).unwrap(),
        before,
        "a failed approve must not touch the list"
    );
}

#[test]
fn malformed_list_exits_2_naming_the_file_and_entry() {
    let d = tempfile::tempdir().unwrap();
    let m = model(d.path());
    let list = d.path().join("bad-approved.toml");
    std::fs::write(
        &list,
        "[[model]]\nid = \"org/m\"\nfiles = { \"../secrets\" = \"sha256:00\" }\n",
    )
    .unwrap();
    let out = tg()
        .arg("model")
        .arg("verify")
        .arg(&m)
        .arg("--approved")
        .arg(&list)
        .assert()
        .code(2);
    let err = String::from_utf8(out.get_output().stderr.clone()).unwrap();
    assert!(err.contains("bad-approved.toml"), "{err}");
    assert!(err.contains("model #1 ('org/m')"), "{err}");
    assert!(err.contains("'..'"), "{err}");
    assert!(out.get_output().stdout.is_empty());
    // approve refuses to rewrite a list it cannot read.
    tg().arg("model")
        .arg("approve")
        .arg(&m)
        .args(["--id", "org/x", "--approved"])
        .arg(&list)
        .assert()
        .code(2);
    // A missing list and an unknown --model are errors too.
    tg().arg("model")
        .arg("verify")
        .arg(&m)
        .arg("--approved")
        .arg(d.path().join("nope.toml"))
        .assert()
        .code(2);
    let good = d.path().join("approved.toml");
    approve(&m, &good, "org/m");
    let out = tg()
        .arg("model")
        .arg("verify")
        .arg(&m)
        .arg("--approved")
        .arg(&good)
        .args(["--model", "org/other"])
        .assert()
        .code(2);
    let err = String::from_utf8(out.get_output().stderr.clone()).unwrap();
    assert!(err.contains("no model with id 'org/other'"), "{err}");
}

#[test]
fn approve_updates_one_entry_and_keeps_the_others() {
    let d = tempfile::tempdir().unwrap();
    let m = model(d.path());
    let single = d.path().join("tiny.gguf");
    std::fs::write(&single, b"GGUF tiny").unwrap();
    let list = d.path().join("approved.toml");
    approve(&m, &list, "org/bert");
    approve(&single, &list, "org/tiny");
    std::fs::write(m.join("config.json"), b"{}").unwrap();
    verify_json(&m, &list, 1);
    approve(&m, &list, "org/bert");
    let text = std::fs::read_to_string(&list).unwrap();
    assert_eq!(text.matches("[[model]]").count(), 2, "{text}");
    assert!(text.find("org/bert").unwrap() < text.find("org/tiny").unwrap());
    // Several entries: each model finds its own by digests.
    let r = verify_json(&m, &list, 0);
    assert!(messages(&r).contains("org/bert@main"));
    let r = verify_json(&single, &list, 0);
    assert!(messages(&r).contains("org/tiny@main"));
}

#[test]
fn approve_refuses_a_list_inside_the_model_folder() {
    let d = tempfile::tempdir().unwrap();
    let m = model(d.path());
    let out = tg()
        .arg("model")
        .arg("approve")
        .arg(&m)
        .args(["--id", "org/m", "--approved"])
        .arg(m.join("approved.toml"))
        .assert()
        .code(2);
    let err = String::from_utf8(out.get_output().stderr.clone()).unwrap();
    assert!(err.contains("inside the model folder"), "{err}");
    assert!(!m.join("approved.toml").exists());
}

#[test]
fn empty_folder_fails_and_cannot_be_approved() {
    let d = tempfile::tempdir().unwrap();
    let m = model(d.path());
    let list = d.path().join("approved.toml");
    approve(&m, &list, "org/m");
    let empty = d.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let r = verify_json(&empty, &list, 1);
    assert_eq!(ids(&r), ["M021"; 4]);
    tg().arg("model")
        .arg("approve")
        .arg(&empty)
        .args(["--id", "org/empty", "--approved"])
        .arg(&list)
        .assert()
        .code(2);
}

#[test]
fn piped_single_file_is_streamed() {
    // /dev/stdin is a pipe here: hashed by streaming, named by its file name.
    let d = tempfile::tempdir().unwrap();
    let list = d.path().join("approved.toml");
    tg().args([
        "model",
        "approve",
        "/dev/stdin",
        "--id",
        "org/piped",
        "--approved",
    ])
    .arg(&list)
    .write_stdin("weights")
    .assert()
    .code(0);
    let run = |input: &str, code: i32| {
        tg().args([
            "model",
            "verify",
            "/dev/stdin",
            "--format",
            "json",
            "--approved",
        ])
        .arg(&list)
        .write_stdin(input)
        .assert()
        .code(code);
    };
    run("weights", 0);
    run("weightz", 1);
}

#[test]
fn report_flags_work_on_verify() {
    let d = tempfile::tempdir().unwrap();
    let m = model(d.path());
    let list = d.path().join("approved.toml");
    approve(&m, &list, "org/m");
    std::fs::write(m.join("notes.txt"), b"hi").unwrap();
    let sarif = d.path().join("r.sarif");
    let metrics = d.path().join("m.prom");
    tg().arg("model")
        .arg("verify")
        .arg(&m)
        .arg("--approved")
        .arg(&list)
        .args(["--format", "sarif", "-q", "--output"])
        .arg(&sarif)
        .arg("--metrics-file")
        .arg(&metrics)
        .assert()
        .code(1);
    let s: serde_json::Value = serde_json::from_slice(&std::fs::read(&sarif).unwrap()).unwrap();
    assert_eq!(s["version"], "2.1.0");
    assert!(s.to_string().contains("M022"));
    let prom = std::fs::read_to_string(&metrics).unwrap();
    assert!(prom.contains("tunegate_model_gate_failed 1"), "{prom}");
    // Unexpected files are high: a critical threshold lets this one pass.
    tg().arg("model")
        .arg("verify")
        .arg(&m)
        .arg("--approved")
        .arg(&list)
        .args(["--fail-on", "critical", "--format", "html", "-o"])
        .arg(d.path().join("r.html"))
        .assert()
        .code(0);
    assert!(std::fs::read_to_string(d.path().join("r.html"))
        .unwrap()
        .contains("M022"));
}

/// `model verify --key`: the approved list's own signature (made with `tunegate sign`) is
/// checked on the bytes that are parsed; a changed list, a wrong key or a signature for another
/// file fails closed (M028, exit 1) without comparing the model; a missing signature is exit 2.
#[test]
fn signed_approved_list() {
    let dir = tempfile::tempdir().unwrap();
    let m = model(dir.path());
    let list = dir.path().join("approved.toml");
    approve(&m, &list, "org/model");
    for name in ["k", "other"] {
        tg().arg("keygen")
            .arg("-o")
            .arg(dir.path().join(name))
            .assert()
            .code(0);
    }
    let key = |n: &str, ext: &str| dir.path().join(format!("{n}.{ext}"));
    let verify_signed = |public: &Path, code: i32| -> serde_json::Value {
        let out = tg()
            .arg("model")
            .arg("verify")
            .arg(&m)
            .arg("--approved")
            .arg(&list)
            .arg("--key")
            .arg(public)
            .args(["--format", "json"])
            .assert()
            .code(code);
        serde_json::from_slice(&out.get_output().stdout).unwrap()
    };

    // No signature yet: an input error naming the missing file.
    let out = tg()
        .arg("model")
        .arg("verify")
        .arg(&m)
        .arg("--approved")
        .arg(&list)
        .arg("--key")
        .arg(key("k", "pub"))
        .assert()
        .code(2);
    let err = String::from_utf8_lossy(&out.get_output().stderr).to_string();
    assert!(err.contains("approved.toml.sig"), "{err}");

    tg().arg("sign")
        .arg(&list)
        .arg("--key")
        .arg(key("k", "pem"))
        .assert()
        .code(0);
    let ok = verify_signed(&key("k", "pub"), 0);
    let found = ids(&ok);
    assert!(found.contains(&"M029".to_string()), "{found:?}");
    assert!(found.contains(&"M026".to_string()), "{found:?}");

    // Another key: not trusted, and the model is not compared.
    let wrong = verify_signed(&key("other", "pub"), 1);
    assert_eq!(ids(&wrong), vec!["M028".to_string()]);

    // The list edited after signing (an attacker approving their model): fails closed.
    let text = std::fs::read_to_string(&list).unwrap();
    std::fs::write(&list, text.replace("org/model", "org/evil")).unwrap();
    let tampered = verify_signed(&key("k", "pub"), 1);
    assert_eq!(ids(&tampered), vec!["M028".to_string()]);
    assert!(messages(&tampered).contains("changed since it was signed"));

    // A signature made for another list does not vouch for this one.
    std::fs::write(&list, &text).unwrap();
    let other = dir.path().join("other.toml");
    std::fs::write(&other, text.replace("org/model", "org/other")).unwrap();
    tg().arg("sign")
        .arg(&other)
        .arg("--key")
        .arg(key("k", "pem"))
        .assert()
        .code(0);
    std::fs::copy(
        dir.path().join("other.toml.sig"),
        dir.path().join("approved.toml.sig"),
    )
    .unwrap();
    let renamed = verify_signed(&key("k", "pub"), 1);
    assert_eq!(ids(&renamed), vec!["M028".to_string()]);

    // --signature needs --key (a usage error, never a silent unsigned run).
    tg().arg("model")
        .arg("verify")
        .arg(&m)
        .arg("--approved")
        .arg(&list)
        .arg("--signature")
        .arg(dir.path().join("approved.toml.sig"))
        .assert()
        .code(2);
}
