//! The per-request authorizer.
//!
//! [`Authorizer::new`] parses a bundle once: policies, schema and entities. Each call to
//! [`Authorizer::authorize`] then only builds a Cedar request from prepared uids and the
//! request's strings and evaluates it: nothing is parsed on the request path.

use std::collections::HashMap;

use cedar_policy::{
    Context, Entities, Entity, EntityId, EntityTypeName, EntityUid, EvalResult, PolicyId, Request,
    RestrictedExpression, Schema,
};
use mesh_artifact::{AuthzBundle, AuthzMode};

use crate::model::{
    ACTION_TYPE, METHOD_ACTIONS, SERVICE_TYPE, UNKNOWN_WORKLOAD_ID, WORKLOAD_TYPE,
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

/// Parsed once from an [`mesh_artifact::AuthzBundle`]; evaluates without parsing.
#[derive(Debug)]
pub struct Authorizer {
    cedar: cedar_policy::Authorizer,
    policies: cedar_policy::PolicySet,
    entities: Entities,
    /// SPIFFE ID -> workload uid, from the `spiffe` attribute of every `Workload` entity.
    principals: HashMap<String, EntityUid>,
    /// `Workload::""`, for callers the bundle does not know.
    unknown_principal: EntityUid,
    /// HTTP method -> action uid, for the methods the schema declares.
    actions: HashMap<String, EntityUid>,
    action_type: EntityTypeName,
    /// `namespace/name` -> service uid, for the services in the bundle.
    services: HashMap<String, EntityUid>,
    service_type: EntityTypeName,
    /// Headers visible to policy, lower case, sorted.
    context_headers: Vec<String>,
}

impl Authorizer {
    /// Parse a bundle: schema, policies (ids from the bundle) and entities (checked against the
    /// schema). Policies are not re-validated: the compiler validated them.
    pub fn new(bundle: &AuthzBundle) -> Result<Authorizer, PolicyError> {
        let (schema, _warnings) = Schema::from_cedarschema_str(&bundle.schema)
            .map_err(|e| PolicyError::Schema(e.to_string()))?;
        let mut policies = cedar_policy::PolicySet::new();
        for p in &bundle.policies {
            let policy = cedar_policy::Policy::parse(Some(PolicyId::new(&p.id)), &p.text)
                .map_err(|e| PolicyError::Policy { id: p.id.clone(), message: e.to_string() })?;
            policies.add(policy).map_err(|_| PolicyError::DuplicateId(p.id.clone()))?;
        }
        let entities = Entities::from_json_value(bundle.entities.clone(), Some(&schema))
            .map_err(|e| PolicyError::Entities(e.to_string()))?;

        let workload_type = type_name(WORKLOAD_TYPE)?;
        let action_type = type_name(ACTION_TYPE)?;
        let service_type = type_name(SERVICE_TYPE)?;

        let unknown_principal = EntityUid::from_type_name_and_id(
            workload_type.clone(),
            EntityId::new(UNKNOWN_WORKLOAD_ID),
        );
        let entities = if entities.get(&unknown_principal).is_some() {
            entities
        } else {
            let empty = || RestrictedExpression::new_string(String::new());
            let attrs = HashMap::from([
                ("namespace".to_string(), empty()),
                ("name".to_string(), empty()),
                ("spiffe".to_string(), empty()),
            ]);
            let unknown = Entity::new(unknown_principal.clone(), attrs, Default::default())
                .map_err(|e| PolicyError::Entities(e.to_string()))?;
            entities
                .add_entities([unknown], Some(&schema))
                .map_err(|e| PolicyError::Entities(e.to_string()))?
        };

        let mut principals = HashMap::new();
        let mut services = HashMap::new();
        for entity in entities.iter() {
            let uid = entity.uid();
            if uid.type_name() == &workload_type {
                if let Some(Ok(EvalResult::String(spiffe))) = entity.attr("spiffe")
                    && !spiffe.is_empty()
                {
                    principals.insert(spiffe, uid);
                }
            } else if uid.type_name() == &service_type {
                services.insert(uid.id().unescaped().to_string(), uid);
            }
        }
        let actions = METHOD_ACTIONS
            .iter()
            .map(|(m, _)| {
                let uid = EntityUid::from_type_name_and_id(action_type.clone(), EntityId::new(m));
                (m.to_string(), uid)
            })
            .collect();

        Ok(Authorizer {
            cedar: cedar_policy::Authorizer::new(),
            policies,
            entities,
            principals,
            unknown_principal,
            actions,
            action_type,
            services,
            service_type,
            context_headers: normalize_headers(&bundle.context_headers),
        })
    }

    /// Number of policies loaded.
    pub fn policy_count(&self) -> usize {
        self.policies.num_of_policies()
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
        let principal = self.principals.get(req.principal).unwrap_or(&self.unknown_principal).clone();
        let action = match self.actions.get(req.method) {
            Some(uid) => uid.clone(),
            None => EntityUid::from_type_name_and_id(self.action_type.clone(), EntityId::new(req.method)),
        };
        let resource = match self.services.get(req.service) {
            Some(uid) => uid.clone(),
            None => EntityUid::from_type_name_and_id(
                self.service_type.clone(),
                EntityId::new(req.service),
            ),
        };
        let context = match self.context(req) {
            Ok(c) => c,
            Err(e) => return self.error_decision(mode, e),
        };
        let request = match Request::new(principal, action, resource, context, None) {
            Ok(r) => r,
            Err(e) => return self.error_decision(mode, e.to_string()),
        };
        let response = self.cedar.is_authorized(&request, &self.policies, &self.entities);
        let decision = match response.decision() {
            cedar_policy::Decision::Allow => Decision::Allow,
            cedar_policy::Decision::Deny => Decision::Deny,
        };
        let mut policies: Vec<String> =
            response.diagnostics().reason().map(|id| id.to_string()).collect();
        policies.sort();
        let errors: Vec<String> =
            response.diagnostics().errors().map(ToString::to_string).collect();
        finish(decision, mode, policies, errors)
    }

    fn context(&self, req: &AuthzRequest<'_>) -> Result<Context, String> {
        let s = |v: &str| RestrictedExpression::new_string(v.to_string());
        let mut headers: Vec<(String, RestrictedExpression)> = Vec::new();
        for name in &self.context_headers {
            if let Some((_, v)) = req.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)) {
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

    fn error_decision(&self, mode: AuthzMode, error: String) -> AuthzDecision {
        finish(Decision::Deny, mode, Vec::new(), vec![error])
    }
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
    AuthzDecision { decision, allowed, audited_deny, policies, errors }
}

fn type_name(name: &str) -> Result<EntityTypeName, PolicyError> {
    name.parse().map_err(|e: cedar_policy::ParseErrors| PolicyError::Schema(e.to_string()))
}
