//! The `local` backend: each workspace's agent is a process tree in a bubblewrap sandbox.
//!
//! The sandbox: an empty root with the host's system directories and the agent program
//! itself read-only (not the program's directory: nothing beside it, and not the control
//! plane's data), the workspace's own writable directory at `/workspace`, its
//! config read-only at `/config`, private `/tmp`, `/proc` and `/dev`, new PID, IPC, UTS,
//! user and network namespaces (no network unless the runtime opts in), and the control
//! plane's Unix socket bound in at `/run/hatchery/hatchery.sock` — the agent's only way
//! out — and the workspace's `a2a/` directory writable at `/run/a2a`, where the agent
//! makes the socket the control plane delivers A2A messages to. Limits are rlimits (set by `prlimit` on the way in). Secrets travel in the
//! environment, never on a command line or on disk. The sandbox dies with the control
//! plane (`--die-with-parent`).
//!
//! Privileges: none. Every capability is dropped (`--cap-drop ALL`, the bounding set too),
//! and bubblewrap sets no-new-privileges. That matters as root: bubblewrap run by root
//! keeps every capability unless told otherwise, and its user namespace maps root inside
//! to root outside (it maps only its caller's uid), so a sandboxed agent is uid 0 on the
//! host. Without capabilities that uid can do no more than the files it is shown allow
//! (read-only binds it cannot remount, its own `/workspace`) and, for a runtime with the
//! host's network, what the host's services grant a peer of uid 0 (abstract Unix sockets
//! belong to the network namespace). A control plane run as root also requires the user
//! namespace (`--unshare-user`, where `--unshare-all` alone would go on without one):
//! where none can be made, bubblewrap refuses and the workspace fails with its message.
//!
//! Stop: SIGTERM to every process of the sandbox but bubblewrap itself (whose death would
//! kill the agent before it could finish), then SIGKILL to the whole process group after
//! the grace period.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::sync::mpsc;

use crate::files::{
    AGENT_A2A_DIR, AGENT_A2A_SOCKET, AGENT_SOCKET, EXIT_LOG_LINES, a2a_socket_on_host, agent_env,
    follow_file, lay_out, tail, transient,
};
use crate::launch::{AgentLaunch, CommandLine};
use crate::{
    AgentEndpoint, AgentState, Backend, BackendError, Exit, WorkspaceSpec, escape_controls,
};

/// The host paths a sandbox sees, read-only (missing ones are skipped). Of `/etc` only
/// what programs need to run and resolve names ([`ETC_ENTRIES`]): not the host's service
/// configuration, which may hold credentials.
const SYSTEM_DIRS: &[&str] = &["/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64"];
/// What of `/etc` a sandbox sees.
const ETC_ENTRIES: &[&str] = &[
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "passwd",
    "group",
    "nsswitch.conf",
    "hosts",
    "resolv.conf",
    "localtime",
    "ssl",
    "ca-certificates",
    "alternatives",
];
/// What of `/etc` changes while the control plane runs, and matters to sandboxes with
/// the host's network: bound live over the copy.
const LIVE_ETC_ENTRIES: &[&str] = &["hosts", "resolv.conf"];

/// How the local backend runs agents.
#[derive(Debug, Clone)]
pub struct LocalConfig {
    /// Where each workspace gets its directory (`<root>/<id>/…`).
    pub root: PathBuf,
    /// Host paths hidden from every sandbox (the control plane's data directory).
    pub hidden: Vec<PathBuf>,
    /// The control plane's Unix socket on the host.
    pub socket: PathBuf,
    /// The command line of each runtime, who shares the host's network, the grace period.
    pub launch: AgentLaunch<CommandLine>,
    /// The bubblewrap binary, by absolute path.
    pub bwrap: PathBuf,
    /// The prlimit binary, by absolute path.
    pub prlimit: PathBuf,
    /// Control groups for memory, CPU and process limits; `None`: rlimits only.
    pub cgroups: Option<crate::cgroups::Cgroups>,
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

/// What a running sandbox is watched with.
struct Watched {
    id: String,
    pid: i32,
    child: tokio::process::Child,
    log_path: PathBuf,
    stopping: Arc<std::sync::atomic::AtomicBool>,
    exited: tokio::sync::watch::Sender<Life>,
    group: Option<crate::cgroups::SandboxGroup>,
}

/// A sandbox's life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Life {
    Running,
    /// Exited with this code (`None`: killed by a signal).
    Exited(Option<i32>),
}

/// The [`Backend`] whose agents are bubblewrap sandboxes (see the module's description).
#[derive(Debug)]
pub struct LocalBackend {
    config: LocalConfig,
    /// A copy of [`ETC_ENTRIES`], made at start and bound as the sandboxes' `/etc`: one
    /// mount instead of a dozen (mounts are most of a sandbox's set-up time). `None`:
    /// the entries are bound one by one.
    etc: Option<PathBuf>,
    /// Whether the control plane runs as root: then bubblewrap keeps capabilities unless
    /// dropped, and a sandbox must have a user namespace (see the module's description).
    as_root: bool,
    running: Arc<Mutex<HashMap<String, Sandbox>>>,
    /// Held (shared) by each start from its spawn until its sandbox is in `running`: a
    /// sweep for strays waits for none of them and skips its turn while any is held, so a
    /// sandbox being started is never taken for one a dead control plane left.
    starting: tokio::sync::RwLock<()>,
    exits: mpsc::UnboundedSender<Exit>,
}

/// Copy [`ETC_ENTRIES`] of the host's `/etc` to `dest` (replacing what is there): files,
/// directories and symlinks as they are, but never `/etc/ssl/private`.
fn copy_etc(dest: &Path) -> std::io::Result<()> {
    if dest.exists() {
        std::fs::remove_dir_all(dest)?;
    }
    std::fs::create_dir_all(dest)?;
    for entry in ETC_ENTRIES {
        let source = Path::new("/etc").join(entry);
        if std::fs::symlink_metadata(&source).is_ok() {
            copy_entry(&source, &dest.join(entry))?;
        }
    }
    Ok(())
}

fn copy_entry(from: &Path, to: &Path) -> std::io::Result<()> {
    let kind = std::fs::symlink_metadata(from)?.file_type();
    if kind.is_symlink() {
        std::os::unix::fs::symlink(std::fs::read_link(from)?, to)
    } else if kind.is_dir() {
        std::fs::create_dir(to)?;
        for entry in std::fs::read_dir(from)? {
            let path = entry?.path();
            // Private keys stay on the host.
            if path != Path::new("/etc/ssl/private") {
                copy_entry(&path, &to.join(path.file_name().unwrap_or_default()))?;
            }
        }
        Ok(())
    } else {
        std::fs::copy(from, to).map(|_| ())
    }
}

/// Whether this process's real uid is root: what bubblewrap asks to decide whether to keep
/// capabilities. Unknown counts as root, the stricter sandbox.
fn running_as_root() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().next())
        .is_none_or(|real| real == "0")
}

/// Where `path` points, if it is a top-level symlink into `/usr` (`/bin` → `usr/bin`).
fn usr_symlink(path: &str) -> Option<String> {
    let top_level = path
        .strip_prefix('/')
        .is_some_and(|rest| !rest.contains('/'));
    if !top_level {
        return None;
    }
    let target = std::fs::read_link(path).ok()?;
    let target = target.to_str()?;
    let inside_usr =
        ["usr/", "/usr/"].iter().any(|p| target.starts_with(p)) && !target.contains("..");
    inside_usr.then(|| target.to_owned())
}

/// Sandboxes of `bwrap` whose command line binds a directory under `root` and whose pid is
/// not in `ours`: left by a control plane that died before they could arrange to die with
/// it (a kill in the instant between spawn and bubblewrap's `--die-with-parent`).
fn strays(bwrap: &Path, root: &Path, ours: &HashSet<i32>) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let marker = format!("{}/", root.display());
    entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let pid = entry.file_name().to_str()?.parse::<i32>().ok()?;
            let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
            let mut args = cmdline.split(|b| *b == 0).map(String::from_utf8_lossy);
            let program = args.next()?;
            let stray = Path::new(program.as_ref()) == bwrap
                && args.any(|a| a.starts_with(&marker))
                && !ours.contains(&pid)
                // Forked after `ours` was drawn up (a sandbox's inner process, just
                // born): its line of parents, read now, says whose it is.
                && !parent_of(pid).is_some_and(|parent| descends_from(parent, ours));
            stray.then_some(pid)
        })
        .collect()
}

/// A process's parent, read now.
fn parent_of(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `pid (comm) state ppid …`: comm may hold spaces, so split after the last ')'.
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Whether `pid` is one of `ours` or descends from one, following parents as they are now.
fn descends_from(pid: i32, ours: &HashSet<i32>) -> bool {
    let mut current = pid;
    // Bounded: a chain of parents is short, and a reused pid cannot loop it for long.
    for _ in 0..64 {
        if ours.contains(&current) {
            return true;
        }
        match parent_of(current) {
            Some(parent) if parent > 1 && parent != current => current = parent,
            _ => return false,
        }
    }
    false
}

/// Every descendant of `root` (its children, theirs, …), by pid.
fn descendants(root: i32) -> Vec<i32> {
    descendants_in(&process_parents(), root)
}

/// `(pid, parent pid)` of every process, from one read of `/proc`.
fn process_parents() -> Vec<(i32, i32)> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let pid = entry.file_name().to_str()?.parse::<i32>().ok()?;
            Some((pid, parent_of(pid)?))
        })
        .collect()
}

/// Every descendant of `root` in `parents` (its children, theirs, …).
fn descendants_in(parents: &[(i32, i32)], root: i32) -> Vec<i32> {
    let mut found = vec![root];
    let mut index = 0;
    while index < found.len() {
        let parent = found[index];
        found.extend(
            parents
                .iter()
                .filter(|(_, ppid)| *ppid == parent)
                .map(|(pid, _)| *pid),
        );
        index += 1;
    }
    found.remove(0);
    found
}

/// The agent's environment as bubblewrap arguments, NUL-separated for `--args`.
fn environment(spec: &WorkspaceSpec) -> Result<Vec<u8>, BackendError> {
    let mut args = Vec::new();
    let url = format!("unix:{AGENT_SOCKET}");
    for (name, value) in agent_env(spec, &url, Some(AGENT_A2A_SOCKET))? {
        for part in ["--setenv", &name, &value] {
            args.extend_from_slice(part.as_bytes());
            args.push(0);
        }
    }
    Ok(args)
}

impl LocalBackend {
    /// A backend, and the stream of agents that exited on their own.
    #[must_use]
    pub fn new(config: LocalConfig) -> (Self, mpsc::UnboundedReceiver<Exit>) {
        let (exits, reports) = mpsc::unbounded_channel();
        let etc = config.root.join(".etc");
        let etc = match copy_etc(&etc) {
            Ok(()) => Some(etc),
            Err(error) => {
                tracing::warn!(%error, "cannot prepare the sandboxes' /etc: binding its entries one by one");
                None
            }
        };
        (
            Self {
                config,
                etc,
                as_root: running_as_root(),
                running: Arc::default(),
                starting: tokio::sync::RwLock::new(()),
                exits,
            },
            reports,
        )
    }

    fn log_path(&self, id: &str) -> PathBuf {
        self.config.root.join(id).join("agent.log")
    }

    /// The full command line: prlimit's limits, then bubblewrap's sandbox, then the agent.
    fn argv(&self, spec: &WorkspaceSpec, dir: &Path) -> Vec<String> {
        let limits = spec.limits;
        let command = self.config.launch.for_runtime(&spec.runtime);
        let mut argv = vec![
            self.config.prlimit.display().to_string(),
            format!("--as={}", limits.memory_bytes),
            format!("--nproc={}", limits.processes),
            format!("--nofile={}", limits.open_files),
            "--".to_owned(),
            self.config.bwrap.display().to_string(),
            "--unshare-all".to_owned(),
            // No privileges inside, whoever runs the control plane (see the module's
            // description).
            "--cap-drop".to_owned(),
            "ALL".to_owned(),
            // No controlling terminal: nothing inside can type into the operator's.
            "--new-session".to_owned(),
            // The environment comes on stdin (see `environment`), never from the host's
            // environment or on the command line.
            "--clearenv".to_owned(),
            "--args".to_owned(),
            "0".to_owned(),
        ];
        if self.as_root {
            // `--unshare-all` makes a user namespace only where it can; as root, no sandbox
            // without one.
            argv.push("--unshare-user".to_owned());
        }
        if self.config.launch.allows_host_network(&spec.runtime) {
            argv.push("--share-net".to_owned());
        }
        argv.push("--die-with-parent".to_owned());
        // Private /proc, /dev and /tmp first: what is bound below (a program that lives
        // under /tmp, say) goes on top of them, not under.
        for (kind, path) in [("--proc", "/proc"), ("--dev", "/dev"), ("--tmpfs", "/tmp")] {
            argv.extend([kind.to_owned(), path.to_owned()]);
        }
        // The root is an empty tmpfs: only the system directories (read-only) and the
        // program itself (below) are visible; the control plane's data is not.
        let visible: Vec<String> = SYSTEM_DIRS.iter().map(|d| (*d).to_owned()).collect();
        for path in &visible {
            // A merged-/usr system's /bin, /lib, … are symlinks into /usr: the same symlink
            // in the sandbox costs no mount (mounts are most of a sandbox's set-up time).
            match usr_symlink(path) {
                Some(target) => argv.extend(["--symlink".to_owned(), target, path.clone()]),
                None => argv.extend(["--ro-bind-try".to_owned(), path.clone(), path.clone()]),
            }
        }
        match &self.etc {
            Some(copy) => {
                argv.extend([
                    "--ro-bind".to_owned(),
                    copy.display().to_string(),
                    "/etc".to_owned(),
                ]);
                if self.config.launch.allows_host_network(&spec.runtime) {
                    for entry in LIVE_ETC_ENTRIES {
                        let live = format!("/etc/{entry}");
                        argv.extend(["--ro-bind-try".to_owned(), live.clone(), live]);
                    }
                }
            }
            None => {
                for entry in ETC_ENTRIES {
                    let path = format!("/etc/{entry}");
                    argv.extend(["--ro-bind-try".to_owned(), path.clone(), path]);
                }
            }
        }
        // Should the data directory lie under a system directory, it stays hidden.
        for hidden in &self.config.hidden {
            if visible.iter().any(|v| hidden.starts_with(v)) {
                argv.extend(["--tmpfs".to_owned(), hidden.display().to_string()]);
            }
        }
        // The program file alone, not its directory: what lies beside it (a `.env`, a home
        // directory, a build's other files) is none of the agent's business. A program that
        // needs files of its own beside it belongs under /usr. Bound last, so that neither
        // the private /tmp nor a hidden directory covers it.
        if let Some(program) = command.first().map(Path::new).filter(|p| p.is_absolute())
            && (!visible.iter().any(|v| program.starts_with(v))
                || self.config.hidden.iter().any(|h| program.starts_with(h)))
        {
            let program = program.display().to_string();
            argv.extend(["--ro-bind".to_owned(), program.clone(), program]);
        }
        let workspace = dir.join("workspace").display().to_string();
        let config = dir.join("config").display().to_string();
        let a2a = dir.join("a2a").display().to_string();
        let socket = self.config.socket.display().to_string();
        argv.extend(
            [
                "--dir",
                "/run/hatchery",
                "--bind",
                &socket,
                AGENT_SOCKET,
                // Writable: the agent makes its socket there, for the control plane.
                "--bind",
                &a2a,
                AGENT_A2A_DIR,
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

    /// Whether an earlier sandbox of workspace `id` still runs (not being stopped); one
    /// being stopped is waited for, within reason.
    async fn previous_is_running(&self, id: &str) -> Result<bool, BackendError> {
        let previous = self.lock().get(id).map(|sandbox| {
            (
                *sandbox.exited.borrow() == Life::Running,
                sandbox.stopping.load(std::sync::atomic::Ordering::Acquire),
                sandbox.exited.clone(),
            )
        });
        match previous {
            Some((true, false, _)) => Ok(true),
            Some((true, true, mut exited)) => {
                let patience = self.config.launch.grace + Duration::from_secs(5);
                tokio::time::timeout(patience, exited.wait_for(|life| *life != Life::Running))
                    .await
                    .map(|_| false)
                    .map_err(|_| {
                        BackendError::Transient(
                            "the previous agent of this workspace is still stopping".to_owned(),
                        )
                    })
            }
            _ => Ok(false),
        }
    }

    async fn start_sandbox(&self, spec: &WorkspaceSpec) -> Result<(), BackendError> {
        // One agent per workspace: a running one stays.
        if self.previous_is_running(&spec.id).await? {
            return Ok(());
        }
        let _starting = self.starting.read().await;
        let dir = lay_out(&self.config.root, spec)?;
        let environment = environment(spec)?;
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
        let group = match &self.config.cgroups {
            Some(cgroups) => Some(
                cgroups
                    .create(&spec.id, spec.limits)
                    .map_err(|e| transient("limiting the sandbox", e))?,
            ),
            None => None,
        };
        let mut command = tokio::process::Command::new(&argv[0]);
        command
            .args(&argv[1..])
            // prlimit and bubblewrap run on the host: nothing of the workspace's reaches
            // their environment.
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .stdin(Stdio::piped())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log_err))
            .process_group(0)
            .kill_on_drop(false);
        let mut child = command.spawn().map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => BackendError::Permanent(format!(
                "cannot start the sandbox: {} is not installed (run scripts/setup)",
                argv[0]
            )),
            _ => transient("starting the sandbox", e),
        })?;
        let pid = child
            .id()
            .and_then(|pid| i32::try_from(pid).ok())
            .ok_or_else(|| BackendError::Transient("the sandbox exited at once".to_owned()))?;
        // Into its groups while it is alone: bubblewrap forks nothing before it has read
        // its arguments from stdin.
        if let Some(group) = &group
            && let Err(e) = group.join(pid)
        {
            let _ = child.start_kill();
            let _ = child.wait().await;
            group.remove().await;
            return Err(BackendError::Transient(format!(
                "limiting the sandbox: {e}"
            )));
        }
        if let Some(mut stdin) = child.stdin.take() {
            use tokio::io::AsyncWriteExt as _;
            // bubblewrap reads these arguments (`--args 0`) before it starts anything.
            stdin
                .write_all(&environment)
                .await
                .map_err(|e| transient("handing the sandbox its environment", e))?;
        }
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
        self.watch(Watched {
            id: spec.id.clone(),
            pid,
            child,
            log_path,
            stopping,
            exited: exited_tx,
            group,
        });
        Ok(())
    }

    /// Watch a sandbox: an exit we did not ask for is reported, with its last log lines.
    fn watch(&self, watched: Watched) {
        let Watched {
            id,
            pid,
            mut child,
            log_path,
            stopping,
            exited: exited_tx,
            group,
        } = watched;
        let (exits, running) = (self.exits.clone(), Arc::clone(&self.running));
        tokio::spawn(async move {
            let code = child.wait().await.ok().and_then(|status| status.code());
            if let Some(group) = group {
                group.remove().await;
            }
            let _ = exited_tx.send(Life::Exited(code));
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
                    // The control plane logs and shows these: no terminal controls.
                    last_lines: escape_controls(&tail(&log_path, EXIT_LOG_LINES)),
                });
            }
        });
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
        for member in descendants(pid) {
            let _ = kill(Pid::from_raw(member), Signal::SIGTERM);
        }
        let graceful = tokio::time::timeout(
            self.config.launch.grace,
            exited.wait_for(|life| *life != Life::Running),
        )
        .await
        .is_ok();
        if !graceful {
            tracing::warn!(
                workspace_id = id,
                "agent ignored SIGTERM; killing the sandbox"
            );
            // Bubblewrap's death takes the whole sandbox with it (--die-with-parent, and
            // its PID namespace ends with its init).
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            let _ = tokio::time::timeout(
                Duration::from_secs(5),
                exited.wait_for(|life| *life != Life::Running),
            )
            .await;
        }
        // Only this sandbox's entry: a newer one for the workspace stays.
        let mut running = self.lock();
        if running.get(id).is_some_and(|s| s.pid == pid) {
            running.remove(id);
        }
        Ok(())
    }

    /// Kill the sandboxes of this backend's directory that it does not know: none may run
    /// unsupervised, or beside the one a new start makes.
    fn kill_strays(&self) {
        let Ok(_quiet) = self.starting.try_write() else {
            return;
        };
        let known: Vec<i32> = self.lock().values().map(|s| s.pid).collect();
        let parents = process_parents();
        let ours: HashSet<i32> = known
            .iter()
            .flat_map(|pid| std::iter::once(*pid).chain(descendants_in(&parents, *pid)))
            .collect();
        for pid in strays(&self.config.bwrap, &self.config.root, &ours) {
            tracing::warn!(pid, "killing a sandbox left by a control plane that died");
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Sandbox>> {
        self.running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Drop for LocalBackend {
    fn drop(&mut self) {
        if let Some(cgroups) = &self.config.cgroups {
            cgroups.remove_bases();
        }
    }
}

impl Backend for LocalBackend {
    fn name(&self) -> &'static str {
        "local"
    }

    fn start<'a>(&'a self, spec: &'a WorkspaceSpec) -> BoxFuture<'a, Result<(), BackendError>> {
        Box::pin(self.start_sandbox(spec))
    }

    fn stop<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<(), BackendError>> {
        Box::pin(self.stop_sandbox(id))
    }

    fn state<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<AgentState, BackendError>> {
        let state = match self.lock().get(id) {
            Some(sandbox) => match *sandbox.exited.borrow() {
                Life::Running => AgentState::Running(sandbox.pid.to_string()),
                Life::Exited(code) => AgentState::Exited(code),
            },
            None => AgentState::Absent,
        };
        Box::pin(std::future::ready(Ok(state)))
    }

    fn logs<'a>(
        &'a self,
        id: &'a str,
        lines: usize,
    ) -> BoxFuture<'a, Result<String, BackendError>> {
        Box::pin(std::future::ready(Ok(tail(&self.log_path(id), lines))))
    }

    fn follow(&self, id: &str) -> BoxStream<'static, Bytes> {
        follow_file(self.log_path(id))
    }

    fn running(&self) -> BoxFuture<'_, Result<Vec<String>, BackendError>> {
        self.kill_strays();
        Box::pin(std::future::ready(Ok(self
            .lock()
            .keys()
            .cloned()
            .collect())))
    }

    fn a2a_endpoint(&self, id: &str) -> Option<AgentEndpoint> {
        // A sandbox being stopped takes no more messages: its agent has had SIGTERM.
        let live = self.lock().get(id).is_some_and(|sandbox| {
            *sandbox.exited.borrow() == Life::Running
                && !sandbox.stopping.load(std::sync::atomic::Ordering::Acquire)
        });
        live.then(|| AgentEndpoint::Unix(a2a_socket_on_host(&self.config.root, id)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_program_under_tmp_stays_visible_and_secrets_stay_off_the_command_line() {
        let data = tempfile::tempdir().unwrap();
        let (backend, _exits) = LocalBackend::new(LocalConfig {
            root: data.path().join("workspaces"),
            hidden: vec![data.path().to_owned()],
            socket: data.path().join("run/hatchery.sock"),
            launch: AgentLaunch {
                grace: Duration::from_secs(1),
                ..AgentLaunch::new(vec!["/tmp/build/hatchery".into(), "agent".into()])
            },
            bwrap: "/usr/bin/bwrap".into(),
            prlimit: "/usr/bin/prlimit".into(),
            cgroups: None,
        });
        let spec = WorkspaceSpec {
            id: "w".into(),
            runtime: "r".into(),
            files: Vec::new(),
            env: vec![("API_KEY".into(), "s3cret".into())],
            bootstrap_token: "boot".into(),
            heartbeat_interval: Duration::from_secs(20),
            limits: crate::Limits::default(),
        };
        let argv = backend.argv(&spec, &data.path().join("workspaces/w"));
        let at = |needle: &[&str]| {
            argv.windows(needle.len())
                .position(|w| w.iter().zip(needle).all(|(a, b)| a == b))
                .unwrap_or_else(|| panic!("{needle:?} not in {argv:?}"))
        };
        // The program alone, bound after the private /tmp, so it is not hidden; not its
        // directory.
        let program = at(&["--ro-bind", "/tmp/build/hatchery", "/tmp/build/hatchery"]);
        assert!(at(&["--tmpfs", "/tmp"]) < program);
        assert!(!argv.iter().any(|a| a == "/tmp/build"), "{argv:?}");
        assert!(at(&["--unshare-all"]) < at(&["--", "/tmp/build/hatchery", "agent"]));
        at(&["--cap-drop", "ALL"]);
        assert_eq!(
            argv.iter().any(|a| a == "--unshare-user"),
            running_as_root(),
            "as root a user namespace is required, not merely tried"
        );
        at(&["--new-session"]);
        at(&["--clearenv"]);
        assert!(
            !argv
                .iter()
                .any(|a| a.contains("s3cret") || a.contains("boot")),
            "{argv:?}"
        );
        assert!(
            !argv.iter().any(|a| a == "--share-net"),
            "no network unless opted in"
        );
        // The agent's socket directory, writable, after the read-only root is laid.
        let a2a = data.path().join("workspaces/w/a2a").display().to_string();
        assert!(at(&["--bind", &a2a, "/run/a2a"]) < at(&["--remount-ro", "/"]));
        // /etc is one prepared copy of what programs need, with no private keys.
        let etc = data.path().join("workspaces/.etc");
        at(&["--ro-bind", &etc.display().to_string(), "/etc"]);
        assert!(etc.join("passwd").exists());
        assert!(!etc.join("shadow").exists());
        assert!(!etc.join("ssl/private").exists());
    }

    #[test]
    fn the_a2a_endpoint_is_known_only_while_the_sandbox_runs() {
        let data = tempfile::tempdir().unwrap();
        let root = data.path().join("workspaces");
        let (backend, _exits) = LocalBackend::new(LocalConfig {
            root: root.clone(),
            hidden: Vec::new(),
            socket: data.path().join("hatchery.sock"),
            launch: AgentLaunch::new(vec!["/bin/true".into()]),
            bwrap: "/usr/bin/bwrap".into(),
            prlimit: "/usr/bin/prlimit".into(),
            cgroups: None,
        });
        assert_eq!(backend.a2a_endpoint("w"), None, "nothing runs");
        let stopping = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (life, exited) = tokio::sync::watch::channel(Life::Running);
        backend.lock().insert(
            "w".into(),
            Sandbox {
                pid: 1,
                stopping: Arc::clone(&stopping),
                exited,
            },
        );
        assert_eq!(
            backend.a2a_endpoint("w"),
            Some(AgentEndpoint::Unix(root.join("w/a2a/agent.sock")))
        );
        assert_eq!(backend.a2a_endpoint("other"), None);
        stopping.store(true, std::sync::atomic::Ordering::Release);
        assert_eq!(backend.a2a_endpoint("w"), None, "being stopped");
        stopping.store(false, std::sync::atomic::Ordering::Release);
        life.send(Life::Exited(Some(0))).unwrap();
        assert_eq!(backend.a2a_endpoint("w"), None, "exited");
    }

    #[test]
    fn descendants_finds_children_and_grandchildren() {
        let mut child = std::process::Command::new("/bin/sh")
            .args(["-c", "sleep 30 & wait"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let me = i32::try_from(std::process::id()).unwrap();
        let shell = i32::try_from(child.id()).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        let found = loop {
            let found = descendants(me);
            if found.len() >= 2 || std::time::Instant::now() > deadline {
                break found;
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        for pid in &found {
            let _ = kill(Pid::from_raw(*pid), Signal::SIGKILL);
        }
        child.wait().unwrap();
        assert!(found.contains(&shell), "{found:?}");
        assert!(found.len() >= 2, "the shell's sleep too: {found:?}");
    }

    #[test]
    fn the_environment_goes_as_setenv_arguments_ours_last() {
        let spec = WorkspaceSpec {
            id: "w".into(),
            runtime: "r".into(),
            files: Vec::new(),
            env: vec![
                ("API_KEY".into(), "s3cret".into()),
                ("HATCHERY_URL".into(), "evil".into()),
            ],
            bootstrap_token: "boot".into(),
            heartbeat_interval: Duration::from_secs(20),
            limits: crate::Limits::default(),
        };
        let bytes = environment(&spec).unwrap();
        let parts: Vec<&str> = std::str::from_utf8(&bytes).unwrap().split('\0').collect();
        let url = parts.iter().rposition(|p| *p == "HATCHERY_URL").unwrap();
        assert_eq!(
            parts[url + 1],
            "unix:/run/hatchery/hatchery.sock",
            "ours win"
        );
        assert!(
            parts
                .windows(3)
                .any(|w| w == ["--setenv", "HATCHERY_AGENT_SOCKET", "/run/a2a/agent.sock"]),
            "{parts:?}"
        );
        assert!(
            parts
                .windows(3)
                .any(|w| w == ["--setenv", "API_KEY", "s3cret"])
        );
        let mut bad = spec.clone();
        bad.env = vec![("A".into(), "x\0y".into())];
        assert!(environment(&bad).is_err());
    }
}
