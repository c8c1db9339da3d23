//! The body of every refusal.

use serde::{Deserialize, Serialize};

/// The body of every refusal: the platform API's message, hatchery's stable `code`, and,
/// where one is to blame, the field. Some refusals add keys of their own (`candidates` of
/// an ambiguous model, `missing_env` of an org import, …).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    /// The message, exactly as the platform API has it (`invalid workspace fields`, …).
    pub error: String,
    /// The stable machine-readable name (`provider_derivation_failed`, `invalid_json`, …).
    pub code: String,
    /// The field to blame, when there is one.
    pub field: Option<String>,
    /// The specific reason, naming the field.
    pub detail: Option<String>,
}

/// The keys an ambiguous provider derivation (`provider_derivation_failed`) adds to its
/// [`ErrorBody`].
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AmbiguousProvider {
    /// Every provider that matches the model.
    pub candidates: Option<Vec<String>>,
}
