//! A queued A2A message's life: a `message/send` its caller asked to queue
//! (`X-Hatchery-Queue: true`) when the target could not take it, `queued` until the
//! control plane hands it over (`dispatched`), then `delivered` or `failed`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Where a queued message is. Its wire string is its name in snake case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum QueuedMessageStatus {
    /// Stored, waiting for its turn or for its target to be able to take it.
    Queued,
    /// Being handed to the target's agent.
    Dispatched,
    /// The agent answered (its answer is in the activity log).
    Delivered,
    /// It could not be delivered, the agent answered with an error, or it expired; the
    /// reason is kept.
    Failed,
}

impl QueuedMessageStatus {
    /// Every status, in the order of a message's life.
    pub const ALL: [Self; 4] = [
        Self::Queued,
        Self::Dispatched,
        Self::Delivered,
        Self::Failed,
    ];

    /// Its spelling on the wire and in the database: serde's.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Dispatched => "dispatched",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
        }
    }

    /// Whether it has ended: nothing changes it any more.
    #[must_use]
    pub const fn is_finished(self) -> bool {
        matches!(self, Self::Delivered | Self::Failed)
    }
}

impl fmt::Display for QueuedMessageStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that names no queued-message status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown queued message status {0:?}")]
pub struct UnknownQueuedMessageStatus(pub String);

impl FromStr for QueuedMessageStatus {
    type Err = UnknownQueuedMessageStatus;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|status| status.as_str() == text)
            .ok_or_else(|| UnknownQueuedMessageStatus(text.to_owned()))
    }
}

impl TryFrom<String> for QueuedMessageStatus {
    type Error = UnknownQueuedMessageStatus;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        text.parse()
    }
}

#[cfg(test)]
mod tests {
    use super::QueuedMessageStatus;

    #[test]
    fn statuses_round_trip_and_only_the_last_two_are_finished() {
        for status in QueuedMessageStatus::ALL {
            assert_eq!(status.as_str().parse::<QueuedMessageStatus>(), Ok(status));
            assert_eq!(
                serde_json::to_string(&status).unwrap_or_default(),
                format!("\"{status}\"")
            );
        }
        let finished: Vec<_> = QueuedMessageStatus::ALL
            .into_iter()
            .filter(|s| s.is_finished())
            .collect();
        assert_eq!(
            finished,
            [QueuedMessageStatus::Delivered, QueuedMessageStatus::Failed]
        );
        assert!("sent".parse::<QueuedMessageStatus>().is_err());
    }
}
