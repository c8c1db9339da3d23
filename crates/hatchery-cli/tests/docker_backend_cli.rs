//! The docker backend end to end, on the real `hatchery serve` and a real Docker engine
//! (Debian's `dockerd`, started per test with its own state, no bridge, no iptables):
//! a create ends with a locked-down container whose `hatchery agent` registered itself;
//! the container keeps the agent off the network and out of the host; a crashing agent
//! fails its workspace with its exit code and last words; a control plane killed with -9
//! adopts its running containers when it comes back and removes the ones that must not
//! run; a delete leaves no container.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bollard::query_parameters::{InspectContainerOptions, ListContainersOptions};
use serde_json::json;

mod common;

use common::dockerd::Dockerd;

const TOKEN: &str = "docker-backend-admin";
const PROBE_IMAGE: &str = "hatchery-test-probe:1";

/// `hatchery serve` with the docker backend on `engine`, its data in `data_dir`.
async fn serve(engine: &Dockerd, data_dir: &Path) -> common::Server {
    serve_with(engine, data_dir, &[]).await
}

async fn serve_with(
    engine: &Dockerd,
    data_dir: &Path,
    extra: &[(&'static str, &str)],
) -> common::Server {
    let port = common::free_port();
    let images = json!({"probe": PROBE_IMAGE, "crasher": "hatchery-test-crasher:1"});
    let mut env = vec![
        ("HATCHERY_DATA_DIR", data_dir.display().to_string()),
        ("HATCHERY_ADMIN_TOKEN", TOKEN.to_owned()),
        ("HATCHERY_PLATFORM_KEY", "platform-gateway-key".to_owned()),
        ("HATCHERY_BACKEND", "docker".to_owned()),
        ("HATCHERY_DOCKER_HOST", engine.endpoint()),
        ("HATCHERY_RUNTIME_IMAGES", images.to_string()),
        ("HATCHERY_HEARTBEAT_TTL", "3s".to_owned()),
        (
            "HATCHERY_SECRETS_KEY",
            "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=".to_owned(),
        ),
    ];
    env.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
    common::Server::start_on(port, &env, TOKEN).await
}

/// An image of bash and a few tools whose entrypoint runs `script`.
async fn shell_image(engine: &Dockerd, tag: &str, script: &str) {
    let files: Vec<(PathBuf, String)> = [
        "/bin/bash",
        "/bin/ls",
        "/bin/grep",
        "/bin/sleep",
        "/usr/bin/touch",
    ]
    .iter()
    .map(|p| (std::fs::canonicalize(p).unwrap(), (*p).to_owned()))
    .collect();
    let entrypoint = ["/bin/bash".to_owned(), "-c".to_owned(), script.to_owned()];
    hatchery_provision::docker::import_image(&engine.client().await, tag, &files, &entrypoint)
        .await
        .unwrap();
}

/// The containers of the engine, running or not, by workspace label.
async fn containers(engine: &Dockerd) -> Vec<(String, String, String)> {
    engine
        .client()
        .await
        .list_containers(Some(ListContainersOptions {
            all: true,
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_iter()
        .map(|c| {
            let workspace = c
                .labels
                .unwrap_or_default()
                .get(hatchery_provision::docker::WORKSPACE_LABEL)
                .cloned()
                .unwrap_or_default();
            (
                workspace,
                c.id.unwrap_or_default(),
                c.state.map(|s| s.to_string()).unwrap_or_default(),
            )
        })
        .collect()
}

/// Wait (bounded) until no container of the workspace remains.
async fn until_no_container(engine: &Dockerd, id: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let left: Vec<_> = containers(engine)
            .await
            .into_iter()
            .filter(|(w, _, _)| w == id)
            .collect();
        if left.is_empty() {
            return;
        }
        assert!(Instant::now() < deadline, "left behind: {left:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_create_ends_with_a_locked_down_container_online_and_a_delete_removes_it() {
    let engine = Dockerd::start().await;
    let dir = tempfile::tempdir().unwrap();
    let server = serve(&engine, &dir.path().join("data")).await;
    let id = server
        .create(json!({"name": "coder", "runtime": "claude-code", "model": "moonshot/kimi-k2.6"}))
        .await;
    let row = server.until_status(&id, "online").await;
    assert_eq!(row["agent_card"]["provider"], "platform", "{row}");
    assert_eq!(row["agent_card"]["llm_billing_mode"], "platform");

    let found: Vec<_> = containers(&engine)
        .await
        .into_iter()
        .filter(|(w, _, _)| *w == id)
        .collect();
    assert_eq!(found.len(), 1, "one container per workspace: {found:?}");
    let container = engine
        .client()
        .await
        .inspect_container(&found[0].1, None::<InspectContainerOptions>)
        .await
        .unwrap();
    let host = container.host_config.unwrap();
    assert_eq!(host.network_mode.as_deref(), Some("none"));
    assert_eq!(host.readonly_rootfs, Some(true));
    assert_eq!(host.cap_drop, Some(vec!["ALL".to_owned()]));
    assert_eq!(host.memory, Some(2 * 1024 * 1024 * 1024));
    assert_eq!(host.nano_cpus, Some(1_000_000_000));
    assert!(host.pids_limit.is_some_and(|p| p > 0));
    let mounts = host.mounts.unwrap();
    let mount = |target: &str| {
        mounts
            .iter()
            .find(|m| m.target.as_deref() == Some(target))
            .unwrap_or_else(|| panic!("{target} not mounted: {mounts:?}"))
    };
    assert_eq!(mount("/config").read_only, Some(true));
    assert_eq!(mount("/run/hatchery").read_only, Some(true));
    assert_ne!(mount("/workspace").read_only, Some(true));
    let config = container.config.unwrap();
    let env = config.env.unwrap_or_default();
    assert!(
        env.iter()
            .any(|e| e == "ANTHROPIC_API_KEY=platform-gateway-key")
            || env.iter().any(|e| e.ends_with("=platform-gateway-key")),
        "the platform credential is in its environment: {env:?}"
    );
    assert_eq!(
        config.labels.unwrap()[hatchery_provision::docker::WORKSPACE_LABEL],
        id
    );

    // Logs come from the engine.
    let logs = server.logs(&id).await;
    assert!(logs.contains("registered"), "{logs}");

    // A message reaches the agent in its network-less container, through the socket
    // directory bound into it.
    assert_ne!(mount("/run/a2a").read_only, Some(true));
    let answer: serde_json::Value = server
        .client
        .post(format!("{}/workspaces/{id}/a2a", server.base))
        .bearer_auth(TOKEN)
        .json(
            &json!({"method": "message/send", "params": {"message": {"role": "user",
            "parts": [{"kind": "text", "text": "hello, container"}]}}}),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let text = answer["result"]["parts"][0]["text"]
        .as_str()
        .unwrap_or_default();
    assert!(text.contains("hello, container"), "{answer}");

    server.delete(&id).await;
    until_no_container(&engine, &id).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_container_keeps_the_agent_in_and_a_crash_fails_the_workspace() {
    let engine = Dockerd::start().await;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    let probe = format!(
        "exec 2>&1; \
         if (echo x > /dev/tcp/127.0.0.1/{port}) 2>/dev/null; then echo net=open; else echo net=closed; fi > /workspace/result; \
         if touch /etc/hatchery-escape 2>/dev/null; then echo etc=writable; else echo etc=readonly; fi >> /workspace/result; \
         if touch /hatchery-escape 2>/dev/null; then echo root=writable; else echo root=readonly; fi >> /workspace/result; \
         echo processes=$(ls /proc | grep -c '^[0-9]') >> /workspace/result; \
         if [ -S /run/hatchery/hatchery.sock ]; then echo socket=present; else echo socket=missing; fi >> /workspace/result; \
         echo run=$(ls -A /run/hatchery) >> /workspace/result; \
         echo interfaces=$(ls /sys/class/net) >> /workspace/result; \
         echo secret=$PROBE_SECRET >> /workspace/result; \
         echo done >> /workspace/result; exec sleep 600"
    );
    shell_image(&engine, PROBE_IMAGE, &probe).await;
    shell_image(
        &engine,
        "hatchery-test-crasher:1",
        "echo 'cannot find my model weights'; exit 3",
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = serve(&engine, &data).await;

    let id = server
        .create(json!({"name": "probe", "runtime": "probe", "secrets": {"PROBE_SECRET": "s3cret-value"}}))
        .await;
    let report = common::probe_report(&data, &id).await;
    assert!(report.contains("net=closed"), "no network at all: {report}");
    assert!(
        listener.accept().is_err(),
        "nothing reached the host's loopback"
    );
    assert!(
        report.contains("etc=readonly") && report.contains("root=readonly"),
        "{report}"
    );
    assert!(report.contains("socket=present"), "{report}");
    assert!(
        report.contains("run=hatchery.sock\n"),
        "of the control plane only its socket: {report}"
    );
    assert!(
        report.contains("interfaces=lo\n"),
        "no network but loopback: {report}"
    );
    let processes: usize = report
        .lines()
        .find_map(|l| l.strip_prefix("processes="))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(processes <= 5, "only its own processes: {report}");
    assert!(report.contains("secret=s3cret-value"), "{report}");

    let crasher = server
        .create(json!({"name": "crasher", "runtime": "crasher"}))
        .await;
    let row = server.until_status(&crasher, "failed").await;
    let reason = row["failure_reason"].as_str().unwrap();
    assert!(reason.contains("exited with code 3"), "{reason}");
    assert!(reason.contains("cannot find my model weights"), "{reason}");

    for id in [&id, &crasher] {
        server.delete(id).await;
        until_no_container(&engine, id).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn after_kill_9_running_containers_are_adopted_and_the_unwanted_removed() {
    let engine = Dockerd::start().await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut server = serve(&engine, &data).await;
    let kept = server
        .create(json!({"name": "kept", "runtime": "claude-code", "model": "moonshot/kimi-k2.6"}))
        .await;
    let dropped = server
        .create(json!({"name": "dropped", "runtime": "claude-code", "model": "moonshot/kimi-k2.6"}))
        .await;
    server.until_status(&kept, "online").await;
    server.until_status(&dropped, "online").await;
    let before: Vec<_> = containers(&engine).await;

    server.process.child.kill().unwrap();
    server.process.child.wait().unwrap();
    // While it was down, another replica deleted one of them.
    common::remove_while_down(&data, &dropped).await;

    let server = serve(&engine, &data).await;
    until_no_container(&engine, &dropped).await;
    // The kept agent was adopted, not started again: the same container, still beating
    // (through the new socket), its workspace online past several TTLs.
    server.still_beating(&kept).await;
    let after: Vec<_> = containers(&engine)
        .await
        .into_iter()
        .filter(|(w, _, _)| *w == kept)
        .collect();
    let was: Vec<_> = before.into_iter().filter(|(w, _, _)| *w == kept).collect();
    assert_eq!(after.len(), 1, "{after:?}");
    assert_eq!(after[0].1, was[0].1, "the same container, adopted");

    server.delete(&kept).await;
    until_no_container(&engine, &kept).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crash_while_a_container_starts_leaves_one_agent_and_nothing_stuck() {
    let engine = Dockerd::start().await;
    // The steps after which a container exists: it outlives the crash.
    for point in ["agent-started", "job-done"] {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let lease = ("HATCHERY_JOB_LEASE", "1s");
        let mut server =
            serve_with(&engine, &data, &[("HATCHERY_TEST_CRASH_AT", point), lease]).await;
        let fragile =
            json!({"name": "fragile", "runtime": "claude-code", "model": "moonshot/kimi-k2.6"});
        server.crash_on("/workspaces", fragile).await;
        drop(server);

        let server = serve_with(&engine, &data, &[lease]).await;
        let id = server.only_workspace().await;
        server.until_status(&id, "online").await;
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let (_, row) = server
            .call(reqwest::Method::GET, &format!("/workspaces/{id}"), None)
            .await;
        assert_eq!(row["status"], "online", "{point}: {row}");
        let found: Vec<_> = containers(&engine)
            .await
            .into_iter()
            .filter(|(w, _, _)| *w == id)
            .collect();
        assert_eq!(found.len(), 1, "{point}: one container: {found:?}");
        assert_eq!(found[0].2, "running", "{point}: {found:?}");
        server.delete(&id).await;
        until_no_container(&engine, &id).await;
    }
}

#[test]
fn a_socket_in_a_shared_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let shared = dir.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::write(shared.join("docker.sock"), "").unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_hatchery"))
        .args(["serve", "--listen", "127.0.0.1:0", "--backend", "docker"])
        .env("HATCHERY_DATA_DIR", dir.path().join("data"))
        .env("HATCHERY_ADMIN_TOKEN", TOKEN)
        .env("HATCHERY_SOCKET", shared.join("hatchery.sock"))
        .env("HATCHERY_DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("must hold nothing but the socket") && stderr.contains("docker.sock"),
        "{stderr}"
    );
}
