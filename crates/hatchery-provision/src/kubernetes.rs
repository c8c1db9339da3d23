//! The `kubernetes` backend: each workspace's agent is a Pod, with a Secret beside it that
//! holds its environment and config files, driven through the Kubernetes API (`kube`).
//!
//! A Pod: named after its workspace, labelled with it and with the installation that owns
//! it, `restartPolicy: Never` (a crash is reported, not hidden by restarts), no service
//! account token, non-root, read-only root, every capability dropped, no privilege
//! escalation, the runtime-default seccomp profile, memory and CPU limits, an `emptyDir`
//! at `/workspace` and `/tmp`, its config read-only at `/config`. The Secret carries an
//! owner reference to the Pod, so deleting the Pod collects it.
//!
//! Pods have the cluster's network: agents reach the control plane over it, at the URL
//! the operator gives (`agent_url`, e.g. its Service), and the control plane reaches each
//! agent at its pod's address (`status.podIP`, port 8000), which the watch keeps. An agent
//! registers the sandbox URL ([`SANDBOX_URL_PREFIX`]`<id>`), not that address: a pod's
//! address is private (registration refuses it) and means nothing to peers, which discovery
//! sends through the control plane's proxy. Keeping pods off everything else is a
//! `NetworkPolicy`'s job (see the README). Pods outlive the control plane: a restart adopts
//! the live ones. A watch on the installation's pods turns a pod that ends on its own into
//! an [`Exit`] with its exit code and last log lines.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use futures_util::{AsyncBufReadExt as _, StreamExt as _};
use hatchery_api::a2a::SANDBOX_URL_PREFIX;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{
    Capabilities, Container, EmptyDirVolumeSource, EnvVar, EnvVarSource, KeyToPath, Pod,
    PodSecurityContext, PodSpec, ResourceRequirements, SeccompProfile, Secret, SecretKeySelector,
    SecretVolumeSource, SecurityContext, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{Api, DeleteParams, ListParams, LogParams, PostParams};
use kube::runtime::{WatchStreamExt as _, watcher};
use tokio::sync::mpsc;

use crate::files::{EXIT_LOG_LINES, agent_env, safe_relative};
use crate::launch::{AgentLaunch, Image};
use crate::tracked::TrackedAgents;
use crate::{AgentEndpoint, AgentState, Backend, BackendError, Exit, WorkspaceSpec};

/// The label naming the workspace a pod runs.
pub const WORKSPACE_LABEL: &str = "hatchery.dev/workspace";
/// The label naming the installation (control plane database) that owns a pod.
pub const INSTALLATION_LABEL: &str = "hatchery.dev/installation";
/// The annotation naming the runtime (runtimes need not be valid label values).
const RUNTIME_ANNOTATION: &str = "hatchery.dev/runtime";
/// Secret keys of environment variables: `env.<NAME>`.
const ENV_KEY_PREFIX: &str = "env.";
/// Secret keys of config files: `file.<N>`.
const FILE_KEY_PREFIX: &str = "file.";
/// The port agents serve A2A on.
const AGENT_PORT: u16 = 8000;
/// The user agents run as: nobody.
const AGENT_UID: i64 = 65534;
/// How long a deleted pod may take to go before a stop gives up waiting.
const GONE_PATIENCE: Duration = Duration::from_secs(10);

/// How the kubernetes backend runs agents.
#[derive(Debug, Clone)]
pub struct KubernetesConfig {
    /// The namespace pods and secrets go in.
    pub namespace: String,
    /// Where agents reach the control plane, from inside the cluster
    /// (`http://hatchery.hatchery.svc:8080`).
    pub agent_url: String,
    /// The image of each runtime, whose pods get the node's network (`hostNetwork`), the
    /// grace period.
    pub launch: AgentLaunch<Image>,
    /// This installation's id: pods carry it, and only its own are adopted.
    pub installation: String,
}

/// The [`Backend`] whose agents are Pods (see the module's description).
pub struct KubernetesBackend {
    pods: Api<Pod>,
    secrets: Api<Secret>,
    config: KubernetesConfig,
    /// The pods it started or adopted, by uid.
    tracked: TrackedAgents<String>,
    exits: mpsc::UnboundedSender<Exit>,
}

impl std::fmt::Debug for KubernetesBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubernetesBackend")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// A client of the cluster, and the namespace: through `api` when given (an
/// unauthenticated URL, such as `kubectl proxy`'s `http://127.0.0.1:8001`), else as
/// `kubectl` would (`$KUBECONFIG`, `~/.kube/config`, or the in-cluster service account);
/// in `namespace`, else the configuration's default. Checked now, not at the first
/// create: pods can be listed there.
pub async fn connect(
    api: Option<&str>,
    namespace: Option<&str>,
) -> Result<(kube::Client, String), BackendError> {
    let config = match api {
        Some(url) => {
            let uri = url.parse().map_err(|e| {
                BackendError::Permanent(format!("the Kubernetes API URL {url:?} is not a URL: {e}"))
            })?;
            kube::Config::new(uri)
        }
        None => kube::Config::infer().await.map_err(|e| {
            BackendError::Permanent(format!(
                "no Kubernetes configuration found (KUBECONFIG, ~/.kube/config or in-cluster): {e}"
            ))
        })?,
    };
    let namespace = namespace.map_or_else(|| config.default_namespace.clone(), str::to_owned);
    let client = kube::Client::try_from(config)
        .map_err(|e| BackendError::Permanent(format!("cannot make a Kubernetes client: {e}")))?;
    Api::<Pod>::namespaced(client.clone(), &namespace)
        .list(&ListParams::default().limit(1))
        .await
        .map_err(|e| api_error(&format!("listing pods in namespace {namespace:?}"), &e))?;
    Ok((client, namespace))
}

/// An API error, sorted: a refused request (4xx other than a conflict or throttling) will
/// be refused again; anything else may pass next time.
fn api_error(context: &str, error: &kube::Error) -> BackendError {
    match error {
        // A namespace at its quota has room again once a workspace goes.
        kube::Error::Api(status)
            if status.code == 403 && status.message.contains("exceeded quota") =>
        {
            BackendError::Transient(format!("{context}: {}", status.message))
        }
        kube::Error::Api(status)
            if (400..500).contains(&status.code) && ![409, 429].contains(&status.code) =>
        {
            BackendError::Permanent(format!(
                "{context}: the cluster refused: {}",
                status.message
            ))
        }
        other => BackendError::Transient(format!("{context}: {other}")),
    }
}

fn not_found(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if status.is_not_found())
}

/// A pod's phase and, once it ended, its agent's exit code.
fn pod_state(pod: &Pod) -> AgentState {
    let status = pod.status.as_ref();
    match status.and_then(|s| s.phase.as_deref()) {
        Some("Succeeded" | "Failed") => AgentState::Exited(
            status
                .and_then(|s| s.container_statuses.as_ref())
                .and_then(|c| c.first())
                .and_then(|c| c.state.as_ref()?.terminated.as_ref())
                .map(|t| t.exit_code),
        ),
        _ => AgentState::Running(pod.metadata.uid.clone().unwrap_or_default()),
    }
}

/// The workspace a pod runs, by its label.
fn workspace_of(pod: &Pod) -> Option<String> {
    pod.metadata.labels.as_ref()?.get(WORKSPACE_LABEL).cloned()
}

/// The pod's address, once the cluster gave it one.
fn pod_ip(pod: &Pod) -> Option<IpAddr> {
    pod.status.as_ref()?.pod_ip.as_deref()?.parse().ok()
}

/// Waiting reasons of a container that will not start without someone changing something
/// (an image that cannot be pulled, a configuration the kubelet refuses).
const CANNOT_START: &[&str] = &[
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "CreateContainerConfigError",
    "CreateContainerError",
];

/// Why a pending pod's container cannot start, if it cannot.
fn cannot_start(pod: &Pod) -> Option<String> {
    let statuses = pod.status.as_ref()?.container_statuses.as_ref()?;
    statuses.iter().find_map(|status| {
        let waiting = status.state.as_ref()?.waiting.as_ref()?;
        let reason = waiting.reason.as_deref()?;
        CANNOT_START.contains(&reason).then(|| {
            format!(
                "its pod cannot start: {reason}: {}",
                waiting.message.as_deref().unwrap_or("(no message)")
            )
        })
    })
}

impl KubernetesBackend {
    /// A backend on `client`, and the stream of agents that ended on their own. Starts the
    /// watch on the installation's pods (so it needs a Tokio runtime).
    #[must_use]
    pub fn new(
        client: kube::Client,
        config: KubernetesConfig,
    ) -> (Self, mpsc::UnboundedReceiver<Exit>) {
        let (exits, reports) = mpsc::unbounded_channel();
        let backend = Self {
            pods: Api::namespaced(client.clone(), &config.namespace),
            secrets: Api::namespaced(client, &config.namespace),
            config,
            tracked: TrackedAgents::default(),
            exits,
        };
        backend.watch_pods();
        (backend, reports)
    }

    /// A workspace's pod (and secret) name.
    fn object_name(id: &str) -> String {
        format!("hatchery-{id}")
    }

    fn labels(&self, id: &str) -> BTreeMap<String, String> {
        BTreeMap::from([
            (WORKSPACE_LABEL.to_owned(), id.to_owned()),
            (
                INSTALLATION_LABEL.to_owned(),
                self.config.installation.clone(),
            ),
            (
                "app.kubernetes.io/managed-by".to_owned(),
                "hatchery".to_owned(),
            ),
        ])
    }

    /// The pod's one container: the runtime's image, its environment from the secret,
    /// locked down, limited.
    fn agent_container(
        &self,
        spec: &WorkspaceSpec,
        secret: &str,
        env_names: &[String],
    ) -> Container {
        let image = self.config.launch.for_runtime(&spec.runtime).clone();
        let limits = spec.limits;
        let resources = BTreeMap::from([
            (
                "memory".to_owned(),
                Quantity(limits.memory_bytes.to_string()),
            ),
            (
                "cpu".to_owned(),
                Quantity(format!("{}m", limits.cpu_millis)),
            ),
        ]);
        let mount = |name: &str, path: &str, read_only: bool| VolumeMount {
            name: name.to_owned(),
            mount_path: path.to_owned(),
            read_only: Some(read_only),
            ..Default::default()
        };
        Container {
            name: "agent".to_owned(),
            image: Some(image),
            // Each variable from the secret, by key: the workspace's secrets and hatchery's
            // own; then where it serves A2A (every address of the pod, where the control
            // plane reaches it) and what it registers (the sandbox URL: the pod's address
            // is private, and peers go through the control plane).
            env: Some(
                env_names
                    .iter()
                    .map(|name| EnvVar {
                        name: name.clone(),
                        value_from: Some(EnvVarSource {
                            secret_key_ref: Some(SecretKeySelector {
                                name: secret.to_owned(),
                                key: format!("{ENV_KEY_PREFIX}{name}"),
                                optional: Some(false),
                            }),
                            ..Default::default()
                        }),
                        ..Default::default()
                    })
                    .chain([
                        EnvVar {
                            name: "HATCHERY_AGENT_LISTEN".to_owned(),
                            value: Some(format!("0.0.0.0:{AGENT_PORT}")),
                            ..Default::default()
                        },
                        EnvVar {
                            name: "HATCHERY_AGENT_URL".to_owned(),
                            value: Some(format!("{SANDBOX_URL_PREFIX}{}", spec.id)),
                            ..Default::default()
                        },
                    ])
                    .collect(),
            ),
            working_dir: Some("/workspace".to_owned()),
            resources: Some(ResourceRequirements {
                limits: Some(resources.clone()),
                requests: Some(resources),
                ..Default::default()
            }),
            security_context: Some(SecurityContext {
                allow_privilege_escalation: Some(false),
                read_only_root_filesystem: Some(true),
                run_as_non_root: Some(true),
                capabilities: Some(Capabilities {
                    drop: Some(vec!["ALL".to_owned()]),
                    add: None,
                }),
                ..Default::default()
            }),
            volume_mounts: Some(vec![
                mount("workspace", "/workspace", false),
                mount("config", "/config", true),
                mount("tmp", "/tmp", false),
            ]),
            ..Default::default()
        }
    }

    /// The pod for `spec`: everything but its secret's contents.
    pub fn render_pod(
        &self,
        spec: &WorkspaceSpec,
        env_names: &[String],
    ) -> Result<Pod, BackendError> {
        let name = Self::object_name(&spec.id);
        let config_files = spec
            .files
            .iter()
            .enumerate()
            .map(|(index, (path, _))| {
                Ok(KeyToPath {
                    key: format!("{FILE_KEY_PREFIX}{index}"),
                    path: safe_relative(path)?.display().to_string(),
                    mode: None,
                })
            })
            .collect::<Result<Vec<_>, BackendError>>()?;
        let empty_dir = |name: &str, memory: bool| Volume {
            name: name.to_owned(),
            empty_dir: Some(EmptyDirVolumeSource {
                medium: memory.then(|| "Memory".to_owned()),
                size_limit: memory.then(|| Quantity("64Mi".to_owned())),
            }),
            ..Default::default()
        };
        let container = self.agent_container(spec, &name, env_names);
        Ok(Pod {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(self.config.namespace.clone()),
                labels: Some(self.labels(&spec.id)),
                annotations: Some(BTreeMap::from([(
                    RUNTIME_ANNOTATION.to_owned(),
                    spec.runtime.clone(),
                )])),
                ..Default::default()
            },
            spec: Some(PodSpec {
                containers: vec![container],
                restart_policy: Some("Never".to_owned()),
                automount_service_account_token: Some(false),
                enable_service_links: Some(false),
                host_network: Some(self.config.launch.allows_host_network(&spec.runtime)),
                termination_grace_period_seconds: Some(
                    i64::try_from(self.config.launch.grace.as_secs()).unwrap_or(i64::MAX),
                ),
                security_context: Some(PodSecurityContext {
                    run_as_non_root: Some(true),
                    run_as_user: Some(AGENT_UID),
                    run_as_group: Some(AGENT_UID),
                    fs_group: Some(AGENT_UID),
                    seccomp_profile: Some(SeccompProfile {
                        type_: "RuntimeDefault".to_owned(),
                        localhost_profile: None,
                    }),
                    ..Default::default()
                }),
                volumes: Some(vec![
                    empty_dir("workspace", false),
                    empty_dir("tmp", true),
                    Volume {
                        name: "config".to_owned(),
                        secret: Some(SecretVolumeSource {
                            secret_name: Some(name),
                            items: Some(config_files),
                            default_mode: Some(0o444),
                            optional: Some(false),
                        }),
                        ..Default::default()
                    },
                ]),
                ..Default::default()
            }),
            status: None,
        })
    }

    /// The agent's environment, checked: every name must be storable as a secret key.
    pub fn agent_env(&self, spec: &WorkspaceSpec) -> Result<Vec<(String, String)>, BackendError> {
        // No agent socket: a pod is reached at its own address, not through one.
        let env = agent_env(spec, &self.config.agent_url, None)?;
        if let Some((bad, _)) = env.iter().find(|(name, _)| !valid_secret_key(name)) {
            return Err(BackendError::Permanent(format!(
                "environment variable {bad:?} cannot go in a Kubernetes secret (letters, digits, '-', '_' and '.' only)"
            )));
        }
        Ok(env)
    }

    /// The secret for `spec`, owned by `pod`: its environment (`env.<NAME>`: secrets, the
    /// bootstrap token, hatchery's variables) and its config files (`file.<N>`, mapped
    /// to their paths by the pod's volume).
    pub fn render_secret(
        &self,
        spec: &WorkspaceSpec,
        env: Vec<(String, String)>,
        pod: &Pod,
    ) -> Result<Secret, BackendError> {
        let mut data: BTreeMap<String, ByteString> = env
            .into_iter()
            .map(|(name, value)| {
                (
                    format!("{ENV_KEY_PREFIX}{name}"),
                    ByteString(value.into_bytes()),
                )
            })
            .collect();
        for (index, (_, content)) in spec.files.iter().enumerate() {
            data.insert(
                format!("{FILE_KEY_PREFIX}{index}"),
                ByteString(content.clone().into_bytes()),
            );
        }
        let owner = OwnerReference {
            api_version: "v1".to_owned(),
            kind: "Pod".to_owned(),
            name: pod.metadata.name.clone().unwrap_or_default(),
            uid: pod.metadata.uid.clone().ok_or_else(|| {
                BackendError::Transient("the cluster gave the pod no uid".to_owned())
            })?,
            controller: Some(true),
            block_owner_deletion: None,
        };
        Ok(Secret {
            metadata: ObjectMeta {
                name: pod.metadata.name.clone(),
                namespace: Some(self.config.namespace.clone()),
                labels: Some(self.labels(&spec.id)),
                owner_references: Some(vec![owner]),
                ..Default::default()
            },
            data: Some(data),
            type_: Some("Opaque".to_owned()),
            immutable: Some(true),
            ..Default::default()
        })
    }

    async fn start_pod(&self, spec: &WorkspaceSpec) -> Result<(), BackendError> {
        let name = Self::object_name(&spec.id);
        // One agent per workspace, holding this spec's credential: one left running (by a
        // start that crashed before its job closed) holds a revoked one, so it makes way.
        match self.pods.get_opt(&name).await {
            Ok(Some(_)) => self.remove(&spec.id).await?,
            Ok(None) => {}
            Err(e) => return Err(api_error("looking for the workspace's pod", &e)),
        }
        // Everything that can be refused is checked before anything is created.
        let env = self.agent_env(spec)?;
        let env_names: Vec<String> = env.iter().map(|(name, _)| name.clone()).collect();
        let pod = self.render_pod(spec, &env_names)?;
        let created = self
            .pods
            .create(&PostParams::default(), &pod)
            .await
            .map_err(|e| api_error("creating the pod", &e))?;
        let uid = created.metadata.uid.clone().unwrap_or_default();
        // No address yet: the watch sees the one the cluster gives it.
        self.adopt(&spec.id, uid, None);
        // From here on a failure removes the pod: none is left waiting for its secret.
        let secret = match self.render_secret(spec, env, &created) {
            Ok(secret) => secret,
            Err(error) => {
                let _ = self.remove(&spec.id).await;
                return Err(error);
            }
        };
        if let Err(e) = self.secrets.create(&PostParams::default(), &secret).await {
            let error = api_error("creating the pod's secret", &e);
            let _ = self.remove(&spec.id).await;
            return Err(error);
        }
        tracing::info!(workspace_id = %spec.id, pod = %name, "pod created");
        Ok(())
    }

    /// Track a pod (by uid), with its address when it has one; the watch reports its end
    /// unless we stop it.
    fn adopt(&self, id: &str, uid: String, address: Option<IpAddr>) {
        // The watch reads the stop flag off the tracker when it sees the pod end.
        self.tracked.track_at(id, uid, address);
    }

    /// Delete the workspace's pod and secret, and wait (bounded) until the pod is gone.
    async fn remove(&self, id: &str) -> Result<(), BackendError> {
        self.tracked.mark_stopping(id);
        let name = Self::object_name(id);
        let grace = u32::try_from(self.config.launch.grace.as_secs()).unwrap_or(u32::MAX);
        let params = DeleteParams {
            grace_period_seconds: Some(grace),
            ..DeleteParams::background()
        };
        match self.pods.delete(&name, &params).await {
            Ok(_) => {}
            Err(e) if not_found(&e) => {}
            Err(e) => return Err(api_error("deleting the pod", &e)),
        }
        // The owner reference collects it too; deleting it here does not wait on that.
        match self.secrets.delete(&name, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(e) if not_found(&e) => {}
            Err(e) => return Err(api_error("deleting the pod's secret", &e)),
        }
        let deadline = tokio::time::Instant::now() + self.config.launch.grace + GONE_PATIENCE;
        loop {
            match self.pods.get_opt(&name).await {
                Ok(None) => break,
                Ok(Some(_)) if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Ok(Some(_)) => {
                    return Err(BackendError::Transient(format!(
                        "the pod {name} is still terminating"
                    )));
                }
                Err(e) => return Err(api_error("waiting for the pod to go", &e)),
            }
        }
        self.tracked.forget(id);
        Ok(())
    }

    /// Watch the installation's pods: one that ends while tracked and not being stopped is
    /// reported, with its exit code and last log lines; a tracked one's address is kept
    /// as soon as its status has one.
    fn watch_pods(&self) {
        let selector = format!("{INSTALLATION_LABEL}={}", self.config.installation);
        let events = watcher(
            self.pods.clone(),
            watcher::Config::default().labels(&selector),
        )
        .default_backoff();
        let (pods, tracked, exits) = (self.pods.clone(), self.tracked.clone(), self.exits.clone());
        tokio::spawn(async move {
            let mut events = std::pin::pin!(events);
            while let Some(event) = events.next().await {
                let (pod, deleted) = match event {
                    Ok(watcher::Event::Apply(pod) | watcher::Event::InitApply(pod)) => (pod, false),
                    Ok(watcher::Event::Delete(pod)) => (pod, true),
                    Ok(watcher::Event::Init | watcher::Event::InitDone) => continue,
                    Err(error) => {
                        tracing::warn!(%error, "watching pods failed; retrying");
                        continue;
                    }
                };
                let Some(id) = workspace_of(&pod) else {
                    continue;
                };
                let uid = pod.metadata.uid.clone().unwrap_or_default();
                // Why it will not run: ended, deleted by someone else, or unable to start.
                let (code, why) = match (pod_state(&pod), deleted, cannot_start(&pod)) {
                    (AgentState::Exited(code), _, _) => (code, None),
                    (_, true, _) => (None, Some("its pod was deleted".to_owned())),
                    (_, false, Some(reason)) => (None, Some(reason)),
                    _ => {
                        // Starting or running: where its agent takes A2A messages.
                        if let Some(address) = pod_ip(&pod) {
                            tracked.set_address(&id, &uid, address);
                        }
                        continue;
                    }
                };
                // Only the pod tracked now, and not one we are stopping.
                let ended_on_its_own = tracked
                    .release(&id, &uid)
                    .is_some_and(|stopping| !stopping.is_set());
                if ended_on_its_own {
                    tracing::warn!(workspace_id = %id, ?code, ?why, "agent pod ended");
                    let last_lines = match why {
                        Some(why) => why,
                        None => {
                            pod_logs(&pods, &KubernetesBackend::object_name(&id), EXIT_LOG_LINES)
                                .await
                                .unwrap_or_default()
                        }
                    };
                    let _ = exits.send(Exit {
                        id,
                        code,
                        last_lines,
                    });
                }
            }
        });
    }

    async fn adopt_running(&self) -> Result<Vec<String>, BackendError> {
        let selector = format!("{INSTALLATION_LABEL}={}", self.config.installation);
        let found = self
            .pods
            .list(&ListParams::default().labels(&selector))
            .await
            .map_err(|e| api_error("listing pods", &e))?;
        let mut running = Vec::new();
        for pod in found.items {
            let Some(id) = workspace_of(&pod) else {
                continue;
            };
            let live = matches!(pod_state(&pod), AgentState::Running(_))
                && pod.metadata.deletion_timestamp.is_none();
            if live {
                let address = pod_ip(&pod);
                self.adopt(&id, pod.metadata.uid.unwrap_or_default(), address);
                running.push(id);
            } else if !self.tracked.contains(&id) {
                // Ended while nobody watched: its workspace gets a new one if it should run.
                let _ = self.remove(&id).await;
            }
        }
        Ok(running)
    }
}

/// Secret keys are `[-._a-zA-Z0-9]+`; an environment variable that is not one cannot go
/// through the secret (and is not a portable variable name anyway).
fn valid_secret_key(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
}

/// The pod's last `lines` lines of output.
async fn pod_logs(pods: &Api<Pod>, name: &str, lines: usize) -> Result<String, kube::Error> {
    let params = LogParams {
        tail_lines: Some(i64::try_from(lines).unwrap_or(i64::MAX)),
        ..Default::default()
    };
    Ok(pods
        .logs(name, &params)
        .await?
        .trim_end_matches('\n')
        .to_owned())
}

impl Backend for KubernetesBackend {
    fn name(&self) -> &'static str {
        "kubernetes"
    }

    fn start<'a>(&'a self, spec: &'a WorkspaceSpec) -> BoxFuture<'a, Result<(), BackendError>> {
        Box::pin(self.start_pod(spec))
    }

    fn stop<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<(), BackendError>> {
        Box::pin(self.remove(id))
    }

    fn state<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<AgentState, BackendError>> {
        Box::pin(async move {
            match self.pods.get_opt(&Self::object_name(id)).await {
                Ok(Some(pod)) => Ok(pod_state(&pod)),
                Ok(None) => Ok(AgentState::Absent),
                Err(e) => Err(api_error("reading the pod", &e)),
            }
        })
    }

    fn logs<'a>(
        &'a self,
        id: &'a str,
        lines: usize,
    ) -> BoxFuture<'a, Result<String, BackendError>> {
        Box::pin(async move {
            match pod_logs(&self.pods, &Self::object_name(id), lines).await {
                Ok(text) => Ok(text),
                // Gone, or not started yet (400 while its container is being created).
                Err(kube::Error::Api(status)) if status.is_not_found() || status.code == 400 => {
                    Ok(String::new())
                }
                Err(e) => Err(api_error("reading the pod's logs", &e)),
            }
        })
    }

    fn follow(&self, id: &str) -> BoxStream<'static, Bytes> {
        let pods = self.pods.clone();
        let name = Self::object_name(id);
        let params = LogParams {
            follow: true,
            tail_lines: Some(0),
            ..Default::default()
        };
        Box::pin(
            futures_util::stream::once(async move { pods.log_stream(&name, &params).await })
                .filter_map(|opened| std::future::ready(opened.ok()))
                .flat_map(|reader| {
                    reader
                        .lines()
                        .take_while(|line| std::future::ready(line.is_ok()))
                        .filter_map(|line| {
                            std::future::ready(line.ok().map(|mut l| {
                                l.push('\n');
                                Bytes::from(l)
                            }))
                        })
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
        // Tracked, not being stopped, and given an address by the cluster.
        self.tracked.address(id).map(|address| {
            AgentEndpoint::Url(format!("http://{}/", SocketAddr::new(address, AGENT_PORT)))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_keys_are_what_the_api_accepts() {
        assert!(valid_secret_key("ANTHROPIC_API_KEY"));
        assert!(valid_secret_key("file-0"));
        for bad in ["", "A B", "a/b", "é"] {
            assert!(!valid_secret_key(bad), "{bad}");
        }
    }
}
