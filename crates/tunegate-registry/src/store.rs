//! Storage behind a trait, so the embedded SQLite file and a shared server database are
//! interchangeable. Every mutation runs inside one write transaction together with its audit
//! entry: either both are stored or neither.
use crate::error::Result;
use serde::{Deserialize, Serialize};

/// A registered model version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Version {
    /// Model name.
    pub model: String,
    /// Version number, 1-based, per model.
    pub version: i64,
    /// The path it was registered from (informational).
    pub path: String,
    /// Model-signing (OMS) root digest of the files.
    pub root: String,
    /// Per-file (relative name, sha256).
    pub files: Vec<(String, String)>,
    /// Recorded inputs (dataset and base-model files): (name, sha256).
    pub inputs: Vec<(String, String)>,
    /// `none`, `staging`, `production` or `archived`.
    pub stage: String,
    /// Principal that registered it.
    pub registered_by: String,
    /// Seconds since the epoch.
    pub registered_at: i64,
}

/// Evidence attached to a version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    /// Store id.
    pub id: i64,
    /// File name it was attached from.
    pub name: String,
    /// Kind the user named (`base=FILE`), if any.
    pub hint: Option<String>,
    /// sha256 of the bundle bytes.
    pub sha256: String,
    /// The bundle bytes.
    pub body: Vec<u8>,
    /// Who attached it.
    pub attached_by: String,
    /// When (seconds).
    pub attached_at: i64,
}

/// A principal: a person or service with one role and, optionally, an API token (stored as its
/// sha256 only).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Principal {
    /// Name.
    pub name: String,
    /// `trainer`, `security-approver` or `admin`.
    pub role: String,
    /// sha256 hex of the token.
    pub token_sha256: Option<String>,
}

/// An approval of a version for production.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Approval {
    /// Who approved.
    pub approver: String,
    /// The approver's role at the time.
    pub role: String,
    /// When.
    pub at: i64,
}

/// One audit-log entry; `hash` chains it to `prev` (see [`crate::audit`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// 1-based sequence number.
    pub seq: i64,
    /// Seconds since the epoch.
    pub ts: i64,
    /// Acting principal.
    pub actor: String,
    /// What happened (`add`, `evidence`, `promote`, ...).
    pub action: String,
    /// Model concerned (may be empty).
    pub model: String,
    /// Version concerned (0 if none).
    pub version: i64,
    /// Details as JSON text.
    pub detail: String,
    /// Hash of the previous entry (64 zeros for the first).
    pub prev: String,
    /// sha256 over this entry's fields and `prev`.
    pub hash: String,
}

/// Operations inside one transaction.
pub trait Txn {
    /// The highest version number of `model` (0 if none).
    fn max_version(&mut self, model: &str) -> Result<i64>;
    /// Inserts a new version.
    fn insert_version(&mut self, v: &Version) -> Result<()>;
    /// One version.
    fn version(&mut self, model: &str, version: i64) -> Result<Option<Version>>;
    /// Versions of one model, or of all models, in (model, version) order.
    fn versions(&mut self, model: Option<&str>) -> Result<Vec<Version>>;
    /// Sets a version's stage.
    fn set_stage(&mut self, model: &str, version: i64, stage: &str) -> Result<()>;
    /// Attaches evidence; returns its id.
    fn insert_evidence(&mut self, model: &str, version: i64, e: &Evidence) -> Result<i64>;
    /// A version's evidence in attachment order.
    fn evidence(&mut self, model: &str, version: i64) -> Result<Vec<Evidence>>;
    /// Records an approval.
    fn insert_approval(&mut self, model: &str, version: i64, a: &Approval) -> Result<()>;
    /// A version's approvals.
    fn approvals(&mut self, model: &str, version: i64) -> Result<Vec<Approval>>;
    /// Inserts or replaces a principal.
    fn put_principal(&mut self, p: &Principal) -> Result<()>;
    /// One principal.
    fn principal(&mut self, name: &str) -> Result<Option<Principal>>;
    /// All principals.
    fn principals(&mut self) -> Result<Vec<Principal>>;
    /// The last audit entry's (seq, hash).
    fn audit_tail(&mut self) -> Result<Option<(i64, String)>>;
    /// Appends an audit entry.
    fn insert_audit(&mut self, e: &AuditEntry) -> Result<()>;
    /// All audit entries in sequence order.
    fn audit(&mut self) -> Result<Vec<AuditEntry>>;
}

/// A registry store.
pub trait Store: Send + Sync {
    /// Runs `f` in a write transaction (serialised against other writers, committed when `f`
    /// returns `Ok`, rolled back otherwise).
    fn write(&self, f: &mut dyn FnMut(&mut dyn Txn) -> Result<()>) -> Result<()>;
    /// Runs `f` in a read transaction (a consistent snapshot).
    fn read(&self, f: &mut dyn FnMut(&mut dyn Txn) -> Result<()>) -> Result<()>;
}
