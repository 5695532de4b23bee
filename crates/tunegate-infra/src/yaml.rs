//! A YAML (and JSON) tree that remembers the line of every node.
//!
//! Built from `yaml-rust2`'s event parser. Scalars keep their text and whether they were plain
//! (unquoted), so `true` and `"true"` stay distinguishable; anchors and aliases are expanded, but
//! the total number of nodes per file is bounded ([`MAX_NODES`]) so alias bombs are an error, not
//! an out-of-memory.
use crate::{Error, Result};
use std::path::Path;
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// Most nodes one file may expand to (aliases included).
pub const MAX_NODES: usize = 2_000_000;
/// Deepest nesting accepted.
pub const MAX_DEPTH: usize = 256;

/// A node's value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A mapping, keys in document order (keys are scalars' text; complex keys are rendered).
    Map(Vec<(String, Node)>),
    /// A sequence.
    Seq(Vec<Node>),
    /// A scalar: its text and whether it was plain (unquoted).
    Scalar(String, bool),
}

/// A node and the 1-based line it starts on.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// 1-based line.
    pub line: u64,
    /// The value.
    pub value: Value,
}

impl Node {
    /// The value under `key` when this is a mapping.
    pub fn get(&self, key: &str) -> Option<&Node> {
        match &self.value {
            Value::Map(m) => m.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }
    /// Follows a dotted path of mapping keys.
    pub fn path(&self, path: &str) -> Option<&Node> {
        path.split('.').try_fold(self, |n, k| n.get(k))
    }
    /// Text of a scalar (null scalars `~`/`null`/empty give `None`).
    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::Scalar(s, plain) if !(*plain && is_null(s)) => Some(s),
            _ => None,
        }
    }
    /// A YAML boolean (plain `true`/`false` and their case variants; JSON booleans).
    pub fn as_bool(&self) -> Option<bool> {
        match &self.value {
            Value::Scalar(s, true) => match s.as_str() {
                "true" | "True" | "TRUE" => Some(true),
                "false" | "False" | "FALSE" => Some(false),
                _ => None,
            },
            _ => None,
        }
    }
    /// An integer scalar.
    pub fn as_i64(&self) -> Option<i64> {
        match &self.value {
            Value::Scalar(s, _) => s.trim().parse().ok(),
            _ => None,
        }
    }
    /// Items of a sequence (empty for anything else).
    pub fn seq(&self) -> &[Node] {
        match &self.value {
            Value::Seq(v) => v,
            _ => &[],
        }
    }
    /// Entries of a mapping (empty for anything else).
    pub fn map(&self) -> &[(String, Node)] {
        match &self.value {
            Value::Map(m) => m,
            _ => &[],
        }
    }
    /// True for a null scalar.
    pub fn is_null(&self) -> bool {
        matches!(&self.value, Value::Scalar(s, true) if is_null(s))
    }
    /// A string or a sequence of strings, as a list (IAM's `Action: "x"` or `Action: [..]`).
    pub fn str_list(&self) -> Vec<&str> {
        match &self.value {
            Value::Seq(v) => v.iter().filter_map(Node::as_str).collect(),
            _ => self.as_str().into_iter().collect(),
        }
    }
}

fn is_null(s: &str) -> bool {
    matches!(s, "" | "~" | "null" | "Null" | "NULL")
}

enum Frame {
    Map(
        u64,
        usize,
        Vec<(String, Node)>,
        Option<String>,
        std::collections::HashSet<String>,
    ),
    Seq(u64, usize, Vec<Node>),
}

struct Builder {
    docs: Vec<Node>,
    stack: Vec<Frame>,
    anchors: std::collections::HashMap<usize, Node>,
    nodes: usize,
    error: Option<(u64, String)>,
}

fn count(n: &Node) -> usize {
    match &n.value {
        Value::Scalar(..) => 1,
        Value::Seq(v) => 1 + v.iter().map(count).sum::<usize>(),
        Value::Map(m) => 1 + m.iter().map(|(_, v)| count(v)).sum::<usize>(),
    }
}

fn key_text(n: &Node) -> String {
    match &n.value {
        Value::Scalar(s, _) => s.clone(),
        _ => format!("<complex key at line {}>", n.line),
    }
}

impl Builder {
    fn push_node(&mut self, node: Node, anchor: usize) {
        if anchor > 0 {
            self.anchors.insert(anchor, node.clone());
        }
        let mut duplicate = None;
        match self.stack.last_mut() {
            None => self.docs.push(node),
            Some(Frame::Seq(_, _, v)) => v.push(node),
            Some(Frame::Map(_, _, m, key, seen)) => match key.take() {
                None => *key = Some(key_text(&node)),
                Some(k) => {
                    // Readers disagree on duplicates (first wins here, last in others): a
                    // duplicate could hide `hostNetwork: true` behind `false`, so refuse it.
                    if !seen.insert(k.clone()) {
                        duplicate = Some((k.clone(), node.line));
                    }
                    m.push((k, node))
                }
            },
        }
        if let Some((k, line)) = duplicate {
            self.error
                .get_or_insert((line, format!("duplicate key '{k}'")));
        }
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        if self.error.is_some() {
            return;
        }
        let line = mark.line() as u64;
        match ev {
            Event::Scalar(s, style, anchor, _) => {
                self.nodes += 1;
                let plain = style == TScalarStyle::Plain;
                self.push_node(
                    Node {
                        line,
                        value: Value::Scalar(s, plain),
                    },
                    anchor,
                );
            }
            Event::SequenceStart(anchor, _) => {
                self.nodes += 1;
                self.stack.push(Frame::Seq(line, anchor, Vec::new()));
            }
            Event::MappingStart(anchor, _) => {
                self.nodes += 1;
                self.stack.push(Frame::Map(
                    line,
                    anchor,
                    Vec::new(),
                    None,
                    Default::default(),
                ));
            }
            Event::SequenceEnd => {
                if let Some(Frame::Seq(l, a, v)) = self.stack.pop() {
                    self.push_node(
                        Node {
                            line: l,
                            value: Value::Seq(v),
                        },
                        a,
                    );
                }
            }
            Event::MappingEnd => {
                if let Some(Frame::Map(l, a, m, _, _)) = self.stack.pop() {
                    self.push_node(
                        Node {
                            line: l,
                            value: Value::Map(m),
                        },
                        a,
                    );
                }
            }
            Event::Alias(id) => match self.anchors.get(&id).cloned() {
                Some(n) => {
                    self.nodes += count(&n);
                    if self.nodes <= MAX_NODES {
                        self.push_node(n, 0);
                    }
                }
                None => self.error = Some((line, "alias to an unknown anchor".into())),
            },
            _ => {}
        }
        if self.nodes > MAX_NODES {
            self.error = Some((
                line,
                format!("more than {MAX_NODES} nodes after alias expansion (an alias bomb?)"),
            ));
        }
        if self.stack.len() > MAX_DEPTH {
            self.error = Some((line, format!("nesting deeper than {MAX_DEPTH}")));
        }
    }
}

/// Parses every document of a YAML (or JSON) stream. Empty documents are dropped.
pub fn parse_str(path: &Path, text: &str) -> Result<Vec<Node>> {
    let mut b = Builder {
        docs: Vec::new(),
        stack: Vec::new(),
        anchors: Default::default(),
        nodes: 0,
        error: None,
    };
    let mut parser = Parser::new_from_str(text);
    parser
        .load(&mut b, true)
        .map_err(|e| Error::parse(path, e.marker().line() as u64, e.info().to_string()))?;
    if let Some((line, e)) = b.error {
        return Err(Error::parse(path, line, e));
    }
    Ok(b.docs.into_iter().filter(|d| !d.is_null()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_and_types() {
        let docs = parse_str(
            Path::new("x.yaml"),
            "a: 1\nb:\n  c: true\n  d: \"true\"\n---\n- x\n- y\n",
        )
        .unwrap();
        assert_eq!(docs.len(), 2);
        let c = docs[0].path("b.c").unwrap();
        assert_eq!(c.line, 3);
        assert_eq!(c.as_bool(), Some(true));
        assert_eq!(docs[0].path("b.d").unwrap().as_bool(), None);
        assert_eq!(docs[1].seq()[1].line, 7);
    }

    #[test]
    fn json_is_yaml_with_lines() {
        let docs = parse_str(
            Path::new("p.json"),
            "{\n  \"Version\": \"2012-10-17\",\n  \"Statement\": [{\"Effect\": \"Allow\"}]\n}\n",
        )
        .unwrap();
        assert_eq!(docs[0].get("Statement").unwrap().line, 3);
    }

    #[test]
    fn alias_bomb_is_an_error() {
        let mut s = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..12 {
            let p = i - 1;
            s.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        let e = parse_str(Path::new("bomb.yaml"), &s)
            .unwrap_err()
            .to_string();
        assert!(e.contains("bomb.yaml") && e.contains("alias"), "{e}");
    }

    #[test]
    fn duplicate_keys_are_refused() {
        let e = parse_str(
            Path::new("d.yaml"),
            "spec:\n  hostNetwork: false\n  hostNetwork: true\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("d.yaml")
                && e.contains("duplicate key 'hostNetwork'")
                && e.starts_with("d.yaml:3:"),
            "{e}"
        );
    }

    #[test]
    fn syntax_error_names_file_and_line() {
        let e = parse_str(Path::new("bad.yaml"), "a: 1\nb: [\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("bad.yaml:"), "{e}");
    }
}
