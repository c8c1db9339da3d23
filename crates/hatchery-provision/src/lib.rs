//! Provisioning backends: where a workspace's agent runs. One trait — start, stop, status,
//! logs — and its implementations; the job runner in the server drives them all the same.
//!
//! - [`local::LocalBackend`]: each workspace a process tree in a bubblewrap sandbox.
//! - [`docker::DockerBackend`]: each workspace a container of a Docker (or Podman) engine.
//! - [`kubernetes::KubernetesBackend`]: each workspace a Pod (and its Secret) in a cluster.
//!
//! Each is told how to launch agents the same way ([`AgentLaunch`]).

// Product code never unwraps what input can influence; tests may.
#![warn(clippy::unwrap_used)]

pub mod cgroups;
pub mod docker;
mod files;
pub mod kubernetes;
pub mod launch;
pub mod local;
mod tracked;

pub use files::{AGENT_A2A_DIR, AGENT_A2A_SOCKET, AGENT_SOCKET, a2a_socket_on_host};
pub use launch::AgentLaunch;

use std::path::PathBuf;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;

/// Everything a backend needs to start one workspace's agent.
#[derive(Clone)]
pub struct WorkspaceSpec {
    /// The workspace's id: it names the agent's directory, container or pod, and the
    /// agent gets it as `HATCHERY_WORKSPACE_ID`.
    pub id: String,
    /// Its runtime (decides which command runs).
    pub runtime: String,
    /// Generated config files, by relative path (`config.yaml`, …).
    pub files: Vec<(String, String)>,
    /// Environment for the agent: its secrets and the platform's settings. Never put on a
    /// command line or in hatchery's files; a container engine keeps a container's
    /// environment in its own state (`docker inspect` shows it), a cluster in a Secret.
    pub env: Vec<(String, String)>,
    /// The single-use credential the agent registers with.
    pub bootstrap_token: String,
    /// How often the agent heartbeats (a fraction of the control plane's liveness TTL).
    pub heartbeat_interval: std::time::Duration,
    /// Resource limits.
    pub limits: Limits,
}

impl std::fmt::Debug for WorkspaceSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkspaceSpec")
            .field("id", &self.id)
            .field("runtime", &self.runtime)
            .field(
                "files",
                &self.files.iter().map(|(p, _)| p).collect::<Vec<_>>(),
            )
            .field("env", &self.env.iter().map(|(k, _)| k).collect::<Vec<_>>())
            .field("heartbeat_interval", &self.heartbeat_interval)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

/// Per-workspace resource limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Memory, in bytes (the local backend limits address space, containers memory).
    pub memory_bytes: u64,
    /// CPU, in thousandths of a core (containers; the local backend cannot limit a rate).
    pub cpu_millis: u64,
    /// Processes and threads (of the user, as `RLIMIT_NPROC` counts them).
    pub processes: u64,
    /// Open file descriptors (`RLIMIT_NOFILE`; Kubernetes cannot limit them).
    pub open_files: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            memory_bytes: 2 * 1024 * 1024 * 1024,
            cpu_millis: 1000,
            processes: 4096,
            open_files: 1024,
        }
    }
}

/// What a backend knows of a workspace's agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentState {
    /// Running, with its process id (or container id) as the backend knows it.
    Running(String),
    /// Exited with this code (`None`: killed by a signal).
    Exited(Option<i32>),
    /// The backend runs nothing for this workspace.
    Absent,
}

/// An agent that stopped on its own, reported to the runner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exit {
    /// The id of the workspace whose agent exited.
    pub id: String,
    /// The exit code (`None`: killed by a signal).
    pub code: Option<i32>,
    /// The last lines it logged; the local backend's through [`escape_controls`], and
    /// whoever shows them passes them through it too.
    pub last_lines: String,
}

/// `text` with its control characters written out as escapes (ESC as `\u{1b}`, a carriage
/// return as `\r`, C1 controls, DEL), but for newlines and tabs: what an agent printed can
/// then reach a terminal (the server's log, a failure reason shown by the CLI) without
/// driving it. Backslashes stay as they are, so escaping twice changes nothing.
#[must_use]
pub fn escape_controls(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() && c != '\n' && c != '\t' {
            escaped.extend(c.escape_default());
        } else {
            escaped.push(c);
        }
    }
    escaped
}

/// How the control plane reaches a workspace's agent to deliver A2A messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentEndpoint {
    /// The agent serves HTTP on this Unix socket of the host (the sandbox or container
    /// sees it at [`AGENT_A2A_SOCKET`]); requests name any host, the agent ignores it.
    Unix(PathBuf),
    /// The agent serves HTTP at this URL, an address the backend itself knows (a pod's):
    /// it does not come from the agent, so the URL rules of registration, which keep a
    /// registered URL off private addresses, do not apply to it.
    Url(String),
}

/// Why a backend call failed.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// Worth retrying (a busy engine, a transient IO error).
    #[error("{0}")]
    Transient(String),
    /// Retrying will not help (no such command, a refused configuration).
    #[error("{0}")]
    Permanent(String),
}

/// A place where agents run.
pub trait Backend: Send + Sync + 'static {
    /// The backend's name (`local`, `docker`, …).
    fn name(&self) -> &'static str;

    /// Start the workspace's agent. Never two for one workspace: an agent still there from
    /// an earlier start is left (the local backend, whose agents die with the control
    /// plane) or replaced by this spec's (backends whose agents outlive it: an earlier
    /// start's agent may hold a bootstrap credential since revoked).
    fn start<'a>(&'a self, spec: &'a WorkspaceSpec) -> BoxFuture<'a, Result<(), BackendError>>;

    /// Stop the agent: SIGTERM, then SIGKILL after the grace period. Nothing of it remains.
    fn stop<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<(), BackendError>>;

    /// What runs for the workspace.
    fn state<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<AgentState, BackendError>>;

    /// The last `lines` lines the agent logged (empty if it never ran).
    fn logs<'a>(&'a self, id: &'a str, lines: usize)
    -> BoxFuture<'a, Result<String, BackendError>>;

    /// What the agent logs from now on, as it logs it. Ends when the caller drops it (or
    /// when the backend can no longer follow).
    fn follow(&self, id: &str) -> BoxStream<'static, Bytes>;

    /// The workspaces it runs agents for now. Backends whose agents outlive the control
    /// plane adopt here the ones a previous control plane left running.
    fn running(&self) -> BoxFuture<'_, Result<Vec<String>, BackendError>>;

    /// Whether agents keep running when the control plane stops (containers, pods): then
    /// a graceful shutdown leaves them be, and the next start adopts them.
    fn agents_outlive_control_plane(&self) -> bool {
        false
    }

    /// Where the workspace's agent takes A2A messages: known only while this backend runs
    /// the workspace's sandbox (container, pod); `None` otherwise, and from backends that
    /// cannot reach their agents.
    fn a2a_endpoint(&self, _id: &str) -> Option<AgentEndpoint> {
        None
    }
}
