//! Differential fuzzing of the fast YAML path against granit-parser: whenever the fast path
//! accepts the input, granit-parser must accept it too and build the same trees, spans included.
//! Run: `cargo install cargo-fuzz && cargo +nightly fuzz run yaml_fast` (from the repository root).
#![no_main]

use libfuzzer_sys::fuzz_target;
use meshc::source::FileId;
use meshc::syntax::{Limits, parse_documents_fast, parse_documents_granit};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let limits = Limits::default();
    if let Some(fast) = parse_documents_fast(text, limits) {
        match parse_documents_granit(FileId(0), text, limits) {
            // Compared through `Debug`, where NaN equals NaN.
            Ok(full) => assert_eq!(format!("{fast:?}"), format!("{full:?}")),
            Err(d) => panic!("the fast path accepted input granit rejects: {}", d.message),
        }
    }
});
