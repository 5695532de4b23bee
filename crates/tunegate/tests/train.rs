//! `tunegate train` end to end on a tiny BERT fixture: the report, the PEFT adapter files, the
//! signature (`tunegate verify`), the provenance (`tunegate attest verify`, data and base
//! digests, ε and δ), refusal on data that left its lock (exit 1) and bad configs (exit 2).
use assert_cmd::Command;
use base64::Engine as _;
use serde_json::Value;
use std::path::Path;

fn tg(dir: &Path) -> Command {
    let mut c = Command::cargo_bin("tunegate").unwrap();
    c.current_dir(dir)
        .env_remove("VIRTUAL_ENV")
        .env_remove("TUNEGATE_KEY_PASSPHRASE");
    c
}

const POS: [&str; 3] = ["good", "great", "fun"];
const NEG: [&str; 3] = ["bad", "awful", "dull"];
const FILL: [&str; 6] = ["the", "movie", "film", "plot", "story", "scene"];

fn records(n: usize, offset: usize) -> String {
    let mut s = String::new();
    for i in 0..n {
        let k = i + offset;
        let label = k % 2;
        let w = if label == 1 { POS[k % 3] } else { NEG[k % 3] };
        let text = format!(
            "{} {} {w} {}",
            FILL[k % 6],
            FILL[(k / 6) % 6],
            FILL[(k + 3) % 6]
        );
        s += &serde_json::json!({"text": text, "label": label}).to_string();
        s.push('\n');
    }
    s
}

const CONFIG: &str = r#"
model = "model"
task = "classify"
seed = 3
max_len = 16
[data]
train = "data/train.jsonl"
eval = "data/eval.jsonl"
lock = "tunegate.lock"
[lora]
r = 4
alpha = 8
target_modules = ["query", "value"]
[optim]
lr = 0.02
warmup_steps = 2
[train]
max_steps = 12
batch_size = 8
[dp]
enabled = true
max_grad_norm = 1.0
noise_multiplier = 1.0
delta = 1e-4
"#;

fn setup() -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../tunegate-ml/tests/fixtures/tiny-bert-cls");
    std::fs::create_dir_all(d.join("model")).unwrap();
    for f in ["config.json", "model.safetensors", "tokenizer.json"] {
        std::fs::copy(fixture.join(f), d.join("model").join(f)).unwrap();
    }
    std::fs::create_dir_all(d.join("data")).unwrap();
    std::fs::write(d.join("data/train.jsonl"), records(48, 0)).unwrap();
    std::fs::write(d.join("data/eval.jsonl"), records(12, 100)).unwrap();
    std::fs::write(d.join("train.toml"), CONFIG).unwrap();
    tg(d).args(["keygen", "-o", "k"]).assert().success();
    tg(d)
        .args(["dataset", "lock", "data", "--lock", "tunegate.lock", "-q"])
        .assert()
        .success();
    t
}

fn statement(path: &Path) -> Value {
    let b: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let p = base64::engine::general_purpose::STANDARD
        .decode(b["dsseEnvelope"]["payload"].as_str().unwrap())
        .unwrap();
    serde_json::from_slice(&p).unwrap()
}

fn sha256_file(p: &Path) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(std::fs::read(p).unwrap())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn train_writes_a_signed_attested_peft_adapter() {
    let t = setup();
    let d = t.path();
    let out = tg(d)
        .args([
            "train",
            "--config",
            "train.toml",
            "--out",
            "adapter",
            "--key",
            "k.pem",
            "--format",
            "json",
            "-q",
        ])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["steps"], 12);
    assert_eq!(r["seed"], 3);
    assert_eq!(r["train_examples"], 48);
    assert_eq!(r["eval_examples"], 12);
    assert!(r["samples_per_second"].as_f64().unwrap() > 0.0);
    assert!(r["tokens_per_second"].as_f64().unwrap() > 0.0);
    assert!(r["final_eval_accuracy"].as_f64().is_some());
    let eps = r["dp"]["epsilon"].as_f64().unwrap();
    assert_eq!(r["dp"]["delta"], 1e-4);
    assert_eq!(r["dp"]["accountant"], "rdp");
    assert!(eps > 0.0 && eps.is_finite());
    assert_eq!(r["attested"], true);
    for f in ["adapter_config.json", "adapter_model.safetensors"] {
        assert!(d.join("adapter").join(f).is_file(), "{f}");
    }
    let cfg: Value =
        serde_json::from_slice(&std::fs::read(d.join("adapter/adapter_config.json")).unwrap())
            .unwrap();
    assert_eq!(cfg["peft_type"], "LORA");
    assert_eq!(cfg["task_type"], "SEQ_CLS");
    assert_eq!(cfg["modules_to_save"], serde_json::json!(["classifier"]));

    // The signature verifies like any `tunegate sign` output.
    tg(d)
        .args(["verify", "adapter", "--key", "k.pub"])
        .assert()
        .code(0);
    // The provenance verifies against the lock and the base model.
    let v = tg(d)
        .args([
            "attest",
            "verify",
            "adapter.provenance.json",
            "--key",
            "k.pub",
            "--artifact",
            "adapter",
            "--lock",
            "tunegate.lock",
            "--base",
            "model",
            "--format",
            "json",
        ])
        .output()
        .unwrap();
    assert_eq!(
        v.status.code(),
        Some(0),
        "{}{}",
        String::from_utf8_lossy(&v.stdout),
        String::from_utf8_lossy(&v.stderr)
    );
    let st = statement(&d.join("adapter.provenance.json"));
    let bd = &st["predicate"]["buildDefinition"];
    let training = &bd["internalParameters"]["training"];
    assert_eq!(training["epsilon"].as_f64(), Some(eps));
    assert_eq!(training["delta"], 1e-4);
    assert_eq!(training["report"]["steps"], 12);
    let deps = bd["resolvedDependencies"].as_array().unwrap();
    let with_role = |role: &str| -> Vec<&Value> {
        deps.iter()
            .filter(|x| x["annotations"]["tunegate.role"] == role)
            .collect()
    };
    let train_sha = sha256_file(&d.join("data/train.jsonl"));
    assert!(with_role("training-data")
        .iter()
        .any(|x| x["digest"]["sha256"] == train_sha.as_str()));
    assert!(with_role("dataset")
        .iter()
        .any(|x| x["digest"]["sha256"] == train_sha.as_str()));
    let weights_sha = sha256_file(&d.join("model/model.safetensors"));
    assert!(with_role("base-model")
        .iter()
        .any(|x| x["digest"]["sha256"] == weights_sha.as_str()));
    let cfg_sha = sha256_file(&d.join("train.toml"));
    assert!(with_role("hparams")
        .iter()
        .any(|x| x["digest"]["sha256"] == cfg_sha.as_str()));
    assert_eq!(
        bd["externalParameters"]["hparams"]["values"]["dp"]["delta"],
        1e-4
    );
}

#[test]
fn same_seed_same_adapter_bytes() {
    let t = setup();
    let d = t.path();
    for o in ["a1", "a2"] {
        tg(d)
            .args(["train", "-c", "train.toml", "--out", o, "-q"])
            .assert()
            .code(0);
    }
    assert_eq!(
        std::fs::read(d.join("a1/adapter_model.safetensors")).unwrap(),
        std::fs::read(d.join("a2/adapter_model.safetensors")).unwrap()
    );
    assert!(!d.join("a1.sig").exists(), "no --key, no signature");
}

#[test]
fn data_outside_the_lock_is_refused_and_bad_configs_exit_2() {
    let t = setup();
    let d = t.path();
    std::fs::write(d.join("data/train.jsonl"), records(40, 1)).unwrap();
    tg(d)
        .args(["train", "-c", "train.toml", "--out", "adapter", "-q"])
        .assert()
        .code(1)
        .stderr(predicates::str::contains("differs from the lock"));
    assert!(!d.join("adapter").exists(), "nothing trained");

    std::fs::write(
        d.join("bad.toml"),
        CONFIG.replace("lr = 0.02", "lr = 0.02\nlearning_rate = 1"),
    )
    .unwrap();
    tg(d)
        .args(["train", "-c", "bad.toml", "--out", "x"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains("bad.toml"))
        .stderr(predicates::str::contains("learning_rate"));
    std::fs::write(
        d.join("bad2.toml"),
        CONFIG
            .replace("lock = \"tunegate.lock\"\n", "")
            .replace("data/eval.jsonl", "data/missing.jsonl"),
    )
    .unwrap();
    tg(d)
        .args(["train", "-c", "bad2.toml", "--out", "x"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains("missing.jsonl"));
}

#[test]
fn the_tiny_bert_learns_the_sentiment_words() {
    let t = setup();
    let d = t.path();
    let cfg = CONFIG
        .replace("max_steps = 12", "max_steps = 30")
        .split("[dp]")
        .next()
        .unwrap()
        .to_string();
    std::fs::write(d.join("plain.toml"), cfg).unwrap();
    let out = tg(d)
        .args([
            "train",
            "-c",
            "plain.toml",
            "--out",
            "plain",
            "--format",
            "json",
            "-q",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(r["dp"].is_null());
    let acc = r["final_eval_accuracy"].as_f64().unwrap();
    assert!(acc >= 0.9, "accuracy {acc}: {r}");
    assert!(r["last_loss"].as_f64().unwrap() < r["first_loss"].as_f64().unwrap());
}
