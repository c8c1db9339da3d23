//! How agents find each other: discovery of one workspace, and the peer listing (siblings,
//! children, the parent), paged by bytes.

use std::collections::HashMap;

use hatchery_core::WorkspaceStatus;
use hatchery_store::{Page, Relation, WorkspaceRow};
use serde_json::{Value, json};

use crate::app::limits::PAGE_BUDGET_BYTES;
use crate::app::{App, Cursor, Error, store_error};

impl App {
    /// `GET /registry/discover/:id` for `caller`, who reaches the control plane at `base`:
    /// the target's id, URL (the proxy's, for a sandboxed agent) and name.
    pub async fn discover(&self, caller: &str, target: &str, base: &str) -> Result<Value, Error> {
        if !self.reachable(caller, target).await? {
            let exists = self
                .store
                .workspace_get(target)
                .await
                .map_err(store_error("failed to discover"))?
                .is_some_and(|row| row.status != WorkspaceStatus::Removed);
            return Err(if exists {
                Error::Refused {
                    code: "not_reachable",
                    message: "not authorized to discover this workspace".to_owned(),
                }
            } else {
                Error::workspace_not_found(target)
            });
        }
        let row = self.workspace_live(target).await?;
        if row.url.is_empty() || !row.status.is_reachable() {
            return Err(Error::NotServing { status: row.status });
        }
        let url = crate::app::a2a::reachable_url(&row.url, &row.id, base);
        Ok(json!({"id": row.id, "url": url, "name": row.name}))
    }

    /// `GET /registry/:id/peers`: siblings (root siblings for a root) except itself, then
    /// children, then the parent; never removed ones. `query` filters by name or role.
    /// A page of about [`PAGE_BUDGET_BYTES`] (URLs, cards, names and roles, and a little
    /// for each row's other fields); `after`, a peer's id from the previous page, continues
    /// after it. 410 when `after` is no longer a peer (purged, or moved elsewhere).
    pub async fn peers(
        &self,
        id: &str,
        query: Option<&str>,
        after: Option<&str>,
    ) -> Result<Page<WorkspaceRow>, Error> {
        let me = self.workspace_live(id).await?;
        let read = store_error("failed to list peers");
        let relations = self
            .store
            .workspace_relations(id, me.parent_id.as_deref())
            .await
            .map_err(&read)?;
        let needle = query.map(str::to_lowercase).filter(|q| !q.is_empty());
        let mut peers: Vec<(PeerKey, Relation)> = relations
            .into_iter()
            .filter(|r| {
                needle.as_ref().is_none_or(|q| {
                    r.name.to_lowercase().contains(q)
                        || r.role
                            .as_deref()
                            .is_some_and(|role| role.to_lowercase().contains(q))
                })
            })
            .map(|r| {
                (
                    peer_key(&me, &r.id, r.parent_id.as_deref(), r.created_at),
                    r,
                )
            })
            .collect();
        peers.sort_by(|a, b| a.0.cmp(&b.0));
        if let Some(after) = after {
            let cursor = self.peer_cursor(&me, after, &peers).await?;
            peers.retain(|(key, _)| *key > cursor);
        }
        let mut bytes = 0;
        let page: Vec<&str> = peers
            .iter()
            .take_while(|(_, r)| {
                let fits = bytes < PAGE_BUDGET_BYTES;
                bytes += PEER_OVERHEAD_BYTES
                    + r.size
                    + i64::try_from(r.name.len() + r.role.as_ref().map_or(0, String::len))
                        .unwrap_or(i64::MAX);
                fits
            })
            .map(|(_, r)| r.id.as_str())
            .collect();
        let truncated = page.len() < peers.len();
        let mut rows: HashMap<String, WorkspaceRow> = self
            .store
            .workspace_get_many(&page)
            .await
            .map_err(read)?
            .into_iter()
            .map(|row| (row.id.clone(), row))
            .collect();
        // In the page's order; one removed (or purged) since the first read is left out.
        let rows = page
            .iter()
            .filter_map(|id| rows.remove(*id))
            .filter(|row| row.status != WorkspaceStatus::Removed)
            .collect();
        Ok(Page { rows, truncated })
    }

    /// Where a peer page after `after` starts: its place among `peers`, or, for a peer
    /// removed since (its row stays), the place it had.
    async fn peer_cursor(
        &self,
        me: &WorkspaceRow,
        after: &str,
        peers: &[(PeerKey, Relation)],
    ) -> Result<PeerKey, Error> {
        let after = crate::app::workspaces::parse_workspace_id(after).map_err(|_| {
            Error::invalid(
                "invalid cursor",
                "invalid_cursor",
                Some("after"),
                "after must be a peer's id (a UUID) from a previous page",
            )
        })?;
        if let Some((key, _)) = peers.iter().find(|(_, r)| r.id == after) {
            return Ok(key.clone());
        }
        let gone = || Error::CursorExpired(Cursor::Peer);
        let row = self
            .store
            .workspace_get(&after)
            .await
            .map_err(store_error("failed to list peers"))?
            .ok_or_else(gone)?;
        let related = row.parent_id.as_deref() == Some(me.id.as_str())
            || me.parent_id.as_deref() == Some(row.id.as_str())
            || (row.parent_id == me.parent_id && row.id != me.id);
        if !related {
            return Err(gone());
        }
        Ok(peer_key(
            me,
            &row.id,
            row.parent_id.as_deref(),
            row.created_at,
        ))
    }
}

/// What one peer costs a page beyond its URL, card, name and role (ids, status, numbers).
const PEER_OVERHEAD_BYTES: i64 = 256;

/// A peer's place in the listing: siblings (0), then children (1), then the parent (2),
/// each oldest first.
type PeerKey = (u8, i64, String);

/// The place of workspace `id` (under `parent_id`, created at `created_at`) among the
/// peers of `me`.
fn peer_key(me: &WorkspaceRow, id: &str, parent_id: Option<&str>, created_at: i64) -> PeerKey {
    let group = if parent_id == Some(me.id.as_str()) {
        1
    } else if me.parent_id.as_deref() == Some(id) {
        2
    } else {
        0
    };
    (group, created_at, id.to_owned())
}
