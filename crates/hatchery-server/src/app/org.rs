//! Org import: the plan of a template (dry run). Persisting the planned tree arrives with
//! the rest of the org-import work.

use hatchery_core::org::{OrgTemplate, Plan, PlanContext, plan};
use hatchery_store::GLOBAL_SCOPE;

use super::{App, store_error};
use crate::error::ApiError;

impl App {
    /// Plan the import of `template` on the registry in force, with the global secrets
    /// as the keys every node will hold. Changes nothing.
    pub async fn org_plan(&self, template: &OrgTemplate) -> Result<Plan, ApiError> {
        let snapshot = self
            .registry
            .snapshot()
            .map_err(|e| ApiError::RegistryUnavailable(e.to_string()))?;
        let globals = self
            .store
            .secret_list(GLOBAL_SCOPE)
            .await
            .map_err(store_error("failed to read global secrets"))?;
        let names: Vec<&str> = globals.iter().map(|g| g.name.as_str()).collect();
        Ok(plan(
            template,
            &snapshot.registry,
            PlanContext {
                global_secrets: &names,
                platform_key_configured: self.platform_key.is_some(),
            },
        ))
    }
}
