//! What a server is started with: every setting the CLI reads from flags and
//! `HATCHERY_*` variables, in one value.

use std::net::SocketAddr;
use std::path::PathBuf;

use secrecy::SecretString;

use crate::backends::BackendChoice;
use crate::supervision::Supervision;
use crate::{event_hub, http};

/// Server configuration; the CLI fills it from flags and `HATCHERY_*` variables. Its
/// keys, tokens and database URL are secrets: `Debug` shows them redacted.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Directory for state: the SQLite database, the admin token's hash, the dev key.
    pub data_dir: PathBuf,
    /// Database URL; `None` for the SQLite file in the data directory. Secret: it may hold
    /// a password.
    pub database_url: Option<SecretString>,
    /// Provider manifest; `None` for the built-in catalog.
    pub providers: Option<PathBuf>,
    /// Admin token; `None` to use (or mint) the one whose hash is in the data directory.
    pub admin_token: Option<SecretString>,
    /// The key secrets are sealed with (base64 of 32 bytes). In dev mode a key file in
    /// the data directory is used when this is `None`.
    pub secrets_key: Option<SecretString>,
    /// The platform gateway credential; without it platform-billed workspaces are refused.
    pub platform_key: Option<SecretString>,
    /// Development mode: loopback only, admin routes open.
    pub dev: bool,
    /// Liveness TTL, provisioning deadlines, sweep cadence, and the clock.
    pub supervision: Supervision,
    /// How far a stream subscriber may fall behind before it is told it lagged (and
    /// catches up from the log), in batches and in bytes.
    pub event_buffer: event_hub::EventBuffer,
    /// A Unix socket to serve the same API on (sandboxed agents reach the control plane
    /// through it, with no network); `None` for TCP only.
    pub unix_socket: Option<PathBuf>,
    /// Where agents run.
    pub backend: BackendChoice,
    /// The templates directory (org templates in its `org/`); `None`: only inline ones.
    pub templates_dir: Option<PathBuf>,
    /// Serve the dashboard's files from this directory instead of the copy built into the
    /// binary (for working on the dashboard without rebuilding).
    pub dashboard_dir: Option<PathBuf>,
    /// CORS origins, the request deadline and each listener's connection bounds.
    pub http: http::HttpSettings,
}
