//! Shared fixture: a model, its inputs, keys, and signed evidence of every kind.
#![allow(dead_code)]
use serde_json::json;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use tunegate_core::{Finding, Location, Report, Severity, Subject};
use tunegate_registry::store::{Approval, Evidence, Version};
use tunegate_registry::{Actor, Policy, Registry};
use tunegate_sign::keys::{KeyAlgorithm, PrivateKey, Signer};
use tunegate_sign::manifest::WalkOptions;
use tunegate_sign::statement::{ResourceDescriptor, Statement};

pub struct Fx {
    pub dir: tempfile::TempDir,
    pub model: PathBuf,
    pub other_model: PathBuf,
    pub dataset: PathBuf,
    pub base: PathBuf,
    pub release: PrivateKey,
    pub scanner: PrivateKey,
    pub ci: PrivateKey,
    pub rogue: PrivateKey,
}

pub fn sha(p: &Path) -> String {
    hex::encode(Sha256::digest(std::fs::read(p).unwrap()))
}

pub const POLICY: &str = r#"
[registry]
store = "reg.db"
[registry.keys]
release = "release.pub"
scanner = "scanner.pub"
ci = "ci.pub"
[registry.signers]
signature = ["release"]
model = ["scanner"]
dataset = ["scanner"]
base = ["scanner"]
provenance = ["ci"]
[registry.stages.staging]
require = ["model"]
[registry.stages.production]
require = ["dataset", "base", "provenance", "signature", "model"]
max_age_days = 7
max_severity = "medium"
"#;

pub fn fixture() -> Fx {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_path_buf();
    let d = d.as_path();
    let model = d.join("model");
    std::fs::create_dir_all(&model).unwrap();
    std::fs::write(model.join("adapter.safetensors"), b"weights-v1").unwrap();
    std::fs::write(model.join("config.json"), b"{\"r\": 8}").unwrap();
    let other_model = d.join("other");
    std::fs::create_dir_all(&other_model).unwrap();
    std::fs::write(other_model.join("adapter.safetensors"), b"swapped").unwrap();
    let dataset = d.join("train.jsonl");
    std::fs::write(&dataset, b"{\"input\":\"a\",\"output\":\"b\"}\n").unwrap();
    let base = d.join("base");
    std::fs::create_dir_all(&base).unwrap();
    std::fs::write(base.join("model.safetensors"), b"base-weights").unwrap();
    let fx = Fx {
        model,
        other_model,
        dataset,
        base,
        release: PrivateKey::generate(KeyAlgorithm::EcdsaP256),
        scanner: PrivateKey::generate(KeyAlgorithm::EcdsaP256),
        ci: PrivateKey::generate(KeyAlgorithm::Ed25519),
        rogue: PrivateKey::generate(KeyAlgorithm::EcdsaP256),
        dir,
    };
    for (n, k) in [
        ("release", &fx.release),
        ("scanner", &fx.scanner),
        ("ci", &fx.ci),
    ] {
        std::fs::write(d.join(format!("{n}.pub")), k.public_key().to_pem()).unwrap();
    }
    std::fs::write(d.join("tunegate.toml"), POLICY).unwrap();
    fx
}

impl Fx {
    pub fn path(&self, n: &str) -> PathBuf {
        self.dir.path().join(n)
    }

    pub fn policy(&self) -> Policy {
        Policy::load(&self.path("tunegate.toml")).unwrap()
    }

    pub fn registry(&self) -> Registry {
        Registry::open(self.policy()).unwrap()
    }

    /// Files of a folder (or one file) as report subjects.
    pub fn subjects(p: &Path) -> Vec<Subject> {
        if p.is_file() {
            return vec![Subject::sha256(p.display().to_string(), sha(p))];
        }
        let mut v: Vec<_> = std::fs::read_dir(p)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        v.sort();
        v.iter()
            .map(|f| Subject::sha256(f.display().to_string(), sha(f)))
            .collect()
    }

    /// A signed gate report over `about`, with one finding of `sev` if given; returns the file.
    pub fn report(
        &self,
        file: &str,
        gate: &str,
        about: &Path,
        sev: Option<Severity>,
        key: &PrivateKey,
    ) -> PathBuf {
        let mut r = Report::new(gate, Severity::High);
        r.subjects = Self::subjects(about);
        if let Some(s) = sev {
            static C: tunegate_core::CheckInfo = tunegate_core::CheckInfo {
                id: "M001",
                name: "model.test",
                severity: Severity::High,
                doc: "test",
            };
            r.findings
                .push(Finding::new(&C, "planted", Location::file("x")).severity(s));
        }
        r.finish();
        let bytes = serde_json::to_vec(&r).unwrap();
        let st = tunegate_sign::report::report_statement(file, &bytes).unwrap();
        self.write_statement(file, &st, key)
    }

    pub fn write_statement(&self, file: &str, st: &Statement, key: &PrivateKey) -> PathBuf {
        let b = tunegate_sign::sign::sign_statement(st, key).unwrap();
        let p = self.path(file);
        std::fs::write(&p, b.to_json()).unwrap();
        p
    }

    pub fn signature(&self, file: &str, model: &Path, key: &PrivateKey) -> PathBuf {
        let (b, _) = tunegate_sign::sign::sign_model(model, key, &WalkOptions::default()).unwrap();
        let p = self.path(file);
        std::fs::write(&p, b.to_json()).unwrap();
        p
    }

    /// SLSA provenance: outputs = files of `model`, inputs = dataset and base files.
    pub fn provenance(
        &self,
        file: &str,
        model: &Path,
        finished: &str,
        key: &PrivateKey,
    ) -> PathBuf {
        let subject: Vec<ResourceDescriptor> = Self::subjects(model)
            .into_iter()
            .map(|s| ResourceDescriptor::sha256(s.name, s.digest["sha256"].clone()))
            .collect();
        let mut deps =
            vec![json!({"name": "train.jsonl", "digest": {"sha256": sha(&self.dataset)}})];
        for s in Self::subjects(&self.base) {
            deps.push(json!({"name": s.name, "digest": {"sha256": s.digest["sha256"]}}));
        }
        let st = Statement::new(
            subject,
            "https://slsa.dev/provenance/v1",
            json!({"buildDefinition": {"buildType": "https://tunegate.dev/run/v1",
                    "externalParameters": {}, "resolvedDependencies": deps},
                   "runDetails": {"builder": {"id": "tunegate"},
                    "metadata": {"startedOn": finished, "finishedOn": finished}}}),
        );
        self.write_statement(file, &st, key)
    }

    /// Every piece of evidence production needs, all good.
    pub fn complete_chain(&self, finished: &str) -> Vec<PathBuf> {
        vec![
            self.report(
                "dataset.sig.json",
                "dataset",
                &self.dataset,
                None,
                &self.scanner,
            ),
            self.report("base.sig.json", "model", &self.base, None, &self.scanner),
            self.provenance("prov.sig.json", &self.model, finished, &self.ci),
            self.signature("model.sig", &self.model, &self.release),
            self.report("scan.sig.json", "model", &self.model, None, &self.scanner),
        ]
    }
}

pub fn admin() -> Actor {
    Actor {
        name: "root".into(),
        role: "admin".into(),
    }
}

pub fn trainer() -> Actor {
    Actor {
        name: "tina".into(),
        role: "trainer".into(),
    }
}

pub fn approver() -> Actor {
    Actor {
        name: "sam".into(),
        role: "security-approver".into(),
    }
}

/// A version record for `model` without a store (for pure evaluation tests).
pub fn version_of(model: &Path, registered_by: &str) -> Version {
    let (root, files) = tunegate_registry::registry::digest_path(model).unwrap();
    Version {
        model: "m".into(),
        version: 1,
        path: model.display().to_string(),
        root,
        files,
        inputs: vec![],
        stage: "none".into(),
        registered_by: registered_by.into(),
        registered_at: 0,
    }
}

pub fn evidence(paths: &[PathBuf], at: i64) -> Vec<Evidence> {
    paths
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let body = std::fs::read(p).unwrap();
            Evidence {
                id: i as i64 + 1,
                name: p.file_name().unwrap().to_string_lossy().into(),
                hint: None,
                sha256: hex::encode(Sha256::digest(&body)),
                body,
                attached_by: "tina".into(),
                attached_at: at,
            }
        })
        .collect()
}

pub fn approval() -> Vec<Approval> {
    vec![Approval {
        approver: "sam".into(),
        role: "security-approver".into(),
        at: 0,
    }]
}
