//! `meshc diff OLD NEW`: what a change does to the compiled mesh, access first.
//!
//! Both sides are reduced to their compiled artifacts (a mesh definition is checked and lowered;
//! a `build` output is decoded and verified), so the diff shows what the proxies will do, not how
//! the YAML moved. Three parts:
//! - access: for every caller and destination it can reach (egress) on either side, and every
//!   HTTP method, the effective decision before and after, evaluated by the proxy's own
//!   authorizer; each change is `widening` or `narrowing`, and `conditional` when a policy that
//!   applies depends on request context (then the decision shown is for a request with an empty
//!   context, and other requests may differ);
//! - routes: per destination service, rules added, removed and changed (matches, backends and
//!   weights, timeouts, retries, filters);
//! - policies: per destination service, policy ids added, removed and changed.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;
use std::process::ExitCode;

use mesh_artifact::{AuthzMode, Body, RouteTable, SourcePos};
use mesh_policy::{Authorizer, AuthzRequest};
use serde::Serialize;

use crate::LoadOptions;
use crate::render::{self, Format, HumanOptions};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum DiffFormat {
    Human,
    Markdown,
    Json,
}

/// GitHub's limit on a comment's length.
pub const GITHUB_COMMENT_LIMIT: usize = 65_536;

/// Methods evaluated by the access analysis.
pub const METHODS: &[&str] = &["GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE"];

/// One side of a diff: every sidecar's body, by service.
#[derive(Debug, Default)]
pub struct Side {
    pub bodies: BTreeMap<String, Body>,
}

/// Load a side from a mesh definition directory or a `meshc build` output directory.
pub fn load_side(path: &Path, opts: &LoadOptions) -> Result<Side, String> {
    let index = path.join(crate::build::INDEX_FILE);
    if index.is_file() {
        let text =
            std::fs::read(&index).map_err(|e| format!("cannot read `{}`: {e}", index.display()))?;
        let idx: mesh_artifact::Index = serde_json::from_slice(&text)
            .map_err(|e| format!("`{}` is not a meshc index: {e}", index.display()))?;
        let mut side = Side::default();
        for e in idx.artifacts {
            if e.file.contains(['/', '\\']) {
                return Err(format!(
                    "index names `{}`, outside the build directory",
                    e.file
                ));
            }
            let p = path.join(&e.file);
            let bytes =
                std::fs::read(&p).map_err(|x| format!("cannot read `{}`: {x}", p.display()))?;
            let a = mesh_artifact::decode(&bytes).map_err(|x| format!("`{}`: {x}", p.display()))?;
            side.bodies.insert(e.service, a.body);
        }
        return Ok(side);
    }
    let checked = crate::check_dir(path, opts);
    if checked.io_error || checked.has_errors() {
        let errors: Vec<_> = checked
            .diagnostics
            .iter()
            .filter(|d| d.severity == crate::Severity::Error)
            .cloned()
            .collect();
        let text = render::render(
            Format::Concise,
            &checked.sources,
            &errors,
            HumanOptions::default(),
        );
        return Err(format!("`{}` has errors:\n{text}", path.display()));
    }
    Ok(side_of(&checked))
}

/// The compiled side of a checked mesh.
pub fn side_of(checked: &crate::Checked) -> Side {
    let slicer = crate::policy::slicer(checked);
    let bodies = checked
        .model
        .services
        .iter()
        .map(|s| {
            (
                s.key(),
                crate::lower::lower_sidecar_with(checked, &slicer, s),
            )
        })
        .collect();
    Side { bodies }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AccessKind {
    Widening,
    Narrowing,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AccessChange {
    pub caller: String,
    pub service: String,
    pub methods: Vec<String>,
    /// `allow`, `deny`, `unreachable` (not in egress) or `audit` (denied but let through).
    pub before: String,
    pub after: String,
    pub kind: AccessKind,
    pub conditional: bool,
    pub policies_before: Vec<String>,
    pub policies_after: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RuleChange {
    pub route: String,
    pub port: u16,
    pub rule: u32,
    /// `added`, `removed` or `changed`.
    pub change: String,
    /// What changed: `matches`, `backends`, `timeouts`, `retry`, `filters`, `status`.
    pub fields: Vec<String>,
    pub detail: Vec<String>,
    pub source: Option<SourcePos>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PolicyChange {
    pub id: String,
    pub change: String,
    pub source: Option<SourcePos>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ServiceChanges {
    pub service: String,
    pub added: bool,
    pub removed: bool,
    pub routes: Vec<RuleChange>,
    pub policies: Vec<PolicyChange>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub services_added: usize,
    pub services_removed: usize,
    pub services_changed: usize,
    pub rules_added: usize,
    pub rules_removed: usize,
    pub rules_changed: usize,
    pub policies_changed: usize,
    pub access_widened: usize,
    pub access_narrowed: usize,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct MeshDiff {
    pub version: u32,
    pub summary: Summary,
    pub access: Vec<AccessChange>,
    pub services: Vec<ServiceChanges>,
}

impl MeshDiff {
    pub fn is_empty(&self) -> bool {
        self.access.is_empty() && self.services.is_empty()
    }
}

/// A rule as the proxies see it, in a form that compares and prints.
#[derive(Clone, Debug, PartialEq, Eq)]
struct RuleView {
    matches: BTreeSet<String>,
    backends: String,
    timeouts: String,
    retry: String,
    filters: String,
    status: String,
    source: SourcePos,
}

fn rule_views(
    body: &Body,
    table: &RouteTable,
    port: u16,
    out: &mut BTreeMap<(String, u16, u32), RuleView>,
) {
    for e in &table.entries {
        let Some(a) = table.actions.get(e.action as usize) else {
            continue;
        };
        let mut m = match &e.path {
            mesh_artifact::PathMatch::Exact(p) => format!("path = {p}"),
            mesh_artifact::PathMatch::PathPrefix(p) => format!("path prefix {p}"),
            mesh_artifact::PathMatch::RegularExpression(p) => format!("path ~ {p}"),
        };
        if let Some(me) = &e.method {
            let _ = write!(m, ", method {me}");
        }
        for h in &e.headers {
            let op = if h.kind == mesh_artifact::MatchKind::Exact {
                "="
            } else {
                "~"
            };
            let _ = write!(m, ", header {} {op} {}", h.name, h.value);
        }
        for q in &e.query {
            let op = if q.kind == mesh_artifact::MatchKind::Exact {
                "="
            } else {
                "~"
            };
            let _ = write!(m, ", query {} {op} {}", q.name, q.value);
        }
        let backends: Vec<String> = a
            .backends
            .iter()
            .map(|b| {
                let c = body.clusters.get(&b.cluster);
                let name = c.map_or(b.cluster.clone(), |c| match &c.version {
                    Some(v) => format!("{}:{} ({v})", c.service, c.port),
                    None => format!("{}:{}", c.service, c.port),
                });
                format!("{name} weight {}", b.weight)
            })
            .collect();
        let view = out
            .entry((e.route.clone(), port, e.rule))
            .or_insert_with(|| RuleView {
                matches: BTreeSet::new(),
                backends: backends.join(", "),
                timeouts: serde_json::to_string(&a.timeouts).unwrap_or_default(),
                retry: serde_json::to_string(&a.retry).unwrap_or_default(),
                filters: serde_json::to_string(&(
                    &a.request_headers,
                    &a.response_headers,
                    &a.redirect,
                    &a.rewrite,
                ))
                .unwrap_or_default(),
                status: a.fixed_status.map(|s| s.to_string()).unwrap_or_default(),
                source: e.source.clone(),
            });
        view.matches.insert(m);
    }
}

/// Per destination service: its rules, from every caller's artifact (consumer routes included).
fn routes_by_service(side: &Side) -> BTreeMap<String, BTreeMap<(String, u16, u32), RuleView>> {
    let mut out: BTreeMap<String, BTreeMap<(String, u16, u32), RuleView>> = BTreeMap::new();
    for body in side.bodies.values() {
        for d in &body.destinations {
            for p in &d.ports {
                if let Some(t) = &p.routes {
                    rule_views(body, t, p.port, out.entry(d.service.clone()).or_default());
                }
            }
        }
    }
    out
}

fn policies_by_service(side: &Side) -> BTreeMap<String, BTreeMap<String, (String, SourcePos)>> {
    side.bodies
        .iter()
        .map(|(svc, b)| {
            (
                svc.clone(),
                b.authz
                    .policies
                    .iter()
                    .map(|p| (p.id.clone(), (p.text.clone(), p.source.clone())))
                    .collect(),
            )
        })
        .collect()
}

fn reachable(side: &Side, caller: &str, dest: &str) -> bool {
    side.bodies
        .get(caller)
        .is_some_and(|b| b.destinations.iter().any(|d| d.service == dest))
}

struct Evaluated {
    effective: String,
    policies: Vec<String>,
    conditional: bool,
}

fn evaluate(
    side: &Side,
    authz: &BTreeMap<String, Option<Authorizer>>,
    caller: &str,
    dest: &str,
    method: &str,
) -> Evaluated {
    if !reachable(side, caller, dest) {
        return Evaluated {
            effective: "unreachable".to_string(),
            policies: Vec::new(),
            conditional: false,
        };
    }
    let (Some(body), Some(Some(a)), Some(caller_body)) = (
        side.bodies.get(dest),
        authz.get(dest),
        side.bodies.get(caller),
    ) else {
        return Evaluated {
            effective: "allow".to_string(),
            policies: Vec::new(),
            conditional: false,
        };
    };
    let req = AuthzRequest {
        principal: &caller_body.sidecar.identity,
        service: dest,
        method,
        path: "/",
        query: "",
        route: "",
        headers: &[],
    };
    let d = a.authorize(&req, AuthzMode::Enforce);
    let conditional = body
        .authz
        .policies
        .iter()
        .any(|p| p.text.contains("context"));
    let effective = match (d.decision, body.sidecar.authz_mode) {
        (mesh_policy::Decision::Allow, _) => "allow",
        (mesh_policy::Decision::Deny, AuthzMode::Audit) => "audit",
        (mesh_policy::Decision::Deny, AuthzMode::Enforce) => "deny",
    };
    Evaluated {
        effective: effective.to_string(),
        policies: d.policies,
        conditional,
    }
}

/// Whether a request gets through: allowed, or denied but let through by audit mode.
fn passes(effective: &str) -> bool {
    matches!(effective, "allow" | "audit")
}

fn authorizers(side: &Side) -> BTreeMap<String, Option<Authorizer>> {
    side.bodies
        .iter()
        .map(|(k, b)| (k.clone(), Authorizer::new(&b.authz).ok()))
        .collect()
}

/// Before, after, policies before, policies after, conditional.
type GroupKey = (String, String, Vec<String>, Vec<String>, bool);

/// Compare two sides.
pub fn diff(old: &Side, new: &Side) -> MeshDiff {
    let mut out = MeshDiff {
        version: 1,
        ..MeshDiff::default()
    };
    // Access: only pairs where something that decides access changed.
    let old_authz = authorizers(old);
    let new_authz = authorizers(new);
    let callers: BTreeSet<&String> = old.bodies.keys().chain(new.bodies.keys()).collect();
    for caller in callers {
        let mut dests: BTreeSet<&str> = BTreeSet::new();
        for side in [old, new] {
            if let Some(b) = side.bodies.get(caller.as_str()) {
                dests.extend(b.destinations.iter().map(|d| d.service.as_str()));
            }
        }
        for dest in dests {
            let same_reach = reachable(old, caller, dest) == reachable(new, caller, dest);
            let same_authz = old
                .bodies
                .get(dest)
                .map(|b| (&b.authz, b.sidecar.authz_mode))
                == new
                    .bodies
                    .get(dest)
                    .map(|b| (&b.authz, b.sidecar.authz_mode));
            let same_caller = old.bodies.get(caller.as_str()).map(|b| &b.sidecar.identity)
                == new.bodies.get(caller.as_str()).map(|b| &b.sidecar.identity);
            if same_reach && same_authz && same_caller {
                continue;
            }
            // Group methods with the same before/after.
            let mut groups: BTreeMap<GroupKey, Vec<String>> = BTreeMap::new();
            for m in METHODS {
                let b = evaluate(old, &old_authz, caller, dest, m);
                let a = evaluate(new, &new_authz, caller, dest, m);
                // Only a change in whether the request gets through counts: `unreachable` and
                // `deny` both stop it, `audit` and `allow` both let it through.
                if passes(&b.effective) == passes(&a.effective) {
                    continue;
                }
                let conditional = b.conditional || a.conditional;
                groups
                    .entry((
                        b.effective,
                        a.effective,
                        b.policies,
                        a.policies,
                        conditional,
                    ))
                    .or_default()
                    .push((*m).to_string());
            }
            for ((before, after, pb, pa, conditional), methods) in groups {
                let kind = if passes(&after) {
                    AccessKind::Widening
                } else {
                    AccessKind::Narrowing
                };
                match kind {
                    AccessKind::Widening => out.summary.access_widened += 1,
                    AccessKind::Narrowing => out.summary.access_narrowed += 1,
                }
                out.access.push(AccessChange {
                    caller: caller.clone(),
                    service: dest.to_string(),
                    methods,
                    before,
                    after,
                    kind,
                    conditional,
                    policies_before: pb,
                    policies_after: pa,
                });
            }
        }
    }
    out.access.sort_by(|a, b| {
        (a.kind != AccessKind::Widening, &a.service, &a.caller).cmp(&(
            b.kind != AccessKind::Widening,
            &b.service,
            &b.caller,
        ))
    });
    // Services, routes, policies.
    let old_routes = routes_by_service(old);
    let new_routes = routes_by_service(new);
    let old_pol = policies_by_service(old);
    let new_pol = policies_by_service(new);
    let services: BTreeSet<&String> = old.bodies.keys().chain(new.bodies.keys()).collect();
    let empty_r = BTreeMap::new();
    let empty_p = BTreeMap::new();
    for svc in services {
        let mut sc = ServiceChanges {
            service: svc.clone(),
            added: !old.bodies.contains_key(svc.as_str()),
            removed: !new.bodies.contains_key(svc.as_str()),
            ..ServiceChanges::default()
        };
        let o = old_routes.get(svc.as_str()).unwrap_or(&empty_r);
        let n = new_routes.get(svc.as_str()).unwrap_or(&empty_r);
        let keys: BTreeSet<&(String, u16, u32)> = o.keys().chain(n.keys()).collect();
        for key in keys {
            let (route, port, rule) = key.clone();
            match (o.get(key), n.get(key)) {
                (None, Some(v)) => {
                    out.summary.rules_added += 1;
                    sc.routes.push(RuleChange {
                        route,
                        port,
                        rule,
                        change: "added".into(),
                        fields: Vec::new(),
                        detail: describe(v),
                        source: Some(v.source.clone()),
                    });
                }
                (Some(v), None) => {
                    out.summary.rules_removed += 1;
                    sc.routes.push(RuleChange {
                        route,
                        port,
                        rule,
                        change: "removed".into(),
                        fields: Vec::new(),
                        detail: describe(v),
                        source: Some(v.source.clone()),
                    });
                }
                (Some(a), Some(b)) => {
                    let mut fields = Vec::new();
                    let mut detail = Vec::new();
                    if a.matches != b.matches {
                        fields.push("matches".to_string());
                        for m in a.matches.difference(&b.matches) {
                            detail.push(format!("- match {m}"));
                        }
                        for m in b.matches.difference(&a.matches) {
                            detail.push(format!("+ match {m}"));
                        }
                    }
                    for (name, x, y) in [
                        ("backends", &a.backends, &b.backends),
                        ("timeouts", &a.timeouts, &b.timeouts),
                        ("retry", &a.retry, &b.retry),
                        ("filters", &a.filters, &b.filters),
                        ("status", &a.status, &b.status),
                    ] {
                        if x != y {
                            fields.push(name.to_string());
                            detail.push(format!("{name}: {x} -> {y}"));
                        }
                    }
                    if !fields.is_empty() {
                        out.summary.rules_changed += 1;
                        sc.routes.push(RuleChange {
                            route,
                            port,
                            rule,
                            change: "changed".into(),
                            fields,
                            detail,
                            source: Some(b.source.clone()),
                        });
                    }
                }
                (None, None) => {}
            }
        }
        let op = old_pol.get(svc.as_str()).unwrap_or(&empty_p);
        let np = new_pol.get(svc.as_str()).unwrap_or(&empty_p);
        let ids: BTreeSet<&String> = op.keys().chain(np.keys()).collect();
        for id in ids {
            let change = match (op.get(id.as_str()), np.get(id.as_str())) {
                (None, Some((_, s))) => Some(("added", s)),
                (Some((_, s)), None) => Some(("removed", s)),
                (Some((a, _)), Some((b, s))) if a != b => Some(("changed", s)),
                _ => None,
            };
            if let Some((c, s)) = change {
                out.summary.policies_changed += 1;
                sc.policies.push(PolicyChange {
                    id: id.clone(),
                    change: c.to_string(),
                    source: Some(s.clone()),
                });
            }
        }
        if sc.added {
            out.summary.services_added += 1;
        } else if sc.removed {
            out.summary.services_removed += 1;
        } else if !sc.routes.is_empty() || !sc.policies.is_empty() {
            out.summary.services_changed += 1;
        }
        if sc.added || sc.removed || !sc.routes.is_empty() || !sc.policies.is_empty() {
            out.services.push(sc);
        }
    }
    out
}

fn describe(v: &RuleView) -> Vec<String> {
    let mut d: Vec<String> = v.matches.iter().map(|m| format!("match {m}")).collect();
    if !v.backends.is_empty() {
        d.push(format!("backends: {}", v.backends));
    }
    if !v.status.is_empty() {
        d.push(format!("answers {}", v.status));
    }
    d
}

/// The one-line summary every format leads with.
pub fn summary_line(d: &MeshDiff) -> String {
    if d.is_empty() {
        return "no changes to the compiled mesh".to_string();
    }
    let s = &d.summary;
    let mut parts = Vec::new();
    if s.access_widened > 0 {
        parts.push(format!(
            "{} access change(s) widen access",
            s.access_widened
        ));
    }
    if s.access_narrowed > 0 {
        parts.push(format!("{} narrow access", s.access_narrowed));
    }
    parts.push(format!(
        "{} service(s) changed ({} added, {} removed)",
        s.services_changed + s.services_added + s.services_removed,
        s.services_added,
        s.services_removed
    ));
    parts.push(format!(
        "rules: {} added, {} removed, {} changed",
        s.rules_added, s.rules_removed, s.rules_changed
    ));
    parts.push(format!("{} policy change(s)", s.policies_changed));
    parts.join("; ")
}

fn access_line(a: &AccessChange) -> String {
    let cond = if a.conditional {
        " (conditional: depends on request context)"
    } else {
        ""
    };
    let by = |p: &[String]| {
        if p.is_empty() {
            "default".to_string()
        } else {
            p.join(", ")
        }
    };
    format!(
        "`{}` -> `{}` {}: {} -> {}{cond} (policies: {} -> {})",
        a.caller,
        a.service,
        a.methods.join(", "),
        a.before,
        a.after,
        by(&a.policies_before),
        by(&a.policies_after)
    )
}

fn pos(s: &Option<SourcePos>) -> String {
    s.as_ref()
        .map(|p| format!(" ({}:{}:{})", p.file, p.line, p.column))
        .unwrap_or_default()
}

pub fn human(d: &MeshDiff) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{}", summary_line(d));
    if !d.access.is_empty() {
        let _ = writeln!(out, "\naccess:");
        for a in &d.access {
            let flag = if a.kind == AccessKind::Widening {
                "WIDENS "
            } else {
                "narrows"
            };
            let _ = writeln!(out, "  {flag} {}", access_line(a));
        }
    }
    for s in &d.services {
        let state = if s.added {
            " (added)"
        } else if s.removed {
            " (removed)"
        } else {
            ""
        };
        let _ = writeln!(out, "\n{}{state}", s.service);
        for r in &s.routes {
            let _ = writeln!(
                out,
                "  rule {} of route `{}` port {} {}{}",
                r.rule,
                r.route,
                r.port,
                r.change,
                pos(&r.source)
            );
            for line in &r.detail {
                let _ = writeln!(out, "      {line}");
            }
        }
        for p in &s.policies {
            let _ = writeln!(out, "  policy `{}` {}{}", p.id, p.change, pos(&p.source));
        }
    }
    out
}

pub fn markdown(d: &MeshDiff) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "**meshc diff**: {}\n", summary_line(d));
    let widening: Vec<&AccessChange> = d
        .access
        .iter()
        .filter(|a| a.kind == AccessKind::Widening)
        .collect();
    if !widening.is_empty() {
        let _ = writeln!(out, "> [!CAUTION]\n> This change **widens access**:");
        for a in &widening {
            let _ = writeln!(out, "> - {}", access_line(a));
        }
        out.push('\n');
    }
    let narrowing: Vec<&AccessChange> = d
        .access
        .iter()
        .filter(|a| a.kind == AccessKind::Narrowing)
        .collect();
    if !narrowing.is_empty() {
        let _ = writeln!(
            out,
            "<details><summary>Access narrowed ({})</summary>\n",
            narrowing.len()
        );
        for a in narrowing {
            let _ = writeln!(out, "- {}", access_line(a));
        }
        let _ = writeln!(out, "\n</details>\n");
    }
    let mut body = String::new();
    let mut shown = 0;
    for s in &d.services {
        let mut sec = String::new();
        let state = if s.added {
            " (added)"
        } else if s.removed {
            " (removed)"
        } else {
            ""
        };
        let _ = writeln!(
            sec,
            "<details><summary><code>{}</code>{state}: {} rule change(s), {} policy change(s)</summary>\n",
            s.service,
            s.routes.len(),
            s.policies.len()
        );
        for r in &s.routes {
            let _ = writeln!(
                sec,
                "- rule {} of `{}` port {} **{}**{}",
                r.rule,
                r.route,
                r.port,
                r.change,
                pos(&r.source)
            );
            for line in &r.detail {
                let _ = writeln!(sec, "  - `{}`", line.replace('`', "'"));
            }
        }
        for p in &s.policies {
            let _ = writeln!(
                sec,
                "- policy `{}` **{}**{}",
                p.id,
                p.change,
                pos(&p.source)
            );
        }
        let _ = writeln!(sec, "\n</details>\n");
        // Keep room for the truncation note.
        if out.len() + body.len() + sec.len() > GITHUB_COMMENT_LIMIT - 400 {
            break;
        }
        body.push_str(&sec);
        shown += 1;
    }
    out.push_str(&body);
    if shown < d.services.len() {
        let _ = writeln!(
            out,
            "_Truncated: {} of {} changed services shown to stay under GitHub's comment limit; run `meshc diff --format json` for all._",
            shown,
            d.services.len()
        );
    }
    out
}

pub fn json(d: &MeshDiff) -> String {
    let mut s = serde_json::to_string_pretty(d).unwrap_or_default();
    s.push('\n');
    s
}

/// The `meshc diff` command.
pub fn run(
    old: &Path,
    new: &Path,
    opts: &LoadOptions,
    format: DiffFormat,
    exit_code: bool,
) -> ExitCode {
    let (a, b) = match (load_side(old, opts), load_side(new, opts)) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let d = diff(&a, &b);
    let text = match format {
        DiffFormat::Human => human(&d),
        DiffFormat::Markdown => markdown(&d),
        DiffFormat::Json => json(&d),
    };
    print!("{text}");
    if exit_code && !d.is_empty() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
