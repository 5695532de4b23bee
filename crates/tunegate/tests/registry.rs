//! `tunegate registry` end to end with the real gates: scan, sign, register, promote, refuse,
//! attach, approve, audit.
use assert_cmd::Command;
use std::path::Path;

struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn cmd(&self, args: &[&str], who: Option<(&str, &str)>) -> assert_cmd::assert::Assert {
        let mut c = Command::cargo_bin("tunegate").unwrap();
        c.current_dir(self.dir.path())
            .env("USER", "ops")
            .env_remove("LOGNAME")
            .args(args);
        if let Some((name, token)) = who {
            c.args(["--as", name]).env("TUNEGATE_REGISTRY_TOKEN", token);
        }
        c.assert()
    }
    fn ok(&self, args: &[&str]) -> String {
        String::from_utf8(self.cmd(args, None).code(0).get_output().stdout.clone()).unwrap()
    }
    fn p(&self, n: &str) -> std::path::PathBuf {
        self.dir.path().join(n)
    }
}

fn safetensors(path: &Path, fill: u8) {
    let h = br#"{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#;
    let mut b = (h.len() as u64).to_le_bytes().to_vec();
    b.extend_from_slice(h);
    b.extend_from_slice(&[fill; 8]);
    std::fs::write(path, b).unwrap();
}

const POLICY: &str = r#"
[registry]
store = "registry.db"
[registry.keys]
scanner = "scanner.pub"
release = "release.pub"
[registry.signers]
signature = ["release"]
model = ["scanner"]
dataset = ["scanner"]
base = ["scanner"]
[registry.stages.staging]
require = ["model"]
[registry.stages.production]
require = ["dataset", "base", "signature", "model"]
max_age_days = 30
"#;

#[test]
fn register_promote_refuse_attach_approve_audit() {
    let env = Env {
        dir: tempfile::tempdir().unwrap(),
    };
    std::fs::write(env.p("train.jsonl"), "{\"instruction\":\"add 1 and 1\",\"output\":\"2\"}\n{\"instruction\":\"name a colour\",\"output\":\"blue\"}\n").unwrap();
    std::fs::create_dir_all(env.p("base")).unwrap();
    safetensors(&env.p("base/model.safetensors"), 1);
    std::fs::create_dir_all(env.p("adapter")).unwrap();
    safetensors(&env.p("adapter/adapter.safetensors"), 2);
    std::fs::write(env.p("tunegate.toml"), POLICY).unwrap();
    env.ok(&["keygen", "-o", "scanner"]);
    env.ok(&["keygen", "-o", "release"]);
    // Gates, each report signed as evidence.
    env.ok(&[
        "dataset",
        "scan",
        "train.jsonl",
        "--format",
        "json",
        "-o",
        "dataset.json",
        "-q",
    ]);
    env.ok(&[
        "model",
        "scan",
        "base",
        "--format",
        "json",
        "-o",
        "base.json",
        "-q",
    ]);
    env.ok(&[
        "model",
        "scan",
        "adapter",
        "--format",
        "json",
        "-o",
        "scan.json",
        "-q",
    ]);
    for r in ["dataset", "base", "scan"] {
        env.ok(&[
            "sign-report",
            &format!("{r}.json"),
            "--key",
            "scanner.pem",
            "-o",
            &format!("{r}.sig.json"),
        ]);
    }
    env.ok(&[
        "sign",
        "adapter",
        "--key",
        "release.pem",
        "-o",
        "adapter.sig",
        "-q",
    ]);
    // Principals: the local user bootstraps itself as admin, then creates the others.
    env.ok(&["registry", "principal", "ops", "--role", "admin"]);
    let tina = env
        .ok(&["registry", "principal", "tina", "--role", "trainer"])
        .trim()
        .to_string();
    let sam = env
        .ok(&[
            "registry",
            "principal",
            "sam",
            "--role",
            "security-approver",
        ])
        .trim()
        .to_string();
    assert!(tina.starts_with("tgr_") && sam.starts_with("tgr_"));
    let tina = Some(("tina", tina.as_str()));
    let sam = Some(("sam", sam.as_str()));
    env.cmd(
        &[
            "registry",
            "add",
            "llama-lora",
            "adapter",
            "--input",
            "train.jsonl",
            "--input",
            "base",
            "--evidence",
            "scan.sig.json",
        ],
        tina,
    )
    .code(0)
    .stdout(predicates::str::contains("llama-lora@1 registered by tina"));
    env.cmd(
        &["registry", "promote", "llama-lora", "1", "--to", "staging"],
        tina,
    )
    .code(0);
    // Production: refused, naming each missing kind.
    let out = env
        .cmd(
            &[
                "registry",
                "promote",
                "llama-lora",
                "1",
                "--to",
                "production",
                "--format",
                "json",
            ],
            sam,
        )
        .code(1);
    let r: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(r["gate"], "registry");
    let msgs: Vec<String> = r["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["id"] == "R001")
        .map(|f| f["message"].as_str().unwrap().to_string())
        .collect();
    for k in ["dataset", "base", "signature"] {
        assert!(
            msgs.iter()
                .any(|m| m.contains(&format!("requires {k} evidence"))),
            "{msgs:?}"
        );
    }
    env.cmd(
        &[
            "registry",
            "evidence",
            "llama-lora",
            "1",
            "dataset.sig.json",
            "base=base.sig.json",
            "adapter.sig",
        ],
        tina,
    )
    .code(0);
    // The trainer may not promote to production; a wrong token is refused.
    env.cmd(
        &[
            "registry",
            "promote",
            "llama-lora",
            "1",
            "--to",
            "production",
        ],
        tina,
    )
    .code(2)
    .stderr(predicates::str::contains("forbidden"));
    env.cmd(
        &[
            "registry",
            "promote",
            "llama-lora",
            "1",
            "--to",
            "production",
        ],
        Some(("sam", "tgr_wrong")),
    )
    .code(2)
    .stderr(predicates::str::contains("unauthenticated"));
    // An unregistered local user is refused once principals exist.
    Command::cargo_bin("tunegate")
        .unwrap()
        .current_dir(env.dir.path())
        .env("USER", "mallory")
        .args(["registry", "promote", "llama-lora", "1", "--to", "staging"])
        .assert()
        .code(2);
    env.cmd(
        &[
            "registry",
            "promote",
            "llama-lora",
            "1",
            "--to",
            "production",
        ],
        sam,
    )
    .code(0);
    let show = env.ok(&["registry", "show", "llama-lora", "1"]);
    assert!(
        show.contains("stage production") && show.contains("production: allowed"),
        "{show}"
    );
    for k in ["dataset", "base", "signature", "model"] {
        assert!(
            show.lines()
                .any(|l| l.trim_start().starts_with(k) && l.contains(" ok ")),
            "{k}: {show}"
        );
    }
    assert!(env
        .ok(&["registry", "list"])
        .contains("llama-lora@1\tproduction"));
    env.cmd(&["registry", "audit", "--verify"], None).code(0);
    let audit = env.ok(&["registry", "audit"]);
    assert!(
        audit.lines().any(|l| l.contains("promote-refused"))
            && audit.lines().any(|l| l.contains("\tpromote\t"))
    );
    // Unknown version: exit 2 with the name.
    env.cmd(&["registry", "show", "llama-lora", "7"], None)
        .code(2)
        .stderr(predicates::str::contains("llama-lora@7"));
}
