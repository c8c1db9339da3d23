//! The one error type of the HTTP layer and its one mapping to status codes and bodies.
//!
//! `error` carries the exact strings of the platform API (clients match on them); `code`
//! is hatchery's stable machine-readable name; extra keys name the field or the cause.
//! Internal detail (a database error, say) goes to the log, never to the client.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hatchery_core::ProviderError;
use serde_json::{Value, json};

use crate::app::org::OrgRefusal;
use crate::app::{self, AgentFault, Cursor, Resource, Service, TokenFault};

/// What a request can fail with.
#[derive(Debug, thiserror::Error)]
#[allow(missing_docs)] // the fields' names say what they hold
pub enum ApiError {
    /// No admin credential.
    #[error("admin auth required")]
    AdminAuthRequired,
    /// A wrong admin credential.
    #[error("invalid admin auth token")]
    InvalidAdminToken,
    /// A request the spec answers with 400 and a fixed message.
    #[error("{message}")]
    BadRequest {
        /// The exact message of the spec (`invalid workspace fields`, …).
        message: String,
        /// The stable code.
        code: &'static str,
        /// The offending field, when one is to blame.
        field: Option<&'static str>,
        /// The specific reason, naming the field.
        detail: Option<String>,
    },
    /// The body is larger than the server accepts.
    #[error("request body too large (limit {limit} bytes)")]
    PayloadTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// A body that is not JSON (`Content-Type` must say `application/json`).
    #[error("request body must be JSON: send Content-Type: application/json")]
    UnsupportedMediaType,
    /// The request did not finish within the server's deadline.
    #[error("the request did not complete within {}s", limit.as_secs())]
    RequestTimeout {
        /// The deadline.
        limit: std::time::Duration,
    },
    /// Nothing by that id or name.
    #[error("{message}")]
    NotFound {
        /// The exact message (`workspace not found`, `org template not found: <dir>`).
        message: std::borrow::Cow<'static, str>,
        /// The stable code.
        code: &'static str,
    },
    /// The workspace is removed; it can be read but not changed.
    #[error("workspace is removed")]
    WorkspaceRemoved,
    /// One field of a body is larger than the server keeps (an agent card, a URL, an
    /// activity body): 413 naming the field.
    #[error("{field} is too large (limit {limit} bytes)")]
    FieldTooLarge {
        field: &'static str,
        /// Its limit in bytes.
        limit: usize,
    },
    /// A page cursor that no longer points into what is kept (events deleted by
    /// retention, a peer purged or moved away): the client re-reads from the start.
    #[error("{message}")]
    CursorExpired {
        /// What expired and where to start again.
        message: &'static str,
        /// The highest event seq retention deleted, for an event cursor.
        pruned_through: Option<i64>,
    },
    /// A delete of a workspace with live children, without `confirm=true`.
    #[error("This workspace has sub-workspaces. Delete with ?confirm=true to cascade delete.")]
    ConfirmationRequired {
        /// The live children: `(id, name)`.
        children: Vec<(String, String)>,
    },
    /// No registry snapshot is in force: nothing that needs a provider may proceed.
    #[error("{0}")]
    RegistryUnavailable(String),
    /// A registry reload was refused; the last good snapshot stays in force.
    #[error("{error}")]
    RegistryReloadRefused {
        /// Why the new manifest was refused.
        error: String,
        /// The hash still in force, if any.
        hash_in_force: Option<String>,
    },
    /// The provider or billing decision failed closed.
    #[error(transparent)]
    Provider(#[from] ProviderError),
    /// Secrets cannot be stored or read: the server has no secrets key.
    #[error(
        "secrets are disabled on this server: set HATCHERY_SECRETS_KEY (32 random bytes in base64) and restart"
    )]
    SecretsDisabled,
    /// The secrets key was rotated while this server ran with the previous one.
    #[error("the secrets key was rotated; restart the server with the new HATCHERY_SECRETS_KEY")]
    SecretsKeyRotated,
    /// Stored secrets did not decrypt.
    #[error("one or more secrets failed to decrypt; refusing to return partial bundle")]
    SecretsUndecryptable {
        /// The keys that failed.
        failed_keys: Vec<String>,
    },
    /// A workspace credential is missing or wrong (the spec's two 401s).
    #[error("{message}")]
    Unauthorized {
        /// `missing workspace auth token` or `invalid workspace auth token`.
        message: &'static str,
        /// The stable code.
        code: &'static str,
    },
    /// The caller is known but may not do this.
    #[error("{message}")]
    Forbidden {
        /// The spec's message.
        message: String,
        /// The stable code.
        code: &'static str,
    },
    /// The request conflicts with the workspace's state.
    #[error("{message}")]
    Conflict {
        /// What conflicts, and what to do.
        message: String,
        /// The stable code.
        code: &'static str,
    },
    /// A workspace already holds the most live tokens allowed.
    #[error("maximum 50 active tokens per workspace")]
    TooManyTokens,
    /// The target of a discovery has no URL or is not up.
    #[error("workspace not available")]
    WorkspaceUnavailable {
        status: hatchery_core::WorkspaceStatus,
    },
    /// Too many messages in flight to a workspace, or from the calling one: 429 with
    /// `Retry-After`.
    #[error("{0}")]
    Busy(String),
    /// A workspace's agent could not be asked, or did not answer usably: 502, or 504 when
    /// it went silent.
    #[error("{message}")]
    Agent {
        message: String,
        code: &'static str,
        silent: bool,
        /// The workspace's name.
        workspace: String,
        detail: Option<String>,
    },
    /// The database could not be reached (or an auth lookup failed, which fails closed):
    /// answered 503 with `Retry-After`; the context goes to the log.
    #[error("platform datastore unavailable — retry shortly")]
    PlatformUnavailable(String),
    /// An org template that cannot be imported: 422 with the plan, or 412 naming the
    /// missing environment variables.
    #[error(transparent)]
    OrgRefused(OrgRefusal),
    /// Something failed inside; `message` is what the client sees, `context` goes to the log.
    #[error("{message}")]
    Internal {
        /// The client-facing message (`failed to create workspace`, …).
        message: &'static str,
        /// What went wrong, for the log.
        context: String,
    },
}

impl ApiError {
    /// A 400 with the spec's message and a detail naming the field: the app's refusal
    /// ([`app::Error::invalid`]) as the API answers it.
    pub(crate) fn bad_request(
        message: &'static str,
        code: &'static str,
        field: Option<&'static str>,
        detail: impl Into<String>,
    ) -> Self {
        app::Error::invalid(message, code, field, detail).into()
    }

    /// A 500 whose detail only the log sees ([`app::Error::internal`]).
    pub(crate) fn internal(message: &'static str, context: impl std::fmt::Display) -> Self {
        app::Error::internal(message, context).into()
    }
}

/// The application layer's errors as the API answers them: the one place an app error
/// gets its status, its stable `code` and its body's extra keys. The message is the app
/// error's own `Display`, unchanged.
impl From<app::Error> for ApiError {
    fn from(error: app::Error) -> Self {
        match error {
            app::Error::NotFound { kind, .. } => Self::NotFound {
                message: error.to_string().into(),
                code: match kind {
                    Resource::Workspace => "workspace_not_found",
                    Resource::WorkspaceToPause => "workspace_not_pausable",
                    Resource::WorkspaceToResume => "workspace_not_paused",
                    Resource::Secret => "secret_not_found",
                    Resource::Token => "token_not_found",
                    Resource::Bundle => "bundle_not_found",
                    Resource::OrgTemplate => "org_template_not_found",
                    Resource::Delegation => "delegation_not_found",
                },
            },
            app::Error::Invalid {
                message,
                code,
                field,
                reason,
            } => Self::BadRequest {
                message,
                code,
                field,
                detail: reason,
            },
            app::Error::TooLarge { field, limit } => Self::FieldTooLarge { field, limit },
            app::Error::Removed { .. } => Self::WorkspaceRemoved,
            app::Error::CursorExpired(cursor) => Self::CursorExpired {
                message: cursor.message(),
                pruned_through: match cursor {
                    Cursor::Events { pruned_through } => Some(pruned_through),
                    Cursor::Peer => None,
                },
            },
            app::Error::ConfirmationRequired { children } => {
                Self::ConfirmationRequired { children }
            }
            app::Error::Conflict { code, message } => Self::Conflict { message, code },
            app::Error::Refused { code, message } => Self::Forbidden { message, code },
            app::Error::Unauthenticated(fault) => Self::Unauthorized {
                message: fault.message(),
                code: match fault {
                    TokenFault::Missing => "workspace_auth_required",
                    TokenFault::Invalid => "invalid_workspace_token",
                },
            },
            app::Error::TooManyTokens => Self::TooManyTokens,
            app::Error::NotServing { status } => Self::WorkspaceUnavailable { status },
            app::Error::Busy { message } => Self::Busy(message),
            app::Error::Agent {
                ref name,
                ref fault,
            } => Self::Agent {
                message: error.to_string(),
                code: match fault {
                    AgentFault::Unreachable(_) => "agent_unreachable",
                    AgentFault::Silent(_) => "agent_timeout",
                    AgentFault::BadAnswer(_) => "agent_bad_answer",
                },
                silent: matches!(fault, AgentFault::Silent(_)),
                workspace: name.clone(),
                detail: match fault {
                    AgentFault::Unreachable(detail) | AgentFault::BadAnswer(detail) => {
                        Some(detail.clone())
                    }
                    AgentFault::Silent(_) => None,
                },
            },
            app::Error::Provider(error) => Self::Provider(error),
            app::Error::Unavailable(Service::Database { context }) => {
                Self::PlatformUnavailable(context)
            }
            app::Error::Unavailable(Service::Registry(unavailable)) => {
                Self::RegistryUnavailable(unavailable.to_string())
            }
            app::Error::Unavailable(Service::SecretsKeyMissing) => Self::SecretsDisabled,
            app::Error::Unavailable(Service::SecretsKeyRotated) => Self::SecretsKeyRotated,
            app::Error::SecretsUndecryptable { names } => {
                Self::SecretsUndecryptable { failed_keys: names }
            }
            app::Error::OrgRefused(refusal) => Self::OrgRefused(refusal),
            app::Error::Internal { message, context } => Self::Internal { message, context },
        }
    }
}

/// A stream that could not start answers as the app error it is.
impl From<crate::event_hub::OpenError> for ApiError {
    fn from(error: crate::event_hub::OpenError) -> Self {
        app::Error::from(error).into()
    }
}

impl ApiError {
    /// The status and stable code of each error.
    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            Self::AdminAuthRequired => (StatusCode::UNAUTHORIZED, "admin_auth_required"),
            Self::InvalidAdminToken => (StatusCode::UNAUTHORIZED, "invalid_admin_token"),
            Self::BadRequest { code, .. } => (StatusCode::BAD_REQUEST, code),
            Self::PayloadTooLarge { .. } | Self::FieldTooLarge { .. } => {
                (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large")
            }
            Self::UnsupportedMediaType => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            Self::RequestTimeout { .. } => (StatusCode::REQUEST_TIMEOUT, "request_timeout"),
            Self::NotFound { code, .. } => (StatusCode::NOT_FOUND, code),
            Self::WorkspaceRemoved => (StatusCode::GONE, "workspace_removed"),
            Self::CursorExpired { .. } => (StatusCode::GONE, "cursor_expired"),
            Self::ConfirmationRequired { .. } => (StatusCode::CONFLICT, "confirmation_required"),
            Self::RegistryUnavailable(_) => {
                (StatusCode::SERVICE_UNAVAILABLE, "registry_unavailable")
            }
            Self::RegistryReloadRefused { .. } => {
                (StatusCode::UNPROCESSABLE_ENTITY, "registry_invalid")
            }
            Self::Provider(error) => (StatusCode::UNPROCESSABLE_ENTITY, error.code()),
            Self::SecretsDisabled => (StatusCode::SERVICE_UNAVAILABLE, "secrets_key_missing"),
            Self::SecretsKeyRotated => (StatusCode::SERVICE_UNAVAILABLE, "secrets_key_rotated"),
            Self::SecretsUndecryptable { .. } => {
                (StatusCode::INTERNAL_SERVER_ERROR, "secrets_undecryptable")
            }
            Self::Unauthorized { code, .. } => (StatusCode::UNAUTHORIZED, code),
            Self::Forbidden { code, .. } => (StatusCode::FORBIDDEN, code),
            Self::Conflict { code, .. } => (StatusCode::CONFLICT, code),
            Self::TooManyTokens => (StatusCode::TOO_MANY_REQUESTS, "too_many_tokens"),
            Self::Busy(_) => (StatusCode::TOO_MANY_REQUESTS, "agent_busy"),
            Self::WorkspaceUnavailable { .. } => {
                (StatusCode::SERVICE_UNAVAILABLE, "workspace_not_available")
            }
            Self::Agent {
                code, silent: true, ..
            } => (StatusCode::GATEWAY_TIMEOUT, code),
            Self::Agent { code, .. } => (StatusCode::BAD_GATEWAY, code),
            Self::PlatformUnavailable(_) => {
                (StatusCode::SERVICE_UNAVAILABLE, "platform_unavailable")
            }
            Self::OrgRefused(OrgRefusal::Plan { .. }) => {
                (StatusCode::UNPROCESSABLE_ENTITY, "org_import_refused")
            }
            Self::OrgRefused(OrgRefusal::MissingEnv { .. }) => {
                (StatusCode::PRECONDITION_FAILED, "missing_required_env")
            }
            Self::Internal { .. } => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let message = self.to_string();
        let (status, code) = self.status_and_code();
        let mut body = json!({"error": message, "code": code});
        match self {
            Self::BadRequest { field, detail, .. } => {
                if let Some(field) = field {
                    body["field"] = json!(field);
                }
                if let Some(detail) = detail {
                    body["detail"] = json!(detail);
                }
            }
            Self::PayloadTooLarge { limit } => body["limit_bytes"] = json!(limit),
            Self::ConfirmationRequired { children } => {
                // The spec's shape: the text is under `message`, not `error`.
                body = json!({
                    "status": "confirmation_required",
                    "message": message,
                    "children": children
                        .iter()
                        .map(|(id, name)| json!({"id": id, "name": name}))
                        .collect::<Vec<_>>(),
                    "children_count": children.len(),
                    "code": code,
                });
            }
            Self::FieldTooLarge { field, limit } => {
                body["field"] = json!(field);
                body["limit_bytes"] = json!(limit);
            }
            Self::CursorExpired {
                pruned_through: Some(seq),
                ..
            } => body["pruned_through"] = json!(seq),
            Self::RegistryReloadRefused { hash_in_force, .. } => {
                body["hash_in_force"] = json!(hash_in_force);
            }
            Self::Provider(error) => body = provider_body(&error),
            Self::SecretsUndecryptable { failed_keys } => body["failed_keys"] = json!(failed_keys),
            Self::WorkspaceUnavailable {
                status: workspace_status,
            } => {
                body["status"] = json!(workspace_status);
                let mut response = (status, Json(body)).into_response();
                response.headers_mut().insert(
                    header::RETRY_AFTER,
                    HeaderValue::from(AGENT_RETRY_AFTER_SECONDS),
                );
                return response;
            }
            Self::Busy(_) => {
                let mut response = (status, Json(body)).into_response();
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECONDS));
                return response;
            }
            Self::Agent {
                workspace, detail, ..
            } => {
                body["workspace"] = json!(workspace);
                if let Some(detail) = detail {
                    body["detail"] = json!(detail);
                }
            }
            Self::OrgRefused(OrgRefusal::Plan { plan }) => body["plan"] = plan,
            Self::OrgRefused(OrgRefusal::MissingEnv { missing, template }) => {
                body["missing_env"] = json!(missing);
                body["required_env"] = json!(missing);
                body["template"] = json!(template);
                body["suggestion"] = json!(
                    "set them as global secrets (PUT /settings/secrets), or import with force=true"
                );
            }
            Self::PlatformUnavailable(context) => {
                tracing::warn!(error = %context, "database unavailable: answered 503");
                let mut response = (status, Json(body)).into_response();
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECONDS));
                return response;
            }
            Self::Internal { context, .. } => tracing::error!(error = %context, "{message}"),
            _ => {}
        }
        (status, Json(body)).into_response()
    }
}

/// The `Retry-After` of a 503 the database caused, in seconds: long enough that a crowd of
/// clients does not hammer a database on its way back, short enough that a restart or a
/// failover (seconds) costs a client one retry. A request itself may already have waited
/// up to the pool's acquire timeout (10 s) for a connection before it was answered.
pub const RETRY_AFTER_SECONDS: u16 = 5;

/// The `Retry-After` of a 503 for a workspace whose agent is not up (starting, paused,
/// offline): a start takes seconds to a minute; a client that retries sooner learns nothing.
pub const AGENT_RETRY_AFTER_SECONDS: u16 = 15;

pub(crate) use hatchery_api::ErrorBody;

/// The 422 body of a provider decision that failed closed.
fn provider_body(error: &ProviderError) -> Value {
    let mut body = json!({"error": error.to_string(), "code": error.code()});
    match error {
        ProviderError::DerivationFailed {
            runtime,
            model,
            candidates,
            ..
        } => {
            body["runtime"] = json!(runtime);
            body["model"] = json!(model);
            body["candidates"] = json!(candidates);
        }
        ProviderError::NotAllowed {
            provider,
            runtime,
            allowed,
        } => {
            body["provider"] = json!(provider);
            body["runtime"] = json!(runtime);
            body["allowed"] = json!(allowed);
        }
        ProviderError::ByokKeyMissing {
            provider,
            variables,
        } => {
            body["provider"] = json!(provider);
            body["variables"] = json!(variables);
        }
        ProviderError::PlatformKeyMissing => {}
        ProviderError::BillingModeConflict {
            requested,
            provider,
        } => {
            body["requested"] = json!(requested.as_str());
            body["provider"] = json!(provider);
        }
    }
    body
}

#[cfg(test)]
mod tests {
    use hatchery_core::{ProviderError, WorkspaceStatus};
    use serde_json::json;

    use super::ApiError;
    use crate::app::org::OrgRefusal;
    use crate::app::{self, AgentFault, Cursor, Resource, Service, TokenFault};

    /// Clients match on the message: the edge answers with the app error's own, whatever
    /// the variant.
    #[test]
    fn an_app_error_keeps_its_message_at_the_edge() {
        let errors = [
            app::Error::workspace_not_found("w"),
            app::Error::NotFound {
                kind: Resource::OrgTemplate,
                id: "team".to_owned(),
            },
            app::Error::NotFound {
                kind: Resource::Delegation,
                id: "task-1".to_owned(),
            },
            app::Error::invalid("invalid request body", "invalid_secret", Some("key"), "x"),
            app::Error::invalid_field("invalid_source", "source", "source must be".to_owned()),
            app::Error::invalid_workspace_id(),
            app::Error::TooLarge {
                field: "agent_card",
                limit: 10,
            },
            app::Error::Removed { id: "w".to_owned() },
            app::Error::CursorExpired(Cursor::Events { pruned_through: 7 }),
            app::Error::CursorExpired(Cursor::Peer),
            app::Error::ConfirmationRequired {
                children: vec![("c".to_owned(), "child".to_owned())],
            },
            app::Error::Conflict {
                code: "parent_paused",
                message: "parent is paused".to_owned(),
            },
            app::Error::Refused {
                code: "not_reachable",
                message: "not authorized".to_owned(),
            },
            app::Error::Unauthenticated(TokenFault::Missing),
            app::Error::Unauthenticated(TokenFault::Invalid),
            app::Error::TooManyTokens,
            app::Error::NotServing {
                status: WorkspaceStatus::Offline,
            },
            app::Error::Busy {
                message: "workspace Writer is busy".to_owned(),
            },
            app::Error::Agent {
                name: "Writer".to_owned(),
                fault: AgentFault::Silent(std::time::Duration::from_mins(5)),
            },
            app::Error::Agent {
                name: "Writer".to_owned(),
                fault: AgentFault::BadAnswer("HTTP 200, text/html, 12 bytes".to_owned()),
            },
            app::Error::Provider(ProviderError::PlatformKeyMissing),
            app::Error::database("connection refused"),
            app::Error::from(crate::registry_source::RegistryUnavailable {
                reason: "no snapshot".to_owned(),
            }),
            app::Error::Unavailable(Service::SecretsKeyMissing),
            app::Error::Unavailable(Service::SecretsKeyRotated),
            app::Error::SecretsUndecryptable {
                names: vec!["KEY".to_owned()],
            },
            OrgRefusal::Plan { plan: json!({}) }.into(),
            OrgRefusal::MissingEnv {
                missing: vec!["KEY".to_owned()],
                template: "team".to_owned(),
            }
            .into(),
            app::Error::internal("failed to save secret", "no such column"),
        ];
        for error in errors {
            let message = error.to_string();
            assert_eq!(ApiError::from(error).to_string(), message);
        }
    }
}
