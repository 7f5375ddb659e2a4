//! Gateway API `ReferenceGrant`s: how they are read, and what `referenceGrants: required` in the
//! `Mesh` makes of a route's backend in another namespace (MC0308).
//!
//! Mesh routes need no grant by default: GEP-1294 ("Namespace boundaries") lets routes bound to
//! Services name backends in any namespace without one, and the upstream `MeshConsumerRoute`
//! conformance manifest does so.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;

use std::path::Path;

use meshc::render;
use meshc::{Checked, Code};

/// `CODE file:line:col` of every diagnostic.
fn findings(checked: &Checked) -> Vec<String> {
    checked
        .diagnostics
        .iter()
        .map(|d| {
            let (file, line, col, _, _) = render::position(&checked.sources, d);
            format!("{} {file}:{line}:{col}", d.code.as_str())
        })
        .collect()
}

const REQUIRED: &str = "apiVersion: meshc.dev/v1alpha1
kind: Mesh
metadata: {name: mesh}
spec: {referenceGrants: required}
";

const SERVICES: &str = "apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec: {ports: [{name: http, port: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: ledger, namespace: payments}
spec: {ports: [{name: http, port: 9090}]}
---
apiVersion: v1
kind: Service
metadata: {name: audit, namespace: payments}
spec: {ports: [{name: http, port: 9090}]}
---
apiVersion: v1
kind: Service
metadata: {name: console, namespace: ops}
spec: {ports: [{name: http, port: 80}]}
";

/// An `HTTPRoute` of `shop` on `shop/web` that sends everything to `payments/ledger`; the
/// backend's `namespace` value is at line 6, column 52.
const ROUTE: &str = r#"apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: web, namespace: shop}
spec:
  parentRefs: [{group: "", kind: Service, name: web}]
  rules: [{backendRefs: [{name: ledger, namespace: payments, port: 9090}]}]
"#;

/// The same route as a `MeshRoute`.
const MESH_ROUTE: &str = "apiVersion: meshc.dev/v1alpha1
kind: MeshRoute
metadata: {name: web, namespace: shop}
spec:
  parentRefs: [{name: web}]
  rules: [{backendRefs: [{name: ledger, namespace: payments, port: 9090}]}]
";

/// A grant in namespace `ns`, with YAML flow `from` and `to` entries.
fn grant(ns: &str, from: &str, to: &str) -> String {
    format!(
        "apiVersion: gateway.networking.k8s.io/v1beta1
kind: ReferenceGrant
metadata: {{name: g, namespace: {ns}}}
spec:
  from: [{from}]
  to: [{to}]
"
    )
}

const FROM_SHOP: &str = "{group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: shop}";
const ANY_SERVICE: &str = r#"{group: "", kind: Service}"#;

fn with_required(route: &str, grants: &[String]) -> Checked {
    let grants = grants.join("---\n");
    check(&[
        ("mesh.yaml", REQUIRED),
        ("svc.yaml", SERVICES),
        ("route.yaml", route),
        ("grants.yaml", &grants),
    ])
}

#[test]
fn cross_namespace_backends_need_no_grant_by_default() {
    // GEP-1294: mesh routes may name backends in any namespace without a grant.
    let checked = check(&[("svc.yaml", SERVICES), ("route.yaml", ROUTE)]);
    assert_eq!(findings(&checked), Vec::<String>::new());
    let optional = "apiVersion: meshc.dev/v1alpha1
kind: Mesh
metadata: {name: mesh}
spec: {referenceGrants: optional}
";
    for route in [ROUTE, MESH_ROUTE] {
        let checked = check(&[
            ("mesh.yaml", optional),
            ("svc.yaml", SERVICES),
            ("route.yaml", route),
        ]);
        assert_eq!(findings(&checked), Vec::<String>::new());
    }
}

#[test]
fn required_grants_refuse_an_ungranted_backend_at_its_namespace() {
    let checked = with_required(ROUTE, &[]);
    assert_eq!(findings(&checked), vec!["MC0308 route.yaml:6:52"]);
    let d = &checked.diagnostics[0];
    assert_eq!(
        d.message,
        "backend `payments/ledger` of route `shop/web` is in another namespace, and no `ReferenceGrant` there allows it"
    );
    // A refused definition builds nothing.
    assert!(checked.has_errors());
    // The grant the help shows is the one that permits the reference.
    let help = d.help.as_deref().unwrap();
    let (_, yaml) = help.split_once('\n').unwrap();
    assert!(yaml.contains("namespace: payments"), "{yaml}");
    let fixed = with_required(ROUTE, &[yaml.to_string()]);
    assert_eq!(findings(&fixed), Vec::<String>::new(), "{yaml}");
}

#[test]
fn a_grant_without_a_name_permits_every_service_of_its_namespace() {
    let checked = with_required(ROUTE, &[grant("payments", FROM_SHOP, ANY_SERVICE)]);
    assert_eq!(findings(&checked), Vec::<String>::new());
    let named = |name: &str| format!(r#"{{group: "", kind: Service, name: {name}}}"#);
    let checked = with_required(ROUTE, &[grant("payments", FROM_SHOP, &named("ledger"))]);
    assert_eq!(findings(&checked), Vec::<String>::new());
    // A name permits that Service only; the closest grant is shown.
    let checked = with_required(ROUTE, &[grant("payments", FROM_SHOP, &named("audit"))]);
    assert_eq!(codes(&checked), vec![Code::RefNotPermitted]);
    let why = &checked.diagnostics[0].secondary[0].message;
    assert_eq!(
        why,
        "grant `payments/g` allows Service `audit`, not `ledger`"
    );
    // Several entries combine with OR.
    let to = format!("{}, {}", named("audit"), named("ledger"));
    let checked = with_required(ROUTE, &[grant("payments", FROM_SHOP, &to)]);
    assert_eq!(findings(&checked), Vec::<String>::new());
}

#[test]
fn a_grant_permits_one_source_namespace_and_kind_in_its_own_namespace() {
    let billing = "{group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: billing}";
    let ledger = r#"{group: "", kind: Service, name: ledger}"#;
    let cases: [(&str, String, &str); 5] = [
        (
            "another source namespace",
            grant(
                "payments",
                "{group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: billing}",
                ANY_SERVICE,
            ),
            "grant `payments/g` allows `HTTPRoute`s of `billing`, not `shop`",
        ),
        (
            "another kind of route",
            grant(
                "payments",
                "{group: gateway.networking.k8s.io, kind: GRPCRoute, namespace: shop}",
                ANY_SERVICE,
            ),
            "grant `payments/g` allows `GRPCRoute` of `gateway.networking.k8s.io`, not `HTTPRoute` of `gateway.networking.k8s.io`",
        ),
        (
            "a grant in the route's namespace",
            grant(
                "shop",
                FROM_SHOP,
                r#"{group: "", kind: Service, name: ledger}"#,
            ),
            "grant `shop/g` is in the route's namespace; a grant opens only its own namespace, here `payments`",
        ),
        (
            "a grant in the route's namespace, naming the backend",
            grant("shop", billing, ledger),
            "grant `shop/g` is in the route's namespace; a grant opens only its own namespace, here `payments`",
        ),
        (
            "a grant of a third namespace",
            grant("ops", FROM_SHOP, ANY_SERVICE),
            "",
        ),
    ];
    for (case, g, why) in cases {
        let checked = with_required(ROUTE, &[g]);
        assert_eq!(findings(&checked), vec!["MC0308 route.yaml:6:52"], "{case}");
        let secondary: Vec<&str> = checked.diagnostics[0]
            .secondary
            .iter()
            .map(|l| l.message.as_str())
            .collect();
        let want: Vec<&str> = if why.is_empty() { vec![] } else { vec![why] };
        assert_eq!(secondary, want, "{case}");
    }
    // Where the route's namespace has a Service of the backend's name, such a grant is for that
    // Service: no hint.
    let shop_ledger = "apiVersion: v1
kind: Service
metadata: {name: ledger, namespace: shop}
spec: {ports: [{name: http, port: 9090}]}
";
    let g = grant("shop", billing, ledger);
    let checked = check(&[
        ("mesh.yaml", REQUIRED),
        ("svc.yaml", SERVICES),
        ("shop.yaml", shop_ledger),
        ("route.yaml", ROUTE),
        ("grants.yaml", &g),
    ]);
    assert_eq!(findings(&checked), vec!["MC0308 route.yaml:6:52"]);
    assert!(checked.diagnostics[0].secondary.is_empty());
}

#[test]
fn a_mesh_route_needs_a_grant_for_mesh_routes() {
    let for_http = grant("payments", FROM_SHOP, ANY_SERVICE);
    let checked = with_required(MESH_ROUTE, &[for_http]);
    assert_eq!(findings(&checked), vec!["MC0308 route.yaml:6:52"]);
    let help = checked.diagnostics[0].help.as_deref().unwrap();
    assert!(
        help.contains("{group: meshc.dev, kind: MeshRoute, namespace: shop}"),
        "{help}"
    );
    let for_mesh = grant(
        "payments",
        "{group: meshc.dev, kind: MeshRoute, namespace: shop}",
        ANY_SERVICE,
    );
    let checked = with_required(MESH_ROUTE, &[for_mesh]);
    assert_eq!(findings(&checked), Vec::<String>::new());
}

#[test]
fn a_consumer_route_to_its_own_parent_needs_no_grant() {
    // `ops` tunes its calls to `payments/ledger` (GEP-1294 consumer route): the backend is the
    // route's parent, so nothing is sent where it was not addressed.
    let consumer = r#"apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: ledger, namespace: ops}
spec:
  parentRefs: [{group: "", kind: Service, name: ledger, namespace: payments}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /v2}}]
    backendRefs: [{name: audit, namespace: payments, port: 9090}]
  - backendRefs: [{name: ledger, namespace: payments, port: 9090}]
"#;
    let checked = with_required(consumer, &[]);
    // Only the backend that is not the parent needs a grant.
    assert_eq!(findings(&checked), vec!["MC0308 route.yaml:8:44"]);
    let ops = "{group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: ops}";
    let checked = with_required(consumer, &[grant("payments", ops, ANY_SERVICE)]);
    assert_eq!(findings(&checked), Vec::<String>::new());
    // Without `referenceGrants: required`, neither needs one.
    let checked = check(&[("svc.yaml", SERVICES), ("route.yaml", consumer)]);
    assert_eq!(findings(&checked), Vec::<String>::new());
}

#[test]
fn grants_are_read_in_the_api_versions_the_crd_serves() {
    for (api, want) in [
        ("gateway.networking.k8s.io/v1", vec![]),
        ("gateway.networking.k8s.io/v1beta1", vec![]),
        (
            "gateway.networking.k8s.io/v1alpha2",
            vec!["MC0308 route.yaml:6:52", "MC0008 grants.yaml:1:13"],
        ),
    ] {
        let g = grant("payments", FROM_SHOP, ANY_SERVICE).replace(
            "apiVersion: gateway.networking.k8s.io/v1beta1",
            &format!("apiVersion: {api}"),
        );
        let mut got = findings(&with_required(ROUTE, &[g]));
        got.sort();
        let mut want: Vec<String> = want.into_iter().map(String::from).collect();
        want.sort();
        assert_eq!(got, want, "{api}");
    }
    // Grants are in the model, sorted, one per `namespace/name`.
    let checked = with_required(
        ROUTE,
        &[
            grant("payments", FROM_SHOP, ANY_SERVICE),
            grant("billing", FROM_SHOP, ANY_SERVICE),
            grant("payments", FROM_SHOP, ANY_SERVICE),
        ],
    );
    let keys: Vec<String> = checked
        .model
        .reference_grants
        .iter()
        .map(|g| g.key())
        .collect();
    assert_eq!(keys, vec!["billing/g", "payments/g"]);
    assert_eq!(codes(&checked), vec![Code::DuplicateResource]);
}

/// The findings of one grant document, alone with the services.
fn grant_findings(spec: &str) -> Vec<String> {
    let doc = format!(
        "apiVersion: gateway.networking.k8s.io/v1beta1
kind: ReferenceGrant
metadata: {{name: g, namespace: payments}}
spec:
{spec}"
    );
    let checked = check(&[("svc.yaml", SERVICES), ("g.yaml", &doc)]);
    checked
        .diagnostics
        .iter()
        .map(|d| {
            let (_, line, col, _, _) = render::position(&checked.sources, d);
            let help = d.help.as_deref().unwrap_or("");
            format!("{} {line}:{col} {help}", d.code.as_str())
        })
        .collect()
}

#[test]
fn grant_entries_are_checked_like_other_resources() {
    let cases: &[(&str, &[&str])] = &[
        // Valid grants, for Gateways' certificates or other routes, are not ours to judge.
        (
            "  from: [{group: gateway.networking.k8s.io, kind: TCPRoute, namespace: shop}]\n  to: [{group: \"\", kind: Secret}]\n",
            &[],
        ),
        (
            "  from: [{group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: shop}]\n  to: [{group: \"\", kind: Services}]\n",
            &["MC0104 6:26 did you mean `Service`?"],
        ),
        (
            "  from: [{group: gateway.networking.k8s.io, kind: HttpRoute, namespace: shop}]\n  to: [{group: \"\", kind: Service}]\n",
            &["MC0104 5:51 did you mean `HTTPRoute`?"],
        ),
        (
            "  from: [{group: \"\", kind: HTTPRoute, namespace: shop}]\n  to: [{group: \"\", kind: Service}]\n",
            &[
                "MC0104 5:18 `HTTPRoute` is in the group `gateway.networking.k8s.io`: write `group: gateway.networking.k8s.io`",
            ],
        ),
        (
            "  from: [{group: gateway.networking.k8s.io/v1, kind: HTTPRoute, namespace: shop}]\n  to: [{group: \"\", kind: Service}]\n",
            &[
                "MC0104 5:18 `group` names the group alone, without version: `gateway.networking.k8s.io`",
            ],
        ),
        (
            "  from: [{group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: shop}]\n  to: [{kind: Service}]\n",
            &[
                "MC0103 6:8 write `group: \"\"` for the core group (`Service`), `group: gateway.networking.k8s.io` for `HTTPRoute`",
            ],
        ),
        (
            "  from: [{group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: Shop}]\n  to: [{group: \"\", kind: Service}]\n",
            &["MC0105 5:73 did you mean `shop`?"],
        ),
        (
            "  from: [{group: gateway.networking.k8s.io, kind: HTTPRoute, namespaces: shop}]\n  to: [{group: \"\", kind: Service, nmae: api}]\n",
            &[
                "MC0103 5:10 ",
                "MC0101 5:62 did you mean `namespace`?",
                "MC0101 6:35 did you mean `name`?",
            ],
        ),
        ("  from: shop\n  to: []\n", &["MC0102 5:9 "]),
        (
            "  to: [{group: \"\", kind: Service}]\n  form: []\n",
            &["MC0103 5:3 ", "MC0101 6:3 did you mean `from`?"],
        ),
    ];
    for (spec, want) in cases {
        assert_eq!(grant_findings(spec), *want, "{spec}");
    }
}

#[test]
fn a_grant_is_a_kind_meshc_reads_not_a_skipped_one() {
    let doc = "apiVersion: gateway.networking.k8s.io/v1beta1
kind: ReferenceGrant
metadata: {name: g, namespace: payments}
";
    // The CRD makes `spec` optional: such a grant permits nothing, and is no error.
    let checked = check(&[("svc.yaml", SERVICES), ("g.yaml", doc)]);
    assert_eq!(findings(&checked), Vec::<String>::new());
    assert_eq!(checked.model.reference_grants.len(), 1);
    // A near miss of the kind is a misspelt kind, as for `HTTPRoute`.
    let typo = doc.replace("ReferenceGrant", "ReferenceGrants");
    let checked = check(&[("svc.yaml", SERVICES), ("g.yaml", &typo)]);
    assert_eq!(codes(&checked), vec![Code::MisspeltKind]);
}

fn write_dir(dir: &Path, files: &[(&str, &str)]) {
    std::fs::create_dir_all(dir).expect("mkdir");
    for (name, text) in files {
        std::fs::write(dir.join(name), text).expect("write");
    }
}

/// `meshc diff OLD NEW --exit-code`: the exit code and stderr.
fn diff(old: &Path, new: &Path) -> (Option<i32>, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_meshc"))
        .arg("diff")
        .arg(old)
        .arg(new)
        .arg("--exit-code")
        .output()
        .expect("run meshc");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn diff_across_a_grant_change() {
    fn files<'a>(mesh: &'a str, grants: &'a str) -> [(&'a str, &'a str); 4] {
        [
            ("mesh.yaml", mesh),
            ("svc.yaml", SERVICES),
            ("route.yaml", ROUTE),
            ("grants.yaml", grants),
        ]
    }
    let tmp = tempfile::tempdir().expect("tmp");
    let allow = &grant("payments", FROM_SHOP, ANY_SERVICE);
    let none = "# no grant\n";
    let default_mesh = "apiVersion: meshc.dev/v1alpha1\nkind: Mesh\nmetadata: {name: mesh}\n";
    let dir = |name: &str| tmp.path().join(name);
    write_dir(&dir("granted"), &files(REQUIRED, allow));
    write_dir(&dir("ungranted"), &files(REQUIRED, none));
    write_dir(&dir("default-granted"), &files(default_mesh, allow));
    write_dir(&dir("default-ungranted"), &files(default_mesh, none));
    // Where grants are optional they change nothing that compiles.
    assert_eq!(
        diff(&dir("default-granted"), &dir("default-ungranted")).0,
        Some(0)
    );
    // Where they are required, the side without one is refused, as any side with errors.
    for (old, new) in [("granted", "ungranted"), ("ungranted", "granted")] {
        let (code, stderr) = diff(&dir(old), &dir(new));
        assert_eq!(code, Some(2), "{old} -> {new}: {stderr}");
        assert!(stderr.contains("ungranted` has errors"), "{stderr}");
        assert!(stderr.contains("error[MC0308]"), "{stderr}");
    }
    // Requiring grants where the one needed exists compiles the same mesh.
    assert_eq!(diff(&dir("default-granted"), &dir("granted")).0, Some(0));
}
