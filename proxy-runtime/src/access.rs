//! The access log: one JSON object per request on stdout (diagnostics go to stderr).

use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

/// One access log line.
#[derive(Clone, Copy, Debug, Serialize)]
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
    let Ok(mut line) = serde_json::to_vec(&Line { ts_ms, entry }) else {
        return;
    };
    line.push(b'\n');
    let _ = std::io::stdout().lock().write_all(&line);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_is_one_flat_json_object() {
        let entry = AccessEntry {
            direction: "outbound",
            method: "GET",
            authority: "b",
            path: "/x",
            status: 200,
            destination: "default/b",
            route: "default/r",
            cluster: "default/b:80",
            endpoint: "10.0.0.1:15006",
            peer: "",
            authz: None,
            attempts: 1,
            duration_us: 420,
            upstream_us: Some(300),
        };
        let v: serde_json::Value = serde_json::to_value(Line {
            ts_ms: 7,
            entry: &entry,
        })
        .unwrap();
        assert_eq!(v["ts_ms"], 7);
        assert_eq!(v["status"], 200);
        assert_eq!(v["route"], "default/r");
        assert_eq!(v["duration_us"], 420);
        assert!(v.get("authz").is_none(), "absent fields are omitted: {v}");
    }
}
