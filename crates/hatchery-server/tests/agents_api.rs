//! Agents talking back, against the real server on SQLite and Postgres: registration with
//! a bootstrap token, heartbeats and their status rules, token security, liveness and the
//! provisioning deadline on a clock the test moves, discovery and access, activity, and
//! the lifecycle moves.

mod common;

use std::time::Duration;

use common::{Db, Env, Running, TOKEN, spawn};
use serde_json::{Value, json};

hatchery_testkit::both_databases!(
    register_heartbeat_degrade_recover,
    heartbeats_are_validated_and_gone_workspaces_refused,
    tokens_authenticate_only_their_own_workspace,
    bootstrap_tokens_are_single_purpose_and_expire,
    tokens_are_stored_as_hashes_only,
    test_tokens_exist_only_in_dev_mode,
    liveness_expires_silent_workspaces_across_restarts_and_replicas,
    provisioning_deadline_fails_with_a_reason,
    discovery_peers_and_check_access_follow_the_org_tree,
    activity_is_logged_filtered_and_validated,
    pause_resume_restart_cascade_with_events,
    dev_mode_lets_a_tokenless_workspace_bootstrap,
    external_workspaces_join_with_a_connection_and_expire_after_90s,
    metrics_count_what_happened_and_read_the_database_at_each_scrape,
);

/// Events of a workspace, oldest first: `(event_type, payload)`.
async fn events_of(server: &Running, id: &str) -> Vec<(String, Value)> {
    let (status, events) = server.get(&format!("/events/{id}")).await;
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

fn types(events: &[(String, Value)]) -> Vec<&str> {
    events.iter().map(|(t, _)| t.as_str()).collect()
}

async fn create(server: &Running, body: Value) -> String {
    server.create(&body).await["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn bootstrap(server: &Running, id: &str) -> String {
    let (status, body) = server
        .post(
            &format!("/admin/workspaces/{id}/bootstrap-token"),
            &json!({}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    body["bootstrap_token"].as_str().unwrap().to_owned()
}

/// Register `id`'s agent with a fresh bootstrap token; its workspace token.
async fn register(server: &Running, id: &str) -> String {
    let bootstrap = bootstrap(server, id).await;
    let (status, body) = server
        .post_as(
            "/registry/register",
            &json!({"id": id, "url": "http://localhost:9000/a2a", "agent_card": {"name": id}}),
            Some(&bootstrap),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "registered");
    body["auth_token"].as_str().unwrap().to_owned()
}

async fn beat(server: &Running, token: &str, body: Value) -> (u16, Value) {
    server
        .post_as("/registry/heartbeat", &body, Some(token))
        .await
}

async fn status_of(server: &Running, id: &str) -> String {
    let (_, row) = server.get(&format!("/workspaces/{id}")).await;
    row["status"].as_str().unwrap().to_owned()
}

async fn register_heartbeat_degrade_recover(db: Db) {
    let env = Env::new(db).await;
    let server = spawn(env.config()).await;
    let id = create(&server, json!({"name": "agent"})).await;
    assert_eq!(status_of(&server, &id).await, "provisioning");

    // Outside dev mode a first registration needs a credential.
    let (status, body) = server
        .post_as(
            "/registry/register",
            &json!({"id": id, "url": "http://localhost:9000", "agent_card": {}}),
            None,
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("missing workspace auth token"))
    );

    let token = register(&server, &id).await;
    assert_eq!(
        token.len(),
        43,
        "32 random bytes, base64url without padding"
    );
    let (_, row) = server.get(&format!("/workspaces/{id}")).await;
    assert_eq!(row["status"], "online");
    assert_eq!(row["url"], "http://localhost:9000/a2a");
    assert_eq!(row["agent_card"], json!({"name": id}));

    // A re-register (with its own token) gets no new token and revokes nothing.
    let (status, body) = server
        .post_as(
            "/registry/register",
            &json!({"id": id, "url": "http://localhost:9001/", "agent_card": {"v": 2}}),
            Some(&token),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!({"status": "registered"}));
    let (status, _) = beat(&server, &token, json!({"workspace_id": id})).await;
    assert_eq!(status, 200);
    let (_, row) = server.get(&format!("/workspaces/{id}")).await;
    assert_eq!(row["url"], "http://localhost:9001/", "stored verbatim");

    // Heartbeats: degraded at ≥ 0.5, hysteresis in between, online again below 0.1.
    let (status, body) = beat(
        &server,
        &token,
        json!({"workspace_id": id, "error_rate": 0.6, "sample_error": "rate limited",
               "active_tasks": 2, "uptime_seconds": 30, "current_task": "triage"}),
    )
    .await;
    assert_eq!((status, body), (200, json!({"status": "ok"})));
    assert_eq!(status_of(&server, &id).await, "degraded");
    beat(
        &server,
        &token,
        json!({"workspace_id": id, "error_rate": 0.3}),
    )
    .await;
    assert_eq!(status_of(&server, &id).await, "degraded");
    beat(
        &server,
        &token,
        json!({"workspace_id": id, "error_rate": 0.05, "active_tasks": 1, "uptime_seconds": 90,
               "current_task": "writing"}),
    )
    .await;
    assert_eq!(status_of(&server, &id).await, "online");
    // A beat that changes no status waits in the buffer; a flush writes the snapshot.
    beat(
        &server,
        &token,
        json!({"workspace_id": id, "error_rate": 0.01, "active_tasks": 3, "uptime_seconds": 120,
               "current_task": "reviewing", "sample_error": "", "monthly_spend": 250}),
    )
    .await;
    server.app.flush_heartbeats().await;
    let (_, list) = server.get("/workspaces").await;
    let full = &list.as_array().unwrap()[0];
    assert_eq!(full["active_tasks"], 3);
    assert_eq!(full["uptime_seconds"], 120);
    assert_eq!(full["current_task"], "reviewing");
    assert_eq!(full["last_error_rate"], 0.01);
    assert_eq!(full["monthly_spend"], 250);

    let events = events_of(&server, &id).await;
    assert_eq!(
        types(&events),
        [
            "WORKSPACE_PROVISIONING",
            "WORKSPACE_ONLINE",
            "WORKSPACE_ONLINE",
            "WORKSPACE_DEGRADED",
            "WORKSPACE_ONLINE",
        ],
        "heartbeats and task changes are broadcast-only: {events:?}"
    );
    assert_eq!(
        events[1].1,
        json!({"url": "http://localhost:9000/a2a", "agent_card": {"name": id}})
    );
    assert_eq!(
        events[3].1,
        json!({"error_rate": 0.6, "sample_error": "rate limited"})
    );
    assert_eq!(events[4].1, json!({}));
}

async fn heartbeats_are_validated_and_gone_workspaces_refused(db: Db) {
    let env = Env::new(db).await;
    let server = spawn(env.config()).await;
    let id = create(&server, json!({"name": "agent"})).await;
    let token = register(&server, &id).await;
    // Bad heartbeats are refused with the field named; nothing changes.
    for (body, field) in [
        (json!({"workspace_id": id, "error_rate": 1.5}), "error_rate"),
        (
            json!({"workspace_id": id, "active_tasks": -1}),
            "active_tasks",
        ),
        (
            json!({"workspace_id": id, "runtime_state": "sleepy"}),
            "runtime_state",
        ),
        (
            json!({"workspace_id": id, "current_task": "x".repeat(5000)}),
            "current_task",
        ),
        (json!({"error_rate": 0.1}), "workspace_id"),
        (json!({"workspace_id": "not-a-uuid"}), "workspace_id"),
    ] {
        let (status, answer) = beat(&server, &token, body).await;
        assert_eq!(status, 400, "{answer}");
        assert_eq!(answer["error"], "invalid request body");
        assert_eq!(answer["field"], field, "{answer}");
    }
    let (status, answer) = beat(
        &server,
        &token,
        json!({"workspace_id": id, "error_rate": "high"}),
    )
    .await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (400, Some("invalid request body"))
    );

    // A wedged runtime degrades even at a zero error rate.
    beat(
        &server,
        &token,
        json!({"workspace_id": id, "runtime_state": "wedged", "sample_error": "stuck"}),
    )
    .await;
    assert_eq!(status_of(&server, &id).await, "degraded");

    // update-card stores the card and says so in an event.
    let (status, body) = server
        .post_as(
            "/registry/update-card",
            &json!({"workspace_id": id, "agent_card": {"name": "renamed", "skills": []}}),
            Some(&token),
        )
        .await;
    assert_eq!((status, body), (200, json!({"status": "updated"})));
    let (_, row) = server.get(&format!("/workspaces/{id}")).await;
    assert_eq!(row["agent_card"]["name"], "renamed");
    let events = events_of(&server, &id).await;
    assert_eq!(events.last().unwrap().0, "AGENT_CARD_UPDATED");

    // Removed: heartbeats and registrations get 410; unknown ids 404.
    let (status, _) = server.delete(&format!("/workspaces/{id}")).await;
    assert_eq!(status, 200);
    let (status, _) = beat(&server, &token, json!({"workspace_id": id})).await;
    assert_eq!(status, 401, "deleting a workspace revokes its tokens");
    // Its agent still learns to stop: /state answers the removal before the gate.
    let (status, state) = server
        .get_as(&format!("/workspaces/{id}/state"), Some(&token))
        .await;
    assert_eq!(status, 404);
    assert_eq!(
        state,
        json!({"workspace_id": id, "status": "removed", "deleted": true})
    );
    let unknown = "00000000-0000-4000-8000-000000000000";
    let (status, body) = server
        .post("/registry/heartbeat", &json!({"workspace_id": unknown}))
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (404, Some("workspace not found"))
    );
    let (status, _) = server
        .post("/registry/heartbeat", &json!({"workspace_id": id}))
        .await;
    assert_eq!(status, 410);
}

#[allow(clippy::too_many_lines, reason = "one story, step by step")]
async fn tokens_authenticate_only_their_own_workspace(db: Db) {
    let env = Env::new(db).await;
    let server = spawn(env.config()).await;
    let alpha = create(&server, json!({"name": "a"})).await;
    let beta = create(&server, json!({"name": "b"})).await;
    let token_a = register(&server, &alpha).await;
    let token_b = register(&server, &beta).await;

    // A's token cannot beat, update, read or write as B.
    let (status, body) = beat(&server, &token_a, json!({"workspace_id": beta})).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid workspace auth token"))
    );
    let (status, _) = server
        .post_as(
            "/registry/update-card",
            &json!({"workspace_id": beta, "agent_card": {}}),
            Some(&token_a),
        )
        .await;
    assert_eq!(status, 401);
    let (status, _) = server
        .get_as(&format!("/workspaces/{beta}"), Some(&token_a))
        .await;
    assert_eq!(status, 401);
    let (status, _) = server
        .request_as(
            reqwest::Method::PATCH,
            &format!("/workspaces/{beta}"),
            Some(&json!({"name": "x"})),
            Some(&token_a),
        )
        .await;
    assert_eq!(status, 401);
    let (status, _) = server
        .get_as(
            &format!("/workspaces/{beta}/secrets/values"),
            Some(&token_a),
        )
        .await;
    assert_eq!(status, 401);
    // Its own workspace: yes. Admin routes: never.
    let (status, _) = server
        .get_as(&format!("/workspaces/{alpha}"), Some(&token_a))
        .await;
    assert_eq!(status, 200);
    let (status, body) = server.get_as("/workspaces", Some(&token_a)).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid admin auth token"))
    );
    let response = server
        .client
        .get(format!("{}/workspaces", server.base))
        .header("Authorization", "Basic YWRtaW46YWRtaW4=")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body["error"], "admin auth required",
        "another scheme counts as no token"
    );
    let (status, _) = server.get_as("/settings/secrets", Some(&token_a)).await;
    assert_eq!(status, 401);

    // Tokens: listed without values, revocable; a revoked token is refused.
    let (status, created) = server
        .request_as(
            reqwest::Method::POST,
            &format!("/workspaces/{beta}/tokens"),
            None,
            Some(&token_b),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let second_b = created["auth_token"].as_str().unwrap().to_owned();
    let (_, listed) = server
        .get_as(&format!("/workspaces/{beta}/tokens"), Some(&second_b))
        .await;
    assert_eq!(listed["count"], 2);
    let listed_text = listed.to_string();
    assert!(!listed_text.contains(&token_b) && !listed_text.contains(&second_b));
    let first = listed["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| token_b.starts_with(t["prefix"].as_str().unwrap()))
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, body) = server
        .request_as(
            reqwest::Method::DELETE,
            &format!("/workspaces/{beta}/tokens/{first}"),
            None,
            Some(&second_b),
        )
        .await;
    assert_eq!((status, body), (200, json!({"status": "revoked"})));
    let (status, _) = beat(&server, &token_b, json!({"workspace_id": beta})).await;
    assert_eq!(status, 401, "revoked");
    let (status, _) = beat(&server, &second_b, json!({"workspace_id": beta})).await;
    assert_eq!(status, 200, "the other token still works");
    let (status, body) = server
        .request_as(
            reqwest::Method::DELETE,
            &format!("/workspaces/{beta}/tokens/{first}"),
            None,
            Some(&second_b),
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (404, Some("token not found or already revoked"))
    );
}

async fn bootstrap_tokens_are_single_purpose_and_expire(db: Db) {
    let env = Env::new(db).await;
    let server = spawn(env.config()).await;
    let alpha = create(&server, json!({"name": "a"})).await;
    // Bootstrap tokens: single-purpose (register only), consumed by use, and they expire.
    let gamma = create(&server, json!({"name": "c"})).await;
    let boot = bootstrap(&server, &gamma).await;
    let (status, _) = beat(&server, &boot, json!({"workspace_id": gamma})).await;
    assert_eq!(status, 401, "a bootstrap token is not a workspace token");
    let (status, _) = server
        .post_as(
            "/registry/register",
            &json!({"id": alpha, "url": "http://localhost:1", "agent_card": {}}),
            Some(&boot),
        )
        .await;
    assert_eq!(status, 401, "another workspace's bootstrap token");
    let register_c = json!({"id": gamma, "url": "http://localhost:2", "agent_card": {}});
    let (status, body) = server
        .post_as("/registry/register", &register_c, Some(&boot))
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(body["auth_token"].is_string());
    let (status, _) = server
        .post_as("/registry/register", &register_c, Some(&boot))
        .await;
    assert_eq!(status, 401, "consumed by the first registration");
    // Two registrations racing with one bootstrap token: exactly one wins.
    let racer = create(&server, json!({"name": "racer"})).await;
    let boot = bootstrap(&server, &racer).await;
    let body = json!({"id": racer, "url": "http://localhost:4", "agent_card": {}});
    let (first, second) = tokio::join!(
        server.post_as("/registry/register", &body, Some(&boot)),
        server.post_as("/registry/register", &body, Some(&boot)),
    );
    let mut statuses = [first.0, second.0];
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 401], "{first:?} {second:?}");

    let delta = create(&server, json!({"name": "d"})).await;
    let expiring = bootstrap(&server, &delta).await;
    env.clock.advance(Duration::from_mins(11));
    let (status, _) = server
        .post_as(
            "/registry/register",
            &json!({"id": delta, "url": "http://localhost:3", "agent_card": {}}),
            Some(&expiring),
        )
        .await;
    assert_eq!(status, 401, "expired with the provisioning deadline");

    // 50 live tokens at most.
    let epsilon = create(&server, json!({"name": "e"})).await;
    for _ in 0..50 {
        let (status, _) = server
            .post(&format!("/workspaces/{epsilon}/tokens"), &json!({}))
            .await;
        assert_eq!(status, 201);
    }
    let (status, body) = server
        .post(&format!("/workspaces/{epsilon}/tokens"), &json!({}))
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (429, Some("maximum 50 active tokens per workspace"))
    );
}

/// `test-token` mints a token with no credential of the workspace's own: dev mode only
/// (spec §4, a "must differ"). Elsewhere it is a route that is not there, for the admin
/// too, and mints nothing; the admin mints with `POST /workspaces/:id/tokens`.
async fn test_tokens_exist_only_in_dev_mode(db: Db) {
    let env = Env::new(db).await;
    let server = spawn(env.config()).await;
    let id = create(&server, json!({"name": "w"})).await;
    let live = || async {
        let (status, tokens) = server.get(&format!("/workspaces/{id}/tokens")).await;
        assert_eq!(status, 200, "{tokens}");
        tokens["count"].as_i64().unwrap()
    };
    let before = live().await;
    for bearer in [Some(TOKEN), None, Some("whatever")] {
        let (status, body) = server
            .get_as(&format!("/admin/workspaces/{id}/test-token"), bearer)
            .await;
        assert_eq!(
            (status, body["code"].as_str()),
            (404, Some("not_found")),
            "{bearer:?}: {body}"
        );
    }
    assert_eq!(live().await, before, "nothing minted");
    let (status, minted) = server
        .post(&format!("/workspaces/{id}/tokens"), &json!({}))
        .await;
    assert_eq!(status, 201, "{minted}");
    assert_eq!(live().await, before + 1);
    // A malformed id is refused as one, as on every route.
    let (status, body) = server.get("/admin/workspaces/nope/test-token").await;
    assert_eq!(status, 400, "{body}");
}

async fn tokens_are_stored_as_hashes_only(db: Db) {
    let env = Env::new(db).await;
    let server = spawn(env.config()).await;
    let id = create(&server, json!({"name": "w"})).await;
    let token = register(&server, &id).await;
    let (_, minted) = server
        .post(&format!("/workspaces/{id}/tokens"), &json!({}))
        .await;
    let minted = minted["auth_token"].as_str().unwrap().to_owned();
    server.stop().await;
    let stored = common::dump_table(&env, "workspace_tokens").await;
    assert!(
        stored.contains(&token[..8]),
        "the display prefix is kept: {stored}"
    );
    for plaintext in [&token, &minted] {
        assert!(
            !stored.contains(plaintext.as_str()),
            "plaintext token stored: {stored}"
        );
    }
}

async fn liveness_expires_silent_workspaces_across_restarts_and_replicas(db: Db) {
    let env = Env::new(db).await;
    let server = spawn(env.config()).await;
    let quiet = create(&server, json!({"name": "quiet"})).await;
    let chatty = create(&server, json!({"name": "chatty"})).await;
    let quiet_token = register(&server, &quiet).await;
    let chatty_token = register(&server, &chatty).await;

    env.clock.advance(Duration::from_secs(40));
    beat(&server, &chatty_token, json!({"workspace_id": chatty})).await;
    assert_eq!(
        server.app.sweep_liveness().await.unwrap(),
        0,
        "within the 60 s TTL"
    );

    // A restart in the middle: the buffered beat is written on the way down, and the
    // deadlines live in the database, so the new process decides the same.
    server.stop().await;
    let server = spawn(env.config()).await;
    env.clock.advance(Duration::from_secs(30));
    assert_eq!(server.app.sweep_liveness().await.unwrap(), 1);
    assert_eq!(status_of(&server, &quiet).await, "offline");
    assert_eq!(status_of(&server, &chatty).await, "online");
    let (_, metrics) = server.get("/metrics").await;
    assert!(
        metrics
            .as_str()
            .unwrap()
            .contains("hatchery_liveness_expired_total 1\n"),
        "{metrics}"
    );
    assert_eq!(
        events_of(&server, &quiet).await.last().unwrap(),
        &("WORKSPACE_OFFLINE".to_owned(), json!({}))
    );

    // Two replicas on one database sweep at once: one transition, one event.
    let replica = spawn(env.config()).await;
    env.clock.advance(Duration::from_secs(61));
    let (first, second) = tokio::join!(server.app.sweep_liveness(), replica.app.sweep_liveness());
    assert_eq!(
        first.unwrap() + second.unwrap(),
        1,
        "chatty went offline exactly once"
    );
    let offline = types(&events_of(&server, &chatty).await)
        .iter()
        .filter(|t| **t == "WORKSPACE_OFFLINE")
        .count();
    assert_eq!(offline, 1);
    // And a heartbeat on either replica brings it back.
    let (status, _) = replica
        .post_as(
            "/registry/heartbeat",
            &json!({"workspace_id": quiet}),
            Some(&quiet_token),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(status_of(&server, &quiet).await, "online");
    replica.stop().await;
}

async fn provisioning_deadline_fails_with_a_reason(db: Db) {
    let env = Env::new(db).await;
    let server = spawn(env.config()).await;
    let plain = create(&server, json!({"name": "plain", "runtime": "langgraph"})).await;
    let hermes = create(&server, json!({"name": "slow", "runtime": "hermes"})).await;
    let registered = create(&server, json!({"name": "up"})).await;
    register(&server, &registered).await;

    env.clock.advance(Duration::from_mins(9));
    assert_eq!(server.app.sweep_provisioning().await.unwrap(), 0);
    server.stop().await;
    let server = spawn(env.config()).await;
    let replica = spawn(env.config()).await;
    env.clock.advance(Duration::from_mins(2));
    let (first, second) = tokio::join!(
        server.app.sweep_provisioning(),
        replica.app.sweep_provisioning()
    );
    assert_eq!(
        first.unwrap() + second.unwrap(),
        1,
        "one failure, decided once"
    );
    let (_, row) = server.get(&format!("/workspaces/{plain}")).await;
    assert_eq!(row["status"], "failed");
    let reason = row["failure_reason"].as_str().unwrap();
    assert!(
        reason.contains("no agent registered within 10m"),
        "{reason}"
    );
    assert!(reason.contains("never claimed"), "{reason}");
    let events = events_of(&server, &plain).await;
    assert_eq!(events.last().unwrap().0, "WORKSPACE_PROVISION_FAILED");
    assert_eq!(events.last().unwrap().1["error"], reason);
    assert_eq!(
        status_of(&server, &hermes).await,
        "provisioning",
        "hermes gets 30 minutes"
    );
    assert_eq!(
        status_of(&server, &registered).await,
        "online",
        "registered: not the provisioning sweep's business"
    );

    env.clock.advance(Duration::from_mins(20));
    assert_eq!(server.app.sweep_provisioning().await.unwrap(), 1);
    assert_eq!(status_of(&server, &hermes).await, "failed");
    // A restart gives a failed workspace a fresh deadline.
    let (status, _) = server
        .post(&format!("/workspaces/{plain}/restart"), &json!({}))
        .await;
    assert_eq!(status, 200);
    let (_, row) = server.get(&format!("/workspaces/{plain}")).await;
    assert_eq!(
        (row["status"].as_str(), &row["failure_reason"]),
        (Some("provisioning"), &Value::Null)
    );
    assert_eq!(server.app.sweep_provisioning().await.unwrap(), 0);
    replica.stop().await;
}

#[allow(clippy::too_many_lines, reason = "one story, step by step")]
async fn discovery_peers_and_check_access_follow_the_org_tree(db: Db) {
    let env = Env::new(db).await;
    let server = spawn(env.config()).await;
    // pm ── lead ── researcher
    //    └─ writer           other (a second root)
    // (The clock moves between creates so their order is the order of creation.)
    let tick = || env.clock.advance(Duration::from_millis(1));
    let pm = create(&server, json!({"name": "PM", "role": "lead the team"})).await;
    tick();
    let lead = create(&server, json!({"name": "Research Lead", "parent_id": pm})).await;
    tick();
    let researcher = create(&server, json!({"name": "Researcher", "parent_id": lead})).await;
    tick();
    let writer = create(&server, json!({"name": "Writer", "parent_id": pm})).await;
    tick();
    let other = create(&server, json!({"name": "Other"})).await;
    let mut tokens = std::collections::HashMap::new();
    for id in [&pm, &lead, &researcher, &writer, &other] {
        tokens.insert(id.clone(), register(&server, id).await);
    }
    let discover = |caller: &str, target: &str| {
        let token = tokens[caller].clone();
        let url = format!("{}/registry/discover/{target}", server.base);
        let caller = caller.to_owned();
        let client = server.client.clone();
        async move {
            let response = client
                .get(url)
                .bearer_auth(token)
                .header("X-Workspace-ID", caller)
                .send()
                .await
                .unwrap();
            (
                response.status().as_u16(),
                response.json::<Value>().await.unwrap(),
            )
        }
    };
    // Allowed: self, siblings, roots with roots, ancestors and descendants at any depth.
    for (caller, target) in [
        (&researcher, &researcher),
        (&lead, &writer),
        (&pm, &other),
        (&researcher, &pm),
        (&pm, &researcher),
    ] {
        let (status, body) = discover(caller, target).await;
        assert_eq!(status, 200, "{caller} → {target}: {body}");
        assert_eq!(body["id"], target.as_str());
        assert_eq!(body["url"], "http://localhost:9000/a2a");
    }
    // Denied: cousins and uncles, other teams.
    for (caller, target) in [
        (&researcher, &writer),
        (&writer, &researcher),
        (&other, &lead),
    ] {
        let (status, body) = discover(caller, target).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (403, Some("not authorized to discover this workspace"))
        );
    }
    // The header is required, and the bearer must be the caller's own.
    let (status, body) = server
        .get_as(&format!("/registry/discover/{pm}"), Some(&tokens[&lead]))
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("X-Workspace-ID header is required"))
    );
    let response = server
        .client
        .get(format!("{}/registry/discover/{pm}", server.base))
        .bearer_auth(&tokens[&other])
        .header("X-Workspace-ID", lead.as_str())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 401);
    // A target that is not up: 503 with its status.
    server
        .post(&format!("/workspaces/{writer}/pause"), &json!({}))
        .await;
    let (status, body) = discover(&lead, &writer).await;
    assert_eq!((status, body["status"].as_str()), (503, Some("paused")));

    // Peers: siblings, then children, then the parent; ?q= filters by name or role.
    let (status, peers) = server
        .get_as(&format!("/registry/{lead}/peers"), Some(&tokens[&lead]))
        .await;
    assert_eq!(status, 200, "{peers}");
    let names: Vec<&str> = peers
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Writer", "Researcher", "PM"]);
    let (_, peers) = server
        .get_as(
            &format!("/registry/{lead}/peers?q=TEAM"),
            Some(&tokens[&lead]),
        )
        .await;
    assert_eq!(
        peers.as_array().unwrap().len(),
        1,
        "PM's role matches: {peers}"
    );
    let (_, peers) = server
        .get_as(&format!("/registry/{pm}/peers"), Some(&tokens[&pm]))
        .await;
    let names: Vec<&str> = peers
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Other", "Research Lead", "Writer"]);
    let (status, _) = server
        .get_as(&format!("/registry/{pm}/peers"), Some(&tokens[&lead]))
        .await;
    assert_eq!(status, 401);

    // check-access: the caller's own bearer (or the admin) asks; deny by default.
    let server = &server;
    let check = |caller: &str, target: &str, token: Option<&str>| {
        let body = json!({"caller_id": caller, "target_id": target});
        let token = token.map(str::to_owned);
        async move {
            server
                .post_as("/registry/check-access", &body, token.as_deref())
                .await
        }
    };
    assert_eq!(
        check(&lead, &researcher, Some(&tokens[&lead])).await,
        (200, json!({"allowed": true}))
    );
    assert_eq!(
        check(&researcher, &writer, Some(&tokens[&researcher])).await,
        (200, json!({"allowed": false}))
    );
    assert_eq!(
        check(&researcher, &writer, Some(common::TOKEN)).await,
        (200, json!({"allowed": false}))
    );
    assert_eq!(check(&lead, &researcher, None).await.0, 401);
    assert_eq!(
        check(&lead, &researcher, Some(&tokens[&other])).await.0,
        401
    );
    server.delete(&format!("/workspaces/{researcher}")).await;
    assert_eq!(
        check(&lead, &researcher, Some(&tokens[&lead])).await,
        (200, json!({"allowed": false}))
    );
    let (status, body) = server
        .post("/registry/check-access", &json!({"caller_id": lead}))
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid request body"))
    );
    let (status, body) = server
        .post(
            "/registry/check-access",
            &json!({"caller_id": "nope", "target_id": lead}),
        )
        .await;
    assert_eq!((status, body["field"].as_str()), (400, Some("caller_id")));
}

async fn activity_is_logged_filtered_and_validated(db: Db) {
    let env = Env::new(db).await;
    let server = spawn(env.config()).await;
    let id = create(&server, json!({"name": "w"})).await;
    let peer = create(&server, json!({"name": "peer"})).await;
    let token = register(&server, &id).await;
    let path = format!("/workspaces/{id}/activity");
    let server = &server;
    let report = |body: Value| {
        let path = path.clone();
        let token = token.clone();
        async move { server.post_as(&path, &body, Some(&token)).await }
    };
    assert_eq!(
        report(
            json!({"activity_type": "a2a_send", "method": "message/send", "target_id": peer,
                      "summary": "asked for a review", "duration_ms": 120,
                      "request_body": {"text": "hi"}})
        )
        .await,
        (200, json!({"status": "logged"}))
    );
    env.clock.advance(Duration::from_millis(5));
    assert_eq!(
        report(json!({"activity_type": "error", "status": "error", "error_detail": "boom", "source_id": ""})).await,
        (200, json!({"status": "logged"}))
    );
    let (status, body) = report(json!({"activity_type": "gossip"})).await;
    assert_eq!(status, 400);
    assert_eq!(
        body["error"],
        "invalid activity_type, must be one of: a2a_send, a2a_receive, task_update, agent_log, skill_promotion, memory_write, error"
    );
    let (status, body) = report(json!({"summary": "no type"})).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid request body"))
    );
    let (status, body) = report(json!({"activity_type": "agent_log", "source_id": peer})).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (403, Some("source_id must match authenticated workspace"))
    );
    let (status, body) = report(json!({"activity_type": "agent_log", "target_id": "nope"})).await;
    assert_eq!((status, body["field"].as_str()), (400, Some("target_id")));
    let (status, _) = server
        .post_as(
            &format!("/workspaces/{peer}/activity"),
            &json!({"activity_type": "agent_log"}),
            Some(&token),
        )
        .await;
    assert_eq!(status, 401, "only for its own workspace");

    let (status, rows) = server.get_as(&path, Some(&token)).await;
    assert_eq!(status, 200);
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["activity_type"], "error", "newest first");
    assert_eq!(rows[0]["source_id"], id.as_str());
    assert_eq!(rows[0]["method"], Value::Null);
    assert!(
        rows[0].get("request_body").is_none(),
        "bodies only when stored"
    );
    assert_eq!(rows[1]["request_body"], json!({"text": "hi"}));
    assert_eq!(rows[1]["target_id"], peer.as_str());
    assert_eq!(rows[1]["duration_ms"], 120);
    let (_, filtered) = server
        .get_as(&format!("{path}?type=a2a_send&limit=abc"), Some(&token))
        .await;
    assert_eq!(filtered.as_array().unwrap().len(), 1);
    let (_, limited) = server
        .get_as(&format!("{path}?limit=1"), Some(&token))
        .await;
    assert_eq!(limited.as_array().unwrap().len(), 1);
    let (_, canvas) = server
        .get_as(&format!("{path}?source=canvas"), Some(&token))
        .await;
    assert_eq!(canvas, json!([]));
    let (status, body) = server
        .get_as(&format!("{path}?source=robot"), Some(&token))
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("source must be 'canvas' or 'agent'"))
    );
    // Activity is not an event.
    assert!(!types(&events_of(server, &id).await).contains(&"ACTIVITY_LOGGED"));
    // Retention: a week later it is gone.
    env.clock.advance(Duration::from_hours(8 * 24));
    assert_eq!(server.app.prune_activity().await.unwrap(), 2);
}

#[allow(clippy::too_many_lines, reason = "one story, step by step")]
async fn pause_resume_restart_cascade_with_events(db: Db) {
    let env = Env::new(db).await;
    let server = spawn(env.config()).await;
    let root = create(&server, json!({"name": "root"})).await;
    let child = create(
        &server,
        json!({"name": "child", "parent_id": root, "runtime": "langgraph"}),
    )
    .await;
    let grandchild = create(&server, json!({"name": "grandchild", "parent_id": child})).await;
    register(&server, &child).await;

    let (status, body) = server
        .post(&format!("/workspaces/{root}/pause"), &json!({}))
        .await;
    assert_eq!(
        (status, body),
        (200, json!({"status": "paused", "paused_count": 3}))
    );
    for id in [&root, &child, &grandchild] {
        assert_eq!(status_of(&server, id).await, "paused");
        assert_eq!(
            events_of(&server, id).await.last().unwrap().0,
            "WORKSPACE_PAUSED"
        );
    }
    let (_, row) = server.get(&format!("/workspaces/{child}")).await;
    assert_eq!(row["url"], "", "pause clears the URL");
    let (status, body) = server
        .post(&format!("/workspaces/{root}/pause"), &json!({}))
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (404, Some("workspace not found or already paused"))
    );
    // A paused workspace does not register back to online.
    let (status, _) = server
        .post(
            "/registry/register",
            &json!({"id": child, "url": "http://localhost:1", "agent_card": {}}),
        )
        .await;
    assert_eq!(status, 409);
    // Resuming a child under a paused parent is refused.
    let (status, body) = server
        .post(&format!("/workspaces/{child}/resume"), &json!({}))
        .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(
        body["error"],
        "parent workspace \"root\" is paused — resume it first"
    );
    let (status, body) = server
        .post(&format!("/workspaces/{root}/resume"), &json!({}))
        .await;
    assert_eq!(
        (status, body),
        (200, json!({"status": "provisioning", "resumed_count": 3}))
    );
    let events = events_of(&server, &grandchild).await;
    assert_eq!(
        types(&events),
        [
            "WORKSPACE_PROVISIONING",
            "WORKSPACE_PAUSED",
            "WORKSPACE_PROVISIONING"
        ]
    );
    assert_eq!(
        events[2].1,
        json!({"name": "grandchild", "tier": 2, "runtime": "langgraph"})
    );
    let (status, body) = server
        .post(&format!("/workspaces/{root}/resume"), &json!({}))
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (404, Some("workspace not found or not paused"))
    );

    // Restart: provisioning, URL cleared, a job queued.
    register(&server, &child).await;
    let jobs_before = server.store.job_list().await.unwrap().len();
    let (status, body) = server
        .post(&format!("/workspaces/{child}/restart"), &json!({}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "provisioning");
    let (_, row) = server.get(&format!("/workspaces/{child}")).await;
    assert_eq!(
        (row["status"].as_str(), row["url"].as_str()),
        (Some("provisioning"), Some(""))
    );
    // A workspace created without a runtime waits for its agent again: no job for it.
    let (status, _) = server
        .post(&format!("/workspaces/{root}/restart"), &json!({}))
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        server.store.job_list().await.unwrap().len(),
        jobs_before + 1
    );
    let (_, state) = server.get(&format!("/workspaces/{child}/state")).await;
    assert_eq!(
        state,
        json!({"workspace_id": child, "status": "provisioning", "paused": false, "deleted": false})
    );
    server.delete(&format!("/workspaces/{grandchild}")).await;
    let (status, state) = server.get(&format!("/workspaces/{grandchild}/state")).await;
    assert_eq!((status, state["deleted"].as_bool()), (404, Some(true)));
    let (status, _) = server
        .post(&format!("/workspaces/{grandchild}/restart"), &json!({}))
        .await;
    assert_eq!(status, 404);
}

async fn dev_mode_lets_a_tokenless_workspace_bootstrap(db: Db) {
    let env = Env::new(db).await;
    let mut config = env.config();
    config.dev = true;
    config.admin_token = None;
    let server = spawn(config).await;
    let id = create(&server, json!({"name": "w"})).await;
    // No bearer: a workspace with no token may register, and receives one.
    let register_body = json!({"id": id, "url": "http://localhost:7000", "agent_card": {}});
    let (status, body) = server
        .post_as("/registry/register", &register_body, None)
        .await;
    assert_eq!(status, 200, "{body}");
    let token = body["auth_token"].as_str().unwrap().to_owned();
    // Now it holds one: anonymous calls about it need it, and a wrong bearer is refused.
    let (status, _) = server
        .post_as("/registry/heartbeat", &json!({"workspace_id": id}), None)
        .await;
    assert_eq!(status, 401);
    let (status, _) = server
        .post_as(
            "/registry/heartbeat",
            &json!({"workspace_id": id}),
            Some("nonsense"),
        )
        .await;
    assert_eq!(status, 401);
    let (status, _) = server
        .post_as(
            "/registry/heartbeat",
            &json!({"workspace_id": id}),
            Some(&token),
        )
        .await;
    assert_eq!(status, 200);
    // Workspace routes: no bearer passes in dev mode; admin routes take any bearer.
    let (status, _) = server.get_as(&format!("/workspaces/{id}"), None).await;
    assert_eq!(status, 200);
    let (status, _) = server.get_as("/workspaces", Some("whatever")).await;
    assert_eq!(status, 200);
    let (status, body) = server
        .get_as(&format!("/admin/workspaces/{id}/test-token"), None)
        .await;
    assert_eq!(status, 200, "{body}");
}

#[allow(clippy::too_many_lines, reason = "one story, step by step")]
async fn external_workspaces_join_with_a_connection_and_expire_after_90s(db: Db) {
    let env = Env::new(db).await;
    let server = spawn(env.config()).await;
    let jobs_before = server.store.job_list().await.unwrap().len();

    // With a URL: online at once, no provision job.
    let (status, body) = server
        .post(
            "/workspaces",
            &json!({"name": "fed", "external": true, "url": "https://93.184.215.14/a2a"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        (body["status"].as_str(), body["external"].as_bool()),
        (Some("online"), Some(true))
    );
    let online = body["id"].as_str().unwrap().to_owned();
    // Its agent beats with the token of its connection bundle.
    let online_token = body["connection"]["auth_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, _) = beat(&server, &online_token, json!({"workspace_id": online})).await;
    assert_eq!(status, 200);
    assert_eq!(
        types(&events_of(&server, &online).await),
        ["WORKSPACE_PROVISIONING", "WORKSPACE_ONLINE"]
    );
    // Refused URLs (the metadata address also as IPv6 forms that embed it: compatible,
    // mapped, NAT64, 6to4), and a URL on a workspace hatchery runs.
    for (body, code) in [
        (
            json!({"name": "x", "external": true, "url": "http://169.254.169.254/"}),
            "invalid_url",
        ),
        (
            json!({"name": "x", "external": true, "url": "http://[::169.254.169.254]/"}),
            "invalid_url",
        ),
        (
            json!({"name": "x", "external": true, "url": "http://[::ffff:a9fe:a9fe]/"}),
            "invalid_url",
        ),
        (
            json!({"name": "x", "external": true, "url": "http://[64:ff9b::a9fe:a9fe]/"}),
            "invalid_url",
        ),
        (
            json!({"name": "x", "external": true, "url": "http://[2002:a9fe:a9fe::1]/"}),
            "invalid_url",
        ),
        (
            json!({"name": "x", "external": true, "url": "file:///etc/passwd"}),
            "invalid_url",
        ),
        (
            json!({"name": "x", "url": "https://93.184.215.14/"}),
            "url_without_external",
        ),
    ] {
        let (status, answer) = server.post("/workspaces", &body).await;
        assert_eq!(
            (status, answer["code"].as_str()),
            (400, Some(code)),
            "{answer}"
        );
    }

    // Without: awaiting its agent, with what it needs to join (the token shown once).
    let (status, body) = server
        .post("/workspaces", &json!({"name": "later", "external": true}))
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["status"], "awaiting_agent");
    let waiting = body["id"].as_str().unwrap().to_owned();
    let connection = &body["connection"];
    assert_eq!(connection["workspace_id"], waiting.as_str());
    assert!(
        connection["registry_endpoint"]
            .as_str()
            .unwrap()
            .ends_with("/registry/register")
    );
    assert!(
        connection["heartbeat_endpoint"]
            .as_str()
            .unwrap()
            .ends_with("/registry/heartbeat")
    );
    let token = connection["auth_token"].as_str().unwrap().to_owned();
    assert!(
        connection["curl_register_template"]
            .as_str()
            .unwrap()
            .contains(&token)
    );
    assert!(
        connection["python_snippet"]
            .as_str()
            .unwrap()
            .contains(&waiting)
    );
    assert_eq!(
        server.store.job_list().await.unwrap().len(),
        jobs_before,
        "hatchery starts nothing"
    );
    // A heartbeat does not move awaiting_agent; the registration does.
    let (status, _) = beat(&server, &token, json!({"workspace_id": waiting})).await;
    assert_eq!(status, 200);
    assert_eq!(status_of(&server, &waiting).await, "awaiting_agent");
    let (status, body) = server
        .post_as(
            "/registry/register",
            &json!({"id": waiting, "url": "https://93.184.215.14/b", "agent_card": {"name": "later"}}),
            Some(&token),
        )
        .await;
    assert_eq!((status, body), (200, json!({"status": "registered"})));
    assert_eq!(status_of(&server, &waiting).await, "online");
    // Never provisioned, so never failed by the provisioning deadline.
    env.clock.advance(Duration::from_mins(11));
    assert_eq!(server.app.sweep_provisioning().await.unwrap(), 0);

    // External agents go offline after 90 s of silence, not 60.
    let internal = create(&server, json!({"name": "ours"})).await;
    let internal_token = register(&server, &internal).await;
    beat(&server, &token, json!({"workspace_id": waiting})).await;
    beat(&server, &internal_token, json!({"workspace_id": internal})).await;
    env.clock.advance(Duration::from_secs(75));
    server.app.sweep_liveness().await.unwrap();
    assert_eq!(status_of(&server, &internal).await, "offline");
    assert_eq!(status_of(&server, &waiting).await, "online");
    env.clock.advance(Duration::from_secs(20));
    server.app.sweep_liveness().await.unwrap();
    assert_eq!(status_of(&server, &waiting).await, "offline");
}

/// The sample of `name` (with its labels, exactly as exposed) in an exposition.
fn sample(metrics: &str, name: &str) -> Option<f64> {
    metrics.lines().find_map(|line| {
        let rest = line.strip_prefix(name)?.strip_prefix(' ')?;
        rest.parse().ok()
    })
}

async fn metrics_count_what_happened_and_read_the_database_at_each_scrape(db: Db) {
    let env = Env::new(db).await;
    let server = env.spawn().await;
    let scrape = || async {
        let (status, text) = server.get("/metrics").await;
        assert_eq!(status, 200);
        text.as_str().unwrap().to_owned()
    };
    let before = scrape().await;
    assert_eq!(
        sample(&before, "hatchery_provision_duration_seconds_count"),
        Some(0.0)
    );
    let id = create(
        &server,
        json!({"name": "a", "runtime": "claude-code", "model": "moonshot/kimi-k2.6"}),
    )
    .await;
    let (status, _) = server
        .post(
            "/workspaces",
            &json!({"name": "b", "runtime": "claude-code", "model": "anthropic:claude-opus-4-5"}),
        )
        .await;
    assert_eq!(status, 422, "a bring-your-own-key provider without a key");
    let metrics = scrape().await;
    assert_eq!(
        sample(
            &metrics,
            "hatchery_workspaces{status=\"provisioning\",backend=\"none\"}"
        ),
        Some(1.0),
        "{metrics}"
    );
    assert!(
        metrics.contains("hatchery_derive_outcomes_total{outcome=\"derived:prefix_match\"} 1")
            || metrics
                .contains("hatchery_derive_outcomes_total{outcome=\"derived:exact_model\"} 1"),
        "{metrics}"
    );
    assert_eq!(
        sample(
            &metrics,
            "hatchery_http_request_duration_seconds_count{method=\"POST\",route=\"/workspaces\",status=\"201\"}"
        ),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(
        sample(&metrics, "hatchery_provision_jobs_pending"),
        Some(1.0),
        "{metrics}"
    );

    // Registration ends provisioning: its duration is observed, the gauge follows.
    register(&server, &id).await;
    let metrics = scrape().await;
    assert_eq!(
        sample(&metrics, "hatchery_provision_duration_seconds_count"),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(
        sample(
            &metrics,
            "hatchery_workspaces{status=\"online\",backend=\"none\"}"
        ),
        Some(1.0),
        "{metrics}"
    );
    assert!(
        sample(
            &metrics,
            "hatchery_workspaces{status=\"provisioning\",backend=\"none\"}"
        )
        .is_none(),
        "{metrics}"
    );
}
