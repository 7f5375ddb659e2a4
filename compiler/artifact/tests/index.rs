//! The index's storage of conditions: compact inline conditions, the external form for entries
//! whose conditions do not fit it, and both mixed under one path. Every answer is checked
//! against a plain scan of the table with `entry_matches` (first entry that matches wins).

use mesh_artifact::matcher::entry_matches;
use mesh_artifact::{
    MatchKind, PathMatch, RouteEntry, RouteIndex, RouteTable, RuleAction, SimpleRequest, SourcePos,
    ValueMatch,
};

fn entry(i: usize, path: PathMatch) -> RouteEntry {
    RouteEntry {
        route: format!("ns/r{i}"),
        rule: 0,
        r#match: 0,
        source: SourcePos {
            file: "routes.yaml".into(),
            line: 1,
            column: 1,
        },
        path,
        method: None,
        headers: Vec::new(),
        query: Vec::new(),
        action: 0,
    }
}

fn value(name: &str, kind: MatchKind, value: &str) -> ValueMatch {
    ValueMatch {
        name: name.into(),
        kind,
        value: value.into(),
    }
}

fn table(entries: Vec<RouteEntry>) -> RouteTable {
    RouteTable {
        entries,
        actions: vec![RuleAction::default()],
    }
}

/// The first entry that matches, by scanning every entry.
fn scan(table: &RouteTable, req: &SimpleRequest) -> Option<usize> {
    table
        .entries
        .iter()
        .position(|e| entry_matches(e, req).expect("valid entry"))
}

fn check(table: &RouteTable, requests: &[SimpleRequest]) -> usize {
    let index = RouteIndex::build(table).expect("valid table");
    let mut hits = 0;
    for req in requests {
        let want = scan(table, req);
        assert_eq!(index.lookup(req), want, "{req:?}");
        hits += usize::from(want.is_some());
    }
    hits
}

/// An entry naming more than 255 distinct headers keeps its conditions outside the line (the
/// compact form counts them in a byte); it still matches only when all of them hold, beside
/// entries with inline conditions under the same path.
#[test]
fn entries_with_hundreds_of_conditions() {
    let mut many = entry(0, PathMatch::PathPrefix("/api".into()));
    many.headers = (0..300)
        .map(|h| value(&format!("x-h{h}"), MatchKind::Exact, "1"))
        .collect();
    many.method = Some("GET".into());
    let mut many_query = entry(1, PathMatch::PathPrefix("/api".into()));
    many_query.query = (0..300)
        .map(|q| value(&format!("q{q}"), MatchKind::Exact, "1"))
        .collect();
    let mut inline = entry(2, PathMatch::PathPrefix("/api".into()));
    inline.headers = vec![value("x-h0", MatchKind::Exact, "1")];
    let plain = entry(3, PathMatch::PathPrefix("/api".into()));
    let t = table(vec![many, many_query, inline, plain]);

    let all_headers = (0..300).fold(SimpleRequest::new("GET", "/api/x"), |r, h| {
        r.with_header(&format!("X-H{h}"), "1")
    });
    let all_but_last = (0..299).fold(SimpleRequest::new("GET", "/api/x"), |r, h| {
        r.with_header(&format!("x-h{h}"), "1")
    });
    let all_query = (0..300)
        .map(|q| format!("q{q}=1"))
        .collect::<Vec<_>>()
        .join("&");
    let requests = [
        all_headers.clone(),
        SimpleRequest {
            method: "POST".into(),
            ..all_headers
        },
        all_but_last,
        SimpleRequest::new("GET", &format!("/api?{all_query}")),
        SimpleRequest::new("GET", &format!("/api?{}", &all_query[5..])),
        SimpleRequest::new("GET", "/api").with_header("x-h0", "1"),
        SimpleRequest::new("GET", "/api/y"),
        SimpleRequest::new("GET", "/other"),
    ];
    let index = RouteIndex::build(&t).expect("valid table");
    let got: Vec<Option<usize>> = requests.iter().map(|r| index.lookup(r)).collect();
    assert_eq!(
        got,
        [
            Some(0),
            Some(2),
            Some(2),
            Some(1),
            Some(3),
            Some(2),
            Some(3),
            None
        ]
    );
    check(&t, &requests);
}

/// More distinct condition strings than the compact form can number: later entries fall back
/// to the external form, and every entry still matches exactly its own header value.
#[test]
fn more_distinct_values_than_inline_ids() {
    let n = 40_000;
    let entries: Vec<RouteEntry> = (0..n)
        .map(|i| {
            let mut e = entry(i, PathMatch::Exact(format!("/svc/{}", i % 100)));
            e.headers = vec![value("x-tenant", MatchKind::Exact, &format!("t{i}"))];
            if i % 3 == 0 {
                e.method = Some(format!("M{i}"));
            }
            e
        })
        .collect();
    let t = table(entries);
    let index = RouteIndex::build(&t).expect("valid table");
    for i in [
        0, 1, 2, 99, 100, 32_000, 32_766, 32_767, 32_768, 39_998, 39_999,
    ] {
        let method = if i % 3 == 0 {
            format!("M{i}")
        } else {
            "GET".into()
        };
        let req = SimpleRequest::new(&method, &format!("/svc/{}", i % 100))
            .with_header("x-tenant", &format!("t{i}"));
        assert_eq!(index.lookup(&req), Some(i), "entry {i}");
        let wrong = SimpleRequest::new(&method, &format!("/svc/{}", (i + 1) % 100))
            .with_header("x-tenant", &format!("t{i}"));
        assert_eq!(index.lookup(&wrong), None, "entry {i} on another path");
    }
    let unknown = SimpleRequest::new("GET", "/svc/1").with_header("x-tenant", "t40001");
    assert_eq!(index.lookup(&unknown), None);
}

/// Exact and prefix candidates, with and without conditions (inline and external), under the
/// same path, in a table the compiler did not sort: the first matching entry wins.
#[test]
fn conditional_candidates_under_one_path_in_any_order() {
    let mut entries = Vec::new();
    for (i, path) in [
        PathMatch::PathPrefix("/a".into()),
        PathMatch::Exact("/a".into()),
        PathMatch::PathPrefix("/a/".into()),
        PathMatch::Exact("/a/b".into()),
        PathMatch::PathPrefix("/a/b".into()),
        PathMatch::RegularExpression("/a/[a-z]+".into()),
    ]
    .into_iter()
    .cycle()
    .take(42)
    .enumerate()
    {
        let mut e = entry(i, path);
        // Seven kinds of conditions over six paths: every path gets every kind.
        match i % 7 {
            0 => e.method = Some(["GET", "POST"][i % 2].into()),
            1 => e.headers = vec![value("x-v", MatchKind::Exact, &format!("{}", i % 4))],
            2 => e.query = vec![value("v", MatchKind::RegularExpression, "[0-9]+")],
            3 => {
                e.headers = (0..260)
                    .map(|h| value(&format!("x-{h}"), MatchKind::Exact, "y"))
                    .collect();
            }
            4 => {
                e.headers = vec![value("x-v", MatchKind::RegularExpression, "[13]")];
                e.query = vec![value("w", MatchKind::Exact, "a b")];
                e.method = Some("GET".into());
            }
            _ => {}
        }
        entries.push(e);
    }
    entries.reverse();
    let t = table(entries);
    let index = RouteIndex::build(&t).expect("valid table");
    assert!(!index.is_ordered());
    let many = |r: SimpleRequest| (0..260).fold(r, |r, h| r.with_header(&format!("x-{h}"), "y"));
    let mut requests = Vec::new();
    for path in ["/a", "/a/", "/a/b", "/a/b/c", "/a/x", "/b"] {
        for q in ["", "?v=12", "?w=a+b", "?w=a%20b&v=x"] {
            for method in ["GET", "POST", "PUT"] {
                let base = SimpleRequest::new(method, &format!("{path}{q}"));
                requests.push(base.clone());
                for v in ["0", "1", "2", "3"] {
                    requests.push(base.clone().with_header("X-V", v));
                }
                requests.push(many(base));
            }
        }
    }
    let hits = check(&t, &requests);
    assert!(
        hits > requests.len() / 2,
        "{hits} of {} matched",
        requests.len()
    );
}

/// An invalid regex in a condition is refused whichever form the entry's conditions take.
#[test]
fn invalid_regexes_are_refused_in_both_forms() {
    let mut inline = entry(0, PathMatch::PathPrefix("/a".into()));
    inline.headers = vec![value("x-a", MatchKind::RegularExpression, "(")];
    let mut external = entry(1, PathMatch::PathPrefix("/a".into()));
    external.headers = (0..300)
        .map(|h| value(&format!("x-{h}"), MatchKind::Exact, "1"))
        .collect();
    external
        .query
        .push(value("q", MatchKind::RegularExpression, "["));
    for (e, pattern) in [(inline, "("), (external, "[")] {
        let route = e.route.clone();
        let err = RouteIndex::build(&table(vec![e])).expect_err("invalid regex");
        let message = err.to_string();
        assert!(
            message.contains(&format!("`{route}`")) && message.contains(&format!("`{pattern}`")),
            "{message}"
        );
    }
}
