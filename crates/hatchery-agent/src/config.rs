//! The workspace's `config.yaml`, as hatchery generated it, read strictly; and the
//! runtime-side half of fail-closed: a registry-known runtime/model with no provider in
//! the config is refused before anything starts.

use std::collections::BTreeMap;
use std::path::Path;

use hatchery_registry::yaml::{self, Limits, NodeKind, ScalarForm};
use hatchery_registry::{DeriveOutcome, Registry};

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

/// A key that must be present, as a string (possibly empty).
fn required_key(values: &BTreeMap<String, Value>, key: &str) -> Result<String, String> {
    match values.get(key) {
        Some(Value::Text(text)) => Ok(text.clone()),
        Some(Value::Null) => Ok(String::new()),
        Some(Value::List(_)) => Err(format!("{key}: expected a single value")),
        None => Err(format!("{key} is missing")),
    }
}

/// A scalar or a list of scalars: all a generated config holds.
enum Value {
    Null,
    Text(String),
    List(Vec<String>),
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
        let document =
            yaml::parse(bytes, Limits::default()).map_err(|source| ConfigError::Yaml {
                path: shown.to_owned(),
                source,
            })?;
        let root = document
            .root()
            .ok_or_else(|| shape("the file is empty".to_owned()))?;
        let NodeKind::Mapping(entries) = &document.node(root).kind else {
            return Err(shape("expected a mapping of keys".to_owned()));
        };
        let mut values = BTreeMap::new();
        for (key, value) in entries {
            let NodeKind::Scalar { text: key, .. } = &document.node(*key).kind else {
                return Err(shape("keys must be plain names".to_owned()));
            };
            let value = match &document.node(*value).kind {
                NodeKind::Scalar {
                    text,
                    form,
                    core_tag,
                } => match yaml::resolve(text, *form, core_tag.as_deref()) {
                    yaml::Resolved::Null => Value::Null,
                    _ => Value::Text(text.clone()),
                },
                NodeKind::Sequence(items) => {
                    let mut list = Vec::new();
                    for item in items {
                        match &document.node(*item).kind {
                            NodeKind::Scalar {
                                text,
                                form: ScalarForm::Quoted | ScalarForm::Plain,
                                ..
                            } => list.push(text.clone()),
                            _ => return Err(shape(format!("{key}: expected a list of names"))),
                        }
                    }
                    Value::List(list)
                }
                NodeKind::Mapping(_) => return Err(shape(format!("{key}: unexpected mapping"))),
            };
            values.insert(key.clone(), value);
        }
        let text = |key: &str| match values.get(key) {
            Some(Value::Text(text)) => Ok(Some(text.clone())),
            Some(Value::Null) | None => Ok(None),
            Some(Value::List(_)) => Err(shape(format!("{key}: expected a single value"))),
        };
        let required = |key: &str| text(key)?.ok_or_else(|| shape(format!("{key} is missing")));
        let provider_auth_env = match values.get("provider_auth_env") {
            Some(Value::List(names)) => names.clone(),
            Some(Value::Null) | None => Vec::new(),
            Some(Value::Text(_)) => {
                return Err(shape("provider_auth_env: expected a list".to_owned()));
            }
        };
        Ok(Self {
            // Present even when empty: a config without them is not one hatchery wrote.
            runtime: required_key(&values, "runtime").map_err(shape)?,
            model: required_key(&values, "model").map_err(shape)?,
            provider: text("provider")?,
            provider_source: required("provider_source")?,
            llm_billing_mode: text("llm_billing_mode")?,
            provider_base_url: text("provider_base_url")?,
            provider_auth_env,
            registry_hash: required("registry_hash")?,
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
                "unexpected mapping",
            ),
        ] {
            let error = AgentConfig::parse(text.as_bytes(), "config.yaml")
                .unwrap_err()
                .to_string();
            assert!(error.to_lowercase().contains(expected), "{text:?}: {error}");
        }
    }
}
