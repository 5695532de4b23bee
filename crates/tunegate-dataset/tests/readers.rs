//! Readers: every schema in JSONL, CSV/TSV and Parquet; malformed records as `D001` with the
//! right line and index; errors that name the file; raw ranges that reproduce the input.
use parquet::data_type::{ByteArray, ByteArrayType, Int64Type};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::parser::parse_message_type;
use proptest::prelude::*;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tunegate_core::progress::NoProgress;
use tunegate_dataset::read::{self, ReadOptions};
use tunegate_dataset::{Dataset, Error, Format, Record, Role, Schema};

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    if let Some(parent) = p.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(&p, bytes).unwrap();
    p
}

fn read_one(path: &Path) -> Dataset {
    read::read_paths(&[path.to_path_buf()], None, &NoProgress).unwrap()
}

fn fields(r: &Record) -> Vec<(&str, Role, &str)> {
    r.fields
        .iter()
        .map(|f| (&*f.path, f.role, f.text.as_str()))
        .collect()
}

// ---------------------------------------------------------------- Parquet writing helpers

/// One leaf column: values (strings or i64) with definition and repetition levels.
enum Values {
    Str(Vec<&'static str>),
    Int(Vec<i64>),
}

struct Col {
    values: Values,
    def: Option<Vec<i16>>,
    rep: Option<Vec<i16>>,
}

fn strs(v: Vec<&'static str>) -> Col {
    Col {
        values: Values::Str(v),
        def: None,
        rep: None,
    }
}

fn nested(v: Vec<&'static str>, def: Vec<i16>, rep: Vec<i16>) -> Col {
    Col {
        values: Values::Str(v),
        def: Some(def),
        rep: Some(rep),
    }
}

/// Writes a Parquet file with `schema`, one row group per entry of `groups` (leaf columns in
/// schema order).
fn write_parquet(path: &Path, schema: &str, groups: Vec<Vec<Col>>) {
    let schema = Arc::new(parse_message_type(schema).unwrap());
    let props = Arc::new(WriterProperties::builder().build());
    let file = std::fs::File::create(path).unwrap();
    let mut w = SerializedFileWriter::new(file, schema, props).unwrap();
    for cols in groups {
        let mut rg = w.next_row_group().unwrap();
        let mut cols = cols.into_iter();
        while let Some(mut cw) = rg.next_column().unwrap() {
            let c = cols.next().expect("a column per leaf");
            let def = c.def.as_deref();
            let rep = c.rep.as_deref();
            match c.values {
                Values::Str(v) => {
                    let v: Vec<ByteArray> = v
                        .iter()
                        .map(|s| ByteArray::from(s.as_bytes().to_vec()))
                        .collect();
                    cw.typed::<ByteArrayType>()
                        .write_batch(&v, def, rep)
                        .unwrap();
                }
                Values::Int(v) => {
                    cw.typed::<Int64Type>().write_batch(&v, def, rep).unwrap();
                }
            }
            cw.close().unwrap();
        }
        rg.close().unwrap();
    }
    w.close().unwrap();
}

const CHAT_SCHEMA: &str = "message m {
  REQUIRED group messages (LIST) {
    REPEATED group list {
      REQUIRED group element {
        REQUIRED BYTE_ARRAY role (UTF8);
        REQUIRED BYTE_ARRAY content (UTF8);
      }
    }
  }
}";

// ---------------------------------------------------------------- JSONL

/// File name, content, expected schema, expected fields of the first record, expected label.
type Case = (
    &'static str,
    &'static str,
    Schema,
    Vec<(&'static str, Role, &'static str)>,
    Option<&'static str>,
);

#[test]
fn jsonl_every_schema() {
    let dir = tempfile::tempdir().unwrap();
    let cases: Vec<Case> = vec![
        (
            "alpaca.jsonl",
            r#"{"instruction": "Add", "input": "2+2", "output": "4"}"#,
            Schema::Instruction,
            vec![
                ("instruction", Role::Prompt, "Add"),
                ("input", Role::Prompt, "2+2"),
                ("output", Role::Response, "4"),
            ],
            None,
        ),
        (
            "resp.jsonl",
            r#"{"instruction": "Hi", "input": "", "response": "Hello"}"#,
            Schema::Instruction,
            vec![
                ("instruction", Role::Prompt, "Hi"),
                ("response", Role::Response, "Hello"),
            ],
            None,
        ),
        (
            "chat.jsonl",
            r#"{"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "q"}, {"role": "assistant", "content": [{"type": "text", "text": "a"}]}]}"#,
            Schema::Chat,
            vec![
                ("messages[0].content", Role::System, "s"),
                ("messages[1].content", Role::Prompt, "q"),
                ("messages[2].content[0].text", Role::Response, "a"),
            ],
            None,
        ),
        (
            "sharegpt.jsonl",
            r#"{"conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}]}"#,
            Schema::Chat,
            vec![
                ("conversations[0].value", Role::Prompt, "q"),
                ("conversations[1].value", Role::Response, "a"),
            ],
            None,
        ),
        (
            "pc.jsonl",
            r#"{"prompt": "p", "completion": "c"}"#,
            Schema::PromptCompletion,
            vec![
                ("prompt", Role::Prompt, "p"),
                ("completion", Role::Response, "c"),
            ],
            None,
        ),
        (
            "pref.jsonl",
            r#"{"prompt": "p", "chosen": "good", "rejected": "bad"}"#,
            Schema::Preference,
            vec![
                ("prompt", Role::Prompt, "p"),
                ("chosen", Role::Response, "good"),
                ("rejected", Role::Rejected, "bad"),
            ],
            None,
        ),
        (
            "pref_msgs.jsonl",
            r#"{"prompt": [{"role": "user", "content": "p"}], "chosen": [{"role": "assistant", "content": "good"}], "rejected": [{"role": "assistant", "content": "bad"}]}"#,
            Schema::Preference,
            vec![
                ("prompt[0].content", Role::Prompt, "p"),
                ("chosen[0].content", Role::Response, "good"),
                ("rejected[0].content", Role::Rejected, "bad"),
            ],
            None,
        ),
        (
            "labels.jsonl",
            r#"{"text": "great film", "label": 1}"#,
            Schema::TextLabel,
            vec![("text", Role::Prompt, "great film")],
            Some("1"),
        ),
        (
            "sst.jsonl",
            r#"{"sentence": "meh", "label": "negative"}"#,
            Schema::TextLabel,
            vec![("sentence", Role::Prompt, "meh")],
            Some("negative"),
        ),
    ];
    for (name, line, schema, want, label) in cases {
        let p = write(dir.path(), name, format!("{line}\n").as_bytes());
        let ds = read_one(&p);
        assert_eq!(ds.files[0].schema, schema, "{name}");
        assert_eq!(ds.files[0].format, Format::Jsonl);
        assert_eq!(ds.files[0].records, 1);
        assert!(ds.malformed.is_empty(), "{name}: {:?}", ds.malformed);
        assert_eq!(fields(&ds.records[0]), want, "{name}");
        assert_eq!(ds.records[0].label.as_deref(), label, "{name}");
        assert_eq!(ds.records[0].line, Some(1));
        assert_eq!(ds.records[0].raw, Some((0, line.len() as u64 + 1)));
        let bytes = std::fs::read(&p).unwrap();
        assert_eq!(
            ds.files[0].sha256,
            tunegate_core::digest::sha256_hex(&bytes)
        );
        assert_eq!(ds.files[0].size, bytes.len() as u64);
    }
}

#[test]
fn malformed_lines_are_findings_with_line_and_index() {
    let dir = tempfile::tempdir().unwrap();
    let mut body = Vec::new();
    body.extend_from_slice(b"{\"instruction\": \"a\", \"output\": \"1\"}\n"); // line 1, record 0
    body.extend_from_slice(b"{\"instruction\": \"b\", \"output\": \n"); // line 2, record 1: bad JSON
    body.extend_from_slice(b"\n"); // line 3: blank
    body.extend_from_slice(b"   \r\n"); // line 4: blank
    body.extend_from_slice(b"[1, 2]\n"); // line 5, record 2: not an object
    body.extend_from_slice(b"{\"instruction\": \"c\"}\n"); // line 6, record 3: missing output
    body.extend_from_slice(b"{\"instruction\": \"\xff\", \"output\": \"x\"}\n"); // line 7, record 4: bad UTF-8
    body.extend_from_slice(b"{\"instruction\": \"d\", \"output\": \"2\", \"output\": \"3\"}\n"); // line 8, record 5
    body.extend_from_slice(b"{\"instruction\": \"e\", \"output\": \"4\"}"); // line 9, record 6, no newline
    let p = write(dir.path(), "d.jsonl", &body);
    let ds = read_one(&p);
    let f = &ds.files[0];
    assert_eq!(f.records, 7);
    let got: Vec<(u64, Option<u64>)> = ds.records.iter().map(|r| (r.index, r.line)).collect();
    assert_eq!(got, vec![(0, Some(1)), (6, Some(9))]);
    let bad: Vec<(u64, u64, &str)> = ds
        .malformed
        .iter()
        .map(|f| {
            assert_eq!(f.id, "D001");
            assert_eq!(f.location.file.as_deref(), Some(p.to_str().unwrap()));
            (
                f.location.record.unwrap(),
                f.location.line.unwrap(),
                f.message.as_str(),
            )
        })
        .collect();
    assert_eq!(bad.len(), 5, "{bad:?}");
    assert_eq!((bad[0].0, bad[0].1), (1, 2));
    assert!(
        bad[0].2.starts_with("line 2: not valid JSON"),
        "{}",
        bad[0].2
    );
    assert_eq!((bad[1].0, bad[1].1), (2, 5));
    assert!(bad[1].2.contains("not a JSON object (found an array)"));
    assert_eq!((bad[2].0, bad[2].1), (3, 6));
    assert!(
        bad[2].2.contains("missing field 'output' or 'response'"),
        "{}",
        bad[2].2
    );
    assert_eq!((bad[3].0, bad[3].1), (4, 7));
    assert!(bad[3].2.contains("invalid UTF-8"));
    assert_eq!((bad[4].0, bad[4].1), (5, 8));
    assert!(bad[4].2.contains("duplicate key 'output'"));
    // Every record's raw range, in index order, rebuilds the file minus its blank lines.
    let mut ranges: Vec<(u64, (u64, u64))> = ds
        .records
        .iter()
        .map(|r| (r.index, r.raw.unwrap()))
        .collect();
    ranges.extend(ds.malformed_raw.iter().map(|m| (m.1, m.2)));
    ranges.sort_unstable();
    let rebuilt: Vec<u8> = ranges
        .iter()
        .flat_map(|(_, (a, b))| body[*a as usize..*b as usize].to_vec())
        .collect();
    let without_blanks: Vec<u8> = body
        .split_inclusive(|b| *b == b'\n')
        .filter(|l| !l.iter().all(|b| b.is_ascii_whitespace()))
        .flatten()
        .copied()
        .collect();
    assert_eq!(rebuilt, without_blanks);
}

#[test]
fn overlong_line_is_a_finding_and_later_records_survive() {
    let mut body = b"{\"prompt\": \"p\", \"completion\": \"c\"}\n".to_vec();
    let first = body.len() as u64;
    body.extend_from_slice(
        format!(
            "{{\"prompt\": \"{}\", \"completion\": \"c\"}}\n",
            "x".repeat(500)
        )
        .as_bytes(),
    );
    let second = body.len() as u64;
    body.extend_from_slice(b"{\"prompt\": \"q\", \"completion\": \"d\"}\n");
    let opts = ReadOptions {
        schema: None,
        max_record_bytes: 100,
    };
    let fd = read::read_bytes("big.jsonl", &body, Format::Jsonl, &opts).unwrap();
    assert_eq!(fd.records.len(), 2);
    assert_eq!(fd.records[1].index, 2);
    assert_eq!(fd.records[1].line, Some(3));
    assert_eq!(fd.malformed.len(), 1);
    assert_eq!(fd.malformed[0].location.record, Some(1));
    assert!(
        fd.malformed[0].message.contains("over the 100 byte limit"),
        "{}",
        fd.malformed[0].message
    );
    assert_eq!(fd.malformed_raw[0].2, (first, second));
    assert_eq!(fd.info.sha256, tunegate_core::digest::sha256_hex(&body));
}

#[test]
fn bom_and_crlf_are_tolerated() {
    let body =
        b"\xEF\xBB\xBF{\"text\": \"a\", \"label\": 0}\r\n{\"text\": \"b\", \"label\": false}\r\n";
    let fd = read::read_bytes("x.jsonl", body, Format::Jsonl, &ReadOptions::default()).unwrap();
    assert!(fd.malformed.is_empty(), "{:?}", fd.malformed);
    assert_eq!(fd.records.len(), 2);
    assert_eq!(fd.records[0].raw, Some((0, 30)));
    assert_eq!(fd.records[1].label.as_deref(), Some("false"));
}

#[test]
fn ids_are_kept() {
    let body = b"{\"id\": 7, \"prompt\": \"p\", \"completion\": \"c\"}\n{\"prompt\": \"p\", \"completion\": \"c\"}\n";
    let fd = read::read_bytes("x.jsonl", body, Format::Jsonl, &ReadOptions::default()).unwrap();
    assert_eq!(fd.ids, vec![Some("7".to_string()), None]);
}

// ---------------------------------------------------------------- errors

fn unreadable_message(e: Error, path: &Path) -> String {
    match e {
        Error::Unreadable { path: p, message } => {
            assert_eq!(p, path);
            message
        }
        other => panic!("expected Unreadable, got {other:?}"),
    }
}

#[test]
fn errors_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    // Missing file.
    let missing = dir.path().join("nope.jsonl");
    let e = read::read_paths(std::slice::from_ref(&missing), None, &NoProgress).unwrap_err();
    assert!(
        matches!(&e, Error::Io { path, .. } if path == &missing),
        "{e:?}"
    );
    assert!(e.to_string().contains("nope.jsonl"));
    // Unknown extension.
    let txt = write(dir.path(), "notes.txt", b"hi");
    let e = read::read_paths(&[txt], None, &NoProgress).unwrap_err();
    assert!(
        matches!(&e, Error::Usage(m) if m.contains("notes.txt")),
        "{e:?}"
    );
    // Not a Parquet file.
    let pq = write(dir.path(), "fake.parquet", b"this is not parquet at all");
    let e = read::read_paths(std::slice::from_ref(&pq), None, &NoProgress).unwrap_err();
    let m = unreadable_message(e, &pq);
    assert!(m.contains("Parquet"), "{m}");
    // Fields that match no schema: the message lists them and the --schema choices.
    let odd = write(dir.path(), "odd.jsonl", b"{\"foo\": 1, \"bar\": 2}\n");
    let m = unreadable_message(
        read::read_paths(std::slice::from_ref(&odd), None, &NoProgress).unwrap_err(),
        &odd,
    );
    assert!(m.contains("[foo, bar]") && m.contains("--schema"), "{m}");
    // ... and with the schema forced, each record is a finding instead.
    let ds = read::read_paths(&[odd], Some(Schema::Instruction), &NoProgress).unwrap();
    assert_eq!(ds.malformed.len(), 1);
    // Empty CSV: no header.
    let csv = write(dir.path(), "empty.csv", b"");
    let m = unreadable_message(
        read::read_paths(std::slice::from_ref(&csv), None, &NoProgress).unwrap_err(),
        &csv,
    );
    assert!(m.contains("header"), "{m}");
    // A headerless CSV: its first row is taken as the header and matches no schema.
    let csv = write(dir.path(), "nohead.csv", b"what is 2+2,4\nhi,hello\n");
    let m = unreadable_message(
        read::read_paths(std::slice::from_ref(&csv), None, &NoProgress).unwrap_err(),
        &csv,
    );
    assert!(m.contains("header columns [what is 2+2, 4]"), "{m}");
    // A forced schema whose columns the header lacks.
    let csv = write(dir.path(), "pc.csv", b"prompt,completion\na,b\n");
    let m = unreadable_message(
        read::read_paths(std::slice::from_ref(&csv), Some(Schema::Chat), &NoProgress).unwrap_err(),
        &csv,
    );
    assert!(m.contains("messages|conversations"), "{m}");
    // A pretty-printed JSON array in a .json file.
    let js = write(
        dir.path(),
        "alpaca.json",
        b"[\n  {\"instruction\": \"a\", \"output\": \"b\"}\n]\n",
    );
    let m = unreadable_message(
        read::read_paths(std::slice::from_ref(&js), None, &NoProgress).unwrap_err(),
        &js,
    );
    assert!(m.contains("jq -c"), "{m}");
    // A JSONL file with no JSON object at all.
    let junk = write(dir.path(), "junk.jsonl", b"hello\nworld\n");
    let m = unreadable_message(
        read::read_paths(std::slice::from_ref(&junk), None, &NoProgress).unwrap_err(),
        &junk,
    );
    assert!(m.contains("not JSON Lines"), "{m}");
    // A CSV with an unclosed quote longer than the record limit.
    let mut body = b"prompt,completion\n\"".to_vec();
    body.extend(std::iter::repeat_n(b'a', 2_000_000));
    let opts = ReadOptions {
        schema: None,
        max_record_bytes: 1000,
    };
    let e = read::read_bytes("q.csv", &body, Format::Csv, &opts).unwrap_err();
    let m = unreadable_message(e, Path::new("q.csv"));
    assert!(m.contains("unclosed quote"), "{m}");
}

// ---------------------------------------------------------------- CSV / TSV

#[test]
fn csv_every_schema() {
    let dir = tempfile::tempdir().unwrap();
    let cases: Vec<Case> = vec![
        (
            "a.csv",
            "instruction,input,output\nAdd,2+2,4\n",
            Schema::Instruction,
            vec![("instruction", Role::Prompt, "Add"), ("input", Role::Prompt, "2+2"), ("output", Role::Response, "4")],
            None,
        ),
        (
            "chat.csv",
            "messages\n\"[{\"\"role\"\": \"\"user\"\", \"\"content\"\": \"\"q\"\"}, {\"\"role\"\": \"\"assistant\"\", \"\"content\"\": \"\"a\"\"}]\"\n",
            Schema::Chat,
            vec![("messages[0].content", Role::Prompt, "q"), ("messages[1].content", Role::Response, "a")],
            None,
        ),
        (
            "pc.tsv",
            "prompt\tcompletion\np, with comma\tc\n",
            Schema::PromptCompletion,
            vec![("prompt", Role::Prompt, "p, with comma"), ("completion", Role::Response, "c")],
            None,
        ),
        (
            "pref.csv",
            "prompt,chosen,rejected\np,good,bad\n",
            Schema::Preference,
            vec![("prompt", Role::Prompt, "p"), ("chosen", Role::Response, "good"), ("rejected", Role::Rejected, "bad")],
            None,
        ),
        (
            "labels.csv",
            "text,label\n\"great, really\",1\n",
            Schema::TextLabel,
            vec![("text", Role::Prompt, "great, really")],
            Some("1"),
        ),
    ];
    for (name, body, schema, want, label) in cases {
        let p = write(dir.path(), name, body.as_bytes());
        let ds = read_one(&p);
        assert_eq!(ds.files[0].schema, schema, "{name}");
        assert_eq!(ds.files[0].format, Format::Csv);
        assert!(ds.malformed.is_empty(), "{name}: {:?}", ds.malformed);
        assert_eq!(fields(&ds.records[0]), want, "{name}");
        assert_eq!(ds.records[0].label.as_deref(), label);
        assert_eq!(ds.records[0].line, Some(2));
        let header_len = body.find('\n').unwrap() as u64 + 1;
        assert_eq!(
            ds.records[0].raw,
            Some((header_len, body.len() as u64)),
            "{name}"
        );
    }
}

#[test]
fn csv_lines_and_ranges_survive_crlf_blank_lines_and_quoted_newlines() {
    let body = b"\xEF\xBB\xBFprompt,completion\r\np1,c1\r\n\r\n\r\n\"multi\nline\",c2\r\nragged\r\np3,\"c\xffx\"\r\np4,c4";
    let fd = read::read_bytes("x.csv", body, Format::Csv, &ReadOptions::default()).unwrap();
    assert_eq!(fd.info.records, 5);
    let recs: Vec<(u64, Option<u64>, &str)> = fd
        .records
        .iter()
        .map(|r| (r.index, r.line, r.fields[0].text.as_str()))
        .collect();
    assert_eq!(
        recs,
        vec![
            (0, Some(2), "p1"),
            (1, Some(5), "multi\nline"),
            (4, Some(9), "p4")
        ]
    );
    let bad: Vec<(Option<u64>, Option<u64>, &str)> = fd
        .malformed
        .iter()
        .map(|f| (f.location.record, f.location.line, f.message.as_str()))
        .collect();
    assert_eq!(bad[0].0, Some(2));
    assert_eq!(bad[0].1, Some(7));
    assert!(
        bad[0].2.contains("row has 1 fields, the header has 2"),
        "{}",
        bad[0].2
    );
    assert_eq!((bad[1].0, bad[1].1), (Some(3), Some(8)));
    assert!(
        bad[1].2.contains("column 'completion' is not valid UTF-8"),
        "{}",
        bad[1].2
    );
    assert_eq!(
        fd.malformed[1].location.field.as_deref(),
        Some("completion")
    );
    // Header bytes, then every record's raw range in order, rebuild the file exactly.
    let mut ranges: Vec<(u64, (u64, u64))> = fd
        .records
        .iter()
        .map(|r| (r.index, r.raw.unwrap()))
        .collect();
    ranges.extend(fd.malformed_raw.iter().map(|m| (m.1, m.2)));
    ranges.sort_unstable();
    let mut rebuilt = body[..ranges[0].1 .0 as usize].to_vec();
    let mut at = ranges[0].1 .0;
    for (_, (a, b)) in &ranges {
        assert_eq!(*a, at, "ranges are contiguous");
        rebuilt.extend_from_slice(&body[*a as usize..*b as usize]);
        at = *b;
    }
    assert_eq!(rebuilt, body);
    assert_eq!(&body[fd.records[0].raw.unwrap().0 as usize..][..2], b"p1");
}

// ---------------------------------------------------------------- Parquet

#[test]
fn parquet_every_schema() {
    let dir = tempfile::tempdir().unwrap();

    let p = dir.path().join("alpaca.parquet");
    write_parquet(
        &p,
        "message m { REQUIRED BYTE_ARRAY instruction (UTF8); REQUIRED BYTE_ARRAY input (UTF8); REQUIRED BYTE_ARRAY output (UTF8); }",
        vec![vec![strs(vec!["Add", "Hi"]), strs(vec!["2+2", ""]), strs(vec!["4", "Hello"])]],
    );
    let ds = read_one(&p);
    assert_eq!(ds.files[0].format, Format::Parquet);
    assert_eq!(ds.files[0].schema, Schema::Instruction);
    assert_eq!(ds.files[0].records, 2);
    assert_eq!(
        fields(&ds.records[0]),
        vec![
            ("instruction", Role::Prompt, "Add"),
            ("input", Role::Prompt, "2+2"),
            ("output", Role::Response, "4")
        ]
    );
    assert_eq!(
        fields(&ds.records[1]),
        vec![
            ("instruction", Role::Prompt, "Hi"),
            ("output", Role::Response, "Hello")
        ]
    );
    assert_eq!(
        (ds.records[1].index, ds.records[1].line, ds.records[1].raw),
        (1, None, None)
    );
    assert_eq!(
        ds.files[0].sha256,
        tunegate_core::digest::sha256_hex(&std::fs::read(&p).unwrap())
    );

    let p = dir.path().join("chat.parquet");
    write_parquet(
        &p,
        CHAT_SCHEMA,
        vec![vec![
            nested(
                vec!["user", "assistant", "system", "user", "assistant"],
                vec![1; 5],
                vec![0, 1, 0, 1, 1],
            ),
            nested(
                vec!["q1", "a1", "sys", "q2", "a2"],
                vec![1; 5],
                vec![0, 1, 0, 1, 1],
            ),
        ]],
    );
    let ds = read_one(&p);
    assert_eq!(ds.files[0].schema, Schema::Chat);
    assert_eq!(
        fields(&ds.records[0]),
        vec![
            ("messages[0].content", Role::Prompt, "q1"),
            ("messages[1].content", Role::Response, "a1")
        ]
    );
    assert_eq!(
        fields(&ds.records[1]),
        vec![
            ("messages[0].content", Role::System, "sys"),
            ("messages[1].content", Role::Prompt, "q2"),
            ("messages[2].content", Role::Response, "a2")
        ]
    );

    let p = dir.path().join("sharegpt.parquet");
    write_parquet(
        &p,
        &CHAT_SCHEMA
            .replace("messages", "conversations")
            .replace("role", "from")
            .replace("content", "value"),
        vec![vec![
            nested(vec!["human", "gpt"], vec![1; 2], vec![0, 1]),
            nested(vec!["q", "a"], vec![1; 2], vec![0, 1]),
        ]],
    );
    let ds = read_one(&p);
    assert_eq!(
        fields(&ds.records[0]),
        vec![
            ("conversations[0].value", Role::Prompt, "q"),
            ("conversations[1].value", Role::Response, "a")
        ]
    );

    let p = dir.path().join("pc.parquet");
    write_parquet(
        &p,
        "message m { REQUIRED BYTE_ARRAY prompt (UTF8); REQUIRED BYTE_ARRAY completion (UTF8); }",
        vec![vec![strs(vec!["p"]), strs(vec!["c"])]],
    );
    let ds = read_one(&p);
    assert_eq!(ds.files[0].schema, Schema::PromptCompletion);
    assert_eq!(
        fields(&ds.records[0]),
        vec![
            ("prompt", Role::Prompt, "p"),
            ("completion", Role::Response, "c")
        ]
    );

    // Preference with message lists and no prompt column: the shared prefix is the prompt.
    let p = dir.path().join("pref.parquet");
    let list = |name: &str| {
        format!(
            "REQUIRED group {name} (LIST) {{ REPEATED group list {{ REQUIRED group element {{ REQUIRED BYTE_ARRAY role (UTF8); REQUIRED BYTE_ARRAY content (UTF8); }} }} }}"
        )
    };
    write_parquet(
        &p,
        &format!("message m {{ {} {} }}", list("chosen"), list("rejected")),
        vec![vec![
            nested(vec!["user", "assistant"], vec![1; 2], vec![0, 1]),
            nested(vec!["q", "good"], vec![1; 2], vec![0, 1]),
            nested(vec!["user", "assistant"], vec![1; 2], vec![0, 1]),
            nested(vec!["q", "bad"], vec![1; 2], vec![0, 1]),
        ]],
    );
    let ds = read_one(&p);
    assert_eq!(ds.files[0].schema, Schema::Preference);
    assert_eq!(
        fields(&ds.records[0]),
        vec![
            ("chosen[0].content", Role::Prompt, "q"),
            ("chosen[1].content", Role::Response, "good"),
            ("rejected[1].content", Role::Rejected, "bad")
        ]
    );

    // Text/label with an integer label and an optional text that is null in one row.
    let p = dir.path().join("labels.parquet");
    write_parquet(
        &p,
        "message m { OPTIONAL BYTE_ARRAY text (UTF8); REQUIRED INT64 label; }",
        vec![vec![
            Col {
                values: Values::Str(vec!["fine"]),
                def: Some(vec![1, 0]),
                rep: None,
            },
            Col {
                values: Values::Int(vec![1, 0]),
                def: None,
                rep: None,
            },
        ]],
    );
    let ds = read_one(&p);
    assert_eq!(ds.files[0].schema, Schema::TextLabel);
    assert_eq!(ds.files[0].records, 2);
    assert_eq!(ds.records.len(), 1);
    assert_eq!(ds.records[0].label.as_deref(), Some("1"));
    assert_eq!(ds.malformed.len(), 1);
    let m = &ds.malformed[0];
    assert_eq!((m.location.record, m.location.line), (Some(1), None));
    assert!(
        m.message.starts_with("row 1: field 'text' is null"),
        "{}",
        m.message
    );

    // Parquet read from memory gives the same records.
    let bytes = std::fs::read(&p).unwrap();
    let fd = read::read_bytes(
        "labels.parquet",
        &bytes,
        Format::Parquet,
        &ReadOptions::default(),
    )
    .unwrap();
    assert_eq!(
        fd.records,
        ds.records
            .iter()
            .map(|r| Record {
                file: 0,
                ..r.clone()
            })
            .collect::<Vec<_>>()
    );
}

// ---------------------------------------------------------------- directories

#[test]
fn directories_expand_sorted_skipping_hidden_and_unknown() {
    let dir = tempfile::tempdir().unwrap();
    let line = b"{\"prompt\": \"p\", \"completion\": \"c\"}\n";
    write(dir.path(), "b.jsonl", line);
    write(dir.path(), "a/z.jsonl", line);
    write(dir.path(), "a/y.csv", b"prompt,completion\np,c\n");
    write(dir.path(), ".hidden.jsonl", line);
    write(dir.path(), ".git/x.jsonl", line);
    write(dir.path(), "README.md", b"# hi");
    // Folder metadata in Hugging Face layouts is skipped; .json data must be named explicitly.
    write(dir.path(), "dataset_info.json", b"{\"features\": {}}");
    let files = read::expand_paths(&[dir.path().to_path_buf()]).unwrap();
    let names: Vec<String> = files
        .iter()
        .map(|p| {
            p.strip_prefix(dir.path())
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    assert_eq!(names, vec!["a/y.csv", "a/z.jsonl", "b.jsonl"]);
    // The same file twice (directory and file) is read once.
    let ds = read::read_paths(
        &[dir.path().to_path_buf(), dir.path().join("b.jsonl")],
        None,
        &NoProgress,
    )
    .unwrap();
    assert_eq!(ds.files.len(), 3);
    assert_eq!(
        ds.records.iter().map(|r| r.file).collect::<Vec<_>>(),
        vec![0, 1, 2]
    );
    let empty = tempfile::tempdir().unwrap();
    let e = read::read_paths(&[empty.path().to_path_buf()], None, &NoProgress).unwrap_err();
    assert!(matches!(e, Error::Usage(m) if m.contains("no dataset files")));
}

// ---------------------------------------------------------------- fingerprints

#[test]
fn fingerprints_chunk_by_records() {
    let mut body = b"prompt,completion\r\n".to_vec();
    for i in 0..25 {
        body.extend_from_slice(format!("p{i},\"c\n{i}\"\r\n").as_bytes());
    }
    let fp =
        read::fingerprint_bytes("x.csv", &body, Format::Csv, &ReadOptions::default(), 10).unwrap();
    assert_eq!(fp.records, 25);
    assert_eq!(fp.schema, Schema::PromptCompletion);
    let shape: Vec<(u64, u64, Option<[u64; 2]>)> = fp
        .chunks
        .iter()
        .map(|c| (c.first, c.count, c.lines))
        .collect();
    assert_eq!(
        shape,
        vec![
            (0, 10, Some([2, 20])),
            (10, 10, Some([22, 40])),
            (20, 5, Some([42, 50]))
        ]
    );
    // The chunks partition the file: chunk 1 is exactly records 10..20.
    let fd = read::read_bytes("x.csv", &body, Format::Csv, &ReadOptions::default()).unwrap();
    let (a, _) = fd.records[10].raw.unwrap();
    let (b, _) = fd.records[20].raw.unwrap();
    assert_eq!(
        fp.chunks[1].sha256,
        tunegate_core::digest::sha256_hex(&body[a as usize..b as usize])
    );
    assert_eq!(fp.sha256, fd.info.sha256);
}

// ---------------------------------------------------------------- properties

/// The file minus blank lines (a BOM on line 1 does not make it non-blank).
fn non_blank_lines(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, line) in input.split_inclusive(|b| *b == b'\n').enumerate() {
        let content = if i == 0 {
            line.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(line)
        } else {
            line
        };
        if !content
            .iter()
            .all(|b| b.is_ascii_whitespace() || *b == 0x0B)
        {
            out.extend_from_slice(line);
        }
    }
    out
}

fn jsonlish() -> impl Strategy<Value = Vec<u8>> {
    let line = prop_oneof![
        Just(b"{\"prompt\": \"p\", \"completion\": \"c\"}".to_vec()),
        Just(b"{\"prompt\": 1, \"completion\": [1]}".to_vec()),
        Just(b"   ".to_vec()),
        Just(b"".to_vec()),
        Just(b"\r".to_vec()),
        Just(b"\xEF\xBB\xBF".to_vec()),
        proptest::collection::vec(any::<u8>(), 0..40),
    ];
    proptest::collection::vec(line, 0..12).prop_map(|lines| lines.join(&b'\n'))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn jsonl_reader_never_panics_and_raw_ranges_rebuild_lines(input in prop_oneof![jsonlish(), proptest::collection::vec(any::<u8>(), 0..300)]) {
        let opts = ReadOptions::with_schema(Some(Schema::PromptCompletion));
        let fd = read::read_bytes("p.jsonl", &input, Format::Jsonl, &opts).unwrap();
        let mut ranges: Vec<(u64, (u64, u64))> = fd.records.iter().map(|r| (r.index, r.raw.unwrap())).collect();
        ranges.extend(fd.malformed_raw.iter().map(|m| (m.1, m.2)));
        ranges.sort_unstable();
        for (i, (idx, _)) in ranges.iter().enumerate() {
            prop_assert_eq!(*idx, i as u64);
        }
        prop_assert_eq!(fd.info.records, ranges.len() as u64);
        let rebuilt: Vec<u8> = ranges.iter().flat_map(|(_, (a, b))| input[*a as usize..*b as usize].to_vec()).collect();
        prop_assert_eq!(rebuilt, non_blank_lines(&input));
        prop_assert_eq!(fd.info.size, input.len() as u64);
        // Detection never panics either.
        let _ = read::read_bytes("p.jsonl", &input, Format::Jsonl, &ReadOptions::default());
        let _ = read::read_bytes("p.json", &input, Format::Jsonl, &ReadOptions::default());
        let fp = read::fingerprint_bytes("p.jsonl", &input, Format::Jsonl, &opts, 3).unwrap();
        prop_assert_eq!(fp.records, fd.info.records);
    }

    #[test]
    fn csv_reader_never_panics(input in proptest::collection::vec(prop_oneof![Just(b','), Just(b'"'), Just(b'\n'), Just(b'\r'), any::<u8>()], 0..300)) {
        let mut body = b"prompt,completion\n".to_vec();
        body.extend_from_slice(&input);
        let fd = read::read_bytes("p.csv", &body, Format::Csv, &ReadOptions::default()).unwrap();
        prop_assert_eq!(fd.info.size, body.len() as u64);
        let fp = read::fingerprint_bytes("p.csv", &body, Format::Csv, &ReadOptions::default(), 2).unwrap();
        prop_assert_eq!(fp.records, fd.info.records);
        let _ = read::read_bytes("p.csv", &input, Format::Csv, &ReadOptions::default());
    }

    #[test]
    fn parquet_reader_never_panics_on_garbage(input in proptest::collection::vec(any::<u8>(), 0..300)) {
        let mut body = input.clone();
        body.extend_from_slice(b"PAR1");
        prop_assert!(read::read_bytes("p.parquet", &body, Format::Parquet, &ReadOptions::default()).is_err());
        prop_assert!(read::read_bytes("p.parquet", &input, Format::Parquet, &ReadOptions::default()).is_err());
    }
}

/// Flipping bytes of a valid Parquet file gives an error or records, never a panic escaping
/// the reader.
#[test]
fn parquet_reader_survives_corruption() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("chat.parquet");
    write_parquet(
        &p,
        CHAT_SCHEMA,
        vec![vec![
            nested(vec!["user", "assistant"], vec![1; 2], vec![0, 1]),
            nested(vec!["q", "a"], vec![1; 2], vec![0, 1]),
        ]],
    );
    let good = std::fs::read(&p).unwrap();
    let mut seed = 0x2545F4914F6CDD1Du64;
    for _ in 0..300 {
        let mut bad = good.clone();
        for _ in 0..3 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let at = (seed % bad.len() as u64) as usize;
            bad[at] ^= (seed >> 32) as u8 | 1;
        }
        let _ = read::read_bytes("c.parquet", &bad, Format::Parquet, &ReadOptions::default());
        let _ = read::fingerprint_bytes(
            "c.parquet",
            &bad,
            Format::Parquet,
            &ReadOptions::default(),
            10,
        );
    }
}

/// Throughput on 100k synthetic records (run with `--release -- --ignored --nocapture`).
#[test]
#[ignore]
fn throughput() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("big.jsonl");
    let mut body = String::new();
    for i in 0..200_000 {
        body.push_str(&format!(
            "{{\"instruction\": \"Summarise the following paragraph number {i} about data pipelines and security gates.\", \"input\": \"{}\", \"output\": \"A short summary of paragraph {i}.\"}}\n",
            "lorem ipsum dolor sit amet ".repeat(20)
        ));
    }
    std::fs::write(&p, &body).unwrap();
    let mb = body.len() as f64 / 1e6;
    let t = std::time::Instant::now();
    let ds = read::read_paths(std::slice::from_ref(&p), None, &NoProgress).unwrap();
    let s = t.elapsed().as_secs_f64();
    println!(
        "read: {} records, {mb:.0} MB in {s:.2}s = {:.0} MB/s",
        ds.records.len(),
        mb / s
    );
    let t = std::time::Instant::now();
    let fp = read::fingerprint_file(
        &p,
        Format::Jsonl,
        &ReadOptions::default(),
        1000,
        &NoProgress,
    )
    .unwrap();
    let s = t.elapsed().as_secs_f64();
    println!(
        "fingerprint: {} chunks in {s:.2}s = {:.0} MB/s",
        fp.chunks.len(),
        mb / s
    );
    let t = std::time::Instant::now();
    let _ = read::hash_file(&p, &NoProgress).unwrap();
    let s = t.elapsed().as_secs_f64();
    println!("hash only: {s:.2}s = {:.0} MB/s", mb / s);
}
