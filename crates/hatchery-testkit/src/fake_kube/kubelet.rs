//! The fake kubelet: runs each pod's container as a real local process.
//!
//! It maps images to commands (there is no image registry here), gives each pod an
//! address of its own (a loopback address: all of 127/8 is loopback on Linux), waits for
//! the secrets a pod refers to, gives the process the environment Kubernetes would (secret
//! keys, `$(VAR)` expansion, the downward API's pod IP), writes the secret volume's items
//! as files, and reports the pod's phase and address: `Pending`, `Running`, then
//! `Succeeded` or `Failed` with the exit code. A deleted pod's process gets SIGTERM, then
//! SIGKILL after the grace period, and then the pod goes.
//!
//! Pods here share the node's network, where a real pod has a namespace of its own: an
//! address `0.0.0.0:<port>` in a pod's environment (where it is told to listen: every
//! address of the pod) becomes `<pod IP>:<port>`, so each pod listens on its own address
//! alone, as it would in a cluster, and two pods can use one port.

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use base64::Engine as _;
use serde_json::{Value, json};

use super::cluster::Cluster;

/// A new pod's address: 127.0.0.2, 127.0.0.3, … after an offset this process picks
/// (4,096 addresses apart for each process id), so that the clusters of tests running at
/// once, in this process or in others (nextest runs each test in its own), hand out
/// different ones.
fn next_pod_ip() -> Ipv4Addr {
    static BASE: OnceLock<u32> = OnceLock::new();
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let base = *BASE.get_or_init(|| {
        u32::from(Ipv4Addr::new(127, 0, 0, 2)) + (std::process::id() % 4000) * 4096
    });
    Ipv4Addr::from(base + NEXT.fetch_add(1, Ordering::Relaxed) % 4096)
}

/// The kubelet's part for one pod: give it an address, wait for its secrets, run its
/// container as a process, report its phase, and stop it when the pod is deleted.
pub(super) async fn run_pod(cluster: Cluster, namespace: String, pod: Value) {
    let name = pod["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let ip = next_pod_ip();
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
    let Ok(env) = container_env(&container, &secrets, &mounts, ip) else {
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
    supervise(&cluster, &namespace, &pod, ip, child).await;
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
/// before, values from secret keys, the pod IP (`ip`) from the downward API; a missing
/// secret key is an error, as for a kubelet. (`envFrom` is not supported: the backend does
/// not use it.)
fn container_env(
    container: &Value,
    secrets: &HashMap<String, BTreeMap<String, String>>,
    mounts: &HashMap<String, PathBuf>,
    ip: Ipv4Addr,
) -> Result<BTreeMap<String, String>, String> {
    let mut env: BTreeMap<String, String> = BTreeMap::new();
    for variable in container["env"].as_array().into_iter().flatten() {
        let key = variable["name"].as_str().unwrap_or_default().to_owned();
        let from_secret = &variable["valueFrom"]["secretKeyRef"];
        let value = if variable["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP" {
            ip.to_string()
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
    for value in env.values_mut() {
        // Paths inside the container are the node's volume directories.
        if let Some(dir) = mounts.get(value.as_str()) {
            *value = dir.display().to_string();
        }
        // Every address of the pod is its own address here (see the module's description).
        if let Some(port) = value.strip_prefix("0.0.0.0:")
            && port.parse::<u16>().is_ok()
        {
            *value = format!("{ip}:{port}");
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
    ip: Ipv4Addr,
    mut child: tokio::process::Child,
) {
    let name = pod["metadata"]["name"].as_str().unwrap_or_default();
    let image = &pod["spec"]["containers"][0]["image"];
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel();
    cluster.lock().stops.insert(name.to_owned(), stop_tx);
    cluster.set_pod_status(
        namespace,
        name,
        json!({"phase": "Running", "podIP": ip.to_string(),
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
        json!({"phase": phase, "podIP": ip.to_string(),
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
