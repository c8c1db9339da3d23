//! What the application layer fails with, by what it means: nothing by that id, a request
//! the rules refuse, a conflict with the current state, a dependency that is away, a
//! failure inside. The HTTP edge (`crate::error`) picks the status and the body; the
//! provisioner asks [`Error::is_transient`] whether a start is worth another try.
//!
//! `Display` is the message a client reads, exactly as the platform API has it (clients
//! match on it; a failed node of an org import and a failed start record it too). Internal
//! context (a database error, say) is kept apart, for the log.

use hatchery_core::{ProviderError, WorkspaceStatus};

use super::access::MAX_LIVE_TOKENS;
use super::org::OrgRefusal;
use crate::registry_source::RegistryUnavailable;

/// Why an application function refused or failed.
#[derive(Debug, thiserror::Error)]
#[allow(missing_docs)] // the fields' names say what they hold
pub enum Error {
    /// Nothing of that kind by that id or name.
    #[error("{}", .kind.not_found_message(.id))]
    NotFound {
        /// What was looked for.
        kind: Resource,
        /// The id or name asked for.
        id: String,
    },
    /// A request the rules refuse, before anything is written.
    #[error("{message}")]
    Invalid {
        /// The platform API's message (`invalid workspace fields`, …), or the specific
        /// reason where the API answers that way (PATCH).
        message: String,
        /// The stable code.
        code: &'static str,
        /// The field to blame, when one is.
        field: Option<&'static str>,
        /// The specific reason, naming the field.
        reason: Option<String>,
    },
    /// One field is larger than the server keeps.
    #[error("{field} is too large (limit {limit} bytes)")]
    TooLarge {
        field: &'static str,
        /// Its limit in bytes.
        limit: usize,
    },
    /// The workspace is removed: it can be read, not changed.
    #[error("workspace is removed")]
    Removed { id: String },
    /// A page cursor that no longer points into what is kept: the client reads again
    /// from the start.
    #[error("{}", .0.message())]
    CursorExpired(Cursor),
    /// A delete of a workspace with live children, without `confirm=true`.
    #[error("This workspace has sub-workspaces. Delete with ?confirm=true to cascade delete.")]
    ConfirmationRequired {
        /// The live children: `(id, name)`.
        children: Vec<(String, String)>,
    },
    /// The request conflicts with the current state (a paused parent, an org already
    /// imported, …).
    #[error("{message}")]
    Conflict {
        /// The stable code.
        code: &'static str,
        /// What conflicts, and what to do.
        message: String,
    },
    /// The caller is known but may not do this.
    #[error("{message}")]
    Refused {
        /// The stable code.
        code: &'static str,
        /// The platform API's message.
        message: String,
    },
    /// A workspace credential is missing or wrong.
    #[error("{}", .0.message())]
    Unauthenticated(TokenFault),
    /// A workspace already holds the most live tokens allowed.
    #[error("maximum {} active tokens per workspace", MAX_LIVE_TOKENS)]
    TooManyTokens,
    /// The workspace asked for has no URL or is not up.
    #[error("workspace not available")]
    NotServing { status: WorkspaceStatus },
    /// Too many messages in flight to that workspace, or from the calling one.
    #[error("{message}")]
    Busy { message: String },
    /// A workspace's agent could not be asked, or did not answer usably.
    #[error("{}", .fault.message(.name))]
    Agent {
        /// The workspace's name, for people.
        name: String,
        fault: AgentFault,
    },
    /// The provider or billing decision failed closed.
    #[error(transparent)]
    Provider(#[from] ProviderError),
    /// Something this server depends on is away or unusable.
    #[error(transparent)]
    Unavailable(Service),
    /// Stored secrets did not decrypt: a partial bundle is never returned.
    #[error("one or more secrets failed to decrypt; refusing to return partial bundle")]
    SecretsUndecryptable {
        /// The names that failed.
        names: Vec<String>,
    },
    /// An org template that cannot be imported: nothing was written.
    #[error(transparent)]
    OrgRefused(#[from] OrgRefusal),
    /// Something failed inside: `message` is what the client reads, `context` what the
    /// log needs.
    #[error("{message}")]
    Internal {
        /// What was being done (`failed to create workspace`, …).
        message: &'static str,
        /// What went wrong.
        context: String,
    },
}

/// How a workspace's agent failed a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentFault {
    /// Nothing answers where the agent should be: the detail says what was tried.
    Unreachable(String),
    /// It sent nothing for this long.
    Silent(std::time::Duration),
    /// It answered with something that is not JSON-RPC: the detail describes it (status,
    /// type, size), never its bytes.
    BadAnswer(String),
}

impl AgentFault {
    /// The message a client reads, naming the workspace.
    fn message(&self, name: &str) -> String {
        match self {
            Self::Unreachable(_) => format!("failed to reach workspace agent {name}"),
            Self::Silent(limit) => format!(
                "workspace agent {name} did not answer within {}",
                humantime::format_duration(*limit)
            ),
            Self::BadAnswer(_) => {
                format!("workspace agent {name} answered with something that is not JSON-RPC")
            }
        }
    }
}

/// What a [`Error::NotFound`] looked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    /// A workspace.
    Workspace,
    /// A workspace that can be paused (it exists and is not paused yet).
    WorkspaceToPause,
    /// A paused workspace, to resume.
    WorkspaceToResume,
    /// A secret, by scope and name.
    Secret,
    /// A live token of the workspace.
    Token,
    /// A live workspace to export as a bundle.
    Bundle,
    /// An org template of the templates directory.
    OrgTemplate,
    /// A delegation of the workspace, by its id.
    Delegation,
}

impl Resource {
    /// The platform API's message for "no such `self` as `id`".
    fn not_found_message(self, id: &str) -> std::borrow::Cow<'static, str> {
        match self {
            Self::Workspace => "workspace not found".into(),
            Self::WorkspaceToPause => "workspace not found or already paused".into(),
            Self::WorkspaceToResume => "workspace not found or not paused".into(),
            Self::Secret => "secret not found".into(),
            Self::Token => "token not found or already revoked".into(),
            Self::Bundle => "bundle not found".into(),
            Self::OrgTemplate => format!("org template not found: {id}").into(),
            Self::Delegation => "delegation not found".into(),
        }
    }
}

/// Which cursor expired, and what the client does about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cursor {
    /// An event cursor below what retention deleted.
    Events {
        /// The highest event seq retention deleted.
        pruned_through: i64,
    },
    /// A peer cursor that is no longer a peer (purged, or moved elsewhere).
    Peer,
}

impl Cursor {
    /// What the client is told.
    #[must_use]
    pub const fn message(self) -> &'static str {
        match self {
            Self::Events { .. } => {
                "cursor expired: events after it were deleted by retention \
                (HATCHERY_EVENT_RETENTION); re-read the current state (GET /workspaces) and \
                resume from the newest seq of GET /events"
            }
            Self::Peer => {
                "cursor expired: that workspace is no longer a peer; list the peers again from \
                the start (without after)"
            }
        }
    }
}

/// What is wrong with a workspace credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenFault {
    /// No bearer where one is needed.
    Missing,
    /// A bearer that is not a live token of that workspace.
    Invalid,
}

impl TokenFault {
    /// What the client is told.
    #[must_use]
    pub const fn message(self) -> &'static str {
        match self {
            Self::Missing => "missing workspace auth token",
            Self::Invalid => "invalid workspace auth token",
        }
    }
}

/// What is away when an [`Error::Unavailable`] answers.
#[derive(Debug, thiserror::Error)]
pub enum Service {
    /// The database could not be reached (or an auth lookup failed, which fails closed).
    #[error("platform datastore unavailable — retry shortly")]
    Database {
        /// What was being done, and the database's error.
        context: String,
    },
    /// No registry snapshot is in force: nothing that needs a provider may proceed.
    #[error(transparent)]
    Registry(#[from] RegistryUnavailable),
    /// The server has no secrets key: secrets cannot be stored or read.
    #[error(
        "secrets are disabled on this server: set HATCHERY_SECRETS_KEY (32 random bytes in base64) and restart"
    )]
    SecretsKeyMissing,
    /// The secrets key was rotated while this server ran with the previous one.
    #[error("the secrets key was rotated; restart the server with the new HATCHERY_SECRETS_KEY")]
    SecretsKeyRotated,
}

impl From<RegistryUnavailable> for Error {
    fn from(unavailable: RegistryUnavailable) -> Self {
        Self::Unavailable(Service::Registry(unavailable))
    }
}

impl Error {
    /// A request the rules refuse: the platform API's `message`, the stable `code`, the
    /// field to blame and the specific `reason`.
    #[must_use]
    pub fn invalid(
        message: &'static str,
        code: &'static str,
        field: Option<&'static str>,
        reason: impl Into<String>,
    ) -> Self {
        Self::Invalid {
            message: message.to_owned(),
            code,
            field,
            reason: Some(reason.into()),
        }
    }

    /// A refusal whose message is itself the specific reason, naming `field` (PATCH, and
    /// the activity filters, answer this way).
    #[must_use]
    pub fn invalid_field(code: &'static str, field: &'static str, message: String) -> Self {
        Self::Invalid {
            message,
            code,
            field: Some(field),
            reason: None,
        }
    }

    /// A path id that is not a workspace id.
    #[must_use]
    pub fn invalid_workspace_id() -> Self {
        Self::Invalid {
            message: "invalid workspace ID".to_owned(),
            code: "invalid_workspace_id",
            field: None,
            reason: None,
        }
    }

    /// No workspace `id`.
    #[must_use]
    pub fn workspace_not_found(id: &str) -> Self {
        Self::NotFound {
            kind: Resource::Workspace,
            id: id.to_owned(),
        }
    }

    /// A failure inside while doing `message`; `context` is for the log only.
    #[must_use]
    pub fn internal(message: &'static str, context: impl std::fmt::Display) -> Self {
        Self::Internal {
            message,
            context: context.to_string(),
        }
    }

    /// The database could not be reached.
    #[must_use]
    pub fn database(context: impl std::fmt::Display) -> Self {
        Self::Unavailable(Service::Database {
            context: context.to_string(),
        })
    }

    /// Whether the database was away: weather, not a bug, and over when it is back.
    #[must_use]
    pub fn is_outage(&self) -> bool {
        matches!(self, Self::Unavailable(Service::Database { .. }))
    }

    /// Whether the same work, tried again a little later, may succeed. True for a database
    /// that was away and for a failure inside (a statement or a blocking task that failed
    /// once); a later try costs little, and the provisioner bounds its tries. False for
    /// every answer about the request or the server's setup (a refusal, a missing secrets
    /// key, a rotated one, secrets that do not decrypt, no registry in force): trying
    /// again would get the same answer until a person acts.
    #[must_use]
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::Unavailable(Service::Database { .. }) | Self::Internal { .. }
        )
    }

    /// What the log says: the message with the internal context a client never reads.
    #[must_use]
    pub fn detail(&self) -> String {
        match self {
            Self::Unavailable(Service::Database { context }) => context.clone(),
            Self::Internal { message, context } => format!("{message}: {context}"),
            error => error.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Error, Service};

    /// The provisioner's retry decision: a start is tried again only when a later try may
    /// go otherwise.
    #[test]
    fn only_an_outage_or_a_failure_inside_is_worth_another_try() {
        assert!(Error::database("connection refused").is_transient());
        assert!(Error::internal("failed to read secrets", "no such column").is_transient());
        for lasting in [
            Error::Unavailable(Service::SecretsKeyMissing),
            Error::Unavailable(Service::SecretsKeyRotated),
            Error::SecretsUndecryptable {
                names: vec!["KEY".to_owned()],
            },
            Error::workspace_not_found("w"),
            Error::invalid(
                "invalid request body",
                "invalid_secret",
                Some("key"),
                "empty",
            ),
        ] {
            assert!(!lasting.is_transient(), "{lasting:?}");
        }
        assert!(Error::database("away").is_outage());
        assert!(!Error::internal("failed", "bug").is_outage());
    }
}
