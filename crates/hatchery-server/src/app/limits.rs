//! How much hatchery keeps of what agents send, and how much one page of a listing
//! carries. Each limit is in the README (API, "Limits"); a field over its limit is refused
//! with 413 `payload_too_large` naming it (`field`, `limit_bytes`), before anything is
//! written.

/// The largest agent card kept (`POST /registry/register`, `/registry/update-card`), in
/// bytes of compact JSON. Cards are stored, returned by peers and carried by
/// `WORKSPACE_ONLINE` and `AGENT_CARD_UPDATED` events.
pub const MAX_AGENT_CARD_BYTES: usize = 64 * 1024;

/// The longest URL an agent registers (`POST /registry/register`), in bytes.
pub const MAX_AGENT_URL_BYTES: usize = 2 * 1024;

/// The largest `request_body` (or the `metadata` standing in for it) and `response_body`
/// of one activity report, each, in bytes of compact JSON.
pub const MAX_ACTIVITY_BODY_BYTES: usize = 256 * 1024;

/// The largest event payload stored. What agents put into events is bounded by the limits
/// above (a `WORKSPACE_ONLINE` carries a URL and a card; `WORKSPACE_DEGRADED` a sample
/// error of at most [`super::agents::MAX_REPORTED_TEXT`] bytes); a larger server-written
/// payload is stored as a truncation marker.
pub const MAX_EVENT_PAYLOAD_BYTES: usize = hatchery_store::MAX_EVENT_PAYLOAD_BYTES;

/// The bytes one page of a listing carries (event payloads; activity texts and bodies;
/// peers' URLs and cards, with a little for each row's other fields): a page stops adding
/// rows once it holds this much, so it holds at most this plus one row. The first row
/// always comes; the client continues from the last row it got (`after=`, `before=`).
pub const PAGE_BUDGET_BYTES: i64 = 1024 * 1024;

/// A field of `bytes` bytes against its `limit`: the refusal naming `field` when it is over.
pub(crate) fn check_size(
    field: &'static str,
    bytes: usize,
    limit: usize,
) -> Result<(), super::Error> {
    if bytes > limit {
        return Err(super::Error::TooLarge { field, limit });
    }
    Ok(())
}
