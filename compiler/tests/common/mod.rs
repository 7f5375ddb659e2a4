//! Helpers shared by the meshc integration tests that check in-memory files.
#![allow(dead_code)]

use meshc::{Checked, Code, LoadOptions};

/// `meshc check` on `(path, text)` files held in memory.
pub fn check(files: &[(&str, &str)]) -> Checked {
    meshc::check_sources(
        files
            .iter()
            .map(|(p, t)| (p.to_string(), t.to_string()))
            .collect(),
        &LoadOptions::default(),
    )
}

/// The code of every diagnostic, in order.
pub fn codes(checked: &Checked) -> Vec<Code> {
    checked.diagnostics.iter().map(|d| d.code).collect()
}
