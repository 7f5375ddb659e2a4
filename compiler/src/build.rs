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
    let tables = crate::lower::TableCache::default();
    let compiled = crate::par::map(&checked.model.services, crate::par::cpus(), |svc| {
        compile_one(checked, &slicer, &tables, &source_hash, svc)
    });
    let (mut files, entries): (Vec<OutputFile>, Vec<IndexEntry>) = compiled.into_iter().unzip();
    files.push(index_file(checked, source_hash, entries));
    files
}

/// One sidecar's artifact and its index entry.
fn compile_one<'m>(
    checked: &'m Checked,
    slicer: &mesh_policy::Slicer<'_>,
    tables: &crate::lower::TableCache<'m>,
    source_hash: &str,
    svc: &crate::model::Service,
) -> (OutputFile, IndexEntry) {
    let body = crate::lower::lower_sidecar_for_encoding(checked, slicer, tables, svc);
    let (text, body_hash) = mesh_artifact::encode(&body, crate::VERSION, source_hash);
    let name = artifact_file_name(&svc.namespace, &svc.name);
    let entry = IndexEntry {
        service: svc.key(),
        file: name.clone(),
        sha256: mesh_artifact::codec::sha256_tag(text.as_bytes()),
        body_hash,
    };
    (OutputFile { name, text }, entry)
}

/// The index naming every artifact.
fn index_file(checked: &Checked, source_hash: String, artifacts: Vec<IndexEntry>) -> OutputFile {
    let index = Index {
        format: format!("{FORMAT_NAME}.index"),
        format_version: FORMAT_VERSION,
        meshc_version: crate::VERSION.to_string(),
        mesh: checked.model.mesh.name.clone(),
        source_hash,
        artifacts,
    };
    let mut text = serde_json::to_string_pretty(&index).unwrap_or_default();
    text.push('\n');
    OutputFile {
        name: INDEX_FILE.to_string(),
        text,
    }
}

/// Compile every artifact and write the build output into `out`, as [`compile`] followed by
/// [`write_output`] would, without holding every artifact in memory: each worker writes an
/// artifact to its temporary name as soon as it is encoded, so writing overlaps lowering. The
/// commit is the same: everything synced, then renamed into place, the index last. Returns the
/// number of artifacts.
pub fn compile_into(checked: &Checked, out: &Path) -> std::io::Result<usize> {
    std::fs::create_dir_all(out)?;
    let old = old_index(out);
    let source_hash = crate::lower::source_hash(&checked.model);
    let slicer = crate::policy::slicer(checked);
    let tables = crate::lower::TableCache::default();
    let done = std::sync::atomic::AtomicBool::new(false);
    let services = &checked.model.services;
    let order: Vec<usize> = (0..services.len()).collect();
    let written = std::thread::scope(|s| {
        // Start writing back what is already written while the rest is compiled, so that the
        // final sync has less left to wait for.
        let _ = std::thread::Builder::new().spawn_scoped(s, || early_writeback(out, &done));
        // Set on every way out, a panic in a worker included, so the scope can join the thread.
        let _stop = SetOnDrop(&done);
        // One thread creates the files while the workers compile: creating files in one
        // directory takes the directory's lock, and a second creator only spins on it.
        let (tx, rx) = std::sync::mpsc::sync_channel::<(usize, OutputFile, IndexEntry)>(64);
        let writer = s.spawn(move || {
            let mut written: Vec<Option<std::io::Result<_>>> = Vec::new();
            written.resize_with(services.len(), || None);
            for (i, file, entry) in rx {
                written[i] = Some(write_temp(out, &file).map(|tmp| (tmp, entry)));
            }
            written
        });
        crate::par::map(&order, crate::par::cpus(), |&i| {
            let (file, entry) = compile_one(checked, &slicer, &tables, &source_hash, &services[i]);
            // The writer only stops receiving if it panicked, which the join below reports.
            let _ = tx.send((i, file, entry));
        });
        drop(tx);
        match writer.join() {
            Ok(w) => w
                .into_iter()
                .map(|r| r.unwrap_or_else(|| Err(std::io::Error::other("artifact not written"))))
                .collect::<Vec<_>>(),
            Err(_) => vec![Err(std::io::Error::other("the artifact writer panicked"))],
        }
    });
    let mut temps = Vec::with_capacity(written.len());
    let mut entries = Vec::with_capacity(written.len());
    let mut failure = None;
    for w in written {
        match w {
            Ok((tmp, entry)) => {
                temps.push((tmp, entry.file.clone()));
                entries.push(entry);
            }
            Err(e) => failure = failure.or(Some(e)),
        }
    }
    if let Some(e) = failure {
        remove_temps(&temps);
        return Err(e);
    }
    crate::timing::mark("artifacts compiled and written");
    commit(out, &temps)?;
    crate::timing::mark("artifacts synced and renamed");
    let count = entries.len();
    let index = index_file(checked, source_hash, entries);
    write_atomic(out, &index.name, &index.text)?;
    let written: std::collections::HashSet<&str> = temps.iter().map(|(_, n)| n.as_str()).collect();
    finish(out, old, &written);
    Ok(count)
}

/// Sets its flag when dropped.
struct SetOnDrop<'a>(&'a std::sync::atomic::AtomicBool);

impl Drop for SetOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Until `done`: sync the output's file system every so often.
fn early_writeback(out: &Path, done: &std::sync::atomic::AtomicBool) {
    let step = std::time::Duration::from_millis(25);
    let mut waited = std::time::Duration::ZERO;
    while !done.load(std::sync::atomic::Ordering::Relaxed) {
        std::thread::sleep(step);
        waited += step;
        if waited >= std::time::Duration::from_millis(150) {
            waited = std::time::Duration::ZERO;
            let _ = sync_file_system(out);
        }
    }
}

/// The temporary name a file is written under before it is renamed into place.
fn temp_name(dir: &Path, name: &str) -> std::path::PathBuf {
    dir.join(format!(".{name}.tmp-{}", std::process::id()))
}

/// Write `text` to `dir/name` through a temporary file that is synced and renamed into place.
pub fn write_atomic(dir: &Path, name: &str, text: &str) -> std::io::Result<()> {
    let tmp = temp_name(dir, name);
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

/// Threads writing files: creating files in one directory serialises on the file system's
/// locks, and more writers than cores only spin on them (measured on ext4).
const WRITERS: usize = 2;

/// Write `f` to its temporary name in `dir` and close it; the file is removed again on error.
/// (Starting each file's writeback at once, with `POSIX_FADV_DONTNEED`, was measured: it takes
/// the final sync from ~0.45 to ~0.3 s but costs the writers ~0.6 s more for 5,000 files.)
fn write_temp(dir: &Path, f: &OutputFile) -> std::io::Result<std::path::PathBuf> {
    let tmp = temp_name(dir, &f.name);
    let result = std::fs::File::create(&tmp).and_then(|mut t| t.write_all(f.text.as_bytes()));
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    Ok(tmp)
}

fn remove_temps(temps: &[(std::path::PathBuf, String)]) {
    for (tmp, _) in temps {
        let _ = std::fs::remove_file(tmp);
    }
}

/// Make written temporary files final: all of them synced, then each renamed to its name in
/// `dir`. On Linux the sync is one `syncfs` of the output's file system instead of one `fsync`
/// per file (5,000 `fsync`s cost seconds of kernel time); elsewhere, or if `syncfs` fails, each
/// file is synced on its own. Nothing is renamed before everything is synced; on an error the
/// temporary files are removed.
fn commit(dir: &Path, temps: &[(std::path::PathBuf, String)]) -> std::io::Result<()> {
    let mut failure = None;
    if !sync_file_system(dir) {
        let sync = |(tmp, _): &(std::path::PathBuf, String)| {
            std::fs::OpenOptions::new()
                .write(true)
                .open(tmp)?
                .sync_all()
        };
        for r in crate::par::map(temps, WRITERS, sync) {
            if let Err(e) = r {
                failure = failure.or(Some(e));
            }
        }
    }
    if let Some(e) = failure {
        remove_temps(temps);
        return Err(e);
    }
    for (tmp, name) in temps {
        if let Err(e) = std::fs::rename(tmp, dir.join(name)) {
            remove_temps(temps);
            return Err(e);
        }
    }
    Ok(())
}

/// Write many files atomically: every file to its temporary name, then [`commit`]. Files are
/// closed once written: a build may write more files than a process may hold open.
fn write_all_atomic(dir: &Path, files: &[&OutputFile]) -> std::io::Result<()> {
    let written = crate::par::map(files, WRITERS, |f| {
        write_temp(dir, f).map(|tmp| (tmp, f.name.clone()))
    });
    let mut temps = Vec::with_capacity(files.len());
    let mut failure = None;
    for w in written {
        match w {
            Ok(t) => temps.push(t),
            Err(e) => failure = failure.or(Some(e)),
        }
    }
    if let Some(e) = failure {
        remove_temps(&temps);
        return Err(e);
    }
    commit(dir, &temps)
}

/// Flush everything written to the file system holding `dir`; false when not done.
#[cfg(target_os = "linux")]
fn sync_file_system(dir: &Path) -> bool {
    std::fs::File::open(dir).is_ok_and(|d| rustix::fs::syncfs(&d).is_ok())
}

#[cfg(not(target_os = "linux"))]
fn sync_file_system(_dir: &Path) -> bool {
    false
}

/// The index of a previous build in `out`, if there is a readable one.
fn old_index(out: &Path) -> Option<Index> {
    std::fs::read(out.join(INDEX_FILE))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
}

/// After a build is in place: remove the artifacts a previous index named that this build did
/// not write, then sync the directory so the renames are durable.
fn finish(out: &Path, old: Option<Index>, written: &std::collections::HashSet<&str>) {
    if let Some(old) = old {
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
}

/// Write all files; artifacts first and the index last, so a reader that follows the index
/// never sees an index naming a file that is not there yet. Artifacts named by a previous index
/// in `out` and absent from this build are removed afterwards.
pub fn write_output(out: &Path, files: &[OutputFile]) -> std::io::Result<()> {
    std::fs::create_dir_all(out)?;
    let old = old_index(out);
    let (index, others): (Vec<&OutputFile>, Vec<&OutputFile>) =
        files.iter().partition(|f| f.name == INDEX_FILE);
    write_all_atomic(out, &others)?;
    for f in index {
        write_atomic(out, &f.name, &f.text)?;
    }
    let written: std::collections::HashSet<&str> = files.iter().map(|f| f.name.as_str()).collect();
    finish(out, old, &written);
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
    let Some(cm) = configmap else {
        // The usual case: artifacts are written as they are compiled.
        return match compile_into(&checked, out) {
            Ok(n) => {
                eprintln!("built {n} artifacts into `{}`", out.display());
                crate::drop_at_exit(checked);
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: cannot write to `{}`: {e}", out.display());
                ExitCode::from(2)
            }
        };
    };
    let mut files = compile(&checked);
    // Every file but the index.
    let artifacts = files.len().saturating_sub(1);
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
    if let Err(e) = write_output(out, &files) {
        eprintln!("error: cannot write to `{}`: {e}", out.display());
        return ExitCode::from(2);
    }
    eprintln!("built {artifacts} artifacts into `{}`", out.display());
    crate::drop_at_exit((checked, files));
    ExitCode::SUCCESS
}
