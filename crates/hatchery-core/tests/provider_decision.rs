//! The fail-closed provider and billing decision, and the config it generates, against the
//! built-in catalog and the registry's reference-like test manifest.

use hatchery_core::{
    BillingMode, ProviderError, ProviderRequest, ProviderSource, WorkspaceConfig, decide_provider,
    render_config_yaml,
};
use hatchery_registry::yaml::{self, NodeKind};
use hatchery_registry::{PassThroughReason, Registry};

fn fixture() -> Registry {
    Registry::from_bytes(include_bytes!(
        "../../hatchery-registry/tests/fixtures/reference-like.yaml"
    ))
    .unwrap()
}

fn request<'a>(runtime: &'a str, model: &'a str, secrets: &'a [&'a str]) -> ProviderRequest<'a> {
    ProviderRequest {
        runtime,
        model,
        provider: None,
        billing_mode: None,
        secret_names: secrets,
        platform_key_configured: true,
    }
}

#[test]
fn a_platform_model_derives_platform_billing() {
    let registry = Registry::builtin();
    let d = decide_provider(registry, &request("claude-code", "moonshot/kimi-k2.6", &[])).unwrap();
    assert_eq!(d.provider.map(|p| p.name.as_str()), Some("platform"));
    assert_eq!(d.source, ProviderSource::ExactModel);
    assert_eq!(d.billing, Some(BillingMode::Platform));
    assert_eq!(d.registry_hash, registry.hash());
}

#[test]
fn platform_billing_needs_the_platform_key() {
    let mut req = request("claude-code", "moonshot/kimi-k2.6", &[]);
    req.platform_key_configured = false;
    let err = decide_provider(Registry::builtin(), &req).unwrap_err();
    assert_eq!(err, ProviderError::PlatformKeyMissing);
    assert_eq!(err.code(), "platform_key_missing");
}

#[test]
fn byok_needs_one_of_the_providers_key_variables() {
    let registry = Registry::builtin();
    let err = decide_provider(
        registry,
        &request("claude-code", "claude-sonnet-4-5", &["OTHER"]),
    )
    .unwrap_err();
    assert_eq!(err.code(), "byok_key_missing");
    assert!(err.to_string().contains("ANTHROPIC_API_KEY"), "{err}");
    let ok = decide_provider(
        registry,
        &request("claude-code", "claude-sonnet-4-5", &["ANTHROPIC_API_KEY"]),
    )
    .unwrap();
    assert_eq!(ok.billing, Some(BillingMode::Byok));
    assert_eq!(ok.provider.map(|p| p.name.as_str()), Some("anthropic-api"));
}

#[test]
fn byok_never_falls_back_to_the_platform_key() {
    // The platform key is configured, the user's key is not: still refused.
    let err = decide_provider(
        Registry::builtin(),
        &request("hermes", "deepseek-chat", &[]),
    )
    .unwrap_err();
    assert!(
        matches!(err, ProviderError::ByokKeyMissing { ref provider, .. } if provider == "deepseek")
    );
}

#[test]
fn an_ambiguous_model_fails_with_its_candidates() {
    let registry = fixture();
    let err =
        decide_provider(&registry, &request("codex", " gpt-6 ", &["OPENAI_API_KEY"])).unwrap_err();
    let ProviderError::DerivationFailed {
        runtime,
        model,
        candidates,
        message,
    } = &err
    else {
        panic!("{err:?}");
    };
    assert_eq!((runtime.as_str(), model.as_str()), ("codex", "gpt-6"));
    assert_eq!(candidates, &["openai-api", "openai-subscription"]);
    assert!(message.contains("set `provider` explicitly"), "{message}");
    assert_eq!(err.code(), "provider_derivation_failed");
}

#[test]
fn an_explicit_provider_settles_an_ambiguity_and_is_recorded_as_explicit() {
    let registry = fixture();
    let mut req = request("codex", "gpt-6", &["OPENAI_API_KEY"]);
    req.provider = Some("openai-api");
    let d = decide_provider(&registry, &req).unwrap();
    assert_eq!(d.provider.map(|p| p.name.as_str()), Some("openai-api"));
    assert_eq!(d.source, ProviderSource::Explicit);
}

#[test]
fn an_explicit_provider_is_never_silently_replaced() {
    // Derivation would say anthropic-oauth; the request says anthropic-api, which is allowed.
    let registry = fixture();
    let mut req = request("claude-code", "sonnet", &["ANTHROPIC_API_KEY"]);
    req.provider = Some("anthropic-api");
    let d = decide_provider(&registry, &req).unwrap();
    assert_eq!(d.provider.map(|p| p.name.as_str()), Some("anthropic-api"));
}

#[test]
fn an_explicit_provider_must_exist_and_be_native() {
    let registry = fixture();
    let mut req = request("claude-code", "sonnet", &[]);
    req.provider = Some("openai-api");
    let err = decide_provider(&registry, &req).unwrap_err();
    assert_eq!(err.code(), "provider_not_allowed");
    let ProviderError::NotAllowed { allowed, .. } = &err else {
        panic!("{err:?}")
    };
    assert!(
        allowed.contains(&"anthropic-oauth".to_owned()),
        "{allowed:?}"
    );
    req.provider = Some("no-such-provider");
    assert!(matches!(
        decide_provider(&registry, &req).unwrap_err(),
        ProviderError::NotAllowed { ref allowed, .. } if allowed.is_empty()
    ));
}

#[test]
fn an_explicit_provider_on_an_unknown_runtime_only_has_to_exist() {
    let registry = fixture();
    let mut req = request("langgraph", "anything", &["OPENROUTER_API_KEY"]);
    req.provider = Some("openrouter");
    assert_eq!(
        decide_provider(&registry, &req).unwrap().source,
        ProviderSource::Explicit
    );
}

#[test]
fn pass_throughs_record_their_reason_and_no_billing() {
    let registry = fixture();
    for (runtime, model, reason) in [
        ("langgraph", "gpt-5.5", PassThroughReason::UnknownRuntime),
        ("claude-code", "  ", PassThroughReason::EmptyModel),
        ("claude-code", "llama-3", PassThroughReason::NoMatch),
    ] {
        let d = decide_provider(&registry, &request(runtime, model, &[])).unwrap();
        assert!(d.provider.is_none());
        assert_eq!(d.billing, None);
        assert_eq!(d.source, ProviderSource::PassThrough(reason));
        assert_eq!(d.source.as_str(), format!("passthrough:{reason}"));
    }
}

#[test]
fn a_billing_mode_that_contradicts_the_provider_is_refused() {
    let registry = Registry::builtin();
    let mut req = request("claude-code", "moonshot/kimi-k2.6", &[]);
    req.billing_mode = Some(BillingMode::Byok);
    assert_eq!(
        decide_provider(registry, &req).unwrap_err().code(),
        "billing_mode_conflict"
    );
    req.billing_mode = Some(BillingMode::Platform);
    assert!(decide_provider(registry, &req).is_ok());
    let mut passthrough = request("langgraph", "x", &[]);
    passthrough.billing_mode = Some(BillingMode::Platform);
    let err = decide_provider(registry, &passthrough).unwrap_err();
    assert!(err.to_string().contains("without a provider"), "{err}");
}

/// The top-level scalar values of a generated config, read back with the strict reader.
fn read_config(text: &str) -> Vec<(String, String)> {
    let doc = yaml::parse(text.as_bytes(), yaml::Limits::default()).expect("valid strict YAML");
    let NodeKind::Mapping(entries) = &doc.node(doc.root().unwrap()).kind else {
        panic!("config is a mapping");
    };
    entries
        .iter()
        .map(|&(k, v)| {
            let key = match &doc.node(k).kind {
                NodeKind::Scalar { text, .. } => text.clone(),
                other => panic!("{other:?}"),
            };
            let value = match &doc.node(v).kind {
                NodeKind::Scalar { text, .. } => text.clone(),
                NodeKind::Sequence(items) => items
                    .iter()
                    .map(|&i| match &doc.node(i).kind {
                        NodeKind::Scalar { text, .. } => text.clone(),
                        other => panic!("{other:?}"),
                    })
                    .collect::<Vec<_>>()
                    .join(","),
                NodeKind::Mapping(_) => panic!("no nested mappings in a config"),
            };
            (key, value)
        })
        .collect()
}

fn get<'a>(config: &'a [(String, String)], key: &str) -> &'a str {
    &config
        .iter()
        .find(|(k, _)| k == key)
        .unwrap_or_else(|| panic!("no {key}"))
        .1
}

#[test]
fn the_config_stamps_the_derived_provider_in_full() {
    let registry = Registry::builtin();
    let decision =
        decide_provider(registry, &request("claude-code", "moonshot/kimi-k2.6", &[])).unwrap();
    let text = render_config_yaml(&WorkspaceConfig {
        runtime: "claude-code",
        model: "moonshot/kimi-k2.6",
        decision: &decision,
    });
    let config = read_config(&text);
    assert_eq!(get(&config, "runtime"), "claude-code");
    assert_eq!(get(&config, "model"), "moonshot/kimi-k2.6");
    assert_eq!(get(&config, "provider"), "platform");
    assert_eq!(get(&config, "provider_source"), "derived:exact_model");
    assert_eq!(get(&config, "llm_billing_mode"), "platform");
    assert_eq!(
        get(&config, "provider_auth_env"),
        "HATCHERY_LLM_USAGE_TOKEN"
    );
    assert_eq!(get(&config, "registry_hash"), registry.hash());
    assert!(get(&config, "provider_base_url").contains("{platform_url}"));
}

#[test]
fn a_pass_through_config_says_so_and_names_no_provider() {
    let registry = fixture();
    let decision = decide_provider(&registry, &request("langgraph", "gpt-5.5", &[])).unwrap();
    let text = render_config_yaml(&WorkspaceConfig {
        runtime: "langgraph",
        model: "gpt-5.5",
        decision: &decision,
    });
    assert!(text.contains("provider: null\n"), "{text}");
    assert!(text.contains("llm_billing_mode: null\n"), "{text}");
    assert_eq!(
        get(&read_config(&text), "provider_source"),
        "passthrough:unknown_runtime"
    );
}

#[test]
fn config_values_survive_any_characters() {
    let registry = fixture();
    let decision = decide_provider(&registry, &request("rt: {x}", "a\"b'c # d", &[])).unwrap();
    let text = render_config_yaml(&WorkspaceConfig {
        runtime: "rt: {x}",
        model: "a\"b'c # d",
        decision: &decision,
    });
    let config = read_config(&text);
    assert_eq!(get(&config, "runtime"), "rt: {x}");
    assert_eq!(get(&config, "model"), "a\"b'c # d");
}
