//! `hatchery serve` as a real process on a free loopback port, for the tests that need the
//! binary: started with the environment a test gives it, stopped with SIGTERM (then
//! killed) when dropped.

#![allow(
    dead_code,
    reason = "each test binary uses a different part of the harness"
)]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A free loopback port (bound and released: good enough for tests).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A valid secrets key (32 bytes of base64), for servers whose tests store secrets.
pub const SECRETS_KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

/// What most tests' servers run with: a data directory, the admin token, a platform key
/// (so platform-billed creates go through) and a backend (`local`, `none`, …).
pub fn server_env(
    data_dir: &std::path::Path,
    token: &str,
    backend: &str,
) -> Vec<(&'static str, String)> {
    vec![
        ("HATCHERY_DATA_DIR", data_dir.display().to_string()),
        ("HATCHERY_ADMIN_TOKEN", token.to_owned()),
        ("HATCHERY_PLATFORM_KEY", "platform-gateway-key".to_owned()),
        ("HATCHERY_BACKEND", backend.to_owned()),
    ]
}

/// A running `hatchery serve`.
pub struct Serve {
    pub child: Child,
    pub base: String,
}

impl Serve {
    /// Start it with `env` set and `HATCHERY_*` variables of the test's own environment
    /// that are not in `env` removed; wait (bounded) until it answers.
    pub async fn start(env: &[(&str, String)]) -> Self {
        Self::start_on(free_port(), env).await
    }

    /// [`Serve::start`] on a given port.
    pub async fn start_on(port: u16, env: &[(&str, String)]) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_hatchery"));
        command.args(["serve", "--listen", &format!("127.0.0.1:{port}")]);
        for (name, _) in std::env::vars() {
            if name.starts_with("HATCHERY_") && !env.iter().any(|(set, _)| *set == name) {
                command.env_remove(&name);
            }
        }
        let child = command
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let serve = Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
        };
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        while client
            .get(format!("{}/health", serve.base))
            .send()
            .await
            .is_err()
        {
            assert!(Instant::now() < deadline, "hatchery serve never answered");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        serve
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        terminate(&mut self.child, Duration::from_secs(10));
    }
}

/// SIGTERM `child`, then SIGKILL it if it is still there after `patience`; reaped.
pub fn terminate(child: &mut Child, patience: Duration) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + patience;
    while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Run an outside tool (a browser script, schemathesis) to its end, killed after
/// `patience`: whether it succeeded, and everything it printed.
pub async fn run_bounded(command: &mut Command, patience: Duration) -> (bool, String) {
    let child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{command:?} did not start ({e}): run scripts/setup"));
    let pid = child.id().to_string();
    // Both pipes are read while it runs (a tool that says a lot must not block on a full
    // pipe); past its patience it is killed, and what it said so far is kept.
    let mut waiting = tokio::task::spawn_blocking(move || child.wait_with_output());
    let finished = if let Ok(finished) = tokio::time::timeout(patience, &mut waiting).await {
        finished
    } else {
        let _ = Command::new("kill").args(["-KILL", &pid]).status();
        waiting.await
    };
    let output = finished.unwrap().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (
        output.status.success(),
        format!("({}) {said}", output.status),
    )
}

pub mod dockerd;

/// A running server, and the admin's view of its API.
pub struct Server {
    pub process: Serve,
    pub api: Admin,
}

impl Server {
    /// `hatchery serve` on `port` with `env`, its admin holding `token`.
    pub async fn start_on(port: u16, env: &[(&str, String)], token: &str) -> Self {
        let process = Serve::start_on(port, env).await;
        Self {
            api: Admin::new(&process.base, token),
            process,
        }
    }
}

impl Server {
    /// POST `body` to `path` with the admin token, ignoring the answer (there may be none:
    /// the server was told to die on the way), then wait (bounded) for the process to end;
    /// how it ended.
    pub async fn crash_on(
        &mut self,
        path: &str,
        body: serde_json::Value,
    ) -> std::process::ExitStatus {
        let _ = self
            .api
            .client
            .post(format!("{}{path}", self.api.base))
            .bearer_auth(&self.api.token)
            .json(&body)
            .timeout(Duration::from_secs(20))
            .send()
            .await;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.process.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "it never crashed");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl std::ops::Deref for Server {
    type Target = Admin;
    fn deref(&self) -> &Admin {
        &self.api
    }
}

/// The admin's view of a running server's API.
pub struct Admin {
    pub base: String,
    pub token: String,
    pub client: reqwest::Client,
}

impl Admin {
    pub fn new(base: &str, token: &str) -> Self {
        Self {
            base: base.to_owned(),
            token: token.to_owned(),
            client: reqwest::Client::new(),
        }
    }

    /// A request with the admin token; the status and the body (JSON, else a string).
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
        )
    }

    /// Create a workspace (201 asserted); its id.
    pub async fn create(&self, body: serde_json::Value) -> String {
        let (status, created) = self
            .call(reqwest::Method::POST, "/workspaces", Some(body))
            .await;
        assert_eq!(status, 201, "{created}");
        created["id"].as_str().unwrap().to_owned()
    }

    /// The agent's last log lines (200 asserted).
    pub async fn logs(&self, id: &str) -> String {
        let (status, logs) = self
            .call(
                reqwest::Method::GET,
                &format!("/workspaces/{id}/logs?tail=50"),
                None,
            )
            .await;
        assert_eq!(status, 200, "{logs}");
        logs.as_str().unwrap_or_default().to_owned()
    }

    /// The id of the one workspace there is (asserted: exactly one).
    pub async fn only_workspace(&self) -> String {
        let (_, all) = self.call(reqwest::Method::GET, "/workspaces", None).await;
        let all = all.as_array().unwrap();
        assert_eq!(all.len(), 1, "one workspace: {all:?}");
        all[0]["id"].as_str().unwrap().to_owned()
    }

    /// Assert that workspace `id` stays online and its heartbeats keep arriving (its
    /// last-seen time moves over a few seconds).
    pub async fn still_beating(&self, id: &str) {
        let (_, first) = self
            .call(reqwest::Method::GET, &format!("/workspaces/{id}"), None)
            .await;
        tokio::time::sleep(Duration::from_secs(4)).await;
        let row = self.until_status(id, "online").await;
        assert_ne!(
            row["last_seen_at"], first["last_seen_at"],
            "heartbeats reach the control plane"
        );
    }

    /// Delete a workspace (200 asserted).
    pub async fn delete(&self, id: &str) {
        let (status, body) = self
            .call(reqwest::Method::DELETE, &format!("/workspaces/{id}"), None)
            .await;
        assert_eq!(status, 200, "{body}");
    }

    /// Wait (bounded) until the workspace reaches `status`; its record.
    pub async fn until_status(&self, id: &str, status: &str) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (_, row) = self
                .call(reqwest::Method::GET, &format!("/workspaces/{id}"), None)
                .await;
            if row["status"] == status {
                return row;
            }
            assert!(Instant::now() < deadline, "never {status}: {row}");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

/// Wait (bounded) until a probe agent's report in its workspace directory is complete
/// (ends with `done`); the report.
pub async fn probe_report(data_dir: &std::path::Path, id: &str) -> String {
    let result = data_dir
        .join("workspaces")
        .join(id)
        .join("workspace")
        .join("result");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(text) = std::fs::read_to_string(&result)
            && text.contains("done")
        {
            return text;
        }
        assert!(Instant::now() < deadline, "the probe never reported");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Remove workspace `id` straight in the SQLite database of `data_dir`, as another
/// replica would while this server is down.
pub async fn remove_while_down(data_dir: &std::path::Path, id: &str) {
    let store = hatchery_store::Store::connect(&hatchery_store::default_sqlite_url(data_dir))
        .await
        .unwrap();
    store.workspace_remove(id, false).await.unwrap();
    store.close().await;
}
