//! Start-up: every check that can refuse a start (a bad manifest, a non-loopback listen
//! address in dev mode, an unreadable data directory, a wrong secrets key), then binding;
//! and the run: serving on TCP and the agents' socket with the background loops beside,
//! until stopped.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use hatchery_store::{Store, StoreError, default_sqlite_url};
use secrecy::ExposeSecret;
use tokio::net::TcpListener;

use crate::app::App;
use crate::app::secrets::{SecretsSetupError, check_key};
use crate::background::{flush_heartbeats, reload_on_sighup, stop_signal, supervise};
use crate::event_hub::EventHub;
use crate::http::AppState;
use crate::metrics::Metrics;
use crate::registry_source::{LiveRegistry, LoadError, RegistrySource};
use crate::secrets::SecretsKey;
use crate::{ServerConfig, app, auth, backends, http, private_file, serve};

/// Why the server refused to start. Each is one clear line for the operator.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The provider manifest did not load: no registry, no server.
    #[error("provider registry unavailable: {0}")]
    Registry(#[from] LoadError),
    /// Another live replica runs the same engine or cluster backend on this database.
    #[error(
        "another control-plane replica ({other}) runs the {backend} backend on this database: its agents outlive it and each replica adopts every one it finds, so run one replica (or, if it is gone, wait for its lease to run out: HATCHERY_JOB_LEASE)"
    )]
    ReplicaConflict {
        /// The backend.
        backend: &'static str,
        /// The other replica's name.
        other: String,
    },
    /// An origin named for CORS is not one.
    #[error(transparent)]
    CorsOrigin(#[from] http::InvalidOrigin),
    /// Dev mode opens admin routes on loopback, which agents on the host's network reach.
    #[error(
        "HATCHERY_DEV is on, which opens admin routes to anything on loopback, and runtimes {0} share the host's network: their agents would be the operator; turn one of the two off"
    )]
    DevWithHostNetwork(String),
    /// Dev mode opens admin routes, so it may only listen on loopback.
    #[error(
        "HATCHERY_DEV is on, which opens admin routes: refusing to listen on {0}; use a loopback address such as 127.0.0.1"
    )]
    DevNotLoopback(SocketAddr),
    /// Admin auth could not be set up.
    #[error(transparent)]
    Auth(#[from] auth::AuthSetupError),
    /// The data directory could not be created.
    #[error("cannot create the data directory {path}: {source}")]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// The IO error.
        source: std::io::Error,
    },
    /// The database could not be opened or migrated.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The secrets key is malformed, wrong, or missing while secrets are stored.
    #[error(transparent)]
    Secrets(#[from] SecretsSetupError),
    /// The Unix socket could not be bound.
    #[error("cannot listen on the socket {path}: {source}")]
    BindSocket {
        /// The socket path.
        path: PathBuf,
        /// The IO error.
        source: std::io::Error,
    },
    /// The backend cannot run here.
    #[error("the {backend} backend cannot run: {reason}")]
    Backend {
        /// Which backend.
        backend: &'static str,
        /// Why, and what to do.
        reason: String,
    },
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
    exits: Option<tokio::sync::mpsc::UnboundedReceiver<hatchery_provision::Exit>>,
    socket: Option<(tokio::net::UnixListener, PathBuf)>,
    state: AppState,
    /// A freshly minted admin token, to be shown once.
    pub new_admin_token: Option<String>,
}

impl Application {
    /// Check everything that can refuse a start, then bind.
    pub async fn build(config: ServerConfig) -> Result<Self, StartError> {
        let source = config
            .providers
            .clone()
            .map_or(RegistrySource::Builtin, RegistrySource::File);
        let registry = Arc::new(LiveRegistry::load(source)?);
        Self::build_with_registry(config, registry).await
    }

    /// [`Application::build`] with the registry handed in (tests inject an unavailable
    /// one to check that creates fail closed).
    pub async fn build_with_registry(
        config: ServerConfig,
        registry: Arc<LiveRegistry>,
    ) -> Result<Self, StartError> {
        if config.dev && !config.listen.ip().is_loopback() {
            return Err(StartError::DevNotLoopback(config.listen));
        }
        http::check_origins(&config.http.cors_origins)?;
        if config.dev
            && let Some(runtimes) = config.backend.host_network_runtimes()
        {
            return Err(StartError::DevWithHostNetwork(runtimes));
        }
        prepare_data_dir(&config.data_dir, config.database_url.is_none()).map_err(|source| {
            StartError::DataDir {
                path: config.data_dir.clone(),
                source,
            }
        })?;
        let (admin, new_admin_token) = auth::setup(
            &config.data_dir,
            config.admin_token.as_ref().map(ExposeSecret::expose_secret),
            config.dev,
        )?;
        let database_url = config.database_url.as_ref().map_or_else(
            || default_sqlite_url(&config.data_dir),
            |url| url.expose_secret().to_owned(),
        );
        let mut store = Store::connect(&database_url).await?;
        if let Some(clock) = config.supervision.clock.clone() {
            store = store.with_clock(clock);
        }
        let secrets_key = match (&config.secrets_key, config.dev) {
            (Some(text), _) => Some(
                SecretsKey::from_base64(text.expose_secret()).map_err(SecretsSetupError::from)?,
            ),
            (None, true) => Some(
                SecretsKey::load_or_create_dev_key(&config.data_dir)
                    .map_err(SecretsSetupError::from)?,
            ),
            (None, false) => None,
        };
        let secrets_key = check_key(&store, secrets_key).await?;
        if secrets_key.is_none() {
            tracing::warn!(
                "no HATCHERY_SECRETS_KEY: secrets are disabled, so bring-your-own-key workspaces cannot be created"
            );
        }
        let metrics = Arc::new(Metrics::default());
        let hub = EventHub::new(store.event_last_seq().await?, config.event_buffer);
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| StartError::Bind {
                    address: config.listen,
                    source,
                })?;
        let socket = config.unix_socket.as_deref().map(bind_socket).transpose()?;
        let (provisioner, exits) = provisioner(&config, &store).await?;
        Ok(Self {
            listener,
            socket,
            exits,
            state: AppState {
                app: App {
                    registry,
                    store,
                    secrets_key: secrets_key.map(Arc::new),
                    platform_key: config
                        .platform_key
                        .as_ref()
                        .map(ExposeSecret::expose_secret)
                        .filter(|k| !k.is_empty())
                        .map(app::PlatformKey::new),
                    provisioner,
                    dev: config.dev,
                    supervision: Arc::new(config.supervision),
                    hub,
                    heartbeats: Arc::default(),
                    tokens: Arc::default(),
                    metrics: Arc::clone(&metrics),
                    templates: config.templates_dir.as_deref().map(Arc::from),
                    agent_clients: Arc::default(),
                    courier: Arc::default(),
                },
                admin,
                dashboard_dir: config.dashboard_dir.map(Arc::from),
                http: Arc::new(config.http),
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
        Arc::clone(&self.state.app.registry)
    }

    /// The database (for tests and tools that inspect what was written).
    #[must_use]
    pub fn store(&self) -> Store {
        self.state.app.store.clone()
    }

    /// The application layer (for tests that run a sweep now instead of waiting for it).
    #[must_use]
    pub fn app(&self) -> App {
        self.state.app.clone()
    }

    /// Serve until `shutdown` resolves, finishing requests in flight.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let registry_hash = self.state.app.registry.snapshot().map_or_else(
            |_| "unavailable".to_owned(),
            |s| s.registry.hash().to_owned(),
        );
        tracing::info!(
            address = %self.listener.local_addr()?,
            registry = registry_hash,
            database = self.state.app.store.database().as_str(),
            "hatchery listening"
        );
        if self.state.app.dev {
            tracing::warn!(
                "DEVELOPMENT MODE: admin routes are open to anyone who can reach this address"
            );
        }
        let app = self.state.app.clone();
        let mut background = vec![
            tokio::spawn(app.hub.clone().run_tailer(app.store.clone())),
            tokio::spawn(supervise(app.clone())),
            tokio::spawn(flush_heartbeats(app.clone())),
            tokio::spawn(app.clone().run_provisioner()),
            tokio::spawn(app.clone().supervise_agents()),
            tokio::spawn(app.clone().run_delegations()),
        ];
        if let Some(exits) = self.exits {
            background.push(tokio::spawn(app.clone().watch_exits(exits)));
        }
        // One shutdown signal for both listeners.
        let (stopping, stop) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            shutdown.await;
            let _ = stopping.send(true);
        });
        let stopped = |mut stop: tokio::sync::watch::Receiver<bool>| async move {
            let _ = stop.wait_for(|stopping| *stopping).await;
        };
        // The socket is how sandboxed agents reach the control plane: on it nobody is the
        // admin and dev mode's openness does not apply, so an agent gets exactly what its
        // own workspace token allows.
        let mut agents_only = self.state.clone();
        agents_only.admin = auth::AdminAuth::Nobody;
        agents_only.app.dev = false;
        let socket_router = http::router(agents_only);
        let limits = self.state.http.connections;
        let router = http::router(self.state);
        let on_tcp = serve::serve(self.listener, router, limits, stopped(stop.clone()));
        match self.socket {
            Some((listener, path)) => {
                let on_socket = serve::serve(listener, socket_router, limits, stopped(stop));
                tokio::join!(on_tcp, on_socket);
                let _ = std::fs::remove_file(path);
            }
            None => on_tcp.await,
        }
        for task in background {
            task.abort();
        }
        // Sandboxed agents stop with their control plane (gracefully; they would die with
        // the process anyway). Containers keep running, to be adopted at the next start.
        if let Some(provisioner) = &app.provisioner
            && !provisioner.backend.agents_outlive_control_plane()
            && let Ok(running) = provisioner.backend.running().await
        {
            app.stop_agents(&running).await;
        }
        // Beats that arrived since the last flush are the freshest liveness there is.
        app.flush_heartbeats().await;
        app.store.close().await;
        Ok(())
    }

    /// Serve until SIGTERM or SIGINT; reload the registry on SIGHUP.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let registry = self.registry();
        tokio::spawn(reload_on_sighup(registry));
        self.run_until(stop_signal()).await
    }
}

/// Create the data directory owner-only (it holds the database, with sealed secrets and
/// token hashes, and the dev key), and the default database file owner-only before SQLite
/// creates it (its WAL and shared-memory files inherit the mode). An existing directory's
/// mode is the operator's choice and stays.
fn prepare_data_dir(data_dir: &std::path::Path, default_sqlite: bool) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
    if !data_dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(data_dir)?;
    }
    let database = data_dir.join(hatchery_store::DEFAULT_SQLITE_FILE);
    if default_sqlite && !database.exists() {
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&database)
            .or_else(|e| {
                // Created meanwhile by another process: fine.
                if e.kind() == std::io::ErrorKind::AlreadyExists {
                    std::fs::File::open(&database)
                } else {
                    Err(e)
                }
            })?;
    }
    Ok(())
}

/// Where a backend reports agents that end on their own.
type Exits = tokio::sync::mpsc::UnboundedReceiver<hatchery_provision::Exit>;

/// The job runner over the configured backend (none without one), and the backend's
/// reports of agents that end on their own.
async fn provisioner(
    config: &ServerConfig,
    store: &Store,
) -> Result<(Option<Arc<app::provisioner::Provisioner>>, Option<Exits>), StartError> {
    let Some((backend, exits)) = backends::build(config, store).await? else {
        return Ok((None, None));
    };
    let replica = replica_id(&config.data_dir).map_err(|source| StartError::DataDir {
        path: config.data_dir.join(REPLICA_ID_FILE),
        source,
    })?;
    // An engine's or a cluster's agents outlive their control plane, and a replica adopts
    // every one it finds: a second live replica would take the first's for its own.
    if backend.agents_outlive_control_plane()
        && let Some(other) = store.replica_other_live(&replica, backend.name()).await?
    {
        return Err(StartError::ReplicaConflict {
            backend: backend.name(),
            other,
        });
    }
    Ok((
        Some(Arc::new(app::provisioner::Provisioner::new(
            backend, replica,
        ))),
        Some(exits),
    ))
}

/// The file in the data directory that holds this replica's lasting name.
const REPLICA_ID_FILE: &str = "replica-id";

/// This replica's lasting name: made once, kept in the data directory, so after a restart
/// it knows its own (dead) agents from another live replica's, and its own lease from a
/// second replica's.
fn replica_id(data_dir: &std::path::Path) -> std::io::Result<String> {
    let path = data_dir.join(REPLICA_ID_FILE);
    match std::fs::read_to_string(&path) {
        Ok(id) if !id.trim().is_empty() => Ok(id.trim().to_owned()),
        Ok(_) => Err(std::io::Error::other(format!(
            "{} is empty: remove it to make a new one",
            path.display()
        ))),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            let id = format!("replica-{}", uuid::Uuid::new_v4().simple());
            private_file::write(&path, id.as_bytes())?;
            Ok(id)
        }
        Err(error) => Err(error),
    }
}

/// Bind the Unix socket, replacing a stale one left by a crash; owner-only access.
fn bind_socket(path: &std::path::Path) -> Result<(tokio::net::UnixListener, PathBuf), StartError> {
    use std::os::unix::fs::{FileTypeExt as _, PermissionsExt as _};
    let failed = |source| StartError::BindSocket {
        path: path.to_owned(),
        source,
    };
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => std::fs::remove_file(path).map_err(failed)?,
        Ok(_) => {
            return Err(failed(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "a file that is not a socket is in the way",
            )));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(failed(e)),
    }
    if let Some(dir) = path.parent() {
        use std::os::unix::fs::DirBuilderExt as _;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(failed)?;
    }
    let listener = tokio::net::UnixListener::bind(path).map_err(failed)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(failed)?;
    Ok((listener, path.to_owned()))
}
