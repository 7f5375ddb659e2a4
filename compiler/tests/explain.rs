//! `meshc explain` answers what mesh-proxy does with the same request: the cases where they
//! disagreed (method case, CONNECT, userinfo, header syntax, empty port, repeated headers,
//! empty `replacePrefixMatch`), and what the JSON tells about the request on its way.

mod common;

use meshc::Checked;
use meshc::explain::{Explanation, explain};
use serde_json::json;

const SERVICES: &str = r#"
apiVersion: meshc.dev/v1alpha1
kind: Mesh
metadata: {name: t}
spec:
  trustDomain: t.test
  authorization: {contextHeaders: [x-debug, cookie]}
---
apiVersion: meshc.dev/v1alpha1
kind: MeshService
metadata: {name: client}
spec: {ports: [{name: http, port: 80}]}
---
apiVersion: meshc.dev/v1alpha1
kind: MeshService
metadata: {name: api}
spec: {ports: [{name: http, port: 80}]}
---
apiVersion: meshc.dev/v1alpha1
kind: MeshService
metadata: {name: other}
spec: {ports: [{name: http, port: 80}]}
"#;

const PERMIT: &str = r#"@id("client-all") permit (principal == Workload::"default/client", action, resource);
"#;

fn mesh(routes: &str, policies: &str) -> Checked {
    let checked = common::check(&[
        ("services.yaml", SERVICES),
        ("routes.yaml", routes),
        ("policies.cedar", policies),
    ]);
    assert!(!checked.has_errors(), "{:#?}", checked.diagnostics);
    checked
}

fn ask(checked: &Checked, headers: &[&str], method: &str, url: &str) -> Explanation {
    let headers: Vec<String> = headers.iter().map(|h| h.to_string()).collect();
    explain(checked, "client", &headers, method, url).expect("explain")
}

/// The services the request goes to (weight above 0), short names.
fn served_by(e: &Explanation) -> Vec<String> {
    e.json["backends"]
        .as_array()
        .expect("backends")
        .iter()
        .filter(|b| b["weight"].as_u64() > Some(0))
        .map(|b| b["service"].as_str().expect("service").to_string())
        .collect()
}

/// Methods are case-sensitive (RFC 9110 section 9.1), at the sidecar and so in explain: a
/// standard method in other case (`delete`) is refused with 400 before routing, and an extension
/// method is taken as sent (Cedar's action for `purge` is `Action::"purge"`).
#[test]
fn the_method_is_used_as_sent() {
    let routes = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: api}
spec:
  parentRefs: [{group: "", kind: Service, name: api, port: 80}]
  rules:
    - matches: [{path: {type: PathPrefix, value: /}, method: DELETE}]
      backendRefs: [{name: other, port: 80}]
    - backendRefs: [{name: api, port: 80}]
"#;
    let policies = format!(
        "{PERMIT}{}",
        r#"@id("no-post-to-api") forbid (principal, action == Action::"POST", resource == Service::"default/api");
@id("no-lower-purge") forbid (principal, action, resource) when { context.method == "purge" };
"#
    );
    let m = mesh(routes, &policies);

    let e = ask(&m, &[], "DELETE", "http://api/items/1");
    assert_eq!(served_by(&e), ["default/other"], "{}", e.json);
    assert_eq!(e.json["route"]["rule"], 0);
    let e = ask(&m, &[], "POST", "http://api/items/1");
    assert_eq!(e.json["status"], 403, "{}", e.json);
    assert_eq!(e.json["authz"]["policies"], json!(["no-post-to-api"]));

    // A standard method in other case is another method to the routes and the policies (RFC
    // 9110 section 9.1), so the sidecars refuse it before routing (an application that
    // upper-cases methods would run `POST` past the forbid above), and explain says so.
    for method in ["post", "delete", "Get"] {
        let e = ask(&m, &[], method, "http://api/items/1");
        assert_eq!(e.json["status"], 400, "{method}: {}", e.json);
        assert!(e.json["route"].is_null() && e.json["backends"] == json!([]));
        assert!(
            e.json["refused"]
                .as_str()
                .is_some_and(|r| r.contains("methods are case-sensitive")),
            "{}",
            e.json
        );
        assert!(
            e.human.starts_with(&format!("{method} http://api/items/1")),
            "{}",
            e.human
        );
    }
    // Other methods are taken as sent, case included: `context.method` too.
    let e = ask(&m, &[], "purge", "http://api/items/1");
    assert_eq!(
        e.json["authz"]["policies"],
        json!(["no-lower-purge"]),
        "{}",
        e.json
    );
    let e = ask(&m, &[], "PURGE", "http://api/items/1");
    assert_eq!(e.json["authz"]["decision"], "allow", "{}", e.json);
}

/// What the caller's sidecar answers before routing: userinfo 400 (RFC 9110 section 4.2.4),
/// `CONNECT` 501; the human output says why, the JSON in `refused`.
#[test]
fn requests_the_sidecar_refuses_before_routing() {
    let m = mesh("", PERMIT);
    let e = ask(&m, &[], "CONNECT", "http://api:80/x");
    assert_eq!(e.json["status"], 501, "{}", e.json);
    assert!(e.json["route"].is_null());
    assert_eq!(e.json["backends"], json!([]));
    assert_eq!(e.json["authz"]["decision"], "not evaluated");
    assert!(
        e.json["refused"]
            .as_str()
            .is_some_and(|r| r.contains("CONNECT is not supported")),
        "{}",
        e.json
    );
    assert!(e.human.contains("the sidecar answers 501"), "{}", e.human);
    assert!(e.human.contains("status: 501"), "{}", e.human);
    // `connect` is `CONNECT` in other case: refused as such (400), before the 501.
    assert_eq!(ask(&m, &[], "connect", "http://api/x").json["status"], 400);

    for url in ["http://user@api:80/x", "http://user:pw@api/x"] {
        let e = ask(&m, &[], "GET", url);
        assert_eq!(e.json["status"], 400, "{url}: {}", e.json);
        assert!(e.json["backends"].as_array().is_some_and(Vec::is_empty));
        assert!(
            e.json["refused"]
                .as_str()
                .is_some_and(|r| r.contains("userinfo")),
            "{url}: {}",
            e.json
        );
        assert!(e.human.contains("answers 400"), "{}", e.human);
    }
    // Userinfo is refused before the path or the method are looked at, as the sidecar does.
    let e = ask(&m, &[], "CONNECT", "http://u@api/x%2F..");
    assert_eq!(e.json["status"], 400, "{}", e.json);
    // An accepted request refuses nothing.
    assert!(ask(&m, &[], "GET", "http://api/x").json["refused"].is_null());
}

/// RFC 3986 section 3.2.3: an empty port is the default one.
#[test]
fn an_empty_port_is_the_default_port() {
    let m = mesh("", PERMIT);
    let e = ask(&m, &[], "GET", "http://api:/x");
    assert_eq!(e.json["status"], 200, "{}", e.json);
    assert_eq!(served_by(&e), ["default/api"]);
    assert_eq!(e.json, ask(&m, &[], "GET", "http://api/x").json);
    let u = meshc::explain::parse_url("http://api:/x").expect("url");
    assert_eq!((u.host.as_str(), u.port), ("api", None));
    assert!(meshc::explain::parse_url("http://api:x/").is_err());
}

/// A `-H` the sidecar's HTTP parser would refuse (RFC 9112 section 5.1) is a usage error: no
/// request carries it.
#[test]
fn malformed_header_lines_are_usage_errors() {
    let m = mesh("", PERMIT);
    let err =
        |h: &str| explain(&m, "client", &[h.to_string()], "GET", "http://api/x").expect_err(h);
    let e = err("x-tier : gold");
    assert!(
        e.contains("no whitespace is allowed between a field name and its colon"),
        "{e}"
    );
    assert!(e.contains("`x-tier : gold`"), "{e}");
    let e = err("x tier: gold");
    assert!(e.contains("`x tier` is not a valid field name"), "{e}");
    assert!(err(": gold").contains("not a valid field name"));
    assert!(err("x-tier: a\u{7}b").contains("control character"));
    assert!(err("x-tier").contains("is not `Name: value`"));
    // Optional whitespace around the value is fine, and so are colons inside it.
    let e = ask(
        &m,
        &["x-tier:gold", "x-at: \t a:b \t"],
        "GET",
        "http://api/x",
    );
    assert_eq!(e.json["status"], 200);
}

/// A header given twice is one value, `, `-joined in order (RFC 9110 section 5.3), for route
/// matching and for Cedar, as the sidecar reads it; cookies join with `; `.
#[test]
fn repeated_headers_are_combined() {
    let routes = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: api}
spec:
  parentRefs: [{group: "", kind: Service, name: api, port: 80}]
  rules:
    - matches: [{path: {type: PathPrefix, value: /}, headers: [{name: x-debug, value: "0"}]}]
      backendRefs: [{name: other, port: 80}]
    - matches: [{path: {type: PathPrefix, value: /}, headers: [{name: x-debug, value: "0, 1"}]}]
      backendRefs: [{name: api, port: 80}]
    - backendRefs: [{name: api, port: 80}]
"#;
    let policies = format!(
        "{PERMIT}{}",
        r#"@id("no-debug") forbid (principal, action, resource) when { context.headers has "x-debug" && context.headers["x-debug"] like "*1*" };
@id("no-b-cookie") forbid (principal, action, resource) when { context.headers has "cookie" && context.headers["cookie"] == "a=1; b=2" };
"#
    );
    let m = mesh(routes, &policies);
    let e = ask(&m, &["x-debug: 0"], "GET", "http://api/x");
    assert_eq!(e.json["route"]["rule"], 0, "{}", e.json);
    assert_eq!(e.json["authz"]["decision"], "allow", "{}", e.json);
    let e = ask(&m, &["x-debug: 0", "X-Debug: 1"], "GET", "http://api/x");
    assert_eq!(e.json["route"]["rule"], 1, "`0, 1`: {}", e.json);
    assert_eq!(e.json["status"], 403, "{}", e.json);
    assert_eq!(e.json["authz"]["policies"], json!(["no-debug"]));
    let e = ask(&m, &["cookie: a=1", "cookie: b=2"], "GET", "http://api/x");
    assert_eq!(
        e.json["authz"]["policies"],
        json!(["no-b-cookie"]),
        "{}",
        e.json
    );
}

/// In enforce mode a denied request is answered 403, and the human output says so in its
/// `status:` line, as the JSON does.
#[test]
fn human_status_is_the_answer_after_authorization() {
    let policies = format!(
        "{PERMIT}{}",
        r#"@id("no-delete") forbid (principal, action == Action::"DELETE", resource);
"#
    );
    let m = mesh("", &policies);
    let e = ask(&m, &[], "DELETE", "http://api/x");
    assert_eq!(e.json["status"], 403);
    let statuses: Vec<&str> = e
        .human
        .lines()
        .filter_map(|l| l.trim().strip_prefix("status: "))
        .collect();
    assert_eq!(statuses, ["403"], "{}", e.human);
    let e = ask(&m, &[], "GET", "http://api/x");
    let statuses: Vec<&str> = e
        .human
        .lines()
        .filter_map(|l| l.trim().strip_prefix("status: "))
        .collect();
    assert_eq!(statuses, ["200"], "{}", e.human);
}

/// Gateway API's `replacePrefixMatch: ""` removes the matched prefix.
#[test]
fn an_empty_replace_prefix_match_removes_the_prefix() {
    let routes = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: api}
spec:
  parentRefs: [{group: "", kind: Service, name: api, port: 80}]
  rules:
    - matches: [{path: {type: PathPrefix, value: /foo}}]
      filters:
        - type: URLRewrite
          urlRewrite: {path: {type: ReplacePrefixMatch, replacePrefixMatch: ""}}
      backendRefs: [{name: api, port: 80}]
    - matches: [{path: {type: PathPrefix, value: /old}}]
      filters:
        - type: RequestRedirect
          requestRedirect: {path: {type: ReplacePrefixMatch, replacePrefixMatch: ""}}
"#;
    let m = mesh(routes, PERMIT);
    for (path, rewritten) in [("/foo/bar", "/bar"), ("/foo", "/"), ("/foo/", "/")] {
        let e = ask(&m, &[], "GET", &format!("http://api{path}"));
        assert_eq!(e.json["rewrite"]["path"], rewritten, "{path}: {}", e.json);
        assert!(
            e.human
                .contains(&format!("path rewritten to `{rewritten}`")),
            "{}",
            e.human
        );
    }
    let e = ask(&m, &[], "GET", "http://api/old/x?q=1");
    assert_eq!(
        e.json["redirect"]["location"], "http://api/x?q=1",
        "{}",
        e.json
    );
    // Still a path error elsewhere: `replaceFullPath` must start with `/`.
    let bad = common::check(&[
        ("services.yaml", SERVICES),
        (
            "routes.yaml",
            &routes.replace(
                "type: ReplacePrefixMatch, replacePrefixMatch: \"\"}}\n      backendRefs",
                "type: ReplaceFullPath, replaceFullPath: \"\"}}\n      backendRefs",
            ),
        ),
    ]);
    assert_eq!(common::codes(&bad), [meshc::Code::InvalidPath]);
}

/// The JSON tells what happens to the request on its way, as the human output does: URL
/// rewrite, header modifiers, timeouts and retries of the matched rule.
#[test]
fn json_tells_what_the_rule_does_to_the_request() {
    let routes = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: api}
spec:
  parentRefs: [{group: "", kind: Service, name: api, port: 80}]
  rules:
    - matches: [{path: {type: PathPrefix, value: /old}}]
      filters:
        - type: URLRewrite
          urlRewrite: {hostname: rewritten.example, path: {type: ReplacePrefixMatch, replacePrefixMatch: /new}}
        - type: RequestHeaderModifier
          requestHeaderModifier:
            set: [{name: x-env, value: prod}]
            add: [{name: x-added-by-mesh, value: "1"}]
            remove: [x-drop-me]
        - type: ResponseHeaderModifier
          responseHeaderModifier: {add: [{name: x-served-by, value: mesh}], remove: [server]}
      timeouts: {request: 10s, backendRequest: 2s}
      retry: {attempts: 2, codes: [503], backoff: 25ms}
      backendRefs: [{name: api, port: 80}]
    - backendRefs: [{name: api, port: 80}]
"#;
    let m = mesh(routes, PERMIT);
    let e = ask(&m, &[], "GET", "http://api/old/x");
    let j = &e.json;
    assert_eq!(
        j["rewrite"],
        json!({"path": "/new/x", "hostname": "rewritten.example"})
    );
    assert_eq!(
        j["request_headers"],
        json!({
            "set": [{"name": "x-env", "value": "prod"}],
            "add": [{"name": "x-added-by-mesh", "value": "1"}],
            "remove": ["x-drop-me"],
        })
    );
    assert_eq!(
        j["response_headers"],
        json!({"set": [], "add": [{"name": "x-served-by", "value": "mesh"}], "remove": ["server"]})
    );
    assert_eq!(
        j["timeouts"],
        json!({"request_ms": 10000, "backend_request_ms": 2000})
    );
    assert_eq!(j["retry"]["attempts"], 2, "{j}");
    assert_eq!(j["retry"]["codes"], json!([503]));
    assert_eq!(j["retry"]["backoff_ms"], 25);
    assert_eq!(j["retry"]["applies"], true);
    for line in [
        "path rewritten to `/new/x`",
        "host rewritten to `rewritten.example`",
        "request header set `x-env: prod`",
        "request header added `x-added-by-mesh: 1`",
        "request header removed `x-drop-me`",
        "response header added `x-served-by: mesh`",
        "response header removed `server`",
        "request timeout 10000 ms",
        "backend request timeout 2000 ms",
    ] {
        assert!(e.human.contains(line), "{line}: {}", e.human);
    }
    // A POST is never retried by the sidecar.
    let e = ask(&m, &[], "POST", "http://api/old/x");
    assert_eq!(e.json["retry"]["applies"], false, "{}", e.json);
    assert!(
        e.human.contains("only idempotent methods are retried"),
        "{}",
        e.human
    );

    // The other rule changes nothing: the fields are there, empty.
    let e = ask(&m, &[], "GET", "http://api/x");
    assert!(e.json["rewrite"].is_null());
    assert!(e.json["retry"].is_null());
    assert_eq!(
        e.json["request_headers"],
        json!({"set": [], "add": [], "remove": []})
    );
    assert_eq!(
        e.json["timeouts"],
        json!({"request_ms": null, "backend_request_ms": null})
    );
    assert!(!e.human.contains("header"), "{}", e.human);
}

/// A header value that is not visible ASCII is no text to the sidecar (hyper's
/// `HeaderValue::to_str`), so the policies and routes do not see the header at all; explain
/// reads it the same way.
#[test]
fn header_values_that_are_not_visible_ascii_are_absent() {
    let policies = format!(
        "{PERMIT}{}",
        r#"@id("no-debug") forbid (principal, action, resource) when { context.headers has "x-debug" };
"#
    );
    let m = mesh("", &policies);
    let e = ask(&m, &["x-debug: e"], "GET", "http://api/x");
    assert_eq!(e.json["status"], 403, "{}", e.json);
    let e = ask(&m, &["x-debug: \u{e9}"], "GET", "http://api/x");
    assert_eq!(e.json["status"], 200, "{}", e.json);
    assert_eq!(e.json["authz"]["decision"], "allow", "{}", e.json);
}
