//! The outbound side end to end: application -> outbound proxy -> mutual TLS -> inbound proxy
//! -> application, with routing decided by the shared `Router::decide`.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use mesh_artifact::{
    Body, MatchKind, PathMatch, PathModifier, Redirect, RetryBudget, RetryPolicy, RouteTable,
    Timeouts, UrlRewrite, ValueMatch, cluster_key,
};

struct World {
    ca: Ca,
    app_v1: App,
    app_v2: App,
    b1: Proxy,
    b2: Proxy,
    a: Proxy,
}

const V1: &str = "default/b:80@v1";
const V2: &str = "default/b:80@v2";

fn route_table() -> RouteTable {
    let mut canary = entry(PathMatch::PathPrefix("/api".into()), 2);
    canary.headers = vec![ValueMatch {
        name: "x-env".into(),
        kind: MatchKind::Exact,
        value: "canary".into(),
    }];
    let mut redirect = action(vec![]);
    redirect.redirect = Some(Redirect {
        scheme: Some("https".into()),
        hostname: None,
        port: None,
        path: Some(PathModifier::ReplacePrefixMatch("/new".into())),
        status: 301,
    });
    let mut canary_action = action(vec![to(V2, 1)]);
    canary_action.rewrite = Some(UrlRewrite {
        hostname: None,
        path: Some(PathModifier::ReplacePrefixMatch("/v2api".into())),
    });
    canary_action.request_headers.set = vec![("x-added".into(), "yes".into())];
    canary_action.response_headers.set = vec![("x-resp".into(), "yes".into())];
    let mut broken = action(vec![]);
    broken.fixed_status = Some(500);
    let mut retry = action(vec![to(V1, 1)]);
    retry.retry = Some(RetryPolicy {
        attempts: 2,
        codes: vec![503],
        backoff_ms: 5,
        max_backoff_ms: 20,
        budget: RetryBudget {
            percent: 20,
            min_per_second: 10,
        },
    });
    let mut timeout = action(vec![to(V1, 1)]);
    timeout.timeouts = Timeouts {
        request_ms: Some(2000),
        backend_request_ms: Some(200),
    };
    RouteTable {
        entries: vec![
            entry(PathMatch::PathPrefix("/old".into()), 1),
            entry(PathMatch::PathPrefix("/split".into()), 0),
            canary,
            entry(PathMatch::PathPrefix("/api".into()), 3),
            entry(PathMatch::PathPrefix("/broken".into()), 4),
            entry(PathMatch::PathPrefix("/flaky".into()), 5),
            entry(PathMatch::PathPrefix("/timeout".into()), 6),
        ],
        actions: vec![
            action(vec![to(V1, 3), to(V2, 1)]),
            redirect,
            canary_action,
            action(vec![to(V1, 1)]),
            broken,
            retry,
            timeout,
        ],
    }
}

async fn world() -> World {
    let ca = Ca::new("test mesh CA");
    let app_v1 = App::start("b-v1").await;
    let app_v2 = App::start("b-v2").await;
    let b1 = start_proxy(&ca, "b", &sidecar("b", app_v1.addr, &[PERMIT_ALL])).await;
    let b2 = start_proxy(&ca, "b", &sidecar("b", app_v2.addr, &[PERMIT_ALL])).await;
    // A closed port: bind, note the address, close.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let mut a: Body = sidecar("a", app_v1.addr, &[PERMIT_ALL]);
    a.clusters
        .insert(V1.into(), cluster("b", Some("v1"), &[b1.inbound()]));
    a.clusters
        .insert(V2.into(), cluster("b", Some("v2"), &[b2.inbound()]));
    a.clusters.insert(
        cluster_key("default/b", 80, None),
        cluster("b", None, &[b1.inbound()]),
    );
    // `c` is served at b1's address, which presents b's identity, not c's.
    a.clusters
        .insert("default/c:80".into(), cluster("c", None, &[b1.inbound()]));
    a.clusters
        .insert("default/d:80".into(), cluster("d", None, &[closed]));
    add_destination(&mut a, "b", Some(route_table()), "default/b:80");
    add_destination(&mut a, "c", None, "default/c:80");
    add_destination(&mut a, "d", None, "default/d:80");
    // `e` is served by both b1 and b2, which present b's identity.
    let mut e = cluster("b", None, &[b1.inbound(), b2.inbound()]);
    e.service = "default/e".into();
    a.clusters.insert("default/e:80".into(), e);
    add_destination(&mut a, "e", None, "default/e:80");
    let a = start_proxy(&ca, "a", &a).await;
    assert!(a.handle.is_ready() && b1.handle.is_ready() && b2.handle.is_ready());
    World {
        ca,
        app_v1,
        app_v2,
        b1,
        b2,
        a,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_path_reaches_the_app_with_the_caller_identity() {
    let w = world().await;
    let r = send(
        w.a.outbound(),
        "GET",
        "b",
        "/api/items?x=1",
        &[("x-mesh-route", "forged")],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let j = r.json();
    assert_eq!(j["app"], "b-v1");
    assert_eq!(j["path"], "/api/items");
    assert_eq!(j["query"], "x=1");
    assert_eq!(j["host"], "b");
    // The destination sidecar tells the application who called, from the client certificate.
    assert_eq!(j["caller"], spiffe("a").as_str());
    // The route hint between sidecars never reaches the application.
    assert!(j["route_header"].is_null());
    assert_eq!(w.app_v1.hits(), 1);
    assert_eq!(w.app_v2.hits(), 0);
    assert_eq!(r.headers.get("x-app").unwrap(), "b-v1");
    // A second request reuses the pooled mutual-TLS connection to b1.
    let r = send(
        w.a.outbound(),
        "GET",
        "b.default.svc.cluster.local:80",
        "/api/two",
        &[],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(w.app_v1.hits(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weighted_split_follows_the_weights() {
    let w = world().await;
    let n = 400;
    let mut v2 = 0;
    for i in 0..n {
        let r = get(w.a.outbound(), "b", &format!("/split/{i}")).await;
        assert_eq!(r.status, 200, "{}", r.body);
        if r.json()["app"] == "b-v2" {
            v2 += 1;
        }
    }
    // Weights 3:1, so 100 of 400 expected; the bounds are about 3.5 standard deviations.
    assert!((70..=130).contains(&v2), "b-v2 got {v2} of {n}");
    assert_eq!(w.app_v1.hits() + w.app_v2.hits(), n);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_match_and_unknown_host_are_404_without_forwarding() {
    let w = world().await;
    let r = get(w.a.outbound(), "b", "/nothing/here").await;
    assert_eq!(r.status, 404);
    assert!(r.body.contains("no route matches"), "{}", r.body);
    let r = get(w.a.outbound(), "nowhere.example", "/").await;
    assert_eq!(r.status, 404);
    assert!(r.body.contains("unknown destination"), "{}", r.body);
    let r = get(w.a.outbound(), "b:8080", "/api").await;
    assert_eq!(r.status, 404, "an undeclared port is not routed");
    assert_eq!(w.app_v1.hits() + w.app_v2.hits(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirect_is_answered_by_the_proxy() {
    let w = world().await;
    let r = get(w.a.outbound(), "b.default", "/old/page?x=1").await;
    assert_eq!(r.status, 301);
    assert_eq!(
        r.headers.get("location").unwrap(),
        "https://b.default/new/page?x=1"
    );
    assert_eq!(w.app_v1.hits() + w.app_v2.hits(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_match_rewrite_and_header_modifiers() {
    let w = world().await;
    let r = send(
        w.a.outbound(),
        "GET",
        "b",
        "/api/items",
        &[("x-env", "canary")],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let j = r.json();
    assert_eq!(j["app"], "b-v2");
    assert_eq!(j["path"], "/v2api/items");
    assert_eq!(j["added"], "yes");
    assert_eq!(r.headers.get("x-resp").unwrap(), "yes");
    // Without the header: the plain /api rule, no rewrite, no modifiers.
    let r = send(
        w.a.outbound(),
        "GET",
        "b",
        "/api/items",
        &[("x-env", "prod")],
    )
    .await;
    let j = r.json();
    assert_eq!(j["app"], "b-v1");
    assert_eq!(j["path"], "/api/items");
    assert!(j["added"].is_null());
    assert!(r.headers.get("x-resp").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fixed_status_rule_answers_500() {
    let w = world().await;
    let r = get(w.a.outbound(), "b", "/broken").await;
    assert_eq!(r.status, 500);
    assert_eq!(w.app_v1.hits() + w.app_v2.hits(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn absolute_form_requests_are_routed_like_a_proxy() {
    let w = world().await;
    let text = raw(
        w.a.outbound(),
        "GET http://b.default.svc.cluster.local/api/abs?q=2 HTTP/1.1\r\nHost: ignored.example\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains(r#""path":"/api/abs""#), "{text}");
    assert!(
        text.contains(r#""host":"b.default.svc.cluster.local""#),
        "{text}"
    );
    assert!(
        !text.contains(r#""connection":"close""#),
        "hop-by-hop header forwarded: {text}"
    );
}

/// Requests that would reach the application with a meaning other than the one the proxy routed
/// and authorized are answered by the sidecar and never forwarded (the inbound listener runs the
/// same check; `e2e/run.sh` sends it such a request over mutual TLS with `openssl s_client`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ambiguous_requests_never_reach_the_app() {
    let w = world().await;
    let before = w.app_v1.hits();
    for (request, status) in [
        (
            "GET /api/x HTTP/1.1\r\nHost: b\r\nHost: evil\r\nConnection: close\r\n\r\n",
            "400",
        ),
        (
            "GET http://u@b/api/x HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n",
            "400",
        ),
        (
            "POST /api/x HTTP/1.1\r\nHost: b\r\nTransfer-Encoding: gzip, chunked\r\nConnection: close\r\n\r\n0\r\n\r\n",
            "501",
        ),
        // A standard method not in upper case: another method to routes and policies, the
        // same one to an application that upper-cases it.
        (
            "post /api/x HTTP/1.1\r\nHost: b\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            "400",
        ),
        (
            "Get /api/x HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n",
            "400",
        ),
    ] {
        let text = raw(w.a.outbound(), request).await;
        assert!(text.starts_with(&format!("HTTP/1.1 {status}")), "{text}");
    }
    assert_eq!(
        w.app_v1.hits(),
        before,
        "an ambiguous request reached the app"
    );
    let text = raw(
        w.a.outbound(),
        "GET /api/ok HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert_eq!(w.app_v1.hits(), before + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listed_statuses_are_retried() {
    let w = world().await;
    let r = get(w.a.outbound(), "b", "/flaky").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(w.app_v1.hits(), 2, "one 503, then one retry");
    let m = metrics(&w.a).await;
    assert_eq!(
        metric(
            &m,
            r#"mesh_proxy_upstream_retries_total{cluster="default/b:80@v1"}"#
        ),
        Some(1.0),
        "{m}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_try_timeout_answers_504() {
    let w = world().await;
    let start = Instant::now();
    let r = get(w.a.outbound(), "b", "/timeout/slow").await;
    assert_eq!(r.status, 504, "{}", r.body);
    assert!(
        start.elapsed() < Duration::from_millis(550),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn destination_with_the_wrong_identity_is_refused() {
    let w = world().await;
    let r = get(w.a.outbound(), "c", "/").await;
    assert_eq!(r.status, 503, "{}", r.body);
    assert_eq!(w.app_v1.hits(), 0, "the request must not reach an impostor");
    let m = metrics(&w.a).await;
    assert_eq!(
        metric(
            &m,
            r#"mesh_proxy_upstream_errors_total{cluster="default/c:80",kind="connect"}"#
        ),
        Some(1.0),
        "{m}"
    );
}

/// The refused destination is logged at WARN, naming both identities, once per failed
/// connection. (One thread, so that the test's log capture sees the proxy's tasks.)
#[tokio::test(flavor = "current_thread")]
async fn a_wrong_destination_identity_is_logged_once_per_connection() {
    use std::sync::{Arc, Mutex};
    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Capture {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let capture = Capture::default();
    let writer = capture.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::WARN)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let w = world().await;
    for _ in 0..2 {
        assert_eq!(get(w.a.outbound(), "c", "/").await.status, 503);
    }
    let logs = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("mutual TLS with a destination sidecar failed"))
        .collect();
    assert_eq!(lines.len(), 2, "{logs}");
    for l in lines {
        assert!(l.contains("WARN"), "{l}");
        assert!(
            l.contains(&format!(
                "server presented `{}`, expected SPIFFE ID `{}`",
                spiffe("b"),
                spiffe("c")
            )),
            "{l}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_endpoint_answers_503() {
    let w = world().await;
    let r = get(w.a.outbound(), "d", "/").await;
    assert_eq!(r.status, 503, "{}", r.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2c_from_the_application() {
    let w = world().await;
    let tcp = tokio::net::TcpStream::connect(w.a.outbound())
        .await
        .unwrap();
    let (mut sender, conn) = hyper::client::conn::http2::handshake::<_, _, Empty<Bytes>>(
        TokioExecutor::new(),
        TokioIo::new(tcp),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    for i in 0..3 {
        let req = hyper::Request::get(format!("http://b/api/h2/{i}"))
            .body(Empty::new())
            .unwrap();
        let resp = sender.send_request(req).await.unwrap();
        assert_eq!(resp.status(), 200);
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        let j: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(j["path"], format!("/api/h2/{i}"));
        assert_eq!(j["host"], "b");
    }
    assert_eq!(w.app_v1.hits(), 3);
    drop((w.ca, w.b1, w.b2));
}

/// Sidecars `a` -> `b` speaking HTTP/2 to each other (over mutual TLS) and `b` speaking h2c to
/// the application.
async fn h2_pair(ca: &Ca, app: &App) -> (Proxy, Proxy) {
    let mut b = sidecar("b", app.addr, &[PERMIT_ALL]);
    b.sidecar.app_protocol = mesh_artifact::Protocol::Http2;
    let b = start_proxy(ca, "b", &b).await;
    let mut a = sidecar("a", app.addr, &[PERMIT_ALL]);
    let mut c = cluster("b", None, &[b.inbound()]);
    c.protocol = mesh_artifact::Protocol::Http2;
    a.clusters.insert("default/b:80".into(), c);
    add_destination(&mut a, "b", None, "default/b:80");
    (start_proxy(ca, "a", &a).await, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_between_sidecars_and_to_an_h2c_application() {
    let ca = Ca::new("test mesh CA");
    let app = App::start("grpc-ish").await;
    let (a, _b) = h2_pair(&ca, &app).await;
    for _ in 0..2 {
        let r = get(a.outbound(), "b", "/x").await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.json()["version"], "HTTP/2.0", "the app speaks h2c");
        assert_eq!(
            r.json()["authority"],
            "b",
            "the authority survives both HTTP/2 hops"
        );
        // RFC 9113, section 8.3.1: no `host` that could differ from `:authority` (nginx
        // refuses a request with both).
        assert_eq!(r.json()["host"], serde_json::Value::Null, "{}", r.body);
        assert_eq!(r.json()["caller"], spiffe("a").as_str());
    }
    // The authority as the caller wrote it, port included.
    let r = get(a.outbound(), "b:80", "/y").await;
    assert_eq!(r.json()["authority"], "b:80", "{}", r.body);
}

/// Over HTTP/2 between sidecars the host travels as `:authority` only: a policy that reads
/// the `host` header still sees it at the destination's sidecar.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_sees_the_host_of_an_http2_request() {
    use mesh_policy::model::{PolicyModel, ServiceEntry, entities_json, schema_text};
    let ca = Ca::new("test mesh CA");
    let app = App::start("h2-app").await;
    let model = PolicyModel {
        trust_domain: TD.into(),
        services: ["a", "b"]
            .iter()
            .map(|s| ServiceEntry::new("default", *s))
            .collect(),
        context_headers: vec!["host".into()],
    };
    let mut b = sidecar("b", app.addr, &[]);
    b.sidecar.app_protocol = mesh_artifact::Protocol::Http2;
    b.authz = mesh_artifact::AuthzBundle {
        schema: schema_text(&model),
        policies: vec![mesh_artifact::PolicyText {
            id: "by-host".into(),
            source: source(),
            text: r#"permit (principal, action, resource) when { context.headers has "host" && context.headers["host"] == "b.default" };"#.into(),
        }],
        entities: entities_json(&model),
        context_headers: vec!["host".into()],
    };
    let b = start_proxy(&ca, "b", &b).await;
    let mut a = sidecar("a", app.addr, &[PERMIT_ALL]);
    let mut c = cluster("b", None, &[b.inbound()]);
    c.protocol = mesh_artifact::Protocol::Http2;
    a.clusters.insert("default/b:80".into(), c);
    add_destination(&mut a, "b", None, "default/b:80");
    let a = start_proxy(&ca, "a", &a).await;
    let r = get(a.outbound(), "b.default", "/x").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["authority"], "b.default");
    assert_eq!(get(a.outbound(), "b", "/x").await.status, 403);
    assert_eq!(app.hits(), 1);
}

/// An application answer with both `Content-Length` and `Transfer-Encoding: chunked` is framed
/// by the chunks (RFC 9112, section 6.3): the sidecar forwards the whole body without the
/// stale length, which would cut it short for the caller.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_content_length_next_to_chunked_is_dropped() {
    let addr = canned_app(
        b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
        false,
    )
    .await;
    let ca = Ca::new("test mesh CA");
    let b = start_proxy(&ca, "b", &sidecar("b", addr, &[PERMIT_ALL])).await;
    let mut a = sidecar("a", addr, &[PERMIT_ALL]);
    a.clusters
        .insert("default/b:80".into(), cluster("b", None, &[b.inbound()]));
    add_destination(&mut a, "b", None, "default/b:80");
    let a = start_proxy(&ca, "a", &a).await;
    for _ in 0..2 {
        let text = raw(
            a.outbound(),
            "GET /clte HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n",
        )
        .await;
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        let head = head.to_ascii_lowercase();
        assert!(head.starts_with("http/1.1 200"), "{text}");
        assert!(!head.contains("content-length: 100"), "{text}");
        // Re-framed by the sidecar: chunked again, or an exact length.
        let whole = if head.contains("transfer-encoding: chunked") {
            body.contains("hello") && body.contains(" world") && body.ends_with("0\r\n\r\n")
        } else {
            head.contains("content-length: 11") && body == "hello world"
        };
        assert!(whole, "{text:?}");
    }
    // And a hyper client reads it whole.
    let r = get(a.outbound(), "b", "/clte").await;
    assert_eq!((r.status, r.body.as_str()), (200, "hello world"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_of_a_cluster_share_the_traffic() {
    let w = world().await;
    for i in 0..10 {
        let r = get(w.a.outbound(), "e", &format!("/{i}")).await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    // The test proxies balance round robin.
    assert_eq!((w.app_v1.hits(), w.app_v2.hits()), (5, 5));
}

/// A request body of one data frame followed by trailers.
struct WithTrailers(Option<Bytes>, Option<hyper::HeaderMap>);

impl hyper::body::Body for WithTrailers {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Self::Error>>> {
        let frame = match self.0.take() {
            Some(d) => Some(hyper::body::Frame::data(d)),
            None => self.1.take().map(hyper::body::Frame::trailers),
        };
        std::task::Poll::Ready(frame.map(Ok))
    }
}

/// gRPC's shape over HTTP/2: `te: trailers` and trailers on both the request and the answer,
/// from an h2c client through both sidecars (HTTP/2 over mutual TLS between them) to an h2c
/// application. The trailers carry gRPC's status, so losing them breaks every gRPC call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trailers_cross_both_sidecars_both_ways() {
    let ca = Ca::new("test mesh CA");
    let app = App::start("grpc-ish").await;
    let (a, _b) = h2_pair(&ca, &app).await;

    let tcp = tokio::net::TcpStream::connect(a.outbound()).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http2::handshake::<_, _, WithTrailers>(
        TokioExecutor::new(),
        TokioIo::new(tcp),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    let mut req_trailers = hyper::HeaderMap::new();
    req_trailers.insert("x-req-trailer", "from-client".parse().unwrap());
    let req = hyper::Request::post("http://b/pkg.Service/trailers")
        .header("te", "trailers")
        .header("content-type", "application/grpc")
        .body(WithTrailers(
            Some(Bytes::from_static(b"\0\0\0\0\x05hello")),
            Some(req_trailers),
        ))
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    let collected = resp.into_body().collect().await.unwrap();
    let trailers = collected
        .trailers()
        .cloned()
        .expect("the answer's trailers arrive");
    assert_eq!(trailers.get("grpc-status").unwrap(), "0");
    assert_eq!(
        trailers.get("x-got-trailer").unwrap(),
        "from-client",
        "the request's trailers reached the application"
    );
    let j: serde_json::Value = serde_json::from_slice(&collected.to_bytes()).unwrap();
    assert_eq!(j["version"], "HTTP/2.0");
    assert_eq!(j["body_len"], 10);
}

/// A chunked body that turns out malformed after the head went on is the caller's fault: 400
/// from the sidecar that read it, not a gateway error, and not counted against the upstream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_request_body_is_the_callers_fault() {
    let w = world().await;
    let bad = "POST /api/x HTTP/1.1\r\nHost: b\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nZZ\r\n\r\n";
    let text = raw(w.a.outbound(), bad).await;
    assert!(text.starts_with("HTTP/1.1 400"), "{text}");
    assert!(
        text.contains("malformed or incomplete request body"),
        "{text}"
    );
    let m = metrics(&w.a).await;
    assert_eq!(
        metric(
            &m,
            r#"mesh_proxy_upstream_errors_total{cluster="default/b:80@v1",kind="protocol"}"#
        ),
        Some(0.0),
        "{m}"
    );
    // A well-formed chunked body still goes through.
    let good = "POST /api/x HTTP/1.1\r\nHost: b\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
    let text = raw(w.a.outbound(), good).await;
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains(r#""body_len":5"#), "{text}");

    // The inbound side, read in plaintext by a `permissive` sidecar, answers the same.
    let app = App::start("plain").await;
    let mut body = sidecar("p", app.addr, &[PERMIT_ALL]);
    body.mesh.mtls = mesh_artifact::MtlsMode::Permissive;
    let p = start_proxy(&w.ca, "p", &body).await;
    let text = raw(p.inbound(), bad).await;
    assert!(text.starts_with("HTTP/1.1 400"), "{text}");
    let text = raw(p.inbound(), good).await;
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");

    // Between sidecars speaking HTTP/2, the failed body resets the stream: still 400.
    let (h2a, _h2b) = h2_pair(&w.ca, &app).await;
    let text = raw(h2a.outbound(), bad).await;
    assert!(text.starts_with("HTTP/1.1 400"), "{text}");
    let text = raw(h2a.outbound(), good).await;
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
}

/// Open a connection to `addr`, send `head`, and read the answer's head (to the blank line).
async fn open_upgrade(addr: std::net::SocketAddr, head: &str) -> (tokio::net::TcpStream, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.write_all(head.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    let mut byte = [0u8; 1];
    while !got.ends_with(b"\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(3), tcp.read(&mut byte))
            .await
            .expect("the answer's head arrives")
            .unwrap();
        assert_eq!(n, 1, "closed after {:?}", String::from_utf8_lossy(&got));
        got.push(byte[0]);
    }
    (tcp, String::from_utf8(got).unwrap().to_ascii_lowercase())
}

/// Bytes written into a switched connection come back from the echoing application.
async fn echoes(tcp: &mut tokio::net::TcpStream, text: &str) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    tcp.write_all(text.as_bytes()).await.unwrap();
    let mut back = vec![0u8; text.len()];
    tokio::time::timeout(Duration::from_secs(3), tcp.read_exact(&mut back))
        .await
        .expect("the echo arrives")
        .unwrap();
    assert_eq!(String::from_utf8(back).unwrap(), text);
}

const WS_HEAD: &str = "GET /api/ws/chat HTTP/1.1\r\nHost: b\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";

/// WebSocket's opening handshake (HTTP/1.1 `Upgrade`) through both sidecars: the `101` comes
/// back with the switch's headers, the request was authorized with the caller's identity, and
/// then bytes flow both ways through the tunnel, over HTTP/1.1 and HTTP/2 sidecar-to-sidecar
/// clusters alike (an upgrade gets an HTTP/1.1 connection of its own).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgraded_connections_are_tunnelled_through_both_sidecars() {
    let w = world().await;
    let app = App::start("h2-app").await;
    let (h2a, _h2b) = h2_pair(&w.ca, &app).await;
    for outbound in [w.a.outbound(), h2a.outbound()] {
        let (mut tcp, head) = open_upgrade(outbound, WS_HEAD).await;
        assert!(head.starts_with("http/1.1 101"), "{head}");
        assert!(head.contains("\r\nupgrade: websocket\r\n"), "{head}");
        assert!(head.contains("\r\nconnection: upgrade\r\n"), "{head}");
        assert!(
            head.contains(&format!("\r\nx-caller: {}\r\n", spiffe("a"))),
            "the upgrade request went through inbound authorization as `a`: {head}"
        );
        echoes(&mut tcp, "hello through the mesh").await;
        echoes(&mut tcp, &"x".repeat(5000)).await;
    }
    // An upstream that does not switch answers as usual, on the connection opened for the ask.
    for outbound in [w.a.outbound(), h2a.outbound()] {
        let no_ws = WS_HEAD.replace("/api/ws/chat", "/api/plain");
        let text = raw(outbound, &no_ws.replace("keep-alive", "close")).await;
        assert!(text.starts_with("HTTP/1.1 200"), "{text}");
        assert!(text.ends_with(r#""body_len":0}"#), "{text}");
    }
    // The switch is counted as the answer it is.
    let m = metrics(&w.a).await;
    let switched = m
        .lines()
        .filter(|l| {
            l.starts_with("mesh_proxy_requests_total{") && l.contains(r#"status_class="1xx""#)
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>();
    assert_eq!(switched, 1.0, "{m}");
}

/// An `Upgrade: h2c` request is not a switch the mesh passes on: it is answered as the plain
/// HTTP/1.1 request it also is, and the connection goes on serving requests.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_h2c_upgrade_is_served_as_http1() {
    let w = world().await;
    let h2c = "GET /api/h2c HTTP/1.1\r\nHost: b\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n";
    let (mut tcp, head) = open_upgrade(w.a.outbound(), h2c).await;
    assert!(head.starts_with("http/1.1 200"), "{head}");
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length: "))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let mut body = vec![0u8; len];
    tokio::io::AsyncReadExt::read_exact(&mut tcp, &mut body)
        .await
        .unwrap();
    let j: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(j["connection"], serde_json::Value::Null, "{j}");
    assert_eq!(j["path"], "/api/h2c");
    tokio::io::AsyncWriteExt::write_all(
        &mut tcp,
        b"GET /api/next HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n",
    )
    .await
    .unwrap();
    let mut rest = Vec::new();
    tokio::io::AsyncReadExt::read_to_end(&mut tcp, &mut rest)
        .await
        .unwrap();
    let rest = String::from_utf8_lossy(&rest);
    assert!(rest.starts_with("HTTP/1.1 200"), "{rest}");
    assert!(rest.contains("/api/next"), "{rest}");
}

/// An application that switches protocols on a request that did not ask to gets no tunnel:
/// the caller gets 502, never a connection spliced to the application.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unasked_switch_is_refused() {
    let addr = canned_app(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: upgrade\r\n\r\n",
        true,
    )
    .await;
    let ca = Ca::new("test mesh CA");
    let mut body = sidecar("p", addr, &[PERMIT_ALL]);
    body.mesh.mtls = mesh_artifact::MtlsMode::Permissive;
    let p = start_proxy(&ca, "p", &body).await;
    let text = raw(
        p.inbound(),
        "GET / HTTP/1.1\r\nHost: p\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(text.starts_with("HTTP/1.1 502"), "{text}");
    let text = raw(
        p.inbound(),
        "GET / HTTP/1.1\r\nHost: p\r\nConnection: close\r\nUpgrade: h2c\r\n\r\n",
    )
    .await;
    assert!(text.starts_with("HTTP/1.1 502"), "{text}");
}

/// The documented header-count limit: up to 100 fields pass, more get 431 (hyper's default,
/// the same as Envoy's), whatever `--max-header-bytes` allows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_than_100_header_fields_get_431() {
    let w = world().await;
    let head = |fields: usize| {
        let mut h = String::from("GET /api/x HTTP/1.1\r\nHost: b\r\nConnection: close\r\n");
        for i in 0..fields - 2 {
            h.push_str(&format!("x-h{i}: v\r\n"));
        }
        h + "\r\n"
    };
    let text = raw(w.a.outbound(), &head(100)).await;
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    let text = raw(w.a.outbound(), &head(101)).await;
    assert!(text.starts_with("HTTP/1.1 431"), "{text}");
}

/// `--tunnel-idle-timeout`: a tunnel with traffic stays open past the timeout, and one with no
/// bytes either way for that long is closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_tunnels_are_closed() {
    use tokio::io::AsyncReadExt;
    let ca = Ca::new("test mesh CA");
    let app = App::start("ws-app").await;
    let mut body = sidecar("p", app.addr, &[PERMIT_ALL]);
    body.mesh.mtls = mesh_artifact::MtlsMode::Permissive;
    let p = start_proxy_with(&ca, "p", &body, |c| {
        c.tunnel_idle_timeout = Some(Duration::from_millis(400));
    })
    .await;
    let head = WS_HEAD.replace("Host: b", "Host: p");
    let (mut busy, h) = open_upgrade(p.inbound(), &head).await;
    assert!(h.starts_with("http/1.1 101"), "{h}");
    let (mut quiet, h) = open_upgrade(p.inbound(), &head).await;
    assert!(h.starts_with("http/1.1 101"), "{h}");
    let start = Instant::now();
    while start.elapsed() < Duration::from_millis(900) {
        echoes(&mut busy, "still here").await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The quiet one was closed by the sidecar (end of stream), the busy one still echoes.
    let mut byte = [0u8; 1];
    let n = tokio::time::timeout(Duration::from_secs(1), quiet.read(&mut byte))
        .await
        .expect("closed, not hanging");
    assert!(matches!(n, Ok(0) | Err(_)), "{n:?}");
    echoes(&mut busy, "after the quiet one closed").await;
}

/// A service with two ports whose targets differ: each request reaches the application port of
/// the service port its caller addressed (the caller's sidecar names the port to the
/// destination's), and a caller cannot steer that with a header of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_service_port_reaches_its_own_application_port() {
    let ca = Ca::new("test mesh CA");
    let web = App::start("web-port").await;
    let grpc = App::start("grpc-port").await;
    let mut b = sidecar("b", web.addr, &[PERMIT_ALL]);
    b.sidecar.app_ports = vec![mesh_artifact::AppPort {
        port: 9000,
        app_port: grpc.addr.port(),
    }];
    let b = start_proxy(&ca, "b", &b).await;
    let mut a = sidecar("a", web.addr, &[PERMIT_ALL]);
    a.clusters
        .insert("default/b:80".into(), cluster("b", None, &[b.inbound()]));
    let mut c9000 = cluster("b", None, &[b.inbound()]);
    c9000.port = 9000;
    a.clusters.insert("default/b:9000".into(), c9000);
    add_destination(&mut a, "b", None, "default/b:80");
    a.destinations[0]
        .ports
        .push(mesh_artifact::DestinationPort {
            port: 9000,
            protocol: mesh_artifact::Protocol::Http,
            routes: None,
            default_cluster: "default/b:9000".into(),
        });
    let a = start_proxy(&ca, "a", &a).await;

    let r = get(a.outbound(), "b", "/x").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["app"], "web-port");
    let r = get(a.outbound(), "b:9000", "/x").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.json()["app"],
        "grpc-port",
        "port 9000 reaches its own application"
    );
    // A header the application sends is replaced by its sidecar's, and never reaches the app.
    let r = send(a.outbound(), "GET", "b", "/x", &[("x-mesh-port", "9000")]).await;
    assert_eq!(r.json()["app"], "web-port", "{}", r.body);
    assert_eq!((web.hits(), grpc.hits()), (2, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_idempotent_requests_are_retried() {
    let w = world().await;
    // `/flaky` answers 503 on the app's 1st, 3rd, ... hit. A POST the app answered 503 has
    // been executed: sending it again would execute it twice.
    let post = "POST /flaky HTTP/1.1\r\nHost: b\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    let text = raw(w.a.outbound(), post).await;
    assert!(text.starts_with("HTTP/1.1 503"), "{text}");
    assert_eq!(w.app_v1.hits(), 1, "a POST was retried");
    let patch = "PATCH /flaky HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n";
    let text = raw(w.a.outbound(), patch).await;
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert_eq!(w.app_v1.hits(), 2);
    // DELETE is idempotent: the 503 is retried.
    let r = send(w.a.outbound(), "DELETE", "b", "/flaky", &[]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(w.app_v1.hits(), 4, "one 503, then one retry");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_callers_version_is_ours_not_the_applications() {
    let ca = Ca::new("test mesh CA");
    // An application that answers `HTTP/1.0 200`, its body ending when it closes.
    let app = canned_app(
        b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nold app\n",
        false,
    )
    .await;
    let b = start_proxy(&ca, "b", &sidecar("b", app, &[PERMIT_ALL])).await;
    let mut a: Body = sidecar("a", app, &[PERMIT_ALL]);
    a.clusters.insert(
        cluster_key("default/b", 80, None),
        cluster("b", None, &[b.inbound()]),
    );
    add_destination(&mut a, "b", None, "default/b:80");
    let a = start_proxy(&ca, "a", &a).await;
    // Two requests on one keep-alive connection: an HTTP/1.0 answer would close it.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(a.outbound()).await.unwrap();
    let req = "GET /one HTTP/1.1\r\nHost: b\r\n\r\nGET /two HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n";
    tcp.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut out)).await;
    let text = String::from_utf8_lossy(&out);
    assert_eq!(text.matches("HTTP/1.1 200").count(), 2, "{text}");
    assert_eq!(text.matches("old app").count(), 2, "{text}");
    assert!(!text.contains("HTTP/1.0"), "{text}");
}

/// The sum of `mesh_proxy_requests_total` over the series of one direction and status class.
fn requests(text: &str, direction: &str, class: &str) -> f64 {
    text.lines()
        .filter(|l| {
            l.starts_with("mesh_proxy_requests_total{")
                && l.contains(&format!(r#"direction="{direction}""#))
                && l.contains(&format!(r#"status_class="{class}""#))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_the_caller_abandons_are_counted() {
    use tokio::io::AsyncWriteExt;
    let w = world().await;
    let mut tcp = tokio::net::TcpStream::connect(w.a.outbound())
        .await
        .unwrap();
    // The app takes 600 ms; the caller gives up after 100.
    tcp.write_all(b"GET /api/slow HTTP/1.1\r\nHost: b\r\n\r\n")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    drop(tcp);
    let counted = eventually(Duration::from_secs(3), || async {
        requests(&metrics(&w.a).await, "outbound", "4xx") == 1.0
            && requests(&metrics(&w.b1).await, "inbound", "4xx") == 1.0
    })
    .await;
    let (out, inb) = (
        requests(&metrics(&w.a).await, "outbound", "4xx"),
        requests(&metrics(&w.b1).await, "inbound", "4xx"),
    );
    assert!(
        counted.is_some(),
        "abandoned request counted {out} times outbound, {inb} times inbound"
    );
    let m = metrics(&w.a).await;
    assert!(
        m.lines().any(
            |l| l.starts_with("mesh_proxy_request_duration_seconds_count{")
                && l.contains(r#"direction="outbound""#)
                && l.ends_with(" 1")
        ),
        "{m}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_hosts_and_foreign_schemes_are_refused() {
    let w = world().await;
    for (request, status) in [
        // A port that is not a port: malformed (400), not unknown (404).
        (
            "GET /api/x HTTP/1.1\r\nHost: b:abc\r\nConnection: close\r\n\r\n",
            "400",
        ),
        (
            "GET /api/x HTTP/1.1\r\nHost: b:99999\r\nConnection: close\r\n\r\n",
            "400",
        ),
        (
            "GET /api/x HTTP/1.1\r\nHost: b:81\r\nConnection: close\r\n\r\n",
            "404",
        ),
        (
            "GET /api/x HTTP/1.1\r\nHost: nowhere\r\nConnection: close\r\n\r\n",
            "404",
        ),
        (
            "GET ftp://b/api/x HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n",
            "400",
        ),
        // An https URL in absolute form is carried over the mesh's mutual TLS.
        (
            "GET https://b/api/x HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n",
            "200",
        ),
    ] {
        let text = raw(w.a.outbound(), request).await;
        assert!(
            text.starts_with(&format!("HTTP/1.1 {status}")),
            "{request:?}: {text}"
        );
    }
    assert_eq!(w.app_v1.hits(), 1, "only the https request reached the app");
}
