//! `meshc build`: compile every sidecar's artifact and the index, then write them atomically.

use std::io::Write as _;
use std::path::Path;
use std::process::ExitCode;

use mesh_artifact::{FORMAT_NAME, FORMAT_VERSION, Index, IndexEntry};

use crate::render::{self, Format, HumanOptions};
use crate::{Checked, LoadOptions, Severity};

/// Name of the index file in a build output directory.
pub const INDEX_FILE: &str = "index.json";

/// One output file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutputFile {
    pub name: String,
    pub text: String,
}

/// The file name of a sidecar's artifact: `<namespace>.<name>.json` (both are DNS labels, so
/// the name is unambiguous and a valid ConfigMap key).
pub fn artifact_file_name(namespace: &str, name: &str) -> String {
    format!("{namespace}.{name}.json")
}

/// Compile every artifact and the index, in memory, lowering sidecars on every core. The
/// caller must have checked that `checked` has no errors.
pub fn compile(checked: &Checked) -> Vec<OutputFile> {
    let source_hash = crate::lower::source_hash(&checked.model);
    let slicer = crate::policy::slicer(checked);
    let compiled = crate::par::map(&checked.model.services, crate::par::cpus(), |svc| {
        let body = crate::lower::lower_sidecar_with(checked, &slicer, svc);
        let (text, body_hash) = mesh_artifact::encode(&body, crate::VERSION, &source_hash);
        let name = artifact_file_name(&svc.namespace, &svc.name);
        let entry = IndexEntry {
            service: svc.key(),
            file: name.clone(),
            sha256: mesh_artifact::codec::sha256_tag(text.as_bytes()),
            body_hash,
        };
        (OutputFile { name, text }, entry)
    });
    let (mut files, entries): (Vec<OutputFile>, Vec<IndexEntry>) = compiled.into_iter().unzip();
    let index = Index {
        format: format!("{FORMAT_NAME}.index"),
        format_version: FORMAT_VERSION,
        meshc_version: crate::VERSION.to_string(),
        mesh: checked.model.mesh.name.clone(),
        source_hash,
        artifacts: entries,
    };
    let mut text = serde_json::to_string_pretty(&index).unwrap_or_default();
    text.push('\n');
    files.push(OutputFile {
        name: INDEX_FILE.to_string(),
        text,
    });
    files
}

/// Write `text` to `dir/name` through a temporary file that is synced and renamed into place.
pub fn write_atomic(dir: &Path, name: &str, text: &str) -> std::io::Result<()> {
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, dir.join(name))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Threads writing files: most of their time is spent waiting for `fsync`, and the disk takes
/// several flushes at once.
const WRITERS: usize = 16;

/// Write all files; artifacts first (several at a time) and the index last, so a reader that
/// follows the index never sees an index naming a file that is not there yet. Artifacts named
/// by a previous index in `out` and absent from this build are removed afterwards.
pub fn write_output(out: &Path, files: &[OutputFile]) -> std::io::Result<()> {
    std::fs::create_dir_all(out)?;
    let old: Option<Index> = std::fs::read(out.join(INDEX_FILE))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    let (index, others): (Vec<&OutputFile>, Vec<&OutputFile>) =
        files.iter().partition(|f| f.name == INDEX_FILE);
    for result in crate::par::map(&others, WRITERS, |f| write_atomic(out, &f.name, &f.text)) {
        result?;
    }
    for f in index {
        write_atomic(out, &f.name, &f.text)?;
    }
    if let Some(old) = old {
        let written: std::collections::HashSet<&str> =
            files.iter().map(|f| f.name.as_str()).collect();
        for e in old.artifacts {
            let stale = !written.contains(e.file.as_str());
            // Only plain file names written by meshc: never follow a path out of `out`.
            let plain = !e.file.contains(['/', '\\'])
                && e.file.ends_with(".json")
                && !e.file.starts_with('.');
            if stale && plain {
                let _ = std::fs::remove_file(out.join(&e.file));
            }
        }
    }
    if let Ok(d) = std::fs::File::open(out) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// The `meshc build` command.
pub fn run(
    dir: &Path,
    opts: &LoadOptions,
    out: &Path,
    format: Format,
    human: HumanOptions,
) -> ExitCode {
    run_with(dir, opts, out, format, human, None)
}

/// Kubernetes limits a ConfigMap to 1 MiB of data.
pub const CONFIGMAP_LIMIT: usize = 1024 * 1024;

/// Where and how to emit a ConfigMap.
#[derive(Clone, Debug)]
pub struct ConfigMapOptions {
    pub name: String,
    pub namespace: String,
}

/// A Kubernetes `ConfigMap` holding every artifact and the index, one key per file, so that
/// each sidecar mounts the map and reads its own key. Deterministic: keys sorted.
pub fn configmap_yaml(files: &[OutputFile], name: &str, namespace: &str) -> String {
    let mut out = format!(
        "# Generated by meshc build; do not edit.\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: {namespace}\n  labels:\n    app.kubernetes.io/managed-by: meshc\ndata:\n"
    );
    let mut sorted: Vec<&OutputFile> = files.iter().collect();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    for f in sorted {
        out.push_str(&format!("  {}: |\n", f.name));
        for line in f.text.lines() {
            out.push_str("    ");
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// The `meshc build` command, optionally also writing `configmap.yaml`.
pub fn run_with(
    dir: &Path,
    opts: &LoadOptions,
    out: &Path,
    format: Format,
    human: HumanOptions,
    configmap: Option<&ConfigMapOptions>,
) -> ExitCode {
    let checked = crate::check_dir(dir, opts);
    let shown: Vec<_> = checked
        .diagnostics
        .iter()
        .filter(|d| d.severity >= Severity::Warning)
        .cloned()
        .collect();
    if !shown.is_empty() || checked.has_errors() {
        eprint!(
            "{}",
            render::render(format, &checked.sources, &shown, human)
        );
    }
    if checked.io_error {
        return ExitCode::from(2);
    }
    if checked.has_errors() {
        eprintln!("error: build refused: the mesh definition has errors; nothing was written");
        return ExitCode::from(1);
    }
    let mut files = compile(&checked);
    if let Some(cm) = configmap {
        let text = configmap_yaml(&files, &cm.name, &cm.namespace);
        let data: usize = files.iter().map(|f| f.text.len()).sum();
        if data > CONFIGMAP_LIMIT {
            eprintln!(
                "warning: the artifacts total {data} bytes, over the 1 MiB a ConfigMap may hold; split the mesh or mount one ConfigMap per sidecar"
            );
        }
        files.push(OutputFile {
            name: "configmap.yaml".to_string(),
            text,
        });
    }
    if let Err(e) = write_output(out, &files) {
        eprintln!("error: cannot write to `{}`: {e}", out.display());
        return ExitCode::from(2);
    }
    eprintln!(
        "built {} artifacts into `{}`",
        files.len() - 1,
        out.display()
    );
    ExitCode::SUCCESS
}
