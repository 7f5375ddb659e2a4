//! Authorization cost per request.
//!
//! A generated mesh with `n` policies: `n / 2` services in 50 namespaces, each with two
//! policies (its predecessor may read it; its successor may `POST` under `/api/`), plus two
//! mesh-wide policies (a `forbid` on a debug header and a namespace health check).
//!
//! - `sliced`: the bundle of one service (4 policies whatever `n`), as a sidecar loads it.
//! - `unsliced`: every policy of the mesh in one authorizer (what slicing saves).
//! - `*_cedar_reference`: the same requests through Cedar's own `Authorizer` (no index, the
//!   condition rebuilt per policy and request).
//! - `load_sliced`: `Authorizer::new` for one sidecar's bundle (parse once at load).
//! - `validate_mesh`: `validate` over the whole mesh, as `meshc check` runs it.
//! - `bundle_for_one`: slicing one sidecar's bundle, as `meshc build` does per artifact.
//! - `proxy_bundle`: the bundles of `mesh-proxy`'s `authz_check` bench: 1 is
//!   `permit (principal, action, resource);`, 20 is 18 path conditions, a header `forbid` and a
//!   blanket permit for another caller. `proxy_bundle_decide`: the same through
//!   `Authorizer::decide` (what the proxy calls: no allocation for policy ids).
//!
//! Run: `cargo bench -p mesh-policy --bench authz`

use divan::{Bencher, black_box};
use mesh_artifact::{AuthzBundle, AuthzMode, PolicyText, SourcePos};
use mesh_policy::{Authorizer, AuthzRequest, bundle_for, entities_json, schema_text, validate};

mod common;

use common::{mesh, proxy_bundle_of, service};

fn main() {
    divan::main();
}

/// The bundle of `svc1` (sliced) or of every policy (unsliced).
fn bundle(policies: usize, sliced: bool) -> AuthzBundle {
    let (model, sources) = mesh(policies);
    let (set, diags) = validate(&model, &sources);
    assert!(diags.is_empty(), "{:?}", diags.first());
    let names: Vec<String> = sources.iter().map(|(n, _)| n.clone()).collect();
    if sliced {
        bundle_for(&model, &set, &service(1).key(), &names)
    } else {
        AuthzBundle {
            schema: schema_text(&model),
            policies: set
                .entries()
                .iter()
                .map(|e| PolicyText {
                    id: e.id.clone(),
                    source: SourcePos {
                        file: "mesh.cedar".into(),
                        line: e.line,
                        column: e.column,
                    },
                    text: e.text.clone(),
                })
                .collect(),
            entities: entities_json(&model),
            context_headers: model.context_headers.clone(),
        }
    }
}

struct Requests {
    allow: (String, &'static [(&'static str, &'static str)]),
    deny: (String, &'static [(&'static str, &'static str)]),
}

fn requests() -> Requests {
    let caller = |i: usize| {
        let s = service(i);
        format!("spiffe://cluster.local/ns/{}/sa/{}", s.namespace, s.name)
    };
    Requests {
        allow: (caller(0), &[("x-user", "alice")]),
        deny: (caller(2), &[("x-debug", "1")]),
    }
}

fn run(bencher: Bencher<'_, '_>, authz: &Authorizer, allow: bool) {
    run_with(bencher, authz, allow, false);
}

fn run_with(bencher: Bencher<'_, '_>, authz: &Authorizer, allow: bool, reference: bool) {
    let reqs = requests();
    let target = service(1).key();
    let (principal, headers) = if allow { &reqs.allow } else { &reqs.deny };
    let request = AuthzRequest {
        principal,
        service: &target,
        method: "GET",
        path: "/productpage/reviews/1",
        query: "a=b",
        route: "ns1/route",
        headers,
    };
    let expected = authz.authorize(&request, AuthzMode::Enforce);
    assert_eq!(expected.allowed, allow, "{expected:?}");
    if reference {
        bencher.bench_local(|| authz.authorize_reference(black_box(&request), AuthzMode::Enforce));
    } else {
        bencher.bench_local(|| authz.authorize(black_box(&request), AuthzMode::Enforce));
    }
}

#[divan::bench(args = [1_000, 5_000, 10_000])]
fn sliced_allow(bencher: Bencher<'_, '_>, policies: usize) {
    let authz = Authorizer::new(&bundle(policies, true)).expect("bundle loads");
    run(bencher, &authz, true);
}

#[divan::bench(args = [1_000, 5_000, 10_000])]
fn sliced_deny(bencher: Bencher<'_, '_>, policies: usize) {
    let authz = Authorizer::new(&bundle(policies, true)).expect("bundle loads");
    run(bencher, &authz, false);
}

#[divan::bench(args = [1_000, 5_000, 10_000])]
fn unsliced_allow(bencher: Bencher<'_, '_>, policies: usize) {
    let authz = Authorizer::new(&bundle(policies, false)).expect("bundle loads");
    run(bencher, &authz, true);
}

/// Cedar's own `Authorizer` over the same sliced bundle (what the index and prepared
/// conditions save).
#[divan::bench(args = [5_000])]
fn sliced_allow_cedar_reference(bencher: Bencher<'_, '_>, policies: usize) {
    let authz = Authorizer::new(&bundle(policies, true)).expect("bundle loads");
    run_with(bencher, &authz, true, true);
}

#[divan::bench(args = [1_000, 10_000], sample_count = 20)]
fn unsliced_allow_cedar_reference(bencher: Bencher<'_, '_>, policies: usize) {
    let authz = Authorizer::new(&bundle(policies, false)).expect("bundle loads");
    run_with(bencher, &authz, true, true);
}

#[divan::bench(args = [5_000], sample_count = 10, sample_size = 1)]
fn load_sliced(bencher: Bencher<'_, '_>, policies: usize) {
    let b = bundle(policies, true);
    bencher.bench_local(|| Authorizer::new(black_box(&b)).map(|a| a.policy_count()));
}

#[divan::bench(args = [1_000, 5_000], sample_count = 5, sample_size = 1)]
fn validate_mesh(bencher: Bencher<'_, '_>, policies: usize) {
    let (model, sources) = mesh(policies);
    bencher.bench_local(|| validate(black_box(&model), black_box(&sources)).0.len());
}

#[divan::bench(args = [5_000], sample_count = 20)]
fn bundle_for_one(bencher: Bencher<'_, '_>, policies: usize) {
    let (model, sources) = mesh(policies);
    let (set, _) = validate(&model, &sources);
    let names: Vec<String> = sources.iter().map(|(n, _)| n.clone()).collect();
    let target = service(1).key();
    bencher.bench_local(|| {
        bundle_for(black_box(&model), &set, &target, &names)
            .policies
            .len()
    });
}

#[divan::bench(args = [1, 20])]
fn proxy_bundle(bencher: Bencher<'_, '_>, policies: usize) {
    proxy_bundle_with(bencher, policies, false);
}

/// The same through `Authorizer::decide`, which `mesh-proxy` calls: policy ids stay borrowed.
#[divan::bench(args = [1, 20])]
fn proxy_bundle_decide(bencher: Bencher<'_, '_>, policies: usize) {
    proxy_bundle_with(bencher, policies, true);
}

fn proxy_bundle_with(bencher: Bencher<'_, '_>, policies: usize, borrowed: bool) {
    let authz = Authorizer::new(&proxy_bundle_of(policies)).expect("bundle loads");
    let caller = "spiffe://cluster.local/ns/default/sa/a";
    let headers = [("x-user", "alice")];
    let request = AuthzRequest {
        principal: caller,
        service: "default/b",
        method: "GET",
        path: "/api/v7/items",
        query: "x=1",
        route: "default/b-route",
        headers: &headers,
    };
    assert!(authz.authorize(&request, AuthzMode::Enforce).allowed);
    if borrowed {
        bencher.bench_local(|| {
            authz
                .decide(black_box(&request), AuthzMode::Enforce)
                .allowed
        });
    } else {
        bencher.bench_local(|| authz.authorize(black_box(&request), AuthzMode::Enforce));
    }
}
