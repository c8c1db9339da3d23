//! `hatchery bench api`: load the HTTP API of an in-process server on a fresh SQLite data
//! directory and report throughput and latency, with `GET /health` measured in the same
//! run as the baseline (these machines are noisy; ratios travel, absolute figures don't).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use hatchery_server::{Application, ServerConfig};
use serde_json::json;

use crate::exit;
use crate::output::{err, out};

const TOKEN: &str = "bench-admin-token";

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// How long each scenario runs.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Concurrent client connections.
    #[arg(long, default_value_t = 16)]
    connections: usize,
    /// Data directory for the server (a fresh temporary one when omitted).
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

/// One scenario's results.
struct Measured {
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

    fn percentile(&self, p: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            clippy::cast_precision_loss,
            reason = "an index into a non-empty vector"
        )]
        let index = ((self.latencies.len() - 1) as f64 * p).round() as usize;
        self.latencies[index]
    }
}

pub fn run(args: BenchArgs) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            err(format_args!("error: cannot start the async runtime: {e}"));
            return ExitCode::from(exit::SERVER_ERROR);
        }
    };
    match runtime.block_on(bench(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            err(format_args!("error: {e:#}"));
            ExitCode::from(exit::SERVER_ERROR)
        }
    }
}

async fn bench(args: BenchArgs) -> anyhow::Result<()> {
    let temp = tempfile::tempdir()?;
    let data_dir = args
        .data_dir
        .clone()
        .unwrap_or_else(|| temp.path().to_owned());
    let config = ServerConfig {
        listen: "127.0.0.1:0".parse()?,
        data_dir,
        database_url: None,
        providers: None,
        admin_token: Some(TOKEN.to_owned()),
        secrets_key: None,
        platform_key: Some("bench-platform-key".to_owned()),
        dev: false,
        supervision: hatchery_server::supervision::Supervision::default(),
        event_buffer: hatchery_server::event_hub::DEFAULT_CAPACITY,
    };
    let app = Application::build(config).await?;
    let base = format!("http://{}", app.local_addr()?);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async move {
        let _ = stopped.await;
    }));
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.connections)
        .build()?;

    err(format_args!(
        "bench: {} connections, {} per scenario, SQLite in a fresh data dir",
        args.connections,
        humantime::format_duration(args.duration)
    ));
    let health = scenario("GET /health (baseline)", &client, &args, {
        let url = format!("{base}/health");
        move |client: &reqwest::Client| client.get(&url)
    })
    .await;
    // A platform-billed model: the full derivation, billing and config path.
    let create = scenario("POST /workspaces", &client, &args, {
        let url = format!("{base}/workspaces");
        let body = json!({"name": "bench", "runtime": "hermes", "model": "moonshot/kimi-k2.6"});
        move |client: &reqwest::Client| client.post(&url).bearer_auth(TOKEN).json(&body)
    })
    .await;
    let created: serde_json::Value = client
        .post(format!("{base}/workspaces"))
        .bearer_auth(TOKEN)
        .json(&json!({"name": "read-me", "runtime": "hermes", "model": "moonshot/kimi-k2.6"}))
        .send()
        .await?
        .json()
        .await?;
    let id = created["id"]
        .as_str()
        .ok_or_else(|| anyhow::anyhow!("create answered without an id: {created}"))?
        .to_owned();
    let read = scenario("GET /workspaces/:id", &client, &args, {
        let url = format!("{base}/workspaces/{id}");
        move |client: &reqwest::Client| client.get(&url).bearer_auth(TOKEN)
    })
    .await;

    out("| scenario | requests/s | p50 | p99 | errors | vs baseline |");
    out("|---|---|---|---|---|---|");
    for measured in [&health, &create, &read] {
        out(format_args!(
            "| {} | {:.0} | {:.2} ms | {:.2} ms | {} | {:.2}× |",
            measured.name,
            measured.per_second(),
            measured.percentile(0.50).as_secs_f64() * 1e3,
            measured.percentile(0.99).as_secs_f64() * 1e3,
            measured.errors,
            measured.per_second() / health.per_second(),
        ));
    }
    let _ = stop.send(());
    server.await??;
    let failed: usize = [&health, &create, &read].iter().map(|m| m.errors).sum();
    anyhow::ensure!(failed == 0, "{failed} request(s) failed");
    Ok(())
}

/// Run `make_request` from `connections` concurrent loops for the configured duration.
async fn scenario<F>(
    name: &'static str,
    client: &reqwest::Client,
    args: &BenchArgs,
    make_request: F,
) -> Measured
where
    F: Fn(&reqwest::Client) -> reqwest::RequestBuilder + Send + Sync + 'static,
{
    err(format_args!("bench: {name} …"));
    let make_request = Arc::new(make_request);
    let started = Instant::now();
    let deadline = started + args.duration;
    let mut workers = Vec::with_capacity(args.connections);
    for _ in 0..args.connections {
        let client = client.clone();
        let make_request = Arc::clone(&make_request);
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = 0usize;
            while Instant::now() < deadline {
                let sent = Instant::now();
                let ok = match make_request(&client).send().await {
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
