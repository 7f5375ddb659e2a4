//! Cedar policies inside meshc: builds the policy crate's view of the mesh, validates every
//! `.cedar` file (wrapping `mesh-policy` diagnostics with file positions), slices bundles for
//! artifacts, and evaluates `explain` requests through the proxy's own authorizer.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;
use std::process::ExitCode;

use mesh_artifact::{AuthzBundle, RequestParts};
use mesh_policy::{Authorizer, AuthzRequest, PolicyModel, ServiceEntry};
use serde_json::json;

use crate::diag::{Code, Diagnostic, Severity};
use crate::model::{Model, Service};
use crate::render::HumanOptions;
use crate::source::{FileId, Loc, SourceMap, Span};
use crate::{Checked, LoadOptions};

/// Validated policies, ready for slicing into artifacts.
#[derive(Debug, Default)]
pub struct Policies {
    pub model: PolicyModel,
    pub set: mesh_policy::PolicySet,
    /// File names in the order given to `mesh_policy::validate`.
    pub file_names: Vec<String>,
    /// Who may call whom, derived from the sidecars' egress on first use: only bundles need it,
    /// and `meshc check` makes none.
    callers: std::sync::OnceLock<Callers>,
}

#[derive(Debug, Default)]
struct Callers {
    /// Services whose sidecar may call every service (no egress list).
    of_all: BTreeSet<String>,
    /// Per service, the services whose egress names it.
    by: BTreeMap<String, BTreeSet<String>>,
}

impl Policies {
    /// Workloads that can reach `service` through their sidecars (`model` is the mesh these
    /// policies were checked against).
    pub fn callers_of(&self, model: &Model, service: &str) -> BTreeSet<String> {
        let callers = self.callers.get_or_init(|| {
            let (of_all, by) = callers(model);
            Callers { of_all, by }
        });
        let mut set = callers.of_all.clone();
        if let Some(c) = callers.by.get(service) {
            set.extend(c.iter().cloned());
        }
        set
    }
}

fn callers(model: &Model) -> (BTreeSet<String>, BTreeMap<String, BTreeSet<String>>) {
    let mut all = BTreeSet::new();
    let mut by: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for svc in &model.services {
        let key = svc.key();
        match model
            .sidecar_for(&svc.namespace, &svc.name)
            .and_then(|s| s.egress.as_ref())
        {
            None => {
                all.insert(key);
            }
            Some(_) => {
                for dest in crate::lower::egress_of(model, svc) {
                    by.entry(dest.key()).or_default().insert(key.clone());
                }
            }
        }
    }
    // A route on a service sends its callers on to the route's backends, whose sidecars then
    // authorize them: those must know these callers too, egress or not (a route on `store`
    // that sends `/checkout` to `store-v2`). One level: a backend is called as it is, never
    // routed again.
    let mut via_routes: Vec<(String, BTreeSet<String>)> = Vec::new();
    for (parent, routes) in &model.routes_by_parent {
        let Some(callers) = by.get(parent) else {
            continue;
        };
        for route in routes.iter().filter_map(|&i| model.routes.get(i)) {
            for b in route.rules.iter().flat_map(|r| &r.backends) {
                let backend = format!("{}/{}", b.namespace, b.name);
                if backend != *parent {
                    via_routes.push((backend, callers.clone()));
                }
            }
        }
    }
    for (backend, callers) in via_routes {
        by.entry(backend).or_default().extend(callers);
    }
    (all, by)
}

/// The policy crate's view of the mesh.
pub fn policy_model(model: &Model) -> PolicyModel {
    PolicyModel {
        trust_domain: model.mesh.trust_domain.clone(),
        services: model
            .services
            .iter()
            .map(|s| ServiceEntry::new(s.namespace.clone(), s.name.clone()))
            .collect(),
        context_headers: model
            .mesh
            .context_headers
            .iter()
            .map(|h| h.v.clone())
            .collect(),
    }
}

pub fn check(model: &Model, sources: &SourceMap) -> (Policies, Vec<Diagnostic>) {
    check_parsed(model, sources, None)
}

/// [`check`], with the `.cedar` files already parsed by [`crate::load::build_model_parsed`].
pub fn check_parsed(
    model: &Model,
    sources: &SourceMap,
    parsed: Option<mesh_policy::validate::Parsed>,
) -> (Policies, Vec<Diagnostic>) {
    let pm = policy_model(model);
    let files: Vec<FileId> = model.policy_files.iter().map(|p| p.file).collect();
    let inputs = crate::load::policy_inputs(model, sources);
    let file_names: Vec<String> = inputs.iter().map(|(n, _)| n.clone()).collect();
    let (set, pdiags) = match parsed {
        Some(p) => mesh_policy::validate::validate_parsed(&pm, &inputs, p),
        None => mesh_policy::validate::validate(&pm, &inputs),
    };
    let diags = pdiags
        .into_iter()
        .map(|d| {
            let code = Code::parse(d.code).unwrap_or(Code::CedarOther);
            let file = files.get(d.file).copied().unwrap_or(FileId(0));
            let mut out = Diagnostic::new(code, d.message).primary(
                file,
                Span::new(d.span.0, d.span.1),
                d.label.unwrap_or_else(|| "here".to_string()),
            );
            out.severity = match d.severity {
                mesh_policy::Severity::Error => Severity::Error,
                mesh_policy::Severity::Warning => Severity::Warning,
            };
            out.help = d.help;
            out
        })
        .collect();
    (
        Policies {
            model: pm,
            set,
            file_names,
            callers: std::sync::OnceLock::new(),
        },
        diags,
    )
}

/// A slicer over the checked mesh's policies: make one to build many bundles.
pub fn slicer(checked: &Checked) -> mesh_policy::Slicer<'_> {
    mesh_policy::Slicer::new(&checked.policies.model, &checked.policies.set)
}

/// The inbound authorization bundle of one sidecar, from a [`slicer`].
pub fn bundle_with(
    checked: &Checked,
    slicer: &mesh_policy::Slicer<'_>,
    svc: &Service,
) -> AuthzBundle {
    let p = &checked.policies;
    let key = svc.key();
    // The slicer hands out entities with their keys sorted (canonical), so encoding the
    // artifact does not copy the body to sort them.
    slicer.bundle(
        &key,
        &p.file_names,
        Some(&p.callers_of(&checked.model, &key)),
    )
}

/// The inbound authorization bundle of one sidecar.
pub fn bundle_for(checked: &Checked, svc: &Service) -> AuthzBundle {
    let p = &checked.policies;
    let key = svc.key();
    let callers = p.callers_of(&checked.model, &key);
    mesh_policy::slice::bundle_for_callers(&p.model, &p.set, &key, &p.file_names, Some(&callers))
}

/// Evaluate an `explain` request with the destination sidecar's own bundle and authorizer.
pub fn explain_authz(
    checked: &Checked,
    caller: &Service,
    dest: &str,
    req: &mesh_artifact::SimpleRequest,
    route: &str,
    human: &mut String,
) -> serde_json::Value {
    let Some((ns, name)) = dest.split_once('/') else {
        return json!({"decision": "not evaluated", "policies": []});
    };
    let Some(dest_svc) = checked.model.service(ns, name) else {
        return json!({"decision": "not evaluated", "policies": []});
    };
    let bundle = bundle_for(checked, dest_svc);
    let authorizer = match Authorizer::new(&bundle) {
        Ok(a) => a,
        Err(e) => {
            let _ = writeln!(human, "  authz: not evaluated ({e})");
            return json!({"decision": "not evaluated", "policies": []});
        }
    };
    let mode = crate::lower::sidecar_info(&checked.model, dest_svc).authz_mode;
    let principal = crate::lower::spiffe_id(
        &checked.model.mesh.trust_domain,
        &caller.namespace,
        &caller.name,
    );
    // Each visible header with its value as the sidecar reads it: a name on several lines
    // has their values combined, in order (`RequestParts::header`).
    let visible: Vec<(&str, std::borrow::Cow<'_, str>)> = authorizer
        .context_headers()
        .iter()
        .filter_map(|h| Some((h.as_str(), req.header(h)?)))
        .collect();
    let headers: Vec<(&str, &str)> = visible.iter().map(|(n, v)| (*n, v.as_ref())).collect();
    // The method as sent: Cedar's action is `Action::"delete"` for `delete`, as at the sidecar.
    let ar = AuthzRequest {
        principal: &principal,
        service: dest,
        method: &req.method,
        path: &req.path,
        query: req.query.as_deref().unwrap_or(""),
        route,
        headers: &headers,
    };
    let d = authorizer.authorize(&ar, mode);
    let decision = d.decision.as_str();
    let mode_text = match mode {
        mesh_artifact::AuthzMode::Enforce => "enforce",
        mesh_artifact::AuthzMode::Audit => "audit",
    };
    let _ = write!(human, "  authz: {decision} ({mode_text} mode");
    if d.audited_deny {
        let _ = write!(human, ", would be denied: let through and counted");
    }
    let _ = writeln!(human, ")");
    if d.policies.is_empty() {
        let _ = writeln!(human, "    no policy permits it: denied by default");
    }
    for id in &d.policies {
        match bundle.policies.iter().find(|p| &p.id == id) {
            Some(p) => {
                let _ = writeln!(
                    human,
                    "    policy `{id}` ({}:{}:{})",
                    p.source.file, p.source.line, p.source.column
                );
            }
            None => {
                let _ = writeln!(human, "    policy `{id}`");
            }
        }
    }
    let mut v = json!({"decision": decision, "policies": d.policies});
    if d.audited_deny {
        v["audited_deny"] = json!(true);
    }
    v
}

/// `meshc schema --cedar DIR`.
pub fn print_cedar_schema(dir: &Path, opts: &LoadOptions, human: HumanOptions) -> ExitCode {
    let loaded = match crate::load_or_report(dir, opts, human) {
        Ok(l) => l,
        Err(code) => return code,
    };
    if crate::write_stdout(&mesh_policy::model::schema_text(&policy_model(
        &loaded.model,
    ))) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    }
}

#[allow(dead_code)]
fn loc_of(file: FileId, span: Span) -> Loc {
    Loc { file, span }
}
