//! Data-driven fixtures.
//!
//! - `tests/fixtures/ok/NNN-name/`: a mesh definition that checks with no error and no warning.
//! - `tests/fixtures/err/MCxxxx-slug[-variant]/`: a mesh definition that must produce code
//!   `MCxxxx`; its `expect.txt` holds one line `MCxxxx FILE:LINE:COL`, the position of that
//!   diagnostic.
//!
//! The human rendering of every fixture is snapshotted in the top-level `snapshots/fixtures/`
//! (`INSTA_UPDATE=always cargo test -p meshc --test fixtures` rewrites them).

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use meshc::render::{self, HumanOptions};
use meshc::{Checked, Code, LoadOptions, Severity};

/// Codes that no input can trigger today (compiler bugs). Their fixture is still checked: the test
/// asserts the code is absent, so it fails as soon as the compiler emits the code, and the entry
/// must then be removed.
const NOT_EMITTED: &[Code] = &[];

fn fixtures_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("fixtures")
}

/// Fixture directories of one kind (`ok` or `err`), sorted by name.
fn fixture_dirs(kind: &str) -> Vec<PathBuf> {
    let dir = fixtures_root().join(kind);
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    assert!(!dirs.is_empty(), "no fixtures in {}", dir.display());
    dirs
}

fn dir_name(p: &Path) -> String {
    p.file_name().unwrap().to_string_lossy().into_owned()
}

/// The code named by an `err/` fixture directory: `MC0101-unknown-field-x` -> `MC0101`.
fn code_of(dir: &str) -> Code {
    let prefix = dir.split('-').next().unwrap_or_default();
    Code::parse(prefix)
        .unwrap_or_else(|| panic!("fixture `{dir}` does not start with a known code"))
}

fn check(dir: &Path) -> Checked {
    meshc::check_dir(dir, &LoadOptions::default())
}

fn human(checked: &Checked) -> String {
    render::human(
        &checked.sources,
        &checked.diagnostics,
        HumanOptions {
            color: false,
            width: 100,
        },
    )
}

fn snapshot(name: &str, text: &str) {
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path("../../snapshots/fixtures");
    settings.set_prepend_module_to_snapshot(false);
    settings.bind(|| insta::assert_snapshot!(name.to_string(), text));
}

fn describe(checked: &Checked) -> String {
    checked
        .diagnostics
        .iter()
        .map(|d| {
            let (file, line, col, _, _) = render::position(&checked.sources, d);
            format!("  {} {file}:{line}:{col} {}", d.code.as_str(), d.message)
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn ok_fixtures_have_no_errors_or_warnings() {
    for dir in fixture_dirs("ok") {
        let name = dir_name(&dir);
        let checked = check(&dir);
        let bad: Vec<_> = checked
            .diagnostics
            .iter()
            .filter(|d| d.severity >= Severity::Warning)
            .collect();
        assert!(
            bad.is_empty(),
            "ok fixture `{name}` has errors or warnings:\n{}",
            describe(&checked)
        );
        assert!(!checked.io_error, "ok fixture `{name}` had an I/O error");
        assert!(
            !checked.model.services.is_empty(),
            "ok fixture `{name}` defines no service"
        );
        snapshot(&name, &human(&checked));
    }
}

#[test]
fn err_fixtures_report_their_code_at_the_expected_position() {
    for dir in fixture_dirs("err") {
        let name = dir_name(&dir);
        let code = code_of(&name);
        let expect_path = dir.join("expect.txt");
        let expect = std::fs::read_to_string(&expect_path)
            .unwrap_or_else(|e| panic!("fixture `{name}` lacks expect.txt: {e}"));
        let expect = expect.trim();
        let (expect_code, expect_pos) = expect
            .split_once(' ')
            .unwrap_or_else(|| panic!("fixture `{name}`: bad expect.txt `{expect}`"));
        assert_eq!(
            expect_code,
            code.as_str(),
            "fixture `{name}`: expect.txt names another code"
        );

        let checked = check(&dir);
        let found: Vec<String> = checked
            .diagnostics
            .iter()
            .filter(|d| d.code == code)
            .map(|d| {
                let (file, line, col, _, _) = render::position(&checked.sources, d);
                format!("{file}:{line}:{col}")
            })
            .collect();
        if NOT_EMITTED.contains(&code) {
            assert!(
                found.is_empty(),
                "fixture `{name}`: {} is now emitted; remove it from NOT_EMITTED",
                code.as_str()
            );
        } else {
            assert!(
                found.iter().any(|p| p == expect_pos),
                "fixture `{name}`: expected {} at {expect_pos}, found {found:?}; all diagnostics:\n{}",
                code.as_str(),
                describe(&checked)
            );
            let d = checked.diagnostics.iter().find(|d| d.code == code).unwrap();
            assert_eq!(
                d.severity,
                code.severity(),
                "fixture `{name}`: unexpected severity"
            );
        }
        snapshot(&name, &human(&checked));
    }
}

#[test]
fn every_code_has_an_err_fixture() {
    let covered: BTreeSet<Code> = fixture_dirs("err")
        .iter()
        .map(|d| code_of(&dir_name(d)))
        .collect();
    let missing: Vec<&str> = Code::ALL
        .iter()
        .filter(|c| !covered.contains(c))
        .map(|c| c.as_str())
        .collect();
    assert!(
        missing.is_empty(),
        "codes without an err/ fixture: {missing:?}"
    );
}

/// A fenced block right after a line `label`, e.g. `Bad:`; `None` when missing or empty.
fn fenced_after<'a>(section: &'a str, label: &str) -> Option<&'a str> {
    let start = section.find(&format!("\n{label}\n"))? + label.len() + 2;
    let rest = section[start..].trim_start_matches('\n');
    let open_end = rest.strip_prefix("```")?.find('\n')? + 4;
    let body = &rest[open_end..];
    let close = body.find("\n```")?;
    let body = &body[..close];
    if body.trim().is_empty() {
        None
    } else {
        Some(body)
    }
}

#[test]
fn every_code_is_documented_with_bad_and_fixed_examples() {
    let mut problems = Vec::new();
    for &code in Code::ALL {
        let c = code.as_str();
        let Some(section) = meshc::docs::code_section(code) else {
            problems.push(format!("{c}: no section in docs/diagnostics.md"));
            continue;
        };
        let heading = format!("## {c} {}", code.slug());
        if section.lines().next() != Some(heading.as_str()) {
            problems.push(format!("{c}: heading is not `{heading}`"));
        }
        let severity = format!("Severity: {}.", code.severity().as_str());
        if !section.contains(&severity) {
            problems.push(format!("{c}: does not say `{severity}`"));
        }
        let (Some(bad_at), Some(fixed_at)) = (section.find("\nBad:\n"), section.find("\nFixed:\n"))
        else {
            problems.push(format!("{c}: needs a `Bad:` and a `Fixed:` example"));
            continue;
        };
        if bad_at > fixed_at {
            problems.push(format!("{c}: `Bad:` must come before `Fixed:`"));
        }
        // A paragraph of explanation: prose between the heading and `Bad:`, beyond the severity.
        let prose = section[heading.len()..bad_at].replace(&severity, "");
        if prose.split_whitespace().count() < 8 {
            problems.push(format!(
                "{c}: needs a paragraph of explanation before `Bad:`"
            ));
        }
        match (
            fenced_after(section, "Bad:"),
            fenced_after(section, "Fixed:"),
        ) {
            (Some(bad), Some(fixed)) if bad.trim() == fixed.trim() => {
                problems.push(format!("{c}: the bad and fixed examples are identical"));
            }
            (Some(_), Some(_)) => {}
            _ => problems.push(format!(
                "{c}: `Bad:` and `Fixed:` must each be followed by a fenced block"
            )),
        }
    }
    assert!(
        problems.is_empty(),
        "docs/diagnostics.md:\n{}",
        problems.join("\n")
    );
}

#[test]
fn empty_directory_is_no_input() {
    let dir = tempfile::tempdir().unwrap();
    let checked = check(dir.path());
    let codes: Vec<Code> = checked.diagnostics.iter().map(|d| d.code).collect();
    assert_eq!(codes, vec![Code::NoInput]);
    assert!(checked.has_errors());
}

#[test]
fn nul_bytes_are_unreadable_input() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("mesh.yaml"),
        b"apiVersion: meshc.dev/v1alpha1\n\0\0kind: Mesh\n",
    )
    .unwrap();
    let checked = check(dir.path());
    assert!(
        checked
            .diagnostics
            .iter()
            .any(|d| d.code == Code::Unreadable),
        "a NUL byte should make the file unreadable:\n{}",
        describe(&checked)
    );
}
