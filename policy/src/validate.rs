//! Parsing and strict validation of `*.cedar` sources.
//!
//! [`validate`] parses every file with Cedar, gives every policy a stable id, validates the
//! whole set strictly against the schema generated from the mesh ([`crate::model::schema_text`])
//! and checks that entity literals name workloads, services and namespaces the mesh has. Every
//! problem becomes a [`PolicyDiagnostic`] with a byte span into the file it came from and keeps
//! Cedar's own help text.

use std::collections::{BTreeSet, HashMap};
use std::str::FromStr;

use cedar_policy::{PolicyId, Schema, ValidationMode, Validator};
use cedar_policy_core::ast;
use miette::Diagnostic;

use crate::model::{
    NAMESPACE_TYPE, PolicyModel, READ_GROUP, SERVICE_TYPE, UNKNOWN_WORKLOAD_ID, WORKLOAD_TYPE,
    WRITE_GROUP, schema_text,
};
use crate::slice::SliceIndex;

/// Severity of a policy diagnostic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    Error,
    Warning,
}

/// A problem in a `.cedar` file, with a byte span into that file's text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyDiagnostic {
    /// Stable meshc code, e.g. `MC0601`.
    pub code: &'static str,
    pub severity: Severity,
    pub message: String,
    /// Index into the `sources` slice given to `validate`.
    pub file: usize,
    /// Byte range of the primary label.
    pub span: (usize, usize),
    pub label: Option<String>,
    pub help: Option<String>,
}

/// The stable codes of policy diagnostics.
pub mod codes {
    /// A `.cedar` file does not parse.
    pub const SYNTAX: &str = "MC0601";
    /// A policy fails strict validation (type errors and the like).
    pub const VALIDATION: &str = "MC0602";
    /// An entity literal names a workload, service or namespace the mesh lacks.
    pub const UNKNOWN_ENTITY: &str = "MC0603";
    /// Two policies have the same id.
    pub const DUPLICATE_ID: &str = "MC0604";
    /// A policy names an action the schema lacks.
    pub const UNKNOWN_ACTION: &str = "MC0605";
    /// Templates, and anything else meshc cannot use.
    pub const OTHER: &str = "MC0606";
    /// A policy names an entity type the schema lacks.
    pub const UNKNOWN_ENTITY_TYPE: &str = "MC0607";
    /// A policy reads an attribute (or header) the schema lacks.
    pub const UNKNOWN_ATTRIBUTE: &str = "MC0608";
    /// A policy reads an optional attribute (a header) without testing it with `has`.
    pub const UNGUARDED_OPTIONAL: &str = "MC0609";
    /// Cedar's validator warns (a policy that can never apply, confusable text).
    pub const WARNING: &str = "MC0610";
    /// An `@id` annotation is empty or holds whitespace or control characters.
    pub const INVALID_ID: &str = "MC0611";
}

/// Description of one policy diagnostic code, for the compiler's code registry and docs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CodeInfo {
    pub code: &'static str,
    pub slug: &'static str,
    pub severity: Severity,
    pub summary: &'static str,
}

/// Every code this crate emits. `policy/README.md` documents each with an example.
pub const CODES: &[CodeInfo] = &[
    CodeInfo {
        code: codes::SYNTAX,
        slug: "cedar-syntax",
        severity: Severity::Error,
        summary: "a `.cedar` file does not parse",
    },
    CodeInfo {
        code: codes::VALIDATION,
        slug: "cedar-validation",
        severity: Severity::Error,
        summary: "a Cedar policy fails strict validation against the mesh's schema",
    },
    CodeInfo {
        code: codes::UNKNOWN_ENTITY,
        slug: "cedar-unknown-entity",
        severity: Severity::Error,
        summary: "a Cedar policy names a service, workload or namespace the mesh lacks",
    },
    CodeInfo {
        code: codes::DUPLICATE_ID,
        slug: "cedar-duplicate-id",
        severity: Severity::Error,
        summary: "two Cedar policies have the same id",
    },
    CodeInfo {
        code: codes::UNKNOWN_ACTION,
        slug: "cedar-unknown-action",
        severity: Severity::Error,
        summary: "a Cedar policy names an action the mesh lacks",
    },
    CodeInfo {
        code: codes::OTHER,
        slug: "cedar-other",
        severity: Severity::Error,
        summary: "a Cedar construct meshc does not support, such as a template",
    },
    CodeInfo {
        code: codes::UNKNOWN_ENTITY_TYPE,
        slug: "cedar-unknown-entity-type",
        severity: Severity::Error,
        summary: "a Cedar policy names an entity type the mesh's schema lacks",
    },
    CodeInfo {
        code: codes::UNKNOWN_ATTRIBUTE,
        slug: "cedar-unknown-attribute",
        severity: Severity::Error,
        summary: "a Cedar policy reads an attribute or header the mesh's schema lacks",
    },
    CodeInfo {
        code: codes::UNGUARDED_OPTIONAL,
        slug: "cedar-unguarded-optional",
        severity: Severity::Error,
        summary: "a Cedar policy reads an optional attribute, such as a header, without `has`",
    },
    CodeInfo {
        code: codes::WARNING,
        slug: "cedar-warning",
        severity: Severity::Warning,
        summary: "Cedar's validator warns about a policy, for example one that can never apply",
    },
    CodeInfo {
        code: codes::INVALID_ID,
        slug: "cedar-invalid-id",
        severity: Severity::Error,
        summary: "an `@id` annotation is empty or holds whitespace or control characters",
    },
];

/// `permit` or `forbid`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Effect {
    Permit,
    Forbid,
}

/// One parsed policy and where it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyEntry {
    /// Stable id: the `@id` annotation, or `<file>:<line>:<column>`.
    pub id: String,
    /// Index into the `sources` given to [`validate`].
    pub file: usize,
    /// Byte range of the whole policy (annotations included) in its file.
    pub span: (usize, usize),
    /// 1-based line of the policy's first character.
    pub line: u32,
    /// 1-based column (in characters) of the policy's first character.
    pub column: u32,
    /// The policy's source text, exactly as written.
    pub text: String,
    pub effect: Effect,
}

/// A validated set of policies with stable ids.
///
/// It holds every policy that parsed and whose id is unique, including policies that failed
/// validation: callers decide from the diagnostics whether to use it (`meshc build` refuses to
/// on any error).
#[derive(Clone, Debug, Default)]
pub struct PolicySet {
    cedar: cedar_policy::PolicySet,
    /// In source order: by file index, then by position.
    entries: Vec<PolicyEntry>,
    by_id: HashMap<String, usize>,
    /// Built on first use: only slicing needs it.
    slice: std::sync::OnceLock<SliceIndex>,
}

impl PolicySet {
    /// The Cedar policy set; each policy's Cedar id is its stable id.
    pub fn cedar(&self) -> &cedar_policy::PolicySet {
        &self.cedar
    }

    /// Every policy, in source order (file index, then position).
    pub fn entries(&self) -> &[PolicyEntry] {
        &self.entries
    }

    /// The policy with this stable id.
    pub fn get(&self, id: &str) -> Option<&PolicyEntry> {
        self.by_id.get(id).and_then(|&i| self.entries.get(i))
    }

    /// The Cedar policy with this stable id.
    pub fn cedar_policy(&self, id: &str) -> Option<&cedar_policy::Policy> {
        self.cedar.policy(&PolicyId::new(id))
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub(crate) fn slice_index(&self) -> &SliceIndex {
        self.slice
            .get_or_init(|| SliceIndex::build(&self.entries, &self.cedar))
    }
}

/// Parse and strictly validate `.cedar` sources against the mesh's schema.
///
/// `sources` are `(file name, text)` pairs; the file name is used in generated policy ids
/// (`<file>:<line>:<column>`), diagnostics refer to files by their index in `sources`.
/// Diagnostics are sorted by file, position and code.
/// `.cedar` files parsed ahead of validation. Parsing needs no mesh model, so a caller can parse
/// policies while it is still reading the rest of the mesh definition, and hand the result to
/// [`validate_parsed`].
#[derive(Debug, Default)]
pub struct Parsed {
    /// Byte length of each file parsed, to recognise the same sources later.
    lengths: Vec<usize>,
    files: Vec<Result<cedar_policy::PolicySet, Box<cedar_policy::ParseErrors>>>,
}

impl Parsed {
    /// Parse every file, one after the other on the calling thread.
    pub fn new(sources: &[(String, String)]) -> Self {
        Parsed {
            lengths: sources.iter().map(|(_, t)| t.len()).collect(),
            files: sources.iter().map(|(_, text)| parse_one(text)).collect(),
        }
    }

    /// Parse every file, on every core.
    fn on_all_cores(sources: &[(String, String)]) -> Self {
        Parsed {
            lengths: sources.iter().map(|(_, t)| t.len()).collect(),
            files: on_threads(sources, |(_, text)| parse_one(text)),
        }
    }

    fn matches(&self, sources: &[(String, String)]) -> bool {
        self.lengths.len() == sources.len()
            && self
                .lengths
                .iter()
                .zip(sources)
                .all(|(n, (_, t))| *n == t.len())
    }
}

fn parse_one(text: &str) -> Result<cedar_policy::PolicySet, Box<cedar_policy::ParseErrors>> {
    cedar_policy::PolicySet::from_str(text).map_err(Box::new)
}

pub fn validate(
    model: &PolicyModel,
    sources: &[(String, String)],
) -> (PolicySet, Vec<PolicyDiagnostic>) {
    validate_parsed(model, sources, Parsed::on_all_cores(sources))
}

/// [`validate`] with the files already parsed by [`Parsed::new`] from the same `sources` (they
/// are parsed again if they do not look like the same files).
pub fn validate_parsed(
    model: &PolicyModel,
    sources: &[(String, String)],
    parsed: Parsed,
) -> (PolicySet, Vec<PolicyDiagnostic>) {
    let parsed = if parsed.matches(sources) {
        parsed
    } else {
        Parsed::on_all_cores(sources)
    };
    let mut diags = Vec::new();
    let schema = match Schema::from_cedarschema_str(&schema_text(model)) {
        Ok((schema, _warnings)) => Some(schema),
        Err(err) => {
            if !sources.is_empty() {
                diags.push(PolicyDiagnostic {
                    code: codes::OTHER,
                    severity: Severity::Error,
                    message: format!(
                        "internal error: the generated Cedar schema is invalid: {err}"
                    ),
                    file: 0,
                    span: (0, 0),
                    label: None,
                    help: Some("this is a bug in meshc; please report it".into()),
                });
            }
            None
        }
    };
    let known = Known::new(model);
    let headers = model.policy_headers();
    // Policies with an error found here rather than by Cedar's validator.
    let mut own_errors: BTreeSet<String> = BTreeSet::new();

    let mut entries: Vec<PolicyEntry> = Vec::new();
    let mut policies: Vec<cedar_policy::Policy> = Vec::new();
    let mut by_id: HashMap<String, usize> = HashMap::new();

    for (file, ((name, text), parsed)) in sources.iter().zip(parsed.files).enumerate() {
        let lines = LineIndex::new(text);
        let parsed = match parsed {
            Ok(parsed) => parsed,
            Err(errs) => {
                for err in errs.iter() {
                    diags.push(from_miette(codes::SYNTAX, Severity::Error, file, err, None));
                }
                continue;
            }
        };
        for template in parsed.templates() {
            let span = loc_span(template.as_ref().loc()).unwrap_or((0, 0));
            diags.push(PolicyDiagnostic {
                code: codes::OTHER,
                severity: Severity::Error,
                message: "policy templates are not supported".into(),
                file,
                span,
                label: Some("this policy has a `?principal` or `?resource` slot".into()),
                help: Some(
                    "meshc has no template links: write a static policy that names the entity, \
                     e.g. `principal == Workload::\"namespace/name\"`"
                        .into(),
                ),
            });
        }
        let mut in_file: Vec<&cedar_policy::Policy> = parsed.policies().collect();
        in_file.sort_by_key(|p| loc_span(p.as_ref().loc()).map_or(0, |s| s.0));
        for policy in in_file {
            let span = loc_span(policy.as_ref().loc()).unwrap_or((0, 0));
            let (line, column) = lines.line_col(text, span.0);
            let auto_id = format!("{name}:{line}:{column}");
            let id_annotation = policy
                .as_ref()
                .annotations()
                .find(|(k, _)| AsRef::<str>::as_ref(*k) == "id")
                .map(|(_, a)| (a.val.to_string(), loc_span(a.loc.as_ref()).unwrap_or(span)));
            let id = match id_annotation {
                Some((value, ann_span)) => {
                    match id_problem(&value) {
                        None => value,
                        Some(problem) => {
                            diags.push(PolicyDiagnostic {
                            code: codes::INVALID_ID,
                            severity: Severity::Error,
                            message: format!("invalid policy id `{}`: {problem}", value.escape_debug()),
                            file,
                            span: ann_span,
                            label: Some("this `@id` annotation".into()),
                            help: Some(
                                "a policy id is a non-empty name without whitespace or control \
                                 characters, e.g. `@id(\"reviews-read-ratings\")`"
                                    .into(),
                            ),
                        });
                            auto_id
                        }
                    }
                }
                None => auto_id,
            };
            if let Some(&first) = by_id.get(&id) {
                let first_at = entries.get(first).map_or_else(String::new, |e| {
                    let first_name = sources.get(e.file).map_or("", |(n, _)| n.as_str());
                    format!("{first_name}:{}:{}", e.line, e.column)
                });
                diags.push(PolicyDiagnostic {
                    code: codes::DUPLICATE_ID,
                    severity: Severity::Error,
                    message: format!("duplicate policy id `{id}`"),
                    file,
                    span,
                    label: Some("this policy is ignored".into()),
                    help: Some(format!(
                        "the policy at {first_at} already has the id `{id}`; give each policy a \
                         unique `@id(\"...\")` annotation"
                    )),
                });
                continue;
            }
            diags.extend(known.check_literals(policy, file));
            let header_diags = check_header_tests(policy, file, &headers);
            if !header_diags.is_empty() {
                own_errors.insert(id.clone());
                diags.extend(header_diags);
            }
            let text_of = text.get(span.0..span.1).unwrap_or_default().to_string();
            let effect = match policy.effect() {
                cedar_policy::Effect::Permit => Effect::Permit,
                cedar_policy::Effect::Forbid => Effect::Forbid,
            };
            by_id.insert(id.clone(), entries.len());
            policies.push(policy.new_id(PolicyId::new(&id)));
            entries.push(PolicyEntry {
                id,
                file,
                span,
                line: u32::try_from(line).unwrap_or(u32::MAX),
                column: u32::try_from(column).unwrap_or(u32::MAX),
                text: text_of,
                effect,
            });
        }
    }

    let cedar = match cedar_policy::PolicySet::from_policies(policies.iter().cloned()) {
        Ok(set) => set,
        Err(err) => {
            // Ids are unique by construction; report rather than panic.
            diags.push(PolicyDiagnostic {
                code: codes::OTHER,
                severity: Severity::Error,
                message: format!("internal error: cannot assemble the policy set: {err}"),
                file: 0,
                span: (0, 0),
                label: None,
                help: Some("this is a bug in meshc; please report it".into()),
            });
            cedar_policy::PolicySet::new()
        }
    };

    if let Some(schema) = schema {
        let validator = Validator::new(schema);
        // Policies type-check independently. Policies that differ only in the ids of
        // non-action entities (and in annotations, spacing and comments) type-check alike, so
        // one of each shape is validated first; the others of a shape are validated too only
        // when that one drew an error or a warning, so that each gets its own messages.
        let shapes = Shapes::of(entries.iter().map(|e| e.text.as_str()));
        let mut results = validate_in_parts(&validator, &policies, &shapes.first);
        let with_messages: BTreeSet<&str> = results
            .iter()
            .flat_map(|r| {
                r.validation_errors()
                    .map(|e| AsRef::<str>::as_ref(e.policy_id()))
                    .chain(
                        r.validation_warnings()
                            .map(|w| AsRef::<str>::as_ref(w.policy_id())),
                    )
            })
            .collect();
        let flagged: BTreeSet<usize> = shapes
            .first
            .iter()
            .copied()
            .filter(|&i| {
                entries
                    .get(i)
                    .is_some_and(|e| with_messages.contains(e.id.as_str()))
            })
            .collect();
        let again: Vec<usize> = shapes
            .same_as
            .iter()
            .filter(|(_, first)| flagged.contains(first))
            .map(|&(i, _)| i)
            .collect();
        results.extend(validate_in_parts(&validator, &policies, &again));
        for err in results.iter().flat_map(|r| r.validation_errors()) {
            let Some(entry) = by_id
                .get(AsRef::<str>::as_ref(err.policy_id()))
                .and_then(|&i| entries.get(i))
            else {
                continue;
            };
            use cedar_policy::ValidationError as E;
            let code = match err {
                E::UnrecognizedEntityType(_) => codes::UNKNOWN_ENTITY_TYPE,
                E::UnrecognizedActionId(_) => codes::UNKNOWN_ACTION,
                E::UnsafeAttributeAccess(_) => codes::UNKNOWN_ATTRIBUTE,
                E::UnsafeOptionalAttributeAccess(_) => codes::UNGUARDED_OPTIONAL,
                _ => codes::VALIDATION,
            };
            let mut d = from_miette(code, Severity::Error, entry.file, err, Some(entry));
            d.message = tidy_message(&d.message, &entry.id);
            d.help = d.help.map(|h| tidy_message(&h, &entry.id));
            if code == codes::UNKNOWN_ATTRIBUTE && d.message.contains("`headers") {
                let visible = if headers.is_empty() {
                    "the mesh makes no header visible to policy".to_string()
                } else {
                    format!(
                        "headers visible to policy: {}",
                        headers
                            .iter()
                            .map(|h| format!("`{h}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                };
                d.help = Some(match d.help.take() {
                    Some(h) => format!("{h} ({visible})"),
                    None => visible,
                });
            }
            diags.push(d);
        }
        // Warnings about a policy that already has a validation error are consequences of it
        // (an unknown type makes a policy "impossible"): keep only the error. "No action
        // applies" already says the policy is impossible: keep only that one.
        let mut with_errors: BTreeSet<String> = results
            .iter()
            .flat_map(|r| r.validation_errors())
            .map(|e| AsRef::<str>::as_ref(e.policy_id()).to_string())
            .collect();
        with_errors.extend(own_errors);
        let no_action: BTreeSet<String> = results
            .iter()
            .flat_map(|r| r.validation_warnings())
            .filter(|w| {
                matches!(
                    w,
                    cedar_policy::ValidationWarning::InvalidActionApplication(_)
                )
            })
            .map(|w| AsRef::<str>::as_ref(w.policy_id()).to_string())
            .collect();
        for warning in results.iter().flat_map(|r| r.validation_warnings()) {
            let pid = AsRef::<str>::as_ref(warning.policy_id());
            if with_errors.contains(pid) {
                continue;
            }
            if matches!(
                warning,
                cedar_policy::ValidationWarning::ImpossiblePolicy(_)
            ) && no_action.contains(pid)
            {
                continue;
            }
            let Some(entry) = by_id.get(pid).and_then(|&i| entries.get(i)) else {
                continue;
            };
            let mut d = from_miette(
                codes::WARNING,
                Severity::Warning,
                entry.file,
                warning,
                Some(entry),
            );
            d.message = tidy_message(&d.message, &entry.id);
            d.help = d.help.map(|h| tidy_message(&h, &entry.id));
            if matches!(
                warning,
                cedar_policy::ValidationWarning::InvalidActionApplication(_)
            ) && d.help.is_none()
                && cedar
                    .policy(warning.policy_id())
                    .is_some_and(uses_group_with_eq)
            {
                d.help = Some(
                    "`Action::\"read\"` and `Action::\"write\"` are groups of actions: match \
                     their members with `action in Action::\"read\"`, not `==`"
                        .into(),
                );
            }
            diags.push(d);
        }
    }

    // Spans are byte ranges on character boundaries inside their file, whatever Cedar reported.
    for d in &mut diags {
        let text = sources.get(d.file).map_or("", |(_, t)| t.as_str());
        d.span = clamp_span(text, d.span);
    }
    // The validator reports an error once per action it checks a policy under: keep one.
    let mut seen = BTreeSet::new();
    diags.retain(|d| seen.insert((d.file, d.span, d.code, d.message.clone())));
    diags.sort_by(|a, b| {
        (a.file, a.span.0, a.code, a.span.1).cmp(&(b.file, b.span.0, b.code, b.span.1))
    });

    let set = PolicySet {
        cedar,
        entries,
        by_id,
        slice: std::sync::OnceLock::new(),
    };
    (set, diags)
}

/// Fewest items worth a thread of their own.
const PARALLEL_MIN: usize = 64;

/// Validate `policies[i]` for each `i` in `which`, split into one part per core. Each part's
/// result holds the errors and warnings of its own policies.
fn validate_in_parts(
    validator: &Validator,
    policies: &[cedar_policy::Policy],
    which: &[usize],
) -> Vec<cedar_policy::ValidationResult> {
    if which.is_empty() {
        return Vec::new();
    }
    let chosen: Vec<&cedar_policy::Policy> =
        which.iter().filter_map(|&i| policies.get(i)).collect();
    let per = chosen.len().div_ceil(threads()).max(PARALLEL_MIN);
    let parts: Vec<&[&cedar_policy::Policy]> = chosen.chunks(per).collect();
    on_threads(&parts, |part| {
        // The ids are unique (checked by the caller), so assembling a part cannot fail.
        cedar_policy::PolicySet::from_policies(part.iter().map(|p| (*p).clone()))
            .ok()
            .map(|set| validator.validate(&set, ValidationMode::Strict))
    })
    .into_iter()
    .flatten()
    .collect()
}

/// Policies grouped by shape: the policy text with every non-action entity id renamed by order
/// of first appearance (`Workload::"a" == Workload::"b"` and `Workload::"c" == Workload::"d"`
/// have one shape, `Workload::"a" == Workload::"a"` another), annotations, comments and spacing
/// dropped. Cedar's strict validation depends on a policy's entity types, action ids,
/// operators and other literals, and on which entity literals are equal, never on the other
/// ids themselves (the generated schema declares no enumerated entity types), so policies of
/// one shape draw the same errors and warnings. A policy with a character outside ASCII or a
/// backslash anywhere gets no shape: Cedar's confusable-text warnings and escaped ids are
/// judged policy by policy.
#[derive(Debug, Default)]
struct Shapes {
    /// Index of the first policy of each shape, and of every policy without one.
    first: Vec<usize>,
    /// Every other policy, with the index of the first of its shape.
    same_as: Vec<(usize, usize)>,
}

impl Shapes {
    fn of<'t>(texts: impl Iterator<Item = &'t str>) -> Shapes {
        let mut out = Shapes::default();
        let mut seen: HashMap<String, usize> = HashMap::new();
        for (i, text) in texts.enumerate() {
            match shape_key(text) {
                Some(key) => match seen.get(&key) {
                    Some(&first) => out.same_as.push((i, first)),
                    None => {
                        seen.insert(key, i);
                        out.first.push(i);
                    }
                },
                None => out.first.push(i),
            }
        }
        out
    }
}

/// The shape of one policy's text (see [`Shapes`]), or `None` when it must be validated on
/// its own.
fn shape_key(text: &str) -> Option<String> {
    if !text.is_ascii() || text.contains('\\') {
        return None;
    }
    let bytes = text.as_bytes();
    let mut key = String::with_capacity(text.len());
    let mut ids: Vec<&str> = Vec::new();
    let space = |key: &mut String| {
        if !key.is_empty() && !key.ends_with(' ') {
            key.push(' ');
        }
    };
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'"' => {
                let end = text.get(i + 1..)?.find('"')? + i + 1;
                let literal = text.get(i + 1..end)?;
                let before = key.trim_end();
                let is_id = before.ends_with("::")
                    && !before.trim_end_matches("::").trim_end().ends_with("Action");
                if is_id {
                    let n = match ids.iter().position(|id| *id == literal) {
                        Some(n) => n,
                        None => {
                            ids.push(literal);
                            ids.len() - 1
                        }
                    };
                    key.push_str(&format!("\"#{n}\""));
                } else {
                    key.push('"');
                    key.push_str(literal);
                    key.push('"');
                }
                i = end + 1;
            }
            b'/' if bytes.get(i + 1) == Some(&b'/') => {
                i = text.get(i..)?.find('\n').map_or(bytes.len(), |n| i + n);
                space(&mut key);
            }
            b'@' => {
                // `@name` or `@name("value")`: annotations do not take part in validation.
                i += 1;
                while bytes
                    .get(i)
                    .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_')
                {
                    i += 1;
                }
                while bytes.get(i).is_some_and(u8::is_ascii_whitespace) {
                    i += 1;
                }
                if bytes.get(i) == Some(&b'(') {
                    let rest = text.get(i + 1..)?.trim_start();
                    let value = rest.strip_prefix('"')?;
                    let after = value.get(value.find('"')? + 1..)?.trim_start();
                    let after = after.strip_prefix(')')?;
                    i = bytes.len() - after.len();
                }
                space(&mut key);
            }
            c if c.is_ascii_whitespace() => {
                space(&mut key);
                i += 1;
            }
            c => {
                key.push(char::from(c));
                i += 1;
            }
        }
    }
    Some(key)
}

fn threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// `f` over `items`, in order, the items split into contiguous runs, one per core, each on a
/// thread with a large stack (Cedar's parser and validator recurse on nested input). Few items
/// stay on the calling thread; so does any run whose thread cannot be spawned.
fn on_threads<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let per = items.len().div_ceil(threads()).max(1);
    if items.len() < PARALLEL_MIN || per >= items.len() {
        return items.iter().map(&f).collect();
    }
    std::thread::scope(|s| {
        let f = &f;
        let handles: Vec<_> = items
            .chunks(per)
            .map(|run| {
                let spawned = std::thread::Builder::new()
                    .stack_size(256 << 20)
                    .spawn_scoped(s, move || run.iter().map(f).collect::<Vec<R>>());
                (run, spawned)
            })
            .collect();
        let mut out = Vec::with_capacity(items.len());
        for (run, handle) in handles {
            match handle {
                Ok(h) => match h.join() {
                    Ok(v) => out.extend(v),
                    Err(panic) => std::panic::resume_unwind(panic),
                },
                Err(_) => out.extend(run.iter().map(f)),
            }
        }
        out
    })
}

/// `MC0608` for `context.headers has "x"` (or `context has headers.x`) where the mesh does not
/// make `x` visible: strict validation types such a test as always false, which only shows as
/// a warning that the whole policy is impossible.
fn check_header_tests(
    policy: &cedar_policy::Policy,
    file: usize,
    headers: &[String],
) -> Vec<PolicyDiagnostic> {
    let is_context = |e: &ast::Expr| matches!(e.expr_kind(), ast::ExprKind::Var(ast::Var::Context));
    let mut out = Vec::new();
    let condition = policy.as_ref().condition();
    for expr in condition.subexpressions() {
        let tested: Option<&str> = match expr.expr_kind() {
            ast::ExprKind::HasAttr { expr: inner, attr } => match inner.expr_kind() {
                ast::ExprKind::GetAttr {
                    expr: base,
                    attr: field,
                } if field.as_str() == "headers" && is_context(base) => Some(attr.as_str()),
                _ => None,
            },
            ast::ExprKind::ExtHasAttr { expr: base, attrs } if is_context(base) => {
                let mut it = attrs.iter();
                match (it.next(), it.next()) {
                    (Some(first), Some(second)) if first.as_str() == "headers" => {
                        Some(second.as_str())
                    }
                    _ => None,
                }
            }
            _ => None,
        };
        let Some(name) = tested else { continue };
        if headers.iter().any(|h| h == name) {
            continue;
        }
        let Some(span) = loc_span(expr.source_loc()) else {
            continue;
        };
        let visible = if headers.is_empty() {
            "the mesh makes no header visible to policy".to_string()
        } else {
            format!(
                "headers visible to policy: {}",
                headers
                    .iter()
                    .map(|h| format!("`{h}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        let help = match closest(name, headers.iter().map(String::as_str)) {
            Some(s) => format!("did you mean `{s}`? ({visible})"),
            None if name.chars().any(|c| c.is_ascii_uppercase()) => {
                format!("header names are lower case here ({visible})")
            }
            None => visible,
        };
        out.push(PolicyDiagnostic {
            code: codes::UNKNOWN_ATTRIBUTE,
            severity: Severity::Error,
            message: format!("header `{}` is not visible to policy", name.escape_debug()),
            file,
            span,
            label: Some("this test is always false".into()),
            help: Some(help),
        });
    }
    out
}

/// Whether the action scope is `action == Action::"read"` or `"write"` (a group).
fn uses_group_with_eq(policy: &cedar_policy::Policy) -> bool {
    match policy.action_constraint() {
        cedar_policy::ActionConstraint::Eq(uid) => {
            [READ_GROUP, WRITE_GROUP].contains(&uid.id().unescaped())
        }
        _ => false,
    }
}

/// Why an `@id` value cannot be used, if it cannot.
fn id_problem(id: &str) -> Option<&'static str> {
    if id.is_empty() {
        Some("it is empty")
    } else if id.chars().any(char::is_whitespace) {
        Some("it holds whitespace")
    } else if id.chars().any(char::is_control) {
        Some("it holds control characters")
    } else {
        None
    }
}

/// Cedar prefixes validation messages with `for policy `id`, `; the diagnostic already points at
/// the policy. It also names the action a policy was checked under, which is noise when the
/// same error holds for every action.
fn tidy_message(message: &str, id: &str) -> String {
    let mut m = message.to_string();
    for prefix in [
        format!("for policy `{id}`, "),
        format!("for policy `{id}`: "),
    ] {
        if let Some(rest) = m.strip_prefix(prefix.as_str()) {
            m = rest.to_string();
            break;
        }
    }
    const CTX: &str = " in context for Action::\"";
    if let Some(start) = m.find(CTX) {
        let after = start + CTX.len();
        if let Some(end) = m.get(after..).and_then(|rest| rest.find('"')) {
            m.replace_range(start..after + end + 1, " in context");
        }
    }
    m
}

/// Turn a Cedar (miette) diagnostic into a [`PolicyDiagnostic`], keeping its message, primary
/// label and help.
fn from_miette(
    code: &'static str,
    severity: Severity,
    file: usize,
    d: &(impl Diagnostic + ?Sized),
    entry: Option<&PolicyEntry>,
) -> PolicyDiagnostic {
    let (span, label) = match d.labels().and_then(|mut labels| labels.next()) {
        Some(l) => (
            (l.offset(), l.offset() + l.len()),
            l.label().map(str::to_string),
        ),
        None => (entry.map_or((0, 0), |e| e.span), None),
    };
    PolicyDiagnostic {
        code,
        severity,
        message: d.to_string(),
        file,
        span,
        label,
        help: d.help().map(|h| h.to_string()),
    }
}

fn loc_span(loc: Option<&cedar_policy_core::parser::Loc>) -> Option<(usize, usize)> {
    loc.map(|l| (l.span.offset(), l.span.offset() + l.span.len()))
}

/// `span` moved inside `text` and onto character boundaries, `start <= end`.
fn clamp_span(text: &str, span: (usize, usize)) -> (usize, usize) {
    let fix = |mut o: usize| {
        o = o.min(text.len());
        while !text.is_char_boundary(o) {
            o -= 1;
        }
        o
    };
    let start = fix(span.0);
    (start, fix(span.1).max(start))
}

/// Byte offsets of line starts, to turn offsets into lines and columns.
struct LineIndex {
    starts: Vec<usize>,
}

impl LineIndex {
    fn new(text: &str) -> Self {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        LineIndex { starts }
    }

    /// 1-based line and column (in characters) of a byte offset.
    fn line_col(&self, text: &str, offset: usize) -> (usize, usize) {
        let mut offset = offset.min(text.len());
        while !text.is_char_boundary(offset) {
            offset -= 1;
        }
        let line = match self.starts.binary_search(&offset) {
            Ok(i) => i,
            Err(i) => i.saturating_sub(1),
        };
        let start = self.starts.get(line).copied().unwrap_or(0);
        let column = text.get(start..offset).map_or(0, |s| s.chars().count()) + 1;
        (line + 1, column)
    }
}

#[cfg(test)]
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    LineIndex::new(text).line_col(text, offset)
}

/// The entities of the mesh, to check entity literals in policies.
struct Known {
    workloads: BTreeSet<String>,
    services: BTreeSet<String>,
    namespaces: BTreeSet<String>,
}

impl Known {
    fn new(model: &PolicyModel) -> Self {
        let services: BTreeSet<String> = model.sorted_services().iter().map(|s| s.key()).collect();
        let mut workloads = services.clone();
        workloads.insert(UNKNOWN_WORKLOAD_ID.to_string());
        Known {
            workloads,
            services,
            namespaces: model.namespaces().into_iter().map(str::to_string).collect(),
        }
    }

    fn set(&self, ty: &str) -> Option<&BTreeSet<String>> {
        match ty {
            WORKLOAD_TYPE => Some(&self.workloads),
            SERVICE_TYPE => Some(&self.services),
            NAMESPACE_TYPE => Some(&self.namespaces),
            _ => None,
        }
    }

    /// `MC0603` for every literal of a mesh entity type whose id the mesh lacks.
    fn check_literals(&self, policy: &cedar_policy::Policy, file: usize) -> Vec<PolicyDiagnostic> {
        let mut out = Vec::new();
        let mut seen = BTreeSet::new();
        let condition = policy.as_ref().condition();
        for expr in condition.subexpressions() {
            let ast::ExprKind::Lit(ast::Literal::EntityUID(uid)) = expr.expr_kind() else {
                continue;
            };
            let ty = uid.entity_type().to_string();
            let id: &str = uid.eid().as_ref();
            let Some(set) = self.set(&ty) else { continue };
            if set.contains(id) {
                continue;
            }
            let Some(span) = loc_span(uid.loc()).or_else(|| loc_span(expr.source_loc())) else {
                continue;
            };
            if !seen.insert(span) {
                continue;
            }
            let what = match ty.as_str() {
                WORKLOAD_TYPE => "workload",
                SERVICE_TYPE => "service",
                _ => "namespace",
            };
            let help = match self.suggest(&ty, id) {
                Some(s) => format!("did you mean `{s}`?"),
                None => match ty.as_str() {
                    NAMESPACE_TYPE => {
                        "a namespace exists when at least one service of the mesh is in it"
                            .to_string()
                    }
                    _ => format!("a {what} id is `namespace/name` of a service of the mesh"),
                },
            };
            out.push(PolicyDiagnostic {
                code: codes::UNKNOWN_ENTITY,
                severity: Severity::Error,
                message: format!("unknown {what} `{}`", id.escape_debug()),
                file,
                span,
                label: Some(format!("the mesh has no {what} with this id")),
                help: Some(help),
            });
        }
        out
    }

    /// A literal the user may have meant, as Cedar text.
    fn suggest(&self, ty: &str, id: &str) -> Option<String> {
        let lit = |t: &str, i: &str| format!("{t}::\"{}\"", i.escape_debug());
        let set = self.set(ty)?;
        // `Service::"reviews"`: the name without its namespace.
        if ty != NAMESPACE_TYPE && !id.contains('/') {
            let mut named: Vec<&String> = set
                .iter()
                .filter(|k| k.rsplit('/').next() == Some(id))
                .collect();
            named.sort_by_key(|k| (!k.starts_with("default/"), k.as_str()));
            if let Some(k) = named.first() {
                return Some(lit(ty, k));
            }
        }
        if let Some(best) = closest(id, set.iter().map(String::as_str)) {
            return Some(lit(ty, best));
        }
        // Right id, wrong type: `Service::"default"` for a namespace.
        for other in [SERVICE_TYPE, WORKLOAD_TYPE, NAMESPACE_TYPE] {
            if other != ty && self.set(other).is_some_and(|s| s.contains(id)) && !id.is_empty() {
                return Some(lit(other, id));
            }
        }
        None
    }
}

/// The candidate closest to `word` by edit distance, if close enough to be a likely typo.
pub(crate) fn closest<'a>(
    word: &str,
    candidates: impl Iterator<Item = &'a str>,
) -> Option<&'a str> {
    let limit = (word.chars().count() / 3).max(2);
    candidates
        .filter(|c| !c.is_empty())
        .map(|c| (strsim::levenshtein(word, c), c))
        .filter(|(d, _)| *d <= limit)
        .min()
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_counts_characters() {
        let text = "ab\ncé\nx";
        assert_eq!(line_col(text, 0), (1, 1));
        assert_eq!(line_col(text, 3), (2, 1));
        // `x` is after `c`, `é` (2 bytes) and the newline.
        assert_eq!(line_col(text, 7), (3, 1));
        assert_eq!(line_col(text, 5), (2, 2)); // inside `é`: clamps to its start
        assert_eq!(line_col(text, 100), (3, 2));
    }

    #[test]
    fn tidy_message_strips_policy_and_action() {
        let m = tidy_message(
            "for policy `p1`, attribute `headers.x` in context for Action::\"GET\" not found",
            "p1",
        );
        assert_eq!(m, "attribute `headers.x` in context not found");
    }

    #[test]
    fn closest_picks_smallest_distance() {
        let c = ["default/reviews", "default/ratings", "default/details"];
        assert_eq!(
            closest("default/reviewz", c.iter().copied()),
            Some("default/reviews")
        );
        assert_eq!(closest("zzzzzzzzzzzzzzzz", c.iter().copied()), None);
    }

    #[test]
    fn id_rules() {
        assert!(id_problem("a-b_c.d/e").is_none());
        assert!(id_problem("").is_some());
        assert!(id_problem("a b").is_some());
        assert!(id_problem("a\u{7}").is_some());
    }
}
