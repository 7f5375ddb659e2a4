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

/// Remove what depends on where a rule was written (`source`) and the hashes that cover it, so
/// that two artifacts built from differently laid out files compare by meaning.
pub fn strip_sources(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(m) => {
            m.remove("source");
            m.remove("body_hash");
            m.remove("sha256");
            for x in m.values_mut() {
                strip_sources(x);
            }
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(strip_sources),
        _ => {}
    }
}
