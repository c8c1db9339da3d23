//! The server in-process on an ephemeral port, on a fresh SQLite file or a fresh Postgres
//! database, with typed helpers for requests.

#![allow(
    dead_code,
    reason = "each test binary uses a different part of the harness"
)]

pub mod fake_agent;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use hatchery_server::app::App;
use hatchery_server::registry_source::LiveRegistry;
use hatchery_server::supervision::Supervision;
use hatchery_server::{Application, ServerConfig, StartError};
use hatchery_store::Store;
use hatchery_testkit::TestDb;
pub use hatchery_testkit::{Db, ManualClock};
use serde_json::{Value, json};

pub const TOKEN: &str = "test-admin-token";
/// A valid secrets key (32 bytes of base64).
pub const SECRETS_KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
pub const OTHER_SECRETS_KEY: &str = "ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA=";

/// A test's environment: its temporary directory and database, kept across restarts.
pub struct Env {
    pub dir: tempfile::TempDir,
    pub db: TestDb,
    /// The servers' clock: liveness and provisioning deadlines move only when the test
    /// advances it, and sweeps and heartbeat flushes run only when the test calls them.
    pub clock: ManualClock,
}

impl Env {
    pub async fn new(db: Db) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let db = TestDb::create(db, dir.path()).await;
        Self {
            dir,
            db,
            clock: ManualClock::default(),
        }
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// A configuration with the admin token, the secrets key and a platform key set.
    pub fn config(&self) -> ServerConfig {
        ServerConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            data_dir: self.data_dir(),
            database_url: Some(self.db.url.clone().into()),
            providers: None,
            admin_token: Some(TOKEN.into()),
            secrets_key: Some(SECRETS_KEY.into()),
            platform_key: Some("platform-gateway-key".into()),
            dev: false,
            supervision: Supervision {
                sweep_interval: std::time::Duration::from_hours(1),
                heartbeat_flush_interval: std::time::Duration::from_hours(1),
                clock: Some(self.clock.clock()),
                ..Supervision::default()
            },
            event_buffer: hatchery_server::event_hub::EventBuffer::default(),
            unix_socket: None,
            backend: hatchery_server::BackendChoice::None,
            templates_dir: None,
            dashboard_dir: None,
            http: hatchery_server::http::HttpSettings::default(),
        }
    }

    pub async fn spawn(&self) -> Running {
        spawn(self.config()).await
    }

    pub async fn try_build(&self, config: ServerConfig) -> Result<Application, StartError> {
        Application::build(config).await
    }
}

pub struct Running {
    pub base: String,
    pub client: reqwest::Client,
    pub registry: Arc<LiveRegistry>,
    pub store: Store,
    pub app: App,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

pub async fn spawn(config: ServerConfig) -> Running {
    let app = Application::build(config).await.expect("server starts");
    run(app)
}

pub async fn spawn_with_registry(config: ServerConfig, registry: Arc<LiveRegistry>) -> Running {
    let app = Application::build_with_registry(config, registry)
        .await
        .expect("server starts");
    run(app)
}

fn run(app: Application) -> Running {
    let address = app.local_addr().unwrap();
    let registry = app.registry();
    let store = app.store();
    let handle = app.app();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(app.run_until(async move {
        let _ = stopped.await;
    }));
    Running {
        base: format!("http://{address}"),
        client: reqwest::Client::new(),
        registry,
        store,
        app: handle,
        stop: Some(stop),
        task: Some(task),
    }
}

impl Running {
    /// Stop the server and wait until it closed its database.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
    }

    pub async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> (u16, Value) {
        self.request_as(method, path, body, Some(TOKEN)).await
    }

    /// A request with the given bearer (or none).
    pub async fn request_as(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
        token: Option<&str>,
    ) -> (u16, Value) {
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        read(request.send().await.unwrap()).await
    }

    /// A POST with the given bearer (or none).
    pub async fn post_as(&self, path: &str, body: &Value, token: Option<&str>) -> (u16, Value) {
        self.request_as(reqwest::Method::POST, path, Some(body), token)
            .await
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.request(reqwest::Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.request(reqwest::Method::POST, path, Some(body)).await
    }

    pub async fn patch(&self, path: &str, body: &Value) -> (u16, Value) {
        self.request(reqwest::Method::PATCH, path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> (u16, Value) {
        self.request(reqwest::Method::DELETE, path, None).await
    }

    /// A raw body, for malformed and oversized requests.
    pub async fn post_raw(&self, path: &str, body: Vec<u8>) -> (u16, Value) {
        let response = self
            .client
            .post(format!("{}{path}", self.base))
            .bearer_auth(TOKEN)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        read(response).await
    }

    /// Create a workspace; asserts 201 and returns the body.
    pub async fn create(&self, body: &Value) -> Value {
        let (status, created) = self.post("/workspaces", body).await;
        assert_eq!(status, 201, "create {body}: {created}");
        created
    }

    /// Create a workspace named `name` with nothing else said; its id.
    pub async fn create_named(&self, name: &str) -> String {
        self.create(&json!({"name": name})).await["id"]
            .as_str()
            .expect("a create answers an id")
            .to_owned()
    }

    /// How many workspaces, events and provision jobs the database holds.
    pub async fn counts(&self) -> (usize, i64, usize) {
        let (status, list) = self.get("/workspaces").await;
        assert_eq!(status, 200);
        (
            list.as_array().unwrap().len(),
            self.store.event_count().await.unwrap(),
            self.store.job_list().await.unwrap().len(),
        )
    }
}

async fn read(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, value)
}

/// Write a manifest into `dir` and return its path.
pub fn write_manifest(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

impl Running {
    /// A GET with `token`, its whole response (headers, a body to stream).
    pub async fn get_response(&self, path: &str, token: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.base))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    /// A GET with the given bearer (or none).
    pub async fn get_as(&self, path: &str, token: Option<&str>) -> (u16, Value) {
        let mut request = self.client.get(format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        read(request.send().await.unwrap()).await
    }
}

/// Every row of `table` as text (all columns cast to text), plus, on SQLite, the raw bytes
/// of the database files: what an attacker with the disk would see.
pub async fn dump_table(env: &Env, table: &str) -> String {
    use sqlx::{Connection as _, Row as _};
    sqlx::any::install_default_drivers();
    let mut connection = sqlx::AnyConnection::connect(&env.db.url).await.unwrap();
    let columns: Vec<String> = match env.db.db {
        Db::Sqlite => sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT name FROM pragma_table_info('{table}')"
        )))
        .fetch_all(&mut connection)
        .await
        .unwrap()
        .iter()
        .map(|row| row.get::<String, _>(0))
        .collect(),
        Db::Postgres => sqlx::query(
            "SELECT column_name::text FROM information_schema.columns WHERE table_name = $1",
        )
        .bind(table)
        .fetch_all(&mut connection)
        .await
        .unwrap()
        .iter()
        .map(|row| row.get::<String, _>(0))
        .collect(),
    };
    let select = columns
        .iter()
        .map(|c| format!("COALESCE(CAST({c} AS TEXT), '')"))
        .collect::<Vec<_>>()
        .join(" || '|' || ");
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {select} FROM {table}")))
        .fetch_all(&mut connection)
        .await
        .unwrap();
    let mut dump: String = rows
        .iter()
        .map(|row| row.get::<String, _>(0) + "\n")
        .collect();
    if let Some(file) = &env.db.sqlite_file {
        for path in [file.clone(), file.with_extension("db-wal")] {
            if let Ok(bytes) = std::fs::read(&path) {
                dump.push_str(&String::from_utf8_lossy(&bytes));
            }
        }
    }
    dump
}
