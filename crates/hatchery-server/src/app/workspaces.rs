//! Workspaces: create (validate → registry snapshot → fail-closed provider and billing
//! decision → generated config → one transaction), read, update, remove.

use std::collections::BTreeMap;

use hatchery_api::Patch;
use hatchery_api::workspaces::UpdateWorkspace;
use hatchery_core::{
    BillingMode, FieldError, PreparedConfig, ProviderRequest, ProviderSource, TextFields,
    WorkspaceAccess, check_text_fields, check_tier, check_workspace_access, prepare_config,
};
use hatchery_core::{EventKind, WorkspaceStatus};
use hatchery_store::{
    CreateOutcome, GLOBAL_SCOPE, NewEvent, NewWorkspace, Reconfiguration, UpdateOutcome,
    WorkspaceFile, WorkspacePatch, WorkspaceRow, workspace_scope,
};
use serde_json::{Map, Value, json};

use super::secrets::{check_secret, seal};
use super::{App, Error, store_error};

/// The runtime recorded when a create names none (Molecule's default). A runtime the
/// caller names is never rewritten.
pub const DEFAULT_RUNTIME: &str = "langgraph";
/// The tier of a create that names none: standard, never privileged.
pub const DEFAULT_TIER: u8 = 2;
/// How far up a parent chain is followed (cycle checks, reachability).
const MAX_DEPTH: usize = 32;

pub use hatchery_api::workspaces::{Canvas, CreateWorkspace};

/// What a successful create returns.
#[derive(Debug, Clone)]
pub struct Created {
    /// The new id.
    pub id: String,
    /// Its status.
    pub status: WorkspaceStatus,
    /// Its workspace access.
    pub workspace_access: &'static str,
    /// The provider decision.
    pub config: PreparedConfig,
    /// An external workspace: the token its agent registers and beats with.
    pub external_token: Option<String>,
}

/// A workspace checked and decided, not yet stored.
pub(crate) struct WorkspaceToStore {
    pub workspace: NewWorkspace,
    pub files: Vec<WorkspaceFile>,
    pub sealed: Vec<hatchery_store::SealedSecret>,
    pub events: Vec<NewEvent>,
    pub provision: bool,
    pub token: Option<super::access::MintedToken>,
    pub config: PreparedConfig,
    pub access: &'static str,
    pub status: WorkspaceStatus,
}

const INVALID_FIELDS: &str = "invalid workspace fields";
const INVALID_PAYLOAD: &str = "invalid workspace payload";

fn invalid_fields(error: FieldError) -> Error {
    Error::invalid(
        INVALID_FIELDS,
        "invalid_workspace_fields",
        Some(error.field),
        error.message,
    )
}

/// Parse a path id: a hyphenated UUID, returned lower-case.
pub fn parse_workspace_id(text: &str) -> Result<String, Error> {
    if text.len() != 36 {
        return Err(Error::invalid_workspace_id());
    }
    uuid::Uuid::try_parse(text)
        .map(|id| id.hyphenated().to_string())
        .map_err(|_| Error::invalid_workspace_id())
}

/// A create request that passed every check that needs no registry and no database.
struct CheckedCreate {
    name: String,
    role: Option<String>,
    tier: u8,
    access: WorkspaceAccess,
    workspace_dir: Option<String>,
    parent_id: Option<String>,
    secrets: BTreeMap<String, String>,
    runtime: String,
    model: String,
    provider: Option<String>,
    billing_mode: Option<BillingMode>,
    canvas: Canvas,
    budget_limit: Option<i64>,
    max_concurrent_tasks: i64,
    /// Whether the create named a runtime: with none, nothing is launched and the
    /// workspace waits for an agent to register itself.
    runtime_named: bool,
    /// A federated agent hatchery does not run, and its URL if known.
    external: bool,
    url: Option<String>,
}

/// Validate a create in the spec's order; the first failure wins.
fn check_create(request: CreateWorkspace) -> Result<CheckedCreate, Error> {
    let Some(name) = request.name.as_deref().filter(|n| !n.is_empty()) else {
        return Err(Error::invalid(
            INVALID_PAYLOAD,
            "invalid_workspace_payload",
            Some("name"),
            "name is required",
        ));
    };
    check_text_fields(
        &TextFields {
            name: Some(name),
            role: request.role.as_deref(),
            model: request.model.as_deref(),
            runtime: request.runtime.as_deref(),
        },
        true,
    )
    .map_err(invalid_fields)?;
    if request.template.as_deref().is_some_and(|t| !t.is_empty()) {
        // No templates root is configured yet: a named template cannot be found.
        return Err(Error::invalid(
            "invalid template",
            "invalid_template",
            Some("template"),
            "no templates are installed on this server",
        ));
    }
    let external = request.external == Some(true);
    let url = request.url.filter(|u| !u.is_empty());
    if url.is_some() && !external {
        return Err(Error::invalid(
            INVALID_PAYLOAD,
            "url_without_external",
            Some("url"),
            "url is for external workspaces (\"external\": true); hatchery's own agents register their URL",
        ));
    }
    let tier = match request.tier {
        None | Some(0) => DEFAULT_TIER,
        Some(tier) => check_tier(tier).map_err(invalid_fields)?,
    };
    let access = check_workspace_access(
        request.workspace_dir.as_deref(),
        request.workspace_access.as_deref(),
    )
    .map_err(|e| {
        let message = if e.field == "workspace_dir" {
            "invalid workspace directory"
        } else {
            "invalid workspace access"
        };
        Error::invalid(
            message,
            "invalid_workspace_fields",
            Some(e.field),
            e.message,
        )
    })?;
    let parent_id = match request.parent_id.as_deref() {
        None | Some("") => None,
        Some(parent) => Some(parse_workspace_id(parent).map_err(|_| {
            Error::invalid(
                INVALID_PAYLOAD,
                "invalid_parent",
                Some("parent_id"),
                "parent_id must be a workspace UUID",
            )
        })?),
    };
    let own_secrets = request.secrets.unwrap_or_default();
    for (key, value) in &own_secrets {
        check_secret(key, value)?;
    }
    let runtime = match request.runtime.as_deref() {
        None | Some("") => DEFAULT_RUNTIME,
        Some(runtime) => runtime,
    };
    Ok(CheckedCreate {
        name: name.to_owned(),
        role: request.role.filter(|r| !r.is_empty()),
        tier,
        access,
        workspace_dir: request.workspace_dir,
        parent_id,
        secrets: own_secrets,
        runtime: runtime.to_owned(),
        model: request.model.unwrap_or_default(),
        provider: request.provider.filter(|p| !p.is_empty()),
        billing_mode: request.llm_billing_mode,
        canvas: request.canvas.unwrap_or_default(),
        budget_limit: request.budget_limit,
        max_concurrent_tasks: request.max_concurrent_tasks.filter(|m| *m > 0).unwrap_or(1),
        runtime_named: request.runtime.as_deref().is_some_and(|r| !r.is_empty()),
        external,
        url,
    })
}

impl CheckedCreate {
    /// Where a new workspace starts: hatchery's own agents provision; an external one is
    /// online at its URL, or awaits its agent.
    fn status(&self) -> WorkspaceStatus {
        match (self.external, &self.url) {
            (false, _) => WorkspaceStatus::Provisioning,
            (true, Some(_)) => WorkspaceStatus::Online,
            (true, None) => WorkspaceStatus::AwaitingAgent,
        }
    }

    /// The row to insert, with the provider decision stamped.
    fn into_row(self, id: String, config: &PreparedConfig) -> NewWorkspace {
        let status = self.status();
        NewWorkspace {
            id,
            name: self.name,
            role: self.role,
            tier: i64::from(self.tier),
            status,
            url: self.url.unwrap_or_default(),
            parent_id: self.parent_id,
            max_concurrent_tasks: self.max_concurrent_tasks,
            runtime: self.runtime,
            model: self.model.trim().to_owned(),
            workspace_dir: self.workspace_dir,
            workspace_access: self.access.as_str(),
            x: self.canvas.x,
            y: self.canvas.y,
            external: self.external,
            budget_limit: self.budget_limit,
            provider: config.provider.clone(),
            provider_source: config.source.as_str(),
            llm_billing_mode: config.billing.map(BillingMode::as_str),
            registry_hash: config.registry_hash.clone(),
            derivation: config.derivation.to_string(),
        }
    }
}

impl App {
    /// Everything a new workspace is made of, checked and decided (fields, the provider
    /// decision, sealed secrets, config files, events, token): what a single create and an
    /// org import both write. Nothing is stored here.
    pub(crate) async fn build_workspace(
        &self,
        request: CreateWorkspace,
        id: String,
    ) -> Result<WorkspaceToStore, Error> {
        let checked = check_create(request)?;
        if let Some(url) = &checked.url {
            // An external agent's URL passes the same rules as a registered one.
            super::limits::check_size("url", url.len(), super::limits::MAX_AGENT_URL_BYTES)?;
            super::agents::check_agent_url(url)
                .await
                .map_err(|detail| {
                    Error::invalid(INVALID_PAYLOAD, "invalid_url", Some("url"), detail)
                })?;
        }
        let key = if checked.secrets.is_empty() {
            None
        } else {
            Some(self.sealing_key()?)
        };
        let config = self
            .prepare(
                &checked.runtime,
                &checked.model,
                checked.provider.as_deref(),
                checked.billing_mode,
                checked.secrets.keys().cloned().collect(),
            )
            .await?;

        let sealed = match key {
            Some(key) => checked
                .secrets
                .iter()
                .map(|(name, value)| seal(key, workspace_scope(&id), name, value))
                .collect::<Result<Vec<_>, _>>()?,
            None => Vec::new(),
        };
        let access = checked.access;
        let (name, tier, status) = (checked.name.clone(), checked.tier, checked.status());
        // Only hatchery's own agents of a named runtime get a provision job; an external
        // one runs elsewhere, and with no runtime named, its agent registers by itself.
        let provision = !checked.external && checked.runtime_named;
        let workspace = checked.into_row(id.clone(), &config);
        let files = config_files(&config);
        let mut events = vec![NewEvent::about(
            EventKind::WorkspaceProvisioning,
            &id,
            json!({"name": name, "tier": tier, "runtime": workspace.runtime}).to_string(),
        )];
        // An external agent gets its token now, shown once: it registers and beats with it.
        let token = workspace
            .external
            .then(|| super::access::mint(&id, hatchery_store::TokenKind::Workspace, None));
        match status {
            WorkspaceStatus::Online => events.push(NewEvent::about(
                EventKind::WorkspaceOnline,
                &id,
                json!({"url": workspace.url, "agent_card": null}).to_string(),
            )),
            WorkspaceStatus::AwaitingAgent => {
                events.push(NewEvent::about(
                    EventKind::WorkspaceAwaitingAgent,
                    &id,
                    "{}".to_owned(),
                ));
            }
            _ => {}
        }
        Ok(WorkspaceToStore {
            workspace,
            files,
            sealed,
            events,
            provision,
            token,
            config,
            access: access.as_str(),
            status,
        })
    }

    /// Create a workspace, failing closed: on any refusal nothing is written.
    #[tracing::instrument(skip_all, fields(name = request.name.as_deref().unwrap_or("")))]
    pub async fn workspace_create(&self, request: CreateWorkspace) -> Result<Created, Error> {
        let id = uuid::Uuid::new_v4().hyphenated().to_string();
        let built = self.build_workspace(request, id.clone()).await?;
        let outcome = self
            .store
            .workspace_create(
                &built.workspace,
                &built.files,
                &built.sealed,
                &built.events,
                built.provision,
                built.token.as_ref().map(|t| &t.stored),
            )
            .await
            .map_err(store_error("failed to create workspace"))?;
        if outcome == CreateOutcome::ParentNotLive {
            return Err(Error::invalid(
                INVALID_PAYLOAD,
                "invalid_parent",
                Some("parent_id"),
                "parent workspace not found or removed",
            ));
        }
        self.crash_point("created");
        self.hub.poke();
        if built.provision {
            self.wake_provisioner();
        }
        tracing::info!(
            workspace_id = %id,
            provider = built.config.provider.as_deref().unwrap_or("-"),
            provider_source = built.config.source.as_str(),
            "workspace created"
        );
        Ok(Created {
            id,
            status: built.status,
            workspace_access: built.access,
            config: built.config,
            external_token: built.token.map(|t| t.plaintext),
        })
    }

    /// One workspace (removed ones included); 404 when it never existed.
    pub async fn workspace_get(&self, id: &str) -> Result<WorkspaceRow, Error> {
        self.store
            .workspace_get(id)
            .await
            .map_err(store_error("failed to read workspace"))?
            .ok_or_else(|| Error::workspace_not_found(id))
    }

    /// 404 unless the workspace exists (removed or not).
    pub(crate) async fn workspace_exists(&self, id: &str) -> Result<WorkspaceRow, Error> {
        self.workspace_get(id).await
    }

    /// 404 unless the workspace exists, 410 when it is removed.
    pub(crate) async fn workspace_live(&self, id: &str) -> Result<WorkspaceRow, Error> {
        let row = self.workspace_get(id).await?;
        if row.status == WorkspaceStatus::Removed {
            return Err(Error::Removed { id: id.to_owned() });
        }
        Ok(row)
    }

    /// Every workspace that is not removed, oldest first.
    pub async fn workspace_list(&self) -> Result<Vec<WorkspaceRow>, Error> {
        self.store
            .workspace_list()
            .await
            .map_err(store_error("failed to list workspaces"))
    }

    /// The generated files of a workspace.
    pub async fn workspace_files(&self, id: &str) -> Result<Vec<WorkspaceFile>, Error> {
        self.workspace_exists(id).await?;
        self.store
            .workspace_files(id)
            .await
            .map_err(store_error("failed to read workspace config"))
    }

    /// The names of the global secrets: the keys every workspace holds.
    pub(crate) async fn global_secret_names(&self) -> Result<Vec<String>, Error> {
        Ok(self
            .store
            .secret_list(GLOBAL_SCOPE)
            .await
            .map_err(store_error("failed to read global secrets"))?
            .into_iter()
            .map(|g| g.name)
            .collect())
    }

    /// The provider decision and config for `runtime` + `model` on the registry in force,
    /// with the workspace's own secret names and the global ones counting as keys held.
    async fn prepare(
        &self,
        runtime: &str,
        model: &str,
        provider: Option<&str>,
        billing_mode: Option<BillingMode>,
        mut secret_names: Vec<String>,
    ) -> Result<PreparedConfig, Error> {
        let snapshot = self.registry.snapshot()?;
        secret_names.extend(self.global_secret_names().await?);
        let secret_names: Vec<&str> = secret_names.iter().map(String::as_str).collect();
        let prepared = prepare_config(
            &snapshot.registry,
            &ProviderRequest {
                runtime,
                model,
                provider,
                billing_mode,
                secret_names: &secret_names,
                platform_key_configured: self.platform_key.is_some(),
            },
        );
        self.metrics.derive_outcome(match &prepared {
            Ok(config) => config.source.as_str(),
            Err(refusal) => refusal.code(),
        });
        Ok(prepared?)
    }

    /// A runtime change re-derives the provider, failing closed like a create: the old
    /// provider may not be allowed for (or billed the same on) the new runtime. An explicit
    /// provider stays explicit and must be allowed for the new runtime.
    async fn reconfigure(
        &self,
        row: &WorkspaceRow,
        runtime: &str,
    ) -> Result<Reconfiguration, Error> {
        let own_secrets = self
            .store
            .secret_list(&workspace_scope(&row.id))
            .await
            .map_err(store_error("failed to read workspace secrets"))?;
        let explicit_provider = (row.provider_source == ProviderSource::Explicit.as_str())
            .then_some(row.provider.as_deref())
            .flatten();
        let config = self
            .prepare(
                runtime,
                &row.model,
                explicit_provider,
                None,
                own_secrets.into_iter().map(|s| s.name).collect(),
            )
            .await?;
        Ok(Reconfiguration {
            provider: config.provider.clone(),
            provider_source: config.source.as_str(),
            llm_billing_mode: config.billing.map(BillingMode::as_str),
            registry_hash: config.registry_hash.clone(),
            derivation: config.derivation.to_string(),
            files: config_files(&config),
        })
    }

    /// Apply a PATCH body. Returns whether the change needs a restart.
    #[tracing::instrument(skip(self, body))]
    pub async fn workspace_update(
        &self,
        id: &str,
        body: Map<String, Value>,
        by_operator: bool,
    ) -> Result<bool, Error> {
        if !by_operator
            && let Some(field) = body
                .keys()
                .find(|field| !AGENT_PATCHABLE.contains(&field.as_str()))
        {
            return Err(Error::Refused {
                code: "operator_only_field",
                message: format!(
                    "`{field}` may be changed only by the operator (the admin token); a workspace's own token may change {}",
                    AGENT_PATCHABLE.join(", ")
                ),
            });
        }
        // The keys sent decide who may send them (unknown ones too); only then are the
        // values read, so a workspace's token learns nothing of an operator's field.
        let body = update_from_body(body)?;
        // A concurrent update moves the version on; re-read and re-apply a few times.
        for _ in 0..5 {
            let row = self.workspace_live(id).await?;
            let (patch, mut needs_restart) = patch_from_body(&row, &body)?;
            let reconfiguration = if patch.runtime == row.runtime {
                None
            } else {
                needs_restart = true;
                Some(self.reconfigure(&row, &patch.runtime).await?)
            };
            let mut events = Vec::new();
            if patch.parent_id != row.parent_id {
                self.check_new_parent(id, patch.parent_id.as_deref())
                    .await?;
                events.push(NewEvent::about(
                    EventKind::WorkspaceMoved,
                    id,
                    json!({"old_parent_id": row.parent_id, "new_parent_id": patch.parent_id})
                        .to_string(),
                ));
            }
            let outcome = self
                .store
                .workspace_update(
                    id,
                    row.version,
                    &patch,
                    reconfiguration.as_ref(),
                    &events,
                    MAX_DEPTH,
                )
                .await
                .map_err(store_error("failed to update workspace"))?;
            match outcome {
                UpdateOutcome::Updated => {
                    if !events.is_empty() {
                        self.hub.poke();
                    }
                    return Ok(needs_restart);
                }
                UpdateOutcome::Stale => {}
                UpdateOutcome::WouldCycle => {
                    return Err(invalid_parent(
                        "the new parent is a descendant of this workspace",
                    ));
                }
                UpdateOutcome::ParentRefused => {
                    return Err(invalid_parent(
                        "parent workspace not found or removed, or the org tree would be deeper than 32 levels",
                    ));
                }
            }
        }
        Err(Error::internal(
            "failed to update workspace",
            "the workspace kept changing under five attempts",
        ))
    }

    /// A new parent must be live and must not be the workspace or one of its descendants.
    async fn check_new_parent(&self, id: &str, parent: Option<&str>) -> Result<(), Error> {
        let Some(parent) = parent else {
            return Ok(());
        };
        let live = self
            .store
            .workspace_get(parent)
            .await
            .map_err(store_error("failed to update workspace"))?
            .is_some_and(|p| p.status != WorkspaceStatus::Removed);
        if !live {
            return Err(invalid_parent("parent workspace not found or removed"));
        }
        if parent == id {
            return Err(invalid_parent("a workspace cannot be its own parent"));
        }
        let ancestors = self
            .store
            .workspace_ancestors(parent, MAX_DEPTH)
            .await
            .map_err(store_error("failed to update workspace"))?;
        if ancestors.iter().any(|a| a == id) {
            return Err(invalid_parent(
                "the new parent is a descendant of this workspace",
            ));
        }
        if ancestors.len() >= MAX_DEPTH {
            return Err(invalid_parent(
                "the org tree would be deeper than 32 levels",
            ));
        }
        Ok(())
    }

    /// Remove a workspace (and, with `confirm`, its descendants). Returns how many
    /// descendants were removed.
    #[tracing::instrument(skip(self))]
    pub async fn workspace_delete(
        &self,
        id: &str,
        confirm: bool,
        purge: bool,
    ) -> Result<usize, Error> {
        self.workspace_exists(id).await?;
        if !confirm {
            let children = self
                .store
                .workspace_live_children(id)
                .await
                .map_err(store_error("failed to delete workspace"))?;
            if !children.is_empty() {
                return Err(Error::ConfirmationRequired { children });
            }
        }
        let removed = self
            .store
            .workspace_remove(id, purge)
            .await
            .map_err(store_error("failed to delete workspace"))?;
        // The removed workspaces' tokens are revoked: none may linger in the cache.
        self.tokens.clear();
        let mut stopped = removed.descendants.clone();
        stopped.push(id.to_owned());
        self.stop_agents(&stopped).await;
        self.hub.poke();
        Ok(removed.descendants.len())
    }
}

/// The PATCH fields a workspace's own token may change: how it is named and drawn. Every
/// other field changes what its sandbox may do (`runtime`, `tier`, `workspace_dir`, …) or
/// whom it may reach (`parent_id`): the operator's alone.
const AGENT_PATCHABLE: [&str; 5] = ["name", "role", "collapsed", "x", "y"];

/// A new parent refused, with why.
fn invalid_parent(detail: &str) -> Error {
    Error::invalid(
        "invalid request body",
        "invalid_parent",
        Some("parent_id"),
        detail,
    )
}

/// A PATCH value of the wrong JSON type.
fn wrong_type(field: &'static str, expected: &str) -> Error {
    Error::invalid(
        "invalid request body",
        "invalid_field_type",
        Some(field),
        format!("{field} must be {expected}"),
    )
}

/// The typed PATCH body, read from the keys the caller sent; unknown keys are ignored. A
/// value of the wrong JSON type is refused naming the field (`tier must be an integer`).
fn update_from_body(body: Map<String, Value>) -> Result<UpdateWorkspace, Error> {
    serde_path_to_error::deserialize(Value::Object(body)).map_err(|e| {
        match UpdateWorkspace::field_type(&e.path().to_string()) {
            Some((field, expected)) => wrong_type(field, expected),
            None => Error::invalid(
                "invalid request body",
                "invalid_field_type",
                None,
                e.to_string(),
            ),
        }
    })
}

/// A PATCH field that may not be null: its value, if sent.
fn required<'b, T>(
    value: &'b Patch<T>,
    field: &'static str,
    expected: &str,
) -> Result<Option<&'b T>, Error> {
    match value {
        Patch::Absent => Ok(None),
        Patch::Null => Err(wrong_type(field, expected)),
        Patch::Value(value) => Ok(Some(value)),
    }
}

/// The new values of a PATCH, checked field by field in a fixed order; unknown fields are
/// ignored.
fn patch_from_body(
    row: &WorkspaceRow,
    body: &UpdateWorkspace,
) -> Result<(WorkspacePatch, bool), Error> {
    let mut patch = WorkspacePatch {
        name: row.name.clone(),
        role: row.role.clone(),
        tier: row.tier,
        parent_id: row.parent_id.clone(),
        collapsed: row.collapsed,
        runtime: row.runtime.clone(),
        workspace_dir: row.workspace_dir.clone(),
        x: row.x,
        y: row.y,
    };
    let field_error =
        |e: FieldError| Error::invalid_field("invalid_workspace_fields", e.field, e.message);
    let name = required(&body.name, "name", "a string")?.map(String::as_str);
    let role = body.role.as_option().map(|r| r.map(String::as_str));
    let runtime = required(&body.runtime, "runtime", "a string")?.map(String::as_str);
    check_text_fields(
        &TextFields {
            name,
            role: role.flatten(),
            model: None,
            runtime,
        },
        false,
    )
    .map_err(field_error)?;
    if let Some(name) = name {
        if name.trim().is_empty() {
            return Err(field_error(FieldError {
                field: "name",
                message: "name must not be empty".to_owned(),
            }));
        }
        name.clone_into(&mut patch.name);
    }
    if let Some(role) = role {
        patch.role = role.filter(|r| !r.is_empty()).map(str::to_owned);
    }
    if let Some(runtime) = runtime {
        runtime.clone_into(&mut patch.runtime);
    }
    if let Some(&tier) = required(&body.tier, "tier", "an integer")? {
        patch.tier = i64::from(check_tier(tier).map_err(field_error)?);
    }
    if let Some(parent) = body.parent_id.as_option() {
        patch.parent_id = match parent.map(String::as_str) {
            None | Some("") => None,
            Some(p) => Some(
                parse_workspace_id(p).map_err(|_| wrong_type("parent_id", "a workspace UUID"))?,
            ),
        };
    }
    if let Some(&collapsed) = required(&body.collapsed, "collapsed", "a boolean")? {
        patch.collapsed = collapsed;
    }
    let mut needs_restart = false;
    if let Some(dir) = body.workspace_dir.as_option() {
        let dir = dir.map(String::as_str);
        check_workspace_access(dir, None).map_err(|e| {
            Error::invalid(
                "invalid workspace directory",
                "invalid_workspace_fields",
                Some(e.field),
                e.message,
            )
        })?;
        patch.workspace_dir = dir.map(str::to_owned);
        needs_restart = true;
    }
    // x and y move together: one without the other is ignored, as Molecule does (but a
    // value of the wrong type is refused all the same).
    if let (Some(&x), Some(&y)) = (
        required(&body.x, "x", "a number")?,
        required(&body.y, "y", "a number")?,
    ) {
        patch.x = x;
        patch.y = y;
    }
    Ok((patch, needs_restart))
}

/// The generated files of a workspace. The keys its provider needs are never among them:
/// they reach the workspace as environment variables.
fn config_files(config: &PreparedConfig) -> Vec<WorkspaceFile> {
    vec![WorkspaceFile {
        path: "config.yaml".to_owned(),
        content: config.config_yaml.clone(),
    }]
}
