//! The `hatchery providers` output contract, checked by running the real binary.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../hatchery-registry/tests/fixtures/reference-like.yaml"
);

fn hatchery(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hatchery"))
        .args(args)
        .env_remove("HATCHERY_PROVIDERS")
        .output()
        .expect("the hatchery binary runs")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Runs `derive` and checks stdout is exactly one JSON object (one line).
fn derive(args: &[&str]) -> (i32, Value) {
    let mut full = vec!["providers", "derive"];
    full.extend_from_slice(args);
    let out = hatchery(&full);
    let text = stdout(&out);
    assert_eq!(
        text.lines().count(),
        1,
        "exactly one line on stdout: {text:?}"
    );
    let value: Value = serde_json::from_str(&text).expect("stdout is JSON");
    assert!(value.is_object(), "{value}");
    (out.status.code().unwrap_or(-1), value)
}

fn write_manifest(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

#[test]
fn check_summarises_the_builtin_catalog() {
    let out = hatchery(&["providers", "check"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let line = stdout(&out);
    assert_eq!(line.lines().count(), 1);
    assert!(line.starts_with("ok: "), "{line}");
    assert!(
        line.contains(" providers, ") && line.contains(" runtimes, sha256:"),
        "{line}"
    );
    assert!(line.contains("built-in"), "{line}");
}

#[test]
fn check_accepts_a_valid_user_manifest() {
    let out = hatchery(&["providers", "check", FIXTURE]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).starts_with("ok: 14 providers, 3 runtimes, sha256:"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn check_refuses_an_invalid_manifest_with_one_error_line() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("empty.yaml", "", "schema_version"),
        (
            "dupkey.yaml",
            "schema_version: 1\nschema_version: 1\n",
            "parse",
        ),
        (
            "regex.yaml",
            "schema_version: 1\nproviders:\n  - {name: a, display_name: A, protocol: openai, auth_mode: k, auth_env: [K], model_prefix_match: '(?!x)'}\nruntimes: {rt: {providers: [{name: a}]}}\n",
            "bad_regex",
        ),
        (
            "ref.yaml",
            "schema_version: 1\nproviders:\n  - {name: a, display_name: A, protocol: openai, auth_mode: k, auth_env: [K], model_prefix_match: '^a'}\nruntimes: {rt: {providers: [{name: b}]}}\n",
            "unknown_provider_ref",
        ),
    ];
    for (name, text, category) in cases {
        let path = write_manifest(dir.path(), name, text);
        let out = hatchery(&["providers", "check", &path]);
        assert_eq!(out.status.code(), Some(1), "{name}");
        assert!(stdout(&out).is_empty(), "{name}: nothing on stdout");
        let err = stderr(&out);
        assert_eq!(err.lines().count(), 1, "{name}: one line: {err:?}");
        assert!(err.contains(&format!("[{category}]")), "{name}: {err}");
        assert!(err.contains(&path), "{name} names the file: {err}");
    }
}

#[test]
fn check_refuses_a_missing_file() {
    let out = hatchery(&["providers", "check", "/nonexistent/providers.yaml"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("cannot read /nonexistent/providers.yaml"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn check_lint_warns_about_overlaps_but_still_succeeds() {
    let out = hatchery(&["providers", "check", "--lint", FIXTURE]);
    assert!(out.status.success());
    let err = stderr(&out);
    assert!(err.contains("warning: runtime \"codex\": matchers of \"openai-subscription\" and \"openai-api\" overlap"), "{err}");
    assert!(err.contains("\"gateway-a\" and \"gateway-b\""), "{err}");
}

#[test]
fn derive_prints_derived_with_exit_zero() {
    let (code, v) = derive(&[
        "--manifest",
        FIXTURE,
        "--runtime",
        "claude-code",
        "--model",
        "moonshot/kimi-k2.6",
    ]);
    assert_eq!(code, 0);
    assert_eq!(v["outcome"], "derived");
    assert_eq!(v["provider"], "platform");
}

#[test]
fn derive_uses_the_builtin_catalog_by_default() {
    let (code, v) = derive(&["--runtime", "claude-code", "--model", "moonshot/kimi-k2.6"]);
    assert_eq!((code, v["outcome"].as_str()), (0, Some("derived")));
    assert_eq!(v["provider"], "platform");
}

#[test]
fn derive_prints_each_pass_through_reason_with_exit_zero() {
    for (runtime, model, reason) in [
        ("langgraph", "gpt-5.5", "unknown_runtime"),
        ("claude-code", "   ", "empty_model"),
        ("claude-code", "llama-3", "no_match"),
    ] {
        let (code, v) = derive(&[
            "--manifest",
            FIXTURE,
            "--runtime",
            runtime,
            "--model",
            model,
        ]);
        assert_eq!(code, 0, "{runtime} {model}");
        assert_eq!(v["outcome"], "passthrough");
        assert_eq!(v["reason"], reason);
    }
}

#[test]
fn derive_prints_ambiguous_as_an_error_with_exit_one() {
    let (code, v) = derive(&[
        "--manifest",
        FIXTURE,
        "--runtime",
        "codex",
        "--model",
        "gpt-6",
    ]);
    assert_eq!(code, 1);
    assert_eq!(v["outcome"], "error");
    assert_eq!(v["kind"], "ambiguous");
    let message = v["message"].as_str().unwrap();
    assert!(
        message.contains("codex") && message.contains("gpt-6"),
        "{message}"
    );
}

#[test]
fn derive_keeps_the_model_verbatim_until_trimming() {
    // A leading space must not hide the ambiguity (spec S4).
    let (code, v) = derive(&[
        "--manifest",
        FIXTURE,
        "--runtime",
        "hermes",
        "--model",
        " minimax/x",
    ]);
    assert_eq!((code, v["kind"].as_str()), (1, Some("ambiguous")));
}

#[test]
fn derive_reports_an_unloadable_registry_as_registry_unavailable() {
    let dir = tempfile::tempdir().unwrap();
    let broken = write_manifest(dir.path(), "broken.yaml", "schema_version: 2\n");
    for manifest in [broken.as_str(), "/nonexistent/providers.yaml"] {
        let (code, v) = derive(&[
            "--manifest",
            manifest,
            "--runtime",
            "claude-code",
            "--model",
            "",
        ]);
        assert_eq!(code, 1, "{manifest}");
        assert_eq!(v["outcome"], "error");
        assert_eq!(v["kind"], "registry_unavailable");
        assert!(
            v["message"]
                .as_str()
                .unwrap()
                .contains("provider registry unavailable")
        );
    }
}

#[test]
fn derive_reads_the_manifest_from_hatchery_providers() {
    let out = Command::new(env!("CARGO_BIN_EXE_hatchery"))
        .args([
            "providers",
            "derive",
            "--runtime",
            "codex",
            "--model",
            "gpt-6",
        ])
        .env("HATCHERY_PROVIDERS", FIXTURE)
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["kind"], "ambiguous");
}

#[test]
fn derive_explain_adds_the_trace() {
    let (code, v) = derive(&[
        "--manifest",
        FIXTURE,
        "--runtime",
        "codex",
        "--model",
        "gpt-5.5",
        "--explain",
    ]);
    assert_eq!(code, 0);
    let steps = v["explain"].as_array().unwrap();
    assert_eq!(steps[0]["step"], "runtime_found");
    assert_eq!(steps[1]["step"], "exact_ids");
    assert_eq!(
        steps[1]["listed_by"],
        serde_json::json!(["openai-subscription", "openai-api"])
    );
    assert_eq!(v["provider"], "openai-subscription");
}

#[test]
fn list_prints_a_table_or_json() {
    let out = hatchery(&[
        "providers",
        "list",
        "--manifest",
        FIXTURE,
        "--runtime",
        "codex",
    ]);
    assert!(out.status.success());
    let text = stdout(&out);
    let names: Vec<&str> = text
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
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
    assert!(text.lines().next().unwrap().starts_with("NAME"));

    let out = hatchery(&["providers", "list", "--json"]);
    let all: Value = serde_json::from_slice(&out.stdout).unwrap();
    let all = all.as_array().unwrap();
    assert!(all.iter().any(|p| p["name"] == "platform"));
    assert!(
        all.iter()
            .all(|p| p["auth_env"].is_array() && p["protocol"].is_string())
    );
}

#[test]
fn list_and_models_refuse_an_unknown_runtime() {
    for command in ["list", "models"] {
        let out = hatchery(&[
            "providers",
            command,
            "--manifest",
            FIXTURE,
            "--runtime",
            "langgraph",
        ]);
        assert_eq!(out.status.code(), Some(1), "{command}");
        assert!(
            stderr(&out).contains("unknown runtime \"langgraph\""),
            "{}",
            stderr(&out)
        );
    }
}

#[test]
fn models_lists_each_id_once_with_its_provider() {
    let out = hatchery(&[
        "providers",
        "models",
        "--manifest",
        FIXTURE,
        "--runtime",
        "codex",
        "--json",
    ]);
    assert!(out.status.success());
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let pairs: Vec<(String, String)> = v["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["model"].as_str().unwrap().to_owned(),
                m["provider"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let expected = [
        ("gpt-5.5", "openai-subscription"),
        ("gpt-5.5-mini", "openai-subscription"),
        ("o4-mini", "openai-api"),
        ("minimax/MiniMax-M2.7", "platform"),
    ];
    assert_eq!(pairs, expected.map(|(m, p)| (m.to_owned(), p.to_owned())));
}

#[test]
fn builtin_prints_a_manifest_that_checks() {
    let out = hatchery(&["providers", "builtin"]);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("copy.yaml");
    std::fs::write(&path, &out.stdout).unwrap();
    let check = hatchery(&["providers", "check", path.to_str().unwrap()]);
    assert!(check.status.success(), "{}", stderr(&check));
    let builtin = stdout(&hatchery(&["providers", "check"]));
    let hash = |line: &str| {
        line.split_whitespace()
            .find(|w| w.starts_with("sha256:"))
            .map(str::to_owned)
    };
    assert_eq!(
        hash(&builtin),
        hash(&stdout(&check)),
        "same bytes, same hash"
    );
}

#[test]
fn usage_errors_exit_one_and_help_exits_zero() {
    let out = hatchery(&["providers", "derive", "--runtime", "x"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("--model"), "{}", stderr(&out));
    let help = hatchery(&["providers", "--help"]);
    assert_eq!(help.status.code(), Some(0));
    assert!(stdout(&help).contains("derive"));
}

#[test]
fn check_refuses_an_endless_file_without_reading_it_all() {
    let out = hatchery(&["providers", "check", "/dev/zero"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("is larger than"), "{}", stderr(&out));
}

#[test]
fn errors_stay_on_one_line_even_when_the_input_has_newlines() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_manifest(
        dir.path(),
        "nl.yaml",
        "schema_version: 1\n\"a\\nb\": 1\n\"a\\nb\": 2\n",
    );
    let out = hatchery(&["providers", "check", &path]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stderr(&out).lines().count(), 1, "{:?}", stderr(&out));
}

#[test]
fn a_closed_stdout_is_not_a_panic() {
    let out = Command::new(env!("CARGO_BIN_EXE_hatchery"))
        .args(["providers", "list"])
        .stdout(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success());
    // A reader that hangs up early: the write fails, the process still exits normally.
    let mut child = Command::new(env!("CARGO_BIN_EXE_hatchery"))
        .args(["providers", "builtin"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let status = child.wait().unwrap();
    assert_ne!(status.code(), Some(101), "panicked");
}
