//! The diagnostics reference page (`docs/diagnostics.md`), compiled into the binary so that
//! `meshc codes MCxxxx` prints an entry offline.

use crate::diag::Code;

/// The whole page.
pub const DIAGNOSTICS_MD: &str = include_str!("../../docs/diagnostics.md");

pub fn diagnostics_markdown() -> String {
    DIAGNOSTICS_MD.to_string()
}

/// The section of one code: from its `## MCxxxx` heading to the next heading of that level.
pub fn code_section(code: Code) -> Option<&'static str> {
    let heading = format!("## {} ", code.as_str());
    let start = DIAGNOSTICS_MD.find(&heading)?;
    let rest = &DIAGNOSTICS_MD[start..];
    let end = rest[3..].find("\n## ").map_or(rest.len(), |i| i + 4);
    Some(rest[..end].trim_end())
}

pub fn code_markdown(code: Code) -> String {
    match code_section(code) {
        Some(s) => format!("{s}\n"),
        None => format!(
            "## {} {}\n\n{}\n",
            code.as_str(),
            code.slug(),
            code.summary()
        ),
    }
}
