//! What every request passes before its route: a body must be JSON (a page on another site
//! cannot send one without the browser asking first, and nobody here says yes unasked), a
//! request must finish within its deadline, and in dev mode — whose admin routes are open —
//! it must be addressed to a loopback host (no DNS rebinding) from no foreign page. CORS is
//! off unless the operator names the origins that may call.

use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse as _, Response};

use super::AppState;
use crate::error::ApiError;

/// How the HTTP layer guards requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpSettings {
    /// Browser origins (`https://canvas.example.com`) that may call the API from their
    /// pages, credentials included. Empty: CORS is off.
    pub cors_origins: Vec<String>,
    /// How long a request may take until its answer starts (streams then run on).
    pub request_timeout: Duration,
    /// Each listener's connection bounds.
    pub connections: crate::serve::ConnectionLimits,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            cors_origins: Vec::new(),
            request_timeout: Duration::from_mins(1),
            connections: crate::serve::ConnectionLimits::default(),
        }
    }
}

/// Why an origin named for CORS is refused.
#[derive(Debug, thiserror::Error)]
#[error(
    "HATCHERY_CORS_ORIGINS: {origin:?} is not an origin (scheme://host[:port], no path, no wildcard)"
)]
pub struct InvalidOrigin {
    /// What was given.
    pub origin: String,
}

/// Check the origins an operator named: each `http(s)://host[:port]`, nothing more.
pub fn check_origins(origins: &[String]) -> Result<(), InvalidOrigin> {
    for origin in origins {
        let valid = url::Url::parse(origin).is_ok_and(|url| {
            matches!(url.scheme(), "http" | "https")
                && url.host_str().is_some()
                && url.path() == "/"
                && !origin.ends_with('/')
                && url.query().is_none()
                && url.username().is_empty()
                && HeaderValue::from_str(origin).is_ok()
        });
        if !valid {
            return Err(InvalidOrigin {
                origin: origin.clone(),
            });
        }
    }
    Ok(())
}

/// The CORS layer for the named origins, if any: preflights answered for every route, the
/// headers the API reads allowed, credentials allowed (only ever for origins named).
pub(super) fn cors(origins: &[String]) -> Option<tower_http::cors::CorsLayer> {
    use tower_http::cors::{AllowOrigin, CorsLayer};
    if origins.is_empty() {
        return None;
    }
    let allowed: Vec<HeaderValue> = origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(allowed))
            .allow_methods([
                Method::GET,
                Method::POST,
                Method::PUT,
                Method::PATCH,
                Method::DELETE,
            ])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                header::HeaderName::from_static("x-workspace-id"),
                header::HeaderName::from_static("last-event-id"),
            ])
            .allow_credentials(true)
            .max_age(Duration::from_mins(10)),
    )
}

/// The guard itself (see the module's comment).
pub(super) async fn guard(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if let Err(refusal) = admit(&state, request.headers()) {
        return refusal.into_response();
    }
    // An agent may think for minutes before its answer's head: A2A has its own idle
    // timeout (`a2a_idle_timeout`) instead of the request deadline.
    if is_a2a(request.uri().path()) {
        return next.run(request).await;
    }
    let limit = state.http.request_timeout;
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::RequestTimeout { limit }.into_response(),
    }
}

/// `/workspaces/{id}/a2a` (the router is not consulted yet at this layer).
fn is_a2a(path: &str) -> bool {
    path.strip_prefix("/workspaces/")
        .and_then(|rest| rest.strip_suffix("/a2a"))
        .is_some_and(|id| !id.is_empty() && !id.contains('/'))
}

fn admit(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    if has_body(headers) && !is_json(headers) {
        return Err(ApiError::UnsupportedMediaType);
    }
    if !state.app.dev {
        return Ok(());
    }
    if let Some(host) = headers.get(header::HOST) {
        let host = host.to_str().unwrap_or_default();
        if !is_loopback_authority(host) {
            return Err(ApiError::Forbidden {
                message: format!(
                    "host {host:?} is not a loopback address: in dev mode hatchery answers only requests addressed to localhost"
                ),
                code: "host_not_allowed",
            });
        }
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or_default();
        if !origin_allowed_in_dev(origin, &state.http.cors_origins) {
            return Err(ApiError::Forbidden {
                message: format!(
                    "origin {origin} is not allowed: in dev mode only pages on loopback addresses (or HATCHERY_CORS_ORIGINS) may call"
                ),
                code: "origin_not_allowed",
            });
        }
    }
    Ok(())
}

/// Whether the request carries a body (a declared length above zero, or a chunked one).
fn has_body(headers: &HeaderMap) -> bool {
    headers.contains_key(header::TRANSFER_ENCODING)
        || headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|length| length.trim() != "0")
}

/// `application/json` (any parameters), or a `+json` type.
fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|essence| essence.trim().to_ascii_lowercase())
        .is_some_and(|essence| {
            essence == "application/json"
                || (essence.starts_with("application/") && essence.ends_with("+json"))
        })
}

/// A `Host` value naming this machine: `localhost`, a 127.0.0.0/8 address or `[::1]`,
/// with or without a port.
fn is_loopback_authority(authority: &str) -> bool {
    let host = match authority.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or_default(),
        None => authority
            .rsplit_once(':')
            .map_or(authority, |(host, port)| {
                if port.chars().all(|c| c.is_ascii_digit()) {
                    host
                } else {
                    authority
                }
            }),
    };
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// In dev mode a page may call from a loopback origin (the dashboard, a canvas on
/// `localhost:3000`) or one the operator named; never from `null` or another site.
pub(super) fn origin_allowed_in_dev(origin: &str, named: &[String]) -> bool {
    if named.iter().any(|n| n == origin) {
        return true;
    }
    url::Url::parse(origin).is_ok_and(|url| {
        matches!(url.scheme(), "http" | "https")
            && url.host_str().is_some_and(is_loopback_authority)
    })
}

/// A handler that panics (a bug) answers 500 in the API's error shape, and the panic goes to
/// the log, instead of the connection closing with no answer at all.
pub(super) fn catch_panic()
-> tower_http::catch_panic::CatchPanicLayer<fn(Box<dyn std::any::Any + Send + 'static>) -> Response>
{
    #[allow(
        clippy::needless_pass_by_value,
        reason = "the signature CatchPanicLayer calls"
    )]
    fn answer(panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
        let what = panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic with no message".to_owned());
        ApiError::internal("internal error", format!("a handler panicked: {what}")).into_response()
    }
    tower_http::catch_panic::CatchPanicLayer::custom(answer as fn(_) -> Response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts_are_told_apart_from_the_rest() {
        for host in [
            "localhost",
            "localhost:8080",
            "127.0.0.1",
            "127.1.2.3:80",
            "[::1]",
            "[::1]:8080",
            "LOCALHOST:1",
        ] {
            assert!(is_loopback_authority(host), "{host}");
        }
        for host in [
            "evil.example",
            "evil.example:8080",
            "127.0.0.1.evil.example",
            "localhost.evil.example",
            "10.0.0.1:80",
            "[::2]:80",
            "",
        ] {
            assert!(!is_loopback_authority(host), "{host}");
        }
    }

    #[test]
    fn dev_mode_takes_pages_from_loopback_or_named_origins_only() {
        let named = vec!["https://canvas.example.com".to_owned()];
        assert!(origin_allowed_in_dev("http://localhost:3000", &named));
        assert!(origin_allowed_in_dev("http://127.0.0.1:8080", &named));
        assert!(origin_allowed_in_dev("http://[::1]:8080", &named));
        assert!(origin_allowed_in_dev("https://canvas.example.com", &named));
        assert!(!origin_allowed_in_dev("https://evil.example", &named));
        assert!(!origin_allowed_in_dev("null", &named));
        assert!(!origin_allowed_in_dev(
            "http://localhost.evil.example",
            &named
        ));
    }

    #[test]
    fn only_whole_origins_may_be_named() {
        assert!(
            check_origins(&["https://a.example".into(), "http://localhost:3000".into()]).is_ok()
        );
        for bad in [
            "*",
            "https://a.example/",
            "https://a.example/app",
            "a.example",
            "ftp://a.example",
            "https://u@a.example",
        ] {
            assert!(check_origins(&[bad.into()]).is_err(), "{bad}");
        }
    }

    #[test]
    fn json_is_the_only_body() {
        let with = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_str(value).unwrap());
            is_json(&headers)
        };
        assert!(with("application/json"));
        assert!(with("Application/JSON; charset=utf-8"));
        assert!(with("application/merge-patch+json"));
        assert!(!with("text/plain"));
        assert!(!with("application/x-www-form-urlencoded"));
        assert!(!with("multipart/form-data; boundary=x"));
        assert!(!is_json(&HeaderMap::new()));
    }

    #[tokio::test]
    async fn a_handler_that_panics_answers_500_in_the_error_shape() {
        let router = axum::Router::new()
            .route(
                "/boom",
                axum::routing::get(|| async {
                    panic!("a bug");
                    #[allow(unreachable_code)]
                    ""
                }),
            )
            .layer(catch_panic());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await });
        let response = reqwest::get(format!("http://{address}/boom"))
            .await
            .unwrap();
        assert_eq!(response.status(), 500);
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["code"], "internal", "{body}");
        assert_eq!(body["error"], "internal error", "{body}");
    }
}
