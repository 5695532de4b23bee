//! SHA-256 helpers.
use sha2::{Digest as _, Sha256};
use std::io::Read;
use std::path::Path;

/// Hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Hex SHA-256 and size of a file, streamed in 1 MiB blocks.
pub fn sha256_file(path: &Path) -> crate::Result<(String, u64)> {
    let mut f = std::fs::File::open(path).map_err(|e| crate::Error::io(path, e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let k = f.read(&mut buf).map_err(|e| crate::Error::io(path, e))?;
        if k == 0 {
            break;
        }
        h.update(&buf[..k]);
        n += k as u64;
    }
    Ok((hex::encode(h.finalize()), n))
}
