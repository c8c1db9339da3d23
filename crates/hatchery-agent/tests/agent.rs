//! The real `hatchery-agent` binary against the real server, through the server's Unix
//! socket as a sandboxed agent reaches it: registration with a bootstrap token, the stamped
//! provider in its card, heartbeats, A2A (on TCP, and on the socket a sandbox's backend
//! reaches it by), SIGTERM; and the fail-closed refusal.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hatchery_server::supervision::Supervision;
use hatchery_server::{Application, ServerConfig};
use serde_json::{Value, json};

const TOKEN: &str = "agent-test-admin";

struct Server {
    base: String,
    socket: std::path::PathBuf,
    client: reqwest::Client,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn server(dir: &Path) -> Server {
    let socket = dir.join("hatchery.sock");
    let config = ServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.join("data"),
        database_url: None,
        providers: None,
        admin_token: Some(TOKEN.into()),
        secrets_key: None,
        platform_key: Some("platform-gateway-key".into()),
        dev: false,
        supervision: Supervision::default(),
        event_buffer: hatchery_server::event_hub::EventBuffer::default(),
        unix_socket: Some(socket.clone()),
        backend: hatchery_server::BackendChoice::None,
        templates_dir: None,
        dashboard_dir: None,
        http: hatchery_server::http::HttpSettings::default(),
    };
    let app = Application::build(config).await.unwrap();
    let base = format!("http://{}", app.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(app.run_until(async move {
        let _ = stopped.await;
    }));
    Server {
        base,
        socket,
        client: reqwest::Client::new(),
        _stop: stop,
    }
}

impl Server {
    async fn admin(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(TOKEN);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Create a workspace and lay out its config dir as a provisioner would; its id and a
    /// bootstrap token.
    async fn workspace(&self, body: Value, config_dir: &Path) -> (String, String) {
        let (status, created) = self
            .admin(reqwest::Method::POST, "/workspaces", Some(body))
            .await;
        assert_eq!(status, 201, "{created}");
        let id = created["id"].as_str().unwrap().to_owned();
        let (_, config) = self
            .admin(
                reqwest::Method::GET,
                &format!("/workspaces/{id}/config"),
                None,
            )
            .await;
        std::fs::create_dir_all(config_dir).unwrap();
        std::fs::write(
            config_dir.join("config.yaml"),
            config["files"]["config.yaml"].as_str().unwrap(),
        )
        .unwrap();
        let (status, boot) = self
            .admin(
                reqwest::Method::POST,
                &format!("/admin/workspaces/{id}/bootstrap-token"),
                Some(json!({})),
            )
            .await;
        assert_eq!(status, 201);
        (id, boot["bootstrap_token"].as_str().unwrap().to_owned())
    }
}

fn agent(server: &Server, id: &str, bootstrap: &str, config_dir: &Path) -> Child {
    agent_with(server, id, bootstrap, config_dir, &[])
}

/// The agent, with `extra` variables in its environment.
fn agent_with(
    server: &Server,
    id: &str,
    bootstrap: &str,
    config_dir: &Path,
    extra: &[(&str, &std::ffi::OsStr)],
) -> Child {
    Command::new(env!("CARGO_BIN_EXE_hatchery-agent"))
        .env("HATCHERY_URL", format!("unix:{}", server.socket.display()))
        .env("HATCHERY_WORKSPACE_ID", id)
        .env("HATCHERY_BOOTSTRAP_TOKEN", bootstrap)
        .env("HATCHERY_CONFIG_DIR", config_dir)
        .env("HATCHERY_HEARTBEAT_INTERVAL", "100ms")
        .env_remove("HATCHERY_TOKEN")
        .env_remove("HATCHERY_AGENT_SOCKET")
        .envs(extra.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Wait (bounded) for the child to exit; its code and everything it printed.
fn wait_exit(mut child: Child, within: Duration) -> (Option<i32>, String) {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let output = child.wait_with_output().unwrap();
            let printed = String::from_utf8_lossy(&output.stdout).into_owned()
                + &String::from_utf8_lossy(&output.stderr);
            return (status.code(), printed);
        }
        assert!(Instant::now() < deadline, "the agent did not exit in time");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_agent_registers_through_the_socket_beats_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(dir.path()).await;
    let config_dir = dir.path().join("config");
    let (id, bootstrap) = server
        .workspace(
            json!({"name": "coder", "runtime": "claude-code", "model": "moonshot/kimi-k2.6"}),
            &config_dir,
        )
        .await;
    let child = agent(&server, &id, &bootstrap, &config_dir);

    let deadline = Instant::now() + Duration::from_secs(10);
    let row = loop {
        let (_, row) = server
            .admin(reqwest::Method::GET, &format!("/workspaces/{id}"), None)
            .await;
        if row["status"] == "online" {
            break row;
        }
        assert!(Instant::now() < deadline, "never online: {row}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    // The card shows the provider the registry derived and the control plane stamped.
    assert_eq!(row["agent_card"]["provider"], "platform");
    assert_eq!(row["agent_card"]["llm_billing_mode"], "platform");
    assert_eq!(row["agent_card"]["runtime"], "claude-code");
    let url = row["url"].as_str().unwrap().to_owned();
    assert!(url.starts_with("http://localhost:"), "{url}");

    // It beats (counted by the server) and answers A2A at the URL it registered.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let metrics = server
            .client
            .get(format!("{}/metrics", server.base))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let beats = metrics
            .lines()
            .find_map(|l| l.strip_prefix("hatchery_heartbeats_total "))
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0);
        if beats >= 2 {
            break;
        }
        assert!(Instant::now() < deadline, "no heartbeats");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let answer: Value = server
        .client
        .post(&url)
        .json(
            &json!({"jsonrpc": "2.0", "id": 7, "method": "message/send", "params": {
            "message": {"role": "user", "parts": [{"kind": "text", "text": "hello"}]}}}),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer["id"], 7);
    let text = answer["result"]["parts"][0]["text"].as_str().unwrap();
    assert!(text.contains("via provider \"platform\""), "{answer}");

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let (code, printed) = wait_exit(child, Duration::from_secs(5));
    assert_eq!(code, Some(0), "{printed}");
    assert!(printed.contains("registered"), "logs on stdout: {printed}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_known_model_without_a_provider_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(dir.path()).await;
    let config_dir = dir.path().join("config");
    let (id, bootstrap) = server
        .workspace(
            json!({"name": "coder", "runtime": "claude-code", "model": "moonshot/kimi-k2.6"}),
            &config_dir,
        )
        .await;
    // A config that lost its provider (hand-edited, or written by a broken tool).
    let path = config_dir.join("config.yaml");
    let stripped = std::fs::read_to_string(&path)
        .unwrap()
        .replace("provider: \"platform\"", "provider: null");
    std::fs::write(&path, stripped).unwrap();
    let (code, printed) = wait_exit(
        agent(&server, &id, &bootstrap, &config_dir),
        Duration::from_secs(10),
    );
    assert_eq!(code, Some(2), "{printed}");
    assert!(
        printed.contains("\"claude-code\"") && printed.contains("\"moonshot/kimi-k2.6\""),
        "{printed}"
    );
    let (_, row) = server
        .admin(reqwest::Method::GET, &format!("/workspaces/{id}"), None)
        .await;
    assert_eq!(row["status"], "provisioning", "it never registered");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_agent_stops_when_its_workspace_is_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(dir.path()).await;
    let config_dir = dir.path().join("config");
    let (id, bootstrap) = server
        .workspace(
            json!({"name": "federated", "runtime": "my-own-runtime"}),
            &config_dir,
        )
        .await;
    let child = agent(&server, &id, &bootstrap, &config_dir);
    let deadline = Instant::now() + Duration::from_secs(10);
    while server
        .admin(reqwest::Method::GET, &format!("/workspaces/{id}"), None)
        .await
        .1["status"]
        != "online"
    {
        assert!(Instant::now() < deadline, "never online");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (status, _) = server
        .admin(reqwest::Method::DELETE, &format!("/workspaces/{id}"), None)
        .await;
    assert_eq!(status, 200);
    let (code, printed) = wait_exit(child, Duration::from_secs(10));
    assert_eq!(code, Some(1), "{printed}");
    assert!(printed.contains("heartbeat"), "{printed}");
}

/// Wait (bounded) until workspace `id` is online; its row.
async fn until_online(server: &Server, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, row) = server
            .admin(reqwest::Method::GET, &format!("/workspaces/{id}"), None)
            .await;
        if row["status"] == "online" {
            return row;
        }
        assert!(Instant::now() < deadline, "never online: {row}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn on_a_socket_the_agent_registers_the_sandbox_url_and_answers_there() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(dir.path()).await;
    let config_dir = dir.path().join("config");
    let (id, bootstrap) = server
        .workspace(
            json!({"name": "coder", "runtime": "claude-code", "model": "moonshot/kimi-k2.6"}),
            &config_dir,
        )
        .await;
    let a2a = dir.path().join("a2a");
    std::fs::create_dir_all(&a2a).unwrap();
    let socket = a2a.join("agent.sock");
    // What an earlier agent of the workspace left behind.
    drop(std::os::unix::net::UnixListener::bind(&socket).unwrap());
    let child = agent_with(
        &server,
        &id,
        &bootstrap,
        &config_dir,
        &[("HATCHERY_AGENT_SOCKET", socket.as_os_str())],
    );

    let row = until_online(&server, &id).await;
    assert_eq!(
        row["url"],
        format!("http://localhost/hatchery-sandbox/{id}"),
        "the registration rules accept it: {row}"
    );
    assert_eq!(row["agent_card"]["capabilities"]["streaming"], true);

    let client = reqwest::Client::builder()
        .unix_socket(socket.clone())
        .build()
        .unwrap();
    let card: Value = client
        .get("http://agent/.well-known/agent.json")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(card["capabilities"]["streaming"], true, "{card}");
    let send = |text: &str| {
        client
            .post("http://agent/")
            .header("X-Hatchery-Caller", "operator")
            .json(
                &json!({"jsonrpc": "2.0", "id": 1, "method": "message/send", "params": {
                "message": {"role": "user", "contextId": "ctx-1",
                            "parts": [{"kind": "text", "text": text}]}}}),
            )
            .send()
    };
    let first: Value = send("hello").await.unwrap().json().await.unwrap();
    assert_eq!(first["result"]["contextId"], "ctx-1", "{first}");
    let text = first["result"]["parts"][0]["text"].as_str().unwrap();
    assert!(
        text.starts_with("turn 1 of this conversation; you said: hello;"),
        "{text}"
    );
    assert!(text.ends_with("via provider \"platform\""), "{text}");
    let second: Value = send("again").await.unwrap().json().await.unwrap();
    let text = second["result"]["parts"][0]["text"].as_str().unwrap();
    assert!(text.starts_with("turn 2 of this conversation;"), "{text}");

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let (code, printed) = wait_exit(child, Duration::from_secs(5));
    assert_eq!(code, Some(0), "{printed}");
    assert!(!socket.exists(), "the socket goes with the agent");
}
