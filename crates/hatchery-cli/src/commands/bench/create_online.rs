//! `hatchery bench create-online`: create → online with the local backend (sandboxed
//! agents), one create at a time and then a burst of concurrent ones, with a bare
//! `bwrap … true` as the baseline and where the time of each create goes.

use std::time::{Duration, Instant, SystemTime};

use clap::Args;
use hatchery_api::events::StreamMessage;
use hatchery_core::EventKind;
use serde_json::json;

use super::harness::{BenchServer, TOKEN, client, create_workspace, millis, percentile};
use super::milestones;
use crate::output::{err, out};

#[derive(Debug, Args)]
pub struct CreateOnlineArgs {
    /// Sequential creates timed one by one.
    #[arg(long, default_value_t = 50)]
    creates: usize,
    /// Concurrent creates in the burst (all kept running for the memory figure).
    #[arg(long, default_value_t = 100)]
    burst: usize,
    /// A pause between sequential creates (an idle machine between them).
    #[arg(long, default_value = "0s", value_parser = humantime::parse_duration)]
    pause: Duration,
    /// How many agents start at the same time [default: the server's, four per core].
    #[arg(long)]
    concurrent_starts: Option<usize>,
}

pub async fn bench_create_online(args: CreateOnlineArgs) -> anyhow::Result<()> {
    let backend = hatchery_server::BackendChoice::Local {
        launch: hatchery_provision::AgentLaunch::new(crate::commands::serve::agent_command()?),
    };
    let milestones = milestones::Milestones::record();
    let mut supervision = hatchery_server::supervision::Supervision::default();
    if let Some(starts) = args.concurrent_starts {
        supervision.concurrent_starts = starts;
    }
    let server = BenchServer::start_with(None, backend, supervision).await?;
    let client = client(16)?;
    // Online is read off the event stream, timed by the event's own timestamp (when the
    // registration committed), not by when the stream delivered it.
    let (online_tx, mut online) = tokio::sync::mpsc::unbounded_channel::<(String, SystemTime)>();
    let stream = reqwest::Client::new()
        .get(format!("{}/events/stream", server.base))
        .bearer_auth(TOKEN)
        .send()
        .await?
        .error_for_status()?;
    let reader = tokio::spawn(read_online(stream, online_tx));

    err(format_args!(
        "bench: baseline: {} bare `bwrap … true` spawns …",
        args.creates
    ));
    let mut floor = Vec::with_capacity(args.creates);
    for _ in 0..args.creates {
        floor.push(tokio::task::spawn_blocking(bare_sandbox).await??);
    }
    floor.sort_unstable();

    err(format_args!(
        "bench: {} sequential creates, each until online …",
        args.creates
    ));
    let body = json!({"name": "bench", "runtime": "claude-code", "model": "moonshot/kimi-k2.6"});
    let mut latencies = Vec::with_capacity(args.creates);
    let mut ids = Vec::new();
    let mut timelines = Vec::with_capacity(args.creates);
    for _ in 0..args.creates {
        let sent = SystemTime::now();
        let id = server.create(&client, body.clone()).await?;
        let at = wait_online(&mut online, &id).await?;
        latencies.push(at.duration_since(sent).unwrap_or_default());
        timelines.push((id.clone(), sent));
        tokio::time::sleep(args.pause).await;
        ids.push(id);
    }
    latencies.sort_unstable();
    let sequential_steps = breakdown(&milestones, &server.data_dir, &timelines);
    // Stop them before the burst, so the burst's memory figure counts only its own.
    for id in &ids {
        client
            .delete(format!("{}/workspaces/{id}", server.base))
            .bearer_auth(TOKEN)
            .send()
            .await?
            .error_for_status()?;
    }

    let burst = burst(&server, &client, &body, args.burst, &mut online).await?;
    let burst_breakdown = breakdown(&milestones, &server.data_dir, &burst.timelines);
    let rss = rss_megabytes();
    reader.abort();

    report_create_online(
        &floor,
        &latencies,
        &sequential_steps,
        &burst,
        &burst_breakdown,
        rss,
    );
    server.stop().await?;
    Ok(())
}

/// The report of `bench create-online`: markdown tables, as docs/benchmarks.md has them.
fn report_create_online(
    floor: &[Duration],
    latencies: &[Duration],
    sequential_steps: &[(&'static str, [Duration; 2])],
    burst: &Burst,
    burst_breakdown: &[(&'static str, [Duration; 2])],
    rss: f64,
) {
    let count = burst.online_after.len();
    out("| measure | p50 | p99 | max |");
    out("|---|---|---|---|");
    for (name, sorted) in [
        ("bare `bwrap … true` (baseline)", floor),
        ("create → online", latencies),
    ] {
        out(format_args!(
            "| {name} | {:.1} ms | {:.1} ms | {:.1} ms |",
            millis(percentile(sorted, 0.50)),
            millis(percentile(sorted, 0.99)),
            millis(sorted.last().copied().unwrap_or_default()),
        ));
    }
    out(format_args!(
        "\n| step of a create (p50 / p90) | sequential | burst of {count} |\n|---|---|---|"
    ));
    for (step, [p50, p90]) in sequential_steps {
        let [burst_p50, burst_p90] = burst_breakdown
            .iter()
            .find(|(name, _)| name == step)
            .map_or([Duration::ZERO; 2], |(_, times)| *times);
        out(format_args!(
            "| {step} | {:.1} / {:.1} ms | {:.1} / {:.1} ms |",
            millis(*p50),
            millis(*p90),
            millis(burst_p50),
            millis(burst_p90),
        ));
    }
    let all_online = burst.online_after.last().copied().unwrap_or_default();
    out(format_args!(
        "\nburst of {count}: every create answered after {:.0} ms; online after p10 {:.0}, \
         p50 {:.0}, p90 {:.0} ms",
        millis(burst.created),
        millis(percentile(&burst.online_after, 0.10)),
        millis(percentile(&burst.online_after, 0.50)),
        millis(percentile(&burst.online_after, 0.90)),
    ));
    out(format_args!(
        "create → online p50 vs baseline: {:.1}×; {count} concurrent creates all online in \
         {:.0} ms; control plane RSS with {count} agents running: {rss:.1} MB (load generator \
         included)",
        percentile(latencies, 0.50).as_secs_f64() / percentile(floor, 0.50).as_secs_f64().max(1e-9),
        millis(all_online),
    ));
}

/// The median and 90th percentile of each step of the timed creates: from the request to
/// the server's milestones (see [`milestones::STEPS`]), with the agent's first log line
/// between the spawn and its registration.
fn breakdown(
    milestones: &milestones::Milestones,
    data_dir: &std::path::Path,
    timelines: &[(String, SystemTime)],
) -> Vec<(&'static str, [Duration; 2])> {
    let mut steps: Vec<(&'static str, Vec<Duration>)> = Vec::new();
    for (id, sent) in timelines {
        let at = |step| milestones.at(id, step);
        let agent_log = data_dir.join("workspaces").join(id).join("agent.log");
        let points = [
            ("request sent", Some(*sent)),
            (milestones::STEPS[0].1, at(milestones::STEPS[0].0)),
            (milestones::STEPS[1].1, at(milestones::STEPS[1].0)),
            (milestones::STEPS[2].1, at(milestones::STEPS[2].0)),
            (
                "agent start (sandbox set-up, exec, config)",
                milestones::agent_first_line(&agent_log),
            ),
            (milestones::STEPS[3].1, at(milestones::STEPS[3].0)),
        ];
        for pair in points.windows(2) {
            let (_, Some(from)) = pair[0] else { continue };
            let (name, Some(to)) = pair[1] else { continue };
            let spent = to.duration_since(from).unwrap_or_default();
            match steps.iter_mut().find(|(n, _)| *n == name) {
                Some((_, all)) => all.push(spent),
                None => steps.push((name, vec![spent])),
            }
        }
    }
    steps
        .into_iter()
        .map(|(name, mut all)| {
            all.sort_unstable();
            (name, [percentile(&all, 0.50), percentile(&all, 0.90)])
        })
        .collect()
}

/// `count` concurrent creates; how long until the last came online, and each one's id
/// with when the burst started.
async fn burst(
    server: &BenchServer,
    client: &reqwest::Client,
    body: &serde_json::Value,
    count: usize,
    online: &mut tokio::sync::mpsc::UnboundedReceiver<(String, SystemTime)>,
) -> anyhow::Result<Burst> {
    err(format_args!("bench: {count} concurrent creates …"));
    let burst_started = SystemTime::now();
    let mut in_flight = tokio::task::JoinSet::new();
    for _ in 0..count {
        let (client, base, body) = (client.clone(), server.base.clone(), body.clone());
        in_flight.spawn(async move { create_workspace(&client, &base, &body).await });
    }
    let mut pending = std::collections::HashSet::new();
    while let Some(id) = in_flight.join_next().await {
        pending.insert(id??);
    }
    let created = burst_started.elapsed().unwrap_or_default();
    let timelines = pending
        .iter()
        .map(|id| (id.clone(), burst_started))
        .collect();
    let mut online_after = Vec::with_capacity(count);
    while !pending.is_empty() {
        let (id, at) = tokio::time::timeout(Duration::from_secs(30), online.recv())
            .await
            .map_err(|_| anyhow::anyhow!("{} workspace(s) never came online", pending.len()))?
            .ok_or_else(|| anyhow::anyhow!("the event stream ended"))?;
        if pending.remove(&id) {
            online_after.push(at.duration_since(burst_started).unwrap_or_default());
        }
    }
    online_after.sort_unstable();
    Ok(Burst {
        created,
        online_after,
        timelines,
    })
}

/// What a burst of concurrent creates measured, from the burst's start.
struct Burst {
    /// When the last create was answered.
    created: Duration,
    /// When each workspace came online, sorted.
    online_after: Vec<Duration>,
    /// Each workspace with the burst's start, for the breakdown.
    timelines: Vec<(String, SystemTime)>,
}

/// Wait for `id`'s `WORKSPACE_ONLINE`; other workspaces' arrivals are dropped.
async fn wait_online(
    online: &mut tokio::sync::mpsc::UnboundedReceiver<(String, SystemTime)>,
    id: &str,
) -> anyhow::Result<SystemTime> {
    loop {
        let (seen, at) = tokio::time::timeout(Duration::from_secs(30), online.recv())
            .await
            .map_err(|_| anyhow::anyhow!("workspace {id} never came online"))?
            .ok_or_else(|| anyhow::anyhow!("the event stream ended"))?;
        if seen == id {
            return Ok(at);
        }
    }
}

/// Report each `WORKSPACE_ONLINE` on an SSE stream with its timestamp (Unix ms).
async fn read_online(
    mut response: reqwest::Response,
    report: tokio::sync::mpsc::UnboundedSender<(String, SystemTime)>,
) {
    let mut pending = String::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        pending.push_str(&String::from_utf8_lossy(&chunk));
        let Some(end) = pending.rfind('\n') else {
            continue;
        };
        for line in pending[..end].lines() {
            let Some(data) = line.strip_prefix("data: ") else {
                continue;
            };
            let Ok(event) = serde_json::from_str::<StreamMessage>(data) else {
                continue;
            };
            if event.kind == EventKind::WorkspaceOnline.as_str()
                && let (Some(id), Ok(millis)) = (event.workspace_id, u64::try_from(event.timestamp))
            {
                let at = std::time::UNIX_EPOCH + Duration::from_millis(millis);
                let _ = report.send((id, at));
            }
        }
        pending.drain(..=end);
    }
}

/// Seconds of one spawn-and-wait of a bare sandbox: the floor a sandboxed start sits on.
fn bare_sandbox() -> anyhow::Result<Duration> {
    let started = Instant::now();
    let status = std::process::Command::new("bwrap")
        .args([
            "--unshare-all",
            "--die-with-parent",
            "--ro-bind",
            "/",
            "/",
            "true",
        ])
        .status()?;
    anyhow::ensure!(status.success(), "bwrap … true failed: {status}");
    Ok(started.elapsed())
}

/// This process's resident memory, from /proc.
fn rss_megabytes() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}
