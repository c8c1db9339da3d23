//! The operator client against the real `hatchery serve`: `ws` and `org import`, tables
//! and `--json`, refusals with their code and a hint, exit codes 0/1/2; `login`, secrets,
//! logs and events (followed), `providers explain`, and live progress to `online` with the
//! local backend.

use std::process::{Command, Output};

use serde_json::Value;

mod common;

const TOKEN: &str = "client-cli-admin";

async fn serve(dir: &std::path::Path) -> common::Server {
    let env = common::server_env(&dir.join("data"), TOKEN, "none");
    common::Server::start_on(common::free_port(), &env, TOKEN).await
}

/// `hatchery ARGS…` against `base`, with `token` as `HATCHERY_TOKEN` (or none).
async fn hatchery(base: &str, token: Option<&str>, args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_hatchery"));
    command
        .args(args)
        .env("HATCHERY_URL", base)
        .env("HATCHERY_CONFIG", "/nonexistent/hatchery-config.toml")
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

/// `hatchery ws delegations ID`: a table of what the workspace handed to its peers, and
/// the server's JSON with `--json`.
#[tokio::test(flavor = "multi_thread")]
async fn delegations_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(dir.path()).await;
    let base = server.base.clone();
    let lead = server.create(serde_json::json!({"name": "Lead"})).await;
    let helper = server.create(serde_json::json!({"name": "Helper"})).await;
    // One the agent delivers itself, and one waiting for its target (no backend starts
    // it, so it never comes up).
    let (status, recorded) = server
        .call(
            reqwest::Method::POST,
            &format!("/workspaces/{lead}/delegations/record"),
            Some(serde_json::json!({"target_id": helper, "task": "draft", "delegation_id": "task-1"})),
        )
        .await;
    assert_eq!(status, 202, "{recorded}");
    let (status, delegated) = server
        .call(
            reqwest::Method::POST,
            &format!("/workspaces/{lead}/delegate"),
            Some(serde_json::json!({"target_id": helper, "task": "review"})),
        )
        .await;
    assert_eq!(status, 202, "{delegated}");
    let pending = delegated["delegation_id"].as_str().unwrap();

    let shown = hatchery(&base, Some(TOKEN), &["ws", "delegations", &lead]).await;
    assert_eq!(shown.status.code(), Some(0), "{}", text(&shown.stderr));
    let table = text(&shown.stdout);
    let mut lines = table.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["ID", "TARGET", "STATUS", "UPDATED", "SUMMARY"]);
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), 2, "{table}");
    let row = |id: &str| *rows.iter().find(|r| r.starts_with(id)).unwrap();
    let recorded_row: Vec<&str> = row("task-1").split_whitespace().collect();
    assert_eq!(recorded_row[1], helper);
    assert_eq!(recorded_row[2], "working");
    assert!(
        row("task-1").ends_with(&format!("Delegating to {helper}")),
        "{table}"
    );
    let pending_row: Vec<&str> = row(pending).split_whitespace().collect();
    assert!(["pending", "working"].contains(&pending_row[2]), "{table}");

    let json = hatchery(&base, Some(TOKEN), &["ws", "delegations", &lead, "--json"]).await;
    assert_eq!(json.status.code(), Some(0));
    let listed: Value = serde_json::from_slice(&json.stdout).unwrap();
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), 2);
    assert!(
        listed
            .iter()
            .all(|d| d["type"] == "delegation" && d["source_id"] == lead.as_str())
    );

    let unknown = hatchery(
        &base,
        Some(TOKEN),
        &["ws", "delegations", "00000000-0000-4000-8000-000000000000"],
    )
    .await;
    assert_eq!(unknown.status.code(), Some(1));
    assert!(
        text(&unknown.stderr).contains("workspace not found"),
        "{}",
        text(&unknown.stderr)
    );
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

    // No backend here: nothing would come online, so the import does not follow.
    let imported = hatchery(&base, Some(TOKEN), &["org", "import", &path, "--no-wait"]).await;
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

    let again = hatchery(&base, Some(TOKEN), &["org", "import", &path, "--no-wait"]).await;
    assert_eq!(again.status.code(), Some(1));
    assert!(
        text(&again.stderr).contains("--replace"),
        "{}",
        text(&again.stderr)
    );
    let duplicate = hatchery(
        &base,
        Some(TOKEN),
        &["org", "import", &path, "--duplicate", "--json", "--no-wait"],
    )
    .await;
    assert_eq!(duplicate.status.code(), Some(0));
    let answer: Value = serde_json::from_slice(&duplicate.stdout).unwrap();
    assert_eq!(answer["count"], 2);

    let missing = hatchery(&base, Some(TOKEN), &["org", "import", "/nonexistent.yaml"]).await;
    assert_eq!(missing.status.code(), Some(1));
}

/// `hatchery ARGS…` as a user runs it: the URL in the environment, a config file of the
/// test's own (what `login` writes), no token unless `login` saved one, `stdin` piped in.
/// `hatchery ws create` of a `claude-code` workspace named PM, waiting until it settles.
async fn create_pm_and_wait(base: &str, config: &std::path::Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "ws",
        "create",
        "--name",
        "PM",
        "--runtime",
        "claude-code",
        "--model",
        "moonshot/kimi-k2.6",
        "--wait",
    ];
    args.extend_from_slice(extra);
    user(base, config, &args, "").await
}

async fn user(base: &str, config: &std::path::Path, args: &[&str], stdin: &str) -> Output {
    use std::io::Write as _;
    let mut command = Command::new(env!("CARGO_BIN_EXE_hatchery"));
    command
        .args(args)
        .env("HATCHERY_URL", base)
        .env("HATCHERY_CONFIG", config)
        .env_remove("HATCHERY_TOKEN")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let stdin = stdin.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut child = command.spawn().unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap()
}

/// The server with the local backend: agents really start and register. `crasher` is a
/// runtime whose agent dies at once.
async fn serve_local(dir: &std::path::Path) -> common::Server {
    let commands = serde_json::json!({
        "crasher": ["/bin/sh", "-c", "echo 'cannot find my model weights'; exit 3"],
    });
    let mut env = common::server_env(&dir.join("data"), TOKEN, "local");
    env.push(("HATCHERY_RUNTIME_COMMANDS", commands.to_string()));
    env.push(("HATCHERY_SECRETS_KEY", common::SECRETS_KEY.to_owned()));
    common::Server::start_on(common::free_port(), &env, TOKEN).await
}

/// A running client command whose output is read line by line while it runs.
struct Following {
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
}

impl Following {
    fn start(base: &str, config: &std::path::Path, args: &[&str]) -> Self {
        use std::io::BufRead as _;
        let mut child = Command::new(env!("CARGO_BIN_EXE_hatchery"))
            .args(args)
            .env("HATCHERY_URL", base)
            .env("HATCHERY_CONFIG", config)
            .env_remove("HATCHERY_TOKEN")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (sender, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if sender.send(line).is_err() {
                    return;
                }
            }
        });
        Self { child, lines }
    }

    /// Wait (bounded) until `count` lines printed so far contain `needle`.
    fn until(&self, needle: &str, count: usize, seen: &mut Vec<String>) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while seen.iter().filter(|l| l.contains(needle)).count() < count {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => seen.push(line),
                Err(e) => panic!("{count}× {needle:?} never printed ({e}); printed: {seen:#?}"),
            }
        }
    }
}

impl Drop for Following {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn login_then_watch_workspaces_come_online_and_follow_them() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve_local(dir.path()).await;
    let base = server.base.clone();
    let config = dir.path().join("config").join("hatchery.toml");

    // A wrong token is refused and saves nothing; the right one (read from stdin) is saved
    // where only its owner can read it.
    let refused = user(&base, &config, &["login"], "not-the-token\n").await;
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused.stderr));
    assert!(!config.exists(), "a refused login saved nothing");
    let login = user(&base, &config, &["login"], &format!("{TOKEN}\n")).await;
    assert_eq!(login.status.code(), Some(0), "{}", text(&login.stderr));
    let saved = std::fs::read_to_string(&config).unwrap();
    assert!(saved.contains(&base) && saved.contains(TOKEN), "{saved}");
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&config).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);
    // The saved token goes only to the server it was saved for.
    let elsewhere = base.replace("127.0.0.1", "localhost");
    let other = user(&base, &config, &["ws", "list", "--url", &elsewhere], "").await;
    assert_eq!(other.status.code(), Some(1), "{}", text(&other.stdout));
    assert!(text(&other.stderr).contains("admin_auth_required"));

    // Create and follow: the line of the workspace ends `online`.
    let created = create_pm_and_wait(&base, &config, &[]).await;
    assert_eq!(created.status.code(), Some(0), "{}", text(&created.stderr));
    let shown = text(&created.stdout);
    assert!(
        shown
            .lines()
            .any(|l| l.starts_with("PM") && l.contains("online (")),
        "{shown}"
    );
    assert!(shown.ends_with("1 online\n"), "{shown}");
    let listed = user(&base, &config, &["ws", "list", "--json"], "").await;
    let listed: Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(listed[0]["status"], "online");

    // A crashing agent: the wait ends `failed` with its last words, exit 1.
    let crashed = user(
        &base,
        &config,
        &[
            "ws",
            "create",
            "--name",
            "Broken",
            "--runtime",
            "crasher",
            "--wait",
        ],
        "",
    )
    .await;
    assert_eq!(crashed.status.code(), Some(1), "{}", text(&crashed.stdout));
    let shown = text(&crashed.stdout);
    assert!(
        shown.contains("Broken") && shown.contains("failed: ") && shown.contains("model weights"),
        "{shown}"
    );

    let logout = user(&base, &config, &["logout"], "").await;
    assert_eq!(logout.status.code(), Some(0));
    assert!(!config.exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn logs_events_and_secrets_of_a_live_workspace() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve_local(dir.path()).await;
    let base = server.base.clone();
    let config = dir.path().join("hatchery.toml");
    let login = user(&base, &config, &["login", "--token", TOKEN], "").await;
    assert_eq!(login.status.code(), Some(0), "{}", text(&login.stderr));
    let created = create_pm_and_wait(&base, &config, &["--json"]).await;
    assert_eq!(created.status.code(), Some(0), "{}", text(&created.stderr));
    let created: Value = serde_json::from_slice(&created.stdout).unwrap();
    assert_eq!(
        created["status"], "online",
        "--json prints the record once settled"
    );
    let id = created["id"].as_str().unwrap().to_owned();

    // Logs and events, once.
    let logs = user(&base, &config, &["ws", "logs", &id], "").await;
    assert!(
        text(&logs.stdout).contains("registered"),
        "{}",
        text(&logs.stdout)
    );
    let events = user(&base, &config, &["ws", "events", &id], "").await;
    let events = text(&events.stdout);
    let provisioning = events.find("WORKSPACE_PROVISIONING").unwrap();
    let online = events.find("WORKSPACE_ONLINE").unwrap();
    assert!(provisioning < online, "oldest first: {events}");

    // Followed: a restart shows up in the stream, and the new agent's log in the log.
    let mut printed = Vec::new();
    let following = Following::start(&base, &config, &["ws", "events", &id, "-f"]);
    following.until("WORKSPACE_ONLINE", 1, &mut printed);
    let restarted = user(&base, &config, &["ws", "restart", &id], "").await;
    assert_eq!(
        restarted.status.code(),
        Some(0),
        "{}",
        text(&restarted.stderr)
    );
    following.until("WORKSPACE_ONLINE", 2, &mut printed);
    drop(following);
    let mut printed = Vec::new();
    let following = Following::start(&base, &config, &["ws", "logs", &id, "-f", "--tail", "1"]);
    following.until("", 1, &mut printed);
    let before = printed.iter().filter(|l| l.contains("registered")).count();
    let paused = user(&base, &config, &["ws", "pause", &id], "").await;
    assert!(text(&paused.stdout).contains("status: paused"));
    let resumed = user(&base, &config, &["ws", "resume", &id], "").await;
    assert!(text(&resumed.stdout).contains("status: provisioning"));
    // The agent started by the resume logs into the same followed log.
    following.until("registered", before + 1, &mut printed);
    drop(following);

    secrets_from_the_command_line(&base, &config, &id).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn org_import_of_a_directory_follows_every_workspace_online() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve_local(dir.path()).await;
    let base = server.base.clone();
    let config = dir.path().join("hatchery.toml");
    let login = user(&base, &config, &["login"], &format!("{TOKEN}\n")).await;
    assert_eq!(login.status.code(), Some(0), "{}", text(&login.stderr));
    let team = dir.path().join("team");
    std::fs::create_dir_all(team.join("prompts")).unwrap();
    std::fs::create_dir_all(team.join("knowledge")).unwrap();
    std::fs::write(
        team.join("org.yaml"),
        "name: dir-team\ndefaults:\n  runtime: claude-code\n  model: moonshot/kimi-k2.6\n\
         workspaces:\n  - name: Lead\n    initial_prompt_file: prompts/lead.md\n    files_dir: knowledge\n    \
         children:\n      - name: Helper\n",
    )
    .unwrap();
    std::fs::write(team.join("prompts/lead.md"), "You lead the team.").unwrap();
    std::fs::write(team.join("knowledge/facts.md"), "The sky is blue.").unwrap();
    let team = team.display().to_string();

    let imported = user(&base, &config, &["org", "import", &team], "").await;
    assert_eq!(
        imported.status.code(),
        Some(0),
        "{}",
        text(&imported.stderr)
    );
    let shown = text(&imported.stdout);
    for name in ["Lead", "Helper"] {
        assert!(
            shown
                .lines()
                .any(|l| l.starts_with(name) && l.contains("online (")),
            "{name} never shown online: {shown}"
        );
    }
    assert!(shown.ends_with("2 online\n"), "{shown}");

    // The directory's files reached the workspace's config.
    let listed = user(&base, &config, &["ws", "list", "--json"], "").await;
    let listed: Value = serde_json::from_slice(&listed.stdout).unwrap();
    let lead = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["name"] == "Lead")
        .unwrap();
    let config_files = server
        .call(
            reqwest::Method::GET,
            &format!("/workspaces/{}/config", lead["id"].as_str().unwrap()),
            None,
        )
        .await
        .1;
    assert_eq!(
        config_files["files"]["initial-prompt.md"],
        "You lead the team."
    );
    assert_eq!(config_files["files"]["files/facts.md"], "The sky is blue.");
}

#[tokio::test(flavor = "multi_thread")]
async fn providers_explain_asks_the_live_registry() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("providers.yaml");
    std::fs::write(
        &manifest,
        "schema_version: 1\nproviders:\n  \
         - {name: a, display_name: A, protocol: openai, auth_mode: k, auth_env: [A_KEY], model_prefix_match: '^x-'}\n  \
         - {name: b, display_name: B, protocol: openai, auth_mode: k, auth_env: [B_KEY], model_prefix_match: '^x-1'}\n\
         runtimes:\n  rt: {providers: [{name: a}, {name: b}]}\n",
    )
    .unwrap();
    let mut env = common::server_env(&dir.path().join("data"), TOKEN, "none");
    env.push(("HATCHERY_PROVIDERS", manifest.display().to_string()));
    let server = common::Server::start_on(common::free_port(), &env, TOKEN).await;
    let base = server.base.clone();

    let derived = hatchery(
        &base,
        Some(TOKEN),
        &["providers", "explain", "--runtime", "rt", "--model", "x-9"],
    )
    .await;
    assert_eq!(derived.status.code(), Some(0), "{}", text(&derived.stderr));
    let shown = text(&derived.stdout);
    assert!(
        shown.starts_with("rt + x-9 → provider a (byok billing)"),
        "{shown}"
    );
    assert!(
        shown.contains("rules tried:") && shown.contains("1. runtime found"),
        "{shown}"
    );

    let ambiguous = hatchery(
        &base,
        Some(TOKEN),
        &["providers", "explain", "--runtime", "rt", "--model", "x-1"],
    )
    .await;
    assert_eq!(
        ambiguous.status.code(),
        Some(1),
        "refused, as a create would be"
    );
    let shown = text(&ambiguous.stdout);
    assert!(
        shown.contains("refused") && shown.contains("hint: name one of a, b"),
        "{shown}"
    );
    let as_json = hatchery(
        &base,
        Some(TOKEN),
        &[
            "providers",
            "explain",
            "--runtime",
            "rt",
            "--model",
            "x-1",
            "--json",
        ],
    )
    .await;
    let answer: Value = serde_json::from_slice(&as_json.stdout).unwrap();
    assert_eq!(answer["kind"], "ambiguous");
    assert_eq!(answer["candidates"], serde_json::json!(["a", "b"]));
    assert!(
        answer["explain"]
            .as_array()
            .is_some_and(|steps| !steps.is_empty())
    );
}

/// Secrets: the value comes from stdin and is never printed back; global and workspace
/// scopes are listed apart.
async fn secrets_from_the_command_line(base: &str, config: &std::path::Path, id: &str) {
    let base = base.to_owned();
    let config = config.to_owned();
    let id = id.to_owned();
    let set = user(
        &base,
        &config,
        &["secrets", "set", "OPENAI_API_KEY"],
        "sk-test-value\n",
    )
    .await;
    assert_eq!(set.status.code(), Some(0), "{}", text(&set.stderr));
    let scoped = user(
        &base,
        &config,
        &[
            "secrets",
            "set",
            "ONLY_HERE",
            "--workspace",
            &id,
            "--value",
            "v",
        ],
        "",
    )
    .await;
    assert_eq!(scoped.status.code(), Some(0), "{}", text(&scoped.stderr));
    let global = text(&user(&base, &config, &["secrets", "list"], "").await.stdout);
    assert!(
        global.contains("OPENAI_API_KEY") && !global.contains("ONLY_HERE"),
        "{global}"
    );
    assert!(!global.contains("sk-test-value"));
    let mine = text(
        &user(&base, &config, &["secrets", "list", "--workspace", &id], "")
            .await
            .stdout,
    );
    assert!(
        mine.contains("ONLY_HERE") && mine.contains("workspace"),
        "{mine}"
    );
    let deleted = user(&base, &config, &["secrets", "delete", "OPENAI_API_KEY"], "").await;
    assert_eq!(deleted.status.code(), Some(0));
    let again = user(&base, &config, &["secrets", "delete", "OPENAI_API_KEY"], "").await;
    assert_eq!(again.status.code(), Some(1));
    assert!(text(&again.stderr).contains("secret_not_found"));
}
