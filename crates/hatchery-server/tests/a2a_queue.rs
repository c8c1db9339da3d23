//! Queued A2A messages (`POST /workspaces/:id/a2a` with `X-Hatchery-Queue: true`,
//! `GET /workspaces/:id/a2a/queue`) against the real server on SQLite and Postgres, with a
//! test agent registered by URL: a message the target cannot take is queued (202, Molecule's
//! body) and delivered in order once it can, traced as every call is; the same `messageId`
//! is queued and delivered once; an agent's error fails it with the reason; refusals are
//! not queued; a queued message survives a restart of the control plane.

mod common;

use std::time::{Duration, Instant};

use common::fake_agent::{Agent, Behaviour, online, register};
use common::{Db, Env, Running, TOKEN, spawn};
use serde_json::{Value, json};

hatchery_testkit::both_databases!(
    a_message_the_target_cannot_take_is_queued_and_delivered_in_order,
    an_agent_error_fails_a_queued_message_with_the_reason,
    refusals_and_streams_are_not_queued,
    a_queued_message_survives_a_restart,
);

/// `POST /workspaces/{target}/a2a` with `body`, as `caller` with `token` (the operator
/// when no caller is named), asking for queueing when `queue`.
async fn send(
    server: &Running,
    target: &str,
    caller: Option<(&str, &str)>,
    queue: bool,
    body: &Value,
) -> (u16, Value) {
    let mut request = server
        .client
        .post(format!("{}/workspaces/{target}/a2a", server.base))
        .json(body);
    match caller {
        Some((id, token)) => request = request.header("x-workspace-id", id).bearer_auth(token),
        None => request = request.bearer_auth(TOKEN),
    }
    if queue {
        request = request.header("X-Hatchery-Queue", "true");
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// A `message/send` of `text` with its own `messageId`.
fn message(text: &str, message_id: &str) -> Value {
    json!({"method": "message/send", "params": {"message": {"role": "user",
        "messageId": message_id, "parts": [{"kind": "text", "text": text}]}}})
}

/// `GET /workspaces/{id}/a2a/queue`, newest first.
async fn queue(server: &Running, id: &str) -> Vec<Value> {
    let (status, list) = server.get(&format!("/workspaces/{id}/a2a/queue")).await;
    assert_eq!(status, 200, "{list}");
    list.as_array().cloned().unwrap()
}

/// Wait (10 s at most, moving the servers' clock on past back-offs) until every message
/// queued for `id` has ended; the listing, oldest first.
async fn wait_until_ended(env: &Env, server: &Running, id: &str) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut polls_dispatched = 0;
    loop {
        let mut list = queue(server, id).await;
        if list
            .iter()
            .all(|m| m["status"] == "delivered" || m["status"] == "failed")
        {
            list.reverse();
            return list;
        }
        assert!(
            Instant::now() < deadline,
            "still queued after 10 s: {list:?}"
        );
        // Less than a lease (30 s), and not while one is being delivered (a delivery
        // must not look abandoned, or it is made again), unless it has been for a second:
        // then its runner is gone (a restart) and its lease must run out.
        if list.iter().any(|m| m["status"] == "dispatched") {
            polls_dispatched += 1;
        } else {
            polls_dispatched = 0;
        }
        if polls_dispatched == 0 || polls_dispatched % 20 == 0 {
            env.clock.advance(Duration::from_secs(20));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn assert_queued(status: u16, body: &Value, depth: i64) -> String {
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["queued"], true, "{body}");
    assert_eq!(body["queue_depth"], depth, "{body}");
    assert_eq!(
        body["message"],
        "workspace agent busy — request queued, will dispatch when capacity available"
    );
    body["queue_id"].as_str().unwrap().to_owned()
}

async fn a_message_the_target_cannot_take_is_queued_and_delivered_in_order(db: Db) {
    let env = Env::new(db).await;
    let server = spawn(env.config()).await;
    let agent = Agent::start().await;
    let (writer, _) = online(&server, "Writer", None, &agent).await;
    let (pm, pm_token) = online(&server, "PM", None, &agent).await;
    let (status, _) = server
        .post(&format!("/workspaces/{writer}/pause"), &json!({}))
        .await;
    assert_eq!(status, 200);

    // Without the header: refused as before.
    let (status, body) = send(&server, &writer, None, false, &message("no", "m-0")).await;
    assert_eq!((status, body["status"].as_str()), (503, Some("paused")));

    // With it: queued, Molecule's answer; the same messageId again is the same entry.
    let (status, body) = send(&server, &writer, None, true, &message("one", "m-1")).await;
    let first = assert_queued(status, &body, 1);
    let (status, body) = send(&server, &writer, None, true, &message("one", "m-1")).await;
    assert_eq!(assert_queued(status, &body, 1), first);
    let caller = Some((pm.as_str(), pm_token.as_str()));
    let (status, body) = send(&server, &writer, caller, true, &message("two", "m-2")).await;
    let second = assert_queued(status, &body, 2);
    assert_ne!(first, second);
    let listed = queue(&server, &writer).await;
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert_eq!(listed[0]["id"], second);
    assert_eq!(listed[0]["caller"], pm);
    assert_eq!(listed[1]["caller"], "operator");
    assert_eq!(listed[1]["method"], "message/send");
    assert_eq!(listed[1]["message_id"], "m-1");
    assert_eq!(agent.count(), 0);

    // Back: delivered in order, once each, and traced on both sides.
    let (status, _) = server
        .post(&format!("/workspaces/{writer}/resume"), &json!({}))
        .await;
    assert_eq!(status, 200);
    register(&server, &writer, "Writer", &agent).await;
    let ended = wait_until_ended(&env, &server, &writer).await;
    assert_eq!(
        ended
            .iter()
            .map(|m| m["status"].clone())
            .collect::<Vec<_>>(),
        [json!("delivered"), json!("delivered")],
        "{ended:?}"
    );
    let messages = agent.messages();
    let got: Vec<(String, Value)> = messages
        .iter()
        .map(|(caller, request)| {
            (
                caller.clone(),
                request["params"]["message"]["messageId"].clone(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("operator".to_owned(), json!("m-1")),
            (pm.clone(), json!("m-2"))
        ]
    );
    let (status, received) = server
        .get(&format!("/workspaces/{writer}/activity?type=a2a_receive"))
        .await;
    assert_eq!(status, 200);
    let received = received.as_array().unwrap();
    assert_eq!(received.len(), 2, "{received:?}");
    assert!(
        received
            .iter()
            .all(|row| row["status"] == "ok" && row["response_body"].is_object()),
        "{received:?}"
    );
    let (_, sent) = server
        .get(&format!("/workspaces/{pm}/activity?type=a2a_send"))
        .await;
    let sent = sent.as_array().unwrap();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert!(
        sent[0]["response_body"]
            .to_string()
            .contains("you said: two"),
        "{sent:?}"
    );
}

async fn an_agent_error_fails_a_queued_message_with_the_reason(db: Db) {
    let env = Env::new(db).await;
    let server = spawn(env.config()).await;
    let agent = Agent::start().await;
    let (writer, _) = online(&server, "Writer", None, &agent).await;
    // An agent's JSON-RPC error fails the message, with the reason.
    agent.behave(Behaviour::RpcError);
    let (status, _) = server
        .post(&format!("/workspaces/{writer}/pause"), &json!({}))
        .await;
    assert_eq!(status, 200);
    let (status, body) = send(&server, &writer, None, true, &message("three", "m-3")).await;
    assert_queued(status, &body, 1);
    server
        .post(&format!("/workspaces/{writer}/resume"), &json!({}))
        .await;
    register(&server, &writer, "Writer", &agent).await;
    let ended = wait_until_ended(&env, &server, &writer).await;
    assert_eq!(ended[0]["status"], "failed", "{ended:?}");
    assert!(
        ended[0]["error"]
            .as_str()
            .unwrap()
            .contains("answered with an error"),
        "{ended:?}"
    );
}

async fn refusals_and_streams_are_not_queued(db: Db) {
    let env = Env::new(db).await;
    let server = spawn(env.config()).await;
    let agent = Agent::start().await;
    let (pm, _) = online(&server, "PM", None, &agent).await;
    let (a, a_token) = online(&server, "Researcher", Some(&pm), &agent).await;
    let (x, _) = online(&server, "Other team", None, &agent).await;
    let (y, _) = online(&server, "Outsider", Some(&x), &agent).await;
    // Paused: it cannot take a message now, yet no refusal below is queued for it.
    let (status, _) = server
        .post(&format!("/workspaces/{y}/pause"), &json!({}))
        .await;
    assert_eq!(status, 200);

    let unknown = "00000000-0000-4000-8000-000000000000";
    let (status, body) = send(&server, unknown, None, true, &message("hi", "m-1")).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (404, Some("workspace_not_found"))
    );
    let caller = Some((a.as_str(), a_token.as_str()));
    let (status, body) = send(&server, &y, caller, true, &message("hi", "m-2")).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("not_reachable")),
        "{body}"
    );
    let stream = json!({"method": "message/stream", "params": {"message": {"role": "user",
        "parts": [{"kind": "text", "text": "hi"}]}}});
    let (status, body) = send(&server, &y, None, true, &stream).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["code"], "not_queueable");
    assert_eq!(body["field"], "X-Hatchery-Queue");
    let (status, body) = send(&server, &y, None, true, &json!("not an object")).await;
    assert_eq!(status, 400, "{body}");
    // A header that says neither yes nor no is refused, not read as "no".
    let response = server
        .client
        .post(format!("{}/workspaces/{y}/a2a", server.base))
        .bearer_auth(TOKEN)
        .header("x-hatchery-queue", "null")
        .json(&message("hi", "m-3"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        (body["code"].as_str(), body["field"].as_str()),
        (Some("invalid_header"), Some("X-Hatchery-Queue")),
        "{body}"
    );
    assert!(queue(&server, &y).await.is_empty());
    // A target that can take it answers at once, as without the header.
    let (status, body) = send(&server, &a, None, true, &message("now", "m-3")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["result"]["parts"][0]["text"], "you said: now");
    assert!(queue(&server, &a).await.is_empty());
}

async fn a_queued_message_survives_a_restart(db: Db) {
    let env = Env::new(db).await;
    let server = spawn(env.config()).await;
    let agent = Agent::start().await;
    let later = server.create_named("Later").await;
    let (status, body) = send(&server, &later, None, true, &message("after", "m-1")).await;
    let id = assert_queued(status, &body, 1);
    // Tried once, and waiting for its target.
    let deadline = Instant::now() + Duration::from_secs(10);
    while queue(&server, &later).await[0].get("error").is_none() {
        assert!(Instant::now() < deadline, "the message was tried");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.stop().await;

    let server = spawn(env.config()).await;
    register(&server, &later, "Later", &agent).await;
    let ended = wait_until_ended(&env, &server, &later).await;
    assert_eq!(ended.len(), 1);
    assert_eq!(
        (&ended[0]["id"], &ended[0]["status"]),
        (&json!(id), &json!("delivered"))
    );
    assert_eq!(agent.count(), 1);
    assert_eq!(
        agent.last().1["params"]["message"]["parts"][0]["text"],
        "after"
    );
}
