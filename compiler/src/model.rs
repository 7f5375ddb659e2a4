//! The mesh model: every resource read from the input, resolved to plain data, each node with
//! its source location. Native resources, Kubernetes `Service`s and Gateway API `HTTPRoute`s all
//! land here in the same shapes.

use std::collections::BTreeMap;

use mesh_artifact::{AuthzMode, EncodedSlashes, MatchKind, MtlsMode, Protocol};

use crate::source::{FileId, Loc};

/// A value with the place it was written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct S<T> {
    pub v: T,
    pub loc: Loc,
}

impl<T> S<T> {
    pub fn new(v: T, loc: Loc) -> Self {
        S { v, loc }
    }
}

/// Where a resource came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Origin {
    Native,
    Kubernetes,
    GatewayApi,
}

pub const DEFAULT_TRUST_DOMAIN: &str = "cluster.local";
pub const DEFAULT_INBOUND_PORT: u16 = 15006;
pub const DEFAULT_OUTBOUND_PORT: u16 = 15001;
pub const DEFAULT_ADMIN_PORT: u16 = 15000;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MeshConfig {
    pub name: String,
    pub loc: Option<Loc>,
    pub trust_domain: String,
    pub mtls: MtlsMode,
    pub authz_mode: AuthzMode,
    /// Request headers (lower case) visible to policy.
    pub context_headers: Vec<S<String>>,
    pub default_retry_budget: Option<mesh_artifact::RetryBudget>,
    pub default_request_timeout_ms: Option<u64>,
    pub sidecar_ports: SidecarPorts,
    /// `spec.referenceGrants: required`: a route's backend in another namespace needs a
    /// `ReferenceGrant` there (MC0308). Off by default, as Gateway API's mesh routes need none
    /// (GEP-1294).
    pub reference_grants_required: bool,
}

impl Default for MeshConfig {
    fn default() -> Self {
        MeshConfig {
            name: "mesh".to_string(),
            loc: None,
            trust_domain: DEFAULT_TRUST_DOMAIN.to_string(),
            mtls: MtlsMode::Strict,
            authz_mode: AuthzMode::Enforce,
            context_headers: Vec::new(),
            default_retry_budget: None,
            default_request_timeout_ms: None,
            sidecar_ports: SidecarPorts::default(),
            reference_grants_required: false,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SidecarPorts {
    pub inbound: u16,
    pub outbound: u16,
    pub admin: u16,
}

impl Default for SidecarPorts {
    fn default() -> Self {
        SidecarPorts {
            inbound: DEFAULT_INBOUND_PORT,
            outbound: DEFAULT_OUTBOUND_PORT,
            admin: DEFAULT_ADMIN_PORT,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Service {
    pub namespace: String,
    pub name: String,
    /// The resource's `metadata.name` value.
    pub loc: Loc,
    pub origin: Origin,
    pub ports: Vec<ServicePort>,
    pub versions: Vec<Version>,
    /// Instances without a version.
    pub endpoints: Vec<EndpointCfg>,
}

impl Service {
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServicePort {
    pub name: Option<String>,
    pub port: u16,
    pub target_port: Option<u16>,
    /// A `targetPort` that names a container port: its number is unknown here.
    pub target_name: Option<S<String>>,
    pub protocol: Protocol,
    pub loc: Loc,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Version {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub endpoints: Vec<EndpointCfg>,
    pub loc: Loc,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndpointCfg {
    pub address: String,
    /// The instance's sidecar inbound port; the sidecar's default when omitted.
    pub port: Option<u16>,
    pub loc: Loc,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sidecar {
    pub namespace: String,
    pub name: String,
    pub loc: Loc,
    /// Service this sidecar stands beside (same namespace).
    pub service: S<String>,
    pub inbound_port: Option<S<u16>>,
    pub outbound_port: Option<S<u16>>,
    pub admin_port: Option<S<u16>>,
    pub app_port: Option<S<u16>>,
    pub app_protocol: Option<Protocol>,
    /// `spec.app.encodedSlashes`: how paths holding `%2F` or `%5C` are normalized for this
    /// application, inbound and by every caller; `reject` when omitted.
    pub encoded_slashes: Option<S<EncodedSlashes>>,
    /// `None`: may call every service. `Some`: only these.
    pub egress: Option<Vec<EgressRef>>,
    pub authz_mode: Option<AuthzMode>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EgressRef {
    pub namespace: String,
    /// A service name, or `*` for every service of the namespace.
    pub name: String,
    pub loc: Loc,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    pub namespace: String,
    pub name: String,
    pub loc: Loc,
    pub origin: Origin,
    /// RFC 3339 UTC, normalised to `YYYY-MM-DDTHH:MM:SS.fffffffffZ` (string order is time order).
    pub creation_timestamp: Option<String>,
    /// `creationTimestamp` was given but is invalid (reported): the route's age is unknown, so
    /// the route analysis does not rank its matches against other routes'.
    pub unknown_age: bool,
    pub parents: Vec<ParentRef>,
    pub hostnames: Vec<S<String>>,
    pub rules: Vec<Rule>,
}

impl Route {
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// The API group and kind of the resource the route was read from.
    pub fn group_kind(&self) -> (&'static str, &'static str) {
        match self.origin {
            Origin::Native => ("meshc.dev", "MeshRoute"),
            Origin::GatewayApi | Origin::Kubernetes => ("gateway.networking.k8s.io", "HTTPRoute"),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParentRef {
    pub group: String,
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub port: Option<S<u16>>,
    pub loc: Loc,
}

impl ParentRef {
    pub fn is_service(&self) -> bool {
        self.group.is_empty() && self.kind == "Service"
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    pub loc: Loc,
    /// Empty: behaves as one `PathPrefix: /` match.
    pub matches: Vec<Match>,
    pub backends: Vec<BackendRef>,
    pub filters: Vec<Filter>,
    pub timeouts: Timeouts,
    pub retry: Option<Retry>,
    /// Part of the rule (a filter, a backend, an unknown field) was reported as invalid and
    /// dropped: a check that judges the rule as a whole (MC0509, no backends) stays quiet, since
    /// what it found would follow from that error.
    pub incomplete: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Match {
    pub loc: Loc,
    pub path: S<mesh_artifact::PathMatch>,
    pub method: Option<S<String>>,
    pub headers: Vec<S<ValueMatch>>,
    pub query: Vec<S<ValueMatch>>,
    /// The match had an error (reported): what it matches is unknown, so the route analysis
    /// and the checks on a rule's matches leave it out (anything they found would follow from
    /// that error). Models with errors are never lowered.
    pub broken: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValueMatch {
    pub name: String,
    pub kind: MatchKind,
    pub value: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackendRef {
    pub group: String,
    pub kind: String,
    pub namespace: String,
    /// The `namespace` value, when one is written.
    pub namespace_loc: Option<Loc>,
    pub name: String,
    pub port: Option<S<u16>>,
    pub version: Option<S<String>>,
    pub weight: u32,
    pub loc: Loc,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FilterKind {
    RequestHeaders(mesh_artifact::HeaderModifier),
    ResponseHeaders(mesh_artifact::HeaderModifier),
    Redirect(mesh_artifact::Redirect),
    Rewrite(mesh_artifact::UrlRewrite),
    /// Accepted by the schema but not enforced by mesh-proxy.
    Unsupported(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Filter {
    pub kind: FilterKind,
    pub loc: Loc,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Timeouts {
    pub request: Option<S<u64>>,
    pub backend_request: Option<S<u64>>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Retry {
    pub loc: Loc,
    pub attempts: u32,
    pub codes: Vec<u16>,
    pub backoff_ms: u64,
    pub max_backoff_ms: Option<u64>,
    pub budget: Option<mesh_artifact::RetryBudget>,
}

/// A Gateway API `ReferenceGrant`: which kinds of resources of other namespaces may refer to
/// which resources of its own namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReferenceGrant {
    pub namespace: String,
    pub name: String,
    /// The resource's `metadata.name` value.
    pub loc: Loc,
    pub from: Vec<GrantFrom>,
    pub to: Vec<GrantTo>,
}

impl ReferenceGrant {
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// Whether this grant lets a resource of `group`/`kind` in namespace `from_ns` refer to the
    /// Service `service` of the grant's namespace. `group` `""` is the core group.
    pub fn permits(&self, group: &str, kind: &str, from_ns: &str, service: &str) -> bool {
        self.from
            .iter()
            .any(|f| f.group == group && f.kind == kind && f.namespace.v == from_ns)
            && self.to.iter().any(|t| t.permits_service(service))
    }
}

/// `spec.from[]` of a grant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GrantFrom {
    pub group: String,
    pub kind: String,
    pub namespace: S<String>,
    pub loc: Loc,
}

/// `spec.to[]` of a grant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GrantTo {
    pub group: String,
    pub kind: String,
    /// `None`: every resource of the kind in the grant's namespace.
    pub name: Option<S<String>>,
    pub loc: Loc,
}

impl GrantTo {
    pub fn permits_service(&self, service: &str) -> bool {
        self.group.is_empty()
            && self.kind == "Service"
            && self.name.as_ref().is_none_or(|n| n.v == service)
    }
}

/// A `.cedar` file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyFile {
    pub file: FileId,
}

/// Everything read from one mesh definition directory.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Model {
    pub mesh: MeshConfig,
    /// Sorted by `namespace/name`.
    pub services: Vec<Service>,
    pub sidecars: Vec<Sidecar>,
    /// Sorted by `namespace/name`.
    pub routes: Vec<Route>,
    /// Gateway API `ReferenceGrant`s, sorted by `namespace/name`.
    pub reference_grants: Vec<ReferenceGrant>,
    pub policy_files: Vec<PolicyFile>,
    /// Routes by the `namespace/name` of each Service they name as a parent: indexes into
    /// `routes`, ascending. Derived by [`Model::index_routes`].
    pub routes_by_parent: std::collections::BTreeMap<String, Vec<usize>>,
    /// `sha256` of each input document's text (YAML documents and `.cedar` files), so that the
    /// source hash does not depend on how documents are split across files or ordered.
    pub document_hashes: Vec<String>,
}

impl Model {
    pub fn service(&self, namespace: &str, name: &str) -> Option<&Service> {
        self.services
            .binary_search_by(|s| (s.namespace.as_str(), s.name.as_str()).cmp(&(namespace, name)))
            .ok()
            .map(|i| &self.services[i])
    }

    pub fn sidecar_for(&self, namespace: &str, name: &str) -> Option<&Sidecar> {
        // Sorted by (namespace, service, loc) in `load::build_model`: the first one wins.
        let i = self
            .sidecars
            .partition_point(|s| (s.namespace.as_str(), s.service.v.as_str()) < (namespace, name));
        self.sidecars
            .get(i)
            .filter(|s| s.namespace == namespace && s.service.v == name)
    }

    /// Fill [`Model::routes_by_parent`] (after `routes` is sorted).
    pub fn index_routes(&mut self) {
        let mut by: std::collections::BTreeMap<String, Vec<usize>> =
            std::collections::BTreeMap::new();
        for (i, r) in self.routes.iter().enumerate() {
            for p in r.parents.iter().filter(|p| p.is_service()) {
                let list = by.entry(format!("{}/{}", p.namespace, p.name)).or_default();
                if list.last() != Some(&i) {
                    list.push(i);
                }
            }
        }
        self.routes_by_parent = by;
    }

    /// Routes that name `namespace/name` as a Service parent.
    pub fn routes_of(&self, service_key: &str) -> impl Iterator<Item = &Route> {
        self.routes_by_parent
            .get(service_key)
            .into_iter()
            .flatten()
            .filter_map(|&i| self.routes.get(i))
    }

    /// The `ReferenceGrant`s of one namespace.
    pub fn grants_in(&self, namespace: &str) -> &[ReferenceGrant] {
        let start = self
            .reference_grants
            .partition_point(|g| g.namespace.as_str() < namespace);
        let rest = self.reference_grants.get(start..).unwrap_or(&[]);
        let len = rest.iter().take_while(|g| g.namespace == namespace).count();
        rest.get(..len).unwrap_or(&[])
    }

    pub fn namespaces(&self) -> Vec<&str> {
        let mut ns: Vec<&str> = self.services.iter().map(|s| s.namespace.as_str()).collect();
        ns.dedup();
        ns
    }
}
