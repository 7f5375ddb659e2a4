//! Listener plumbing shared by the inbound, outbound and admin listeners: the accept loop with
//! its connection limit, per-connection HTTP serving with graceful shutdown, and the connection
//! tracker the drain waits on.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
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

/// Serve HTTP on one connection until it ends, or until shutdown, when in-flight requests are
/// let finish and the connection is closed. The handler gets the connection's [`Tunnel`]: a
/// request that switched protocols leaves its splice there, and it runs here once hyper has
/// handed the connection over.
pub async fn serve_http<I, F, Fut>(
    io: I,
    builder: &auto::Builder<TokioExecutor>,
    mut shutdown: ShutdownSignal,
    handler: F,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    F: Fn(Request<Incoming>, &Tunnel) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Response<ProxyBody>> + Send + 'static,
{
    let tunnel = Tunnel::default();
    let for_handler = tunnel.clone();
    let service = hyper::service::service_fn(move |req| {
        let fut = handler(req, &for_handler);
        async move { Ok::<_, std::convert::Infallible>(fut.await) }
    });
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
    tokio::pin!(conn);
    tokio::select! {
        result = conn.as_mut() => {
            if let Err(e) = result {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        }
        _ = shutdown.wait() => {
            conn.as_mut().graceful_shutdown();
            if let Err(e) = conn.as_mut().await {
                tracing::debug!(error = %e, "connection ended with an error while draining");
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
