mod common;

use common::{bookinfo, file_names, sources, spiffe};
use mesh_artifact::{AuthzBundle, AuthzMode};
use mesh_policy::{
    Authorizer, AuthzRequest, Decision, bundle_for, entities_json, schema_text, validate,
};

/// An authorizer over the bundle sliced for `service`.
fn sliced(service: &str) -> Authorizer {
    let model = bookinfo();
    let sources = sources();
    let (set, diags) = validate(&model, &sources);
    assert!(diags.is_empty(), "{diags:#?}");
    let bundle = bundle_for(&model, &set, service, &file_names(&sources));
    Authorizer::new(&bundle).expect("bundle loads")
}

/// An authorizer over every policy of the mesh.
fn unsliced() -> Authorizer {
    let model = bookinfo();
    let sources = sources();
    let (set, diags) = validate(&model, &sources);
    assert!(diags.is_empty(), "{diags:#?}");
    let policies = set
        .entries()
        .iter()
        .map(|e| mesh_artifact::PolicyText {
            id: e.id.clone(),
            source: mesh_artifact::SourcePos {
                file: String::new(),
                line: e.line,
                column: e.column,
            },
            text: e.text.clone(),
        })
        .collect();
    let bundle = AuthzBundle {
        schema: schema_text(&model),
        policies,
        entities: entities_json(&model),
        context_headers: model.context_headers.clone(),
    };
    Authorizer::new(&bundle).expect("bundle loads")
}

struct Req<'a> {
    from: String,
    to: &'a str,
    method: &'a str,
    path: &'a str,
    headers: Vec<(&'a str, &'a str)>,
}

fn req<'a>(from: &str, to: &'a str, method: &'a str, path: &'a str) -> Req<'a> {
    let (ns, name) = from.split_once('/').expect("ns/name");
    Req {
        from: spiffe(ns, name),
        to,
        method,
        path,
        headers: Vec::new(),
    }
}

fn decide(authz: &Authorizer, r: &Req<'_>, mode: AuthzMode) -> (Decision, Vec<String>, bool, bool) {
    let request = AuthzRequest {
        principal: &r.from,
        service: r.to,
        method: r.method,
        path: r.path,
        query: "",
        route: "",
        headers: &r.headers,
    };
    let d = authz.authorize(&request, mode);
    // The indexed evaluation agrees with Cedar's own authorizer over every policy.
    assert_eq!(d, authz.authorize_reference(&request, mode));
    (d.decision, d.policies, d.allowed, d.audited_deny)
}

fn enforce(r: &Req<'_>) -> (Decision, Vec<String>) {
    let (decision, policies, allowed, audited) = decide(&sliced(r.to), r, AuthzMode::Enforce);
    assert_eq!(allowed, decision == Decision::Allow);
    assert!(!audited);
    (decision, policies)
}

fn ids(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn productpage_may_read_reviews_and_details() {
    for (to, id) in [
        ("default/details", "productpage-reads-details"),
        ("default/reviews", "productpage-reads-reviews"),
    ] {
        for method in ["GET", "HEAD", "OPTIONS"] {
            let got = enforce(&req("default/productpage", to, method, "/x"));
            assert_eq!(got, (Decision::Allow, ids(&[id])), "{method} {to}");
        }
        // Writes are not granted: deny with no determining policy.
        let got = enforce(&req("default/productpage", to, "POST", "/x"));
        assert_eq!(got, (Decision::Deny, vec![]), "POST {to}");
    }
    // productpage may not call ratings directly.
    let got = enforce(&req(
        "default/productpage",
        "default/ratings",
        "GET",
        "/ratings/1",
    ));
    assert_eq!(got, (Decision::Deny, vec![]));
}

#[test]
fn reviews_may_get_ratings_paths_only() {
    let got = enforce(&req(
        "default/reviews",
        "default/ratings",
        "GET",
        "/ratings/7",
    ));
    assert_eq!(got, (Decision::Allow, ids(&["reviews-reads-ratings"])));
    let got = enforce(&req("default/reviews", "default/ratings", "GET", "/admin"));
    assert_eq!(got, (Decision::Deny, vec![]));
    // `HEAD` comes from the policy without `@id`: its id is file, line and column.
    let got = enforce(&req(
        "default/reviews",
        "default/ratings",
        "HEAD",
        "/ratings/7",
    ));
    assert_eq!(got, (Decision::Allow, ids(&["ratings.cedar:2:1"])));
}

#[test]
fn forbid_wins_over_permit() {
    let got = enforce(&req("default/reviews", "default/productpage", "GET", "/"));
    assert_eq!(
        got,
        (Decision::Allow, ids(&["reviews-anything-productpage"]))
    );
    for method in ["POST", "PUT", "PATCH", "DELETE"] {
        let got = enforce(&req("default/reviews", "default/productpage", method, "/"));
        assert_eq!(
            got,
            (Decision::Deny, ids(&["no-writes-to-productpage"])),
            "{method}"
        );
    }
    // Both a permit and the forbid apply to the health check with a write method.
    let got = enforce(&req(
        "default/details",
        "default/productpage",
        "GET",
        "/health",
    ));
    assert_eq!(got, (Decision::Allow, ids(&["namespace-health"])));
    let got = enforce(&req(
        "default/details",
        "default/productpage",
        "DELETE",
        "/health",
    ));
    assert_eq!(got, (Decision::Deny, ids(&["no-writes-to-productpage"])));
}

#[test]
fn headers_reach_policy_case_insensitively() {
    let mut r = req("default/details", "default/productpage", "GET", "/health");
    r.headers = vec![("X-Debug", "1")];
    assert_eq!(
        enforce(&r),
        (Decision::Deny, ids(&["debug-only-from-productpage"]))
    );
    r.headers = vec![("x-debug", "0")];
    assert_eq!(enforce(&r), (Decision::Allow, ids(&["namespace-health"])));
    // productpage itself may send the debug header.
    let mut r = req("default/productpage", "default/details", "GET", "/");
    r.headers = vec![("x-debug", "1"), ("x-other", "1")];
    assert_eq!(
        enforce(&r),
        (Decision::Allow, ids(&["productpage-reads-details"]))
    );
}

#[test]
fn unknown_callers_are_denied() {
    let authz = sliced("default/details");
    for principal in [
        "",
        "spiffe://evil.example/ns/default/sa/productpage",
        "spiffe://cluster.local/ns/default/sa/intruder",
        "not a uri",
    ] {
        assert!(!authz.knows_principal(principal));
        let request = AuthzRequest {
            principal,
            service: "default/details",
            method: "GET",
            path: "/health",
            ..Default::default()
        };
        let d = authz.authorize(&request, AuthzMode::Enforce);
        assert_eq!(d, authz.authorize_reference(&request, AuthzMode::Enforce));
        assert_eq!(d.decision, Decision::Deny, "{principal}");
        assert!(!d.allowed);
        // The unknown caller has attributes, so the `principal.name` forbid evaluates cleanly.
        assert!(d.errors.is_empty(), "{:?}", d.errors);
    }
    assert!(authz.knows_principal(&spiffe("default", "productpage")));
}

#[test]
fn namespace_scopes() {
    let got = enforce(&req("shop/cart", "shop/cart", "DELETE", "/"));
    assert_eq!(got, (Decision::Allow, ids(&["shop-internal"])));
    let got = enforce(&req("default/productpage", "shop/cart", "POST", "/"));
    assert_eq!(got, (Decision::Allow, ids(&["cart-from-productpage"])));
    let got = enforce(&req("default/reviews", "shop/cart", "POST", "/"));
    assert_eq!(got, (Decision::Deny, vec![]));
    let got = enforce(&req("shop/cart", "default/details", "GET", "/health"));
    assert_eq!(got, (Decision::Deny, vec![]));
}

#[test]
fn unknown_methods_only_meet_unconstrained_actions() {
    // `PROPFIND` is in no group: `reviews-anything-productpage` (any action) still applies.
    let got = enforce(&req(
        "default/reviews",
        "default/productpage",
        "PROPFIND",
        "/",
    ));
    assert_eq!(
        got,
        (Decision::Allow, ids(&["reviews-anything-productpage"]))
    );
    let got = enforce(&req(
        "default/productpage",
        "default/details",
        "PROPFIND",
        "/",
    ));
    assert_eq!(got, (Decision::Deny, vec![]));
}

#[test]
fn audit_mode_lets_denies_through() {
    let authz = sliced("default/details");
    let r = req("default/productpage", "default/details", "DELETE", "/");
    let (decision, policies, allowed, audited) = decide(&authz, &r, AuthzMode::Audit);
    assert_eq!((decision, allowed, audited), (Decision::Deny, true, true));
    assert!(policies.is_empty());
    let (decision, _, allowed, audited) = decide(&authz, &r, AuthzMode::Enforce);
    assert_eq!((decision, allowed, audited), (Decision::Deny, false, false));
    let r = req("default/productpage", "default/details", "GET", "/");
    let (decision, policies, allowed, audited) = decide(&authz, &r, AuthzMode::Audit);
    assert_eq!((decision, allowed, audited), (Decision::Allow, true, false));
    assert_eq!(policies, ids(&["productpage-reads-details"]));
    // A forbid in audit mode: still reported as the determining policy.
    let authz = sliced("default/productpage");
    let r = req("default/reviews", "default/productpage", "PUT", "/");
    let (decision, policies, allowed, audited) = decide(&authz, &r, AuthzMode::Audit);
    assert_eq!((decision, allowed, audited), (Decision::Deny, true, true));
    assert_eq!(policies, ids(&["no-writes-to-productpage"]));
}

#[test]
fn sliced_and_unsliced_agree() {
    let all = unsliced();
    let services = [
        "default/productpage",
        "default/details",
        "default/reviews",
        "default/ratings",
        "shop/cart",
    ];
    let callers = [
        "default/productpage",
        "default/details",
        "default/reviews",
        "default/ratings",
        "shop/cart",
    ];
    let mut allowed = 0;
    for to in services {
        let one = sliced(to);
        for from in callers {
            for method in ["GET", "HEAD", "POST", "DELETE", "PROPFIND"] {
                for path in ["/", "/health", "/ratings/1"] {
                    for headers in [vec![], vec![("x-debug", "1")]] {
                        let mut r = req(from, to, method, path);
                        r.headers = headers;
                        let a = decide(&one, &r, AuthzMode::Enforce);
                        let b = decide(&all, &r, AuthzMode::Enforce);
                        assert_eq!(a, b, "{from} -> {to} {method} {path}");
                        allowed += usize::from(a.2);
                    }
                }
            }
        }
    }
    // The grid exercises both outcomes.
    assert!(allowed > 10, "{allowed}");
}

#[test]
fn bad_bundles_are_refused() {
    let model = bookinfo();
    let sources = sources();
    let (set, _) = validate(&model, &sources);
    let good = bundle_for(&model, &set, "default/details", &file_names(&sources));

    let mut bad = good.clone();
    bad.schema = "entity {".into();
    assert!(matches!(
        Authorizer::new(&bad),
        Err(mesh_policy::PolicyError::Schema(_))
    ));

    let mut bad = good.clone();
    bad.policies[0].text = "permit(principal".into();
    assert!(matches!(
        Authorizer::new(&bad),
        Err(mesh_policy::PolicyError::Policy { .. })
    ));

    let mut bad = good.clone();
    let dup = bad.policies[0].clone();
    bad.policies.push(dup);
    assert!(matches!(
        Authorizer::new(&bad),
        Err(mesh_policy::PolicyError::DuplicateId(_))
    ));

    for entities in [
        serde_json::json!([{"uid": {"type": "Service", "id": "x"}, "attrs": {}, "parents": []}]),
        serde_json::json!([{"uid": {"type": "User", "id": "x"}, "attrs": {}, "parents": []}]),
        serde_json::json!([{"uid": {"type": "Workload", "id": "a/b"},
            "attrs": {"namespace": "a", "name": "b", "spiffe": 1}, "parents": []}]),
        serde_json::json!([{"uid": {"type": "Namespace", "id": "a"}, "attrs": {"x": "y"}, "parents": []}]),
        serde_json::json!({"not": "an array"}),
        serde_json::json!([{"attrs": {}, "parents": []}]),
        serde_json::json!([{"uid": {"type": "Service", "id": "a/b"},
            "attrs": {"namespace": "a", "name": "b"}, "parents": [{"type": "Service", "id": "a/c"}]}]),
    ] {
        let mut bad = good.clone();
        bad.entities = entities.clone();
        assert!(
            matches!(
                Authorizer::new(&bad),
                Err(mesh_policy::PolicyError::Entities(_))
            ),
            "{entities}"
        );
    }

    let authz = Authorizer::new(&good).expect("loads");
    assert_eq!(authz.policy_count(), good.policies.len());
    assert_eq!(
        authz.context_headers(),
        ["x-debug".to_string(), "x-user".to_string()]
    );
}

#[test]
fn evaluation_errors_skip_the_policy() {
    // Bundles are not re-validated at load: a policy that reads an attribute of a service the
    // bundle lacks errors at run time, and Cedar skips it.
    let model = bookinfo();
    let sources = sources();
    let (set, _) = validate(&model, &sources);
    let mut bundle = bundle_for(&model, &set, "default/details", &file_names(&sources));
    bundle.policies.push(mesh_artifact::PolicyText {
        id: "reads-resource".into(),
        source: mesh_artifact::SourcePos {
            file: "x.cedar".into(),
            line: 1,
            column: 1,
        },
        text: "forbid (principal, action, resource) when { resource.name == \"ghost\" };".into(),
    });
    bundle.policies.push(mesh_artifact::PolicyText {
        id: "any-to-ghost".into(),
        source: mesh_artifact::SourcePos {
            file: "x.cedar".into(),
            line: 2,
            column: 1,
        },
        text: "permit (principal, action, resource == Service::\"default/ghost\");".into(),
    });
    let authz = Authorizer::new(&bundle).expect("loads");
    let from = spiffe("default", "reviews");
    let request = AuthzRequest {
        principal: &from,
        service: "default/ghost",
        method: "GET",
        path: "/",
        ..Default::default()
    };
    let d = authz.authorize(&request, AuthzMode::Enforce);
    assert_eq!(d, authz.authorize_reference(&request, AuthzMode::Enforce));
    // The forbid errored and was skipped: the permit decides.
    assert_eq!(d.decision, Decision::Allow);
    assert_eq!(d.policies, ids(&["any-to-ghost"]));
    assert_eq!(d.errors.len(), 1, "{:?}", d.errors);
    assert!(
        d.errors[0].starts_with("while evaluating policy `reads-resource`"),
        "{:?}",
        d.errors
    );
}

#[test]
fn authorizer_is_shareable() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Authorizer>();
    send_sync::<mesh_policy::PolicySet>();
}

// Differential coverage: the indexed, natively pre-checked evaluation (scopes checked on entity
// numbers, string tests on the context checked without Cedar, Cedar's evaluator built lazily
// and given a context only once an expression reading it runs) against Cedar's own authorizer
// over every policy, on bundles that are not validated, so conditions may also error.

const PRINCIPALS: &[&str] = &[
    "principal",
    "principal == Workload::\"default/productpage\"",
    "principal == Workload::\"default/reviews\"",
    "principal == Workload::\"\"",
    "principal in Namespace::\"default\"",
    "principal in Workload::\"default/reviews\"",
    "principal is Workload",
    "principal is Service",
    "principal is Workload in Namespace::\"shop\"",
    "principal is Service in Namespace::\"default\"",
];

const ACTIONS: &[&str] = &[
    "action",
    "action == Action::\"GET\"",
    "action == Action::\"PROPFIND\"",
    "action in Action::\"read\"",
    "action in Action::\"write\"",
    "action in [Action::\"POST\", Action::\"read\"]",
    "action in [Action::\"write\"]",
];

const RESOURCES: &[&str] = &[
    "resource",
    "resource == Service::\"default/details\"",
    "resource == Service::\"default/ghost\"",
    "resource == Service::\"shop/cart\"",
    "resource in Namespace::\"default\"",
    "resource in Service::\"default/details\"",
    "resource is Service",
    "resource is Workload",
    "resource is Service in Namespace::\"shop\"",
    "resource is Workload in Namespace::\"default\"",
];

/// Conditions: none, context string tests the authorizer checks natively, expressions only
/// Cedar evaluates (with and without `context`), and conditions that error on some requests.
const CONDITIONS: &[&str] = &[
    "",
    "when { context.path like \"/api/*\" }",
    "when { context.path == \"/health\" }",
    "when { \"/health\" == context.path }",
    "unless { context.method == \"DELETE\" }",
    "when { context.query like \"*debug=1*\" }",
    "when { context.route == \"default/r\" }",
    "when { context.path like \"*\" } unless { context.path like \"\" }",
    "when { context.headers has \"x-user\" && context.headers[\"x-user\"] == \"alice\" }",
    "when { context.headers has \"x-debug\" || context.path like \"/a*/*\" }",
    "when { !(context.headers has \"x-user\") }",
    "when { context.headers has \"X-Debug\" }",
    "when { context.headers has \"x-other\" }",
    // Errors when the header is absent.
    "when { context.headers[\"x-user\"] like \"a*\" }",
    // No context: Cedar alone, without building one.
    "when { principal.namespace == resource.namespace }",
    "when { principal.name != \"reviews\" }",
    "unless { principal in Namespace::\"shop\" }",
    // Context only Cedar reads.
    "when { if context.path == \"/\" then true else context.path like \"/api/*\" }",
    "when { context has path && context.headers == {} }",
    "when { principal.name == \"productpage\" && context.path like \"/api/*\" }",
    "when { context.path like \"/health\" || principal.namespace == \"shop\" }",
    // Entity attributes (strings in the store), natively compared.
    "when { principal.spiffe like \"spiffe://cluster.local/ns/default/*\" }",
    "when { resource.namespace == \"shop\" || resource.name == principal.name }",
    "unless { resource.namespace == context.headers[\"x-user\"] }",
    "when { principal.nope == \"x\" || context.path == \"/\" }",
    // Errors: unknown services have no attributes; `context.nope` does not exist.
    "when { resource.name == \"ghost\" }",
    "when { context.nope == \"x\" }",
    "when { context.path == \"/\" || context.nope == \"x\" }",
];

fn policy_text(effect: bool, p: usize, a: usize, r: usize, c: usize) -> String {
    format!(
        "{} ({}, {}, {}) {};",
        if effect { "forbid" } else { "permit" },
        PRINCIPALS[p % PRINCIPALS.len()],
        ACTIONS[a % ACTIONS.len()],
        RESOURCES[r % RESOURCES.len()],
        CONDITIONS[c % CONDITIONS.len()],
    )
}

/// An authorizer over `texts`, unvalidated, with ids given in `ids`.
fn raw(texts: &[(String, String)]) -> Authorizer {
    let model = bookinfo();
    let policies = texts
        .iter()
        .map(|(id, text)| mesh_artifact::PolicyText {
            id: id.clone(),
            source: mesh_artifact::SourcePos {
                file: "gen.cedar".into(),
                line: 1,
                column: 1,
            },
            text: text.clone(),
        })
        .collect();
    let bundle = AuthzBundle {
        schema: schema_text(&model),
        policies,
        entities: entities_json(&model),
        context_headers: model.context_headers.clone(),
    };
    Authorizer::new(&bundle).expect("bundle loads")
}

const CALLERS: &[&str] = &[
    "default/productpage",
    "default/reviews",
    "shop/cart",
    "default/intruder",
];
const SERVICES: &[&str] = &[
    "default/details",
    "default/productpage",
    "shop/cart",
    "default/ghost",
];
const METHODS: &[&str] = &["GET", "HEAD", "POST", "DELETE", "PROPFIND", "read"];
const PATHS: &[&str] = &["/", "/health", "/api/v1", "/apix", ""];
const HEADERS: &[&[(&str, &str)]] = &[
    &[],
    &[("x-user", "alice")],
    &[("X-User", "bob"), ("x-debug", "1")],
    &[("x-debug", "0"), ("x-user", "alice"), ("x-user", "mallory")],
    &[("x-other", "1")],
];

#[derive(Clone, Copy, Debug, Default)]
struct Seen {
    allow: usize,
    deny_by_forbid: usize,
    deny_by_default: usize,
    errors: usize,
}

/// `authorize` and `authorize_reference` agree on one request; returns the decision.
fn agree(authz: &Authorizer, req: &AuthzRequest<'_>, mode: AuthzMode, seen: &mut Seen) {
    let d = authz.authorize(req, mode);
    let reference = authz.authorize_reference(req, mode);
    assert_eq!(d, reference, "{req:?} {mode:?}");
    // The borrowing form gives the same outcome.
    let v = authz.decide(req, mode);
    assert_eq!(
        v.policies.iter().collect::<Vec<_>>(),
        d.policies.iter().map(String::as_str).collect::<Vec<_>>()
    );
    assert_eq!(format!("{:?}", v.policies), format!("{:?}", d.policies));
    assert_eq!(v.into_decision(), d);
    match (d.decision, d.policies.is_empty()) {
        (Decision::Allow, _) => seen.allow += 1,
        (Decision::Deny, false) => seen.deny_by_forbid += 1,
        (Decision::Deny, true) => seen.deny_by_default += 1,
    }
    seen.errors += usize::from(!d.errors.is_empty());
}

fn sweep(authz: &Authorizer, seen: &mut Seen, stride: usize) {
    let mut n = 0usize;
    for from in CALLERS {
        let (ns, name) = from.split_once('/').expect("ns/name");
        let principal = spiffe(ns, name);
        for to in SERVICES {
            for method in METHODS {
                for path in PATHS {
                    for headers in HEADERS {
                        n += 1;
                        if !n.is_multiple_of(stride) {
                            continue;
                        }
                        let req = AuthzRequest {
                            principal: &principal,
                            service: to,
                            method,
                            path,
                            query: if n.is_multiple_of(3) {
                                "a=1&debug=1"
                            } else {
                                ""
                            },
                            route: if n.is_multiple_of(2) { "default/r" } else { "" },
                            headers,
                        };
                        let mode = if n.is_multiple_of(4) {
                            AuthzMode::Audit
                        } else {
                            AuthzMode::Enforce
                        };
                        agree(authz, &req, mode, seen);
                    }
                }
            }
        }
    }
}

#[test]
fn every_condition_alone_agrees_with_cedar() {
    // Each condition under a blanket scope, as a permit and as a forbid next to a blanket
    // permit, over the whole request grid.
    let mut seen = Seen::default();
    for c in 0..CONDITIONS.len() {
        for forbid in [false, true] {
            let mut texts = vec![("c".to_string(), policy_text(forbid, 0, 0, 0, c))];
            if forbid {
                texts.push(("all".into(), policy_text(false, 0, 0, 0, 0)));
            }
            sweep(&raw(&texts), &mut seen, 1);
        }
    }
    assert!(seen.allow > 100 && seen.deny_by_forbid > 100, "{seen:?}");
    assert!(seen.deny_by_default > 100 && seen.errors > 100, "{seen:?}");
}

#[test]
fn every_scope_alone_agrees_with_cedar() {
    let mut seen = Seen::default();
    for p in 0..PRINCIPALS.len() {
        for a in 0..ACTIONS.len() {
            for r in 0..RESOURCES.len() {
                let texts = vec![("s".to_string(), policy_text(false, p, a, r, 0))];
                sweep(&raw(&texts), &mut seen, 7);
            }
        }
    }
    assert!(seen.allow > 100 && seen.deny_by_default > 100, "{seen:?}");
}

#[test]
fn context_free_policies_before_context_readers() {
    // Ids sort the evaluation order: `a-*` (read no context, evaluated by Cedar first, so its
    // evaluator is built without one) come before `b-*`, which read the context only through
    // expressions Cedar evaluates. A lazily built context that is not rebuilt shows as
    // errors or wrong decisions here.
    let texts = vec![
        (
            "a-same-namespace".to_string(),
            "permit (principal, action, resource) when { principal.namespace == resource.namespace };"
                .to_string(),
        ),
        (
            "b-if-context".to_string(),
            "forbid (principal, action, resource) when { if context.path == \"/\" then true else false };"
                .to_string(),
        ),
        (
            "c-record".to_string(),
            "forbid (principal, action == Action::\"POST\", resource) when { principal.name != \"x\" && context.headers == {} };"
                .to_string(),
        ),
    ];
    let authz = raw(&texts);
    let mut seen = Seen::default();
    sweep(&authz, &mut seen, 1);
    assert!(seen.allow > 10 && seen.deny_by_forbid > 10, "{seen:?}");
    // One request by hand: same namespace, path `/`: the context forbid applies.
    let from = spiffe("default", "reviews");
    let req = AuthzRequest {
        principal: &from,
        service: "default/details",
        method: "GET",
        path: "/",
        ..Default::default()
    };
    let d = authz.authorize(&req, AuthzMode::Enforce);
    assert_eq!(d.decision, Decision::Deny);
    assert_eq!(d.policies, ids(&["b-if-context"]));
    assert!(d.errors.is_empty(), "{:?}", d.errors);
    let req = AuthzRequest { path: "/x", ..req };
    let d = authz.authorize(&req, AuthzMode::Audit);
    assert_eq!((d.decision, d.allowed), (Decision::Allow, true));
    assert_eq!(d.policies, ids(&["a-same-namespace"]));
}

#[test]
fn determining_policies_are_sorted_by_id() {
    // Bundle order, index bucket and id order all differ: `m-pair` is indexed by principal
    // and resource, `z-any` and `a-ns` by neither.
    let texts = vec![
        (
            "z-any".to_string(),
            "permit (principal, action, resource);".to_string(),
        ),
        (
            "m-pair".to_string(),
            "permit (principal == Workload::\"default/reviews\", action, resource == Service::\"default/details\");".to_string(),
        ),
        (
            "a-ns".to_string(),
            "permit (principal in Namespace::\"default\", action, resource) when { context.path like \"/*\" };".to_string(),
        ),
    ];
    let authz = raw(&texts);
    let from = spiffe("default", "reviews");
    let req = AuthzRequest {
        principal: &from,
        service: "default/details",
        method: "GET",
        path: "/",
        ..Default::default()
    };
    let mut seen = Seen::default();
    agree(&authz, &req, AuthzMode::Enforce, &mut seen);
    let d = authz.authorize(&req, AuthzMode::Enforce);
    assert_eq!(d.policies, ids(&["a-ns", "m-pair", "z-any"]));
}

mod generated {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// Random mixes of permits and forbids, scopes and conditions.
        #[test]
        fn mixed_policy_sets_agree_with_cedar(
            policies in proptest::collection::vec(
                (any::<bool>(), 0..PRINCIPALS.len(), 0..ACTIONS.len(), 0..RESOURCES.len(), 0..CONDITIONS.len()),
                1..8,
            ),
            stride in 3usize..13,
        ) {
            let texts: Vec<(String, String)> = policies
                .iter()
                .enumerate()
                .map(|(i, (f, p, a, r, c))| (format!("p{}", (i * 7) % 10), policy_text(*f, *p, *a, *r, *c)))
                .collect();
            // Ids may repeat (`p0` twice): such a bundle is refused; keep the first of each.
            let mut unique: Vec<(String, String)> = Vec::new();
            for t in texts {
                if !unique.iter().any(|(id, _)| *id == t.0) {
                    unique.push(t);
                }
            }
            let mut seen = Seen::default();
            sweep(&raw(&unique), &mut seen, stride);
        }
    }
}
