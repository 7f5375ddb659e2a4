//! Inbound authorization with the Cedar authorizer of `mesh-policy`.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use mesh_artifact::{AuthzMode, MtlsMode, PathMatch, RouteTable};

const PERMIT_A_GET: &str = r#"permit (principal == Workload::"default/a", action == Action::"GET", resource == Service::"default/b");"#;

/// A caller `a` whose only destination is `b`, through one route (`default/b-route`).
async fn caller(ca: &Ca, b: &Proxy, app: &App) -> Proxy {
    let mut a = sidecar("a", app.addr, &[PERMIT_ALL]);
    a.clusters
        .insert("default/b:80".into(), cluster("b", None, &[b.inbound()]));
    let table = RouteTable {
        entries: vec![entry(PathMatch::PathPrefix("/".into()), 0)],
        actions: vec![action(vec![to("default/b:80", 1)])],
    };
    add_destination(&mut a, "b", Some(table), "default/b:80");
    start_proxy(ca, "a", &a).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn denied_requests_get_403_and_never_reach_the_app() {
    let ca = Ca::new("mesh CA");
    let app_b = App::start("b").await;
    let app_a = App::start("a").await;
    let policies = [
        PERMIT_A_GET,
        // Context plumbing: path, route (from the caller's sidecar) and a declared header.
        r#"forbid (principal, action, resource) when { context.path like "/admin*" };"#,
        r#"forbid (principal, action, resource) when { context.route == "default/b-route" && context.headers has "x-user" && context.headers["x-user"] == "mallory" };"#,
    ];
    let b = start_proxy(&ca, "b", &sidecar("b", app_b.addr, &policies)).await;
    let a = caller(&ca, &b, &app_a).await;

    assert_eq!(get(a.outbound(), "b", "/items").await.status, 200);
    assert_eq!(app_b.hits(), 1);

    let r = send(a.outbound(), "DELETE", "b", "/items", &[]).await;
    assert_eq!(r.status, 403);
    assert!(
        !r.body.contains("p0") && !r.body.contains("permit"),
        "policy text leaked: {}",
        r.body
    );
    assert_eq!(get(a.outbound(), "b", "/admin/users").await.status, 403);
    assert_eq!(
        send(a.outbound(), "GET", "b", "/items", &[("x-user", "mallory")])
            .await
            .status,
        403
    );
    assert_eq!(
        send(a.outbound(), "GET", "b", "/items", &[("x-user", "alice")])
            .await
            .status,
        200
    );
    assert_eq!(
        app_b.hits(),
        2,
        "denied requests must not reach the application"
    );

    let m = metrics(&b).await;
    assert_eq!(
        metric(&m, r#"mesh_proxy_authz_decisions_total{result="allowed"}"#),
        Some(2.0),
        "{m}"
    );
    assert_eq!(
        metric(&m, r#"mesh_proxy_authz_decisions_total{result="denied"}"#),
        Some(3.0),
        "{m}"
    );
    assert_eq!(
        metric(
            &m,
            r#"mesh_proxy_authz_decisions_total{result="audited_deny"}"#
        ),
        Some(0.0)
    );
}

/// A visible header sent on several field lines reaches policy as one value, the lines joined
/// in order with `, ` (RFC 9110 section 5.3), through both sidecars: policy sees every line the
/// application receives, so a second line cannot slip past a policy that reads the first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_visible_headers_reach_policy_combined() {
    let ca = Ca::new("mesh CA");
    let app_b = App::start("b").await;
    let app_a = App::start("a").await;
    let policies = [
        PERMIT_A_GET,
        r#"forbid (principal, action, resource) when { context.headers has "x-user" && context.headers["x-user"] like "*mallory*" };"#,
        // Fails closed: an exact allow-list value no longer holds once another line is added.
        r#"forbid (principal, action, resource) when { context.path == "/exact" && !(context.headers has "x-user" && context.headers["x-user"] == "alice") };"#,
    ];
    let b = start_proxy(&ca, "b", &sidecar("b", app_b.addr, &policies)).await;
    let a = caller(&ca, &b, &app_a).await;
    let ask = |path: &'static str, lines: &'static [(&'static str, &'static str)]| {
        let out = a.outbound();
        async move { send(out, "GET", "b", path, lines).await }
    };

    assert_eq!(ask("/items", &[("x-user", "alice")]).await.status, 200);
    assert_eq!(ask("/items", &[("x-user", "mallory")]).await.status, 403);
    // The first line alone would be `alice`, allowed.
    let r = ask("/items", &[("x-user", "alice"), ("x-user", "mallory")]).await;
    assert_eq!(r.status, 403, "{}", r.body);
    let r = ask("/items", &[("X-User", "alice"), ("x-user", "mallory")]).await;
    assert_eq!(
        r.status, 403,
        "names compare case-insensitively: {}",
        r.body
    );

    assert_eq!(ask("/exact", &[("x-user", "alice")]).await.status, 200);
    assert_eq!(
        ask("/exact", &[("x-user", "alice"), ("x-user", "bob")])
            .await
            .status,
        403,
        "the combined value is `alice, bob`"
    );
    assert_eq!(
        app_b.hits(),
        2,
        "denied requests must not reach the application"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_mode_lets_denied_requests_through_and_counts_them() {
    let ca = Ca::new("mesh CA");
    let app_b = App::start("b").await;
    let app_a = App::start("a").await;
    let mut body = sidecar("b", app_b.addr, &[PERMIT_A_GET]);
    body.sidecar.authz_mode = AuthzMode::Audit;
    let b = start_proxy(&ca, "b", &body).await;
    let a = caller(&ca, &b, &app_a).await;

    assert_eq!(
        send(a.outbound(), "DELETE", "b", "/items", &[])
            .await
            .status,
        200
    );
    assert_eq!(get(a.outbound(), "b", "/items").await.status, 200);
    assert_eq!(app_b.hits(), 2);
    let m = metrics(&b).await;
    assert_eq!(
        metric(
            &m,
            r#"mesh_proxy_authz_decisions_total{result="audited_deny"}"#
        ),
        Some(1.0),
        "{m}"
    );
    assert_eq!(
        metric(&m, r#"mesh_proxy_authz_decisions_total{result="allowed"}"#),
        Some(1.0),
        "{m}"
    );
    assert_eq!(
        metric(&m, r#"mesh_proxy_authz_decisions_total{result="denied"}"#),
        Some(0.0),
        "{m}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permissive_mode_accepts_plaintext_as_an_unknown_caller() {
    let ca = Ca::new("mesh CA");
    let app_b = App::start("b").await;
    let app_a = App::start("a").await;
    let policies = [
        r#"permit (principal == Workload::"default/a", action, resource);"#,
        r#"permit (principal, action, resource) when { context.path == "/public" };"#,
    ];
    let mut body = sidecar("b", app_b.addr, &policies);
    body.mesh.mtls = MtlsMode::Permissive;
    let b = start_proxy(&ca, "b", &body).await;

    // Plaintext: the caller is unknown; only the policy that names no principal applies.
    let r = get(b.inbound(), "b", "/private").await;
    assert_eq!(r.status, 403, "{}", r.body);
    let r = send(
        b.inbound(),
        "GET",
        "b",
        "/public",
        &[("x-mesh-caller", "spiffe://forged")],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.json()["caller"].is_null(),
        "a plaintext caller has no identity: {}",
        r.body
    );

    // Mutual TLS on the same port still identifies the caller.
    let a = caller(&ca, &b, &app_a).await;
    let r = get(a.outbound(), "b", "/private").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["caller"], spiffe("a").as_str());
}

/// `Authz::check` collects the visible headers a request carries: the first few on the stack,
/// more in a vector. Either way the header a policy reads must reach it, whatever its place.
#[test]
fn every_visible_header_reaches_policy() {
    use mesh_policy::model::{PolicyModel, ServiceEntry, schema_text};
    for count in [1usize, 8, 9, 12] {
        let names: Vec<String> = (0..count).map(|i| format!("x-h{i}")).collect();
        let last = names.last().cloned().unwrap();
        let forbid = format!(
            r#"forbid (principal, action, resource) when {{ context.headers has "{last}" && context.headers["{last}"] == "no" }};"#
        );
        let mut body = sidecar("b", "127.0.0.1:1".parse().unwrap(), &[PERMIT_ALL, &forbid]);
        let model = PolicyModel {
            trust_domain: TD.into(),
            services: ["a", "b", "c"]
                .iter()
                .map(|s| ServiceEntry::new("default", *s))
                .collect(),
            context_headers: names.clone(),
        };
        body.authz.schema = schema_text(&model);
        body.authz.context_headers = names.clone();
        let authz = mesh_proxy::authz::Authz::new(&body).unwrap();
        let request = |value: &str| {
            let mut r = hyper::Request::builder().method("GET").uri("/items");
            for n in &names {
                r = r.header(n.as_str(), if *n == last { value } else { "yes" });
            }
            r.body(()).unwrap().into_parts().0
        };
        let caller = spiffe("a");
        let denied = authz.check(&caller, &request("no"), "");
        assert!(!denied.allowed, "{count} headers: {denied:?}");
        let allowed = authz.check(&caller, &request("fine"), "");
        assert!(allowed.allowed, "{count} headers: {allowed:?}");
        // The last header on two lines (`no` twice): the policy sees `no, no`, not `no`.
        let mut twice = request("no");
        twice.headers.append(
            last.parse::<hyper::header::HeaderName>().unwrap(),
            "no".parse().unwrap(),
        );
        let combined = authz.check(&caller, &twice, "");
        assert!(combined.allowed, "{count} headers, `no, no`: {combined:?}");
    }
}
