//! YAML text to a spanned tree.
//!
//! serde-saphyr does the parsing (with its alias, depth and size budgets); this module only
//! captures every node with its byte span so later phases can point at any value, and turns
//! parser errors into diagnostics. Duplicate keys are passed through to the tree and reported by
//! [`crate::decode`], which sees both occurrences.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;

use crate::diag::{Code, Diagnostic};
use crate::source::{FileId, Span};

/// One YAML node with its byte span in the file.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    pub span: Span,
    pub value: Value,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

impl Value {
    /// Name of the YAML type, for "expected X, found Y" messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Int(_) => "an integer",
            Value::Float(_) => "a number",
            Value::Str(_) => "a string",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }
}

impl Node {
    /// Feed the node's content (not its position or formatting) into a hash.
    pub fn digest(&self, h: &mut impl sha2::Digest) {
        match &self.value {
            Value::Null => h.update(b"n"),
            Value::Bool(b) => h.update(if *b { b"t" } else { b"f" }),
            Value::Int(i) => {
                h.update(b"i");
                h.update(i.to_le_bytes());
            }
            Value::Float(f) => {
                h.update(b"d");
                h.update(f.to_bits().to_le_bytes());
            }
            Value::Str(s) => {
                h.update(b"s");
                h.update((s.len() as u64).to_le_bytes());
                h.update(s.as_bytes());
            }
            Value::Seq(items) => {
                h.update(b"[");
                h.update((items.len() as u64).to_le_bytes());
                for i in items {
                    i.digest(h);
                }
            }
            Value::Map(entries) => {
                h.update(b"{");
                h.update((entries.len() as u64).to_le_bytes());
                for (k, v) in entries {
                    k.digest(h);
                    v.digest(h);
                }
            }
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// Look up a key in a mapping node (first occurrence).
    pub fn get(&self, key: &str) -> Option<&Node> {
        match &self.value {
            Value::Map(entries) => entries
                .iter()
                .find(|(k, _)| k.as_str() == Some(key))
                .map(|(_, v)| v),
            _ => None,
        }
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Int(i128::from(v)))
    }
    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Value, E> {
        Ok(Value::Int(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Int(i128::from(v)))
    }
    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Value, E> {
        Ok(i128::try_from(v)
            .map(Value::Int)
            .unwrap_or(Value::Float(v as f64)))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Ok(Value::Float(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::Str(v.to_string()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        Ok(Value::Str(v))
    }
    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Value, E> {
        Ok(Value::Str(String::from_utf8_lossy(v).into_owned()))
    }
    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        Deserialize::deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Node>()? {
            items.push(item);
        }
        Ok(Value::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut entries = Vec::new();
        while let Some(k) = map.next_key::<Node>()? {
            let v = map.next_value::<Node>()?;
            entries.push((k, v));
        }
        Ok(Value::Map(entries))
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Value, D::Error> {
        d.deserialize_any(ValueVisitor)
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Node, D::Error> {
        let s: Spanned<Value> = Spanned::deserialize(d)?;
        let span = s.referenced.span();
        let start = span.byte_offset().unwrap_or(0) as usize;
        let len = span.byte_len().unwrap_or(0) as usize;
        Ok(Node {
            span: Span::new(start, start + len),
            value: s.value,
        })
    }
}

/// Limits applied to every YAML file.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_depth: usize,
    pub max_aliases: usize,
    pub max_nodes: usize,
    pub max_documents: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_depth: 64,
            max_aliases: 1_000,
            max_nodes: 2_000_000,
            max_documents: 100_000,
        }
    }
}

fn options(limits: Limits) -> serde_saphyr::Options {
    let mut budget = serde_saphyr::Budget::default();
    budget.max_depth = limits.max_depth;
    budget.max_aliases = limits.max_aliases;
    budget.max_nodes = limits.max_nodes;
    budget.max_documents = limits.max_documents;
    budget.flow_nesting_limit = budget.flow_nesting_limit.min(limits.max_depth);
    let mut opts = serde_saphyr::Options::default();
    opts.budget = Some(budget);
    opts.duplicate_keys = serde_saphyr::options::DuplicateKeyPolicy::PassThrough;
    opts.with_snippet = false;
    opts.emit_comments = false;
    opts.strict_booleans = true;
    opts
}

/// Parse a multi-document YAML file. On a parse error no documents are returned and one
/// diagnostic says where and why.
pub fn parse_documents(file: FileId, text: &str, limits: Limits) -> Result<Vec<Node>, Diagnostic> {
    let docs: Result<Vec<Option<Node>>, _> =
        serde_saphyr::from_multiple_with_options(text, options(limits));
    match docs {
        Ok(docs) => Ok(docs.into_iter().flatten().collect()),
        Err(e) => Err(error_to_diagnostic(file, text, &e)),
    }
}

fn error_to_diagnostic(file: FileId, text: &str, e: &serde_saphyr::Error) -> Diagnostic {
    let message = e.to_string();
    let first_line = message
        .lines()
        .next()
        .unwrap_or("invalid YAML")
        .trim()
        .to_string();
    let (start, end) = match e.location() {
        Some(loc) => {
            let span = loc.span();
            match span.byte_offset() {
                Some(b) => {
                    let b = b as usize;
                    (b, b + span.byte_len().unwrap_or(0) as usize)
                }
                None => line_col_to_byte(text, loc.line(), loc.column()),
            }
        }
        None => (0, 0),
    };
    let start = start.min(text.len());
    let end = end.clamp(start, text.len());
    let lower = first_line.to_ascii_lowercase();
    let budget = lower.contains("budget") || lower.contains("limit") || lower.contains("depth");
    let code = if budget {
        Code::ResourceBudget
    } else {
        Code::YamlSyntax
    };
    let message = strip_location_suffix(&first_line);
    let mut d = Diagnostic::new(code, message).primary(file, Span::new(start, end), "here");
    if budget {
        d = d.help(
            "meshc limits nesting depth, aliases and document size so that no input can exhaust memory or time",
        );
    }
    d
}

/// serde-saphyr appends "at line L column C" to messages; the diagnostic carries that itself.
fn strip_location_suffix(msg: &str) -> String {
    let lower = msg.to_ascii_lowercase();
    let cut = lower.rfind(" at line ").unwrap_or(msg.len());
    let m = msg[..cut].trim().trim_end_matches(['.', ',', ':']);
    let mut s = m.to_string();
    if let Some(first) = s.get(..1) {
        let lower_first = first.to_lowercase();
        s.replace_range(..1, &lower_first);
    }
    s
}

fn line_col_to_byte(text: &str, line: u64, column: u64) -> (usize, usize) {
    let mut offset = 0usize;
    for (i, l) in text.split_inclusive('\n').enumerate() {
        if (i as u64) + 1 == line {
            let col_bytes: usize = l
                .chars()
                .take(column.saturating_sub(1) as usize)
                .map(char::len_utf8)
                .sum();
            return (offset + col_bytes, offset + col_bytes);
        }
        offset += l.len();
    }
    (text.len(), text.len())
}
