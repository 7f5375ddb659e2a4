//! Meshes and bundles shared by the `authz` bench and the `authz_calls` example (which
//! includes this file by path), so that both measure the same policies.
#![allow(dead_code)]

use mesh_artifact::AuthzBundle;
use mesh_policy::{PolicyModel, ServiceEntry, bundle_for, validate};

pub const NAMESPACES: usize = 50;

pub fn service(i: usize) -> ServiceEntry {
    ServiceEntry::new(format!("ns{}", i % NAMESPACES), format!("svc{i}"))
}

/// A generated mesh with `policies` policies (see the bench's module doc) and its one Cedar file.
pub fn mesh(policies: usize) -> (PolicyModel, Vec<(String, String)>) {
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
    (model, vec![("mesh.cedar".to_string(), text)])
}

/// A bundle of `policies` policies for `default/b` (see the bench's module doc).
pub fn proxy_bundle_of(policies: usize) -> AuthzBundle {
    let model = PolicyModel {
        trust_domain: "cluster.local".into(),
        services: ["a", "b", "c"]
            .iter()
            .map(|n| ServiceEntry::new("default", *n))
            .collect(),
        context_headers: vec!["x-user".into()],
    };
    let mut text = String::new();
    if policies == 1 {
        text.push_str("permit (principal, action, resource);\n");
    } else {
        for i in 0..policies.saturating_sub(2) {
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
    let sources = vec![("mesh.cedar".to_string(), text)];
    let (set, diags) = validate(&model, &sources);
    assert!(diags.is_empty(), "{:?}", diags.first());
    bundle_for(&model, &set, "default/b", &["mesh.cedar".to_string()])
}
