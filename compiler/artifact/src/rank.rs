//! Gateway API route precedence, as one sortable key.
//!
//! Across all rules of all routes attached to the same parent, continuing on ties:
//!
//! 1. an `Exact` path;
//! 2. then the `PathPrefix` with the most characters, trailing slashes not counted (they do not
//!    change what a prefix matches, so `/v2/` and `/v2` rank the same, and `/` counts zero);
//! 3. then `RegularExpression` paths: their rank is left to implementations, and like Istio and
//!    Kuma we put them below every prefix, `/` included;
//! 4. then a method match;
//! 5. then the most header matches (distinct names, case-insensitively: a repeated name is
//!    ignored by the matcher, so it does not count);
//! 6. then the most query-parameter matches (distinct names);
//! 7. then the oldest route by `creationTimestamp` (a route without one counts as newer than any
//!    that has one);
//! 8. then `namespace/name` in alphabetical (byte) order of that text;
//! 9. then rule order within the route, then match order within the rule.
//!
//! The compiler sorts every route table with [`precedence_key`]; the matcher then takes the
//! first entry that matches.

use std::cmp::Reverse;

use crate::matcher::{effective_headers, effective_query, normalise_prefix};
use crate::types::{PathMatch, RouteEntry};

/// Sortable precedence key: a smaller key wins.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct PrecedenceKey {
    path_class: u8,
    prefix_len: Reverse<usize>,
    no_method: bool,
    headers: Reverse<usize>,
    query: Reverse<usize>,
    no_timestamp: bool,
    timestamp: String,
    route: String,
    rule: u32,
    r#match: u32,
}

/// The key of one entry. `creation_timestamp` is RFC 3339 in UTC (`2024-05-01T10:00:00Z`), as
/// normalised by the compiler, so that string order is time order.
pub fn precedence_key(entry: &RouteEntry, creation_timestamp: Option<&str>) -> PrecedenceKey {
    let (path_class, prefix_len) = match &entry.path {
        PathMatch::Exact(_) => (0, 0),
        PathMatch::PathPrefix(p) => (1, normalise_prefix(p).chars().count()),
        PathMatch::RegularExpression(_) => (2, 0),
    };
    PrecedenceKey {
        path_class,
        prefix_len: Reverse(prefix_len),
        no_method: entry.method.is_none(),
        headers: Reverse(effective_headers(entry).count()),
        query: Reverse(effective_query(entry).count()),
        no_timestamp: creation_timestamp.is_none(),
        timestamp: creation_timestamp.unwrap_or_default().to_string(),
        route: entry.route.clone(),
        rule: entry.rule,
        r#match: entry.r#match,
    }
}

/// Whether two entries tie on every match-specificity criterion (path, method, header and query
/// counts), so that only route age, name or order separates them.
pub fn same_specificity(a: &RouteEntry, b: &RouteEntry) -> bool {
    let ka = precedence_key(a, None);
    let kb = precedence_key(b, None);
    (
        ka.path_class,
        ka.prefix_len,
        ka.no_method,
        ka.headers,
        ka.query,
    ) == (
        kb.path_class,
        kb.prefix_len,
        kb.no_method,
        kb.headers,
        kb.query,
    )
}
