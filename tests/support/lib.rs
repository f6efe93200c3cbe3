//! Test support: real `ringkvd` processes on loopback, and a raw protocol connection.
//!
//! [`TestCluster`] starts N `ringkvd` processes on free loopback ports, each with its own data
//! directory in one temporary folder, and kills every one of them when dropped (also when a
//! test panics, in which case the folder and the node logs are kept and their path printed).
//!
//! Every helper is reachable from the crate root (`ringkv_tests::X`); the modules only sort
//! them by concern:
//!
//! - `cluster`: [`ClusterSpec`], [`TestCluster`] and its nodes, membership and inspection
//!   helpers, [`Placement`].
//! - `process`: the binaries, free ports and signals behind the nodes ([`ringkvd_bin`],
//!   [`workspace_bin`], [`free_port`]).
//! - `tls`: [`TlsFiles`], a CA and certificates made at run time.
//! - `raw`: [`RawConnection`], one handshaken protocol connection to one node.
//! - `http`: [`http_get`], [`http_post`] and [`http_post_bearer`] for the admin endpoint.
//! - `wait`: [`eventually`] and [`until_replicas_answer`], polling with a deadline.
//! - [`faults`]: network namespaces, firewall rules, a workload and the Jepsen-style checker.

mod cluster;
pub mod faults;
mod http;
mod process;
mod raw;
mod tls;
mod wait;

pub use cluster::{ClusterSpec, Node, Placement, TestCluster};
pub use http::{http_get, http_post, http_post_bearer};
pub use process::{free_port, ringkvd_bin, workspace_bin};
pub use raw::RawConnection;
pub use tls::TlsFiles;
pub use wait::{eventually, until_replicas_answer};
