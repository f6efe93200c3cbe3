use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use tokio_util::codec::{Decoder, Encoder};

use super::*;
use crate::ring::RingEpoch;
use crate::version::VersionVector;
use crate::wire::message::{ClientFrame, Hello, Request, RequestFrame};
use crate::wire::protocol::ProtocolRange;

type ServerSide = FrameCodec<ClientFrame, ClientFrame>;

fn put_frame(value_len: usize) -> ClientFrame {
    ClientFrame::Request(RequestFrame {
        id: 42,
        epoch: RingEpoch {
            version: 7,
            settings: 0,
            digest: 7,
        },
        body: Request::Put {
            bucket: "default".into(),
            key: Bytes::from_static(b"user:1"),
            context: Some(VersionVector::new()),
            value: Some(Bytes::from(vec![0xab; value_len])),
            overwrite: false,
            write_id: Some(1),
            hint: None,
            sync: false,
            defer_sync: false,
            ttl_ms: None,
        },
    })
}

#[test]
fn frames_round_trip_one_at_a_time_and_back_to_back() {
    let mut codec = ServerSide::new();
    let mut buf = BytesMut::new();
    let hello = ClientFrame::Hello(Hello::new(ProtocolRange::CURRENT, "t"));
    codec.encode(hello.clone(), &mut buf).expect("encode");
    codec.encode(put_frame(1024), &mut buf).expect("encode");
    assert_eq!(codec.decode(&mut buf).expect("decode"), Some(hello));
    assert_eq!(
        codec.decode(&mut buf).expect("decode"),
        Some(put_frame(1024))
    );
    assert_eq!(codec.decode(&mut buf).expect("decode"), None);
}

#[test]
fn the_header_is_the_big_endian_body_length() {
    let mut buf = BytesMut::new();
    ServerSide::new()
        .encode(put_frame(10), &mut buf)
        .expect("encode");
    let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
    assert_eq!(len, buf.len() - 4);
    // Values travel as CBOR byte strings (major type 2), not arrays of integers.
    let body: ciborium::Value = ciborium::from_reader(&buf[4..]).expect("cbor");
    let text = format!("{body:?}");
    assert!(text.contains("Bytes("), "{text}");
}

#[test]
fn a_partial_frame_waits_for_more_bytes() {
    let mut full = BytesMut::new();
    ServerSide::new()
        .encode(put_frame(100), &mut full)
        .expect("encode");
    let mut codec = ServerSide::new();
    let mut buf = BytesMut::new();
    for (i, byte) in full.iter().enumerate() {
        buf.extend_from_slice(&[*byte]);
        let got = codec.decode(&mut buf).expect("no error on a prefix");
        assert_eq!(got.is_some(), i == full.len() - 1);
    }
}

#[test]
fn an_oversized_header_is_refused_before_any_allocation() {
    let mut codec = ServerSide::new();
    let mut buf = BytesMut::from(&[0xff, 0xff, 0xff, 0xff, 0x01][..]);
    let capacity = buf.capacity();
    let err = codec.decode(&mut buf).expect_err("4 GiB frame");
    assert!(
        matches!(
            err,
            CodecError::FrameTooLarge {
                len: 0xffff_ffff,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(
        buf.capacity(),
        capacity,
        "the decoder grew its buffer for a refused frame"
    );
    assert!(matches!(
        err.to_wire(),
        Some(WireError::FrameTooLarge { .. })
    ));
}

#[test]
fn an_empty_frame_and_garbage_are_malformed() {
    let mut codec = ServerSide::new();
    let mut empty = BytesMut::from(&[0, 0, 0, 0][..]);
    assert!(matches!(
        codec.decode(&mut empty),
        Err(CodecError::Malformed(_))
    ));
    let mut garbage = BytesMut::from(&[0, 0, 0, 3, 0xff, 0xfe, 0xfd][..]);
    assert!(matches!(
        codec.decode(&mut garbage),
        Err(CodecError::Malformed(_))
    ));
}

#[test]
fn a_smaller_limit_applies_to_encoding_too() {
    let mut codec = ServerSide::with_max_frame_len(64);
    let mut buf = BytesMut::new();
    assert!(matches!(
        codec.encode(put_frame(1000), &mut buf),
        Err(CodecError::FrameTooLarge { .. })
    ));
    assert!(buf.is_empty(), "a refused frame left bytes behind");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    /// Random bytes never panic the decoder: they decode, wait for more, or fail cleanly.
    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let mut codec = ServerSide::new();
        let mut buf = BytesMut::from(&bytes[..]);
        for _ in 0..8 {
            match codec.decode(&mut buf) {
                Ok(Some(_)) => continue,
                Ok(None) | Err(_) => break,
            }
        }
    }

    /// Random bodies behind a valid header never panic either (CBOR parsing of hostile input).
    #[test]
    fn random_bodies_never_panic(body in prop::collection::vec(any::<u8>(), 1..512)) {
        let mut codec = ServerSide::new();
        let mut buf = BytesMut::new();
        buf.extend_from_slice(&(body.len() as u32).to_be_bytes());
        buf.extend_from_slice(&body);
        let _ = codec.decode(&mut buf);
    }
}
