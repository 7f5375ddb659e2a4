//! The access log: one JSON object per request on stdout (diagnostics go to stderr).

use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

/// One access log line.
#[derive(Debug, Serialize)]
pub struct AccessEntry<'a> {
    /// `inbound` or `outbound`.
    pub direction: &'static str,
    pub method: &'a str,
    pub authority: &'a str,
    pub path: &'a str,
    pub status: u16,
    /// Destination service `namespace/name` (inbound: this sidecar's service).
    pub destination: &'a str,
    /// Matched route `namespace/name`, empty when none.
    pub route: &'a str,
    /// Cluster key the request was sent to, empty when none.
    pub cluster: &'a str,
    /// Endpoint of the last attempt, empty when none.
    pub endpoint: &'a str,
    /// Inbound: the caller's SPIFFE ID (empty for plaintext callers).
    pub peer: &'a str,
    /// Inbound: `allowed`, `denied` or `audited_deny`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authz: Option<&'static str>,
    /// Upstream attempts made (0 for local replies).
    pub attempts: u32,
    /// Time until the response headers were sent.
    pub duration_us: u64,
    /// Time the last upstream attempt took until its response headers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream_us: Option<u64>,
}

#[derive(Serialize)]
struct Line<'a> {
    ts_ms: u64,
    #[serde(flatten)]
    entry: &'a AccessEntry<'a>,
}

/// Write one line to stdout. A failed write (closed stdout) is ignored: logging must never fail
/// a request.
pub fn write(entry: &AccessEntry<'_>) {
    let ts_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0);
    let Ok(mut line) = serde_json::to_vec(&Line { ts_ms, entry }) else { return };
    line.push(b'\n');
    let _ = std::io::stdout().lock().write_all(&line);
}
