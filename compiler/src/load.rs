//! Reading a mesh definition directory into sources and a model.
//!
//! This is the only module of the library that touches the file system. Everything after it is
//! a pure function of the [`SourceMap`].

use std::collections::BTreeMap;

use sha2::Digest as _;
use std::path::{Path, PathBuf};

use crate::decode::{Decoder, Resource, SectionRef};
use crate::diag::{Code, Diagnostic, did_you_mean};
use crate::model::{Model, PolicyFile, Route, Service};
use crate::source::{FileId, Loc, SourceMap, Span};
use crate::syntax::{self, Limits};

/// Options for reading input.
#[derive(Clone, Debug)]
pub struct LoadOptions {
    /// Namespace of documents without `metadata.namespace`.
    pub default_namespace: String,
    /// Largest file read, in bytes.
    pub max_file_bytes: u64,
    /// Most files read from one directory tree.
    pub max_files: usize,
    pub limits: Limits,
    /// Hash every document for the artifacts' source hash ([`Model::document_hashes`]);
    /// `meshc check`, which writes no artifact, skips it.
    pub hash_documents: bool,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            default_namespace: "default".to_string(),
            max_file_bytes: 8 * 1024 * 1024,
            max_files: 100_000,
            limits: Limits::default(),
            hash_documents: true,
        }
    }
}

/// The result of reading one directory.
#[derive(Debug, Default)]
pub struct Loaded {
    pub sources: SourceMap,
    pub model: Model,
    pub diagnostics: Vec<Diagnostic>,
    /// An I/O failure happened (exit code 2).
    pub io_error: bool,
    /// The `.cedar` files of `model.policy_files`, parsed while the YAML was being read.
    pub policies_parsed: Option<mesh_policy::validate::Parsed>,
}

fn is_input(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml" | "cedar")
    )
}

/// Collect input files below `root`, sorted by relative path. Hidden entries (`.git`, ...) are
/// skipped. Unreadable entries are reported.
fn walk(
    root: &Path,
    dir: &Path,
    out: &mut Vec<(String, PathBuf)>,
    errors: &mut Vec<(String, String)>,
    depth: usize,
) {
    if depth > 64 {
        errors.push((
            rel(root, dir),
            "directory nesting deeper than 64 levels".to_string(),
        ));
        return;
    }
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            errors.push((rel(root, dir), e.to_string()));
            return;
        }
    };
    let mut list: Vec<PathBuf> = Vec::new();
    for entry in entries {
        match entry {
            Ok(e) => list.push(e.path()),
            Err(e) => errors.push((rel(root, dir), e.to_string())),
        }
    }
    list.sort();
    for path in list {
        let hidden = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with('.'));
        if hidden {
            continue;
        }
        // Follow symlinks (ConfigMap mounts, checked-out monorepos) but never loop: depth bounds it.
        match std::fs::metadata(&path) {
            Ok(m) if m.is_dir() => walk(root, &path, out, errors, depth + 1),
            Ok(m) if m.is_file() && is_input(&path) => out.push((rel(root, &path), path)),
            Ok(_) => {}
            Err(e) => {
                if is_input(&path) {
                    errors.push((rel(root, &path), e.to_string()));
                }
            }
        }
    }
}

fn rel(root: &Path, p: &Path) -> String {
    let r = p.strip_prefix(root).unwrap_or(p);
    let s = r.to_string_lossy().replace('\\', "/");
    if s.is_empty() { ".".to_string() } else { s }
}

/// Read and decode everything below `root` (a directory, or a single file).
pub fn load_dir(root: &Path, opts: &LoadOptions) -> Loaded {
    let mut loaded = Loaded::default();
    let mut files = Vec::new();
    let mut errors = Vec::new();
    match std::fs::metadata(root) {
        Ok(m) if m.is_dir() => walk(root, root, &mut files, &mut errors, 0),
        Ok(_) => {
            let name = root.file_name().map_or_else(
                || root.display().to_string(),
                |n| n.to_string_lossy().into_owned(),
            );
            files.push((name, root.to_path_buf()));
        }
        Err(e) => errors.push((root.display().to_string(), e.to_string())),
    }
    for (path, err) in errors {
        let id = loaded.sources.add(path.clone(), String::new());
        loaded.io_error = true;
        loaded.diagnostics.push(
            Diagnostic::new(Code::Unreadable, format!("cannot read `{path}`: {err}")).primary(
                id,
                Span::default(),
                "unreadable",
            ),
        );
    }
    if files.len() > opts.max_files {
        let id = loaded.sources.add(".".to_string(), String::new());
        loaded.diagnostics.push(
            Diagnostic::new(
                Code::ResourceBudget,
                format!(
                    "too many input files: {} (limit {})",
                    files.len(),
                    opts.max_files
                ),
            )
            .primary(id, Span::default(), "here"),
        );
        files.truncate(opts.max_files);
    }
    let mut inputs: Vec<(String, String)> = Vec::new();
    let found_files = !files.is_empty();
    // Read on every core (the text is copied out of the page cache and checked for UTF-8),
    // then handle the results in path order.
    let texts = crate::par::map(&files, crate::par::cpus(), |(_, path)| {
        read_text(path, opts.max_file_bytes)
    });
    for ((relpath, _), text) in files.into_iter().zip(texts) {
        match text {
            Ok(text) => inputs.push((relpath, text)),
            Err(ReadError::Io(e)) => {
                let id = loaded.sources.add(relpath.clone(), String::new());
                loaded.io_error = true;
                loaded.diagnostics.push(
                    Diagnostic::new(Code::Unreadable, format!("cannot read `{relpath}`: {e}"))
                        .primary(id, Span::default(), "unreadable"),
                );
            }
            Err(ReadError::TooLarge(n)) => {
                let id = loaded.sources.add(relpath.clone(), String::new());
                loaded.diagnostics.push(
                    Diagnostic::new(
                        Code::ResourceBudget,
                        format!(
                            "`{relpath}` is {n} bytes, over the {} byte limit",
                            opts.max_file_bytes
                        ),
                    )
                    .primary(id, Span::default(), "file too large")
                    .help("split the file, or raise the limit with `--max-file-size`"),
                );
            }
            Err(ReadError::NotText(offset)) => {
                let id = loaded.sources.add(relpath.clone(), String::new());
                loaded.diagnostics.push(
                    Diagnostic::new(
                        Code::Unreadable,
                        format!("`{relpath}` is not UTF-8 text (invalid byte at offset {offset})"),
                    )
                    .primary(id, Span::default(), "binary or non-UTF-8 content")
                    .help("mesh definitions are UTF-8 YAML or Cedar text"),
                );
            }
        }
    }
    crate::timing::mark("files read");
    let (model, mut diags, parsed) = build_model_parsed(&mut loaded.sources, inputs, opts);
    loaded.policies_parsed = Some(parsed);
    if found_files || loaded.io_error {
        // Files were there but could not be used: that was reported already.
        diags.retain(|d| d.code != Code::NoInput);
    }
    loaded.model = model;
    loaded.diagnostics.extend(diags);
    loaded
}

enum ReadError {
    Io(std::io::Error),
    TooLarge(u64),
    NotText(usize),
}

fn read_text(path: &Path, max: u64) -> Result<String, ReadError> {
    use std::io::Read;
    let f = std::fs::File::open(path).map_err(ReadError::Io)?;
    let len = f.metadata().map_err(ReadError::Io)?.len();
    if len > max {
        return Err(ReadError::TooLarge(len));
    }
    let mut bytes = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    f.take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(ReadError::Io)?;
    if bytes.len() as u64 > max {
        return Err(ReadError::TooLarge(bytes.len() as u64));
    }
    if let Some(pos) = bytes.iter().position(|&b| b == 0) {
        return Err(ReadError::NotText(pos));
    }
    String::from_utf8(bytes).map_err(|e| ReadError::NotText(e.utf8_error().valid_up_to()))
}

/// Build the model from in-memory inputs (relative path, text). Used by `load_dir` and by tests
/// and fuzzers that have no files.
pub fn build_model(
    sources: &mut SourceMap,
    inputs: Vec<(String, String)>,
    opts: &LoadOptions,
) -> (Model, Vec<Diagnostic>) {
    let (model, diags, _) = build_model_parsed(sources, inputs, opts);
    (model, diags)
}

/// The `(path, text)` of each `.cedar` file of the model, in the model's order.
pub fn policy_inputs(model: &Model, sources: &SourceMap) -> Vec<(String, String)> {
    model
        .policy_files
        .iter()
        .filter_map(|p| {
            sources
                .get(p.file)
                .map(|f| (f.path.clone(), f.text.clone()))
        })
        .collect()
}

/// [`build_model`], also returning the model's `.cedar` files parsed: Cedar parsing needs no
/// model, so it runs beside YAML decoding instead of after it.
pub fn build_model_parsed(
    sources: &mut SourceMap,
    inputs: Vec<(String, String)>,
    opts: &LoadOptions,
) -> (Model, Vec<Diagnostic>, mesh_policy::validate::Parsed) {
    let mut diags = Vec::new();
    let mut model = Model::default();
    let mut meshes = Vec::new();
    let mut skipped: BTreeMap<String, (usize, Loc)> = BTreeMap::new();
    let mut any_input = false;
    let mut yaml_files = Vec::new();
    for (path, text) in inputs {
        let is_cedar = path.ends_with(".cedar");
        let id = sources.add(path, text);
        any_input = true;
        if is_cedar {
            model.policy_files.push(PolicyFile { file: id });
            if let Some(f) = sources.get(id) {
                model
                    .document_hashes
                    .push(mesh_artifact::codec::sha256_tag(f.text.trim().as_bytes()));
            }
        } else {
            yaml_files.push(id);
        }
    }
    // Parsing and decoding are per file and independent: spread them over the cores, then
    // merge in file order so the result does not depend on scheduling.
    let shared: &SourceMap = sources;
    let (decoded, parsed) = std::thread::scope(|s| {
        let cedar = std::thread::Builder::new()
            .stack_size(crate::par::WORKER_STACK)
            .spawn_scoped(s, || {
                mesh_policy::validate::Parsed::new(&policy_inputs(&model, shared))
            });
        let decoded = decode_files(shared, &yaml_files, opts);
        let parsed = match cedar {
            Ok(handle) => match handle.join() {
                Ok(p) => p,
                Err(panic) => std::panic::resume_unwind(panic),
            },
            // No thread: validation parses the files itself.
            Err(_) => mesh_policy::validate::Parsed::default(),
        };
        (decoded, parsed)
    });
    crate::timing::mark("parsed and decoded");
    let count = |f: fn(&Resource) -> bool| -> usize {
        decoded
            .iter()
            .map(|d| d.resources.iter().filter(|r| f(r)).count())
            .sum()
    };
    model
        .services
        .reserve(count(|r| matches!(r, Resource::Service(_))));
    model
        .sidecars
        .reserve(count(|r| matches!(r, Resource::Sidecar(_))));
    model
        .routes
        .reserve(count(|r| matches!(r, Resource::Route(..))));
    let mut sections: Vec<(usize, Vec<SectionRef>)> = Vec::new();
    for file in decoded {
        diags.extend(file.diags);
        model.document_hashes.extend(file.hashes);
        for r in file.resources {
            match r {
                Resource::Mesh(m) => meshes.push(m),
                Resource::Service(s) => model.services.push(s),
                Resource::Sidecar(s) => model.sidecars.push(s),
                Resource::Route(r, s) => {
                    if !s.is_empty() {
                        sections.push((model.routes.len(), s));
                    }
                    model.routes.push(r);
                }
                Resource::ReferenceGrant(g) => model.reference_grants.push(g),
                Resource::Skipped { kind, loc } => {
                    let e = skipped.entry(kind).or_insert((0, loc));
                    e.0 += 1;
                }
                Resource::Invalid => {}
            }
        }
    }
    for (kind, (count, loc)) in skipped {
        let times = if count == 1 {
            String::new()
        } else {
            format!(" ({count} documents)")
        };
        diags.push(
            Diagnostic::new(
                Code::SkippedKind,
                format!("skipping `{kind}`: not a kind meshc reads{times}"),
            )
            .at(loc, "skipped")
            .help("meshc reads its own resources, `v1` `Service`, and Gateway API `HTTPRoute` and `ReferenceGrant`"),
        );
    }
    if !any_input {
        let id = sources.add(".".to_string(), String::new());
        diags.push(
            Diagnostic::new(
                Code::NoInput,
                "no mesh definition found: no `*.yaml`, `*.yml` or `*.cedar` files",
            )
            .primary(id, Span::default(), "empty")
            .help("point meshc at the directory that holds the mesh definition"),
        );
    }
    // One mesh at most.
    meshes.sort_by_key(|m| m.loc);
    let mut meshes = meshes.into_iter();
    if let Some(first) = meshes.next() {
        for other in meshes {
            if let (Some(l), Some(f)) = (other.loc, first.loc) {
                diags.push(
                    Diagnostic::new(
                        Code::MultipleMeshes,
                        format!("second `Mesh` resource `{}`", other.name),
                    )
                    .at(l, "second mesh")
                    .secondary(f, "first mesh defined here")
                    .help("a mesh definition has exactly one `Mesh`; merge them"),
                );
            }
        }
        model.mesh = first;
    }
    dedup(
        &mut model.services,
        |s| (&s.namespace, &s.name),
        |s| s.loc,
        "service",
        &mut diags,
    );
    model
        .services
        .sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    for (i, list) in sections {
        if let Some(route) = model.routes.get_mut(i) {
            resolve_sections(&model.services, route, &list, &mut diags);
        }
    }
    dedup(
        &mut model.routes,
        |r| (&r.namespace, &r.name),
        |r| r.loc,
        "route",
        &mut diags,
    );
    dedup(
        &mut model.sidecars,
        |s| (&s.namespace, &s.name),
        |s| s.loc,
        "sidecar",
        &mut diags,
    );
    model
        .routes
        .sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    dedup(
        &mut model.reference_grants,
        |g| (&g.namespace, &g.name),
        |g| g.loc,
        "reference grant",
        &mut diags,
    );
    model.sidecars.sort_by(|a, b| {
        (&a.namespace, &a.service.v, a.loc).cmp(&(&b.namespace, &b.service.v, b.loc))
    });
    model.index_routes();
    crate::timing::mark("model merged");
    (model, diags, parsed)
}

/// Turn each `sectionName` of a Service parent into the port it names (GEP-1294: the route then
/// attaches to that port only, as with `port`). An unknown name, or one that disagrees with the
/// parent's `port`, is MC0302. `services` is sorted; a parent whose service does not exist is
/// left alone (validation reports it).
fn resolve_sections(
    services: &[Service],
    route: &mut Route,
    sections: &[SectionRef],
    diags: &mut Vec<Diagnostic>,
) {
    for sec in sections {
        let Some(parent) = route.parents.get_mut(sec.parent) else {
            continue;
        };
        if !parent.is_service() {
            // A Gateway's listener: the route attaches to nothing in the mesh anyway (MC0306).
            continue;
        }
        let Ok(i) = services.binary_search_by(|s| {
            (s.namespace.as_str(), s.name.as_str())
                .cmp(&(parent.namespace.as_str(), parent.name.as_str()))
        }) else {
            continue;
        };
        let svc = &services[i];
        let name = &sec.name;
        let Some(sp) = svc
            .ports
            .iter()
            .find(|p| p.name.as_deref() == Some(&name.v))
        else {
            let names: Vec<&str> = svc.ports.iter().filter_map(|p| p.name.as_deref()).collect();
            let mut d = Diagnostic::new(
                Code::UnknownPort,
                format!("service `{}` has no port named `{}`", svc.key(), name.v),
            )
            .at(name.loc, "unknown port name");
            d = match did_you_mean(&name.v, names.iter().copied()) {
                Some(h) => d.help(h),
                None if names.is_empty() => d.help(format!(
                    "the ports of `{}` have no names: attach with `port` instead",
                    svc.key()
                )),
                None => d.help(format!(
                    "`sectionName` names a port of the Service; port names of `{}`: {}",
                    svc.key(),
                    names
                        .iter()
                        .map(|n| format!("`{n}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
            };
            diags.push(d);
            continue;
        };
        match &parent.port {
            Some(port) if port.v != sp.port => diags.push(
                Diagnostic::new(
                    Code::UnknownPort,
                    format!(
                        "`sectionName: {}` names port {} of `{}`, but `port` is {}",
                        name.v,
                        sp.port,
                        svc.key(),
                        port.v
                    ),
                )
                .at(name.loc, format!("port {}", sp.port))
                .secondary(port.loc, format!("port {}", port.v))
                .help(format!(
                    "`sectionName` and `port` must name the same port: drop one of them, or write `port: {}`",
                    sp.port
                )),
            ),
            Some(_) => {}
            None => parent.port = Some(crate::model::S::new(sp.port, name.loc)),
        }
    }
}

fn dedup<T>(
    items: &mut Vec<T>,
    key: for<'t> fn(&'t T) -> (&'t str, &'t str),
    loc: impl Fn(&T) -> Loc,
    what: &str,
    diags: &mut Vec<Diagnostic>,
) {
    items.sort_by(|a, b| key(a).cmp(&key(b)).then(loc(a).cmp(&loc(b))));
    let mut kept: Vec<T> = Vec::with_capacity(items.len());
    for item in items.drain(..) {
        if let Some(prev) = kept.last() {
            if key(prev) == key(&item) {
                diags.push(
                    Diagnostic::new(Code::DuplicateResource, {
                        let (ns, name) = key(&item);
                        format!("duplicate {what} `{ns}/{name}`")
                    })
                    .at(loc(&item), format!("{what} defined again here"))
                    .secondary(loc(prev), "first defined here")
                    .help("names are unique per kind and namespace; rename or remove one"),
                );
                continue;
            }
        }
        kept.push(item);
    }
    *items = kept;
}

/// What one YAML file decoded to.
struct DecodedFile {
    resources: Vec<Resource>,
    diags: Vec<Diagnostic>,
    hashes: Vec<String>,
}

fn decode_file(sources: &SourceMap, id: FileId, opts: &LoadOptions) -> DecodedFile {
    let mut out = DecodedFile {
        resources: Vec::new(),
        diags: Vec::new(),
        hashes: Vec::new(),
    };
    let text = sources.get(id).map(|f| f.text.as_str()).unwrap_or_default();
    // Size the list from the document separators: a resource is a few hundred bytes, and
    // growing the list of a file with hundreds of documents copies it into fresh memory again
    // and again (page faults were 4% of `check`'s time before this).
    let separators = text.match_indices("\n---").count();
    out.resources
        .reserve(separators.saturating_add(1).min(opts.limits.max_documents));
    // Each document is decoded as soon as it is parsed and its tree dropped at once.
    let mut sink = DecodeSink {
        dec: Decoder::new(id, text, &opts.default_namespace),
        out: &mut out,
        hash: opts.hash_documents,
    };
    let parsed = syntax::parse_documents_with(id, text, opts.limits, &mut sink);
    let mut dec = sink.dec;
    if let Err(d) = parsed {
        // A file with a syntax error contributes that one diagnostic and nothing else, as if
        // none of its documents had been read.
        return DecodedFile {
            resources: Vec::new(),
            diags: vec![d],
            hashes: Vec::new(),
        };
    }
    out.diags.append(&mut dec.diags);
    out
}

/// Decodes (and hashes) each document as the parser completes it.
struct DecodeSink<'s, 'a> {
    dec: Decoder<'a>,
    out: &'s mut DecodedFile,
    hash: bool,
}

/// The items of a `v1` `List` (what `kubectl get ... -o yaml` prints): each is read as a
/// document of its own, so that a file of exported Services is read like the Services.
fn list_items<'n, 'a>(doc: &'n syntax::Node<'a>) -> Option<&'n [syntax::Node<'a>]> {
    let syntax::Value::Map(entries) = &doc.value else {
        return None;
    };
    let field = |name: &str| {
        entries.iter().find_map(|(k, v)| match &k.value {
            syntax::Value::Str(k) if k == name => Some(v),
            _ => None,
        })
    };
    let is = |name: &str, want: &str| {
        field(name).is_some_and(|v| matches!(&v.value, syntax::Value::Str(s) if s == want))
    };
    if !(is("apiVersion", "v1") && is("kind", "List")) {
        return None;
    }
    match field("items").map(|v| &v.value) {
        Some(syntax::Value::Seq(items)) => Some(items),
        _ => None,
    }
}

impl<'a> syntax::Documents<'a> for DecodeSink<'_, 'a> {
    fn document(&mut self, doc: syntax::Node<'a>) {
        if let Some(items) = list_items(&doc) {
            for item in items {
                self.document(item.clone());
            }
            return;
        }
        if self.hash {
            // Hash the document's content, so that comments, formatting and position do not
            // change the source hash.
            let mut h = sha2::Sha256::new();
            doc.digest(&mut h);
            self.out
                .hashes
                .push(format!("sha256:{}", hex::encode(sha2::Digest::finalize(h))));
        }
        self.out.resources.push(self.dec.document(&doc));
    }

    /// The file is parsed again from the start: forget what its first reading decoded.
    fn restart(&mut self) {
        self.out.resources.clear();
        self.out.hashes.clear();
        self.dec = Decoder::new(self.dec.file, self.dec.text, self.dec.default_namespace);
    }
}

/// Decode files on every core, returning results in the order of `ids`.
fn decode_files(sources: &SourceMap, ids: &[FileId], opts: &LoadOptions) -> Vec<DecodedFile> {
    crate::par::map(ids, crate::par::cpus(), |id| {
        decode_file(sources, *id, opts)
    })
}

/// Relative file id helper for diagnostics without a file.
pub fn pseudo_file(sources: &mut SourceMap, name: &str) -> FileId {
    sources.add(name.to_string(), String::new())
}
