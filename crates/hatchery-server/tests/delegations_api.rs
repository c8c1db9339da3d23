//! Delegation (`POST /workspaces/:id/delegate`, `GET …/delegations`, `…/delegations/record`,
//! `…/delegations/:did/update`) against the real server on SQLite and Postgres, with
//! agents that are small HTTP servers of the test's own, registered by URL: delivery in
//! the background and the answer kept, idempotency keys, the org tree's refusals, agents
//! that fail, self-managed delegations and their validation, the listing's statuses, and
//! a delegation that survives a restart of the control plane.

mod common;

use std::time::{Duration, Instant};

use common::fake_agent::{Agent, Behaviour, online, register};
use common::{Db, Env, Running, TOKEN, spawn};
use serde_json::{Value, json};

hatchery_testkit::both_databases!(
    a_delegation_to_a_sibling_is_delivered_and_its_answer_kept,
    a_delegation_request_is_checked_field_by_field,
    the_same_idempotency_key_answers_the_same_delegation_and_delivers_once,
    a_target_the_tree_does_not_allow_is_refused_and_nothing_is_stored,
    an_agent_that_fails_fails_the_delegation_with_the_reason,
    an_agent_records_its_own_delegations_and_says_how_they_ended,
    the_listing_shows_each_delegation_with_its_status,
    a_pending_delegation_is_delivered_after_a_restart,
    a_delivery_cut_short_by_a_restart_is_made_again,
);

/// `POST /workspaces/{source}/delegate` with `token`.
async fn delegate(server: &Running, source: &str, token: &str, body: &Value) -> (u16, Value) {
    server
        .post_as(&format!("/workspaces/{source}/delegate"), body, Some(token))
        .await
}

/// `GET /workspaces/{source}/delegations` with `token`.
async fn delegations(server: &Running, source: &str, token: &str) -> Vec<Value> {
    let (status, list) = server
        .get_as(&format!("/workspaces/{source}/delegations"), Some(token))
        .await;
    assert_eq!(status, 200, "{list}");
    list.as_array().cloned().expect("an array")
}

/// The listing's entry for delegation `id`, once `done` says it is as the test wants
/// (within 10 s).
async fn wait_for(
    server: &Running,
    source: &str,
    token: &str,
    id: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let list = delegations(server, source, token).await;
        let entry = list
            .iter()
            .find(|d| d["delegation_id"] == id)
            .cloned()
            .unwrap_or(Value::Null);
        if done(&entry) {
            return entry;
        }
        assert!(
            Instant::now() < deadline,
            "delegation {id} is not as expected after 10 s: {entry}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn status_is(status: &'static str) -> impl Fn(&Value) -> bool {
    move |entry| entry["status"] == status
}

/// The event types of `workspace` in the event log, oldest first.
async fn event_types(server: &Running, workspace: &str) -> Vec<(String, Value)> {
    let (status, events) = server.get(&format!("/events/{workspace}")).await;
    assert_eq!(status, 200, "{events}");
    let mut events: Vec<(String, Value)> = events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["event_type"].as_str().unwrap().to_owned(),
                e["payload"].clone(),
            )
        })
        .collect();
    events.reverse();
    events
}

async fn a_delegation_to_a_sibling_is_delivered_and_its_answer_kept(db: Db) {
    let env = Env::new(db).await;
    let server = spawn(env.config()).await;
    let agent = Agent::start().await;
    let (pm, _) = online(&server, "PM", None, &agent).await;
    let (a, a_token) = online(&server, "Researcher A", Some(&pm), &agent).await;
    let (b, _) = online(&server, "Writer", Some(&pm), &agent).await;

    let (status, answer) = delegate(
        &server,
        &a,
        &a_token,
        &json!({"target_id": b, "task": "write the summary"}),
    )
    .await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["status"], "delegated");
    assert_eq!(answer["target_id"], b.as_str());
    assert!(answer.get("idempotent_hit").is_none(), "{answer}");
    let id = answer["delegation_id"].as_str().unwrap().to_owned();
    assert!(uuid::Uuid::parse_str(&id).is_ok(), "{answer}");

    let entry = wait_for(&server, &a, &a_token, &id, status_is("completed")).await;
    assert_eq!(entry["id"], id.as_str());
    assert_eq!(entry["type"], "delegation");
    assert_eq!(entry["source_id"], a.as_str());
    assert_eq!(entry["target_id"], b.as_str());
    assert_eq!(entry["response_preview"], "you said: write the summary");
    assert_eq!(
        entry["summary"],
        "Delegation completed (you said: write the summary)"
    );
    assert!(entry.get("error").is_none(), "{entry}");
    assert!(entry["created_at"].is_string() && entry["updated_at"].is_string());

    // Delivered once, as a message/send from the delegating workspace, named by the
    // delegation's id.
    let messages = agent.messages();
    assert_eq!(messages.len(), 1, "{messages:?}");
    let (caller, request) = &messages[0];
    assert_eq!(caller, &a);
    assert_eq!(request["method"], "message/send");
    assert_eq!(request["params"]["message"]["messageId"], id.as_str());
    assert_eq!(
        request["params"]["message"]["metadata"]["delegation_id"],
        id.as_str()
    );
    assert_eq!(
        request["params"]["message"]["parts"][0]["text"],
        "write the summary"
    );

    // Traced as A2A on both sides, and told as events.
    let (status, sent) = server
        .get(&format!("/workspaces/{a}/activity?type=a2a_send"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(sent[0]["target_id"], b.as_str(), "{sent}");
    let events = event_types(&server, &a).await;
    let kinds: Vec<&str> = events
        .iter()
        .map(|(k, _)| k.as_str())
        .filter(|k| k.starts_with("DELEGATION_"))
        .collect();
    assert_eq!(
        kinds,
        [
            "DELEGATION_SENT",
            "DELEGATION_STATUS",
            "DELEGATION_COMPLETE"
        ]
    );
    let payload = |kind: &str| {
        events
            .iter()
            .find(|(k, _)| k == kind)
            .map(|(_, p)| p.clone())
            .unwrap()
    };
    assert_eq!(
        payload("DELEGATION_SENT"),
        json!({"delegation_id": id, "target_id": b, "task_preview": "write the summary"})
    );
    assert_eq!(payload("DELEGATION_STATUS")["status"], "working");
    assert_eq!(
        payload("DELEGATION_COMPLETE")["response_preview"],
        "you said: write the summary"
    );

    // The parent may delegate to its child, and the operator on a workspace's behalf.
    let (status, answer) = delegate(
        &server,
        &pm,
        TOKEN,
        &json!({"target_id": a, "task": "from the top"}),
    )
    .await;
    assert_eq!(status, 202, "{answer}");
}

async fn a_delegation_request_is_checked_field_by_field(db: Db) {
    let env = Env::new(db).await;
    let server = spawn(env.config()).await;
    let agent = Agent::start().await;
    let (a, a_token) = online(&server, "A", None, &agent).await;
    let (b, _) = online(&server, "B", None, &agent).await;

    // What the body must say, each refusal naming the field; nothing is stored.
    for (body, message, field) in [
        (
            json!({"task": "x"}),
            "invalid delegation request",
            "target_id",
        ),
        (
            json!({"target_id": "not-a-uuid", "task": "x"}),
            "target_id must be a valid UUID",
            "target_id",
        ),
        (
            json!({"target_id": b}),
            "invalid delegation request",
            "task",
        ),
        (
            json!({"target_id": b, "task": "   "}),
            "invalid delegation request",
            "task",
        ),
        (
            json!({"target_id": a, "task": "x"}),
            "self-delegation not permitted",
            "target_id",
        ),
        (
            json!({"target_id": b, "task": 7}),
            "invalid delegation request",
            "",
        ),
    ] {
        let (status, refusal) = delegate(&server, &a, &a_token, &body).await;
        assert_eq!(status, 400, "{body}: {refusal}");
        assert_eq!(refusal["error"], message, "{body}: {refusal}");
        if !field.is_empty() {
            assert_eq!(refusal["field"], field, "{body}: {refusal}");
        }
    }
    let (status, refusal) = delegate(
        &server,
        &a,
        &a_token,
        &json!({"target_id": b, "task": "x".repeat(256 * 1024 + 1)}),
    )
    .await;
    assert_eq!(
        (status, refusal["field"].as_str()),
        (413, Some("task")),
        "{refusal}"
    );
    assert!(delegations(&server, &a, &a_token).await.is_empty());
    let (status, refusal) = delegate(
        &server,
        &a,
        &a_token,
        &json!({"target_id": b, "task": "x", "idempotency_key": "k".repeat(257)}),
    )
    .await;
    assert_eq!(
        (status, refusal["field"].as_str()),
        (400, Some("idempotency_key")),
        "{refusal}"
    );
    assert_eq!(agent.count(), 0);
}

async fn the_same_idempotency_key_answers_the_same_delegation_and_delivers_once(db: Db) {
    let env = Env::new(db).await;
    let server = spawn(env.config()).await;
    let agent = Agent::start().await;
    let (a, a_token) = online(&server, "A", None, &agent).await;
    let (b, _) = online(&server, "B", None, &agent).await;
    let body = json!({"target_id": b, "task": "once", "idempotency_key": "k-1"});

    let (status, first) = delegate(&server, &a, &a_token, &body).await;
    assert_eq!(status, 202, "{first}");
    let id = first["delegation_id"].as_str().unwrap().to_owned();
    let (status, again) = delegate(&server, &a, &a_token, &body).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["delegation_id"], id.as_str());
    assert_eq!(again["target_id"], b.as_str());
    assert_eq!(again["idempotent_hit"], true);
    assert!(
        ["pending", "working", "completed"].contains(&again["status"].as_str().unwrap()),
        "{again}"
    );

    // Many at once: all the same delegation.
    let requests = (0..6).map(|_| delegate(&server, &a, &a_token, &body));
    for (status, answer) in futures_util::future::join_all(requests).await {
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["delegation_id"], id.as_str());
    }

    wait_for(&server, &a, &a_token, &id, status_is("completed")).await;
    let (status, after) = delegate(&server, &a, &a_token, &body).await;
    assert_eq!(status, 200, "{after}");
    assert_eq!(after["status"], "completed");
    assert_eq!(after["delegation_id"], id.as_str());
    // The courier had its chances to deliver twice.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(agent.count(), 1, "delivered once");
    assert_eq!(delegations(&server, &a, &a_token).await.len(), 1);

    // Another key, or none, is another delegation; keys are the delegating workspace's.
    let (status, other) = delegate(
        &server,
        &a,
        &a_token,
        &json!({"target_id": b, "task": "once", "idempotency_key": "k-2"}),
    )
    .await;
    assert_eq!(status, 202, "{other}");
    assert_ne!(other["delegation_id"], id.as_str());
}

async fn a_target_the_tree_does_not_allow_is_refused_and_nothing_is_stored(db: Db) {
    let env = Env::new(db).await;
    let server = spawn(env.config()).await;
    let agent = Agent::start().await;
    let (pm, _) = online(&server, "PM", None, &agent).await;
    let (a, a_token) = online(&server, "A", Some(&pm), &agent).await;
    let (x, _) = online(&server, "Other team", None, &agent).await;
    let (y, y_token) = online(&server, "Outsider", Some(&x), &agent).await;

    // Another team's member: 403, for a delegation and for a record.
    let (status, refusal) =
        delegate(&server, &y, &y_token, &json!({"target_id": a, "task": "x"})).await;
    assert_eq!(status, 403, "{refusal}");
    assert_eq!(refusal["code"], "not_reachable");
    assert_eq!(
        refusal["error"],
        "access denied: workspaces cannot communicate per hierarchy rules"
    );
    let (status, refusal) = server
        .post_as(
            &format!("/workspaces/{y}/delegations/record"),
            &json!({"target_id": a, "task": "x", "delegation_id": "d-1"}),
            Some(&y_token),
        )
        .await;
    assert_eq!(
        (status, refusal["code"].as_str()),
        (403, Some("not_reachable")),
        "{refusal}"
    );

    // Unknown or removed: 404.
    let unknown = "00000000-0000-4000-8000-000000000000";
    let (status, refusal) = delegate(
        &server,
        &a,
        &a_token,
        &json!({"target_id": unknown, "task": "x"}),
    )
    .await;
    assert_eq!(
        (status, refusal["code"].as_str()),
        (404, Some("workspace_not_found")),
        "{refusal}"
    );
    let (gone, _) = online(&server, "Gone", Some(&pm), &agent).await;
    let (status, _) = server.delete(&format!("/workspaces/{gone}")).await;
    assert_eq!(status, 200);
    let (status, _) = delegate(
        &server,
        &a,
        &a_token,
        &json!({"target_id": gone, "task": "x"}),
    )
    .await;
    assert_eq!(status, 404);

    // The caller is the workspace in the path, with its own token.
    let (status, _) = delegate(
        &server,
        &a,
        &y_token,
        &json!({"target_id": pm, "task": "x"}),
    )
    .await;
    assert_eq!(status, 401);
    let (status, _) = server
        .post_as(
            &format!("/workspaces/{a}/delegate"),
            &json!({"target_id": pm, "task": "x"}),
            None,
        )
        .await;
    assert_eq!(status, 401);
    let (status, _) = server
        .get_as(&format!("/workspaces/{a}/delegations"), Some(&y_token))
        .await;
    assert_eq!(status, 401);

    assert!(delegations(&server, &y, &y_token).await.is_empty());
    assert!(delegations(&server, &a, &a_token).await.is_empty());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(agent.count(), 0, "nothing refused reached an agent");
}

async fn an_agent_that_fails_fails_the_delegation_with_the_reason(db: Db) {
    let env = Env::new(db).await;
    let server = spawn(env.config()).await;
    let agent = Agent::start().await;
    let (a, a_token) = online(&server, "A", None, &agent).await;
    let (b, _) = online(&server, "Writer", None, &agent).await;

    // A JSON-RPC error.
    agent.behave(Behaviour::RpcError);
    let body = json!({"target_id": b, "task": "fail", "idempotency_key": "retry-me"});
    let (status, answer) = delegate(&server, &a, &a_token, &body).await;
    assert_eq!(status, 202, "{answer}");
    let id = answer["delegation_id"].as_str().unwrap().to_owned();
    let entry = wait_for(&server, &a, &a_token, &id, status_is("failed")).await;
    assert_eq!(
        entry["error"],
        "workspace agent Writer answered with an error: method not found (-32601)"
    );
    assert_eq!(entry["summary"], "Delegation failed");
    assert!(entry.get("response_preview").is_none(), "{entry}");
    let events = event_types(&server, &a).await;
    let (_, failed) = events
        .iter()
        .find(|(k, _)| k == "DELEGATION_FAILED")
        .expect("DELEGATION_FAILED");
    assert_eq!(failed["delegation_id"], id.as_str());
    assert_eq!(failed["error"], entry["error"]);

    // A failed delegation gives its key up: the retry delegates again.
    agent.behave(Behaviour::Answer);
    let (status, retry) = delegate(&server, &a, &a_token, &body).await;
    assert_eq!(status, 202, "{retry}");
    let retry_id = retry["delegation_id"].as_str().unwrap().to_owned();
    assert_ne!(retry_id, id);
    wait_for(&server, &a, &a_token, &retry_id, status_is("completed")).await;

    // An answer that is not JSON-RPC: the reason says what came, never its bytes.
    agent.behave(Behaviour::Garbage);
    let (_, answer) = delegate(&server, &a, &a_token, &json!({"target_id": b, "task": "x"})).await;
    let id = answer["delegation_id"].as_str().unwrap().to_owned();
    let entry = wait_for(&server, &a, &a_token, &id, status_is("failed")).await;
    let error = entry["error"].as_str().unwrap();
    assert!(
        error.starts_with("workspace agent Writer answered with something that is not JSON-RPC: HTTP 200, text/html"),
        "{entry}"
    );
    assert!(!error.contains("secret internal page"), "{entry}");

    // Nothing listening where the agent registered.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let (orphan, orphan_token) = online(&server, "Orphan", None, &agent).await;
    let (status, _) = server
        .post_as(
            "/registry/register",
            &json!({"id": orphan, "url": format!("http://localhost:{closed}/"), "agent_card": {"name": "Orphan"}}),
            Some(&orphan_token),
        )
        .await;
    assert_eq!(status, 200);
    let (_, answer) = delegate(
        &server,
        &a,
        &a_token,
        &json!({"target_id": orphan, "task": "x"}),
    )
    .await;
    let id = answer["delegation_id"].as_str().unwrap().to_owned();
    let entry = wait_for(&server, &a, &a_token, &id, status_is("failed")).await;
    assert!(
        entry["error"]
            .as_str()
            .unwrap()
            .starts_with("failed to reach workspace agent Orphan: "),
        "{entry}"
    );
}

#[allow(clippy::too_many_lines, reason = "one story, step by step")]
async fn an_agent_records_its_own_delegations_and_says_how_they_ended(db: Db) {
    let env = Env::new(db).await;
    let server = spawn(env.config()).await;
    let agent = Agent::start().await;
    let (a, a_token) = online(&server, "A", None, &agent).await;
    let (b, _) = online(&server, "B", None, &agent).await;
    let record = |body: Value| {
        let (server, a, token) = (&server, a.clone(), a_token.clone());
        async move {
            server
                .post_as(
                    &format!("/workspaces/{a}/delegations/record"),
                    &body,
                    Some(&token),
                )
                .await
        }
    };
    let update = |id: &str, body: Value| {
        let (server, path, token) = (
            &server,
            format!("/workspaces/{a}/delegations/{id}/update"),
            a_token.clone(),
        );
        async move { server.post_as(&path, &body, Some(&token)).await }
    };

    let body = json!({"target_id": b, "task": "draft it", "delegation_id": "task-1"});
    let (status, answer) = record(body.clone()).await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(
        answer,
        json!({"delegation_id": "task-1", "status": "recorded"})
    );
    // The same record again is the same; the id for another task is a conflict.
    let (status, _) = record(body).await;
    assert_eq!(status, 202);
    let (status, refusal) =
        record(json!({"target_id": b, "task": "another", "delegation_id": "task-1"})).await;
    assert_eq!(
        (status, refusal["code"].as_str()),
        (409, Some("delegation_exists")),
        "{refusal}"
    );
    let list = delegations(&server, &a, &a_token).await;
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["status"], "working");
    assert_eq!(list[0]["summary"], format!("Delegating to {b}"));
    // The control plane does not deliver what the agent delivers itself.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(agent.count(), 0);

    // What a record must say, each refusal naming the field.
    for (body, message, field) in [
        (
            json!({"task": "x", "delegation_id": "d"}),
            "invalid request body",
            "target_id",
        ),
        (
            json!({"target_id": "nope", "task": "x", "delegation_id": "d"}),
            "target_id must be a valid UUID",
            "target_id",
        ),
        (
            json!({"target_id": b, "delegation_id": "d"}),
            "invalid request body",
            "task",
        ),
        (
            json!({"target_id": b, "task": "x"}),
            "invalid request body",
            "delegation_id",
        ),
        (
            json!({"target_id": b, "task": "x", "delegation_id": "a/b"}),
            "invalid request body",
            "delegation_id",
        ),
    ] {
        let (status, refusal) = record(body.clone()).await;
        assert_eq!(status, 400, "{body}: {refusal}");
        assert_eq!(refusal["error"], message, "{body}: {refusal}");
        assert_eq!(refusal["field"], field, "{body}: {refusal}");
    }

    // What an update must say.
    for (body, message) in [
        (json!({}), "invalid request body"),
        (
            json!({"status": "in_progress"}),
            "status must be 'completed' or 'failed'",
        ),
    ] {
        let (status, refusal) = update("task-1", body.clone()).await;
        assert_eq!(status, 400, "{body}: {refusal}");
        assert_eq!(refusal["error"], message, "{body}: {refusal}");
        assert_eq!(refusal["field"], "status", "{body}: {refusal}");
    }
    let (status, refusal) = update("no-such-task", json!({"status": "completed"})).await;
    assert_eq!(
        (status, refusal["code"].as_str(), refusal["error"].as_str()),
        (
            404,
            Some("delegation_not_found"),
            Some("delegation not found")
        ),
        "{refusal}"
    );

    // It ended: completed, with the answer.
    let (status, answer) = update(
        "task-1",
        json!({"status": "completed", "response_preview": "the draft"}),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer,
        json!({"status": "completed", "delegation_id": "task-1"})
    );
    let (status, _) = update(
        "task-1",
        json!({"status": "completed", "response_preview": "the draft"}),
    )
    .await;
    assert_eq!(status, 200, "the same report again");
    let (status, refusal) = update("task-1", json!({"status": "failed", "error": "late"})).await;
    assert_eq!(
        (status, refusal["code"].as_str()),
        (409, Some("delegation_finished")),
        "{refusal}"
    );
    let list = delegations(&server, &a, &a_token).await;
    assert_eq!(list[0]["status"], "completed");
    assert_eq!(list[0]["response_preview"], "the draft");
    assert_eq!(list[0]["summary"], "Delegation completed (the draft)");

    // Another one failed, with the reason.
    let (status, _) =
        record(json!({"target_id": b, "task": "second", "delegation_id": "task-2"})).await;
    assert_eq!(status, 202);
    let (status, _) = update("task-2", json!({"status": "failed", "error": "boom"})).await;
    assert_eq!(status, 200);
    let entry = wait_for(&server, &a, &a_token, "task-2", status_is("failed")).await;
    assert_eq!(entry["error"], "boom");
    let (status, refusal) = update(
        "task-2",
        json!({"status": "failed", "error": "x".repeat(4097)}),
    )
    .await;
    assert_eq!(
        (status, refusal["field"].as_str()),
        (413, Some("error")),
        "{refusal}"
    );

    // A delegation the control plane delivers is not the agent's to end.
    let (_, delegated) =
        delegate(&server, &a, &a_token, &json!({"target_id": b, "task": "x"})).await;
    let id = delegated["delegation_id"].as_str().unwrap().to_owned();
    let (status, refusal) = update(&id, json!({"status": "failed", "error": "mine"})).await;
    assert_eq!(
        (status, refusal["code"].as_str()),
        (409, Some("delegation_not_self_managed")),
        "{refusal}"
    );
    let events = event_types(&server, &a).await;
    let kinds: Vec<&str> = events
        .iter()
        .map(|(k, _)| k.as_str())
        .filter(|k| k.starts_with("DELEGATION_"))
        .take(4)
        .collect();
    assert_eq!(
        kinds,
        [
            "DELEGATION_SENT",
            "DELEGATION_COMPLETE",
            "DELEGATION_SENT",
            "DELEGATION_FAILED"
        ]
    );
}

async fn the_listing_shows_each_delegation_with_its_status(db: Db) {
    let env = Env::new(db).await;
    let server = spawn(env.config()).await;
    let agent = Agent::start().await;
    let (a, a_token) = online(&server, "A", None, &agent).await;
    let (b, _) = online(&server, "B", None, &agent).await;
    // Created, never registered: its agent is not up.
    let waiting = server.create_named("Starting").await;

    let (_, done) = delegate(
        &server,
        &a,
        &a_token,
        &json!({"target_id": b, "task": "ok"}),
    )
    .await;
    let done = done["delegation_id"].as_str().unwrap().to_owned();
    wait_for(&server, &a, &a_token, &done, status_is("completed")).await;
    agent.behave(Behaviour::RpcError);
    let (_, failed) = delegate(
        &server,
        &a,
        &a_token,
        &json!({"target_id": b, "task": "no"}),
    )
    .await;
    let failed = failed["delegation_id"].as_str().unwrap().to_owned();
    wait_for(&server, &a, &a_token, &failed, status_is("failed")).await;
    let (_, pending) = delegate(
        &server,
        &a,
        &a_token,
        &json!({"target_id": waiting, "task": "later"}),
    )
    .await;
    let pending = pending["delegation_id"].as_str().unwrap().to_owned();
    // Tried once, then waiting for its target, saying why.
    let entry = wait_for(&server, &a, &a_token, &pending, |e| {
        e["status"] == "pending" && e.get("error").is_some()
    })
    .await;
    assert_eq!(
        entry["error"],
        "workspace Starting is not available (provisioning)"
    );
    assert_eq!(entry["summary"], format!("Delegating to {waiting}"));
    let (status, _) = server
        .post_as(
            &format!("/workspaces/{a}/delegations/record"),
            &json!({"target_id": b, "task": "mine", "delegation_id": "own-1"}),
            Some(&a_token),
        )
        .await;
    assert_eq!(status, 202);

    let list = delegations(&server, &a, &a_token).await;
    let status_of = |id: &str| {
        list.iter()
            .find(|d| d["delegation_id"] == id)
            .map(|d| d["status"].clone())
    };
    assert_eq!(status_of(&done), Some(json!("completed")));
    assert_eq!(status_of(&failed), Some(json!("failed")));
    assert_eq!(status_of(&pending), Some(json!("pending")));
    assert_eq!(status_of("own-1"), Some(json!("working")));
    assert_eq!(list.len(), 4);
    // The target's own listing has none of them: they are the delegator's.
    let (status, theirs) = server.get(&format!("/workspaces/{b}/delegations")).await;
    assert_eq!((status, theirs), (200, json!([])));
}

async fn a_pending_delegation_is_delivered_after_a_restart(db: Db) {
    let env = Env::new(db).await;
    let server = spawn(env.config()).await;
    let agent = Agent::start().await;
    let (a, a_token) = online(&server, "A", None, &agent).await;
    let later = server.create_named("Later").await;
    let (status, answer) = delegate(
        &server,
        &a,
        &a_token,
        &json!({"target_id": later, "task": "after the restart"}),
    )
    .await;
    assert_eq!(status, 202, "{answer}");
    let id = answer["delegation_id"].as_str().unwrap().to_owned();
    wait_for(&server, &a, &a_token, &id, |e| {
        e["status"] == "pending" && e.get("error").is_some()
    })
    .await;
    server.stop().await;

    let server = spawn(env.config()).await;
    register(&server, &later, "Later", &agent).await;
    // Past its back-off on the servers' clock.
    env.clock.advance(Duration::from_mins(2));
    let entry = wait_for(&server, &a, &a_token, &id, status_is("completed")).await;
    assert_eq!(entry["response_preview"], "you said: after the restart");
    assert_eq!(agent.count(), 1);
}

async fn a_delivery_cut_short_by_a_restart_is_made_again(db: Db) {
    let env = Env::new(db).await;
    let server = spawn(env.config()).await;
    let agent = Agent::start().await;
    let (a, a_token) = online(&server, "A", None, &agent).await;
    let (b, _) = online(&server, "B", None, &agent).await;
    agent.behave(Behaviour::Slow(Duration::from_mins(10)));
    let (_, answer) = delegate(
        &server,
        &a,
        &a_token,
        &json!({"target_id": b, "task": "again"}),
    )
    .await;
    let id = answer["delegation_id"].as_str().unwrap().to_owned();
    wait_for(&server, &a, &a_token, &id, status_is("working")).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while agent.count() == 0 {
        assert!(Instant::now() < deadline, "the agent got the task");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.stop().await;

    // The runner that held it is gone; once its lease runs out, the delivery is made
    // again (at least once), under the same message id.
    agent.behave(Behaviour::Answer);
    let server = spawn(env.config()).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        delegations(&server, &a, &a_token).await[0]["status"],
        "working",
        "not before the lease runs out"
    );
    env.clock.advance(Duration::from_mins(1));
    let entry = wait_for(&server, &a, &a_token, &id, status_is("completed")).await;
    assert_eq!(entry["response_preview"], "you said: again");
    let messages = agent.messages();
    assert_eq!(messages.len(), 2, "{messages:?}");
    assert_eq!(
        messages[0].1["params"]["message"]["messageId"],
        messages[1].1["params"]["message"]["messageId"]
    );
}
