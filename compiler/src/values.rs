//! Value syntax shared by decoding and validation: durations, names, hosts, paths, headers.

use mesh_artifact::Protocol;

/// HTTP methods Gateway API `HTTPRouteMatch.method` accepts.
pub const METHODS: &[&str] = &[
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
];

/// Parse a Gateway API duration (GEP-2257): `^([0-9]{1,5}(h|m|s|ms)){1,4}$`, into milliseconds.
pub fn parse_duration(s: &str) -> Result<u64, &'static str> {
    if s.is_empty() {
        return Err("empty duration");
    }
    let bytes = s.as_bytes();
    let mut i = 0;
    let mut total: u64 = 0;
    let mut parts = 0;
    while i < bytes.len() {
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        let digits = &s[start..i];
        if digits.is_empty() {
            return Err("expected a number");
        }
        if digits.len() > 5 {
            return Err("at most 5 digits per unit");
        }
        let n: u64 = digits.parse().map_err(|_| "expected a number")?;
        let unit_ms = if s[i..].starts_with("ms") {
            i += 2;
            1
        } else if s[i..].starts_with('h') {
            i += 1;
            3_600_000
        } else if s[i..].starts_with('m') {
            i += 1;
            60_000
        } else if s[i..].starts_with('s') {
            i += 1;
            1_000
        } else if i == bytes.len() {
            return Err("missing unit");
        } else {
            return Err("unknown unit");
        };
        total = total.saturating_add(n.saturating_mul(unit_ms));
        parts += 1;
        if parts > 4 {
            return Err("at most 4 number-unit pairs");
        }
    }
    Ok(total)
}

/// RFC 1123 DNS label: Kubernetes names of services and namespaces.
pub fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// RFC 1123 DNS subdomain: names of most other Kubernetes objects.
pub fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// A host: an IPv4/IPv6 address or a DNS name (case-insensitive).
pub fn is_valid_host(s: &str) -> bool {
    if s.parse::<std::net::IpAddr>().is_ok() {
        return true;
    }
    let lower = s.to_ascii_lowercase();
    is_dns_subdomain(lower.trim_end_matches('.'))
}

/// A route hostname: a DNS name, optionally with a leading `*.`.
pub fn is_valid_route_hostname(s: &str) -> bool {
    let rest = s.strip_prefix("*.").unwrap_or(s);
    rest.parse::<std::net::IpAddr>().is_err() && is_dns_subdomain(&rest.to_ascii_lowercase())
}

/// A path for `Exact` / `PathPrefix` matches and path modifiers.
pub fn check_path(p: &str) -> Result<(), &'static str> {
    if !p.starts_with('/') {
        return Err("must start with `/`");
    }
    if p.contains(['?', '#']) {
        return Err("contains `?` or `#`");
    }
    if p.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("contains whitespace");
    }
    if p.contains("//") {
        return Err("contains `//`");
    }
    if p.split('/').any(|seg| seg == "." || seg == "..") {
        return Err("contains a `.` or `..` segment");
    }
    Ok(())
}

/// HTTP header field name (RFC 9110 token).
pub fn is_header_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 256
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Protocol of a Kubernetes Service port: `appProtocol` first, then the Istio-style port name
/// prefix (`http-`, `http2-`, `grpc-`), else HTTP/1.1.
pub fn infer_protocol(app_protocol: Option<&str>, port_name: Option<&str>) -> Protocol {
    let pick = |s: &str| -> Option<Protocol> {
        let s = s.to_ascii_lowercase();
        let base = s.split(['-', '/']).next().unwrap_or("");
        if s == "kubernetes.io/h2c" || base == "http2" || base == "h2c" {
            Some(Protocol::Http2)
        } else if base == "grpc" {
            Some(Protocol::Grpc)
        } else if base == "http" || base == "https" {
            Some(Protocol::Http)
        } else {
            None
        }
    };
    app_protocol
        .and_then(pick)
        .or_else(|| port_name.and_then(pick))
        .unwrap_or(Protocol::Http)
}

/// Normalise an RFC 3339 timestamp to UTC `YYYY-MM-DDTHH:MM:SS[.fff]Z`, so that string order is
/// time order. Offsets are applied. Returns `None` when the text is not RFC 3339.
pub fn normalize_timestamp(s: &str) -> Option<String> {
    let b = s.as_bytes();
    if b.len() < 20 {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = s.get(r)?;
        if t.bytes().all(|c| c.is_ascii_digit()) {
            t.parse().ok()
        } else {
            None
        }
    };
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    if b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let (hour, min, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || min > 59 || sec > 60 {
        return None;
    }
    let mut i = 19;
    let mut frac = String::new();
    if b.get(i) == Some(&b'.') {
        i += 1;
        while i < b.len() && b[i].is_ascii_digit() {
            frac.push(b[i] as char);
            i += 1;
        }
        if frac.is_empty() {
            return None;
        }
    }
    let offset_min: i64 = match b.get(i) {
        Some(b'Z' | b'z') if i + 1 == b.len() => 0,
        Some(sign @ (b'+' | b'-')) if i + 6 == b.len() && b[i + 3] == b':' => {
            let h = num(i + 1..i + 3)?;
            let m = num(i + 4..i + 6)?;
            let v = h * 60 + m;
            if *sign == b'+' { v } else { -v }
        }
        _ => return None,
    };
    // Days since epoch (civil from days, Howard Hinnant's algorithm), then apply the offset.
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3600 + min * 60 + sec - offset_min * 60;
    let (d, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, mo, da) = civil_from_days(d);
    // Always nine fraction digits, so that string order is time order (`.5Z` would otherwise
    // sort before `Z`).
    let mut frac: String = frac.chars().take(9).collect();
    while frac.len() < 9 {
        frac.push('0');
    }
    let frac = format!(".{frac}");
    Some(format!(
        "{y:04}-{mo:02}-{da:02}T{:02}:{:02}:{:02}{frac}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    ))
}

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("1s"), Ok(1000));
        assert_eq!(parse_duration("250ms"), Ok(250));
        assert_eq!(parse_duration("1m30s"), Ok(90_000));
        assert_eq!(parse_duration("1h"), Ok(3_600_000));
        assert_eq!(parse_duration("0s"), Ok(0));
        assert!(parse_duration("1.5s").is_err());
        assert!(parse_duration("10").is_err());
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("123456s").is_err());
        assert!(parse_duration("1h1m1s1ms1h").is_err());
        assert!(parse_duration("1d").is_err());
    }

    #[test]
    fn timestamps() {
        assert_eq!(
            normalize_timestamp("2024-05-01T10:00:00Z").as_deref(),
            Some("2024-05-01T10:00:00.000000000Z")
        );
        assert_eq!(
            normalize_timestamp("2024-05-01T10:00:00+02:00").as_deref(),
            Some("2024-05-01T08:00:00.000000000Z")
        );
        assert_eq!(
            normalize_timestamp("2024-01-01T00:30:00.500+01:00").as_deref(),
            Some("2023-12-31T23:30:00.500000000Z")
        );
        assert!(
            normalize_timestamp("2024-01-01T06:00:00Z")
                < normalize_timestamp("2024-01-01T06:00:00.5Z")
        );
        assert_eq!(normalize_timestamp("2024-05-01"), None);
        assert_eq!(normalize_timestamp("2024-13-01T10:00:00Z"), None);
    }

    #[test]
    fn names() {
        assert!(is_dns_label("reviews-v2"));
        assert!(!is_dns_label("Reviews"));
        assert!(!is_dns_label("-a"));
        assert!(is_dns_subdomain("a.b-c"));
        assert!(!is_dns_subdomain("a..b"));
    }

    #[test]
    fn protocols() {
        assert_eq!(
            infer_protocol(Some("kubernetes.io/h2c"), None),
            Protocol::Http2
        );
        assert_eq!(infer_protocol(None, Some("grpc-api")), Protocol::Grpc);
        assert_eq!(infer_protocol(None, Some("tcp")), Protocol::Http);
    }
}
