//! Where the time of one create goes, for `bench create-online`: the server's own log
//! events, recorded with their wall-clock time as they happen, and the agent's first log
//! line (it runs in its sandbox, so its log file is read afterwards).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, SubscriberExt as _};
use tracing_subscriber::util::SubscriberInitExt as _;

/// The steps of a create, in order, as the server logs them.
pub const STEPS: [(&str, &str); 4] = [
    ("workspace created", "API and transaction"),
    ("provision job claimed", "job claim"),
    ("agent started", "spawn (token, config, sandbox)"),
    ("agent registered", "registration"),
];

/// Each workspace's milestones: log message → when.
#[derive(Debug, Clone, Default)]
pub struct Milestones(Arc<Mutex<HashMap<String, HashMap<&'static str, SystemTime>>>>);

impl Milestones {
    /// Record the server's milestones from now on (installs the process's subscriber).
    pub fn record() -> Self {
        let milestones = Self::default();
        let filter = tracing_subscriber::filter::Targets::new()
            .with_target("hatchery_server", tracing::Level::DEBUG);
        let _ = tracing_subscriber::registry()
            .with(Recorder(milestones.clone()))
            .with(filter)
            .try_init();
        milestones
    }

    /// When `id` reached `step` (one of [`STEPS`]).
    pub fn at(&self, id: &str, step: &str) -> Option<SystemTime> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(id)?
            .get(step)
            .copied()
    }
}

/// When the agent wrote its first log line (`2026-…Z  INFO hatchery_agent: …`).
pub fn agent_first_line(log: &std::path::Path) -> Option<SystemTime> {
    let text = std::fs::read_to_string(log).ok()?;
    let stamp = text.lines().next()?.split_whitespace().next()?;
    humantime::parse_rfc3339(stamp).ok()
}

struct Recorder(Milestones);

#[derive(Default)]
struct Fields {
    message: Option<String>,
    workspace_id: Option<String>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "workspace_id" {
            self.workspace_id = Some(value.to_owned());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        match field.name() {
            "message" => self.message = Some(format!("{value:?}")),
            "workspace_id" => {
                self.workspace_id = Some(format!("{value:?}").trim_matches('"').to_owned());
            }
            _ => {}
        }
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Recorder {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        let now = SystemTime::now();
        let mut fields = Fields::default();
        event.record(&mut fields);
        let (Some(message), Some(id)) = (fields.message, fields.workspace_id) else {
            return;
        };
        let Some((step, _)) = STEPS.iter().find(|(step, _)| *step == message) else {
            return;
        };
        (self.0)
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(id)
            .or_default()
            .entry(step)
            .or_insert(now);
    }
}
