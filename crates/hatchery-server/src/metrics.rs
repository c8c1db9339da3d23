//! Prometheus metrics (`prometheus-client`, `OpenMetrics` text at `GET /metrics`).
//!
//! Counted as things happen: workspaces created, derivation outcomes, heartbeats, liveness
//! expiries, provisioning failures, how long provisioning took (create → online), and every
//! HTTP request's duration by method, route and status. Read at each scrape: workspaces by
//! status and backend, the provision queue's depth and oldest job, the stalest heartbeat of
//! a live workspace, event subscribers, buffered heartbeats, and the registry's state.

use std::sync::{Arc, Mutex};

use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// The content type of the exposition.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Labels of a request's duration.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    route: String,
    status: u16,
}

/// Labels of a derivation's outcome.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: String,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// What is read at each scrape, gathered (asynchronously) just before it.
#[derive(Debug, Clone, Default)]
pub struct Scrape {
    /// Registry reloads attempted, and refused.
    pub registry_reloads: (u64, u64),
    /// Whether a registry snapshot is in force.
    pub registry_available: bool,
    /// Live event stream subscribers.
    pub subscribers: usize,
    /// The estimated memory of the event batches kept for subscribers.
    pub event_buffer_bytes: usize,
    /// Heartbeats waiting to be written.
    pub buffered_heartbeats: usize,
    /// The backend hatchery's own workspaces run on (`local`, `docker`, …, `none`).
    pub backend: &'static str,
    /// What the database says.
    pub stats: hatchery_store::Stats,
    /// Now, in microseconds since the epoch (ages are measured against it).
    pub now: i64,
}

/// The scrape-time values, as a collector of the registry.
#[derive(Debug, Default)]
struct ScrapeCollector(Mutex<Scrape>);

/// The server's metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    workspaces_created: Counter,
    heartbeats: Counter,
    expired: Counter,
    provisioning_failed: Counter,
    derive_outcomes: Family<OutcomeLabels, Counter>,
    provision_duration: Histogram,
    requests: HistogramFamily<RequestLabels>,
    scrape: Arc<ScrapeCollector>,
}

fn request_histogram() -> Histogram {
    // 0.5 ms … ~16 s.
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

impl Default for Metrics {
    fn default() -> Self {
        let mut metrics = Self {
            registry: Registry::default(),
            workspaces_created: Counter::default(),
            heartbeats: Counter::default(),
            expired: Counter::default(),
            provisioning_failed: Counter::default(),
            derive_outcomes: Family::default(),
            // 10 ms … ~3 h: sandboxes come up in milliseconds, hermes in many minutes.
            provision_duration: Histogram::new(exponential_buckets(0.01, 2.0, 21)),
            requests: Family::new_with_constructor(request_histogram),
            scrape: Arc::default(),
        };
        let registry = &mut metrics.registry;
        for (name, help, counter) in [
            (
                "hatchery_workspaces_created",
                "Workspaces created since start.",
                &metrics.workspaces_created,
            ),
            (
                "hatchery_heartbeats",
                "Heartbeats accepted since start.",
                &metrics.heartbeats,
            ),
            (
                "hatchery_liveness_expired",
                "Workspaces marked offline by this replica for missing heartbeats.",
                &metrics.expired,
            ),
            (
                "hatchery_provisioning_failed",
                "Workspaces this replica failed while provisioning (deadline passed, agent died, backend refused).",
                &metrics.provisioning_failed,
            ),
        ] {
            registry.register(name, help, counter.clone());
        }
        registry.register(
            "hatchery_derive_outcomes",
            "Provider decisions of creates and runtime changes, by outcome (the provider's source, or the refusal's code).",
            metrics.derive_outcomes.clone(),
        );
        registry.register(
            "hatchery_provision_duration_seconds",
            "From entering provisioning (a create, restart or relaunch) to the agent's registration.",
            metrics.provision_duration.clone(),
        );
        registry.register(
            "hatchery_http_request_duration_seconds",
            "HTTP requests by method, route and status.",
            metrics.requests.clone(),
        );
        registry.register_collector(Box::new(Arc::clone(&metrics.scrape)));
        metrics
    }
}

impl Metrics {
    /// Count one accepted heartbeat.
    pub fn heartbeat(&self) {
        self.heartbeats.inc();
    }

    /// Count workspaces the liveness sweep marked offline.
    pub fn expired(&self, count: usize) {
        self.expired.inc_by(count as u64);
    }

    /// Count workspaces that failed while provisioning.
    pub fn provisioning_failed(&self, count: usize) {
        self.provisioning_failed.inc_by(count as u64);
    }

    /// Count one created workspace.
    pub fn workspace_created(&self) {
        self.workspaces_created.inc();
    }

    /// Count one provider decision: its source (`derived:exact_model`, …) or its refusal's
    /// code (`provider_derivation_failed`, …).
    pub fn derive_outcome(&self, outcome: &str) {
        self.derive_outcomes
            .get_or_create(&OutcomeLabels {
                outcome: outcome.to_owned(),
            })
            .inc();
    }

    /// Record how long a workspace took from provisioning to online.
    pub fn provisioned(&self, micros: i64) {
        #[allow(clippy::cast_precision_loss, reason = "a duration in seconds")]
        self.provision_duration.observe(micros.max(0) as f64 / 1e6);
    }

    /// Record one request.
    pub fn request(&self, method: String, route: String, status: u16, seconds: f64) {
        self.requests
            .get_or_create(&RequestLabels {
                method,
                route,
                status,
            })
            .observe(seconds);
    }

    /// The exposition text, with `scrape` as the scrape-time values.
    #[must_use]
    pub fn render(&self, scrape: Scrape) -> String {
        *self
            .scrape
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = scrape;
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// Seconds from `then` to `now` (microseconds), 0 when there is no `then`.
#[allow(clippy::cast_precision_loss, reason = "an age in seconds")]
fn age_seconds(now: i64, then: Option<i64>) -> f64 {
    then.map_or(0.0, |then| now.saturating_sub(then).max(0) as f64 / 1e6)
}

/// One metric without labels, under `name`.
fn encode_one(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    metric: &impl EncodeMetric,
) -> Result<(), std::fmt::Error> {
    metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
}

impl prometheus_client::collector::Collector for ScrapeCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let scrape = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let (reloads, failures) = scrape.registry_reloads;
        for (name, help, value) in [
            (
                "hatchery_registry_reloads",
                "Registry reloads attempted since start.",
                reloads,
            ),
            (
                "hatchery_registry_reload_failures",
                "Registry reloads refused since start (the last good snapshot stayed in force).",
                failures,
            ),
        ] {
            encode_one(&mut encoder, name, help, &ConstCounter::new(value))?;
        }
        let as_gauge = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        for (name, help, value) in [
            (
                "hatchery_registry_available",
                "1 when a registry snapshot is in force.",
                i64::from(scrape.registry_available),
            ),
            (
                "hatchery_event_subscribers",
                "Live event stream subscribers (SSE and WebSocket).",
                as_gauge(scrape.subscribers),
            ),
            (
                "hatchery_event_buffer_bytes",
                "Estimated memory of the recent event batches kept for stream subscribers.",
                as_gauge(scrape.event_buffer_bytes),
            ),
            (
                "hatchery_buffered_heartbeats",
                "Heartbeats waiting for the next write.",
                as_gauge(scrape.buffered_heartbeats),
            ),
            (
                "hatchery_provision_jobs_pending",
                "Provision jobs waiting to be claimed.",
                scrape.stats.jobs_pending,
            ),
        ] {
            encode_one(&mut encoder, name, help, &ConstGauge::new(value))?;
        }
        for (name, help, value) in [
            (
                "hatchery_provision_job_oldest_pending_seconds",
                "Age of the oldest provision job waiting to be claimed (0 when none waits).",
                age_seconds(scrape.now, scrape.stats.oldest_pending_job),
            ),
            (
                "hatchery_heartbeat_stalest_seconds",
                "Time since the stalest last heartbeat of an online or degraded workspace (0 when none).",
                age_seconds(scrape.now, scrape.stats.stalest_heartbeat),
            ),
        ] {
            encode_one(&mut encoder, name, help, &ConstGauge::new(value))?;
        }
        let mut family = encoder.encode_descriptor(
            "hatchery_workspaces",
            "Workspaces by status and backend (external: agents hatchery does not run).",
            None,
            prometheus_client::metrics::MetricType::Gauge,
        )?;
        for (status, external, n) in &scrape.stats.workspaces {
            let backend = if *external {
                "external"
            } else {
                scrape.backend
            };
            let labels = [("status", status.as_str()), ("backend", backend)];
            ConstGauge::new(*n).encode(family.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exposition_holds_counters_histograms_and_scrape_values() {
        let metrics = Metrics::default();
        metrics.workspace_created();
        metrics.derive_outcome("derived:exact_model");
        metrics.provisioned(250_000);
        metrics.request("GET".into(), "/workspaces/{id}".into(), 200, 0.002);
        let text = metrics.render(Scrape {
            backend: "local",
            stats: hatchery_store::Stats {
                workspaces: vec![
                    (hatchery_core::WorkspaceStatus::Online, false, 3),
                    (hatchery_core::WorkspaceStatus::Offline, true, 1),
                ],
                jobs_pending: 2,
                oldest_pending_job: Some(1_000_000),
                stalest_heartbeat: None,
            },
            now: 3_500_000,
            ..Scrape::default()
        });
        for line in [
            "hatchery_workspaces_created_total 1",
            "hatchery_derive_outcomes_total{outcome=\"derived:exact_model\"} 1",
            "hatchery_provision_duration_seconds_count 1",
            "hatchery_http_request_duration_seconds_count{method=\"GET\",route=\"/workspaces/{id}\",status=\"200\"} 1",
            "hatchery_workspaces{status=\"online\",backend=\"local\"} 3",
            "hatchery_workspaces{status=\"offline\",backend=\"external\"} 1",
            "hatchery_provision_jobs_pending 2",
            "hatchery_provision_job_oldest_pending_seconds 2.5",
            "hatchery_heartbeat_stalest_seconds 0.0",
            "# EOF",
        ] {
            assert!(text.contains(line), "{line} not in:\n{text}");
        }
    }
}
