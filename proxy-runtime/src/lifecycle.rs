//! Start, run and drain a proxy: the shared state every listener works from, listener binding,
//! the reload task, signals and the drain.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::loader::{self, ArtifactOutcome, LoaderState};
use crate::metrics::{ListenerStats, Metrics};
use crate::server::{ActiveConns, HttpServer, ShutdownSignal, accept_loop};
use crate::snapshot::Snapshot;
use crate::tls::{TlsError, TlsFiles, TlsLive};
use crate::upstream::{ClientSettings, Upstreams};

/// Why the proxy could not start. The binary exits with status 2.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("certificates: {0}")]
    Tls(#[from] TlsError),
    #[error("cannot listen on {addr} ({listener}): {source}")]
    Bind {
        listener: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// A mutex that shrugs off poisoning (the data it guards stays consistent on every path).
#[derive(Debug, Default)]
pub struct Lock<T>(Mutex<T>);

impl<T> Lock<T> {
    pub fn new(v: T) -> Self {
        Lock(Mutex::new(v))
    }
    pub fn lock(&self) -> MutexGuard<'_, T> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Bound listener addresses (set once each).
#[derive(Debug, Default)]
pub struct ListenerAddrs {
    pub admin: OnceLock<SocketAddr>,
    pub inbound: OnceLock<SocketAddr>,
    pub outbound: OnceLock<SocketAddr>,
}

/// State shared by every listener, the reload task and the admin endpoints.
pub struct Shared {
    pub config: Config,
    pub metrics: Metrics,
    pub tls: Arc<TlsLive>,
    pub upstreams: Upstreams,
    /// The artifact being served; `None` until a valid one is loaded.
    pub live: ArcSwapOption<Snapshot>,
    pub loader: Lock<LoaderState>,
    pub listeners: ListenerAddrs,
    pub(crate) inbound_server: Arc<HttpServer>,
    pub(crate) outbound_server: Arc<HttpServer>,
    pub(crate) admin_server: Arc<HttpServer>,
    draining: AtomicBool,
    /// Fired when draining begins: the inbound and outbound listeners stop.
    shutdown_tx: watch::Sender<bool>,
    /// Fired once drained: the admin listener (which answers `/ready` 503 meanwhile) stops.
    stop_tx: watch::Sender<bool>,
    conn_limit: Arc<Semaphore>,
    admin_limit: Arc<Semaphore>,
    active: Arc<ActiveConns>,
    admin_active: Arc<ActiveConns>,
    tasks: Lock<Vec<JoinHandle<()>>>,
    admin_task: Lock<Option<JoinHandle<()>>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ListenerKind {
    Admin,
    Inbound,
    Outbound,
}

impl ListenerKind {
    fn name(self) -> &'static str {
        match self {
            ListenerKind::Admin => "admin",
            ListenerKind::Inbound => "inbound",
            ListenerKind::Outbound => "outbound",
        }
    }
}

impl Shared {
    /// Resolves when draining begins.
    pub fn shutdown_signal(&self) -> ShutdownSignal {
        ShutdownSignal::new(self.shutdown_tx.subscribe())
    }

    /// Resolves when the proxy has drained and stops altogether.
    pub fn stop_signal(&self) -> ShutdownSignal {
        ShutdownSignal::new(self.stop_tx.subscribe())
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    /// Why `/ready` answers 503, or `None` when ready.
    pub fn not_ready_reason(&self) -> Option<&'static str> {
        if self.is_draining() {
            Some("draining")
        } else if self.live.load().is_none() {
            Some("no valid artifact loaded")
        } else if self.listeners.inbound.get().is_none() || self.listeners.outbound.get().is_none()
        {
            Some("listeners not bound")
        } else {
            None
        }
    }

    fn slot(&self, kind: ListenerKind) -> &OnceLock<SocketAddr> {
        match kind {
            ListenerKind::Admin => &self.listeners.admin,
            ListenerKind::Inbound => &self.listeners.inbound,
            ListenerKind::Outbound => &self.listeners.outbound,
        }
    }

    fn stats(&self, kind: ListenerKind) -> ListenerStats {
        match kind {
            ListenerKind::Admin => self.metrics.admin.clone(),
            ListenerKind::Inbound => self.metrics.inbound.clone(),
            ListenerKind::Outbound => self.metrics.outbound.clone(),
        }
    }

    /// The address a listener should use: the flag, else the artifact's port.
    fn wanted(&self, kind: ListenerKind) -> Option<SocketAddr> {
        let flag = match kind {
            ListenerKind::Admin => self.config.admin_addr,
            ListenerKind::Inbound => self.config.inbound_addr,
            ListenerKind::Outbound => self.config.outbound_addr,
        };
        if flag.is_some() {
            return flag;
        }
        let snap = self.live.load();
        let sidecar = &snap.as_ref()?.sidecar;
        Some(match kind {
            ListenerKind::Admin => SocketAddr::from(([127, 0, 0, 1], sidecar.admin_port)),
            ListenerKind::Inbound => SocketAddr::from(([0, 0, 0, 0], sidecar.inbound_port)),
            ListenerKind::Outbound => SocketAddr::from(([127, 0, 0, 1], sidecar.outbound_port)),
        })
    }

    /// Bind every listener whose address is known and that is not bound yet.
    fn ensure_listeners(self: &Arc<Self>) -> Vec<StartError> {
        let mut errors = Vec::new();
        if self.is_draining() {
            return errors;
        }
        for kind in [
            ListenerKind::Admin,
            ListenerKind::Inbound,
            ListenerKind::Outbound,
        ] {
            if let Some(bound) = self.slot(kind).get() {
                if let Some(w) = self.wanted(kind)
                    && w.port() != bound.port()
                    && w.port() != 0
                {
                    tracing::warn!(
                        listener = kind.name(),
                        bound = %bound,
                        artifact = %w,
                        "listener port changed in the artifact; restart the proxy to apply it"
                    );
                }
                continue;
            }
            let Some(addr) = self.wanted(kind) else {
                continue;
            };
            match bind(addr) {
                Ok(listener) => {
                    let local = listener.local_addr().unwrap_or(addr);
                    let _ = self.slot(kind).set(local);
                    tracing::info!(listener = kind.name(), addr = %local, "listening");
                    let task = self.spawn_accept(kind, listener);
                    if kind == ListenerKind::Admin {
                        *self.admin_task.lock() = Some(task);
                    } else {
                        self.tasks.lock().push(task);
                    }
                }
                Err(source) => {
                    errors.push(StartError::Bind {
                        listener: kind.name(),
                        addr,
                        source,
                    });
                }
            }
        }
        errors
    }

    fn spawn_accept(self: &Arc<Self>, kind: ListenerKind, listener: TcpListener) -> JoinHandle<()> {
        let shared = self.clone();
        let admin = kind == ListenerKind::Admin;
        let limit = if admin {
            self.admin_limit.clone()
        } else {
            self.conn_limit.clone()
        };
        let active = if admin {
            self.admin_active.clone()
        } else {
            self.active.clone()
        };
        let signal = if admin {
            self.stop_signal()
        } else {
            self.shutdown_signal()
        };
        tokio::spawn(accept_loop(
            listener,
            limit,
            active,
            self.stats(kind),
            signal,
            move |tcp, addr| {
                let shared = shared.clone();
                async move {
                    match kind {
                        ListenerKind::Admin => crate::admin::connection(shared, tcp, addr).await,
                        ListenerKind::Inbound => {
                            crate::inbound::connection(shared, tcp, addr).await;
                        }
                        ListenerKind::Outbound => {
                            crate::outbound::connection(shared, tcp, addr).await;
                        }
                    }
                }
            },
        ))
    }
}

fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.set_nodelay(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

/// Re-read artifact and certificates off the request threads.
async fn reload_all(shared: &Arc<Shared>) -> ArtifactOutcome {
    let s = shared.clone();
    let outcome = tokio::task::spawn_blocking(move || {
        loader::reload_certs(&s);
        loader::reload_artifact(&s)
    })
    .await;
    let outcome =
        outcome.unwrap_or_else(|e| ArtifactOutcome::Failed(format!("reload task failed: {e}")));
    for e in shared.ensure_listeners() {
        tracing::error!(error = %e, "listener not bound; not ready");
    }
    outcome
}

/// The file watcher and the channel its events bump.
struct Watching {
    _watcher: Option<loader::Watcher>,
    /// Kept as long as the task runs, so `events.changed()` never fails (without a watcher it
    /// never fires either).
    _events_tx: watch::Sender<u64>,
    events: watch::Receiver<u64>,
}

/// Start watching the folders of the artifact and the certificate files. Done before the first
/// read, so that no change made once [`start`] has returned can go unnoticed.
fn start_watching(config: &Config) -> Watching {
    let (events_tx, events) = watch::channel(0u64);
    let dirs = loader::watch_dirs(&[
        &config.artifact,
        &config.cert,
        &config.key,
        &config.trust_bundle,
    ]);
    Watching {
        _watcher: loader::start_watcher(&dirs, config.watch_debounce, events_tx.clone()),
        _events_tx: events_tx,
        events,
    }
}

/// Re-read on watcher events (debounced by the watcher) and periodically, until shutdown.
async fn reload_task(shared: Arc<Shared>, watching: Watching) {
    let Watching {
        _watcher,
        _events_tx,
        mut events,
    } = watching;
    let c = &shared.config;
    let mut shutdown = shared.shutdown_signal();
    loop {
        // Until the first good artifact, look again every second.
        let period = match (shared.live.load().is_some(), c.reload_interval) {
            (true, p) => p,
            (false, Some(p)) => Some(p.min(Duration::from_secs(1))),
            (false, None) => Some(Duration::from_secs(1)),
        };
        let tick = async {
            match period {
                Some(p) => tokio::time::sleep(p).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = events.changed() => {
                events.borrow_and_update();
            }
            _ = tick => {}
            _ = shutdown.wait() => return,
        }
        reload_all(&shared).await;
    }
}

/// A running proxy.
pub struct ProxyHandle {
    shared: Arc<Shared>,
}

/// Start a proxy: load certificates (required) and the artifact (retried until valid), bind
/// listeners, start watching.
pub async fn start(config: Config) -> Result<ProxyHandle, StartError> {
    let files = TlsFiles {
        cert: config.cert.clone(),
        key: config.key.clone(),
        trust_bundle: config.trust_bundle.clone(),
    };
    let tls = Arc::new(TlsLive::load(files)?);
    tracing::info!(identity = %tls.current().identity, "certificates loaded");
    let settings = ClientSettings {
        connect_timeout: config.connect_timeout,
        pool_idle_timeout: config.pool_idle_timeout,
    };
    let metrics = Metrics::new();
    // The admin listener: HTTP/1.1 keep-alive, with the same header read timeout (so an idle
    // scraper connection closes like any other).
    let mut admin_builder = auto::Builder::new(TokioExecutor::new());
    admin_builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(config.header_read_timeout)
        .keep_alive(true);
    let admin_server = HttpServer {
        builder: admin_builder,
        first_request: config.header_read_timeout,
        idle: config.idle_timeout,
        stats: metrics.admin.clone(),
    };
    let (shutdown_tx, _) = watch::channel(false);
    let (stop_tx, _) = watch::channel(false);
    let shared = Arc::new(Shared {
        inbound_server: Arc::new(HttpServer::new(&config, metrics.inbound.clone())),
        outbound_server: Arc::new(HttpServer::new(&config, metrics.outbound.clone())),
        admin_server: Arc::new(admin_server),
        metrics,
        upstreams: Upstreams::new(tls.clone(), settings),
        tls,
        live: ArcSwapOption::empty(),
        loader: Lock::new(LoaderState::default()),
        listeners: ListenerAddrs::default(),
        draining: AtomicBool::new(false),
        shutdown_tx,
        stop_tx,
        conn_limit: Arc::new(Semaphore::new(config.max_connections.max(1))),
        admin_limit: Arc::new(Semaphore::new(64)),
        active: Arc::new(ActiveConns::default()),
        admin_active: Arc::new(ActiveConns::default()),
        tasks: Lock::new(Vec::new()),
        admin_task: Lock::new(None),
        config,
    });
    // Listeners whose address is given are bound at once (admin answers 503 until ready).
    if let Some(e) = shared.ensure_listeners().into_iter().next() {
        return Err(e);
    }
    let watching = start_watching(&shared.config);
    reload_all(&shared).await;
    let task = tokio::spawn(reload_task(shared.clone(), watching));
    shared.tasks.lock().push(task);
    Ok(ProxyHandle { shared })
}

impl ProxyHandle {
    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.shared.listeners.admin.get().copied()
    }
    pub fn inbound_addr(&self) -> Option<SocketAddr> {
        self.shared.listeners.inbound.get().copied()
    }
    pub fn outbound_addr(&self) -> Option<SocketAddr> {
        self.shared.listeners.outbound.get().copied()
    }
    pub fn is_ready(&self) -> bool {
        self.shared.not_ready_reason().is_none()
    }

    /// Begin draining: `/ready` turns 503, listeners stop accepting, idle connections close,
    /// in-flight requests continue.
    pub fn shutdown(&self) {
        self.shared.draining.store(true, Ordering::Release);
        let _ = self.shared.shutdown_tx.send(true);
    }

    /// After [`ProxyHandle::shutdown`]: wait until the listeners are closed and every
    /// connection has ended, or the drain timeout passed; then close the admin listener.
    /// `true` when everything drained in time.
    pub async fn drained(&self) -> bool {
        let drained = self.wait_drained().await;
        let _ = self.shared.stop_tx.send(true);
        let admin = self.shared.admin_task.lock().take();
        if let Some(t) = admin {
            let _ = t.await;
        }
        drained
    }

    async fn wait_drained(&self) -> bool {
        let tasks: Vec<JoinHandle<()>> = std::mem::take(&mut *self.shared.tasks.lock());
        for t in tasks {
            let _ = t.await;
        }
        let deadline = self.shared.config.drain_timeout;
        let open = self.shared.active.count();
        if open > 0 {
            tracing::info!(connections = open, "draining");
        }
        match tokio::time::timeout(deadline, self.shared.active.wait_idle()).await {
            Ok(()) => true,
            Err(_) => {
                tracing::warn!(
                    connections = self.shared.active.count(),
                    "drain timeout reached; closing the remaining connections"
                );
                false
            }
        }
    }
}

/// Wait for SIGTERM or SIGINT.
pub async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
