//! End-to-end behaviour of the compiler library: examples check clean, the schema is in sync,
//! builds are deterministic under reordering, explain follows the precedence rules.

mod common;
use common::strip_sources;

use std::path::{Path, PathBuf};

use meshc::{LoadOptions, Severity};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn examples() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(root().join("examples/meshes"))
        .expect("examples dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.is_dir())
        .collect();
    v.sort();
    v
}

#[test]
fn every_example_checks_without_errors_or_warnings() {
    let list = examples();
    assert!(!list.is_empty());
    for dir in list {
        let checked = meshc::check_dir(&dir, &LoadOptions::default());
        let bad: Vec<_> = checked
            .diagnostics
            .iter()
            .filter(|d| d.severity >= Severity::Warning)
            .collect();
        assert!(bad.is_empty(), "{}: {:#?}", dir.display(), bad);
        assert!(
            !checked.model.services.is_empty(),
            "{} has no services",
            dir.display()
        );
    }
}

#[test]
fn committed_schema_matches_meshc_schema() {
    let committed = std::fs::read_to_string(root().join("schemas/meshc.schema.json"))
        .expect("schemas/meshc.schema.json");
    assert_eq!(
        committed,
        meshc::schema::json_schema_text(),
        "run `meshc schema > schemas/meshc.schema.json`"
    );
}

/// The schema's property names at each object are the decoder's field lists: a field added to
/// one and not the other fails here.
#[test]
fn schema_properties_match_decoder_fields() {
    use meshc::decode::fields;
    let schema = meshc::schema::json_schema();
    let defs = schema["definitions"].as_object().expect("definitions");
    let props = |name: &str| -> Vec<String> {
        let mut v: Vec<String> = defs[name]["properties"]
            .as_object()
            .unwrap_or_else(|| panic!("{name}"))
            .keys()
            .cloned()
            .collect();
        v.sort();
        v
    };
    let sorted = |f: &[&str]| {
        let mut v: Vec<String> = f.iter().map(|s| s.to_string()).collect();
        v.sort();
        v
    };
    assert_eq!(props("MeshSpec"), sorted(fields::MESH_SPEC));
    assert_eq!(props("MeshServiceSpec"), sorted(fields::MESH_SERVICE_SPEC));
    assert_eq!(props("MeshServicePort"), sorted(fields::MESH_SERVICE_PORT));
    assert_eq!(props("SidecarSpec"), sorted(fields::SIDECAR_SPEC));
    assert_eq!(props("RouteSpec"), sorted(fields::ROUTE_SPEC));
    assert_eq!(props("RuleS"), sorted(fields::RULE));
    assert_eq!(props("MatchS"), sorted(fields::MATCH));
    assert_eq!(props("BackendRefS"), sorted(fields::MESH_BACKEND_REF));
    assert_eq!(props("FilterS"), sorted(fields::FILTER));
    assert_eq!(props("RetryS"), sorted(fields::MESH_RETRY));
    assert_eq!(props("RedirectS"), sorted(fields::REDIRECT));
    assert_eq!(props("Metadata"), sorted(fields::METADATA));
}

/// Native example files carry the yaml-language-server modeline and validate against the schema.
#[test]
fn native_examples_validate_against_the_schema() {
    let schema = meshc::schema::json_schema();
    let validator = jsonschema::draft7::new(&schema).expect("valid schema");
    let mut checked_docs = 0;
    for dir in examples() {
        for entry in walk(&dir) {
            if entry.extension().and_then(|e| e.to_str()) != Some("yaml") {
                continue;
            }
            let text = std::fs::read_to_string(&entry).expect("read");
            let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(&text).expect("yaml");
            let native = docs.iter().any(|d| {
                d["apiVersion"]
                    .as_str()
                    .is_some_and(|a| a.starts_with("meshc.dev/"))
            });
            if !native {
                continue;
            }
            assert!(
                text.starts_with("# yaml-language-server: $schema="),
                "{} lacks the schema modeline",
                entry.display()
            );
            for d in docs.iter().filter(|d| {
                d["apiVersion"]
                    .as_str()
                    .is_some_and(|a| a.starts_with("meshc.dev/"))
            }) {
                let errors: Vec<String> = validator.iter_errors(d).map(|e| e.to_string()).collect();
                assert!(errors.is_empty(), "{}: {errors:?}", entry.display());
                checked_docs += 1;
            }
        }
    }
    assert!(checked_docs > 5);
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).expect("dir") {
        let p = e.expect("entry").path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out.sort();
    out
}

fn read_inputs(dir: &Path) -> Vec<(String, String)> {
    walk(dir)
        .into_iter()
        .filter(|p| {
            matches!(
                p.extension().and_then(|e| e.to_str()),
                Some("yaml" | "cedar")
            )
        })
        .map(|p| {
            (
                p.strip_prefix(dir)
                    .expect("prefix")
                    .to_string_lossy()
                    .into_owned(),
                std::fs::read_to_string(&p).expect("read"),
            )
        })
        .collect()
}

fn build(inputs: Vec<(String, String)>) -> Vec<meshc::build::OutputFile> {
    let checked = meshc::check_sources(inputs, &LoadOptions::default());
    assert!(!checked.has_errors(), "{:#?}", checked.diagnostics);
    meshc::build::compile(&checked)
}

#[test]
fn build_is_deterministic_under_file_and_document_reordering() {
    for dir in examples() {
        let inputs = read_inputs(&dir);
        let first = build(inputs.clone());
        assert_eq!(
            first,
            build(inputs.clone()),
            "{}: two builds differ",
            dir.display()
        );
        // Reverse the documents of every YAML file and merge all YAML into one file, listed last.
        let mut yaml_docs: Vec<String> = Vec::new();
        let mut others = Vec::new();
        for (name, text) in &inputs {
            if name.ends_with(".yaml") {
                let mut docs: Vec<String> = text
                    .split("\n---\n")
                    .map(|d| d.trim().to_string())
                    .collect();
                docs.reverse();
                yaml_docs.extend(docs);
            } else {
                others.push((name.clone(), text.clone()));
            }
        }
        yaml_docs.reverse();
        let mut reordered = others;
        reordered.push(("zz-all.yaml".to_string(), yaml_docs.join("\n---\n")));
        let second = build(reordered);
        // Rule source positions name files and lines, which moved; everything else is equal.
        let strip = |files: &[meshc::build::OutputFile]| -> Vec<serde_json::Value> {
            files
                .iter()
                .map(|f| {
                    let mut v: serde_json::Value = serde_json::from_str(&f.text).expect("json");
                    strip_sources(&mut v);
                    v
                })
                .collect()
        };
        assert_eq!(
            strip(&first),
            strip(&second),
            "{}: reordering changed the build",
            dir.display()
        );
        let idx = |files: &[meshc::build::OutputFile]| -> serde_json::Value {
            serde_json::from_str(&files.last().expect("index").text).expect("json")
        };
        assert_eq!(
            idx(&first)["source_hash"],
            idx(&second)["source_hash"],
            "source hash depends on document order"
        );
    }
}

#[test]
fn built_artifacts_decode_and_verify() {
    let dir = root().join("examples/meshes/bookinfo");
    let files = build(read_inputs(&dir));
    assert_eq!(files.len(), 5);
    for f in &files[..files.len() - 1] {
        let a = mesh_artifact::decode(f.text.as_bytes()).expect("decodes");
        assert_eq!(a.header.format_version, mesh_artifact::FORMAT_VERSION);
        mesh_artifact::Router::new(a.body).expect("indexes");
    }
}

#[test]
fn a_refused_build_writes_nothing() {
    let tmp = tempfile::tempdir().expect("tmp");
    let src = tmp.path().join("src");
    std::fs::create_dir_all(&src).expect("mkdir");
    std::fs::write(
        src.join("a.yaml"),
        "apiVersion: v1\nkind: Service\nmetadata: {name: a}\nspec:\n  ports: [{port: 99999}]\n",
    )
    .expect("write");
    let out = tmp.path().join("out");
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_meshc"))
        .args([
            "build",
            src.to_str().expect("utf8"),
            "--out",
            out.to_str().expect("utf8"),
        ])
        .env("NO_COLOR", "1")
        .output()
        .expect("run meshc");
    assert_eq!(status.status.code(), Some(1));
    assert!(
        !out.exists(),
        "a refused build created its output directory"
    );
}

fn explain(dir: &str, from: &str, headers: &[&str], method: &str, url: &str) -> serde_json::Value {
    let checked = meshc::check_dir(&root().join(dir), &LoadOptions::default());
    let headers: Vec<String> = headers.iter().map(|s| s.to_string()).collect();
    meshc::explain::explain(&checked, from, &headers, method, url)
        .expect("explain")
        .json
}

#[test]
fn bookinfo_explain_routes_and_authorizes() {
    let d = "examples/meshes/bookinfo";
    let e = explain(
        d,
        "productpage",
        &[],
        "GET",
        "http://reviews:9080/reviews/1",
    );
    assert_eq!(e["route"]["name"], "default/reviews");
    assert_eq!(e["route"]["rule"], 1);
    assert_eq!(e["status"], 200);
    let weights: Vec<u64> = e["backends"]
        .as_array()
        .expect("backends")
        .iter()
        .map(|b| b["weight"].as_u64().expect("w"))
        .collect();
    assert_eq!(weights, vec![80, 10, 10]);
    assert_eq!(e["authz"]["decision"], "allow");
    assert_eq!(
        e["authz"]["policies"],
        serde_json::json!(["productpage-reads-reviews"])
    );
    // The header match has precedence over the plain prefix of the same length.
    let e = explain(
        d,
        "default/productpage",
        &["X-User: jason"],
        "GET",
        "http://reviews.default.svc.cluster.local:9080/reviews",
    );
    assert_eq!(e["route"]["rule"], 0);
    assert_eq!(e["backends"][0]["version"], "v2");
    // Segment semantics: /reviewsx is not under /reviews.
    let e = explain(d, "productpage", &[], "GET", "http://reviews:9080/reviewsx");
    assert_eq!(e["status"], 404);
    assert!(e["route"].is_null());
    // ratings calling productpage: denied by the forbid policy.
    let e = explain(d, "ratings", &[], "GET", "http://productpage:9080/");
    assert!(e["route"].is_null());
    assert_eq!(e["authz"]["decision"], "deny");
    assert_eq!(
        e["authz"]["policies"],
        serde_json::json!(["only-ingress-calls-productpage"])
    );
    assert_eq!(e["status"], 403);
    // Redirect with ReplacePrefixMatch.
    let e = explain(
        d,
        "reviews",
        &[],
        "GET",
        "http://ratings:9080/v1/ratings/7?x=1",
    );
    assert_eq!(e["status"], 301);
    assert_eq!(
        e["redirect"]["location"],
        "http://ratings:9080/ratings/7?x=1"
    );
}

#[test]
fn malformed_inputs_get_diagnostics_not_panics() {
    let cases: Vec<(&str, String)> = vec![
        (
            "random",
            String::from_utf8_lossy(
                &(0..4096u32)
                    .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
                    .collect::<Vec<_>>(),
            )
            .into_owned(),
        ),
        ("laughs", {
            let mut s = String::from(
                "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
            );
            for i in 0..9u8 {
                let prev = (b'a' + i) as char;
                let next = (b'a' + i + 1) as char;
                s.push_str(&format!("{next}: &{next} [*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev}]\n"));
            }
            s
        }),
        (
            "deep",
            format!("{}1{}", "[".repeat(10_000), "]".repeat(10_000)),
        ),
        (
            "deep-block",
            (0..10_000)
                .map(|i| format!("{}k:\n", " ".repeat(i)))
                .collect(),
        ),
        ("tabs", "apiVersion: v1\n\tkind: Service\n".to_string()),
        ("empty-doc", "---\n---\n".to_string()),
        ("scalar", "just a string\n".to_string()),
    ];
    for (name, text) in cases {
        let checked = meshc::check_sources(
            vec![(format!("{name}.yaml"), text)],
            &LoadOptions::default(),
        );
        // Either it parsed into nothing useful or it reported something; never a panic.
        let _ = meshc::render::human(
            &checked.sources,
            &checked.diagnostics,
            meshc::render::HumanOptions::default(),
        );
        if name == "laughs" || name.starts_with("deep") {
            assert!(
                checked
                    .diagnostics
                    .iter()
                    .any(|d| d.code == meshc::Code::ResourceBudget),
                "{name}: {:?}",
                checked.diagnostics
            );
        }
    }
}

/// Documents are decoded while the file is still being parsed; a syntax error further down must
/// still leave the file with that one diagnostic, as if none of its documents had been read.
#[test]
fn a_syntax_error_discards_the_documents_before_it() {
    let good_but_odd = "apiVersion: meshc.dev/v1alpha1\nkind: MeshService\nmetadata: {name: a, namespace: n}\nspec:\n  ports: [{port: 80}]\n  colour: blue\n";
    let broken = "apiVersion: v1\nkind: Service\nmetadata: {name: b\n";
    let text = format!("{good_but_odd}---\n{broken}");
    let checked = meshc::check_sources(vec![("m.yaml".into(), text)], &LoadOptions::default());
    let codes: Vec<_> = checked.diagnostics.iter().map(|d| d.code).collect();
    assert!(
        codes.contains(&meshc::Code::YamlSyntax),
        "{:?}",
        checked.diagnostics
    );
    assert!(
        !codes.contains(&meshc::Code::UnknownField),
        "the first document's problems must not be reported: {:?}",
        checked.diagnostics
    );
    assert!(checked.model.services.is_empty());
    // Without the broken document, the first one is read and its unknown field reported.
    let checked = meshc::check_sources(
        vec![("m.yaml".into(), good_but_odd.to_string())],
        &LoadOptions::default(),
    );
    let codes: Vec<_> = checked.diagnostics.iter().map(|d| d.code).collect();
    assert_eq!(
        codes,
        vec![meshc::Code::UnknownField],
        "{:?}",
        checked.diagnostics
    );
    assert_eq!(checked.model.services.len(), 1);
}

/// JSON text laid out with two-space indentation, keys and values exactly as written (artifacts
/// are compact: this is only for reading their snapshots).
fn reindent(json: &str) -> String {
    let mut out = String::with_capacity(json.len() * 2);
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    let newline = |out: &mut String, depth: usize| {
        out.push('\n');
        out.push_str(&"  ".repeat(depth));
    };
    let mut chars = json.trim_end().chars().peekable();
    while let Some(c) = chars.next() {
        if in_string {
            out.push(c);
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => {
                in_string = true;
                out.push(c);
            }
            '{' | '[' => {
                out.push(c);
                let close = if c == '{' { '}' } else { ']' };
                if chars.peek() == Some(&close) {
                    out.push(close);
                    chars.next();
                } else {
                    depth += 1;
                    newline(&mut out, depth);
                }
            }
            '}' | ']' => {
                depth = depth.saturating_sub(1);
                newline(&mut out, depth);
                out.push(c);
            }
            ',' => {
                out.push(c);
                newline(&mut out, depth);
            }
            ':' => out.push_str(": "),
            c if c.is_whitespace() => {}
            c => out.push(c),
        }
    }
    out.push('\n');
    out
}

#[test]
fn reindent_keeps_the_json_value() {
    let compact = r#"{"a":[1,{"b":"x,\\\"y:{"}],"c":{},"d":[]}"#;
    let pretty = reindent(compact);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&pretty).expect("valid"),
        serde_json::from_str::<serde_json::Value>(compact).expect("valid")
    );
    assert!(
        pretty.contains("\n    {\n      \"b\": \"x,\\\\\\\"y:{\"\n"),
        "{pretty}"
    );
}

/// The compiled artifacts of every example (laid out for reading), snapshotted so that a change
/// in compiled output shows up in review.
#[test]
fn example_artifacts_snapshots() {
    for dir in examples() {
        let example = dir
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        let files = build(read_inputs(&dir));
        let mut settings = insta::Settings::clone_current();
        settings.set_snapshot_path("../../snapshots/artifacts");
        settings.set_prepend_module_to_snapshot(false);
        settings.set_omit_expression(true);
        settings.bind(|| {
            for f in &files {
                insta::assert_snapshot!(
                    format!("{example}__{}", f.name.trim_end_matches(".json")),
                    reindent(&f.text)
                );
            }
        });
    }
}

#[test]
fn configmap_holds_every_artifact() {
    let dir = root().join("examples/meshes/bookinfo");
    let files = build(read_inputs(&dir));
    let cm = meshc::build::configmap_yaml(&files, "bookinfo-mesh", "default");
    let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(&cm).expect("valid YAML");
    assert_eq!(docs.len(), 1);
    assert_eq!(docs[0]["kind"], "ConfigMap");
    for f in &files {
        assert_eq!(
            docs[0]["data"][&f.name].as_str(),
            Some(f.text.as_str()),
            "{} differs after the YAML round trip",
            f.name
        );
        if f.name != meshc::build::INDEX_FILE {
            mesh_artifact::decode(docs[0]["data"][&f.name].as_str().expect("text").as_bytes())
                .expect("artifact from the ConfigMap verifies");
        }
    }
}

fn meshc_cmd(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_meshc"))
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .expect("run meshc")
}

#[test]
fn unreadable_inputs_exit_2_with_a_diagnostic() {
    let missing = meshc_cmd(&["check", "/nonexistent/mesh", "--format", "json"]);
    assert_eq!(missing.status.code(), Some(2));
    let v: serde_json::Value = serde_json::from_slice(&missing.stdout).expect("json");
    assert_eq!(v["diagnostics"][0]["code"], "MC0004");
    // A dangling symlink named like an input cannot be read.
    let tmp = tempfile::tempdir().expect("tmp");
    std::os::unix::fs::symlink("/nonexistent/target.yaml", tmp.path().join("broken.yaml"))
        .expect("symlink");
    let out = meshc_cmd(&[
        "check",
        tmp.path().to_str().expect("utf8"),
        "--format",
        "concise",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("broken.yaml:1:1: error[MC0004]"), "{text}");
}

#[test]
fn a_ten_megabyte_file_is_refused_by_the_size_budget() {
    let tmp = tempfile::tempdir().expect("tmp");
    let line = "# padding padding padding padding padding padding padding padding\n";
    let text = line.repeat(10 * 1024 * 1024 / line.len() + 1);
    std::fs::write(tmp.path().join("big.yaml"), &text).expect("write");
    let checked = meshc::check_dir(tmp.path(), &LoadOptions::default());
    assert!(
        checked
            .diagnostics
            .iter()
            .any(|d| d.code == meshc::Code::ResourceBudget),
        "{:?}",
        checked.diagnostics
    );
    assert!(
        !checked
            .diagnostics
            .iter()
            .any(|d| d.code == meshc::Code::NoInput)
    );
    // Raised limit: the same file parses (it holds only comments).
    let opts = LoadOptions {
        max_file_bytes: 64 * 1024 * 1024,
        ..LoadOptions::default()
    };
    let checked = meshc::check_dir(tmp.path(), &opts);
    assert!(
        !checked
            .diagnostics
            .iter()
            .any(|d| d.code == meshc::Code::ResourceBudget)
    );
}

#[test]
fn output_formats_follow_the_contract() {
    let dir = root().join("compiler/tests/fixtures/err/MC0101-unknown-field");
    let d = dir.to_str().expect("utf8");
    let json = meshc_cmd(&["check", d, "--format", "json"]);
    assert_eq!(json.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).expect("json");
    assert_eq!(v["version"], 1);
    let first = &v["diagnostics"][0];
    for key in [
        "code",
        "severity",
        "message",
        "file",
        "line",
        "column",
        "end_line",
        "end_column",
        "help",
    ] {
        assert!(first.get(key).is_some(), "missing `{key}` in {first}");
    }
    assert_eq!(v["summary"]["errors"], 1);
    let gh =
        String::from_utf8(meshc_cmd(&["check", d, "--format", "github"]).stdout).expect("utf8");
    assert!(gh.starts_with("::error file="), "{gh}");
    assert!(gh.contains(",title=MC0101::"), "{gh}");
    let sarif: serde_json::Value =
        serde_json::from_slice(&meshc_cmd(&["check", d, "--format", "sarif"]).stdout)
            .expect("sarif");
    assert_eq!(sarif["version"], "2.1.0");
    assert_eq!(sarif["runs"][0]["results"][0]["ruleId"], "MC0101");
    let rules = sarif["runs"][0]["tool"]["driver"]["rules"]
        .as_array()
        .expect("rules");
    assert_eq!(rules.len(), meshc::Code::ALL.len());
    // The environment variable picks the format; `--fail-on warning` turns warnings into exit 1.
    let env = std::process::Command::new(env!("CARGO_BIN_EXE_meshc"))
        .args(["check", d])
        .env("MESHC_FORMAT", "concise")
        .output()
        .expect("run");
    assert!(String::from_utf8_lossy(&env.stdout).contains(": error[MC0101]"));
    let warn_dir = root().join("compiler/tests/fixtures/err/MC0504-shadowed-match");
    let w = warn_dir.to_str().expect("utf8");
    assert_eq!(meshc_cmd(&["check", w]).status.code(), Some(0));
    assert_eq!(
        meshc_cmd(&["check", w, "--fail-on", "warning"])
            .status
            .code(),
        Some(1)
    );
    // Human output without a terminal has no escape codes.
    let human = meshc_cmd(&["check", d]);
    assert!(
        !human.stdout.contains(&0x1b),
        "colour codes in non-terminal output"
    );
}

#[test]
fn cedar_schema_of_bookinfo_snapshot() {
    let out = meshc_cmd(&[
        "schema",
        "--cedar",
        root()
            .join("examples/meshes/bookinfo")
            .to_str()
            .expect("utf8"),
    ]);
    assert_eq!(out.status.code(), Some(0));
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path("../../snapshots/cedar");
    settings.set_prepend_module_to_snapshot(false);
    settings.bind(|| {
        insta::assert_snapshot!("bookinfo.cedarschema", String::from_utf8_lossy(&out.stdout))
    });
}

#[test]
fn audit_mode_lets_a_denied_request_through_and_says_so() {
    // online-boutique runs in audit mode: adservice has no policy allowing it to call anything.
    let e = explain(
        "examples/meshes/online-boutique",
        "cartservice",
        &[],
        "GET",
        "http://redis-cart.boutique:6379/",
    );
    assert_eq!(e["authz"]["decision"], "allow", "{e}");
    let checked = meshc::check_dir(
        &root().join("examples/meshes/online-boutique"),
        &LoadOptions::default(),
    );
    let denied = meshc::explain::explain(
        &checked,
        "recommendationservice",
        &[],
        "GET",
        "http://productcatalogservice:3550/",
    )
    .expect("explain");
    assert_eq!(denied.json["authz"]["decision"], "deny", "{}", denied.json);
    assert_eq!(denied.json["authz"]["audited_deny"], true);
    assert_eq!(
        denied.json["status"], 200,
        "audit mode must not turn the answer into 403"
    );
    assert!(denied.human.contains("would be denied"), "{}", denied.human);
}

/// Every file in `dir`, name to contents.
fn dir_files(dir: &Path) -> std::collections::BTreeMap<String, String> {
    std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| {
            let e = e.expect("entry");
            let name = e.file_name().to_string_lossy().into_owned();
            (name, std::fs::read_to_string(e.path()).expect("read"))
        })
        .collect()
}

/// `meshc build` writes artifacts while it compiles them (`compile_into`); the result must be
/// exactly what compiling in memory and writing everything afterwards gives, with artifacts a
/// previous build named and this one did not removed, and no temporary file left behind.
#[test]
fn writing_while_compiling_gives_the_same_output() {
    let inputs = read_inputs(&root().join("examples/meshes/bookinfo"));
    let checked = meshc::check_sources(inputs, &LoadOptions::default());
    assert!(!checked.has_errors(), "{:#?}", checked.diagnostics);
    let tmp = tempfile::tempdir().expect("tmp");
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    // Both directories hold a previous build that named a service since removed, and an
    // unrelated file that no index names.
    for dir in [&a, &b] {
        std::fs::create_dir_all(dir).expect("mkdir");
        std::fs::write(
            dir.join("index.json"),
            r#"{"format":"meshc.index","format_version":1,"meshc_version":"0","mesh":"m","source_hash":"sha256:00","artifacts":[{"service":"old/gone","file":"old.gone.json","sha256":"sha256:00","body_hash":"sha256:00"}]}"#,
        )
        .expect("write");
        std::fs::write(dir.join("old.gone.json"), "{}").expect("write");
        std::fs::write(dir.join("notes.txt"), "kept").expect("write");
    }
    let files = meshc::build::compile(&checked);
    meshc::build::write_output(&a, &files).expect("write_output");
    let n = meshc::build::compile_into(&checked, &b).expect("compile_into");
    assert_eq!(
        n,
        files.len() - 1,
        "every file but the index is an artifact"
    );
    let (in_a, in_b) = (dir_files(&a), dir_files(&b));
    assert_eq!(
        in_a.keys().collect::<Vec<_>>(),
        in_b.keys().collect::<Vec<_>>()
    );
    assert_eq!(in_a, in_b);
    assert!(!in_b.contains_key("old.gone.json"), "stale artifact kept");
    assert_eq!(in_b.get("notes.txt").map(String::as_str), Some("kept"));
    assert!(
        in_b.keys().all(|k| !k.starts_with('.')),
        "temporary files left: {:?}",
        in_b.keys()
    );
    for f in &files {
        assert_eq!(in_b.get(&f.name), Some(&f.text), "{}", f.name);
    }
}

/// `meshc build` lowers each destination's route table once and shares it among the sidecars
/// that call it; a caller in a namespace with consumer routes must still get its own table.
/// Every sidecar's body must be what lowering it alone gives.
#[test]
fn shared_route_tables_lower_like_unshared_ones() {
    let mesh = r#"
apiVersion: v1
kind: Service
metadata: {name: echo, namespace: mesh}
spec:
  ports: [{name: http, port: 80}, {name: alt, port: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: v1, namespace: mesh}
spec:
  ports: [{name: http, port: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: v2, namespace: mesh}
spec:
  ports: [{name: http, port: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: a, namespace: cons}
spec:
  ports: [{name: http, port: 80}]
---
apiVersion: v1
kind: Service
metadata: {name: b, namespace: cons}
spec:
  ports: [{name: http, port: 80}]
---
apiVersion: v1
kind: Service
metadata: {name: c, namespace: other}
spec:
  ports: [{name: http, port: 80}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: producer, namespace: mesh, creationTimestamp: "2020-01-01T00:00:00Z"}
spec:
  parentRefs: [{group: "", kind: Service, name: echo}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /}}]
    backendRefs: [{name: v1, port: 8080}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: consumer, namespace: cons, creationTimestamp: "2024-01-01T00:00:00Z"}
spec:
  parentRefs: [{group: "", kind: Service, name: echo, namespace: mesh, port: 80}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /c}}]
    backendRefs: [{name: v2, namespace: mesh, port: 8080}]
"#;
    let mut inputs = vec![("consumer.yaml".to_string(), mesh.to_string())];
    inputs.extend(meshc::synth::generate(meshc::synth::SynthSpec::new(120)));
    let checked = meshc::check_sources(inputs, &LoadOptions::default());
    assert!(!checked.has_errors(), "{:#?}", checked.diagnostics);
    let slicer = meshc::policy::slicer(&checked);
    let tables = meshc::lower::TableCache::default();
    let mut consumer_tables = 0;
    for svc in &checked.model.services {
        let alone = meshc::lower::lower_sidecar_with(&checked, &slicer, svc);
        let shared = meshc::lower::lower_sidecar_shared(&checked, &slicer, &tables, svc);
        assert_eq!(alone, shared, "{}", svc.key());
        // The writer's body holds tables encoded once for all callers: same bytes.
        let for_writing = meshc::lower::lower_sidecar_for_encoding(&checked, &slicer, &tables, svc);
        assert_eq!(
            mesh_artifact::encode(&for_writing, "v", "sha256:x"),
            mesh_artifact::encode(&alone, "v", "sha256:x"),
            "{}",
            svc.key()
        );
        let text = serde_json::to_string(&shared).expect("json");
        if text.contains("cons/consumer") {
            consumer_tables += 1;
        }
    }
    // Only the two callers in `cons` see the consumer route; the others were served from the
    // shared producer table.
    assert_eq!(consumer_tables, 2);
}

/// `explain` authorizes where mesh-proxy does: at the sidecar of each backend the request
/// reaches (that service is the Cedar resource), on the request as that sidecar receives it
/// (path rewritten, request headers modified), not at the service the caller addressed.
#[test]
fn explain_authorizes_at_the_backends_reached() {
    let tmp = tempfile::tempdir().expect("tmp");
    let mesh = r#"apiVersion: meshc.dev/v1alpha1
kind: Mesh
metadata: {name: shop}
spec:
  trustDomain: shop.test
  authorization: {contextHeaders: [x-user]}
---
apiVersion: meshc.dev/v1alpha1
kind: MeshService
metadata: {name: frontend}
spec: {ports: [{name: http, port: 80}]}
---
apiVersion: meshc.dev/v1alpha1
kind: MeshService
metadata: {name: store}
spec: {ports: [{name: http, port: 8080}]}
---
apiVersion: meshc.dev/v1alpha1
kind: MeshService
metadata: {name: store-v2}
spec: {ports: [{name: http, port: 8080}]}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: store}
spec:
  parentRefs: [{group: "", kind: Service, name: store, port: 8080}]
  rules:
  - matches: [{path: {type: Exact, value: /checkout}}]
    backendRefs: [{name: store-v2, port: 8080}]
  - matches: [{path: {type: PathPrefix, value: /split}}]
    backendRefs: [{name: store, port: 8080, weight: 3}, {name: store-v2, port: 8080, weight: 1}]
  - matches: [{path: {type: PathPrefix, value: /public}}]
    filters:
    - type: URLRewrite
      urlRewrite: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /internal}}
    backendRefs: [{name: store, port: 8080}]
  - matches: [{path: {type: PathPrefix, value: /tagged}}]
    filters:
    - type: RequestHeaderModifier
      requestHeaderModifier: {set: [{name: x-user, value: alice}]}
    backendRefs: [{name: store, port: 8080}]
  - backendRefs: [{name: store, port: 8080}]
"#;
    let policies = r#"@id("frontend-reads-store")
permit (principal == Workload::"default/frontend", action in Action::"read", resource == Service::"default/store");
@id("no-internal")
forbid (principal, action, resource == Service::"default/store") when { context.path like "/internal*" };
@id("no-alice")
forbid (principal, action, resource) when { context.headers has "x-user" && context.headers["x-user"] == "alice" };
"#;
    std::fs::write(tmp.path().join("mesh.yaml"), mesh).expect("write");
    std::fs::write(tmp.path().join("policies.cedar"), policies).expect("write");
    let checked = meshc::check_dir(tmp.path(), &LoadOptions::default());
    let errors: Vec<_> = checked
        .diagnostics
        .iter()
        .filter(|d| d.severity == meshc::Severity::Error)
        .collect();
    assert!(errors.is_empty(), "{errors:?}");
    let ask = |path: &str| {
        meshc::explain::explain(
            &checked,
            "frontend",
            &[],
            "GET",
            &format!("http://store:8080{path}"),
        )
        .expect("explain")
        .json
    };
    // Addressed to `store`, which frontend may read; reached: `store-v2`, which it may not.
    let e = ask("/checkout");
    assert_eq!(e["authz"]["decision"], "deny", "{e}");
    assert_eq!(e["status"], 403, "{e}");
    assert_eq!(e["backends"][0]["authz"], "deny", "{e}");
    // A split over a service that allows and one that denies.
    let e = ask("/split/x");
    assert_eq!(e["authz"]["decision"], "mixed", "{e}");
    assert_eq!(e["status"], 200, "{e}");
    assert_eq!(
        e["authz"]["policies"],
        serde_json::json!(["frontend-reads-store"])
    );
    let by: Vec<(&str, &str)> = e["backends"]
        .as_array()
        .expect("backends")
        .iter()
        .map(|b| {
            (
                b["service"].as_str().unwrap_or(""),
                b["authz"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        by,
        [("default/store", "allow"), ("default/store-v2", "deny")]
    );
    // The store sidecar sees the rewritten path, and the header the route sets.
    let e = ask("/public/x");
    assert_eq!(e["authz"]["decision"], "deny", "{e}");
    assert_eq!(e["authz"]["policies"], serde_json::json!(["no-internal"]));
    let e = ask("/tagged");
    assert_eq!(
        e["authz"]["policies"],
        serde_json::json!(["no-alice"]),
        "{e}"
    );
    // Control: the plain rule is allowed.
    let e = ask("/other");
    assert_eq!(e["authz"]["decision"], "allow", "{e}");
    assert_eq!(e["status"], 200);
}

/// `meshc ... | head`: the reader goes away before meshc writes. That is no failure and no
/// panic; the exit code stays the command's own.
#[test]
fn a_closed_stdout_pipe_is_not_a_failure() {
    let bookinfo = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/meshes/bookinfo");
    let cases: [(&[&str], i32); 6] = [
        (&["check", bookinfo, "--format", "json"], 0),
        (&["codes"], 0),
        (&["diff", bookinfo, bookinfo, "--format", "json"], 0),
        (
            &[
                "explain",
                bookinfo,
                "--from",
                "productpage",
                "GET",
                "http://reviews:9080/reviews/1",
            ],
            0,
        ),
        (&["graph", bookinfo], 0),
        (&["schema", "--cedar", bookinfo], 0),
    ];
    for (args, code) in cases {
        let (reader, writer) = std::io::pipe().expect("pipe");
        drop(reader);
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_meshc"))
            .args(args)
            .env("NO_COLOR", "1")
            .stdout(writer)
            .stderr(std::process::Stdio::piped())
            .output()
            .expect("run meshc");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert_eq!(out.status.code(), Some(code), "{args:?}: {stderr}");
    }
}

/// `encodedSlashes: keep` reaches the application's own artifact (inbound) and every caller's
/// destination entry for it (outbound), and nothing else: an artifact that does not involve a
/// keeping application carries no `encoded_slashes` at all (so existing artifacts are unchanged).
#[test]
fn encoded_slashes_reach_the_app_and_its_callers_only() {
    let dir = root().join("compiler/tests/fixtures/ok/009-encoded-slashes");
    let files = build(read_inputs(&dir));
    let artifact = |name: &str| {
        let f = files
            .iter()
            .find(|f| f.name == name)
            .unwrap_or_else(|| panic!("no {name}"));
        (
            mesh_artifact::decode(f.text.as_bytes()).expect("verifies"),
            f.text.clone(),
        )
    };
    let (gitlab, _) = artifact("default.gitlab.json");
    assert_eq!(
        gitlab.body.sidecar.encoded_slashes,
        mesh_artifact::EncodedSlashes::Keep
    );
    let (web, web_text) = artifact("default.web.json");
    assert_eq!(
        web.body.sidecar.encoded_slashes,
        mesh_artifact::EncodedSlashes::Reject
    );
    assert!(!web_text.contains(r#""encoded_slashes":"reject""#));
    let modes: Vec<(&str, mesh_artifact::EncodedSlashes)> = web
        .body
        .destinations
        .iter()
        .map(|d| (d.service.as_str(), d.encoded_slashes))
        .collect();
    assert_eq!(
        modes,
        vec![("default/gitlab", mesh_artifact::EncodedSlashes::Keep)]
    );
    assert_eq!(web_text.matches(r#""encoded_slashes":"keep""#).count(), 1);
    for dir in examples() {
        for f in build(read_inputs(&dir)) {
            assert!(!f.text.contains("encoded_slashes"), "{}", f.name);
        }
    }
}
