//! Loading and watching: the artifact and the certificate files are re-read on file events in
//! their folders (debounced) and on a periodic fallback; a new artifact is swapped in only after
//! it decoded, verified and built.
//!
//! Watching the folder rather than the file is what makes Kubernetes ConfigMap and Secret
//! volumes work (they swap a `..data` symlink to a new timestamped folder) and editors that
//! save by rename-replace. Every event re-reads through the configured path and compares the
//! content hash, so unrelated events cost one read and one hash.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::event::{AccessKind, AccessMode};
use notify::{EventKind, RecursiveMode};
use notify_debouncer_full::{DebounceEventResult, Debouncer, RecommendedCache, new_debouncer};
use tokio::sync::watch;

use crate::lifecycle::Shared;
use crate::snapshot::{BuildContext, build};
use crate::tls::TlsState;

/// What one artifact re-read did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArtifactOutcome {
    /// Same bytes as last time (good or bad): nothing to do.
    Unchanged,
    /// A new artifact is serving; its body hash.
    Loaded(String),
    /// Refused; the previous artifact (if any) keeps serving.
    Failed(String),
}

/// `sha256:<hex>` of a file's content, read in small pieces: the same text
/// [`mesh_artifact::codec::sha256_tag`] gives for the whole content, without holding it.
fn hash_file(path: &Path) -> std::io::Result<String> {
    use sha2::{Digest, Sha256};
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => hasher.update(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(format!("sha256:{}", hex::encode(hasher.finalize())))
}

/// Read, verify, build and publish the artifact if its bytes changed. Blocking (file read,
/// Cedar parsing): run it off the request threads.
///
/// Memory: an unchanged file is only hashed, piece by piece, never held whole. A changed one is
/// read whole, decoded, and its bytes freed before the runtime tables are built; the decoded
/// body is consumed by the build, so the new snapshot keeps only what the request path reads.
pub fn reload_artifact(shared: &Shared) -> ArtifactOutcome {
    let path = &shared.config.artifact;
    shared.loader.lock().reads += 1;
    let io_error = |e: std::io::Error| {
        (
            format!("io:{:?}", e.kind()),
            Err(Refusal::Other(format!(
                "cannot read `{}`: {e}",
                path.display()
            ))),
        )
    };
    let unchanged = |key: &str| shared.loader.lock().last_key.as_deref() == Some(key);
    let (key, result) = match hash_file(path).and_then(|h| {
        if unchanged(&h) {
            return Ok(None);
        }
        std::fs::read(path).map(Some)
    }) {
        Err(e) => io_error(e),
        Ok(None) => return ArtifactOutcome::Unchanged,
        Ok(Some(bytes)) => {
            // The file may have changed between hashing and reading: the bytes read decide.
            let hash = mesh_artifact::codec::sha256_tag(&bytes);
            if unchanged(&hash) {
                return ArtifactOutcome::Unchanged;
            }
            let decoded = mesh_artifact::decode(&bytes);
            drop(bytes);
            let refused = |e: &dyn std::fmt::Display| {
                Refusal::Other(format!("artifact `{}` refused: {e}", path.display()))
            };
            let result = decoded.map_err(|e| refused(&e)).and_then(|artifact| {
                // Before the build: an artifact for another workload gets no tables and
                // no metric series.
                let with = certificate_for(shared, &artifact.body.sidecar.identity).map_err(
                    |certificate| Refusal::Identity {
                        message: format!(
                            "artifact `{}` refused: it is for `{}`, but this sidecar's \
                                 certificate is `{certificate}` (an artifact compiled for \
                                 another workload)",
                            path.display(),
                            artifact.body.sidecar.identity
                        ),
                        identity: artifact.body.sidecar.identity.clone(),
                    },
                )?;
                let ctx = BuildContext {
                    metrics: &shared.metrics,
                    upstreams: &shared.upstreams,
                    app_addr: shared.config.app_addr,
                };
                build(artifact, hash.clone(), &ctx)
                    .map(|snapshot| (snapshot, with))
                    .map_err(|e| refused(&e))
            });
            (hash, result)
        }
    };
    let mut state = shared.loader.lock();
    if state.last_key.as_deref() == Some(key.as_str()) {
        return ArtifactOutcome::Unchanged;
    }
    state.last_key = Some(key);
    state.refused_identity = None;
    match result {
        Ok((snapshot, with)) => {
            let body_hash = snapshot.header.body_hash.clone();
            if let Some(tls) = with {
                // The certificate held back for want of this artifact goes in with it.
                shared.tls.install(tls);
                shared.metrics.cert_reload_success.inc();
                tracing::info!(identity = %snapshot.sidecar.identity, "certificates reloaded with the artifact for their identity");
                state.pending_tls = None;
                state.last_cert_error = None;
            }
            shared.metrics.set_artifact_info(snapshot.info());
            tracing::info!(
                service = %snapshot.sidecar.service,
                body_hash = %body_hash,
                source_hash = %snapshot.header.source_hash,
                destinations = snapshot.counts.destinations,
                clusters = snapshot.counts.clusters,
                "artifact loaded"
            );
            shared.live.store(Some(Arc::new(snapshot)));
            shared.upstreams.prune();
            shared.metrics.reload_success.inc();
            state.last_error = None;
            ArtifactOutcome::Loaded(body_hash)
        }
        Err(refusal) => {
            let message = match refusal {
                Refusal::Identity { message, identity } => {
                    state.refused_identity = Some(identity);
                    message
                }
                Refusal::Other(message) => message,
            };
            shared.metrics.reload_failure.inc();
            if shared.live.load().is_some() {
                tracing::error!(error = %message, "artifact refused; the last good artifact keeps serving");
            } else {
                tracing::error!(error = %message, "artifact refused; not ready until a valid artifact is loaded");
            }
            state.last_error = Some(message.clone());
            ArtifactOutcome::Failed(message)
        }
    }
}

/// Why an artifact was refused.
enum Refusal {
    /// It is for another workload than the certificate's (`identity`).
    Identity {
        message: String,
        identity: String,
    },
    Other(String),
}

/// Whether an artifact for `identity` may be served: `Ok(None)` with the current certificate,
/// `Ok(Some(_))` with the certificate held back for want of an artifact for its identity (to
/// be installed with it), `Err` with the current certificate's identity otherwise.
fn certificate_for(shared: &Shared, identity: &str) -> Result<Option<Arc<TlsState>>, String> {
    let current = shared.tls.current();
    if current.identity == identity {
        return Ok(None);
    }
    match &shared.loader.lock().pending_tls {
        Some(p) if p.identity == identity => Ok(Some(p.clone())),
        _ => Err(current.identity.clone()),
    }
}

/// Re-read the certificate files; swap them in when they changed, are valid, and carry the
/// identity of the artifact being served.
///
/// A certificate for another identity than the served artifact's would have this sidecar
/// present one workload's identity while enforcing another's policies: it is refused like an
/// unreadable one (logged, counted once, `/config` `certificate.last_error`), the current
/// certificates stay, and it is held back: an artifact for its identity, when one arrives (or
/// was refused for want of it), goes in together with it.
pub fn reload_certs(shared: &Shared) {
    let read = shared.tls.read_changed();
    let mut state = shared.loader.lock();
    let new = match read {
        Ok(None) => {
            state.pending_tls = None;
            state.last_cert_error = None;
            return;
        }
        Ok(Some(new)) => new,
        Err(e) => {
            state.pending_tls = None;
            cert_failure(shared, &mut state, e.to_string());
            return;
        }
    };
    if state.refused_identity.as_deref() == Some(new.identity.as_str()) {
        // The artifact refused for want of this certificate is looked at again.
        state.last_key = None;
    }
    let live = shared.live.load();
    match live.as_ref().map(|s| s.sidecar.identity.as_str()) {
        Some(served) if served != new.identity => {
            let message = format!(
                "certificate `{}` refused: its SPIFFE ID `{}` differs from the identity of the \
                 artifact being served, `{served}`; the current certificates stay until an \
                 artifact for `{}` is loaded",
                shared.config.cert.display(),
                new.identity,
                new.identity
            );
            state.pending_tls = Some(Arc::new(new));
            cert_failure(shared, &mut state, message);
        }
        _ => {
            let identity = new.identity.clone();
            shared.tls.install(Arc::new(new));
            shared.metrics.cert_reload_success.inc();
            tracing::info!(identity = %identity, "certificates reloaded");
            state.pending_tls = None;
            state.last_cert_error = None;
        }
    }
}

/// Count a given certificate failure once: a rotation that writes cert and key separately
/// fails in between, then succeeds on the next event.
fn cert_failure(shared: &Shared, state: &mut LoaderState, message: String) {
    if state.last_cert_error.as_deref() != Some(message.as_str()) {
        shared.metrics.cert_reload_failure.inc();
        tracing::error!(error = %message, "certificate reload failed; the current certificates stay");
        state.last_cert_error = Some(message);
    }
}

/// Loader bookkeeping.
#[derive(Debug, Default)]
pub struct LoaderState {
    /// Content hash (or I/O error kind) of the last artifact read, good or bad.
    pub last_key: Option<String>,
    /// Why the last artifact read was refused, while it stays refused.
    pub last_error: Option<String>,
    pub last_cert_error: Option<String>,
    /// Artifact re-reads attempted (changed or not), for tests and diagnostics.
    pub reads: u64,
    /// A valid certificate refused because its identity is not the served artifact's, held
    /// back until an artifact for that identity is loaded.
    pub pending_tls: Option<Arc<TlsState>>,
    /// The identity of the last artifact read, when it was refused for not being the
    /// certificate's.
    pub refused_identity: Option<String>,
}

/// The debounced file watcher (its threads live as long as this value).
pub type Watcher = Debouncer<notify::RecommendedWatcher, RecommendedCache>;

/// Whether a watcher event may mean a watched file changed. Opening a file and closing it
/// without writing (inotify's `IN_OPEN`, `IN_CLOSE_NOWRITE`) do not: the proxy's own re-reads
/// cause them, and so do the other sidecars sharing a certificate folder, so reacting to them
/// re-read everything in a loop, once per debounce window.
pub fn is_change(kind: &EventKind) -> bool {
    !matches!(
        kind,
        EventKind::Access(
            AccessKind::Open(_) | AccessKind::Read | AccessKind::Close(AccessMode::Read)
        )
    )
}

/// Folders to watch for a set of files: each file's parent, and for a symlink, its target's
/// parent too (a file linked from elsewhere changes there).
pub fn watch_dirs(files: &[&Path]) -> Vec<PathBuf> {
    let mut dirs = BTreeSet::new();
    for f in files {
        let parent = |p: &Path| -> PathBuf {
            match p.parent() {
                Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
                _ => PathBuf::from("."),
            }
        };
        dirs.insert(parent(f));
        if let Ok(target) = std::fs::canonicalize(f) {
            dirs.insert(parent(&target));
        }
    }
    dirs.into_iter().collect()
}

/// Start watching; `None` (logged) when the platform refuses, leaving the periodic re-read.
/// notify-debouncer-full turns a burst of events (a writer's create, modify, close and rename,
/// or a ConfigMap's symlink swap) into one batch after `debounce`; a batch that holds a possible
/// change (or a watcher error) bumps `events`. Its flushing thread wakes once per `debounce`.
pub fn start_watcher(
    dirs: &[PathBuf],
    debounce: Duration,
    events: watch::Sender<u64>,
) -> Option<Watcher> {
    let handler = move |result: DebounceEventResult| {
        let changed = match &result {
            Ok(batch) => batch.iter().any(|e| is_change(&e.event.kind)),
            Err(errors) => {
                for e in errors {
                    tracing::warn!(error = %e, "file watcher error");
                }
                true
            }
        };
        if changed {
            events.send_modify(|n| *n = n.wrapping_add(1));
        }
    };
    let mut debouncer = match new_debouncer(debounce, Some(debounce), handler) {
        Ok(d) => d,
        Err(e) => {
            tracing::warn!(error = %e, "cannot start a file watcher; relying on the periodic re-read");
            return None;
        }
    };
    for dir in dirs {
        if let Err(e) = debouncer.watch(dir, RecursiveMode::NonRecursive) {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot watch folder; relying on the periodic re-read");
        }
    }
    Some(debouncer)
}

#[cfg(test)]
mod tests {
    use super::*;
    use notify::event::{CreateKind, ModifyKind, RemoveKind};

    #[test]
    fn reads_are_not_changes_writes_are() {
        assert!(!is_change(&EventKind::Access(AccessKind::Open(
            AccessMode::Any
        ))));
        assert!(!is_change(&EventKind::Access(AccessKind::Close(
            AccessMode::Read
        ))));
        assert!(is_change(&EventKind::Access(AccessKind::Close(
            AccessMode::Write
        ))));
        assert!(is_change(&EventKind::Modify(ModifyKind::Any)));
        assert!(is_change(&EventKind::Create(CreateKind::File)));
        assert!(is_change(&EventKind::Remove(RemoveKind::Any)));
        assert!(is_change(&EventKind::Any));
    }
}
