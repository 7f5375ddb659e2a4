//! A fast path for the plain subset of YAML that mesh definitions are nearly always written in.
//!
//! granit-parser is a complete YAML 1.2 parser, and it spent more than half of `meshc check`'s
//! time on the 5,000-service benchmark mesh (about 14 MB/s per core). This module reads the
//! subset that Kubernetes-style files use, several times faster, and builds the very same tree,
//! spans included. It never reports an error: on anything outside its subset, or anything that
//! might be invalid, it gives up ([`Bail`]) and the caller parses the whole file again with
//! granit-parser, whose verdict and messages then stand. So the subset only has to be read
//! correctly, not diagnosed, and every doubtful corner is left to the real parser.
//!
//! The subset:
//! - printable ASCII and line feeds only (no tabs, carriage returns, byte-order marks or
//!   non-ASCII text);
//! - documents separated by `---` lines (no `...`, no directives);
//! - block mappings whose keys are single-line plain or quoted scalars followed by `: `, block
//!   sequences (`- `), compact forms (`- key: value`, `- - item`, a sequence at its key's
//!   indentation);
//! - single-line plain scalars (no `[`, `]`, `{`, `}` in block context), single- and
//!   double-quoted scalars on one line (double-quoted without escapes);
//! - flow mappings and sequences on one line, without trailing commas, implicit nulls or
//!   plain scalars containing `:`;
//! - comments.
//!
//! No anchors, aliases, tags, merge keys (a plain `<<` key, even with a mapping written in
//! place), block scalars, multi-line scalars, explicit keys (`?`), empty sequence entries or
//! scalars on their own line under a key. Budgets are not enforced here either: near a limit
//! the fast path gives up, and granit-parser reports it.
//!
//! `compiler/tests/syntax.rs` holds the differential test: on generated inputs, whenever this
//! parser accepts a file, granit-parser must give the same tree with the same spans.

use std::borrow::Cow;

use super::{Limits, Node, Value, resolve_plain};
use crate::source::Span;

/// The fast path declined the file. Whatever it handed over must be discarded.
#[derive(Debug)]
pub(super) struct Bail;

type R<T> = Result<T, Bail>;

/// The longest implicit key YAML allows is 1024 characters; longer ones are left to granit.
const MAX_KEY: usize = 1024;

/// Parse `text`, handing each non-empty document to `on_document`, or give up.
pub(super) fn parse<'a>(
    text: &'a str,
    limits: Limits,
    mut on_document: impl FnMut(Node<'a>),
) -> R<()> {
    let b = text.as_bytes();
    if !b.iter().all(|&c| c == b'\n' || (0x20..0x7f).contains(&c)) {
        return Err(Bail);
    }
    let mut p = Fast {
        text,
        b,
        limits,
        nodes: 0,
    };
    let mut documents = 0usize;
    let mut pos = p.next_token(0);
    let mut first = true;
    while pos < b.len() {
        let explicit = p.marker(pos)?;
        if !explicit && !first {
            return Err(Bail);
        }
        first = false;
        if documents >= limits.max_documents {
            return Err(Bail);
        }
        let body = if explicit {
            let eol = p.rest_of_line(pos + 3)?;
            p.next_token(eol)
        } else {
            pos
        };
        if body >= b.len() || p.marker(body)? {
            // An empty document.
            pos = body;
            continue;
        }
        let (root, next) = p.block_node(body, 0)?;
        if next < b.len() && !p.marker(next)? {
            return Err(Bail);
        }
        documents += 1;
        on_document(root);
        pos = next;
    }
    Ok(())
}

struct Fast<'a> {
    text: &'a str,
    b: &'a [u8],
    limits: Limits,
    nodes: usize,
}

impl<'a> Fast<'a> {
    fn at(&self, i: usize) -> Option<u8> {
        self.b.get(i).copied()
    }

    /// Count one node against the budget.
    fn count(&mut self) -> R<()> {
        self.nodes += 1;
        if self.nodes > self.limits.max_nodes {
            return Err(Bail);
        }
        Ok(())
    }

    fn enter(&self, depth: usize) -> R<()> {
        if depth >= self.limits.max_depth {
            return Err(Bail);
        }
        Ok(())
    }

    fn column(&self, i: usize) -> usize {
        let line_start = self.b[..i]
            .iter()
            .rposition(|&c| c == b'\n')
            .map_or(0, |n| n + 1);
        i - line_start
    }

    fn skip_spaces(&self, mut i: usize) -> usize {
        while self.at(i) == Some(b' ') {
            i += 1;
        }
        i
    }

    fn end_of_line(&self, i: usize) -> usize {
        self.b[i.min(self.b.len())..]
            .iter()
            .position(|&c| c == b'\n')
            .map_or(self.b.len(), |n| i + n)
    }

    /// The start of the next token from the start of a line (or of the file): blank lines,
    /// indentation and comment lines skipped. `len` at the end of the file.
    fn next_token(&self, mut i: usize) -> usize {
        loop {
            while matches!(self.at(i), Some(b' ' | b'\n')) {
                i += 1;
            }
            if self.at(i) == Some(b'#') {
                i = self.end_of_line(i);
                continue;
            }
            return i;
        }
    }

    /// After a token at `i`: spaces and an optional comment up to the end of the line, which
    /// is returned. Anything else on the line is left to granit.
    fn rest_of_line(&self, i: usize) -> R<usize> {
        let mut j = self.skip_spaces(i);
        if self.at(j) == Some(b'#') {
            if j == i {
                return Err(Bail);
            }
            j = self.end_of_line(j);
        }
        match self.at(j) {
            None | Some(b'\n') => Ok(j),
            Some(_) => Err(Bail),
        }
    }

    fn at_line_start(&self, i: usize) -> bool {
        i == 0 || self.at(i - 1) == Some(b'\n')
    }

    fn ends_token(&self, i: usize) -> bool {
        matches!(self.at(i), None | Some(b' ' | b'\n'))
    }

    /// Whether a document marker starts at `i`: `---` starts a document; `...`, and a line
    /// that merely starts with `---` or `...` (`---x: 1`), are left to granit.
    fn marker(&self, i: usize) -> R<bool> {
        if !self.at_line_start(i) {
            return Ok(false);
        }
        let rest = &self.b[i..];
        if rest.starts_with(b"---") && self.ends_token(i + 3) {
            return Ok(true);
        }
        if rest.starts_with(b"---") || rest.starts_with(b"...") {
            return Err(Bail);
        }
        Ok(false)
    }

    /// A block sequence entry indicator at `i`.
    fn is_dash(&self, i: usize) -> bool {
        self.at(i) == Some(b'-') && self.ends_token(i + 1)
    }

    /// The block node (mapping or sequence) whose first token is at `i`, and the start of the
    /// token after it.
    fn block_node(&mut self, i: usize, depth: usize) -> R<(Node<'a>, usize)> {
        let column = self.column(i);
        if self.is_dash(i) {
            self.block_seq(i, column, depth, false)
        } else if self.key_at(i)?.is_some() {
            self.block_map(i, column, depth)
        } else {
            Err(Bail)
        }
    }

    fn block_map(&mut self, start: usize, column: usize, depth: usize) -> R<(Node<'a>, usize)> {
        self.enter(depth)?;
        self.count()?;
        let mut entries = Vec::new();
        let mut at = start;
        let end = loop {
            let Some((key, colon)) = self.key_at(at)? else {
                return Err(Bail);
            };
            self.count()?;
            let after = colon + 1;
            let j = self.skip_spaces(after);
            let (value, next) = match self.at(j) {
                None | Some(b'\n') => self.value_below(colon, column, depth)?,
                Some(b'#') if j > after => self.value_below(colon, column, depth)?,
                Some(_) => {
                    let (v, e) = self.inline_value(j, depth + 1)?;
                    let eol = self.rest_of_line(e)?;
                    (v, self.next_token(eol))
                }
            };
            entries.push((key, value));
            if next >= self.b.len() || self.marker(next)? {
                break next;
            }
            let c = self.column(next);
            if c == column {
                at = next;
            } else if c < column {
                break next;
            } else {
                return Err(Bail);
            }
        };
        Ok((
            Node {
                span: Span::new(start, end),
                value: Value::Map(entries),
            },
            end,
        ))
    }

    /// The value of a key with nothing after its colon on the same line: a block node on the
    /// lines below, or null (spanned at the colon, as granit does).
    fn value_below(&mut self, colon: usize, column: usize, depth: usize) -> R<(Node<'a>, usize)> {
        let eol = self.rest_of_line(colon + 1)?;
        let n = self.next_token(eol);
        if n < self.b.len() && !self.marker(n)? {
            let c = self.column(n);
            if c > column {
                return self.block_node(n, depth + 1);
            }
            if c == column && self.is_dash(n) {
                // A sequence at its key's own indentation: granit spans it from its first
                // entry's content, not from the dash.
                return self.block_seq(n, column, depth + 1, true);
            }
        }
        self.count()?;
        Ok((
            Node {
                span: Span::new(colon, colon),
                value: Value::Null,
            },
            n,
        ))
    }

    /// A block sequence whose first dash is at `first`. `compact`: at its key's indentation.
    fn block_seq(
        &mut self,
        first: usize,
        column: usize,
        depth: usize,
        compact: bool,
    ) -> R<(Node<'a>, usize)> {
        self.enter(depth)?;
        self.count()?;
        let mut start = first;
        if compact {
            start = self.skip_spaces(first + 1);
            if matches!(self.at(start), None | Some(b'\n' | b'#')) {
                return Err(Bail);
            }
        }
        let mut items = Vec::new();
        let mut at = first;
        let end = loop {
            let after = at + 1;
            let j = self.skip_spaces(after);
            let (item, next) = match self.at(j) {
                None | Some(b'\n') | Some(b'#') => {
                    if self.at(j) == Some(b'#') && j == after {
                        return Err(Bail);
                    }
                    let eol = self.rest_of_line(after)?;
                    let n = self.next_token(eol);
                    if n >= self.b.len() || self.marker(n)? || self.column(n) <= column {
                        // An empty entry.
                        return Err(Bail);
                    }
                    self.block_node(n, depth + 1)?
                }
                Some(_) if self.is_dash(j) => {
                    let c = self.column(j);
                    self.block_seq(j, c, depth + 1, false)?
                }
                Some(_) if self.key_at(j)?.is_some() => {
                    let c = self.column(j);
                    self.block_map(j, c, depth + 1)?
                }
                Some(_) => {
                    let (v, e) = self.inline_value(j, depth + 1)?;
                    let eol = self.rest_of_line(e)?;
                    (v, self.next_token(eol))
                }
            };
            items.push(item);
            if next >= self.b.len() || self.marker(next)? {
                break next;
            }
            let c = self.column(next);
            if c == column && self.is_dash(next) {
                at = next;
            } else if c <= column {
                break next;
            } else {
                return Err(Bail);
            }
        };
        Ok((
            Node {
                span: Span::new(start, end),
                value: Value::Seq(items),
            },
            end,
        ))
    }

    /// A block mapping key at `i`: the key node and the position of its colon. `None` when
    /// the token at `i` is not a key.
    fn key_at(&self, i: usize) -> R<Option<(Node<'a>, usize)>> {
        let (node, end) = match self.at(i) {
            Some(b'"') => self.double_quoted(i)?,
            Some(b'\'') => self.single_quoted(i)?,
            Some(c) if plain_start(c, self.at(i + 1)) => {
                let (end, stop) = self.plain_block(i)?;
                if stop != Stop::Colon {
                    return Ok(None);
                }
                if is_merge_key(&self.b[i..end]) {
                    return Err(Bail);
                }
                let node = Node {
                    span: Span::new(i, end),
                    value: resolve_plain(Cow::Borrowed(&self.text[i..end])),
                };
                (node, end)
            }
            _ => return Ok(None),
        };
        if end - i > MAX_KEY {
            return Err(Bail);
        }
        if self.at(end) == Some(b':') && self.ends_token(end + 1) {
            Ok(Some((node, end)))
        } else {
            Ok(None)
        }
    }

    /// A value on the rest of a line in block context: a flow collection or a scalar. Only
    /// plain scalars read differently from inside a flow collection.
    fn inline_value(&mut self, i: usize, depth: usize) -> R<(Node<'a>, usize)> {
        match self.at(i) {
            Some(b'{' | b'[' | b'"' | b'\'') => self.flow_value(i, depth),
            Some(c) if plain_start(c, self.at(i + 1)) => {
                let (end, stop) = self.plain_block(i)?;
                if stop == Stop::Colon {
                    return Err(Bail);
                }
                self.count()?;
                Ok((self.plain_node(i, end), end))
            }
            _ => Err(Bail),
        }
    }

    /// `end` moved back over the spaces that end `start..end`.
    fn trim_end(&self, start: usize, mut end: usize) -> usize {
        while end > start && self.b[end - 1] == b' ' {
            end -= 1;
        }
        end
    }

    fn plain_node(&self, start: usize, end: usize) -> Node<'a> {
        Node {
            span: Span::new(start, end),
            value: resolve_plain(Cow::Borrowed(&self.text[start..end])),
        }
    }

    /// A plain scalar in block context from `i` to the end of its line: its end (trailing
    /// spaces excluded) and what stopped it.
    fn plain_block(&self, i: usize) -> R<(usize, Stop)> {
        let mut j = i;
        let stop = loop {
            match self.at(j) {
                None | Some(b'\n') => break Stop::Line,
                Some(b':') if self.ends_token(j + 1) => break Stop::Colon,
                Some(b'#') if self.at(j.wrapping_sub(1)) == Some(b' ') => break Stop::Comment,
                Some(b'[' | b']' | b'{' | b'}') => return Err(Bail),
                Some(_) => j += 1,
            }
        };
        let end = self.trim_end(i, j);
        if stop == Stop::Colon && end != j {
            // Spaces between a key and its colon.
            return Err(Bail);
        }
        Ok((end, stop))
    }

    /// A double-quoted scalar on one line without escapes, and the position after its quote.
    fn double_quoted(&self, i: usize) -> R<(Node<'a>, usize)> {
        let rest = &self.b[i + 1..];
        let Some(n) = rest.iter().position(|&c| matches!(c, b'"' | b'\\' | b'\n')) else {
            return Err(Bail);
        };
        if rest[n] != b'"' {
            return Err(Bail);
        }
        let close = i + 1 + n;
        Ok((
            Node {
                span: Span::new(i, close + 1),
                value: Value::Str(Cow::Borrowed(&self.text[i + 1..close])),
            },
            close + 1,
        ))
    }

    /// A single-quoted scalar on one line (`''` is a quote), and the position after it.
    fn single_quoted(&self, i: usize) -> R<(Node<'a>, usize)> {
        let mut j = i + 1;
        let mut escaped = false;
        let close = loop {
            match self.at(j) {
                None | Some(b'\n') => return Err(Bail),
                Some(b'\'') if self.at(j + 1) == Some(b'\'') => {
                    escaped = true;
                    j += 2;
                }
                Some(b'\'') => break j,
                Some(_) => j += 1,
            }
        };
        let inner = &self.text[i + 1..close];
        let value = if escaped {
            Cow::Owned(inner.replace("''", "'"))
        } else {
            Cow::Borrowed(inner)
        };
        Ok((
            Node {
                span: Span::new(i, close + 1),
                value: Value::Str(value),
            },
            close + 1,
        ))
    }

    /// After an item of a flow collection closed by `close`, at `i`: the start of the next
    /// item, or `None` at the closing bracket. A trailing comma is left to granit.
    fn flow_next(&self, i: usize, close: u8) -> R<Option<usize>> {
        match self.at(i) {
            Some(b',') => {
                let next = self.skip_spaces(i + 1);
                if self.at(next) == Some(close) {
                    return Err(Bail);
                }
                Ok(Some(next))
            }
            Some(c) if c == close => Ok(None),
            _ => Err(Bail),
        }
    }

    /// The items of a flow collection opened at `start` and closed by `close`, each read by
    /// `item` (which returns where the item ends); the position of the closing bracket.
    fn flow_items(
        &mut self,
        start: usize,
        close: u8,
        depth: usize,
        mut item: impl FnMut(&mut Self, usize) -> R<usize>,
    ) -> R<usize> {
        self.enter(depth)?;
        self.count()?;
        let mut i = self.skip_spaces(start + 1);
        if self.at(i) == Some(close) {
            return Ok(i);
        }
        loop {
            let e = item(self, i)?;
            i = self.skip_spaces(e);
            match self.flow_next(i, close)? {
                Some(next) => i = next,
                None => return Ok(i),
            }
        }
    }

    fn flow_seq(&mut self, start: usize, depth: usize) -> R<(Node<'a>, usize)> {
        let mut items = Vec::new();
        let close = self.flow_items(start, b']', depth, |p, i| {
            let (v, e) = p.flow_value(i, depth + 1)?;
            items.push(v);
            Ok(e)
        })?;
        Ok((
            Node {
                span: Span::new(start, close + 1),
                value: Value::Seq(items),
            },
            close + 1,
        ))
    }

    fn flow_map(&mut self, start: usize, depth: usize) -> R<(Node<'a>, usize)> {
        let mut entries = Vec::new();
        let close = self.flow_items(start, b'}', depth, |p, i| {
            let (key, e) = match p.at(i) {
                Some(b'{' | b'[') | None => return Err(Bail),
                _ => p.flow_value(i, depth + 1)?,
            };
            if is_merge_key(&p.b[i..e]) {
                return Err(Bail);
            }
            if e - i > MAX_KEY || p.at(e) != Some(b':') || p.at(e + 1) != Some(b' ') {
                return Err(Bail);
            }
            let (value, e) = p.flow_value(p.skip_spaces(e + 1), depth + 1)?;
            entries.push((key, value));
            Ok(e)
        })?;
        Ok((
            Node {
                span: Span::new(start, close + 1),
                value: Value::Map(entries),
            },
            close + 1,
        ))
    }

    /// A node inside a flow collection.
    fn flow_value(&mut self, i: usize, depth: usize) -> R<(Node<'a>, usize)> {
        match self.at(i) {
            Some(b'{') => self.flow_map(i, depth),
            Some(b'[') => self.flow_seq(i, depth),
            Some(b'"') => {
                self.count()?;
                self.double_quoted(i)
            }
            Some(b'\'') => {
                self.count()?;
                self.single_quoted(i)
            }
            Some(c) if plain_start(c, self.at(i + 1)) => {
                let mut j = i;
                while let Some(c) = self.at(j) {
                    match c {
                        b',' | b'[' | b']' | b'{' | b'}' | b':' | b'\n' => break,
                        b'#' if self.at(j - 1) == Some(b' ') => return Err(Bail),
                        _ => j += 1,
                    }
                }
                // Stopped by a flow indicator or a colon; a line end or the file's end means
                // a flow collection over several lines, left to granit.
                if matches!(self.at(j), None | Some(b'\n' | b'[' | b'{')) {
                    return Err(Bail);
                }
                let end = self.trim_end(i, j);
                if self.at(j) == Some(b':') && end != j {
                    return Err(Bail);
                }
                self.count()?;
                Ok((self.plain_node(i, end), end))
            }
            _ => Err(Bail),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stop {
    Line,
    Colon,
    Comment,
}

/// Whether a key, as written, is a merge key (`<<`, plain): merges are left to granit, after
/// which `super` resolves them.
fn is_merge_key(written: &[u8]) -> bool {
    written == b"<<"
}

/// Whether a plain scalar may start with `c` (followed by `next`). Indicators are left to
/// granit, and so are `-`, `?` and `:` unless `-` starts something like `-1` or `--flag`.
fn plain_start(c: u8, next: Option<u8>) -> bool {
    match c {
        b'-' => !matches!(
            next,
            None | Some(b' ' | b'\n' | b',' | b'[' | b']' | b'{' | b'}')
        ),
        b'?' | b':' | b',' | b'[' | b']' | b'{' | b'}' | b'#' | b'&' | b'*' | b'!' | b'|'
        | b'>' | b'\'' | b'"' | b'%' | b'@' | b'`' | b' ' | b'\n' => false,
        _ => true,
    }
}
