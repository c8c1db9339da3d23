//! Key rotation against a running server, on SQLite and Postgres: once a rotation commits,
//! the server still holding the old key refuses to seal or serve secrets, and a write that
//! raced the rotation is either re-sealed under the new key or refused, never stored under
//! the old one.

mod common;

use std::sync::Arc;

use common::{Db, Env, OTHER_SECRETS_KEY, SECRETS_KEY, spawn};
use hatchery_server::app::secrets::rotate_key;
use hatchery_server::secrets::SecretsKey;
use hatchery_store::Store;
use serde_json::{Value, json};

hatchery_testkit::both_databases!(
    a_running_server_refuses_its_old_key_after_a_rotation,
    writes_racing_a_rotation_are_re_sealed_or_refused,
);

/// Rotate from the test key to the other one through a store of its own, as
/// `hatchery secrets rotate-key` in another process would.
async fn rotate(env: &Env) -> usize {
    let store = Store::connect(&env.db.url).await.unwrap();
    let old = SecretsKey::from_base64(SECRETS_KEY).unwrap();
    let new = SecretsKey::from_base64(OTHER_SECRETS_KEY).unwrap();
    let count = rotate_key(&store, &old, &new).await.unwrap();
    store.close().await;
    count
}

/// A server on the new key, after the old one stopped.
async fn spawn_with_new_key(env: &Env) -> common::Running {
    let mut config = env.config();
    config.secrets_key = Some(OTHER_SECRETS_KEY.into());
    spawn(config).await
}

/// Every stored value is under the key epoch in force.
async fn assert_all_under_current_epoch(store: &Store) {
    let epoch = store.secret_key_check().await.unwrap().unwrap().epoch;
    for secret in store.secret_all().await.unwrap() {
        assert_eq!(
            secret.key_epoch, epoch,
            "{}/{} is under an old epoch",
            secret.scope, secret.name
        );
    }
}

fn assert_rotated(status: u16, body: &Value) {
    assert_eq!(
        (status, body["code"].as_str()),
        (503, Some("secrets_key_rotated")),
        "{body}"
    );
    let message = body["error"].as_str().unwrap_or_default();
    assert!(message.contains("restart"), "{body}");
}

async fn a_running_server_refuses_its_old_key_after_a_rotation(db: Db) {
    let env = Env::new(db).await;
    let server = env.spawn().await;
    let id = server.create_named("w").await;
    let (status, _) = server
        .post("/settings/secrets", &json!({"key": "BEFORE", "value": "b"}))
        .await;
    assert_eq!(status, 200);

    assert_eq!(rotate(&env).await, 1);

    // Every path that seals with the server's key is refused, and writes nothing.
    let (status, body) = server
        .post("/settings/secrets", &json!({"key": "AFTER", "value": "a"}))
        .await;
    assert_rotated(status, &body);
    let (status, body) = server
        .post(
            &format!("/workspaces/{id}/secrets"),
            &json!({"key": "OWN", "value": "o"}),
        )
        .await;
    assert_rotated(status, &body);
    let (status, body) = server
        .post("/workspaces", &json!({"name": "x", "secrets": {"K": "v"}}))
        .await;
    assert_rotated(status, &body);
    // And it does not serve values it can no longer open as a decryption failure.
    let (status, body) = server
        .get(&format!("/workspaces/{id}/secrets/values"))
        .await;
    assert_rotated(status, &body);
    let (status, list) = server.get("/workspaces").await;
    assert_eq!((status, list.as_array().map(Vec::len)), (200, Some(1)));
    server.stop().await;

    let server = spawn_with_new_key(&env).await;
    let (status, values) = server
        .get(&format!("/workspaces/{id}/secrets/values"))
        .await;
    assert_eq!((status, values), (200, json!({"BEFORE": "b"})));
    assert_all_under_current_epoch(&server.store).await;
    // The restarted server seals under the new epoch.
    let (status, _) = server
        .post("/settings/secrets", &json!({"key": "AFTER", "value": "a"}))
        .await;
    assert_eq!(status, 200);
    let (_, values) = server
        .get(&format!("/workspaces/{id}/secrets/values"))
        .await;
    assert_eq!(values, json!({"BEFORE": "b", "AFTER": "a"}));
}

async fn writes_racing_a_rotation_are_re_sealed_or_refused(db: Db) {
    const WRITERS: u32 = 4;
    let env = Env::new(db).await;
    let server = Arc::new(env.spawn().await);
    let id = server.create_named("w").await;
    for i in 0..5 {
        let (status, _) = server
            .post(
                "/settings/secrets",
                &json!({"key": format!("OLD_{i}"), "value": format!("old-{i}")}),
            )
            .await;
        assert_eq!(status, 200);
    }
    // Connected up front, so the rotation itself is all that runs beside the writers.
    let rotator = Store::connect(&env.db.url).await.unwrap();

    // Writers keep setting secrets (global and the workspace's own) until a few writes
    // after the rotation returned; each records what the server answered.
    let started = Arc::new(tokio::sync::Semaphore::new(0));
    let rotated = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let server = Arc::clone(&server);
            let started = Arc::clone(&started);
            let rotated = Arc::clone(&rotated);
            let path = if w % 2 == 0 {
                "/settings/secrets".to_owned()
            } else {
                format!("/workspaces/{id}/secrets")
            };
            tokio::spawn(async move {
                let mut answers = Vec::new();
                let mut after = 0;
                for i in 0..2000 {
                    let key = format!("W{w}_{i}");
                    let value = format!("value-{w}-{i}");
                    let (status, body) = server
                        .post(&path, &json!({"key": key, "value": value}))
                        .await;
                    answers.push((key, value, status, body));
                    if i == 2 {
                        started.add_permits(1);
                    }
                    if rotated.load(std::sync::atomic::Ordering::SeqCst) {
                        after += 1;
                        if after == 3 {
                            break;
                        }
                    }
                }
                answers
            })
        })
        .collect();
    // Rotate once every writer is under way, so writes land before, during and after.
    drop(started.acquire_many(WRITERS).await.unwrap());
    let old = SecretsKey::from_base64(SECRETS_KEY).unwrap();
    let new = SecretsKey::from_base64(OTHER_SECRETS_KEY).unwrap();
    assert!(rotate_key(&rotator, &old, &new).await.unwrap() >= 5);
    rotated.store(true, std::sync::atomic::Ordering::SeqCst);
    rotator.close().await;

    let mut saved = serde_json::Map::new();
    for i in 0..5 {
        saved.insert(format!("OLD_{i}"), json!(format!("old-{i}")));
    }
    let mut refused = 0;
    for writer in writers {
        for (key, value, status, body) in writer.await.unwrap() {
            if status == 200 {
                saved.insert(key, json!(value));
            } else {
                assert_rotated(status, &body);
                refused += 1;
            }
        }
    }
    let Ok(server) = Arc::try_unwrap(server) else {
        panic!("every writer is done");
    };
    server.stop().await;

    // Every acknowledged write is there, readable with the new key; nothing refused is.
    let server = spawn_with_new_key(&env).await;
    let (status, values) = server
        .get(&format!("/workspaces/{id}/secrets/values"))
        .await;
    assert_eq!(status, 200, "{values}");
    assert_eq!(values, Value::Object(saved));
    assert_all_under_current_epoch(&server.store).await;
    // Those after the commit, at least, whatever the writers' timing.
    assert!(
        refused >= WRITERS,
        "the writes after the rotation are refused"
    );
}
