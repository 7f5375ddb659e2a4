//! Request paths are normalized before routing and authorization, on both listeners, and the
//! application receives the normalized path: no spelling of a forbidden path gets past Cedar.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use mesh_artifact::{EncodedSlashes, MtlsMode, PathMatch, RouteTable};

const FORBID_ADMIN: &str = r#"forbid (principal, action, resource == Service::"default/b") when { context.path like "/admin*" };"#;

/// Spellings of `/admin` an application (nginx, most frameworks) resolves to `/admin`.
const ADMIN_SPELLINGS: [&str; 9] = [
    "/admin",
    "/x/../admin",
    "/./admin",
    "//admin",
    "/%61dmin",
    "/x/%2e%2E/admin",
    "/public/..//admin/",
    "/../../admin",
    "/%61%64%6d%69%6e/users",
];

/// `b` in permissive mode (mutual TLS and plaintext on its inbound port), allowing everything
/// but `/admin*`; `a` calls it through its outbound listener, where `/public` has its own rule.
async fn pair(ca: &Ca, app_a: &App, app_b: &App) -> (Proxy, Proxy) {
    let mut body = sidecar("b", app_b.addr, &[PERMIT_ALL, FORBID_ADMIN]);
    body.mesh.mtls = MtlsMode::Permissive;
    let b = start_proxy(ca, "b", &body).await;
    let mut a = sidecar("a", app_a.addr, &[PERMIT_ALL]);
    a.clusters
        .insert("default/b:80".into(), cluster("b", None, &[b.inbound()]));
    // `/public` has a rule of its own, which marks the requests it routes.
    let mut public = action(vec![to("default/b:80", 1)]);
    public.request_headers.set = vec![("x-added".into(), "public-route".into())];
    let table = RouteTable {
        entries: vec![
            entry(PathMatch::PathPrefix("/public".into()), 0),
            entry(PathMatch::PathPrefix("/".into()), 1),
        ],
        actions: vec![public, action(vec![to("default/b:80", 1)])],
    };
    add_destination(&mut a, "b", Some(table), "default/b:80");
    let a = start_proxy(ca, "a", &a).await;
    (a, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_spelling_of_a_forbidden_path_is_forbidden() {
    let ca = Ca::new("mesh CA");
    let (app_a, app_b) = (App::start("a").await, App::start("b").await);
    let (a, b) = pair(&ca, &app_a, &app_b).await;

    for path in ADMIN_SPELLINGS {
        // Through the caller's sidecar (mutual TLS to b).
        let r = get(a.outbound(), "b", path).await;
        assert_eq!(r.status, 403, "outbound+inbound {path}: {}", r.body);
        // Straight to b's inbound in plaintext: b must not count on a caller's sidecar.
        let r = get(b.inbound(), "b", path).await;
        assert_eq!(r.status, 403, "inbound alone {path}: {}", r.body);
        let r = raw(
            b.inbound(),
            &format!("GET {path} HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n"),
        )
        .await;
        assert!(r.starts_with("HTTP/1.1 403"), "raw inbound {path}: {r}");
    }
    assert_eq!(app_b.hits(), 0, "a forbidden path reached the application");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_application_receives_the_path_that_was_authorized() {
    let ca = Ca::new("mesh CA");
    let (app_a, app_b) = (App::start("a").await, App::start("b").await);
    let (a, b) = pair(&ca, &app_a, &app_b).await;

    for (addr, route_mark) in [(a.outbound(), "public-route"), (b.inbound(), "")] {
        let r = get(addr, "b", "/x/../public").await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.json()["path"], "/public", "{}", r.body);
        assert!(r.json()["query"].is_null(), "{}", r.body);
        // The outbound side routed the normalized path: `/public`'s rule, not `/`'s.
        assert_eq!(
            r.json()["added"].as_str().unwrap_or(""),
            route_mark,
            "{}",
            r.body
        );
        // The query is not the path: left byte for byte.
        let r = get(addr, "b", "//public/./%7eme?next=/x/../admin&q=%2e%2E").await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.json()["path"], "/public/~me", "{}", r.body);
        assert_eq!(r.json()["query"], "next=/x/../admin&q=%2e%2E", "{}", r.body);
        // Already normal: forwarded as it came, encodings that must stay included.
        let r = get(addr, "b", "/public/a%20b%C3%A9").await;
        assert_eq!(r.json()["path"], "/public/a%20b%C3%A9", "{}", r.body);
    }
    assert_eq!(app_b.hits(), 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paths_without_a_safe_form_get_400_on_both_listeners() {
    let ca = Ca::new("mesh CA");
    let (app_a, app_b) = (App::start("a").await, App::start("b").await);
    let (a, b) = pair(&ca, &app_a, &app_b).await;

    for (path, reason) in [
        ("/x%2F..%2Fadmin", "encoded slash"),
        ("/public%5c..%5cadmin", "encoded slash"),
        ("/public\\..\\admin", "backslash"),
        ("/admin%00", "NUL"),
        ("/%zzadmin", "percent-encoding"),
    ] {
        for (side, addr) in [("outbound", a.outbound()), ("inbound", b.inbound())] {
            let r = get(addr, "b", path).await;
            assert_eq!(r.status, 400, "{side} {path}: {}", r.body);
            assert!(r.body.contains(reason), "{side} {path}: {}", r.body);
            assert_eq!(
                r.headers.get("x-mesh-proxy").unwrap(),
                "local-reply",
                "{side} {path}"
            );
        }
    }
    assert_eq!(app_b.hits(), 0);
}

const FORBID_ADMIN_C: &str = r#"forbid (principal, action, resource == Service::"default/c") when { context.path like "/admin*" };"#;

/// `b` keeps encoded slashes (`encodedSlashes: keep`), `c` does not; both permissive (so their
/// inbound side can be tried alone) and forbidding `/admin*`. `a` calls `b` through routes (one
/// on `/projects/group%2Fproject`, one on `/to-c` that sends to `c`) and `c` directly.
async fn keep_mesh(ca: &Ca, app_a: &App, app_b: &App, app_c: &App) -> (Proxy, Proxy, Proxy) {
    let mut body = sidecar("c", app_c.addr, &[PERMIT_ALL, FORBID_ADMIN_C]);
    body.mesh.mtls = MtlsMode::Permissive;
    let c = start_proxy(ca, "c", &body).await;
    let mut body = sidecar("b", app_b.addr, &[PERMIT_ALL, FORBID_ADMIN]);
    body.mesh.mtls = MtlsMode::Permissive;
    body.sidecar.encoded_slashes = EncodedSlashes::Keep;
    let b = start_proxy(ca, "b", &body).await;

    let mut a = sidecar("a", app_a.addr, &[PERMIT_ALL]);
    a.clusters
        .insert("default/b:80".into(), cluster("b", None, &[b.inbound()]));
    a.clusters
        .insert("default/c:80".into(), cluster("c", None, &[c.inbound()]));
    let mut project = action(vec![to("default/b:80", 1)]);
    project.request_headers.set = vec![("x-added".into(), "project-route".into())];
    let table = RouteTable {
        entries: vec![
            entry(PathMatch::PathPrefix("/projects/group%2Fproject".into()), 0),
            entry(PathMatch::PathPrefix("/to-c".into()), 1),
            entry(PathMatch::PathPrefix("/".into()), 2),
        ],
        actions: vec![
            project,
            action(vec![to("default/c:80", 1)]),
            action(vec![to("default/b:80", 1)]),
        ],
    };
    add_destination(&mut a, "b", Some(table), "default/b:80");
    add_destination(&mut a, "c", None, "default/c:80");
    for d in &mut a.destinations {
        if d.service == "default/b" {
            d.encoded_slashes = EncodedSlashes::Keep;
        }
    }
    let a = start_proxy(ca, "a", &a).await;
    (a, b, c)
}

/// Through both sidecars (outbound, mutual TLS, inbound), a `%2F` path reaches an application
/// that keeps encoded slashes with `%2F` intact (hex upper-cased), routed on the kept form;
/// the same path to an application that does not keep them is 400 and never reaches it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encoded_slashes_reach_an_application_that_keeps_them_intact() {
    let ca = Ca::new("mesh CA");
    let (app_a, app_b, app_c) = (
        App::start("a").await,
        App::start("b").await,
        App::start("c").await,
    );
    let (a, b, c) = keep_mesh(&ca, &app_a, &app_b, &app_c).await;

    for (sent, received) in [
        (
            "/projects/group%2Fproject/issues",
            "/projects/group%2Fproject/issues",
        ),
        (
            "/projects/group%2fproject/./issues",
            "/projects/group%2Fproject/issues",
        ),
    ] {
        let r = get(a.outbound(), "b", sent).await;
        assert_eq!(r.status, 200, "{sent}: {}", r.body);
        assert_eq!(r.json()["app"], "b");
        assert_eq!(r.json()["path"], received, "{sent}: {}", r.body);
        // The outbound side matched the route on the kept `%2F`.
        assert_eq!(r.json()["added"], "project-route", "{sent}: {}", r.body);
    }
    let r = get(a.outbound(), "b", "/files/a%5cb%2Fc?k=%2f").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["path"], "/files/a%5Cb%2Fc", "{}", r.body);
    assert_eq!(r.json()["query"], "k=%2f", "{}", r.body);
    assert!(r.json()["added"].is_null(), "{}", r.body);
    // b's inbound side alone keeps them too.
    let r = get(b.inbound(), "b", "/projects/group%2fproject").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["path"], "/projects/group%2Fproject", "{}", r.body);
    assert_eq!(app_b.hits(), 4);

    // `c` does not keep them: 400 from the caller's sidecar and from c's own, and c never sees
    // the request.
    for (side, addr) in [("outbound", a.outbound()), ("inbound", c.inbound())] {
        let r = get(addr, "c", "/projects/group%2Fproject").await;
        assert_eq!(r.status, 400, "{side}: {}", r.body);
        assert!(r.body.contains("encoded slash"), "{side}: {}", r.body);
    }
    // A route of `b` that sends to `c`: the caller keeps the `%2F` (it addressed `b`), and c's
    // inbound side re-checks with its own setting.
    let r = get(a.outbound(), "b", "/to-c/a%2Fb").await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("encoded slash"), "{}", r.body);
    let r = get(a.outbound(), "b", "/to-c/ab").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["app"], "c", "{}", r.body);
    assert_eq!(app_c.hits(), 1);

    // Keeping encoded slashes keeps refusing what has no safe form.
    for path in ["/a%2F\\b", "/a%2F%00", "/a%2F%zz"] {
        for (side, addr) in [("outbound", a.outbound()), ("inbound", b.inbound())] {
            let r = get(addr, "b", path).await;
            assert_eq!(r.status, 400, "{side} {path}: {}", r.body);
        }
    }
    assert_eq!(app_b.hits(), 4);
}

/// With encoded slashes kept, a path-prefix `forbid` still applies to the kept form, and
/// `..%2F` never resolves: the application receives the segment as sent, never `/admin`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kept_encoded_slashes_do_not_escape_a_forbid() {
    let ca = Ca::new("mesh CA");
    let (app_a, app_b, app_c) = (
        App::start("a").await,
        App::start("b").await,
        App::start("c").await,
    );
    let (a, b, _c) = keep_mesh(&ca, &app_a, &app_b, &app_c).await;

    for path in [
        "/admin%2Fx",
        "/admin/a%2Fb",
        "/x/../admin/a%2fb",
        "/%61dmin%2F..%2Fpublic",
    ] {
        for (side, addr) in [("outbound", a.outbound()), ("inbound", b.inbound())] {
            let r = get(addr, "b", path).await;
            assert_eq!(r.status, 403, "{side} {path}: {}", r.body);
        }
    }
    assert_eq!(app_b.hits(), 0, "a forbidden path reached the application");

    for (sent, received) in [
        ("/x%2F..%2Fadmin", "/x%2F..%2Fadmin"),
        ("/x/..%2Fadmin", "/x/..%2Fadmin"),
        ("/x/%2e%2e%2fadmin", "/x/..%2Fadmin"),
        ("/x/..%5Cadmin", "/x/..%5Cadmin"),
    ] {
        for (side, addr) in [("outbound", a.outbound()), ("inbound", b.inbound())] {
            let r = get(addr, "b", sent).await;
            assert_eq!(r.status, 200, "{side} {sent}: {}", r.body);
            assert_eq!(r.json()["path"], received, "{side} {sent}: {}", r.body);
        }
    }
}
