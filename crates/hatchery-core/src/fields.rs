//! Workspace field validation, as the platform API spec (§3) orders and words it, with
//! hatchery's stricter rules: a non-empty name, no control characters, tiers 1–4.
//!
//! Every path a name enters (create, PATCH, bundle and org import) calls these, so the
//! rules cannot drift between them.

use std::path::{Component, Path};

/// A field that failed validation, with the spec's message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct FieldError {
    /// The JSON field name.
    pub field: &'static str,
    /// The message clients see (`name must be at most 255 characters`).
    pub message: String,
}

impl FieldError {
    fn new(field: &'static str, message: impl Into<String>) -> Self {
        Self {
            field,
            message: message.into(),
        }
    }
}

/// The free-text fields of a workspace; `None` when absent from the request.
#[derive(Debug, Clone, Copy, Default)]
pub struct TextFields<'a> {
    /// `name` (required on create).
    pub name: Option<&'a str>,
    /// `role`.
    pub role: Option<&'a str>,
    /// `model`.
    pub model: Option<&'a str>,
    /// `runtime`.
    pub runtime: Option<&'a str>,
}

/// Characters refused in names and roles: YAML and shell metacharacters.
const FORBIDDEN_IN_NAMES: &[char] = &['{', '}', '[', ']', '|', '>', '*', '&', '!'];

/// Check the text fields in the spec's order; the first failure wins. Lengths are UTF-8
/// bytes. `require_name` is set on create, where the name must be present and non-empty.
pub fn check_text_fields(fields: &TextFields<'_>, require_name: bool) -> Result<(), FieldError> {
    let all = [
        ("name", fields.name, 255),
        ("role", fields.role, 1000),
        ("model", fields.model, 100),
        ("runtime", fields.runtime, 100),
    ];
    if require_name && fields.name.is_none_or(|n| n.trim().is_empty()) {
        return Err(FieldError::new("name", "name must not be empty"));
    }
    for (field, value) in all.iter().filter_map(|&(f, v, _)| Some((f, v?))) {
        if value.contains(['\n', '\r']) {
            return Err(FieldError::new(
                field,
                format!("{field} must not contain newline characters"),
            ));
        }
    }
    for (field, value) in all[..2].iter().filter_map(|&(f, v, _)| Some((f, v?))) {
        if value.contains(FORBIDDEN_IN_NAMES) {
            return Err(FieldError::new(
                field,
                format!("{field} contains invalid characters"),
            ));
        }
    }
    for (field, value, limit) in all.iter().filter_map(|&(f, v, l)| Some((f, v?, l))) {
        if value.len() > limit {
            return Err(FieldError::new(
                field,
                format!("{field} must be at most {limit} characters"),
            ));
        }
    }
    // Stricter than Molecule: no other control characters anywhere (tabs included).
    for (field, value) in all.iter().filter_map(|&(f, v, _)| Some((f, v?))) {
        if value.chars().any(char::is_control) {
            return Err(FieldError::new(
                field,
                format!("{field} must not contain control characters"),
            ));
        }
    }
    Ok(())
}

/// Tiers are 1 (sandboxed) to 4 (full host). An omitted tier is decided by the caller's
/// default, never by granting privilege.
pub fn check_tier(tier: i64) -> Result<u8, FieldError> {
    u8::try_from(tier)
        .ok()
        .filter(|t| (1..=4).contains(t))
        .ok_or_else(|| FieldError::new("tier", "tier must be between 1 and 4"))
}

/// How a workspace may see its host directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WorkspaceAccess {
    /// No host directory (the default).
    #[default]
    None,
    /// Mounted read-only.
    ReadOnly,
    /// Mounted read-write.
    ReadWrite,
}

impl WorkspaceAccess {
    /// Its spelling in the API and the database.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::ReadOnly => "read_only",
            Self::ReadWrite => "read_write",
        }
    }
}

/// System directories a workspace may never mount, nor anything below them.
const FORBIDDEN_DIRS: &[&str] = &[
    "/etc", "/var", "/proc", "/sys", "/dev", "/boot", "/sbin", "/bin", "/lib", "/usr",
];

/// Check `workspace_dir` and `workspace_access` together, with the spec's messages.
pub fn check_workspace_access(
    workspace_dir: Option<&str>,
    access: Option<&str>,
) -> Result<WorkspaceAccess, FieldError> {
    if let Some(dir) = workspace_dir {
        let path = Path::new(dir);
        let below_forbidden = FORBIDDEN_DIRS.iter().any(|f| path.starts_with(f));
        let has_parent = path.components().any(|c| c == Component::ParentDir);
        if !path.is_absolute() || has_parent || below_forbidden || dir.contains('\0') {
            return Err(FieldError::new(
                "workspace_dir",
                "invalid workspace directory",
            ));
        }
    }
    let access = match access.unwrap_or("none") {
        "none" | "" => WorkspaceAccess::None,
        "read_only" => WorkspaceAccess::ReadOnly,
        "read_write" => WorkspaceAccess::ReadWrite,
        _ => {
            return Err(FieldError::new(
                "workspace_access",
                "invalid workspace access",
            ));
        }
    };
    if access != WorkspaceAccess::None && workspace_dir.is_none() {
        return Err(FieldError::new(
            "workspace_access",
            "invalid workspace access",
        ));
    }
    Ok(access)
}

/// Secret and environment variable names: `^[A-Z][A-Z0-9_]{0,127}$`, so a name can
/// always be exported as an environment variable and never smuggles shell syntax.
#[must_use]
pub fn is_valid_env_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    (1..=128).contains(&bytes.len())
        && bytes[0].is_ascii_uppercase()
        && bytes[1..]
            .iter()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || *b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(name: &str, role: &str, model: &str, runtime: &str) -> Result<(), FieldError> {
        check_text_fields(
            &TextFields {
                name: Some(name),
                role: Some(role),
                model: Some(model),
                runtime: Some(runtime),
            },
            true,
        )
    }

    fn message(result: Result<(), FieldError>) -> String {
        result.unwrap_err().message
    }

    #[test]
    fn valid_fields_pass() {
        assert!(check("PM", "Plans the work", "moonshot/kimi-k2.6", "claude-code").is_ok());
        assert!(check("Ünïcode ✓", "", "", "").is_ok());
    }

    /// Each `[name, role, model, runtime]` is refused with its message.
    fn assert_refused(cases: &[([&str; 4], &str)]) {
        for &([name, role, model, runtime], expected) in cases {
            assert_eq!(
                message(check(name, role, model, runtime)),
                expected,
                "{name:?} {role:?} {model:?} {runtime:?}"
            );
        }
    }

    #[test]
    fn newlines_are_checked_first_in_field_order() {
        assert_refused(&[
            (
                ["a\nb", "x{", "", ""],
                "name must not contain newline characters",
            ),
            (
                ["ok", "r\r", "", ""],
                "role must not contain newline characters",
            ),
            (
                ["ok", "", "m\n", ""],
                "model must not contain newline characters",
            ),
            (
                ["ok", "", "", "\nrt"],
                "runtime must not contain newline characters",
            ),
        ]);
    }

    #[test]
    fn yaml_metacharacters_are_refused_in_names_and_roles_only() {
        for c in FORBIDDEN_IN_NAMES {
            let (name, role) = (format!("a{c}"), c.to_string());
            assert_refused(&[
                ([&name, "", "", ""], "name contains invalid characters"),
                (["a", &role, "", ""], "role contains invalid characters"),
            ]);
        }
        assert!(check("a", "", "vendor/model[1]", "").is_ok());
    }

    #[test]
    fn lengths_are_utf8_bytes_with_the_spec_limits() {
        assert!(check(&"a".repeat(255), "", "", "").is_ok());
        let (long, wide) = ("a".repeat(256), "é".repeat(128));
        let (role, model) = ("r".repeat(1001), "m".repeat(101));
        let runtime = "r".repeat(101);
        assert_refused(&[
            ([&long, "", "", ""], "name must be at most 255 characters"),
            ([&wide, "", "", ""], "name must be at most 255 characters"),
            (["a", &role, "", ""], "role must be at most 1000 characters"),
            (
                ["a", "", &model, ""],
                "model must be at most 100 characters",
            ),
            (
                ["a", "", "", &runtime],
                "runtime must be at most 100 characters",
            ),
        ]);
    }

    #[test]
    fn stricter_than_molecule_names_exist_and_hold_no_control_characters() {
        assert_refused(&[
            (["", "", "", ""], "name must not be empty"),
            (["  ", "", "", ""], "name must not be empty"),
            (
                ["a\tb", "", "", ""],
                "name must not contain control characters",
            ),
            (
                ["a", "", "m\u{7}", ""],
                "model must not contain control characters",
            ),
        ]);
        let patch = TextFields {
            role: Some("r"),
            ..TextFields::default()
        };
        assert!(check_text_fields(&patch, false).is_ok());
    }

    #[test]
    fn tiers_are_one_to_four() {
        assert_eq!(check_tier(1), Ok(1));
        assert_eq!(check_tier(4), Ok(4));
        for bad in [0, 5, -1, 300, i64::MAX] {
            assert_eq!(check_tier(bad).unwrap_err().field, "tier");
        }
    }

    #[test]
    fn workspace_directories_must_be_absolute_and_outside_system_paths() {
        assert_eq!(
            check_workspace_access(Some("/home/me/repo"), Some("read_write")),
            Ok(WorkspaceAccess::ReadWrite)
        );
        assert_eq!(
            check_workspace_access(None, None),
            Ok(WorkspaceAccess::None)
        );
        for bad in [
            "relative/dir",
            "/home/../etc",
            "/etc",
            "/usr/local/src",
            "/var/lib/x",
            "/lib",
        ] {
            assert_eq!(
                check_workspace_access(Some(bad), None).unwrap_err().message,
                "invalid workspace directory",
                "{bad}"
            );
        }
        // A name that merely starts like a system directory is fine.
        assert!(check_workspace_access(Some("/library/x"), None).is_ok());
    }

    #[test]
    fn access_other_than_none_needs_a_directory() {
        assert_eq!(
            check_workspace_access(None, Some("read_only"))
                .unwrap_err()
                .message,
            "invalid workspace access"
        );
        assert_eq!(
            check_workspace_access(Some("/srv/x"), Some("write"))
                .unwrap_err()
                .message,
            "invalid workspace access"
        );
    }

    #[test]
    fn env_names_follow_the_pattern() {
        for good in ["A", "OPENAI_API_KEY", "X9_", &"K".repeat(128)] {
            assert!(is_valid_env_name(good), "{good}");
        }
        for bad in ["", "a", "9A", "A-B", "A B", "ÄB", &"K".repeat(129), "A\n"] {
            assert!(!is_valid_env_name(bad), "{bad:?}");
        }
    }
}
