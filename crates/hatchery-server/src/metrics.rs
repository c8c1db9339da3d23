//! A few counters in Prometheus' text format. (The full metrics surface arrives with the
//! CLI and dashboard work.)

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::registry_source::LiveRegistry;

/// Counters the server keeps.
#[derive(Debug, Default)]
pub struct Metrics {
    workspaces_created: AtomicU64,
}

impl Metrics {
    /// Count one created workspace.
    pub fn workspace_created(&self) {
        self.workspaces_created.fetch_add(1, Ordering::Relaxed);
    }

    /// The exposition text.
    #[must_use]
    pub fn render(&self, registry: &LiveRegistry) -> String {
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
        out
    }
}
