//! The `hatchery-agent` binary: settings from the environment (the provisioner sets them),
//! logs on stdout, exit 0 on SIGTERM, 2 when it refuses to start, 1 on other errors.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use hatchery_agent::Settings;

#[derive(Debug, Parser)]
#[command(
    name = "hatchery-agent",
    version,
    about = "hatchery's reference agent runtime"
)]
struct Args {
    /// The control plane: `http://HOST:PORT`, or `unix:/PATH` inside a sandbox.
    #[arg(long, env = "HATCHERY_URL")]
    url: String,
    /// This agent's workspace id.
    #[arg(long, env = "HATCHERY_WORKSPACE_ID")]
    workspace_id: String,
    /// Single-use credential to register with.
    #[arg(long, env = "HATCHERY_BOOTSTRAP_TOKEN", hide_env_values = true)]
    bootstrap_token: Option<String>,
    /// A workspace token, when started without a bootstrap token.
    #[arg(long, env = "HATCHERY_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Directory holding config.yaml (and optionally providers.yaml).
    #[arg(long, env = "HATCHERY_CONFIG_DIR", default_value = "/config")]
    config_dir: PathBuf,
    /// Where to serve A2A and health.
    #[arg(long, env = "HATCHERY_AGENT_LISTEN", default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// The URL to register [default: `http://localhost:<port>`].
    #[arg(long, env = "HATCHERY_AGENT_URL")]
    advertise_url: Option<String>,
    /// How often to heartbeat.
    #[arg(long, env = "HATCHERY_HEARTBEAT_INTERVAL", default_value = "30s", value_parser = humantime::parse_duration)]
    heartbeat_interval: Duration,
}

fn main() -> ExitCode {
    let args = match Args::try_parse() {
        Ok(args) => args,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("HATCHERY_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_ansi(false)
        .try_init();
    let settings = Settings {
        platform_url: args.url,
        workspace_id: args.workspace_id,
        bootstrap_token: args.bootstrap_token.filter(|t| !t.is_empty()),
        token: args.token.filter(|t| !t.is_empty()),
        config_dir: args.config_dir,
        listen: args.listen,
        advertise_url: args.advertise_url.filter(|u| !u.is_empty()),
        heartbeat_interval: args.heartbeat_interval.max(Duration::from_millis(10)),
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            tracing::error!("cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(hatchery_agent::run(settings, hatchery_agent::terminated())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error}");
            ExitCode::from(error.exit_code())
        }
    }
}
