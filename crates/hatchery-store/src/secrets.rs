//! Sealed secrets. The store sees only ciphertext; sealing and opening happen above it.
//! Scopes are `global` or `workspace:<id>`. Every value carries the key epoch it was sealed
//! under, and is stored only while that epoch is current (see `upsert_secret`).

use sqlx::{Any, Transaction};

use crate::{Store, StoreError};

/// The scope of global secrets.
pub const GLOBAL_SCOPE: &str = "global";

/// The scope of one workspace's secrets.
#[must_use]
pub fn workspace_scope(workspace_id: &str) -> String {
    format!("workspace:{workspace_id}")
}

/// A secret's name and sealed value, with the key epoch it was sealed under (the version
/// of the key check in force when it was sealed).
#[allow(missing_docs, reason = "fields mirror the columns in migrations/")]
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct SealedSecret {
    pub scope: String,
    pub name: String,
    pub sealed: Vec<u8>,
    pub key_epoch: i64,
}

/// A secret without its value, as lists show it.
#[allow(missing_docs, reason = "fields mirror the columns in migrations/")]
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct SecretRow {
    pub name: String,
    pub created_at: i64,
    pub updated_at: i64,
}

/// The settings row holding a value sealed with the current key, so a wrong key is
/// caught at start instead of at the first read. Its version is the key epoch: every
/// rotation moves it on.
pub const KEY_CHECK_SETTING: &str = "secrets_key_check";

/// The key check in force: the value sealed with the current key, and the key epoch.
#[allow(missing_docs, reason = "fields mirror the columns in migrations/")]
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct KeyCheck {
    pub value: String,
    pub epoch: i64,
}

/// How a key rotation's transaction ended, when the database itself did not fail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RotateOutcome<E> {
    /// Committed: this many secrets are under the new key.
    Rotated(usize),
    /// Rolled back; nothing was changed.
    Refused(RotateRefusal<E>),
}

/// Why a key rotation's transaction was rolled back; nothing was changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RotateRefusal<E> {
    /// The key check is no longer at the epoch the rotation started from: another
    /// rotation committed first.
    EpochMoved,
    /// A secret was changed or deleted while the rotation re-sealed it.
    SecretChanged {
        /// Its scope.
        scope: String,
        /// Its name.
        name: String,
    },
    /// The re-sealing itself failed.
    Reseal(E),
}

/// Insert or replace a secret, inside `tx`, only if the key epoch it was sealed under is
/// still the current one; [`StoreError::SecretsKeyRotated`] otherwise.
pub(crate) async fn upsert_secret(
    tx: &mut Transaction<'_, Any>,
    secret: &SealedSecret,
    now: i64,
) -> Result<(), StoreError> {
    // A write, not a read: it takes the key check's row lock (Postgres) or the database's
    // write lock (SQLite), which a rotation holds from its first statement to its commit.
    // So either this transaction commits first and the rotation reads (and re-seals) this
    // value, or it waits for the rotation and then finds the epoch moved on.
    let current =
        sqlx::query("UPDATE settings SET version = version WHERE name = $1 AND version = $2")
            .bind(KEY_CHECK_SETTING)
            .bind(secret.key_epoch)
            .execute(&mut **tx)
            .await?
            .rows_affected();
    if current == 0 {
        return Err(StoreError::SecretsKeyRotated);
    }
    sqlx::query(
        "INSERT INTO secrets (scope, name, sealed, key_epoch, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $5) ON CONFLICT (scope, name) \
         DO UPDATE SET sealed = excluded.sealed, key_epoch = excluded.key_epoch, \
         updated_at = excluded.updated_at",
    )
    .bind(&secret.scope)
    .bind(&secret.name)
    .bind(&secret.sealed)
    .bind(secret.key_epoch)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

impl Store {
    /// The workspaces a change of secret `name` in `scope` reaches, as its restart goes:
    /// launched by this control plane (they have had a provision job), not removed,
    /// paused or external; for a global secret, only those with no override of their own.
    pub async fn workspaces_seeing_secret(
        &self,
        scope: &str,
        name: &str,
    ) -> Result<Vec<String>, StoreError> {
        let running = format!(
            "w.status NOT IN ({}) AND w.external = 0 \
             AND EXISTS (SELECT 1 FROM provision_jobs j WHERE j.workspace_id = w.id)",
            crate::status_list(|status| matches!(
                status,
                hatchery_core::WorkspaceStatus::Removed | hatchery_core::WorkspaceStatus::Paused
            ))
        );
        let Some(workspace) = scope.strip_prefix("workspace:") else {
            let sql = format!(
                "SELECT w.id FROM workspaces w WHERE {running} AND NOT EXISTS \
                 (SELECT 1 FROM secrets s WHERE s.scope = 'workspace:' || w.id AND s.name = $1) \
                 ORDER BY w.created_at, w.id"
            );
            return Ok(sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                .bind(name)
                .fetch_all(&self.reader)
                .await?);
        };
        let sql = format!("SELECT w.id FROM workspaces w WHERE w.id = $1 AND {running}");
        Ok(sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .bind(workspace)
            .fetch_all(&self.reader)
            .await?)
    }
}

impl Store {
    /// Set (insert or replace) one secret; [`StoreError::SecretsKeyRotated`] when its key
    /// epoch is no longer the current one.
    pub async fn secret_put(&self, secret: &SealedSecret) -> Result<(), StoreError> {
        let mut tx = self.writer.begin().await?;
        upsert_secret(&mut tx, secret, self.now()).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Delete one secret; `false` when there was none.
    pub async fn secret_delete(&self, scope: &str, name: &str) -> Result<bool, StoreError> {
        let deleted = sqlx::query("DELETE FROM secrets WHERE scope = $1 AND name = $2")
            .bind(scope)
            .bind(name)
            .execute(&self.writer)
            .await?
            .rows_affected();
        Ok(deleted > 0)
    }

    /// The names and times of a scope's secrets, by name.
    pub async fn secret_list(&self, scope: &str) -> Result<Vec<SecretRow>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT name, created_at, updated_at FROM secrets WHERE scope = $1 ORDER BY name",
        )
        .bind(scope)
        .fetch_all(&self.reader)
        .await?)
    }

    /// The sealed values of a scope, by name.
    pub async fn secret_sealed(&self, scope: &str) -> Result<Vec<SealedSecret>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT scope, name, sealed, key_epoch FROM secrets WHERE scope = $1 ORDER BY name",
        )
        .bind(scope)
        .fetch_all(&self.reader)
        .await?)
    }

    /// Every sealed value.
    pub async fn secret_all(&self) -> Result<Vec<SealedSecret>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT scope, name, sealed, key_epoch FROM secrets ORDER BY scope, name",
        )
        .fetch_all(&self.reader)
        .await?)
    }

    /// How many secrets are stored.
    pub async fn secret_count(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM secrets")
            .fetch_one(&self.reader)
            .await?)
    }

    /// The key check in force, if one was recorded.
    pub async fn secret_key_check(&self) -> Result<Option<KeyCheck>, StoreError> {
        Ok(
            sqlx::query_as("SELECT value, version AS epoch FROM settings WHERE name = $1")
                .bind(KEY_CHECK_SETTING)
                .fetch_optional(&self.reader)
                .await?,
        )
    }

    /// Record `value` as the key check unless one is recorded, and return the one in
    /// force: two servers starting on an empty database agree on one.
    pub async fn secret_key_check_init(&self, value: &str) -> Result<KeyCheck, StoreError> {
        sqlx::query(
            "INSERT INTO settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
        )
        .bind(KEY_CHECK_SETTING)
        .bind(value)
        .execute(&self.writer)
        .await?;
        Ok(
            sqlx::query_as("SELECT value, version AS epoch FROM settings WHERE name = $1")
                .bind(KEY_CHECK_SETTING)
                .fetch_one(&self.writer)
                .await?,
        )
    }

    /// Key rotation, in one transaction: move the key check from epoch `from` to
    /// `key_check` (a compare-and-swap on the epoch), read every secret, re-seal them
    /// all with `reseal` (one new sealed value per secret, in order) and store each under
    /// the new epoch, only if it is unchanged since it was read. Either every value is
    /// under the new key, or nothing changed. Returns how many were re-sealed.
    #[tracing::instrument(skip_all, fields(from = from))]
    pub async fn secret_rotate<E>(
        &self,
        from: i64,
        key_check: &str,
        reseal: impl FnOnce(&[SealedSecret]) -> Result<Vec<Vec<u8>>, E>,
    ) -> Result<RotateOutcome<E>, StoreError> {
        let to = from + 1;
        let mut tx = self.writer.begin().await?;
        // The first statement, and a write: the key check's row lock (Postgres) or the
        // database's write lock (SQLite) is held from here to the commit, so every secret
        // write (see `upsert_secret`) either committed before the read below, or waits
        // and is then refused for its stale epoch.
        let moved = sqlx::query(
            "UPDATE settings SET value = $2, version = version + 1 \
             WHERE name = $1 AND version = $3",
        )
        .bind(KEY_CHECK_SETTING)
        .bind(key_check)
        .bind(from)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if moved == 0 {
            return Ok(RotateOutcome::Refused(RotateRefusal::EpochMoved));
        }
        let all: Vec<SealedSecret> = sqlx::query_as(
            "SELECT scope, name, sealed, key_epoch FROM secrets ORDER BY scope, name",
        )
        .fetch_all(&mut *tx)
        .await?;
        let resealed = match reseal(&all) {
            Ok(resealed) => resealed,
            Err(e) => return Ok(RotateOutcome::Refused(RotateRefusal::Reseal(e))),
        };
        for (secret, sealed) in all.iter().zip(&resealed) {
            // Compare-and-swap on what was read: a delete that slipped in (deletes do not
            // take the key check's lock) fails the rotation rather than resurrect a value.
            let updated = sqlx::query(
                "UPDATE secrets SET sealed = $3, key_epoch = $4 \
                 WHERE scope = $1 AND name = $2 AND sealed = $5 AND key_epoch = $6",
            )
            .bind(&secret.scope)
            .bind(&secret.name)
            .bind(sealed)
            .bind(to)
            .bind(&secret.sealed)
            .bind(secret.key_epoch)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if updated == 0 {
                return Ok(RotateOutcome::Refused(changed(secret)));
            }
        }
        // Nothing may stay under an earlier epoch (a short `resealed`, or a row written
        // by something that bypassed the lock): such a row would be lost to the old key.
        let left: Option<SealedSecret> = sqlx::query_as(
            "SELECT scope, name, sealed, key_epoch FROM secrets WHERE key_epoch <> $1 LIMIT 1",
        )
        .bind(to)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(secret) = left {
            return Ok(RotateOutcome::Refused(changed(&secret)));
        }
        tx.commit().await?;
        Ok(RotateOutcome::Rotated(all.len()))
    }
}

fn changed<E>(secret: &SealedSecret) -> RotateRefusal<E> {
    RotateRefusal::SecretChanged {
        scope: secret.scope.clone(),
        name: secret.name.clone(),
    }
}
