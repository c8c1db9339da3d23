//! The whole agent protocol against the real `hatchery serve` binary, on SQLite and on
//! Postgres: create → bootstrap → register → online → heartbeats → degraded → recovered →
//! update-card → discover / peers / check-access (allowed and denied) → activity → delete,
//! asserting the bodies and the events.

mod common;

use hatchery_testkit::{Db, TestDb};
use serde_json::{Value, json};

const TOKEN: &str = "protocol-admin-token";

hatchery_testkit::both_databases!(the_agent_protocol_end_to_end);

struct Server {
    _process: common::Serve,
    base: String,
    client: reqwest::Client,
}

impl Server {
    async fn start(data_dir: &std::path::Path, database_url: &str) -> Self {
        let process = common::Serve::start(&[
            ("HATCHERY_DATA_DIR", data_dir.display().to_string()),
            ("HATCHERY_DATABASE_URL", database_url.to_owned()),
            ("HATCHERY_ADMIN_TOKEN", TOKEN.to_owned()),
            ("HATCHERY_BACKEND", "none".to_owned()),
        ])
        .await;
        Self {
            base: process.base.clone(),
            _process: process,
            client: reqwest::Client::new(),
        }
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        token: Option<&str>,
        caller: Option<&str>,
    ) -> (u16, Value) {
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(caller) = caller {
            request = request.header("X-Workspace-ID", caller);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn admin_get(&self, path: &str) -> (u16, Value) {
        self.call(reqwest::Method::GET, path, None, Some(TOKEN), None)
            .await
    }

    async fn admin_post(&self, path: &str, body: Value) -> (u16, Value) {
        self.call(reqwest::Method::POST, path, Some(body), Some(TOKEN), None)
            .await
    }

    async fn post_as(&self, path: &str, body: Value, token: &str) -> (u16, Value) {
        self.call(reqwest::Method::POST, path, Some(body), Some(token), None)
            .await
    }

    async fn create(&self, body: Value) -> String {
        let (status, created) = self.admin_post("/workspaces", body).await;
        assert_eq!(status, 201, "{created}");
        assert_eq!(created["status"], "provisioning");
        created["id"].as_str().unwrap().to_owned()
    }

    /// Bootstrap and register `id`'s agent; its workspace token.
    async fn register(&self, id: &str, port: u16) -> String {
        let (status, boot) = self
            .admin_post(
                &format!("/admin/workspaces/{id}/bootstrap-token"),
                json!({}),
            )
            .await;
        assert_eq!(status, 201, "{boot}");
        let (status, registered) = self
            .post_as(
                "/registry/register",
                json!({"id": id, "url": format!("http://localhost:{port}"), "agent_card": {"name": id, "skills": []}}),
                boot["bootstrap_token"].as_str().unwrap(),
            )
            .await;
        assert_eq!(status, 200, "{registered}");
        assert_eq!(registered["status"], "registered");
        registered["auth_token"].as_str().unwrap().to_owned()
    }

    async fn status(&self, id: &str) -> String {
        self.admin_get(&format!("/workspaces/{id}")).await.1["status"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    async fn event_types(&self, id: &str) -> Vec<String> {
        let (_, events) = self.admin_get(&format!("/events/{id}")).await;
        let mut types: Vec<String> = events
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["event_type"].as_str().unwrap().to_owned())
            .collect();
        types.reverse();
        types
    }
}

#[allow(clippy::too_many_lines, reason = "one protocol story, step by step")]
async fn the_agent_protocol_end_to_end(db: Db) {
    let dir = tempfile::tempdir().unwrap();
    let database = TestDb::create(db, dir.path()).await;
    let server = Server::start(&dir.path().join("data"), &database.url).await;

    // An org: lead with a worker under it, and an outsider under another root.
    let lead = server
        .create(json!({"name": "Lead", "role": "plans the work"}))
        .await;
    let worker = server
        .create(json!({"name": "Worker", "parent_id": lead}))
        .await;
    let elsewhere = server.create(json!({"name": "Elsewhere"})).await;
    let outsider = server
        .create(json!({"name": "Outsider", "parent_id": elsewhere}))
        .await;
    let lead_token = server.register(&lead, 7001).await;
    let worker_token = server.register(&worker, 7002).await;
    let outsider_token = server.register(&outsider, 7003).await;
    assert_eq!(server.status(&worker).await, "online");

    // Heartbeats: degraded, held by hysteresis, recovered.
    let beat = |error_rate: f64| {
        json!({"workspace_id": worker, "error_rate": error_rate,
        "sample_error": "upstream 429", "active_tasks": 1, "uptime_seconds": 60, "current_task": "summarise"})
    };
    assert_eq!(
        server
            .post_as("/registry/heartbeat", beat(0.7), &worker_token)
            .await,
        (200, json!({"status": "ok"}))
    );
    assert_eq!(server.status(&worker).await, "degraded");
    server
        .post_as("/registry/heartbeat", beat(0.2), &worker_token)
        .await;
    assert_eq!(server.status(&worker).await, "degraded");
    server
        .post_as("/registry/heartbeat", beat(0.0), &worker_token)
        .await;
    assert_eq!(server.status(&worker).await, "online");
    // Another workspace's token is refused.
    let (status, body) = server
        .post_as("/registry/heartbeat", beat(0.0), &outsider_token)
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid workspace auth token"))
    );

    // update-card.
    let (status, body) = server
        .post_as(
            "/registry/update-card",
            json!({"workspace_id": worker, "agent_card": {"name": "Worker v2"}}),
            &worker_token,
        )
        .await;
    assert_eq!((status, body), (200, json!({"status": "updated"})));

    // Discovery: the worker reaches its lead; the outsider does not.
    let (status, found) = server
        .call(
            reqwest::Method::GET,
            &format!("/registry/discover/{lead}"),
            None,
            Some(&worker_token),
            Some(&worker),
        )
        .await;
    assert_eq!(status, 200, "{found}");
    assert_eq!(
        found,
        json!({"id": lead, "url": "http://localhost:7001", "name": "Lead"})
    );
    let (status, denied) = server
        .call(
            reqwest::Method::GET,
            &format!("/registry/discover/{lead}"),
            None,
            Some(&outsider_token),
            Some(&outsider),
        )
        .await;
    assert_eq!(
        (status, denied["error"].as_str()),
        (403, Some("not authorized to discover this workspace"))
    );
    let (status, peers) = server
        .call(
            reqwest::Method::GET,
            &format!("/registry/{worker}/peers"),
            None,
            Some(&worker_token),
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(peers.as_array().unwrap().len(), 1);
    assert_eq!(peers[0]["id"], lead.as_str());
    assert_eq!(peers[0]["role"], "plans the work");
    let allowed = server
        .post_as(
            "/registry/check-access",
            json!({"caller_id": lead, "target_id": worker}),
            &lead_token,
        )
        .await;
    assert_eq!(allowed, (200, json!({"allowed": true})));
    let refused = server
        .post_as(
            "/registry/check-access",
            json!({"caller_id": outsider, "target_id": worker}),
            &outsider_token,
        )
        .await;
    assert_eq!(refused, (200, json!({"allowed": false})));

    // Activity.
    let (status, body) = server
        .post_as(
            &format!("/workspaces/{worker}/activity"),
            json!({"activity_type": "a2a_receive", "method": "message/send", "source_id": worker, "summary": "got a task"}),
            &worker_token,
        )
        .await;
    assert_eq!((status, body), (200, json!({"status": "logged"})));
    let (status, listed) = server
        .call(
            reqwest::Method::GET,
            &format!("/workspaces/{worker}/activity?type=a2a_receive"),
            None,
            Some(&worker_token),
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(listed[0]["summary"], "got a task");

    // The worker's story, in events.
    assert_eq!(
        server.event_types(&worker).await,
        [
            "WORKSPACE_PROVISIONING",
            "WORKSPACE_ONLINE",
            "WORKSPACE_DEGRADED",
            "WORKSPACE_ONLINE",
            "AGENT_CARD_UPDATED",
        ]
    );

    // Delete the lead with its worker: confirm, cascade, tokens revoked.
    let (status, body) = server
        .call(
            reqwest::Method::DELETE,
            &format!("/workspaces/{lead}"),
            None,
            Some(TOKEN),
            None,
        )
        .await;
    assert_eq!(
        (status, body["status"].as_str()),
        (409, Some("confirmation_required"))
    );
    let (status, body) = server
        .call(
            reqwest::Method::DELETE,
            &format!("/workspaces/{lead}?confirm=true"),
            None,
            Some(TOKEN),
            None,
        )
        .await;
    assert_eq!(
        (status, body),
        (200, json!({"status": "removed", "cascade_deleted": 1}))
    );
    assert_eq!(
        server.event_types(&worker).await.last().map(String::as_str),
        Some("WORKSPACE_REMOVED")
    );
    let (status, _) = server
        .post_as("/registry/heartbeat", beat(0.0), &worker_token)
        .await;
    assert_eq!(status, 401);
}
