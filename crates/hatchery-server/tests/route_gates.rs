//! Every route of the API with its gate, as the platform API's tables give them (spec §2
//! and the route tables; hatchery's "must differ" rows included), checked against the
//! real server: without a credential, and with a credential of the wrong kind. A route
//! the OpenAPI document lists that this table does not is a failure too, so a new route
//! cannot arrive without saying who may call it.

mod common;

use common::{Db, Env, Running, TOKEN, spawn};
use reqwest::Method;
use serde_json::{Value, json};

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Gate {
    /// Anyone.
    Open,
    /// The operator's admin token.
    Admin,
    /// The workspace's own token, or the admin's.
    Workspace,
    /// The workspace's agent: its own token once it holds one.
    Agent,
    /// Development mode's alone: outside it, not found for anyone.
    DevOnly,
}

/// `(method, path as the OpenAPI document writes it, gate)`.
const ROUTES: &[(&str, &str, Gate)] = &[
    ("GET", "/", Gate::Open),
    ("GET", "/health", Gate::Open),
    ("GET", "/openapi.json", Gate::Open),
    ("GET", "/dashboard/{file}", Gate::Open),
    ("GET", "/metrics", Gate::Admin),
    ("GET", "/admin/registry", Gate::Admin),
    ("GET", "/admin/registry/explain", Gate::Admin),
    ("POST", "/admin/registry/reload", Gate::Admin),
    ("GET", "/admin/secrets", Gate::Admin),
    ("POST", "/admin/secrets", Gate::Admin),
    ("DELETE", "/admin/secrets/{key}", Gate::Admin),
    (
        "POST",
        "/admin/workspaces/{id}/bootstrap-token",
        Gate::Admin,
    ),
    ("GET", "/admin/workspaces/{id}/test-token", Gate::DevOnly),
    ("GET", "/bundles/export/{id}", Gate::Admin),
    ("POST", "/bundles/import", Gate::Admin),
    ("GET", "/events", Gate::Admin),
    ("GET", "/events/stream", Gate::Admin),
    ("GET", "/events/{workspace_id}", Gate::Admin),
    ("POST", "/org/import", Gate::Admin),
    ("GET", "/org/templates", Gate::Admin),
    ("GET", "/settings/secrets", Gate::Admin),
    ("POST", "/settings/secrets", Gate::Admin),
    ("PUT", "/settings/secrets", Gate::Admin),
    ("DELETE", "/settings/secrets/{key}", Gate::Admin),
    ("GET", "/templates", Gate::Admin),
    ("GET", "/workspaces", Gate::Admin),
    ("POST", "/workspaces", Gate::Admin),
    ("POST", "/registry/check-access", Gate::Workspace),
    ("GET", "/registry/discover/{id}", Gate::Agent),
    ("POST", "/registry/heartbeat", Gate::Agent),
    ("POST", "/registry/register", Gate::Agent),
    ("POST", "/registry/update-card", Gate::Agent),
    ("GET", "/registry/{id}/peers", Gate::Agent),
    ("GET", "/workspaces/{id}", Gate::Workspace),
    ("PATCH", "/workspaces/{id}", Gate::Workspace),
    // Asked with `X-Workspace-ID` (see `call`): the caller's own token; without it, the
    // operator's (the a2a_proxy tests check that half).
    ("POST", "/workspaces/{id}/a2a", Gate::Agent),
    ("GET", "/workspaces/{id}/a2a/queue", Gate::Workspace),
    ("GET", "/workspaces/{id}/activity", Gate::Workspace),
    ("POST", "/workspaces/{id}/notify", Gate::Workspace),
    ("POST", "/workspaces/{id}/delegate", Gate::Workspace),
    ("GET", "/workspaces/{id}/delegations", Gate::Workspace),
    (
        "POST",
        "/workspaces/{id}/delegations/record",
        Gate::Workspace,
    ),
    (
        "POST",
        "/workspaces/{id}/delegations/{delegation_id}/update",
        Gate::Workspace,
    ),
    ("POST", "/workspaces/{id}/activity", Gate::Workspace),
    ("GET", "/workspaces/{id}/config", Gate::Workspace),
    ("GET", "/workspaces/{id}/derivation", Gate::Workspace),
    ("GET", "/workspaces/{id}/events/stream", Gate::Workspace),
    ("GET", "/workspaces/{id}/logs", Gate::Workspace),
    ("POST", "/workspaces/{id}/pause", Gate::Workspace),
    ("POST", "/workspaces/{id}/restart", Gate::Workspace),
    ("POST", "/workspaces/{id}/resume", Gate::Workspace),
    ("GET", "/workspaces/{id}/secrets", Gate::Workspace),
    ("POST", "/workspaces/{id}/secrets", Gate::Workspace),
    ("PUT", "/workspaces/{id}/secrets", Gate::Workspace),
    ("GET", "/workspaces/{id}/secrets/values", Gate::Agent),
    ("DELETE", "/workspaces/{id}/secrets/{key}", Gate::Workspace),
    ("GET", "/workspaces/{id}/state", Gate::Agent),
    ("GET", "/workspaces/{id}/tokens", Gate::Workspace),
    ("POST", "/workspaces/{id}/tokens", Gate::Workspace),
    (
        "DELETE",
        "/workspaces/{id}/tokens/{token_id}",
        Gate::Workspace,
    ),
    ("GET", "/ws", Gate::Agent),
    // Last: the admin's call removes the workspace the others are asked about.
    ("DELETE", "/workspaces/{id}", Gate::Admin),
];

/// The routes not in the table above, of those the OpenAPI document lists, and the
/// table's that it does not list.
fn table_against_document(document: &Value) -> (Vec<String>, Vec<String>) {
    let mut documented = Vec::new();
    for (path, operations) in document["paths"].as_object().into_iter().flatten() {
        for method in operations.as_object().into_iter().flatten().map(|(m, _)| m) {
            if ["get", "post", "put", "patch", "delete"].contains(&method.as_str()) {
                documented.push(format!("{} {path}", method.to_uppercase()));
            }
        }
    }
    let table: Vec<String> = ROUTES.iter().map(|(m, p, _)| format!("{m} {p}")).collect();
    let untabled = documented
        .iter()
        .filter(|r| !table.contains(r))
        .cloned()
        .collect();
    let undocumented = table
        .iter()
        .filter(|r| !documented.contains(r))
        .cloned()
        .collect();
    (untabled, undocumented)
}

/// A request to `path` (its parameters filled in for workspace `id`) as `token`.
async fn call(
    server: &Running,
    method: &str,
    path: &str,
    id: &str,
    token: Option<&str>,
) -> (u16, Value) {
    let path = path
        .replace("{id}", id)
        .replace("{workspace_id}", id)
        .replace("{key}", "SOME_KEY")
        .replace("{token_id}", "00000000-0000-4000-8000-000000000000")
        .replace("{delegation_id}", "some-delegation")
        .replace("{file}", "index.html");
    let method = Method::from_bytes(method.as_bytes()).expect("a method");
    // Bodies that name the workspace where the agent gate reads it from the body; the
    // caller header where it reads it from there.
    let body = json!({"id": id, "workspace_id": id, "caller_id": id, "target_id": id});
    let mut request = server
        .client
        .request(method.clone(), format!("{}{path}", server.base))
        .header("x-workspace-id", id);
    if method != Method::GET && method != Method::DELETE {
        request = request.json(&body);
    }
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("the server answers");
    let status = response.status().as_u16();
    // Only refusals are read: an admitted stream (events, logs) would never end.
    if response.status().is_success() {
        return (status, Value::Null);
    }
    let text = response.text().await.unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

#[tokio::test]
async fn every_route_has_its_gate() {
    let env = Env::new(Db::Sqlite).await;
    let server = spawn(env.config()).await;
    let document = server.get_as("/openapi.json", None).await.1;
    let (untabled, undocumented) = table_against_document(&document);
    assert!(
        untabled.is_empty(),
        "routes without a gate in the table: {untabled:?}"
    );
    assert!(
        undocumented.is_empty(),
        "table rows no route answers: {undocumented:?}"
    );

    // A workspace that holds a live token (so its agent gate wants it), and another
    // workspace whose token is the wrong credential for it.
    let id = server.create_named("w").await;
    let other = server.create_named("other").await;
    for workspace in [&id, &other] {
        let (status, _) = server
            .post(&format!("/workspaces/{workspace}/tokens"), &json!({}))
            .await;
        assert_eq!(status, 201);
    }
    let other_token = server
        .post(&format!("/workspaces/{other}/tokens"), &json!({}))
        .await
        .1["auth_token"]
        .as_str()
        .expect("a token")
        .to_owned();

    let mut wrong = Vec::new();
    for &(method, path, gate) in ROUTES {
        let (anonymous, anonymous_body) = call(&server, method, path, &id, None).await;
        let (foreign, foreign_body) = call(&server, method, path, &id, Some(&other_token)).await;
        let (admin, _) = call(&server, method, path, &id, Some(TOKEN)).await;
        let refused = |status: u16| status == 401 || status == 403;
        let right = match gate {
            Gate::Open => !refused(anonymous) && !refused(foreign),
            Gate::Admin => {
                anonymous == 401
                    && anonymous_body["code"] == "admin_auth_required"
                    && foreign == 401
                    && foreign_body["code"] == "invalid_admin_token"
                    && !refused(admin)
            }
            // The workspace gates refuse no credential and another workspace's; the agent
            // gate takes the admin's only where the spec says so, so it is not asked here.
            Gate::Workspace => refused(anonymous) && refused(foreign) && !refused(admin),
            Gate::Agent => refused(anonymous) && refused(foreign),
            Gate::DevOnly => anonymous == 404 && foreign == 404 && admin == 404,
        };
        if !right {
            wrong.push(format!(
                "{method} {path} ({gate:?}): anonymous {anonymous} {anonymous_body}, \
                 another workspace's token {foreign} {foreign_body}, admin {admin}"
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "routes not gated as the table says:\n{}",
        wrong.join("\n")
    );
}
