//! `meshc diff` on realistic changes to the bookinfo example, snapshotted in all three formats.

use std::path::{Path, PathBuf};

use meshc::LoadOptions;
use meshc::diff::{AccessKind, MeshDiff, diff, human, json, markdown, side_of};

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

fn run(old: Vec<(String, String)>, new: Vec<(String, String)>) -> MeshDiff {
    let a = meshc::check_sources(old, &LoadOptions::default());
    let b = meshc::check_sources(new, &LoadOptions::default());
    assert!(!a.has_errors() && !b.has_errors(), "{:#?}", b.diagnostics);
    diff(&side_of(&a), &side_of(&b))
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
    assert!(d.summary.rules_added >= 1, "{d:#?}");
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
    assert!(d.summary.rules_removed >= 1, "{d:#?}");
    snapshot("removed-route", &d);
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
