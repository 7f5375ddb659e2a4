//! No input makes validation or slicing panic, and every span stays inside its file.

mod common;

use common::{BOOKINFO, bookinfo};
use mesh_policy::{bundle_for, validate};
use proptest::prelude::*;

fn check_spans(src: &str) {
    let model = bookinfo();
    let sources = vec![("p.cedar".to_string(), src.to_string())];
    let (set, diags) = validate(&model, &sources);
    for d in &diags {
        assert!(d.span.0 <= d.span.1 && d.span.1 <= src.len(), "{d:?}");
        assert!(
            src.is_char_boundary(d.span.0) && src.is_char_boundary(d.span.1),
            "{d:?}"
        );
        assert_eq!(d.file, 0);
    }
    for e in set.entries() {
        assert_eq!(src.get(e.span.0..e.span.1), Some(e.text.as_str()));
    }
    let _ = bundle_for(&model, &set, "default/details", &["p.cedar".to_string()]);
}

#[test]
fn edge_inputs() {
    for src in [
        "",
        "// only a comment\n",
        "permit(principal, action, resource",
        "permit(principal, action, resource) when { context.path == \"é",
        "@id(\"x\")",
        "\u{feff}permit(principal, action, resource);",
        "permit(principal, action, resource) when { principal.name == \"\u{202e}x\" };",
        "forbid(principal, action, resource) when { \"é\" like \"*é\" };",
    ] {
        check_spans(src);
    }
    // Nothing parses, nothing is kept; the error sits at the end of the file.
    let src = "permit(principal, action, resource";
    let (set, diags) = validate(&bookinfo(), &[("p.cedar".to_string(), src.to_string())]);
    assert!(set.is_empty());
    assert_eq!(diags[0].code, "MC0601");
    assert!(diags[0].span.0 >= src.len() - 1, "{:?}", diags[0]);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn random_text_never_panics(src in "\\PC{0,200}") {
        check_spans(&src);
    }

    #[test]
    fn damaged_policies_never_panic(cut in 0usize..BOOKINFO.len(), len in 0usize..40, insert in "[(){};:\"@é ]{0,3}") {
        let mut src = BOOKINFO.to_string();
        let mut start = cut.min(src.len());
        while !src.is_char_boundary(start) { start -= 1; }
        let mut end = (start + len).min(src.len());
        while !src.is_char_boundary(end) { end -= 1; }
        src.replace_range(start..end, &insert);
        check_spans(&src);
    }
}
