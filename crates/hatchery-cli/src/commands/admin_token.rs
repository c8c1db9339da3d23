//! `hatchery admin-token reset`: mint a new admin token on the host.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;

use crate::exit;
use crate::output::{err, out};

#[derive(Debug, Subcommand)]
pub enum AdminTokenCommand {
    /// Mint a new admin token, replacing the old one; prints it once. Restart the server
    /// for it to take effect.
    Reset {
        /// Directory for hatchery's state.
        #[arg(long, env = "HATCHERY_DATA_DIR", default_value = "./.hatchery")]
        data_dir: PathBuf,
    },
}

pub fn run(command: AdminTokenCommand) -> ExitCode {
    match command {
        AdminTokenCommand::Reset { data_dir } => match hatchery_server::auth::reset(&data_dir) {
            Ok(token) => {
                out(token);
                ExitCode::SUCCESS
            }
            Err(e) => {
                err(format_args!("error: {e}"));
                ExitCode::from(exit::USER_ERROR)
            }
        },
    }
}
