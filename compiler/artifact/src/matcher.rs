//! The route matcher shared by `meshc explain` and `mesh-proxy`.
//!
//! # Matching semantics
//!
//! One [`RouteEntry`] is one `matches[]` element of one rule (a rule without `matches` is
//! lowered by the compiler to `PathPrefix: /`). An entry matches a request when every condition
//! it carries holds:
//!
//! - **Path**, compared with the request path as given (no percent-decoding, no dot-segment
//!   removal; the query string is not part of it):
//!   - `Exact`: the path equals the value, byte for byte.
//!   - `PathPrefix`: the value matches whole path segments. Trailing slashes of the value are
//!     ignored, so `/v2` and `/v2/` both match `/v2`, `/v2/` and `/v2/x`, and neither matches
//!     `/v2example`; `/` matches every path. See [`prefix_matches`].
//!   - `RegularExpression`: the regex must match the *whole* path (it is anchored as
//!     `^(?:...)$`, as Envoy-based implementations do). See [`full_match_regex`].
//! - **Method**: equal to the request method, case-sensitively (HTTP methods are).
//! - **Headers**: names compare case-insensitively; the request's value for that name must
//!   equal the expected value exactly (`Exact`) or be fully matched by the regex
//!   (`RegularExpression`). A name sent on several field lines has one value, the lines'
//!   values joined in order with `, ` (RFC 9110 section 5.3, as Envoy does; `; ` for `cookie`,
//!   RFC 9113 section 8.2.3): see [`RequestParts::header`]. A missing header never matches.
//!   When an entry names the same header twice, only the first condition counts (Gateway API
//!   rule).
//! - **Query parameters**: names compare case-sensitively, after percent-decoding (and `+` as a
//!   space, as HTML forms send it); only the *first* occurrence of a parameter in the request
//!   counts; values compare exactly or by full regex match, after decoding. When an entry names
//!   the same parameter twice, only the first condition counts.
//!
//! # Precedence
//!
//! A [`RouteTable`]'s entries are sorted by the compiler with [`crate::rank::precedence_key`]
//! (Gateway API precedence across all rules of all routes), and **the first entry that matches
//! wins**. `RegularExpression` paths rank below every `PathPrefix`, `/` included (the choice of
//! Istio and Kuma; the Gateway API leaves it to implementations): a catch-all prefix therefore
//! shadows every regex entry.
//!
//! # Index
//!
//! [`RouteIndex`] finds the first matching entry without scanning the table. Exact paths and
//! normalised prefixes (trailing slashes removed) share one compact hash table keyed by the path
//! text, whose records (key bytes and candidate entries) sit inside 64-byte lines, so that a
//! probe usually reads one cache line. A lookup probes the full path for `Exact` entries, then
//! every segment boundary of the path, longest first, for `PathPrefix` entries (one probe per
//! segment; a path without a trailing slash shares its first probe with the exact one), then the
//! short list of regex entries (each checked first against the literal its pattern starts with,
//! see [`literal_prefix`]). Candidates under one key are kept in table order. An entry with a
//! method, header or query condition carries its conditions inline, beside it in the line, as
//! ids of the table's distinct strings and regexes (each pattern compiled once per table), so
//! that checking them reads nothing else that grows with the table.
//!
//! When the table is sorted by path class and prefix length (as the compiler always writes it),
//! the first hit is the answer and the lookup stops there; otherwise every bucket is searched and
//! the smallest matching index wins, so a hand-edited table still gets "first entry wins". A
//! lookup allocates nothing, except to percent-decode a query value that a regex must see and
//! (in the request's [`RequestParts::header`]) to combine a header sent on several lines.

use std::borrow::Cow;
use std::collections::HashMap;

use regex::Regex;

use crate::strtable::{StrTable, Words};
use crate::types::{MatchKind, PathMatch, RouteEntry, RouteTable, ValueMatch};

/// The parts of a request the matcher looks at.
pub trait RequestParts {
    fn method(&self) -> &str;
    /// Path without the query string, e.g. `/a/b`.
    fn path(&self) -> &str;
    /// Raw query string without `?`, if any.
    fn query(&self) -> Option<&str>;
    /// The value of a header; `name` is lower case. Implementations must compare names
    /// case-insensitively (or store them lower case, as HTTP/2 and `http::HeaderMap` do).
    ///
    /// A name sent on several field lines has one value: the lines' values in order, joined
    /// with [`field_separator`] (RFC 9110 section 5.3), so that the matcher and Cedar see
    /// every line the application receives, not only the first. Borrowed when the name
    /// appears once (the usual case: no allocation); combined only when it repeats.
    fn header(&self, name: &str) -> Option<Cow<'_, str>>;
}

/// What joins the values of a field sent on several lines into one value: `; ` for `cookie`
/// (RFC 9113 section 8.2.3, where HTTP/2 may split it into one line per cookie), `, ` for every
/// other field (RFC 9110 section 5.3). `name` compares case-insensitively.
pub fn field_separator(name: &str) -> &'static str {
    if name.eq_ignore_ascii_case("cookie") {
        "; "
    } else {
        ", "
    }
}

/// One value from a field's lines, in order (see [`RequestParts::header`]): `None` without
/// lines, the line itself when there is one, the values joined with `separator` (the field's
/// [`field_separator`]) when there are several. A line that is `None` (a value that is not
/// text) makes the whole value `None`, as it would be for that line alone.
pub fn combine_field_lines<'a>(
    separator: &str,
    mut lines: impl Iterator<Item = Option<&'a str>>,
) -> Option<Cow<'a, str>> {
    let first = lines.next()??;
    let Some(second) = lines.next() else {
        return Some(Cow::Borrowed(first));
    };
    let mut all = String::with_capacity(first.len() + separator.len() + second.map_or(0, str::len));
    all.push_str(first);
    for line in std::iter::once(second).chain(lines) {
        all.push_str(separator);
        all.push_str(line?);
    }
    Some(Cow::Owned(all))
}

/// The methods RFC 9110 (section 9) and RFC 5789 define, as they are spelt.
const STANDARD_METHODS: [&str; 9] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
];

/// The standard spelling of `method` when it is a standard method in other case (`post`,
/// `Get`), else `None`. Methods are case-sensitive (RFC 9110 section 9.1), so `post` is not
/// `POST` to the routes and the policies; but applications such as Flask (Werkzeug) upper-case
/// the method they receive, and would run a `post` that a `forbid` on `POST` let through. The
/// sidecars refuse such a request with 400 (nginx does too), and `meshc explain` says so.
pub fn miscased_method(method: &str) -> Option<&'static str> {
    STANDARD_METHODS
        .into_iter()
        .find(|m| *m != method && m.eq_ignore_ascii_case(method))
}

/// A plain owned request, for `meshc explain` and tests.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SimpleRequest {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    /// Header field lines, in order. Names are compared case-insensitively; a name on several
    /// lines has their values combined (see [`RequestParts::header`]).
    pub headers: Vec<(String, String)>,
}

impl SimpleRequest {
    /// Build from a method and a path that may carry `?query`.
    pub fn new(method: &str, path_and_query: &str) -> Self {
        let (path, query) = match path_and_query.split_once('?') {
            Some((p, q)) => (p.to_string(), Some(q.to_string())),
            None => (path_and_query.to_string(), None),
        };
        SimpleRequest {
            method: method.to_string(),
            path,
            query,
            headers: Vec::new(),
        }
    }

    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }
}

impl RequestParts for SimpleRequest {
    fn method(&self) -> &str {
        &self.method
    }
    fn path(&self) -> &str {
        &self.path
    }
    fn query(&self) -> Option<&str> {
        self.query.as_deref()
    }
    /// As the sidecar reads a header: a value that is not visible ASCII (or tab) is not text
    /// to it (`HeaderValue::to_str`), so such a line makes the header absent, as in the proxy.
    fn header(&self, name: &str) -> Option<Cow<'_, str>> {
        let text = |v: &str| v.bytes().all(|b| b == b'\t' || (0x20..0x7f).contains(&b));
        combine_field_lines(
            field_separator(name),
            self.headers
                .iter()
                .filter(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| text(v).then_some(v.as_str())),
        )
    }
}

/// Why a route table could not be indexed (only a hand-edited artifact gets here: the compiler
/// validates every regex).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IndexError {
    #[error("route `{route}` rule {rule}: invalid regular expression `{pattern}`: {message}")]
    Regex {
        route: String,
        rule: u32,
        pattern: String,
        message: String,
    },
    #[error("route `{route}` rule {rule}: action index {action} is out of range")]
    Action {
        route: String,
        rule: u32,
        action: u32,
    },
    #[error("route table has {count} entries, more than the {max} an index can hold")]
    TooManyEntries { count: usize, max: usize },
    #[error("{count} destinations or host names are more than a router can index")]
    TooManyHosts { count: usize },
}

/// The size limit of a compiled pattern, in bytes (the `regex` crate's own measure).
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// Compile a pattern with full-match semantics, as Envoy does for Gateway API regexes.
pub fn full_match_regex(pattern: &str) -> Result<Regex, regex::Error> {
    regex::RegexBuilder::new(&format!("^(?:{pattern})$"))
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
}

/// Check that [`full_match_regex`] accepts a pattern, without building the matcher: parse it
/// with the `regex` crate's own parser and compile only its automaton under the same size limit,
/// which is where `regex::RegexBuilder::build` reports its errors. A fraction of the cost of a
/// full build, for `meshc check`, which sees thousands of patterns and matches none of them.
///
/// The error is the message `regex::Error` would display.
pub fn check_regex(pattern: &str) -> Result<(), String> {
    let full = format!("^(?:{pattern})$");
    let hir = regex_syntax::Parser::new()
        .parse(&full)
        .map_err(|e| e.to_string())?;
    regex_automata::nfa::thompson::Compiler::new()
        .configure(
            regex_automata::nfa::thompson::Config::new()
                .nfa_size_limit(Some(REGEX_SIZE_LIMIT))
                .shrink(false),
        )
        .build_from_hir(&hir)
        .map(drop)
        .map_err(|_| regex::Error::CompiledTooBig(REGEX_SIZE_LIMIT).to_string())
}

/// A literal that every string a pattern fully matches starts with (possibly empty): the
/// pattern's leading plain characters, stopping at the first metacharacter, without the last one
/// when a quantifier follows it. Empty for a pattern with an alternation anywhere, since `|`
/// binds looser than concatenation.
pub fn literal_prefix(pattern: &str) -> &str {
    if pattern.contains('|') {
        return "";
    }
    let end = pattern
        .find(|c: char| "\\.+*?()[]{}^$".contains(c))
        .unwrap_or(pattern.len());
    let prefix = &pattern[..end];
    match pattern[end..].chars().next() {
        // The quantifier applies to the last literal character, which may then be absent.
        Some('*' | '?' | '{') => {
            let cut = prefix.char_indices().last().map_or(0, |(i, _)| i);
            &prefix[..cut]
        }
        _ => prefix,
    }
}

/// Whether a `PathPrefix` value matches a path, by whole segments. Trailing slashes in the
/// prefix are ignored: `/v2` and `/v2/` both match `/v2`, `/v2/` and `/v2/x`, not `/v2example`.
pub fn prefix_matches(prefix: &str, path: &str) -> bool {
    let p = normalise_prefix(prefix);
    match path.strip_prefix(p) {
        Some(rest) => rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

/// A prefix as the index files it: without trailing slashes (`/` becomes the empty string).
#[inline]
pub fn normalise_prefix(prefix: &str) -> &str {
    prefix.trim_end_matches('/')
}

/// Decode `a=1&b=x%20y` into pairs, in order. `+` is a space, as in HTML forms; invalid UTF-8
/// after decoding is replaced by U+FFFD. The matcher itself does not use this (it decodes
/// lazily, without allocating); it is here for explanations.
pub fn parse_query(query: Option<&str>) -> Vec<(String, String)> {
    let Some(q) = query else { return Vec::new() };
    q.split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (
                decode_component(k).into_owned(),
                decode_component(v).into_owned(),
            )
        })
        .collect()
}

/// The bytes of a percent-encoded query component, decoded: `%XX` with two hex digits is one
/// byte, `+` is a space, anything else (a lone `%` included) stands for itself.
struct Decoded<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Iterator for Decoded<'_> {
    type Item = u8;

    fn next(&mut self) -> Option<u8> {
        let b = *self.bytes.get(self.pos)?;
        self.pos += 1;
        match b {
            b'+' => Some(b' '),
            b'%' => {
                let hi = self
                    .bytes
                    .get(self.pos)
                    .copied()
                    .and_then(crate::path::hex_value);
                let lo = self
                    .bytes
                    .get(self.pos + 1)
                    .copied()
                    .and_then(crate::path::hex_value);
                match (hi, lo) {
                    (Some(hi), Some(lo)) => {
                        self.pos += 2;
                        Some(hi << 4 | lo)
                    }
                    _ => Some(b'%'),
                }
            }
            b => Some(b),
        }
    }
}

fn decoded(s: &str) -> Decoded<'_> {
    Decoded {
        bytes: s.as_bytes(),
        pos: 0,
    }
}

/// Whether a raw query component decodes to exactly `expected`.
fn decodes_to(raw: &str, expected: &str) -> bool {
    if !raw.bytes().any(|b| b == b'%' || b == b'+') {
        return raw == expected;
    }
    decoded(raw).eq(expected.bytes())
}

/// A decoded query component, borrowed when nothing needed decoding.
fn decode_component(raw: &str) -> Cow<'_, str> {
    if !raw.bytes().any(|b| b == b'%' || b == b'+') {
        return Cow::Borrowed(raw);
    }
    let bytes: Vec<u8> = decoded(raw).collect();
    match String::from_utf8(bytes) {
        Ok(s) => Cow::Owned(s),
        Err(e) => Cow::Owned(String::from_utf8_lossy(e.as_bytes()).into_owned()),
    }
}

/// The raw (still encoded) value of the first query parameter whose decoded name is `name`.
/// A parameter without `=` has the empty value.
pub fn first_query_value<'q>(query: &'q str, name: &str) -> Option<&'q str> {
    query.split('&').filter(|kv| !kv.is_empty()).find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        decodes_to(k, name).then_some(v)
    })
}

#[derive(Debug, Clone)]
enum CompiledValue {
    Exact(Box<str>),
    Regex(Regex),
}

impl CompiledValue {
    fn matches(&self, value: &str) -> bool {
        match self {
            CompiledValue::Exact(v) => **v == *value,
            CompiledValue::Regex(r) => r.is_match(value),
        }
    }

    /// Match against a raw query component, decoding it only as far as needed.
    fn matches_encoded(&self, raw: &str) -> bool {
        match self {
            CompiledValue::Exact(v) => decodes_to(raw, v),
            CompiledValue::Regex(r) => r.is_match(&decode_component(raw)),
        }
    }
}

/// Keep the first condition for each name, as the Gateway API asks ("subsequent entries with an
/// equivalent name must be ignored"); `same` says when two names are equivalent.
pub fn first_per_name(
    conditions: &[ValueMatch],
    same: impl Fn(&str, &str) -> bool,
) -> impl Iterator<Item = &ValueMatch> {
    conditions
        .iter()
        .enumerate()
        .filter(move |(i, c)| !conditions[..*i].iter().any(|d| same(&d.name, &c.name)))
        .map(|(_, c)| c)
}

/// Header conditions that count: the first per case-insensitive name.
pub fn effective_headers(entry: &RouteEntry) -> impl Iterator<Item = &ValueMatch> {
    first_per_name(&entry.headers, |a, b| a.eq_ignore_ascii_case(b))
}

/// Query conditions that count: the first per (case-sensitive) name.
pub fn effective_query(entry: &RouteEntry) -> impl Iterator<Item = &ValueMatch> {
    first_per_name(&entry.query, |a, b| a == b)
}

#[derive(Debug, Clone)]
struct CompiledEntry {
    /// Index of the entry in the table.
    entry: u32,
    /// A `RegularExpression` path, with a literal every match starts with.
    regex_path: Option<(Regex, Box<str>)>,
    method: Option<Box<str>>,
    headers: Box<[(Box<str>, CompiledValue)]>,
    query: Box<[(Box<str>, CompiledValue)]>,
}

/// A regex-compilation error as an [`IndexError`] naming the entry.
fn regex_error(e: &RouteEntry, pattern: &str, error: regex::Error) -> IndexError {
    IndexError::Regex {
        route: e.route.clone(),
        rule: e.rule,
        pattern: pattern.to_string(),
        message: error.to_string(),
    }
}

/// Compiled regexes of one table, each pattern compiled once however many entries use it.
#[derive(Default)]
struct Regexes {
    ids: HashMap<String, usize>,
    list: Vec<Regex>,
}

impl Regexes {
    /// The index of a pattern's full-match regex in `list`, compiling it on first use.
    fn index(&mut self, e: &RouteEntry, pattern: &str) -> Result<usize, IndexError> {
        if let Some(&i) = self.ids.get(pattern) {
            return Ok(i);
        }
        let re = full_match_regex(pattern).map_err(|x| regex_error(e, pattern, x))?;
        self.list.push(re);
        self.ids.insert(pattern.to_string(), self.list.len() - 1);
        Ok(self.list.len() - 1)
    }

    fn regex(&mut self, e: &RouteEntry, pattern: &str) -> Result<Regex, IndexError> {
        let i = self.index(e, pattern)?;
        // `index` returns an index into `list`.
        Ok(self.list[i].clone())
    }
}

impl CompiledEntry {
    fn compile(e: &RouteEntry, regexes: &mut Regexes) -> Result<Self, IndexError> {
        let regex_path = match &e.path {
            PathMatch::RegularExpression(p) => {
                Some((regexes.regex(e, p)?, literal_prefix(p).into()))
            }
            _ => None,
        };
        let mut value = |m: &ValueMatch| -> Result<CompiledValue, IndexError> {
            Ok(match m.kind {
                MatchKind::Exact => CompiledValue::Exact(m.value.as_str().into()),
                MatchKind::RegularExpression => CompiledValue::Regex(regexes.regex(e, &m.value)?),
            })
        };
        let headers = effective_headers(e)
            .map(|h| Ok((h.name.to_ascii_lowercase().into_boxed_str(), value(h)?)))
            .collect::<Result<_, IndexError>>()?;
        let query = effective_query(e)
            .map(|q| Ok((q.name.as_str().into(), value(q)?)))
            .collect::<Result<_, IndexError>>()?;
        Ok(CompiledEntry {
            entry: 0,
            regex_path,
            method: e.method.as_deref().map(Into::into),
            headers,
            query,
        })
    }

    /// Whether the entry's regex path matches; a path without the regex's literal prefix is
    /// refused without running the regex.
    #[inline]
    fn regex_path_matches(&self, path: &str) -> bool {
        self.regex_path
            .as_ref()
            .is_some_and(|(r, prefix)| path.starts_with(&**prefix) && r.is_match(path))
    }

    /// Everything but the path (the bucket already matched exact and prefix paths).
    fn matches_rest<R: RequestParts + ?Sized>(&self, req: &R) -> bool {
        if let Some(m) = &self.method
            && **m != *req.method()
        {
            return false;
        }
        for (name, v) in &self.headers {
            match req.header(name) {
                Some(actual) if v.matches(&actual) => {}
                _ => return false,
            }
        }
        if !self.query.is_empty() {
            let raw = req.query().unwrap_or("");
            for (name, v) in &self.query {
                match first_query_value(raw, name) {
                    Some(actual) if v.matches_encoded(actual) => {}
                    _ => return false,
                }
            }
        }
        true
    }

    fn path_matches(&self, path_match: &PathMatch, path: &str) -> bool {
        match path_match {
            PathMatch::Exact(p) => p == path,
            PathMatch::PathPrefix(p) => prefix_matches(p, path),
            PathMatch::RegularExpression(_) => self.regex_path_matches(path),
        }
    }
}

/// Whether one entry matches a request, checking everything (the plain, unindexed way; it
/// compiles the entry's regexes on every call, so it is meant for explanations, not traffic).
pub fn entry_matches<R: RequestParts + ?Sized>(
    entry: &RouteEntry,
    req: &R,
) -> Result<bool, IndexError> {
    let compiled = CompiledEntry::compile(entry, &mut Regexes::default())?;
    Ok(compiled.path_matches(&entry.path, req.path()) && compiled.matches_rest(req))
}

// Candidates, as stored under a path in the index: one word, then, for an entry with a method,
// header or query condition, its conditions inline, so that checking them reads nothing but the
// line the candidate sits in and the table's (few, hot) distinct strings:
//
// - word 0: the entry index, [`EXACT`] when filed under its `Exact` path, [`CONDITIONAL`] when
//   conditions follow;
// - conditions, compact form: a head word `method << 16 | headers << 8 | queries` (`method` is
//   0 for none, else its string id + 1), then one word per header and per query condition,
//   `name << 16 | value`, where `value` is a string id, or a regex id flagged [`REGEX_VALUE`];
// - conditions, external form (more than 255 conditions of a kind, or ids beyond
//   [`INLINE_IDS`]): [`EXTERNAL`], then the index of the entry's [`CompiledEntry`].

/// Flag in a candidate's first word: conditions follow.
const CONDITIONAL: u32 = 1 << 31;
/// Flag in a candidate's first word: filed under its `Exact` path (the others are prefixes).
const EXACT: u32 = 1 << 30;
/// The entry index in a candidate's first word.
const ENTRY: u32 = EXACT - 1;
/// The largest entry count an index holds (candidates keep two bits for flags).
const MAX_ENTRIES: usize = ENTRY as usize;
const NONE: u32 = u32::MAX;
/// Head word of conditions kept in a [`CompiledEntry`]: the next word is its index.
const EXTERNAL: u32 = u32::MAX;
/// Flag in a condition's value: a regex id, not a string id.
const REGEX_VALUE: u32 = 1 << 15;
/// String and regex ids of the compact form are below this.
const INLINE_IDS: u32 = REGEX_VALUE - 1;

/// The distinct strings (methods, header and query names, values) of a table's conditions,
/// stored once, in one buffer.
#[derive(Default)]
struct Strings {
    ids: HashMap<String, u32>,
    text: String,
    spans: Vec<(u32, u32)>,
}

impl Strings {
    fn id(&mut self, s: &str) -> Option<u32> {
        if let Some(&id) = self.ids.get(s) {
            return Some(id);
        }
        let id = u32::try_from(self.spans.len()).ok()?;
        let start = u32::try_from(self.text.len()).ok()?;
        let end = u32::try_from(self.text.len() + s.len()).ok()?;
        self.text.push_str(s);
        self.spans.push((start, end));
        self.ids.insert(s.to_string(), id);
        Some(id)
    }
}

/// An entry's conditions in the compact form, or `None` when they need the external one.
fn inline_conditions(
    e: &RouteEntry,
    strings: &mut Strings,
    regexes: &mut Regexes,
) -> Result<Option<Vec<u32>>, IndexError> {
    let small = |id: Option<u32>| id.filter(|&id| id < INLINE_IDS);
    let mut words = vec![0];
    let mut fits = true;
    let mut condition = |name: &str, m: &ValueMatch, strings: &mut Strings| {
        let value = match m.kind {
            MatchKind::Exact => small(strings.id(&m.value)),
            MatchKind::RegularExpression => {
                small(u32::try_from(regexes.index(e, &m.value)?).ok()).map(|id| id | REGEX_VALUE)
            }
        };
        match (small(strings.id(name)), value) {
            (Some(name), Some(value)) => words.push(name << 16 | value),
            _ => fits = false,
        }
        Ok::<(), IndexError>(())
    };
    let mut headers = 0usize;
    for h in effective_headers(e) {
        condition(&h.name.to_ascii_lowercase(), h, strings)?;
        headers += 1;
    }
    let mut queries = 0usize;
    for q in effective_query(e) {
        condition(&q.name, q, strings)?;
        queries += 1;
    }
    let method = match &e.method {
        None => Some(0),
        Some(m) => small(strings.id(m)).map(|id| id + 1),
    };
    match method {
        Some(method) if fits && headers <= 0xff && queries <= 0xff => {
            // Both counts fit in a byte: checked above.
            words[0] = method << 16 | (headers as u32) << 8 | queries as u32;
            Ok(Some(words))
        }
        _ => Ok(None),
    }
}

/// Iterates over the candidates of a path record: (first word, conditions).
struct Candidates<'a> {
    words: Words<'a>,
    pos: usize,
}

impl<'a> Iterator for Candidates<'a> {
    type Item = (u32, Words<'a>);

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        let first = self.words.get(self.pos)?;
        let start = self.pos + 1;
        if first & CONDITIONAL == 0 {
            self.pos = start;
            return Some((first, Words::EMPTY));
        }
        let head = self.words.get(start)?;
        let len = if head == EXTERNAL {
            2
        } else {
            1 + ((head >> 8) & 0xff) as usize + (head & 0xff) as usize
        };
        self.pos = start + len;
        Some((first, self.words.slice(start, start + len)))
    }
}

/// An indexed route table: finds the first matching entry without scanning every entry.
#[derive(Debug, Clone)]
pub struct RouteIndex {
    /// Compiled regex-path entries, and the entries whose conditions do not fit the compact
    /// form (see above), in table order.
    compiled: Vec<CompiledEntry>,
    /// Number of entries in the table.
    len: usize,
    /// Path text (an exact path, or a normalised prefix) to its candidates in table order,
    /// those filed under an `Exact` path first.
    paths: StrTable,
    /// Regex entries in table order, as indexes into `compiled`.
    regex: Vec<u32>,
    /// The strings conditions refer to, by id: `spans` into `text`.
    text: Box<str>,
    spans: Box<[(u32, u32)]>,
    /// The regexes header and query conditions refer to, by id.
    regexes: Box<[Regex]>,
    /// Longest `Exact` path and longest normalised prefix, in bytes: longer keys are not
    /// probed, so a path of many segments costs no more hashing than the table can use.
    max_exact: usize,
    max_prefix: usize,
    /// Whether the table is sorted by path class and prefix length, so the first bucket with a
    /// hit holds the answer.
    ordered: bool,
}

/// Rank of an entry's path kind for the ordered-table check: smaller comes first.
fn path_rank(path: &PathMatch) -> (u8, std::cmp::Reverse<usize>) {
    match path {
        PathMatch::Exact(_) => (0, std::cmp::Reverse(0)),
        PathMatch::PathPrefix(p) => (1, std::cmp::Reverse(normalise_prefix(p).chars().count())),
        PathMatch::RegularExpression(_) => (2, std::cmp::Reverse(0)),
    }
}

impl RouteIndex {
    /// Compile and index a table. Fails on an invalid regex, an action index out of range, or a
    /// table too large to index.
    pub fn build(table: &RouteTable) -> Result<Self, IndexError> {
        let too_many = || IndexError::TooManyEntries {
            count: table.entries.len(),
            max: MAX_ENTRIES,
        };
        if table.entries.len() > MAX_ENTRIES {
            return Err(too_many());
        }
        let mut compiled = Vec::new();
        let mut strings = Strings::default();
        let mut regexes = Regexes::default();
        // Per path text, in order of first appearance: exact candidates, prefix candidates.
        let mut slots: HashMap<&str, usize> = HashMap::new();
        let mut buckets: Vec<(&str, Vec<u32>, Vec<u32>)> = Vec::new();
        let mut regex = Vec::new();
        let mut ordered = true;
        let (mut max_exact, mut max_prefix) = (0, 0);
        for (i, e) in table.entries.iter().enumerate() {
            if e.action as usize >= table.actions.len() {
                return Err(IndexError::Action {
                    route: e.route.clone(),
                    rule: e.rule,
                    action: e.action,
                });
            }
            if i > 0 && path_rank(&table.entries[i - 1].path) > path_rank(&e.path) {
                ordered = false;
            }
            let idx = u32::try_from(i).map_err(|_| too_many())?;
            let (key, exact) = match &e.path {
                PathMatch::Exact(p) => {
                    max_exact = max_exact.max(p.len());
                    (p.as_str(), EXACT)
                }
                PathMatch::PathPrefix(p) => {
                    let key = normalise_prefix(p);
                    max_prefix = max_prefix.max(key.len());
                    (key, 0)
                }
                PathMatch::RegularExpression(_) => {
                    let mut c = CompiledEntry::compile(e, &mut regexes)?;
                    c.entry = idx;
                    regex.push(u32::try_from(compiled.len()).map_err(|_| too_many())?);
                    compiled.push(c);
                    continue;
                }
            };
            let unconditional = e.method.is_none() && e.headers.is_empty() && e.query.is_empty();
            let cand: Vec<u32> = if unconditional {
                vec![idx | exact]
            } else if let Some(conds) = inline_conditions(e, &mut strings, &mut regexes)? {
                std::iter::once(idx | exact | CONDITIONAL)
                    .chain(conds)
                    .collect()
            } else {
                let mut c = CompiledEntry::compile(e, &mut regexes)?;
                c.entry = idx;
                let slot = u32::try_from(compiled.len()).map_err(|_| too_many())?;
                compiled.push(c);
                vec![idx | exact | CONDITIONAL, EXTERNAL, slot]
            };
            let slot = *slots.entry(key).or_insert_with(|| {
                buckets.push((key, Vec::new(), Vec::new()));
                buckets.len() - 1
            });
            if let Some((_, exact_cands, prefix_cands)) = buckets.get_mut(slot) {
                if exact != 0 {
                    exact_cands.extend(cand);
                } else {
                    prefix_cands.extend(cand);
                }
            }
        }
        let records = buckets.into_iter().map(|(key, mut exact, prefix)| {
            exact.extend(prefix);
            (key, exact)
        });
        let paths = StrTable::build(records).map_err(|_| too_many())?;
        compiled.shrink_to_fit();
        regex.shrink_to_fit();
        Ok(RouteIndex {
            compiled,
            len: table.entries.len(),
            paths,
            regex,
            text: strings.text.into_boxed_str(),
            spans: strings.spans.into_boxed_slice(),
            regexes: regexes.list.into_boxed_slice(),
            max_exact,
            max_prefix,
            ordered,
        })
    }

    /// String `id` of the conditions.
    #[inline]
    fn string(&self, id: u32) -> Option<&str> {
        let &(start, end) = self.spans.get(id as usize)?;
        self.text.get(start as usize..end as usize)
    }

    /// Whether a condition's value (a string or regex id) accepts a value.
    #[inline]
    fn value_matches(&self, value: u32, actual: &str) -> bool {
        if value & REGEX_VALUE != 0 {
            self.regexes
                .get((value & !REGEX_VALUE) as usize)
                .is_some_and(|r| r.is_match(actual))
        } else {
            self.string(value).is_some_and(|v| v == actual)
        }
    }

    /// Whether a query condition's value accepts a raw (still encoded) query value.
    fn value_matches_encoded(&self, value: u32, raw: &str) -> bool {
        if value & REGEX_VALUE != 0 {
            self.regexes
                .get((value & !REGEX_VALUE) as usize)
                .is_some_and(|r| r.is_match(&decode_component(raw)))
        } else {
            self.string(value).is_some_and(|v| decodes_to(raw, v))
        }
    }

    /// Whether a candidate's conditions (everything but the path) hold.
    fn conditions_hold<R: RequestParts + ?Sized>(&self, conds: Words<'_>, req: &R) -> bool {
        let mut words = conds.iter();
        let Some(head) = words.next() else {
            return false;
        };
        if head == EXTERNAL {
            return words
                .next()
                .and_then(|slot| self.compiled.get(slot as usize))
                .is_some_and(|e| e.matches_rest(req));
        }
        let method = head >> 16;
        if method != 0 && self.string(method - 1) != Some(req.method()) {
            return false;
        }
        for _ in 0..(head >> 8) & 0xff {
            let Some(c) = words.next() else { return false };
            let Some(name) = self.string(c >> 16) else {
                return false;
            };
            match req.header(name) {
                Some(actual) if self.value_matches(c & 0xffff, &actual) => {}
                _ => return false,
            }
        }
        let queries = head & 0xff;
        if queries > 0 {
            let raw = req.query().unwrap_or("");
            for _ in 0..queries {
                let Some(c) = words.next() else { return false };
                let Some(name) = self.string(c >> 16) else {
                    return false;
                };
                match first_query_value(raw, name) {
                    Some(actual) if self.value_matches_encoded(c & 0xffff, actual) => {}
                    _ => return false,
                }
            }
        }
        true
    }

    /// The first candidate of a record (in table order), among those filed under an `Exact`
    /// path or among the prefixes, below `best` that matches the request.
    #[inline]
    fn first_in<R: RequestParts + ?Sized>(
        &self,
        record: Words<'_>,
        exact: bool,
        best: u32,
        req: &R,
    ) -> u32 {
        let cands = Candidates {
            words: record,
            pos: 0,
        };
        for (first, conds) in cands {
            if (first & EXACT != 0) != exact {
                // Exact candidates come first.
                if exact {
                    break;
                }
                continue;
            }
            let i = first & ENTRY;
            // Candidates are in table order: nothing after this one can be smaller.
            if i >= best {
                break;
            }
            if first & CONDITIONAL == 0 || self.conditions_hold(conds, req) {
                return i;
            }
        }
        NONE
    }

    /// Index of the first entry (in table order) that matches the request.
    pub fn lookup<R: RequestParts + ?Sized>(&self, req: &R) -> Option<usize> {
        let path = req.path();
        let mut best = NONE;
        let record = if path.len() <= self.max_exact.max(self.max_prefix) {
            self.paths.get(path)
        } else {
            None
        };
        if let Some(r) = record
            && r.first().is_some_and(|c| c & EXACT != 0)
        {
            best = best.min(self.first_in(r, true, best, req));
            if best != NONE && self.ordered {
                return Some(best as usize);
            }
        }
        // Every normalised prefix that matches this path by whole segments, longest first: the
        // path without trailing slashes, then the path cut before each of its slashes. Keys
        // longer than the longest prefix in the table are skipped without hashing.
        let mut key = normalise_prefix(path);
        let mut record = if key.len() == path.len() {
            record
        } else if key.len() <= self.max_prefix {
            self.paths.get(key)
        } else {
            None
        };
        loop {
            if let Some(r) = record {
                best = best.min(self.first_in(r, false, best, req));
                if best != NONE && self.ordered {
                    return Some(best as usize);
                }
            }
            let Some(cut) = key.rfind('/') else { break };
            key = normalise_prefix(&key[..cut]);
            record = if key.len() <= self.max_prefix {
                self.paths.get(key)
            } else {
                None
            };
        }
        for &slot in &self.regex {
            let Some(e) = self.compiled.get(slot as usize) else {
                break;
            };
            if e.entry >= best {
                break;
            }
            if e.regex_path_matches(path) && e.matches_rest(req) {
                best = e.entry;
                break;
            }
        }
        (best != NONE).then_some(best as usize)
    }

    /// Whether the table was sorted by path class and prefix length (the compiler's order),
    /// which lets a lookup stop at its first hit. Lookups are correct either way.
    pub fn is_ordered(&self) -> bool {
        self.ordered
    }

    pub fn len(&self) -> usize {
        self.len
    }

    /// Bytes taken by the path hash table (exact paths and prefixes), for capacity planning.
    pub fn path_table_bytes(&self) -> usize {
        self.paths.size_bytes()
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn header_values_that_are_not_visible_ascii_are_absent() {
        use super::{RequestParts, SimpleRequest};
        let r = SimpleRequest::new("GET", "/")
            .with_header("x-user", "caf\u{e9}")
            .with_header("x-tab", "a\tb")
            .with_header("x-two", "ok")
            .with_header("x-two", "\u{e9}");
        assert_eq!(r.header("x-user"), None);
        assert_eq!(r.header("x-tab").as_deref(), Some("a\tb"));
        assert_eq!(r.header("x-two"), None);
    }

    #[test]
    fn standard_methods_in_other_case_are_found() {
        use super::miscased_method;
        assert_eq!(miscased_method("post"), Some("POST"));
        assert_eq!(miscased_method("Get"), Some("GET"));
        assert_eq!(miscased_method("pAtCh"), Some("PATCH"));
        for ok in ["GET", "POST", "PROPFIND", "purge", "", "GETX", "po"] {
            assert_eq!(miscased_method(ok), None, "{ok}");
        }
    }

    use super::*;
    use crate::types::{RuleAction, SourcePos};

    fn entry(i: usize, path: &str) -> RouteEntry {
        RouteEntry {
            route: format!("ns/r{i}"),
            rule: 0,
            r#match: 0,
            source: SourcePos {
                file: "r.yaml".into(),
                line: 1,
                column: 1,
            },
            path: PathMatch::PathPrefix(path.into()),
            method: None,
            headers: Vec::new(),
            query: Vec::new(),
            action: 0,
        }
    }

    fn header(name: &str, kind: MatchKind, value: &str) -> ValueMatch {
        ValueMatch {
            name: name.into(),
            kind,
            value: value.into(),
        }
    }

    fn build(entries: Vec<RouteEntry>) -> RouteIndex {
        RouteIndex::build(&RouteTable {
            entries,
            actions: vec![RuleAction::default()],
        })
        .expect("valid table")
    }

    /// A thousand entries with the same header regex share one compiled regex, and their
    /// strings are stored once; their conditions are all inline.
    #[test]
    fn conditions_share_strings_and_regexes() {
        let entries = (0..1000)
            .map(|i| {
                let mut e = entry(i, &format!("/svc{i}"));
                e.method = Some(["GET", "POST"][i % 2].into());
                e.headers = vec![
                    header("X-Canary", MatchKind::RegularExpression, "(yes|true)"),
                    header("x-version", MatchKind::Exact, &format!("v{}", i % 3)),
                ];
                e
            })
            .collect();
        let index = build(entries);
        assert_eq!(index.regexes.len(), 1);
        // GET, POST, x-canary, x-version, v0, v1, v2.
        assert_eq!(index.spans.len(), 7);
        assert!(index.compiled.is_empty());
        let req = SimpleRequest::new("POST", "/svc7/x")
            .with_header("x-canary", "true")
            .with_header("X-Version", "v1");
        assert_eq!(index.lookup(&req), Some(7));
        assert_eq!(
            index.lookup(&SimpleRequest::new("GET", "/svc7/x").with_header("x-canary", "yes")),
            None
        );
    }

    /// A header sent on several field lines is matched on the lines' values combined in order
    /// (RFC 9110 section 5.3), never on the first line alone: `x-debug: 0` then `x-debug: 1`
    /// is `0, 1`; cookies join with `; ` (RFC 9113 section 8.2.3).
    #[test]
    fn repeated_headers_match_on_their_combined_value() {
        let req = SimpleRequest::new("GET", "/a")
            .with_header("x-debug", "0")
            .with_header("Accept", "*/*")
            .with_header("X-Debug", "1")
            .with_header("cookie", "a=1")
            .with_header("cookie", "b=2");
        assert_eq!(req.header("x-debug").as_deref(), Some("0, 1"));
        assert_eq!(req.header("cookie").as_deref(), Some("a=1; b=2"));
        assert!(
            matches!(req.header("accept"), Some(Cow::Borrowed("*/*"))),
            "a header on one line is borrowed"
        );
        assert_eq!(req.header("x-none"), None);

        let with = |kind, value: &str| {
            let mut e = entry(0, "/a");
            e.headers = vec![header("x-debug", kind, value)];
            build(vec![e]).lookup(&req)
        };
        assert_eq!(with(MatchKind::Exact, "0"), None, "the first line alone");
        assert_eq!(with(MatchKind::Exact, "1"), None, "the last line alone");
        assert_eq!(with(MatchKind::Exact, "0, 1"), Some(0));
        assert_eq!(with(MatchKind::RegularExpression, "0"), None);
        assert_eq!(with(MatchKind::RegularExpression, ".*1"), Some(0));
        let mut e = entry(0, "/a");
        e.headers = vec![header("cookie", MatchKind::Exact, "a=1; b=2")];
        assert_eq!(build(vec![e.clone()]).lookup(&req), Some(0));
        // The unindexed check agrees.
        assert_eq!(entry_matches(&e, &req), Ok(true));

        // A line whose value is not text makes the whole value unreadable, as it would alone.
        let lines = [Some("0"), None, Some("1")];
        assert_eq!(combine_field_lines(", ", lines.into_iter()), None);
        assert_eq!(combine_field_lines(", ", std::iter::empty()), None);
    }

    /// Conditions beyond the compact form's limits are kept in a compiled entry.
    #[test]
    fn conditions_beyond_the_compact_form_are_external() {
        let mut e = entry(0, "/a");
        e.headers = (0..256)
            .map(|h| header(&format!("x-{h}"), MatchKind::Exact, "1"))
            .collect();
        let index = build(vec![e.clone(), entry(1, "/a")]);
        assert_eq!(index.compiled.len(), 1);
        e.headers.pop();
        let index = build(vec![e, entry(1, "/a")]);
        assert!(index.compiled.is_empty(), "255 headers fit inline");

        // Distinct strings beyond INLINE_IDS: the entries whose ids do not fit are external.
        let n = INLINE_IDS as usize + 100;
        let entries = (0..n)
            .map(|i| {
                let mut e = entry(i, "/t");
                e.headers = vec![header("x-t", MatchKind::Exact, &format!("t{i}"))];
                e
            })
            .collect();
        let index = build(entries);
        assert_eq!(index.compiled.len(), n + 1 - INLINE_IDS as usize);
        let req = |i: usize| SimpleRequest::new("GET", "/t").with_header("x-t", &format!("t{i}"));
        for i in [
            0,
            1,
            n / 2,
            INLINE_IDS as usize - 2,
            INLINE_IDS as usize - 1,
            n - 1,
        ] {
            assert_eq!(index.lookup(&req(i)), Some(i), "entry {i}");
        }
        assert_eq!(index.lookup(&req(n)), None);
    }
}
