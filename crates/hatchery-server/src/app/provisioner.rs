//! The job runner: claims provision jobs with a lease, starts agents through the backend,
//! retries transient failures with back-off, fails the workspace (with the reason) on
//! permanent ones, and turns an agent that died before registering into `failed` with its
//! exit code and last log lines. Every replica runs one; the lease keeps each job to one.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use hatchery_provision::{Backend, BackendError, Exit, WorkspaceSpec};
use hatchery_store::ClaimedJob;
use tokio::sync::Notify;

use super::{App, store_error};
use crate::error::ApiError;
use crate::supervision::micros;

/// How often the queue is read when nobody wakes the runner (jobs of other replicas).
const POLL: Duration = Duration::from_secs(1);
/// Reconcile at start is tried this many times, with doubling back-off.
const RECONCILE_ATTEMPTS: u32 = 5;
/// Transient failures are retried this many times, with doubling back-off.
const MAX_ATTEMPTS: i64 = 5;

/// The runner's state: which backend, who it is, and how to wake it.
pub struct Provisioner {
    /// Where agents run.
    pub backend: Arc<dyn Backend>,
    /// This replica's name on the leases it takes.
    pub owner: String,
    /// Poked when a job is queued.
    pub wake: Notify,
}

impl std::fmt::Debug for Provisioner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provisioner")
            .field("backend", &self.backend.name())
            .field("owner", &self.owner)
            .finish_non_exhaustive()
    }
}

impl Provisioner {
    /// A runner for `backend`, named uniquely.
    #[must_use]
    pub fn new(backend: Arc<dyn Backend>) -> Self {
        Self {
            backend,
            owner: format!("runner-{}", uuid::Uuid::new_v4().simple()),
            wake: Notify::new(),
        }
    }
}

impl App {
    /// Say that a job was queued.
    pub(crate) fn wake_provisioner(&self) {
        if let Some(provisioner) = &self.provisioner {
            provisioner.wake.notify_one();
        }
    }

    /// Stop the agents of `ids` (after a delete or a pause). A failure is logged: the
    /// status already says they must not run, and a restart of the server stops them.
    pub(crate) async fn stop_agents(&self, ids: &[String]) {
        let Some(provisioner) = &self.provisioner else {
            return;
        };
        for id in ids {
            if let Err(error) = provisioner.backend.stop(id).await {
                tracing::warn!(workspace_id = %id, %error, "cannot stop the agent");
            }
        }
    }

    /// The agent's last log lines (empty without a backend).
    pub async fn agent_logs(&self, id: &str, lines: usize) -> Result<String, ApiError> {
        let Some(provisioner) = &self.provisioner else {
            return Ok(String::new());
        };
        provisioner
            .backend
            .logs(id, lines)
            .await
            .map_err(|e| ApiError::internal("failed to read logs", e))
    }

    /// What the agent logs from now on (`None` without a backend).
    #[must_use]
    pub fn agent_log_follow(
        &self,
        id: &str,
    ) -> Option<futures_util::stream::BoxStream<'static, bytes::Bytes>> {
        Some(self.provisioner.as_ref()?.backend.follow(id))
    }

    /// After a start, match what runs with what should:
    /// - an agent still running (containers outlive the control plane) is adopted when its
    ///   workspace should have one, and stopped when it should not (removed, paused,
    ///   failed, or unknown to this database);
    /// - a workspace that should have an agent, has none and no job in flight gets a new
    ///   start (a sandbox dies with its control plane).
    ///
    /// Nothing stays `provisioning` for good, and no agent runs twice.
    pub async fn reconcile(&self) -> Result<usize, ApiError> {
        let Some(provisioner) = &self.provisioner else {
            return Ok(0);
        };
        let running = provisioner
            .backend
            .running()
            .await
            .map_err(|e| ApiError::internal("reconcile failed", e))?;
        let mut orphans = Vec::new();
        for id in &running {
            let row = match self.store.workspace_get(id).await {
                Ok(row) => row,
                Err(error) => {
                    // Left running (and watched) rather than stopped on a guess.
                    tracing::warn!(%error, workspace_id = %id, "cannot read an adopted agent's workspace");
                    continue;
                }
            };
            let wanted = row.is_some_and(|w| {
                w.external == 0
                    && matches!(
                        w.status.as_str(),
                        "provisioning" | "online" | "degraded" | "offline"
                    )
            });
            if !wanted {
                orphans.push(id.clone());
            }
        }
        if !orphans.is_empty() {
            tracing::info!(
                count = orphans.len(),
                "stopping agents whose workspaces must not run"
            );
            self.stop_agents(&orphans).await;
        }
        let lost = self
            .store
            .launched_without_job()
            .await
            .map_err(store_error("reconcile failed"))?;
        let mut relaunched = 0;
        for id in lost.iter().filter(|id| !running.contains(id)) {
            let moved = self
                .store
                .relaunch(id, "the control plane restarted and its agent was gone")
                .await
                .map_err(store_error("reconcile failed"))?;
            if moved {
                tracing::info!(workspace_id = %id, "agent lost with the last control plane: starting it again");
                relaunched += 1;
            }
        }
        if relaunched > 0 {
            self.tokens.clear();
            self.hub.poke();
        }
        Ok(relaunched)
    }

    /// Run jobs until the process stops (reconciling first).
    pub async fn run_provisioner(self) {
        let Some(provisioner) = self.provisioner.clone() else {
            return;
        };
        // Reconcile before taking jobs; an engine or database that is briefly away gets a
        // few tries, with back-off.
        for attempt in 0..RECONCILE_ATTEMPTS {
            match self.reconcile().await {
                Ok(_) => break,
                Err(error) if attempt + 1 < RECONCILE_ATTEMPTS => {
                    let back_off = Duration::from_secs(1 << attempt);
                    tracing::warn!(%error, ?back_off, "cannot reconcile agents after the start; retrying");
                    tokio::time::sleep(back_off).await;
                }
                Err(error) => {
                    tracing::error!(%error, "cannot reconcile agents after the start; running jobs anyway");
                }
            }
        }
        // Several starts at once: a burst of creates is not served one sandbox at a time.
        let mut in_flight = tokio::task::JoinSet::new();
        loop {
            if in_flight.len() < self.supervision.concurrent_starts.max(1) {
                let lease_until = self
                    .store
                    .now()
                    .saturating_add(micros(self.supervision.job_lease));
                match self.store.job_claim(&provisioner.owner, lease_until).await {
                    Ok(Some(job)) => {
                        let (app, provisioner) = (self.clone(), Arc::clone(&provisioner));
                        in_flight.spawn(async move { app.run_job(&provisioner, job).await });
                        continue;
                    }
                    Ok(None) => {}
                    Err(error) => tracing::warn!(%error, "cannot claim provision jobs; retrying"),
                }
            }
            tokio::select! {
                () = provisioner.wake.notified() => {}
                () = tokio::time::sleep(POLL) => {}
                Some(_) = in_flight.join_next(), if !in_flight.is_empty() => {}
            }
        }
    }

    async fn run_job(&self, provisioner: &Provisioner, job: ClaimedJob) {
        tracing::debug!(workspace_id = %job.workspace_id, attempts = job.attempts, "provision job claimed");
        let owner = provisioner.owner.as_str();
        let finish = |state: &'static str| {
            let store = self.store.clone();
            let id = job.id.clone();
            async move {
                if let Err(error) = store.job_finish(&id, owner, state).await {
                    tracing::warn!(%error, job = %id, "cannot close the job");
                }
            }
        };
        let row = match self.store.workspace_get(&job.workspace_id).await {
            Ok(Some(row)) => row,
            Ok(None) => return finish("cancelled").await,
            Err(error) => {
                tracing::warn!(%error, "cannot read the workspace of a job; retrying later");
                let _ = self.store.job_retry(&job.id, owner, self.store.now()).await;
                return;
            }
        };
        if row.status != "provisioning" || row.external != 0 {
            // Registered meanwhile, paused, removed, or an agent hatchery does not run.
            return finish("cancelled").await;
        }
        self.crash_point("job-claimed");
        let mut lease_lost = false;
        let started = match self.spec_of(&row).await {
            Ok(spec) => {
                let (started, lost) = self
                    .renewing(&job.id, owner, provisioner.backend.start(&spec))
                    .await;
                lease_lost = lost;
                started
            }
            // The database or the secrets could not be read: worth another try.
            Err(error @ (ApiError::Internal { .. } | ApiError::PlatformUnavailable(_))) => {
                Err(BackendError::Transient(error.to_string()))
            }
            Err(error) => Err(BackendError::Permanent(error.to_string())),
        };
        if lease_lost {
            // Another runner has the job now: its start decides (it replaces this agent
            // or keeps it), so this one neither closes the job nor fails the workspace.
            tracing::warn!(workspace_id = %row.id, "lost the job's lease while starting; leaving it to its new runner");
            return;
        }
        match started {
            Ok(()) => {
                tracing::info!(workspace_id = %row.id, backend = provisioner.backend.name(), "agent started");
                self.crash_point("agent-started");
                finish("done").await;
                self.crash_point("job-done");
                // Paused or deleted while it started: it must not run. (If the database
                // cannot say, it runs: the sweeps settle it, a healthy agent is not killed.)
                match self.store.workspace_get(&row.id).await {
                    Ok(now)
                        if now.as_ref().is_none_or(|w| {
                            matches!(w.status.as_str(), "paused" | "removed" | "failed")
                        }) =>
                    {
                        self.stop_agents(std::slice::from_ref(&row.id)).await;
                    }
                    Ok(_) => {}
                    Err(error) => {
                        tracing::warn!(%error, workspace_id = %row.id, "cannot read the workspace after its start");
                    }
                }
            }
            Err(BackendError::Transient(reason)) if job.attempts < MAX_ATTEMPTS => {
                let back_off = Duration::from_secs(1 << job.attempts.clamp(0, 6));
                tracing::warn!(workspace_id = %row.id, %reason, ?back_off, "start failed; will retry");
                let not_before = self.store.now().saturating_add(micros(back_off));
                let _ = self.store.job_retry(&job.id, owner, not_before).await;
            }
            Err(error) => {
                let reason = format!(
                    "the {} backend could not start the agent after {} attempt(s): {error}",
                    provisioner.backend.name(),
                    job.attempts
                );
                finish("failed").await;
                self.fail_unregistered(&row.id, &reason).await;
            }
        }
    }

    /// Run `work` while renewing the job's lease, so a long start (an image to import, a
    /// pod to schedule) is not taken over by another runner. Also whether the lease was
    /// lost meanwhile (another runner took the job over).
    async fn renewing<T>(
        &self,
        job: &str,
        owner: &str,
        work: impl Future<Output = T>,
    ) -> (T, bool) {
        let lease = self.supervision.job_lease;
        let every = (lease / 3).max(Duration::from_millis(10));
        let mut work = std::pin::pin!(work);
        let mut renew = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        let mut lost = false;
        loop {
            tokio::select! {
                done = &mut work => return (done, lost),
                _ = renew.tick(), if !lost => {
                    let until = self.store.now().saturating_add(micros(lease));
                    match self.store.job_renew(job, owner, until).await {
                        Ok(true) => {}
                        Ok(false) => lost = true,
                        Err(error) => tracing::warn!(%error, job, "cannot renew the job's lease"),
                    }
                }
            }
        }
    }

    /// What the backend needs to start `row`'s agent: its config files, its secrets and
    /// the platform credential as environment, and a fresh bootstrap token.
    async fn spec_of(&self, row: &hatchery_store::WorkspaceRow) -> Result<WorkspaceSpec, ApiError> {
        let files = self
            .store
            .workspace_files(&row.id)
            .await
            .map_err(store_error("failed to read the workspace's config"))?
            .into_iter()
            .map(|f| (f.path, f.content))
            .collect();
        let mut env: BTreeMap<String, String> = if self.secrets_key.is_some() {
            self.secret_values_of(&row.id).await?
        } else {
            let stored = self
                .store
                .secret_list(&hatchery_store::workspace_scope(&row.id))
                .await
                .map_err(store_error("failed to read secrets"))?;
            if !stored.is_empty() {
                // Starting without them would be a silent guess.
                return Err(ApiError::SecretsDisabled);
            }
            BTreeMap::new()
        };
        // `HATCHERY_*` names are the agent's own settings: a secret cannot change them
        // (the platform credential below may use one).
        env.retain(|name, _| {
            let reserved = name.starts_with("HATCHERY_");
            if reserved {
                tracing::warn!(workspace_id = %row.id, secret = %name, "a secret named HATCHERY_* is not given to the agent");
            }
            !reserved
        });
        let snapshot = self.registry.snapshot().ok();
        if row.llm_billing_mode.as_deref() == Some("platform")
            && let (Some(key), Some(name), Some(snapshot)) =
                (&self.platform_key, &row.provider, &snapshot)
            && let Ok(provider) = snapshot.registry.provider(name)
        {
            // Platform billing: the gateway credential under the provider's key names.
            for variable in &provider.auth_env {
                env.insert(variable.clone(), key.expose().to_owned());
            }
        }
        let mut files: Vec<(String, String)> = files;
        if let Some(manifest) = snapshot.as_ref().and_then(|s| s.manifest.as_ref()) {
            // The agent checks its provider against the manifest that derived it.
            files.push(("providers.yaml".to_owned(), manifest.to_string()));
        }
        let (bootstrap_token, _) = self.bootstrap_issue_for(row).await?;
        Ok(WorkspaceSpec {
            id: row.id.clone(),
            runtime: row.runtime.clone(),
            files,
            env: env.into_iter().collect(),
            bootstrap_token,
            // Three beats per TTL: one lost beat never takes an agent offline.
            heartbeat_interval: self.supervision.heartbeat_ttl / 3,
            limits: self.supervision.agent_limits,
        })
    }

    /// Fail a workspace that is still `provisioning`, with `reason`.
    async fn fail_unregistered(&self, id: &str, reason: &str) {
        let Ok(Some(row)) = self.store.workspace_get(id).await else {
            return;
        };
        if row.status != "provisioning" {
            return;
        }
        let since = row.provisioning_since.unwrap_or(row.updated_at);
        match self.store.fail_provisioning(id, since, reason).await {
            Ok(true) => {
                // Debug: an agent's last words stay on this log line (newlines escaped).
                tracing::warn!(workspace_id = id, ?reason, "provisioning failed");
                self.metrics.provisioning_failed(1);
                self.hub.poke();
                // Whatever is left of it (an exited container, a pod that cannot start,
                // the secret beside it) goes.
                self.stop_agents(&[id.to_owned()]).await;
            }
            Ok(false) => {}
            Err(error) => tracing::warn!(%error, "cannot record the failure"),
        }
    }

    /// Turn agents that exit on their own into what they mean: one that never registered
    /// fails its workspace, with its exit code and last words.
    pub async fn watch_exits(self, mut exits: tokio::sync::mpsc::UnboundedReceiver<Exit>) {
        while let Some(exit) = exits.recv().await {
            let code = exit.code.map_or_else(
                || {
                    "ended without an exit code (killed by a signal, or it never started)"
                        .to_owned()
                },
                |c| format!("exited with code {c}"),
            );
            // The reason lands in the record and an event: its last 4 KiB are plenty.
            let mut start = exit.last_lines.len().saturating_sub(4096);
            while !exit.last_lines.is_char_boundary(start) {
                start += 1;
            }
            let reason = format!(
                "the agent {code} before it registered; its last log lines:\n{}",
                // Whatever the backend: no terminal controls in the record, the event, the
                // log.
                hatchery_provision::escape_controls(&exit.last_lines[start..])
            );
            self.fail_unregistered(&exit.id, &reason).await;
        }
    }
}
