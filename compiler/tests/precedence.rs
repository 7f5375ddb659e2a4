//! Gateway API precedence and matching, one table per rule. Every case is one `explain` request
//! on a small inline mesh, with the route, rule and match it must select and where the request
//! must go (or the status the mesh must answer).
//!
//! The rules are those of `/work/shared/REFERENCE.md` (Gateway API `httproute_types.go` and the
//! mesh attachment docs) and the choices written down in `ARCHITECTURE.md`. Each table is built
//! so that a different ranking would pick a different entry: the expected winner is never also
//! the first route by name, the oldest, or the first rule, unless that is the rule under test.

use meshc::{Checked, LoadOptions, Severity};
use serde_json::Value;

/// Every mesh gets a permit-all policy, so authorization never turns a routing answer into 403.
const ALLOW_ALL: &str = "@id(\"allow-all\")\npermit (principal, action, resource);\n";

/// Kubernetes Services in namespace `mesh`: the caller `client`, the routed `echo` (ports 80 and
/// 8080), `plain` (no route), and one-port backends `v1` to `v4`.
const K8S_BASE: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: client, namespace: mesh}
spec:
  ports: [{name: http, port: 80}]
---
apiVersion: v1
kind: Service
metadata: {name: echo, namespace: mesh}
spec:
  ports:
  - {name: http, port: 80, appProtocol: http}
  - {name: http-alt, port: 8080, appProtocol: http}
---
apiVersion: v1
kind: Service
metadata: {name: plain, namespace: mesh}
spec:
  ports: [{name: http, port: 9000}]
---
apiVersion: v1
kind: Service
metadata: {name: v1, namespace: mesh}
spec:
  ports: [{name: http, port: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: v2, namespace: mesh}
spec:
  ports: [{name: http, port: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: v3, namespace: mesh}
spec:
  ports: [{name: http, port: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: v4, namespace: mesh}
spec:
  ports: [{name: http, port: 8080}]
"#;

/// Native services in namespace `default`: the caller `client` and `shop` with versions `v1` to
/// `v4` (one port, 9080).
const NATIVE_BASE: &str = r#"
apiVersion: meshc.dev/v1alpha1
kind: MeshService
metadata: {name: client}
spec:
  ports: [{name: http, port: 9080, protocol: http}]
---
apiVersion: meshc.dev/v1alpha1
kind: MeshService
metadata: {name: shop}
spec:
  ports: [{name: http, port: 9080, protocol: http}]
  versions:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
  - {name: v3, labels: {version: v3}}
  - {name: v4, labels: {version: v4}}
"#;

fn check(base: &str, routes: &str) -> Checked {
    let yaml = format!("{base}\n---\n{routes}");
    let checked = meshc::check_sources(
        vec![
            ("mesh.yaml".to_string(), yaml),
            ("allow.cedar".to_string(), ALLOW_ALL.to_string()),
        ],
        &LoadOptions::default(),
    );
    let errors: Vec<_> = checked
        .diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .collect();
    assert!(errors.is_empty(), "the test mesh has errors: {errors:#?}");
    checked
}

fn k8s(routes: &str) -> Checked {
    check(K8S_BASE, routes)
}

fn native(routes: &str) -> Checked {
    check(NATIVE_BASE, routes)
}

/// What one request must get.
#[derive(Clone, Copy, Debug)]
enum Want {
    /// Route `namespace/name`, rule, match; status 200; the first backend is `ns/svc:port` or
    /// `ns/svc:port@version`.
    Hit(&'static str, u64, u64, &'static str),
    /// Routes are attached but nothing matches: 404, route `null`, no backends.
    NotFound,
    /// No route attached: route `null`, status 200, the service itself (`ns/svc:port`).
    Direct(&'static str),
    /// Route and rule matched, and the mesh answers this status without a backend.
    Fixed(&'static str, u64, u16),
}

struct Case {
    from: &'static str,
    method: &'static str,
    url: &'static str,
    headers: &'static [&'static str],
    want: Want,
}

/// `GET url` from the table's default caller.
fn get(url: &'static str, want: Want) -> Case {
    Case {
        from: "",
        method: "GET",
        url,
        headers: &[],
        want,
    }
}

fn req(
    method: &'static str,
    url: &'static str,
    headers: &'static [&'static str],
    want: Want,
) -> Case {
    Case {
        from: "",
        method,
        url,
        headers,
        want,
    }
}

fn from(from: &'static str, url: &'static str, want: Want) -> Case {
    Case {
        from,
        method: "GET",
        url,
        headers: &[],
        want,
    }
}

fn backend_text(b: &Value) -> String {
    let mut s = format!("{}:{}", b["service"].as_str().unwrap_or("?"), b["port"]);
    if let Some(v) = b.get("version").and_then(Value::as_str) {
        s.push('@');
        s.push_str(v);
    }
    s
}

/// Why `got` is not what `want` says, or `None` when it is.
fn mismatch(got: &Value, want: Want) -> Option<String> {
    let route = &got["route"];
    let status = got["status"].as_u64();
    let backends = got["backends"].as_array().cloned().unwrap_or_default();
    let first = backends.first().map(backend_text);
    let ok = match want {
        Want::Hit(name, rule, m, to) => {
            route["name"] == name
                && route["rule"] == rule
                && route["match"] == m
                && status == Some(200)
                && first.as_deref() == Some(to)
        }
        Want::NotFound => route.is_null() && status == Some(404) && backends.is_empty(),
        Want::Direct(to) => {
            route.is_null()
                && status == Some(200)
                && backends.len() == 1
                && first.as_deref() == Some(to)
        }
        Want::Fixed(name, rule, code) => {
            route["name"] == name
                && route["rule"] == rule
                && status == Some(u64::from(code))
                && backends.is_empty()
        }
    };
    (!ok).then(|| {
        format!(
            "want {want:?}, got route {} status {} backends [{}]",
            route,
            got["status"],
            backends
                .iter()
                .map(backend_text)
                .collect::<Vec<_>>()
                .join(", ")
        )
    })
}

/// Run every case (callers default to `default_from`) and report all mismatches at once.
fn run(checked: &Checked, default_from: &str, cases: &[Case]) {
    let mut failures = Vec::new();
    for c in cases {
        let from = if c.from.is_empty() {
            default_from
        } else {
            c.from
        };
        let headers: Vec<String> = c.headers.iter().map(|h| h.to_string()).collect();
        let what = format!("{} {} {:?} from {from}", c.method, c.url, c.headers);
        match meshc::explain::explain(checked, from, &headers, c.method, c.url) {
            Ok(e) => {
                if let Some(why) = mismatch(&e.json, c.want) {
                    failures.push(format!("{what}: {why}"));
                }
            }
            Err(err) => failures.push(format!("{what}: explain failed: {err}")),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

fn codes(checked: &Checked) -> Vec<&'static str> {
    checked
        .diagnostics
        .iter()
        .map(|d| d.code.as_str())
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Precedence, rule by rule.

/// Precedence rule 1: an `Exact` path beats every `PathPrefix`, even a prefix written longer
/// (trailing slash) and one in an older route.
#[test]
fn exact_beats_prefix() {
    let m = k8s(r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: a-prefix, namespace: mesh, creationTimestamp: "2020-01-01T00:00:00Z"}
spec:
  parentRefs: [{group: "", kind: Service, name: echo}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /exact/}}]
    backendRefs: [{name: v1, port: 8080}]
  - matches: [{path: {type: PathPrefix, value: /}}]
    backendRefs: [{name: v3, port: 8080}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: b-exact, namespace: mesh, creationTimestamp: "2024-01-01T00:00:00Z"}
spec:
  parentRefs: [{group: "", kind: Service, name: echo}]
  rules:
  - matches: [{path: {type: Exact, value: /exact}}]
    backendRefs: [{name: v2, port: 8080}]
  - matches: [{path: {type: Exact, value: /}}]
    backendRefs: [{name: v4, port: 8080}]
"#);
    run(
        &m,
        "mesh/client",
        &[
            get(
                "http://echo/exact",
                Want::Hit("mesh/b-exact", 0, 0, "mesh/v2:8080"),
            ),
            get(
                "http://echo/exact/",
                Want::Hit("mesh/a-prefix", 0, 0, "mesh/v1:8080"),
            ),
            get(
                "http://echo/exact/x",
                Want::Hit("mesh/a-prefix", 0, 0, "mesh/v1:8080"),
            ),
            get(
                "http://echo/exactly",
                Want::Hit("mesh/a-prefix", 1, 0, "mesh/v3:8080"),
            ),
            get(
                "http://echo/",
                Want::Hit("mesh/b-exact", 1, 0, "mesh/v4:8080"),
            ),
            get(
                "http://echo/other",
                Want::Hit("mesh/a-prefix", 1, 0, "mesh/v3:8080"),
            ),
        ],
    );
}

/// Precedence rule 2: the longest `PathPrefix` wins, across different routes on the same Service;
/// the shorter prefixes belong to the older routes and to names that sort first.
#[test]
fn longest_prefix_wins_across_routes() {
    let m = k8s(r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: a-short, namespace: mesh, creationTimestamp: "2020-01-01T00:00:00Z"}
spec:
  parentRefs: [{group: "", kind: Service, name: echo}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /api}}]
    backendRefs: [{name: v1, port: 8080}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: b-long, namespace: mesh, creationTimestamp: "2021-01-01T00:00:00Z"}
spec:
  parentRefs: [{group: "", kind: Service, name: echo}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /api/v1}}]
    backendRefs: [{name: v2, port: 8080}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: c-longest, namespace: mesh, creationTimestamp: "2022-01-01T00:00:00Z"}
spec:
  parentRefs: [{group: "", kind: Service, name: echo}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /api/v1/users}}]
    backendRefs: [{name: v3, port: 8080}]
"#);
    run(
        &m,
        "mesh/client",
        &[
            get(
                "http://echo/api/v1/users/7",
                Want::Hit("mesh/c-longest", 0, 0, "mesh/v3:8080"),
            ),
            get(
                "http://echo/api/v1/users",
                Want::Hit("mesh/c-longest", 0, 0, "mesh/v3:8080"),
            ),
            get(
                "http://echo/api/v1/usersx",
                Want::Hit("mesh/b-long", 0, 0, "mesh/v2:8080"),
            ),
            get(
                "http://echo/api/v1/x",
                Want::Hit("mesh/b-long", 0, 0, "mesh/v2:8080"),
            ),
            get(
                "http://echo/api/v10",
                Want::Hit("mesh/a-short", 0, 0, "mesh/v1:8080"),
            ),
            get(
                "http://echo/api",
                Want::Hit("mesh/a-short", 0, 0, "mesh/v1:8080"),
            ),
            get("http://echo/apis", Want::NotFound),
        ],
    );
}

/// Precedence rule 3: with equal paths, a method match beats none; it also beats any number of
/// header matches, and a longer prefix beats a method.
#[test]
fn method_match_beats_none() {
    let m = native(
        r#"
apiVersion: meshc.dev/v1alpha1
kind: MeshRoute
metadata: {name: shop}
spec:
  parentRefs: [{name: shop}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /m}}]
    backendRefs: [{name: shop, version: v1}]
  - matches: [{path: {type: PathPrefix, value: /m}, method: POST}]
    backendRefs: [{name: shop, version: v2}]
  - matches:
    - path: {type: PathPrefix, value: /m}
      headers: [{name: x-a, value: "1"}, {name: x-b, value: "2"}]
    backendRefs: [{name: shop, version: v3}]
  - matches: [{path: {type: PathPrefix, value: /m/long}}]
    backendRefs: [{name: shop, version: v4}]
"#,
    );
    run(
        &m,
        "client",
        &[
            get(
                "http://shop/m",
                Want::Hit("default/shop", 0, 0, "default/shop:9080@v1"),
            ),
            req(
                "POST",
                "http://shop/m",
                &[],
                Want::Hit("default/shop", 1, 0, "default/shop:9080@v2"),
            ),
            req(
                "POST",
                "http://shop/m/x",
                &["x-a: 1", "x-b: 2"],
                Want::Hit("default/shop", 1, 0, "default/shop:9080@v2"),
            ),
            req(
                "GET",
                "http://shop/m/x",
                &["x-a: 1", "x-b: 2"],
                Want::Hit("default/shop", 2, 0, "default/shop:9080@v3"),
            ),
            req(
                "POST",
                "http://shop/m/long/x",
                &[],
                Want::Hit("default/shop", 3, 0, "default/shop:9080@v4"),
            ),
            req("HEAD", "http://shop/mm", &[], Want::NotFound),
        ],
    );
}

/// Precedence rule 4: with equal paths and methods, more header matches beat fewer; header matches
/// beat query matches, however many.
#[test]
fn more_header_matches_beat_fewer() {
    let m = native(
        r#"
apiVersion: meshc.dev/v1alpha1
kind: MeshRoute
metadata: {name: shop}
spec:
  parentRefs: [{name: shop}]
  rules:
  - matches:
    - queryParams: [{name: p, value: "1"}, {name: q, value: "2"}]
    backendRefs: [{name: shop, version: v3}]
  - matches:
    - headers: [{name: x-a, value: "1"}]
    backendRefs: [{name: shop, version: v1}]
  - matches:
    - headers: [{name: x-a, value: "1"}, {name: x-b, value: "2"}]
    backendRefs: [{name: shop, version: v2}]
"#,
    );
    run(
        &m,
        "client",
        &[
            req(
                "GET",
                "http://shop/",
                &["x-a: 1"],
                Want::Hit("default/shop", 1, 0, "default/shop:9080@v1"),
            ),
            req(
                "GET",
                "http://shop/",
                &["x-a: 1", "x-b: 2"],
                Want::Hit("default/shop", 2, 0, "default/shop:9080@v2"),
            ),
            req(
                "GET",
                "http://shop/",
                &["x-b: 2", "x-a: 1"],
                Want::Hit("default/shop", 2, 0, "default/shop:9080@v2"),
            ),
            req(
                "GET",
                "http://shop/",
                &["x-a: 1", "x-b: 9"],
                Want::Hit("default/shop", 1, 0, "default/shop:9080@v1"),
            ),
            req(
                "GET",
                "http://shop/?p=1&q=2",
                &["x-a: 1"],
                Want::Hit("default/shop", 1, 0, "default/shop:9080@v1"),
            ),
            get(
                "http://shop/?p=1&q=2",
                Want::Hit("default/shop", 0, 0, "default/shop:9080@v3"),
            ),
            req("GET", "http://shop/", &["x-b: 2"], Want::NotFound),
        ],
    );
}

/// Precedence rule 5: with everything else equal, more query-parameter matches beat fewer.
#[test]
fn more_query_matches_beat_fewer() {
    let m = k8s(r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: q, namespace: mesh}
spec:
  parentRefs: [{group: "", kind: Service, name: echo}]
  rules:
  - matches: [{queryParams: [{name: a, value: "1"}]}]
    backendRefs: [{name: v1, port: 8080}]
  - matches: [{queryParams: [{name: a, value: "1"}, {name: b, value: "2"}]}]
    backendRefs: [{name: v2, port: 8080}]
  - matches: [{queryParams: [{name: a, value: "1"}, {name: b, value: "2"}, {name: c, value: "3"}]}]
    backendRefs: [{name: v3, port: 8080}]
"#);
    run(
        &m,
        "mesh/client",
        &[
            get(
                "http://echo/?a=1",
                Want::Hit("mesh/q", 0, 0, "mesh/v1:8080"),
            ),
            get(
                "http://echo/?a=1&b=2",
                Want::Hit("mesh/q", 1, 0, "mesh/v2:8080"),
            ),
            get(
                "http://echo/?b=2&a=1",
                Want::Hit("mesh/q", 1, 0, "mesh/v2:8080"),
            ),
            get(
                "http://echo/x?c=3&b=2&a=1",
                Want::Hit("mesh/q", 2, 0, "mesh/v3:8080"),
            ),
            get(
                "http://echo/?a=1&b=3&c=3",
                Want::Hit("mesh/q", 0, 0, "mesh/v1:8080"),
            ),
            get("http://echo/?b=2", Want::NotFound),
        ],
    );
}

/// Precedence rule 6: with equal matches, the oldest `creationTimestamp` wins; offsets are compared
/// as times, and a route without a timestamp counts as newer than every route that has one.
#[test]
fn oldest_creation_timestamp_wins() {
    let m = k8s(r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: a-newest, namespace: mesh, creationTimestamp: "2024-03-01T00:00:00Z"}
spec:
  parentRefs: [{group: "", kind: Service, name: echo}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /t}}]
    backendRefs: [{name: v1, port: 8080}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: b-oldest, namespace: mesh, creationTimestamp: "2024-01-01T06:00:00Z"}
spec:
  parentRefs: [{group: "", kind: Service, name: echo}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /t}}]
    backendRefs: [{name: v2, port: 8080}]
  - matches: [{path: {type: PathPrefix, value: /o}}]
    backendRefs: [{name: v2, port: 8080}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: c-middle, namespace: mesh, creationTimestamp: "2024-02-01T00:00:00Z"}
spec:
  parentRefs: [{group: "", kind: Service, name: echo}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /t}}]
    backendRefs: [{name: v3, port: 8080}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: "0-undated", namespace: mesh}
spec:
  parentRefs: [{group: "", kind: Service, name: echo}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /t}}]
    backendRefs: [{name: v4, port: 8080}]
  - matches: [{path: {type: PathPrefix, value: /u}}]
    backendRefs: [{name: v4, port: 8080}]
---
# 10:00 at +05:00 is 05:00 UTC: one hour older than b-oldest, though its text sorts later.
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: d-offset, namespace: mesh, creationTimestamp: "2024-01-01T10:00:00+05:00"}
spec:
  parentRefs: [{group: "", kind: Service, name: echo}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /o}}]
    backendRefs: [{name: v1, port: 8080}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: e-dated, namespace: mesh, creationTimestamp: "2030-01-01T00:00:00Z"}
spec:
  parentRefs: [{group: "", kind: Service, name: echo}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /u}}]
    backendRefs: [{name: v3, port: 8080}]
"#);
    run(
        &m,
        "mesh/client",
        &[
            get(
                "http://echo/t",
                Want::Hit("mesh/b-oldest", 0, 0, "mesh/v2:8080"),
            ),
            get(
                "http://echo/o/x",
                Want::Hit("mesh/d-offset", 0, 0, "mesh/v1:8080"),
            ),
            get(
                "http://echo/u",
                Want::Hit("mesh/e-dated", 0, 0, "mesh/v3:8080"),
            ),
        ],
    );
}

/// Fractional seconds are part of the time: `06:00:00.5Z` is half a second newer than
/// `06:00:00Z`, so the route created at the whole second is the older one.
#[test]
fn fractional_second_timestamps_rank_by_time() {
    let m = k8s(r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: a-later, namespace: mesh, creationTimestamp: "2024-01-01T06:00:00.5Z"}
spec:
  parentRefs: [{group: "", kind: Service, name: echo}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /t}}]
    backendRefs: [{name: v1, port: 8080}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: b-earlier, namespace: mesh, creationTimestamp: "2024-01-01T06:00:00Z"}
spec:
  parentRefs: [{group: "", kind: Service, name: echo}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /t}}]
    backendRefs: [{name: v2, port: 8080}]
"#);
    run(
        &m,
        "mesh/client",
        &[get(
            "http://echo/t",
            Want::Hit("mesh/b-earlier", 0, 0, "mesh/v2:8080"),
        )],
    );
}

/// Precedence rule 7: then `namespace/name` in alphabetical (byte) order, whether both routes have
/// the same timestamp or neither has one.
#[test]
fn then_alphabetical_namespace_name() {
    let m = k8s(r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: beta, namespace: mesh}
spec:
  parentRefs: [{group: "", kind: Service, name: echo}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /n}}]
    backendRefs: [{name: v1, port: 8080}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: alpha-2, namespace: mesh}
spec:
  parentRefs: [{group: "", kind: Service, name: echo}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /n}}]
    backendRefs: [{name: v2, port: 8080}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: alpha, namespace: mesh}
spec:
  parentRefs: [{group: "", kind: Service, name: echo}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /n}}]
    backendRefs: [{name: v3, port: 8080}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r9, namespace: mesh, creationTimestamp: "2024-01-01T00:00:00Z"}
spec:
  parentRefs: [{group: "", kind: Service, name: echo}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /d}}]
    backendRefs: [{name: v1, port: 8080}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r10, namespace: mesh, creationTimestamp: "2024-01-01T00:00:00Z"}
spec:
  parentRefs: [{group: "", kind: Service, name: echo}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /d}}]
    backendRefs: [{name: v4, port: 8080}]
"#);
    run(
        &m,
        "mesh/client",
        &[
            get(
                "http://echo/n",
                Want::Hit("mesh/alpha", 0, 0, "mesh/v3:8080"),
            ),
            // Byte order, not natural order: `r10` sorts before `r9`.
            get("http://echo/d", Want::Hit("mesh/r10", 0, 0, "mesh/v4:8080")),
        ],
    );
}

/// Precedence rule 8: then rule order within a route, then match order within a rule; a more
/// specific later match of the same rule still wins by precedence.
#[test]
fn then_rule_order_within_a_route() {
    let m = k8s(r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r, namespace: mesh}
spec:
  parentRefs: [{group: "", kind: Service, name: echo}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /a}}]
    backendRefs: [{name: v1, port: 8080}]
  - matches: [{path: {type: PathPrefix, value: /a}}]
    backendRefs: [{name: v2, port: 8080}]
  - matches:
    - path: {type: PathPrefix, value: /b}
    - path: {type: PathPrefix, value: /b/c}
    - path: {type: PathPrefix, value: /b}
      method: GET
    backendRefs: [{name: v3, port: 8080}]
"#);
    run(
        &m,
        "mesh/client",
        &[
            get("http://echo/a/1", Want::Hit("mesh/r", 0, 0, "mesh/v1:8080")),
            get(
                "http://echo/b/c/d",
                Want::Hit("mesh/r", 2, 1, "mesh/v3:8080"),
            ),
            get("http://echo/b/x", Want::Hit("mesh/r", 2, 2, "mesh/v3:8080")),
            req(
                "PUT",
                "http://echo/b/x",
                &[],
                Want::Hit("mesh/r", 2, 0, "mesh/v3:8080"),
            ),
        ],
    );
}

/// `RegularExpression` paths rank below every `PathPrefix` (`/` included), are matched against
/// the whole path, and beat nothing but a miss.
#[test]
fn regex_paths_rank_below_prefixes() {
    let m = k8s(r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: a-regex, namespace: mesh, creationTimestamp: "2020-01-01T00:00:00Z"}
spec:
  parentRefs: [{group: "", kind: Service, name: echo, port: 80}]
  rules:
  - matches: [{path: {type: RegularExpression, value: "/n/[0-9]+"}}]
    backendRefs: [{name: v1, port: 8080}]
  - matches: [{path: {type: RegularExpression, value: "/p/[0-9]+"}, method: GET}]
    backendRefs: [{name: v3, port: 8080}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: b-prefix, namespace: mesh, creationTimestamp: "2024-01-01T00:00:00Z"}
spec:
  parentRefs: [{group: "", kind: Service, name: echo, port: 80}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /p}}]
    backendRefs: [{name: v2, port: 8080}]
---
# On port 8080, a catch-all prefix shadows the regex entirely.
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: c-catch-all, namespace: mesh}
spec:
  parentRefs: [{group: "", kind: Service, name: echo, port: 8080}]
  rules:
  - matches:
    - path: {type: RegularExpression, value: "/n/[0-9]+"}
      method: GET
      headers: [{name: x-a, value: "1"}]
    backendRefs: [{name: v1, port: 8080}]
  - matches: [{path: {type: PathPrefix, value: /}}]
    backendRefs: [{name: v4, port: 8080}]
"#);
    run(
        &m,
        "mesh/client",
        &[
            get(
                "http://echo/n/12",
                Want::Hit("mesh/a-regex", 0, 0, "mesh/v1:8080"),
            ),
            get("http://echo/n/12x", Want::NotFound),
            get("http://echo/x/n/12", Want::NotFound),
            get(
                "http://echo/p/12",
                Want::Hit("mesh/b-prefix", 0, 0, "mesh/v2:8080"),
            ),
            req(
                "GET",
                "http://echo:8080/n/12",
                &["x-a: 1"],
                Want::Hit("mesh/c-catch-all", 1, 0, "mesh/v4:8080"),
            ),
        ],
    );
}

// ---------------------------------------------------------------------------------------------
// Matching.

/// `PathPrefix` matches whole segments; a trailing slash in the prefix is ignored for matching
/// and for ranking; paths are case-sensitive.
#[test]
fn path_prefix_segment_semantics() {
    let m = k8s(r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: seg, namespace: mesh}
spec:
  parentRefs: [{group: "", kind: Service, name: echo}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /v2}}]
    backendRefs: [{name: v1, port: 8080}]
  - matches: [{path: {type: PathPrefix, value: /v3/}}]
    backendRefs: [{name: v2, port: 8080}]
---
# Same prefix with and without a trailing slash: equal rank, so the name decides (a-plain); a
# ranking that counted the slash would pick b-slash.
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: a-plain, namespace: mesh}
spec:
  parentRefs: [{group: "", kind: Service, name: echo}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /api}}]
    backendRefs: [{name: v3, port: 8080}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: b-slash, namespace: mesh}
spec:
  parentRefs: [{group: "", kind: Service, name: echo}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /api/}}]
    backendRefs: [{name: v4, port: 8080}]
"#);
    run(
        &m,
        "mesh/client",
        &[
            get(
                "http://echo/v2",
                Want::Hit("mesh/seg", 0, 0, "mesh/v1:8080"),
            ),
            get(
                "http://echo/v2/",
                Want::Hit("mesh/seg", 0, 0, "mesh/v1:8080"),
            ),
            get(
                "http://echo/v2/x",
                Want::Hit("mesh/seg", 0, 0, "mesh/v1:8080"),
            ),
            get(
                "http://echo/v2?x=/y",
                Want::Hit("mesh/seg", 0, 0, "mesh/v1:8080"),
            ),
            get("http://echo/v2example", Want::NotFound),
            get("http://echo/V2", Want::NotFound),
            get(
                "http://echo/v3",
                Want::Hit("mesh/seg", 1, 0, "mesh/v2:8080"),
            ),
            get(
                "http://echo/v3/",
                Want::Hit("mesh/seg", 1, 0, "mesh/v2:8080"),
            ),
            get(
                "http://echo/v3/x/y",
                Want::Hit("mesh/seg", 1, 0, "mesh/v2:8080"),
            ),
            get("http://echo/v3x", Want::NotFound),
            get(
                "http://echo/api",
                Want::Hit("mesh/a-plain", 0, 0, "mesh/v3:8080"),
            ),
            get(
                "http://echo/api/x",
                Want::Hit("mesh/a-plain", 0, 0, "mesh/v3:8080"),
            ),
        ],
    );
}

/// Header names match case-insensitively (in the route and in the request); values exactly, or
/// by a regex that must match the whole value.
#[test]
fn header_names_case_insensitive_values_exact_and_regex() {
    let m = native(
        r#"
apiVersion: meshc.dev/v1alpha1
kind: MeshRoute
metadata: {name: shop}
spec:
  parentRefs: [{name: shop}]
  rules:
  - matches: [{headers: [{name: X-Env, value: prod}]}]
    backendRefs: [{name: shop, version: v1}]
  - matches: [{headers: [{type: RegularExpression, name: x-build, value: "v[0-9]+"}]}]
    backendRefs: [{name: shop, version: v2}]
"#,
    );
    let s = "default/shop";
    run(
        &m,
        "client",
        &[
            req(
                "GET",
                "http://shop/",
                &["x-env: prod"],
                Want::Hit(s, 0, 0, "default/shop:9080@v1"),
            ),
            req(
                "GET",
                "http://shop/",
                &["X-ENV: prod"],
                Want::Hit(s, 0, 0, "default/shop:9080@v1"),
            ),
            req("GET", "http://shop/", &["X-Env: Prod"], Want::NotFound),
            req(
                "GET",
                "http://shop/",
                &["X-Env: production"],
                Want::NotFound,
            ),
            req(
                "GET",
                "http://shop/",
                &["x-build: v12"],
                Want::Hit(s, 1, 0, "default/shop:9080@v2"),
            ),
            req(
                "GET",
                "http://shop/",
                &["X-Build: v7"],
                Want::Hit(s, 1, 0, "default/shop:9080@v2"),
            ),
            req("GET", "http://shop/", &["x-build: v12x"], Want::NotFound),
            req("GET", "http://shop/", &["x-build: xv12"], Want::NotFound),
            req("GET", "http://shop/", &["x-other: prod"], Want::NotFound),
            get("http://shop/", Want::NotFound),
        ],
    );
}

/// Query parameters: names are case-sensitive and percent-decoded; values exact or by whole
/// regex; only the first occurrence of a parameter counts.
#[test]
fn query_exact_regex_and_first_occurrence() {
    let m = k8s(r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: q, namespace: mesh}
spec:
  parentRefs: [{group: "", kind: Service, name: echo}]
  rules:
  - matches: [{queryParams: [{name: animal, value: whale}]}]
    backendRefs: [{name: v1, port: 8080}]
  - matches: [{queryParams: [{type: RegularExpression, name: n, value: "[0-9]+"}]}]
    backendRefs: [{name: v2, port: 8080}]
"#);
    run(
        &m,
        "mesh/client",
        &[
            get(
                "http://echo/?animal=whale",
                Want::Hit("mesh/q", 0, 0, "mesh/v1:8080"),
            ),
            get(
                "http://echo/x/y?z=1&animal=whale",
                Want::Hit("mesh/q", 0, 0, "mesh/v1:8080"),
            ),
            get(
                "http://echo/?animal=wh%61le",
                Want::Hit("mesh/q", 0, 0, "mesh/v1:8080"),
            ),
            get(
                "http://echo/?animal=whale&animal=dog",
                Want::Hit("mesh/q", 0, 0, "mesh/v1:8080"),
            ),
            get("http://echo/?animal=dog&animal=whale", Want::NotFound),
            get("http://echo/?ANIMAL=whale", Want::NotFound),
            get("http://echo/?animal=Whale", Want::NotFound),
            get("http://echo/?animal=whaledolphin", Want::NotFound),
            get(
                "http://echo/?n=42",
                Want::Hit("mesh/q", 1, 0, "mesh/v2:8080"),
            ),
            get("http://echo/?n=42a", Want::NotFound),
            get("http://echo/?n=a42", Want::NotFound),
            get(
                "http://echo/?n=1&n=x",
                Want::Hit("mesh/q", 1, 0, "mesh/v2:8080"),
            ),
            get("http://echo/?n=x&n=1", Want::NotFound),
            get("http://echo/", Want::NotFound),
        ],
    );
}

/// A rule without `matches` behaves exactly as `PathPrefix: /`: it ties with an explicit `/`
/// (the name decides, in both orders) and loses to anything more specific.
#[test]
fn rule_without_matches_is_prefix_slash() {
    let m = k8s(r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: a-empty, namespace: mesh}
spec:
  parentRefs: [{group: "", kind: Service, name: echo, port: 80}]
  rules:
  - backendRefs: [{name: v1, port: 8080}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: b-slash, namespace: mesh}
spec:
  parentRefs: [{group: "", kind: Service, name: echo}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /}}]
    backendRefs: [{name: v2, port: 8080}]
  - matches: [{path: {type: Exact, value: /x}}]
    backendRefs: [{name: v3, port: 8080}]
  - matches: [{path: {type: PathPrefix, value: /}, method: GET}]
    backendRefs: [{name: v4, port: 8080}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: c-empty, namespace: mesh}
spec:
  parentRefs: [{group: "", kind: Service, name: echo, port: 8080}]
  rules:
  - backendRefs: [{name: v1, port: 8080}]
"#);
    run(
        &m,
        "mesh/client",
        &[
            req(
                "POST",
                "http://echo/anything/at/all",
                &[],
                Want::Hit("mesh/a-empty", 0, 0, "mesh/v1:8080"),
            ),
            req(
                "POST",
                "http://echo:8080/anything",
                &[],
                Want::Hit("mesh/b-slash", 0, 0, "mesh/v2:8080"),
            ),
            req(
                "POST",
                "http://echo/x",
                &[],
                Want::Hit("mesh/b-slash", 1, 0, "mesh/v3:8080"),
            ),
            get(
                "http://echo/y",
                Want::Hit("mesh/b-slash", 2, 0, "mesh/v4:8080"),
            ),
        ],
    );
}

/// 404 when routes are attached but nothing matches; route `null` and the service itself when no
/// route is attached.
#[test]
fn not_found_and_direct() {
    let m = k8s(r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: only, namespace: mesh}
spec:
  parentRefs: [{group: "", kind: Service, name: echo}]
  rules:
  - matches: [{path: {type: Exact, value: /only}, method: GET}]
    backendRefs: [{name: v1, port: 8080}]
"#);
    run(
        &m,
        "mesh/client",
        &[
            get(
                "http://echo/only",
                Want::Hit("mesh/only", 0, 0, "mesh/v1:8080"),
            ),
            get("http://echo/only/", Want::NotFound),
            get("http://echo/other", Want::NotFound),
            req("POST", "http://echo/only", &[], Want::NotFound),
            get("http://echo:8080/other", Want::NotFound),
            get("http://plain/anything", Want::Direct("mesh/plain:9000")),
            get(
                "http://plain.mesh.svc.cluster.local:9000/x",
                Want::Direct("mesh/plain:9000"),
            ),
            get("http://v1/x", Want::Direct("mesh/v1:8080")),
        ],
    );
}

/// A rule whose backends all weigh 0 answers 500; a rule with some positive weight forwards,
/// listing every backend with its weight.
#[test]
fn all_zero_weights_answer_500() {
    let m = k8s(r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: w, namespace: mesh}
spec:
  parentRefs: [{group: "", kind: Service, name: echo}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /zero}}]
    backendRefs: [{name: v1, port: 8080, weight: 0}, {name: v2, port: 8080, weight: 0}]
  - matches: [{path: {type: PathPrefix, value: /some}}]
    backendRefs: [{name: v1, port: 8080, weight: 0}, {name: v2, port: 8080, weight: 3}]
  - matches: [{path: {type: PathPrefix, value: /default}}]
    backendRefs: [{name: v3, port: 8080}, {name: v4, port: 8080}]
"#);
    assert!(
        codes(&m).contains(&"MC0501"),
        "expected MC0501 for the all-zero rule: {:?}",
        codes(&m)
    );
    run(
        &m,
        "mesh/client",
        &[
            get("http://echo/zero", Want::Fixed("mesh/w", 0, 500)),
            get("http://echo/zero/x", Want::Fixed("mesh/w", 0, 500)),
            get(
                "http://echo/some",
                Want::Hit("mesh/w", 1, 0, "mesh/v1:8080"),
            ),
        ],
    );
    let weights = |url: &str| -> Vec<(String, u64)> {
        let e = meshc::explain::explain(&m, "mesh/client", &[], "GET", url).expect("explain");
        e.json["backends"]
            .as_array()
            .expect("backends")
            .iter()
            .map(|b| (backend_text(b), b["weight"].as_u64().expect("weight")))
            .collect()
    };
    assert_eq!(
        weights("http://echo/some"),
        vec![
            ("mesh/v1:8080".to_string(), 0),
            ("mesh/v2:8080".to_string(), 3)
        ]
    );
    // `weight` defaults to 1.
    assert_eq!(
        weights("http://echo/default"),
        vec![
            ("mesh/v3:8080".to_string(), 1),
            ("mesh/v4:8080".to_string(), 1)
        ]
    );
}

/// A route attached with `port` applies to that service port only; one without applies to
/// every port, and precedence runs across both on the port they share.
#[test]
fn parent_port_narrows_attachment() {
    let m = k8s(r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: port-80, namespace: mesh, creationTimestamp: "2020-01-01T00:00:00Z"}
spec:
  parentRefs: [{group: "", kind: Service, name: echo, port: 80}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /b}}]
    backendRefs: [{name: v1, port: 8080}]
  - matches: [{path: {type: PathPrefix, value: /a}}]
    backendRefs: [{name: v3, port: 8080}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: any-port, namespace: mesh, creationTimestamp: "2024-01-01T00:00:00Z"}
spec:
  parentRefs: [{group: "", kind: Service, name: echo}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /a}}]
    backendRefs: [{name: v2, port: 8080}]
"#);
    run(
        &m,
        "mesh/client",
        &[
            get(
                "http://echo/b",
                Want::Hit("mesh/port-80", 0, 0, "mesh/v1:8080"),
            ),
            get(
                "http://echo:80/b",
                Want::Hit("mesh/port-80", 0, 0, "mesh/v1:8080"),
            ),
            get("http://echo:8080/b", Want::NotFound),
            // On port 80 both routes match /a: the older one (port-80) wins.
            get(
                "http://echo/a",
                Want::Hit("mesh/port-80", 1, 0, "mesh/v3:8080"),
            ),
            get(
                "http://echo:8080/a",
                Want::Hit("mesh/any-port", 0, 0, "mesh/v2:8080"),
            ),
            get("http://plain/x", Want::Direct("mesh/plain:9000")),
        ],
    );
}

/// Hostnames play no part in mesh attachment: a route that declares other hostnames still
/// governs requests addressed to its Service by name.
#[test]
fn hostnames_do_not_limit_mesh_attachment() {
    let m = k8s(r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: named, namespace: mesh}
spec:
  parentRefs: [{group: "", kind: Service, name: echo}]
  hostnames: [echo.example.com]
  rules:
  - matches: [{path: {type: PathPrefix, value: /h}}]
    backendRefs: [{name: v1, port: 8080}]
"#);
    run(
        &m,
        "mesh/client",
        &[
            get(
                "http://echo/h",
                Want::Hit("mesh/named", 0, 0, "mesh/v1:8080"),
            ),
            get(
                "http://echo.mesh.svc.cluster.local/h",
                Want::Hit("mesh/named", 0, 0, "mesh/v1:8080"),
            ),
            get("http://echo/x", Want::NotFound),
        ],
    );
}

/// Consumer routes (in the caller's namespace, parent in another) apply to callers in their own
/// namespace only, and replace the producer routes for them, per service port.
#[test]
fn consumer_routes_apply_to_their_namespace_and_replace_producer_routes() {
    let m = k8s(r#"
apiVersion: v1
kind: Service
metadata: {name: client, namespace: cons}
spec:
  ports: [{name: http, port: 80}]
---
apiVersion: v1
kind: Service
metadata: {name: client, namespace: other}
spec:
  ports: [{name: http, port: 80}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: producer, namespace: mesh, creationTimestamp: "2020-01-01T00:00:00Z"}
spec:
  parentRefs: [{group: "", kind: Service, name: echo}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /}}]
    backendRefs: [{name: v1, port: 8080}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: consumer, namespace: cons, creationTimestamp: "2024-01-01T00:00:00Z"}
spec:
  parentRefs: [{group: "", kind: Service, name: echo, namespace: mesh, port: 80}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /c}}]
    backendRefs: [{name: v2, namespace: mesh, port: 8080}]
"#);
    run(
        &m,
        "mesh/client",
        &[
            // The consumer namespace: the consumer route only, on port 80.
            from(
                "cons/client",
                "http://echo.mesh/c/1",
                Want::Hit("cons/consumer", 0, 0, "mesh/v2:8080"),
            ),
            from(
                "cons/client",
                "http://echo.mesh.svc.cluster.local/c",
                Want::Hit("cons/consumer", 0, 0, "mesh/v2:8080"),
            ),
            from("cons/client", "http://echo.mesh/x", Want::NotFound),
            // The consumer route is attached to port 80 only: on 8080 the producer route applies.
            from(
                "cons/client",
                "http://echo.mesh:8080/c",
                Want::Hit("mesh/producer", 0, 0, "mesh/v1:8080"),
            ),
            // The producer's own namespace and a third namespace never see the consumer route.
            from(
                "mesh/client",
                "http://echo/c",
                Want::Hit("mesh/producer", 0, 0, "mesh/v1:8080"),
            ),
            from(
                "mesh/client",
                "http://echo/x",
                Want::Hit("mesh/producer", 0, 0, "mesh/v1:8080"),
            ),
            from(
                "other/client",
                "http://echo.mesh/c",
                Want::Hit("mesh/producer", 0, 0, "mesh/v1:8080"),
            ),
        ],
    );
}

/// A Gateway API parentRef without `group: ""` names group `gateway.networking.k8s.io`, which has
/// no `Service`: the route attaches to nothing (MC0306 warning) and traffic goes to the service.
#[test]
fn parent_ref_without_core_group_attaches_to_nothing() {
    let m = k8s(r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: no-group, namespace: mesh}
spec:
  parentRefs: [{kind: Service, name: echo}]
  rules:
  - backendRefs: [{name: v1, port: 8080}]
"#);
    let mc0306: Vec<_> = m
        .diagnostics
        .iter()
        .filter(|d| d.code.as_str() == "MC0306")
        .collect();
    assert_eq!(mc0306.len(), 1, "{:#?}", m.diagnostics);
    assert_eq!(mc0306[0].severity, Severity::Warning);
    run(
        &m,
        "mesh/client",
        &[
            get("http://echo/", Want::Direct("mesh/echo:80")),
            get("http://echo:8080/x", Want::Direct("mesh/echo:8080")),
        ],
    );
}

/// Gateway API: when one match names the same header twice (names compare case-insensitively),
/// only the first entry counts. The Kubernetes API server accepts names that differ in case (the
/// list is keyed by the exact name), so such a route is valid input: meshc warns (MC0106) and uses
/// the first entry.
#[test]
fn case_variant_duplicate_header_keeps_the_first() {
    let yaml = format!(
        "{K8S_BASE}\n---\n{}",
        r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: dup, namespace: mesh}
spec:
  parentRefs: [{group: "", kind: Service, name: echo}]
  rules:
  - matches: [{headers: [{name: x-a, value: "1"}, {name: X-A, value: "2"}]}]
    backendRefs: [{name: v1, port: 8080}]
"#
    );
    let m = meshc::check_sources(
        vec![
            ("mesh.yaml".to_string(), yaml),
            ("allow.cedar".to_string(), ALLOW_ALL.to_string()),
        ],
        &LoadOptions::default(),
    );
    let errors: Vec<_> = m
        .diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .collect();
    assert!(
        errors.is_empty(),
        "valid Kubernetes input refused: {errors:#?}"
    );
    run(
        &m,
        "mesh/client",
        &[
            req(
                "GET",
                "http://echo/",
                &["x-a: 1"],
                Want::Hit("mesh/dup", 0, 0, "mesh/v1:8080"),
            ),
            req("GET", "http://echo/", &["x-a: 2"], Want::NotFound),
        ],
    );
}

/// Rules that do the same thing share one action in the compiled table, and each entry still
/// leads to what its own rule says.
#[test]
fn identical_actions_are_stored_once() {
    let checked = native(
        r#"
apiVersion: meshc.dev/v1alpha1
kind: MeshRoute
metadata: {name: shop}
spec:
  parentRefs: [{name: shop}]
  rules:
  - matches: [{path: {type: Exact, value: /a}}]
    backendRefs: [{name: shop, port: 9080, version: v1}]
  - matches: [{path: {type: Exact, value: /b}}]
    backendRefs: [{name: shop, port: 9080, version: v2}]
  - matches: [{path: {type: Exact, value: /c}}]
    backendRefs: [{name: shop, port: 9080, version: v1}]
  - matches: [{path: {type: Exact, value: /d}}]
    backendRefs: [{name: shop, port: 9080, version: v1}]
"#,
    );
    let client = checked
        .model
        .services
        .iter()
        .find(|s| s.name == "client")
        .expect("client");
    let body = meshc::lower::lower_sidecar(&checked, client);
    let dest = body
        .destinations
        .iter()
        .find(|d| d.service == "default/shop")
        .expect("shop");
    let table = dest.ports[0].routes.as_ref().expect("routes");
    assert_eq!(table.actions.len(), 2, "{:#?}", table.actions);
    let cluster_of = |path: &str| {
        let e = table
            .entries
            .iter()
            .find(|e| matches!(&e.path, mesh_artifact::PathMatch::Exact(p) if p == path))
            .expect("entry");
        table.actions[e.action as usize].backends[0].cluster.clone()
    };
    assert_eq!(cluster_of("/a"), "default/shop:9080@v1");
    assert_eq!(cluster_of("/b"), "default/shop:9080@v2");
    assert_eq!(cluster_of("/c"), "default/shop:9080@v1");
    assert_eq!(cluster_of("/d"), "default/shop:9080@v1");
}
