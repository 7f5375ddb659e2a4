//! `Router::decide`: host and port resolution, and the 404 rule.

use mesh_artifact::router::{AuthorityPort, parse_authority, split_authority};
use mesh_artifact::{
    AuthzMode, Body, Decision, Destination, DestinationPort, EncodedSlashes, MeshInfo, MtlsMode,
    PathMatch, Protocol, Redirect, RouteEntry, RouteTable, Router, RuleAction, SidecarInfo,
    SimpleRequest, SourcePos,
};

fn entry(route: &str, path: PathMatch, action: u32) -> RouteEntry {
    RouteEntry {
        route: route.into(),
        rule: 0,
        r#match: 0,
        source: SourcePos {
            file: "r.yaml".into(),
            line: 1,
            column: 1,
        },
        path,
        method: None,
        headers: Vec::new(),
        query: Vec::new(),
        action,
    }
}

fn port(port: u16, routes: Option<RouteTable>) -> DestinationPort {
    DestinationPort {
        port,
        protocol: Protocol::Http,
        routes,
        default_cluster: format!("ns/svc:{port}"),
    }
}

fn body(destinations: Vec<Destination>) -> Body {
    Body {
        mesh: MeshInfo {
            name: "m".into(),
            trust_domain: "td".into(),
            mtls: MtlsMode::Strict,
        },
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
        destinations,
        clusters: Default::default(),
        authz: Default::default(),
    }
}

/// `api` has ports 80 (routes: `/v1` prefix and a redirect on exact `/old`) and 9090 (no
/// routes); `solo` has one port, 8080, with routes attached but none matching `/`, and keeps
/// encoded slashes; `web` has ports 443 and 8443, neither 80.
fn router() -> Router {
    let redirect = RuleAction {
        redirect: Some(Redirect {
            scheme: None,
            hostname: None,
            port: None,
            path: None,
            status: 301,
        }),
        ..RuleAction::default()
    };
    let api = RouteTable {
        entries: vec![
            entry("ns/old", PathMatch::Exact("/old".into()), 1),
            entry("ns/v1", PathMatch::PathPrefix("/v1".into()), 0),
        ],
        actions: vec![RuleAction::default(), redirect],
    };
    let solo = RouteTable {
        entries: vec![entry("ns/solo", PathMatch::PathPrefix("/only".into()), 0)],
        actions: vec![RuleAction::default()],
    };
    Router::new(body(vec![
        Destination {
            service: "ns/api".into(),
            hosts: vec![
                "api".into(),
                "api.ns".into(),
                "api.ns.svc.cluster.local".into(),
            ],
            ports: vec![port(80, Some(api)), port(9090, None)],
            encoded_slashes: Default::default(),
        },
        Destination {
            service: "ns/solo".into(),
            hosts: vec!["solo".into(), "Shared.Example".into()],
            ports: vec![port(8080, Some(solo))],
            encoded_slashes: EncodedSlashes::Keep,
        },
        Destination {
            service: "ns/web".into(),
            hosts: vec!["web".into(), "shared.example".into()],
            ports: vec![port(443, None), port(8443, None)],
            encoded_slashes: Default::default(),
        },
    ]))
    .expect("valid body")
}

/// A compact description of a decision: kind, service, port, route.
fn describe(d: Decision<'_>) -> String {
    match d {
        Decision::UnknownHost => "unknown-host".into(),
        Decision::UnknownPort { dest } => format!("unknown-port {}", dest.service),
        Decision::Direct { dest, port } => format!("direct {}:{}", dest.service, port.port),
        Decision::NoMatch { dest, port } => format!("404 {}:{}", dest.service, port.port),
        Decision::Matched {
            dest, port, entry, ..
        } => {
            format!("matched {}:{} {}", dest.service, port.port, entry.route)
        }
    }
}

fn decide(r: &Router, authority: &str, path: &str) -> String {
    describe(r.decide(authority, &SimpleRequest::new("GET", path)))
}

#[test]
fn host_names_are_case_insensitive_with_optional_dot_and_userinfo() {
    let r = router();
    for a in [
        "api",
        "API",
        "Api.Ns",
        "api.ns.svc.cluster.local.",
        "user:pw@api:80",
        "api.:80",
    ] {
        assert_eq!(decide(&r, a, "/v1/x"), "matched ns/api:80 ns/v1", "{a}");
    }
    assert_eq!(decide(&r, "api.ns.svc", "/v1"), "unknown-host");
    assert_eq!(decide(&r, "nope", "/v1"), "unknown-host");
    assert_eq!(decide(&r, "", "/v1"), "unknown-host");
}

#[test]
fn first_destination_owns_a_shared_host() {
    let r = router();
    assert_eq!(
        decide(&r, "shared.example", "/only"),
        "matched ns/solo:8080 ns/solo"
    );
}

#[test]
fn port_selection() {
    let r = router();
    // Explicit port.
    assert_eq!(decide(&r, "api:9090", "/v1"), "direct ns/api:9090");
    assert_eq!(decide(&r, "api:80", "/v1"), "matched ns/api:80 ns/v1");
    assert_eq!(decide(&r, "api:81", "/v1"), "unknown-port ns/api");
    // No port: 80 when the service has it, else its only port, else unknown.
    assert_eq!(decide(&r, "api", "/v1"), "matched ns/api:80 ns/v1");
    assert_eq!(decide(&r, "api:", "/v1"), "matched ns/api:80 ns/v1");
    assert_eq!(decide(&r, "solo", "/only"), "matched ns/solo:8080 ns/solo");
    assert_eq!(decide(&r, "web", "/"), "unknown-port ns/web");
    assert_eq!(decide(&r, "web:8443", "/"), "direct ns/web:8443");
    // A port that is not a number is not the default port.
    assert_eq!(decide(&r, "api:http", "/v1"), "unknown-port ns/api");
    assert_eq!(decide(&r, "api:+80", "/v1"), "unknown-port ns/api");
    assert_eq!(decide(&r, "api:65536", "/v1"), "unknown-port ns/api");
    assert_eq!(decide(&r, "solo:99999", "/only"), "unknown-port ns/solo");
}

#[test]
fn routes_attached_but_no_match_is_404() {
    let r = router();
    assert_eq!(decide(&r, "api", "/v2"), "404 ns/api:80");
    assert_eq!(decide(&r, "solo", "/"), "404 ns/solo:8080");
    let d = r.decide("solo", &SimpleRequest::new("GET", "/"));
    assert_eq!(d.status(), 404);
}

#[test]
fn statuses() {
    let r = router();
    let req = |p: &str| SimpleRequest::new("GET", p);
    assert_eq!(r.decide("api", &req("/v1")).status(), 200);
    assert_eq!(r.decide("api", &req("/old")).status(), 301);
    assert_eq!(r.decide("api:9090", &req("/x")).status(), 200);
    assert_eq!(r.decide("nope", &req("/x")).status(), 404);
    assert_eq!(r.decide("api:1", &req("/x")).status(), 404);
}

#[test]
fn authority_parsing() {
    assert_eq!(parse_authority("a.b:80"), ("a.b", AuthorityPort::Port(80)));
    assert_eq!(parse_authority("A.b."), ("A.b", AuthorityPort::Default));
    assert_eq!(
        parse_authority("[::1]:8080"),
        ("::1", AuthorityPort::Port(8080))
    );
    assert_eq!(parse_authority("[::1]"), ("::1", AuthorityPort::Default));
    assert_eq!(parse_authority("[::1]x"), ("::1", AuthorityPort::Invalid));
    assert_eq!(parse_authority("u@h:1"), ("h", AuthorityPort::Port(1)));
    assert_eq!(parse_authority("h:-1"), ("h", AuthorityPort::Invalid));
    assert_eq!(
        split_authority("API.NS.:8080"),
        ("api.ns".to_string(), Some(8080))
    );
    assert_eq!(split_authority("api:x"), ("api".to_string(), None));
}

#[test]
fn bad_tables_are_refused() {
    let bad = RouteTable {
        entries: vec![entry("ns/r", PathMatch::RegularExpression("(".into()), 0)],
        actions: vec![RuleAction::default()],
    };
    let b = body(vec![Destination {
        service: "ns/x".into(),
        hosts: vec!["x".into()],
        ports: vec![port(80, Some(bad))],
        encoded_slashes: Default::default(),
    }]);
    assert!(Router::new(b).is_err());
}

/// Position of a reference within a slice.
fn pos<T>(slice: &[T], item: &T) -> usize {
    slice
        .iter()
        .position(|x| std::ptr::eq(x, item))
        .expect("a member of the slice")
}

/// The index-only resolution (what the proxy keeps) names the same destination, port and entry
/// as the decision, for every kind of outcome.
#[test]
fn resolution_indexes_agree_with_decisions() {
    use mesh_artifact::router::Resolution;
    let r = router();
    let dests = &r.body().destinations;
    let cases = [
        ("api", "/v1/x"),
        ("api", "/old"),
        ("api", "/v2"),
        ("api:9090", "/v1"),
        ("api:81", "/v1"),
        ("API.NS.", "/old"),
        ("shared.example", "/only"),
        ("solo", "/"),
        ("web", "/"),
        ("web:8443", "/"),
        ("nope", "/"),
    ];
    for (authority, path) in cases {
        let req = SimpleRequest::new("GET", path);
        let resolution = r.index().resolve(authority, &req);
        let expected = match r.decide(authority, &req) {
            Decision::UnknownHost => Resolution::UnknownHost,
            Decision::UnknownPort { dest } => Resolution::UnknownPort {
                dest: pos(dests, dest),
            },
            Decision::Direct { dest, port } | Decision::NoMatch { dest, port } => {
                let d = pos(dests, dest);
                let p = pos(&dest.ports, port);
                if port.routes.is_some() {
                    Resolution::NoMatch { dest: d, port: p }
                } else {
                    Resolution::Direct { dest: d, port: p }
                }
            }
            Decision::Matched {
                dest, port, entry, ..
            } => {
                let d = pos(dests, dest);
                let p = pos(&dest.ports, port);
                let entries = &port.routes.as_ref().expect("routes").entries;
                Resolution::Matched {
                    dest: d,
                    port: p,
                    entry: pos(entries, entry),
                }
            }
        };
        assert_eq!(resolution, expected, "{authority} {path}");
    }
    assert_eq!(
        r.index().resolve("api", &SimpleRequest::new("GET", "/old")),
        Resolution::Matched {
            dest: 0,
            port: 0,
            entry: 0
        }
    );
    assert_eq!(r.index().destination("web"), Some(2));
}

/// The outbound side normalizes with the addressed destination's setting: the destination is
/// the one the host picks, whatever the port, the case or a trailing dot.
#[test]
fn encoded_slashes_follow_the_addressed_destination() {
    let r = router();
    for authority in ["solo", "SOLO:8080", "solo.:1", "user@solo:8080"] {
        assert_eq!(
            r.encoded_slashes(authority),
            EncodedSlashes::Keep,
            "{authority}"
        );
    }
    for authority in ["api", "api.ns:9090", "web", "unknown", "", "[::1]:80"] {
        assert_eq!(
            r.encoded_slashes(authority),
            EncodedSlashes::Reject,
            "{authority}"
        );
    }
    // `shared.example` is listed by `solo` first: it owns the name, as in `decide`.
    assert_eq!(r.encoded_slashes("shared.example"), EncodedSlashes::Keep);
    assert!(decide(&r, "shared.example", "/").contains("ns/solo"));
}
