//! The PostgreSQL store behind the same trait, against a real server (`.ci/run` starts one and
//! sets `TUNEGATE_REGISTRY_PG_URL`; without it these tests print a note and skip): the whole
//! promotion flow, concurrent writers (threads and processes) losing nothing, a client killed
//! with SIGKILL mid-transaction, and audit tampering detected.
mod common;
use common::*;
use std::process::{Command, Stdio};
use tunegate_registry::registry::EvidenceFile;
use tunegate_registry::{Policy, Registry};

/// A fresh database on the test server; returns its URL.
fn fresh_db() -> Option<String> {
    let Ok(url) = std::env::var("TUNEGATE_REGISTRY_PG_URL") else {
        eprintln!("note: TUNEGATE_REGISTRY_PG_URL is not set; skipping the PostgreSQL store test (run .ci/run)");
        return None;
    };
    let mut c = postgres::Client::connect(&url, postgres::NoTls)
        .expect("TUNEGATE_REGISTRY_PG_URL is set but the server is unreachable");
    let mut raw = [0u8; 6];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut raw);
    let name = format!("tg_{}", hex::encode(raw));
    c.batch_execute(&format!("CREATE DATABASE {name}")).unwrap();
    let base = url.rsplit_once('/').unwrap().0;
    Some(format!("{base}/{name}"))
}

fn pg_registry(fx: &Fx, url: &str) -> Registry {
    let text = std::fs::read_to_string(fx.path("tunegate.toml"))
        .unwrap()
        .replace("store = \"reg.db\"", &format!("store_url = {url:?}"));
    Registry::open(Policy::from_toml(&text, fx.dir.path()).unwrap()).unwrap()
}

fn ev(paths: &[std::path::PathBuf]) -> Vec<EvidenceFile> {
    paths
        .iter()
        .map(|p| EvidenceFile {
            path: p.clone(),
            hint: None,
        })
        .collect()
}

fn consistent(reg: &Registry) -> usize {
    let vs = reg.versions(None).unwrap();
    let log = reg.audit().unwrap();
    let adds: Vec<(String, i64)> = log
        .iter()
        .filter(|a| a.action == "add")
        .map(|a| (a.model.clone(), a.version))
        .collect();
    let mut stored: Vec<(String, i64)> = vs.iter().map(|v| (v.model.clone(), v.version)).collect();
    let mut sorted = adds.clone();
    sorted.sort();
    stored.sort();
    assert_eq!(sorted, stored, "versions and their audit entries differ");
    let f = tunegate_registry::audit::verify(&log).findings;
    assert!(f.is_empty(), "{f:?}");
    vs.len()
}

#[test]
fn postgres_promotion_flow_and_tamper_detection() {
    let Some(url) = fresh_db() else { return };
    let fx = fixture();
    let reg = pg_registry(&fx, &url);
    let chain = fx.complete_chain("2099-01-01T00:00:00Z");
    reg.add(&trainer(), "m", &fx.model, &[], &ev(&chain[2..]))
        .unwrap();
    let e = reg.promote(&approver(), "m", 1, "production").unwrap();
    assert!(!e.allowed() && e.report.findings.iter().any(|f| f.id == "R001"));
    reg.attach(&trainer(), "m", 1, &ev(&chain[..2])).unwrap();
    assert!(reg
        .promote(&approver(), "m", 1, "production")
        .unwrap()
        .allowed());
    let admin = reg.local_actor("root").unwrap();
    let tok = reg
        .add_principal(&admin, "sam", "security-approver")
        .unwrap();
    assert_eq!(
        reg.authenticate(Some("sam"), &tok).unwrap().role,
        "security-approver"
    );
    assert_eq!(consistent(&reg), 1);
    let mut c = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    c.batch_execute("UPDATE audit SET actor = 'x' WHERE seq = 2")
        .unwrap();
    let f = tunegate_registry::audit::verify(&reg.audit().unwrap()).findings;
    assert!(f.iter().any(|f| f.id == "R011"), "{f:?}");
    c.batch_execute("DELETE FROM audit WHERE seq = 3").unwrap();
    let f = tunegate_registry::audit::verify(&reg.audit().unwrap()).findings;
    assert!(f.iter().any(|f| f.id == "R012"), "{f:?}");
}

#[test]
fn postgres_concurrent_threads_and_processes_lose_nothing() {
    let Some(url) = fresh_db() else { return };
    let fx = fixture();
    let _ = pg_registry(&fx, &url);
    std::thread::scope(|s| {
        for t in 0..4 {
            let (fx, url) = (&fx, &url);
            s.spawn(move || {
                let reg = pg_registry(fx, url);
                for _ in 0..8 {
                    reg.add(&trainer(), &format!("m{}", t % 2), &fx.model, &[], &[])
                        .unwrap();
                }
            });
        }
    });
    let kids: Vec<_> = (0..3).map(|_| child(&fx, &url, "6")).collect();
    for k in kids {
        assert!(k.wait_with_output().unwrap().status.success());
    }
    assert_eq!(consistent(&pg_registry(&fx, &url)), 32 + 18);
}

#[test]
fn postgres_client_killed_mid_transaction_leaves_a_consistent_store() {
    let Some(url) = fresh_db() else { return };
    let fx = fixture();
    pg_registry(&fx, &url)
        .add(&trainer(), "m", &fx.model, &[], &[])
        .unwrap();
    let mut k = child(&fx, &url, "hold");
    let mut r = std::io::BufReader::new(k.stdout.as_mut().unwrap());
    let mut line = String::new();
    while !line.contains("in-tx") {
        line.clear();
        assert!(
            std::io::BufRead::read_line(&mut r, &mut line).unwrap() > 0,
            "child exited early"
        );
    }
    k.kill().unwrap();
    k.wait().unwrap();
    // The server notices the dead client, rolls back and releases the lock.
    let reg = pg_registry(&fx, &url);
    reg.add(&trainer(), "m", &fx.model, &[], &[]).unwrap();
    assert!(reg.version("m", 999).is_err());
    assert_eq!(consistent(&reg), 2);
}

fn child(fx: &Fx, url: &str, mode: &str) -> std::process::Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "pg_child_writer",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("TG_PG_CHILD", mode)
        .env("TG_PG_URL", url)
        .env("TG_PG_DIR", fx.dir.path())
        .env("TG_REG_MODEL", &fx.model)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// Child-process writer: runs only when spawned by the tests above.
#[test]
fn pg_child_writer() {
    let Ok(mode) = std::env::var("TG_PG_CHILD") else {
        return;
    };
    let url = std::env::var("TG_PG_URL").unwrap();
    if mode == "hold" {
        let mut c = postgres::Client::connect(&url, postgres::NoTls).unwrap();
        let mut t = c.transaction().unwrap();
        t.batch_execute("LOCK TABLE audit IN EXCLUSIVE MODE; INSERT INTO versions VALUES ('m', 999, 'x', 'r', '[]', '[]', 'none', 'ghost', 0)").unwrap();
        println!("in-tx");
        std::thread::sleep(std::time::Duration::from_secs(120));
        return;
    }
    let text = std::fs::read_to_string(
        std::path::Path::new(&std::env::var("TG_PG_DIR").unwrap()).join("tunegate.toml"),
    )
    .unwrap()
    .replace("store = \"reg.db\"", &format!("store_url = {url:?}"));
    let reg = Registry::open(
        Policy::from_toml(
            &text,
            std::path::Path::new(&std::env::var("TG_PG_DIR").unwrap()),
        )
        .unwrap(),
    )
    .unwrap();
    let model = std::env::var("TG_REG_MODEL").unwrap();
    for _ in 0..mode.parse::<usize>().unwrap() {
        reg.add(&trainer(), "p", std::path::Path::new(&model), &[], &[])
            .unwrap();
    }
}
