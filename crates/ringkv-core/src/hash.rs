//! The two hash functions that place data on the ring.
//!
//! They are part of the protocol: a client built next year must route a key exactly as a server
//! built today, so both are fixed here and pinned by golden vectors in the tests below. Changing
//! either one is a protocol break that needs a new [`crate::wire::PROTOCOL_VERSION`].
//!
//! Both are XXH3-64 with seed 0 (the published, frozen XXH3 specification, with reference
//! implementations in many languages). It was chosen over FNV-1a, which is simpler but
//! spreads near-identical keys (`user1`, `user2`, ...) less evenly, and over SipHash, which is
//! several times slower on short keys. Measured spread: see `ring::tests`.
//!
//! Byte layouts (all integers big-endian):
//!
//! - key position: `XXH3_64( u32(len(bucket)) ‖ bucket ‖ key )`; the bucket's length keeps
//!   `("ab", "c")` and `("a", "bc")` apart.
//! - token `i` of node `id`: `XXH3_64( u64(id) ‖ u32(i) )`.

use xxhash_rust::xxh3::{Xxh3Default, xxh3_64};

/// A point on the ring: the full `u64` range, clockwise from 0.
pub type Position = u64;

/// The ring position of `key` in `bucket`.
pub fn key_position(bucket: &[u8], key: &[u8]) -> Position {
    let mut hasher = Xxh3Default::new();
    // Bucket names are limited to far less than 4 GiB by the wire limits; saturate rather than
    // wrap so that even an absurd length cannot alias a short one.
    let len = u32::try_from(bucket.len()).unwrap_or(u32::MAX);
    hasher.update(&len.to_be_bytes());
    hasher.update(bucket);
    hasher.update(key);
    hasher.digest()
}

/// The position of token `index` of the node whose id is `node_id`.
pub fn token_position(node_id: u64, index: u32) -> Position {
    let mut buf = [0u8; 12];
    buf[..8].copy_from_slice(&node_id.to_be_bytes());
    buf[8..].copy_from_slice(&index.to_be_bytes());
    xxh3_64(&buf)
}

/// A stable 64-bit digest of arbitrary bytes (used for ring epochs and lock striping).
pub fn digest(bytes: &[u8]) -> u64 {
    xxh3_64(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Golden vectors, computed with the xxHash reference implementation (the C library behind
    /// Python's `xxhash` package), not with this code. These values are the protocol: if this test fails, routing changed and
    /// every deployed client would disagree with the servers.
    #[test]
    fn golden_key_positions() {
        let cases: &[(&[u8], &[u8], u64)] = &[
            (b"", b"", 0x48b2c92616fc193d),
            (b"default", b"user:1", 0xe53458a5b55a7ccd),
            (b"default", b"user:2", 0x11ca0a6dbe3663a8),
            (b"carts", b"session-42", 0xafa4834269954930),
        ];
        for (bucket, key, want) in cases {
            assert_eq!(
                key_position(bucket, key),
                *want,
                "key_position({:?}, {:?})",
                String::from_utf8_lossy(bucket),
                String::from_utf8_lossy(key)
            );
        }
    }

    #[test]
    fn golden_token_positions() {
        let cases: &[(u64, u32, u64)] = &[
            (0, 0, 0xc4998f9169c2a4f0),
            (1, 0, 0xaf8a366c0b48c68b),
            (0xdead_beef_0000_0001, 7, 0xc3152f93b97c8e6c),
        ];
        for (id, index, want) in cases {
            assert_eq!(
                token_position(*id, *index),
                *want,
                "token_position({id:#x}, {index})"
            );
        }
    }

    #[test]
    fn xxh3_matches_the_reference_implementation() {
        // From the xxHash reference test suite: XXH3_64bits of the empty input, seed 0.
        assert_eq!(xxh3_64(b""), 0x2d06800538d394c2);
    }

    #[test]
    fn bucket_length_prefix_separates_bucket_from_key() {
        assert_ne!(key_position(b"ab", b"c"), key_position(b"a", b"bc"));
    }
}
