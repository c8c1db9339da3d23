//! Loading: strict YAML, decoding, then the spec's validation steps in their exact order.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::fmt::Write as _;

use sha2::{Digest, Sha256};

use crate::error::{ManifestError, ProviderProblem};
use crate::manifest::{self, RawManifest, RawProvider, RawRuntime, SchemaVersion};
use crate::matcher::Matcher;
use crate::prefix_index::PrefixIndex;
use crate::registry::{FastMap, NativeRef, Protocol, Provider, Registry, Runtime};
use crate::yaml::{self, Limits};

impl Registry {
    /// Load a manifest from its bytes with the default [`Limits`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ManifestError> {
        Self::from_bytes_with_limits(bytes, Limits::default())
    }

    /// Load a manifest from its bytes. Validation stops at the first failure.
    pub fn from_bytes_with_limits(bytes: &[u8], limits: Limits) -> Result<Self, ManifestError> {
        let doc = yaml::parse(bytes, limits)?;
        let raw = manifest::decode(&doc)?;
        validate(raw, content_hash(bytes))
    }
}

fn content_hash(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let mut hash = String::with_capacity(7 + 64);
    hash.push_str("sha256:");
    for byte in &digest {
        let _ = write!(hash, "{byte:02x}");
    }
    hash
}

fn validate(raw: RawManifest, hash: String) -> Result<Registry, ManifestError> {
    match raw.schema_version {
        SchemaVersion::Int(1) => {}
        SchemaVersion::Absent => return Err(schema_version("absent (read as 0)")),
        SchemaVersion::Int(other) => return Err(schema_version(&other.to_string())),
        SchemaVersion::Float(text) => return Err(schema_version(&text)),
    }
    if raw.providers.is_empty() {
        return Err(ManifestError::NoProviders);
    }
    let mut hygiene = Vec::new();
    let mut providers = Vec::with_capacity(raw.providers.len());
    let mut provider_by_name = FastMap::default();
    for (index, entry) in raw.providers.into_iter().enumerate() {
        let provider = validate_provider(index, entry, &provider_by_name)?;
        provider_by_name.insert(provider.name.clone(), index);
        providers.push(provider);
    }
    check_upstream_vendors(&providers)?;

    if raw.runtimes.is_empty() {
        return Err(ManifestError::NoRuntimes);
    }
    let mut runtimes = Vec::with_capacity(raw.runtimes.len());
    let mut runtime_by_name = FastMap::default();
    for entry in raw.runtimes {
        let runtime = validate_runtime(entry, &provider_by_name, &mut hygiene)?;
        runtime_by_name.insert(runtime.name.clone(), runtimes.len());
        runtimes.push(runtime);
    }
    let prefix_index = PrefixIndex::build(&providers);
    Ok(Registry {
        hash,
        providers,
        provider_by_name,
        runtimes,
        runtime_by_name,
        hygiene,
        prefix_index,
    })
}

fn schema_version(found: &str) -> ManifestError {
    ManifestError::SchemaVersion {
        found: found.to_owned(),
    }
}

/// Steps 4–6 for one entry: required fields in the loader's order, then the name's
/// uniqueness, then the matcher's compilation.
fn validate_provider(
    index: usize,
    raw: RawProvider,
    seen: &FastMap<String, usize>,
) -> Result<Provider, ManifestError> {
    let invalid = |problem| ManifestError::InvalidProvider {
        index,
        name: raw.name.clone(),
        problem,
    };
    if raw.name.is_empty() {
        return Err(invalid(ProviderProblem::NameRequired));
    }
    let protocol = match raw.protocol.as_str() {
        "openai" => Protocol::Openai,
        "anthropic" => Protocol::Anthropic,
        other => return Err(invalid(ProviderProblem::BadProtocol(other.to_owned()))),
    };
    if raw.auth_mode.is_empty() {
        return Err(invalid(ProviderProblem::AuthModeRequired));
    }
    if raw.auth_env.is_empty() {
        return Err(invalid(ProviderProblem::AuthEnvRequired));
    }
    if raw.display_name.is_empty() {
        return Err(invalid(ProviderProblem::DisplayNameRequired));
    }
    if raw.model_prefix_match.is_empty() {
        return Err(invalid(ProviderProblem::MatcherRequired));
    }
    if let Some(&first_index) = seen.get(&raw.name) {
        return Err(ManifestError::DuplicateProvider {
            index,
            name: raw.name,
            first_index,
        });
    }
    let matcher =
        Matcher::compile(&raw.model_prefix_match).map_err(|reason| ManifestError::BadRegex {
            provider: raw.name.clone(),
            pattern: raw.model_prefix_match.clone(),
            reason,
        })?;
    Ok(Provider {
        name: raw.name,
        display_name: raw.display_name,
        vendor_logo: raw.vendor_logo,
        protocol,
        auth_mode: raw.auth_mode,
        base_url_template: raw.base_url_template,
        base_url_anthropic: raw.base_url_anthropic,
        auth_env: raw.auth_env,
        auth_token_env: raw.auth_token_env,
        model_prefix_match: raw.model_prefix_match,
        model_aliases: raw.model_aliases,
        deprecated: raw.deprecated,
        upstream_vendor: raw.upstream_vendor,
        example_models: raw.example_models,
        matcher,
    })
}

/// Step 7: a non-empty `upstream_vendor` names one provider only.
fn check_upstream_vendors(providers: &[Provider]) -> Result<(), ManifestError> {
    let mut claimed: HashMap<&str, &str> = HashMap::new();
    for p in providers.iter().filter(|p| !p.upstream_vendor.is_empty()) {
        if let Some(first) = claimed.insert(&p.upstream_vendor, &p.name) {
            return Err(ManifestError::DuplicateUpstreamVendor {
                vendor: p.upstream_vendor.clone(),
                first: first.to_owned(),
                second: p.name.clone(),
            });
        }
    }
    Ok(())
}

/// Steps 9–11 for one runtime, references in declared order.
fn validate_runtime(
    raw: RawRuntime,
    provider_by_name: &FastMap<String, usize>,
    hygiene: &mut Vec<String>,
) -> Result<Runtime, ManifestError> {
    if raw.providers.is_empty() {
        return Err(ManifestError::EmptyNativeSet { runtime: raw.name });
    }
    if raw.name.is_empty() {
        hygiene.push("a runtime has an empty name".to_owned());
    }
    let mut refs: Vec<NativeRef> = Vec::with_capacity(raw.providers.len());
    let mut exact: FastMap<String, Vec<usize>> = FastMap::default();
    for (index, reference) in raw.providers.into_iter().enumerate() {
        let Some(&provider) = provider_by_name.get(&reference.name) else {
            return Err(ManifestError::UnknownProviderRef {
                runtime: raw.name,
                index,
                provider: reference.name,
            });
        };
        if refs.iter().any(|r| r.provider == provider) {
            return Err(ManifestError::DuplicateProviderRef {
                runtime: raw.name,
                provider: reference.name,
            });
        }
        if reference.models_explicit_null {
            hygiene.push(format!(
                "runtime {:?}: provider {:?} has `models: null` written out; omit the key for a name-only arm",
                raw.name, reference.name
            ));
        }
        for model in &reference.models {
            if model.is_empty() {
                hygiene.push(format!(
                    "runtime {:?}: provider {:?} lists an empty model id",
                    raw.name, reference.name
                ));
            }
            // Each reference counts once per id, even when it lists the id twice.
            match exact.entry(model.clone()) {
                Entry::Occupied(mut e) if e.get().last() != Some(&index) => e.get_mut().push(index),
                Entry::Occupied(_) => {}
                Entry::Vacant(e) => {
                    e.insert(vec![index]);
                }
            }
        }
        refs.push(NativeRef {
            provider,
            name: reference.name,
            models: reference.models,
        });
    }
    let native_mask = refs
        .iter()
        .filter_map(|r| 1u128.checked_shl(u32::try_from(r.provider).ok()?))
        .fold(0, |mask, bit| mask | bit);
    Ok(Runtime {
        name: raw.name,
        display_name: raw.display_name,
        refs,
        exact,
        native_mask,
    })
}
