//! hatchery's control-plane server: configuration, start-up checks, the HTTP API, the
//! provider registry in force (reloadable without a restart), and admin auth.
//!
//! `Application::build(config)` does every check that can refuse a start (a bad manifest,
//! a non-loopback listen address in dev mode, an unreadable data directory) before it binds;
//! `run_until_stopped` serves until SIGTERM or SIGINT and reloads the registry on SIGHUP.

// Product code never unwraps what input can influence; tests may.
#![warn(clippy::unwrap_used)]

pub mod app;
pub mod auth;
pub mod backends;
mod background;
mod config;
pub mod error;
pub mod event_hub;
pub mod http;
pub mod metrics;
pub mod private_file;
pub mod registry_source;
pub mod secrets;
pub mod serve;
mod startup;
pub mod supervision;
mod wire;

pub use secrecy::SecretString;

pub use crate::backends::BackendChoice;
pub use crate::config::ServerConfig;
pub use crate::startup::{Application, StartError};
