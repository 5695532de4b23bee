//! The embedded store: one SQLite file in WAL mode. Writers take the write lock at the start
//! of their transaction (`BEGIN IMMEDIATE`) and wait up to 30 s for it, so concurrent processes
//! serialise instead of failing, and a killed writer's transaction simply never commits.
use crate::error::{Error, Result};
use crate::store::{Approval, AuditEntry, Evidence, Principal, Store, Txn, Version};
use rusqlite::{params, Connection, OptionalExtension, Transaction, TransactionBehavior};
use std::path::Path;
use std::sync::Mutex;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS versions (
  model TEXT NOT NULL, version INTEGER NOT NULL, path TEXT NOT NULL, root TEXT NOT NULL,
  files TEXT NOT NULL, inputs TEXT NOT NULL, stage TEXT NOT NULL,
  registered_by TEXT NOT NULL, registered_at INTEGER NOT NULL,
  PRIMARY KEY (model, version));
CREATE TABLE IF NOT EXISTS evidence (
  id INTEGER PRIMARY KEY, model TEXT NOT NULL, version INTEGER NOT NULL, name TEXT NOT NULL,
  hint TEXT, sha256 TEXT NOT NULL, body BLOB NOT NULL, attached_by TEXT NOT NULL,
  attached_at INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS evidence_version ON evidence (model, version);
CREATE TABLE IF NOT EXISTS approvals (
  model TEXT NOT NULL, version INTEGER NOT NULL, approver TEXT NOT NULL, role TEXT NOT NULL,
  at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS principals (
  name TEXT PRIMARY KEY, role TEXT NOT NULL, token_sha256 TEXT);
CREATE TABLE IF NOT EXISTS audit (
  seq INTEGER PRIMARY KEY, ts INTEGER NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL,
  model TEXT NOT NULL, version INTEGER NOT NULL, detail TEXT NOT NULL, prev TEXT NOT NULL,
  hash TEXT NOT NULL);
";

/// A SQLite-file store.
pub struct SqliteStore {
    conn: Mutex<Connection>,
}

impl SqliteStore {
    /// Opens (creating if needed) the store file.
    pub fn open(path: &Path) -> Result<Self> {
        let conn =
            Connection::open(path).map_err(|e| Error::Store(format!("{}: {e}", path.display())))?;
        conn.busy_timeout(std::time::Duration::from_secs(30))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        // Schema creation is itself a write; serialise it like any other.
        conn.execute_batch(&format!("BEGIN IMMEDIATE;{SCHEMA}COMMIT;"))
            .map_err(|e| Error::Store(format!("{}: {e}", path.display())))?;
        Ok(SqliteStore {
            conn: Mutex::new(conn),
        })
    }
}

impl Store for SqliteStore {
    fn write(&self, f: &mut dyn FnMut(&mut dyn Txn) -> Result<()>) -> Result<()> {
        let mut conn = self
            .conn
            .lock()
            .map_err(|_| Error::Store("connection lock poisoned".into()))?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut t = SqliteTxn { tx };
        f(&mut t)?;
        t.tx.commit()?;
        Ok(())
    }

    fn read(&self, f: &mut dyn FnMut(&mut dyn Txn) -> Result<()>) -> Result<()> {
        let mut conn = self
            .conn
            .lock()
            .map_err(|_| Error::Store("connection lock poisoned".into()))?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Deferred)?;
        let mut t = SqliteTxn { tx };
        f(&mut t)
    }
}

struct SqliteTxn<'a> {
    tx: Transaction<'a>,
}

fn pairs(s: String) -> Vec<(String, String)> {
    serde_json::from_str(&s).unwrap_or_default()
}

fn row_version(r: &rusqlite::Row<'_>) -> rusqlite::Result<Version> {
    Ok(Version {
        model: r.get(0)?,
        version: r.get(1)?,
        path: r.get(2)?,
        root: r.get(3)?,
        files: pairs(r.get(4)?),
        inputs: pairs(r.get(5)?),
        stage: r.get(6)?,
        registered_by: r.get(7)?,
        registered_at: r.get(8)?,
    })
}

const VCOLS: &str =
    "model, version, path, root, files, inputs, stage, registered_by, registered_at";

impl Txn for SqliteTxn<'_> {
    fn max_version(&mut self, model: &str) -> Result<i64> {
        Ok(self.tx.query_row(
            "SELECT COALESCE(MAX(version), 0) FROM versions WHERE model = ?1",
            [model],
            |r| r.get(0),
        )?)
    }

    fn insert_version(&mut self, v: &Version) -> Result<()> {
        self.tx.execute(
            &format!("INSERT INTO versions ({VCOLS}) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9)"),
            params![
                v.model,
                v.version,
                v.path,
                v.root,
                serde_json::to_string(&v.files).unwrap_or_default(),
                serde_json::to_string(&v.inputs).unwrap_or_default(),
                v.stage,
                v.registered_by,
                v.registered_at
            ],
        )?;
        Ok(())
    }

    fn version(&mut self, model: &str, version: i64) -> Result<Option<Version>> {
        Ok(self
            .tx
            .query_row(
                &format!("SELECT {VCOLS} FROM versions WHERE model = ?1 AND version = ?2"),
                params![model, version],
                row_version,
            )
            .optional()?)
    }

    fn versions(&mut self, model: Option<&str>) -> Result<Vec<Version>> {
        let mut st = self.tx.prepare(&format!(
            "SELECT {VCOLS} FROM versions WHERE ?1 IS NULL OR model = ?1 ORDER BY model, version"
        ))?;
        let rows = st.query_map([model], row_version)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn set_stage(&mut self, model: &str, version: i64, stage: &str) -> Result<()> {
        self.tx.execute(
            "UPDATE versions SET stage = ?3 WHERE model = ?1 AND version = ?2",
            params![model, version, stage],
        )?;
        Ok(())
    }

    fn insert_evidence(&mut self, model: &str, version: i64, e: &Evidence) -> Result<i64> {
        self.tx.execute(
            "INSERT INTO evidence (model, version, name, hint, sha256, body, attached_by, attached_at)
             VALUES (?1,?2,?3,?4,?5,?6,?7,?8)",
            params![model, version, e.name, e.hint, e.sha256, e.body, e.attached_by, e.attached_at],
        )?;
        Ok(self.tx.last_insert_rowid())
    }

    fn evidence(&mut self, model: &str, version: i64) -> Result<Vec<Evidence>> {
        let mut st = self.tx.prepare(
            "SELECT id, name, hint, sha256, body, attached_by, attached_at FROM evidence
             WHERE model = ?1 AND version = ?2 ORDER BY id",
        )?;
        let rows = st.query_map(params![model, version], |r| {
            Ok(Evidence {
                id: r.get(0)?,
                name: r.get(1)?,
                hint: r.get(2)?,
                sha256: r.get(3)?,
                body: r.get(4)?,
                attached_by: r.get(5)?,
                attached_at: r.get(6)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn insert_approval(&mut self, model: &str, version: i64, a: &Approval) -> Result<()> {
        self.tx.execute(
            "INSERT INTO approvals (model, version, approver, role, at) VALUES (?1,?2,?3,?4,?5)",
            params![model, version, a.approver, a.role, a.at],
        )?;
        Ok(())
    }

    fn approvals(&mut self, model: &str, version: i64) -> Result<Vec<Approval>> {
        let mut st = self.tx.prepare(
            "SELECT approver, role, at FROM approvals WHERE model = ?1 AND version = ?2 ORDER BY rowid",
        )?;
        let rows = st.query_map(params![model, version], |r| {
            Ok(Approval {
                approver: r.get(0)?,
                role: r.get(1)?,
                at: r.get(2)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn put_principal(&mut self, p: &Principal) -> Result<()> {
        self.tx.execute(
            "INSERT OR REPLACE INTO principals (name, role, token_sha256) VALUES (?1,?2,?3)",
            params![p.name, p.role, p.token_sha256],
        )?;
        Ok(())
    }

    fn principal(&mut self, name: &str) -> Result<Option<Principal>> {
        Ok(self
            .tx
            .query_row(
                "SELECT name, role, token_sha256 FROM principals WHERE name = ?1",
                [name],
                |r| {
                    Ok(Principal {
                        name: r.get(0)?,
                        role: r.get(1)?,
                        token_sha256: r.get(2)?,
                    })
                },
            )
            .optional()?)
    }

    fn principals(&mut self) -> Result<Vec<Principal>> {
        let mut st = self
            .tx
            .prepare("SELECT name, role, token_sha256 FROM principals ORDER BY name")?;
        let rows = st.query_map([], |r| {
            Ok(Principal {
                name: r.get(0)?,
                role: r.get(1)?,
                token_sha256: r.get(2)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn audit_tail(&mut self) -> Result<Option<(i64, String)>> {
        Ok(self
            .tx
            .query_row(
                "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?)
    }

    fn insert_audit(&mut self, e: &AuditEntry) -> Result<()> {
        self.tx.execute(
            "INSERT INTO audit (seq, ts, actor, action, model, version, detail, prev, hash)
             VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9)",
            params![e.seq, e.ts, e.actor, e.action, e.model, e.version, e.detail, e.prev, e.hash],
        )?;
        Ok(())
    }

    fn audit(&mut self) -> Result<Vec<AuditEntry>> {
        let mut st = self.tx.prepare(
            "SELECT seq, ts, actor, action, model, version, detail, prev, hash FROM audit ORDER BY seq",
        )?;
        let rows = st.query_map([], |r| {
            Ok(AuditEntry {
                seq: r.get(0)?,
                ts: r.get(1)?,
                actor: r.get(2)?,
                action: r.get(3)?,
                model: r.get(4)?,
                version: r.get(5)?,
                detail: r.get(6)?,
                prev: r.get(7)?,
                hash: r.get(8)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}
