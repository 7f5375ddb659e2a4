//! `meshc explain`: what the mesh does with one request, decided by the same router and
//! authorizer the proxy runs, on the caller's own compiled artifact.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::path::Path;
use std::process::ExitCode;

use mesh_artifact::{
    Decision, EncodedSlashes, HeaderModifier, PathError, Router, SimpleRequest, filters,
    normalize_path_with,
};
use serde_json::json;

use crate::diag::did_you_mean;
use crate::model::Service;
use crate::render::{self, Format, HumanOptions};
use crate::{Checked, LoadOptions};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ExplainFormat {
    Human,
    Json,
}

/// A parsed `http://HOST[:PORT]/PATH[?QUERY]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Url {
    pub scheme: String,
    /// `user[:password]` before an `@` in the authority: the sidecar refuses such a request.
    pub userinfo: Option<String>,
    pub host: String,
    pub port: Option<u16>,
    pub path: String,
    pub query: Option<String>,
}

pub fn parse_url(url: &str) -> Result<Url, String> {
    if let Some(c) = url.chars().find(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "`{url}` contains {}: a request target carries none (percent-encode it, e.g. `%20`)",
            if c == ' ' {
                "a space".to_string()
            } else {
                format!("the character {c:?}")
            }
        ));
    }
    let (scheme, rest) = url.split_once("://").ok_or_else(|| {
        format!("`{url}` is not an absolute URL: expected `http://HOST[:PORT]/PATH`")
    })?;
    let scheme = scheme.to_ascii_lowercase();
    if scheme != "http" && scheme != "https" {
        return Err(format!("unsupported scheme `{scheme}`: expected `http`"));
    }
    let (authority, path_query) = match rest.find(['/', '?']) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let path_query = path_query.split('#').next().unwrap_or("/");
    let (path, query) = match path_query.split_once('?') {
        Some((p, q)) => (p, Some(q.to_string())),
        None => (path_query, None),
    };
    let path = if path.is_empty() {
        "/".to_string()
    } else {
        path.to_string()
    };
    let (userinfo, authority) = match authority.rsplit_once('@') {
        Some((u, a)) => (Some(u.to_string()), a),
        None => (None, authority),
    };
    let (host, port_text) = match authority.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') || h.ends_with(']') => (h, Some(p)),
        _ => (authority, None),
    };
    if host.is_empty() {
        return Err(format!("`{url}` has no host"));
    }
    let port = match port_text {
        // RFC 3986 section 3.2.3: an empty port is the scheme's default, as if omitted.
        Some("") | None => None,
        Some(p) => Some(
            p.parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| format!("`{p}` is not a valid port"))?,
        ),
    };
    Ok(Url {
        scheme,
        userinfo,
        host: host.trim_end_matches('.').to_ascii_lowercase(),
        port,
        path,
        query,
    })
}

/// Resolve `namespace/name` or a unique `name`.
pub fn resolve_caller<'m>(checked: &'m Checked, from: &str) -> Result<&'m Service, String> {
    let model = &checked.model;
    if let Some((ns, name)) = from.split_once('/') {
        return model.service(ns, name).ok_or_else(|| {
            let keys: Vec<String> = model.services.iter().map(Service::key).collect();
            let hint = did_you_mean(from, keys.iter().map(String::as_str))
                .map(|h| format!("; {h}"))
                .unwrap_or_default();
            format!("no service `{from}`{hint}")
        });
    }
    let matches: Vec<&Service> = model.services.iter().filter(|s| s.name == from).collect();
    match matches.as_slice() {
        [one] => Ok(one),
        [] => {
            let names: Vec<&str> = model.services.iter().map(|s| s.name.as_str()).collect();
            let hint = did_you_mean(from, names.iter().copied())
                .map(|h| format!("; {h}"))
                .unwrap_or_default();
            Err(format!("no service named `{from}`{hint}"))
        }
        many => Err(format!(
            "`{from}` is ambiguous: {}; write `namespace/name`",
            many.iter()
                .map(|s| format!("`{}`", s.key()))
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

/// The explanation, as the contract's JSON plus human detail.
#[derive(Clone, Debug)]
pub struct Explanation {
    pub json: serde_json::Value,
    pub human: String,
}

/// Whether `s` is an RFC 9110 token (section 5.6.2): a method or a header name.
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Parse one `-H 'Name: value'` into a field line, as strictly as the sidecar's HTTP parser
/// reads one (RFC 9112 section 5.1 and RFC 9110 section 5.5): the name is a token, with no
/// whitespace before the colon, and the value (without its surrounding spaces and tabs) holds
/// no control character but a tab. Anything else is a usage error: no sidecar would receive such
/// a request, it answers 400 while parsing it, before routing.
pub fn parse_header(h: &str) -> Result<(&str, &str), String> {
    let (name, value) = h
        .split_once(':')
        .ok_or_else(|| format!("header `{h}` is not `Name: value`"))?;
    if !is_token(name) {
        let why = if name.ends_with([' ', '\t']) && is_token(name.trim_end_matches([' ', '\t'])) {
            "no whitespace is allowed between a field name and its colon"
        } else {
            "a field name is a token: letters, digits and ``!#$%&'*+-.^_`|~``, no spaces"
        };
        return Err(format!(
            "header `{h}`: `{name}` is not a valid field name ({why}, RFC 9112 section 5.1); \
             the sidecar answers 400 to such a request"
        ));
    }
    let value = value.trim_matches([' ', '\t']);
    if let Some(c) = value.chars().find(|c| c.is_control() && *c != '\t') {
        return Err(format!(
            "header `{h}`: the value holds the control character {c:?}; \
             the sidecar answers 400 to such a request"
        ));
    }
    Ok((name, value))
}

/// A header modifier as the JSON shows it: `{"set": [{"name", "value"}], "add": [...],
/// "remove": [name]}`, empty lists when nothing changes.
fn modifier_json(m: &HeaderModifier) -> serde_json::Value {
    let pairs = |v: &[(String, String)]| -> Vec<serde_json::Value> {
        v.iter()
            .map(|(n, v)| json!({"name": n, "value": v}))
            .collect()
    };
    json!({"set": pairs(&m.set), "add": pairs(&m.add), "remove": m.remove})
}

/// Human lines for a header modifier: `  request header set `name: value``, ...
fn describe_modifier(human: &mut String, which: &str, m: &HeaderModifier) {
    for (n, v) in &m.set {
        let _ = writeln!(human, "  {which} header set `{n}: {v}`");
    }
    for (n, v) in &m.add {
        let _ = writeln!(human, "  {which} header added `{n}: {v}`");
    }
    for n in &m.remove {
        let _ = writeln!(human, "  {which} header removed `{n}`");
    }
}

/// Methods the sidecar may send twice (its retries apply only to these, RFC 9110 section 9.2.2).
fn is_idempotent(method: &str) -> bool {
    matches!(
        method,
        "GET" | "HEAD" | "OPTIONS" | "TRACE" | "PUT" | "DELETE"
    )
}

/// Explain one request. Errors are usage errors (unknown caller, bad URL or header).
pub fn explain(
    checked: &Checked,
    from: &str,
    headers: &[String],
    method: &str,
    url: &str,
) -> Result<Explanation, String> {
    let caller = resolve_caller(checked, from)?;
    // RFC 9110 section 9.1: a method is a token, and case-sensitive: `delete` is another
    // method than `DELETE` (the sidecar routes and authorizes it as sent).
    if !is_token(method) {
        return Err(format!(
            "`{method}` is not an HTTP method: a method is a token such as `GET`"
        ));
    }
    let mut url = parse_url(url)?;
    let authority = match url.port {
        Some(p) => format!("{}:{p}", url.host),
        None => url.host.clone(),
    };
    let body = crate::lower::lower_sidecar(checked, caller);
    let router = Router::new(body).map_err(|e| e.to_string())?;
    let mut fields = Vec::with_capacity(headers.len());
    for h in headers {
        fields.push(parse_header(h)?);
    }
    // The sidecars route, authorize and forward the normalized path (mesh_artifact::path), or
    // answer 400 before routing where it has none; encoded slashes as the addressed
    // destination's application says (`spec.app.encodedSlashes`).
    let slashes = router.encoded_slashes(&authority);
    let sent_path = url.path.clone();
    let path_refused = match normalize_path_with(&url.path, slashes) {
        Ok(Cow::Borrowed(_)) => None,
        Ok(Cow::Owned(p)) => {
            url.path = p;
            None
        }
        Err(e) => Some(e),
    };
    let mut req = SimpleRequest::new(method, &url.path);
    req.query = url.query.clone();
    for (name, value) in fields {
        req = req.with_header(name, value);
    }
    let mut human = String::new();
    let _ = writeln!(
        human,
        "{} {}://{}{}{}{} from `{}`",
        req.method,
        url.scheme,
        url.userinfo
            .as_ref()
            .map(|u| format!("{u}@"))
            .unwrap_or_default(),
        authority,
        sent_path,
        url.query
            .as_ref()
            .map(|q| format!("?{q}"))
            .unwrap_or_default(),
        caller.key()
    );
    // What the caller's sidecar answers itself, before routing, in its order (mesh-proxy's
    // outbound `handle`): userinfo (400), a standard method not in upper case (400), a path
    // without a safe form (400), `CONNECT` (501).
    let refused = if url.userinfo.is_some() {
        Some((
            400,
            "userinfo in the request's authority (RFC 9110 section 4.2.4)".to_string(),
        ))
    } else if let Some(standard) = mesh_artifact::miscased_method(&req.method) {
        Some((
            400,
            format!(
                "`{}` is `{standard}` in other case: methods are case-sensitive (RFC 9110 section 9.1), and the sidecars refuse such a request rather than let an application that upper-cases methods run what the policies saw as another method",
                req.method
            ),
        ))
    } else if let Some(e) = &path_refused {
        Some((400, e.to_string()))
    } else if req.method == "CONNECT" {
        Some((
            501,
            "CONNECT is not supported: the outbound listener is an HTTP proxy for the mesh, not a tunnel"
                .to_string(),
        ))
    } else {
        None
    };
    let no_change = || modifier_json(&HeaderModifier::default());
    if let Some((status, reason)) = refused {
        let _ = writeln!(human, "  {reason}: the sidecar answers {status}");
        if path_refused == Some(PathError::EncodedSlash)
            && let Some(d) = router
                .index()
                .destination_for(&authority)
                .and_then(|d| router.body().destinations.get(d))
        {
            let _ = writeln!(
                human,
                "  `{}` does not keep encoded slashes (`spec.app.encodedSlashes: keep` on its Sidecar, only if it never decodes `%2F` before routing)",
                d.service
            );
        }
        let _ = writeln!(human, "  status: {status}");
        let path = match &path_refused {
            Some(e) => json!({"sent": sent_path, "normalized": null, "refused": e.to_string()}),
            None => json!({"sent": sent_path, "normalized": url.path}),
        };
        let json = json!({
            "route": null,
            "status": status,
            "backends": [],
            "redirect": null,
            "authz": {"decision": "not evaluated", "policies": []},
            "path": path,
            "refused": reason,
            "rewrite": null,
            "request_headers": no_change(),
            "response_headers": no_change(),
            "timeouts": {"request_ms": null, "backend_request_ms": null},
            "retry": null,
        });
        return Ok(Explanation { json, human });
    }
    if url.path != sent_path {
        let _ = writeln!(
            human,
            "  path normalized to `{}`: what the sidecars route and authorize, and the application receives",
            url.path
        );
    }
    let kept = slashes == EncodedSlashes::Keep && has_encoded_slash(&url.path);
    if kept {
        let _ = writeln!(
            human,
            "  encoded slashes kept: the destination's application treats `%2F` and `%5C` as data inside a segment (`encodedSlashes: keep`)"
        );
    }
    let decision = router.decide(&authority, &req);
    let mut status = decision.status();
    let mut route = serde_json::Value::Null;
    let mut backends = Vec::new();
    let mut redirect = serde_json::Value::Null;
    let mut rewrite = serde_json::Value::Null;
    let mut request_headers = no_change();
    let mut response_headers = no_change();
    let mut timeouts = json!({"request_ms": null, "backend_request_ms": null});
    let mut retry = serde_json::Value::Null;
    // Where Cedar is evaluated: the sidecar of every service the request can reach, with that
    // service as the resource, on the request as that sidecar receives it (path rewritten,
    // request headers modified), exactly as mesh-proxy's inbound side does.
    let mut targets: Vec<(String, u64)> = Vec::new();
    let mut seen = req.clone();
    let mut route_name = String::new();
    match decision {
        Decision::UnknownHost => {
            let known =
                checked.model.services.iter().any(|s| {
                    crate::lower::hosts_for(s, &caller.namespace, &[]).contains(&url.host)
                });
            if known {
                let _ = writeln!(
                    human,
                    "  `{}` is not in the egress of `{}`: the sidecar answers 404",
                    url.host,
                    caller.key()
                );
            } else {
                let _ = writeln!(
                    human,
                    "  no service is reachable as `{}`: the sidecar answers 404",
                    url.host
                );
            }
        }
        Decision::UnknownPort { dest } => {
            let ports: Vec<String> = dest.ports.iter().map(|p| p.port.to_string()).collect();
            let _ = writeln!(
                human,
                "  `{}` has no port {}: the sidecar answers 404 (ports: {})",
                dest.service,
                url.port.map_or("given".to_string(), |p| p.to_string()),
                ports.join(", ")
            );
        }
        Decision::Direct { dest, port } => {
            targets.push((dest.service.clone(), 1));
            let _ = writeln!(
                human,
                "  no route is attached to `{}` port {}: the request goes to the service itself",
                dest.service, port.port
            );
            backends.push(json!({"service": dest.service, "port": port.port, "weight": 1}));
        }
        Decision::NoMatch { dest, port } => {
            let _ = writeln!(
                human,
                "  routes are attached to `{}` port {} but no rule matches: 404",
                dest.service, port.port
            );
        }
        Decision::Matched {
            dest,
            entry,
            action,
            ..
        } => {
            let _ = dest;
            route_name = entry.route.clone();
            route = json!({"name": entry.route, "rule": entry.rule, "match": entry.r#match});
            let _ = writeln!(
                human,
                "  matched route `{}` rule {} match {} ({}:{}:{})",
                entry.route,
                entry.rule,
                entry.r#match,
                entry.source.file,
                entry.source.line,
                entry.source.column
            );
            if let Some(s) = action.fixed_status {
                let _ = writeln!(
                    human,
                    "  the rule has no usable backend: the sidecar answers {s}"
                );
            }
            if let Some(r) = &action.redirect {
                let location = filters::redirect_location(
                    r,
                    &entry.path,
                    &url.scheme,
                    &url.host,
                    url.port,
                    &url.path,
                    url.query.as_deref(),
                );
                let _ = writeln!(human, "  redirect {}: Location: {location}", r.status);
                redirect = json!({"status": r.status, "location": location});
            } else if action.fixed_status.is_none() {
                let total: u64 = action.backends.iter().map(|b| u64::from(b.weight)).sum();
                for b in &action.backends {
                    let Some(c) = router.body().clusters.get(&b.cluster) else {
                        continue;
                    };
                    let share = if total == 0 {
                        0.0
                    } else {
                        f64::from(b.weight) * 100.0 / total as f64
                    };
                    let mut obj = json!({"service": c.service, "port": c.port, "weight": b.weight});
                    if let Some(v) = &c.version {
                        obj["version"] = json!(v);
                    }
                    backends.push(obj);
                    match targets.iter_mut().find(|(s, _)| *s == c.service) {
                        Some((_, w)) => *w += u64::from(b.weight),
                        None => targets.push((c.service.clone(), u64::from(b.weight))),
                    }
                    let _ = writeln!(
                        human,
                        "  -> `{}` port {}{} weight {} ({share:.1}%)",
                        c.service,
                        c.port,
                        c.version
                            .as_ref()
                            .map(|v| format!(" version `{v}`"))
                            .unwrap_or_default(),
                        b.weight
                    );
                }
                if let Some(rw) = &action.rewrite {
                    let mut path = serde_json::Value::Null;
                    if let Some(p) = &rw.path {
                        seen.path = filters::modify_path(p, &entry.path, &url.path);
                        let _ = writeln!(human, "  path rewritten to `{}`", seen.path);
                        path = json!(seen.path);
                    }
                    if let Some(h) = &rw.hostname {
                        let _ = writeln!(human, "  host rewritten to `{h}`");
                    }
                    rewrite = json!({"path": path, "hostname": rw.hostname});
                }
                action.request_headers.apply_to(&mut seen.headers);
                describe_modifier(&mut human, "request", &action.request_headers);
                describe_modifier(&mut human, "response", &action.response_headers);
                request_headers = modifier_json(&action.request_headers);
                response_headers = modifier_json(&action.response_headers);
                let t = action.timeouts;
                if let Some(t) = t.request_ms {
                    let _ = writeln!(human, "  request timeout {t} ms");
                }
                if let Some(t) = t.backend_request_ms {
                    let _ = writeln!(human, "  backend request timeout {t} ms (each attempt)");
                }
                timeouts =
                    json!({"request_ms": t.request_ms, "backend_request_ms": t.backend_request_ms});
                if let Some(r) = &action.retry {
                    let applies = is_idempotent(&req.method);
                    let _ = writeln!(
                        human,
                        "  retries: up to {} on {:?}, budget {}% (min {}/s){}",
                        r.attempts,
                        r.codes,
                        r.budget.percent,
                        r.budget.min_per_second,
                        if applies {
                            String::new()
                        } else {
                            format!(
                                "; not for `{}`: only idempotent methods are retried",
                                req.method
                            )
                        }
                    );
                    retry = json!({
                        "attempts": r.attempts,
                        "codes": r.codes,
                        "backoff_ms": r.backoff_ms,
                        "max_backoff_ms": r.max_backoff_ms,
                        "budget": {"percent": r.budget.percent, "min_per_second": r.budget.min_per_second},
                        "applies": applies,
                    });
                }
            }
        }
    }
    // Each reached sidecar normalizes again inbound, with its own application's setting: one
    // that does not keep encoded slashes answers 400 to a path that still holds them.
    if has_encoded_slash(&seen.path) {
        let refusing: Vec<String> = targets
            .iter()
            .filter(|(s, _)| {
                s.split_once('/')
                    .and_then(|(ns, name)| checked.model.service(ns, name))
                    .is_none_or(|svc| {
                        crate::lower::encoded_slashes(&checked.model, svc) == EncodedSlashes::Reject
                    })
            })
            .map(|(s, _)| s.clone())
            .collect();
        for s in &refusing {
            let _ = writeln!(
                human,
                "  `{s}` does not keep encoded slashes: its sidecar answers 400"
            );
        }
        if !refusing.is_empty() && refusing.len() == targets.len() {
            status = 400;
            targets.clear();
        }
    }
    let evaluated = status < 300 && !targets.is_empty();
    let authz = if evaluated {
        authorize_at_backends(
            checked,
            caller,
            &targets,
            &seen,
            &route_name,
            &mut backends,
            &mut human,
        )
    } else {
        json!({"decision": "not evaluated", "policies": []})
    };
    // In enforce mode a denied request never reaches the destination: its sidecar answers 403.
    let status = if authz["decision"] == "deny" && authz.get("audited_deny").is_none() {
        let _ = writeln!(human, "  the destination's sidecar answers 403");
        403
    } else {
        status
    };
    let _ = writeln!(human, "  status: {status}");
    let mut json = json!({
        "route": route,
        "status": status,
        "backends": backends,
        "redirect": redirect,
        "authz": authz,
        "path": {"sent": sent_path, "normalized": url.path},
        "refused": null,
        "rewrite": rewrite,
        "request_headers": request_headers,
        "response_headers": response_headers,
        "timeouts": timeouts,
        "retry": retry,
    });
    if kept {
        // Only where it applies, so the JSON of every other request is as it was.
        json["path"]["encoded_slashes"] = json!("kept");
    }
    Ok(Explanation { json, human })
}

/// Whether a normalized path holds an encoded slash or backslash (upper-case after
/// normalization).
fn has_encoded_slash(path: &str) -> bool {
    path.contains("%2F") || path.contains("%5C")
}

/// Evaluate Cedar at the sidecar of each service in `targets` (with its share of the weight),
/// mark each backend with its decision, and combine: one service's answer as it is; several
/// that agree, that answer with the policies of all; several that disagree, `mixed` (the
/// request is answered 403 only by the share that denies).
fn authorize_at_backends(
    checked: &Checked,
    caller: &Service,
    targets: &[(String, u64)],
    seen: &SimpleRequest,
    route: &str,
    backends: &mut [serde_json::Value],
    human: &mut String,
) -> serde_json::Value {
    let total: u64 = targets.iter().map(|(_, w)| w).sum();
    let mut answers = Vec::with_capacity(targets.len());
    for (service, weight) in targets {
        let mut text = String::new();
        let v = crate::policy::explain_authz(checked, caller, service, seen, route, &mut text);
        if targets.len() > 1 {
            text = text.replacen("  authz:", &format!("  authz at `{service}`:"), 1);
            if v["decision"] == "deny" && v.get("audited_deny").is_none() && total > 0 {
                let share = *weight as f64 * 100.0 / total as f64;
                let _ = writeln!(
                    text,
                    "    `{service}` answers 403 ({share:.1}% of requests)"
                );
            }
        }
        human.push_str(&text);
        for b in backends.iter_mut() {
            if b["service"] == service.as_str() {
                b["authz"] = v["decision"].clone();
            }
        }
        answers.push(v);
    }
    let [first, rest @ ..] = answers.as_slice() else {
        return json!({"decision": "not evaluated", "policies": []});
    };
    if rest.is_empty() {
        return first.clone();
    }
    let mut policies: Vec<serde_json::Value> = Vec::new();
    for a in &answers {
        for p in a["policies"].as_array().into_iter().flatten() {
            if !policies.contains(p) {
                policies.push(p.clone());
            }
        }
    }
    let agree = rest.iter().all(|a| a["decision"] == first["decision"]);
    let mut v = json!({
        "decision": if agree { first["decision"].clone() } else { json!("mixed") },
        "policies": policies,
    });
    if answers.iter().any(|a| a.get("audited_deny").is_some()) {
        v["audited_deny"] = json!(true);
    }
    v
}

/// The `meshc explain` command.
#[allow(clippy::too_many_arguments)]
pub fn run(
    dir: &Path,
    opts: &LoadOptions,
    from: &str,
    headers: &[String],
    method: &str,
    url: &str,
    format: ExplainFormat,
    human: HumanOptions,
) -> ExitCode {
    let checked = crate::check_dir(dir, opts);
    if checked.io_error {
        eprint!(
            "{}",
            render::render(Format::Human, &checked.sources, &checked.diagnostics, human)
        );
        return ExitCode::from(2);
    }
    if checked.has_errors() {
        eprint!(
            "{}",
            render::render(Format::Human, &checked.sources, &checked.diagnostics, human)
        );
        eprintln!("error: cannot explain: the mesh definition has errors");
        return ExitCode::from(1);
    }
    match explain(&checked, from, headers, method, url) {
        Ok(e) => {
            let text = match format {
                ExplainFormat::Json => format!(
                    "{}\n",
                    serde_json::to_string_pretty(&e.json).unwrap_or_default()
                ),
                ExplainFormat::Human => e.human,
            };
            if crate::write_stdout(&text) {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(2)
            }
        }
        Err(msg) => {
            eprintln!("error: {msg}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const MESH: &str = "
apiVersion: meshc.dev/v1alpha1
kind: MeshService
metadata: {name: client}
spec:
  ports: [{name: http, port: 80}]
---
apiVersion: meshc.dev/v1alpha1
kind: MeshService
metadata: {name: server}
spec:
  ports: [{name: http, port: 80}]
";
    const POLICIES: &str = r#"
@id("client-calls-server")
permit (principal == Workload::"default/client", action, resource == Service::"default/server");
@id("no-admin")
forbid (principal, action, resource == Service::"default/server") when { context.path like "/admin*" };
"#;

    fn checked(mesh: String, policies: String) -> Checked {
        let checked = crate::check_sources(
            vec![
                ("mesh.yaml".to_string(), mesh),
                ("policies.cedar".to_string(), policies),
            ],
            &LoadOptions::default(),
        );
        assert!(!checked.has_errors(), "{:?}", checked.diagnostics);
        checked
    }

    fn mesh() -> Checked {
        checked(MESH.to_string(), POLICIES.to_string())
    }

    /// Explain answers for the path the sidecars route and authorize: the normalized one.
    #[test]
    fn explain_decides_on_the_normalized_path() {
        let checked = mesh();
        let e = explain(
            &checked,
            "client",
            &[],
            "GET",
            "http://server/x/../%61dmin?a=..",
        )
        .unwrap();
        assert_eq!(e.json["status"], 403, "{}", e.json);
        assert_eq!(e.json["authz"]["decision"], "deny", "{}", e.json);
        assert_eq!(e.json["authz"]["policies"], json!(["no-admin"]));
        assert_eq!(e.json["path"]["sent"], "/x/../%61dmin");
        assert_eq!(e.json["path"]["normalized"], "/admin");
        let changed: Vec<&str> = e
            .human
            .lines()
            .filter(|l| l.contains("normalized"))
            .collect();
        assert_eq!(changed.len(), 1, "{}", e.human);
        assert!(changed[0].contains("`/admin`"), "{}", e.human);
        assert!(
            e.human
                .starts_with("GET http://server/x/../%61dmin?a=.. from"),
            "{}",
            e.human
        );

        // A normal path: no line about it, and the same path on both sides.
        let e = explain(&checked, "client", &[], "GET", "http://server/public").unwrap();
        assert_eq!(e.json["status"], 200, "{}", e.json);
        assert_eq!(e.json["path"]["normalized"], "/public");
        assert!(!e.human.contains("normalized"), "{}", e.human);

        // No safe form: the sidecar's 400, before routing or authorization.
        let e = explain(
            &checked,
            "client",
            &[],
            "GET",
            "http://server/x%2F..%2Fadmin",
        )
        .unwrap();
        assert_eq!(e.json["status"], 400, "{}", e.json);
        assert_eq!(e.json["authz"]["decision"], "not evaluated");
        assert!(e.json["path"]["normalized"].is_null());
        assert!(e.human.contains("answers 400"), "{}", e.human);
    }

    /// `server` keeps encoded slashes; `plain` does not; `proxy` forwards everything to `plain`.
    fn keep_mesh() -> Checked {
        let extra = "
---
apiVersion: meshc.dev/v1alpha1
kind: Sidecar
metadata: {name: server}
spec:
  service: server
  app: {encodedSlashes: keep}
---
apiVersion: meshc.dev/v1alpha1
kind: MeshService
metadata: {name: plain}
spec:
  ports: [{name: http, port: 80}]
---
apiVersion: meshc.dev/v1alpha1
kind: MeshService
metadata: {name: proxy}
spec:
  ports: [{name: http, port: 80}]
---
apiVersion: meshc.dev/v1alpha1
kind: Sidecar
metadata: {name: proxy}
spec:
  service: proxy
  app: {encodedSlashes: keep}
---
apiVersion: meshc.dev/v1alpha1
kind: MeshRoute
metadata: {name: proxy}
spec:
  parentRefs: [{name: proxy}]
  rules:
    - backendRefs: [{name: plain, port: 80}]
";
        let policies = format!(
            "{POLICIES}\npermit (principal == Workload::\"default/client\", action, resource == Service::\"default/plain\");\n"
        );
        checked(format!("{MESH}{extra}"), policies)
    }

    /// The addressed destination's `encodedSlashes` decides: kept (upper-cased, one segment,
    /// no `..` across it) for `server`, 400 for `plain`.
    #[test]
    fn explain_keeps_encoded_slashes_where_the_destination_does() {
        let checked = keep_mesh();
        let e = explain(
            &checked,
            "client",
            &[],
            "GET",
            "http://server/projects/group%2fproject",
        )
        .unwrap();
        assert_eq!(e.json["status"], 200, "{}", e.json);
        assert_eq!(e.json["authz"]["decision"], "allow", "{}", e.json);
        assert_eq!(e.json["path"]["sent"], "/projects/group%2fproject");
        assert_eq!(e.json["path"]["normalized"], "/projects/group%2Fproject");
        assert_eq!(e.json["path"]["encoded_slashes"], "kept", "{}", e.json);
        assert!(e.human.contains("encoded slashes kept"), "{}", e.human);

        // `..` does not resolve across a kept `%2F`: the forbid on `/admin*` does not apply,
        // and the application, which never decodes `%2F`, does not see `/admin` either.
        let e = explain(
            &checked,
            "client",
            &[],
            "GET",
            "http://server/x%2F..%2Fadmin",
        )
        .unwrap();
        assert_eq!(
            e.json["path"]["normalized"], "/x%2F..%2Fadmin",
            "{}",
            e.json
        );
        assert_eq!(e.json["authz"]["decision"], "allow", "{}", e.json);
        // A path-prefix forbid still applies to the kept form.
        let e = explain(&checked, "client", &[], "GET", "http://server/admin/a%2Fb").unwrap();
        assert_eq!(e.json["status"], 403, "{}", e.json);
        assert_eq!(e.json["authz"]["policies"], json!(["no-admin"]));
        assert_eq!(e.json["path"]["encoded_slashes"], "kept");

        // The same path to a destination that does not keep them: 400 before routing.
        let e = explain(
            &checked,
            "client",
            &[],
            "GET",
            "http://plain/projects/group%2fproject",
        )
        .unwrap();
        assert_eq!(e.json["status"], 400, "{}", e.json);
        assert!(e.json["path"]["normalized"].is_null());
        assert!(
            e.json["path"].get("encoded_slashes").is_none(),
            "{}",
            e.json
        );
        assert!(
            e.human
                .contains("`default/plain` does not keep encoded slashes"),
            "{}",
            e.human
        );

        // Without encoded slashes nothing is said, and the JSON is as before.
        let e = explain(&checked, "client", &[], "GET", "http://server/a%2e/b").unwrap();
        assert_eq!(e.json["path"]["normalized"], "/a./b");
        assert!(
            e.json["path"].get("encoded_slashes").is_none(),
            "{}",
            e.json
        );
        assert!(!e.human.contains("encoded slashes"), "{}", e.human);
    }

    /// The caller keeps what the addressed `proxy` keeps, but its route sends the request to
    /// `plain`, whose own sidecar refuses it inbound.
    #[test]
    fn explain_answers_400_where_the_backend_does_not_keep_encoded_slashes() {
        let checked = keep_mesh();
        let e = explain(&checked, "client", &[], "GET", "http://proxy/a%2Fb").unwrap();
        assert_eq!(e.json["status"], 400, "{}", e.json);
        assert_eq!(e.json["route"]["name"], "default/proxy", "{}", e.json);
        assert_eq!(e.json["authz"]["decision"], "not evaluated", "{}", e.json);
        assert!(
            e.human
                .contains("`default/plain` does not keep encoded slashes: its sidecar answers 400"),
            "{}",
            e.human
        );
        let e = explain(&checked, "client", &[], "GET", "http://proxy/a/b").unwrap();
        assert_eq!(e.json["status"], 200, "{}", e.json);
    }

    #[test]
    fn urls_with_whitespace_are_refused() {
        assert!(parse_url("http://a/b c").unwrap_err().contains("a space"));
        assert!(parse_url("http://a/b\tc").unwrap_err().contains("'\\t'"));
        let u = parse_url("http://A.default:8080/b%20c?x=1").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.path.as_str()),
            ("a.default", Some(8080), "/b%20c")
        );
        assert_eq!(u.query.as_deref(), Some("x=1"));
    }
}
