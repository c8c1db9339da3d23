//! Secret values encrypted at rest: AES-256-GCM with a random 96-bit nonce per value and
//! the value's scope and name as associated data, so a ciphertext moved to another
//! workspace or another key name fails to decrypt instead of leaking.
//!
//! Stored form: `[format version = 1][nonce: 12 bytes][ciphertext + 16-byte tag]`.

use std::path::Path;

use aes_gcm::aead::{Aead, Generate, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};

const FORMAT_V1: u8 = 1;
const NONCE_LEN: usize = 12;

/// File in the data directory holding the development-mode key (base64, mode 0600).
pub const DEV_KEY_FILE: &str = "secrets.key";

/// Whose secret a value is; part of what the ciphertext is bound to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope<'a> {
    /// A global secret (`/settings/secrets`).
    Global,
    /// A workspace's own secret; the workspace id.
    Workspace(&'a str),
}

/// Why a key could not be had.
#[derive(Debug, thiserror::Error)]
#[allow(missing_docs)] // the fields' names say what they hold
pub enum KeyError {
    /// `HATCHERY_SECRETS_KEY` is not 32 bytes of base64.
    #[error(
        "HATCHERY_SECRETS_KEY must be 32 random bytes in base64 (e.g. `openssl rand -base64 32`)"
    )]
    Malformed,
    /// The development key file could not be read or written.
    #[error("secrets key file {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

/// A value too large for AES-GCM (beyond 64 GiB) could not be sealed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("secret value too large to encrypt")]
pub struct EncryptError;

/// A stored value did not decrypt: wrong key, wrong scope or name, or damaged bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("secret failed to decrypt (wrong key, or the value was moved or damaged)")]
pub struct DecryptError;

/// The key secrets are sealed with.
pub struct SecretsKey {
    cipher: Aes256Gcm,
}

impl std::fmt::Debug for SecretsKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretsKey(<redacted>)")
    }
}

impl SecretsKey {
    /// A key from its base64 text (standard or URL-safe alphabet).
    pub fn from_base64(text: &str) -> Result<Self, KeyError> {
        let text = text.trim();
        let bytes = STANDARD
            .decode(text)
            .or_else(|_| URL_SAFE_NO_PAD.decode(text.trim_end_matches('=')))
            .map_err(|_| KeyError::Malformed)?;
        let cipher = Aes256Gcm::new_from_slice(&bytes).map_err(|_| KeyError::Malformed)?;
        Ok(Self { cipher })
    }

    /// A fresh random key and its base64 text.
    #[must_use]
    pub fn generate() -> (Self, String) {
        let mut bytes = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rng(), &mut bytes);
        let text = STANDARD.encode(bytes);
        let key = Self {
            cipher: Aes256Gcm::new(&bytes.into()),
        };
        (key, text)
    }

    /// Development mode's key: read from the data directory, or created there (mode 0600)
    /// on first use.
    pub fn load_or_create_dev_key(data_dir: &Path) -> Result<Self, KeyError> {
        let path = data_dir.join(DEV_KEY_FILE);
        let io = |source| KeyError::Io {
            path: path.display().to_string(),
            source,
        };
        match std::fs::read_to_string(&path) {
            Ok(text) => Self::from_base64(&text),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                let (key, text) = Self::generate();
                std::fs::create_dir_all(data_dir).map_err(io)?;
                crate::private_file::write(&path, text.as_bytes()).map_err(io)?;
                Ok(key)
            }
            Err(err) => Err(io(err)),
        }
    }

    /// Write `text` (a key in base64) as the development key file, atomically and owner-only.
    pub fn write_dev_key(data_dir: &Path, file_name: &str, text: &str) -> Result<(), KeyError> {
        let path = data_dir.join(file_name);
        crate::private_file::write(&path, text.as_bytes()).map_err(|source| KeyError::Io {
            path: path.display().to_string(),
            source,
        })
    }

    /// Seal `plaintext` for `scope` and `name`.
    pub fn encrypt(
        &self,
        scope: Scope<'_>,
        name: &str,
        plaintext: &[u8],
    ) -> Result<Vec<u8>, EncryptError> {
        let nonce = Nonce::generate();
        let aad = associated_data(scope, name);
        // GCM refuses only inputs beyond its 64 GiB limit.
        let sealed = self
            .cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext,
                    aad: &aad,
                },
            )
            .map_err(|_| EncryptError)?;
        let mut out = Vec::with_capacity(1 + NONCE_LEN + sealed.len());
        out.push(FORMAT_V1);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    /// Open a stored value sealed for `scope` and `name`.
    pub fn decrypt(
        &self,
        scope: Scope<'_>,
        name: &str,
        stored: &[u8],
    ) -> Result<Vec<u8>, DecryptError> {
        let [FORMAT_V1, rest @ ..] = stored else {
            return Err(DecryptError);
        };
        if rest.len() < NONCE_LEN {
            return Err(DecryptError);
        }
        let (nonce, sealed) = rest.split_at(NONCE_LEN);
        let nonce = Nonce::try_from(nonce).map_err(|_| DecryptError)?;
        let aad = associated_data(scope, name);
        self.cipher
            .decrypt(
                &nonce,
                Payload {
                    msg: sealed,
                    aad: &aad,
                },
            )
            .map_err(|_| DecryptError)
    }
}

/// What a ciphertext is bound to besides the key.
fn associated_data(scope: Scope<'_>, name: &str) -> Vec<u8> {
    let scope = match scope {
        Scope::Global => "global".to_owned(),
        Scope::Workspace(id) => format!("workspace:{id}"),
    };
    format!("hatchery-secret-v1\0{scope}\0{name}").into_bytes()
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    const WS: Scope<'static> = Scope::Workspace("0b7a2c1e-8d1f-4f7e-9a0e-4f1c2b3d4e5f");

    #[test]
    fn values_round_trip_and_never_appear_in_the_stored_bytes() {
        let (key, _) = SecretsKey::generate();
        let stored = key
            .encrypt(WS, "OPENAI_API_KEY", b"sk-very-secret")
            .unwrap();
        assert!(!stored.windows(6).any(|w| w == b"sk-ver"));
        assert_eq!(
            key.decrypt(WS, "OPENAI_API_KEY", &stored).unwrap(),
            b"sk-very-secret"
        );
    }

    #[test]
    fn each_value_gets_its_own_nonce() {
        let (key, _) = SecretsKey::generate();
        let a = key.encrypt(Scope::Global, "K", b"same").unwrap();
        let b = key.encrypt(Scope::Global, "K", b"same").unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn a_value_moved_to_another_scope_or_name_does_not_decrypt() {
        let (key, _) = SecretsKey::generate();
        let stored = key.encrypt(WS, "K", b"v").unwrap();
        assert_eq!(key.decrypt(Scope::Global, "K", &stored), Err(DecryptError));
        assert_eq!(
            key.decrypt(Scope::Workspace("other"), "K", &stored),
            Err(DecryptError)
        );
        assert_eq!(key.decrypt(WS, "K2", &stored), Err(DecryptError));
    }

    #[test]
    fn a_wrong_key_or_damaged_bytes_do_not_decrypt() {
        let (key, _) = SecretsKey::generate();
        let (other, _) = SecretsKey::generate();
        let mut stored = key.encrypt(WS, "K", b"value").unwrap();
        assert_eq!(other.decrypt(WS, "K", &stored), Err(DecryptError));
        let last = stored.len() - 1;
        stored[last] ^= 1;
        assert_eq!(key.decrypt(WS, "K", &stored), Err(DecryptError));
        assert_eq!(key.decrypt(WS, "K", &[]), Err(DecryptError));
        assert_eq!(key.decrypt(WS, "K", &[2, 0, 0]), Err(DecryptError));
    }

    #[test]
    fn keys_are_32_bytes_of_base64() {
        let (_, text) = SecretsKey::generate();
        let key = SecretsKey::from_base64(&text).unwrap();
        let stored = key.encrypt(WS, "K", b"v").unwrap();
        assert_eq!(
            SecretsKey::from_base64(&format!(" {text}\n"))
                .unwrap()
                .decrypt(WS, "K", &stored)
                .unwrap(),
            b"v"
        );
        assert!(matches!(
            SecretsKey::from_base64("c2hvcnQ="),
            Err(KeyError::Malformed)
        ));
        assert!(matches!(
            SecretsKey::from_base64("not base64!"),
            Err(KeyError::Malformed)
        ));
    }

    #[test]
    fn the_dev_key_is_created_once_with_owner_only_permissions() {
        let dir = tempfile::tempdir().unwrap();
        let first = SecretsKey::load_or_create_dev_key(dir.path()).unwrap();
        let stored = first.encrypt(Scope::Global, "K", b"v").unwrap();
        let mode = std::fs::metadata(dir.path().join(DEV_KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let again = SecretsKey::load_or_create_dev_key(dir.path()).unwrap();
        assert_eq!(again.decrypt(Scope::Global, "K", &stored).unwrap(), b"v");
    }
}
