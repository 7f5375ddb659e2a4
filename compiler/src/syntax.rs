//! YAML text to a spanned tree.
//!
//! The YAML parser is granit-parser, the one inside serde-saphyr (used through serde-saphyr's
//! re-export). This module builds a tree of nodes, each with its byte span, straight from the
//! parser's events, enforcing depth, node, alias and document budgets as it goes, and turns
//! parser errors into diagnostics. Duplicate keys are kept in the tree and reported by
//! [`crate::decode`], which sees both occurrences.
//!
//! YAML 1.1 merge keys (`<<: *base`, <https://yaml.org/type/merge.html>) are resolved here, as
//! PyYAML and go-yaml (so kubectl) read them: the tree holds the merged mapping, and the rest of
//! meshc never sees a `<<`. See [`MergeKey`].

use std::borrow::Cow;

use serde_saphyr::granit_parser;

use crate::diag::{Code, Diagnostic};
use crate::source::{FileId, Loc, Span};

mod fast;

/// One YAML node with its byte span in the file. Strings borrow from the file's text where the
/// YAML spelled them literally (no escapes, no folding), which is nearly always.
#[derive(Clone, Debug, PartialEq)]
pub struct Node<'a> {
    pub span: Span,
    pub value: Value<'a>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Value<'a> {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(Cow<'a, str>),
    Seq(Vec<Node<'a>>),
    Map(Vec<(Node<'a>, Node<'a>)>),
}

impl Value<'_> {
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

impl<'a> Node<'a> {
    /// Feed the node's content (not its position or formatting) into a hash. Merge keys are
    /// resolved in the tree already, so a mapping that merges another hashes as the mapping
    /// written out, with the merged entries where its `<<` was.
    pub fn digest(&self, h: &mut impl sha2::Digest) {
        // The content is laid out in a buffer first: a hash update per scalar costs more than
        // the hashing itself.
        let mut buf = Vec::new();
        self.content_bytes(&mut buf);
        h.update(&buf);
    }

    /// The bytes [`Node::digest`] hashes: a tag byte per node, lengths and counts as 8 bytes.
    fn content_bytes(&self, out: &mut Vec<u8>) {
        match &self.value {
            Value::Null => out.push(b'n'),
            Value::Bool(b) => out.push(if *b { b't' } else { b'f' }),
            Value::Int(i) => {
                out.push(b'i');
                out.extend_from_slice(&i.to_le_bytes());
            }
            Value::Float(f) => {
                out.push(b'd');
                out.extend_from_slice(&f.to_bits().to_le_bytes());
            }
            Value::Str(s) => {
                out.push(b's');
                out.extend_from_slice(&(s.len() as u64).to_le_bytes());
                out.extend_from_slice(s.as_bytes());
            }
            Value::Seq(items) => {
                out.push(b'[');
                out.extend_from_slice(&(items.len() as u64).to_le_bytes());
                for i in items {
                    i.content_bytes(out);
                }
            }
            Value::Map(entries) => {
                out.push(b'{');
                out.extend_from_slice(&(entries.len() as u64).to_le_bytes());
                for (k, v) in entries {
                    k.content_bytes(out);
                    v.content_bytes(out);
                }
            }
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::Str(s) => Some(s.as_ref()),
            _ => None,
        }
    }

    /// Look up a key in a mapping node (first occurrence).
    pub fn get(&self, key: &str) -> Option<&Node<'a>> {
        match &self.value {
            Value::Map(entries) => entries
                .iter()
                .find(|(k, _)| k.as_str() == Some(key))
                .map(|(_, v)| v),
            _ => None,
        }
    }
}

/// Limits applied to every YAML file.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Deepest nesting of sequences and mappings.
    pub max_depth: usize,
    /// Most alias uses (`*name`) in one file.
    pub max_aliases: usize,
    /// Most nodes in one file, counting every node an alias copies (bounds "billion laughs").
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

/// Resolve a plain scalar by the YAML 1.2 core schema (with the Kubernetes habit of reading
/// `true`/`false` only in their usual spellings).
fn resolve_plain(value: Cow<'_, str>) -> Value<'_> {
    let s: &str = &value;
    match s {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            return Value::Float(f64::INFINITY);
        }
        "-.inf" | "-.Inf" | "-.INF" => return Value::Float(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => return Value::Float(f64::NAN),
        _ => {}
    }
    let bytes = s.as_bytes();
    let first = bytes[0];
    if !(first.is_ascii_digit() || first == b'-' || first == b'+' || first == b'.') {
        return Value::Str(value);
    }
    let (neg, digits) = match first {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let int = if let Some(h) = digits.strip_prefix("0x") {
        i128::from_str_radix(h, 16)
            .ok()
            .filter(|_| !h.is_empty() && !h.starts_with(['+', '-']))
    } else if let Some(o) = digits.strip_prefix("0o") {
        i128::from_str_radix(o, 8)
            .ok()
            .filter(|_| !o.is_empty() && !o.starts_with(['+', '-']))
    } else if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        digits.parse::<i128>().ok()
    } else {
        None
    };
    if let Some(i) = int {
        return Value::Int(if neg { -i } else { i });
    }
    // Floats: digits with a dot or an exponent, nothing else.
    let is_float = digits
        .bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'-' | b'+'))
        && digits.bytes().any(|b| b.is_ascii_digit());
    if is_float {
        if let Ok(f) = s.parse::<f64>() {
            return Value::Float(f);
        }
    }
    Value::Str(value)
}

fn byte_of(m: &granit_parser::Marker, text: &str) -> usize {
    match m.byte_offset() {
        Some(b) => b.min(text.len()),
        None => line_col_to_byte(text, m.line() as u64, m.col() as u64 + 1).0,
    }
}

struct Frame<'a> {
    start: usize,
    anchor: usize,
    /// For mappings: a key waiting for its value.
    pending_key: Option<Node<'a>>,
    /// Whether `pending_key` is a merge key.
    pending_merge: bool,
    /// For mappings: the merge key met so far, resolved when the mapping ends.
    merge: Option<MergeKey<'a>>,
    seq: Option<Vec<Node<'a>>>,
    map: Option<Vec<(Node<'a>, Node<'a>)>>,
}

/// A YAML merge key (`<<: *base`, `<<: [*a, *b]`) met in a mapping.
///
/// Only `<<` written plainly without a tag, or tagged `!!merge`, is a merge key (a quoted
/// `"<<"` is an ordinary key), as in PyYAML and go-yaml. Its value is a mapping or a list of
/// mappings written in place; an alias to a list is refused, as go-yaml refuses it. When the
/// mapping ends, the entries of the merged mappings take the merge key's place, except those
/// whose key the mapping has itself (explicit keys win wherever they are written) or that an
/// earlier mapping of the list gave already (earlier mappings win). Merged entries keep the
/// spans where they were written, so diagnostics about them point at the anchor's definition.
/// A second merge key in one mapping is a duplicate key (go-yaml v3 refuses it too; PyYAML
/// and go-yaml v2 would let the last one win).
///
/// Merging copies nothing that was not counted: an alias is counted at its anchor's full size
/// when it is met, and a merge only keeps part of what its aliases copied, so merges stay
/// within the node and alias budgets (a "billion laughs" of merges is refused like one of
/// aliases).
struct MergeKey<'a> {
    /// Where the `<<` key is written.
    key: Span,
    /// The index in the mapping's entries where the merged entries go.
    at: usize,
    /// The mappings to merge, earlier ones first.
    sources: Vec<Node<'a>>,
}

/// What kind of event a finished node came from, for recognising merge keys and their values.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Made {
    /// An untagged plain `<<`, or a `!!merge`-tagged `<<`: a merge key if it is a key.
    MergeKey,
    /// A copy of an anchored node.
    Alias,
    Other,
}

/// The entries of `entries` with those of `merge`'s mappings merged in at the merge key's place.
fn merge_entries<'a>(
    entries: Vec<(Node<'a>, Node<'a>)>,
    merge: MergeKey<'a>,
) -> Vec<(Node<'a>, Node<'a>)> {
    let key_bytes = |k: &Node<'_>| {
        let mut b = Vec::new();
        k.content_bytes(&mut b);
        b
    };
    let mut taken: std::collections::HashSet<Vec<u8>> =
        entries.iter().map(|(k, _)| key_bytes(k)).collect();
    let mut merged = Vec::new();
    for source in merge.sources {
        let Value::Map(source_entries) = source.value else {
            continue;
        };
        // Keys of this mapping hide those of later ones, but a key it has twice stays twice:
        // that duplicate was written, and `decode` reports it where it was written.
        let mut given = Vec::with_capacity(source_entries.len());
        for (k, v) in source_entries {
            let b = key_bytes(&k);
            if taken.contains(&b) {
                continue;
            }
            given.push(b);
            merged.push((k, v));
        }
        taken.extend(given);
    }
    let at = merge.at.min(entries.len());
    let mut out = Vec::with_capacity(entries.len() + merged.len());
    let mut rest = entries.into_iter();
    out.extend(rest.by_ref().take(at));
    out.extend(merged);
    out.extend(rest);
    out
}

/// Whether a scalar key is a merge key: `<<` written plainly without a tag, or tagged
/// `!!merge` (go-yaml's rule; PyYAML's too, but for a `!!merge` tag on another text).
fn is_merge_key(
    value: &str,
    style: granit_parser::ScalarStyle,
    tag: Option<&granit_parser::Tag>,
) -> bool {
    value == "<<"
        && match tag {
            None => style == granit_parser::ScalarStyle::Plain,
            Some(t) => t.suffix_in_namespace("tag:yaml.org,2002:").as_deref() == Some("merge"),
        }
}

/// Check the value of a merge key: the mappings it merges, or the diagnostic.
#[allow(clippy::result_large_err)] // One error per file; its size does not matter.
fn merge_sources<'a>(
    file: FileId,
    value: Node<'a>,
    made: Made,
) -> Result<Vec<Node<'a>>, Diagnostic> {
    let bad = |n: &Node<'_>, found: &str| {
        Diagnostic::new(
            Code::InvalidMerge,
            format!("the merge key `<<` takes a mapping or a list of mappings, found {found}"),
        )
        .primary(file, n.span, "not a mapping")
        .help("merge one mapping with `<<: *name`, several with `<<: [*a, *b]`; a `<<` meant as an ordinary key is written quoted, `\"<<\"`")
    };
    match value.value {
        Value::Map(_) => Ok(vec![value]),
        Value::Seq(_) if made == Made::Alias => Err(bad(&value, "an alias to a list")),
        Value::Seq(items) => {
            if let Some(item) = items.iter().find(|i| !matches!(i.value, Value::Map(_))) {
                let found = format!("a list holding {}", item.value.type_name());
                return Err(bad(item, &found));
            }
            Ok(items)
        }
        ref other => Err(bad(&value, other.type_name())),
    }
}

/// Where parsed documents go. A file may be parsed twice (see [`parse_documents_with`]):
/// [`Documents::restart`] says to forget what was handed over so far.
pub trait Documents<'a> {
    fn document(&mut self, doc: Node<'a>);
    fn restart(&mut self);
}

impl<'a> Documents<'a> for Vec<Node<'a>> {
    fn document(&mut self, doc: Node<'a>) {
        self.push(doc);
    }
    fn restart(&mut self) {
        self.clear();
    }
}

/// Parse a multi-document YAML file into spanned trees, with the limits applied while parsing.
/// On an error no documents are returned and one diagnostic says where and why.
#[allow(clippy::result_large_err)] // One error per file; its size does not matter.
pub fn parse_documents(
    file: FileId,
    text: &str,
    limits: Limits,
) -> Result<Vec<Node<'_>>, Diagnostic> {
    let mut docs = Vec::new();
    parse_documents_with(file, text, limits, &mut docs)?;
    Ok(docs)
}

/// Like [`parse_documents`], but hands each document to `sink` as soon as it is complete, so
/// that a caller can decode it and drop its tree while the next one is parsed (the tree of one
/// document stays in cache; the trees of a whole file would not).
///
/// The file is first read by the fast path for plain YAML (`syntax/fast.rs`). If that gives up,
/// `sink` is told to restart and granit-parser reads the file from the start; its verdict then
/// stands. On an error, documents before it have been handed over already: the caller discards
/// what it made of them.
#[allow(clippy::result_large_err)] // One error per file; its size does not matter.
pub fn parse_documents_with<'a>(
    file: FileId,
    text: &'a str,
    limits: Limits,
    sink: &mut impl Documents<'a>,
) -> Result<(), Diagnostic> {
    if fast::parse(text, limits, |doc| sink.document(doc)).is_ok() {
        return Ok(());
    }
    sink.restart();
    parse_with_granit(file, text, limits, |doc| sink.document(doc))
}

/// The fast path alone: `None` where it gives up. For the differential test and the benchmark.
#[doc(hidden)]
pub fn parse_documents_fast(text: &str, limits: Limits) -> Option<Vec<Node<'_>>> {
    let mut docs = Vec::new();
    fast::parse(text, limits, |doc| docs.push(doc)).ok()?;
    Some(docs)
}

/// granit-parser alone, the reference the fast path is tested against.
#[doc(hidden)]
#[allow(clippy::result_large_err)]
pub fn parse_documents_granit(
    file: FileId,
    text: &str,
    limits: Limits,
) -> Result<Vec<Node<'_>>, Diagnostic> {
    let mut docs = Vec::new();
    parse_with_granit(file, text, limits, |doc| docs.push(doc))?;
    Ok(docs)
}

/// The full parser: events come from granit-parser, the YAML parser serde-saphyr is built on
/// (through serde-saphyr's re-export); building the tree from events directly is about three
/// times faster than going through serde (see `BENCHMARKS.md`), and gives every node,
/// collections included, a full byte span.
#[allow(clippy::result_large_err)] // One error per file; its size does not matter.
fn parse_with_granit<'a>(
    file: FileId,
    text: &'a str,
    limits: Limits,
    mut on_document: impl FnMut(Node<'a>),
) -> Result<(), Diagnostic> {
    use granit_parser::{Event, Parser, ScalarStyle};
    let budget = |message: String, at: usize| {
        Diagnostic::new(Code::ResourceBudget, message)
            .primary(file, Span::new(at, at), "here")
            .help("meshc limits nesting depth, aliases and document size so that no input can exhaust memory or time")
    };
    let mut documents = 0usize;
    let mut stack: Vec<Frame<'a>> = Vec::new();
    let mut anchors: std::collections::HashMap<usize, (Node<'a>, usize)> =
        std::collections::HashMap::new();
    let mut nodes = 0usize;
    let mut aliases = 0usize;
    // Node sizes of open anchored collections are counted from `nodes` at their start.
    let mut anchor_start_nodes: Vec<usize> = Vec::new();
    let parser = Parser::new_from_str(text);
    for ev in parser {
        let (event, span) = match ev {
            Ok(e) => e,
            Err(e) => {
                let at = byte_of(e.marker(), text);
                let info = e.info();
                let msg = if info.is_empty() {
                    "invalid YAML".to_string()
                } else {
                    info
                };
                if msg.contains("limit") {
                    return Err(budget(lower_first(&msg), at));
                }
                let mut d = Diagnostic::new(Code::YamlSyntax, lower_first(&msg)).primary(
                    file,
                    Span::new(at, at),
                    "here",
                );
                if msg.contains("tab") {
                    d = d.help("YAML indentation uses spaces, not tabs");
                }
                return Err(d);
            }
        };
        let start = byte_of(&span.start, text);
        let end = byte_of(&span.end, text).max(start);
        let mut finished: Option<(Node<'a>, Made)> = None;
        match event {
            Event::StreamStart | Event::StreamEnd | Event::DocumentEnd => {}
            Event::DocumentStart(..) => {
                if documents >= limits.max_documents {
                    return Err(budget(
                        format!("more than {} documents in one file", limits.max_documents),
                        start,
                    ));
                }
                anchors.clear();
            }
            Event::Alias(id) => {
                aliases += 1;
                if aliases > limits.max_aliases {
                    return Err(budget(
                        format!("more than {} aliases in one file", limits.max_aliases),
                        start,
                    ));
                }
                let Some((node, size)) = anchors.get(&id) else {
                    return Err(
                        Diagnostic::new(Code::YamlSyntax, "alias to an unknown anchor").primary(
                            file,
                            Span::new(start, end),
                            "here",
                        ),
                    );
                };
                nodes += size;
                if nodes > limits.max_nodes {
                    return Err(budget(
                        format!("aliases expand to more than {} nodes", limits.max_nodes),
                        start,
                    ));
                }
                let mut n = node.clone();
                n.span = Span::new(start, end);
                finished = Some((n, Made::Alias));
            }
            Event::Scalar(value, style, anchor, tag) => {
                nodes += 1;
                let is_str_tag = tag
                    .as_ref()
                    .is_some_and(|t| t.is_yaml_core_schema_tag("str"));
                let made = if is_merge_key(&value, style, tag.as_deref()) {
                    Made::MergeKey
                } else {
                    Made::Other
                };
                let v = if style == ScalarStyle::Plain && !is_str_tag {
                    resolve_plain(value)
                } else {
                    Value::Str(value)
                };
                finished = Some((
                    Node {
                        span: Span::new(start, end),
                        value: v,
                    },
                    made,
                ));
                if anchor != 0 {
                    if let Some((n, _)) = &finished {
                        anchors.insert(anchor, (n.clone(), 1));
                    }
                }
            }
            Event::SequenceStart(_, anchor, _) | Event::MappingStart(_, anchor, _) => {
                nodes += 1;
                if stack.len() >= limits.max_depth {
                    return Err(budget(
                        format!("nesting deeper than {} levels", limits.max_depth),
                        start,
                    ));
                }
                let is_seq = matches!(event, Event::SequenceStart(..));
                anchor_start_nodes.push(nodes);
                stack.push(Frame {
                    start,
                    anchor,
                    pending_key: None,
                    pending_merge: false,
                    merge: None,
                    seq: is_seq.then(Vec::new),
                    map: (!is_seq).then(Vec::new),
                });
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let Some(frame) = stack.pop() else { continue };
                let started = anchor_start_nodes.pop().unwrap_or(nodes);
                let value = match (frame.seq, frame.map, frame.merge) {
                    (Some(items), _, _) => Value::Seq(items),
                    (_, Some(entries), Some(merge)) => Value::Map(merge_entries(entries, merge)),
                    (_, Some(entries), None) => Value::Map(entries),
                    _ => Value::Null,
                };
                let node = Node {
                    span: Span::new(frame.start, end.max(frame.start)),
                    value,
                };
                if frame.anchor != 0 {
                    anchors.insert(frame.anchor, (node.clone(), nodes - started + 1));
                }
                finished = Some((node, Made::Other));
            }
            #[allow(unreachable_patterns)]
            _ => {}
        }
        if nodes > limits.max_nodes {
            return Err(budget(
                format!("more than {} nodes in one file", limits.max_nodes),
                start,
            ));
        }
        let Some((node, made)) = finished else {
            continue;
        };
        match stack.last_mut() {
            // An empty document (`---` with nothing after it) is an implicit null: skip it.
            None if matches!(node.value, Value::Null) => {}
            None => {
                documents += 1;
                on_document(node);
            }
            Some(frame) => {
                if let Some(items) = &mut frame.seq {
                    items.push(node);
                } else if let Some(entries) = &mut frame.map {
                    match frame.pending_key.take() {
                        None => {
                            frame.pending_merge = made == Made::MergeKey;
                            frame.pending_key = Some(node);
                        }
                        Some(k) if frame.pending_merge => {
                            if let Some(first) = &frame.merge {
                                return Err(Diagnostic::new(
                                    Code::DuplicateKey,
                                    "duplicate merge key `<<`",
                                )
                                .primary(file, k.span, "duplicate key")
                                .secondary(
                                    Loc {
                                        file,
                                        span: first.key,
                                    },
                                    "first defined here",
                                )
                                .help("merge several mappings with one key: `<<: [*a, *b]`"));
                            }
                            frame.merge = Some(MergeKey {
                                key: k.span,
                                at: entries.len(),
                                sources: merge_sources(file, node, made)?,
                            });
                        }
                        Some(k) => entries.push((k, node)),
                    }
                }
            }
        }
    }
    Ok(())
}

fn lower_first(msg: &str) -> String {
    let m = msg.trim().trim_end_matches(['.', ',', ':']);
    let mut s = m.to_string();
    if let Some(first) = s.get(..1) {
        let lower = first.to_lowercase();
        s.replace_range(..1, &lower);
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
