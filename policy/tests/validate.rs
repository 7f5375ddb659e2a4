mod common;

use common::{BOOKINFO, bookinfo, sources};
use mesh_policy::validate::codes;
use mesh_policy::{PolicyDiagnostic, Severity, validate};

/// Validate one file named `p.cedar`.
fn check(src: &str) -> Vec<PolicyDiagnostic> {
    validate(&bookinfo(), &[("p.cedar".to_string(), src.to_string())]).1
}

/// The byte span of the `nth` occurrence of `needle` in `src`.
fn span_of(src: &str, needle: &str, nth: usize) -> (usize, usize) {
    let start = src
        .match_indices(needle)
        .nth(nth)
        .map(|(i, _)| i)
        .expect("needle in source");
    (start, start + needle.len())
}

/// The only diagnostic with `code`.
fn only<'a>(diags: &'a [PolicyDiagnostic], code: &str) -> &'a PolicyDiagnostic {
    let found: Vec<&PolicyDiagnostic> = diags.iter().filter(|d| d.code == code).collect();
    assert_eq!(found.len(), 1, "{code} in {diags:#?}");
    found[0]
}

#[test]
fn bookinfo_is_clean() {
    let (set, diags) = validate(&bookinfo(), &sources());
    assert!(diags.is_empty(), "{diags:#?}");
    let ids: Vec<&str> = set.entries().iter().map(|e| e.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "productpage-reads-details",
            "productpage-reads-reviews",
            "reviews-reads-ratings",
            "namespace-health",
            "reviews-anything-productpage",
            "no-writes-to-productpage",
            "debug-only-from-productpage",
            "ratings.cedar:2:1",
            "shop-internal",
            "cart-from-productpage",
        ]
    );
    // Positions and text point at the policy in its file (annotations included).
    let e = set.get("reviews-reads-ratings").expect("policy");
    assert_eq!((e.file, e.line, e.column), (0, 16, 1));
    assert!(
        e.text
            .starts_with("@id(\"reviews-reads-ratings\")\npermit ("),
        "{}",
        e.text
    );
    assert!(
        e.text
            .ends_with("when { context.path like \"/ratings/*\" };"),
        "{}",
        e.text
    );
    assert_eq!(&BOOKINFO[e.span.0..e.span.1], e.text);
    let e = set.get("ratings.cedar:2:1").expect("policy");
    assert_eq!((e.file, e.line, e.column), (1, 2, 1));
    assert_eq!(
        set.get("no-writes-to-productpage").map(|e| e.effect),
        Some(mesh_policy::Effect::Forbid)
    );
    assert_eq!(set.len(), 10);
    assert_eq!(set.cedar().policies().count(), 10);
}

#[test]
fn misspelt_entity_type() {
    let src = "permit (principal == Workolad::\"default/productpage\", action, resource);\n";
    let diags = check(src);
    let d = only(&diags, codes::UNKNOWN_ENTITY_TYPE);
    assert_eq!(d.severity, Severity::Error);
    assert_eq!(d.span, span_of(src, "Workolad", 0));
    assert_eq!(d.help.as_deref(), Some("did you mean `Workload`?"));
    assert!(d.message.contains("`Workolad`"), "{}", d.message);
    // The consequences (no action applies, impossible policy) are not reported on top.
    assert_eq!(diags.len(), 1, "{diags:#?}");
}

#[test]
fn misspelt_attribute() {
    let src =
        "permit (principal, action, resource)\nwhen { principal.namepsace == \"default\" };\n";
    let diags = check(src);
    let d = only(&diags, codes::UNKNOWN_ATTRIBUTE);
    assert_eq!(d.span, span_of(src, "principal.namepsace", 0));
    assert_eq!(d.help.as_deref(), Some("did you mean `namespace`?"));
    assert!(
        d.message.starts_with("attribute `namepsace`"),
        "{}",
        d.message
    );
}

#[test]
fn misspelt_context_attribute_and_header() {
    let src = "permit (principal, action, resource)\nwhen { context.pth == \"/\" };\n\
               permit (principal, action, resource)\nwhen { context.headers has \"x-usr\" };\n\
               permit (principal, action, resource)\nwhen { context.headers[\"x-user\"] == \"a\" };\n";
    let diags = check(src);
    let unknown: Vec<&PolicyDiagnostic> = diags
        .iter()
        .filter(|d| d.code == codes::UNKNOWN_ATTRIBUTE)
        .collect();
    assert_eq!(unknown.len(), 2, "{diags:#?}");
    assert_eq!(unknown[0].span, span_of(src, "context.pth", 0));
    assert_eq!(unknown[0].help.as_deref(), Some("did you mean `path`?"));
    // `has` on an undeclared header: Cedar alone only warns that the policy is impossible.
    assert_eq!(
        unknown[1].span,
        span_of(src, "context.headers has \"x-usr\"", 0)
    );
    assert_eq!(
        unknown[1].message,
        "header `x-usr` is not visible to policy"
    );
    assert!(
        unknown[1]
            .help
            .as_deref()
            .is_some_and(|h| h.starts_with("did you mean `x-user`?"))
    );
    assert!(diags.iter().all(|d| d.code != codes::WARNING), "{diags:#?}");
    // A declared header read without `has`.
    let d = only(&diags, codes::UNGUARDED_OPTIONAL);
    assert_eq!(d.span, span_of(src, "context.headers[\"x-user\"]", 0));
    assert!(
        d.help
            .as_deref()
            .is_some_and(|h| h.contains("context.headers has \"x-user\"")),
        "{d:?}"
    );
}

#[test]
fn undeclared_header_lists_visible_ones() {
    let src = "permit (principal, action, resource)\nwhen { context.headers has \"x-debug\" && context.headers[\"x-usr\"] == \"a\" };\n";
    let diags = check(src);
    let d = only(&diags, codes::UNKNOWN_ATTRIBUTE);
    assert_eq!(d.span, span_of(src, "context.headers[\"x-usr\"]", 0));
    let help = d.help.as_deref().unwrap_or_default();
    assert!(help.starts_with("did you mean `x-user`?"), "{help}");
    assert!(help.contains("`x-debug`, `x-user`"), "{help}");
}

#[test]
fn unknown_service_namespace_and_workload() {
    let src = "permit (\n  principal == Workload::\"default/reviewz\",\n  action,\n  resource == Service::\"default/ratngs\"\n);\n\
               permit (principal, action, resource in Namespace::\"defualt\");\n\
               permit (principal, action, resource) when { resource == Service::\"details\" };\n\
               permit (principal, action, resource) when { resource == Service::\"default/nothing-like-this-at-all\" };\n";
    let diags = check(src);
    let unknown: Vec<&PolicyDiagnostic> = diags
        .iter()
        .filter(|d| d.code == codes::UNKNOWN_ENTITY)
        .collect();
    assert_eq!(unknown.len(), 5, "{diags:#?}");
    let expect = [
        (
            "Workload::\"default/reviewz\"",
            "unknown workload `default/reviewz`",
            Some("did you mean `Workload::\"default/reviews\"`?"),
        ),
        (
            "Service::\"default/ratngs\"",
            "unknown service `default/ratngs`",
            Some("did you mean `Service::\"default/ratings\"`?"),
        ),
        (
            "Namespace::\"defualt\"",
            "unknown namespace `defualt`",
            Some("did you mean `Namespace::\"default\"`?"),
        ),
        // A name without its namespace.
        (
            "Service::\"details\"",
            "unknown service `details`",
            Some("did you mean `Service::\"default/details\"`?"),
        ),
        (
            "Service::\"default/nothing-like-this-at-all\"",
            "unknown service `default/nothing-like-this-at-all`",
            None,
        ),
    ];
    for (d, (needle, message, help)) in unknown.iter().zip(expect) {
        assert_eq!(d.span, span_of(src, needle, 0), "{needle}");
        assert_eq!(d.message, message);
        match help {
            Some(h) => assert_eq!(d.help.as_deref(), Some(h)),
            None => assert!(
                d.help
                    .as_deref()
                    .is_some_and(|h| !h.contains("did you mean")),
                "{d:?}"
            ),
        }
        assert_eq!(d.severity, Severity::Error);
    }
}

#[test]
fn right_id_wrong_type() {
    let src = "permit (principal, action, resource in Service::\"default\");\n";
    let d = check(src)
        .into_iter()
        .find(|d| d.code == codes::UNKNOWN_ENTITY)
        .expect("MC0603");
    assert_eq!(
        d.help.as_deref(),
        Some("did you mean `Namespace::\"default\"`?")
    );
}

#[test]
fn unknown_action() {
    let src = "permit (principal, action == Action::\"GETT\", resource);\n";
    let diags = check(src);
    let d = only(&diags, codes::UNKNOWN_ACTION);
    assert_eq!(d.span, span_of(src, "Action::\"GETT\"", 0));
    assert_eq!(d.help.as_deref(), Some("did you mean `Action::\"GET\"`?"));
}

#[test]
fn action_group_with_eq_warns() {
    let src = "permit (principal, action == Action::\"read\", resource);\n";
    let diags = check(src);
    let d = only(&diags, codes::WARNING);
    assert_eq!(d.severity, Severity::Warning);
    assert!(
        d.help
            .as_deref()
            .is_some_and(|h| h.contains("action in Action::\"read\"")),
        "{d:?}"
    );
    assert_eq!(diags.len(), 1, "{diags:#?}");
}

#[test]
fn type_error() {
    let src = "permit (principal, action, resource) when { resource.name == 1 };\n";
    let diags = check(src);
    let d = only(&diags, codes::VALIDATION);
    assert_eq!(d.span, span_of(src, "resource.name == 1", 0));
    assert!(!d.message.contains("for policy"), "{}", d.message);
    assert!(
        !d.help.as_deref().unwrap_or_default().contains("for policy"),
        "{d:?}"
    );
}

#[test]
fn syntax_errors_point_into_their_file() {
    let good = "permit (principal, action, resource);\n".to_string();
    let bad = "permit (principal, action, resource)\nforbid (principal, action, resource);\n";
    let (set, diags) = validate(
        &bookinfo(),
        &[
            ("good.cedar".to_string(), good),
            ("bad.cedar".to_string(), bad.to_string()),
        ],
    );
    assert!(!diags.is_empty());
    assert!(
        diags.iter().all(|d| d.code == codes::SYNTAX && d.file == 1),
        "{diags:#?}"
    );
    // The missing `;` shows where the next policy starts: `forbid` is read as a condition keyword.
    let d = &diags[0];
    assert_eq!(d.span, span_of(bad, "(", 1));
    assert!(d.message.contains("unexpected token"), "{}", d.message);
    // The good file still yields its policy.
    assert_eq!(set.len(), 1);
    assert_eq!(set.entries()[0].id, "good.cedar:1:1");

    let bad = "permit (principal, action, resource) when { 1 + };";
    let diags = check(bad);
    assert_eq!(diags[0].code, codes::SYNTAX);
    assert_eq!(diags[0].span, span_of(bad, "}", 0));
    assert!(
        diags[0]
            .label
            .as_deref()
            .is_some_and(|l| l.starts_with("expected")),
        "{:?}",
        diags[0]
    );
}

#[test]
fn duplicate_and_invalid_ids() {
    let a = "@id(\"same\")\npermit (principal, action, resource);\n";
    let b = "// second\n@id(\"same\")\nforbid (principal, action, resource);\n@id(\"has space\")\npermit (principal, action, resource);\n";
    let (set, diags) = validate(
        &bookinfo(),
        &[
            ("a.cedar".to_string(), a.to_string()),
            ("b.cedar".to_string(), b.to_string()),
        ],
    );
    let d = only(&diags, codes::DUPLICATE_ID);
    assert_eq!(d.file, 1);
    assert_eq!(d.span.0, span_of(b, "@id(\"same\")", 0).0);
    assert!(
        d.help.as_deref().is_some_and(|h| h.contains("a.cedar:1:1")),
        "{d:?}"
    );
    let d = only(&diags, codes::INVALID_ID);
    assert_eq!(d.span, span_of(b, "@id(\"has space\")", 0));
    // The duplicate is dropped; the invalid id falls back to the position.
    let ids: Vec<&str> = set.entries().iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids, ["same", "b.cedar:4:1"]);
    assert_eq!(
        set.get("same").map(|e| e.effect),
        Some(mesh_policy::Effect::Permit)
    );
}

#[test]
fn templates_are_refused() {
    let src = "permit (principal == ?principal, action, resource);\n";
    let diags = check(src);
    let d = only(&diags, codes::OTHER);
    assert_eq!(d.span.0, 0);
}

#[test]
fn diagnostics_are_sorted_and_codes_documented() {
    let src = "permit (principal, action, resource) when { principal.nmae == \"\" };\n\
               permit (principal, action == Action::\"GETT\", resource);\n";
    let diags = check(src);
    assert!(
        diags.windows(2).all(|w| w[0].span.0 <= w[1].span.0),
        "{diags:#?}"
    );
    let readme = include_str!("../README.md");
    for info in mesh_policy::CODES {
        assert!(
            readme.contains(&format!("| `{}`", info.code)),
            "{} undocumented",
            info.code
        );
        assert!(
            readme.contains(info.slug),
            "{} slug undocumented",
            info.slug
        );
    }
}

/// Many files and policies, type-checked in parts on several threads: every problem is still
/// reported once, in its own file and place, in order.
#[test]
fn large_sets_report_every_problem_once() {
    let mut files = Vec::new();
    let mut expected = Vec::new();
    for f in 0..8 {
        let mut text = String::new();
        for p in 0..40 {
            let line = text.lines().count() + 1;
            let body = match (f * 40 + p) % 9 {
                // An attribute services do not have: Cedar's validator.
                0 => {
                    expected.push((f, line, codes::UNKNOWN_ATTRIBUTE));
                    "resource.color == \"red\""
                }
                // A service the mesh lacks: meshc's own literal check.
                4 => {
                    expected.push((f, line, codes::UNKNOWN_ENTITY));
                    "resource == Service::\"default/nosuch\""
                }
                _ => "context.path like \"/api/*\"",
            };
            text.push_str(&format!(
                "permit (principal, action, resource) when {{ {body} }};\n"
            ));
        }
        files.push((format!("f{f}.cedar"), text));
    }
    let (set, diags) = validate(&bookinfo(), &files);
    assert_eq!(set.entries().len(), 8 * 40);
    let found: Vec<(usize, usize, &str)> = diags
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .map(|d| {
            let text = &files[d.file].1;
            let line = text[..d.span.0].matches('\n').count() + 1;
            (d.file, line, d.code)
        })
        .collect();
    assert_eq!(found, expected, "{diags:#?}");
}

/// Files parsed ahead of validation give exactly what validating from text gives, problems
/// included; a parse of other files is not trusted and the sources are parsed again.
#[test]
fn parsed_ahead_validates_like_text() {
    let mut files = sources();
    files.push((
        "bad.cedar".to_string(),
        "permit (principal == Workload::\"default/nope\", action, resource) when { context.nope };\nforbid (".to_string(),
    ));
    files.push((
        "typo.cedar".to_string(),
        "permit (principal is Wrkload, action, resource);".to_string(),
    ));
    let (set, diags) = validate(&bookinfo(), &files);
    assert!(!diags.is_empty(), "the test needs problems to compare");
    let ahead = mesh_policy::validate::Parsed::new(&files);
    let (set2, diags2) = mesh_policy::validate::validate_parsed(&bookinfo(), &files, ahead);
    assert_eq!(diags, diags2);
    let ids = |s: &mesh_policy::PolicySet| {
        s.entries()
            .iter()
            .map(|e| (e.id.clone(), e.text.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(&set), ids(&set2));
    // Parsed from different files: ignored.
    let other = mesh_policy::validate::Parsed::new(&files[..1]);
    let (set3, diags3) = mesh_policy::validate::validate_parsed(&bookinfo(), &files, other);
    assert_eq!(diags, diags3);
    assert_eq!(ids(&set), ids(&set3));
}

/// Policies of one shape (the same text but for non-action entity ids) are type-checked once;
/// every policy must still get exactly the diagnostics it gets when validated on its own. The
/// variants below collide on shape where a careless shape would merge policies that validate
/// differently: literal equality decided by the ids, escaped ids, action ids, comments and
/// annotations holding quotes, and errors that each policy must report itself.
#[test]
fn policies_of_one_shape_validate_like_each_alone() {
    // The first variant of each template is the one validated for its shape: it must be the
    // clean one where a wrong shape would hide the others' problems.
    let ids = [
        ("default/productpage", "default/productpage", "GET"),
        ("default/reviews", "default/ratings", "read"),
        ("default/productpage", "default/details", "GETT"),
        ("shop/cart", "default/reviews", "POST"),
    ];
    let templates = [
        "permit (principal == Workload::\"{A}\", action in Action::\"read\", resource == Service::\"{B}\");",
        "permit (principal, action, resource) when { Workload::\"{A}\" == Workload::\"{B}\" };",
        "permit (principal, action, resource) when { Service::\"{A}\" == Service::\"{B}\" && resource.name == 1 };",
        "forbid (principal, action == Action::\"read\", resource == Service::\"{B}\");",
        "permit (principal, action == Action::\"{M}\", resource) when { principal == Workload::\"{A}\" };",
        "permit (principal, action, resource) when { Action::\"{M}\" in Action::\"read\" && principal == Workload::\"{A}\" };",
        "permit (principal == Wrkload::\"{A}\", action, resource == Service::\"{B}\");",
        "// a comment with \"{A}\" in quotes\npermit (principal, action, resource in Namespace::\"{A}\");",
        "permit (principal, action, resource) when { true && Workload::\"{A}\" == Workload::\"\\u{64}efault/productpage\" };",
        "permit (principal, action, resource) when { context.path == \"{A}\" && resource == Service::\"{B}\" };",
        "@note(\"x \\\"{A}\\\" y\") permit (principal == Workload :: \"{A}\", action, resource) when { resource.nmae == \"{B}\" };",
    ];
    let mut policies = Vec::new();
    for (t, template) in templates.iter().enumerate() {
        for (k, (a, b, m)) in ids.iter().enumerate() {
            let body = template
                .replace("{A}", a)
                .replace("{B}", b)
                .replace("{M}", m);
            policies.push(format!("@id(\"p{t}-{k}\")\n{body}\n"));
        }
    }
    // Diagnostics of one policy, positions relative to where the policy starts.
    let relative = |diags: &[PolicyDiagnostic], start: usize, len: usize| {
        let mut out: Vec<(String, String, (usize, usize), String)> = diags
            .iter()
            .filter(|d| d.span.0 >= start && d.span.0 < start + len)
            .map(|d| {
                (
                    d.code.to_string(),
                    format!("{:?}", d.severity),
                    (d.span.0 - start, d.span.1 - start),
                    d.message.clone(),
                )
            })
            .collect();
        out.sort();
        out
    };
    let together: String = policies.concat();
    let all = check(&together);
    let mut at = 0;
    let mut flagged = 0;
    for policy in &policies {
        let alone = relative(&check(policy), 0, policy.len());
        let in_set = relative(&all, at, policy.len());
        assert_eq!(in_set, alone, "policy {policy}");
        flagged += usize::from(!alone.is_empty());
        at += policy.len();
    }
    // The corpus exercises both outcomes within shapes.
    assert!(flagged > 10 && flagged < policies.len() - 5, "{flagged}");
}
