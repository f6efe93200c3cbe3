//! Cluster membership: the committed layout this node holds, spread by gossip and turned into
//! the ring it routes by.
//!
//! - [`keeper`]: the layout ([`Keeper`]: persisted, changed by operators, adopted from peers)
//!   and what the node knows of the cluster at one moment ([`ClusterView`]).
//! - [`gossip`]: chitchat wiring: the keys each node gossips, fetching a newer layout from
//!   the peer that has it, advancing transfer phases, liveness ([`spawn_membership`]).
//! - [`address`]: the node moves its member address to where it runs, and never serves
//!   alongside a second process of its id.
//! - [`purge_report`]: what each node gossips so that a purge knows no hint, transfer or
//!   clean-up can still bring back what it removes.
//! - `blocked`: a transfer that waits for members that are down, named in the log.
//! - [`signed_gossip`]: gossip datagrams tagged with the cluster secret.

pub mod address;
mod blocked;
pub mod gossip;
pub mod keeper;
pub mod purge_report;
pub mod signed_gossip;

pub use gossip::{MembershipHandle, READY_GRACE, spawn_membership};
pub use keeper::{ClusterView, Keeper};
pub use purge_report::PurgeReport;
