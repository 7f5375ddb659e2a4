//! Compiler benchmarks on generated meshes (`meshc::synth`):
//! `cargo bench -p meshc --bench compile`.
//!
//! - `check`: parse, decode, validate (incl. the route analysis) and Cedar validation, in memory;
//!   sizes 500 to 5,000 services (4 routes and 1 policy per service) to show how it grows.
//! - `build`: check plus lowering and encoding every sidecar's artifact, 5,000 services.
//! - `load_largest_artifact`: what `mesh-proxy` does at load: read, decode and verify the hash of the
//!   largest artifact of the 5,000-service mesh, build the router index and the authorizer.
//! - `diff_5000`: `meshc diff` of two 5,000-service meshes (both checks included);
//!   `diff_5000_compare`: the comparison alone, on two checked meshes.

use meshc::LoadOptions;
use meshc::synth::{SynthSpec, generate};

fn main() {
    divan::main();
}

#[divan::bench(args = [500, 1000, 2000, 5000], sample_count = 5, sample_size = 1)]
fn check(bencher: divan::Bencher<'_, '_>, services: usize) {
    let files = generate(SynthSpec::new(services));
    bencher.with_inputs(|| files.clone()).bench_values(|f| {
        let checked = meshc::check_sources(f, &LoadOptions::default());
        assert!(!checked.has_errors());
        checked.diagnostics.len()
    });
}

#[divan::bench(sample_count = 3, sample_size = 1)]
fn build_5000(bencher: divan::Bencher<'_, '_>) {
    let files = generate(SynthSpec::new(5000));
    bencher.with_inputs(|| files.clone()).bench_values(|f| {
        let checked = meshc::check_sources(f, &LoadOptions::default());
        meshc::build::compile(&checked).len()
    });
}

#[divan::bench(sample_count = 20)]
fn load_largest_artifact(bencher: divan::Bencher<'_, '_>) {
    let checked = meshc::check_sources(generate(SynthSpec::new(5000)), &LoadOptions::default());
    let files = meshc::build::compile(&checked);
    let largest = files
        .iter()
        .filter(|f| f.name != meshc::build::INDEX_FILE)
        .max_by_key(|f| f.text.len())
        .expect("artifacts")
        .text
        .clone();
    eprintln!("largest artifact: {} bytes", largest.len());
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("artifact.json");
    std::fs::write(&path, &largest).expect("write");
    bencher.bench(|| {
        let bytes = std::fs::read(&path).expect("read");
        let a = mesh_artifact::decode(&bytes).expect("valid");
        let authz = mesh_policy::Authorizer::new(&a.body.authz).expect("authz");
        let router = mesh_artifact::Router::new(a.body).expect("router");
        (router.body().destinations.len(), authz.policy_count())
    });
}

/// A mesh definition: (path, text) pairs.
type Files = Vec<(String, String)>;

/// The two sides of a `meshc diff` benchmark: `small` changes one namespace's policies (and so
/// who may call its 50 services), `everything` is seed 1 vs 2 (every egress list and policy
/// differs: the worst case).
fn diff_sides(change: &str) -> (Files, Files) {
    let old = generate(SynthSpec::new(5000));
    let new = match change {
        "small" => {
            let mut files = old.clone();
            if let Some((_, text)) = files
                .iter_mut()
                .find(|(n, _)| n == "team-000/policies.cedar")
            {
                *text = text.replace("action in Action::\"read\"", "action");
            }
            files
        }
        _ => generate(SynthSpec {
            seed: 2,
            ..SynthSpec::new(5000)
        }),
    };
    (old, new)
}

/// `meshc diff` of two 5,000-service meshes, as the command runs it: check both sides at the
/// same time, then compare (every sidecar lowered on both sides, access analysis included).
#[divan::bench(args = ["small", "everything"], sample_count = 3, sample_size = 1)]
fn diff_5000(bencher: divan::Bencher<'_, '_>, change: &str) {
    let (old, new) = diff_sides(change);
    bencher
        .with_inputs(|| (old.clone(), new.clone()))
        .bench_values(|(a, b)| {
            let (a, b) = std::thread::scope(|s| {
                let other = s.spawn(|| meshc::check_sources(b, &LoadOptions::default()));
                let a = meshc::check_sources(a, &LoadOptions::default());
                (a, other.join().expect("check"))
            });
            let d = meshc::diff::diff_checked(&a, &b);
            d.access.len() + d.services.len()
        });
}

/// The comparison alone, on two checked 5,000-service meshes: what `meshc diff` adds to
/// checking both sides.
#[divan::bench(args = ["small", "everything"], sample_count = 3, sample_size = 1)]
fn diff_5000_compare(bencher: divan::Bencher<'_, '_>, change: &str) {
    let (old, new) = diff_sides(change);
    let a = meshc::check_sources(old, &LoadOptions::default());
    let b = meshc::check_sources(new, &LoadOptions::default());
    bencher.bench(|| {
        let d = meshc::diff::diff_checked(&a, &b);
        d.access.len() + d.services.len()
    });
}
