//! The application layer: the rules of each resource, between the HTTP handlers and the
//! store. Functions here take parsed input, decide, and write through the store in one
//! transaction; handlers only extract and convert.

pub mod a2a;
pub mod a2a_queue;
pub mod access;
pub mod activity;
pub mod agents;
pub mod bundles;
pub mod delegations;
mod error;
pub mod events;
pub mod lifecycle;
pub mod limits;
pub mod org;
pub mod provisioner;
pub mod secrets;
pub mod workspaces;

use std::sync::Arc;

use hatchery_store::{Store, StoreError};

pub use self::error::{AgentFault, Cursor, Error, Resource, Service, TokenFault};

use crate::event_hub::EventHub;
use crate::registry_source::LiveRegistry;
use crate::supervision::Supervision;

/// What the application layer works with.
#[derive(Debug, Clone)]
pub struct App {
    /// The provider registry in force.
    pub registry: Arc<LiveRegistry>,
    /// The database (SQLite or Postgres).
    pub store: Store,
    /// The key secrets are sealed with; `None` when secrets are disabled.
    pub secrets_key: Option<Arc<secrets::ServerKey>>,
    /// The platform gateway credential, handed to platform-billed agents.
    pub platform_key: Option<PlatformKey>,
    /// The job runner and its backend; `None` when no backend runs agents.
    pub provisioner: Option<Arc<provisioner::Provisioner>>,
    /// Development mode: the dev-mode exceptions of the gates apply.
    pub dev: bool,
    /// Liveness and provisioning deadlines.
    pub supervision: Arc<Supervision>,
    /// Live event fan-out.
    pub hub: EventHub,
    /// Heartbeats waiting to be written.
    pub heartbeats: Arc<agents::HeartbeatBuffer>,
    /// Workspace tokens recently found live.
    pub tokens: Arc<access::TokenCache>,
    /// Counters for `/metrics`.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// The templates directory (org templates in its `org/`), if there is one.
    pub templates: Option<Arc<std::path::Path>>,
    /// The HTTP clients A2A messages reach agents with.
    pub agent_clients: Arc<a2a::AgentClients>,
    /// What delivers delegations.
    pub courier: Arc<delegations::Courier>,
}

impl App {
    /// Fault injection: abort the process — no cleanup, no graceful shutdown, as `kill -9`
    /// would — if the crash tests asked for a crash at `point`. The points, in order
    /// (`HATCHERY_TEST_CRASH_AT`): `created` (after a create's transaction),
    /// `job-claimed`, `agent-started` (the backend started the agent), `job-done` (the job
    /// was closed); and `org-import-midway` (half of an org import's rows written, inside
    /// its transaction).
    pub(crate) fn crash_point(&self, point: &str) {
        if self.supervision.crash_at.as_deref() == Some(point) {
            tracing::error!(point, "crashing on purpose (HATCHERY_TEST_CRASH_AT)");
            std::process::abort();
        }
    }
}

/// The platform gateway credential; never printed.
#[derive(Clone)]
pub struct PlatformKey(Arc<str>);

impl PlatformKey {
    /// Wrap the credential.
    #[must_use]
    pub fn new(key: &str) -> Self {
        Self(Arc::from(key))
    }

    /// The credential itself, for the agent's environment.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for PlatformKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PlatformKey(<redacted>)")
    }
}

impl App {
    /// The key secrets are sealed and opened with, or the error that says secrets are
    /// disabled on this server.
    pub(crate) fn sealing_key(&self) -> Result<&secrets::ServerKey, Error> {
        self.secrets_key
            .as_deref()
            .ok_or(Error::Unavailable(Service::SecretsKeyMissing))
    }
}

/// Parse a stored JSON column; a damaged one shows as null rather than failing the list.
pub(crate) fn stored_json(text: Option<&str>) -> serde_json::Value {
    text.and_then(|t| serde_json::from_str(t).ok())
        .unwrap_or(serde_json::Value::Null)
}

/// A store failure while doing `message`: the database away (the client retries; nothing
/// is wrong with its request), or a failure inside; the cause goes to the log.
pub(crate) fn store_error(message: &'static str) -> impl Fn(StoreError) -> Error {
    move |error| match error {
        error if error.is_unavailable() => Error::database(format!("{message}: {error}")),
        // A value sealed before a rotation: refused in the write's own transaction.
        StoreError::SecretsKeyRotated => Error::Unavailable(Service::SecretsKeyRotated),
        error => Error::internal(message, error),
    }
}
