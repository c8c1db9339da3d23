//! Secrets against the real server on SQLite and Postgres: sealed at rest, listed by
//! name only, merged for a workspace, refused start on a wrong or missing key, rotation.

mod common;

use std::os::unix::fs::PermissionsExt as _;

use common::{Db, Env, OTHER_SECRETS_KEY, SECRETS_KEY, spawn};
use hatchery_server::StartError;
use hatchery_server::app::secrets::rotate_key;
use hatchery_server::secrets::SecretsKey;
use serde_json::{Value, json};

const PLAINTEXT: &str = "sk-very-secret-plaintext-4f7a";

hatchery_testkit::both_databases!(
    secrets_are_sealed_at_rest_and_listed_by_name_only,
    workspace_secrets_override_globals,
    secret_names_and_bodies_are_checked,
    start_is_refused_with_a_wrong_or_missing_key,
    rotation_keeps_every_value_readable,
    secrets_are_disabled_without_a_key,
);

/// Everything the database holds, as bytes: the SQLite file with its WAL, or every sealed
/// value and settings row on Postgres.
async fn stored_bytes(env: &Env, server: &common::Running) -> Vec<u8> {
    if let Some(file) = &env.db.sqlite_file {
        let mut bytes = std::fs::read(file).unwrap();
        let wal = file.with_extension("db-wal");
        bytes.extend(std::fs::read(wal).unwrap_or_default());
        bytes
    } else {
        let mut bytes = Vec::new();
        for secret in server.store.secret_all().await.unwrap() {
            bytes.extend(secret.sealed);
        }
        let (_, list) = server.get("/workspaces").await;
        bytes.extend(list.to_string().into_bytes());
        bytes
    }
}

async fn secrets_are_sealed_at_rest_and_listed_by_name_only(db: Db) {
    let env = Env::new(db).await;
    let server = env.spawn().await;
    let (status, body) = server
        .post(
            "/settings/secrets",
            &json!({"key": "OPENAI_API_KEY", "value": PLAINTEXT}),
        )
        .await;
    assert_eq!(
        (status, body),
        (
            200,
            json!({"status": "saved", "key": "OPENAI_API_KEY", "scope": "global"})
        )
    );
    let created = server
        .create(
            &json!({"name": "w", "runtime": "claude-code", "model": "claude-sonnet-4-5",
                        "secrets": {"ANTHROPIC_API_KEY": format!("{PLAINTEXT}-ws")}}),
        )
        .await;
    let id = created["id"].as_str().unwrap();

    let haystack = stored_bytes(&env, &server).await;
    assert!(!haystack.is_empty());
    assert!(
        !haystack
            .windows(PLAINTEXT.len())
            .any(|w| w == PLAINTEXT.as_bytes()),
        "a secret's plaintext is in the database"
    );
    let sealed = server.store.secret_all().await.unwrap();
    assert_eq!(sealed.len(), 2);

    let (status, list) = server.get("/settings/secrets").await;
    assert_eq!(status, 200);
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["key"], "OPENAI_API_KEY");
    assert_eq!(list[0]["has_value"], true);
    assert_eq!(list[0]["scope"], "global");
    assert!(list[0]["created_at"].as_str().unwrap().ends_with('Z'));
    assert!(!list.to_string().contains(PLAINTEXT));
    let (_, alias) = server.get("/admin/secrets").await;
    assert_eq!(alias, list);

    let (_, list) = server.get(&format!("/workspaces/{id}/secrets")).await;
    let keys: Vec<(&str, &str)> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["key"].as_str().unwrap(), s["scope"].as_str().unwrap()))
        .collect();
    assert_eq!(
        keys,
        [
            ("ANTHROPIC_API_KEY", "workspace"),
            ("OPENAI_API_KEY", "global")
        ]
    );
    assert!(!list.to_string().contains(PLAINTEXT));
    let (_, config) = server.get(&format!("/workspaces/{id}/config")).await;
    assert!(!config.to_string().contains(PLAINTEXT));
}

async fn workspace_secrets_override_globals(db: Db) {
    let env = Env::new(db).await;
    let server = env.spawn().await;
    let id = server.create_named("w").await;
    for (key, value) in [("SHARED", "global"), ("ONLY_GLOBAL", "g")] {
        server
            .post("/settings/secrets", &json!({"key": key, "value": value}))
            .await;
    }
    let (status, body) = server
        .request(
            reqwest::Method::PUT,
            &format!("/workspaces/{id}/secrets"),
            Some(&json!({"key": "SHARED", "value": "mine"})),
        )
        .await;
    assert_eq!(
        (status, body),
        (200, json!({"status": "saved", "key": "SHARED"}))
    );
    let (status, values) = server
        .get(&format!("/workspaces/{id}/secrets/values"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(values, json!({"ONLY_GLOBAL": "g", "SHARED": "mine"}));

    let (status, body) = server
        .delete(&format!("/workspaces/{id}/secrets/SHARED"))
        .await;
    assert_eq!(
        (status, body),
        (200, json!({"status": "deleted", "key": "SHARED"}))
    );
    let (_, values) = server
        .get(&format!("/workspaces/{id}/secrets/values"))
        .await;
    assert_eq!(values["SHARED"], "global");
    let (status, body) = server
        .delete(&format!("/workspaces/{id}/secrets/SHARED"))
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (404, Some("secret not found"))
    );
    let (status, body) = server.delete("/settings/secrets/SHARED").await;
    assert_eq!(
        (status, body),
        (
            200,
            json!({"status": "deleted", "key": "SHARED", "scope": "global"})
        )
    );
    let (status, _) = server.delete("/settings/secrets/SHARED").await;
    assert_eq!(status, 404);
    let (status, body) = server
        .post(
            "/workspaces/00000000-0000-4000-8000-000000000000/secrets",
            &json!({"key": "K", "value": "v"}),
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (404, Some("workspace not found"))
    );
}

async fn secret_names_and_bodies_are_checked(db: Db) {
    let env = Env::new(db).await;
    let server = env.spawn().await;
    for body in [
        json!({"key": "", "value": "v"}),
        json!({"key": "K", "value": ""}),
        json!({"value": "v"}),
        json!({"key": "lower_case", "value": "v"}),
        json!({"key": "1ABC", "value": "v"}),
        json!({"key": "A".repeat(129), "value": "v"}),
        json!({"key": 5, "value": "v"}),
    ] {
        let (status, answer) = server.post("/settings/secrets", &body).await;
        assert_eq!(
            (status, answer["error"].as_str()),
            (400, Some("invalid request body")),
            "{body}"
        );
    }
    let (status, answer) = server
        .post_raw("/settings/secrets", b"not json".to_vec())
        .await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (400, Some("invalid request body"))
    );
    assert_eq!(server.store.secret_count().await.unwrap(), 0);
}

async fn start_is_refused_with_a_wrong_or_missing_key(db: Db) {
    let env = Env::new(db).await;
    let server = env.spawn().await;
    server
        .post(
            "/settings/secrets",
            &json!({"key": "K", "value": PLAINTEXT}),
        )
        .await;
    server.stop().await;

    let mut wrong = env.config();
    wrong.secrets_key = Some(OTHER_SECRETS_KEY.into());
    let refused = env.try_build(wrong).await;
    assert!(
        matches!(refused, Err(StartError::Secrets(_))),
        "wrong key must refuse"
    );
    let message = refused.err().unwrap().to_string();
    assert!(message.contains("does not open"), "{message}");

    let mut missing = env.config();
    missing.secrets_key = None;
    let refused = env.try_build(missing).await;
    let message = refused.err().expect("no key must refuse").to_string();
    assert!(message.contains("1 encrypted secret"), "{message}");

    let mut malformed = env.config();
    malformed.secrets_key = Some("short".into());
    assert!(env.try_build(malformed).await.is_err());

    // The right key still starts and reads the value.
    let server = env.spawn().await;
    let id = server.create_named("w").await;
    let (_, values) = server
        .get(&format!("/workspaces/{id}/secrets/values"))
        .await;
    assert_eq!(values["K"], PLAINTEXT);
}

async fn rotation_keeps_every_value_readable(db: Db) {
    let env = Env::new(db).await;
    let server = env.spawn().await;
    let id = server
        .create(&json!({"name": "w", "secrets": {"OWN": "own-value"}}))
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for i in 0..5 {
        server
            .post(
                "/settings/secrets",
                &json!({"key": format!("G{i}"), "value": format!("v{i}")}),
            )
            .await;
    }
    server.stop().await;

    let old = SecretsKey::from_base64(SECRETS_KEY).unwrap();
    let new = SecretsKey::from_base64(OTHER_SECRETS_KEY).unwrap();
    let store = hatchery_store::Store::connect(&env.db.url).await.unwrap();
    assert_eq!(rotate_key(&store, &old, &new).await.unwrap(), 6);
    // Rotating again with the old key fails as a whole and changes nothing.
    assert!(rotate_key(&store, &old, &new).await.is_err());
    store.close().await;

    let refused = env.try_build(env.config()).await;
    assert!(refused.is_err(), "the old key no longer opens the database");
    let mut config = env.config();
    config.secrets_key = Some(OTHER_SECRETS_KEY.into());
    let server = spawn(config).await;
    let (status, values) = server
        .get(&format!("/workspaces/{id}/secrets/values"))
        .await;
    assert_eq!(status, 200, "{values}");
    let mut expected: serde_json::Map<String, Value> = (0..5)
        .map(|i| (format!("G{i}"), json!(format!("v{i}"))))
        .collect();
    expected.insert("OWN".into(), json!("own-value"));
    assert_eq!(values, Value::Object(expected));
}

async fn secrets_are_disabled_without_a_key(db: Db) {
    let env = Env::new(db).await;
    let mut config = env.config();
    config.secrets_key = None;
    let server = spawn(config).await;
    let (status, body) = server
        .post("/settings/secrets", &json!({"key": "K", "value": "v"}))
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (503, Some("secrets_key_missing")),
        "{body}"
    );
    let (status, body) = server
        .post("/workspaces", &json!({"name": "w", "secrets": {"K": "v"}}))
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (503, Some("secrets_key_missing"))
    );
    assert_eq!(server.counts().await, (0, 0, 0));
    // Dev mode makes a key file of its own, owner-only.
    server.stop().await;
    let mut dev = env.config();
    dev.secrets_key = None;
    dev.dev = true;
    let server = spawn(dev).await;
    let (status, _) = server
        .post("/settings/secrets", &json!({"key": "K", "value": "v"}))
        .await;
    assert_eq!(status, 200);
    let key_file = env.data_dir().join(hatchery_server::secrets::DEV_KEY_FILE);
    let mode = std::fs::metadata(key_file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[tokio::test]
async fn the_configuration_never_prints_its_secrets() {
    let env = Env::new(Db::Sqlite).await;
    let config = env.config();
    let printed = format!("{config:?}");
    for secret in [
        common::TOKEN,
        common::SECRETS_KEY,
        "platform-gateway-key",
        env.db.url.as_str(),
    ] {
        assert!(!printed.contains(secret), "{secret} in {printed}");
    }
    assert!(printed.contains("REDACTED"), "{printed}");
}
