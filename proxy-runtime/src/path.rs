//! The request path as both listeners route, authorize and forward it: rewritten to its normal
//! form ([`mesh_artifact::normalize_path`], the function `meshc explain` calls too) before
//! anything reads it, so the application receives the path that was routed and authorized.

use std::borrow::Cow;

use bytes::Bytes;
use hyper::http::request::Parts;
use hyper::http::uri::PathAndQuery;
use hyper::{Method, Response, StatusCode, Uri};
use mesh_artifact::PathError;

use crate::http::{ProxyBody, local_reply};

/// Rewrite the request target's path to its normal form, keeping its query byte for byte; or,
/// when the path has none, the 400 to answer instead. A path that is already normal (the usual
/// case) is left in place: no allocation.
pub fn normalize(parts: &mut Parts) -> Option<Response<ProxyBody>> {
    // `None`: the authority form (`CONNECT host:port`), which has no path.
    let target = parts.uri.path_and_query()?;
    let raw = target.as_str();
    let (path, query) = match raw.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (raw, None),
    };
    let normal = match mesh_artifact::normalize_path(path) {
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
        let (mut parts, ()) = Request::builder()
            .method(method)
            .uri(target)
            .body(())
            .unwrap()
            .into_parts();
        match normalize(&mut parts) {
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
