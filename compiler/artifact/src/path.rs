//! Request path normalization: the one spelling of a path that the sidecars route and authorize,
//! and that the application receives.
//!
//! An application resolves `/x/../admin`, `/./admin`, `//admin` and `/%61dmin` to `/admin`
//! (RFC 3986, sections 6.2.2 and 6.2.3; nginx also merges slashes). A proxy that routes and
//! authorizes on the raw spelling lets any of them past a policy written for `/admin`. So both
//! listeners of `mesh-proxy` rewrite the path with [`normalize_path`] before they look at it,
//! forward the rewritten path, and `meshc explain` answers for the same rewritten path.
//!
//! What [`normalize_path`] does, in this order, on the path alone (the query is the caller's to
//! keep as it is):
//!
//! 1. percent-encoded unreserved characters (`ALPHA`, `DIGIT`, `-`, `.`, `_`, `~`) are decoded,
//!    once (`%252e` stays `%252E`); every other percent-encoding stays, its hex upper-cased
//!    (RFC 3986 sections 2.3, 6.2.2.1, 6.2.2.2);
//! 2. runs of `/` are merged, as nginx's `merge_slashes` (on by default) and Envoy's
//!    `merge_slashes` do: an empty segment names nothing in the applications this runs beside;
//! 3. dot segments are removed (RFC 3986 section 5.2.4), after decoding, so `%2e%2E` is `..`;
//!    `..` above the root stays at the root, as the RFC's algorithm (and Envoy's) has it;
//! 4. an empty path is `/` (RFC 3986 section 6.2.3).
//!
//! What it refuses ([`PathError`]; the sidecars answer 400), because no spelling of the path is
//! safe to route, authorize and forward at once:
//!
//! - an encoded slash or backslash (`%2F`, `%5C`, either case) or a raw backslash: nginx (and
//!   many frameworks) decode `%2F` before resolving dot segments, so `/x%2F..%2Fadmin` is
//!   `/admin` to them; left encoded, a policy on `/admin` misses it; decoded, an API that
//!   carries `group%2Fproject` in one segment receives another path than it was sent; Windows
//!   servers read a backslash as a separator, others as a character. Refusing is Envoy's
//!   `path_with_escaped_slashes_action: REJECT_REQUEST`, and the default; an application may
//!   opt out (see "Keeping encoded slashes" below);
//! - `%00` (Istio refuses it in every normalization mode);
//! - an invalid percent-encoding (`%zz`, `%4`, a trailing `%`; RFC 3986 section 2.1);
//! - a path that does not start with `/`. The asterisk form `*` is returned as it is: it is
//!   valid only for `OPTIONS` (RFC 9112 section 3.2.4), which the caller checks.
//!
//! A path that is already normal, the usual case, is returned borrowed: no allocation.
//!
//! ## Keeping encoded slashes
//!
//! An application that carries `%2F` inside one segment (GitLab's
//! `/api/v4/projects/group%2Fproject`, object stores' keys) states so with
//! `spec.app.encodedSlashes: keep` ([`EncodedSlashes::Keep`]), and [`normalize_path_with`] then
//! treats `%2F` and `%5C` as data: they stay encoded (hex upper-cased, so `%2f` and `%2F` route
//! alike), are never decoded, and never split a segment, so `/a%2F..%2Fb` is one segment and
//! stays as it is. Everything else is normalized as above; a raw backslash, `%00` and invalid
//! encodings are still refused. This is Envoy's `KEEP_UNCHANGED` with the hex case normalized,
//! and it is only safe for an application that does not decode `%2F` before it routes: one that
//! does reads `/x%2F..%2Fadmin` as `/admin`, past a policy written for `/admin`.

use std::borrow::Cow;

use crate::types::EncodedSlashes;

/// Why a request path has no safe normalized form.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("the path does not start with `/`")]
    NotAbsolute,
    #[error("invalid percent-encoding in the path")]
    InvalidPercentEncoding,
    #[error("an encoded slash or backslash (`%2F`, `%5C`) in the path")]
    EncodedSlash,
    #[error("a backslash in the path")]
    Backslash,
    #[error("an encoded NUL (`%00`) in the path")]
    EncodedNul,
}

/// The normalized form of a request path (without its query); see the module documentation.
/// `Cow::Borrowed` exactly when `path` is already normal. Encoded slashes are refused
/// ([`EncodedSlashes::Reject`], the default).
#[inline]
pub fn normalize_path(path: &str) -> Result<Cow<'_, str>, PathError> {
    normalize_path_with(path, EncodedSlashes::Reject)
}

/// [`normalize_path`] for an application with the given `encodedSlashes` setting: with
/// [`EncodedSlashes::Keep`], `%2F` and `%5C` are kept as data inside their segment (see the
/// module documentation). A path without them normalizes alike in both modes.
pub fn normalize_path_with(path: &str, slashes: EncodedSlashes) -> Result<Cow<'_, str>, PathError> {
    let keep = slashes == EncodedSlashes::Keep;
    if path == "*" || is_normal(path.as_bytes(), keep) {
        return Ok(Cow::Borrowed(path));
    }
    if path.is_empty() {
        return Ok(Cow::Owned("/".to_string()));
    }
    let Some(rest) = path.strip_prefix('/') else {
        return Err(PathError::NotAbsolute);
    };
    let mut out = String::with_capacity(path.len());
    // Byte offsets in `out` where each kept segment's `/` starts, for `..`.
    let mut starts: Vec<usize> = Vec::new();
    let mut trailing_slash = false;
    let mut segment = String::new();
    let mut segments = rest.split('/').peekable();
    while let Some(raw) = segments.next() {
        let last = segments.peek().is_none();
        decode_segment(raw, &mut segment, keep)?;
        match segment.as_str() {
            "" | "." => trailing_slash = last,
            ".." => {
                if let Some(start) = starts.pop() {
                    out.truncate(start);
                }
                trailing_slash = last;
            }
            s => {
                starts.push(out.len());
                out.push('/');
                out.push_str(s);
                trailing_slash = false;
            }
        }
    }
    if out.is_empty() || trailing_slash {
        out.push('/');
    }
    Ok(Cow::Owned(out))
}

/// RFC 3986 section 2.3.
fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// The value of one hexadecimal digit of a percent-encoding.
pub(crate) fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// The decoded octet of a percent-encoding whose two hex digits are `hi` and `lo`, after the
/// checks every spelling of it goes through. `keep`: an encoded slash or backslash is data
/// (it is not unreserved, so it stays encoded).
fn percent_octet(hi: u8, lo: u8, keep: bool) -> Result<u8, PathError> {
    let (Some(h), Some(l)) = (hex_value(hi), hex_value(lo)) else {
        return Err(PathError::InvalidPercentEncoding);
    };
    match (h << 4) | l {
        b'/' | b'\\' if !keep => Err(PathError::EncodedSlash),
        0 => Err(PathError::EncodedNul),
        octet => Ok(octet),
    }
}

/// Decode one segment (the text between two `/`) into `out`, replacing its contents.
fn decode_segment(raw: &str, out: &mut String, keep: bool) -> Result<(), PathError> {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    out.clear();
    let bytes = raw.as_bytes();
    let mut plain = 0;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let (Some(&hi), Some(&lo)) = (bytes.get(i + 1), bytes.get(i + 2)) else {
                    return Err(PathError::InvalidPercentEncoding);
                };
                let octet = percent_octet(hi, lo, keep)?;
                out.push_str(raw.get(plain..i).unwrap_or_default());
                if is_unreserved(octet) {
                    out.push(char::from(octet));
                } else {
                    out.push('%');
                    out.push(char::from(HEX[usize::from(octet >> 4)]));
                    out.push(char::from(HEX[usize::from(octet & 0xF)]));
                }
                i += 3;
                plain = i;
            }
            b'\\' => return Err(PathError::Backslash),
            _ => i += 1,
        }
    }
    out.push_str(raw.get(plain..).unwrap_or_default());
    Ok(())
}

/// Whether `path` is its own normal form: the common case, checked in one pass without
/// allocating. Anything doubtful is `false`, and [`normalize_path`] decides.
fn is_normal(path: &[u8], keep: bool) -> bool {
    let [b'/', rest @ ..] = path else {
        return false;
    };
    // Each segment but the last must be non-empty; none may be `.` or `..`.
    let mut segment_len = 0usize;
    let mut only_dots = true;
    let mut i = 0;
    while i < rest.len() {
        match rest[i] {
            b'/' => {
                if segment_len == 0 || (only_dots && segment_len <= 2) {
                    return false;
                }
                segment_len = 0;
                only_dots = true;
                i += 1;
                continue;
            }
            b'%' => {
                let (Some(&hi), Some(&lo)) = (rest.get(i + 1), rest.get(i + 2)) else {
                    return false;
                };
                // Upper-case hex of an octet that must stay encoded.
                if hi.is_ascii_lowercase() || lo.is_ascii_lowercase() {
                    return false;
                }
                match percent_octet(hi, lo, keep) {
                    Ok(octet) if !is_unreserved(octet) => {}
                    _ => return false,
                }
                only_dots = false;
                segment_len += 3;
                i += 3;
                continue;
            }
            b'\\' => return false,
            b'.' => {}
            _ => only_dots = false,
        }
        segment_len += 1;
        i += 1;
    }
    !(only_dots && (1..=2).contains(&segment_len))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn norm(p: &str) -> Result<String, PathError> {
        normalize_path(p).map(Cow::into_owned)
    }

    #[test]
    fn spellings_of_one_path_normalize_alike() {
        let cases: &[(&str, &str)] = &[
            // The black-box finding's spellings of `/admin`.
            ("/admin", "/admin"),
            ("/x/../admin", "/admin"),
            ("/./admin", "/admin"),
            ("//admin", "/admin"),
            ("/%61dmin", "/admin"),
            ("/%61%64%6D%69%6e", "/admin"),
            // Dot segments spelled with encoded dots, in any case.
            ("/x/%2e%2E/admin", "/admin"),
            ("/x/.%2e/admin", "/admin"),
            ("/%2e/admin", "/admin"),
            ("/x/%2E%2e%2E/admin", "/x/.../admin"),
            // `..` above the root stays at the root (RFC 3986 section 5.2.4).
            ("/a/b/../../..", "/"),
            ("/..", "/"),
            ("/../../admin", "/admin"),
            ("/a/b/..", "/a/"),
            ("/a/.", "/a/"),
            ("/a/./", "/a/"),
            ("/.", "/"),
            // Slashes: runs merged, a trailing one kept.
            ("//", "/"),
            ("///a//b///", "/a/b/"),
            ("/a/", "/a/"),
            ("/a//../b", "/b"),
            // Unreserved characters decoded, the rest upper-cased and kept.
            ("/%7e", "/~"),
            ("/%7Euser", "/~user"),
            ("/a%2db%5fc%30", "/a-b_c0"),
            ("/b%20c", "/b%20c"),
            ("/%2a%3a", "/%2A%3A"),
            ("/%3f%23", "/%3F%23"),
            ("/caf%c3%a9", "/caf%C3%A9"),
            // One decoding only: `%25` is `%`, not the start of another encoding.
            ("/%252e%252e/admin", "/%252e%252e/admin"),
            ("/%252E", "/%252E"),
            // Other characters are left as they are.
            ("/a;b=c/d", "/a;b=c/d"),
            ("/café", "/café"),
            ("/.hidden/..x/x..", "/.hidden/..x/x.."),
            // An empty path is `/`; the asterisk form is the caller's to check.
            ("", "/"),
            ("/", "/"),
            ("*", "*"),
        ];
        for (input, want) in cases {
            assert_eq!(norm(input).as_deref(), Ok(*want), "{input:?}");
        }
    }

    #[test]
    fn unsafe_paths_are_refused() {
        let cases: &[(&str, PathError)] = &[
            ("/x%2F..%2Fadmin", PathError::EncodedSlash),
            ("/group%2fproject", PathError::EncodedSlash),
            ("/a%5Cb", PathError::EncodedSlash),
            ("/a%5c..%5cadmin", PathError::EncodedSlash),
            ("/a\\b", PathError::Backslash),
            ("/a/..\\admin", PathError::Backslash),
            ("/a%00b", PathError::EncodedNul),
            ("/%zz", PathError::InvalidPercentEncoding),
            ("/a%4", PathError::InvalidPercentEncoding),
            ("/a%", PathError::InvalidPercentEncoding),
            ("/a%%41", PathError::InvalidPercentEncoding),
            ("/a%g1", PathError::InvalidPercentEncoding),
            ("admin", PathError::NotAbsolute),
            ("./admin", PathError::NotAbsolute),
            ("**", PathError::NotAbsolute),
        ];
        for (input, want) in cases {
            assert_eq!(norm(input), Err(*want), "{input:?}");
        }
    }

    #[test]
    fn normal_paths_are_borrowed() {
        for p in [
            "/",
            "/admin",
            "/a/b/",
            "/api/v1/items/42",
            "/b%20c",
            "/%C3%A9",
            "/.well-known/x",
            "/a.b/..c/...",
            "*",
        ] {
            assert!(
                matches!(normalize_path(p), Ok(Cow::Borrowed(q)) if q == p),
                "{p:?}"
            );
        }
        for p in ["/a//b", "/%61", "/%c3", "/a/./b", "/a/..", "/.", "//"] {
            assert!(
                matches!(normalize_path(p), Ok(Cow::Owned(_))),
                "{p:?} is not normal"
            );
        }
    }

    fn keep(p: &str) -> Result<String, PathError> {
        normalize_path_with(p, EncodedSlashes::Keep).map(Cow::into_owned)
    }

    #[test]
    fn keep_mode_keeps_encoded_slashes_as_data_in_their_segment() {
        let cases: &[(&str, &str)] = &[
            // GitLab's project ids and object keys: one segment, unchanged.
            (
                "/api/v4/projects/group%2Fproject",
                "/api/v4/projects/group%2Fproject",
            ),
            ("/bucket/a%2Fb%2Fc.txt", "/bucket/a%2Fb%2Fc.txt"),
            // The hex is upper-cased, so both spellings route alike.
            ("/group%2fproject", "/group%2Fproject"),
            ("/a%5cb", "/a%5Cb"),
            ("/a%5Cb", "/a%5Cb"),
            // An encoded slash never splits a segment: no dot segment forms across it.
            ("/a%2F..%2Fb", "/a%2F..%2Fb"),
            ("/x%2F..%2Fadmin", "/x%2F..%2Fadmin"),
            ("/a/..%2Fadmin", "/a/..%2Fadmin"),
            ("/a/%2E%2E%2Fadmin", "/a/..%2Fadmin"),
            ("/a%5C..%5Cadmin", "/a%5C..%5Cadmin"),
            ("/%2F", "/%2F"),
            ("/a/%2F/b", "/a/%2F/b"),
            // Literal slashes still separate: dot segments around a kept segment go.
            ("/x/../a%2Fb", "/a%2Fb"),
            ("/a%2Fb/../c", "/c"),
            ("//a%2fb//./c/", "/a%2Fb/c/"),
            // Everything else as in the default mode.
            ("/%61dmin", "/admin"),
            ("/x/%2e%2E/admin", "/admin"),
            ("/b%20c", "/b%20c"),
            ("/%252F", "/%252F"),
            ("/%252f", "/%252f"),
            ("", "/"),
            ("*", "*"),
        ];
        for (input, want) in cases {
            assert_eq!(keep(input).as_deref(), Ok(*want), "{input:?}");
        }
    }

    #[test]
    fn keep_mode_still_refuses_backslashes_nul_and_bad_encodings() {
        let cases: &[(&str, PathError)] = &[
            ("/a\\b", PathError::Backslash),
            ("/a%2F..\\admin", PathError::Backslash),
            ("/a%00b", PathError::EncodedNul),
            ("/a%2F%00", PathError::EncodedNul),
            ("/%zz", PathError::InvalidPercentEncoding),
            ("/a%2", PathError::InvalidPercentEncoding),
            ("/a%2F%", PathError::InvalidPercentEncoding),
            ("admin%2F", PathError::NotAbsolute),
        ];
        for (input, want) in cases {
            assert_eq!(keep(input), Err(*want), "{input:?}");
        }
    }

    #[test]
    fn keep_mode_borrows_normal_paths_with_upper_case_encoded_slashes() {
        for p in [
            "/a%2Fb",
            "/projects/g%2Fp/issues",
            "/a%5C",
            "/x%2F..%2Fy",
            "/",
        ] {
            assert!(
                matches!(normalize_path_with(p, EncodedSlashes::Keep), Ok(Cow::Borrowed(q)) if q == p),
                "{p:?}"
            );
            assert_eq!(
                normalize_path(p).is_ok(),
                !p.contains('%'),
                "{p:?}: the default mode refuses what keep mode borrows"
            );
        }
        for p in ["/a%2fb", "/a%5c", "/a%2F/./b", "/a%2F//b"] {
            assert!(
                matches!(
                    normalize_path_with(p, EncodedSlashes::Keep),
                    Ok(Cow::Owned(_))
                ),
                "{p:?} is not normal"
            );
        }
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        /// Paths made of the pieces that matter: slashes, dots, encodings of dots and letters,
        /// encodings that stay, and plain text.
        fn path() -> impl Strategy<Value = String> {
            let piece = prop_oneof![
                Just("/".to_string()),
                Just(".".to_string()),
                Just("..".to_string()),
                Just("%2e".to_string()),
                Just("%2E".to_string()),
                Just("%61".to_string()),
                Just("%7e".to_string()),
                Just("%3f".to_string()),
                Just("%C3".to_string()),
                Just("%25".to_string()),
                Just("%2f".to_string()),
                Just("%2F".to_string()),
                Just("%5c".to_string()),
                Just("%5C".to_string()),
                Just("%00".to_string()),
                Just("%".to_string()),
                Just("\\".to_string()),
                "[a-zA-Z0-9;=~_-]{1,3}",
            ];
            (any::<bool>(), prop::collection::vec(piece, 0..12)).prop_map(|(root, pieces)| {
                let body = pieces.concat();
                if root { format!("/{body}") } else { body }
            })
        }

        proptest! {
            #[test]
            fn normal_forms_are_fixed_points_without_dot_segments_or_empty_segments(p in path()) {
                if let Ok(n) = normalize_path(&p) {
                    let n = n.into_owned();
                    let again = normalize_path(&n);
                    prop_assert!(matches!(&again, Ok(Cow::Borrowed(_))), "{p:?} -> {n:?} -> {again:?}");
                    prop_assert_eq!(again, Ok(Cow::Borrowed(n.as_str())));
                    if n != "*" {
                        prop_assert!(n.starts_with('/'), "{}", n);
                        let padded = format!("{n}/");
                        prop_assert!(!padded.contains("/./"), "{}", n);
                        prop_assert!(!padded.contains("/../"), "{}", n);
                        prop_assert!(!n.contains("//"), "{}", n);
                        prop_assert!(!n.contains('\\'), "{}", n);
                    }
                }
            }

            #[test]
            fn borrowed_means_unchanged(p in path()) {
                if let Ok(n) = normalize_path(&p) {
                    prop_assert_eq!(matches!(n, Cow::Borrowed(_)), n == p.as_str());
                }
            }

            #[test]
            fn any_text_is_answered_without_panic(p in "\\PC{0,40}") {
                let _ = normalize_path(&p);
                let _ = normalize_path_with(&p, EncodedSlashes::Keep);
            }

            #[test]
            fn keep_mode_normal_forms_are_fixed_points(p in path()) {
                if let Ok(n) = normalize_path_with(&p, EncodedSlashes::Keep) {
                    let borrowed = matches!(n, Cow::Borrowed(_));
                    let n = n.into_owned();
                    prop_assert_eq!(borrowed, n == p, "{:?} -> {:?}", p, n);
                    let again = normalize_path_with(&n, EncodedSlashes::Keep);
                    prop_assert_eq!(again, Ok(Cow::Borrowed(n.as_str())), "{:?} -> {:?}", p, n);
                    if n != "*" {
                        let padded = format!("{n}/");
                        prop_assert!(!padded.contains("/./") && !padded.contains("/../"), "{}", n);
                        prop_assert!(!n.contains("//") && !n.contains('\\'), "{}", n);
                        prop_assert!(!n.contains("%2f") && !n.contains("%5c"), "{}", n);
                    }
                }
            }

            /// Keep mode is the default mode on a path whose encoded slashes are opaque text:
            /// they are never decoded, never split a segment, and the rest is normalized alike.
            #[test]
            fn keep_mode_treats_encoded_slashes_as_opaque_data(p in path()) {
                // `!` is never decoded or rewritten, and the generator never writes it.
                let opaque = p
                    .replace("%2F", "!s!")
                    .replace("%2f", "!s!")
                    .replace("%5C", "!b!")
                    .replace("%5c", "!b!");
                let want = normalize_path(&opaque)
                    .map(|n| n.replace("!s!", "%2F").replace("!b!", "%5C"));
                let got = normalize_path_with(&p, EncodedSlashes::Keep).map(Cow::into_owned);
                prop_assert_eq!(got, want, "{:?}", p);
            }

            /// A path without encoded slashes is normalized alike in both modes.
            #[test]
            fn modes_agree_without_encoded_slashes(p in path()) {
                let mut p = p;
                while let Some(i) = {
                    let lower = p.to_ascii_lowercase();
                    lower.find("%2f").or_else(|| lower.find("%5c"))
                } {
                    p.replace_range(i..i + 3, "");
                }
                prop_assert_eq!(normalize_path(&p), normalize_path_with(&p, EncodedSlashes::Keep));
            }
        }
    }
}
