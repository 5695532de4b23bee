//! The store through the registry: separation of duties, audit chain tampering, concurrent
//! writers (threads and processes), and a writer killed with SIGKILL mid-transaction.
mod common;
use common::*;
use std::io::BufRead;
use std::process::{Command, Stdio};
use tunegate_registry::audit;
use tunegate_registry::registry::EvidenceFile;
use tunegate_registry::{Error, Registry};

fn ev(paths: &[std::path::PathBuf]) -> Vec<EvidenceFile> {
    paths
        .iter()
        .map(|p| EvidenceFile {
            path: p.clone(),
            hint: None,
        })
        .collect()
}

fn ids(entries: &[tunegate_registry::store::AuditEntry]) -> Vec<String> {
    audit::verify(entries)
        .findings
        .iter()
        .map(|f| format!("{} {}", f.id, f.message))
        .collect()
}

#[test]
fn full_flow_with_separation_of_duties_and_rollback() {
    let fx = fixture();
    let reg = fx.registry();
    let chain = fx.complete_chain("2099-01-01T00:00:00Z");
    // Registered by the trainer with part of the evidence.
    let v1 = reg
        .add(&trainer(), "llama-lora", &fx.model, &[], &ev(&chain[2..]))
        .unwrap();
    assert_eq!(v1.version, 1);
    // Trainers cannot promote to production or approve.
    assert!(matches!(
        reg.promote(&trainer(), "llama-lora", 1, "production"),
        Err(Error::Forbidden(_))
    ));
    assert!(matches!(
        reg.approve(&trainer(), "llama-lora", 1),
        Err(Error::Forbidden(_))
    ));
    // Staging is fine; production is refused for missing evidence and audited as refused.
    assert!(reg
        .promote(&trainer(), "llama-lora", 1, "staging")
        .unwrap()
        .allowed());
    let e = reg
        .promote(&approver(), "llama-lora", 1, "production")
        .unwrap();
    assert!(!e.allowed());
    assert!(e
        .report
        .findings
        .iter()
        .any(|f| f.id == "R001" && f.message.contains("dataset")));
    reg.attach(&trainer(), "llama-lora", 1, &ev(&chain[..2]))
        .unwrap();
    // A security-approver who registered a version cannot approve it.
    let sam_version = reg
        .add(
            &Actor_("sam", "admin"),
            "llama-lora",
            &fx.model,
            &[],
            &ev(&chain),
        )
        .unwrap();
    assert_eq!(sam_version.version, 2);
    let e = reg.approve(&approver(), "llama-lora", 2).unwrap_err();
    assert!(e.to_string().contains("separation of duties"), "{e}");
    // The approver promotes v1: its promotion is its approval.
    let e = reg
        .promote(&approver(), "llama-lora", 1, "production")
        .unwrap();
    assert!(e.allowed(), "{:?}", e.report.findings);
    assert_eq!(reg.version("llama-lora", 1).unwrap().0.stage, "production");
    // A v3 by the trainer replaces v1 in production; rollback puts v1 back in one step.
    reg.add(&trainer(), "llama-lora", &fx.model, &[], &ev(&chain))
        .unwrap();
    assert!(reg
        .promote(&approver(), "llama-lora", 3, "production")
        .unwrap()
        .allowed());
    assert_eq!(reg.version("llama-lora", 1).unwrap().0.stage, "archived");
    assert!(
        matches!(
            reg.rollback(&approver(), "llama-lora", 2),
            Err(Error::Input(_))
        ),
        "v2 was never in production"
    );
    reg.rollback(&approver(), "llama-lora", 1).unwrap();
    assert_eq!(reg.version("llama-lora", 1).unwrap().0.stage, "production");
    assert_eq!(reg.version("llama-lora", 3).unwrap().0.stage, "staging");
    let log = reg.audit().unwrap();
    let actions: Vec<&str> = log.iter().map(|a| a.action.as_str()).collect();
    assert!(
        actions.contains(&"promote-refused")
            && actions.contains(&"rollback")
            && actions.contains(&"approve")
    );
    assert!(ids(&log).is_empty());
}

#[allow(non_snake_case)]
fn Actor_(name: &str, role: &str) -> tunegate_registry::Actor {
    tunegate_registry::Actor {
        name: name.into(),
        role: role.into(),
    }
}

#[test]
fn principals_tokens_are_hashed_and_local_user_is_bootstrap_admin() {
    let fx = fixture();
    let reg = fx.registry();
    // No principals yet: the local user is a single-user admin.
    let me = reg.local_actor("alice").unwrap();
    assert_eq!(me.role, "admin");
    let token = reg.add_principal(&me, "alice", "admin").unwrap();
    let t2 = reg.add_principal(&me, "sam", "security-approver").unwrap();
    assert!(matches!(
        reg.local_actor("mallory"),
        Err(Error::Forbidden(_))
    ));
    assert_eq!(
        reg.authenticate(Some("sam"), &t2).unwrap().role,
        "security-approver"
    );
    assert!(matches!(
        reg.authenticate(Some("sam"), &token),
        Err(Error::Unauthenticated(_))
    ));
    assert!(matches!(
        reg.authenticate(None, "tgr_guess"),
        Err(Error::Unauthenticated(_))
    ));
    // Only the hash is in the store file.
    drop(reg);
    let raw = std::fs::read(fx.path("reg.db")).unwrap();
    let hay = String::from_utf8_lossy(&raw);
    assert!(!hay.contains(&token) && !hay.contains(&t2));
    let c = rusqlite::Connection::open(fx.path("reg.db")).unwrap();
    let h: String = c
        .query_row(
            "SELECT token_sha256 FROM principals WHERE name='sam'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(h, tunegate_registry::registry::token_hash(&t2));
}

fn populated() -> (Fx, std::path::PathBuf) {
    let fx = fixture();
    let reg = fx.registry();
    for _ in 0..3 {
        reg.add(&trainer(), "m", &fx.model, &[], &[]).unwrap();
    }
    reg.promote(&trainer(), "m", 2, "staging").unwrap();
    assert_eq!(reg.audit().unwrap().len(), 4);
    assert!(ids(&reg.audit().unwrap()).is_empty());
    let db = fx.path("reg.db");
    (fx, db)
}

fn tamper(db: &std::path::Path, sql: &str) -> Vec<String> {
    let c = rusqlite::Connection::open(db).unwrap();
    c.execute_batch(sql).unwrap();
    drop(c);
    let reg = Registry::open(
        tunegate_registry::Policy::from_toml(
            &format!("[registry]\nstore = {:?}", db.display().to_string()),
            std::path::Path::new("."),
        )
        .unwrap(),
    )
    .unwrap();
    ids(&reg.audit().unwrap())
}

#[test]
fn audit_verify_detects_an_edited_entry() {
    let (_fx, db) = populated();
    let f = tamper(&db, "UPDATE audit SET actor = 'someone-else' WHERE seq = 2");
    assert!(
        f.iter().any(|m| m.starts_with("R011 audit entry 2")),
        "{f:?}"
    );
}

#[test]
fn audit_verify_detects_a_recomputed_edit_by_the_broken_link() {
    // An attacker who edits entry 2 and recomputes its hash breaks entry 3's link.
    let (_fx, db) = populated();
    let c = rusqlite::Connection::open(&db).unwrap();
    let mut e: tunegate_registry::store::AuditEntry = c
        .query_row("SELECT seq, ts, actor, action, model, version, detail, prev, hash FROM audit WHERE seq = 2", [], |r| {
            Ok(tunegate_registry::store::AuditEntry { seq: r.get(0)?, ts: r.get(1)?, actor: r.get(2)?, action: r.get(3)?, model: r.get(4)?, version: r.get(5)?, detail: r.get(6)?, prev: r.get(7)?, hash: r.get(8)? })
        })
        .unwrap();
    e.actor = "someone-else".into();
    e.hash = audit::entry_hash(&e);
    let f = tamper(
        &db,
        &format!(
            "UPDATE audit SET actor = 'someone-else', hash = '{}' WHERE seq = 2",
            e.hash
        ),
    );
    assert!(!f.iter().any(|m| m.starts_with("R011")), "{f:?}");
    assert!(
        f.iter()
            .any(|m| m.starts_with("R012 audit entry 3 does not link")),
        "{f:?}"
    );
}

#[test]
fn audit_verify_detects_a_deleted_entry() {
    let (_fx, db) = populated();
    let f = tamper(&db, "DELETE FROM audit WHERE seq = 2");
    assert!(
        f.iter()
            .any(|m| m.starts_with("R012 audit entry 3 follows entry 1")),
        "{f:?}"
    );
}

#[test]
fn audit_verify_detects_reordered_entries() {
    let (_fx, db) = populated();
    // Swap the contents of entries 2 and 3 (sequence numbers stay in place).
    let f = tamper(
        &db,
        "UPDATE audit SET seq = -2 WHERE seq = 2; UPDATE audit SET seq = 2 WHERE seq = 3; UPDATE audit SET seq = 3 WHERE seq = -2;",
    );
    assert!(
        f.iter().any(|m| m.starts_with("R011 audit entry 2")),
        "{f:?}"
    );
    assert!(f.iter().any(|m| m.starts_with("R012")), "{f:?}");
}

#[test]
fn concurrent_threads_lose_nothing() {
    let fx = fixture();
    let policy = fx.policy();
    const THREADS: usize = 6;
    const EACH: usize = 8;
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let policy = policy.clone();
            let model = fx.model.clone();
            s.spawn(move || {
                // One connection per thread, like separate server workers.
                let reg = Registry::open(policy).unwrap();
                for _ in 0..EACH {
                    reg.add(&trainer(), &format!("m{}", t % 2), &model, &[], &[])
                        .unwrap();
                }
            });
        }
    });
    check_consistent(&fx.registry(), THREADS * EACH);
}

/// Every version has exactly one `add` audit entry and vice versa; numbers are dense; the
/// chain verifies.
fn check_consistent(reg: &Registry, at_least: usize) -> usize {
    let vs = reg.versions(None).unwrap();
    let log = reg.audit().unwrap();
    assert!(vs.len() >= at_least, "{} versions < {at_least}", vs.len());
    let adds: std::collections::BTreeSet<(String, i64)> = log
        .iter()
        .filter(|a| a.action == "add")
        .map(|a| (a.model.clone(), a.version))
        .collect();
    let stored: std::collections::BTreeSet<(String, i64)> =
        vs.iter().map(|v| (v.model.clone(), v.version)).collect();
    assert_eq!(
        adds.len(),
        log.iter().filter(|a| a.action == "add").count(),
        "duplicate add entries"
    );
    assert_eq!(adds, stored);
    for m in stored
        .iter()
        .map(|(m, _)| m)
        .collect::<std::collections::BTreeSet<_>>()
    {
        let n: Vec<i64> = vs
            .iter()
            .filter(|v| &v.model == m)
            .map(|v| v.version)
            .collect();
        assert_eq!(
            n,
            (1..=n.len() as i64).collect::<Vec<_>>(),
            "version numbers of {m} are not dense"
        );
    }
    assert!(ids(&log).is_empty(), "{:?}", ids(&log));
    vs.len()
}

/// Child-process writer: runs only when spawned by the tests below.
#[test]
fn child_writer() {
    let Ok(mode) = std::env::var("TG_REG_CHILD") else {
        return;
    };
    let db = std::env::var("TG_REG_DB").unwrap();
    let model = std::env::var("TG_REG_MODEL").unwrap();
    let policy = tunegate_registry::Policy::from_toml(
        &format!("[registry]\nstore = {db:?}"),
        std::path::Path::new("."),
    )
    .unwrap();
    let reg = Registry::open(policy).unwrap();
    let n: usize = mode.parse().unwrap_or(0);
    if mode == "hold" {
        // Take the write lock, write a version without its audit entry, and wait to be killed.
        let c = rusqlite::Connection::open(&db).unwrap();
        c.execute_batch("BEGIN IMMEDIATE; INSERT INTO versions VALUES ('m', 999, 'x', 'r', '[]', '[]', 'none', 'ghost', 0);").unwrap();
        println!("in-tx");
        std::thread::sleep(std::time::Duration::from_secs(120));
        return;
    }
    for i in 0..(if n == 0 { usize::MAX } else { n }) {
        reg.add(&trainer(), "m", std::path::Path::new(&model), &[], &[])
            .unwrap();
        if n == 0 && i == 0 {
            println!("writing");
        }
    }
}

fn child(fx: &Fx, mode: &str) -> std::process::Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_writer", "--nocapture", "--test-threads=1"])
        .env("TG_REG_CHILD", mode)
        .env("TG_REG_DB", fx.path("reg.db"))
        .env("TG_REG_MODEL", &fx.model)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn wait_for_line(c: &mut std::process::Child, want: &str) {
    let out = c.stdout.as_mut().unwrap();
    let mut r = std::io::BufReader::new(out);
    let mut line = String::new();
    loop {
        line.clear();
        assert!(
            r.read_line(&mut line).unwrap() > 0,
            "child exited before printing {want}"
        );
        if line.contains(want) {
            return;
        }
    }
}

#[test]
fn concurrent_processes_lose_nothing() {
    let fx = fixture();
    let _ = fx.registry(); // create the schema
    let kids: Vec<_> = (0..4).map(|_| child(&fx, "10")).collect();
    for k in kids {
        let out = k.wait_with_output().unwrap();
        assert!(out.status.success());
    }
    assert_eq!(check_consistent(&fx.registry(), 40), 40);
}

#[test]
fn sigkill_mid_transaction_leaves_a_consistent_store() {
    let fx = fixture();
    let reg = fx.registry();
    reg.add(&trainer(), "m", &fx.model, &[], &[]).unwrap();
    drop(reg);
    // A writer killed while it holds the write lock with a half-written change.
    let mut k = child(&fx, "hold");
    wait_for_line(&mut k, "in-tx");
    k.kill().unwrap(); // SIGKILL on Unix
    k.wait().unwrap();
    let reg = fx.registry();
    assert!(
        reg.version("m", 999).is_err(),
        "the uncommitted version must not survive"
    );
    check_consistent(&reg, 1);
    // The lock died with it: writing works again.
    reg.add(&trainer(), "m", &fx.model, &[], &[]).unwrap();
    drop(reg);
    // Writers killed at arbitrary points of a busy write loop.
    for _ in 0..3 {
        let mut k = child(&fx, "0");
        wait_for_line(&mut k, "writing");
        std::thread::sleep(std::time::Duration::from_millis(150));
        k.kill().unwrap();
        k.wait().unwrap();
    }
    let n = check_consistent(&fx.registry(), 5);
    assert!(n >= 5);
}
