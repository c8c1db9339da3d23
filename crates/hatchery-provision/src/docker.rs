//! The `docker` backend: each workspace's agent is a container of a Docker engine (or of
//! Podman's Docker-compatible service), driven over the engine's Unix socket.
//!
//! A container: named after its workspace (so a second start finds the first), labelled
//! with the workspace and the installation that owns it, no network (`none`; per-runtime
//! opt-in to the host's), read-only root, every capability dropped, no new privileges,
//! memory, CPU, process and open-file limits, the workspace directory writable at
//! `/workspace`, its config read-only at `/config`, and the directory of the control
//! plane's Unix socket at `/run/hatchery` — the agent's only way out. The directory, not
//! the socket file: a restarted control plane makes a new socket, which a file bind would
//! not see. The workspace's `a2a/` directory is writable at `/run/a2a`: the agent makes
//! its socket there, and the control plane delivers A2A messages to it from the host (the
//! container has no network to be reached on). It runs as the owner of the data directory, so it can reach the socket and
//! its files stay the operator's.
//!
//! Containers outlive the control plane: a restart adopts the running ones (found by
//! label) instead of starting them again. Nothing is ever pulled: a runtime's image must
//! be on the engine; the default one is built from this very binary ([`build_agent_image`]).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bollard::Docker;
use bollard::errors::Error as DockerError;
use bollard::models::{
    ContainerCreateBody, ContainerStateStatusEnum, HostConfig, Mount, MountType, ResourcesUlimits,
};
use bollard::query_parameters::{
    CreateContainerOptions, CreateImageOptions, InspectContainerOptions, ListContainersOptions,
    LogsOptions, RemoveContainerOptions, StopContainerOptions, WaitContainerOptions,
};
use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use futures_util::{StreamExt as _, TryStreamExt as _};
use tokio::sync::mpsc;

use crate::files::{
    AGENT_A2A_DIR, AGENT_A2A_SOCKET, EXIT_LOG_LINES, a2a_socket_on_host, agent_env, lay_out,
};
use crate::launch::{AgentLaunch, Image};
use crate::tracked::TrackedAgents;
use crate::{AgentEndpoint, AgentState, Backend, BackendError, Exit, WorkspaceSpec};

/// The label naming the workspace a container runs.
pub const WORKSPACE_LABEL: &str = "dev.hatchery.workspace";
/// The label naming the installation (control plane database) that owns a container.
pub const INSTALLATION_LABEL: &str = "dev.hatchery.installation";
/// The label naming the runtime a container runs.
const RUNTIME_LABEL: &str = "dev.hatchery.runtime";
/// Where the directory of the control plane's socket appears in a container.
const CONTAINER_SOCKET_DIR: &str = "/run/hatchery";
/// Where the agent program lives in the default image.
const IMAGE_PROGRAM: &str = "/usr/local/bin/hatchery";
/// Engine calls give up after this long (a start or a stop waits for the grace period).
const ENGINE_TIMEOUT_SECS: u64 = 120;

/// How the docker backend runs agents.
#[derive(Debug, Clone)]
pub struct DockerConfig {
    /// Where each workspace gets its directory on the host (`<root>/<id>/…`), bound into
    /// its container: the engine must run on this machine.
    pub root: PathBuf,
    /// The control plane's Unix socket on the host. Its directory is bound into each
    /// container, so it must hold nothing else of the control plane's.
    pub socket: PathBuf,
    /// The image of each runtime, who shares the host's network, the grace period.
    pub launch: AgentLaunch<Image>,
    /// This installation's id: containers carry it, and only its own are adopted.
    pub installation: String,
}

/// The [`Backend`] whose agents are containers (see the module's description).
#[derive(Debug)]
pub struct DockerBackend {
    docker: Docker,
    config: DockerConfig,
    /// `uid:gid` containers run as: the owner of the workspace root.
    user: String,
    /// The host directory of the control plane's socket, bound into every container.
    socket_dir: PathBuf,
    /// Where agents reach the control plane from inside their containers.
    agent_url: String,
    /// The containers it started or adopted, by the engine's id.
    tracked: TrackedAgents<String>,
    exits: mpsc::UnboundedSender<Exit>,
}

/// An engine error, sorted: a refused request (4xx other than a conflict) will be refused
/// again, anything else may pass next time.
fn engine_error(context: &str, error: &DockerError) -> BackendError {
    match error {
        DockerError::DockerResponseServerError {
            status_code,
            message,
        } if (400..500).contains(status_code) && *status_code != 409 => {
            BackendError::Permanent(format!("{context}: the engine refused: {message}"))
        }
        other => BackendError::Transient(format!("{context}: {other}")),
    }
}

fn not_found(error: &DockerError) -> bool {
    matches!(
        error,
        DockerError::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

/// Connect to the engine at `endpoint` (only Unix sockets: containers bind host paths, so
/// the engine must be on this machine), agreeing on an API version both speak.
pub async fn connect(endpoint: &str) -> Result<Docker, BackendError> {
    let Some(path) = endpoint
        .strip_prefix("unix://")
        .or_else(|| endpoint.strip_prefix("unix:"))
        .or_else(|| endpoint.starts_with('/').then_some(endpoint))
    else {
        return Err(BackendError::Permanent(format!(
            "the docker endpoint {endpoint:?} is not a Unix socket (unix:///path): containers bind this machine's directories, so the engine must run here"
        )));
    };
    let docker = Docker::connect_with_unix(path, ENGINE_TIMEOUT_SECS, bollard::API_DEFAULT_VERSION)
        .map_err(|e| BackendError::Permanent(format!("cannot reach the engine at {path}: {e}")))?
        .negotiate_version()
        .await
        .map_err(|e| BackendError::Transient(format!("cannot reach the engine at {path}: {e}")))?;
    docker.ping().await.map_err(|e| {
        BackendError::Transient(format!("the engine at {path} does not answer: {e}"))
    })?;
    Ok(docker)
}

/// The default agent image's tag for `program`: its version and a digest of its bytes, so
/// a rebuilt binary gets a new image and an unchanged one reuses it.
pub fn agent_image_tag(program: &Path) -> std::io::Result<String> {
    use sha2::Digest as _;
    use std::io::Read as _;
    let mut hasher = sha2::Sha256::new();
    let mut file = std::fs::File::open(program)?;
    let mut buffer = vec![0; 64 * 1024];
    loop {
        let read = file.read(&mut buffer)?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
    }
    let digest = hasher.finalize();
    let short: String = digest[..6].iter().map(|b| format!("{b:02x}")).collect();
    // Qualified with `localhost/`: Podman would qualify it so, and would not find the
    // short name again; Docker takes it as it is. Never pulled either way.
    Ok(format!(
        "localhost/hatchery-agent:{}-{short}",
        env!("CARGO_PKG_VERSION")
    ))
}

/// Make `tag` on the engine, unless it is there: an image whose whole filesystem is
/// `program` at `/usr/local/bin/hatchery` and the shared libraries it loads, running
/// `hatchery agent`. Its id (what containers are created from: Podman qualifies local
/// names as `localhost/…`, so the id is the one name both engines agree on), and whether
/// it was built now.
pub async fn build_agent_image(
    docker: &Docker,
    tag: &str,
    program: &Path,
) -> Result<(String, bool), BackendError> {
    let image = match docker.inspect_image(tag).await {
        Ok(image) => image,
        Err(e) if not_found(&e) => {
            let entrypoint = [IMAGE_PROGRAM.to_owned(), "agent".to_owned()];
            let files = [(program.to_owned(), IMAGE_PROGRAM.to_owned())];
            import_image(docker, tag, &files, &entrypoint).await?;
            let image = docker
                .inspect_image(tag)
                .await
                .map_err(|e| engine_error("looking for the agent image", &e))?;
            return image_id(image, tag).map(|id| (id, true));
        }
        Err(e) => return Err(engine_error("looking for the agent image", &e)),
    };
    image_id(image, tag).map(|id| (id, false))
}

fn image_id(image: bollard::models::ImageInspect, tag: &str) -> Result<String, BackendError> {
    image
        .id
        .ok_or_else(|| BackendError::Permanent(format!("the engine gave the image {tag} no id")))
}

/// Import an image from this machine's files (`docker import`, so nothing is pulled):
/// each `(host path, image path)` with the shared libraries it loads, the directories
/// containers mount things on, and `entrypoint`.
pub async fn import_image(
    docker: &Docker,
    tag: &str,
    files: &[(PathBuf, String)],
    entrypoint: &[String],
) -> Result<(), BackendError> {
    let files = files.to_vec();
    let rootfs = tokio::task::spawn_blocking(move || rootfs(&files))
        .await
        .map_err(|e| BackendError::Transient(format!("building the image {tag}: {e}")))?
        .map_err(|e| BackendError::Permanent(format!("building the image {tag}: {e}")))?;
    let entrypoint = serde_json::to_string(entrypoint)
        .map_err(|e| BackendError::Permanent(format!("building the image {tag}: {e}")))?;
    let options = CreateImageOptions {
        from_src: Some("-".to_owned()),
        // The whole reference as `repo`: both engines take a tag there, and Podman ignores
        // a separate `tag` on import.
        repo: Some(tag.to_owned()),
        changes: vec![
            format!("ENTRYPOINT {entrypoint}"),
            "WORKDIR /workspace".to_owned(),
            "ENV PATH=/usr/local/bin:/usr/bin:/bin".to_owned(),
        ],
        ..Default::default()
    };
    docker
        .create_image(Some(options), Some(bollard::body_full(rootfs.into())), None)
        .try_collect::<Vec<_>>()
        .await
        .map_err(|e| engine_error(&format!("importing the image {tag}"), &e))?;
    Ok(())
}

/// An image's filesystem as a tar archive: the files, what `ldd` says they load, and the
/// directories containers mount things on.
fn rootfs(files: &[(PathBuf, String)]) -> std::io::Result<Vec<u8>> {
    let mut archive = tar::Builder::new(Vec::new());
    archive.mode(tar::HeaderMode::Deterministic);
    // Engines refuse GNU sparse entries, which a binary with holes would become.
    archive.sparse(false);
    for dir in ["tmp", "workspace", "config", "run/hatchery", "run/a2a"] {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Directory);
        header.set_mode(if dir == "tmp" { 0o1777 } else { 0o755 });
        header.set_size(0);
        archive.append_data(&mut header, dir, std::io::empty())?;
    }
    let mut libraries = std::collections::BTreeSet::new();
    for (host, image) in files {
        archive.append_path_with_name(host, image.trim_start_matches('/'))?;
        libraries.extend(shared_libraries(host)?);
    }
    for library in libraries {
        // The file, not the symlink: the image has nothing else to point to.
        archive.append_path_with_name(&library, library.strip_prefix("/").unwrap_or(&library))?;
    }
    archive.into_inner()
}

/// The shared libraries (and loader) `program` needs, as `ldd` lists them; none for a
/// static program.
fn shared_libraries(program: &Path) -> std::io::Result<Vec<PathBuf>> {
    let output = std::process::Command::new("ldd").arg(program).output()?;
    let text = String::from_utf8_lossy(&output.stdout);
    Ok(text
        .lines()
        .filter_map(|line| {
            // `libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x…)` or
            // `/lib64/ld-linux-x86-64.so.2 (0x…)`; vdso has no file.
            let path = line.split_once("=>").map_or(line, |(_, after)| after);
            let path = path.split_whitespace().next()?;
            path.starts_with('/').then(|| PathBuf::from(path))
        })
        .collect())
}

impl DockerBackend {
    /// A backend on an engine already connected, and the stream of agents that exited on
    /// their own.
    pub fn new(
        docker: Docker,
        config: DockerConfig,
    ) -> Result<(Self, mpsc::UnboundedReceiver<Exit>), BackendError> {
        use std::os::unix::fs::MetadataExt as _;
        std::fs::create_dir_all(&config.root).map_err(|e| {
            BackendError::Permanent(format!("creating {}: {e}", config.root.display()))
        })?;
        let owner = std::fs::metadata(&config.root).map_err(|e| {
            BackendError::Permanent(format!("reading {}: {e}", config.root.display()))
        })?;
        // Containers see the socket's directory at CONTAINER_SOCKET_DIR.
        let (Some(socket_dir), Some(socket_name)) = (
            config.socket.parent(),
            config.socket.file_name().and_then(|n| n.to_str()),
        ) else {
            return Err(BackendError::Permanent(format!(
                "the control plane's socket {} is not a file in a directory",
                config.socket.display()
            )));
        };
        let (socket_dir, agent_url) = (
            socket_dir.to_owned(),
            format!("unix:{CONTAINER_SOCKET_DIR}/{socket_name}"),
        );
        let (exits, reports) = mpsc::unbounded_channel();
        Ok((
            Self {
                docker,
                socket_dir,
                agent_url,
                user: format!("{}:{}", owner.uid(), owner.gid()),
                config,
                tracked: TrackedAgents::default(),
                exits,
            },
            reports,
        ))
    }

    /// A workspace's container name: one per workspace and installation.
    fn container_name(&self, id: &str) -> String {
        let installation: String = self.config.installation.chars().take(12).collect();
        format!("hatchery-{installation}-{id}")
    }

    /// The container's definition for `spec`, its directory laid out at `dir`.
    fn container_body(
        &self,
        spec: &WorkspaceSpec,
        dir: &Path,
    ) -> Result<ContainerCreateBody, BackendError> {
        let image = self.config.launch.for_runtime(&spec.runtime).clone();
        let env = agent_env(spec, &self.agent_url, Some(AGENT_A2A_SOCKET))?
            .into_iter()
            .map(|(name, value)| format!("{name}={value}"))
            .collect();
        let bind = |source: &Path, target: &str, read_only: bool| Mount {
            source: Some(source.display().to_string()),
            target: Some(target.to_owned()),
            typ: Some(MountType::BIND),
            read_only: Some(read_only),
            ..Default::default()
        };
        let limits = spec.limits;
        let clamp = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        let labels = HashMap::from([
            (WORKSPACE_LABEL.to_owned(), spec.id.clone()),
            (
                INSTALLATION_LABEL.to_owned(),
                self.config.installation.clone(),
            ),
            (RUNTIME_LABEL.to_owned(), spec.runtime.clone()),
        ]);
        let network = if self.config.launch.allows_host_network(&spec.runtime) {
            "host"
        } else {
            "none"
        };
        Ok(ContainerCreateBody {
            image: Some(image),
            env: Some(env),
            labels: Some(labels),
            user: Some(self.user.clone()),
            working_dir: Some("/workspace".to_owned()),
            hostname: Some(spec.id.chars().take(63).collect()),
            stop_timeout: Some(clamp(self.config.launch.grace.as_secs())),
            host_config: Some(HostConfig {
                network_mode: Some(network.to_owned()),
                mounts: Some(vec![
                    bind(&dir.join("workspace"), "/workspace", false),
                    bind(&dir.join("config"), "/config", true),
                    bind(&self.socket_dir, CONTAINER_SOCKET_DIR, true),
                    bind(&dir.join("a2a"), AGENT_A2A_DIR, false),
                ]),
                readonly_rootfs: Some(true),
                tmpfs: Some(HashMap::from([(
                    "/tmp".to_owned(),
                    "rw,nosuid,nodev,size=64m".to_owned(),
                )])),
                cap_drop: Some(vec!["ALL".to_owned()]),
                security_opt: Some(vec!["no-new-privileges".to_owned()]),
                memory: Some(clamp(limits.memory_bytes)),
                nano_cpus: Some(clamp(limits.cpu_millis.saturating_mul(1_000_000))),
                pids_limit: Some(clamp(limits.processes)),
                ulimits: Some(vec![ResourcesUlimits {
                    name: Some("nofile".to_owned()),
                    soft: Some(clamp(limits.open_files)),
                    hard: Some(clamp(limits.open_files)),
                }]),
                // An init reaps the agent's orphans and forwards SIGTERM.
                init: Some(true),
                ..Default::default()
            }),
            ..Default::default()
        })
    }

    async fn start_container(&self, spec: &WorkspaceSpec) -> Result<(), BackendError> {
        let name = self.container_name(&spec.id);
        // One agent per workspace, holding this spec's credential: one left running (by a
        // start that crashed before its job closed) holds a revoked one, so it makes way.
        match self
            .docker
            .inspect_container(&name, None::<InspectContainerOptions>)
            .await
        {
            Ok(_) => self.remove(&spec.id).await?,
            Err(e) if not_found(&e) => {}
            Err(e) => return Err(engine_error("looking for the workspace's container", &e)),
        }
        let dir = lay_out(&self.config.root, spec)?;
        let body = self.container_body(spec, &dir)?;
        let created = self
            .docker
            .create_container(
                Some(CreateContainerOptions {
                    name: Some(name.clone()),
                    ..Default::default()
                }),
                body,
            )
            .await
            .map_err(|e| {
                if not_found(&e) {
                    BackendError::Permanent(format!(
                        "the image of runtime {:?} is not on the engine (hatchery never pulls; build or load it first): {e}",
                        spec.runtime
                    ))
                } else {
                    engine_error("creating the container", &e)
                }
            })?;
        if let Err(e) = self.docker.start_container(&name, None).await {
            let error = engine_error("starting the container", &e);
            let _ = self.remove(&spec.id).await;
            return Err(error);
        }
        // Watched once started: waiting on a container not started yet returns at once.
        self.adopt(&spec.id, created.id.clone());
        tracing::info!(workspace_id = %spec.id, container = %created.id, "container started");
        Ok(())
    }

    /// Track a container, and watch it: an exit we did not ask for is reported with its
    /// last log lines. Tracking one already tracked changes nothing.
    fn adopt(&self, id: &str, container_id: String) {
        let Some(stopping) = self.tracked.track(id, container_id.clone()) else {
            return;
        };
        let (docker, tracked, exits) = (
            self.docker.clone(),
            self.tracked.clone(),
            self.exits.clone(),
        );
        let id = id.to_owned();
        tokio::spawn(async move {
            let code = wait_for_exit(&docker, &container_id).await;
            tracked.release(&id, &container_id);
            // This container's own flag, not the workspace's entry: one stopped by us stays
            // no news even after the workspace has moved on to a newer container.
            if !stopping.is_set() {
                tracing::warn!(workspace_id = %id, ?code, "agent container exited");
                let last_lines = container_logs(&docker, &container_id, EXIT_LOG_LINES)
                    .await
                    .unwrap_or_default();
                let _ = exits.send(Exit {
                    id,
                    code,
                    last_lines,
                });
            }
        });
    }

    /// Stop and remove the workspace's container, if there is one.
    async fn remove(&self, id: &str) -> Result<(), BackendError> {
        self.tracked.mark_stopping(id);
        let name = self.container_name(id);
        let grace = i32::try_from(self.config.launch.grace.as_secs()).unwrap_or(i32::MAX);
        // SIGTERM, then SIGKILL after the grace period: the engine does both.
        match self
            .docker
            .stop_container(
                &name,
                Some(StopContainerOptions {
                    t: Some(grace),
                    signal: None,
                }),
            )
            .await
        {
            Err(e) if not_found(&e) => {
                self.tracked.forget(id);
                return Ok(());
            }
            // 304: it was not running.
            Ok(())
            | Err(DockerError::DockerResponseServerError {
                status_code: 304, ..
            }) => {}
            Err(e) => return Err(engine_error("stopping the container", &e)),
        }
        match self
            .docker
            .remove_container(
                &name,
                Some(RemoveContainerOptions {
                    force: true,
                    ..Default::default()
                }),
            )
            .await
        {
            // 404: gone already; 409: its removal is in progress.
            Ok(())
            | Err(DockerError::DockerResponseServerError {
                status_code: 404 | 409,
                ..
            }) => {}
            Err(e) => return Err(engine_error("removing the container", &e)),
        }
        self.tracked.forget(id);
        Ok(())
    }

    async fn containers(&self) -> Result<Vec<(String, String, bool)>, BackendError> {
        let filters = HashMap::from([(
            "label".to_owned(),
            vec![format!("{INSTALLATION_LABEL}={}", self.config.installation)],
        )]);
        let found = self
            .docker
            .list_containers(Some(ListContainersOptions {
                all: true,
                filters: Some(filters),
                ..Default::default()
            }))
            .await
            .map_err(|e| engine_error("listing containers", &e))?;
        Ok(found
            .into_iter()
            .filter_map(|c| {
                let id = c.labels?.get(WORKSPACE_LABEL)?.clone();
                let running = matches!(
                    c.state,
                    Some(bollard::models::ContainerSummaryStateEnum::RUNNING)
                );
                Some((id, c.id?, running))
            })
            .collect())
    }

    async fn adopt_running(&self) -> Result<Vec<String>, BackendError> {
        let mut running = Vec::new();
        for (id, container_id, is_running) in self.containers().await? {
            if is_running {
                self.adopt(&id, container_id);
                running.push(id);
            } else if !self.tracked.contains(&id) {
                // Exited while nobody watched: its workspace gets a new one if it should
                // run, so the old one only holds a name.
                let _ = self.remove(&id).await;
            }
        }
        Ok(running)
    }
}

/// Wait until the container exits: its exit code (`None` if the engine cannot say).
async fn wait_for_exit(docker: &Docker, container_id: &str) -> Option<i32> {
    let mut failures = 0;
    loop {
        let mut waiting = docker.wait_container(container_id, None::<WaitContainerOptions>);
        match waiting.next().await {
            Some(Ok(done)) => return i32::try_from(done.status_code).ok(),
            Some(Err(DockerError::DockerContainerWaitError { code, .. })) => {
                return i32::try_from(code).ok();
            }
            Some(Err(e)) if not_found(&e) => return None,
            // The engine hung up (a restart, a timeout): look again, patiently.
            _ => {
                let state = docker
                    .inspect_container(container_id, None::<InspectContainerOptions>)
                    .await;
                match state {
                    Ok(found) => {
                        let state = found.state.unwrap_or_default();
                        if state.status != Some(ContainerStateStatusEnum::RUNNING) {
                            return state.exit_code.and_then(|c| i32::try_from(c).ok());
                        }
                    }
                    Err(e) if not_found(&e) => return None,
                    Err(_) => {}
                }
                failures += 1;
                tokio::time::sleep(Duration::from_secs(1 << failures.min(5))).await;
            }
        }
    }
}

/// The container's last `lines` lines of output and errors, interleaved as written.
async fn container_logs(
    docker: &Docker,
    container: &str,
    lines: usize,
) -> Result<String, DockerError> {
    let options = LogsOptions {
        stdout: true,
        stderr: true,
        tail: lines.to_string(),
        ..Default::default()
    };
    let chunks: Vec<_> = docker.logs(container, Some(options)).try_collect().await?;
    let mut text = String::new();
    for chunk in &chunks {
        text.push_str(&String::from_utf8_lossy(chunk.as_ref()));
    }
    Ok(text.trim_end_matches('\n').to_owned())
}

impl Backend for DockerBackend {
    fn name(&self) -> &'static str {
        "docker"
    }

    fn start<'a>(&'a self, spec: &'a WorkspaceSpec) -> BoxFuture<'a, Result<(), BackendError>> {
        Box::pin(self.start_container(spec))
    }

    fn stop<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<(), BackendError>> {
        Box::pin(self.remove(id))
    }

    fn state<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<AgentState, BackendError>> {
        Box::pin(async move {
            let name = self.container_name(id);
            match self
                .docker
                .inspect_container(&name, None::<InspectContainerOptions>)
                .await
            {
                Ok(found) => {
                    let state = found.state.unwrap_or_default();
                    Ok(if state.running == Some(true) {
                        AgentState::Running(found.id.unwrap_or_default())
                    } else {
                        AgentState::Exited(state.exit_code.and_then(|c| i32::try_from(c).ok()))
                    })
                }
                Err(e) if not_found(&e) => Ok(AgentState::Absent),
                Err(e) => Err(engine_error("inspecting the container", &e)),
            }
        })
    }

    fn logs<'a>(
        &'a self,
        id: &'a str,
        lines: usize,
    ) -> BoxFuture<'a, Result<String, BackendError>> {
        Box::pin(async move {
            match container_logs(&self.docker, &self.container_name(id), lines).await {
                Ok(text) => Ok(text),
                Err(e) if not_found(&e) => Ok(String::new()),
                Err(e) => Err(engine_error("reading the container's logs", &e)),
            }
        })
    }

    fn follow(&self, id: &str) -> BoxStream<'static, Bytes> {
        let options = LogsOptions {
            follow: true,
            stdout: true,
            stderr: true,
            // From now on: what came before is what `logs` returned.
            tail: "0".to_owned(),
            ..Default::default()
        };
        let docker = self.docker.clone();
        let name = self.container_name(id);
        Box::pin(
            docker
                .logs(&name, Some(options))
                .take_while(|chunk| std::future::ready(chunk.is_ok()))
                .filter_map(|chunk| {
                    std::future::ready(chunk.ok().map(bollard::container::LogOutput::into_bytes))
                }),
        )
    }

    fn running(&self) -> BoxFuture<'_, Result<Vec<String>, BackendError>> {
        Box::pin(self.adopt_running())
    }

    fn agents_outlive_control_plane(&self) -> bool {
        true
    }

    fn a2a_endpoint(&self, id: &str) -> Option<AgentEndpoint> {
        // Tracked: started or adopted, and not yet seen to exit or being stopped.
        self.tracked
            .is_live(id)
            .then(|| AgentEndpoint::Unix(a2a_socket_on_host(&self.config.root, id)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ldd_output_names_the_library_files() {
        let libraries = shared_libraries(Path::new("/bin/sh")).unwrap();
        assert!(
            libraries.iter().any(|l| l.ends_with("libc.so.6")),
            "{libraries:?}"
        );
        assert!(libraries.iter().all(|l| l.is_absolute()), "{libraries:?}");
    }

    #[test]
    fn the_image_tag_follows_the_program_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::write(&a, "one").unwrap();
        std::fs::write(&b, "two").unwrap();
        let (tag_a, tag_b) = (agent_image_tag(&a).unwrap(), agent_image_tag(&b).unwrap());
        assert_ne!(tag_a, tag_b);
        assert_eq!(tag_a, agent_image_tag(&a).unwrap());
        assert!(tag_a.starts_with("localhost/hatchery-agent:"), "{tag_a}");
    }

    /// A backend on an engine it never calls (a socket nobody answers on, which bollard
    /// wants to exist): what it would ask of one.
    fn offline_backend(root: &Path) -> (DockerBackend, std::os::unix::net::UnixListener) {
        let engine = root.join("docker.sock");
        let listener = std::os::unix::net::UnixListener::bind(&engine).unwrap();
        let docker = Docker::connect_with_unix(
            &engine.display().to_string(),
            1,
            bollard::API_DEFAULT_VERSION,
        )
        .unwrap();
        let config = DockerConfig {
            root: root.join("workspaces"),
            socket: root.join("run/hatchery.sock"),
            launch: AgentLaunch::new("agent:1".to_owned()),
            installation: "install".into(),
        };
        (DockerBackend::new(docker, config).unwrap().0, listener)
    }

    #[test]
    fn the_container_gets_the_agents_socket_directory_writable_and_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let (backend, _engine) = offline_backend(dir.path());
        let spec = WorkspaceSpec {
            id: "w".into(),
            runtime: "r".into(),
            files: Vec::new(),
            env: Vec::new(),
            bootstrap_token: "boot".into(),
            heartbeat_interval: Duration::from_secs(20),
            limits: crate::Limits::default(),
        };
        let laid_out = lay_out(&dir.path().join("workspaces"), &spec).unwrap();
        let body = backend.container_body(&spec, &laid_out).unwrap();
        let mounts = body.host_config.unwrap().mounts.unwrap();
        let a2a = mounts
            .iter()
            .find(|m| m.target.as_deref() == Some("/run/a2a"))
            .unwrap_or_else(|| panic!("/run/a2a not mounted: {mounts:?}"));
        assert_eq!(
            a2a.source.as_deref(),
            Some(laid_out.join("a2a").display().to_string().as_str())
        );
        assert_eq!(a2a.read_only, Some(false));
        let env = body.env.unwrap();
        assert!(
            env.iter()
                .any(|e| e == "HATCHERY_AGENT_SOCKET=/run/a2a/agent.sock"),
            "{env:?}"
        );
    }

    #[test]
    fn the_a2a_endpoint_is_known_only_while_the_container_is_tracked() {
        let dir = tempfile::tempdir().unwrap();
        let (backend, _engine) = offline_backend(dir.path());
        assert_eq!(backend.a2a_endpoint("w"), None);
        backend.tracked.track("w", "container-1".to_owned());
        assert_eq!(
            backend.a2a_endpoint("w"),
            Some(AgentEndpoint::Unix(
                dir.path().join("workspaces/w/a2a/agent.sock")
            ))
        );
        backend.tracked.mark_stopping("w");
        assert_eq!(backend.a2a_endpoint("w"), None, "being stopped");
        backend.tracked.forget("w");
        assert_eq!(backend.a2a_endpoint("w"), None);
    }

    #[test]
    fn an_engine_that_is_not_a_local_socket_is_refused() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let error = runtime
            .block_on(connect("tcp://10.0.0.1:2375"))
            .unwrap_err();
        assert!(
            matches!(&error, BackendError::Permanent(m) if m.contains("not a Unix socket")),
            "{error}"
        );
    }
}
