//! What the coordinator does after a call's quorum is decided, against in-memory nodes.
//!
//! A [`Dialer`] connects the client to fake nodes that speak the protocol over
//! `tokio::io::duplex` streams, store states in a map, and can be slow to connect to or to
//! answer. A read's late answers feed read repair; a write's last merges still land, even
//! those not yet sent (their connection still opening) when the caller stopped waiting.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use ringkv_core::wire::{
    ClientFrame, FrameCodec, PROTOCOL_VERSION, Request, Response, ResponseFrame, RingSnapshot,
    ServerFrame, Welcome, WireError,
};
use ringkv_core::{
    ConflictPolicy, DEFAULT_BUCKET, Member, NodeId, Ring, RingConfig, RingEpoch, SiblingSet,
    VersionVector,
};
use tokio::sync::mpsc;
use tokio_util::codec::Framed;

use ringkv::transport::{BoxedStream, ConnectOptions, Dialer};
use ringkv::{Client, ClientConfig, Error, ReadOptions, SpeculativeRetry, WriteOptions};

/// How slow a fake node is to connect to, and to answer a kind of request; and whether its
/// merges fail (after their delay), as a node whose disk just failed does.
#[derive(Clone, Copy, Debug, Default)]
struct Delays {
    dial: Duration,
    get: Duration,
    merge: Duration,
    merge_fails: bool,
    /// Merges are refused as routed by an older ring than the node's (which it claims is
    /// newer than any ring the cluster can hand out).
    merge_stale: bool,
    /// Merges are refused as timestamped too far ahead of the node's clock.
    merge_clock_ahead: bool,
    /// Merges are refused as by a node not ready (behind the sender's ring).
    merge_not_ready: bool,
}

/// One fake node: its id, its store, and how slow it is.
#[derive(Debug)]
struct FakeNode {
    id: NodeId,
    addr: String,
    /// Short critical sections (one lookup or update), never across an await.
    store: Mutex<HashMap<Bytes, SiblingSet>>,
    delays: Mutex<Delays>,
    /// `Get` requests received.
    gets: AtomicUsize,
}

impl FakeNode {
    fn state(&self, key: &str) -> Option<SiblingSet> {
        let store = self.store.lock().unwrap_or_else(|p| p.into_inner());
        store.get(key.as_bytes()).cloned()
    }

    fn answer(&self, body: Request) -> Response {
        let mut store = self.store.lock().unwrap_or_else(|p| p.into_inner());
        match body {
            Request::Get { key, .. } => Response::Value {
                state: store.get(&key).cloned(),
            },
            Request::Put {
                key,
                context,
                value,
                write_id,
                ..
            } => {
                let state = store.entry(key).or_default();
                let context = context.unwrap_or_else(VersionVector::default);
                state
                    .stamp(self.id.into(), &context, value, 1, write_id)
                    .expect("stamp");
                Response::Stamped {
                    state: state.clone(),
                    pending_sync: false,
                }
            }
            Request::Merge { key, state, .. } => {
                store
                    .entry(key)
                    .or_default()
                    .merge(&state, ConflictPolicy::Siblings);
                Response::Merged
            }
            Request::Ping => Response::Pong { node: self.id },
            other => panic!("the fake node does not answer {other:?}"),
        }
    }
}

/// Fake nodes on one ring (three unless said otherwise), reached by address through
/// [`Dialer::dial`].
#[derive(Debug)]
struct FakeCluster {
    ring: RingConfig,
    nodes: HashMap<String, Arc<FakeNode>>,
}

impl FakeCluster {
    fn new() -> Arc<FakeCluster> {
        FakeCluster::of(3)
    }

    fn of(nodes: u64) -> Arc<FakeCluster> {
        let members: Vec<Member> = (1..=nodes)
            .map(|i| Member {
                id: NodeId(i),
                addr: format!("node-{i}"),
                weight: 1,
                tokens: Vec::new(),
                zone: String::new(),
            })
            .collect();
        let members = ringkv_core::claim::found(&members, 16).expect("three members found a ring");
        let nodes = members
            .iter()
            .map(|m| {
                let node = FakeNode {
                    id: m.id,
                    addr: m.addr.clone(),
                    store: Mutex::default(),
                    delays: Mutex::default(),
                    gets: AtomicUsize::new(0),
                };
                (m.addr.clone(), Arc::new(node))
            })
            .collect();
        Arc::new(FakeCluster {
            ring: RingConfig::of(members),
            nodes,
        })
    }

    /// The fake nodes holding `key`, in preference order (the first one stamps writes).
    fn homes(&self, key: &str) -> Vec<Arc<FakeNode>> {
        let ring = Ring::new(self.ring.clone()).expect("a valid ring");
        ring.home_replicas(DEFAULT_BUCKET, key.as_bytes())
            .iter()
            .map(|m| self.nodes[&m.addr].clone())
            .collect()
    }

    /// Every fake node in `key`'s preference order: the homes, then the spares.
    fn preference(&self, key: &str) -> Vec<Arc<FakeNode>> {
        let ring = Ring::new(self.ring.clone()).expect("a valid ring");
        ring.preference_list(DEFAULT_BUCKET.as_bytes(), key.as_bytes())
            .map(|m| self.nodes[&m.addr].clone())
            .collect()
    }

    /// A client whose only seed is `seed`: before its first call, it is connected to that
    /// node only.
    async fn client(self: &Arc<Self>, seed: &FakeNode) -> Client {
        self.client_with(seed, ClientConfig::default()).await
    }

    /// [`FakeCluster::client`], configured as `config` says besides its dialer.
    async fn client_with(self: &Arc<Self>, seed: &FakeNode, config: ClientConfig) -> Client {
        let dialer: Arc<dyn Dialer> = self.clone();
        let config = config.with_connect(ConnectOptions::default().with_dialer(dialer));
        Client::builder()
            .seeds([seed.addr.clone()])
            .config(config)
            .build()
            .await
            .expect("the client fetches the ring")
    }
}

impl Dialer for FakeCluster {
    fn dial<'a>(
        &'a self,
        addr: &'a str,
    ) -> Pin<Box<dyn Future<Output = std::io::Result<BoxedStream>> + Send + 'a>> {
        Box::pin(async move {
            let node = self.nodes.get(addr).cloned().ok_or_else(|| {
                std::io::Error::new(std::io::ErrorKind::ConnectionRefused, addr.to_string())
            })?;
            let delay = node.delays.lock().unwrap_or_else(|p| p.into_inner()).dial;
            tokio::time::sleep(delay).await;
            let (client, server) = tokio::io::duplex(1 << 16);
            let alive = self.nodes.values().map(|n| n.id).collect();
            tokio::spawn(serve(node, self.ring.clone(), alive, server));
            Ok(Box::new(client) as BoxedStream)
        })
    }
}

/// Serves one connection to `node` on the ring `config`: the handshake, then each request
/// on a task of its own, answered after the node's delay for its kind.
async fn serve(
    node: Arc<FakeNode>,
    config: RingConfig,
    alive: Vec<NodeId>,
    stream: tokio::io::DuplexStream,
) {
    let framed = Framed::new(stream, FrameCodec::<ClientFrame, ServerFrame>::new());
    let (mut sink, mut frames) = framed.split();
    let (tx, mut outbox) = mpsc::channel::<ServerFrame>(64);
    tokio::spawn(async move {
        while let Some(frame) = outbox.recv().await {
            if sink.send(frame).await.is_err() {
                return;
            }
        }
    });
    let epoch = Ring::new(config.clone()).expect("a valid ring").epoch();
    while let Some(Ok(frame)) = frames.next().await {
        let request = match frame {
            ClientFrame::Hello(_) => {
                let welcome = Welcome {
                    protocol_version: PROTOCOL_VERSION,
                    node: node.id,
                    epoch,
                    challenge: None,
                    auth_required: false,
                };
                let _ = tx.send(ServerFrame::Welcome(welcome)).await;
                continue;
            }
            ClientFrame::Auth(_) => panic!("the fake node asks for no credential"),
            ClientFrame::Request(request) => request,
        };
        let (node, tx) = (node.clone(), tx.clone());
        let snapshot = RingSnapshot {
            node: node.id,
            config: config.clone(),
            alive: alive.clone(),
        };
        tokio::spawn(async move {
            let delays = *node.delays.lock().unwrap_or_else(|p| p.into_inner());
            let delay = match request.body {
                Request::Get { .. } => {
                    node.gets.fetch_add(1, Ordering::SeqCst);
                    delays.get
                }
                Request::Merge { .. } => delays.merge,
                _ => Duration::ZERO,
            };
            tokio::time::sleep(delay).await;
            let body = match request.body {
                Request::Merge { .. } if delays.merge_fails => Err(WireError::Storage {
                    reason: "the fake disk failed".into(),
                }),
                Request::Merge { .. } if delays.merge_clock_ahead => Err(WireError::ClockAhead {
                    ahead_ms: 3_600_000,
                    max_ms: 30_000,
                }),
                Request::Merge { .. } if delays.merge_not_ready => Err(WireError::NotReady {
                    reason: "behind the sender's ring".into(),
                }),
                Request::Merge { .. } if delays.merge_stale => Err(WireError::StaleRing {
                    epoch: RingEpoch {
                        version: u64::MAX,
                        settings: 0,
                        digest: 0,
                    },
                }),
                Request::Ring => Ok(Response::Ring(snapshot)),
                body => Ok(node.answer(body)),
            };
            let response = ResponseFrame {
                id: request.id,
                epoch,
                body,
            };
            let _ = tx.send(ServerFrame::Response(response)).await;
        });
    }
}

fn holds(node: &FakeNode, key: &str, value: &str) -> bool {
    node.state(key).is_some_and(|s| {
        s.live()
            .any(|s| s.value.as_deref() == Some(value.as_bytes()))
    })
}

#[tokio::test(start_paused = true)]
async fn a_write_returns_after_w_acks_and_its_last_merge_still_lands() {
    let cluster = FakeCluster::new();
    let homes = cluster.homes("k");
    let client = cluster.client(&homes[0]).await;
    homes[2].delays.lock().expect("delays").dial = Duration::from_millis(300);

    let receipt = client.put("k", "v", None).await.expect("w = 2 of 3");
    assert_eq!(receipt.acks(), 2, "{receipt:?}");
    assert!(holds(&homes[0], "k", "v") && holds(&homes[1], "k", "v"));
    assert!(
        !holds(&homes[2], "k", "v"),
        "its connection is still opening"
    );

    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        holds(&homes[2], "k", "v"),
        "the merge finished in the background"
    );
}

#[tokio::test(start_paused = true)]
async fn flush_waits_for_the_copies_a_write_left_behind() {
    let cluster = FakeCluster::new();
    let homes = cluster.homes("k");
    let client = cluster.client(&homes[0]).await;
    homes[2].delays.lock().expect("delays").merge = Duration::from_millis(300);

    client.put("k", "v", None).await.expect("w = 2 of 3");
    assert!(!holds(&homes[2], "k", "v"), "its merge is still slow");
    // Too short a wait says so; a long enough one sees the third copy land.
    assert!(!client.flush(Duration::from_millis(50)).await);
    assert!(client.flush(Duration::from_secs(5)).await);
    assert!(
        holds(&homes[2], "k", "v"),
        "flush returned before the copy landed"
    );
    // And the client keeps working (and tracking) after a flush.
    client
        .put("k2", "v", None)
        .await
        .expect("a write after flush");
    assert!(client.flush(Duration::from_secs(5)).await);
    assert!(cluster.homes("k2").iter().all(|h| holds(h, "k2", "v")));
}

#[tokio::test(start_paused = true)]
async fn merges_still_land_when_the_caller_stops_waiting() {
    let cluster = FakeCluster::new();
    let homes = cluster.homes("k");
    let client = cluster.client(&homes[0]).await;
    for home in &homes[1..] {
        home.delays.lock().expect("delays").dial = Duration::from_millis(300);
    }

    let opts = WriteOptions::default()
        .with_w(3)
        .with_timeout(Duration::from_millis(100));
    let result = client.put_with("k", "v", None, &opts).await;
    assert!(
        matches!(result, Err(Error::Timeout { in_doubt: true })),
        "{result:?}"
    );

    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(homes.iter().all(|home| holds(home, "k", "v")));
}

#[tokio::test(start_paused = true)]
async fn a_read_answers_after_r_and_repairs_the_late_replica_in_the_background() {
    let cluster = FakeCluster::new();
    let homes = cluster.homes("k");
    // Every read is a read repair sample: it asks every target.
    let client = cluster
        .client_with(
            &homes[0],
            ClientConfig::default().with_read_repair_chance(1.0),
        )
        .await;
    let mut state = SiblingSet::new();
    state
        .stamp(
            homes[0].id.into(),
            &VersionVector::default(),
            Some("v".into()),
            1,
            None,
        )
        .expect("stamp");
    for home in &homes[..2] {
        let mut store = home.store.lock().expect("store");
        store.insert(Bytes::from_static(b"k"), state.clone());
    }
    homes[2].delays.lock().expect("delays").get = Duration::from_millis(300);

    let read = client.get("k").await.expect("r = 2 of 3");
    assert_eq!(read.value().map(|v| &v[..]), Some(&b"v"[..]));
    assert_eq!(
        client.stats().read_repairs,
        0,
        "the late answer is not in yet"
    );

    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(client.stats().read_repairs, 1);
    assert_eq!(homes[2].state("k"), Some(state));
}

#[tokio::test(start_paused = true)]
async fn a_copy_that_fails_after_the_quorum_goes_to_a_spare_so_n_nodes_hold_the_write() {
    let cluster = FakeCluster::of(4);
    let order = cluster.preference("k");
    let (homes, spare) = (&order[..3], &order[3]);
    let client = cluster.client(&homes[0]).await;
    {
        let mut slow = homes[2].delays.lock().expect("delays");
        slow.merge = Duration::from_millis(300);
        slow.merge_fails = true;
    }

    let receipt = client.put("k", "v", None).await.expect("w = 2 of 3");
    assert_eq!(receipt.acks(), 2, "{receipt:?}");
    assert!(
        !holds(spare, "k", "v"),
        "not yet: the third copy has not failed"
    );

    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        holds(spare, "k", "v"),
        "the failed third copy went to the spare"
    );
    let stats = client.stats();
    assert_eq!(
        (stats.background_spares, stats.copies_short),
        (1, 0),
        "{stats:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_copy_refused_for_its_timestamp_never_goes_to_a_spare() {
    let cluster = FakeCluster::of(4);
    let order = cluster.preference("k");
    let (homes, spare) = (&order[..3], &order[3]);
    let client = cluster.client(&homes[0]).await;
    {
        let mut refusing = homes[2].delays.lock().expect("delays");
        refusing.merge = Duration::from_millis(300);
        refusing.merge_clock_ahead = true;
    }

    client.put("k", "v", None).await.expect("w = 2 of 3");
    assert!(client.flush(Duration::from_secs(5)).await);
    // A spare with a faster clock would take it, and its hint would carry the write to the
    // home that refused it.
    assert!(
        !holds(spare, "k", "v"),
        "a spare took a write refused for its clock"
    );
    let stats = client.stats();
    assert_eq!(
        (stats.background_spares, stats.copies_short),
        (0, 1),
        "{stats:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_copy_no_node_can_take_is_counted_short() {
    let cluster = FakeCluster::new();
    let homes = cluster.homes("k");
    let client = cluster.client(&homes[0]).await;
    {
        let mut slow = homes[2].delays.lock().expect("delays");
        slow.merge = Duration::from_millis(300);
        slow.merge_fails = true;
    }
    client.put("k", "v", None).await.expect("w = 2 of 3");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let stats = client.stats();
    assert_eq!(
        (stats.background_spares, stats.copies_short),
        (0, 1),
        "{stats:?}"
    );
}

/// The stamping replica applied the write; the others refused its merges as routed by an
/// older ring, and no newer ring can be fetched. The write failed, but it may have been
/// applied: the caller must be told so, not that the cluster has no ring.
#[tokio::test(start_paused = true)]
async fn a_write_refused_as_stale_after_its_stamp_stays_in_doubt_when_the_refetch_fails() {
    let cluster = FakeCluster::new();
    let homes = cluster.homes("k");
    let client = cluster.client(&homes[0]).await;
    for home in &homes[1..] {
        home.delays.lock().expect("delays").merge_stale = true;
    }
    let result = client.put("k", "v", None).await;
    assert!(
        holds(&homes[0], "k", "v"),
        "the stamping replica applied it"
    );
    let error = result.expect_err("w = 2 cannot be reached");
    assert!(error.is_in_doubt(), "{error:?}");
}

/// A home that refuses a write's merge as routed by an older ring is up: the plan is wrong.
/// No spare may stand in for it, or the write would be acknowledged by a hinted copy that
/// readers by the newer ring do not ask for until handoff delivers it (the read-your-writes
/// gap once seen during a join). Here the third home acknowledges, later, and the write
/// succeeds on the two homes alone; no spare ever holds it.
#[tokio::test(start_paused = true)]
async fn a_home_refusing_the_ring_gets_no_spare_in_its_place() {
    for not_ready in [false, true] {
        a_home_refusing_this_way_gets_no_spare(|delays| {
            if not_ready {
                delays.merge_not_ready = true;
            } else {
                delays.merge_stale = true;
            }
        })
        .await;
    }
}

/// The same for a home that is up but refuses the copy: an older ring (`StaleRing`) or not
/// ready for the sender's newer one (`NotReady`).
async fn a_home_refusing_this_way_gets_no_spare(refuse: impl Fn(&mut Delays)) {
    let cluster = FakeCluster::of(5);
    let homes = cluster.homes("k");
    let spares = &cluster.preference("k")[3..];
    let client = cluster.client(&homes[0]).await;
    refuse(&mut homes[1].delays.lock().expect("delays"));
    homes[2].delays.lock().expect("delays").merge = Duration::from_millis(300);

    let receipt = client
        .put("k", "v", None)
        .await
        .expect("w = 2 of the homes");
    assert_eq!(receipt.home, vec![homes[0].id, homes[2].id], "{receipt:?}");
    assert!(receipt.fallback.is_empty(), "{receipt:?}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        spares.iter().all(|s| s.state("k").is_none()),
        "a spare took the copy a home refused for its ring"
    );
    assert_eq!(client.stats().background_spares, 0);
}

/// Both other homes refuse the write's ring: with spares at hand, the write still fails (in
/// doubt: the stamping home applied it) rather than be acknowledged by hinted copies.
#[tokio::test(start_paused = true)]
async fn a_write_the_homes_refuse_for_its_ring_is_not_acknowledged_by_spares() {
    let cluster = FakeCluster::of(5);
    let homes = cluster.homes("k");
    let spares = &cluster.preference("k")[3..];
    let client = cluster.client(&homes[0]).await;
    for home in &homes[1..] {
        home.delays.lock().expect("delays").merge_stale = true;
    }

    let error = client
        .put("k", "v", None)
        .await
        .expect_err("no home but the stamping one takes it");
    assert!(error.is_in_doubt(), "{error:?}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        spares.iter().all(|s| s.state("k").is_none()),
        "a spare took a copy the homes refused for its ring"
    );
}

/// A one-write state of `value`, stamped by `node`.
fn stamped(node: &FakeNode, value: &str) -> SiblingSet {
    let mut state = SiblingSet::new();
    state
        .stamp(
            node.id.into(),
            &VersionVector::default(),
            Some(Bytes::copy_from_slice(value.as_bytes())),
            1,
            None,
        )
        .expect("stamp");
    state
}

/// Puts `state` under `key` straight into each of `nodes`' stores.
fn plant(nodes: &[Arc<FakeNode>], key: &'static str, state: &SiblingSet) {
    for node in nodes {
        let mut store = node.store.lock().expect("store");
        store.insert(Bytes::from_static(key.as_bytes()), state.clone());
    }
}

/// `Get` requests the nodes received in all.
fn gets(nodes: &[Arc<FakeNode>]) -> usize {
    nodes.iter().map(|n| n.gets.load(Ordering::SeqCst)).sum()
}

/// No repair sampling: the client asks only `R` of the targets.
fn unsampled() -> ClientConfig {
    ClientConfig::default().with_read_repair_chance(0.0)
}

#[tokio::test(start_paused = true)]
async fn a_read_asks_only_r_targets_and_no_more_when_they_agree() {
    let cluster = FakeCluster::new();
    let homes = cluster.homes("k");
    let client = cluster.client_with(&homes[0], unsampled()).await;
    plant(&homes, "k", &stamped(&homes[0], "v"));

    let read = client.get("k").await.expect("r = 2 of 3");
    assert_eq!(read.value().map(|v| &v[..]), Some(&b"v"[..]));
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(gets(&homes), 2, "only R = 2 targets are asked");
    let stats = client.stats();
    assert_eq!((stats.full_reads, stats.read_repairs), (0, 0), "{stats:?}");
}

/// The two replicas asked disagree (one missed the write): the read still answers after R,
/// then asks the third and repairs every replica that differs.
#[tokio::test(start_paused = true)]
async fn answers_that_disagree_make_the_read_ask_the_rest_and_repair_them() {
    let cluster = FakeCluster::new();
    let homes = cluster.homes("k");
    let client = cluster.client_with(&homes[0], unsampled()).await;
    let state = stamped(&homes[0], "v");
    plant(&homes[..1], "k", &state);

    let read = client.get("k").await.expect("r = 2 of 3");
    assert_eq!(read.value().map(|v| &v[..]), Some(&b"v"[..]));
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        gets(&homes),
        3,
        "the third target is asked once they disagree"
    );
    assert!(homes.iter().all(|h| h.state("k").as_ref() == Some(&state)));
    let stats = client.stats();
    assert_eq!((stats.full_reads, stats.read_repairs), (1, 2), "{stats:?}");
}

#[tokio::test(start_paused = true)]
async fn a_late_target_is_doubled_by_a_speculative_request() {
    let cluster = FakeCluster::new();
    let homes = cluster.homes("k");
    let config =
        unsampled().with_speculative_retry(SpeculativeRetry::After(Duration::from_millis(10)));
    let client = cluster.client_with(&homes[0], config).await;
    plant(&homes, "k", &stamped(&homes[0], "v"));
    homes[1].delays.lock().expect("delays").get = Duration::from_millis(300);

    let started = tokio::time::Instant::now();
    client.get("k").await.expect("r = 2 of 3");
    let took = started.elapsed();
    assert!(
        took < Duration::from_millis(300),
        "waited for the late one: {took:?}"
    );
    assert_eq!(homes[2].gets.load(Ordering::SeqCst), 1);
    assert_eq!(client.stats().speculative_reads, 1);
}

#[tokio::test(start_paused = true)]
async fn without_speculation_a_late_target_is_waited_for() {
    let cluster = FakeCluster::new();
    let homes = cluster.homes("k");
    let config = unsampled().with_speculative_retry(SpeculativeRetry::Never);
    let client = cluster.client_with(&homes[0], config).await;
    plant(&homes, "k", &stamped(&homes[0], "v"));
    homes[1].delays.lock().expect("delays").get = Duration::from_millis(300);

    let started = tokio::time::Instant::now();
    client.get("k").await.expect("r = 2 of 3");
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(homes[2].gets.load(Ordering::SeqCst), 0);
    assert_eq!(client.stats().speculative_reads, 0);
}

/// A home much slower than the others on average is asked last: the read no longer waits
/// for it, nor sends it a request.
#[tokio::test(start_paused = true)]
async fn a_much_slower_home_is_asked_last() {
    let cluster = FakeCluster::new();
    let homes = cluster.homes("k");
    let config = unsampled().with_speculative_retry(SpeculativeRetry::Never);
    let client = cluster.client_with(&homes[0], config).await;
    plant(&homes, "k", &stamped(&homes[0], "v"));
    homes[1].delays.lock().expect("delays").get = Duration::from_millis(50);
    // Reads that ask every home teach the client how fast each is (the slow one's answers
    // arrive after the read returned, and count too).
    let every = ReadOptions::default().with_every_replica();
    for _ in 0..5 {
        client.get_with("k", &every).await.expect("r = 2 of 3");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let before = homes[1].gets.load(Ordering::SeqCst);

    let started = tokio::time::Instant::now();
    client.get("k").await.expect("r = 2 of 3");
    assert!(started.elapsed() < Duration::from_millis(50));
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        homes[1].gets.load(Ordering::SeqCst),
        before,
        "the slow home was asked"
    );
}

#[tokio::test(start_paused = true)]
async fn a_read_for_every_replica_asks_them_all() {
    let cluster = FakeCluster::new();
    let homes = cluster.homes("k");
    let client = cluster.client_with(&homes[0], unsampled()).await;
    plant(&homes, "k", &stamped(&homes[0], "v"));

    client
        .get_with("k", &ReadOptions::default().with_every_replica())
        .await
        .expect("r = 2 of 3");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(gets(&homes), 3);
    assert_eq!(client.stats().full_reads, 1);
}
