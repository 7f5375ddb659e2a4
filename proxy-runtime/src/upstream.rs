//! Connections to destination sidecars (mutual TLS) and to the local application (plain).
//!
//! One [`EndpointPool`] per upstream address (and, for sidecars, expected identity and
//! protocol), created at load time and kept by the snapshot's endpoint, so the request path
//! touches no map: it pops an idle HTTP/1.1 connection (or clones the HTTP/2 one), sends, and
//! puts the connection back as soon as its response has been read off the socket. Pools are
//! shared by every snapshot through [`Upstreams`], so an artifact reload keeps the open
//! connections.
//!
//! Each connection is one task driving hyper's client connection. A sidecar connection verifies
//! the destination's SPIFFE ID during the handshake and uses whatever TLS state is current when
//! it is made (rotated certificates apply to new connections); ALPN decides HTTP/2 or HTTP/1.1.
//! Idle connections are closed after `pool_idle_timeout` by one timer per pool that runs only
//! while the pool holds idle connections.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::client::conn::{http1, http2};
use hyper::header::{self, HeaderValue};
use hyper::http::uri::{Authority, Scheme};
use hyper::{Request, Response, Uri};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::http::ProxyBody;
use crate::tls::{ALPN_H2, TlsLive};

/// Why a connection to an upstream could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("connect to `{addr}` timed out")]
    Timeout { addr: String },
    #[error("connect to `{addr}` failed: {source}")]
    Io { addr: String, source: io::Error },
    #[error("mutual TLS with `{addr}` failed: {source}")]
    Tls { addr: String, source: io::Error },
    #[error("no client TLS configuration: {0}")]
    Config(#[from] crate::tls::TlsError),
}

/// Why an upstream request failed.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error(transparent)]
    Connect(#[from] ConnectError),
    #[error(transparent)]
    Http(#[from] hyper::Error),
}

impl UpstreamError {
    /// No connection could be made (the request was not sent anywhere).
    pub fn is_connect(&self) -> bool {
        matches!(self, UpstreamError::Connect(_))
    }
}

/// Client settings.
#[derive(Clone, Copy, Debug)]
pub struct ClientSettings {
    pub connect_timeout: Duration,
    pub pool_idle_timeout: Duration,
}

/// How a pool opens connections.
enum Dial {
    /// Plain TCP to the local application; HTTP/2 with prior knowledge (h2c) when `h2`.
    Plain { h2: bool },
    /// Mutual TLS to a destination sidecar presenting `identity`; HTTP/2 when ALPN picks it
    /// (offered only when `offer_h2`).
    Mesh {
        tls: Arc<TlsLive>,
        identity: Arc<str>,
        server_name: ServerName<'static>,
        offer_h2: bool,
    },
}

/// A new connection before its HTTP handshake.
enum Dialed {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

type H1 = http1::SendRequest<ProxyBody>;
type H2 = http2::SendRequest<ProxyBody>;

/// One connection's request handle.
enum Conn {
    H1(H1),
    H2(H2),
}

#[derive(Default)]
struct PoolState {
    /// Idle HTTP/1.1 connections, most recently used last, with the time they became idle.
    idle: Vec<(H1, Instant)>,
    /// The HTTP/2 connection (multiplexed), with the time it was last used.
    h2: Option<(H2, Instant)>,
    /// Whether the idle reaper task is running.
    reaper: bool,
}

/// The connections to one upstream address.
pub struct EndpointPool {
    authority: Authority,
    /// `authority` parsed, when it is an IP address and port (no resolver needed).
    addr: Option<SocketAddr>,
    scheme: Scheme,
    dial: Dial,
    settings: ClientSettings,
    state: Mutex<PoolState>,
    /// Held while opening a connection that may turn out HTTP/2, so that concurrent first
    /// requests share it rather than each opening one.
    connecting: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for EndpointPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EndpointPool")
            .field("authority", &self.authority)
            .finish_non_exhaustive()
    }
}

/// A bound on the connections one request may try. Only pooled connections that turned out
/// closed before the request was written are retried, each taken out of the pool, so the pool's
/// size bounds the retries already; this is a safety net.
const MAX_TRIES: u32 = 64;

impl EndpointPool {
    fn new(authority: Authority, dial: Dial, settings: ClientSettings) -> Self {
        let scheme = match dial {
            Dial::Plain { .. } => Scheme::HTTP,
            Dial::Mesh { .. } => Scheme::HTTPS,
        };
        EndpointPool {
            addr: authority.as_str().parse().ok(),
            authority,
            scheme,
            dial,
            settings,
            state: Mutex::new(PoolState::default()),
            connecting: tokio::sync::Mutex::new(()),
        }
    }

    /// A pool to a plain-HTTP address (the local application).
    pub fn plain(authority: Authority, h2: bool, settings: ClientSettings) -> Self {
        Self::new(authority, Dial::Plain { h2 }, settings)
    }

    pub fn authority(&self) -> &Authority {
        &self.authority
    }

    fn lock(&self) -> MutexGuard<'_, PoolState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Idle HTTP/1.1 connections held (for tests and diagnostics).
    pub fn idle_connections(&self) -> usize {
        self.lock().idle.len()
    }

    /// Send one request, its URI in origin form (path and query). A pooled connection that
    /// turns out closed before the request was written is replaced by another, so a request is
    /// never lost to a keep-alive race; once written, an error is returned as is.
    pub async fn send(
        self: &Arc<Self>,
        mut req: Request<ProxyBody>,
    ) -> Result<Response<UpstreamBody>, UpstreamError> {
        let mut tries = 0;
        loop {
            tries += 1;
            let (conn, reused) = match self.checkout() {
                Some(c) => (c, true),
                None if self.may_be_h2() => {
                    let _gate = self.connecting.lock().await;
                    match self.checkout() {
                        Some(c) => (c, true),
                        None => (Box::pin(self.connect()).await?, false),
                    }
                }
                // Boxed: the connect future (TCP, TLS, HTTP/2 handshake) is large, and would
                // otherwise be part of every request's future, copied with it.
                None => (Box::pin(self.connect()).await?, false),
            };
            let retry_allowed = reused && tries < MAX_TRIES;
            match conn {
                Conn::H1(mut tx) => match tx.try_send_request(req).await {
                    Ok(resp) => return Ok(self.h1_response(resp, tx)),
                    Err(mut e) => match e.take_message() {
                        Some(r) if retry_allowed => req = r,
                        _ => return Err(UpstreamError::Http(e.into_error())),
                    },
                },
                Conn::H2(mut tx) => {
                    let origin = std::mem::take(req.uri_mut());
                    let host = req.headers_mut().remove(header::HOST);
                    let mut parts = origin.clone().into_parts();
                    parts.scheme = Some(self.scheme.clone());
                    parts.authority = Some(self.h2_authority(host.as_ref()));
                    *req.uri_mut() = Uri::from_parts(parts).unwrap_or_default();
                    match tx.try_send_request(req).await {
                        Ok(resp) => {
                            return Ok(resp.map(|body| UpstreamBody {
                                body,
                                release: None,
                            }));
                        }
                        Err(mut e) => match e.take_message() {
                            Some(mut r) if retry_allowed => {
                                // The shared connection refused a request it never wrote:
                                // the next try opens a new one (which may be HTTP/1.1).
                                *r.uri_mut() = origin;
                                if let Some(h) = host {
                                    r.headers_mut().insert(header::HOST, h);
                                }
                                self.lock().h2 = None;
                                req = r;
                            }
                            _ => return Err(UpstreamError::Http(e.into_error())),
                        },
                    }
                }
            }
        }
    }

    /// The `:authority` of a request sent over HTTP/2: its `Host` (which the caller addressed,
    /// and which the HTTP/1.1 legs carry as is) when that is a valid authority, else this
    /// pool's address. The `Host` header itself is not sent along: RFC 9113, section 8.3.1,
    /// forbids a `Host` that differs from `:authority`, and servers such as nginx refuse a
    /// request that has both.
    fn h2_authority(&self, host: Option<&HeaderValue>) -> Authority {
        host.and_then(|h| Authority::try_from(h.as_bytes()).ok())
            .unwrap_or_else(|| self.authority.clone())
    }

    /// Send a request that asks to switch protocols, on a new HTTP/1.1 connection of its own
    /// (an `Upgrade` has no HTTP/2 form here, and a switched connection can never go back to
    /// the pool). A `101` answer carries the connection's upgrade (`hyper::upgrade::on`);
    /// any other answer is an ordinary response, and the connection closes after it.
    pub async fn send_upgrade(
        self: &Arc<Self>,
        req: Request<ProxyBody>,
    ) -> Result<Response<UpstreamBody>, UpstreamError> {
        let mut tx = Box::pin(self.connect_h1_upgradable()).await?;
        let resp = tx.send_request(req).await?;
        Ok(resp.map(|body| UpstreamBody {
            body,
            release: None,
        }))
    }

    fn may_be_h2(&self) -> bool {
        match self.dial {
            Dial::Plain { h2 } => h2,
            Dial::Mesh { offer_h2, .. } => offer_h2,
        }
    }

    /// A connection ready for a request: the HTTP/2 one, else the most recently used idle
    /// HTTP/1.1 one. Closed connections found on the way are dropped.
    fn checkout(&self) -> Option<Conn> {
        let mut st = self.lock();
        if let Some((tx, used)) = &mut st.h2 {
            if !tx.is_closed() {
                *used = Instant::now();
                return Some(Conn::H2(tx.clone()));
            }
            st.h2 = None;
        }
        let mut i = st.idle.len();
        while i > 0 {
            i -= 1;
            let tx = &st.idle[i].0;
            if tx.is_ready() {
                return Some(Conn::H1(st.idle.remove(i).0));
            }
            if tx.is_closed() {
                st.idle.remove(i);
            }
        }
        None
    }

    /// Attach the connection to the response: back in the pool at once when the response has
    /// been read whole (the connection is waiting for its next request), else when its body
    /// has been.
    fn h1_response(self: &Arc<Self>, resp: Response<Incoming>, tx: H1) -> Response<UpstreamBody> {
        let release = if tx.is_ready() || resp.body().is_end_stream() {
            self.release(tx);
            None
        } else {
            Some((tx, self.clone()))
        };
        resp.map(|body| UpstreamBody { body, release })
    }

    fn release(self: &Arc<Self>, tx: H1) {
        if tx.is_closed() {
            return;
        }
        let mut st = self.lock();
        st.idle.push((tx, Instant::now()));
        self.arm_reaper(&mut st);
    }

    /// Start the idle reaper unless it runs (it stops once the pool holds nothing idle).
    fn arm_reaper(self: &Arc<Self>, st: &mut PoolState) {
        if st.reaper {
            return;
        }
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            st.reaper = true;
            rt.spawn(reap(Arc::downgrade(self), self.settings.pool_idle_timeout));
        }
    }

    /// Open a new connection.
    async fn connect(self: &Arc<Self>) -> Result<Conn, UpstreamError> {
        match self.dial(self.may_be_h2()).await? {
            Dialed::Plain(tcp) => self.handshake(tcp, self.may_be_h2()).await,
            Dialed::Tls(tls) => {
                let h2 = tls.get_ref().1.alpn_protocol() == Some(ALPN_H2);
                self.handshake(tls, h2).await
            }
        }
    }

    /// Open a new HTTP/1.1 connection whose task hands the connection over when a response
    /// switches protocols.
    async fn connect_h1_upgradable(&self) -> Result<H1, UpstreamError> {
        async fn h1<I>(io: I) -> Result<H1, UpstreamError>
        where
            I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
        {
            let (tx, conn) = http1::Builder::new().handshake(TokioIo::new(io)).await?;
            tokio::spawn(async move {
                if let Err(e) = conn.with_upgrades().await {
                    tracing::debug!(error = %e, "upstream connection ended with an error");
                }
            });
            Ok(tx)
        }
        match self.dial(false).await? {
            Dialed::Plain(tcp) => h1(tcp).await,
            Dialed::Tls(tls) => h1(tls).await,
        }
    }

    /// TCP, and mutual TLS for a destination sidecar (offering HTTP/2 by ALPN when `h2`),
    /// within the connect timeout.
    async fn dial(&self, h2: bool) -> Result<Dialed, UpstreamError> {
        let addr = self.authority.as_str();
        let timeout = self.settings.connect_timeout;
        let dialed = match &self.dial {
            Dial::Plain { .. } => {
                tokio::time::timeout(timeout, async {
                    Ok::<_, ConnectError>(Dialed::Plain(self.tcp().await?))
                })
                .await
            }
            Dial::Mesh {
                tls,
                identity,
                server_name,
                ..
            } => {
                let connect = async {
                    let tcp = self.tcp().await?;
                    let cfg = tls.current().client_config(identity, h2)?;
                    TlsConnector::from(cfg)
                        .connect(server_name.clone(), tcp)
                        .await
                        .map(|tls| Dialed::Tls(Box::new(tls)))
                        .map_err(|source| {
                            // A misconfiguration (wrong SPIFFE ID or CA, either side's
                            // certificate refused) rather than a network hiccup: said once per
                            // failed connection, which the caller gets as 503.
                            if crate::tls::is_tls_failure(&source) {
                                tracing::warn!(
                                    endpoint = addr,
                                    expected_identity = &**identity,
                                    error = %crate::tls::handshake_error(&source),
                                    "mutual TLS with a destination sidecar failed"
                                );
                            }
                            ConnectError::Tls {
                                addr: addr.to_string(),
                                source,
                            }
                        })
                };
                tokio::time::timeout(timeout, connect).await
            }
        };
        match dialed {
            Ok(r) => Ok(r?),
            Err(_) => Err(timed_out(addr)),
        }
    }

    async fn tcp(&self) -> Result<TcpStream, ConnectError> {
        let io_error = |source| ConnectError::Io {
            addr: self.authority.as_str().to_string(),
            source,
        };
        let tcp = match self.addr {
            Some(a) => TcpStream::connect(a).await,
            None => {
                let host = self.authority.host();
                let host = host.trim_start_matches('[').trim_end_matches(']');
                let port = self.authority.port_u16().unwrap_or(80);
                TcpStream::connect((host, port)).await
            }
        }
        .map_err(io_error)?;
        let _ = tcp.set_nodelay(true);
        Ok(tcp)
    }

    /// HTTP handshake on a new connection, whose task is spawned; an HTTP/2 connection is
    /// stored for sharing at once.
    async fn handshake<I>(self: &Arc<Self>, io: I, h2: bool) -> Result<Conn, UpstreamError>
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let io = TokioIo::new(io);
        if h2 {
            let (tx, conn) = http2::Builder::new(TokioExecutor::new())
                .timer(TokioTimer::new())
                .handshake(io)
                .await?;
            tokio::spawn(async move {
                if let Err(e) = conn.await {
                    tracing::debug!(error = %e, "upstream HTTP/2 connection ended with an error");
                }
            });
            let mut st = self.lock();
            if st.h2.as_ref().is_none_or(|(h, _)| h.is_closed()) {
                st.h2 = Some((tx.clone(), Instant::now()));
                self.arm_reaper(&mut st);
            }
            Ok(Conn::H2(tx))
        } else {
            let (tx, conn) = http1::Builder::new().handshake(io).await?;
            tokio::spawn(async move {
                if let Err(e) = conn.await {
                    tracing::debug!(error = %e, "upstream connection ended with an error");
                }
            });
            Ok(Conn::H1(tx))
        }
    }
}

fn timed_out(addr: &str) -> UpstreamError {
    UpstreamError::Connect(ConnectError::Timeout {
        addr: addr.to_string(),
    })
}

/// Close connections idle for `timeout`, until the pool is gone or holds nothing idle.
async fn reap(pool: Weak<EndpointPool>, timeout: Duration) {
    let mut wait = timeout;
    loop {
        tokio::time::sleep(wait).await;
        let Some(pool) = pool.upgrade() else { return };
        let mut st = pool.lock();
        let now = Instant::now();
        let fresh = |since: &Instant| now.saturating_duration_since(*since) < timeout;
        st.idle
            .retain(|(tx, since)| !tx.is_closed() && fresh(since));
        if st
            .h2
            .as_ref()
            .is_some_and(|(tx, used)| tx.is_closed() || !fresh(used))
        {
            st.h2 = None;
        }
        let oldest = st
            .idle
            .iter()
            .map(|(_, since)| *since)
            .chain(st.h2.as_ref().map(|(_, used)| *used))
            .min();
        match oldest {
            Some(t) => {
                wait = timeout.saturating_sub(now.saturating_duration_since(t))
                    + Duration::from_millis(1);
            }
            None => {
                st.reaper = false;
                return;
            }
        }
    }
}

/// A response body from an upstream. On HTTP/1.1, it holds its connection until the body has
/// been read whole, then puts the connection back in its pool; dropped earlier, the connection
/// is closed.
pub struct UpstreamBody {
    body: Incoming,
    release: Option<(H1, Arc<EndpointPool>)>,
}

impl std::fmt::Debug for UpstreamBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamBody").finish_non_exhaustive()
    }
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.body).poll_frame(cx);
        match &r {
            Poll::Ready(None) => this.finish(),
            Poll::Ready(Some(Ok(_))) if this.body.is_end_stream() => this.finish(),
            Poll::Ready(Some(Err(_))) => this.release = None,
            _ => {}
        }
        r
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl UpstreamBody {
    fn finish(&mut self) {
        if let Some((tx, pool)) = self.release.take() {
            pool.release(tx);
        }
    }
}

/// Pools, keyed by address, expected identity (none for the application) and protocol.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct PoolKey {
    authority: String,
    identity: Option<String>,
    h2: bool,
}

/// Long-lived upstream pools, shared across artifact reloads.
pub struct Upstreams {
    tls: Arc<TlsLive>,
    settings: ClientSettings,
    pools: Mutex<HashMap<PoolKey, Arc<EndpointPool>>>,
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
        Upstreams {
            tls,
            settings,
            pools: Mutex::new(HashMap::new()),
        }
    }

    fn pool(&self, key: PoolKey, make: impl FnOnce() -> EndpointPool) -> Arc<EndpointPool> {
        let mut map = self
            .pools
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.entry(key).or_insert_with(|| Arc::new(make())).clone()
    }

    /// The pool to a destination sidecar at `authority` that must present `identity`. Called
    /// at load time, never per request.
    pub fn mesh_pool(
        &self,
        authority: &Authority,
        identity: &str,
        service: &str,
        h2: bool,
    ) -> Arc<EndpointPool> {
        let key = PoolKey {
            authority: authority.as_str().to_string(),
            identity: Some(identity.to_string()),
            h2,
        };
        self.pool(key, || {
            let dial = Dial::Mesh {
                tls: self.tls.clone(),
                identity: identity.into(),
                server_name: server_name(service),
                offer_h2: h2,
            };
            EndpointPool::new(authority.clone(), dial, self.settings)
        })
    }

    /// The pool to the local application (HTTP/1.1, or h2c when the app speaks HTTP/2).
    pub fn app_pool(&self, authority: &Authority, h2: bool) -> Arc<EndpointPool> {
        let key = PoolKey {
            authority: authority.as_str().to_string(),
            identity: None,
            h2,
        };
        self.pool(key, || {
            EndpointPool::plain(authority.clone(), h2, self.settings)
        })
    }

    /// Forget the pools no snapshot refers to any more, closing their idle connections.
    pub fn prune(&self) {
        let mut map = self
            .pools
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.retain(|_, p| Arc::strong_count(p) > 1);
    }

    /// Pools held (for tests and diagnostics).
    pub fn pool_count(&self) -> usize {
        self.pools
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .len()
    }
}
