//! How values are spelled in what clients read: times and numbers as the platform API
//! prints them. Shared by the HTTP answers and the events the app layer writes, so an
//! event's payload and a response spell a value the same way.

use std::time::SystemTime;

use hatchery_store::micros_to_time;
use serde_json::{Value, json};

/// RFC 3339 in UTC.
pub(crate) fn timestamp(micros: i64) -> String {
    humantime::format_rfc3339_micros(micros_to_time(micros)).to_string()
}

/// RFC 3339 in UTC, of a `SystemTime`.
pub(crate) fn time(at: SystemTime) -> String {
    humantime::format_rfc3339_seconds(at).to_string()
}

/// A float printed as Go prints it: `100`, not `100.0`.
pub(crate) fn go_number(value: f64) -> Value {
    // Integral values within f64's exact integer range print without a fraction.
    if value.fract() == 0.0 && value.abs() < 9_007_199_254_740_992.0 {
        #[allow(
            clippy::cast_possible_truncation,
            reason = "checked integral and in range"
        )]
        return json!(value as i64);
    }
    json!(value)
}
