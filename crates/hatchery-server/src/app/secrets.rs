//! Secrets: global and per workspace, sealed with the server's key before they reach the
//! store, listed by name only. Also the start-up key check and key rotation.
//!
//! The key check's version is the key epoch. A server learns it at start; every value it
//! seals carries it, and the store writes a value only while its epoch is current. So
//! once a rotation commits, a server still holding the old key is refused (503,
//! `secrets_key_rotated`) instead of sealing or serving with a key nobody can use.

use std::collections::BTreeMap;

use hatchery_core::is_valid_env_name;
use hatchery_store::{
    GLOBAL_SCOPE, RotateOutcome, RotateRefusal, SealedSecret, Store, StoreError, workspace_scope,
};

use super::{App, Error, Resource, Service, store_error};
use crate::secrets::{KeyError, Scope, SecretsKey};

/// What the key check seals; any key opens only its own check value.
const KEY_CHECK_PLAINTEXT: &[u8] = b"hatchery secrets key check v1";
const KEY_CHECK_NAME: &str = "__key_check__";

/// The server's secrets key, checked against the database at the key epoch it found
/// there.
#[derive(Debug)]
pub struct ServerKey {
    key: SecretsKey,
    epoch: i64,
}

/// Why the secrets key could not be set up; each refuses the start.
#[derive(Debug, thiserror::Error)]
pub enum SecretsSetupError {
    /// The configured key is malformed, or the dev key file is unreadable.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The key does not open the secrets already stored.
    #[error(
        "HATCHERY_SECRETS_KEY does not open the secrets stored in this database (wrong key?); start with the key they were sealed with"
    )]
    WrongKey,
    /// Secrets are stored and no key is configured.
    #[error(
        "this database holds {0} encrypted secret(s) and no HATCHERY_SECRETS_KEY is set; start with the key they were sealed with"
    )]
    KeyMissing(i64),
    /// The database could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Check `key` against the database (recording a check value on first use) and learn the
/// key epoch; with no key, refuse when secrets are stored.
pub async fn check_key(
    store: &Store,
    key: Option<SecretsKey>,
) -> Result<Option<ServerKey>, SecretsSetupError> {
    let Some(key) = key else {
        let stored = store.secret_count().await?;
        return if stored > 0 {
            Err(SecretsSetupError::KeyMissing(stored))
        } else {
            Ok(None)
        };
    };
    let epoch = key_epoch(store, &key).await?;
    Ok(Some(ServerKey { key, epoch }))
}

/// The key epoch, when `key` opens the key check in force (recorded on first use).
pub async fn key_epoch(store: &Store, key: &SecretsKey) -> Result<i64, SecretsSetupError> {
    let check = if let Some(check) = store.secret_key_check().await? {
        check
    } else {
        // A database whose secrets predate the check: the key must open one of them.
        if let Some(secret) = store.secret_all().await?.first()
            && open(key, secret).is_err()
        {
            return Err(SecretsSetupError::WrongKey);
        }
        store.secret_key_check_init(&seal_check(key)).await?
    };
    if opens_check(key, &check.value) {
        Ok(check.epoch)
    } else {
        Err(SecretsSetupError::WrongKey)
    }
}

fn seal_check(key: &SecretsKey) -> String {
    use base64::Engine as _;
    // Sealing a 29-byte constant cannot exceed GCM's limit.
    let sealed = key
        .encrypt(Scope::Global, KEY_CHECK_NAME, KEY_CHECK_PLAINTEXT)
        .unwrap_or_default();
    base64::engine::general_purpose::STANDARD.encode(sealed)
}

fn opens_check(key: &SecretsKey, check: &str) -> bool {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(check)
        .ok()
        .and_then(|sealed| key.decrypt(Scope::Global, KEY_CHECK_NAME, &sealed).ok())
        .is_some_and(|plain| plain == KEY_CHECK_PLAINTEXT)
}

/// Re-seal every secret (and the key check) under `new`, in one transaction that reads
/// the values, re-seals them and writes each back only if unchanged, moving the key epoch
/// on. Returns how many secrets were re-sealed. Nothing changes if any value fails to
/// open under `old`, or anything changed under the rotation. A server still running with
/// `old` is refused from the commit on; a write of its that raced the rotation was either
/// committed before it (and is re-sealed) or is refused.
#[tracing::instrument(skip_all)]
pub async fn rotate_key(
    store: &Store,
    old: &SecretsKey,
    new: &SecretsKey,
) -> Result<usize, RotateError> {
    let from = key_epoch(store, old).await?;
    let outcome = store
        .secret_rotate(from, &seal_check(new), |all| reseal_all(old, new, all))
        .await?;
    match outcome {
        RotateOutcome::Rotated(count) => Ok(count),
        RotateOutcome::Refused(RotateRefusal::Reseal(e)) => Err(e),
        RotateOutcome::Refused(RotateRefusal::EpochMoved) => Err(RotateError::Concurrent),
        RotateOutcome::Refused(RotateRefusal::SecretChanged { scope, name }) => {
            Err(RotateError::Changed(format!("{scope}/{name}")))
        }
    }
}

/// Every value of `all` opened with `old` and sealed with `new`, in order.
fn reseal_all(
    old: &SecretsKey,
    new: &SecretsKey,
    all: &[SealedSecret],
) -> Result<Vec<Vec<u8>>, RotateError> {
    let mut resealed = Vec::with_capacity(all.len());
    let mut failed = Vec::new();
    for secret in all {
        match open(old, secret) {
            Ok(plain) => resealed.push(
                new.encrypt(scope_of(&secret.scope), &secret.name, &plain)
                    .map_err(|_| RotateError::TooLarge(secret.name.clone()))?,
            ),
            Err(()) => failed.push(format!("{}/{}", secret.scope, secret.name)),
        }
    }
    if failed.is_empty() {
        Ok(resealed)
    } else {
        Err(RotateError::Undecryptable(failed))
    }
}

/// Why a key rotation was refused; nothing was changed.
#[derive(Debug, thiserror::Error)]
pub enum RotateError {
    /// The current key is wrong, or the database could not be read.
    #[error(transparent)]
    Setup(#[from] SecretsSetupError),
    /// Values the current key does not open.
    #[error("the current key does not open {}: nothing was changed", .0.join(", "))]
    Undecryptable(Vec<String>),
    /// A value too large to seal.
    #[error("secret {0} is too large to seal")]
    TooLarge(String),
    /// Another rotation committed first.
    #[error(
        "the key was rotated by someone else while this rotation ran: nothing was changed; check which key is current"
    )]
    Concurrent,
    /// A secret was changed or deleted under the rotation.
    #[error("secret {0} changed while the rotation ran: nothing was changed; run it again")]
    Changed(String),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn scope_of(scope: &str) -> Scope<'_> {
    scope
        .strip_prefix("workspace:")
        .map_or(Scope::Global, Scope::Workspace)
}

fn open(key: &SecretsKey, secret: &SealedSecret) -> Result<Vec<u8>, ()> {
    key.decrypt(scope_of(&secret.scope), &secret.name, &secret.sealed)
        .map_err(|_| ())
}

/// Seal `value` for `scope` (the store's scope string) and `name`, at the key's epoch: the
/// store refuses it once a rotation has moved the epoch on.
pub(crate) fn seal(
    key: &ServerKey,
    scope: String,
    name: &str,
    value: &str,
) -> Result<SealedSecret, Error> {
    let sealed = key
        .key
        .encrypt(scope_of(&scope), name, value.as_bytes())
        .map_err(|e| Error::internal("failed to save secret", e))?;
    Ok(SealedSecret {
        scope,
        name: name.to_owned(),
        sealed,
        key_epoch: key.epoch,
    })
}

/// Check a secret's name and value as every write path must.
pub(crate) fn check_secret(name: &str, value: &str) -> Result<(), Error> {
    if name.is_empty() || value.is_empty() {
        return Err(Error::invalid(
            "invalid request body",
            "invalid_secret",
            Some(if name.is_empty() { "key" } else { "value" }),
            "key and value must both be non-empty",
        ));
    }
    if !is_valid_env_name(name) {
        return Err(Error::invalid(
            "invalid request body",
            "invalid_secret_name",
            Some("key"),
            format!("secret name `{name}` must match ^[A-Z][A-Z0-9_]{{0,127}}$"),
        ));
    }
    Ok(())
}

/// One secret in a list: never its value.
#[derive(Debug, Clone)]
pub struct SecretSummary {
    /// The name.
    pub key: String,
    /// `workspace` or `global`.
    pub scope: &'static str,
    /// Unix microseconds.
    pub created_at: i64,
    /// Unix microseconds.
    pub updated_at: i64,
}

/// A secret change restarts up to this many workspaces before it answers; more go on
/// after the answer.
const INLINE_RESTARTS: usize = 100;

impl App {
    /// Set a global secret; the workspaces that see it restart to pick it up.
    pub async fn secret_set_global(&self, name: &str, value: &str) -> Result<(), Error> {
        check_secret(name, value)?;
        let sealed = seal(self.sealing_key()?, GLOBAL_SCOPE.to_owned(), name, value)?;
        self.store
            .secret_put(&sealed)
            .await
            .map_err(store_error("failed to save secret"))?;
        self.restart_for_secret(GLOBAL_SCOPE, name).await;
        Ok(())
    }

    /// Restart what a secret change reaches, as Molecule does: an agent reads its secrets
    /// when it starts. The change itself stands whatever becomes of a restart (one under a
    /// paused ancestor is skipped, say): it is logged.
    async fn restart_for_secret(&self, scope: &str, name: &str) {
        let reached = match self.store.workspaces_seeing_secret(scope, name).await {
            Ok(reached) => reached,
            Err(error) => {
                tracing::warn!(%error, scope, secret = name, "cannot tell which workspaces a secret change reaches; they keep the old value until they restart");
                return;
            }
        };
        // A change may reach a whole fleet: past a hundred workspaces the restarts go on
        // after the answer, so the request neither waits for them nor is cut off halfway
        // by its deadline; a small fleet's are done before it answers.
        let reached_count = reached.len();
        let app = self.clone();
        let secret = name.to_owned();
        let restarts = async move {
            for id in reached {
                if let Err(error) = app.restart(&id).await {
                    tracing::info!(workspace_id = %id, %error, secret, "not restarted after a secret change");
                }
            }
        };
        if reached_count > INLINE_RESTARTS {
            tokio::spawn(restarts);
        } else {
            restarts.await;
        }
    }

    /// Set one workspace's secret; the workspace must exist and not be removed.
    pub async fn secret_set_workspace(
        &self,
        workspace_id: &str,
        name: &str,
        value: &str,
    ) -> Result<(), Error> {
        check_secret(name, value)?;
        self.workspace_live(workspace_id).await?;
        let scope = workspace_scope(workspace_id);
        let sealed = seal(self.sealing_key()?, scope.clone(), name, value)?;
        self.store
            .secret_put(&sealed)
            .await
            .map_err(store_error("failed to save secret"))?;
        self.restart_for_secret(&scope, name).await;
        Ok(())
    }

    /// Delete a secret of `scope`, restarting the workspaces it reached; 404 when there is
    /// none.
    pub async fn secret_delete(&self, scope: &str, name: &str) -> Result<(), Error> {
        let deleted = self
            .store
            .secret_delete(scope, name)
            .await
            .map_err(store_error("failed to delete secret"))?;
        if deleted {
            self.restart_for_secret(scope, name).await;
            Ok(())
        } else {
            Err(Error::NotFound {
                kind: Resource::Secret,
                id: format!("{scope}/{name}"),
            })
        }
    }

    /// Global secrets by name.
    pub async fn secret_list_global(&self) -> Result<Vec<SecretSummary>, Error> {
        let rows = self
            .store
            .secret_list(GLOBAL_SCOPE)
            .await
            .map_err(store_error("failed to list secrets"))?;
        Ok(rows.into_iter().map(|r| summary(r, "global")).collect())
    }

    /// A workspace's secrets (sorted), then the globals it does not override.
    pub async fn secret_list_workspace(
        &self,
        workspace_id: &str,
    ) -> Result<Vec<SecretSummary>, Error> {
        self.workspace_exists(workspace_id).await?;
        let own = self
            .store
            .secret_list(&workspace_scope(workspace_id))
            .await
            .map_err(store_error("failed to list secrets"))?;
        let mut out: Vec<SecretSummary> =
            own.into_iter().map(|r| summary(r, "workspace")).collect();
        for global in self.secret_list_global().await? {
            if !out.iter().any(|s| s.key == global.key) {
                out.push(global);
            }
        }
        Ok(out)
    }

    /// The values a workspace sees: globals overridden by its own. Refuses a partial
    /// bundle when any value fails to decrypt.
    pub async fn secret_values(
        &self,
        workspace_id: &str,
    ) -> Result<BTreeMap<String, String>, Error> {
        self.workspace_exists(workspace_id).await?;
        self.secret_values_of(workspace_id).await
    }

    /// [`App::secret_values`] of a workspace known to exist.
    pub(crate) async fn secret_values_of(
        &self,
        workspace_id: &str,
    ) -> Result<BTreeMap<String, String>, Error> {
        let key = self.sealing_key()?;
        let mut values = BTreeMap::new();
        let mut failed = Vec::new();
        for scope in [GLOBAL_SCOPE.to_owned(), workspace_scope(workspace_id)] {
            let sealed = self
                .store
                .secret_sealed(&scope)
                .await
                .map_err(store_error("failed to read secrets"))?;
            for secret in sealed {
                // A value of another epoch: the key was rotated under this server.
                if secret.key_epoch != key.epoch {
                    return Err(Error::Unavailable(Service::SecretsKeyRotated));
                }
                match open(&key.key, &secret).map(String::from_utf8) {
                    Ok(Ok(value)) => {
                        values.insert(secret.name, value);
                    }
                    _ => failed.push(secret.name),
                }
            }
        }
        if failed.is_empty() {
            Ok(values)
        } else {
            Err(Error::SecretsUndecryptable { names: failed })
        }
    }
}

fn summary(row: hatchery_store::SecretRow, scope: &'static str) -> SecretSummary {
    SecretSummary {
        key: row.name,
        scope,
        created_at: row.created_at,
        updated_at: row.updated_at,
    }
}
