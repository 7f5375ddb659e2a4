//! The artifact codec: round trip, and refusal of every kind of damage, without panics.

use std::collections::BTreeMap;

use mesh_artifact::codec::{LoadError, decode, decode_header, encode, encode_body, sha256_tag};
use mesh_artifact::{
    AuthzBundle, AuthzMode, Body, Cluster, Destination, DestinationPort, EncodedSlashes, Endpoint,
    FORMAT_NAME, FORMAT_VERSION, HeaderModifier, MatchKind, MeshInfo, MtlsMode, PathMatch,
    PathModifier, PolicyText, Protocol, Redirect, RetryBudget, RetryPolicy, RouteEntry, RouteTable,
    RuleAction, SidecarInfo, SourcePos, Timeouts, UrlRewrite, ValueMatch, WeightedCluster,
};
use proptest::prelude::*;

const SOURCE_HASH: &str = "sha256:0000000000000000000000000000000000000000000000000000000000000000";

/// A body that uses every optional part of the format, with text that needs escaping.
fn fixture() -> Body {
    let entry = |route: &str, path: PathMatch, action: u32| RouteEntry {
        route: route.into(),
        rule: 1,
        r#match: 2,
        source: SourcePos {
            file: "routes/a \"b\".yaml".into(),
            line: 7,
            column: 9,
        },
        path,
        method: Some("GET".into()),
        headers: vec![ValueMatch {
            name: "x-env".into(),
            kind: MatchKind::RegularExpression,
            value: "pro?d\\d+".into(),
        }],
        query: vec![ValueMatch {
            name: "q".into(),
            kind: MatchKind::Exact,
            value: "é 1".into(),
        }],
        action,
    };
    let action = RuleAction {
        backends: vec![WeightedCluster {
            cluster: "shop/api:80".into(),
            weight: 3,
        }],
        fixed_status: None,
        redirect: None,
        rewrite: Some(UrlRewrite {
            hostname: Some("api.internal".into()),
            path: Some(PathModifier::ReplacePrefixMatch("/v2".into())),
        }),
        request_headers: HeaderModifier {
            set: vec![("x-a".into(), "1".into())],
            add: vec![("x-b".into(), "line\nbreak".into())],
            remove: vec!["x-c".into()],
        },
        response_headers: HeaderModifier::default(),
        timeouts: Timeouts {
            request_ms: Some(1500),
            backend_request_ms: None,
        },
        retry: Some(RetryPolicy {
            attempts: 2,
            codes: vec![502, 503],
            backoff_ms: 25,
            max_backoff_ms: 250,
            budget: RetryBudget {
                percent: 20,
                min_per_second: 10,
            },
        }),
    };
    let redirect = RuleAction {
        redirect: Some(Redirect {
            scheme: Some("https".into()),
            hostname: None,
            port: Some(8443),
            path: Some(PathModifier::ReplaceFullPath("/new".into())),
            status: 301,
        }),
        ..RuleAction::default()
    };
    let failing = RuleAction {
        fixed_status: Some(500),
        ..RuleAction::default()
    };
    let mut clusters = BTreeMap::new();
    clusters.insert(
        "shop/api:80".to_string(),
        Cluster {
            service: "shop/api".into(),
            port: 80,
            version: Some("v2".into()),
            protocol: Protocol::Grpc,
            identity: "spiffe://td/ns/shop/sa/api".into(),
            endpoints: vec![Endpoint {
                address: "10.0.0.1".into(),
                port: 15006,
            }],
        },
    );
    Body {
        mesh: MeshInfo {
            name: "demo".into(),
            trust_domain: "td".into(),
            mtls: MtlsMode::Permissive,
        },
        sidecar: SidecarInfo {
            service: "shop/web".into(),
            namespace: "shop".into(),
            identity: "spiffe://td/ns/shop/sa/web".into(),
            inbound_port: 15006,
            outbound_port: 15001,
            admin_port: 15000,
            app_port: 8080,
            app_ports: Vec::new(),
            app_protocol: Protocol::Http2,
            authz_mode: AuthzMode::Audit,
            encoded_slashes: EncodedSlashes::Keep,
        },
        destinations: vec![Destination {
            service: "shop/api".into(),
            hosts: vec!["api".into(), "api.shop".into()],
            ports: vec![
                DestinationPort {
                    port: 80,
                    protocol: Protocol::Http,
                    routes: Some(RouteTable {
                        entries: vec![
                            entry("shop/a", PathMatch::Exact("/x".into()), 1),
                            entry("shop/b", PathMatch::PathPrefix("/api/".into()), 0),
                            entry(
                                "shop/c",
                                PathMatch::RegularExpression("/r/[0-9]+".into()),
                                2,
                            ),
                        ],
                        actions: vec![action, redirect, failing],
                    }),
                    default_cluster: "shop/api:80".into(),
                },
                DestinationPort {
                    port: 9090,
                    protocol: Protocol::Grpc,
                    routes: None,
                    default_cluster: "shop/api:9090".into(),
                },
            ],
            encoded_slashes: EncodedSlashes::Keep,
        }],
        clusters,
        authz: AuthzBundle {
            schema: "entity User;\naction \"view\";".into(),
            policies: vec![PolicyText {
                id: "allow-web".into(),
                source: SourcePos {
                    file: "p.cedar".into(),
                    line: 1,
                    column: 1,
                },
                text: "permit(principal, action, resource);".into(),
            }],
            entities: serde_json::json!([{"uid": {"type": "User", "id": "a\u{1}"}, "attrs": {"n": 1.5}, "parents": []}]),
            context_headers: vec!["x-user".into()],
        },
    }
}

fn encoded() -> String {
    encode(&fixture(), "0.1.0", SOURCE_HASH).0
}

/// Byte range of the body value in an encoded file.
fn body_range(file: &str) -> std::ops::Range<usize> {
    let start = file.find("\"body\":").expect("body key") + "\"body\":".len();
    let end = file.rfind('}').expect("outer close");
    let body_end = file[..end].rfind('}').expect("body close") + 1;
    start..body_end
}

#[test]
fn round_trip_is_identity() {
    let body = fixture();
    let (text, hash) = encode(&body, "0.1.0", SOURCE_HASH);
    let a = decode(text.as_bytes()).expect("decodes");
    assert_eq!(a.body, body);
    assert_eq!(a.header.format, FORMAT_NAME);
    assert_eq!(a.header.format_version, FORMAT_VERSION);
    assert_eq!(a.header.meshc_version, "0.1.0");
    assert_eq!(a.header.source_hash, SOURCE_HASH);
    assert_eq!(a.header.body_hash, hash);
    // The hash covers exactly the body's bytes in the file.
    assert_eq!(sha256_tag(&text.as_bytes()[body_range(&text)]), hash);
    // Encoding is deterministic, and re-encoding what was decoded gives the same bytes.
    assert_eq!(encode(&a.body, "0.1.0", SOURCE_HASH).0, text);
    assert_eq!(decode_header(text.as_bytes()), Ok(a.header));
}

/// `encoded_slashes` is written only where an application keeps encoded slashes, so the
/// artifacts of meshes that do not use it are the bytes they were before the field existed.
#[test]
fn encoded_slashes_is_written_only_when_kept() {
    let kept = encoded();
    assert_eq!(
        kept.matches(r#""encoded_slashes":"keep""#).count(),
        2,
        "{kept}"
    );
    let mut body = fixture();
    body.sidecar.encoded_slashes = EncodedSlashes::Reject;
    for d in &mut body.destinations {
        d.encoded_slashes = EncodedSlashes::Reject;
    }
    let (text, _) = encode(&body, "0.1.0", SOURCE_HASH);
    assert!(!text.contains("encoded_slashes"), "{text}");
    let a = decode(text.as_bytes()).expect("decodes");
    assert_eq!(a.body.sidecar.encoded_slashes, EncodedSlashes::Reject);
    // An unknown value is refused, not read as the default.
    let json = serde_json::to_string(&fixture()).expect("json");
    assert!(serde_json::from_str::<Body>(&json).is_ok());
    let bad = json.replace(r#""encoded_slashes":"keep""#, r#""encoded_slashes":"Keep""#);
    assert_ne!(bad, json);
    assert!(serde_json::from_str::<Body>(&bad).is_err());
}

#[test]
fn header_comes_first_and_text_ends_with_newline() {
    let text = encoded();
    assert!(
        text.starts_with("{\"header\":{\"format\":\"meshc.artifact\""),
        "{text}"
    );
    // Compact: one line, ended by a newline.
    assert!(text.ends_with("}}\n"));
    assert_eq!(text.matches('\n').count(), 1);
    // The canonical body sorts map keys: cluster keys, and JSON object keys in entities.
    let body = encode_body(&fixture());
    assert!(
        body.find("\"attrs\"") < body.find("\"parents\"")
            && body.find("\"parents\"") < body.find("\"uid\"")
    );
}

#[test]
fn empty_file_is_refused() {
    assert_eq!(decode(b""), Err(LoadError::Empty));
    assert_eq!(decode(b" \n\t\r\n"), Err(LoadError::Empty));
    assert_eq!(decode_header(b""), Err(LoadError::Empty));
}

#[test]
fn every_truncation_is_refused_as_truncated() {
    let text = encoded();
    let significant = text.trim_end().len();
    for cut in 1..significant {
        let prefix = &text.as_bytes()[..cut];
        match decode(prefix) {
            Err(LoadError::Truncated { .. }) => {}
            other => panic!("cut at {cut} of {significant}: {other:?}"),
        }
    }
    // Dropping only the final newline loses nothing.
    assert!(decode(&text.as_bytes()[..significant]).is_ok());
}

#[test]
fn a_changed_body_byte_is_a_hash_mismatch() {
    let text = encoded();
    let at = text.find("\"trust_domain\":\"td\"").expect("field") + "\"trust_domain\":\"t".len();
    let mut bytes = text.clone().into_bytes();
    bytes[at] = b'x';
    match decode(&bytes) {
        Err(LoadError::HashMismatch { expected, actual }) => {
            assert_eq!(
                expected,
                decode_header(text.as_bytes()).expect("header").body_hash
            );
            assert_ne!(expected, actual);
            assert_eq!(actual, sha256_tag(&bytes[body_range(&text)]));
        }
        other => panic!("expected a hash mismatch, got {other:?}"),
    }
    // The header alone still reads: it does not cover the body.
    assert!(decode_header(&bytes).is_ok());
    // Whitespace is part of the hashed bytes too: the same JSON value, spaced out, is refused.
    let spaced = text.replacen(",\"clusters\":", ", \"clusters\":", 1);
    assert_ne!(spaced, text);
    assert!(matches!(
        decode(spaced.as_bytes()),
        Err(LoadError::HashMismatch { .. })
    ));
}

#[test]
fn wrong_format_version_is_refused() {
    let text = encoded();
    let v2 = text.replacen("\"format_version\":1,", "\"format_version\":2,", 1);
    assert_ne!(v2, text);
    assert_eq!(
        decode(v2.as_bytes()),
        Err(LoadError::UnsupportedVersion {
            found: 2,
            expected: 1
        })
    );
    // A future version may add header fields: still reported as a version problem.
    let future = text.replacen(
        "\"format_version\":1,",
        "\"format_version\": 7, \"signature\": \"x\",",
        1,
    );
    assert_eq!(
        decode(future.as_bytes()),
        Err(LoadError::UnsupportedVersion {
            found: 7,
            expected: 1
        })
    );
    let huge = text.replacen(
        "\"format_version\":1,",
        "\"format_version\":99999999999,",
        1,
    );
    assert!(matches!(
        decode(huge.as_bytes()),
        Err(LoadError::UnsupportedVersion {
            found: u32::MAX,
            ..
        })
    ));
    let text_version = text.replacen("\"format_version\":1,", "\"format_version\":\"1\",", 1);
    assert!(
        matches!(decode(text_version.as_bytes()), Err(LoadError::Header(m)) if m.contains("whole number"))
    );
    let missing = text.replacen("\"format_version\":1,", "", 1);
    assert!(
        matches!(decode(missing.as_bytes()), Err(LoadError::Header(m)) if m.contains("missing"))
    );
}

#[test]
fn wrong_format_is_refused() {
    let text = encoded();
    let other = text.replacen("\"meshc.artifact\"", "\"kubeconfig\"", 1);
    assert_eq!(
        decode(other.as_bytes()),
        Err(LoadError::WrongFormat {
            found: "kubeconfig".into()
        })
    );
    let missing = text.replacen("\"format\":\"meshc.artifact\",", "", 1);
    assert_eq!(
        decode(missing.as_bytes()),
        Err(LoadError::WrongFormat {
            found: String::new()
        })
    );
    // Some other JSON document altogether.
    assert!(matches!(
        decode(br#"{"apiVersion": "v1", "kind": "Service"}"#),
        Err(LoadError::Syntax { .. })
    ));
}

#[test]
fn garbage_is_a_syntax_error() {
    for garbage in [
        &b"\x00\xff\xfe garbage"[..],
        b"hello",
        b"[1, 2]",
        b"\"text\"",
        b"{} {}",
        b"null",
        b"\xef\xbb\xbf{}",
    ] {
        assert!(
            matches!(decode(garbage), Err(LoadError::Syntax { .. })),
            "{:?}",
            String::from_utf8_lossy(garbage)
        );
    }
    let text = encoded();
    // A wrong last byte is a syntax error, not a truncation.
    let last = text.trim_end().len() - 1;
    for wrong in ["]", "x", "1", "\"", "}}"] {
        let damaged = format!("{}{wrong}", &text[..last]);
        assert!(
            matches!(decode(damaged.as_bytes()), Err(LoadError::Syntax { .. })),
            "{wrong}: {:?}",
            decode(damaged.as_bytes())
        );
    }
    let trailing = format!("{text}{{}}");
    assert!(matches!(
        decode(trailing.as_bytes()),
        Err(LoadError::Syntax { .. })
    ));
}

#[test]
fn invalid_header_or_body_with_valid_hash() {
    let text = encoded();
    let extra = text.replacen("\"meshc_version\"", "\"unknown\": 1, \"meshc_version\"", 1);
    assert!(matches!(
        decode(extra.as_bytes()),
        Err(LoadError::Header(_))
    ));

    // A body of the wrong shape whose hash was recomputed: hashing passes, decoding refuses.
    let body = "{\"mesh\": 1}";
    let file = format!(
        "{{\"header\": {{\"format\": \"meshc.artifact\", \"format_version\": 1, \"meshc_version\": \"x\", \"source_hash\": \"y\", \"body_hash\": \"{}\"}}, \"body\": {body}}}",
        sha256_tag(body.as_bytes())
    );
    assert!(matches!(decode(file.as_bytes()), Err(LoadError::Body(_))));
    let missing_body = "{\"header\": {\"format\": \"meshc.artifact\", \"format_version\": 1}}";
    assert!(matches!(
        decode(missing_body.as_bytes()),
        Err(LoadError::Syntax { .. })
    ));
}

// ---- properties ---------------------------------------------------------------------------

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z/]{0,12}",
        any::<String>(),
        "[\"\\\\\n\t\u{0}-\u{1f}é😀]{0,6}",
    ]
}

fn value_match() -> impl Strategy<Value = ValueMatch> {
    (
        text(),
        prop_oneof![Just(MatchKind::Exact), Just(MatchKind::RegularExpression)],
        text(),
    )
        .prop_map(|(name, kind, value)| ValueMatch { name, kind, value })
}

fn route_entry() -> impl Strategy<Value = RouteEntry> {
    let path = prop_oneof![
        text().prop_map(PathMatch::Exact),
        text().prop_map(PathMatch::PathPrefix),
        text().prop_map(PathMatch::RegularExpression),
    ];
    (
        (
            text(),
            any::<u32>(),
            any::<u32>(),
            text(),
            any::<u32>(),
            any::<u32>(),
        ),
        path,
        proptest::option::of(text()),
        proptest::collection::vec(value_match(), 0..3),
        proptest::collection::vec(value_match(), 0..3),
        any::<u32>(),
    )
        .prop_map(
            |((route, rule, m, file, line, column), path, method, headers, query, action)| {
                RouteEntry {
                    route,
                    rule,
                    r#match: m,
                    source: SourcePos { file, line, column },
                    path,
                    method,
                    headers,
                    query,
                    action,
                }
            },
        )
}

fn body() -> impl Strategy<Value = Body> {
    let port = (
        any::<u16>(),
        proptest::option::of(proptest::collection::vec(route_entry(), 0..4)),
        text(),
        proptest::option::of(any::<u16>()),
    )
        .prop_map(|(port, entries, default_cluster, status)| DestinationPort {
            port,
            protocol: Protocol::Http2,
            routes: entries.map(|entries| RouteTable {
                entries,
                actions: vec![RuleAction {
                    fixed_status: status,
                    ..RuleAction::default()
                }],
            }),
            default_cluster,
        });
    let dest = (
        text(),
        proptest::collection::vec(text(), 0..3),
        proptest::collection::vec(port, 0..3),
        any::<bool>(),
    )
        .prop_map(|(service, hosts, ports, keep)| Destination {
            service,
            hosts,
            ports,
            encoded_slashes: if keep {
                EncodedSlashes::Keep
            } else {
                EncodedSlashes::Reject
            },
        });
    (
        text(),
        proptest::collection::vec(dest, 0..3),
        proptest::collection::btree_map(text(), any::<u16>(), 0..3),
    )
        .prop_map(|(name, destinations, clusters)| {
            let mut b = fixture();
            b.mesh.name = name;
            b.destinations = destinations;
            b.clusters = clusters
                .into_iter()
                .map(|(k, port)| {
                    let c = Cluster {
                        service: k.clone(),
                        port,
                        version: None,
                        protocol: Protocol::Http,
                        identity: String::new(),
                        endpoints: Vec::new(),
                    };
                    (k, c)
                })
                .collect();
            b
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn encode_decode_round_trips(b in body(), version in text()) {
        let (text, hash) = encode(&b, &version, SOURCE_HASH);
        let a = decode(text.as_bytes()).expect("decodes");
        prop_assert_eq!(&a.body, &b);
        prop_assert_eq!(&a.header.meshc_version, &version);
        prop_assert_eq!(&a.header.body_hash, &hash);
        prop_assert_eq!(encode(&a.body, &version, SOURCE_HASH).0, text);
    }

    #[test]
    fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode(&bytes);
        let _ = decode_header(&bytes);
    }

    /// Damage to a real artifact: any change inside the body is refused; nothing panics.
    #[test]
    fn damaged_artifacts_are_refused(at in any::<prop::sample::Index>(), byte in any::<u8>(), op in 0..3u8) {
        let text = encoded();
        let range = body_range(&text);
        let mut bytes = text.clone().into_bytes();
        match op {
            0 => bytes[range.start + at.index(range.len())] = byte,
            1 => { bytes.remove(range.start + at.index(range.len())); }
            // Strictly inside the body: whitespace inserted before it would not be damage.
            _ => bytes.insert(range.start + 1 + at.index(range.len() - 1), byte),
        }
        prop_assume!(bytes != text.as_bytes());
        let result = decode(&bytes);
        prop_assert!(result.is_err(), "accepted a damaged body: op {} byte {}", op, byte);
    }

    #[test]
    fn damage_anywhere_never_panics(at in any::<prop::sample::Index>(), byte in any::<u8>(), op in 0..3u8) {
        let mut bytes = encoded().into_bytes();
        let i = at.index(bytes.len());
        match op {
            0 => bytes[i] = byte,
            1 => { bytes.remove(i); }
            _ => bytes.insert(i, byte),
        }
        let _ = decode(&bytes);
    }
}
