//! `meshc diff` on realistic changes to the bookinfo example, snapshotted in all three formats.

use std::path::{Path, PathBuf};

use std::collections::{BTreeMap, BTreeSet};

use meshc::LoadOptions;
use meshc::diff::{
    AccessChange, AccessKind, METHODS, MeshDiff, RuleChange, Side, diff, diff_checked, diff_inputs,
    human, json, load_input, markdown, side_of,
};

fn bookinfo() -> Vec<(String, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/meshes/bookinfo");
    let mut files: Vec<(String, String)> = std::fs::read_dir(&dir)
        .expect("bookinfo")
        .map(|e| e.expect("entry").path())
        .filter(|p| {
            matches!(
                p.extension().and_then(|e| e.to_str()),
                Some("yaml" | "cedar")
            )
        })
        .map(|p: PathBuf| {
            (
                p.file_name().expect("name").to_string_lossy().into_owned(),
                std::fs::read_to_string(&p).expect("read"),
            )
        })
        .collect();
    files.sort();
    files
}

fn edit(files: &[(String, String)], file: &str, from: &str, to: &str) -> Vec<(String, String)> {
    files
        .iter()
        .map(|(n, t)| {
            if n == file {
                assert!(t.contains(from), "`{from}` not in {file}");
                (n.clone(), t.replacen(from, to, 1))
            } else {
                (n.clone(), t.clone())
            }
        })
        .collect()
}

/// The diff as `meshc diff` computes it (bodies lowered one at a time), checked against the
/// diff of every body in memory.
fn run(old: Vec<(String, String)>, new: Vec<(String, String)>) -> MeshDiff {
    let a = meshc::check_sources(old, &LoadOptions::default());
    let b = meshc::check_sources(new, &LoadOptions::default());
    assert!(!a.has_errors() && !b.has_errors(), "{:#?}", b.diagnostics);
    let streamed = diff_checked(&a, &b);
    assert_eq!(streamed, diff(&side_of(&a), &side_of(&b)));
    streamed
}

fn snapshot(name: &str, d: &MeshDiff) {
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path("../../snapshots/diff");
    settings.set_prepend_module_to_snapshot(false);
    settings.bind(|| {
        insta::assert_snapshot!(format!("{name}.human"), human(d));
        insta::assert_snapshot!(format!("{name}.markdown"), markdown(d));
        insta::assert_snapshot!(format!("{name}.json"), json(d));
    });
}

#[test]
fn identical_meshes_have_no_diff() {
    let d = run(bookinfo(), bookinfo());
    assert!(d.is_empty());
    assert_eq!(
        meshc::diff::summary_line(&d),
        "no changes to the compiled mesh"
    );
}

#[test]
fn canary_weight_shift() {
    let old = bookinfo();
    let new = edit(
        &old,
        "routes.yaml",
        "version: v1, weight: 80",
        "version: v1, weight: 60",
    );
    let new = edit(
        &new,
        "routes.yaml",
        "version: v3, weight: 10",
        "version: v3, weight: 30",
    );
    let d = run(old, new);
    assert!(d.access.is_empty());
    assert_eq!(d.summary.rules_changed, 1);
    assert_eq!(d.services[0].routes[0].fields, vec!["backends"]);
    snapshot("canary-weight-shift", &d);
}

/// The one rule change of a diff that changes one rule and nothing else.
fn only_rule(d: &MeshDiff) -> &RuleChange {
    assert!(d.access.is_empty(), "{d:#?}");
    assert_eq!(d.services.len(), 1, "{d:#?}");
    assert_eq!(d.services[0].routes.len(), 1, "{d:#?}");
    &d.services[0].routes[0]
}

#[test]
fn redirect_status_change() {
    let old = bookinfo();
    let new = edit(&old, "routes.yaml", "statusCode: 301", "statusCode: 302");
    let d = run(old, new);
    let r = only_rule(&d);
    assert_eq!((r.route.as_str(), r.rule), ("default/ratings", 2));
    assert_eq!(r.fields, ["filters"]);
    assert_eq!(r.detail, ["filter RequestRedirect: status 301 -> 302"]);
    snapshot("redirect-status", &d);
}

#[test]
fn rewrite_added() {
    let old = bookinfo();
    let new = edit(
        &old,
        "routes.yaml",
        "          port: 9080\n          version: v2\n",
        "          port: 9080\n          version: v2\n      filters:\n        - type: URLRewrite\n          urlRewrite:\n            path: {type: ReplacePrefixMatch, replacePrefixMatch: /v2/reviews}\n",
    );
    let d = run(old, new);
    let r = only_rule(&d);
    assert_eq!((r.route.as_str(), r.rule), ("default/reviews", 0));
    assert_eq!(r.fields, ["filters"]);
    assert_eq!(
        r.detail,
        ["+ filter URLRewrite(path: ReplacePrefixMatch /v2/reviews)"]
    );
    snapshot("rewrite-added", &d);
}

#[test]
fn header_modifier_changed() {
    let old = bookinfo();
    let new = edit(
        &old,
        "routes.yaml",
        "              - {name: cache-control, value: no-store}\n",
        "              - {name: cache-control, value: \"no-cache, private\"}\n            remove: [x-debug]\n        - type: RequestHeaderModifier\n          requestHeaderModifier:\n            add:\n              - {name: x-env, value: prod}\n",
    );
    let d = run(old, new);
    let r = only_rule(&d);
    assert_eq!((r.route.as_str(), r.rule), ("default/ratings", 1));
    assert_eq!(r.fields, ["filters"]);
    assert_eq!(
        r.detail,
        [
            "+ filter RequestHeaderModifier(add x-env: prod)",
            "filter ResponseHeaderModifier: set cache-control: no-store -> \"no-cache, private\"; + remove x-debug",
        ]
    );
    snapshot("header-modifier-changed", &d);
}

#[test]
fn timeouts_and_retry_change() {
    let old = bookinfo();
    let new = edit(
        &old,
        "routes.yaml",
        "        request: 5s\n        backendRequest: 2s\n",
        "        request: 10s\n        backendRequest: 250ms\n",
    );
    let new = edit(
        &new,
        "routes.yaml",
        "        attempts: 2\n        codes: [502, 503]\n",
        "        attempts: 3\n        codes: [503, 504]\n",
    );
    let d = run(old, new);
    let r = only_rule(&d);
    assert_eq!((r.route.as_str(), r.rule), ("default/reviews", 1));
    assert_eq!(r.fields, ["timeouts", "retry"]);
    assert_eq!(
        r.detail,
        [
            "timeouts: request 5s -> 10s, backend request 2s -> 250ms",
            "retry: attempts 2 -> 3, codes 502,503 -> 503,504",
        ]
    );
    snapshot("timeouts-and-retry", &d);
}

/// A rule that stops having a part shows it whole; a rule's own timeout over the mesh's default
/// shows what changed.
#[test]
fn retry_removed_and_timeouts_added() {
    let old = bookinfo();
    let new = edit(
        &old,
        "routes.yaml",
        "      retry:\n        attempts: 2\n        codes: [502, 503]\n        backoff: 50ms\n        budget:\n          percent: 20\n          minRetriesPerSecond: 5\n",
        "",
    );
    let new = edit(
        &new,
        "routes.yaml",
        "        - {name: ratings, port: 9080}\n      filters:",
        "        - {name: ratings, port: 9080}\n      timeouts: {request: 1m30s}\n      filters:",
    );
    let d = run(old, new);
    let lines: Vec<(&str, u32, &str)> = d
        .services
        .iter()
        .flat_map(|s| &s.routes)
        .flat_map(|r| {
            r.detail
                .iter()
                .map(|l| (r.route.as_str(), r.rule, l.as_str()))
        })
        .collect();
    // The mesh's default request timeout is 15s; the retry's maximum backoff defaults to ten
    // times its backoff.
    assert_eq!(
        lines,
        [
            ("default/ratings", 1, "timeouts: request 15s -> 1m30s"),
            (
                "default/reviews",
                1,
                "retry: 2 attempts on 502,503, backoff 50ms up to 500ms, budget 20% (min 5/s) -> none"
            ),
        ]
    );
}

#[test]
fn new_route() {
    let old = bookinfo();
    let new = edit(
        &old,
        "routes.yaml",
        "    - matches:\n        - path: {type: PathPrefix, value: /ratings}",
        "    - matches:\n        - path: {type: PathPrefix, value: /ratings/bulk}\n          method: POST\n      backendRefs:\n        - {name: ratings, port: 9080}\n      timeouts: {request: 30s}\n    - matches:\n        - path: {type: PathPrefix, value: /ratings}",
    );
    let d = run(old, new);
    // The rules after the new one moved down by one, unchanged: only the new one shows.
    let r = only_rule(&d);
    assert_eq!((r.rule, r.change.as_str()), (1, "added"), "{d:#?}");
    assert_eq!(
        (
            d.summary.rules_added,
            d.summary.rules_changed,
            d.summary.rules_removed
        ),
        (1, 0, 0)
    );
    snapshot("new-route", &d);
}

#[test]
fn removed_route() {
    let old = bookinfo();
    let new = edit(
        &old,
        "routes.yaml",
        "    - matches:\n        - path: {type: Exact, value: /health}\n          method: GET\n      backendRefs:\n        - {name: ratings, port: 9080}\n",
        "",
    );
    let d = run(old, new);
    let r = only_rule(&d);
    assert_eq!((r.rule, r.change.as_str()), (0, "removed"), "{d:#?}");
    assert_eq!(r.detail[0], "match path = /health, method GET");
    assert_eq!(
        (
            d.summary.rules_added,
            d.summary.rules_changed,
            d.summary.rules_removed
        ),
        (0, 0, 1)
    );
    snapshot("removed-route", &d);
}

#[test]
fn a_rule_that_moved_and_changed_says_where_it_was() {
    let old = bookinfo();
    // A rule inserted first, and the redirect rule (rule 2, now 3) edited.
    let new = edit(
        &old,
        "routes.yaml",
        "  rules:\n    - matches:\n        - path: {type: Exact, value: /health}",
        "  rules:\n    - matches:\n        - path: {type: Exact, value: /ping}\n      backendRefs:\n        - {name: ratings, port: 9080}\n    - matches:\n        - path: {type: Exact, value: /health}",
    );
    let new = edit(&new, "routes.yaml", "statusCode: 301", "statusCode: 302");
    let d = run(old, new);
    let rules: Vec<(u32, &str, &[String])> = d.services[0]
        .routes
        .iter()
        .map(|r| (r.rule, r.change.as_str(), r.detail.as_slice()))
        .collect();
    assert_eq!(
        rules,
        [
            (
                0,
                "added",
                &[
                    "match path = /ping".to_string(),
                    "backends: default/ratings:9080 weight 1".to_string(),
                    // The mesh's default.
                    "timeouts: request 15s".to_string()
                ][..]
            ),
            (
                3,
                "changed",
                &[
                    "was rule 2".to_string(),
                    "filter RequestRedirect: status 301 -> 302".to_string()
                ][..]
            ),
        ],
        "{d:#?}"
    );
    snapshot("moved-and-changed", &d);
}

#[test]
fn a_rule_edited_in_place_stays_one_change() {
    let old = bookinfo();
    // New matches and new backends at the same index: still the same rule, changed.
    let new = edit(
        &old,
        "routes.yaml",
        "        - path: {type: Exact, value: /health}\n          method: GET\n      backendRefs:\n        - {name: ratings, port: 9080}",
        "        - path: {type: Exact, value: /healthz}\n      backendRefs:\n        - {name: ratings, port: 9080, weight: 2}",
    );
    let d = run(old, new);
    let r = only_rule(&d);
    assert_eq!((r.rule, r.change.as_str()), (0, "changed"), "{d:#?}");
    assert_eq!(r.fields, ["matches", "backends"]);
}

#[test]
fn policy_that_widens_access() {
    let old = bookinfo();
    let new = edit(
        &old,
        "policies.cedar",
        "@id(\"reviews-reads-ratings\")",
        "@id(\"details-reads-reviews\")\npermit (\n  principal == Workload::\"default/details\",\n  action,\n  resource == Service::\"default/reviews\"\n);\n\n@id(\"reviews-reads-ratings\")",
    );
    let new = edit(
        &new,
        "sidecars.yaml",
        "  app: {port: 17200}\n  egress: []",
        "  app: {port: 17200}\n  egress: [reviews]",
    );
    let d = run(old, new);
    assert!(d.access.iter().any(|a| a.kind == AccessKind::Widening
        && a.caller == "default/details"
        && a.service == "default/reviews"));
    let md = markdown(&d);
    assert!(
        md.contains("[!CAUTION]") && md.contains("widens access"),
        "{md}"
    );
    assert!(human(&d).contains("WIDENS"));
    assert!(json(&d).contains("\"kind\": \"widening\""));
    snapshot("policy-widens", &d);
}

#[test]
fn sidecar_settings_that_change_are_listed() {
    let old = bookinfo();
    let new = edit(
        &old,
        "sidecars.yaml",
        "  app: {port: 17200}\n  egress: []",
        "  app: {port: 17210, encodedSlashes: keep}\n  egress: []",
    );
    let d = run(old.clone(), new);
    assert!(d.access.is_empty(), "{:#?}", d.access);
    assert_eq!(d.services.len(), 1, "{:#?}", d.services);
    let details = &d.services[0];
    assert_eq!(details.service, "default/details");
    assert!(details.routes.is_empty() && details.policies.is_empty());
    let settings: Vec<(&str, &str, &str)> = details
        .settings
        .iter()
        .map(|c| (c.setting.as_str(), c.before.as_str(), c.after.as_str()))
        .collect();
    assert_eq!(
        settings,
        [
            ("app.port", "17200", "17210"),
            ("app.encodedSlashes", "reject", "keep"),
        ]
    );
    assert_eq!(
        (d.summary.services_changed, d.summary.settings_changed),
        (1, 2)
    );
    assert!(meshc::diff::summary_line(&d).ends_with("2 setting change(s)"));
    snapshot("sidecar-settings", &d);

    // A mesh-wide switch to permissive mTLS changes what every sidecar accepts.
    let new = edit(&old, "mesh.yaml", "mode: strict", "mode: permissive");
    let d = run(old, new);
    assert_eq!(d.services.len(), 4, "{:#?}", d.services);
    for s in &d.services {
        assert_eq!(s.settings.len(), 1, "{}", s.service);
        assert_eq!(
            (
                s.settings[0].setting.as_str(),
                s.settings[0].before.as_str(),
                s.settings[0].after.as_str()
            ),
            ("mtls", "strict", "permissive")
        );
    }
    assert!(
        human(&d).contains("accepts plaintext callers"),
        "{}",
        human(&d)
    );
}

#[test]
fn policy_that_narrows_access() {
    let old = bookinfo();
    let new = edit(
        &old,
        "policies.cedar",
        "  action in Action::\"read\",\n  resource == Service::\"default/details\"",
        "  action == Action::\"GET\",\n  resource == Service::\"default/details\"",
    );
    let d = run(old, new);
    assert!(
        d.access.iter().all(|a| a.kind == AccessKind::Narrowing),
        "{d:#?}"
    );
    let narrowed: Vec<&str> = d
        .access
        .iter()
        .flat_map(|a| a.methods.iter().map(String::as_str))
        .collect();
    assert!(
        narrowed.contains(&"HEAD") && narrowed.contains(&"OPTIONS") && !narrowed.contains(&"GET"),
        "{narrowed:?}"
    );
    assert!(!markdown(&d).contains("[!CAUTION]"));
    snapshot("policy-narrows", &d);
}

#[test]
fn markdown_stays_under_the_github_limit() {
    let small = meshc::synth::SynthSpec {
        services: 300,
        routes_per_service: 4,
        policies_per_service: 1,
        egress: 3,
        seed: 1,
    };
    let mut changed = small;
    changed.seed = 2;
    let a = meshc::check_sources(meshc::synth::generate(small), &LoadOptions::default());
    let b = meshc::check_sources(meshc::synth::generate(changed), &LoadOptions::default());
    let d = diff(&side_of(&a), &side_of(&b));
    let md = markdown(&d);
    assert!(
        md.len() <= meshc::diff::GITHUB_COMMENT_LIMIT,
        "{}",
        md.len()
    );
    assert!(md.contains("Truncated"), "expected truncation note");
}

#[test]
fn exit_code_follows_the_contract() {
    let tmp = tempfile::tempdir().expect("tmp");
    let write = |dir: &Path, files: &[(String, String)]| {
        std::fs::create_dir_all(dir).expect("mkdir");
        for (n, t) in files {
            std::fs::write(dir.join(n), t).expect("write");
        }
    };
    let old = bookinfo();
    let new = edit(
        &old,
        "routes.yaml",
        "version: v1, weight: 80",
        "version: v1, weight: 70",
    );
    write(&tmp.path().join("a"), &old);
    write(&tmp.path().join("b"), &new);
    let meshc = env!("CARGO_BIN_EXE_meshc");
    let status = |args: &[&str]| {
        std::process::Command::new(meshc)
            .args(args)
            .output()
            .expect("run")
            .status
            .code()
    };
    let a = tmp.path().join("a");
    let b = tmp.path().join("b");
    let (a, b) = (a.to_str().expect("utf8"), b.to_str().expect("utf8"));
    assert_eq!(status(&["diff", a, b]), Some(0));
    assert_eq!(status(&["diff", a, b, "--exit-code"]), Some(1));
    assert_eq!(status(&["diff", a, a, "--exit-code"]), Some(0));
    // Build outputs diff the same way as definitions.
    let out = tmp.path().join("out");
    assert_eq!(
        status(&["build", a, "--out", out.to_str().expect("utf8")]),
        Some(0)
    );
    assert_eq!(
        status(&["diff", out.to_str().expect("utf8"), b, "--exit-code"]),
        Some(1)
    );
    assert_eq!(
        status(&["diff", out.to_str().expect("utf8"), a, "--exit-code"]),
        Some(0)
    );
    assert_eq!(status(&["diff", a, "/nonexistent/dir"]), Some(2));
}

/// The access analysis by brute force: every caller, every destination it reaches on either
/// side, every method, one authorizer per body; no pair skipped.
fn brute_force_access(old: &Side, new: &Side) -> Vec<AccessChange> {
    struct Eval {
        effective: &'static str,
        policies: Vec<String>,
        conditional: bool,
    }
    type Authorizers = BTreeMap<String, Option<mesh_policy::Authorizer>>;
    let authorizers = |side: &Side| -> Authorizers {
        side.bodies
            .iter()
            .map(|(k, b)| (k.clone(), mesh_policy::Authorizer::new(&b.authz).ok()))
            .collect()
    };
    let (old_authz, new_authz) = (authorizers(old), authorizers(new));
    let eval = |side: &Side, authz: &Authorizers, caller: &str, dest: &str, method: &str| -> Eval {
        let reach = side
            .bodies
            .get(caller)
            .is_some_and(|b| b.destinations.iter().any(|d| d.service == dest));
        if !reach {
            return Eval {
                effective: "unreachable",
                policies: Vec::new(),
                conditional: false,
            };
        }
        let (Some(body), Some(cb)) = (side.bodies.get(dest), side.bodies.get(caller)) else {
            return Eval {
                effective: "allow",
                policies: Vec::new(),
                conditional: false,
            };
        };
        let Some(Some(a)) = authz.get(dest) else {
            return Eval {
                effective: "allow",
                policies: Vec::new(),
                conditional: false,
            };
        };
        let req = mesh_policy::AuthzRequest {
            principal: &cb.sidecar.identity,
            service: dest,
            method,
            path: "/",
            query: "",
            route: "",
            headers: &[],
        };
        let d = a.authorize(&req, mesh_artifact::AuthzMode::Enforce);
        let effective = match (d.decision, body.sidecar.authz_mode) {
            (mesh_policy::Decision::Allow, _) => "allow",
            (mesh_policy::Decision::Deny, mesh_artifact::AuthzMode::Audit) => "audit",
            (mesh_policy::Decision::Deny, mesh_artifact::AuthzMode::Enforce) => "deny",
        };
        Eval {
            effective,
            policies: d.policies,
            conditional: body
                .authz
                .policies
                .iter()
                .any(|p| p.text.contains("context")),
        }
    };
    let passes = |e: &str| e == "allow" || e == "audit";
    let mut out = Vec::new();
    let callers: BTreeSet<&String> = old.bodies.keys().chain(new.bodies.keys()).collect();
    for caller in callers {
        let dests: BTreeSet<&str> = [old, new]
            .iter()
            .filter_map(|s| s.bodies.get(caller.as_str()))
            .flat_map(|b| b.destinations.iter().map(|d| d.service.as_str()))
            .collect();
        for dest in dests {
            let mut groups: BTreeMap<_, Vec<String>> = BTreeMap::new();
            for m in METHODS {
                let b = eval(old, &old_authz, caller, dest, m);
                let a = eval(new, &new_authz, caller, dest, m);
                if passes(b.effective) != passes(a.effective) {
                    groups
                        .entry((
                            b.effective,
                            a.effective,
                            b.policies,
                            a.policies,
                            b.conditional || a.conditional,
                        ))
                        .or_default()
                        .push(m.to_string());
                }
            }
            for ((before, after, pb, pa, conditional), methods) in groups {
                out.push(AccessChange {
                    caller: caller.clone(),
                    service: dest.to_string(),
                    methods,
                    before: before.to_string(),
                    after: after.to_string(),
                    kind: if passes(after) {
                        AccessKind::Widening
                    } else {
                        AccessKind::Narrowing
                    },
                    conditional,
                    policies_before: pb,
                    policies_after: pa,
                });
            }
        }
    }
    out.sort_by(|a, b| {
        (a.kind != AccessKind::Widening, &a.service, &a.caller).cmp(&(
            b.kind != AccessKind::Widening,
            &b.service,
            &b.caller,
        ))
    });
    out
}

fn edit_with(files: &mut [(String, String)], file: &str, f: impl Fn(&str) -> String) {
    let (_, text) = files
        .iter_mut()
        .find(|(n, _)| n == file)
        .unwrap_or_else(|| panic!("no {file}"));
    let edited = f(text);
    assert_ne!(*text, edited, "edit of {file} changed nothing");
    *text = edited;
}

/// Changes that decide access in different ways, on a synthetic mesh: a policy widened to a
/// namespace plus a context-dependent forbid, egress lists dropped (reach everything), the whole
/// mesh switched to audit mode, a namespace removed, and every egress list and policy changed.
#[test]
fn access_matches_brute_force_evaluation() {
    let spec = meshc::synth::SynthSpec::new(100);
    let base = meshc::synth::generate(spec);
    let mut cases: Vec<(&str, Vec<(String, String)>)> = Vec::new();

    let mut widen = base.clone();
    edit_with(&mut widen, "team-001/policies.cedar", |t| {
        format!(
            "{t}@id(\"open-team-001\")\npermit (principal in Namespace::\"team-000\", action, resource in Namespace::\"team-001\");\n\n@id(\"no-admin\")\nforbid (principal, action, resource) when {{ context.path like \"/admin*\" }};\n"
        )
    });
    edit_with(&mut widen, "team-000/policies.cedar", |t| {
        t.replacen(
            "action in Action::\"read\"",
            "action == Action::\"GET\"",
            10,
        )
    });
    cases.push(("widen", widen));

    let mut egress = base.clone();
    edit_with(&mut egress, "team-000/mesh.yaml", |t| {
        t.lines()
            .filter(|l| !l.starts_with("  egress: ["))
            .map(|l| format!("{l}\n"))
            .collect()
    });
    cases.push(("egress", egress));

    let mut audit = base.clone();
    edit_with(&mut audit, "mesh.yaml", |t| {
        format!("{t}  authorization: {{mode: audit}}\n")
    });
    cases.push(("audit", audit));

    let mut removed: Vec<(String, String)> = base
        .iter()
        .filter(|(p, _)| !p.starts_with("team-001/"))
        .cloned()
        .collect();
    for (p, t) in removed.iter_mut() {
        *t = t
            .lines()
            .map(|l| {
                if l.starts_with("  egress: [") {
                    let inner = l.trim_start_matches("  egress: [").trim_end_matches(']');
                    let kept: Vec<&str> = inner
                        .split(", ")
                        .filter(|e| !e.is_empty() && !e.starts_with("team-001/"))
                        .collect();
                    format!("  egress: [{}]\n", kept.join(", "))
                } else if p.ends_with(".cedar") && l.contains("Workload::\"team-001/") {
                    "  principal,\n".to_string()
                } else {
                    format!("{l}\n")
                }
            })
            .collect();
    }
    cases.push(("removed", removed));

    cases.push((
        "everything",
        meshc::synth::generate(meshc::synth::SynthSpec { seed: 7, ..spec }),
    ));

    let a = meshc::check_sources(base.clone(), &LoadOptions::default());
    assert!(!a.has_errors(), "{:#?}", a.diagnostics);
    let old = side_of(&a);
    for (name, files) in cases {
        let b = meshc::check_sources(files, &LoadOptions::default());
        assert!(!b.has_errors(), "{name}: {:#?}", b.diagnostics);
        let d = diff_checked(&a, &b);
        let expected = brute_force_access(&old, &side_of(&b));
        assert!(
            !expected.is_empty(),
            "{name}: the change must change access"
        );
        assert_eq!(d.access, expected, "{name}");
        let widened = expected
            .iter()
            .filter(|c| c.kind == AccessKind::Widening)
            .count();
        assert_eq!(d.summary.access_widened, widened, "{name}");
        assert_eq!(
            d.summary.access_narrowed,
            expected.len() - widened,
            "{name}"
        );
    }
}

/// `diff` reads a bundle and mode straight from the checked model instead of lowering the whole
/// body: they must be the body's.
#[test]
fn bundles_from_the_model_are_the_lowered_ones() {
    let synth = meshc::synth::generate(meshc::synth::SynthSpec::new(60));
    for files in [bookinfo(), synth] {
        let c = meshc::check_sources(files, &LoadOptions::default());
        assert!(!c.has_errors());
        let slicer = meshc::policy::slicer(&c);
        for s in &c.model.services {
            let body = meshc::lower::lower_sidecar_with(&c, &slicer, s);
            assert_eq!(body.authz, meshc::policy::bundle_with(&c, &slicer, s));
            assert_eq!(
                body.sidecar.authz_mode,
                meshc::lower::sidecar_info(&c.model, s).authz_mode
            );
        }
    }
}

fn write_files(dir: &Path, files: &[(String, String)]) {
    for (n, t) in files {
        let p = dir.join(n);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, t).expect("write");
    }
}

fn build_into(dir: &Path, files: Vec<(String, String)>) {
    let c = meshc::check_sources(files, &LoadOptions::default());
    assert!(!c.has_errors());
    let out: Vec<(String, String)> = meshc::build::compile(&c)
        .into_iter()
        .map(|f| (f.name, f.text))
        .collect();
    write_files(dir, &out);
}

/// Build outputs are read one artifact at a time and diff exactly like the definitions.
#[test]
fn build_outputs_diff_like_definitions() {
    let tmp = tempfile::tempdir().expect("tmp");
    let old = bookinfo();
    let new = edit(
        &old,
        "policies.cedar",
        "  action in Action::\"read\",\n  resource == Service::\"default/details\"",
        "  action == Action::\"GET\",\n  resource == Service::\"default/details\"",
    );
    let new = edit(
        &new,
        "routes.yaml",
        "version: v1, weight: 80",
        "version: v1, weight: 60",
    );
    let expected = run(old.clone(), new.clone());
    assert!(!expected.access.is_empty() && !expected.services.is_empty());
    let dirs = ["old-src", "new-src", "old-out", "new-out"].map(|d| tmp.path().join(d));
    write_files(&dirs[0], &old);
    write_files(&dirs[1], &new);
    build_into(&dirs[2], old);
    build_into(&dirs[3], new);
    let opts = LoadOptions::default();
    let load = |p: &Path| load_input(p, &opts).expect("load");
    for (a, b) in [(0, 1), (2, 1), (0, 3), (2, 3)] {
        let d = diff_inputs(&load(&dirs[a]), &load(&dirs[b])).expect("diff");
        assert_eq!(json(&d), json(&expected), "{a} vs {b}");
    }
}

/// Rewrite one artifact of a build output.
fn edit_artifact(dir: &Path, file: &str, f: impl FnOnce(&mut mesh_artifact::Body)) {
    let path = dir.join(file);
    let mut a = mesh_artifact::decode(&std::fs::read(&path).expect("read")).expect("artifact");
    f(&mut a.body);
    let (text, _) = mesh_artifact::encode(&a.body, meshc::VERSION, &a.header.source_hash);
    std::fs::write(&path, text).expect("write");
}

/// Hand-made build outputs: reach that changes while the destination's bundle does not (the
/// compiler never writes that: a bundle names its callers), a destination that is no service
/// (reaching it counts as allowed: no bundle decides), and a bad artifact (an error, not a
/// panic).
#[test]
fn build_output_edge_cases() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (old_dir, new_dir) = (tmp.path().join("old"), tmp.path().join("new"));
    build_into(&old_dir, bookinfo());
    build_into(&new_dir, bookinfo());
    edit_artifact(&new_dir, "default.details.json", |b| {
        b.destinations.push(mesh_artifact::Destination {
            service: "default/ghost".into(),
            hosts: vec!["ghost.default".into()],
            ports: Vec::new(),
            encoded_slashes: Default::default(),
        });
    });
    edit_artifact(&new_dir, "default.productpage.json", |b| {
        b.destinations.retain(|d| d.service != "default/details");
    });
    let opts = LoadOptions::default();
    let load = |p: &Path| load_input(p, &opts).expect("load");
    let d = diff_inputs(&load(&old_dir), &load(&new_dir)).expect("diff");
    let seen = access_rows(&d);
    assert_eq!(
        seen,
        vec![
            (
                "default/details",
                "default/ghost",
                "unreachable",
                "allow",
                METHODS.to_vec()
            ),
            (
                "default/productpage",
                "default/details",
                "allow",
                "unreachable",
                vec!["GET", "HEAD", "OPTIONS"]
            ),
        ],
        "{d:#?}"
    );
    assert_eq!(d.access[0].kind, AccessKind::Widening);
    assert_eq!(d.access[1].kind, AccessKind::Narrowing);
    assert_eq!(
        d.access[1].policies_before,
        vec!["productpage-reads-details"]
    );
    // No route is attached to details, and the ghost is no service.
    assert!(d.services.is_empty(), "{:#?}", d.services);

    std::fs::write(new_dir.join("default.details.json"), "{\"header\": {}}").expect("write");
    let err = diff_inputs(&load(&old_dir), &load(&new_dir)).expect_err("bad artifact");
    assert!(err.contains("default.details.json"), "{err}");
}

/// A caller reaches the backends of the routes it follows, not only the services it may address:
/// with `egress: [store]` and a route on `store` sending `/checkout` to `store-v2`, a policy that
/// lets `frontend` into `store-v2` widens what `frontend` can do, and the diff says so.
#[test]
fn access_follows_route_backends_beyond_egress() {
    let mesh = r#"apiVersion: meshc.dev/v1alpha1
kind: Mesh
metadata: {name: shop}
spec: {trustDomain: shop.test}
---
apiVersion: meshc.dev/v1alpha1
kind: MeshService
metadata: {name: frontend}
spec: {ports: [{name: http, port: 80}]}
---
apiVersion: meshc.dev/v1alpha1
kind: MeshService
metadata: {name: store}
spec: {ports: [{name: http, port: 8080}]}
---
apiVersion: meshc.dev/v1alpha1
kind: MeshService
metadata: {name: store-v2}
spec: {ports: [{name: http, port: 8080}]}
---
apiVersion: meshc.dev/v1alpha1
kind: Sidecar
metadata: {name: frontend}
spec: {service: frontend, egress: [store]}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: store}
spec:
  parentRefs: [{group: "", kind: Service, name: store, port: 8080}]
  rules:
  - matches: [{path: {type: Exact, value: /checkout}}]
    backendRefs: [{name: store-v2, port: 8080}]
  - backendRefs: [{name: store, port: 8080}]
"#;
    let old_policy = r#"@id("frontend-reads-store")
permit (principal == Workload::"default/frontend", action in Action::"read", resource == Service::"default/store");
"#;
    let new_policy = format!(
        "{old_policy}@id(\"frontend-reads-v2\")\npermit (principal == Workload::\"default/frontend\", action in Action::\"read\", resource == Service::\"default/store-v2\");\n"
    );
    let files = |p: &str| {
        vec![
            ("mesh.yaml".to_string(), mesh.to_string()),
            ("policies.cedar".to_string(), p.to_string()),
        ]
    };
    let d = run(files(old_policy), files(&new_policy));
    assert_eq!(
        access_rows(&d),
        [(
            "default/frontend",
            "default/store-v2",
            "deny",
            "allow",
            vec!["GET", "HEAD", "OPTIONS"]
        )],
        "{d:#?}"
    );
}

/// Caller, destination, before, after and methods of each access change.
fn access_rows(d: &MeshDiff) -> Vec<(&str, &str, &str, &str, Vec<&str>)> {
    d.access
        .iter()
        .map(|c| {
            (
                c.caller.as_str(),
                c.service.as_str(),
                c.before.as_str(),
                c.after.as_str(),
                c.methods.iter().map(String::as_str).collect(),
            )
        })
        .collect()
}
