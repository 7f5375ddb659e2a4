//! Canonical encoding and verified decoding of artifact files.
//!
//! An artifact file is one JSON object, `{"header": {..}, "body": {..}}`. The body is written in
//! a canonical form (compact, struct fields in declaration order, maps sorted) and
//! `header.body_hash` is the SHA-256 of the body's bytes exactly as they stand in the file, so a
//! loader verifies integrity without re-encoding anything.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

use crate::types::{Body, FORMAT_NAME, FORMAT_VERSION, Header};

/// Why an artifact was refused. Messages are lower case and name what to do next.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LoadError {
    #[error("artifact is empty")]
    Empty,
    #[error("artifact is not valid JSON at line {line}, column {column}: {message}")]
    Syntax {
        line: usize,
        column: usize,
        message: String,
    },
    #[error("artifact is truncated (input ends at line {line}, column {column})")]
    Truncated { line: usize, column: usize },
    #[error("not a meshc artifact: format is `{found}`, expected `{FORMAT_NAME}`")]
    WrongFormat { found: String },
    #[error(
        "unsupported artifact format version {found} (this build reads version {expected}); rebuild the artifact with a matching meshc"
    )]
    UnsupportedVersion { found: u32, expected: u32 },
    #[error("artifact body hash mismatch: header says `{expected}`, body hashes to `{actual}`")]
    HashMismatch { expected: String, actual: String },
    #[error("artifact body is invalid: {0}")]
    Body(String),
    #[error("artifact header is invalid: {0}")]
    Header(String),
}

/// A decoded, verified artifact.
#[derive(Clone, Debug, PartialEq)]
pub struct Artifact {
    pub header: Header,
    pub body: Body,
}

/// `sha256:<hex>` of some bytes.
pub fn sha256_tag(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    format!("sha256:{}", hex::encode(digest))
}

/// Canonical text of a body: compact JSON on one line, struct fields in declaration order,
/// every map sorted by key.
///
/// Compact rather than indented: the artifacts of a large mesh are half the size (they ship in
/// ConfigMaps, which Kubernetes caps at 1 MiB, and every sidecar parses its own at load), and
/// `jq .` or `meshc diff` show them to people.
///
/// The free-form JSON (`authz.entities`) is sorted here too: when another crate in the build
/// enables serde_json's `preserve_order` feature (cedar-policy does), `serde_json::Value` objects
/// keep insertion order, and the encoding must not depend on which crates were linked. A body
/// whose entities are already sorted (the compiler sorts them once per bundle) is not copied.
pub fn encode_body<T: Serialize + Clone>(body: &Body<T>) -> String {
    // Serialising plain-data types into a String cannot fail: no maps with non-string keys,
    // no fallible Serialize impls.
    let text = if is_sorted_deep(&body.authz.entities) {
        serde_json::to_string(body)
    } else {
        let mut canonical = body.clone();
        canonical.authz.entities.sort_all_objects();
        serde_json::to_string(&canonical)
    };
    text.unwrap_or_else(|e| format!("\"unencodable: {e}\""))
}

/// Whether every object inside `v` has its keys in sorted order.
fn is_sorted_deep(v: &serde_json::Value) -> bool {
    match v {
        serde_json::Value::Array(items) => items.iter().all(is_sorted_deep),
        serde_json::Value::Object(map) => {
            map.keys().zip(map.keys().skip(1)).all(|(a, b)| a < b)
                && map.values().all(is_sorted_deep)
        }
        _ => true,
    }
}

/// Encode a whole artifact file (`{"header":{..},"body":{..}}` and a newline); returns the file
/// text and the body hash, which is taken over exactly the body bytes that end up in the file
/// and is what [`decode`] verifies.
pub fn encode<T: Serialize + Clone>(
    body: &Body<T>,
    meshc_version: &str,
    source_hash: &str,
) -> (String, String) {
    let body_text = encode_body(body);
    let body_hash = sha256_tag(body_text.as_bytes());
    let header = Header {
        format: FORMAT_NAME.to_string(),
        format_version: FORMAT_VERSION,
        meshc_version: meshc_version.to_string(),
        source_hash: source_hash.to_string(),
        body_hash: body_hash.clone(),
    };
    let header_text =
        serde_json::to_string(&header).unwrap_or_else(|e| format!("\"unencodable: {e}\""));
    let mut file = String::with_capacity(body_text.len() + header_text.len() + 24);
    file.push_str("{\"header\":");
    file.push_str(&header_text);
    file.push_str(",\"body\":");
    file.push_str(&body_text);
    file.push_str("}\n");
    (file, body_hash)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile<'a> {
    header: serde_json::Value,
    #[serde(borrow)]
    body: &'a RawValue,
}

/// Read just the header, after checking that the text is one well-formed artifact object.
/// Does not verify the body hash.
pub fn decode_header(bytes: &[u8]) -> Result<Header, LoadError> {
    let (header, _) = split(bytes)?;
    Ok(header)
}

/// Line and column (in bytes), both 1-based, of a byte offset.
fn position(bytes: &[u8], offset: usize) -> (usize, usize) {
    let before = bytes.get(..offset).unwrap_or(bytes);
    let line_start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    let line = 1 + before.iter().filter(|&&b| b == b'\n').count();
    (line, offset - line_start + 1)
}

fn split(bytes: &[u8]) -> Result<(Header, &RawValue), LoadError> {
    let Some(first) = bytes.iter().position(|b| !b.is_ascii_whitespace()) else {
        return Err(LoadError::Empty);
    };
    if bytes[first] != b'{' {
        let (line, column) = position(bytes, first);
        return Err(LoadError::Syntax {
            line,
            column,
            message: "an artifact is a JSON object and starts with `{`".to_string(),
        });
    }
    let raw: RawFile<'_> = serde_json::from_slice(bytes).map_err(|e| {
        // A number cut short (`1.`, `2e`) is reported as an invalid number rather than as an
        // early end of input: that is a truncation too.
        let (end_line, _) = position(bytes, bytes.len());
        let cut_number = e.is_syntax()
            && e.line() == end_line
            && bytes.last().is_some_and(|b| b".eE+-".contains(b))
            && e.to_string().starts_with("invalid number");
        if e.is_eof() || cut_number {
            LoadError::Truncated {
                line: e.line(),
                column: e.column(),
            }
        } else {
            LoadError::Syntax {
                line: e.line(),
                column: e.column(),
                message: e.to_string(),
            }
        }
    })?;
    if !raw.header.is_object() {
        return Err(LoadError::Header("`header` is not an object".to_string()));
    }
    // Check format and version before the strict header shape, so that a future version with
    // new header fields is reported as a version problem, not a shape problem.
    let format = raw
        .header
        .get("format")
        .and_then(|v| v.as_str())
        .unwrap_or_default();
    if format != FORMAT_NAME {
        return Err(LoadError::WrongFormat {
            found: format.to_string(),
        });
    }
    let version = raw.header.get("format_version");
    match version.map(serde_json::Value::as_u64) {
        Some(Some(v)) if v == u64::from(FORMAT_VERSION) => {}
        Some(Some(v)) => {
            return Err(LoadError::UnsupportedVersion {
                found: u32::try_from(v).unwrap_or(u32::MAX),
                expected: FORMAT_VERSION,
            });
        }
        Some(None) => {
            return Err(LoadError::Header(
                "`format_version` is not a whole number".to_string(),
            ));
        }
        None => return Err(LoadError::Header("`format_version` is missing".to_string())),
    }
    let header: Header =
        serde_json::from_value(raw.header).map_err(|e| LoadError::Header(e.to_string()))?;
    Ok((header, raw.body))
}

/// Decode and verify an artifact: format, version, body hash, then the body itself.
pub fn decode(bytes: &[u8]) -> Result<Artifact, LoadError> {
    let (header, raw_body) = split(bytes)?;
    let actual = sha256_tag(raw_body.get().as_bytes());
    if actual != header.body_hash {
        return Err(LoadError::HashMismatch {
            expected: header.body_hash,
            actual,
        });
    }
    let body: Body =
        serde_json::from_str(raw_body.get()).map_err(|e| LoadError::Body(e.to_string()))?;
    Ok(Artifact { header, body })
}
