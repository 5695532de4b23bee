//! The promotion policy: the `[registry]` table of `tunegate.toml`.
//!
//! ```toml
//! [registry]
//! store = "tunegate-registry.db"        # SQLite file, relative to tunegate.toml
//! # store_url = "postgresql://tunegate@127.0.0.1/registry"   # shared server instead
//! [registry.keys]                       # public keys evidence may be signed with
//! release = "keys/release.pub"
//! scanner = "keys/scanner.pub"
//! [registry.signers]                    # which keys may sign each kind (default: any key)
//! signature = ["release"]
//! model = ["scanner"]
//! [registry.stages.staging]
//! require = ["model"]
//! allow_failing = true                  # a failing model may enter staging for review
//! [registry.stages.production]
//! require = ["dataset", "base", "model", "provenance", "signature"]
//! max_age_days = 30
//! max_severity = "medium"               # a finding above this fails the evidence
//! ```
use crate::error::{Error, Result};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use tunegate_core::Severity;
use tunegate_sign::keys::PublicKey;

/// Kinds of evidence, the links of a version's chain in display order.
pub const KINDS: &[&str] = &[
    "dataset",
    "base",
    "provenance",
    "signature",
    "model",
    "backdoor",
    "safety",
];

/// Stages a version can be in, besides `none` (registered only) and `archived`.
pub const STAGES: &[&str] = &["staging", "production"];

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    #[serde(default)]
    store: Option<PathBuf>,
    #[serde(default)]
    store_url: Option<String>,
    #[serde(default)]
    keys: BTreeMap<String, PathBuf>,
    #[serde(default)]
    signers: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    stages: BTreeMap<String, RawStage>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStage {
    #[serde(default)]
    require: Vec<String>,
    #[serde(default)]
    max_age_days: Option<f64>,
    #[serde(default)]
    max_severity: Option<String>,
    #[serde(default)]
    allow_failing: Option<bool>,
}

/// One stage's rules.
#[derive(Debug, Clone)]
pub struct StagePolicy {
    /// Evidence kinds that must be present, verified, fresh, passing and about this version.
    pub require: Vec<String>,
    /// Maximum evidence age in seconds.
    pub max_age: Option<i64>,
    /// Findings above this severity fail a piece of evidence (`medium` by default).
    pub max_severity: Severity,
    /// Failing evidence is reported at low severity instead of blocking (never for production).
    pub allow_failing: bool,
}

/// The whole policy with its keys loaded.
#[derive(Debug, Clone)]
pub struct Policy {
    /// The SQLite store file.
    pub store: PathBuf,
    /// A PostgreSQL connection URL; when set it is the store instead of the file.
    pub store_url: Option<String>,
    /// Named public keys.
    pub keys: Vec<(String, PublicKey)>,
    /// Kind → key names allowed to sign it; a kind not listed may be signed by any key.
    pub signers: BTreeMap<String, Vec<String>>,
    /// Stage → rules.
    pub stages: BTreeMap<String, StagePolicy>,
}

impl Policy {
    /// Reads the `[registry]` table from a `tunegate.toml` (a missing table is the default
    /// policy: no keys, nothing required). Relative paths resolve against the file's folder.
    pub fn load(config: &Path) -> Result<Policy> {
        let text = std::fs::read_to_string(config).map_err(|e| Error::io(config, e))?;
        let root = config.parent().unwrap_or(Path::new("."));
        let v: toml::Table = toml::from_str(&text)
            .map_err(|e| Error::Policy(format!("{}: {e}", config.display())))?;
        let raw: Raw = match v.get("registry") {
            Some(r) => r
                .clone()
                .try_into()
                .map_err(|e| Error::Policy(format!("{}: [registry]: {e}", config.display())))?,
            None => Raw::default(),
        };
        Self::from_raw(raw, root)
    }

    /// Parses a policy from TOML text holding a `[registry]` table, resolving paths under `root`.
    pub fn from_toml(text: &str, root: &Path) -> Result<Policy> {
        let v: toml::Table = toml::from_str(text).map_err(|e| Error::Policy(e.to_string()))?;
        let raw: Raw = match v.get("registry") {
            Some(r) => r
                .clone()
                .try_into()
                .map_err(|e| Error::Policy(format!("[registry]: {e}")))?,
            None => Raw::default(),
        };
        Self::from_raw(raw, root)
    }

    fn from_raw(raw: Raw, root: &Path) -> Result<Policy> {
        let resolve = |p: &Path| {
            if p.is_absolute() {
                p.to_path_buf()
            } else {
                root.join(p)
            }
        };
        let mut keys = Vec::new();
        for (name, p) in &raw.keys {
            let p = resolve(p);
            let k = tunegate_sign::keys::load_public_key(&p)
                .map_err(|e| Error::Policy(format!("key '{name}' ({}): {e}", p.display())))?;
            keys.push((name.clone(), k));
        }
        for (kind, names) in &raw.signers {
            check_kind(kind)?;
            for n in names {
                if !raw.keys.contains_key(n) {
                    return Err(Error::Policy(format!(
                        "signers.{kind} names key '{n}', which [registry.keys] does not define"
                    )));
                }
            }
        }
        let mut stages = BTreeMap::new();
        for s in STAGES {
            stages.insert(s.to_string(), StagePolicy::default_for(s));
        }
        for (name, st) in raw.stages {
            if !STAGES.contains(&name.as_str()) {
                return Err(Error::Policy(format!(
                    "unknown stage '{name}' (stages: staging, production)"
                )));
            }
            for k in &st.require {
                check_kind(k)?;
            }
            let max_severity = match st.max_severity {
                Some(s) => s
                    .parse()
                    .map_err(|e| Error::Policy(format!("stages.{name}.max_severity: {e}")))?,
                None => Severity::Medium,
            };
            if name == "production" && st.allow_failing == Some(true) {
                return Err(Error::Policy(
                    "stages.production.allow_failing: a failing model never enters production"
                        .into(),
                ));
            }
            let max_age = match st.max_age_days {
                Some(d) if d.is_finite() && d > 0.0 => Some((d * 86400.0) as i64),
                Some(d) => {
                    return Err(Error::Policy(format!(
                        "stages.{name}.max_age_days must be a positive number, not {d}"
                    )))
                }
                None => None,
            };
            stages.insert(
                name.clone(),
                StagePolicy {
                    require: st.require,
                    max_age,
                    max_severity,
                    allow_failing: st.allow_failing.unwrap_or(name == "staging"),
                },
            );
        }
        Ok(Policy {
            store: resolve(
                raw.store
                    .as_deref()
                    .unwrap_or(Path::new("tunegate-registry.db")),
            ),
            store_url: match raw.store_url {
                Some(u) if u.starts_with("postgres://") || u.starts_with("postgresql://") => {
                    Some(u)
                }
                Some(u) => {
                    return Err(Error::Policy(format!(
                        "store_url '{u}' is not a postgres:// or postgresql:// URL"
                    )))
                }
                None => None,
            },
            keys,
            signers: raw.signers,
            stages,
        })
    }

    /// The rules for `stage`.
    pub fn stage(&self, stage: &str) -> Result<&StagePolicy> {
        self.stages.get(stage).ok_or_else(|| {
            Error::Input(format!(
                "unknown stage '{stage}' (stages: staging, production)"
            ))
        })
    }
}

impl StagePolicy {
    fn default_for(stage: &str) -> Self {
        StagePolicy {
            require: Vec::new(),
            max_age: None,
            max_severity: Severity::Medium,
            allow_failing: stage == "staging",
        }
    }
}

fn check_kind(k: &str) -> Result<()> {
    if KINDS.contains(&k) {
        Ok(())
    } else {
        Err(Error::Policy(format!(
            "unknown evidence kind '{k}' (kinds: {})",
            KINDS.join(", ")
        )))
    }
}
