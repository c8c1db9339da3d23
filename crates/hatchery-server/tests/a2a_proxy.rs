//! The A2A proxy (`POST /workspaces/:id/a2a`) against the real server on SQLite and
//! Postgres, with agents that are small HTTP servers of the test's own, registered by URL
//! as external agents are: the gate and the org tree, Molecule's wrapping, each fault with
//! its status and body, the traces on both sides, `A2A_RESPONSE`, and `message/stream`
//! relayed as it comes.

mod common;

use std::time::{Duration, Instant};

use common::fake_agent::{Agent, Behaviour, online, register};
use common::{Db, Env, Running, TOKEN, spawn};
use hatchery_server::ServerConfig;
use serde_json::{Value, json};

hatchery_testkit::both_databases!(
    an_operator_message_is_wrapped_delivered_answered_and_traced,
    a_workspace_reaches_exactly_what_its_tree_allows_with_its_own_token,
    a_message_that_cannot_be_delivered_is_refused_before_it_is_sent,
    an_agent_that_fails_is_answered_for_in_words_and_traced,
);

/// The server of these tests: an idle timeout short enough to wait out.
fn config(env: &Env) -> ServerConfig {
    let mut config = env.config();
    config.supervision.a2a_idle_timeout = Duration::from_millis(600);
    config
}

/// `POST /workspaces/{target}/a2a` with `body`, as `caller` (with `token`), or as the
/// operator when no caller is named.
async fn send(
    server: &Running,
    target: &str,
    caller: Option<&str>,
    token: Option<&str>,
    body: &Value,
) -> reqwest::Response {
    let mut request = server
        .client
        .post(format!("{}/workspaces/{target}/a2a", server.base))
        .json(body);
    if let Some(caller) = caller {
        request = request.header("x-workspace-id", caller);
    }
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.unwrap()
}

async fn json_of(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// What the canvas sends: no `jsonrpc`, no `messageId`.
fn canvas_message(text: &str) -> Value {
    json!({"method": "message/send", "params": {"message": {"role": "user",
        "parts": [{"kind": "text", "text": text}]}, "metadata": {"history": []}}})
}

async fn activity(server: &Running, id: &str, query: &str) -> Vec<Value> {
    let (status, rows) = server
        .get(&format!("/workspaces/{id}/activity?{query}"))
        .await;
    assert_eq!(status, 200, "{rows}");
    rows.as_array().cloned().unwrap_or_default()
}

async fn an_operator_message_is_wrapped_delivered_answered_and_traced(db: Db) {
    let env = Env::new(db).await;
    let server = spawn(config(&env)).await;
    let agent = Agent::start().await;
    let (pm, _) = online(&server, "PM", None, &agent).await;
    let mut events = server
        .client
        .get(format!("{}/workspaces/{pm}/events/stream", server.base))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(events.status(), 200);

    let response = send(&server, &pm, None, Some(TOKEN), &canvas_message("hello")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    let (_, answer) = json_of(response).await;
    assert_eq!(answer["result"]["parts"][0]["text"], "you said: hello");

    // Wrapped as Molecule wraps it; nothing of the caller's reaches the agent.
    let (headers, request) = agent.last();
    assert_eq!(request["jsonrpc"], "2.0");
    assert!(
        uuid::Uuid::parse_str(request["id"].as_str().unwrap()).is_ok(),
        "{request}"
    );
    assert_eq!(request["method"], "message/send");
    assert!(
        request["params"]["message"]["messageId"].is_string(),
        "{request}"
    );
    assert_eq!(request["params"]["metadata"], json!({"history": []}));
    assert!(headers.get("authorization").is_none(), "{headers:?}");
    assert_eq!(headers["x-hatchery-caller"], "operator");
    assert_eq!(answer["id"], request["id"]);

    // A JSON-RPC request passes as it is, its id kept.
    let full = json!({"jsonrpc": "2.0", "id": 7, "method": "message/send",
        "params": {"message": {"role": "user", "messageId": "m-7", "parts": [{"kind": "text", "text": "again"}]}}});
    let (status, answer) = json_of(send(&server, &pm, None, Some(TOKEN), &full).await).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["id"], 7);
    assert_eq!(agent.last().1, full);

    // The canvas's chat history: the operator's calls, with both bodies. (The tests' clock
    // stands still: rows of one instant come in no particular order.)
    let history = activity(&server, &pm, "type=a2a_receive&source=canvas").await;
    assert_eq!(history.len(), 2, "{history:?}");
    let first = history
        .iter()
        .find(|row| row["request_body"]["params"]["message"]["parts"][0]["text"] == "hello")
        .expect("the first message is in the history");
    assert_eq!(first["source_id"], Value::Null);
    assert_eq!(first["target_id"], pm.as_str());
    assert_eq!(first["method"], "message/send");
    assert_eq!(first["status"], "ok");
    assert_eq!(first["summary"], "message/send → PM");
    assert!(first["duration_ms"].is_i64(), "{first}");
    assert_eq!(
        first["request_body"]["params"]["message"]["parts"][0]["text"],
        "hello"
    );
    assert_eq!(
        first["response_body"]["result"]["parts"][0]["text"],
        "you said: hello"
    );
    assert!(activity(&server, &pm, "type=a2a_send").await.is_empty());

    // The canvas hears the answer on the event stream.
    let mut seen = String::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !seen.contains("A2A_RESPONSE") {
        let left = deadline.saturating_duration_since(Instant::now());
        let chunk = tokio::time::timeout(left, events.chunk())
            .await
            .expect("A2A_RESPONSE within 10 s")
            .unwrap()
            .expect("the stream stays open");
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    let line = seen
        .lines()
        .find(|l| l.contains("A2A_RESPONSE"))
        .unwrap()
        .trim_start_matches("data:")
        .trim();
    let event: Value = serde_json::from_str(line).unwrap();
    assert_eq!(event["workspace_id"], pm.as_str());
    assert_eq!(event["data"]["method"], "message/send");
    assert_eq!(
        event["data"]["response_body"]["result"]["parts"][0]["text"],
        "you said: hello"
    );
    assert!(event["data"]["duration_ms"].is_i64(), "{event}");
}

async fn a_workspace_reaches_exactly_what_its_tree_allows_with_its_own_token(db: Db) {
    let env = Env::new(db).await;
    let server = spawn(config(&env)).await;
    let agent = Agent::start().await;
    let (pm, pm_token) = online(&server, "PM", None, &agent).await;
    let (a, a_token) = online(&server, "Researcher A", Some(&pm), &agent).await;
    let (b, b_token) = online(&server, "Writer", Some(&pm), &agent).await;
    let (x, _) = online(&server, "Other team", None, &agent).await;
    let (y, y_token) = online(&server, "Outsider", Some(&x), &agent).await;

    // Siblings, parent and child reach each other, each with its own token.
    for (caller, token, target) in [
        (&a, &a_token, &b),
        (&a, &a_token, &pm),
        (&pm, &pm_token, &a),
    ] {
        let response = send(
            &server,
            target,
            Some(caller),
            Some(token),
            &canvas_message("hi"),
        )
        .await;
        let (status, body) = json_of(response).await;
        assert_eq!(status, 200, "{caller} → {target}: {body}");
        assert_eq!(agent.last().0["x-hatchery-caller"], caller.as_str());
    }
    // Both sides traced.
    let received = activity(&server, &b, "type=a2a_receive").await;
    assert_eq!(received.len(), 1, "{received:?}");
    assert_eq!(received[0]["source_id"], a.as_str());
    let sent = activity(&server, &a, "type=a2a_send").await;
    assert_eq!(sent.len(), 2, "{sent:?}");
    assert!(sent.iter().any(|row| row["target_id"] == b.as_str()));
    assert_eq!(
        activity(&server, &b, "type=a2a_receive&source=canvas")
            .await
            .len(),
        0
    );

    let delivered = agent.count();
    // Another team's member may not.
    let (status, body) =
        json_of(send(&server, &a, Some(&y), Some(&y_token), &canvas_message("hi")).await).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["code"], "not_reachable");
    assert_eq!(
        body["error"],
        "access denied: workspaces cannot communicate per hierarchy rules"
    );
    // A forged caller: another workspace's token, or none.
    let (status, body) =
        json_of(send(&server, &b, Some(&a), Some(&b_token), &canvas_message("hi")).await).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["code"], "invalid_workspace_token");
    let (status, body) =
        json_of(send(&server, &b, Some(&a), None, &canvas_message("hi")).await).await;
    assert_eq!(status, 401, "{body}");
    // Without X-Workspace-ID the caller is the operator: a workspace token is not the admin's.
    let (status, body) =
        json_of(send(&server, &b, None, Some(&a_token), &canvas_message("hi")).await).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["code"], "invalid_admin_token");
    let (status, body) = json_of(send(&server, &b, None, None, &canvas_message("hi")).await).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["code"], "admin_auth_required");
    let (status, body) = json_of(
        send(
            &server,
            &b,
            Some("webhook:x"),
            Some(&a_token),
            &canvas_message("hi"),
        )
        .await,
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(agent.count(), delivered, "no refused call reached an agent");
}

async fn a_message_that_cannot_be_delivered_is_refused_before_it_is_sent(db: Db) {
    let env = Env::new(db).await;
    let server = spawn(config(&env)).await;
    let agent = Agent::start().await;
    let (writer, _) = online(&server, "Writer", None, &agent).await;

    // Not up: 503 with its status and when to ask again; nothing delivered, nothing traced.
    let waiting = server.create_named("Waiting").await;
    let response = send(&server, &waiting, None, Some(TOKEN), &canvas_message("hi")).await;
    assert_eq!(response.status(), 503);
    assert!(response.headers().contains_key("retry-after"));
    let (_, body) = json_of(response).await;
    assert_eq!(body["error"], "workspace not available");
    assert_eq!(body["code"], "workspace_not_available");
    assert!(body["status"].is_string(), "{body}");
    let (status, _) = server
        .post(&format!("/workspaces/{writer}/pause"), &json!({}))
        .await;
    assert_eq!(status, 200);
    let (status, body) =
        json_of(send(&server, &writer, None, Some(TOKEN), &canvas_message("hi")).await).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (503, Some("paused")),
        "{body}"
    );
    assert_eq!(agent.count(), 0);
    assert!(
        activity(&server, &writer, "type=a2a_receive")
            .await
            .is_empty()
    );
    let (status, _) = server
        .post(&format!("/workspaces/{writer}/resume"), &json!({}))
        .await;
    assert_eq!(status, 200);

    // Unknown and removed: 404.
    let unknown = "00000000-0000-4000-8000-000000000000";
    let (status, body) =
        json_of(send(&server, unknown, None, Some(TOKEN), &canvas_message("hi")).await).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (404, Some("workspace_not_found")),
        "{body}"
    );
    let (gone, _) = online(&server, "Gone", None, &agent).await;
    let (status, _) = server.delete(&format!("/workspaces/{gone}")).await;
    assert_eq!(status, 200);
    let (status, _) =
        json_of(send(&server, &gone, None, Some(TOKEN), &canvas_message("hi")).await).await;
    assert_eq!(status, 404);

    // Not JSON: 400, before anything is sent.
    let response = server
        .client
        .post(format!("{}/workspaces/{writer}/a2a", server.base))
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body("not json")
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(response).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid JSON")),
        "{body}"
    );
    assert_eq!(agent.count(), 0, "nothing refused reached an agent");
}

async fn an_agent_that_fails_is_answered_for_in_words_and_traced(db: Db) {
    let env = Env::new(db).await;
    let server = spawn(config(&env)).await;
    let agent = Agent::start().await;
    let (writer, _) = online(&server, "Writer again", None, &agent).await;

    // A JSON-RPC error passes through untouched, traced as an error.
    agent.behave(Behaviour::RpcError);
    let (status, body) =
        json_of(send(&server, &writer, None, Some(TOKEN), &canvas_message("hi")).await).await;
    assert_eq!(status, 200);
    assert_eq!(body["error"]["code"], -32601);

    // Garbage: 502 naming the workspace, without the agent's bytes.
    agent.behave(Behaviour::Garbage);
    let (status, body) =
        json_of(send(&server, &writer, None, Some(TOKEN), &canvas_message("hi")).await).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (502, Some("agent_bad_answer")),
        "{body}"
    );
    assert!(
        body["error"].as_str().unwrap().contains("Writer again"),
        "{body}"
    );
    assert_eq!(body["workspace"], "Writer again");
    assert!(!body.to_string().contains("secret internal page"), "{body}");

    // Silence beyond the idle timeout: 504.
    agent.behave(Behaviour::Slow(Duration::from_secs(3)));
    let started = Instant::now();
    let (status, body) =
        json_of(send(&server, &writer, None, Some(TOKEN), &canvas_message("hi")).await).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (504, Some("agent_timeout")),
        "{body}"
    );
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("did not answer within"),
        "{body}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "answered at the idle timeout"
    );

    // Nothing listening: 502.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let (orphan, orphan_token) = online(&server, "Orphan", None, &agent).await;
    let (status, body) = server
        .post_as(
            "/registry/update-card",
            &json!({"workspace_id": orphan, "agent_card": {"name": "Orphan"}}),
            Some(&orphan_token),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = server
        .post_as(
            "/registry/register",
            &json!({"id": orphan, "url": format!("http://localhost:{closed}/"), "agent_card": {"name": "Orphan"}}),
            Some(&orphan_token),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) =
        json_of(send(&server, &orphan, None, Some(TOKEN), &canvas_message("hi")).await).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (502, Some("agent_unreachable")),
        "{body}"
    );
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains(&closed.to_string()),
        "{body}"
    );

    // Each delivered fault is in the target's activity, in words.
    let rows = activity(&server, &writer, "type=a2a_receive").await;
    let mut statuses: Vec<(&str, &str)> = rows
        .iter()
        .map(|r| {
            (
                r["status"].as_str().unwrap(),
                r["error_detail"].as_str().unwrap_or(""),
            )
        })
        .collect();
    statuses.sort_unstable();
    assert_eq!(
        statuses,
        [
            ("error", "HTTP 200, text/html, 33 bytes"),
            ("error", "method not found"),
            ("timeout", "no answer within 600ms"),
        ],
        "{rows:?}"
    );
}

#[tokio::test]
async fn message_stream_is_relayed_as_it_comes_and_a_silent_one_is_ended() {
    let env = Env::new(Db::Sqlite).await;
    let server = spawn(config(&env)).await;
    let agent = Agent::start().await;
    let (writer, _) = online(&server, "Writer", None, &agent).await;
    agent.behave(Behaviour::Stream(Duration::from_millis(300)));
    let body = json!({"jsonrpc": "2.0", "id": "s1", "method": "message/stream",
        "params": {"message": {"role": "user", "parts": [{"kind": "text", "text": "go"}]}}});
    let started = Instant::now();
    let mut response = send(&server, &writer, None, Some(TOKEN), &body).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let first = response.chunk().await.unwrap().expect("a first chunk");
    let first_at = started.elapsed();
    assert!(
        String::from_utf8_lossy(&first).contains("chunk0"),
        "{first:?}"
    );
    let mut rest = String::new();
    while let Some(chunk) = response.chunk().await.unwrap() {
        rest.push_str(&String::from_utf8_lossy(&chunk));
    }
    let last_at = started.elapsed();
    assert!(
        rest.contains("chunk2") && rest.contains("\"done\""),
        "{rest}"
    );
    assert!(
        last_at.saturating_sub(first_at) >= Duration::from_millis(600),
        "the first chunk came {first_at:?} in, the end {last_at:?}: gathered, not relayed"
    );
    assert_eq!(agent.last().0["accept"], "text/event-stream");

    // Traced once the stream ended, with its last event.
    let mut rows = Vec::new();
    for _ in 0..50 {
        rows = activity(&server, &writer, "type=a2a_receive").await;
        if !rows.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["method"], "message/stream");
    assert_eq!(rows[0]["status"], "ok");
    assert_eq!(
        rows[0]["response_body"]["result"]["parts"][0]["text"],
        "done"
    );

    // A stream that goes silent ends with a JSON-RPC error naming the workspace.
    agent.behave(Behaviour::StreamThenSilence);
    let mut response = send(&server, &writer, None, Some(TOKEN), &body).await;
    let mut text = String::new();
    while let Some(chunk) = tokio::time::timeout(Duration::from_secs(10), response.chunk())
        .await
        .expect("the stream ends")
        .unwrap()
    {
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    let last: Value = serde_json::from_str(
        text.trim_end()
            .rsplit("\n\n")
            .next()
            .unwrap()
            .trim_start_matches("data:")
            .trim(),
    )
    .unwrap();
    assert_eq!(last["id"], "s1");
    assert!(
        last["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Writer"),
        "{last}"
    );
}

#[tokio::test]
async fn a_slow_answer_outlives_the_request_deadline() {
    let env = Env::new(Db::Sqlite).await;
    let mut config = env.config();
    config.http.request_timeout = Duration::from_millis(500);
    config.supervision.a2a_idle_timeout = Duration::from_secs(10);
    let server = spawn(config).await;
    let agent = Agent::start().await;
    let (writer, _) = online(&server, "Writer", None, &agent).await;
    agent.behave(Behaviour::Slow(Duration::from_millis(1200)));
    let (status, body) =
        json_of(send(&server, &writer, None, Some(TOKEN), &canvas_message("hi")).await).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["result"]["parts"][0]["text"], "you said: hi");
}

/// A sandboxed agent registers a URL that means nothing outside its sandbox: discovery and
/// peer listings answer the proxy's route instead, and a replica that does not run the
/// sandbox says so rather than dial it.
#[tokio::test]
async fn a_sandboxed_agent_is_discovered_at_the_proxy() {
    let env = Env::new(Db::Sqlite).await;
    let server = spawn(config(&env)).await;
    let agent = Agent::start().await;
    let (pm, _) = online(&server, "PM", None, &agent).await;
    let (asker, asker_token) = online(&server, "Asker", Some(&pm), &agent).await;
    let sandboxed = agent.at(format!("http://localhost/hatchery-sandbox/{pm}"));
    let (boxed, _) = online(&server, "Boxed", Some(&pm), &sandboxed).await;
    let host = server.base.trim_start_matches("http://");

    let (status, found) = server
        .client
        .get(format!("{}/registry/discover/{boxed}", server.base))
        .header("x-workspace-id", &asker)
        .bearer_auth(&asker_token)
        .send()
        .await
        .map(|r| (r.status().as_u16(), r))
        .unwrap();
    assert_eq!(status, 200);
    let found: Value = found.json().await.unwrap();
    assert_eq!(
        found["url"],
        format!("http://{host}/workspaces/{boxed}/a2a")
    );
    let (status, peers) = server
        .get_as(&format!("/registry/{asker}/peers"), Some(&asker_token))
        .await;
    assert_eq!(status, 200, "{peers}");
    let urls: Vec<&str> = peers
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["url"].as_str())
        .collect();
    assert!(
        urls.contains(&format!("http://{host}/workspaces/{boxed}/a2a").as_str()),
        "{urls:?}"
    );
    assert!(
        urls.contains(&agent.url.as_str()),
        "an external agent keeps its URL: {urls:?}"
    );

    // No backend here runs its sandbox: refused in words, nothing dialed.
    let (status, body) =
        json_of(send(&server, &boxed, None, Some(TOKEN), &canvas_message("hi")).await).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (502, Some("agent_unreachable")),
        "{body}"
    );
    assert!(
        body["detail"].as_str().unwrap().contains("sandbox"),
        "{body}"
    );
}

/// An agent's message to the operator outside any call: broadcast as `AGENT_MESSAGE` and
/// kept where the chat history reads it; bad bodies refused naming the field.
#[tokio::test]
async fn an_agent_notifies_the_operator() {
    let env = Env::new(Db::Sqlite).await;
    let server = spawn(config(&env)).await;
    let agent = Agent::start().await;
    let (writer, token) = online(&server, "Writer", None, &agent).await;
    let mut events = server
        .client
        .get(format!("{}/workspaces/{writer}/events/stream", server.base))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    let body = json!({"message": "draft ready", "attachments": [{"uri": "file:///workspace/draft.md", "name": "draft.md", "mimeType": "text/markdown"}]});
    let (status, answer) = server
        .post_as(&format!("/workspaces/{writer}/notify"), &body, Some(&token))
        .await;
    assert_eq!(
        (status, answer["status"].as_str()),
        (200, Some("sent")),
        "{answer}"
    );

    let history = activity(&server, &writer, "type=a2a_receive&source=canvas").await;
    assert_eq!(history.len(), 1, "{history:?}");
    assert_eq!(history[0]["method"], "notify");
    assert_eq!(history[0]["request_body"], Value::Null);
    assert_eq!(history[0]["response_body"]["result"], "draft ready");
    assert_eq!(
        history[0]["response_body"]["parts"][0]["file"]["name"],
        "draft.md"
    );
    assert_eq!(history[0]["summary"], "Agent message: draft ready");

    let mut seen = String::new();
    while !seen.contains("AGENT_MESSAGE") {
        let chunk = tokio::time::timeout(Duration::from_secs(10), events.chunk())
            .await
            .expect("AGENT_MESSAGE within 10 s")
            .unwrap()
            .expect("the stream stays open");
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(
        seen.contains("draft ready") && seen.contains("Writer"),
        "{seen}"
    );

    for (bad, field) in [
        (json!({}), "message is required"),
        (json!({"message": " "}), "message"),
        (
            json!({"message": "x", "attachments": [{"uri": "", "name": "a"}]}),
            "attachment[0]",
        ),
    ] {
        let (status, answer) = server
            .post_as(&format!("/workspaces/{writer}/notify"), &bad, Some(&token))
            .await;
        assert_eq!(status, 400, "{bad}: {answer}");
        assert!(answer.to_string().contains(field), "{bad}: {answer}");
    }
    let (status, answer) = server
        .post_as(
            &format!("/workspaces/{writer}/notify"),
            &json!({"message": "x".repeat(70 * 1024)}),
            Some(&token),
        )
        .await;
    assert_eq!(status, 413, "{answer}");
    assert_eq!(
        activity(&server, &writer, "type=a2a_receive").await.len(),
        1
    );
}

/// A workspace takes `max_concurrent_tasks` messages at a time, and a calling workspace
/// has a bounded number in flight: beyond either, 429 in words with `Retry-After`.
#[tokio::test]
async fn a_busy_agent_or_a_flooding_caller_is_told_to_wait() {
    let env = Env::new(Db::Sqlite).await;
    let server = spawn(config(&env)).await;
    let slow = Agent::start().await;
    slow.behave(Behaviour::Slow(Duration::from_millis(400)));
    let (writer, _) = online(&server, "Writer", None, &slow).await;

    // Writer takes one message at a time (the default): a second one is refused at once.
    let one = canvas_message("one");
    let first = send(&server, &writer, None, Some(TOKEN), &one);
    let second = async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        json_of(send(&server, &writer, None, Some(TOKEN), &canvas_message("two")).await).await
    };
    let (first, (status, body)) = tokio::join!(first, second);
    assert_eq!(first.status(), 200);
    assert_eq!(
        (status, body["code"].as_str()),
        (429, Some("agent_busy")),
        "{body}"
    );
    assert!(
        body["error"].as_str().unwrap().contains("Writer is busy"),
        "{body}"
    );
    // Its slot is given back with the answer.
    let (status, _) = json_of(
        send(
            &server,
            &writer,
            None,
            Some(TOKEN),
            &canvas_message("three"),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200);

    // A roomy target, and one caller sending more than it may at once.
    let created = server
        .create(&json!({"name": "Roomy", "max_concurrent_tasks": 100}))
        .await;
    let roomy = created["id"].as_str().unwrap().to_owned();
    register(&server, &roomy, "Roomy", &slow).await;
    let (caller, caller_token) = online(&server, "Flooder", None, &slow).await;
    let calls = (0..=hatchery_server::app::a2a::MAX_IN_FLIGHT_PER_CALLER).map(|_| async {
        send(
            &server,
            &roomy,
            Some(&caller),
            Some(&caller_token),
            &canvas_message("hi"),
        )
        .await
        .status()
        .as_u16()
    });
    let statuses = futures_util::future::join_all(calls).await;
    assert_eq!(
        statuses.iter().filter(|s| **s == 429).count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| [200, 429].contains(s)),
        "{statuses:?}"
    );
}
