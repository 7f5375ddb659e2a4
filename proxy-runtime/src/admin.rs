//! The admin listener: `/ready`, `/live`, `/metrics`, `/config`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::UNIX_EPOCH;

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use tokio::net::TcpStream;

use crate::http::ProxyBody;
use crate::lifecycle::Shared;
use crate::server::serve_http;

/// Content type of `/metrics` (OpenMetrics text, which Prometheus scrapes natively).
pub const METRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

pub async fn connection(shared: Arc<Shared>, tcp: TcpStream, _addr: SocketAddr) {
    let builder = shared.admin_server.clone();
    let shutdown = shared.stop_signal();
    serve_http(tcp, &builder, shutdown, move |req, _| {
        let shared = shared.clone();
        async move { handle(&shared, &req) }
    })
    .await;
}

fn reply(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<ProxyBody> {
    let mut r = Response::new(ProxyBody::Full(Some(body.into())));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

const TEXT: &str = "text/plain; charset=utf-8";

pub fn handle(shared: &Shared, req: &Request<Incoming>) -> Response<ProxyBody> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return reply(StatusCode::METHOD_NOT_ALLOWED, TEXT, "method not allowed\n");
    }
    match req.uri().path() {
        "/ready" => match shared.not_ready_reason() {
            None => reply(StatusCode::OK, TEXT, "ready\n"),
            Some(reason) => reply(
                StatusCode::SERVICE_UNAVAILABLE,
                TEXT,
                format!("not ready: {reason}\n"),
            ),
        },
        "/live" => reply(StatusCode::OK, TEXT, "live\n"),
        "/metrics" => reply(
            StatusCode::OK,
            METRICS_CONTENT_TYPE,
            shared.metrics.encode(),
        ),
        "/config" => {
            let body = serde_json::to_vec_pretty(&config_json(shared)).unwrap_or_default();
            reply(StatusCode::OK, "application/json", body)
        }
        _ => reply(
            StatusCode::NOT_FOUND,
            TEXT,
            "not found; try /ready, /live, /metrics, /config\n",
        ),
    }
}

/// The `/config` document.
pub fn config_json(shared: &Shared) -> serde_json::Value {
    let snap = shared.live.load_full();
    let tls = shared.tls.current();
    let addr = |a: Option<SocketAddr>| a.map(|a| a.to_string());
    let (last_error, last_cert_error) = {
        let s = shared.loader.lock();
        (s.last_error.clone(), s.last_cert_error.clone())
    };
    let artifact = snap.as_ref().map(|s| {
        serde_json::json!({
            "file_sha256": s.file_hash,
            "body_hash": s.header.body_hash,
            "format_version": s.header.format_version,
            "meshc_version": s.header.meshc_version,
            "source_hash": s.header.source_hash,
            "service": s.sidecar.service,
            "identity": s.sidecar.identity,
            "mtls": s.mesh.mtls,
            "authz_mode": s.sidecar.authz_mode,
            "destinations": s.counts.destinations,
            "route_entries": s.counts.entries,
            "clusters": s.counts.clusters,
            "policies": s.counts.policies,
            "loaded_at_unix_ms": s.loaded_at.duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0),
        })
    });
    serde_json::json!({
        "loaded": snap.is_some(),
        "ready": shared.not_ready_reason().is_none(),
        "draining": shared.is_draining(),
        "artifact_path": shared.config.artifact.display().to_string(),
        "artifact": artifact,
        "last_error": last_error,
        "certificate": {
            "identity": tls.identity,
            "fingerprint": tls.fingerprint,
            "last_error": last_cert_error,
        },
        "listeners": {
            "admin": addr(shared.listeners.admin.get().copied()),
            "inbound": addr(shared.listeners.inbound.get().copied()),
            "outbound": addr(shared.listeners.outbound.get().copied()),
        },
    })
}
