//! `tunegate infra check|generate`, `tunegate deps check` and `tunegate check` with `[infra]` and
//! `[deps]`: exit codes, report schema, and the generated set's schema validation by
//! kubernetes-validate when `TUNEGATE_INTEROP_PY` names the interop venv's python.
use assert_cmd::Command;
use std::path::{Path, PathBuf};

fn fx(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tunegate-infra/tests/fixtures")
        .join(p)
}

fn tg() -> Command {
    Command::cargo_bin("tunegate").unwrap()
}

const PREFIX: &str = "ml-checkpoints/jobs/${job-id}/";

#[test]
fn infra_check_exit_codes_and_json() {
    tg().args(["infra", "check", "--job-prefix", PREFIX, "--quiet"])
        .arg(fx("infra/pattern"))
        .assert()
        .code(0);
    let out = tg()
        .args(["infra", "check", "--format", "json", "--job-prefix", PREFIX])
        .arg(fx("infra/variants/I004-privileged"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["schema"], "tunegate.report/v1");
    assert_eq!(r["gate"], "infra");
    let f = r["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == "I004")
        .unwrap();
    assert_eq!(f["severity"], "critical");
    assert!(f["location"]["line"].as_u64().unwrap() > 0);
    assert_eq!(
        f["location"]["field"],
        "spec.template.spec.containers[0].securityContext.privileged"
    );
    // SARIF carries the rule id.
    let out = tg()
        .args(["infra", "check", "--format", "sarif"])
        .arg(fx("infra/variants/I004-privileged"))
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("\"I004\""));
    // Bad input: exit 2 naming the path; bad prefix: exit 2.
    tg().args(["infra", "check", "/nonexistent/k8s"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains("/nonexistent/k8s"));
    tg().args(["infra", "check", "--job-prefix", "bucket"])
        .arg(fx("infra/pattern"))
        .assert()
        .code(2)
        .stderr(predicates::str::contains("--job-prefix"));
}

#[test]
fn deps_check_exit_codes() {
    tg().args(["deps", "check", "--quiet"])
        .arg(fx("deps/requirements-clean.txt"))
        .arg("--advisories")
        .arg(fx("deps/osv"))
        .assert()
        .code(0);
    tg().args(["deps", "check", "--format", "json"])
        .arg(fx("deps/requirements-bad.txt"))
        .assert()
        .code(1)
        .stdout(predicates::str::contains("\"I025\""));
    tg().args(["deps", "check"])
        .arg(fx("deps/missing.txt"))
        .assert()
        .code(2)
        .stderr(predicates::str::contains("missing.txt"));
}

#[test]
fn checks_lists_infra_ids() {
    tg().args(["checks"])
        .assert()
        .code(0)
        .stdout(predicates::str::contains("I001  infra.egress-not-isolated"))
        .stdout(predicates::str::contains("I025  deps.known-compromised"));
}

fn generate(dir: &Path) {
    tg().args([
        "infra",
        "generate",
        "--job",
        "ft-42",
        "--namespace",
        "ml-training",
        "--image",
        &format!("registry.example.com/train@sha256:{}", "c0".repeat(32)),
        "--bucket",
        "ml-checkpoints",
        "--storage-cidr",
        "10.20.0.0/24",
        "--role-arn",
        "arn:aws:iam::123456789012:role/ft-42-checkpoints",
        "--quiet",
        "-o",
    ])
    .arg(dir)
    .assert()
    .code(0);
}

#[test]
fn generated_set_passes_infra_check() {
    let d = tempfile::tempdir().unwrap();
    generate(d.path());
    assert!(d.path().join("k8s/ft-42.yaml").is_file());
    assert!(d.path().join("iam/ft-42-checkpoints.json").is_file());
    // No finding at all at --fail-on info: nothing above info, not even info.
    tg().args([
        "infra",
        "check",
        "--fail-on",
        "info",
        "--quiet",
        "--job-prefix",
        PREFIX,
    ])
    .arg(d.path())
    .assert()
    .code(0);
    tg().args([
        "infra",
        "generate",
        "--job",
        "x",
        "--image",
        "r/t:latest",
        "--bucket",
        "bkt",
    ])
    .assert()
    .code(2)
    .stderr(predicates::str::contains("--image"));
}

/// Schema validation of the generated manifests by the pinned kubernetes-validate (see
/// .ci/run). Runs when TUNEGATE_INTEROP_PY is set; then a tool failure fails the test.
#[test]
fn generated_set_validates_with_kubernetes_validate() {
    let Some(py) = std::env::var_os("TUNEGATE_INTEROP_PY") else {
        eprintln!("TUNEGATE_INTEROP_PY not set: kubernetes-validate interop not run");
        return;
    };
    let d = tempfile::tempdir().unwrap();
    generate(d.path());
    let out = std::process::Command::new(&py)
        .args(["-m", "kubernetes_validate", "--strict", "--quiet"])
        .arg(d.path().join("k8s/ft-42.yaml"))
        .output()
        .expect("running kubernetes-validate from TUNEGATE_INTEROP_PY");
    assert!(
        out.status.success(),
        "kubernetes-validate rejected the generated manifests:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // And it is a real validator: a broken manifest fails.
    let bad = d.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: x\nspec:\n  backoffLimit: \"many\"\n  template:\n    spec:\n      containers: []\n",
    )
    .unwrap();
    let out = std::process::Command::new(&py)
        .args(["-m", "kubernetes_validate", "--strict", "--quiet"])
        .arg(&bad)
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "kubernetes-validate accepted a broken Job"
    );
}

#[test]
fn tunegate_check_runs_configured_infra_and_deps() {
    let d = tempfile::tempdir().unwrap();
    let cfg = d.path().join("tunegate.toml");
    std::fs::write(
        &cfg,
        format!(
            "[infra]\npaths = [{:?}]\njob_prefix = \"{PREFIX}\"\n\n[deps]\nfiles = [{:?}]\nadvisories = [{:?}]\n",
            fx("infra/pattern"),
            fx("deps/requirements-clean.txt"),
            fx("deps/osv")
        ),
    )
    .unwrap();
    let out = tg()
        .args(["check", "--format", "json", "-c"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["gate"], "pipeline");
    assert!(r["subjects"].as_array().unwrap().len() >= 3);
    // A failing deps file fails the whole check.
    std::fs::write(
        &cfg,
        format!("[deps]\nfiles = [{:?}]\n", fx("deps/pip-freeze.txt")),
    )
    .unwrap();
    tg().args(["check", "--quiet", "-c"])
        .arg(&cfg)
        .assert()
        .code(1)
        .stdout(predicates::str::contains("I025"));
    // Unknown keys in the new sections are config errors.
    std::fs::write(&cfg, "[infra]\npath = [\"k8s\"]\n").unwrap();
    tg().args(["check", "-c"]).arg(&cfg).assert().code(2);
}
