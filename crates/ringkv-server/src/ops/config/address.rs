//! A node's configured addresses (`host:port`, the host an IP or a name) resolved to sockets
//! once, at start.
//!
//! Names are what a fleet gives its machines: a StatefulSet pod is `ringkv-2.ringkv:7400`
//! wherever it runs. Only what must be a socket is resolved here (what to bind, the gossip
//! address chitchat announces); the member address others use stays the configured string,
//! and every client and peer resolves it again on each connect, so a name that moves to
//! another IP is followed without a layout change.
//!
//! A pod's own DNS record may appear a little after the pod starts, so a name that does not
//! resolve is retried for [`RESOLVE_PATIENCE`] before start-up fails.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::time::Instant;
use tracing::warn;

use super::Config;
use crate::error::{Error, Result};

/// How long start-up waits for a configured name to resolve.
pub const RESOLVE_PATIENCE: Duration = Duration::from_secs(30);

/// The node's addresses, resolved.
#[derive(Clone, Debug)]
pub struct Addresses {
    /// What the data (TCP) and gossip (UDP) listeners bind.
    pub listen: SocketAddr,
    /// The member address: what the layout lists and clients connect to, as configured.
    pub advertise: String,
    /// The advertised address resolved: what gossip announces, and the source address of
    /// this node's connections to its peers.
    pub gossip: SocketAddr,
    /// What the admin endpoint binds, if it is on.
    pub admin: Option<SocketAddr>,
}

impl Addresses {
    /// Resolves `config`'s addresses, waiting up to [`RESOLVE_PATIENCE`] for each name.
    pub async fn resolve(config: &Config) -> Result<Addresses> {
        let listen = resolve("listen", &config.listen, RESOLVE_PATIENCE).await?;
        let advertise = config.advertised().to_string();
        let gossip = if config.advertise.is_some() {
            resolve("advertise", &advertise, RESOLVE_PATIENCE).await?
        } else {
            listen
        };
        if gossip.ip().is_unspecified() {
            return Err(Error::config(
                "advertise",
                format!(
                    "{advertise} resolves to {gossip} (any address): set advertise to an \
                     address peers can reach"
                ),
            ));
        }
        let admin = match &config.admin_listen {
            Some(addr) => Some(resolve("admin_listen", addr, RESOLVE_PATIENCE).await?),
            None => None,
        };
        Ok(Addresses {
            listen,
            advertise,
            gossip,
            admin,
        })
    }
}

/// The first socket address `addr` resolves to, retrying a name that does not resolve yet
/// for up to `patience`.
pub async fn resolve(setting: &'static str, addr: &str, patience: Duration) -> Result<SocketAddr> {
    if let Ok(socket) = addr.parse::<SocketAddr>() {
        return Ok(socket);
    }
    let deadline = Instant::now() + patience;
    let mut pause = Duration::from_millis(100);
    loop {
        let reason = match tokio::net::lookup_host(addr).await {
            Ok(mut found) => match found.next() {
                Some(socket) => return Ok(socket),
                None => "no address found".to_string(),
            },
            Err(e) => e.to_string(),
        };
        if Instant::now() + pause > deadline {
            return Err(Error::Resolve {
                setting,
                addr: addr.to_string(),
                reason,
            });
        }
        warn!(setting, addr, %reason, "address does not resolve yet; retrying");
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(2));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn names_resolve_and_an_unresolvable_one_fails_naming_its_setting() {
        let config = Config {
            listen: "localhost:0".into(),
            advertise: Some("localhost:7400".into()),
            admin_listen: Some("127.0.0.1:9100".into()),
            ..Config::default()
        };
        let resolved = Addresses::resolve(&config).await.expect("resolve");
        assert!(resolved.listen.ip().is_loopback(), "{resolved:?}");
        assert_eq!(resolved.advertise, "localhost:7400", "kept as configured");
        assert_eq!(resolved.gossip.port(), 7400);
        assert_eq!(
            resolved.admin,
            Some("127.0.0.1:9100".parse().expect("addr"))
        );

        // `.invalid` never resolves (RFC 6761).
        let missing = resolve("advertise", "ringkv.invalid:7400", Duration::ZERO).await;
        match missing {
            Err(Error::Resolve { setting, addr, .. }) => {
                assert_eq!(
                    (setting, addr.as_str()),
                    ("advertise", "ringkv.invalid:7400")
                );
            }
            other => panic!("expected a resolve error, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn advertising_the_any_address_is_refused() {
        let config = Config {
            listen: "0.0.0.0:7400".into(),
            ..Config::default()
        };
        assert!(matches!(
            Addresses::resolve(&config).await,
            Err(Error::Config { .. })
        ));
    }
}
