//! MLflow mirror against a real, pinned `mlflow` server (sqlite backend, loopback) from the
//! interop venv (`TUNEGATE_INTEROP_PY`, made by `.ci/run`). Without that variable the test
//! prints a note and skips; with it, a missing or failing mlflow fails the test.
mod common;
use common::*;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};

/// The mlflow server in its own process group; dropping it kills the whole group (uvicorn
/// workers and job runners included), so no process outlives the test.
struct Server(Child);
impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.0.id())])
            .status();
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn py(python: &str, code: &str) -> String {
    let out = Command::new(python).args(["-c", code]).output().unwrap();
    assert!(
        out.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn sync_promote_and_detect_a_moved_alias() {
    let Ok(python) = std::env::var("TUNEGATE_INTEROP_PY") else {
        eprintln!(
            "note: TUNEGATE_INTEROP_PY is not set; skipping the MLflow interop test (run .ci/run)"
        );
        return;
    };
    let fx = fixture();
    let d = fx.dir.path();
    let port = free_port();
    let mlflow_bin = std::path::Path::new(&python).with_file_name("mlflow");
    let srv = Server(
        Command::new(&mlflow_bin)
            .args([
                "server",
                "--backend-store-uri",
                &format!("sqlite:///{}", d.join("mlflow.db").display()),
                "--artifacts-destination",
                &d.join("mlartifacts").display().to_string(),
                "--host",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--workers",
                "1",
            ])
            .current_dir(d)
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(d.join("mlflow.log")).unwrap())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "{}: {e} (is mlflow installed in the interop venv?)",
                    mlflow_bin.display()
                )
            }),
    );
    let url = format!("http://127.0.0.1:{port}");
    // Wait for the server (startup, not a timed assertion: up to 120 s of polling).
    let mut up = false;
    for _ in 0..240 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            let probe = Command::new(&python).args(["-c", &format!(
                "import urllib.request;print(urllib.request.urlopen('{url}/health').read().decode())")]).output().unwrap();
            if probe.status.success() {
                up = true;
                break;
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    assert!(
        up,
        "mlflow server did not start: {}",
        std::fs::read_to_string(d.join("mlflow.log")).unwrap_or_default()
    );

    let reg = fx.registry();
    let chain = fx.complete_chain("2099-01-01T00:00:00Z");
    let ev: Vec<_> = chain
        .iter()
        .map(|p| tunegate_registry::EvidenceFile {
            path: p.clone(),
            hint: None,
        })
        .collect();
    reg.add(&trainer(), "llama-lora", &fx.model, &[], &ev)
        .unwrap();
    reg.add(&trainer(), "llama-lora", &fx.model, &[], &ev[4..])
        .unwrap();
    let out = tunegate_registry::mlflow::sync(&reg, &admin(), &url, false).unwrap();
    assert_eq!(out.created, 2);
    assert!(out.report.unwrap().findings.is_empty());
    // Promote v1 to production in tunegate; the next sync sets the alias.
    assert!(reg
        .promote(&approver(), "llama-lora", 1, "production")
        .unwrap()
        .allowed());
    let out = tunegate_registry::mlflow::sync(&reg, &admin(), &url, false).unwrap();
    assert_eq!(out.created, 0, "a second sync creates nothing");
    assert_eq!(out.aliases_set, 1);
    let client = format!("import mlflow; c = mlflow.MlflowClient('{url}');");
    let mv = py(&python, &format!("{client} v = c.get_model_version_by_alias('llama-lora', 'production'); print(v.version, v.tags['tunegate.version'], v.tags['tunegate.stage'], v.tags['tunegate.verdict.production'], v.tags['tunegate.subject.sha256'])"));
    let root = reg.version("llama-lora", 1).unwrap().0.root;
    let parts: Vec<&str> = mv.split(' ').collect();
    assert_eq!(
        &parts[1..],
        &["1", "production", "allowed", root.as_str()],
        "{mv}"
    );
    let prod_mv = parts[0].to_string();
    let ev_tag = py(&python, &format!("{client} print(c.get_model_version('llama-lora', '{prod_mv}').tags['tunegate.evidence.signature'])"));
    assert!(
        ev_tag.ends_with(":ok") && ev_tag.len() == 64 + 3,
        "{ev_tag}"
    );
    // Searching by tunegate tag works from MLflow's side.
    let found = py(&python, &format!("{client} print(len(c.search_model_versions(\"name='llama-lora' and tags.`tunegate.verdict.production` = 'blocked'\")))"));
    assert_eq!(found, "1");
    // Someone moves the alias behind tunegate's back: the sync reports drift (R014) ...
    let other = if prod_mv == "1" { "2" } else { "1" };
    py(
        &python,
        &format!("{client} c.set_registered_model_alias('llama-lora', 'production', '{other}')"),
    );
    let out = tunegate_registry::mlflow::sync(&reg, &admin(), &url, false).unwrap();
    let r = out.report.unwrap();
    assert_eq!(r.findings.len(), 1, "{:?}", r.findings);
    assert_eq!(r.findings[0].id, "R014");
    assert!(
        r.findings[0].message.contains("tunegate llama-lora@2")
            && r.findings[0].message.contains("promoted llama-lora@1"),
        "{}",
        r.findings[0].message
    );
    // ... and --repair moves it back.
    let out = tunegate_registry::mlflow::sync(&reg, &admin(), &url, true).unwrap();
    assert_eq!(out.report.unwrap().findings.len(), 1);
    let back = py(
        &python,
        &format!(
            "{client} print(c.get_model_version_by_alias('llama-lora', 'production').version)"
        ),
    );
    assert_eq!(back, prod_mv);
    assert!(tunegate_registry::mlflow::sync(&reg, &admin(), &url, false)
        .unwrap()
        .report
        .unwrap()
        .findings
        .is_empty());
    assert!(
        reg.audit()
            .unwrap()
            .iter()
            .filter(|a| a.action == "mlflow-sync")
            .count()
            == 5
    );
    drop(srv);
}
