//! Lifecycle moves asked for by people or tools: pause (cascades down), resume (self and
//! paused descendants), restart. Each is one transaction with its events and jobs.

use hatchery_core::WorkspaceStatus;
use hatchery_store::LifecycleOutcome;

use super::{App, Error, Resource, store_error};

fn ancestor_paused(name: &str) -> Error {
    Error::Conflict {
        message: format!("parent workspace \"{name}\" is paused — resume it first"),
        code: "parent_paused",
    }
}

impl App {
    /// Pause a workspace and its descendants; how many were paused.
    pub async fn pause(&self, id: &str) -> Result<usize, Error> {
        let outcome = self
            .store
            .pause(id)
            .await
            .map_err(store_error("failed to pause workspace"))?;
        let LifecycleOutcome::Applied(paused) = outcome else {
            // Pausing has no ancestor rule: the only refusal is "nothing to pause".
            return Err(Error::NotFound {
                kind: Resource::WorkspaceToPause,
                id: id.to_owned(),
            });
        };
        self.tokens.clear();
        self.hub.poke();
        self.stop_agents(&paused).await;
        Ok(paused.len())
    }

    /// Resume a paused workspace and its paused descendants; how many were resumed.
    pub async fn resume(&self, id: &str) -> Result<usize, Error> {
        let resumed = match self
            .store
            .resume(id)
            .await
            .map_err(store_error("failed to resume workspace"))?
        {
            LifecycleOutcome::Applied(resumed) => resumed,
            LifecycleOutcome::NotApplicable => {
                return Err(Error::NotFound {
                    kind: Resource::WorkspaceToResume,
                    id: id.to_owned(),
                });
            }
            LifecycleOutcome::AncestorPaused(name) => return Err(ancestor_paused(&name)),
        };
        self.hub.poke();
        self.wake_provisioner();
        Ok(resumed)
    }

    /// Restart a workspace: back to `provisioning` with a restart job.
    pub async fn restart(&self, id: &str) -> Result<(), Error> {
        // The restart job stops the old agent before it starts the new one, and
        // supersedes a start still in flight: no agent is left holding revoked tokens.
        let row = self.workspace_exists(id).await?;
        if row.status == WorkspaceStatus::Removed {
            return Err(Error::workspace_not_found(id));
        }
        if let Some(name) = self
            .store
            .paused_ancestor(id)
            .await
            .map_err(store_error("failed to restart workspace"))?
        {
            return Err(ancestor_paused(&name));
        }
        match self
            .store
            .restart(id)
            .await
            .map_err(store_error("failed to restart workspace"))?
        {
            LifecycleOutcome::Applied(()) => {}
            LifecycleOutcome::NotApplicable => return Err(Error::workspace_not_found(id)),
            LifecycleOutcome::AncestorPaused(name) => return Err(ancestor_paused(&name)),
        }
        self.heartbeats.forget(id);
        self.tokens.clear();
        self.hub.poke();
        self.wake_provisioner();
        Ok(())
    }
}
