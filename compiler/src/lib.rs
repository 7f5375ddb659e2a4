//! `meshc`: validates a mesh definition and compiles it into per-sidecar artifacts.
//!
//! Phases, each returning its result together with its diagnostics:
//! [`load`] (files → [`source::SourceMap`] → [`syntax`] trees → [`decode`] → [`model::Model`]),
//! [`validate`] (semantic checks), [`policy`] (Cedar), [`lower`] (model → artifacts),
//! [`explain`]. [`render`] turns diagnostics into text. Only [`load`], [`build`] and
//! the binary touch the file system.

pub mod build;
pub mod certs;
pub mod certs_cmd;
pub mod decode;
pub mod diag;
pub mod diff;
pub mod docs;
pub mod explain;
pub mod graph;
pub mod load;
pub mod lower;
pub mod model;
pub mod par;
pub mod policy;
pub mod render;
pub mod schema;
pub mod source;
pub mod syntax;
pub mod synth;
pub mod validate;
pub mod values;

use std::path::Path;

pub use diag::{Code, Diagnostic, Severity, Summary};
pub use load::{LoadOptions, Loaded};

/// The version written into artifacts.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Everything `meshc check` knows after one run.
#[derive(Debug)]
pub struct Checked {
    pub sources: source::SourceMap,
    pub model: model::Model,
    pub policies: policy::Policies,
    /// Sorted by file and position.
    pub diagnostics: Vec<Diagnostic>,
    pub io_error: bool,
}

impl Checked {
    pub fn summary(&self) -> Summary {
        Summary::of(&self.diagnostics)
    }
    pub fn has_errors(&self) -> bool {
        self.diagnostics
            .iter()
            .any(|d| d.severity == Severity::Error)
    }
}

/// Phase timings on standard error when `MESHC_TIME` is set: how long after the first mark each
/// phase ended, and on which thread. For finding where a large mesh spends its time.
pub mod timing {
    use std::sync::OnceLock;
    use std::time::Instant;

    fn start() -> Option<Instant> {
        static START: OnceLock<Option<Instant>> = OnceLock::new();
        *START.get_or_init(|| std::env::var_os("MESHC_TIME").map(|_| Instant::now()))
    }

    /// Record that `phase` just ended.
    pub fn mark(phase: &str) {
        if let Some(t) = start() {
            let thread = std::thread::current();
            eprintln!(
                "[meshc-time] {:>9.1} ms  {phase} ({})",
                t.elapsed().as_secs_f64() * 1000.0,
                thread.name().unwrap_or("worker")
            );
        }
    }
}

/// Let the process's exit reclaim `value` instead of freeing it piece by piece. For the commands
/// that end the process right after their work: a large mesh's model and Cedar sets are millions
/// of small allocations, and freeing them is serial work of about a twentieth of `meshc check`.
pub fn drop_at_exit<T>(value: T) {
    std::mem::forget(value);
}

/// Write a command's output to stdout; `false` when that failed. A reader that went away
/// (`meshc check | head`) is not a failure: the rest of the output is not wanted, and the exit
/// code still reports what the command found.
pub fn write_stdout(text: &str) -> bool {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => true,
        Err(e) => e.kind() == std::io::ErrorKind::BrokenPipe,
    }
}

/// Run every check on in-memory inputs.
pub fn check_loaded(loaded: Loaded) -> Checked {
    let Loaded {
        sources,
        model,
        mut diagnostics,
        io_error,
        policies_parsed,
    } = loaded;
    // The semantic checks and Cedar validation are independent: run them side by side.
    let (semantic, (policies, policy_diags)) = std::thread::scope(|s| {
        let cedar = std::thread::Builder::new()
            .stack_size(256 << 20)
            .spawn_scoped(s, || {
                let r = policy::check_parsed(&model, &sources, policies_parsed);
                timing::mark("cedar validated");
                r
            });
        let semantic = validate::validate(&model);
        timing::mark("semantic checks");
        let cedar = match cedar {
            Ok(handle) => match handle.join() {
                Ok(v) => v,
                Err(panic) => std::panic::resume_unwind(panic),
            },
            Err(_) => policy::check(&model, &sources),
        };
        (semantic, cedar)
    });
    diagnostics.extend(semantic);
    diagnostics.extend(policy_diags);
    diagnostics.sort_by_key(Diagnostic::sort_key);
    diagnostics.dedup();
    timing::mark("checked");
    Checked {
        sources,
        model,
        policies,
        diagnostics,
        io_error,
    }
}

/// Load a directory for a command that needs a model without errors (certs, the Cedar schema):
/// on errors, print them and return the exit code to use.
pub fn load_or_report(
    dir: &Path,
    opts: &LoadOptions,
    human: render::HumanOptions,
) -> Result<Loaded, std::process::ExitCode> {
    let loaded = with_stack(|| load::load_dir(dir, opts));
    let errors: Vec<_> = loaded
        .diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .cloned()
        .collect();
    if errors.is_empty() {
        return Ok(loaded);
    }
    eprint!(
        "{}",
        render::render(render::Format::Human, &loaded.sources, &errors, human)
    );
    Err(std::process::ExitCode::from(if loaded.io_error {
        2
    } else {
        1
    }))
}

/// Run `f` on a thread with a large stack: the YAML parser and Cedar recurse on nested input,
/// and the depth budgets must be what stops deep input, not the caller's stack size.
fn with_stack<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| {
        match std::thread::Builder::new()
            .name("meshc-check".into())
            .stack_size(256 << 20)
            .spawn_scoped(s, f)
        {
            Ok(handle) => match handle.join() {
                Ok(v) => v,
                Err(panic) => std::panic::resume_unwind(panic),
            },
            Err(_) => unreachable_spawn(),
        }
    })
}

#[cold]
fn unreachable_spawn() -> ! {
    eprintln!("error: cannot start a thread");
    std::process::exit(2)
}

/// Read a directory and run every check.
pub fn check_dir(root: &Path, opts: &LoadOptions) -> Checked {
    timing::mark("start");
    with_stack(|| check_loaded(load::load_dir(root, opts)))
}

/// Run every check on (path, text) pairs, without touching the file system.
pub fn check_sources(inputs: Vec<(String, String)>, opts: &LoadOptions) -> Checked {
    with_stack(|| {
        let mut sources = source::SourceMap::default();
        let (model, diagnostics, parsed) = load::build_model_parsed(&mut sources, inputs, opts);
        check_loaded(Loaded {
            sources,
            model,
            diagnostics,
            io_error: false,
            policies_parsed: Some(parsed),
        })
    })
}
