//! `hatchery bench a2a`: messages through the A2A proxy (`POST /workspaces/:id/a2a`) to a
//! running sandboxed agent that answers at once, against the same agent called directly on
//! its socket in the same run (the two alternated in rounds); then many `message/stream`
//! calls held open at once, the same ones directly first, with this process's memory
//! sampled while they are.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Args;
use hatchery_api::a2a::{METHOD_SEND, METHOD_STREAM};
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::json;

use super::harness::{BenchServer, TOKEN, client, millis, percentile};
use crate::output::{err, out};

/// The header the proxy names the caller in; a direct call sends it too, so the agent does
/// the same work on both paths.
const CALLER_HEADER: &str = "x-hatchery-caller";
/// The longest path a Unix socket can be connected at (`sun_path`, with its NUL).
const MAX_SOCKET_PATH: usize = 107;
/// The two paths, as the report names them.
const DIRECT: &str = "agent's socket, direct (baseline)";
const PROXY: &str = "through the proxy";

#[derive(Debug, Args)]
pub struct A2aArgs {
    /// Data directory for the server (a fresh temporary one when omitted); the agent's log
    /// is `workspaces/<id>/agent.log` there.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// `message/send` calls on each path (directly and through the proxy), split over the
    /// rounds.
    #[arg(long, default_value_t = 20_000)]
    messages: usize,
    /// Concurrent connections on each path, each sending its messages back to back.
    #[arg(long, default_value_t = 16)]
    connections: usize,
    /// Rounds, each measuring both paths (which goes first alternates), so the machine's
    /// noise falls on both.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Concurrent `message/stream` calls held open at once.
    #[arg(long, default_value_t = 1000)]
    streams: usize,
    /// Words said in each streamed message: the agent streams its answer (which repeats
    /// them) one word per 20 ms, so this sets how long a stream stays open.
    #[arg(long, default_value_t = 150)]
    stream_words: usize,
    /// The agent's open-file limit [default: the server's, 1,024 per workspace]; each
    /// stream holds one of the agent's files, so the default bounds the streams one agent
    /// takes at once just under 1,000.
    #[arg(long)]
    agent_open_files: Option<u64>,
}

pub async fn bench_a2a(args: A2aArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.connections > 0 && args.rounds > 0 && args.messages >= args.rounds,
        "--connections and --rounds must be at least 1, and --messages at least --rounds"
    );
    warn_if_too_few_files(args.streams);
    let backend = hatchery_server::BackendChoice::Local {
        launch: hatchery_provision::AgentLaunch::new(crate::commands::serve::agent_command()?),
    };
    let mut supervision = hatchery_server::supervision::Supervision::default();
    if let Some(files) = args.agent_open_files {
        supervision.agent_limits.open_files = files;
    }
    let agent_open_files = supervision.agent_limits.open_files;
    let server = BenchServer::start_with(args.data_dir.clone(), backend, supervision).await?;
    let api = client(4)?;
    err(format_args!(
        "bench: starting one sandboxed agent (claude-code, moonshot/kimi-k2.6, at most \
         {agent_open_files} open files) …"
    ));
    // The proxy lets a workspace take `max_concurrent_tasks` messages at once: as many as
    // this bench sends, or the proxy would answer 429 instead of measuring.
    let id = server
        .create(
            &api,
            json!({
                "name": "bench-a2a",
                "runtime": "claude-code",
                "model": "moonshot/kimi-k2.6",
                "max_concurrent_tasks": args.connections.max(args.streams),
            }),
        )
        .await?;
    wait_online(&server, &api, &id).await?;
    let direct = Route::Direct(agent_socket(&server.data_dir, &id)?);
    let proxy = Route::Proxy(format!("{}/workspaces/{id}/a2a", server.base));

    let messages = messages(&args, &direct, &proxy).await?;
    let streams = [
        streams(&direct, args.streams, args.stream_words).await?,
        streams(&proxy, args.streams, args.stream_words).await?,
    ];
    report(&args, agent_open_files, &messages, &streams);
    server.stop().await?;
    let failed = messages.direct.errors + messages.proxy.errors;
    anyhow::ensure!(
        failed == 0,
        "{failed} message/send call(s) failed; first: {}",
        messages
            .direct
            .first_error
            .as_ref()
            .or(messages.proxy.first_error.as_ref())
            .map_or("?", String::as_str)
    );
    Ok(())
}

/// Where messages go: the agent's socket, or the proxy's route for the agent.
#[derive(Debug, Clone)]
enum Route {
    /// The socket the agent serves on, as the backend reaches it.
    Direct(PathBuf),
    /// `POST /workspaces/:id/a2a` with the admin token (the operator).
    Proxy(String),
}

impl Route {
    fn name(&self) -> &'static str {
        match self {
            Self::Direct(_) => DIRECT,
            Self::Proxy(_) => PROXY,
        }
    }

    /// A client keeping at most `idle` connections open between calls.
    fn client(&self, idle: usize) -> anyhow::Result<reqwest::Client> {
        let builder = reqwest::Client::builder()
            .no_proxy()
            .pool_max_idle_per_host(idle);
        Ok(match self {
            Self::Direct(socket) => builder.unix_socket(socket.clone()).build()?,
            Self::Proxy(_) => builder.build()?,
        })
    }

    /// A call of `method` saying `text` in conversation `context`, as the agent gets it from
    /// the proxy (which passes a JSON-RPC body with a `messageId` untouched).
    fn post(
        &self,
        client: &reqwest::Client,
        method: &str,
        context: &str,
        n: usize,
        text: &str,
    ) -> reqwest::RequestBuilder {
        let request = match self {
            Self::Direct(_) => client
                .post("http://agent/")
                .header(CALLER_HEADER, "operator"),
            Self::Proxy(url) => client.post(url).bearer_auth(TOKEN),
        };
        let accept = if method == METHOD_STREAM {
            "text/event-stream"
        } else {
            "application/json"
        };
        let body = json!({"jsonrpc": "2.0", "id": n, "method": method, "params": {"message": {
            "role": "user", "messageId": format!("{context}-{n}"), "contextId": context,
            "parts": [{"kind": "text", "text": text}]}}});
        request
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(reqwest::header::ACCEPT, accept)
            .body(body.to_string())
    }
}

/// Poll the workspace until it is online.
async fn wait_online(
    server: &BenchServer,
    client: &reqwest::Client,
    id: &str,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let view: serde_json::Value = client
            .get(format!("{}/workspaces/{id}", server.base))
            .bearer_auth(TOKEN)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await
            .context("reading the workspace")?;
        if view["status"] == "online" {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "workspace {id} not online after 30 s (status {}); its log is agent.log in its \
             directory under the data dir",
            view["status"]
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The agent's socket on the host, where the local backend has it (under the data dir as
/// the server canonicalized it).
fn agent_socket(data_dir: &Path, id: &str) -> anyhow::Result<PathBuf> {
    let root = std::fs::canonicalize(data_dir)?.join("workspaces");
    let socket = hatchery_provision::a2a_socket_on_host(&root, id);
    anyhow::ensure!(
        socket.exists(),
        "workspace {id} is online but has no socket at {}",
        socket.display()
    );
    anyhow::ensure!(
        socket.as_os_str().len() <= MAX_SOCKET_PATH,
        "the agent's socket path {} is too long to connect to directly; set TMPDIR to a \
         shorter directory",
        socket.display()
    );
    Ok(socket)
}

/// One path's `message/send` calls over some rounds.
#[derive(Default)]
struct Sent {
    /// Every call's latency, sorted.
    latencies: Vec<Duration>,
    errors: usize,
    first_error: Option<String>,
    /// Time spent sending, over all rounds.
    elapsed: Duration,
}

impl Sent {
    fn per_second(&self) -> f64 {
        #[allow(clippy::cast_precision_loss, reason = "call counts are far below 2^52")]
        let calls = self.latencies.len() as f64;
        calls / self.elapsed.as_secs_f64().max(1e-9)
    }

    fn add(&mut self, mut round: Sent) {
        self.latencies.append(&mut round.latencies);
        self.latencies.sort_unstable();
        self.errors += round.errors;
        self.first_error = self.first_error.take().or(round.first_error);
        self.elapsed += round.elapsed;
    }
}

/// Both paths' calls, in total and round by round.
struct Messages {
    direct: Sent,
    proxy: Sent,
    /// Per round: (path, calls/s, p50, p99, errors), in the order measured.
    rounds: Vec<(usize, &'static str, f64, Duration, Duration, usize)>,
}

/// The `message/send` measure: a warm-up on both paths, then the rounds, alternating
/// which path goes first.
async fn messages(args: &A2aArgs, direct: &Route, proxy: &Route) -> anyhow::Result<Messages> {
    // One client per connection: exactly `connections` connections on each path, kept
    // across rounds.
    let direct_clients = (0..args.connections)
        .map(|_| direct.client(1))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let proxy_clients = (0..args.connections)
        .map(|_| proxy.client(1))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let warm_up = (args.connections * 20).min(args.messages);
    err(format_args!(
        "bench: warm-up: {warm_up} messages each way, not counted …"
    ));
    for (route, clients) in [(direct, &direct_clients), (proxy, &proxy_clients)] {
        let warmed = send_round(route, clients, warm_up).await;
        if let Some(error) = warmed.first_error {
            anyhow::bail!("warming up {}: {error}", route.name());
        }
    }
    let mut measured = Messages {
        direct: Sent::default(),
        proxy: Sent::default(),
        rounds: Vec::new(),
    };
    for round in 0..args.rounds {
        // The remainder goes to the first rounds.
        let count = args.messages / args.rounds + usize::from(round < args.messages % args.rounds);
        let mut order = [(direct, &direct_clients), (proxy, &proxy_clients)];
        if round % 2 == 1 {
            order.reverse();
        }
        for (route, clients) in order {
            err(format_args!(
                "bench: round {}/{}: {count} message/send {} at {} connections …",
                round + 1,
                args.rounds,
                route.name(),
                args.connections
            ));
            let sent = send_round(route, clients, count).await;
            measured.rounds.push((
                round + 1,
                route.name(),
                sent.per_second(),
                percentile(&sent.latencies, 0.50),
                percentile(&sent.latencies, 0.99),
                sent.errors,
            ));
            match route {
                Route::Direct(_) => measured.direct.add(sent),
                Route::Proxy(_) => measured.proxy.add(sent),
            }
        }
    }
    Ok(measured)
}

/// `count` `message/send` calls from one loop per client, each call sent when the
/// client's previous one is answered.
async fn send_round(route: &Route, clients: &[reqwest::Client], count: usize) -> Sent {
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut loops = tokio::task::JoinSet::new();
    for (connection, client) in clients.iter().enumerate() {
        let (route, client, next) = (route.clone(), client.clone(), Arc::clone(&next));
        loops.spawn(async move {
            // A conversation per connection, as a chat has one.
            let context = format!("bench-{connection}");
            let mut sent = Sent::default();
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= count {
                    break;
                }
                let request = route.post(&client, METHOD_SEND, &context, n, "hi");
                let at = Instant::now();
                let outcome = answered(request).await;
                sent.latencies.push(at.elapsed());
                if let Err(error) = outcome {
                    sent.errors += 1;
                    sent.first_error.get_or_insert(error);
                }
            }
            sent
        });
    }
    let mut total = Sent::default();
    while let Some(joined) = loops.join_next().await {
        match joined {
            Ok(sent) => total.add(sent),
            Err(e) => {
                total.errors += 1;
                total.first_error.get_or_insert(e.to_string());
            }
        }
    }
    total.elapsed = started.elapsed();
    total
}

/// A JSON-RPC answer as the bench reads it: only whether it is a result of the expected
/// kind or an error (the rest is skipped, not built).
#[derive(Deserialize)]
struct Answer {
    result: Option<Kind>,
    error: Option<IgnoredAny>,
}

#[derive(Deserialize)]
struct Kind {
    kind: String,
}

/// Send `request` and read its answer: a JSON-RPC result carrying a message, or why not.
async fn answered(request: reqwest::RequestBuilder) -> Result<(), String> {
    let response = request.send().await.map_err(|e| format!("{e:#}"))?;
    let status = response.status();
    let body = response.bytes().await.map_err(|e| format!("{e:#}"))?;
    if !status.is_success() {
        return Err(format!("{status}: {}", String::from_utf8_lossy(&body)));
    }
    match serde_json::from_slice::<Answer>(&body) {
        Ok(Answer {
            result: Some(Kind { kind }),
            error: None,
        }) if kind == "message" => Ok(()),
        _ => Err(format!(
            "not a message result: {}",
            String::from_utf8_lossy(&body)
        )),
    }
}

/// What one batch of concurrent streams measured.
struct Streams {
    route: &'static str,
    /// The most open at the same moment.
    peak_open: usize,
    /// Each complete stream's time from the request to its last event, sorted.
    durations: Vec<Duration>,
    /// Events read, over all streams.
    events: usize,
    errors: usize,
    first_errors: Vec<String>,
    /// This process's `VmRSS` before the streams, and its highest while they ran (KiB).
    rss_before: u64,
    rss_peak: u64,
}

/// Open `count` `message/stream` calls at once on `route`, read each to its end, and
/// sample this process's resident memory meanwhile.
async fn streams(route: &Route, count: usize, words: usize) -> anyhow::Result<Streams> {
    // Let memory freed by what ran before go back first: the figure is a difference.
    tokio::time::sleep(Duration::from_secs(1)).await;
    err(format_args!(
        "bench: {count} concurrent message/stream {} ({words} words each, one per 20 ms) …",
        route.name()
    ));
    // A stream's connection is closed when it ends: kept idle, it would hold a file of
    // the agent's (whose limit the streams come close to) for the pool's idle timeout.
    let client = route.client(0)?;
    let text = vec!["word"; words].join(" ");
    let open = Arc::new(AtomicUsize::new(0));
    let peak_open = Arc::new(AtomicUsize::new(0));
    let rss_before = vm_rss_kib();
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = tokio::spawn({
        let sampling = Arc::clone(&sampling);
        async move {
            let mut peak = 0;
            while sampling.load(Ordering::Relaxed) {
                peak = peak.max(vm_rss_kib());
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            peak.max(vm_rss_kib())
        }
    });
    let mut calls = tokio::task::JoinSet::new();
    for n in 0..count {
        let request = route.post(&client, METHOD_STREAM, &format!("stream-{n}"), n, &text);
        let (open, peak_open) = (Arc::clone(&open), Arc::clone(&peak_open));
        calls.spawn(async move {
            let at = Instant::now();
            let response = request.send().await.map_err(|e| format!("{e:#}"))?;
            // Open: the agent's stream has begun (a refusal is not a stream held open).
            let streaming = response.status().is_success();
            if streaming {
                let now_open = open.fetch_add(1, Ordering::Relaxed) + 1;
                peak_open.fetch_max(now_open, Ordering::Relaxed);
            }
            let read = read_stream(response).await;
            if streaming {
                open.fetch_sub(1, Ordering::Relaxed);
            }
            read.map(|events| (at.elapsed(), events))
                .map_err(|(events, error)| format!("after {events} event(s): {error}"))
        });
    }
    let mut run = Streams {
        route: route.name(),
        peak_open: 0,
        durations: Vec::with_capacity(count),
        events: 0,
        errors: 0,
        first_errors: Vec::new(),
        rss_before,
        rss_peak: 0,
    };
    while let Some(joined) = calls.join_next().await {
        match joined.map_err(|e| e.to_string()).and_then(|read| read) {
            Ok((took, events)) => {
                run.durations.push(took);
                run.events += events;
            }
            Err(error) => {
                run.errors += 1;
                if run.first_errors.len() < 3 {
                    run.first_errors.push(error);
                }
            }
        }
    }
    sampling.store(false, Ordering::Relaxed);
    run.rss_peak = sampler.await.unwrap_or_default();
    run.peak_open = peak_open.load(Ordering::Relaxed);
    run.durations.sort_unstable();
    Ok(run)
}

/// Read a `message/stream` answer to its end: how many events, provided none is a
/// JSON-RPC error and the last is the final message; else the events read and why not.
async fn read_stream(mut response: reqwest::Response) -> Result<usize, (usize, String)> {
    let status = response.status();
    if !status.is_success() {
        let body = response.text().await.unwrap_or_default();
        return Err((0, format!("{status}: {body}")));
    }
    let mut events = 0;
    let mut last_kind = String::new();
    let mut pending = String::new();
    loop {
        let chunk = match response.chunk().await {
            Ok(Some(chunk)) => chunk,
            Ok(None) => break,
            Err(e) => return Err((events, format!("{e:#}"))),
        };
        pending.push_str(&String::from_utf8_lossy(&chunk));
        // Only whole lines; the rest waits for the next chunk.
        let Some(end) = pending.rfind('\n') else {
            continue;
        };
        for line in pending[..end].lines() {
            let Some(data) = line.strip_prefix("data:") else {
                continue;
            };
            events += 1;
            match serde_json::from_str::<Answer>(data.trim_start()) {
                Ok(Answer {
                    result: Some(Kind { kind }),
                    error: None,
                }) => last_kind = kind,
                _ => return Err((events, format!("event {events}: {data}"))),
            }
        }
        pending.drain(..=end);
    }
    if last_kind == "message" {
        Ok(events)
    } else {
        Err((
            events,
            format!("the stream ended without the final message (last: {last_kind:?})"),
        ))
    }
}

/// This process's resident memory (`VmRSS` of /proc/self/status), in KiB; 0 if unreadable.
fn vm_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// Say on stderr when this process may open too few files for the streams: each proxied
/// one holds three descriptors here (the client's connection, the server's, the proxy's
/// to the agent).
fn warn_if_too_few_files(streams: usize) {
    let soft = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|limits| {
            limits
                .lines()
                .find_map(|l| l.strip_prefix("Max open files"))
                .and_then(|v| v.split_whitespace().next()?.parse::<usize>().ok())
        });
    let needed = 3 * streams + 256;
    if let Some(soft) = soft
        && soft < needed
    {
        err(format_args!(
            "bench: warning: this process may open {soft} files, {streams} streams need about \
             {needed}; raise it (`ulimit -n {needed}`) or expect errors"
        ));
    }
}

fn mib(kib: u64) -> f64 {
    #[allow(
        clippy::cast_precision_loss,
        reason = "memory sizes are far below 2^52 KiB"
    )]
    let kib = kib as f64;
    kib / 1024.0
}

/// Met or missed, as the report says it.
fn verdict(met: bool) -> &'static str {
    if met { "target met" } else { "target missed" }
}

/// The report: markdown tables, as docs/benchmarks.md has them, then the targets.
fn report(args: &A2aArgs, agent_open_files: u64, messages: &Messages, streams: &[Streams; 2]) {
    let [p50_overhead, p99_overhead] = report_messages(args, messages);
    let memory = report_streams(args, agent_open_files, streams);
    let proxy_streams = &streams[1];
    out("\n| target | measured | |\n|---|---|---|");
    let connections = args.connections;
    let targets = [
        (
            format!("proxy overhead p50 ≤ 0.3 ms at {connections} connections"),
            format!("{p50_overhead:+.3} ms"),
            p50_overhead <= 0.3,
        ),
        (
            format!("proxy overhead p99 ≤ 2 ms at {connections} connections"),
            format!("{p99_overhead:+.3} ms"),
            p99_overhead <= 2.0,
        ),
        (
            "≥ 5,000 messages/s through the proxy".to_owned(),
            format!("{:.0}/s", messages.proxy.per_second()),
            messages.proxy.per_second() >= 5000.0,
        ),
        (
            format!(
                "{} concurrent message/stream held open, no error",
                args.streams
            ),
            format!(
                "{} errors, {} open at once",
                proxy_streams.errors, proxy_streams.peak_open
            ),
            proxy_streams.errors == 0 && proxy_streams.peak_open == args.streams,
        ),
        (
            "control-plane RSS ≤ 150 MB with them open".to_owned(),
            format!("Δ {memory:+.1} MB (load generator included)"),
            memory <= 150.0,
        ),
    ];
    for (target, measured, met) in targets {
        out(format_args!("| {target} | {measured} | {} |", verdict(met)));
    }
}

/// The `message/send` tables and the proxy's overhead; the overhead at p50 and p99 (ms).
fn report_messages(args: &A2aArgs, messages: &Messages) -> [f64; 2] {
    out("| round | path | message/send per s | p50 | p99 | errors |\n|---|---|---|---|---|---|");
    for (round, path, per_second, p50, p99, errors) in &messages.rounds {
        out(format_args!(
            "| {round} | {path} | {per_second:.0} | {:.3} ms | {:.3} ms | {errors} |",
            millis(*p50),
            millis(*p99),
        ));
    }
    out(format_args!(
        "\n| path ({} connections, {} rounds) | messages | per s | p50 | p99 | max | errors |\n\
         |---|---|---|---|---|---|---|",
        args.connections, args.rounds
    ));
    for (path, sent) in [(DIRECT, &messages.direct), (PROXY, &messages.proxy)] {
        out(format_args!(
            "| {path} | {} | {:.0} | {:.3} ms | {:.3} ms | {:.3} ms | {} |",
            sent.latencies.len(),
            sent.per_second(),
            millis(percentile(&sent.latencies, 0.50)),
            millis(percentile(&sent.latencies, 0.99)),
            millis(sent.latencies.last().copied().unwrap_or_default()),
            sent.errors,
        ));
    }
    let (direct, proxy) = (&messages.direct.latencies, &messages.proxy.latencies);
    let overhead = |p| {
        let (through, bare) = (percentile(proxy, p), percentile(direct, p));
        (
            millis(through) - millis(bare),
            through.as_secs_f64() / bare.as_secs_f64().max(1e-9),
        )
    };
    let (p50_overhead, p50_ratio) = overhead(0.50);
    let (p99_overhead, p99_ratio) = overhead(0.99);
    let throughput_ratio = messages.proxy.per_second() / messages.direct.per_second().max(1e-9);
    out(format_args!(
        "\nproxy overhead: p50 {p50_overhead:+.3} ms ({p50_ratio:.2}× direct), p99 \
         {p99_overhead:+.3} ms ({p99_ratio:.2}× direct); throughput {throughput_ratio:.2}× direct"
    ));
    [p50_overhead, p99_overhead]
}

/// The streams' table and what their memory says; the growth of this process's resident
/// memory with the streams through the proxy open (MB).
fn report_streams(args: &A2aArgs, agent_open_files: u64, streams: &[Streams; 2]) -> f64 {
    out(format_args!(
        "\n| {} concurrent message/stream ({} words; the agent may open {agent_open_files} \
         files) | completed | errors | peak open at once | events | duration p50 | p99 | max | \
         VmRSS before | peak | Δ |\n|---|---|---|---|---|---|---|---|---|---|---|",
        args.streams, args.stream_words
    ));
    for run in streams {
        out(format_args!(
            "| {} | {} | {} | {} | {} | {:.0} ms | {:.0} ms | {:.0} ms | {:.1} MB | {:.1} MB | \
             {:+.1} MB |",
            run.route,
            run.durations.len(),
            run.errors,
            run.peak_open,
            run.events,
            millis(percentile(&run.durations, 0.50)),
            millis(percentile(&run.durations, 0.99)),
            millis(run.durations.last().copied().unwrap_or_default()),
            mib(run.rss_before),
            mib(run.rss_peak),
            mib(run.rss_peak) - mib(run.rss_before),
        ));
    }
    for run in streams {
        for error in &run.first_errors {
            out(format_args!("{} stream error: {error}", run.route));
        }
    }
    let [direct, proxy] = streams;
    let proxy_delta = mib(proxy.rss_peak) - mib(proxy.rss_before);
    let client_delta = mib(direct.rss_peak) - mib(direct.rss_before);
    out(format_args!(
        "memory: VmRSS of this process (/proc/self/status), which runs the control plane and \
         the load generator: Δ {proxy_delta:+.1} MB with the streams through the proxy, \
         {client_delta:+.1} MB with the same streams directly (the load generator's share), so \
         the control plane's own ≈ {:+.1} MB; the agent is a process of its own and its memory \
         is not counted",
        proxy_delta - client_delta
    ));
    proxy_delta
}
