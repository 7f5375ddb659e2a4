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
//! - **Headers**: names compare case-insensitively; the request's first value for that name must
//!   equal the expected value exactly (`Exact`) or be fully matched by the regex
//!   (`RegularExpression`). A missing header never matches. When an entry names the same header
//!   twice, only the first condition counts (Gateway API rule).
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
//! see [`literal_prefix`]). Candidates under one key are kept in table order, and an entry with
//! no method, header or query condition is flagged so that it is taken without reading it.
//!
//! When the table is sorted by path class and prefix length (as the compiler always writes it),
//! the first hit is the answer and the lookup stops there; otherwise every bucket is searched and
//! the smallest matching index wins, so a hand-edited table still gets "first entry wins". A
//! lookup allocates nothing, except to percent-decode a query value that a regex must see.

use std::borrow::Cow;
use std::collections::BTreeMap;

use regex::Regex;

use crate::strtable::StrTable;
use crate::types::{MatchKind, PathMatch, RouteEntry, RouteTable, ValueMatch};

/// The parts of a request the matcher looks at.
pub trait RequestParts {
    fn method(&self) -> &str;
    /// Path without the query string, e.g. `/a/b`.
    fn path(&self) -> &str;
    /// Raw query string without `?`, if any.
    fn query(&self) -> Option<&str>;
    /// First value of a header; `name` is lower case. Implementations must compare names
    /// case-insensitively (or store them lower case, as HTTP/2 and `http::HeaderMap` do).
    fn header(&self, name: &str) -> Option<&str>;
}

/// A plain owned request, for `meshc explain` and tests.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SimpleRequest {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    /// Header names are compared case-insensitively; the first pair with a name wins.
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
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
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

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
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
                let hi = self.bytes.get(self.pos).copied().and_then(hex_value);
                let lo = self.bytes.get(self.pos + 1).copied().and_then(hex_value);
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

impl CompiledEntry {
    fn compile(e: &RouteEntry) -> Result<Self, IndexError> {
        let err = |pattern: &str, error: regex::Error| IndexError::Regex {
            route: e.route.clone(),
            rule: e.rule,
            pattern: pattern.to_string(),
            message: error.to_string(),
        };
        let value = |m: &ValueMatch| -> Result<CompiledValue, IndexError> {
            Ok(match m.kind {
                MatchKind::Exact => CompiledValue::Exact(m.value.as_str().into()),
                MatchKind::RegularExpression => {
                    CompiledValue::Regex(full_match_regex(&m.value).map_err(|x| err(&m.value, x))?)
                }
            })
        };
        let regex_path = match &e.path {
            PathMatch::RegularExpression(p) => Some((
                full_match_regex(p).map_err(|x| err(p, x))?,
                literal_prefix(p).into(),
            )),
            _ => None,
        };
        Ok(CompiledEntry {
            entry: 0,
            regex_path,
            method: e.method.as_deref().map(Into::into),
            headers: effective_headers(e)
                .map(|h| Ok((h.name.to_ascii_lowercase().into_boxed_str(), value(h)?)))
                .collect::<Result<_, IndexError>>()?,
            query: effective_query(e)
                .map(|q| Ok((q.name.as_str().into(), value(q)?)))
                .collect::<Result<_, IndexError>>()?,
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

    fn is_unconditional(&self) -> bool {
        self.method.is_none() && self.headers.is_empty() && self.query.is_empty()
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
                Some(actual) if v.matches(actual) => {}
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
    let compiled = CompiledEntry::compile(entry)?;
    Ok(compiled.path_matches(&entry.path, req.path()) && compiled.matches_rest(req))
}

/// Flag set in a candidate when its entry has a method, header or query condition: the
/// candidate then holds the index of the entry's compiled conditions, not of the entry.
const CONDITIONAL: u32 = 1 << 31;
/// Flag set in a candidate filed under its `Exact` path (the others are prefixes).
const EXACT: u32 = 1 << 30;
/// The entry (or compiled conditions) index in a candidate.
const ENTRY: u32 = EXACT - 1;
/// The largest entry count an index holds (candidates keep two bits for flags).
const MAX_ENTRIES: usize = ENTRY as usize;
const NONE: u32 = u32::MAX;

/// An indexed route table: finds the first matching entry without scanning every entry.
#[derive(Debug, Clone)]
pub struct RouteIndex {
    /// Compiled conditions of the entries that have more to check than an exact or prefix
    /// path (a method, a header, a query parameter, a regex path), in table order. Entries
    /// matched by their path alone take no room here.
    compiled: Vec<CompiledEntry>,
    /// Number of entries in the table.
    len: usize,
    /// Path text (an exact path, or a normalised prefix) to its candidates, in table order,
    /// those filed under an `Exact` path first (flagged [`EXACT`]): the entry index, or, flagged
    /// [`CONDITIONAL`], the index of the entry's compiled conditions.
    paths: StrTable,
    /// Regex entries in table order, as indexes into `compiled`.
    regex: Vec<u32>,
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
        // Per path text: exact candidates, prefix candidates. A BTreeMap keeps the build
        // deterministic (the order records are laid out in).
        let mut buckets: BTreeMap<&str, (Vec<u32>, Vec<u32>)> = BTreeMap::new();
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
            let mut c = CompiledEntry::compile(e)?;
            let idx = u32::try_from(i).map_err(|_| too_many())?;
            c.entry = idx;
            let slot = u32::try_from(compiled.len()).map_err(|_| too_many())?;
            let keep = !c.is_unconditional() || c.regex_path.is_some();
            let cand = if c.is_unconditional() {
                idx
            } else {
                slot | CONDITIONAL
            };
            if keep {
                compiled.push(c);
            }
            match &e.path {
                PathMatch::Exact(p) => {
                    max_exact = max_exact.max(p.len());
                    buckets.entry(p.as_str()).or_default().0.push(cand);
                }
                PathMatch::PathPrefix(p) => {
                    let key = normalise_prefix(p);
                    max_prefix = max_prefix.max(key.len());
                    buckets.entry(key).or_default().1.push(cand);
                }
                PathMatch::RegularExpression(_) => regex.push(slot),
            }
        }
        let records = buckets.into_iter().map(|(key, (exact, prefix))| {
            let exact = exact.into_iter().map(|c| c | EXACT);
            (key, exact.chain(prefix).collect())
        });
        let paths = StrTable::build(records).map_err(|_| too_many())?;
        compiled.shrink_to_fit();
        regex.shrink_to_fit();
        Ok(RouteIndex {
            compiled,
            len: table.entries.len(),
            paths,
            regex,
            max_exact,
            max_prefix,
            ordered,
        })
    }

    /// The first candidate (in table order) below `best` that matches the request.
    #[inline]
    fn first_in<R: RequestParts + ?Sized>(
        &self,
        cands: impl Iterator<Item = u32>,
        best: u32,
        req: &R,
    ) -> u32 {
        for c in cands {
            if c & CONDITIONAL == 0 {
                let i = c & ENTRY;
                // Candidates are in table order: nothing after this one can be smaller.
                return if i < best { i } else { NONE };
            }
            let Some(e) = self.compiled.get((c & ENTRY) as usize) else {
                return NONE;
            };
            if e.entry >= best {
                break;
            }
            if e.matches_rest(req) {
                return e.entry;
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
            let exact = r.iter().take_while(|c| c & EXACT != 0);
            best = best.min(self.first_in(exact, best, req));
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
            if let Some(r) = record
                && r.last().is_some_and(|c| c & EXACT == 0)
            {
                let prefix = r.iter().skip_while(|c| c & EXACT != 0);
                best = best.min(self.first_in(prefix, best, req));
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
