//! Lifecycle moves asked for by people or tools: pause (cascades down), resume (self and
//! paused descendants), restart. Each is one transaction with its events and jobs.

use hatchery_core::WorkspaceStatus;
use hatchery_store::LifecycleRefusal;

use super::{App, store_error};
use crate::error::ApiError;

fn ancestor_paused(name: &str) -> ApiError {
    ApiError::Conflict {
        message: format!("parent workspace \"{name}\" is paused — resume it first"),
        code: "parent_paused",
    }
}

impl App {
    /// Pause a workspace and its descendants; how many were paused.
    pub async fn pause(&self, id: &str) -> Result<usize, ApiError> {
        let paused = self
            .store
            .pause(id)
            .await
            .map_err(store_error("failed to pause workspace"))?
            .map_err(|_| ApiError::NotFound {
                message: "workspace not found or already paused",
                code: "workspace_not_pausable",
            })?;
        self.tokens.clear();
        self.hub.poke();
        self.stop_agents(&paused).await;
        Ok(paused.len())
    }

    /// Resume a paused workspace and its paused descendants; how many were resumed.
    pub async fn resume(&self, id: &str) -> Result<usize, ApiError> {
        let resumed = self
            .store
            .resume(id)
            .await
            .map_err(store_error("failed to resume workspace"))?
            .map_err(|refusal| match refusal {
                LifecycleRefusal::NotApplicable => ApiError::NotFound {
                    message: "workspace not found or not paused",
                    code: "workspace_not_paused",
                },
                LifecycleRefusal::AncestorPaused(name) => ancestor_paused(&name),
            })?;
        self.hub.poke();
        self.wake_provisioner();
        Ok(resumed)
    }

    /// Restart a workspace: back to `provisioning` with a restart job.
    pub async fn restart(&self, id: &str) -> Result<(), ApiError> {
        // The restart job stops the old agent before it starts the new one, and
        // supersedes a start still in flight: no agent is left holding revoked tokens.
        let row = self.workspace_exists(id).await?;
        if row.status == WorkspaceStatus::Removed {
            return Err(ApiError::workspace_not_found());
        }
        if let Some(name) = self
            .store
            .paused_ancestor(id)
            .await
            .map_err(store_error("failed to restart workspace"))?
        {
            return Err(ancestor_paused(&name));
        }
        self.store
            .restart(id)
            .await
            .map_err(store_error("failed to restart workspace"))?
            .map_err(|refusal| match refusal {
                LifecycleRefusal::NotApplicable => ApiError::workspace_not_found(),
                LifecycleRefusal::AncestorPaused(name) => ancestor_paused(&name),
            })?;
        self.heartbeats.forget(id);
        self.tokens.clear();
        self.hub.poke();
        self.wake_provisioner();
        Ok(())
    }
}
