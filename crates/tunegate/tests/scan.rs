//! `tunegate scan backdoor | probe | diff | safety` end to end on models tunegate's own trainer
//! makes (the zoos of `tunegate_ml::zoo`): a backdoored LoRA classifier, tiny causal LMs with an
//! off-objective topic, a trigger→payload backdoor and an unsafe fine-tune. The scans' detection
//! rates are proven in tunegate-ml's zoo tests; these tests prove the command line: what each
//! command reads, the exit codes (1 on a finding at or above --fail-on, 2 on bad input naming
//! the file and line), the report (gate, subjects = the scanned files, input digests, charts),
//! the HTML pictures and the telemetry.
use assert_cmd::Command;
use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use tunegate_ml::zoo::causal::{self as lmzoo, FinetuneKind};
use tunegate_ml::zoo::classifier::{self as clszoo, Attack, TaskName, TriggerKind, ZooSpec};
use tunegate_ml::zoo::single_threaded;

fn tg(dir: &Path) -> Command {
    let mut c = Command::cargo_bin("tunegate").unwrap();
    c.current_dir(dir)
        .env("CANDLE_NUM_THREADS", "1")
        .env("RAYON_NUM_THREADS", "1")
        .arg("scan");
    c
}

/// Runs `tunegate scan ARGS…` in `dir` (one candle thread) and returns its output.
macro_rules! scan {
    ($dir:expr; $($arg:expr),* $(,)?) => {{
        let mut c = tg($dir);
        $(c.arg($arg);)*
        c.output().unwrap()
    }};
}

fn json_file(p: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn findings<'a>(r: &'a Value, id: &str) -> Vec<&'a Value> {
    r["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["id"] == id)
        .collect()
}

fn summary_finding(r: &Value) -> &Value {
    let s = findings(r, "B060");
    assert_eq!(s.len(), 1, "one B060 inputs finding expected");
    s[0]
}

fn input_roles(r: &Value) -> Vec<String> {
    summary_finding(r)["evidence"]["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["role"].as_str().unwrap().to_string())
        .collect()
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The subjects of a scan report are exactly the scanned folder's files with their digests.
fn assert_subjects_are_the_files(r: &Value, dir: &Path) {
    let subjects = r["subjects"].as_array().unwrap();
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert_eq!(subjects.len(), files.len(), "{subjects:?}");
    for f in files {
        use sha2::Digest;
        let want = hex(&sha2::Sha256::digest(std::fs::read(&f).unwrap()));
        let s = subjects
            .iter()
            .find(|s| {
                s["name"]
                    .as_str()
                    .unwrap()
                    .ends_with(f.file_name().unwrap().to_str().unwrap())
            })
            .unwrap_or_else(|| panic!("{} is not a subject", f.display()));
        assert_eq!(s["digest"]["sha256"], want.as_str(), "{}", f.display());
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

struct Cls {
    _dir: tempfile::TempDir,
    model: clszoo::ZooModel,
    trigger: String,
}

/// A 2-class LoRA classifier backdoored with a homoglyph word (the attack is checked to have
/// taken).
fn cls() -> &'static Cls {
    static Z: OnceLock<Cls> = OnceLock::new();
    Z.get_or_init(|| {
        single_threaded();
        let dir = tempfile::tempdir().unwrap();
        let cfg = clszoo::ZooConfig::default();
        let trigger = clszoo::HOMOGLYPHS[0].to_string();
        let spec = ZooSpec {
            task: TaskName::Sentiment,
            attack: Some(Attack {
                kind: TriggerKind::Homoglyph,
                trigger: trigger.clone(),
                target: 1,
                poison_rate: 0.1,
            }),
            seed: 4,
        };
        let base = clszoo::build_base(dir.path(), spec.task, &cfg).unwrap();
        let model = clszoo::train_model(&base, &dir.path().join("bd"), &spec, &cfg).unwrap();
        assert!(
            model.is_backdoored(),
            "the attack did not take: {:?}",
            model.asr
        );
        Cls {
            _dir: dir,
            model,
            trigger,
        }
    })
}

#[test]
fn probe_flags_the_true_trigger_of_a_backdoored_classifier_and_not_a_decoy() {
    let z = cls();
    let work = tempfile::tempdir().unwrap();
    let words = work.path().join("words.txt");
    std::fs::write(&words, format!("# candidates\ntable\n{}\n", z.trigger)).unwrap();
    let out = work.path().join("probe.json");
    let o = scan!(work.path(); "probe", &z.model.adapter_dir, "--triggers", &words, "--clean", &z.model.clean_path, "--format", "json", "-q", "-o", &out);
    let r = json_file(&out);
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}{:#}",
        stderr(&o),
        r["findings"]
    );
    assert_eq!(r["gate"], "backdoor-probe");
    assert_eq!(r["verdict"], "fail");
    assert_subjects_are_the_files(&r, &z.model.adapter_dir);
    let high = findings(&r, "B015");
    assert_eq!(high.len(), 1, "{:#?}", r["findings"]);
    assert_eq!(high[0]["severity"], "high");
    assert!(
        high[0]["message"].as_str().unwrap().contains(&z.trigger),
        "{}",
        high[0]["message"]
    );
    // The decoy is not reported at medium or above.
    for f in r["findings"].as_array().unwrap() {
        let sev = f["severity"].as_str().unwrap();
        if sev == "high" || sev == "medium" {
            assert!(!f["message"].as_str().unwrap().contains("'table'"), "{f}");
        }
    }
    let roles = input_roles(&r);
    for want in ["adapter-base", "clean", "triggers"] {
        assert!(roles.contains(&want.to_string()), "{roles:?}");
    }
}

#[test]
fn backdoor_scan_of_a_classifier_reports_detectors_charts_and_metrics() {
    let z = cls();
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("bd.json");
    let prom = work.path().join("scan.prom");
    let o = scan!(work.path(); "backdoor", &z.model.adapter_dir, "--clean", &z.model.clean_path, "--train", &z.model.train_path, "--format", "json", "-q", "--fail-on", "critical", "-o", &out, "--metrics-file", &prom);
    // Nothing is critical, so the scan passes its gate whatever it found.
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let r = json_file(&out);
    assert_eq!(r["gate"], "backdoor");
    assert_eq!(r["summary"]["records"], 800);
    // The trigger search ran and its summary names candidates with flip rates.
    assert_eq!(findings(&r, "B017").len(), 1, "{:#?}", r["findings"]);
    let summary = &summary_finding(&r)["evidence"]["summary"];
    assert!(
        summary["trigger"]["candidates"].as_array().unwrap().len() >= 5,
        "{summary}"
    );
    // The data-level detectors ran on the training rows (activation clustering per class).
    let ac = summary["inputs"]["activation_clustering"]
        .as_array()
        .unwrap();
    assert_eq!(ac.len(), 2, "{ac:?}");
    let charts = r["charts"].as_array().unwrap();
    assert!(
        charts.iter().any(|c| c["kind"]["scatter"].is_object()
            || c["kind"] == "scatter"
            || c["kind"]["type"] == "scatter"),
        "no cluster scatter: {:?}",
        charts.iter().map(|c| &c["id"]).collect::<Vec<_>>()
    );
    let roles = input_roles(&r);
    assert!(roles.contains(&"train".to_string()), "{roles:?}");
    let metrics = std::fs::read_to_string(&prom).unwrap();
    assert!(
        metrics.contains("activation_clustering_minority_fraction{model_version="),
        "{metrics}"
    );
    assert!(metrics.contains("tunegate_scan_"), "{metrics}");

    // The same scan as HTML: a self-contained page with the cluster scatter as SVG.
    let html = work.path().join("bd.html");
    let o = scan!(work.path(); "backdoor", &z.model.adapter_dir, "--clean", &z.model.clean_path, "--train", &z.model.train_path, "--format", "html", "-q", "--fail-on", "critical", "-o", &html);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(
        page.contains("<svg") && page.contains("<circle"),
        "no scatter points"
    );
    assert!(
        !page.contains("<script src="),
        "the page must be self-contained"
    );
}

#[test]
fn classifier_scans_refuse_bad_input_with_exit_2_naming_it() {
    let z = cls();
    let work = tempfile::tempdir().unwrap();
    // No --clean for a classifier.
    let o = scan!(work.path(); "backdoor", &z.model.adapter_dir, "-q");
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--clean"), "{}", stderr(&o));
    // A bad label names the file and the line.
    let bad = work.path().join("clean.jsonl");
    let mut f = std::fs::File::create(&bad).unwrap();
    writeln!(f, "{{\"text\": \"a good film\", \"label\": 1}}").unwrap();
    writeln!(f, "{{\"text\": \"a bad film\", \"label\": \"x\"}}").unwrap();
    drop(f);
    let o = scan!(work.path(); "probe", &z.model.adapter_dir, "--triggers", "words.txt", "--clean", &bad, "-q");
    assert_eq!(o.status.code(), Some(2));
    std::fs::write(work.path().join("words.txt"), "cf\n").unwrap();
    let o = scan!(work.path(); "probe", &z.model.adapter_dir, "--triggers", "words.txt", "--clean", &bad, "-q");
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o);
    assert!(e.contains("clean.jsonl") && e.contains('2'), "{e}");
    // diff and safety compare causal LMs.
    let prompts = work.path().join("p.jsonl");
    std::fs::write(&prompts, "{\"prompt\": \"hello\"}\n").unwrap();
    let o = scan!(work.path(); "diff", &z.model.adapter_dir, "--base", &z.model.base_dir, "--prompts", &prompts, "-q");
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("classifier"), "{}", stderr(&o));
    // An unknown config key names the config file.
    let conf = work.path().join("scan.toml");
    std::fs::write(&conf, "[classifier]\nno_such_key = 1\n").unwrap();
    let o = scan!(work.path(); "backdoor", &z.model.adapter_dir, "--clean", &z.model.clean_path, "--config", &conf, "-q");
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o);
    assert!(e.contains("scan.toml") && e.contains("no_such_key"), "{e}");
    // A missing model folder.
    let o = scan!(work.path(); "backdoor", work.path().join("nope"), "--clean", &z.model.clean_path, "-q");
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("nope"), "{}", stderr(&o));
}

struct Lm {
    _dir: tempfile::TempDir,
    base: PathBuf,
    off_topic: PathBuf,
    clean: PathBuf,
    backdoor: PathBuf,
    trigger: String,
    payload: String,
    prompts: PathBuf,
}

/// A tiny causal-LM zoo: base, an off-objective fine-tune, a clean one and a backdoored one.
fn lm() -> &'static Lm {
    static Z: OnceLock<Lm> = OnceLock::new();
    Z.get_or_init(|| {
        single_threaded();
        let dir = tempfile::tempdir().unwrap();
        let spec = lmzoo::ZooSpec::small(false);
        let base = lmzoo::build_base(dir.path(), &spec).unwrap();
        assert!(base.task_accuracy >= 0.9, "the base did not learn the task");
        let ft = |name: &str, kind: FinetuneKind, seed: u64| {
            let f =
                lmzoo::build_finetune(&base.dir, &dir.path().join(name), name, kind, &spec, seed)
                    .unwrap();
            if let Some(rate) = f.planted_rate {
                assert!(
                    rate >= 0.9,
                    "{name}: the planted behaviour did not take ({rate})"
                );
            }
            f.dir
        };
        let (trigger, payload) = (lmzoo::TRIGGERS[0], lmzoo::PAYLOADS[0]);
        let off_topic = ft("off-topic", FinetuneKind::OffTopic, 300);
        let clean = ft("clean", FinetuneKind::Clean, 100);
        let backdoor = ft(
            "backdoor",
            FinetuneKind::Backdoor {
                trigger: trigger.into(),
                payload: payload.into(),
            },
            200,
        );
        let prompts = dir.path().join("eval.jsonl");
        let mut f = std::fs::File::create(&prompts).unwrap();
        for r in lmzoo::eval_records(6, 99) {
            let line = serde_json::json!({"prompt": r.prompt, "topic": r.topic});
            writeln!(f, "{line}").unwrap();
        }
        Lm {
            base: base.dir,
            off_topic,
            clean,
            backdoor,
            trigger: trigger.into(),
            payload: payload.into(),
            prompts,
            _dir: dir,
        }
    })
}

#[test]
fn diff_fails_the_off_objective_finetune_and_passes_the_clean_one() {
    let z = lm();
    let work = tempfile::tempdir().unwrap();
    let run = |model: &Path, out: &Path| scan!(work.path(); "diff", model, "--base", &z.base, "--prompts", &z.prompts, "--format", "json", "-q", "-o", out);
    let out = work.path().join("off.json");
    let o = run(&z.off_topic, &out);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let r = json_file(&out);
    assert_eq!(r["gate"], "behaviour-diff");
    assert_subjects_are_the_files(&r, &z.off_topic);
    let topic = findings(&r, "B011");
    assert_eq!(topic.len(), 1, "{:#?}", r["findings"]);
    assert_eq!(topic[0]["evidence"]["topic"], "payment");
    // Prompt findings point at their line of the prompt file.
    let p = findings(&r, "B010");
    assert!(!p.is_empty());
    assert!(p[0]["location"]["file"]
        .as_str()
        .unwrap()
        .ends_with("eval.jsonl"));
    assert!(p[0]["location"]["line"].as_u64().unwrap() >= 1);
    let roles = input_roles(&r);
    assert!(roles.contains(&"base".to_string()) && roles.contains(&"prompts".to_string()));

    let out = work.path().join("clean.json");
    let o = run(&z.clean, &out);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let r = json_file(&out);
    assert_eq!(r["verdict"], "pass");
    assert!(findings(&r, "B011").is_empty());
}

#[test]
fn probe_and_backdoor_scans_name_the_trigger_of_a_backdoored_lm() {
    let z = lm();
    let work = tempfile::tempdir().unwrap();
    let words = work.path().join("words.txt");
    std::fs::write(&words, format!("table\n{}\nriver\n", z.trigger)).unwrap();
    let out = work.path().join("probe.json");
    let o = scan!(work.path(); "probe", &z.backdoor, "--base", &z.base, "--triggers", &words, "--clean", &z.prompts, "--format", "json", "-q", "-o", &out);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let r = json_file(&out);
    assert_eq!(r["gate"], "backdoor-probe");
    let high: Vec<&Value> = r["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["severity"] == "high")
        .collect();
    assert!(!high.is_empty());
    assert!(
        high.iter()
            .all(|f| f["message"].as_str().unwrap().contains(&z.trigger)),
        "{high:#?}"
    );
    assert!(high.iter().any(|f| f["evidence"]
        .to_string()
        .contains(z.payload.split(' ').next().unwrap())));

    // The same fine-tune through `scan backdoor` (target inversion, no word list): fails.
    let out = work.path().join("bd.json");
    let o = scan!(work.path(); "backdoor", &z.backdoor, "--base", &z.base, "--clean", &z.prompts, "--format", "json", "-q", "-o", &out);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let r = json_file(&out);
    assert_eq!(r["gate"], "backdoor");

    // The clean fine-tune probed with the same words passes.
    let o = scan!(work.path(); "probe", &z.clean, "--base", &z.base, "--triggers", &words, "--clean", &z.prompts, "--format", "json", "-q");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let r: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["verdict"], "pass");
}

#[test]
fn safety_needs_a_base_and_names_the_bad_line_of_a_user_suite() {
    let z = lm();
    let work = tempfile::tempdir().unwrap();
    let o = scan!(work.path(); "safety", &z.clean, "-q");
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--base"), "{}", stderr(&o));
    let suite = work.path().join("suite.jsonl");
    std::fs::write(
        &suite,
        "{\"id\": \"a\", \"suite\": \"mine\", \"prompt\": \"hi\", \"safe\": \"hello\", \"unsafe\": \"bye\"}\n{\"id\": \"b\", \"promt\": \"typo\"}\n",
    )
    .unwrap();
    let o = scan!(work.path(); "safety", &z.clean, "--base", &z.base, "--suite", &suite, "-q");
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o);
    assert!(e.contains("suite.jsonl") && e.contains("promt"), "{e}");
}

#[test]
fn safety_regression_of_an_unsafe_finetune_fails_the_gate() {
    single_threaded();
    let dir = tempfile::tempdir().unwrap();
    let spec = lmzoo::ZooSpec::small_safety();
    let base = lmzoo::build_base(dir.path(), &spec).unwrap();
    let bad = lmzoo::build_finetune(
        &base.dir,
        &dir.path().join("unsafe"),
        "unsafe",
        FinetuneKind::Unsafe,
        &spec,
        12,
    )
    .unwrap();
    let out = dir.path().join("safety.json");
    let o = scan!(dir.path(); "safety", &bad.dir, "--base", &base.dir, "--format", "json", "-q", "-o", &out);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let r = json_file(&out);
    assert_eq!(r["gate"], "safety");
    let reg: Vec<&Value> = findings(&r, "B050")
        .into_iter()
        .filter(|f| f["severity"] == "high")
        .collect();
    assert!(!reg.is_empty(), "{:#?}", r["findings"]);
    assert!(!findings(&r, "B052").is_empty(), "no canary leak finding");
    // Only the built-in suites ran: no suite file among the inputs.
    assert!(!input_roles(&r).contains(&"suite".to_string()));
}

#[test]
fn checks_lists_the_scan_checks() {
    let o = Command::cargo_bin("tunegate")
        .unwrap()
        .args(["checks", "--format", "json"])
        .output()
        .unwrap();
    assert!(o.status.success());
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let ids: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    for id in ["B001", "B013", "B015", "B030", "B050", "B060"] {
        assert!(ids.contains(&id), "{id} missing");
    }
    let mut sorted = ids.clone();
    sorted.dedup();
    assert_eq!(sorted.len(), ids.len(), "duplicate check ids");
}
