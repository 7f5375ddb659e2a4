//! Differential test: the indexed matcher against a plain reference written from the spec.
//!
//! Random route sets over a small alphabet (so that paths, headers and query parameters collide
//! often) are sorted with `rank::precedence_key`, as the compiler does, and indexed with
//! `RouteIndex::build`. For every generated request, `RouteIndex::lookup` must name the same
//! entry as the reference, which scans every entry, keeps those that match, and picks the best
//! by comparing the Gateway API criteria directly. The reference shares no code with the
//! crate's matcher or ranking.

use std::cmp::Ordering;
use std::collections::HashMap;

use mesh_artifact::rank::precedence_key;
use mesh_artifact::{
    AuthzMode, Body, Decision, Destination, DestinationPort, MatchKind, MeshInfo, MtlsMode,
    PathMatch, Protocol, RouteEntry, RouteIndex, RouteTable, Router, RuleAction, SidecarInfo,
    SimpleRequest, SourcePos, ValueMatch,
};
use proptest::prelude::*;
use proptest::sample::select;
use regex::Regex;

// ---- generation -----------------------------------------------------------------------------

const PATHS: &[&str] = &["/", "/a", "/a/", "/a/b", "/ab", "/b", "/a/b/c", "/a/b/"];
const PATH_REGEXES: &[&str] = &["/a.*", "/a/[a-z]+", ".*b", "/(a|b)", "/a/?", "/[ab]*"];
const ROUTE_NAMES: &[&str] = &["a/x", "a/y", "b/x", "a-b/x", "b/a"];
const TIMESTAMPS: &[&str] = &["2021-01-01T00:00:00Z", "2022-06-01T12:00:00Z"];
const HEADER_NAMES: &[&str] = &["x-a", "X-A", "x-b", "x-c"];
const QUERY_NAMES: &[&str] = &["a", "b", "A", "a b"];

const REQ_PATHS: &[&str] = &[
    "", "/", "/a", "/a/", "/a/b", "/a/b/", "/a/b/c", "/a/b/c/d", "/ab", "/ab/", "/b", "/a//b",
    "/c", "/a/bc", "//",
];
const REQ_HEADER_NAMES: &[&str] = &["x-a", "X-A", "x-b", "X-C", "x-d"];
const REQ_QUERY_PARAMS: &[&str] = &[
    "a=1", "a=2", "b=1", "A=1", "a=%31", "a+b=2", "a%20b=1", "b", "a", "b=%32", "a=", "b=22",
];

fn value_match(
    names: &'static [&'static str],
    exact: &'static [&'static str],
    regexes: &'static [&'static str],
) -> impl Strategy<Value = ValueMatch> {
    (
        select(names),
        prop_oneof![
            select(exact).prop_map(|v| (MatchKind::Exact, v)),
            select(regexes).prop_map(|v| (MatchKind::RegularExpression, v)),
        ],
    )
        .prop_map(|(name, (kind, value))| ValueMatch {
            name: name.into(),
            kind,
            value: value.into(),
        })
}

/// One `matches[]` element, without its route identity.
fn gen_match()
-> impl Strategy<Value = (PathMatch, Option<String>, Vec<ValueMatch>, Vec<ValueMatch>)> {
    let path = prop_oneof![
        3 => select(PATHS).prop_map(|p| PathMatch::PathPrefix(p.into())),
        2 => select(PATHS).prop_map(|p| PathMatch::Exact(p.into())),
        1 => select(PATH_REGEXES).prop_map(|p| PathMatch::RegularExpression(p.into())),
    ];
    let method =
        proptest::option::weighted(0.3, select(&["GET", "POST"][..]).prop_map(String::from));
    let headers = proptest::collection::vec(
        value_match(HEADER_NAMES, &["1", "2"], &["[12]", "1|3", ".*", "2+"]),
        0..=3,
    );
    let query = proptest::collection::vec(
        value_match(QUERY_NAMES, &["1", "2", ""], &["[12]", ".*", "1?"]),
        0..=3,
    );
    (path, method, headers, query)
}

/// A route: name, creation timestamp, rules (each a list of matches).
type GenRoute = (
    String,
    Option<String>,
    Vec<Vec<(PathMatch, Option<String>, Vec<ValueMatch>, Vec<ValueMatch>)>>,
);

fn gen_routes() -> impl Strategy<Value = Vec<GenRoute>> {
    let route = (
        proptest::option::weighted(0.7, select(TIMESTAMPS).prop_map(String::from)),
        proptest::collection::vec(proptest::collection::vec(gen_match(), 1..=3), 1..=3),
    );
    (
        proptest::sample::subsequence(ROUTE_NAMES, 1..=4).prop_shuffle(),
        proptest::collection::vec(route, 4),
    )
        .prop_map(|(names, routes)| {
            names
                .into_iter()
                .zip(routes)
                .map(|(n, (ts, rules))| (n.to_string(), ts, rules))
                .collect()
        })
}

/// Entries with their route's timestamp, in source order (routes, rules, matches).
fn flatten(routes: &[GenRoute]) -> Vec<(RouteEntry, Option<String>)> {
    let mut out = Vec::new();
    for (name, ts, rules) in routes {
        for (r, matches) in rules.iter().enumerate() {
            for (m, (path, method, headers, query)) in matches.iter().enumerate() {
                let e = RouteEntry {
                    route: name.clone(),
                    rule: r as u32,
                    r#match: m as u32,
                    source: SourcePos {
                        file: "routes.yaml".into(),
                        line: 1,
                        column: 1,
                    },
                    path: path.clone(),
                    method: method.clone(),
                    headers: headers.clone(),
                    query: query.clone(),
                    action: (out.len() % 3) as u32,
                };
                out.push((e, ts.clone()));
            }
        }
    }
    out
}

fn gen_request() -> impl Strategy<Value = SimpleRequest> {
    (
        select(&["GET", "GET", "POST", "get"][..]),
        select(REQ_PATHS),
        proptest::collection::vec(
            (select(REQ_HEADER_NAMES), select(&["1", "2", "3", ""][..])),
            0..=4,
        ),
        proptest::option::weighted(
            0.8,
            proptest::collection::vec(select(REQ_QUERY_PARAMS), 0..=4),
        ),
    )
        .prop_map(|(method, path, headers, query)| SimpleRequest {
            method: method.into(),
            path: path.into(),
            query: query.map(|q| q.join("&")),
            headers: headers
                .into_iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
        })
}

/// Sort entries with `precedence_key`, as the compiler does.
fn sorted(entries: &[(RouteEntry, Option<String>)]) -> Vec<RouteEntry> {
    let mut keyed: Vec<_> = entries
        .iter()
        .map(|(e, ts)| (precedence_key(e, ts.as_deref()), e.clone()))
        .collect();
    keyed.sort_by(|a, b| a.0.cmp(&b.0));
    keyed.into_iter().map(|(_, e)| e).collect()
}

fn table(entries: Vec<RouteEntry>) -> RouteTable {
    RouteTable {
        entries,
        actions: vec![RuleAction::default(); 3],
    }
}

// ---- the reference ----------------------------------------------------------------------------

/// Reference matcher: everything computed from the spec text, with its own regex cache.
struct Reference {
    regexes: HashMap<String, Regex>,
}

impl Reference {
    fn new() -> Self {
        Reference {
            regexes: HashMap::new(),
        }
    }

    /// Regexes match the whole subject.
    fn full_match(&mut self, pattern: &str, subject: &str) -> bool {
        let re = self
            .regexes
            .entry(pattern.to_string())
            .or_insert_with(|| Regex::new(&format!("^(?:{pattern})$")).expect("valid test regex"));
        re.is_match(subject)
    }

    fn path_ok(&mut self, m: &PathMatch, path: &str) -> bool {
        match m {
            PathMatch::Exact(p) => p == path,
            PathMatch::PathPrefix(p) => {
                // Compare segment lists: the prefix's segments (trailing slashes dropped) must
                // be the first segments of the path.
                let mut p = p.as_str();
                while let Some(shorter) = p.strip_suffix('/') {
                    p = shorter;
                }
                let want: Vec<&str> = p.split('/').collect();
                let have: Vec<&str> = path.split('/').collect();
                have.len() >= want.len() && have[..want.len()] == want[..]
            }
            PathMatch::RegularExpression(re) => self.full_match(re, path),
        }
    }

    fn value_ok(&mut self, m: &ValueMatch, actual: &str) -> bool {
        match m.kind {
            MatchKind::Exact => m.value == actual,
            MatchKind::RegularExpression => self.full_match(&m.value, actual),
        }
    }

    fn matches(&mut self, e: &RouteEntry, req: &SimpleRequest) -> bool {
        if !self.path_ok(&e.path, &req.path) {
            return false;
        }
        if e.method.as_ref().is_some_and(|m| *m != req.method) {
            return false;
        }
        for h in distinct_headers(e) {
            // A name on several lines is one value: the lines joined in order (RFC 9110
            // section 5.3), with `; ` for cookies (RFC 9113 section 8.2.3).
            let lines: Vec<&str> = req
                .headers
                .iter()
                .filter(|(n, _)| n.to_lowercase() == h.name.to_lowercase())
                .map(|(_, v)| v.as_str())
                .collect();
            let separator = if h.name.to_lowercase() == "cookie" {
                "; "
            } else {
                ", "
            };
            if lines.is_empty() || !self.value_ok(h, &lines.join(separator)) {
                return false;
            }
        }
        let params = decode_query(req.query.as_deref().unwrap_or(""));
        for q in distinct_query(e) {
            match params.iter().find(|(n, _)| *n == q.name) {
                Some((_, v)) if self.value_ok(q, v) => {}
                _ => return false,
            }
        }
        true
    }
}

fn distinct_headers(e: &RouteEntry) -> Vec<&ValueMatch> {
    let mut seen: Vec<String> = Vec::new();
    let mut out = Vec::new();
    for h in &e.headers {
        if !seen.contains(&h.name.to_lowercase()) {
            seen.push(h.name.to_lowercase());
            out.push(h);
        }
    }
    out
}

fn distinct_query(e: &RouteEntry) -> Vec<&ValueMatch> {
    let mut out: Vec<&ValueMatch> = Vec::new();
    for q in &e.query {
        if !out.iter().any(|o| o.name == q.name) {
            out.push(q);
        }
    }
    out
}

/// `application/x-www-form-urlencoded` decoding of a whole query string.
fn decode_query(q: &str) -> Vec<(String, String)> {
    fn decode(s: &str) -> String {
        let b = s.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'%'
                && i + 2 < b.len()
                && b[i + 1].is_ascii_hexdigit()
                && b[i + 2].is_ascii_hexdigit()
            {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).expect("ascii");
                out.push(u8::from_str_radix(hex, 16).expect("hex"));
                i += 3;
            } else if b[i] == b'+' {
                out.push(b' ');
                i += 1;
            } else {
                out.push(b[i]);
                i += 1;
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    }
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.find('=') {
            Some(at) => (decode(&p[..at]), decode(&p[at + 1..])),
            None => (decode(p), String::new()),
        })
        .collect()
}

/// Gateway API precedence, criterion by criterion: `Less` means `a` wins.
fn spec_order(a: &(RouteEntry, Option<String>), b: &(RouteEntry, Option<String>)) -> Ordering {
    let (ea, ta) = a;
    let (eb, tb) = b;
    let class = |e: &RouteEntry| match e.path {
        PathMatch::Exact(_) => 0,
        PathMatch::PathPrefix(_) => 1,
        PathMatch::RegularExpression(_) => 2,
    };
    // 1. Exact first; then prefixes; regexes last (our documented choice).
    if class(ea) != class(eb) {
        return class(ea).cmp(&class(eb));
    }
    // 2. The prefix with the most characters, trailing slashes aside.
    if let (PathMatch::PathPrefix(pa), PathMatch::PathPrefix(pb)) = (&ea.path, &eb.path) {
        let len = |p: &str| p.trim_end_matches('/').chars().count();
        if len(pa) != len(pb) {
            return len(pb).cmp(&len(pa));
        }
    }
    // 3. A method match.
    if ea.method.is_some() != eb.method.is_some() {
        return if ea.method.is_some() {
            Ordering::Less
        } else {
            Ordering::Greater
        };
    }
    // 4. Most header matches; 5. most query matches.
    let (ha, hb) = (distinct_headers(ea).len(), distinct_headers(eb).len());
    if ha != hb {
        return hb.cmp(&ha);
    }
    let (qa, qb) = (distinct_query(ea).len(), distinct_query(eb).len());
    if qa != qb {
        return qb.cmp(&qa);
    }
    // Oldest route; a route without a timestamp counts as the newest.
    match (ta, tb) {
        (Some(x), Some(y)) if x != y => return x.cmp(y),
        (Some(_), None) => return Ordering::Less,
        (None, Some(_)) => return Ordering::Greater,
        _ => {}
    }
    // Alphabetical namespace/name; then rule order; then match order.
    ea.route
        .cmp(&eb.route)
        .then(ea.rule.cmp(&eb.rule))
        .then(ea.r#match.cmp(&eb.r#match))
}

type Id = (String, u32, u32);

fn id(e: &RouteEntry) -> Id {
    (e.route.clone(), e.rule, e.r#match)
}

/// The best matching entry, by scanning them all.
fn reference_best(
    r: &mut Reference,
    entries: &[(RouteEntry, Option<String>)],
    req: &SimpleRequest,
) -> Option<Id> {
    let matching: Vec<&(RouteEntry, Option<String>)> =
        entries.iter().filter(|(e, _)| r.matches(e, req)).collect();
    matching
        .into_iter()
        .min_by(|a, b| spec_order(a, b))
        .map(|(e, _)| id(e))
}

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config(512))]

    /// Sorted as the compiler sorts: the index picks the entry the spec picks.
    #[test]
    fn lookup_agrees_with_the_spec(
        routes in gen_routes(),
        requests in proptest::collection::vec(gen_request(), 64),
    ) {
        let entries = flatten(&routes);
        let table = table(sorted(&entries));
        let index = RouteIndex::build(&table).expect("valid table");
        prop_assert!(index.is_ordered());
        let mut r = Reference::new();
        for req in &requests {
            let got = index.lookup(req).map(|i| id(&table.entries[i]));
            let want = reference_best(&mut r, &entries, req);
            prop_assert_eq!(got, want, "request {:?}", req);
        }
    }

    /// In any order (a hand-edited table): the index returns the first entry that matches.
    #[test]
    fn lookup_in_any_order_returns_the_first_match(
        routes in gen_routes(),
        requests in proptest::collection::vec(gen_request(), 32),
    ) {
        let entries = flatten(&routes);
        let table = table(entries.iter().map(|(e, _)| e.clone()).collect());
        let index = RouteIndex::build(&table).expect("valid table");
        let mut r = Reference::new();
        for req in &requests {
            let want = table.entries.iter().position(|e| r.matches(e, req));
            prop_assert_eq!(index.lookup(req), want, "request {:?}", req);
        }
    }
}

// ---- regex literal prefixes ------------------------------------------------------------------

const TRICKY_PATTERNS: &[&str] = &[
    "/a/b", "/a/b?", "/ab*", "/ab+", "/ab{0,2}", "/ab{2}", "/a.b", "/a|/b", "a|b/x", "/a(b|x)",
    "/a[b/]x", "/a\\/b", "/a\\d", "/(?i)ab", "(?i)/ab", "/a$", "/a/b*/x", "", "x?", "/é?",
    "/a(?:b)?", "/a)",
];

proptest! {
    #![proptest_config(config(256))]

    /// Every string a regex path fully matches starts with the literal the index checks first.
    #[test]
    fn regex_literal_prefix_is_necessary(subject in "[ab/xAB]{0,6}") {
        for pattern in TRICKY_PATTERNS {
            let Ok(re) = Regex::new(&format!("^(?:{pattern})$")) else { continue };
            let prefix = mesh_artifact::matcher::literal_prefix(pattern);
            if re.is_match(&subject) {
                prop_assert!(subject.starts_with(prefix), "{:?} matches {:?} but lacks {:?}", pattern, subject, prefix);
            }
        }
    }
}

#[test]
fn regex_literal_prefixes() {
    let cases = [
        ("/a/b", "/a/b"),
        ("/a/b?", "/a/"),
        ("/ab+", "/ab"),
        ("/ab{0,2}", "/a"),
        ("/a.b", "/a"),
        ("/a|/b", ""),
        ("/a(b|x)", ""),
        ("/a[b/]x", "/a"),
        ("(?i)/ab", ""),
        ("/a$", "/a"),
        ("/é?", "/"),
        ("", ""),
    ];
    for (pattern, prefix) in cases {
        assert_eq!(
            mesh_artifact::matcher::literal_prefix(pattern),
            prefix,
            "{pattern}"
        );
    }
}

// ---- router level ---------------------------------------------------------------------------

const HOSTS: &[&str] = &["svc", "svc.ns", "other", "Other.NS", "x.example"];
const REQ_HOSTS: &[&str] = &[
    "svc",
    "SVC",
    "svc.ns",
    "svc.ns.",
    "other",
    "other.ns",
    "X.Example",
    "nope",
    "",
];
const PORTS: &[u16] = &[80, 8080, 9090];
const REQ_PORTS: &[&str] = &["", ":80", ":8080", ":9090", ":1", ":x", ":"];

/// A destination: hosts, and ports each with an optional route set.
type GenDest = (Vec<&'static str>, Vec<(u16, Option<Vec<GenRoute>>)>);

fn gen_destinations() -> impl Strategy<Value = Vec<GenDest>> {
    let ports = proptest::sample::subsequence(PORTS, 1..=2).prop_flat_map(|ports| {
        let n = ports.len();
        (
            Just(ports),
            proptest::collection::vec(proptest::option::weighted(0.7, gen_routes()), n),
        )
            .prop_map(|(ports, routes)| ports.into_iter().zip(routes).collect::<Vec<_>>())
    });
    proptest::collection::vec((proptest::sample::subsequence(HOSTS, 1..=3), ports), 1..=3)
}

#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    UnknownHost,
    UnknownPort(String),
    Direct(String, u16),
    NoMatch(String, u16),
    Matched(String, u16, Id),
}

fn outcome(d: Decision<'_>) -> Outcome {
    match d {
        Decision::UnknownHost => Outcome::UnknownHost,
        Decision::UnknownPort { dest } => Outcome::UnknownPort(dest.service.clone()),
        Decision::Direct { dest, port } => Outcome::Direct(dest.service.clone(), port.port),
        Decision::NoMatch { dest, port } => Outcome::NoMatch(dest.service.clone(), port.port),
        Decision::Matched {
            dest, port, entry, ..
        } => Outcome::Matched(dest.service.clone(), port.port, id(entry)),
    }
}

/// A destination for the reference router: service, hosts, ports with their entries.
type RefDest = (
    String,
    Vec<&'static str>,
    Vec<(u16, Option<Vec<(RouteEntry, Option<String>)>>)>,
);

/// Reference router: hosts compare case-insensitively without a trailing dot, the first
/// destination listing a host owns it; an explicit port must exist; without one, port 80 if
/// the service has it, else its only port.
fn reference_decide(
    r: &mut Reference,
    dests: &[RefDest],
    authority: &str,
    req: &SimpleRequest,
) -> Outcome {
    let (host, port_text) = match authority.rfind(':') {
        Some(at) => (&authority[..at], Some(&authority[at + 1..])),
        None => (authority, None),
    };
    let host = host.to_lowercase();
    let host = host.strip_suffix('.').unwrap_or(&host);
    let Some((service, _, ports)) = dests
        .iter()
        .find(|(_, hosts, _)| hosts.iter().any(|h| h.to_lowercase() == host))
    else {
        return Outcome::UnknownHost;
    };
    let wanted = match port_text {
        None | Some("") => None,
        Some(t) => match t.parse::<u16>() {
            Ok(p) if t.chars().all(|c| c.is_ascii_digit()) => Some(p),
            _ => return Outcome::UnknownPort(service.clone()),
        },
    };
    let chosen = match wanted {
        Some(p) => ports.iter().find(|(q, _)| *q == p),
        None => ports
            .iter()
            .find(|(q, _)| *q == 80)
            .or(if ports.len() == 1 {
                ports.first()
            } else {
                None
            }),
    };
    let Some((port, routes)) = chosen else {
        return Outcome::UnknownPort(service.clone());
    };
    match routes {
        None => Outcome::Direct(service.clone(), *port),
        Some(entries) => match reference_best(r, entries, req) {
            Some(id) => Outcome::Matched(service.clone(), *port, id),
            None => Outcome::NoMatch(service.clone(), *port),
        },
    }
}

proptest! {
    #![proptest_config(config(128))]

    #[test]
    fn router_agrees_with_the_spec(
        generated in gen_destinations(),
        requests in proptest::collection::vec((select(REQ_HOSTS), select(REQ_PORTS), gen_request()), 64),
    ) {
        let dests: Vec<_> = generated
            .iter()
            .enumerate()
            .map(|(d, (hosts, ports))| {
                let ports: Vec<_> = ports.iter().map(|(p, routes)| (*p, routes.as_ref().map(|r| flatten(r)))).collect();
                (format!("ns/d{d}"), hosts.clone(), ports)
            })
            .collect();
        let body = Body {
            mesh: MeshInfo { name: "m".into(), trust_domain: "td".into(), mtls: MtlsMode::Strict },
            sidecar: SidecarInfo {
                service: "ns/caller".into(),
                namespace: "ns".into(),
                identity: "spiffe://td/ns/ns/sa/caller".into(),
                inbound_port: 15006,
                outbound_port: 15001,
                admin_port: 15000,
                app_port: 8080,
                app_ports: Vec::new(),
                app_protocol: Protocol::Http,
                authz_mode: AuthzMode::Enforce,
                encoded_slashes: Default::default(),
            },
            destinations: dests
                .iter()
                .map(|(service, hosts, ports)| Destination {
                    service: service.clone(),
                    hosts: hosts.iter().map(|h| h.to_string()).collect(),
                    ports: ports
                        .iter()
                        .map(|(p, entries)| DestinationPort {
                            port: *p,
                            protocol: Protocol::Http,
                            routes: entries.as_ref().map(|e| table(sorted(e))),
                            default_cluster: format!("{service}:{p}"),
                        })
                        .collect(),
                    encoded_slashes: Default::default(),
                })
                .collect(),
            clusters: Default::default(),
            authz: Default::default(),
        };
        let router = Router::new(body).expect("valid body");
        let mut r = Reference::new();
        for (host, port, req) in &requests {
            let authority = format!("{host}{port}");
            let got = outcome(router.decide(&authority, req));
            let want = reference_decide(&mut r, &dests, &authority, req);
            prop_assert_eq!(got, want, "authority {:?} request {:?}", authority, req);
        }
    }
}

fn any_value_match() -> impl Strategy<Value = ValueMatch> {
    (
        any::<String>(),
        prop_oneof![Just(MatchKind::Exact), Just(MatchKind::RegularExpression)],
        any::<String>(),
    )
        .prop_map(|(name, kind, value)| ValueMatch { name, kind, value })
}

proptest! {
    #![proptest_config(config(256))]

    /// Arbitrary text anywhere (invalid regexes included): building refuses or succeeds, and
    /// lookups answer, without panicking.
    #[test]
    fn arbitrary_input_never_panics(
        entries in proptest::collection::vec(
            (
                prop_oneof![
                    any::<String>().prop_map(PathMatch::Exact),
                    any::<String>().prop_map(PathMatch::PathPrefix),
                    "[a-z/.*()|\\\\\\[\\]+?]{0,8}".prop_map(PathMatch::RegularExpression),
                ],
                proptest::option::of(any::<String>()),
                proptest::collection::vec(any_value_match(), 0..3),
                proptest::collection::vec(any_value_match(), 0..3),
            ),
            0..8,
        ),
        requests in proptest::collection::vec(
            (any::<String>(), any::<String>(), proptest::option::of(any::<String>()), any::<String>(), any::<String>()),
            8,
        ),
    ) {
        let entries: Vec<RouteEntry> = entries
            .into_iter()
            .map(|(path, method, headers, query)| RouteEntry {
                route: "ns/r".into(),
                rule: 0,
                r#match: 0,
                source: SourcePos { file: String::new(), line: 0, column: 0 },
                path,
                method,
                headers,
                query,
                action: 0,
            })
            .collect();
        let entries = sorted(&entries.into_iter().map(|e| (e, None)).collect::<Vec<_>>());
        if let Ok(index) = RouteIndex::build(&table(entries)) {
            for (method, path, query, name, value) in requests {
                let req = SimpleRequest { method, path, query, headers: vec![(name, value)] };
                let _ = index.lookup(&req);
            }
        }
    }
}
