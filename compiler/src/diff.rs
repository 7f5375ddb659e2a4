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
//!
//! The comparison streams: each sidecar's body is lowered (or read) on both sides, reduced to
//! what the diff needs (its identity, the destinations it reaches, whether its authorization
//! bundle changed, its policy changes, the rules it sees), and dropped, on every core. Only the
//! (caller, destination) pairs where reachability, the destination's bundle or the caller's
//! identity changed are evaluated, one destination at a time: its authorizer is built once per
//! side (once for both when the bundle is the same) and dropped after. Memory stays in
//! proportion to the rules and reachability of the mesh, not to its artifacts. `meshc diff`
//! checks (or indexes) both sides at the same time before comparing.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use mesh_artifact::{AuthzMode, Body, RouteTable, SourcePos};
use mesh_policy::{Authorizer, AuthzRequest};
use serde::Serialize;

use crate::render::{self, Format, HumanOptions};
use crate::{Checked, LoadOptions};

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

/// One side of a diff as loaded, before any body is produced: [`diff_inputs`] lowers (or reads)
/// each sidecar's body when it needs it and drops it after.
#[derive(Debug)]
pub enum Input {
    /// A checked mesh definition without errors.
    Checked(Box<Checked>),
    /// A `meshc build` output directory.
    Build(BuildDir),
}

/// A `meshc build` output: the artifact file of each service, as its index names them.
#[derive(Debug)]
pub struct BuildDir {
    dir: PathBuf,
    files: BTreeMap<String, String>,
}

impl BuildDir {
    /// Read and verify the artifact of `service`.
    fn body(&self, service: &str) -> Result<Option<Body>, String> {
        let Some(file) = self.files.get(service) else {
            return Ok(None);
        };
        let p = self.dir.join(file);
        let bytes = std::fs::read(&p).map_err(|x| format!("cannot read `{}`: {x}", p.display()))?;
        let a = mesh_artifact::decode(&bytes).map_err(|x| format!("`{}`: {x}", p.display()))?;
        Ok(Some(a.body))
    }
}

/// Load a side from a mesh definition directory (checked) or a `meshc build` output directory
/// (its index only; artifacts are read and verified when the diff reaches them).
pub fn load_input(path: &Path, opts: &LoadOptions) -> Result<Input, String> {
    let index = path.join(crate::build::INDEX_FILE);
    if index.is_file() {
        let text =
            std::fs::read(&index).map_err(|e| format!("cannot read `{}`: {e}", index.display()))?;
        let idx: mesh_artifact::Index = serde_json::from_slice(&text)
            .map_err(|e| format!("`{}` is not a meshc index: {e}", index.display()))?;
        let mut files = BTreeMap::new();
        for e in idx.artifacts {
            if e.file.contains(['/', '\\']) {
                return Err(format!(
                    "index names `{}`, outside the build directory",
                    e.file
                ));
            }
            files.insert(e.service, e.file);
        }
        return Ok(Input::Build(BuildDir {
            dir: path.to_path_buf(),
            files,
        }));
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
    Ok(Input::Checked(Box::new(checked)))
}

/// Load a side from a mesh definition directory or a `meshc build` output directory, with every
/// sidecar's body in memory.
pub fn load_side(path: &Path, opts: &LoadOptions) -> Result<Side, String> {
    match load_input(path, opts)? {
        Input::Checked(checked) => Ok(side_of(&checked)),
        Input::Build(build) => {
            let mut side = Side::default();
            for service in build.files.keys() {
                if let Some(body) = build.body(service)? {
                    side.bodies.insert(service.clone(), body);
                }
            }
            Ok(side)
        }
    }
}

/// The compiled side of a checked mesh, every body in memory (lowered on every core).
pub fn side_of(checked: &Checked) -> Side {
    let slicer = crate::policy::slicer(checked);
    let bodies = crate::par::map(&checked.model.services, crate::par::cpus(), |s| {
        (
            s.key(),
            crate::lower::lower_sidecar_with(checked, &slicer, s),
        )
    });
    Side {
        bodies: bodies.into_iter().collect(),
    }
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

/// Route, port, rule.
type RuleKey = (String, u16, u32);

/// The rules of one destination service, from every caller's artifact.
type Views = BTreeMap<RuleKey, RuleView>;

fn match_text(e: &mesh_artifact::RouteEntry) -> String {
    let mut m = match &e.path {
        mesh_artifact::PathMatch::Exact(p) => format!("path = {p}"),
        mesh_artifact::PathMatch::PathPrefix(p) => format!("path prefix {p}"),
        mesh_artifact::PathMatch::RegularExpression(p) => format!("path ~ {p}"),
    };
    if let Some(me) = &e.method {
        let _ = write!(m, ", method {me}");
    }
    for (what, list) in [("header", &e.headers), ("query", &e.query)] {
        for v in list {
            let op = if v.kind == mesh_artifact::MatchKind::Exact {
                "="
            } else {
                "~"
            };
            let _ = write!(m, ", {what} {} {op} {}", v.name, v.value);
        }
    }
    m
}

/// Add the rules of one route table to `out`: the first view of a rule wins, matches add up.
fn rule_views(body: &Body, table: &RouteTable, port: u16, out: &mut Views) {
    for e in &table.entries {
        let Some(a) = table.actions.get(e.action as usize) else {
            continue;
        };
        let m = match_text(e);
        let view = out
            .entry((e.route.clone(), port, e.rule))
            .or_insert_with(|| {
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
                RuleView {
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
                }
            });
        view.matches.insert(m);
    }
}

/// Merge the views of later callers into those of earlier ones, keeping the first view of each
/// rule and every match.
fn merge_views(into: &mut Views, from: Views) {
    if into.is_empty() {
        *into = from;
        return;
    }
    for (k, v) in from {
        match into.entry(k) {
            std::collections::btree_map::Entry::Vacant(e) => {
                e.insert(v);
            }
            std::collections::btree_map::Entry::Occupied(mut e) => {
                e.get_mut().matches.extend(v.matches);
            }
        }
    }
}

/// Where one side's bodies come from.
enum Src<'a> {
    /// Already in memory.
    Bodies(&'a BTreeMap<String, Body>),
    /// Lowered from a checked mesh when asked for.
    Lowered(Box<Lowering<'a>>),
    /// Read from a build output when asked for.
    Build(&'a BuildDir),
}

struct Lowering<'a> {
    checked: &'a Checked,
    slicer: mesh_policy::Slicer<'a>,
    /// Service key to service; a later duplicate wins, as when collecting bodies by key.
    services: BTreeMap<String, &'a crate::model::Service>,
}

impl<'a> Src<'a> {
    fn lowered(checked: &'a Checked) -> Self {
        Src::Lowered(Box::new(Lowering {
            checked,
            slicer: crate::policy::slicer(checked),
            services: checked
                .model
                .services
                .iter()
                .map(|s| (s.key(), s))
                .collect(),
        }))
    }

    fn of(input: &'a Input) -> Self {
        match input {
            Input::Checked(c) => Src::lowered(c),
            Input::Build(b) => Src::Build(b),
        }
    }

    fn keys(&self) -> Box<dyn Iterator<Item = &str> + '_> {
        match self {
            Src::Bodies(b) => Box::new(b.keys().map(String::as_str)),
            Src::Lowered(l) => Box::new(l.services.keys().map(String::as_str)),
            Src::Build(b) => Box::new(b.files.keys().map(String::as_str)),
        }
    }

    /// The authorization bundle and mode of `key`'s sidecar, as in its body.
    fn authz(&self, key: &str) -> Result<Option<Authz>, String> {
        Ok(match self {
            // The body's bundle and mode, without lowering its routes.
            Src::Lowered(l) => l.services.get(key).map(|s| {
                Authz::new(
                    &crate::policy::bundle_with(l.checked, &l.slicer, s),
                    crate::lower::sidecar_info(&l.checked.model, s).authz_mode,
                )
            }),
            _ => self
                .body(key)?
                .map(|b| Authz::new(&b.authz, b.sidecar.authz_mode)),
        })
    }

    fn body(&self, key: &str) -> Result<Option<Cow<'_, Body>>, String> {
        Ok(match self {
            Src::Bodies(b) => b.get(key).map(Cow::Borrowed),
            Src::Lowered(l) => l
                .services
                .get(key)
                .map(|s| Cow::Owned(crate::lower::lower_sidecar_with(l.checked, &l.slicer, s))),
            Src::Build(b) => b.body(key)?.map(Cow::Owned),
        })
    }
}

/// What the diff keeps of one service's two bodies (index 0: old, 1: new).
#[derive(Debug, Default)]
struct Row {
    /// The sidecar's identity; `None` where the side has no body for the service.
    identity: [Option<String>; 2],
    /// Same authorization bundle and mode on both sides (or no body on either).
    authz_same: bool,
    /// Destinations the sidecar reaches, as indexes into the diff's service names, sorted.
    dests: [Vec<u32>; 2],
    /// Destinations that are not a service of either side (only in hand-made build outputs).
    unknown: [Vec<String>; 2],
    policies: Vec<PolicyChange>,
}

/// What one chunk of services contributes: their rows, and the rules they see per destination.
struct Scanned {
    rows: Vec<Row>,
    views: BTreeMap<u32, [Views; 2]>,
}

/// Services per unit of parallel work.
const CHUNK: usize = 4;

/// Scan `chunks` on `threads` workers while the calling thread hands each result to `merge`, in
/// chunk order, as soon as it and every earlier one are in: merging overlaps scanning, and a
/// scanned chunk's memory is freed as it is merged. Returns the first error in chunk order.
fn scan_all(
    srcs: [&Src<'_>; 2],
    names: &[&str],
    chunks: &[Range<usize>],
    threads: usize,
    mut merge: impl FnMut(Scanned),
) -> Result<(), String> {
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let work = |send: &mut dyn FnMut(usize, Result<Scanned, String>) -> bool| {
        while !failed.load(Ordering::Relaxed) {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(r) = chunks.get(i) else { break };
            let scanned = scan(srcs, names, r.clone());
            if scanned.is_err() {
                failed.store(true, Ordering::Relaxed);
            }
            if !send(i, scanned) {
                break;
            }
        }
    };
    let mut first_error = None;
    let mut pending: BTreeMap<usize, Result<Scanned, String>> = BTreeMap::new();
    let mut wanted = 0;
    let mut take = |i: usize, r: Result<Scanned, String>| {
        pending.insert(i, r);
        while let Some(r) = pending.remove(&wanted) {
            wanted += 1;
            match r {
                Ok(s) if first_error.is_none() => merge(s),
                Ok(_) => {}
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
    };
    std::thread::scope(|s| {
        let (tx, rx) = std::sync::mpsc::sync_channel(threads.max(1) * 4);
        let mut spawned = 0;
        for _ in 0..threads.max(1) {
            let tx = tx.clone();
            let work = &work;
            let started = std::thread::Builder::new()
                .stack_size(crate::par::WORKER_STACK)
                .spawn_scoped(s, move || work(&mut |i, r| tx.send((i, r)).is_ok()));
            if started.is_ok() {
                spawned += 1;
            }
        }
        drop(tx);
        for (i, r) in rx {
            take(i, r);
        }
        if spawned == 0 {
            // No thread could be started: scan here.
            work(&mut |i, r| {
                take(i, r);
                true
            });
        }
    });
    first_error.map_or(Ok(()), Err)
}

fn scan(srcs: [&Src<'_>; 2], names: &[&str], range: Range<usize>) -> Result<Scanned, String> {
    let mut out = Scanned {
        rows: Vec::with_capacity(range.len()),
        views: BTreeMap::new(),
    };
    for i in range {
        let Some(&key) = names.get(i) else { break };
        let bodies = [srcs[0].body(key)?, srcs[1].body(key)?];
        let mut row = Row::default();
        let mut pols: [BTreeMap<&str, (&str, &SourcePos)>; 2] = Default::default();
        for (k, body) in bodies.iter().enumerate() {
            let Some(body) = body else { continue };
            row.identity[k] = Some(body.sidecar.identity.clone());
            for d in &body.destinations {
                if let Ok(id) = names.binary_search(&d.service.as_str()) {
                    let id = u32::try_from(id).unwrap_or(u32::MAX);
                    let views = &mut out.views.entry(id).or_default()[k];
                    for p in &d.ports {
                        if let Some(t) = &p.routes {
                            rule_views(body, t, p.port, views);
                        }
                    }
                }
            }
            // Access follows every service a request can reach, route backends included.
            for service in body.reached_services() {
                match names.binary_search(&service) {
                    Ok(id) => row.dests[k].push(u32::try_from(id).unwrap_or(u32::MAX)),
                    Err(_) => row.unknown[k].push(service.to_string()),
                }
            }
            row.dests[k].sort_unstable();
            row.dests[k].dedup();
            pols[k] = body
                .authz
                .policies
                .iter()
                .map(|p| (p.id.as_str(), (p.text.as_str(), &p.source)))
                .collect();
        }
        let [ob, nb] = &bodies;
        row.authz_same = ob.as_ref().map(|b| (&b.authz, b.sidecar.authz_mode))
            == nb.as_ref().map(|b| (&b.authz, b.sidecar.authz_mode));
        let [op, np] = &pols;
        let ids: BTreeSet<&str> = op.keys().chain(np.keys()).copied().collect();
        for id in ids {
            let change = match (op.get(id), np.get(id)) {
                (None, Some((_, s))) => Some(("added", s)),
                (Some((_, s)), None) => Some(("removed", s)),
                (Some((a, _)), Some((b, s))) if a != b => Some(("changed", s)),
                _ => None,
            };
            if let Some((c, s)) = change {
                row.policies.push(PolicyChange {
                    id: id.to_string(),
                    change: c.to_string(),
                    source: Some((*s).clone()),
                });
            }
        }
        out.rows.push(row);
    }
    Ok(out)
}

/// A destination's authorization on one side.
struct Authz {
    /// `None` where the bundle does not load: requests are then shown as allowed.
    authorizer: Option<Authorizer>,
    mode: AuthzMode,
    conditional: bool,
}

impl Authz {
    fn new(bundle: &mesh_artifact::AuthzBundle, mode: AuthzMode) -> Self {
        Authz {
            authorizer: Authorizer::new(bundle).ok(),
            mode,
            conditional: bundle.policies.iter().any(|p| p.text.contains("context")),
        }
    }
}

struct Evaluated {
    effective: &'static str,
    policies: Vec<String>,
    conditional: bool,
}

/// The decision on one side for `caller` calling `dest`, whose authorization there is `authz`
/// (`None`: no body for `dest` on this side).
fn evaluate(
    reachable: bool,
    authz: Option<&Authz>,
    principal: Option<&str>,
    dest: &str,
    method: &str,
) -> Evaluated {
    if !reachable {
        return Evaluated {
            effective: "unreachable",
            policies: Vec::new(),
            conditional: false,
        };
    }
    let (
        Some(Authz {
            authorizer: Some(a),
            mode,
            conditional,
        }),
        Some(principal),
    ) = (authz, principal)
    else {
        return Evaluated {
            effective: "allow",
            policies: Vec::new(),
            conditional: false,
        };
    };
    let req = AuthzRequest {
        principal,
        service: dest,
        method,
        path: "/",
        query: "",
        route: "",
        headers: &[],
    };
    let d = a.authorize(&req, AuthzMode::Enforce);
    let effective = match (d.decision, mode) {
        (mesh_policy::Decision::Allow, _) => "allow",
        (mesh_policy::Decision::Deny, AuthzMode::Audit) => "audit",
        (mesh_policy::Decision::Deny, AuthzMode::Enforce) => "deny",
    };
    Evaluated {
        effective,
        policies: d.policies,
        conditional: *conditional,
    }
}

/// Whether a request gets through: allowed, or denied but let through by audit mode.
fn passes(effective: &str) -> bool {
    matches!(effective, "allow" | "audit")
}

/// Before, after, policies before, policies after, conditional.
type GroupKey = (&'static str, &'static str, Vec<String>, Vec<String>, bool);

/// The access changes of every caller in `callers` towards destination `dest`.
fn access_to(
    srcs: [&Src<'_>; 2],
    rows: &[Row],
    names: &[&str],
    dest: u32,
    callers: &[u32],
) -> Result<Vec<AccessChange>, String> {
    let Some(&dest_name) = names.get(dest as usize) else {
        return Ok(Vec::new());
    };
    let reaches = |c: u32, k: usize| {
        rows.get(c as usize)
            .is_some_and(|r| r.dests[k].binary_search(&dest).is_ok())
    };
    let drow = rows.get(dest as usize);
    // Build the destination's authorizer only on the sides some caller reaches it, and once
    // when the bundle is the same on both.
    let mut built: [Option<Authz>; 2] = [None, None];
    let mut shared = false;
    let need = [0, 1].map(|k| {
        drow.is_some_and(|r| r.identity[k].is_some()) && callers.iter().any(|&c| reaches(c, k))
    });
    if need[0] && need[1] && drow.is_some_and(|r| r.authz_same) {
        built[0] = srcs[0].authz(dest_name)?;
        shared = true;
    } else {
        for k in 0..2 {
            if need[k] {
                built[k] = srcs[k].authz(dest_name)?;
            }
        }
    }
    let authz = [
        built[0].as_ref(),
        if shared {
            built[0].as_ref()
        } else {
            built[1].as_ref()
        },
    ];
    let mut out = Vec::new();
    for &c in callers {
        let (Some(crow), Some(&caller_name)) = (rows.get(c as usize), names.get(c as usize)) else {
            continue;
        };
        let reach = [reaches(c, 0), reaches(c, 1)];
        // Group methods with the same before/after.
        let mut groups: BTreeMap<GroupKey, Vec<String>> = BTreeMap::new();
        for m in METHODS {
            let [b, a] = [0, 1].map(|k| {
                evaluate(
                    reach[k],
                    authz[k],
                    crow.identity[k].as_deref(),
                    dest_name,
                    m,
                )
            });
            // Only a change in whether the request gets through counts: `unreachable` and
            // `deny` both stop it, `audit` and `allow` both let it through.
            if passes(b.effective) == passes(a.effective) {
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
            let kind = if passes(after) {
                AccessKind::Widening
            } else {
                AccessKind::Narrowing
            };
            out.push(AccessChange {
                caller: caller_name.to_string(),
                service: dest_name.to_string(),
                methods,
                before: before.to_string(),
                after: after.to_string(),
                kind,
                conditional,
                policies_before: pb,
                policies_after: pa,
            });
        }
    }
    Ok(out)
}

/// Compare two sides.
pub fn diff(old: &Side, new: &Side) -> MeshDiff {
    // Bodies in memory: nothing can fail.
    compare([&Src::Bodies(&old.bodies), &Src::Bodies(&new.bodies)]).unwrap_or_default()
}

/// Compare two checked meshes, lowering each sidecar's body when it is needed.
pub fn diff_checked(old: &Checked, new: &Checked) -> MeshDiff {
    // Lowering cannot fail.
    compare([&Src::lowered(old), &Src::lowered(new)]).unwrap_or_default()
}

/// Compare two loaded inputs; fails where a build output's artifact cannot be read or verified.
pub fn diff_inputs(old: &Input, new: &Input) -> Result<MeshDiff, String> {
    compare([&Src::of(old), &Src::of(new)])
}

fn compare(srcs: [&Src<'_>; 2]) -> Result<MeshDiff, String> {
    let mut out = MeshDiff {
        version: 1,
        ..MeshDiff::default()
    };
    let threads = crate::par::cpus();
    let known: BTreeSet<&str> = srcs[0].keys().chain(srcs[1].keys()).collect();
    let known: Vec<&str> = known.into_iter().collect();
    let n = known.len();

    // 1. Every service on both sides, a few at a time: bodies are dropped as soon as they are
    //    scanned.
    let chunks: Vec<Range<usize>> = (0..n)
        .step_by(CHUNK)
        .map(|s| s..(s + CHUNK).min(n))
        .collect();
    let mut rows: Vec<Row> = Vec::with_capacity(n);
    let mut views: Vec<[Views; 2]> = (0..n).map(|_| Default::default()).collect();
    scan_all(srcs, &known, &chunks, threads, |scanned| {
        rows.extend(scanned.rows);
        for (d, [o, nw]) in scanned.views {
            if let Some([vo, vn]) = views.get_mut(d as usize) {
                merge_views(vo, o);
                merge_views(vn, nw);
            }
        }
    })?;

    // Destinations that are no service of either side get indexes after the services.
    let unknown: BTreeSet<&str> = rows
        .iter()
        .flat_map(|r| r.unknown.iter().flatten().map(String::as_str))
        .collect();
    let unknown: Vec<String> = unknown.into_iter().map(str::to_string).collect();
    let mut names = known.clone();
    names.extend(unknown.iter().map(String::as_str));
    if !unknown.is_empty() {
        for row in &mut rows {
            for k in 0..2 {
                for u in std::mem::take(&mut row.unknown[k]) {
                    if let Ok(p) = unknown.binary_search(&u) {
                        row.dests[k].push(u32::try_from(n + p).unwrap_or(u32::MAX));
                    }
                }
                row.dests[k].sort_unstable();
                row.dests[k].dedup();
            }
        }
    }

    // 2. Access: only pairs where something that decides access changed, per destination.
    let mut callers_of: Vec<Vec<u32>> = vec![Vec::new(); names.len()];
    for (c, row) in rows.iter().enumerate() {
        let c = u32::try_from(c).unwrap_or(u32::MAX);
        let same_caller = row.identity[0] == row.identity[1];
        let (o, nw) = (&row.dests[0], &row.dests[1]);
        let (mut i, mut j) = (0, 0);
        while i < o.len() || j < nw.len() {
            let (d, in_old, in_new) = match (o.get(i), nw.get(j)) {
                (Some(&a), Some(&b)) if a == b => {
                    i += 1;
                    j += 1;
                    (a, true, true)
                }
                (Some(&a), Some(&b)) if a < b => {
                    i += 1;
                    (a, true, false)
                }
                (Some(&a), None) => {
                    i += 1;
                    (a, true, false)
                }
                (_, Some(&b)) => {
                    j += 1;
                    (b, false, true)
                }
                (None, None) => break,
            };
            let same_authz = rows.get(d as usize).is_none_or(|r| r.authz_same);
            if !(in_old == in_new && same_authz && same_caller) {
                if let Some(list) = callers_of.get_mut(d as usize) {
                    list.push(c);
                }
            }
        }
    }
    let work: Vec<(u32, Vec<u32>)> = callers_of
        .into_iter()
        .enumerate()
        .filter(|(_, c)| !c.is_empty())
        .map(|(d, c)| (u32::try_from(d).unwrap_or(u32::MAX), c))
        .collect();
    for changes in crate::par::map(&work, threads, |(d, callers)| {
        access_to(srcs, &rows, &names, *d, callers)
    }) {
        out.access.extend(changes?);
    }
    for a in &out.access {
        match a.kind {
            AccessKind::Widening => out.summary.access_widened += 1,
            AccessKind::Narrowing => out.summary.access_narrowed += 1,
        }
    }
    // Pairs never tie on (service, caller); within a pair, changes stay in group order.
    out.access.sort_by(|a, b| {
        (a.kind != AccessKind::Widening, &a.service, &a.caller).cmp(&(
            b.kind != AccessKind::Widening,
            &b.service,
            &b.caller,
        ))
    });

    // 3. Services, routes, policies.
    for (i, (row, [o, nw])) in rows.iter_mut().zip(views).enumerate() {
        let Some(&svc) = known.get(i) else { break };
        let mut sc = ServiceChanges {
            service: svc.to_string(),
            added: row.identity[0].is_none(),
            removed: row.identity[1].is_none(),
            ..ServiceChanges::default()
        };
        route_changes(&o, &nw, &mut sc, &mut out.summary);
        sc.policies = std::mem::take(&mut row.policies);
        out.summary.policies_changed += sc.policies.len();
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
    Ok(out)
}

fn route_changes(o: &Views, n: &Views, sc: &mut ServiceChanges, summary: &mut Summary) {
    let keys: BTreeSet<&RuleKey> = o.keys().chain(n.keys()).collect();
    for key in keys {
        let (route, port, rule) = key.clone();
        match (o.get(key), n.get(key)) {
            (None, Some(v)) | (Some(v), None) => {
                let added = o.get(key).is_none();
                if added {
                    summary.rules_added += 1;
                } else {
                    summary.rules_removed += 1;
                }
                sc.routes.push(RuleChange {
                    route,
                    port,
                    rule,
                    change: if added { "added" } else { "removed" }.into(),
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
                    summary.rules_changed += 1;
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

/// Load both sides, at the same time.
fn load_both(old: &Path, new: &Path, opts: &LoadOptions) -> Result<(Input, Input), String> {
    let (a, b) = std::thread::scope(|s| {
        let other = std::thread::Builder::new()
            .name("meshc-diff-new".into())
            .spawn_scoped(s, || load_input(new, opts));
        let a = load_input(old, opts);
        let b = match other {
            Ok(h) => match h.join() {
                Ok(b) => b,
                Err(panic) => std::panic::resume_unwind(panic),
            },
            Err(_) => load_input(new, opts),
        };
        (a, b)
    });
    Ok((a?, b?))
}

/// The `meshc diff` command.
pub fn run(
    old: &Path,
    new: &Path,
    opts: &LoadOptions,
    format: DiffFormat,
    exit_code: bool,
) -> ExitCode {
    let d = match load_both(old, new, opts).and_then(|(a, b)| {
        let d = diff_inputs(&a, &b);
        // The process ends right after printing.
        crate::drop_at_exit((a, b));
        d
    }) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
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
