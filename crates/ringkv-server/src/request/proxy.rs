//! Proxy mode: a node coordinating a thin client's quorum (`Request::Coordinate`).
//!
//! The node runs the SDK's own coordinator: a [`ringkv::Client`] seeded with the node's
//! address, built on first use, kept for the node's life. So a coordinated operation behaves
//! exactly as the same call made by the SDK from the node's host (sloppy quorums, read
//! repair, retries, siblings), with one more network hop between the caller and the quorum.

use std::time::Duration;

use ringkv::transport::ConnectOptions;
use ringkv::{Client, ClientConfig, Context, Error, ReadOptions, WriteOptions};
use ringkv_core::wire::{Coordinated, Response, WireError};
use tokio::sync::OnceCell;

/// The node's embedded coordinator.
#[derive(Debug)]
pub struct Proxy {
    /// The node's own address: the seed the embedded client fetches the ring from.
    seed: String,
    /// How the coordinator connects to the nodes: as the node does (its secret, its TLS).
    connect: ConnectOptions,
    client: OnceCell<Client>,
}

impl Proxy {
    pub fn new(seed: String, connect: ConnectOptions) -> Proxy {
        Proxy {
            seed,
            connect,
            client: OnceCell::new(),
        }
    }

    async fn client(&self) -> Result<&Client, WireError> {
        self.client
            .get_or_try_init(|| async {
                let mut config =
                    ClientConfig::default().with_connect_timeout(Duration::from_secs(1));
                config.connect = self.connect.clone();
                Client::builder()
                    .seeds([self.seed.clone()])
                    .config(config)
                    .build()
                    .await
            })
            .await
            .map_err(|e| WireError::NotReady {
                reason: format!("the node's coordinator has no ring yet: {e}"),
            })
    }

    /// Runs `op` as the SDK would and answers as `Response::Read` or `Response::Written`.
    pub async fn coordinate(&self, op: Coordinated) -> Result<Response, WireError> {
        let client = self.client().await?;
        match op {
            Coordinated::Get { bucket, key, r } => {
                let mut opts = ReadOptions::default();
                opts.r = r;
                let value = client
                    .bucket(bucket)
                    .get_with(key, &opts)
                    .await
                    .map_err(to_wire)?;
                let context = bytes::Bytes::from(value.context().to_bytes());
                Ok(Response::Read {
                    siblings: value.into_siblings(),
                    context,
                })
            }
            Coordinated::Write {
                bucket,
                key,
                value,
                context,
                w,
                overwrite,
                ttl_ms,
            } => {
                let context = context
                    .map(|bytes| Context::from_bytes(&bytes))
                    .transpose()
                    .map_err(|e| WireError::InvalidRequest {
                        reason: format!("context: {e}"),
                    })?;
                let mut opts = WriteOptions::default().with_overwrite(overwrite);
                opts.w = w;
                opts.ttl = ttl_ms.map(std::time::Duration::from_millis);
                let bucket = client.bucket(bucket);
                let receipt = match value {
                    Some(value) => bucket.put_with(key, value, context.as_ref(), &opts).await,
                    None => bucket.delete_with(key, context.as_ref(), &opts).await,
                }
                .map_err(to_wire)?;
                Ok(Response::Written {
                    home: receipt.home,
                    fallback: receipt.fallback,
                })
            }
        }
    }
}

/// The SDK's error as the thin client should see it: a replica's own error as it was, a
/// failed quorum as `Coordination`.
fn to_wire(error: Error) -> WireError {
    match error {
        Error::Server(wire) => wire,
        Error::ContextRequired { siblings } => WireError::ContextRequired { siblings },
        Error::InvalidArgument(reason) => WireError::InvalidRequest { reason },
        other => {
            let (required, succeeded) = match &other {
                Error::Quorum {
                    required,
                    succeeded,
                    ..
                } => (Some(*required), Some(*succeeded)),
                Error::Unavailable { required, .. } => (Some(*required), None),
                _ => (None, None),
            };
            let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
            WireError::Coordination {
                in_doubt: other.is_in_doubt(),
                reason: other.to_string(),
                required: required.map(count),
                succeeded: succeeded.map(count),
            }
        }
    }
}
