//! Request rewriting shared by `meshc explain` and `mesh-proxy`: redirect locations and URL
//! rewrites, per the Gateway API `RequestRedirect` and `URLRewrite` filters.

use crate::types::{PathMatch, PathModifier, Redirect};

/// Apply a path modifier. `ReplacePrefixMatch` replaces the part of `path` matched by the
/// entry's `PathPrefix` (or `Exact`) path, by whole segments, keeping the rest; after a regex
/// match it replaces the whole path. An empty result is `/`.
pub fn modify_path(modifier: &PathModifier, matched: &PathMatch, path: &str) -> String {
    match modifier {
        PathModifier::ReplaceFullPath(p) if p.is_empty() => "/".to_string(),
        PathModifier::ReplaceFullPath(p) => p.clone(),
        PathModifier::ReplacePrefixMatch(replacement) => {
            let prefix = match matched {
                PathMatch::PathPrefix(p) | PathMatch::Exact(p) => p.trim_end_matches('/'),
                PathMatch::RegularExpression(_) => "",
            };
            let rest = path.strip_prefix(prefix).unwrap_or(path);
            let mut out = replacement.trim_end_matches('/').to_string();
            if !rest.is_empty() && !rest.starts_with('/') {
                out.push('/');
            }
            out.push_str(rest);
            if out.is_empty() {
                out.push('/');
            }
            out
        }
    }
}

/// The `Location` of a redirect, from the request's scheme, host, port, path and query.
///
/// Gateway API: an explicit port wins; when the filter sets a scheme but no port, the scheme's
/// well-known port applies; otherwise the request's port is kept. A well-known port is left out.
pub fn redirect_location(
    redirect: &Redirect,
    matched: &PathMatch,
    scheme: &str,
    host: &str,
    port: Option<u16>,
    path: &str,
    query: Option<&str>,
) -> String {
    let scheme_out = redirect.scheme.as_deref().unwrap_or(scheme);
    let host_out = redirect.hostname.as_deref().unwrap_or(host);
    let port_out = match (redirect.port, &redirect.scheme) {
        (Some(p), _) => Some(p),
        (None, Some(_)) => None,
        (None, None) => port,
    };
    let port_out = port_out.filter(|p| !matches!((scheme_out, p), ("http", 80) | ("https", 443)));
    let path_out = match &redirect.path {
        Some(m) => modify_path(m, matched, path),
        None => path.to_string(),
    };
    let mut s = format!("{scheme_out}://");
    if host_out.contains(':') {
        s.push('[');
        s.push_str(host_out);
        s.push(']');
    } else {
        s.push_str(host_out);
    }
    if let Some(p) = port_out {
        s.push_str(&format!(":{p}"));
    }
    s.push_str(&path_out);
    if let Some(q) = query.filter(|q| !q.is_empty()) {
        s.push('?');
        s.push_str(q);
    }
    s
}

#[cfg(test)]
mod tests {
    #[test]
    fn header_modifier_sets_then_adds_then_removes() {
        let m = crate::HeaderModifier {
            set: vec![("X-Env".into(), "prod".into())],
            add: vec![("x-tag".into(), "b".into())],
            remove: vec!["X-DROP".into()],
        };
        let mut h = vec![
            ("x-env".to_string(), "dev".to_string()),
            ("x-tag".to_string(), "a".to_string()),
            ("x-drop".to_string(), "1".to_string()),
            ("x-env".to_string(), "qa".to_string()),
        ];
        m.apply_to(&mut h);
        let h: Vec<(&str, &str)> = h.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
        assert_eq!(
            h,
            [("x-tag", "a"), ("X-Env", "prod"), ("x-tag", "b")],
            "set replaces every value, add appends after the existing one, remove drops all"
        );
    }

    use super::*;

    #[test]
    fn prefix_replacement_keeps_the_rest() {
        let m = PathMatch::PathPrefix("/v1".into());
        let r = PathModifier::ReplacePrefixMatch("/v2".into());
        assert_eq!(modify_path(&r, &m, "/v1/items"), "/v2/items");
        assert_eq!(modify_path(&r, &m, "/v1"), "/v2");
        let root = PathModifier::ReplacePrefixMatch("/".into());
        assert_eq!(modify_path(&root, &m, "/v1/items"), "/items");
        assert_eq!(modify_path(&root, &m, "/v1"), "/");
    }

    /// The table of Gateway API's `HTTPPathModifier.replacePrefixMatch`, every row, the empty
    /// replacement included (`/foo/bar` with prefix `/foo` and `""` is `/bar`).
    #[test]
    fn prefix_replacement_follows_the_gateway_api_table() {
        let rows = [
            // request path, prefix match, replace prefix, modified path
            ("/foo/bar", "/foo", "/xyz", "/xyz/bar"),
            ("/foo/bar", "/foo", "/xyz/", "/xyz/bar"),
            ("/foo/bar", "/foo/", "/xyz", "/xyz/bar"),
            ("/foo/bar", "/foo/", "/xyz/", "/xyz/bar"),
            ("/foo", "/foo", "/xyz", "/xyz"),
            ("/foo/", "/foo", "/xyz", "/xyz/"),
            ("/foo/bar", "/foo", "", "/bar"),
            ("/foo/", "/foo", "", "/"),
            ("/foo", "/foo", "", "/"),
            ("/foo/", "/foo", "/", "/"),
            ("/foo", "/foo", "/", "/"),
        ];
        for (path, prefix, replacement, expected) in rows {
            let m = PathMatch::PathPrefix(prefix.into());
            let r = PathModifier::ReplacePrefixMatch(replacement.into());
            assert_eq!(
                modify_path(&r, &m, path),
                expected,
                "{path} with prefix {prefix} replaced by {replacement:?}"
            );
        }
    }

    #[test]
    fn redirect_changes_scheme_and_drops_default_port() {
        let r = Redirect {
            scheme: Some("https".into()),
            hostname: None,
            port: None,
            path: None,
            status: 301,
        };
        let m = PathMatch::PathPrefix("/".into());
        assert_eq!(
            redirect_location(&r, &m, "http", "a.b", Some(8080), "/x", Some("q=1")),
            "https://a.b/x?q=1"
        );
        let r2 = Redirect {
            scheme: None,
            hostname: Some("c.d".into()),
            port: None,
            path: None,
            status: 302,
        };
        assert_eq!(
            redirect_location(&r2, &m, "http", "a.b", Some(8080), "/x", None),
            "http://c.d:8080/x"
        );
    }
}
