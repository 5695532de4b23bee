//! The hash-chained audit log. Entry `n` stores `prev` = hash of entry `n-1` (64 zeros for the
//! first) and `hash` = sha256 over a canonical JSON array of its own fields and `prev`; so an
//! edited entry no longer matches its hash, and a deleted, inserted or reordered entry breaks
//! the sequence or the link. Truncating the newest entries cannot be seen from inside the
//! store: compare the head hash `audit --verify` prints with a copy kept elsewhere.
use crate::checks;
use crate::store::{AuditEntry, Txn};
use crate::Result;
use sha2::{Digest, Sha256};
use tunegate_core::{Finding, Location, Report, Severity, Subject};

/// The `prev` of the first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The hash an entry must carry.
pub fn entry_hash(e: &AuditEntry) -> String {
    let canon =
        serde_json::json!([e.seq, e.ts, e.actor, e.action, e.model, e.version, e.detail, e.prev]);
    hex::encode(Sha256::digest(canon.to_string().as_bytes()))
}

/// Appends an entry inside the caller's transaction.
pub fn append(
    t: &mut dyn Txn,
    actor: &str,
    action: &str,
    model: &str,
    version: i64,
    detail: serde_json::Value,
) -> Result<AuditEntry> {
    let (seq, prev) = match t.audit_tail()? {
        Some((s, h)) => (s + 1, h),
        None => (1, GENESIS.to_string()),
    };
    let mut e = AuditEntry {
        seq,
        ts: crate::time::now(),
        actor: actor.into(),
        action: action.into(),
        model: model.into(),
        version,
        detail: detail.to_string(),
        prev,
        hash: String::new(),
    };
    e.hash = entry_hash(&e);
    t.insert_audit(&e)?;
    Ok(e)
}

/// Verifies the chain; the report's findings name each broken entry.
pub fn verify(entries: &[AuditEntry]) -> Report {
    let mut r = Report::new("registry-audit", Severity::High);
    let mut prev = GENESIS.to_string();
    let mut want_seq = 1;
    for e in entries {
        let loc = Location::file(format!("audit#{}", e.seq));
        if entry_hash(e) != e.hash {
            r.findings.push(Finding::new(
                &checks::AUDIT_HASH,
                format!(
                    "audit entry {} ({} {} v{} by {}) does not match its hash: it was edited",
                    e.seq, e.action, e.model, e.version, e.actor
                ),
                loc.clone(),
            ));
        }
        if e.seq != want_seq || e.prev != prev {
            r.findings.push(Finding::new(
                &checks::AUDIT_CHAIN,
                if e.seq != want_seq {
                    format!(
                        "audit entry {} follows entry {}: entries were deleted or reordered",
                        e.seq,
                        want_seq - 1
                    )
                } else {
                    format!(
                        "audit entry {} does not link to the hash of entry {}: an entry before it was changed, deleted or reordered",
                        e.seq,
                        want_seq - 1
                    )
                },
                loc,
            ));
        }
        prev = e.hash.clone();
        want_seq = e.seq + 1;
    }
    r.subjects.push(Subject::sha256("audit-head", prev));
    r.summary.records = Some(entries.len() as u64);
    r.finish();
    r
}
