//! The `local` backend: each workspace's agent is a process tree in a bubblewrap sandbox.
//!
//! The sandbox: an empty root with the host's system directories and the agent program's
//! directory read-only (the control plane's data is not there), the workspace's own
//! writable directory at `/workspace`, its
//! config read-only at `/config`, private `/tmp`, `/proc` and `/dev`, new PID, IPC, UTS,
//! user and network namespaces (no network unless the runtime opts in), and the control
//! plane's Unix socket bound in at `/run/hatchery/hatchery.sock` — the agent's only way
//! out. Limits are rlimits (set by `prlimit` on the way in). Secrets travel in the
//! environment, never on a command line or on disk. The sandbox dies with the control
//! plane (`--die-with-parent`).
//!
//! Stop: SIGTERM to every process of the sandbox but bubblewrap itself (whose death would
//! kill the agent before it could finish), then SIGKILL to the whole process group after
//! the grace period.

use std::collections::{HashMap, HashSet};
use std::path::{Component, Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::BoxFuture;
use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use tokio::sync::mpsc;

use crate::{AgentState, Backend, BackendError, Exit, WorkspaceSpec};

/// Where the control plane's socket appears inside a sandbox.
pub const SANDBOX_SOCKET: &str = "/run/hatchery/hatchery.sock";
/// The host directories a sandbox sees, read-only (missing ones are skipped).
const SYSTEM_DIRS: &[&str] = &["/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/etc"];
/// How many log lines an exit report carries.
const EXIT_LOG_LINES: usize = 20;

/// How the local backend runs agents.
#[derive(Debug, Clone)]
pub struct LocalConfig {
    /// Where each workspace gets its directory (`<root>/<id>/…`).
    pub root: PathBuf,
    /// Host paths hidden from every sandbox (the control plane's data directory).
    pub hidden: Vec<PathBuf>,
    /// The control plane's Unix socket on the host.
    pub socket: PathBuf,
    /// The command of each runtime; runtimes not listed run `default_command`.
    pub commands: HashMap<String, Vec<String>>,
    /// What runs when the runtime has no command of its own: `hatchery agent`.
    pub default_command: Vec<String>,
    /// Runtimes allowed the host's network (all others get none).
    pub host_network: HashSet<String>,
    /// Between SIGTERM and SIGKILL.
    pub grace: Duration,
    /// The bubblewrap binary.
    pub bwrap: PathBuf,
}

/// One running sandbox.
#[derive(Debug)]
struct Sandbox {
    /// The bubblewrap process, leader of the sandbox's process group.
    pid: i32,
    /// Set when we stop it: its exit is then no news.
    stopping: Arc<std::sync::atomic::AtomicBool>,
    /// Whether it has exited, and how.
    exited: tokio::sync::watch::Receiver<Life>,
}

/// A sandbox's life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Life {
    Running,
    /// Exited with this code (`None`: killed by a signal).
    Exited(Option<i32>),
}

/// The local backend.
#[derive(Debug)]
pub struct LocalBackend {
    config: LocalConfig,
    running: Arc<Mutex<HashMap<String, Sandbox>>>,
    exits: mpsc::UnboundedSender<Exit>,
}

fn transient(context: &str, error: impl std::fmt::Display) -> BackendError {
    BackendError::Transient(format!("{context}: {error}"))
}

/// A config file's path must stay inside the config directory.
fn safe_relative(path: &str) -> Result<&Path, BackendError> {
    let relative = Path::new(path);
    let clean = !path.is_empty()
        && relative
            .components()
            .all(|c| matches!(c, Component::Normal(_)));
    if clean {
        Ok(relative)
    } else {
        Err(BackendError::Permanent(format!(
            "config file path {path:?} is not a plain relative path"
        )))
    }
}

/// The last `lines` lines of a file (empty when it is missing).
fn tail(path: &Path, lines: usize) -> String {
    let Ok(text) = std::fs::read_to_string(path) else {
        return String::new();
    };
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Every process whose process group is `pgid`, by pid.
fn group_members(pgid: i32) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|entry| entry.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                // `pid (comm) state ppid pgrp …`: comm may hold spaces, so split after ')'.
                .and_then(|stat| {
                    let rest = stat.rsplit_once(')')?.1;
                    rest.split_whitespace().nth(2)?.parse::<i32>().ok()
                })
                == Some(pgid)
        })
        .collect()
}

impl LocalBackend {
    /// A backend, and the stream of agents that exited on their own.
    #[must_use]
    pub fn new(config: LocalConfig) -> (Self, mpsc::UnboundedReceiver<Exit>) {
        let (exits, reports) = mpsc::unbounded_channel();
        (
            Self {
                config,
                running: Arc::default(),
                exits,
            },
            reports,
        )
    }

    fn workspace_dir(&self, id: &str) -> PathBuf {
        self.config.root.join(id)
    }

    fn command_of(&self, runtime: &str) -> &[String] {
        self.config
            .commands
            .get(runtime)
            .unwrap_or(&self.config.default_command)
    }

    /// The full command line: prlimit's limits, then bubblewrap's sandbox, then the agent.
    fn argv(&self, spec: &WorkspaceSpec, dir: &Path) -> Vec<String> {
        let limits = spec.limits;
        let command = self.command_of(&spec.runtime);
        let mut argv = vec![
            "prlimit".to_owned(),
            format!("--as={}", limits.memory_bytes),
            format!("--nproc={}", limits.processes),
            format!("--nofile={}", limits.open_files),
            "--".to_owned(),
            self.config.bwrap.display().to_string(),
            "--unshare-all".to_owned(),
        ];
        if self.config.host_network.contains(&spec.runtime) {
            argv.push("--share-net".to_owned());
        }
        argv.push("--die-with-parent".to_owned());
        // The root is an empty tmpfs: only the system directories (read-only) and the
        // program's own directory are visible; the control plane's data is not.
        let mut visible: Vec<String> = SYSTEM_DIRS.iter().map(|d| (*d).to_owned()).collect();
        if let Some(program_dir) = command
            .first()
            .map(Path::new)
            .filter(|p| p.is_absolute())
            .and_then(Path::parent)
        {
            visible.push(program_dir.display().to_string());
        }
        for path in &visible {
            argv.extend(["--ro-bind-try".to_owned(), path.clone(), path.clone()]);
        }
        // Should the program live under the data directory, its data stays hidden.
        for hidden in &self.config.hidden {
            if visible.iter().any(|v| hidden.starts_with(v)) {
                argv.extend(["--tmpfs".to_owned(), hidden.display().to_string()]);
            }
        }
        let workspace = dir.join("workspace").display().to_string();
        let config = dir.join("config").display().to_string();
        let socket = self.config.socket.display().to_string();
        argv.extend(
            [
                "--proc",
                "/proc",
                "--dev",
                "/dev",
                "--tmpfs",
                "/tmp",
                "--dir",
                "/run/hatchery",
                "--bind",
                &socket,
                SANDBOX_SOCKET,
                "--bind",
                &workspace,
                "/workspace",
                "--ro-bind",
                &config,
                "/config",
                "--remount-ro",
                "/",
                "--chdir",
                "/workspace",
                "--",
            ]
            .iter()
            .map(|s| (*s).to_owned()),
        );
        argv.extend(command.iter().cloned());
        argv
    }

    fn start_sandbox(&self, spec: &WorkspaceSpec) -> Result<(), BackendError> {
        if let Some(sandbox) = self.lock().get(&spec.id)
            && *sandbox.exited.borrow() == Life::Running
        {
            // Already running: a job run twice never starts a second agent.
            return Ok(());
        }
        let dir = self.workspace_dir(&spec.id);
        let config_dir = dir.join("config");
        for sub in ["workspace", "config"] {
            std::fs::create_dir_all(dir.join(sub))
                .map_err(|e| transient("creating the workspace directory", e))?;
        }
        for (path, content) in &spec.files {
            let target = config_dir.join(safe_relative(path)?);
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent).map_err(|e| transient("writing config", e))?;
            }
            std::fs::write(&target, content).map_err(|e| transient("writing config", e))?;
        }
        let log_path = dir.join("agent.log");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| transient("opening the log", e))?;
        let log_err = log
            .try_clone()
            .map_err(|e| transient("opening the log", e))?;
        let argv = self.argv(spec, &dir);
        let mut command = tokio::process::Command::new(&argv[0]);
        command
            .args(&argv[1..])
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("HOME", "/workspace")
            .env("HATCHERY_URL", format!("unix:{SANDBOX_SOCKET}"))
            .env("HATCHERY_WORKSPACE_ID", &spec.id)
            .env("HATCHERY_BOOTSTRAP_TOKEN", &spec.bootstrap_token)
            .env("HATCHERY_CONFIG_DIR", "/config")
            .envs(spec.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log_err))
            .process_group(0)
            .kill_on_drop(false);
        let mut child = command.spawn().map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => BackendError::Permanent(format!(
                "cannot start the sandbox: {} or bwrap is not installed (run scripts/setup)",
                argv[0]
            )),
            _ => transient("starting the sandbox", e),
        })?;
        let pid = child
            .id()
            .and_then(|pid| i32::try_from(pid).ok())
            .ok_or_else(|| BackendError::Transient("the sandbox exited at once".to_owned()))?;
        let stopping = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (exited_tx, exited) = tokio::sync::watch::channel(Life::Running);
        self.lock().insert(
            spec.id.clone(),
            Sandbox {
                pid,
                stopping: Arc::clone(&stopping),
                exited,
            },
        );
        tracing::info!(workspace_id = %spec.id, pid, "sandbox started");
        // Watch it: an exit we did not ask for is reported, with its last log lines.
        let (id, exits, running) = (
            spec.id.clone(),
            self.exits.clone(),
            Arc::clone(&self.running),
        );
        tokio::spawn(async move {
            let code = child.wait().await.ok().and_then(|status| status.code());
            let _ = exited_tx.send(Life::Exited(code));
            // Whatever it left behind in its group goes too.
            let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
            {
                let mut running = running
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                if running.get(&id).is_some_and(|s| s.pid == pid) {
                    running.remove(&id);
                }
            }
            if !stopping.load(std::sync::atomic::Ordering::Acquire) {
                tracing::warn!(workspace_id = %id, ?code, "agent exited");
                let _ = exits.send(Exit {
                    id,
                    code,
                    last_lines: tail(&log_path, EXIT_LOG_LINES),
                });
            }
        });
        Ok(())
    }

    async fn stop_sandbox(&self, id: &str) -> Result<(), BackendError> {
        let Some((pid, mut exited)) = self.lock().get(id).map(|s| {
            s.stopping.store(true, std::sync::atomic::Ordering::Release);
            (s.pid, s.exited.clone())
        }) else {
            return Ok(());
        };
        // SIGTERM to the agent (and anything else inside), not to bubblewrap: its death
        // would SIGKILL the sandbox before the agent could finish.
        for member in group_members(pid).into_iter().filter(|m| *m != pid) {
            let _ = kill(Pid::from_raw(member), Signal::SIGTERM);
        }
        let graceful = tokio::time::timeout(
            self.config.grace,
            exited.wait_for(|life| *life != Life::Running),
        )
        .await
        .is_ok();
        if !graceful {
            tracing::warn!(
                workspace_id = id,
                "agent ignored SIGTERM; killing the sandbox"
            );
            let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
            let _ = tokio::time::timeout(
                Duration::from_secs(5),
                exited.wait_for(|life| *life != Life::Running),
            )
            .await;
        }
        self.lock().remove(id);
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Sandbox>> {
        self.running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The process-group leaders of the running sandboxes (for tests and recovery).
    #[must_use]
    pub fn process_groups(&self) -> Vec<(String, i32)> {
        self.lock()
            .iter()
            .map(|(id, s)| (id.clone(), s.pid))
            .collect()
    }
}

impl Backend for LocalBackend {
    fn name(&self) -> &'static str {
        "local"
    }

    fn start<'a>(&'a self, spec: &'a WorkspaceSpec) -> BoxFuture<'a, Result<(), BackendError>> {
        Box::pin(async move { self.start_sandbox(spec) })
    }

    fn stop<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<(), BackendError>> {
        Box::pin(self.stop_sandbox(id))
    }

    fn state(&self, id: &str) -> AgentState {
        match self.lock().get(id) {
            Some(sandbox) => match *sandbox.exited.borrow() {
                Life::Running => AgentState::Running(sandbox.pid.to_string()),
                Life::Exited(code) => AgentState::Exited(code),
            },
            None => AgentState::Absent,
        }
    }

    fn logs(&self, id: &str, lines: usize) -> Result<String, BackendError> {
        Ok(tail(&self.workspace_dir(id).join("agent.log"), lines))
    }

    fn log_path(&self, id: &str) -> Option<PathBuf> {
        Some(self.workspace_dir(id).join("agent.log"))
    }

    fn running(&self) -> Vec<String> {
        self.lock().keys().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_paths_stay_inside() {
        assert!(safe_relative("config.yaml").is_ok());
        assert!(safe_relative("skills/a.md").is_ok());
        for bad in ["", "/etc/passwd", "../x", "a/../../x", "./a"] {
            assert!(safe_relative(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn tail_keeps_the_last_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        std::fs::write(&path, "1\n2\n3\n4\n").unwrap();
        assert_eq!(tail(&path, 2), "3\n4");
        assert_eq!(tail(&path, 10), "1\n2\n3\n4");
        assert_eq!(tail(&dir.path().join("missing"), 3), "");
    }

    #[test]
    fn group_members_finds_this_process_group() {
        let me = i32::try_from(std::process::id()).unwrap();
        let pgid = nix::unistd::getpgid(None).unwrap().as_raw();
        assert!(group_members(pgid).contains(&me));
    }
}
