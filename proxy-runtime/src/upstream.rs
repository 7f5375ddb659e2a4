//! Connections to destination sidecars (mutual TLS) and to the local application (plain).
//!
//! Upstream clients are pooled hyper-util clients. One client per (destination identity,
//! protocol), shared by every snapshot, so an artifact reload keeps the open connections.
//! The connector verifies the destination's SPIFFE ID during the handshake and uses whatever
//! TLS state is current when the connection is made (rotated certificates apply to new
//! connections).

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::Uri;
use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::http::ProxyBody;
use crate::tls::{ALPN_H2, TlsLive};

/// Why a connection to a destination sidecar failed.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("upstream address `{0}` has no host or port")]
    Address(String),
    #[error("connect to `{addr}` timed out")]
    Timeout { addr: String },
    #[error("connect to `{addr}` failed: {source}")]
    Io { addr: String, source: io::Error },
    #[error("mutual TLS with `{addr}` failed: {source}")]
    Tls { addr: String, source: io::Error },
    #[error("no client TLS configuration: {0}")]
    Config(#[from] crate::tls::TlsError),
}

/// A mutual-TLS connection to a destination sidecar.
pub struct MeshStream {
    io: TokioIo<TlsStream<TcpStream>>,
    h2: bool,
}

impl Connection for MeshStream {
    fn connected(&self) -> Connected {
        let c = Connected::new();
        if self.h2 { c.negotiated_h2() } else { c }
    }
}

impl Read for MeshStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl Write for MeshStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }
}

/// Connects to a destination sidecar's inbound port with mutual TLS, requiring `identity`.
#[derive(Clone)]
pub struct MeshConnector {
    tls: Arc<TlsLive>,
    identity: Arc<str>,
    server_name: ServerName<'static>,
    h2: bool,
    connect_timeout: Duration,
}

impl tower_service::Service<Uri> for MeshConnector {
    type Response = MeshStream;
    type Error = ConnectError;
    type Future = Pin<Box<dyn Future<Output = Result<MeshStream, ConnectError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), ConnectError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let addr = uri
                .authority()
                .map(|a| a.as_str().to_string())
                .unwrap_or_default();
            let (Some(host), Some(port)) = (uri.host(), uri.port_u16()) else {
                return Err(ConnectError::Address(addr));
            };
            let host = host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string();
            let connect = async {
                let tcp = TcpStream::connect((host.as_str(), port))
                    .await
                    .map_err(|source| ConnectError::Io {
                        addr: addr.clone(),
                        source,
                    })?;
                let _ = tcp.set_nodelay(true);
                let cfg = this.tls.current().client_config(&this.identity, this.h2)?;
                let tls = TlsConnector::from(cfg)
                    .connect(this.server_name.clone(), tcp)
                    .await
                    .map_err(|source| ConnectError::Tls {
                        addr: addr.clone(),
                        source,
                    })?;
                let h2 = tls.get_ref().1.alpn_protocol() == Some(ALPN_H2);
                Ok(MeshStream {
                    io: TokioIo::new(tls),
                    h2,
                })
            };
            match tokio::time::timeout(this.connect_timeout, connect).await {
                Ok(r) => r,
                Err(_) => Err(ConnectError::Timeout { addr }),
            }
        })
    }
}

/// Pooled client to destination sidecars.
pub type MeshClient = Client<MeshConnector, ProxyBody>;
/// Pooled client to the local application.
pub type AppClient = Client<HttpConnector, ProxyBody>;

/// Client settings.
#[derive(Clone, Copy, Debug)]
pub struct ClientSettings {
    pub connect_timeout: Duration,
    pub pool_idle_timeout: Duration,
}

/// Long-lived upstream clients, shared across artifact reloads.
pub struct Upstreams {
    tls: Arc<TlsLive>,
    settings: ClientSettings,
    mesh: Mutex<HashMap<(String, bool), MeshClient>>,
    app_h1: AppClient,
    app_h2: AppClient,
}

/// TLS server name sent to a destination: `name.namespace.svc.cluster.local` from the
/// service's `namespace/name` (verification ignores it; it keys session resumption).
fn server_name(service: &str) -> ServerName<'static> {
    let dns = match service.split_once('/') {
        Some((ns, name)) => format!("{name}.{ns}.svc.cluster.local"),
        None => format!("{service}.svc.cluster.local"),
    };
    ServerName::try_from(dns).unwrap_or_else(|_| {
        ServerName::try_from("mesh.invalid")
            .unwrap_or(ServerName::IpAddress(std::net::Ipv4Addr::LOCALHOST.into()))
    })
}

impl Upstreams {
    pub fn new(tls: Arc<TlsLive>, settings: ClientSettings) -> Self {
        let app = |h2: bool| {
            let mut http = HttpConnector::new();
            http.set_nodelay(true);
            http.set_connect_timeout(Some(settings.connect_timeout));
            let mut b = Client::builder(TokioExecutor::new());
            b.pool_idle_timeout(settings.pool_idle_timeout)
                .pool_timer(TokioTimer::new())
                .timer(TokioTimer::new())
                .http2_only(h2);
            b.build(http)
        };
        Upstreams {
            tls,
            settings,
            mesh: Mutex::new(HashMap::new()),
            app_h1: app(false),
            app_h2: app(true),
        }
    }

    /// The client for destinations that must present `identity`. Called at load time, never
    /// per request.
    pub fn mesh_client(&self, identity: &str, service: &str, h2: bool) -> MeshClient {
        let key = (identity.to_string(), h2);
        let mut map = match self.mesh.lock() {
            Ok(m) => m,
            Err(poisoned) => poisoned.into_inner(),
        };
        map.entry(key)
            .or_insert_with(|| {
                let connector = MeshConnector {
                    tls: self.tls.clone(),
                    identity: identity.into(),
                    server_name: server_name(service),
                    h2,
                    connect_timeout: self.settings.connect_timeout,
                };
                let mut b = Client::builder(TokioExecutor::new());
                b.pool_idle_timeout(self.settings.pool_idle_timeout)
                    .pool_timer(TokioTimer::new())
                    .timer(TokioTimer::new());
                b.build(connector)
            })
            .clone()
    }

    /// The client to the local application (HTTP/1.1, or h2c when the app speaks HTTP/2).
    pub fn app_client(&self, h2: bool) -> AppClient {
        if h2 {
            self.app_h2.clone()
        } else {
            self.app_h1.clone()
        }
    }
}
