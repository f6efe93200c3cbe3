//! The bodies of the fuzz targets, in the library so that the normal test suite replays the
//! fuzz corpus and every crash reproducer through exactly the code the fuzzer ran
//! (`crates/ringkv-fuzz` holds the targets, `tests/fuzz_corpus.rs` the replay).
//!
//! Each function takes arbitrary bytes, must never panic on them, and panics only when an
//! invariant that should hold for every input is broken (a decoded frame that does not encode
//! back to itself, a merge of valid states that is not commutative).

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use ringkv_core::wire::{
    ClientFrame, FrameCodec, Hello, ProtocolRange, Request, RequestFrame, Response, ServerFrame,
};
use ringkv_core::{
    Actor, BucketProps, Buckets, ConflictPolicy, Member, NodeId, Ring, RingConfig, RingEpoch,
    SiblingSet, VersionVector,
};
use tokio::sync::watch;
use tokio_util::codec::{Decoder, Encoder};

use crate::cluster::ClusterView;
use crate::ops::config::Limits;
use crate::request::Service;
use crate::storage::{MemoryStore, decode_state, encode_state};

/// The fuzz targets, by the name `cargo fuzz` knows them by.
pub const TARGETS: [&str; 4] = [
    "frame_decoder",
    "request_handlers",
    "sibling_decoder",
    "stamp_merge",
];

/// Runs the target named `target` on `data`. `None` if there is no such target.
pub fn run(target: &str, data: &[u8]) -> Option<()> {
    match target {
        "frame_decoder" => frame_decoder(data),
        "request_handlers" => request_handlers(data),
        "sibling_decoder" => sibling_decoder(data),
        "stamp_merge" => stamp_merge(data),
        _ => return None,
    }
    Some(())
}

/// Frames a server reads and frames a client reads, decoded from the same bytes until the
/// codec stops. Every frame decoded must encode to bytes that decode to the same frame.
pub fn frame_decoder(data: &[u8]) {
    decode_all::<ClientFrame, ServerFrame>(data, ringkv_core::wire::MAX_FRAME_LEN);
    // The limit a server applies before authentication, to exercise the early refusal.
    decode_all::<ClientFrame, ServerFrame>(data, 64 * 1024);
    decode_all::<ServerFrame, ClientFrame>(data, ringkv_core::wire::MAX_FRAME_LEN);
}

fn decode_all<In, Out>(data: &[u8], max: usize) -> Vec<In>
where
    In: serde::de::DeserializeOwned + serde::Serialize + Clone + PartialEq + std::fmt::Debug,
    Out: serde::Serialize + serde::de::DeserializeOwned,
{
    let mut codec = FrameCodec::<In, Out>::with_max_frame_len(max);
    let mut buf = BytesMut::from(data);
    let mut frames = Vec::new();
    while let Ok(Some(frame)) = codec.decode(&mut buf) {
        let mut encoded = BytesMut::new();
        let mut echo = FrameCodec::<Out, In>::new();
        if echo.encode(frame.clone(), &mut encoded).is_ok() {
            let mut back = FrameCodec::<In, Out>::new();
            let again = back.decode(&mut encoded);
            assert!(
                matches!(&again, Ok(Some(f)) if *f == frame),
                "frame does not survive encode and decode: {frame:?} became {again:?}"
            );
        }
        frames.push(frame);
    }
    frames
}

/// A node of a three-node ring on an in-memory store, fed every request the bytes decode to,
/// in order, as one connection would deliver them. The node must answer each (an error is
/// an answer) and keep its stored states valid.
pub fn request_handlers(data: &[u8]) {
    let service = fuzz_service();
    for frame in decode_all::<ClientFrame, ServerFrame>(data, ringkv_core::wire::MAX_FRAME_LEN) {
        let ClientFrame::Request(request) = frame else {
            continue;
        };
        // Proxy mode needs a network; everything else is answered here.
        if matches!(request.body, Request::Coordinate(_)) {
            continue;
        }
        let _ = service.lane(&request.body);
        let _ = service.handle(request.epoch, request.body);
    }
    for (bucket, key) in [("b", &b"k"[..]), ("lww", &b"k"[..])] {
        if let Ok(Response::Value { state: Some(state) }) = service.handle(
            RingEpoch::default(),
            Request::Get {
                bucket: bucket.into(),
                key: Bytes::copy_from_slice(key),
            },
        ) {
            let policy = if bucket == "lww" {
                ConflictPolicy::Lww
            } else {
                ConflictPolicy::Siblings
            };
            assert!(
                state.validate(policy).is_ok(),
                "the node stored an invalid state: {state:?}"
            );
        }
    }
}

fn fuzz_service() -> Service {
    let members: Vec<Member> = (1..=3)
        .map(|id| Member {
            id: NodeId(id),
            addr: format!("127.0.0.1:{}", 7400 + id),
            weight: 1,
            tokens: Vec::new(),
            zone: String::new(),
        })
        .collect();
    let members = ringkv_core::claim::found(&members, 8).unwrap_or_default();
    let mut buckets = Buckets::default();
    let lww = BucketProps {
        conflict: ConflictPolicy::Lww,
        ..BucketProps::default()
    };
    buckets.named.insert("lww".into(), lww);
    let config = RingConfig {
        buckets,
        ..RingConfig::of(members)
    };
    let view = match Ring::new(config) {
        Ok(ring) => ClusterView::fixed(ring),
        Err(e) => panic!("the fuzz ring is valid: {e}"),
    };
    let (_tx, rx) = watch::channel(Arc::new(view));
    Service::new(Arc::new(MemoryStore::new(NodeId(1))), rx, Limits::default())
}

/// The stored-state format, then CBOR sibling sets and version vectors as a peer sends them.
/// Two valid sibling sets decoded from the two halves must merge commutatively and
/// idempotently, as the convergence of replicas depends on.
pub fn sibling_decoder(data: &[u8]) {
    if let Ok(state) = decode_state(data) {
        let again = decode_state(&encode_state(&state));
        assert!(
            matches!(&again, Ok(s) if *s == state),
            "stored state does not round-trip"
        );
    }
    let _ = ciborium::from_reader::<VersionVector, _>(data);
    let half = data.len() / 2;
    let (Ok(a), Ok(b)) = (
        ciborium::from_reader::<SiblingSet, _>(&data[..half]),
        ciborium::from_reader::<SiblingSet, _>(&data[half..]),
    ) else {
        return;
    };
    let policy = ConflictPolicy::Siblings;
    if a.validate(policy).is_err() || b.validate(policy).is_err() || reuses_dots(&a, &b) {
        return;
    }
    let mut ab = a.clone();
    ab.merge(&b, policy);
    let mut ba = b.clone();
    ba.merge(&a, policy);
    assert_eq!(ab, ba, "merge is not commutative");
    let mut twice = ab.clone();
    assert!(!twice.merge(&b, policy), "merging again changed the state");
    assert_eq!(twice, ab);
    assert!(ab.validate(policy).is_ok(), "a merge made an invalid state");
}

/// A stored state and a writer's context, both arbitrary (contexts travel through cookies and
/// forms; states come from peers): the first byte says where the state's CBOR ends and the
/// context's begins. Stamping, under an actor the state or the context names (the hostile
/// case) or a fresh one, never panics; it fails only with `CounterExhausted`, changing
/// nothing, or leaves a valid state holding the new dot and none the context covered. The
/// same state and context through a node's request path never panic either.
pub fn stamp_merge(data: &[u8]) {
    let Some((&split, rest)) = data.split_first() else {
        return;
    };
    let at = usize::from(split) * rest.len() / 255;
    let (Ok(state), Ok(context)) = (
        ciborium::from_reader::<SiblingSet, _>(&rest[..at]),
        ciborium::from_reader::<VersionVector, _>(&rest[at..]),
    ) else {
        return;
    };
    let policy = ConflictPolicy::Siblings;
    if state.validate(policy).is_err() {
        return;
    }
    let fresh = Actor {
        node: NodeId(1),
        epoch: 0x00f0_0d00_f00d,
    };
    let named = state
        .version_vector()
        .iter()
        .chain(context.iter())
        .map(|(actor, _)| actor)
        .take(4);
    for actor in named.chain([fresh]) {
        let mut stamped = state.clone();
        match stamped.stamp(actor, &context, Some(Bytes::from_static(b"w")), 1, Some(9)) {
            Ok(dot) => {
                assert!(
                    stamped.validate(policy).is_ok(),
                    "a stamp made an invalid state"
                );
                assert!(
                    stamped.siblings().iter().any(|s| s.dot == dot),
                    "the write is missing"
                );
                assert!(
                    stamped
                        .siblings()
                        .iter()
                        .all(|s| s.dot == dot || !context.covers(s.dot)),
                    "a sibling the context covered survived the stamp"
                );
                let mut merged = state.clone();
                merged.merge(&stamped, policy);
                assert_eq!(
                    merged, stamped,
                    "the stamped state does not descend from the state"
                );
            }
            Err(ringkv_core::StampError::CounterExhausted { actor: refused }) => {
                assert_eq!(refused, actor, "the refusal names another actor");
                assert_eq!(stamped, state, "a refused stamp changed the state");
            }
        }
    }
    let service = fuzz_service();
    let epoch = RingEpoch::default();
    let _ = service.handle(
        epoch,
        Request::Merge {
            bucket: "b".into(),
            key: Bytes::from_static(b"k"),
            state,
            hint: None,
            sync: false,
            entry: false,
            ttl_ms: None,
        },
    );
    for overwrite in [false, true] {
        let _ = service.handle(
            epoch,
            Request::Put {
                bucket: "b".into(),
                key: Bytes::from_static(b"k"),
                context: Some(context.clone()),
                value: Some(Bytes::from_static(b"v")),
                overwrite,
                write_id: None,
                hint: None,
                sync: false,
                defer_sync: false,
                ttl_ms: None,
            },
        );
    }
}

/// Whether the two sets hold different siblings under one dot. One dot is one write, so only
/// a hostile peer sends that, and which one survives then depends on the order of merges.
fn reuses_dots(a: &SiblingSet, b: &SiblingSet) -> bool {
    a.siblings()
        .iter()
        .any(|x| b.siblings().iter().any(|y| x.dot == y.dot && x != y))
}

/// Valid inputs for each target, the start of its corpus: every request type in frames, a
/// handshake, and sibling sets from real writes (`scripts/fuzz.sh` writes them out).
pub fn seeds(target: &str) -> Vec<Vec<u8>> {
    match target {
        "frame_decoder" | "request_handlers" => {
            let mut out = Vec::new();
            for (i, body) in seed_requests().into_iter().enumerate() {
                let mut buf = BytesMut::new();
                let mut codec = FrameCodec::<ServerFrame, ClientFrame>::new();
                let hello = ClientFrame::Hello(Hello::new(ProtocolRange::CURRENT, "fuzz"));
                let request = ClientFrame::Request(RequestFrame {
                    id: i as u64,
                    epoch: RingEpoch::default(),
                    body,
                });
                if codec.encode(hello, &mut buf).is_ok() && codec.encode(request, &mut buf).is_ok()
                {
                    out.push(buf.to_vec());
                }
            }
            out
        }
        "sibling_decoder" => {
            let one = one_write(1, b"a", Some(7));
            let two = one_write(2, b"b", None);
            let mut both = Vec::new();
            let _ = ciborium::into_writer(&one, &mut both);
            let _ = ciborium::into_writer(&two, &mut both);
            vec![encode_state(&one), both]
        }
        "stamp_merge" => {
            let state = one_write(1, b"a", Some(7));
            let mut forged = VersionVector::new();
            forged.observe(ringkv_core::Dot {
                actor: NodeId(1).into(),
                counter: u64::MAX,
            });
            [state.version_vector().clone(), forged, VersionVector::new()]
                .iter()
                .map(|context| {
                    let mut body = Vec::new();
                    let _ = ciborium::into_writer(&state, &mut body);
                    let split = body.len();
                    let _ = ciborium::into_writer(context, &mut body);
                    // The split byte that puts the boundary where the state ends.
                    let byte = (split * 255).div_ceil(body.len().max(1)) as u8;
                    let mut out = vec![byte];
                    out.extend_from_slice(&body);
                    out
                })
                .collect()
        }
        _ => Vec::new(),
    }
}

fn seed_requests() -> Vec<Request> {
    let key = Bytes::from_static(b"k");
    let state = one_write(2, b"v", Some(1));
    let batch = Request::Batch {
        requests: vec![
            Request::Get {
                bucket: "b".into(),
                key: key.clone(),
            },
            Request::Merge {
                bucket: "lww".into(),
                key: key.clone(),
                state: state.clone(),
                hint: None,
                sync: true,
                entry: false,
                ttl_ms: None,
            },
            Request::Stats,
        ],
    };
    vec![
        batch,
        Request::Get {
            bucket: "b".into(),
            key: key.clone(),
        },
        Request::Put {
            bucket: "b".into(),
            key: key.clone(),
            context: Some(state.version_vector().clone()),
            value: Some(Bytes::from_static(b"value")),
            overwrite: false,
            write_id: Some(3),
            hint: None,
            sync: false,
            defer_sync: false,
            ttl_ms: None,
        },
        Request::Merge {
            bucket: "b".into(),
            key: key.clone(),
            state,
            hint: Some(NodeId(2)),
            sync: false,
            entry: false,
            ttl_ms: None,
        },
        Request::Ring,
        Request::Ping,
        Request::Stats,
        Request::Layout,
        Request::Inspect {
            bucket: "lww".into(),
            key: key.clone(),
        },
        Request::AeSpans {
            peer: NodeId(2),
            spans: vec![(0, 10), (5, 3), (0, u64::MAX)],
        },
        Request::AeSpanKeys {
            peer: NodeId(2),
            spans: vec![(0, u64::MAX)],
        },
        Request::AeTree { peer: NodeId(2) },
        Request::AeKeys {
            peer: NodeId(2),
            ranges: vec![0, u64::MAX],
        },
        Request::PurgeCheck {
            keys: vec![ringkv_core::wire::PurgeKey {
                bucket: "b".into(),
                key: key.clone(),
                vv: ringkv_core::VersionVector::new(),
                dots: Vec::new(),
                prune: false,
            }],
        },
        Request::Purge {
            keys: vec![ringkv_core::wire::PurgeKey {
                bucket: "b".into(),
                key,
                vv: ringkv_core::VersionVector::new(),
                dots: Vec::new(),
                prune: true,
            }],
        },
        Request::Commit { base: 1 },
        Request::Remove {
            id: NodeId(2),
            base: 1,
        },
        Request::Replace {
            old: NodeId(2),
            new: ringkv_core::Member {
                id: NodeId(9),
                addr: "127.0.0.1:9".into(),
                weight: 1,
                tokens: Vec::new(),
                zone: String::new(),
            },
            base: 1,
        },
        Request::Abort { base: 1 },
        Request::Bucket {
            name: "carts".into(),
            props: ringkv_core::BucketProps::default(),
            create: true,
            base: 1,
        },
        Request::HoldsBucket {
            bucket: "carts".into(),
        },
    ]
}

/// The state after one write of `value` stamped by node `node`.
fn one_write(node: u64, value: &'static [u8], write_id: Option<u64>) -> SiblingSet {
    let mut state = SiblingSet::new();
    let value = Some(Bytes::from_static(value));
    state
        .stamp(
            Actor {
                node: NodeId(node),
                epoch: 1,
            },
            &VersionVector::new(),
            value,
            node,
            write_id,
        )
        .expect("stamp");
    state
}
