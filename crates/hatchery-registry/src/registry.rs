//! The loaded registry: providers, runtimes with their native sets, and catalog queries.

use std::collections::HashMap;
use std::fmt;

use serde::Serialize;

use crate::error::{CatalogError, UpstreamError};
use crate::matcher::Matcher;
use crate::prefix_index::{PrefixIndex, ProviderMask};

/// Wire format of a provider's upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// OpenAI-style chat/completions surface.
    Openai,
    /// Anthropic messages surface.
    Anthropic,
}

impl Protocol {
    /// The manifest spelling.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Openai => "openai",
            Self::Anthropic => "anthropic",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One catalog provider. Optional string fields are empty when unset.
#[derive(Debug, Clone, Serialize)]
pub struct Provider {
    /// Stable key; `platform` means platform-billed, anything else bring-your-own-key.
    pub name: String,
    /// Human label.
    pub display_name: String,
    /// UI asset key.
    pub vendor_logo: String,
    /// Wire format.
    pub protocol: Protocol,
    /// How the provider authenticates (not interpreted).
    pub auth_mode: String,
    /// Base URL of the OpenAI-style surface; may hold `{placeholder}` tokens.
    pub base_url_template: String,
    /// Base URL of the Anthropic-style surface.
    pub base_url_anthropic: String,
    /// Names of the environment variables that can carry the key; any one suffices.
    pub auth_env: Vec<String>,
    /// The variable the adapter copies the key into.
    pub auth_token_env: String,
    /// The model-id matcher as written.
    pub model_prefix_match: String,
    /// UI shortcut ids (metadata; derivation never uses them).
    pub model_aliases: Vec<String>,
    /// Greyed out in menus (metadata; derivation ignores it).
    pub deprecated: bool,
    /// The proxy's upstream-vendor key.
    pub upstream_vendor: String,
    /// Model ids that derive to this provider (hatchery extension, used by tests and docs).
    pub example_models: Vec<String>,
    #[serde(skip)]
    pub(crate) matcher: Matcher,
}

impl Provider {
    /// The reserved name of the platform-billed provider.
    pub const PLATFORM: &'static str = "platform";

    /// Whether using this provider is billed to the platform rather than the user's own key.
    #[must_use]
    pub fn is_platform(&self) -> bool {
        self.name == Self::PLATFORM
    }

    /// Whether `model` matches this provider's `model_prefix_match` (unanchored search).
    #[must_use]
    pub fn matches(&self, model: &str) -> bool {
        self.matcher.is_match(model)
    }

    /// The same search with the literal prefilter off: a naive matcher, kept public as
    /// the baseline for benchmarks and for tests that check the prefilter changes nothing.
    #[must_use]
    pub fn matches_without_prefilter(&self, model: &str) -> bool {
        self.matcher.is_match_unfiltered(model)
    }
}

/// One reference in a runtime's native set.
#[derive(Debug, Clone, Serialize)]
pub struct NativeRef {
    /// Index of the provider in the catalog.
    #[serde(skip)]
    pub(crate) provider: usize,
    /// The provider's name.
    pub name: String,
    /// Exact model ids offered for this provider; empty for a name-only arm.
    pub models: Vec<String>,
}

/// A runtime and its native provider set.
#[derive(Debug, Clone)]
pub struct Runtime {
    /// The runtime's name (the mapping key, exact).
    pub name: String,
    /// Human label, when the manifest gives one.
    pub display_name: String,
    /// Native references in priority order.
    pub refs: Vec<NativeRef>,
    /// Exact model id → indices into `refs` that list it, in declared order.
    pub(crate) exact: FastMap<String, Vec<usize>>,
    /// The native providers as a mask over the catalog (see [`PrefixIndex`]).
    pub(crate) native_mask: ProviderMask,
}

/// Lookups on the derive path hash short strings; foldhash is several times faster than
/// `SipHash` there, and these maps hold manifest data, not attacker-chosen keys at scale.
pub(crate) type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// A loaded, validated manifest. Immutable; share it behind an `Arc`.
#[derive(Debug, Clone)]
pub struct Registry {
    pub(crate) hash: String,
    pub(crate) providers: Vec<Provider>,
    pub(crate) provider_by_name: FastMap<String, usize>,
    pub(crate) runtimes: Vec<Runtime>,
    pub(crate) runtime_by_name: FastMap<String, usize>,
    pub(crate) hygiene: Vec<String>,
    /// The prefix step's one-pass index (`None` beyond 128 providers).
    pub(crate) prefix_index: Option<PrefixIndex>,
}

/// Result of [`Registry::resolve_upstream`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream<'r> {
    /// The provider whose `upstream_vendor` is the id's prefix.
    pub provider: &'r str,
    /// The id after the vendor prefix.
    pub model: String,
}

impl Registry {
    /// `sha256:` and the hex SHA-256 of the manifest bytes this registry was loaded from.
    #[must_use]
    pub fn hash(&self) -> &str {
        &self.hash
    }

    /// All providers, in catalog order.
    #[must_use]
    pub fn providers(&self) -> &[Provider] {
        &self.providers
    }

    /// All runtimes, in document order.
    #[must_use]
    pub fn runtimes(&self) -> &[Runtime] {
        &self.runtimes
    }

    /// One provider by name.
    pub fn provider(&self, name: &str) -> Result<&Provider, CatalogError> {
        self.provider_by_name
            .get(name)
            .map(|&i| &self.providers[i])
            .ok_or_else(|| CatalogError::UnknownProvider {
                provider: name.to_owned(),
            })
    }

    /// One runtime by exact name.
    pub fn runtime(&self, name: &str) -> Result<&Runtime, CatalogError> {
        self.find_runtime(name)
            .ok_or_else(|| CatalogError::UnknownRuntime {
                runtime: name.to_owned(),
                known: self
                    .runtimes
                    .iter()
                    .map(|r| r.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }

    pub(crate) fn find_runtime(&self, name: &str) -> Option<&Runtime> {
        self.runtime_by_name.get(name).map(|&i| &self.runtimes[i])
    }

    pub(crate) fn provider_at(&self, index: usize) -> &Provider {
        &self.providers[index]
    }

    /// The runtime's native providers as full entries, in the runtime's declared order.
    pub fn providers_for_runtime(&self, runtime: &str) -> Result<Vec<&Provider>, CatalogError> {
        let runtime = self.runtime(runtime)?;
        Ok(runtime
            .refs
            .iter()
            .map(|r| self.provider_at(r.provider))
            .collect())
    }

    /// Every exact model id the runtime offers, in order, first occurrence kept.
    pub fn models_for_runtime(&self, runtime: &str) -> Result<Vec<&str>, CatalogError> {
        let runtime = self.runtime(runtime)?;
        let mut seen = std::collections::HashSet::new();
        Ok(runtime
            .refs
            .iter()
            .flat_map(|r| r.models.iter().map(String::as_str))
            .filter(|m| seen.insert(*m))
            .collect())
    }

    /// Hygiene warnings found while loading (empty ids, `models: null`, …); never errors.
    #[must_use]
    pub fn hygiene_warnings(&self) -> &[String] {
        &self.hygiene
    }

    /// Which provider proxies a `vendor/model` or `vendor:model` id, by `upstream_vendor`.
    /// Runtime-agnostic and untrimmed; this is not derivation.
    pub fn resolve_upstream(&self, model: &str) -> Result<Upstream<'_>, UpstreamError> {
        if model.is_empty() {
            return Err(UpstreamError::EmptyModel);
        }
        for separator in ['/', ':'] {
            if let Some((vendor, rest)) = model.split_once(separator)
                && let Some(p) = self
                    .providers
                    .iter()
                    .find(|p| !p.upstream_vendor.is_empty() && p.upstream_vendor == vendor)
            {
                return Ok(Upstream {
                    provider: &p.name,
                    model: rest.to_owned(),
                });
            }
        }
        Err(UpstreamError::Unresolved {
            model: model.to_owned(),
        })
    }
}
