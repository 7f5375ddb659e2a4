//! `meshc graph`: the service call graph: an edge for every destination a sidecar may reach,
//! labelled with the methods Cedar allows (evaluated by the proxy's authorizer with an empty
//! request context). Reachable but denied edges are drawn dashed.

use std::fmt::Write as _;
use std::path::Path;
use std::process::ExitCode;

use mesh_artifact::AuthzMode;
use mesh_policy::{Authorizer, AuthzRequest};

use crate::LoadOptions;
use crate::diff::{METHODS, Side};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum GraphFormat {
    Mermaid,
    Dot,
}

/// One edge: caller, destination, allowed methods (empty: reachable but denied), audit mode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Edge {
    pub caller: String,
    pub service: String,
    pub allowed: Vec<String>,
    pub audit: bool,
}

pub fn edges(side: &Side) -> Vec<Edge> {
    let authz: std::collections::BTreeMap<&str, Option<Authorizer>> = side
        .bodies
        .iter()
        .map(|(k, b)| (k.as_str(), Authorizer::new(&b.authz).ok()))
        .collect();
    let mut out = Vec::new();
    for (caller, body) in &side.bodies {
        // Route backends are reached too: their sidecars authorize the caller.
        for service in body.reached_services() {
            let Some(dest_body) = side.bodies.get(service) else {
                continue;
            };
            let mut allowed = Vec::new();
            for m in METHODS {
                let ok = match authz.get(service).and_then(Option::as_ref) {
                    Some(a) => {
                        let req = AuthzRequest {
                            principal: &body.sidecar.identity,
                            service,
                            method: m,
                            path: "/",
                            query: "",
                            route: "",
                            headers: &[],
                        };
                        a.authorize(&req, AuthzMode::Enforce).decision
                            == mesh_policy::Decision::Allow
                    }
                    None => true,
                };
                if ok {
                    allowed.push((*m).to_string());
                }
            }
            out.push(Edge {
                caller: caller.clone(),
                service: service.to_string(),
                allowed,
                audit: dest_body.sidecar.authz_mode == AuthzMode::Audit,
            });
        }
    }
    out
}

fn label(e: &Edge) -> String {
    let reads = ["GET", "HEAD", "OPTIONS"];
    let writes = ["POST", "PUT", "PATCH", "DELETE"];
    let has = |list: &[&str]| list.iter().all(|m| e.allowed.iter().any(|a| a == m));
    let mut l = if e.allowed.len() == METHODS.len() {
        "all".to_string()
    } else if e.allowed.is_empty() {
        "denied".to_string()
    } else if has(&reads) && e.allowed.len() == reads.len() {
        "read".to_string()
    } else if has(&writes) && e.allowed.len() == writes.len() {
        "write".to_string()
    } else {
        e.allowed.join(" ")
    };
    if e.audit && e.allowed.len() < METHODS.len() {
        l.push_str(" (audit)");
    }
    l
}

fn id(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

pub fn mermaid(side: &Side) -> String {
    let mut out = String::from("flowchart LR\n");
    for svc in side.bodies.keys() {
        let _ = writeln!(out, "  {}[\"{svc}\"]", id(svc));
    }
    for e in edges(side) {
        let arrow = if e.allowed.is_empty() { "-.->" } else { "-->" };
        let _ = writeln!(
            out,
            "  {} {arrow}|{}| {}",
            id(&e.caller),
            label(&e),
            id(&e.service)
        );
    }
    out
}

pub fn dot(side: &Side) -> String {
    let mut out = String::from("digraph mesh {\n  rankdir=LR;\n  node [shape=box];\n");
    for svc in side.bodies.keys() {
        let _ = writeln!(out, "  \"{svc}\";");
    }
    for e in edges(side) {
        let style = if e.allowed.is_empty() {
            ", style=dashed"
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "  \"{}\" -> \"{}\" [label=\"{}\"{style}];",
            e.caller,
            e.service,
            label(&e)
        );
    }
    out.push_str("}\n");
    out
}

pub fn run(dir: &Path, opts: &LoadOptions, format: GraphFormat) -> ExitCode {
    let side = match crate::diff::load_side(dir, opts) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(if dir.exists() { 1 } else { 2 });
        }
    };
    let text = match format {
        GraphFormat::Mermaid => mermaid(&side),
        GraphFormat::Dot => dot(&side),
    };
    if crate::write_stdout(&text) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    }
}
