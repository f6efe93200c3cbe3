//! `ringkv._native`: the Rust SDK, exposed to Python.
//!
//! This module is private. The public API is the pure-Python package around it (`ringkv`,
//! `ringkv.asyncio`), which gives both clients the same names and turns [`NativeError`] into
//! the exception hierarchy under `ringkv.RingkvError`. Everything here is thin: the ring,
//! quorums and repair are the SDK's, once.
//!
//! - One tokio runtime for the process (pyo3-async-runtimes'), shared by every client.
//! - Blocking methods release the GIL around the whole call (`Python::detach`), so other
//!   Python threads run while one waits on the network.
//! - `*_async` methods return asyncio awaitables; cancelling the asyncio task drops the Rust
//!   future, which abandons its requests cleanly (the SDK's waiters deregister on drop).

mod bridge;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bridge::Bridge;

use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use ringkv::{
    Client, ClientConfig, ClientTls, ContextKey, Credential, Error, ReadOptions, WriteOptions,
};

create_exception!(
    _native,
    NativeError,
    PyException,
    "Raised by the native module with (kind, message, fields); the ringkv package turns it into a RingkvError subclass."
);

/// A read: its live siblings and the context to write with.
type ReadResult = (Vec<Vec<u8>>, Vec<u8>);
/// One key of a batched read: its read, or the `(kind, message, fields)` of its error (as
/// `NativeError` carries them).
type ManyResult = (Option<ReadResult>, Option<(&'static str, String, Fields)>);
/// A write receipt: node ids (hex) of home and fallback acknowledgements, then what the
/// write left: the live siblings at the stamping replica and the context covering them.
type Receipt = (Vec<String>, Vec<String>, Vec<Vec<u8>>, Vec<u8>);

/// The SDK client. Thread-safe and cheap to share; `close()` is idempotent.
#[pyclass(module = "ringkv._native", frozen)]
struct NativeClient {
    client: Client,
    closed: AtomicBool,
    /// The completion bridge of the event loop this client was last awaited on.
    bridge: Mutex<Option<Arc<Bridge>>>,
}

/// The optional quorum and timeout settings every constructor takes.
/// TLS settings from Python: the CA file, the client certificate and key files (mutual
/// TLS), the name to check the nodes' certificates against.
type TlsFiles = (String, Option<String>, Option<String>, Option<String>);

#[allow(clippy::too_many_arguments)]
fn config(
    r: Option<u8>,
    w: Option<u8>,
    pr: Option<u8>,
    pw: Option<u8>,
    timeout: Option<f64>,
    token: Option<String>,
    tls: Option<TlsFiles>,
    context_key: Option<Vec<u8>>,
) -> PyResult<ClientConfig> {
    let mut config = ClientConfig::default();
    if let Some(key) = context_key {
        let key = ContextKey::new(key)
            .ok_or_else(|| into_py(Error::InvalidArgument("the context key is empty".into())))?;
        config.context_key = Some(key);
    }
    if let Some((ca, cert, key, server_name)) = tls {
        let identity = match (&cert, &key) {
            (Some(cert), Some(key)) => Some((Path::new(cert), Path::new(key))),
            (None, None) => None,
            _ => {
                return Err(into_py(Error::InvalidArgument(
                    "a TLS client certificate needs its key, and a key its certificate".into(),
                )));
            }
        };
        let tls = ClientTls::from_files(Path::new(&ca), identity, server_name.as_deref())
            .map_err(into_py)?;
        config.connect.tls = Some(tls);
    }
    if let Some(token) = token {
        config.connect.credential = Some(Credential::token(&token).map_err(into_py)?);
    }
    config.r = r;
    config.w = w;
    config.pr = pr;
    config.pw = pw;
    if let Some(t) = timeout {
        config.timeout = seconds(t)?;
    }
    Ok(config)
}

fn seconds(value: f64) -> PyResult<Duration> {
    seconds_of("timeout", value)
}

/// `value` seconds as a duration, or an error naming the argument `name`.
fn seconds_of(name: &str, value: f64) -> PyResult<Duration> {
    Duration::try_from_secs_f64(value).map_err(|_| {
        into_py(Error::InvalidArgument(format!(
            "{name} must be a positive number of seconds, not {value}"
        )))
    })
}

async fn connect(seeds: Vec<String>, config: ClientConfig) -> PyResult<NativeClient> {
    let client = Client::builder()
        .seeds(seeds)
        .config(config)
        .build()
        .await
        .map_err(into_py)?;
    Ok(NativeClient {
        client,
        closed: AtomicBool::new(false),
        bridge: Mutex::new(None),
    })
}

#[pymethods]
impl NativeClient {
    /// Connects (blocking, without the GIL): fetches the ring from the seeds.
    #[new]
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (seeds, r=None, w=None, pr=None, pw=None, timeout=None, token=None, tls=None, context_key=None))]
    fn new(
        py: Python<'_>,
        seeds: Vec<String>,
        r: Option<u8>,
        w: Option<u8>,
        pr: Option<u8>,
        pw: Option<u8>,
        timeout: Option<f64>,
        token: Option<String>,
        tls: Option<TlsFiles>,
        context_key: Option<Vec<u8>>,
    ) -> PyResult<Self> {
        let config = config(r, w, pr, pw, timeout, token, tls, context_key)?;
        let runtime = pyo3_async_runtimes::tokio::get_runtime();
        py.detach(|| runtime.block_on(connect(seeds, config)))
    }

    /// Connects without blocking the event loop; resolves to a NativeClient.
    #[staticmethod]
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (seeds, r=None, w=None, pr=None, pw=None, timeout=None, token=None, tls=None, context_key=None))]
    fn connect_async<'py>(
        py: Python<'py>,
        seeds: Vec<String>,
        r: Option<u8>,
        w: Option<u8>,
        pr: Option<u8>,
        pw: Option<u8>,
        timeout: Option<f64>,
        token: Option<String>,
        tls: Option<TlsFiles>,
        context_key: Option<Vec<u8>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let config = config(r, w, pr, pw, timeout, token, tls, context_key)?;
        pyo3_async_runtimes::tokio::future_into_py(py, connect(seeds, config))
    }

    #[pyo3(signature = (bucket, key, r=None, pr=None, timeout=None, touch=None))]
    #[allow(clippy::too_many_arguments)]
    fn get(
        &self,
        py: Python<'_>,
        bucket: String,
        key: Vec<u8>,
        r: Option<u8>,
        pr: Option<u8>,
        timeout: Option<f64>,
        touch: Option<f64>,
    ) -> PyResult<ReadResult> {
        let op = self.get_op(bucket, key, read_options(r, pr, timeout, touch)?)?;
        block(py, op)
    }

    #[pyo3(signature = (bucket, key, r=None, pr=None, timeout=None, touch=None))]
    #[allow(clippy::too_many_arguments)]
    fn get_async(
        &self,
        py: Python<'_>,
        bucket: String,
        key: Vec<u8>,
        r: Option<u8>,
        pr: Option<u8>,
        timeout: Option<f64>,
        touch: Option<f64>,
    ) -> PyResult<Py<PyAny>> {
        let op = self.get_op(bucket, key, read_options(r, pr, timeout, touch)?)?;
        self.bridge(py)?.spawn(py, op)
    }

    /// Reads many keys at once (one frame per node): per key, its read or its error.
    #[pyo3(signature = (bucket, keys, r=None, pr=None, timeout=None))]
    fn get_many(
        &self,
        py: Python<'_>,
        bucket: String,
        keys: Vec<Vec<u8>>,
        r: Option<u8>,
        pr: Option<u8>,
        timeout: Option<f64>,
    ) -> PyResult<Vec<ManyResult>> {
        let op = self.get_many_op(bucket, keys, read_options(r, pr, timeout, None)?)?;
        block(py, op)
    }

    #[pyo3(signature = (bucket, keys, r=None, pr=None, timeout=None))]
    fn get_many_async(
        &self,
        py: Python<'_>,
        bucket: String,
        keys: Vec<Vec<u8>>,
        r: Option<u8>,
        pr: Option<u8>,
        timeout: Option<f64>,
    ) -> PyResult<Py<PyAny>> {
        let op = self.get_many_op(bucket, keys, read_options(r, pr, timeout, None)?)?;
        self.bridge(py)?.spawn(py, op)
    }

    /// Writes `value` (None: a delete) with an optional context from an earlier read.
    #[pyo3(signature = (bucket, key, value, context=None, w=None, pw=None, timeout=None, overwrite=false, dw=None, ttl=None))]
    #[allow(clippy::too_many_arguments)]
    fn put(
        &self,
        py: Python<'_>,
        bucket: String,
        key: Vec<u8>,
        value: Option<Vec<u8>>,
        context: Option<Vec<u8>>,
        w: Option<u8>,
        pw: Option<u8>,
        timeout: Option<f64>,
        overwrite: bool,
        dw: Option<u8>,
        ttl: Option<f64>,
    ) -> PyResult<Receipt> {
        let op = self.put_op(
            bucket,
            key,
            value,
            context,
            write_options(w, pw, dw, timeout, overwrite, ttl)?,
        )?;
        block(py, op)
    }

    #[pyo3(signature = (bucket, key, value, context=None, w=None, pw=None, timeout=None, overwrite=false, dw=None, ttl=None))]
    #[allow(clippy::too_many_arguments)]
    fn put_async(
        &self,
        py: Python<'_>,
        bucket: String,
        key: Vec<u8>,
        value: Option<Vec<u8>>,
        context: Option<Vec<u8>>,
        w: Option<u8>,
        pw: Option<u8>,
        timeout: Option<f64>,
        overwrite: bool,
        dw: Option<u8>,
        ttl: Option<f64>,
    ) -> PyResult<Py<PyAny>> {
        let op = self.put_op(
            bucket,
            key,
            value,
            context,
            write_options(w, pw, dw, timeout, overwrite, ttl)?,
        )?;
        self.bridge(py)?.spawn(py, op)
    }

    /// Waits up to `timeout` seconds for the copies writes still send after their quorum
    /// (and read repairs); returns whether all finished. `close` calls it: a process that
    /// exits right after a write would drop them.
    fn flush(&self, py: Python<'_>, timeout: f64) -> PyResult<bool> {
        let timeout = seconds(timeout)?;
        let client = self.client.clone();
        block(py, async move { Ok(client.flush(timeout).await) })
    }

    /// As `flush`, without blocking the event loop.
    fn flush_async<'py>(&self, py: Python<'py>, timeout: f64) -> PyResult<Bound<'py, PyAny>> {
        let timeout = seconds(timeout)?;
        let client = self.client.clone();
        pyo3_async_runtimes::tokio::future_into_py(
            py,
            async move { Ok(client.flush(timeout).await) },
        )
    }

    /// Closes the client's connections. Idempotent; later calls raise a connection error.
    fn close(&self) {
        if !self.closed.swap(true, Ordering::AcqRel) {
            self.client.close();
        }
    }

    #[getter]
    fn closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }
}

impl NativeClient {
    /// The bridge of the running event loop (made on first use in that loop).
    fn bridge(&self, py: Python<'_>) -> PyResult<Arc<Bridge>> {
        let running = py.import("asyncio")?.call_method0("get_running_loop")?;
        let mut slot = self.bridge.lock().unwrap_or_else(|p| p.into_inner());
        match slot.as_ref() {
            Some(bridge) if bridge.is_for(&running) => Ok(bridge.clone()),
            _ => {
                let bridge = Bridge::new(running.unbind());
                *slot = Some(bridge.clone());
                Ok(bridge)
            }
        }
    }

    fn open_client(&self) -> PyResult<Client> {
        if self.closed.load(Ordering::Acquire) {
            return Err(NativeError::new_err((
                "connection",
                "the client is closed".to_string(),
                fields(),
            )));
        }
        Ok(self.client.clone())
    }

    fn get_op(
        &self,
        bucket: String,
        key: Vec<u8>,
        opts: ReadOptions,
    ) -> PyResult<impl Future<Output = PyResult<ReadResult>> + Send + 'static> {
        let client = self.open_client()?;
        Ok(async move {
            let read = client
                .bucket(bucket.clone())
                .get_with(key.clone(), &opts)
                .await
                .map_err(into_py)?;
            let context = client.context_to_bytes(&bucket, &key, read.context());
            Ok((
                read.into_siblings()
                    .into_iter()
                    .map(|b| b.to_vec())
                    .collect(),
                context,
            ))
        })
    }

    fn get_many_op(
        &self,
        bucket: String,
        keys: Vec<Vec<u8>>,
        opts: ReadOptions,
    ) -> PyResult<impl Future<Output = PyResult<Vec<ManyResult>>> + Send + 'static> {
        let client = self.open_client()?;
        Ok(async move {
            let reads = client
                .bucket(bucket.clone())
                .get_many_with(&keys, &opts)
                .await;
            Ok(keys
                .iter()
                .zip(reads)
                .map(|(key, read)| match read {
                    Ok(read) => {
                        let context = client.context_to_bytes(&bucket, key, read.context());
                        let siblings = read.into_siblings().into_iter().map(|b| b.to_vec());
                        (Some((siblings.collect(), context)), None)
                    }
                    Err(e) => (None, Some(error_parts(&e))),
                })
                .collect())
        })
    }

    fn put_op(
        &self,
        bucket: String,
        key: Vec<u8>,
        value: Option<Vec<u8>>,
        context: Option<Vec<u8>>,
        opts: WriteOptions,
    ) -> PyResult<impl Future<Output = PyResult<Receipt>> + Send + 'static> {
        let client = self.open_client()?;
        // Sealed with the client's context key, if it has one: a forged context is refused.
        let context = context
            .map(|c| client.context_from_bytes(&bucket, &key, &c))
            .transpose()
            .map_err(into_py)?;
        Ok(async move {
            let name = bucket.clone();
            let sealed_for = key.clone();
            let bucket = client.bucket(bucket);
            let receipt = match value {
                Some(value) => bucket.put_with(key, value, context.as_ref(), &opts).await,
                None => bucket.delete_with(key, context.as_ref(), &opts).await,
            }
            .map_err(into_py)?;
            let hex = |ids: Vec<ringkv::NodeId>| ids.into_iter().map(|id| id.to_string()).collect();
            let context = client.context_to_bytes(&name, &sealed_for, receipt.written.context());
            let siblings = receipt
                .written
                .into_siblings()
                .into_iter()
                .map(|b| b.to_vec())
                .collect();
            Ok((hex(receipt.home), hex(receipt.fallback), siblings, context))
        })
    }
}

fn read_options(
    r: Option<u8>,
    pr: Option<u8>,
    timeout: Option<f64>,
    touch: Option<f64>,
) -> PyResult<ReadOptions> {
    let mut opts = ReadOptions::default();
    opts.r = r;
    opts.pr = pr;
    opts.timeout = timeout.map(seconds).transpose()?;
    opts.touch = touch.map(|t| seconds_of("touch", t)).transpose()?;
    Ok(opts)
}

fn write_options(
    w: Option<u8>,
    pw: Option<u8>,
    dw: Option<u8>,
    timeout: Option<f64>,
    overwrite: bool,
    ttl: Option<f64>,
) -> PyResult<WriteOptions> {
    let mut opts = WriteOptions::default();
    opts.w = w;
    opts.pw = pw;
    opts.dw = dw;
    opts.timeout = timeout.map(seconds).transpose()?;
    opts.overwrite = overwrite;
    opts.ttl = ttl.map(|t| seconds_of("ttl", t)).transpose()?;
    Ok(opts)
}

/// Runs `op` on the shared runtime, with the GIL released.
fn block<T: Send>(py: Python<'_>, op: impl Future<Output = PyResult<T>> + Send) -> PyResult<T> {
    let runtime = pyo3_async_runtimes::tokio::get_runtime();
    py.detach(|| runtime.block_on(op))
}

/// The structured fields of an error: (required, alive, succeeded, in_doubt, siblings).
type Fields = (
    Option<usize>,
    Option<usize>,
    Option<usize>,
    Option<bool>,
    Option<u32>,
);

fn fields() -> Fields {
    (None, None, None, None, None)
}

/// Turns an SDK error into `NativeError(kind, message, fields)`.
fn into_py(e: Error) -> PyErr {
    NativeError::new_err(error_parts(&e))
}

/// An SDK error as `NativeError` carries it: `(kind, message, fields)`.
fn error_parts(e: &Error) -> (&'static str, String, Fields) {
    let message = e.to_string();
    let (kind, fields): (&'static str, Fields) = match e {
        Error::Quorum {
            required,
            succeeded,
            in_doubt,
            ..
        } => (
            "quorum",
            (
                Some(*required),
                None,
                Some(*succeeded),
                Some(*in_doubt),
                None,
            ),
        ),
        Error::Unavailable {
            required, alive, ..
        } => (
            "unavailable",
            (Some(*required), Some(*alive), None, None, None),
        ),
        Error::Timeout { in_doubt } => ("timeout", (None, None, None, Some(*in_doubt), None)),
        Error::InvalidArgument(_) => ("invalid_argument", fields()),
        Error::ContextRequired { siblings } => (
            "context_required",
            (None, None, None, None, Some(*siblings)),
        ),
        Error::Server(_) => ("server", fields()),
        Error::Unreachable { .. } | Error::Connection { .. } | Error::NoRing { .. } => {
            ("connection", fields())
        }
        Error::Protocol(_) => ("protocol", fields()),
        _ => ("error", fields()),
    };
    (kind, message, fields)
}

/// Registered with `atexit` by the package: see `bridge::at_exit`.
#[pyfunction]
fn _at_exit(py: Python<'_>) {
    bridge::at_exit(py);
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<NativeClient>()?;
    m.add_function(wrap_pyfunction!(_at_exit, m)?)?;
    m.add("NativeError", m.py().get_type::<NativeError>())?;
    Ok(())
}
