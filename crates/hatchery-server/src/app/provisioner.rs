//! The job runner: claims provision jobs with a lease, starts agents through the backend,
//! retries transient failures with back-off, fails the workspace (with the reason) on
//! permanent ones, and turns an agent that died before registering into `failed` with its
//! exit code and last log lines. Every replica runs one; the lease keeps each job to one.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use hatchery_core::WorkspaceStatus;
use hatchery_provision::{Backend, BackendError, Exit, WorkspaceSpec};
use hatchery_store::{ClaimedJob, JobLease};
use tokio::sync::Notify;

use super::access::JobBootstrap;
use super::{App, Error, Service, store_error};
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
    /// This process's name on the job leases it takes.
    pub owner: String,
    /// This replica's lasting name (kept in its data directory), on the lease it renews
    /// while it lives and, for a backend whose agents die with their control plane, on the
    /// agents it runs (another replica adopts them when it dies).
    pub replica: String,
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
    /// This replica's name on the agents it runs, when its backend's agents die with it
    /// (engines' and clusters' outlive it: nobody owns them).
    #[must_use]
    pub fn agent_owner(&self) -> Option<&str> {
        (!self.backend.agents_outlive_control_plane()).then_some(self.replica.as_str())
    }

    /// A runner for `backend`, named uniquely.
    #[must_use]
    pub fn new(backend: Arc<dyn Backend>, replica: String) -> Self {
        Self {
            backend,
            owner: format!("runner-{}", uuid::Uuid::new_v4().simple()),
            replica,
            wake: Notify::new(),
        }
    }
}

/// Whether a workspace whose agent just started was stopped while it started: its agent
/// must not run.
fn stopped_meanwhile(status: WorkspaceStatus) -> bool {
    matches!(
        status,
        WorkspaceStatus::Paused | WorkspaceStatus::Removed | WorkspaceStatus::Failed
    )
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
    pub async fn agent_logs(&self, id: &str, lines: usize) -> Result<String, Error> {
        let Some(provisioner) = &self.provisioner else {
            return Ok(String::new());
        };
        provisioner
            .backend
            .logs(id, lines)
            .await
            .map_err(|e| Error::internal("failed to read logs", e))
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
    pub async fn reconcile(&self) -> Result<usize, Error> {
        let Some(provisioner) = &self.provisioner else {
            return Ok(0);
        };
        let running = provisioner
            .backend
            .running()
            .await
            .map_err(|e| Error::internal("reconcile failed", e))?;
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
            let wanted = row.is_some_and(|w| !w.external && w.status.wants_agent());
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
            .launched_without_job(provisioner.agent_owner())
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

    /// Every third of a lease: renew this replica's lease and, for a backend whose agents
    /// die with their control plane, keep its agents matched with the database: stop those
    /// whose workspace must not run or that another replica now runs (a stop or a restart
    /// handled there), and start again the agents of a replica that died (its lease ran
    /// out).
    pub async fn supervise_agents(self) {
        let Some(provisioner) = self.provisioner.clone() else {
            return;
        };
        let every = (self.supervision.job_lease / 3).max(Duration::from_millis(100));
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            if let Err(error) = self.supervise_agents_once(&provisioner).await {
                tracing::warn!(%error, "cannot supervise this replica's agents; trying again");
            }
        }
    }

    async fn supervise_agents_once(&self, provisioner: &Provisioner) -> Result<(), String> {
        let until = self
            .store
            .now()
            .saturating_add(micros(self.supervision.job_lease));
        self.store
            .replica_renew(&provisioner.replica, provisioner.backend.name(), until)
            .await
            .map_err(|e| e.to_string())?;
        let Some(replica) = provisioner.agent_owner() else {
            return Ok(());
        };
        let running = provisioner
            .backend
            .running()
            .await
            .map_err(|e| e.to_string())?;
        let owned: std::collections::HashSet<String> = self
            .store
            .agents_owned(replica)
            .await
            .map_err(|e| e.to_string())?
            .into_iter()
            .collect();
        let stop: Vec<String> = running
            .into_iter()
            .filter(|id| !owned.contains(id))
            .collect();
        if !stop.is_empty() {
            tracing::info!(
                count = stop.len(),
                "stopping agents whose workspaces must not run here"
            );
            self.stop_agents(&stop).await;
        }
        let orphans = self
            .store
            .agents_orphaned()
            .await
            .map_err(|e| e.to_string())?;
        let mut adopted = 0;
        for id in orphans {
            match self
                .store
                .agent_adopt(&id, "its control-plane replica stopped renewing its lease")
                .await
            {
                Ok(true) => adopted += 1,
                Ok(false) => {}
                Err(error) => tracing::warn!(%error, workspace_id = %id, "cannot adopt an agent"),
            }
        }
        if adopted > 0 {
            tracing::info!(
                count = adopted,
                "starting again the agents of a replica that stopped"
            );
            self.tokens.clear();
            self.hub.poke();
            self.wake_provisioner();
        }
        Ok(())
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
        let mut outage = crate::supervision::OutageLog::new("the provisioner");
        loop {
            if in_flight.len() < self.supervision.concurrent_starts.max(1) {
                let lease_until = self
                    .store
                    .now()
                    .saturating_add(micros(self.supervision.job_lease));
                let claimed = self.store.job_claim(&provisioner.owner, lease_until).await;
                match &claimed {
                    Ok(_) => outage.succeeded(),
                    Err(error) => outage.failed(error),
                }
                if let Ok(Some(job)) = claimed {
                    let (app, provisioner) = (self.clone(), Arc::clone(&provisioner));
                    in_flight.spawn(async move { app.run_job(&provisioner, job).await });
                    continue;
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
        let workspace_id = job.workspace_id.as_str();
        let row = match self.store.workspace_get(workspace_id).await {
            Ok(Some(row)) => row,
            Ok(None) => {
                self.close_job(&job.id, owner, workspace_id, "cancelled")
                    .await;
                return;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot read the workspace of a job; retrying later");
                let _ = self.store.job_retry(&job.id, owner, self.store.now()).await;
                return;
            }
        };
        if row.status != WorkspaceStatus::Provisioning || row.external {
            // Registered meanwhile, paused, removed, or an agent hatchery does not run.
            self.close_job(&job.id, owner, workspace_id, "cancelled")
                .await;
            return;
        }
        // This attempt's mark: a failure it reports must not fail a later attempt.
        let attempt_since = row.provisioning_since.unwrap_or(row.updated_at);
        self.crash_point("job-claimed");
        let started = match self.spec_of(&row, &job.id, owner).await {
            Ok(Prepared::Ready(spec)) => {
                if let Some(delay) = self.supervision.test_start_delay {
                    tokio::time::sleep(delay).await;
                }
                // Asked again just before the start: a restart since the token was minted
                // means nothing starts at all.
                let mut lease = self.lease_now(&job.id, owner).await;
                let mut started = Ok(());
                if lease == JobLease::Held {
                    (started, lease) = self
                        .renewing(&job.id, owner, self.start_agent(provisioner, &job, &spec))
                        .await;
                }
                match lease {
                    JobLease::Held => started,
                    JobLease::Superseded => {
                        return self.abandon(&job.id, owner, workspace_id).await;
                    }
                    JobLease::Lost => return lease_lost(workspace_id),
                }
            }
            // Replaced before its start (a restart, pause or delete): nothing ran.
            Ok(Prepared::NotOurs(JobLease::Superseded)) => {
                return self.abandon(&job.id, owner, workspace_id).await;
            }
            Ok(Prepared::NotOurs(_)) => return lease_lost(workspace_id),
            Err(error) => Err(error),
        };
        match started {
            Ok(()) => {
                tracing::info!(
                    workspace_id,
                    backend = provisioner.backend.name(),
                    "agent started"
                );
                self.crash_point("agent-started");
                if !self.close_job(&job.id, owner, workspace_id, "done").await {
                    return;
                }
                self.crash_point("job-done");
                // Paused or deleted while it started: it must not run. (If the database
                // cannot say, it runs: the sweeps settle it, a healthy agent is not killed.)
                match self.store.workspace_get(workspace_id).await {
                    Ok(now) if now.as_ref().is_none_or(|w| stopped_meanwhile(w.status)) => {
                        self.stop_agents(&[workspace_id.to_owned()]).await;
                    }
                    Ok(_) => {}
                    Err(error) => {
                        tracing::warn!(%error, workspace_id, "cannot read the workspace after its start");
                    }
                }
            }
            Err(BackendError::Transient(reason)) if job.attempts < MAX_ATTEMPTS => {
                let back_off = Duration::from_secs(1 << job.attempts.clamp(0, 6));
                tracing::warn!(workspace_id, %reason, ?back_off, "start failed; will retry");
                let not_before = self.store.now().saturating_add(micros(back_off));
                if let Ok(false) = self.store.job_retry(&job.id, owner, not_before).await
                    && self.lease_now(&job.id, owner).await == JobLease::Superseded
                {
                    self.abandon(&job.id, owner, workspace_id).await;
                }
            }
            Err(error) => {
                let reason = format!(
                    "the {} backend could not start the agent after {} attempt(s): {error}",
                    provisioner.backend.name(),
                    job.attempts
                );
                if self.close_job(&job.id, owner, workspace_id, "failed").await {
                    self.fail_unregistered(workspace_id, Some(attempt_since), &reason)
                        .await;
                }
            }
        }
    }

    /// Run `work` while renewing the job's lease, so a long start (an image to import, a
    /// pod to schedule) is not taken over by another runner. Also what became of the lease
    /// meanwhile: still held, superseded by a newer job, or lost to another runner.
    async fn renewing<T>(
        &self,
        job: &str,
        owner: &str,
        work: impl Future<Output = T>,
    ) -> (T, JobLease) {
        let lease = self.supervision.job_lease;
        let every = (lease / 3).max(Duration::from_millis(10));
        let mut work = std::pin::pin!(work);
        let mut renew = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        let mut held = JobLease::Held;
        loop {
            tokio::select! {
                done = &mut work => return (done, held),
                _ = renew.tick(), if held != JobLease::Lost => held = self.lease_now(job, owner).await,
            }
        }
    }

    /// Renew the job's lease and say what this runner holds of it. A database that cannot
    /// answer leaves it held: what follows finds out at the job's close.
    async fn lease_now(&self, job: &str, owner: &str) -> JobLease {
        let until = self
            .store
            .now()
            .saturating_add(micros(self.supervision.job_lease));
        self.store
            .job_renew(job, owner, until)
            .await
            .unwrap_or_else(|error| {
                tracing::warn!(%error, job, "cannot renew the job's lease");
                JobLease::Held
            })
    }

    /// Start the agent of `spec`. A restart's job replaces whatever agent still runs
    /// (a start is otherwise idempotent and keeps a running agent, which after a restart
    /// holds only revoked tokens).
    async fn start_agent(
        &self,
        provisioner: &Provisioner,
        job: &ClaimedJob,
        spec: &WorkspaceSpec,
    ) -> Result<(), BackendError> {
        if job.kind == "restart" {
            provisioner.backend.stop(&spec.id).await?;
        }
        provisioner.backend.start(spec).await
    }

    /// Close a job as `state`. `false` when it is no longer this runner's to close:
    /// superseded (what it started is stopped and the newer job goes on) or lost.
    async fn close_job(&self, job: &str, owner: &str, workspace_id: &str, state: &str) -> bool {
        match self.store.job_finish(job, owner, state).await {
            Ok(true) => true,
            Ok(false) => {
                if self.lease_now(job, owner).await == JobLease::Superseded {
                    self.abandon(job, owner, workspace_id).await;
                }
                false
            }
            Err(error) => {
                tracing::warn!(%error, job, "cannot close the job");
                true
            }
        }
    }

    /// A superseded job's end: the agent it may have started is stopped, then the job is
    /// let go so the one that replaced it runs.
    async fn abandon(&self, job: &str, owner: &str, workspace_id: &str) {
        tracing::info!(
            workspace_id,
            "the start was superseded (restart, pause or delete); stopping what it started"
        );
        self.stop_agents(&[workspace_id.to_owned()]).await;
        if let Err(error) = self.store.job_release(job, owner).await {
            tracing::warn!(%error, job, "cannot let go of a superseded job; its lease runs out instead");
        }
        self.wake_provisioner();
    }

    /// What the backend needs to start `row`'s agent for job `job`: its config files, its
    /// secrets and exactly the credential its billing decision names as environment, and
    /// a fresh bootstrap token, minted only while the job is still this runner's.
    async fn spec_of(
        &self,
        row: &hatchery_store::WorkspaceRow,
        job: &str,
        owner: &str,
    ) -> Result<Prepared, BackendError> {
        let files = self
            .store
            .workspace_files(&row.id)
            .await
            .map_err(store_error("failed to read the workspace's config"))
            .map_err(retry_or_fail)?
            .into_iter()
            .map(|f| (f.path, f.content))
            .collect();
        let mut env: BTreeMap<String, String> = if self.secrets_key.is_some() {
            self.secret_values_of(&row.id)
                .await
                .map_err(retry_or_fail)?
        } else {
            let stored = self
                .store
                .secret_list(&hatchery_store::workspace_scope(&row.id))
                .await
                .map_err(store_error("failed to read secrets"))
                .map_err(retry_or_fail)?;
            if !stored.is_empty() {
                // Starting without them would be a silent guess.
                return Err(retry_or_fail(Error::Unavailable(
                    Service::SecretsKeyMissing,
                )));
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
        let snapshot = self.registry.snapshot();
        supply_credential(
            &Billing {
                mode: row.llm_billing_mode.as_deref(),
                provider: row.provider.as_deref(),
                registry_hash: &row.registry_hash,
            },
            snapshot
                .as_ref()
                .map(|s| &s.registry)
                .map_err(ToString::to_string),
            self.platform_key.as_ref().map(super::PlatformKey::expose),
            &mut env,
        )
        .map_err(BackendError::Permanent)?;
        let mut files: Vec<(String, String)> = files;
        if let Some(manifest) = snapshot.as_ref().ok().and_then(|s| s.manifest.as_ref()) {
            // The agent checks its provider against the manifest that derived it.
            files.push(("providers.yaml".to_owned(), manifest.to_string()));
        }
        let bootstrap_token = match self
            .bootstrap_issue_for_job(row, job, owner)
            .await
            .map_err(retry_or_fail)?
        {
            JobBootstrap::Issued(token) => token,
            JobBootstrap::NotHeld(lease) => return Ok(Prepared::NotOurs(lease)),
        };
        Ok(Prepared::Ready(Box::new(WorkspaceSpec {
            id: row.id.clone(),
            runtime: row.runtime.clone(),
            files,
            env: env.into_iter().collect(),
            bootstrap_token,
            // Three beats per TTL: one lost beat never takes an agent offline.
            heartbeat_interval: self.supervision.heartbeat_ttl / 3,
            limits: self.supervision.agent_limits,
        })))
    }

    /// Fail a workspace that is still `provisioning`, with `reason` — still in the attempt
    /// that began at `attempt_since`, when the caller knows which (a later attempt, after
    /// a restart, is not this failure's to end).
    async fn fail_unregistered(&self, id: &str, attempt_since: Option<i64>, reason: &str) {
        let Ok(Some(row)) = self.store.workspace_get(id).await else {
            return;
        };
        if row.status != WorkspaceStatus::Provisioning {
            return;
        }
        let since = row.provisioning_since.unwrap_or(row.updated_at);
        if attempt_since.is_some_and(|attempt| attempt != since) {
            return;
        }
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
            self.fail_unregistered(&exit.id, None, &reason).await;
        }
    }
}

/// What preparing a start came to.
enum Prepared {
    /// Everything the backend needs.
    Ready(Box<WorkspaceSpec>),
    /// The job is no longer this runner's to start: superseded, or taken over.
    NotOurs(JobLease),
}

/// Another runner has the job now: its start decides (it replaces this agent or keeps
/// it), so this one neither closes the job nor fails the workspace.
fn lease_lost(workspace_id: &str) {
    tracing::warn!(
        workspace_id,
        "lost the job's lease while starting; leaving it to its new runner"
    );
}

/// What a workspace's row says of who pays for its model calls.
struct Billing<'r> {
    /// `platform`, `byok`, or `None` (no provider: pass-through).
    mode: Option<&'r str>,
    /// The provider stamped at create (or at the last runtime change).
    provider: Option<&'r str>,
    /// The registry that stamped it.
    registry_hash: &'r str,
}

/// Put into `env` exactly the credential `billing` names, or say why the start must not
/// happen. Fail closed: a platform-billed start without the platform credential, a
/// provider the registry in force no longer has (or bills otherwise), no registry at all,
/// or a BYOK start whose key secret is gone, is refused, never started keyless.
fn supply_credential(
    billing: &Billing<'_>,
    registry: Result<&hatchery_registry::Registry, String>,
    platform_key: Option<&str>,
    env: &mut BTreeMap<String, String>,
) -> Result<(), String> {
    let Some(mode) = billing.mode else {
        return match billing.provider {
            None => Ok(()),
            Some(provider) => Err(format!(
                "the workspace records provider `{provider}` but no billing mode: re-create it"
            )),
        };
    };
    let Some(name) = billing.provider else {
        return Err(format!(
            "the workspace is billed `{mode}` but records no provider: re-create it"
        ));
    };
    let registry = registry.map_err(|reason| {
        format!("cannot confirm provider `{name}`: the provider registry is unavailable ({reason}); restart the workspace once a registry is loaded")
    })?;
    let provider = registry.provider(name).map_err(|_| {
        format!(
            "provider `{name}` (stamped by registry {}) is not in the registry in force ({}): restore it in the manifest, or change the workspace's runtime or model, then restart it",
            billing.registry_hash,
            registry.hash()
        )
    })?;
    let billed = hatchery_core::BillingMode::of(provider).as_str();
    if billed != mode {
        return Err(format!(
            "provider `{name}` is billed `{billed}` in the registry in force ({}), but the workspace was created `{mode}`: re-create it",
            registry.hash()
        ));
    }
    if mode == "platform" {
        let key = platform_key.ok_or_else(|| {
            format!("the workspace is platform-billed (provider `{name}`), but this control plane has no platform credential: set HATCHERY_PLATFORM_KEY, restart the server, then restart the workspace")
        })?;
        for variable in &provider.auth_env {
            env.insert(variable.clone(), key.to_owned());
        }
        return Ok(());
    }
    let held = provider
        .auth_env
        .iter()
        .any(|variable| env.get(variable).is_some_and(|value| !value.is_empty()));
    if held {
        Ok(())
    } else {
        Err(format!(
            "the workspace brings its own key (provider `{name}`), but no secret holds it (one of {}): set it as a secret of the workspace or a global one, then restart the workspace",
            provider.auth_env.join(", ")
        ))
    }
}

/// A failure to prepare a start, as the backend's kind of failure: tried again with
/// back-off when [`Error::is_transient`] (the database away, a failure inside), final
/// otherwise (no secrets key, secrets that do not decrypt: a person must act). Either way
/// the reason is the client-facing message, never the internal context: it lands in the
/// workspace's record.
fn retry_or_fail(error: Error) -> BackendError {
    match error {
        error if error.is_transient() => BackendError::Transient(error.to_string()),
        error => BackendError::Permanent(error.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use hatchery_registry::{BUILTIN_MANIFEST, Registry};

    use super::*;

    fn registry() -> Registry {
        Registry::from_bytes(BUILTIN_MANIFEST).unwrap()
    }

    fn billing<'r>(mode: Option<&'r str>, provider: Option<&'r str>) -> Billing<'r> {
        Billing {
            mode,
            provider,
            registry_hash: "stamped",
        }
    }

    #[test]
    fn a_platform_billed_start_gets_the_platform_credential_or_does_not_happen() {
        let registry = registry();
        let platform = billing(Some("platform"), Some("platform"));
        let mut env = BTreeMap::new();
        supply_credential(&platform, Ok(&registry), Some("gw-key"), &mut env).unwrap();
        assert_eq!(
            env.get("HATCHERY_LLM_USAGE_TOKEN").map(String::as_str),
            Some("gw-key")
        );

        let mut env = BTreeMap::new();
        let refused = supply_credential(&platform, Ok(&registry), None, &mut env).unwrap_err();
        assert!(refused.contains("HATCHERY_PLATFORM_KEY"), "{refused}");
        assert!(env.is_empty(), "nothing half-supplied");

        let refused = supply_credential(
            &platform,
            Err("no snapshot loaded".to_owned()),
            Some("gw-key"),
            &mut BTreeMap::new(),
        )
        .unwrap_err();
        assert!(refused.contains("registry is unavailable"), "{refused}");
    }

    #[test]
    fn a_provider_the_registry_no_longer_has_or_bills_otherwise_refuses_the_start() {
        let registry = registry();
        let renamed = billing(Some("byok"), Some("anthropic-renamed"));
        let mut env = BTreeMap::from([("ANTHROPIC_API_KEY".to_owned(), "sk".to_owned())]);
        let refused = supply_credential(&renamed, Ok(&registry), Some("gw"), &mut env).unwrap_err();
        assert!(refused.contains("`anthropic-renamed`"), "{refused}");
        assert!(
            refused.contains("not in the registry in force"),
            "{refused}"
        );

        let rebilled = billing(Some("platform"), Some("anthropic-api"));
        let refused = supply_credential(&rebilled, Ok(&registry), Some("gw"), &mut BTreeMap::new())
            .unwrap_err();
        assert!(refused.contains("billed `byok`"), "{refused}");

        let providerless = billing(Some("platform"), None);
        assert!(
            supply_credential(
                &providerless,
                Ok(&registry),
                Some("gw"),
                &mut BTreeMap::new()
            )
            .is_err()
        );
    }

    #[test]
    fn a_byok_start_needs_its_key_secret_and_pass_through_needs_nothing() {
        let registry = registry();
        let byok = billing(Some("byok"), Some("anthropic-api"));
        let mut env = BTreeMap::from([("ANTHROPIC_API_KEY".to_owned(), "sk-own".to_owned())]);
        supply_credential(&byok, Ok(&registry), Some("gw"), &mut env).unwrap();
        assert_eq!(
            env.len(),
            1,
            "the platform credential is not added: {env:?}"
        );

        for held in [
            BTreeMap::new(),
            BTreeMap::from([("ANTHROPIC_API_KEY".to_owned(), String::new())]),
        ] {
            let mut env = held;
            let refused =
                supply_credential(&byok, Ok(&registry), Some("gw"), &mut env).unwrap_err();
            assert!(refused.contains("ANTHROPIC_API_KEY"), "{refused}");
        }

        let pass_through = billing(None, None);
        let mut env = BTreeMap::new();
        supply_credential(&pass_through, Err("gone".to_owned()), None, &mut env).unwrap();
        assert!(env.is_empty());
    }
}
