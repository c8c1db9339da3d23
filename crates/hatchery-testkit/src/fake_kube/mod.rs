//! A fake Kubernetes cluster for the kubernetes backend's tests: the API server's wire
//! protocol for the core/v1 pods and secrets of a namespace (create, get, delete, list
//! with label selectors, watch from a resource version, pod logs with tail and follow),
//! and a kubelet that runs each pod's container as a real local process.
//!
//! The parts: `api` answers the wire protocol, refusing what `validation` says a real API
//! server would; `kubelet` runs, reports and stops the pods; `cluster` is the state both
//! share (objects, resource versions, the change history watches replay, and the garbage
//! collector's removal of the secrets a deleted pod owns).

mod api;
mod cluster;
mod kubelet;
mod validation;

use std::collections::HashMap;

use serde_json::Value;

use cluster::Cluster;

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

impl FakeCluster {
    /// Start one on a loopback port. `images` maps each image to the command its
    /// container runs.
    ///
    /// # Panics
    /// When no loopback port or temporary directory can be had.
    pub async fn start(images: HashMap<String, Vec<String>>) -> Self {
        let node = tempfile::tempdir().expect("a directory for the node");
        let cluster = Cluster::new(images, node.path().to_owned());
        let router = api::router(cluster.clone());
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
