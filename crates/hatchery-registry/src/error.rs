//! Errors of the registry: why a manifest was refused, why a catalog query failed.

use std::fmt;

use crate::yaml::{Position, YamlError};

/// Why a manifest did not load. A manifest loads completely or not at all.
///
/// Each variant maps to one stable category ([`ManifestError::category`]) and its message
/// carries the keyword Molecule's loader uses for the same failure, so logs and scripts
/// written for either read the same way.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[allow(missing_docs)] // the fields' names say what they hold
pub enum ManifestError {
    /// The bytes are not one strict YAML document.
    #[error("parse manifest: {0}")]
    Yaml(#[from] YamlError),
    /// A field has the wrong YAML type (a mapping where a list belongs, a quoted version, …).
    #[error("parse manifest: {path}: {problem} (at {position})")]
    Decode {
        /// Where the field is, e.g. `providers[2].auth_env`.
        path: String,
        /// What is wrong with it.
        problem: String,
        /// Where it is in the input.
        position: Position,
    },
    /// `schema_version` is absent or not the integer 1.
    #[error(
        "schema_version must be the integer 1, found {found}; this hatchery reads schema_version 1 only"
    )]
    SchemaVersion {
        /// What the document says, as written (`absent` when missing).
        found: String,
    },
    /// The provider list is absent or empty.
    #[error("no providers: the manifest must list at least one provider")]
    NoProviders,
    /// A provider entry lacks a required field or has a bad protocol.
    #[error("providers[{index}] (name {name:?}): {problem}")]
    InvalidProvider {
        /// 0-based position in the provider list.
        index: usize,
        /// The entry's name (may be empty).
        name: String,
        /// The first failing field.
        problem: ProviderProblem,
    },
    /// Two providers share a name.
    #[error(
        "providers[{index}]: duplicate provider name {name:?} (first defined at providers[{first_index}])"
    )]
    DuplicateProvider {
        /// Position of the repeat.
        index: usize,
        /// The repeated name.
        name: String,
        /// Position of the first definition.
        first_index: usize,
    },
    /// A `model_prefix_match` is not a regex hatchery and RE2 read the same way.
    #[error("provider {provider:?}: model_prefix_match {pattern:?} is not accepted: {reason}")]
    BadRegex {
        /// The provider that carries it.
        provider: String,
        /// The pattern as written.
        pattern: String,
        /// Why it was refused.
        reason: String,
    },
    /// Two providers claim the same `upstream_vendor`.
    #[error("upstream_vendor {vendor:?} is claimed by both {first:?} and {second:?}")]
    DuplicateUpstreamVendor {
        /// The vendor key.
        vendor: String,
        /// The provider that claimed it first.
        first: String,
        /// The provider that claimed it again.
        second: String,
    },
    /// The runtime mapping is absent or empty.
    #[error("no runtimes: the manifest must map at least one runtime")]
    NoRuntimes,
    /// A runtime lists no providers.
    #[error("runtime {runtime:?}: empty native provider set; list at least one provider")]
    EmptyNativeSet { runtime: String },
    /// A runtime references a provider the catalog does not define.
    #[error("runtime {runtime:?}: providers[{index}] references unknown provider {provider:?}")]
    UnknownProviderRef {
        runtime: String,
        /// Position of the reference in the runtime's list.
        index: usize,
        /// The name it references.
        provider: String,
    },
    /// A runtime references the same provider twice.
    #[error("runtime {runtime:?}: provider {provider:?} is referenced twice")]
    DuplicateProviderRef {
        runtime: String,
        /// The repeated provider.
        provider: String,
    },
}

impl ManifestError {
    /// Stable machine-readable category, as listed in the registry spec.
    #[must_use]
    pub fn category(&self) -> &'static str {
        match self {
            Self::Yaml(_) | Self::Decode { .. } => "parse",
            Self::SchemaVersion { .. } => "schema_version",
            Self::NoProviders => "no_providers",
            Self::InvalidProvider { .. } => "invalid_provider",
            Self::DuplicateProvider { .. } => "duplicate_provider",
            Self::BadRegex { .. } => "bad_regex",
            Self::DuplicateUpstreamVendor { .. } => "duplicate_upstream_vendor",
            Self::NoRuntimes => "no_runtimes",
            Self::EmptyNativeSet { .. } => "empty_native_set",
            Self::UnknownProviderRef { .. } => "unknown_provider_ref",
            Self::DuplicateProviderRef { .. } => "duplicate_provider_ref",
        }
    }
}

/// The first required field a provider entry gets wrong, in the order the loader checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProviderProblem {
    /// `name` is empty.
    NameRequired,
    /// `protocol` is neither `openai` nor `anthropic`.
    BadProtocol(String),
    /// `auth_mode` is empty.
    AuthModeRequired,
    /// `auth_env` is missing or empty.
    AuthEnvRequired,
    /// `display_name` is empty.
    DisplayNameRequired,
    /// `model_prefix_match` is empty.
    MatcherRequired,
}

impl fmt::Display for ProviderProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NameRequired => f.write_str("name is required"),
            Self::BadProtocol(found) => {
                write!(
                    f,
                    "protocol must be \"openai\" or \"anthropic\", found {found:?}"
                )
            }
            Self::AuthModeRequired => f.write_str("auth_mode is required"),
            Self::AuthEnvRequired => {
                f.write_str("auth_env must be non-empty: list the variables that carry the key")
            }
            Self::DisplayNameRequired => f.write_str("display_name is required"),
            Self::MatcherRequired => f.write_str("model_prefix_match is required"),
        }
    }
}

/// Why a catalog query could not answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CatalogError {
    /// The runtime is not in the manifest. Queries never fall back to the whole catalog.
    #[error("unknown runtime {runtime:?}; known runtimes: {known}")]
    UnknownRuntime {
        /// The runtime asked for.
        runtime: String,
        /// The runtimes the manifest defines, comma-separated.
        known: String,
    },
    /// No provider has that name.
    #[error("unknown provider {provider:?}")]
    UnknownProvider {
        /// The name asked for.
        provider: String,
    },
}

/// Why [`crate::Registry::resolve_upstream`] found no provider.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpstreamError {
    /// The model id is empty.
    #[error("model id is empty")]
    EmptyModel,
    /// No `vendor/` or `vendor:` prefix names a provider's `upstream_vendor`.
    #[error("model {model:?} has no `vendor/` or `vendor:` prefix naming a known upstream vendor")]
    #[allow(missing_docs)]
    Unresolved { model: String },
}
