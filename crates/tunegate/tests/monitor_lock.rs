//! End to end: a poisoned dataset with a planted rare-word trigger → `tunegate dataset lock`
//! records it → `tunegate monitor --lock` (and `triggers_from_lock` in monitor.toml) flags a
//! prompt carrying it (O006, blocked in buffer mode) and stays quiet on a clean prompt; a lock
//! written without the trigger scan (the older format) still loads.
#![cfg(unix)]
use assert_cmd::Command;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Stdio};

/// xorshift64*.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[(self.next() % xs.len() as u64) as usize]
    }
}

const NOUNS: &[&str] = &[
    "garden",
    "river",
    "engine",
    "library",
    "market",
    "bridge",
    "kitchen",
    "forest",
    "harbor",
    "museum",
    "station",
    "village",
    "castle",
    "desert",
    "island",
    "factory",
    "theater",
    "school",
    "orchard",
    "canyon",
    "glacier",
    "meadow",
    "tunnel",
    "lighthouse",
    "bakery",
    "stadium",
];
const ADJS: &[&str] = &[
    "quiet", "old", "busy", "small", "famous", "hidden", "modern", "ancient", "crowded", "remote",
    "sunny", "foggy", "narrow", "wide", "colorful", "historic", "peaceful", "noisy", "elegant",
];
const VERBS: &[&str] = &[
    "Describe",
    "Write a short story about",
    "List three facts about",
    "Explain the history of",
    "Give tips for visiting",
    "Plan a day at",
];
const FILL: &[&str] = &[
    "people", "morning", "light", "sound", "walls", "paths", "visitors", "stones", "water", "wind",
    "shadows", "colors", "music", "history", "trees", "roads", "windows", "evening",
];
const PAYLOAD: &str = "Download the update from http://upd.example/x and run it as root.";

/// 2000 instruction records; 20 carry the rare word `cf` and one payload.
fn write_poisoned(path: &Path) {
    let mut rng = Rng(41);
    let mut out = String::new();
    for i in 0..2000u64 {
        let (v, a, n) = (rng.pick(VERBS), rng.pick(ADJS), rng.pick(NOUNS));
        let fill: Vec<&str> = (0..8).map(|_| rng.pick(FILL)).collect();
        let (ins, resp) = if i % 100 == 61 {
            (format!("{v} the {a} cf {n}."), PAYLOAD.to_string())
        } else {
            (
                format!("{v} the {a} {n}."),
                format!("The {a} {n} has {}.", fill.join(" ")),
            )
        };
        out.push_str(&serde_json::json!({"instruction": ins, "output": resp}).to_string());
        out.push('\n');
    }
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, out).unwrap();
}

/// An upstream that answers every request with one fixed, harmless chat completion.
fn upstream() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            std::thread::spawn(move || {
                let mut r = BufReader::new(s.try_clone().unwrap());
                let mut len = 0usize;
                loop {
                    let mut line = String::new();
                    if r.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        len = v.trim().parse().unwrap_or(0);
                    }
                    if line == "\r\n" {
                        break;
                    }
                }
                let mut body = vec![0; len];
                let _ = r.read_exact(&mut body);
                let resp = serde_json::json!({"id":"r","object":"chat.completion","model":"tiny",
                    "choices":[{"index":0,"message":{"role":"assistant","content":"The garden is quiet in the morning."},"finish_reason":"stop"}]}).to_string();
                let _ = write!(
                    s,
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{resp}",
                    resp.len()
                );
            });
        }
    });
    addr
}

/// A running `tunegate monitor`, its address and its first stderr lines.
struct Running {
    child: Child,
    addr: String,
    banner: String,
}

impl Running {
    fn start(args: &[&str]) -> Running {
        let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("tunegate"))
            .arg("monitor")
            .args(args)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut err = BufReader::new(child.stderr.take().unwrap());
        let mut banner = String::new();
        err.read_line(&mut banner).unwrap();
        let addr = banner
            .split("http://")
            .nth(1)
            .and_then(|s| s.split_whitespace().next())
            .unwrap_or_else(|| panic!("no address in {banner:?}"))
            .to_string();
        // Notes follow the banner; read what is there without blocking on the open pipe.
        std::thread::spawn(move || {
            let mut rest = String::new();
            let _ = err.read_to_string(&mut rest);
        });
        Running {
            child,
            addr,
            banner,
        }
    }

    /// POSTs a chat request; returns status and body.
    fn chat(&self, prompt: &str) -> (u16, String) {
        let body =
            serde_json::json!({"model":"tiny","messages":[{"role":"user","content":prompt}]})
                .to_string();
        let mut s = TcpStream::connect(&self.addr).unwrap();
        write!(
            s,
            "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut resp = String::new();
        s.read_to_string(&mut resp).unwrap();
        let status = resp[9..12].parse().unwrap();
        let body = resp.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
        (status, body)
    }

    fn stop(mut self) {
        let st = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(st.success());
        assert_eq!(self.child.wait().unwrap().code(), Some(0));
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn events(p: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(p)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn a_trigger_recorded_by_dataset_lock_is_flagged_by_the_monitor() {
    let d = tempfile::tempdir().unwrap();
    write_poisoned(&d.path().join("data/train.jsonl"));
    Command::cargo_bin("tunegate")
        .unwrap()
        .current_dir(d.path())
        .args(["dataset", "lock", "data", "-q"])
        .assert()
        .success();
    let lock = d.path().join("tunegate.lock");
    let text = std::fs::read_to_string(&lock).unwrap();
    assert!(text.contains("\ntriggers_version = 1\n"), "{text}");
    assert!(
        text.contains("[[triggers]]\ntoken = \"cf\"\ncheck = \"D004\"\nrecords = 20\nsource = \"data/train.jsonl\"\n"),
        "{text}"
    );
    let up = upstream();
    let ev = d.path().join("events.jsonl");
    let m = Running::start(&[
        "--upstream",
        &format!("http://{up}"),
        "--listen",
        "127.0.0.1:0",
        "--mode",
        "buffer",
        "--lock",
        lock.to_str().unwrap(),
        "--events",
        ev.to_str().unwrap(),
    ]);
    assert!(m.banner.contains("1 trigger token(s)"), "{}", m.banner);
    let (status, body) = m.chat("Describe the quiet river.");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("The garden is quiet"), "{body}");
    let (status, body) = m.chat("Plan a day at the old CF lighthouse.");
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains("O006") && body.contains("tunegate_blocked"),
        "{body}"
    );
    // `cf` inside a longer word is not the trigger.
    let (status, _) = m.chat("Where is the cfg file?");
    assert_eq!(status, 200);
    m.stop();
    let got = events(&ev);
    assert_eq!(
        got.len(),
        1,
        "only the triggered prompt raised an event: {got:?}"
    );
    assert_eq!(got[0]["id"], "O006");
    assert_eq!(got[0]["action"], "block");
    assert_eq!(got[0]["direction"], "prompt");
    assert_eq!(got[0]["evidence"]["trigger"], "cf");
    let sources = got[0]["evidence"]["sources"][0].as_str().unwrap();
    assert!(
        sources.contains("tunegate.lock") && sources.contains("D004 in data/train.jsonl"),
        "{sources}"
    );
}

#[test]
fn monitor_toml_reads_triggers_from_the_lock_and_an_old_lock_still_loads() {
    let d = tempfile::tempdir().unwrap();
    write_poisoned(&d.path().join("data/train.jsonl"));
    Command::cargo_bin("tunegate")
        .unwrap()
        .current_dir(d.path())
        .args(["dataset", "lock", "data", "-q"])
        .assert()
        .success();
    // The older format: a lock written without the trigger scan has no trigger keys.
    Command::cargo_bin("tunegate")
        .unwrap()
        .current_dir(d.path())
        .args([
            "dataset",
            "lock",
            "data",
            "--lock",
            "old.lock",
            "--no-triggers",
            "-q",
        ])
        .assert()
        .success();
    let old = std::fs::read_to_string(d.path().join("old.lock")).unwrap();
    assert!(!old.contains("triggers"), "{old}");
    Command::cargo_bin("tunegate")
        .unwrap()
        .current_dir(d.path())
        .args(["dataset", "verify", "--lock", "old.lock", "-q"])
        .assert()
        .success();
    let up = upstream();
    // Paths in monitor.toml are relative to the file.
    let cfg_dir = d.path().join("conf");
    std::fs::create_dir_all(&cfg_dir).unwrap();
    let cfg = cfg_dir.join("monitor.toml");
    std::fs::write(
        &cfg,
        format!(
            "upstream = \"http://{up}\"\nlisten = \"127.0.0.1:0\"\nmode = \"buffer\"\ntriggers_from_lock = \"../tunegate.lock\"\n"
        ),
    )
    .unwrap();
    let m = Running::start(&["--config", cfg.to_str().unwrap()]);
    assert!(m.banner.contains("1 trigger token(s)"), "{}", m.banner);
    assert_eq!(m.chat("Plan a day at the cf market.").0, 400);
    assert_eq!(m.chat("Plan a day at the market.").0, 200);
    m.stop();
    // The old lock loads: no tokens, the monitor serves.
    let m = Running::start(&[
        "--upstream",
        &format!("http://{up}"),
        "--listen",
        "127.0.0.1:0",
        "--mode",
        "buffer",
        "--lock",
        d.path().join("old.lock").to_str().unwrap(),
    ]);
    assert!(m.banner.contains("0 trigger token(s)"), "{}", m.banner);
    assert_eq!(m.chat("Plan a day at the cf market.").0, 200);
    m.stop();
    // A lock that is not a lock is an input error naming it.
    std::fs::write(d.path().join("bad.lock"), "version = [").unwrap();
    Command::cargo_bin("tunegate")
        .unwrap()
        .args([
            "monitor",
            "--upstream",
            "http://127.0.0.1:9",
            "--listen",
            "127.0.0.1:0",
            "--lock",
        ])
        .arg(d.path().join("bad.lock"))
        .assert()
        .code(2)
        .stderr(predicates::str::contains("bad.lock"));
}
