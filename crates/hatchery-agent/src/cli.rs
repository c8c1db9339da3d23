//! The agent's command line, shared by the `hatchery-agent` binary and `hatchery agent`:
//! every setting also comes from the environment the provisioner sets.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::Settings;

/// How the agent is started.
#[derive(Debug, clap::Args)]
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
    /// Where to serve A2A and health on TCP (unless `--socket` is given).
    #[arg(long, env = "HATCHERY_AGENT_LISTEN", default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// A Unix socket to serve A2A and health on instead of TCP: the one a sandbox's backend
    /// reaches the agent through. A stale socket there is replaced.
    #[arg(long, env = "HATCHERY_AGENT_SOCKET")]
    socket: Option<PathBuf>,
    /// The URL to register [default: `http://localhost:<port>`, or
    /// `http://localhost/hatchery-sandbox/<workspace id>` on a socket].
    #[arg(long, env = "HATCHERY_AGENT_URL")]
    advertise_url: Option<String>,
    /// How often to heartbeat.
    #[arg(long, env = "HATCHERY_HEARTBEAT_INTERVAL", default_value = "30s", value_parser = humantime::parse_duration)]
    heartbeat_interval: Duration,
}

impl AgentArgs {
    /// The settings these arguments make.
    #[must_use]
    pub fn into_settings(self) -> Settings {
        Settings {
            platform_url: self.url,
            workspace_id: self.workspace_id,
            bootstrap_token: self.bootstrap_token.filter(|t| !t.is_empty()),
            token: self.token.filter(|t| !t.is_empty()),
            config_dir: self.config_dir,
            listen: self.listen,
            socket: self.socket.filter(|p| !p.as_os_str().is_empty()),
            advertise_url: self.advertise_url.filter(|u| !u.is_empty()),
            heartbeat_interval: self.heartbeat_interval.max(Duration::from_millis(10)),
        }
    }
}

/// Run the agent to its end (logs on stdout); the process exit code: 0 on SIGTERM, 2
/// when it refuses to start, 1 on other errors.
#[must_use]
pub fn run_to_exit(args: AgentArgs) -> u8 {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("HATCHERY_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_ansi(false)
        .try_init();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            tracing::error!("cannot start the async runtime: {e}");
            return 1;
        }
    };
    match runtime.block_on(crate::run(args.into_settings(), crate::terminated())) {
        Ok(()) => 0,
        Err(error) => {
            tracing::error!("{error}");
            error.exit_code()
        }
    }
}
