//! Agents talking back: register, heartbeat, update-card, discovery and peers, and the
//! sweeps that decide from silence (liveness expiry, the provisioning deadline).
//!
//! Heartbeats are the hot path. A beat that changes a status is written at once, with its
//! event; a beat that changes none only replaces the workspace's entry in an in-memory
//! buffer, and the buffer is written in one transaction every flush interval. So thousands
//! of agents beating at once cost one write per agent per interval, not one per beat.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

use hatchery_core::{Decision, EventKind, Health, Move, Transition, WorkspaceStatus};
use hatchery_store::{
    AgentSnapshot, LiveState, Page, Registered, Registration, Relation, WorkspaceRow,
};
use serde::Deserialize;
use serde_json::{Value, json};

use super::access::{RegisterAuth, mint};
use super::limits::{MAX_AGENT_CARD_BYTES, MAX_AGENT_URL_BYTES, PAGE_BUDGET_BYTES, check_size};
use super::{App, Cursor, Error, TokenFault, store_error};
use crate::event_hub::StreamEvent;
use crate::supervision::micros;

/// The longest `current_task` / `sample_error` kept, in bytes.
pub const MAX_REPORTED_TEXT: usize = 4096;
/// The largest `monthly_spend` accepted, in cents.
const MAX_MONTHLY_SPEND: i64 = 1_000_000_000_000;
/// `POST /registry/register` refuses with this message whatever is wrong with the body.
pub(crate) const INVALID_BODY: &str = "invalid request body";

/// `POST /registry/register`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct Register {
    /// The workspace.
    #[schema(required, value_type = String, format = Uuid)]
    pub id: Option<String>,
    /// Where the agent serves A2A: `http` or `https`; private, loopback and documentation
    /// addresses are refused (`localhost` is allowed by name).
    #[schema(required, value_type = String)]
    pub url: Option<String>,
    /// Any JSON; stored and returned as given.
    #[schema(required, value_type = Object)]
    pub agent_card: Option<Value>,
}

/// `POST /registry/heartbeat`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct Heartbeat {
    /// The workspace.
    #[schema(required, value_type = String, format = Uuid)]
    pub workspace_id: Option<String>,
    /// 0–1.
    #[schema(minimum = 0.0, maximum = 1.0)]
    pub error_rate: Option<f64>,
    /// An example error.
    #[schema(max_length = 4096)]
    pub sample_error: Option<String>,
    /// Tasks in flight.
    #[schema(minimum = 0)]
    pub active_tasks: Option<i64>,
    /// Seconds since the agent started.
    #[schema(minimum = 0)]
    pub uptime_seconds: Option<i64>,
    /// What it works on; `""` when idle.
    #[schema(max_length = 4096)]
    pub current_task: Option<String>,
    /// Cents spent this month; 0 leaves the stored figure unchanged; clamped to 0–10¹².
    pub monthly_spend: Option<i64>,
    /// `""` or `wedged`.
    #[schema(pattern = "^(wedged)?$")]
    pub runtime_state: Option<String>,
    /// `{capabilities: {name: bool}, idle_timeout_seconds}`.
    pub runtime_metadata: Option<RuntimeMetadata>,
}

/// What an agent declares about itself in a heartbeat.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct RuntimeMetadata {
    /// Named capabilities; `status_mgmt` means the agent manages its own status.
    #[serde(default)]
    pub capabilities: HashMap<String, bool>,
    /// Unused by the control plane yet; accepted.
    pub idle_timeout_seconds: Option<i64>,
}

/// `POST /registry/update-card`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct UpdateCard {
    /// The workspace.
    #[schema(required, value_type = String, format = Uuid)]
    pub workspace_id: Option<String>,
    /// The new card.
    #[schema(required, value_type = Object)]
    pub agent_card: Option<Value>,
}

/// A token's `last_used_at` is written at most this often (bookkeeping, not security).
const TOKEN_TOUCH_EVERY: i64 = 60 * 1_000_000;

/// Heartbeats that changed no status, waiting to be written.
#[derive(Debug, Default)]
pub struct HeartbeatBuffer {
    pending: Mutex<HashMap<String, AgentSnapshot>>,
    /// When each token's use was last written.
    touched: Mutex<HashMap<String, i64>>,
}

impl HeartbeatBuffer {
    fn put(&self, id: &str, mut snapshot: AgentSnapshot) {
        if let Some(token_id) = snapshot.token_id.take() {
            let mut touched = self
                .touched
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let due = touched
                .get(&token_id)
                .is_none_or(|at| snapshot.seen_at - at >= TOKEN_TOUCH_EVERY);
            if due {
                if touched.len() >= 100_000 {
                    touched.clear();
                }
                touched.insert(token_id.clone(), snapshot.seen_at);
                snapshot.token_id = Some(token_id);
            }
        }
        let mut pending = self.lock();
        // A beat whose token use is not yet written keeps that use for the flush.
        let carried = pending.get(id).and_then(|old| old.token_id.clone());
        if snapshot.token_id.is_none() {
            snapshot.token_id = carried;
        }
        pending.insert(id.to_owned(), snapshot);
    }

    pub(crate) fn forget(&self, id: &str) {
        self.lock().remove(id);
    }

    fn current_task(&self, id: &str) -> Option<String> {
        self.lock().get(id).map(|s| s.current_task.clone())
    }

    /// How many heartbeats wait for the next flush.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether none wait.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    fn take(&self) -> Vec<(String, AgentSnapshot)> {
        self.lock().drain().collect()
    }

    /// Put back what a failed flush took, unless a newer beat arrived meanwhile.
    fn restore(&self, snapshots: Vec<(String, AgentSnapshot)>) {
        let mut pending = self.lock();
        for (id, snapshot) in snapshots {
            pending.entry(id).or_insert(snapshot);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, AgentSnapshot>> {
        // A panic while holding this lock cannot leave the map half-updated.
        self.pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn invalid_body(detail: impl Into<String>) -> Error {
    Error::invalid(INVALID_BODY, "invalid_request_body", None, detail)
}

pub(crate) fn invalid_field(field: &'static str, detail: impl Into<String>) -> Error {
    Error::invalid(INVALID_BODY, "invalid_request_body", Some(field), detail)
}

/// A workspace id from a body: present and a UUID.
pub(crate) fn body_id(id: Option<&str>, field: &'static str) -> Result<String, Error> {
    let id = id
        .filter(|id| !id.is_empty())
        .ok_or_else(|| invalid_field(field, format!("{field} is required")))?;
    super::workspaces::parse_workspace_id(id)
        .map_err(|_| invalid_field(field, format!("{field} must be a workspace UUID")))
}

/// The id a register or heartbeat body names (for the gate, before the rest is checked).
pub fn register_id(body: &Register) -> Result<String, Error> {
    body_id(body.id.as_deref(), "id")
}

/// See [`register_id`].
pub fn heartbeat_id(body: &Heartbeat) -> Result<String, Error> {
    body_id(body.workspace_id.as_deref(), "workspace_id")
}

/// See [`register_id`].
pub fn update_card_id(body: &UpdateCard) -> Result<String, Error> {
    body_id(body.workspace_id.as_deref(), "workspace_id")
}

/// The register URL rules: http(s) only, and no IP literal in a reserved, link-local,
/// documentation or private range (see [`refused_ip`]; an IPv6 address that embeds an
/// IPv4 one is judged by that). `localhost` is allowed by name; other names are checked by
/// the addresses they resolve to.
pub async fn check_agent_url(url: &str) -> Result<(), String> {
    let parsed = url::Url::parse(url).map_err(|e| format!("url: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err("url: only http and https are allowed".to_owned());
    }
    let host = parsed.host().ok_or("url: a host is required")?;
    let addresses: Vec<IpAddr> = match host {
        url::Host::Ipv4(ip) => vec![IpAddr::V4(ip)],
        url::Host::Ipv6(ip) => vec![IpAddr::V6(ip)],
        url::Host::Domain(name) if name.eq_ignore_ascii_case("localhost") => return Ok(()),
        url::Host::Domain(name) => {
            let port = parsed.port_or_known_default().unwrap_or(80);
            let resolved = tokio::net::lookup_host((name, port))
                .await
                .map_err(|e| format!("url: {name} does not resolve: {e}"))?;
            resolved.map(|a| a.ip()).collect()
        }
    };
    if addresses.is_empty() {
        return Err("url: the host resolves to no address".to_owned());
    }
    for ip in addresses {
        if refused_ip(ip) {
            let behind = match ip {
                IpAddr::V6(v6) => match embedded_ipv4(v6) {
                    Embedded::V4(v4) => format!(" (it leads to {v4})"),
                    Embedded::Unknown => {
                        " (it leads to an IPv4 address it does not say)".to_owned()
                    }
                    Embedded::None => String::new(),
                },
                IpAddr::V4(_) => String::new(),
            };
            return Err(format!(
                "url: address {ip}{behind} is not allowed for an agent"
            ));
        }
    }
    Ok(())
}

/// Whether an agent may not be at `ip`: loopback, link-local, private, shared (CGNAT),
/// documentation, multicast, `0.0.0.0/8` and the reserved `240.0.0.0/4`; for IPv6 the same
/// kinds, and an address that embeds an IPv4 one is judged by the IPv4 address it leads
/// to (see [`embedded_ipv4`]).
fn refused_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(ip) => {
            let [a, b, c, _] = ip.octets();
            ip.is_loopback()
                || ip.is_link_local()
                || ip.is_private()
                || ip.is_unspecified()
                || ip.is_multicast()
                || ip.is_broadcast()
                || a == 0
                || (a, b, c) == (192, 0, 2)
                || (a, b, c) == (198, 51, 100)
                || (a, b, c) == (203, 0, 113)
                || (a == 100 && (64..128).contains(&b))
                || a >= 240
        }
        IpAddr::V6(ip) => match embedded_ipv4(ip) {
            Embedded::V4(v4) => refused_ip(IpAddr::V4(v4)),
            Embedded::Unknown => true,
            Embedded::None => {
                let [first, second, ..] = ip.segments();
                ip.is_loopback()
                    || ip.is_unspecified()
                    || ip.is_multicast()
                    || (first & 0xffc0) == 0xfe80
                    // Site-local (deprecated, still routed inside some networks).
                    || (first & 0xffc0) == 0xfec0
                    || (first & 0xfe00) == 0xfc00
                    || (first == 0x2001 && second == 0x0db8)
                    // The newer documentation prefix, 3fff::/20.
                    || (first == 0x3fff && (second & 0xf000) == 0)
            }
        },
    }
}

/// What an IPv6 address says about an IPv4 address behind it.
#[derive(Debug, PartialEq, Eq)]
enum Embedded {
    /// An ordinary IPv6 address.
    None,
    /// It leads to this IPv4 address.
    V4(std::net::Ipv4Addr),
    /// It leads to an IPv4 address that cannot be told from the address alone.
    Unknown,
}

/// The IPv4 address an IPv6 address leads to, by its prefix: IPv4-mapped (`::ffff:0:0/96`),
/// IPv4-translated (`::ffff:0:0:0/96`), IPv4-compatible (`::/96`, deprecated but still the
/// IPv4 host where a stack tunnels it; `::` and `::1` fall here too and are refused as
/// `0.0.0.0/8`), NAT64 (`64:ff9b::/96`, RFC 6052), 6to4 (`2002::/16`, the address in bits
/// 16..48) and Teredo (`2001::/32`, the client's address inverted in the last 32 bits).
/// The rest of `64:ff9b::/32` (the local-use `64:ff9b:1::/48` of RFC 8215 among it) puts
/// the IPv4 address where its operator's prefix length says, which the address does not.
fn embedded_ipv4(ip: std::net::Ipv6Addr) -> Embedded {
    use std::net::Ipv4Addr;
    let o = ip.octets();
    let last = Ipv4Addr::new(o[12], o[13], o[14], o[15]);
    match ip.segments() {
        [0, 0, 0, 0, 0, 0xffff | 0, _, _]
        | [0, 0, 0, 0, 0xffff, 0, _, _]
        | [0x64, 0xff9b, 0, 0, 0, 0, _, _] => Embedded::V4(last),
        [0x64, 0xff9b, ..] => Embedded::Unknown,
        [0x2002, ..] => Embedded::V4(Ipv4Addr::new(o[2], o[3], o[4], o[5])),
        [0x2001, 0, ..] => Embedded::V4(!last),
        _ => Embedded::None,
    }
}

/// Check a heartbeat's numbers and texts; the snapshot to store.
fn snapshot_of(
    body: &Heartbeat,
    seen_at: i64,
    token_id: Option<String>,
) -> Result<AgentSnapshot, Error> {
    let error_rate = body.error_rate.unwrap_or(0.0);
    if !(0.0..=1.0).contains(&error_rate) {
        return Err(invalid_field(
            "error_rate",
            "error_rate must be between 0 and 1",
        ));
    }
    let active_tasks = body.active_tasks.unwrap_or(0);
    if active_tasks < 0 {
        return Err(invalid_field(
            "active_tasks",
            "active_tasks must not be negative",
        ));
    }
    let uptime_seconds = body.uptime_seconds.unwrap_or(0);
    if uptime_seconds < 0 {
        return Err(invalid_field(
            "uptime_seconds",
            "uptime_seconds must not be negative",
        ));
    }
    let current_task = body.current_task.clone().unwrap_or_default();
    if current_task.len() > MAX_REPORTED_TEXT {
        return Err(invalid_field(
            "current_task",
            format!("current_task must be at most {MAX_REPORTED_TEXT} bytes"),
        ));
    }
    let sample_error = body.sample_error.clone().unwrap_or_default();
    if sample_error.len() > MAX_REPORTED_TEXT {
        return Err(invalid_field(
            "sample_error",
            format!("sample_error must be at most {MAX_REPORTED_TEXT} bytes"),
        ));
    }
    let runtime_state = body.runtime_state.clone().unwrap_or_default();
    if !matches!(runtime_state.as_str(), "" | "wedged") {
        return Err(invalid_field(
            "runtime_state",
            "runtime_state must be \"\" or \"wedged\"",
        ));
    }
    let monthly_spend = body
        .monthly_spend
        .filter(|spend| *spend != 0)
        .map(|spend| spend.clamp(0, MAX_MONTHLY_SPEND));
    let status_mgmt = body
        .runtime_metadata
        .as_ref()
        .map(|m| m.capabilities.get("status_mgmt").copied().unwrap_or(false));
    Ok(AgentSnapshot {
        error_rate,
        sample_error,
        active_tasks,
        uptime_seconds,
        current_task,
        monthly_spend,
        runtime_state,
        status_mgmt,
        seen_at,
        token_id,
    })
}

/// The status change a heartbeat makes, with its event payload; `None` for none.
fn heartbeat_transition(state: &LiveState, beat: &AgentSnapshot) -> Option<(Transition, Value)> {
    let health = Health {
        error_rate: beat.error_rate,
        wedged: beat.runtime_state == "wedged",
        has_runtime_state: !beat.runtime_state.is_empty(),
        manages_itself: beat.status_mgmt.unwrap_or(state.status_mgmt != 0),
    };
    let Decision::Change(transition) = hatchery_core::decide(state.status, Move::Heartbeat(health))
    else {
        return None;
    };
    let payload = match (transition.from, transition.to) {
        (WorkspaceStatus::Provisioning, _) => {
            json!({"recovered_from": WorkspaceStatus::Provisioning})
        }
        (_, WorkspaceStatus::Degraded) if health.wedged => {
            json!({"runtime_state": beat.runtime_state, "sample_error": beat.sample_error})
        }
        (_, WorkspaceStatus::Degraded) => json!({
            "error_rate": crate::wire::go_number(beat.error_rate),
            "sample_error": beat.sample_error,
        }),
        _ => json!({}),
    };
    Some((transition, payload))
}

impl App {
    /// Register an agent. Returns the workspace token when one was issued.
    pub async fn register(
        &self,
        id: &str,
        auth: RegisterAuth,
        body: Register,
    ) -> Result<Option<String>, Error> {
        let url = body
            .url
            .filter(|u| !u.is_empty())
            .ok_or_else(|| invalid_field("url", "url is required"))?;
        let card = body
            .agent_card
            .filter(|c| !c.is_null())
            .ok_or_else(|| invalid_field("agent_card", "agent_card is required"))?;
        check_size("url", url.len(), MAX_AGENT_URL_BYTES)?;
        let card_text = card.to_string();
        check_size("agent_card", card_text.len(), MAX_AGENT_CARD_BYTES)?;
        check_agent_url(&url).await.map_err(invalid_body)?;
        let token = mint(id, hatchery_store::TokenKind::Workspace, None);
        let bootstrap_token_id = match &auth {
            RegisterAuth::Bootstrap { token_id } => Some(token_id.as_str()),
            RegisterAuth::Ordinary => None,
        };
        let registered = self
            .store
            .register(&Registration {
                id,
                url: &url,
                agent_card: &card_text,
                new_token: &token.stored,
                always_issue: bootstrap_token_id.is_some(),
                bootstrap_token_id,
            })
            .await
            .map_err(store_error("failed to register"))?;
        match registered {
            Registered::Online {
                token_issued,
                provisioned_in,
            } => {
                if let Some(micros) = provisioned_in {
                    self.metrics.provisioned(micros);
                }
                self.heartbeats.forget(id);
                self.hub.poke();
                tracing::info!(workspace_id = id, url, "agent registered");
                Ok(token_issued.then_some(token.plaintext))
            }
            Registered::NotFound => Err(Error::workspace_not_found(id)),
            Registered::Removed => Err(Error::Removed { id: id.to_owned() }),
            Registered::Refused(status) => Err(Error::Conflict {
                code: "workspace_not_registrable",
                message: format!("workspace is {status}: resume it before it registers"),
            }),
            Registered::BootstrapSpent => Err(Error::Unauthenticated(TokenFault::Invalid)),
        }
    }

    /// Apply a heartbeat.
    pub async fn heartbeat(
        &self,
        id: &str,
        token_id: Option<String>,
        body: &Heartbeat,
    ) -> Result<(), Error> {
        let seen_at = self.store.now();
        let beat = snapshot_of(body, seen_at, token_id)?;
        self.metrics.heartbeat();
        let state = self
            .store
            .live_state(id)
            .await
            .map_err(store_error("failed to record heartbeat"))?
            .ok_or_else(|| Error::workspace_not_found(id))?;
        if state.status == WorkspaceStatus::Removed {
            return Err(Error::Removed { id: id.to_owned() });
        }
        let previous_task = self
            .heartbeats
            .current_task(id)
            .unwrap_or_else(|| state.current_task.clone());
        let task_changed = previous_task != beat.current_task;
        let (current_task, active_tasks, uptime) = (
            beat.current_task.clone(),
            beat.active_tasks,
            beat.uptime_seconds,
        );
        match heartbeat_transition(&state, &beat) {
            Some((transition, payload)) => {
                self.heartbeats.forget(id);
                let changed = self
                    .store
                    .heartbeat_transition(id, transition, &beat, payload.to_string())
                    .await
                    .map_err(store_error("failed to record heartbeat"))?;
                if changed {
                    self.hub.poke();
                } else {
                    // The status moved on meanwhile (another replica, a sweep): keep the
                    // numbers; the next beat decides again.
                    self.heartbeats.put(id, beat);
                }
            }
            None => self.heartbeats.put(id, beat),
        }
        let now = seen_at;
        if task_changed {
            self.hub.broadcast(|| {
                StreamEvent::new(
                    None,
                    EventKind::TaskUpdated.as_str(),
                    Some(id),
                    &json!({"current_task": current_task, "active_tasks": active_tasks}),
                    now,
                )
            });
        }
        self.hub.broadcast(|| {
            StreamEvent::new(
                None,
                EventKind::WorkspaceHeartbeat.as_str(),
                Some(id),
                &json!({"active_tasks": active_tasks, "uptime_seconds": uptime}),
                now,
            )
        });
        Ok(())
    }

    /// Write the buffered heartbeats. A failure keeps them for the next flush.
    pub async fn flush_heartbeats(&self) {
        if let Err(error) = self.try_flush_heartbeats().await {
            tracing::warn!(%error, "cannot write heartbeats; will retry");
        }
    }

    /// [`App::flush_heartbeats`], saying why it failed rather than logging it (the flush
    /// loop logs an outage once, not every flush).
    pub async fn try_flush_heartbeats(&self) -> Result<(), hatchery_store::StoreError> {
        let snapshots = self.heartbeats.take();
        if snapshots.is_empty() {
            return Ok(());
        }
        let flushed = self.store.heartbeat_flush(&snapshots).await;
        if flushed.is_err() {
            self.heartbeats.restore(snapshots);
        }
        flushed
    }

    /// Store a new agent card.
    pub async fn update_card(&self, id: &str, body: UpdateCard) -> Result<(), Error> {
        let card = body
            .agent_card
            .filter(|c| !c.is_null())
            .ok_or_else(|| invalid_field("agent_card", "agent_card is required"))?;
        let card_text = card.to_string();
        check_size("agent_card", card_text.len(), MAX_AGENT_CARD_BYTES)?;
        match self
            .store
            .update_card(id, &card_text)
            .await
            .map_err(store_error("failed to update card"))?
        {
            None => Err(Error::workspace_not_found(id)),
            Some(false) => Err(Error::Removed { id: id.to_owned() }),
            Some(true) => {
                self.hub.poke();
                Ok(())
            }
        }
    }

    /// `GET /registry/discover/:id` for `caller`: the target's id, URL and name.
    pub async fn discover(&self, caller: &str, target: &str) -> Result<Value, Error> {
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
        Ok(json!({"id": row.id, "url": row.url, "name": row.name}))
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
        let after = super::workspaces::parse_workspace_id(after).map_err(|_| {
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
    /// Mark `offline` what has been silent past the TTL.
    pub async fn sweep_liveness(&self) -> Result<usize, Error> {
        // Our own buffered beats first: they are the freshest word on liveness.
        self.flush_heartbeats().await;
        let now = self.store.now();
        let cutoff = now.saturating_sub(micros(self.supervision.heartbeat_ttl));
        let external_cutoff = now.saturating_sub(micros(self.supervision.external_heartbeat_ttl));
        let expired = self
            .store
            .expire_silent(cutoff, external_cutoff)
            .await
            .map_err(store_error("liveness sweep failed"))?;
        for id in &expired {
            tracing::warn!(workspace_id = %id, ttl = ?self.supervision.heartbeat_ttl, "no heartbeat within the TTL: offline");
        }
        if !expired.is_empty() {
            self.metrics.expired(expired.len());
            self.hub.poke();
        }
        Ok(expired.len())
    }

    /// Fail what has been `provisioning` past its runtime's deadline, saying what was last
    /// seen so a person can act on it.
    pub async fn sweep_provisioning(&self) -> Result<usize, Error> {
        let now = self.store.now();
        let waiting = self
            .store
            .provisioning()
            .await
            .map_err(store_error("provisioning sweep failed"))?;
        let mut failed = Vec::new();
        for workspace in waiting {
            let timeout = self.supervision.provision_timeout_of(&workspace.runtime);
            if now.saturating_sub(workspace.provisioning_since) <= micros(timeout) {
                continue;
            }
            let reason = provisioning_failure(&workspace, timeout);
            let changed = self
                .store
                .fail_provisioning(&workspace.id, workspace.provisioning_since, &reason)
                .await
                .map_err(store_error("provisioning sweep failed"))?;
            if changed {
                tracing::warn!(workspace_id = %workspace.id, %reason, "provisioning deadline passed: failed");
                failed.push(workspace.id);
            }
        }
        if !failed.is_empty() {
            self.metrics.provisioning_failed(failed.len());
            self.hub.poke();
            // An agent that never registered in time must not linger (nor its credentials).
            self.stop_agents(&failed).await;
        }
        Ok(failed.len())
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

/// What a person reads when a workspace never came up.
fn provisioning_failure(
    workspace: &hatchery_store::Provisioning,
    timeout: std::time::Duration,
) -> String {
    let within = humantime::format_duration(timeout);
    let last_seen = match (workspace.job_state.as_deref(), workspace.job_attempts) {
        (None, _) => "no provision job was queued, so nothing was started: start its agent with a bootstrap token, or restart the workspace".to_owned(),
        (Some("pending"), Some(0) | None) => "its provision job was never claimed: is a provisioning backend running?".to_owned(),
        (Some("pending"), Some(attempts)) => format!("its provision job is still pending after {attempts} attempt(s): see the server log for the backend's errors"),
        (Some(state), attempts) => format!(
            "its provision job is {state} after {} attempt(s): the agent was started but never registered; see GET /workspaces/{}/logs",
            attempts.unwrap_or(0),
            workspace.id
        ),
    };
    format!(
        "no agent registered within {within} of provisioning ({} runtime); {last_seen}",
        workspace.runtime
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_urls_follow_the_register_rules() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        for ok in [
            "http://localhost:8000",
            "https://93.184.215.14/a2a",
            "http://[2606:4700::1111]:80",
        ] {
            assert_eq!(rt.block_on(check_agent_url(ok)), Ok(()), "{ok}");
        }
        for bad in [
            "ftp://example.com",
            "http://127.0.0.1:9",
            "http://10.0.0.1",
            "http://172.16.5.4",
            "http://192.168.1.1",
            "http://169.254.169.254/latest/meta-data",
            "http://100.64.0.1",
            "http://192.0.2.1",
            "http://198.51.100.7",
            "http://203.0.113.9",
            "http://224.0.0.1",
            "http://[::1]",
            "http://[fe80::1]",
            "http://[fd00::1]",
            "http://[2001:db8::1]",
            "http://[::ffff:127.0.0.1]",
            "http://0.1.2.3",
            "not a url",
        ] {
            assert!(rt.block_on(check_agent_url(bad)).is_err(), "{bad}");
        }
    }

    /// Every IPv6 form that embeds an IPv4 address is judged by that address: refused
    /// when it leads to loopback, metadata or a private network, allowed when public.
    #[test]
    fn ipv6_addresses_that_embed_ipv4_are_judged_by_it() {
        let judged = |text: &str| refused_ip(text.parse::<IpAddr>().unwrap());
        for (form, refused, allowed) in [
            // IPv4-compatible, ::a.b.c.d.
            ("compatible", "::127.0.0.1", "::93.184.215.14"),
            ("compatible", "::169.254.169.254", "::8.8.8.8"),
            ("compatible", "::10.0.0.1", "::1.1.1.1"),
            // IPv4-mapped, ::ffff:a.b.c.d, in either spelling.
            ("mapped", "::ffff:7f00:1", "::ffff:5db8:d70e"),
            ("mapped", "::ffff:192.168.1.1", "::ffff:93.184.215.14"),
            // IPv4-translated, ::ffff:0:a.b.c.d.
            ("translated", "::ffff:0:127.0.0.1", "::ffff:0:93.184.215.14"),
            // NAT64, 64:ff9b::/96.
            ("nat64", "64:ff9b::127.0.0.1", "64:ff9b::93.184.215.14"),
            ("nat64", "64:ff9b::a9fe:a9fe", "64:ff9b::808:808"),
            ("nat64", "64:ff9b::192.168.0.1", "64:ff9b::1.1.1.1"),
            // 6to4, 2002:AABB:CCDD::/48 for AA.BB.CC.DD.
            ("6to4", "2002:7f00:1::", "2002:5db8:d70e::1"),
            ("6to4", "2002:a9fe:a9fe::1", "2002:808:808::"),
            ("6to4", "2002:c0a8:101:1::5", "2002:101:101::"),
            // Teredo, 2001:0::/32 with the client inverted in the last 32 bits.
            (
                "teredo",
                "2001:0:4136:e378:8000:63bf:80ff:fffe",
                "2001:0:4136:e378:8000:63bf:a247:28f1",
            ),
        ] {
            assert!(judged(refused), "{form}: {refused} must be refused");
            assert!(!judged(allowed), "{form}: {allowed} must be allowed");
        }
        // What sits at `::`/`::1` in the compatible range is refused too.
        for also in ["::", "::1", "::0.0.0.2"] {
            assert!(judged(also), "{also}");
        }
        // Local-use NAT64 (RFC 8215) puts the IPv4 address where its prefix length says,
        // which the address does not: refused whatever it holds.
        for unknown in [
            "64:ff9b:1::5db8:d70e",
            "64:ff9b:1:5db8:d70e::",
            "64:ff9b:ffff::1",
        ] {
            assert_eq!(
                embedded_ipv4(unknown.parse().unwrap()),
                Embedded::Unknown,
                "{unknown}"
            );
            assert!(judged(unknown), "{unknown}");
        }
        // Other IPv6 addresses are their own.
        assert_eq!(
            embedded_ipv4("2606:4700::1111".parse().unwrap()),
            Embedded::None
        );
        for refused in ["fec0::1", "3fff::1", "3fff:fff::1"] {
            assert!(judged(refused), "{refused}");
        }
        assert!(!judged("3fff:1000::1"), "outside 3fff::/20");
        // The refusal names the IPv4 address behind.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let refusal = rt
            .block_on(check_agent_url("http://[2002:a9fe:a9fe::1]/"))
            .unwrap_err();
        assert!(refusal.contains("169.254.169.254"), "{refusal}");
    }

    fn beat(error_rate: f64, runtime_state: &str) -> AgentSnapshot {
        AgentSnapshot {
            error_rate,
            sample_error: String::new(),
            active_tasks: 0,
            uptime_seconds: 0,
            current_task: String::new(),
            monthly_spend: None,
            runtime_state: runtime_state.to_owned(),
            status_mgmt: None,
            seen_at: 0,
            token_id: None,
        }
    }

    fn state(status: WorkspaceStatus, status_mgmt: i64) -> LiveState {
        LiveState {
            status,
            current_task: String::new(),
            status_mgmt,
        }
    }

    /// The rules themselves are `hatchery_core::lifecycle`'s (tested there); here, what the
    /// app adds: the event payloads, and the stored "manages itself" flag.
    #[test]
    fn heartbeat_transitions_carry_their_reasons() {
        use WorkspaceStatus as S;
        let change = |status, beat_: &AgentSnapshot| {
            heartbeat_transition(&state(status, 0), beat_).map(|(t, payload)| (t.to, payload))
        };
        assert_eq!(
            change(S::Provisioning, &beat(0.0, "")),
            Some((S::Online, json!({"recovered_from": "provisioning"})))
        );
        assert_eq!(
            change(S::Online, &beat(0.0, "wedged")),
            Some((
                S::Degraded,
                json!({"runtime_state": "wedged", "sample_error": ""})
            ))
        );
        assert_eq!(
            change(S::Online, &beat(0.5, "")),
            Some((S::Degraded, json!({"error_rate": 0.5, "sample_error": ""})))
        );
        assert_eq!(
            change(S::Degraded, &beat(0.0, "")),
            Some((S::Online, json!({})))
        );
        assert_eq!(change(S::Online, &beat(0.1, "")), None);
        // The stored flag counts when the beat does not say; the beat wins when it does.
        assert!(heartbeat_transition(&state(S::Online, 1), &beat(0.9, "")).is_none());
        let mut judged = beat(0.9, "");
        judged.status_mgmt = Some(false);
        assert!(heartbeat_transition(&state(S::Online, 1), &judged).is_some());
    }
}
