//! What every benchmark shares: a server on a fresh SQLite data directory, run in this
//! process; an HTTP client for it with the admin token; and percentiles in milliseconds.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use hatchery_api::agents::IssuedToken;
use hatchery_api::workspaces::CreateAnswer;
use hatchery_server::{Application, ServerConfig};

/// The admin token every bench server starts with.
pub(super) const TOKEN: &str = "bench-admin-token";

/// A server on a fresh SQLite data directory, run in this process until dropped.
pub(super) struct BenchServer {
    pub(super) base: String,
    pub(super) data_dir: PathBuf,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    _temp: tempfile::TempDir,
}

impl BenchServer {
    pub(super) async fn start(data_dir: Option<PathBuf>) -> anyhow::Result<Self> {
        Self::start_with(
            data_dir,
            hatchery_server::BackendChoice::None,
            hatchery_server::supervision::Supervision::default(),
        )
        .await
    }

    pub(super) async fn start_with(
        data_dir: Option<PathBuf>,
        backend: hatchery_server::BackendChoice,
        supervision: hatchery_server::supervision::Supervision,
    ) -> anyhow::Result<Self> {
        let temp = tempfile::tempdir()?;
        let data_dir = data_dir.unwrap_or_else(|| temp.path().to_owned());
        let unix_socket = matches!(backend, hatchery_server::BackendChoice::Local { .. })
            .then(|| data_dir.join("run/hatchery.sock"));
        let config = ServerConfig {
            listen: "127.0.0.1:0".parse()?,
            data_dir: data_dir.clone(),
            database_url: None,
            providers: None,
            admin_token: Some(TOKEN.into()),
            secrets_key: None,
            platform_key: Some("bench-platform-key".into()),
            dev: false,
            supervision,
            event_buffer: hatchery_server::event_hub::EventBuffer::default(),
            unix_socket,
            backend,
            templates_dir: None,
            dashboard_dir: None,
            http: hatchery_server::http::HttpSettings::default(),
        };
        let app = Application::build(config).await?;
        let base = format!("http://{}", app.local_addr()?);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(app.run_until(async move {
            let _ = stopped.await;
        }));
        Ok(Self {
            base,
            data_dir,
            stop: Some(stop),
            task,
            _temp: temp,
        })
    }

    pub(super) async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.task).await??;
        Ok(())
    }

    /// Create a workspace through the API; its id.
    pub(super) async fn create(
        &self,
        client: &reqwest::Client,
        body: serde_json::Value,
    ) -> anyhow::Result<String> {
        create_workspace(client, &self.base, &body).await
    }

    /// A workspace token for `id`, minted with the admin token (`test-token` is dev-only).
    pub(super) async fn token(&self, client: &reqwest::Client, id: &str) -> anyhow::Result<String> {
        let minted: IssuedToken = client
            .post(format!("{}/workspaces/{id}/tokens", self.base))
            .bearer_auth(TOKEN)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await
            .context("minting a token")?;
        Ok(minted.auth_token)
    }
}

pub(super) fn client(connections: usize) -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .pool_max_idle_per_host(connections)
        .build()?)
}

/// Create a workspace through the API of the server at `base`; its id.
pub(super) async fn create_workspace(
    client: &reqwest::Client,
    base: &str,
    body: &serde_json::Value,
) -> anyhow::Result<String> {
    let created: CreateAnswer = client
        .post(format!("{base}/workspaces"))
        .bearer_auth(TOKEN)
        .json(body)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await
        .context("creating a workspace")?;
    Ok(created.id)
}

pub(super) fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss,
        reason = "an index into a non-empty slice"
    )]
    let index = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[index]
}

pub(super) fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e3
}
