//! Closed-loop HTTP load for `bench api` and `bench heartbeats`: concurrent connections
//! each sending requests back to back for a duration, with `GET /health` measured in the
//! same run as the baseline, and the results as a markdown table.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use clap::Args;

use super::harness::{millis, percentile};
use crate::output::{err, out};

#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// How long each scenario runs.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub(super) duration: Duration,
    /// Concurrent client connections.
    #[arg(long, default_value_t = 16)]
    pub(super) connections: usize,
    /// Data directory for the server (a fresh temporary one when omitted).
    #[arg(long)]
    pub(super) data_dir: Option<PathBuf>,
}

/// One scenario's results.
pub(super) struct Measured {
    name: &'static str,
    requests: usize,
    errors: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

impl Measured {
    fn per_second(&self) -> f64 {
        #[allow(
            clippy::cast_precision_loss,
            reason = "request counts are far below 2^52"
        )]
        let requests = self.requests as f64;
        requests / self.elapsed.as_secs_f64()
    }
}

/// Run `make_request` from `connections` concurrent loops for the configured duration;
/// each request gets a distinct number.
pub(super) async fn scenario<F>(
    name: &'static str,
    client: &reqwest::Client,
    args: &BenchArgs,
    make_request: F,
) -> Measured
where
    F: Fn(&reqwest::Client, usize) -> reqwest::RequestBuilder + Send + Sync + 'static,
{
    err(format_args!("bench: {name} …"));
    let make_request = Arc::new(make_request);
    let counter = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let deadline = started + args.duration;
    let mut workers = Vec::with_capacity(args.connections);
    for _ in 0..args.connections {
        let client = client.clone();
        let make_request = Arc::clone(&make_request);
        let counter = Arc::clone(&counter);
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = 0usize;
            while Instant::now() < deadline {
                let n = counter.fetch_add(1, Ordering::Relaxed);
                let sent = Instant::now();
                let ok = match make_request(&client, n).send().await {
                    Ok(response) => {
                        let ok = response.status().is_success();
                        ok && response.bytes().await.is_ok()
                    }
                    Err(_) => false,
                };
                latencies.push(sent.elapsed());
                errors += usize::from(!ok);
            }
            (latencies, errors)
        }));
    }
    let mut latencies = Vec::new();
    let mut errors = 0;
    for worker in workers {
        if let Ok((mut l, e)) = worker.await {
            latencies.append(&mut l);
            errors += e;
        }
    }
    let elapsed = started.elapsed();
    latencies.sort_unstable();
    Measured {
        name,
        requests: latencies.len(),
        errors,
        elapsed,
        latencies,
    }
}

pub(super) async fn health_scenario(
    client: &reqwest::Client,
    args: &BenchArgs,
    base: &str,
) -> Measured {
    let url = format!("{base}/health");
    scenario(
        "GET /health (baseline)",
        client,
        args,
        move |client: &reqwest::Client, _| client.get(&url),
    )
    .await
}

pub(super) fn print_table(baseline: &Measured, rows: &[&Measured]) {
    out("| scenario | requests/s | p50 | p99 | errors | vs baseline |");
    out("|---|---|---|---|---|---|");
    for measured in rows {
        out(format_args!(
            "| {} | {:.0} | {:.2} ms | {:.2} ms | {} | {:.2}× |",
            measured.name,
            measured.per_second(),
            millis(percentile(&measured.latencies, 0.50)),
            millis(percentile(&measured.latencies, 0.99)),
            measured.errors,
            measured.per_second() / baseline.per_second(),
        ));
    }
}

pub(super) fn ensure_no_errors(rows: &[&Measured]) -> anyhow::Result<()> {
    let failed: usize = rows.iter().map(|m| m.errors).sum();
    anyhow::ensure!(failed == 0, "{failed} request(s) failed");
    Ok(())
}
