//! The built-in catalog: it loads, it covers what the product promises, and every
//! provider's example models derive to it on every runtime that offers it.

use hatchery_registry::{BUILTIN_MANIFEST, DeriveOutcome, Registry};

#[test]
fn the_builtin_catalog_loads_and_hashes_its_bytes() {
    let registry = Registry::from_bytes(BUILTIN_MANIFEST).unwrap();
    assert_eq!(registry.hash(), Registry::builtin().hash());
    assert!(
        registry.hygiene_warnings().is_empty(),
        "{:?}",
        registry.hygiene_warnings()
    );
}

#[test]
fn the_builtin_catalog_covers_the_promised_runtimes_and_providers() {
    let r = Registry::builtin();
    for runtime in [
        "claude-code",
        "hermes",
        "codex",
        "openclaw",
        "langgraph",
        "crewai",
        "google-adk",
    ] {
        assert!(r.runtime(runtime).is_ok(), "runtime {runtime} missing");
    }
    // Molecule's names where Molecule has the provider, so stamped providers are understood.
    for provider in [
        "platform",
        "anthropic-api",
        "anthropic-oauth",
        "openai-api",
        "openai-subscription",
        "kimi-coding",
        "moonshot",
        "deepseek",
        "zai",
        "minimax",
        "openrouter",
        "google",
        "groq",
        "ollama",
        "alibaba",
        "xai",
        "mistral",
        "together",
        "fireworks",
    ] {
        assert!(r.provider(provider).is_ok(), "provider {provider} missing");
    }
    assert!(r.provider("platform").unwrap().is_platform());
}

#[test]
fn every_provider_has_example_models_and_a_key_variable() {
    for p in Registry::builtin().providers() {
        assert!(
            !p.example_models.is_empty(),
            "{} has no example_models",
            p.name
        );
        assert!(p.auth_env.iter().all(|v| !v.is_empty()), "{}", p.name);
        assert!(
            !p.base_url_template.is_empty()
                || !p.base_url_anthropic.is_empty()
                || p.auth_mode == "oauth",
            "{} has no base URL",
            p.name
        );
    }
}

#[test]
fn every_example_model_derives_to_its_provider_on_every_runtime_offering_it() {
    let r = Registry::builtin();
    let mut checked = 0;
    for runtime in r.runtimes() {
        for reference in &runtime.refs {
            let provider = r.provider(&reference.name).unwrap();
            for model in &provider.example_models {
                match r.derive(&runtime.name, model) {
                    DeriveOutcome::Derived(d) => assert_eq!(
                        d.provider.name, provider.name,
                        "{} + {model} derived {} instead",
                        runtime.name, d.provider.name
                    ),
                    other => panic!(
                        "{} + {model}: expected {}, got {other:?}",
                        runtime.name, provider.name
                    ),
                }
                checked += 1;
            }
        }
    }
    assert!(checked > 50, "only {checked} derivations checked");
}

#[test]
fn every_menu_model_derives_and_none_is_ambiguous() {
    let r = Registry::builtin();
    for runtime in r.runtimes() {
        for model in r.models_for_runtime(&runtime.name).unwrap() {
            assert!(
                matches!(r.derive(&runtime.name, model), DeriveOutcome::Derived(_)),
                "{} + {model} does not derive",
                runtime.name
            );
        }
    }
}

#[test]
fn the_builtin_catalog_has_no_overlapping_native_matchers() {
    let warnings = Registry::builtin().lint();
    assert!(warnings.is_empty(), "{warnings:#?}");
}

#[test]
fn the_seed_pair_derives_the_platform_provider() {
    let DeriveOutcome::Derived(d) = Registry::builtin().derive("claude-code", "moonshot/kimi-k2.6")
    else {
        panic!("claude-code + moonshot/kimi-k2.6 must derive");
    };
    assert_eq!(d.provider.name, "platform");
}
