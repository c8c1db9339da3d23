//! hatchery's wire types: every request and response body of the HTTP API, as the JSON
//! clients see it. The server serializes them (and with the `openapi` feature documents
//! them); the CLI and the agent deserialize them, so a renamed field breaks the build, not
//! a client at run time.
//!
//! Pure data: no store, no HTTP stack. The server converts its rows into these types.

pub mod a2a;
pub mod agents;
pub mod delegations;
pub mod errors;
pub mod events;
pub mod org;
pub mod patch;
pub mod registry;
pub mod secrets;
pub mod server;
pub mod wire;
pub mod workspaces;

pub use errors::ErrorBody;
pub use patch::Patch;
