//! `hatchery bench …`: benchmarks of an in-process server on a fresh SQLite data
//! directory, each with a baseline measured in the same run (these machines are noisy;
//! ratios travel, absolute figures don't).
//!
//! The load generator runs in the same process, on the same cores as the server: the
//! figures include its cost.
//!
//! One file per benchmark; `harness` is what they all share (the in-process server, its
//! client, percentiles) and `load` is the closed-loop request runner of `api` and
//! `heartbeats`.

mod a2a;
mod api;
mod create_online;
mod events;
mod harness;
mod heartbeats;
mod load;
mod milestones;
mod org;

use std::process::ExitCode;

use clap::Subcommand;

use crate::exit;
use crate::output::err;

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Create and read workspaces through the API; GET /health is the baseline.
    Api(load::BenchArgs),
    /// Heartbeats from many registered workspaces; GET /health is the baseline.
    Heartbeats(heartbeats::HeartbeatArgs),
    /// Event fan-out to many SSE subscribers: delivery latency at a steady event rate.
    Events(events::EventArgs),
    /// Create → online with the local backend (sandboxed agents), against a bare
    /// `bwrap … true` as the baseline; then a burst of concurrent creates.
    CreateOnline(create_online::CreateOnlineArgs),
    /// Messages through the A2A proxy to a running sandboxed agent, against the same agent
    /// called directly on its socket; then many `message/stream` calls held open at once.
    A2a(a2a::A2aArgs),
    /// Plan and import a generated org tree (1,000 workspaces by default); one create is
    /// the baseline.
    OrgImport(org::OrgImportArgs),
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
            BenchCommand::Api(args) => api::bench_api(args).await,
            BenchCommand::Heartbeats(args) => heartbeats::bench_heartbeats(args).await,
            BenchCommand::Events(args) => events::bench_events(args).await,
            BenchCommand::CreateOnline(args) => create_online::bench_create_online(args).await,
            BenchCommand::OrgImport(args) => org::bench_org_import(args).await,
            BenchCommand::A2a(args) => a2a::bench_a2a(args).await,
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
