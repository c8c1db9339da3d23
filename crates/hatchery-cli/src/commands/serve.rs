//! `hatchery serve`: run the control plane.

use std::collections::BTreeMap;
use std::io::IsTerminal as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use hatchery_provision::AgentLaunch;
use hatchery_server::backends::DefaultImage;
use hatchery_server::supervision::{Supervision, parse_runtime_timeouts};
use hatchery_server::{Application, BackendChoice, ServerConfig};

use crate::exit;
use crate::output::err;

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "HATCHERY_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Directory for hatchery's state.
    #[arg(long, env = "HATCHERY_DATA_DIR", default_value = "./.hatchery")]
    data_dir: PathBuf,
    /// Database URL (`sqlite://PATH` or `postgres://…`); a SQLite file in the data dir when omitted.
    #[arg(long, env = "HATCHERY_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// Provider manifest; the built-in catalog when omitted.
    #[arg(long, env = "HATCHERY_PROVIDERS", value_name = "FILE")]
    providers: Option<PathBuf>,
    /// Admin token; when omitted, the one minted at first start (its hash is in the data dir).
    #[arg(long, env = "HATCHERY_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
    /// Key secrets are sealed with: 32 random bytes in base64 (`openssl rand -base64 32`).
    #[arg(long, env = "HATCHERY_SECRETS_KEY", hide_env_values = true)]
    secrets_key: Option<String>,
    /// The platform gateway credential; needed to create platform-billed workspaces.
    #[arg(long, env = "HATCHERY_PLATFORM_KEY", hide_env_values = true)]
    platform_key: Option<String>,
    /// Development mode: loopback only, admin routes open. Never in production.
    #[arg(long, env = "HATCHERY_DEV", value_parser = clap::builder::BoolishValueParser::new(), default_value = "false")]
    dev: bool,
    /// An online workspace not heard from for this long goes offline.
    #[arg(long, env = "HATCHERY_HEARTBEAT_TTL", default_value = "60s", value_parser = positive_duration)]
    heartbeat_ttl: Duration,
    /// A workspace still provisioning after this long fails [default: 10m; 1h in dev mode].
    #[arg(long, env = "HATCHERY_PROVISION_TIMEOUT", value_parser = positive_duration)]
    provision_timeout: Option<Duration>,
    /// An A2A message whose agent sends nothing for this long is answered 504 (a stream
    /// that goes silent this long ends with a JSON-RPC error).
    #[arg(long, env = "HATCHERY_A2A_IDLE_TIMEOUT", default_value = "5m", value_parser = positive_duration)]
    a2a_idle_timeout: Duration,
    /// How long events are kept: older ones are deleted, oldest first, and a cursor into
    /// them (`?after=`, `Last-Event-ID`) gets 410 `cursor_expired`.
    #[arg(long, env = "HATCHERY_EVENT_RETENTION", default_value = "30d", value_parser = positive_duration)]
    event_retention: Duration,
    /// Keep at most this many events (the newest) as well [default: no count limit].
    #[arg(long, env = "HATCHERY_EVENT_RETENTION_COUNT", value_parser = clap::value_parser!(u64).range(1000..))]
    event_retention_count: Option<u64>,
    /// Unix socket the API is also served on, for sandboxed agents [default: <data dir>/run/hatchery.sock; "" for none].
    #[arg(long, env = "HATCHERY_SOCKET")]
    socket: Option<PathBuf>,
    /// Where agents run: `local` (a bubblewrap sandbox each), `docker` (a container each,
    /// on a Docker or Podman engine on this machine), `kubernetes` (a Pod each) or `none`
    /// (agents are started by hand and register themselves).
    #[arg(long, env = "HATCHERY_BACKEND", default_value = "local", value_parser = ["local", "docker", "kubernetes", "none"])]
    backend: String,
    /// The Docker (or Podman) engine's socket, for the docker backend [default: `$DOCKER_HOST`, else `unix:///var/run/docker.sock`].
    #[arg(long, env = "HATCHERY_DOCKER_HOST")]
    docker_host: Option<String>,
    /// The image agents run in, for the docker backend [default: one built from this binary
    /// at start] and the kubernetes backend (required there).
    #[arg(long, env = "HATCHERY_AGENT_IMAGE")]
    agent_image: Option<String>,
    /// The Kubernetes API as an unauthenticated URL, e.g. `kubectl proxy`'s
    /// `http://127.0.0.1:8001` [default: as kubectl finds it: `$KUBECONFIG`,
    /// `~/.kube/config`, or the in-cluster service account].
    #[arg(long, env = "HATCHERY_KUBE_API")]
    kube_api: Option<String>,
    /// The namespace agents' pods go in [default: the Kubernetes configuration's].
    #[arg(long, env = "HATCHERY_KUBE_NAMESPACE")]
    kube_namespace: Option<String>,
    /// Where agents reach this control plane from inside the cluster, for the kubernetes
    /// backend (required there), e.g. `http://hatchery.hatchery.svc:8080`.
    #[arg(long, env = "HATCHERY_KUBE_AGENT_URL")]
    kube_agent_url: Option<String>,
    /// Images of runtimes, as JSON, for the docker backend: `{"my-runtime": "my-agent:1.2"}`.
    /// Runtimes not listed run the agent image.
    #[arg(long, env = "HATCHERY_RUNTIME_IMAGES", value_parser = parse_runtime_images)]
    runtime_images: Option<RuntimeImages>,
    /// Commands of runtimes, as JSON: `{"my-runtime": ["/usr/bin/my-agent", "--flag"]}`.
    /// Runtimes not listed run `hatchery agent`.
    #[arg(long, env = "HATCHERY_RUNTIME_COMMANDS", value_parser = parse_runtime_commands)]
    runtime_commands: Option<RuntimeCommands>,
    /// Runtimes whose sandboxes get the host's network (comma-separated); none by default.
    #[arg(long, env = "HATCHERY_HOST_NETWORK_RUNTIMES", value_delimiter = ',')]
    host_network_runtimes: Vec<String>,
    /// Each agent's memory, in MiB (a control-group limit where control groups are
    /// writable, else an address-space rlimit).
    #[arg(long, env = "HATCHERY_AGENT_MEMORY_MB", default_value = "2048", value_parser = clap::value_parser!(u64).range(16..))]
    agent_memory_mb: u64,
    /// Each agent's CPU, in cores (`0.5`, `2`): containers, pods, and sandboxes where
    /// control groups are writable.
    #[arg(long, env = "HATCHERY_AGENT_CPUS", default_value = "1", value_parser = parse_cpus)]
    agent_cpus: u64,
    /// Each agent's processes and threads at most.
    #[arg(long, env = "HATCHERY_AGENT_PROCESSES", default_value = "4096", value_parser = clap::value_parser!(u64).range(16..))]
    agent_processes: u64,
    /// Templates directory: org templates are `org/<name>.yaml` (or `org/<name>/org.yaml`)
    /// in it [default: `./templates` when it exists; "" for none].
    #[arg(long, env = "HATCHERY_TEMPLATES_DIR")]
    templates_dir: Option<PathBuf>,
    /// Serve the dashboard from this directory instead of the built-in copy (for working on
    /// the dashboard itself).
    #[arg(long, env = "HATCHERY_DASHBOARD_DIR")]
    dashboard_dir: Option<PathBuf>,
    /// How many agents start at the same time [default: four per core].
    #[arg(long, env = "HATCHERY_CONCURRENT_STARTS", value_parser = clap::value_parser!(u64).range(1..=1024))]
    concurrent_starts: Option<u64>,
    /// How long a claimed provision job stays its runner's without renewal: after a crash,
    /// its jobs are taken over within this long.
    #[arg(long, env = "HATCHERY_JOB_LEASE", default_value = "30s", value_parser = at_least_a_second)]
    job_lease: Duration,
    /// Browser origins allowed to call the API from their pages (CORS, credentials
    /// included), comma-separated, e.g. `https://canvas.example.com`. None: CORS is off.
    #[arg(long, env = "HATCHERY_CORS_ORIGINS", value_delimiter = ',')]
    cors_origins: Vec<String>,
    /// How long a request may take until its answer starts (a slow body counts; streams,
    /// once answered, run on).
    #[arg(long, env = "HATCHERY_REQUEST_TIMEOUT", default_value = "60s", value_parser = at_least_a_second)]
    request_timeout: Duration,
    /// Open connections each listener (TCP, the agents' socket) accepts at most; more wait.
    #[arg(long, env = "HATCHERY_MAX_CONNECTIONS", default_value_t = 4096, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    max_connections: u64,
    /// How long a client has to send a request's headers; an idle keep-alive connection is
    /// closed after as long.
    #[arg(long, env = "HATCHERY_HEADER_TIMEOUT", default_value = "30s", value_parser = at_least_a_second)]
    header_timeout: Duration,
    /// How long a response may wait for a client that reads nothing (a stalled event
    /// stream) before its connection is closed.
    #[arg(long, env = "HATCHERY_WRITE_TIMEOUT", default_value = "30s", value_parser = at_least_a_second)]
    write_timeout: Duration,
    /// Fault injection, for the crash tests only: abort at this provisioning step
    /// (`created`, `job-claimed`, `agent-started`, `job-done`).
    #[arg(long, env = "HATCHERY_TEST_CRASH_AT", hide = true)]
    test_crash_at: Option<String>,
    /// Fault injection, for the tests only: each start waits this long between minting its
    /// bootstrap token and starting the agent (a restart can then land mid-start).
    #[arg(long, env = "HATCHERY_TEST_START_DELAY", hide = true, value_parser = humantime::parse_duration)]
    test_start_delay: Option<Duration>,
    /// Per-runtime provisioning deadlines, e.g. `hermes=30m,codex=15m` (hermes=30m built in).
    #[arg(long, env = "HATCHERY_PROVISION_TIMEOUTS", value_parser = parse_runtime_timeouts, default_value = "")]
    provision_timeouts: BTreeMap<String, Duration>,
}

/// The socket sandboxed agents reach the control plane through, in a directory of its own
/// under the data directory (containers are given that directory).
const SOCKET_FILE: &str = "run/hatchery.sock";
/// The templates directory when none is configured (the repository's, from a checkout).
const DEFAULT_TEMPLATES_DIR: &str = "./templates";
/// The engine the docker backend drives when neither flag nor `DOCKER_HOST` names one.
const DEFAULT_DOCKER_HOST: &str = "unix:///var/run/docker.sock";

/// Dev mode's clients create workspaces and start agents by hand: give them time.
const DEV_PROVISION_TIMEOUT: Duration = Duration::from_hours(1);

/// Runtime → command line.
#[derive(Debug, Clone)]
struct RuntimeCommands(std::collections::HashMap<String, Vec<String>>);

fn parse_runtime_commands(text: &str) -> Result<RuntimeCommands, String> {
    let commands: std::collections::HashMap<String, Vec<String>> = serde_json::from_str(text)
        .map_err(|e| format!("expected a JSON object of runtime to command array: {e}"))?;
    if let Some((runtime, _)) = commands.iter().find(|(_, argv)| argv.is_empty()) {
        return Err(format!("the command of {runtime:?} is empty"));
    }
    Ok(RuntimeCommands(commands))
}

/// Runtime → image.
#[derive(Debug, Clone)]
struct RuntimeImages(std::collections::HashMap<String, String>);

fn parse_runtime_images(text: &str) -> Result<RuntimeImages, String> {
    let images: std::collections::HashMap<String, String> = serde_json::from_str(text)
        .map_err(|e| format!("expected a JSON object of runtime to image: {e}"))?;
    if let Some((runtime, _)) = images.iter().find(|(_, image)| image.trim().is_empty()) {
        return Err(format!("the image of {runtime:?} is empty"));
    }
    Ok(RuntimeImages(images))
}

/// Agents run `hatchery agent` from this very binary: nothing else to install.
pub(crate) fn agent_command() -> std::io::Result<Vec<String>> {
    let exe = std::env::current_exe()?;
    Ok(vec![exe.display().to_string(), "agent".to_owned()])
}

/// Cores → thousandths of a core.
fn parse_cpus(text: &str) -> Result<u64, String> {
    let cores: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a number of cores (e.g. 0.5, 2)"))?;
    if !(0.01..=1024.0).contains(&cores) {
        return Err("must be between 0.01 and 1024 cores".to_owned());
    }
    // In range, so the product fits.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    Ok((cores * 1000.0).round() as u64)
}

fn at_least_a_second(text: &str) -> Result<Duration, String> {
    let duration = humantime::parse_duration(text).map_err(|e| e.to_string())?;
    if duration < Duration::from_secs(1) {
        return Err("must be at least 1s".to_owned());
    }
    Ok(duration)
}

fn positive_duration(text: &str) -> Result<Duration, String> {
    let duration = humantime::parse_duration(text).map_err(|e| e.to_string())?;
    if duration.is_zero() {
        return Err("must be longer than zero".to_owned());
    }
    Ok(duration)
}

fn supervision(args: &ServeArgs) -> Supervision {
    let defaults = Supervision::default();
    let mut supervision = Supervision {
        heartbeat_ttl: args.heartbeat_ttl,
        a2a_idle_timeout: args.a2a_idle_timeout,
        event_retention: args.event_retention,
        event_retention_count: args.event_retention_count,
        job_lease: args.job_lease,
        concurrent_starts: args
            .concurrent_starts
            .and_then(|n| usize::try_from(n).ok())
            .unwrap_or_else(hatchery_server::supervision::default_concurrent_starts),
        agent_limits: hatchery_provision::Limits {
            memory_bytes: args.agent_memory_mb.saturating_mul(1024 * 1024),
            cpu_millis: args.agent_cpus,
            processes: args.agent_processes,
            ..hatchery_provision::Limits::default()
        },
        crash_at: args.test_crash_at.clone().filter(|p| !p.is_empty()),
        test_start_delay: args.test_start_delay,
        // Sweep often enough that a silent workspace goes offline within ~1.25 TTL.
        sweep_interval: (args.heartbeat_ttl / 4)
            .clamp(Duration::from_millis(100), defaults.sweep_interval),
        ..defaults
    };
    match (args.provision_timeout, args.dev) {
        (Some(timeout), _) => supervision.provision_timeout = timeout,
        (None, true) => supervision.provision_timeout = DEV_PROVISION_TIMEOUT,
        (None, false) => {}
    }
    supervision
        .provision_timeouts
        .extend(args.provision_timeouts.clone());
    supervision
}

/// How agents launch: what each runtime runs and the default as the backend takes them;
/// who shares the host's network from the flags, the same for every backend.
fn agent_launch<P, D>(
    args: &ServeArgs,
    by_runtime: std::collections::HashMap<String, P>,
    default: D,
) -> AgentLaunch<P, D> {
    AgentLaunch {
        by_runtime,
        host_network: args
            .host_network_runtimes
            .iter()
            .filter(|r| !r.is_empty())
            .cloned()
            .collect(),
        ..AgentLaunch::new(default)
    }
}

fn backend_choice(args: &ServeArgs) -> Result<BackendChoice, String> {
    let images = || args.runtime_images.clone().map(|i| i.0).unwrap_or_default();
    Ok(match args.backend.as_str() {
        "none" => BackendChoice::None,
        "docker" => {
            let agent_program = std::env::current_exe()
                .map_err(|e| format!("cannot find the hatchery binary to run agents with: {e}"))?;
            let default = match args.agent_image.clone().filter(|i| !i.is_empty()) {
                Some(image) => DefaultImage::Named(image),
                None => DefaultImage::BuiltFrom(agent_program),
            };
            BackendChoice::Docker {
                endpoint: args
                    .docker_host
                    .clone()
                    .filter(|h| !h.is_empty())
                    .or_else(|| std::env::var("DOCKER_HOST").ok().filter(|h| !h.is_empty()))
                    .unwrap_or_else(|| DEFAULT_DOCKER_HOST.to_owned()),
                launch: agent_launch(args, images(), default),
            }
        }
        "kubernetes" => BackendChoice::Kubernetes {
            api: args.kube_api.clone().filter(|a| !a.is_empty()),
            namespace: args.kube_namespace.clone().filter(|n| !n.is_empty()),
            agent_url: args
                .kube_agent_url
                .clone()
                .filter(|u| !u.is_empty())
                .ok_or("the kubernetes backend needs HATCHERY_KUBE_AGENT_URL: where agents reach this control plane from inside the cluster")?,
            launch: agent_launch(
                args,
                images(),
                args.agent_image
                    .clone()
                    .filter(|i| !i.is_empty())
                    .ok_or("the kubernetes backend needs HATCHERY_AGENT_IMAGE: an image with `hatchery agent` that the cluster can pull (see the README)")?,
            ),
        },
        _ => BackendChoice::Local {
            launch: agent_launch(
                args,
                args.runtime_commands
                    .clone()
                    .map(|c| c.0)
                    .unwrap_or_default(),
                agent_command().map_err(|e| {
                    format!("cannot find the hatchery binary to run agents with: {e}")
                })?,
            ),
        },
    })
}

pub fn run(args: ServeArgs) -> ExitCode {
    init_logging();
    let supervision = supervision(&args);
    let socket = match &args.socket {
        Some(path) if path.as_os_str().is_empty() => None,
        Some(path) => Some(path.clone()),
        None => Some(args.data_dir.join(SOCKET_FILE)),
    };
    let backend = match backend_choice(&args) {
        Ok(choice) => choice,
        Err(e) => {
            err(format_args!("error: {e}"));
            return ExitCode::from(exit::USER_ERROR);
        }
    };
    let config = ServerConfig {
        listen: args.listen,
        data_dir: args.data_dir,
        database_url: args.database_url.filter(|u| !u.is_empty()).map(Into::into),
        providers: args.providers,
        admin_token: args.admin_token.filter(|t| !t.is_empty()).map(Into::into),
        secrets_key: args.secrets_key.filter(|k| !k.is_empty()).map(Into::into),
        platform_key: args.platform_key.filter(|k| !k.is_empty()).map(Into::into),
        dev: args.dev,
        supervision,
        event_buffer: hatchery_server::event_hub::EventBuffer::default(),
        backend,
        unix_socket: socket,
        templates_dir: match args.templates_dir {
            Some(dir) if dir.as_os_str().is_empty() => None,
            Some(dir) => Some(dir),
            // The repository's own templates, when run from a checkout.
            None => Some(PathBuf::from(DEFAULT_TEMPLATES_DIR)).filter(|d| d.is_dir()),
        },
        dashboard_dir: args.dashboard_dir.filter(|d| !d.as_os_str().is_empty()),
        http: hatchery_server::http::HttpSettings {
            cors_origins: args
                .cors_origins
                .iter()
                .map(|o| o.trim().to_owned())
                .filter(|o| !o.is_empty())
                .collect(),
            request_timeout: args.request_timeout,
            connections: hatchery_server::serve::ConnectionLimits {
                max_connections: usize::try_from(args.max_connections).unwrap_or(usize::MAX),
                header_timeout: args.header_timeout,
                write_timeout: args.write_timeout,
            },
        },
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            err(format_args!("error: cannot start the async runtime: {e}"));
            return ExitCode::from(exit::SERVER_ERROR);
        }
    };
    runtime.block_on(async {
        let app = match Application::build(config).await {
            Ok(app) => app,
            Err(e) => {
                err(format_args!("error: {e}"));
                return ExitCode::from(exit::SERVER_ERROR);
            }
        };
        if let Some(token) = &app.new_admin_token {
            err(format_args!(
                "admin token (shown once; only its hash is stored): {token}"
            ));
        }
        match app.run_until_stopped().await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                err(format_args!("error: server stopped: {e}"));
                ExitCode::from(exit::SERVER_ERROR)
            }
        }
    })
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("HATCHERY_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}
