//! [`ProxyClient`]: a thin client that lets the servers coordinate.
//!
//! [`crate::Client`] keeps the ring and coordinates every quorum itself: one network hop from
//! the client to each replica. A `ProxyClient` keeps only the members' addresses and sends
//! each operation whole to one member chosen at random, which coordinates the quorum with the
//! same coordinator code (`Request::Coordinate`) and answers: two hops. It is for programs
//! that cannot keep a ring (short-lived processes, languages without an SDK), and it is what
//! `ringkv-bench` compares client-side coordination against, as the Dynamo paper did.

use std::time::Duration;

use bytes::Bytes;
use ringkv_core::wire::{Coordinated, Request, Response, WireError};
use ringkv_core::{Context, DEFAULT_BUCKET, RingEpoch};

use crate::error::{Error, ProtocolError, Result};
use crate::options::ContextKey;
use crate::transport::{ConnectOptions, Pool};
use crate::value::{Value, WriteReceipt};

/// A client whose operations the servers coordinate. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct ProxyClient {
    /// Every member's address, as the seed listed them when the client connected.
    members: Vec<String>,
    pool: Pool,
    timeout: Duration,
    /// Seals the contexts handed to the application (see [`ProxyClient::with_context_key`]).
    context_key: Option<ContextKey>,
}

impl ProxyClient {
    /// Learns the members' addresses from the first seed that answers.
    pub async fn connect<I, S>(seeds: I, timeout: Duration) -> Result<ProxyClient>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        ProxyClient::connect_with(seeds, timeout, ConnectOptions::default()).await
    }

    /// As [`ProxyClient::connect`], with connections opened as `options` say (a credential
    /// for nodes that authenticate, TLS).
    pub async fn connect_with<I, S>(
        seeds: I,
        timeout: Duration,
        options: ConnectOptions,
    ) -> Result<ProxyClient>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let seeds: Vec<String> = seeds.into_iter().map(Into::into).collect();
        let mut client = ProxyClient {
            members: Vec::new(),
            pool: Pool::with_options(options),
            timeout,
            context_key: None,
        };
        let mut last = String::from("no seed given");
        for seed in &seeds {
            match client.call_on(seed, Request::Ring).await {
                Ok(Response::Ring(snapshot)) => {
                    let addrs: Vec<String> = snapshot
                        .config
                        .members
                        .iter()
                        .map(|m| m.addr.clone())
                        .collect();
                    if !addrs.is_empty() {
                        client.members = addrs;
                        return Ok(client);
                    }
                    last = format!("{seed} belongs to no cluster yet");
                }
                Ok(other) => last = format!("{seed} answered {}", other.kind()),
                Err(e) => last = format!("{seed}: {e}"),
            }
        }
        Err(Error::NoRing {
            tried: seeds,
            reason: last,
        })
    }

    /// Seals the contexts [`ProxyClient::context_to_bytes`] hands out with `key`, and refuses
    /// any [`ProxyClient::context_from_bytes`] is given that this key did not seal for the
    /// same key (as [`crate::ClientConfig::context_key`] does for a [`crate::Client`]).
    pub fn with_context_key(mut self, key: ContextKey) -> ProxyClient {
        self.context_key = Some(key);
        self
    }

    /// The `context` of a read of `key` (default bucket) as opaque bytes to hand to the
    /// application (a cookie, a form field): sealed for that key if the client has a context
    /// key.
    pub fn context_to_bytes(&self, key: &[u8], context: &Context) -> Vec<u8> {
        ContextKey::encode(self.context_key.as_ref(), DEFAULT_BUCKET, key, context)
    }

    /// Parses bytes made by [`ProxyClient::context_to_bytes`] for a write of `key`. With a
    /// context key, bytes that were altered, sealed with another key or for another key, or
    /// not sealed are refused ([`Error::InvalidArgument`]).
    pub fn context_from_bytes(&self, key: &[u8], bytes: &[u8]) -> Result<Context> {
        ContextKey::decode(self.context_key.as_ref(), DEFAULT_BUCKET, key, bytes)
    }

    /// The addresses requests go to.
    pub fn members(&self) -> &[String] {
        &self.members
    }

    async fn call_on(&self, addr: &str, request: Request) -> Result<Response> {
        let call = self
            .pool
            .call(addr, self.timeout, RingEpoch::default(), request);
        match tokio::time::timeout(self.timeout, call).await {
            Ok(result) => result.map(|(response, _epoch)| response),
            Err(_) => Err(Error::Timeout { in_doubt: true }),
        }
    }

    /// Sends `op` to a random member. A member that cannot take it (unreachable, not ready,
    /// shutting down, overloaded: the operation was not started there) is replaced by the
    /// next one, so one node down does not fail a share of the calls.
    async fn coordinate(&self, op: Coordinated) -> Result<Response> {
        let members = &self.members;
        if members.is_empty() {
            return Err(Error::InvalidArgument("the client knows no member".into()));
        }
        let first = rand::random_range(0..members.len());
        let mut last = None;
        for i in 0..members.len() {
            let addr = &members[(first + i) % members.len()];
            match self.call_on(addr, Request::Coordinate(op.clone())).await {
                Err(e) if not_started(&e) => last = Some(e),
                other => return other,
            }
        }
        Err(last.unwrap_or(Error::Timeout { in_doubt: false }))
    }

    /// A quorum read of `key` in the default bucket (`r: None`: the bucket's default).
    pub async fn get(&self, key: impl AsRef<[u8]>, r: Option<u8>) -> Result<Value> {
        let op = Coordinated::Get {
            bucket: DEFAULT_BUCKET.to_string(),
            key: Bytes::copy_from_slice(key.as_ref()),
            r,
        };
        match self.coordinate(op).await? {
            Response::Read { siblings, context } => {
                let context = Context::from_bytes(&context)
                    .map_err(|e| Error::Protocol(ProtocolError::ProxyContext(e)))?;
                Ok(Value::new(siblings, context))
            }
            other => Err(Error::unexpected("coordinate-get", &other)),
        }
    }

    /// A quorum write of `value` (`None` deletes) to `key` in the default bucket.
    pub async fn write(
        &self,
        key: impl AsRef<[u8]>,
        value: Option<Bytes>,
        context: Option<&Context>,
        w: Option<u8>,
        overwrite: bool,
    ) -> Result<WriteReceipt> {
        let op = Coordinated::Write {
            bucket: DEFAULT_BUCKET.to_string(),
            key: Bytes::copy_from_slice(key.as_ref()),
            value,
            context: context.map(|c| Bytes::from(c.to_bytes())),
            w,
            overwrite,
            ttl_ms: None,
        };
        match self.coordinate(op).await? {
            Response::Written { home, fallback } => Ok(WriteReceipt::new(home, fallback)),
            other => Err(Error::unexpected("coordinate-write", &other)),
        }
    }
}

/// Whether the member certainly did not start the operation, so another may take it.
fn not_started(error: &Error) -> bool {
    matches!(
        error,
        Error::Unreachable { .. }
            | Error::Server(
                WireError::NotReady { .. } | WireError::ShuttingDown | WireError::Overloaded { .. }
            )
    )
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use ringkv_core::{Context, Dot, VersionVector};

    use super::ProxyClient;
    use crate::error::Error;
    use crate::options::ContextKey;
    use crate::transport::{ConnectOptions, Pool};

    fn client(key: Option<&str>) -> ProxyClient {
        ProxyClient {
            members: Vec::new(),
            pool: Pool::with_options(ConnectOptions::default()),
            timeout: Duration::from_secs(1),
            context_key: key.and_then(|k| ContextKey::new(k.as_bytes())),
        }
    }

    /// A thin client hands out sealed contexts as the full SDK does, and refuses forged,
    /// misdirected or unsealed ones rather than write with a context that claims too much.
    #[test]
    fn a_thin_clients_contexts_are_sealed_for_their_key_and_forgeries_refused() {
        let mut vv = VersionVector::new();
        vv.observe(Dot {
            actor: ringkv_core::NodeId(7).into(),
            counter: 3,
        });
        let context = Context::new(vv);
        let sealed = client(Some("secret"));
        let bytes = sealed.context_to_bytes(b"cart:x", &context);
        assert_eq!(
            sealed.context_from_bytes(b"cart:x", &bytes).expect("opens"),
            context
        );
        let refused = |result: crate::error::Result<Context>| {
            assert!(
                matches!(result, Err(Error::InvalidArgument(_))),
                "{result:?}"
            )
        };
        refused(sealed.context_from_bytes(b"cart:y", &bytes));
        refused(client(Some("other")).context_from_bytes(b"cart:x", &bytes));
        let plain = client(None).context_to_bytes(b"cart:x", &context);
        refused(sealed.context_from_bytes(b"cart:x", &plain));
        let mut forged = bytes.clone();
        let last = forged.len() - 1;
        forged[last] ^= 1;
        refused(sealed.context_from_bytes(b"cart:x", &forged));
        assert_eq!(
            client(None)
                .context_from_bytes(b"cart:x", &plain)
                .expect("unsealed"),
            context
        );
    }
}
