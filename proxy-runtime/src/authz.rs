//! Inbound authorization: from a request head and the caller's identity to a
//! [`mesh_policy::authorize::Verdict`] (the allocation-free form of
//! [`mesh_policy::AuthzDecision`]: determining policy ids are borrowed from the authorizer).

use std::borrow::Cow;

use hyper::header::{self, HeaderName};
use hyper::http::request::Parts;
use mesh_artifact::{AuthzMode, Body};
use mesh_policy::authorize::Verdict;
use mesh_policy::{Authorizer, AuthzRequest, PolicyError};

use crate::http::field_value;

/// Visible headers a request's authorization collects without allocating.
const HEADERS_ON_STACK: usize = 8;

/// The authorizer of one artifact, with what the request path needs prepared.
#[derive(Debug)]
pub struct Authz {
    authorizer: Authorizer,
    mode: AuthzMode,
    /// This sidecar's service, `namespace/name`: the resource of every request.
    service: String,
    /// Headers visible to policy, parsed once.
    context_headers: Vec<HeaderName>,
}

impl Authz {
    pub fn new(body: &Body) -> Result<Self, PolicyError> {
        let authorizer = Authorizer::new(&body.authz)?;
        let context_headers = authorizer
            .context_headers()
            .iter()
            .filter_map(|h| HeaderName::from_bytes(h.as_bytes()).ok())
            .collect();
        Ok(Authz {
            authorizer,
            mode: body.sidecar.authz_mode,
            service: body.sidecar.service.clone(),
            context_headers,
        })
    }

    pub fn mode(&self) -> AuthzMode {
        self.mode
    }

    /// Decide one request. `principal` is the caller's SPIFFE ID, empty when unauthenticated;
    /// `route` the route the caller's sidecar matched, empty when unknown.
    pub fn check(&self, principal: &str, parts: &Parts, route: &str) -> Verdict<'_> {
        // The visible headers the request carries, on the stack for the usual few. A header
        // on one line is borrowed; one on several lines is combined (`field_value`), the only
        // case that allocates.
        let present = self.context_headers.iter().filter_map(|name| {
            let v = match field_value(&parts.headers, name) {
                Some(v) => v,
                // An HTTP/2 request carries its host as `:authority` (the sidecar-to-sidecar
                // leg sends no `Host`): policy sees it under `host` all the same.
                None if name == header::HOST && !parts.headers.contains_key(header::HOST) => {
                    Cow::Borrowed(parts.uri.authority()?.as_str())
                }
                None => return None,
            };
            Some((name.as_str(), v))
        });
        let mut values: [(&str, Cow<'_, str>); HEADERS_ON_STACK] =
            std::array::from_fn(|_| ("", Cow::Borrowed("")));
        let mut on_stack = [("", ""); HEADERS_ON_STACK];
        let on_heap: Vec<(&str, Cow<'_, str>)>;
        let on_heap_refs: Vec<(&str, &str)>;
        let headers: &[(&str, &str)] = if self.context_headers.len() <= HEADERS_ON_STACK {
            let mut n = 0;
            for (slot, h) in values.iter_mut().zip(present) {
                *slot = h;
                n += 1;
            }
            for (slot, (name, v)) in on_stack.iter_mut().zip(&values).take(n) {
                *slot = (name, v.as_ref());
            }
            on_stack.get(..n).unwrap_or_default()
        } else {
            on_heap = present.collect();
            on_heap_refs = on_heap.iter().map(|(n, v)| (*n, v.as_ref())).collect();
            &on_heap_refs
        };
        let req = AuthzRequest {
            principal,
            service: &self.service,
            method: parts.method.as_str(),
            path: parts.uri.path(),
            query: parts.uri.query().unwrap_or(""),
            route,
            headers,
        };
        self.authorizer.decide(&req, self.mode)
    }
}
