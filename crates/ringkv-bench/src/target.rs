//! The stores a workload runs against, behind one interface.
//!
//! Each store is used the way its users use it, with a record as one value:
//!
//! - `ringkv`: the SDK, coordinating quorums in the client (one multiplexed connection per
//!   node, shared by every worker). An update is an `overwrite` write (one round of requests,
//!   resolving any siblings); a read-modify-write reads, then writes with the read's context.
//! - `ringkv-proxy`: [`ringkv::ProxyClient`], each operation sent to one random node which
//!   coordinates the same quorum with the SDK's code.
//! - `redis`: `GET`/`SET` on one connection per worker (as `redis-benchmark -c N`).
//! - `etcd`: the v3 gRPC API (`Range`/`Put`), one client (one HTTP/2 connection) per worker.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use bytes::Bytes;
use ringkv::{Client, ClientConfig, ProxyClient, ReadOptions, WriteOptions};

/// Which store, from `--db`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    Ringkv,
    RingkvProxy,
    Redis,
    Etcd,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Ringkv => "ringkv",
            Kind::RingkvProxy => "ringkv-proxy",
            Kind::Redis => "redis",
            Kind::Etcd => "etcd",
        }
    }
}

/// How to reach the store and with which quorums.
#[derive(Debug, Clone)]
pub struct Spec {
    pub kind: Kind,
    pub hosts: Vec<String>,
    pub r: Option<u8>,
    pub w: Option<u8>,
    /// ringkv only: replicas that must have each write on disk.
    pub dw: Option<u8>,
    pub timeout: Duration,
}

/// A connected store, shared by the workers.
#[derive(Debug, Clone)]
pub enum Target {
    Ringkv(Client),
    Proxy(Arc<ProxyClient>, Spec),
    Redis(redis::Client),
    Etcd(Spec),
}

impl Target {
    pub async fn connect(spec: &Spec) -> anyhow::Result<Target> {
        if spec.hosts.is_empty() {
            bail!("--hosts names no address");
        }
        Ok(match spec.kind {
            Kind::Ringkv => {
                let mut config = ClientConfig::default().with_timeout(spec.timeout);
                config.r = spec.r;
                config.w = spec.w;
                config.dw = spec.dw;
                let client = Client::builder()
                    .seeds(spec.hosts.clone())
                    .config(config)
                    .build()
                    .await
                    .context("connecting to ringkv")?;
                Target::Ringkv(client)
            }
            Kind::RingkvProxy => {
                let client = ProxyClient::connect(spec.hosts.clone(), spec.timeout)
                    .await
                    .context("connecting to ringkv (proxy mode)")?;
                Target::Proxy(Arc::new(client), spec.clone())
            }
            Kind::Redis => {
                let url = format!("redis://{}/", spec.hosts[0]);
                Target::Redis(redis::Client::open(url).context("the redis address")?)
            }
            Kind::Etcd => Target::Etcd(spec.clone()),
        })
    }

    /// One worker's handle on the store.
    pub async fn session(&self) -> anyhow::Result<Session> {
        Ok(match self {
            Target::Ringkv(client) => Session::Ringkv(client.clone()),
            Target::Proxy(client, spec) => Session::Proxy {
                client: client.clone(),
                r: spec.r,
                w: spec.w,
            },
            Target::Redis(client) => Session::Redis(
                client
                    .get_multiplexed_async_connection()
                    .await
                    .context("connecting to redis")?,
            ),
            Target::Etcd(spec) => Session::Etcd(Box::new(
                etcd_client::Client::connect(&spec.hosts, None)
                    .await
                    .context("connecting to etcd")?,
            )),
        })
    }
}

/// One worker's connection or handle.
pub enum Session {
    Ringkv(Client),
    Proxy {
        client: Arc<ProxyClient>,
        r: Option<u8>,
        w: Option<u8>,
    },
    Redis(redis::aio::MultiplexedConnection),
    Etcd(Box<etcd_client::Client>),
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = match self {
            Session::Ringkv(_) => "ringkv",
            Session::Proxy { .. } => "ringkv-proxy",
            Session::Redis(_) => "redis",
            Session::Etcd(_) => "etcd",
        };
        f.debug_tuple("Session").field(&name).finish()
    }
}

fn not_found(key: &str) -> anyhow::Error {
    anyhow!("{key} not found")
}

impl Session {
    /// Reads a record; a missing one is an error (the load phase wrote every record).
    pub async fn read(&mut self, key: &str) -> anyhow::Result<()> {
        match self {
            Session::Ringkv(client) => {
                let value = client.get(key).await?;
                if !value.is_found() {
                    return Err(not_found(key));
                }
            }
            Session::Proxy { client, r, .. } => {
                if !client.get(key, *r).await?.is_found() {
                    return Err(not_found(key));
                }
            }
            Session::Redis(con) => {
                let value: Option<Vec<u8>> = redis::cmd("GET").arg(key).query_async(con).await?;
                value.ok_or_else(|| not_found(key))?;
            }
            Session::Etcd(client) => {
                let response = client.get(key, None).await?;
                if response.kvs().is_empty() {
                    return Err(not_found(key));
                }
            }
        }
        Ok(())
    }

    /// Reads several records at once (`batchsize`): ringkv's `get_many` (one frame per
    /// node), Redis's `MGET`; the others read them one after another. A missing record or
    /// a key that fails is an error, as for [`Session::read`].
    pub async fn read_many(&mut self, keys: &[String]) -> anyhow::Result<()> {
        match self {
            Session::Ringkv(client) => {
                for (key, result) in keys.iter().zip(client.get_many(keys).await) {
                    if !result?.is_found() {
                        return Err(not_found(key));
                    }
                }
            }
            Session::Redis(con) => {
                let values: Vec<Option<Vec<u8>>> =
                    redis::cmd("MGET").arg(keys).query_async(con).await?;
                if let Some(missing) = values.iter().position(Option::is_none) {
                    return Err(not_found(&keys[missing]));
                }
            }
            _ => {
                for key in keys {
                    self.read(key).await?;
                }
            }
        }
        Ok(())
    }

    /// Writes a whole record over whatever the key holds.
    pub async fn update(&mut self, key: &str, value: Bytes) -> anyhow::Result<()> {
        self.write(key, value, true).await
    }

    /// Writes a new record.
    pub async fn insert(&mut self, key: &str, value: Bytes) -> anyhow::Result<()> {
        self.write(key, value, false).await
    }

    /// A blind write; on ringkv `overwrite` supersedes whatever the key holds (an update), and
    /// without it the write supersedes nothing (an insert of a new key).
    async fn write(&mut self, key: &str, value: Bytes, overwrite: bool) -> anyhow::Result<()> {
        match self {
            Session::Ringkv(client) => {
                let opts = WriteOptions::default().with_overwrite(overwrite);
                client.put_with(key, value, None, &opts).await?;
            }
            Session::Proxy { client, w, .. } => {
                client.write(key, Some(value), None, *w, overwrite).await?;
            }
            _ => self.set(key, value).await?,
        }
        Ok(())
    }

    /// Reads a record, then writes it back changed. ringkv writes with the read's context, so
    /// the write replaces exactly what was read.
    pub async fn read_modify_write(&mut self, key: &str, value: Bytes) -> anyhow::Result<()> {
        match self {
            Session::Ringkv(client) => {
                let read = client.get_with(key, &ReadOptions::default()).await?;
                client.put(key, value, Some(read.context())).await?;
            }
            Session::Proxy { client, r, w } => {
                let read = client.get(key, *r).await?;
                client
                    .write(key, Some(value), Some(read.context()), *w, false)
                    .await?;
            }
            _ => {
                self.read(key).await?;
                self.set(key, value).await?;
            }
        }
        Ok(())
    }

    async fn set(&mut self, key: &str, value: Bytes) -> anyhow::Result<()> {
        match self {
            Session::Redis(con) => {
                let () = redis::cmd("SET")
                    .arg(key)
                    .arg(value.as_ref())
                    .query_async(con)
                    .await?;
            }
            Session::Etcd(client) => {
                client.put(key, value.to_vec(), None).await?;
            }
            Session::Ringkv(_) | Session::Proxy { .. } => bail!("set is for redis and etcd"),
        }
        Ok(())
    }
}
