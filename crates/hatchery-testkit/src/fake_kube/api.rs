//! The fake API server's wire protocol for the core/v1 pods and secrets of a namespace:
//! create, get, delete, list with label selectors, watch from a resource version, and pod
//! logs with tail and follow. Errors are `Status` objects with the code a real server uses.

use std::collections::HashMap;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};
use tokio::sync::broadcast;

use super::cluster::{Change, Cluster};
use super::kubelet::run_pod;
use super::validation::validate;

/// The API server's routes over `cluster`.
pub(super) fn router(cluster: Cluster) -> Router {
    Router::new()
        .route(
            "/api/v1/namespaces/{namespace}/{kind}",
            get(list_or_watch).post(create),
        )
        .route(
            "/api/v1/namespaces/{namespace}/{kind}/{name}",
            get(read).delete(delete),
        )
        .route("/api/v1/namespaces/{namespace}/pods/{name}/log", get(logs))
        .with_state(cluster)
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
