//! Listener plumbing shared by the inbound, outbound and admin listeners: the accept loop with
//! its connection limit, per-connection HTTP serving with graceful shutdown, and the connection
//! tracker the drain waits on.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, watch};

use crate::config::Config;
use crate::http::ProxyBody;
use crate::metrics::ListenerStats;
use crate::tunnel::Tunnel;

/// Open connections, for the drain.
#[derive(Debug, Default)]
pub struct ActiveConns {
    count: AtomicUsize,
    idle: Notify,
}

impl ActiveConns {
    pub fn count(&self) -> usize {
        self.count.load(Ordering::Acquire)
    }

    /// Wait until no connection is open.
    pub async fn wait_idle(&self) {
        loop {
            let notified = self.idle.notified();
            if self.count() == 0 {
                return;
            }
            notified.await;
        }
    }
}

/// Held by a connection task: releases the connection slot and the counters when dropped.
pub struct ConnGuard {
    _permit: OwnedSemaphorePermit,
    active: Arc<ActiveConns>,
    stats: ListenerStats,
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        self.stats.active.dec();
        if self.active.count.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.active.idle.notify_waiters();
        }
    }
}

/// Shutdown signal: `true` once draining has begun.
#[derive(Clone, Debug)]
pub struct ShutdownSignal(watch::Receiver<bool>);

impl ShutdownSignal {
    pub fn new(rx: watch::Receiver<bool>) -> Self {
        ShutdownSignal(rx)
    }

    /// Resolves once shutdown has begun (immediately if it already has).
    pub async fn wait(&mut self) {
        let _ = self.0.wait_for(|v| *v).await;
    }
}

/// The hyper server settings for a listener.
pub fn server_builder(config: &Config) -> auto::Builder<TokioExecutor> {
    let mut b = auto::Builder::new(TokioExecutor::new());
    b.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(config.header_read_timeout)
        .max_buf_size(config.max_header_bytes.max(8192))
        .keep_alive(true);
    b.http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(config.max_header_bytes).unwrap_or(u32::MAX));
    b
}

/// How a listener serves its connections: hyper's settings, and the connection-level
/// timeouts hyper does not keep.
pub struct HttpServer {
    pub builder: auto::Builder<TokioExecutor>,
    /// A connection that has not started a request this long after it began to be served is
    /// closed (`--header-read-timeout`).
    pub first_request: Duration,
    /// A connection that starts no new request for this long is shut down gracefully
    /// (`--idle-timeout`); `None`: never.
    pub idle: Option<Duration>,
    /// The listener's counters.
    pub stats: ListenerStats,
}

impl HttpServer {
    /// The inbound or outbound listener's: [`server_builder`] and the configured timeouts.
    pub fn new(config: &Config, stats: ListenerStats) -> Self {
        HttpServer {
            builder: server_builder(config),
            first_request: config.header_read_timeout,
            idle: config.idle_timeout,
            stats,
        }
    }
}

/// How many quiet checks make an idle connection: checking four times per idle timeout closes
/// a connection between one and one and a quarter idle timeouts after its last request began,
/// without reading the clock on the request path.
const IDLE_CHECKS: u32 = 4;

/// Serve HTTP on one connection until it ends, or until shutdown, when in-flight requests are
/// let finish and the connection is closed. The handler gets the connection's [`Tunnel`]: a
/// request that switched protocols leaves its splice there, and it runs here once hyper has
/// handed the connection over.
///
/// Connections that send nothing are closed: hyper times out a request head it has begun to
/// read (HTTP/1.1, also between keep-alive requests), but not the first bytes the automatic
/// protocol detection waits for, nor an HTTP/2 connection with no stream. So a connection that
/// has started no request within [`HttpServer::first_request`] is dropped, and one that starts
/// no new request for [`HttpServer::idle`] is shut down gracefully (an HTTP/2 `GOAWAY`: streams
/// still open finish first). Requests are counted, not timed: the request path reads no clock
/// for this.
pub async fn serve_http<I, F, Fut>(
    io: I,
    server: &HttpServer,
    mut shutdown: ShutdownSignal,
    handler: F,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    F: Fn(Request<Incoming>, &Tunnel) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Response<ProxyBody>> + Send + 'static,
{
    let tunnel = Tunnel::default();
    let for_handler = tunnel.clone();
    let started = Arc::new(AtomicU64::new(0));
    let counter = started.clone();
    let service = hyper::service::service_fn(move |req| {
        counter.fetch_add(1, Ordering::Relaxed);
        let fut = handler(req, &for_handler);
        async move { Ok::<_, std::convert::Infallible>(fut.await) }
    });
    let conn = server
        .builder
        .serve_connection_with_upgrades(TokioIo::new(io), service);
    tokio::pin!(conn);
    let timer = tokio::time::sleep(server.first_request);
    tokio::pin!(timer);
    // Requests started as of the last check, and the checks in a row that saw no new one.
    let (mut seen, mut quiet) = (0u64, 0u32);
    let mut watching = true;
    let mut closing = false;
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                break;
            }
            () = timer.as_mut(), if watching => {
                let now = started.load(Ordering::Relaxed);
                if now == 0 {
                    server.stats.closed_no_request.inc();
                    tracing::debug!(
                        timeout_ms = server.first_request.as_millis(),
                        "closing a connection that started no request within the header read timeout"
                    );
                    // Dropping the connection closes it; no request means no tunnel either.
                    return;
                }
                let Some(idle) = server.idle else {
                    watching = false;
                    continue;
                };
                if now == seen {
                    quiet += 1;
                } else {
                    (seen, quiet) = (now, 0);
                }
                if quiet >= IDLE_CHECKS {
                    server.stats.closed_idle.inc();
                    tracing::debug!(
                        timeout_ms = idle.as_millis(),
                        "shutting down a connection that started no request for the idle timeout"
                    );
                    conn.as_mut().graceful_shutdown();
                    (watching, closing) = (false, true);
                } else {
                    let period = (idle / IDLE_CHECKS).max(Duration::from_millis(1));
                    timer.as_mut().reset(tokio::time::Instant::now() + period);
                }
            }
            _ = shutdown.wait(), if !closing => {
                conn.as_mut().graceful_shutdown();
                if let Err(e) = conn.as_mut().await {
                    tracing::debug!(error = %e, "connection ended with an error while draining");
                }
                break;
            }
        }
    }
    tunnel.run().await;
}

/// Accept connections until shutdown, each holding a slot of `limit` (shared between
/// listeners), and hand each to `on_conn` in its own task.
pub async fn accept_loop<F, Fut>(
    listener: TcpListener,
    limit: Arc<Semaphore>,
    active: Arc<ActiveConns>,
    stats: ListenerStats,
    mut shutdown: ShutdownSignal,
    on_conn: F,
) where
    F: Fn(TcpStream, SocketAddr) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    loop {
        let (tcp, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
            _ = shutdown.wait() => return,
        };
        // The slot is taken after accepting, so that listeners sharing a limit do not hold
        // slots while idle; at the limit this listener holds one accepted connection and
        // accepts no more until a slot frees.
        let permit = match limit.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => tokio::select! {
                p = limit.clone().acquire_owned() => match p {
                    Ok(p) => p,
                    Err(_) => return,
                },
                _ = shutdown.wait() => return,
            },
        };
        let _ = tcp.set_nodelay(true);
        stats.accepted.inc();
        stats.active.inc();
        active.count.fetch_add(1, Ordering::AcqRel);
        let guard = ConnGuard {
            _permit: permit,
            active: active.clone(),
            stats: stats.clone(),
        };
        let fut = on_conn(tcp, peer);
        tokio::spawn(async move {
            fut.await;
            drop(guard);
        });
    }
}
