//! A start fails closed, on the real `hatchery serve` with the local backend: a start
//! supplies exactly the credential its billing decision names, or the workspace goes
//! `failed` with the reason and no agent runs; a restart after the operator mends it
//! works. A restart that lands in the middle of a start leaves one agent, with a live
//! credential.

use std::path::Path;
use std::time::Duration;

use serde_json::json;

mod common;

const TOKEN: &str = "start-fails-closed-admin";
const PLATFORM_BILLED: &str =
    r#"{"name": "pm", "runtime": "claude-code", "model": "moonshot/kimi-k2.6"}"#;

async fn serve(
    data_dir: &Path,
    extra: &[(&'static str, String)],
    platform_key: bool,
) -> common::Server {
    let mut env = common::server_env(data_dir, TOKEN, "local");
    if !platform_key {
        env.retain(|(name, _)| *name != "HATCHERY_PLATFORM_KEY");
    }
    env.push(("HATCHERY_SECRETS_KEY", common::SECRETS_KEY.to_owned()));
    env.extend(extra.iter().cloned());
    common::Server::start_on(common::free_port(), &env, TOKEN).await
}

/// How many sandboxes of the workspace the server runs: its children whose command line
/// names the workspace (its directory is bound into the sandbox).
fn sandboxes_of(server: &common::Server, id: &str) -> usize {
    let server_pid = server.process.child.id().to_string();
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(Result::ok)
        .filter(|entry| {
            let status = std::fs::read_to_string(entry.path().join("status")).unwrap_or_default();
            status.lines().any(|line| {
                line.strip_prefix("PPid:")
                    .is_some_and(|p| p.trim() == server_pid)
            })
        })
        .filter_map(|entry| std::fs::read(entry.path().join("cmdline")).ok())
        .filter(|cmdline| String::from_utf8_lossy(cmdline).contains(id))
        .count()
}

/// Wait (bounded) until the server runs `count` sandboxes of the workspace.
async fn until_sandboxes(server: &common::Server, id: &str, count: usize) {
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while sandboxes_of(server, id) != count {
        assert!(
            std::time::Instant::now() < deadline,
            "{} sandboxes of {id}, not {count}",
            sandboxes_of(server, id)
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn restart(server: &common::Server, id: &str) {
    let (status, body) = server
        .call(
            reqwest::Method::POST,
            &format!("/workspaces/{id}/restart"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
}

async fn failure_of(server: &common::Server, id: &str) -> String {
    let row = server.until_status(id, "failed").await;
    until_sandboxes(server, id, 0).await;
    row["failure_reason"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_platform_billed_start_without_the_platform_key_fails_and_a_restart_after_the_fix_works()
{
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = serve(&data, &[], true).await;
    let id = server
        .create(serde_json::from_str(PLATFORM_BILLED).unwrap())
        .await;
    server.until_status(&id, "online").await;
    drop(server);

    // The control plane comes back without its platform credential: the sandbox died with
    // it, and the start that replaces it must not run the agent keyless.
    let server = serve(&data, &[], false).await;
    let reason = failure_of(&server, &id).await;
    assert!(reason.contains("HATCHERY_PLATFORM_KEY"), "{reason}");
    restart(&server, &id).await;
    let reason = failure_of(&server, &id).await;
    assert!(reason.contains("no platform credential"), "{reason}");
    drop(server);

    let server = serve(&data, &[], true).await;
    restart(&server, &id).await;
    server.until_status(&id, "online").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_byok_start_whose_key_secret_was_deleted_fails_and_one_set_again_starts() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(&dir.path().join("data"), &[], true).await;
    let id = server
        .create(
            json!({"name": "coder", "runtime": "claude-code", "model": "claude-sonnet-4-5",
                       "secrets": {"ANTHROPIC_API_KEY": "sk-own"}}),
        )
        .await;
    let row = server.until_status(&id, "online").await;
    assert_eq!(row["agent_card"]["llm_billing_mode"], "byok", "{row}");

    let (status, body) = server
        .call(
            reqwest::Method::DELETE,
            &format!("/workspaces/{id}/secrets/ANTHROPIC_API_KEY"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    restart(&server, &id).await;
    let reason = failure_of(&server, &id).await;
    assert!(reason.contains("ANTHROPIC_API_KEY"), "{reason}");
    assert!(!reason.contains("sk-own"), "{reason}");

    let (status, body) = server
        .call(
            reqwest::Method::POST,
            &format!("/workspaces/{id}/secrets"),
            Some(json!({"key": "ANTHROPIC_API_KEY", "value": "sk-new"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    restart(&server, &id).await;
    server.until_status(&id, "online").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_provider_renamed_by_a_reload_refuses_the_start_instead_of_guessing() {
    let dir = tempfile::tempdir().unwrap();
    let catalog = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../hatchery-registry/catalog/providers.yaml"
    ))
    .unwrap();
    let manifest = dir.path().join("providers.yaml");
    std::fs::write(&manifest, &catalog).unwrap();
    let server = serve(
        &dir.path().join("data"),
        &[("HATCHERY_PROVIDERS", manifest.display().to_string())],
        true,
    )
    .await;
    let id = server
        .create(
            json!({"name": "coder", "runtime": "claude-code", "model": "claude-sonnet-4-5",
                       "secrets": {"ANTHROPIC_API_KEY": "sk-own"}}),
        )
        .await;
    server.until_status(&id, "online").await;

    std::fs::write(
        &manifest,
        catalog.replace("anthropic-api", "anthropic-direct"),
    )
    .unwrap();
    let (status, body) = server
        .call(reqwest::Method::POST, "/admin/registry/reload", None)
        .await;
    assert_eq!(status, 200, "{body}");
    restart(&server, &id).await;
    let reason = failure_of(&server, &id).await;
    assert!(
        reason.contains("`anthropic-api`") && reason.contains("not in the registry in force"),
        "{reason}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restart_in_the_middle_of_a_start_leaves_one_agent_that_registers() {
    let dir = tempfile::tempdir().unwrap();
    // Each start waits a second between minting its bootstrap token and starting the
    // agent: the restart below lands in that window.
    let data = dir.path().join("data");
    let server = serve(
        &data,
        &[
            ("HATCHERY_TEST_START_DELAY", "1s".to_owned()),
            // Beats every second: the agent's token must keep working, not just register.
            ("HATCHERY_HEARTBEAT_TTL", "3s".to_owned()),
        ],
        true,
    )
    .await;
    let id = server
        .create(serde_json::from_str(PLATFORM_BILLED).unwrap())
        .await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    restart(&server, &id).await;
    server.until_status(&id, "online").await;
    // Settled: the superseded start stopped what it started, the restart's agent runs.
    tokio::time::sleep(Duration::from_secs(2)).await;
    server.until_status(&id, "online").await;
    assert_eq!(sandboxes_of(&server, &id), 1, "exactly one agent");
    server.still_beating(&id).await;
    // Never failed on the way: no agent was started with the revoked token.
    let (status, events) = server
        .call(reqwest::Method::GET, &format!("/events/{id}"), None)
        .await;
    assert_eq!(status, 200, "{events}");
    assert!(
        !events
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["event_type"] == "WORKSPACE_PROVISION_FAILED"),
        "{events}"
    );
    // The restart landed mid-start: the first start was superseded, not merely cancelled
    // before it was claimed.
    let store = hatchery_store::Store::connect(&hatchery_store::default_sqlite_url(&data))
        .await
        .unwrap();
    let jobs = store.job_list().await.unwrap();
    store.close().await;
    assert!(
        jobs.iter()
            .any(|job| job.workspace_id == id && job.state == "superseded"),
        "{jobs:?}"
    );
}
