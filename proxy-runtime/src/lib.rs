//! `mesh-proxy`: the meshc sidecar.
//!
//! It loads one compiled artifact (see `mesh-artifact`), enforces it and swaps in a new one only
//! after it decoded, verified and built; a bad artifact leaves the last good one serving.
//!
//! - [`config`]: flags ([`config::Cli`]) and the runtime [`config::Config`].
//! - [`loader`]: artifact and certificate (re)loading, the folder watcher.
//! - [`snapshot`]: one loaded artifact with its router, authorizer, per-route metric handles and
//!   per-cluster state, published through an `ArcSwap`.
//! - [`tls`]: mutual TLS 1.3 with SPIFFE identities (rustls, `ring`).
//! - [`inbound`]: mutual TLS in, authorization, forwarding to the local application.
//! - [`outbound`]: the application's requests, routed by the shared `Router::decide`.
//! - [`authz`]: glue to `mesh-policy`'s `Authorizer`.
//! - [`path`]: the request path normalized before routing and authorization, and forwarded so.
//! - [`upstream`]: pooled clients to destination sidecars and to the application.
//! - [`tunnel`]: connections that switched protocols (`Upgrade`, WebSocket), spliced.
//! - [`metrics`], [`admin`], [`access`]: observability.
//! - [`lifecycle`]: start, listeners, reload task, signals and drain.
//!
//! Architecture invariant: depends on `mesh-artifact` and `mesh-policy`, never on `meshc`.

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod access;
pub mod admin;
pub mod authz;
pub mod config;
pub mod http;
pub mod inbound;
pub mod lifecycle;
pub mod loader;
pub mod metrics;
pub mod outbound;
pub mod path;
pub mod server;
pub mod snapshot;
pub mod tls;
pub mod tunnel;
pub mod upstream;

pub use config::{Cli, Config, LoadBalancer};
pub use lifecycle::{ProxyHandle, StartError, start, wait_for_signal};
