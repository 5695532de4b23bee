//! The approved-model list and parallel hashing: approve a generated model, then tamper with it
//! the ways an attacker or an accident would, and check every change is named.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use tunegate_artifact::approved::{self, ApprovedList, ApprovedModel};
use tunegate_artifact::hash::{self, HashOptions};
use tunegate_artifact::Error;
use tunegate_core::progress::NoProgress;
use tunegate_core::{Finding, Report, Severity, Verdict};

/// Small mmap windows so every shard below spans several windows.
const SMALL: HashOptions = HashOptions {
    mmap_min: 1,
    mmap_chunk: 64 << 10,
};

/// Deterministic pseudo-random bytes (xorshift), so shards differ from one another.
fn bytes(seed: u64, n: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// A Hugging Face-shaped folder: config, tokenizer, two safetensors shards bigger than the
/// mmap window, an index, and a nested file.
fn model(dir: &Path) -> PathBuf {
    let m = dir.join("model");
    std::fs::create_dir_all(m.join("tokenizer")).unwrap();
    std::fs::write(m.join("config.json"), br#"{"model_type":"llama"}"#).unwrap();
    std::fs::write(m.join("tokenizer/tokenizer.json"), b"{\"vocab\":{}}").unwrap();
    std::fs::write(
        m.join("model-00001-of-00002.safetensors"),
        bytes(1, 200_003),
    )
    .unwrap();
    std::fs::write(
        m.join("model-00002-of-00002.safetensors"),
        bytes(2, 150_001),
    )
    .unwrap();
    std::fs::write(
        m.join("model.safetensors.index.json"),
        br#"{"weight_map":{}}"#,
    )
    .unwrap();
    m
}

fn approve(root: &Path, id: &str) -> ApprovedList {
    let tree = hash::hash_tree(root, &SMALL).unwrap();
    let mut list = ApprovedList::default();
    list.upsert(ApprovedModel::from_tree("approved.toml", id, Some("rev1"), &tree).unwrap());
    // Always go through the text form, as the CLI does.
    approved::parse("approved.toml", list.to_toml().as_bytes()).unwrap()
}

fn verify(list: &ApprovedList, root: &Path) -> Report {
    approved::verify(list, "approved.toml", root, None, &SMALL, &NoProgress).unwrap()
}

fn with_id<'a>(r: &'a Report, id: &str) -> Vec<&'a Finding> {
    r.findings.iter().filter(|f| f.id == id).collect()
}

fn one<'a>(r: &'a Report, id: &str) -> &'a Finding {
    let v = with_id(r, id);
    assert_eq!(v.len(), 1, "expected one {id}: {:#?}", r.findings);
    v[0]
}

fn assert_fails(r: &Report) {
    assert_eq!(r.verdict, Verdict::Fail, "{:#?}", r.findings);
    assert!(
        with_id(r, "M026").is_empty(),
        "a failing model cannot match"
    );
}

#[test]
fn approve_then_verify_passes_and_names_the_entry() {
    let d = tempfile::tempdir().unwrap();
    let m = model(d.path());
    let list = approve(&m, "org/llama-tiny");
    let files = list.models[0].files.as_ref().unwrap();
    assert_eq!(
        files.keys().map(String::as_str).collect::<Vec<_>>(),
        [
            "config.json",
            "model-00001-of-00002.safetensors",
            "model-00002-of-00002.safetensors",
            "model.safetensors.index.json",
            "tokenizer/tokenizer.json"
        ]
    );
    assert_eq!(
        files["model-00001-of-00002.safetensors"].size,
        Some(200_003)
    );
    let r = verify(&list, &m);
    assert_eq!(r.verdict, Verdict::Pass, "{:#?}", r.findings);
    let f = one(&r, "M026");
    assert!(f.message.contains("org/llama-tiny@rev1"), "{}", f.message);
    assert_eq!(f.evidence["revision"], "rev1");
    assert_eq!(r.findings.len(), 1);
    assert_eq!(r.summary.records, Some(5));
    // One subject per file plus the list itself.
    assert_eq!(r.subjects.len(), 6);
}

#[test]
fn one_byte_change_is_named_with_both_digests() {
    let d = tempfile::tempdir().unwrap();
    let m = model(d.path());
    let list = approve(&m, "org/m");
    let shard = m.join("model-00002-of-00002.safetensors");
    let mut b = std::fs::read(&shard).unwrap();
    b[100_000] ^= 1;
    std::fs::write(&shard, &b).unwrap();
    let r = verify(&list, &m);
    assert_fails(&r);
    let f = one(&r, "M020");
    assert_eq!(f.severity, Severity::Critical);
    assert!(f
        .message
        .starts_with("model-00002-of-00002.safetensors differs"));
    let want = &list.models[0].files.as_ref().unwrap()["model-00002-of-00002.safetensors"];
    assert!(f
        .message
        .contains(&format!("expected sha256:{}", want.sha256)));
    let got = tunegate_core::digest::sha256_file(&shard).unwrap().0;
    assert!(f.message.contains(&format!("found sha256:{got}")));
    assert_eq!(
        f.location.file.as_deref(),
        Some(shard.display().to_string().as_str())
    );
    assert_eq!(r.findings.len(), 1, "{:#?}", r.findings);
}

#[test]
fn missing_file_is_named() {
    let d = tempfile::tempdir().unwrap();
    let m = model(d.path());
    let list = approve(&m, "org/m");
    std::fs::remove_file(m.join("tokenizer/tokenizer.json")).unwrap();
    let r = verify(&list, &m);
    assert_fails(&r);
    let f = one(&r, "M021");
    assert!(f.message.starts_with("tokenizer/tokenizer.json is missing"));
    assert_eq!(f.severity, Severity::High);
}

#[test]
fn extra_python_file_and_pickle_weights_are_unexpected() {
    let d = tempfile::tempdir().unwrap();
    let m = model(d.path());
    let list = approve(&m, "org/m");
    std::fs::write(m.join("modeling_evil.py"), b"import os\n").unwrap();
    std::fs::write(m.join("pytorch_model.bin"), bytes(9, 1000)).unwrap();
    let r = verify(&list, &m);
    assert_fails(&r);
    let names: Vec<&str> = with_id(&r, "M022")
        .iter()
        .map(|f| f.evidence["path"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["modeling_evil.py", "pytorch_model.bin"]);
    assert!(with_id(&r, "M020").is_empty() && with_id(&r, "M021").is_empty());
}

#[test]
fn renamed_file_is_missing_plus_unexpected_with_a_hint() {
    let d = tempfile::tempdir().unwrap();
    let m = model(d.path());
    let list = approve(&m, "org/m");
    std::fs::rename(m.join("config.json"), m.join("config.json.bak")).unwrap();
    let r = verify(&list, &m);
    assert_fails(&r);
    assert!(one(&r, "M021")
        .message
        .starts_with("config.json is missing"));
    let f = one(&r, "M022");
    assert!(f.message.starts_with("config.json.bak is not in"));
    assert!(
        f.message.contains("missing config.json (renamed?)"),
        "{}",
        f.message
    );
}

#[test]
fn swapped_shards_are_both_changed_and_say_whose_content_they_hold() {
    let d = tempfile::tempdir().unwrap();
    let m = model(d.path());
    let list = approve(&m, "org/m");
    let (a, b) = (
        m.join("model-00001-of-00002.safetensors"),
        m.join("model-00002-of-00002.safetensors"),
    );
    let tmp = m.join("swap");
    std::fs::rename(&a, &tmp).unwrap();
    std::fs::rename(&b, &a).unwrap();
    std::fs::rename(&tmp, &b).unwrap();
    let r = verify(&list, &m);
    assert_fails(&r);
    let changed = with_id(&r, "M020");
    assert_eq!(changed.len(), 2, "{:#?}", r.findings);
    assert_eq!(
        changed[0].evidence["content_of"][0],
        "model-00002-of-00002.safetensors"
    );
    assert_eq!(
        changed[1].evidence["content_of"][0],
        "model-00001-of-00002.safetensors"
    );
    assert!(changed[0].message.contains("swapped"));
}

#[cfg(unix)]
#[test]
fn symlinks_are_findings_never_followed_and_cannot_be_approved() {
    let d = tempfile::tempdir().unwrap();
    let m = model(d.path());
    let list = approve(&m, "org/m");
    // Replace an approved file by a link to identical content outside the folder: still a
    // finding, because the content is not read through the link.
    let outside = d.path().join("outside.json");
    std::fs::copy(m.join("config.json"), &outside).unwrap();
    std::fs::remove_file(m.join("config.json")).unwrap();
    std::os::unix::fs::symlink(&outside, m.join("config.json")).unwrap();
    std::os::unix::fs::symlink("/", m.join("tokenizer/root")).unwrap();
    let r = verify(&list, &m);
    assert_fails(&r);
    let links = with_id(&r, "M024");
    assert_eq!(links.len(), 2, "{:#?}", r.findings);
    assert!(links[0]
        .message
        .starts_with("config.json is a symbolic link to"));
    assert!(links[0].message.contains("approves a file"));
    assert!(links[1]
        .message
        .starts_with("tokenizer/root is a symbolic link to /"));
    // A linked approved file is reported once, as a link, not also as missing.
    assert!(with_id(&r, "M021").is_empty());
    let tree = hash::hash_tree(&m, &SMALL).unwrap();
    let e = ApprovedModel::from_tree("approved.toml", "org/m", None, &tree).unwrap_err();
    assert!(
        e.to_string().contains("config.json: it is a symbolic link"),
        "{e}"
    );
}

#[cfg(unix)]
#[test]
fn a_socket_in_the_folder_is_an_error_naming_it() {
    let d = tempfile::tempdir().unwrap();
    let m = model(d.path());
    let _sock = std::os::unix::net::UnixListener::bind(m.join("s.sock")).unwrap();
    let e = hash::hash_tree(&m, &SMALL).unwrap_err();
    assert!(matches!(e, Error::Special { .. }), "{e}");
    assert!(e.to_string().contains("s.sock: a socket"), "{e}");
}

#[test]
fn top_level_git_is_skipped_and_reported_nested_git_is_not() {
    let d = tempfile::tempdir().unwrap();
    let m = model(d.path());
    std::fs::create_dir_all(m.join(".git")).unwrap();
    std::fs::write(m.join(".git/HEAD"), b"ref").unwrap();
    std::fs::create_dir_all(m.join("tokenizer/.git")).unwrap();
    std::fs::write(m.join("tokenizer/.git/HEAD"), b"ref").unwrap();
    let tree = hash::hash_tree(&m, &SMALL).unwrap();
    assert_eq!(tree.ignored, [".git"]);
    let paths: Vec<&str> = tree.files.iter().map(|f| f.path.as_str()).collect();
    assert!(paths.contains(&"tokenizer/.git/HEAD"), "{paths:?}");
    assert!(!paths.iter().any(|p| p.starts_with(".git/")));
    let list = approve(&m, "org/m");
    std::fs::write(m.join(".git/HEAD"), b"changed").unwrap();
    let r = verify(&list, &m);
    assert_eq!(r.verdict, Verdict::Pass);
    assert_eq!(one(&r, "M027").evidence["path"], ".git");
}

#[test]
fn parallel_mapped_hashing_equals_streamed_sha256() {
    let d = tempfile::tempdir().unwrap();
    let sizes = [0usize, 1, 65_535, 65_536, 65_537, 200_001, (1 << 20) + 3];
    for (i, n) in sizes.iter().enumerate() {
        std::fs::write(d.path().join(format!("f{i}.bin")), bytes(i as u64 + 7, *n)).unwrap();
    }
    for opts in [
        SMALL,
        HashOptions::default(),
        HashOptions {
            mmap_min: u64::MAX,
            mmap_chunk: 1,
        },
    ] {
        let tree = hash::hash_tree(d.path(), &opts).unwrap();
        assert_eq!(tree.files.len(), sizes.len());
        for (i, f) in tree.files.iter().enumerate() {
            assert_eq!(f.path, format!("f{i}.bin"));
            let (want, size) = tunegate_core::digest::sha256_file(&d.path().join(&f.path)).unwrap();
            assert_eq!(
                (f.sha256.as_str(), f.size),
                (want.as_str(), size),
                "{opts:?} {}",
                f.path
            );
        }
    }
    // The empty file's digest is the well-known one.
    let tree = hash::hash_tree(d.path(), &SMALL).unwrap();
    assert_eq!(
        tree.files[0].sha256,
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
}

#[test]
fn walk_order_is_by_whole_relative_path() {
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(d.path().join("a")).unwrap();
    std::fs::write(d.path().join("a/b"), b"1").unwrap();
    std::fs::write(d.path().join("a.txt"), b"2").unwrap();
    std::fs::write(d.path().join("B"), b"3").unwrap();
    let l = hash::walk(d.path()).unwrap();
    let paths: Vec<&str> = l.files.iter().map(|f| f.0.as_str()).collect();
    assert_eq!(paths, ["B", "a.txt", "a/b"]);
}

#[test]
fn empty_folder_cannot_be_approved_and_fails_against_an_entry() {
    let d = tempfile::tempdir().unwrap();
    let empty = d.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let tree = hash::hash_tree(&empty, &SMALL).unwrap();
    assert!(tree.files.is_empty());
    let e = ApprovedModel::from_tree("approved.toml", "org/m", None, &tree).unwrap_err();
    assert!(e.to_string().contains("has no files"), "{e}");
    let m = model(d.path());
    let list = approve(&m, "org/m");
    let r = verify(&list, &empty);
    assert_fails(&r);
    assert_eq!(with_id(&r, "M021").len(), 5);
}

#[test]
fn single_file_model() {
    let d = tempfile::tempdir().unwrap();
    let f = d.path().join("tiny.gguf");
    std::fs::write(&f, bytes(5, 70_000)).unwrap();
    let list = approve(&f, "org/tiny-gguf");
    let files = list.models[0].files.as_ref().unwrap();
    assert_eq!(files.keys().collect::<Vec<_>>(), ["tiny.gguf"]);
    let r = verify(&list, &f);
    assert_eq!(r.verdict, Verdict::Pass, "{:#?}", r.findings);
    std::fs::write(&f, bytes(6, 70_000)).unwrap();
    let r = verify(&list, &f);
    assert_fails(&r);
    assert_eq!(
        one(&r, "M020").location.file.as_deref(),
        Some(f.display().to_string().as_str())
    );
}

#[test]
fn entry_selection_by_digests_and_by_id() {
    let d = tempfile::tempdir().unwrap();
    let m = model(d.path());
    let other = d.path().join("other.bin");
    std::fs::write(&other, b"another model").unwrap();
    let mut list = approve(&other, "org/other");
    let tree = hash::hash_tree(&m, &SMALL).unwrap();
    list.upsert(ApprovedModel::from_tree("approved.toml", "org/m", None, &tree).unwrap());
    // Exact match among several entries.
    let r = verify(&list, &m);
    assert_eq!(r.verdict, Verdict::Pass, "{:#?}", r.findings);
    assert!(one(&r, "M026").message.contains("org/m"));
    // Closest entry: one changed file still selects org/m and names the change.
    std::fs::write(m.join("config.json"), b"{}").unwrap();
    let r = verify(&list, &m);
    assert_fails(&r);
    assert_eq!(one(&r, "M020").evidence["model"], "org/m");
    // Nothing in common: no entry.
    let stranger = d.path().join("stranger.bin");
    std::fs::write(&stranger, b"unknown").unwrap();
    let r = verify(&list, &stranger);
    assert_fails(&r);
    assert_eq!(one(&r, "M025").severity, Severity::Critical);
    // --model forces the comparison; an unknown id is an error naming the list and the ids.
    let r = approved::verify(
        &list,
        "approved.toml",
        &stranger,
        Some("org/other"),
        &SMALL,
        &NoProgress,
    )
    .unwrap();
    assert_eq!(with_id(&r, "M021").len(), 1);
    assert_eq!(with_id(&r, "M022").len(), 1);
    let e = approved::verify(
        &list,
        "approved.toml",
        &m,
        Some("org/nope"),
        &SMALL,
        &NoProgress,
    )
    .unwrap_err();
    let s = e.to_string();
    assert!(
        s.starts_with("approved.toml: no model with id 'org/nope'"),
        "{s}"
    );
    assert!(s.contains("org/other, org/m"), "{s}");
}

#[test]
fn folder_digest_only_entry() {
    let d = tempfile::tempdir().unwrap();
    let m = model(d.path());
    let tree = hash::hash_tree(&m, &SMALL).unwrap();
    let text = format!(
        "[[model]]\nid = \"org/m\"\nfolder_digest = \"sha256:{}\"\n",
        tree.folder_digest().to_uppercase()
    );
    let list = approved::parse("approved.toml", text.as_bytes()).unwrap();
    assert_eq!(verify(&list, &m).verdict, Verdict::Pass);
    std::fs::write(m.join("extra.txt"), b"x").unwrap();
    let r = verify(&list, &m);
    assert_fails(&r);
    one(&r, "M023");
}

#[test]
fn upsert_keeps_other_entries_and_round_trips() {
    let d = tempfile::tempdir().unwrap();
    let m = model(d.path());
    let mut list = approve(&m, "org/a");
    let other = d.path().join("b.bin");
    std::fs::write(&other, b"b").unwrap();
    let tb = hash::hash_tree(&other, &SMALL).unwrap();
    assert!(!list.upsert(ApprovedModel::from_tree("x", "org/b", None, &tb).unwrap()));
    let tm = hash::hash_tree(&m, &SMALL).unwrap();
    assert!(list.upsert(ApprovedModel::from_tree("x", "org/a", Some("rev2"), &tm).unwrap()));
    let back = approved::parse("approved.toml", list.to_toml().as_bytes()).unwrap();
    assert_eq!(back.models, list.models);
    assert_eq!(
        back.models
            .iter()
            .map(|m| m.id.as_str())
            .collect::<Vec<_>>(),
        ["org/a", "org/b"]
    );
    assert_eq!(back.models[0].revision.as_deref(), Some("rev2"));
}

#[test]
fn malformed_lists_are_errors_naming_the_file_and_entry() {
    let d = "0".repeat(64);
    let cases: BTreeMap<&str, (String, &str)> = BTreeMap::from([
        ("not toml", ("[[model]\n".to_string(), "not valid TOML")),
        (
            "unknown top key",
            ("models = []\n".to_string(), "unknown top-level key 'models'"),
        ),
        ("bad version", ("version = 2\n".to_string(), "version = 2 is not supported")),
        (
            "unknown model key",
            (
                format!("[[model]]\nid = \"org/m\"\nsha = 1\nfiles = {{ a = \"sha256:{d}\" }}\n"),
                "model #1 ('org/m'): unknown key 'sha'",
            ),
        ),
        (
            "bad hex",
            (
                format!("[[model]]\nid = \"org/m\"\nfiles = {{ a = \"sha256:{}zz\" }}\n", &d[..62]),
                "model #1 ('org/m'): files.\"a\": digest 'sha256:",
            ),
        ),
        (
            "short digest",
            (
                "[[model]]\nid = \"org/m\"\nfiles = { a = \"sha256:abc\" }\n".to_string(),
                "not 'sha256:' followed by 64 hex digits",
            ),
        ),
        (
            "other algorithm",
            (
                format!("[[model]]\nid = \"org/m\"\nfiles = {{ a = \"md5:{d}\" }}\n"),
                "does not start with 'sha256:'",
            ),
        ),
        (
            "duplicate ids",
            (
                format!(
                    "[[model]]\nid = \"org/m\"\nfiles = {{ a = \"sha256:{d}\" }}\n[[model]]\nid = \"org/m\"\nfiles = {{ b = \"sha256:{d}\" }}\n"
                ),
                "model #1 and model #2 both have id 'org/m'",
            ),
        ),
        (
            "absolute path",
            (
                format!("[[model]]\nid = \"org/m\"\nfiles = {{ \"/etc/passwd\" = \"sha256:{d}\" }}\n"),
                "model #1 ('org/m'): files: path '/etc/passwd' is absolute",
            ),
        ),
        (
            "dotdot path",
            (
                format!("[[model]]\nid = \"org/m\"\nfiles = {{ \"a/../../b\" = \"sha256:{d}\" }}\n"),
                "path 'a/../../b' has a '..' component",
            ),
        ),
        (
            "backslash path",
            (
                format!("[[model]]\nid = \"org/m\"\nfiles = {{ 'a\\b' = \"sha256:{d}\" }}\n"),
                "contains a backslash",
            ),
        ),
        (
            "no id",
            (format!("[[model]]\nfiles = {{ a = \"sha256:{d}\" }}\n"), "model #1 has no id"),
        ),
        (
            "nothing pinned",
            ("[[model]]\nid = \"org/m\"\n".to_string(), "needs files, folder_digest or both"),
        ),
        (
            "empty files",
            ("[[model]]\nid = \"org/m\"\nfiles = {}\n".to_string(), "files is empty"),
        ),
        (
            "negative size",
            (
                format!("[[model]]\nid = \"org/m\"\nfiles = {{ a = {{ digest = \"sha256:{d}\", size = -1 }} }}\n"),
                "size -1 is negative",
            ),
        ),
        (
            "unknown file key",
            (
                format!("[[model]]\nid = \"org/m\"\nfiles = {{ a = {{ digest = \"sha256:{d}\", mode = 1 }} }}\n"),
                "unknown key 'mode'",
            ),
        ),
        (
            "folder digest disagrees",
            (
                format!("[[model]]\nid = \"org/m\"\nfolder_digest = \"sha256:{d}\"\nfiles = {{ a = \"sha256:{d}\" }}\n"),
                "folder_digest sha256:0000",
            ),
        ),
        ("not utf-8", ("\u{0}".to_string(), "")),
    ]);
    for (what, (text, want)) in &cases {
        let bytes: Vec<u8> = if *what == "not utf-8" {
            vec![0xff, 0xfe]
        } else {
            text.as_bytes().to_vec()
        };
        let e = approved::parse("lists/approved.toml", &bytes).unwrap_err();
        assert!(matches!(e, Error::Approved { .. }), "{what}: {e}");
        let s = e.to_string();
        assert!(s.starts_with("lists/approved.toml: "), "{what}: {s}");
        assert!(s.contains(want), "{what}: {s}");
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

    /// Any edit of a valid list parses to a list or an error naming the list, never a panic.
    #[test]
    fn parse_never_panics_on_edited_lists(pos in 0usize..400, byte in proptest::prelude::any::<u8>(), cut in 0usize..400) {
        let d = "ab".repeat(32);
        let text = format!(
            "version = 1\n[[model]]\nid = \"org/m\"\nrevision = \"r\"\n[model.files]\n\"a/b.json\" = \"sha256:{d}\"\n\"c\" = {{ digest = \"sha256:{d}\", size = 3 }}\n"
        );
        let mut b = text.into_bytes();
        let p = pos % b.len();
        b[p] = byte;
        b.truncate(cut.max(1).min(b.len()));
        if let Err(e) = approved::parse("approved.toml", &b) {
            proptest::prop_assert!(e.to_string().starts_with("approved.toml: "));
        }
    }
}
