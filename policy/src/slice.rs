//! Per-sidecar slicing of the policy set.
//!
//! A sidecar only authorizes requests to its own service, so its artifact carries only the
//! policies whose resource scope can match that service:
//!
//! | resource scope | kept for `Service::"ns/a"` when |
//! | --- | --- |
//! | `resource` | always |
//! | `resource == E` | `E` is `Service::"ns/a"` |
//! | `resource in E` | `E` is `Service::"ns/a"` or `Namespace::"ns"` |
//! | `resource is T` | `T` is `Service` |
//! | `resource is T in E` | both of the above |
//!
//! Conditions (`when`, `unless`) are not analysed: a policy that tests `resource` only in its
//! conditions is kept, and Cedar decides at request time.

use std::collections::{BTreeSet, HashMap};

use cedar_policy::{EntityUid, PolicyId, ResourceConstraint};
use mesh_artifact::{AuthzBundle, PolicyText, SourcePos};
use serde_json::Value;

use crate::model::{
    NAMESPACE_TYPE, PolicyModel, SERVICE_TYPE, ServiceEntry, namespace_entity, schema_text,
    service_entity, workload_entity,
};
use crate::validate::{PolicyEntry, PolicySet};

/// Whether a policy with this resource scope can apply to requests to `service`
/// (`namespace/name`).
pub fn resource_scope_matches(constraint: &ResourceConstraint, service: &str) -> bool {
    let namespace = service.split_once('/').map_or("", |(ns, _)| ns);
    let is_self = |uid: &EntityUid| {
        uid.type_name().to_string() == SERVICE_TYPE && uid.id().unescaped() == service
    };
    let is_ancestor_or_self = |uid: &EntityUid| {
        is_self(uid)
            || (uid.type_name().to_string() == NAMESPACE_TYPE && uid.id().unescaped() == namespace)
    };
    match constraint {
        ResourceConstraint::Any => true,
        ResourceConstraint::Eq(uid) => is_self(uid),
        ResourceConstraint::In(uid) => is_ancestor_or_self(uid),
        ResourceConstraint::Is(ty) => ty.to_string() == SERVICE_TYPE,
        ResourceConstraint::IsIn(ty, uid) => {
            ty.to_string() == SERVICE_TYPE && is_ancestor_or_self(uid)
        }
    }
}

/// Where a policy's resource scope lets it apply.
enum Scope {
    /// Every service.
    Any,
    /// One service, `namespace/name`.
    Service(String),
    /// Every service of a namespace.
    Namespace(String),
    /// No service (`resource is Workload`, `resource == Namespace::"x"`).
    Nothing,
}

fn scope_of(constraint: &ResourceConstraint) -> Scope {
    let target = |uid: &EntityUid| match uid.type_name().to_string().as_str() {
        SERVICE_TYPE => Scope::Service(uid.id().unescaped().to_string()),
        NAMESPACE_TYPE => Scope::Namespace(uid.id().unescaped().to_string()),
        _ => Scope::Nothing,
    };
    match constraint {
        ResourceConstraint::Any => Scope::Any,
        ResourceConstraint::Is(ty) if ty.to_string() == SERVICE_TYPE => Scope::Any,
        ResourceConstraint::Is(_) => Scope::Nothing,
        ResourceConstraint::Eq(uid) => match target(uid) {
            Scope::Service(s) => Scope::Service(s),
            _ => Scope::Nothing,
        },
        ResourceConstraint::In(uid) => target(uid),
        ResourceConstraint::IsIn(ty, uid) if ty.to_string() == SERVICE_TYPE => target(uid),
        ResourceConstraint::IsIn(..) => Scope::Nothing,
    }
}

/// Policies by the services their resource scope can match, built once per [`PolicySet`] so
/// that slicing one sidecar's bundle does not scan every policy.
#[derive(Clone, Debug, Default)]
pub(crate) struct SliceIndex {
    any: Vec<usize>,
    by_service: HashMap<String, Vec<usize>>,
    by_namespace: HashMap<String, Vec<usize>>,
    /// Per entry: the services its entity literals name.
    service_literals: Vec<Vec<String>>,
}

impl SliceIndex {
    pub(crate) fn build(entries: &[PolicyEntry], cedar: &cedar_policy::PolicySet) -> Self {
        let mut index = SliceIndex::default();
        for (i, entry) in entries.iter().enumerate() {
            let policy = cedar.policy(&PolicyId::new(&entry.id));
            let scope = policy.map_or(Scope::Nothing, |p| scope_of(&p.resource_constraint()));
            match scope {
                Scope::Any => index.any.push(i),
                Scope::Service(s) => index.by_service.entry(s).or_default().push(i),
                Scope::Namespace(n) => index.by_namespace.entry(n).or_default().push(i),
                Scope::Nothing => {}
            }
            let literals = policy.map_or_else(Vec::new, |p| {
                p.entity_literals()
                    .into_iter()
                    .filter(|u| u.type_name().to_string() == SERVICE_TYPE)
                    .map(|u| u.id().unescaped().to_string())
                    .collect()
            });
            index.service_literals.push(literals);
        }
        index
    }

    /// Indexes of the entries that can apply to `service`.
    fn for_service(&self, service: &str) -> Vec<usize> {
        let namespace = service.split_once('/').map_or("", |(ns, _)| ns);
        let empty: &[usize] = &[];
        let mut out: Vec<usize> = self
            .any
            .iter()
            .chain(self.by_service.get(service).map_or(empty, Vec::as_slice))
            .chain(
                self.by_namespace
                    .get(namespace)
                    .map_or(empty, Vec::as_slice),
            )
            .copied()
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }
}

/// The mesh's entities as bundle JSON, built once per [`Slicer`].
#[derive(Clone, Debug, Default)]
pub(crate) struct MeshEntities {
    /// Namespace entities, sorted by name, and the position of each.
    namespaces: Vec<Value>,
    namespace_index: HashMap<String, usize>,
    /// `(namespace/name, entity)`, sorted by key.
    workloads: Vec<(String, Value)>,
    /// Position of each workload in `workloads`.
    workload_index: HashMap<String, usize>,
    services: HashMap<String, Value>,
}

impl MeshEntities {
    /// Every entity JSON object is stored with its keys sorted (the artifact's canonical form),
    /// so bundles copy them as they are.
    pub(crate) fn build(model: &PolicyModel) -> Self {
        let services = model.sorted_services();
        let namespaces = model.namespaces();
        MeshEntities {
            namespace_index: namespaces
                .iter()
                .enumerate()
                .map(|(i, ns)| (ns.to_string(), i))
                .collect(),
            namespaces: namespaces
                .into_iter()
                .map(|ns| sorted_keys(namespace_entity(ns)))
                .collect(),
            workload_index: services
                .iter()
                .enumerate()
                .map(|(i, s)| (s.key(), i))
                .collect(),
            workloads: services
                .iter()
                .map(|s| {
                    (
                        s.key(),
                        sorted_keys(workload_entity(&model.trust_domain, s)),
                    )
                })
                .collect(),
            services: services
                .iter()
                .map(|s| (s.key(), sorted_keys(service_entity(s))))
                .collect(),
        }
    }
}

/// `v` with the keys of every object inside it in sorted order.
fn sorted_keys(mut v: Value) -> Value {
    v.sort_all_objects();
    v
}

/// The ids of the policies of `set` that can apply to `service`'s inbound side, sorted.
pub fn policy_ids_for(set: &PolicySet, service: &str) -> Vec<String> {
    let mut ids: Vec<String> = set
        .slice_index()
        .for_service(service)
        .into_iter()
        .filter_map(|i| set.entries().get(i).map(|e| e.id.clone()))
        .collect();
    ids.sort();
    ids
}

/// The authorization bundle of one sidecar: the schema, the policies that can apply to its
/// service's inbound side (sorted by id), and the entities they need.
///
/// `service` is `namespace/name`; `file_names[i]` names the file of `sources[i]` given to
/// [`crate::validate::validate`] and goes into each policy's [`SourcePos`].
///
/// Entities: every namespace and every workload of the mesh (any of them may call), the
/// service itself, and the services that the kept policies name in entity literals; sorted by
/// type, then id.
pub fn bundle_for(
    model: &PolicyModel,
    set: &PolicySet,
    service: &str,
    file_names: &[String],
) -> AuthzBundle {
    bundle_for_callers(model, set, service, file_names, None)
}

/// [`bundle_for`], carrying only the workloads in `callers` (`namespace/name`), when given: the
/// compiler passes the services whose egress can reach `service`, so that a bundle does not
/// grow with the size of the whole mesh. A caller outside the list is evaluated as an unknown
/// workload (`Workload::""`), which only a policy with an unconstrained principal can allow.
pub fn bundle_for_callers(
    model: &PolicyModel,
    set: &PolicySet,
    service: &str,
    file_names: &[String],
    callers: Option<&BTreeSet<String>>,
) -> AuthzBundle {
    Slicer::new(model, set).bundle(service, file_names, callers)
}

/// Slices many bundles from one mesh: everything that does not depend on the service (the
/// mesh's entities, namespaces, schema text) is computed once, so slicing every sidecar of a
/// mesh costs time in proportion to what each bundle holds, not to the mesh's size.
pub struct Slicer<'a> {
    set: &'a PolicySet,
    mesh: MeshEntities,
    schema: String,
    headers: Vec<String>,
}

impl<'a> Slicer<'a> {
    pub fn new(model: &'a PolicyModel, set: &'a PolicySet) -> Self {
        let mesh = MeshEntities::build(model);
        Slicer {
            set,
            mesh,
            schema: schema_text(model),
            headers: model.policy_headers(),
        }
    }

    /// See [`bundle_for_callers`].
    pub fn bundle(
        &self,
        service: &str,
        file_names: &[String],
        callers: Option<&BTreeSet<String>>,
    ) -> AuthzBundle {
        let set = self.set;
        let index = set.slice_index();
        let mut kept: Vec<usize> = index.for_service(service);
        kept.sort_by(|a, b| {
            let ia = set.entries().get(*a).map(|e| e.id.as_str());
            let ib = set.entries().get(*b).map(|e| e.id.as_str());
            ia.cmp(&ib)
        });
        let mut referenced: BTreeSet<String> = BTreeSet::new();
        referenced.insert(service.to_string());
        for &i in &kept {
            if let Some(lits) = index.service_literals.get(i) {
                referenced.extend(lits.iter().cloned());
            }
        }
        let policies = kept
            .iter()
            .filter_map(|&i| set.entries().get(i))
            .map(|entry| PolicyText {
                id: entry.id.clone(),
                source: SourcePos {
                    file: file_names.get(entry.file).cloned().unwrap_or_default(),
                    line: entry.line,
                    column: entry.column,
                },
                text: entry.text.clone(),
            })
            .collect();
        let mesh = &self.mesh;
        let own = service.split_once('/');
        let mut services: Vec<Value> = referenced
            .iter()
            .filter_map(|k| mesh.services.get(k).cloned())
            .collect();
        if !mesh.services.contains_key(service)
            && let Some((ns, name)) = own
            && !ns.is_empty()
            && !name.is_empty()
            && !name.contains('/')
        {
            services.push(sorted_keys(service_entity(&ServiceEntry::new(ns, name))));
        }
        let workloads: Vec<Value> = match callers {
            None => mesh.workloads.iter().map(|(_, w)| w.clone()).collect(),
            Some(keep) => keep
                .iter()
                .filter_map(|k| {
                    mesh.workload_index
                        .get(k)
                        .and_then(|&i| mesh.workloads.get(i))
                })
                .map(|(_, w)| w.clone())
                .collect(),
        };
        // The namespaces the bundle's entities sit in (namespace entities carry no attributes:
        // only their membership matters, and it is written in each child's `parents`), plus the
        // service's own namespace even when the mesh has no service there yet.
        let mut wanted: BTreeSet<&str> = services
            .iter()
            .chain(&workloads)
            .filter_map(|e| e.get("attrs")?.get("namespace")?.as_str())
            .collect();
        if let Some((ns, _)) = own
            && !ns.is_empty()
        {
            wanted.insert(ns);
        }
        let mut entities: Vec<Value> = wanted
            .into_iter()
            .map(|ns| match mesh.namespace_index.get(ns) {
                Some(&i) => mesh
                    .namespaces
                    .get(i)
                    .cloned()
                    .unwrap_or_else(|| sorted_keys(namespace_entity(ns))),
                None => sorted_keys(namespace_entity(ns)),
            })
            .collect();
        entities.extend(services);
        entities.extend(workloads);
        sort_entities(&mut entities);
        AuthzBundle {
            schema: self.schema.clone(),
            policies,
            entities: Value::Array(entities),
            context_headers: self.headers.clone(),
        }
    }
}

/// Sort entity JSON objects by uid (type, then id); already sorted input stays as it is.
fn sort_entities(entities: &mut [Value]) {
    if entities
        .windows(2)
        .all(|w| uid_key(&w[0]) <= uid_key(&w[1]))
    {
        return;
    }
    entities.sort_by_cached_key(|v| {
        let (t, i) = uid_key(v);
        (t.to_string(), i.to_string())
    });
}

fn uid_key(v: &Value) -> (&str, &str) {
    let uid = v.get("uid");
    let ty = uid
        .and_then(|u| u.get("type"))
        .and_then(Value::as_str)
        .unwrap_or("");
    let id = uid
        .and_then(|u| u.get("id"))
        .and_then(Value::as_str)
        .unwrap_or("");
    (ty, id)
}
