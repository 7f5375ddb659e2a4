//! JSON Schema (draft-07) of the native resources, for editors (`yaml-language-server`).
//!
//! The types here exist only to describe the schema; decoding is done by [`crate::decode`],
//! whose field lists a test keeps equal to the properties below.

#![allow(dead_code, clippy::upper_case_acronyms)]

use std::collections::BTreeMap;

use schemars::JsonSchema;

/// `apiVersion` of every native resource.
#[derive(JsonSchema)]
enum ApiVersion {
    #[serde(rename = "meshc.dev/v1alpha1")]
    V1Alpha1,
}

#[derive(JsonSchema)]
#[serde(rename_all = "camelCase")]
struct Metadata {
    /// Resource name.
    name: String,
    /// Namespace; `default` (or `meshc --namespace`) when omitted.
    namespace: Option<String>,
    labels: Option<BTreeMap<String, String>>,
    annotations: Option<BTreeMap<String, String>>,
    /// RFC 3339; breaks route precedence ties (older wins).
    creation_timestamp: Option<String>,
    uid: Option<String>,
    resource_version: Option<String>,
    generation: Option<i64>,
    managed_fields: Option<Vec<serde_json::Value>>,
    owner_references: Option<Vec<serde_json::Value>>,
    finalizers: Option<Vec<String>>,
    generate_name: Option<String>,
    deletion_timestamp: Option<String>,
    deletion_grace_period_seconds: Option<i64>,
    self_link: Option<String>,
}

macro_rules! resource {
    ($name:ident, $kind_enum:ident, $kind:ident, $spec:ty, $doc:literal) => {
        #[derive(JsonSchema)]
        enum $kind_enum {
            $kind,
        }

        #[doc = $doc]
        #[derive(JsonSchema)]
        #[serde(rename_all = "camelCase", deny_unknown_fields)]
        struct $name {
            api_version: ApiVersion,
            kind: $kind_enum,
            metadata: Metadata,
            spec: $spec,
            status: Option<serde_json::Value>,
        }
    };
}

resource!(
    MeshResource,
    MeshKind,
    Mesh,
    Option<MeshSpec>,
    "Mesh-wide settings; at most one per definition."
);
resource!(
    MeshServiceResource,
    MeshServiceKind,
    MeshService,
    MeshServiceSpec,
    "A service defined natively (an alternative to a Kubernetes `Service`), with versions and endpoints for runs outside Kubernetes."
);
resource!(
    SidecarResource,
    SidecarKind,
    Sidecar,
    SidecarSpec,
    "Settings of the sidecar beside one service: listeners, the local application, egress, authorization mode."
);
resource!(
    MeshRouteResource,
    MeshRouteKind,
    MeshRoute,
    RouteSpec,
    "An HTTP route in Gateway API shape whose parents default to Services, with retry budgets and backend versions."
);

#[derive(JsonSchema)]
#[serde(rename_all = "lowercase")]
enum MtlsModeS {
    Strict,
    Permissive,
}

#[derive(JsonSchema)]
#[serde(rename_all = "lowercase")]
enum AuthzModeS {
    Enforce,
    Audit,
}

#[derive(JsonSchema)]
#[serde(rename_all = "lowercase")]
enum ProtocolS {
    Http,
    Http2,
    Grpc,
}

#[derive(JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct MeshSpec {
    /// SPIFFE trust domain; default `cluster.local`.
    trust_domain: Option<String>,
    mtls: Option<MeshMtls>,
    authorization: Option<MeshAuthz>,
    defaults: Option<MeshDefaults>,
    sidecar: Option<MeshSidecar>,
    /// `required`: a route's backend in another namespace needs a Gateway API `ReferenceGrant`
    /// there (MC0308). `optional` (default): mesh routes need none (GEP-1294); the backend's
    /// own authorization decides who may call it.
    reference_grants: Option<ReferenceGrantsS>,
}

#[derive(JsonSchema)]
#[serde(rename_all = "lowercase")]
enum ReferenceGrantsS {
    Optional,
    Required,
}

#[derive(JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct MeshMtls {
    /// `strict` (default): mutual TLS 1.3 only.
    mode: Option<MtlsModeS>,
}

#[derive(JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct MeshAuthz {
    /// `enforce` (default) or `audit`.
    mode: Option<AuthzModeS>,
    /// Request headers visible to Cedar policies as `context.headers`.
    context_headers: Option<Vec<String>>,
}

#[derive(JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct MeshDefaults {
    retry_budget: Option<RetryBudgetS>,
    timeouts: Option<MeshDefaultTimeouts>,
}

#[derive(JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct MeshDefaultTimeouts {
    /// Gateway API duration, e.g. `15s`.
    #[schemars(regex(pattern = r"^([0-9]{1,5}(h|m|s|ms)){1,4}$"))]
    request: Option<String>,
}

#[derive(JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct MeshSidecar {
    #[schemars(range(min = 1, max = 65535))]
    inbound_port: Option<u16>,
    #[schemars(range(min = 1, max = 65535))]
    outbound_port: Option<u16>,
    #[schemars(range(min = 1, max = 65535))]
    admin_port: Option<u16>,
}

#[derive(JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RetryBudgetS {
    /// Retries may add at most this percentage of requests.
    #[schemars(range(min = 0, max = 100))]
    percent: u32,
    /// Floor of retries allowed each second; default 10.
    min_retries_per_second: Option<u32>,
}

#[derive(JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct MeshServiceSpec {
    ports: Vec<MeshServicePort>,
    versions: Option<Vec<VersionS>>,
    /// Instances without a version (runs outside Kubernetes).
    endpoints: Option<Vec<EndpointS>>,
}

#[derive(JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct MeshServicePort {
    name: Option<String>,
    #[schemars(range(min = 1, max = 65535))]
    port: u16,
    protocol: Option<ProtocolS>,
    #[schemars(range(min = 1, max = 65535))]
    target_port: Option<u16>,
}

#[derive(JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct VersionS {
    name: String,
    labels: Option<BTreeMap<String, String>>,
    endpoints: Option<Vec<EndpointS>>,
}

#[derive(JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct EndpointS {
    /// IP address or DNS name of the instance's sidecar.
    address: String,
    /// The instance sidecar's inbound port; the sidecar default when omitted.
    #[schemars(range(min = 1, max = 65535))]
    port: Option<u16>,
}

#[derive(JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SidecarSpec {
    /// Name of the service (same namespace) this sidecar stands beside.
    service: String,
    listeners: Option<SidecarListeners>,
    app: Option<SidecarApp>,
    /// Services this sidecar may call: `name`, `namespace/name`, `namespace/*`, or
    /// `{service, namespace}`. Every service when omitted.
    egress: Option<Vec<EgressS>>,
    authorization: Option<SidecarAuthz>,
}

#[derive(JsonSchema)]
#[serde(untagged)]
enum EgressS {
    Text(String),
    Ref(EgressRefS),
}

#[derive(JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct EgressRefS {
    service: String,
    namespace: Option<String>,
}

#[derive(JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SidecarListeners {
    #[schemars(range(min = 1, max = 65535))]
    inbound: Option<u16>,
    #[schemars(range(min = 1, max = 65535))]
    outbound: Option<u16>,
    #[schemars(range(min = 1, max = 65535))]
    admin: Option<u16>,
}

#[derive(JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SidecarApp {
    #[schemars(range(min = 1, max = 65535))]
    port: Option<u16>,
    protocol: Option<ProtocolS>,
    /// What the sidecars do with an encoded slash or backslash (`%2F`, `%5C`) in a request
    /// path to this application. `reject` (default): answer 400. `keep`: the application treats
    /// them as data inside one path segment, never as separators, so they are kept encoded and
    /// do not split segments when `.` and `..` are resolved. Set `keep` only if the application
    /// never decodes `%2F` before it routes: one that does reads `/x%2F..%2Fadmin` as `/admin`,
    /// past a path-based `forbid` or route.
    encoded_slashes: Option<EncodedSlashesS>,
}

#[derive(JsonSchema)]
#[serde(rename_all = "lowercase")]
enum EncodedSlashesS {
    Reject,
    Keep,
}

#[derive(JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SidecarAuthz {
    mode: Option<AuthzModeS>,
}

#[derive(JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RouteSpec {
    parent_refs: Vec<ParentRefS>,
    hostnames: Option<Vec<String>>,
    rules: Vec<RuleS>,
}

#[derive(JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ParentRefS {
    /// Default `""` (core) in a `MeshRoute`.
    group: Option<String>,
    /// Default `Service` in a `MeshRoute`.
    kind: Option<String>,
    namespace: Option<String>,
    name: String,
    section_name: Option<String>,
    #[schemars(range(min = 1, max = 65535))]
    port: Option<u16>,
}

#[derive(JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RuleS {
    name: Option<String>,
    matches: Option<Vec<MatchS>>,
    filters: Option<Vec<FilterS>>,
    backend_refs: Option<Vec<BackendRefS>>,
    timeouts: Option<TimeoutsS>,
    retry: Option<RetryS>,
    session_persistence: Option<serde_json::Value>,
}

#[derive(JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct MatchS {
    path: Option<PathS>,
    headers: Option<Vec<ValueMatchS>>,
    query_params: Option<Vec<ValueMatchS>>,
    method: Option<MethodS>,
}

#[derive(JsonSchema)]
enum MethodS {
    GET,
    HEAD,
    POST,
    PUT,
    DELETE,
    CONNECT,
    OPTIONS,
    TRACE,
    PATCH,
}

#[derive(JsonSchema)]
enum PathTypeS {
    Exact,
    PathPrefix,
    RegularExpression,
}

#[derive(JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PathS {
    r#type: Option<PathTypeS>,
    value: Option<String>,
}

#[derive(JsonSchema)]
enum ValueMatchTypeS {
    Exact,
    RegularExpression,
}

#[derive(JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ValueMatchS {
    r#type: Option<ValueMatchTypeS>,
    name: String,
    value: String,
}

#[derive(JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct BackendRefS {
    group: Option<String>,
    kind: Option<String>,
    name: String,
    namespace: Option<String>,
    #[schemars(range(min = 1, max = 65535))]
    port: Option<u16>,
    #[schemars(range(min = 0, max = 1000000))]
    weight: Option<u32>,
    filters: Option<Vec<serde_json::Value>>,
    /// A version of a `MeshService`.
    version: Option<String>,
}

#[derive(JsonSchema)]
enum FilterTypeS {
    RequestHeaderModifier,
    ResponseHeaderModifier,
    RequestRedirect,
    URLRewrite,
    RequestMirror,
    ExtensionRef,
    CORS,
    ExternalAuth,
}

#[derive(JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct FilterS {
    r#type: FilterTypeS,
    request_header_modifier: Option<HeaderModifierS>,
    response_header_modifier: Option<HeaderModifierS>,
    request_redirect: Option<RedirectS>,
    url_rewrite: Option<RewriteS>,
    request_mirror: Option<serde_json::Value>,
    extension_ref: Option<serde_json::Value>,
    cors: Option<serde_json::Value>,
    external_auth: Option<serde_json::Value>,
}

#[derive(JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct HeaderModifierS {
    set: Option<Vec<HeaderValueS>>,
    add: Option<Vec<HeaderValueS>>,
    remove: Option<Vec<String>>,
}

#[derive(JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct HeaderValueS {
    name: String,
    value: String,
}

#[derive(JsonSchema)]
#[serde(rename_all = "lowercase")]
enum SchemeS {
    Http,
    Https,
}

#[derive(JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RedirectS {
    scheme: Option<SchemeS>,
    hostname: Option<String>,
    path: Option<PathModifierS>,
    #[schemars(range(min = 1, max = 65535))]
    port: Option<u16>,
    /// 301, 302 (default), 303, 307 or 308.
    status_code: Option<u16>,
}

#[derive(JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RewriteS {
    hostname: Option<String>,
    path: Option<PathModifierS>,
}

#[derive(JsonSchema)]
enum PathModifierTypeS {
    ReplaceFullPath,
    ReplacePrefixMatch,
}

#[derive(JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PathModifierS {
    r#type: PathModifierTypeS,
    replace_full_path: Option<String>,
    replace_prefix_match: Option<String>,
}

#[derive(JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct TimeoutsS {
    #[schemars(regex(pattern = r"^([0-9]{1,5}(h|m|s|ms)){1,4}$"))]
    request: Option<String>,
    #[schemars(regex(pattern = r"^([0-9]{1,5}(h|m|s|ms)){1,4}$"))]
    backend_request: Option<String>,
}

#[derive(JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RetryS {
    codes: Option<Vec<u16>>,
    #[schemars(range(min = 0, max = 10))]
    attempts: Option<u32>,
    #[schemars(regex(pattern = r"^([0-9]{1,5}(h|m|s|ms)){1,4}$"))]
    backoff: Option<String>,
    #[schemars(regex(pattern = r"^([0-9]{1,5}(h|m|s|ms)){1,4}$"))]
    max_backoff: Option<String>,
    budget: Option<RetryBudgetS>,
}

/// The combined schema of every native resource (one document validates as any of them).
pub fn json_schema() -> serde_json::Value {
    let mut generator = schemars::generate::SchemaSettings::draft07().into_generator();
    let kinds = [
        generator.subschema_for::<MeshResource>(),
        generator.subschema_for::<MeshServiceResource>(),
        generator.subschema_for::<SidecarResource>(),
        generator.subschema_for::<MeshRouteResource>(),
    ];
    let defs = generator.take_definitions(true);
    serde_json::json!({
        "$schema": "http://json-schema.org/draft-07/schema#",
        "$id": "https://meshc.dev/schemas/meshc.dev_v1alpha1.json",
        "title": "meshc native resources (meshc.dev/v1alpha1)",
        "anyOf": kinds,
        "definitions": defs,
    })
}

/// The schema as committed in `schemas/`.
pub fn json_schema_text() -> String {
    let mut s = serde_json::to_string_pretty(&json_schema()).unwrap_or_default();
    s.push('\n');
    s
}
