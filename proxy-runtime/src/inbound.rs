//! The inbound side: mutual TLS from other sidecars (plaintext too in `permissive` mode),
//! authorization of every request, forwarding to the local application.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use hyper::body::Incoming;
use hyper::header::{self, HeaderName, HeaderValue};
use hyper::http::uri::PathAndQuery;
use hyper::{Request, Response, StatusCode, Uri, Version};
use mesh_artifact::MtlsMode;
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;

use crate::access::{self, AccessEntry};
use crate::http::{BAD_REQUEST_BODY, ProxyBody, local_reply, refuse_ambiguous, strip_hop_by_hop};
use crate::lifecycle::Shared;
use crate::metrics::{CLIENT_CLOSED, OnAbandon};
use crate::server::serve_http;
use crate::tunnel::{Tunnel, Upgrade};

/// Route the caller's sidecar matched; set by the outbound side, read inbound only from
/// mutual-TLS peers, never passed to the application.
pub const ROUTE_HEADER: HeaderName = HeaderName::from_static("x-mesh-route");
/// The caller's SPIFFE ID, set inbound for the application (any incoming value is replaced).
pub const CALLER_HEADER: HeaderName = HeaderName::from_static("x-mesh-caller");

/// Service port the caller's sidecar sent a request to, for a destination with several ports;
/// set by the outbound side, read inbound only from mutual-TLS peers, never passed to the
/// application.
pub const PORT_HEADER: HeaderName = HeaderName::from_static("x-mesh-port");

/// First byte of a TLS handshake record.
const TLS_HANDSHAKE: u8 = 0x16;

/// Who is calling on one inbound connection.
#[derive(Debug)]
pub struct Peer {
    /// SPIFFE ID from the client certificate; `None` for plaintext (permissive mode).
    pub identity: Option<String>,
    pub identity_header: Option<HeaderValue>,
    pub addr: SocketAddr,
}

/// Handle one accepted inbound connection.
pub async fn connection(shared: Arc<Shared>, tcp: TcpStream, addr: SocketAddr) {
    let timeout = shared.config.header_read_timeout;
    let permissive = shared
        .live
        .load()
        .as_ref()
        .is_some_and(|s| s.mesh.mtls == MtlsMode::Permissive);
    if permissive {
        let mut first = [0u8; 1];
        match tokio::time::timeout(timeout, tcp.peek(&mut first)).await {
            Ok(Ok(1)) if first[0] != TLS_HANDSHAKE => {
                let peer = Arc::new(Peer {
                    identity: None,
                    identity_header: None,
                    addr,
                });
                serve(shared, tcp, peer).await;
                return;
            }
            Ok(Ok(1)) => {}
            _ => return,
        }
    }
    let acceptor = TlsAcceptor::from(shared.tls.current().server.clone());
    let tls = match tokio::time::timeout(timeout, acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            shared.metrics.inbound.tls_failures.inc();
            tracing::debug!(peer = %addr, error = %e, "inbound TLS handshake failed");
            return;
        }
        Err(_) => {
            shared.metrics.inbound.tls_failures.inc();
            tracing::debug!(peer = %addr, "inbound TLS handshake timed out");
            return;
        }
    };
    let identity = crate::tls::peer_identity(tls.get_ref().1);
    let identity_header = identity
        .as_deref()
        .and_then(|i| HeaderValue::from_str(i).ok());
    let peer = Arc::new(Peer {
        identity,
        identity_header,
        addr,
    });
    serve(shared, tls, peer).await;
}

async fn serve<I>(shared: Arc<Shared>, io: I, peer: Arc<Peer>)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let builder = shared.inbound_server.clone();
    let shutdown = shared.shutdown_signal();
    serve_http(io, &builder, shutdown, move |req, tunnel| {
        let tunnel = crate::tunnel::for_request(&req, tunnel);
        handle(shared.clone(), peer.clone(), req, tunnel)
    })
    .await;
}

/// Authorize and forward one inbound request.
pub async fn handle(
    shared: Arc<Shared>,
    peer: Arc<Peer>,
    req: Request<Incoming>,
    tunnel: Option<Tunnel>,
) -> Response<ProxyBody> {
    let start = Instant::now();
    let Some(snap) = shared.live.load_full() else {
        return local_reply(StatusCode::SERVICE_UNAVAILABLE, "mesh-proxy: not ready\n");
    };
    let (mut parts, body) = req.into_parts();
    if let Some(refused) = refuse_ambiguous(&parts) {
        return refused;
    }
    // The path routed, authorized and forwarded: normalized, never the caller's spelling, with
    // the local application's setting for encoded slashes.
    if let Some(refused) = crate::path::normalize(&mut parts, |_| snap.sidecar.encoded_slashes) {
        return refused;
    }
    let upgrade = Upgrade::asked(&mut parts);
    let principal = peer.identity.as_deref().unwrap_or("");
    let route = match peer.identity {
        Some(_) => parts
            .headers
            .get(&ROUTE_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or(""),
        None => "",
    };
    let decision = snap.authz.check(principal, &parts, route);
    let authz_label = if decision.audited_deny {
        shared.metrics.authz_audited_deny.inc();
        tracing::info!(
            caller = principal,
            method = %parts.method,
            path = parts.uri.path(),
            policies = ?decision.policies,
            "audit mode: request would be denied"
        );
        "audited_deny"
    } else if decision.allowed {
        shared.metrics.authz_allowed.inc();
        "allowed"
    } else {
        shared.metrics.authz_denied.inc();
        tracing::debug!(
            caller = principal,
            method = %parts.method,
            path = parts.uri.path(),
            policies = ?decision.policies,
            errors = ?decision.errors,
            "request denied"
        );
        "denied"
    };
    if !decision.errors.is_empty() {
        tracing::warn!(errors = ?decision.errors, "policy evaluation errors");
    }

    let log = shared.config.access_log.then(|| {
        (
            parts.method.to_string(),
            crate::http::request_authority(&parts)
                .unwrap_or("")
                .to_string(),
            parts.uri.path().to_string(),
        )
    });

    // The access log line as far as it is known now; completed when the request ends.
    let entry = log.as_ref().map(|(method, authority, path)| AccessEntry {
        direction: "inbound",
        method,
        authority,
        path,
        status: CLIENT_CLOSED,
        destination: &snap.sidecar.service,
        route: "",
        cluster: "",
        endpoint: "",
        peer: principal_for_log(&peer),
        authz: Some(authz_label),
        attempts: 0,
        duration_us: 0,
        upstream_us: None,
    });
    let abandoned = OnAbandon::new(|| {
        let elapsed = start.elapsed();
        snap.inbound.record(CLIENT_CLOSED, elapsed, None);
        if let Some(e) = entry {
            access::write(&AccessEntry {
                duration_us: micros(elapsed),
                ..e
            });
        }
    });

    let mut upstream_time = None;
    let response = if !decision.allowed {
        local_reply(StatusCode::FORBIDDEN, "forbidden by mesh policy\n")
    } else {
        if !parts.headers.contains_key(header::HOST)
            && let Some(v) = parts
                .uri
                .authority()
                .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
        {
            parts.headers.insert(header::HOST, v);
        }
        strip_hop_by_hop(&mut parts.headers);
        upgrade.ask(&mut parts.headers);
        parts.headers.remove(&ROUTE_HEADER);
        let port = parts
            .headers
            .remove(&PORT_HEADER)
            .filter(|_| peer.identity.is_some());
        let app = snap.app_for(port.and_then(|v| v.to_str().ok()?.parse().ok()));
        match &peer.identity_header {
            Some(v) => {
                parts.headers.insert(CALLER_HEADER, v.clone());
            }
            None => {
                parts.headers.remove(&CALLER_HEADER);
            }
        }
        if !parts.headers.contains_key(header::HOST)
            && let Some(h) = &app.host
        {
            parts.headers.insert(header::HOST, h.clone());
        }
        // Origin form; the pool adds scheme and authority where HTTP/2 needs them.
        parts.uri = match parts.uri.path_and_query() {
            Some(_) if parts.uri.authority().is_none() && parts.uri.scheme().is_none() => {
                std::mem::take(&mut parts.uri)
            }
            Some(pq) => Uri::from(pq.clone()),
            None => Uri::from(PathAndQuery::from_static("/")),
        };
        parts.version = Version::HTTP_11;
        let (req_body, body_failed) = ProxyBody::from_caller(body);
        let t0 = Instant::now();
        let req = Request::from_parts(parts, req_body);
        let result = if upgrade.is_asked() {
            // Boxed: rare, and its connect would otherwise grow every request's future.
            Box::pin(app.pool.send_upgrade(req)).await
        } else {
            app.pool.send(req).await
        };
        upstream_time = Some(t0.elapsed());
        match result {
            Ok(resp) => {
                match upgrade.answer(resp, tunnel.as_ref(), shared.config.tunnel_idle_timeout) {
                    Ok(mut resp) => {
                        // Our own version, not the application's (RFC 9112, 2.3).
                        *resp.version_mut() = Version::HTTP_11;
                        resp.map(ProxyBody::Upstream)
                    }
                    Err(unasked) => unasked.reply(),
                }
            }
            Err(e) if body_failed.get() => {
                tracing::debug!(error = %e, "the caller's request body failed");
                local_reply(StatusCode::BAD_REQUEST, BAD_REQUEST_BODY)
            }
            Err(e) => {
                tracing::warn!(app = %app.authority, error = %e, "local application unreachable");
                if e.is_connect() {
                    local_reply(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "mesh-proxy: application unavailable\n",
                    )
                } else {
                    local_reply(StatusCode::BAD_GATEWAY, "mesh-proxy: application error\n")
                }
            }
        }
    };
    abandoned.disarm();
    let status = response.status().as_u16();
    let elapsed = start.elapsed();
    snap.inbound.record(status, elapsed, upstream_time);
    if let Some(e) = entry {
        access::write(&AccessEntry {
            status,
            attempts: u32::from(upstream_time.is_some()),
            duration_us: micros(elapsed),
            upstream_us: upstream_time.map(micros),
            ..e
        });
    }
    response
}

fn principal_for_log(peer: &Peer) -> &str {
    peer.identity.as_deref().unwrap_or("")
}

pub(crate) fn micros(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}
