//! Request-path costs of the sidecar, in process on loopback.
//!
//! `cargo bench -p mesh-proxy --bench proxy`
//!
//! - `round_trip/*`: one HTTP/1.1 keep-alive request and response, from a client to the tiny
//!   test application, directly or through two sidecars (outbound, mutual TLS, inbound). The
//!   difference is the cost of the mesh per request (two proxies, both on this runtime).
//! - `mtls_handshake`: a new mutual TLS 1.3 connection to an inbound listener, handshake only.
//! - `authz_check`, `spiffe_id`: the per-request authorization and the per-handshake identity
//!   extraction on their own.
#![allow(clippy::unwrap_used)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::{Arc, LazyLock, Mutex};

use bytes::Bytes;
use common::*;
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use mesh_artifact::{PathMatch, RouteTable};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

fn main() {
    divan::main();
}

struct World {
    rt: tokio::runtime::Runtime,
    direct: Mutex<SendRequest<Empty<Bytes>>>,
    meshed: Mutex<SendRequest<Empty<Bytes>>>,
    inbound: std::net::SocketAddr,
    client_tls: Arc<rustls::ClientConfig>,
    _keep: (App, Proxy, Proxy, Ca),
}

async fn connect(addr: std::net::SocketAddr) -> SendRequest<Empty<Bytes>> {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.set_nodelay(true).unwrap();
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(conn);
    sender
}

static WORLD: LazyLock<World> = LazyLock::new(|| {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let (direct, meshed, inbound, client_tls, keep) = rt.block_on(async {
        let ca = Ca::new("bench CA");
        let app = App::start("b").await;
        let b = start_proxy(&ca, "b", &sidecar("b", app.addr, &[PERMIT_ALL])).await;
        let mut a = sidecar("a", app.addr, &[PERMIT_ALL]);
        a.clusters
            .insert("default/b:80".into(), cluster("b", None, &[b.inbound()]));
        let table = RouteTable {
            entries: vec![entry(PathMatch::PathPrefix("/".into()), 0)],
            actions: vec![action(vec![to("default/b:80", 1)])],
        };
        add_destination(&mut a, "b", Some(table), "default/b:80");
        let a = start_proxy(&ca, "a", &a).await;
        let leaf = ca.workload("a");
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(ca.pem.as_bytes()).unwrap())
            .unwrap();
        let client_tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(
            vec![CertificateDer::from_pem_slice(leaf.cert_pem.as_bytes()).unwrap()],
            rustls::pki_types::PrivateKeyDer::from_pem_slice(leaf.key_pem.as_bytes()).unwrap(),
        )
        .unwrap();
        let direct = connect(app.addr).await;
        let meshed = connect(a.outbound()).await;
        (
            direct,
            meshed,
            b.inbound(),
            Arc::new(client_tls),
            (app, a, b, ca),
        )
    });
    World {
        rt,
        direct: Mutex::new(direct),
        meshed: Mutex::new(meshed),
        inbound,
        client_tls,
        _keep: keep,
    }
});

fn round_trip(sender: &Mutex<SendRequest<Empty<Bytes>>>) {
    let w = &*WORLD;
    let mut s = sender.lock().unwrap();
    w.rt.block_on(async {
        let req = hyper::Request::get("/bench")
            .header("host", "b")
            .body(Empty::new())
            .unwrap();
        s.ready().await.unwrap();
        let resp = s.send_request(req).await.unwrap();
        assert_eq!(resp.status(), 200);
        resp.into_body().collect().await.unwrap();
    });
}

#[divan::bench(name = "round_trip/direct")]
fn direct() {
    round_trip(&WORLD.direct);
}

#[divan::bench(name = "round_trip/two_sidecars_mtls")]
fn two_sidecars() {
    round_trip(&WORLD.meshed);
}

#[divan::bench]
fn mtls_handshake() {
    let w = &*WORLD;
    w.rt.block_on(async {
        let tcp = tokio::net::TcpStream::connect(w.inbound).await.unwrap();
        let name = rustls::pki_types::ServerName::try_from("b.default.svc.cluster.local").unwrap();
        let tls = tokio_rustls::TlsConnector::from(w.client_tls.clone())
            .connect(name, tcp)
            .await
            .unwrap();
        divan::black_box(tls);
    });
}

/// `policies`: 1 is `permit (principal, action, resource);`; 20 is what a service with a few
/// callers and some conditions has: 18 path conditions, a header `forbid`, a blanket permit for
/// another caller.
#[divan::bench(args = [1, 20])]
fn authz_check(bencher: divan::Bencher<'_, '_>, policies: usize) {
    let mut texts: Vec<String> = Vec::new();
    if policies == 1 {
        texts.push(PERMIT_ALL.into());
    } else {
        texts.extend((0..policies - 2).map(|i| {
            format!(
                r#"permit (principal == Workload::"default/a", action in Action::"read", resource == Service::"default/b") when {{ context.path like "/api/v{i}/*" }};"#
            )
        }));
        texts.push(r#"forbid (principal, action, resource) when { context.headers has "x-user" && context.headers["x-user"] == "mallory" };"#.into());
        texts.push(r#"permit (principal == Workload::"default/c", action, resource);"#.into());
    }
    let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
    let body = sidecar("b", "127.0.0.1:1".parse().unwrap(), &texts);
    let authz = mesh_proxy::authz::Authz::new(&body).unwrap();
    let (parts, _) = hyper::Request::get("/api/v7/items?x=1")
        .header("x-user", "alice")
        .body(())
        .unwrap()
        .into_parts();
    let caller = spiffe("a");
    assert!(authz.check(&caller, &parts, "default/b-route").allowed);
    bencher.bench_local(|| authz.check(divan::black_box(&caller), &parts, "default/b-route"));
}

#[divan::bench]
fn spiffe_id(bencher: divan::Bencher<'_, '_>) {
    let ca = Ca::new("bench CA");
    let der = CertificateDer::from_pem_slice(ca.workload("a").cert_pem.as_bytes()).unwrap();
    assert_eq!(mesh_proxy::tls::spiffe_id(&der), Some(spiffe("a")));
    bencher.bench_local(|| mesh_proxy::tls::spiffe_id(divan::black_box(&der)));
}
