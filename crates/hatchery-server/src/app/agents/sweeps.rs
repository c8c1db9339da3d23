//! What the control plane concludes from silence: liveness expiry, and the provisioning
//! deadline of a workspace whose agent never registered.

use crate::app::{App, Error, store_error};
use crate::supervision::micros;

impl App {
    /// Mark `offline` what has been silent past the TTL.
    pub async fn sweep_liveness(&self) -> Result<usize, Error> {
        // Our own buffered beats first: they are the freshest word on liveness.
        self.flush_heartbeats().await;
        let now = self.store.now();
        let cutoff = now.saturating_sub(micros(self.supervision.heartbeat_ttl));
        let external_cutoff = now.saturating_sub(micros(self.supervision.external_heartbeat_ttl));
        let expired = self
            .store
            .expire_silent(cutoff, external_cutoff)
            .await
            .map_err(store_error("liveness sweep failed"))?;
        for id in &expired {
            tracing::warn!(workspace_id = %id, ttl = ?self.supervision.heartbeat_ttl, "no heartbeat within the TTL: offline");
        }
        if !expired.is_empty() {
            self.metrics.expired(expired.len());
            self.hub.poke();
        }
        Ok(expired.len())
    }

    /// Fail what has been `provisioning` past its runtime's deadline, saying what was last
    /// seen so a person can act on it.
    pub async fn sweep_provisioning(&self) -> Result<usize, Error> {
        let now = self.store.now();
        let waiting = self
            .store
            .provisioning()
            .await
            .map_err(store_error("provisioning sweep failed"))?;
        let mut failed = Vec::new();
        for workspace in waiting {
            let timeout = self.supervision.provision_timeout_of(&workspace.runtime);
            if now.saturating_sub(workspace.provisioning_since) <= micros(timeout) {
                continue;
            }
            let reason = provisioning_failure(&workspace, timeout);
            let changed = self
                .store
                .fail_provisioning(&workspace.id, workspace.provisioning_since, &reason)
                .await
                .map_err(store_error("provisioning sweep failed"))?;
            if changed {
                tracing::warn!(workspace_id = %workspace.id, %reason, "provisioning deadline passed: failed");
                failed.push(workspace.id);
            }
        }
        if !failed.is_empty() {
            self.metrics.provisioning_failed(failed.len());
            self.hub.poke();
            // An agent that never registered in time must not linger (nor its credentials).
            self.stop_agents(&failed).await;
        }
        Ok(failed.len())
    }
}

/// What a person reads when a workspace never came up.
fn provisioning_failure(
    workspace: &hatchery_store::Provisioning,
    timeout: std::time::Duration,
) -> String {
    let within = humantime::format_duration(timeout);
    let last_seen = match (workspace.job_state.as_deref(), workspace.job_attempts) {
        (None, _) => "no provision job was queued, so nothing was started: start its agent with a bootstrap token, or restart the workspace".to_owned(),
        (Some("pending"), Some(0) | None) => "its provision job was never claimed: is a provisioning backend running?".to_owned(),
        (Some("pending"), Some(attempts)) => format!("its provision job is still pending after {attempts} attempt(s): see the server log for the backend's errors"),
        (Some(state), attempts) => format!(
            "its provision job is {state} after {} attempt(s): the agent was started but never registered; see GET /workspaces/{}/logs",
            attempts.unwrap_or(0),
            workspace.id
        ),
    };
    format!(
        "no agent registered within {within} of provisioning ({} runtime); {last_seen}",
        workspace.runtime
    )
}
