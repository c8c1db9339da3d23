//! `hatchery-agent`, hatchery's reference agent runtime: it reads the config the control
//! plane generated, refuses to run without the provider the registry says it needs,
//! registers with its bootstrap credential, heartbeats, and serves A2A ([`a2a`]), its card
//! and health until SIGTERM: on TCP, or on the Unix socket a sandboxed agent is reached by.

// Product code never unwraps what input can influence; tests may.
#![warn(clippy::unwrap_used)]

pub mod a2a;
pub mod cli;
pub mod config;
pub mod platform;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::routing::{get, post};
use axum::{Json, Router};
use hatchery_api::ErrorBody;
use hatchery_api::agents::RegisterAnswer;
use hatchery_registry::Registry;
use serde::Deserialize as _;
use serde::Serialize;
use serde_json::{Value, json};

use crate::config::{AgentConfig, ConfigError};
use crate::platform::{CallError, Platform};

/// How the agent was started (the provisioner sets these as environment variables).
#[derive(Debug, Clone)]
pub struct Settings {
    /// The control plane: `http://HOST:PORT` or `unix:/PATH`.
    pub platform_url: String,
    /// This agent's workspace.
    pub workspace_id: String,
    /// The single-use credential to register with.
    pub bootstrap_token: Option<String>,
    /// A workspace token, for agents started without a bootstrap token.
    pub token: Option<String>,
    /// Where `config.yaml` (and optionally `providers.yaml`) are.
    pub config_dir: PathBuf,
    /// Where to serve A2A and health on TCP, when there is no `socket`.
    pub listen: SocketAddr,
    /// The Unix socket to serve A2A and health on instead of TCP: in a sandbox, the one the
    /// backend reaches the agent through (`HATCHERY_AGENT_SOCKET`).
    pub socket: Option<PathBuf>,
    /// The URL to register; `http://localhost:<port>` on TCP and
    /// [`SANDBOX_URL_PREFIX`]`<workspace id>` on a socket when not given.
    pub advertise_url: Option<String>,
    /// How often to heartbeat.
    pub heartbeat_interval: Duration,
}

/// Why the agent stopped on an error.
#[derive(Debug, thiserror::Error)]
#[allow(missing_docs)] // the fields' names say what they hold
pub enum AgentError {
    /// The config is unreadable, malformed, or fails closed.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A `providers.yaml` beside the config did not load.
    #[error("cannot load {path}: {detail}")]
    Registry { path: String, detail: String },
    /// Neither a bootstrap nor a workspace token was given.
    #[error("no credential: set HATCHERY_BOOTSTRAP_TOKEN (or HATCHERY_TOKEN)")]
    NoCredential,
    /// The control plane could not be reached or answered badly.
    #[error(transparent)]
    Call(#[from] CallError),
    /// The control plane refused the agent.
    #[error("the control plane refused {what} ({status}): {answer}")]
    Refused {
        /// Which call.
        what: &'static str,
        /// The HTTP status.
        status: u16,
        /// Its body.
        answer: Value,
    },
    /// The listen address (or socket) could not be bound, or serving on it failed.
    #[error("cannot listen on {address}: {source}")]
    Listen {
        /// `host:port`, or the socket's path.
        address: String,
        source: std::io::Error,
    },
    /// The socket's path is taken by something that is not a socket (which the agent
    /// would otherwise delete).
    #[error(
        "cannot listen on {path}: it exists and is not a socket; remove it or set HATCHERY_AGENT_SOCKET elsewhere"
    )]
    SocketPathTaken { path: String },
    /// Another process answers on the socket (a second agent of the workspace?).
    #[error("cannot listen on {path}: another process is serving there")]
    SocketInUse { path: String },
}

impl AgentError {
    /// The exit code: 2 for a refusal to start (config, the socket's path), 1 otherwise.
    #[must_use]
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Config(_)
            | Self::Registry { .. }
            | Self::NoCredential
            | Self::SocketPathTaken { .. }
            | Self::SocketInUse { .. } => 2,
            _ => 1,
        }
    }
}

/// How long registration retries while the control plane, or its database, is unreachable.
const REGISTER_PATIENCE: Duration = Duration::from_secs(30);

/// What an agent serving on a socket registers, followed by its workspace id (one
/// definition, shared with the control plane and its backends).
pub use hatchery_api::a2a::SANDBOX_URL_PREFIX;

/// Where the agent serves, bound.
enum Listener {
    Tcp(tokio::net::TcpListener, SocketAddr),
    Unix(tokio::net::UnixListener, PathBuf),
}

impl Listener {
    /// Bind the socket when there is one, else the TCP address.
    async fn bind(settings: &Settings) -> Result<Self, AgentError> {
        if let Some(path) = &settings.socket {
            return bind_socket(path).map(|listener| Self::Unix(listener, path.clone()));
        }
        let listen_error = |source| AgentError::Listen {
            address: settings.listen.to_string(),
            source,
        };
        let listener = tokio::net::TcpListener::bind(settings.listen)
            .await
            .map_err(listen_error)?;
        let bound = listener.local_addr().map_err(listen_error)?;
        Ok(Self::Tcp(listener, bound))
    }

    /// Where, as an error names it.
    fn address(&self) -> String {
        match self {
            Self::Tcp(_, bound) => bound.to_string(),
            Self::Unix(_, path) => path.display().to_string(),
        }
    }

    /// The URL to register when none is given.
    fn default_url(&self, workspace_id: &str) -> String {
        match self {
            Self::Tcp(_, bound) => format!("http://localhost:{}", bound.port()),
            Self::Unix(..) => format!("{SANDBOX_URL_PREFIX}{workspace_id}"),
        }
    }

    /// Serve `router` until `shutdown` resolves.
    fn serve(
        self,
        router: Router,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Pin<Box<dyn Future<Output = std::io::Result<()>> + Send>> {
        match self {
            Self::Tcp(listener, _) => Box::pin(
                axum::serve(listener, router)
                    .with_graceful_shutdown(shutdown)
                    .into_future(),
            ),
            Self::Unix(listener, path) => Box::pin(async move {
                let served = axum::serve(listener, router)
                    .with_graceful_shutdown(shutdown)
                    .await;
                // Gone with the agent: nothing answers there any more.
                let _ = std::fs::remove_file(&path);
                served
            }),
        }
    }
}

/// Bind a Unix socket at `path`, replacing a stale one (an earlier agent's, which a crash
/// or a kill left), never anything else, nor one still served.
fn bind_socket(path: &Path) -> Result<tokio::net::UnixListener, AgentError> {
    use std::os::unix::fs::FileTypeExt as _;
    let listen_error = |source| AgentError::Listen {
        address: path.display().to_string(),
        source,
    };
    match std::fs::symlink_metadata(path) {
        Ok(found) if found.file_type().is_socket() => {
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(AgentError::SocketInUse {
                    path: path.display().to_string(),
                });
            }
            std::fs::remove_file(path).map_err(listen_error)?;
        }
        Ok(_) => {
            return Err(AgentError::SocketPathTaken {
                path: path.display().to_string(),
            });
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(listen_error(e)),
    }
    tokio::net::UnixListener::bind(path).map_err(listen_error)
}

/// The agent's HTTP endpoints: health, its card, and A2A at `/`.
fn router(card: AgentCard) -> Router {
    let a2a = Arc::new(a2a::A2a::new(
        &card.runtime,
        &card.model,
        card.provider.as_deref(),
    ));
    Router::new()
        .route("/health", get(health))
        .route("/.well-known/agent.json", get(serve_card))
        .with_state(Arc::new(card))
        .merge(Router::new().route("/", post(a2a::serve)).with_state(a2a))
}

/// Load and check the config: the registry beside it (or the built-in catalog) decides
/// whether a missing provider is a refusal.
pub fn load_config(config_dir: &std::path::Path) -> Result<AgentConfig, AgentError> {
    let config = AgentConfig::load(&config_dir.join("config.yaml"))?;
    let manifest = config_dir.join("providers.yaml");
    let custom;
    let registry = if manifest.exists() {
        let bytes = std::fs::read(&manifest).map_err(|e| AgentError::Registry {
            path: manifest.display().to_string(),
            detail: e.to_string(),
        })?;
        custom = Registry::from_bytes(&bytes).map_err(|e| AgentError::Registry {
            path: manifest.display().to_string(),
            detail: e.to_string(),
        })?;
        &custom
    } else {
        Registry::builtin()
    };
    config.check_provider(registry)?;
    Ok(config)
}

/// Run until `shutdown` resolves (SIGTERM in the binary).
pub async fn run(
    settings: Settings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), AgentError> {
    let config = load_config(&settings.config_dir)?;
    let credential = settings
        .bootstrap_token
        .clone()
        .or_else(|| settings.token.clone())
        .ok_or(AgentError::NoCredential)?;
    let platform = Platform::parse(&settings.platform_url)?;
    let listener = Listener::bind(&settings).await?;
    let address = listener.address();
    let url = settings
        .advertise_url
        .clone()
        .unwrap_or_else(|| listener.default_url(&settings.workspace_id));
    let card = agent_card(&settings.workspace_id, &url, &config);
    tracing::info!(
        workspace_id = %settings.workspace_id,
        runtime = %config.runtime,
        model = %config.model,
        provider = config.provider.as_deref().unwrap_or("-"),
        billing = config.llm_billing_mode.as_deref().unwrap_or("-"),
        %url,
        listen = %address,
        "hatchery-agent starting"
    );

    let token = register(&platform, &settings.workspace_id, &credential, &url, &card).await?;
    tracing::info!("registered");
    let started = Instant::now();
    let beats = tokio::spawn(heartbeat_loop(
        platform,
        settings.workspace_id.clone(),
        token,
        settings.heartbeat_interval,
        started,
    ));
    let served = listener.serve(router(card), shutdown);
    let outcome = tokio::select! {
        served = served => served.map_err(|source| AgentError::Listen { address, source }),
        ended = beats => match ended {
            Ok(error) => Err(error),
            Err(join) => Err(AgentError::Listen { address, source: std::io::Error::other(join) }),
        },
    };
    if outcome.is_ok() {
        tracing::info!("stopping: SIGTERM");
    }
    outcome
}

/// The card the agent registers and serves: who it is and the provider it was stamped
/// with.
// Its fields are in alphabetical order: the card was built with `json!` before, whose
// objects sort their keys, and its bytes stay as they were.
#[derive(Debug, Clone, Serialize)]
struct AgentCard {
    capabilities: Capabilities,
    description: &'static str,
    llm_billing_mode: Option<String>,
    model: String,
    name: String,
    provider: Option<String>,
    provider_source: String,
    registry_hash: String,
    runtime: String,
    /// None yet.
    skills: Vec<Value>,
    url: String,
    version: &'static str,
}

/// What the agent can do beyond the basics.
#[derive(Debug, Clone, Serialize)]
struct Capabilities {
    streaming: bool,
}

fn agent_card(workspace_id: &str, url: &str, config: &AgentConfig) -> AgentCard {
    AgentCard {
        capabilities: Capabilities { streaming: true },
        description: "hatchery's reference agent",
        llm_billing_mode: config.llm_billing_mode.clone(),
        model: config.model.clone(),
        name: format!("hatchery-agent {workspace_id}"),
        provider: config.provider.clone(),
        provider_source: config.provider_source.clone(),
        registry_hash: config.registry_hash.clone(),
        runtime: config.runtime.clone(),
        skills: Vec::new(),
        url: url.to_owned(),
        version: env!("CARGO_PKG_VERSION"),
    }
}

/// Register, retrying while the control plane is unreachable; the token to beat with.
async fn register(
    platform: &Platform,
    workspace_id: &str,
    credential: &str,
    url: &str,
    card: &(impl Serialize + Sync),
) -> Result<String, AgentError> {
    let body = json!({"id": workspace_id, "url": url, "agent_card": card});
    let deadline = Instant::now() + REGISTER_PATIENCE;
    let mut wait = Duration::from_millis(50);
    loop {
        match platform.post("/registry/register", credential, &body).await {
            Ok((200, answer)) => {
                // A token comes back when one was issued; otherwise the credential is one.
                return Ok(RegisterAnswer::deserialize(&answer)
                    .ok()
                    .and_then(|registered| registered.auth_token)
                    .unwrap_or_else(|| credential.to_owned()));
            }
            // The control plane's database is away for now (`platform_unavailable`): the
            // same patience as for a control plane not yet listening.
            Ok((503, answer))
                if ErrorBody::deserialize(&answer)
                    .is_ok_and(|refused| refused.code == "platform_unavailable")
                    && Instant::now() < deadline =>
            {
                tracing::warn!(%answer, "control plane's database unavailable; retrying");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(2));
            }
            Ok((status, answer)) => {
                return Err(AgentError::Refused {
                    what: "registration",
                    status,
                    answer,
                });
            }
            Err(error @ CallError::Connect { .. }) if Instant::now() < deadline => {
                tracing::warn!(%error, "control plane not reachable yet; retrying");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(2));
            }
            Err(error) => return Err(error.into()),
        }
    }
}

/// Beat until the control plane says the workspace is gone (the error ends the agent).
async fn heartbeat_loop(
    platform: Platform,
    workspace_id: String,
    token: String,
    interval: Duration,
    started: Instant,
) -> AgentError {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let body = json!({
            "workspace_id": workspace_id,
            "error_rate": 0.0,
            "sample_error": "",
            "active_tasks": 0,
            "uptime_seconds": started.elapsed().as_secs(),
            "current_task": "",
        });
        match platform.post("/registry/heartbeat", &token, &body).await {
            Ok((200, _)) => {}
            // Gone, or no longer ours: stop rather than beat into the void.
            Ok((status @ (401 | 404 | 410), answer)) => {
                return AgentError::Refused {
                    what: "heartbeat",
                    status,
                    answer,
                };
            }
            Ok((status, answer)) => {
                tracing::warn!(status, %answer, "heartbeat refused; will retry");
            }
            Err(error) => tracing::warn!(%error, "heartbeat failed; will retry"),
        }
    }
}

/// Resolves on SIGTERM or SIGINT.
pub async fn terminated() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

async fn health() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

async fn serve_card(
    axum::extract::State(card): axum::extract::State<Arc<AgentCard>>,
) -> Json<AgentCard> {
    Json((*card).clone())
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    use super::*;

    /// A control plane on loopback that answers each request (one per connection, as the
    /// agent's client makes them) with the next of `answers`.
    async fn control_plane(answers: Vec<(u16, Value)>) -> Platform {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move {
            for (status, body) in answers {
                let (mut stream, _) = listener.accept().await.unwrap();
                let mut request = Vec::new();
                let mut buffer = [0; 4096];
                // Headers, then the body its Content-Length announces.
                loop {
                    let n = stream.read(&mut buffer).await.unwrap();
                    request.extend_from_slice(&buffer[..n]);
                    let text = String::from_utf8_lossy(&request);
                    if let Some(end) = text.find("\r\n\r\n") {
                        let length = text[..end]
                            .lines()
                            .find_map(|l| {
                                l.to_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse::<usize>().unwrap())
                            })
                            .unwrap_or(0);
                        if request.len() >= end + 4 + length {
                            break;
                        }
                    }
                }
                let body = body.to_string();
                let answer = format!(
                    "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                stream.write_all(answer.as_bytes()).await.unwrap();
            }
        });
        Platform::parse(&format!("http://{address}/")).unwrap()
    }

    #[tokio::test]
    async fn a_stale_socket_is_replaced_and_anything_else_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let stale = dir.path().join("agent.sock");
        drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
        assert!(stale.exists(), "a socket outlives its listener");
        let listener = bind_socket(&stale).unwrap();
        let (connected, accepted) =
            tokio::join!(tokio::net::UnixStream::connect(&stale), listener.accept());
        connected.unwrap();
        accepted.unwrap();

        let file = dir.path().join("notes.txt");
        std::fs::write(&file, "keep me").unwrap();
        let refused = bind_socket(&file).unwrap_err();
        assert!(
            matches!(refused, AgentError::SocketPathTaken { .. }),
            "{refused:?}"
        );
        assert!(refused.to_string().contains("is not a socket"), "{refused}");
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "keep me");

        // Still served: not stale, and not ours to take.
        let served = dir.path().join("served.sock");
        let _serving = std::os::unix::net::UnixListener::bind(&served).unwrap();
        let refused = bind_socket(&served).unwrap_err();
        assert!(
            matches!(refused, AgentError::SocketInUse { .. }),
            "{refused:?}"
        );
        assert_eq!(refused.exit_code(), 2);
    }

    #[tokio::test]
    async fn registration_waits_out_the_control_planes_database() {
        let unavailable = json!({"error": "platform datastore unavailable — retry shortly", "code": "platform_unavailable"});
        let platform = control_plane(vec![
            (503, unavailable.clone()),
            (503, unavailable),
            (200, json!({"status": "registered", "auth_token": "issued"})),
        ])
        .await;
        let token = register(
            &platform,
            "w",
            "bootstrap",
            "http://localhost:1",
            &json!({}),
        )
        .await
        .unwrap();
        assert_eq!(token, "issued");
    }

    #[tokio::test]
    async fn any_other_refusal_ends_registration() {
        let platform = control_plane(vec![(
            503,
            json!({"error": "no registry", "code": "registry_unavailable"}),
        )])
        .await;
        let refused = register(
            &platform,
            "w",
            "bootstrap",
            "http://localhost:1",
            &json!({}),
        )
        .await;
        assert!(
            matches!(refused, Err(AgentError::Refused { status: 503, .. })),
            "{refused:?}"
        );
    }
}
