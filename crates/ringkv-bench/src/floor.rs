//! The floor: what the hardware allows, measured with ringkv's own framing and no store.
//!
//! `ringkv-bench floor` starts tiny echo servers (this binary's hidden `echo-server`
//! command, as separate processes like real nodes) on loopback and drives them with
//! ringkv's connection code (`ringkv::transport::Pool`: the same handshake, the same CBOR
//! frames, one multiplexed connection per server):
//!
//! - `ping-pong`: a `Get` to one server, answered with a 1 KiB value;
//! - `fan-out`: the same `Get` to three servers, done when two answered (R=2 of N=3 sent to
//!   every replica, as a read repair sample does);
//! - `fan-out-r`: the `Get` to two of the three servers only (a different two each time, as
//!   keys' preference lists spread reads), done when both answered: what a quorum read of R=2
//!   that asks only R replicas costs at least;
//! - `proxy`: the `Get` to a forwarding server that fans it out to the three and answers
//!   when two did (what proxy mode adds: one more hop);
//! - `fsync`: a 1 KiB `Merge` to three servers that each append it to a file and
//!   `fdatasync` before answering, done when two answered (W=2), one sync per request and
//!   never grouped.
//!
//! Every target in the comparison is divided by one of these, measured in the same run on the
//! same machine: only such ratios mean anything on two shared cores.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use bytes::Bytes;
use futures::SinkExt;
use futures::stream::{FuturesUnordered, StreamExt};
use ringkv::transport::{Pool, write_batched};
use ringkv_core::wire::{
    ClientFrame, FrameCodec, PROTOCOL_VERSION, Request, Response, ResponseFrame, ServerFrame,
    Welcome, WireError,
};
use ringkv_core::{Dot, NodeId, RingEpoch, SiblingSet};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;
use tokio_util::codec::Framed;

use crate::measure::{CpuSummary, Measurements, Report};

/// The floors, from `--mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    PingPong,
    FanOut,
    FanOutR,
    Proxy,
    Fsync,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::PingPong => "floor-ping-pong",
            Mode::FanOut => "floor-fan-out",
            Mode::FanOutR => "floor-fan-out-r",
            Mode::Proxy => "floor-proxy",
            Mode::Fsync => "floor-fsync",
        }
    }
}

/// The payload size of every floor request or answer.
pub const PAYLOAD: usize = 1024;

fn payload_state() -> SiblingSet {
    let dot = Dot {
        actor: NodeId(1).into(),
        counter: 1,
    };
    SiblingSet::lww(dot, 0, Some(Bytes::from(vec![b'x'; PAYLOAD])))
}

/// What an echo server does with each request.
#[derive(Debug, Clone, Default)]
pub struct EchoConfig {
    /// Append each `Merge` to this file and `fdatasync` it before answering.
    pub fsync_file: Option<PathBuf>,
    /// Forward each request to these servers and answer once `quorum` of them did.
    pub forward: Vec<String>,
    pub quorum: usize,
}

/// Runs an echo server on `listen` until standard input closes (its parent is gone). Prints
/// the bound address on standard output first.
pub async fn echo_server(listen: SocketAddr, config: EchoConfig) -> anyhow::Result<()> {
    let listener = TcpListener::bind(listen).await?;
    println!("{}", listener.local_addr()?);
    std::io::stdout().flush()?;
    let file = match &config.fsync_file {
        Some(path) => Some(Arc::new(Mutex::new(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("opening {}", path.display()))?,
        ))),
        None => None,
    };
    let shared = Arc::new(Echo {
        answer: Response::Value {
            state: Some(payload_state()),
        },
        file,
        pool: Pool::new(),
        config,
    });
    let mut stdin = tokio::io::stdin();
    let mut sink = [0u8; 64];
    loop {
        tokio::select! {
            read = stdin.read(&mut sink) => if matches!(read, Ok(0) | Err(_)) { return Ok(()) },
            accepted = listener.accept() => {
                let (stream, _) = accepted?;
                let _ = stream.set_nodelay(true);
                tokio::spawn(echo_connection(stream, shared.clone()));
            }
        }
    }
}

#[derive(Debug)]
struct Echo {
    answer: Response,
    file: Option<Arc<Mutex<std::fs::File>>>,
    pool: Pool,
    config: EchoConfig,
}

impl Echo {
    async fn answer(&self, request: Request) -> Result<Response, WireError> {
        if !self.config.forward.is_empty() {
            return self.forward(request).await;
        }
        match (request, &self.file) {
            (Request::Merge { state, .. }, Some(file)) => {
                let file = file.clone();
                tokio::task::spawn_blocking(move || {
                    let bytes = encoded(&state);
                    let mut file = file.lock().unwrap_or_else(|p| p.into_inner());
                    file.write_all(&bytes)?;
                    file.sync_data()
                })
                .await
                .map_err(|e| storage(e.to_string()))?
                .map_err(|e| storage(e.to_string()))?;
                Ok(Response::Merged)
            }
            (Request::Merge { .. }, None) => Ok(Response::Merged),
            _ => Ok(self.answer.clone()),
        }
    }

    async fn forward(&self, request: Request) -> Result<Response, WireError> {
        let quorum = self.config.quorum;
        let forward: Vec<&String> = self.config.forward.iter().collect();
        quorum_call(&self.pool, &forward, &request, quorum)
            .await
            .ok_or_else(|| storage(format!("fewer than {quorum} of the forwards answered")))
    }
}

fn storage(reason: String) -> WireError {
    WireError::Storage { reason }
}

/// The bytes a store would append for `state`: its CBOR encoding.
fn encoded(state: &SiblingSet) -> Vec<u8> {
    let mut out = Vec::with_capacity(PAYLOAD + 64);
    let _ = ciborium::into_writer(state, &mut out);
    out
}

async fn echo_connection(stream: TcpStream, echo: Arc<Echo>) {
    let mut framed = Framed::new(stream, FrameCodec::<ClientFrame, ServerFrame>::new());
    match framed.next().await {
        Some(Ok(ClientFrame::Hello(hello))) if hello.protocol_version == PROTOCOL_VERSION => {}
        _ => return,
    }
    let welcome = Welcome {
        protocol_version: PROTOCOL_VERSION,
        node: NodeId(1),
        epoch: RingEpoch::default(),
        challenge: None,
        auth_required: false,
    };
    if framed.send(ServerFrame::Welcome(welcome)).await.is_err() {
        return;
    }
    let (mut sink, mut stream) = framed.split();
    let (tx, mut rx) = mpsc::channel::<ServerFrame>(1024);
    let writer = tokio::spawn(async move {
        write_batched(&mut rx, &mut sink).await;
    });
    while let Some(Ok(ClientFrame::Request(request))) = stream.next().await {
        let echo = echo.clone();
        let tx = tx.clone();
        tokio::spawn(async move {
            let body = echo.answer(request.body).await;
            let frame = ResponseFrame {
                id: request.id,
                epoch: RingEpoch::default(),
                body,
            };
            let _ = tx.send(ServerFrame::Response(frame)).await;
        });
    }
    drop(tx);
    let _ = writer.await;
}

/// A child echo server; killed when dropped.
#[derive(Debug)]
struct EchoProcess {
    child: Child,
    addr: String,
}

async fn spawn_echo(args: &[String]) -> anyhow::Result<EchoProcess> {
    let exe = std::env::current_exe().context("locating ringkv-bench")?;
    let mut child = Command::new(exe)
        .arg("echo-server")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("starting an echo server")?;
    let stdout = child.stdout.take().context("echo server stdout")?;
    let mut line = String::new();
    let mut reader = BufReader::new(stdout);
    let read = reader.read_line(&mut line);
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .context("the echo server did not start in time")??;
    let addr = line.trim().to_string();
    if addr.is_empty() {
        bail!("the echo server exited before listening");
    }
    Ok(EchoProcess { child, addr })
}

/// What a floor run needs: its servers, where to send, how many answers to wait for.
struct Setup {
    processes: Vec<EchoProcess>,
    targets: Vec<String>,
    /// How many of `targets` each request goes to (a different set each time).
    send_to: usize,
    quorum: usize,
    request: Request,
    _dir: Option<TempDir>,
}

/// A directory removed when dropped.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn setup(mode: Mode, fsync_dir: &std::path::Path) -> anyhow::Result<Setup> {
    let get = Request::Get {
        bucket: "default".into(),
        key: Bytes::from_static(b"user6284781860667377211"),
    };
    let mut processes = Vec::new();
    let listen = ["--listen".to_string(), "127.0.0.1:0".to_string()];
    let mut dir = None;
    if mode == Mode::Fsync {
        let base = fsync_dir.join(format!("ringkv-floor-{}", std::process::id()));
        std::fs::create_dir_all(&base).with_context(|| format!("creating {}", base.display()))?;
        dir = Some(TempDir(base));
    }
    let servers = if mode == Mode::PingPong { 1 } else { 3 };
    for i in 0..servers {
        let mut args = listen.to_vec();
        if let Some(TempDir(base)) = &dir {
            let file = base.join(format!("{i}.log")).display().to_string();
            args.extend(["--fsync-file".into(), file]);
        }
        processes.push(spawn_echo(&args).await?);
    }
    let backends: Vec<String> = processes.iter().map(|p| p.addr.clone()).collect();
    let (targets, quorum) = match mode {
        Mode::PingPong => (backends, 1),
        Mode::FanOut | Mode::FanOutR | Mode::Fsync => (backends, 2),
        Mode::Proxy => {
            let mut args = listen.to_vec();
            args.extend([
                "--forward".into(),
                backends.join(","),
                "--quorum".into(),
                "2".into(),
            ]);
            let proxy = spawn_echo(&args).await?;
            let target = vec![proxy.addr.clone()];
            processes.push(proxy);
            (target, 1)
        }
    };
    let request = match mode {
        Mode::Fsync => Request::Merge {
            bucket: "default".into(),
            key: Bytes::from_static(b"user6284781860667377211"),
            state: payload_state(),
            hint: None,
            sync: false,
            entry: false,
            ttl_ms: None,
        },
        _ => get,
    };
    let send_to = match mode {
        Mode::FanOutR => quorum,
        _ => targets.len(),
    };
    Ok(Setup {
        processes,
        targets,
        send_to,
        quorum,
        request,
        _dir: dir,
    })
}

/// Runs one floor with `threads` concurrent requests for `duration` (after a short warm-up).
pub async fn run(
    mode: Mode,
    threads: usize,
    duration: Duration,
    fsync_dir: &std::path::Path,
) -> anyhow::Result<Report> {
    let mut setup = setup(mode, fsync_dir).await?;
    let pool = Arc::new(Pool::new());
    let pids: Vec<u32> = setup
        .processes
        .iter()
        .filter_map(|p| p.child.id())
        .collect();
    let measurements = Arc::new(Measurements::new(&["READ", "UPDATE"]));
    let name = if mode == Mode::Fsync {
        "UPDATE"
    } else {
        "READ"
    };
    // Warm-up: connections open, code paths hot.
    let warm = Instant::now() + Duration::from_millis(300);
    let mut measure = false;
    let mut cpu_before = (Duration::ZERO, Duration::ZERO);
    let mut started = Instant::now();
    for deadline in [warm, Instant::now() + Duration::from_millis(300) + duration] {
        if measure {
            cpu_before = (
                crate::cpu::total_time(&[std::process::id()]),
                crate::cpu::total_time(&pids),
            );
            started = Instant::now();
        }
        let mut workers = Vec::new();
        for _ in 0..threads.max(1) {
            let pool = pool.clone();
            let targets = setup.targets.clone();
            let request = setup.request.clone();
            let (send_to, quorum) = (setup.send_to, setup.quorum);
            let measurements = measurements.clone();
            workers.push(tokio::spawn(async move {
                let mut first = 0usize;
                while Instant::now() < deadline {
                    let begun = Instant::now();
                    let asked: Vec<&String> = (0..send_to)
                        .map(|i| &targets[(first + i) % targets.len()])
                        .collect();
                    first = first.wrapping_add(1);
                    let ok = quorum_call(&pool, &asked, &request, quorum).await.is_some();
                    if measure {
                        measurements.finish(name, begun.elapsed(), ok);
                    }
                }
            }));
        }
        for worker in workers {
            worker.await?;
        }
        measure = true;
    }
    let elapsed = started.elapsed();
    let client = crate::cpu::total_time(&[std::process::id()]) - cpu_before.0;
    let servers = crate::cpu::total_time(&pids).saturating_sub(cpu_before.1);
    for process in &mut setup.processes {
        let _ = process.child.kill().await;
    }
    let done = measurements.done();
    let ops = measurements.summaries();
    let ok = Report::successes(&ops);
    if ok == 0 {
        bail!("{}: no request succeeded", mode.name());
    }
    Ok(Report {
        target: mode.name().into(),
        workload: "1 KiB".into(),
        phase: "floor".into(),
        threads,
        runtime_ms: elapsed.as_secs_f64() * 1000.0,
        operations: done,
        throughput: done as f64 / elapsed.as_secs_f64().max(1e-9),
        intended: false,
        ops,
        cpu: Some(CpuSummary::new(client, servers, ok)),
    })
}

/// Sends `request` to every target and returns the first answer once `quorum` answered
/// without error (`None` if too few did).
async fn quorum_call(
    pool: &Pool,
    targets: &[&String],
    request: &Request,
    quorum: usize,
) -> Option<Response> {
    let mut pending: FuturesUnordered<_> = targets
        .iter()
        .map(|addr| {
            pool.call(
                addr,
                Duration::from_secs(1),
                RingEpoch::default(),
                request.clone(),
            )
        })
        .collect();
    let mut answered = 0;
    let mut first = None;
    while let Some(result) = pending.next().await {
        if let Ok((response, _)) = result {
            answered += 1;
            first.get_or_insert(response);
            if answered >= quorum {
                return first;
            }
        }
    }
    None
}
