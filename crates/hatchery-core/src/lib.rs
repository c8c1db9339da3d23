//! hatchery's domain rules, pure and shared by every path that creates a workspace
//! (single create, org import, bundle import): field validation, the fail-closed
//! provider and billing decision, the generated default config, and org templates with
//! the plan of their import.
//!
//! No IO, no async, no database: callers hand in the registry snapshot and the names of
//! the secrets available, and get a decision or a typed error they map to HTTP.

// Product code never unwraps what input can influence; tests may.
#![warn(clippy::unwrap_used)]

pub mod a2a_queue;
pub mod config;
pub mod delegation;
pub mod fields;
pub mod lifecycle;
pub mod org;
pub mod provider;
pub mod yaml;

pub use a2a_queue::QueuedMessageStatus;
pub use config::{PreparedConfig, WorkspaceConfig, prepare_config, render_config_yaml};
pub use delegation::DelegationStatus;
pub use fields::{
    FieldError, TextFields, WorkspaceAccess, check_text_fields, check_tier, check_workspace_access,
    is_valid_env_name,
};
pub use lifecycle::{
    Decision, EventKind, Health, Move, Refusal, Transition, WorkspaceStatus, decide,
};
pub use provider::{
    BillingMode, ProviderDecision, ProviderError, ProviderRequest, ProviderSource, decide_provider,
};
