//! A delegation's life: a task one workspace hands to a peer, in Molecule's four statuses
//! (`GET /workspaces/:id/delegations`). The control plane carries a delegation made with
//! `POST /workspaces/:id/delegate` (`pending` until its delivery starts, `working` while
//! the peer's agent is asked, then `completed` or `failed`); an agent that delegates by
//! itself records its delegation `working` and reports how it ended.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Where a delegation is. Its wire string is its name in snake case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum DelegationStatus {
    /// Stored, not being delivered: waiting for its turn, or for its target to be up.
    Pending,
    /// The target's agent has the task: the control plane is waiting for its answer, or
    /// (recorded by an agent) the delegating agent is.
    Working,
    /// The target answered; the answer is kept.
    Completed,
    /// It could not be delivered or the target failed it; the reason is kept.
    Failed,
}

impl DelegationStatus {
    /// Every status, in the order of a delegation's life.
    pub const ALL: [Self; 4] = [Self::Pending, Self::Working, Self::Completed, Self::Failed];

    /// Its spelling on the wire and in the database: serde's.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Working => "working",
            Self::Completed => "completed",
            Self::Failed => "failed",
        }
    }

    /// Whether it has ended: nothing changes it any more.
    #[must_use]
    pub const fn is_finished(self) -> bool {
        matches!(self, Self::Completed | Self::Failed)
    }
}

impl fmt::Display for DelegationStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that names no delegation status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown delegation status {0:?}")]
pub struct UnknownDelegationStatus(pub String);

impl FromStr for DelegationStatus {
    type Err = UnknownDelegationStatus;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|status| status.as_str() == text)
            .ok_or_else(|| UnknownDelegationStatus(text.to_owned()))
    }
}

impl TryFrom<String> for DelegationStatus {
    type Error = UnknownDelegationStatus;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        text.parse()
    }
}

#[cfg(test)]
mod tests {
    use super::DelegationStatus;

    #[test]
    fn statuses_round_trip_and_only_the_last_two_are_finished() {
        for status in DelegationStatus::ALL {
            assert_eq!(status.as_str().parse::<DelegationStatus>(), Ok(status));
            assert_eq!(
                serde_json::to_string(&status).unwrap_or_default(),
                format!("\"{status}\"")
            );
        }
        let finished: Vec<_> = DelegationStatus::ALL
            .into_iter()
            .filter(|s| s.is_finished())
            .collect();
        assert_eq!(
            finished,
            [DelegationStatus::Completed, DelegationStatus::Failed]
        );
        assert!("in_progress".parse::<DelegationStatus>().is_err());
    }
}
