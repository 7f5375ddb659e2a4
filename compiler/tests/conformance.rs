//! The published expectations of the Gateway API mesh conformance tests
//! (kubernetes-sigs/gateway-api `conformance/tests/mesh/*`), and of the core matching tests
//! adapted to mesh attachment, replayed through `meshc explain` on our own fixtures in
//! `tests/conformance/<test-name>/`.
//!
//! Every fixture directory is a complete mesh (run `meshc explain` on it by hand): the shared
//! `services.yaml` (the upstream mesh setup, HTTP ports only), a permit-all `allow.cedar`, and a
//! `route.yaml` that names the upstream test it follows. Each case below is one upstream
//! `ExpectedResponse`: the client is `echo-v1` in `gateway-conformance-mesh` (upstream
//! `MeshAppEchoV1`) unless it says otherwise; an upstream `Backend` is asserted as the service
//! the request goes to, a status as the status, a redirect as the full `Location` (the upstream
//! test checks its parts: scheme, host, port, path). Traffic shares (`httproute-weight`) are
//! asserted as weights; rewrites through explain's human text; header filters on the compiled
//! rule action, which is what the proxy applies.

use std::path::{Path, PathBuf};

use mesh_artifact::{Decision, HeaderModifier, Router, SimpleRequest};
use meshc::{Checked, LoadOptions};
use serde_json::Value;

const NS: &str = "gateway-conformance-mesh";
const CLIENT: &str = "gateway-conformance-mesh/echo-v1";
const CONSUMER_CLIENT: &str = "gateway-conformance-mesh-consumer/echo-v1";

fn fixture_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/conformance")
        .join(name)
}

/// Check a fixture: it must be clean (no errors, no warnings: the upstream manifests are valid).
fn fixture(name: &str) -> Checked {
    let dir = fixture_dir(name);
    assert!(dir.is_dir(), "missing fixture {}", dir.display());
    let checked = meshc::check_dir(&dir, &LoadOptions::default());
    let bad: Vec<_> = checked
        .diagnostics
        .iter()
        .filter(|d| d.severity >= meshc::Severity::Warning)
        .collect();
    assert!(bad.is_empty(), "{name}: {bad:#?}");
    checked
}

/// What one upstream expectation says.
#[derive(Clone, Copy, Debug)]
enum Want {
    /// Route `route` (in `gateway-conformance-mesh`) forwards to the single backend `service`.
    Routed(&'static str, &'static str),
    /// No route applies: 200 from the Service itself.
    Direct(&'static str),
    /// 404: routes are attached and nothing matches.
    NotFound,
    /// `route` answers a redirect with this status and `Location`.
    Redirect(&'static str, u16, &'static str),
    /// `route` forwards to `service` with the path rewritten to this.
    Rewrite(&'static str, &'static str, &'static str),
}

struct Case {
    from: &'static str,
    method: &'static str,
    url: &'static str,
    headers: &'static [&'static str],
    want: Want,
}

fn get(url: &'static str, want: Want) -> Case {
    Case {
        from: CLIENT,
        method: "GET",
        url,
        headers: &[],
        want,
    }
}

fn with(
    method: &'static str,
    url: &'static str,
    headers: &'static [&'static str],
    want: Want,
) -> Case {
    Case {
        from: CLIENT,
        method,
        url,
        headers,
        want,
    }
}

fn svc(name: &str) -> String {
    format!("{NS}/{name}")
}

fn mismatch(json: &Value, human: &str, want: Want) -> Option<String> {
    let route = &json["route"];
    let status = json["status"].as_u64();
    let backends: Vec<String> = json["backends"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|b| b["service"].as_str().unwrap_or("?").to_string())
                .collect()
        })
        .unwrap_or_default();
    let ok = match want {
        Want::Routed(r, to) => {
            route["name"] == svc(r) && status == Some(200) && backends == vec![svc(to)]
        }
        Want::Direct(to) => route.is_null() && status == Some(200) && backends == vec![svc(to)],
        Want::NotFound => route.is_null() && status == Some(404) && backends.is_empty(),
        Want::Redirect(r, code, location) => {
            route["name"] == svc(r)
                && status == Some(u64::from(code))
                && json["redirect"]["status"] == code
                && json["redirect"]["location"] == location
                && backends.is_empty()
        }
        Want::Rewrite(r, to, path) => {
            route["name"] == svc(r)
                && status == Some(200)
                && backends == vec![svc(to)]
                && human.contains(&format!("path rewritten to `{path}`"))
        }
    };
    (!ok).then(|| format!("want {want:?}, got {json}\n{human}"))
}

fn run(checked: &Checked, cases: &[Case]) {
    let mut failures = Vec::new();
    for c in cases {
        let headers: Vec<String> = c.headers.iter().map(|h| h.to_string()).collect();
        let what = format!("{} {} {:?} from {}", c.method, c.url, c.headers, c.from);
        match meshc::explain::explain(checked, c.from, &headers, c.method, c.url) {
            Ok(e) => {
                if let Some(why) = mismatch(&e.json, &e.human, c.want) {
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

/// The compiled header filters of the rule a request matches, from the caller's own artifact
/// through the proxy's router: `(request, response)`.
fn header_filters(
    checked: &Checked,
    from: &str,
    authority: &str,
    path: &str,
) -> (HeaderModifier, HeaderModifier) {
    let caller = meshc::explain::resolve_caller(checked, from).expect("caller");
    let router = Router::new(meshc::lower::lower_sidecar(checked, caller)).expect("router");
    let req = SimpleRequest::new("GET", path);
    match router.decide(authority, &req) {
        Decision::Matched { action, .. } => (
            action.request_headers.clone(),
            action.response_headers.clone(),
        ),
        other => panic!("{authority}{path}: no rule matched: {other:?}"),
    }
}

fn pairs(list: &[(String, String)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(n, v)| (n.to_ascii_lowercase(), v.clone()))
        .collect()
}

fn expect_pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(n, v)| (n.to_ascii_lowercase(), v.to_string()))
        .collect()
}

fn lower(list: &[String]) -> Vec<String> {
    list.iter().map(|n| n.to_ascii_lowercase()).collect()
}

// ---------------------------------------------------------------------------------------------
// conformance/tests/mesh

/// MeshBasic: no configuration; `echo` answers 200 itself.
#[test]
fn mesh_basic() {
    let m = fixture("mesh-basic");
    run(
        &m,
        &[
            get("http://echo/", Want::Direct("echo")),
            get("http://echo:8080/anything", Want::Direct("echo")),
        ],
    );
}

/// MeshPorts: `ports-v1` is attached to `echo-v1` port 80 only; `ports-v2` to every port of
/// `echo-v2`. The upstream test sees the route through its `X-Header-Set` response header.
#[test]
fn mesh_ports() {
    let m = fixture("mesh-ports");
    run(
        &m,
        &[
            get("http://echo-v1/", Want::Routed("ports-v1", "echo-v1")),
            get("http://echo-v1:8080/", Want::Direct("echo-v1")),
            get("http://echo-v2/", Want::Routed("ports-v2", "echo-v2")),
            get("http://echo-v2:8080/", Want::Routed("ports-v2", "echo-v2")),
        ],
    );
    for (authority, value) in [("echo-v1", "v1"), ("echo-v2", "v2"), ("echo-v2:8080", "v2")] {
        let (_, response) = header_filters(&m, CLIENT, authority, "/");
        assert_eq!(
            pairs(&response.set),
            expect_pairs(&[("X-Header-Set", value)]),
            "{authority}"
        );
    }
}

/// MeshTrafficSplit: `/v1` to echo-v1, `/v2` to echo-v2.
#[test]
fn mesh_split() {
    let m = fixture("mesh-split");
    run(
        &m,
        &[
            get("http://echo/v1", Want::Routed("split", "echo-v1")),
            get("http://echo/v2", Want::Routed("split", "echo-v2")),
            // Not upstream cases, but what the same route implies: exact paths, nothing else.
            get("http://echo/v1/x", Want::NotFound),
            get("http://echo/", Want::NotFound),
        ],
    );
}

/// MeshConsumerRoute: the consumer namespace's route (which sets `X-Header-Set: set`) applies
/// to its callers only; the producer namespace's callers reach echo-v1 unchanged.
#[test]
fn mesh_consumer_route() {
    let m = fixture("mesh-consumer-route");
    let consumer_route = "gateway-conformance-mesh-consumer/consumer-sets-header";
    let e = meshc::explain::explain(
        &m,
        CONSUMER_CLIENT,
        &[],
        "GET",
        "http://echo-v1.gateway-conformance-mesh/",
    )
    .expect("explain");
    assert_eq!(e.json["route"]["name"], consumer_route, "{}", e.json);
    assert_eq!(e.json["status"], 200);
    assert_eq!(e.json["backends"][0]["service"], svc("echo-v1"));
    let (_, response) =
        header_filters(&m, CONSUMER_CLIENT, "echo-v1.gateway-conformance-mesh", "/");
    assert_eq!(
        pairs(&response.set),
        expect_pairs(&[("X-Header-Set", "set")])
    );
    run(
        &m,
        &[Case {
            from: CLIENT,
            method: "GET",
            url: "http://echo-v1.gateway-conformance-mesh/",
            headers: &[],
            want: Want::Direct("echo-v1"),
        }],
    );
}

/// MeshHTTPRouteMatching: `/` or `version: one` to echo-v1; `/v2` (whole segments) or
/// `version: two` to echo-v2.
#[test]
fn httproute_matching() {
    let m = fixture("httproute-matching");
    let v1 = Want::Routed("matching", "echo-v1");
    let v2 = Want::Routed("matching", "echo-v2");
    run(
        &m,
        &[
            get("http://echo/", v1),
            get("http://echo/example", v1),
            with("GET", "http://echo/", &["Version: one"], v1),
            get("http://echo/v2", v2),
            get("http://echo/v2/example", v2),
            with("GET", "http://echo/", &["Version: two"], v2),
            get("http://echo/v2/", v2),
            get("http://echo/v2example", v1),
            get("http://echo/foo/v2/example", v1),
        ],
    );
}

/// MeshHTTPRouteQueryParamMatching.
#[test]
fn httproute_query_param_matching() {
    let m = fixture("httproute-query-param-matching");
    let v1 = Want::Routed("query-params", "echo-v1");
    let v2 = Want::Routed("query-params", "echo-v2");
    run(
        &m,
        &[
            get("http://echo/?animal=whale", v1),
            get("http://echo/?animal=dolphin", v2),
            get("http://echo/?animal=whale&otherparam=irrelevant", v1),
            get("http://echo/?animal=dolphin&color=yellow", v2),
            get("http://echo/?color=blue", Want::NotFound),
            get("http://echo/?animal=dog", Want::NotFound),
            get("http://echo/?animal=whaledolphin", Want::NotFound),
            get("http://echo/", Want::NotFound),
            // Combinations with core matches.
            get("http://echo/path1?animal=whale", v1),
            with("GET", "http://echo/?animal=whale", &["version: one"], v2),
            // OR-ed matches.
            get("http://echo/path3?animal=shark", v1),
            with(
                "GET",
                "http://echo/path4?animal=kraken",
                &["version: three"],
                v1,
            ),
            // AND-ed conditions: a subset does not match.
            get("http://echo/?animal=shark", Want::NotFound),
            get("http://echo/path4?animal=kraken", Want::NotFound),
            // Precedence: the longer path beats the query match.
            get("http://echo/path5?animal=hydra", v1),
        ],
    );
}

/// MeshHTTPRouteWeight: 70/30 between echo-v1 and echo-v2 (asserted as weights and shares).
#[test]
fn httproute_weight() {
    let m = fixture("httproute-weight");
    let e = meshc::explain::explain(&m, CLIENT, &[], "GET", "http://echo/").expect("explain");
    assert_eq!(e.json["route"]["name"], svc("weighted"));
    assert_eq!(e.json["status"], 200);
    let got: Vec<(String, u64)> = e.json["backends"]
        .as_array()
        .expect("backends")
        .iter()
        .map(|b| {
            (
                b["service"].as_str().expect("service").to_string(),
                b["weight"].as_u64().expect("weight"),
            )
        })
        .collect();
    assert_eq!(got, vec![(svc("echo-v1"), 70), (svc("echo-v2"), 30)]);
    assert!(
        e.human.contains("(70.0%)") && e.human.contains("(30.0%)"),
        "{}",
        e.human
    );
}

/// MeshHTTPRouteRedirectPath.
#[test]
fn httproute_redirect_path() {
    let m = fixture("httproute-redirect-path");
    let r = "redirect-path";
    run(
        &m,
        &[
            get(
                "http://echo/original-prefix/lemon",
                Want::Redirect(r, 302, "http://echo/replacement-prefix/lemon"),
            ),
            get(
                "http://echo/full/path/original",
                Want::Redirect(r, 302, "http://echo/full-path-replacement"),
            ),
            get(
                "http://echo/path-and-host",
                Want::Redirect(r, 302, "http://example.org/replacement-prefix"),
            ),
            get(
                "http://echo/path-and-status",
                Want::Redirect(r, 301, "http://echo/replacement-prefix"),
            ),
            get(
                "http://echo/full-path-and-host",
                Want::Redirect(r, 302, "http://example.org/replacement-full"),
            ),
            get(
                "http://echo/full-path-and-status",
                Want::Redirect(r, 301, "http://echo/replacement-full"),
            ),
        ],
    );
}

/// MeshHTTPRouteRedirectPort.
#[test]
fn httproute_redirect_port() {
    let m = fixture("httproute-redirect-port");
    let r = "redirect-port";
    run(
        &m,
        &[
            get(
                "http://echo/port",
                Want::Redirect(r, 302, "http://echo:8083/port"),
            ),
            get(
                "http://echo/port-and-host",
                Want::Redirect(r, 302, "http://example.org:8083/port-and-host"),
            ),
            get(
                "http://echo/port-and-status",
                Want::Redirect(r, 301, "http://echo:8083/port-and-status"),
            ),
            get(
                "http://echo/port-and-host-and-status",
                Want::Redirect(r, 302, "http://example.org:8083/port-and-host-and-status"),
            ),
        ],
    );
}

/// MeshHTTPRouteSchemeRedirect: a scheme change without a port uses the new scheme's default.
#[test]
fn httproute_redirect_scheme() {
    let m = fixture("httproute-redirect-scheme");
    let r = "redirect-scheme";
    run(
        &m,
        &[
            get(
                "http://echo/scheme",
                Want::Redirect(r, 302, "https://echo/scheme"),
            ),
            get(
                "http://echo/scheme-and-host",
                Want::Redirect(r, 302, "https://example.org/scheme-and-host"),
            ),
            get(
                "http://echo/scheme-and-status",
                Want::Redirect(r, 301, "https://echo/scheme-and-status"),
            ),
            get(
                "http://echo/scheme-and-host-and-status",
                Want::Redirect(r, 302, "https://example.org/scheme-and-host-and-status"),
            ),
        ],
    );
}

/// MeshHTTPRouteRedirectHostAndStatus.
#[test]
fn httproute_redirect_host_and_status() {
    let m = fixture("httproute-redirect-host-and-status");
    let r = "redirect-host";
    run(
        &m,
        &[
            get(
                "http://echo/hostname-redirect",
                Want::Redirect(r, 302, "http://example.org/hostname-redirect"),
            ),
            get(
                "http://echo/host-and-status",
                Want::Redirect(r, 301, "http://example.org/host-and-status"),
            ),
        ],
    );
}

/// MeshHTTPRoute303Redirect, MeshHTTPRoute307Redirect, MeshHTTPRoute308Redirect: the path is
/// kept, only the status changes.
#[test]
fn httproute_30x_redirect() {
    for (code, dir, route, url) in [
        (
            303,
            "httproute-303-redirect",
            "redirect-303",
            "http://echo/redirect",
        ),
        (
            307,
            "httproute-307-redirect",
            "redirect-307",
            "http://echo/temporary",
        ),
        (
            308,
            "httproute-308-redirect",
            "redirect-308",
            "http://echo/permanent",
        ),
    ] {
        run(&fixture(dir), &[get(url, Want::Redirect(route, code, url))]);
    }
}

/// MeshHTTPRouteRewritePath: the backend sees the rewritten path; two rules also change request
/// headers.
#[test]
fn httproute_rewrite_path() {
    let m = fixture("httproute-rewrite-path");
    let r = "rewrite-path";
    run(
        &m,
        &[
            get(
                "http://echo/prefix/one/two",
                Want::Rewrite(r, "echo-v1", "/one/two"),
            ),
            get(
                "http://echo/strip-prefix/three",
                Want::Rewrite(r, "echo-v1", "/three"),
            ),
            get("http://echo/strip-prefix", Want::Rewrite(r, "echo-v1", "/")),
            get(
                "http://echo/full/one/two",
                Want::Rewrite(r, "echo-v1", "/one"),
            ),
            get(
                "http://echo/full/rewrite-path-and-modify-headers/test",
                Want::Rewrite(r, "echo-v1", "/test"),
            ),
            get(
                "http://echo/prefix/rewrite-path-and-modify-headers/one",
                Want::Rewrite(r, "echo-v1", "/prefix/one"),
            ),
        ],
    );
    for path in [
        "/full/rewrite-path-and-modify-headers/test",
        "/prefix/rewrite-path-and-modify-headers/one",
    ] {
        let (request, _) = header_filters(&m, CLIENT, "echo", path);
        assert_eq!(
            pairs(&request.set),
            expect_pairs(&[("X-Header-Set", "set-overwrites-values")]),
            "{path}"
        );
        assert_eq!(
            pairs(&request.add),
            expect_pairs(&[
                ("X-Header-Add", "header-val-1"),
                ("X-Header-Add-Append", "header-val-2")
            ]),
            "{path}"
        );
        assert_eq!(
            lower(&request.remove),
            vec!["x-header-remove".to_string()],
            "{path}"
        );
    }
}

/// MeshHTTPRouteRequestHeaderModifier: every case goes to echo-v1; the filters are asserted on
/// the compiled action (set replaces, add appends, remove deletes: the proxy's job).
#[test]
fn httproute_request_header_modifier() {
    let m = fixture("httproute-request-header-modifier");
    let v1 = Want::Routed("request-headers", "echo-v1");
    run(
        &m,
        &[
            with("GET", "http://echo/set", &["Some-Other-Header: val"], v1),
            with(
                "GET",
                "http://echo/set",
                &["Some-Other-Header: val", "X-Header-Set: some-other-value"],
                v1,
            ),
            with("GET", "http://echo/add", &["Some-Other-Header: val"], v1),
            with(
                "GET",
                "http://echo/add",
                &["Some-Other-Header: val", "X-Header-Add: some-other-value"],
                v1,
            ),
            with("GET", "http://echo/remove", &["X-Header-Remove: val"], v1),
            with(
                "GET",
                "http://echo/multiple",
                &[
                    "X-Header-Set-2: set-val-2",
                    "Another-Header: another-header-val",
                ],
                v1,
            ),
            with(
                "GET",
                "http://echo/case-insensitivity",
                &["x-header-set: original-val-set"],
                v1,
            ),
        ],
    );
    let (set, _) = header_filters(&m, CLIENT, "echo", "/set");
    assert_eq!(
        pairs(&set.set),
        expect_pairs(&[("X-Header-Set", "set-overwrites-values")])
    );
    assert!(set.add.is_empty() && set.remove.is_empty());
    let (add, _) = header_filters(&m, CLIENT, "echo", "/add");
    assert_eq!(
        pairs(&add.add),
        expect_pairs(&[("X-Header-Add", "add-appends-values")])
    );
    assert!(add.set.is_empty() && add.remove.is_empty());
    let (remove, _) = header_filters(&m, CLIENT, "echo", "/remove");
    assert_eq!(lower(&remove.remove), vec!["x-header-remove".to_string()]);
    let (multiple, _) = header_filters(&m, CLIENT, "echo", "/multiple");
    assert_eq!(
        pairs(&multiple.set),
        expect_pairs(&[
            ("X-Header-Set-1", "header-set-1"),
            ("X-Header-Set-2", "header-set-2")
        ])
    );
    assert_eq!(
        pairs(&multiple.add),
        expect_pairs(&[
            ("X-Header-Add-1", "header-add-1"),
            ("X-Header-Add-2", "header-add-2"),
            ("X-Header-Add-3", "header-add-3")
        ])
    );
    assert_eq!(
        lower(&multiple.remove),
        vec![
            "x-header-remove-1".to_string(),
            "x-header-remove-2".to_string()
        ]
    );
    let (ci, _) = header_filters(&m, CLIENT, "echo", "/case-insensitivity");
    assert_eq!(
        pairs(&ci.set),
        expect_pairs(&[("X-Header-Set", "header-set")])
    );
    assert_eq!(
        pairs(&ci.add),
        expect_pairs(&[("X-Header-Add", "header-add")])
    );
    assert_eq!(lower(&ci.remove), vec!["x-header-remove".to_string()]);
}

// ---------------------------------------------------------------------------------------------
// conformance/tests (core), adapted to mesh attachment

/// HTTPRoutePathMatchOrder.
#[test]
fn httproute_path_match_order() {
    let m = fixture("httproute-path-match-order");
    let r = "path-match-order";
    run(
        &m,
        &[
            get("http://echo/match/exact/one", Want::Routed(r, "echo-v3")),
            get("http://echo/match/exact", Want::Routed(r, "echo-v2")),
            get("http://echo/match", Want::Routed(r, "echo-v1")),
            get(
                "http://echo/match/prefix/one/any",
                Want::Routed(r, "echo-v2"),
            ),
            get("http://echo/match/prefix/any", Want::Routed(r, "echo-v1")),
            get("http://echo/match/any", Want::Routed(r, "echo-v3")),
        ],
    );
}

/// HTTPRouteHeaderMatching.
#[test]
fn httproute_header_matching() {
    let m = fixture("httproute-header-matching");
    let v1 = Want::Routed("header-matching", "echo-v1");
    let v2 = Want::Routed("header-matching", "echo-v2");
    run(
        &m,
        &[
            with("GET", "http://echo/", &["Version: one"], v1),
            with("GET", "http://echo/", &["Version: two"], v2),
            with(
                "GET",
                "http://echo/",
                &["Version: two", "Color: orange"],
                v1,
            ),
            with("GET", "http://echo/", &["Version: two", "Color: blue"], v2),
            with("GET", "http://echo/", &["Color: orange"], Want::NotFound),
            with(
                "GET",
                "http://echo/",
                &["Some-Other-Header: one"],
                Want::NotFound,
            ),
            with("GET", "http://echo/", &["Color: blue"], v1),
            with("GET", "http://echo/", &["Color: green"], v1),
            with("GET", "http://echo/", &["Color: red"], v2),
            with("GET", "http://echo/", &["Color: yellow"], v2),
            with("GET", "http://echo/", &["Color: purple"], Want::NotFound),
        ],
    );
}

/// HTTPRouteMethodMatching.
#[test]
fn httproute_method_matching() {
    let m = fixture("httproute-method-matching");
    let r = "method-matching";
    run(
        &m,
        &[
            with("POST", "http://echo/", &[], Want::Routed(r, "echo-v1")),
            with("GET", "http://echo/", &[], Want::Routed(r, "echo-v2")),
            with("HEAD", "http://echo/", &[], Want::NotFound),
            // Combinations with core matches.
            with("GET", "http://echo/path1", &[], Want::Routed(r, "echo-v1")),
            with(
                "PUT",
                "http://echo/",
                &["version: one"],
                Want::Routed(r, "echo-v2"),
            ),
            with(
                "POST",
                "http://echo/path2",
                &["version: two"],
                Want::Routed(r, "echo-v3"),
            ),
            // OR-ed matches.
            with(
                "PATCH",
                "http://echo/path3",
                &[],
                Want::Routed(r, "echo-v1"),
            ),
            with(
                "DELETE",
                "http://echo/path4",
                &["version: three"],
                Want::Routed(r, "echo-v1"),
            ),
            // AND-ed conditions: a subset does not match.
            with("PUT", "http://echo/", &[], Want::NotFound),
            with("DELETE", "http://echo/path4", &[], Want::NotFound),
            // Precedence.
            with(
                "PATCH",
                "http://echo/path5",
                &[],
                Want::Routed(r, "echo-v1"),
            ),
            with(
                "PATCH",
                "http://echo/",
                &["version: four"],
                Want::Routed(r, "echo-v2"),
            ),
        ],
    );
}

/// HTTPRouteExactPathMatching.
#[test]
fn httproute_exact_path_matching() {
    let m = fixture("httproute-exact-path-matching");
    let r = "exact-matching";
    run(
        &m,
        &[
            get("http://echo/one", Want::Routed(r, "echo-v1")),
            get("http://echo/two", Want::Routed(r, "echo-v2")),
            get("http://echo/", Want::NotFound),
            get("http://echo/one/example", Want::NotFound),
            get("http://echo/two/", Want::NotFound),
            get("http://echo/Two", Want::NotFound),
        ],
    );
}

/// Every fixture directory is used by a test above, and every fixture's route file names the
/// upstream test it follows.
#[test]
fn every_fixture_is_exercised_and_names_its_upstream_test() {
    let used = [
        "mesh-basic",
        "mesh-ports",
        "mesh-split",
        "mesh-consumer-route",
        "httproute-matching",
        "httproute-query-param-matching",
        "httproute-weight",
        "httproute-redirect-path",
        "httproute-redirect-port",
        "httproute-redirect-scheme",
        "httproute-redirect-host-and-status",
        "httproute-303-redirect",
        "httproute-307-redirect",
        "httproute-308-redirect",
        "httproute-rewrite-path",
        "httproute-request-header-modifier",
        "httproute-path-match-order",
        "httproute-header-matching",
        "httproute-method-matching",
        "httproute-exact-path-matching",
    ];
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/conformance");
    let mut dirs: Vec<String> = std::fs::read_dir(&root)
        .expect("fixtures")
        .map(|e| e.expect("entry"))
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    dirs.sort();
    let mut want: Vec<String> = used.iter().map(|s| s.to_string()).collect();
    want.sort();
    assert_eq!(dirs, want);
    let services =
        std::fs::read_to_string(root.join("mesh-basic/services.yaml")).expect("services");
    for d in used {
        let copy =
            std::fs::read_to_string(root.join(d).join("services.yaml")).expect("services.yaml");
        assert_eq!(
            copy, services,
            "{d}/services.yaml differs from the shared setup"
        );
        let note = if d == "mesh-basic" {
            "README.md"
        } else {
            "route.yaml"
        };
        let text = std::fs::read_to_string(root.join(d).join(note)).expect("route");
        assert!(
            text.contains("conformance/tests/") && text.contains(&format!("/{d}.")),
            "{d}/{note} does not name its upstream test"
        );
    }
}
