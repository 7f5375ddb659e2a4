#![allow(dead_code)]

use mesh_policy::{PolicyModel, ServiceEntry};

pub const TRUST_DOMAIN: &str = "cluster.local";

/// Bookinfo in `default`, plus a `shop` namespace to test namespace scopes.
pub fn bookinfo() -> PolicyModel {
    let mut services: Vec<ServiceEntry> = ["productpage", "details", "reviews", "ratings"]
        .iter()
        .map(|n| ServiceEntry::new("default", *n))
        .collect();
    services.push(ServiceEntry::new("shop", "cart"));
    PolicyModel {
        trust_domain: TRUST_DOMAIN.into(),
        services,
        context_headers: vec!["X-Debug".into(), "x-user".into()],
    }
}

pub fn spiffe(ns: &str, name: &str) -> String {
    format!("spiffe://{TRUST_DOMAIN}/ns/{ns}/sa/{name}")
}

pub const BOOKINFO: &str = r#"// Bookinfo: who may call whom.
@id("productpage-reads-details")
permit (
    principal == Workload::"default/productpage",
    action in Action::"read",
    resource == Service::"default/details"
);

@id("productpage-reads-reviews")
permit (
    principal == Workload::"default/productpage",
    action in Action::"read",
    resource == Service::"default/reviews"
);

@id("reviews-reads-ratings")
permit (
    principal == Workload::"default/reviews",
    action == Action::"GET",
    resource == Service::"default/ratings"
)
when { context.path like "/ratings/*" };

@id("namespace-health")
permit (principal in Namespace::"default", action == Action::"GET", resource in Namespace::"default")
when { context.path == "/health" };

@id("reviews-anything-productpage")
permit (principal == Workload::"default/reviews", action, resource == Service::"default/productpage");

@id("no-writes-to-productpage")
forbid (principal, action in Action::"write", resource == Service::"default/productpage");

@id("debug-only-from-productpage")
forbid (principal, action, resource is Service)
when {
    context.headers has "x-debug" && context.headers["x-debug"] == "1" &&
    principal.name != "productpage"
};
"#;

/// No `@id`: the policy's id is `ratings.cedar:2:1`.
pub const RATINGS: &str = r#"// HEAD is fine from anyone in the mesh.
permit (principal is Workload in Namespace::"default", action == Action::"HEAD", resource == Service::"default/ratings");

@id("shop-internal")
permit (principal in Namespace::"shop", action, resource is Service in Namespace::"shop");

@id("cart-from-productpage")
permit (principal == Workload::"default/productpage", action == Action::"POST", resource in Service::"shop/cart");
"#;

pub fn sources() -> Vec<(String, String)> {
    vec![
        ("bookinfo.cedar".to_string(), BOOKINFO.to_string()),
        ("ratings.cedar".to_string(), RATINGS.to_string()),
    ]
}

pub fn file_names(sources: &[(String, String)]) -> Vec<String> {
    sources.iter().map(|(n, _)| n.clone()).collect()
}
