//! Health, admin auth, and registry reloads that keep the last good snapshot (creates
//! go on deriving from it, and each workspace records the hash that derived it).

mod common;

use common::{Db, Env, TOKEN, spawn, write_manifest};
use hatchery_server::{Application, StartError};
use serde_json::{Value, json};

const MANIFEST_A: &str = "schema_version: 1
providers:
  - {name: a, display_name: A, protocol: openai, auth_mode: k, auth_env: [A_KEY], model_prefix_match: '^a-'}
runtimes:
  rt: {providers: [{name: a}]}
";

hatchery_testkit::both_databases!(
    health_answers_without_credentials,
    dev_mode_says_so_in_health_and_opens_admin_routes,
    admin_routes_need_the_admin_token,
    a_refused_reload_keeps_the_last_good_snapshot_and_is_reported,
    start_is_refused_with_a_bad_manifest_or_an_open_dev_mode,
);

async fn health_answers_without_credentials(db: Db) {
    let env = Env::new(db).await;
    let server = env.spawn().await;
    assert_eq!(
        server.get_as("/health", None).await,
        (200, json!({"status": "ok"}))
    );
}

async fn dev_mode_says_so_in_health_and_opens_admin_routes(db: Db) {
    let env = Env::new(db).await;
    let mut config = env.config();
    config.dev = true;
    config.admin_token = None;
    let server = spawn(config).await;
    let (_, health) = server.get_as("/health", None).await;
    assert_eq!(health["dev_mode"], true);
    assert_eq!(server.get_as("/admin/registry", None).await.0, 200);
    assert_eq!(server.get_as("/workspaces", Some("anything")).await.0, 200);
}

async fn admin_routes_need_the_admin_token(db: Db) {
    let env = Env::new(db).await;
    let server = env.spawn().await;
    for path in [
        "/admin/registry",
        "/workspaces",
        "/settings/secrets",
        "/events",
        "/metrics",
    ] {
        let (status, body) = server.get_as(path, None).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (401, Some("admin_auth_required")),
            "{path}"
        );
        assert_eq!(body["error"], "admin auth required");
        let (status, body) = server.get_as(path, Some("wrong")).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (401, Some("invalid_admin_token")),
            "{path}"
        );
    }
    let (status, body) = server.get_as("/admin/registry", Some(TOKEN)).await;
    assert_eq!(status, 200);
    assert_eq!(body["source"], "builtin");
    assert!(body["hash"].as_str().unwrap().starts_with("sha256:"));
    assert!(body["providers"].as_u64().unwrap() > 10);
    assert_eq!(body["last_reload_error"], Value::Null);
}

async fn a_refused_reload_keeps_the_last_good_snapshot_and_is_reported(db: Db) {
    let env = Env::new(db).await;
    let manifest = write_manifest(env.dir.path(), "providers.yaml", MANIFEST_A);
    let mut config = env.config();
    config.providers = Some(manifest.clone());
    let server = spawn(config).await;
    let (_, first) = server.get("/admin/registry").await;
    let good_hash = first["hash"].as_str().unwrap().to_owned();

    std::fs::write(&manifest, "schema_version: 2\n").unwrap();
    let (status, body) = server.post("/admin/registry/reload", &json!({})).await;
    assert_eq!(status, 422);
    assert_eq!(body["code"], "registry_invalid");
    assert_eq!(body["hash_in_force"], good_hash.as_str());
    assert!(
        body["error"].as_str().unwrap().contains("schema_version"),
        "{body}"
    );

    let (_, shown) = server.get("/admin/registry").await;
    assert_eq!(shown["hash"], good_hash.as_str());
    assert_eq!(shown["reload_failures"], 1);
    assert!(
        shown["last_reload_error"]["error"]
            .as_str()
            .unwrap()
            .contains("schema_version")
    );
    let (_, metrics) = server.get("/metrics").await;
    assert!(
        metrics
            .as_str()
            .unwrap()
            .contains("hatchery_registry_reload_failures_total 1"),
        "{metrics}"
    );

    // Creates keep deriving from the last good snapshot, and record its hash.
    let created = server
        .create(&json!({"name": "w", "runtime": "rt", "model": "a-1", "secrets": {"A_KEY": "k"}}))
        .await;
    assert_eq!(created["provider"], "a");
    assert_eq!(created["registry_hash"], good_hash.as_str());
    let id = created["id"].as_str().unwrap();
    let (_, record) = server.get(&format!("/workspaces/{id}")).await;
    assert_eq!(record["registry_hash"], good_hash.as_str());

    std::fs::write(&manifest, MANIFEST_A.replace("'^a-'", "'^a-|^b-'")).unwrap();
    let (status, body) = server.post("/admin/registry/reload", &json!({})).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("reloaded")));
    let new_hash = body["hash"].as_str().unwrap().to_owned();
    assert_ne!(new_hash, good_hash);
    let (_, shown) = server.get("/admin/registry").await;
    assert_eq!(
        shown["last_reload_error"],
        Value::Null,
        "a good reload clears the failure"
    );
    let created = server
        .create(&json!({"name": "w2", "runtime": "rt", "model": "b-1", "secrets": {"A_KEY": "k"}}))
        .await;
    assert_eq!(created["provider"], "a");
    assert_eq!(created["registry_hash"], new_hash.as_str());
}

async fn start_is_refused_with_a_bad_manifest_or_an_open_dev_mode(db: Db) {
    let env = Env::new(db).await;
    let manifest = write_manifest(env.dir.path(), "providers.yaml", "providers: []\n");
    let mut config = env.config();
    config.providers = Some(manifest);
    let refused = Application::build(config).await;
    assert!(matches!(refused, Err(StartError::Registry(_))));

    let mut dev = env.config();
    dev.dev = true;
    dev.listen = "0.0.0.0:0".parse().unwrap();
    let refused = Application::build(dev).await;
    let Err(err) = refused else {
        panic!("dev mode on 0.0.0.0 must be refused")
    };
    assert!(
        err.to_string().contains("refusing to listen on 0.0.0.0"),
        "{err}"
    );
}
