//! `hatchery agent`: the reference agent runtime, built into the `hatchery` binary so the
//! local backend can run it in a sandbox with nothing else installed. Settings come from
//! the environment the provisioner sets (the same as the `hatchery-agent` binary's).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use hatchery_agent::Settings;

use crate::output::err;

#[derive(Debug, Args)]
pub struct AgentArgs {
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

pub fn run(args: AgentArgs) -> ExitCode {
    super::serve::init_logging_to_stdout();
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
            err(format_args!("error: cannot start the async runtime: {e}"));
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
