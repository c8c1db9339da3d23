//! hatchery's control-plane server: configuration, start-up checks, the HTTP API, the
//! provider registry in force (reloadable without a restart), and admin auth.
//!
//! `Application::build(config)` does every check that can refuse a start (a bad manifest,
//! a non-loopback listen address in dev mode, an unreadable data directory) before it binds;
//! `run_until_stopped` serves until SIGTERM or SIGINT and reloads the registry on SIGHUP.

// Product code never unwraps what input can influence; tests may.
#![warn(clippy::unwrap_used)]

pub mod auth;
pub mod error;
mod private_file;
pub mod registry_source;
pub mod routes;
pub mod secrets;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::net::TcpListener;

use crate::registry_source::{LiveRegistry, LoadError, RegistrySource};
use crate::routes::AppState;

/// Server configuration; the CLI fills it from flags and `HATCHERY_*` variables.
#[derive(Clone)]
pub struct ServerConfig {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Directory for state (the admin token's hash today; the database next).
    pub data_dir: PathBuf,
    /// Provider manifest; `None` for the built-in catalog.
    pub providers: Option<PathBuf>,
    /// Admin token; `None` to use (or mint) the one whose hash is in the data directory.
    pub admin_token: Option<String>,
    /// Development mode: loopback only, admin routes open.
    pub dev: bool,
}

impl std::fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerConfig")
            .field("listen", &self.listen)
            .field("data_dir", &self.data_dir)
            .field("providers", &self.providers)
            .field(
                "admin_token",
                &self.admin_token.as_ref().map(|_| "<redacted>"),
            )
            .field("dev", &self.dev)
            .finish()
    }
}

/// Why the server refused to start. Each is one clear line for the operator.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The provider manifest did not load: no registry, no server.
    #[error("provider registry unavailable: {0}")]
    Registry(#[from] LoadError),
    /// Dev mode opens admin routes, so it may only listen on loopback.
    #[error(
        "HATCHERY_DEV is on, which opens admin routes: refusing to listen on {0}; use a loopback address such as 127.0.0.1"
    )]
    DevNotLoopback(SocketAddr),
    /// Admin auth could not be set up.
    #[error(transparent)]
    Auth(#[from] auth::AuthSetupError),
    /// The listen address could not be bound.
    #[error("cannot listen on {address}: {source}")]
    Bind {
        /// The address.
        address: SocketAddr,
        /// The IO error.
        source: std::io::Error,
    },
}

/// A built, bound server.
pub struct Application {
    listener: TcpListener,
    state: AppState,
    /// A freshly minted admin token, to be shown once.
    pub new_admin_token: Option<String>,
}

impl Application {
    /// Check everything that can refuse a start, then bind.
    pub async fn build(config: ServerConfig) -> Result<Self, StartError> {
        if config.dev && !config.listen.ip().is_loopback() {
            return Err(StartError::DevNotLoopback(config.listen));
        }
        let source = config
            .providers
            .clone()
            .map_or(RegistrySource::Builtin, RegistrySource::File);
        let registry = Arc::new(LiveRegistry::load(source)?);
        let (admin, new_admin_token) =
            auth::setup(&config.data_dir, config.admin_token.as_deref(), config.dev)?;
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| StartError::Bind {
                    address: config.listen,
                    source,
                })?;
        Ok(Self {
            listener,
            state: AppState {
                registry,
                admin,
                dev: config.dev,
            },
            new_admin_token,
        })
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The registry in force (for tests and the reload signal).
    #[must_use]
    pub fn registry(&self) -> Arc<LiveRegistry> {
        Arc::clone(&self.state.registry)
    }

    /// Serve until `shutdown` resolves, finishing requests in flight.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let snapshot = self.state.registry.current();
        tracing::info!(
            address = %self.listener.local_addr()?,
            registry = snapshot.registry.hash(),
            source = snapshot.source,
            "hatchery listening"
        );
        if self.state.dev {
            tracing::warn!(
                "DEVELOPMENT MODE: admin routes are open to anyone who can reach this address"
            );
        }
        axum::serve(self.listener, routes::router(self.state))
            .with_graceful_shutdown(shutdown)
            .await
    }

    /// Serve until SIGTERM or SIGINT; reload the registry on SIGHUP.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let registry = self.registry();
        tokio::spawn(reload_on_sighup(registry));
        self.run_until(stop_signal()).await
    }
}

async fn stop_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut terminate) => {
            tokio::select! {
                _ = terminate.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(err) => {
            tracing::warn!(%err, "cannot watch SIGTERM; stopping on SIGINT only");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
    tracing::info!("shutting down: finishing requests in flight");
}

async fn reload_on_sighup(registry: Arc<LiveRegistry>) {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hangup = match signal(SignalKind::hangup()) {
        Ok(hangup) => hangup,
        Err(err) => {
            tracing::warn!(%err, "cannot watch SIGHUP; reload with POST /admin/registry/reload");
            return;
        }
    };
    while hangup.recv().await.is_some() {
        let registry = Arc::clone(&registry);
        // The outcome is logged and kept for GET /admin/registry by `reload` itself.
        let _ = tokio::task::spawn_blocking(move || registry.reload()).await;
    }
}
