//! Node identity and ring membership records.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::hash::Position;

/// A node's identity: a random 64-bit number created on its first start and persisted in its
/// data directory.
///
/// A wiped node comes back with a new id, so the version counters it hands out (its dots) are
/// never reused: a reused counter would make new writes look like old ones already seen.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct NodeId(pub u64);

impl fmt::Display for NodeId {
    /// Sixteen hex digits, the form used in logs, the CLI and gossip.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl std::str::FromStr for NodeId {
    type Err = std::num::ParseIntError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        u64::from_str_radix(s, 16).map(NodeId)
    }
}

/// Splits `host:port` (a name, an IPv4 address, or a bracketed IPv6 address, then a port):
/// the form of every address in a layout, a seed list or a config file. `None` if `addr` is
/// not of that form. Names are resolved where the address is used, on every connect, so a
/// name that moves to another IP is followed.
pub fn split_host_port(addr: &str) -> Option<(&str, u16)> {
    let (host, port) = addr.rsplit_once(':')?;
    let port = port.parse::<u16>().ok()?;
    let host = match host.strip_prefix('[') {
        Some(v6) => {
            let inner = v6.strip_suffix(']')?;
            inner.parse::<std::net::Ipv6Addr>().ok()?;
            host
        }
        None if host.contains(':') => return None,
        None => host,
    };
    let name_ok = !host.is_empty()
        && host.len() <= 253
        && (host.starts_with('[')
            || host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_'));
    name_ok.then_some((host, port))
}

/// One member of the ring, as every client and server sees it.
///
/// A member's `tokens` are its places on the ring, chosen once by the token allocator
/// ([`crate::claim`]) when the member joins or its weight changes, and carried in the
/// committed cluster layout from then on: a ring is computed from the tokens, not re-derived.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Member {
    /// The member's identity. Members are ordered by it, and it breaks the tie when two
    /// members hold a token at the same position.
    pub id: NodeId,
    /// The `host:port` clients connect to for data requests.
    pub addr: String,
    /// Relative capacity: a member of weight 2 owns twice the ring of a member of weight 1.
    pub weight: u32,
    /// Ring positions, sorted. A token owns the arc from the previous token (exclusive) to
    /// itself (inclusive).
    pub tokens: Vec<Position>,
    /// The failure domain the member is in (a rack, a data centre's room, a cloud's
    /// availability zone): a key's home replicas are placed in as many distinct zones as the
    /// ring has (see [`crate::ring`]). Empty for a member without a label; members without
    /// one make a zone of their own, so a cluster that labels none places keys as it always
    /// did. Absent from the encoding when empty, which is how layouts and rings without zones
    /// stay readable by the release before zones.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub zone: String,
}

impl Member {
    /// A member without tokens or zone: what a join or a test starts from.
    pub fn new(id: NodeId, addr: impl Into<String>, weight: u32) -> Member {
        Member {
            id,
            addr: addr.into(),
            weight,
            tokens: Vec::new(),
            zone: String::new(),
        }
    }

    /// The zone as shown to operators: `-` for a member without a label.
    pub fn zone_label(&self) -> &str {
        if self.zone.is_empty() {
            "-"
        } else {
            &self.zone
        }
    }
}

/// Checks a zone label: up to 64 bytes of letters, digits, `-`, `_` and `.` (a label is shown
/// in tables and metrics, and must not be mistaken for an address or an option). Empty means
/// no zone.
pub fn validate_zone(zone: &str) -> Result<(), String> {
    if zone.len() > 64 {
        return Err(format!("zone label {zone:?} is longer than 64 bytes"));
    }
    if let Some(c) = zone
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return Err(format!(
            "zone label {zone:?} has {c:?}; use letters, digits, '-', '_' and '.'"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::split_host_port;

    #[test]
    fn addresses_are_host_port_with_names_ipv4_or_bracketed_ipv6() {
        assert_eq!(split_host_port("127.0.0.1:7400"), Some(("127.0.0.1", 7400)));
        assert_eq!(
            split_host_port("ringkv-2.ringkv.prod.svc:7400"),
            Some(("ringkv-2.ringkv.prod.svc", 7400))
        );
        assert_eq!(split_host_port("[::1]:7400"), Some(("[::1]", 7400)));
        for bad in [
            "",
            "7400",
            "host",
            "host:",
            "host:70000",
            ":7400",
            "::1:7400",
            "[::1:7400",
            "[nonsense]:7400",
            "a b:7400",
            "host/x:7400",
        ] {
            assert_eq!(split_host_port(bad), None, "{bad:?} accepted");
        }
    }
}
