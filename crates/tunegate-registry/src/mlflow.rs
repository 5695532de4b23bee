//! Mirror to an MLflow Model Registry (REST API 2.0). tunegate stays authoritative: each
//! version becomes an MLflow model version carrying `tunegate.*` tags (subject digest,
//! evidence digests, stage, production verdict), each promotion an alias (`staging`,
//! `production`). An alias that points elsewhere than tunegate promoted is reported as drift
//! (R014) and, with `repair`, moved back.
use crate::checks;
use crate::error::{Error, Result};
use crate::registry::Registry;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use tunegate_core::{Finding, Location, Report, Severity, Subject};

/// What one sync did.
#[derive(Debug, Clone, Default)]
pub struct SyncOutcome {
    /// MLflow versions created.
    pub created: usize,
    /// Aliases set (new or repaired).
    pub aliases_set: usize,
    /// Drift findings (and any other notes) as a report.
    pub report: Option<Report>,
}

struct Api {
    base: String,
    client: Client<HttpConnector, Full<Bytes>>,
}

fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

impl Api {
    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<(u16, Value)> {
        let url = format!("{}/api/2.0/mlflow/{path}", self.base);
        let mut b = hyper::Request::builder()
            .method(method)
            .uri(&url)
            .header("content-type", "application/json");
        if let Ok(u) = url.parse::<hyper::Uri>() {
            if let Some(a) = u.authority() {
                b = b.header("host", a.as_str());
            }
        }
        let req = b
            .body(Full::new(Bytes::from(
                body.map(|v| v.to_string()).unwrap_or_default(),
            )))
            .map_err(|e| Error::Input(format!("{url}: {e}")))?;
        let fut = async {
            let resp = self
                .client
                .request(req)
                .await
                .map_err(|e| Error::Input(format!("MLflow at {}: {e}", self.base)))?;
            let status = resp.status().as_u16();
            let bytes = Limited::new(resp.into_body(), 8 << 20)
                .collect()
                .await
                .map_err(|e| {
                    Error::Input(format!("MLflow at {}: reading response: {e}", self.base))
                })?
                .to_bytes();
            let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            Ok::<_, Error>((status, v))
        };
        tokio::time::timeout(std::time::Duration::from_secs(60), fut)
            .await
            .map_err(|_| Error::Input(format!("MLflow at {}: no answer in 60 s", self.base)))?
    }

    async fn ok(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value> {
        let (s, v) = self.call(method, path, body).await?;
        if s >= 300 {
            return Err(Error::Input(format!(
                "MLflow {method} {path}: HTTP {s}: {}",
                v.get("message").and_then(Value::as_str).unwrap_or("")
            )));
        }
        Ok(v)
    }
}

fn tag(v: &Value, key: &str) -> Option<String> {
    v.get("tags")?.as_array()?.iter().find_map(|t| {
        (t.get("key")?.as_str()? == key).then(|| t.get("value")?.as_str().map(str::to_string))?
    })
}

/// Mirrors every tunegate version to the MLflow server at `base` (`http://host:port`).
pub fn sync(reg: &Registry, actor: &crate::Actor, base: &str, repair: bool) -> Result<SyncOutcome> {
    let base = base.trim_end_matches('/').to_string();
    if !base.starts_with("http://") {
        return Err(Error::Input(format!(
            "--mlflow {base}: only http:// URLs are supported (put TLS in a local proxy)"
        )));
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Store(format!("runtime: {e}")))?;
    let client = Client::builder(hyper_util::rt::TokioExecutor::new()).build_http();
    let api = Api {
        base: base.clone(),
        client,
    };
    rt.block_on(sync_async(reg, actor, &api, repair))
}

async fn sync_async(
    reg: &Registry,
    actor: &crate::Actor,
    api: &Api,
    repair: bool,
) -> Result<SyncOutcome> {
    let mut out = SyncOutcome::default();
    let mut report = Report::new("registry-mlflow", Severity::High);
    let versions = reg.versions(None)?;
    let mut models: BTreeMap<String, Vec<crate::store::Version>> = BTreeMap::new();
    for v in versions {
        models.entry(v.model.clone()).or_default().push(v);
    }
    for (name, vs) in &models {
        let (s, _) = api
            .call(
                "GET",
                &format!("registered-models/get?name={}", enc(name)),
                None,
            )
            .await?;
        if s == 404 {
            api.ok(
                "POST",
                "registered-models/create",
                Some(json!({"name": name,
                "tags": [{"key": "tunegate.managed", "value": "true"}]})),
            )
            .await?;
        } else if s >= 300 {
            return Err(Error::Input(format!(
                "MLflow registered-models/get {name}: HTTP {s}"
            )));
        }
        // tunegate version -> MLflow version, from our own tags.
        let found = api
            .ok(
                "GET",
                &format!(
                    "model-versions/search?filter={}&max_results=1000",
                    enc(&format!("name='{}'", name.replace('\'', "\\'")))
                ),
                None,
            )
            .await?;
        let mut mirror: BTreeMap<i64, String> = BTreeMap::new();
        let mut back: BTreeMap<String, i64> = BTreeMap::new();
        for mv in found
            .get("model_versions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let (Some(t), Some(mvv)) = (
                tag(mv, "tunegate.version"),
                mv.get("version").and_then(Value::as_str),
            ) {
                if let Ok(t) = t.parse::<i64>() {
                    mirror.insert(t, mvv.to_string());
                    back.insert(mvv.to_string(), t);
                }
            }
        }
        for v in vs {
            let verdict = reg.evaluate(name, v.version, "production")?;
            let mut tags = vec![
                ("tunegate.version".to_string(), v.version.to_string()),
                ("tunegate.subject.sha256".into(), v.root.clone()),
                ("tunegate.stage".into(), v.stage.clone()),
                ("tunegate.registered_by".into(), v.registered_by.clone()),
                (
                    "tunegate.verdict.production".into(),
                    if verdict.allowed() {
                        "allowed"
                    } else {
                        "blocked"
                    }
                    .into(),
                ),
            ];
            let mut by_kind: BTreeMap<String, Vec<String>> = BTreeMap::new();
            for it in &verdict.items {
                by_kind
                    .entry(it.kind.replace(':', "."))
                    .or_default()
                    .push(format!("{}:{}", it.sha256, it.status));
            }
            for (k, list) in by_kind {
                let mut s = list.join(",");
                s.truncate(5000);
                tags.push((format!("tunegate.evidence.{k}"), s));
            }
            let mv = match mirror.get(&v.version) {
                Some(mv) => {
                    for (k, val) in &tags {
                        api.ok(
                            "POST",
                            "model-versions/set-tag",
                            Some(json!({"name": name,
                            "version": mv, "key": k, "value": val})),
                        )
                        .await?;
                    }
                    mv.clone()
                }
                None => {
                    let run = api
                        .ok(
                            "POST",
                            "runs/create",
                            Some(json!({"experiment_id": "0",
                        "run_name": format!("tunegate {name}@{}", v.version)})),
                        )
                        .await?;
                    let run_id = run
                        .pointer("/run/info/run_id")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string();
                    let art = run
                        .pointer("/run/info/artifact_uri")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string();
                    let created = api.ok("POST", "model-versions/create", Some(json!({"name": name,
                        "source": format!("{art}/model"), "run_id": run_id,
                        "description": format!("mirror of tunegate {name}@{} (sha256:{})", v.version, v.root),
                        "tags": tags.iter().map(|(k, v)| json!({"key": k, "value": v})).collect::<Vec<_>>()}))).await?;
                    out.created += 1;
                    let mv = created
                        .pointer("/model_version/version")
                        .and_then(Value::as_str)
                        .ok_or_else(|| {
                            Error::Input("MLflow model-versions/create returned no version".into())
                        })?
                        .to_string();
                    back.insert(mv.clone(), v.version);
                    mv
                }
            };
            mirror.insert(v.version, mv);
        }
        for alias in ["staging", "production"] {
            // tunegate's choice: the newest version in that stage.
            let want = vs
                .iter()
                .filter(|v| v.stage == alias)
                .map(|v| v.version)
                .max();
            let (s, cur) = api
                .call(
                    "GET",
                    &format!("registered-models/alias?name={}&alias={alias}", enc(name)),
                    None,
                )
                .await?;
            let current = if s < 300 {
                cur.pointer("/model_version/version")
                    .and_then(Value::as_str)
                    .map(str::to_string)
            } else {
                None
            };
            let want_mv = want.and_then(|w| mirror.get(&w).cloned());
            match (&current, &want_mv) {
                (None, Some(w)) => {
                    api.ok(
                        "POST",
                        "registered-models/alias",
                        Some(json!({"name": name, "alias": alias, "version": w})),
                    )
                    .await?;
                    out.aliases_set += 1;
                }
                (Some(c), w) if Some(c) != w.as_ref() => {
                    let points = match back.get(c) {
                        Some(t) => format!("MLflow version {c} (tunegate {name}@{t})"),
                        None => format!("MLflow version {c}, which tunegate did not register"),
                    };
                    let wanted = match want {
                        Some(t) => format!("tunegate promoted {name}@{t} to {alias}"),
                        None => format!("tunegate has no {name} version in {alias}"),
                    };
                    report.findings.push(Finding::new(
                        &checks::MLFLOW_DRIFT,
                        format!(
                            "MLflow alias '{alias}' of {name} points to {points}, but {wanted}{}",
                            if repair { "; moved back" } else { "" }
                        ),
                        Location::file(format!("{name}#{alias}")),
                    ));
                    if repair {
                        match w {
                            Some(w) => {
                                api.ok(
                                    "POST",
                                    "registered-models/alias",
                                    Some(json!({"name": name, "alias": alias, "version": w})),
                                )
                                .await?
                            }
                            None => {
                                api.ok(
                                    "DELETE",
                                    "registered-models/alias",
                                    Some(json!({"name": name, "alias": alias})),
                                )
                                .await?
                            }
                        };
                        out.aliases_set += 1;
                    }
                }
                _ => {}
            }
        }
        report.subjects.push(Subject::sha256(
            name.clone(),
            vs.last().map(|v| v.root.clone()).unwrap_or_default(),
        ));
    }
    report.summary.records = Some(models.values().map(Vec::len).sum::<usize>() as u64);
    report.finish();
    reg.record(
        actor,
        "mlflow-sync",
        json!({"url": api.base, "created": out.created, "aliases_set": out.aliases_set,
               "drift": report.findings.len(), "repair": repair}),
    )?;
    out.report = Some(report);
    Ok(out)
}
