//! infra check over the fixtures: the threat model's pattern passes with nothing above info, and
//! each permissive variant (`fixtures/infra/variants/INNN-*`, written by make_variants.py) fails
//! with exactly its own id; generated sets pass.
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use tunegate_core::{Report, Severity, Verdict};
use tunegate_infra::generate::JobSpec;
use tunegate_infra::iam::JobPrefix;
use tunegate_infra::infra::{check, InfraOptions};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/infra")
}

fn opts() -> InfraOptions {
    InfraOptions {
        job_prefix: Some(JobPrefix::parse("ml-checkpoints/jobs/${job-id}/").unwrap()),
    }
}

fn run(dir: &Path) -> Report {
    check(&[dir.to_path_buf()], &opts(), Severity::Low).unwrap()
}

fn ids_above_info(r: &Report) -> BTreeSet<String> {
    r.findings
        .iter()
        .filter(|f| f.severity > Severity::Info)
        .map(|f| f.id.clone())
        .collect()
}

#[test]
fn pattern_passes_with_nothing_above_info() {
    let r = run(&fixtures().join("pattern"));
    assert_eq!(r.verdict, Verdict::Pass, "{:#?}", r.findings);
    assert!(ids_above_info(&r).is_empty());
    // Base models read-only outside the job prefix is reported, as info.
    assert!(r
        .findings
        .iter()
        .all(|f| f.id == "I015" && f.severity == Severity::Info));
    // Without a prefix the pattern still passes (nothing bucket-wide).
    let r = check(
        &[fixtures().join("pattern")],
        &InfraOptions::default(),
        Severity::Low,
    )
    .unwrap();
    assert!(r.findings.is_empty(), "{:#?}", r.findings);
}

#[test]
fn every_variant_fails_with_its_own_id() {
    let mut seen = BTreeSet::new();
    let mut dirs: Vec<_> = std::fs::read_dir(fixtures().join("variants"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    dirs.sort();
    for d in dirs {
        let name = d.file_name().unwrap().to_str().unwrap().to_string();
        let id = &name[..4];
        let r = run(&d);
        let got = ids_above_info(&r);
        if id == "I020" {
            assert!(got.is_empty(), "{name}: {got:?}");
            let f = r.findings.iter().find(|f| f.id == "I020").expect(&name);
            assert!(f.message.contains("CiliumNetworkPolicy"), "{}", f.message);
        } else {
            assert_eq!(got, BTreeSet::from([id.to_string()]), "{name}");
        }
        // Every finding carries file and line.
        for f in &r.findings {
            assert!(
                f.location.file.is_some() && f.location.line.is_some(),
                "{f:?}"
            );
        }
        seen.insert(id.to_string());
    }
    let all: BTreeSet<String> = (1..=20).map(|i| format!("I{i:03}")).collect();
    assert_eq!(seen, all, "a variant per infra check");
}

#[test]
fn findings_point_at_the_right_line_and_field() {
    let r = run(&fixtures().join("variants/I005-host-ipc"));
    let f = r.findings.iter().find(|f| f.id == "I005").unwrap();
    let text = std::fs::read_to_string(f.location.file.as_ref().unwrap()).unwrap();
    let line = text
        .lines()
        .nth(f.location.line.unwrap() as usize - 1)
        .unwrap();
    assert!(line.contains("hostIPC: true"), "{line}");
    assert_eq!(
        f.location.field.as_deref(),
        Some("spec.template.spec.hostIPC")
    );
    assert!(f.message.contains("/dev/shm"));
    let r = run(&fixtures().join("variants/I002-egress-open"));
    // 0.0.0.0/0 is open (high) and contains the metadata endpoint (medium).
    let sev: BTreeSet<_> = r
        .findings
        .iter()
        .filter(|f| f.id == "I002")
        .map(|f| f.severity)
        .collect();
    assert_eq!(sev, BTreeSet::from([Severity::Medium, Severity::High]));
}

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap();
}

#[test]
fn cross_object_reasoning() {
    let d = tempfile::tempdir().unwrap();
    // A PyTorchJob whose SA is bound (through a ClusterRoleBinding) to a ClusterRole that
    // can list secrets; a policy with egress: [] but no policyTypes isolates only ingress.
    write(
        d.path(),
        "job.yaml",
        r#"apiVersion: kubeflow.org/v1
kind: PyTorchJob
metadata: {name: ft, namespace: ml}
spec:
  runPolicy: {activeDeadlineSeconds: 10, backoffLimit: 0, ttlSecondsAfterFinished: 10}
  pytorchReplicaSpecs:
    Worker:
      template:
        metadata: {labels: {app: ft}}
        spec:
          serviceAccountName: ft
          containers:
            - name: w
              image: r/x@sha256:0000000000000000000000000000000000000000000000000000000000000000
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: ft, namespace: ml}
---
kind: ClusterRole
apiVersion: rbac.authorization.k8s.io/v1
metadata: {name: reader}
rules:
  - {apiGroups: [""], resources: [secrets], verbs: [list]}
---
kind: ClusterRoleBinding
apiVersion: rbac.authorization.k8s.io/v1
metadata: {name: reader}
subjects: [{kind: ServiceAccount, name: ft, namespace: ml}]
roleRef: {kind: ClusterRole, name: reader, apiGroup: rbac.authorization.k8s.io}
---
kind: NetworkPolicy
apiVersion: networking.k8s.io/v1
metadata: {name: np, namespace: ml}
spec:
  podSelector: {matchExpressions: [{key: app, operator: In, values: [ft]}]}
  egress: []
---
kind: NetworkPolicy
apiVersion: networking.k8s.io/v1
metadata: {name: other-ns, namespace: elsewhere}
spec:
  podSelector: {}
  policyTypes: [Egress]
"#,
    );
    let r = check(
        &[d.path().to_path_buf()],
        &InfraOptions::default(),
        Severity::High,
    )
    .unwrap();
    let by: Vec<(&str, Severity)> = r
        .findings
        .iter()
        .map(|f| (f.id.as_str(), f.severity))
        .collect();
    assert!(by.contains(&("I009", Severity::Critical)), "{by:?}");
    assert!(by.contains(&("I007", Severity::Medium)), "{by:?}"); // token auto-mounted
                                                                 // egress: [] without policyTypes means policyTypes [Ingress, Egress]: deny-all egress.
    assert!(!by.iter().any(|(id, _)| *id == "I001"), "{by:?}");
    let f = r.findings.iter().find(|f| f.id == "I009").unwrap();
    assert!(f.message.contains("ml/ft") && f.message.contains("PyTorchJob/ft"));
    assert_eq!(
        r.findings
            .iter()
            .find(|f| f.id == "I006")
            .unwrap()
            .location
            .field
            .as_deref(),
        Some("spec.pytorchReplicaSpecs.Worker.template.spec.containers[0].securityContext")
    );

    // Same pod, but the only policy lists Ingress: egress is open.
    let text = std::fs::read_to_string(d.path().join("job.yaml"))
        .unwrap()
        .replace("  egress: []\n", "  policyTypes: [Ingress]\n");
    write(d.path(), "job.yaml", &text);
    let r = check(
        &[d.path().to_path_buf()],
        &InfraOptions::default(),
        Severity::High,
    )
    .unwrap();
    assert!(r.findings.iter().any(|f| f.id == "I001"));
}

#[test]
fn role_annotation_without_policy_is_not_evaluated() {
    let d = tempfile::tempdir().unwrap();
    write(
        d.path(),
        "sa.yaml",
        "kind: ServiceAccount\napiVersion: v1\nmetadata:\n  name: s\n  namespace: n\n  annotations:\n    eks.amazonaws.com/role-arn: arn:aws:iam::1:role/missing\nautomountServiceAccountToken: false\n---\nkind: Pod\napiVersion: v1\nmetadata: {name: p, namespace: n}\nspec:\n  serviceAccountName: s\n  containers: []\n",
    );
    let r = check(
        &[d.path().to_path_buf()],
        &InfraOptions::default(),
        Severity::High,
    )
    .unwrap();
    let f = r.findings.iter().find(|f| f.id == "I020").expect("I020");
    assert!(f.message.contains("missing.json"), "{}", f.message);
    assert_eq!(f.location.line, Some(7));
}

#[test]
fn iam_grammar_and_boundaries() {
    let d = tempfile::tempdir().unwrap();
    write(
        d.path(),
        "p.json",
        r#"{"Version": "2012-10-17", "Statement": {"Effect": "Allow", "NotAction": "iam:*",
 "Resource": "arn:aws:s3:::ml-checkpoints/jobs/123*"}}"#,
    );
    write(
        d.path(),
        "q.json",
        r#"{"Statement": [{"Effect": "Allow", "Action": ["s3:ListBucket"], "Resource": "arn:aws:s3:::ml-checkpoints",
  "Condition": {"StringLike": {"s3:prefix": ["jobs/123/*"]}}},
 {"Effect": "Allow", "Action": "kms:Decrypt", "Resource": "*"},
 {"Effect": "Deny", "Action": "*", "Resource": "*"}]}"#,
    );
    // The `aws iam get-role-policy` shape is read too.
    write(
        d.path(),
        "r.json",
        r#"{"RoleName": "r", "PolicyName": "p", "PolicyDocument": {"Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::ml-checkpoints/jobs/1/*"}]}}"#,
    );
    let r = check(&[d.path().to_path_buf()], &opts(), Severity::High).unwrap();
    assert!(
        !r.findings
            .iter()
            .any(|f| f.location.file.as_deref().unwrap().ends_with("r.json")),
        "{:#?}",
        r.findings
    );
    write(
        d.path(),
        "r.json",
        r#"{"PolicyDocument": {"Statement": [{"Effect": "Allow", "Action": "s3:PutBucketAcl", "Resource": "arn:aws:s3:::ml-checkpoints"}]}}"#,
    );
    let r2 = check(&[d.path().to_path_buf()], &opts(), Severity::High).unwrap();
    assert!(r2
        .findings
        .iter()
        .any(|f| f.id == "I017" && f.location.file.as_deref().unwrap().ends_with("r.json")));
    std::fs::remove_file(d.path().join("r.json")).unwrap();
    let r = check(&[d.path().to_path_buf()], &opts(), Severity::High).unwrap();
    let got: BTreeSet<(String, Severity)> = r
        .findings
        .iter()
        .map(|f| (f.id.clone(), f.severity))
        .collect();
    let want: BTreeSet<(String, Severity)> = [
        ("I014", Severity::High),   // NotAction, Resource * on kms
        ("I015", Severity::Medium), // jobs/123* without '/'
        ("I016", Severity::Medium), // ListBucket limited by s3:prefix
        ("I017", Severity::High),   // kms:Decrypt on * without ViaService
    ]
    .into_iter()
    .map(|(a, b)| (a.to_string(), b))
    .collect();
    assert_eq!(got, want, "{:#?}", r.findings);
}

#[test]
fn ignore_annotation_lowers_to_info_with_reason() {
    let d = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(fixtures().join("variants/I013-image-tag/k8s/train-llama.yaml"))
        .unwrap()
        .replace(
            "kind: Job\nmetadata:\n  name: train-llama\n",
            "kind: Job\nmetadata:\n  name: train-llama\n  annotations:\n    tunegate.io/ignore: \"I013=internal mirror re-tags nightly; I005=\"\n",
        );
    assert!(text.contains("tunegate.io/ignore"));
    write(d.path(), "job.yaml", &text);
    let r = check(
        &[d.path().to_path_buf()],
        &InfraOptions::default(),
        Severity::Low,
    )
    .unwrap();
    let f = r.findings.iter().find(|f| f.id == "I013").unwrap();
    assert_eq!(f.severity, Severity::Info);
    assert!(f.message.contains("internal mirror re-tags nightly") && f.message.contains("was low"));
    assert_eq!(r.verdict, Verdict::Pass);
    // An annotation on another object does not reach this one.
    let text = text.replace(
        "kind: Role\nmetadata:\n",
        "kind: Role\nmetadata:\n  annotations:\n    tunegate.io/ignore: \"I004=x\"\n",
    );
    assert!(text.contains("I004=x"));
    let text = text.replace(
        "            allowPrivilegeEscalation: false\n",
        "            allowPrivilegeEscalation: false\n            privileged: true\n",
    );
    write(d.path(), "job.yaml", &text);
    let r = check(
        &[d.path().to_path_buf()],
        &InfraOptions::default(),
        Severity::Low,
    )
    .unwrap();
    assert_eq!(
        r.findings.iter().find(|f| f.id == "I004").unwrap().severity,
        Severity::Critical
    );
}

#[cfg(unix)]
#[test]
fn symlinks_are_reported_not_followed() {
    let d = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(
        fixtures().join("variants/I004-privileged/k8s/train-llama.yaml"),
        d.path().join("link.yaml"),
    )
    .unwrap();
    let r = check(&[d.path().to_path_buf()], &opts(), Severity::High).unwrap();
    assert_eq!(r.findings.len(), 1, "{:#?}", r.findings);
    assert_eq!(r.findings[0].id, "I020");
    assert!(r.findings[0]
        .location
        .file
        .as_ref()
        .unwrap()
        .ends_with("link.yaml"));
}

#[test]
fn bad_input_is_an_error_naming_the_file() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "bad.yaml", "kind: Pod\nspec: [\n");
    let e = check(&[d.path().to_path_buf()], &opts(), Severity::High)
        .unwrap_err()
        .to_string();
    assert!(e.contains("bad.yaml"), "{e}");
    let e = check(&[d.path().join("nope")], &opts(), Severity::High)
        .unwrap_err()
        .to_string();
    assert!(e.contains("nope"), "{e}");
}

#[test]
fn generated_sets_pass() {
    for (gpus, cidrs, role, base) in [
        (
            1,
            vec!["10.20.0.0/24".to_string()],
            Some("arn:aws:iam::123456789012:role/ft-7-ckpt"),
            Some("base-models/llama/"),
        ),
        (0, vec![], None, None),
    ] {
        let spec = JobSpec {
            job: "ft-7".into(),
            namespace: "ml-training".into(),
            image: format!("registry.example.com/t@sha256:{}", "ab".repeat(32)),
            bucket: "ml-checkpoints".into(),
            prefix: "jobs/{job}/".into(),
            gpus,
            storage_cidrs: cidrs,
            role_arn: role.map(String::from),
            base_models: base.map(String::from),
        };
        let d = tempfile::tempdir().unwrap();
        let files = spec.write(d.path()).unwrap();
        assert_eq!(files.len(), 2);
        let r = run(d.path());
        assert!(ids_above_info(&r).is_empty(), "{:#?}", r.findings);
        assert!(
            r.findings.iter().all(|f| f.id == "I015"),
            "{:#?}",
            r.findings
        );
    }
}

#[test]
fn generate_rejects_bad_parameters() {
    let ok = JobSpec {
        job: "ft".into(),
        namespace: "ml".into(),
        image: format!("r/t@sha256:{}", "0".repeat(64)),
        bucket: "bkt".into(),
        prefix: "jobs/{job}/".into(),
        gpus: 1,
        storage_cidrs: vec![],
        role_arn: None,
        base_models: None,
    };
    assert!(ok.validate().is_ok());
    for (bad, want) in [
        (
            JobSpec {
                image: "r/t:latest".into(),
                ..ok.clone()
            },
            "--image",
        ),
        (
            JobSpec {
                job: "Bad_Name".into(),
                ..ok.clone()
            },
            "--job",
        ),
        (
            JobSpec {
                storage_cidrs: vec!["0.0.0.0/0".into()],
                ..ok.clone()
            },
            "--storage-cidr",
        ),
        (
            JobSpec {
                prefix: "jobs/*".into(),
                ..ok.clone()
            },
            "--prefix",
        ),
    ] {
        let e = bad.validate().unwrap_err().to_string();
        assert!(e.contains(want), "{e}");
    }
}
