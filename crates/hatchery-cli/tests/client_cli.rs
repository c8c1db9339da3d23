//! The operator client against the real `hatchery serve`: `ws` and `org import`, tables
//! and `--json`, refusals with their code and a hint, exit codes 0/1/2.

use std::process::{Command, Output};

use serde_json::Value;

mod common;

const TOKEN: &str = "client-cli-admin";

async fn serve(dir: &std::path::Path) -> common::Server {
    let env = vec![
        ("HATCHERY_DATA_DIR", dir.join("data").display().to_string()),
        ("HATCHERY_ADMIN_TOKEN", TOKEN.to_owned()),
        ("HATCHERY_PLATFORM_KEY", "platform-gateway-key".to_owned()),
        ("HATCHERY_BACKEND", "none".to_owned()),
    ];
    common::Server::start_on(common::free_port(), &env, TOKEN).await
}

/// `hatchery ARGS…` against `base`, with `token` as `HATCHERY_TOKEN` (or none).
async fn hatchery(base: &str, token: Option<&str>, args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_hatchery"));
    command
        .args(args)
        .env("HATCHERY_URL", base)
        .env_remove("HATCHERY_TOKEN");
    if let Some(token) = token {
        command.env("HATCHERY_TOKEN", token);
    }
    tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn workspaces_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(dir.path()).await;
    let base = server.base.clone();
    let created = hatchery(
        &base,
        Some(TOKEN),
        &[
            "ws",
            "create",
            "--name",
            "coder",
            "--runtime",
            "claude-code",
            "--model",
            "moonshot/kimi-k2.6",
            "--json",
        ],
    )
    .await;
    assert_eq!(created.status.code(), Some(0), "{}", text(&created.stderr));
    let created: Value = serde_json::from_slice(&created.stdout).unwrap();
    assert_eq!(created["provider"], "platform");

    let listed = hatchery(&base, Some(TOKEN), &["ws", "list"]).await;
    assert_eq!(listed.status.code(), Some(0));
    let table = text(&listed.stdout);
    assert!(table.starts_with("ID"), "{table}");
    assert!(
        table.contains("coder") && table.contains("platform"),
        "{table}"
    );

    let refused = hatchery(
        &base,
        Some(TOKEN),
        &[
            "ws",
            "create",
            "--name",
            "keyless",
            "--runtime",
            "claude-code",
            "--model",
            "anthropic:claude-opus-4-5",
        ],
    )
    .await;
    assert_eq!(refused.status.code(), Some(1), "the input was refused");
    let said = text(&refused.stderr);
    assert!(
        said.contains("byok_key_missing") && said.contains("hint:"),
        "{said}"
    );

    let unauthorised = hatchery(&base, None, &["ws", "list"]).await;
    assert_eq!(unauthorised.status.code(), Some(1));
    assert!(text(&unauthorised.stderr).contains("HATCHERY_TOKEN"));

    drop(server);
    let gone = hatchery("http://127.0.0.1:9", Some(TOKEN), &["ws", "list"]).await;
    assert_eq!(
        gone.status.code(),
        Some(2),
        "unreachable is the server's side"
    );
    assert!(text(&gone.stderr).contains("cannot reach"));
}

#[tokio::test(flavor = "multi_thread")]
async fn org_imports_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(dir.path()).await;
    let base = server.base.clone();
    let template = dir.path().join("team.yaml");
    std::fs::write(
        &template,
        "name: cli-team\ndefaults:\n  runtime: claude-code\n  model: moonshot/kimi-k2.6\n\
         workspaces:\n  - name: Lead\n    children:\n      - name: Keyless\n        model: anthropic:claude-opus-4-5\n",
    )
    .unwrap();
    let path = template.display().to_string();

    let plan = hatchery(&base, Some(TOKEN), &["org", "import", &path, "--dry-run"]).await;
    assert_eq!(plan.status.code(), Some(0), "{}", text(&plan.stderr));
    let shown = text(&plan.stdout);
    assert!(
        shown.contains("PROBLEMS") && shown.contains("byok_key_missing"),
        "{shown}"
    );
    assert!(
        shown.contains("some workspaces cannot be created"),
        "{shown}"
    );

    let imported = hatchery(&base, Some(TOKEN), &["org", "import", &path]).await;
    assert_eq!(
        imported.status.code(),
        Some(0),
        "{}",
        text(&imported.stderr)
    );
    let shown = text(&imported.stdout);
    assert!(
        shown.contains("cli-team: 2 workspace(s), some failed"),
        "{shown}"
    );

    let again = hatchery(&base, Some(TOKEN), &["org", "import", &path]).await;
    assert_eq!(again.status.code(), Some(1));
    assert!(
        text(&again.stderr).contains("--replace"),
        "{}",
        text(&again.stderr)
    );
    let duplicate = hatchery(
        &base,
        Some(TOKEN),
        &["org", "import", &path, "--duplicate", "--json"],
    )
    .await;
    assert_eq!(duplicate.status.code(), Some(0));
    let answer: Value = serde_json::from_slice(&duplicate.stdout).unwrap();
    assert_eq!(answer["count"], 2);

    let missing = hatchery(&base, Some(TOKEN), &["org", "import", "/nonexistent.yaml"]).await;
    assert_eq!(missing.status.code(), Some(1));
}
