//! Derivation outcomes, the seed's regressions, tie-breaks, and catalog queries, on a
//! manifest shaped like Molecule's reference manifest.

use hatchery_registry::{
    CatalogError, DeriveError, DeriveOutcome, ExplainStep, MatchedBy, PassThroughReason, Registry,
    UpstreamError,
};

fn fixture() -> Registry {
    Registry::from_bytes(include_bytes!("fixtures/reference-like.yaml")).unwrap()
}

/// `Ok(provider)` for derived, `Err("passthrough:<reason>")` / `Err("ambiguous:a,b")`.
fn derive(registry: &Registry, runtime: &str, model: &str) -> Result<String, String> {
    match registry.derive(runtime, model) {
        DeriveOutcome::Derived(d) => Ok(d.provider.name.clone()),
        DeriveOutcome::PassThrough(reason) => Err(format!("passthrough:{reason}")),
        DeriveOutcome::Ambiguous(a) => Err(format!("ambiguous:{}", a.candidates.join(","))),
    }
}

// The five regression cases of the seed.

#[test]
fn seed_unknown_runtime_passes_through() {
    let r = fixture();
    assert_eq!(
        derive(&r, "langgraph", "gpt-5.5"),
        Err("passthrough:unknown_runtime".into())
    );
    assert_eq!(
        derive(&r, "Claude-Code", "sonnet"),
        Err("passthrough:unknown_runtime".into())
    );
}

#[test]
fn seed_unregistered_model_on_a_known_runtime_passes_through() {
    let r = fixture();
    assert_eq!(
        derive(&r, "claude-code", "llama-3-70b"),
        Err("passthrough:no_match".into())
    );
}

#[test]
fn seed_ambiguous_known_runtime_and_model_fails_closed() {
    let r = fixture();
    let outcome = r.derive("codex", "gpt-6");
    assert!(outcome.is_failure());
    let DeriveOutcome::Ambiguous(ambiguity) = outcome else {
        panic!("expected ambiguous, got {outcome:?}");
    };
    assert_eq!(ambiguity.candidates, ["openai-api", "openai-subscription"]);
    let message = ambiguity.to_string();
    for needle in [
        "derive provider for known runtime/model",
        "`codex`",
        "`gpt-6`",
        "`openai-api`",
        "`openai-subscription`",
    ] {
        assert!(message.contains(needle), "{message} lacks {needle}");
    }
}

#[test]
fn seed_registry_load_failure_is_an_error_not_an_empty_registry() {
    // The registry-unavailable case is the loader's Result: there is no Registry to derive with.
    let broken = b"schema_version: 1\nproviders: []\nruntimes: {}\n";
    assert!(Registry::from_bytes(broken).is_err());
}

#[test]
fn seed_known_model_derives_the_mapped_provider() {
    let r = fixture();
    let DeriveOutcome::Derived(d) = r.derive("claude-code", "moonshot/kimi-k2.6") else {
        panic!("expected derived");
    };
    assert_eq!(d.provider.name, "platform");
    assert_eq!(d.via, MatchedBy::ExactModel);
    assert!(d.provider.is_platform());
}

// The algorithm, rule by rule.

#[test]
fn exact_ids_beat_prefix_matches() {
    let r = fixture();
    // byok-minimax's matcher also matches; the exact id under platform wins.
    assert_eq!(
        derive(&r, "codex", "minimax/MiniMax-M2.7"),
        Ok("platform".into())
    );
    assert_eq!(
        derive(&r, "codex", "minimax/MiniMax-M3"),
        Ok("byok-minimax".into())
    );
}

#[test]
fn an_id_listed_twice_goes_to_the_first_declared_reference() {
    let r = fixture();
    assert_eq!(
        derive(&r, "codex", "gpt-5.5"),
        Ok("openai-subscription".into())
    );
    assert_eq!(derive(&r, "codex", "o4-mini"), Ok("openai-api".into()));
}

#[test]
fn a_unique_prefix_match_derives() {
    let r = fixture();
    let DeriveOutcome::Derived(d) = r.derive("claude-code", "claude-haiku-4-5") else {
        panic!("expected derived");
    };
    assert_eq!(
        (d.provider.name.as_str(), d.via),
        ("anthropic-api", MatchedBy::PrefixMatch)
    );
}

#[test]
fn name_only_arms_take_part_in_prefix_matching() {
    let r = fixture();
    assert_eq!(
        derive(&r, "claude-code", "openrouter/meta/llama-4"),
        Ok("openrouter".into())
    );
    assert_eq!(derive(&r, "claude-code", "GLM-4.6"), Ok("zai".into()));
}

#[test]
fn providers_outside_the_native_set_never_derive() {
    let r = fixture();
    // moonshot's matcher matches, but moonshot is not native to claude-code.
    assert_eq!(
        derive(&r, "claude-code", "moonshot-v1-128k"),
        Err("passthrough:no_match".into())
    );
}

#[test]
fn matching_is_case_sensitive_unless_the_pattern_says_otherwise() {
    let r = fixture();
    assert_eq!(
        derive(&r, "claude-code", "Claude-sonnet-4-5"),
        Err("passthrough:no_match".into())
    );
    assert_eq!(
        derive(&r, "claude-code", "KIMI-k2"),
        Err("passthrough:no_match".into())
    );
    assert_eq!(derive(&r, "hermes", "MINIMAX-M2"), Ok("minimax".into()));
}

#[test]
fn matching_is_an_unanchored_search() {
    let yaml = "schema_version: 1
providers:
  - {name: k, display_name: K, protocol: openai, auth_mode: m, auth_env: [K], model_prefix_match: 'kimi'}
runtimes:
  rt: {providers: [{name: k}]}
";
    let r = Registry::from_bytes(yaml.as_bytes()).unwrap();
    assert_eq!(derive(&r, "rt", "vendor/kimi-k2"), Ok("k".into()));
}

#[test]
fn aliases_are_metadata_only() {
    let r = fixture();
    // `sonnet` derives on claude-code because it is an exact id there, not because it is an alias.
    assert_eq!(
        derive(&r, "claude-code", "sonnet"),
        Ok("anthropic-oauth".into())
    );
    assert_eq!(
        derive(&r, "codex", "sonnet"),
        Err("passthrough:no_match".into())
    );
}

#[test]
fn deprecated_providers_still_load_list_and_derive() {
    let yaml = "schema_version: 1
providers:
  - {name: old, display_name: Old, protocol: openai, auth_mode: m, auth_env: [K], model_prefix_match: '^old-', deprecated: true}
runtimes:
  rt: {providers: [{name: old}]}
";
    let r = Registry::from_bytes(yaml.as_bytes()).unwrap();
    assert!(r.provider("old").unwrap().deprecated);
    assert_eq!(derive(&r, "rt", "old-1"), Ok("old".into()));
    assert_eq!(r.providers_for_runtime("rt").unwrap().len(), 1);
}

// Whitespace and the order of checks.

#[test]
fn surrounding_unicode_whitespace_is_trimmed() {
    let r = fixture();
    assert_eq!(
        derive(&r, "claude-code", " \t sonnet\u{3000}\n"),
        Ok("anthropic-oauth".into())
    );
}

#[test]
fn an_empty_or_blank_model_passes_through_even_for_unknown_runtimes() {
    let r = fixture();
    for model in ["", "   ", "\u{a0}\u{2003}"] {
        assert_eq!(
            derive(&r, "claude-code", model),
            Err("passthrough:empty_model".into())
        );
        assert_eq!(
            derive(&r, "no-such-runtime", model),
            Err("passthrough:empty_model".into())
        );
    }
}

#[test]
fn a_leading_space_does_not_turn_an_ambiguity_into_a_pass_through() {
    // Go's re-check on the untrimmed id passes this through providerless (S4).
    let r = fixture();
    assert_eq!(
        derive(&r, "hermes", " minimax/x"),
        Err("ambiguous:byok-minimax,minimax".into())
    );
    assert_eq!(
        derive(&r, "hermes", "minimax/x "),
        Err("ambiguous:byok-minimax,minimax".into())
    );
}

// The auth-env tie-break of derive_provider.

#[test]
fn auth_env_breaks_a_tie_between_exact_ids() {
    let r = fixture();
    let d = r
        .derive_provider("codex", "gpt-5.5", &["OPENAI_API_KEY"])
        .unwrap();
    assert_eq!(d.provider.name, "openai-api");
    assert!(d.tie_broken_by_auth_env);
    // Nothing narrowed: first-declared wins.
    let d = r
        .derive_provider("codex", "gpt-5.5", &["UNRELATED"])
        .unwrap();
    assert_eq!(d.provider.name, "openai-subscription");
}

#[test]
fn auth_env_breaks_a_tie_between_prefix_matches() {
    let r = fixture();
    let d = r
        .derive_provider("codex", "gpt-6", &["CODEX_AUTH_JSON"])
        .unwrap();
    assert_eq!(d.provider.name, "openai-subscription");
    let d = r
        .derive_provider("hermes", "shared/model", &["GATEWAY_C_KEY"])
        .unwrap();
    assert_eq!(d.provider.name, "gateway-c");
}

#[test]
fn a_narrowed_but_still_plural_set_is_named_in_the_ambiguity() {
    let r = fixture();
    let err = r
        .derive_provider("hermes", "shared/model", &["SHARED_GATEWAY_KEY"])
        .unwrap_err();
    let DeriveError::Ambiguous(a) = err else {
        panic!("{err}")
    };
    assert_eq!(a.candidates, ["gateway-a", "gateway-b"]);
    let err = r
        .derive_provider("hermes", "shared/model", &[])
        .unwrap_err();
    let DeriveError::Ambiguous(a) = err else {
        panic!("{err}")
    };
    assert_eq!(a.candidates, ["gateway-a", "gateway-b", "gateway-c"]);
}

#[test]
fn derive_provider_errors_name_runtime_model_and_cause() {
    let r = fixture();
    let err = r.derive_provider("claude-code", "llama", &[]).unwrap_err();
    assert!(matches!(err, DeriveError::NoMatch { .. }));
    let text = err.to_string();
    assert!(
        text.contains("claude-code") && text.contains("llama"),
        "{text}"
    );
    assert!(matches!(
        r.derive_provider("langgraph", "x", &[]).unwrap_err(),
        DeriveError::UnknownRuntime { .. }
    ));
}

// Outcome wire shape.

#[test]
fn outcomes_serialize_to_the_cli_contract() {
    let r = fixture();
    let json = |runtime, model| serde_json::to_value(r.derive(runtime, model)).unwrap();
    let derived = json("claude-code", "sonnet");
    assert_eq!(derived["outcome"], "derived");
    assert_eq!(derived["provider"], "anthropic-oauth");
    assert_eq!(derived["via"], "exact_model");
    assert_eq!(json("claude-code", "")["reason"], "empty_model");
    assert_eq!(json("x", "y")["reason"], "unknown_runtime");
    assert_eq!(json("claude-code", "zzz")["outcome"], "passthrough");
    let ambiguous = json("codex", "gpt-6");
    assert_eq!(ambiguous["outcome"], "error");
    assert_eq!(ambiguous["kind"], "ambiguous");
    assert!(ambiguous["message"].as_str().unwrap().contains("gpt-6"));
}

// Explain.

#[test]
fn explain_records_each_rule_tried() {
    let r = fixture();
    let e = r.explain("codex", " gpt-6");
    assert!(e.outcome.is_failure());
    assert_eq!(e.registry_hash, r.hash());
    assert!(matches!(&e.steps[0], ExplainStep::TrimmedModel { to, .. } if to == "gpt-6"));
    assert!(
        e.steps
            .iter()
            .any(|s| matches!(s, ExplainStep::ExactIds { listed_by } if listed_by.is_empty()))
    );
    let tried: Vec<(&str, bool)> = e
        .steps
        .iter()
        .filter_map(|s| match s {
            ExplainStep::PrefixTried {
                provider, matched, ..
            } => Some((provider.as_str(), *matched)),
            _ => None,
        })
        .collect();
    assert_eq!(
        tried,
        [
            ("openai-subscription", true),
            ("openai-api", true),
            ("platform", false),
            ("byok-minimax", false)
        ]
    );
}

#[test]
fn explain_agrees_with_derive_everywhere() {
    let r = fixture();
    for runtime in ["claude-code", "codex", "hermes", "nope"] {
        for model in [
            "sonnet",
            "gpt-5.5",
            "gpt-6",
            "minimax/x",
            "",
            "claude-x",
            "shared/a",
            "kimi-k2.6",
        ] {
            let plain = serde_json::to_value(r.derive(runtime, model)).unwrap();
            let explained = serde_json::to_value(r.explain(runtime, model).outcome).unwrap();
            assert_eq!(plain, explained, "{runtime} {model}");
        }
    }
}

#[test]
fn pass_through_reasons_have_stable_names() {
    assert_eq!(PassThroughReason::EmptyModel.as_str(), "empty_model");
    assert_eq!(
        PassThroughReason::UnknownRuntime.as_str(),
        "unknown_runtime"
    );
    assert_eq!(PassThroughReason::NoMatch.as_str(), "no_match");
}

// Catalog queries.

#[test]
fn providers_for_runtime_follow_the_runtimes_declared_order() {
    let r = fixture();
    let names: Vec<&str> = r
        .providers_for_runtime("codex")
        .unwrap()
        .iter()
        .map(|p| p.name.as_str())
        .collect();
    assert_eq!(
        names,
        [
            "openai-subscription",
            "openai-api",
            "platform",
            "byok-minimax"
        ]
    );
}

#[test]
fn models_for_runtime_are_deduplicated_in_order() {
    let r = fixture();
    assert_eq!(
        r.models_for_runtime("codex").unwrap(),
        ["gpt-5.5", "gpt-5.5-mini", "o4-mini", "minimax/MiniMax-M2.7"]
    );
}

#[test]
fn a_runtime_with_only_name_only_arms_has_an_empty_menu() {
    let yaml = "schema_version: 1
providers:
  - {name: k, display_name: K, protocol: openai, auth_mode: m, auth_env: [K], model_prefix_match: '^k'}
runtimes:
  rt: {providers: [{name: k}]}
";
    let r = Registry::from_bytes(yaml.as_bytes()).unwrap();
    assert!(r.models_for_runtime("rt").unwrap().is_empty());
}

#[test]
fn catalog_queries_refuse_unknown_runtimes() {
    let r = fixture();
    let err = r.providers_for_runtime("langgraph").unwrap_err();
    assert!(
        matches!(err, CatalogError::UnknownRuntime { ref runtime, .. } if runtime == "langgraph")
    );
    assert!(
        err.to_string().contains("claude-code"),
        "lists known runtimes: {err}"
    );
    assert!(r.models_for_runtime("langgraph").is_err());
    assert!(r.provider("nope").is_err());
    assert_eq!(r.provider("zai").unwrap().display_name, "Z.ai GLM");
}

#[test]
fn resolve_upstream_cuts_at_slash_then_colon() {
    let r = fixture();
    let up = r.resolve_upstream("anthropic/claude-sonnet-4-5").unwrap();
    assert_eq!(
        (up.provider, up.model.as_str()),
        ("anthropic-api", "claude-sonnet-4-5")
    );
    let up = r.resolve_upstream("openai:gpt-5.5").unwrap();
    assert_eq!((up.provider, up.model.as_str()), ("openai-api", "gpt-5.5"));
    let up = r.resolve_upstream("moonshot/kimi-k2.6").unwrap();
    assert_eq!(up.provider, "kimi-coding");
    assert_eq!(r.resolve_upstream(""), Err(UpstreamError::EmptyModel));
    assert!(matches!(
        r.resolve_upstream("gpt-5.5"),
        Err(UpstreamError::Unresolved { .. })
    ));
    // Untrimmed: a leading space is part of the vendor.
    assert!(r.resolve_upstream(" anthropic/x").is_err());
}

#[test]
fn catalogs_too_large_for_the_prefix_index_derive_the_same() {
    let mut yaml = String::from("schema_version: 1\nproviders:\n");
    for i in 0..140 {
        yaml.push_str(&format!(
            "  - {{name: p{i:03}, display_name: P, protocol: openai, auth_mode: k, auth_env: [K{i}], model_prefix_match: '^p{i:03}/'}}\n"
        ));
    }
    yaml.push_str("  - {name: twin, display_name: T, protocol: openai, auth_mode: k, auth_env: [T], model_prefix_match: '^p139/'}\n");
    yaml.push_str("runtimes:\n  rt:\n    providers: [{name: p000}, {name: p139}, {name: twin}]\n");
    let r = Registry::from_bytes(yaml.as_bytes()).unwrap();
    assert_eq!(derive(&r, "rt", "p000/x"), Ok("p000".into()));
    assert_eq!(
        derive(&r, "rt", "p139/x"),
        Err("ambiguous:p139,twin".into())
    );
    assert_eq!(
        derive(&r, "rt", "p001/x"),
        Err("passthrough:no_match".into())
    );
}
