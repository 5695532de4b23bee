//! Signing: a model (folder or single file) into an OMS bundle, or any statement.
use crate::bundle::Bundle;
use crate::dsse::{Envelope, IN_TOTO_PAYLOAD_TYPE};
use crate::error::{Error, Result};
use crate::keys::Signer;
use crate::manifest::{self, Manifest, WalkError, WalkOptions};
use crate::statement::Statement;
use std::path::Path;

/// Signs an in-toto statement into a key-method Sigstore bundle.
pub fn sign_statement(statement: &Statement, signer: &dyn Signer) -> Result<Bundle> {
    let env = Envelope::sign(IN_TOTO_PAYLOAD_TYPE, &statement.to_payload(), signer)?;
    Ok(Bundle::for_key(env, &signer.public_key()))
}

/// Walks, hashes and signs a model. `opts.ignore_paths` are relative to the model root and are
/// recorded in the signature (put the signature's own path there when it lies inside the
/// model). An empty model is refused: a signature over nothing proves nothing.
pub fn sign_model(
    model: &Path,
    signer: &dyn Signer,
    opts: &WalkOptions,
) -> Result<(Bundle, Manifest)> {
    let m = manifest::build(model, opts).map_err(|e| match e {
        WalkError::Input(e) => e,
        WalkError::Symlink(m) => Error::Model(format!(
            "{m} (pass --allow-symlinks to hash symlinked files through the link)"
        )),
        WalkError::Special(m) | WalkError::Escape(m) | WalkError::TooMany(m) => Error::Model(m),
    })?;
    if m.resources.is_empty() {
        return Err(Error::Model(format!(
            "{}: nothing to sign (no files left after ignores)",
            model.display()
        )));
    }
    let b = sign_statement(&m.to_statement(), signer)?;
    Ok((b, m))
}
