//! `tunegate infra check`: Kubernetes manifests and IAM policies as one object graph.
//!
//! Every pod template found (Pod, Job, CronJob, Deployment-likes, Kubeflow PyTorchJob/TFJob, Ray
//! RayJob/RayCluster) is treated as a training workload and checked on its own (I003–I007,
//! I012, I013, I019) and through the objects around it: its ServiceAccount and the bindings that
//! name it (I007–I011), the NetworkPolicies of its namespace that select it (I001, I002), and the
//! IAM policy its ServiceAccount's IRSA annotation points at (I014–I018, with every IAM policy in
//! the tree checked as well).
use crate::checks::*;
use crate::iam::{check_policy, JobPrefix};
use crate::yaml::{parse_str, Node};
use crate::{Error, Result};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use tunegate_core::{Finding, Location, Report, Severity, Subject};

/// Options of `infra check`.
#[derive(Debug, Clone, Default)]
pub struct InfraOptions {
    /// The job's checkpoint prefix (`bucket/jobs/${job-id}/`); without it only bucket-wide and
    /// boundary mistakes are found.
    pub job_prefix: Option<JobPrefix>,
}

/// Most files one run reads.
pub const MAX_FILES: usize = 10_000;

/// One parsed document and where it came from.
#[derive(Debug, Clone)]
pub struct Doc {
    /// The file as the user named it (joined with the walked path).
    pub file: String,
    /// The document.
    pub node: Node,
}

/// Lists YAML/JSON files under `paths` (files as given; folders walked, sorted). Symlinks inside
/// folders are not followed; they are returned in the second list so the report can say so.
pub fn collect_files(paths: &[PathBuf]) -> Result<(Vec<PathBuf>, Vec<PathBuf>)> {
    let mut out = Vec::new();
    let mut links = Vec::new();
    for p in paths {
        let meta = std::fs::metadata(p).map_err(|e| Error::io(p, e))?;
        if meta.is_dir() {
            walk(p, &mut out, &mut links)?;
        } else {
            out.push(p.clone());
        }
    }
    if out.len() > MAX_FILES {
        return Err(Error::Usage(format!(
            "{} files to read, over the limit of {MAX_FILES}",
            out.len()
        )));
    }
    Ok((out, links))
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>, links: &mut Vec<PathBuf>) -> Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .collect::<std::io::Result<Vec<_>>>()
        .map_err(|e| Error::io(dir, e))?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let p = e.path();
        let ft = e.file_type().map_err(|err| Error::io(&p, err))?;
        if ft.is_symlink() {
            links.push(p);
        } else if ft.is_dir() {
            walk(&p, out, links)?;
        } else if ft.is_file()
            && matches!(
                p.extension().and_then(|x| x.to_str()),
                Some("yaml" | "yml" | "json")
            )
        {
            out.push(p);
        }
        if out.len() > MAX_FILES {
            return Ok(());
        }
    }
    Ok(())
}

fn kind(n: &Node) -> &str {
    n.get("kind").and_then(Node::as_str).unwrap_or("")
}
fn name(n: &Node) -> &str {
    n.path("metadata.name").and_then(Node::as_str).unwrap_or("")
}
fn namespace(n: &Node) -> &str {
    n.path("metadata.namespace")
        .and_then(Node::as_str)
        .unwrap_or("default")
}

/// A pod template found in a workload.
struct Pod<'a> {
    file: &'a str,
    /// `Job/train`.
    owner: String,
    namespace: String,
    labels: BTreeMap<String, String>,
    spec: &'a Node,
    /// JSON-pointer-ish path to `spec` (`spec.template.spec`).
    field: String,
}

fn labels_of(meta: Option<&Node>) -> BTreeMap<String, String> {
    meta.and_then(|m| m.get("labels"))
        .map(|l| {
            l.map()
                .iter()
                .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

fn pods_of<'a>(d: &'a Doc, out: &mut Vec<Pod<'a>>) -> bool {
    let n = &d.node;
    let k = kind(n);
    let owner = format!("{k}/{}", name(n));
    let ns = namespace(n).to_string();
    let mut push = |tmpl: Option<&'a Node>, field: String, _pod: bool| {
        let Some(t) = tmpl else { return };
        let (spec, meta, field) = (t.get("spec"), t.get("metadata"), format!("{field}spec"));
        if let Some(spec) = spec {
            out.push(Pod {
                file: &d.file,
                owner: owner.clone(),
                namespace: ns.clone(),
                labels: labels_of(meta),
                spec,
                field,
            });
        }
    };
    match k {
        "Pod" => push(Some(n), String::new(), true),
        "Job"
        | "Deployment"
        | "StatefulSet"
        | "DaemonSet"
        | "ReplicaSet"
        | "ReplicationController" => push(n.path("spec.template"), "spec.template.".into(), true),
        "CronJob" => push(
            n.path("spec.jobTemplate.spec.template"),
            "spec.jobTemplate.spec.template.".into(),
            true,
        ),
        "PyTorchJob" | "TFJob" | "MPIJob" | "XGBoostJob" | "PaddleJob" => {
            let key = match k {
                "PyTorchJob" => "pytorchReplicaSpecs",
                "TFJob" => "tfReplicaSpecs",
                "MPIJob" => "mpiReplicaSpecs",
                "XGBoostJob" => "xgbReplicaSpecs",
                _ => "paddleReplicaSpecs",
            };
            for (role, spec) in n.path(&format!("spec.{key}")).map(Node::map).unwrap_or(&[]) {
                push(
                    spec.get("template"),
                    format!("spec.{key}.{role}.template."),
                    true,
                );
            }
        }
        "RayJob" | "RayCluster" | "RayService" => {
            let base = match k {
                "RayJob" => "spec.rayClusterSpec",
                "RayService" => "spec.rayClusterConfig",
                _ => "spec",
            };
            push(
                n.path(&format!("{base}.headGroupSpec.template")),
                format!("{base}.headGroupSpec.template."),
                true,
            );
            for (i, w) in n
                .path(&format!("{base}.workerGroupSpecs"))
                .map(Node::seq)
                .unwrap_or(&[])
                .iter()
                .enumerate()
            {
                push(
                    w.get("template"),
                    format!("{base}.workerGroupSpecs[{i}].template."),
                    true,
                );
            }
            if k == "RayJob" {
                push(
                    n.path("spec.submitterPodTemplate"),
                    "spec.submitterPodTemplate.".into(),
                    true,
                );
            }
        }
        _ => return false,
    }
    true
}

const KNOWN_KINDS: &[&str] = &[
    "ServiceAccount",
    "Role",
    "ClusterRole",
    "RoleBinding",
    "ClusterRoleBinding",
    "NetworkPolicy",
    "Namespace",
    "ConfigMap",
    "Secret",
    "Service",
    "PersistentVolumeClaim",
    "PodDisruptionBudget",
    "ResourceQuota",
    "LimitRange",
    "PriorityClass",
];

/// Loads every document of every file (multi-document YAML; `List` items flattened).
pub fn load(paths: &[PathBuf]) -> Result<Vec<Doc>> {
    Ok(load_all(paths)?.0)
}

/// Documents, one subject (sha256 of the bytes parsed) per file, and symlinks not followed.
fn load_all(paths: &[PathBuf]) -> Result<(Vec<Doc>, Vec<Subject>, Vec<PathBuf>)> {
    let (files, links) = collect_files(paths)?;
    let mut docs = Vec::new();
    let mut subjects = Vec::new();
    for f in files {
        let text = crate::error::read_text(&f)?;
        let file = f.display().to_string();
        subjects.push(Subject::sha256(
            file.clone(),
            tunegate_core::digest::sha256_hex(text.as_bytes()),
        ));
        for node in parse_str(&f, &text)? {
            if kind(&node).ends_with("List") {
                for item in node.get("items").map(Node::seq).unwrap_or(&[]) {
                    docs.push(Doc {
                        file: file.clone(),
                        node: item.clone(),
                    });
                }
            } else {
                docs.push(Doc {
                    file: file.clone(),
                    node,
                });
            }
        }
    }
    Ok((docs, subjects, links))
}

fn loc(file: &str, line: u64, field: impl Into<String>) -> Location {
    let mut l = Location::file(file).field(field);
    l.line = Some(line);
    l
}

fn selector_matches(sel: Option<&Node>, labels: &BTreeMap<String, String>) -> bool {
    let Some(sel) = sel else { return true };
    for (k, v) in sel.get("matchLabels").map(Node::map).unwrap_or(&[]) {
        if labels.get(k).map(String::as_str) != v.as_str() {
            return false;
        }
    }
    for e in sel.get("matchExpressions").map(Node::seq).unwrap_or(&[]) {
        let key = e.get("key").and_then(Node::as_str).unwrap_or("");
        let vals: Vec<&str> = e.get("values").map(Node::str_list).unwrap_or_default();
        let have = labels.get(key);
        let ok = match e.get("operator").and_then(Node::as_str).unwrap_or("") {
            "In" => have.is_some_and(|h| vals.contains(&h.as_str())),
            "NotIn" => have.is_none_or(|h| !vals.contains(&h.as_str())),
            "Exists" => have.is_some(),
            "DoesNotExist" => have.is_none(),
            _ => false,
        };
        if !ok {
            return false;
        }
    }
    true
}

fn is_empty_selector(n: Option<&Node>) -> bool {
    n.is_some_and(|s| {
        s.is_null()
            || (s.get("matchLabels").is_none_or(|m| m.map().is_empty())
                && s.get("matchExpressions").is_none_or(|m| m.seq().is_empty()))
    })
}

fn parse_v4(s: &str) -> Option<u32> {
    let mut v = 0u32;
    let mut parts = 0;
    for p in s.split('.') {
        v = (v << 8) | p.parse::<u8>().ok()? as u32;
        parts += 1;
    }
    (parts == 4).then_some(v)
}

fn cidr_contains(cidr: &str, ip: u32) -> bool {
    let Some((a, n)) = cidr.split_once('/') else {
        return parse_v4(cidr) == Some(ip);
    };
    let (Some(a), Ok(n)) = (parse_v4(a), n.parse::<u32>()) else {
        return false;
    };
    if n > 32 {
        return false;
    }
    let mask = if n == 0 { 0 } else { u32::MAX << (32 - n) };
    a & mask == ip & mask
}

const IMDS: u32 = (169 << 24) | (254 << 16) | (169 << 8) | 254;

fn ports_only_dns(rule: &Node) -> bool {
    let ports = rule.get("ports").map(Node::seq).unwrap_or(&[]);
    !ports.is_empty()
        && ports.iter().all(|p| {
            p.get("port")
                .and_then(|x| x.as_str())
                .is_some_and(|x| x == "53" || x == "dns" || x == "dns-tcp")
        })
}

fn policy_types(np: &Node) -> Vec<String> {
    match np.path("spec.policyTypes") {
        Some(t) => t.str_list().into_iter().map(String::from).collect(),
        None => {
            let mut v = vec!["Ingress".to_string()];
            if np.path("spec.egress").is_some() {
                v.push("Egress".into());
            }
            v
        }
    }
}

struct Graph<'a> {
    docs: &'a [Doc],
}

impl<'a> Graph<'a> {
    fn of_kind(&self, k: &'a str) -> impl Iterator<Item = &'a Doc> + 'a {
        self.docs.iter().filter(move |d| kind(&d.node) == k)
    }
    fn service_account(&self, ns: &str, n: &str) -> Option<&'a Doc> {
        self.of_kind("ServiceAccount")
            .find(|d| namespace(&d.node) == ns && name(&d.node) == n)
    }
    fn role(&self, role_kind: &str, ns: &str, n: &str) -> Option<&'a Doc> {
        self.of_kind(if role_kind == "ClusterRole" {
            "ClusterRole"
        } else {
            "Role"
        })
        .find(|d| name(&d.node) == n && (role_kind == "ClusterRole" || namespace(&d.node) == ns))
    }
}

fn binds_sa(binding: &Node, ns: &str, sa: &str) -> bool {
    let bns = namespace(binding);
    binding
        .get("subjects")
        .map(Node::seq)
        .unwrap_or(&[])
        .iter()
        .any(|s| {
            let sk = s.get("kind").and_then(Node::as_str).unwrap_or("");
            let sn = s.get("name").and_then(Node::as_str).unwrap_or("");
            match sk {
                "ServiceAccount" => {
                    sn == sa && s.get("namespace").and_then(Node::as_str).unwrap_or(bns) == ns
                }
                "Group" => {
                    sn == "system:serviceaccounts"
                        || sn == "system:authenticated"
                        || sn == format!("system:serviceaccounts:{ns}")
                }
                "User" => sn == format!("system:serviceaccount:{ns}:{sa}"),
                _ => false,
            }
        })
}

const SECRET_ENV_NAMES: &[&str] = &[
    "HF_TOKEN",
    "HUGGING_FACE_HUB_TOKEN",
    "HUGGINGFACE_TOKEN",
    "HUGGINGFACEHUB_API_TOKEN",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_ACCESS_KEY_ID",
    "AWS_SESSION_TOKEN",
    "WANDB_API_KEY",
    "OPENAI_API_KEY",
    "ANTHROPIC_API_KEY",
    "GITHUB_TOKEN",
    "GOOGLE_APPLICATION_CREDENTIALS_JSON",
    "AZURE_CLIENT_SECRET",
];

fn secretish_name(n: &str) -> bool {
    let u = n.to_ascii_uppercase();
    SECRET_ENV_NAMES.contains(&u.as_str())
        || [
            "_TOKEN",
            "_SECRET",
            "_PASSWORD",
            "_API_KEY",
            "_SECRET_KEY",
            "_ACCESS_KEY",
        ]
        .iter()
        .any(|s| u.ends_with(s))
}

/// Recognises token shapes in a value: Hugging Face (`hf_`), AWS access keys (`AKIA`/`ASIA`),
/// GitHub (`ghp_`, `github_pat_`), OpenAI/Anthropic (`sk-`), Slack (`xox`).
pub fn secretish_value(v: &str) -> Option<&'static str> {
    let alnum = |s: &str, min: usize| {
        s.len() >= min
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    };
    if let Some(r) = v.strip_prefix("hf_") {
        if alnum(r, 30) {
            return Some("Hugging Face token");
        }
    }
    if (v.starts_with("AKIA") || v.starts_with("ASIA"))
        && v.len() == 20
        && v.bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
    {
        return Some("AWS access key id");
    }
    for (p, what) in [
        ("ghp_", "GitHub token"),
        ("github_pat_", "GitHub token"),
        ("sk-", "API secret key"),
        ("xoxb-", "Slack token"),
    ] {
        if let Some(r) = v.strip_prefix(p) {
            if alnum(r, 20) {
                return Some(what);
            }
        }
    }
    None
}

const DANGEROUS_CAPS: &[&str] = &[
    "ALL",
    "SYS_ADMIN",
    "NET_ADMIN",
    "SYS_PTRACE",
    "SYS_MODULE",
    "NET_RAW",
    "DAC_READ_SEARCH",
    "SYS_RAWIO",
    "BPF",
    "PERFMON",
];

fn is_pinned(image: &str) -> bool {
    image.split_once("@sha256:").is_some_and(|(_, h)| {
        h.len() == 64
            && h.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    })
}

/// Runs every I001–I020 check over the loaded documents.
pub fn check_docs(docs: &[Doc], opts: &InfraOptions) -> Vec<Finding> {
    let g = Graph { docs };
    let mut out = Vec::new();
    let mut pods = Vec::new();
    let mut iam_docs = Vec::new();
    for d in docs {
        let n = &d.node;
        if n.get("Statement").is_some() {
            iam_docs.push((d.file.as_str(), n));
            continue;
        }
        // `aws iam get-role-policy` / CloudFormation shape: the document under PolicyDocument.
        if let Some(pd) = n
            .get("PolicyDocument")
            .filter(|p| p.get("Statement").is_some())
        {
            iam_docs.push((d.file.as_str(), pd));
            continue;
        }
        let k = kind(n);
        if pods_of(d, &mut pods) || KNOWN_KINDS.contains(&k) {
            continue;
        }
        let msg = if k.is_empty() {
            "document is neither a Kubernetes object nor an IAM policy: not evaluated".to_string()
        } else if k.contains("NetworkPolicy")
            || n.get("apiVersion")
                .and_then(Node::as_str)
                .is_some_and(|a| a.contains("cilium") || a.contains("calico"))
        {
            format!("{k} '{}' is a CNI-specific policy: its egress rules are not evaluated (core NetworkPolicy only)", name(n))
        } else {
            format!("kind {k} ('{}') is not evaluated by this gate", name(n))
        };
        out.push(Finding::new(
            &NOT_EVALUATED,
            msg,
            loc(&d.file, n.line, "kind"),
        ));
    }
    for p in &pods {
        pod_checks(&g, p, &mut out);
    }
    rbac_checks(&g, &pods, &mut out);
    for (file, node) in &iam_docs {
        out.extend(check_policy(file, node, opts.job_prefix.as_ref()));
    }
    // Dedupe (several pods of one workload share objects).
    let mut seen = BTreeSet::new();
    out.retain(|f| {
        seen.insert((
            f.id.clone(),
            f.location.file.clone(),
            f.location.line,
            f.location.field.clone(),
            f.message.clone(),
        ))
    });
    apply_suppressions(docs, &mut out);
    out
}

/// The annotation that accepts a finding on one object: `tunegate.io/ignore: "I013=reason"`
/// (several entries separated by `,` or `;`).
pub const IGNORE_ANNOTATION: &str = "tunegate.io/ignore";

/// Lowers findings an object's [`IGNORE_ANNOTATION`] accepts to info, keeping them in the report
/// with the reason (never dropped silently). A finding belongs to the object whose document
/// spans its line in the same file. An entry without a reason is not honoured.
fn apply_suppressions(docs: &[Doc], out: &mut [Finding]) {
    for (i, d) in docs.iter().enumerate() {
        let Some(a) = d
            .node
            .path("metadata.annotations")
            .and_then(|a| a.get(IGNORE_ANNOTATION))
            .and_then(Node::as_str)
        else {
            continue;
        };
        let start = d.node.line;
        let end = docs[i + 1..]
            .iter()
            .find(|n| n.file == d.file && n.node.line > start)
            .map_or(u64::MAX, |n| n.node.line);
        for entry in a.split([',', ';']) {
            let Some((id, reason)) = entry.split_once('=') else {
                continue;
            };
            let (id, reason) = (id.trim(), reason.trim());
            if reason.is_empty() {
                continue;
            }
            for f in out.iter_mut() {
                let line = f.location.line.unwrap_or(0);
                if f.id == id
                    && f.location.file.as_deref() == Some(d.file.as_str())
                    && (start..end).contains(&line)
                    && f.severity > Severity::Info
                {
                    f.message = format!(
                        "{} [accepted by {IGNORE_ANNOTATION}: {reason}; was {}]",
                        f.message, f.severity
                    );
                    f.severity = Severity::Info;
                }
            }
        }
    }
}

fn pod_checks(g: &Graph, p: &Pod, out: &mut Vec<Finding>) {
    let s = p.spec;
    let f = |suffix: &str| format!("{}.{suffix}", p.field);
    let who = &p.owner;
    // I005 host namespaces.
    for key in ["hostNetwork", "hostPID", "hostIPC"] {
        if let Some(n) = s.get(key).filter(|n| n.as_bool() == Some(true)) {
            let advice = match key {
                "hostIPC" => " (for PyTorch/NCCL shared memory mount an emptyDir with medium: Memory at /dev/shm)",
                "hostNetwork" => " (NCCL over RDMA needs the device plugin's resource, not the host's network namespace; it also bypasses NetworkPolicy)",
                _ => "",
            };
            out.push(Finding::new(
                &HOST_NAMESPACES,
                format!("{who} sets {key}: true{advice}"),
                loc(p.file, n.line, f(key)),
            ));
        }
    }
    // I003 hostPath.
    for (i, v) in s
        .get("volumes")
        .map(Node::seq)
        .unwrap_or(&[])
        .iter()
        .enumerate()
    {
        if let Some(hp) = v.get("hostPath") {
            let path = hp.get("path").and_then(Node::as_str).unwrap_or("");
            let (sev, msg) = match path.trim_end_matches('/') {
                "/var/run/docker.sock" | "/run/docker.sock" | "/run/containerd/containerd.sock" => (Severity::Critical, format!("{who} mounts the container runtime socket {path}: root on the node")),
                "" => (Severity::High, format!("{who} mounts the node's root filesystem /")),
                "/proc" | "/sys" => (Severity::High, format!("{who} mounts the node's {path}")),
                "/dev/shm" => (Severity::High, format!("{who} mounts the node's /dev/shm: use an emptyDir with medium: Memory for PyTorch shared memory")),
                _ => (Severity::High, format!("{who} mounts hostPath {path}: the job reads or writes the node's filesystem")),
            };
            out.push(
                Finding::new(
                    &HOST_PATH,
                    msg,
                    loc(p.file, hp.line, f(&format!("volumes[{i}].hostPath"))),
                )
                .severity(sev),
            );
        }
    }
    // Containers.
    let pod_sc = s.get("securityContext");
    for group in ["initContainers", "containers", "ephemeralContainers"] {
        for (i, c) in s
            .get(group)
            .map(Node::seq)
            .unwrap_or(&[])
            .iter()
            .enumerate()
        {
            let cname = c.get("name").and_then(Node::as_str).unwrap_or("?");
            let cf = |k: &str| f(&format!("{group}[{i}].{k}"));
            let sc = c.get("securityContext");
            let scv = |k: &str| sc.and_then(|s| s.get(k));
            if let Some(n) = scv("privileged").filter(|n| n.as_bool() == Some(true)) {
                out.push(Finding::new(&PRIVILEGED, format!("{who} container '{cname}' is privileged (GPUs need the device plugin resource nvidia.com/gpu, not privileged)"), loc(p.file, n.line, cf("securityContext.privileged"))));
            }
            let ape = scv("allowPrivilegeEscalation");
            if ape.and_then(Node::as_bool) != Some(false) {
                out.push(Finding::new(&PRIVILEGED, format!("{who} container '{cname}' does not set allowPrivilegeEscalation: false"), loc(p.file, ape.or(sc).map_or(c.line, |n| n.line), cf("securityContext.allowPrivilegeEscalation"))).severity(Severity::High));
            }
            let mut missing = Vec::new();
            let drops: Vec<String> = scv("capabilities")
                .and_then(|c| c.get("drop"))
                .map(|d| {
                    d.str_list()
                        .iter()
                        .map(|s| s.to_ascii_uppercase())
                        .collect()
                })
                .unwrap_or_default();
            if !drops.iter().any(|d| d == "ALL") {
                missing.push("capabilities.drop [ALL]".to_string());
            }
            for a in scv("capabilities")
                .and_then(|c| c.get("add"))
                .map(Node::str_list)
                .unwrap_or_default()
            {
                let u = a.to_ascii_uppercase();
                let u = u.trim_start_matches("CAP_");
                if DANGEROUS_CAPS.contains(&u) {
                    missing.push(format!("no added capability {a}"));
                }
            }
            let seccomp = |n: Option<&Node>| {
                n.and_then(|s| s.path("seccompProfile.type"))
                    .and_then(Node::as_str)
                    .map(String::from)
            };
            match seccomp(sc).or_else(|| seccomp(pod_sc)).as_deref() {
                Some("RuntimeDefault" | "Localhost") => {}
                _ => missing.push("seccompProfile RuntimeDefault".into()),
            }
            let get = |k: &str| scv(k).or_else(|| pod_sc.and_then(|s| s.get(k)));
            let non_root = get("runAsNonRoot").and_then(Node::as_bool) == Some(true)
                && get("runAsUser").and_then(Node::as_i64) != Some(0);
            let uid_ok = get("runAsUser")
                .and_then(Node::as_i64)
                .is_some_and(|u| u > 0);
            if !(non_root || uid_ok) {
                missing.push("runAsNonRoot: true (or a non-zero runAsUser)".into());
            }
            if scv("readOnlyRootFilesystem").and_then(Node::as_bool) != Some(true) {
                missing.push("readOnlyRootFilesystem: true".into());
            }
            if !missing.is_empty() {
                out.push(
                    Finding::new(
                        &CONTAINER_HARDENING,
                        format!("{who} container '{cname}' lacks: {}", missing.join(", ")),
                        loc(p.file, sc.map_or(c.line, |n| n.line), cf("securityContext")),
                    )
                    .evidence(serde_json::json!({"missing": missing})),
                );
            }
            // I012 env secrets.
            for (j, e) in c
                .get("env")
                .map(Node::seq)
                .unwrap_or(&[])
                .iter()
                .enumerate()
            {
                let ename = e.get("name").and_then(Node::as_str).unwrap_or("");
                let Some(vn) = e.get("value") else { continue };
                let Some(v) = vn.as_str().filter(|v| !v.is_empty()) else {
                    continue;
                };
                let shape = secretish_value(v);
                if secretish_name(ename) || shape.is_some() {
                    let what = shape
                        .map(|s| format!(" (looks like a {s})"))
                        .unwrap_or_default();
                    out.push(Finding::new(&ENV_SECRET, format!("{who} container '{cname}' has secret material in env {ename}{what}: use valueFrom.secretKeyRef or workload identity"), loc(p.file, vn.line, cf(&format!("env[{j}].value")))));
                }
            }
            // I013 image pin.
            if let Some(img) = c.get("image") {
                let s = img.as_str().unwrap_or("");
                if !is_pinned(s) {
                    out.push(Finding::new(&IMAGE_NOT_PINNED, format!("{who} container '{cname}' image '{s}' is not pinned by digest (@sha256:...)"), loc(p.file, img.line, cf("image"))));
                }
            }
        }
    }
    // I007 service account.
    let sa_node = s
        .get("serviceAccountName")
        .or_else(|| s.get("serviceAccount"));
    let sa = sa_node.and_then(Node::as_str).unwrap_or("default");
    let sa_doc = g.service_account(&p.namespace, sa);
    if sa == "default" {
        out.push(Finding::new(&SERVICE_ACCOUNT, format!("{who} runs as the namespace's default ServiceAccount: give the job a dedicated one"), loc(p.file, sa_node.map_or(p.spec.line, |n| n.line), f("serviceAccountName"))));
    } else if sa_doc.is_none() {
        out.push(Finding::new(&NOT_EVALUATED, format!("{who} uses ServiceAccount '{sa}' in namespace '{}', which is not defined in the checked files: its bindings and role annotation are not evaluated", p.namespace), loc(p.file, sa_node.map_or(p.spec.line, |n| n.line), f("serviceAccountName"))));
    }
    let pod_am = s.get("automountServiceAccountToken");
    let sa_am = sa_doc.and_then(|d| d.node.get("automountServiceAccountToken"));
    let automount = pod_am
        .and_then(Node::as_bool)
        .or_else(|| sa_am.and_then(Node::as_bool));
    if automount != Some(false) {
        out.push(Finding::new(&SERVICE_ACCOUNT, format!("{who} auto-mounts the service-account token (set automountServiceAccountToken: false on the pod or its ServiceAccount unless the job calls the Kubernetes API)"), loc(p.file, pod_am.map_or(p.spec.line, |n| n.line), f("automountServiceAccountToken"))));
    }
    // IRSA / workload identity.
    if let Some(sad) = sa_doc {
        if let Some(arn) = sad
            .node
            .path("metadata.annotations")
            .and_then(|a| a.get("eks.amazonaws.com/role-arn"))
        {
            let arn_s = arn.as_str().unwrap_or("");
            let role = arn_s.rsplit('/').next().unwrap_or("");
            let found = g.docs.iter().any(|d| {
                d.node.get("Statement").is_some()
                    && Path::new(&d.file)
                        .file_stem()
                        .and_then(|x| x.to_str())
                        .is_some_and(|stem| {
                            !role.is_empty()
                                && (stem == role
                                    || stem.starts_with(&format!("{role}-"))
                                    || stem.starts_with(&format!("{role}.")))
                        })
            });
            if !found {
                out.push(Finding::new(&NOT_EVALUATED, format!("ServiceAccount '{sa}' assumes IAM role '{arn_s}' but no policy file named '{role}.json' is in the checked tree: its permissions are not evaluated"), loc(&sad.file, arn.line, "metadata.annotations.eks.amazonaws.com/role-arn")));
            }
        }
        if let Some(gsa) = sad
            .node
            .path("metadata.annotations")
            .and_then(|a| a.get("iam.gke.io/gcp-service-account"))
        {
            out.push(Finding::new(&NOT_EVALUATED, format!("ServiceAccount '{sa}' uses GCP workload identity ({}): GCP IAM is not evaluated", gsa.as_str().unwrap_or("")), loc(&sad.file, gsa.line, "metadata.annotations.iam.gke.io/gcp-service-account")));
        }
    }
    // I001/I002 egress.
    let selecting: Vec<&Doc> = g
        .of_kind("NetworkPolicy")
        .filter(|np| {
            namespace(&np.node) == p.namespace
                && selector_matches(np.node.path("spec.podSelector"), &p.labels)
        })
        .collect();
    let egress: Vec<&&Doc> = selecting
        .iter()
        .filter(|np| policy_types(&np.node).iter().any(|t| t == "Egress"))
        .collect();
    if egress.is_empty() {
        let why = if selecting.is_empty() {
            "no NetworkPolicy in namespace '{ns}' selects it".replace("{ns}", &p.namespace)
        } else {
            "the NetworkPolicies that select it do not list Egress in policyTypes".to_string()
        };
        out.push(
            Finding::new(
                &EGRESS_NOT_ISOLATED,
                format!("{who}'s pods have open egress: {why}; add a default-deny egress policy"),
                loc(p.file, p.spec.line, p.field.clone()),
            )
            .evidence(serde_json::json!({"labels": p.labels})),
        );
    }
    for np in egress {
        let npn = name(&np.node);
        for (i, rule) in np
            .node
            .path("spec.egress")
            .map(Node::seq)
            .unwrap_or(&[])
            .iter()
            .enumerate()
        {
            let field = format!("spec.egress[{i}]");
            let dns = ports_only_dns(rule);
            let to = rule.get("to").map(Node::seq).unwrap_or(&[]);
            if to.is_empty() {
                if !dns {
                    out.push(Finding::new(&EGRESS_OPEN, format!("NetworkPolicy '{npn}' egress rule {i} has no `to`: {who} may reach any destination{}", if rule.get("ports").is_some() { " on the listed ports" } else { "" }), loc(&np.file, rule.line, field.clone())));
                }
                continue;
            }
            for (j, peer) in to.iter().enumerate() {
                let pf = format!("{field}.to[{j}]");
                if let Some(ib) = peer.get("ipBlock") {
                    let cidr = ib.get("cidr").and_then(Node::as_str).unwrap_or("");
                    let except: Vec<&str> =
                        ib.get("except").map(Node::str_list).unwrap_or_default();
                    let prefix_len: u32 = cidr
                        .split_once('/')
                        .and_then(|(_, n)| n.parse().ok())
                        .unwrap_or(32);
                    if (cidr == "0.0.0.0/0"
                        || cidr == "::/0"
                        || (prefix_len <= 8 && cidr.contains('.')))
                        && !dns
                    {
                        out.push(Finding::new(&EGRESS_OPEN, format!("NetworkPolicy '{npn}' allows egress to {cidr}{}: effectively any destination for {who}", if except.is_empty() { String::new() } else { format!(" (except {})", except.join(", ")) }), loc(&np.file, ib.line, format!("{pf}.ipBlock"))));
                    }
                    if cidr_contains(cidr, IMDS) && !except.iter().any(|e| cidr_contains(e, IMDS)) {
                        out.push(Finding::new(&EGRESS_OPEN, format!("NetworkPolicy '{npn}' allows egress to the cloud metadata endpoint 169.254.169.254 (through {cidr}): credential theft via IMDS; add it to `except`"), loc(&np.file, ib.line, format!("{pf}.ipBlock"))).severity(Severity::Medium));
                    }
                }
                let ns_sel = peer.get("namespaceSelector");
                if is_empty_selector(ns_sel)
                    && (peer.get("podSelector").is_none()
                        || is_empty_selector(peer.get("podSelector")))
                    && !dns
                {
                    out.push(Finding::new(&EGRESS_OPEN, format!("NetworkPolicy '{npn}' allows egress to every pod in every namespace (empty namespaceSelector)"), loc(&np.file, peer.line, format!("{pf}.namespaceSelector"))));
                }
            }
        }
    }
}

/// I019 for Jobs, CronJobs and Kubeflow jobs.
fn hygiene(docs: &[Doc], out: &mut Vec<Finding>) {
    for d in docs {
        let n = &d.node;
        let (spec, field) = match kind(n) {
            "Job" => (n.get("spec"), "spec"),
            "CronJob" => (n.path("spec.jobTemplate.spec"), "spec.jobTemplate.spec"),
            "PyTorchJob" | "TFJob" | "MPIJob" | "XGBoostJob" | "PaddleJob" => {
                (n.path("spec.runPolicy"), "spec.runPolicy")
            }
            _ => continue,
        };
        let missing: Vec<&str> = [
            "activeDeadlineSeconds",
            "backoffLimit",
            "ttlSecondsAfterFinished",
        ]
        .into_iter()
        .filter(|k| spec.and_then(|s| s.get(k)).is_none())
        .collect();
        if !missing.is_empty() {
            out.push(Finding::new(&JOB_HYGIENE, format!("{} '{}' sets no {} (a stuck or compromised job keeps running, retries default to 6, finished pods linger)", kind(n), name(n), missing.join(", ")), loc(&d.file, spec.map_or(n.line, |s| s.line), field)).evidence(serde_json::json!({"missing": missing})));
        }
    }
}

fn rbac_checks(g: &Graph, pods: &[Pod], out: &mut Vec<Finding>) {
    hygiene(g.docs, out);
    let mut sas: BTreeMap<(String, String), String> = BTreeMap::new();
    for p in pods {
        let sa = p
            .spec
            .get("serviceAccountName")
            .or_else(|| p.spec.get("serviceAccount"))
            .and_then(Node::as_str)
            .unwrap_or("default");
        sas.entry((p.namespace.clone(), sa.to_string()))
            .or_insert_with(|| p.owner.clone());
    }
    for ((ns, sa), owner) in &sas {
        let who = format!("ServiceAccount {ns}/{sa} (used by {owner})");
        for b in g
            .of_kind("RoleBinding")
            .chain(g.of_kind("ClusterRoleBinding"))
        {
            if !binds_sa(&b.node, ns, sa) {
                continue;
            }
            let bns = namespace(&b.node);
            let rk = b
                .node
                .path("roleRef.kind")
                .and_then(Node::as_str)
                .unwrap_or("");
            let rn = b
                .node
                .path("roleRef.name")
                .and_then(Node::as_str)
                .unwrap_or("");
            let rline = b.node.get("roleRef").map_or(b.node.line, |n| n.line);
            if matches!(rn, "cluster-admin" | "admin" | "edit") && rk == "ClusterRole" {
                out.push(Finding::new(
                    &RBAC_ESCALATION,
                    format!(
                        "{who} is bound to the built-in ClusterRole '{rn}' by {} '{}'",
                        kind(&b.node),
                        name(&b.node)
                    ),
                    loc(&b.file, rline, "roleRef"),
                ));
                continue;
            }
            let Some(role) = g.role(rk, bns, rn) else {
                out.push(Finding::new(&NOT_EVALUATED, format!("{} '{}' binds {who} to {rk} '{rn}', which is not in the checked files: its rules are not evaluated", kind(&b.node), name(&b.node)), loc(&b.file, rline, "roleRef")));
                continue;
            };
            for (i, rule) in role
                .node
                .get("rules")
                .map(Node::seq)
                .unwrap_or(&[])
                .iter()
                .enumerate()
            {
                rule_checks(&who, role, i, rule, out);
            }
        }
    }
}

fn rule_checks(who: &str, role: &Doc, i: usize, rule: &Node, out: &mut Vec<Finding>) {
    let lower = |k: &str| -> Vec<String> {
        rule.get(k)
            .map(|n| {
                n.str_list()
                    .iter()
                    .map(|s| s.to_ascii_lowercase())
                    .collect()
            })
            .unwrap_or_default()
    };
    let verbs = lower("verbs");
    let resources = lower("resources");
    let groups = lower("apiGroups");
    let names = rule.get("resourceNames").map(Node::seq).unwrap_or(&[]);
    let rname = format!("{} '{}' rule {i}", kind(&role.node), name(&role.node));
    let l = || loc(&role.file, rule.line, format!("rules[{i}]"));
    let has_verb = |v: &str| verbs.iter().any(|x| x == v || x == "*");
    let has_res = |r: &str| resources.iter().any(|x| x == r || x == "*");
    let core = groups.is_empty() || groups.iter().any(|g| g.is_empty() || g == "*");
    let wild: Vec<&str> = [
        ("verbs", &verbs),
        ("resources", &resources),
        ("apiGroups", &groups),
    ]
    .into_iter()
    .filter(|(_, v)| v.iter().any(|x| x == "*"))
    .map(|(k, _)| k)
    .collect();
    if !wild.is_empty() {
        out.push(Finding::new(
            &RBAC_WILDCARD,
            format!("{rname} grants {who} a wildcard in {}", wild.join(", ")),
            l(),
        ));
    }
    if core && has_res("secrets") {
        if has_verb("list") || has_verb("watch") {
            out.push(
                Finding::new(
                    &RBAC_SECRETS,
                    format!("{rname} lets {who} list/watch Secrets: every secret in scope"),
                    l(),
                )
                .severity(Severity::Critical),
            );
        } else if has_verb("get") {
            let f = Finding::new(
                &RBAC_SECRETS,
                format!(
                    "{rname} lets {who} get Secrets{}",
                    if names.is_empty() {
                        ""
                    } else {
                        " (limited by resourceNames)"
                    }
                ),
                l(),
            );
            out.push(if names.is_empty() {
                f
            } else {
                f.severity(Severity::Medium)
            });
        }
    }
    let workloads = [
        "pods",
        "deployments",
        "jobs",
        "cronjobs",
        "statefulsets",
        "daemonsets",
        "replicasets",
        "replicationcontrollers",
        "pytorchjobs",
        "rayjobs",
        "rayclusters",
    ];
    if workloads.iter().any(|r| has_res(r))
        && (has_verb("create") || has_verb("update") || has_verb("patch"))
    {
        out.push(Finding::new(&RBAC_WORKLOADS, format!("{rname} lets {who} create or change pods/workloads (run any image with this account's access)"), l()));
    }
    if ["pods/exec", "pods/attach", "pods/portforward"]
        .iter()
        .any(|r| has_res(r))
        && (has_verb("create") || has_verb("get"))
    {
        out.push(Finding::new(
            &RBAC_WORKLOADS,
            format!("{rname} lets {who} exec/attach into pods"),
            l(),
        ));
    }
    let esc: Vec<&str> = ["bind", "escalate", "impersonate"]
        .into_iter()
        .filter(|v| verbs.iter().any(|x| x == v))
        .collect();
    if !esc.is_empty() {
        out.push(Finding::new(
            &RBAC_ESCALATION,
            format!("{rname} lets {who} {}: privilege escalation", esc.join("/")),
            l(),
        ));
    }
}

/// Checks `paths` and returns the `infra` gate report (threshold `fail_on`).
pub fn check(paths: &[PathBuf], opts: &InfraOptions, fail_on: Severity) -> Result<Report> {
    let (docs, subjects, links) = load_all(paths)?;
    let mut rep = Report::new("infra", fail_on);
    rep.subjects = subjects;
    rep.summary.records = Some(docs.len() as u64);
    rep.findings = check_docs(&docs, opts);
    for l in links {
        rep.findings.push(Finding::new(
            &NOT_EVALUATED,
            "symlink inside a checked folder is not followed: its target is not evaluated (name the target explicitly)",
            Location::file(l.display().to_string()),
        ));
    }
    rep.finish();
    Ok(rep)
}
