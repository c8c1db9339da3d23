//! Property tests: derivation never panics, is deterministic, only derives allowed
//! providers, and the prefilter never changes an answer; loading never panics.

use hatchery_registry::{DeriveOutcome, Registry};
use proptest::prelude::*;

fn fixture() -> &'static Registry {
    static FIXTURE: std::sync::OnceLock<Registry> = std::sync::OnceLock::new();
    FIXTURE.get_or_init(|| {
        Registry::from_bytes(include_bytes!("fixtures/reference-like.yaml")).unwrap()
    })
}

/// Model ids near the interesting ones: known prefixes, exact ids, case and space noise.
fn model_id() -> impl Strategy<Value = String> {
    let near = prop::sample::select(vec![
        "",
        "sonnet",
        "gpt-",
        "gpt-5.5",
        "o4",
        "claude-",
        "kimi-",
        "minimax/",
        "MiniMax",
        "glm-",
        "GLM-",
        "shared/",
        "openrouter/",
        "moonshot/kimi-k2.6",
        "platform/",
        "moonshot-",
        "qwen",
        "qwen3-",
        "qwq-",
        "dashscope:",
        "deepseek-",
        "gemini-",
        "google_vertexai:",
        "grok-",
    ]);
    (
        prop::sample::select(vec!["", " ", "\t", "\u{3000}"]),
        near,
        "[a-zA-Z0-9./:_ -]{0,12}",
        prop::sample::select(vec!["", " ", "\n"]),
    )
        .prop_map(|(lead, stem, tail, trail)| format!("{lead}{stem}{tail}{trail}"))
}

fn runtime_name() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec!["claude-code", "codex", "hermes", "langgraph", ""])
            .prop_map(String::from),
        "[a-z-]{0,12}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn derive_is_total_deterministic_and_allowed(runtime in runtime_name(), model in model_id()) {
        let r = fixture();
        let first = serde_json::to_value(r.derive(&runtime, &model)).unwrap();
        let second = serde_json::to_value(r.derive(&runtime, &model)).unwrap();
        prop_assert_eq!(&first, &second);
        if let DeriveOutcome::Derived(d) = r.derive(&runtime, &model) {
            let native = r.providers_for_runtime(&runtime).unwrap();
            prop_assert!(native.iter().any(|p| p.name == d.provider.name),
                "{} is not native to {}", d.provider.name, runtime);
        }
    }

    #[test]
    fn the_first_byte_index_never_changes_an_outcome(runtime in runtime_name(), model in model_id()) {
        // explain() tries every native provider; derive() only the indexed candidates.
        for r in [fixture(), Registry::builtin()] {
            let fast = serde_json::to_value(r.derive(&runtime, &model)).unwrap();
            let full = serde_json::to_value(r.explain(&runtime, &model).outcome).unwrap();
            prop_assert_eq!(fast, full);
        }
    }

    #[test]
    fn derive_on_arbitrary_strings_never_panics(runtime in ".{0,20}", model in ".{0,40}") {
        let r = fixture();
        let _ = r.derive(&runtime, &model);
        let _ = r.explain(&runtime, &model);
        let _ = r.derive_provider(&runtime, &model, &["OPENAI_API_KEY"]);
    }

    #[test]
    fn the_prefilter_never_changes_a_match(model in model_id()) {
        let r = fixture();
        for p in r.providers() {
            prop_assert_eq!(p.matches(&model), p.matches_without_prefilter(&model), "{} on {:?}", p.name, model);
        }
        for p in Registry::builtin().providers() {
            prop_assert_eq!(p.matches(&model), p.matches_without_prefilter(&model), "{} on {:?}", p.name, model);
        }
    }

    #[test]
    fn builtin_derive_only_names_allowed_providers(runtime in prop::sample::select(
        Registry::builtin().runtimes().iter().map(|r| r.name.clone()).collect::<Vec<_>>()), model in model_id())
    {
        let r = Registry::builtin();
        if let DeriveOutcome::Derived(d) = r.derive(&runtime, &model) {
            prop_assert!(r.runtime(&runtime).unwrap().refs.iter().any(|n| n.name == d.provider.name));
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn loading_arbitrary_bytes_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = Registry::from_bytes(&bytes);
    }

    #[test]
    fn loading_mangled_manifests_never_panics(cut in 0usize..2_000, insert in "[\\[\\]{}:&*!|>'\" \n-]{0,6}") {
        let text = String::from_utf8_lossy(include_bytes!("fixtures/reference-like.yaml")).into_owned();
        let mut at = cut.min(text.len());
        while !text.is_char_boundary(at) { at -= 1; }
        let mangled = format!("{}{}{}", &text[..at], insert, &text[at..]);
        let _ = Registry::from_bytes(mangled.as_bytes());
    }
}
