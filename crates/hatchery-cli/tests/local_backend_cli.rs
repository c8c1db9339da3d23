//! The local backend end to end, on the real `hatchery serve`: a create ends with a
//! sandboxed `hatchery agent` that registered itself and shows the provider the registry
//! derived; the sandbox keeps the agent off the network, out of the host's files and away
//! from other processes; a crashing agent fails its workspace with its exit code and last
//! words; a delete leaves no process behind.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::json;

mod common;

const TOKEN: &str = "local-backend-admin";

/// A runtime whose "agent" is a probe: it tries to leave its sandbox and writes what
/// happened into its workspace directory, then waits to be stopped.
fn probe_script(server_port: u16) -> String {
    format!(
        "exec 2>&1; \
         if (echo x > /dev/tcp/127.0.0.1/{server_port}) 2>/dev/null; then echo net=open; else echo net=closed; fi > /workspace/result; \
         if touch /etc/hatchery-escape 2>/dev/null; then echo etc=writable; else echo etc=readonly; fi >> /workspace/result; \
         if touch /hatchery-escape 2>/dev/null; then echo root=writable; else echo root=readonly; fi >> /workspace/result; \
         echo processes=$(ls /proc | grep -c '^[0-9]') >> /workspace/result; \
         if [ -e /run/hatchery/hatchery.sock ]; then echo socket=present; else echo socket=missing; fi >> /workspace/result; \
         if [ -e /etc/shadow ]; then echo shadow=visible; else echo shadow=hidden; fi >> /workspace/result; \
         echo secret=$PROBE_SECRET >> /workspace/result; \
         echo done >> /workspace/result; exec sleep 600"
    )
}

async fn start(data_dir: &Path) -> common::Server {
    start_with(data_dir, &[]).await
}

async fn start_with(data_dir: &Path, extra_env: &[(&str, &str)]) -> common::Server {
    let port = common::free_port();
    let commands = json!({
        "probe": ["/bin/bash", "-c", probe_script(port)],
        "crasher": ["/bin/sh", "-c", "echo 'cannot find my model weights'; exit 3"],
    });
    let mut env = common::server_env(data_dir, TOKEN, "local");
    env.push(("HATCHERY_RUNTIME_COMMANDS", commands.to_string()));
    env.push(("HATCHERY_SECRETS_KEY", common::SECRETS_KEY.to_owned()));
    env.extend(extra_env.iter().map(|(k, v)| (*k, (*v).to_owned())));
    common::Server::start_on(port, &env, TOKEN).await
}

/// Wait (bounded) until no process of the workspace's sandbox remains.
async fn until_gone(id: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !processes_mentioning(id).is_empty() {
        assert!(
            Instant::now() < deadline,
            "left behind: {:?}",
            processes_mentioning(id)
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Processes whose command line mentions `needle` (a workspace id is in the sandbox's).
fn processes_mentioning(needle: &str) -> Vec<String> {
    live_processes_mentioning(needle)
        .into_iter()
        .map(|(_, text)| text)
        .collect()
}

/// [`processes_mentioning`], each with its /proc directory.
fn live_processes_mentioning(needle: &str) -> Vec<(std::path::PathBuf, String)> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .chars()
                .all(|c| c.is_ascii_digit())
        })
        .filter_map(|e| {
            let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
            let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
            let zombie = stat
                .rsplit_once(')')
                .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'));
            let text = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            (!zombie && text.contains(needle)).then_some((e.path(), text))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_create_ends_with_a_sandboxed_agent_online_and_a_delete_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(&dir.path().join("data")).await;
    let id = server
        .create(json!({"name": "coder", "runtime": "claude-code", "model": "moonshot/kimi-k2.6"}))
        .await;
    let row = server.until_status(&id, "online").await;
    assert_eq!(row["agent_card"]["provider"], "platform", "{row}");
    assert_eq!(row["agent_card"]["llm_billing_mode"], "platform");
    let sandbox = live_processes_mentioning(&id);
    assert!(!sandbox.is_empty(), "the sandbox runs");
    // Started without transparent huge pages (inherited by the agent it runs): a fresh
    // process does not zero whole 2 MiB pages on first touch.
    for (proc_dir, text) in &sandbox {
        let status = std::fs::read_to_string(proc_dir.join("status")).unwrap_or_default();
        assert!(
            status.contains("THP_enabled:\t0"),
            "{text}: transparent huge pages are on:\n{status}"
        );
    }
    let logs = server.logs(&id).await;
    assert!(logs.contains("registered"), "{logs}");

    server.delete(&id).await;
    until_gone(&id).await;

    // A create that names no runtime launches nothing: its agent registers by itself.
    let waiting = server.create(json!({"name": "hand-started"})).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(processes_mentioning(&waiting).is_empty());
    let (_, row) = server
        .call(
            reqwest::Method::GET,
            &format!("/workspaces/{waiting}"),
            None,
        )
        .await;
    assert_eq!(row["status"], "provisioning");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_sandbox_keeps_the_agent_in() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = start(&data).await;
    let id = server
        .create(json!({"name": "probe", "runtime": "probe", "secrets": {"PROBE_SECRET": "s3cret-value"}}))
        .await;
    let report = common::probe_report(&data, &id).await;
    assert!(
        report.contains("net=closed"),
        "no TCP out, not even to the host's loopback: {report}"
    );
    assert!(
        report.contains("etc=readonly") && report.contains("root=readonly"),
        "{report}"
    );
    assert!(
        report.contains("socket=present"),
        "the control plane's socket is its way out: {report}"
    );
    let processes: usize = report
        .lines()
        .find_map(|l| l.strip_prefix("processes="))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(
        processes <= 5,
        "it sees only its own processes, not the host's: {report}"
    );
    assert!(!Path::new("/etc/hatchery-escape").exists());
    assert!(
        report.contains("shadow=hidden"),
        "only what programs need of /etc: {report}"
    );
    assert!(
        report.contains("secret=s3cret-value"),
        "its secrets are in its environment: {report}"
    );
    assert!(
        processes_mentioning("s3cret-value").is_empty(),
        "never on a command line"
    );
    server.delete(&id).await;
    until_gone(&id).await;
}

/// The probe's report after the next start: the old one is removed first.
async fn next_report(data: &Path, id: &str, change: impl Future<Output = ()>) -> String {
    let result = data
        .join("workspaces")
        .join(id)
        .join("workspace")
        .join("result");
    std::fs::remove_file(&result).unwrap();
    change.await;
    common::probe_report(data, id).await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_secret_change_restarts_the_workspaces_it_reaches_with_the_new_value() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = start(&data).await;
    let own = server
        .create(json!({"name": "own", "runtime": "probe", "secrets": {"PROBE_SECRET": "one"}}))
        .await;
    let inherits = server
        .create(json!({"name": "inherits", "runtime": "probe"}))
        .await;
    assert!(
        common::probe_report(&data, &own)
            .await
            .contains("secret=one")
    );
    assert!(
        common::probe_report(&data, &inherits)
            .await
            .contains("secret=\n")
    );

    let set = |scope: String, value: &'static str| {
        let api = &server.api;
        async move {
            let (status, body) = api
                .call(
                    reqwest::Method::POST,
                    &scope,
                    Some(json!({"key": "PROBE_SECRET", "value": value})),
                )
                .await;
            assert_eq!(status, 200, "{body}");
        }
    };
    let report = next_report(
        &data,
        &own,
        set(format!("/workspaces/{own}/secrets"), "two"),
    )
    .await;
    assert!(report.contains("secret=two"), "its own secret: {report}");

    // A global change reaches the workspace without an override, not the one with one.
    let starts = |id: String| {
        let api = &server.api;
        async move {
            let (_, events) = api
                .call(reqwest::Method::GET, &format!("/events/{id}"), None)
                .await;
            events
                .as_array()
                .unwrap()
                .iter()
                .filter(|e| e["event_type"] == "WORKSPACE_PROVISIONING")
                .count()
        }
    };
    let own_starts = starts(own.clone()).await;
    let report = next_report(
        &data,
        &inherits,
        set("/settings/secrets".to_owned(), "global"),
    )
    .await;
    assert!(report.contains("secret=global"), "{report}");
    assert_eq!(
        starts(own.clone()).await,
        own_starts,
        "an override keeps its agent"
    );

    // Deleting the override hands it the global value.
    let delete = async {
        let (status, body) = server
            .call(
                reqwest::Method::DELETE,
                &format!("/workspaces/{own}/secrets/PROBE_SECRET"),
                None,
            )
            .await;
        assert_eq!(status, 200, "{body}");
    };
    let report = next_report(&data, &own, delete).await;
    assert!(report.contains("secret=global"), "{report}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crashing_agent_fails_its_workspace_with_the_exit_code_and_last_words() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(&dir.path().join("data")).await;
    let id = server
        .create(json!({"name": "crasher", "runtime": "crasher"}))
        .await;
    let row = server.until_status(&id, "failed").await;
    let reason = row["failure_reason"].as_str().unwrap();
    assert!(reason.contains("exited with code 3"), "{reason}");
    assert!(reason.contains("cannot find my model weights"), "{reason}");
}

/// A raw HTTP/1.1 GET over a Unix socket; the status code.
async fn socket_get(socket: &Path, path: &str) -> u16 {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut stream = tokio::net::UnixStream::connect(socket).await.unwrap();
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: hatchery\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await
        .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    answer.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_socket_never_grants_admin_even_in_dev_mode() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = start_with(&data, &[("HATCHERY_DEV", "1")]).await;
    // Over TCP, dev mode opens admin routes (as Molecule's scripts expect)…
    let (status, _) = server.call(reqwest::Method::GET, "/workspaces", None).await;
    assert_eq!(status, 200);
    // …but over the socket, which every sandbox can reach, nobody is the admin.
    let socket = data.join("run/hatchery.sock");
    assert_eq!(socket_get(&socket, "/health").await, 200);
    assert_eq!(socket_get(&socket, "/workspaces").await, 401);
    assert_eq!(socket_get(&socket, "/settings/secrets").await, 401);
    let id = server.create(json!({"name": "w"})).await;
    assert_eq!(
        socket_get(&socket, &format!("/workspaces/{id}/secrets/values")).await,
        401
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn after_kill_9_nothing_is_orphaned_and_the_agent_comes_back_once() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut server = start(&data).await;
    let id = server
        .create(
            json!({"name": "survivor", "runtime": "claude-code", "model": "moonshot/kimi-k2.6"}),
        )
        .await;
    server.until_status(&id, "online").await;
    assert!(!processes_mentioning(&id).is_empty());

    // The control plane dies without a word: its sandboxes die with it.
    server.process.child.kill().unwrap();
    server.process.child.wait().unwrap();
    until_gone(&id).await;
    drop(server);

    // Back up: the workspace it had launched gets its agent again, once.
    let server = start(&data).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, events) = server
            .call(reqwest::Method::GET, &format!("/events/{id}"), None)
            .await;
        let relaunched = events.as_array().unwrap().iter().any(|e| {
            e["event_type"] == "WORKSPACE_PROVISIONING" && e["payload"]["reason"].is_string()
        });
        let (_, row) = server
            .call(reqwest::Method::GET, &format!("/workspaces/{id}"), None)
            .await;
        if relaunched && row["status"] == "online" {
            break;
        }
        assert!(Instant::now() < deadline, "never back online: {row}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // One sandbox: bubblewrap outside and its init inside carry the workspace's path.
    assert_eq!(
        processes_mentioning(&id).len(),
        2,
        "{:?}",
        processes_mentioning(&id)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crash_at_each_provisioning_step_leaves_nothing_stuck_orphaned_or_doubled() {
    for point in ["created", "job-claimed", "agent-started", "job-done"] {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let lease = ("HATCHERY_JOB_LEASE", "1s");
        let mut server = start_with(&data, &[("HATCHERY_TEST_CRASH_AT", point), lease]).await;
        // The answer may never come: the process dies on the way.
        let fragile =
            json!({"name": "fragile", "runtime": "claude-code", "model": "moonshot/kimi-k2.6"});
        let status = server.crash_on("/workspaces", fragile).await;
        assert!(!status.success(), "{point}: it crashed, it did not stop");
        // Sandboxes started in the instant before they could arrange to die with it may
        // outlive it: the next start must find and end them.
        drop(server);

        let server = start_with(&data, &[lease]).await;
        let id = server.only_workspace().await;
        server.until_status(&id, "online").await;
        // One agent: as many processes as a workspace that never crashed has.
        let baseline = server
            .create(
                json!({"name": "steady", "runtime": "claude-code", "model": "moonshot/kimi-k2.6"}),
            )
            .await;
        server.until_status(&baseline, "online").await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(
            processes_mentioning(&id).len(),
            processes_mentioning(&baseline).len(),
            "{point}: one agent, not two, no orphan: {:?}",
            processes_mentioning(&id)
        );
        let (_, row) = server
            .call(reqwest::Method::GET, &format!("/workspaces/{id}"), None)
            .await;
        assert_eq!(row["status"], "online", "{point}: {row}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_kill_9_in_the_middle_of_a_burst_of_100_creates_leaves_every_workspace_settled() {
    const BURST: usize = 100;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let lease = ("HATCHERY_JOB_LEASE", "1s");
    let mut server = start_with(&data, &[lease]).await;
    let answered = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut in_flight = tokio::task::JoinSet::new();
    for n in 0..BURST {
        let (client, url, token) = (
            server.api.client.clone(),
            format!("{}/workspaces", server.api.base),
            server.api.token.clone(),
        );
        let answered = std::sync::Arc::clone(&answered);
        in_flight.spawn(async move {
            let body = json!({"name": format!("w{n}"), "runtime": "claude-code",
                              "model": "moonshot/kimi-k2.6"});
            let response = client.post(url).bearer_auth(token).json(&body).send().await;
            answered.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let created: serde_json::Value = response.ok()?.json().await.ok()?;
            created["id"].as_str().map(str::to_owned)
        });
    }
    // Mid-burst: some creates answered, some in flight, some not sent yet; agents starting.
    let deadline = Instant::now() + Duration::from_secs(30);
    while answered.load(std::sync::atomic::Ordering::SeqCst) < BURST / 3 {
        assert!(Instant::now() < deadline, "the burst never got going");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    server.process.child.kill().unwrap();
    server.process.child.wait().unwrap();
    let mut acknowledged = Vec::new();
    while let Some(created) = in_flight.join_next().await {
        acknowledged.extend(created.unwrap());
    }
    drop(server);

    let server = start_with(&data, &[lease]).await;
    let (_, rows) = server.call(reqwest::Method::GET, "/workspaces", None).await;
    let ids: Vec<String> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row["id"].as_str().unwrap().to_owned())
        .collect();
    for id in &acknowledged {
        assert!(ids.contains(id), "an acknowledged create was lost: {id}");
    }
    // Every workspace settles: online, or failed with a reason; none stays provisioning.
    let deadline = Instant::now() + Duration::from_mins(2);
    for id in &ids {
        let row = loop {
            let (_, row) = server
                .call(reqwest::Method::GET, &format!("/workspaces/{id}"), None)
                .await;
            if row["status"] == "online" || row["status"] == "failed" {
                break row;
            }
            assert!(Instant::now() < deadline, "never settled: {row}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        if row["status"] == "failed" {
            assert!(
                row["failure_reason"]
                    .as_str()
                    .is_some_and(|r| !r.is_empty()),
                "{row}"
            );
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    // One sandbox each for those online (bubblewrap outside and its init inside carry the
    // workspace's path), none for the failed, and no sandbox without a row.
    for id in &ids {
        let (_, row) = server
            .call(reqwest::Method::GET, &format!("/workspaces/{id}"), None)
            .await;
        let expected = if row["status"] == "online" { 2 } else { 0 };
        assert_eq!(processes_mentioning(id).len(), expected, "{row}");
    }
    let workspaces_dir = data.join("workspaces").display().to_string();
    for (_, command) in live_processes_mentioning(&workspaces_dir) {
        assert!(
            ids.iter().any(|id| command.contains(id.as_str())),
            "a sandbox without a row: {command}"
        );
    }
}

/// The control-group directory (memory controller) and its memory limit file of a
/// process, as the host sees them: v1's memory hierarchy, or v2's unified one.
fn memory_group_of(pid: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let own = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    for line in own.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next(), parts.next().unwrap(), parts.next().unwrap());
        let path = path.trim_start_matches('/');
        if controllers.split(',').any(|c| c == "memory") {
            let dir = Path::new("/sys/fs/cgroup/memory").join(path);
            return (dir.clone(), dir.join("memory.limit_in_bytes"));
        }
        if controllers.is_empty() && Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
            let dir = Path::new("/sys/fs/cgroup").join(path);
            return (dir.clone(), dir.join("memory.max"));
        }
    }
    panic!("{pid} is in no memory control group: {own}");
}

/// The v1 cpu controller's group of a process (`None` on v2).
fn cpu_group_of(pid: &str) -> Option<std::path::PathBuf> {
    let own = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    own.lines().find_map(|line| {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        let names: Vec<&str> = controllers.split(',').collect();
        names.contains(&"cpu").then(|| {
            Path::new("/sys/fs/cgroup")
                .join(names.join(","))
                .join(path.trim_start_matches('/'))
        })
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn sandboxes_are_limited_by_control_groups() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_with(
        &dir.path().join("data"),
        &[
            ("HATCHERY_AGENT_MEMORY_MB", "1024"),
            ("HATCHERY_AGENT_CPUS", "0.5"),
        ],
    )
    .await;
    let id = server
        .create(json!({"name": "limited", "runtime": "claude-code", "model": "moonshot/kimi-k2.6"}))
        .await;
    server.until_status(&id, "online").await;
    let sandbox = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(&id))
        })
        .expect("the sandbox runs");
    let (group, memory_limit) = memory_group_of(&sandbox);
    assert!(
        group.ends_with(&id),
        "a group of its own: {}",
        group.display()
    );
    assert_eq!(
        std::fs::read_to_string(&memory_limit).unwrap().trim(),
        (1024_u64 * 1024 * 1024).to_string(),
        "the configured memory"
    );
    // CPU: half a core.
    let (quota_file, expected) = match cpu_group_of(&sandbox) {
        Some(cpu) => (cpu.join("cpu.cfs_quota_us"), "50000"),
        None => (group.join("cpu.max"), "50000 100000"),
    };
    assert_eq!(
        std::fs::read_to_string(&quota_file).unwrap().trim(),
        expected,
        "{}",
        quota_file.display()
    );

    server.delete(&id).await;
    until_gone(&id).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while group.exists() {
        assert!(Instant::now() < deadline, "{} left behind", group.display());
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}
