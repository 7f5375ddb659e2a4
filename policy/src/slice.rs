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

use std::collections::BTreeSet;

use cedar_policy::{EntityUid, ResourceConstraint};
use mesh_artifact::{AuthzBundle, PolicyText, SourcePos};
use serde_json::Value;

use crate::model::{
    NAMESPACE_TYPE, PolicyModel, SERVICE_TYPE, ServiceEntry, namespace_entity, schema_text,
    service_entity, workload_entity,
};
use crate::validate::PolicySet;

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

/// The ids of the policies of `set` that can apply to `service`'s inbound side, sorted.
pub fn policy_ids_for(set: &PolicySet, service: &str) -> Vec<String> {
    let mut ids: Vec<String> = set
        .entries()
        .iter()
        .filter(|e| {
            set.cedar_policy(&e.id)
                .is_some_and(|p| resource_scope_matches(&p.resource_constraint(), service))
        })
        .map(|e| e.id.clone())
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
/// service itself, and the services that the kept policies name in entity literals.
pub fn bundle_for(
    model: &PolicyModel,
    set: &PolicySet,
    service: &str,
    file_names: &[String],
) -> AuthzBundle {
    let ids = policy_ids_for(set, service);
    let mut referenced: BTreeSet<String> = BTreeSet::new();
    referenced.insert(service.to_string());
    let mut policies = Vec::with_capacity(ids.len());
    for id in &ids {
        let Some(entry) = set.get(id) else { continue };
        if let Some(policy) = set.cedar_policy(id) {
            for uid in policy.entity_literals() {
                if uid.type_name().to_string() == SERVICE_TYPE {
                    referenced.insert(uid.id().unescaped().to_string());
                }
            }
        }
        policies.push(PolicyText {
            id: entry.id.clone(),
            source: SourcePos {
                file: file_names.get(entry.file).cloned().unwrap_or_default(),
                line: entry.line,
                column: entry.column,
            },
            text: entry.text.clone(),
        });
    }

    let services = model.sorted_services();
    let mut entities: Vec<Value> = model.namespaces().into_iter().map(namespace_entity).collect();
    let own_namespace = service.split_once('/').map(|(ns, _)| ns);
    if let Some(ns) = own_namespace
        && !ns.is_empty()
        && !model.namespaces().contains(ns)
    {
        entities.push(namespace_entity(ns));
    }
    let mut service_entities: Vec<Value> = services
        .iter()
        .filter(|s| referenced.contains(&s.key()))
        .map(|s| service_entity(s))
        .collect();
    if !services.iter().any(|s| s.key() == service)
        && let Some((ns, name)) = service.split_once('/')
        && !ns.is_empty()
        && !name.is_empty()
        && !name.contains('/')
    {
        service_entities.push(service_entity(&ServiceEntry::new(ns, name)));
    }
    entities.extend(service_entities);
    entities.extend(services.iter().map(|s| workload_entity(&model.trust_domain, s)));
    sort_entities(&mut entities);

    AuthzBundle {
        schema: schema_text(model),
        policies,
        entities: Value::Array(entities),
        context_headers: model.policy_headers(),
    }
}

/// Sort entity JSON objects by uid (type, then id).
fn sort_entities(entities: &mut [Value]) {
    let key = |v: &Value| {
        let uid = v.get("uid");
        let ty = uid.and_then(|u| u.get("type")).and_then(Value::as_str).unwrap_or("").to_string();
        let id = uid.and_then(|u| u.get("id")).and_then(Value::as_str).unwrap_or("").to_string();
        (ty, id)
    };
    entities.sort_by_cached_key(key);
}
