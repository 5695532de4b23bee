//! `tunegate model scan --no-digest`: the same findings and verdict as a default scan, with
//! subjects that name every file but carry no digest; the default keeps the sha256 subjects.
use assert_cmd::Command;
use serde_json::Value;

fn tg() -> Command {
    Command::cargo_bin("tunegate").unwrap()
}

fn scan(args: &[&str], dir: &std::path::Path) -> Value {
    let out = tg()
        .args(["model", "scan", "--format", "json", "--quiet"])
        .args(args)
        .arg(dir)
        .assert()
        .code(1);
    serde_json::from_slice(&out.get_output().stdout).unwrap()
}

#[test]
fn no_digest_keeps_findings_and_drops_only_the_digests() {
    let dir = tempfile::tempdir().unwrap();
    // Protocol 2: GLOBAL 'posix system', ('id',), REDUCE, STOP.
    std::fs::write(
        dir.path().join("training_args.bin"),
        b"\x80\x02cposix\nsystem\nX\x02\x00\x00\x00id\x85R.",
    )
    .unwrap();
    // A plain dict pickle {'a': 1}.
    std::fs::write(
        dir.path().join("plain.pkl"),
        b"\x80\x02}q\x00X\x01\x00\x00\x00aq\x01K\x01s.",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("config.json"),
        b"{\"model_type\": \"llama\"}",
    )
    .unwrap();

    let with = scan(&[], dir.path());
    let without = scan(&["--no-digest"], dir.path());

    assert_eq!(with["findings"], without["findings"]);
    assert_eq!(with["verdict"], "fail");
    assert_eq!(without["verdict"], "fail");
    assert!(without["findings"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["severity"] == "critical"
            && f["location"]["file"]
                .as_str()
                .unwrap()
                .ends_with("training_args.bin")));

    let names = |v: &Value| -> Vec<String> {
        v["subjects"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(names(&with).len(), 3);
    assert_eq!(names(&with), names(&without));
    for s in with["subjects"].as_array().unwrap() {
        let h = s["digest"]["sha256"].as_str().expect("sha256 by default");
        assert_eq!(h.len(), 64, "{s}");
    }
    for s in without["subjects"].as_array().unwrap() {
        assert!(
            s["digest"].as_object().is_none_or(|d| d.is_empty()),
            "--no-digest subject carries a digest: {s}"
        );
    }
}
