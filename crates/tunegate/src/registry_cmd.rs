//! `tunegate registry`: versions, evidence, promotion, audit.
use crate::output::ReportArgs;
use anyhow::{bail, Context, Result};
use clap::Subcommand;
use std::path::{Path, PathBuf};
use tunegate_registry::{Actor, EvidenceFile, Policy, Registry};

/// The registry's checks, for `tunegate checks`.
pub const CHECKS: &[tunegate_core::CheckInfo] = tunegate_registry::CHECKS;

/// Flags every registry command takes.
#[derive(Debug, Clone, clap::Args)]
pub struct Common {
    /// The pipeline config holding the [registry] policy (default ./tunegate.toml; without one
    /// the store is ./tunegate-registry.db and nothing is required).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Act as this principal; its token is read from $TUNEGATE_REGISTRY_TOKEN.
    #[arg(long = "as", value_name = "PRINCIPAL")]
    pub as_: Option<String>,
}

/// Registry subcommands.
#[derive(Subcommand)]
pub enum RegistryCmd {
    /// Register a new version of NAME from PATH (a model folder or file).
    Add {
        /// Model name.
        name: String,
        /// Model folder or file.
        path: PathBuf,
        /// Signed evidence bundles (`FILE` or `KIND=FILE`, KIND one of dataset, base,
        /// provenance, signature, model, backdoor, safety).
        #[arg(long = "evidence", value_name = "F", num_args = 1..)]
        evidence: Vec<String>,
        /// Training inputs (dataset files, base model) whose digests link dataset and base
        /// evidence to this version.
        #[arg(long = "input", value_name = "PATH")]
        inputs: Vec<PathBuf>,
        #[command(flatten)]
        common: Common,
    },
    /// Attach more signed evidence to a version.
    Evidence {
        /// Model name.
        name: String,
        /// Version number.
        version: String,
        /// Evidence bundles (`FILE` or `KIND=FILE`).
        #[arg(required = true)]
        files: Vec<String>,
        #[command(flatten)]
        common: Common,
    },
    /// Promote a version if the stage's policy allows; prints the R### report (exit 1 refused).
    Promote {
        /// Model name.
        name: String,
        /// Version number.
        version: String,
        /// Target stage.
        #[arg(long, value_parser = ["staging", "production"])]
        to: String,
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        report: ReportArgs,
    },
    /// Approve a version for production (security-approver; not the one who registered it).
    Approve {
        /// Model name.
        name: String,
        /// Version number.
        version: String,
        #[command(flatten)]
        common: Common,
    },
    /// Put a version that was in production before back into production.
    Rollback {
        /// Model name.
        name: String,
        /// The version to restore.
        #[arg(long)]
        to: String,
        #[command(flatten)]
        common: Common,
    },
    /// Move a version one stage down (production → staging → none).
    Demote {
        /// Model name.
        name: String,
        /// Version number.
        version: String,
        #[command(flatten)]
        common: Common,
    },
    /// Archive a version.
    Archive {
        /// Model name.
        name: String,
        /// Version number.
        version: String,
        #[command(flatten)]
        common: Common,
    },
    /// List models and versions.
    List {
        /// Only this model.
        name: Option<String>,
        /// JSON output.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        common: Common,
    },
    /// Show a model's versions, or one version's evidence chain evaluated for a stage.
    Show {
        /// Model name.
        name: String,
        /// Version number.
        version: Option<String>,
        /// Stage to evaluate the evidence against.
        #[arg(long, default_value = "production", value_parser = ["staging", "production"])]
        stage: String,
        /// JSON output.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        common: Common,
    },
    /// Print the audit log; with --verify, check its hash chain (exit 1 if broken).
    Audit {
        /// Verify the chain and print a report.
        #[arg(long)]
        verify: bool,
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        report: ReportArgs,
    },
    /// Mirror versions to an MLflow registry (tags + aliases) and report alias drift (exit 1).
    Sync {
        /// MLflow tracking server, http://host:port.
        #[arg(long, value_name = "URL")]
        mlflow: String,
        /// Move drifted aliases back to what tunegate promoted.
        #[arg(long)]
        repair: bool,
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        report: ReportArgs,
    },
    /// Serve the JSON API and web pages (models, versions, evidence chain, audit log).
    Serve {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8470")]
        listen: String,
        #[command(flatten)]
        common: Common,
    },
    /// Create or update a principal with a role and print its new API token (admin).
    Principal {
        /// Principal name.
        name: String,
        /// trainer, security-approver or admin.
        #[arg(long)]
        role: String,
        #[command(flatten)]
        common: Common,
    },
}

fn open(c: &Common) -> Result<Registry> {
    let policy = match &c.config {
        Some(p) => Policy::load(p)?,
        None if Path::new("tunegate.toml").exists() => Policy::load(Path::new("tunegate.toml"))?,
        None => Policy::from_toml("", Path::new("."))?,
    };
    Ok(Registry::open(policy)?)
}

fn actor(reg: &Registry, c: &Common) -> Result<Actor> {
    match &c.as_ {
        Some(name) => {
            let token = std::env::var("TUNEGATE_REGISTRY_TOKEN").map_err(|_| {
                anyhow::anyhow!(
                    "--as {name} needs the principal's token in $TUNEGATE_REGISTRY_TOKEN"
                )
            })?;
            Ok(reg.authenticate(Some(name), token.trim())?)
        }
        None => {
            let user = ["USER", "LOGNAME", "USERNAME"]
                .iter()
                .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
                .unwrap_or_else(|| "unknown".into());
            Ok(reg.local_actor(&user)?)
        }
    }
}

fn version_no(s: &str) -> Result<i64> {
    s.trim_start_matches(['v', 'V'])
        .parse::<i64>()
        .ok()
        .filter(|v| *v > 0)
        .with_context(|| format!("'{s}' is not a version number (1, 2, ... or v1, v2, ...)"))
}

/// Runs a registry subcommand; returns the exit code.
pub fn run(cmd: RegistryCmd) -> Result<u8> {
    match cmd {
        RegistryCmd::Add {
            name,
            path,
            evidence,
            inputs,
            common,
        } => {
            let reg = open(&common)?;
            let a = actor(&reg, &common)?;
            let ev: Vec<EvidenceFile> = evidence.iter().map(|s| EvidenceFile::parse(s)).collect();
            let v = reg.add(&a, &name, &path, &inputs, &ev)?;
            println!(
                "{}@{} registered by {} (root sha256:{}, {} files, {} evidence)",
                v.model,
                v.version,
                v.registered_by,
                v.root,
                v.files.len(),
                ev.len()
            );
            Ok(0)
        }
        RegistryCmd::Evidence {
            name,
            version,
            files,
            common,
        } => {
            let reg = open(&common)?;
            let a = actor(&reg, &common)?;
            let ev: Vec<EvidenceFile> = files.iter().map(|s| EvidenceFile::parse(s)).collect();
            reg.attach(&a, &name, version_no(&version)?, &ev)?;
            println!("attached {} evidence file(s) to {name}@{version}", ev.len());
            Ok(0)
        }
        RegistryCmd::Promote {
            name,
            version,
            to,
            common,
            report,
        } => {
            let reg = open(&common)?;
            let a = actor(&reg, &common)?;
            let v = version_no(&version)?;
            let e = reg.promote(&a, &name, v, &to)?;
            report.emit(&e.report, "")?;
            if e.allowed() {
                eprintln!("tunegate: {name}@{v} promoted to {to}");
                Ok(0)
            } else {
                eprintln!("tunegate: promotion of {name}@{v} to {to} REFUSED");
                Ok(1)
            }
        }
        RegistryCmd::Approve {
            name,
            version,
            common,
        } => {
            let reg = open(&common)?;
            let a = actor(&reg, &common)?;
            reg.approve(&a, &name, version_no(&version)?)?;
            println!("{name}@{version} approved for production by {}", a.name);
            Ok(0)
        }
        RegistryCmd::Rollback { name, to, common } => {
            let reg = open(&common)?;
            let a = actor(&reg, &common)?;
            reg.rollback(&a, &name, version_no(&to)?)?;
            println!("{name}@{to} is back in production");
            Ok(0)
        }
        RegistryCmd::Demote {
            name,
            version,
            common,
        } => {
            let reg = open(&common)?;
            let a = actor(&reg, &common)?;
            let to = reg.demote(&a, &name, version_no(&version)?)?;
            println!("{name}@{version} demoted to {to}");
            Ok(0)
        }
        RegistryCmd::Archive {
            name,
            version,
            common,
        } => {
            let reg = open(&common)?;
            let a = actor(&reg, &common)?;
            reg.archive(&a, &name, version_no(&version)?)?;
            println!("{name}@{version} archived");
            Ok(0)
        }
        RegistryCmd::List { name, json, common } => {
            let reg = open(&common)?;
            let vs = reg.versions(name.as_deref())?;
            if json {
                println!("{}", serde_json::to_string_pretty(&vs)?);
            } else {
                for v in vs {
                    println!(
                        "{}@{}\t{}\t{}\tsha256:{}",
                        v.model, v.version, v.stage, v.registered_by, v.root
                    );
                }
            }
            Ok(0)
        }
        RegistryCmd::Show {
            name,
            version,
            stage,
            json,
            common,
        } => {
            let reg = open(&common)?;
            let Some(version) = version else {
                let vs = reg.versions(Some(&name))?;
                if vs.is_empty() {
                    bail!("no model '{name}' in the registry");
                }
                for v in vs {
                    println!(
                        "{}@{}\t{}\t{}",
                        v.model, v.version, v.stage, v.registered_by
                    );
                }
                return Ok(0);
            };
            let v = version_no(&version)?;
            let (ver, _, approvals) = reg.version(&name, v)?;
            let e = reg.evaluate(&name, v, &stage)?;
            if json {
                let out = serde_json::json!({"version": ver, "approvals": approvals,
                    "evaluated_for": stage, "allowed": e.allowed(), "chain": e.items, "report": e.report});
                println!("{}", serde_json::to_string_pretty(&out)?);
            } else {
                println!(
                    "{}@{}  stage {}  registered by {} at {}",
                    ver.model,
                    ver.version,
                    ver.stage,
                    ver.registered_by,
                    tunegate_registry::time::format(ver.registered_at)
                );
                println!(
                    "root sha256:{}  ({} files, {} inputs)",
                    ver.root,
                    ver.files.len(),
                    ver.inputs.len()
                );
                println!("evidence chain (evaluated for {stage}):");
                for i in &e.items {
                    println!(
                        "  {:<10} {:<18} {:<28} {}",
                        i.kind, i.status, i.name, i.detail
                    );
                }
                for a in &approvals {
                    println!(
                        "  approved by {} ({}) at {}",
                        a.approver,
                        a.role,
                        tunegate_registry::time::format(a.at)
                    );
                }
                println!(
                    "{stage}: {}",
                    if e.allowed() { "allowed" } else { "blocked" }
                );
                for f in &e.report.findings {
                    println!("  {} {} {}", f.id, f.severity, f.message);
                }
            }
            Ok(0)
        }
        RegistryCmd::Audit {
            verify,
            common,
            report,
        } => {
            let reg = open(&common)?;
            let entries = reg.audit()?;
            if verify {
                let r = tunegate_registry::audit::verify(&entries);
                let code = report.emit(&r, "")?;
                if !report.quiet {
                    eprintln!(
                        "tunegate: {} audit entries, head {}",
                        entries.len(),
                        r.subjects
                            .first()
                            .and_then(|s| s.digest.get("sha256"))
                            .cloned()
                            .unwrap_or_default()
                    );
                }
                return Ok(code);
            }
            for e in entries {
                println!(
                    "{}\t{}\t{}\t{}\t{}@{}\t{}",
                    e.seq,
                    tunegate_registry::time::format(e.ts),
                    e.actor,
                    e.action,
                    e.model,
                    e.version,
                    e.detail
                );
            }
            Ok(0)
        }
        RegistryCmd::Sync {
            mlflow,
            repair,
            common,
            report,
        } => {
            let reg = open(&common)?;
            let a = actor(&reg, &common)?;
            let out = tunegate_registry::mlflow::sync(&reg, &a, &mlflow, repair)?;
            if !report.quiet {
                eprintln!(
                    "tunegate: mirrored to {mlflow}: {} version(s) created, {} alias(es) set",
                    out.created, out.aliases_set
                );
            }
            match out.report {
                Some(r) => report.emit(&r, ""),
                None => Ok(0),
            }
        }
        RegistryCmd::Serve { listen, common } => {
            let reg = open(&common)?;
            tunegate_registry::server::run(reg, &listen)
                .with_context(|| format!("serving on {listen}"))?;
            Ok(0)
        }
        RegistryCmd::Principal { name, role, common } => {
            let reg = open(&common)?;
            let a = actor(&reg, &common)?;
            let token = reg.add_principal(&a, &name, &role)?;
            println!("{token}");
            eprintln!("tunegate: principal {name} ({role}); the token above is shown once, only its hash is stored");
            Ok(0)
        }
    }
}
