//! `tunegate.toml`: one pipeline's configuration. Relative paths are resolved against the
//! directory holding the config file, so `tunegate check` works from anywhere.
use crate::{Error, Result, Severity};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// The whole file. Unknown keys are errors (a typo must not silently disable a gate).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The dataset gate.
    #[serde(default)]
    pub dataset: Option<DatasetConfig>,
    /// Where `tunegate check` writes its report.
    #[serde(default)]
    pub report: Option<ReportConfig>,
    /// The training-infrastructure gate (Kubernetes manifests, IAM policies).
    #[serde(default)]
    pub infra: Option<InfraConfig>,
    /// The dependency gate (requirements, pip freeze, uv.lock, poetry.lock).
    #[serde(default)]
    pub deps: Option<DepsConfig>,
    /// The base model a run starts from (`tunegate run`, `tunegate attest verify`).
    #[serde(default)]
    pub model: Option<ModelConfig>,
    /// The model registry and its promotion policy, parsed by `tunegate-registry`.
    #[serde(default)]
    pub registry: Option<toml::Table>,
    /// Directory of the config file (set by [`Config::load`]).
    #[serde(skip)]
    pub root: PathBuf,
}

/// `[dataset]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetConfig {
    /// Dataset files or folders.
    pub paths: Vec<PathBuf>,
    /// Forced schema (`instruction`, `chat`, `prompt-completion`, `text-label`, `preference`).
    #[serde(default)]
    pub schema: Option<String>,
    /// The lock file (default `tunegate.lock` beside the config).
    #[serde(default)]
    pub lock: Option<PathBuf>,
    /// Gate threshold (default `high`).
    #[serde(default)]
    pub fail_on: Option<Severity>,
    /// Near-duplicate Jaccard threshold (default 0.8).
    #[serde(default)]
    pub near_duplicate_threshold: Option<f64>,
    /// Minimum records holding a token before it can be a trigger candidate (default 5).
    #[serde(default)]
    pub trigger_min_count: Option<usize>,
    /// Extra suspicious-content pattern files (same TOML shape as the shipped list).
    #[serde(default)]
    pub patterns: Vec<PathBuf>,
    /// Check ids or names to skip.
    #[serde(default)]
    pub disable: Vec<String>,
}

/// `[infra]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InfraConfig {
    /// Manifest and IAM policy files or folders.
    pub paths: Vec<PathBuf>,
    /// The job's checkpoint prefix (`ml-checkpoints/jobs/${job-id}/`).
    #[serde(default)]
    pub job_prefix: Option<String>,
}

/// `[deps]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DepsConfig {
    /// requirements.txt, pip freeze output, uv.lock or poetry.lock files.
    pub files: Vec<PathBuf>,
    /// OSV advisory files or folders (read offline).
    #[serde(default)]
    pub advisories: Vec<PathBuf>,
}

/// `[model]`: the base model of the pipeline.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// The base model folder or file (hashed and recorded by `tunegate run`).
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// The approved-model list (`tunegate model approve`).
    #[serde(default)]
    pub approved: Option<PathBuf>,
    /// The approved-list entry id of the base model.
    #[serde(default)]
    pub id: Option<String>,
}

/// `[report]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportConfig {
    /// `text`, `json`, `sarif` or `html`.
    #[serde(default)]
    pub format: Option<String>,
    /// Output file (stdout when absent).
    #[serde(default)]
    pub output: Option<PathBuf>,
}

impl Config {
    /// Reads and validates `path`.
    pub fn load(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let mut cfg: Config =
            toml::from_str(&text).map_err(|e| Error::invalid(path, e.to_string()))?;
        cfg.root = path
            .parent()
            .map(Path::to_path_buf)
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or_else(|| PathBuf::from("."));
        if let Some(d) = &cfg.dataset {
            if d.paths.is_empty() {
                return Err(Error::invalid(path, "[dataset] paths is empty"));
            }
            if let Some(t) = d.near_duplicate_threshold {
                if !(0.0..=1.0).contains(&t) || t == 0.0 {
                    return Err(Error::invalid(
                        path,
                        format!("[dataset] near_duplicate_threshold {t} is not in (0, 1]"),
                    ));
                }
            }
        }
        if cfg.infra.as_ref().is_some_and(|i| i.paths.is_empty()) {
            return Err(Error::invalid(path, "[infra] paths is empty"));
        }
        if cfg.deps.as_ref().is_some_and(|d| d.files.is_empty()) {
            return Err(Error::invalid(path, "[deps] files is empty"));
        }
        Ok(cfg)
    }

    /// Resolves `p` against the config's directory.
    pub fn resolve(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.root.join(p)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_and_resolves_relative_paths() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("tunegate.toml");
        std::fs::write(
            &p,
            "[dataset]\npaths = [\"data/train.jsonl\"]\nfail_on = \"medium\"\n",
        )
        .unwrap();
        let c = Config::load(&p).unwrap();
        let d = c.dataset.as_ref().unwrap();
        assert_eq!(d.fail_on, Some(Severity::Medium));
        assert_eq!(c.resolve(&d.paths[0]), dir.path().join("data/train.jsonl"));
    }

    #[test]
    fn infra_and_deps_sections() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("tunegate.toml");
        std::fs::write(
            &p,
            "[infra]\npaths = [\"k8s\", \"iam\"]\njob_prefix = \"b/jobs/${job-id}/\"\n[deps]\nfiles = [\"requirements.txt\"]\n",
        )
        .unwrap();
        let c = Config::load(&p).unwrap();
        assert_eq!(c.infra.as_ref().unwrap().paths.len(), 2);
        assert_eq!(c.deps.as_ref().unwrap().advisories.len(), 0);
        std::fs::write(&p, "[deps]\nfiles = [\"r.txt\"]\nadvisory = [\"x\"]\n").unwrap();
        assert!(Config::load(&p)
            .unwrap_err()
            .to_string()
            .contains("advisory"));
        std::fs::write(&p, "[infra]\npaths = []\n").unwrap();
        assert!(Config::load(&p)
            .unwrap_err()
            .to_string()
            .contains("[infra] paths is empty"));
    }

    #[test]
    fn typos_are_errors_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("tunegate.toml");
        std::fs::write(&p, "[dataset]\npath = [\"x\"]\n").unwrap();
        let e = Config::load(&p).unwrap_err().to_string();
        assert!(e.contains("tunegate.toml") && e.contains("path"), "{e}");
    }
}
