//! YAML merge keys (`<<: *base`, <https://yaml.org/type/merge.html>), read as PyYAML and go-yaml
//! (so kubectl) read them: what a merge gives, which `<<` is a merge key, where diagnostics about
//! merged values point, what is refused, the budgets, and the source hash.
//!
//! The expected trees below were checked against PyYAML 6 (`yaml.safe_load`), the independent
//! reference; where meshc differs on purpose (entry order, a duplicate kept, go-yaml's refusals),
//! the comment says so.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;

use std::path::{Path, PathBuf};

use meshc::render;
use meshc::source::FileId;
use meshc::syntax::{
    Limits, Node, Value, parse_documents, parse_documents_fast, parse_documents_granit,
};
use meshc::{Checked, Code, LoadOptions};

/// A node's content without spans: `{k: v}`, `[a, b]`, scalars as plain text (`~` for null).
fn show(n: &Node<'_>) -> String {
    match &n.value {
        Value::Null => "~".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Int(i) => i.to_string(),
        Value::Float(f) => f.to_string(),
        Value::Str(s) => s.to_string(),
        Value::Seq(items) => {
            let items: Vec<String> = items.iter().map(show).collect();
            format!("[{}]", items.join(", "))
        }
        Value::Map(entries) => {
            let entries: Vec<String> = entries
                .iter()
                .map(|(k, v)| format!("{}: {}", show(k), show(v)))
                .collect();
            format!("{{{}}}", entries.join(", "))
        }
    }
}

/// Parse `text` as meshc does (fast path first), check that granit-parser alone gives the same
/// tree, spans included, and show the value of the first document's key `m`.
fn read_m(text: &str) -> String {
    let docs = parse_documents(FileId(0), text, Limits::default())
        .unwrap_or_else(|d| panic!("refused ({}):\n{text}", d.message));
    let granit = parse_documents_granit(FileId(0), text, Limits::default()).unwrap();
    assert_eq!(format!("{docs:?}"), format!("{granit:?}"), "{text}");
    show(
        docs[0]
            .get("m")
            .unwrap_or_else(|| panic!("no `m` in:\n{text}")),
    )
}

#[test]
fn merge_keys_are_resolved_as_pyyaml_resolves_them() {
    let cases: &[(&str, &str, &str)] = &[
        (
            // PyYAML: {'a': 9, 'b': 2}. Merged entries take the merge key's place.
            "an explicit key after the merge wins",
            "base: &b {a: 1, b: 2}\nm:\n  <<: *b\n  a: 9\n",
            "{b: 2, a: 9}",
        ),
        (
            // PyYAML: {'a': 9, 'b': 2}. (go-yaml v2 would let the merge overwrite `a`.)
            "an explicit key before the merge wins",
            "base: &b {a: 1, b: 2}\nm:\n  a: 9\n  <<: *b\n",
            "{a: 9, b: 2}",
        ),
        (
            // PyYAML: {'b': 1, 'c': 2, 'a': 1}.
            "earlier mappings of a list win",
            "x: &x {a: 1, b: 1}\ny: &y {b: 2, c: 2}\nm:\n  <<: [*x, *y]\n",
            "{a: 1, b: 1, c: 2}",
        ),
        (
            // PyYAML: {'a': 9, 'b': 2, 'z': 0, 'c': 3}.
            "merged entries go where the merge key is",
            "b: &b {a: 1, b: 2}\nm:\n  z: 0\n  <<: *b\n  a: 9\n  c: 3\n",
            "{z: 0, b: 2, a: 9, c: 3}",
        ),
        (
            // PyYAML: {'x': 1, 'y': 2, 'z': 3}.
            "a merged mapping may merge in turn",
            "a: &a {x: 1}\nb: &b {<<: *a, y: 2}\nm: {<<: *b, z: 3}\n",
            "{x: 1, y: 2, z: 3}",
        ),
        (
            // PyYAML: {'a': 1, 'b': 2}.
            "a mapping written in place",
            "m:\n  <<: {a: 1}\n  b: 2\n",
            "{a: 1, b: 2}",
        ),
        (
            "a merge in a flow mapping",
            "m: {<<: {a: 1}, b: 2}\n",
            "{a: 1, b: 2}",
        ),
        (
            "a block mapping merged in place",
            "m:\n  <<:\n    a: 1\n    b: 1\n  b: 2\n",
            "{a: 1, b: 2}",
        ),
        (
            // PyYAML: {'a': 1}.
            "an empty list merges nothing",
            "m:\n  <<: []\n  a: 1\n",
            "{a: 1}",
        ),
        (
            // PyYAML: {'a': 1}.
            "`!!merge` makes a merge key",
            "base: &b {a: 1}\nm:\n  !!merge <<: *b\n",
            "{a: 1}",
        ),
        (
            // PyYAML: {'<<': {'a': 1}}.
            "a double-quoted `<<` is an ordinary key",
            "base: &b {a: 1}\nm:\n  \"<<\": *b\n",
            "{<<: {a: 1}}",
        ),
        (
            // PyYAML: {'<<': {'a': 1}}.
            "a single-quoted `<<` is an ordinary key",
            "base: &b {a: 1}\nm:\n  '<<': *b\n",
            "{<<: {a: 1}}",
        ),
        (
            // PyYAML: {'<<': {'a': 1}}.
            "a `!!str` `<<` is an ordinary key",
            "base: &b {a: 1}\nm:\n  !!str <<: *b\n",
            "{<<: {a: 1}}",
        ),
        (
            // PyYAML refuses a `<<` value (no constructor for `!!merge`); go-yaml reads the
            // string `<<`, and so does meshc: only keys merge.
            "`<<` as a value is a string",
            "m: {a: <<, b: [<<]}\n",
            "{a: <<, b: [<<]}",
        ),
        (
            // PyYAML keeps the last `x` silently; meshc keeps both, so that `decode` reports
            // the duplicate where it was written.
            "a duplicate inside the merged mapping stays",
            "a: &a {x: 1, x: 2}\nm: {<<: *a, y: 3}\n",
            "{x: 1, x: 2, y: 3}",
        ),
        (
            "an explicit key hides every merged copy of it",
            "a: &a {x: 1, x: 2}\nm: {<<: *a, x: 3}\n",
            "{x: 3}",
        ),
        (
            // Keys compare by value and type, as in YAML: `1` and `"1"` are two keys.
            "keys of another type do not override",
            "a: &a {1: x, t: y}\nm: {<<: *a, \"1\": z}\n",
            "{1: x, t: y, 1: z}",
        ),
    ];
    for (what, text, want) in cases {
        assert_eq!(read_m(text), *want, "{what}:\n{text}");
    }
}

#[test]
fn the_fast_path_leaves_merges_to_granit() {
    for text in [
        "m:\n  <<: {a: 1}\n  b: 2\n",
        "m: {<<: {a: 1}, b: 2}\n",
        "- <<: {a: 1}\n",
    ] {
        assert!(
            parse_documents_fast(text, Limits::default()).is_none(),
            "the fast path took a merge key:\n{text}"
        );
    }
    // A quoted `<<` is an ordinary key: the fast path still takes it.
    let text = "m:\n  \"<<\": {a: 1}\n";
    let fast = parse_documents_fast(text, Limits::default()).expect("taken");
    assert_eq!(show(fast[0].get("m").unwrap()), "{<<: {a: 1}}");
}

/// The 1-based line of a byte offset.
fn line_of(text: &str, at: usize) -> usize {
    text[..at].matches('\n').count() + 1
}

#[test]
fn merged_entries_keep_the_spans_where_they_were_written() {
    let text = "base: &b\n  port: 80\n  name: web\nm:\n  <<: *b\n  name: api\n";
    let docs = parse_documents(FileId(0), text, Limits::default()).unwrap();
    let m = docs[0].get("m").unwrap();
    let Value::Map(entries) = &m.value else {
        panic!("not a mapping")
    };
    let (k, v) = &entries[0];
    assert_eq!(&text[k.span.start..k.span.end], "port");
    assert_eq!(&text[v.span.start..v.span.end], "80");
    assert_eq!(line_of(text, v.span.start), 2, "the merged value's line");
    let name = m.get("name").unwrap();
    assert_eq!(&text[name.span.start..name.span.end], "api");
    assert_eq!(line_of(text, name.span.start), 6);
    // The mapping itself stays where it is written.
    assert_eq!(line_of(text, m.span.start), 5);
}

/// `CODE line:col message` of every diagnostic.
fn found(checked: &Checked) -> Vec<String> {
    checked
        .diagnostics
        .iter()
        .map(|d| {
            let (_, line, col, _, _) = render::position(&checked.sources, d);
            format!("{} {line}:{col} {}", d.code.as_str(), d.message)
        })
        .collect()
}

fn service_with_ports(ports: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: shop\nspec:\n  ports:\n    - &http\n      name: http\n      port: 80\n      targetPort: 8080\n{ports}"
    )
}

#[test]
fn an_explicit_key_over_a_merged_one_is_no_duplicate_but_two_explicit_ones_are() {
    let ok = service_with_ports("    - <<: *http\n      name: admin\n      port: 81\n");
    let checked = check(&[("k8s.yaml", &ok)]);
    assert!(checked.diagnostics.is_empty(), "{:?}", found(&checked));
    let ports: Vec<(Option<&str>, u16, Option<u16>)> = checked.model.services[0]
        .ports
        .iter()
        .map(|p| (p.name.as_deref(), p.port, p.target_port))
        .collect();
    assert_eq!(
        ports,
        vec![
            (Some("http"), 80, Some(8080)),
            (Some("admin"), 81, Some(8080))
        ]
    );

    let twice =
        service_with_ports("    - <<: *http\n      name: admin\n      port: 81\n      port: 82\n");
    let checked = check(&[("k8s.yaml", &twice)]);
    assert_eq!(
        found(&checked),
        vec!["MC0002 14:7 duplicate key `port`".to_string()]
    );
}

#[test]
fn a_merge_key_whose_value_is_not_mappings_is_refused_at_the_value() {
    // Each: the ports after the anchored one, the expected code, line:col and message end.
    // PyYAML and go-yaml refuse each bad value too ("expected a mapping or list of mappings
    // for merging", "map merge requires map or sequence of maps as the value"), but for the
    // alias to a list, which PyYAML accepts and go-yaml (so kubectl) refuses. Two merge keys
    // in one mapping: go-yaml v3 refuses them as a duplicate key; PyYAML and go-yaml v2 let
    // the last one win, which meshc, refusing duplicate keys, does not guess.
    let cases: &[(&str, &str)] = &[
        (
            "    - <<: http\n      port: 81\n",
            "MC0014 11:11 the merge key `<<` takes a mapping or a list of mappings, found a string",
        ),
        (
            "    - <<:\n      port: 81\n",
            "MC0014 11:9 the merge key `<<` takes a mapping or a list of mappings, found null",
        ),
        (
            "    - <<: [*http, 81]\n",
            "MC0014 11:19 the merge key `<<` takes a mapping or a list of mappings, found a list holding an integer",
        ),
        (
            "    - <<: [[*http]]\n",
            "MC0014 11:12 the merge key `<<` takes a mapping or a list of mappings, found a list holding a list",
        ),
        (
            "    - &both [*http]\n    - <<: *both\n",
            "MC0014 12:11 the merge key `<<` takes a mapping or a list of mappings, found an alias to a list",
        ),
        (
            "    - <<: *http\n      name: admin\n      <<: {port: 81}\n",
            "MC0002 13:7 duplicate merge key `<<`",
        ),
    ];
    for (ports, want) in cases {
        let text = service_with_ports(ports);
        let checked = check(&[("k8s.yaml", &text)]);
        assert_eq!(found(&checked), vec![want.to_string()], "{text}");
    }
}

/// Levels of mappings, each merging `copies` copies of the one before; level 0 has `keys` keys.
fn laughs(levels: usize, copies: usize, keys: usize) -> String {
    let l0: Vec<String> = (0..keys).map(|k| format!("k{k}: v")).collect();
    let mut text = format!("l0: &l0 {{{}}}\n", l0.join(", "));
    for l in 1..=levels {
        let list = vec![format!("*l{}", l - 1); copies].join(", ");
        text.push_str(&format!("l{l}: &l{l} {{<<: [{list}], n{l}: {l}}}\n"));
    }
    text
}

#[test]
fn a_billion_laughs_of_merges_is_refused_by_the_budget() {
    // Three levels are small, and merge as PyYAML does: each level has level 0's keys once.
    let small = laughs(3, 10, 10);
    let docs = parse_documents(FileId(0), &small, Limits::default()).unwrap();
    let l3 = docs[0].get("l3").unwrap();
    assert_eq!(
        show(l3),
        "{k0: v, k1: v, k2: v, k3: v, k4: v, k5: v, k6: v, k7: v, k8: v, k9: v, n1: 1, n2: 2, n3: 3}"
    );

    // Each alias counts its anchor's whole size, merges included, so that the count grows
    // tenfold a level: nine levels are refused by the node budget, at the first alias over it.
    let big = laughs(9, 10, 10);
    let err = parse_documents(FileId(0), &big, Limits::default()).unwrap_err();
    assert_eq!(err.code, Code::ResourceBudget, "{}", err.message);
    assert!(err.message.contains("nodes"), "{}", err.message);
    let checked = check(&[("laughs.yaml", &big)]);
    assert_eq!(
        checked
            .diagnostics
            .iter()
            .map(|d| d.code)
            .collect::<Vec<_>>(),
        vec![Code::ResourceBudget]
    );

    // Aliases in a merge list count against the alias budget too.
    let tight = Limits {
        max_aliases: 20,
        ..Limits::default()
    };
    let err = parse_documents(FileId(0), &laughs(3, 10, 1), tight).unwrap_err();
    assert_eq!(err.code, Code::ResourceBudget);
    assert!(err.message.contains("aliases"), "{}", err.message);
    // And merged mappings written in place count against the node budget.
    let tight = Limits {
        max_nodes: 30,
        ..Limits::default()
    };
    let inline = format!("m: {{<<: [{}]}}\n", ["{a: 1, b: 2}"; 6].join(", "));
    assert_eq!(
        parse_documents(FileId(0), &inline, tight).unwrap_err().code,
        Code::ResourceBudget
    );
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/ok")
        .join(name)
}

#[test]
fn the_merge_fixture_compiles_the_merged_values() {
    use mesh_artifact::PathMatch;
    let checked = meshc::check_dir(&fixture("008-yaml-merge-keys"), &LoadOptions::default());
    assert!(checked.diagnostics.is_empty(), "{:?}", found(&checked));
    let model = &checked.model;

    // Shared ports: `admin` takes `targetPort` from `http`, its own name and port win.
    let shop = model.service("default", "shop").expect("shop");
    let ports: Vec<(Option<&str>, u16, Option<u16>)> = shop
        .ports
        .iter()
        .map(|p| (p.name.as_deref(), p.port, p.target_port))
        .collect();
    assert_eq!(
        ports,
        vec![
            (Some("http"), 80, Some(8080)),
            (Some("admin"), 81, Some(8080))
        ]
    );

    // Shared labels with an override.
    let reviews = model.service("default", "reviews").expect("reviews");
    let v2 = reviews
        .versions
        .iter()
        .find(|v| v.name == "v2")
        .expect("v2");
    let labels: Vec<(&str, &str)> = v2
        .labels
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        labels,
        vec![("app", "reviews"), ("track", "stable"), ("version", "v2")]
    );

    let route = &model.routes[0];
    assert_eq!(route.rules.len(), 3);
    // A merged match with its own method.
    let m = &route.rules[1].matches[0];
    assert_eq!(m.path.v, PathMatch::PathPrefix("/api".to_string()));
    assert_eq!(m.method.as_ref().map(|s| s.v.as_str()), Some("POST"));
    // A list merge: name and weight from `canary`, port from `stable`.
    let backends: Vec<(&str, Option<u16>, u32)> = route.rules[1]
        .backends
        .iter()
        .map(|b| (b.name.as_str(), b.port.as_ref().map(|p| p.v), b.weight))
        .collect();
    assert_eq!(backends, vec![("cart", Some(80), 1)]);
    // A merged rule: its own match, the GET rule's backends and timeout.
    let rule = &route.rules[2];
    assert_eq!(
        rule.matches[0].path.v,
        PathMatch::PathPrefix("/v2".to_string())
    );
    assert_eq!(rule.matches[0].method, None);
    let backends: Vec<(&str, u32)> = rule
        .backends
        .iter()
        .map(|b| (b.name.as_str(), b.weight))
        .collect();
    assert_eq!(backends, vec![("shop", 9), ("cart", 1)]);
    assert_eq!(rule.timeouts.request.as_ref().map(|t| t.v), Some(5_000));
    // Merged values point where they were written: the `&stable` backend's line.
    let text = std::fs::read_to_string(fixture("008-yaml-merge-keys").join("k8s.yaml")).unwrap();
    let stable_line = text
        .lines()
        .position(|l| l.contains("&stable"))
        .expect("&stable")
        + 1;
    let (line, _) = checked.sources.line_col(rule.backends[0].loc);
    assert_eq!(line, stable_line);

    // The compiled sidecar routes as the merged YAML says.
    let explain = |method: &str, url: &str| {
        meshc::explain::explain(&checked, "shop", &[], method, url)
            .expect("explain")
            .json
    };
    let post = explain("POST", "http://shop/api/cart");
    assert_eq!(post["route"]["rule"], 1, "{post}");
    assert_eq!(post["backends"][0]["service"], "default/cart", "{post}");
    assert_eq!(post["backends"][0]["port"], 80, "{post}");
    let v2 = explain("GET", "http://shop/v2/items");
    assert_eq!(v2["route"]["rule"], 2, "{v2}");
    assert_eq!(v2["backends"].as_array().map(Vec::len), Some(2), "{v2}");
    // DELETE matches no rule: the merged match kept its own method.
    let delete = explain("DELETE", "http://shop/api/cart");
    assert_eq!(delete["status"], 404, "{delete}");
}

/// The mesh of `MERGED`, written out without merges: merged entries where the merge key was.
const MERGED: &str = "apiVersion: v1
kind: Service
metadata: {name: shop}
spec:
  ports:
    - &http {name: http, port: 80, targetPort: 8080}
    - <<: *http
      name: admin
      port: 81
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: shop}
spec:
  parentRefs: [{group: \"\", kind: Service, name: shop, port: 80}]
  rules:
    - matches: [&api {path: {type: PathPrefix, value: /api}, method: GET}]
      backendRefs: [&b {name: shop, port: 80}]
    - matches: [{<<: *api, method: POST}]
      backendRefs: [{<<: *b, port: 81}]
";

const WRITTEN_OUT: &str = "apiVersion: v1
kind: Service
metadata: {name: shop}
spec:
  ports:
    - {name: http, port: 80, targetPort: 8080}
    - targetPort: 8080
      name: admin
      port: 81
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: shop}
spec:
  parentRefs: [{group: \"\", kind: Service, name: shop, port: 80}]
  rules:
    - matches: [{path: {type: PathPrefix, value: /api}, method: GET}]
      backendRefs: [{name: shop, port: 80}]
    - matches: [{path: {type: PathPrefix, value: /api}, method: POST}]
      backendRefs: [{name: shop, port: 81}]
";

#[test]
fn a_merged_file_hashes_and_builds_like_the_file_written_out() {
    let merged = check(&[("k8s.yaml", MERGED)]);
    let written = check(&[("k8s.yaml", WRITTEN_OUT)]);
    assert!(!merged.has_errors(), "{:?}", found(&merged));
    assert!(!written.has_errors(), "{:?}", found(&written));
    assert_eq!(merged.model.document_hashes.len(), 2);
    assert_eq!(merged.model.document_hashes, written.model.document_hashes);
    // The artifacts are equal but for the rules' source positions (lines moved).
    let strip = |files: Vec<meshc::build::OutputFile>| -> Vec<serde_json::Value> {
        files
            .iter()
            .map(|f| {
                let mut v: serde_json::Value = serde_json::from_str(&f.text).unwrap();
                strip_sources(&mut v);
                v
            })
            .collect()
    };
    let a = meshc::build::compile(&merged);
    let b = meshc::build::compile(&written);
    let index = |files: &[meshc::build::OutputFile]| -> serde_json::Value {
        serde_json::from_str(&files.last().unwrap().text).unwrap()
    };
    assert_eq!(index(&a)["source_hash"], index(&b)["source_hash"]);
    assert_eq!(strip(a), strip(b));
    // A build is deterministic with merges too.
    assert_eq!(
        meshc::build::compile(&merged),
        meshc::build::compile(&check(&[("k8s.yaml", MERGED)]))
    );
}
