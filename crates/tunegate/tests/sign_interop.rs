//! Interop with the OpenSSF reference tool (`model_signing`, pinned in `.ci/run`'s venv):
//! tunegate signs -> model_signing verifies, and model_signing signs -> tunegate verifies, for a
//! nested folder (with the ordering traps), an ignored path, a 50 MB file and a single file,
//! with a P-256 key behind a passphrase, a P-384 and a P-521 key. Runs when `TUNEGATE_INTEROP_PY` names
//! the venv's python; then any failure of either tool FAILS the test (it never skips).
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn py() -> Option<PathBuf> {
    match std::env::var_os("TUNEGATE_INTEROP_PY") {
        Some(p) => Some(PathBuf::from(p)),
        None => {
            eprintln!("note: TUNEGATE_INTEROP_PY not set; model_signing interop test skipped");
            None
        }
    }
}

fn tunegate() -> Command {
    let mut c = Command::new(assert_cmd::cargo::cargo_bin("tunegate"));
    c.env_remove("TUNEGATE_KEY_PASSPHRASE");
    c
}

fn show(what: &str, o: &Output) -> String {
    format!(
        "{what}: exit {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn ok(what: &str, c: &mut Command) -> Output {
    let o = c
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run: {e}"));
    assert!(o.status.success(), "{}", show(what, &o));
    o
}

fn ms(py: &Path, dir: &Path) -> Command {
    let mut c = Command::new(py);
    c.current_dir(dir).args(["-m", "model_signing"]);
    c
}

/// model_signing signs `model` with `pem`. The v1.1.1 CLI's `--password` is broken (it hands a
/// str to `cryptography`, "Cannot convert <class 'str'> instance to a buffer"), so an encrypted
/// key goes through the Python API with the password as bytes.
fn ms_sign(
    py: &Path,
    dir: &Path,
    sig: &Path,
    pem: &Path,
    pass: Option<&str>,
    model: &Path,
    ignore: Option<&Path>,
) {
    match pass {
        None => {
            let mut c = ms(py, dir);
            c.args(["sign", "key", "--signature"])
                .arg(sig)
                .arg("--private_key")
                .arg(pem);
            if let Some(i) = ignore {
                c.arg("--ignore-paths").arg(i);
            }
            c.arg(model);
            ok("model_signing sign", &mut c);
        }
        Some(pw) => {
            let ig = ignore
                .map(|i| format!("[{:?}]", i.to_str().unwrap()))
                .unwrap_or_else(|| "[]".into());
            let script = format!(
                "from model_signing import signing, hashing\n\
                 c = signing.Config().use_elliptic_key_signer(private_key={pem:?}, password={pw:?}.encode())\n\
                 c.set_hashing_config(hashing.Config().set_ignored_paths(paths={ig} + [{sig:?}]))\n\
                 c.sign({model:?}, {sig:?})\n",
                pem = pem.to_str().unwrap(),
                sig = sig.to_str().unwrap(),
                model = model.to_str().unwrap(),
            );
            ok(
                "model_signing API sign (encrypted key)",
                Command::new(py).current_dir(dir).args(["-c", &script]),
            );
        }
    }
}

fn subject_digest(sig: &Path) -> String {
    use base64::Engine as _;
    let b: serde_json::Value = serde_json::from_slice(&std::fs::read(sig).unwrap()).unwrap();
    let p = base64::engine::general_purpose::STANDARD
        .decode(b["dsseEnvelope"]["payload"].as_str().unwrap())
        .unwrap();
    let st: serde_json::Value = serde_json::from_slice(&p).unwrap();
    st["subject"][0]["digest"]["sha256"]
        .as_str()
        .unwrap()
        .to_string()
}

fn build_model(dir: &Path) -> PathBuf {
    let m = dir.join("model");
    let files: &[(&str, &[u8])] = &[
        ("config.json", b"{\"hidden\": 64}"),
        ("tokenizer.json", b"A"),
        ("tokenizer/vocab.txt", b"B"),
        ("a-b/x", b"C"),
        ("a/x", b"D"),
        ("deep/d1/d2/w.bin", b"deep weights"),
        (
            "sub/.gitignore",
            b"signed: only top-level git files are ignored",
        ),
        ("empty.txt", b""),
        (".git/HEAD", b"ref: refs/heads/main"),
        ("scratch/tmp.txt", b"ignored path"),
    ];
    for (n, b) in files {
        let p = m.join(n);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, b).unwrap();
    }
    // 50 MB of deterministic pseudo-random bytes.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let big: Vec<u8> = (0..50 * 1024 * 1024)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    std::fs::write(m.join("big.safetensors"), big).unwrap();
    m
}

fn flip(p: &Path, at: usize) -> Vec<u8> {
    let orig = std::fs::read(p).unwrap();
    let mut b = orig.clone();
    b[at] ^= 1;
    std::fs::write(p, b).unwrap();
    orig
}

#[test]
fn model_signing_and_tunegate_verify_each_other() {
    let Some(py) = py() else { return };
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let model = build_model(d);
    let single = d.join("approved.toml");
    std::fs::write(&single, b"[approved]\nsha256 = \"00\"\n").unwrap();
    std::fs::write(d.join("pass.txt"), "interop-pass\n").unwrap();

    for (alg, pass) in [("p256", true), ("p384", false), ("p521", false)] {
        let k = d.join(format!("k-{alg}"));
        let mut kg = tunegate();
        kg.args(["keygen", "--algorithm", alg, "-o"]).arg(&k);
        if pass {
            kg.arg("--passphrase-file").arg(d.join("pass.txt"));
        }
        ok("tunegate keygen", &mut kg);
        let (pem, public) = (k.with_extension("pem"), k.with_extension("pub"));
        let pw = pass.then_some("interop-pass");

        // Folder: tunegate signs, model_signing verifies.
        let t_sig = d.join(format!("tunegate-{alg}.sig"));
        let mut c = tunegate();
        c.arg("sign")
            .arg(&model)
            .arg("--key")
            .arg(&pem)
            .arg("-o")
            .arg(&t_sig);
        c.arg("--ignore-paths").arg(model.join("scratch"));
        if pass {
            c.arg("--passphrase-file").arg(d.join("pass.txt"));
        }
        ok("tunegate sign", &mut c);
        let o = ok(
            "model_signing verify (tunegate's signature)",
            ms(&py, d)
                .args(["verify", "key", "--signature"])
                .arg(&t_sig)
                .arg("--public_key")
                .arg(&public)
                .arg(&model),
        );
        assert!(
            String::from_utf8_lossy(&o.stdout).contains("Verification succeeded"),
            "{}",
            show("ms", &o)
        );

        // Folder: model_signing signs, tunegate verifies.
        let p_sig = d.join(format!("model_signing-{alg}.sig"));
        ms_sign(
            &py,
            d,
            &p_sig,
            &pem,
            pw,
            &model,
            Some(&model.join("scratch")),
        );
        let o = ok(
            "tunegate verify (model_signing's signature)",
            tunegate()
                .arg("verify")
                .arg(&model)
                .arg("--key")
                .arg(&public)
                .arg("--signature")
                .arg(&p_sig),
        );
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(
            out.contains("ok  big.safetensors") && out.contains("ok  sub/.gitignore"),
            "{out}"
        );
        assert!(
            !out.contains("scratch") && !out.contains(".git/HEAD"),
            "{out}"
        );

        // Same files, same order: the subject (root) digests are byte-identical.
        assert_eq!(
            subject_digest(&t_sig),
            subject_digest(&p_sig),
            "root digest differs ({alg})"
        );

        // A one-byte change in the large file: both tools reject both signatures.
        let big = model.join("big.safetensors");
        let orig = flip(&big, 40 * 1024 * 1024 + 3);
        let o = ms(&py, d)
            .args(["verify", "key", "--signature"])
            .arg(&t_sig)
            .arg("--public_key")
            .arg(&public)
            .arg(&model)
            .output()
            .unwrap();
        assert!(
            !o.status.success(),
            "model_signing accepted a changed file: {}",
            show("ms", &o)
        );
        let o = tunegate()
            .arg("verify")
            .arg(&model)
            .arg("--key")
            .arg(&public)
            .arg("--signature")
            .arg(&p_sig)
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(1), "{}", show("tunegate", &o));
        assert!(String::from_utf8_lossy(&o.stdout).contains("changed: big.safetensors"));
        std::fs::write(&big, orig).unwrap();

        // Single file (resource name "."), both ways.
        let ts = d.join(format!("single-t-{alg}.sig"));
        let mut c = tunegate();
        c.arg("sign")
            .arg(&single)
            .arg("--key")
            .arg(&pem)
            .arg("-o")
            .arg(&ts);
        if pass {
            c.arg("--passphrase-file").arg(d.join("pass.txt"));
        }
        ok("tunegate sign (single file)", &mut c);
        ok(
            "model_signing verify (single file)",
            ms(&py, d)
                .args(["verify", "key", "--signature"])
                .arg(&ts)
                .arg("--public_key")
                .arg(&public)
                .arg(&single),
        );
        let ps = d.join(format!("single-p-{alg}.sig"));
        ms_sign(&py, d, &ps, &pem, pw, &single, None);
        ok(
            "tunegate verify (single file)",
            tunegate()
                .arg("verify")
                .arg(&single)
                .arg("--key")
                .arg(&public)
                .arg("--signature")
                .arg(&ps),
        );
    }

    // Shard serialization from model_signing's API (its CLI has no switch): tunegate verifies it.
    let pem = d.join("k-p384.pem");
    let sh = d.join("shards.sig");
    let script = format!(
        "from model_signing import signing, hashing\n\
         c = signing.Config().use_elliptic_key_signer(private_key={pem:?})\n\
         c.set_hashing_config(hashing.Config().use_shard_serialization(shard_size=8 * 1024 * 1024).set_ignored_paths(paths=[{ig:?}]))\n\
         c.sign({model:?}, {sh:?})\n",
        pem = pem.to_str().unwrap(),
        ig = model.join("scratch").to_str().unwrap(),
        model = model.to_str().unwrap(),
        sh = sh.to_str().unwrap()
    );
    ok(
        "model_signing API sign (shards)",
        Command::new(&py).current_dir(d).args(["-c", &script]),
    );
    let o = ok(
        "tunegate verify (model_signing shards)",
        tunegate()
            .arg("verify")
            .arg(&model)
            .arg("--key")
            .arg(d.join("k-p384.pub"))
            .arg("--signature")
            .arg(&sh),
    );
    assert!(String::from_utf8_lossy(&o.stdout).contains("ok  big.safetensors"));
}
