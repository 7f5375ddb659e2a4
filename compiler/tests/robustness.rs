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
    "    - &p {name: http, port: 80}\n",
    "    - <<: *p\n",
    "  <<: *anchor\n",
    "<<: [*p, {port: 81}]\n",
    "  <<: {name: b}\n",
    "<<: 5\n",
    "\"<<\": *p\n",
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

/// Pieces of regular expressions, valid and not, for the regex check below.
const REGEX_PIECES: &[&str] = &[
    "a",
    "/",
    "-",
    ".",
    "[a-z]",
    "[^/]",
    "[0-9]+",
    "(",
    ")",
    "(?:",
    "|",
    "*",
    "+",
    "?",
    "[",
    "]",
    "\\",
    "\\.",
    "\\w",
    "\\d",
    "\\p{L}",
    "\\x41",
    "{2}",
    "{1000}",
    "{",
    "}",
    "^",
    "$",
    "(?i)",
    "(?-u)",
    "(?P<n>",
    "é",
    "[[:alpha:]]",
    "[z-a]",
    "**",
];

/// `meshc check` takes a shortcut for simple patterns (`meshc::decode::regex_problem`); it must
/// accept and refuse exactly what the proxy's matcher does, with the same message.
fn same_regex_verdict(pattern: &str) {
    assert_eq!(
        meshc::decode::regex_problem(pattern),
        mesh_artifact::matcher::check_regex(pattern).err(),
        "pattern {pattern:?}"
    );
}

#[test]
fn regex_shortcut_agrees_with_the_matcher() {
    for p in [
        "[0-9]+",
        "/api/v2/svc-1/res3/[a-z]+/[0-9]+",
        "(?:a|b)*c",
        "a)",
        "(a",
        "[z-a]",
        "*a",
        "a**",
        "x\\",
        "[",
        "(?-u).",
        "(?-u:[^a])",
        "(?i)abc",
        "\\w+",
        "a{1000}{1000}",
        "(?:a{100}){100}",
        "[[:alpha:]]+",
        "[[:bogus:]]",
        "",
        "é+",
        &"[^/]".repeat(70),
        &"(a|b)".repeat(60),
    ] {
        same_regex_verdict(p);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, .. ProptestConfig::default() })]

    #[test]
    fn regex_shortcut_agrees_on_generated_patterns(
        parts in proptest::collection::vec(0..REGEX_PIECES.len(), 0..12)
    ) {
        let pattern: String = parts.iter().map(|&i| REGEX_PIECES[i]).collect();
        same_regex_verdict(&pattern);
    }
}
