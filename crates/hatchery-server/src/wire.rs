//! How values are spelled in what clients read: times and numbers as the platform API
//! prints them. Shared by the HTTP answers and the events the app layer writes, so an
//! event's payload and a response spell a value the same way.

use std::time::SystemTime;

use hatchery_store::micros_to_time;

/// RFC 3339 in UTC.
pub(crate) fn timestamp(micros: i64) -> String {
    humantime::format_rfc3339_micros(micros_to_time(micros)).to_string()
}

/// RFC 3339 in UTC, of a `SystemTime`.
pub(crate) fn time(at: SystemTime) -> String {
    humantime::format_rfc3339_seconds(at).to_string()
}

pub(crate) use hatchery_api::wire::go_number;
