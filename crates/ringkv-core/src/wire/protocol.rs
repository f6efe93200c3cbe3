//! Which protocol version a connection speaks: negotiated from the ranges both sides
//! support, so that a cluster and its clients can be upgraded one process at a time.
//!
//! Each build speaks a range of versions, [`ProtocolRange::CURRENT`]. The connecting side
//! sends its range in the [`super::Hello`]; the server picks the highest version both speak
//! ([`ProtocolRange::negotiate`]) and names it in the [`super::Welcome`], or refuses with a
//! [`super::WireError::ProtocolVersion`] naming both ranges. A release that changes the wire
//! bumps [`super::PROTOCOL_VERSION`] and keeps speaking the previous version (its
//! `MIN_PROTOCOL_VERSION` stays), so nodes of both releases talk at the older one until every
//! process is upgraded; a later release drops the old version by raising the minimum.
//!
//! Within a range, a message stays decodable by every version in it: a field a newer version
//! adds is optional (`#[serde(default)]`), read leniently where its type may grow (see
//! [`lenient`]), and a new request or answer is sent only on a connection that negotiated the
//! version introducing it.

use serde::{Deserialize, Deserializer, Serialize};

use super::codec::{MIN_PROTOCOL_VERSION, PROTOCOL_VERSION};

/// The protocol versions one side speaks, `min..=max`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProtocolRange {
    /// The oldest version it speaks.
    pub min: u32,
    /// The newest version it speaks.
    pub max: u32,
}

impl ProtocolRange {
    /// What this build speaks.
    pub const CURRENT: ProtocolRange = ProtocolRange {
        min: MIN_PROTOCOL_VERSION,
        max: PROTOCOL_VERSION,
    };

    /// `min..=max`, or `None` if `min > max`.
    pub fn new(min: u32, max: u32) -> Option<ProtocolRange> {
        (min <= max).then_some(ProtocolRange { min, max })
    }

    /// The version a connection between the two sides speaks: the newest both speak, if any.
    pub fn negotiate(self, peer: ProtocolRange) -> Option<u32> {
        let version = self.max.min(peer.max);
        (version >= self.min.max(peer.min)).then_some(version)
    }

    /// The range a peer stated as `min` and `max` on the wire: `min` 0 (absent, from a
    /// build that speaks one version) or above `max` (nonsense) reads as `max` alone.
    pub fn stated(min: u32, max: u32) -> ProtocolRange {
        let min = if min == 0 || min > max { max } else { min };
        ProtocolRange { min, max }
    }

    /// Whether this side speaks `version`.
    pub fn contains(self, version: u32) -> bool {
        (self.min..=self.max).contains(&version)
    }
}

impl Default for ProtocolRange {
    fn default() -> ProtocolRange {
        ProtocolRange::CURRENT
    }
}

impl std::fmt::Display for ProtocolRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.min == self.max {
            write!(f, "{}", self.max)
        } else {
            write!(f, "{}-{}", self.min, self.max)
        }
    }
}

/// Reads an optional field whose type a newer version may extend (a new enum variant, say)
/// as `None` when this build cannot read it, instead of failing the whole frame: the field's
/// facts are lost, the message that carries them is not.
pub fn lenient<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: serde::de::DeserializeOwned,
{
    let value = ciborium::Value::deserialize(deserializer)?;
    Ok(value.deserialized::<Option<T>>().ok().flatten())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(min: u32, max: u32) -> ProtocolRange {
        ProtocolRange::new(min, max).expect("range")
    }

    #[test]
    fn the_newest_version_both_speak_is_chosen_and_disjoint_ranges_fail() {
        assert_eq!(range(7, 7).negotiate(range(7, 8)), Some(7));
        assert_eq!(range(7, 8).negotiate(range(7, 8)), Some(8));
        assert_eq!(range(8, 9).negotiate(range(7, 8)), Some(8));
        assert_eq!(range(7, 7).negotiate(range(8, 8)), None);
        assert_eq!(range(9, 9).negotiate(range(7, 8)), None);
        for (a, b) in [(range(3, 9), range(5, 6)), (range(1, 2), range(2, 4))] {
            assert_eq!(a.negotiate(b), b.negotiate(a), "symmetric");
        }
        assert_eq!(ProtocolRange::new(8, 7), None);
        assert_eq!(range(7, 8).to_string(), "7-8");
        assert_eq!(range(7, 7).to_string(), "7");
    }

    #[test]
    fn a_hello_without_a_minimum_offers_only_its_version() {
        #[derive(Serialize)]
        struct OldHello {
            protocol_version: u32,
            agent: String,
        }
        let mut bytes = Vec::new();
        let old = OldHello {
            protocol_version: 6,
            agent: "ringkv-rust/0.1.0".into(),
        };
        ciborium::into_writer(&old, &mut bytes).expect("encode");
        let hello: super::super::Hello = ciborium::from_reader(bytes.as_slice()).expect("decode");
        assert_eq!(hello.range(), range(6, 6));
        assert_eq!(ProtocolRange::CURRENT.negotiate(hello.range()), None);
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    enum Grown {
        Known(u32),
        Added(String),
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    enum Known {
        Known(u32),
    }

    #[derive(Debug, Serialize)]
    struct Newer {
        reason: String,
        facts: Option<Grown>,
    }

    #[derive(Debug, Deserialize)]
    struct Older {
        reason: String,
        #[serde(default, deserialize_with = "lenient")]
        facts: Option<Known>,
    }

    #[test]
    fn a_field_of_a_newer_shape_reads_as_none_and_the_rest_still_reads() {
        let mut bytes = Vec::new();
        let newer = Newer {
            reason: "r".into(),
            facts: Some(Grown::Added("x".into())),
        };
        ciborium::into_writer(&newer, &mut bytes).expect("encode");
        let older: Older = ciborium::from_reader(bytes.as_slice()).expect("decode");
        assert_eq!((older.reason.as_str(), older.facts), ("r", None));

        let mut bytes = Vec::new();
        let known = Newer {
            reason: "r".into(),
            facts: Some(Grown::Known(3)),
        };
        ciborium::into_writer(&known, &mut bytes).expect("encode");
        let older: Older = ciborium::from_reader(bytes.as_slice()).expect("decode");
        assert_eq!(older.facts, Some(Known::Known(3)));
    }
}
