//! `hatchery agent`: the reference agent runtime, built into the `hatchery` binary so the
//! local backend can run it in a sandbox with nothing else installed. The same command
//! line as the `hatchery-agent` binary.

use std::process::ExitCode;

pub use hatchery_agent::cli::AgentArgs;

pub fn run(args: AgentArgs) -> ExitCode {
    ExitCode::from(hatchery_agent::cli::run_to_exit(args))
}
