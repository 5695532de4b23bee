//! Offline advisories: the shipped known-compromised list and OSV-format files.
//!
//! OSV (`https://ossf.github.io/osv-schema/`): an advisory has `id`, `summary`, and
//! `affected[]` entries with `package.{ecosystem,name}`, explicit `versions`, and `ranges` of
//! type `ECOSYSTEM` or `SEMVER` whose `events` (`introduced`, `fixed`, `last_affected`, `limit`)
//! are evaluated in order. Only the PyPI ecosystem is matched; versions compare under PEP 440.
//! `GIT` ranges cannot be evaluated against a version and are ignored.
use crate::pep440::{normalize_name, Version};
use crate::{Error, Result};
use serde::Deserialize;
use std::path::Path;
use tunegate_core::Severity;

/// The shipped known-compromised list (TOML).
pub const COMPROMISED_TOML: &str = include_str!("../data/compromised.toml");

/// One known-compromised entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Compromised {
    /// Always `PyPI` for now.
    pub ecosystem: String,
    /// Distribution name.
    pub name: String,
    /// Exact versions, or `*` for all.
    pub versions: Vec<String>,
    /// What happened.
    pub summary: String,
    /// Where it is documented.
    pub source: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CompromisedFile {
    release: Vec<Compromised>,
}

/// Loads the shipped list.
pub fn compromised() -> Vec<Compromised> {
    toml::from_str::<CompromisedFile>(COMPROMISED_TOML)
        .expect("shipped compromised.toml parses (tested)")
        .release
}

/// The entry naming `name==version`, if any.
pub fn find_compromised<'a>(
    list: &'a [Compromised],
    name: &str,
    version: Option<&str>,
) -> Option<&'a Compromised> {
    let n = normalize_name(name);
    list.iter().find(|c| {
        normalize_name(&c.name) == n
            && c.versions.iter().any(|v| {
                v == "*"
                    || version.is_some_and(|have| match (Version::parse(v), Version::parse(have)) {
                        (Some(a), Some(b)) => a == b,
                        _ => v == have,
                    })
            })
    })
}

/// One advisory, reduced to what matching needs.
#[derive(Debug, Clone)]
pub struct Advisory {
    /// OSV id (`GHSA-…`, `PYSEC-…`).
    pub id: String,
    /// Aliases (CVE ids).
    pub aliases: Vec<String>,
    /// One line.
    pub summary: String,
    /// Severity derived from `database_specific.severity` (high when absent).
    pub severity: Severity,
    /// Affected PyPI packages.
    pub affected: Vec<Affected>,
    /// The file it came from.
    pub file: String,
}

/// One `affected[]` entry for a PyPI package.
#[derive(Debug, Clone)]
pub struct Affected {
    /// Normalised name.
    pub name: String,
    /// Explicit versions.
    pub versions: Vec<String>,
    /// Ranges: each a list of (event kind, version).
    pub ranges: Vec<Vec<(String, String)>>,
}

impl Affected {
    /// True when `version` is affected.
    pub fn matches(&self, version: &str) -> bool {
        let pv = Version::parse(version);
        if self.versions.iter().any(|v| {
            v == version || matches!((Version::parse(v), &pv), (Some(a), Some(b)) if a == *b)
        }) {
            return true;
        }
        let Some(pv) = pv else { return false };
        for events in &self.ranges {
            let mut affected = false;
            let mut hit = false;
            for (kind, v) in events {
                let ev = if v == "0" {
                    None
                } else {
                    match Version::parse(v) {
                        Some(x) => Some(x),
                        None => continue,
                    }
                };
                match kind.as_str() {
                    "introduced" if ev.as_ref().is_none_or(|e| pv >= *e) => affected = true,
                    "fixed" | "limit" => {
                        if ev.as_ref().is_some_and(|e| pv >= *e) {
                            affected = false;
                        } else if affected {
                            hit = true;
                            break;
                        }
                    }
                    "last_affected" => {
                        if ev.as_ref().is_some_and(|e| pv > *e) {
                            affected = false;
                        } else if affected {
                            hit = true;
                            break;
                        }
                    }
                    _ => {}
                }
            }
            if hit || affected {
                return true;
            }
        }
        false
    }
}

fn sev(s: &str) -> Severity {
    match s.to_ascii_lowercase().as_str() {
        "critical" => Severity::Critical,
        "high" => Severity::High,
        "moderate" | "medium" => Severity::Medium,
        "low" => Severity::Low,
        _ => Severity::High,
    }
}

fn parse_one(v: &serde_json::Value, file: &str) -> std::result::Result<Advisory, String> {
    let id = v
        .get("id")
        .and_then(|x| x.as_str())
        .ok_or("advisory without an `id`")?
        .to_string();
    let mut affected = Vec::new();
    for a in v
        .get("affected")
        .and_then(|x| x.as_array())
        .ok_or(format!("{id}: no `affected` array"))?
    {
        let pkg = a
            .get("package")
            .ok_or(format!("{id}: affected[] without `package`"))?;
        let eco = pkg.get("ecosystem").and_then(|x| x.as_str()).unwrap_or("");
        if !eco.eq_ignore_ascii_case("PyPI") {
            continue;
        }
        let name = pkg
            .get("name")
            .and_then(|x| x.as_str())
            .ok_or(format!("{id}: package without `name`"))?;
        let versions = a
            .get("versions")
            .and_then(|x| x.as_array())
            .map(|vs| {
                vs.iter()
                    .filter_map(|s| s.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        let mut ranges = Vec::new();
        for r in a
            .get("ranges")
            .and_then(|x| x.as_array())
            .into_iter()
            .flatten()
        {
            let ty = r.get("type").and_then(|x| x.as_str()).unwrap_or("");
            if !matches!(ty, "ECOSYSTEM" | "SEMVER") {
                continue;
            }
            let mut evs = Vec::new();
            for e in r
                .get("events")
                .and_then(|x| x.as_array())
                .ok_or(format!("{id}: range without `events`"))?
            {
                if let Some(o) = e.as_object() {
                    for (k, val) in o {
                        if let Some(s) = val.as_str() {
                            evs.push((k.clone(), s.to_string()));
                        }
                    }
                }
            }
            ranges.push(evs);
        }
        affected.push(Affected {
            name: normalize_name(name),
            versions,
            ranges,
        });
    }
    Ok(Advisory {
        summary: v
            .get("summary")
            .or_else(|| v.get("details"))
            .and_then(|x| x.as_str())
            .unwrap_or("")
            .lines()
            .next()
            .unwrap_or("")
            .to_string(),
        aliases: v
            .get("aliases")
            .and_then(|x| x.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default(),
        severity: v
            .pointer("/database_specific/severity")
            .and_then(|x| x.as_str())
            .map_or(Severity::High, sev),
        id,
        affected,
        file: file.to_string(),
    })
}

/// Loads an OSV file: one advisory, an array of them, or `{"vulns": [...]}`; a folder loads
/// every `.json` file in it.
pub fn load_advisories(path: &Path) -> Result<Vec<Advisory>> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if meta.is_dir() {
        let mut files: Vec<_> = std::fs::read_dir(path)
            .map_err(|e| Error::io(path, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        files.sort();
        let mut out = Vec::new();
        for f in files {
            out.extend(load_advisories(&f)?);
        }
        return Ok(out);
    }
    let text = crate::error::read_text(path)?;
    let v: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| Error::parse(path, e.line() as u64, format!("not JSON: {e}")))?;
    let items: Vec<&serde_json::Value> = match &v {
        serde_json::Value::Array(a) => a.iter().collect(),
        o if o.get("vulns").is_some() => o["vulns"].as_array().into_iter().flatten().collect(),
        o => vec![o],
    };
    let file = path.display().to_string();
    items
        .into_iter()
        .map(|i| parse_one(i, &file).map_err(|m| Error::parse(path, 0, format!("OSV: {m}"))))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_list_parses_and_names_sources() {
        let l = compromised();
        assert!(l.len() >= 3);
        assert!(l
            .iter()
            .all(|c| !c.source.is_empty() && c.ecosystem == "PyPI"));
        assert!(find_compromised(&l, "Ultralytics", Some("8.3.41")).is_some());
        assert!(find_compromised(&l, "ultralytics", Some("8.3.46")).is_some());
        assert!(find_compromised(&l, "ultralytics", Some("8.3.40")).is_none());
        assert!(find_compromised(&l, "ultralytics", Some("8.3.43")).is_none());
        assert!(find_compromised(&l, "torch_triton", Some("9")).is_none());
        assert!(find_compromised(&l, "TorchTriton", None).is_some());
    }

    fn aff(events: &[(&str, &str)], versions: &[&str]) -> Affected {
        Affected {
            name: "x".into(),
            versions: versions.iter().map(|s| s.to_string()).collect(),
            ranges: vec![events
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect()],
        }
    }

    #[test]
    fn ranges() {
        let a = aff(&[("introduced", "0"), ("fixed", "2.1.0")], &[]);
        assert!(a.matches("2.0.9"));
        assert!(a.matches("2.1.0rc1"));
        assert!(!a.matches("2.1.0"));
        let b = aff(
            &[("introduced", "1.0"), ("last_affected", "1.4.post1")],
            &[],
        );
        assert!(!b.matches("0.9"));
        assert!(b.matches("1.4"));
        assert!(b.matches("1.4.post1"));
        assert!(!b.matches("1.4.post2"));
        let c = aff(
            &[
                ("introduced", "1.0"),
                ("fixed", "1.1"),
                ("introduced", "2.0"),
                ("fixed", "2.2"),
            ],
            &[],
        );
        assert!(c.matches("1.0.5") && !c.matches("1.5") && c.matches("2.1") && !c.matches("3"));
        let d = aff(&[], &["1!3.0"]);
        assert!(d.matches("1!3.0.0") && !d.matches("3.0"));
        let e = aff(&[("introduced", "2.0")], &[]);
        assert!(e.matches("99") && !e.matches("1.9"));
    }
}
