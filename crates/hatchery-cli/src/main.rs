//! `hatchery`: the control plane's single binary: `serve`, the provider registry tools,
//! and admin tasks. The operator client joins it as its issue lands.

// Product code never unwraps what input can influence; tests may.
#![warn(clippy::unwrap_used)]

mod commands;
mod output;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// hatchery allocates many small strings and vectors (manifests, requests); mimalloc
/// does that markedly faster than the system allocator. Benchmarks use it too.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Turn transparent huge pages off for this process and, since the setting is inherited
/// across fork and exec, for every sandbox and agent it starts. mimalloc asks for huge
/// pages for its arenas, so each new process zeroed whole 2 MiB pages on first touch: on
/// this project's VMs that was two thirds of the CPU a burst of 100 agent starts cost
/// (create → online for all 100: 1.4–2.6 s with them, 0.56 s without), and it inflated
/// every agent's memory by megabytes. Where the kernel has no such switch, nothing changes.
fn without_transparent_huge_pages() {
    let _ = nix::sys::prctl::set_thp_disable(true);
}

/// Exit codes with a meaning scripts can rely on.
pub(crate) mod exit {
    /// The input (a flag, a file, a manifest, a derivation) was refused.
    pub const USER_ERROR: u8 = 1;
    /// The server could not start or stopped on an error.
    pub const SERVER_ERROR: u8 = 2;
}

#[derive(Debug, Parser)]
#[command(
    name = "hatchery",
    version,
    about = "Control plane that provisions and supervises teams of AI agents",
    propagate_version = true
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the control plane: the HTTP API, by default on 127.0.0.1:8080.
    Serve(Box<commands::serve::ServeArgs>),
    /// Manage the admin token.
    #[command(subcommand)]
    AdminToken(commands::admin_token::AdminTokenCommand),
    /// Inspect provider manifests and derive providers for (runtime, model) pairs.
    #[command(subcommand)]
    Providers(commands::providers::ProvidersCommand),
    /// Run the reference agent (what the local backend starts in each sandbox).
    Agent(commands::agent::AgentArgs),
    /// Measure the HTTP API under load (in-process server, fresh SQLite data dir).
    #[command(subcommand)]
    Bench(commands::bench::BenchCommand),
    /// Secrets on a running control plane (set, list, delete), and re-sealing them all
    /// under a new key (rotate-key).
    #[command(subcommand)]
    Secrets(commands::secrets::SecretsCommand),
    /// Workspaces of a running control plane (--url, --token).
    Ws {
        #[command(flatten)]
        connection: commands::client::Connection,
        #[command(subcommand)]
        command: commands::client::WsCommand,
    },
    /// Save a control plane's URL and admin token for the other client commands.
    Login(commands::client::LoginArgs),
    /// Forget the saved login.
    Logout,
    /// Org templates on a running control plane (--url, --token).
    Org {
        #[command(flatten)]
        connection: commands::client::Connection,
        #[command(subcommand)]
        command: commands::client::OrgCommand,
    },
}

/// Print a command-line parse failure. Help and version are successes; every other
/// failure is the user's input.
fn parse_failure(err: &clap::Error) -> ExitCode {
    let _ = err.print();
    if err.use_stderr() {
        ExitCode::from(exit::USER_ERROR)
    } else {
        ExitCode::SUCCESS
    }
}

/// `hatchery agent …` alone: what every sandbox runs, so it skips building the whole
/// command tree (a millisecond of every agent's start).
#[derive(Debug, Parser)]
#[command(name = "hatchery agent", version, about = "Run the reference agent")]
struct AgentCli {
    #[command(flatten)]
    args: commands::agent::AgentArgs,
}

fn main() -> ExitCode {
    without_transparent_huge_pages();
    let mut command_line = std::env::args_os();
    if command_line.nth(1).is_some_and(|first| first == "agent") {
        return match AgentCli::try_parse_from(
            std::iter::once("hatchery agent".into()).chain(command_line),
        ) {
            Ok(cli) => commands::agent::run(cli.args),
            Err(err) => parse_failure(&err),
        };
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => return parse_failure(&err),
    };
    match cli.command {
        Command::Providers(command) => commands::providers::run(command),
        Command::Serve(args) => commands::serve::run(*args),
        Command::AdminToken(command) => commands::admin_token::run(command),
        Command::Secrets(command) => commands::secrets::run(command),
        Command::Bench(command) => commands::bench::run(command),
        Command::Agent(args) => commands::agent::run(args),
        Command::Ws {
            connection,
            command,
        } => commands::client::run_ws(&connection, command),
        Command::Org {
            connection,
            command,
        } => commands::client::run_org(&connection, command),
        Command::Login(args) => commands::client::run_login(&args),
        Command::Logout => commands::client::run_logout(),
    }
}
