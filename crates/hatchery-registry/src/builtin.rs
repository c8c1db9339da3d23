//! The built-in provider catalog, compiled into the binary.

use std::sync::OnceLock;

use crate::registry::Registry;

/// `catalog/providers.yaml`, hatchery's own catalog of providers and runtimes.
pub(crate) const MANIFEST: &[u8] = include_bytes!("../catalog/providers.yaml");

impl Registry {
    /// The built-in catalog, loaded once per process.
    ///
    /// # Panics
    /// Never in a released build: the catalog is validated by this crate's tests and by
    /// `hatchery providers check`, so a broken one cannot ship.
    #[must_use]
    pub fn builtin() -> &'static Registry {
        static BUILTIN: OnceLock<Registry> = OnceLock::new();
        BUILTIN.get_or_init(|| {
            #[allow(clippy::expect_used)] // validated at test time; see the doc comment
            Registry::from_bytes(MANIFEST).expect("the built-in provider catalog is valid")
        })
    }
}
