//! One module per noun of the command line.

pub mod admin_token;
pub mod agent;
pub mod bench;
pub mod client;
pub mod providers;
pub mod secrets;
pub mod serve;
