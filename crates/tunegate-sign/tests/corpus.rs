//! Signatures made by OpenSSF `model_signing` v0.2.0 to v1.1.0 (`../shared/data/model-signing`,
//! key, certificate and keyless methods): every one verifies, and every one is rejected after a
//! one-byte change to any signed file. Skipped with a note when the folder is absent.
use std::path::{Path, PathBuf};
use tunegate_sign::checks;
use tunegate_sign::keys::load_public_key;
use tunegate_sign::verify::{verify_model, Trust, VerifyError, VerifyOptions};

fn corpus() -> Option<PathBuf> {
    // The repository's sibling `shared/` (a main checkout), or its parent's (a worktree).
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let candidates = [
        root.join("../shared/data/model-signing"),
        root.join("../../shared/data/model-signing"),
    ];
    let found = candidates.iter().find(|d| d.is_dir()).cloned();
    if found.is_none() {
        eprintln!(
            "note: {} absent; corpus test skipped",
            candidates[0].display()
        );
    }
    found
}

/// Copies `src/<name>` (except model.sig) into a temp dir; returns (tempdir, model dir, sig).
fn stage(src: &Path) -> (tempfile::TempDir, PathBuf, PathBuf) {
    let t = tempfile::tempdir().unwrap();
    let model = t.path().join(src.file_name().unwrap());
    std::fs::create_dir(&model).unwrap();
    for e in std::fs::read_dir(src).unwrap() {
        let e = e.unwrap();
        let n = e.file_name();
        if n == "model.sig" {
            continue;
        }
        std::fs::copy(e.path(), model.join(&n)).unwrap();
    }
    let sig = t.path().join("model.sig");
    std::fs::copy(src.join("model.sig"), &sig).unwrap();
    (t, model, sig)
}

/// The Fulcio leaf of a keyless golden: a certificate unrelated to the test CA.
fn keyless_leaf(dir: &Path) -> Vec<u8> {
    let b: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("v1.1.0-sigstore/model.sig")).unwrap())
            .unwrap();
    tunegate_sign::dsse::decode_b64(
        b["verificationMaterial"]["certificate"]["rawBytes"]
            .as_str()
            .unwrap(),
    )
    .unwrap()
}

fn flip_one_byte(p: &Path) {
    let mut b = std::fs::read(p).unwrap();
    let i = b.len() / 2;
    b[i] ^= 0x01;
    std::fs::write(p, b).unwrap();
}

#[test]
fn every_model_signing_signature_verifies_and_rejects_a_flipped_byte() {
    let Some(dir) = corpus() else { return };
    let key = load_public_key(&dir.join("keys/certificate/signing-key-pub.pem")).unwrap();
    let mut seen = 0;
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('v'))
        .collect();
    names.sort();
    for name in names {
        let (_t, folder, sig) = stage(&dir.join(&name));
        let single_file = name == "v0.3.1-elliptic-key" || name == "v1.0.0-elliptic-key";
        let model = if single_file {
            folder.join("signme-1")
        } else {
            folder.clone()
        };
        let trust = if name.ends_with("-sigstore") {
            Trust::BundledCertificateUnverified
        } else {
            // Key bundles name the key; certificate bundles carry it in their leaf.
            Trust::Key(key.clone())
        };
        let opts = VerifyOptions {
            trust,
            // v1.0.1 did not record its ignored path; later versions did (harmless twice).
            ignore_paths: vec![PathBuf::from("ignore-me")],
            ignore_git_paths: true,
            ignore_unsigned_files: false,
        };
        let ok = verify_model(&model, &sig, &opts).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(!ok.files_checked.is_empty(), "{name}");
        if name.contains("certificate") || name.contains("sigstore") {
            assert!(
                ok.notes
                    .iter()
                    .any(|n| n.contains(checks::CHAIN_NOT_VERIFIED.id)),
                "{name}: {:?}",
                ok.notes
            );
        }
        // One-byte change to each signed file, one at a time.
        for f in &ok.files_checked {
            let p = if f == "." {
                model.clone()
            } else {
                folder.join(f)
            };
            let orig = std::fs::read(&p).unwrap();
            flip_one_byte(&p);
            match verify_model(&model, &sig, &opts) {
                Err(VerifyError::Failed(fail)) => {
                    assert_eq!(fail.check, checks::FILE_CHANGED, "{name}/{f}: {fail}")
                }
                other => panic!("{name}/{f}: a flipped byte was not rejected: {other:?}"),
            }
            std::fs::write(&p, orig).unwrap();
        }
        // The wrong key is refused for the key and certificate methods.
        if !name.ends_with("-sigstore") {
            let other = tunegate_sign::keys::PrivateKey::generate(
                tunegate_sign::keys::KeyAlgorithm::EcdsaP384,
            );
            let o = VerifyOptions {
                trust: Trust::Key(tunegate_sign::keys::Signer::public_key(&other)),
                ..opts.clone()
            };
            match verify_model(&model, &sig, &o) {
                Err(VerifyError::Failed(f)) => assert!(
                    f.check == checks::KEY_MISMATCH || f.check == checks::SIGNATURE_INVALID,
                    "{name}: {f}"
                ),
                other => panic!("{name}: wrong key accepted: {other:?}"),
            }
        }
        // Certificate bundles also verify through their X.509 chain to the test root CA, and
        // fail against an anchor they do not chain to.
        if name.ends_with("-certificate") {
            let root = tunegate_sign::keys::pem_certificates(
                &std::fs::read_to_string(dir.join("keys/certificate/ca-cert.pem")).unwrap(),
            )
            .unwrap();
            let o = VerifyOptions {
                trust: Trust::Roots(root),
                ..opts.clone()
            };
            let ok =
                verify_model(&model, &sig, &o).unwrap_or_else(|e| panic!("{name} via chain: {e}"));
            assert!(
                ok.notes.iter().any(|n| n.contains("chain verified")),
                "{:?}",
                ok.notes
            );
            let stranger = keyless_leaf(&dir);
            let o = VerifyOptions {
                trust: Trust::Roots(vec![stranger]),
                ..opts.clone()
            };
            match verify_model(&model, &sig, &o) {
                Err(VerifyError::Failed(f)) => {
                    assert_eq!(f.check, checks::CHAIN_INVALID, "{name}: {f}")
                }
                other => panic!("{name}: chain to a stranger accepted: {other:?}"),
            }
        }
        seen += 1;
    }
    assert!(seen >= 13, "expected the 13 signed folders, saw {seen}");
}
