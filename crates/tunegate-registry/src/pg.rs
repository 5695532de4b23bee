//! The shared-server store: PostgreSQL, for many writers behind `registry serve` or many CI
//! jobs. Each write transaction first takes an exclusive lock on the audit table, so changes
//! (and their audit entries) are serialised exactly like SQLite's single writer: version
//! numbers stay dense and the hash chain linear. Reads run at REPEATABLE READ (one snapshot).
use crate::error::{Error, Result};
use crate::store::{Approval, AuditEntry, Evidence, Principal, Store, Txn, Version};
use postgres::{Client, NoTls, Row, Transaction};
use std::sync::Mutex;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS versions (
  model TEXT NOT NULL, version BIGINT NOT NULL, path TEXT NOT NULL, root TEXT NOT NULL,
  files TEXT NOT NULL, inputs TEXT NOT NULL, stage TEXT NOT NULL,
  registered_by TEXT NOT NULL, registered_at BIGINT NOT NULL,
  PRIMARY KEY (model, version));
CREATE TABLE IF NOT EXISTS evidence (
  id BIGSERIAL PRIMARY KEY, model TEXT NOT NULL, version BIGINT NOT NULL, name TEXT NOT NULL,
  hint TEXT, sha256 TEXT NOT NULL, body BYTEA NOT NULL, attached_by TEXT NOT NULL,
  attached_at BIGINT NOT NULL);
CREATE INDEX IF NOT EXISTS evidence_version ON evidence (model, version);
CREATE TABLE IF NOT EXISTS approvals (
  id BIGSERIAL PRIMARY KEY, model TEXT NOT NULL, version BIGINT NOT NULL,
  approver TEXT NOT NULL, role TEXT NOT NULL, at BIGINT NOT NULL);
CREATE TABLE IF NOT EXISTS principals (
  name TEXT PRIMARY KEY, role TEXT NOT NULL, token_sha256 TEXT);
CREATE TABLE IF NOT EXISTS audit (
  seq BIGINT PRIMARY KEY, ts BIGINT NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL,
  model TEXT NOT NULL, version BIGINT NOT NULL, detail TEXT NOT NULL, prev TEXT NOT NULL,
  hash TEXT NOT NULL);
";

fn pe(e: postgres::Error) -> Error {
    Error::Store(format!("postgres: {e}"))
}

/// A PostgreSQL store.
pub struct PgStore {
    client: Mutex<Client>,
}

impl PgStore {
    /// Connects (`postgresql://user@host:port/db`, no TLS: use a local socket or loopback) and
    /// creates the tables if needed.
    pub fn connect(url: &str) -> Result<Self> {
        let mut client = Client::connect(url, NoTls).map_err(pe)?;
        let mut t = client.transaction().map_err(pe)?;
        // Serialise concurrent first-time schema creation.
        t.execute("SELECT pg_advisory_xact_lock(7461726)", &[])
            .map_err(pe)?;
        t.batch_execute(SCHEMA).map_err(pe)?;
        t.commit().map_err(pe)?;
        Ok(PgStore {
            client: Mutex::new(client),
        })
    }
}

impl Store for PgStore {
    fn write(&self, f: &mut dyn FnMut(&mut dyn Txn) -> Result<()>) -> Result<()> {
        let mut c = self
            .client
            .lock()
            .map_err(|_| Error::Store("connection lock poisoned".into()))?;
        let mut tx = c.transaction().map_err(pe)?;
        tx.batch_execute("LOCK TABLE audit IN EXCLUSIVE MODE")
            .map_err(pe)?;
        let mut t = PgTxn { tx };
        f(&mut t)?;
        t.tx.commit().map_err(pe)
    }

    fn read(&self, f: &mut dyn FnMut(&mut dyn Txn) -> Result<()>) -> Result<()> {
        let mut c = self
            .client
            .lock()
            .map_err(|_| Error::Store("connection lock poisoned".into()))?;
        let mut tx = c
            .build_transaction()
            .isolation_level(postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .map_err(pe)?;
        tx.batch_execute("SELECT 1").map_err(pe)?;
        let mut t = PgTxn { tx };
        f(&mut t)
    }
}

struct PgTxn<'a> {
    tx: Transaction<'a>,
}

fn pairs(s: String) -> Vec<(String, String)> {
    serde_json::from_str(&s).unwrap_or_default()
}

fn row_version(r: &Row) -> Version {
    Version {
        model: r.get(0),
        version: r.get(1),
        path: r.get(2),
        root: r.get(3),
        files: pairs(r.get(4)),
        inputs: pairs(r.get(5)),
        stage: r.get(6),
        registered_by: r.get(7),
        registered_at: r.get(8),
    }
}

fn row_principal(r: &Row) -> Principal {
    Principal {
        name: r.get(0),
        role: r.get(1),
        token_sha256: r.get(2),
    }
}

const VCOLS: &str =
    "model, version, path, root, files, inputs, stage, registered_by, registered_at";

impl Txn for PgTxn<'_> {
    fn max_version(&mut self, model: &str) -> Result<i64> {
        let r = self
            .tx
            .query_one(
                "SELECT COALESCE(MAX(version), 0)::BIGINT FROM versions WHERE model = $1",
                &[&model],
            )
            .map_err(pe)?;
        Ok(r.get(0))
    }

    fn insert_version(&mut self, v: &Version) -> Result<()> {
        let files = serde_json::to_string(&v.files).unwrap_or_default();
        let inputs = serde_json::to_string(&v.inputs).unwrap_or_default();
        self.tx
            .execute(
                &format!("INSERT INTO versions ({VCOLS}) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9)"),
                &[
                    &v.model,
                    &v.version,
                    &v.path,
                    &v.root,
                    &files,
                    &inputs,
                    &v.stage,
                    &v.registered_by,
                    &v.registered_at,
                ],
            )
            .map_err(pe)?;
        Ok(())
    }

    fn version(&mut self, model: &str, version: i64) -> Result<Option<Version>> {
        let r = self
            .tx
            .query_opt(
                &format!("SELECT {VCOLS} FROM versions WHERE model = $1 AND version = $2"),
                &[&model, &version],
            )
            .map_err(pe)?;
        Ok(r.as_ref().map(row_version))
    }

    fn versions(&mut self, model: Option<&str>) -> Result<Vec<Version>> {
        let rows = self
            .tx
            .query(
                &format!("SELECT {VCOLS} FROM versions WHERE $1::TEXT IS NULL OR model = $1 ORDER BY model, version"),
                &[&model],
            )
            .map_err(pe)?;
        Ok(rows.iter().map(row_version).collect())
    }

    fn set_stage(&mut self, model: &str, version: i64, stage: &str) -> Result<()> {
        self.tx
            .execute(
                "UPDATE versions SET stage = $3 WHERE model = $1 AND version = $2",
                &[&model, &version, &stage],
            )
            .map_err(pe)?;
        Ok(())
    }

    fn insert_evidence(&mut self, model: &str, version: i64, e: &Evidence) -> Result<i64> {
        let r = self
            .tx
            .query_one(
                "INSERT INTO evidence (model, version, name, hint, sha256, body, attached_by, attached_at)
                 VALUES ($1,$2,$3,$4,$5,$6,$7,$8) RETURNING id",
                &[&model, &version, &e.name, &e.hint, &e.sha256, &e.body, &e.attached_by, &e.attached_at],
            )
            .map_err(pe)?;
        Ok(r.get(0))
    }

    fn evidence(&mut self, model: &str, version: i64) -> Result<Vec<Evidence>> {
        let rows = self
            .tx
            .query(
                "SELECT id, name, hint, sha256, body, attached_by, attached_at FROM evidence
                 WHERE model = $1 AND version = $2 ORDER BY id",
                &[&model, &version],
            )
            .map_err(pe)?;
        Ok(rows
            .iter()
            .map(|r| Evidence {
                id: r.get(0),
                name: r.get(1),
                hint: r.get(2),
                sha256: r.get(3),
                body: r.get(4),
                attached_by: r.get(5),
                attached_at: r.get(6),
            })
            .collect())
    }

    fn insert_approval(&mut self, model: &str, version: i64, a: &Approval) -> Result<()> {
        self.tx
            .execute(
                "INSERT INTO approvals (model, version, approver, role, at) VALUES ($1,$2,$3,$4,$5)",
                &[&model, &version, &a.approver, &a.role, &a.at],
            )
            .map_err(pe)?;
        Ok(())
    }

    fn approvals(&mut self, model: &str, version: i64) -> Result<Vec<Approval>> {
        let rows = self
            .tx
            .query(
                "SELECT approver, role, at FROM approvals WHERE model = $1 AND version = $2 ORDER BY id",
                &[&model, &version],
            )
            .map_err(pe)?;
        Ok(rows
            .iter()
            .map(|r| Approval {
                approver: r.get(0),
                role: r.get(1),
                at: r.get(2),
            })
            .collect())
    }

    fn put_principal(&mut self, p: &Principal) -> Result<()> {
        self.tx
            .execute(
                "INSERT INTO principals (name, role, token_sha256) VALUES ($1,$2,$3)
                 ON CONFLICT (name) DO UPDATE SET role = EXCLUDED.role, token_sha256 = EXCLUDED.token_sha256",
                &[&p.name, &p.role, &p.token_sha256],
            )
            .map_err(pe)?;
        Ok(())
    }

    fn principal(&mut self, name: &str) -> Result<Option<Principal>> {
        let r = self
            .tx
            .query_opt(
                "SELECT name, role, token_sha256 FROM principals WHERE name = $1",
                &[&name],
            )
            .map_err(pe)?;
        Ok(r.as_ref().map(row_principal))
    }

    fn principals(&mut self) -> Result<Vec<Principal>> {
        let rows = self
            .tx
            .query(
                "SELECT name, role, token_sha256 FROM principals ORDER BY name",
                &[],
            )
            .map_err(pe)?;
        Ok(rows.iter().map(row_principal).collect())
    }

    fn audit_tail(&mut self) -> Result<Option<(i64, String)>> {
        let r = self
            .tx
            .query_opt("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1", &[])
            .map_err(pe)?;
        Ok(r.map(|r| (r.get(0), r.get(1))))
    }

    fn insert_audit(&mut self, e: &AuditEntry) -> Result<()> {
        self.tx
            .execute(
                "INSERT INTO audit (seq, ts, actor, action, model, version, detail, prev, hash)
                 VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9)",
                &[
                    &e.seq, &e.ts, &e.actor, &e.action, &e.model, &e.version, &e.detail, &e.prev,
                    &e.hash,
                ],
            )
            .map_err(pe)?;
        Ok(())
    }

    fn audit(&mut self) -> Result<Vec<AuditEntry>> {
        let rows = self
            .tx
            .query(
                "SELECT seq, ts, actor, action, model, version, detail, prev, hash FROM audit ORDER BY seq",
                &[],
            )
            .map_err(pe)?;
        Ok(rows
            .iter()
            .map(|r| AuditEntry {
                seq: r.get(0),
                ts: r.get(1),
                actor: r.get(2),
                action: r.get(3),
                model: r.get(4),
                version: r.get(5),
                detail: r.get(6),
                prev: r.get(7),
                hash: r.get(8),
            })
            .collect())
    }
}
