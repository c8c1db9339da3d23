//! Secrets: global and per workspace, sealed with the server's key before they reach the
//! store, listed by name only. Also the start-up key check and key rotation.

use std::collections::BTreeMap;

use hatchery_core::is_valid_env_name;
use hatchery_store::{
    GLOBAL_SCOPE, KEY_CHECK_SETTING, SealedSecret, Store, StoreError, workspace_scope,
};

use super::{App, store_error};
use crate::error::ApiError;
use crate::secrets::{KeyError, Scope, SecretsKey};

/// What the key check seals; any key opens only its own check value.
const KEY_CHECK_PLAINTEXT: &[u8] = b"hatchery secrets key check v1";
const KEY_CHECK_NAME: &str = "__key_check__";

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

/// Check `key` against the database (recording a check value on first use); with no key,
/// refuse when secrets are stored.
pub async fn check_key(store: &Store, key: Option<&SecretsKey>) -> Result<(), SecretsSetupError> {
    let Some(key) = key else {
        let stored = store.secret_count().await?;
        return if stored > 0 {
            Err(SecretsSetupError::KeyMissing(stored))
        } else {
            Ok(())
        };
    };
    match store.setting_get(KEY_CHECK_SETTING).await? {
        Some(check) if opens_check(key, &check) => Ok(()),
        Some(_) => Err(SecretsSetupError::WrongKey),
        None => {
            // A database whose secrets predate the check: the key must open one of them.
            if let Some(secret) = store.secret_all().await?.first()
                && open(key, secret).is_err()
            {
                return Err(SecretsSetupError::WrongKey);
            }
            store
                .setting_put(KEY_CHECK_SETTING, &seal_check(key))
                .await?;
            Ok(())
        }
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

/// Re-seal every secret (and the key check) under `new`, in one transaction. Returns how
/// many secrets were re-sealed. Nothing changes if any value fails to open under `old`.
pub async fn rotate_key(
    store: &Store,
    old: &SecretsKey,
    new: &SecretsKey,
) -> Result<usize, RotateError> {
    let all = store.secret_all().await?;
    let mut resealed = Vec::with_capacity(all.len());
    let mut failed = Vec::new();
    for secret in &all {
        match open(old, secret) {
            Ok(plain) => resealed.push(SealedSecret {
                sealed: new
                    .encrypt(scope_of(&secret.scope), &secret.name, &plain)
                    .map_err(|_| RotateError::TooLarge(secret.name.clone()))?,
                ..secret.clone()
            }),
            Err(()) => failed.push(format!("{}/{}", secret.scope, secret.name)),
        }
    }
    if !failed.is_empty() {
        return Err(RotateError::Undecryptable(failed));
    }
    store.secret_reseal_all(&resealed, &seal_check(new)).await?;
    Ok(resealed.len())
}

/// Why a key rotation was refused; nothing was changed.
#[derive(Debug, thiserror::Error)]
pub enum RotateError {
    /// Values the current key does not open.
    #[error("the current key does not open {}: nothing was changed", .0.join(", "))]
    Undecryptable(Vec<String>),
    /// A value too large to seal.
    #[error("secret {0} is too large to seal")]
    TooLarge(String),
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

/// Seal `value` for `scope` (the store's scope string) and `name`.
pub(crate) fn seal(
    key: &SecretsKey,
    scope: String,
    name: &str,
    value: &str,
) -> Result<SealedSecret, ApiError> {
    let sealed = key
        .encrypt(scope_of(&scope), name, value.as_bytes())
        .map_err(|e| ApiError::internal("failed to save secret", e))?;
    Ok(SealedSecret {
        scope,
        name: name.to_owned(),
        sealed,
    })
}

/// Check a secret's name and value as every write path must.
pub(crate) fn check_secret(name: &str, value: &str) -> Result<(), ApiError> {
    if name.is_empty() || value.is_empty() {
        return Err(ApiError::bad_request(
            "invalid request body",
            "invalid_secret",
            Some(if name.is_empty() { "key" } else { "value" }),
            "key and value must both be non-empty",
        ));
    }
    if !is_valid_env_name(name) {
        return Err(ApiError::bad_request(
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

impl App {
    /// Set a global secret.
    pub async fn secret_set_global(&self, name: &str, value: &str) -> Result<(), ApiError> {
        check_secret(name, value)?;
        let sealed = seal(self.key()?, GLOBAL_SCOPE.to_owned(), name, value)?;
        self.store
            .secret_put(&sealed)
            .await
            .map_err(store_error("failed to save secret"))
    }

    /// Set one workspace's secret; the workspace must exist and not be removed.
    pub async fn secret_set_workspace(
        &self,
        workspace_id: &str,
        name: &str,
        value: &str,
    ) -> Result<(), ApiError> {
        check_secret(name, value)?;
        self.workspace_live(workspace_id).await?;
        let sealed = seal(self.key()?, workspace_scope(workspace_id), name, value)?;
        self.store
            .secret_put(&sealed)
            .await
            .map_err(store_error("failed to save secret"))
    }

    /// Delete a secret of `scope`; 404 when there is none.
    pub async fn secret_delete(&self, scope: &str, name: &str) -> Result<(), ApiError> {
        let deleted = self
            .store
            .secret_delete(scope, name)
            .await
            .map_err(store_error("failed to delete secret"))?;
        if deleted {
            Ok(())
        } else {
            Err(ApiError::NotFound {
                message: "secret not found",
                code: "secret_not_found",
            })
        }
    }

    /// Global secrets by name.
    pub async fn secret_list_global(&self) -> Result<Vec<SecretSummary>, ApiError> {
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
    ) -> Result<Vec<SecretSummary>, ApiError> {
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
    ) -> Result<BTreeMap<String, String>, ApiError> {
        self.workspace_exists(workspace_id).await?;
        self.secret_values_of(workspace_id).await
    }

    /// [`App::secret_values`] of a workspace known to exist.
    pub(crate) async fn secret_values_of(
        &self,
        workspace_id: &str,
    ) -> Result<BTreeMap<String, String>, ApiError> {
        let key = self.key()?;
        let mut values = BTreeMap::new();
        let mut failed = Vec::new();
        for scope in [GLOBAL_SCOPE.to_owned(), workspace_scope(workspace_id)] {
            let sealed = self
                .store
                .secret_sealed(&scope)
                .await
                .map_err(store_error("failed to read secrets"))?;
            for secret in sealed {
                match open(key, &secret).map(String::from_utf8) {
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
            Err(ApiError::SecretsUndecryptable {
                failed_keys: failed,
            })
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
