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
//!   weights, timeouts, retries, filters). Filters are named as in Gateway API and printed short
//!   (`RequestRedirect(scheme: https, status: 301)`), durations as Gateway API writes them
//!   (`10s`, `250ms`); a changed rule shows only what changed in it (`backend ... weight 80 ->
//!   60`, `+ filter URLRewrite(path: ReplacePrefixMatch /v2)`, `filter RequestRedirect: status
//!   301 -> 302`, `timeouts: request 5s -> 10s`);
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

/// A setting of a service's sidecar that changed (the mesh's mTLS mode, the application's port
/// or protocol, the authorization mode, what happens to encoded slashes in paths).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SettingChange {
    /// The setting as the mesh definition spells it: `mtls` (the `Mesh`'s), `app.port`,
    /// `app.ports`, `app.protocol`, `app.encodedSlashes`, `authorization.mode`.
    pub setting: String,
    pub before: String,
    pub after: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ServiceChanges {
    pub service: String,
    pub added: bool,
    pub removed: bool,
    pub routes: Vec<RuleChange>,
    pub policies: Vec<PolicyChange>,
    /// Sidecar settings that changed; left out of the JSON when none did.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub settings: Vec<SettingChange>,
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
    #[serde(skip_serializing_if = "is_zero")]
    pub settings_changed: usize,
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
    /// Each backend's service, port and version, and its weight, in the rule's order.
    backends: Vec<Setting>,
    timeouts: mesh_artifact::Timeouts,
    retry: Option<mesh_artifact::RetryPolicy>,
    /// The rule's filters, named as in Gateway API, in [`filter_views`] order.
    filters: Vec<FilterView>,
    status: Option<u16>,
    source: SourcePos,
}

/// One setting of a rule part: a key and its value, both as printed.
type Setting = (String, String);

/// A filter, named as in Gateway API, with its settings in short form.
#[derive(Clone, Debug, PartialEq, Eq)]
struct FilterView {
    name: &'static str,
    /// A header modifier: its settings are a list of operations (`set x-env: prod`, `remove
    /// x-debug`), printed with `; ` between them as header values may hold commas. Otherwise
    /// each setting is a field of the filter (`status: 301`), printed with `, `.
    list: bool,
    settings: Vec<Setting>,
}

impl FilterView {
    /// `RequestRedirect(scheme: https, status: 301)`.
    fn full(&self) -> String {
        let sep = if self.list { "; " } else { ", " };
        let items: Vec<String> = self.settings.iter().map(item).collect();
        format!("{}({})", self.name, items.join(sep))
    }
}

/// `key: value`, or `key` alone for a setting without value (`remove x-debug`).
fn item((k, v): &Setting) -> String {
    if v.is_empty() {
        k.clone()
    } else {
        format!("{k}: {v}")
    }
}

/// A value as printed inside a rule's description: quoted when it would otherwise be empty,
/// blend into the punctuation around it, or hide whitespace.
fn val(s: &str) -> String {
    let plain = !s.is_empty()
        && s.trim() == s
        && !s
            .chars()
            .any(|c| c.is_control() || matches!(c, ',' | ';' | '(' | ')' | '"' | '`'));
    if plain {
        s.to_string()
    } else {
        format!("{s:?}")
    }
}

/// A duration as Gateway API writes one: `10s`, `250ms`, `1m30s`.
fn duration(ms: u64) -> String {
    if ms == 0 {
        return "0s".to_string();
    }
    let mut out = String::new();
    for (n, unit) in [
        (ms / 3_600_000, "h"),
        (ms / 60_000 % 60, "m"),
        (ms / 1000 % 60, "s"),
        (ms % 1000, "ms"),
    ] {
        if n > 0 {
            let _ = write!(out, "{n}{unit}");
        }
    }
    out
}

fn path_modifier(p: &mesh_artifact::PathModifier) -> String {
    match p {
        mesh_artifact::PathModifier::ReplaceFullPath(v) => format!("ReplaceFullPath {}", val(v)),
        mesh_artifact::PathModifier::ReplacePrefixMatch(v) => {
            format!("ReplacePrefixMatch {}", val(v))
        }
    }
}

fn header_settings(h: &mesh_artifact::HeaderModifier) -> Vec<Setting> {
    let mut out = Vec::with_capacity(h.set.len() + h.add.len() + h.remove.len());
    out.extend(h.set.iter().map(|(n, v)| (format!("set {n}"), val(v))));
    out.extend(h.add.iter().map(|(n, v)| (format!("add {n}"), val(v))));
    out.extend(
        h.remove
            .iter()
            .map(|n| (format!("remove {n}"), String::new())),
    );
    out
}

/// The filters meshc compiles, in the order a rule's description lists them.
const FILTERS: [&str; 4] = [
    "RequestRedirect",
    "URLRewrite",
    "RequestHeaderModifier",
    "ResponseHeaderModifier",
];

/// The filters of an action, in [`FILTERS`] order: the order the proxy applies them to a
/// request (a redirect answers before anything is forwarded), then the response's.
fn filter_views(a: &mesh_artifact::RuleAction) -> Vec<FilterView> {
    let mut out = Vec::new();
    if let Some(r) = &a.redirect {
        let mut s = Vec::new();
        if let Some(v) = &r.scheme {
            s.push(("scheme".to_string(), val(v)));
        }
        if let Some(v) = &r.hostname {
            s.push(("hostname".to_string(), val(v)));
        }
        if let Some(v) = r.port {
            s.push(("port".to_string(), v.to_string()));
        }
        if let Some(p) = &r.path {
            s.push(("path".to_string(), path_modifier(p)));
        }
        s.push(("status".to_string(), r.status.to_string()));
        out.push(FilterView {
            name: FILTERS[0],
            list: false,
            settings: s,
        });
    }
    if let Some(r) = &a.rewrite {
        let mut s = Vec::new();
        if let Some(v) = &r.hostname {
            s.push(("hostname".to_string(), val(v)));
        }
        if let Some(p) = &r.path {
            s.push(("path".to_string(), path_modifier(p)));
        }
        out.push(FilterView {
            name: FILTERS[1],
            list: false,
            settings: s,
        });
    }
    for (name, h) in [
        (FILTERS[2], &a.request_headers),
        (FILTERS[3], &a.response_headers),
    ] {
        if !h.is_empty() {
            out.push(FilterView {
                name,
                list: true,
                settings: header_settings(h),
            });
        }
    }
    out
}

fn timeout_settings(t: &mesh_artifact::Timeouts) -> Vec<Setting> {
    let mut out = Vec::new();
    if let Some(ms) = t.request_ms {
        out.push(("request".to_string(), duration(ms)));
    }
    if let Some(ms) = t.backend_request_ms {
        out.push(("backend request".to_string(), duration(ms)));
    }
    out
}

/// `request 5s, backend request 2s`, or `none`.
fn timeouts_text(t: &mesh_artifact::Timeouts) -> String {
    let s = timeout_settings(t);
    if s.is_empty() {
        return "none".to_string();
    }
    let items: Vec<String> = s.iter().map(|(k, v)| format!("{k} {v}")).collect();
    items.join(", ")
}

fn codes_text(codes: &[u16]) -> String {
    if codes.is_empty() {
        return "connection errors".to_string();
    }
    let c: Vec<String> = codes.iter().map(u16::to_string).collect();
    c.join(",")
}

fn retry_settings(r: &mesh_artifact::RetryPolicy) -> Vec<Setting> {
    vec![
        ("attempts".to_string(), r.attempts.to_string()),
        ("codes".to_string(), codes_text(&r.codes)),
        ("backoff".to_string(), duration(r.backoff_ms)),
        ("max backoff".to_string(), duration(r.max_backoff_ms)),
        ("budget".to_string(), format!("{}%", r.budget.percent)),
        (
            "min retries".to_string(),
            format!("{}/s", r.budget.min_per_second),
        ),
    ]
}

/// `2 attempts on 502,503, backoff 50ms up to 1s, budget 20% (min 5/s)`, or `none`.
fn retry_text(r: Option<&mesh_artifact::RetryPolicy>) -> String {
    let Some(r) = r else {
        return "none".to_string();
    };
    format!(
        "{} attempt{} on {}, backoff {} up to {}, budget {}% (min {}/s)",
        r.attempts,
        if r.attempts == 1 { "" } else { "s" },
        codes_text(&r.codes),
        duration(r.backoff_ms),
        duration(r.max_backoff_ms),
        r.budget.percent,
        r.budget.min_per_second
    )
}

/// `default/reviews:9080 (v1) weight 80, default/reviews:9080 (v2) weight 20`, or `none`.
fn backends_text(b: &[Setting]) -> String {
    if b.is_empty() {
        return "none".to_string();
    }
    let items: Vec<String> = b.iter().map(|(k, w)| format!("{k} weight {w}")).collect();
    items.join(", ")
}

/// `answers 500`, or `none`.
fn status_text(s: Option<u16>) -> String {
    s.map_or("none".to_string(), |s| format!("answers {s}"))
}

/// How one setting differs between two lists of settings.
#[derive(Debug, PartialEq, Eq)]
enum Delta<'a> {
    Added(&'a Setting),
    Removed(&'a Setting),
    Changed(&'a str, &'a str, &'a str),
}

/// The settings that differ: the n-th setting of a key on one side pairs with the n-th of the
/// same key on the other (a header may be added twice), and order alone is no change.
fn deltas<'a>(old: &'a [Setting], new: &'a [Setting]) -> Vec<Delta<'a>> {
    let nth = |list: &'a [Setting], key: &str, n: usize| {
        list.iter()
            .enumerate()
            .filter(|(_, (k, _))| k == key)
            .nth(n)
    };
    let mut out = Vec::new();
    let mut paired = vec![false; new.len()];
    for (i, s) in old.iter().enumerate() {
        let occurrence = old.iter().take(i).filter(|(k, _)| *k == s.0).count();
        match nth(new, &s.0, occurrence) {
            Some((j, t)) => {
                if let Some(p) = paired.get_mut(j) {
                    *p = true;
                }
                if t.1 != s.1 {
                    out.push(Delta::Changed(&s.0, &s.1, &t.1));
                }
            }
            None => out.push(Delta::Removed(s)),
        }
    }
    for (t, p) in new.iter().zip(paired) {
        if !p {
            out.push(Delta::Added(t));
        }
    }
    out
}

/// A delta between the fields of one part: `status 301 -> 302`, `scheme unset -> https`.
fn field_delta(d: &Delta<'_>) -> String {
    match d {
        Delta::Changed(k, a, b) => format!("{k} {a} -> {b}"),
        Delta::Added((k, v)) => format!("{k} unset -> {v}"),
        Delta::Removed((k, v)) => format!("{k} {v} -> unset"),
    }
}

/// A delta between two lists of operations: `set x-env: prod -> staging`, `+ remove x-debug`.
fn list_delta(d: &Delta<'_>) -> String {
    match d {
        Delta::Changed(k, a, b) => format!("{k}: {a} -> {b}"),
        Delta::Added(s) => format!("+ {}", item(s)),
        Delta::Removed(s) => format!("- {}", item(s)),
    }
}

/// `name: <full old> -> <full new>` when one side has nothing, else `name: <changed fields>`.
fn fields_line(name: &str, old: &[Setting], new: &[Setting], full: [String; 2]) -> Option<String> {
    let d = deltas(old, new);
    if d.is_empty() {
        return None;
    }
    if old.is_empty() || new.is_empty() {
        let [a, b] = full;
        return Some(format!("{name}: {a} -> {b}"));
    }
    let parts: Vec<String> = d.iter().map(field_delta).collect();
    Some(format!("{name}: {}", parts.join(", ")))
}

/// Backends that differ: one line per backend whose weight changed, added or removed, or the
/// whole lists when one side has none.
fn backend_lines(old: &[Setting], new: &[Setting]) -> Vec<String> {
    let d = deltas(old, new);
    if d.is_empty() {
        return Vec::new();
    }
    if old.is_empty() || new.is_empty() {
        return vec![format!(
            "backends: {} -> {}",
            backends_text(old),
            backends_text(new)
        )];
    }
    d.iter()
        .map(|d| match d {
            Delta::Changed(k, a, b) => format!("backend {k} weight {a} -> {b}"),
            Delta::Added((k, w)) => format!("+ backend {k} weight {w}"),
            Delta::Removed((k, w)) => format!("- backend {k} weight {w}"),
        })
        .collect()
}

/// Filters that differ: `+ filter URLRewrite(path: ReplacePrefixMatch /v2)`, `- filter ...`,
/// and for a filter on both sides only its settings that changed:
/// `filter RequestRedirect: status 301 -> 302`.
fn filter_lines<'a>(old: &'a [FilterView], new: &'a [FilterView]) -> Vec<String> {
    let mut out = Vec::new();
    for name in FILTERS {
        let find = |list: &'a [FilterView]| list.iter().find(|f| f.name == name);
        match (find(old), find(new)) {
            (Some(f), None) => out.push(format!("- filter {}", f.full())),
            (None, Some(g)) => out.push(format!("+ filter {}", g.full())),
            (Some(f), Some(g)) => {
                let d = deltas(&f.settings, &g.settings);
                if d.is_empty() {
                    continue;
                }
                let (parts, sep): (Vec<String>, _) = if f.list {
                    (d.iter().map(list_delta).collect(), "; ")
                } else {
                    (d.iter().map(field_delta).collect(), ", ")
                };
                out.push(format!("filter {name}: {}", parts.join(sep)));
            }
            (None, None) => {}
        }
    }
    out
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
            let _ = write!(m, ", {what} {} {op} {}", v.name, val(&v.value));
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
            .or_insert_with(|| RuleView {
                matches: BTreeSet::new(),
                backends: a
                    .backends
                    .iter()
                    .map(|b| {
                        let c = body.clusters.get(&b.cluster);
                        let name = c.map_or(b.cluster.clone(), |c| match &c.version {
                            Some(v) => format!("{}:{} ({v})", c.service, c.port),
                            None => format!("{}:{}", c.service, c.port),
                        });
                        (name, b.weight.to_string())
                    })
                    .collect(),
                timeouts: a.timeouts,
                retry: a.retry.clone(),
                filters: filter_views(a),
                status: a.fixed_status,
                source: e.source.clone(),
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
    settings: Vec<SettingChange>,
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
        if let (Some(o), Some(n)) = (ob, nb) {
            row.settings = setting_changes(o, n);
        }
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
        sc.settings = std::mem::take(&mut row.settings);
        out.summary.policies_changed += sc.policies.len();
        out.summary.settings_changed += sc.settings.len();
        let changed = !sc.routes.is_empty() || !sc.policies.is_empty() || !sc.settings.is_empty();
        if sc.added {
            out.summary.services_added += 1;
        } else if sc.removed {
            out.summary.services_removed += 1;
        } else if changed {
            out.summary.services_changed += 1;
        }
        if sc.added || sc.removed || changed {
            out.services.push(sc);
        }
    }
    Ok(out)
}

/// Pair the rules of one route and port across the two sides, so that a rule inserted, removed
/// or moved does not make every later rule look changed: first rules with the same content (a
/// move alone is no change: precedence comes from the matches, the index only breaks ties
/// between equal matches, which MC0404 reports), then rules with the same matches (the same rule,
/// edited), then what is left at the same index (a rule edited in place, matches included).
/// Returns `(old index, new index)` pairs; `None` on one side is a rule added or removed.
fn pair_rules(
    old: &[(u32, &RuleView)],
    new: &[(u32, &RuleView)],
) -> Vec<(Option<u32>, Option<u32>)> {
    let mut old_used = vec![false; old.len()];
    let mut new_used = vec![false; new.len()];
    let mut pairs = Vec::new();
    // Field by field (no text built), what `rule_delta` compares: this pass may try every pair.
    let same_content = |a: &RuleView, b: &RuleView| {
        a.matches == b.matches
            && a.backends == b.backends
            && a.timeouts == b.timeouts
            && a.retry == b.retry
            && a.filters == b.filters
            && a.status == b.status
    };
    let same_matches = |a: &RuleView, b: &RuleView| !a.matches.is_empty() && a.matches == b.matches;
    let same_index = |a: u32, b: u32| a == b;
    for pass in 0..3 {
        for (j, &(nj, b)) in new.iter().enumerate() {
            if new_used.get(j).copied().unwrap_or(true) {
                continue;
            }
            // The candidate at the same index first, then the others in order.
            let mut candidates: Vec<usize> = (0..old.len()).collect();
            candidates.sort_by_key(|&i| old.get(i).is_none_or(|&(oi, _)| oi != nj));
            for i in candidates {
                let (Some(&(oi, a)), Some(false)) = (old.get(i), old_used.get(i).copied()) else {
                    continue;
                };
                let fits = match pass {
                    0 => same_content(a, b),
                    1 => same_matches(a, b),
                    _ => same_index(oi, nj),
                };
                if fits {
                    if let Some(u) = old_used.get_mut(i) {
                        *u = true;
                    }
                    if let Some(u) = new_used.get_mut(j) {
                        *u = true;
                    }
                    pairs.push((Some(oi), Some(nj)));
                    break;
                }
            }
        }
    }
    pairs.extend(
        old.iter()
            .zip(&old_used)
            .filter(|(_, used)| !**used)
            .map(|(&(oi, _), _)| (Some(oi), None)),
    );
    pairs.extend(
        new.iter()
            .zip(&new_used)
            .filter(|(_, used)| !**used)
            .map(|(&(nj, _), _)| (None, Some(nj))),
    );
    pairs
}

/// The rules of one route and port, in rule order (keys sort by route, port, rule).
fn rules_of<'a>(views: &'a Views, route: &str, port: u16) -> Vec<(u32, &'a RuleView)> {
    views
        .iter()
        .filter(|((r, p, _), _)| r == route && *p == port)
        .map(|((_, _, rule), v)| (*rule, v))
        .collect()
}

fn rule_at<'a>(rules: &[(u32, &'a RuleView)], index: Option<u32>) -> Option<&'a RuleView> {
    let index = index?;
    rules.iter().find(|(r, _)| *r == index).map(|&(_, v)| v)
}

fn route_changes(o: &Views, n: &Views, sc: &mut ServiceChanges, summary: &mut Summary) {
    let groups: BTreeSet<(&str, u16)> = o
        .keys()
        .chain(n.keys())
        .map(|(route, port, _)| (route.as_str(), *port))
        .collect();
    for (route, port) in groups {
        let old = rules_of(o, route, port);
        let new = rules_of(n, route, port);
        let mut changes = Vec::new();
        for pair in pair_rules(&old, &new) {
            match (rule_at(&old, pair.0), rule_at(&new, pair.1)) {
                (None, Some(v)) | (Some(v), None) => {
                    let added = pair.0.is_none();
                    if added {
                        summary.rules_added += 1;
                    } else {
                        summary.rules_removed += 1;
                    }
                    changes.push(RuleChange {
                        route: route.to_string(),
                        port,
                        rule: pair.1.or(pair.0).unwrap_or_default(),
                        change: if added { "added" } else { "removed" }.into(),
                        fields: Vec::new(),
                        detail: describe(v),
                        source: Some(v.source.clone()),
                    });
                }
                (Some(a), Some(b)) => {
                    let (fields, mut detail) = rule_delta(a, b);
                    if !fields.is_empty() {
                        if let (Some(was), Some(now)) = pair
                            && was != now
                        {
                            detail.insert(0, format!("was rule {was}"));
                        }
                        summary.rules_changed += 1;
                        changes.push(RuleChange {
                            route: route.to_string(),
                            port,
                            rule: pair.1.unwrap_or_default(),
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
        // In rule order; a rule removed sorts before one added at the same index.
        changes.sort_by_key(|c| (c.rule, c.change != "removed"));
        sc.routes.extend(changes);
    }
}

/// The fields of a rule that changed, and a line for each thing in them that did.
fn rule_delta(a: &RuleView, b: &RuleView) -> (Vec<String>, Vec<String>) {
    let mut fields = Vec::new();
    let mut detail = Vec::new();
    let mut add = |name: &str, lines: Vec<String>| {
        if !lines.is_empty() {
            fields.push(name.to_string());
            detail.extend(lines);
        }
    };
    let mut matches = Vec::new();
    for m in a.matches.difference(&b.matches) {
        matches.push(format!("- match {m}"));
    }
    for m in b.matches.difference(&a.matches) {
        matches.push(format!("+ match {m}"));
    }
    add("matches", matches);
    add("backends", backend_lines(&a.backends, &b.backends));
    add(
        "timeouts",
        fields_line(
            "timeouts",
            &timeout_settings(&a.timeouts),
            &timeout_settings(&b.timeouts),
            [timeouts_text(&a.timeouts), timeouts_text(&b.timeouts)],
        )
        .into_iter()
        .collect(),
    );
    let retry = |r: &Option<mesh_artifact::RetryPolicy>| r.as_ref().map(retry_settings);
    add(
        "retry",
        fields_line(
            "retry",
            &retry(&a.retry).unwrap_or_default(),
            &retry(&b.retry).unwrap_or_default(),
            [retry_text(a.retry.as_ref()), retry_text(b.retry.as_ref())],
        )
        .into_iter()
        .collect(),
    );
    add("filters", filter_lines(&a.filters, &b.filters));
    let status = if a.status == b.status {
        Vec::new()
    } else {
        vec![format!(
            "status: {} -> {}",
            status_text(a.status),
            status_text(b.status)
        )]
    };
    add("status", status);
    (fields, detail)
}

/// A rule added or removed, whole.
fn describe(v: &RuleView) -> Vec<String> {
    let mut d: Vec<String> = v.matches.iter().map(|m| format!("match {m}")).collect();
    if !v.backends.is_empty() {
        d.push(format!("backends: {}", backends_text(&v.backends)));
    }
    d.extend(v.filters.iter().map(|f| format!("filter {}", f.full())));
    // Timeouts and retries (the mesh's defaults, often) only apply to a rule that forwards.
    if v.backends.is_empty() {
        if let Some(s) = v.status {
            d.push(status_text(Some(s)));
        }
        return d;
    }
    if !v.timeouts.is_empty() {
        d.push(format!("timeouts: {}", timeouts_text(&v.timeouts)));
    }
    if v.retry.is_some() {
        d.push(format!("retry: {}", retry_text(v.retry.as_ref())));
    }
    if let Some(s) = v.status {
        d.push(status_text(Some(s)));
    }
    d
}

/// The one-line summary every format leads with.
fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// The sidecar settings that differ between two artifacts of one service, in a fixed order.
fn setting_changes<T>(
    old_body: &mesh_artifact::Body<T>,
    new_body: &mesh_artifact::Body<T>,
) -> Vec<SettingChange> {
    fn json<T: Serialize>(v: &T) -> String {
        match serde_json::to_value(v) {
            Ok(serde_json::Value::String(s)) => s,
            Ok(other) => other.to_string(),
            Err(_) => String::new(),
        }
    }
    fn ports(p: &[mesh_artifact::AppPort]) -> String {
        if p.is_empty() {
            return "none".to_string();
        }
        let items: Vec<String> = p
            .iter()
            .map(|a| format!("{}->{}", a.port, a.app_port))
            .collect();
        items.join(", ")
    }
    let (old, new) = (&old_body.sidecar, &new_body.sidecar);
    let pairs = [
        ("mtls", json(&old_body.mesh.mtls), json(&new_body.mesh.mtls)),
        (
            "app.port",
            old.app_port.to_string(),
            new.app_port.to_string(),
        ),
        ("app.ports", ports(&old.app_ports), ports(&new.app_ports)),
        (
            "app.protocol",
            json(&old.app_protocol),
            json(&new.app_protocol),
        ),
        (
            "app.encodedSlashes",
            json(&old.encoded_slashes),
            json(&new.encoded_slashes),
        ),
        (
            "authorization.mode",
            json(&old.authz_mode),
            json(&new.authz_mode),
        ),
    ];
    pairs
        .into_iter()
        .filter(|(_, a, b)| a != b)
        .map(|(setting, before, after)| SettingChange {
            setting: setting.to_string(),
            before,
            after,
        })
        .collect()
}

/// What a setting change means for reviewers, where that is not plain from the values.
fn setting_note(c: &SettingChange) -> &'static str {
    match (c.setting.as_str(), c.after.as_str()) {
        ("app.encodedSlashes", "keep") => {
            " (paths holding `%2F` or `%5C` now reach the application instead of 400; it must not decode them before it routes)"
        }
        ("authorization.mode", "audit") => " (denied requests are let through and counted)",
        ("mtls", "permissive") => {
            " (the sidecar also accepts plaintext callers, without an identity)"
        }
        _ => "",
    }
}

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
    if s.settings_changed > 0 {
        parts.push(format!("{} setting change(s)", s.settings_changed));
    }
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
        for c in &s.settings {
            let _ = writeln!(
                out,
                "  setting `{}`: {} -> {}{}",
                c.setting,
                c.before,
                c.after,
                setting_note(c)
            );
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
        let settings = if s.settings.is_empty() {
            String::new()
        } else {
            format!(", {} setting change(s)", s.settings.len())
        };
        let _ = writeln!(
            sec,
            "<details><summary><code>{}</code>{state}: {} rule change(s), {} policy change(s){settings}</summary>\n",
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
        for c in &s.settings {
            let _ = writeln!(
                sec,
                "- setting `{}`: `{}` -> `{}`{}",
                c.setting,
                c.before,
                c.after,
                setting_note(c)
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
    if !crate::write_stdout(&text) {
        return ExitCode::from(2);
    }
    if exit_code && !d.is_empty() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mesh_artifact::{HeaderModifier, PathModifier, Redirect, RuleAction, UrlRewrite};

    fn s(k: &str, v: &str) -> Setting {
        (k.to_string(), v.to_string())
    }

    #[test]
    fn durations_read_like_gateway_api() {
        assert_eq!(duration(10_000), "10s");
        assert_eq!(duration(250), "250ms");
        assert_eq!(duration(90_000), "1m30s");
        assert_eq!(duration(3_600_000), "1h");
        assert_eq!(duration(1_500), "1s500ms");
        assert_eq!(duration(0), "0s");
    }

    #[test]
    fn values_are_quoted_only_when_needed() {
        assert_eq!(val("prod"), "prod");
        assert_eq!(val("/v2"), "/v2");
        assert_eq!(val(""), "\"\"");
        assert_eq!(val("a, b"), "\"a, b\"");
        assert_eq!(val(" x"), "\" x\"");
        assert_eq!(val("max-age=0; private"), "\"max-age=0; private\"");
    }

    #[test]
    fn filters_are_named_and_short() {
        let a = RuleAction {
            redirect: Some(Redirect {
                scheme: Some("https".into()),
                hostname: None,
                port: Some(8443),
                path: Some(PathModifier::ReplaceFullPath("/".into())),
                status: 301,
            }),
            rewrite: Some(UrlRewrite {
                hostname: Some("api.internal".into()),
                path: Some(PathModifier::ReplacePrefixMatch("/v2".into())),
            }),
            request_headers: HeaderModifier {
                set: vec![("x-env".into(), "prod".into())],
                add: vec![("x-tag".into(), "a,b".into())],
                remove: vec!["x-debug".into()],
            },
            ..RuleAction::default()
        };
        let full: Vec<String> = filter_views(&a).iter().map(FilterView::full).collect();
        assert_eq!(
            full,
            [
                "RequestRedirect(scheme: https, port: 8443, path: ReplaceFullPath /, status: 301)",
                "URLRewrite(hostname: api.internal, path: ReplacePrefixMatch /v2)",
                "RequestHeaderModifier(set x-env: prod; add x-tag: \"a,b\"; remove x-debug)",
            ]
        );
        assert!(filter_views(&RuleAction::default()).is_empty());
    }

    #[test]
    fn deltas_pair_settings_by_key_and_ignore_order() {
        let old = [
            s("set a", "1"),
            s("add b", "1"),
            s("add b", "2"),
            s("remove c", ""),
        ];
        let new = [
            s("add b", "1"),
            s("set a", "2"),
            s("add b", "3"),
            s("remove d", ""),
        ];
        let lines: Vec<String> = deltas(&old, &new).iter().map(list_delta).collect();
        assert_eq!(
            lines,
            ["set a: 1 -> 2", "add b: 2 -> 3", "- remove c", "+ remove d"]
        );
        let reordered = [
            s("add b", "1"),
            s("set a", "1"),
            s("remove c", ""),
            s("add b", "2"),
        ];
        assert!(deltas(&old, &reordered).is_empty());
    }

    #[test]
    fn changed_filters_show_only_what_changed() {
        let f = |name, list, settings: Vec<Setting>| FilterView {
            name,
            list,
            settings,
        };
        let old = vec![
            f(
                "RequestRedirect",
                false,
                vec![s("path", "ReplacePrefixMatch /r"), s("status", "301")],
            ),
            f(
                "ResponseHeaderModifier",
                true,
                vec![s("set cache-control", "no-store")],
            ),
        ];
        let new = vec![
            f(
                "RequestRedirect",
                false,
                vec![
                    s("scheme", "https"),
                    s("path", "ReplacePrefixMatch /r"),
                    s("status", "302"),
                ],
            ),
            f("URLRewrite", false, vec![s("path", "ReplaceFullPath /")]),
            f(
                "ResponseHeaderModifier",
                true,
                vec![s("set cache-control", "no-cache"), s("remove server", "")],
            ),
        ];
        assert_eq!(
            filter_lines(&old, &new),
            [
                "filter RequestRedirect: status 301 -> 302, scheme unset -> https",
                "+ filter URLRewrite(path: ReplaceFullPath /)",
                "filter ResponseHeaderModifier: set cache-control: no-store -> no-cache; + remove server",
            ]
        );
        assert_eq!(
            filter_lines(&new, &old),
            [
                "filter RequestRedirect: scheme https -> unset, status 302 -> 301",
                "- filter URLRewrite(path: ReplaceFullPath /)",
                "filter ResponseHeaderModifier: set cache-control: no-cache -> no-store; - remove server",
            ]
        );
        assert!(filter_lines(&old, &old).is_empty());
    }

    #[test]
    fn backends_show_each_weight_that_moved() {
        let old = [s("a:80 (v1)", "80"), s("a:80 (v2)", "20")];
        let new = [
            s("a:80 (v1)", "50"),
            s("a:80 (v2)", "20"),
            s("a:80 (v3)", "30"),
        ];
        assert_eq!(
            backend_lines(&old, &new),
            [
                "backend a:80 (v1) weight 80 -> 50",
                "+ backend a:80 (v3) weight 30"
            ]
        );
        assert_eq!(
            backend_lines(&[], &old),
            ["backends: none -> a:80 (v1) weight 80, a:80 (v2) weight 20"]
        );
    }
}
