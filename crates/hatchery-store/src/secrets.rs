//! Sealed secrets. The store sees only ciphertext; sealing and opening happen above it.
//! Scopes are `global` or `workspace:<id>`.

use sqlx::{Any, Transaction};

use crate::{Store, StoreError};

/// The scope of global secrets.
pub const GLOBAL_SCOPE: &str = "global";

/// The scope of one workspace's secrets.
#[must_use]
pub fn workspace_scope(workspace_id: &str) -> String {
    format!("workspace:{workspace_id}")
}

/// A secret's name and sealed value.
#[allow(missing_docs, reason = "fields mirror the columns in migrations/")]
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct SealedSecret {
    pub scope: String,
    pub name: String,
    pub sealed: Vec<u8>,
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
/// caught at start instead of at the first read.
pub const KEY_CHECK_SETTING: &str = "secrets_key_check";

pub(crate) async fn upsert_secret(
    tx: &mut Transaction<'_, Any>,
    secret: &SealedSecret,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO secrets (scope, name, sealed, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $4) ON CONFLICT (scope, name) \
         DO UPDATE SET sealed = excluded.sealed, updated_at = excluded.updated_at",
    )
    .bind(&secret.scope)
    .bind(&secret.name)
    .bind(&secret.sealed)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

impl Store {
    /// Set (insert or replace) one secret.
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
        Ok(
            sqlx::query_as(
                "SELECT scope, name, sealed FROM secrets WHERE scope = $1 ORDER BY name",
            )
            .bind(scope)
            .fetch_all(&self.reader)
            .await?,
        )
    }

    /// Every sealed value, for key rotation.
    pub async fn secret_all(&self) -> Result<Vec<SealedSecret>, StoreError> {
        Ok(
            sqlx::query_as("SELECT scope, name, sealed FROM secrets ORDER BY scope, name")
                .fetch_all(&self.reader)
                .await?,
        )
    }

    /// How many secrets are stored.
    pub async fn secret_count(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM secrets")
            .fetch_one(&self.reader)
            .await?)
    }

    /// Replace every sealed value and the key check in one transaction (key rotation):
    /// either all values are under the new key, or none is.
    pub async fn secret_reseal_all(
        &self,
        resealed: &[SealedSecret],
        key_check: &str,
    ) -> Result<(), StoreError> {
        let mut tx = self.writer.begin().await?;
        for secret in resealed {
            sqlx::query("UPDATE secrets SET sealed = $3 WHERE scope = $1 AND name = $2")
                .bind(&secret.scope)
                .bind(&secret.name)
                .bind(&secret.sealed)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query(
            "INSERT INTO settings (name, value) VALUES ($1, $2) \
             ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        )
        .bind(KEY_CHECK_SETTING)
        .bind(key_check)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }
}
