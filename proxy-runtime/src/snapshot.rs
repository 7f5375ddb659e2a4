//! One loaded artifact and everything derived from it at load time: the router, the
//! authorizer, per-route metric handles, per-cluster endpoint and retry state, parsed header
//! modifiers. Published as one `Arc<Snapshot>`; a request uses the snapshot it started with.

use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::time::{Instant, SystemTime};

use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use hyper::http::uri::Authority;
use mesh_artifact::router::RouterIndex;
use mesh_artifact::{
    Artifact, Body, Cluster, EncodedSlashes, HeaderModifier, MeshInfo, PathMatch, RouteTable,
    RuleAction, SidecarInfo,
};

use crate::authz::Authz;
use crate::config::LoadBalancer;
use crate::metrics::{ClusterStats, InfoLabels, Metrics, RouteStats};
use crate::upstream::{EndpointPool, Upstreams};

/// Why an artifact that decoded fine still cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("route table: {0}")]
    Route(#[from] mesh_artifact::matcher::IndexError),
    #[error("authorization bundle: {0}")]
    Policy(#[from] mesh_policy::PolicyError),
    #[error("route action refers to unknown cluster `{0}`")]
    UnknownCluster(String),
    #[error("destination `{service}` port {port}: default cluster `{cluster}` is unknown")]
    UnknownDefaultCluster {
        service: String,
        port: u16,
        cluster: String,
    },
    #[error("cluster `{cluster}`: endpoint `{address}:{port}` is not a valid address")]
    Endpoint {
        cluster: String,
        address: String,
        port: u16,
    },
    #[error("invalid header name `{0}` in a header modifier")]
    HeaderName(String),
    #[error("invalid value for header `{0}` in a header modifier")]
    HeaderValue(String),
    #[error("invalid rewrite hostname `{0}`")]
    Hostname(String),
}

/// Parsed request or response header modifications.
#[derive(Debug, Default)]
pub struct HeaderOps {
    set: Vec<(HeaderName, HeaderValue)>,
    add: Vec<(HeaderName, HeaderValue)>,
    remove: Vec<HeaderName>,
}

impl HeaderOps {
    fn parse(m: &HeaderModifier) -> Result<Self, BuildError> {
        let name = |n: &str| {
            HeaderName::from_bytes(n.as_bytes()).map_err(|_| BuildError::HeaderName(n.to_string()))
        };
        let pair = |(n, v): &(String, String)| {
            Ok((
                name(n)?,
                HeaderValue::from_str(v).map_err(|_| BuildError::HeaderValue(n.to_string()))?,
            ))
        };
        Ok(HeaderOps {
            set: m.set.iter().map(pair).collect::<Result<_, BuildError>>()?,
            add: m.add.iter().map(pair).collect::<Result<_, BuildError>>()?,
            remove: m
                .remove
                .iter()
                .map(|n| name(n))
                .collect::<Result<_, BuildError>>()?,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.set.is_empty() && self.add.is_empty() && self.remove.is_empty()
    }

    /// Gateway API order: set, then add, then remove.
    pub fn apply(&self, headers: &mut HeaderMap) {
        for (n, v) in &self.set {
            headers.insert(n.clone(), v.clone());
        }
        for (n, v) in &self.add {
            headers.append(n.clone(), v.clone());
        }
        for n in &self.remove {
            headers.remove(n);
        }
    }
}

/// Milliseconds since the process started, for cheap shared timestamps.
pub fn now_ms() -> u64 {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    let start = START.get_or_init(Instant::now);
    u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// A small, fast, per-thread pseudo-random generator (xorshift64*), for load balancing and
/// jitter. Not for anything secret.
pub fn random_u32() -> u32 {
    use std::cell::Cell;
    use std::hash::{BuildHasher, Hasher};
    thread_local! {
        static STATE: Cell<u64> = Cell::new({
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u64(now_ms());
            h.finish() | 1
        });
    }
    STATE.with(|s| {
        let mut x = s.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        s.set(x);
        (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 32) as u32
    })
}

/// A uniformly drawn number below `n` (`n > 0`).
pub fn random_below(n: u32) -> u32 {
    ((u64::from(random_u32()) * u64::from(n)) >> 32) as u32
}

/// One destination sidecar address.
#[derive(Debug)]
pub struct EndpointRt {
    pub authority: Authority,
    /// Connections to this endpoint, shared with other snapshots.
    pub pool: Arc<EndpointPool>,
    pub in_flight: AtomicUsize,
    /// Until when (in [`now_ms`]) this endpoint is skipped after a connection failure.
    pub ejected_until: AtomicU64,
}

/// How long an endpoint that refused a connection is skipped.
const EJECTION_MS: u64 = 1000;

impl EndpointRt {
    fn available(&self, now: u64) -> bool {
        self.ejected_until.load(Ordering::Relaxed) <= now
    }

    pub fn eject(&self) {
        self.ejected_until
            .store(now_ms() + EJECTION_MS, Ordering::Relaxed);
    }
}

/// Retry budget state of one cluster: retries may be at most `percent` of the requests of the
/// current one-second window, or `min_per_second`, whichever is larger.
#[derive(Debug, Default)]
pub struct RetryBudgetState {
    window: AtomicU64,
    requests: AtomicU32,
    retries: AtomicU32,
}

impl RetryBudgetState {
    fn roll(&self) {
        let second = now_ms() / 1000;
        let w = self.window.load(Ordering::Relaxed);
        if w != second
            && self
                .window
                .compare_exchange(w, second, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.requests.store(0, Ordering::Relaxed);
            self.retries.store(0, Ordering::Relaxed);
        }
    }

    pub fn record_request(&self) {
        self.roll();
        self.requests.fetch_add(1, Ordering::Relaxed);
    }

    /// Take one retry from the budget, if any is left.
    pub fn try_retry(&self, percent: u32, min_per_second: u32) -> bool {
        self.roll();
        let requests = u64::from(self.requests.load(Ordering::Relaxed));
        let allowed = (requests * u64::from(percent) / 100).max(u64::from(min_per_second));
        let taken = self.retries.fetch_add(1, Ordering::Relaxed);
        if u64::from(taken) < allowed {
            true
        } else {
            self.retries.fetch_sub(1, Ordering::Relaxed);
            false
        }
    }
}

/// A backend cluster: endpoints, their selection, retry budget, client and metrics.
#[derive(Debug)]
pub struct ClusterRt {
    pub key: String,
    pub identity: String,
    pub endpoints: Vec<EndpointRt>,
    rr: AtomicUsize,
    pub budget: RetryBudgetState,
    pub stats: ClusterStats,
    /// The service port, sent to the destination sidecar ([`crate::inbound::PORT_HEADER`])
    /// when the service has several ports, so that it forwards to that port's application port.
    pub port_header: Option<HeaderValue>,
}

impl ClusterRt {
    /// Choose an endpoint, skipping recently failed ones unless all have failed. `None` when
    /// the cluster has no endpoint.
    pub fn pick(&self, lb: LoadBalancer) -> Option<&EndpointRt> {
        pick_endpoint(&self.endpoints, &self.rr, lb)
    }
}

/// Endpoint choice: round robin, or the less loaded of two drawn at random; endpoints ejected
/// after a connection failure are skipped while any other is available.
pub fn pick_endpoint<'a>(
    endpoints: &'a [EndpointRt],
    rr: &AtomicUsize,
    lb: LoadBalancer,
) -> Option<&'a EndpointRt> {
    let n = endpoints.len();
    if n <= 1 {
        return endpoints.first();
    }
    let now = now_ms();
    match lb {
        LoadBalancer::RoundRobin => {
            let start = rr.fetch_add(1, Ordering::Relaxed);
            (0..n)
                .map(|i| &endpoints[(start + i) % n])
                .find(|e| e.available(now))
                .or_else(|| endpoints.get(start % n))
        }
        LoadBalancer::P2c => {
            let n32 = u32::try_from(n).unwrap_or(u32::MAX);
            let a = random_below(n32) as usize;
            let mut b = random_below(n32 - 1) as usize;
            if b >= a {
                b += 1;
            }
            let (ea, eb) = (&endpoints[a], &endpoints[b]);
            Some(match (ea.available(now), eb.available(now)) {
                (true, false) => ea,
                (false, true) => eb,
                (false, false) => endpoints.iter().find(|e| e.available(now)).unwrap_or(ea),
                (true, true) => {
                    if eb.in_flight.load(Ordering::Relaxed) < ea.in_flight.load(Ordering::Relaxed) {
                        eb
                    } else {
                        ea
                    }
                }
            })
        }
    }
}

/// A rule action with its clusters resolved and headers parsed. Identical actions of one route
/// table share one `ActionRt`.
#[derive(Debug)]
pub struct ActionRt {
    /// The action as the artifact states it (timeouts, retry, redirect, rewrite, status).
    pub action: RuleAction,
    /// Backends with weight > 0 and their cumulative weights.
    backends: Vec<(Arc<ClusterRt>, u64)>,
    total_weight: u64,
    pub request_headers: HeaderOps,
    pub response_headers: HeaderOps,
    pub rewrite_host: Option<HeaderValue>,
}

impl ActionRt {
    /// Weighted choice of a backend cluster; `None` when no backend has weight.
    pub fn pick_backend(&self) -> Option<&Arc<ClusterRt>> {
        match self.backends.len() {
            0 => None,
            1 => self.backends.first().map(|(c, _)| c),
            _ => {
                let r = (u64::from(random_u32()) * self.total_weight) >> 32;
                self.backends
                    .iter()
                    .find(|(_, cum)| r < *cum)
                    .map(|(c, _)| c)
            }
        }
    }
}

/// One route table entry, as the request path needs it once the artifact is dropped.
#[derive(Debug)]
pub struct EntryRt {
    /// Index into the port's [`PortRt::routes`].
    pub route: u32,
    /// Index into the port's [`PortRt::actions`].
    pub action: u32,
    /// The entry's path match, kept only when its action modifies the path (a redirect, or a
    /// rewrite with a path), which is when the matched prefix is needed again.
    pub path: Option<Box<PathMatch>>,
}

/// One route (`namespace/name`) of a port's table: its name and metric handles, shared by all
/// of its entries.
#[derive(Debug)]
pub struct RouteRt {
    pub name: Box<str>,
    /// `x-mesh-route` value sent upstream; `None` when the name is not a valid header value.
    pub header: Option<HeaderValue>,
    pub stats: RouteStats,
}

/// Runtime tables of one destination port.
#[derive(Debug)]
pub struct PortRt {
    /// Cluster when no route is attached.
    pub direct: Option<Arc<ClusterRt>>,
    /// Metrics of requests that matched no route (direct traffic or 404).
    pub unrouted: RouteStats,
    /// Per route entry, parallel to the route table's entries.
    pub entries: Box<[EntryRt]>,
    /// Distinct routes of the table, in order of first appearance.
    pub routes: Box<[RouteRt]>,
    /// Distinct actions of the table.
    pub actions: Box<[ActionRt]>,
}

/// Runtime tables of one destination.
#[derive(Debug)]
pub struct DestRt {
    /// `namespace/name`.
    pub service: Box<str>,
    /// Parallel to the destination's ports.
    pub ports: Box<[PortRt]>,
    /// How a path to this destination is normalized before its routes are matched.
    pub encoded_slashes: EncodedSlashes,
}

/// Sizes of the artifact, for `/config` and the log.
#[derive(Debug, Clone, Copy, Default)]
pub struct Counts {
    pub destinations: usize,
    pub clusters: usize,
    pub policies: usize,
    pub entries: usize,
}

/// Where inbound requests go.
#[derive(Debug, Clone)]
pub struct AppTarget {
    pub authority: Authority,
    /// `Host` for requests that arrive without one.
    pub host: Option<HeaderValue>,
    pub pool: Arc<EndpointPool>,
}

/// Everything one artifact serves with. The decoded body itself is not kept: only the router's
/// indexes and the runtime tables built from it, so that a large route table costs what the
/// request path reads, not what the artifact spells out.
#[derive(Debug)]
pub struct Snapshot {
    /// `sha256:` of the artifact file as read.
    pub file_hash: String,
    pub header: mesh_artifact::Header,
    pub router: RouterIndex,
    pub authz: Authz,
    pub mesh: MeshInfo,
    pub sidecar: SidecarInfo,
    pub counts: Counts,
    /// Parallel to the artifact's destinations.
    pub dests: Box<[DestRt]>,
    /// Requests for hosts no destination declares.
    pub unknown_host: RouteStats,
    /// Inbound requests.
    pub inbound: RouteStats,
    pub app: AppTarget,
    /// Service ports whose application port is not `app`'s, from the artifact's `app_ports`.
    pub app_ports: Box<[(u16, AppTarget)]>,
    pub loaded_at: SystemTime,
}

impl Snapshot {
    /// The application behind service port `port` (as a caller's sidecar names it), else the
    /// default one.
    pub fn app_for(&self, port: Option<u16>) -> &AppTarget {
        port.and_then(|p| self.app_ports.iter().find(|(q, _)| *q == p))
            .map_or(&self.app, |(_, a)| a)
    }

    /// The artifact info labels.
    pub fn info(&self) -> InfoLabels {
        InfoLabels {
            service: self.sidecar.service.clone(),
            body_hash: self.header.body_hash.clone(),
            source_hash: self.header.source_hash.clone(),
            meshc_version: self.header.meshc_version.clone(),
            format_version: self.header.format_version.to_string(),
        }
    }
}

/// What building a snapshot needs besides the artifact.
pub struct BuildContext<'a> {
    pub metrics: &'a Metrics,
    pub upstreams: &'a Upstreams,
    pub app_addr: Option<SocketAddr>,
}

fn cluster_rt(
    key: &str,
    c: &Cluster,
    multi_port: bool,
    ctx: &BuildContext<'_>,
) -> Result<Arc<ClusterRt>, BuildError> {
    let endpoints = c
        .endpoints
        .iter()
        .map(|e| {
            let text = if e.address.contains(':') && !e.address.starts_with('[') {
                format!("[{}]:{}", e.address, e.port)
            } else {
                format!("{}:{}", e.address, e.port)
            };
            let authority = Authority::from_str(&text).map_err(|_| BuildError::Endpoint {
                cluster: key.to_string(),
                address: e.address.clone(),
                port: e.port,
            })?;
            Ok(EndpointRt {
                pool: ctx.upstreams.mesh_pool(
                    &authority,
                    &c.identity,
                    &c.service,
                    c.protocol.is_h2(),
                ),
                authority,
                in_flight: AtomicUsize::new(0),
                ejected_until: AtomicU64::new(0),
            })
        })
        .collect::<Result<Vec<_>, BuildError>>()?;
    Ok(Arc::new(ClusterRt {
        key: key.to_string(),
        identity: c.identity.clone(),
        endpoints,
        rr: AtomicUsize::new(0),
        budget: RetryBudgetState::default(),
        stats: ctx.metrics.cluster(key),
        port_header: multi_port.then(|| HeaderValue::from(c.port)),
    }))
}

fn action_rt(
    a: RuleAction,
    clusters: &std::collections::HashMap<&str, Arc<ClusterRt>>,
) -> Result<ActionRt, BuildError> {
    let mut backends = Vec::new();
    let mut total = 0u64;
    for b in &a.backends {
        let c = clusters
            .get(b.cluster.as_str())
            .ok_or_else(|| BuildError::UnknownCluster(b.cluster.clone()))?;
        if b.weight > 0 {
            total += u64::from(b.weight);
            backends.push((c.clone(), total));
        }
    }
    let rewrite_host = match a.rewrite.as_ref().and_then(|r| r.hostname.as_deref()) {
        Some(h) => Some(HeaderValue::from_str(h).map_err(|_| BuildError::Hostname(h.to_string()))?),
        None => None,
    };
    backends.shrink_to_fit();
    Ok(ActionRt {
        backends,
        total_weight: total,
        request_headers: HeaderOps::parse(&a.request_headers)?,
        response_headers: HeaderOps::parse(&a.response_headers)?,
        rewrite_host,
        action: a,
    })
}

/// A hash of an action's full content (its `Debug` form, hashed as it is written, without
/// building the text), to find identical actions quickly; equality is still checked with `==`.
fn action_fingerprint(a: &RuleAction) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    struct HashWriter<H>(H);
    impl<H: Hasher> std::fmt::Write for HashWriter<H> {
        fn write_str(&mut self, s: &str) -> std::fmt::Result {
            self.0.write(s.as_bytes());
            Ok(())
        }
    }
    static STATE: std::sync::OnceLock<std::collections::hash_map::RandomState> =
        std::sync::OnceLock::new();
    let mut w = HashWriter(STATE.get_or_init(Default::default).build_hasher());
    // Writing into a hasher cannot fail.
    let _ = std::fmt::Write::write_fmt(&mut w, format_args!("{a:?}"));
    w.0.finish()
}

/// Merge identical actions (the compiler writes one per rule, and most rules of a mesh share
/// their backends and filters): the distinct actions in order of first appearance, and for each
/// action given, the index of its equal among them.
fn merge_actions(actions: Vec<RuleAction>) -> (Vec<RuleAction>, Vec<u32>) {
    let mut distinct: Vec<RuleAction> = Vec::new();
    let mut by_hash: std::collections::HashMap<u64, Vec<u32>> = Default::default();
    let mut remap = Vec::with_capacity(actions.len());
    for a in actions {
        let same = by_hash.entry(action_fingerprint(&a)).or_default();
        match same.iter().find(|&&i| distinct[i as usize] == a) {
            Some(&i) => remap.push(i),
            None => {
                let i = u32::try_from(distinct.len()).unwrap_or(u32::MAX);
                same.push(i);
                remap.push(i);
                distinct.push(a);
            }
        }
    }
    (distinct, remap)
}

/// The runtime tables of one route table, consuming it: identical actions are merged, each
/// route gets one set of metric handles, and each entry keeps three small fields.
fn table_rt(
    table: RouteTable,
    unrouted: RouteStats,
    service: &str,
    clusters: &std::collections::HashMap<&str, Arc<ClusterRt>>,
    ctx: &BuildContext<'_>,
) -> Result<PortRt, BuildError> {
    use std::collections::HashMap;
    let RouteTable {
        entries: table_entries,
        actions: table_actions,
    } = table;
    let (distinct, remap) = merge_actions(table_actions);
    let mut routes: Vec<RouteRt> = Vec::new();
    let mut route_ids: HashMap<String, u32> = HashMap::new();
    let mut entries = Vec::with_capacity(table_entries.len());
    for e in table_entries {
        // RouterIndex::new checked every action index.
        let action = remap.get(e.action as usize).copied().unwrap_or(0);
        let route = match route_ids.get(e.route.as_str()) {
            Some(&r) => r,
            None => {
                let r = u32::try_from(routes.len()).unwrap_or(u32::MAX);
                routes.push(RouteRt {
                    header: HeaderValue::from_str(&e.route).ok(),
                    stats: ctx.metrics.route("outbound", service, &e.route),
                    name: e.route.as_str().into(),
                });
                route_ids.insert(e.route, r);
                r
            }
        };
        let needs_path = distinct.get(action as usize).is_some_and(|a| {
            a.redirect.is_some() || a.rewrite.as_ref().is_some_and(|r| r.path.is_some())
        });
        entries.push(EntryRt {
            route,
            action,
            path: needs_path.then(|| Box::new(e.path)),
        });
    }
    let actions = distinct
        .into_iter()
        .map(|a| action_rt(a, clusters))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(PortRt {
        direct: None,
        unrouted,
        entries: entries.into_boxed_slice(),
        routes: routes.into_boxed_slice(),
        actions: actions.into_boxed_slice(),
    })
}

/// Build the runtime tables of a decoded artifact, consuming it.
pub fn build(
    artifact: Artifact,
    file_hash: String,
    ctx: &BuildContext<'_>,
) -> Result<Snapshot, BuildError> {
    let Artifact { header, body } = artifact;
    let authz = Authz::new(&body)?;
    let router = RouterIndex::new(&body)?;
    let Body {
        mesh,
        sidecar,
        destinations,
        clusters: cluster_defs,
        authz: bundle,
    } = body;
    let counts = Counts {
        destinations: destinations.len(),
        clusters: cluster_defs.len(),
        policies: bundle.policies.len(),
        entries: destinations
            .iter()
            .flat_map(|d| &d.ports)
            .filter_map(|p| p.routes.as_ref())
            .map(|t| t.entries.len())
            .sum(),
    };
    drop(bundle);
    let multi_port: std::collections::HashSet<&str> = destinations
        .iter()
        .filter(|d| d.ports.len() > 1)
        .map(|d| d.service.as_str())
        .collect();
    let mut clusters = std::collections::HashMap::new();
    for (key, c) in &cluster_defs {
        let multi = multi_port.contains(c.service.as_str());
        clusters.insert(key.as_str(), cluster_rt(key, c, multi, ctx)?);
    }
    drop(multi_port);
    let mut dests = Vec::with_capacity(destinations.len());
    for dest in destinations {
        let mut ports = Vec::with_capacity(dest.ports.len());
        for p in dest.ports {
            let unrouted = ctx.metrics.route("outbound", &dest.service, "");
            let port_rt = match p.routes {
                None => {
                    let c = clusters
                        .get(p.default_cluster.as_str())
                        .cloned()
                        .ok_or_else(|| BuildError::UnknownDefaultCluster {
                            service: dest.service.clone(),
                            port: p.port,
                            cluster: p.default_cluster.clone(),
                        })?;
                    PortRt {
                        direct: Some(c),
                        unrouted,
                        entries: Box::default(),
                        routes: Box::default(),
                        actions: Box::default(),
                    }
                }
                Some(table) => table_rt(table, unrouted, &dest.service, &clusters, ctx)?,
            };
            ports.push(port_rt);
        }
        dests.push(DestRt {
            service: dest.service.into_boxed_str(),
            ports: ports.into_boxed_slice(),
            encoded_slashes: dest.encoded_slashes,
        });
    }
    let h2 = sidecar.app_protocol.is_h2();
    let loopback = |port: u16| SocketAddr::from(([127, 0, 0, 1], port));
    let app = app_target(
        ctx.app_addr.unwrap_or_else(|| loopback(sidecar.app_port)),
        h2,
        ctx,
    )?;
    // `--app-addr` pins one address for every port.
    let app_ports = match ctx.app_addr {
        Some(_) => Vec::new(),
        None => sidecar
            .app_ports
            .iter()
            .map(|a| Ok((a.port, app_target(loopback(a.app_port), h2, ctx)?)))
            .collect::<Result<Vec<_>, BuildError>>()?,
    };
    let unknown_host = ctx.metrics.route("outbound", "unknown", "");
    let inbound = ctx.metrics.route("inbound", &sidecar.service, "");
    Ok(Snapshot {
        file_hash,
        header,
        router,
        authz,
        mesh,
        sidecar,
        counts,
        dests: dests.into_boxed_slice(),
        unknown_host,
        inbound,
        app,
        app_ports: app_ports.into_boxed_slice(),
        loaded_at: SystemTime::now(),
    })
}

/// The local application at `addr`, with its pool.
fn app_target(addr: SocketAddr, h2: bool, ctx: &BuildContext<'_>) -> Result<AppTarget, BuildError> {
    let authority = Authority::from_str(&addr.to_string()).map_err(|_| BuildError::Endpoint {
        cluster: "local application".into(),
        address: addr.ip().to_string(),
        port: addr.port(),
    })?;
    Ok(AppTarget {
        host: HeaderValue::from_str(authority.as_str()).ok(),
        pool: ctx.upstreams.app_pool(&authority, h2),
        authority,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoints(n: usize) -> Vec<EndpointRt> {
        let settings = crate::upstream::ClientSettings {
            connect_timeout: std::time::Duration::from_secs(1),
            pool_idle_timeout: std::time::Duration::from_secs(1),
        };
        (0..n)
            .map(|i| EndpointRt {
                pool: Arc::new(EndpointPool::plain(
                    Authority::from_static("10.0.0.1:15006"),
                    false,
                    settings,
                )),
                authority: Authority::from_str(&format!("10.0.0.{i}:15006")).unwrap(),
                in_flight: AtomicUsize::new(0),
                ejected_until: AtomicU64::new(0),
            })
            .collect()
    }

    fn index(eps: &[EndpointRt], e: &EndpointRt) -> usize {
        eps.iter().position(|x| std::ptr::eq(x, e)).unwrap()
    }

    #[test]
    fn round_robin_cycles_and_skips_ejected_endpoints() {
        let eps = endpoints(3);
        let rr = AtomicUsize::new(0);
        let picks: Vec<usize> = (0..6)
            .map(|_| {
                index(
                    &eps,
                    pick_endpoint(&eps, &rr, LoadBalancer::RoundRobin).unwrap(),
                )
            })
            .collect();
        assert_eq!(picks, [0, 1, 2, 0, 1, 2]);
        eps[1].eject();
        let picks: Vec<usize> = (0..4)
            .map(|_| {
                index(
                    &eps,
                    pick_endpoint(&eps, &rr, LoadBalancer::RoundRobin).unwrap(),
                )
            })
            .collect();
        assert!(!picks.contains(&1), "{picks:?}");
        for e in &eps {
            e.eject();
        }
        assert!(
            pick_endpoint(&eps, &rr, LoadBalancer::RoundRobin).is_some(),
            "all ejected: still pick one"
        );
        assert!(pick_endpoint(&[], &rr, LoadBalancer::P2c).is_none());
    }

    #[test]
    fn p2c_prefers_the_less_loaded_and_avoids_ejected_endpoints() {
        let eps = endpoints(2);
        let rr = AtomicUsize::new(0);
        eps[0].in_flight.store(5, Ordering::Relaxed);
        for _ in 0..50 {
            assert_eq!(
                index(&eps, pick_endpoint(&eps, &rr, LoadBalancer::P2c).unwrap()),
                1
            );
        }
        eps[0].in_flight.store(0, Ordering::Relaxed);
        eps[1].eject();
        for _ in 0..50 {
            assert_eq!(
                index(&eps, pick_endpoint(&eps, &rr, LoadBalancer::P2c).unwrap()),
                0
            );
        }
        // With equal load, both get traffic.
        let eps = endpoints(4);
        let mut seen = [0; 4];
        for _ in 0..400 {
            seen[index(&eps, pick_endpoint(&eps, &rr, LoadBalancer::P2c).unwrap())] += 1;
        }
        assert!(seen.iter().all(|&c| c > 40), "{seen:?}");
    }

    #[test]
    fn retry_budget_floor_and_percent() {
        let b = RetryBudgetState::default();
        // Floor of 2 per second with no traffic.
        assert!(b.try_retry(20, 2));
        assert!(b.try_retry(20, 2));
        assert!(!b.try_retry(20, 2));
        // 20 % of 50 requests = 10 retries in total this second.
        for _ in 0..50 {
            b.record_request();
        }
        let more = (0..20).filter(|_| b.try_retry(20, 2)).count();
        // The window may roll over during the test; then the floor applies again.
        assert!(more == 8 || more <= 2, "{more}");
    }

    #[test]
    fn random_below_stays_in_range_and_spreads() {
        let mut seen = [0u32; 4];
        for _ in 0..4000 {
            let r = random_below(4);
            assert!(r < 4);
            seen[r as usize] += 1;
        }
        assert!(seen.iter().all(|&c| c > 800), "{seen:?}");
    }

    #[test]
    fn identical_actions_are_merged_and_entries_remapped() {
        use mesh_artifact::WeightedCluster;
        let to = |c: &str| RuleAction {
            backends: vec![WeightedCluster {
                cluster: c.into(),
                weight: 1,
            }],
            ..RuleAction::default()
        };
        let mut slow = to("a");
        slow.timeouts.request_ms = Some(5);
        let (distinct, remap) =
            merge_actions(vec![to("a"), to("b"), to("a"), slow.clone(), to("b"), slow]);
        assert_eq!(remap, [0, 1, 0, 2, 1, 2]);
        assert_eq!(distinct.len(), 3);
        assert_eq!(distinct[0], to("a"));
        assert_eq!(distinct[1], to("b"));
        assert_eq!(distinct[2].timeouts.request_ms, Some(5));
        let (none, remap) = merge_actions(Vec::new());
        assert!(none.is_empty() && remap.is_empty());
    }

    #[test]
    fn header_ops_set_add_remove() {
        let m = HeaderModifier {
            set: vec![("x-a".into(), "1".into())],
            add: vec![("x-b".into(), "2".into())],
            remove: vec!["x-c".into()],
        };
        let ops = HeaderOps::parse(&m).unwrap();
        let mut h = HeaderMap::new();
        h.insert("x-a", HeaderValue::from_static("0"));
        h.insert("x-b", HeaderValue::from_static("1"));
        h.insert("x-c", HeaderValue::from_static("gone"));
        ops.apply(&mut h);
        assert_eq!(h.get_all("x-a").iter().collect::<Vec<_>>(), ["1"]);
        assert_eq!(h.get_all("x-b").iter().collect::<Vec<_>>(), ["1", "2"]);
        assert!(h.get("x-c").is_none());
        let bad = HeaderModifier {
            set: vec![("bad name".into(), "v".into())],
            ..Default::default()
        };
        assert!(HeaderOps::parse(&bad).is_err());
    }
}
