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
