//! `ringkv-bench`: YCSB workloads against ringkv and its peers, and the floor under them.
//!
//! ```text
//! ringkv-bench load -P workloads/workloada --db ringkv --hosts 127.0.0.1:7401
//! ringkv-bench run  -P workloads/workloada --db ringkv --hosts 127.0.0.1:7401 --threads 16
//! ringkv-bench run  -P workloads/workloadc --db redis --hosts 127.0.0.1:6379 --duration 10
//! ringkv-bench floor --mode fan-out --threads 1 --duration 5
//! ringkv-bench sessions --hosts 127.0.0.1:7401 --threads 16 --duration 30 --users 100000
//! ```
//!
//! - `generator`, `props`, `workload`: YCSB's CoreWorkload and its generators, ported.
//! - `target`: the stores (`ringkv`, `ringkv-proxy`, `redis`, `etcd`).
//! - `runner`: workers, pacing (`--target`), status lines; `measure`: HdrHistogram reports.
//! - `floor`: echo servers with ringkv's framing, the denominators of every ratio.
//! - `cpu`: CPU time of the client and the servers per operation.
//! - `sessions`: the web-session workload (create, read with a touch, update, logout or
//!   expire), ringkv only.

mod cpu;
mod floor;
mod generator;
mod measure;
mod props;
mod runner;
mod sessions;
mod target;
mod workload;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};

use crate::measure::Report;
use crate::props::Props;
use crate::runner::{Phase, Plan};
use crate::target::{Kind, Spec, Target};
use crate::workload::Workload;

#[derive(Debug, Parser)]
#[command(
    name = "ringkv-bench",
    version,
    about = "YCSB workloads against ringkv, Redis and etcd, and the loopback floor"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Insert the workload's records (YCSB's load phase).
    Load(PhaseArgs),
    /// Run the workload's operation mix (YCSB's transaction phase).
    Run(PhaseArgs),
    /// Measure a floor: echo servers with ringkv's framing and no store.
    Floor(FloorArgs),
    /// The web-session workload: Zipfian users, sessions created with a time to live, read
    /// with a touch, updated, ended by a logout or left to expire.
    Sessions(SessionArgs),
    /// An echo server for `floor` (started by it; exits when its standard input closes).
    #[command(hide = true)]
    EchoServer(EchoArgs),
}

#[derive(Debug, Args)]
struct PhaseArgs {
    /// A YCSB workload property file; several are merged in order.
    #[arg(short = 'P', value_name = "FILE")]
    files: Vec<PathBuf>,
    /// A property over the files', as `key=value`.
    #[arg(short = 'p', value_name = "KEY=VALUE")]
    props: Vec<String>,
    /// The store to run against.
    #[arg(long, value_enum, default_value = "ringkv")]
    db: Kind,
    /// Addresses of the store's servers, comma separated.
    #[arg(long, value_delimiter = ',', default_value = "127.0.0.1:7401")]
    hosts: Vec<String>,
    /// Concurrent operations (YCSB's client threads).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Ops/s over all threads; latencies are then measured from each operation's intended
    /// start (coordinated omission corrected).
    #[arg(long)]
    target: Option<f64>,
    /// Stop after this many seconds, whatever `operationcount` says.
    #[arg(long)]
    duration: Option<f64>,
    /// ringkv's read and write quorums (default: the bucket's).
    #[arg(long)]
    r: Option<u8>,
    #[arg(long)]
    w: Option<u8>,
    /// ringkv: replicas that must have each write on disk before it is acknowledged.
    #[arg(long)]
    dw: Option<u8>,
    /// Deadline of one operation, in milliseconds.
    #[arg(long, default_value_t = 5000)]
    timeout_ms: u64,
    /// Seconds between status lines on stderr (0: none).
    #[arg(long, default_value_t = 2.0)]
    status_interval: f64,
    /// Server processes whose CPU time to count per operation (with the client's own).
    #[arg(long, value_delimiter = ',')]
    server_pids: Vec<u32>,
    /// Also write the report as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Runtime threads of the client (default: 1 for one operation at a time, else 2).
    #[arg(long)]
    runtime_threads: Option<usize>,
}

#[derive(Debug, Args)]
struct FloorArgs {
    #[arg(long, value_enum)]
    mode: floor::Mode,
    #[arg(long, default_value_t = 1)]
    threads: usize,
    #[arg(long, default_value_t = 5.0)]
    duration: f64,
    /// Where the fsync floor's servers write (the disk ringkvd's data would be on).
    #[arg(long, default_value = ".")]
    fsync_dir: PathBuf,
    #[arg(long)]
    json: Option<PathBuf>,
    #[arg(long)]
    runtime_threads: Option<usize>,
}

#[derive(Debug, Args)]
struct SessionArgs {
    /// Addresses of ringkv nodes, comma separated.
    #[arg(long, value_delimiter = ',', default_value = "127.0.0.1:7401")]
    hosts: Vec<String>,
    /// The bucket sessions live in.
    #[arg(long, default_value = "default")]
    bucket: String,
    /// Users, each with at most one session at a time, picked Zipfian.
    #[arg(long, default_value_t = 100_000)]
    users: u64,
    /// Concurrent requests.
    #[arg(long, default_value_t = 16)]
    threads: usize,
    /// Seconds to run.
    #[arg(long, default_value_t = 30.0)]
    duration: f64,
    /// Stop once this many sessions were created (0: run for the duration).
    #[arg(long, default_value_t = 0)]
    sessions: u64,
    /// A session's time to live, extended by every read (seconds).
    #[arg(long, default_value_t = 1800.0)]
    ttl: f64,
    /// Requests per session before it ends.
    #[arg(long, default_value_t = 10)]
    requests: u32,
    /// One request in this many updates the session (0: none).
    #[arg(long, default_value_t = 5)]
    update_every: u32,
    /// The share of sessions ended by a logout (a delete); the others expire.
    #[arg(long, default_value_t = 0.5)]
    logout_share: f64,
    /// Bytes per session.
    #[arg(long, default_value_t = 1000)]
    value_len: usize,
    /// Deadline of one operation, in milliseconds.
    #[arg(long, default_value_t = 5000)]
    timeout_ms: u64,
    /// Also write the report as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct EchoArgs {
    #[arg(long)]
    listen: SocketAddr,
    #[arg(long)]
    fsync_file: Option<PathBuf>,
    #[arg(long, value_delimiter = ',')]
    forward: Vec<String>,
    #[arg(long, default_value_t = 1)]
    quorum: usize,
}

fn runtime(threads: usize) -> anyhow::Result<tokio::runtime::Runtime> {
    let mut builder = if threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(threads);
        b
    };
    Ok(builder.enable_all().build()?)
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Load(args) => phase(Phase::Load, args),
        Command::Run(args) => phase(Phase::Run, args),
        Command::Floor(args) => {
            let threads = args
                .runtime_threads
                .unwrap_or(if args.threads > 1 { 2 } else { 1 });
            let duration = Duration::from_secs_f64(args.duration.max(0.1));
            let report = runtime(threads)?.block_on(floor::run(
                args.mode,
                args.threads,
                duration,
                &args.fsync_dir,
            ))?;
            emit(&report, args.json.as_deref())
        }
        Command::Sessions(args) => session_run(args),
        Command::EchoServer(args) => {
            let config = floor::EchoConfig {
                fsync_file: args.fsync_file,
                forward: args.forward,
                quorum: args.quorum,
            };
            runtime(2)?.block_on(floor::echo_server(args.listen, config))
        }
    }
}

fn phase(phase: Phase, args: PhaseArgs) -> anyhow::Result<()> {
    let mut props = Props::default();
    for file in &args.files {
        props.load_file(file)?;
    }
    for pair in &args.props {
        props.set_override(pair)?;
    }
    let workload = Arc::new(Workload::from_props(&props)?);
    let name = args
        .files
        .last()
        .and_then(|f| f.file_name())
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_else(|| "custom".into());
    let plan = Plan {
        phase,
        threads: args.threads.max(1),
        operations: match phase {
            Phase::Load => 0,
            Phase::Run => workload.operation_count,
        },
        duration: args.duration.map(|s| Duration::from_secs_f64(s.max(0.0))),
        target: args.target,
        status_interval: Duration::from_secs_f64(args.status_interval.max(0.0)),
        max_printed_errors: 10,
    };
    if phase == Phase::Run && plan.operations == 0 && plan.duration.is_none() {
        anyhow::bail!("set operationcount (-p operationcount=N) or --duration");
    }
    let spec = Spec {
        kind: args.db,
        hosts: args.hosts.clone(),
        r: args.r,
        w: args.w,
        dw: args.dw,
        timeout: Duration::from_millis(args.timeout_ms),
    };
    let threads = args
        .runtime_threads
        .unwrap_or(if args.threads > 1 { 2 } else { 1 });
    let report = runtime(threads)?.block_on(async {
        let target = Target::connect(&spec).await?;
        let me = [std::process::id()];
        let before = (cpu::total_time(&me), cpu::total_time(&args.server_pids));
        let mut report = runner::run(&target, workload, plan, (args.db.name(), &name)).await?;
        let client = cpu::total_time(&me).saturating_sub(before.0);
        let servers = cpu::total_time(&args.server_pids).saturating_sub(before.1);
        let ok = Report::successes(&report.ops);
        report.cpu = Some(measure::CpuSummary::new(client, servers, ok));
        anyhow::Ok(report)
    })?;
    emit(&report, args.json.as_deref())?;
    let errors: u64 = report.ops.values().map(|s| s.errors).sum();
    if errors > 0 && errors * 100 > report.operations {
        anyhow::bail!("{errors} of {} operations failed", report.operations);
    }
    Ok(())
}

fn session_run(args: SessionArgs) -> anyhow::Result<()> {
    let plan = sessions::SessionPlan {
        users: args.users,
        threads: args.threads.max(1),
        duration: Duration::from_secs_f64(args.duration.max(0.0)),
        sessions: args.sessions,
        ttl: Duration::from_secs_f64(args.ttl.max(0.001)),
        requests: args.requests,
        update_every: args.update_every,
        logout_share: args.logout_share,
        value_len: args.value_len,
    };
    let (report, counts) = runtime(2)?.block_on(async {
        let config =
            ringkv::ClientConfig::default().with_timeout(Duration::from_millis(args.timeout_ms));
        let client = ringkv::Client::builder()
            .seeds(args.hosts.clone())
            .config(config)
            .build()
            .await?;
        sessions::run(client.bucket(args.bucket.clone()), plan).await
    })?;
    emit(&report, args.json.as_deref())?;
    println!("[SESSIONS], Created, {}", counts.created);
    println!("[SESSIONS], LoggedOut, {}", counts.logged_out);
    println!("[SESSIONS], Abandoned, {}", counts.abandoned);
    println!("[SESSIONS], ExpiredInUse, {}", counts.expired_in_use);
    let errors: u64 = report.ops.values().map(|s| s.errors).sum();
    if errors > 0 && errors * 100 > report.operations {
        anyhow::bail!("{errors} of {} operations failed", report.operations);
    }
    Ok(())
}

fn emit(report: &Report, json: Option<&std::path::Path>) -> anyhow::Result<()> {
    print!("{}", report.to_ycsb_text());
    if let Some(path) = json {
        let text = serde_json::to_string_pretty(report)?;
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
