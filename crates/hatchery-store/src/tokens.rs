//! Workspace tokens, stored as SHA-256 hashes only. A `workspace` token is an agent's
//! bearer for its own workspace; a `bootstrap` token is single-purpose (the first register)
//! and expires.

use sqlx::{Any, Transaction};

use crate::{Store, StoreError};

/// What a token is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// The agent's bearer for every workspace route of its own workspace.
    Workspace,
    /// Good for one first registration, until it expires.
    Bootstrap,
}

impl TokenKind {
    /// The stored spelling.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Workspace => "workspace",
            Self::Bootstrap => "bootstrap",
        }
    }

    fn parse(text: &str) -> Result<Self, StoreError> {
        match text {
            "workspace" => Ok(Self::Workspace),
            "bootstrap" => Ok(Self::Bootstrap),
            other => Err(StoreError::Corrupt {
                table: "workspace_tokens",
                detail: format!("unknown kind {other:?}"),
            }),
        }
    }
}

/// A token to store: the caller generated it and keeps the plaintext.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewToken {
    /// Its id (a UUID), for listing and revoking.
    pub id: String,
    /// The workspace it authenticates.
    pub workspace_id: String,
    /// What it is for.
    pub kind: TokenKind,
    /// SHA-256 of the plaintext, hex.
    pub hash: String,
    /// The first characters of the plaintext, to tell tokens apart.
    pub prefix: String,
    /// When it stops working (Unix microseconds), if ever.
    pub expires_at: Option<i64>,
}

/// A live token found by its hash, with what the gates need of its workspace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenMatch {
    /// The token's id.
    pub token_id: String,
    /// The workspace it authenticates.
    pub workspace_id: String,
    /// What it is for.
    pub kind: TokenKind,
}

/// A token as listed (never its hash).
#[allow(missing_docs, reason = "fields mirror the columns in migrations/")]
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct TokenRow {
    pub id: String,
    pub prefix: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
}

/// Live: not revoked, not expired at `now`, and its workspace not removed.
static LIVE: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "t.revoked_at IS NULL AND (t.expires_at IS NULL OR t.expires_at > $2) \
         AND w.status <> {}",
        crate::quoted(hatchery_core::WorkspaceStatus::Removed)
    )
});

pub(crate) async fn insert_token(
    tx: &mut Transaction<'_, Any>,
    token: &NewToken,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO workspace_tokens (id, workspace_id, kind, hash, prefix, created_at, \
         expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&token.id)
    .bind(&token.workspace_id)
    .bind(token.kind.as_str())
    .bind(&token.hash)
    .bind(&token.prefix)
    .bind(now)
    .bind(token.expires_at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub(crate) async fn revoke_all(
    tx: &mut Transaction<'_, Any>,
    workspace_id: &str,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE workspace_tokens SET revoked_at = $2 \
         WHERE workspace_id = $1 AND revoked_at IS NULL",
    )
    .bind(workspace_id)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Revoke a workspace's live tokens of `kind`, inside a transaction.
pub(crate) async fn revoke_kind(
    tx: &mut Transaction<'_, Any>,
    workspace_id: &str,
    kind: TokenKind,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE workspace_tokens SET revoked_at = $3 \
         WHERE workspace_id = $1 AND kind = $2 AND revoked_at IS NULL",
    )
    .bind(workspace_id)
    .bind(kind.as_str())
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// How many live tokens of `kind` the workspace holds, inside a transaction.
pub(crate) async fn live_count(
    tx: &mut Transaction<'_, Any>,
    workspace_id: &str,
    kind: TokenKind,
    now: i64,
) -> Result<i64, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT COUNT(*) FROM workspace_tokens WHERE workspace_id = $1 AND kind = $3 \
         AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > $2)",
    )
    .bind(workspace_id)
    .bind(now)
    .bind(kind.as_str())
    .fetch_one(&mut **tx)
    .await?)
}

impl Store {
    /// Store a token, unless the workspace already holds `limit` live ones of its kind;
    /// `false` then. The workspace must exist and not be removed.
    pub async fn token_insert(&self, token: &NewToken, limit: i64) -> Result<bool, StoreError> {
        let now = self.now();
        let mut tx = self.writer.begin().await?;
        if live_count(&mut tx, &token.workspace_id, token.kind, now).await? >= limit {
            return Ok(false);
        }
        insert_token(&mut tx, token, now).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// The live token with this hash, if any.
    pub async fn token_find(&self, hash: &str) -> Result<Option<TokenMatch>, StoreError> {
        let sql = format!(
            "SELECT t.id, t.workspace_id, t.kind FROM workspace_tokens t \
             JOIN workspaces w ON w.id = t.workspace_id WHERE t.hash = $1 AND {live}",
            live = &*LIVE,
        );
        let row: Option<(String, String, String)> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(hash)
            .bind(self.now())
            .fetch_optional(&self.reader)
            .await?;
        row.map(|(token_id, workspace_id, kind)| {
            Ok(TokenMatch {
                token_id,
                workspace_id,
                kind: TokenKind::parse(&kind)?,
            })
        })
        .transpose()
    }

    /// Whether the workspace holds any live token of `kind`.
    pub async fn token_any_live(
        &self,
        workspace_id: &str,
        kind: TokenKind,
    ) -> Result<bool, StoreError> {
        let found: Option<i64> = sqlx::query_scalar(
            "SELECT 1 FROM workspace_tokens WHERE workspace_id = $1 AND kind = $3 \
             AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > $2) LIMIT 1",
        )
        .bind(workspace_id)
        .bind(self.now())
        .bind(kind.as_str())
        .fetch_optional(&self.reader)
        .await?;
        Ok(found.is_some())
    }

    /// The live workspace tokens of a workspace, newest first, and how many there are.
    pub async fn token_list(
        &self,
        workspace_id: &str,
        limit: i64,
        offset: i64,
    ) -> Result<(Vec<TokenRow>, i64), StoreError> {
        let now = self.now();
        let rows = sqlx::query_as(
            "SELECT id, prefix, created_at, last_used_at FROM workspace_tokens \
             WHERE workspace_id = $1 AND kind = 'workspace' AND revoked_at IS NULL \
             AND (expires_at IS NULL OR expires_at > $2) \
             ORDER BY created_at DESC, id LIMIT $3 OFFSET $4",
        )
        .bind(workspace_id)
        .bind(now)
        .bind(limit)
        .bind(offset)
        .fetch_all(&self.reader)
        .await?;
        let mut tx = self.reader.begin().await?;
        let count = live_count(&mut tx, workspace_id, TokenKind::Workspace, now).await?;
        tx.commit().await?;
        Ok((rows, count))
    }

    /// Revoke one live token of a workspace; `false` when there is none by that id.
    pub async fn token_revoke(
        &self,
        workspace_id: &str,
        token_id: &str,
    ) -> Result<bool, StoreError> {
        let revoked = sqlx::query(
            "UPDATE workspace_tokens SET revoked_at = $3 \
             WHERE id = $1 AND workspace_id = $2 AND revoked_at IS NULL",
        )
        .bind(token_id)
        .bind(workspace_id)
        .bind(self.now())
        .execute(&self.writer)
        .await?
        .rows_affected();
        Ok(revoked == 1)
    }

    /// Revoke every live token of `kind` a workspace holds (a new bootstrap token
    /// replaces the old ones).
    pub async fn token_revoke_kind(
        &self,
        workspace_id: &str,
        kind: TokenKind,
    ) -> Result<(), StoreError> {
        let mut tx = self.writer.begin().await?;
        revoke_kind(&mut tx, workspace_id, kind, self.now()).await?;
        tx.commit().await?;
        Ok(())
    }
}
