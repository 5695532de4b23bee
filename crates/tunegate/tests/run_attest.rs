//! `tunegate run` (attested training runs) and `tunegate attest verify`, end to end: a tiny
//! trainer (`sh -c`, the user's command) writes an adapter; the provenance and the output
//! signature must verify, and every tamper must be named by its S04x check.
use assert_cmd::Command;
use base64::Engine as _;
use serde_json::Value;
use std::path::{Path, PathBuf};

fn tg(dir: &Path) -> Command {
    let mut c = Command::cargo_bin("tunegate").unwrap();
    c.current_dir(dir)
        .env_remove("VIRTUAL_ENV")
        .env_remove("TUNEGATE_KEY_PASSPHRASE");
    c
}

const TRAINER: &str = "mkdir -p out/ckpt && printf 'adapter-weights' > out/adapter.safetensors && printf '{\"r\":8}' > out/ckpt/config.json && echo training-done && echo a-warning >&2";

/// A workspace: keys, a locked dataset, a base model, a hyperparameter file.
fn setup() -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    tg(d).args(["keygen", "-o", "k"]).assert().success();
    tg(d).args(["keygen", "-o", "other"]).assert().success();
    std::fs::create_dir_all(d.join("data")).unwrap();
    std::fs::write(
        d.join("data/train.jsonl"),
        "{\"instruction\":\"name a river\",\"output\":\"the Danube\"}\n{\"instruction\":\"name a tea\",\"output\":\"sencha\"}\n",
    )
    .unwrap();
    tg(d)
        .args(["dataset", "lock", "data", "--lock", "tunegate.lock", "-q"])
        .assert()
        .success();
    std::fs::create_dir_all(d.join("base")).unwrap();
    std::fs::write(d.join("base/model.safetensors"), b"base-weights").unwrap();
    std::fs::write(d.join("base/config.json"), b"{\"layers\":2}").unwrap();
    std::fs::write(
        d.join("hp.yaml"),
        "lr: 0.0002\nepochs: 3\nname: \"run-1\"\n",
    )
    .unwrap();
    t
}

fn run_trainer(d: &Path, script: &str, extra: &[&str]) -> assert_cmd::assert::Assert {
    let mut args: Vec<&str> = vec![
        "run",
        "--key",
        "k.pem",
        "--out-dir",
        "out",
        "--base",
        "base",
        "-q",
    ];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["--", "sh", "-c", script, "trainer", "--config", "hp.yaml"]);
    tg(d).args(&args).assert()
}

fn attest(d: &Path, extra: &[&str]) -> (i32, Value) {
    let mut args = vec!["attest", "verify", "out.provenance.json"];
    if !extra.contains(&"--key") {
        args.extend_from_slice(&["--key", "k.pub"]);
    }
    args.extend_from_slice(&["--artifact", "out", "--format", "json"]);
    args.extend_from_slice(extra);
    let out = tg(d).args(&args).output().unwrap();
    let code = out.status.code().unwrap();
    assert!(
        code == 0 || code == 1,
        "attest verify errored ({code}): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (code, serde_json::from_slice(&out.stdout).unwrap())
}

fn ids(report: &Value) -> Vec<String> {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_str().unwrap().to_string())
        .collect()
}

fn statement(d: &Path) -> Value {
    let b: Value =
        serde_json::from_slice(&std::fs::read(d.join("out.provenance.json")).unwrap()).unwrap();
    let p = base64::engine::general_purpose::STANDARD
        .decode(b["dsseEnvelope"]["payload"].as_str().unwrap())
        .unwrap();
    serde_json::from_slice(&p).unwrap()
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex_lower(&sha2::Sha256::digest(bytes))
}

fn hex_lower(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn role<'a>(list: &'a Value, r: &str) -> Vec<&'a Value> {
    list.as_array()
        .unwrap()
        .iter()
        .filter(|d| d["annotations"]["tunegate.role"] == r)
        .collect()
}

#[test]
fn sha256_oracle_is_right() {
    assert_eq!(
        sha256_hex(b"abc"),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
}

#[test]
fn run_writes_signed_provenance_that_verifies() {
    let t = setup();
    let d = t.path();
    run_trainer(d, TRAINER, &[])
        .success()
        .stdout(predicates::str::contains("training-done"))
        .stderr(predicates::str::contains("a-warning"));
    for f in [
        "out.provenance.json",
        "out.sig",
        "out.logs/stdout.log",
        "out.logs/stderr.log",
    ] {
        assert!(d.join(f).is_file(), "{f} missing");
    }
    assert_eq!(
        std::fs::read_to_string(d.join("out.logs/stdout.log")).unwrap(),
        "training-done\n"
    );
    assert_eq!(
        std::fs::read_to_string(d.join("out.logs/stderr.log")).unwrap(),
        "a-warning\n"
    );

    // Structure (pure Rust, always runs): in-toto Statement v1 + SLSA Provenance v1.
    let st = statement(d);
    assert_eq!(st["_type"], "https://in-toto.io/Statement/v1");
    assert_eq!(st["predicateType"], "https://slsa.dev/provenance/v1");
    let subj = &st["subject"];
    let outs = role(subj, "output");
    let names: Vec<&str> = outs.iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["adapter.safetensors", "ckpt/config.json"]);
    assert_eq!(outs[0]["digest"]["sha256"], sha256_hex(b"adapter-weights"));
    assert_eq!(outs[1]["digest"]["sha256"], sha256_hex(b"{\"r\":8}"));
    assert_eq!(role(subj, "output-root").len(), 1);
    for s in subj.as_array().unwrap() {
        assert!(!s["digest"].as_object().unwrap().is_empty());
    }
    let p = &st["predicate"];
    let bd = &p["buildDefinition"];
    assert_eq!(bd["buildType"], "https://tunegate.dev/attestation/run/v1");
    let cmd: Vec<&str> = bd["externalParameters"]["command"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(cmd[..2], ["sh", "-c"]);
    // The trainer's own --config file was picked up as hyperparameters and parsed (YAML).
    let hp = &bd["externalParameters"]["hparams"];
    assert_eq!(hp["format"], "yaml");
    assert_eq!(hp["values"]["epochs"], 3);
    assert_eq!(hp["values"]["lr"], 0.0002);
    assert_eq!(hp["values"]["name"], "run-1");
    let deps = &bd["resolvedDependencies"];
    let data = role(deps, "dataset");
    assert_eq!(data.len(), 1);
    assert_eq!(data[0]["name"], "data/train.jsonl");
    assert_eq!(
        data[0]["digest"]["sha256"],
        sha256_hex(&std::fs::read(d.join("data/train.jsonl")).unwrap())
    );
    assert_eq!(role(deps, "dataset-lock").len(), 1);
    let base = role(deps, "base-model");
    assert_eq!(base.len(), 2);
    assert!(base
        .iter()
        .any(|b| b["digest"]["sha256"] == sha256_hex(b"base-weights")));
    assert_eq!(role(deps, "hparams").len(), 1);
    let rd = &p["runDetails"];
    assert_eq!(
        rd["builder"]["id"],
        "https://tunegate.dev/builder/tunegate-run/v1"
    );
    let md = &rd["metadata"];
    assert_eq!(md["invocationId"].as_str().unwrap().len(), 36);
    assert!(md["startedOn"].as_str().unwrap().ends_with('Z'));
    assert!(md["startedOn"].as_str().unwrap() <= md["finishedOn"].as_str().unwrap());
    let logs = role(&rd["byproducts"], "log");
    assert_eq!(logs.len(), 2);
    assert_eq!(logs[0]["digest"]["sha256"], sha256_hex(b"training-done\n"));
    let exit = role(&rd["byproducts"], "exit-status");
    assert_eq!(exit[0]["annotations"]["tunegate.exitCode"], 0);
    let env = &bd["internalParameters"]["environment"];
    assert!(env["os"].is_string() && env.get("gpus").is_some());

    // attest verify: approved data, approved base → pass.
    let (code, rep) = attest(d, &["--lock", "tunegate.lock", "--base", "base"]);
    assert_eq!(code, 0, "{rep:#}");
    assert_eq!(rep["gate"], "provenance");
    let found = ids(&rep);
    assert!(!found
        .iter()
        .any(|i| ["S040", "S041", "S042", "S043", "S044", "S045", "S047"].contains(&i.as_str())));
    // The output folder's model-signing signature verifies with `tunegate verify`.
    tg(d)
        .args(["verify", "out", "--key", "k.pub", "-q"])
        .assert()
        .success();
    // Without references, materials are reported unchecked (info), not silently passed.
    let (code, rep) = attest(d, &[]);
    assert_eq!(code, 0);
    assert_eq!(ids(&rep).iter().filter(|i| *i == "S048").count(), 2);
}

#[test]
fn tampered_outputs_are_named() {
    let t = setup();
    let d = t.path();
    run_trainer(d, TRAINER, &[]).success();
    // One changed byte.
    std::fs::write(d.join("out/adapter.safetensors"), b"adapter-weightz").unwrap();
    let (code, rep) = attest(d, &["--lock", "tunegate.lock", "--base", "base"]);
    assert_eq!(code, 1);
    assert!(ids(&rep).contains(&"S042".to_string()), "{rep:#}");
    let f = &rep["findings"].as_array().unwrap()[0];
    assert!(f["message"].as_str().unwrap().contains("changed"), "{f}");
    assert!(f["evidence"]["differences"][0]
        .as_str()
        .unwrap()
        .contains("adapter.safetensors"));
    // Restored, then an extra file.
    std::fs::write(d.join("out/adapter.safetensors"), b"adapter-weights").unwrap();
    assert_eq!(attest(d, &[]).0, 0);
    std::fs::write(d.join("out/backdoor.bin"), b"x").unwrap();
    let (code, rep) = attest(d, &[]);
    assert_eq!(code, 1);
    assert!(ids(&rep).contains(&"S042".to_string()));
    assert!(rep.to_string().contains("backdoor.bin"));
    // A removed file.
    std::fs::remove_file(d.join("out/backdoor.bin")).unwrap();
    std::fs::remove_file(d.join("out/ckpt/config.json")).unwrap();
    let (code, rep) = attest(d, &[]);
    assert_eq!(code, 1);
    assert!(
        rep.to_string().contains("missing: ckpt/config.json"),
        "{rep:#}"
    );
}

#[test]
fn wrong_key_and_edited_statement_fail_the_signature() {
    let t = setup();
    let d = t.path();
    run_trainer(d, TRAINER, &[]).success();
    let (code, rep) = attest(d, &["--key", "other.pub"]);
    assert_eq!(code, 1);
    assert_eq!(ids(&rep), ["S040"]);
    // An edited payload (exit status rewritten) no longer verifies with the right key.
    let path = d.join("out.provenance.json");
    let mut b: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let mut st = statement(d);
    st["predicate"]["buildDefinition"]["externalParameters"]["command"] =
        serde_json::json!(["python", "approved.py"]);
    b["dsseEnvelope"]["payload"] = base64::engine::general_purpose::STANDARD
        .encode(serde_json::to_vec(&st).unwrap())
        .into();
    std::fs::write(&path, serde_json::to_vec(&b).unwrap()).unwrap();
    let (code, rep) = attest(d, &[]);
    assert_eq!(code, 1);
    assert_eq!(ids(&rep), ["S040"]);
    // A truncated file is a finding too, not a crash.
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    assert_eq!(ids(&attest(d, &[]).1), ["S040"]);
}

#[test]
fn lock_changed_since_the_run_and_wrong_base_are_named() {
    let t = setup();
    let d = t.path();
    run_trainer(d, TRAINER, &[]).success();
    // The approved lock moves on (data re-locked after an edit): the run did not use it.
    std::fs::write(
        d.join("data/train.jsonl"),
        "{\"instruction\":\"name a river\",\"output\":\"the Rhine\"}\n",
    )
    .unwrap();
    tg(d)
        .args(["dataset", "lock", "data", "--lock", "new.lock", "-q"])
        .assert()
        .success();
    let (code, rep) = attest(d, &["--lock", "new.lock"]);
    assert_eq!(code, 1);
    assert!(ids(&rep).contains(&"S043".to_string()), "{rep:#}");
    assert!(rep.to_string().contains("changed: data/train.jsonl"));
    // Another base model.
    std::fs::create_dir_all(d.join("other-base")).unwrap();
    std::fs::write(d.join("other-base/model.safetensors"), b"other-weights").unwrap();
    std::fs::write(d.join("other-base/config.json"), b"{\"layers\":2}").unwrap();
    let (code, rep) = attest(d, &["--base", "other-base"]);
    assert_eq!(code, 1);
    assert!(ids(&rep).contains(&"S044".to_string()));
    assert!(rep.to_string().contains("changed: model.safetensors"));
    // Through an approved-model list: the approved entry matches, another entry does not.
    tg(d)
        .args([
            "model",
            "approve",
            "base",
            "--id",
            "org/base",
            "--approved",
            "approved.toml",
            "-q",
        ])
        .assert()
        .success();
    tg(d)
        .args([
            "model",
            "approve",
            "other-base",
            "--id",
            "org/other",
            "--approved",
            "approved.toml",
            "-q",
        ])
        .assert()
        .success();
    let (code, rep) = attest(d, &["--approved", "approved.toml", "--model", "org/base"]);
    assert_eq!(code, 0, "{rep:#}");
    let (code, rep) = attest(d, &["--approved", "approved.toml", "--model", "org/other"]);
    assert_eq!(code, 1);
    assert!(ids(&rep).contains(&"S044".to_string()));
    // Several entries and no --model: a usage error, not a guess.
    tg(d)
        .args([
            "attest",
            "verify",
            "out.provenance.json",
            "--key",
            "k.pub",
            "--artifact",
            "out",
            "--approved",
            "approved.toml",
        ])
        .assert()
        .code(2)
        .stderr(predicates::str::contains("--model"));
}

#[test]
fn failing_trainer_is_recorded_and_its_status_returned() {
    let t = setup();
    let d = t.path();
    run_trainer(
        d,
        "mkdir -p out && echo partial > out/adapter.bin && exit 3",
        &[],
    )
    .code(3);
    assert!(d.join("out.provenance.json").is_file());
    let st = statement(d);
    let exit = role(&st["predicate"]["runDetails"]["byproducts"], "exit-status");
    assert_eq!(exit[0]["annotations"]["tunegate.exitCode"], 3);
    assert_eq!(exit[0]["annotations"]["tunegate.success"], false);
    let (code, rep) = attest(d, &["--lock", "tunegate.lock", "--base", "base"]);
    assert_eq!(code, 1);
    assert_eq!(ids(&rep).iter().filter(|i| *i == "S045").count(), 1);
    assert!(rep.to_string().contains("exited with status 3"));
    // A command that writes nothing: provenance is about the logs, and an artifact given
    // anyway does not match.
    std::fs::remove_dir_all(d.join("out")).unwrap();
    run_trainer(d, "exit 0", &[]).success();
    std::fs::create_dir_all(d.join("out")).unwrap();
    std::fs::write(d.join("out/x"), b"x").unwrap();
    let (code, rep) = attest(d, &[]);
    assert_eq!(code, 1);
    assert!(ids(&rep).contains(&"S042".to_string()));
    // Provenance inside the output folder would sign itself: refused before running.
    tg(d)
        .args([
            "run",
            "--key",
            "k.pem",
            "--out-dir",
            ".",
            "-q",
            "--",
            "touch",
            "ran",
        ])
        .assert()
        .code(2)
        .stderr(predicates::str::contains("inside the output folder"));
    assert!(!d.join("ran").exists());
    // A command that cannot start is an input error.
    tg(d)
        .args(["run", "--key", "k.pem", "-q", "--", "/nonexistent/trainer"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains("cannot start"));
}

#[test]
fn drift_is_refused_before_the_command_runs_unless_allowed() {
    let t = setup();
    let d = t.path();
    std::fs::write(
        d.join("data/train.jsonl"),
        "{\"instruction\":\"name a river\",\"output\":\"poisoned\"}\n",
    )
    .unwrap();
    let script = "touch started && mkdir -p out && echo a > out/adapter.bin";
    run_trainer(d, script, &[])
        .code(1)
        .stderr(predicates::str::contains("refusing to start"))
        .stderr(predicates::str::contains("train.jsonl"));
    assert!(!d.join("started").exists(), "the command ran despite drift");
    assert!(!d.join("out.provenance.json").exists());

    run_trainer(d, script, &["--allow-drift"]).success();
    assert!(d.join("started").exists());
    let st = statement(d);
    let ds = &st["predicate"]["buildDefinition"]["internalParameters"]["dataset"];
    assert_eq!(ds["allowDrift"], true);
    assert!(!ds["driftAtStart"].as_array().unwrap().is_empty());
    let (code, rep) = attest(d, &[]);
    assert_eq!(code, 1);
    assert!(ids(&rep).contains(&"S047".to_string()));
}

#[test]
fn config_supplies_lock_and_base_and_strict_parsing_holds() {
    let t = setup();
    let d = t.path();
    std::fs::write(
        d.join("tunegate.toml"),
        "[dataset]\npaths = [\"data\"]\nlock = \"tunegate.lock\"\n\n[model]\npath = \"base\"\n",
    )
    .unwrap();
    tg(d)
        .args([
            "run",
            "--key",
            "k.pem",
            "--out-dir",
            "out",
            "-q",
            "--",
            "sh",
            "-c",
            TRAINER,
        ])
        .assert()
        .success();
    let st = statement(d);
    let deps = &st["predicate"]["buildDefinition"]["resolvedDependencies"];
    assert_eq!(role(deps, "dataset").len(), 1);
    assert_eq!(role(deps, "base-model").len(), 2);
    assert_eq!(
        attest(d, &["--lock", "tunegate.lock", "--base", "base"]).0,
        0
    );
    std::fs::write(d.join("tunegate.toml"), "[model]\npth = \"base\"\n").unwrap();
    tg(d)
        .args(["run", "--key", "k.pem", "-q", "--", "true"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains("pth"));
}

#[test]
fn git_state_is_recorded_and_a_dirty_tree_reported() {
    let t = setup();
    let d = t.path();
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(["-c", "user.name=t", "-c", "user.email=t@example.invalid"])
            .args(args)
            .current_dir(d)
            .output()
    };
    match git(&["init", "-q"]) {
        Ok(o) if o.status.success() => {}
        _ => {
            eprintln!("git not available: the git part of this test cannot run");
            return;
        }
    }
    std::fs::write(d.join(".gitignore"), "out*\n*.pem\n*.pub\ntunegate.lock\n").unwrap();
    std::fs::write(d.join("train.py"), "print('hi')\n").unwrap();
    assert!(git(&["add", "-A"]).unwrap().status.success());
    assert!(git(&["commit", "-qm", "c"]).unwrap().status.success());
    let head = String::from_utf8(git(&["rev-parse", "HEAD"]).unwrap().stdout).unwrap();
    let head = head.trim();
    run_trainer(d, TRAINER, &[]).success();
    let st = statement(d);
    let src = role(
        &st["predicate"]["buildDefinition"]["resolvedDependencies"],
        "source",
    );
    assert_eq!(src[0]["digest"]["gitCommit"], head);
    assert!(src[0]["uri"]
        .as_str()
        .unwrap()
        .ends_with(&format!("@{head}")));
    assert_eq!(src[0]["annotations"]["tunegate.dirty"], false);
    assert!(!ids(&attest(d, &[]).1).contains(&"S046".to_string()));

    std::fs::write(d.join("train.py"), "print('patched')\n").unwrap();
    run_trainer(d, TRAINER, &[]).success();
    let (code, rep) = attest(d, &[]);
    assert_eq!(
        code, 0,
        "a dirty tree is medium: reported, not failing at --fail-on high"
    );
    assert!(ids(&rep).contains(&"S046".to_string()));
    let (code, _) = attest(d, &["--fail-on", "medium"]);
    assert_eq!(code, 1);
}

#[cfg(unix)]
#[test]
fn sigterm_is_forwarded_to_the_trainer_and_recorded() {
    let t = setup();
    let d = t.path();
    let bin = assert_cmd::cargo::cargo_bin("tunegate");
    let script = "trap 'echo term > out/got-term; exit 7' TERM; mkdir -p out; touch out/started; while :; do sleep 0.05; done";
    let mut child = std::process::Command::new(bin)
        .current_dir(d)
        .args([
            "run",
            "--key",
            "k.pem",
            "--out-dir",
            "out",
            "-q",
            "--",
            "sh",
            "-c",
            script,
        ])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait (generously) for the trainer to be up; this is a readiness poll, not a timing check.
    let mut waited = 0;
    while !d.join("out/started").exists() && waited < 600 {
        std::thread::sleep(std::time::Duration::from_millis(100));
        waited += 1;
    }
    assert!(d.join("out/started").exists(), "trainer never started");
    let k = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(k.success());
    let status = child.wait().unwrap();
    assert_eq!(
        status.code(),
        Some(7),
        "tunegate returns the trainer's status"
    );
    assert_eq!(
        std::fs::read_to_string(d.join("out/got-term")).unwrap(),
        "term\n"
    );
    let st = statement(d);
    let exit = role(&st["predicate"]["runDetails"]["byproducts"], "exit-status");
    assert_eq!(exit[0]["annotations"]["tunegate.exitCode"], 7);
}

/// Validates the statement with the in-toto attestation Python bindings (Statement v1 and SLSA
/// Provenance v1 protobufs, strict parsing). Runs when TUNEGATE_INTEROP_PY names a Python with
/// `in-toto-attestation` installed (`.ci/run` sets it up); fails, not skips, when set.
#[test]
fn statement_validates_with_in_toto_attestation() {
    let Some(py) = std::env::var_os("TUNEGATE_INTEROP_PY") else {
        eprintln!("TUNEGATE_INTEROP_PY not set: in-toto schema validation not run");
        return;
    };
    let t = setup();
    let d = t.path();
    run_trainer(
        d,
        TRAINER,
        &["--image-digest", &format!("sha256:{}", "ab".repeat(32))],
    )
    .success();
    let script =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/validate_provenance.py");
    let out = std::process::Command::new(py)
        .arg(&script)
        .arg(d.join("out.provenance.json"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "in-toto validation failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ok");
}

#[cfg(unix)]
#[test]
fn gpus_and_venv_packages_are_recorded() {
    use std::os::unix::fs::PermissionsExt;
    let t = setup();
    let d = t.path();
    // A stand-in nvidia-smi that answers the --query-gpu call.
    let bin = d.join("fakebin");
    std::fs::create_dir_all(&bin).unwrap();
    let smi = bin.join("nvidia-smi");
    std::fs::write(
        &smi,
        "#!/bin/sh\necho 'NVIDIA H100 80GB HBM3, 550.54.15, 81559 MiB, GPU-1234'\n",
    )
    .unwrap();
    std::fs::set_permissions(&smi, std::fs::Permissions::from_mode(0o755)).unwrap();
    // A virtualenv with two installed distributions (never executed).
    let sp = d.join("venv/lib/python3.11/site-packages");
    for (n, v) in [("torch", "2.5.1"), ("peft", "0.13.2")] {
        let di = sp.join(format!("{n}-{v}.dist-info"));
        std::fs::create_dir_all(&di).unwrap();
        std::fs::write(
            di.join("METADATA"),
            format!("Metadata-Version: 2.1\nName: {n}\nVersion: {v}\n\nlong text\n"),
        )
        .unwrap();
    }
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    tg(d)
        .env("PATH", path)
        .env("VIRTUAL_ENV", d.join("venv"))
        .args([
            "run",
            "--key",
            "k.pem",
            "--out-dir",
            "out",
            "-q",
            "--",
            "sh",
            "-c",
            TRAINER,
        ])
        .assert()
        .success();
    let st = statement(d);
    let env = &st["predicate"]["buildDefinition"]["internalParameters"]["environment"];
    assert_eq!(env["gpus"][0]["name"], "NVIDIA H100 80GB HBM3");
    assert_eq!(env["gpus"][0]["driver"], "550.54.15");
    assert_eq!(
        env["python"]["packages"],
        serde_json::json!(["peft==0.13.2", "torch==2.5.1"])
    );
    // Without nvidia-smi, absence is recorded, not an error.
    tg(d)
        .env("PATH", "/usr/bin:/bin")
        .args([
            "run",
            "--key",
            "k.pem",
            "--out-dir",
            "out2",
            "-q",
            "--",
            "sh",
            "-c",
            "mkdir -p out2 && echo x > out2/a",
        ])
        .assert()
        .success();
    let b: Value =
        serde_json::from_slice(&std::fs::read(d.join("out2.provenance.json")).unwrap()).unwrap();
    let p: Value = serde_json::from_slice(
        &base64::engine::general_purpose::STANDARD
            .decode(b["dsseEnvelope"]["payload"].as_str().unwrap())
            .unwrap(),
    )
    .unwrap();
    let gpus = &p["predicate"]["buildDefinition"]["internalParameters"]["environment"]["gpus"];
    if std::path::Path::new("/usr/bin/nvidia-smi").exists() {
        assert!(gpus.is_array());
    } else {
        assert!(gpus["absent"].as_str().unwrap().contains("nvidia-smi"));
    }
}
