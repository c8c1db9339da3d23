//! Backend construction: the [`BackendChoice`] of the configuration turned into a running
//! backend, checked before the server binds: its tools installed, its engine or cluster
//! answering, its agent image there (built from this binary if need be).

use std::path::PathBuf;
use std::sync::Arc;

use hatchery_provision::AgentLaunch;
use hatchery_provision::launch::{CommandLine, Image};
use hatchery_provision::local::{LocalBackend, LocalConfig};
use hatchery_store::Store;

use crate::{ServerConfig, StartError};

/// Which backend runs agents, and how it launches them.
#[derive(Debug, Clone, Default)]
pub enum BackendChoice {
    /// None: provision jobs wait, and workspaces wait for agents started by hand.
    #[default]
    None,
    /// Each agent in a bubblewrap sandbox on this machine.
    Local {
        /// The command line of each runtime (`hatchery agent` by default), who shares the
        /// host's network, the grace period.
        launch: AgentLaunch<CommandLine>,
    },
    /// Each agent in a container of a Docker (or Podman) engine on this machine.
    Docker {
        /// The engine's Unix socket (`unix:///var/run/docker.sock`).
        endpoint: String,
        /// The image of each runtime, who shares the host's network, the grace period.
        launch: AgentLaunch<Image, DefaultImage>,
    },
    /// Each agent a Pod in a Kubernetes cluster.
    Kubernetes {
        /// An unauthenticated API URL (`kubectl proxy`); `None`: as `kubectl` finds it.
        api: Option<String>,
        /// The namespace; `None`: the configuration's default.
        namespace: Option<String>,
        /// Where agents reach the control plane from inside the cluster.
        agent_url: String,
        /// The image of each runtime (the default runs `hatchery agent`), whose pods get the
        /// node's network, the grace period.
        launch: AgentLaunch<Image>,
    },
}

/// The image that runs `hatchery agent` in the docker backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DefaultImage {
    /// This image, on the engine already.
    Named(Image),
    /// One built at start from this program (this very binary), unless the engine has it.
    BuiltFrom(PathBuf),
}

impl BackendChoice {
    /// The runtimes whose agents share the host's (node's) network, comma-separated, if
    /// there are any.
    #[must_use]
    pub fn host_network_runtimes(&self) -> Option<String> {
        let names = match self {
            Self::None => return None,
            Self::Local { launch } => launch.host_network_runtimes(),
            Self::Docker { launch, .. } => launch.host_network_runtimes(),
            Self::Kubernetes { launch, .. } => launch.host_network_runtimes(),
        };
        (!names.is_empty()).then(|| names.join(", "))
    }
}

/// The backend the configuration asks for, checked: its tools are installed (or its
/// engine answers), and the socket its agents reach the control plane through is
/// configured.
pub(crate) async fn build(
    config: &ServerConfig,
    store: &Store,
) -> Result<Option<BackendParts>, StartError> {
    let (name, built) = match &config.backend {
        BackendChoice::None => return Ok(None),
        BackendChoice::Local { launch } => ("local", local_backend(config, store, launch).await),
        BackendChoice::Docker { endpoint, launch } => (
            "docker",
            docker_backend(config, store, endpoint, launch).await,
        ),
        BackendChoice::Kubernetes {
            api,
            namespace,
            agent_url,
            launch,
        } => (
            "kubernetes",
            kubernetes_backend(
                store,
                api.as_deref(),
                namespace.as_deref(),
                agent_url,
                launch,
            )
            .await,
        ),
    };
    built.map(Some).map_err(|reason| StartError::Backend {
        backend: name,
        reason,
    })
}

/// The socket agents on this machine reach the control plane through, and the data
/// directory (canonical).
fn socket_and_data_dir(config: &ServerConfig) -> Result<(PathBuf, PathBuf), String> {
    let socket = config.unix_socket.clone().ok_or_else(|| {
        "it needs the Unix socket (HATCHERY_SOCKET) its agents reach the control plane through"
            .to_owned()
    })?;
    let data_dir = std::fs::canonicalize(&config.data_dir).map_err(|e| e.to_string())?;
    Ok((socket, data_dir))
}

/// The local backend: its tools are installed; control groups where they are writable.
async fn local_backend(
    config: &ServerConfig,
    store: &Store,
    launch: &AgentLaunch<CommandLine>,
) -> Result<BackendParts, String> {
    let (socket, data_dir) = socket_and_data_dir(config)?;
    let tool = |name: &str| {
        on_path(name).ok_or_else(|| {
            format!(
                "{name} is not installed: run scripts/setup (Debian: apt-get install bubblewrap util-linux), or start with HATCHERY_BACKEND=none"
            )
        })
    };
    let (bwrap, prlimit) = (tool("bwrap")?, tool("prlimit")?);
    let installation = installation_id(store).await?;
    let cgroups = match hatchery_provision::cgroups::Cgroups::detect(&installation) {
        Ok(cgroups) => {
            tracing::info!(version = ?cgroups.version(), "sandboxes get control-group limits on memory, CPU and processes");
            Some(cgroups)
        }
        Err(reason) => {
            tracing::warn!(%reason, "no writable control groups: sandboxes get rlimits only (address space, processes, open files; no CPU limit)");
            None
        }
    };
    let (backend, exits) = LocalBackend::new(LocalConfig {
        root: data_dir.join("workspaces"),
        hidden: vec![data_dir],
        socket,
        launch: launch.clone(),
        bwrap,
        prlimit,
        cgroups,
    });
    Ok((Arc::new(backend), exits))
}

/// The docker backend: its engine answers, its agent image is there (built from this
/// binary if need be), and its containers cannot see the data directory.
async fn docker_backend(
    config: &ServerConfig,
    store: &Store,
    endpoint: &str,
    launch: &AgentLaunch<Image, DefaultImage>,
) -> Result<BackendParts, String> {
    use hatchery_provision::docker;
    let (socket, data_dir) = socket_and_data_dir(config)?;
    let root = data_dir.join("workspaces");
    // Each container sees the socket's directory: it must hold the socket and nothing else
    // (not the data directory, not another program's socket, such as the engine's own).
    let socket = std::path::absolute(&socket).map_err(|e| e.to_string())?;
    let socket_dir = socket
        .parent()
        .and_then(|dir| std::fs::canonicalize(dir).ok())
        .ok_or_else(|| format!("the socket {} has no directory", socket.display()))?;
    let others: Vec<String> = std::fs::read_dir(&socket_dir)
        .map_err(|e| format!("reading {}: {e}", socket_dir.display()))?
        .filter_map(Result::ok)
        .map(|entry| entry.file_name())
        .filter(|name| Some(name.as_os_str()) != socket.file_name())
        .map(|name| name.to_string_lossy().into_owned())
        .collect();
    if data_dir.starts_with(&socket_dir) || !others.is_empty() {
        return Err(format!(
            "containers are given the directory of the socket, {}, so it must hold nothing but the socket (it holds: {}): put HATCHERY_SOCKET in a directory of its own, such as the default <data dir>/run/hatchery.sock",
            socket_dir.display(),
            if others.is_empty() {
                "the data directory".to_owned()
            } else {
                others.join(", ")
            }
        ));
    }
    let engine = docker::connect(endpoint).await.map_err(|e| {
        format!("{e} (is the engine running? HATCHERY_DOCKER_HOST names its socket)")
    })?;
    let default_image = match &launch.default {
        DefaultImage::Named(image) => image.clone(),
        DefaultImage::BuiltFrom(agent_program) => {
            let tag = docker::agent_image_tag(agent_program)
                .map_err(|e| format!("reading {}: {e}", agent_program.display()))?;
            let (id, built) = docker::build_agent_image(&engine, &tag, agent_program)
                .await
                .map_err(|e| e.to_string())?;
            if built {
                tracing::info!(image = %tag, %id, "built the agent image from this binary");
            }
            id
        }
    };
    let installation = installation_id(store).await?;
    let (backend, exits) = docker::DockerBackend::new(
        engine,
        docker::DockerConfig {
            root,
            socket,
            launch: launch.clone().with_default(default_image),
            installation,
        },
    )
    .map_err(|e| e.to_string())?;
    Ok((Arc::new(backend), exits))
}

/// This installation's id, made at its first start: containers and pods carry it, so two
/// control planes sharing an engine or a namespace never adopt each other's agents.
async fn installation_id(store: &Store) -> Result<String, String> {
    store
        .setting_get_or_insert(
            "installation_id",
            &uuid::Uuid::new_v4().simple().to_string(),
        )
        .await
        .map_err(|e| e.to_string())
}

/// The kubernetes backend: the cluster answers, in the namespace pods will go in.
async fn kubernetes_backend(
    store: &Store,
    api: Option<&str>,
    namespace: Option<&str>,
    agent_url: &str,
    launch: &AgentLaunch<Image>,
) -> Result<BackendParts, String> {
    use hatchery_provision::kubernetes;
    let (client, namespace) = kubernetes::connect(api, namespace)
        .await
        .map_err(|e| e.to_string())?;
    let (backend, exits) = kubernetes::KubernetesBackend::new(
        client,
        kubernetes::KubernetesConfig {
            namespace,
            agent_url: agent_url.to_owned(),
            launch: launch.clone(),
            installation: installation_id(store).await?,
        },
    );
    Ok((Arc::new(backend), exits))
}

/// A backend and the stream of its agents' unasked-for exits.
pub(crate) type BackendParts = (
    Arc<dyn hatchery_provision::Backend>,
    tokio::sync::mpsc::UnboundedReceiver<hatchery_provision::Exit>,
);

/// A tool's absolute path, found on `PATH` once, at start: the sandbox is never started
/// through a `PATH` lookup.
fn on_path(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(tool))
        .find(|candidate| candidate.is_file())
}
