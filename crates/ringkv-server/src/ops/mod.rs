//! What operators touch: how a node is configured, and what it reports.
//!
//! - [`config`]: settings from defaults, a TOML file, environment and flags.
//! - [`admin`]: the admin HTTP endpoint (`/health`, `/ready`, `/metrics`, `/checkpoint`).
//! - [`metrics`]: the request path's Prometheus families and the scrape-time snapshot.
//! - [`counters`]: the figures the background workers and the replica keep ([`NodeCounters`]).

pub mod admin;
pub mod config;
pub mod counters;
pub mod metrics;

pub use counters::NodeCounters;
