//! A workspace's life: the statuses it can be in, the events that tell of them, and which
//! move is allowed from which status, with the event it emits. Decided here, as pure
//! functions; the store applies a decision with compare-and-set on the status it was
//! decided from, so two writers never both apply one.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Where a workspace is in its life (platform API §3). Its wire string is its name in
/// snake case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum WorkspaceStatus {
    /// Its agent is being started, or is expected to register.
    Provisioning,
    /// Its agent registered and heartbeats.
    Online,
    /// Its agent heartbeats but reports errors (or says it is wedged).
    Degraded,
    /// Its agent went silent past the liveness window.
    Offline,
    /// It could not be started; the reason is kept with it.
    Failed,
    /// Stopped by an operator, with its descendants.
    Paused,
    /// Being put to sleep (Molecule's; hatchery never sets it).
    Hibernating,
    /// Asleep (Molecule's; hatchery never sets it).
    Hibernated,
    /// Created for an agent started outside hatchery, not yet registered.
    AwaitingAgent,
    /// Deleted; kept for its history.
    Removed,
}

impl WorkspaceStatus {
    /// Every status, in the order of the table above.
    pub const ALL: [Self; 10] = [
        Self::Provisioning,
        Self::Online,
        Self::Degraded,
        Self::Offline,
        Self::Failed,
        Self::Paused,
        Self::Hibernating,
        Self::Hibernated,
        Self::AwaitingAgent,
        Self::Removed,
    ];

    /// Its spelling on the wire and in the database: serde's.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Provisioning => "provisioning",
            Self::Online => "online",
            Self::Degraded => "degraded",
            Self::Offline => "offline",
            Self::Failed => "failed",
            Self::Paused => "paused",
            Self::Hibernating => "hibernating",
            Self::Hibernated => "hibernated",
            Self::AwaitingAgent => "awaiting_agent",
            Self::Removed => "removed",
        }
    }

    /// Whether an agent answers for it: it registered and has not gone silent.
    #[must_use]
    pub const fn is_reachable(self) -> bool {
        matches!(self, Self::Online | Self::Degraded)
    }

    /// Whether the agent hatchery launched for it should be running: lost agents of these
    /// are started again.
    #[must_use]
    pub const fn wants_agent(self) -> bool {
        matches!(
            self,
            Self::Provisioning | Self::Online | Self::Degraded | Self::Offline
        )
    }
}

impl fmt::Display for WorkspaceStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that names no status (a database written by something else).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown workspace status {0:?}")]
pub struct UnknownStatus(pub String);

impl FromStr for WorkspaceStatus {
    type Err = UnknownStatus;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|status| status.as_str() == text)
            .ok_or_else(|| UnknownStatus(text.to_owned()))
    }
}

impl TryFrom<String> for WorkspaceStatus {
    type Error = UnknownStatus;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        text.parse()
    }
}

/// What happened, as the event log and the live streams name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum EventKind {
    /// Created, resumed, restarted or relaunched: an agent is on its way.
    WorkspaceProvisioning,
    /// Its agent registered, or came back.
    WorkspaceOnline,
    /// Its agent went silent.
    WorkspaceOffline,
    /// Its agent reports errors.
    WorkspaceDegraded,
    /// Its start failed.
    WorkspaceProvisionFailed,
    /// Paused.
    WorkspacePaused,
    /// Deleted.
    WorkspaceRemoved,
    /// Re-parented, renamed, or otherwise edited.
    WorkspaceMoved,
    /// Created for an agent started outside hatchery.
    WorkspaceAwaitingAgent,
    /// A heartbeat (broadcast only, never logged).
    WorkspaceHeartbeat,
    /// Its agent card changed.
    AgentCardUpdated,
    /// Its current task changed (broadcast only).
    TaskUpdated,
    /// An activity was logged (broadcast only: the activity log holds it).
    ActivityLogged,
    /// The operator's A2A message was answered (broadcast only: the activity log holds
    /// the conversation). Molecule's canvas shows the answer from it.
    #[serde(rename = "A2A_RESPONSE")]
    A2aResponse,
    /// An agent pushed a message to the operator (broadcast only: the activity log holds
    /// it).
    AgentMessage,
    /// A workspace handed a task to a peer (or recorded one its agent handed itself).
    DelegationSent,
    /// A delegation's delivery started (`working`).
    DelegationStatus,
    /// A delegation was answered.
    DelegationComplete,
    /// A delegation failed.
    DelegationFailed,
}

impl EventKind {
    /// Every kind.
    pub const ALL: [Self; 19] = [
        Self::WorkspaceProvisioning,
        Self::WorkspaceOnline,
        Self::WorkspaceOffline,
        Self::WorkspaceDegraded,
        Self::WorkspaceProvisionFailed,
        Self::WorkspacePaused,
        Self::WorkspaceRemoved,
        Self::WorkspaceMoved,
        Self::WorkspaceAwaitingAgent,
        Self::WorkspaceHeartbeat,
        Self::AgentCardUpdated,
        Self::TaskUpdated,
        Self::ActivityLogged,
        Self::A2aResponse,
        Self::AgentMessage,
        Self::DelegationSent,
        Self::DelegationStatus,
        Self::DelegationComplete,
        Self::DelegationFailed,
    ];

    /// Its spelling on the wire and in the event log (`event_type`): serde's.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::WorkspaceProvisioning => "WORKSPACE_PROVISIONING",
            Self::WorkspaceOnline => "WORKSPACE_ONLINE",
            Self::WorkspaceOffline => "WORKSPACE_OFFLINE",
            Self::WorkspaceDegraded => "WORKSPACE_DEGRADED",
            Self::WorkspaceProvisionFailed => "WORKSPACE_PROVISION_FAILED",
            Self::WorkspacePaused => "WORKSPACE_PAUSED",
            Self::WorkspaceRemoved => "WORKSPACE_REMOVED",
            Self::WorkspaceMoved => "WORKSPACE_MOVED",
            Self::WorkspaceAwaitingAgent => "WORKSPACE_AWAITING_AGENT",
            Self::WorkspaceHeartbeat => "WORKSPACE_HEARTBEAT",
            Self::AgentCardUpdated => "AGENT_CARD_UPDATED",
            Self::TaskUpdated => "TASK_UPDATED",
            Self::ActivityLogged => "ACTIVITY_LOGGED",
            Self::A2aResponse => "A2A_RESPONSE",
            Self::AgentMessage => "AGENT_MESSAGE",
            Self::DelegationSent => "DELEGATION_SENT",
            Self::DelegationStatus => "DELEGATION_STATUS",
            Self::DelegationComplete => "DELEGATION_COMPLETE",
            Self::DelegationFailed => "DELEGATION_FAILED",
        }
    }

    /// Sent to live subscribers only, never written to the event log.
    #[must_use]
    pub const fn is_broadcast_only(self) -> bool {
        matches!(
            self,
            Self::WorkspaceHeartbeat
                | Self::TaskUpdated
                | Self::ActivityLogged
                | Self::A2aResponse
                | Self::AgentMessage
        )
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that names no event kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown event kind {0:?}")]
pub struct UnknownEventKind(pub String);

impl FromStr for EventKind {
    type Err = UnknownEventKind;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|kind| kind.as_str() == text)
            .ok_or_else(|| UnknownEventKind(text.to_owned()))
    }
}

/// What an agent's heartbeat says about its health.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Health {
    /// The share of its recent calls that failed, 0 to 1.
    pub error_rate: f64,
    /// It reports itself wedged (`runtime_state: "wedged"`).
    pub wedged: bool,
    /// It reports some runtime state at all (a degraded one recovers only without one).
    pub has_runtime_state: bool,
    /// It manages its own status: its error rate is not judged.
    pub manages_itself: bool,
}

/// An error rate at or above this degrades an online workspace.
pub const DEGRADE_AT_ERROR_RATE: f64 = 0.5;
/// An error rate below this brings a degraded workspace back online (between the two it
/// stays as it is, so it does not flap).
pub const RECOVER_BELOW_ERROR_RATE: f64 = 0.1;

/// Something that would change a workspace's status.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Move {
    /// Its agent registered.
    Register,
    /// Its agent's heartbeat.
    Heartbeat(Health),
    /// Its agent stayed silent past the liveness window.
    Silence,
    /// Its start failed, or its provisioning deadline passed.
    FailStart,
    /// An operator paused it or an ancestor.
    Pause,
    /// An operator resumed it or an ancestor.
    Resume,
    /// An operator restarted it.
    Restart,
    /// hatchery lost its agent and starts it again.
    Relaunch,
    /// Deleted, with its descendants.
    Remove,
}

/// A status change and the event that tells of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    /// The status decided from (the store's compare-and-set checks it is still this).
    pub from: WorkspaceStatus,
    /// The new status.
    pub to: WorkspaceStatus,
    /// The event written with it.
    pub event: EventKind,
}

/// Why a move does not apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The workspace is removed: nothing moves it any more.
    Removed,
    /// The move does not apply to the status it is in (pausing a paused one, resuming one
    /// that is not paused, registering into a paused one).
    NotFrom(WorkspaceStatus),
}

/// What a move does to a workspace in a given status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Its status changes.
    Change(Transition),
    /// Nothing changes, and that is no error (a healthy heartbeat; silence of a workspace
    /// that is not online; a relaunch of one that should not run).
    Unchanged,
    /// The move is refused.
    Refused(Refusal),
}

impl Move {
    /// Whether it applies to the workspace's descendants as well (each decided in its own
    /// status: a paused descendant is not paused again).
    #[must_use]
    pub const fn cascades(self) -> bool {
        matches!(self, Self::Pause | Self::Resume | Self::Remove)
    }

    /// Whether a paused ancestor refuses it: what an operator paused stays paused below.
    #[must_use]
    pub const fn refused_under_paused_ancestor(self) -> bool {
        matches!(self, Self::Resume | Self::Restart)
    }
}

/// What `mv` does to a workspace in status `from`.
#[must_use]
pub fn decide(from: WorkspaceStatus, mv: Move) -> Decision {
    use EventKind as E;
    use WorkspaceStatus as S;
    let change = |to, event| Decision::Change(Transition { from, to, event });
    if from == S::Removed {
        return match mv {
            Move::Silence | Move::FailStart | Move::Relaunch => Decision::Unchanged,
            _ => Decision::Refused(Refusal::Removed),
        };
    }
    match mv {
        Move::Register => match from {
            S::Paused | S::Hibernated => Decision::Refused(Refusal::NotFrom(from)),
            _ => change(S::Online, E::WorkspaceOnline),
        },
        Move::Heartbeat(health) => heartbeat(from, health).map_or(Decision::Unchanged, |to| {
            let event = if to == S::Online {
                E::WorkspaceOnline
            } else {
                E::WorkspaceDegraded
            };
            change(to, event)
        }),
        Move::Silence => match from {
            S::Online | S::Degraded => change(S::Offline, E::WorkspaceOffline),
            _ => Decision::Unchanged,
        },
        Move::FailStart => match from {
            S::Provisioning => change(S::Failed, E::WorkspaceProvisionFailed),
            _ => Decision::Unchanged,
        },
        Move::Pause => match from {
            S::Paused => Decision::Refused(Refusal::NotFrom(from)),
            _ => change(S::Paused, E::WorkspacePaused),
        },
        Move::Resume => match from {
            S::Paused => change(S::Provisioning, E::WorkspaceProvisioning),
            _ => Decision::Refused(Refusal::NotFrom(from)),
        },
        Move::Restart => change(S::Provisioning, E::WorkspaceProvisioning),
        Move::Relaunch if from.wants_agent() => change(S::Provisioning, E::WorkspaceProvisioning),
        Move::Relaunch => Decision::Unchanged,
        Move::Remove => change(S::Removed, E::WorkspaceRemoved),
    }
}

/// The status a heartbeat moves a workspace to, if any: a heartbeat brings a starting or
/// silent workspace online; an online one degrades when wedged or failing (unless it
/// manages itself); a degraded one recovers when healthy again.
fn heartbeat(from: WorkspaceStatus, health: Health) -> Option<WorkspaceStatus> {
    use WorkspaceStatus as S;
    let judged = !health.manages_itself;
    match from {
        S::Provisioning | S::Offline => Some(S::Online),
        S::Online if health.wedged => Some(S::Degraded),
        S::Online if judged && health.error_rate >= DEGRADE_AT_ERROR_RATE => Some(S::Degraded),
        S::Degraded
            if judged
                && health.error_rate < RECOVER_BELOW_ERROR_RATE
                && !health.has_runtime_state =>
        {
            Some(S::Online)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn status() -> impl Strategy<Value = WorkspaceStatus> {
        proptest::sample::select(WorkspaceStatus::ALL.to_vec())
    }

    fn health() -> impl Strategy<Value = Health> {
        (0.0..=1.0f64, any::<bool>(), any::<bool>(), any::<bool>()).prop_map(
            |(error_rate, wedged, has_runtime_state, manages_itself)| Health {
                error_rate,
                wedged,
                has_runtime_state: has_runtime_state || wedged,
                manages_itself,
            },
        )
    }

    fn a_move() -> impl Strategy<Value = Move> {
        prop_oneof![
            Just(Move::Register),
            health().prop_map(Move::Heartbeat),
            Just(Move::Silence),
            Just(Move::FailStart),
            Just(Move::Pause),
            Just(Move::Resume),
            Just(Move::Restart),
            Just(Move::Relaunch),
            Just(Move::Remove),
        ]
    }

    fn healthy() -> Health {
        Health {
            error_rate: 0.0,
            wedged: false,
            has_runtime_state: false,
            manages_itself: false,
        }
    }

    fn to(from: WorkspaceStatus, mv: Move) -> Option<WorkspaceStatus> {
        match decide(from, mv) {
            Decision::Change(transition) => Some(transition.to),
            _ => None,
        }
    }

    proptest! {
        #[test]
        fn nothing_moves_a_removed_workspace(mv in a_move()) {
            prop_assert!(!matches!(decide(WorkspaceStatus::Removed, mv), Decision::Change(_)));
        }

        #[test]
        fn a_change_moves_somewhere_and_says_so(from in status(), mv in a_move()) {
            if let Decision::Change(transition) = decide(from, mv) {
                prop_assert_eq!(transition.from, from);
                // Register, Restart and Relaunch re-enter their own status on purpose (an
                // agent registering again; a new start of a starting workspace); nothing
                // else does.
                if transition.to == from {
                    prop_assert!(matches!(mv, Move::Register | Move::Restart | Move::Relaunch));
                }
                prop_assert!(!transition.event.is_broadcast_only(), "logged events only");
            }
        }

        #[test]
        fn pause_reaches_every_status_but_paused_and_removed(from in status()) {
            let paused = to(from, Move::Pause) == Some(WorkspaceStatus::Paused);
            prop_assert_eq!(paused, !matches!(from, WorkspaceStatus::Paused | WorkspaceStatus::Removed));
        }

        #[test]
        fn only_a_paused_workspace_resumes(from in status()) {
            let resumed = to(from, Move::Resume).is_some();
            prop_assert_eq!(resumed, from == WorkspaceStatus::Paused);
        }

        #[test]
        fn heartbeats_never_touch_held_statuses(health in health()) {
            for held in [
                WorkspaceStatus::Failed,
                WorkspaceStatus::Paused,
                WorkspaceStatus::Hibernated,
                WorkspaceStatus::AwaitingAgent,
            ] {
                prop_assert_eq!(decide(held, Move::Heartbeat(health)), Decision::Unchanged);
            }
        }

        #[test]
        fn an_agent_that_manages_itself_is_not_judged_by_its_error_rate(error_rate in 0.0..=1.0f64) {
            let health = Health { error_rate, manages_itself: true, ..healthy() };
            prop_assert_eq!(to(WorkspaceStatus::Online, Move::Heartbeat(health)), None);
        }

        #[test]
        fn wire_strings_round_trip(status in status()) {
            prop_assert_eq!(status.as_str().parse::<WorkspaceStatus>(), Ok(status));
            let json = serde_json::to_string(&status).unwrap_or_default();
            prop_assert_eq!(json, format!("\"{}\"", status.as_str()));
        }
    }

    #[test]
    fn cascades_and_ancestor_rules() {
        for mv in [Move::Pause, Move::Resume, Move::Remove] {
            assert!(mv.cascades(), "{mv:?}");
        }
        for mv in [Move::Restart, Move::Register, Move::Silence, Move::Relaunch] {
            assert!(!mv.cascades(), "{mv:?}");
        }
        assert!(Move::Resume.refused_under_paused_ancestor());
        assert!(Move::Restart.refused_under_paused_ancestor());
        assert!(!Move::Pause.refused_under_paused_ancestor());
    }

    #[test]
    fn heartbeat_thresholds_follow_the_spec() {
        use WorkspaceStatus as S;
        let beat = |error_rate, runtime_state: &str| {
            Move::Heartbeat(Health {
                error_rate,
                wedged: runtime_state == "wedged",
                has_runtime_state: !runtime_state.is_empty(),
                manages_itself: false,
            })
        };
        assert_eq!(to(S::Provisioning, beat(0.0, "")), Some(S::Online));
        assert_eq!(to(S::Offline, beat(0.9, "")), Some(S::Online));
        assert_eq!(to(S::Online, beat(0.5, "")), Some(S::Degraded));
        assert_eq!(to(S::Online, beat(0.49, "")), None);
        assert_eq!(to(S::Online, beat(0.0, "wedged")), Some(S::Degraded));
        assert_eq!(to(S::Degraded, beat(0.09, "")), Some(S::Online));
        // Hysteresis: between 0.1 and 0.5 a degraded workspace stays degraded.
        assert_eq!(to(S::Degraded, beat(0.1, "")), None);
        assert_eq!(to(S::Degraded, beat(0.0, "wedged")), None);
        // A wedged agent degrades even when it manages itself.
        let wedged_self = Health {
            wedged: true,
            has_runtime_state: true,
            manages_itself: true,
            ..healthy()
        };
        assert_eq!(
            to(S::Online, Move::Heartbeat(wedged_self)),
            Some(S::Degraded)
        );
    }

    #[test]
    fn registration_is_refused_while_held() {
        use WorkspaceStatus as S;
        assert_eq!(
            decide(S::Paused, Move::Register),
            Decision::Refused(Refusal::NotFrom(S::Paused))
        );
        assert_eq!(
            decide(S::Removed, Move::Register),
            Decision::Refused(Refusal::Removed)
        );
        assert_eq!(to(S::Failed, Move::Register), Some(S::Online));
    }

    #[test]
    fn event_kinds_round_trip_and_broadcast_only_ones_are_five() {
        for kind in EventKind::ALL {
            assert_eq!(kind.as_str().parse::<EventKind>(), Ok(kind));
            assert_eq!(
                serde_json::to_string(&kind).unwrap_or_default(),
                format!("\"{kind}\"")
            );
        }
        let broadcast_only: Vec<_> = EventKind::ALL
            .into_iter()
            .filter(|k| k.is_broadcast_only())
            .collect();
        assert_eq!(broadcast_only.len(), 5);
    }
}
