//! `hatchery secrets`: `set|list|delete` against a running control plane (the operator
//! client), and `rotate-key`: re-seal every stored secret under a new key, in one
//! transaction (a server still running with the old key refuses secret reads and writes
//! from then on; restart it with the new key).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;
use hatchery_server::app::secrets::{key_epoch, rotate_key};
use hatchery_server::secrets::{DEV_KEY_FILE, SecretsKey};
use hatchery_store::{Store, default_sqlite_url};

use crate::exit;
use crate::output::{err, out};

#[derive(Debug, Subcommand)]
#[allow(clippy::doc_markdown, reason = "clap help text, shown as written")]
pub enum SecretsCommand {
    /// Set a secret on a running control plane: a global one, or a workspace's with
    /// --workspace. The value is read from stdin (typed unechoed, or piped) unless --value.
    Set {
        /// Its name (`^[A-Z][A-Z0-9_]{0,127}$`, e.g. OPENAI_API_KEY).
        key: String,
        /// The value (visible in shell history and process listings: prefer stdin).
        #[arg(long)]
        value: Option<String>,
        #[command(flatten)]
        scope: crate::commands::client::Scope,
    },
    /// List secrets (names and scopes; values are never shown).
    List {
        #[command(flatten)]
        scope: crate::commands::client::Scope,
    },
    /// Delete a secret.
    Delete {
        /// The secret's name (e.g. OPENAI_API_KEY).
        key: String,
        #[command(flatten)]
        scope: crate::commands::client::Scope,
    },
    /// Re-encrypt every secret with a new key (all or nothing). The current key comes from
    /// HATCHERY_SECRETS_KEY, else the development key file in the data dir. The new key
    /// comes from HATCHERY_NEW_SECRETS_KEY, else one is generated and printed once (or,
    /// when the development key file was in use, written to it).
    RotateKey {
        /// Directory for hatchery's state.
        #[arg(long, env = "HATCHERY_DATA_DIR", default_value = "./.hatchery")]
        data_dir: PathBuf,
        /// Database URL; the SQLite file in the data dir when omitted.
        #[arg(long, env = "HATCHERY_DATABASE_URL", hide_env_values = true)]
        database_url: Option<String>,
        /// The key the secrets are sealed with now (32 bytes in base64); the data dir's
        /// development key file when omitted.
        #[arg(long, env = "HATCHERY_SECRETS_KEY", hide_env_values = true)]
        secrets_key: Option<String>,
        /// The new key; generated when omitted.
        #[arg(long, env = "HATCHERY_NEW_SECRETS_KEY", hide_env_values = true)]
        new_key: Option<String>,
    },
}

pub fn run(command: SecretsCommand) -> ExitCode {
    use crate::commands::client::{SecretsAction, run_secrets};
    let (data_dir, database_url, secrets_key, new_key) = match command {
        SecretsCommand::Set { key, value, scope } => {
            return run_secrets(&scope, SecretsAction::Set { key, value });
        }
        SecretsCommand::List { scope } => return run_secrets(&scope, SecretsAction::List),
        SecretsCommand::Delete { key, scope } => {
            return run_secrets(&scope, SecretsAction::Delete { key });
        }
        SecretsCommand::RotateKey {
            data_dir,
            database_url,
            secrets_key,
            new_key,
        } => (data_dir, database_url, secrets_key, new_key),
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            err(format_args!("error: cannot start the async runtime: {e}"));
            return ExitCode::from(exit::SERVER_ERROR);
        }
    };
    match runtime.block_on(rotate(data_dir, database_url, secrets_key, new_key)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            err(format_args!("error: {e:#}"));
            ExitCode::from(exit::USER_ERROR)
        }
    }
}

async fn rotate(
    data_dir: PathBuf,
    database_url: Option<String>,
    secrets_key: Option<String>,
    new_key: Option<String>,
) -> anyhow::Result<()> {
    use anyhow::Context as _;
    let dev_key_path = data_dir.join(DEV_KEY_FILE);
    let (old, uses_dev_file) = match secrets_key.filter(|k| !k.is_empty()) {
        Some(text) => (SecretsKey::from_base64(&text)?, false),
        None if dev_key_path.exists() => {
            let text = std::fs::read_to_string(&dev_key_path)
                .with_context(|| format!("reading {}", dev_key_path.display()))?;
            (SecretsKey::from_base64(&text)?, true)
        }
        None => anyhow::bail!(
            "no current key: set HATCHERY_SECRETS_KEY (or run where the development key file {} exists)",
            dev_key_path.display()
        ),
    };
    let (new, new_text, generated) = if let Some(text) = new_key.filter(|k| !k.is_empty()) {
        (SecretsKey::from_base64(&text)?, text, false)
    } else {
        let (key, text) = SecretsKey::generate();
        (key, text, true)
    };
    let url = database_url
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| default_sqlite_url(&data_dir));
    let store = Store::connect(&url).await?;
    // Before the new key touches the disk; the rotation checks it again under its
    // compare-and-swap on the key epoch.
    key_epoch(&store, &old)
        .await
        .context("checking the current key")?;
    // With the development key file, the new key is on disk before the database switches
    // to it, so a crash in between never leaves secrets sealed under a lost key.
    let pending = format!("{DEV_KEY_FILE}.new");
    if uses_dev_file {
        SecretsKey::write_dev_key(&data_dir, &pending, &new_text)?;
    }
    let count = rotate_key(&store, &old, &new)
        .await
        .context("rotating the secrets key")?;
    store.close().await;
    if uses_dev_file {
        std::fs::rename(data_dir.join(&pending), &dev_key_path)
            .with_context(|| format!("installing the new key in {}", dev_key_path.display()))?;
        err(format_args!(
            "re-sealed {count} secret(s); the new key is in {}",
            dev_key_path.display()
        ));
    } else {
        err(format_args!(
            "re-sealed {count} secret(s); restart the server with the new HATCHERY_SECRETS_KEY"
        ));
        if generated {
            out(new_text);
        }
    }
    Ok(())
}
