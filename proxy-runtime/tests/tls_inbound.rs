//! The inbound listener accepts only mutual TLS 1.3 with a client certificate from the trust
//! bundle that carries a SPIFFE ID.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;
use std::sync::Arc;

use common::*;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn roots(ca: &Ca) -> rustls::RootCertStore {
    let mut r = rustls::RootCertStore::empty();
    r.add(CertificateDer::from_pem_slice(ca.pem.as_bytes()).unwrap())
        .unwrap();
    r
}

fn client(
    ca: &Ca,
    leaf: Option<&Leaf>,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> rustls::ClientConfig {
    let b = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots(ca));
    match leaf {
        Some(l) => b
            .with_client_auth_cert(
                vec![CertificateDer::from_pem_slice(l.cert_pem.as_bytes()).unwrap()],
                PrivateKeyDer::from_pem_slice(l.key_pem.as_bytes()).unwrap(),
            )
            .unwrap(),
        None => b.with_no_client_auth(),
    }
}

/// Handshake and one HTTP/1.1 request; the status, or why it failed.
async fn try_request(addr: SocketAddr, cfg: rustls::ClientConfig) -> Result<u16, String> {
    let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let name = ServerName::try_from("b.default.svc.cluster.local").unwrap();
    let mut tls = TlsConnector::from(Arc::new(cfg))
        .connect(name, tcp)
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    tls.write_all(b"GET /x HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n")
        .await
        .map_err(|e| format!("write: {e}"))?;
    let mut out = Vec::new();
    tls.read_to_end(&mut out)
        .await
        .map_err(|e| format!("read: {e}"))?;
    let text = String::from_utf8_lossy(&out);
    text.strip_prefix("HTTP/1.1 ")
        .and_then(|r| r.get(..3))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("no HTTP response: {text:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inbound_requires_mutual_tls_13_with_a_trusted_spiffe_certificate() {
    let ca = Ca::new("mesh CA");
    let app = App::start("b").await;
    let b = start_proxy(&ca, "b", &sidecar("b", app.addr, &[PERMIT_ALL])).await;
    let tls13: &[&'static rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13];

    // A trusted workload gets through: the refusals below are about the certificate alone.
    let good = ca.workload("a");
    assert_eq!(
        try_request(b.inbound(), client(&ca, Some(&good), tls13)).await,
        Ok(200)
    );
    assert_eq!(app.hits(), 1);

    let no_cert = try_request(b.inbound(), client(&ca, None, tls13)).await;
    assert!(no_cert.is_err(), "no client certificate: {no_cert:?}");

    let other_ca = Ca::new("someone else's CA");
    let foreign = other_ca.workload("a");
    let wrong_ca = try_request(b.inbound(), client(&ca, Some(&foreign), tls13)).await;
    assert!(
        wrong_ca.is_err(),
        "certificate from another CA: {wrong_ca:?}"
    );

    let expired = ca.leaf(Some(&spiffe("a")), "a.default.svc.cluster.local", true);
    let r = try_request(b.inbound(), client(&ca, Some(&expired), tls13)).await;
    assert!(r.is_err(), "expired certificate: {r:?}");

    let anonymous = ca.leaf(None, "a.default.svc.cluster.local", false);
    let r = try_request(b.inbound(), client(&ca, Some(&anonymous), tls13)).await;
    assert!(r.is_err(), "certificate without a SPIFFE ID: {r:?}");

    let tls12 = try_request(
        b.inbound(),
        client(&ca, Some(&good), &[&rustls::version::TLS12]),
    )
    .await;
    assert!(tls12.is_err(), "TLS 1.2: {tls12:?}");
    assert!(
        tls12.unwrap_err().starts_with("handshake"),
        "TLS 1.2 must fail in the handshake"
    );

    // Plaintext HTTP on the mutual-TLS port (strict mode) gets no HTTP answer.
    let text = raw(b.inbound(), "GET / HTTP/1.1\r\nHost: b\r\n\r\n").await;
    assert!(!text.contains("HTTP/1.1"), "{text}");

    assert_eq!(app.hits(), 1, "no refused client reached the application");
    let m = metrics(&b).await;
    assert_eq!(
        metric(
            &m,
            r#"mesh_proxy_tls_handshake_failures_total{listener="inbound"}"#
        ),
        Some(6.0),
        "{m}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inbound_offers_h2_by_alpn() {
    let ca = Ca::new("mesh CA");
    let app = App::start("b").await;
    let b = start_proxy(&ca, "b", &sidecar("b", app.addr, &[PERMIT_ALL])).await;
    let mut cfg = client(&ca, Some(&ca.workload("a")), &[&rustls::version::TLS13]);
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let tcp = TcpStream::connect(b.inbound()).await.unwrap();
    let name = ServerName::try_from("b.default.svc.cluster.local").unwrap();
    let tls = TlsConnector::from(Arc::new(cfg))
        .connect(name, tcp)
        .await
        .unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    assert_eq!(
        tls.get_ref().1.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_3)
    );
}
