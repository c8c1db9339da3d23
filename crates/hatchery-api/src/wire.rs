//! How numbers are spelled on the wire: as the platform API (written in Go) prints them.

use serde::{Serialize, Serializer};
use serde_json::{Value, json};

/// A float printed as Go prints it: `100`, not `100.0`.
#[must_use]
pub fn go_number(value: f64) -> Value {
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

/// [`go_number`] for `#[serde(serialize_with)]`.
#[allow(
    clippy::trivially_copy_pass_by_ref,
    reason = "serde's serialize_with passes a reference"
)]
pub(crate) fn serialize_go_number<S: Serializer>(
    value: &f64,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    go_number(*value).serialize(serializer)
}

#[cfg(test)]
mod tests {
    use super::go_number;

    #[test]
    fn integral_floats_print_without_a_fraction() {
        assert_eq!(go_number(100.0).to_string(), "100");
        assert_eq!(go_number(-3.0).to_string(), "-3");
        assert_eq!(go_number(0.25).to_string(), "0.25");
        // Beyond the exact integer range a float stays a float.
        assert_eq!(go_number(1e300).to_string(), "1e+300");
    }
}
