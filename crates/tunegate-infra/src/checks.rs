//! The infrastructure gate's checks (`I###`): I001–I020 for Kubernetes and IAM, I021–I027 for
//! Python dependencies. Ids are stable; never renumber, never reuse.
tunegate_core::declare_checks! {
    EGRESS_NOT_ISOLATED = "I001", "infra.egress-not-isolated", High,
        "A training pod is selected by no NetworkPolicy with Egress in its policyTypes: its egress is open.";
    EGRESS_OPEN = "I002", "infra.egress-open", High,
        "A selecting NetworkPolicy allows egress to any destination (rule without `to`, 0.0.0.0/0, every namespace) or to the cloud metadata endpoint (medium).";
    HOST_PATH = "I003", "infra.host-path", High,
        "A hostPath volume (docker.sock is critical; / , /proc and /dev/shm get specific advice).";
    PRIVILEGED = "I004", "infra.privileged", Critical,
        "A privileged container (critical) or allowPrivilegeEscalation not set to false (high); GPUs need the device plugin resource, not privileged.";
    HOST_NAMESPACES = "I005", "infra.host-namespaces", High,
        "hostNetwork, hostPID or hostIPC; use an emptyDir with medium Memory at /dev/shm for PyTorch shared memory.";
    CONTAINER_HARDENING = "I006", "infra.container-hardening", Medium,
        "A container without capabilities dropped (ALL), with added dangerous capabilities, without seccomp RuntimeDefault, running as root, or with a writable root filesystem.";
    SERVICE_ACCOUNT = "I007", "infra.service-account", Medium,
        "A training pod runs as the default ServiceAccount, or its service-account token is auto-mounted.";
    RBAC_WILDCARD = "I008", "infra.rbac-wildcard", High,
        "The pod's ServiceAccount is granted a wildcard verb, resource or apiGroup.";
    RBAC_SECRETS = "I009", "infra.rbac-secrets", High,
        "The pod's ServiceAccount can read Secrets (list/watch: critical; get limited by resourceNames: medium).";
    RBAC_WORKLOADS = "I010", "infra.rbac-workloads", High,
        "The pod's ServiceAccount can create pods or workloads, or exec/attach into pods.";
    RBAC_ESCALATION = "I011", "infra.rbac-escalation", Critical,
        "The pod's ServiceAccount can bind, escalate or impersonate, or is bound to cluster-admin, admin or edit.";
    ENV_SECRET = "I012", "infra.env-secret", High,
        "Secret material (HF_TOKEN, AWS keys, API tokens) in a plain env value instead of a secretKeyRef.";
    IMAGE_NOT_PINNED = "I013", "infra.image-not-pinned", Low,
        "A container image not pinned by digest (@sha256:...).";
    IAM_WILDCARD = "I014", "infra.iam-wildcard", High,
        "An IAM Allow with `*` or `service:*` actions, NotAction or NotResource, or Resource `*`.";
    IAM_OUT_OF_PREFIX = "I015", "infra.iam-out-of-prefix", High,
        "An IAM S3 grant outside the job prefix: bucket-wide, another job's objects through a missing `/` before `*`, or writes outside the prefix (read-only grants outside it are info).";
    IAM_LIST_BUCKET = "I016", "infra.iam-list-bucket", High,
        "An IAM policy grants s3:ListBucket (medium when an s3:prefix condition limits it to the job prefix).";
    IAM_DANGEROUS_ACTION = "I017", "infra.iam-dangerous-action", High,
        "An IAM policy grants bucket-configuration or ACL actions, iam:PassRole or iam:*, sts:AssumeRole on `*`, or kms:Decrypt on `*` without kms:ViaService.";
    IAM_PUBLIC_PRINCIPAL = "I018", "infra.iam-public-principal", Critical,
        "A resource policy allows Principal `*` without a condition (aws:SourceVpce, aws:PrincipalOrgID, ...).";
    JOB_HYGIENE = "I019", "infra.job-hygiene", Low,
        "A training Job without activeDeadlineSeconds, backoffLimit or ttlSecondsAfterFinished.";
    NOT_EVALUATED = "I020", "infra.not-evaluated", Info,
        "An object, CRD or reference this gate does not evaluate (CNI egress CRDs, unknown kinds, a role annotation without its policy file).";
    DEP_UNPINNED = "I021", "deps.unpinned", High,
        "A requirement not pinned to one version with `==` (ranges, `>=`, no specifier).";
    DEP_NO_HASH = "I022", "deps.missing-hash", Medium,
        "A requirement or locked package without a sha256 hash (pip --require-hashes, uv and poetry record them).";
    DEP_DIRECT_URL = "I023", "deps.direct-url", High,
        "A direct URL, local path or VCS install (git+https://..., file:...), which no index or hash pins.";
    DEP_INDEX_OVERRIDE = "I024", "deps.index-override", High,
        "An index override (--extra-index-url, --index-url, --find-links, --trusted-host, a non-default registry): the dependency-confusion shape.";
    DEP_COMPROMISED = "I025", "deps.known-compromised", Critical,
        "A package release on the shipped list of known-compromised releases.";
    DEP_ADVISORY = "I026", "deps.advisory", High,
        "A package version affected by an OSV advisory given with --advisories.";
    DEP_CODE_LOADING = "I027", "deps.code-executing-loader", Info,
        "An ML package whose loading API can execute code from the loaded file; names the safe call to prefer.";
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_are_valid_and_unique() {
        tunegate_core::checks::validate(super::CHECKS).unwrap();
        assert!(super::CHECKS.iter().all(|c| c.id.starts_with('I')));
    }
}
