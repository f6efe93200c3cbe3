//! Micro-benchmarks of the hot paths every request crosses: finding a key's replicas,
//! merging sibling sets, and framing a request. Run with `./scripts/bench.sh`.

use std::hint::black_box;

use bytes::BytesMut;
use criterion::{Criterion, criterion_group, criterion_main};
use ringkv_benches::{put_frame, ring, three_sibling_states};
use ringkv_core::ConflictPolicy;
use ringkv_core::wire::{ClientFrame, FrameCodec};
use tokio_util::codec::{Decoder, Encoder};

fn preference_list(c: &mut Criterion) {
    let keys: Vec<Vec<u8>> = (0..1024).map(|i| format!("user{i}").into_bytes()).collect();
    for vnodes in [ringkv_core::ring::DEFAULT_TOKENS_PER_WEIGHT, 256] {
        let ring = ring(100, vnodes);
        let mut i = 0;
        c.bench_function(
            &format!("preference_list/100 nodes x {vnodes} vnodes, n=3"),
            |b| {
                b.iter(|| {
                    i = (i + 1) % keys.len();
                    let mut home = [0u64; 3];
                    for (slot, m) in home
                        .iter_mut()
                        .zip(ring.preference_list(b"default", &keys[i]))
                    {
                        *slot = m.id.0;
                    }
                    black_box(home)
                })
            },
        );
    }
}

fn dvv_merge(c: &mut Criterion) {
    let (left, right) = three_sibling_states();
    c.bench_function("dvv_merge/two 3-sibling states", |b| {
        b.iter(|| {
            let mut merged = left.clone();
            merged.merge(black_box(&right), ConflictPolicy::Siblings);
            black_box(merged)
        })
    });
}

fn codec(c: &mut Criterion) {
    let frame = put_frame();
    let mut codec = FrameCodec::<ClientFrame, ClientFrame>::new();
    let mut buf = BytesMut::with_capacity(2048);
    c.bench_function("codec/encode+decode 1 KiB put", |b| {
        b.iter(|| {
            codec.encode(frame.clone(), &mut buf).expect("encode");
            let decoded = codec
                .decode(&mut buf)
                .expect("decode")
                .expect("whole frame");
            black_box(decoded)
        })
    });
}

criterion_group!(benches, preference_list, dvv_merge, codec);
criterion_main!(benches);
