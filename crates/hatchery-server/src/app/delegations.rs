//! Delegation, in Molecule's shapes: a workspace hands a task to a peer it may reach
//! (`POST /workspaces/:id/delegate`), and the control plane delivers it in the background
//! as an A2A `message/send` from that workspace, keeping the answer; or an agent that
//! delivers a delegation itself records it (`/delegations/record`) and reports how it
//! ended (`/delegations/:did/update`). `GET /workspaces/:id/delegations` lists both kinds.
//!
//! Delivery is the courier's, a loop every replica runs beside the provisioner and built
//! the same way: a delegation is stored `pending`, claimed with a lease (`working`), and
//! ended `completed` with the agent's answer or `failed` with the reason. A target that is
//! not up (starting, offline, paused) or busy (429) is waited for, with back-off, for
//! [`DELIVERY_WINDOW`]. A runner that dies mid-call (a restart, a crash) leaves its
//! delegation `working` under a lease that runs out; another claim then delivers it
//! again, so delivery is at-least-once: an agent may get the same task twice, with the
//! same `messageId` (the delegation id) to tell.

use std::time::Duration;

use bytes::Bytes;
use hatchery_api::delegations as wire;
use hatchery_core::{DelegationStatus, EventKind, WorkspaceStatus};
use hatchery_store::{
    DelegationInsert, DelegationReport, DelegationRow, Ending, NewDelegation, NewEvent,
};
use serde_json::{Value, json};
use tokio::sync::Notify;

use super::a2a::{A2aAnswer, A2aCall, Caller};
use super::agents::MAX_REPORTED_TEXT;
use super::limits::{MAX_ACTIVITY_BODY_BYTES, check_size};
use super::{AgentFault, App, Error, Resource, store_error};
use crate::supervision::{OutageLog, micros};

/// The longest task, in bytes: an activity body's limit (the task travels in one).
pub const MAX_TASK_BYTES: usize = MAX_ACTIVITY_BODY_BYTES;
/// The longest answer kept (`response_preview` of an update; a delivered answer beyond
/// it is cut), in bytes.
pub const MAX_RESULT_BYTES: usize = MAX_ACTIVITY_BODY_BYTES;
/// The longest reason a delegation failed, in bytes: what an agent reports of its errors
/// elsewhere (a heartbeat's `sample_error`).
pub const MAX_ERROR_BYTES: usize = MAX_REPORTED_TEXT;
/// The longest idempotency key, in bytes.
pub const MAX_IDEMPOTENCY_KEY_BYTES: usize = 256;
/// The longest id an agent gives a delegation it records, in bytes.
pub const MAX_DELEGATION_ID_BYTES: usize = 128;
/// How many delegations a listing shows, newest first (Molecule's 50).
pub const LIST_LIMIT: i64 = 50;
/// How long a delegation waits for its target to be up before it fails (Molecule gives a
/// delivery 30 minutes).
pub const DELIVERY_WINDOW: Duration = Duration::from_mins(30);

/// How often the courier looks for work when nobody wakes it (another replica's
/// delegations, back-offs that ran out, leases of a runner that died).
const POLL: Duration = Duration::from_secs(1);
/// Deliveries one replica runs at once: each mostly waits for an agent.
const MAX_DELIVERIES: usize = 32;
/// The longest wait between two tries of a target that is not up.
const MAX_BACK_OFF: Duration = Duration::from_mins(1);
/// Ended delegations older than the activity retention are deleted this often.
const PRUNE_EVERY: Duration = Duration::from_hours(6);

/// The courier's state: its name on the leases it takes, and how to wake it.
#[derive(Debug)]
pub struct Courier {
    owner: String,
    wake: Notify,
}

impl Courier {
    /// Wake it: there is new work.
    pub(super) fn wake(&self) {
        self.wake.notify_one();
    }

    /// Its name on the leases it takes.
    pub(super) fn owner(&self) -> &str {
        &self.owner
    }
}

impl Default for Courier {
    fn default() -> Self {
        Self {
            owner: format!("courier-{}", uuid::Uuid::new_v4().simple()),
            wake: Notify::new(),
        }
    }
}

/// What `POST /workspaces/:id/delegate` came to.
#[derive(Debug)]
pub enum DelegateOutcome {
    /// A new delegation, on its way.
    Created(DelegationRow),
    /// The delegation the idempotency key already names; nothing new is delivered.
    Existing(DelegationRow),
}

/// What one delivery came to.
enum Step {
    /// The delegation ended.
    End(Ending),
    /// The target is not up: try again later.
    Wait(String),
}

impl App {
    /// `POST /workspaces/:id/delegate`: `source` hands `request.task` to a workspace it
    /// may reach. Stored `pending` with its event (`DELEGATION_SENT`) and delivered in the
    /// background; an idempotency key that names an earlier delegation (one that did not
    /// fail) answers that one instead.
    #[tracing::instrument(skip(self, request), fields(workspace_id = %source))]
    pub async fn delegation_create(
        &self,
        source: &str,
        request: wire::Delegate,
    ) -> Result<DelegateOutcome, Error> {
        const INVALID: &str = "invalid delegation request";
        let target = target_id(request.target_id.as_deref(), INVALID)?;
        let task = task(request.task, INVALID)?;
        let key = request.idempotency_key.filter(|k| !k.is_empty());
        if key
            .as_ref()
            .is_some_and(|k| k.len() > MAX_IDEMPOTENCY_KEY_BYTES)
        {
            return Err(Error::invalid(
                INVALID,
                "invalid_request_body",
                Some("idempotency_key"),
                format!("idempotency_key must be at most {MAX_IDEMPOTENCY_KEY_BYTES} bytes"),
            ));
        }
        if target == source {
            // Molecule's reason: an agent that delegates to itself waits on itself.
            return Err(Error::invalid_field(
                "self_delegation",
                "target_id",
                "self-delegation not permitted".to_owned(),
            ));
        }
        self.workspace_live(source).await?;
        if let Some(key) = &key
            && let Some(earlier) = self
                .store
                .delegation_by_key(source, key)
                .await
                .map_err(store_error("failed to look up delegation"))?
            && earlier.status != DelegationStatus::Failed
        {
            return Ok(DelegateOutcome::Existing(earlier));
        }
        self.check_target(source, &target).await?;
        let delegation = NewDelegation {
            workspace_id: source.to_owned(),
            delegation_id: uuid::Uuid::new_v4().hyphenated().to_string(),
            target_id: target,
            task,
            self_managed: false,
            idempotency_key: key,
        };
        let inserted = self
            .store
            .delegation_insert(&delegation, &sent_event(&delegation))
            .await
            .map_err(store_error("failed to store delegation"))?;
        Ok(match inserted {
            DelegationInsert::Created(row) => {
                self.hub.poke();
                self.courier.wake.notify_one();
                DelegateOutcome::Created(row)
            }
            // A concurrent request with the same key won.
            DelegationInsert::Existing(row) => DelegateOutcome::Existing(row),
        })
    }

    /// `POST /workspaces/:id/delegations/record`: a delegation `source`'s agent delivers
    /// itself, stored `working` with its event (`DELEGATION_SENT`). Recording the same
    /// delegation again (same id, target and task) answers the same; the same id for
    /// another task is a conflict.
    #[tracing::instrument(skip(self, request), fields(workspace_id = %source))]
    pub async fn delegation_record(
        &self,
        source: &str,
        request: wire::RecordDelegation,
    ) -> Result<String, Error> {
        const INVALID: &str = "invalid request body";
        let target = target_id(request.target_id.as_deref(), INVALID)?;
        let task = task(request.task, INVALID)?;
        let id = request.delegation_id.unwrap_or_default();
        if id.is_empty() {
            return Err(Error::invalid(
                INVALID,
                "invalid_request_body",
                Some("delegation_id"),
                "delegation_id is required",
            ));
        }
        if id.len() > MAX_DELEGATION_ID_BYTES
            || !id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
        {
            return Err(Error::invalid(
                INVALID,
                "invalid_request_body",
                Some("delegation_id"),
                format!(
                    "delegation_id must be 1 to {MAX_DELEGATION_ID_BYTES} letters, digits, \
                     '-', '_', '.' or ':'"
                ),
            ));
        }
        self.workspace_live(source).await?;
        self.check_target(source, &target).await?;
        let delegation = NewDelegation {
            workspace_id: source.to_owned(),
            delegation_id: id,
            target_id: target,
            task,
            self_managed: true,
            idempotency_key: None,
        };
        let inserted = self
            .store
            .delegation_insert(&delegation, &sent_event(&delegation))
            .await
            .map_err(store_error("failed to record delegation"))?;
        match inserted {
            DelegationInsert::Created(row) => {
                self.hub.poke();
                Ok(row.delegation_id)
            }
            DelegationInsert::Existing(row)
                if row.self_managed
                    && row.target_id == delegation.target_id
                    && row.task == delegation.task =>
            {
                Ok(row.delegation_id)
            }
            DelegationInsert::Existing(row) => Err(Error::Conflict {
                code: "delegation_exists",
                message: format!(
                    "delegation {} already exists, for another task: record each delegation \
                     under an id of its own",
                    row.delegation_id
                ),
            }),
        }
    }

    /// `POST /workspaces/:id/delegations/:did/update`: how a delegation `source`'s agent
    /// recorded ended, with its event (`DELEGATION_COMPLETE` or `DELEGATION_FAILED`). The
    /// same report again changes nothing; a delegation the control plane delivers, or one
    /// that ended otherwise, is a conflict.
    #[tracing::instrument(skip(self, request), fields(workspace_id = %source))]
    pub async fn delegation_update(
        &self,
        source: &str,
        delegation_id: &str,
        request: wire::UpdateDelegation,
    ) -> Result<DelegationStatus, Error> {
        const INVALID: &str = "invalid request body";
        let ending = match request.status.as_deref() {
            None | Some("") => {
                return Err(Error::invalid(
                    INVALID,
                    "invalid_request_body",
                    Some("status"),
                    "status is required",
                ));
            }
            Some("completed") => {
                let result = request.response_preview.unwrap_or_default();
                check_size("response_preview", result.len(), MAX_RESULT_BYTES)?;
                Ending::Completed { result }
            }
            Some("failed") => {
                let error = request.error.unwrap_or_default();
                check_size("error", error.len(), MAX_ERROR_BYTES)?;
                Ending::Failed { error }
            }
            Some(_) => {
                return Err(Error::invalid_field(
                    "invalid_request_body",
                    "status",
                    "status must be 'completed' or 'failed'".to_owned(),
                ));
            }
        };
        self.workspace_live(source).await?;
        let Some(row) = self
            .store
            .delegation_get(source, delegation_id)
            .await
            .map_err(store_error("failed to look up delegation"))?
        else {
            return Err(delegation_not_found(delegation_id));
        };
        let report = self
            .store
            .delegation_update(source, delegation_id, &ending, &ended_event(&row, &ending))
            .await
            .map_err(store_error("failed to update delegation"))?;
        let status = ending.status();
        match report {
            DelegationReport::Updated => {
                self.hub.poke();
                Ok(status)
            }
            DelegationReport::NotFound => Err(delegation_not_found(delegation_id)),
            DelegationReport::NotSelfManaged => Err(Error::Conflict {
                code: "delegation_not_self_managed",
                message: format!(
                    "delegation {delegation_id} is delivered by the control plane, which \
                     records how it ends; only a delegation recorded with \
                     /delegations/record is updated by its agent"
                ),
            }),
            DelegationReport::Finished(already) if already == status => Ok(status),
            DelegationReport::Finished(already) => Err(Error::Conflict {
                code: "delegation_finished",
                message: format!("delegation {delegation_id} already ended: {already}"),
            }),
        }
    }

    /// `GET /workspaces/:id/delegations`: the newest [`LIST_LIMIT`] delegations of
    /// `source`, newest first.
    pub async fn delegation_list(&self, source: &str) -> Result<Vec<DelegationRow>, Error> {
        self.workspace_exists(source).await?;
        self.store
            .delegation_list(source, LIST_LIMIT)
            .await
            .map_err(store_error("failed to list delegations"))
    }

    /// The target of a delegation from `source`: a workspace that exists, is not removed,
    /// and that `source` may reach by the org tree (spec §6).
    async fn check_target(&self, source: &str, target: &str) -> Result<(), Error> {
        self.store
            .workspace_get(target)
            .await
            .map_err(store_error("failed to look up workspace"))?
            .filter(|row| row.status != WorkspaceStatus::Removed)
            .ok_or_else(|| Error::workspace_not_found(target))?;
        if self.reachable(source, target).await? {
            Ok(())
        } else {
            Err(Error::Refused {
                code: "not_reachable",
                message: "access denied: workspaces cannot communicate per hierarchy rules"
                    .to_owned(),
            })
        }
    }

    /// Deliver delegations and queued A2A messages (see `app::a2a_queue`) until the
    /// process stops: claim the oldest due one of each, deliver them beside the others (at
    /// most [`MAX_DELIVERIES`] at once), and every [`PRUNE_EVERY`] delete ended ones older
    /// than the activity retention. A delivery that panics is logged; its lease runs out
    /// and it is delivered again.
    pub async fn run_delegations(self) {
        let mut in_flight = tokio::task::JoinSet::new();
        let mut outage = OutageLog::new("the delegation courier");
        let mut last_prune = None::<std::time::Instant>;
        loop {
            if last_prune.is_none_or(|at| at.elapsed() >= PRUNE_EVERY) {
                last_prune = Some(std::time::Instant::now());
                let before = self
                    .store
                    .now()
                    .saturating_sub(micros(self.supervision.activity_retention));
                if let Err(error) = self.store.delegation_prune(before).await {
                    tracing::warn!(%error, "cannot delete old delegations; trying again later");
                }
                if let Err(error) = self.store.a2a_queue_prune(before).await {
                    tracing::warn!(%error, "cannot delete old queued messages; trying again later");
                }
            }
            if in_flight.len() < MAX_DELIVERIES {
                let lease_until = self
                    .store
                    .now()
                    .saturating_add(micros(self.supervision.job_lease));
                // The first claim says the delivery started; a second (after a wait or a
                // lost runner) says nothing new.
                let claimed = self
                    .store
                    .delegation_claim(&self.courier.owner, lease_until, |row| {
                        (row.attempts == 1).then(|| status_event(row))
                    })
                    .await;
                // A queued message is claimed beside each delegation, so neither kind
                // keeps the other waiting.
                let queued = self
                    .store
                    .a2a_queue_claim(&self.courier.owner, lease_until)
                    .await;
                match (claimed, queued) {
                    (Err(error), _) | (_, Err(error)) => outage.failed(&error),
                    (Ok(None), Ok(None)) => outage.succeeded(),
                    (Ok(delegation), Ok(message)) => {
                        outage.succeeded();
                        if let Some(row) = delegation {
                            self.hub.poke();
                            let app = self.clone();
                            in_flight.spawn(async move { app.deliver(row).await });
                        }
                        if let Some(row) = message {
                            let app = self.clone();
                            in_flight.spawn(async move { app.deliver_queued(row).await });
                        }
                        continue;
                    }
                }
            }
            tokio::select! {
                () = self.courier.wake.notified() => {}
                () = tokio::time::sleep(POLL) => {}
                Some(done) = in_flight.join_next(), if !in_flight.is_empty() => {
                    if let Err(error) = done {
                        tracing::error!(%error, "a delegation's delivery failed inside; it is delivered again once its lease runs out");
                    }
                }
            }
        }
    }

    /// Deliver one claimed delegation and record how it went. Any answer of the agent,
    /// a JSON-RPC error included, ends it; a target that is not up makes it wait.
    #[tracing::instrument(skip(self, row), fields(workspace_id = %row.workspace_id, delegation_id = %row.delegation_id))]
    async fn deliver(&self, row: DelegationRow) {
        let owner = self.courier.owner.clone();
        let renew = |until| self.store.delegation_renew(&row.row_id, &owner, until);
        let (step, held) = self.delivering(renew, self.delivery(&row)).await;
        if !held {
            // Another runner took it over; what it records stands.
            tracing::warn!("lost the lease of a delegation while delivering it");
        }
        let step = match step {
            Step::Wait(reason)
                if self.store.now().saturating_sub(row.created_at) >= micros(DELIVERY_WINDOW) =>
            {
                Step::End(Ending::Failed {
                    error: cut(
                        format!(
                            "{reason}; gave up after {}",
                            humantime::format_duration(DELIVERY_WINDOW)
                        ),
                        MAX_ERROR_BYTES,
                    ),
                })
            }
            step => step,
        };
        let written = match &step {
            Step::End(ending) => {
                self.store
                    .delegation_finish(&row.row_id, &owner, ending, &ended_event(&row, ending))
                    .await
            }
            Step::Wait(reason) => {
                let back_off = back_off(row.attempts);
                let not_before = self.store.now().saturating_add(micros(back_off));
                tracing::info!(%reason, ?back_off, "delegation waits for its target");
                self.store
                    .delegation_defer(&row.row_id, &owner, not_before, reason)
                    .await
            }
        };
        match written {
            Ok(true) => {
                if matches!(step, Step::End(_)) {
                    self.hub.poke();
                }
            }
            Ok(false) => {
                tracing::warn!("a delegation's outcome was not recorded: its lease was lost");
            }
            Err(error) => tracing::warn!(
                %error,
                "cannot record a delegation's outcome; it is delivered again once its lease runs out"
            ),
        }
    }

    /// One try: the task as a `message/send` from the delegating workspace, through the
    /// A2A proxy (which checks the tree again and traces the call on both sides).
    async fn delivery(&self, row: &DelegationRow) -> Step {
        let read = store_error("failed to look up workspace");
        let source = self.store.workspace_get(&row.workspace_id).await;
        let target = self.store.workspace_get(&row.target_id).await;
        let (source, target) = match (source.map_err(&read), target.map_err(&read)) {
            (Ok(source), Ok(target)) => (source, target),
            (Err(error), _) | (_, Err(error)) => return Step::Wait(error.to_string()),
        };
        if source.is_none_or(|s| s.status == WorkspaceStatus::Removed) {
            return Step::End(Ending::Failed {
                error: "the delegating workspace was removed".to_owned(),
            });
        }
        let name = target.map_or_else(|| row.target_id.clone(), |t| t.name);
        let body = json!({
            "method": hatchery_api::a2a::METHOD_SEND,
            "params": {"message": {
                "role": "user",
                // The delegation's id: an agent that gets it twice (delivery is
                // at-least-once) can tell.
                "messageId": row.delegation_id,
                "parts": [{"kind": "text", "text": row.task}],
                "metadata": {"delegation_id": row.delegation_id},
            }},
        });
        let call = A2aCall {
            target: row.target_id.clone(),
            caller: Caller::Workspace(row.workspace_id.clone()),
            body: Bytes::from(body.to_string()),
        };
        match self.a2a_call(call).await {
            Ok(A2aAnswer::Json { body, .. }) => Step::End(ending_of(&name, &body)),
            Ok(A2aAnswer::Stream(_)) => Step::End(Ending::Failed {
                error: format!("workspace agent {name} answered message/send with a stream"),
            }),
            Err(Error::NotServing { status }) => {
                Step::Wait(format!("workspace {name} is not available ({status})"))
            }
            // Nothing was delivered: the target (or this workspace) has as many messages
            // in flight as it may.
            Err(Error::Busy { message }) => Step::Wait(message),
            Err(error) if error.is_outage() => Step::Wait(error.to_string()),
            Err(error) => Step::End(Ending::Failed {
                error: cut(reason(&error), MAX_ERROR_BYTES),
            }),
        }
    }

    /// Run `work` while renewing its lease with `renew` (given the new end; `false` when
    /// it is no longer held); also whether it is still held.
    pub(super) async fn delivering<T, R, F>(
        &self,
        renew: R,
        work: impl Future<Output = T>,
    ) -> (T, bool)
    where
        R: Fn(i64) -> F,
        F: Future<Output = Result<bool, hatchery_store::StoreError>>,
    {
        let every = (self.supervision.job_lease / 3).max(Duration::from_millis(10));
        let mut work = std::pin::pin!(work);
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        let mut held = true;
        loop {
            tokio::select! {
                done = &mut work => return (done, held),
                _ = tick.tick(), if held => {
                    let until = self
                        .store
                        .now()
                        .saturating_add(micros(self.supervision.job_lease));
                    // A database that cannot answer leaves it held: the outcome's write
                    // finds out.
                    held = renew(until).await.unwrap_or(true);
                }
            }
        }
    }
}

/// How long a delivery that found its target not up waits before its next try, after
/// `attempts` tries: 1 s, doubling, at most [`MAX_BACK_OFF`].
pub(super) fn back_off(attempts: i64) -> Duration {
    Duration::from_secs(1 << u32::try_from(attempts.clamp(1, 7) - 1).unwrap_or(0)).min(MAX_BACK_OFF)
}

/// The body's `target_id`: present and a workspace id.
fn target_id(text: Option<&str>, invalid: &'static str) -> Result<String, Error> {
    let text = text.filter(|t| !t.is_empty()).ok_or_else(|| {
        Error::invalid(
            invalid,
            "invalid_request_body",
            Some("target_id"),
            "target_id is required",
        )
    })?;
    super::workspaces::parse_workspace_id(text).map_err(|_| {
        Error::invalid_field(
            "invalid_request_body",
            "target_id",
            "target_id must be a valid UUID".to_owned(),
        )
    })
}

/// The body's `task`: present, not blank, within its limit.
fn task(text: Option<String>, invalid: &'static str) -> Result<String, Error> {
    let task = text.filter(|t| !t.trim().is_empty()).ok_or_else(|| {
        Error::invalid(
            invalid,
            "invalid_request_body",
            Some("task"),
            "task is required",
        )
    })?;
    check_size("task", task.len(), MAX_TASK_BYTES)?;
    Ok(task)
}

fn delegation_not_found(id: &str) -> Error {
    Error::NotFound {
        kind: Resource::Delegation,
        id: id.to_owned(),
    }
}

/// How the agent's JSON-RPC answer ends a delegation: its text, or its error.
pub(super) fn ending_of(name: &str, body: &[u8]) -> Ending {
    let answer: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    if let Some(error) = answer.get("error") {
        let message = error
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or("no message");
        let code = error
            .get("code")
            .map_or_else(String::new, |c| format!(" ({c})"));
        return Ending::Failed {
            error: cut(
                format!("workspace agent {name} answered with an error: {message}{code}"),
                MAX_ERROR_BYTES,
            ),
        };
    }
    Ending::Completed {
        result: cut(answer_text(&answer), MAX_RESULT_BYTES),
    }
}

/// The text of an answer, as Molecule reads it: the result's text parts, else its
/// artifacts' (a task's), else its status message's, else the whole answer as JSON.
fn answer_text(answer: &Value) -> String {
    let texts = |parts: Option<&Value>| -> Option<String> {
        let texts: Vec<&str> = parts?
            .as_array()?
            .iter()
            .filter(|part| part.get("kind").or_else(|| part.get("type")) == Some(&json!("text")))
            .filter_map(|part| part.get("text").and_then(Value::as_str))
            .collect();
        (!texts.is_empty()).then(|| texts.join("\n"))
    };
    let result = &answer["result"];
    texts(result.get("parts"))
        .or_else(|| {
            let artifacts = result.get("artifacts")?.as_array()?;
            let joined: Vec<String> = artifacts
                .iter()
                .filter_map(|artifact| texts(artifact.get("parts")))
                .collect();
            (!joined.is_empty()).then(|| joined.join("\n"))
        })
        .or_else(|| texts(result.pointer("/status/message/parts")))
        .unwrap_or_else(|| answer.to_string())
}

/// Why a delivery failed, in words: the error's message, with what happened where there
/// is more to say (an agent's fault); internal context stays in the log.
pub(super) fn reason(error: &Error) -> String {
    match error {
        Error::Agent {
            fault: AgentFault::Unreachable(detail) | AgentFault::BadAnswer(detail),
            ..
        } => format!("{error}: {detail}"),
        Error::Internal { .. } => {
            tracing::warn!(error = %error.detail(), "a delegation failed inside");
            error.to_string()
        }
        error => error.to_string(),
    }
}

/// `text` cut to at most `limit` bytes, at a character boundary.
pub(super) fn cut(mut text: String, limit: usize) -> String {
    if text.len() > limit {
        let mut end = limit;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

/// The first `limit` characters of `text`, with `...` when there is more (Molecule's
/// previews).
#[must_use]
pub fn preview(text: &str, limit: usize) -> String {
    match text.char_indices().nth(limit) {
        Some((end, _)) => format!("{}...", &text[..end]),
        None => text.to_owned(),
    }
}

fn event(kind: EventKind, row_workspace: &str, payload: &Value) -> NewEvent {
    NewEvent::about(kind, row_workspace, payload.to_string())
}

/// `DELEGATION_SENT`: `{delegation_id, target_id, task_preview}`.
fn sent_event(delegation: &NewDelegation) -> NewEvent {
    event(
        EventKind::DelegationSent,
        &delegation.workspace_id,
        &json!({
            "delegation_id": delegation.delegation_id,
            "target_id": delegation.target_id,
            "task_preview": preview(&delegation.task, 100),
        }),
    )
}

/// `DELEGATION_STATUS`: `{delegation_id, target_id, status: "working"}`.
fn status_event(row: &DelegationRow) -> NewEvent {
    event(
        EventKind::DelegationStatus,
        &row.workspace_id,
        &json!({
            "delegation_id": row.delegation_id,
            "target_id": row.target_id,
            "status": DelegationStatus::Working,
        }),
    )
}

/// `DELEGATION_COMPLETE` `{delegation_id, target_id, response_preview}` or
/// `DELEGATION_FAILED` `{delegation_id, target_id, error}`.
fn ended_event(row: &DelegationRow, ending: &Ending) -> NewEvent {
    match ending {
        Ending::Completed { result } => event(
            EventKind::DelegationComplete,
            &row.workspace_id,
            &json!({
                "delegation_id": row.delegation_id,
                "target_id": row.target_id,
                "response_preview": preview(result, 200),
            }),
        ),
        Ending::Failed { error } => event(
            EventKind::DelegationFailed,
            &row.workspace_id,
            &json!({
                "delegation_id": row.delegation_id,
                "target_id": row.target_id,
                "error": error,
            }),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_reads_as_molecule_reads_it() {
        let message = json!({"jsonrpc": "2.0", "id": 1, "result": {"kind": "message",
            "parts": [{"kind": "text", "text": "one"}, {"kind": "file"}, {"kind": "text", "text": "two"}]}});
        assert_eq!(answer_text(&message), "one\ntwo");
        let task = json!({"jsonrpc": "2.0", "id": 1, "result": {"kind": "task",
            "artifacts": [{"parts": [{"type": "text", "text": "made"}]}]}});
        assert_eq!(answer_text(&task), "made");
        let bare = json!({"jsonrpc": "2.0", "id": 1, "result": {"kind": "task"}});
        assert_eq!(answer_text(&bare), bare.to_string());
        let failed = ending_of(
            "Writer",
            br#"{"jsonrpc":"2.0","id":1,"error":{"code":-32601,"message":"method not found"}}"#,
        );
        assert_eq!(
            failed,
            Ending::Failed {
                error: "workspace agent Writer answered with an error: method not found (-32601)"
                    .to_owned()
            }
        );
    }

    #[test]
    fn previews_and_cuts_respect_characters() {
        assert_eq!(preview("héllo", 3), "hél...");
        assert_eq!(preview("hé", 3), "hé");
        assert_eq!(cut("héllo".to_owned(), 2), "h");
        assert_eq!(cut("hello".to_owned(), 10), "hello");
    }
}
