//! Time each phase of `meshc check` on a generated mesh:
//! `cargo run --release -p meshc --example phases -- 5000`.

use std::time::Instant;

// The same allocator as the `meshc` binary.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1000);
    let files = meshc::synth::generate(meshc::synth::SynthSpec::new(n));
    hwm("generated");
    let bytes: usize = files.iter().map(|(_, t)| t.len()).sum();
    let opts = meshc::LoadOptions::default();
    if std::env::var_os("RAW").is_some() {
        let t = Instant::now();
        let mut events = 0usize;
        for (_, text) in &files {
            let p = serde_saphyr::granit_parser::Parser::new_from_str(text);
            for e in p {
                if e.is_err() {
                    break;
                }
                events += 1;
            }
        }
        eprintln!(
            "raw granit events {:?} ({events} events, {bytes} bytes)",
            t.elapsed()
        );
        for (name, fast) in [("granit-parser", false), ("the fast path", true)] {
            let t = Instant::now();
            let mut docs = 0usize;
            for (p, text) in &files {
                if p.ends_with(".yaml") {
                    let limits = meshc::syntax::Limits::default();
                    docs += if fast {
                        meshc::syntax::parse_documents_fast(text, limits).map_or(0, |d| d.len())
                    } else {
                        meshc::syntax::parse_documents_granit(
                            meshc::source::FileId(0),
                            text,
                            limits,
                        )
                        .map_or(0, |d| d.len())
                    };
                }
            }
            eprintln!(
                "spanned trees from {name} {:?} ({docs} documents)",
                t.elapsed()
            );
        }
        let t = Instant::now();
        for (p, text) in &files {
            if p.ends_with(".yaml") {
                let _v: Vec<serde_json::Value> =
                    serde_saphyr::from_multiple(text).unwrap_or_default();
            }
        }
        eprintln!(
            "serde-saphyr to serde_json::Value (no spans) {:?}",
            t.elapsed()
        );
    }
    let total = Instant::now();
    let t = Instant::now();
    let mut sources = meshc::source::SourceMap::default();
    let (model, d) = meshc::load::build_model(&mut sources, files, &opts);
    eprintln!(
        "parse+decode {:?} ({} files, {bytes} bytes, {} diagnostics)",
        t.elapsed(),
        sources.files().count(),
        d.len()
    );
    hwm("parsed");
    if std::env::var_os("SERIAL").is_some() {
        // Each check phase alone, one after the other.
        let t = Instant::now();
        let v = meshc::validate::validate(&model);
        eprintln!("validate     {:?} ({} diagnostics)", t.elapsed(), v.len());
        let t = Instant::now();
        let (_p, pd) = meshc::policy::check(&model, &sources);
        eprintln!("policy       {:?} ({} diagnostics)", t.elapsed(), pd.len());
    } else {
        // As `meshc check` runs them: the semantic checks beside Cedar validation.
        let t = Instant::now();
        let checked = meshc::check_loaded(meshc::Loaded {
            sources,
            model,
            diagnostics: d,
            io_error: false,
            policies_parsed: None,
        });
        eprintln!(
            "validate+policy {:?} ({} diagnostics)",
            t.elapsed(),
            checked.diagnostics.len()
        );
    }
    eprintln!("total        {:?}", total.elapsed());
    hwm("end");
}

/// Print the peak resident memory so far (Linux; silent elsewhere).
fn hwm(after: &str) {
    if let Some(line) = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM"))
                .map(str::to_string)
        })
    {
        eprintln!(
            "peak memory after {after}: {}",
            line.trim_start_matches("VmHWM:").trim()
        );
    }
}
