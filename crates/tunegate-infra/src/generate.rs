//! `tunegate infra generate`: the threat model's isolated training job, parameterised.
//!
//! One namespace-scoped set: a dedicated ServiceAccount (token not mounted, optional IRSA role),
//! a Role limited by resource name to the job's own ConfigMap, its RoleBinding, a NetworkPolicy
//! that denies everything except DNS, the peer workers on 29500 and the storage endpoint on 443,
//! and a hardened Job; plus an IAM policy that reads and writes only
//! `arn:aws:s3:::BUCKET/jobs/JOB/*` with no `s3:ListBucket`.
use crate::{Error, Result};
use std::path::{Path, PathBuf};

/// Parameters of the generated set.
#[derive(Debug, Clone)]
pub struct JobSpec {
    /// Job name (DNS label).
    pub job: String,
    /// Namespace.
    pub namespace: String,
    /// Image pinned by digest.
    pub image: String,
    /// Checkpoint bucket.
    pub bucket: String,
    /// Key prefix template under the bucket; `{job}` is replaced (default `jobs/{job}/`).
    pub prefix: String,
    /// GPUs per pod.
    pub gpus: u32,
    /// CIDRs of the storage endpoint (S3 VPC endpoint / prefix list) allowed on 443.
    pub storage_cidrs: Vec<String>,
    /// IAM role ARN for IRSA (`eks.amazonaws.com/role-arn`); the policy file is named after it.
    pub role_arn: Option<String>,
    /// Read-only base-model location (`bucket/path/`), if the job reads one from S3.
    pub base_models: Option<String>,
}

fn dns_label(s: &str, what: &str) -> Result<()> {
    let ok = !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(Error::Usage(format!(
            "{what} '{s}' is not a DNS label (lowercase letters, digits, '-', at most 63)"
        )))
    }
}

impl JobSpec {
    /// Validates the parameters (names, digest pin, bucket, CIDRs).
    pub fn validate(&self) -> Result<()> {
        dns_label(&self.job, "--job")?;
        dns_label(&self.namespace, "--namespace")?;
        let pinned = self.image.split_once("@sha256:").is_some_and(|(repo, h)| {
            !repo.is_empty()
                && h.len() == 64
                && h.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        });
        if !pinned {
            return Err(Error::Usage(format!(
                "--image '{}' must be pinned by digest: NAME@sha256:<64 lowercase hex>",
                self.image
            )));
        }
        if self.image.contains(char::is_whitespace) || self.image.contains('"') {
            return Err(Error::Usage("--image contains whitespace or quotes".into()));
        }
        let b = &self.bucket;
        if b.len() < 3
            || b.len() > 63
            || !b
                .bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-' || c == b'.')
        {
            return Err(Error::Usage(format!(
                "--bucket '{b}' is not an S3 bucket name"
            )));
        }
        if self.prefix.contains(['*', '?', '"']) || !self.prefix.ends_with('/') {
            return Err(Error::Usage(format!(
                "--prefix '{}' must end with '/' and contain no wildcards",
                self.prefix
            )));
        }
        for c in &self.storage_cidrs {
            let ok = c.split_once('/').is_some_and(|(a, n)| {
                a.split('.').count() == 4
                    && a.split('.').all(|o| o.parse::<u8>().is_ok())
                    && n.parse::<u8>().is_ok_and(|n| (9..=32).contains(&n))
            });
            if !ok {
                return Err(Error::Usage(format!(
                    "--storage-cidr '{c}' is not an IPv4 CIDR of /9 to /32 (the storage endpoint, not the internet)"
                )));
            }
        }
        if let Some(r) = &self.role_arn {
            if !r.starts_with("arn:aws:iam::") || !r.contains(":role/") || r.contains('"') {
                return Err(Error::Usage(format!(
                    "--role-arn '{r}' is not arn:aws:iam::ACCOUNT:role/NAME"
                )));
            }
        }
        if let Some(m) = &self.base_models {
            if m.contains(['*', '?', '"']) || !m.contains('/') {
                return Err(Error::Usage(format!(
                    "--base-models '{m}' must be BUCKET/PATH/ without wildcards"
                )));
            }
        }
        Ok(())
    }

    /// The job's key prefix (`jobs/NAME/`).
    pub fn key_prefix(&self) -> String {
        self.prefix.replace("{job}", &self.job)
    }

    fn role_name(&self) -> String {
        match &self.role_arn {
            Some(r) => r.rsplit('/').next().unwrap_or(&self.job).to_string(),
            None => format!("{}-checkpoints", self.job),
        }
    }

    /// The multi-document manifest.
    pub fn manifests(&self) -> String {
        let j = &self.job;
        let ns = &self.namespace;
        let annotation = match &self.role_arn {
            Some(r) => format!("  annotations:\n    eks.amazonaws.com/role-arn: \"{r}\"\n"),
            None => String::new(),
        };
        let storage = if self.storage_cidrs.is_empty() {
            "    # No --storage-cidr given: add the S3 VPC endpoint / prefix-list CIDRs here on port 443.\n".to_string()
        } else {
            let mut s = String::from("    - to:\n");
            for c in &self.storage_cidrs {
                s.push_str(&format!("        - ipBlock:\n            cidr: {c}\n"));
            }
            s.push_str("      ports:\n        - protocol: TCP\n          port: 443\n");
            s
        };
        let gpus = if self.gpus > 0 {
            format!("              nvidia.com/gpu: {}\n", self.gpus)
        } else {
            String::new()
        };
        format!(
            r#"# Generated by `tunegate infra generate`: the isolated training job of the threat model.
apiVersion: v1
kind: ServiceAccount
metadata:
  name: {j}
  namespace: {ns}
{annotation}automountServiceAccountToken: false
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: {j}
  namespace: {ns}
rules:
  - apiGroups: [""]
    resources: ["configmaps"]
    resourceNames: ["{j}-config"]
    verbs: ["get"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: {j}
  namespace: {ns}
subjects:
  - kind: ServiceAccount
    name: {j}
    namespace: {ns}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: Role
  name: {j}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: {j}-isolation
  namespace: {ns}
spec:
  podSelector:
    matchLabels:
      tunegate.io/job: {j}
  policyTypes: ["Ingress", "Egress"]
  ingress:
    - from:
        - podSelector:
            matchLabels:
              tunegate.io/job: {j}
      ports:
        - protocol: TCP
          port: 29500
  egress:
    - to:
        - namespaceSelector:
            matchLabels:
              kubernetes.io/metadata.name: kube-system
          podSelector:
            matchLabels:
              k8s-app: kube-dns
      ports:
        - protocol: UDP
          port: 53
        - protocol: TCP
          port: 53
    - to:
        - podSelector:
            matchLabels:
              tunegate.io/job: {j}
      ports:
        - protocol: TCP
          port: 29500
{storage}---
apiVersion: batch/v1
kind: Job
metadata:
  name: {j}
  namespace: {ns}
spec:
  backoffLimit: 1
  activeDeadlineSeconds: 86400
  ttlSecondsAfterFinished: 3600
  template:
    metadata:
      labels:
        tunegate.io/job: {j}
    spec:
      serviceAccountName: {j}
      automountServiceAccountToken: false
      restartPolicy: Never
      securityContext:
        runAsNonRoot: true
        runAsUser: 10001
        runAsGroup: 10001
        fsGroup: 10001
        seccompProfile:
          type: RuntimeDefault
      containers:
        - name: train
          image: "{image}"
          env:
            - name: CHECKPOINT_URI
              value: "s3://{bucket}/{prefix}"
          securityContext:
            allowPrivilegeEscalation: false
            privileged: false
            readOnlyRootFilesystem: true
            capabilities:
              drop: ["ALL"]
          resources:
            limits:
{gpus}              memory: 64Gi
          volumeMounts:
            - name: dshm
              mountPath: /dev/shm
            - name: scratch
              mountPath: /tmp
      volumes:
        - name: dshm
          emptyDir:
            medium: Memory
            sizeLimit: 16Gi
        - name: scratch
          emptyDir: {{}}
"#,
            image = self.image,
            bucket = self.bucket,
            prefix = self.key_prefix(),
        )
    }

    /// The IAM policy (JSON).
    pub fn iam_policy(&self) -> String {
        let mut stmts = vec![serde_json::json!({
            "Sid": "JobCheckpointsReadWrite",
            "Effect": "Allow",
            "Action": ["s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload"],
            "Resource": [format!("arn:aws:s3:::{}/{}*", self.bucket, self.key_prefix())]
        })];
        if let Some(m) = &self.base_models {
            let m = m.trim_start_matches("s3://");
            let m = if m.ends_with('/') {
                m.to_string()
            } else {
                format!("{m}/")
            };
            stmts.push(serde_json::json!({
                "Sid": "BaseModelsReadOnly",
                "Effect": "Allow",
                "Action": ["s3:GetObject"],
                "Resource": [format!("arn:aws:s3:::{m}*")]
            }));
        }
        serde_json::to_string_pretty(&serde_json::json!({
            "Version": "2012-10-17",
            "Statement": stmts
        }))
        .expect("static JSON")
            + "\n"
    }

    /// Writes `k8s/JOB.yaml` and `iam/ROLE.json` under `dir`; returns the paths written.
    pub fn write(&self, dir: &Path) -> Result<Vec<PathBuf>> {
        self.validate()?;
        let k8s = dir.join("k8s");
        let iam = dir.join("iam");
        for d in [&k8s, &iam] {
            std::fs::create_dir_all(d).map_err(|e| Error::io(d, e))?;
        }
        let m = k8s.join(format!("{}.yaml", self.job));
        let p = iam.join(format!("{}.json", self.role_name()));
        std::fs::write(&m, self.manifests()).map_err(|e| Error::io(&m, e))?;
        std::fs::write(&p, self.iam_policy()).map_err(|e| Error::io(&p, e))?;
        Ok(vec![m, p])
    }
}
