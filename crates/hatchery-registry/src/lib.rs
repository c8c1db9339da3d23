//! The provider registry: Molecule's provider manifest (`schema_version: 1`), read strictly,
//! validated completely, and queried to derive which LLM provider a workspace must use.
//!
//! Pure: no IO beyond the bytes it is given. A manifest either loads into a [`Registry`]
//! or is a [`ManifestError`]; there is no empty or partial registry. Callers that cannot
//! load one hold the error and fail closed with `registry_unavailable`.
//!
//! ```
//! use hatchery_registry::{DeriveOutcome, Registry};
//!
//! let registry = Registry::builtin();
//! match registry.derive("claude-code", "moonshot/kimi-k2.6") {
//!     DeriveOutcome::Derived(d) => assert_eq!(d.provider.name, "platform"),
//!     other => panic!("unexpected {other:?}"),
//! }
//! ```

// Product code never unwraps what input can influence; tests may.
#![warn(clippy::unwrap_used)]

mod builtin;
mod derive;
mod error;
mod lint;
mod load;
mod manifest;
mod matcher;
mod prefix_index;
mod registry;
pub mod yaml;

pub use derive::{
    Ambiguity, Derivation, DeriveError, DeriveOutcome, ExplainStep, Explanation, MatchedBy,
    PassThroughReason,
};
pub use error::{CatalogError, ManifestError, ProviderProblem, UpstreamError};
pub use lint::{LintWarning, Overlap};
pub use registry::{NativeRef, Protocol, Provider, Registry, Runtime, Upstream};
pub use yaml::Limits;

/// The built-in catalog's manifest bytes, as shipped in the binary.
pub const BUILTIN_MANIFEST: &[u8] = builtin::MANIFEST;
