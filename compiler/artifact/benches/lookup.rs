//! Route lookup cost on realistic tables.
//!
//! Run: `cargo bench -p mesh-artifact --bench lookup`.
//!
//! Tables mix mostly distinct `PathPrefix` paths of 2-4 segments (`/api/v1/svc123/items`), some
//! `Exact` paths, some entries with a method or header condition, and a handful of regular
//! expressions, sorted with [`rank::precedence_key`] as the compiler does. Requests are drawn at
//! random from the table's own paths (some with an extra trailing segment, some with the header
//! or method an entry asks for), so each lookup touches a different part of the index.
//!
//! `std_hashmap_probe` is a calibration measured in the same run: one std `HashMap` probe with
//! the same request paths. On a shared machine absolute numbers move with the load; compare
//! within one run. `BENCH_VERBOSE=1` prints the size of each path table.

use std::borrow::Cow;

use divan::{Bencher, black_box};
use mesh_artifact::rank::precedence_key;
use mesh_artifact::{
    Body, Decision, Destination, DestinationPort, MatchKind, MeshInfo, MtlsMode, PathMatch,
    Protocol, RequestParts, RouteEntry, RouteIndex, RouteTable, Router, RuleAction, SidecarInfo,
    SourcePos, ValueMatch, combine_field_lines, field_separator,
};

fn main() {
    divan::main();
}

/// Number of pre-built requests each benchmark cycles through (a power of two).
const REQUESTS: usize = 1 << 16;

/// A small deterministic generator (xorshift64*), so every run measures the same tables.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

const RESOURCES: [&str; 6] = ["items", "orders", "users", "health", "v2", "search"];
const METHODS: [&str; 3] = ["GET", "POST", "DELETE"];

/// Header sets a request can carry: the usual two, plus the header some entries ask for.
const HEADER_SETS: [&[(&str, &str)]; 5] = [
    &[("accept", "*/*"), ("user-agent", "bench/1.0")],
    &[
        ("accept", "*/*"),
        ("user-agent", "bench/1.0"),
        ("X-Version", "v0"),
    ],
    &[
        ("accept", "*/*"),
        ("user-agent", "bench/1.0"),
        ("X-Version", "v1"),
    ],
    &[
        ("accept", "*/*"),
        ("user-agent", "bench/1.0"),
        ("X-Version", "v2"),
    ],
    &[
        ("accept", "*/*"),
        ("user-agent", "bench/1.0"),
        ("X-Canary", "yes"),
    ],
];

/// A request as a proxy sees it: borrowed parts of an already parsed request.
struct Req<'a> {
    method: &'a str,
    path: &'a str,
    headers: &'a [(&'a str, &'a str)],
}

impl RequestParts for Req<'_> {
    fn method(&self) -> &str {
        self.method
    }
    fn path(&self) -> &str {
        self.path
    }
    fn query(&self) -> Option<&str> {
        None
    }
    fn header(&self, name: &str) -> Option<Cow<'_, str>> {
        combine_field_lines(
            field_separator(name),
            self.headers
                .iter()
                .filter(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| Some(*v)),
        )
    }
}

/// Pre-generated requests, compactly: paths (and authorities) in one text, so that cycling
/// through them costs little next to the lookup.
#[derive(Default)]
struct Requests {
    text: String,
    /// Path range, method, header set, authority range.
    reqs: Vec<(u32, u32, u8, u8, u32, u32)>,
}

impl Requests {
    fn push(&mut self, path: &str, method: usize, headers: usize, authority: &str) {
        let p = self.text.len() as u32;
        self.text.push_str(path);
        let a = self.text.len() as u32;
        self.text.push_str(authority);
        let end = self.text.len() as u32;
        self.reqs.push((p, a, method as u8, headers as u8, a, end));
    }

    /// Every request, borrowed, with its authority: what a benchmark cycles through, so that
    /// fetching the next request costs one sequential read.
    fn all(&self) -> Vec<(Req<'_>, &str)> {
        (0..self.reqs.len()).map(|i| self.get(i)).collect()
    }

    /// The `i`-th request (cyclically; there are [`REQUESTS`], a power of two) and its
    /// authority.
    fn get(&self, i: usize) -> (Req<'_>, &str) {
        let (p, pe, m, h, a, ae) = self.reqs[i & (self.reqs.len() - 1)];
        let req = Req {
            method: METHODS[m as usize],
            path: &self.text[p as usize..pe as usize],
            headers: HEADER_SETS[h as usize],
        };
        (req, &self.text[a as usize..ae as usize])
    }
}

fn entry(route: usize, path: PathMatch) -> RouteEntry {
    RouteEntry {
        route: format!("ns{}/route{route}", route % 7),
        rule: 0,
        r#match: 0,
        source: SourcePos {
            file: "routes.yaml".into(),
            line: 1,
            column: 1,
        },
        path,
        method: None,
        headers: Vec::new(),
        query: Vec::new(),
        action: 0,
    }
}

/// A route table of `n` entries (the first `regexes` of them regular expressions), sorted by
/// precedence as the compiler sorts.
fn table(n: usize, regexes: usize, rng: &mut Rng) -> RouteTable {
    let mut entries = Vec::with_capacity(n);
    for i in 0..n {
        let res = RESOURCES[rng.below(RESOURCES.len())];
        let path = match rng.below(3) {
            0 => format!("/svc{i}/{res}"),
            1 => format!("/api/svc{i}/{res}"),
            _ => format!("/api/v{}/svc{i}/{res}", 1 + i % 3),
        };
        let roll = rng.below(100);
        let mut e = if i < regexes {
            let pattern = format!("/files{i}/[0-9]+/[a-z]+");
            entry(i, PathMatch::RegularExpression(pattern))
        } else if roll < 10 {
            entry(i, PathMatch::Exact(path))
        } else {
            entry(i, PathMatch::PathPrefix(path))
        };
        if (10..15).contains(&roll) {
            e.method = Some(METHODS[1 + rng.below(2)].to_string());
        } else if (15..20).contains(&roll) {
            e.headers.push(ValueMatch {
                name: "x-version".into(),
                kind: MatchKind::Exact,
                value: format!("v{}", rng.below(3)),
            });
        } else if roll == 20 {
            e.headers.push(ValueMatch {
                name: "x-canary".into(),
                kind: MatchKind::RegularExpression,
                value: "(yes|true)".into(),
            });
        }
        e.action = u32::try_from(i % 4).unwrap_or(0);
        entries.push(e);
    }
    entries.sort_by_cached_key(|e| precedence_key(e, Some("2024-01-01T00:00:00Z")));
    RouteTable {
        entries,
        actions: vec![RuleAction::default(); 4],
    }
}

/// A request that the entry matches: its path (a quarter of prefix hits get one more
/// segment), the method and header it asks for.
fn request_for(e: &RouteEntry, rng: &mut Rng, authority: &str, out: &mut Requests) {
    let path = match &e.path {
        PathMatch::Exact(p) => p.clone(),
        PathMatch::PathPrefix(p) if rng.below(4) == 0 => format!("{p}/42"),
        PathMatch::PathPrefix(p) => p.clone(),
        PathMatch::RegularExpression(p) => {
            let prefix = p.split("/[").next().unwrap_or_default();
            format!("{prefix}/{}/abc", rng.below(999))
        }
    };
    let method = match e.method.as_deref() {
        Some("POST") => 1,
        Some("DELETE") => 2,
        _ => 0,
    };
    let headers = match e.headers.first() {
        Some(h) if h.name == "x-canary" => 4,
        Some(h) => 1 + h.value[1..].parse::<usize>().unwrap_or(0),
        None => 0,
    };
    out.push(&path, method, headers, authority);
}

fn setup(routes: usize) -> (RouteIndex, Requests) {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let table = table(routes, 5, &mut rng);
    let index = RouteIndex::build(&table).expect("benchmark table is valid");
    let mut reqs = Requests::default();
    for _ in 0..REQUESTS {
        let e = &table.entries[rng.below(table.entries.len())];
        request_for(e, &mut rng, "", &mut reqs);
    }
    if std::env::var_os("BENCH_VERBOSE").is_some() {
        eprintln!(
            "{routes} routes: path table {} KiB",
            index.path_table_bytes() / 1024
        );
    }
    // Every request was made for an entry, so each must find one.
    for i in 0..REQUESTS {
        assert!(index.lookup(&reqs.get(i).0).is_some());
    }
    (index, reqs)
}

#[divan::bench(args = [1_000, 10_000, 100_000], sample_count = 500, sample_size = 256)]
fn lookup(bencher: Bencher<'_, '_>, routes: usize) {
    let (index, reqs) = setup(routes);
    let all = reqs.all();
    let mut i = 0usize;
    bencher.bench_local(|| {
        let (req, _) = &all[i & (REQUESTS - 1)];
        i = i.wrapping_add(1);
        index.lookup(black_box(req))
    });
}

/// Calibration: one probe of a std `HashMap<String, usize>` (SipHash) with each request's full
/// path, keyed by every entry's path. A floor for any hash-based lookup on this machine, measured
/// in the same run (its misses and hits mirror the main benchmark's requests).
#[divan::bench(args = [1_000, 10_000, 100_000], sample_count = 500, sample_size = 256)]
fn std_hashmap_probe(bencher: Bencher<'_, '_>, routes: usize) {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let table = table(routes, 5, &mut rng);
    let map: std::collections::HashMap<String, usize> = table
        .entries
        .iter()
        .enumerate()
        .map(|(i, e)| match &e.path {
            PathMatch::Exact(p) | PathMatch::PathPrefix(p) | PathMatch::RegularExpression(p) => {
                (p.clone(), i)
            }
        })
        .collect();
    let mut reqs = Requests::default();
    for _ in 0..REQUESTS {
        let e = &table.entries[rng.below(table.entries.len())];
        request_for(e, &mut rng, "", &mut reqs);
    }
    let all = reqs.all();
    let mut i = 0usize;
    bencher.bench_local(|| {
        let (req, _) = &all[i & (REQUESTS - 1)];
        i = i.wrapping_add(1);
        map.get(black_box(req.path)).copied()
    });
}

/// Requests that match nothing: every segment of the path is probed, then every regex.
#[divan::bench(args = [1_000, 100_000], sample_count = 500, sample_size = 256)]
fn lookup_miss(bencher: Bencher<'_, '_>, routes: usize) {
    let (index, _) = setup(routes);
    let mut rng = Rng(7);
    let mut reqs = Requests::default();
    for _ in 0..REQUESTS {
        let path = format!(
            "/api/v1/nosuch{}/items/{}",
            rng.below(1000),
            rng.below(1000)
        );
        reqs.push(&path, 0, 0, "");
    }
    let all = reqs.all();
    let mut i = 0usize;
    bencher.bench_local(|| {
        let (req, _) = &all[i & (REQUESTS - 1)];
        i = i.wrapping_add(1);
        index.lookup(black_box(req))
    });
}

/// `Router::decide` with `routes` entries spread over `routes / 10` destinations, each reached
/// through its four usual host names; requests pick a random host and one of its entries.
#[divan::bench(args = [1_000, 10_000, 100_000], sample_count = 500, sample_size = 256)]
fn decide(bencher: Bencher<'_, '_>, routes: usize) {
    let per_dest = 10;
    let mut rng = Rng(0x51_7cc1_b727_220a);
    let mut destinations = Vec::new();
    for d in 0..routes / per_dest {
        let table = table(per_dest, 0, &mut rng);
        let name = format!("svc{d}");
        let hosts = vec![
            name.clone(),
            format!("{name}.ns"),
            format!("{name}.ns.svc"),
            format!("{name}.ns.svc.cluster.local"),
        ];
        destinations.push(Destination {
            service: format!("ns/{name}"),
            hosts,
            ports: vec![DestinationPort {
                port: 80,
                protocol: Protocol::Http,
                routes: Some(table),
                default_cluster: format!("ns/{name}:80"),
            }],
            encoded_slashes: Default::default(),
        });
    }
    let mut reqs = Requests::default();
    for _ in 0..REQUESTS {
        let dest = &destinations[rng.below(destinations.len())];
        let host = &dest.hosts[rng.below(4)];
        let authority = if rng.below(2) == 0 {
            host.clone()
        } else {
            format!("{host}:80")
        };
        let entries = &dest.ports[0].routes.as_ref().expect("routes").entries;
        request_for(
            &entries[rng.below(entries.len())],
            &mut rng,
            &authority,
            &mut reqs,
        );
    }
    let router = Router::new(body(destinations)).expect("benchmark body is valid");
    for i in 0..REQUESTS {
        let (req, authority) = reqs.get(i);
        assert!(matches!(
            router.decide(authority, &req),
            Decision::Matched { .. }
        ));
    }
    let all = reqs.all();
    let mut i = 0usize;
    bencher.bench_local(|| {
        let (req, authority) = &all[i & (REQUESTS - 1)];
        i = i.wrapping_add(1);
        router.decide(black_box(authority), black_box(req)).status()
    });
}

fn body(destinations: Vec<Destination>) -> Body {
    Body {
        mesh: MeshInfo {
            name: "bench".into(),
            trust_domain: "bench.local".into(),
            mtls: MtlsMode::Strict,
        },
        sidecar: SidecarInfo {
            service: "ns/caller".into(),
            namespace: "ns".into(),
            identity: "spiffe://bench.local/ns/ns/sa/caller".into(),
            inbound_port: 15006,
            outbound_port: 15001,
            admin_port: 15000,
            app_port: 8080,
            app_ports: Vec::new(),
            app_protocol: Protocol::Http,
            authz_mode: mesh_artifact::AuthzMode::Enforce,
            encoded_slashes: Default::default(),
        },
        destinations,
        clusters: Default::default(),
        authz: Default::default(),
    }
}
