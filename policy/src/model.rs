//! The mesh as policy sees it: the entity model, the generated Cedar schema and entities.
//!
//! No Cedar namespace is used, so policies name types directly:
//!
//! ```cedar
//! permit (
//!     principal == Workload::"default/productpage",
//!     action in Action::"read",
//!     resource == Service::"default/reviews"
//! );
//! ```

use std::collections::BTreeSet;
use std::fmt::Write as _;

use serde_json::{Value, json};

/// Entity type of the calling workload (the principal).
pub const WORKLOAD_TYPE: &str = "Workload";
/// Entity type of the destination service (the resource).
pub const SERVICE_TYPE: &str = "Service";
/// Entity type of a namespace, parent of its workloads and services.
pub const NAMESPACE_TYPE: &str = "Namespace";
/// Entity type of actions (Cedar's built-in name).
pub const ACTION_TYPE: &str = "Action";

/// Action group of the read-only HTTP methods.
pub const READ_GROUP: &str = "read";
/// Action group of the HTTP methods that change state.
pub const WRITE_GROUP: &str = "write";

/// Every action the schema declares for an HTTP method, with the group it belongs to.
///
/// A request whose method is not listed is still evaluated, as `Action::"<METHOD>"`: only
/// policies whose action scope is unconstrained can apply to it.
pub const METHOD_ACTIONS: &[(&str, Option<&str>)] = &[
    ("GET", Some(READ_GROUP)),
    ("HEAD", Some(READ_GROUP)),
    ("OPTIONS", Some(READ_GROUP)),
    ("POST", Some(WRITE_GROUP)),
    ("PUT", Some(WRITE_GROUP)),
    ("PATCH", Some(WRITE_GROUP)),
    ("DELETE", Some(WRITE_GROUP)),
    ("CONNECT", None),
    ("TRACE", None),
];

/// The uid of the principal used for callers the mesh does not know (no SPIFFE ID, a foreign
/// trust domain, or a workload that is not in the mesh): `Workload::""`. Its attributes are
/// all empty strings and it belongs to no namespace. No policy may name it (`MC0603`).
pub const UNKNOWN_WORKLOAD_ID: &str = "";

/// What the compiler tells the policy crate about the mesh.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PolicyModel {
    pub trust_domain: String,
    /// Every service in the mesh, sorted by `namespace/name`.
    pub services: Vec<ServiceEntry>,
    /// Request headers (lower case) that the mesh makes visible to policy as
    /// `context.headers["name"]` (optional attributes).
    pub context_headers: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceEntry {
    pub namespace: String,
    pub name: String,
}

impl ServiceEntry {
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        ServiceEntry {
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    /// `namespace/name`: the id of both the service's `Service` and its `Workload` entity.
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

impl PolicyModel {
    /// Services sorted by `namespace/name`, without duplicates and without entries whose
    /// namespace or name is empty or holds a `/` (they could not round-trip through an id).
    pub fn sorted_services(&self) -> Vec<&ServiceEntry> {
        let mut seen = BTreeSet::new();
        let mut out: Vec<&ServiceEntry> = self
            .services
            .iter()
            .filter(|s| valid_segment(&s.namespace) && valid_segment(&s.name))
            .filter(|s| seen.insert((s.namespace.as_str(), s.name.as_str())))
            .collect();
        out.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        out
    }

    /// Namespaces that hold at least one service, sorted.
    pub fn namespaces(&self) -> BTreeSet<&str> {
        self.sorted_services()
            .into_iter()
            .map(|s| s.namespace.as_str())
            .collect()
    }

    /// The headers visible to policy: lower-cased, valid HTTP tokens only, sorted, unique.
    pub fn policy_headers(&self) -> Vec<String> {
        normalize_headers(&self.context_headers)
    }

    /// Whether the mesh has this `namespace/name` service.
    pub fn has_service(&self, key: &str) -> bool {
        key.split_once('/').is_some_and(|(ns, name)| {
            self.services
                .iter()
                .any(|s| s.namespace == ns && s.name == name)
        })
    }
}

/// Lower-case, keep valid HTTP header names only, sort and deduplicate.
pub(crate) fn normalize_headers(headers: &[String]) -> Vec<String> {
    let set: BTreeSet<String> = headers
        .iter()
        .map(|h| h.to_ascii_lowercase())
        .filter(|h| is_header_token(h))
        .collect();
    set.into_iter().collect()
}

/// RFC 9110 `token`.
fn is_header_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'!' | b'#'
                        | b'$'
                        | b'%'
                        | b'&'
                        | b'\''
                        | b'*'
                        | b'+'
                        | b'-'
                        | b'.'
                        | b'^'
                        | b'_'
                        | b'`'
                        | b'|'
                        | b'~'
                )
        })
}

fn valid_segment(s: &str) -> bool {
    !s.is_empty() && !s.contains('/')
}

/// The SPIFFE ID of a workload: `spiffe://<trust-domain>/ns/<namespace>/sa/<name>`.
pub fn spiffe_id(trust_domain: &str, namespace: &str, name: &str) -> String {
    format!("spiffe://{trust_domain}/ns/{namespace}/sa/{name}")
}

/// Map a SPIFFE ID of the mesh's trust domain to its workload's entity id, `namespace/name`.
///
/// Returns `None` for another trust domain or an ID that is not of the form
/// `spiffe://<trust-domain>/ns/<namespace>/sa/<name>`.
pub fn workload_uid_from_spiffe(trust_domain: &str, spiffe: &str) -> Option<String> {
    let rest = spiffe.strip_prefix("spiffe://")?;
    let (domain, path) = rest.split_once('/')?;
    if domain.is_empty() || domain != trust_domain {
        return None;
    }
    let mut parts = path.split('/');
    let (ns_key, namespace, sa_key, name) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || ns_key != "ns" || sa_key != "sa" {
        return None;
    }
    if !valid_segment(namespace) || !valid_segment(name) {
        return None;
    }
    Some(format!("{namespace}/{name}"))
}

/// The generated Cedar schema, in Cedar's human schema syntax. Deterministic: the same model
/// always gives the same text.
pub fn schema_text(model: &PolicyModel) -> String {
    let mut s = String::new();
    s.push_str("// Cedar schema generated by meshc from the mesh definition. Do not edit.\n");
    s.push_str("// Principal: the calling workload. Resource: the destination service.\n\n");
    let _ = writeln!(s, "entity {NAMESPACE_TYPE};\n");
    let _ = writeln!(
        s,
        "entity {WORKLOAD_TYPE} in [{NAMESPACE_TYPE}] {{\n  \"namespace\": String,\n  \"name\": String,\n  \"spiffe\": String,\n}};\n"
    );
    let _ = writeln!(
        s,
        "entity {SERVICE_TYPE} in [{NAMESPACE_TYPE}] {{\n  \"namespace\": String,\n  \"name\": String,\n}};\n"
    );
    s.push_str("// Request headers the mesh makes visible to policy; each may be absent.\n");
    s.push_str("type Headers = {");
    let headers = model.policy_headers();
    if headers.is_empty() {
        s.push_str("};\n\n");
    } else {
        s.push('\n');
        for h in &headers {
            let _ = writeln!(s, "  \"{h}\"?: String,");
        }
        s.push_str("};\n\n");
    }
    s.push_str(
        "type RequestContext = {\n  \"path\": String,\n  \"query\": String,\n  \"method\": String,\n  \"route\": String,\n  \"headers\": Headers,\n};\n\n",
    );
    let _ = writeln!(s, "action \"{READ_GROUP}\", \"{WRITE_GROUP}\";\n");
    let applies = format!(
        " appliesTo {{\n  principal: [{WORKLOAD_TYPE}],\n  resource: [{SERVICE_TYPE}],\n  context: RequestContext,\n}};\n"
    );
    for group in [Some(READ_GROUP), Some(WRITE_GROUP), None] {
        let names: Vec<String> = METHOD_ACTIONS
            .iter()
            .filter(|(_, g)| *g == group)
            .map(|(m, _)| format!("\"{m}\""))
            .collect();
        s.push_str("action ");
        s.push_str(&names.join(", "));
        if let Some(g) = group {
            let _ = write!(s, " in [\"{g}\"]");
        }
        s.push_str(&applies);
        if group.is_some() {
            s.push('\n');
        }
    }
    s
}

fn uid_json(ty: &str, id: &str) -> Value {
    json!({"type": ty, "id": id})
}

/// The Cedar JSON entity of a namespace.
pub fn namespace_entity(namespace: &str) -> Value {
    json!({"uid": uid_json(NAMESPACE_TYPE, namespace), "attrs": {}, "parents": []})
}

/// The Cedar JSON entity of a service.
pub fn service_entity(service: &ServiceEntry) -> Value {
    json!({
        "uid": uid_json(SERVICE_TYPE, &service.key()),
        "attrs": {"namespace": service.namespace, "name": service.name},
        "parents": [uid_json(NAMESPACE_TYPE, &service.namespace)],
    })
}

/// The Cedar JSON entity of a service's workload.
pub fn workload_entity(trust_domain: &str, service: &ServiceEntry) -> Value {
    json!({
        "uid": uid_json(WORKLOAD_TYPE, &service.key()),
        "attrs": {
            "namespace": service.namespace,
            "name": service.name,
            "spiffe": spiffe_id(trust_domain, &service.namespace, &service.name),
        },
        "parents": [uid_json(NAMESPACE_TYPE, &service.namespace)],
    })
}

/// Every entity of the mesh (namespaces, services, workloads) in Cedar's JSON entity format,
/// sorted by type then id. Action entities are not included: they come from the schema.
pub fn entities_json(model: &PolicyModel) -> Value {
    let services = model.sorted_services();
    let mut out: Vec<Value> = model
        .namespaces()
        .into_iter()
        .map(namespace_entity)
        .collect();
    out.extend(services.iter().map(|s| service_entity(s)));
    out.extend(
        services
            .iter()
            .map(|s| workload_entity(&model.trust_domain, s)),
    );
    Value::Array(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spiffe_round_trip() {
        let id = spiffe_id("cluster.local", "default", "reviews");
        assert_eq!(
            workload_uid_from_spiffe("cluster.local", &id).as_deref(),
            Some("default/reviews")
        );
        assert_eq!(workload_uid_from_spiffe("other.domain", &id), None);
        assert_eq!(
            workload_uid_from_spiffe("cluster.local", "spiffe://cluster.local/ns/a/sa/"),
            None
        );
        assert_eq!(
            workload_uid_from_spiffe("cluster.local", "spiffe://cluster.local/ns/a/sa/b/c"),
            None
        );
        assert_eq!(
            workload_uid_from_spiffe("cluster.local", "spiffe://cluster.local/sa/a/ns/b"),
            None
        );
        assert_eq!(workload_uid_from_spiffe("cluster.local", ""), None);
        assert_eq!(workload_uid_from_spiffe("", "spiffe:///ns/a/sa/b"), None);
    }

    #[test]
    fn headers_are_normalized() {
        let got = normalize_headers(&[
            "X-User".into(),
            "x-user".into(),
            "bad header".into(),
            "a\"b".into(),
        ]);
        assert_eq!(got, vec!["x-user".to_string()]);
    }

    #[test]
    fn schema_parses() {
        let model = PolicyModel {
            trust_domain: "cluster.local".into(),
            services: vec![ServiceEntry::new("default", "a")],
            context_headers: vec!["x-user".into(), "x-tenant".into()],
        };
        let text = schema_text(&model);
        let parsed = cedar_policy::Schema::from_cedarschema_str(&text);
        assert!(parsed.is_ok(), "{text}\n{:?}", parsed.err());
        let empty = schema_text(&PolicyModel::default());
        assert!(
            cedar_policy::Schema::from_cedarschema_str(&empty).is_ok(),
            "{empty}"
        );
        // Entities conform to the schema.
        let (schema, _) = parsed.expect("schema parses");
        let ents = cedar_policy::Entities::from_json_value(entities_json(&model), Some(&schema));
        assert!(ents.is_ok(), "{:?}", ents.err());
    }
}
