//! Agents talking back: register, heartbeat and update-card here; discovery and peers in
//! `discovery.rs`; the sweeps that decide from silence (liveness expiry, the provisioning
//! deadline) in `sweeps.rs`; which URLs an agent may register in `url_rules.rs`.
//!
//! Heartbeats are the hot path. A beat that changes a status is written at once, with its
//! event; a beat that changes none only replaces the workspace's entry in an in-memory
//! buffer, and the buffer is written in one transaction every flush interval. So thousands
//! of agents beating at once cost one write per agent per interval, not one per beat.

use std::collections::HashMap;
use std::sync::Mutex;

use hatchery_core::{Decision, EventKind, Health, Move, Transition, WorkspaceStatus};
use hatchery_store::{AgentSnapshot, LiveState, Registered, Registration};
use serde::Deserialize;
use serde_json::{Value, json};

use super::access::{RegisterAuth, mint};
use super::limits::{MAX_AGENT_CARD_BYTES, MAX_AGENT_URL_BYTES, check_size};
use super::{App, Error, TokenFault, store_error};

mod discovery;
mod sweeps;
mod url_rules;

use crate::event_hub::StreamEvent;
pub use url_rules::check_agent_url;

/// The longest `current_task` / `sample_error` kept, in bytes.
pub const MAX_REPORTED_TEXT: usize = 4096;
/// The largest `monthly_spend` accepted, in cents.
const MAX_MONTHLY_SPEND: i64 = 1_000_000_000_000;
/// `POST /registry/register` refuses with this message whatever is wrong with the body.
pub(crate) const INVALID_BODY: &str = "invalid request body";

/// `POST /registry/register`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct Register {
    /// The workspace.
    #[schema(required, value_type = String, format = Uuid)]
    pub id: Option<String>,
    /// Where the agent serves A2A: `http` or `https`; private, loopback and documentation
    /// addresses are refused (`localhost` is allowed by name).
    #[schema(required, value_type = String)]
    pub url: Option<String>,
    /// Any JSON; stored and returned as given.
    #[schema(required, value_type = Object)]
    pub agent_card: Option<Value>,
}

/// `POST /registry/heartbeat`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct Heartbeat {
    /// The workspace.
    #[schema(required, value_type = String, format = Uuid)]
    pub workspace_id: Option<String>,
    /// 0–1.
    #[schema(minimum = 0.0, maximum = 1.0)]
    pub error_rate: Option<f64>,
    /// An example error.
    #[schema(max_length = 4096)]
    pub sample_error: Option<String>,
    /// Tasks in flight.
    #[schema(minimum = 0)]
    pub active_tasks: Option<i64>,
    /// Seconds since the agent started.
    #[schema(minimum = 0)]
    pub uptime_seconds: Option<i64>,
    /// What it works on; `""` when idle.
    #[schema(max_length = 4096)]
    pub current_task: Option<String>,
    /// Cents spent this month; 0 leaves the stored figure unchanged; clamped to 0–10¹².
    pub monthly_spend: Option<i64>,
    /// `""` or `wedged`.
    #[schema(pattern = "^(wedged)?$")]
    pub runtime_state: Option<String>,
    /// `{capabilities: {name: bool}, idle_timeout_seconds}`.
    pub runtime_metadata: Option<RuntimeMetadata>,
}

/// What an agent declares about itself in a heartbeat.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct RuntimeMetadata {
    /// Named capabilities; `status_mgmt` means the agent manages its own status.
    #[serde(default)]
    pub capabilities: HashMap<String, bool>,
    /// Unused by the control plane yet; accepted.
    pub idle_timeout_seconds: Option<i64>,
}

/// `POST /registry/update-card`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct UpdateCard {
    /// The workspace.
    #[schema(required, value_type = String, format = Uuid)]
    pub workspace_id: Option<String>,
    /// The new card.
    #[schema(required, value_type = Object)]
    pub agent_card: Option<Value>,
}

/// A token's `last_used_at` is written at most this often (bookkeeping, not security).
const TOKEN_TOUCH_EVERY: i64 = 60 * 1_000_000;

/// Heartbeats that changed no status, waiting to be written.
#[derive(Debug, Default)]
pub struct HeartbeatBuffer {
    pending: Mutex<HashMap<String, AgentSnapshot>>,
    /// When each token's use was last written.
    touched: Mutex<HashMap<String, i64>>,
}

impl HeartbeatBuffer {
    fn put(&self, id: &str, mut snapshot: AgentSnapshot) {
        if let Some(token_id) = snapshot.token_id.take() {
            let mut touched = self
                .touched
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let due = touched
                .get(&token_id)
                .is_none_or(|at| snapshot.seen_at - at >= TOKEN_TOUCH_EVERY);
            if due {
                if touched.len() >= 100_000 {
                    touched.clear();
                }
                touched.insert(token_id.clone(), snapshot.seen_at);
                snapshot.token_id = Some(token_id);
            }
        }
        let mut pending = self.lock();
        // A beat whose token use is not yet written keeps that use for the flush.
        let carried = pending.get(id).and_then(|old| old.token_id.clone());
        if snapshot.token_id.is_none() {
            snapshot.token_id = carried;
        }
        pending.insert(id.to_owned(), snapshot);
    }

    pub(crate) fn forget(&self, id: &str) {
        self.lock().remove(id);
    }

    fn current_task(&self, id: &str) -> Option<String> {
        self.lock().get(id).map(|s| s.current_task.clone())
    }

    /// How many heartbeats wait for the next flush.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether none wait.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    fn take(&self) -> Vec<(String, AgentSnapshot)> {
        self.lock().drain().collect()
    }

    /// Put back what a failed flush took, unless a newer beat arrived meanwhile.
    fn restore(&self, snapshots: Vec<(String, AgentSnapshot)>) {
        let mut pending = self.lock();
        for (id, snapshot) in snapshots {
            pending.entry(id).or_insert(snapshot);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, AgentSnapshot>> {
        // A panic while holding this lock cannot leave the map half-updated.
        self.pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn invalid_body(detail: impl Into<String>) -> Error {
    Error::invalid(INVALID_BODY, "invalid_request_body", None, detail)
}

pub(crate) fn invalid_field(field: &'static str, detail: impl Into<String>) -> Error {
    Error::invalid(INVALID_BODY, "invalid_request_body", Some(field), detail)
}

/// A workspace id from a body: present and a UUID.
pub(crate) fn body_id(id: Option<&str>, field: &'static str) -> Result<String, Error> {
    let id = id
        .filter(|id| !id.is_empty())
        .ok_or_else(|| invalid_field(field, format!("{field} is required")))?;
    super::workspaces::parse_workspace_id(id)
        .map_err(|_| invalid_field(field, format!("{field} must be a workspace UUID")))
}

/// The id a register or heartbeat body names (for the gate, before the rest is checked).
pub fn register_id(body: &Register) -> Result<String, Error> {
    body_id(body.id.as_deref(), "id")
}

/// See [`register_id`].
pub fn heartbeat_id(body: &Heartbeat) -> Result<String, Error> {
    body_id(body.workspace_id.as_deref(), "workspace_id")
}

/// See [`register_id`].
pub fn update_card_id(body: &UpdateCard) -> Result<String, Error> {
    body_id(body.workspace_id.as_deref(), "workspace_id")
}

/// Check a heartbeat's numbers and texts; the snapshot to store.
fn snapshot_of(
    body: &Heartbeat,
    seen_at: i64,
    token_id: Option<String>,
) -> Result<AgentSnapshot, Error> {
    let error_rate = body.error_rate.unwrap_or(0.0);
    if !(0.0..=1.0).contains(&error_rate) {
        return Err(invalid_field(
            "error_rate",
            "error_rate must be between 0 and 1",
        ));
    }
    let active_tasks = body.active_tasks.unwrap_or(0);
    if active_tasks < 0 {
        return Err(invalid_field(
            "active_tasks",
            "active_tasks must not be negative",
        ));
    }
    let uptime_seconds = body.uptime_seconds.unwrap_or(0);
    if uptime_seconds < 0 {
        return Err(invalid_field(
            "uptime_seconds",
            "uptime_seconds must not be negative",
        ));
    }
    let current_task = body.current_task.clone().unwrap_or_default();
    if current_task.len() > MAX_REPORTED_TEXT {
        return Err(invalid_field(
            "current_task",
            format!("current_task must be at most {MAX_REPORTED_TEXT} bytes"),
        ));
    }
    let sample_error = body.sample_error.clone().unwrap_or_default();
    if sample_error.len() > MAX_REPORTED_TEXT {
        return Err(invalid_field(
            "sample_error",
            format!("sample_error must be at most {MAX_REPORTED_TEXT} bytes"),
        ));
    }
    let runtime_state = body.runtime_state.clone().unwrap_or_default();
    if !matches!(runtime_state.as_str(), "" | "wedged") {
        return Err(invalid_field(
            "runtime_state",
            "runtime_state must be \"\" or \"wedged\"",
        ));
    }
    let monthly_spend = body
        .monthly_spend
        .filter(|spend| *spend != 0)
        .map(|spend| spend.clamp(0, MAX_MONTHLY_SPEND));
    let status_mgmt = body
        .runtime_metadata
        .as_ref()
        .map(|m| m.capabilities.get("status_mgmt").copied().unwrap_or(false));
    Ok(AgentSnapshot {
        error_rate,
        sample_error,
        active_tasks,
        uptime_seconds,
        current_task,
        monthly_spend,
        runtime_state,
        status_mgmt,
        seen_at,
        token_id,
    })
}

/// The status change a heartbeat makes, with its event payload; `None` for none.
fn heartbeat_transition(state: &LiveState, beat: &AgentSnapshot) -> Option<(Transition, Value)> {
    let health = Health {
        error_rate: beat.error_rate,
        wedged: beat.runtime_state == "wedged",
        has_runtime_state: !beat.runtime_state.is_empty(),
        manages_itself: beat.status_mgmt.unwrap_or(state.status_mgmt),
    };
    let Decision::Change(transition) = hatchery_core::decide(state.status, Move::Heartbeat(health))
    else {
        return None;
    };
    let payload = match (transition.from, transition.to) {
        (WorkspaceStatus::Provisioning, _) => {
            json!({"recovered_from": WorkspaceStatus::Provisioning})
        }
        (_, WorkspaceStatus::Degraded) if health.wedged => {
            json!({"runtime_state": beat.runtime_state, "sample_error": beat.sample_error})
        }
        (_, WorkspaceStatus::Degraded) => json!({
            "error_rate": crate::wire::go_number(beat.error_rate),
            "sample_error": beat.sample_error,
        }),
        _ => json!({}),
    };
    Some((transition, payload))
}

impl App {
    /// Register an agent. Returns the workspace token when one was issued.
    pub async fn register(
        &self,
        id: &str,
        auth: RegisterAuth,
        body: Register,
    ) -> Result<Option<String>, Error> {
        let url = body
            .url
            .filter(|u| !u.is_empty())
            .ok_or_else(|| invalid_field("url", "url is required"))?;
        let card = body
            .agent_card
            .filter(|c| !c.is_null())
            .ok_or_else(|| invalid_field("agent_card", "agent_card is required"))?;
        check_size("url", url.len(), MAX_AGENT_URL_BYTES)?;
        let card_text = card.to_string();
        check_size("agent_card", card_text.len(), MAX_AGENT_CARD_BYTES)?;
        check_agent_url(&url).await.map_err(invalid_body)?;
        let token = mint(id, hatchery_store::TokenKind::Workspace, None);
        let bootstrap_token_id = match &auth {
            RegisterAuth::Bootstrap { token_id } => Some(token_id.as_str()),
            RegisterAuth::Ordinary => None,
        };
        let registered = self
            .store
            .register(&Registration {
                id,
                url: &url,
                agent_card: &card_text,
                new_token: &token.stored,
                always_issue: bootstrap_token_id.is_some(),
                bootstrap_token_id,
            })
            .await
            .map_err(store_error("failed to register"))?;
        match registered {
            Registered::Online {
                token_issued,
                provisioned_in,
            } => {
                if let Some(micros) = provisioned_in {
                    self.metrics.provisioned(micros);
                }
                self.heartbeats.forget(id);
                self.hub.poke();
                tracing::info!(workspace_id = id, url, "agent registered");
                Ok(token_issued.then_some(token.plaintext))
            }
            Registered::NotFound => Err(Error::workspace_not_found(id)),
            Registered::Removed => Err(Error::Removed { id: id.to_owned() }),
            Registered::Refused(status) => Err(Error::Conflict {
                code: "workspace_not_registrable",
                message: format!("workspace is {status}: resume it before it registers"),
            }),
            Registered::BootstrapSpent => Err(Error::Unauthenticated(TokenFault::Invalid)),
        }
    }

    /// Apply a heartbeat.
    pub async fn heartbeat(
        &self,
        id: &str,
        token_id: Option<String>,
        body: &Heartbeat,
    ) -> Result<(), Error> {
        let seen_at = self.store.now();
        let beat = snapshot_of(body, seen_at, token_id)?;
        self.metrics.heartbeat();
        let state = self
            .store
            .live_state(id)
            .await
            .map_err(store_error("failed to record heartbeat"))?
            .ok_or_else(|| Error::workspace_not_found(id))?;
        if state.status == WorkspaceStatus::Removed {
            return Err(Error::Removed { id: id.to_owned() });
        }
        let previous_task = self
            .heartbeats
            .current_task(id)
            .unwrap_or_else(|| state.current_task.clone());
        let task_changed = previous_task != beat.current_task;
        let (current_task, active_tasks, uptime) = (
            beat.current_task.clone(),
            beat.active_tasks,
            beat.uptime_seconds,
        );
        match heartbeat_transition(&state, &beat) {
            Some((transition, payload)) => {
                self.heartbeats.forget(id);
                let changed = self
                    .store
                    .heartbeat_transition(id, transition, &beat, payload.to_string())
                    .await
                    .map_err(store_error("failed to record heartbeat"))?;
                if changed {
                    self.hub.poke();
                } else {
                    // The status moved on meanwhile (another replica, a sweep): keep the
                    // numbers; the next beat decides again.
                    self.heartbeats.put(id, beat);
                }
            }
            None => self.heartbeats.put(id, beat),
        }
        let now = seen_at;
        if task_changed {
            self.hub.broadcast(|| {
                StreamEvent::new(
                    None,
                    EventKind::TaskUpdated.as_str(),
                    Some(id),
                    &json!({"current_task": current_task, "active_tasks": active_tasks}),
                    now,
                )
            });
        }
        self.hub.broadcast(|| {
            StreamEvent::new(
                None,
                EventKind::WorkspaceHeartbeat.as_str(),
                Some(id),
                &json!({"active_tasks": active_tasks, "uptime_seconds": uptime}),
                now,
            )
        });
        Ok(())
    }

    /// Write the buffered heartbeats. A failure keeps them for the next flush.
    pub async fn flush_heartbeats(&self) {
        if let Err(error) = self.try_flush_heartbeats().await {
            tracing::warn!(%error, "cannot write heartbeats; will retry");
        }
    }

    /// [`App::flush_heartbeats`], saying why it failed rather than logging it (the flush
    /// loop logs an outage once, not every flush).
    pub async fn try_flush_heartbeats(&self) -> Result<(), hatchery_store::StoreError> {
        let snapshots = self.heartbeats.take();
        if snapshots.is_empty() {
            return Ok(());
        }
        let flushed = self.store.heartbeat_flush(&snapshots).await;
        if flushed.is_err() {
            self.heartbeats.restore(snapshots);
        }
        flushed
    }

    /// Store a new agent card.
    pub async fn update_card(&self, id: &str, body: UpdateCard) -> Result<(), Error> {
        let card = body
            .agent_card
            .filter(|c| !c.is_null())
            .ok_or_else(|| invalid_field("agent_card", "agent_card is required"))?;
        let card_text = card.to_string();
        check_size("agent_card", card_text.len(), MAX_AGENT_CARD_BYTES)?;
        match self
            .store
            .update_card(id, &card_text)
            .await
            .map_err(store_error("failed to update card"))?
        {
            None => Err(Error::workspace_not_found(id)),
            Some(false) => Err(Error::Removed { id: id.to_owned() }),
            Some(true) => {
                self.hub.poke();
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn beat(error_rate: f64, runtime_state: &str) -> AgentSnapshot {
        AgentSnapshot {
            error_rate,
            sample_error: String::new(),
            active_tasks: 0,
            uptime_seconds: 0,
            current_task: String::new(),
            monthly_spend: None,
            runtime_state: runtime_state.to_owned(),
            status_mgmt: None,
            seen_at: 0,
            token_id: None,
        }
    }

    fn state(status: WorkspaceStatus, status_mgmt: bool) -> LiveState {
        LiveState {
            status,
            current_task: String::new(),
            status_mgmt,
        }
    }

    /// The rules themselves are `hatchery_core::lifecycle`'s (tested there); here, what the
    /// app adds: the event payloads, and the stored "manages itself" flag.
    #[test]
    fn heartbeat_transitions_carry_their_reasons() {
        use WorkspaceStatus as S;
        let change = |status, beat_: &AgentSnapshot| {
            heartbeat_transition(&state(status, false), beat_).map(|(t, payload)| (t.to, payload))
        };
        assert_eq!(
            change(S::Provisioning, &beat(0.0, "")),
            Some((S::Online, json!({"recovered_from": "provisioning"})))
        );
        assert_eq!(
            change(S::Online, &beat(0.0, "wedged")),
            Some((
                S::Degraded,
                json!({"runtime_state": "wedged", "sample_error": ""})
            ))
        );
        assert_eq!(
            change(S::Online, &beat(0.5, "")),
            Some((S::Degraded, json!({"error_rate": 0.5, "sample_error": ""})))
        );
        assert_eq!(
            change(S::Degraded, &beat(0.0, "")),
            Some((S::Online, json!({})))
        );
        assert_eq!(change(S::Online, &beat(0.1, "")), None);
        // The stored flag counts when the beat does not say; the beat wins when it does.
        assert!(heartbeat_transition(&state(S::Online, true), &beat(0.9, "")).is_none());
        let mut judged = beat(0.9, "");
        judged.status_mgmt = Some(false);
        assert!(heartbeat_transition(&state(S::Online, true), &judged).is_some());
    }
}
