//! One test per way a signed model can be tampered with: each must fail closed with its own
//! check id, and the untouched model must verify.
use base64::Engine as _;
use serde_json::json;
use std::path::{Path, PathBuf};
use tunegate_core::CheckInfo;
use tunegate_sign::bundle::Bundle;
use tunegate_sign::checks;
use tunegate_sign::keys::{KeyAlgorithm, PrivateKey, Signer};
use tunegate_sign::manifest::{Method, WalkOptions};
use tunegate_sign::sign::{sign_model, sign_statement};
use tunegate_sign::verify::{verify_model, Trust, VerifyError, VerifyOptions};

struct Fixture {
    _t: tempfile::TempDir,
    model: PathBuf,
    sig: PathBuf,
    key: PrivateKey,
}

fn fixture(method: Method) -> Fixture {
    let t = tempfile::tempdir().unwrap();
    let model = t.path().join("model");
    for (n, b) in [
        ("config.json", &b"{}"[..]),
        ("weights/a.bin", &[1u8; 100][..]),
        ("weights/b.bin", &[2u8; 50][..]),
    ] {
        let p = model.join(n);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, b).unwrap();
    }
    let key = PrivateKey::generate(KeyAlgorithm::EcdsaP256);
    let (bundle, _) = sign_model(
        &model,
        &key,
        &WalkOptions {
            method,
            ..Default::default()
        },
    )
    .unwrap();
    let sig = t.path().join("model.sig");
    std::fs::write(&sig, bundle.to_json()).unwrap();
    Fixture {
        _t: t,
        model,
        sig,
        key,
    }
}

fn opts(key: &PrivateKey) -> VerifyOptions {
    VerifyOptions {
        trust: Trust::Key(key.public_key()),
        ignore_paths: vec![],
        ignore_git_paths: true,
        ignore_unsigned_files: false,
    }
}

fn expect(f: &Fixture, model: &Path, o: &VerifyOptions, check: CheckInfo) -> String {
    match verify_model(model, &f.sig, o) {
        Err(VerifyError::Failed(fail)) => {
            assert_eq!(fail.check, check, "{fail} {:?}", fail.details);
            format!("{fail} {:?}", fail.details)
        }
        other => panic!("expected {}, got {other:?}", check.id),
    }
}

fn rewrite_bundle(f: &Fixture, edit: impl FnOnce(&mut serde_json::Value)) {
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&f.sig).unwrap()).unwrap();
    edit(&mut v);
    std::fs::write(&f.sig, serde_json::to_vec(&v).unwrap()).unwrap();
}

#[test]
fn untouched_model_verifies_files_and_shards() {
    for m in [Method::Files, Method::Shards(16)] {
        let f = fixture(m);
        let ok = verify_model(&f.model, &f.sig, &opts(&f.key)).unwrap();
        assert_eq!(
            ok.files_checked,
            ["config.json", "weights/a.bin", "weights/b.bin"]
        );
    }
}

#[test]
fn changed_byte() {
    for m in [Method::Files, Method::Shards(16)] {
        let f = fixture(m);
        std::fs::write(
            f.model.join("weights/a.bin"),
            [1u8; 99].iter().chain(&[0u8]).copied().collect::<Vec<_>>(),
        )
        .unwrap();
        let msg = expect(&f, &f.model, &opts(&f.key), checks::FILE_CHANGED);
        assert!(msg.contains("weights/a.bin"), "{msg}");
    }
}

#[test]
fn added_file() {
    let f = fixture(Method::Files);
    std::fs::write(f.model.join("weights/extra.bin"), b"x").unwrap();
    let msg = expect(&f, &f.model, &opts(&f.key), checks::FILE_ADDED);
    assert!(msg.contains("weights/extra.bin"), "{msg}");
    // ... tolerated only when asked.
    let o = VerifyOptions {
        ignore_unsigned_files: true,
        ..opts(&f.key)
    };
    assert!(verify_model(&f.model, &f.sig, &o).is_ok());
    // A top-level .git is ignored (as model_signing does); a nested .gitignore is not.
    std::fs::remove_file(f.model.join("weights/extra.bin")).unwrap();
    std::fs::create_dir(f.model.join(".git")).unwrap();
    std::fs::write(f.model.join(".git/HEAD"), b"ref").unwrap();
    assert!(verify_model(&f.model, &f.sig, &opts(&f.key)).is_ok());
    std::fs::write(f.model.join("weights/.gitignore"), b"*").unwrap();
    expect(&f, &f.model, &opts(&f.key), checks::FILE_ADDED);
}

#[test]
fn removed_file() {
    let f = fixture(Method::Files);
    std::fs::remove_file(f.model.join("config.json")).unwrap();
    let msg = expect(&f, &f.model, &opts(&f.key), checks::FILE_MISSING);
    assert!(msg.contains("config.json"), "{msg}");
}

#[test]
fn renamed_file() {
    let f = fixture(Method::Files);
    std::fs::rename(f.model.join("weights/b.bin"), f.model.join("weights/c.bin")).unwrap();
    let msg = expect(&f, &f.model, &opts(&f.key), checks::FILE_RENAMED);
    assert!(msg.contains("'weights/b.bin' -> 'weights/c.bin'"), "{msg}");
}

#[cfg(unix)]
#[test]
fn symlink_where_a_file_was_signed() {
    let f = fixture(Method::Files);
    let p = f.model.join("weights/b.bin");
    let elsewhere = f.model.parent().unwrap().join("b.bin");
    std::fs::rename(&p, &elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, &p).unwrap();
    let msg = expect(&f, &f.model, &opts(&f.key), checks::SYMLINK);
    assert!(msg.contains("weights/b.bin"), "{msg}");
}

#[test]
fn path_escaping_the_folder() {
    let f = fixture(Method::Files);
    // A validly signed statement whose resource points outside the folder.
    let (_, m) = sign_model(&f.model, &f.key, &WalkOptions::default()).unwrap();
    let mut st = m.to_statement();
    st.predicate["resources"][0]["name"] = json!("../outside.txt");
    // Keep the root consistent so only the path is wrong.
    let b = sign_statement(&st, &f.key).unwrap();
    std::fs::write(&f.sig, b.to_json()).unwrap();
    let msg = expect(&f, &f.model, &opts(&f.key), checks::PATH_ESCAPE);
    assert!(msg.contains("../outside.txt"), "{msg}");
    st.predicate["resources"][0]["name"] = json!("/etc/passwd");
    std::fs::write(&f.sig, sign_statement(&st, &f.key).unwrap().to_json()).unwrap();
    expect(&f, &f.model, &opts(&f.key), checks::PATH_ESCAPE);
}

#[test]
fn wrong_key() {
    let f = fixture(Method::Files);
    let other = PrivateKey::generate(KeyAlgorithm::EcdsaP256);
    expect(&f, &f.model, &opts(&other), checks::KEY_MISMATCH);
    // Without the hint, the signature itself fails.
    rewrite_bundle(&f, |v| {
        v["verificationMaterial"]["publicKey"] = json!({});
    });
    expect(&f, &f.model, &opts(&other), checks::SIGNATURE_INVALID);
    assert!(verify_model(&f.model, &f.sig, &opts(&f.key)).is_ok());
}

#[test]
fn signature_made_for_another_folder() {
    let f = fixture(Method::Files);
    let g = fixture(Method::Files);
    std::fs::write(g.model.join("config.json"), b"{\"other\": true}").unwrap();
    std::fs::write(g.model.join("tokenizer.json"), b"{}").unwrap();
    // f's signature against g's folder.
    let o = opts(&f.key);
    match verify_model(&g.model, &f.sig, &o) {
        Err(VerifyError::Failed(fail)) => {
            assert_eq!(fail.check, checks::FILE_CHANGED);
            assert!(
                fail.details
                    .iter()
                    .any(|d| d.contains("added (not signed): tokenizer.json")),
                "{:?}",
                fail.details
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn tampered_payload_type() {
    let f = fixture(Method::Files);
    rewrite_bundle(&f, |v| {
        v["dsseEnvelope"]["payloadType"] = json!("application/json")
    });
    expect(&f, &f.model, &opts(&f.key), checks::PAYLOAD_TYPE);
}

#[test]
fn tampered_payload() {
    let f = fixture(Method::Files);
    rewrite_bundle(&f, |v| {
        let p = v["dsseEnvelope"]["payload"].as_str().unwrap().to_string();
        let mut st: serde_json::Value =
            serde_json::from_slice(&base64::engine::general_purpose::STANDARD.decode(p).unwrap())
                .unwrap();
        st["predicate"]["resources"][0]["digest"] = json!("00".repeat(32));
        v["dsseEnvelope"]["payload"] = json!(
            base64::engine::general_purpose::STANDARD.encode(serde_json::to_vec(&st).unwrap())
        );
    });
    expect(&f, &f.model, &opts(&f.key), checks::SIGNATURE_INVALID);
}

#[test]
fn truncated_bundle() {
    let f = fixture(Method::Files);
    let b = std::fs::read(&f.sig).unwrap();
    for cut in [b.len() - 1, b.len() / 2, 10, 0] {
        std::fs::write(&f.sig, &b[..cut]).unwrap();
        expect(&f, &f.model, &opts(&f.key), checks::BUNDLE_MALFORMED);
    }
    std::fs::write(&f.sig, &b).unwrap();
    rewrite_bundle(&f, |v| {
        v["mediaType"] = json!("application/vnd.dev.sigstore.bundle.v9+json")
    });
    expect(&f, &f.model, &opts(&f.key), checks::BUNDLE_MALFORMED);
}

#[test]
fn inconsistent_root_digest() {
    let f = fixture(Method::Files);
    let (_, m) = sign_model(&f.model, &f.key, &WalkOptions::default()).unwrap();
    let mut st = m.to_statement();
    st.subject[0]
        .digest
        .insert("sha256".into(), "11".repeat(32));
    std::fs::write(&f.sig, sign_statement(&st, &f.key).unwrap().to_json()).unwrap();
    expect(&f, &f.model, &opts(&f.key), checks::STATEMENT_INVALID);
}

#[test]
fn single_file_model_is_named_dot() {
    let t = tempfile::tempdir().unwrap();
    let file = t.path().join("approved.toml");
    std::fs::write(&file, b"[model]\n").unwrap();
    let key = PrivateKey::generate(KeyAlgorithm::Ed25519);
    let (b, m) = sign_model(&file, &key, &WalkOptions::default()).unwrap();
    assert_eq!(m.resources[0].name, ".");
    assert_eq!(m.model_name, "approved.toml");
    let sig = t.path().join("approved.toml.sig");
    std::fs::write(&sig, b.to_json()).unwrap();
    assert!(verify_model(&file, &sig, &opts(&key)).is_ok());
    std::fs::write(&file, b"[model]\nx=1\n").unwrap();
    assert!(
        matches!(verify_model(&file, &sig, &opts(&key)), Err(VerifyError::Failed(f)) if f.check == checks::FILE_CHANGED)
    );
    let _ = Bundle::parse(b.to_json().as_bytes()).unwrap();
}

#[test]
fn mutated_bundles_never_verify_and_never_panic() {
    let f = fixture(Method::Files);
    let orig = std::fs::read(&f.sig).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&orig).unwrap();
    let payload = base64::engine::general_purpose::STANDARD
        .decode(v["dsseEnvelope"]["payload"].as_str().unwrap())
        .unwrap();
    // Every single-bit flip spread over the signed payload is caught by the signature.
    let step = (payload.len() / 97).max(1);
    for i in (0..payload.len()).step_by(step) {
        let mut p = payload.clone();
        p[i] ^= 1 << (i % 8);
        let mut w = v.clone();
        w["dsseEnvelope"]["payload"] = json!(base64::engine::general_purpose::STANDARD.encode(&p));
        std::fs::write(&f.sig, serde_json::to_vec(&w).unwrap()).unwrap();
        expect(&f, &f.model, &opts(&f.key), checks::SIGNATURE_INVALID);
    }
    // Arbitrary byte damage to the bundle file: an error or a rejection, never a panic; and a
    // pass only when the damage hit bytes outside what is signed (e.g. the keyid).
    let mut x: u32 = 12345;
    for _ in 0..300 {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
        let mut b = orig.clone();
        let i = (x as usize >> 8) % b.len();
        b[i] = (x >> 3) as u8;
        std::fs::write(&f.sig, &b).unwrap();
        if let Ok(ok) = verify_model(&f.model, &f.sig, &opts(&f.key)) {
            let w: serde_json::Value = serde_json::from_slice(&b).unwrap();
            assert_eq!(w["dsseEnvelope"]["payload"], v["dsseEnvelope"]["payload"]);
            assert_eq!(ok.files_checked.len(), 3);
        }
    }
}

#[test]
fn hostile_tiny_shard_size_is_refused_before_hashing() {
    let f = fixture(Method::Files);
    // A validly signed statement claiming 1-byte shards, checked against a folder holding a
    // 200 kB file: the walk would make 200,000 resources for 3 listed ones.
    let t = tempfile::tempdir().unwrap();
    let big = t.path().join("m");
    std::fs::create_dir(&big).unwrap();
    std::fs::write(big.join("w.bin"), vec![0u8; 200_000]).unwrap();
    let (_, m) = sign_model(&f.model, &f.key, &WalkOptions::default()).unwrap();
    let mut st = m.to_statement();
    st.predicate["serialization"]["method"] = json!("shards");
    st.predicate["serialization"]["shard_size"] = json!(1);
    for r in st.predicate["resources"].as_array_mut().unwrap() {
        let n = r["name"].as_str().unwrap().to_string();
        r["name"] = json!(format!("{n}:0:1"));
    }
    std::fs::write(&f.sig, sign_statement(&st, &f.key).unwrap().to_json()).unwrap();
    let msg = expect(&f, &big, &opts(&f.key), checks::STATEMENT_INVALID);
    assert!(msg.contains("200000 resources"), "{msg}");
}
