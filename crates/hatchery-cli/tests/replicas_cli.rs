//! Two `hatchery serve` processes on one database, both sweeping: every silent workspace
//! goes offline exactly once, every workspace that never registers fails exactly once —
//! no double transition, no missed one. Real time, with short deadlines; the test waits
//! for the outcome (bounded), it does not time anything.

use std::time::{Duration, Instant};

mod common;

use hatchery_testkit::{Db, TestDb};
use serde_json::{Value, json};

const TOKEN: &str = "replicas-admin-token";
const WORKSPACES: usize = 12;

hatchery_testkit::both_databases!(two_replicas_transition_each_workspace_exactly_once);

async fn start(data_dir: &std::path::Path, database_url: &str) -> common::Serve {
    common::Serve::start(&[
        ("HATCHERY_DATA_DIR", data_dir.display().to_string()),
        ("HATCHERY_DATABASE_URL", database_url.to_owned()),
        ("HATCHERY_ADMIN_TOKEN", TOKEN.to_owned()),
        ("HATCHERY_HEARTBEAT_TTL", "1s".to_owned()),
        ("HATCHERY_PROVISION_TIMEOUT", "2s".to_owned()),
        ("HATCHERY_BACKEND", "none".to_owned()),
    ])
    .await
}

async fn admin(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    body: Option<Value>,
) -> Value {
    let mut request = client.request(method, url).bearer_auth(TOKEN);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    response.json().await.unwrap()
}

/// How many events of `event_type` each of `ids` has.
async fn counts(
    client: &reqwest::Client,
    base: &str,
    ids: &[String],
    event_type: &str,
) -> Vec<usize> {
    let mut counts = Vec::new();
    for id in ids {
        let events = admin(
            client,
            reqwest::Method::GET,
            format!("{base}/events/{id}"),
            None,
        )
        .await;
        counts.push(
            events
                .as_array()
                .unwrap()
                .iter()
                .filter(|e| e["event_type"] == event_type)
                .count(),
        );
    }
    counts
}

async fn two_replicas_transition_each_workspace_exactly_once(db: Db) {
    let dir = tempfile::tempdir().unwrap();
    let database = TestDb::create(db, dir.path()).await;
    let client = reqwest::Client::new();
    let first = start(&dir.path().join("a"), &database.url).await;
    let second = start(&dir.path().join("b"), &database.url).await;

    // Half register (then fall silent), half never do; created on alternating replicas.
    let mut silent = Vec::new();
    let mut never = Vec::new();
    for i in 0..WORKSPACES {
        let base = if i % 2 == 0 {
            &first.base
        } else {
            &second.base
        };
        let created = admin(
            &client,
            reqwest::Method::POST,
            format!("{base}/workspaces"),
            Some(json!({"name": format!("w{i}")})),
        )
        .await;
        let id = created["id"].as_str().unwrap().to_owned();
        if i % 2 == 0 {
            let boot = admin(
                &client,
                reqwest::Method::POST,
                format!("{base}/admin/workspaces/{id}/bootstrap-token"),
                Some(json!({})),
            )
            .await;
            let registered = client
                .post(format!("{base}/registry/register"))
                .bearer_auth(boot["bootstrap_token"].as_str().unwrap())
                .json(&json!({"id": id, "url": "http://localhost:9", "agent_card": {}}))
                .send()
                .await
                .unwrap();
            assert_eq!(registered.status(), 200);
            silent.push(id);
        } else {
            never.push(id);
        }
    }

    // Both replicas sweep every 250 ms; wait (bounded) until every workspace has moved.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let list = admin(
            &client,
            reqwest::Method::GET,
            format!("{}/workspaces", first.base),
            None,
        )
        .await;
        let settled = list.as_array().unwrap().iter().all(|w| {
            let id = w["id"].as_str().unwrap().to_owned();
            (silent.contains(&id) && w["status"] == "offline")
                || (never.contains(&id) && w["status"] == "failed")
        });
        if settled {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not every workspace moved: {list}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Give both replicas a few more sweeps to double anything they would double.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        counts(&client, &second.base, &silent, "WORKSPACE_OFFLINE").await,
        vec![1; silent.len()]
    );
    assert_eq!(
        counts(&client, &second.base, &never, "WORKSPACE_PROVISION_FAILED").await,
        vec![1; never.len()]
    );
    let failed = admin(
        &client,
        reqwest::Method::GET,
        format!("{}/workspaces/{}", second.base, never[0]),
        None,
    )
    .await;
    assert!(
        failed["failure_reason"]
            .as_str()
            .unwrap()
            .contains("no agent registered within 2s"),
        "{failed}"
    );
}
