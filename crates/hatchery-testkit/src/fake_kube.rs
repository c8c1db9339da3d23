//! A fake Kubernetes cluster for the kubernetes backend's tests: the API server's wire
//! protocol for the core/v1 pods and secrets of a namespace (create, get, delete, list
//! with label selectors, watch from a resource version, pod logs with tail and follow),
//! and a kubelet that runs each pod's container as a real local process.
//!
//! The kubelet maps images to commands (there is no image registry here), waits for the
//! secrets a pod refers to, gives the process the environment Kubernetes would (secret
//! keys, `$(VAR)` expansion, the downward API's pod IP, which is loopback here),
//! writes the secret volume's items as files, and reports the pod's phase: `Pending`,
//! `Running`, then `Succeeded` or `Failed` with the exit code. Deleting a pod SIGTERMs its
//! process, SIGKILLs it after the grace period, then removes the pod and, like the garbage
//! collector, the secrets it owns.
//!
//! What the API server refuses, as a real one would: objects of the wrong kind or API
//! version, names that are not DNS subdomains, label values that are not valid, secret
//! keys that are not valid, containers without a name or image, and duplicates (409).

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine as _;
use serde_json::{Value, json};
use tokio::sync::broadcast;

/// One change, as a watch reports it.
#[derive(Debug, Clone)]
struct Change {
    version: u64,
    kind: String,
    namespace: String,
    event_type: &'static str,
    object: Value,
}

#[derive(Debug, Default)]
struct Objects {
    version: u64,
    /// `(kind, namespace, name)` → object; kind is `pods` or `secrets`.
    items: BTreeMap<(String, String, String), Value>,
    /// Every change so far (for watches that start from an older version).
    history: Vec<Change>,
    /// Pods being deleted → their kubelet's stop signal.
    stops: HashMap<String, tokio::sync::oneshot::Sender<()>>,
    /// Every request, as `METHOD path`.
    requests: Vec<String>,
}

#[derive(Clone)]
struct Cluster {
    objects: Arc<Mutex<Objects>>,
    changes: broadcast::Sender<Change>,
    images: Arc<HashMap<String, Vec<String>>>,
    node_dir: PathBuf,
}

/// A running fake cluster.
pub struct FakeCluster {
    /// The API server's URL (plain HTTP, no authentication, like `kubectl proxy`).
    pub url: String,
    cluster: Cluster,
    _node: tempfile::TempDir,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for FakeCluster {
    fn drop(&mut self) {
        self.server.abort();
        // Pods die with the node.
        let stops: Vec<_> = self.cluster.lock().stops.drain().collect();
        drop(stops);
    }
}

fn status(code: u16, reason: &str, message: &str) -> Response {
    let body = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason, "code": code,
    });
    let code = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (code, axum::Json(body)).into_response()
}

fn invalid(message: &str) -> Response {
    status(422, "Invalid", message)
}

/// A DNS subdomain (RFC 1123), as object names must be.
fn dns_subdomain(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric())
}

/// A label value: at most 63 characters, alphanumerics with `-_.` inside.
fn label_value(value: &str) -> bool {
    value.is_empty()
        || (value.len() <= 63
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
            && value.starts_with(|c: char| c.is_ascii_alphanumeric())
            && value.ends_with(|c: char| c.is_ascii_alphanumeric()))
}

/// What a real API server would refuse in `object` (of `kind`), if anything.
fn validate(kind: &str, object: &Value) -> Result<(), String> {
    let expected = if kind == "pods" { "Pod" } else { "Secret" };
    if object["apiVersion"] != "v1" || object["kind"] != expected {
        return Err(format!(
            "expected apiVersion v1 and kind {expected}, got {} {}",
            object["apiVersion"], object["kind"]
        ));
    }
    let name = object["metadata"]["name"].as_str().unwrap_or_default();
    if !dns_subdomain(name) {
        return Err(format!("metadata.name {name:?} is not a DNS subdomain"));
    }
    if let Some(labels) = object["metadata"]["labels"].as_object() {
        for (key, value) in labels {
            let value = value.as_str().unwrap_or("\u{0}");
            if !label_value(value) {
                return Err(format!("metadata.labels[{key}]: invalid value {value:?}"));
            }
        }
    }
    if kind == "secrets" {
        for (key, value) in object["data"].as_object().into_iter().flatten() {
            let valid_key = key
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
            if !valid_key || key.is_empty() {
                return Err(format!("data[{key}]: invalid key"));
            }
            let decoded = value
                .as_str()
                .map(|v| base64::engine::general_purpose::STANDARD.decode(v));
            if !matches!(decoded, Some(Ok(_))) {
                return Err(format!("data[{key}]: not base64"));
            }
        }
    } else {
        let containers = object["spec"]["containers"].as_array();
        if containers.is_none_or(Vec::is_empty) {
            return Err("spec.containers: required".to_owned());
        }
        for container in containers.into_iter().flatten() {
            if container["name"].as_str().is_none_or(str::is_empty)
                || container["image"].as_str().is_none_or(str::is_empty)
            {
                return Err("spec.containers[]: name and image are required".to_owned());
            }
        }
    }
    Ok(())
}

/// `k=v,k2==v2` → pairs (equality selectors only: all the backend uses).
fn selector(text: Option<&String>) -> Vec<(String, String)> {
    text.map(|t| {
        t.split(',')
            .filter_map(|term| {
                let (k, v) = term.split_once('=')?;
                Some((k.to_owned(), v.trim_start_matches('=').to_owned()))
            })
            .collect()
    })
    .unwrap_or_default()
}

fn matches(object: &Value, selector: &[(String, String)]) -> bool {
    selector
        .iter()
        .all(|(k, v)| object["metadata"]["labels"][k].as_str() == Some(v))
}

impl Cluster {
    fn lock(&self) -> std::sync::MutexGuard<'_, Objects> {
        self.objects
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Record a change (bumping the resource version) and tell the watches.
    fn change(
        &self,
        objects: &mut Objects,
        kind: &str,
        namespace: &str,
        event_type: &'static str,
        mut object: Value,
    ) -> Value {
        objects.version += 1;
        object["metadata"]["resourceVersion"] = json!(objects.version.to_string());
        let key = (
            kind.to_owned(),
            namespace.to_owned(),
            object["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        );
        if event_type == "DELETED" {
            objects.items.remove(&key);
        } else {
            objects.items.insert(key, object.clone());
        }
        let change = Change {
            version: objects.version,
            kind: kind.to_owned(),
            namespace: namespace.to_owned(),
            event_type,
            object: object.clone(),
        };
        objects.history.push(change.clone());
        let _ = self.changes.send(change);
        object
    }

    /// Update a pod's status (if it still exists).
    fn set_pod_status(&self, namespace: &str, name: &str, status: Value) {
        let mut objects = self.lock();
        let key = ("pods".to_owned(), namespace.to_owned(), name.to_owned());
        if let Some(mut pod) = objects.items.get(&key).cloned() {
            pod["status"] = status;
            self.change(&mut objects, "pods", namespace, "MODIFIED", pod);
        }
    }

    /// Remove a pod, and the secrets it owns (the garbage collector's part).
    fn remove_pod(&self, namespace: &str, name: &str) {
        let mut objects = self.lock();
        let key = ("pods".to_owned(), namespace.to_owned(), name.to_owned());
        let Some(pod) = objects.items.get(&key).cloned() else {
            return;
        };
        let uid = pod["metadata"]["uid"].clone();
        self.change(&mut objects, "pods", namespace, "DELETED", pod);
        let owned: Vec<Value> = objects
            .items
            .iter()
            .filter(|((kind, ns, _), secret)| {
                kind == "secrets"
                    && ns == namespace
                    && secret["metadata"]["ownerReferences"]
                        .as_array()
                        .is_some_and(|refs| refs.iter().any(|r| r["uid"] == uid))
            })
            .map(|(_, secret)| secret.clone())
            .collect();
        for secret in owned {
            self.change(&mut objects, "secrets", namespace, "DELETED", secret);
        }
    }
}

impl FakeCluster {
    /// Start one on a loopback port. `images` maps each image to the command its
    /// container runs.
    ///
    /// # Panics
    /// When no loopback port or temporary directory can be had.
    pub async fn start(images: HashMap<String, Vec<String>>) -> Self {
        let node = tempfile::tempdir().expect("a directory for the node");
        let (changes, _) = broadcast::channel(1024);
        let cluster = Cluster {
            objects: Arc::default(),
            changes,
            images: Arc::new(images),
            node_dir: node.path().to_owned(),
        };
        let router = Router::new()
            .route(
                "/api/v1/namespaces/{namespace}/{kind}",
                get(list_or_watch).post(create),
            )
            .route(
                "/api/v1/namespaces/{namespace}/{kind}/{name}",
                get(read).delete(delete),
            )
            .route("/api/v1/namespaces/{namespace}/pods/{name}/log", get(logs))
            .with_state(cluster.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a loopback port");
        let url = format!("http://{}", listener.local_addr().expect("its address"));
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Self {
            url,
            cluster,
            _node: node,
            server,
        }
    }

    /// The objects of `kind` (`pods`, `secrets`) in `namespace`.
    #[must_use]
    pub fn objects(&self, kind: &str, namespace: &str) -> Vec<Value> {
        self.cluster
            .lock()
            .items
            .iter()
            .filter(|((k, ns, _), _)| k == kind && ns == namespace)
            .map(|(_, object)| object.clone())
            .collect()
    }

    /// How many pod processes the kubelet runs now.
    #[must_use]
    pub fn processes(&self) -> usize {
        self.cluster.lock().stops.len()
    }

    /// Every request the API server answered, as `METHOD path`.
    #[must_use]
    pub fn requests(&self) -> Vec<String> {
        self.cluster.lock().requests.clone()
    }
}

type Params = Query<HashMap<String, String>>;

async fn create(
    State(cluster): State<Cluster>,
    Path((namespace, kind)): Path<(String, String)>,
    axum::Json(mut object): axum::Json<Value>,
) -> Response {
    cluster
        .lock()
        .requests
        .push(format!("POST /api/v1/namespaces/{namespace}/{kind}"));
    if kind != "pods" && kind != "secrets" {
        return status(
            404,
            "NotFound",
            &format!("the server could not find {kind}"),
        );
    }
    if let Err(message) = validate(&kind, &object) {
        return invalid(&message);
    }
    let name = object["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let created = {
        let mut objects = cluster.lock();
        let key = (kind.clone(), namespace.clone(), name.clone());
        if objects.items.contains_key(&key) {
            return status(
                409,
                "AlreadyExists",
                &format!("{kind} \"{name}\" already exists"),
            );
        }
        object["metadata"]["uid"] = json!(uuid::Uuid::new_v4().to_string());
        object["metadata"]["namespace"] = json!(namespace);
        object["metadata"]["creationTimestamp"] = json!("2026-01-01T00:00:00Z");
        if kind == "pods" {
            object["status"] = json!({"phase": "Pending"});
        }
        cluster.change(&mut objects, &kind, &namespace, "ADDED", object)
    };
    if kind == "pods" {
        tokio::spawn(run_pod(cluster.clone(), namespace, created.clone()));
    }
    (StatusCode::CREATED, axum::Json(created)).into_response()
}

async fn read(
    State(cluster): State<Cluster>,
    Path((namespace, kind, name)): Path<(String, String, String)>,
) -> Response {
    let mut objects = cluster.lock();
    objects
        .requests
        .push(format!("GET /api/v1/namespaces/{namespace}/{kind}/{name}"));
    match objects.items.get(&(kind.clone(), namespace, name.clone())) {
        Some(object) => axum::Json(object.clone()).into_response(),
        None => status(404, "NotFound", &format!("{kind} \"{name}\" not found")),
    }
}

async fn delete(
    State(cluster): State<Cluster>,
    Path((namespace, kind, name)): Path<(String, String, String)>,
) -> Response {
    let mut objects = cluster.lock();
    objects.requests.push(format!(
        "DELETE /api/v1/namespaces/{namespace}/{kind}/{name}"
    ));
    let key = (kind.clone(), namespace.clone(), name.clone());
    let Some(mut object) = objects.items.get(&key).cloned() else {
        return status(404, "NotFound", &format!("{kind} \"{name}\" not found"));
    };
    if kind == "secrets" {
        let deleted = cluster.change(&mut objects, &kind, &namespace, "DELETED", object);
        return axum::Json(deleted).into_response();
    }
    // A pod terminates first: its kubelet stops the process, then the pod goes.
    if object["metadata"]["deletionTimestamp"].is_null() {
        object["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:01Z");
        object = cluster.change(&mut objects, &kind, &namespace, "MODIFIED", object);
    }
    if let Some(stop) = objects.stops.remove(&name) {
        let _ = stop.send(());
    } else {
        // No process (never started, or ended already): it goes at once.
        drop(objects);
        cluster.remove_pod(&namespace, &name);
    }
    axum::Json(object).into_response()
}

async fn list_or_watch(
    State(cluster): State<Cluster>,
    Path((namespace, kind)): Path<(String, String)>,
    Query(params): Params,
) -> Response {
    let wanted = selector(params.get("labelSelector"));
    let watching = params.get("watch").is_some_and(|w| w == "true" || w == "1");
    let mut changes = cluster.changes.subscribe();
    let (version, items, backlog) = {
        let mut objects = cluster.lock();
        objects.requests.push(format!(
            "GET /api/v1/namespaces/{namespace}/{kind}{}",
            if watching { " (watch)" } else { "" }
        ));
        let from: u64 = params
            .get("resourceVersion")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let items: Vec<Value> = objects
            .items
            .iter()
            .filter(|((k, ns, _), o)| *k == kind && *ns == namespace && matches(o, &wanted))
            .map(|(_, o)| o.clone())
            .collect();
        let backlog: Vec<Change> = objects
            .history
            .iter()
            .filter(|c| c.version > from)
            .cloned()
            .collect();
        (objects.version, items, backlog)
    };
    if !watching {
        let list_kind = if kind == "pods" {
            "PodList"
        } else {
            "SecretList"
        };
        return axum::Json(json!({
            "apiVersion": "v1", "kind": list_kind,
            "metadata": {"resourceVersion": version.to_string()},
            "items": items,
        }))
        .into_response();
    }
    let relevant =
        move |c: &Change| c.kind == kind && c.namespace == namespace && matches(&c.object, &wanted);
    let line = |c: &Change| {
        let mut text = json!({"type": c.event_type, "object": c.object}).to_string();
        text.push('\n');
        Ok::<_, std::convert::Infallible>(axum::body::Bytes::from(text))
    };
    let mut sent = backlog.last().map_or(0, |c| c.version);
    let first: Vec<_> = backlog.iter().filter(|c| relevant(c)).map(line).collect();
    let rest = async_stream(move |yield_line| async move {
        loop {
            match changes.recv().await {
                Ok(change) if change.version > sent => {
                    sent = change.version;
                    if relevant(&change) && yield_line.send(line(&change)).await.is_err() {
                        return;
                    }
                }
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    });
    let body = futures_util::StreamExt::chain(futures_util::stream::iter(first), rest);
    Response::new(Body::from_stream(body))
}

/// A stream fed by a task: what the task sends, until it ends or the stream is dropped.
fn async_stream<F, Fut>(
    task: F,
) -> impl futures_util::Stream<Item = Result<axum::body::Bytes, std::convert::Infallible>>
where
    F: FnOnce(
        tokio::sync::mpsc::Sender<Result<axum::body::Bytes, std::convert::Infallible>>,
    ) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (sender, receiver) = tokio::sync::mpsc::channel(64);
    tokio::spawn(task(sender));
    futures_util::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|item| (item, receiver))
    })
}

async fn logs(
    State(cluster): State<Cluster>,
    Path((namespace, name)): Path<(String, String)>,
    Query(params): Params,
) -> Response {
    cluster.lock().requests.push(format!(
        "GET /api/v1/namespaces/{namespace}/pods/{name}/log"
    ));
    let path = cluster.node_dir.join(&name).join("log");
    let Ok(text) = std::fs::read_to_string(&path) else {
        return status(
            400,
            "BadRequest",
            &format!("container \"agent\" in pod \"{name}\" is waiting to start"),
        );
    };
    let tail: Option<usize> = params.get("tailLines").and_then(|t| t.parse().ok());
    let lines: Vec<&str> = text.lines().collect();
    let shown = tail.map_or(&lines[..], |n| &lines[lines.len().saturating_sub(n)..]);
    let mut head = shown.join("\n");
    if !head.is_empty() {
        head.push('\n');
    }
    if params.get("follow").is_none_or(|f| f != "true") {
        return head.into_response();
    }
    let start = text.len() as u64;
    let first = futures_util::stream::once(std::future::ready(Ok::<_, std::convert::Infallible>(
        axum::body::Bytes::from(head),
    )));
    let rest = futures_util::stream::unfold((path, start), |(path, offset)| async move {
        loop {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let bytes = std::fs::read(&path).unwrap_or_default();
            let len = bytes.len() as u64;
            if len > offset {
                let chunk = bytes[usize::try_from(offset).unwrap_or(0)..].to_vec();
                return Some((Ok(axum::body::Bytes::from(chunk)), (path, len)));
            }
        }
    });
    Response::new(Body::from_stream(futures_util::StreamExt::chain(
        first, rest,
    )))
}

/// The kubelet's part for one pod: wait for its secrets, run its container as a process,
/// report its phase, and stop it when the pod is deleted.
async fn run_pod(cluster: Cluster, namespace: String, pod: Value) {
    let name = pod["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let container = pod["spec"]["containers"][0].clone();
    // A container that cannot start waits, with the reason, as a kubelet reports it.
    let fail = |reason: &str| {
        cluster.set_pod_status(
            &namespace,
            &name,
            json!({"phase": "Pending",
                   "containerStatuses": [{"name": "agent", "ready": false, "restartCount": 0,
                                          "image": container["image"], "imageID": "",
                                          "state": {"waiting": {"reason": reason,
                                                                "message": format!("{reason} (fake kubelet)")}}}]}),
        );
    };
    let Some(command) = container["image"]
        .as_str()
        .and_then(|image| cluster.images.get(image))
        .cloned()
    else {
        return fail("ErrImagePull");
    };
    let Some(secrets) = wait_for_secrets(&cluster, &namespace, &pod).await else {
        return fail("CreateContainerConfigError");
    };
    let pod_dir = cluster.node_dir.join(&name);
    let mounts = lay_out_volumes(&pod, &container, &secrets, &pod_dir);
    let Ok(env) = container_env(&container, &secrets, &mounts) else {
        return fail("CreateContainerConfigError");
    };
    let workdir = container["workingDir"]
        .as_str()
        .and_then(|w| mounts.get(w))
        .cloned()
        .unwrap_or_else(|| pod_dir.clone());
    let Ok(log) = std::fs::File::create(pod_dir.join("log")) else {
        return fail("RunContainerError");
    };
    let log_err = log.try_clone().ok();
    let Ok(child) = tokio::process::Command::new(&command[0])
        .args(&command[1..])
        .env_clear()
        .envs(&env)
        .current_dir(&workdir)
        .stdout(Stdio::from(log))
        .stderr(log_err.map_or_else(Stdio::null, Stdio::from))
        .kill_on_drop(true)
        .spawn()
    else {
        return fail("RunContainerError");
    };
    supervise(&cluster, &namespace, &pod, child).await;
}

/// The data of every secret the pod refers to, once all exist (a kubelet waits for
/// them); `None` if they never come or the pod goes meanwhile.
async fn wait_for_secrets(
    cluster: &Cluster,
    namespace: &str,
    pod: &Value,
) -> Option<HashMap<String, BTreeMap<String, String>>> {
    let name = pod["metadata"]["name"].as_str().unwrap_or_default();
    let container = &pod["spec"]["containers"][0];
    let mut wanted: Vec<String> = Vec::new();
    wanted.extend(
        container["env"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| {
                v["valueFrom"]["secretKeyRef"]["name"]
                    .as_str()
                    .map(str::to_owned)
            }),
    );
    wanted.extend(
        pod["spec"]["volumes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v["secret"]["secretName"].as_str().map(str::to_owned)),
    );
    for _ in 0..200 {
        {
            let objects = cluster.lock();
            let pod_key = ("pods".to_owned(), namespace.to_owned(), name.to_owned());
            if objects
                .items
                .get(&pod_key)
                .is_none_or(|p| p["metadata"]["uid"] != pod["metadata"]["uid"])
            {
                return None;
            }
            let found: HashMap<String, BTreeMap<String, String>> = wanted
                .iter()
                .filter_map(|secret| {
                    let key = ("secrets".to_owned(), namespace.to_owned(), secret.clone());
                    Some((secret.clone(), decoded(objects.items.get(&key)?)))
                })
                .collect();
            if found.len()
                == wanted
                    .iter()
                    .collect::<std::collections::HashSet<_>>()
                    .len()
            {
                return Some(found);
            }
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    None
}

/// A secret's data, decoded.
fn decoded(secret: &Value) -> BTreeMap<String, String> {
    secret["data"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(v.as_str().unwrap_or_default())
                .unwrap_or_default();
            (k.clone(), String::from_utf8_lossy(&bytes).into_owned())
        })
        .collect()
}

/// Each volume a directory on the node (a secret volume's items written as files); the
/// container's mount paths → those directories.
fn lay_out_volumes(
    pod: &Value,
    container: &Value,
    secrets: &HashMap<String, BTreeMap<String, String>>,
    pod_dir: &std::path::Path,
) -> HashMap<String, PathBuf> {
    let mut volumes: HashMap<String, PathBuf> = HashMap::new();
    for volume in pod["spec"]["volumes"].as_array().into_iter().flatten() {
        let volume_name = volume["name"].as_str().unwrap_or_default();
        let dir = pod_dir.join("volumes").join(volume_name);
        let _ = std::fs::create_dir_all(&dir);
        if let Some(data) = volume["secret"]["secretName"]
            .as_str()
            .and_then(|s| secrets.get(s))
        {
            for item in volume["secret"]["items"].as_array().into_iter().flatten() {
                let key = item["key"].as_str().unwrap_or_default();
                let target = dir.join(item["path"].as_str().unwrap_or_default());
                if let Some(parent) = target.parent() {
                    let _ = std::fs::create_dir_all(parent);
                }
                let _ = std::fs::write(&target, data.get(key).cloned().unwrap_or_default());
            }
        }
        volumes.insert(volume_name.to_owned(), dir);
    }
    container["volumeMounts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|mount| {
            let dir = volumes.get(mount["name"].as_str()?)?;
            Some((mount["mountPath"].as_str()?.to_owned(), dir.clone()))
        })
        .collect()
}

/// The environment, as Kubernetes makes it from `env`: `$(VAR)` expanded from what came
/// before, values from secret keys, the pod IP from the downward API; a missing secret key
/// is an error, as for a kubelet. (`envFrom` is not supported: the backend does not use it.)
fn container_env(
    container: &Value,
    secrets: &HashMap<String, BTreeMap<String, String>>,
    mounts: &HashMap<String, PathBuf>,
) -> Result<BTreeMap<String, String>, String> {
    let mut env: BTreeMap<String, String> = BTreeMap::new();
    for variable in container["env"].as_array().into_iter().flatten() {
        let key = variable["name"].as_str().unwrap_or_default().to_owned();
        let from_secret = &variable["valueFrom"]["secretKeyRef"];
        let value = if variable["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP" {
            "127.0.0.1".to_owned()
        } else if let (Some(secret), Some(key)) =
            (from_secret["name"].as_str(), from_secret["key"].as_str())
        {
            let Some(value) = secrets.get(secret).and_then(|data| data.get(key)) else {
                return Err(format!("secret {secret} has no key {key}"));
            };
            value.clone()
        } else {
            let mut value = variable["value"].as_str().unwrap_or_default().to_owned();
            for (name, known) in &env {
                value = value.replace(&format!("$({name})"), known);
            }
            value
        };
        env.insert(key, value);
    }
    // One network for all pods here: agents listen on any free port.
    env.insert("HATCHERY_AGENT_LISTEN".to_owned(), "127.0.0.1:0".to_owned());
    env.remove("HATCHERY_AGENT_URL");
    // Paths inside the container are the node's volume directories.
    for value in env.values_mut() {
        if let Some(dir) = mounts.get(value.as_str()) {
            *value = dir.display().to_string();
        }
    }
    Ok(env)
}

/// Report the pod running, then how it ended: on its own (`Succeeded`/`Failed` with the
/// exit code), or deleted (SIGTERM, SIGKILL after the grace period, then the pod goes).
async fn supervise(
    cluster: &Cluster,
    namespace: &str,
    pod: &Value,
    mut child: tokio::process::Child,
) {
    let name = pod["metadata"]["name"].as_str().unwrap_or_default();
    let image = &pod["spec"]["containers"][0]["image"];
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel();
    cluster.lock().stops.insert(name.to_owned(), stop_tx);
    cluster.set_pod_status(
        namespace,
        name,
        json!({"phase": "Running", "podIP": "127.0.0.1",
               "containerStatuses": [{"name": "agent", "ready": true, "restartCount": 0,
                                      "image": image, "imageID": "",
                                      "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}}}]}),
    );
    let grace = pod["spec"]["terminationGracePeriodSeconds"]
        .as_u64()
        .unwrap_or(30);
    let deleted = tokio::select! {
        _ = child.wait() => false,
        _ = stop_rx => true,
    };
    if deleted {
        if let Some(pid) = child.id() {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
        }
        if tokio::time::timeout(Duration::from_secs(grace), child.wait())
            .await
            .is_err()
        {
            let _ = child.kill().await;
        }
        cluster.remove_pod(namespace, name);
        return;
    }
    cluster.lock().stops.remove(name);
    let code = child
        .wait()
        .await
        .ok()
        .and_then(|s| s.code())
        .unwrap_or(137);
    let phase = if code == 0 { "Succeeded" } else { "Failed" };
    cluster.set_pod_status(
        namespace,
        name,
        json!({"phase": phase, "podIP": "127.0.0.1",
               "containerStatuses": [{"name": "agent", "ready": false, "restartCount": 0,
                                      "image": image, "imageID": "",
                                      "state": {"terminated": {"exitCode": code}}}]}),
    );
    // A pod deleted while its process was ending goes now.
    let deleting = cluster
        .lock()
        .items
        .get(&("pods".to_owned(), namespace.to_owned(), name.to_owned()))
        .is_some_and(|p| !p["metadata"]["deletionTimestamp"].is_null());
    if deleting {
        cluster.remove_pod(namespace, name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_labels_are_checked_as_a_real_api_server_would() {
        assert!(dns_subdomain("hatchery-0da076f5-491a"));
        for bad in ["", "Upper", "-x", "x-", "a_b"] {
            assert!(!dns_subdomain(bad), "{bad}");
        }
        assert!(label_value("claude-code"));
        assert!(label_value(""));
        for bad in ["a/b", "-x", &"x".repeat(64)] {
            assert!(!label_value(bad), "{bad}");
        }
    }
}
