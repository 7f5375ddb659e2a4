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

/// A mutual-TLS client of the inbound listener, offering `alpn`.
async fn tls_client(
    ca: &Ca,
    addr: std::net::SocketAddr,
    alpn: &[u8],
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    use rustls::pki_types::ServerName;
    let mut cfg = mtls_client_config(ca, &ca.workload("c"));
    cfg.alpn_protocols = vec![alpn.to_vec()];
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from("b.default.svc.cluster.local").unwrap();
    let tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(cfg))
        .connect(name, tcp)
        .await
        .unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(alpn));
    tls
}

/// How long until the proxy closes a connection the test keeps silent (`None`: still open
/// after 3 s).
async fn closed_after<S: tokio::io::AsyncRead + Unpin>(mut io: S) -> Option<Duration> {
    use tokio::io::AsyncReadExt;
    let start = Instant::now();
    let mut buf = [0u8; 64];
    loop {
        match tokio::time::timeout(Duration::from_secs(3), io.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0) | Err(_)) => return Some(start.elapsed()),
            // HTTP/2 settings and the like: not a close.
            Ok(Ok(_)) => {}
        }
    }
}

const HEADER_READ_TIMEOUT: Duration = Duration::from_millis(400);

/// Connections that never start a request are closed after `--header-read-timeout`: plain TCP
/// on the outbound listener, and on the inbound one a finished TLS handshake followed by
/// silence, with HTTP/1.1 or HTTP/2 (no preface, or a preface and no stream) negotiated. They
/// would otherwise hold `--max-connections` slots for ever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_that_send_no_request_are_closed() {
    let ca = Ca::new("mesh CA");
    let app = App::start("b").await;
    let p = start_proxy_with(&ca, "b", &sidecar("b", app.addr, &[PERMIT_ALL]), |c| {
        c.header_read_timeout = HEADER_READ_TIMEOUT;
    })
    .await;
    let plain = tokio::net::TcpStream::connect(p.outbound()).await.unwrap();
    let admin_conn = tokio::net::TcpStream::connect(p.admin()).await.unwrap();
    let h1 = tls_client(&ca, p.inbound(), b"http/1.1").await;
    let h2_silent = tls_client(&ca, p.inbound(), b"h2").await;
    // A client that completes the HTTP/2 handshake and opens no stream.
    let h2_preface = tls_client(&ca, p.inbound(), b"h2").await;
    let (_sender, conn) =
        hyper::client::conn::http2::handshake::<_, _, http_body_util::Empty<bytes::Bytes>>(
            hyper_util::rt::TokioExecutor::new(),
            hyper_util::rt::TokioIo::new(h2_preface),
        )
        .await
        .unwrap();
    let h2_conn = tokio::spawn(async move {
        let start = Instant::now();
        let _ = tokio::time::timeout(Duration::from_secs(3), conn).await;
        start.elapsed()
    });
    let (plain, admin_conn, h1, h2_silent) = tokio::join!(
        closed_after(plain),
        closed_after(admin_conn),
        closed_after(h1),
        closed_after(h2_silent)
    );
    for (what, t) in [
        ("plain TCP, outbound", plain),
        ("plain TCP, admin", admin_conn),
        ("TLS with http/1.1, inbound", h1),
        ("TLS with h2, no preface, inbound", h2_silent),
    ] {
        let t = t.unwrap_or_else(|| panic!("{what}: still open after 3 s"));
        assert!(
            t >= HEADER_READ_TIMEOUT - Duration::from_millis(50) && t < Duration::from_millis(1500),
            "{what}: closed after {t:?}"
        );
    }
    let t = h2_conn.await.unwrap();
    assert!(
        t < Duration::from_millis(1500),
        "HTTP/2 with no stream: {t:?}"
    );
    let m = metrics(&p).await;
    let closed = |listener: &str| {
        metric(
            &m,
            &format!(
                r#"mesh_proxy_connections_closed_idle_total{{listener="{listener}",reason="no_request"}}"#
            ),
        )
    };
    assert_eq!(closed("outbound"), Some(1.0), "{m}");
    assert_eq!(closed("inbound"), Some(3.0), "{m}");
    assert_eq!(closed("admin"), Some(1.0), "{m}");
    assert_eq!(
        metric(&m, r#"mesh_proxy_connections_active{listener="inbound"}"#),
        Some(0.0),
        "{m}"
    );
}

/// Requests that take longer than the header read timeout are not cut: neither a slow answer,
/// nor the keep-alive connection it came on, nor a request whose headers trickle in within the
/// timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_but_live_requests_are_not_cut_early() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let ca = Ca::new("mesh CA");
    let app = App::start("b").await;
    let mut body = sidecar("b", app.addr, &[PERMIT_ALL]);
    body.mesh.mtls = mesh_artifact::MtlsMode::Permissive;
    let p = start_proxy_with(&ca, "b", &body, |c| {
        c.header_read_timeout = HEADER_READ_TIMEOUT;
    })
    .await;
    // The application takes 600 ms, longer than the timeout, twice on one connection.
    let mut tcp = tokio::net::TcpStream::connect(p.inbound()).await.unwrap();
    for last in [false, true] {
        let close = if last { "Connection: close\r\n" } else { "" };
        tcp.write_all(format!("GET /slow HTTP/1.1\r\nHost: b\r\n{close}\r\n").as_bytes())
            .await
            .unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            tcp.read_exact(&mut byte).await.unwrap();
            head.push(byte[0]);
        }
        let head = String::from_utf8(head).unwrap();
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length: "))
            .unwrap()
            .parse()
            .unwrap();
        let mut body = vec![0u8; len];
        tcp.read_exact(&mut body).await.unwrap();
    }
    // Headers sent in pieces, the last within the timeout.
    let mut tcp = tokio::net::TcpStream::connect(p.inbound()).await.unwrap();
    for piece in [
        "GET /x HTTP/1.1\r\n",
        "Host: b\r\n",
        "Connection: close\r\n\r\n",
    ] {
        tcp.write_all(piece.as_bytes()).await.unwrap();
        tokio::time::sleep(HEADER_READ_TIMEOUT / 4).await;
    }
    let mut out = Vec::new();
    tcp.read_to_end(&mut out).await.unwrap();
    assert!(
        out.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&out)
    );
    assert_eq!(app.hits(), 3);
}

/// `--idle-timeout`: an HTTP/2 connection that has sent requests and then opens no stream for
/// that long is shut down (`GOAWAY`), while one that keeps sending requests stays open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_http2_connections_are_shut_down() {
    use http_body_util::Empty;
    let ca = Ca::new("mesh CA");
    let app = App::start("a").await;
    let idle = Duration::from_millis(600);
    let p = start_proxy_with(&ca, "a", &sidecar("a", app.addr, &[PERMIT_ALL]), |c| {
        c.header_read_timeout = Duration::from_millis(200);
        c.idle_timeout = Some(idle);
    })
    .await;
    let connect = || async {
        let tcp = tokio::net::TcpStream::connect(p.outbound()).await.unwrap();
        let (sender, conn) = hyper::client::conn::http2::handshake::<_, _, Empty<bytes::Bytes>>(
            hyper_util::rt::TokioExecutor::new(),
            hyper_util::rt::TokioIo::new(tcp),
        )
        .await
        .unwrap();
        let ended = tokio::spawn(async move {
            let _ = conn.await;
            Instant::now()
        });
        (sender, ended)
    };
    let request = |sender: &mut hyper::client::conn::http2::SendRequest<Empty<bytes::Bytes>>| {
        let req = hyper::Request::get("http://nowhere/x")
            .body(Empty::new())
            .unwrap();
        let sent = sender.send_request(req);
        async move { sent.await.unwrap().status() }
    };
    let (mut quiet, quiet_ended) = connect().await;
    let (mut busy, busy_ended) = connect().await;
    assert_eq!(request(&mut quiet).await, 404);
    let last_request = Instant::now();
    while last_request.elapsed() < idle * 2 {
        assert_eq!(
            request(&mut busy).await,
            404,
            "the busy connection serves on"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        quiet_ended.is_finished(),
        "the idle connection is still open"
    );
    let after = quiet_ended.await.unwrap() - last_request;
    assert!(
        after >= idle,
        "closed after {after:?}, before the idle timeout"
    );
    assert!(!busy_ended.is_finished(), "the busy connection was closed");
    assert_eq!(request(&mut busy).await, 404);
    let m = metrics(&p).await;
    assert_eq!(
        metric(
            &m,
            r#"mesh_proxy_connections_closed_idle_total{listener="outbound",reason="idle"}"#
        ),
        Some(1.0),
        "{m}"
    );
}
