//! `hatchery secrets set|list|delete`: global secrets, or one workspace's (`--workspace`).
//! Values are never printed; `set` reads the value from stdin unless `--value` is given,
//! so it stays out of shell history and process listings.

use std::io::{IsTerminal as _, Read as _};
use std::process::ExitCode;

use clap::Args;
use hatchery_api::secrets::{SecretChanged, SecretListed, SetSecret};
use reqwest::Method;

use super::{Client, Connection, Failure, decode, finish, segment};
use crate::output::{Table, out};

/// What `hatchery secrets set|list|delete` act on.
#[derive(Debug, Args)]
pub struct Scope {
    /// A workspace's secrets instead of the global ones.
    #[arg(long, value_name = "ID")]
    workspace: Option<String>,
    #[command(flatten)]
    connection: Connection,
}

/// A secrets command of the operator client.
#[derive(Debug)]
pub enum SecretsAction {
    Set { key: String, value: Option<String> },
    List,
    Delete { key: String },
}

pub fn run_secrets(scope: &Scope, command: SecretsAction) -> ExitCode {
    finish(
        scope
            .connection
            .client()
            .and_then(|client| secrets(&client, scope.workspace.as_deref(), command)),
    )
}

fn secrets(
    client: &Client,
    workspace: Option<&str>,
    command: SecretsAction,
) -> Result<(), Failure> {
    let base = workspace.map_or_else(
        || "/settings/secrets".to_owned(),
        |id| format!("/workspaces/{}/secrets", segment(id)),
    );
    let value = match command {
        SecretsAction::Set { key, value } => {
            let value = match value {
                Some(value) => value,
                None => read_value(&key)?,
            };
            client
                .send(Method::PUT, &base, &SetSecret { key, value })?
                .1
        }
        SecretsAction::List => {
            let (_, listed) = client.call(Method::GET, &base, None)?;
            if !client.json {
                let mut table = Table::new(vec!["KEY", "SCOPE", "UPDATED"]);
                for secret in decode::<Vec<SecretListed>>(&listed)? {
                    table.row(vec![secret.key, secret.scope, secret.updated_at]);
                }
                out(table.render());
                return Ok(());
            }
            listed
        }
        SecretsAction::Delete { key } => {
            let path = format!("{base}/{}", segment(&key));
            client.call(Method::DELETE, &path, None)?.1
        }
    };
    if client.json {
        out(value);
    } else {
        let changed: SecretChanged = decode(&value)?;
        out(format_args!(
            "{} {} ({})",
            changed.key,
            changed.status,
            workspace.map_or_else(|| "global".to_owned(), |id| format!("workspace {id}")),
        ));
    }
    Ok(())
}

/// The value from stdin: typed at a prompt (unechoed) on a terminal, else piped. One
/// trailing newline is dropped (what `echo` adds); an empty value is refused by the server.
fn read_value(key: &str) -> Result<String, Failure> {
    if std::io::stdin().is_terminal() {
        return rpassword::prompt_password(format!("value of {key}: "))
            .map_err(|e| Failure::user(format!("cannot read the value: {e}")));
    }
    let mut value = String::new();
    std::io::stdin()
        .read_to_string(&mut value)
        .map_err(|e| Failure::user(format!("cannot read the value from stdin: {e}")))?;
    if value.ends_with('\n') {
        value.pop();
        if value.ends_with('\r') {
            value.pop();
        }
    }
    Ok(value)
}
