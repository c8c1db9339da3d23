//! `/admin/registry`: what the live registry derives, in its own words.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `GET /admin/registry/explain`: what the live registry derives for a runtime and model,
/// in the registry's own words, with the trace of every rule tried.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ExplainAnswer {
    /// The runtime asked about.
    pub runtime: String,
    /// The model asked about.
    pub model: String,
    /// `derived`, `passthrough` or `error`.
    #[cfg_attr(feature = "openapi", schema(pattern = "^(derived|passthrough|error)$"))]
    pub outcome: String,
    /// The provider decided on.
    pub provider: Option<String>,
    /// `platform` or `byok`.
    pub billing: Option<String>,
    /// Which rule decided (`exact_model`, `prefix_match`, …).
    pub via: Option<String>,
    /// For a pass-through: why the registry has no say (`unknown_runtime`, `empty_model`,
    /// `no_match`).
    pub reason: Option<String>,
    /// For an error: its kind (`ambiguous`, …).
    pub kind: Option<String>,
    /// For an ambiguous model: every provider that matches.
    pub candidates: Option<Vec<String>>,
    /// For an error: what went wrong, naming runtime and model.
    pub message: Option<String>,
    /// The registry snapshot that decided.
    pub registry_hash: String,
    /// The rules tried, in order.
    pub explain: Vec<Value>,
}
