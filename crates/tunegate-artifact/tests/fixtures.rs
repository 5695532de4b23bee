//! Malicious and benign fixtures built by hand, opcode by opcode.
mod common;
use common::{npy, numpy_array, torch_state_dict, zip, Member, P};
use tunegate_artifact::scan_bytes;
use tunegate_core::{Finding, Severity};

fn max(fs: &[Finding]) -> Option<Severity> {
    fs.iter().map(|f| f.severity).max()
}

fn global_hit<'a>(fs: &'a [Finding], module: &str, name: &str) -> Option<&'a Finding> {
    fs.iter()
        .find(|f| f.evidence["module"] == module && f.evidence["name"] == name)
}

fn assert_critical(fs: &[Finding], module: &str, name: &str) -> Finding {
    let f = global_hit(fs, module, name)
        .unwrap_or_else(|| panic!("no finding for {module}.{name}: {fs:#?}"));
    assert_eq!(f.id, "M001", "{f:#?}");
    assert_eq!(f.severity, Severity::Critical);
    f.clone()
}

fn assert_quiet(fs: &[Finding]) {
    assert!(
        fs.iter().all(|f| f.severity < Severity::Medium),
        "expected nothing at medium or above: {fs:#?}"
    );
}

#[test]
fn os_system_via_global_reports_offset_and_opcode() {
    let p = P::new()
        .proto(2)
        .global("os", "system")
        .binunicode("id")
        .tuple1()
        .reduce()
        .stop()
        .bytes();
    let fs = scan_bytes("evil.pkl", &p);
    let f = assert_critical(&fs, "os", "system");
    assert_eq!(f.evidence["opcode"], "GLOBAL");
    assert_eq!(f.evidence["offset"], 2);
    assert_eq!(f.evidence["called"], true);
    assert_eq!(f.location.file.as_deref(), Some("evil.pkl"));
}

#[test]
fn posix_and_nt_aliases_are_critical() {
    for m in ["posix", "nt"] {
        let p = P::new().proto(2).global(m, "system").stop().bytes();
        assert_critical(&scan_bytes("a.pkl", &p), m, "system");
    }
}

#[test]
fn protocol0_inst_is_resolved() {
    let p = P::new()
        .mark()
        .string0("id")
        .inst("os", "system")
        .stop()
        .bytes();
    let fs = scan_bytes("inst.pkl", &p);
    let f = assert_critical(&fs, "os", "system");
    assert_eq!(f.evidence["opcode"], "INST");
    assert_eq!(f.evidence["called"], true);
}

#[test]
fn protocol0_builtin_alias_eval() {
    let p = P::new()
        .global("__builtin__", "eval")
        .mark()
        .string0("1+1")
        .tuple()
        .reduce()
        .stop()
        .bytes();
    assert_critical(&scan_bytes("v0.pkl", &p), "__builtin__", "eval");
}

#[test]
fn stack_global_with_memo_built_names() {
    // Names are stored in the memo early, buried under decoys, and fetched back by every memo
    // read opcode before STACK_GLOBAL.
    let p = P::new()
        .proto(4)
        .short_unicode("torch._utils")
        .memoize() // 0
        .pop()
        .short_unicode("os")
        .binput(7)
        .pop()
        .short_unicode("_rebuild_tensor_v2")
        .memoize() // 1
        .pop()
        .short_unicode("system")
        .long_binput(300)
        .pop()
        .binget(7)
        .long_binget(300)
        .stack_global()
        .binunicode("id")
        .tuple1()
        .reduce()
        .stop()
        .bytes();
    let fs = scan_bytes("memo.pkl", &p);
    let f = assert_critical(&fs, "os", "system");
    assert_eq!(f.evidence["opcode"], "STACK_GLOBAL");
    assert!(global_hit(&fs, "torch._utils", "_rebuild_tensor_v2").is_none());
}

#[test]
fn stack_global_with_text_memo_and_escaped_string_operands() {
    // Protocol-0 STRING with escapes ('o\x73' == 'os'), PUT/GET by text index.
    let p = P::new()
        .proto(4)
        .string0("o\\x73")
        .put0(1)
        .pop()
        .unicode0("sys\\u0074em")
        .put0(2)
        .pop()
        .get0(1)
        .get0(2)
        .stack_global()
        .stop()
        .bytes();
    assert_critical(&scan_bytes("s.pkl", &p), "os", "system");
}

#[test]
fn memoize_counts_entries_not_last_index() {
    // BINPUT 5 then MEMOIZE stores at key 1 (the number of entries), as CPython does.
    let p = P::new()
        .proto(4)
        .short_unicode("builtins")
        .binput(5)
        .short_unicode("exec")
        .memoize()
        .pop()
        .pop()
        .binget(5)
        .binget(1)
        .stack_global()
        .stop()
        .bytes();
    assert_critical(&scan_bytes("m.pkl", &p), "builtins", "exec");
}

#[test]
fn dotted_names_reach_dangerous_attributes() {
    for (m, n) in [
        ("builtins", "eval.__call__"),
        ("random", "_os.system"),
        ("shutil", "os.system"),
    ] {
        let p = P::new()
            .proto(4)
            .short_unicode(m)
            .short_unicode(n)
            .stack_global()
            .stop()
            .bytes();
        assert_critical(&scan_bytes("d.pkl", &p), m, n);
    }
}

#[test]
fn functools_partial_wrapping_eval() {
    let p = P::new()
        .proto(2)
        .global("functools", "partial")
        .global("builtins", "eval")
        .binunicode("__import__('os').system('id')")
        .tuple2()
        .reduce()
        .empty_tuple()
        .reduce()
        .stop()
        .bytes();
    let fs = scan_bytes("partial.pkl", &p);
    assert_critical(&fs, "functools", "partial");
    let f = assert_critical(&fs, "builtins", "eval");
    assert_eq!(f.evidence["called"], false, "eval is hidden as an argument");
    // Calling the partial object is a computed callable.
    assert!(fs.iter().any(|f| f.id == "M010"), "{fs:#?}");
}

#[test]
fn methodcaller_and_getattr_chains() {
    let p = P::new()
        .proto(2)
        .global("_operator", "methodcaller")
        .binunicode("system")
        .binunicode("id")
        .tuple2()
        .reduce()
        .global("builtins", "getattr")
        .global("pydoc", "locate")
        .binunicode("os")
        .tuple1()
        .reduce()
        .binunicode("path")
        .tuple2()
        .reduce()
        .tuple1()
        .reduce()
        .stop()
        .bytes();
    let fs = scan_bytes("mc.pkl", &p);
    assert_critical(&fs, "_operator", "methodcaller");
    assert_critical(&fs, "builtins", "getattr");
    assert_critical(&fs, "pydoc", "locate");
}

#[test]
fn unknown_globals_are_medium_or_high_when_called() {
    let imported = P::new()
        .proto(2)
        .global("acme.models", "Thing")
        .stop()
        .bytes();
    let fs = scan_bytes("u.pkl", &imported);
    let f = global_hit(&fs, "acme.models", "Thing").unwrap();
    assert_eq!((f.id.as_str(), f.severity), ("M002", Severity::Medium));

    let called = P::new()
        .proto(2)
        .global("acme.models", "Thing")
        .empty_tuple()
        .reduce()
        .stop()
        .bytes();
    let fs = scan_bytes("u.pkl", &called);
    let f = global_hit(&fs, "acme.models", "Thing").unwrap();
    assert_eq!((f.id.as_str(), f.severity), ("M002", Severity::High));

    // Passed as an argument to an allowed callable: still high.
    let passed = P::new()
        .proto(2)
        .global("torch._tensor", "_rebuild_from_type_v2")
        .global("acme", "hook")
        .tuple1()
        .reduce()
        .stop()
        .bytes();
    let fs = scan_bytes("u.pkl", &passed);
    assert_eq!(
        global_hit(&fs, "acme", "hook").unwrap().severity,
        Severity::High
    );
}

#[test]
fn second_pickle_after_stop_is_scanned() {
    let mut data = P::new().proto(2).op(b']').stop().bytes();
    data.extend(
        P::new()
            .proto(2)
            .global("posix", "system")
            .binunicode("id")
            .tuple1()
            .reduce()
            .stop()
            .bytes(),
    );
    let fs = scan_bytes("two.pkl", &data);
    let f = assert_critical(&fs, "posix", "system");
    assert_eq!(f.evidence["stream"], 1);
}

#[test]
fn broken_stream_still_reports_what_ran_before_the_break() {
    let mut p = P::new()
        .global("builtins", "exec")
        .mark()
        .string0("print(1)")
        .tuple()
        .reduce()
        .bytes();
    p.extend(b"\xff\xfe garbage");
    let fs = scan_bytes("broken.pkl", &p);
    assert_critical(&fs, "builtins", "exec");
    assert!(fs.iter().any(|f| f.id == "M003"));
}

#[test]
fn build_into_an_imported_module_is_critical() {
    let p = P::new()
        .proto(4)
        .short_unicode("torch")
        .short_unicode("_utils")
        .stack_global()
        .op(b'}')
        .binunicode("_rebuild_tensor_v2")
        .global("os", "system")
        .op(b's')
        .build()
        .stop()
        .bytes();
    let fs = scan_bytes("poison.pkl", &p);
    assert!(
        fs.iter()
            .any(|f| f.id == "M006" && f.severity == Severity::Critical),
        "{fs:#?}"
    );
}

#[test]
fn frame_straddle_is_reported_and_decoded_like_cpython() {
    // The FRAME says 2 bytes, the BINBYTES in it claims more: the C unpickler ignores frame
    // boundaries, so the GLOBAL after it runs.
    let inner = P::new().global("os", "system").stop().bytes();
    let p = P::new()
        .proto(4)
        .frame(2)
        .short_binbytes(b"ab")
        .pop()
        .raw(&inner)
        .bytes();
    let fs = scan_bytes("frame.pkl", &p);
    assert!(fs.iter().any(|f| f.id == "M011"), "{fs:#?}");
    assert_critical(&fs, "os", "system");
}

#[test]
fn ext_opcodes_are_unresolved_high() {
    let p = P::new()
        .proto(2)
        .raw(&[0x82, 0x05])
        .empty_tuple()
        .reduce()
        .stop()
        .bytes();
    let fs = scan_bytes("ext.pkl", &p);
    assert!(
        fs.iter()
            .any(|f| f.id == "M010" && f.severity >= Severity::High),
        "{fs:#?}"
    );
}

#[test]
fn resource_limits_turn_into_findings() {
    let mut p = vec![0x80, 2];
    p.extend(std::iter::repeat_n(b'(', 20_000));
    let fs = scan_bytes("deep.pkl", &p);
    assert!(fs.iter().any(|f| f.id == "M008"), "{fs:#?}");
}

#[test]
fn gigantic_length_fields_do_not_allocate() {
    for op in [b'B', b'X', b'T'] {
        let mut p = vec![0x80, 4, op];
        p.extend(u32::MAX.to_le_bytes());
        p.extend(b"short");
        let fs = scan_bytes("big.pkl", &p);
        assert!(fs.iter().any(|f| f.id == "M003"), "{fs:#?}");
    }
    for op in [0x8d, 0x8e, 0x96, 0x95] {
        let mut p = vec![0x80, 4, op];
        p.extend(u64::MAX.to_le_bytes());
        let fs = scan_bytes("big.pkl", &p);
        assert!(fs.iter().any(|f| f.id == "M003"), "{op:x}: {fs:#?}");
    }
}

#[test]
fn object_dtype_npy_scans_its_pickle() {
    let payload = P::new()
        .proto(3)
        .global("subprocess", "run")
        .binunicode("id")
        .tuple1()
        .reduce()
        .stop()
        .bytes();
    let data = npy("|O", "(1,)", &payload);
    let fs = scan_bytes("x.npy", &data);
    assert!(fs
        .iter()
        .any(|f| f.id == "M005" && f.severity == Severity::Low));
    let f = assert_critical(&fs, "subprocess", "run");
    // Offsets count from the start of the file.
    assert!(f.evidence["offset"].as_u64().unwrap() > 10);
}

#[test]
fn plain_npy_and_benign_object_npy_are_quiet() {
    assert!(scan_bytes("a.npy", &npy("<f8", "(2,)", &[0u8; 16])).is_empty());
    let fs = scan_bytes("o.npy", &npy("|O", "(1,)", &numpy_array()));
    assert_quiet(&fs);
}

#[test]
fn zip_with_pickle_under_unusual_folder_name() {
    let evil = P::new()
        .proto(2)
        .global("builtins", "eval")
        .binunicode("1")
        .tuple1()
        .reduce()
        .stop()
        .bytes();
    let data = zip(&[
        Member::new("totally_not_a_model/data.pkl", &evil),
        Member::new("totally_not_a_model/version", b"3\n"),
    ]);
    let fs = scan_bytes("model.pt", &data);
    let f = assert_critical(&fs, "builtins", "eval");
    assert_eq!(
        f.location.member.as_deref(),
        Some("totally_not_a_model/data.pkl")
    );
}

#[test]
fn zip_tricks_are_findings() {
    let evil = P::new().proto(2).global("os", "system").stop().bytes();
    // Local/central name mismatch + flag bits PyTorch ignores + deflate.
    let mut m = Member::new("archive/data.pkl", &evil);
    m.local_name = Some("archive/datap.kl");
    m.flags = 0x1;
    m.deflate = true;
    let fs = scan_bytes("tricky.pt", &zip(&[m]));
    assert_critical(&fs, "os", "system");
    assert!(fs
        .iter()
        .any(|f| f.id == "M004" && f.evidence["local_name"] == "archive/datap.kl"));
    assert!(fs
        .iter()
        .any(|f| f.id == "M004" && f.evidence["flags"] == 1));

    // Pickle under a non-pickle member name.
    let fs = scan_bytes("w.zip", &zip(&[Member::new("data.txt", &evil)]));
    assert_critical(&fs, "os", "system");

    // Path traversal.
    let fs = scan_bytes(
        "t.zip",
        &zip(&[Member::new("../../etc/cron.d/x", b"hello")]),
    );
    assert!(fs
        .iter()
        .any(|f| f.id == "M004" && f.severity == Severity::High));

    // Declared decompression bomb.
    let zeros = vec![0u8; 4096];
    let mut b = Member::new("big.bin", &zeros);
    b.deflate = true;
    b.declared_size = Some(3_000_000_000);
    let fs = scan_bytes("bomb.zip", &zip(&[b]));
    assert!(
        fs.iter()
            .any(|f| f.id == "M004" && f.message.contains("bomb")),
        "{fs:#?}"
    );

    // Junk prepended to the archive: offsets shift, the members are still found.
    let mut junk = b"twenty bytes of junk".to_vec();
    junk.extend(zip(&[Member::new("a/data.pkl", &evil)]));
    assert_critical(&scan_bytes("junk.bin", &junk), "os", "system");

    // Zip inside zip.
    let inner = zip(&[Member::new("x/data.pkl", &evil)]);
    let fs = scan_bytes("outer.zip", &zip(&[Member::new("inner.zip", &inner)]));
    let f = assert_critical(&fs, "os", "system");
    assert_eq!(f.location.member.as_deref(), Some("inner.zip!x/data.pkl"));
}

#[test]
fn seven_zip_is_unscannable_high() {
    let fs = scan_bytes("m.7z", b"7z\xbc\xaf\x27\x1c\x00\x04rest");
    assert!(fs
        .iter()
        .any(|f| f.id == "M007" && f.severity == Severity::High));
}

#[test]
fn legacy_torch_scans_five_pickles_then_stops_at_raw_storage() {
    let magic = P::new()
        .proto(2)
        .long1(&[0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19])
        .stop()
        .bytes();
    let proto = P::new().proto(2).binint(1001).stop().bytes();
    let sys_info = P::new()
        .proto(2)
        .op(b'}')
        .binunicode("little_endian")
        .op(0x88)
        .op(b's')
        .stop()
        .bytes();
    let keys = P::new()
        .proto(2)
        .op(b']')
        .binunicode("0")
        .op(b'a')
        .stop()
        .bytes();
    let mut file = Vec::new();
    file.extend(&magic);
    file.extend(&proto);
    file.extend(&sys_info);
    file.extend(torch_state_dict());
    file.extend(&keys);
    // Raw storage: 8-byte count, then float data that happens to start like a pickle header.
    file.extend(4u64.to_le_bytes());
    file.extend([0x80, 0x02, 0x00, 0x00, 0xff, 0xff, 0x00, 0x00]);
    assert_quiet(&scan_bytes("pytorch_model.bin", &file));

    // The same file with the payload in the fourth pickle.
    let mut evil = Vec::new();
    evil.extend(&magic);
    evil.extend(&proto);
    evil.extend(&sys_info);
    evil.extend(P::new().proto(2).global("os", "system").stop().bytes());
    evil.extend(&keys);
    assert_critical(&scan_bytes("pytorch_model.bin", &evil), "os", "system");
}

#[test]
fn legacy_torch_tar_members_are_scanned() {
    fn tar_member(out: &mut Vec<u8>, name: &str, body: &[u8]) {
        let mut h = [0u8; 512];
        h[..name.len()].copy_from_slice(name.as_bytes());
        let size = format!("{:011o}\0", body.len());
        h[124..136].copy_from_slice(size.as_bytes());
        h[156] = b'0';
        h[257..263].copy_from_slice(b"ustar\0");
        out.extend(h);
        out.extend(body);
        out.extend(std::iter::repeat_n(0u8, (512 - body.len() % 512) % 512));
    }
    let mut t = Vec::new();
    tar_member(
        &mut t,
        "sys_info",
        &P::new().proto(2).op(b'}').stop().bytes(),
    );
    tar_member(
        &mut t,
        "pickle",
        &P::new().proto(2).global("os", "system").stop().bytes(),
    );
    t.extend([0u8; 1024]);
    let fs = scan_bytes("legacy.tar", &t);
    let f = assert_critical(&fs, "os", "system");
    assert_eq!(f.location.member.as_deref(), Some("pickle"));
}

#[test]
fn benign_torch_zip_checkpoint_is_quiet() {
    let dict = torch_state_dict();
    // Storage bytes that look like a pickle header are raw tensor data, never unpickled.
    let storage = [0x80u8, 0x02, 0x00, 0x00, 0x80, 0x3f, 0x00, 0x00];
    let data = zip(&[
        Member::new("archive/data.pkl", &dict),
        Member::new("archive/data/0", &storage),
        Member::new("archive/version", b"3\n"),
        Member::new("archive/byteorder", b"little"),
    ]);
    let fs = scan_bytes("pytorch_model.bin", &data);
    assert!(fs.is_empty(), "{fs:#?}");
    assert!(scan_bytes("data.pkl", &dict).is_empty());
}

#[test]
fn numpy_reconstruct_is_quiet() {
    assert!(scan_bytes("arr.pkl", &numpy_array()).is_empty());
}

#[test]
fn plain_containers_at_every_protocol_are_quiet() {
    // Protocol 0: text opcodes only.
    let p0 = P::new()
        .op(b'(')
        .op(b'l')
        .put0(0)
        .int0(7)
        .op(b'a')
        .string0("a\\'b")
        .op(b'a')
        .unicode0("caf\\u00e9")
        .op(b'a')
        .op(b'(')
        .op(b'd')
        .put0(1)
        .string0("k")
        .raw(b"F1.5\n")
        .op(b's')
        .op(b'a')
        .raw(b"L123456789012345678901234567890L\n")
        .op(b'a')
        .op(b'N')
        .op(b'a')
        .get0(1)
        .op(b'a')
        .stop()
        .bytes();
    assert!(
        scan_bytes("p0.pkl", &p0).is_empty(),
        "{:#?}",
        scan_bytes("p0.pkl", &p0)
    );
    // Protocol 1: binary opcodes, no PROTO header.
    let p1 = P::new()
        .op(b']')
        .binput(0)
        .mark()
        .binint1(1)
        .binint(-5)
        .raw(b"M\x10\x00")
        .short_binstring("abc")
        .binfloat(2.5)
        .op(b')')
        .op(b'}')
        .op(b'e')
        .stop()
        .bytes();
    assert!(
        scan_bytes("p1.pkl", &p1).is_empty(),
        "{:#?}",
        scan_bytes("p1.pkl", &p1)
    );
    for proto in 2..=5u8 {
        let mut body = P::new()
            .op(b'}')
            .memoize()
            .mark()
            .short_unicode("list")
            .op(b']')
            .memoize()
            .mark()
            .binint1(1)
            .op(0x88)
            .op(0x89)
            .long1(&[0xff, 0x7f])
            .op(b'e')
            .short_unicode("tuple")
            .binint1(1)
            .binint1(2)
            .tuple2()
            .short_unicode("set")
            .op(0x8f)
            .mark()
            .binint1(3)
            .op(0x90)
            .short_unicode("frozen")
            .mark()
            .binint1(4)
            .op(0x91)
            .short_unicode("bytes")
            .short_binbytes(b"\x00\x01")
            .short_unicode("big")
            .binbytes(&[7u8; 300])
            .short_unicode("again")
            .binget(1)
            .op(b'u');
        if proto == 5 {
            body = body.short_unicode("ba").bytearray8(b"xyz").op(b's');
        }
        let body = body.stop().bytes();
        let mut p = P::new().proto(proto);
        if proto >= 4 {
            p = p.frame(body.len() as u64);
        }
        let data = p.raw(&body).bytes();
        let fs = scan_bytes("p.pkl", &data);
        assert!(fs.is_empty(), "protocol {proto}: {fs:#?}");
    }
}

#[test]
fn unknown_content_is_info_only() {
    let fs = scan_bytes("bad_pytorch.pt", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR");
    assert_eq!(max(&fs), Some(Severity::Info), "{fs:#?}");
    let fs = scan_bytes("model.onnx", b"\x08\x07\x12\x04onnx");
    assert_eq!(max(&fs), Some(Severity::Info));
    assert!(scan_bytes("config.json", b"{\"model_type\": \"bert\"}").is_empty());
}

#[test]
fn scan_paths_walks_folders_and_digests_files() {
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("weights");
    std::fs::create_dir(&sub).unwrap();
    std::fs::write(
        sub.join("a.pkl"),
        P::new().proto(2).global("os", "system").stop().bytes(),
    )
    .unwrap();
    std::fs::write(dir.path().join("b.bin"), torch_state_dict()).unwrap();
    let report = tunegate_artifact::scan_paths(&[dir.path().to_path_buf()]).unwrap();
    assert_eq!(report.gate, "model");
    assert_eq!(report.subjects.len(), 2);
    assert!(report
        .subjects
        .iter()
        .all(|s| s.digest["sha256"].len() == 64));
    assert_eq!(report.summary.records, Some(2));
    assert_eq!(report.verdict, tunegate_core::Verdict::Fail);
    assert!(report
        .findings
        .iter()
        .all(|f| f.location.file.as_deref().unwrap().ends_with("a.pkl")));
    let missing = tunegate_artifact::scan_paths(&[dir.path().join("nope")]);
    assert!(missing.is_err());
}

#[test]
fn chat_template_injection_in_tokenizer_config_gguf_and_jinja() {
    let cfg = br#"{"chat_template": "{{ cycler.__init__.__globals__.os.popen('id').read() }}"}"#;
    let fs = scan_bytes("tokenizer_config.json", cfg);
    assert!(
        fs.iter()
            .any(|f| f.id == "M012" && f.severity == Severity::High),
        "{fs:#?}"
    );

    let hex = br#"{"chat_template": "{{ x['\\x5f\\x5fclass\\x5f\\x5f'] }}"}"#;
    assert!(scan_bytes("tokenizer_config.json", hex)
        .iter()
        .any(|f| f.id == "M012"));

    let mut gguf = b"GGUF\x03\x00\x00\x00".to_vec();
    let t = b"{{ x | attr('__class__') }}";
    gguf.extend(b"tokenizer.chat_template");
    gguf.extend(8u32.to_le_bytes());
    gguf.extend((t.len() as u64).to_le_bytes());
    gguf.extend(t);
    assert!(scan_bytes("model.gguf", &gguf)
        .iter()
        .any(|f| f.id == "M012"));

    let jinja = b"{% for m in messages %}{{ m.__class__ }}{% endfor %}";
    assert!(scan_bytes("chat.jinja", jinja)
        .iter()
        .any(|f| f.id == "M012"));

    let benign = br#"{"chat_template": "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant' }}{% endif %}"}"#;
    assert!(scan_bytes("tokenizer_config.json", benign).is_empty());
}

#[test]
fn keras_lambda_and_tf_pyfunc() {
    let cfg = br#"{"class_name": "Sequential", "config": {"layers": [{"class_name": "Lambda", "config": {"function": "..."}}]}}"#;
    let mut h5 = b"\x89HDF\r\n\x1a\n".to_vec();
    h5.extend(cfg);
    assert!(scan_bytes("model.h5", &h5).iter().any(|f| f.id == "M013"));
    assert!(scan_bytes("config.json", cfg)
        .iter()
        .any(|f| f.id == "M013"));
    let keras = zip(&[Member::new("config.json", cfg)]);
    assert!(scan_bytes("model.keras", &keras)
        .iter()
        .any(|f| f.id == "M013"));
    assert!(scan_bytes("safe.h5", b"\x89HDF\r\n\x1a\n{\"class_name\": \"Dense\"}").is_empty());

    let pb = b"\x12\x21\x12\x1f\x0a\x0e\x0a\x05Const\x12\x05Const\x0a\x0d\x0a\x03bad\x12\x06PyFunc";
    let fs = scan_bytes("saved_model.pb", pb);
    assert!(
        fs.iter()
            .any(|f| f.id == "M014" && f.evidence["ops"][0] == "PyFunc"),
        "{fs:#?}"
    );
    assert!(scan_bytes("saved_model.pb", b"\x12\x05Const").is_empty());
}

fn safetensors(header: &str, data_len: usize) -> Vec<u8> {
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend(header.bytes());
    out.extend(std::iter::repeat_n(0u8, data_len));
    out
}

#[test]
fn safetensors_headers_are_validated() {
    let good = r#"{"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},"b":{"dtype":"BF16","shape":[4],"data_offsets":[16,24]}}"#;
    assert!(scan_bytes("model.safetensors", &safetensors(good, 24)).is_empty());

    let cases = [
        (
            r#"{"a":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},"b":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}}"#,
            16,
            "overlaps",
        ),
        (
            r#"{"a":{"dtype":"F32","shape":[2,2],"data_offsets":[0,64]}}"#,
            16,
            "past the",
        ),
        (
            r#"{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,16]}}"#,
            16,
            "disagree",
        ),
        (
            r#"{"a":{"dtype":"Q9","shape":[3],"data_offsets":[0,16]}}"#,
            16,
            "unknown dtype",
        ),
        (
            r#"{"__metadata__":{"k":1},"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}"#,
            1,
            "__metadata__",
        ),
        (
            r#"{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}"#,
            9,
            "not described",
        ),
        (r#"{"a": nope}"#, 0, "not valid JSON"),
    ];
    for (h, n, want) in cases {
        let fs = scan_bytes("m.safetensors", &safetensors(h, n));
        assert!(
            fs.iter().any(|f| f.id == "M017"
                && f.severity >= Severity::Medium
                && f.message.contains(want)),
            "{want}: {fs:#?}"
        );
    }
    let mut huge = u64::MAX.to_le_bytes().to_vec();
    huge.extend(b"{}");
    let fs = scan_bytes("m.safetensors", &huge);
    assert!(fs
        .iter()
        .any(|f| f.id == "M017" && f.severity == Severity::High));
}

#[test]
fn remote_code_and_weight_twins() {
    let local = br#"{"auto_map": {"AutoModel": "modeling_x.XModel"}}"#;
    let fs = scan_bytes("config.json", local);
    assert!(
        fs.iter()
            .any(|f| f.id == "M015" && f.severity == Severity::Medium),
        "{fs:#?}"
    );
    let cross =
        br#"{"auto_map": {"AutoTokenizer": ["other/repo--tokenization_x.XTokenizer", null]}}"#;
    let fs = scan_bytes("tokenizer_config.json", cross);
    assert!(
        fs.iter().any(|f| f.id == "M015"
            && f.severity == Severity::High
            && f.evidence["cross_repo"] == true),
        "{fs:#?}"
    );
    let pipes =
        br#"{"custom_pipelines": {"my-task": {"impl": "pipe.MyPipeline", "pt": ["AutoModel"]}}}"#;
    let fs = scan_bytes("config.json", pipes);
    assert_eq!(fs.len(), 1, "{fs:#?}");
    assert!(scan_bytes("modeling_x.py", b"import os\n")
        .iter()
        .any(|f| f.id == "M015"));

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("pytorch_model.bin"), torch_state_dict()).unwrap();
    let st = r#"{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}"#;
    std::fs::write(dir.path().join("model.safetensors"), safetensors(st, 1)).unwrap();
    let r = tunegate_artifact::scan_paths(&[dir.path().to_path_buf()]).unwrap();
    let twin = r
        .findings
        .iter()
        .find(|f| f.id == "M016")
        .expect("twin finding");
    assert_eq!(twin.severity, Severity::Info);
    assert_eq!(twin.evidence["loaded"], "safetensors");
    assert_eq!(r.verdict, tunegate_core::Verdict::Pass);
}

#[test]
fn zip_read_from_disk_member_by_member() {
    use tunegate_artifact::container::{scan_zip_source, Ctx, FileSource};
    let evil = P::new().proto(2).global("os", "system").stop().bytes();
    let big_storage = vec![0x80u8; 1 << 20];
    let data = zip(&[
        Member::new("ckpt/data/0", &big_storage),
        Member::new("ckpt/data.pkl", &evil),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.pt");
    std::fs::write(&path, &data).unwrap();
    let src = FileSource::new(&path).unwrap();
    let mut ctx = Ctx::new("model.pt");
    scan_zip_source(&mut ctx, &src, None, 0);
    assert_critical(&ctx.findings, "os", "system");
    assert_eq!(ctx.findings.len(), 1, "{:#?}", ctx.findings);
}

#[test]
fn big_pickle_on_disk_is_streamed_and_payloads_skipped() {
    // 80 MiB of payload (over the streaming threshold), then the call.
    let payload = vec![0u8; 80 << 20];
    let mut data = P::new().proto(4).bytes();
    data.push(0x8e); // BINBYTES8
    data.extend((payload.len() as u64).to_le_bytes());
    data.extend(&payload);
    data.extend(
        P::new()
            .op(b'0')
            .short_unicode("posix")
            .short_unicode("system")
            .stack_global()
            .binunicode("id")
            .tuple1()
            .reduce()
            .stop()
            .bytes(),
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.pkl");
    std::fs::write(&path, &data).unwrap();
    let fs = tunegate_artifact::scan::scan_file(&path, "big.pkl").unwrap();
    let f = assert_critical(&fs, "posix", "system");
    assert_eq!(
        f.evidence["offset"].as_u64().unwrap(),
        2 + 9 + (80 << 20) + 1 + 7 + 8
    );
}
