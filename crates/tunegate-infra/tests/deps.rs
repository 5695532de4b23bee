//! deps check over the fixtures: each kind of problem in requirements, pip freeze, uv.lock and
//! poetry.lock files, clean hashed lockfiles, and an OSV advisory file.
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use tunegate_core::{Report, Severity, Verdict};
use tunegate_infra::deps::{check, spec_admits};

fn fx(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/deps")
        .join(p)
}

fn run(file: &str) -> Report {
    check(&[fx(file)], &[fx("osv")], Severity::High).unwrap()
}

/// (file name, line, id) triples.
fn triples(r: &Report) -> BTreeSet<(String, u64, String)> {
    r.findings
        .iter()
        .map(|f| {
            let file = f.location.file.clone().unwrap();
            let name = Path::new(&file)
                .file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .to_string();
            (name, f.location.line.unwrap(), f.id.clone())
        })
        .collect()
}

fn t(f: &str, l: u64, id: &str) -> (String, u64, String) {
    (f.to_string(), l, id.to_string())
}

#[test]
fn requirements_every_kind_of_problem() {
    let r = run("requirements-bad.txt");
    assert_eq!(r.verdict, Verdict::Fail);
    let got = triples(&r);
    let want = BTreeSet::from([
        t("requirements-bad.txt", 2, "I024"), // --extra-index-url
        t("base.txt", 2, "I026"),             // pyyaml 6.0.1 in the OSV range (via -r)
        t("base.txt", 3, "I025"),             // torchtriton
        t("requirements-bad.txt", 4, "I021"), // torch>=2.1
        t("requirements-bad.txt", 4, "I022"),
        t("requirements-bad.txt", 4, "I027"), // torch.load
        t("requirements-bad.txt", 5, "I022"), // transformers, no hash
        t("requirements-bad.txt", 5, "I027"),
        t("requirements-bad.txt", 6, "I023"), // git+https
        t("requirements-bad.txt", 6, "I022"),
        t("requirements-bad.txt", 7, "I025"), // ultralytics 8.3.41 (continuation line hash)
    ]);
    assert_eq!(got, want, "{:#?}", r.findings);
    // requests with extras, a marker and a hash is clean.
    assert!(!r
        .findings
        .iter()
        .any(|f| f.location.field.as_deref() == Some("requests")));
    let c = r
        .findings
        .iter()
        .find(|f| f.id == "I025" && f.message.contains("ultralytics"))
        .unwrap();
    assert_eq!(c.severity, Severity::Critical);
    assert!(c.evidence["source"]
        .as_str()
        .unwrap()
        .contains("December 2024"));
}

#[test]
fn clean_files_pass_with_no_finding() {
    for f in ["requirements-clean.txt", "uv-clean/uv.lock"] {
        let r = check(&[fx(f)], &[fx("osv/TEST-2026-0001.json")], Severity::Info).unwrap();
        assert!(r.findings.is_empty(), "{f}: {:#?}", r.findings);
        assert_eq!(r.verdict, Verdict::Pass);
    }
}

#[test]
fn pip_freeze() {
    let got = triples(&run("pip-freeze.txt"));
    for want in [
        t("pip-freeze.txt", 2, "I023"), // -e git+
        t("pip-freeze.txt", 3, "I023"), // name @ file://
        t("pip-freeze.txt", 4, "I025"), // ultralytics 8.3.46
        t("pip-freeze.txt", 1, "I022"),
    ] {
        assert!(got.contains(&want), "{want:?} in {got:?}");
    }
    assert!(
        !got.iter().any(|(_, _, id)| id == "I021"),
        "freeze output is pinned"
    );
}

#[test]
fn uv_and_poetry_lockfiles() {
    let got = triples(&run("uv-bad/uv.lock"));
    let want = BTreeSet::from([
        t("uv.lock", 10, "I024"), // private registry
        t("uv.lock", 16, "I023"), // git source
        t("uv.lock", 16, "I022"),
        t("uv.lock", 21, "I022"), // registry package without hashes
    ]);
    assert_eq!(got, want);
    let got = triples(&run("poetry/poetry.lock"));
    let want = BTreeSet::from([
        t("poetry.lock", 14, "I023"),
        t("poetry.lock", 14, "I022"),
        t("poetry.lock", 28, "I024"),
    ]);
    assert_eq!(got, want);
}

#[test]
fn osv_severity_and_no_advisories_no_finding() {
    let r = check(&[fx("base.txt")], &[], Severity::High).unwrap();
    assert!(!r.findings.iter().any(|f| f.id == "I026"));
    let r = check(
        &[fx("base.txt")],
        &[fx("osv/TEST-2026-0001.json")],
        Severity::High,
    )
    .unwrap();
    let f = r.findings.iter().find(|f| f.id == "I026").unwrap();
    assert_eq!(f.severity, Severity::High);
    assert!(f.message.contains("TEST-2026-0001") && f.message.contains("TEST-CVE-0001"));
}

#[test]
fn includes_options_and_errors() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("r.txt");
    std::fs::write(&p, "-r r.txt\n").unwrap();
    let e = check(std::slice::from_ref(&p), &[], Severity::High)
        .unwrap_err()
        .to_string();
    assert!(e.contains("cycle") && e.contains("r.txt"), "{e}");
    std::fs::write(&p, "ok==1\n--bogus-option x\n").unwrap();
    let e = check(std::slice::from_ref(&p), &[], Severity::High)
        .unwrap_err()
        .to_string();
    assert!(e.contains("r.txt:2") && e.contains("--bogus-option"), "{e}");
    std::fs::write(&p, "torch == 2.* \nultralytics>=8.3,<8.4\n-i https://pypi.org/simple/\n--trusted-host pypi.internal\n").unwrap();
    let r = check(std::slice::from_ref(&p), &[], Severity::High).unwrap();
    let ids: Vec<(&str, u64)> = r
        .findings
        .iter()
        .map(|f| (f.id.as_str(), f.location.line.unwrap()))
        .collect();
    assert!(
        ids.contains(&("I021", 1)),
        "wildcard == is not a pin: {ids:?}"
    );
    assert!(
        ids.contains(&("I025", 2)),
        "a range admitting compromised releases: {ids:?}"
    );
    assert!(ids.contains(&("I024", 4)), "{ids:?}");
    assert!(
        !ids.contains(&("I024", 3)),
        "the default index is no override: {ids:?}"
    );
    let bad = d.path().join("adv.json");
    std::fs::write(&bad, "{\"affected\": []}").unwrap();
    let e = check(&[p], &[bad], Severity::High).unwrap_err().to_string();
    assert!(e.contains("adv.json") && e.contains("id"), "{e}");
}

#[test]
fn specifiers() {
    assert!(spec_admits(">=8.3,<8.4", "8.3.41"));
    assert!(!spec_admits(">=8.3,<8.3.41", "8.3.41"));
    assert!(spec_admits("~=8.3.0", "8.3.46"));
    assert!(!spec_admits("~=8.3.0", "8.4"));
    assert!(spec_admits("==8.3.*", "8.3.45"));
    assert!(!spec_admits("!=8.3.*", "8.3.45"));
    assert!(spec_admits("", "1.0"));
}
