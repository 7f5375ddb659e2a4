//! The upstream connection pool on its own, against small servers on loopback that count their
//! connections.
#![allow(clippy::unwrap_used)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::http::uri::Authority;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use mesh_proxy::http::ProxyBody;
use mesh_proxy::upstream::{ClientSettings, EndpointPool};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Connections accepted and connections ended, as the server saw them.
#[derive(Default)]
struct Counts {
    accepted: AtomicUsize,
    closed: AtomicUsize,
}

/// A hyper HTTP/1.1 server (h2c too) answering `/big` with 1 MiB and anything else with `ok`.
async fn server() -> (SocketAddr, Arc<Counts>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let counts = Arc::new(Counts::default());
    let c = counts.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            c.accepted.fetch_add(1, Ordering::SeqCst);
            let c = c.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(|req: Request<Incoming>| async move {
                    let body = if req.uri().path() == "/big" {
                        Bytes::from(vec![b'x'; 1 << 20])
                    } else {
                        Bytes::from_static(b"ok")
                    };
                    Ok::<_, Infallible>(Response::new(Full::new(body)))
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tcp), svc)
                    .await;
                c.closed.fetch_add(1, Ordering::SeqCst);
            });
        }
    });
    (addr, counts)
}

fn settings(idle: Duration) -> ClientSettings {
    ClientSettings {
        connect_timeout: Duration::from_secs(1),
        pool_idle_timeout: idle,
    }
}

fn pool(addr: SocketAddr, h2: bool, idle: Duration) -> Arc<EndpointPool> {
    let authority = Authority::try_from(addr.to_string()).unwrap();
    Arc::new(EndpointPool::plain(authority, h2, settings(idle)))
}

fn get(path: &str) -> Request<ProxyBody> {
    Request::get(path)
        .header("host", "app")
        .body(ProxyBody::Empty)
        .unwrap()
}

async fn fetch(pool: &Arc<EndpointPool>, path: &str) -> Bytes {
    let resp = pool.send(get(path)).await.unwrap();
    assert_eq!(resp.status(), 200);
    resp.into_body().collect().await.unwrap().to_bytes()
}

#[tokio::test]
async fn sequential_requests_share_one_connection() {
    let (addr, counts) = server().await;
    let p = pool(addr, false, Duration::from_secs(90));
    for _ in 0..20 {
        assert_eq!(fetch(&p, "/").await, "ok");
    }
    // A body read over many frames gives its connection back once read whole.
    assert_eq!(fetch(&p, "/big").await.len(), 1 << 20);
    assert_eq!(fetch(&p, "/").await, "ok");
    assert_eq!(counts.accepted.load(Ordering::SeqCst), 1);
    assert_eq!(p.idle_connections(), 1);
}

#[tokio::test]
async fn concurrent_requests_open_connections_then_reuse_them() {
    let (addr, counts) = server().await;
    let p = pool(addr, false, Duration::from_secs(90));
    let (a, b) = tokio::join!(p.send(get("/")), p.send(get("/")));
    let (a, b) = (a.unwrap(), b.unwrap());
    a.into_body().collect().await.unwrap();
    b.into_body().collect().await.unwrap();
    assert_eq!(counts.accepted.load(Ordering::SeqCst), 2);
    assert_eq!(p.idle_connections(), 2);
    for _ in 0..5 {
        fetch(&p, "/").await;
    }
    assert_eq!(counts.accepted.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_body_dropped_unread_does_not_return_its_connection() {
    let (addr, counts) = server().await;
    let p = pool(addr, false, Duration::from_secs(90));
    let mut body = p.send(get("/big")).await.unwrap().into_body();
    let first = body.frame().await.unwrap().unwrap();
    assert!(first.data_ref().unwrap().len() < 1 << 20, "read in pieces");
    drop(body);
    assert_eq!(fetch(&p, "/").await, "ok");
    assert_eq!(counts.accepted.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn idle_connections_close_after_the_idle_timeout() {
    let (addr, counts) = server().await;
    let p = pool(addr, false, Duration::from_millis(200));
    fetch(&p, "/").await;
    assert_eq!(p.idle_connections(), 1);
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(p.idle_connections(), 0);
    assert_eq!(counts.closed.load(Ordering::SeqCst), 1);
    // And the pool still works afterwards.
    fetch(&p, "/").await;
    assert_eq!(counts.accepted.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_connection_the_server_closed_while_idle_is_replaced() {
    // Answers one request per connection, then closes it without saying so.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let a = accepted.clone();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            a.fetch_add(1, Ordering::SeqCst);
            let mut buf = [0u8; 4096];
            let mut got = Vec::new();
            while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = tcp.read(&mut buf).await.unwrap();
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&buf[..n]);
            }
            tcp.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                .await
                .unwrap();
            drop(tcp);
        }
    });
    let p = pool(addr, false, Duration::from_secs(90));
    for _ in 0..3 {
        assert_eq!(fetch(&p, "/").await, "ok");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn concurrent_h2c_requests_share_one_connection() {
    let (addr, counts) = server().await;
    let p = pool(addr, true, Duration::from_secs(90));
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let p = p.clone();
            tokio::spawn(async move {
                let r = p.send(get("/")).await.unwrap();
                assert_eq!(r.version(), hyper::Version::HTTP_2);
                r.into_body().collect().await.unwrap().to_bytes()
            })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap(), "ok");
    }
    assert_eq!(counts.accepted.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn refused_connections_are_connect_errors() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let p = pool(addr, false, Duration::from_secs(90));
    let e = p.send(get("/")).await.unwrap_err();
    assert!(e.is_connect(), "{e}");
}
