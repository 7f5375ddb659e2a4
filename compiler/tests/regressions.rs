//! Behaviour behind black-box findings: route hostnames that take another service's name,
//! `sectionName` on Service parents, disabled (`0s`) timeouts, misspelt kinds, case-insensitive
//! `did you mean` hints, and character columns in every output format.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;

use std::path::{Path, PathBuf};

use meshc::render::{self, HumanOptions};
use meshc::{Checked, Code, LoadOptions};

fn fixture(kind: &str, name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(kind)
        .join(name)
}

fn explain(checked: &Checked, from: &str, url: &str) -> serde_json::Value {
    meshc::explain::explain(checked, from, &[], "GET", url)
        .expect("explain")
        .json
}

const SERVICES: &str = "
apiVersion: v1
kind: Service
metadata: {name: ratings}
spec: {ports: [{name: http, port: 9080}]}
---
apiVersion: v1
kind: Service
metadata: {name: reviews}
spec: {ports: [{name: http, port: 9080}]}
---
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: shop}
spec: {ports: [{name: http, port: 9080}]}
---
apiVersion: v1
kind: Service
metadata: {name: aaa, namespace: abc}
spec: {ports: [{name: http, port: 9080}]}
";

fn route(ns: &str, name: &str, parent_ns: &str, parent: &str, hostnames: &str) -> String {
    format!(
        "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: {name}, namespace: {ns}}}
spec:
  parentRefs: [{{group: \"\", kind: Service, name: {parent}, namespace: {parent_ns}}}]
  hostnames: {hostnames}
  rules:
  - backendRefs: [{{name: {parent}, namespace: {parent_ns}, port: 9080}}]
"
    )
}

fn hostname_codes(routes: &[String]) -> Vec<Code> {
    let routes = routes.join("---\n");
    let checked = check(&[("svc.yaml", SERVICES), ("routes.yaml", &routes)]);
    codes(&checked)
        .into_iter()
        .filter(|c| *c == Code::HostnameConflict)
        .collect()
}

#[test]
fn every_name_form_of_another_service_is_a_hostname_conflict() {
    for host in [
        "ratings.default.svc.cluster.local",
        "ratings.default.svc",
        "ratings.default",
        "Ratings.Default",
        "ratings",
        // Callers in `shop` address `shop/reviews` as `reviews`.
        "reviews",
    ] {
        let r = route("abc", "hj", "abc", "aaa", &format!("[{host}]"));
        assert_eq!(
            hostname_codes(&[r]),
            vec![Code::HostnameConflict],
            "hostname `{host}` on a route of `abc/aaa`"
        );
    }
}

#[test]
fn a_route_may_name_its_own_parent_and_other_hostnames() {
    // The parent's own names, a name of its own, and a wildcard are all fine; so is a second
    // route of the same parent declaring the same hostname.
    let a = route(
        "abc",
        "a",
        "abc",
        "aaa",
        "[aaa, aaa.abc, aaa.abc.svc.cluster.local, api.example.com, \"*.example.com\"]",
    );
    let b = route("abc", "b", "abc", "aaa", "[api.example.com]");
    assert_eq!(hostname_codes(&[a, b]), Vec::<Code>::new());
}

#[test]
fn a_hostname_names_one_service() {
    let a = route("default", "a", "default", "ratings", "[api.example.com]");
    let b = route("default", "b", "abc", "aaa", "[API.example.com]");
    let routes = [a, b].join("---\n");
    let checked = check(&[("svc.yaml", SERVICES), ("routes.yaml", &routes)]);
    let d: Vec<_> = checked
        .diagnostics
        .iter()
        .filter(|d| d.code == Code::HostnameConflict)
        .collect();
    assert_eq!(d.len(), 1, "{:#?}", checked.diagnostics);
    // Reported on the later declaration (route `default/b`), naming the first.
    let (_, line, _, _, _) = render::position(&checked.sources, d[0]);
    assert_eq!(line, 15);
    assert!(d[0].help.as_deref().unwrap().contains("`default/a`"));
    assert_eq!(d[0].secondary.len(), 1);
}

#[test]
fn consumer_routes_of_different_namespaces_do_not_conflict() {
    // Each consumer route applies only to callers of its own namespace: no caller sees both.
    let a = route("shop", "a", "default", "ratings", "[api.example.com]");
    let b = route("abc", "b", "default", "reviews", "[api.example.com]");
    assert_eq!(hostname_codes(&[a.clone(), b]), Vec::<Code>::new());
    // A producer route applies to every caller, the consumer route's too.
    let c = route("default", "c", "default", "reviews", "[api.example.com]");
    assert_eq!(hostname_codes(&[a, c]), vec![Code::HostnameConflict]);
}

#[test]
fn declared_hostnames_stay_addressable() {
    let r = route("abc", "a", "abc", "aaa", "[aaa.example.com]");
    let checked = check(&[("svc.yaml", SERVICES), ("routes.yaml", &r)]);
    assert!(!checked.has_errors(), "{:#?}", checked.diagnostics);
    let e = explain(&checked, "default/reviews", "http://aaa.example.com:9080/x");
    assert_eq!(e["route"]["name"], "abc/a");
    assert_eq!(e["backends"][0]["service"], "abc/aaa");
}

#[test]
fn section_name_attaches_to_one_port_only() {
    let dir = fixture("ok", "004-section-name");
    let checked = meshc::check_dir(&dir, &LoadOptions::default());
    assert!(!checked.has_errors());
    // The consumer route of `frontend` names the `http` port: the `grpc` port keeps the
    // producer route for callers in `frontend`.
    let grpc = explain(
        &checked,
        "frontend/web",
        "http://accounts.payments:9090/accounts.v1.Accounts/Get",
    );
    assert_eq!(grpc["route"]["name"], "payments/accounts-grpc");
    let http = explain(
        &checked,
        "frontend/web",
        "http://accounts.payments:8080/users/1",
    );
    assert_eq!(http["route"]["name"], "frontend/accounts-for-frontend");
    // The producer route names the `grpc` port: on `http` no route is attached for callers
    // outside `frontend`.
    let other = explain(
        &checked,
        "payments/accounts",
        "http://accounts.payments:8080/accounts.v1.Accounts/Get",
    );
    assert_eq!(other["route"], serde_json::Value::Null);
}

const TWO_PORTS: &str = "
apiVersion: v1
kind: Service
metadata: {name: api}
spec: {ports: [{name: http, port: 8080}, {name: admin, port: 9000}]}
";

fn section_route(parent: &str) -> String {
    format!(
        "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: r}}
spec:
  parentRefs: [{{group: \"\", kind: Service, name: api, {parent}}}]
  rules:
  - backendRefs: [{{name: api, port: 9000}}]
"
    )
}

#[test]
fn section_name_and_port_must_agree() {
    let ok = check(&[
        ("svc.yaml", TWO_PORTS),
        ("r.yaml", &section_route("sectionName: admin, port: 9000")),
    ]);
    assert!(codes(&ok).is_empty(), "{:#?}", ok.diagnostics);
    let bad = check(&[
        ("svc.yaml", TWO_PORTS),
        ("r.yaml", &section_route("sectionName: admin, port: 8080")),
    ]);
    assert_eq!(codes(&bad), vec![Code::UnknownPort]);
    let typo = check(&[
        ("svc.yaml", TWO_PORTS),
        ("r.yaml", &section_route("sectionName: Admin")),
    ]);
    assert_eq!(codes(&typo), vec![Code::UnknownPort]);
    assert_eq!(
        typo.diagnostics[0].help.as_deref(),
        Some("did you mean `admin`?")
    );
    // A parent that is not a Service keeps its `sectionName` (a Gateway listener).
    let gateway = check(&[
        ("svc.yaml", TWO_PORTS),
        (
            "r.yaml",
            &section_route("sectionName: nope")
                .replace("group: \"\", kind: Service, name: api", "name: gw"),
        ),
    ]);
    assert_eq!(codes(&gateway), vec![Code::ParentNotService]);
}

#[test]
fn zero_timeouts_are_disabled_not_compared() {
    let dir = fixture("ok", "005-disabled-timeouts");
    let checked = meshc::check_dir(&dir, &LoadOptions::default());
    assert!(!checked.has_errors());
    let svc = checked.model.service("default", "reviews").unwrap();
    let body = meshc::lower::lower_sidecar(&checked, svc);
    let dest = body
        .destinations
        .iter()
        .find(|d| d.service == "default/reviews")
        .unwrap();
    let table = dest.ports[0].routes.as_ref().unwrap();
    let timeouts = |rule: u32| {
        let e = table.entries.iter().find(|e| e.rule == rule).unwrap();
        let t = &table.actions[e.action as usize].timeouts;
        (t.request_ms, t.backend_request_ms)
    };
    assert_eq!(timeouts(0), (Some(10_000), None));
    assert_eq!(timeouts(1), (None, Some(30_000)));
    assert_eq!(timeouts(2), (None, None));
    // No `request` of its own: the mesh default (15s) applies, and 15s per try fits.
    assert_eq!(timeouts(3), (Some(15_000), Some(15_000)));
}

fn kind_codes(api: &str, kind: &str) -> Vec<Code> {
    let doc = format!("apiVersion: {api}\nkind: {kind}\nmetadata: {{name: x}}\nspec: {{}}\n");
    let checked = check(&[("svc.yaml", TWO_PORTS), ("x.yaml", &doc)]);
    codes(&checked)
}

#[test]
fn misspelt_kinds_are_not_skipped_quietly() {
    assert_eq!(
        kind_codes("meshc.dev/v1alpha1", "MeshServce"),
        vec![Code::UnknownKind]
    );
    assert_eq!(
        kind_codes("meshc.dev/v1alpha1", "Gateway"),
        vec![Code::UnknownKind]
    );
    // Kubernetes kinds under meshc's apiVersion: the help names the right apiVersion.
    let doc = "apiVersion: meshc.dev/v1alpha1\nkind: Service\nmetadata: {name: x}\n";
    let checked = check(&[("svc.yaml", TWO_PORTS), ("x.yaml", doc)]);
    assert_eq!(codes(&checked), vec![Code::UnknownKind]);
    let help = checked.diagnostics[0].help.as_deref().unwrap();
    assert!(help.contains("`apiVersion: v1`"), "{help}");
    for (api, kind) in [
        ("gateway.networking.k8s.io/v1", "HTTPRoutes"),
        ("gateway.networking.k8s.io/v1beta1", "HttpRoute"),
        ("v1", "Servce"),
        ("v1", "service"),
    ] {
        assert_eq!(kind_codes(api, kind), vec![Code::MisspeltKind], "{kind}");
    }
    for (api, kind) in [
        ("gateway.networking.k8s.io/v1alpha2", "TCPRoute"),
        ("gateway.networking.k8s.io/v1", "GRPCRoute"),
        ("gateway.networking.k8s.io/v1", "BackendTLSPolicy"),
        ("v1", "Secret"),
        ("apps/v1", "Service"),
    ] {
        assert_eq!(kind_codes(api, kind), vec![Code::SkippedKind], "{kind}");
    }
}

#[test]
fn did_you_mean_compares_case_insensitively() {
    use meshc::diag::suggest;
    let methods = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH"];
    assert_eq!(suggest("get", methods), Some("GET"));
    assert_eq!(suggest("Delete", methods), Some("DELETE"));
    assert_eq!(suggest("Matches", ["path", "matches"]), Some("matches"));
    for (method, hint) in [("get", "GET"), ("Post", "POST"), ("GTE", "GET")] {
        let route = format!(
            "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: r}}
spec:
  parentRefs: [{{group: \"\", kind: Service, name: api}}]
  rules:
  - matches: [{{method: {method}}}]
    backendRefs: [{{name: api, port: 9000}}]
"
        );
        let checked = check(&[("svc.yaml", TWO_PORTS), ("r.yaml", &route)]);
        let d = checked
            .diagnostics
            .iter()
            .find(|d| d.code == Code::InvalidMethod)
            .unwrap();
        let help = d.help.as_deref().unwrap();
        assert!(
            help.ends_with(&format!("did you mean `{hint}`?")),
            "{method}: {help}"
        );
    }
}

/// Every `[file:line:col]` header of a human report (one per snippet).
fn human_headers(text: &str) -> Vec<String> {
    text.split("╭─[")
        .skip(1)
        .filter_map(|s| s.find(']').map(|end| s[..end].to_string()))
        .collect()
}

#[test]
fn human_header_shows_the_machine_formats_position() {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(fixture("err", ""))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    dirs.sort();
    let mut compared = 0;
    for dir in dirs {
        let checked = meshc::check_dir(&dir, &LoadOptions::default());
        for d in &checked.diagnostics {
            let Some(p) = &d.primary else { continue };
            if checked
                .sources
                .get(p.loc.file)
                .is_none_or(|f| f.text.is_empty())
            {
                continue;
            }
            let text = render::human_one(&checked.sources, d, HumanOptions::default());
            let headers = human_headers(&text);
            let (file, line, col, _, _) = render::position(&checked.sources, d);
            let primary = format!("{file}:{line}:{col}");
            assert!(
                headers.contains(&primary),
                "{}: no header `{primary}`:\n{text}",
                dir.display()
            );
            // A snippet without the primary label starts at a secondary one.
            let labels: Vec<String> = std::iter::once(primary)
                .chain(d.secondary.iter().map(|l| {
                    let (line, col) = checked.sources.line_col(l.loc);
                    format!("{}:{line}:{col}", checked.sources.path(l.loc.file))
                }))
                .collect();
            for h in &headers {
                assert!(
                    labels.contains(h),
                    "{}: header `{h}`:\n{text}",
                    dir.display()
                );
            }
            compared += 1;
        }
    }
    assert!(compared > 50);
    // The fixture with multi-byte characters before the error.
    let dir = fixture("err", "MC0201-invalid-port-non-ascii");
    let checked = meshc::check_dir(&dir, &LoadOptions::default());
    let json = render::json_value(&checked.sources, &checked.diagnostics);
    assert_eq!(json["diagnostics"][0]["column"], 127);
    let text = render::human(
        &checked.sources,
        &checked.diagnostics,
        HumanOptions::default(),
    );
    assert_eq!(human_headers(&text), vec!["mesh.yaml:3:127".to_string()]);
}

/// `kubectl get svc,httproute -o yaml` prints one `v1` `List`: its items are read as the
/// resources they are (they were skipped with a note, and the mesh lost its Services), and a
/// mistake inside an item points into the item.
#[test]
fn a_kubectl_list_is_read_item_by_item() {
    let list = "apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Service
  metadata: {name: reviews}
  spec: {ports: [{name: http, port: 9080}]}
- apiVersion: v1
  kind: Service
  metadata: {name: ratings}
  spec: {ports: [{name: http, port: 9080}]}
- apiVersion: gateway.networking.k8s.io/v1
  kind: HTTPRoute
  metadata: {name: reviews}
  spec:
    parentRefs: [{group: \"\", kind: Service, name: reviews}]
    rules: [{backendRefs: [{name: ratings, port: 9080}]}]
";
    let c = check(&[("list.yaml", list)]);
    assert!(codes(&c).is_empty(), "{:?}", c.diagnostics);
    let names: Vec<String> = c.model.services.iter().map(|s| s.key()).collect();
    assert_eq!(names, ["default/ratings", "default/reviews"]);
    let e = explain(&c, "ratings", "http://reviews:9080/x");
    assert_eq!(e["route"]["name"], "default/reviews", "{e}");
    assert_eq!(e["backends"][0]["service"], "default/ratings", "{e}");

    let bad = list.replace(
        "port: 9080}]}\n- apiVersion: v1",
        "prot: 9080}]}\n- apiVersion: v1",
    );
    let c = check(&[("list.yaml", &bad)]);
    let d = c
        .diagnostics
        .iter()
        .find(|d| d.code == Code::UnknownField)
        .expect("the misspelt field inside the first item is reported");
    let (file, line, col, _, _) = render::position(&c.sources, d);
    assert_eq!((file.as_str(), line, col), ("list.yaml", 7, 31), "{d:?}");
}

// Every problem in one run, and no finding that is only a consequence of another error.

/// `CODE file:line:col` of every diagnostic, in output order.
fn findings(checked: &Checked) -> Vec<String> {
    checked
        .diagnostics
        .iter()
        .map(|d| {
            let (file, line, col, _, _) = render::position(&checked.sources, d);
            format!("{} {file}:{line}:{col}", d.code.as_str())
        })
        .collect()
}

const BOOKINFO: &str = "
apiVersion: v1
kind: Service
metadata: {name: reviews}
spec: {ports: [{name: http, port: 9080}]}
---
apiVersion: v1
kind: Service
metadata: {name: ratings}
spec: {ports: [{name: http, port: 9080}]}
";

/// The black-box tester's route: bad metadata, then a dozen problems in the spec.
const BAD_METADATA_ROUTE: &str = r#"apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: Reviews_Route
  creationTimestamp: "yesterday"
spec:
  parentRefs:
  - name: reviews
  - group: ""
    kind: Service
    name: reviews
    port: "9080"
  rules:
  - matches:
    - path: {type: PathPrefix, value: v1}
      method: get
    - path: {type: Exact, value: /a}
      headers:
      - {name: "x user", value: "1"}
    filters:
    - type: URLRewrite
      urlRewrite:
        path: {type: ReplacePrefixMatch, replacePrefixMatch: /b}
    - type: RequestRedirect
      requestRedirect: {statusCode: 307, hostname: "bad_host!"}
    backendRefs:
    - {name: ratings, port: 9080, weight: 2000000}
    timeouts: {request: 1.5s, backendRequest: 2s}
  - backendRefs:
    - {name: ratings, port: 9080, weight: 0}
    - {name: reviews, port: 9080, weight: 0}
    retry: {attempts: 2, codes: [200]}
    filters:
    - type: RequestRedirect
      requestRedirect: {statusCode: 305}
    - type: RequestMirror
      requestMirror: {backendRef: {name: ratings, port: 9080}}
"#;

#[test]
fn invalid_metadata_does_not_hide_the_spec() {
    let checked = check(&[("svc.yaml", BOOKINFO), ("route.yaml", BAD_METADATA_ROUTE)]);
    assert_eq!(
        findings(&checked),
        [
            "MC0105 route.yaml:4:9",   // name
            "MC0208 route.yaml:5:22",  // creationTimestamp
            "MC0306 route.yaml:8:11",  // parent defaults to a Gateway
            "MC0106 route.yaml:12:11", // quoted port
            "MC0205 route.yaml:15:39", // path `v1`
            "MC0206 route.yaml:16:15", // method `get`, in the same match as the bad path
            "MC0204 route.yaml:19:16", // header `x user`
            "MC0506 route.yaml:21:7",  // rewrite and redirect
            "MC0507 route.yaml:21:7",  // ReplacePrefixMatch with two matches
            "MC0210 route.yaml:25:52", // redirect hostname
            "MC0209 route.yaml:27:43", // weight
            "MC0202 route.yaml:28:25", // `1.5s`
            "MC0501 route.yaml:29:5",  // all weights 0
            "MC0502 route.yaml:32:12", // no budget at all
            "MC0207 route.yaml:32:34", // retry code 200
            "MC0207 route.yaml:35:37", // redirect status 305
            "MC0505 route.yaml:36:7",  // RequestMirror
        ]
    );
}

#[test]
fn a_service_without_usable_metadata_still_has_its_spec_checked() {
    let svc = "apiVersion: v1
kind: Service
metadata: {name: Bad_Name}
spec: {ports: [{name: http, port: 70000}]}
---
apiVersion: v1
kind: Service
spec: {ports: [{name: http, port: 0}]}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: Shop_}
spec: {ports: [{name: http, port: 99999}]}
---
apiVersion: v1
kind: Service
metadata: [web]
spec: {ports: [{name: http, port: -1}]}
";
    let checked = check(&[("svc.yaml", svc)]);
    assert_eq!(
        findings(&checked),
        [
            "MC0105 svc.yaml:3:18",  // invalid name
            "MC0201 svc.yaml:4:35",  // and its spec
            "MC0103 svc.yaml:6:1",   // no metadata
            "MC0201 svc.yaml:8:35",  // and its spec
            "MC0105 svc.yaml:12:34", // invalid namespace
            "MC0201 svc.yaml:13:35", // and its spec
            "MC0102 svc.yaml:17:11", // metadata not a mapping
            "MC0201 svc.yaml:18:35", // and its spec
        ]
    );
    // None of them is usable: no service is left in the model.
    assert!(checked.model.services.is_empty());
}

const ONE_ROUTE: &str = "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: reviews}
spec:
  parentRefs: [{group: \"\", kind: Service, name: reviews}]
  rules:
";

fn route_findings(rules: &str) -> Vec<String> {
    let route = format!("{ONE_ROUTE}{rules}");
    findings(&check(&[("svc.yaml", BOOKINFO), ("route.yaml", &route)]))
}

#[test]
fn every_field_of_a_match_is_checked() {
    assert_eq!(
        route_findings(
            "  - matches:
    - path: {type: PathPrefix, value: v1}
      method: get
      headers:
      - {name: \"x user\", type: RegularExpression, value: \"ja(son\"}
      queryParams:
      - {name: q, type: Regex, value: x}
    - path: {type: Prefix, value: /a}
      method: GIT
    backendRefs: [{name: ratings, port: 9080}]
"
        ),
        [
            "MC0205 route.yaml:8:39",  // path
            "MC0206 route.yaml:9:15",  // method
            "MC0204 route.yaml:11:16", // header name
            "MC0203 route.yaml:11:58", // and its regex
            "MC0104 route.yaml:13:25", // query type
            "MC0104 route.yaml:14:20", // path type
            "MC0206 route.yaml:15:15", // method of the second match
        ]
    );
}

#[test]
fn every_unnamed_port_of_a_multi_port_service_is_reported() {
    let svc = "apiVersion: v1
kind: Service
metadata: {name: multi}
spec:
  ports:
  - port: 80
  - name: https
    port: 443
  - port: 9090
  - port: 9091
";
    assert_eq!(
        findings(&check(&[("svc.yaml", svc)])),
        [
            "MC0103 svc.yaml:6:11",
            "MC0103 svc.yaml:9:11",
            "MC0103 svc.yaml:10:11"
        ]
    );
}

#[test]
fn a_match_with_an_error_neither_shadows_nor_is_shadowed() {
    // A broken regex, a misspelt match field, a path on the rule instead of in a match, a
    // `matches` that is not a list: each rule would read as a catch-all and shadow the last.
    for broken in [
        "  - matches:
    - headers: [{name: end-user, type: RegularExpression, value: \"ja(son\"}]
    backendRefs: [{name: ratings, port: 9080}]
",
        "  - matches:
    - header: [{name: end-user, value: jason}]
    backendRefs: [{name: ratings, port: 9080}]
",
        "  - path: {type: PathPrefix, value: /v1}
    backendRefs: [{name: ratings, port: 9080}]
",
        "  - matches: {path: {value: /v1}}
    backendRefs: [{name: ratings, port: 9080}]
",
        "  - matches:
    - path: {type: PathPrefix, value: v1}
    backendRefs: [{name: ratings, port: 9080}]
",
    ] {
        let rules = format!("{broken}  - backendRefs: [{{name: reviews, port: 9080}}]\n");
        let found = route_findings(&rules);
        assert_eq!(found.len(), 1, "{broken}: {found:?}");
        assert!(
            ["MC0203", "MC0101", "MC0102", "MC0205"]
                .iter()
                .any(|c| found[0].starts_with(c)),
            "{broken}: {found:?}"
        );
    }
    // A later catch-all is still shadowed by an earlier valid one, across a broken match.
    assert_eq!(
        route_findings(
            "  - backendRefs: [{name: ratings, port: 9080}]
  - matches:
    - path: {type: PathPrefix, value: v1}
    backendRefs: [{name: ratings, port: 9080}]
  - backendRefs: [{name: reviews, port: 9080}]
"
        ),
        ["MC0205 route.yaml:9:39", "MC0504 route.yaml:11:5"]
    );
}

#[test]
fn a_misspelt_backend_refs_is_not_also_a_rule_without_backends() {
    assert_eq!(
        route_findings(
            "  - backendRef: [{name: ratings, port: 9080}]
  - matches: [{path: {value: /b}}]
    backendRefs: [{port: 9080}]
  - matches: [{path: {value: /c}}]
    backendRefs: 5
"
        ),
        [
            "MC0101 route.yaml:7:5",
            "MC0103 route.yaml:9:19",
            "MC0102 route.yaml:11:18"
        ]
    );
    // Without an error, a rule without backends is still reported.
    assert_eq!(
        route_findings("  - timeouts: {request: 1s}\n"),
        ["MC0509 route.yaml:7:5"]
    );
}

#[test]
fn an_invalid_retry_budget_is_not_a_missing_one() {
    let native = "apiVersion: meshc.dev/v1alpha1
kind: MeshService
metadata: {name: api}
spec: {ports: [{name: http, port: 8080}]}
---
apiVersion: meshc.dev/v1alpha1
kind: MeshRoute
metadata: {name: api}
spec:
  parentRefs: [{name: api}]
  rules:
  - backendRefs: [{name: api, port: 8080}]
    retry: {attempts: 2, budget: {percent: 150}}
  - matches: [{path: {value: /b}}]
    backendRefs: [{name: api, port: 8080}]
    retry: {attempts: 2, budget: many}
  - matches: [{path: {value: /c}}]
    backendRefs: [{name: api, port: 8080}]
    retry: {attempts: 2}
";
    assert_eq!(
        findings(&check(&[("mesh.yaml", native)])),
        [
            "MC0104 mesh.yaml:13:44",
            "MC0102 mesh.yaml:16:34",
            // The rule without any budget is still reported.
            "MC0502 mesh.yaml:19:12",
        ]
    );
    // An invalid mesh-wide default budget is not a missing one either.
    let mesh = "apiVersion: meshc.dev/v1alpha1
kind: Mesh
metadata: {name: mesh}
spec:
  defaults:
    retryBudget: {percent: 101}
";
    let route = format!(
        "{ONE_ROUTE}  - backendRefs: [{{name: ratings, port: 9080}}]\n    retry: {{attempts: 2}}\n"
    );
    assert_eq!(
        findings(&check(&[
            ("mesh.yaml", mesh),
            ("svc.yaml", BOOKINFO),
            ("route.yaml", &route)
        ])),
        ["MC0104 mesh.yaml:6:28"]
    );
}

#[test]
fn a_route_of_unknown_age_is_not_ranked_against_other_routes() {
    let routes = "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: a, creationTimestamp: \"2024-01-01T00:00:00Z\"}
spec:
  parentRefs: [{group: \"\", kind: Service, name: reviews}]
  rules:
  - matches: [{path: {value: /v1}}]
    backendRefs: [{name: ratings, port: 9080}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: b, creationTimestamp: \"last week\"}
spec:
  parentRefs: [{group: \"\", kind: Service, name: reviews}]
  rules:
  - matches: [{path: {value: /v1}}]
    backendRefs: [{name: reviews, port: 9080}]
  - matches: [{path: {value: /v1}}]
    backendRefs: [{name: ratings, port: 9080}]
";
    // With a valid timestamp, or none, `b` would get MC0404 against `a`; within `b`, rule 1 is
    // still shadowed by its own rule 0.
    assert_eq!(
        findings(&check(&[("svc.yaml", BOOKINFO), ("routes.yaml", routes)])),
        ["MC0208 routes.yaml:12:40", "MC0504 routes.yaml:18:15"]
    );
    let valid = routes.replace("last week", "2024-02-01T00:00:00Z");
    let found = findings(&check(&[("svc.yaml", BOOKINFO), ("routes.yaml", &valid)]));
    assert!(
        found.contains(&"MC0404 routes.yaml:16:15".to_string()),
        "{found:?}"
    );
}

#[test]
fn a_version_defined_twice_is_listed_once() {
    let mesh = "apiVersion: meshc.dev/v1alpha1
kind: MeshService
metadata: {name: api}
spec:
  ports: [{name: http, port: 8080}]
  versions: [{name: v1}, {name: v1}, {name: canary}]
---
apiVersion: meshc.dev/v1alpha1
kind: MeshRoute
metadata: {name: api}
spec:
  parentRefs: [{name: api}]
  rules:
  - backendRefs: [{name: api, port: 8080, version: v3}]
";
    let checked = check(&[("mesh.yaml", mesh)]);
    let d = checked
        .diagnostics
        .iter()
        .find(|d| d.code == Code::UnknownVersion)
        .expect("MC0305");
    assert_eq!(d.help.as_deref(), Some("versions: `v1`, `canary`"));
}

#[test]
fn a_duplicate_port_name_points_at_the_name() {
    let svc = "apiVersion: v1
kind: Service
metadata: {name: api}
spec:
  ports:
  - name: metrics
    port: 9090
  - name: metrics
    port: 9091
";
    let checked = check(&[("svc.yaml", svc)]);
    assert_eq!(findings(&checked), ["MC0402 svc.yaml:8:11"]);
    // The first use is the secondary label.
    let first = checked
        .sources
        .line_col(checked.diagnostics[0].secondary[0].loc);
    assert_eq!(first, (6, 11));
}

#[test]
fn a_document_that_is_not_a_mapping_is_not_a_resource() {
    let text = "- name: web\n---\nweb\n---\n42\n---\napiVersion: v1\n";
    assert_eq!(
        findings(&check(&[("mesh.yaml", text)])),
        [
            "MC0007 mesh.yaml:1:1",
            "MC0007 mesh.yaml:3:1",
            "MC0007 mesh.yaml:5:1",
            "MC0007 mesh.yaml:7:1"
        ]
    );
}

/// Each service port reaches its own application port (the Service's `targetPort`, or the port
/// itself), recorded in the sidecar's `app_ports` where it differs from `app_port`; a `Sidecar`
/// that sets the application port sends every port there. A `targetPort` that names a container
/// port is unknown: MC0012.
#[test]
fn each_service_port_reaches_its_own_application_port() {
    let svc = |ports: &str| {
        format!("apiVersion: v1\nkind: Service\nmetadata: {{name: api}}\nspec:\n  ports:\n{ports}")
    };
    let app_ports = |text: &str| {
        let c = check(&[("svc.yaml", text)]);
        assert!(
            !codes(&c).contains(&Code::UncertainAppPort),
            "{:?}",
            c.diagnostics
        );
        let svc = c.model.service("default", "api").expect("api");
        let info = meshc::lower::sidecar_info(&c.model, svc);
        let ports: Vec<(u16, u16)> = info
            .app_ports
            .iter()
            .map(|a| (a.port, a.app_port))
            .collect();
        (info.app_port, ports)
    };
    let explicit = svc(
        "  - {name: http, port: 8080, targetPort: 8081}\n  - {name: grpc, port: 9000, targetPort: 9001}\n",
    );
    assert_eq!(app_ports(&explicit), (8081, vec![(9000, 9001)]));
    let implicit = svc("  - {name: http, port: 80}\n  - {name: http-alt, port: 8080}\n");
    assert_eq!(app_ports(&implicit), (80, vec![(8080, 8080)]));
    let same = svc(
        "  - {name: http, port: 80, targetPort: 8080}\n  - {name: alt, port: 81, targetPort: 8080}\n",
    );
    assert_eq!(app_ports(&same), (8080, vec![]));
    let sidecar = "---\napiVersion: meshc.dev/v1alpha1\nkind: Sidecar\nmetadata: {name: api}\nspec: {service: api, app: {port: 7000}}\n";
    assert_eq!(app_ports(&format!("{explicit}{sidecar}")), (7000, vec![]));

    let named = svc("  - {name: http, port: 80, targetPort: web}\n");
    let found = |text: &str| codes(&check(&[("svc.yaml", text)])).contains(&Code::UncertainAppPort);
    assert!(found(&named));
    assert!(
        !found(&format!("{named}{sidecar}")),
        "the Sidecar states the port"
    );
}

/// UDP and SCTP ports, and ExternalName Services, are not carried by the sidecars: MC0013, and
/// they are left out of the model (a UDP port beside a TCP port of the same number is no
/// duplicate; a Service with no port left is left out whole).
#[test]
fn what_the_mesh_does_not_carry_is_left_out_and_said() {
    let text = std::fs::read_to_string(fixture("err", "MC0013-not-meshed").join("services.yaml"))
        .expect("fixture");
    let c = check(&[("services.yaml", &text)]);
    assert_eq!(
        codes(&c),
        [Code::NotMeshed, Code::NotMeshed, Code::NotMeshed],
        "{:?}",
        c.diagnostics
    );
    let services: Vec<(String, Vec<u16>)> = c
        .model
        .services
        .iter()
        .map(|s| (s.key(), s.ports.iter().map(|p| p.port).collect()))
        .collect();
    assert_eq!(services, [("default/dns".to_string(), vec![53])]);
}
