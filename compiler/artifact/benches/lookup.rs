//! Route lookup cost on realistic tables.
//!
//! Run: `cargo bench -p mesh-artifact --bench lookup`.
//!
//! Tables mix mostly distinct `PathPrefix` paths of 2-4 segments (`/api/v1/svc123/items`), some
//! `Exact` paths, some entries with a method or header condition, and a handful of regular
//! expressions, sorted with [`rank::precedence_key`] as the compiler does. Requests are drawn at
//! random from the table's own paths (some with an extra trailing segment, some with the header
//! or method an entry asks for), so each lookup touches a different part of the index.

use divan::{Bencher, black_box};
use mesh_artifact::rank::precedence_key;
use mesh_artifact::{
    Body, Destination, DestinationPort, MatchKind, MeshInfo, MtlsMode, PathMatch, Protocol,
    RouteEntry, RouteIndex, RouteTable, Router, RuleAction, SidecarInfo, SimpleRequest, SourcePos,
    ValueMatch,
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

/// A route table of `n` entries, sorted by precedence, and requests that hit it.
fn table(n: usize, seed: u64, requests: usize) -> (RouteTable, Vec<SimpleRequest>) {
    let mut rng = Rng(seed);
    let mut entries = Vec::with_capacity(n);
    for i in 0..n {
        let res = RESOURCES[rng.below(RESOURCES.len())];
        let path = match rng.below(3) {
            0 => format!("/svc{i}/{res}"),
            1 => format!("/api/svc{i}/{res}"),
            _ => format!("/api/v{}/svc{i}/{res}", 1 + i % 3),
        };
        let roll = rng.below(100);
        let mut e = if i < 5 {
            entry(
                i,
                PathMatch::RegularExpression(format!("/files{i}/[0-9]+/[a-z]+")),
            )
        } else if roll < 10 {
            entry(i, PathMatch::Exact(path))
        } else {
            entry(i, PathMatch::PathPrefix(path))
        };
        if (10..15).contains(&roll) {
            e.method = Some(METHODS[rng.below(METHODS.len())].to_string());
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
    // A catch-all, as a rule without `matches` lowers to.
    entries.push(entry(n, PathMatch::PathPrefix("/".into())));
    entries.sort_by_cached_key(|e| precedence_key(e, Some("2024-01-01T00:00:00Z")));
    let table = RouteTable {
        entries,
        actions: vec![RuleAction::default(); 4],
    };

    let mut reqs = Vec::with_capacity(requests);
    for _ in 0..requests {
        let e = &table.entries[rng.below(table.entries.len())];
        let path = match &e.path {
            PathMatch::Exact(p) => p.clone(),
            PathMatch::PathPrefix(p) if rng.below(4) == 0 => format!("{p}/42"),
            PathMatch::PathPrefix(p) => p.clone(),
            PathMatch::RegularExpression(_) => {
                format!("/files{}/{}/abc", rng.below(5), rng.below(999))
            }
        };
        let method = e.method.as_deref().unwrap_or("GET");
        let mut req = SimpleRequest::new(method, &path)
            .with_header("accept", "*/*")
            .with_header("user-agent", "bench");
        for h in &e.headers {
            let value = match h.kind {
                MatchKind::Exact => h.value.as_str(),
                MatchKind::RegularExpression => "yes",
            };
            // Header names are matched case-insensitively.
            req = req.with_header(&h.name.to_ascii_uppercase(), value);
        }
        reqs.push(req);
    }
    (table, reqs)
}

#[divan::bench(args = [1_000, 10_000, 100_000], sample_count = 500, sample_size = 256)]
fn lookup(bencher: Bencher<'_, '_>, routes: usize) {
    let (table, reqs) = table(routes, 0x9e37_79b9_7f4a_7c15, REQUESTS);
    let index = RouteIndex::build(&table).expect("benchmark table is valid");
    // Every request was drawn from the table, so each must find an entry.
    assert!(reqs.iter().all(|r| index.lookup(r).is_some()));
    let mut i = 0usize;
    bencher.bench_local(|| {
        let req = &reqs[i & (REQUESTS - 1)];
        i = i.wrapping_add(1);
        index.lookup(black_box(req))
    });
}

/// Requests whose path matches nothing but the catch-all: every segment is probed.
#[divan::bench(args = [1_000, 100_000], sample_count = 500, sample_size = 256)]
fn lookup_miss(bencher: Bencher<'_, '_>, routes: usize) {
    let (table, _) = table(routes, 0x9e37_79b9_7f4a_7c15, 0);
    let index = RouteIndex::build(&table).expect("benchmark table is valid");
    let mut rng = Rng(7);
    let reqs: Vec<SimpleRequest> = (0..REQUESTS)
        .map(|_| {
            SimpleRequest::new(
                "GET",
                &format!(
                    "/api/v1/nosuch{}/items/{}",
                    rng.below(1000),
                    rng.below(1000)
                ),
            )
        })
        .collect();
    let mut i = 0usize;
    bencher.bench_local(|| {
        let req = &reqs[i & (REQUESTS - 1)];
        i = i.wrapping_add(1);
        index.lookup(black_box(req))
    });
}

/// `Router::decide` with `routes` entries spread over `routes / 10` destinations, each reached
/// through its four usual host names; requests pick a random host and one of its paths.
#[divan::bench(args = [1_000, 10_000, 100_000], sample_count = 500, sample_size = 256)]
fn decide(bencher: Bencher<'_, '_>, routes: usize) {
    let per_dest = 10;
    let mut rng = Rng(0x51_7cc1_b727_220a);
    let mut destinations = Vec::new();
    let mut reqs = Vec::with_capacity(REQUESTS);
    let mut dest_reqs = Vec::new();
    for d in 0..routes / per_dest {
        let (table, r) = table(per_dest, 1 + d as u64, 8);
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
        });
        dest_reqs.push(r);
    }
    for _ in 0..REQUESTS {
        let d = rng.below(destinations.len());
        let host = &destinations[d].hosts[rng.below(4)];
        let authority = if rng.below(2) == 0 {
            host.clone()
        } else {
            format!("{host}:80")
        };
        let req = dest_reqs[d][rng.below(8)].clone();
        reqs.push((authority, req));
    }
    let router = Router::new(body(destinations)).expect("benchmark body is valid");
    assert!(
        reqs.iter()
            .all(|(a, r)| matches!(router.decide(a, r), mesh_artifact::Decision::Matched { .. }))
    );
    let mut i = 0usize;
    bencher.bench_local(|| {
        let (authority, req) = &reqs[i & (REQUESTS - 1)];
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
            app_protocol: Protocol::Http,
            authz_mode: mesh_artifact::AuthzMode::Enforce,
        },
        destinations,
        clusters: Default::default(),
        authz: Default::default(),
    }
}
