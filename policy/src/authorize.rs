//! The per-request authorizer.
//!
//! [`Authorizer::new`] parses a bundle once: policies, schema and entities. Each policy's
//! condition is built once and the policies are indexed by the entities their scope names with
//! `==`, so [`Authorizer::authorize`] only builds the request (prepared uids, the request's
//! strings) and evaluates the policies that can apply, with Cedar's evaluator. Nothing is
//! parsed on the request path.
//!
//! The decision follows Cedar's authorizer exactly (a `forbid` that applies denies; otherwise a
//! `permit` that applies allows; otherwise deny; a policy whose evaluation errors is skipped).
//! [`Authorizer::authorize_reference`] runs Cedar's own `Authorizer` over every policy, and tests
//! check that both agree.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use cedar_policy::{
    Context, Entities, Entity, EntityId, EntityTypeName, EntityUid, EvalResult, PolicyId, Request,
    RestrictedExpression, Schema,
};
use cedar_policy_core::ast;
use cedar_policy_core::evaluator::Evaluator;
use cedar_policy_core::extensions::Extensions;
use mesh_artifact::{AuthzBundle, AuthzMode};
use smol_str::SmolStr;

use crate::model::{
    ACTION_TYPE, METHOD_ACTIONS, NAMESPACE_TYPE, SERVICE_TYPE, UNKNOWN_WORKLOAD_ID, WORKLOAD_TYPE,
    normalize_headers,
};

/// One request, as the proxy (or `meshc explain`) sees it.
#[derive(Clone, Debug, Default)]
pub struct AuthzRequest<'a> {
    /// Caller's SPIFFE ID, e.g. `spiffe://cluster.local/ns/default/sa/productpage`.
    pub principal: &'a str,
    /// Destination service, `namespace/name`.
    pub service: &'a str,
    /// HTTP method, upper case.
    pub method: &'a str,
    pub path: &'a str,
    pub query: &'a str,
    /// Matched route `namespace/name`, empty when none.
    pub route: &'a str,
    /// Headers visible to policy: (lower-case name, value).
    pub headers: &'a [(&'a str, &'a str)],
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    Allow,
    Deny,
}

impl Decision {
    /// `allow` or `deny`.
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Allow => "allow",
            Decision::Deny => "deny",
        }
    }
}

/// The outcome of one authorization.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthzDecision {
    /// Cedar's decision.
    pub decision: Decision,
    /// Whether the request may proceed (in audit mode a deny still proceeds).
    pub allowed: bool,
    /// Whether this was a deny that audit mode let through.
    pub audited_deny: bool,
    /// Ids of the policies that determined the decision (sorted).
    pub policies: Vec<String>,
    /// Evaluation errors, if any (a policy that errors is skipped, as Cedar does).
    pub errors: Vec<String>,
}

/// Why a bundle cannot be loaded.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("invalid authorization schema: {0}")]
    Schema(String),
    #[error("invalid policy `{id}`: {message}")]
    Policy { id: String, message: String },
    #[error("duplicate policy id `{0}`")]
    DuplicateId(String),
    #[error("invalid authorization entities: {0}")]
    Entities(String),
}

/// One policy, ready to evaluate.
#[derive(Debug)]
struct Compiled {
    id: String,
    forbid: bool,
    /// Scope and conditions as one expression, built once (Cedar rebuilds it per evaluation).
    condition: ast::Expr,
}

/// Policies by the entity their principal or resource scope names with `==`. A policy is in
/// exactly one bucket; the candidates for a request are the union of four buckets.
#[derive(Debug, Default)]
struct Index {
    any: Vec<u32>,
    by_principal: HashMap<ast::EntityUID, Vec<u32>>,
    by_resource: HashMap<ast::EntityUID, Vec<u32>>,
    /// Principal, then resource.
    by_both: HashMap<ast::EntityUID, HashMap<ast::EntityUID, Vec<u32>>>,
}

impl Index {
    fn add(&mut self, i: u32, policy: &ast::Policy) {
        let principal = eq_uid(policy.principal_constraint().as_inner());
        let resource = eq_uid(policy.resource_constraint().as_inner());
        let bucket = match (principal, resource) {
            (None, None) => &mut self.any,
            (Some(p), None) => self.by_principal.entry(p).or_default(),
            (None, Some(r)) => self.by_resource.entry(r).or_default(),
            (Some(p), Some(r)) => self.by_both.entry(p).or_default().entry(r).or_default(),
        };
        bucket.push(i);
    }

    fn candidates<'a>(
        &'a self,
        principal: &ast::EntityUID,
        resource: &ast::EntityUID,
    ) -> impl Iterator<Item = u32> + 'a {
        let empty: &[u32] = &[];
        let p = self
            .by_principal
            .get(principal)
            .map_or(empty, Vec::as_slice);
        let r = self.by_resource.get(resource).map_or(empty, Vec::as_slice);
        let both = self
            .by_both
            .get(principal)
            .and_then(|m| m.get(resource))
            .map_or(empty, Vec::as_slice);
        self.any.iter().chain(p).chain(r).chain(both).copied()
    }
}

fn eq_uid(c: &ast::PrincipalOrResourceConstraint) -> Option<ast::EntityUID> {
    match c {
        ast::PrincipalOrResourceConstraint::Eq(ast::EntityReference::EUID(uid)) => {
            Some(uid.as_ref().clone())
        }
        _ => None,
    }
}

/// Parsed once from an [`mesh_artifact::AuthzBundle`]; evaluates without parsing.
///
/// `Send + Sync`: share one per loaded artifact.
#[derive(Debug)]
pub struct Authorizer {
    compiled: Vec<Compiled>,
    index: Index,
    /// The same policies as a Cedar policy set, for [`Authorizer::authorize_reference`].
    policies: cedar_policy::PolicySet,
    entities: Entities,
    /// SPIFFE ID -> workload uid, from the `spiffe` attribute of every `Workload` entity.
    principals: HashMap<String, Arc<ast::EntityUID>>,
    /// `Workload::""`, for callers the bundle does not know.
    unknown_principal: Arc<ast::EntityUID>,
    /// HTTP method -> action uid, for the methods the schema declares.
    actions: HashMap<String, Arc<ast::EntityUID>>,
    action_type: EntityTypeName,
    /// `namespace/name` -> service uid, for the services in the bundle.
    services: HashMap<String, Arc<ast::EntityUID>>,
    service_type: EntityTypeName,
    /// Headers visible to policy, lower case, sorted.
    context_headers: Vec<String>,
    /// The same names as record keys.
    header_keys: Vec<SmolStr>,
    empty_slots: ast::SlotEnv,
}

impl Authorizer {
    /// Parse a bundle: schema, policies (ids from the bundle) and entities (checked against the
    /// schema). Policies are not re-validated: the compiler validated them.
    pub fn new(bundle: &AuthzBundle) -> Result<Authorizer, PolicyError> {
        let (schema, _warnings) = Schema::from_cedarschema_str(&bundle.schema)
            .map_err(|e| PolicyError::Schema(e.to_string()))?;
        let mut policies = cedar_policy::PolicySet::new();
        let mut compiled = Vec::with_capacity(bundle.policies.len());
        let mut index = Index::default();
        for p in &bundle.policies {
            let policy =
                cedar_policy::Policy::parse(Some(PolicyId::new(&p.id)), &p.text).map_err(|e| {
                    PolicyError::Policy {
                        id: p.id.clone(),
                        message: e.to_string(),
                    }
                })?;
            let ast_policy: &ast::Policy = policy.as_ref();
            let i = u32::try_from(compiled.len()).map_err(|_| PolicyError::Policy {
                id: p.id.clone(),
                message: "too many policies".into(),
            })?;
            index.add(i, ast_policy);
            compiled.push(Compiled {
                id: p.id.clone(),
                forbid: ast_policy.effect() == ast::Effect::Forbid,
                condition: ast_policy.condition(),
            });
            policies
                .add(policy)
                .map_err(|_| PolicyError::DuplicateId(p.id.clone()))?;
        }
        let workload_type = type_name(WORKLOAD_TYPE)?;
        let action_type = type_name(ACTION_TYPE)?;
        let service_type = type_name(SERVICE_TYPE)?;

        // Cedar's JSON entity parser costs tens of µs per entity (it tries every escape form
        // of every value); bundle entities hold only strings, so they are read directly, which
        // also checks their shape.
        let types = EntityTypes {
            namespace: type_name(NAMESPACE_TYPE)?,
            service: service_type.clone(),
            workload: workload_type.clone(),
        };
        let parsed = read_entities(&bundle.entities, &types)?;
        let entities = Entities::from_entities(parsed, None)
            .map_err(|e| PolicyError::Entities(e.to_string()))?;
        let mut extra: Vec<Entity> = schema
            .action_entities()
            .map_err(|e| PolicyError::Schema(e.to_string()))?
            .into_iter()
            .collect();

        let unknown_uid = EntityUid::from_type_name_and_id(
            workload_type.clone(),
            EntityId::new(UNKNOWN_WORKLOAD_ID),
        );
        if entities.get(&unknown_uid).is_none() {
            let empty = || RestrictedExpression::new_string(String::new());
            let attrs = HashMap::from([
                ("namespace".to_string(), empty()),
                ("name".to_string(), empty()),
                ("spiffe".to_string(), empty()),
            ]);
            let unknown = Entity::new(unknown_uid.clone(), attrs, Default::default())
                .map_err(|e| PolicyError::Entities(e.to_string()))?;
            extra.push(unknown);
        }
        // One call: adding entities recomputes the transitive closure of the whole store.
        let entities = entities
            .add_entities(extra, None)
            .map_err(|e| PolicyError::Entities(e.to_string()))?;

        let mut principals = HashMap::new();
        let mut services = HashMap::new();
        for entity in entities.iter() {
            let uid = entity.uid();
            if uid.type_name() == &workload_type {
                if let Some(Ok(EvalResult::String(spiffe))) = entity.attr("spiffe")
                    && !spiffe.is_empty()
                {
                    principals.insert(spiffe, core_uid(&uid));
                }
            } else if uid.type_name() == &service_type {
                services.insert(uid.id().unescaped().to_string(), core_uid(&uid));
            }
        }
        let actions = METHOD_ACTIONS
            .iter()
            .map(|(m, _)| {
                let uid = EntityUid::from_type_name_and_id(action_type.clone(), EntityId::new(m));
                (m.to_string(), core_uid(&uid))
            })
            .collect();
        let context_headers = normalize_headers(&bundle.context_headers);
        let header_keys = context_headers.iter().map(SmolStr::new).collect();

        Ok(Authorizer {
            compiled,
            index,
            policies,
            entities,
            principals,
            unknown_principal: core_uid(&unknown_uid),
            actions,
            action_type,
            services,
            service_type,
            context_headers,
            header_keys,
            empty_slots: ast::SlotEnv::new(),
        })
    }

    /// Number of policies loaded.
    pub fn policy_count(&self) -> usize {
        self.compiled.len()
    }

    /// The headers the bundle makes visible to policy (lower case, sorted). The proxy only needs
    /// to pass these in [`AuthzRequest::headers`]; others are ignored.
    pub fn context_headers(&self) -> &[String] {
        &self.context_headers
    }

    /// Whether `spiffe` is a workload the bundle knows. Unknown callers are evaluated as
    /// `Workload::""`.
    pub fn knows_principal(&self, spiffe: &str) -> bool {
        self.principals.contains_key(spiffe)
    }

    /// Decide one request.
    ///
    /// `Enforce`: allowed only when some `permit` applies and no `forbid` does. `Audit`: the same
    /// decision, but a deny is let through with `audited_deny` set.
    pub fn authorize(&self, req: &AuthzRequest<'_>, mode: AuthzMode) -> AuthzDecision {
        let principal = self
            .principals
            .get(req.principal)
            .unwrap_or(&self.unknown_principal);
        let action = match self.actions.get(req.method) {
            Some(uid) => Arc::clone(uid),
            None => core_uid(&EntityUid::from_type_name_and_id(
                self.action_type.clone(),
                EntityId::new(req.method),
            )),
        };
        let resource = match self.services.get(req.service) {
            Some(uid) => Arc::clone(uid),
            None => core_uid(&EntityUid::from_type_name_and_id(
                self.service_type.clone(),
                EntityId::new(req.service),
            )),
        };
        let candidates = self.index.candidates(principal, &resource);
        let request = ast::Request::new_unchecked(
            known(Arc::clone(principal)),
            known(action),
            known(resource),
            Some(self.core_context(req)),
        );
        let evaluator =
            Evaluator::new(request, self.entities.as_ref(), Extensions::all_available());
        let mut permits: Vec<String> = Vec::new();
        let mut forbids: Vec<String> = Vec::new();
        let mut errors: Vec<String> = Vec::new();
        for i in candidates {
            let Some(policy) = self.compiled.get(i as usize) else {
                continue;
            };
            match evaluator.interpret(&policy.condition, &self.empty_slots) {
                Ok(v) => match v.value {
                    ast::ValueKind::Lit(ast::Literal::Bool(true)) if policy.forbid => {
                        forbids.push(policy.id.clone())
                    }
                    ast::ValueKind::Lit(ast::Literal::Bool(true)) => {
                        permits.push(policy.id.clone())
                    }
                    ast::ValueKind::Lit(ast::Literal::Bool(false)) => {}
                    _ => errors.push(format!(
                        "while evaluating policy `{}`: the condition is not a boolean",
                        policy.id
                    )),
                },
                Err(e) => errors.push(format!("while evaluating policy `{}`: {e}", policy.id)),
            }
        }
        let (decision, mut policies) = if !forbids.is_empty() {
            (Decision::Deny, forbids)
        } else if !permits.is_empty() {
            (Decision::Allow, permits)
        } else {
            (Decision::Deny, Vec::new())
        };
        policies.sort_unstable();
        errors.sort_unstable();
        finish(decision, mode, policies, errors)
    }

    /// The request context as a Cedar value, built directly (no expression evaluation).
    fn core_context(&self, req: &AuthzRequest<'_>) -> ast::Context {
        let mut headers: BTreeMap<SmolStr, ast::Value> = BTreeMap::new();
        for (name, key) in self.context_headers.iter().zip(&self.header_keys) {
            if let Some((_, v)) = req
                .headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
            {
                headers.insert(key.clone(), ast::Value::from(*v));
            }
        }
        let mut ctx: BTreeMap<SmolStr, ast::Value> = BTreeMap::new();
        ctx.insert(SmolStr::new_static("path"), ast::Value::from(req.path));
        ctx.insert(SmolStr::new_static("query"), ast::Value::from(req.query));
        ctx.insert(SmolStr::new_static("method"), ast::Value::from(req.method));
        ctx.insert(SmolStr::new_static("route"), ast::Value::from(req.route));
        ctx.insert(
            SmolStr::new_static("headers"),
            ast::Value::new(ast::ValueKind::Record(Arc::new(headers)), None),
        );
        ast::Context::Value(Arc::new(ctx))
    }

    /// The same decision through Cedar's own `Authorizer` over every policy, with the context
    /// built through Cedar's public API. Slower; the reference [`Authorizer::authorize`] is
    /// tested against.
    pub fn authorize_reference(&self, req: &AuthzRequest<'_>, mode: AuthzMode) -> AuthzDecision {
        let principal = self
            .principals
            .get(req.principal)
            .unwrap_or(&self.unknown_principal)
            .as_ref()
            .clone()
            .into();
        let action =
            EntityUid::from_type_name_and_id(self.action_type.clone(), EntityId::new(req.method));
        let resource =
            EntityUid::from_type_name_and_id(self.service_type.clone(), EntityId::new(req.service));
        let context = match self.public_context(req) {
            Ok(c) => c,
            Err(e) => return finish(Decision::Deny, mode, Vec::new(), vec![e]),
        };
        let request = match Request::new(principal, action, resource, context, None) {
            Ok(r) => r,
            Err(e) => return finish(Decision::Deny, mode, Vec::new(), vec![e.to_string()]),
        };
        let response =
            cedar_policy::Authorizer::new().is_authorized(&request, &self.policies, &self.entities);
        let decision = match response.decision() {
            cedar_policy::Decision::Allow => Decision::Allow,
            cedar_policy::Decision::Deny => Decision::Deny,
        };
        let mut policies: Vec<String> = response
            .diagnostics()
            .reason()
            .map(|id| id.to_string())
            .collect();
        policies.sort_unstable();
        let mut errors: Vec<String> = response
            .diagnostics()
            .errors()
            .map(|e| e.to_string().trim_start_matches("error ").to_string())
            .collect();
        errors.sort_unstable();
        finish(decision, mode, policies, errors)
    }

    fn public_context(&self, req: &AuthzRequest<'_>) -> Result<Context, String> {
        let s = |v: &str| RestrictedExpression::new_string(v.to_string());
        let mut headers: Vec<(String, RestrictedExpression)> = Vec::new();
        for name in &self.context_headers {
            if let Some((_, v)) = req
                .headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
            {
                headers.push((name.clone(), s(v)));
            }
        }
        let headers = RestrictedExpression::new_record(headers).map_err(|e| e.to_string())?;
        Context::from_pairs([
            ("path".to_string(), s(req.path)),
            ("query".to_string(), s(req.query)),
            ("method".to_string(), s(req.method)),
            ("route".to_string(), s(req.route)),
            ("headers".to_string(), headers),
        ])
        .map_err(|e| e.to_string())
    }
}

struct EntityTypes {
    namespace: EntityTypeName,
    service: EntityTypeName,
    workload: EntityTypeName,
}

/// Read bundle entities (Cedar's JSON entity format): every entity is a `Namespace`, `Service` or
/// `Workload` with exactly the string attributes the schema gives it, and namespace parents.
fn read_entities(
    json: &serde_json::Value,
    types: &EntityTypes,
) -> Result<Vec<Entity>, PolicyError> {
    let err = |m: String| PolicyError::Entities(m);
    let list = json
        .as_array()
        .ok_or_else(|| err("entities are not a JSON array".into()))?;
    let mut out = Vec::with_capacity(list.len());
    for (i, item) in list.iter().enumerate() {
        let uid = read_uid(item.get("uid"), types)
            .ok_or_else(|| err(format!("entity {i} has no valid `uid`")))?;
        let ty = uid.type_name();
        let wanted: &[&str] = if ty == &types.namespace {
            &[]
        } else if ty == &types.service {
            &["namespace", "name"]
        } else {
            &["namespace", "name", "spiffe"]
        };
        let attrs = match item.get("attrs") {
            None => serde_json::Map::new(),
            Some(serde_json::Value::Object(m)) => m.clone(),
            Some(_) => return Err(err(format!("entity `{uid}` has non-object `attrs`"))),
        };
        if attrs.len() != wanted.len() {
            return Err(err(format!("entity `{uid}` has unexpected attributes")));
        }
        let mut values = HashMap::with_capacity(wanted.len());
        for name in wanted {
            let Some(serde_json::Value::String(v)) = attrs.get(*name) else {
                return Err(err(format!(
                    "entity `{uid}` lacks the string attribute `{name}`"
                )));
            };
            values.insert(
                (*name).to_string(),
                RestrictedExpression::new_string(v.clone()),
            );
        }
        let mut parents = std::collections::HashSet::new();
        match item.get("parents") {
            None => {}
            Some(serde_json::Value::Array(ps)) => {
                for p in ps {
                    let parent = read_uid(Some(p), types)
                        .filter(|u| u.type_name() == &types.namespace)
                        .ok_or_else(|| err(format!("entity `{uid}` has an invalid parent")))?;
                    parents.insert(parent);
                }
            }
            Some(_) => return Err(err(format!("entity `{uid}` has non-array `parents`"))),
        }
        out.push(Entity::new(uid, values, parents).map_err(|e| err(e.to_string()))?);
    }
    Ok(out)
}

/// `{"type": "Service", "id": "ns/name"}` of one of the mesh's entity types.
fn read_uid(v: Option<&serde_json::Value>, types: &EntityTypes) -> Option<EntityUid> {
    let v = v?;
    let ty = match v.get("type")?.as_str()? {
        NAMESPACE_TYPE => &types.namespace,
        SERVICE_TYPE => &types.service,
        WORKLOAD_TYPE => &types.workload,
        _ => return None,
    };
    let id = v.get("id")?.as_str()?;
    Some(EntityUid::from_type_name_and_id(
        ty.clone(),
        EntityId::new(id),
    ))
}

fn core_uid(uid: &EntityUid) -> Arc<ast::EntityUID> {
    Arc::new(AsRef::<ast::EntityUID>::as_ref(uid).clone())
}

fn known(euid: Arc<ast::EntityUID>) -> ast::EntityUIDEntry {
    ast::EntityUIDEntry::Known { euid, loc: None }
}

fn finish(
    decision: Decision,
    mode: AuthzMode,
    policies: Vec<String>,
    errors: Vec<String>,
) -> AuthzDecision {
    let (allowed, audited_deny) = match (decision, mode) {
        (Decision::Allow, _) => (true, false),
        (Decision::Deny, AuthzMode::Enforce) => (false, false),
        (Decision::Deny, AuthzMode::Audit) => (true, true),
    };
    AuthzDecision {
        decision,
        allowed,
        audited_deny,
        policies,
        errors,
    }
}

fn type_name(name: &str) -> Result<EntityTypeName, PolicyError> {
    name.parse()
        .map_err(|e: cedar_policy::ParseErrors| PolicyError::Schema(e.to_string()))
}
