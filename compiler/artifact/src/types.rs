//! The plain-data types of a compiled sidecar artifact.
//!
//! Everything here is decided by the compiler: the proxy only reads it. Lists are stored in the
//! order the compiler chose (route entries already ranked by Gateway API precedence), maps are
//! `BTreeMap`s so that the canonical encoding is stable.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The artifact format version written in every header. A loader refuses any other value.
pub const FORMAT_VERSION: u32 = 1;

/// The `format` string written in every header, so a stray JSON file is refused early.
pub const FORMAT_NAME: &str = "meshc.artifact";

/// Header of an artifact file: what the loader checks before it trusts the body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Header {
    /// Always [`FORMAT_NAME`].
    pub format: String,
    /// Always [`FORMAT_VERSION`] for artifacts this crate writes.
    pub format_version: u32,
    /// Version of the `meshc` that compiled the artifact.
    pub meshc_version: String,
    /// `sha256:<hex>` of the mesh definition's source files (names and contents).
    pub source_hash: String,
    /// `sha256:<hex>` of the body bytes exactly as they stand in the file.
    pub body_hash: String,
}

/// Everything one sidecar needs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
///
/// `T` is how a route table is held: the tables themselves everywhere but in the compiler's
/// writer, which hands the encoder tables it has encoded once for every sidecar that calls the
/// same destination port (anything that serializes exactly as the [`RouteTable`] would).
pub struct Body<T = RouteTable> {
    pub mesh: MeshInfo,
    pub sidecar: SidecarInfo,
    /// Services this sidecar may call, sorted by `service`.
    pub destinations: Vec<Destination<T>>,
    /// Backend clusters referenced by route actions, keyed by [`cluster_key`] text.
    pub clusters: BTreeMap<String, Cluster>,
    /// Authorization for this sidecar's inbound side.
    pub authz: AuthzBundle,
}

impl Body {
    /// Every service this sidecar's requests can reach, sorted and without repeats: the
    /// destinations it addresses, and the backends their routes send traffic to (a route on
    /// `store` may send to `store-v2`, whose sidecar then authorizes this caller, whether or
    /// not `store-v2` is a destination of its own). A backend of weight 0 gets no traffic.
    pub fn reached_services(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::with_capacity(self.destinations.len());
        let mut cluster = |key: &str| {
            if let Some(c) = self.clusters.get(key) {
                out.push(c.service.as_str());
            }
        };
        for d in &self.destinations {
            for p in &d.ports {
                match &p.routes {
                    None => cluster(&p.default_cluster),
                    Some(t) => t
                        .actions
                        .iter()
                        .flat_map(|a| &a.backends)
                        .filter(|b| b.weight > 0)
                        .for_each(|b| cluster(&b.cluster)),
                }
            }
        }
        out.extend(self.destinations.iter().map(|d| d.service.as_str()));
        out.sort_unstable();
        out.dedup();
        out
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MeshInfo {
    pub name: String,
    pub trust_domain: String,
    pub mtls: MtlsMode,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MtlsMode {
    /// Only mutual TLS 1.3 is accepted inbound.
    Strict,
    /// Mutual TLS 1.3 is used between sidecars; plaintext inbound is also accepted.
    Permissive,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthzMode {
    /// Deny unless a policy permits; a `forbid` always wins.
    Enforce,
    /// Decide, count and log what would be denied, but let it through.
    Audit,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Http,
    Http2,
    Grpc,
}

impl Protocol {
    /// Whether upstream connections should speak HTTP/2.
    pub fn is_h2(self) -> bool {
        matches!(self, Protocol::Http2 | Protocol::Grpc)
    }
}

/// The sidecar's own identity and listeners.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SidecarInfo {
    /// `namespace/name` of the service this sidecar stands beside.
    pub service: String,
    pub namespace: String,
    /// SPIFFE ID this sidecar presents: `spiffe://<trust-domain>/ns/<ns>/sa/<name>`.
    pub identity: String,
    /// Mesh port: mutual TLS from other sidecars.
    pub inbound_port: u16,
    /// Loopback port the local application sends its outbound requests to.
    pub outbound_port: u16,
    /// Loopback admin port: `/ready`, `/metrics`, `/config`.
    pub admin_port: u16,
    /// Port of the local application, on loopback.
    pub app_port: u16,
    /// Where a service port reaches another application port than `app_port` (a Service whose
    /// ports target different container ports): the inbound side forwards a request to the
    /// application port of the service port its caller addressed. Sorted by `port`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub app_ports: Vec<AppPort>,
    /// Protocol the local application speaks.
    pub app_protocol: Protocol,
    pub authz_mode: AuthzMode,
    /// How the inbound side normalizes request paths holding `%2F` or `%5C`: the local
    /// application's setting. Absent (the default, `reject`) in most artifacts.
    #[serde(default, skip_serializing_if = "EncodedSlashes::is_reject")]
    pub encoded_slashes: EncodedSlashes,
}

/// What a sidecar does with an encoded slash or backslash (`%2F`, `%5C`) in a request path: the
/// application's `spec.app.encodedSlashes`, written into the artifact only when it is not the
/// default, so artifacts of meshes that do not set it are unchanged.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum EncodedSlashes {
    /// Answer 400: no spelling of such a path is safe to both authorize and forward when the
    /// application may decode `%2F` before it resolves `..` (nginx does).
    #[default]
    Reject,
    /// The application treats `%2F` and `%5C` as data inside one segment, never as separators:
    /// they stay encoded (hex upper-cased) and do not split segments during normalization.
    Keep,
}

impl EncodedSlashes {
    /// Whether this is the default, [`EncodedSlashes::Reject`] (not written in artifacts).
    pub fn is_reject(&self) -> bool {
        *self == EncodedSlashes::Reject
    }
}

/// One service port and the application port it reaches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppPort {
    pub port: u16,
    pub app_port: u16,
}

/// A service this sidecar may call.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Destination<T = RouteTable> {
    /// `namespace/name`.
    pub service: String,
    /// Host names that address this service, lower case, without port: `name`, `name.ns`,
    /// `name.ns.svc`, `name.ns.svc.cluster.local`, and hostnames that attached routes declare.
    /// Short names (`name`) are only listed for services in the caller's own namespace.
    pub hosts: Vec<String>,
    /// Service ports, sorted by port number.
    pub ports: Vec<DestinationPort<T>>,
    /// How requests addressed to this service are normalized on the outbound side before its
    /// routes are matched: the destination application's `encodedSlashes` (its own sidecar
    /// normalizes with the same setting inbound). Absent (the default, `reject`) in most
    /// artifacts.
    #[serde(default, skip_serializing_if = "EncodedSlashes::is_reject")]
    pub encoded_slashes: EncodedSlashes,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DestinationPort<T = RouteTable> {
    pub port: u16,
    pub protocol: Protocol,
    /// Route table for this port. `None` when no route is attached: traffic goes to the
    /// service itself (cluster `default_cluster`).
    pub routes: Option<T>,
    /// Cluster used when no route is attached.
    pub default_cluster: String,
}

/// All match entries of every rule of every route attached to one destination port, already
/// sorted by Gateway API precedence (first entry wins), and the actions they lead to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteTable {
    pub entries: Vec<RouteEntry>,
    pub actions: Vec<RuleAction>,
}

/// One `matches[]` element of one rule, with where it came from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteEntry {
    /// `namespace/name` of the route.
    pub route: String,
    /// Zero-based index of the rule in the route's `rules`.
    pub rule: u32,
    /// Zero-based index of the match in the rule's `matches` (0 for a rule without matches).
    pub r#match: u32,
    /// Source position of the rule, for explanations.
    pub source: SourcePos,
    pub path: PathMatch,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<ValueMatch>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub query: Vec<ValueMatch>,
    /// Index into [`RouteTable::actions`].
    pub action: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourcePos {
    pub file: String,
    pub line: u32,
    pub column: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "type", content = "value")]
pub enum PathMatch {
    Exact(String),
    PathPrefix(String),
    RegularExpression(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum MatchKind {
    Exact,
    RegularExpression,
}

/// A header or query-parameter match. Header names are stored lower case.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValueMatch {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: MatchKind,
    pub value: String,
}

/// What a rule does with a matched request.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleAction {
    /// Weighted backends. Empty when the rule only redirects, or answers `fixed_status`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub backends: Vec<WeightedCluster>,
    /// Answer this status without forwarding: 500 for a rule whose backends all have weight 0
    /// or name a missing backend.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fixed_status: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirect: Option<Redirect>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rewrite: Option<UrlRewrite>,
    #[serde(default, skip_serializing_if = "HeaderModifier::is_empty")]
    pub request_headers: HeaderModifier,
    #[serde(default, skip_serializing_if = "HeaderModifier::is_empty")]
    pub response_headers: HeaderModifier,
    #[serde(default, skip_serializing_if = "Timeouts::is_empty")]
    pub timeouts: Timeouts,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetryPolicy>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WeightedCluster {
    /// Key into [`Body::clusters`].
    pub cluster: String,
    pub weight: u32,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderModifier {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub set: Vec<(String, String)>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub add: Vec<(String, String)>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remove: Vec<String>,
}

impl HeaderModifier {
    pub fn is_empty(&self) -> bool {
        self.set.is_empty() && self.add.is_empty() && self.remove.is_empty()
    }

    /// Apply to a plain list of headers, names compared case-insensitively, in Gateway API
    /// order: set (replacing every value of the name), then add (appended), then remove. The
    /// sidecar applies the same to its `HeaderMap`; `meshc explain` uses this to see a request
    /// as the destination's sidecar will.
    pub fn apply_to(&self, headers: &mut Vec<(String, String)>) {
        for (n, v) in &self.set {
            headers.retain(|(h, _)| !h.eq_ignore_ascii_case(n));
            headers.push((n.clone(), v.clone()));
        }
        for (n, v) in &self.add {
            headers.push((n.clone(), v.clone()));
        }
        for n in &self.remove {
            headers.retain(|(h, _)| !h.eq_ignore_ascii_case(n));
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Timeouts {
    /// Whole request, retries included.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_ms: Option<u64>,
    /// Each attempt to a backend.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend_request_ms: Option<u64>,
}

impl Timeouts {
    pub fn is_empty(&self) -> bool {
        self.request_ms.is_none() && self.backend_request_ms.is_none()
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryPolicy {
    /// Retries after the first attempt.
    pub attempts: u32,
    /// Upstream statuses that may be retried (connection failures always may).
    pub codes: Vec<u16>,
    /// Base backoff between attempts; doubled each retry up to `max_backoff_ms`.
    pub backoff_ms: u64,
    pub max_backoff_ms: u64,
    pub budget: RetryBudget,
}

/// Retries are allowed while they stay under `percent` of requests, with a floor of
/// `min_per_second` retries each second.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryBudget {
    pub percent: u32,
    pub min_per_second: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Redirect {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheme: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathModifier>,
    pub status: u16,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UrlRewrite {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathModifier>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "value")]
pub enum PathModifier {
    ReplaceFullPath(String),
    /// Replace the part of the path matched by the entry's `PathPrefix`.
    ReplacePrefixMatch(String),
}

/// Where a backend's traffic goes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cluster {
    /// `namespace/name` of the service.
    pub service: String,
    /// Service port.
    pub port: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    pub protocol: Protocol,
    /// SPIFFE ID the destination sidecar must present.
    pub identity: String,
    /// Destination sidecars' inbound (mTLS) addresses: `host:port`.
    pub endpoints: Vec<Endpoint>,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Endpoint {
    pub address: String,
    pub port: u16,
}

/// The text key of a cluster: `namespace/name:port` or `namespace/name:port@version`.
pub fn cluster_key(service: &str, port: u16, version: Option<&str>) -> String {
    match version {
        Some(v) => format!("{service}:{port}@{v}"),
        None => format!("{service}:{port}"),
    }
}

/// Authorization data for this sidecar's inbound side, pre-validated by the compiler.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthzBundle {
    /// Cedar schema (human syntax) the policies were validated against.
    pub schema: String,
    /// Policies that can apply to this sidecar's inbound side, sorted by id.
    pub policies: Vec<PolicyText>,
    /// Cedar entities (JSON entity format), sorted by uid.
    pub entities: serde_json::Value,
    /// Request headers (lower case) the proxy passes to policy context.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub context_headers: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyText {
    /// Stable id: the `@id` annotation, or `file:line:column`.
    pub id: String,
    /// Source file and position of the policy.
    pub source: SourcePos,
    /// The policy's Cedar text.
    pub text: String,
}

/// The index file written next to the artifacts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Index {
    pub format: String,
    pub format_version: u32,
    pub meshc_version: String,
    pub mesh: String,
    pub source_hash: String,
    /// One entry per sidecar, sorted by `service`.
    pub artifacts: Vec<IndexEntry>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IndexEntry {
    /// `namespace/name` of the sidecar's service.
    pub service: String,
    /// File name relative to the index.
    pub file: String,
    /// `sha256:<hex>` of the whole file.
    pub sha256: String,
    /// The artifact's body hash (the same as in its header).
    pub body_hash: String,
}
