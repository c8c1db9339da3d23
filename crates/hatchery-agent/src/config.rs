//! The workspace's `config.yaml`, as hatchery generated it, read strictly; and the
//! runtime-side half of fail-closed: a registry-known runtime/model with no provider in
//! the config is refused before anything starts.

use std::path::Path;

use hatchery_core::yaml::{self, YamlError};
use hatchery_registry::{DeriveOutcome, Registry};
use serde::{Deserialize, Deserializer};

/// The largest config file read.
const MAX_CONFIG_BYTES: u64 = 256 * 1024;

/// What the agent needs of its config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentConfig {
    /// The runtime this workspace runs.
    pub runtime: String,
    /// The model, as the control plane trimmed it when it derived the provider.
    pub model: String,
    /// The provider stamped by the control plane; `None` when it derived none.
    pub provider: Option<String>,
    /// How the provider was obtained (`derived:exact_model`, `passthrough:no_match`, …).
    pub provider_source: String,
    /// `platform` or `byok`; `None` without a provider.
    pub llm_billing_mode: Option<String>,
    /// The provider's base URL, if any.
    pub provider_base_url: Option<String>,
    /// Names of the environment variables that carry the provider's key.
    pub provider_auth_env: Vec<String>,
    /// The registry snapshot that decided.
    pub registry_hash: String,
}

/// Why the agent refuses to start.
#[derive(Debug, thiserror::Error)]
#[allow(missing_docs)] // the fields' names say what they hold
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    /// The file is too large to be a generated config.
    #[error("{path} is larger than {MAX_CONFIG_BYTES} bytes: not a generated config")]
    TooLarge { path: String },
    /// Not valid (strict) YAML.
    #[error("{path}: {source}")]
    Yaml {
        path: String,
        /// The parser's error.
        source: yaml::YamlError,
    },
    /// Valid YAML, but not the shape hatchery writes.
    #[error("{path}: {detail}")]
    Shape {
        path: String,
        /// What is wrong.
        detail: String,
    },
    /// The fail-closed check: the registry knows this runtime/model, the config names no
    /// provider.
    #[error(
        "refusing to start: runtime {runtime:?} with model {model:?} needs a provider ({expected}) but config.yaml names none; recreate the workspace so the control plane stamps it"
    )]
    ProviderMissing {
        runtime: String,
        model: String,
        /// What the registry says.
        expected: String,
    },
}

/// The keys the agent reads; the others (`provider_protocol`, …) are the runtime's. A
/// string takes a plain scalar's text; `null` is the same as absent, except for `runtime`
/// and `model`, which a generated config always writes (possibly empty).
#[derive(Deserialize)]
struct Keys {
    #[serde(default, deserialize_with = "null_as_empty")]
    runtime: Option<String>,
    #[serde(default, deserialize_with = "null_as_empty")]
    model: Option<String>,
    provider: Option<String>,
    provider_source: Option<String>,
    llm_billing_mode: Option<String>,
    provider_base_url: Option<String>,
    provider_auth_env: Option<Vec<String>>,
    registry_hash: Option<String>,
}

/// A written key, `null` as the empty string (an absent one stays `None` by `default`).
fn null_as_empty<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Option::<String>::deserialize(d).map(|value| Some(value.unwrap_or_default()))
}

impl AgentConfig {
    /// Read and check `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let shown = path.display().to_string();
        let read = |source| ConfigError::Read {
            path: shown.clone(),
            source,
        };
        let size = std::fs::metadata(path).map_err(read)?.len();
        if size > MAX_CONFIG_BYTES {
            return Err(ConfigError::TooLarge { path: shown });
        }
        let bytes = std::fs::read(path).map_err(read)?;
        Self::parse(&bytes, &shown)
    }

    /// Parse the bytes of a `config.yaml`.
    pub fn parse(bytes: &[u8], shown: &str) -> Result<Self, ConfigError> {
        let shape = |detail: String| ConfigError::Shape {
            path: shown.to_owned(),
            detail,
        };
        let keys = match yaml::from_slice::<Option<Keys>>(bytes) {
            Ok(Some(keys)) => keys,
            Ok(None) => return Err(shape("the file is empty".to_owned())),
            Err(YamlError::Shape(detail)) => return Err(shape(detail)),
            Err(source) => {
                return Err(ConfigError::Yaml {
                    path: shown.to_owned(),
                    source,
                });
            }
        };
        // Present even when empty: a config without them is not one hatchery wrote.
        let required = |value: Option<String>, key: &str| {
            value.ok_or_else(|| shape(format!("{key} is missing")))
        };
        Ok(Self {
            runtime: required(keys.runtime, "runtime")?,
            model: required(keys.model, "model")?,
            provider: keys.provider,
            provider_source: required(keys.provider_source, "provider_source")?,
            llm_billing_mode: keys.llm_billing_mode,
            provider_base_url: keys.provider_base_url,
            provider_auth_env: keys.provider_auth_env.unwrap_or_default(),
            registry_hash: required(keys.registry_hash, "registry_hash")?,
        })
    }

    /// Fail closed: if `registry` derives a provider for this runtime/model (or finds it
    /// ambiguous) and the config names none, refuse.
    pub fn check_provider(&self, registry: &Registry) -> Result<(), ConfigError> {
        if self.provider.is_some() {
            return Ok(());
        }
        let expected = match registry.derive(&self.runtime, &self.model) {
            DeriveOutcome::PassThrough(_) => return Ok(()),
            DeriveOutcome::Derived(derivation) => {
                format!("the registry derives {}", derivation.provider.name)
            }
            DeriveOutcome::Ambiguous(ambiguity) => format!(
                "the registry finds it ambiguous between {}",
                ambiguity.candidates.join(", ")
            ),
        };
        Err(ConfigError::ProviderMissing {
            runtime: self.runtime.clone(),
            model: self.model.clone(),
            expected,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAMPED: &str = "# Generated by hatchery\n\
        runtime: \"claude-code\"\nmodel: \"moonshot/kimi-k2.6\"\nprovider: \"platform\"\n\
        provider_source: \"derived:exact_model\"\nllm_billing_mode: \"platform\"\n\
        provider_protocol: \"openai\"\nprovider_base_url: \"https://gw.example/v1\"\n\
        provider_base_url_anthropic: null\nprovider_auth_env: [\"HATCHERY_PLATFORM_KEY\"]\n\
        provider_auth_token_env: null\nregistry_hash: \"sha256:abc\"\n";

    #[test]
    fn a_stamped_config_reads_back() {
        let config = AgentConfig::parse(STAMPED.as_bytes(), "config.yaml").unwrap();
        assert_eq!(config.runtime, "claude-code");
        assert_eq!(config.provider.as_deref(), Some("platform"));
        assert_eq!(config.llm_billing_mode.as_deref(), Some("platform"));
        assert_eq!(config.provider_auth_env, ["HATCHERY_PLATFORM_KEY"]);
        assert_eq!(config.registry_hash, "sha256:abc");
        assert!(config.check_provider(Registry::builtin()).is_ok());
    }

    #[test]
    fn a_known_model_without_a_provider_is_refused_naming_runtime_and_model() {
        let stripped = STAMPED.replace("provider: \"platform\"", "provider: null");
        let config = AgentConfig::parse(stripped.as_bytes(), "config.yaml").unwrap();
        let error = config
            .check_provider(Registry::builtin())
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("\"claude-code\"") && error.contains("\"moonshot/kimi-k2.6\""),
            "{error}"
        );
        assert!(error.contains("platform"), "{error}");
    }

    #[test]
    fn pass_through_runtimes_start_without_a_provider() {
        let federated = STAMPED
            .replace("runtime: \"claude-code\"", "runtime: \"my-own-runtime\"")
            .replace("provider: \"platform\"", "provider: null");
        let config = AgentConfig::parse(federated.as_bytes(), "config.yaml").unwrap();
        assert!(config.check_provider(Registry::builtin()).is_ok());
    }

    #[test]
    fn malformed_configs_are_refused_with_the_reason() {
        for (text, expected) in [
            ("", "empty"),
            ("- a\n- b\n", "mapping"),
            (
                "runtime: a\nruntime: b\nprovider_source: x\nregistry_hash: y\n",
                "duplicate",
            ),
            (
                "runtime: \"a\"\nmodel: \"\"\nregistry_hash: \"y\"\n",
                "provider_source is missing",
            ),
            (
                "runtime: \"a\"\nprovider_source: x\nregistry_hash: y\n",
                "model is missing",
            ),
            (
                "runtime: {a: 1}\nprovider_source: x\nregistry_hash: y\n",
                "runtime: expected string",
            ),
        ] {
            let error = AgentConfig::parse(text.as_bytes(), "config.yaml")
                .unwrap_err()
                .to_string();
            assert!(error.to_lowercase().contains(expected), "{text:?}: {error}");
        }
    }
}
