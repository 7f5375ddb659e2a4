//! Synthetic meshes for benchmarks and robustness tests: deterministic for a given size and
//! seed, valid (no errors, no warnings), with the shapes real meshes have: namespaces, versions,
//! egress, several routes per service with exact, prefix, header, method and query matches,
//! weighted canaries, retries, and one Cedar policy per service.

use std::fmt::Write as _;

/// Size of a generated mesh.
#[derive(Clone, Copy, Debug)]
pub struct SynthSpec {
    pub services: usize,
    /// Routes per service (each a `MeshRoute` with 1-3 rules).
    pub routes_per_service: usize,
    /// Cedar policies per service.
    pub policies_per_service: usize,
    /// Egress entries per sidecar.
    pub egress: usize,
    pub seed: u64,
}

impl SynthSpec {
    pub fn new(services: usize) -> Self {
        SynthSpec {
            services,
            routes_per_service: 4,
            policies_per_service: 1,
            egress: 4,
            seed: 1,
        }
    }
}

/// A small deterministic generator (SplitMix64), so that the same spec gives the same mesh on
/// every machine without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

fn ns_of(i: usize) -> String {
    format!("team-{:03}", i / 50)
}

fn name_of(i: usize) -> String {
    format!("svc-{i:05}")
}

/// Generate the files of a mesh: `(relative path, text)`, one YAML file and one Cedar file per
/// namespace plus `mesh.yaml`.
pub fn generate(spec: SynthSpec) -> Vec<(String, String)> {
    let mut rng = Rng(spec.seed);
    let n = spec.services.max(1);
    let mut files = Vec::new();
    files.push((
        "mesh.yaml".to_string(),
        "apiVersion: meshc.dev/v1alpha1\nkind: Mesh\nmetadata:\n  name: synthetic\nspec:\n  trustDomain: synthetic.example\n  defaults:\n    retryBudget: {percent: 20, minRetriesPerSecond: 10}\n".to_string(),
    ));
    let namespaces = n.div_ceil(50);
    for nsi in 0..namespaces {
        let ns = ns_of(nsi * 50);
        let mut yaml = String::new();
        let mut cedar = String::new();
        for i in (nsi * 50)..((nsi + 1) * 50).min(n) {
            let name = name_of(i);
            let versioned = i % 3 == 0;
            let _ = write!(
                yaml,
                "---\napiVersion: meshc.dev/v1alpha1\nkind: MeshService\nmetadata: {{name: {name}, namespace: {ns}}}\nspec:\n  ports:\n    - {{name: http, port: 8080}}\n"
            );
            if i % 7 == 0 {
                yaml.push_str("    - {name: grpc, port: 9090, protocol: grpc}\n");
            }
            if versioned {
                yaml.push_str("  versions:\n    - name: v1\n      endpoints: [{address: 10.0.0.1}]\n    - name: v2\n      endpoints: [{address: 10.0.0.2}]\n");
            } else {
                let _ = writeln!(
                    yaml,
                    "  endpoints: [{{address: 10.1.{}.{}}}]",
                    i / 250,
                    i % 250
                );
            }
            // Sidecar with egress to a few other services (spread across namespaces).
            let _ = write!(
                yaml,
                "---\napiVersion: meshc.dev/v1alpha1\nkind: Sidecar\nmetadata: {{name: {name}, namespace: {ns}}}\nspec:\n  service: {name}\n  egress: ["
            );
            let mut targets = Vec::new();
            for _ in 0..spec.egress {
                let t = rng.below(n);
                if t != i && !targets.contains(&t) {
                    targets.push(t);
                }
            }
            let list: Vec<String> = targets
                .iter()
                .map(|&t| format!("{}/{}", ns_of(t), name_of(t)))
                .collect();
            let _ = writeln!(yaml, "{}]", list.join(", "));
            for r in 0..spec.routes_per_service {
                let port_line = "      port: 8080\n";
                let _ = write!(
                    yaml,
                    "---\napiVersion: meshc.dev/v1alpha1\nkind: MeshRoute\nmetadata: {{name: {name}-r{r}, namespace: {ns}}}\nspec:\n  parentRefs:\n    - name: {name}\n{port_line}  rules:\n"
                );
                let base = format!("/api/v{}/{name}/res{r}", 1 + r % 2);
                let backend = if versioned {
                    format!(
                        "        - {{name: {name}, port: 8080, version: v1, weight: 90}}\n        - {{name: {name}, port: 8080, version: v2, weight: 10}}\n"
                    )
                } else {
                    format!("        - {{name: {name}, port: 8080}}\n")
                };
                match r % 4 {
                    0 => {
                        let _ = write!(
                            yaml,
                            "    - matches:\n        - path: {{type: Exact, value: {base}/health}}\n          method: GET\n      backendRefs:\n{backend}"
                        );
                        let _ = write!(
                            yaml,
                            "    - matches:\n        - path: {{type: PathPrefix, value: {base}}}\n      backendRefs:\n{backend}      timeouts: {{request: 5s, backendRequest: 1s}}\n      retry: {{attempts: 2, codes: [503], backoff: 25ms}}\n"
                        );
                    }
                    1 => {
                        let _ = write!(
                            yaml,
                            "    - matches:\n        - path: {{type: PathPrefix, value: {base}}}\n          headers:\n            - {{name: x-canary, value: \"true\"}}\n      backendRefs:\n{backend}"
                        );
                        let _ = write!(
                            yaml,
                            "    - matches:\n        - path: {{type: PathPrefix, value: {base}}}\n      backendRefs:\n{backend}"
                        );
                    }
                    2 => {
                        let _ = write!(
                            yaml,
                            "    - matches:\n        - path: {{type: PathPrefix, value: {base}/items}}\n          queryParams:\n            - {{name: page, type: RegularExpression, value: \"[0-9]+\"}}\n        - path: {{type: PathPrefix, value: {base}/items}}\n          method: POST\n      backendRefs:\n{backend}"
                        );
                        let _ = write!(
                            yaml,
                            "    - matches:\n        - path: {{type: PathPrefix, value: {base}}}\n      filters:\n        - type: RequestHeaderModifier\n          requestHeaderModifier:\n            set: [{{name: x-route, value: r{r}}}]\n      backendRefs:\n{backend}"
                        );
                    }
                    _ => {
                        let _ = write!(
                            yaml,
                            "    - matches:\n        - path: {{type: PathPrefix, value: {base}/old}}\n      filters:\n        - type: RequestRedirect\n          requestRedirect:\n            path: {{type: ReplacePrefixMatch, replacePrefixMatch: {base}/new}}\n            statusCode: 301\n"
                        );
                        let _ = write!(
                            yaml,
                            "    - matches:\n        - path: {{type: RegularExpression, value: \"{base}/[a-z]+/[0-9]+\"}}\n      backendRefs:\n{backend}"
                        );
                    }
                }
            }
            for p in 0..spec.policies_per_service {
                let caller = rng.below(n);
                let _ = write!(
                    cedar,
                    "@id(\"{ns}-{name}-p{p}\")\npermit (\n  principal == Workload::\"{}/{}\",\n  action in Action::\"read\",\n  resource == Service::\"{ns}/{name}\"\n);\n\n",
                    ns_of(caller),
                    name_of(caller)
                );
            }
        }
        files.push((format!("{ns}/mesh.yaml"), yaml));
        files.push((format!("{ns}/policies.cedar"), cedar));
    }
    files
}

/// Write a generated mesh under `dir`.
pub fn write(dir: &std::path::Path, spec: SynthSpec) -> std::io::Result<usize> {
    let files = generate(spec);
    for (path, text) in &files {
        let p = dir.join(path);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(p, text)?;
    }
    Ok(files.len())
}
