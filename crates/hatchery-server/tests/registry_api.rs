//! The server in-process on an ephemeral port: health, admin auth, and registry reloads
//! that keep the last good snapshot.

use std::path::Path;

use hatchery_server::{Application, ServerConfig, StartError};
use serde_json::Value;

const TOKEN: &str = "test-admin-token";

const MANIFEST_A: &str = "schema_version: 1
providers:
  - {name: a, display_name: A, protocol: openai, auth_mode: k, auth_env: [A_KEY], model_prefix_match: '^a-'}
runtimes:
  rt: {providers: [{name: a}]}
";

fn config(data_dir: &Path, providers: Option<&Path>) -> ServerConfig {
    ServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: data_dir.to_owned(),
        providers: providers.map(Path::to_owned),
        admin_token: Some(TOKEN.to_owned()),
        dev: false,
    }
}

struct Running {
    base: String,
    client: reqwest::Client,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    app: std::sync::Arc<hatchery_server::registry_source::LiveRegistry>,
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

async fn spawn(config: ServerConfig) -> Running {
    let app = Application::build(config).await.expect("server starts");
    let address = app.local_addr().unwrap();
    let registry = app.registry();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(app.run_until(async move {
        let _ = stopped.await;
    }));
    Running {
        base: format!("http://{address}"),
        client: reqwest::Client::new(),
        stop: Some(stop),
        app: registry,
    }
}

impl Running {
    async fn get(&self, path: &str, token: Option<&str>) -> (u16, Value) {
        let mut request = self.client.get(format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        (response.status().as_u16(), response.json().await.unwrap())
    }

    async fn reload(&self) -> (u16, Value) {
        let response = self
            .client
            .post(format!("{}/admin/registry/reload", self.base))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.json().await.unwrap())
    }
}

#[tokio::test]
async fn health_answers_without_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let server = spawn(config(dir.path(), None)).await;
    assert_eq!(
        server.get("/health", None).await,
        (200, serde_json::json!({"status": "ok"}))
    );
}

#[tokio::test]
async fn dev_mode_says_so_in_health_and_opens_admin_routes() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path(), None);
    config.dev = true;
    config.admin_token = None;
    let server = spawn(config).await;
    let (_, health) = server.get("/health", None).await;
    assert_eq!(health["dev_mode"], true);
    assert_eq!(server.get("/admin/registry", None).await.0, 200);
}

#[tokio::test]
async fn admin_routes_need_the_admin_token() {
    let dir = tempfile::tempdir().unwrap();
    let server = spawn(config(dir.path(), None)).await;
    let (status, body) = server.get("/admin/registry", None).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("admin_auth_required"))
    );
    assert_eq!(body["error"], "admin auth required");
    let (status, body) = server.get("/admin/registry", Some("wrong")).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("invalid_admin_token"))
    );
    let (status, body) = server.get("/admin/registry", Some(TOKEN)).await;
    assert_eq!(status, 200);
    assert_eq!(body["source"], "builtin");
    assert!(body["hash"].as_str().unwrap().starts_with("sha256:"));
    assert!(body["providers"].as_u64().unwrap() > 10);
    assert_eq!(body["last_reload_error"], Value::Null);
}

#[tokio::test]
async fn a_refused_reload_keeps_the_last_good_snapshot_and_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("providers.yaml");
    std::fs::write(&manifest, MANIFEST_A).unwrap();
    let server = spawn(config(dir.path(), Some(&manifest))).await;
    let (_, first) = server.get("/admin/registry", Some(TOKEN)).await;
    let good_hash = first["hash"].as_str().unwrap().to_owned();

    std::fs::write(&manifest, "schema_version: 2\n").unwrap();
    let (status, body) = server.reload().await;
    assert_eq!(status, 422);
    assert_eq!(body["code"], "registry_invalid");
    assert_eq!(body["hash_in_force"], good_hash.as_str());
    assert!(
        body["error"].as_str().unwrap().contains("schema_version"),
        "{body}"
    );

    let (_, shown) = server.get("/admin/registry", Some(TOKEN)).await;
    assert_eq!(shown["hash"], good_hash.as_str());
    assert!(
        shown["last_reload_error"]["error"]
            .as_str()
            .unwrap()
            .contains("schema_version")
    );
    // Derivation keeps working on the last good snapshot.
    let snapshot = server.app.current();
    assert!(matches!(
        snapshot.registry.derive("rt", "a-1"),
        hatchery_registry::DeriveOutcome::Derived(_)
    ));

    std::fs::write(&manifest, MANIFEST_A.replace("'^a-'", "'^a-|^b-'")).unwrap();
    let (status, body) = server.reload().await;
    assert_eq!((status, body["status"].as_str()), (200, Some("reloaded")));
    assert_ne!(body["hash"], good_hash.as_str());
    let (_, shown) = server.get("/admin/registry", Some(TOKEN)).await;
    assert_eq!(
        shown["last_reload_error"],
        Value::Null,
        "a good reload clears the failure"
    );
}

#[tokio::test]
async fn start_is_refused_with_a_bad_manifest_or_an_open_dev_mode() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("providers.yaml");
    std::fs::write(&manifest, "providers: []\n").unwrap();
    let refused = Application::build(config(dir.path(), Some(&manifest))).await;
    assert!(matches!(refused, Err(StartError::Registry(_))));

    let mut dev = config(dir.path(), None);
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
