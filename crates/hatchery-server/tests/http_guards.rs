//! What every request passes before its route, on the real server: bodies must be JSON;
//! dev mode answers only requests addressed to loopback from pages on loopback (no DNS
//! rebinding, no cross-site calls); CORS is off unless origins are named, and then answers
//! their preflights; a request has a deadline, headers have one, and connections are
//! capped — slow and idle clients do not keep others out.

mod common;

use std::time::Duration;

use common::{Db, Env, Running, spawn};
use serde_json::json;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

const CANVAS: &str = "https://canvas.example.com";

/// A raw connection to the server's port.
async fn connect(server: &Running) -> tokio::net::TcpStream {
    tokio::net::TcpStream::connect(server.base.trim_start_matches("http://"))
        .await
        .unwrap()
}

/// Read until the server closes or answers; what it sent (empty: closed without a word).
async fn read_answer(stream: &mut tokio::net::TcpStream, patience: Duration) -> Option<String> {
    let mut answer = Vec::new();
    let mut buffer = [0u8; 4096];
    tokio::time::timeout(patience, async {
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    answer.extend_from_slice(&buffer[..n]);
                    if answer.windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
                }
            }
        }
    })
    .await
    .ok()?;
    Some(String::from_utf8_lossy(&answer).into_owned())
}

/// `GET /health` on a connection of its own: a pooled one may be an idle connection the
/// server is closing at that very moment, which is what this file tests.
async fn health(server: &Running) -> (u16, serde_json::Value) {
    let response = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap()
        .get(format!("{}/health", server.base))
        .send()
        .await
        .unwrap();
    (
        response.status().as_u16(),
        response.json().await.unwrap_or_default(),
    )
}

/// This process's soft limit on open files.
fn open_files_limit() -> usize {
    std::fs::read_to_string("/proc/self/limits")
        .unwrap()
        .lines()
        .find(|line| line.starts_with("Max open files"))
        .and_then(|line| line.split_whitespace().nth(3))
        .and_then(|soft| soft.parse().ok())
        .unwrap_or(1024)
}

/// This process's resident memory, in KiB.
fn resident_kib() -> usize {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn a_body_must_be_json_and_nothing_else_is_written() {
    let env = Env::new(Db::Sqlite).await;
    let server = spawn(env.config()).await;
    for content_type in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
    ] {
        let mut request = server
            .client
            .post(format!("{}/workspaces", server.base))
            .bearer_auth(common::TOKEN)
            .body(r#"{"name": "sneaky"}"#);
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 415, "{content_type:?}");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["code"], "unsupported_media_type", "{body}");
    }
    assert_eq!(server.counts().await.0, 0, "nothing was created");
    // JSON, with a charset, goes through; so does a bodiless POST.
    let response = server
        .client
        .post(format!("{}/workspaces", server.base))
        .bearer_auth(common::TOKEN)
        .header("content-type", "application/json; charset=utf-8")
        .body(r#"{"name": "fine"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let created: serde_json::Value = response.json().await.unwrap();
    let response = server
        .client
        .post(format!(
            "{}/workspaces/{}/pause",
            server.base,
            created["id"].as_str().unwrap()
        ))
        .bearer_auth(common::TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "no body, no content type needed");
}

#[tokio::test]
async fn dev_mode_answers_only_loopback_hosts_and_pages() {
    let env = Env::new(Db::Sqlite).await;
    let mut config = env.config();
    config.dev = true;
    config.admin_token = None;
    let server = spawn(config).await;
    let get = |host: Option<&'static str>, origin: Option<&'static str>| {
        let mut request = server.client.get(format!("{}/workspaces", server.base));
        if let Some(host) = host {
            request = request.header("host", host);
        }
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let body: serde_json::Value = response.json().await.unwrap_or_default();
            (status, body["code"].as_str().unwrap_or_default().to_owned())
        }
    };
    // DNS rebinding: a name of the attacker's that resolves to 127.0.0.1.
    assert_eq!(
        get(Some("rebind.evil.example:8080"), None).await,
        (403, "host_not_allowed".to_owned())
    );
    assert_eq!(
        get(None, Some("https://evil.example")).await,
        (403, "origin_not_allowed".to_owned())
    );
    assert_eq!(get(None, Some("null")).await.0, 403);
    assert_eq!(get(Some("localhost:1234"), None).await.0, 200);
    assert_eq!(get(None, Some("http://localhost:3000")).await.0, 200);
    assert_eq!(get(None, None).await.0, 200);
    // A cross-site form post is refused before it reaches anything.
    let response = server
        .client
        .post(format!("{}/workspaces", server.base))
        .header("origin", "https://evil.example")
        .header("content-type", "application/json")
        .json(&json!({"name": "csrf"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    assert_eq!(server.counts().await.0, 0);
    server.stop().await;

    // Agents on the host's network reach loopback: in dev mode they would be the operator.
    let mut config = env.config();
    config.dev = true;
    config.admin_token = None;
    config.backend = hatchery_server::BackendChoice::Local {
        launch: hatchery_provision::AgentLaunch {
            host_network: std::collections::HashSet::from(["openclaw".to_owned()]),
            ..hatchery_provision::AgentLaunch::new(vec!["/bin/true".to_owned()])
        },
    };
    let refused = hatchery_server::Application::build(config).await.err();
    assert!(
        refused.is_some_and(|e| e.to_string().contains("openclaw")),
        "dev mode with host-network runtimes must not start"
    );
}

/// A preflight from `origin`; the `Access-Control-Allow-Origin` answered, if any.
async fn preflight(server: &Running, origin: &str) -> (u16, Option<String>, Option<String>) {
    let response = server
        .client
        .request(
            reqwest::Method::OPTIONS,
            format!("{}/workspaces", server.base),
        )
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization,content-type",
        )
        .send()
        .await
        .unwrap();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    (
        response.status().as_u16(),
        header("access-control-allow-origin"),
        header("access-control-allow-credentials"),
    )
}

#[tokio::test]
async fn cors_is_off_unless_origins_are_named() {
    let env = Env::new(Db::Sqlite).await;
    let server = spawn(env.config()).await;
    assert_eq!(preflight(&server, CANVAS).await.1, None, "off by default");
    server.stop().await;

    let mut config = env.config();
    config.http.cors_origins = vec![CANVAS.to_owned()];
    let server = spawn(config).await;
    let (status, allowed, credentials) = preflight(&server, CANVAS).await;
    assert_eq!(status, 200);
    assert_eq!(allowed.as_deref(), Some(CANVAS));
    assert_eq!(credentials.as_deref(), Some("true"));
    assert_eq!(preflight(&server, "https://evil.example").await.1, None);
    // An actual call from the named origin carries the header too.
    let response = server
        .client
        .get(format!("{}/workspaces", server.base))
        .bearer_auth(common::TOKEN)
        .header("origin", CANVAS)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["access-control-allow-origin"]
            .to_str()
            .unwrap(),
        CANVAS
    );

    let mut config = env.config();
    config.http.cors_origins = vec!["*".to_owned()];
    assert!(
        hatchery_server::Application::build(config).await.is_err(),
        "a wildcard with credentials is refused at start"
    );
}

#[tokio::test]
async fn slow_bodies_slow_headers_and_idle_connections_are_cut_and_others_still_served() {
    let env = Env::new(Db::Sqlite).await;
    let mut config = env.config();
    config.http.request_timeout = Duration::from_secs(1);
    config.http.connections.header_timeout = Duration::from_secs(1);
    let server = spawn(config).await;

    // A slow-loris body: headers promise 100 bytes, one arrives.
    let mut slow_body = connect(&server).await;
    slow_body
        .write_all(
            format!(
                "POST /workspaces HTTP/1.1\r\nhost: localhost\r\nauthorization: Bearer {}\r\n\
                 content-type: application/json\r\ncontent-length: 100\r\n\r\n{{",
                common::TOKEN
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let answer = read_answer(&mut slow_body, Duration::from_secs(5))
        .await
        .expect("answered within the deadline");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");

    // Headers that never end, and connections that never send a thing: closed.
    let mut slow_headers = connect(&server).await;
    slow_headers
        .write_all(b"GET /health HTTP/1.1\r\nhost: local")
        .await
        .unwrap();
    // A thousand connections that never send a byte (fewer if this process may not open
    // two thousand files: each is two here, the client's end and the server's).
    let idle_count = open_files_limit().saturating_sub(256).min(2000) / 2;
    let before = resident_kib();
    let mut idle = Vec::new();
    for _ in 0..idle_count {
        idle.push(connect(&server).await);
    }
    // Meanwhile, others are served at once, and the idle ones cost little.
    let (status, _) = tokio::time::timeout(Duration::from_secs(5), health(&server))
        .await
        .expect("served beside a thousand idle connections");
    assert_eq!(status, 200);
    let grown = resident_kib().saturating_sub(before);
    eprintln!("{idle_count} idle connections: {grown} KiB more resident (both ends)");
    assert!(
        grown < 64 * 1024,
        "{idle_count} idle connections cost {grown} KiB"
    );
    assert!(
        read_answer(&mut slow_headers, Duration::from_secs(5))
            .await
            .is_some(),
        "slow headers are cut"
    );
    for connection in &mut idle {
        assert!(
            read_answer(connection, Duration::from_secs(5))
                .await
                .is_some_and(|a| !a.starts_with("HTTP/1.1 200")),
            "an idle connection is closed"
        );
    }
    // Their places are free again.
    let (status, _) = health(&server).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn past_the_connection_cap_new_clients_wait_until_a_place_frees() {
    let env = Env::new(Db::Sqlite).await;
    let mut config = env.config();
    config.http.connections.max_connections = 2;
    let server = spawn(config).await;
    let first = connect(&server).await;
    let second = connect(&server).await;
    // Both places are taken (each waits for its headers): a third client is not served.
    let waiting = tokio::time::timeout(Duration::from_millis(700), server.get("/health")).await;
    assert!(waiting.is_err(), "served past the cap: {waiting:?}");
    drop(first);
    let (status, _) = tokio::time::timeout(Duration::from_secs(5), server.get("/health"))
        .await
        .expect("served once a place is free");
    assert_eq!(status, 200);
    drop(second);

    // A connection upgraded to a WebSocket keeps its place while it lives.
    let server = {
        server.stop().await;
        let mut config = env.config();
        config.http.connections.max_connections = 1;
        spawn(config).await
    };
    let socket = {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
        let mut request = format!("{}/ws", server.base.replace("http://", "ws://"))
            .into_client_request()
            .unwrap();
        request.headers_mut().insert(
            "authorization",
            format!("Bearer {}", common::TOKEN).parse().unwrap(),
        );
        tokio_tungstenite::connect_async(request).await.unwrap().0
    };
    let waiting = tokio::time::timeout(Duration::from_millis(700), server.get("/health")).await;
    assert!(
        waiting.is_err(),
        "served past the cap beside a WebSocket: {waiting:?}"
    );
    drop(socket);
    let (status, _) = tokio::time::timeout(Duration::from_secs(5), server.get("/health"))
        .await
        .expect("served once the WebSocket is gone");
    assert_eq!(status, 200);
}
