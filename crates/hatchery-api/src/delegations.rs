//! Delegation, in Molecule's shapes: `POST /workspaces/:id/delegate` (the control plane
//! delivers a task to a peer), `GET /workspaces/:id/delegations`, and
//! `POST /workspaces/:id/delegations/record` and `/delegations/:did/update` for an agent
//! that delivers its delegations itself.
//!
//! Request fields are optional here so that a missing one is refused in the platform
//! API's words, naming it, rather than by the JSON reader.

use hatchery_core::DelegationStatus;
use serde::{Deserialize, Serialize};

/// `POST /workspaces/:id/delegate`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Delegate {
    /// The workspace that gets the task: one the delegating workspace may reach.
    #[cfg_attr(feature = "openapi", schema(format = Uuid))]
    pub target_id: Option<String>,
    /// The task, as the target's agent reads it (the text of a `message/send`).
    pub task: Option<String>,
    /// A key of the caller's: a second request with the same key answers the same
    /// delegation (unless it failed) instead of delegating again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
}

/// What `POST /workspaces/:id/delegate` says of the delegation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum DelegateStatus {
    /// A new delegation, stored and on its way (202).
    Delegated,
    /// An earlier one with the same idempotency key, pending.
    Pending,
    /// An earlier one, being delivered.
    Working,
    /// An earlier one, answered.
    Completed,
    /// An earlier one that failed (only in a race: a failed delegation gives its key up,
    /// and the retry delegates again).
    Failed,
}

impl From<DelegationStatus> for DelegateStatus {
    fn from(status: DelegationStatus) -> Self {
        match status {
            DelegationStatus::Pending => Self::Pending,
            DelegationStatus::Working => Self::Working,
            DelegationStatus::Completed => Self::Completed,
            DelegationStatus::Failed => Self::Failed,
        }
    }
}

/// The answer of `POST /workspaces/:id/delegate`: 202 for a new delegation, 200 for the
/// one an idempotency key already named.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DelegateAnswer {
    /// The delegation's id (a UUID).
    pub delegation_id: String,
    /// `delegated`, or the earlier delegation's status.
    pub status: DelegateStatus,
    /// The workspace that gets the task.
    #[cfg_attr(feature = "openapi", schema(format = Uuid))]
    pub target_id: String,
    /// `true` when the idempotency key named an earlier delegation.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub idempotent_hit: bool,
}

/// `POST /workspaces/:id/delegations/record`: a delegation the agent delivers itself.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RecordDelegation {
    /// The workspace that got the task: one the delegating workspace may reach.
    #[cfg_attr(feature = "openapi", schema(format = Uuid))]
    pub target_id: Option<String>,
    /// The task.
    pub task: Option<String>,
    /// The agent's own id for it (its task id): 1 to 128 letters, digits, `-`, `_`, `.`
    /// or `:`.
    pub delegation_id: Option<String>,
}

/// `recorded`: the only answer of a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum RecordStatus {
    /// Stored, `working`.
    Recorded,
}

/// The answer of `POST /workspaces/:id/delegations/record` (202).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RecordAnswer {
    /// The agent's id for it.
    pub delegation_id: String,
    /// `recorded`.
    pub status: RecordStatus,
}

/// `POST /workspaces/:id/delegations/:did/update`: how a recorded delegation ended.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UpdateDelegation {
    /// `completed` or `failed`.
    pub status: Option<String>,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The answer (or its beginning).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_preview: Option<String>,
}

/// The answer of `POST /workspaces/:id/delegations/:did/update`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UpdateAnswer {
    /// `completed` or `failed`, as reported.
    pub status: DelegationStatus,
    /// The delegation.
    pub delegation_id: String,
}

/// An element of `GET /workspaces/:id/delegations`, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DelegationView {
    /// The delegation's id (as `delegation_id`).
    pub id: String,
    /// Always `delegation`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The delegating workspace.
    #[cfg_attr(feature = "openapi", schema(format = Uuid))]
    pub source_id: String,
    /// The workspace that got the task.
    #[cfg_attr(feature = "openapi", schema(format = Uuid))]
    pub target_id: String,
    /// One line for people: `Delegating to <target>`, `Delegation completed (<answer>)`,
    /// `Delegation failed`.
    pub summary: String,
    /// Where it is.
    pub status: DelegationStatus,
    /// When it was made, RFC 3339 in UTC.
    pub created_at: String,
    /// When its status last changed, RFC 3339 in UTC.
    pub updated_at: String,
    /// The delegation's id.
    pub delegation_id: String,
    /// Why it failed, or (pending) why its delivery waits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The answer's first 300 characters (`...` when there is more).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_preview: Option<String>,
}
