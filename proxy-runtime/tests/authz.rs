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
