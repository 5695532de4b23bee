//! `tunegate infra check|generate` and `tunegate deps check`: the training-infrastructure gates.
//! Rendering, `--fail-on` and exit codes come from the shared report flags.
use anyhow::{Context, Result};
use std::path::PathBuf;
use tunegate_core::{Report, Severity};
use tunegate_infra::generate::JobSpec;
use tunegate_infra::iam::JobPrefix;
use tunegate_infra::infra::InfraOptions;

/// Every infra and deps check (`I###`), for `tunegate checks`.
pub const CHECKS: &[tunegate_core::CheckInfo] = tunegate_infra::CHECKS;

/// Arguments of `tunegate infra check`.
#[derive(Debug, Clone, clap::Args)]
pub struct InfraCheckArgs {
    /// Kubernetes manifests (multi-document YAML or JSON) and AWS IAM policy files, or folders.
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// The job's checkpoint prefix, e.g. 'ml-checkpoints/jobs/${job-id}/': S3 grants outside it
    /// are findings.
    #[arg(long, value_name = "BUCKET/PREFIX")]
    pub job_prefix: Option<String>,
}

/// Runs `infra check` into an `infra` report (threshold `high` unless given).
pub fn infra_check(args: &InfraCheckArgs, fail_on: Option<Severity>) -> Result<Report> {
    let job_prefix = args
        .job_prefix
        .as_deref()
        .map(JobPrefix::parse)
        .transpose()
        .map_err(|e| anyhow::anyhow!("--job-prefix: {e}"))?;
    Ok(tunegate_infra::infra::check(
        &args.paths,
        &InfraOptions { job_prefix },
        fail_on.unwrap_or(Severity::High),
    )?)
}

/// Arguments of `tunegate infra generate`.
#[derive(Debug, Clone, clap::Args)]
pub struct InfraGenerateArgs {
    /// Job name (a DNS label).
    #[arg(long, value_name = "NAME")]
    pub job: String,
    /// Namespace.
    #[arg(long, default_value = "ml-training")]
    pub namespace: String,
    /// Training image pinned by digest (NAME@sha256:...).
    #[arg(long, value_name = "IMAGE@sha256:...")]
    pub image: String,
    /// Checkpoint bucket.
    #[arg(long, value_name = "B")]
    pub bucket: String,
    /// Key prefix under the bucket; `{job}` is replaced by the job name.
    #[arg(long, default_value = "jobs/{job}/")]
    pub prefix: String,
    /// GPUs per pod (the device plugin's nvidia.com/gpu resource).
    #[arg(long, default_value_t = 1)]
    pub gpus: u32,
    /// CIDR of the storage endpoint (S3 VPC endpoint) allowed on 443; repeatable.
    #[arg(long, value_name = "CIDR")]
    pub storage_cidr: Vec<String>,
    /// IAM role for IRSA; the policy file is named after the role.
    #[arg(long, value_name = "ARN")]
    pub role_arn: Option<String>,
    /// Read-only base-model location (BUCKET/PATH/).
    #[arg(long, value_name = "BUCKET/PATH/")]
    pub base_models: Option<String>,
    /// Output folder (k8s/ and iam/ are created in it).
    #[arg(long, short = 'o', default_value = ".")]
    pub out: PathBuf,
    /// No chatter on stderr.
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

/// Writes the manifest set and IAM policy.
pub fn infra_generate(a: &InfraGenerateArgs) -> Result<u8> {
    let spec = JobSpec {
        job: a.job.clone(),
        namespace: a.namespace.clone(),
        image: a.image.clone(),
        bucket: a.bucket.clone(),
        prefix: a.prefix.clone(),
        gpus: a.gpus,
        storage_cidrs: a.storage_cidr.clone(),
        role_arn: a.role_arn.clone(),
        base_models: a.base_models.clone(),
    };
    let written = spec.write(&a.out)?;
    if !a.quiet {
        for w in &written {
            eprintln!("tunegate: wrote {}", w.display());
        }
        if a.storage_cidr.is_empty() {
            eprintln!("tunegate: no --storage-cidr: the NetworkPolicy allows no storage egress until you add the S3 endpoint's CIDR");
        }
        eprintln!(
            "tunegate: check it with: tunegate infra check {} --job-prefix '{}/{}'",
            a.out.display(),
            a.bucket,
            a.prefix.replace("{job}", "${job-id}")
        );
    }
    Ok(0)
}

/// Arguments of `tunegate deps check`.
#[derive(Debug, Clone, clap::Args)]
pub struct DepsCheckArgs {
    /// requirements.txt, pip freeze output, uv.lock or poetry.lock files.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// OSV-format advisory files (or folders of them); read offline. Repeatable.
    #[arg(long, value_name = "FILE")]
    pub advisories: Vec<PathBuf>,
}

/// Runs `deps check` into a `deps` report.
pub fn deps_check(args: &DepsCheckArgs, fail_on: Option<Severity>) -> Result<Report> {
    Ok(tunegate_infra::deps::check(
        &args.files,
        &args.advisories,
        fail_on.unwrap_or(Severity::High),
    )?)
}

/// Runs the gates `tunegate.toml` configures (`[infra]`, `[deps]`) and returns their findings
/// and subjects, for `tunegate check` to merge.
pub fn configured(
    cfg: &tunegate_core::config::Config,
    fail_on: Severity,
) -> Result<Option<Report>> {
    let mut merged: Option<Report> = None;
    let add = |r: Report, merged: &mut Option<Report>| match merged {
        None => *merged = Some(r),
        Some(m) => {
            m.subjects.extend(r.subjects);
            m.findings.extend(r.findings);
        }
    };
    if let Some(i) = &cfg.infra {
        let args = InfraCheckArgs {
            paths: i.paths.iter().map(|p| cfg.resolve(p)).collect(),
            job_prefix: i.job_prefix.clone(),
        };
        add(
            infra_check(&args, Some(fail_on)).context("[infra]")?,
            &mut merged,
        );
    }
    if let Some(d) = &cfg.deps {
        let args = DepsCheckArgs {
            files: d.files.iter().map(|p| cfg.resolve(p)).collect(),
            advisories: d.advisories.iter().map(|p| cfg.resolve(p)).collect(),
        };
        add(
            deps_check(&args, Some(fail_on)).context("[deps]")?,
            &mut merged,
        );
    }
    Ok(merged)
}

/// The infra/deps gates' telemetry in Prometheus text format (for `--metrics-file`), labelled
/// with the gate.
pub fn metrics(report: &Report) -> String {
    let labels = format!("gate=\"{}\"", crate::output::label(&report.gate));
    crate::output::gate_metrics("tunegate_infra", &labels, None, report)
}
