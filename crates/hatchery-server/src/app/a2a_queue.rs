//! Queued A2A messages, Molecule's a2a queue: a caller that sends `message/send` with
//! `X-Hatchery-Queue: true` to a target that cannot take it now (not up, busy, not
//! answering the connection) gets `202 {"queued": true, "queue_id", …}` instead of the
//! refusal, and the control plane delivers the message when the target can.
//!
//! Delivery is the courier's (`app::delegations`), beside delegations and built the same
//! way: per target, oldest first and one at a time, claimed with a renewed lease, a target
//! not up or busy waited for with back-off, for at most [`QUEUE_TTL`]. The answer goes to
//! nobody (the caller is gone); it is traced as the proxy traces every call (`a2a_receive`
//! on the target, `a2a_send` on a calling workspace, with the response body), where the
//! caller reads it. A runner that dies mid-call leaves its message `dispatched` under a
//! lease that runs out, and another claim delivers it again: delivery is at-least-once,
//! and the agent tells a repeat by its `messageId`.

use std::time::Duration;

use bytes::Bytes;
use hatchery_api::a2a::{METHOD_SEND, QUEUE_HEADER};
use hatchery_core::WorkspaceStatus;
use hatchery_store::{Enqueued, NewQueuedMessage, QueuedMessageRow};
use serde_json::Value;

use super::a2a::{A2aAnswer, A2aCall, Caller, normalize};
use super::delegations::{MAX_ERROR_BYTES, back_off, cut, ending_of, reason};
use super::{AgentFault, App, Error, store_error};
use crate::supervision::micros;

/// How long a queued message waits for its target before it fails (`expired`).
pub const QUEUE_TTL: Duration = Duration::from_hours(24);
/// How many queued messages a listing shows, newest first.
pub const LIST_LIMIT: i64 = 50;
/// How a queued message's caller is stored when it is the operator.
const OPERATOR: &str = "operator";

/// What `POST /workspaces/:id/a2a` came to.
#[derive(Debug)]
pub enum A2aOutcome {
    /// The agent's answer.
    Answer(A2aAnswer),
    /// Queued, for the target to get later.
    Queued(Enqueued),
}

/// What one delivery of a queued message came to.
enum Step {
    Delivered,
    Failed(String),
    /// The target cannot take it now: try again later.
    Wait(String),
}

impl App {
    /// `POST /workspaces/:id/a2a`: deliver `call`, or with `queue` (the caller sent
    /// `X-Hatchery-Queue: true`), queue a `message/send` its target cannot take now (not
    /// up, busy, unreachable) or that would overtake messages already queued for it.
    /// Refusals about the call itself (unknown target, not reachable, a bad body) are
    /// never queued.
    pub async fn a2a_send(&self, call: A2aCall, queue: bool) -> Result<A2aOutcome, Error> {
        if !queue {
            return self.a2a_call(call).await.map(A2aOutcome::Answer);
        }
        let request = normalize(&call.body)?;
        if request.method != METHOD_SEND {
            return Err(Error::invalid(
                "only message/send can be queued",
                "not_queueable",
                Some(QUEUE_HEADER),
                format!(
                    "{QUEUE_HEADER} queues message/send only: the answer to {} cannot reach a \
                     caller that is gone; send it without {QUEUE_HEADER}",
                    if request.method.is_empty() {
                        "a request without a method"
                    } else {
                        &request.method
                    }
                ),
            ));
        }
        // The normalized body, so the stored message keeps the messageId it was sent with.
        let body = serde_json::to_string(&request.body)
            .map_err(|e| Error::internal("failed to queue message", e))?;
        let call = A2aCall {
            body: Bytes::from(body.clone()),
            ..call
        };
        let ahead = self
            .store
            .a2a_queue_depth(&call.target)
            .await
            .map_err(store_error("failed to look up the message queue"))?;
        if ahead == 0 {
            match self.a2a_call(call.clone()).await {
                Err(
                    Error::NotServing { .. }
                    | Error::Busy { .. }
                    | Error::Agent {
                        fault: AgentFault::Unreachable(_),
                        ..
                    },
                ) => {}
                answered => return answered.map(A2aOutcome::Answer),
            }
        } else {
            // Behind the queued ones, in order; still refused when it could never go.
            self.a2a_target(&call).await?;
        }
        let message_id = request
            .body
            .pointer("/params/message/messageId")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let enqueued = self
            .store
            .a2a_queue_insert(&NewQueuedMessage {
                workspace_id: call.target.clone(),
                caller: call.caller.header_value().to_owned(),
                method: request.method,
                body,
                message_id,
            })
            .await
            .map_err(store_error("failed to queue message"))?;
        if enqueued.created {
            self.courier.wake();
        }
        Ok(A2aOutcome::Queued(enqueued))
    }

    /// `GET /workspaces/:id/a2a/queue`: the newest [`LIST_LIMIT`] messages queued for
    /// `id`, newest first.
    pub async fn a2a_queue_list(&self, id: &str) -> Result<Vec<QueuedMessageRow>, Error> {
        self.workspace_exists(id).await?;
        self.store
            .a2a_queue_list(id, LIST_LIMIT)
            .await
            .map_err(store_error("failed to list queued messages"))
    }

    /// Deliver one claimed queued message and record how it went.
    #[tracing::instrument(skip(self, row), fields(workspace_id = %row.workspace_id, queue_id = %row.id))]
    pub(super) async fn deliver_queued(&self, row: QueuedMessageRow) {
        let owner = self.courier.owner().to_owned();
        let age = self.store.now().saturating_sub(row.created_at);
        let expired = age >= micros(QUEUE_TTL);
        let step = if expired {
            Step::Wait("it was never delivered".to_owned())
        } else {
            let renew = |until| self.store.a2a_queue_renew(&row.id, &owner, until);
            let (step, held) = self.delivering(renew, self.queued_delivery(&row)).await;
            if !held {
                tracing::warn!("lost the lease of a queued message while delivering it");
            }
            step
        };
        let step = match step {
            Step::Wait(why) if expired || age >= micros(QUEUE_TTL) => Step::Failed(cut(
                format!(
                    "expired: {why}; gave up after {}",
                    humantime::format_duration(QUEUE_TTL)
                ),
                MAX_ERROR_BYTES,
            )),
            step => step,
        };
        let written = match &step {
            Step::Delivered => self.store.a2a_queue_finish(&row.id, &owner, None).await,
            Step::Failed(error) => {
                tracing::info!(%error, "a queued message failed");
                self.store
                    .a2a_queue_finish(&row.id, &owner, Some(error))
                    .await
            }
            Step::Wait(why) => {
                let back_off = back_off(row.attempts);
                let not_before = self.store.now().saturating_add(micros(back_off));
                tracing::info!(reason = %why, ?back_off, "a queued message waits for its target");
                self.store
                    .a2a_queue_defer(&row.id, &owner, not_before, why)
                    .await
            }
        };
        match written {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!("a queued message's outcome was not recorded: its lease was lost");
            }
            Err(error) => tracing::warn!(
                %error,
                "cannot record a queued message's outcome; it is delivered again once its lease runs out"
            ),
        }
    }

    /// One try: the stored request, from its caller, through the A2A proxy (which checks
    /// the tree again and traces the call on both sides).
    async fn queued_delivery(&self, row: &QueuedMessageRow) -> Step {
        let caller = if row.caller == OPERATOR {
            Caller::Operator
        } else {
            match self.store.workspace_get(&row.caller).await {
                Err(error) => return Step::Wait(error.to_string()),
                Ok(found)
                    if found
                        .as_ref()
                        .is_none_or(|c| c.status == WorkspaceStatus::Removed) =>
                {
                    return Step::Failed("the calling workspace was removed".to_owned());
                }
                Ok(_) => Caller::Workspace(row.caller.clone()),
            }
        };
        let call = A2aCall {
            target: row.workspace_id.clone(),
            caller,
            body: Bytes::from(row.body.clone()),
        };
        match self.a2a_call(call).await {
            Ok(A2aAnswer::Json { body, .. }) => match ending_of(&row.workspace_id, &body) {
                hatchery_store::Ending::Completed { .. } => Step::Delivered,
                hatchery_store::Ending::Failed { error } => Step::Failed(error),
            },
            Ok(A2aAnswer::Stream(_)) => {
                Step::Failed("the workspace agent answered message/send with a stream".to_owned())
            }
            Err(Error::NotServing { status }) => {
                Step::Wait(format!("the workspace is not available ({status})"))
            }
            Err(Error::Busy { message }) => Step::Wait(message),
            // The connect failed, so nothing reached the agent: it may be restarting.
            Err(
                error @ Error::Agent {
                    fault: AgentFault::Unreachable(_),
                    ..
                },
            ) => Step::Wait(reason(&error)),
            Err(error) if error.is_outage() => Step::Wait(error.to_string()),
            Err(Error::NotFound { .. }) => {
                Step::Failed("the target workspace was removed".to_owned())
            }
            Err(error) => Step::Failed(cut(reason(&error), MAX_ERROR_BYTES)),
        }
    }
}
