//! Calls `Authorizer::authorize` `N` times on one scenario, for instruction counts under
//! callgrind (the cost of one call is the difference between two runs divided by the
//! difference in `N`, which cancels the cost of loading):
//!
//! ```text
//! cargo build --release -p mesh-policy --example authz_calls
//! valgrind --tool=callgrind --callgrind-out-file=/dev/null \
//!     target/release/examples/authz_calls permit_all 0
//! valgrind --tool=callgrind --callgrind-out-file=/dev/null \
//!     target/release/examples/authz_calls permit_all 1000
//! ```
//!
//! A third argument `decide` calls the borrowing `Authorizer::decide` instead of `authorize`.
//!
//! Scenarios:
//! - `permit_all`: the one policy `permit (principal, action, resource);` (what the proxy's
//!   round-trip benchmark loads);
//! - `proxy20`: the 20 policies of the proxy's `authz_check` bench (18 path conditions, a
//!   header `forbid`, a blanket permit for another caller);
//! - `sliced_allow` / `sliced_deny`: `svc1`'s bundle of the `authz` bench (1,000 policies mesh).

use std::hint::black_box;

use mesh_artifact::{AuthzBundle, AuthzMode};
use mesh_policy::{Authorizer, AuthzRequest, PolicyModel, ServiceEntry, bundle_for, validate};

fn main() {
    let mut args = std::env::args().skip(1);
    let scenario = args.next().unwrap_or_else(|| "permit_all".into());
    let n: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(1000);
    let Some((authz, caller, service, headers)) = scenario_of(&scenario) else {
        eprintln!("unknown scenario `{scenario}`");
        std::process::exit(2);
    };
    let headers: Vec<(&str, &str)> = headers.iter().map(|(a, b)| (*a, *b)).collect();
    let request = AuthzRequest {
        principal: &caller,
        service: &service,
        method: "GET",
        path: "/api/v7/items",
        query: "x=1",
        route: "ns1/route",
        headers: &headers,
    };
    // `decide`: the borrowing `Authorizer::decide` (what the proxy calls) instead.
    let borrowed = args.next().as_deref() == Some("decide");
    let first = authz.authorize(&request, AuthzMode::Enforce);
    let mut allowed = 0usize;
    for _ in 0..n {
        allowed += usize::from(if borrowed {
            authz
                .decide(black_box(&request), AuthzMode::Enforce)
                .allowed
        } else {
            authz
                .authorize(black_box(&request), AuthzMode::Enforce)
                .allowed
        });
    }
    println!("{scenario}: {first:?} ({allowed} of {n} allowed)");
}

type Scenario = (
    Authorizer,
    String,
    String,
    Vec<(&'static str, &'static str)>,
);

fn scenario_of(name: &str) -> Option<Scenario> {
    let spiffe = |ns: &str, n: &str| format!("spiffe://cluster.local/ns/{ns}/sa/{n}");
    match name {
        "permit_all" | "proxy20" => {
            let model = PolicyModel {
                trust_domain: "cluster.local".into(),
                services: ["a", "b", "c"]
                    .iter()
                    .map(|n| ServiceEntry::new("default", *n))
                    .collect(),
                context_headers: vec!["x-user".into()],
            };
            let mut text = String::new();
            if name == "permit_all" {
                text.push_str("permit (principal, action, resource);\n");
            } else {
                for i in 0..18 {
                    text.push_str(&format!(
                        "permit (principal == Workload::\"default/a\", action in Action::\"read\", \
                         resource == Service::\"default/b\") when {{ context.path like \"/api/v{i}/*\" }};\n"
                    ));
                }
                text.push_str(
                    "forbid (principal, action, resource) when { context.headers has \"x-user\" \
                     && context.headers[\"x-user\"] == \"mallory\" };\n\
                     permit (principal == Workload::\"default/c\", action, resource);\n",
                );
            }
            let authz = load(&model, text, "default/b")?;
            Some((
                authz,
                spiffe("default", "a"),
                "default/b".into(),
                vec![("x-user", "alice")],
            ))
        }
        "sliced_allow" | "sliced_deny" => {
            let (model, text) = bench_mesh(1000);
            let authz = load(&model, text, "ns1/svc1")?;
            let (caller, headers) = if name == "sliced_allow" {
                (spiffe("ns0", "svc0"), vec![("x-user", "alice")])
            } else {
                (spiffe("ns2", "svc2"), vec![("x-debug", "1")])
            };
            Some((authz, caller, "ns1/svc1".into(), headers))
        }
        _ => None,
    }
}

fn load(model: &PolicyModel, text: String, service: &str) -> Option<Authorizer> {
    let sources = vec![("mesh.cedar".to_string(), text)];
    let (set, diags) = validate(model, &sources);
    if !diags.is_empty() {
        eprintln!("{:?}", diags.first());
        return None;
    }
    let bundle: AuthzBundle = bundle_for(model, &set, service, &["mesh.cedar".to_string()]);
    Authorizer::new(&bundle).ok()
}

/// The mesh of `benches/authz.rs`.
fn bench_mesh(policies: usize) -> (PolicyModel, String) {
    let service = |i: usize| ServiceEntry::new(format!("ns{}", i % 50), format!("svc{i}"));
    let services = (policies / 2).max(3);
    let model = PolicyModel {
        trust_domain: "cluster.local".into(),
        services: (0..services).map(service).collect(),
        context_headers: vec!["x-debug".into(), "x-user".into()],
    };
    let mut text = String::new();
    text.push_str(
        "@id(\"debug-only-from-svc0\")\nforbid (principal, action, resource is Service)\n\
         when { context.headers has \"x-debug\" && principal.name != \"svc0\" };\n\n\
         @id(\"health\")\npermit (principal, action == Action::\"GET\", resource)\n\
         when { context.path == \"/health\" && principal.namespace == resource.namespace };\n\n",
    );
    for i in 0..services {
        let me = service(i).key();
        let prev = service((i + services - 1) % services).key();
        let next = service((i + 1) % services).key();
        text.push_str(&format!(
            "@id(\"{me}-read\")\npermit (principal == Workload::\"{prev}\", action in Action::\"read\", \
             resource == Service::\"{me}\");\n\n\
             @id(\"{me}-write\")\npermit (principal == Workload::\"{next}\", action == Action::\"POST\", \
             resource == Service::\"{me}\")\nwhen {{ context.path like \"/api/*\" }};\n\n"
        ));
    }
    (model, text)
}
