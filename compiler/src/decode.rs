//! Spanned YAML documents to the mesh model.
//!
//! Each document is classified by `apiVersion` and `kind`, then walked field by field. Every
//! problem becomes a diagnostic and decoding goes on, so one run reports everything. Unknown
//! fields get a `did you mean` against the fields the schema knows at that place.

use std::collections::BTreeMap;

use mesh_artifact::{
    AuthzMode, EncodedSlashes, HeaderModifier, MatchKind, MtlsMode, PathError, PathMatch,
    PathModifier, Protocol, Redirect, RetryBudget, UrlRewrite,
};

use crate::diag::{Code, Diagnostic, Severity, did_you_mean};
use crate::model::*;
use crate::source::{FileId, Loc, Span};
use std::fmt::Display;

use crate::syntax::{Node, Value};
use crate::values;

/// `apiVersion` of native meshc resources.
pub const NATIVE_API_VERSION: &str = "meshc.dev/v1alpha1";
pub const NATIVE_KINDS: &[&str] = &["Mesh", "MeshService", "Sidecar", "MeshRoute"];
pub const GATEWAY_GROUP: &str = "gateway.networking.k8s.io";
/// Kinds of the Gateway API group that meshc skips on purpose: never taken for a misspelt
/// `HTTPRoute` (`TCPRoute` is two edits away from it).
const GATEWAY_KINDS: &[&str] = &[
    "Gateway",
    "GatewayClass",
    "HTTPRoute",
    "GRPCRoute",
    "TCPRoute",
    "TLSRoute",
    "UDPRoute",
    "ReferenceGrant",
    "BackendTLSPolicy",
    "BackendLBPolicy",
    "ListenerSet",
];

/// Field lists per object, shared with the schema test that keeps them equal to `schemas/`.
pub mod fields {
    pub const TOP: &[&str] = &["apiVersion", "kind", "metadata", "spec", "status"];
    pub const METADATA: &[&str] = &[
        "name",
        "namespace",
        "labels",
        "annotations",
        "creationTimestamp",
        "uid",
        "resourceVersion",
        "generation",
        "managedFields",
        "ownerReferences",
        "finalizers",
        "generateName",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "selfLink",
    ];
    pub const MESH_SPEC: &[&str] = &[
        "trustDomain",
        "mtls",
        "authorization",
        "defaults",
        "sidecar",
        "referenceGrants",
    ];
    pub const MESH_MTLS: &[&str] = &["mode"];
    pub const MESH_AUTHZ: &[&str] = &["mode", "contextHeaders"];
    pub const MESH_DEFAULTS: &[&str] = &["retryBudget", "timeouts"];
    pub const MESH_DEFAULT_TIMEOUTS: &[&str] = &["request"];
    pub const MESH_SIDECAR: &[&str] = &["inboundPort", "outboundPort", "adminPort"];
    pub const RETRY_BUDGET: &[&str] = &["percent", "minRetriesPerSecond"];
    pub const MESH_SERVICE_SPEC: &[&str] = &["ports", "versions", "endpoints"];
    pub const MESH_SERVICE_PORT: &[&str] = &["name", "port", "protocol", "targetPort"];
    pub const VERSION: &[&str] = &["name", "labels", "endpoints"];
    pub const ENDPOINT: &[&str] = &["address", "port"];
    pub const SIDECAR_SPEC: &[&str] = &["service", "listeners", "app", "egress", "authorization"];
    pub const SIDECAR_LISTENERS: &[&str] = &["inbound", "outbound", "admin"];
    pub const SIDECAR_APP: &[&str] = &["port", "protocol", "encodedSlashes"];
    pub const SIDECAR_AUTHZ: &[&str] = &["mode"];
    pub const EGRESS: &[&str] = &["service", "namespace"];
    pub const K8S_SERVICE_SPEC: &[&str] = &[
        "type",
        "clusterIP",
        "clusterIPs",
        "ports",
        "selector",
        "sessionAffinity",
        "sessionAffinityConfig",
        "externalName",
        "externalTrafficPolicy",
        "internalTrafficPolicy",
        "ipFamilies",
        "ipFamilyPolicy",
        "loadBalancerIP",
        "loadBalancerSourceRanges",
        "loadBalancerClass",
        "externalIPs",
        "publishNotReadyAddresses",
        "healthCheckNodePort",
        "allocateLoadBalancerNodePorts",
        "trafficDistribution",
    ];
    pub const K8S_SERVICE_PORT: &[&str] = &[
        "name",
        "port",
        "targetPort",
        "protocol",
        "appProtocol",
        "nodePort",
    ];
    pub const ROUTE_SPEC: &[&str] = &["parentRefs", "hostnames", "rules"];
    pub const PARENT_REF: &[&str] = &["group", "kind", "namespace", "name", "sectionName", "port"];
    pub const RULE: &[&str] = &[
        "name",
        "matches",
        "filters",
        "backendRefs",
        "timeouts",
        "retry",
        "sessionPersistence",
    ];
    pub const MATCH: &[&str] = &["path", "headers", "queryParams", "method"];
    pub const PATH: &[&str] = &["type", "value"];
    pub const VALUE_MATCH: &[&str] = &["type", "name", "value"];
    pub const BACKEND_REF: &[&str] = &[
        "group",
        "kind",
        "name",
        "namespace",
        "port",
        "weight",
        "filters",
    ];
    pub const MESH_BACKEND_REF: &[&str] = &[
        "group",
        "kind",
        "name",
        "namespace",
        "port",
        "weight",
        "filters",
        "version",
    ];
    pub const FILTER: &[&str] = &[
        "type",
        "requestHeaderModifier",
        "responseHeaderModifier",
        "requestRedirect",
        "urlRewrite",
        "requestMirror",
        "extensionRef",
        "cors",
        "externalAuth",
    ];
    pub const HEADER_MODIFIER: &[&str] = &["set", "add", "remove"];
    pub const HEADER_VALUE: &[&str] = &["name", "value"];
    pub const REDIRECT: &[&str] = &["scheme", "hostname", "path", "port", "statusCode"];
    pub const REWRITE: &[&str] = &["hostname", "path"];
    pub const PATH_MODIFIER: &[&str] = &["type", "replaceFullPath", "replacePrefixMatch"];
    pub const TIMEOUTS: &[&str] = &["request", "backendRequest"];
    pub const HTTP_RETRY: &[&str] = &["codes", "attempts", "backoff"];
    pub const REFERENCE_GRANT_SPEC: &[&str] = &["from", "to"];
    pub const GRANT_FROM: &[&str] = &["group", "kind", "namespace"];
    pub const GRANT_TO: &[&str] = &["group", "kind", "name"];
    pub const MESH_RETRY: &[&str] = &["codes", "attempts", "backoff", "maxBackoff", "budget"];
}

/// MC0510 for an `Exact` or `PathPrefix` value that no request path normalized with `slashes`
/// can equal: `None` when the value is its own normal form.
pub fn unnormalized_path(value: &str, loc: Loc, slashes: EncodedSlashes) -> Option<Diagnostic> {
    match mesh_artifact::normalize_path_with(value, slashes) {
        Ok(std::borrow::Cow::Borrowed(_)) => None,
        Ok(std::borrow::Cow::Owned(normal)) => {
            let help = match slashes {
                EncodedSlashes::Reject => format!("write `{normal}`: mesh-proxy merges `//`, removes `.` and `..` segments and decodes percent-encoded letters, digits and `-._~` in every request path before matching"),
                EncodedSlashes::Keep => format!("write `{normal}`: mesh-proxy merges `//`, removes `.` and `..` segments, decodes percent-encoded letters, digits and `-._~`, and upper-cases the hex of the `%2F` and `%5C` it keeps in every request path before matching"),
            };
            Some(Diagnostic::new(Code::UnnormalizedPath, format!("`{value}` never matches: request paths are normalized to `{normal}` before routing"))
                .at(loc, "not in normal form")
                .help(help))
        }
        Err(why) => Some(Diagnostic::new(Code::UnnormalizedPath, format!("`{value}` never matches: mesh-proxy refuses such request paths with 400 ({why})"))
            .at(loc, "refused before routing")
            .help(match slashes {
                EncodedSlashes::Reject => "match the path as the application should receive it, without encoded slashes, backslashes or `%00`",
                EncodedSlashes::Keep => "match the path as the application should receive it, without backslashes, `%00` or invalid percent-encodings",
            })),
    }
}

/// A match that stands for one that had an error ([`Match::broken`]): it keeps its place in its
/// rule, so that rules and matches keep their source indexes.
pub fn broken_match(loc: Loc) -> Match {
    Match {
        loc,
        path: S::new(PathMatch::PathPrefix("/".to_string()), loc),
        method: None,
        headers: Vec::new(),
        query: Vec::new(),
        broken: true,
    }
}

/// A resource document, classified.
#[derive(Debug)]
pub enum Resource {
    Mesh(MeshConfig),
    Service(Service),
    Sidecar(Sidecar),
    /// A route, and the `sectionName` of its parents that have one: they name a port of the
    /// parent Service, which only the whole model knows ([`crate::load`] resolves them).
    Route(Route, Vec<SectionRef>),
    /// A Gateway API `ReferenceGrant`.
    ReferenceGrant(ReferenceGrant),
    /// Decoded enough to know it is not ours.
    Skipped {
        kind: String,
        loc: Loc,
    },
    /// Too broken to use; diagnostics were reported.
    Invalid,
}

/// `parentRefs[i].sectionName` of a route: a Service parent's port, by name (GEP-1294).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SectionRef {
    /// Index into the route's `parents`.
    pub parent: usize,
    pub name: S<String>,
}

/// Decoding state for one file.
pub struct Decoder<'a> {
    pub file: FileId,
    pub text: &'a str,
    pub default_namespace: &'a str,
    pub diags: Vec<Diagnostic>,
    /// Patterns already checked in this file, with the error of each bad one: generated and
    /// hand-written meshes repeat the same few patterns in many rules.
    regexes: std::collections::HashMap<String, Option<String>>,
}

/// A mapping being decoded: tracks which keys were read.
pub struct Obj<'n> {
    pub node: &'n Node<'n>,
    /// Key, key node, value node, and whether the field was read.
    entries: Vec<(&'n str, &'n Node<'n>, &'n Node<'n>, bool)>,
}

impl<'n> Obj<'n> {
    /// Take a field (first occurrence) and mark it read.
    pub fn take(&mut self, key: &str) -> Option<&'n Node<'n>> {
        let entry = self.entries.iter_mut().find(|e| e.0 == key)?;
        entry.3 = true;
        let v = entry.2;
        // An explicit `null` reads as absent, as in Kubernetes.
        if matches!(v.value, Value::Null) {
            None
        } else {
            Some(v)
        }
    }

    pub fn key_loc(&self, key: &str) -> Option<Span> {
        self.entries.iter().find(|e| e.0 == key).map(|e| e.1.span)
    }
}

/// What [`mesh_artifact::matcher::check_regex`] says of `pattern` (the message of its error),
/// faster for the patterns routes are made of.
///
/// A short ASCII pattern without counted repetition (`{n}`), without flags (`(?` other than
/// `(?:`) and without escapes that name classes or code points (`\w`, `\p{..}`, `\x..`: a
/// backslash before a letter) compiles to an automaton that is linear in its length and far
/// below the size limit (256 characters of the largest such pieces, negated classes, stay under
/// a tenth of it), and cannot fail translation to the regex engine's intermediate form (only
/// Unicode properties, and flags that turn Unicode off, can). For those, parsing the pattern's
/// syntax is the whole check; the others get the full check. A test compares both paths on
/// valid and invalid patterns.
pub fn regex_problem(pattern: &str) -> Option<String> {
    let bytes = pattern.as_bytes();
    let simple = pattern.len() <= 256
        && pattern.is_ascii()
        && !pattern.contains('{')
        && !bytes
            .windows(2)
            .any(|w| w[0] == b'\\' && w[1].is_ascii_alphabetic())
        && !bytes
            .windows(3)
            .any(|w| w[0] == b'(' && w[1] == b'?' && w[2] != b':')
        && !pattern.ends_with("(?");
    if simple {
        let full = format!("^(?:{pattern})$");
        regex_syntax::ast::parse::Parser::new()
            .parse(&full)
            .err()
            .map(|e| regex_syntax::Error::from(e).to_string())
    } else {
        mesh_artifact::matcher::check_regex(pattern).err()
    }
}

/// Whether `word` is one or two edits from `target`, ignoring case (a misspelt kind).
fn near_miss(word: &str, target: &str) -> bool {
    strsim::levenshtein(&word.to_ascii_lowercase(), &target.to_ascii_lowercase()) <= 2
}

fn slugify_list(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl<'a> Decoder<'a> {
    pub fn new(file: FileId, text: &'a str, default_namespace: &'a str) -> Self {
        Decoder {
            file,
            text,
            default_namespace,
            diags: Vec::new(),
            regexes: std::collections::HashMap::new(),
        }
    }

    /// [`regex_problem`], remembered per pattern.
    fn regex_error(&mut self, pattern: &str) -> Option<String> {
        if let Some(known) = self.regexes.get(pattern) {
            return known.clone();
        }
        let error = regex_problem(pattern);
        self.regexes.insert(pattern.to_string(), error.clone());
        error
    }

    pub fn loc(&self, n: &Node<'_>) -> Loc {
        Loc {
            file: self.file,
            span: self.trim_span(n.span),
        }
    }

    /// Spans of block scalars can run over trailing newlines; keep labels on one line's text.
    /// Labels stay on one line: a collection or block scalar is labelled on its first line.
    fn trim_span(&self, span: Span) -> Span {
        let text = self.text.get(span.start..span.end).unwrap_or("");
        let first_line = text.split('\n').next().unwrap_or("");
        let trimmed = first_line.trim_end();
        Span::new(span.start, span.start + trimmed.len())
    }

    pub fn report(&mut self, d: Diagnostic) {
        self.diags.push(d);
    }

    /// Whether an error was reported since `mark` (a length of [`Decoder::diags`]).
    fn errors_since(&self, mark: usize) -> bool {
        self.diags
            .get(mark..)
            .is_some_and(|new| new.iter().any(|d| d.severity == Severity::Error))
    }

    fn wrong_type(&mut self, n: &Node<'_>, what: impl Display + Copy, expected: &str) {
        let d = Diagnostic::new(
            Code::WrongType,
            format!("`{what}` must be {expected}, found {}", n.value.type_name()),
        )
        .at(self.loc(n), format!("expected {expected}"));
        self.report(d);
    }

    /// Open a mapping; reports duplicate keys and non-string keys.
    pub fn obj<'n>(&mut self, n: &'n Node<'n>, what: impl Display + Copy) -> Option<Obj<'n>> {
        let Value::Map(entries) = &n.value else {
            self.wrong_type(n, what, "a mapping");
            return None;
        };
        let mut out: Vec<(&'n str, &'n Node<'n>, &'n Node<'n>, bool)> =
            Vec::with_capacity(entries.len());
        for (k, v) in entries {
            let Some(key) = k.as_str() else {
                self.wrong_type(k, format_args!("{what} key"), "a string");
                continue;
            };
            if let Some((_, first, _, _)) = out.iter().find(|e| e.0 == key) {
                let d = Diagnostic::new(Code::DuplicateKey, format!("duplicate key `{key}`"))
                    .at(self.loc(k), "duplicate key")
                    .secondary(self.loc(first), "first defined here")
                    .help("YAML keys must be unique; remove one of the two");
                self.report(d);
                continue;
            }
            out.push((key, k, v, false));
        }
        Some(Obj {
            node: n,
            entries: out,
        })
    }

    /// Report every field that was not read, with a `did you mean` against `known`.
    pub fn finish(&mut self, obj: Obj<'_>, known: &[&str], what: impl Display + Copy) {
        for &(key, key_node, _, used) in &obj.entries {
            if used {
                continue;
            }
            if known.contains(&key) {
                // A known field that this decoder deliberately ignores (status, uid, ...).
                continue;
            }
            let mut d = Diagnostic::new(
                Code::UnknownField,
                format!("unknown field `{key}` in {what}"),
            )
            .at(self.loc(key_node), "unknown field");
            d = match did_you_mean(key, known.iter().copied()) {
                Some(h) => d.help(h),
                None => d.help(format!("expected one of {}", slugify_list(known))),
            };
            self.report(d);
        }
    }

    pub fn missing(&mut self, obj: &Obj<'_>, key: &str, what: impl Display + Copy) {
        let d = Diagnostic::new(
            Code::MissingField,
            format!("missing field `{key}` in {what}"),
        )
        .at(self.loc(obj.node), format!("`{key}` is required here"));
        self.report(d);
    }

    pub fn str(&mut self, n: &Node<'_>, what: impl Display + Copy) -> Option<S<String>> {
        match &n.value {
            Value::Str(s) => Some(S::new(String::from(s.as_ref()), self.loc(n))),
            _ => {
                self.wrong_type(n, what, "a string");
                None
            }
        }
    }

    /// A string that Kubernetes would also accept as a number (labels' values, names).
    pub fn str_lenient(&mut self, n: &Node<'_>, what: impl Display + Copy) -> Option<S<String>> {
        match &n.value {
            Value::Str(s) => Some(S::new(String::from(s.as_ref()), self.loc(n))),
            Value::Int(i) => Some(S::new(i.to_string(), self.loc(n))),
            Value::Bool(b) => Some(S::new(b.to_string(), self.loc(n))),
            _ => {
                self.wrong_type(n, what, "a string");
                None
            }
        }
    }

    pub fn req_str(
        &mut self,
        o: &mut Obj<'_>,
        key: &str,
        what: impl Display + Copy,
    ) -> Option<S<String>> {
        match o.take(key) {
            Some(n) => self.str(n, format_args!("{what}.{key}")),
            None => {
                self.missing(o, key, what);
                None
            }
        }
    }

    pub fn opt_str(
        &mut self,
        o: &mut Obj<'_>,
        key: &str,
        what: impl Display + Copy,
    ) -> Option<S<String>> {
        o.take(key)
            .and_then(|n| self.str(n, format_args!("{what}.{key}")))
    }

    pub fn int(&mut self, n: &Node<'_>, what: impl Display + Copy) -> Option<S<i128>> {
        match &n.value {
            Value::Int(i) => Some(S::new(*i, self.loc(n))),
            Value::Str(s) if s.trim().parse::<i128>().is_ok() => {
                let v = s.trim().parse::<i128>().ok()?;
                let d = Diagnostic::new(
                    Code::SloppyValue,
                    format!("`{what}` is a quoted number `\"{s}\"`"),
                )
                .at(self.loc(n), "written as a string")
                .help(format!("write it as a number: `{v}`"));
                self.report(d);
                Some(S::new(v, self.loc(n)))
            }
            _ => {
                self.wrong_type(n, what, "an integer");
                None
            }
        }
    }

    pub fn port(&mut self, n: &Node<'_>, what: impl Display + Copy) -> Option<S<u16>> {
        let i = self.int(n, what)?;
        match u16::try_from(i.v) {
            Ok(p) if p > 0 => Some(S::new(p, i.loc)),
            _ => {
                let d = Diagnostic::new(
                    Code::InvalidPort,
                    format!("`{what}` is `{}`, not a port", i.v),
                )
                .at(i.loc, "not in 1-65535")
                .help("ports are integers from 1 to 65535");
                self.report(d);
                None
            }
        }
    }

    pub fn opt_port(
        &mut self,
        o: &mut Obj<'_>,
        key: &str,
        what: impl Display + Copy,
    ) -> Option<S<u16>> {
        o.take(key)
            .and_then(|n| self.port(n, format_args!("{what}.{key}")))
    }

    pub fn u32_in(
        &mut self,
        n: &Node<'_>,
        what: impl Display + Copy,
        min: u32,
        max: u32,
        code: Code,
    ) -> Option<S<u32>> {
        let i = self.int(n, what)?;
        if i.v < i128::from(min) || i.v > i128::from(max) {
            let d = Diagnostic::new(code, format!("`{what}` is `{}`, outside {min}-{max}", i.v))
                .at(i.loc, format!("must be between {min} and {max}"));
            self.report(d);
            return None;
        }
        u32::try_from(i.v).ok().map(|v| S::new(v, i.loc))
    }

    pub fn seq<'n>(&mut self, n: &'n Node<'n>, what: impl Display + Copy) -> &'n [Node<'n>] {
        match &n.value {
            Value::Seq(items) => items,
            _ => {
                self.wrong_type(n, what, "a list");
                &[]
            }
        }
    }

    pub fn duration(&mut self, n: &Node<'_>, what: impl Display + Copy) -> Option<S<u64>> {
        let s = self.str(n, what)?;
        match values::parse_duration(&s.v) {
            Ok(ms) => Some(S::new(ms, s.loc)),
            Err(why) => {
                let d = Diagnostic::new(Code::InvalidDuration, format!("`{}` is not a valid duration", s.v))
                    .at(s.loc, why)
                    .help("durations are Gateway API durations (GEP-2257): one to four number-unit pairs, units `h`, `m`, `s`, `ms`, e.g. `1s`, `250ms`, `1m30s`");
                self.report(d);
                None
            }
        }
    }

    /// `enum`-like string with a fixed set of values.
    pub fn choice<T: Copy>(
        &mut self,
        n: &Node<'_>,
        what: impl Display + Copy,
        options: &[(&str, T)],
    ) -> Option<T> {
        let s = self.str(n, what)?;
        if let Some((_, v)) = options.iter().find(|(name, _)| *name == s.v) {
            return Some(*v);
        }
        let names: Vec<&str> = options.iter().map(|(n, _)| *n).collect();
        let mut d = Diagnostic::new(
            Code::InvalidValue,
            format!("`{}` is not a valid `{what}`", s.v),
        )
        .at(s.loc, format!("expected one of {}", slugify_list(&names)));
        if let Some(h) = did_you_mean(&s.v, names.iter().copied()) {
            d = d.help(h);
        }
        self.report(d);
        None
    }

    fn name_check(&mut self, s: &S<String>, what: impl Display + Copy, subdomain: bool) -> bool {
        let ok = if subdomain {
            values::is_dns_subdomain(&s.v)
        } else {
            values::is_dns_label(&s.v)
        };
        if !ok {
            let rule = if subdomain {
                "lower-case letters, digits, `-` and `.`, starting and ending with a letter or digit, at most 253 characters"
            } else {
                "lower-case letters, digits and `-`, starting and ending with a letter or digit, at most 63 characters"
            };
            let mut d = Diagnostic::new(
                Code::InvalidName,
                format!("`{}` is not a valid {what}", s.v),
            )
            .at(s.loc, "invalid name")
            .help(format!("a {what} must be {rule}"));
            let lower = s.v.to_ascii_lowercase().replace('_', "-");
            if lower != s.v
                && (if subdomain {
                    values::is_dns_subdomain(&lower)
                } else {
                    values::is_dns_label(&lower)
                })
            {
                d = d.help(format!("did you mean `{lower}`?"));
            }
            self.report(d);
        }
        ok
    }

    /// Decode one document.
    pub fn document(&mut self, doc: &Node<'_>) -> Resource {
        if !matches!(doc.value, Value::Map(_)) {
            let d = Diagnostic::new(
                Code::NotAResource,
                format!(
                    "document is not a resource: it is {}, not a mapping",
                    doc.value.type_name()
                ),
            )
            .at(self.loc(doc), "not a mapping")
            .help("every document must be a Kubernetes-style resource: a mapping with `apiVersion`, `kind` and `metadata`");
            self.report(d);
            return Resource::Invalid;
        }
        let Some(mut top) = self.obj(doc, "document") else {
            return Resource::Invalid;
        };
        let api = top
            .take("apiVersion")
            .and_then(|n| self.str(n, "apiVersion"));
        let kind = top.take("kind").and_then(|n| self.str(n, "kind"));
        let (Some(api), Some(kind)) = (api, kind) else {
            let d = Diagnostic::new(
                Code::NotAResource,
                "document is not a resource: it needs `apiVersion` and `kind`",
            )
            .at(self.loc(doc), "no `apiVersion` or `kind`")
            .help("every document must be a Kubernetes-style resource, e.g. `apiVersion: meshc.dev/v1alpha1` and `kind: MeshService`");
            self.report(d);
            return Resource::Invalid;
        };
        let (group, _version) = match api.v.rsplit_once('/') {
            Some((g, v)) => (g.to_string(), v.to_string()),
            None => (String::new(), api.v.clone()),
        };
        let k = kind.v.as_str();
        let accepted: Option<&[&str]> = match (group.as_str(), k) {
            ("meshc.dev", "Mesh" | "MeshService" | "Sidecar" | "MeshRoute") => {
                Some(&[NATIVE_API_VERSION])
            }
            ("", "Service") => Some(&["v1"]),
            (GATEWAY_GROUP, "HTTPRoute") => Some(&[
                "gateway.networking.k8s.io/v1",
                "gateway.networking.k8s.io/v1beta1",
            ]),
            // The versions the Gateway API CRD serves (`v1` since Gateway API 1.5; `v1alpha2`
            // is no longer served), with the same schema.
            (GATEWAY_GROUP, "ReferenceGrant") => Some(&[
                "gateway.networking.k8s.io/v1",
                "gateway.networking.k8s.io/v1beta1",
            ]),
            _ => None,
        };
        let Some(accepted) = accepted else {
            // meshc owns its group: a kind it does not define there is a mistake.
            if group == "meshc.dev" {
                let mut d = Diagnostic::new(
                    Code::UnknownKind,
                    format!("`{k}` is not a kind of `{}`", api.v),
                )
                .at(kind.loc, "unknown kind");
                d = match k {
                    "Service" => d.help("a Kubernetes `Service` is `apiVersion: v1`; meshc's own kind is `MeshService`"),
                    "HTTPRoute" => d.help("an `HTTPRoute` is `apiVersion: gateway.networking.k8s.io/v1`; meshc's own kind is `MeshRoute`"),
                    _ => match did_you_mean(k, NATIVE_KINDS.iter().copied()) {
                        Some(h) => d.help(h),
                        None => d.help(format!("meshc's kinds are {}", slugify_list(NATIVE_KINDS))),
                    },
                };
                self.report(d);
                return Resource::Invalid;
            }
            // A kind one or two edits away from one meshc reads in the same group (`HTTPRoutes`,
            // `service`) is almost surely that kind misspelt: skipping it quietly would drop a
            // route or a service. Real kinds of the group (`TCPRoute`) are skipped as usual.
            let read: &[&str] = match group.as_str() {
                "" => &["Service"],
                GATEWAY_GROUP if !GATEWAY_KINDS.contains(&k) => &["HTTPRoute", "ReferenceGrant"],
                _ => &[],
            };
            if let Some(near) = read.iter().find(|r| {
                strsim::levenshtein(&k.to_ascii_lowercase(), &r.to_ascii_lowercase()) <= 2
            }) {
                let d = Diagnostic::new(
                    Code::MisspeltKind,
                    format!("skipping `{}/{k}`: not a kind meshc reads", api.v),
                )
                .at(kind.loc, "skipped")
                .help(format!("did you mean `{near}`?"));
                self.report(d);
                return Resource::Invalid;
            }
            // A native kind with a misspelt group gets an error; anything else is skipped.
            if NATIVE_KINDS.contains(&k) {
                let d = Diagnostic::new(
                    Code::UnknownApiVersion,
                    format!("`{}` is not an apiVersion of `{k}`", api.v),
                )
                .at(api.loc, "unknown apiVersion")
                .help(format!("use `apiVersion: {NATIVE_API_VERSION}`"));
                self.report(d);
                return Resource::Invalid;
            }
            return Resource::Skipped {
                kind: format!("{}/{}", api.v, k),
                loc: kind.loc,
            };
        };
        if !accepted.contains(&api.v.as_str()) {
            let mut d = Diagnostic::new(
                Code::UnknownApiVersion,
                format!("`{}` is not an apiVersion meshc reads for `{k}`", api.v),
            )
            .at(api.loc, "unsupported apiVersion");
            d = d.help(format!("use {}", slugify_list(accepted)));
            self.report(d);
            return Resource::Invalid;
        }
        let meta = top.take("metadata");
        let spec = top.take("spec");
        // `status` is written by controllers; it is read and ignored.
        let _ = top.take("status");
        self.finish(top, fields::TOP, format_args!("`{k}`"));
        // A resource whose metadata is unusable is left out of the model, but its spec is still
        // decoded: its problems are reported in the same run.
        let (meta, usable) = match meta {
            Some(n) => {
                let (meta, valid) = self.metadata(n, k, doc);
                // A service's name is what routes, sidecars and Cedar policies refer to: an
                // invalid one leaves the service out. Other resources are named by nothing, so
                // one with an invalid name stays, and the semantic checks of its spec run too.
                let usable = match valid {
                    MetaValidity::Valid => true,
                    MetaValidity::InvalidName => !matches!(k, "Service" | "MeshService"),
                    MetaValidity::Unusable => false,
                };
                (meta, usable)
            }
            None => {
                let d = Diagnostic::new(
                    Code::MissingField,
                    format!("missing field `metadata` in `{k}`"),
                )
                .at(self.loc(doc), "`metadata` with a `name` is required");
                self.report(d);
                (
                    Meta::placeholder(self.default_namespace, self.loc(doc)),
                    false,
                )
            }
        };
        let what = if meta.name.v.is_empty() {
            format!("`{k}`")
        } else {
            format!("`{k}` `{}`", meta.name.v)
        };
        let resource = match k {
            "Mesh" => self
                .mesh(meta, spec, &what)
                .map_or(Resource::Invalid, Resource::Mesh),
            "MeshService" => self
                .mesh_service(meta, spec, &what)
                .map_or(Resource::Invalid, Resource::Service),
            "Service" => self
                .k8s_service(meta, spec, &what)
                .map_or(Resource::Invalid, Resource::Service),
            "Sidecar" => self
                .sidecar(meta, spec, &what)
                .map_or(Resource::Invalid, Resource::Sidecar),
            "MeshRoute" => self
                .route(meta, spec, &what, Origin::Native)
                .map_or(Resource::Invalid, |(r, s)| Resource::Route(r, s)),
            "ReferenceGrant" => Resource::ReferenceGrant(self.reference_grant(meta, spec, &what)),
            _ => self
                .route(meta, spec, &what, Origin::GatewayApi)
                .map_or(Resource::Invalid, |(r, s)| Resource::Route(r, s)),
        };
        if usable { resource } else { Resource::Invalid }
    }

    /// The metadata, and how far it is valid. A `creationTimestamp` that is given but invalid
    /// (reported) sets [`Meta::unknown_age`].
    fn metadata(&mut self, n: &Node<'_>, kind: &str, doc: &Node<'_>) -> (Meta, MetaValidity) {
        let Some(mut o) = self.obj(n, "metadata") else {
            return (
                Meta::placeholder(self.default_namespace, self.loc(doc)),
                MetaValidity::Unusable,
            );
        };
        let name = self.req_str(&mut o, "name", "metadata");
        let namespace = self.opt_str(&mut o, "namespace", "metadata");
        let ts = o.take("creationTimestamp").map(|t| {
            let s = self.str_lenient(t, "metadata.creationTimestamp")?;
            let normal = values::normalize_timestamp(&s.v);
            if normal.is_none() {
                let d = Diagnostic::new(
                    Code::InvalidTimestamp,
                    format!("`{}` is not an RFC 3339 timestamp", s.v),
                )
                .at(s.loc, "invalid timestamp")
                .help("write it as Kubernetes does, e.g. `2024-05-01T10:00:00Z`");
                self.report(d);
            }
            normal
        });
        let unknown_age = matches!(ts, Some(None));
        let ts = ts.flatten();
        for key in ["labels", "annotations"] {
            if let Some(m) = o.take(key) {
                if let Some(mut lo) = self.obj(m, format_args!("metadata.{key}")) {
                    let keys: Vec<&str> = lo.entries.iter().map(|e| e.0).collect();
                    for k in keys {
                        if let Some(v) = lo.take(k) {
                            self.str_lenient(v, format_args!("metadata.{key}.{k}"));
                        }
                    }
                }
            }
        }
        self.finish(o, fields::METADATA, "metadata");
        let mut validity = MetaValidity::Valid;
        let name = match name {
            Some(name) => {
                let subdomain = matches!(
                    kind,
                    "HTTPRoute" | "MeshRoute" | "Mesh" | "Sidecar" | "ReferenceGrant"
                );
                if !self.name_check(&name, format_args!("{kind} name"), subdomain) {
                    validity = MetaValidity::InvalidName;
                }
                name
            }
            None => {
                validity = MetaValidity::Unusable;
                S::new(String::new(), self.loc(n))
            }
        };
        let namespace = match namespace {
            Some(ns) => {
                // Names without a namespace resolve in the resource's own: an invalid one
                // would make every such reference fail.
                if !self.name_check(&ns, "namespace", false) {
                    validity = MetaValidity::Unusable;
                }
                ns
            }
            None => S::new(self.default_namespace.to_string(), name.loc),
        };
        (
            Meta {
                name,
                namespace,
                creation_timestamp: ts,
                unknown_age,
            },
            validity,
        )
    }

    fn spec<'n>(
        &mut self,
        spec: Option<&'n Node<'n>>,
        what: impl Display + Copy,
        doc_loc: Loc,
    ) -> Option<Obj<'n>> {
        match spec {
            Some(s) => self.obj(s, format_args!("{what} spec")),
            None => {
                let d = Diagnostic::new(
                    Code::MissingField,
                    format!("missing field `spec` in {what}"),
                )
                .at(doc_loc, "`spec` is required");
                self.report(d);
                None
            }
        }
    }

    fn mesh(
        &mut self,
        meta: Meta,
        spec: Option<&Node<'_>>,
        what: impl Display + Copy,
    ) -> Option<MeshConfig> {
        let mut m = MeshConfig {
            name: meta.name.v.clone(),
            loc: Some(meta.name.loc),
            ..MeshConfig::default()
        };
        let Some(spec) = spec else { return Some(m) };
        let mut o = self.obj(spec, format_args!("{what} spec"))?;
        if let Some(td) = self.opt_str(&mut o, "trustDomain", "spec") {
            if values::is_dns_subdomain(&td.v) {
                m.trust_domain = td.v;
            } else {
                let d = Diagnostic::new(
                    Code::InvalidHostname,
                    format!("`{}` is not a valid trust domain", td.v),
                )
                .at(td.loc, "invalid trust domain")
                .help("a SPIFFE trust domain is a lower-case DNS name such as `cluster.local`");
                self.report(d);
            }
        }
        if let Some(n) = o.take("mtls") {
            if let Some(mut mo) = self.obj(n, "spec.mtls") {
                if let Some(mode) = mo.take("mode") {
                    if let Some(v) = self.choice(
                        mode,
                        "spec.mtls.mode",
                        &[
                            ("strict", MtlsMode::Strict),
                            ("permissive", MtlsMode::Permissive),
                        ],
                    ) {
                        m.mtls = v;
                    }
                }
                self.finish(mo, fields::MESH_MTLS, "`spec.mtls`");
            }
        }
        if let Some(n) = o.take("authorization") {
            if let Some(mut ao) = self.obj(n, "spec.authorization") {
                if let Some(mode) = ao.take("mode") {
                    if let Some(v) = self.authz_mode(mode, "spec.authorization.mode") {
                        m.authz_mode = v;
                    }
                }
                if let Some(h) = ao.take("contextHeaders") {
                    for item in self.seq(h, "spec.authorization.contextHeaders") {
                        if let Some(s) = self.str(item, "contextHeaders[]") {
                            if self.header_name_ok(&s) {
                                m.context_headers
                                    .push(S::new(s.v.to_ascii_lowercase(), s.loc));
                            }
                        }
                    }
                }
                self.finish(ao, fields::MESH_AUTHZ, "`spec.authorization`");
            }
        }
        if let Some(n) = o.take("defaults") {
            if let Some(mut dobj) = self.obj(n, "spec.defaults") {
                if let Some(b) = dobj.take("retryBudget") {
                    m.default_retry_budget =
                        Some(self.given_retry_budget(b, "spec.defaults.retryBudget"));
                }
                if let Some(t) = dobj.take("timeouts") {
                    if let Some(mut to) = self.obj(t, "spec.defaults.timeouts") {
                        if let Some(r) = to.take("request") {
                            m.default_request_timeout_ms = self
                                .duration(r, "spec.defaults.timeouts.request")
                                .map(|d| d.v);
                        }
                        self.finish(
                            to,
                            fields::MESH_DEFAULT_TIMEOUTS,
                            "`spec.defaults.timeouts`",
                        );
                    }
                }
                self.finish(dobj, fields::MESH_DEFAULTS, "`spec.defaults`");
            }
        }
        if let Some(n) = o.take("referenceGrants") {
            if let Some(required) = self.choice(
                n,
                "spec.referenceGrants",
                &[("optional", false), ("required", true)],
            ) {
                m.reference_grants_required = required;
            }
        }
        if let Some(n) = o.take("sidecar") {
            if let Some(mut so) = self.obj(n, "spec.sidecar") {
                if let Some(p) = self.opt_port(&mut so, "inboundPort", "spec.sidecar") {
                    m.sidecar_ports.inbound = p.v;
                }
                if let Some(p) = self.opt_port(&mut so, "outboundPort", "spec.sidecar") {
                    m.sidecar_ports.outbound = p.v;
                }
                if let Some(p) = self.opt_port(&mut so, "adminPort", "spec.sidecar") {
                    m.sidecar_ports.admin = p.v;
                }
                self.finish(so, fields::MESH_SIDECAR, "`spec.sidecar`");
            }
        }
        self.finish(o, fields::MESH_SPEC, format_args!("{what} spec"));
        Some(m)
    }

    fn authz_mode(&mut self, n: &Node<'_>, what: impl Display + Copy) -> Option<AuthzMode> {
        self.choice(
            n,
            what,
            &[("enforce", AuthzMode::Enforce), ("audit", AuthzMode::Audit)],
        )
    }

    /// A retry budget that is given: its value or, where it had errors (reported), a stand-in.
    /// An invalid budget is not a missing one: no check may report it as absent. Models with
    /// errors are never lowered, so the stand-in reaches no artifact.
    fn given_retry_budget(&mut self, n: &Node<'_>, what: impl Display + Copy) -> RetryBudget {
        self.retry_budget(n, what).unwrap_or(RetryBudget {
            percent: 0,
            min_per_second: 0,
        })
    }

    fn retry_budget(&mut self, n: &Node<'_>, what: impl Display + Copy) -> Option<RetryBudget> {
        let mut o = self.obj(n, what)?;
        let percent = match o.take("percent") {
            Some(p) => self
                .u32_in(
                    p,
                    format_args!("{what}.percent"),
                    0,
                    100,
                    Code::InvalidValue,
                )
                .map(|v| v.v),
            None => {
                self.missing(&o, "percent", format_args!("`{what}`"));
                None
            }
        };
        let min = match o.take("minRetriesPerSecond") {
            Some(p) => self
                .u32_in(
                    p,
                    format_args!("{what}.minRetriesPerSecond"),
                    0,
                    1_000_000,
                    Code::InvalidValue,
                )
                .map(|v| v.v),
            None => Some(10),
        };
        self.finish(o, fields::RETRY_BUDGET, format_args!("`{what}`"));
        Some(RetryBudget {
            percent: percent?,
            min_per_second: min?,
        })
    }

    fn protocol(&mut self, n: &Node<'_>, what: impl Display + Copy) -> Option<Protocol> {
        self.choice(
            n,
            what,
            &[
                ("http", Protocol::Http),
                ("http2", Protocol::Http2),
                ("grpc", Protocol::Grpc),
            ],
        )
    }

    fn endpoints(&mut self, n: &Node<'_>, what: impl Display + Copy) -> Vec<EndpointCfg> {
        let mut out = Vec::new();
        let items = self.seq(n, what);
        out.reserve_exact(items.len());
        for item in items {
            let Some(mut o) = self.obj(item, format_args!("{what}[]")) else {
                continue;
            };
            let address = self.req_str(&mut o, "address", format_args!("{what}[]"));
            let port = self.opt_port(&mut o, "port", format_args!("{what}[]"));
            self.finish(o, fields::ENDPOINT, format_args!("`{what}[]`"));
            if let Some(a) = address {
                if !values::is_valid_host(&a.v) {
                    let d = Diagnostic::new(Code::InvalidHostname, format!("`{}` is not a valid address", a.v))
                        .at(a.loc, "invalid address")
                        .help("an endpoint address is an IP address or a DNS name, without port or scheme");
                    self.report(d);
                    continue;
                }
                out.push(EndpointCfg {
                    address: a.v,
                    port: port.map(|p| p.v),
                    loc: self.loc(item),
                });
            }
        }
        out
    }

    fn mesh_service(
        &mut self,
        meta: Meta,
        spec: Option<&Node<'_>>,
        what: impl Display + Copy,
    ) -> Option<Service> {
        let mut o = self.spec(spec, what, meta.name.loc)?;
        let mut svc = Service {
            namespace: meta.namespace.v.clone(),
            name: meta.name.v.clone(),
            loc: meta.name.loc,
            origin: Origin::Native,
            ports: Vec::new(),
            versions: Vec::new(),
            endpoints: Vec::new(),
        };
        match o.take("ports") {
            Some(p) => {
                let items = self.seq(p, "spec.ports");
                svc.ports.reserve_exact(items.len());
                let mut names = Vec::new();
                for item in items {
                    let Some(mut po) = self.obj(item, "spec.ports[]") else {
                        continue;
                    };
                    let name = self.opt_str(&mut po, "name", "spec.ports[]");
                    self.port_name_once(&mut names, name.as_ref(), &svc);
                    let port = match po.take("port") {
                        Some(n) => self.port(n, "spec.ports[].port"),
                        None => {
                            self.missing(&po, "port", "`spec.ports[]`");
                            None
                        }
                    };
                    let protocol = po
                        .take("protocol")
                        .map(|n| self.protocol(n, "spec.ports[].protocol"));
                    let target = self.opt_port(&mut po, "targetPort", "spec.ports[]");
                    self.finish(po, fields::MESH_SERVICE_PORT, "`spec.ports[]`");
                    if let Some(port) = port {
                        svc.ports.push(ServicePort {
                            name: name.map(|n| n.v),
                            port: port.v,
                            target_port: target.map(|t| t.v),
                            target_name: None,
                            protocol: protocol.flatten().unwrap_or(Protocol::Http),
                            loc: port.loc,
                        });
                    }
                }
            }
            None => self.missing(&o, "ports", format_args!("{what} spec")),
        }
        if let Some(v) = o.take("versions") {
            let items = self.seq(v, "spec.versions");
            svc.versions.reserve_exact(items.len());
            for item in items {
                let Some(mut vo) = self.obj(item, "spec.versions[]") else {
                    continue;
                };
                let name = self.req_str(&mut vo, "name", "spec.versions[]");
                let mut labels = BTreeMap::new();
                if let Some(l) = vo.take("labels") {
                    if let Some(mut lo) = self.obj(l, "spec.versions[].labels") {
                        let keys: Vec<&str> = lo.entries.iter().map(|e| e.0).collect();
                        for k in keys {
                            if let Some(val) =
                                lo.take(k).and_then(|n| self.str_lenient(n, "label value"))
                            {
                                labels.insert(k.to_string(), val.v);
                            }
                        }
                    }
                }
                let endpoints = match vo.take("endpoints") {
                    Some(e) => self.endpoints(e, "spec.versions[].endpoints"),
                    None => Vec::new(),
                };
                self.finish(vo, fields::VERSION, "`spec.versions[]`");
                if let Some(name) = name {
                    if self.name_check(&name, "version name", false) {
                        svc.versions.push(Version {
                            name: name.v,
                            labels,
                            endpoints,
                            loc: name.loc,
                        });
                    }
                }
            }
        }
        if let Some(e) = o.take("endpoints") {
            svc.endpoints = self.endpoints(e, "spec.endpoints");
        }
        self.finish(o, fields::MESH_SERVICE_SPEC, format_args!("{what} spec"));
        Some(svc)
    }

    fn k8s_service(
        &mut self,
        meta: Meta,
        spec: Option<&Node<'_>>,
        what: impl Display + Copy,
    ) -> Option<Service> {
        let mut o = self.spec(spec, what, meta.name.loc)?;
        // An ExternalName Service is a DNS alias with no Pods behind it: no sidecar stands
        // beside it and no request of the mesh reaches it through one.
        if let Some(t) = o.take("type")
            && let Some(t) = self.str(t, "spec.type")
            && t.v == "ExternalName"
        {
            self.report(
                Diagnostic::new(
                    Code::NotMeshed,
                    format!(
                        "service `{}/{}` is an `ExternalName` alias: it is left out of the mesh",
                        meta.namespace.v, meta.name.v
                    ),
                )
                .at(t.loc, "no Pods, so no sidecar")
                .help("sidecars carry traffic between Pods of the mesh; call the external name directly, or give it a Service with endpoints"),
            );
            return None;
        }
        let mut svc = Service {
            namespace: meta.namespace.v.clone(),
            name: meta.name.v.clone(),
            loc: meta.name.loc,
            origin: Origin::Kubernetes,
            ports: Vec::new(),
            versions: Vec::new(),
            endpoints: Vec::new(),
        };
        let mut left_out = 0;
        if let Some(p) = o.take("ports") {
            let items = self.seq(p, "spec.ports");
            svc.ports.reserve_exact(items.len());
            let mut names = Vec::new();
            for item in items {
                let Some(mut po) = self.obj(item, "spec.ports[]") else {
                    continue;
                };
                let name = self.opt_str(&mut po, "name", "spec.ports[]");
                self.port_name_once(&mut names, name.as_ref(), &svc);
                let port = match po.take("port") {
                    Some(n) => self.port(n, "spec.ports[].port"),
                    None => {
                        self.missing(&po, "port", "`spec.ports[]`");
                        None
                    }
                };
                // targetPort may be a number or a named container port.
                let mut target_name = None;
                let target = po.take("targetPort").and_then(|t| match &t.value {
                    Value::Str(s) if s.parse::<u16>().is_err() => {
                        target_name = Some(S::new(s.to_string(), self.loc(t)));
                        None
                    }
                    _ => self.port(t, "spec.ports[].targetPort"),
                });
                let mut carried = true;
                if let Some(proto) = po.take("protocol") {
                    let tcp = self.choice(
                        proto,
                        "spec.ports[].protocol",
                        &[("TCP", true), ("UDP", false), ("SCTP", false)],
                    );
                    if tcp == Some(false) {
                        carried = false;
                        left_out += 1;
                        self.report(
                            Diagnostic::new(
                                Code::NotMeshed,
                                format!(
                                    "port {} of `{}/{}` is not TCP: it is left out of the mesh",
                                    port.as_ref().map_or(0, |p| p.v),
                                    meta.namespace.v,
                                    meta.name.v
                                ),
                            )
                            .at(self.loc(proto), "sidecars carry HTTP over TCP")
                            .help("this port's traffic goes around the sidecars; routes cannot attach to it"),
                        );
                    }
                }
                let app = self.opt_str(&mut po, "appProtocol", "spec.ports[]");
                let _ = po.take("nodePort");
                self.finish(po, fields::K8S_SERVICE_PORT, "`spec.ports[]`");
                let protocol = values::infer_protocol(
                    app.as_ref().map(|a| a.v.as_str()),
                    name.as_ref().map(|n| n.v.as_str()),
                );
                if let Some(port) = port.filter(|_| carried) {
                    svc.ports.push(ServicePort {
                        name: name.map(|n| n.v),
                        port: port.v,
                        target_port: target.map(|t| t.v),
                        target_name,
                        protocol,
                        loc: port.loc,
                    });
                }
            }
        }
        // A Service whose every port is left out has nothing the mesh can carry.
        if left_out > 0 && svc.ports.is_empty() {
            return None;
        }
        for key in fields::K8S_SERVICE_SPEC {
            let _ = o.take(key);
        }
        self.finish(o, fields::K8S_SERVICE_SPEC, format_args!("{what} spec"));
        Some(svc)
    }

    /// Report a port name used twice in one service, at the second `name` (the model keeps no
    /// place of port names, so this check runs here).
    fn port_name_once(
        &mut self,
        seen: &mut Vec<S<String>>,
        name: Option<&S<String>>,
        svc: &Service,
    ) {
        let Some(name) = name else { return };
        if let Some(first) = seen.iter().find(|s| s.v == name.v) {
            let d = Diagnostic::new(
                Code::DuplicatePort,
                format!(
                    "port name `{}` is used twice in service `{}`",
                    name.v,
                    svc.key()
                ),
            )
            .at(name.loc, "name used again")
            .secondary(first.loc, "first used here");
            self.report(d);
        } else {
            seen.push(name.clone());
        }
    }

    fn sidecar(
        &mut self,
        meta: Meta,
        spec: Option<&Node<'_>>,
        what: impl Display + Copy,
    ) -> Option<Sidecar> {
        let mut o = self.spec(spec, what, meta.name.loc)?;
        let service = self.req_str(&mut o, "service", format_args!("{what} spec"));
        let mut sc = Sidecar {
            namespace: meta.namespace.v.clone(),
            name: meta.name.v.clone(),
            loc: meta.name.loc,
            service: service
                .clone()
                .unwrap_or_else(|| S::new(String::new(), meta.name.loc)),
            inbound_port: None,
            outbound_port: None,
            admin_port: None,
            app_port: None,
            app_protocol: None,
            encoded_slashes: None,
            egress: None,
            authz_mode: None,
        };
        if let Some(l) = o.take("listeners") {
            if let Some(mut lo) = self.obj(l, "spec.listeners") {
                sc.inbound_port = self.opt_port(&mut lo, "inbound", "spec.listeners");
                sc.outbound_port = self.opt_port(&mut lo, "outbound", "spec.listeners");
                sc.admin_port = self.opt_port(&mut lo, "admin", "spec.listeners");
                self.finish(lo, fields::SIDECAR_LISTENERS, "`spec.listeners`");
            }
        }
        if let Some(a) = o.take("app") {
            if let Some(mut ao) = self.obj(a, "spec.app") {
                sc.app_port = self.opt_port(&mut ao, "port", "spec.app");
                sc.app_protocol = ao
                    .take("protocol")
                    .and_then(|p| self.protocol(p, "spec.app.protocol"));
                sc.encoded_slashes = ao.take("encodedSlashes").and_then(|n| {
                    let loc = self.loc(n);
                    self.choice(
                        n,
                        "spec.app.encodedSlashes",
                        &[
                            ("reject", EncodedSlashes::Reject),
                            ("keep", EncodedSlashes::Keep),
                        ],
                    )
                    .map(|v| S::new(v, loc))
                });
                self.finish(ao, fields::SIDECAR_APP, "`spec.app`");
            }
        }
        if let Some(e) = o.take("egress") {
            let mut list = Vec::new();
            let items = self.seq(e, "spec.egress");
            list.reserve_exact(items.len());
            for item in items {
                match &item.value {
                    Value::Str(s) => {
                        let (ns, name) = match s.split_once('/') {
                            Some((ns, n)) => (ns.to_string(), n.to_string()),
                            None => (sc.namespace.clone(), s.to_string()),
                        };
                        list.push(EgressRef {
                            namespace: ns,
                            name,
                            loc: self.loc(item),
                        });
                    }
                    Value::Map(_) => {
                        let Some(mut eo) = self.obj(item, "spec.egress[]") else {
                            continue;
                        };
                        let name = self.req_str(&mut eo, "service", "spec.egress[]");
                        let ns = self.opt_str(&mut eo, "namespace", "spec.egress[]");
                        self.finish(eo, fields::EGRESS, "`spec.egress[]`");
                        if let Some(name) = name {
                            list.push(EgressRef {
                                namespace: ns.map_or_else(|| sc.namespace.clone(), |n| n.v),
                                name: name.v,
                                loc: self.loc(item),
                            });
                        }
                    }
                    _ => self.wrong_type(item, "spec.egress[]", "a string or a mapping"),
                }
            }
            sc.egress = Some(list);
        }
        if let Some(a) = o.take("authorization") {
            if let Some(mut ao) = self.obj(a, "spec.authorization") {
                sc.authz_mode = ao
                    .take("mode")
                    .and_then(|m| self.authz_mode(m, "spec.authorization.mode"));
                self.finish(ao, fields::SIDECAR_AUTHZ, "`spec.authorization`");
            }
        }
        self.finish(o, fields::SIDECAR_SPEC, format_args!("{what} spec"));
        service.map(|_| sc)
    }

    fn route(
        &mut self,
        meta: Meta,
        spec: Option<&Node<'_>>,
        what: impl Display + Copy,
        origin: Origin,
    ) -> Option<(Route, Vec<SectionRef>)> {
        let native = origin == Origin::Native;
        let mut o = self.spec(spec, what, meta.name.loc)?;
        let mut route = Route {
            namespace: meta.namespace.v.clone(),
            name: meta.name.v.clone(),
            loc: meta.name.loc,
            origin,
            creation_timestamp: meta.creation_timestamp.clone(),
            unknown_age: meta.unknown_age,
            parents: Vec::new(),
            hostnames: Vec::new(),
            rules: Vec::new(),
        };
        let mut sections = Vec::new();
        match o.take("parentRefs") {
            Some(p) => {
                let items = self.seq(p, "spec.parentRefs");
                route.parents.reserve_exact(items.len());
                for item in items {
                    if let Some((pr, section)) = self.parent_ref(item, native, &route.namespace) {
                        if let Some(name) = section {
                            sections.push(SectionRef {
                                parent: route.parents.len(),
                                name,
                            });
                        }
                        route.parents.push(pr);
                    }
                }
            }
            None => self.missing(&o, "parentRefs", format_args!("{what} spec")),
        }
        if let Some(h) = o.take("hostnames") {
            let items = self.seq(h, "spec.hostnames");
            route.hostnames.reserve_exact(items.len());
            for item in items {
                if let Some(s) = self.str(item, "spec.hostnames[]") {
                    if values::is_valid_route_hostname(&s.v) {
                        route
                            .hostnames
                            .push(S::new(s.v.to_ascii_lowercase(), s.loc));
                    } else {
                        let d = Diagnostic::new(Code::InvalidHostname, format!("`{}` is not a valid hostname", s.v))
                            .at(s.loc, "invalid hostname")
                            .help("a route hostname is a DNS name, optionally starting with `*.`, without port");
                        self.report(d);
                    }
                }
            }
        }
        if let Some(r) = o.take("rules") {
            let items = self.seq(r, "spec.rules");
            route.rules.reserve_exact(items.len());
            for item in items {
                if let Some(rule) = self.rule(item, native, &route.namespace) {
                    route.rules.push(rule);
                }
            }
        } else {
            // Gateway API: a route without rules has one rule matching everything, which has no
            // backends; meshc requires rules so that the route does something.
            self.missing(&o, "rules", format_args!("{what} spec"));
        }
        self.finish(o, fields::ROUTE_SPEC, format_args!("{what} spec"));
        Some((route, sections))
    }

    /// A `ReferenceGrant`. It always decodes (a grant with problems permits what its valid
    /// entries say; the problems are errors of their own).
    fn reference_grant(
        &mut self,
        meta: Meta,
        spec: Option<&Node<'_>>,
        what: impl Display + Copy,
    ) -> ReferenceGrant {
        let mut grant = ReferenceGrant {
            namespace: meta.namespace.v.clone(),
            name: meta.name.v.clone(),
            loc: meta.name.loc,
            from: Vec::new(),
            to: Vec::new(),
        };
        // The CRD makes `spec` optional: a grant without one permits nothing.
        let Some(mut o) = spec.and_then(|s| self.obj(s, format_args!("{what} spec"))) else {
            return grant;
        };
        match o.take("from") {
            Some(list) => {
                let items = self.seq(list, "spec.from");
                grant.from.reserve_exact(items.len());
                for item in items {
                    if let Some(f) = self.grant_from(item) {
                        grant.from.push(f);
                    }
                }
            }
            None => self.missing(&o, "from", format_args!("{what} spec")),
        }
        match o.take("to") {
            Some(list) => {
                let items = self.seq(list, "spec.to");
                grant.to.reserve_exact(items.len());
                for item in items {
                    if let Some(t) = self.grant_to(item) {
                        grant.to.push(t);
                    }
                }
            }
            None => self.missing(&o, "to", format_args!("{what} spec")),
        }
        self.finish(o, fields::REFERENCE_GRANT_SPEC, format_args!("{what} spec"));
        grant
    }

    /// The `group` of a grant's entry: required, `""` for the core group.
    fn grant_group(&mut self, o: &mut Obj<'_>, what: &str) -> Option<S<String>> {
        let Some(n) = o.take("group") else {
            let d = Diagnostic::new(
                Code::MissingField,
                format!("missing field `group` in `{what}`"),
            )
            .at(self.loc(o.node), "`group` is required here")
            .help("write `group: \"\"` for the core group (`Service`), `group: gateway.networking.k8s.io` for `HTTPRoute`");
            self.report(d);
            return None;
        };
        let group = self.str(n, format_args!("{what}.group"))?;
        if let Some((g, _)) = group.v.split_once('/') {
            let d = Diagnostic::new(
                Code::InvalidValue,
                format!("`{}` is not an API group", group.v),
            )
            .at(group.loc, "a group and a version")
            .help(format!(
                "`group` names the group alone, without version: `{g}`"
            ));
            self.report(d);
        }
        Some(group)
    }

    /// One entry of a grant's `from`: who may refer.
    fn grant_from(&mut self, n: &Node<'_>) -> Option<GrantFrom> {
        const WHAT: &str = "spec.from[]";
        let loc = self.loc(n);
        let mut o = self.obj(n, WHAT)?;
        let group = self.grant_group(&mut o, WHAT);
        let kind = self.req_str(&mut o, "kind", WHAT);
        let namespace = self.req_str(&mut o, "namespace", WHAT);
        self.finish(o, fields::GRANT_FROM, format_args!("`{WHAT}`"));
        let (group, kind, namespace) = (group?, kind?, namespace?);
        if !self.name_check(&namespace, "namespace", false) {
            return None;
        }
        // The kinds of routes meshc reads, in their groups: a near miss (`HTTPRoutes`, or a
        // route kind in the core group) would permit nothing.
        let routes = [(GATEWAY_GROUP, "HTTPRoute"), ("meshc.dev", "MeshRoute")];
        if let Some((right_group, _)) = routes
            .iter()
            .find(|(g, k)| *k == kind.v && *g != group.v && !group.v.contains('/'))
        {
            let d = Diagnostic::new(
                Code::InvalidValue,
                if group.v.is_empty() {
                    format!("`{}` is not a kind of the core group", kind.v)
                } else {
                    format!("`{}` is not a kind of the group `{}`", kind.v, group.v)
                },
            )
            .at(group.loc, "no such kind in this group")
            .help(format!(
                "`{}` is in the group `{right_group}`: write `group: {right_group}`",
                kind.v
            ));
            self.report(d);
        } else if let Some((_, near)) = routes.iter().find(|(g, k)| {
            *g == group.v
                && *k != kind.v
                && !GATEWAY_KINDS.contains(&kind.v.as_str())
                && near_miss(&kind.v, k)
        }) {
            self.grant_kind_typo(&kind, &group.v, near);
        }
        Some(GrantFrom {
            group: group.v,
            kind: kind.v,
            namespace,
            loc,
        })
    }

    /// One entry of a grant's `to`: what may be referred to.
    fn grant_to(&mut self, n: &Node<'_>) -> Option<GrantTo> {
        const WHAT: &str = "spec.to[]";
        let loc = self.loc(n);
        let mut o = self.obj(n, WHAT)?;
        let group = self.grant_group(&mut o, WHAT);
        let kind = self.req_str(&mut o, "kind", WHAT);
        let name = self.opt_str(&mut o, "name", WHAT);
        self.finish(o, fields::GRANT_TO, format_args!("`{WHAT}`"));
        let (group, kind) = (group?, kind?);
        // `Secret` (for Gateways' certificates) and other kinds are fine; a near miss of
        // `Service` in the core group would permit nothing.
        if group.v.is_empty() && kind.v != "Service" && near_miss(&kind.v, "Service") {
            self.grant_kind_typo(&kind, "", "Service");
        }
        Some(GrantTo {
            group: group.v,
            kind: kind.v,
            name,
            loc,
        })
    }

    /// A kind one or two edits from the one meshc checks grants for, in its group: the entry
    /// would match nothing.
    fn grant_kind_typo(&mut self, kind: &S<String>, group: &str, near: &str) {
        let group = if group.is_empty() {
            "the core group".to_string()
        } else {
            format!("`{group}`")
        };
        let d = Diagnostic::new(
            Code::InvalidValue,
            format!("`{}` is not a kind of {group}", kind.v),
        )
        .at(kind.loc, "unknown kind: matches nothing")
        .help(format!("did you mean `{near}`?"));
        self.report(d);
    }

    /// A parent reference, and its `sectionName`.
    fn parent_ref(
        &mut self,
        n: &Node<'_>,
        native: bool,
        route_ns: &str,
    ) -> Option<(ParentRef, Option<S<String>>)> {
        let mut o = self.obj(n, "spec.parentRefs[]")?;
        let default_group = if native { "" } else { GATEWAY_GROUP };
        let default_kind = if native { "Service" } else { "Gateway" };
        let group = self
            .opt_str(&mut o, "group", "spec.parentRefs[]")
            .map_or(default_group.to_string(), |g| g.v);
        let kind = self
            .opt_str(&mut o, "kind", "spec.parentRefs[]")
            .map_or(default_kind.to_string(), |k| k.v);
        let namespace = self
            .opt_str(&mut o, "namespace", "spec.parentRefs[]")
            .map_or(route_ns.to_string(), |n| n.v);
        let name = self.req_str(&mut o, "name", "spec.parentRefs[]");
        let section = self.opt_str(&mut o, "sectionName", "spec.parentRefs[]");
        let port = self.opt_port(&mut o, "port", "spec.parentRefs[]");
        self.finish(o, fields::PARENT_REF, "`spec.parentRefs[]`");
        let name = name?;
        Some((
            ParentRef {
                group,
                kind,
                namespace,
                name: name.v,
                port,
                loc: name.loc,
            },
            section,
        ))
    }

    fn rule(&mut self, n: &Node<'_>, native: bool, route_ns: &str) -> Option<Rule> {
        let mut o = self.obj(n, "spec.rules[]")?;
        let mut rule = Rule {
            loc: self.loc(n),
            matches: Vec::new(),
            backends: Vec::new(),
            filters: Vec::new(),
            timeouts: Timeouts::default(),
            retry: None,
            incomplete: false,
        };
        let _ = o.take("name");
        let matches = o.take("matches");
        if let Some(m) = matches {
            let items = self.seq(m, "spec.rules[].matches");
            if !matches!(m.value, Value::Seq(_)) {
                // Not a list: what the rule matches is unknown, not everything.
                rule.matches.push(broken_match(self.loc(m)));
            }
            rule.matches.reserve_exact(items.len());
            for item in items {
                rule.matches.push(self.route_match(item));
            }
        }
        if let Some(f) = o.take("filters") {
            let items = self.seq(f, "spec.rules[].filters");
            if !matches!(f.value, Value::Seq(_)) {
                rule.incomplete = true;
            }
            rule.filters.reserve_exact(items.len());
            for item in items {
                match self.filter(item) {
                    Some(filter) => rule.filters.push(filter),
                    None => rule.incomplete = true,
                }
            }
        }
        if let Some(b) = o.take("backendRefs") {
            let items = self.seq(b, "spec.rules[].backendRefs");
            // A backend that was reported and dropped: the rule is not without backends.
            if !matches!(b.value, Value::Seq(_)) {
                rule.incomplete = true;
            }
            rule.backends.reserve_exact(items.len());
            for item in items {
                match self.backend_ref(item, native, route_ns) {
                    Some(br) => rule.backends.push(br),
                    None => rule.incomplete = true,
                }
            }
        }
        if let Some(t) = o.take("timeouts") {
            if let Some(mut to) = self.obj(t, "spec.rules[].timeouts") {
                rule.timeouts.request = to
                    .take("request")
                    .and_then(|r| self.duration(r, "timeouts.request"));
                rule.timeouts.backend_request = to
                    .take("backendRequest")
                    .and_then(|r| self.duration(r, "timeouts.backendRequest"));
                self.finish(to, fields::TIMEOUTS, "`spec.rules[].timeouts`");
            }
        }
        if let Some(r) = o.take("retry") {
            rule.retry = self.retry(r, native);
        }
        if let Some(sp) = o.take("sessionPersistence") {
            let d = Diagnostic::new(
                Code::UnsupportedFilter,
                "`sessionPersistence` is not supported by mesh-proxy and is ignored",
            )
            .at(self.loc(sp), "ignored");
            self.report(d);
        }
        // An unknown field may be a misspelt `matches` (or a match's `path` written on the rule):
        // the rule would then look like a catch-all, so what it matches is unknown. It may also
        // be a misspelt `backendRefs` or `filters`.
        let unknown = o
            .entries
            .iter()
            .any(|e| !e.3 && !fields::RULE.contains(&e.0));
        if unknown {
            rule.incomplete = true;
            if matches.is_none() {
                rule.matches.push(broken_match(rule.loc));
            }
        }
        self.finish(o, fields::RULE, "`spec.rules[]`");
        Some(rule)
    }

    fn retry(&mut self, n: &Node<'_>, native: bool) -> Option<Retry> {
        let mut o = self.obj(n, "spec.rules[].retry")?;
        let attempts = o
            .take("attempts")
            .and_then(|a| self.u32_in(a, "retry.attempts", 0, 10, Code::InvalidValue))
            .map_or(1, |a| a.v);
        let mut codes = Vec::new();
        if let Some(c) = o.take("codes") {
            let items = self.seq(c, "retry.codes");
            codes.reserve_exact(items.len());
            for item in items {
                if let Some(code) =
                    self.u32_in(item, "retry.codes[]", 400, 599, Code::InvalidStatus)
                {
                    codes.push(u16::try_from(code.v).unwrap_or(0));
                }
            }
        }
        let backoff = o
            .take("backoff")
            .and_then(|b| self.duration(b, "retry.backoff"))
            .map_or(25, |b| b.v);
        let mut max_backoff = None;
        let mut budget = None;
        if native {
            max_backoff = o
                .take("maxBackoff")
                .and_then(|b| self.duration(b, "retry.maxBackoff"))
                .map(|b| b.v);
            budget = o
                .take("budget")
                .map(|b| self.given_retry_budget(b, "retry.budget"));
        }
        let known = if native {
            fields::MESH_RETRY
        } else {
            fields::HTTP_RETRY
        };
        self.finish(o, known, "`spec.rules[].retry`");
        codes.sort_unstable();
        codes.dedup();
        Some(Retry {
            loc: self.loc(n),
            attempts,
            codes,
            backoff_ms: backoff,
            max_backoff_ms: max_backoff,
            budget,
        })
    }

    /// One match; every field is checked even when an earlier one is bad, and a match with an
    /// error becomes a [`broken_match`].
    fn route_match(&mut self, n: &Node<'_>) -> Match {
        let mark = self.diags.len();
        let loc = self.loc(n);
        let Some(mut o) = self.obj(n, "spec.rules[].matches[]") else {
            return broken_match(loc);
        };
        let path = match o.take("path") {
            Some(p) => self.path_match(p),
            None => Some(S::new(PathMatch::PathPrefix("/".to_string()), loc)),
        };
        let method = o.take("method").and_then(|m| {
            let s = self.str(m, "matches[].method")?;
            if values::METHODS.contains(&s.v.as_str()) {
                Some(s)
            } else {
                let mut d = Diagnostic::new(
                    Code::InvalidMethod,
                    format!("`{}` is not an HTTP method Gateway API matches", s.v),
                )
                .at(s.loc, "invalid method");
                let upper = s.v.to_ascii_uppercase();
                d = if values::METHODS.contains(&upper.as_str()) {
                    d.help(format!("methods are upper case: did you mean `{upper}`?"))
                } else {
                    match did_you_mean(&s.v, values::METHODS.iter().copied()) {
                        Some(h) => d.help(h),
                        None => {
                            d.help(format!("expected one of {}", slugify_list(values::METHODS)))
                        }
                    }
                };
                self.report(d);
                None
            }
        });
        let headers = match o.take("headers") {
            Some(h) => self.value_matches(h, "headers", true),
            None => Vec::new(),
        };
        let query = match o.take("queryParams") {
            Some(q) => self.value_matches(q, "queryParams", false),
            None => Vec::new(),
        };
        self.finish(o, fields::MATCH, "`spec.rules[].matches[]`");
        match path {
            Some(path) if !self.errors_since(mark) => Match {
                loc,
                path,
                method,
                headers,
                query,
                broken: false,
            },
            _ => broken_match(loc),
        }
    }

    fn path_match(&mut self, n: &Node<'_>) -> Option<S<PathMatch>> {
        let mut o = self.obj(n, "matches[].path")?;
        #[derive(Clone, Copy)]
        enum K {
            Exact,
            Prefix,
            Regex,
        }
        let kind = match o.take("type") {
            Some(t) => self.choice(
                t,
                "path.type",
                &[
                    ("Exact", K::Exact),
                    ("PathPrefix", K::Prefix),
                    ("RegularExpression", K::Regex),
                ],
            ),
            None => Some(K::Prefix),
        };
        let value = match o.take("value") {
            Some(v) => self.str(v, "path.value"),
            None => Some(S::new("/".to_string(), self.loc(n))),
        };
        self.finish(o, fields::PATH, "`matches[].path`");
        // Without a known `type`, the value cannot be judged.
        let (kind, value) = (kind?, value?);
        let pm = match kind {
            K::Regex => {
                if let Some(e) = self.regex_error(&value.v) {
                    self.bad_regex(&value, &e);
                    return None;
                }
                PathMatch::RegularExpression(value.v.clone())
            }
            K::Exact | K::Prefix => {
                if let Err(why) = values::check_path(&value.v) {
                    let d = Diagnostic::new(Code::InvalidPath, format!("`{}` is not a valid path", value.v))
                        .at(value.loc, why)
                        .help("paths start with `/` and contain no `?`, `#` or whitespace; use `queryParams` to match the query");
                    self.report(d);
                    return None;
                }
                // mesh-proxy routes on the normalized path: another spelling never matches. An
                // encoded slash depends on the parents' `encodedSlashes`, which the validator
                // knows; every other case is the same in both modes.
                if mesh_artifact::normalize_path(&value.v) != Err(PathError::EncodedSlash)
                    && let Some(d) = unnormalized_path(&value.v, value.loc, EncodedSlashes::Reject)
                {
                    self.report(d);
                }
                if matches!(kind, K::Exact) {
                    PathMatch::Exact(value.v.clone())
                } else {
                    PathMatch::PathPrefix(value.v.clone())
                }
            }
        };
        Some(S::new(pm, value.loc))
    }

    fn bad_regex(&mut self, value: &S<String>, msg: &str) {
        let detail = msg
            .lines()
            .rev()
            .find(|l| l.starts_with("error:"))
            .unwrap_or("invalid regular expression");
        let d = Diagnostic::new(Code::InvalidRegex, format!("`{}` is not a valid regular expression", value.v))
            .at(value.loc, detail.trim_start_matches("error:").trim().to_string())
            .help("regular expressions use RE2 syntax (the Rust `regex` crate) and must match the whole value");
        self.report(d);
    }

    fn header_name_ok(&mut self, s: &S<String>) -> bool {
        if values::is_header_name(&s.v) {
            return true;
        }
        let d = Diagnostic::new(Code::InvalidHeaderName, format!("`{}` is not a valid header name", s.v))
            .at(s.loc, "invalid header name")
            .help("header names are HTTP tokens: letters, digits and ``!#$%&'*+-.^_`|~``, no spaces or `:`");
        self.report(d);
        false
    }

    /// A match's `headers` or `queryParams`: a later entry with the same name (header names
    /// compare case-insensitively, and are stored lower case) is reported and ignored, as
    /// Gateway API considers only the first.
    fn value_matches(&mut self, list: &Node<'_>, field: &str, header: bool) -> Vec<S<ValueMatch>> {
        let what = format!("matches[].{field}");
        let (kind, name_rule) = if header {
            (
                "header",
                "an equivalent header name (names are case-insensitive)",
            )
        } else {
            ("query parameter", "a query parameter name")
        };
        let mut out: Vec<S<ValueMatch>> = Vec::new();
        let items = self.seq(list, &what);
        out.reserve_exact(items.len());
        for item in items {
            let Some(v) = self.value_match(item, format_args!("{what}[]"), header) else {
                continue;
            };
            if out.iter().any(|x| x.v.name == v.v.name) {
                let d = Diagnostic::new(
                    Code::SloppyValue,
                    format!("{kind} `{}` is matched twice in one match; only the first counts", v.v.name),
                )
                .at(v.loc, format!("repeated {kind}"))
                .help(format!("Gateway API considers only the first entry of {name_rule}; remove the later one"));
                self.report(d);
                continue;
            }
            out.push(v);
        }
        out
    }

    fn value_match(
        &mut self,
        n: &Node<'_>,
        what: impl Display + Copy,
        header: bool,
    ) -> Option<S<ValueMatch>> {
        let mut o = self.obj(n, what)?;
        let kind = match o.take("type") {
            Some(t) => self.choice(
                t,
                format_args!("{what}.type"),
                &[
                    ("Exact", MatchKind::Exact),
                    ("RegularExpression", MatchKind::RegularExpression),
                ],
            ),
            None => Some(MatchKind::Exact),
        };
        let name = self.req_str(&mut o, "name", what);
        let value = match o.take("value") {
            Some(v) => self.str_lenient(v, format_args!("{what}.value")),
            None => {
                self.missing(&o, "value", format_args!("`{what}`"));
                None
            }
        };
        self.finish(o, fields::VALUE_MATCH, format_args!("`{what}`"));
        // The name and the value are each checked, whatever is wrong with the other.
        let name_ok = match &name {
            Some(name) => !header || self.header_name_ok(name),
            None => false,
        };
        let value_ok = match (&value, kind) {
            (Some(value), Some(MatchKind::RegularExpression)) => match self.regex_error(&value.v) {
                Some(e) => {
                    self.bad_regex(value, &e);
                    false
                }
                None => true,
            },
            (Some(_), Some(MatchKind::Exact)) => true,
            _ => false,
        };
        let (Some(name), Some(value), Some(kind), true, true) =
            (name, value, kind, name_ok, value_ok)
        else {
            return None;
        };
        let name_v = if header {
            name.v.to_ascii_lowercase()
        } else {
            name.v
        };
        Some(S::new(
            ValueMatch {
                name: name_v,
                kind,
                value: value.v,
            },
            self.loc(n),
        ))
    }

    fn backend_ref(&mut self, n: &Node<'_>, native: bool, route_ns: &str) -> Option<BackendRef> {
        let mut o = self.obj(n, "spec.rules[].backendRefs[]")?;
        let group = self
            .opt_str(&mut o, "group", "backendRefs[]")
            .map_or(String::new(), |g| g.v);
        let kind = self
            .opt_str(&mut o, "kind", "backendRefs[]")
            .map_or("Service".to_string(), |k| k.v);
        let name = self.req_str(&mut o, "name", "backendRefs[]");
        let (namespace, namespace_loc) = match self.opt_str(&mut o, "namespace", "backendRefs[]") {
            Some(n) => (n.v, Some(n.loc)),
            None => (route_ns.to_string(), None),
        };
        let port = self.opt_port(&mut o, "port", "backendRefs[]");
        let weight = match o.take("weight") {
            Some(w) => self
                .u32_in(w, "backendRefs[].weight", 0, 1_000_000, Code::InvalidWeight)
                .map_or(1, |w| w.v),
            None => 1,
        };
        if let Some(f) = o.take("filters") {
            let d = Diagnostic::new(
                Code::UnsupportedFilter,
                "per-backend `filters` are not supported by mesh-proxy and are ignored",
            )
            .at(self.loc(f), "ignored")
            .help("move the filters to the rule's `filters`");
            self.report(d);
        }
        let version = if native {
            self.opt_str(&mut o, "version", "backendRefs[]")
        } else {
            None
        };
        let known = if native {
            fields::MESH_BACKEND_REF
        } else {
            fields::BACKEND_REF
        };
        self.finish(o, known, "`spec.rules[].backendRefs[]`");
        let name = name?;
        Some(BackendRef {
            group,
            kind,
            namespace,
            namespace_loc,
            name: name.v,
            port,
            version,
            weight,
            loc: name.loc,
        })
    }

    fn header_modifier(
        &mut self,
        n: &Node<'_>,
        what: impl Display + Copy,
    ) -> Option<HeaderModifier> {
        let mut o = self.obj(n, what)?;
        let mut m = HeaderModifier::default();
        for (key, is_set) in [("set", true), ("add", false)] {
            if let Some(list) = o.take(key) {
                for item in self.seq(list, format_args!("{what}.{key}")) {
                    let Some(mut ho) = self.obj(item, format_args!("{what}.{key}[]")) else {
                        continue;
                    };
                    let name = self.req_str(&mut ho, "name", format_args!("{what}.{key}[]"));
                    let value = match ho.take("value") {
                        Some(v) => self.str_lenient(v, "value"),
                        None => {
                            self.missing(&ho, "value", format_args!("`{what}.{key}[]`"));
                            None
                        }
                    };
                    self.finish(ho, fields::HEADER_VALUE, format_args!("`{what}.{key}[]`"));
                    if let (Some(name), Some(value)) = (name, value) {
                        if self.header_name_ok(&name) {
                            let pair = (name.v.to_ascii_lowercase(), value.v);
                            if is_set {
                                m.set.push(pair)
                            } else {
                                m.add.push(pair)
                            }
                        }
                    }
                }
            }
        }
        if let Some(list) = o.take("remove") {
            for item in self.seq(list, format_args!("{what}.remove")) {
                if let Some(name) = self.str(item, format_args!("{what}.remove[]")) {
                    if self.header_name_ok(&name) {
                        m.remove.push(name.v.to_ascii_lowercase());
                    }
                }
            }
        }
        self.finish(o, fields::HEADER_MODIFIER, format_args!("`{what}`"));
        Some(m)
    }

    fn path_modifier(&mut self, n: &Node<'_>, what: impl Display + Copy) -> Option<PathModifier> {
        let mut o = self.obj(n, what)?;
        #[derive(Clone, Copy)]
        enum K {
            Full,
            Prefix,
        }
        let kind = match o.take("type") {
            Some(t) => self.choice(
                t,
                format_args!("{what}.type"),
                &[
                    ("ReplaceFullPath", K::Full),
                    ("ReplacePrefixMatch", K::Prefix),
                ],
            ),
            None => {
                self.missing(&o, "type", format_args!("`{what}`"));
                None
            }
        };
        let full = self.opt_str(&mut o, "replaceFullPath", what);
        let prefix = self.opt_str(&mut o, "replacePrefixMatch", what);
        self.finish(o, fields::PATH_MODIFIER, format_args!("`{what}`"));
        let (field, value) = match kind? {
            K::Full => ("replaceFullPath", full),
            K::Prefix => ("replacePrefixMatch", prefix),
        };
        let Some(value) = value else {
            let d = Diagnostic::new(
                Code::MissingField,
                format!("missing field `{field}` in `{what}`"),
            )
            .at(self.loc(n), format!("`{field}` is required by this `type`"));
            self.report(d);
            return None;
        };
        // Gateway API defines an empty `replacePrefixMatch`: the matched prefix is removed
        // (`/foo/bar` under `/foo` becomes `/bar`, `/foo` becomes `/`).
        let empty_prefix = matches!(kind, Some(K::Prefix)) && value.v.is_empty();
        if let Err(why) = values::check_path(&value.v)
            && !empty_prefix
        {
            let d = Diagnostic::new(
                Code::InvalidPath,
                format!("`{}` is not a valid path", value.v),
            )
            .at(value.loc, why);
            self.report(d);
            return None;
        }
        Some(match kind? {
            K::Full => PathModifier::ReplaceFullPath(value.v),
            K::Prefix => PathModifier::ReplacePrefixMatch(value.v),
        })
    }

    fn filter(&mut self, n: &Node<'_>) -> Option<Filter> {
        let mut o = self.obj(n, "spec.rules[].filters[]")?;
        let loc = self.loc(n);
        let types = [
            ("RequestHeaderModifier", "requestHeaderModifier"),
            ("ResponseHeaderModifier", "responseHeaderModifier"),
            ("RequestRedirect", "requestRedirect"),
            ("URLRewrite", "urlRewrite"),
            ("RequestMirror", "requestMirror"),
            ("ExtensionRef", "extensionRef"),
            ("CORS", "cors"),
            ("ExternalAuth", "externalAuth"),
        ];
        let options: Vec<(&str, &str)> = types.iter().map(|(t, f)| (*t, *f)).collect();
        let ty = match o.take("type") {
            Some(t) => self.choice(t, "filters[].type", &options),
            None => {
                self.missing(&o, "type", "`filters[]`");
                None
            }
        };
        let Some(field) = ty else {
            for (_, f) in &types {
                let _ = o.take(f);
            }
            self.finish(o, fields::FILTER, "`spec.rules[].filters[]`");
            return None;
        };
        let body = o.take(field);
        for (_, f) in &types {
            if *f != field && o.take(f).is_some() {
                if let Some(span) = o.key_loc(f) {
                    let d = Diagnostic::new(
                        Code::ConflictingFilters,
                        format!("`{f}` does not go with a filter of this `type`"),
                    )
                    .primary(self.file, span, "ignored by this filter type")
                    .help(format!(
                        "this filter's `type` uses `{field}`; put `{f}` in a filter of its own"
                    ));
                    self.report(d);
                }
            }
        }
        self.finish(o, fields::FILTER, "`spec.rules[].filters[]`");
        let what = format!("filters[].{field}");
        let need = |this: &mut Self| -> Option<&Node<'_>> {
            if body.is_none() {
                let d = Diagnostic::new(
                    Code::MissingField,
                    format!("missing field `{field}` in `filters[]`"),
                )
                .at(loc, format!("`{field}` is required by this `type`"));
                this.report(d);
            }
            body
        };
        let kind = match field {
            "requestHeaderModifier" => {
                let b = need(self)?;
                FilterKind::RequestHeaders(self.header_modifier(b, &what)?)
            }
            "responseHeaderModifier" => {
                let b = need(self)?;
                FilterKind::ResponseHeaders(self.header_modifier(b, &what)?)
            }
            "requestRedirect" => {
                let b = need(self)?;
                FilterKind::Redirect(self.redirect(b, &what)?)
            }
            "urlRewrite" => {
                let b = need(self)?;
                FilterKind::Rewrite(self.rewrite(b, &what)?)
            }
            other => {
                let d = Diagnostic::new(Code::UnsupportedFilter, format!("filter `{other}` is not supported by mesh-proxy and is ignored"))
                    .at(loc, "ignored")
                    .help("supported filters: `RequestHeaderModifier`, `ResponseHeaderModifier`, `RequestRedirect`, `URLRewrite`");
                self.report(d);
                FilterKind::Unsupported(other.to_string())
            }
        };
        Some(Filter { kind, loc })
    }

    fn redirect(&mut self, n: &Node<'_>, what: impl Display + Copy) -> Option<Redirect> {
        let mut o = self.obj(n, what)?;
        let scheme = o.take("scheme").and_then(|s| {
            self.choice(
                s,
                format_args!("{what}.scheme"),
                &[("http", "http"), ("https", "https")],
            )
        });
        let hostname = self.opt_str(&mut o, "hostname", what);
        if let Some(h) = &hostname {
            if !values::is_valid_host(&h.v) {
                let d = Diagnostic::new(
                    Code::InvalidHostname,
                    format!("`{}` is not a valid hostname", h.v),
                )
                .at(h.loc, "invalid hostname");
                self.report(d);
            }
        }
        let path = o
            .take("path")
            .and_then(|p| self.path_modifier(p, format_args!("{what}.path")));
        let port = self.opt_port(&mut o, "port", what);
        let status = match o.take("statusCode") {
            Some(s) => self
                .int(s, format_args!("{what}.statusCode"))
                .and_then(|i| {
                    if [301, 302, 303, 307, 308].contains(&i.v) {
                        return u16::try_from(i.v).ok();
                    }
                    let d = Diagnostic::new(
                        Code::InvalidStatus,
                        format!("`{}` is not a redirect status code", i.v),
                    )
                    .at(i.loc, "not a redirect status")
                    .help("use 301 or 302 (core), or 303, 307, 308 (extended)");
                    self.report(d);
                    None
                }),
            None => Some(302),
        };
        self.finish(o, fields::REDIRECT, format_args!("`{what}`"));
        let status = status?;
        Some(Redirect {
            scheme: scheme.map(str::to_string),
            hostname: hostname.map(|h| h.v.to_ascii_lowercase()),
            port: port.map(|p| p.v),
            path,
            status,
        })
    }

    fn rewrite(&mut self, n: &Node<'_>, what: impl Display + Copy) -> Option<UrlRewrite> {
        let mut o = self.obj(n, what)?;
        let hostname = self.opt_str(&mut o, "hostname", what);
        let path = o
            .take("path")
            .and_then(|p| self.path_modifier(p, format_args!("{what}.path")));
        self.finish(o, fields::REWRITE, format_args!("`{what}`"));
        Some(UrlRewrite {
            hostname: hostname.map(|h| h.v.to_ascii_lowercase()),
            path,
        })
    }
}

#[derive(Debug, Clone)]
pub struct Meta {
    pub name: S<String>,
    pub namespace: S<String>,
    pub creation_timestamp: Option<String>,
    /// A `creationTimestamp` was given but is invalid.
    pub unknown_age: bool,
}

/// How far a resource's metadata is valid (each problem is reported).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum MetaValidity {
    Valid,
    /// The name is present but not a valid name of its kind.
    InvalidName,
    /// No name, an invalid namespace, or metadata that is not a mapping.
    Unusable,
}

impl Meta {
    /// Stands in for metadata that is missing or not a mapping, so that the spec can still be
    /// decoded (and its problems reported); the resource is then left out of the model.
    fn placeholder(namespace: &str, loc: Loc) -> Self {
        Meta {
            name: S::new(String::new(), loc),
            namespace: S::new(namespace.to_string(), loc),
            creation_timestamp: None,
            unknown_age: false,
        }
    }
}
