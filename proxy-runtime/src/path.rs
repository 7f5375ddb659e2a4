//! The request path as both listeners route, authorize and forward it: rewritten to its normal
//! form ([`mesh_artifact::normalize_path`], the function `meshc explain` calls too) before
//! anything reads it, so the application receives the path that was routed and authorized.
//!
//! An encoded slash or backslash (`%2F`, `%5C`) is kept, as data inside its segment, only where
//! the application the request is for says `encodedSlashes: keep`
//! ([`mesh_artifact::normalize_path_with`]); the listener is asked which one that is only when
//! such a path turns up, so the usual path costs nothing more.

use std::borrow::Cow;

use bytes::Bytes;
use hyper::http::request::Parts;
use hyper::http::uri::PathAndQuery;
use hyper::{Method, Response, StatusCode, Uri};
use mesh_artifact::{EncodedSlashes, PathError};

use crate::http::{ProxyBody, local_reply};

/// Rewrite the request target's path to its normal form, keeping its query byte for byte; or,
/// when the path has none, the 400 to answer instead. A path that is already normal (the usual
/// case) is left in place: no allocation. `slashes` says what the application the request is
/// for does with encoded slashes; it is called only for a path that holds one.
pub fn normalize(
    parts: &mut Parts,
    slashes: impl FnOnce(&Parts) -> EncodedSlashes,
) -> Option<Response<ProxyBody>> {
    // `None`: the authority form (`CONNECT host:port`), which has no path.
    let target = parts.uri.path_and_query()?;
    let raw = target.as_str();
    let (path, query) = match raw.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (raw, None),
    };
    let normalized = match mesh_artifact::normalize_path(path) {
        Err(PathError::EncodedSlash) if slashes(parts) == EncodedSlashes::Keep => {
            mesh_artifact::normalize_path_with(path, EncodedSlashes::Keep)
        }
        other => other,
    };
    let normal = match normalized {
        Ok(Cow::Borrowed(p)) => {
            return (p == "*" && parts.method != Method::OPTIONS)
                .then(|| refuse("mesh-proxy: the asterisk form (*) is for OPTIONS only\n"));
        }
        Ok(Cow::Owned(p)) => p,
        Err(e) => {
            tracing::debug!(path, error = %e, "request path refused");
            return Some(refuse(reason(e)));
        }
    };
    let target = match query {
        Some(q) => format!("{normal}?{q}"),
        None => normal,
    };
    let Ok(target) = PathAndQuery::from_maybe_shared(Bytes::from(target)) else {
        return Some(refuse("mesh-proxy: invalid request path\n"));
    };
    let mut uri = std::mem::take(&mut parts.uri).into_parts();
    uri.path_and_query = Some(target);
    match Uri::from_parts(uri) {
        Ok(uri) => {
            parts.uri = uri;
            None
        }
        Err(_) => Some(refuse("mesh-proxy: invalid request path\n")),
    }
}

fn refuse(reason: &'static str) -> Response<ProxyBody> {
    local_reply(StatusCode::BAD_REQUEST, reason)
}

/// The reply body naming why a path was refused; fixed text, never the path itself.
fn reason(e: PathError) -> &'static str {
    match e {
        PathError::NotAbsolute => "mesh-proxy: the request path does not start with /\n",
        PathError::InvalidPercentEncoding => {
            "mesh-proxy: invalid percent-encoding in the request path\n"
        }
        PathError::EncodedSlash => {
            "mesh-proxy: encoded slash or backslash (%2F, %5C) in the request path\n"
        }
        PathError::Backslash => "mesh-proxy: backslash in the request path\n",
        PathError::EncodedNul => "mesh-proxy: encoded NUL (%00) in the request path\n",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::Request;

    fn run(method: &str, target: &str) -> Result<String, (u16, String)> {
        run_with(method, target, EncodedSlashes::Reject)
    }

    fn run_with(
        method: &str,
        target: &str,
        slashes: EncodedSlashes,
    ) -> Result<String, (u16, String)> {
        let (mut parts, ()) = Request::builder()
            .method(method)
            .uri(target)
            .body(())
            .unwrap()
            .into_parts();
        match normalize(&mut parts, |_| slashes) {
            None => Ok(parts.uri.to_string()),
            Some(r) => {
                let body = match r.body() {
                    ProxyBody::Full(Some(b)) => String::from_utf8_lossy(b).into_owned(),
                    _ => String::new(),
                };
                Err((r.status().as_u16(), body))
            }
        }
    }

    #[test]
    fn the_path_is_rewritten_and_the_query_kept() {
        assert_eq!(run("GET", "/x/../admin").unwrap(), "/admin");
        assert_eq!(
            run("GET", "//a/./b%7e?q=%2e%2e/..//&x=%61").unwrap(),
            "/a/b~?q=%2e%2e/..//&x=%61"
        );
        assert_eq!(
            run("GET", "http://b.default:80/%61dmin?x").unwrap(),
            "http://b.default:80/admin?x"
        );
        assert_eq!(run("GET", "http://b.default").unwrap(), "http://b.default/");
        assert_eq!(run("GET", "/items?a=b").unwrap(), "/items?a=b");
        assert_eq!(run("OPTIONS", "*").unwrap(), "*");
        assert_eq!(
            run("CONNECT", "b.default:443").unwrap(),
            "b.default:443",
            "the authority form has no path to normalize"
        );
    }

    #[test]
    fn encoded_slashes_are_kept_only_for_an_application_that_keeps_them() {
        let keep = EncodedSlashes::Keep;
        assert_eq!(
            run_with("GET", "/projects/g%2fp/./issues?x=%2f", keep).unwrap(),
            "/projects/g%2Fp/issues?x=%2f"
        );
        assert_eq!(
            run_with("GET", "/a%2F..%2Fadmin", keep).unwrap(),
            "/a%2F..%2Fadmin"
        );
        assert_eq!(
            run_with("GET", "http://b.default/x/../a%5cb", keep).unwrap(),
            "http://b.default/a%5Cb"
        );
        let (status, body) = run("GET", "/projects/g%2fp").unwrap_err();
        assert_eq!((status, body.contains("encoded slash")), (400, true));
        for target in ["/a%2F\\b", "/a%2F%00"] {
            assert_eq!(
                run_with("GET", target, keep).unwrap_err().0,
                400,
                "{target}"
            );
        }
        // The application is asked about only for a path holding an encoded slash.
        let (mut parts, ()) = Request::builder()
            .uri("/x/../%61dmin")
            .body(())
            .unwrap()
            .into_parts();
        assert!(normalize(&mut parts, |_| unreachable!("not asked")).is_none());
        assert_eq!(parts.uri, "/admin");
    }

    #[test]
    fn paths_without_a_safe_form_get_400_naming_the_reason() {
        for (target, word) in [
            ("/x%2F..%2Fadmin", "encoded slash"),
            ("/a%5cb", "encoded slash"),
            ("/a\\b", "backslash"),
            ("/a%00", "NUL"),
            ("/%zz", "percent-encoding"),
        ] {
            let (status, body) = run("GET", target).unwrap_err();
            assert_eq!(status, 400, "{target}");
            assert!(body.contains(word), "{target}: {body}");
        }
        let (status, body) = run("GET", "*").unwrap_err();
        assert_eq!(status, 400);
        assert!(body.contains("OPTIONS"), "{body}");
    }
}
