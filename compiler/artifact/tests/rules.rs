//! One test per Gateway API matching rule and per precedence rule.
//!
//! Every table is built the way the compiler builds it: entries sorted with
//! `rank::precedence_key`, then indexed with `RouteIndex::build`, then asked with
//! `RouteIndex::lookup`.

use mesh_artifact::rank::precedence_key;
use mesh_artifact::{
    MatchKind, PathMatch, RouteEntry, RouteIndex, RouteTable, RuleAction, SimpleRequest, SourcePos,
    ValueMatch,
};

/// An entry of route `route`, rule `rule`, match `m`.
fn entry(route: &str, rule: u32, m: u32, path: PathMatch) -> RouteEntry {
    RouteEntry {
        route: route.to_string(),
        rule,
        r#match: m,
        source: SourcePos {
            file: "routes.yaml".into(),
            line: 1 + rule,
            column: 1,
        },
        path,
        method: None,
        headers: Vec::new(),
        query: Vec::new(),
        action: 0,
    }
}

fn exact(p: &str) -> PathMatch {
    PathMatch::Exact(p.into())
}
fn prefix(p: &str) -> PathMatch {
    PathMatch::PathPrefix(p.into())
}
fn regex(p: &str) -> PathMatch {
    PathMatch::RegularExpression(p.into())
}

fn value(name: &str, kind: MatchKind, value: &str) -> ValueMatch {
    ValueMatch {
        name: name.into(),
        kind,
        value: value.into(),
    }
}

trait With {
    fn method(self, m: &str) -> Self;
    fn header(self, name: &str, v: &str) -> Self;
    fn header_re(self, name: &str, v: &str) -> Self;
    fn query(self, name: &str, v: &str) -> Self;
    fn query_re(self, name: &str, v: &str) -> Self;
}

impl With for RouteEntry {
    fn method(mut self, m: &str) -> Self {
        self.method = Some(m.into());
        self
    }
    fn header(mut self, name: &str, v: &str) -> Self {
        self.headers.push(value(name, MatchKind::Exact, v));
        self
    }
    fn header_re(mut self, name: &str, v: &str) -> Self {
        self.headers
            .push(value(name, MatchKind::RegularExpression, v));
        self
    }
    fn query(mut self, name: &str, v: &str) -> Self {
        self.query.push(value(name, MatchKind::Exact, v));
        self
    }
    fn query_re(mut self, name: &str, v: &str) -> Self {
        self.query
            .push(value(name, MatchKind::RegularExpression, v));
        self
    }
}

/// Sort by precedence (as the compiler does), index, and name the winner as
/// `route#rule.match`.
fn winner(entries: Vec<(RouteEntry, Option<&str>)>, req: &SimpleRequest) -> Option<String> {
    let mut keyed: Vec<_> = entries
        .into_iter()
        .map(|(e, ts)| (precedence_key(&e, ts), e))
        .collect();
    keyed.sort_by(|a, b| a.0.cmp(&b.0));
    let table = RouteTable {
        entries: keyed.into_iter().map(|(_, e)| e).collect(),
        actions: vec![RuleAction::default()],
    };
    let index = RouteIndex::build(&table).expect("valid table");
    assert!(
        index.is_ordered(),
        "a table sorted by precedence_key is ordered"
    );
    index.lookup(req).map(|i| {
        let e = &table.entries[i];
        format!("{}#{}.{}", e.route, e.rule, e.r#match)
    })
}

/// Whether a table holding only `e` matches the request.
fn matches(e: &RouteEntry, req: &SimpleRequest) -> bool {
    let hit = winner(vec![(e.clone(), None)], req).is_some();
    // The unindexed check must agree with the index.
    assert_eq!(
        mesh_artifact::matcher::entry_matches(e, req),
        Ok(hit),
        "{e:?} {req:?}"
    );
    hit
}

fn get(path: &str) -> SimpleRequest {
    SimpleRequest::new("GET", path)
}

fn assert_paths(path: PathMatch, yes: &[&str], no: &[&str]) {
    let e = entry("ns/r", 0, 0, path);
    for p in yes {
        assert!(matches(&e, &get(p)), "{:?} should match `{p}`", e.path);
    }
    for p in no {
        assert!(!matches(&e, &get(p)), "{:?} should not match `{p}`", e.path);
    }
}

// ---- path matching -------------------------------------------------------------------------

#[test]
fn prefix_matches_whole_segments() {
    assert_paths(
        prefix("/v2"),
        &["/v2", "/v2/", "/v2/x", "/v2/x/y", "/v2//x"],
        &["/v2example", "/v", "/", "/x/v2", "/V2", "/v2x/y", ""],
    );
}

#[test]
fn prefix_trailing_slash_is_ignored() {
    assert_paths(
        prefix("/v2/"),
        &["/v2", "/v2/", "/v2/x", "/v2/x/y"],
        &["/v2example", "/v", "/", "/x/v2/"],
    );
}

#[test]
fn prefix_of_several_segments() {
    assert_paths(
        prefix("/a/b"),
        &["/a/b", "/a/b/", "/a/b/c"],
        &["/a", "/a/", "/a/bc", "/a/c/b"],
    );
}

#[test]
fn root_prefix_matches_every_path() {
    assert_paths(
        prefix("/"),
        &["/", "/a", "/a/", "/a/b/c", "/ab", "//", ""],
        &[],
    );
}

#[test]
fn exact_matches_only_the_same_path() {
    assert_paths(
        exact("/v2"),
        &["/v2"],
        &["/v2/", "/v2/x", "/v", "/V2", "/v2example", "/"],
    );
    assert_paths(exact("/v2/"), &["/v2/"], &["/v2", "/v2/x"]);
}

#[test]
fn query_string_is_not_part_of_the_path() {
    assert_paths(exact("/a"), &["/a?x=1", "/a?"], &["/a/?x=1"]);
    assert_paths(prefix("/a"), &["/a?b", "/a/?b"], &["/ab?/a"]);
}

#[test]
fn regex_path_must_match_the_whole_path() {
    assert_paths(
        regex("/v[0-9]+"),
        &["/v2", "/v22"],
        &["/v2/", "/v2/x", "/xv2", "/v", "/vv2"],
    );
    assert_paths(regex("/a/.*"), &["/a/", "/a/b/c"], &["/a", "/b/a/x"]);
    // Alternation must not escape the anchors.
    assert_paths(regex("/a|/b"), &["/a", "/b"], &["/a/x", "/x/b"]);
}

// ---- header, query and method matching ------------------------------------------------------

#[test]
fn header_names_are_case_insensitive_values_exact() {
    let e = entry("ns/r", 0, 0, prefix("/")).header("X-Env", "prod");
    assert!(matches(&e, &get("/").with_header("x-env", "prod")));
    assert!(matches(&e, &get("/").with_header("X-ENV", "prod")));
    assert!(matches(
        &e,
        &get("/")
            .with_header("other", "1")
            .with_header("x-Env", "prod")
    ));
    assert!(!matches(&e, &get("/").with_header("x-env", "Prod")));
    assert!(!matches(&e, &get("/").with_header("x-env", "prod ")));
    assert!(!matches(&e, &get("/").with_header("x-env", "prod2")));
    assert!(!matches(&e, &get("/").with_header("x-envy", "prod")));
    assert!(!matches(&e, &get("/")));
}

#[test]
fn header_first_value_counts() {
    let e = entry("ns/r", 0, 0, prefix("/")).header("x-env", "prod");
    assert!(!matches(
        &e,
        &get("/")
            .with_header("x-env", "dev")
            .with_header("x-env", "prod")
    ));
}

#[test]
fn all_headers_must_match() {
    let e = entry("ns/r", 0, 0, prefix("/"))
        .header("x-a", "1")
        .header("x-b", "2");
    assert!(matches(
        &e,
        &get("/").with_header("x-b", "2").with_header("x-a", "1")
    ));
    assert!(!matches(&e, &get("/").with_header("x-a", "1")));
    assert!(!matches(
        &e,
        &get("/").with_header("x-a", "1").with_header("x-b", "3")
    ));
}

#[test]
fn repeated_header_name_only_first_counts() {
    let e = entry("ns/r", 0, 0, prefix("/"))
        .header("x-a", "1")
        .header("X-A", "2");
    assert!(matches(&e, &get("/").with_header("x-a", "1")));
    assert!(!matches(&e, &get("/").with_header("x-a", "2")));
}

#[test]
fn header_regex_must_match_the_whole_value() {
    let e = entry("ns/r", 0, 0, prefix("/")).header_re("x-version", "v[12]");
    assert!(matches(&e, &get("/").with_header("X-Version", "v1")));
    assert!(matches(&e, &get("/").with_header("x-version", "v2")));
    assert!(!matches(&e, &get("/").with_header("x-version", "v3")));
    assert!(!matches(&e, &get("/").with_header("x-version", "v12")));
    assert!(!matches(&e, &get("/").with_header("x-version", "av1")));
    assert!(!matches(&e, &get("/")));
}

#[test]
fn query_exact_first_occurrence_case_sensitive_name() {
    let e = entry("ns/r", 0, 0, prefix("/")).query("a", "1");
    assert!(matches(&e, &get("/?a=1")));
    assert!(matches(&e, &get("/?b=2&a=1")));
    assert!(matches(&e, &get("/?a=1&a=2")));
    assert!(!matches(&e, &get("/?a=2&a=1")), "only the first `a` counts");
    assert!(
        !matches(&e, &get("/?A=1")),
        "query names are case-sensitive"
    );
    assert!(!matches(&e, &get("/?a=10")));
    assert!(!matches(&e, &get("/?aa=1")));
    assert!(!matches(&e, &get("/?x=a=1")));
    assert!(!matches(&e, &get("/")));
    assert!(!matches(&e, &get("/?")));
}

#[test]
fn query_is_percent_decoded() {
    let e = entry("ns/r", 0, 0, prefix("/")).query("a b", "1/2");
    assert!(matches(&e, &get("/?a%20b=1%2F2")));
    assert!(matches(&e, &get("/?a+b=1%2f2")));
    assert!(matches(&e, &get("/?a b=1/2")));
    assert!(!matches(&e, &get("/?a%2520b=1/2")), "decoded once only");
    let e = entry("ns/r", 0, 0, prefix("/")).query("p", "%");
    assert!(matches(&e, &get("/?p=%")), "a lone `%` stands for itself");
    assert!(matches(&e, &get("/?p=%25")));
    let e = entry("ns/r", 0, 0, prefix("/")).query("p", "%+f");
    assert!(matches(&e, &get("/?p=%%2Bf")), "`%+f` is not an escape");
    assert!(!matches(&e, &get("/?p=%+f")), "`+` is a space");
}

#[test]
fn query_empty_value_and_missing_equals() {
    let e = entry("ns/r", 0, 0, prefix("/")).query("flag", "");
    assert!(matches(&e, &get("/?flag")));
    assert!(matches(&e, &get("/?flag=")));
    assert!(!matches(&e, &get("/?flag=1")));
    assert!(!matches(&e, &get("/")));
}

#[test]
fn query_regex_must_match_the_whole_value() {
    let e = entry("ns/r", 0, 0, prefix("/")).query_re("id", "[0-9]+");
    assert!(matches(&e, &get("/?id=123")));
    assert!(
        matches(&e, &get("/?id=%31%32")),
        "regexes see the decoded value"
    );
    assert!(!matches(&e, &get("/?id=12x")));
    assert!(!matches(&e, &get("/?id=")));
    assert!(!matches(&e, &get("/?ID=1")));
}

#[test]
fn repeated_query_name_only_first_counts() {
    let e = entry("ns/r", 0, 0, prefix("/"))
        .query("a", "1")
        .query("a", "2");
    assert!(matches(&e, &get("/?a=1")));
    assert!(!matches(&e, &get("/?a=2")));
}

#[test]
fn method_matches_exactly() {
    let e = entry("ns/r", 0, 0, prefix("/")).method("POST");
    assert!(matches(&e, &SimpleRequest::new("POST", "/x")));
    assert!(!matches(&e, &SimpleRequest::new("GET", "/x")));
    assert!(
        !matches(&e, &SimpleRequest::new("post", "/x")),
        "methods are case-sensitive"
    );
}

#[test]
fn every_condition_must_hold() {
    let e = entry("ns/r", 0, 0, prefix("/api"))
        .method("GET")
        .header("x-a", "1")
        .query("q", "2");
    let ok = || get("/api/x?q=2").with_header("x-a", "1");
    assert!(matches(&e, &ok()));
    assert!(!matches(
        &e,
        &SimpleRequest::new("PUT", "/api/x?q=2").with_header("x-a", "1")
    ));
    assert!(!matches(&e, &get("/apix?q=2").with_header("x-a", "1")));
    assert!(!matches(&e, &get("/api/x?q=3").with_header("x-a", "1")));
    assert!(!matches(&e, &get("/api/x?q=2").with_header("x-a", "2")));
}

// ---- precedence -----------------------------------------------------------------------------

const OLD: Option<&str> = Some("2020-01-01T00:00:00Z");
const NEW: Option<&str> = Some("2024-01-01T00:00:00Z");

#[test]
fn exact_beats_any_prefix() {
    let req = get("/a/b").with_header("x-a", "1");
    // The prefix is older, has a method and a header, and more characters: exact still wins.
    let entries = vec![
        (entry("ns/newer", 0, 0, exact("/a/b")), NEW),
        (
            entry("ns/older", 0, 0, prefix("/a/b///"))
                .method("GET")
                .header("x-a", "1"),
            OLD,
        ),
    ];
    assert_eq!(
        winner(entries.clone(), &req).as_deref(),
        Some("ns/newer#0.0")
    );
    // Without the exact path in the request, the prefix answers.
    assert_eq!(
        winner(entries, &get("/a/b/").with_header("x-a", "1")).as_deref(),
        Some("ns/older#0.0")
    );
}

#[test]
fn longer_prefix_beats_shorter() {
    let entries = vec![
        (
            entry("ns/short", 0, 0, prefix("/a"))
                .method("GET")
                .header("x-a", "1")
                .query("q", "1"),
            OLD,
        ),
        (entry("ns/long", 0, 0, prefix("/a/b")), NEW),
        (entry("ns/root", 0, 0, prefix("/")), OLD),
    ];
    let req = get("/a/b/c?q=1").with_header("x-a", "1");
    assert_eq!(
        winner(entries.clone(), &req).as_deref(),
        Some("ns/long#0.0")
    );
    let req = get("/a/c?q=1").with_header("x-a", "1");
    assert_eq!(
        winner(entries.clone(), &req).as_deref(),
        Some("ns/short#0.0")
    );
    // When the longer prefix's conditions fail, the search falls through to shorter ones.
    assert_eq!(
        winner(entries.clone(), &get("/a/c")).as_deref(),
        Some("ns/root#0.0")
    );
    assert_eq!(winner(entries, &get("/ab")).as_deref(), Some("ns/root#0.0"));
}

#[test]
fn trailing_slash_does_not_lengthen_a_prefix() {
    // `/a/` and `/a` match the same paths and rank the same: age decides.
    let entries = vec![
        (entry("ns/slash", 0, 0, prefix("/a/")), NEW),
        (entry("ns/plain", 0, 0, prefix("/a")), OLD),
    ];
    assert_eq!(
        winner(entries, &get("/a/x")).as_deref(),
        Some("ns/plain#0.0")
    );
    let entries = vec![
        (entry("ns/slash", 0, 0, prefix("/a/")), OLD),
        (entry("ns/plain", 0, 0, prefix("/a")), NEW),
    ];
    assert_eq!(
        winner(entries, &get("/a/x")).as_deref(),
        Some("ns/slash#0.0")
    );
}

#[test]
fn regex_ranks_below_every_prefix() {
    let entries = vec![
        (
            entry("ns/re", 0, 0, regex("/a/.*"))
                .method("GET")
                .header("x-a", "1"),
            OLD,
        ),
        (entry("ns/root", 0, 0, prefix("/")), NEW),
    ];
    assert_eq!(
        winner(entries, &get("/a/b").with_header("x-a", "1")).as_deref(),
        Some("ns/root#0.0")
    );
    let entries = vec![
        (entry("ns/re", 0, 0, regex("/a/.*")), NEW),
        (entry("ns/other", 0, 0, prefix("/b")), OLD),
        (entry("ns/exact", 0, 0, exact("/a/c")), OLD),
    ];
    assert_eq!(
        winner(entries.clone(), &get("/a/b")).as_deref(),
        Some("ns/re#0.0")
    );
    assert_eq!(
        winner(entries.clone(), &get("/a/c")).as_deref(),
        Some("ns/exact#0.0")
    );
    assert_eq!(winner(entries, &get("/c")), None);
}

#[test]
fn regexes_rank_among_themselves_by_conditions() {
    let entries = vec![
        (entry("ns/plain", 0, 0, regex("/a.*")), OLD),
        (entry("ns/method", 0, 0, regex("/a/b")).method("GET"), NEW),
    ];
    assert_eq!(
        winner(entries.clone(), &get("/a/b")).as_deref(),
        Some("ns/method#0.0")
    );
    assert_eq!(
        winner(entries, &SimpleRequest::new("PUT", "/a/b")).as_deref(),
        Some("ns/plain#0.0")
    );
}

#[test]
fn method_beats_headers() {
    let entries = vec![
        (
            entry("ns/headers", 0, 0, prefix("/p"))
                .header("x-a", "1")
                .header("x-b", "1")
                .header("x-c", "1"),
            OLD,
        ),
        (entry("ns/method", 0, 0, prefix("/p")).method("GET"), NEW),
    ];
    let req = get("/p")
        .with_header("x-a", "1")
        .with_header("x-b", "1")
        .with_header("x-c", "1");
    assert_eq!(
        winner(entries.clone(), &req).as_deref(),
        Some("ns/method#0.0")
    );
    let req = SimpleRequest::new("POST", "/p")
        .with_header("x-a", "1")
        .with_header("x-b", "1")
        .with_header("x-c", "1");
    assert_eq!(winner(entries, &req).as_deref(), Some("ns/headers#0.0"));
}

#[test]
fn more_headers_beat_fewer() {
    let entries = vec![
        (
            entry("ns/one", 0, 0, prefix("/p"))
                .header("x-a", "1")
                .query("q", "1")
                .query("r", "1"),
            OLD,
        ),
        (
            entry("ns/two", 0, 0, prefix("/p"))
                .header("x-a", "1")
                .header("x-b", "1"),
            NEW,
        ),
    ];
    let req = get("/p?q=1&r=1")
        .with_header("x-a", "1")
        .with_header("x-b", "1");
    assert_eq!(winner(entries.clone(), &req).as_deref(), Some("ns/two#0.0"));
    let req = get("/p?q=1&r=1").with_header("x-a", "1");
    assert_eq!(winner(entries, &req).as_deref(), Some("ns/one#0.0"));
}

#[test]
fn repeated_header_names_do_not_count_twice() {
    let entries = vec![
        (
            entry("ns/dup", 0, 0, prefix("/p"))
                .header("x-a", "1")
                .header("X-A", "1"),
            NEW,
        ),
        (entry("ns/one", 0, 0, prefix("/p")).header("x-b", "1"), OLD),
    ];
    // Both have one effective header: the older route wins.
    let req = get("/p").with_header("x-a", "1").with_header("x-b", "1");
    assert_eq!(winner(entries, &req).as_deref(), Some("ns/one#0.0"));
}

#[test]
fn more_query_params_beat_fewer() {
    let entries = vec![
        (entry("ns/one", 0, 0, prefix("/p")).query("a", "1"), OLD),
        (
            entry("ns/two", 0, 0, prefix("/p"))
                .query("a", "1")
                .query_re("b", ".*"),
            NEW,
        ),
    ];
    assert_eq!(
        winner(entries.clone(), &get("/p?a=1&b=x")).as_deref(),
        Some("ns/two#0.0")
    );
    assert_eq!(
        winner(entries, &get("/p?a=1")).as_deref(),
        Some("ns/one#0.0")
    );
}

#[test]
fn oldest_route_wins_a_tie() {
    let entries = vec![
        (entry("a/first", 0, 0, prefix("/p")), NEW),
        (entry("z/last", 0, 0, prefix("/p")), OLD),
    ];
    assert_eq!(winner(entries, &get("/p")).as_deref(), Some("z/last#0.0"));
}

#[test]
fn a_route_without_timestamp_counts_as_newest() {
    let entries = vec![
        (entry("a/first", 0, 0, prefix("/p")), None),
        (entry("z/last", 0, 0, prefix("/p")), NEW),
    ];
    assert_eq!(winner(entries, &get("/p")).as_deref(), Some("z/last#0.0"));
}

#[test]
fn then_namespace_and_name_alphabetically() {
    let entries = vec![
        (entry("b/a", 0, 0, prefix("/p")), OLD),
        (entry("a/z", 0, 0, prefix("/p")), OLD),
        (entry("a/y", 0, 0, prefix("/p")), OLD),
    ];
    assert_eq!(winner(entries, &get("/p")).as_deref(), Some("a/y#0.0"));
}

#[test]
fn then_rule_order_then_match_order() {
    let entries = vec![
        (entry("ns/r", 2, 0, prefix("/p")), OLD),
        (entry("ns/r", 1, 1, prefix("/p")), OLD),
        (entry("ns/r", 1, 0, prefix("/p")).query("never", "x"), OLD),
        (entry("ns/r", 1, 2, prefix("/p")), OLD),
    ];
    assert_eq!(winner(entries, &get("/p")).as_deref(), Some("ns/r#1.1"));
}

#[test]
fn precedence_spans_rules_of_one_route() {
    // A later rule of the same route with a more specific match wins over an earlier one.
    let entries = vec![
        (entry("ns/r", 0, 0, prefix("/")), OLD),
        (entry("ns/r", 1, 0, prefix("/p")), OLD),
    ];
    assert_eq!(
        winner(entries.clone(), &get("/p/x")).as_deref(),
        Some("ns/r#1.0")
    );
    assert_eq!(winner(entries, &get("/q")).as_deref(), Some("ns/r#0.0"));
}

#[test]
fn no_entry_matches_means_no_answer() {
    let entries = vec![(entry("ns/r", 0, 0, prefix("/p")).method("GET"), OLD)];
    assert_eq!(
        winner(entries.clone(), &SimpleRequest::new("POST", "/p")),
        None
    );
    assert_eq!(winner(entries, &get("/q")), None);
    assert_eq!(winner(Vec::new(), &get("/")), None);
}

// ---- index details --------------------------------------------------------------------------

#[test]
fn unsorted_table_still_returns_the_first_matching_entry() {
    // A hand-edited table in the wrong order: the index must not assume precedence order.
    let table = RouteTable {
        entries: vec![
            entry("ns/re", 0, 0, regex("/a/.*")),
            entry("ns/root", 0, 0, prefix("/")),
            entry("ns/long", 0, 0, prefix("/a/b")),
            entry("ns/exact", 0, 0, exact("/a/b")),
        ],
        actions: vec![RuleAction::default()],
    };
    let index = RouteIndex::build(&table).expect("valid");
    assert!(!index.is_ordered());
    assert_eq!(index.lookup(&get("/a/b")), Some(0));
    assert_eq!(index.lookup(&get("/b")), Some(1));
    let table = RouteTable {
        entries: table.entries[1..].to_vec(),
        actions: table.actions,
    };
    let index = RouteIndex::build(&table).expect("valid");
    assert_eq!(index.lookup(&get("/a/b")), Some(0));
}

#[test]
fn build_refuses_bad_regex_and_action() {
    let table = RouteTable {
        entries: vec![entry("ns/r", 3, 0, regex("(unclosed"))],
        actions: vec![RuleAction::default()],
    };
    match RouteIndex::build(&table) {
        Err(mesh_artifact::matcher::IndexError::Regex {
            route,
            rule,
            pattern,
            ..
        }) => {
            assert_eq!(
                (route.as_str(), rule, pattern.as_str()),
                ("ns/r", 3, "(unclosed")
            );
        }
        other => panic!("expected a regex error, got {other:?}"),
    }
    let table = RouteTable {
        entries: vec![entry("ns/r", 0, 0, prefix("/")).header_re("x", "[")],
        actions: vec![RuleAction::default()],
    };
    assert!(matches!(
        RouteIndex::build(&table),
        Err(mesh_artifact::matcher::IndexError::Regex { .. })
    ));
    let mut e = entry("ns/r", 1, 0, prefix("/"));
    e.action = 1;
    let table = RouteTable {
        entries: vec![e],
        actions: vec![RuleAction::default()],
    };
    assert_eq!(
        RouteIndex::build(&table).err(),
        Some(mesh_artifact::matcher::IndexError::Action {
            route: "ns/r".into(),
            rule: 1,
            action: 1
        })
    );
}

#[test]
fn precedence_key_orders_the_spec_criteria() {
    let k = |e: RouteEntry, ts| precedence_key(&e, ts);
    let base = || entry("ns/r", 0, 0, prefix("/a"));
    assert!(
        k(entry("ns/r", 0, 0, exact("/")), NEW) < k(entry("ns/r", 0, 0, prefix("/a/b/c")), OLD)
    );
    assert!(k(entry("ns/r", 0, 0, prefix("/ab")), NEW) < k(base().method("GET"), OLD));
    assert!(
        k(entry("z/z", 9, 9, prefix("/")), None)
            < k(entry("a/a", 0, 0, regex("/.*")).method("GET"), OLD)
    );
    assert!(k(base().method("GET"), NEW) < k(base().header("a", "1").header("b", "1"), OLD));
    assert!(k(base().header("a", "1"), NEW) < k(base().query("a", "1").query("b", "1"), OLD));
    assert!(k(base().query("a", "1"), NEW) < k(base(), OLD));
    assert!(k(base(), OLD) < k(base(), NEW));
    assert!(k(base(), NEW) < k(base(), None));
    assert!(k(entry("a-b/x", 0, 0, prefix("/a")), OLD) < k(entry("a/x", 0, 0, prefix("/a")), OLD));
    assert!(k(entry("ns/r", 0, 5, prefix("/a")), OLD) < k(entry("ns/r", 1, 0, prefix("/a")), OLD));
    assert_eq!(k(entry("ns/r", 0, 0, prefix("/a/")), OLD), k(base(), OLD));
}

#[test]
fn very_long_paths_still_match() {
    let long = format!("/a{}", "/x".repeat(20_000));
    let entries = vec![
        (entry("ns/a", 0, 0, prefix("/a")), OLD),
        (entry("ns/exact", 0, 0, exact("/b")), OLD),
    ];
    assert_eq!(
        winner(entries.clone(), &get(&long)).as_deref(),
        Some("ns/a#0.0")
    );
    assert_eq!(
        winner(entries.clone(), &get(&format!("{long}///"))).as_deref(),
        Some("ns/a#0.0")
    );
    assert_eq!(winner(entries, &get(&long[2..])), None);
}

/// `check_regex` (what `meshc check` runs) accepts exactly the patterns `full_match_regex` (what
/// the matcher builds) accepts, with the same message, so a checked mesh never yields an
/// artifact the proxy refuses.
#[test]
fn check_regex_agrees_with_the_matcher() {
    let patterns = [
        "[0-9]+",
        "/api/v[12]/.*",
        "(a|b)*c",
        r"\d{3}-\w+",
        "caf\u{e9}",
        "",
        "(",
        "a)",
        "[z-a]",
        "x{2,1}",
        r"\p{NoSuchClass}",
        "(?P<n>a)(?P<n>b)",
        "*a",
        r"\",
        // Too big once compiled: Unicode word classes repeated many times.
        r"\w{200}\w{200}\w{200}\w{200}",
        r"(\w{100}){100}",
        &"(".repeat(300),
        &format!("{}a{}", "(".repeat(300), ")".repeat(300)),
    ];
    for p in patterns {
        let full = mesh_artifact::matcher::full_match_regex(p)
            .map(drop)
            .map_err(|e| e.to_string());
        let check = mesh_artifact::matcher::check_regex(p);
        assert_eq!(check, full, "pattern {p:?}");
    }
    // The cases above include both answers.
    assert!(mesh_artifact::matcher::check_regex("[0-9]+").is_ok());
    assert!(mesh_artifact::matcher::check_regex(r"(\w{100}){100}").is_err());
}
