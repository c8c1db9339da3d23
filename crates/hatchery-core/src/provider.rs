//! The fail-closed provider and billing decision for one workspace.
//!
//! Order: an explicit `provider` is validated (it must exist and be native to a runtime
//! the registry knows); otherwise derivation decides. Then billing follows the provider:
//! `platform` is platform-billed, any other provider is bring-your-own-key and needs one of
//! its key variables among the secrets. Nothing falls back from one mode to the other, and
//! an ambiguous derivation is an error, never a guess. A registry that failed to load never
//! reaches this function: the caller holds that error and answers `registry_unavailable`.

use std::fmt;

use hatchery_registry::{DeriveOutcome, MatchedBy, PassThroughReason, Provider, Registry};

/// Who pays for a workspace's LLM calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BillingMode {
    /// The platform's gateway key (provider `platform`).
    Platform,
    /// The user's own key for the provider.
    Byok,
}

impl BillingMode {
    /// Its spelling in the API, the database and `config.yaml`: serde's.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Platform => "platform",
            Self::Byok => "byok",
        }
    }

    /// The mode a provider implies.
    #[must_use]
    pub fn of(provider: &Provider) -> Self {
        if provider.is_platform() {
            Self::Platform
        } else {
            Self::Byok
        }
    }
}

impl fmt::Display for BillingMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How the workspace's provider was obtained; recorded so nothing is silent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderSource {
    /// Named in the create request and validated.
    Explicit,
    /// Derived from an exact model id of the runtime.
    ExactModel,
    /// Derived from a unique matcher.
    PrefixMatch,
    /// No provider, for a legitimate reason.
    PassThrough(PassThroughReason),
}

impl ProviderSource {
    /// The recorded spelling: `explicit`, `derived:exact_model`, `passthrough:no_match`, …
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Explicit => "explicit",
            Self::ExactModel => "derived:exact_model",
            Self::PrefixMatch => "derived:prefix_match",
            Self::PassThrough(PassThroughReason::EmptyModel) => "passthrough:empty_model",
            Self::PassThrough(PassThroughReason::UnknownRuntime) => "passthrough:unknown_runtime",
            Self::PassThrough(PassThroughReason::NoMatch) => "passthrough:no_match",
        }
    }
}

impl fmt::Display for ProviderSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a create asks for, as far as the provider is concerned.
#[derive(Debug, Clone, Copy)]
pub struct ProviderRequest<'a> {
    /// The runtime, verbatim.
    pub runtime: &'a str,
    /// The model, verbatim (derivation trims it).
    pub model: &'a str,
    /// An explicit provider, if the request names one.
    pub provider: Option<&'a str>,
    /// An explicit billing mode, if the request names one.
    pub billing_mode: Option<BillingMode>,
    /// Names of the secrets the workspace will have: the request's and the global ones.
    pub secret_names: &'a [&'a str],
    /// Whether the server holds the platform gateway credential.
    pub platform_key_configured: bool,
}

/// The outcome: which provider (if any), how it was obtained, who pays.
#[derive(Debug, Clone, Copy)]
pub struct ProviderDecision<'r> {
    /// The provider to stamp, or `None` for a pass-through.
    pub provider: Option<&'r Provider>,
    /// How it was obtained.
    pub source: ProviderSource,
    /// Who pays; `None` exactly when there is no provider.
    pub billing: Option<BillingMode>,
    /// The registry snapshot that decided.
    pub registry_hash: &'r str,
}

/// Why a workspace cannot be created as asked. Nothing may be persisted on any of these.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[allow(missing_docs)] // the fields' names say what they hold
pub enum ProviderError {
    /// The registry knows the runtime and the model matches several providers.
    #[error("{message}")]
    DerivationFailed {
        runtime: String,
        /// The model (trimmed).
        model: String,
        /// The matching providers, sorted.
        candidates: Vec<String>,
        /// The full explanation, naming runtime, model and candidates.
        message: String,
    },
    /// The explicit provider does not exist or is not native to the runtime.
    #[error("provider `{provider}` is not allowed for runtime `{runtime}`{}", allowed_hint(.allowed))]
    NotAllowed {
        /// The provider asked for.
        provider: String,
        runtime: String,
        /// The providers the runtime allows (empty when the provider does not exist at all).
        allowed: Vec<String>,
    },
    /// A bring-your-own-key provider without any of its key variables among the secrets.
    #[error("provider `{provider}` bills your own key: set one of {} as a secret of the workspace or a global secret", .variables.join(", "))]
    ByokKeyMissing {
        provider: String,
        /// The variables any one of which would do.
        variables: Vec<String>,
    },
    /// The platform provider while the server has no platform gateway credential.
    #[error(
        "provider `platform` is billed to the platform, but this server has no platform gateway key configured"
    )]
    PlatformKeyMissing,
    /// The request's billing mode contradicts its provider.
    #[error("llm_billing_mode `{requested}` contradicts {}", conflict_reason(.provider.as_deref()))]
    BillingModeConflict {
        /// What the request asked for.
        requested: BillingMode,
        /// The provider decided, if any.
        provider: Option<String>,
    },
}

fn allowed_hint(allowed: &[String]) -> String {
    if allowed.is_empty() {
        String::new()
    } else {
        format!("; allowed: {}", allowed.join(", "))
    }
}

fn conflict_reason(provider: Option<&str>) -> String {
    match provider {
        Some(Provider::PLATFORM) => "provider `platform`, which is platform-billed".to_owned(),
        Some(p) => format!("provider `{p}`, which is bring-your-own-key"),
        None => "a workspace without a provider, which has no billing mode".to_owned(),
    }
}

impl ProviderError {
    /// The stable machine-readable code for the API.
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            Self::DerivationFailed { .. } => "provider_derivation_failed",
            Self::NotAllowed { .. } => "provider_not_allowed",
            Self::ByokKeyMissing { .. } => "byok_key_missing",
            Self::PlatformKeyMissing => "platform_key_missing",
            Self::BillingModeConflict { .. } => "billing_mode_conflict",
        }
    }
}

/// Decide the provider and billing of one workspace, failing closed.
pub fn decide_provider<'r>(
    registry: &'r Registry,
    request: &ProviderRequest<'_>,
) -> Result<ProviderDecision<'r>, ProviderError> {
    let (provider, source) = match request.provider {
        Some(name) => (
            Some(explicit_provider(registry, request.runtime, name)?),
            ProviderSource::Explicit,
        ),
        None => match registry.derive(request.runtime, request.model) {
            DeriveOutcome::Derived(d) => {
                let source = match d.via {
                    MatchedBy::ExactModel => ProviderSource::ExactModel,
                    MatchedBy::PrefixMatch => ProviderSource::PrefixMatch,
                };
                (Some(d.provider), source)
            }
            DeriveOutcome::PassThrough(reason) => (None, ProviderSource::PassThrough(reason)),
            DeriveOutcome::Ambiguous(a) => {
                return Err(ProviderError::DerivationFailed {
                    message: a.to_string(),
                    runtime: a.runtime,
                    model: a.model,
                    candidates: a.candidates,
                });
            }
        },
    };
    let billing = provider.map(BillingMode::of);
    if let Some(requested) = request.billing_mode
        && Some(requested) != billing
    {
        return Err(ProviderError::BillingModeConflict {
            requested,
            provider: provider.map(|p| p.name.clone()),
        });
    }
    match (provider, billing) {
        (Some(p), Some(BillingMode::Byok)) => {
            let has_key = p
                .auth_env
                .iter()
                .any(|v| request.secret_names.contains(&v.as_str()));
            if !has_key {
                return Err(ProviderError::ByokKeyMissing {
                    provider: p.name.clone(),
                    variables: p.auth_env.clone(),
                });
            }
        }
        (Some(_), Some(BillingMode::Platform)) if !request.platform_key_configured => {
            return Err(ProviderError::PlatformKeyMissing);
        }
        _ => {}
    }
    Ok(ProviderDecision {
        provider,
        source,
        billing,
        registry_hash: registry.hash(),
    })
}

/// An explicit provider must exist; for a runtime the registry knows it must also be one
/// of the runtime's native providers. For an unknown (federated) runtime, existing is enough:
/// the registry has no native set to hold it to.
fn explicit_provider<'r>(
    registry: &'r Registry,
    runtime: &str,
    name: &str,
) -> Result<&'r Provider, ProviderError> {
    let not_allowed = |allowed: Vec<String>| ProviderError::NotAllowed {
        provider: name.to_owned(),
        runtime: runtime.to_owned(),
        allowed,
    };
    let provider = registry
        .provider(name)
        .map_err(|_| not_allowed(Vec::new()))?;
    match registry.providers_for_runtime(runtime) {
        Ok(native) if native.iter().any(|p| p.name == provider.name) => Ok(provider),
        Ok(native) => Err(not_allowed(native.iter().map(|p| p.name.clone()).collect())),
        Err(_) => Ok(provider),
    }
}
