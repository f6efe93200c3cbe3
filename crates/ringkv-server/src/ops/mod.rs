//! What operators touch: how a node is configured, and what it reports.
//!
//! - [`config`]: settings from defaults, a TOML file, environment and flags.
//! - [`admin`]: the admin HTTP endpoint (`/health`, `/ready`, `/metrics`, `/checkpoint`).
//! - [`metrics`]: the request path's Prometheus families and the scrape-time snapshot.
//! - [`counters`]: the figures the background workers and the replica keep ([`NodeCounters`]).
//! - [`process`]: the process's CPU, memory and descriptors, and the build, for `/metrics`.
//! - [`systemd`]: `READY=1` and `STOPPING=1` for a unit of `Type=notify`.

pub mod admin;
pub mod config;
pub mod counters;
pub mod metrics;
pub mod process;
pub mod systemd;

pub use counters::NodeCounters;
