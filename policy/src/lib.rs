//! `mesh-policy`: Cedar authorization for the mesh.
//!
//! Public surface (other crates rely on these names; implementation lives in the modules):
//! - [`model`]: the plain-data description of a mesh that policy needs ([`PolicyModel`]), the
//!   entity model (principal `Workload`, resource `Service`, parent `Namespace`, HTTP-method
//!   actions grouped into `read` and `write`) and the generated Cedar schema.
//! - [`validate`]: parse and strictly validate `*.cedar` sources against the generated schema,
//!   returning plain [`PolicyDiagnostic`]s with file and byte spans (the compiler renders them).
//! - [`slice`]: the [`mesh_artifact::AuthzBundle`] for one sidecar's inbound side.
//! - [`authorize`]: the per-request [`Authorizer`], parsed once from a bundle.
//!
//! Architecture invariant: no I/O, no async; everything here is a pure function of its inputs.

pub mod authorize;
pub mod model;
pub mod slice;
pub mod validate;

pub use authorize::{
    Authorizer, AuthzDecision, AuthzRequest, Decision, PolicyError, PolicyIds, Verdict,
};
pub use model::{
    PolicyModel, ServiceEntry, entities_json, schema_text, spiffe_id, workload_uid_from_spiffe,
};
pub use slice::{Slicer, bundle_for, bundle_for_callers};
pub use validate::{
    CODES, CodeInfo, Effect, PolicyDiagnostic, PolicyEntry, PolicySet, Severity, validate,
};
