//! Property tests: arbitrary and near-valid inputs never panic, and every diagnostic points
//! inside the file it names.

use meshc::LoadOptions;
use proptest::prelude::*;

const TOKENS: &[&str] = &[
    "apiVersion: meshc.dev/v1alpha1\n",
    "apiVersion: v1\n",
    "apiVersion: gateway.networking.k8s.io/v1\n",
    "kind: MeshService\n",
    "kind: Service\n",
    "kind: HTTPRoute\n",
    "kind: MeshRoute\n",
    "kind: Sidecar\n",
    "kind: Mesh\n",
    "metadata:\n",
    "  name: a\n",
    "  name: B_c\n",
    "  namespace: ns\n",
    "spec:\n",
    "  ports:\n",
    "    - port: 80\n",
    "    - port: 99999\n",
    "      name: http\n",
    "  parentRefs:\n",
    "    - name: a\n",
    "      group: \"\"\n",
    "  rules:\n",
    "    - matches:\n",
    "        - path: {type: Exact, value: /x}\n",
    "      backendRefs:\n",
    "        - {name: a, port: 80, weight: 0}\n",
    "  service: a\n",
    "  egress: [a, b/c, \"*\"]\n",
    "---\n",
    "- x\n",
    "&a [*a]\n",
    "{\n",
    "]\n",
    ": :\n",
    "\t\n",
    "\"unterminated\n",
    "key: &anchor value\n",
    "other: *anchor\n",
    "  timeouts: {request: 1s, backendRequest: 2s}\n",
    "  retry: {attempts: 3}\n",
    "weird: !!binary aGVsbG8=\n",
];

fn check_positions(files: Vec<(String, String)>) {
    let checked = meshc::check_sources(files, &LoadOptions::default());
    for d in &checked.diagnostics {
        if let Some(p) = &d.primary {
            let f = checked
                .sources
                .get(p.loc.file)
                .expect("file of a diagnostic");
            assert!(
                p.loc.span.end <= f.text.len(),
                "{d:?} points past the end of `{}`",
                f.path
            );
            assert!(
                f.text.is_char_boundary(p.loc.span.start),
                "{d:?} splits a character"
            );
        }
        assert!(!d.message.is_empty());
    }
    let _ = meshc::render::human(
        &checked.sources,
        &checked.diagnostics,
        meshc::render::HumanOptions::default(),
    );
    let _ = meshc::render::sarif(&checked.sources, &checked.diagnostics);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, .. ProptestConfig::default() })]

    #[test]
    fn token_soup_never_panics(parts in proptest::collection::vec(0..TOKENS.len(), 0..40)) {
        let text: String = parts.iter().map(|&i| TOKENS[i]).collect();
        check_positions(vec![("a.yaml".to_string(), text)]);
    }

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,400}") {
        check_positions(vec![("a.yaml".to_string(), text.clone()), ("p.cedar".to_string(), text)]);
    }
}
