//! What runs beside the API for as long as the server does: the liveness and
//! provisioning sweeps, activity retention, heartbeat flushes, registry reloads on SIGHUP,
//! and the signals that stop it.

use std::sync::Arc;

use crate::app::App;
use crate::registry_source::LiveRegistry;
use crate::supervision;

/// The liveness and provisioning sweeps, and activity retention, on every replica.
pub(crate) async fn supervise(app: App) {
    // The first sweep waits one interval: agents of a server that was down get the chance
    // to beat before their silence is judged.
    let period = app.supervision.sweep_interval;
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_prune = None::<std::time::Instant>;
    let mut outage = supervision::OutageLog::new("the supervision sweeps");
    // Silence is judged only after one TTL of this process, and one TTL after the database
    // is back from an outage: after a restart of every replica, or an outage during which
    // heartbeats were refused (503), agents get their chance to beat before they are
    // called offline.
    let mut judge_silence_from = std::time::Instant::now();
    loop {
        tick.tick().await;
        let mut reached = true;
        if !outage.is_down()
            && judge_silence_from.elapsed() >= app.supervision.heartbeat_ttl
            && let Err(error) = app.sweep_liveness().await
        {
            reached &= !supervision::MaybeOutage::is_outage(&error);
            outage.failed(&error);
        }
        // Every tick reads the database here: the probe that tells when an outage ends.
        if let Err(error) = app.sweep_provisioning().await {
            reached &= !supervision::MaybeOutage::is_outage(&error);
            outage.failed(&error);
        }
        if last_prune.is_none_or(|at| at.elapsed() >= ACTIVITY_PRUNE_EVERY) {
            last_prune = Some(std::time::Instant::now());
            if let Err(error) = app.prune_activity().await {
                if supervision::MaybeOutage::is_outage(&error) {
                    // Pruning is due again as soon as the database is back.
                    reached = false;
                    last_prune = None;
                }
                outage.failed(&error);
            }
        }
        // Event retention every tick, in bounded batches: a backlog goes over several ticks.
        if let Err(error) = app.prune_events().await {
            outage.failed(&error);
        }
        if reached {
            if outage.is_down() {
                judge_silence_from = std::time::Instant::now();
            }
            outage.succeeded();
        }
    }
}

/// Activity older than the retention is deleted this often.
const ACTIVITY_PRUNE_EVERY: std::time::Duration = std::time::Duration::from_hours(6);

pub(crate) async fn flush_heartbeats(app: App) {
    let mut tick = tokio::time::interval(app.supervision.heartbeat_flush_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut outage = supervision::OutageLog::new("the heartbeat flush");
    loop {
        tick.tick().await;
        // A failed flush keeps its beats for the next one (a newer beat wins).
        match app.try_flush_heartbeats().await {
            Ok(()) => outage.succeeded(),
            Err(error) => outage.failed(&error),
        }
    }
}

pub(crate) async fn stop_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut terminate) => {
            tokio::select! {
                _ = terminate.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(err) => {
            tracing::warn!(%err, "cannot watch SIGTERM; stopping on SIGINT only");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
    tracing::info!("shutting down: finishing requests in flight");
}

pub(crate) async fn reload_on_sighup(registry: Arc<LiveRegistry>) {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hangup = match signal(SignalKind::hangup()) {
        Ok(hangup) => hangup,
        Err(err) => {
            tracing::warn!(%err, "cannot watch SIGHUP; reload with POST /admin/registry/reload");
            return;
        }
    };
    while hangup.recv().await.is_some() {
        let registry = Arc::clone(&registry);
        // The outcome is logged and kept for GET /admin/registry by `reload` itself.
        let _ = tokio::task::spawn_blocking(move || registry.reload()).await;
    }
}
