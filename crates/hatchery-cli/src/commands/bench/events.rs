//! `hatchery bench events`: event fan-out to many SSE subscribers, timed from each write
//! to each delivery at a steady event rate; the same events to one subscriber are the
//! baseline.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Args;
use serde_json::json;

use super::harness::{BenchServer, TOKEN, client, millis, percentile};
use crate::output::{err, out};

#[derive(Debug, Args)]
pub struct EventArgs {
    /// Data directory for the server (a fresh temporary one when omitted).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Connected SSE subscribers, each receiving every event.
    #[arg(long, default_value_t = 1000)]
    subscribers: usize,
    /// Events written per second.
    #[arg(long, default_value_t = 1000)]
    rate: u32,
    /// How long events are written.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    duration: Duration,
}

/// What one fan-out run measured.
struct Fanout {
    subscribers: usize,
    events: usize,
    delivered: usize,
    failed_writes: usize,
    latencies: Vec<Duration>,
}

pub async fn bench_events(args: EventArgs) -> anyhow::Result<()> {
    let server = BenchServer::start(args.data_dir.clone()).await?;
    let client = client(16)?;
    let id = server.create(&client, json!({"name": "publisher"})).await?;
    let token = server.token(&client, &id).await?;
    // Baseline: the same events to a single subscriber, in the same run.
    let baseline = fanout(&server, &client, (&id, &token), 1, &args).await?;
    let measured = fanout(&server, &client, (&id, &token), args.subscribers, &args).await?;
    out(
        "| subscribers | events/s | events | deliveries | missing | p50 | p99 | max | p99 vs baseline |",
    );
    out("|---|---|---|---|---|---|---|---|---|");
    let baseline_p99 = percentile(&baseline.latencies, 0.99);
    for run in [&baseline, &measured] {
        let p99 = percentile(&run.latencies, 0.99);
        out(format_args!(
            "| {}{} | {} | {} | {} | {} | {:.1} ms | {:.1} ms | {:.1} ms | {:.2}× |",
            run.subscribers,
            if run.subscribers == 1 {
                " (baseline)"
            } else {
                ""
            },
            args.rate,
            run.events,
            run.delivered,
            (run.events * run.subscribers).saturating_sub(run.delivered),
            millis(percentile(&run.latencies, 0.50)),
            millis(p99),
            millis(run.latencies.last().copied().unwrap_or_default()),
            p99.as_secs_f64() / baseline_p99.as_secs_f64().max(1e-9),
        ));
    }
    server.stop().await?;
    for run in [&baseline, &measured] {
        anyhow::ensure!(
            run.failed_writes == 0,
            "{} event write(s) failed",
            run.failed_writes
        );
        let expected = run.events * run.subscribers;
        anyhow::ensure!(
            run.delivered == expected,
            "{} deliveries missing",
            expected - run.delivered
        );
    }
    Ok(())
}

/// Connect `subscribers` SSE streams, write `args.rate` events a second for
/// `args.duration`, and time each delivery from the write's start.
async fn fanout(
    server: &BenchServer,
    client: &reqwest::Client,
    (id, token): (&str, &str),
    subscribers: usize,
    args: &EventArgs,
) -> anyhow::Result<Fanout> {
    err(format_args!(
        "bench: connecting {subscribers} SSE subscriber(s) …"
    ));
    // Each subscriber reports (event number, receive instant) for every marker it sees.
    let (report, mut reports) = tokio::sync::mpsc::unbounded_channel::<(usize, Instant)>();
    let mut readers = Vec::with_capacity(subscribers);
    for _ in 0..subscribers {
        // One connection per subscriber, like browsers and agents.
        let response = reqwest::Client::new()
            .get(format!("{}/events/stream", server.base))
            .bearer_auth(TOKEN)
            .send()
            .await?
            .error_for_status()?;
        readers.push(tokio::spawn(read_markers(response, report.clone())));
    }
    drop(report);
    err(format_args!(
        "bench: writing {} events/s for {} (AGENT_CARD_UPDATED: logged, published by the tailer) …",
        args.rate,
        humantime::format_duration(args.duration)
    ));
    let interval = Duration::from_secs_f64(1.0 / f64::from(args.rate.max(1)));
    let started = Instant::now();
    let mut sent_at = Vec::new();
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let url = format!("{}/registry/update-card", server.base);
    let mut in_flight = tokio::task::JoinSet::new();
    while started.elapsed() < args.duration {
        tick.tick().await;
        let n = sent_at.len();
        sent_at.push(Instant::now());
        let request = client
            .post(&url)
            .bearer_auth(token)
            .json(&json!({"workspace_id": id, "agent_card": {"bench_marker": n}}));
        in_flight.spawn(async move {
            request
                .send()
                .await
                .and_then(reqwest::Response::error_for_status)
        });
    }
    let mut failed_writes = 0usize;
    while let Some(sent) = in_flight.join_next().await {
        failed_writes += usize::from(!matches!(sent, Ok(Ok(_))));
    }
    // Let the last events arrive, then stop the subscribers.
    tokio::time::sleep(Duration::from_secs(2)).await;
    for reader in &readers {
        reader.abort();
    }
    let mut latencies = Vec::new();
    while let Ok((n, at)) = reports.try_recv() {
        if let Some(sent) = sent_at.get(n) {
            latencies.push(at.saturating_duration_since(*sent));
        }
    }
    latencies.sort_unstable();
    Ok(Fanout {
        subscribers,
        events: sent_at.len(),
        delivered: latencies.len(),
        failed_writes,
        latencies,
    })
}

/// Read an SSE stream, reporting each `bench_marker` seen with the instant it arrived.
async fn read_markers(
    mut response: reqwest::Response,
    report: tokio::sync::mpsc::UnboundedSender<(usize, Instant)>,
) {
    const MARKER: &str = "\"bench_marker\":";
    let mut pending = String::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        let at = Instant::now();
        pending.push_str(&String::from_utf8_lossy(&chunk));
        // Only whole lines; the rest waits for the next chunk.
        let Some(end) = pending.rfind('\n') else {
            continue;
        };
        for line in pending[..end].lines() {
            if let Some(start) = line.find(MARKER) {
                let digits: String = line[start + MARKER.len()..]
                    .chars()
                    .take_while(char::is_ascii_digit)
                    .collect();
                if let Ok(n) = digits.parse() {
                    let _ = report.send((n, at));
                }
            }
        }
        pending.drain(..=end);
    }
}
