//! Agents that answer, end to end: the real `hatchery serve` on the local backend starts a
//! team of sandboxed `hatchery agent`s (no network in their sandboxes), and messages reach
//! them through the control plane, from the operator (the API and `hatchery ws chat`) and
//! from one agent's workspace to another's, as the org tree allows.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

mod common;

const TOKEN: &str = "a2a-local-admin";

/// `POST /workspaces/{target}/a2a`, as `caller` with `token` or as the operator.
async fn send(
    server: &common::Server,
    target: &str,
    caller: Option<(&str, &str)>,
    body: &Value,
) -> reqwest::Response {
    let mut request = server
        .client
        .post(format!("{}/workspaces/{target}/a2a", server.base))
        .json(body);
    request = match caller {
        Some((id, token)) => request.header("x-workspace-id", id).bearer_auth(token),
        None => request.bearer_auth(TOKEN),
    };
    request.send().await.unwrap()
}

fn message(method: &str, text: &str, context: Option<&str>) -> Value {
    json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": {"message": {
        "role": "user", "contextId": context, "parts": [{"kind": "text", "text": text}]}}})
}

/// `hatchery ws chat …` against the server; exit status, stdout, stderr.
fn chat(server: &common::Server, args: &[&str]) -> (i32, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_hatchery"))
        .args(["ws", "chat"])
        .args(args)
        .args(["--url", &server.base, "--token", TOKEN])
        .output()
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_team_of_sandboxed_agents_answers_the_operator_and_each_other() {
    let dir = tempfile::tempdir().unwrap();
    let mut env = common::server_env(&dir.path().join("data"), TOKEN, "local");
    env.push(("HATCHERY_SECRETS_KEY", common::SECRETS_KEY.to_owned()));
    let server = common::Server::start_on(common::free_port(), &env, TOKEN).await;
    let agent = json!({"runtime": "claude-code", "model": "moonshot/kimi-k2.6"});
    let with = |name: &str, parent: Option<&str>| {
        let mut body = agent.clone();
        body["name"] = json!(name);
        body["parent_id"] = json!(parent);
        body
    };
    let pm = server.create(with("PM", None)).await;
    let writer = server.create(with("Writer", Some(&pm))).await;
    let researcher = server.create(with("Researcher", Some(&pm))).await;
    let outsider = server.create(with("Outsider", None)).await;
    let loner = server.create(with("Loner", Some(&outsider))).await;
    for id in [&pm, &writer, &researcher, &outsider, &loner] {
        server.until_status(id, "online").await;
    }

    operator_talks_through_the_api_and_the_cli(&server, &pm, &writer).await;
    peers_follow_the_tree(&server, &writer, &researcher, &loner).await;

    // A paused agent is explained, by the CLI too.
    let (status, _) = server
        .call(
            reqwest::Method::POST,
            &format!("/workspaces/{pm}/pause"),
            None,
        )
        .await;
    assert_eq!(status, 200);
    let (code, _, stderr) = chat(&server, &[&pm, "are you there?"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("workspace not available"), "{stderr}");
    assert!(stderr.contains("hatchery ws resume"), "{stderr}");
}

/// The operator, through the API and the CLI: answers in a conversation, streams in
/// pieces.
async fn operator_talks_through_the_api_and_the_cli(
    server: &common::Server,
    pm: &str,
    writer: &str,
) {
    // The operator, through the API: the sandboxed agent answers, in its conversation.
    let response = send(
        server,
        pm,
        None,
        &message("message/send", "plan the launch", None),
    )
    .await;
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    let text = answer["result"]["parts"][0]["text"]
        .as_str()
        .unwrap_or_default();
    assert!(text.contains("plan the launch"), "{answer}");
    assert!(
        text.contains("platform"),
        "the agent names its provider: {answer}"
    );
    let context = answer["result"]["contextId"].as_str().unwrap().to_owned();
    let again: Value = send(
        server,
        pm,
        None,
        &message("message/send", "and then?", Some(&context)),
    )
    .await
    .json()
    .await
    .unwrap();
    assert!(
        again["result"]["parts"][0]["text"]
            .as_str()
            .unwrap_or_default()
            .contains("turn 2"),
        "{again}"
    );

    // Through the CLI: one message, and its JSON for scripts.
    let (code, stdout, stderr) = chat(server, &[pm, "hello from the CLI"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("hello from the CLI"), "{stdout}");
    let (code, stdout, stderr) = chat(server, &[pm, "as JSON", "--json"]);
    assert_eq!(code, 0, "{stderr}");
    let json: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(json["result"]["kind"], "message", "{json}");
    // Streamed: the answer arrives in chunks, and the CLI prints it whole.
    let (code, stdout, stderr) = chat(server, &[pm, "stream this answer", "--stream"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("stream this answer"), "{stdout}");

    // `message/stream` delivers its first chunk before its end.
    let started = Instant::now();
    let mut response = send(
        server,
        writer,
        None,
        &message("message/stream", "one two three four five", None),
    )
    .await;
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let first = response.chunk().await.unwrap().unwrap();
    let first_at = started.elapsed();
    assert!(
        String::from_utf8_lossy(&first).contains("\"result\""),
        "{first:?}"
    );
    while response.chunk().await.unwrap().is_some() {}
    assert!(
        started.elapsed().saturating_sub(first_at) >= Duration::from_millis(50),
        "the first event came {first_at:?} in, the end {:?}: gathered, not streamed",
        started.elapsed()
    );
}

/// A workspace reaches its sibling with its own token; another team's may not; both
/// sides of a call are traced.
async fn peers_follow_the_tree(
    server: &common::Server,
    writer: &str,
    researcher: &str,
    loner: &str,
) {
    // A workspace reaches its sibling with its own token; another team's may not.
    let token = |id: String| {
        let server = &server;
        async move {
            let (status, body) = server
                .call(
                    reqwest::Method::POST,
                    &format!("/workspaces/{id}/tokens"),
                    Some(json!({})),
                )
                .await;
            assert_eq!(status, 201, "{body}");
            body["auth_token"].as_str().unwrap().to_owned()
        }
    };
    let researcher_token = token(researcher.to_owned()).await;
    let loner_token = token(loner.to_owned()).await;
    let response = send(
        server,
        writer,
        Some((researcher, &researcher_token)),
        &message("message/send", "a draft?", None),
    )
    .await;
    assert_eq!(response.status(), 200);
    let (status, body) = {
        let response = send(
            server,
            writer,
            Some((loner, &loner_token)),
            &message("message/send", "let me in", None),
        )
        .await;
        (
            response.status().as_u16(),
            response.json::<Value>().await.unwrap(),
        )
    };
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("not_reachable")),
        "{body}"
    );
    let forged = send(
        server,
        writer,
        Some((researcher, &loner_token)),
        &message("message/send", "forged", None),
    )
    .await;
    assert_eq!(forged.status(), 401);

    // Both sides of the sibling call are in the activity log.
    let (_, received) = server
        .call(
            reqwest::Method::GET,
            &format!("/workspaces/{writer}/activity?type=a2a_receive&source=agent"),
            None,
        )
        .await;
    assert_eq!(received.as_array().map(Vec::len), Some(1), "{received}");
    assert_eq!(received[0]["source_id"], researcher);
}
