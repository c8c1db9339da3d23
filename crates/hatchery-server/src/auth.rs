//! Admin authentication. Never open by default: without a configured token, the first
//! start generates one, stores only its SHA-256 in the data directory and prints the
//! token once. `HATCHERY_DEV=1` is the only way to open admin routes, and it says so.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore as _;
use sha2::{Digest, Sha256};

/// File in the data directory that holds the admin token's hash (hex).
pub const ADMIN_TOKEN_HASH_FILE: &str = "admin-token.sha256";

/// How admin requests are checked.
#[derive(Clone)]
pub enum AdminAuth {
    /// Development mode: admin routes accept any request.
    Dev,
    /// No request is the admin (the Unix socket sandboxed agents use).
    Nobody,
    /// The bearer must hash to this.
    TokenHash([u8; 32]),
}

impl std::fmt::Debug for AdminAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Dev => f.write_str("AdminAuth::Dev"),
            Self::Nobody => f.write_str("AdminAuth::Nobody"),
            Self::TokenHash(_) => f.write_str("AdminAuth::TokenHash(<redacted>)"),
        }
    }
}

/// Why admin auth could not be set up.
#[derive(Debug, thiserror::Error)]
#[allow(missing_docs)] // the fields' names say what they hold
pub enum AuthSetupError {
    /// The data directory or the hash file could not be read or written.
    #[error("admin token: {action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    /// The hash file is not 64 hex digits.
    #[error(
        "admin token: {path} is corrupt (expected 64 hex digits); remove it and run `hatchery admin-token reset`"
    )]
    Corrupt { path: PathBuf },
}

/// The admin auth in force, and a token to show once when one was just generated.
pub fn setup(
    data_dir: &Path,
    configured_token: Option<&str>,
    dev: bool,
) -> Result<(AdminAuth, Option<String>), AuthSetupError> {
    // Dev mode opens admin routes to any request, bearer or not (Molecule's scripts rely
    // on it); it is loud about it and never listens beyond loopback.
    if dev {
        return Ok((AdminAuth::Dev, None));
    }
    if let Some(token) = configured_token {
        return Ok((AdminAuth::TokenHash(hash(token)), None));
    }
    let path = data_dir.join(ADMIN_TOKEN_HASH_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok((
            AdminAuth::TokenHash(parse_hex(text.trim()).ok_or(AuthSetupError::Corrupt { path })?),
            None,
        )),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            let token = reset(data_dir)?;
            Ok((AdminAuth::TokenHash(hash(&token)), Some(token)))
        }
        Err(source) => Err(AuthSetupError::Io {
            action: "reading",
            path,
            source,
        }),
    }
}

/// Mint a new admin token, store its hash (mode 0600), return the token.
pub fn reset(data_dir: &Path) -> Result<String, AuthSetupError> {
    let token = random_token();
    std::fs::create_dir_all(data_dir).map_err(|source| AuthSetupError::Io {
        action: "creating",
        path: data_dir.to_owned(),
        source,
    })?;
    let path = data_dir.join(ADMIN_TOKEN_HASH_FILE);
    let hex = hash_hex(&token);
    crate::private_file::write(&path, hex.as_bytes()).map_err(|source| AuthSetupError::Io {
        action: "writing",
        path,
        source,
    })?;
    Ok(token)
}

fn hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// A fresh bearer token: 32 random bytes, base64url without padding (43 characters).
pub(crate) fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// SHA-256 of a token, lower-case hex: the only form a token is stored in.
pub(crate) fn hash_hex(token: &str) -> String {
    hex::encode(hash(token))
}

/// The bearer of an `Authorization` value: exactly `Bearer ` then the token, trimmed;
/// anything else counts as no token.
pub(crate) fn bearer(authorization: Option<&str>) -> Option<&str> {
    authorization
        .and_then(|value| value.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|token| !token.is_empty())
}

fn parse_hex(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

impl AdminAuth {
    /// Whether an `Authorization` header value grants admin access. The prefix must be
    /// exactly `Bearer `; the rest is trimmed. Hashes are compared in constant time.
    #[must_use]
    pub fn allows(&self, authorization: Option<&str>) -> bool {
        match self {
            Self::Dev => true,
            Self::Nobody => false,
            Self::TokenHash(expected) => bearer(authorization).is_some_and(|token| {
                let given = hash(token);
                given
                    .iter()
                    .zip(expected)
                    .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                    == 0
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    #[test]
    fn a_generated_token_is_stored_as_a_private_hash_and_survives_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let (auth, token) = setup(dir.path(), None, false).unwrap();
        let token = token.expect("first start prints a token");
        assert!(token.len() >= 43);
        let stored = std::fs::read_to_string(dir.path().join(ADMIN_TOKEN_HASH_FILE)).unwrap();
        assert!(!stored.contains(&token), "only the hash is stored");
        let mode = std::fs::metadata(dir.path().join(ADMIN_TOKEN_HASH_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(auth.allows(Some(&format!("Bearer {token}"))));
        let (again, shown) = setup(dir.path(), None, false).unwrap();
        assert!(shown.is_none(), "the token is shown once");
        assert!(again.allows(Some(&format!("Bearer  {token} "))));
        assert!(!again.allows(Some(&format!("bearer {token}"))));
        assert!(!again.allows(Some("Bearer wrong")));
        assert!(!again.allows(None));
    }

    #[test]
    fn a_configured_token_is_required_and_dev_mode_opens_admin_routes() {
        let dir = tempfile::tempdir().unwrap();
        let (auth, shown) = setup(dir.path(), Some("s3cret"), false).unwrap();
        assert!(shown.is_none());
        assert!(auth.allows(Some("Bearer s3cret")));
        assert!(!auth.allows(Some("Bearer other")));
        assert!(!auth.allows(None));
        let (dev, _) = setup(dir.path(), Some("s3cret"), true).unwrap();
        assert!(dev.allows(None));
        assert!(dev.allows(Some("Bearer anything")));
        assert!(
            !dir.path().join(ADMIN_TOKEN_HASH_FILE).exists(),
            "nothing minted"
        );
    }

    #[test]
    fn a_corrupt_hash_file_refuses_to_start() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(ADMIN_TOKEN_HASH_FILE), "zz").unwrap();
        assert!(matches!(
            setup(dir.path(), None, false),
            Err(AuthSetupError::Corrupt { .. })
        ));
    }
}
