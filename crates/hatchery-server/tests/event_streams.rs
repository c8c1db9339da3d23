//! Live event streams against the real server on SQLite and Postgres: the cursor of
//! `/events?after=`, SSE resume with `Last-Event-ID` losing nothing, and a stalled
//! subscriber that neither delays the others nor loses what was logged.

mod common;

use std::time::Duration;

use common::{Db, Env, Running, TOKEN, spawn};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt as _;

hatchery_testkit::both_databases!(
    cursor_pages_forward_without_gaps,
    sse_resumes_from_last_event_id_without_loss,
    a_stalled_subscriber_delays_nobody_and_catches_up,
    workspace_stream_is_gated_and_filtered,
    websocket_admin_sees_all_and_a_caller_only_what_it_reaches,
);

/// One SSE message.
#[derive(Debug, Clone, Default)]
struct Message {
    id: Option<i64>,
    event: Option<String>,
    data: Value,
}

/// Reads SSE messages off a streaming response.
struct SseReader {
    response: reqwest::Response,
    buffer: String,
}

impl SseReader {
    async fn open(
        server: &Running,
        path: &str,
        token: Option<&str>,
        last_event_id: Option<i64>,
    ) -> Self {
        let mut request = server.client.get(format!("{}{path}", server.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(id) = last_event_id {
            request = request.header("Last-Event-ID", id.to_string());
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        Self {
            response,
            buffer: String::new(),
        }
    }

    /// The next message with data (comments and keep-alives skipped); panics after 10 s.
    async fn next(&mut self) -> Message {
        tokio::time::timeout(Duration::from_secs(10), self.next_inner())
            .await
            .expect("an event within 10 s")
    }

    async fn next_inner(&mut self) -> Message {
        loop {
            while let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut message = Message::default();
                let mut has_data = false;
                for line in block.lines() {
                    if let Some(id) = line
                        .strip_prefix("id: ")
                        .or_else(|| line.strip_prefix("id:"))
                    {
                        message.id = id.trim().parse().ok();
                    } else if let Some(event) = line
                        .strip_prefix("event: ")
                        .or_else(|| line.strip_prefix("event:"))
                    {
                        message.event = Some(event.trim().to_owned());
                    } else if let Some(data) = line
                        .strip_prefix("data: ")
                        .or_else(|| line.strip_prefix("data:"))
                    {
                        message.data = serde_json::from_str(data).unwrap();
                        has_data = true;
                    }
                }
                if has_data {
                    return message;
                }
            }
            let chunk = self
                .response
                .chunk()
                .await
                .unwrap()
                .expect("stream still open");
            self.buffer.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    }

    /// Messages until one of type `event_type` about `workspace` (inclusive).
    async fn until(&mut self, event_type: &str, workspace: &str) -> Vec<Message> {
        let mut seen = Vec::new();
        loop {
            let message = self.next().await;
            let done =
                message.data["type"] == event_type && message.data["workspace_id"] == workspace;
            seen.push(message);
            if done {
                return seen;
            }
        }
    }
}

async fn cursor_pages_forward_without_gaps(db: Db) {
    let env = Env::new(db).await;
    let server = spawn(env.config()).await;
    for i in 0..7 {
        server.create_named(&format!("w{i}")).await;
    }
    let mut after = 0;
    let mut names = Vec::new();
    loop {
        let (status, page) = server.get(&format!("/events?after={after}&limit=3")).await;
        assert_eq!(status, 200, "{page}");
        let page = page.as_array().unwrap().clone();
        if page.is_empty() {
            break;
        }
        for event in &page {
            let seq = event["seq"].as_i64().unwrap();
            assert!(seq > after, "strictly increasing");
            after = seq;
            names.push(event["payload"]["name"].as_str().unwrap().to_owned());
        }
    }
    assert_eq!(names, ["w0", "w1", "w2", "w3", "w4", "w5", "w6"]);
    let (status, body) = server.get("/events?after=-4").await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("invalid_cursor"))
    );
    // Without a cursor: the spec's newest-first listing.
    let (_, newest) = server.get("/events").await;
    assert_eq!(newest[0]["payload"]["name"], "w6");
}

async fn sse_resumes_from_last_event_id_without_loss(db: Db) {
    let env = Env::new(db).await;
    let server = spawn(env.config()).await;
    let before = server.create_named("before").await;
    let mut stream = SseReader::open(&server, "/events/stream", Some(TOKEN), None).await;
    let first = server.create_named("first").await;
    let seen = stream.until("WORKSPACE_PROVISIONING", &first).await;
    assert!(
        seen.iter()
            .all(|m| m.data["workspace_id"] != before.as_str()),
        "a fresh stream starts now, not at the beginning of the log"
    );
    let last_id = seen
        .last()
        .unwrap()
        .id
        .expect("persisted events carry their cursor");
    drop(stream);

    // Disconnected: these happen while nobody listens.
    let mut missed = Vec::new();
    for name in ["m1", "m2", "m3"] {
        missed.push(server.create_named(name).await);
    }
    let mut resumed = SseReader::open(&server, "/events/stream", Some(TOKEN), Some(last_id)).await;
    let mut got = Vec::new();
    let mut ids = Vec::new();
    while got.len() < 3 {
        let message = resumed.next().await;
        ids.push(message.id.unwrap());
        got.push(message.data["workspace_id"].as_str().unwrap().to_owned());
    }
    assert_eq!(got, missed, "exactly the missed events, in order");
    assert!(ids.windows(2).all(|w| w[0] < w[1]) && ids[0] > last_id);
    // And live ones keep coming after the catch-up, each once.
    let live = server.create_named("live").await;
    let seen = resumed.until("WORKSPACE_PROVISIONING", &live).await;
    assert_eq!(seen.len(), 1, "{seen:?}");
    // The SSE data format: type, workspace_id, unix-ms timestamp, payload.
    let data = &seen[0].data;
    assert_eq!(
        data["data"],
        json!({"name": "live", "tier": 2, "runtime": "langgraph"})
    );
    assert!(data["timestamp"].as_i64().unwrap() > 1_700_000_000_000);

    // ?after= works too (clients without Last-Event-ID support).
    let mut from_query = SseReader::open(
        &server,
        &format!("/events/stream?after={last_id}"),
        Some(TOKEN),
        None,
    )
    .await;
    assert_eq!(
        from_query.next().await.data["workspace_id"],
        missed[0].as_str()
    );

    // A cursor from the future (a reset database, a made-up id) does not hide new events.
    let mut future = SseReader::open(&server, "/events/stream", Some(TOKEN), Some(1_000_000)).await;
    let fresh = server.create_named("fresh").await;
    assert_eq!(
        future.until("WORKSPACE_PROVISIONING", &fresh).await.len(),
        1
    );

    // Streams need the admin credential.
    let (status, _) = server.get_as("/events/stream", None).await;
    assert_eq!(status, 401);
}

async fn a_stalled_subscriber_delays_nobody_and_catches_up(db: Db) {
    const CARDS: usize = 200;
    const BUFFER_BYTES: usize = 4 << 20;
    let env = Env::new(db).await;
    let mut config = env.config();
    // Bounded in bytes (the count bound, thousands of batches, is never reached here).
    config.event_buffer.bytes = BUFFER_BYTES;
    let server = spawn(config).await;
    let id = server.create_named("w").await;
    let token = mint_token(&server, &id).await;

    // The stalled subscriber: asks for the stream and never reads a byte.
    let stalled = stalled_subscriber(&server).await;
    let mut fast = SseReader::open(&server, "/events/stream", Some(TOKEN), None).await;
    // Give the stalled request time to subscribe.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let first_marker = server.create_named("start").await;
    fast.until("WORKSPACE_PROVISIONING", &first_marker).await;
    // The fast subscriber reads all along, as a live client does.
    let fast_reader = tokio::spawn(async move {
        let mut seen = Vec::new();
        loop {
            let message = fast.next().await;
            let done = message.data["data"]["name"] == "after the flood";
            seen.push(message);
            if done {
                return seen;
            }
        }
    });

    // Big logged events (12 MB in all) fill the stalled socket's buffers and overflow the
    // hub's byte budget; many heartbeats follow.
    flood_with_cards(&server, &id, &token, CARDS).await;
    for _ in 0..200 {
        let (status, _) = server
            .post_as(
                "/registry/heartbeat",
                &json!({"workspace_id": id, "current_task": ""}),
                Some(&token),
            )
            .await;
        assert_eq!(status, 200);
    }
    // The flood was twelve times the buffer: the hub kept within its budget.
    let buffered = gauge(&server, "hatchery_event_buffer_bytes").await;
    assert!(
        buffered > 0 && buffered <= BUFFER_BYTES,
        "event buffer holds {buffered} bytes, budget {BUFFER_BYTES}"
    );
    let marker = server.create_named("after the flood").await;
    // The fast subscriber gets everything, in order, and the marker promptly (`next`
    // fails after 10 s): the stalled one holds nobody up.
    let seen = fast_reader.await.unwrap();
    assert_eq!(seen.last().unwrap().data["workspace_id"], marker.as_str());
    let cards = seen
        .iter()
        .filter(|m| m.data["type"] == "AGENT_CARD_UPDATED")
        .count();
    assert_eq!(cards, CARDS, "a subscriber that keeps up misses nothing");
    assert!(seen.iter().all(|m| m.event.as_deref() != Some("lagged")));

    // Now the stalled subscriber reads: it is told it lagged, then catches up from the
    // log, so every logged event still reaches it.
    let mut raw = String::new();
    let mut lagged = false;
    let mut cards_seen = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut buffer = vec![0u8; 1 << 20];
    let mut reader = tokio::io::BufReader::new(stalled);
    while !raw.contains(&marker) {
        use tokio::io::AsyncReadExt as _;
        let read = tokio::time::timeout_at(deadline, reader.read(&mut buffer))
            .await
            .expect("the stalled subscriber catches up within 20 s")
            .unwrap();
        assert!(read > 0, "stream closed early");
        raw.push_str(&String::from_utf8_lossy(&buffer[..read]));
        // Count whole events only, and keep the tail for the next read.
        if let Some(end) = raw.rfind("\n\n") {
            let complete: String = raw.drain(..end + 2).collect();
            lagged |= complete.contains("event: lagged");
            cards_seen += complete.matches("\"type\":\"AGENT_CARD_UPDATED\"").count();
            if complete.contains(&marker) {
                break;
            }
        }
    }
    assert!(lagged, "the stalled subscriber was told it fell behind");
    assert_eq!(cards_seen, CARDS, "and lost none of the logged events");
}

async fn workspace_stream_is_gated_and_filtered(db: Db) {
    let env = Env::new(db).await;
    let server = spawn(env.config()).await;
    let mine = server.create_named("mine").await;
    let other = server.create_named("other").await;
    let token = server
        .post(&format!("/workspaces/{mine}/tokens"), &json!({}))
        .await
        .1["auth_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let other_token = server
        .post(&format!("/workspaces/{other}/tokens"), &json!({}))
        .await
        .1["auth_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, _) = server
        .get_as(
            &format!("/workspaces/{mine}/events/stream"),
            Some(&other_token),
        )
        .await;
    assert_eq!(status, 401);
    let mut stream = SseReader::open(
        &server,
        &format!("/workspaces/{mine}/events/stream"),
        Some(&token),
        Some(0),
    )
    .await;
    // From the beginning of the log (Last-Event-ID: 0): only this workspace's events.
    let first = stream.next().await;
    assert_eq!(first.data["type"], "WORKSPACE_PROVISIONING");
    assert_eq!(first.data["workspace_id"], mine.as_str());
    server
        .post(&format!("/workspaces/{other}/pause"), &json!({}))
        .await;
    server
        .post_as(
            "/registry/heartbeat",
            &json!({"workspace_id": mine, "current_task": "t"}),
            Some(&token),
        )
        .await;
    // Three events, in no guaranteed order between the broadcast-only ones (sent at once)
    // and the logged one (sent by the tailer).
    let mut by_type = std::collections::HashMap::new();
    for _ in 0..3 {
        let message = stream.next().await;
        assert_eq!(message.data["workspace_id"], mine.as_str(), "{message:?}");
        by_type.insert(message.data["type"].as_str().unwrap().to_owned(), message);
    }
    // Broadcast-only events carry no cursor.
    let task = &by_type["TASK_UPDATED"];
    assert_eq!(task.id, None);
    assert_eq!(
        task.data["data"],
        json!({"current_task": "t", "active_tasks": 0})
    );
    assert_eq!(by_type["WORKSPACE_HEARTBEAT"].id, None);
    // The heartbeat moved it out of provisioning: a logged event, with its cursor.
    assert!(by_type["WORKSPACE_ONLINE"].id.is_some());
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Open `/ws` with the given headers; the handshake's refusal status if it is refused.
async fn websocket(server: &Running, headers: &[(&str, &str)]) -> Result<Socket, u16> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
    let url = format!("{}/ws", server.base.replace("http://", "ws://"));
    let mut request = url.into_client_request().unwrap();
    for (name, value) in headers {
        request.headers_mut().insert(
            reqwest::header::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            value.parse().unwrap(),
        );
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok((socket, _)) => Ok(socket),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            Err(response.status().as_u16())
        }
        Err(other) => panic!("websocket: {other}"),
    }
}

/// The next text message as JSON (pings skipped); panics after 10 s.
async fn next_json(socket: &mut Socket) -> Value {
    use futures_util::StreamExt as _;
    loop {
        let message = tokio::time::timeout(Duration::from_secs(10), socket.next())
            .await
            .expect("a message within 10 s")
            .expect("socket open")
            .unwrap();
        if let tokio_tungstenite::tungstenite::Message::Text(text) = message {
            return serde_json::from_str(&text).unwrap();
        }
    }
}

#[allow(clippy::too_many_lines, reason = "one story, step by step")]
async fn websocket_admin_sees_all_and_a_caller_only_what_it_reaches(db: Db) {
    let env = Env::new(db).await;
    // The canvas's origin is one the operator named: outside dev mode no other page may
    // open the socket.
    let mut config = env.config();
    config.http.cors_origins = vec!["http://localhost:3000".to_owned()];
    let server = spawn(config).await;
    let pm = server.create_named("pm").await;
    let child = server
        .create(&json!({"name": "child", "parent_id": pm}))
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let other_root = server.create_named("other root").await;
    let stranger = server
        .create(&json!({"name": "stranger", "parent_id": other_root}))
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let child_token = server
        .post(&format!("/workspaces/{child}/tokens"), &json!({}))
        .await
        .1["auth_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let admin_bearer = format!("Bearer {TOKEN}");
    let child_bearer = format!("Bearer {child_token}");

    // Refusals at the handshake: no credential, a foreign browser origin, another's token.
    assert_eq!(websocket(&server, &[]).await.err(), Some(401));
    assert_eq!(
        websocket(
            &server,
            &[
                ("authorization", &admin_bearer),
                ("origin", "http://evil.example")
            ]
        )
        .await
        .err(),
        Some(403)
    );
    assert_eq!(
        websocket(
            &server,
            &[
                ("authorization", &child_bearer),
                ("x-workspace-id", &stranger)
            ]
        )
        .await
        .err(),
        Some(401)
    );

    let mut admin = websocket(
        &server,
        &[
            ("authorization", &admin_bearer),
            ("origin", "http://localhost:3000"),
        ],
    )
    .await
    .unwrap();
    let mut caller = websocket(
        &server,
        &[("authorization", &child_bearer), ("x-workspace-id", &child)],
    )
    .await
    .unwrap();
    // Something the child cannot reach, then something it can.
    server
        .post(&format!("/workspaces/{stranger}/pause"), &json!({}))
        .await;
    server
        .post(&format!("/workspaces/{pm}/pause"), &json!({}))
        .await;

    let first = next_json(&mut admin).await;
    assert_eq!(first["event"], "WORKSPACE_PAUSED");
    assert_eq!(first["workspace_id"], stranger.as_str());
    assert_eq!(first["payload"], json!({"name": "stranger"}));
    assert!(first["timestamp"].as_str().unwrap().ends_with('Z'));

    let mut heard = Vec::new();
    for _ in 0..2 {
        let message = next_json(&mut caller).await;
        assert_eq!(message["event"], "WORKSPACE_PAUSED");
        heard.push(message["workspace_id"].as_str().unwrap().to_owned());
    }
    heard.sort();
    let mut expected = vec![pm.clone(), child.clone()];
    expected.sort();
    assert_eq!(
        heard, expected,
        "the pause of pm and of its child; never the stranger's"
    );

    // WebSocket messages carry their cursor; a reconnect with ?after= resumes there.
    let cursor = first["seq"].as_i64().expect("a logged event's seq");
    drop(admin);
    server
        .post(&format!("/workspaces/{other_root}/pause"), &json!({}))
        .await;
    let url_after = format!(
        "{}/ws?after={cursor}",
        server.base.replace("http://", "ws://")
    );
    let mut request = {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
        url_after.into_client_request().unwrap()
    };
    request
        .headers_mut()
        .insert("authorization", admin_bearer.parse().unwrap());
    let (mut resumed, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let mut seen = Vec::new();
    for _ in 0..3 {
        let message = next_json(&mut resumed).await;
        assert_eq!(message["event"], "WORKSPACE_PAUSED", "{message}");
        seen.push(message["workspace_id"].as_str().unwrap().to_owned());
    }
    assert_eq!(
        seen,
        [pm.clone(), child.clone(), other_root.clone()],
        "after the cursor, in order, including what was missed"
    );
}

/// A gauge of `/metrics`.
async fn gauge(server: &Running, name: &str) -> usize {
    let (status, metrics) = server.get("/metrics").await;
    assert_eq!(status, 200);
    let metrics = metrics.as_str().unwrap_or_default();
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {metrics}"))
}

/// The live subscriber count.
async fn subscribers(server: &Running) -> usize {
    gauge(server, "hatchery_event_subscribers").await
}

/// A new token for workspace `id`.
async fn mint_token(server: &Running, id: &str) -> String {
    server
        .post(&format!("/workspaces/{id}/tokens"), &json!({}))
        .await
        .1["auth_token"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Workspace `id` updates its card `count` times, each card just under the limit (64 KiB).
async fn flood_with_cards(server: &Running, id: &str, token: &str, count: usize) {
    let card = json!({"name": "big", "blob": "x".repeat(60_000)});
    for _ in 0..count {
        let (status, body) = server
            .post_as(
                "/registry/update-card",
                &json!({"workspace_id": id, "agent_card": card}),
                Some(token),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }
}

/// Ask for the admin's event stream on a raw connection, and read nothing.
async fn stalled_subscriber(server: &Running) -> tokio::net::TcpStream {
    let address = server.base.trim_start_matches("http://").to_owned();
    let mut stalled = tokio::net::TcpStream::connect(&address).await.unwrap();
    stalled
        .write_all(
            format!("GET /events/stream HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {TOKEN}\r\n\r\n")
                .as_bytes(),
        )
        .await
        .unwrap();
    stalled
}

#[tokio::test]
async fn a_subscriber_that_reads_nothing_is_disconnected_after_the_write_timeout() {
    let env = Env::new(Db::Sqlite).await;
    let mut config = env.config();
    config.http.connections.write_timeout = Duration::from_secs(1);
    let server = spawn(config).await;
    let id = server.create_named("w").await;
    let token = mint_token(&server, &id).await;
    let stalled = stalled_subscriber(&server).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while subscribers(&server).await == 0 {
        assert!(tokio::time::Instant::now() < deadline, "never subscribed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // More than loopback's socket buffers hold, so writes to the stalled one wait.
    flood_with_cards(&server, &id, &token, 300).await;
    // Its connection is closed a second or so after its writes stopped going through.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while subscribers(&server).await > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "a subscriber that reads nothing is still connected"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(stalled);
}
