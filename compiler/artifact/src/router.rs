//! From a request's authority and parts to a routing decision: the single procedure behind both
//! `meshc explain` and the proxy's outbound side.

use std::borrow::Cow;

use crate::matcher::{IndexError, RequestParts, RouteIndex};
use crate::strtable::StrTable;
use crate::types::{Body, Destination, DestinationPort, EncodedSlashes, RouteEntry, RuleAction};

/// What the mesh does with one request.
#[derive(Debug, Clone, Copy)]
pub enum Decision<'a> {
    /// The host names no destination this sidecar may call.
    UnknownHost,
    /// The destination has no such port (or the port was omitted and is ambiguous).
    UnknownPort { dest: &'a Destination },
    /// No route is attached to this destination port: traffic goes to the service itself.
    Direct {
        dest: &'a Destination,
        port: &'a DestinationPort,
    },
    /// Routes are attached but no rule matches: HTTP 404.
    NoMatch {
        dest: &'a Destination,
        port: &'a DestinationPort,
    },
    /// A rule matched.
    Matched {
        dest: &'a Destination,
        port: &'a DestinationPort,
        entry: &'a RouteEntry,
        action: &'a RuleAction,
    },
}

impl Decision<'_> {
    /// The status the mesh answers with when it does not forward, else 200.
    pub fn status(&self) -> u16 {
        match self {
            Decision::UnknownHost | Decision::UnknownPort { .. } | Decision::NoMatch { .. } => 404,
            Decision::Direct { .. } => 200,
            Decision::Matched { action, .. } => {
                if let Some(s) = action.fixed_status {
                    s
                } else if let Some(r) = &action.redirect {
                    r.status
                } else {
                    200
                }
            }
        }
    }
}

/// The port part of an authority.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthorityPort {
    /// No port, or an empty one (`host:`): the scheme's default applies.
    Default,
    Port(u16),
    /// Not a decimal number from 0 to 65535.
    Invalid,
}

/// Split `[userinfo@]host[:port]` (or `[v6]:port`) into the host, as written but without a
/// trailing dot, and the port. Allocates nothing; the host keeps its case.
pub fn parse_authority(authority: &str) -> (&str, AuthorityPort) {
    let authority = authority.rsplit('@').next().unwrap_or(authority);
    let port = |p: &str| {
        if p.is_empty() {
            AuthorityPort::Default
        } else if p.bytes().all(|b| b.is_ascii_digit()) {
            p.parse()
                .map_or(AuthorityPort::Invalid, AuthorityPort::Port)
        } else {
            AuthorityPort::Invalid
        }
    };
    if let Some(rest) = authority.strip_prefix('[') {
        return match rest.split_once(']') {
            Some((h, "")) => (h, AuthorityPort::Default),
            Some((h, p)) => match p.strip_prefix(':') {
                Some(p) => (h, port(p)),
                None => (h, AuthorityPort::Invalid),
            },
            None => (authority, AuthorityPort::Invalid),
        };
    }
    match authority.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => (h.strip_suffix('.').unwrap_or(h), port(p)),
        _ => (
            authority.strip_suffix('.').unwrap_or(authority),
            AuthorityPort::Default,
        ),
    }
}

/// Split `host[:port]` (or `[v6]:port`) into a lower-case host and an optional port (`None`
/// also for an invalid port; [`Router::decide`] answers [`Decision::UnknownPort`] for those).
pub fn split_authority(authority: &str) -> (String, Option<u16>) {
    let (host, port) = parse_authority(authority);
    let port = match port {
        AuthorityPort::Port(p) => Some(p),
        AuthorityPort::Default | AuthorityPort::Invalid => None,
    };
    (host.to_ascii_lowercase(), port)
}

/// Where a request goes, as indexes into the [`Body`] the [`RouterIndex`] was built from: the
/// same decision as [`Decision`], for a caller (the proxy) that keeps its own compact tables
/// instead of the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolution {
    /// The host names no destination this sidecar may call.
    UnknownHost,
    /// The destination (index into `destinations`) has no such port.
    UnknownPort { dest: usize },
    /// No route is attached to this port (index into the destination's `ports`).
    Direct { dest: usize, port: usize },
    /// Routes are attached but no entry matches.
    NoMatch { dest: usize, port: usize },
    /// Entry `entry` of the port's route table matched.
    Matched {
        dest: usize,
        port: usize,
        entry: usize,
    },
}

/// Host, port and route indexes of an artifact's destinations, without the artifact: what
/// [`Router`] decides with, for callers that drop the body once their own tables are built.
///
/// Host names compare case-insensitively, without a trailing dot. When two destinations list
/// the same host name, the first one (destinations are sorted by service) owns it.
#[derive(Debug)]
pub struct RouterIndex {
    /// Lower-case host name to `[destination index, its first port in indexes, port numbers..]`.
    hosts: StrTable,
    /// One per port of every destination, in order, when routes are attached.
    indexes: Vec<Option<RouteIndex>>,
}

/// Indexed view of an artifact's destinations: a [`RouterIndex`] and the body it indexes.
#[derive(Debug)]
pub struct Router {
    body: Body,
    index: RouterIndex,
}

/// The port rule: an explicit port must be one of the service's; without one, a single-port
/// service uses its one port, otherwise port 80 when the service has it.
fn choose_port(mut ports: impl ExactSizeIterator<Item = u16>, port: Option<u16>) -> Option<usize> {
    match port {
        Some(p) => ports.position(|x| x == p),
        None if ports.len() == 1 => Some(0),
        None => ports.position(|x| x == 80),
    }
}

impl RouterIndex {
    /// Index every destination's hosts and every route table of a body.
    pub fn new(body: &Body) -> Result<Self, IndexError> {
        let too_many = |count| IndexError::TooManyHosts { count };
        let mut hosts = Vec::new();
        let mut indexes = Vec::new();
        for (d, dest) in body.destinations.iter().enumerate() {
            // Each host record carries what port selection needs: the destination, where its
            // ports start in `indexes`, and the port numbers.
            let mut payload = vec![
                u32::try_from(d).map_err(|_| too_many(body.destinations.len()))?,
                u32::try_from(indexes.len()).map_err(|_| too_many(body.destinations.len()))?,
            ];
            payload.extend(dest.ports.iter().map(|p| u32::from(p.port)));
            for h in &dest.hosts {
                hosts.push((h.to_ascii_lowercase(), payload.clone()));
            }
            for p in &dest.ports {
                indexes.push(match &p.routes {
                    Some(t) => Some(RouteIndex::build(t)?),
                    None => None,
                });
            }
        }
        // The table keeps the first destination listed for a host.
        let hosts = StrTable::build(hosts.iter().map(|(h, d)| (h.as_str(), d.clone())))
            .map_err(|_| too_many(hosts.len()))?;
        indexes.shrink_to_fit();
        Ok(RouterIndex { hosts, indexes })
    }

    /// Destination index for a host name (lower case, without port).
    pub fn destination(&self, host: &str) -> Option<usize> {
        self.hosts
            .get(host)
            .and_then(|d| d.first())
            .map(|d| d as usize)
    }

    /// Destination index for a request sent to `authority` (`[userinfo@]host[:port]`): the
    /// destination [`RouterIndex::resolve`] picks, whatever the port and the request.
    pub fn destination_for(&self, authority: &str) -> Option<usize> {
        let (host, _) = parse_authority(authority);
        if host.bytes().any(|b| b.is_ascii_uppercase()) {
            self.destination(&host.to_ascii_lowercase())
        } else {
            self.destination(host)
        }
    }

    /// Resolve a request sent to `authority` (`[userinfo@]host[:port]`): the procedure behind
    /// [`Router::decide`], which documents the rules.
    pub fn resolve<R: RequestParts + ?Sized>(&self, authority: &str, req: &R) -> Resolution {
        let (host, port) = parse_authority(authority);
        let host = if host.bytes().any(|b| b.is_ascii_uppercase()) {
            Cow::Owned(host.to_ascii_lowercase())
        } else {
            Cow::Borrowed(host)
        };
        let Some(record) = self.hosts.get(&host) else {
            return Resolution::UnknownHost;
        };
        let mut words = record.iter();
        let (Some(d), Some(base)) = (words.next(), words.next()) else {
            return Resolution::UnknownHost;
        };
        let dest = d as usize;
        let port = match port {
            AuthorityPort::Default => None,
            AuthorityPort::Port(p) => Some(p),
            AuthorityPort::Invalid => return Resolution::UnknownPort { dest },
        };
        // Port numbers were stored from u16 values.
        let Some(p) = choose_port(words.map(|w| w as u16), port) else {
            return Resolution::UnknownPort { dest };
        };
        match self.indexes.get(base as usize + p).and_then(Option::as_ref) {
            None => Resolution::Direct { dest, port: p },
            Some(index) => match index.lookup(req) {
                Some(entry) => Resolution::Matched {
                    dest,
                    port: p,
                    entry,
                },
                None => Resolution::NoMatch { dest, port: p },
            },
        }
    }
}

impl Router {
    pub fn new(body: Body) -> Result<Self, IndexError> {
        let index = RouterIndex::new(&body)?;
        Ok(Router { body, index })
    }

    pub fn body(&self) -> &Body {
        &self.body
    }

    /// The indexes without the body.
    pub fn index(&self) -> &RouterIndex {
        &self.index
    }

    /// Destination index for a host name (lower case, without port).
    pub fn destination(&self, host: &str) -> Option<usize> {
        self.index.destination(host)
    }

    /// How the outbound side normalizes the path of a request sent to `authority`: the
    /// addressed destination's [`EncodedSlashes`], the default when no destination has the host
    /// (such a request gets 404 anyway).
    pub fn encoded_slashes(&self, authority: &str) -> EncodedSlashes {
        self.index
            .destination_for(authority)
            .and_then(|d| self.body.destinations.get(d))
            .map_or(EncodedSlashes::Reject, |d| d.encoded_slashes)
    }

    /// Port index within a destination. Without an explicit port, a single-port service uses
    /// its one port, otherwise port 80 when the service has it.
    pub fn port(&self, dest: usize, port: Option<u16>) -> Option<usize> {
        let ports = &self.body.destinations.get(dest)?.ports;
        choose_port(ports.iter().map(|p| p.port), port)
    }

    /// Decide what happens to a request sent to `authority` (`[userinfo@]host[:port]`).
    ///
    /// The host picks the destination ([`Decision::UnknownHost`] if none), the port picks the
    /// destination port (see [`Router::port`]; [`Decision::UnknownPort`] if none or if the port
    /// is not a number), then the port's route table decides: [`Decision::Direct`] when no
    /// route is attached, [`Decision::Matched`] for the first entry that matches, and
    /// [`Decision::NoMatch`] (404) when routes are attached but none matches.
    pub fn decide<R: RequestParts + ?Sized>(&self, authority: &str, req: &R) -> Decision<'_> {
        let destinations = &self.body.destinations;
        let port_of = |d: usize, p: usize| {
            let dest = destinations.get(d)?;
            Some((dest, dest.ports.get(p)?))
        };
        match self.index.resolve(authority, req) {
            Resolution::UnknownHost => Decision::UnknownHost,
            Resolution::UnknownPort { dest } => match destinations.get(dest) {
                Some(dest) => Decision::UnknownPort { dest },
                None => Decision::UnknownHost,
            },
            Resolution::Direct { dest, port } => match port_of(dest, port) {
                Some((dest, port)) => Decision::Direct { dest, port },
                None => Decision::UnknownHost,
            },
            Resolution::NoMatch { dest, port } => match port_of(dest, port) {
                Some((dest, port)) => Decision::NoMatch { dest, port },
                None => Decision::UnknownHost,
            },
            Resolution::Matched { dest, port, entry } => {
                let Some((dest, port)) = port_of(dest, port) else {
                    return Decision::UnknownHost;
                };
                // RouteIndex::build checked every action index.
                match port.routes.as_ref().and_then(|t| {
                    let e = t.entries.get(entry)?;
                    Some((e, t.actions.get(e.action as usize)?))
                }) {
                    Some((entry, action)) => Decision::Matched {
                        dest,
                        port,
                        entry,
                        action,
                    },
                    None => Decision::NoMatch { dest, port },
                }
            }
        }
    }
}
