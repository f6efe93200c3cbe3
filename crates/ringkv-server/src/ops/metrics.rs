//! The node's metrics, in Prometheus text format (`GET /metrics` on the admin port).
//!
//! Two kinds:
//! - **Measured on the request path**: requests, errors and latency per request type, and
//!   open connections. Kept in prometheus-client families, updated by the connection loop (`request::server`) and `request::lane`.
//! - **Read at scrape time** from the node's own counters (the same ones `Stats` answers):
//!   hints, transfers, anti-entropy, store size, RocksDB write stalls, readiness and ring
//!   membership. A scrape builds them fresh ([`NodeSnapshot`]), so there is one source of
//!   truth for every figure and nothing to keep in sync.
//!
//! Every family is prefixed `ringkv_`; counters end in `_total`, as the format wants.

use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use ringkv_core::wire::NodeStats;

use crate::storage::EngineStats;

/// The label of the per-request families.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    /// `Request::kind()`: static, so recording a request allocates nothing.
    request: &'static str,
}

/// The families measured on the request path. Cheap to update from many tasks at once.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    errors: Family<RequestLabels, Counter>,
    latency: Family<RequestLabels, Histogram>,
    connections: Gauge,
    refused: Family<RefusedLabels, Counter>,
    handshakes: Family<ProtocolLabels, Counter>,
    siblings: Histogram,
}

/// The protocol version a connection negotiated.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProtocolLabels {
    protocol: u32,
}

/// Why the node closed a connection on its own.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RefusedLabels {
    reason: &'static str,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("ringkv");
        let requests = Family::<RequestLabels, Counter>::default();
        let errors = Family::<RequestLabels, Counter>::default();
        // 50 µs to about 1.6 s, doubling: a loopback get to a request at its deadline.
        let latency = Family::<RequestLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.000_05, 2.0, 16))
        });
        let connections = Gauge::default();
        registry.register("requests", "Requests handled, by type", requests.clone());
        registry.register(
            "request_errors",
            "Requests answered with an error, by type",
            errors.clone(),
        );
        registry.register(
            "request_duration_seconds",
            "Time to handle a request, by type",
            latency.clone(),
        );
        registry.register(
            "connections",
            "Open client and peer connections",
            connections.clone(),
        );
        let refused = Family::<RefusedLabels, Counter>::default();
        registry.register(
            "connections_refused",
            "Connections the node closed itself, by reason: over_cap, handshake_timeout, \
             unauthenticated, idle_timeout, malformed, tls, protocol_version",
            refused.clone(),
        );
        let handshakes = Family::<ProtocolLabels, Counter>::default();
        registry.register(
            "handshakes",
            "Connections opened, by the protocol version they negotiated: during a rolling \
             upgrade, whether processes of the older release still connect",
            handshakes.clone(),
        );
        // 0, 1, 2, 4 ... 128: more than one is a conflict the application has yet to merge.
        let siblings = Histogram::new([0.0, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0]);
        registry.register(
            "siblings_per_read",
            "Live siblings of the key in each read this node answered",
            siblings.clone(),
        );
        // Series a dashboard or an alert reads are served from the start, at 0: a family
        // with no sample yet would be absent from the scrape, not zero.
        for reason in [
            "over_cap",
            "handshake_timeout",
            "unauthenticated",
            "idle_timeout",
            "malformed",
            "tls",
            "protocol_version",
        ] {
            let _ = refused.get_or_create(&RefusedLabels { reason });
        }
        for request in ["get", "put", "merge", "touch"] {
            let _ = errors.get_or_create(&RequestLabels { request });
            let _ = requests.get_or_create(&RequestLabels { request });
        }
        Metrics {
            siblings,
            registry,
            requests,
            errors,
            latency,
            connections,
            refused,
            handshakes,
        }
    }

    /// Records one handled request.
    pub fn observe(&self, request: &'static str, took: Duration, ok: bool) {
        let labels = RequestLabels { request };
        self.requests.get_or_create(&labels).inc();
        if !ok {
            self.errors.get_or_create(&labels).inc();
        }
        self.latency
            .get_or_create(&labels)
            .observe(took.as_secs_f64());
    }

    pub fn connection_opened(&self) {
        self.connections.inc();
    }

    pub fn connection_closed(&self) {
        self.connections.dec();
    }

    /// Records the live siblings one read found.
    pub fn observe_siblings(&self, live: usize) {
        self.siblings.observe(live as f64);
    }

    /// Counts a connection the node closed: `reason` is one of those listed in the help.
    /// Records a connection opened at `protocol`.
    pub fn handshake(&self, protocol: u32) {
        self.handshakes
            .get_or_create(&ProtocolLabels { protocol })
            .inc();
    }

    pub fn connection_refused(&self, reason: &'static str) {
        self.refused.get_or_create(&RefusedLabels { reason }).inc();
    }

    /// The whole exposition: the request-path families, then `snapshot`.
    pub fn encode(&self, snapshot: NodeSnapshot) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode_registry(&mut out, &self.registry)?;
        let mut scrape = Registry::with_prefix("ringkv");
        scrape.register_collector(Box::new(snapshot));
        prometheus_client::encoding::text::encode_registry(&mut out, &scrape)?;
        // Unprefixed: `process_*` are the names every dashboard knows.
        let mut process = Registry::default();
        process.register_collector(Box::new(super::process::ProcessSnapshot::read()));
        prometheus_client::encoding::text::encode_registry(&mut out, &process)?;
        prometheus_client::encoding::text::encode_eof(&mut out)?;
        Ok(out)
    }
}

/// What a scrape reads from the node. See the module docs.
#[derive(Debug)]
pub struct NodeSnapshot {
    pub stats: NodeStats,
    pub engine: EngineStats,
    pub ready: bool,
    pub members: usize,
    pub alive: usize,
    /// Members the transfer under way waits for that this node sees down.
    pub transfer_waits_on_down: usize,
    /// Syncs of the store's log the group committer made.
    pub log_syncs: u64,
    /// Durable writes that waited for one of those syncs.
    pub durable_writes: u64,
}

impl Collector for NodeSnapshot {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let s = &self.stats;
        let transfer = s.transfer.clone().unwrap_or_default();
        let counters: [(&str, &str, u64); 13] = [
            (
                "log_syncs",
                "Syncs of the store's log for durable writes (one per group commit)",
                self.log_syncs,
            ),
            (
                "durable_writes",
                "Durable writes that waited for a log sync; divided by log_syncs, the group size",
                self.durable_writes,
            ),
            (
                "expired_values_reclaimed",
                "Expired values whose bytes were reclaimed (their versions stay)",
                s.expired_values_reclaimed,
            ),
            (
                "expired_bytes_reclaimed",
                "Bytes of expired values reclaimed",
                s.expired_bytes_reclaimed,
            ),
            (
                "purged_keys",
                "Keys whose tombstones and expired versions were purged",
                s.purged_keys,
            ),
            (
                "pruned_keys",
                "Keys whose version vectors were pruned of actors no version needs",
                s.pruned_keys,
            ),
            (
                "hints_delivered",
                "Hints handed off to their home node",
                s.hints_delivered,
            ),
            (
                "hints_converted",
                "Hints handed to anti-entropy (home down too long, or the queue over its cap)",
                s.hints_converted,
            ),
            (
                "anti_entropy_exchanges",
                "Anti-entropy exchanges completed",
                s.anti_entropy.exchanges,
            ),
            (
                "anti_entropy_ranges_differing",
                "Ring fragments anti-entropy found different on a peer",
                s.anti_entropy.ranges_differing,
            ),
            (
                "anti_entropy_keys_repaired",
                "Keys anti-entropy repaired",
                s.anti_entropy.keys_repaired,
            ),
            (
                "anti_entropy_bytes",
                "Bytes of summaries and key lists anti-entropy exchanged to find differences",
                s.anti_entropy.bytes,
            ),
            (
                "transfer_cleaned_keys",
                "Copies deleted after a membership change settled",
                transfer.cleaned_keys,
            ),
        ];
        for (name, help, value) in counters {
            let counter = ConstCounter::new(value);
            counter.encode(encoder.encode_descriptor(
                name,
                help,
                None,
                counter.metric_type(),
            )?)?;
        }
        let gauges: [(&str, &str, i64); 14] = [
            (
                "hints_pending",
                "Hints waiting for their home node",
                s.hints_pending as i64,
            ),
            (
                "hint_bytes",
                "Bytes the pending hints take",
                s.hint_bytes as i64,
            ),
            (
                "store_keys",
                "Keys stored (the engine's estimate)",
                s.keys as i64,
            ),
            (
                "store_bytes",
                "Bytes stored (the engine's estimate)",
                s.bytes as i64,
            ),
            (
                "transfer_waiting_on_down_members",
                "Members the transfer under way waits for that this node sees down \
                 (`ringkv cluster remove` one that is gone for good)",
                self.transfer_waits_on_down as i64,
            ),
            (
                "transfer_scanned_keys",
                "Keys the current transfer has looked at",
                transfer.scanned_keys as i64,
            ),
            (
                "transfer_total_keys",
                "Keys the current transfer will look at (estimate)",
                transfer.total_keys as i64,
            ),
            (
                "transfer_sent_keys",
                "Keys the current transfer sent to new owners",
                transfer.sent_keys as i64,
            ),
            (
                "transfer_sent_bytes",
                "Bytes the current transfer sent to new owners",
                transfer.sent_bytes as i64,
            ),
            (
                "transfer_done",
                "1 once this node has streamed everything it no longer owns",
                i64::from(transfer.done),
            ),
            (
                "rocksdb_write_stopped",
                "1 while RocksDB stops writes (compaction far behind)",
                i64::from(self.engine.write_stopped),
            ),
            (
                "rocksdb_delayed_write_rate_bytes_per_second",
                "Write rate RocksDB slows writes to while stalling (0: not stalling)",
                self.engine.delayed_write_rate as i64,
            ),
            (
                "ready",
                "1 while the node answers /ready with 200",
                i64::from(self.ready),
            ),
            (
                "ring_members_alive",
                "Ring members this node's failure detector sees alive",
                self.alive as i64,
            ),
        ];
        for (name, help, value) in gauges {
            let gauge = ConstGauge::new(value);
            gauge.encode(encoder.encode_descriptor(name, help, None, gauge.metric_type())?)?;
        }
        let members = ConstGauge::new(self.members as i64);
        members.encode(encoder.encode_descriptor(
            "ring_members",
            "Members of the ring this node routes by",
            None,
            members.metric_type(),
        )?)?;
        Ok(())
    }
}
