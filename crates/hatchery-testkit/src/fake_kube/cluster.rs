//! The cluster's state, shared by the API server and the kubelet: the objects by kind,
//! namespace and name, the resource version, every change so far (for watches), and the
//! kubelet's stop signals for pods being deleted.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use tokio::sync::broadcast;

/// One change, as a watch reports it.
#[derive(Debug, Clone)]
pub(super) struct Change {
    pub(super) version: u64,
    pub(super) kind: String,
    pub(super) namespace: String,
    pub(super) event_type: &'static str,
    pub(super) object: Value,
}

/// Everything the cluster holds, behind one lock.
#[derive(Debug, Default)]
pub(super) struct Objects {
    pub(super) version: u64,
    /// `(kind, namespace, name)` → object; kind is `pods` or `secrets`.
    pub(super) items: BTreeMap<(String, String, String), Value>,
    /// Every change so far (for watches that start from an older version).
    pub(super) history: Vec<Change>,
    /// Pods being deleted → their kubelet's stop signal.
    pub(super) stops: HashMap<String, tokio::sync::oneshot::Sender<()>>,
    /// Every request, as `METHOD path`.
    pub(super) requests: Vec<String>,
}

/// A handle on the cluster, cloned into every request handler and kubelet task.
#[derive(Clone)]
pub(super) struct Cluster {
    pub(super) objects: Arc<Mutex<Objects>>,
    pub(super) changes: broadcast::Sender<Change>,
    /// Image → the command its container runs.
    pub(super) images: Arc<HashMap<String, Vec<String>>>,
    /// Where the kubelet keeps each pod's volumes and log.
    pub(super) node_dir: PathBuf,
}

impl Cluster {
    /// An empty cluster whose node keeps its files in `node_dir`.
    pub(super) fn new(images: HashMap<String, Vec<String>>, node_dir: PathBuf) -> Self {
        let (changes, _) = broadcast::channel(1024);
        Self {
            objects: Arc::default(),
            changes,
            images: Arc::new(images),
            node_dir,
        }
    }

    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, Objects> {
        self.objects
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Record a change (bumping the resource version) and tell the watches.
    pub(super) fn change(
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
    pub(super) fn set_pod_status(&self, namespace: &str, name: &str, status: Value) {
        let mut objects = self.lock();
        let key = ("pods".to_owned(), namespace.to_owned(), name.to_owned());
        if let Some(mut pod) = objects.items.get(&key).cloned() {
            pod["status"] = status;
            self.change(&mut objects, "pods", namespace, "MODIFIED", pod);
        }
    }

    /// Remove a pod, and the secrets it owns (the garbage collector's part).
    pub(super) fn remove_pod(&self, namespace: &str, name: &str) {
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
