//! `hatchery bench …`: load the HTTP API of an in-process server on a fresh SQLite data
//! directory and report throughput and latency, with `GET /health` measured in the same
//! run as the baseline (these machines are noisy; ratios travel, absolute figures don't).
//!
//! The load generator runs in the same process, on the same cores as the server: the
//! figures include its cost.

mod milestones;
mod org;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use clap::{Args, Subcommand};
use hatchery_server::{Application, ServerConfig};
use serde_json::json;

use crate::exit;
use crate::output::{err, out};

const TOKEN: &str = "bench-admin-token";

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Create and read workspaces through the API; GET /health is the baseline.
    Api(BenchArgs),
    /// Heartbeats from many registered workspaces; GET /health is the baseline.
    Heartbeats(HeartbeatArgs),
    /// Event fan-out to many SSE subscribers: delivery latency at a steady event rate.
    Events(EventArgs),
    /// Create → online with the local backend (sandboxed agents), against a bare
    /// `bwrap … true` as the baseline; then a burst of concurrent creates.
    CreateOnline(CreateOnlineArgs),
    /// Plan and import a generated org tree (1,000 workspaces by default); one create is
    /// the baseline.
    OrgImport(org::OrgImportArgs),
}

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

#[derive(Debug, Clone, Args)]
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

#[derive(Debug, Args)]
pub struct HeartbeatArgs {
    #[command(flatten)]
    common: BenchArgs,
    /// Registered workspaces beating in turn.
    #[arg(long, default_value_t = 5000)]
    workspaces: usize,
}

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
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss,
        reason = "an index into a non-empty slice"
    )]
    let index = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[index]
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e3
}

pub fn run(command: BenchCommand) -> ExitCode {
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
    let result = runtime.block_on(async {
        match command {
            BenchCommand::Api(args) => bench_api(args).await,
            BenchCommand::Heartbeats(args) => bench_heartbeats(args).await,
            BenchCommand::Events(args) => bench_events(args).await,
            BenchCommand::CreateOnline(args) => bench_create_online(args).await,
            BenchCommand::OrgImport(args) => org::bench_org_import(args).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            err(format_args!("error: {e:#}"));
            ExitCode::from(exit::SERVER_ERROR)
        }
    }
}

/// A server on a fresh SQLite data directory, run in this process until dropped.
struct BenchServer {
    base: String,
    data_dir: PathBuf,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    _temp: tempfile::TempDir,
}

impl BenchServer {
    async fn start(data_dir: Option<PathBuf>) -> anyhow::Result<Self> {
        Self::start_with(
            data_dir,
            hatchery_server::BackendChoice::None,
            hatchery_server::supervision::Supervision::default(),
        )
        .await
    }

    async fn start_with(
        data_dir: Option<PathBuf>,
        backend: hatchery_server::BackendChoice,
        supervision: hatchery_server::supervision::Supervision,
    ) -> anyhow::Result<Self> {
        let temp = tempfile::tempdir()?;
        let data_dir = data_dir.unwrap_or_else(|| temp.path().to_owned());
        let unix_socket = matches!(backend, hatchery_server::BackendChoice::Local { .. })
            .then(|| data_dir.join("run/hatchery.sock"));
        let config = ServerConfig {
            listen: "127.0.0.1:0".parse()?,
            data_dir: data_dir.clone(),
            database_url: None,
            providers: None,
            admin_token: Some(TOKEN.to_owned()),
            secrets_key: None,
            platform_key: Some("bench-platform-key".to_owned()),
            dev: false,
            supervision,
            event_buffer: hatchery_server::event_hub::EventBuffer::default(),
            unix_socket,
            backend,
            templates_dir: None,
            dashboard_dir: None,
            http: hatchery_server::http::HttpSettings::default(),
        };
        let app = Application::build(config).await?;
        let base = format!("http://{}", app.local_addr()?);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(app.run_until(async move {
            let _ = stopped.await;
        }));
        Ok(Self {
            base,
            data_dir,
            stop: Some(stop),
            task,
            _temp: temp,
        })
    }

    async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.task).await??;
        Ok(())
    }

    /// Create a workspace through the API; its id.
    async fn create(
        &self,
        client: &reqwest::Client,
        body: serde_json::Value,
    ) -> anyhow::Result<String> {
        create_workspace(client, &self.base, &body).await
    }

    /// A workspace token for `id`, minted with the admin token (`test-token` is dev-only).
    async fn token(&self, client: &reqwest::Client, id: &str) -> anyhow::Result<String> {
        let minted: serde_json::Value = client
            .post(format!("{}/workspaces/{id}/tokens", self.base))
            .bearer_auth(TOKEN)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        minted["auth_token"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| anyhow::anyhow!("minting a token answered without one: {minted}"))
    }
}

fn client(connections: usize) -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .pool_max_idle_per_host(connections)
        .build()?)
}

fn print_table(baseline: &Measured, rows: &[&Measured]) {
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

fn ensure_no_errors(rows: &[&Measured]) -> anyhow::Result<()> {
    let failed: usize = rows.iter().map(|m| m.errors).sum();
    anyhow::ensure!(failed == 0, "{failed} request(s) failed");
    Ok(())
}

async fn bench_api(args: BenchArgs) -> anyhow::Result<()> {
    let server = BenchServer::start(args.data_dir.clone()).await?;
    let base = server.base.clone();
    let client = client(args.connections)?;
    err(format_args!(
        "bench: {} connections, {} per scenario, SQLite in a fresh data dir",
        args.connections,
        humantime::format_duration(args.duration)
    ));
    let health = health_scenario(&client, &args, &base).await;
    // A platform-billed model: the full derivation, billing and config path.
    let create = scenario("POST /workspaces", &client, &args, {
        let url = format!("{base}/workspaces");
        let body = json!({"name": "bench", "runtime": "hermes", "model": "moonshot/kimi-k2.6"});
        move |client: &reqwest::Client, _| client.post(&url).bearer_auth(TOKEN).json(&body)
    })
    .await;
    let id = server
        .create(
            &client,
            json!({"name": "read-me", "runtime": "hermes", "model": "moonshot/kimi-k2.6"}),
        )
        .await?;
    let read = scenario("GET /workspaces/:id", &client, &args, {
        let url = format!("{base}/workspaces/{id}");
        move |client: &reqwest::Client, _| client.get(&url).bearer_auth(TOKEN)
    })
    .await;
    print_table(&health, &[&health, &create, &read]);
    server.stop().await?;
    ensure_no_errors(&[&health, &create, &read])
}

async fn health_scenario(client: &reqwest::Client, args: &BenchArgs, base: &str) -> Measured {
    let url = format!("{base}/health");
    scenario(
        "GET /health (baseline)",
        client,
        args,
        move |client: &reqwest::Client, _| client.get(&url),
    )
    .await
}

async fn bench_heartbeats(args: HeartbeatArgs) -> anyhow::Result<()> {
    let common = args.common;
    let server = BenchServer::start(common.data_dir.clone()).await?;
    let base = server.base.clone();
    let client = client(common.connections)?;
    err(format_args!(
        "bench: creating and registering {} workspaces …",
        args.workspaces
    ));
    let started = Instant::now();
    let mut agents = Vec::with_capacity(args.workspaces);
    for i in 0..args.workspaces {
        let id = server
            .create(&client, json!({"name": format!("agent-{i}")}))
            .await?;
        let token = server.token(&client, &id).await?;
        agents.push((id, token));
    }
    // One beat each first: out of `provisioning`, so the measured beats change no status.
    for (id, token) in &agents {
        client
            .post(format!("{base}/registry/heartbeat"))
            .bearer_auth(token)
            .json(&json!({"workspace_id": id}))
            .send()
            .await?
            .error_for_status()?;
    }
    err(format_args!(
        "bench: {} workspaces ready in {:.1} s; {} connections, {} per scenario",
        args.workspaces,
        started.elapsed().as_secs_f64(),
        common.connections,
        humantime::format_duration(common.duration)
    ));
    let health = health_scenario(&client, &common, &base).await;
    let agents = Arc::new(agents);
    let beats = scenario("POST /registry/heartbeat", &client, &common, {
        let url = format!("{base}/registry/heartbeat");
        let agents = Arc::clone(&agents);
        move |client: &reqwest::Client, n: usize| {
            let (id, token) = &agents[n % agents.len()];
            client.post(&url).bearer_auth(token).json(&json!({
                "workspace_id": id,
                "error_rate": 0.0,
                "active_tasks": n % 3,
                "uptime_seconds": n,
                "current_task": "",
            }))
        }
    })
    .await;
    print_table(&health, &[&health, &beats]);
    server.stop().await?;
    ensure_no_errors(&[&health, &beats])
}

/// Run `make_request` from `connections` concurrent loops for the configured duration;
/// each request gets a distinct number.
async fn scenario<F>(
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

/// What one fan-out run measured.
struct Fanout {
    subscribers: usize,
    events: usize,
    delivered: usize,
    failed_writes: usize,
    latencies: Vec<Duration>,
}

async fn bench_events(args: EventArgs) -> anyhow::Result<()> {
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

async fn bench_create_online(args: CreateOnlineArgs) -> anyhow::Result<()> {
    let backend = hatchery_server::BackendChoice::Local {
        launch: hatchery_provision::AgentLaunch::new(super::serve::agent_command()?),
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

/// Create a workspace through the API of the server at `base`; its id.
async fn create_workspace(
    client: &reqwest::Client,
    base: &str,
    body: &serde_json::Value,
) -> anyhow::Result<String> {
    let created: serde_json::Value = client
        .post(format!("{base}/workspaces"))
        .bearer_auth(TOKEN)
        .json(body)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    created["id"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| anyhow::anyhow!("create answered without an id: {created}"))
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
            let Ok(event) = serde_json::from_str::<serde_json::Value>(data) else {
                continue;
            };
            if event["type"] == "WORKSPACE_ONLINE"
                && let (Some(id), Some(millis)) =
                    (event["workspace_id"].as_str(), event["timestamp"].as_u64())
            {
                let at = std::time::UNIX_EPOCH + Duration::from_millis(millis);
                let _ = report.send((id.to_owned(), at));
            }
        }
        pending.drain(..=end);
    }
}
