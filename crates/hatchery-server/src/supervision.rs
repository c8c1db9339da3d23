//! How the control plane watches its agents: the liveness TTL, the provisioning deadlines,
//! and the background loops that apply them (every replica runs them; the store's
//! compare-and-set writes keep transitions single).

use std::collections::BTreeMap;
use std::time::Duration;

use hatchery_store::Clock;

/// Supervision settings. `Default` is what `hatchery serve` runs with.
#[derive(Debug, Clone)]
pub struct Supervision {
    /// An `online`/`degraded` workspace not heard from for this long goes `offline`.
    pub heartbeat_ttl: Duration,
    /// The same for external workspaces (agents hatchery does not run).
    pub external_heartbeat_ttl: Duration,
    /// A workspace still `provisioning` after this long goes `failed`…
    pub provision_timeout: Duration,
    /// …or after its runtime's own timeout, when it has one.
    pub provision_timeouts: BTreeMap<String, Duration>,
    /// How often the liveness and provisioning sweeps run.
    pub sweep_interval: Duration,
    /// How often buffered heartbeat snapshots are written.
    pub heartbeat_flush_interval: Duration,
    /// Activity rows older than this are deleted.
    pub activity_retention: Duration,
    /// Events older than this are deleted (oldest first, in bounded batches each sweep);
    /// a cursor into what was deleted gets 410 `cursor_expired`.
    pub event_retention: Duration,
    /// With it, events not among this many newest are deleted too: the log keeps at most
    /// this many.
    pub event_retention_count: Option<u64>,
    /// How long a claimed provision job (or a delegation being delivered) is its runner's;
    /// renewed while the start (or the call) runs, so a runner that died gives its work up
    /// after at most this long.
    pub job_lease: Duration,
    /// Each agent's memory, CPU and process limits.
    pub agent_limits: hatchery_provision::Limits,
    /// How many agents one runner starts at the same time (an org import of a thousand
    /// workspaces does not start a thousand sandboxes at once).
    pub concurrent_starts: usize,
    /// Where "now" comes from; `None` for the system clock. Tests move it by hand.
    pub clock: Option<Clock>,
    /// An A2A call whose agent sends nothing for this long is answered 504 (a stream that
    /// goes silent this long is ended with a JSON-RPC error).
    pub a2a_idle_timeout: Duration,
    /// Fault injection for the crash tests: the process aborts (as if killed with -9) when
    /// provisioning reaches this point (see `App::crash_point`).
    pub crash_at: Option<String>,
    /// Fault injection for the tests of a restart during a start: each start waits this
    /// long after its bootstrap token is minted, before the backend starts the agent.
    pub test_start_delay: Option<Duration>,
}

/// How long an A2A call waits for a silent agent by default: 5 minutes, as Molecule (an
/// agent may think for a while before its first word).
pub const DEFAULT_A2A_IDLE_TIMEOUT: Duration = Duration::from_mins(5);

/// How long events are kept by default: 30 days.
pub const DEFAULT_EVENT_RETENTION: Duration = Duration::from_hours(30 * 24);

/// Four starts per core: a start mostly waits (a spawn, an engine, an API server).
#[must_use]
pub fn default_concurrent_starts() -> usize {
    std::thread::available_parallelism().map_or(8, |n| n.get() * 4)
}

/// Runtimes whose agents take longer to come up (hermes installs itself on first start).
pub const DEFAULT_RUNTIME_TIMEOUTS: &[(&str, Duration)] = &[("hermes", Duration::from_mins(30))];

impl Default for Supervision {
    fn default() -> Self {
        Self {
            heartbeat_ttl: Duration::from_mins(1),
            external_heartbeat_ttl: Duration::from_secs(90),
            provision_timeout: Duration::from_mins(10),
            provision_timeouts: DEFAULT_RUNTIME_TIMEOUTS
                .iter()
                .map(|(runtime, timeout)| ((*runtime).to_owned(), *timeout))
                .collect(),
            sweep_interval: Duration::from_secs(5),
            heartbeat_flush_interval: Duration::from_secs(1),
            activity_retention: Duration::from_hours(7 * 24),
            event_retention: DEFAULT_EVENT_RETENTION,
            event_retention_count: None,
            job_lease: Duration::from_secs(30),
            agent_limits: hatchery_provision::Limits::default(),
            concurrent_starts: default_concurrent_starts(),
            a2a_idle_timeout: DEFAULT_A2A_IDLE_TIMEOUT,
            clock: None,
            crash_at: None,
            test_start_delay: None,
        }
    }
}

impl Supervision {
    /// The provisioning deadline of a runtime.
    #[must_use]
    pub fn provision_timeout_of(&self, runtime: &str) -> Duration {
        self.provision_timeouts
            .get(runtime)
            .copied()
            .unwrap_or(self.provision_timeout)
    }
}

/// A `runtime=duration,…` list, e.g. `hermes=30m,codex=15m`.
pub fn parse_runtime_timeouts(text: &str) -> Result<BTreeMap<String, Duration>, String> {
    let mut timeouts = BTreeMap::new();
    for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (runtime, duration) = entry
            .split_once('=')
            .ok_or_else(|| format!("{entry:?}: expected runtime=duration, e.g. hermes=30m"))?;
        let duration =
            humantime::parse_duration(duration.trim()).map_err(|e| format!("{entry:?}: {e}"))?;
        if duration.is_zero() {
            return Err(format!("{entry:?}: a timeout must be longer than zero"));
        }
        timeouts.insert(runtime.trim().to_owned(), duration);
    }
    Ok(timeouts)
}

/// Microseconds of a duration, saturating.
#[must_use]
pub fn micros(duration: Duration) -> i64 {
    i64::try_from(duration.as_micros()).unwrap_or(i64::MAX)
}

/// A failure a background loop may see: the database away (worth waiting out), or
/// anything else.
pub trait MaybeOutage: std::fmt::Display {
    /// The database could not be reached.
    fn is_outage(&self) -> bool;

    /// What the log says: the error with its cause.
    fn detail(&self) -> String {
        self.to_string()
    }
}

impl MaybeOutage for hatchery_store::StoreError {
    fn is_outage(&self) -> bool {
        self.is_unavailable()
    }
}

impl MaybeOutage for crate::app::Error {
    fn is_outage(&self) -> bool {
        self.is_outage()
    }

    /// The internal context a client never sees, which the log must.
    fn detail(&self) -> String {
        self.detail()
    }
}

/// What a background loop says about the database: the first failed round of an outage
/// and the first good round after it, not every round in between (a loop that polls four
/// times a second would otherwise fill the log for as long as the database is away).
/// Failures that are not an outage are logged every time: they are bugs, not weather.
#[derive(Debug)]
pub struct OutageLog {
    task: &'static str,
    /// When the outage began, and how many rounds failed since.
    down: Option<(std::time::Instant, u64)>,
}

impl OutageLog {
    /// The log of `task` (`"the event tailer"`, …).
    #[must_use]
    pub const fn new(task: &'static str) -> Self {
        Self { task, down: None }
    }

    /// A round failed with `error`.
    pub fn failed(&mut self, error: &impl MaybeOutage) {
        if !error.is_outage() {
            tracing::warn!(
                task = self.task,
                error = error.detail(),
                "background work failed; retrying"
            );
            return;
        }
        if let Some((_, rounds)) = &mut self.down {
            *rounds += 1;
            tracing::debug!(
                task = self.task,
                error = error.detail(),
                "database still unavailable"
            );
        } else {
            self.down = Some((std::time::Instant::now(), 1));
            tracing::warn!(
                task = self.task,
                error = error.detail(),
                "database unavailable: retrying until it is back (logged again when it is)"
            );
        }
    }

    /// A round reached the database.
    pub fn succeeded(&mut self) {
        if let Some((since, rounds)) = self.down.take() {
            tracing::info!(task = self.task, down_for = ?since.elapsed(), failed_rounds = rounds, "database reachable again: resumed");
        }
    }

    /// Whether the last round that touched the database found it away.
    #[must_use]
    pub fn is_down(&self) -> bool {
        self.down.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtime_timeouts_parse_and_refuse_nonsense() {
        let parsed = parse_runtime_timeouts("hermes=30m, codex = 90s").unwrap();
        assert_eq!(parsed["hermes"], Duration::from_mins(30));
        assert_eq!(parsed["codex"], Duration::from_secs(90));
        assert!(
            parse_runtime_timeouts("hermes")
                .unwrap_err()
                .contains("runtime=duration")
        );
        assert!(parse_runtime_timeouts("hermes=soon").is_err());
        assert!(
            parse_runtime_timeouts("hermes=0s")
                .unwrap_err()
                .contains("longer than zero")
        );
        assert!(parse_runtime_timeouts("").unwrap().is_empty());
    }

    #[test]
    fn an_outage_is_one_state_from_its_first_failure_to_its_first_success() {
        let away = crate::app::Error::database("connection refused");
        let bug = crate::app::Error::internal("failed", "no such column");
        let mut log = OutageLog::new("a test loop");
        log.failed(&bug);
        assert!(!log.is_down(), "a bug is not an outage");
        log.failed(&away);
        log.failed(&away);
        assert!(log.is_down());
        assert_eq!(log.down.map(|(_, rounds)| rounds), Some(2));
        log.succeeded();
        assert!(!log.is_down());
    }

    #[test]
    fn a_runtime_without_its_own_timeout_gets_the_default() {
        let supervision = Supervision::default();
        assert_eq!(
            supervision.provision_timeout_of("hermes"),
            Duration::from_mins(30)
        );
        assert_eq!(
            supervision.provision_timeout_of("codex"),
            Duration::from_mins(10)
        );
    }
}
