//! The per-request authorizer.
//!
//! [`Authorizer::new`] parses a bundle once: policies, schema and entities. Every entity the
//! store holds or a policy scope names gets a number, with its ancestors as sorted numbers, and
//! policies are indexed by the numbers their scope names with `==`. Per request,
//! [`Authorizer::decide`] (or [`Authorizer::authorize`], the same with owned ids):
//!
//! - looks the caller, method and service up (foldhash maps: their keys come from the
//!   artifact, only the lookups take request input);
//! - checks each candidate's scope on numbers (`==`, `in`, `is`: Cedar's semantics, which
//!   cannot error);
//! - checks its `when` / `unless` conditions: `&&`, `||`, `!`, and `==` / `like` between a
//!   context string (`context.path`, `query`, `method`, `route`, `context.headers["h"]`) and a
//!   literal, or `context.headers has "h"`, natively; anything else with Cedar's evaluator;
//! - builds Cedar's evaluator only when some expression needs it, and gives it a context only
//!   when such an expression mentions `context`;
//! - records determining policies as numbers (policies are numbered in id order) and
//!   allocates for them only in [`Verdict::into_decision`].
//!
//! Where the native checks cannot give a boolean (Cedar would error, e.g. reading an absent
//! header), the policy's whole condition is evaluated by Cedar, for Cedar's exact error.
//!
//! The decision follows Cedar's authorizer exactly (a `forbid` that applies denies; otherwise a
//! `permit` that applies allows; otherwise deny; a policy whose evaluation errors is skipped).
//! [`Authorizer::authorize_reference`] runs Cedar's own `Authorizer` over every policy, and tests
//! check that both agree, policies, errors and all.

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
    ACTION_TYPE, NAMESPACE_TYPE, SERVICE_TYPE, UNKNOWN_WORKLOAD_ID, WORKLOAD_TYPE,
    normalize_headers,
};

/// One request, as the proxy (or `meshc explain`) sees it.
#[derive(Clone, Debug, Default)]
pub struct AuthzRequest<'a> {
    /// Caller's SPIFFE ID, e.g. `spiffe://cluster.local/ns/default/sa/productpage`.
    pub principal: &'a str,
    /// Destination service, `namespace/name`.
    pub service: &'a str,
    /// HTTP method as sent: methods are case-sensitive (RFC 9110 section 9.1), so `delete` is
    /// `Action::"delete"`, which no policy on `Action::"DELETE"` names.
    pub method: &'a str,
    pub path: &'a str,
    pub query: &'a str,
    /// Matched route `namespace/name`, empty when none.
    pub route: &'a str,
    /// Headers visible to policy: (lower-case name, value), one pair per name; a name sent on
    /// several field lines has their values combined in order (`mesh_artifact::RequestParts::
    /// header`, RFC 9110 section 5.3), so a policy sees every line the application receives.
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

type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

fn fast_map<K, V>() -> FastMap<K, V> {
    HashMap::with_hasher(foldhash::fast::RandomState::default())
}

/// An entity the authorizer knows: every entity of the store and every entity a policy scope
/// names, numbered in load order. Numbers stand for uids: two uids are equal exactly when their
/// numbers are.
#[derive(Debug)]
struct Node {
    uid: Arc<ast::EntityUID>,
    /// Index into [`Authorizer::types`].
    ty: u32,
    /// Numbers of the known entities this one is a (transitive) descendant of, sorted; empty for
    /// entities outside the store (as Cedar sees them: no ancestors).
    ancestors: Box<[u32]>,
    /// Its attributes when it is in the store.
    attrs: Option<Box<[Attr]>>,
}

/// An attribute: its name, and its value when a string (`None` otherwise).
type Attr = (SmolStr, Option<SmolStr>);

/// A request entity: its number when known (a uid outside [`Authorizer::nodes`] equals none of
/// the uids policy scopes name, and has no ancestors) and its type.
#[derive(Clone, Copy, Debug)]
struct Ent {
    node: Option<u32>,
    ty: u32,
}

/// A principal or resource scope constraint over entity numbers.
#[derive(Debug)]
enum Scope {
    Any,
    Eq(u32),
    In(u32),
    Is(u32),
    IsIn(u32, u32),
}

#[derive(Debug)]
enum ActionScope {
    Any,
    Eq(u32),
    In(Box<[u32]>),
}

/// One policy, ready to evaluate.
#[derive(Debug)]
struct Compiled {
    id: String,
    forbid: bool,
    /// The scope, checked natively (it cannot error in Cedar); `None` when it has a template
    /// slot, and then `condition` is evaluated whole.
    scope: Option<(Scope, ActionScope, Scope)>,
    /// The `when` / `unless` conditions, checked once the scope holds; `None` when there are
    /// none.
    body: Option<Cond>,
    /// Whether the policy mentions `context`: only then does the request need one.
    reads_context: bool,
    /// Scope and conditions as one expression, built once (Cedar rebuilds it per evaluation):
    /// what Cedar's authorizer evaluates, used where the body alone does not give a boolean.
    condition: ast::Expr,
}

/// Policies by the entity their principal or resource scope names with `==`. A policy is in
/// exactly one bucket; the candidates for a request are the union of four buckets.
#[derive(Debug)]
struct Index {
    any: Vec<u32>,
    by_principal: FastMap<u32, Vec<u32>>,
    by_resource: FastMap<u32, Vec<u32>>,
    /// Principal in the high half, resource in the low half.
    by_both: FastMap<u64, Vec<u32>>,
}

impl Default for Index {
    fn default() -> Self {
        Index {
            any: Vec::new(),
            by_principal: fast_map(),
            by_resource: fast_map(),
            by_both: fast_map(),
        }
    }
}

fn pair(principal: u32, resource: u32) -> u64 {
    (u64::from(principal) << 32) | u64::from(resource)
}

impl Index {
    fn add(&mut self, i: u32, scope: Option<&(Scope, ActionScope, Scope)>) {
        let (principal, resource) = match scope {
            Some((Scope::Eq(p), _, Scope::Eq(r))) => (Some(*p), Some(*r)),
            Some((Scope::Eq(p), _, _)) => (Some(*p), None),
            Some((_, _, Scope::Eq(r))) => (None, Some(*r)),
            _ => (None, None),
        };
        let bucket = match (principal, resource) {
            (None, None) => &mut self.any,
            (Some(p), None) => self.by_principal.entry(p).or_default(),
            (None, Some(r)) => self.by_resource.entry(r).or_default(),
            (Some(p), Some(r)) => self.by_both.entry(pair(p, r)).or_default(),
        };
        bucket.push(i);
    }

    fn candidates<'a>(
        &'a self,
        principal: Option<u32>,
        resource: Option<u32>,
    ) -> impl Iterator<Item = u32> + 'a {
        let empty: &[u32] = &[];
        let get = |m: &'a FastMap<u32, Vec<u32>>, k: Option<u32>| {
            k.and_then(|k| m.get(&k)).map_or(empty, Vec::as_slice)
        };
        let p = get(&self.by_principal, principal);
        let r = get(&self.by_resource, resource);
        let both = match (principal, resource) {
            (Some(p), Some(r)) if !self.by_both.is_empty() => {
                self.by_both.get(&pair(p, r)).map_or(empty, Vec::as_slice)
            }
            _ => empty,
        };
        self.any.iter().chain(p).chain(r).chain(both).copied()
    }
}

/// Numbers entities and entity types while an [`Authorizer`] loads.
struct Interner {
    numbers: FastMap<ast::EntityUID, u32>,
    nodes: Vec<Node>,
    types: Vec<ast::EntityType>,
}

impl Interner {
    fn new() -> Interner {
        Interner {
            numbers: fast_map(),
            nodes: Vec::new(),
            types: Vec::new(),
        }
    }

    fn ty(&mut self, ty: &ast::EntityType) -> u32 {
        if let Some(i) = self.types.iter().position(|t| t == ty) {
            return u32::try_from(i).unwrap_or(u32::MAX);
        }
        self.types.push(ty.clone());
        u32::try_from(self.types.len() - 1).unwrap_or(u32::MAX)
    }

    fn uid(&mut self, uid: &ast::EntityUID) -> Result<u32, PolicyError> {
        if let Some(n) = self.numbers.get(uid) {
            return Ok(*n);
        }
        let n = u32::try_from(self.nodes.len())
            .map_err(|_| PolicyError::Entities("too many entities".into()))?;
        let ty = self.ty(uid.entity_type());
        self.nodes.push(Node {
            uid: Arc::new(uid.clone()),
            ty,
            ancestors: Box::new([]),
            attrs: None,
        });
        self.numbers.insert(uid.clone(), n);
        Ok(n)
    }

    fn scope(
        &mut self,
        c: &ast::PrincipalOrResourceConstraint,
    ) -> Result<Option<Scope>, PolicyError> {
        use ast::{EntityReference::EUID, PrincipalOrResourceConstraint as C};
        Ok(Some(match c {
            C::Any => Scope::Any,
            C::Eq(EUID(uid)) => Scope::Eq(self.uid(uid)?),
            C::In(EUID(uid)) => Scope::In(self.uid(uid)?),
            C::Is(ty) => Scope::Is(self.ty(ty)),
            C::IsIn(ty, EUID(uid)) => Scope::IsIn(self.ty(ty), self.uid(uid)?),
            _ => return Ok(None),
        }))
    }

    fn action_scope(
        &mut self,
        c: &ast::ActionConstraint,
    ) -> Result<Option<ActionScope>, PolicyError> {
        if let ast::ActionConstraint::Any = c {
            Ok(Some(ActionScope::Any))
        } else if let ast::ActionConstraint::Eq(uid) = c {
            Ok(Some(ActionScope::Eq(self.uid(uid)?)))
        } else if let ast::ActionConstraint::In(uids) = c {
            let mut set = Vec::with_capacity(uids.len());
            for uid in uids {
                set.push(self.uid(uid)?);
            }
            Ok(Some(ActionScope::In(set.into())))
        } else {
            Ok(None)
        }
    }

    fn policy_scope(
        &mut self,
        policy: &ast::Policy,
    ) -> Result<Option<(Scope, ActionScope, Scope)>, PolicyError> {
        let principal = self.scope(policy.principal_constraint().as_inner())?;
        let action = self.action_scope(policy.action_constraint())?;
        let resource = self.scope(policy.resource_constraint().as_inner())?;
        Ok(match (principal, action, resource) {
            (Some(p), Some(a), Some(r)) => Some((p, a, r)),
            _ => None,
        })
    }
}

fn mentions_context(e: &ast::Expr) -> bool {
    e.subexpressions()
        .any(|x| matches!(x.expr_kind(), ast::ExprKind::Var(ast::Var::Context)))
}

/// A policy condition (`when` / `unless`), with what the request holds as plain strings checked
/// natively and everything else left to Cedar's evaluator.
///
/// Checking gives `Some(bool)` exactly when Cedar would give that boolean for the same
/// condition; where Cedar would error or give a non-boolean, it gives `None` and the caller
/// evaluates the whole policy with Cedar (for the exact error).
#[derive(Debug)]
enum Cond {
    Const(bool),
    /// String equality (Cedar's `==` on two strings).
    Eq(Operand, Operand),
    /// `like`.
    Like(Operand, Glob),
    /// `context.headers has "name"`, for a header visible to policy.
    HeaderHas(SmolStr),
    Not(Box<Cond>),
    And(Box<Cond>, Box<Cond>),
    Or(Box<Cond>, Box<Cond>),
    /// Any other expression, evaluated by Cedar; must give a boolean.
    Cedar {
        expr: ast::Expr,
        reads_context: bool,
    },
}

#[derive(Clone, Copy, Debug)]
enum Field {
    Path,
    Query,
    Method,
    Route,
}

/// A string operand. Reading one gives no string exactly where Cedar would error or give
/// something else: an absent header, an entity outside the store, a missing or non-string
/// attribute.
#[derive(Debug)]
enum Operand {
    Lit(SmolStr),
    /// `context.path` (`query`, `method`, `route`): always a string.
    Field(Field),
    /// `context.headers["name"]`, for a header visible to policy.
    Header(SmolStr),
    /// `principal.attr` or `resource.attr`.
    Attr(Who, SmolStr),
}

#[derive(Clone, Copy, Debug)]
enum Who {
    Principal,
    Resource,
}

/// A `like` pattern as the literal parts between its wildcards.
#[derive(Debug)]
struct Glob {
    /// Parts split at each `*`: one part (the whole literal) when there is no wildcard.
    parts: Vec<String>,
}

impl Glob {
    fn new(pattern: &ast::Pattern) -> Glob {
        let mut parts = vec![String::new()];
        for elem in pattern.iter() {
            match elem {
                ast::PatternElem::Char(c) => {
                    if let Some(last) = parts.last_mut() {
                        last.push(*c);
                    }
                }
                ast::PatternElem::Wildcard => parts.push(String::new()),
            }
        }
        Glob { parts }
    }

    /// Cedar's `like`: `*` matches any sequence of characters. Matching bytes is matching
    /// characters here: each literal part is whole UTF-8, so it can only match at character
    /// boundaries.
    fn matches(&self, text: &str) -> bool {
        let Some((first, rest)) = self.parts.split_first() else {
            return text.is_empty();
        };
        let Some((last, middle)) = rest.split_last() else {
            return text == first;
        };
        let Some(after) = text.strip_prefix(first.as_str()) else {
            return false;
        };
        let Some(mut window) = after.strip_suffix(last.as_str()) else {
            return false;
        };
        for part in middle {
            match window.find(part.as_str()) {
                Some(at) => match window.get(at + part.len()..) {
                    Some(w) => window = w,
                    None => return false,
                },
                None => return false,
            }
        }
        true
    }
}

fn is_context(e: &ast::Expr) -> bool {
    matches!(e.expr_kind(), ast::ExprKind::Var(ast::Var::Context))
}

fn is_headers(e: &ast::Expr) -> bool {
    matches!(e.expr_kind(), ast::ExprKind::GetAttr { expr, attr } if is_context(expr) && attr == "headers")
}

impl Cond {
    fn new(e: &ast::Expr, headers: &[String]) -> Cond {
        use ast::ExprKind as K;
        let visible = |h: &SmolStr| headers.iter().any(|v| v == h.as_str());
        let operand = |e: &ast::Expr| match e.expr_kind() {
            K::Lit(ast::Literal::String(s)) => Some(Operand::Lit(s.clone())),
            K::GetAttr { expr, attr } => match expr.expr_kind() {
                K::Var(ast::Var::Context) => match attr.as_str() {
                    "path" => Some(Operand::Field(Field::Path)),
                    "query" => Some(Operand::Field(Field::Query)),
                    "method" => Some(Operand::Field(Field::Method)),
                    "route" => Some(Operand::Field(Field::Route)),
                    _ => None,
                },
                K::Var(ast::Var::Principal) => Some(Operand::Attr(Who::Principal, attr.clone())),
                K::Var(ast::Var::Resource) => Some(Operand::Attr(Who::Resource, attr.clone())),
                _ if is_headers(expr) && visible(attr) => Some(Operand::Header(attr.clone())),
                _ => None,
            },
            _ => None,
        };
        let native = match e.expr_kind() {
            K::Lit(ast::Literal::Bool(b)) => Some(Cond::Const(*b)),
            K::And { left, right } => Some(Cond::And(
                Box::new(Cond::new(left, headers)),
                Box::new(Cond::new(right, headers)),
            )),
            K::Or { left, right } => Some(Cond::Or(
                Box::new(Cond::new(left, headers)),
                Box::new(Cond::new(right, headers)),
            )),
            K::UnaryApp {
                op: ast::UnaryOp::Not,
                arg,
            } => Some(Cond::Not(Box::new(Cond::new(arg, headers)))),
            K::BinaryApp {
                op: ast::BinaryOp::Eq,
                arg1,
                arg2,
            } => match (operand(arg1), operand(arg2)) {
                (Some(a), Some(b)) => Some(Cond::Eq(a, b)),
                _ => None,
            },
            K::Like { expr, pattern } => operand(expr).map(|a| Cond::Like(a, Glob::new(pattern))),
            K::HasAttr { expr, attr } if is_headers(expr) => Some(if visible(attr) {
                Cond::HeaderHas(attr.clone())
            } else {
                // The record only ever holds visible headers.
                Cond::Const(false)
            }),
            _ => None,
        };
        native.unwrap_or_else(|| Cond::Cedar {
            expr: e.clone(),
            reads_context: mentions_context(e),
        })
    }
}

/// What checking one request's conditions needs: the request, and Cedar's evaluator, built on
/// first need (most policies are decided by their scope and plain string tests) and with a
/// context only once an expression that reads it is evaluated.
struct Env<'a, 'r> {
    authz: &'a Authorizer,
    req: &'a AuthzRequest<'r>,
    principal: Ent,
    action: Ent,
    resource: Ent,
    evaluator: Option<(Evaluator<'a>, bool)>,
}

impl<'a> Env<'a, '_> {
    /// The string an operand stands for; `None` where Cedar would not give a string.
    fn operand<'s>(&'s self, o: &'s Operand) -> Option<&'s str> {
        match o {
            Operand::Lit(s) => Some(s),
            Operand::Field(Field::Path) => Some(self.req.path),
            Operand::Field(Field::Query) => Some(self.req.query),
            Operand::Field(Field::Method) => Some(self.req.method),
            Operand::Field(Field::Route) => Some(self.req.route),
            Operand::Header(h) => self.header(h),
            Operand::Attr(who, attr) => {
                let e = match who {
                    Who::Principal => self.principal,
                    Who::Resource => self.resource,
                };
                let attrs = self.authz.nodes.get(e.node? as usize)?.attrs.as_deref()?;
                let (_, v) = attrs.iter().find(|(k, _)| k == attr)?;
                v.as_deref()
            }
        }
    }

    /// The value of a visible header, as the context record holds it (the first matching
    /// request header, names compared case-insensitively).
    fn header(&self, name: &str) -> Option<&str> {
        self.req
            .headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| *v)
    }

    fn cond(&mut self, c: &Cond) -> Option<bool> {
        match c {
            Cond::Const(b) => Some(*b),
            Cond::Eq(a, b) => Some(self.operand(a)? == self.operand(b)?),
            Cond::Like(a, g) => Some(g.matches(self.operand(a)?)),
            Cond::HeaderHas(h) => Some(self.header(h).is_some()),
            Cond::Not(a) => self.cond(a).map(|b| !b),
            Cond::And(a, b) => match self.cond(a)? {
                false => Some(false),
                true => self.cond(b),
            },
            Cond::Or(a, b) => match self.cond(a)? {
                true => Some(true),
                false => self.cond(b),
            },
            Cond::Cedar {
                expr,
                reads_context,
            } => match self.cedar(expr, *reads_context)? {
                Ok(v) => match v.value {
                    ast::ValueKind::Lit(ast::Literal::Bool(b)) => Some(b),
                    _ => None,
                },
                Err(_) => None,
            },
        }
    }

    /// Evaluate with Cedar. `None` only if the evaluator could not be kept (never in practice).
    fn cedar(
        &mut self,
        expr: &ast::Expr,
        reads_context: bool,
    ) -> Option<Result<ast::Value, cedar_policy_core::evaluator::EvaluationError>> {
        if !matches!(&self.evaluator, Some((_, has)) if *has || !reads_context) {
            let evaluator = self.authz.evaluator(
                self.req,
                self.principal,
                self.action,
                self.resource,
                reads_context,
            );
            self.evaluator = Some((evaluator, reads_context));
        }
        let (evaluator, _) = self.evaluator.as_ref()?;
        Some(evaluator.interpret(expr, &self.authz.empty_slots))
    }
}

/// Parsed once from an [`mesh_artifact::AuthzBundle`]; evaluates without parsing.
///
/// `Send + Sync`: share one per loaded artifact.
#[derive(Debug)]
pub struct Authorizer {
    /// Sorted by id, so sorting policy numbers sorts their ids.
    compiled: Vec<Compiled>,
    index: Index,
    /// The same policies as a Cedar policy set, for [`Authorizer::authorize_reference`].
    policies: cedar_policy::PolicySet,
    entities: Entities,
    nodes: Vec<Node>,
    /// SPIFFE ID -> workload number, from the `spiffe` attribute of every `Workload` entity.
    ///
    /// Maps on the request path use foldhash with a per-map random seed: their keys come from
    /// the artifact (trusted, verified by hash), only lookups take caller input, so flooding
    /// one bucket would take control of the artifact; SipHash would only cost time.
    principals: FastMap<String, u32>,
    /// `Workload::""`, for callers the bundle does not know.
    unknown_principal: u32,
    unknown_uid: Arc<ast::EntityUID>,
    /// Action id (the HTTP method) -> number, for every known `Action` entity.
    actions: FastMap<String, u32>,
    action_type: EntityTypeName,
    action_ty: u32,
    /// Service id (`namespace/name`) -> number, for every known `Service` entity.
    services: FastMap<String, u32>,
    service_type: EntityTypeName,
    service_ty: u32,
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
        let mut parsed_policies = Vec::with_capacity(bundle.policies.len());
        for p in &bundle.policies {
            let policy =
                cedar_policy::Policy::parse(Some(PolicyId::new(&p.id)), &p.text).map_err(|e| {
                    PolicyError::Policy {
                        id: p.id.clone(),
                        message: e.to_string(),
                    }
                })?;
            u32::try_from(parsed_policies.len()).map_err(|_| PolicyError::Policy {
                id: p.id.clone(),
                message: "too many policies".into(),
            })?;
            parsed_policies.push((p.id.clone(), policy.clone()));
            policies
                .add(policy)
                .map_err(|_| PolicyError::DuplicateId(p.id.clone()))?;
        }
        // Ids are unique (checked above): numbering policies in id order makes the sorted
        // numbers of a decision its sorted ids.
        parsed_policies.sort_unstable_by(|a, b| a.0.cmp(&b.0));
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

        // Number the store's entities, then the entities scopes name, then record ancestors
        // (after all numbering, so an ancestor only a scope names is still recorded).
        let mut interner = Interner::new();
        let store: &cedar_policy_core::entities::Entities = entities.as_ref();
        for e in store.iter() {
            interner.uid(e.uid())?;
        }
        let action_ty = interner.ty(AsRef::<ast::EntityType>::as_ref(&action_type));
        let service_ty = interner.ty(AsRef::<ast::EntityType>::as_ref(&service_type));
        let unknown_principal = interner.uid(AsRef::<ast::EntityUID>::as_ref(&unknown_uid))?;
        let context_headers = normalize_headers(&bundle.context_headers);
        let mut compiled = Vec::with_capacity(parsed_policies.len());
        let mut index = Index::default();
        for (id, policy) in parsed_policies {
            let ast_policy: &ast::Policy = policy.as_ref();
            let scope = interner.policy_scope(ast_policy)?;
            let i = u32::try_from(compiled.len()).map_err(|_| PolicyError::Policy {
                id: id.clone(),
                message: "too many policies".into(),
            })?;
            index.add(i, scope.as_ref());
            let condition = ast_policy.condition();
            compiled.push(Compiled {
                id,
                forbid: ast_policy.effect() == ast::Effect::Forbid,
                scope,
                body: ast_policy
                    .non_scope_constraints()
                    .map(|e| Cond::new(e, &context_headers)),
                reads_context: mentions_context(&condition),
                condition,
            });
        }
        for e in store.iter() {
            let Some(&n) = interner.numbers.get(e.uid()) else {
                continue;
            };
            let mut ancestors: Vec<u32> = e
                .ancestors()
                .filter_map(|a| interner.numbers.get(a).copied())
                .collect();
            ancestors.sort_unstable();
            ancestors.dedup();
            let attrs: Vec<Attr> = e
                .attrs()
                .map(|(k, v)| {
                    let s = match v {
                        ast::PartialValue::Value(ast::Value {
                            value: ast::ValueKind::Lit(ast::Literal::String(s)),
                            ..
                        }) => Some(s.clone()),
                        _ => None,
                    };
                    (k.clone(), s)
                })
                .collect();
            if let Some(node) = interner.nodes.get_mut(n as usize) {
                node.ancestors = ancestors.into();
                node.attrs = Some(attrs.into());
            }
        }

        let mut principals = fast_map();
        for entity in entities.iter() {
            let uid = entity.uid();
            if uid.type_name() == &workload_type {
                if let Some(Ok(EvalResult::String(spiffe))) = entity.attr("spiffe")
                    && !spiffe.is_empty()
                    && let Some(&n) = interner.numbers.get(AsRef::<ast::EntityUID>::as_ref(&uid))
                {
                    principals.insert(spiffe, n);
                }
            }
        }
        let mut actions = fast_map();
        let mut services = fast_map();
        for (n, node) in (0u32..).zip(&interner.nodes) {
            let id: &str = node.uid.eid().as_ref();
            if node.ty == action_ty {
                actions.insert(id.to_string(), n);
            } else if node.ty == service_ty {
                services.insert(id.to_string(), n);
            }
        }
        let header_keys = context_headers.iter().map(SmolStr::new).collect();

        Ok(Authorizer {
            compiled,
            index,
            policies,
            entities,
            nodes: interner.nodes,
            principals,
            unknown_principal,
            unknown_uid: core_uid(&unknown_uid),
            actions,
            action_type,
            action_ty,
            services,
            service_type,
            service_ty,
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

    /// Decide one request, with owned policy ids: [`Authorizer::decide`], then
    /// [`Verdict::into_decision`].
    ///
    /// `Enforce`: allowed only when some `permit` applies and no `forbid` does. `Audit`: the same
    /// decision, but a deny is let through with `audited_deny` set.
    pub fn authorize(&self, req: &AuthzRequest<'_>, mode: AuthzMode) -> AuthzDecision {
        self.decide(req, mode).into_decision()
    }

    /// Decide one request without allocating for the determining policies (their ids are
    /// borrowed from the authorizer): what the proxy calls per request. Same decision, policies
    /// and errors as [`Authorizer::authorize`].
    pub fn decide(&self, req: &AuthzRequest<'_>, mode: AuthzMode) -> Verdict<'_> {
        let p = self
            .principals
            .get(req.principal)
            .copied()
            .unwrap_or(self.unknown_principal);
        let principal = Ent {
            node: Some(p),
            ty: self.nodes.get(p as usize).map_or(u32::MAX, |n| n.ty),
        };
        let action = Ent {
            node: self.actions.get(req.method).copied(),
            ty: self.action_ty,
        };
        let resource = Ent {
            node: self.services.get(req.service).copied(),
            ty: self.service_ty,
        };
        let mut permits = Ids::default();
        let mut forbids = Ids::default();
        let mut errors: Vec<String> = Vec::new();
        let mut env = Env {
            authz: self,
            req,
            principal,
            action,
            resource,
            evaluator: None,
        };
        for i in self.index.candidates(principal.node, resource.node) {
            let Some(policy) = self.compiled.get(i as usize) else {
                continue;
            };
            let holds = match &policy.scope {
                Some((ps, a, rs)) => {
                    if !(self.scope_holds(ps, principal)
                        && self.action_holds(a, action)
                        && self.scope_holds(rs, resource))
                    {
                        continue;
                    }
                    match &policy.body {
                        None => Some(true),
                        Some(body) => env.cond(body),
                    }
                }
                None => None,
            };
            let result = match holds {
                Some(b) => Ok(b),
                // A slot in the scope, or a condition that is not a plain boolean here (an
                // error, or a non-boolean value): evaluate exactly what Cedar evaluates.
                None => match env.cedar(&policy.condition, policy.reads_context) {
                    Some(Ok(v)) => match v.value {
                        ast::ValueKind::Lit(ast::Literal::Bool(b)) => Ok(b),
                        _ => Err(format!(
                            "while evaluating policy `{}`: the condition is not a boolean",
                            policy.id
                        )),
                    },
                    Some(Err(e)) => Err(format!("while evaluating policy `{}`: {e}", policy.id)),
                    None => continue,
                },
            };
            match result {
                Ok(true) if policy.forbid => forbids.push(i),
                Ok(true) => permits.push(i),
                Ok(false) => {}
                Err(e) => errors.push(e),
            }
        }
        let (decision, mut ids) = if !forbids.is_empty() {
            (Decision::Deny, forbids)
        } else if !permits.is_empty() {
            (Decision::Allow, permits)
        } else {
            (Decision::Deny, Ids::default())
        };
        ids.sort();
        errors.sort_unstable();
        let (allowed, audited_deny) = gate(decision, mode);
        Verdict {
            decision,
            allowed,
            audited_deny,
            policies: PolicyIds {
                compiled: &self.compiled,
                ids,
            },
            errors,
        }
    }

    fn in_node(&self, e: Ent, target: u32) -> bool {
        match e.node {
            Some(n) => {
                n == target
                    || self
                        .nodes
                        .get(n as usize)
                        .is_some_and(|node| node.ancestors.binary_search(&target).is_ok())
            }
            None => false,
        }
    }

    /// Cedar's scope semantics: `==` is uid equality, `in` is equality or ancestry in the
    /// store, `is` compares the entity type.
    fn scope_holds(&self, s: &Scope, e: Ent) -> bool {
        match *s {
            Scope::Any => true,
            Scope::Eq(t) => e.node == Some(t),
            Scope::In(t) => self.in_node(e, t),
            Scope::Is(ty) => e.ty == ty,
            Scope::IsIn(ty, t) => e.ty == ty && self.in_node(e, t),
        }
    }

    fn action_holds(&self, s: &ActionScope, e: Ent) -> bool {
        match s {
            ActionScope::Any => true,
            ActionScope::Eq(t) => e.node == Some(*t),
            ActionScope::In(ts) => ts.iter().any(|t| self.in_node(e, *t)),
        }
    }

    fn request_uid(&self, e: Ent, ty: &EntityTypeName, id: &str) -> Arc<ast::EntityUID> {
        match e.node.and_then(|n| self.nodes.get(n as usize)) {
            Some(node) => Arc::clone(&node.uid),
            None => core_uid(&EntityUid::from_type_name_and_id(
                ty.clone(),
                EntityId::new(id),
            )),
        }
    }

    fn evaluator(
        &self,
        req: &AuthzRequest<'_>,
        principal: Ent,
        action: Ent,
        resource: Ent,
        with_context: bool,
    ) -> Evaluator<'_> {
        let principal = principal
            .node
            .and_then(|n| self.nodes.get(n as usize))
            .map_or_else(|| Arc::clone(&self.unknown_uid), |n| Arc::clone(&n.uid));
        let request = ast::Request::new_unchecked(
            known(principal),
            known(self.request_uid(action, &self.action_type, req.method)),
            known(self.request_uid(resource, &self.service_type, req.service)),
            // A policy that does not mention `context` never reads it.
            with_context.then(|| self.core_context(req)),
        );
        Evaluator::new(request, self.entities.as_ref(), Extensions::all_available())
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
            .and_then(|n| self.nodes.get(*n as usize))
            .map_or(self.unknown_uid.as_ref(), |n| n.uid.as_ref())
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

/// Whether a decision lets the request through, and whether audit mode did.
fn gate(decision: Decision, mode: AuthzMode) -> (bool, bool) {
    match (decision, mode) {
        (Decision::Allow, _) => (true, false),
        (Decision::Deny, AuthzMode::Enforce) => (false, false),
        (Decision::Deny, AuthzMode::Audit) => (true, true),
    }
}

fn finish(
    decision: Decision,
    mode: AuthzMode,
    policies: Vec<String>,
    errors: Vec<String>,
) -> AuthzDecision {
    let (allowed, audited_deny) = gate(decision, mode);
    AuthzDecision {
        decision,
        allowed,
        audited_deny,
        policies,
        errors,
    }
}

/// Policy numbers, without allocating for none or one.
#[derive(Clone, Debug, Default)]
enum Ids {
    #[default]
    None,
    One(u32),
    Many(Vec<u32>),
}

impl Ids {
    fn push(&mut self, i: u32) {
        *self = match std::mem::take(self) {
            Ids::None => Ids::One(i),
            Ids::One(a) => Ids::Many(vec![a, i]),
            Ids::Many(mut v) => {
                v.push(i);
                Ids::Many(v)
            }
        };
    }

    fn is_empty(&self) -> bool {
        matches!(self, Ids::None)
    }

    fn sort(&mut self) {
        if let Ids::Many(v) = self {
            v.sort_unstable();
        }
    }

    fn as_slice(&self) -> &[u32] {
        match self {
            Ids::None => &[],
            Ids::One(i) => std::slice::from_ref(i),
            Ids::Many(v) => v,
        }
    }
}

/// The ids of the policies that determined a [`Verdict`], sorted, borrowed from the
/// [`Authorizer`]. `Debug` prints them as a list of strings.
#[derive(Clone)]
pub struct PolicyIds<'a> {
    compiled: &'a [Compiled],
    ids: Ids,
}

impl<'a> PolicyIds<'a> {
    pub fn len(&self) -> usize {
        self.ids.as_slice().len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// The ids, sorted.
    pub fn iter(&self) -> impl Iterator<Item = &'a str> + '_ {
        let compiled = self.compiled;
        self.ids
            .as_slice()
            .iter()
            .filter_map(move |i| compiled.get(*i as usize).map(|c| c.id.as_str()))
    }

    pub fn to_vec(&self) -> Vec<String> {
        self.iter().map(str::to_string).collect()
    }
}

impl std::fmt::Debug for PolicyIds<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// The outcome of one authorization, borrowing policy ids from the [`Authorizer`]: the same
/// fields as [`AuthzDecision`], which [`Verdict::into_decision`] gives.
#[derive(Clone, Debug)]
pub struct Verdict<'a> {
    /// Cedar's decision.
    pub decision: Decision,
    /// Whether the request may proceed (in audit mode a deny still proceeds).
    pub allowed: bool,
    /// Whether this was a deny that audit mode let through.
    pub audited_deny: bool,
    /// The policies that determined the decision (sorted by id).
    pub policies: PolicyIds<'a>,
    /// Evaluation errors, if any (a policy that errors is skipped, as Cedar does), sorted.
    pub errors: Vec<String>,
}

impl Verdict<'_> {
    /// The same outcome with owned policy ids.
    pub fn into_decision(self) -> AuthzDecision {
        AuthzDecision {
            decision: self.decision,
            allowed: self.allowed,
            audited_deny: self.audited_deny,
            policies: self.policies.to_vec(),
            errors: self.errors,
        }
    }
}

fn type_name(name: &str) -> Result<EntityTypeName, PolicyError> {
    name.parse()
        .map_err(|e: cedar_policy::ParseErrors| PolicyError::Schema(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn pattern(p: &str) -> ast::Pattern {
        p.chars()
            .map(|c| match c {
                '*' => ast::PatternElem::Wildcard,
                c => ast::PatternElem::Char(c),
            })
            .collect()
    }

    fn agree(p: &str, text: &str) {
        let pattern = pattern(p);
        assert_eq!(
            Glob::new(&pattern).matches(text),
            pattern.wildcard_match(text),
            "{p:?} like {text:?}"
        );
    }

    #[test]
    fn glob_edge_cases_match_cedar() {
        for (p, text) in [
            ("", ""),
            ("", "a"),
            ("*", ""),
            ("**", "abc"),
            ("a*", "a"),
            ("*a", "a"),
            ("a*a", "a"),
            ("a*a", "aa"),
            ("ab*ba", "aba"),
            ("/api/*", "/api/"),
            ("/api/*", "/api"),
            ("*/x/*", "/a/x/x/b"),
            ("*é*", "aéb"),
            ("é*é", "é"),
            ("a*b*c", "acb"),
            ("a*b*c", "abbc"),
        ] {
            agree(p, text);
        }
        // Known answers, read off the definition rather than the implementation.
        assert!(Glob::new(&pattern("/api/*")).matches("/api/v1"));
        assert!(!Glob::new(&pattern("/api/*")).matches("/apiv1"));
        assert!(!Glob::new(&pattern("a*a")).matches("a"));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        #[test]
        fn glob_matches_cedar(p in "[ab*é/]{0,7}", text in "[abé/]{0,9}") {
            agree(&p, &text);
        }
    }
}
