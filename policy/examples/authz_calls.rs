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

use mesh_artifact::AuthzMode;
use mesh_policy::{Authorizer, AuthzRequest, bundle_for, validate};

#[path = "../benches/common/mod.rs"]
mod common;

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
            let policies = if name == "permit_all" { 1 } else { 20 };
            let authz = Authorizer::new(&common::proxy_bundle_of(policies)).ok()?;
            Some((
                authz,
                spiffe("default", "a"),
                "default/b".into(),
                vec![("x-user", "alice")],
            ))
        }
        "sliced_allow" | "sliced_deny" => {
            let (model, sources) = common::mesh(1000);
            let (set, diags) = validate(&model, &sources);
            if let Some(d) = diags.first() {
                eprintln!("{d:?}");
                return None;
            }
            let bundle = bundle_for(&model, &set, "ns1/svc1", &["mesh.cedar".to_string()]);
            let authz = Authorizer::new(&bundle).ok()?;
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
