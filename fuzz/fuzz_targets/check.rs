//! Fuzz the parse and validate path: any bytes, as a YAML file and as a Cedar file.
//! Run: `cargo install cargo-fuzz && cargo +nightly fuzz run check` (from the repository root).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data).into_owned();
    let checked = meshc::check_sources(
        vec![("a.yaml".to_string(), text.clone()), ("p.cedar".to_string(), text)],
        &meshc::LoadOptions::default(),
    );
    let _ = meshc::render::json(&checked.sources, &checked.diagnostics);
});
