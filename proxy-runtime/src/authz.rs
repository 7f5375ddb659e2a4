//! Inbound authorization: from a request head and the caller's identity to a
//! [`mesh_policy::authorize::Verdict`] (the allocation-free form of
//! [`mesh_policy::AuthzDecision`]: determining policy ids are borrowed from the authorizer).

use hyper::header::{self, HeaderName};
use hyper::http::request::Parts;
use mesh_artifact::{AuthzMode, Body};
use mesh_policy::authorize::Verdict;
use mesh_policy::{Authorizer, AuthzRequest, PolicyError};

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
        // The visible headers the request carries, on the stack for the usual few.
        let mut on_stack = [("", ""); HEADERS_ON_STACK];
        let mut on_heap: Vec<(&str, &str)> = Vec::new();
        let present = self.context_headers.iter().filter_map(|name| {
            let v = match parts.headers.get(name) {
                Some(v) => v.to_str().ok()?,
                // An HTTP/2 request carries its host as `:authority` (the sidecar-to-sidecar
                // leg sends no `Host`): policy sees it under `host` all the same.
                None if name == header::HOST => parts.uri.authority()?.as_str(),
                None => return None,
            };
            Some((name.as_str(), v))
        });
        let headers: &[(&str, &str)] = if self.context_headers.len() <= HEADERS_ON_STACK {
            let mut n = 0;
            for (slot, h) in on_stack.iter_mut().zip(present) {
                *slot = h;
                n += 1;
            }
            on_stack.get(..n).unwrap_or_default()
        } else {
            on_heap.extend(present);
            &on_heap
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
