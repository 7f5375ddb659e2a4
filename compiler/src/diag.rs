//! Diagnostics: stable codes, severities, labels.
//!
//! Every check in meshc reports through [`Diagnostic`]. Codes are stable once published; each has
//! an entry in [`CODES`] with an explanation and a bad and a fixed example, from which
//! `docs/diagnostics.md` is generated (a test keeps the committed page identical).

use crate::source::{FileId, Loc, Span};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Note,
    Warning,
    Error,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Note => "note",
        }
    }
}

macro_rules! codes {
    ($( $variant:ident = $code:literal, $slug:literal, $sev:ident, $summary:literal; )*) => {
        /// A stable diagnostic code.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Code { $( $variant, )* }

        impl Code {
            pub const ALL: &'static [Code] = &[ $( Code::$variant, )* ];

            /// `MC0101`.
            pub fn as_str(self) -> &'static str {
                match self { $( Code::$variant => $code, )* }
            }
            /// `unknown-field`.
            pub fn slug(self) -> &'static str {
                match self { $( Code::$variant => $slug, )* }
            }
            /// Default severity.
            pub fn severity(self) -> Severity {
                match self { $( Code::$variant => Severity::$sev, )* }
            }
            /// One-line summary, used as the SARIF rule's short description.
            pub fn summary(self) -> &'static str {
                match self { $( Code::$variant => $summary, )* }
            }
        }
    };
}

codes! {
    // Input and YAML syntax.
    YamlSyntax = "MC0001", "yaml-syntax", Error, "the file is not valid YAML";
    DuplicateKey = "MC0002", "duplicate-key", Error, "a mapping has the same key twice";
    ResourceBudget = "MC0003", "resource-budget", Error, "the input exceeds a size, depth or alias limit";
    Unreadable = "MC0004", "unreadable-input", Error, "a file or directory cannot be read, or is not UTF-8 text";
    NoInput = "MC0005", "no-input", Error, "the directory holds no mesh definition";
    SkippedKind = "MC0006", "skipped-kind", Note, "documents of a kind meshc does not read are skipped";
    NotAResource = "MC0007", "not-a-resource", Error, "a document is not a resource with `apiVersion` and `kind`";
    UnknownApiVersion = "MC0008", "unknown-api-version", Error, "a known kind has an apiVersion meshc does not read";
    UnknownKind = "MC0009", "unknown-kind", Error, "a document of meshc's own apiVersion has a kind meshc does not define";
    MisspeltKind = "MC0010", "misspelt-kind", Warning, "a skipped document's kind is a near miss of a kind meshc reads";
    WideMesh = "MC0011", "wide-mesh", Warning, "sidecars without `egress` carry every service, and the build grows with the square of the mesh";
    UncertainAppPort = "MC0012", "uncertain-app-port", Warning, "a Service's `targetPort` names a container port, whose number meshc cannot know";
    NotMeshed = "MC0013", "not-meshed", Warning, "a Service port or Service that sidecars do not carry (UDP or SCTP, ExternalName) is left out of the mesh";
    InvalidMerge = "MC0014", "invalid-merge", Error, "a YAML merge key `<<` has a value that is not a mapping or a list of mappings";
    // Schema.
    UnknownField = "MC0101", "unknown-field", Error, "a field is not part of the resource's schema";
    WrongType = "MC0102", "wrong-type", Error, "a value has the wrong type";
    MissingField = "MC0103", "missing-field", Error, "a required field is missing";
    InvalidValue = "MC0104", "invalid-value", Error, "a value is not one of the allowed values";
    InvalidName = "MC0105", "invalid-name", Error, "a name is not a valid Kubernetes name";
    SloppyValue = "MC0106", "sloppy-value", Warning, "a value is accepted but written in a form that is easy to misread";
    // Values.
    InvalidPort = "MC0201", "invalid-port", Error, "a port is outside 1-65535";
    InvalidDuration = "MC0202", "invalid-duration", Error, "a duration is not in Gateway API form";
    InvalidRegex = "MC0203", "invalid-regex", Error, "a regular expression does not compile";
    InvalidHeaderName = "MC0204", "invalid-header-name", Error, "a header name is not a valid HTTP token";
    InvalidPath = "MC0205", "invalid-path", Error, "a path does not start with `/` or has invalid characters";
    InvalidMethod = "MC0206", "invalid-method", Error, "an HTTP method is not one Gateway API allows";
    InvalidStatus = "MC0207", "invalid-status", Error, "a status code is not allowed here";
    InvalidTimestamp = "MC0208", "invalid-timestamp", Error, "a timestamp is not RFC 3339";
    InvalidWeight = "MC0209", "invalid-weight", Error, "a backend weight is outside 0-1000000";
    InvalidHostname = "MC0210", "invalid-hostname", Error, "a hostname or address is not valid";
    // References.
    UnknownService = "MC0301", "unknown-service", Error, "a reference names a service that does not exist";
    UnknownPort = "MC0302", "unknown-port", Error, "a reference names a port the service does not have";
    UnknownNamespace = "MC0303", "unknown-namespace", Error, "a reference names a namespace with no services";
    PortRequired = "MC0304", "port-required", Error, "a backend of a multi-port service names no port";
    UnknownVersion = "MC0305", "unknown-version", Error, "a backend names a version the service does not define";
    ParentNotService = "MC0306", "parent-not-service", Warning, "a route's parent is not a Service, so the route attaches to nothing in the mesh";
    UnknownEgress = "MC0307", "unknown-egress", Error, "egress names a service that does not exist";
    RefNotPermitted = "MC0308", "ref-not-permitted", Error, "a route's backend in another namespace is not allowed by a `ReferenceGrant` there";
    // Duplicates and conflicts.
    DuplicateResource = "MC0401", "duplicate-resource", Error, "two resources have the same kind, namespace and name";
    DuplicatePort = "MC0402", "duplicate-port", Error, "a service declares the same port or port name twice";
    MultipleMeshes = "MC0403", "multiple-meshes", Error, "more than one `Mesh` resource";
    DuplicateMatch = "MC0404", "duplicate-match", Warning, "two routes of the same parent have identical matches";
    DuplicateSidecar = "MC0405", "duplicate-sidecar", Error, "two `Sidecar` resources configure the same service";
    ListenerConflict = "MC0406", "listener-conflict", Error, "sidecar listener ports collide with each other or with the application";
    HostnameConflict = "MC0407", "hostname-conflict", Error, "a route hostname is another service's name, or routes of different services declare the same hostname";
    // Semantics.
    ZeroWeights = "MC0501", "zero-weights", Warning, "every backend of a rule has weight 0, so the rule answers 500";
    RetryWithoutBudget = "MC0502", "retry-without-budget", Warning, "a retry policy has no retry budget";
    PerTryTimeoutTooLong = "MC0503", "per-try-timeout-too-long", Error, "a per-try timeout is longer than the request timeout";
    ShadowedMatch = "MC0504", "shadowed-match", Warning, "a match can never be selected because a higher-precedence match always wins";
    UnsupportedFilter = "MC0505", "unsupported-filter", Warning, "a filter type is not supported by mesh-proxy and is ignored";
    ConflictingFilters = "MC0506", "conflicting-filters", Error, "a rule combines filters that cannot be used together";
    PrefixRewriteWithoutPrefix = "MC0507", "prefix-rewrite-without-prefix", Error, "`ReplacePrefixMatch` is used on a rule without a single `PathPrefix` match";
    NoBackends = "MC0509", "no-backends", Warning, "a rule has neither backends nor a redirect";
    UnnormalizedPath = "MC0510", "unnormalized-path", Warning, "a path match is not in the normal form mesh-proxy puts request paths in, so it never matches";
    // Cedar policies.
    CedarSyntax = "MC0601", "cedar-syntax", Error, "a `.cedar` file does not parse";
    CedarValidation = "MC0602", "cedar-validation", Error, "a Cedar policy fails strict validation against the mesh's schema";
    CedarUnknownEntity = "MC0603", "cedar-unknown-entity", Error, "a Cedar policy names a service, workload or namespace the mesh lacks";
    CedarDuplicateId = "MC0604", "cedar-duplicate-id", Error, "two Cedar policies have the same id";
    CedarUnknownAction = "MC0605", "cedar-unknown-action", Error, "a Cedar policy names an action the mesh lacks";
    CedarOther = "MC0606", "cedar-other", Error, "a Cedar policy uses a feature meshc cannot use (templates)";
    CedarUnknownEntityType = "MC0607", "cedar-unknown-entity-type", Error, "a Cedar policy names an entity type the mesh's schema lacks";
    CedarUnknownAttribute = "MC0608", "cedar-unknown-attribute", Error, "a Cedar policy reads an attribute or header the schema lacks";
    CedarUnguardedOptional = "MC0609", "cedar-unguarded-optional", Error, "a Cedar policy reads an optional attribute without testing it with `has`";
    CedarWarning = "MC0610", "cedar-warning", Warning, "Cedar's validator warns about a policy";
    CedarInvalidId = "MC0611", "cedar-invalid-id", Error, "an `@id` annotation is empty or holds whitespace";
}

impl Code {
    /// Find a code by its `MCxxxx` text.
    pub fn parse(s: &str) -> Option<Code> {
        Code::ALL
            .iter()
            .copied()
            .find(|c| c.as_str().eq_ignore_ascii_case(s))
    }
}

/// A labelled place in the input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Label {
    pub loc: Loc,
    pub message: String,
}

/// One problem found in the input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub code: Code,
    pub severity: Severity,
    /// Lower case, no final period; user input in backticks.
    pub message: String,
    /// Where the problem is. `None` only for problems without a place (an empty directory).
    pub primary: Option<Label>,
    /// Other places that explain it (the shadowing rule, the first duplicate, ...).
    pub secondary: Vec<Label>,
    pub help: Option<String>,
}

impl Diagnostic {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Diagnostic {
            code,
            severity: code.severity(),
            message: message.into(),
            primary: None,
            secondary: Vec::new(),
            help: None,
        }
    }

    pub fn primary(mut self, file: FileId, span: Span, label: impl Into<String>) -> Self {
        self.primary = Some(Label {
            loc: Loc { file, span },
            message: label.into(),
        });
        self
    }

    pub fn at(self, loc: Loc, label: impl Into<String>) -> Self {
        self.primary(loc.file, loc.span, label)
    }

    pub fn secondary(mut self, loc: Loc, label: impl Into<String>) -> Self {
        self.secondary.push(Label {
            loc,
            message: label.into(),
        });
        self
    }

    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    pub fn severity(mut self, severity: Severity) -> Self {
        self.severity = severity;
        self
    }

    /// Sort key: file, position, code; so output order is stable.
    pub fn sort_key(&self) -> (u32, usize, usize, Code, String) {
        match &self.primary {
            Some(l) => (
                l.loc.file.0,
                l.loc.span.start,
                l.loc.span.end,
                self.code,
                self.message.clone(),
            ),
            None => (0, 0, 0, self.code, self.message.clone()),
        }
    }
}

/// `did you mean` for a name close to one of the candidates. Names compare case-insensitively: a
/// candidate that differs from `name` only in case is the best suggestion (`get` -> `GET`).
pub fn suggest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let lower = name.to_ascii_lowercase();
    let mut best: Option<(f64, &'a str)> = None;
    for c in candidates {
        if c == name {
            continue;
        }
        if c.eq_ignore_ascii_case(name) {
            return Some(c);
        }
        let score = strsim::jaro_winkler(&lower, &c.to_ascii_lowercase());
        let close = score >= 0.84
            || (strsim::levenshtein(&lower, &c.to_ascii_lowercase()) <= 2 && name.len() > 2);
        if close && best.is_none_or(|(s, _)| score > s) {
            best = Some((score, c));
        }
    }
    best.map(|(_, c)| c)
}

/// `did you mean `x`?` text, or `None`.
pub fn did_you_mean<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    suggest(name, candidates).map(|s| format!("did you mean `{s}`?"))
}

/// Counts per severity.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Summary {
    pub errors: usize,
    pub warnings: usize,
    pub notes: usize,
}

impl Summary {
    pub fn of(diags: &[Diagnostic]) -> Self {
        let mut s = Summary::default();
        for d in diags {
            match d.severity {
                Severity::Error => s.errors += 1,
                Severity::Warning => s.warnings += 1,
                Severity::Note => s.notes += 1,
            }
        }
        s
    }
}
