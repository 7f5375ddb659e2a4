//! Prometheus metrics. Families live in one registry; the per-route and per-cluster handles the
//! request path records into are created when an artifact is loaded, so recording a request
//! touches no map and takes no registry lock.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Histogram bucket bounds in seconds: 25 µs doubling up to about 13 s, so sub-millisecond
/// proxy latencies land in distinct buckets.
pub fn latency_buckets() -> impl Iterator<Item = f64> {
    prometheus_client::metrics::histogram::exponential_buckets(0.000_025, 2.0, 20)
}

fn new_histogram() -> Histogram {
    Histogram::new(latency_buckets())
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub direction: &'static str,
    pub destination: String,
    pub route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub direction: &'static str,
    pub destination: String,
    pub route: String,
    pub status_class: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ListenerLabels {
    pub listener: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ClosedLabels {
    pub listener: &'static str,
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ClusterLabels {
    pub cluster: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct UpstreamErrorLabels {
    pub cluster: String,
    pub kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct InfoLabels {
    pub service: String,
    pub body_hash: String,
    pub source_hash: String,
    pub meshc_version: String,
    pub format_version: String,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// Every metric family of one proxy.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    request_duration: HistogramFamily<RouteLabels>,
    upstream_duration: HistogramFamily<RouteLabels>,
    upstream_retries: Family<ClusterLabels, Counter>,
    retry_budget_exhausted: Family<ClusterLabels, Counter>,
    upstream_errors: Family<UpstreamErrorLabels, Counter>,
    artifact_info: Family<InfoLabels, Gauge>,
    pub authz_allowed: Counter,
    pub authz_denied: Counter,
    pub authz_audited_deny: Counter,
    pub reload_success: Counter,
    pub reload_failure: Counter,
    pub cert_reload_success: Counter,
    pub cert_reload_failure: Counter,
    pub inbound: ListenerStats,
    pub outbound: ListenerStats,
    pub admin: ListenerStats,
}

/// Connection counters of one listener.
#[derive(Clone, Debug, Default)]
pub struct ListenerStats {
    pub accepted: Counter,
    pub active: Gauge,
    pub tls_failures: Counter,
    /// Connections closed for sending no request within the header read timeout.
    pub closed_no_request: Counter,
    /// Connections shut down for starting no request for the idle timeout.
    pub closed_idle: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("mesh_proxy");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "requests",
            "Requests answered, by direction, destination, route and status class",
            requests.clone(),
        );
        let request_duration: HistogramFamily<RouteLabels> =
            Family::new_with_constructor(new_histogram);
        registry.register(
            "request_duration_seconds",
            "Time from a request's arrival until its response headers are sent",
            request_duration.clone(),
        );
        let upstream_duration: HistogramFamily<RouteLabels> =
            Family::new_with_constructor(new_histogram);
        registry.register(
            "upstream_duration_seconds",
            "Time from sending a request upstream until its response headers arrive (last attempt)",
            upstream_duration.clone(),
        );
        let authz = Family::<ResultLabels, Counter>::default();
        registry.register(
            "authz_decisions",
            "Inbound authorization decisions: allowed, denied, audited_deny (denied by policy, let through by audit mode)",
            authz.clone(),
        );
        let reloads = Family::<ResultLabels, Counter>::default();
        registry.register(
            "artifact_reloads",
            "Artifact loads by result: success, failure (a failure leaves the last good artifact serving)",
            reloads.clone(),
        );
        let cert_reloads = Family::<ResultLabels, Counter>::default();
        registry.register(
            "cert_reloads",
            "Certificate, key and trust bundle reloads by result",
            cert_reloads.clone(),
        );
        let artifact_info = Family::<InfoLabels, Gauge>::default();
        registry.register(
            "artifact_info",
            "The artifact being served (value 1)",
            artifact_info.clone(),
        );
        let connections = Family::<ListenerLabels, Counter>::default();
        registry.register(
            "connections",
            "Connections accepted, by listener",
            connections.clone(),
        );
        let active = Family::<ListenerLabels, Gauge>::default();
        registry.register(
            "connections_active",
            "Connections open, by listener",
            active.clone(),
        );
        let tls_failures = Family::<ListenerLabels, Counter>::default();
        registry.register(
            "tls_handshake_failures",
            "Inbound TLS handshakes that failed (no client certificate, untrusted, expired, not TLS 1.3, ...)",
            tls_failures.clone(),
        );
        let closed = Family::<ClosedLabels, Counter>::default();
        registry.register(
            "connections_closed_idle",
            "Connections the proxy closed for want of requests, by listener and reason: \
             no_request (none started within --header-read-timeout of the connection being \
             served), idle (no new request for --idle-timeout)",
            closed.clone(),
        );
        let upstream_retries = Family::<ClusterLabels, Counter>::default();
        registry.register(
            "upstream_retries",
            "Retries sent to a cluster",
            upstream_retries.clone(),
        );
        let retry_budget_exhausted = Family::<ClusterLabels, Counter>::default();
        registry.register(
            "retry_budget_exhausted",
            "Retries not sent because the cluster's retry budget was spent",
            retry_budget_exhausted.clone(),
        );
        let upstream_errors = Family::<UpstreamErrorLabels, Counter>::default();
        registry.register(
            "upstream_errors",
            "Failed upstream attempts, by cluster and kind: connect, timeout, protocol",
            upstream_errors.clone(),
        );
        let result = |f: &Family<ResultLabels, Counter>, r: &'static str| {
            f.get_or_create_owned(&ResultLabels { result: r })
        };
        let listener = |name: &'static str| {
            let l = ListenerLabels { listener: name };
            ListenerStats {
                accepted: connections.get_or_create_owned(&l),
                active: active.get_or_create_owned(&l),
                tls_failures: tls_failures.get_or_create_owned(&l),
                closed_no_request: closed.get_or_create_owned(&ClosedLabels {
                    listener: name,
                    reason: "no_request",
                }),
                closed_idle: closed.get_or_create_owned(&ClosedLabels {
                    listener: name,
                    reason: "idle",
                }),
            }
        };
        Metrics {
            authz_allowed: result(&authz, "allowed"),
            authz_denied: result(&authz, "denied"),
            authz_audited_deny: result(&authz, "audited_deny"),
            reload_success: result(&reloads, "success"),
            reload_failure: result(&reloads, "failure"),
            cert_reload_success: result(&cert_reloads, "success"),
            cert_reload_failure: result(&cert_reloads, "failure"),
            inbound: listener("inbound"),
            outbound: listener("outbound"),
            admin: listener("admin"),
            registry,
            requests,
            request_duration,
            upstream_duration,
            upstream_retries,
            retry_budget_exhausted,
            upstream_errors,
            artifact_info,
        }
    }

    /// Handles for one (direction, destination, route).
    pub fn route(&self, direction: &'static str, destination: &str, route: &str) -> RouteStats {
        let labels = RouteLabels {
            direction,
            destination: destination.to_string(),
            route: route.to_string(),
        };
        let class = |c: &'static str| {
            self.requests.get_or_create_owned(&RequestLabels {
                direction,
                destination: destination.to_string(),
                route: route.to_string(),
                status_class: c,
            })
        };
        RouteStats {
            duration: self.request_duration.get_or_create_owned(&labels),
            upstream: self.upstream_duration.get_or_create_owned(&labels),
            by_class: [
                class("1xx"),
                class("2xx"),
                class("3xx"),
                class("4xx"),
                class("5xx"),
            ],
        }
    }

    /// Handles for one cluster.
    pub fn cluster(&self, cluster: &str) -> ClusterStats {
        let l = ClusterLabels {
            cluster: cluster.to_string(),
        };
        let err = |kind: &'static str| {
            self.upstream_errors
                .get_or_create_owned(&UpstreamErrorLabels {
                    cluster: cluster.to_string(),
                    kind,
                })
        };
        ClusterStats {
            retries: self.upstream_retries.get_or_create_owned(&l),
            budget_exhausted: self.retry_budget_exhausted.get_or_create_owned(&l),
            connect_errors: err("connect"),
            timeouts: err("timeout"),
            protocol_errors: err("protocol"),
        }
    }

    /// Replace the artifact info series.
    pub fn set_artifact_info(&self, info: InfoLabels) {
        self.artifact_info.clear();
        self.artifact_info.get_or_create(&info).set(1);
    }

    /// The OpenMetrics text exposition of every family.
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(16 * 1024);
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// Per-route recording handles.
#[derive(Clone, Debug)]
pub struct RouteStats {
    duration: Histogram,
    upstream: Histogram,
    by_class: [Counter; 5],
}

/// Status recorded for a request the caller abandoned before its response began (nginx's
/// "client closed request").
pub const CLIENT_CLOSED: u16 = 499;

/// Runs its closure when dropped, unless disarmed. A request handler holds one while it waits
/// for the upstream: when the caller goes away, the server drops the handler mid-way, and the
/// closure records the request (as [`CLIENT_CLOSED`]) so the slowest requests do not vanish
/// from the metrics and the access log.
pub struct OnAbandon<F: FnOnce()>(Option<F>);

impl<F: FnOnce()> OnAbandon<F> {
    pub fn new(f: F) -> Self {
        OnAbandon(Some(f))
    }

    /// The request finished: record nothing here.
    pub fn disarm(mut self) {
        self.0 = None;
    }
}

impl<F: FnOnce()> Drop for OnAbandon<F> {
    fn drop(&mut self) {
        if let Some(f) = self.0.take() {
            f();
        }
    }
}

impl RouteStats {
    pub fn record(&self, status: u16, total: Duration, upstream: Option<Duration>) {
        self.duration.observe(total.as_secs_f64());
        if let Some(u) = upstream {
            self.upstream.observe(u.as_secs_f64());
        }
        self.by_class[crate::http::status_class(status)].inc();
    }
}

/// Per-cluster recording handles.
#[derive(Clone, Debug)]
pub struct ClusterStats {
    pub retries: Counter,
    pub budget_exhausted: Counter,
    pub connect_errors: Counter,
    pub timeouts: Counter,
    pub protocol_errors: Counter,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_handles_share_series_with_the_registry() {
        let m = Metrics::new();
        let a = m.route("outbound", "ns/b", "ns/r");
        let again = m.route("outbound", "ns/b", "ns/r");
        a.record(
            200,
            Duration::from_micros(300),
            Some(Duration::from_micros(200)),
        );
        again.record(503, Duration::from_millis(2), None);
        let text = m.encode();
        assert!(
            text.contains(
                r#"mesh_proxy_request_duration_seconds_count{direction="outbound",destination="ns/b",route="ns/r"} 2"#
            ),
            "{text}"
        );
        assert!(
            text.contains(
                r#"mesh_proxy_upstream_duration_seconds_count{direction="outbound",destination="ns/b",route="ns/r"} 1"#
            ),
            "{text}"
        );
        assert!(text.contains(r#"status_class="2xx"} 1"#), "{text}");
        assert!(text.contains(r#"status_class="5xx"} 1"#), "{text}");
        // 300 µs falls in a sub-millisecond bucket of its own.
        assert!(text.contains(r#"le="0.0004""#), "{text}");
    }

    #[test]
    fn artifact_info_keeps_one_series() {
        let m = Metrics::new();
        let info = |h: &str| InfoLabels {
            service: "ns/a".into(),
            body_hash: h.into(),
            source_hash: "s".into(),
            meshc_version: "0.1.0".into(),
            format_version: "1".into(),
        };
        m.set_artifact_info(info("one"));
        m.set_artifact_info(info("two"));
        let text = m.encode();
        assert!(!text.contains(r#"body_hash="one""#));
        assert!(text.contains(r#"body_hash="two""#));
    }
}
