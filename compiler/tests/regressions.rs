//! Behaviour behind black-box findings: route hostnames that take another service's name,
//! `sectionName` on Service parents, disabled (`0s`) timeouts, misspelt kinds, case-insensitive
//! `did you mean` hints, and character columns in every output format.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use meshc::render::{self, HumanOptions};
use meshc::{Checked, Code, LoadOptions};

fn fixture(kind: &str, name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(kind)
        .join(name)
}

fn check(files: &[(&str, &str)]) -> Checked {
    meshc::check_sources(
        files
            .iter()
            .map(|(p, t)| (p.to_string(), t.to_string()))
            .collect(),
        &LoadOptions::default(),
    )
}

fn codes(checked: &Checked) -> Vec<Code> {
    checked.diagnostics.iter().map(|d| d.code).collect()
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
        ("gateway.networking.k8s.io/v1beta1", "ReferenceGrant"),
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
