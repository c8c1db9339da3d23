//! Where the provider registry comes from, and the live snapshot the server derives with.
//!
//! The snapshot is swapped whole on a successful reload; a reload that fails validation
//! leaves the last good snapshot in force and is remembered, so it can be shown. There is
//! never an empty registry: without a good manifest the server does not start.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use hatchery_registry::{BUILTIN_MANIFEST, Limits, ManifestError, Registry};

/// Where manifests are read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistrySource {
    /// The catalog compiled into the binary.
    Builtin,
    /// A manifest file, read again on every reload.
    File(PathBuf),
}

impl RegistrySource {
    /// How the source is shown to people.
    #[must_use]
    pub fn describe(&self) -> String {
        match self {
            Self::Builtin => "builtin".to_owned(),
            Self::File(path) => path.display().to_string(),
        }
    }

    /// Read and validate a registry from this source; a file's text comes along, so
    /// agents can be handed the very manifest that derived their provider.
    pub fn load(&self) -> Result<(Registry, Option<Arc<str>>), LoadError> {
        let bytes = match self {
            Self::Builtin => {
                let registry =
                    Registry::from_bytes(BUILTIN_MANIFEST).map_err(LoadError::invalid(self))?;
                return Ok((registry, None));
            }
            Self::File(path) => read_manifest_file(path)?,
        };
        let registry = Registry::from_bytes(&bytes).map_err(LoadError::invalid(self))?;
        Ok((
            registry,
            Some(Arc::from(String::from_utf8_lossy(&bytes).as_ref())),
        ))
    }
}

/// Why a registry could not be had.
#[derive(Debug, thiserror::Error)]
#[allow(missing_docs)] // the fields' names say what they hold
pub enum LoadError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    /// The file is larger than any manifest may be.
    #[error("{path} is larger than {limit} bytes, the most a provider manifest may be")]
    TooLarge { path: String, limit: usize },
    /// The manifest did not validate.
    #[error("invalid provider manifest {source_name}: [{category}] {error}", category = error.category())]
    Invalid {
        /// Where it came from.
        source_name: String,
        /// The first validation failure.
        error: ManifestError,
    },
}

impl LoadError {
    fn invalid(source: &RegistrySource) -> impl FnOnce(ManifestError) -> Self + '_ {
        move |error| Self::Invalid {
            source_name: source.describe(),
            error,
        }
    }
}

/// Read a manifest file, but never more than the loader accepts: `/dev/zero` or a huge
/// file is refused after `max_bytes + 1` bytes instead of filling memory.
pub fn read_manifest_file(path: &Path) -> Result<Vec<u8>, LoadError> {
    let limit = Limits::default().max_bytes;
    let read_error = |source| LoadError::Read {
        path: path.display().to_string(),
        source,
    };
    let file = std::fs::File::open(path).map_err(read_error)?;
    let mut bytes = Vec::new();
    file.take(u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(read_error)?;
    if bytes.len() > limit {
        return Err(LoadError::TooLarge {
            path: path.display().to_string(),
            limit,
        });
    }
    Ok(bytes)
}

/// One loaded registry and where and when it came from.
#[derive(Debug)]
#[allow(missing_docs)]
pub struct Snapshot {
    pub registry: Registry,
    /// Its source, as shown to people.
    pub source: String,
    /// The manifest's text when it came from a file (`None`: the built-in catalog).
    pub manifest: Option<Arc<str>>,
    /// When it was loaded.
    pub loaded_at: SystemTime,
}

/// A reload that was refused.
#[derive(Debug, Clone)]
#[allow(missing_docs)]
pub struct ReloadFailure {
    pub error: String,
    pub at: SystemTime,
}

/// The registry in force, swapped atomically on reload.
#[derive(Debug)]
pub struct LiveRegistry {
    source: RegistrySource,
    /// `None` only for a registry built unavailable (tests of the 503 path); a server
    /// never starts without a snapshot and a reload never drops one.
    current: RwLock<Option<Arc<Snapshot>>>,
    last_failure: RwLock<Option<ReloadFailure>>,
    reloads: AtomicU64,
    reload_failures: AtomicU64,
}

/// No registry snapshot is in force; nothing that needs a provider may proceed.
#[derive(Debug, Clone, thiserror::Error)]
#[error("provider registry unavailable: {reason}")]
#[allow(missing_docs)]
pub struct RegistryUnavailable {
    pub reason: String,
}

impl LiveRegistry {
    /// Load the first snapshot; an error here means the server must not start.
    pub fn load(source: RegistrySource) -> Result<Self, LoadError> {
        let (registry, manifest) = source.load()?;
        let snapshot = Snapshot {
            registry,
            source: source.describe(),
            manifest,
            loaded_at: SystemTime::now(),
        };
        Ok(Self {
            source,
            current: RwLock::new(Some(Arc::new(snapshot))),
            last_failure: RwLock::new(None),
            reloads: AtomicU64::new(0),
            reload_failures: AtomicU64::new(0),
        })
    }

    /// A registry with no snapshot in force, whose reloads read `source`. For tests of
    /// the fail-closed path and for embedders that load later; `hatchery serve` never
    /// starts this way.
    #[must_use]
    pub fn unavailable(source: RegistrySource, reason: &str) -> Self {
        Self {
            source,
            current: RwLock::new(None),
            last_failure: RwLock::new(Some(ReloadFailure {
                error: reason.to_owned(),
                at: SystemTime::now(),
            })),
            reloads: AtomicU64::new(0),
            reload_failures: AtomicU64::new(0),
        }
    }

    /// The snapshot in force. Cheap: an `Arc` clone under a read lock.
    pub fn snapshot(&self) -> Result<Arc<Snapshot>, RegistryUnavailable> {
        // A writer never panics while holding the lock; if one did, the value is whole.
        let guard = self
            .current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        guard
            .as_ref()
            .map(Arc::clone)
            .ok_or_else(|| RegistryUnavailable {
                reason: self
                    .last_failure()
                    .map_or_else(|| "no snapshot loaded".to_owned(), |f| f.error),
            })
    }

    /// Reloads attempted and refused since start: `(attempted, refused)`.
    #[must_use]
    pub fn reload_counts(&self) -> (u64, u64) {
        (
            self.reloads.load(Ordering::Relaxed),
            self.reload_failures.load(Ordering::Relaxed),
        )
    }

    /// The last refused reload, if the last attempt failed.
    #[must_use]
    pub fn last_failure(&self) -> Option<ReloadFailure> {
        match self.last_failure.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Read the source again. On success the new snapshot is in force and the failure is
    /// cleared; on failure the old snapshot stays and the failure is remembered.
    pub fn reload(&self) -> Result<Arc<Snapshot>, String> {
        self.reloads.fetch_add(1, Ordering::Relaxed);
        match self.source.load() {
            Ok((registry, manifest)) => {
                let snapshot = Arc::new(Snapshot {
                    registry,
                    source: self.source.describe(),
                    manifest,
                    loaded_at: SystemTime::now(),
                });
                *self
                    .current
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) =
                    Some(Arc::clone(&snapshot));
                *self
                    .last_failure
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = None;
                tracing::info!(
                    hash = snapshot.registry.hash(),
                    "provider registry reloaded"
                );
                Ok(snapshot)
            }
            Err(err) => {
                self.reload_failures.fetch_add(1, Ordering::Relaxed);
                let error = err.to_string();
                tracing::warn!(%error, "provider registry reload refused; the last good snapshot stays in force");
                *self
                    .last_failure
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(ReloadFailure {
                    error: error.clone(),
                    at: SystemTime::now(),
                });
                Err(error)
            }
        }
    }
}

/// A derivation as clients see it (`hatchery providers derive`, `GET
/// /admin/registry/explain`): the outcome's fields, the registry's hash and, when asked
/// for, the trace of every rule tried.
#[must_use]
pub fn explanation_json(
    explanation: &hatchery_registry::Explanation<'_>,
    with_trace: bool,
) -> serde_json::Value {
    let mut body = serde_json::to_value(&explanation.outcome).unwrap_or_else(
        |e| serde_json::json!({"outcome": "error", "kind": "internal", "message": e.to_string()}),
    );
    if let serde_json::Value::Object(fields) = &mut body {
        fields.insert("registry_hash".into(), explanation.registry_hash.into());
        if with_trace {
            fields.insert(
                "explain".into(),
                serde_json::to_value(&explanation.steps).unwrap_or_default(),
            );
        }
    }
    body
}
