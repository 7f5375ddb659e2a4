//! The outbound side: the local application's requests (origin-form with `Host`, or
//! absolute-form as an HTTP proxy), routed by [`mesh_artifact::router::RouterIndex::resolve`]
//! (the procedure behind `Router::decide`) and sent over
//! mutual TLS to a destination sidecar, with timeouts, retries and a retry budget.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use hyper::body::{Body as _, Incoming};
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::http::request::Parts;
use hyper::http::uri::PathAndQuery;
use hyper::{Method, Request, Response, StatusCode, Uri, Version};
use mesh_artifact::router::{AuthorityPort, Resolution, parse_authority, split_authority};
use mesh_artifact::{EncodedSlashes, PathMatch, PathModifier, Redirect, RetryPolicy, RuleAction};
use tokio::net::TcpStream;

use crate::access::{self, AccessEntry};
use crate::http::{
    BAD_REQUEST_BODY, BodyFailed, ProxyBody, ReqView, local_reply, refuse_ambiguous,
    request_authority, strip_hop_by_hop,
};
use crate::inbound::{CALLER_HEADER, PORT_HEADER, ROUTE_HEADER, micros};
use crate::lifecycle::Shared;
use crate::metrics::{CLIENT_CLOSED, OnAbandon, RouteStats};
use crate::server::serve_http;
use crate::snapshot::{ActionRt, ClusterRt, EndpointRt, EntryRt, RouteRt, Snapshot, random_u32};
use crate::tunnel::{Tunnel, Upgrade};
use crate::upstream::UpstreamBody;

/// Handle one connection from the local application (HTTP/1.1 or h2c).
pub async fn connection(shared: Arc<Shared>, tcp: TcpStream, _addr: SocketAddr) {
    let builder = shared.outbound_server.clone();
    let shutdown = shared.shutdown_signal();
    serve_http(tcp, &builder, shutdown, move |req, tunnel| {
        let tunnel = crate::tunnel::for_request(&req, tunnel);
        handle(shared.clone(), req, tunnel)
    })
    .await;
}

/// What the routing decision leads to, with everything borrowed from the snapshot.
enum Plan<'s> {
    Reply {
        status: StatusCode,
        reason: &'static str,
    },
    Redirect {
        status: StatusCode,
        location: Option<HeaderValue>,
    },
    Forward {
        cluster: &'s Arc<ClusterRt>,
        rule: Option<Rule<'s>>,
    },
}

/// The matched rule of a forwarded request.
#[derive(Clone, Copy)]
struct Rule<'s> {
    entry: &'s EntryRt,
    route: &'s RouteRt,
    action: &'s RuleAction,
    rt: &'s ActionRt,
}

/// Stands for the path match of an entry whose action never looks at it.
static NO_PATH: PathMatch = PathMatch::PathPrefix(String::new());

impl Rule<'_> {
    fn path(&self) -> &PathMatch {
        self.entry.path.as_deref().unwrap_or(&NO_PATH)
    }
}

struct Routed<'s> {
    plan: Plan<'s>,
    stats: &'s RouteStats,
    destination: &'s str,
    route: &'s str,
}

fn route<'s>(snap: &'s Snapshot, parts: &Parts, authority: &str) -> Routed<'s> {
    let resolution = snap.router.resolve(authority, &ReqView::new(parts));
    // A host that names nothing here is 404, but one whose port is not a port is malformed
    // (RFC 9112, 3.2: 400); looked at only on this cold path.
    let unknown = |reason| Routed {
        plan: match parse_authority(authority).1 {
            AuthorityPort::Invalid => Plan::Reply {
                status: StatusCode::BAD_REQUEST,
                reason: "mesh-proxy: invalid host\n",
            },
            _ => Plan::Reply {
                status: StatusCode::NOT_FOUND,
                reason,
            },
        },
        stats: &snap.unknown_host,
        destination: "",
        route: "",
    };
    let (dest, port) = match resolution {
        Resolution::UnknownHost => return unknown("mesh-proxy: unknown destination\n"),
        Resolution::UnknownPort { .. } => {
            return unknown("mesh-proxy: unknown destination port\n");
        }
        Resolution::Direct { dest, port }
        | Resolution::NoMatch { dest, port }
        | Resolution::Matched { dest, port, .. } => (dest, port),
    };
    let Some((dest_rt, port_rt)) = snap
        .dests
        .get(dest)
        .and_then(|d| Some((d, d.ports.get(port)?)))
    else {
        return unknown("mesh-proxy: unknown destination\n");
    };
    let destination = &*dest_rt.service;
    let unrouted = |plan| Routed {
        plan,
        stats: &port_rt.unrouted,
        destination,
        route: "",
    };
    match resolution {
        Resolution::Direct { .. } => match &port_rt.direct {
            Some(cluster) => unrouted(Plan::Forward {
                cluster,
                rule: None,
            }),
            None => unrouted(Plan::Reply {
                status: StatusCode::INTERNAL_SERVER_ERROR,
                reason: "mesh-proxy: no backend\n",
            }),
        },
        Resolution::Matched { entry, .. } => {
            let Some(rule) = port_rt.entries.get(entry).and_then(|e| {
                let rt = port_rt.actions.get(e.action as usize)?;
                Some(Rule {
                    entry: e,
                    route: port_rt.routes.get(e.route as usize)?,
                    action: &rt.action,
                    rt,
                })
            }) else {
                return unrouted(Plan::Reply {
                    status: StatusCode::INTERNAL_SERVER_ERROR,
                    reason: "mesh-proxy: inconsistent route table\n",
                });
            };
            let routed = |plan| Routed {
                plan,
                stats: &rule.route.stats,
                destination,
                route: &rule.route.name,
            };
            let action = rule.action;
            if let Some(s) = action.fixed_status {
                let status = StatusCode::from_u16(s).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                return routed(Plan::Reply {
                    status,
                    reason: "mesh-proxy: no backend for this route\n",
                });
            }
            if let Some(r) = &action.redirect {
                let status = StatusCode::from_u16(r.status).unwrap_or(StatusCode::FOUND);
                let location = redirect_location(r, rule.path(), parts, authority);
                return routed(Plan::Redirect { status, location });
            }
            match rule.rt.pick_backend() {
                Some(cluster) => routed(Plan::Forward {
                    cluster,
                    rule: Some(rule),
                }),
                None => routed(Plan::Reply {
                    status: StatusCode::INTERNAL_SERVER_ERROR,
                    reason: "mesh-proxy: no backend for this route\n",
                }),
            }
        }
        Resolution::NoMatch { .. } | Resolution::UnknownHost | Resolution::UnknownPort { .. } => {
            unrouted(Plan::Reply {
                status: StatusCode::NOT_FOUND,
                reason: "mesh-proxy: no route matches\n",
            })
        }
    }
}

/// Apply a path modifier: the shared implementation `meshc explain` also uses.
pub fn modify_path(m: &PathModifier, matched: &PathMatch, path: &str) -> String {
    mesh_artifact::filters::modify_path(m, matched, path)
}

/// `Location` of a redirect (the shared implementation `meshc explain` also uses); the request
/// scheme on the outbound listener is `http`.
pub fn redirect_location(
    r: &Redirect,
    matched: &PathMatch,
    parts: &Parts,
    authority: &str,
) -> Option<HeaderValue> {
    let (req_host, req_port) = split_authority(authority);
    let loc = mesh_artifact::filters::redirect_location(
        r,
        matched,
        "http",
        &req_host,
        req_port,
        parts.uri.path(),
        parts.uri.query(),
    );
    HeaderValue::from_str(&loc).ok()
}

/// How a forwarded request failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    NoEndpoint,
    Connect,
    Timeout,
    Protocol,
    /// The caller's request body failed mid-send (malformed chunked framing, a cut upload).
    RequestBody,
}

impl Failure {
    fn reply(self) -> Response<ProxyBody> {
        match self {
            Failure::NoEndpoint => {
                local_reply(StatusCode::SERVICE_UNAVAILABLE, "mesh-proxy: no endpoint\n")
            }
            Failure::Connect => local_reply(
                StatusCode::SERVICE_UNAVAILABLE,
                "mesh-proxy: upstream unavailable\n",
            ),
            Failure::Timeout => local_reply(
                StatusCode::GATEWAY_TIMEOUT,
                "mesh-proxy: upstream timeout\n",
            ),
            Failure::Protocol => local_reply(
                StatusCode::BAD_GATEWAY,
                "mesh-proxy: upstream protocol error\n",
            ),
            Failure::RequestBody => local_reply(StatusCode::BAD_REQUEST, BAD_REQUEST_BODY),
        }
    }
}

/// What a forward produced.
struct Forwarded {
    result: Result<Response<UpstreamBody>, Failure>,
    upstream_time: Option<Duration>,
    attempts: u32,
    endpoint: String,
}

/// The request head as sent upstream, reusable across attempts.
struct Head {
    method: Method,
    headers: HeaderMap,
    path_and_query: PathAndQuery,
}

fn upstream_request(head: &Head, body: ProxyBody) -> Request<ProxyBody> {
    let mut req = Request::new(body);
    *req.method_mut() = head.method.clone();
    *req.uri_mut() = Uri::from(head.path_and_query.clone());
    *req.version_mut() = Version::HTTP_11;
    req
}

fn backoff(policy: &RetryPolicy, retry: u32) -> Duration {
    let base = policy.backoff_ms.max(1);
    let exp = base.saturating_mul(1u64 << retry.min(20));
    let capped = if policy.max_backoff_ms > 0 {
        exp.min(policy.max_backoff_ms)
    } else {
        exp
    };
    // Jitter: between half and all of the delay.
    let jittered = capped / 2 + (capped / 2 * u64::from(random_u32() >> 16)) / 65_536;
    Duration::from_millis(jittered)
}

async fn forward(
    shared: &Shared,
    cluster: &ClusterRt,
    mut head: Head,
    body: Incoming,
    upgrade: bool,
    retry: Option<&RetryPolicy>,
    per_try: Option<Duration>,
) -> Forwarded {
    cluster.budget.record_request();
    // Only a request that may be sent twice is retried: an idempotent method (RFC 9110, 9.2.2;
    // a proxy must not retry the others on its own, RFC 9112, 9.3.1) and no body to replay.
    let replayable = body.is_end_stream();
    let retry = retry.filter(|r| replayable && is_idempotent(&head.method) && r.attempts > 0);
    let max_attempts = retry.map_or(1, |r| r.attempts.saturating_add(1));
    let (body, body_failed) = if replayable {
        (ProxyBody::Empty, BodyFailed::default())
    } else {
        ProxyBody::from_caller(body)
    };
    let mut body = Some(body);
    let mut out = Forwarded {
        result: Err(Failure::NoEndpoint),
        upstream_time: None,
        attempts: 0,
        endpoint: String::new(),
    };
    let mut attempt = 0u32;
    loop {
        let last = attempt + 1 >= max_attempts;
        let Some(endpoint) = cluster.pick(shared.config.load_balancer) else {
            out.result = Err(Failure::NoEndpoint);
            return out;
        };
        let req_body = if last {
            body.take().unwrap_or(ProxyBody::Empty)
        } else {
            ProxyBody::Empty
        };
        let mut req = upstream_request(&head, req_body);
        *req.headers_mut() = if last {
            std::mem::take(&mut head.headers)
        } else {
            head.headers.clone()
        };
        if shared.config.access_log {
            out.endpoint = endpoint.authority.to_string();
        }
        let in_flight = InFlight::new(endpoint);
        let t0 = Instant::now();
        let sent = async {
            if upgrade {
                // Boxed: rare, and its connect would otherwise grow every request's future.
                Box::pin(endpoint.pool.send_upgrade(req)).await
            } else {
                endpoint.pool.send(req).await
            }
        };
        // `Err(None)`: the per-try timeout fired.
        let result = match per_try {
            Some(d) => match tokio::time::timeout(d, sent).await {
                Ok(r) => r.map_err(Some),
                Err(_) => Err(None),
            },
            None => sent.await.map_err(Some),
        };
        drop(in_flight);
        out.upstream_time = Some(t0.elapsed());
        out.attempts = attempt + 1;
        let failure = match result {
            Ok(resp) => {
                let retriable = retry.is_some_and(|r| r.codes.contains(&resp.status().as_u16()));
                if last || !retriable {
                    out.result = Ok(resp);
                    return out;
                }
                out.result = Ok(resp);
                None
            }
            Err(None) => {
                cluster.stats.timeouts.inc();
                Some(Failure::Timeout)
            }
            Err(Some(e)) if body_failed.get() => {
                // The caller's fault: not the endpoint's, and the body is gone, so no retry.
                tracing::debug!(cluster = %cluster.key, error = %e, "the caller's request body failed");
                out.result = Err(Failure::RequestBody);
                return out;
            }
            Err(Some(e)) => {
                if e.is_connect() {
                    cluster.stats.connect_errors.inc();
                    endpoint.eject();
                    tracing::debug!(cluster = %cluster.key, endpoint = %endpoint.authority, error = %e, "upstream connect failed");
                    Some(Failure::Connect)
                } else {
                    cluster.stats.protocol_errors.inc();
                    tracing::debug!(cluster = %cluster.key, endpoint = %endpoint.authority, error = %e, "upstream request failed");
                    Some(Failure::Protocol)
                }
            }
        };
        if let Some(f) = failure {
            out.result = Err(f);
            // A request with a body that is not replayable can only be tried once.
            if last || retry.is_none() {
                return out;
            }
        }
        let Some(policy) = retry else { return out };
        if !cluster
            .budget
            .try_retry(policy.budget.percent, policy.budget.min_per_second)
        {
            cluster.stats.budget_exhausted.inc();
            return out;
        }
        cluster.stats.retries.inc();
        // Drop a retriable response before waiting, releasing its connection.
        out.result = Err(Failure::Protocol);
        tokio::time::sleep(backoff(policy, attempt)).await;
        attempt += 1;
    }
}

/// GET, HEAD, OPTIONS, TRACE, PUT and DELETE (RFC 9110, 9.2.2).
fn is_idempotent(m: &Method) -> bool {
    matches!(
        *m,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    )
}

/// Counts a request in flight to an endpoint (for power-of-two-choices) until dropped, also
/// when a timeout cancels the request.
struct InFlight<'a>(&'a EndpointRt);

impl<'a> InFlight<'a> {
    fn new(e: &'a EndpointRt) -> Self {
        e.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(e)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Route and forward one outbound request.
pub async fn handle(
    shared: Arc<Shared>,
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
    // The path routed and forwarded (and authorized there): normalized, not the app's spelling;
    // encoded slashes as the addressed destination's application says (the host picks it).
    if let Some(refused) = crate::path::normalize(&mut parts, |p| {
        request_authority(p)
            .and_then(|a| snap.router.destination_for(a))
            .and_then(|d| snap.dests.get(d))
            .map_or(EncodedSlashes::Reject, |d| d.encoded_slashes)
    }) {
        return refused;
    }
    if parts.method == Method::CONNECT {
        return local_reply(
            StatusCode::NOT_IMPLEMENTED,
            "mesh-proxy: CONNECT is not supported\n",
        );
    }
    if let Some(scheme) = parts.uri.scheme_str()
        && !scheme.eq_ignore_ascii_case("http")
        && !scheme.eq_ignore_ascii_case("https")
    {
        // Absolute form for another protocol (`ftp://...`): nothing here speaks it.
        return local_reply(
            StatusCode::BAD_REQUEST,
            "mesh-proxy: only http and https URLs are proxied\n",
        );
    }
    let upgrade = Upgrade::asked(&mut parts);
    let Some(authority) = request_authority(&parts).map(str::to_string) else {
        return local_reply(StatusCode::BAD_REQUEST, "mesh-proxy: request has no host\n");
    };
    let routed = route(&snap, &parts, &authority);
    let log = shared
        .config
        .access_log
        .then(|| (parts.method.to_string(), parts.uri.path().to_string()));
    // The access log line as far as it is known now; completed when the request ends.
    let entry = log.as_ref().map(|(method, path)| AccessEntry {
        direction: "outbound",
        method,
        authority: &authority,
        path,
        status: CLIENT_CLOSED,
        destination: routed.destination,
        route: routed.route,
        cluster: "",
        endpoint: "",
        peer: "",
        authz: None,
        attempts: 0,
        duration_us: 0,
        upstream_us: None,
    });
    let abandoned = OnAbandon::new(|| {
        let elapsed = start.elapsed();
        routed.stats.record(CLIENT_CLOSED, elapsed, None);
        if let Some(e) = entry {
            access::write(&AccessEntry {
                duration_us: micros(elapsed),
                ..e
            });
        }
    });

    let mut upstream_time = None;
    let mut attempts = 0;
    let mut endpoint = String::new();
    let mut cluster_key = "";
    let response = match routed.plan {
        Plan::Reply { status, reason } => local_reply(status, reason),
        Plan::Redirect {
            status,
            location: Some(location),
        } => {
            let mut r = Response::new(ProxyBody::Empty);
            *r.status_mut() = status;
            r.headers_mut().insert(header::LOCATION, location);
            r
        }
        Plan::Redirect { location: None, .. } => local_reply(
            StatusCode::INTERNAL_SERVER_ERROR,
            "mesh-proxy: redirect target is not a valid header value\n",
        ),
        Plan::Forward { cluster, rule } => {
            cluster_key = cluster.key.as_str();
            // The head as sent upstream.
            let path_and_query =
                match rule.and_then(|r| Some((r, r.action.rewrite.as_ref()?.path.as_ref()?))) {
                    Some((r, m)) => {
                        let path = modify_path(m, r.path(), parts.uri.path());
                        let pq = match parts.uri.query() {
                            Some(q) => format!("{path}?{q}"),
                            None => path,
                        };
                        PathAndQuery::from_maybe_shared(pq).ok()
                    }
                    None => parts.uri.path_and_query().cloned(),
                }
                .unwrap_or_else(|| PathAndQuery::from_static("/"));
            strip_hop_by_hop(&mut parts.headers);
            upgrade.ask(&mut parts.headers);
            parts.headers.remove(&ROUTE_HEADER);
            parts.headers.remove(&CALLER_HEADER);
            match &cluster.port_header {
                Some(v) => {
                    parts.headers.insert(PORT_HEADER, v.clone());
                }
                None => {
                    parts.headers.remove(&PORT_HEADER);
                }
            }
            if (parts.uri.authority().is_some() || !parts.headers.contains_key(header::HOST))
                && let Ok(v) = HeaderValue::from_str(&authority)
            {
                parts.headers.insert(header::HOST, v);
            }
            if let Some(r) = rule {
                if let Some(h) = &r.rt.rewrite_host {
                    parts.headers.insert(header::HOST, h.clone());
                }
                r.rt.request_headers.apply(&mut parts.headers);
                if let Some(v) = &r.route.header {
                    parts.headers.insert(ROUTE_HEADER, v.clone());
                }
            }
            let head = Head {
                method: parts.method,
                headers: parts.headers,
                path_and_query,
            };
            let timeouts = rule.map(|r| r.action.timeouts).unwrap_or_default();
            let retry = rule.and_then(|r| r.action.retry.as_ref());
            let per_try = timeouts.backend_request_ms.map(Duration::from_millis);
            let fwd = forward(
                &shared,
                cluster,
                head,
                body,
                upgrade.is_asked(),
                retry,
                per_try,
            );
            let fwd = match timeouts.request_ms {
                Some(ms) => match tokio::time::timeout(Duration::from_millis(ms), fwd).await {
                    Ok(f) => f,
                    Err(_) => {
                        cluster.stats.timeouts.inc();
                        Forwarded {
                            result: Err(Failure::Timeout),
                            upstream_time: None,
                            attempts: 0,
                            endpoint: String::new(),
                        }
                    }
                },
                None => fwd.await,
            };
            upstream_time = fwd.upstream_time;
            attempts = fwd.attempts;
            endpoint = fwd.endpoint;
            match fwd.result {
                Ok(resp) => {
                    match upgrade.answer(resp, tunnel.as_ref(), shared.config.tunnel_idle_timeout) {
                        Ok(resp) => {
                            let (mut rp, rb) = resp.into_parts();
                            // Our own version, not the upstream's (RFC 9112, 2.3): an HTTP/1.0
                            // application must not turn the caller's connection into HTTP/1.0.
                            rp.version = Version::HTTP_11;
                            if let Some(r) = rule {
                                r.rt.response_headers.apply(&mut rp.headers);
                            }
                            Response::from_parts(rp, ProxyBody::Upstream(rb))
                        }
                        Err(unasked) => unasked.reply(),
                    }
                }
                Err(f) => f.reply(),
            }
        }
    };
    abandoned.disarm();
    let status = response.status().as_u16();
    let elapsed = start.elapsed();
    routed.stats.record(status, elapsed, upstream_time);
    if let Some(e) = entry {
        access::write(&AccessEntry {
            status,
            cluster: cluster_key,
            endpoint: &endpoint,
            attempts,
            duration_us: micros(elapsed),
            upstream_us: upstream_time.map(micros),
            ..e
        });
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(path: PathMatch) -> PathMatch {
        path
    }

    #[test]
    fn prefix_replacement_follows_gateway_api() {
        let e = entry(PathMatch::PathPrefix("/foo".into()));
        let r = |to: &str, path: &str| {
            modify_path(&PathModifier::ReplacePrefixMatch(to.into()), &e, path)
        };
        assert_eq!(r("/bar", "/foo"), "/bar");
        assert_eq!(r("/bar", "/foo/baz"), "/bar/baz");
        assert_eq!(r("/bar/", "/foo/baz"), "/bar/baz");
        assert_eq!(r("/", "/foo/baz"), "/baz");
        assert_eq!(r("/", "/foo"), "/");
        assert_eq!(r("/bar", "/foo/"), "/bar/");
        let root = entry(PathMatch::PathPrefix("/".into()));
        assert_eq!(
            modify_path(
                &PathModifier::ReplacePrefixMatch("/api".into()),
                &root,
                "/x/y"
            ),
            "/api/x/y"
        );
        assert_eq!(
            modify_path(&PathModifier::ReplaceFullPath("/z".into()), &e, "/foo/q"),
            "/z"
        );
    }

    #[test]
    fn redirect_locations() {
        let e = entry(PathMatch::PathPrefix("/old".into()));
        let (parts, _) = Request::get("/old/page?x=1").body(()).unwrap().into_parts();
        let loc = |r: Redirect, authority: &str| {
            redirect_location(&r, &e, &parts, authority)
                .unwrap()
                .to_str()
                .unwrap()
                .to_string()
        };
        let base = Redirect {
            scheme: None,
            hostname: None,
            port: None,
            path: None,
            status: 302,
        };
        assert_eq!(
            loc(base.clone(), "b.ns:8080"),
            "http://b.ns:8080/old/page?x=1"
        );
        assert_eq!(
            loc(
                Redirect {
                    scheme: Some("https".into()),
                    ..base.clone()
                },
                "b.ns:8080"
            ),
            "https://b.ns/old/page?x=1"
        );
        assert_eq!(
            loc(
                Redirect {
                    hostname: Some("new.example".into()),
                    port: Some(80),
                    path: Some(PathModifier::ReplacePrefixMatch("/new".into())),
                    ..base.clone()
                },
                "b.ns:8080"
            ),
            "http://new.example/new/page?x=1"
        );
        assert_eq!(
            loc(
                Redirect {
                    port: Some(9000),
                    ..base
                },
                "b.ns"
            ),
            "http://b.ns:9000/old/page?x=1"
        );
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let p = RetryPolicy {
            attempts: 5,
            codes: vec![503],
            backoff_ms: 10,
            max_backoff_ms: 50,
            budget: mesh_artifact::RetryBudget {
                percent: 20,
                min_per_second: 10,
            },
        };
        for _ in 0..100 {
            let b0 = backoff(&p, 0).as_millis();
            assert!((5..=10).contains(&b0), "{b0}");
            let b4 = backoff(&p, 4).as_millis();
            assert!((25..=50).contains(&b4), "{b4}");
        }
    }
}
