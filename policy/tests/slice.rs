mod common;

use common::{bookinfo, file_names, sources};
use mesh_policy::{ServiceEntry, bundle_for, entities_json, schema_text, validate};

fn policy_ids(service: &str) -> Vec<String> {
    let model = bookinfo();
    let sources = sources();
    let (set, diags) = validate(&model, &sources);
    assert!(diags.is_empty(), "{diags:#?}");
    bundle_for(&model, &set, service, &file_names(&sources))
        .policies
        .into_iter()
        .map(|p| p.id)
        .collect()
}

#[test]
fn keeps_only_policies_that_can_apply() {
    // `debug-only-from-productpage` (`resource is Service`) applies everywhere; the namespace
    // policy everywhere in `default`; `==` policies only to their service.
    assert_eq!(
        policy_ids("default/productpage"),
        [
            "debug-only-from-productpage",
            "namespace-health",
            "no-writes-to-productpage",
            "reviews-anything-productpage",
        ]
    );
    assert_eq!(
        policy_ids("default/details"),
        [
            "debug-only-from-productpage",
            "namespace-health",
            "productpage-reads-details"
        ]
    );
    assert_eq!(
        policy_ids("default/ratings"),
        [
            "debug-only-from-productpage",
            "namespace-health",
            "ratings.cedar:2:1",
            "reviews-reads-ratings",
        ]
    );
    // `resource in Service::"shop/cart"` and `resource is Service in Namespace::"shop"`.
    assert_eq!(
        policy_ids("shop/cart"),
        [
            "cart-from-productpage",
            "debug-only-from-productpage",
            "shop-internal"
        ]
    );
}

#[test]
fn unconstrained_resource_is_kept_and_other_namespaces_dropped() {
    let model = bookinfo();
    let src = "@id(\"any\") permit (principal, action, resource);\n\
               @id(\"in-shop\") permit (principal, action, resource in Namespace::\"shop\");\n\
               @id(\"is-in-default\") permit (principal, action, resource is Service in Namespace::\"default\");\n\
               @id(\"cond\") permit (principal, action, resource) when { resource == Service::\"shop/cart\" };\n";
    let sources = vec![("x.cedar".to_string(), src.to_string())];
    let (set, diags) = validate(&model, &sources);
    assert!(diags.is_empty(), "{diags:#?}");
    let ids = |svc: &str| -> Vec<String> {
        bundle_for(&model, &set, svc, &file_names(&sources))
            .policies
            .into_iter()
            .map(|p| p.id)
            .collect()
    };
    // Conditions are not analysed: `cond` stays everywhere.
    assert_eq!(ids("default/reviews"), ["any", "cond", "is-in-default"]);
    assert_eq!(ids("shop/cart"), ["any", "cond", "in-shop"]);
}

#[test]
fn bundle_contents() {
    let model = bookinfo();
    let sources = sources();
    let (set, _) = validate(&model, &sources);
    let bundle = bundle_for(&model, &set, "default/ratings", &file_names(&sources));
    assert_eq!(bundle.schema, schema_text(&model));
    assert_eq!(bundle.context_headers, ["x-debug", "x-user"]);
    let p = bundle
        .policies
        .iter()
        .find(|p| p.id == "ratings.cedar:2:1")
        .expect("policy");
    assert_eq!(
        (p.source.file.as_str(), p.source.line, p.source.column),
        ("ratings.cedar", 2, 1)
    );
    assert!(
        p.text
            .starts_with("permit (principal is Workload in Namespace::\"default\"")
    );
    let p = bundle
        .policies
        .iter()
        .find(|p| p.id == "reviews-reads-ratings")
        .expect("policy");
    assert_eq!(
        (p.source.file.as_str(), p.source.line),
        ("bookinfo.cedar", 16)
    );

    // Entities: namespaces, the service itself, every workload; sorted by type then id.
    let uids: Vec<(String, String)> = bundle
        .entities
        .as_array()
        .expect("array")
        .iter()
        .map(|e| {
            let uid = &e["uid"];
            (
                uid["type"].as_str().unwrap_or("").into(),
                uid["id"].as_str().unwrap_or("").into(),
            )
        })
        .collect();
    let want: Vec<(String, String)> = [
        ("Namespace", "default"),
        ("Namespace", "shop"),
        ("Service", "default/ratings"),
        ("Workload", "default/details"),
        ("Workload", "default/productpage"),
        ("Workload", "default/ratings"),
        ("Workload", "default/reviews"),
        ("Workload", "shop/cart"),
    ]
    .iter()
    .map(|(t, i)| (t.to_string(), i.to_string()))
    .collect();
    assert_eq!(uids, want);
    let reviews = bundle.entities.as_array().and_then(|a| {
        a.iter()
            .find(|e| e["uid"]["type"] == "Workload" && e["uid"]["id"] == "default/reviews")
    });
    let reviews = reviews.expect("reviews workload");
    assert_eq!(
        reviews["attrs"]["spiffe"],
        "spiffe://cluster.local/ns/default/sa/reviews"
    );
    assert_eq!(
        reviews["parents"],
        serde_json::json!([{"type": "Namespace", "id": "default"}])
    );
}

#[test]
fn services_named_in_conditions_come_along() {
    let model = bookinfo();
    let src = "@id(\"c\") permit (principal, action, resource == Service::\"default/details\") \
               when { Service::\"default/reviews\".namespace == \"default\" };\n";
    let sources = vec![("x.cedar".to_string(), src.to_string())];
    let (set, diags) = validate(&model, &sources);
    assert!(diags.is_empty(), "{diags:#?}");
    let bundle = bundle_for(&model, &set, "default/details", &file_names(&sources));
    let services: Vec<&str> = bundle
        .entities
        .as_array()
        .expect("array")
        .iter()
        .filter(|e| e["uid"]["type"] == "Service")
        .filter_map(|e| e["uid"]["id"].as_str())
        .collect();
    assert_eq!(services, ["default/details", "default/reviews"]);
}

#[test]
fn schema_and_entities_are_deterministic() {
    let model = bookinfo();
    let mut shuffled = model.clone();
    shuffled.services.reverse();
    shuffled
        .services
        .push(ServiceEntry::new("default", "details")); // duplicate
    shuffled.context_headers = vec!["x-user".into(), "x-debug".into(), "X-USER".into()];
    assert_eq!(schema_text(&model), schema_text(&shuffled));
    assert_eq!(entities_json(&model), entities_json(&shuffled));
    let text = schema_text(&model);
    assert!(text.contains("\"x-debug\"?: String"), "{text}");
    assert!(
        text.contains("action \"GET\", \"HEAD\", \"OPTIONS\" in [\"read\"]"),
        "{text}"
    );
    assert!(
        text.contains("action \"POST\", \"PUT\", \"PATCH\", \"DELETE\" in [\"write\"]"),
        "{text}"
    );
    let all = entities_json(&model);
    let types: Vec<&str> = all
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|e| e["uid"]["type"].as_str())
        .collect::<Vec<_>>();
    assert!(types.windows(2).all(|w| w[0] <= w[1]));
    assert_eq!(types.iter().filter(|t| **t == "Workload").count(), 5);
}

#[test]
fn index_agrees_with_scope_rule() {
    let model = bookinfo();
    let mut sources = sources();
    sources.push((
        "odd.cedar".to_string(),
        "@id(\"is-workload\") permit (principal, action, resource is Workload);\n\
         @id(\"eq-namespace\") permit (principal, action, resource == Namespace::\"default\");\n\
         @id(\"is-service-in-service\") permit (principal, action, resource is Service in Service::\"default/details\");\n"
            .to_string(),
    ));
    let (set, _) = validate(&model, &sources);
    let mut targets: Vec<String> = model.services.iter().map(|s| s.key()).collect();
    targets.push("elsewhere/ghost".to_string());
    for svc in &targets {
        let mut want: Vec<String> = set
            .entries()
            .iter()
            .filter(|e| {
                let p = set.cedar_policy(&e.id).expect("policy");
                mesh_policy::slice::resource_scope_matches(&p.resource_constraint(), svc)
            })
            .map(|e| e.id.clone())
            .collect();
        want.sort();
        assert_eq!(mesh_policy::slice::policy_ids_for(&set, svc), want, "{svc}");
    }
    let details = mesh_policy::slice::policy_ids_for(&set, "default/details");
    assert!(details.contains(&"is-service-in-service".to_string()));
    assert!(!details.contains(&"is-workload".to_string()));
    assert!(!details.contains(&"eq-namespace".to_string()));
}

#[test]
fn bundle_uses_the_model_it_is_given() {
    let model = bookinfo();
    let sources = sources();
    let (set, _) = validate(&model, &sources);
    let mut bigger = model.clone();
    bigger.services.push(ServiceEntry::new("extra", "svc"));
    let bundle = bundle_for(&bigger, &set, "extra/svc", &file_names(&sources));
    let ids: Vec<String> = bundle
        .entities
        .as_array()
        .expect("array")
        .iter()
        .map(|e| {
            format!(
                "{}::{}",
                e["uid"]["type"].as_str().unwrap_or(""),
                e["uid"]["id"].as_str().unwrap_or("")
            )
        })
        .collect();
    assert!(ids.contains(&"Workload::extra/svc".to_string()), "{ids:?}");
    assert!(ids.contains(&"Service::extra/svc".to_string()), "{ids:?}");
    assert!(ids.contains(&"Namespace::extra".to_string()), "{ids:?}");
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(ids, sorted);
}

/// A bundle carries the namespace entities its services and workloads sit in, not every
/// namespace of the mesh, and every entity object has its keys in sorted (canonical) order.
#[test]
fn bundles_carry_only_the_namespaces_they_use() {
    let model = bookinfo();
    let sources = sources();
    let (set, _) = validate(&model, &sources);
    let namespaces = |callers: &[&str]| -> Vec<String> {
        let keep: std::collections::BTreeSet<String> =
            callers.iter().map(|c| c.to_string()).collect();
        let b = mesh_policy::bundle_for_callers(
            &model,
            &set,
            "default/details",
            &file_names(&sources),
            Some(&keep),
        );
        let all = b.entities.as_array().expect("array").clone();
        for e in &all {
            let keys: Vec<&String> = e.as_object().expect("object").keys().collect();
            let mut sorted = keys.clone();
            sorted.sort();
            assert_eq!(keys, sorted, "{e}");
        }
        all.iter()
            .filter(|e| e["uid"]["type"] == "Namespace")
            .map(|e| e["uid"]["id"].as_str().expect("id").to_string())
            .collect()
    };
    assert_eq!(namespaces(&["default/productpage"]), ["default"]);
    assert_eq!(namespaces(&["shop/cart"]), ["default", "shop"]);
}
