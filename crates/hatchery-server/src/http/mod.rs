//! HTTP: the router, shared extractors and gates. One resource per module; handlers
//! extract, call one application function, convert the result. Each handler carries its
//! OpenAPI operation (`#[utoipa::path]`), and routes are registered with it.

mod a2a;
mod activity;
mod agents;
mod bundles;
mod dashboard;
mod delegations;
mod events;
pub(crate) mod gate;
mod guard;
mod openapi;
mod org;
mod registry;
mod secrets;
pub(crate) mod views;

pub use guard::{HttpSettings, InvalidOrigin, check_origins};
mod workspaces;
mod ws;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::{Json, Router};
use hatchery_api::server::HealthAnswer;
use serde::de::DeserializeOwned;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::App;
use crate::app::access::Credential;
use crate::auth::{AdminAuth, bearer};
use crate::error::ApiError;

/// The largest request body accepted; larger ones get 413.
pub const BODY_LIMIT_BYTES: usize = 1024 * 1024;
/// How much of an oversized body is read and thrown away before answering 413, so the
/// client, still sending, gets the answer instead of a reset connection.
const DRAIN_LIMIT_BYTES: usize = 16 * 1024 * 1024;

/// What every handler can reach.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The application layer.
    pub app: App,
    /// How admin requests are checked.
    pub admin: AdminAuth,
    /// Where the dashboard's files are read from instead of the built-in copy, if set.
    pub dashboard_dir: Option<std::sync::Arc<std::path::Path>>,
    /// CORS origins, the request deadline, connection bounds.
    pub http: std::sync::Arc<HttpSettings>,
}

/// Every route, each registered together with its OpenAPI operation, so no route can be
/// served undocumented.
fn api_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(openapi::base())
        .routes(routes!(health))
        .routes(routes!(metrics))
        .routes(routes!(openapi_json))
        .merge(registry::routes())
        .merge(dashboard::routes())
        .merge(workspaces::routes())
        .merge(secrets::routes())
        .merge(events::routes())
        .merge(agents::routes())
        .merge(activity::routes())
        .merge(a2a::routes())
        .merge(delegations::routes())
        .merge(ws::routes())
        .merge(org::routes())
        .merge(bundles::routes())
}

/// The router with every route.
pub fn router(state: AppState) -> Router {
    let request_metrics = std::sync::Arc::clone(&state.app.metrics);
    let cors = guard::cors(&state.http.cors_origins);
    let (router, _) = api_routes().split_for_parts();
    let router = router
        .with_state(state.clone())
        .route_layer(axum::middleware::from_fn_with_state(
            request_metrics,
            record_request,
        ))
        .layer(axum::middleware::from_fn_with_state(state, guard::guard))
        // A span per request and a line per response, at debug level
        // (`RUST_LOG=tower_http=debug`); refusals by the guard included.
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .layer(guard::catch_panic());
    // Outermost: a preflight is answered before anything else looks at it.
    match cors {
        Some(cors) => router.layer(cors),
        None => router,
    }
}

/// The OpenAPI 3.1 document of every route, as `GET /openapi.json` serves it.
#[must_use]
pub fn openapi() -> utoipa::openapi::OpenApi {
    let (_, document) = api_routes().split_for_parts();
    openapi::finish(document)
}

/// Liveness: the server answers.
#[utoipa::path(get, operation_id = "health", path = "/health", tag = "server",
    responses((status = 200, description = "The server is up; `dev_mode` only in dev mode.", body = HealthAnswer)))]
async fn health(State(state): State<AppState>) -> Json<HealthAnswer> {
    Json(HealthAnswer {
        status: "ok".to_owned(),
        dev_mode: state.app.dev.then_some(true),
    })
}

/// This document.
#[utoipa::path(get, operation_id = "openapi", path = "/openapi.json", tag = "server",
    responses((status = 200, description = "The OpenAPI 3.1 document of every route.", body = Object)))]
async fn openapi_json() -> impl axum::response::IntoResponse {
    static DOCUMENT: std::sync::LazyLock<Bytes> = std::sync::LazyLock::new(|| {
        // Serializing a document of plain data cannot fail; an empty object is a safe
        // answer if it ever did.
        Bytes::from(serde_json::to_vec(&openapi()).unwrap_or_else(|_| b"{}".to_vec()))
    });
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        DOCUMENT.clone(),
    )
}

/// Prometheus metrics, in the text exposition format.
#[utoipa::path(get, operation_id = "metrics", path = "/metrics", tag = "server", security(("admin" = [])),
    responses((status = 200, description = "The metrics, in Prometheus' text format.", body = String, content_type = "application/openmetrics-text")))]
async fn metrics(
    State(state): State<AppState>,
    _admin: gate::Admin,
) -> Result<(StatusCode, [(&'static str, &'static str); 1], String), ApiError> {
    let app = &state.app;
    let database = app
        .store
        .stats()
        .await
        .map_err(crate::app::store_error("failed to read metrics"))?;
    let scrape = crate::metrics::Scrape {
        registry_reloads: app.registry.reload_counts(),
        registry_available: app.registry.snapshot().is_ok(),
        subscribers: app.hub.subscribers(),
        event_buffer_bytes: app.hub.buffered_bytes(),
        buffered_heartbeats: app.heartbeats.len(),
        backend: app
            .provisioner
            .as_ref()
            .map_or("none", |p| p.backend.name()),
        stats: database,
        now: app.store.now(),
    };
    Ok((
        StatusCode::OK,
        [("content-type", crate::metrics::CONTENT_TYPE)],
        app.metrics.render(scrape),
    ))
}

/// Time every request, by method, route (its pattern, not its path: ids stay out of the
/// labels) and status.
async fn record_request(
    axum::extract::State(metrics): axum::extract::State<std::sync::Arc<crate::metrics::Metrics>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let started = std::time::Instant::now();
    let method = request.method().as_str().to_owned();
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or("unmatched", axum::extract::MatchedPath::as_str)
        .to_owned();
    let response = next.run(request).await;
    metrics.request(
        method,
        route,
        response.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    response
}

/// `axum::extract::Query`, refused in the API's own error shape: axum's own rejection is
/// plain text, which no client of this API expects.
pub(crate) struct Query<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> axum::extract::FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Self, ApiError> {
        axum::extract::Query::try_from_uri(&parts.uri)
            .map(|axum::extract::Query(query)| Self(query))
            .map_err(|e| {
                ApiError::bad_request("invalid query string", "invalid_query", None, e.body_text())
            })
    }
}

/// `axum::extract::Path`, refused in the API's own error shape (a segment that is not
/// UTF-8 once decoded, say).
pub(crate) struct Path<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> axum::extract::FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, ApiError> {
        axum::extract::Path::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(path)| Self(path))
            .map_err(|e: axum::extract::rejection::PathRejection| invalid_path(e.body_text()))
    }
}

/// A path whose parameters do not read (`detail` says which and why).
pub(crate) fn invalid_path(detail: String) -> ApiError {
    ApiError::bad_request("invalid path", "invalid_path", None, detail)
}

/// The first `Authorization` header (clients may send two; the first counts).
pub(crate) fn authorization(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all("authorization")
        .iter()
        .next()
        .and_then(|v| v.to_str().ok())
}

/// What the request's bearer is: the admin token (never in dev mode, which has none), a
/// live workspace or bootstrap token, or nothing valid.
pub(crate) async fn credential(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Credential, ApiError> {
    let authorization = authorization(headers);
    let is_admin = !state.app.dev && state.admin.allows(authorization);
    Ok(state
        .app
        .credential(bearer(authorization), is_admin)
        .await?)
}

/// What ends a long-lived answer (an event stream, a followed log) opened with
/// `credential`: the revocation of the workspace token it was opened with. The admin's
/// and dev mode's streams have nothing that can be revoked while the server runs.
pub(crate) fn revocation(
    state: &AppState,
    headers: &HeaderMap,
    credential: &Credential,
) -> futures_util::future::BoxFuture<'static, ()> {
    match (credential, bearer(authorization(headers))) {
        (Credential::Token(token), Some(bearer)) => {
            let (app, bearer, token_id) =
                (state.app.clone(), bearer.to_owned(), token.token_id.clone());
            Box::pin(async move { app.until_revoked(&bearer, &token_id).await })
        }
        _ => Box::pin(std::future::pending()),
    }
}

/// Read a body of at most [`BODY_LIMIT_BYTES`]. A larger one is drained (up to a bound)
/// and refused with 413.
async fn read_body(mut body: Body, invalid: &'static str) -> Result<Bytes, ApiError> {
    use http_body_util::BodyExt as _;
    let mut buffer = Vec::new();
    let mut seen = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            ApiError::bad_request(invalid, "invalid_json", None, format!("reading body: {e}"))
        })?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        seen = seen.saturating_add(data.len());
        if seen <= BODY_LIMIT_BYTES {
            buffer.extend_from_slice(&data);
        } else {
            buffer = Vec::new();
            if seen > DRAIN_LIMIT_BYTES {
                break;
            }
        }
    }
    if seen > BODY_LIMIT_BYTES {
        return Err(ApiError::PayloadTooLarge {
            limit: BODY_LIMIT_BYTES,
        });
    }
    Ok(Bytes::from(buffer))
}

/// Parse a JSON body; `invalid` is the spec's message for a body that is not the expected
/// JSON. Oversized bodies get 413.
pub(crate) async fn json_body<T: DeserializeOwned>(
    body: Body,
    invalid: &'static str,
) -> Result<T, ApiError> {
    let bytes = read_body(body, invalid).await?;
    let mut deserializer = serde_json::Deserializer::from_slice(&bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
        let (code, detail) = if e.inner().is_data() {
            ("invalid_field_type", format!("{}: {}", e.path(), e.inner()))
        } else {
            ("invalid_json", e.inner().to_string())
        };
        ApiError::bad_request(invalid, code, None, detail)
    })?;
    // Trailing bytes after the value are malformed JSON too.
    deserializer
        .end()
        .map_err(|e| ApiError::bad_request(invalid, "invalid_json", None, e.to_string()))?;
    Ok(value)
}

/// An event cursor (`?after=`): an event's `seq`, a non-negative integer.
pub(crate) fn parse_cursor(text: &str, field: &'static str) -> Result<i64, ApiError> {
    text.trim()
        .parse::<i64>()
        .ok()
        .filter(|seq| *seq >= 0)
        .ok_or_else(|| {
            ApiError::bad_request(
                "invalid cursor",
                "invalid_cursor",
                Some(field),
                format!("{field} must be an event's seq (a non-negative integer)"),
            )
        })
}

/// Where a stream resumes: `Last-Event-ID` (what `EventSource` sends on reconnect), else
/// `?after=`.
pub(crate) fn resume_cursor(
    headers: &HeaderMap,
    after: Option<&str>,
) -> Result<Option<i64>, ApiError> {
    match headers.get("last-event-id").and_then(|v| v.to_str().ok()) {
        Some(id) => parse_cursor(id, "Last-Event-ID").map(Some),
        None => after.map(|a| parse_cursor(a, "after")).transpose(),
    }
}
