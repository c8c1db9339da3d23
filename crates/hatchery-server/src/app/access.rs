//! Who may do what: credentials, the gates of the platform API (WS, BOOT, CALLER), workspace
//! tokens, and reachability in the org tree. Deny is the default: a workspace token
//! authenticates its own workspace only and is never an admin credential.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hatchery_core::WorkspaceStatus;
use hatchery_store::{JobLease, NewToken, TokenKind, TokenMatch, TokenRow};

use super::{App, Error, Resource, TokenFault, store_error};
use crate::auth::{hash_hex, random_token};

/// At most this many live workspace tokens per workspace.
pub const MAX_LIVE_TOKENS: i64 = 50;
/// How far up the parent chain reachability looks.
const REACH_DEPTH: usize = 32;

/// How long a live workspace token is trusted without asking the database again. A
/// revocation on this replica takes effect at once (it clears the cache); on another
/// replica, within this time.
const TOKEN_CACHE_TTL: Duration = Duration::from_secs(5);
/// How often a long-lived stream asks whether the workspace token it was opened with is
/// still live. Cheap (the cache answers most checks); a revocation on this replica ends the
/// stream within this time, on another within this plus the cache's window.
const STREAM_RECHECK: Duration = Duration::from_secs(1);
/// Beyond this many entries the cache starts over rather than grow.
const TOKEN_CACHE_MAX: usize = 100_000;

/// Workspace tokens recently found live, by hash: heartbeats, the hot path, skip the
/// database lookup. Bootstrap tokens (expiring, single-use) are never cached.
#[derive(Debug, Default)]
pub struct TokenCache {
    entries: Mutex<HashMap<String, (TokenMatch, Instant)>>,
    /// Bumped by every clear: a lookup that started before a clear must not re-cache what
    /// the clear removed.
    generation: std::sync::atomic::AtomicU64,
}

impl TokenCache {
    fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::Acquire)
    }

    fn get(&self, hash: &str) -> Option<TokenMatch> {
        let entries = self.lock();
        let (token, at) = entries.get(hash)?;
        (at.elapsed() < TOKEN_CACHE_TTL).then(|| token.clone())
    }

    fn put(&self, hash: String, token: &TokenMatch, generation: u64) {
        if token.kind != TokenKind::Workspace {
            return;
        }
        let mut entries = self.lock();
        if self.generation() != generation {
            return;
        }
        if entries.len() >= TOKEN_CACHE_MAX {
            entries.clear();
        }
        entries.insert(hash, (token.clone(), Instant::now()));
    }

    /// Forget everything: after a revocation or a delete.
    pub fn clear(&self) {
        let mut entries = self.lock();
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        entries.clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (TokenMatch, Instant)>> {
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// What a request's bearer turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// No bearer.
    Missing,
    /// The admin token (never in dev mode: there is none).
    Admin,
    /// A live token of one workspace.
    Token(TokenMatch),
    /// A bearer that is none of the above (unknown, revoked, expired).
    Invalid,
}

/// Who registered: decides whether a token is issued and which bootstrap is consumed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegisterAuth {
    /// Admin, the workspace's own token, or dev mode's first registration: a token only
    /// if the workspace holds none.
    Ordinary,
    /// A freshly provisioned agent with its bootstrap token: always gets a token of its
    /// own (the process that held the old ones is gone), and the bootstrap is consumed.
    Bootstrap {
        /// The bootstrap token's id.
        token_id: String,
    },
}

/// A token to hand out once, and what is stored of it.
pub(crate) struct MintedToken {
    pub plaintext: String,
    pub stored: NewToken,
}

/// A fresh token of `kind` for `workspace_id`.
pub(crate) fn mint(workspace_id: &str, kind: TokenKind, expires_at: Option<i64>) -> MintedToken {
    let plaintext = random_token();
    let stored = NewToken {
        id: uuid::Uuid::new_v4().hyphenated().to_string(),
        workspace_id: workspace_id.to_owned(),
        kind,
        hash: hash_hex(&plaintext),
        prefix: plaintext.chars().take(8).collect(),
        expires_at,
    };
    MintedToken { plaintext, stored }
}

/// What a start's bootstrap token came to.
#[derive(Debug)]
pub(crate) enum JobBootstrap {
    /// Issued, for the agent about to start.
    Issued(String),
    /// None: the job is no longer this replica's to run (superseded, or taken over).
    NotHeld(JobLease),
}

impl App {
    /// Resolve a bearer: `is_admin` says the HTTP layer matched the admin token.
    pub async fn credential(
        &self,
        bearer: Option<&str>,
        is_admin: bool,
    ) -> Result<Credential, Error> {
        let Some(bearer) = bearer else {
            return Ok(Credential::Missing);
        };
        if is_admin {
            return Ok(Credential::Admin);
        }
        let hash = hash_hex(bearer);
        if let Some(token) = self.tokens.get(&hash) {
            return Ok(Credential::Token(token));
        }
        let generation = self.tokens.generation();
        let found = self
            .store
            .token_find(&hash)
            .await
            .map_err(Error::database)?;
        if let Some(token) = &found {
            self.tokens.put(hash, token, generation);
        }
        Ok(found.map_or(Credential::Invalid, Credential::Token))
    }

    /// Resolves once `bearer` is no longer the live workspace token `token_id` (revoked,
    /// expired, its workspace restarted, paused or removed), or its liveness cannot be
    /// checked: a stream opened with it must not outlive it.
    pub async fn until_revoked(&self, bearer: &str, token_id: &str) {
        loop {
            tokio::time::sleep(STREAM_RECHECK).await;
            match self.credential(Some(bearer), false).await {
                Ok(Credential::Token(token)) if token.token_id == token_id => {}
                _ => return,
            }
        }
    }

    /// The WS gate: the admin, or a workspace token of `id`. In dev mode no bearer passes,
    /// but a bearer that is present must be valid for `id`.
    pub fn gate_workspace(&self, credential: &Credential, id: &str) -> Result<(), Error> {
        match credential {
            Credential::Admin => Ok(()),
            Credential::Token(token)
                if token.kind == TokenKind::Workspace && token.workspace_id == id =>
            {
                Ok(())
            }
            Credential::Missing if self.dev => Ok(()),
            Credential::Missing => Err(Error::Unauthenticated(TokenFault::Missing)),
            Credential::Token(_) | Credential::Invalid => {
                Err(Error::Unauthenticated(TokenFault::Invalid))
            }
        }
    }

    /// Whether a caller that passed a gate is the operator: the admin token, or in dev
    /// mode a request with no bearer. A workspace token never is.
    #[must_use]
    pub fn is_operator(&self, credential: &Credential) -> bool {
        match credential {
            Credential::Admin => true,
            Credential::Missing => self.dev,
            Credential::Token(_) | Credential::Invalid => false,
        }
    }

    /// The BOOT gate for agent calls about `id` (heartbeat, update-card, peers): as WS, but
    /// in dev mode a workspace that holds no token yet may call without one.
    pub async fn gate_boot(&self, credential: &Credential, id: &str) -> Result<(), Error> {
        if self.dev && *credential == Credential::Missing && self.holds_tokens(id).await? {
            return Err(Error::Unauthenticated(TokenFault::Missing));
        }
        self.gate_workspace(credential, id)
    }

    /// The register gate: admin, the workspace's own token, its bootstrap token, or (dev
    /// mode only) nothing at all while the workspace holds no token.
    pub async fn gate_register(
        &self,
        credential: &Credential,
        id: &str,
    ) -> Result<RegisterAuth, Error> {
        match credential {
            Credential::Token(token)
                if token.kind == TokenKind::Bootstrap && token.workspace_id == id =>
            {
                Ok(RegisterAuth::Bootstrap {
                    token_id: token.token_id.clone(),
                })
            }
            _ => {
                self.gate_boot(credential, id).await?;
                Ok(RegisterAuth::Ordinary)
            }
        }
    }

    async fn holds_tokens(&self, id: &str) -> Result<bool, Error> {
        self.store
            .token_any_live(id, TokenKind::Workspace)
            .await
            .map_err(Error::database)
    }

    /// Mint a workspace token (test-token, `POST /tokens`); 429 past the limit.
    pub async fn token_issue(&self, id: &str) -> Result<String, Error> {
        self.workspace_live(id).await?;
        let token = mint(id, TokenKind::Workspace, None);
        self.token_store(&token.stored).await?;
        Ok(token.plaintext)
    }

    /// Mint the single-purpose bootstrap token a provisioned agent registers with. It
    /// expires with the workspace's provisioning deadline.
    pub async fn bootstrap_issue(&self, id: &str) -> Result<(String, i64), Error> {
        let row = self.workspace_live(id).await?;
        // One bootstrap token at a time: a new one replaces those not yet spent.
        self.store
            .token_revoke_kind(id, TokenKind::Bootstrap)
            .await
            .map_err(store_error("failed to issue token"))?;
        let token = self.bootstrap_token(&row);
        self.token_store(&token.stored).await?;
        let expires_at = token.stored.expires_at.unwrap_or_default();
        Ok((token.plaintext, expires_at))
    }

    /// Store a minted token; 429 when its workspace already holds [`MAX_LIVE_TOKENS`].
    async fn token_store(&self, token: &NewToken) -> Result<(), Error> {
        let stored = self
            .store
            .token_insert(token, MAX_LIVE_TOKENS)
            .await
            .map_err(store_error("failed to issue token"))?;
        if stored {
            Ok(())
        } else {
            Err(Error::TooManyTokens)
        }
    }

    /// [`App::bootstrap_issue`] for the start of provision job `job`: stored only while
    /// `owner` still holds the job, so a superseded (or taken over) start gets no
    /// credential, and learns which.
    pub(crate) async fn bootstrap_issue_for_job(
        &self,
        row: &hatchery_store::WorkspaceRow,
        job: &str,
        owner: &str,
    ) -> Result<JobBootstrap, Error> {
        let token = self.bootstrap_token(row);
        let replica = self.provisioner.as_ref().and_then(|p| p.agent_owner());
        let lease = self
            .store
            .job_bootstrap(job, owner, &token.stored, replica)
            .await
            .map_err(store_error("failed to issue token"))?;
        Ok(match lease {
            JobLease::Held => JobBootstrap::Issued(token.plaintext),
            other => JobBootstrap::NotHeld(other),
        })
    }

    /// A fresh bootstrap token of `row`'s workspace, expiring with its provisioning
    /// deadline.
    fn bootstrap_token(&self, row: &hatchery_store::WorkspaceRow) -> MintedToken {
        let ttl = self.supervision.provision_timeout_of(&row.runtime);
        let expires_at = self
            .store
            .now()
            .saturating_add(crate::supervision::micros(ttl));
        mint(&row.id, TokenKind::Bootstrap, Some(expires_at))
    }

    /// The live tokens of a workspace (never their values), and how many there are.
    pub async fn token_list(
        &self,
        id: &str,
        limit: i64,
        offset: i64,
    ) -> Result<(Vec<TokenRow>, i64), Error> {
        self.workspace_exists(id).await?;
        self.store
            .token_list(id, limit, offset)
            .await
            .map_err(store_error("failed to list tokens"))
    }

    /// Revoke one token of a workspace.
    pub async fn token_revoke(&self, id: &str, token_id: &str) -> Result<(), Error> {
        let revoked = self
            .store
            .token_revoke(id, token_id)
            .await
            .map_err(store_error("failed to revoke token"))?;
        self.tokens.clear();
        if revoked {
            Ok(())
        } else {
            Err(Error::NotFound {
                kind: Resource::Token,
                id: token_id.to_owned(),
            })
        }
    }

    /// Whether `caller` may see and call `target`: the same workspace, siblings (or two
    /// roots), or one an ancestor of the other. Unknown or removed on either side: no.
    pub async fn reachable(&self, caller: &str, target: &str) -> Result<bool, Error> {
        let read = store_error("failed to check access");
        let (Some(c), Some(t)) = (
            self.store.workspace_get(caller).await.map_err(&read)?,
            self.store.workspace_get(target).await.map_err(&read)?,
        ) else {
            return Ok(false);
        };
        if c.status == WorkspaceStatus::Removed || t.status == WorkspaceStatus::Removed {
            return Ok(false);
        }
        if c.id == t.id || c.parent_id == t.parent_id {
            return Ok(true);
        }
        let caller_chain = self
            .store
            .workspace_ancestors(caller, REACH_DEPTH)
            .await
            .map_err(&read)?;
        if caller_chain.iter().any(|a| a == target) {
            return Ok(true);
        }
        let target_chain = self
            .store
            .workspace_ancestors(target, REACH_DEPTH)
            .await
            .map_err(&read)?;
        Ok(target_chain.iter().any(|a| a == caller))
    }
}
