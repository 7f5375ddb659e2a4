//! Admin endpoints, metrics and graceful shutdown.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use mesh_artifact::{PathMatch, RouteTable};

async fn pair(ca: &Ca, app_b: &App, app_a: &App) -> (Proxy, Proxy) {
    let b = start_proxy(ca, "b", &sidecar("b", app_b.addr, &[PERMIT_ALL])).await;
    let mut a = sidecar("a", app_a.addr, &[PERMIT_ALL]);
    a.clusters
        .insert("default/b:80".into(), cluster("b", None, &[b.inbound()]));
    let table = RouteTable {
        entries: vec![entry(PathMatch::PathPrefix("/".into()), 0)],
        actions: vec![action(vec![to("default/b:80", 1)])],
    };
    add_destination(&mut a, "b", Some(table), "default/b:80");
    let a = start_proxy(ca, "a", &a).await;
    (a, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_every_request() {
    let ca = Ca::new("mesh CA");
    let (app_a, app_b) = (App::start("a").await, App::start("b").await);
    let (a, b) = pair(&ca, &app_b, &app_a).await;
    let n = 25;
    for i in 0..n {
        assert_eq!(get(a.outbound(), "b", &format!("/x/{i}")).await.status, 200);
    }
    assert_eq!(get(a.outbound(), "b", "/status/404").await.status, 404);
    let m = metrics(&a).await;
    let labels = r#"{direction="outbound",destination="default/b",route="default/b-route"}"#;
    assert_eq!(
        metric(
            &m,
            &format!("mesh_proxy_request_duration_seconds_count{labels}")
        ),
        Some(f64::from(n + 1)),
        "{m}"
    );
    assert_eq!(
        metric(
            &m,
            &format!("mesh_proxy_upstream_duration_seconds_count{labels}")
        ),
        Some(f64::from(n + 1)),
        "{m}"
    );
    let class = |c: &str| {
        format!(
            r#"mesh_proxy_requests_total{{direction="outbound",destination="default/b",route="default/b-route",status_class="{c}"}}"#
        )
    };
    assert_eq!(metric(&m, &class("2xx")), Some(f64::from(n)), "{m}");
    assert_eq!(metric(&m, &class("4xx")), Some(1.0), "{m}");
    // Latency buckets resolve sub-millisecond times.
    assert!(m.contains(r#"le="0.0001""#), "{m}");

    let m = metrics(&b).await;
    let inbound = r#"{direction="inbound",destination="default/b",route=""}"#;
    assert_eq!(
        metric(
            &m,
            &format!("mesh_proxy_request_duration_seconds_count{inbound}")
        ),
        Some(f64::from(n + 1)),
        "{m}"
    );

    let r = admin(&a, "/metrics").await;
    assert!(
        r.headers
            .get("content-type")
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    let cfg = admin(&a, "/config").await.json();
    assert_eq!(cfg["loaded"], true);
    assert_eq!(cfg["artifact"]["service"], "default/a");
    assert_eq!(cfg["artifact"]["format_version"], 1);
    assert_eq!(cfg["artifact"]["meshc_version"], "0.1.0-test");
    assert_eq!(cfg["artifact"]["source_hash"], "sha256:source");
    assert!(
        cfg["artifact"]["body_hash"]
            .as_str()
            .unwrap()
            .starts_with("sha256:")
    );
    assert_eq!(admin(&a, "/ready").await.status, 200);
    assert_eq!(admin(&a, "/nope").await.status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_drains_an_in_flight_request() {
    let ca = Ca::new("mesh CA");
    let (app_a, app_b) = (App::start("a").await, App::start("b").await);
    let (a, b) = pair(&ca, &app_b, &app_a).await;
    let outbound = a.outbound();
    let start = Instant::now();
    let slow = tokio::spawn(async move { get(outbound, "b", "/slow").await });
    tokio::time::sleep(Duration::from_millis(150)).await;
    a.handle.shutdown();
    b.handle.shutdown();

    // Draining: not ready, and no new connections.
    let r = admin(&a, "/ready").await;
    assert_eq!(r.status, 503);
    assert!(r.body.contains("draining"), "{}", r.body);
    let (da, db) = tokio::join!(a.handle.drained(), b.handle.drained());
    assert!(da && db, "both proxies drained within the deadline");
    assert!(
        tokio::net::TcpStream::connect(outbound).await.is_err(),
        "outbound still accepts"
    );

    let r = slow.await.unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(start.elapsed() >= Duration::from_millis(600));
    assert_eq!(app_b.hits(), 1);
    // Once drained, the admin listener is closed too.
    assert!(tokio::net::TcpStream::connect(a.admin()).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_request_heads_are_refused() {
    let ca = Ca::new("mesh CA");
    let (app_a, app_b) = (App::start("a").await, App::start("b").await);
    let (a, _b) = pair(&ca, &app_b, &app_a).await;
    let big = "x".repeat(80 * 1024);
    let text = raw(
        a.outbound(),
        &format!("GET / HTTP/1.1\r\nHost: b\r\nX-Big: {big}\r\n\r\n"),
    )
    .await;
    assert!(
        text.starts_with("HTTP/1.1 431"),
        "{}",
        &text[..text.len().min(200)]
    );
    assert_eq!(app_b.hits(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_are_cut_off_by_the_header_read_timeout() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let ca = Ca::new("mesh CA");
    let app = App::start("a").await;
    let p = start_proxy_with(&ca, "a", &sidecar("a", app.addr, &[PERMIT_ALL]), |c| {
        c.header_read_timeout = Duration::from_millis(300);
    })
    .await;
    let mut tcp = tokio::net::TcpStream::connect(p.outbound()).await.unwrap();
    tcp.write_all(b"GET / HTTP/1.1\r\nHost: b\r\n")
        .await
        .unwrap();
    let start = Instant::now();
    let mut out = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(3), tcp.read_to_end(&mut out)).await;
    assert!(
        read.is_ok(),
        "the connection of a client that never finishes its headers stays open"
    );
    assert!(
        start.elapsed() >= Duration::from_millis(250),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(app.hits(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_limit_wait_for_a_free_slot() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let ca = Ca::new("mesh CA");
    let app = App::start("a").await;
    let p = start_proxy_with(&ca, "a", &sidecar("a", app.addr, &[PERMIT_ALL]), |c| {
        c.max_connections = 1;
    })
    .await;
    // The first connection takes the only slot and keeps it (keep-alive).
    let mut first = tokio::net::TcpStream::connect(p.outbound()).await.unwrap();
    first
        .write_all(b"GET / HTTP/1.1\r\nHost: nowhere\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 12];
    first.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"HTTP/1.1 404");
    // The second waits in the backlog...
    let second = tokio::spawn(raw(
        p.outbound(),
        "GET / HTTP/1.1\r\nHost: nowhere\r\nConnection: close\r\n\r\n",
    ));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !second.is_finished(),
        "a second connection was served past the limit"
    );
    // ...and is served once the first closes.
    drop(first);
    let text = tokio::time::timeout(Duration::from_secs(3), second)
        .await
        .unwrap()
        .unwrap();
    assert!(text.starts_with("HTTP/1.1 404"), "{text}");
}
