//! `mesh-artifact`: the compiled per-sidecar artifact shared by `meshc` and `mesh-proxy`.
//!
//! - [`types`]: the plain-data artifact, versioned.
//! - [`codec`]: canonical encoding and verified decoding.
//! - [`rank`]: Gateway API precedence as a sort key (used by the compiler).
//! - [`matcher`]: the indexed route matcher.
//! - [`router`]: host and port resolution on top of the matcher: the one decision procedure
//!   that `meshc explain` and `mesh-proxy` both call.
//! - [`filters`]: redirect locations and URL rewrites.
//! - [`path`]: request path normalization, applied before routing and authorization.
//!
//! Architecture invariant: no I/O, no YAML, no async, no CLI here.

pub mod codec;
pub mod filters;
pub mod matcher;
pub mod path;
pub mod rank;
pub mod router;
mod strtable;
pub mod types;

pub use codec::{Artifact, LoadError, decode, encode};
pub use matcher::{
    RequestParts, RouteIndex, SimpleRequest, combine_field_lines, field_separator, miscased_method,
};
pub use path::{PathError, normalize_path, normalize_path_with};
pub use router::{Decision, Router};
pub use types::*;
