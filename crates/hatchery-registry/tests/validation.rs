//! Load-time validation: one manifest per rule, violating only that rule, plus the strict
//! YAML limits (duplicate keys, alias bombs, deep nesting, oversized input).

use std::time::Duration;

use hatchery_registry::{ManifestError, ProviderProblem, Registry};
use sha2::Digest as _;

/// A minimal valid manifest; tests replace one piece of it.
const VALID: &str = "schema_version: 1
providers:
  - name: alpha
    display_name: Alpha
    protocol: openai
    auth_mode: api_key
    auth_env: [ALPHA_KEY]
    model_prefix_match: '^alpha-'
  - name: beta
    display_name: Beta
    protocol: anthropic
    auth_mode: api_key
    auth_env: [BETA_KEY]
    model_prefix_match: '^beta-'
runtimes:
  rt-one:
    providers:
      - name: alpha
        models: [alpha-1]
  rt-two:
    providers:
      - name: beta
";

fn load(yaml: &str) -> Result<Registry, ManifestError> {
    Registry::from_bytes(yaml.as_bytes())
}

fn refused(yaml: &str) -> ManifestError {
    match load(yaml) {
        Ok(_) => panic!("manifest should have been refused:\n{yaml}"),
        Err(err) => err,
    }
}

fn with(from: &str, to: &str) -> String {
    assert!(VALID.contains(from), "fixture does not contain {from:?}");
    VALID.replacen(from, to, 1)
}

#[test]
fn the_base_manifest_is_valid() {
    let registry = load(VALID).unwrap();
    assert_eq!(registry.providers().len(), 2);
    assert_eq!(registry.runtimes().len(), 2);
}

// Step 1: YAML decode.

#[test]
fn syntax_errors_are_parse_errors_with_a_position() {
    let err = refused("schema_version: 1\nproviders: [\n");
    assert_eq!(err.category(), "parse");
    assert!(err.to_string().starts_with("parse manifest"), "{err}");
    assert!(err.to_string().contains("line"), "{err}");
}

#[test]
fn quoted_schema_version_is_a_type_mismatch() {
    let err = refused(&with("schema_version: 1", "schema_version: \"1\""));
    assert_eq!(err.category(), "parse");
    assert!(err.to_string().contains("schema_version"), "{err}");
}

#[test]
fn a_mapping_where_a_list_belongs_names_the_path() {
    let err = refused(&with("auth_env: [ALPHA_KEY]", "auth_env: {ALPHA_KEY: 1}"));
    assert_eq!(err.category(), "parse");
    assert!(err.to_string().contains("providers[0].auth_env"), "{err}");
}

#[test]
fn a_scalar_where_a_list_belongs_is_refused() {
    let err = refused(&with("auth_env: [ALPHA_KEY]", "auth_env: ALPHA_KEY"));
    assert_eq!(err.category(), "parse");
}

#[test]
fn a_list_where_a_string_belongs_is_refused() {
    let err = refused(&with("display_name: Alpha", "display_name: [Alpha]"));
    assert!(
        err.to_string().contains("providers[0].display_name"),
        "{err}"
    );
}

#[test]
fn a_non_boolean_deprecated_is_refused() {
    let err = refused(&with(
        "auth_mode: api_key\n    auth_env: [ALPHA",
        "auth_mode: api_key\n    deprecated: maybe\n    auth_env: [ALPHA",
    ));
    assert!(err.to_string().contains("providers[0].deprecated"), "{err}");
}

#[test]
fn duplicate_keys_are_refused() {
    let err = refused(&with(
        "    display_name: Alpha\n",
        "    display_name: Alpha\n    display_name: Again\n",
    ));
    assert_eq!(err.category(), "parse");
    assert!(
        err.to_string().contains("duplicate key `display_name`"),
        "{err}"
    );
}

#[test]
fn duplicate_keys_under_ignored_keys_are_refused_too() {
    let err = refused(&format!("{VALID}extra:\n  a: 1\n  a: 2\n"));
    assert!(err.to_string().contains("duplicate key `a`"), "{err}");
}

#[test]
fn duplicate_runtime_names_are_refused() {
    let err = refused(&format!(
        "{VALID}  rt-one:\n    providers: [{{name: beta}}]\n"
    ));
    assert!(err.to_string().contains("duplicate key `rt-one`"), "{err}");
}

#[test]
fn a_second_document_is_refused() {
    let err = refused(&format!("{VALID}---\nschema_version: 2\n"));
    assert_eq!(err.category(), "parse");
    assert!(err.to_string().contains("second YAML document"), "{err}");
}

#[test]
fn a_billion_laughs_alias_bomb_is_refused_quickly() {
    let mut bomb = String::from(
        "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
    );
    let names = ["a", "b", "c", "d", "e", "f", "g", "h", "i"];
    for pair in names.windows(2) {
        let (prev, next) = (pair[0], pair[1]);
        let refs = vec![format!("*{prev}"); 9].join(",");
        bomb.push_str(&format!("{next}: &{next} [{refs}]\n"));
    }
    let bomb = format!("{VALID}laughs:\n{}", indent(&bomb));
    let (result, elapsed) = timed(|| load(&bomb));
    let err = result.unwrap_err();
    assert!(err.to_string().contains("alias bomb"), "{err}");
    assert!(elapsed < Duration::from_secs(2), "took {elapsed:?}");
}

#[test]
fn modest_aliases_load() {
    let yaml = with("auth_env: [ALPHA_KEY]", "auth_env: &keys [ALPHA_KEY]").replacen(
        "auth_env: [BETA_KEY]",
        "auth_env: *keys",
        1,
    );
    let registry = load(&yaml).unwrap();
    assert_eq!(registry.provider("beta").unwrap().auth_env, ["ALPHA_KEY"]);
}

#[test]
fn merge_keys_fill_in_fields_and_direct_keys_win() {
    let yaml = "schema_version: 1
base: &base
  protocol: openai
  auth_mode: api_key
  auth_env: [SHARED_KEY]
  display_name: Base
providers:
  - <<: *base
    name: one
    display_name: One
    model_prefix_match: '^one-'
runtimes:
  rt: {providers: [{name: one}]}
";
    let registry = load(yaml).unwrap();
    let one = registry.provider("one").unwrap();
    assert_eq!(one.display_name, "One");
    assert_eq!(one.auth_env, ["SHARED_KEY"]);
}

#[test]
fn ten_thousand_levels_of_nesting_are_refused_without_a_stack_overflow() {
    let deep = format!(
        "{VALID}deep: {}{}\n",
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    let err = refused(&deep);
    assert!(err.to_string().contains("nesting deeper than 64"), "{err}");
    let block = format!("{VALID}deep:\n  {}x\n", "- ".repeat(10_000));
    let err = refused(&block);
    assert!(err.to_string().contains("nesting deeper than 64"), "{err}");
}

#[test]
fn a_ten_megabyte_manifest_is_refused_in_bounded_time() {
    let filler = format!("# {}\n", "x".repeat(1022)).repeat(10 * 1024);
    let big = format!("{VALID}{filler}");
    assert!(big.len() >= 10 * 1024 * 1024);
    let (result, elapsed) = timed(|| load(&big));
    let err = result.unwrap_err();
    assert_eq!(err.category(), "parse");
    assert!(err.to_string().contains("limit"), "{err}");
    assert!(elapsed < Duration::from_secs(1), "took {elapsed:?}");
}

#[test]
fn a_large_manifest_under_the_limit_loads_in_bounded_time() {
    let mut yaml = String::from("schema_version: 1\nproviders:\n");
    for i in 0..1_000 {
        yaml.push_str(&format!(
            "  - {{name: p{i}, display_name: P{i}, protocol: openai, auth_mode: k, auth_env: [K{i}], model_prefix_match: '^p{i}/'}}\n"
        ));
    }
    yaml.push_str("runtimes:\n  rt:\n    providers: [{name: p0}, {name: p999}]\n");
    let (result, elapsed) = timed(|| load(&yaml));
    assert_eq!(result.unwrap().providers().len(), 1_000);
    assert!(elapsed < Duration::from_secs(20), "took {elapsed:?}");
}

#[test]
fn invalid_utf8_is_a_parse_error() {
    let mut bytes = VALID.as_bytes().to_vec();
    bytes.extend_from_slice(b"# \xff\xfe\n");
    let err = Registry::from_bytes(&bytes).unwrap_err();
    assert_eq!(err.category(), "parse");
    assert!(err.to_string().contains("UTF-8"), "{err}");
}

#[test]
fn a_top_level_list_is_a_parse_error() {
    assert_eq!(refused("- 1\n- 2\n").category(), "parse");
}

// Step 2: schema_version.

#[test]
fn an_empty_file_is_a_schema_version_error() {
    assert_eq!(refused("").category(), "schema_version");
    assert_eq!(refused("# only a comment\n").category(), "schema_version");
}

#[test]
fn a_missing_schema_version_is_refused() {
    let err = refused(&with("schema_version: 1\n", ""));
    assert_eq!(err.category(), "schema_version");
    assert!(err.to_string().contains("absent"), "{err}");
}

#[test]
fn another_schema_version_is_refused() {
    let err = refused(&with("schema_version: 1", "schema_version: 2"));
    assert_eq!(err.category(), "schema_version");
    assert!(err.to_string().contains("found 2"), "{err}");
}

#[test]
fn a_float_schema_version_is_refused_even_when_go_would_truncate_it() {
    for version in ["1.5", "1.0"] {
        let err = refused(&with(
            "schema_version: 1",
            &format!("schema_version: {version}"),
        ));
        assert_eq!(err.category(), "schema_version", "{version}");
    }
}

#[test]
fn schema_version_accepts_any_integer_spelling_of_one() {
    for version in ["0x1", "+1", "01"] {
        load(&with(
            "schema_version: 1",
            &format!("schema_version: {version}"),
        ))
        .unwrap();
    }
}

// Step 3: providers.

#[test]
fn an_empty_provider_list_is_refused() {
    let yaml = "schema_version: 1\nproviders: []\nruntimes:\n  rt: {providers: [{name: a}]}\n";
    let err = refused(yaml);
    assert_eq!(err, ManifestError::NoProviders);
    assert!(err.to_string().contains("no providers"));
    assert_eq!(refused("schema_version: 1\n").category(), "no_providers");
}

// Step 4: each provider's required fields, in the loader's order.

fn provider_problem(from: &str, to: &str) -> (usize, String, ProviderProblem) {
    match refused(&with(from, to)) {
        ManifestError::InvalidProvider {
            index,
            name,
            problem,
        } => (index, name, problem),
        other => panic!("expected invalid_provider, got {other}"),
    }
}

#[test]
fn an_empty_name_is_refused() {
    let (index, _, problem) = provider_problem("name: beta", "name: ''");
    assert_eq!((index, problem), (1, ProviderProblem::NameRequired));
    let (_, _, problem) = provider_problem("name: beta", "name: ~");
    assert_eq!(problem, ProviderProblem::NameRequired);
}

#[test]
fn an_unknown_protocol_is_refused() {
    let (_, name, problem) = provider_problem("protocol: openai", "protocol: OpenAI");
    assert_eq!(name, "alpha");
    assert_eq!(problem, ProviderProblem::BadProtocol("OpenAI".into()));
    let err = refused(&with("protocol: openai", "protocol: grpc"));
    assert!(err.to_string().contains("protocol must be"), "{err}");
}

#[test]
fn an_empty_auth_mode_is_refused() {
    let (_, _, problem) = provider_problem(
        "auth_mode: api_key\n    auth_env: [ALPHA",
        "auth_mode: ''\n    auth_env: [ALPHA",
    );
    assert_eq!(problem, ProviderProblem::AuthModeRequired);
}

#[test]
fn a_missing_or_empty_auth_env_is_refused() {
    let (_, _, problem) = provider_problem("    auth_env: [ALPHA_KEY]\n", "");
    assert_eq!(problem, ProviderProblem::AuthEnvRequired);
    let (_, _, problem) = provider_problem("auth_env: [ALPHA_KEY]", "auth_env: []");
    assert_eq!(problem, ProviderProblem::AuthEnvRequired);
    let err = refused(&with("auth_env: [ALPHA_KEY]", "auth_env: []"));
    assert!(err.to_string().contains("must be non-empty"), "{err}");
}

#[test]
fn an_empty_display_name_is_refused() {
    let (_, _, problem) = provider_problem("display_name: Alpha", "display_name: ''");
    assert_eq!(problem, ProviderProblem::DisplayNameRequired);
    let err = refused(&with("display_name: Alpha", "display_name: ''"));
    assert!(err.to_string().contains("is required"), "{err}");
}

#[test]
fn an_empty_matcher_is_refused() {
    let (_, _, problem) =
        provider_problem("model_prefix_match: '^alpha-'", "model_prefix_match: ''");
    assert_eq!(problem, ProviderProblem::MatcherRequired);
}

#[test]
fn the_first_failing_field_wins_in_the_loaders_order() {
    // protocol and display_name are both bad: protocol is checked first.
    let yaml = with("protocol: openai", "protocol: rest").replacen(
        "display_name: Alpha",
        "display_name: ''",
        1,
    );
    let (_, _, problem) = match refused(&yaml) {
        ManifestError::InvalidProvider {
            index,
            name,
            problem,
        } => (index, name, problem),
        other => panic!("{other}"),
    };
    assert_eq!(problem, ProviderProblem::BadProtocol("rest".into()));
}

// Steps 5 and 6, entry by entry.

#[test]
fn a_duplicate_provider_name_is_refused() {
    let err = refused(&with("name: beta", "name: alpha"));
    assert_eq!(
        err,
        ManifestError::DuplicateProvider {
            index: 1,
            name: "alpha".into(),
            first_index: 0
        }
    );
    assert!(err.to_string().contains("duplicate provider name"));
}

#[test]
fn a_matcher_that_is_not_re2_is_refused() {
    for pattern in ["^(?!alpha)", "(a)\\1", "^a++", "^[", "\\Qa\\E"] {
        let err = refused(&with("'^alpha-'", &format!("'{pattern}'")));
        assert_eq!(err.category(), "bad_regex", "{pattern}: {err}");
        assert!(err.to_string().contains("model_prefix_match"), "{err}");
        assert!(err.to_string().contains("\"alpha\""), "{err}");
    }
}

#[test]
fn a_matcher_whose_meaning_differs_between_dialects_is_refused() {
    for pattern in [
        "^alpha-\\d",
        "^\\w+",
        "\\balpha",
        "^[a-z&&[^x]]",
        "^[a[b]]",
        "(?x)^alpha",
    ] {
        let err = refused(&with("'^alpha-'", &format!("'{pattern}'")));
        assert_eq!(err.category(), "bad_regex", "{pattern}: {err}");
    }
}

#[test]
fn a_bad_regex_in_an_earlier_entry_is_reported_before_a_missing_name_in_a_later_one() {
    let yaml = with("'^alpha-'", "'(?=x)'").replacen("name: beta", "name: ''", 1);
    assert_eq!(refused(&yaml).category(), "bad_regex");
}

// Step 7.

#[test]
fn a_shared_upstream_vendor_is_refused_naming_both() {
    let yaml = with(
        "    model_prefix_match: '^alpha-'\n",
        "    model_prefix_match: '^alpha-'\n    upstream_vendor: acme\n",
    )
    .replacen(
        "    model_prefix_match: '^beta-'\n",
        "    model_prefix_match: '^beta-'\n    upstream_vendor: acme\n",
        1,
    );
    let err = refused(&yaml);
    assert_eq!(
        err,
        ManifestError::DuplicateUpstreamVendor {
            vendor: "acme".into(),
            first: "alpha".into(),
            second: "beta".into()
        }
    );
    assert!(err.to_string().contains("upstream_vendor"));
}

#[test]
fn empty_upstream_vendors_may_repeat() {
    let yaml = with(
        "    model_prefix_match: '^alpha-'\n",
        "    model_prefix_match: '^alpha-'\n    upstream_vendor: ''\n",
    );
    load(&yaml).unwrap();
}

// Steps 8 to 11.

#[test]
fn an_empty_runtime_mapping_is_refused() {
    let cut = &VALID[..VALID.find("runtimes:").unwrap()];
    assert_eq!(
        refused(&format!("{cut}runtimes: {{}}\n")),
        ManifestError::NoRuntimes
    );
    assert_eq!(refused(cut), ManifestError::NoRuntimes);
    assert!(refused(cut).to_string().contains("no runtimes"));
}

#[test]
fn a_runtime_without_providers_is_refused() {
    let err = refused(&with(
        "  rt-two:\n    providers:\n      - name: beta\n",
        "  rt-two:\n    providers: []\n",
    ));
    assert_eq!(
        err,
        ManifestError::EmptyNativeSet {
            runtime: "rt-two".into()
        }
    );
    assert!(err.to_string().contains("empty native provider set"));
    let err = refused(&with(
        "  rt-two:\n    providers:\n      - name: beta\n",
        "  rt-two:\n",
    ));
    assert_eq!(err.category(), "empty_native_set");
}

#[test]
fn a_reference_to_an_unknown_provider_is_refused() {
    let err = refused(&with("      - name: beta\n", "      - name: gamma\n"));
    assert_eq!(
        err,
        ManifestError::UnknownProviderRef {
            runtime: "rt-two".into(),
            index: 0,
            provider: "gamma".into()
        }
    );
    assert!(err.to_string().contains("unknown provider"));
}

#[test]
fn a_provider_referenced_twice_in_one_runtime_is_refused() {
    let err = refused(&with(
        "      - name: beta\n",
        "      - name: beta\n      - name: beta\n",
    ));
    assert_eq!(
        err,
        ManifestError::DuplicateProviderRef {
            runtime: "rt-two".into(),
            provider: "beta".into()
        }
    );
    assert!(err.to_string().contains("twice"));
}

#[test]
fn runtimes_are_validated_in_document_order() {
    // Both runtimes are broken; the first in the document is always the one reported.
    let yaml = with(
        "      - name: alpha\n        models: [alpha-1]\n",
        "      - name: nope-one\n",
    )
    .replacen("      - name: beta\n", "      - name: nope-two\n", 1);
    for _ in 0..20 {
        let err = refused(&yaml);
        assert!(err.to_string().contains("rt-one"), "{err}");
    }
}

// Reading rules the format requires.

#[test]
fn unknown_keys_are_ignored_at_every_level() {
    let yaml = with("schema_version: 1\n", "schema_version: 1\nfuture_key: {x: 1}\n")
        .replacen("    auth_mode: api_key\n", "    auth_mode: api_key\n    endpoint_vars: {u: {env: U}}\n    wire_model_prefix: x/\n    thinking_policy: require_enabled\n", 1)
        .replacen("  rt-one:\n", "  rt-one:\n    display_name: Runtime One\n    future: true\n", 1);
    let registry = load(&yaml).unwrap();
    assert_eq!(
        registry.runtime("rt-one").unwrap().display_name,
        "Runtime One"
    );
}

#[test]
fn a_string_field_takes_any_scalars_literal_text() {
    let yaml = with("name: beta", "name: 123")
        .replacen("      - name: beta\n", "      - name: '123'\n", 1)
        .replacen("display_name: Beta", "display_name: 1.50", 1);
    let registry = load(&yaml).unwrap();
    assert_eq!(registry.provider("123").unwrap().display_name, "1.50");
}

#[test]
fn null_and_absent_mean_empty() {
    let yaml = with(
        "  rt-two:\n    providers:\n      - name: beta\n",
        "  rt-two:\n    providers:\n      - name: beta\n        models: ~\n",
    );
    let registry = load(&yaml).unwrap();
    assert!(
        registry.runtime("rt-two").unwrap().refs[0]
            .models
            .is_empty()
    );
    assert!(
        registry
            .hygiene_warnings()
            .iter()
            .any(|w| w.contains("models: null"))
    );
}

#[test]
fn booleans_accept_yaml_1_1_words() {
    for (word, expected) in [
        ("yes", true),
        ("On", true),
        ("Y", true),
        ("TRUE", true),
        ("no", false),
        ("OFF", false),
        ("n", false),
    ] {
        let yaml = with(
            "    auth_env: [ALPHA_KEY]\n",
            &format!("    auth_env: [ALPHA_KEY]\n    deprecated: {word}\n"),
        );
        assert_eq!(
            load(&yaml).unwrap().provider("alpha").unwrap().deprecated,
            expected,
            "{word}"
        );
    }
}

#[test]
fn a_runtime_name_is_the_exact_key() {
    let yaml = with("  rt-two:", "  ' rt-two':");
    let registry = load(&yaml).unwrap();
    assert!(registry.runtime(" rt-two").is_ok());
    assert!(registry.runtime("rt-two").is_err());
}

#[test]
fn accepted_on_purpose_overlaps_unreferenced_providers_and_repeated_ids() {
    let yaml = "schema_version: 1
providers:
  - {name: a, display_name: A, protocol: openai, auth_mode: whatever-mode, auth_env: [A], model_prefix_match: '^x', base_url_template: 'https://{host}/v1'}
  - {name: b, display_name: B, protocol: openai, auth_mode: k, auth_env: [B], model_prefix_match: '^x'}
  - {name: unused, display_name: U, protocol: openai, auth_mode: k, auth_env: [U], model_prefix_match: '^u'}
runtimes:
  rt:
    providers:
      - {name: a, models: [x1, nothing-matches-me]}
      - {name: b, models: [x1]}
";
    let registry = load(yaml).unwrap();
    assert_eq!(
        registry.models_for_runtime("rt").unwrap(),
        ["x1", "nothing-matches-me"]
    );
}

#[test]
fn the_content_hash_is_the_sha256_of_the_input_bytes() {
    let a = load(VALID).unwrap();
    let b = load(&format!("{VALID}# a comment changes the bytes\n")).unwrap();
    assert!(a.hash().starts_with("sha256:") && a.hash().len() == 7 + 64);
    assert_ne!(a.hash(), b.hash());
    assert_eq!(a.hash(), load(VALID).unwrap().hash());
    let digest = sha2::Sha256::digest(VALID.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(a.hash(), format!("sha256:{hex}"));
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("  {l}\n")).collect()
}

fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let start = std::time::Instant::now();
    let out = f();
    (out, start.elapsed())
}

#[test]
fn booleans_follow_yaml_v3_for_typed_fields() {
    let deprecated = |value: &str| {
        let yaml = with(
            "    auth_env: [ALPHA_KEY]\n",
            &format!("    auth_env: [ALPHA_KEY]\n    deprecated: {value}\n"),
        );
        load(&yaml).map(|r| r.provider("alpha").unwrap().deprecated)
    };
    assert_eq!(deprecated("\"yes\""), Ok(true));
    assert_eq!(deprecated("'off'"), Ok(false));
    assert_eq!(deprecated("true"), Ok(true));
    assert_eq!(deprecated("\"true\"").unwrap_err().category(), "parse");
}

#[test]
fn a_scalar_merge_value_is_refused() {
    let yaml = with(
        "  - name: alpha\n",
        "  - <<: not-a-mapping\n    name: alpha\n",
    );
    let err = refused(&yaml);
    assert!(err.to_string().contains("merge key"), "{err}");
}

#[test]
fn keys_the_format_never_reads_are_not_refused_for_their_shape() {
    let yaml = with(
        "  rt-one:\n",
        "  rt-one:\n    display_name: {en: Runtime One}\n",
    )
    .replacen(
        "    auth_env: [ALPHA_KEY]\n",
        "    auth_env: [ALPHA_KEY]\n    example_models: {not: a list}\n",
        1,
    );
    let registry = load(&yaml).unwrap();
    assert_eq!(registry.runtime("rt-one").unwrap().display_name, "");
    assert!(
        registry
            .provider("alpha")
            .unwrap()
            .example_models
            .is_empty()
    );
}

#[test]
fn runtime_keys_with_the_same_text_collide_however_quoted() {
    let err = refused(&format!(
        "{VALID}  'rt-one':\n    providers: [{{name: beta}}]\n"
    ));
    assert!(err.to_string().contains("duplicate key `rt-one`"), "{err}");
}
