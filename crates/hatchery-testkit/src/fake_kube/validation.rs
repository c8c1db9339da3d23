//! What the fake API server refuses, as a real one would: objects of the wrong kind or
//! API version, names that are not DNS subdomains, label values that are not valid,
//! secret keys that are not valid, and containers without a name or image.

use base64::Engine as _;
use serde_json::Value;

/// A DNS subdomain (RFC 1123), as object names must be.
fn dns_subdomain(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric())
}

/// A label value: at most 63 characters, alphanumerics with `-_.` inside.
fn label_value(value: &str) -> bool {
    value.is_empty()
        || (value.len() <= 63
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
            && value.starts_with(|c: char| c.is_ascii_alphanumeric())
            && value.ends_with(|c: char| c.is_ascii_alphanumeric()))
}

/// What a real API server would refuse in `object` (of `kind`), if anything.
pub(super) fn validate(kind: &str, object: &Value) -> Result<(), String> {
    let expected = if kind == "pods" { "Pod" } else { "Secret" };
    if object["apiVersion"] != "v1" || object["kind"] != expected {
        return Err(format!(
            "expected apiVersion v1 and kind {expected}, got {} {}",
            object["apiVersion"], object["kind"]
        ));
    }
    let name = object["metadata"]["name"].as_str().unwrap_or_default();
    if !dns_subdomain(name) {
        return Err(format!("metadata.name {name:?} is not a DNS subdomain"));
    }
    if let Some(labels) = object["metadata"]["labels"].as_object() {
        for (key, value) in labels {
            let value = value.as_str().unwrap_or("\u{0}");
            if !label_value(value) {
                return Err(format!("metadata.labels[{key}]: invalid value {value:?}"));
            }
        }
    }
    if kind == "secrets" {
        for (key, value) in object["data"].as_object().into_iter().flatten() {
            let valid_key = key
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
            if !valid_key || key.is_empty() {
                return Err(format!("data[{key}]: invalid key"));
            }
            let decoded = value
                .as_str()
                .map(|v| base64::engine::general_purpose::STANDARD.decode(v));
            if !matches!(decoded, Some(Ok(_))) {
                return Err(format!("data[{key}]: not base64"));
            }
        }
    } else {
        let containers = object["spec"]["containers"].as_array();
        if containers.is_none_or(Vec::is_empty) {
            return Err("spec.containers: required".to_owned());
        }
        for container in containers.into_iter().flatten() {
            if container["name"].as_str().is_none_or(str::is_empty)
                || container["image"].as_str().is_none_or(str::is_empty)
            {
                return Err("spec.containers[]: name and image are required".to_owned());
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_labels_are_checked_as_a_real_api_server_would() {
        assert!(dns_subdomain("hatchery-0da076f5-491a"));
        for bad in ["", "Upper", "-x", "x-", "a_b"] {
            assert!(!dns_subdomain(bad), "{bad}");
        }
        assert!(label_value("claude-code"));
        assert!(label_value(""));
        for bad in ["a/b", "-x", &"x".repeat(64)] {
            assert!(!label_value(bad), "{bad}");
        }
    }
}
