//! A few counters in Prometheus' text format. (The full metrics surface arrives with the
//! CLI and dashboard work.)

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::registry_source::LiveRegistry;

/// Counters the server keeps.
#[derive(Debug, Default)]
pub struct Metrics {
    workspaces_created: AtomicU64,
    heartbeats: AtomicU64,
    expired: AtomicU64,
    provisioning_failed: AtomicU64,
}

/// Gauges read at render time.
#[derive(Debug, Clone, Copy, Default)]
pub struct Gauges {
    /// Live event stream subscribers.
    pub subscribers: usize,
    /// Heartbeats waiting to be written.
    pub buffered_heartbeats: usize,
}

impl Metrics {
    /// Count one accepted heartbeat.
    pub fn heartbeat(&self) {
        self.heartbeats.fetch_add(1, Ordering::Relaxed);
    }

    /// Count workspaces the liveness sweep marked offline.
    pub fn expired(&self, count: usize) {
        self.expired.fetch_add(count as u64, Ordering::Relaxed);
    }

    /// Count workspaces the provisioning sweep failed.
    pub fn provisioning_failed(&self, count: usize) {
        self.provisioning_failed
            .fetch_add(count as u64, Ordering::Relaxed);
    }

    /// Count one created workspace.
    pub fn workspace_created(&self) {
        self.workspaces_created.fetch_add(1, Ordering::Relaxed);
    }

    /// The exposition text.
    #[must_use]
    pub fn render(&self, registry: &LiveRegistry, gauges: Gauges) -> String {
        let (reloads, failures) = registry.reload_counts();
        let available = u8::from(registry.snapshot().is_ok());
        let mut out = String::new();
        let mut counter = |name: &str, help: &str, kind: &str, value: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        };
        counter(
            "hatchery_registry_reloads_total",
            "Registry reloads attempted since start.",
            "counter",
            reloads,
        );
        counter(
            "hatchery_registry_reload_failures_total",
            "Registry reloads refused since start (the last good snapshot stayed in force).",
            "counter",
            failures,
        );
        counter(
            "hatchery_registry_available",
            "1 when a registry snapshot is in force.",
            "gauge",
            u64::from(available),
        );
        counter(
            "hatchery_workspaces_created_total",
            "Workspaces created since start.",
            "counter",
            self.workspaces_created.load(Ordering::Relaxed),
        );
        counter(
            "hatchery_heartbeats_total",
            "Heartbeats accepted since start.",
            "counter",
            self.heartbeats.load(Ordering::Relaxed),
        );
        counter(
            "hatchery_liveness_expired_total",
            "Workspaces marked offline by this replica for missing heartbeats.",
            "counter",
            self.expired.load(Ordering::Relaxed),
        );
        counter(
            "hatchery_provisioning_failed_total",
            "Workspaces failed by this replica for passing their provisioning deadline.",
            "counter",
            self.provisioning_failed.load(Ordering::Relaxed),
        );
        counter(
            "hatchery_event_subscribers",
            "Live event stream subscribers (SSE and WebSocket).",
            "gauge",
            gauges.subscribers as u64,
        );
        counter(
            "hatchery_buffered_heartbeats",
            "Heartbeats waiting for the next write.",
            "gauge",
            gauges.buffered_heartbeats as u64,
        );
        out
    }
}
