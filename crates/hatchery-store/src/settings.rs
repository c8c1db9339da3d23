//! Server settings kept in the database (the secrets key's check value, …).

use crate::{Store, StoreError};

impl Store {
    /// A setting's value.
    pub async fn setting_get(&self, name: &str) -> Result<Option<String>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT value FROM settings WHERE name = $1")
                .bind(name)
                .fetch_optional(&self.reader)
                .await?,
        )
    }

    /// A setting's value, set to `value` first if it has none: the first writer wins, and
    /// every caller gets the same answer.
    pub async fn setting_get_or_insert(
        &self,
        name: &str,
        value: &str,
    ) -> Result<String, StoreError> {
        sqlx::query(
            "INSERT INTO settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(value)
        .execute(&self.writer)
        .await?;
        Ok(
            sqlx::query_scalar("SELECT value FROM settings WHERE name = $1")
                .bind(name)
                .fetch_one(&self.writer)
                .await?,
        )
    }
}
