//! `tunegate lint` end to end: ids, lines and severities on a fixture pipeline, the negatives,
//! exit codes (0 pass, 1 findings at or above --fail-on, 2 bad input naming the file), folder
//! walking, and SARIF output validated against the OASIS SARIF 2.1.0 schema.
use assert_cmd::Command;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::sync::OnceLock;

fn tg() -> Command {
    Command::cargo_bin("tunegate").unwrap()
}

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/lint/pipeline")
}

fn json_report(args: &[&str], code: i32) -> Value {
    let out = tg()
        .arg("lint")
        .args(args)
        .args(["--format", "json"])
        .assert()
        .code(code);
    serde_json::from_slice(&out.get_output().stdout).expect("a JSON report")
}

/// (file name, id, line, severity) of every finding, in report order.
fn rows(rep: &Value) -> Vec<(String, String, u64, String)> {
    rep["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let file = f["location"]["file"].as_str().unwrap();
            (
                file.rsplit('/').next().unwrap().to_string(),
                f["id"].as_str().unwrap().to_string(),
                // Notebook findings carry the line within the cell in the evidence only.
                f["location"]["line"]
                    .as_u64()
                    .or(f["evidence"]["line"].as_u64())
                    .unwrap_or(0),
                f["severity"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn row(file: &str, id: &str, line: u64, sev: &str) -> (String, String, u64, String) {
    (file.into(), id.into(), line, sev.into())
}

#[test]
fn fixture_pipeline_findings_ids_lines_and_severities() {
    let rep = json_report(&[fixtures().to_str().unwrap()], 1);
    assert_eq!(rep["gate"], "lint");
    assert_eq!(rep["verdict"], "fail");
    // README.txt is not linted; safe_eval.py has no findings; configs/ is walked.
    assert_eq!(rep["summary"]["records"], 6);
    assert_eq!(rep["subjects"].as_array().unwrap().len(), 6);
    assert_eq!(
        rows(&rep),
        [
            row("train.yaml", "M040", 3, "high"),
            // pk.load resolves through `import pickle as pk` in an earlier cell; the notebook
            // runs `!wget`, so the pickle load is raised to critical.
            row("explore.ipynb", "M042", 3, "critical"),
            row("finetune.py", "M040", 17, "high"),
            row("finetune.py", "M040", 18, "high"),
            // T.load is torch.load; the file downloads with hf_hub_download: medium -> high.
            row("finetune.py", "M041", 24, "high"),
            row("finetune.py", "M043", 26, "critical"),
            row("legacy_features.py", "M042", 7, "high"),
            row("legacy_features.py", "M044", 8, "high"),
            row("legacy_features.py", "M045", 9, "high"),
            row("legacy_features.py", "M046", 10, "high"),
            row("serve.sh", "M040", 4, "high"),
        ]
    );
    let nb = &rep["findings"][1];
    assert_eq!(nb["location"]["field"], "cells[2]");
    assert_eq!(nb["location"]["line"], Value::Null);
    assert_eq!(nb["evidence"]["fetch"], "cells[1] line 2");
    let torch = &rep["findings"][4];
    assert_eq!(
        torch["evidence"]["call"],
        "T.load(head, map_location=\"cpu\")"
    );
    assert_eq!(torch["evidence"]["callee"], "torch.load");
    assert_eq!(torch["evidence"]["column"], 13);
    assert_eq!(torch["evidence"]["fetch"], "line 23");
    assert!(torch["evidence"]["fix"]
        .as_str()
        .unwrap()
        .contains("weights_only=True"));
}

#[test]
fn tricky_negatives_pass() {
    let rep = json_report(&[fixtures().join("safe_eval.py").to_str().unwrap()], 0);
    assert_eq!(rep["verdict"], "pass");
    assert_eq!(rep["findings"], json!([]));
}

#[test]
fn fail_on_moves_the_threshold() {
    let legacy = fixtures().join("legacy_features.py");
    let legacy = legacy.to_str().unwrap();
    json_report(&[legacy, "--fail-on", "critical"], 0);
    json_report(&[legacy], 1);
    let finetune = fixtures().join("finetune.py");
    json_report(&[finetune.to_str().unwrap(), "--fail-on", "critical"], 1);
}

#[test]
fn text_output_names_location_and_fix() {
    let out = tg()
        .arg("lint")
        .arg(fixtures().join("finetune.py"))
        .assert()
        .code(1);
    let text = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    assert!(text.contains("M041"), "{text}");
    assert!(text.contains("pass weights_only=True"), "{text}");
    assert!(text.contains("finetune.py"), "{text}");
}

#[test]
fn bad_input_exits_2_naming_the_file_and_undecodable_source_is_a_finding() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.py");
    tg().arg("lint")
        .arg(&missing)
        .assert()
        .code(2)
        .stderr(predicates::str::contains("nope.py"));
    let readme = fixtures().join("README.txt");
    tg().arg("lint")
        .arg(&readme)
        .assert()
        .code(2)
        .stderr(predicates::str::contains("README.txt"))
        .stderr(predicates::str::contains("not a Python"));
    let latin = dir.path().join("latin1.py");
    std::fs::write(&latin, b"# caf\xe9\nimport pickle\n").unwrap();
    let rep = json_report(&[latin.to_str().unwrap()], 0);
    assert_eq!(rows(&rep), [row("latin1.py", "M051", 0, "medium")]);
    json_report(&[latin.to_str().unwrap(), "--fail-on", "medium"], 1);
    // A shebang makes an extension-less file lintable.
    let script = dir.path().join("fetch");
    std::fs::write(
        &script,
        "#!/usr/bin/env python3\nimport pickle\npickle.loads(b)\n",
    )
    .unwrap();
    let rep = json_report(&[script.to_str().unwrap()], 1);
    assert_eq!(rows(&rep), [row("fetch", "M042", 3, "high")]);
}

#[test]
fn folder_walk_skips_virtualenvs_and_caches_but_named_files_are_linted() {
    let dir = tempfile::tempdir().unwrap();
    for sub in [".venv/lib", "env/lib/site-packages/x", "__pycache__"] {
        std::fs::create_dir_all(dir.path().join(sub)).unwrap();
        std::fs::write(
            dir.path().join(sub).join("m.py"),
            "import pickle\npickle.load(f)\n",
        )
        .unwrap();
    }
    let rep = json_report(&[dir.path().to_str().unwrap()], 0);
    assert_eq!(rep["summary"]["records"], 0);
    let named = dir.path().join(".venv/lib/m.py");
    let rep = json_report(&[named.to_str().unwrap()], 1);
    assert_eq!(rows(&rep), [row("m.py", "M042", 2, "high")]);
}

#[test]
fn checks_lists_the_lint_ids() {
    let out = tg().arg("checks").assert().success();
    let text = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    for id in ["M040", "M041", "M046", "M050", "M051", "M052"] {
        assert!(
            text.contains(&format!("{id}  lint.")),
            "{id} missing:\n{text}"
        );
    }
}

fn sarif_validator() -> &'static jsonschema::Validator {
    static V: OnceLock<jsonschema::Validator> = OnceLock::new();
    V.get_or_init(|| {
        let text = include_str!("../../tunegate-core/tests/fixtures/sarif-schema-2.1.0.json");
        let mut schema: Value = serde_json::from_str(text).unwrap();
        // Same in-memory fix as tunegate-core's render tests: the published `language` pattern
        // has a stray `]` that Rust regex engines reject.
        fix_language_pattern(&mut schema);
        jsonschema::draft7::options()
            .should_validate_formats(true)
            .build(&schema)
            .expect("the SARIF schema compiles")
    })
}

fn fix_language_pattern(v: &mut Value) {
    const BROKEN: &str = "^[a-zA-Z]{2}|^[a-zA-Z]{2}-[a-zA-Z]{2}]?$";
    match v {
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                if k == "pattern" && v == BROKEN {
                    *v = json!("^[a-zA-Z]{2}|^[a-zA-Z]{2}-[a-zA-Z]{2}\\]?$");
                } else {
                    fix_language_pattern(v);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(fix_language_pattern),
        _ => {}
    }
}

#[test]
fn sarif_is_valid_and_points_at_lines() {
    let out = tg()
        .arg("lint")
        .arg(fixtures())
        .args(["--format", "sarif"])
        .assert()
        .code(1);
    let sarif: Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    let errors: Vec<String> = sarif_validator()
        .iter_errors(&sarif)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "invalid SARIF:\n{}", errors.join("\n"));
    let run = &sarif["runs"][0];
    let rules: Vec<&str> = run["tool"]["driver"]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        rules,
        ["M040", "M041", "M042", "M043", "M044", "M045", "M046"]
    );
    let results = run["results"].as_array().unwrap();
    assert_eq!(results.len(), 11);
    let torch = results
        .iter()
        .find(|r| r["ruleId"] == "M041")
        .expect("the torch.load result");
    let phys = &torch["locations"][0]["physicalLocation"];
    assert!(phys["artifactLocation"]["uri"]
        .as_str()
        .unwrap()
        .ends_with("finetune.py"));
    assert_eq!(phys["region"]["startLine"], 24);
    assert_eq!(torch["level"], "error");
}
