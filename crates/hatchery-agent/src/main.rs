//! The `hatchery-agent` binary: settings from the environment (the provisioner sets them),
//! logs on stdout, exit 0 on SIGTERM, 2 when it refuses to start, 1 on other errors.

use std::process::ExitCode;

use clap::Parser;
use hatchery_agent::cli::{AgentArgs, run_to_exit};

#[derive(Debug, Parser)]
#[command(
    name = "hatchery-agent",
    version,
    about = "hatchery's reference agent runtime"
)]
struct Cli {
    #[command(flatten)]
    args: AgentArgs,
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    ExitCode::from(run_to_exit(cli.args))
}
