//! `hatchery login` / `logout`: the control plane's URL and admin token, saved in a file
//! only its owner can read, so later commands need neither flag.

use std::io::{BufRead as _, IsTerminal as _};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use hatchery_api::server::HealthAnswer;
use serde::{Deserialize, Serialize};

use super::{Connection, Failure, finish};
use crate::output::out;

/// What `hatchery login` saved.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Saved {
    /// The control plane's URL.
    pub url: String,
    /// Its admin token (none for a dev-mode server).
    pub token: Option<String>,
}

/// The config file: `HATCHERY_CONFIG`, else `$XDG_CONFIG_HOME/hatchery/config.toml`, else
/// `~/.config/hatchery/config.toml`.
fn path() -> Option<PathBuf> {
    let set = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    if let Some(file) = set("HATCHERY_CONFIG") {
        return Some(PathBuf::from(file));
    }
    let config_home = set("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| set("HOME").map(|home| PathBuf::from(home).join(".config")))?;
    Some(config_home.join("hatchery").join("config.toml"))
}

/// The saved connection, if there is one. A file that exists but cannot be read or parsed
/// is an error, not silently ignored: the user would otherwise talk to the wrong server.
pub(super) fn load() -> Result<Option<Saved>, String> {
    let Some(path) = path() else {
        return Ok(None);
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    toml::from_str(&text)
        .map(Some)
        .map_err(|e| format!("{}: {e} (run `hatchery login` again)", path.display()))
}

#[derive(Debug, Args)]
pub struct LoginArgs {
    #[command(flatten)]
    connection: Connection,
}

/// Check the URL and token against the server, then save them. Without `--token` (or
/// `HATCHERY_TOKEN`) the token is read from the terminal, unechoed, or from stdin.
pub fn run_login(args: &LoginArgs) -> ExitCode {
    finish(login(&args.connection))
}

fn login(connection: &Connection) -> Result<(), Failure> {
    let mut connection = connection.clone();
    if connection.token.is_none() {
        connection.token = read_token()?;
    }
    let mut client = connection.client()?;
    // Exactly what was given: never an older saved token.
    client.token.clone_from(&connection.token);
    let (_, health) = client.call(reqwest::Method::GET, "/health", None)?;
    // Only a hatchery in dev mode says so; any other answer is a server to log in to.
    let dev = HealthAnswer::deserialize(&health).is_ok_and(|h| h.dev_mode == Some(true));
    // The admin listing proves the token is the admin's (a dev-mode server takes none).
    client.call(reqwest::Method::GET, "/workspaces", None)?;
    let path = path().ok_or_else(|| {
        Failure::user("nowhere to save the login: set HOME, XDG_CONFIG_HOME or HATCHERY_CONFIG")
    })?;
    let saved = Saved {
        url: client.base.clone(),
        token: client.token.clone(),
    };
    let text = toml::to_string(&saved).map_err(|e| Failure::user(e.to_string()))?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| Failure::user(format!("cannot create {}: {e}", dir.display())))?;
    }
    hatchery_server::private_file::write(&path, text.as_bytes())
        .map_err(|e| Failure::user(format!("cannot write {}: {e}", path.display())))?;
    out(format_args!(
        "logged in to {}{} (saved in {})",
        saved.url,
        if dev { " (dev mode)" } else { "" },
        path.display()
    ));
    Ok(())
}

fn read_token() -> Result<Option<String>, Failure> {
    let token = if std::io::stdin().is_terminal() {
        rpassword::prompt_password("admin token (empty for a dev-mode server): ")
            .map_err(|e| Failure::user(format!("cannot read the token: {e}")))?
    } else {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| Failure::user(format!("cannot read the token from stdin: {e}")))?;
        line
    };
    let token = token.trim();
    Ok((!token.is_empty()).then(|| token.to_owned()))
}

/// Forget the saved login.
pub fn run_logout() -> ExitCode {
    let Some(path) = path() else {
        return ExitCode::SUCCESS;
    };
    match std::fs::remove_file(&path) {
        Ok(()) => {
            out(format_args!("logged out ({} removed)", path.display()));
            ExitCode::SUCCESS
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            out("not logged in");
            ExitCode::SUCCESS
        }
        Err(e) => finish(Err(Failure::user(format!(
            "cannot remove {}: {e}",
            path.display()
        )))),
    }
}
