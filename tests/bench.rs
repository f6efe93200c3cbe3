//! `ringkv-bench` against a real cluster: YCSB load and run phases through the SDK and in
//! proxy mode, and the floor. The figures are not asserted (tests never assert on time);
//! what is asserted is that every operation of the mix ran and succeeded, and that reports
//! hold what `docs/benchmarks.md` is built from.

use std::path::Path;
use std::process::Command;

use ringkv_tests::{ClusterSpec, TestCluster, workspace_bin};

fn workloads() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../crates/ringkv-bench/workloads")
}

/// Runs `ringkv-bench ARGS --json FILE` and returns the JSON report.
fn bench(args: &[&str], dir: &Path, name: &str) -> anyhow::Result<serde_json::Value> {
    let json = dir.join(format!("{name}.json"));
    let output = Command::new(workspace_bin("ringkv-bench"))
        .args(args)
        .arg("--json")
        .arg(&json)
        .output()?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    anyhow::ensure!(
        output.status.success(),
        "ringkv-bench {args:?} failed: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    anyhow::ensure!(
        stdout.contains("[OVERALL], Throughput(ops/sec), "),
        "no YCSB report: {stdout}"
    );
    Ok(serde_json::from_str(&std::fs::read_to_string(json)?)?)
}

fn ops(report: &serde_json::Value, op: &str) -> (u64, u64) {
    let summary = &report["ops"][op];
    (
        summary["operations"].as_u64().unwrap_or(0),
        summary["errors"].as_u64().unwrap_or(u64::MAX),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ycsb_workloads_run_against_ringkv_and_proxy_mode() -> anyhow::Result<()> {
    let cluster = TestCluster::start(ClusterSpec::default()).await?;
    let hosts = cluster.addrs().join(",");
    let dir = tempfile::tempdir()?;
    let workload = |name: &str| workloads().join(name).display().to_string();
    let common = ["--hosts", &hosts, "--status-interval", "0"];

    let wa = workload("workloada");
    let mut args = vec!["load", "-P", &wa, "-p", "recordcount=200", "--threads", "4"];
    args.extend(common);
    let load = bench(&args, dir.path(), "load")?;
    assert_eq!(ops(&load, "INSERT"), (200, 0));

    // Every key the load wrote is there, at the size YCSB's defaults give.
    let client = cluster.client().await?;
    let read = client.get("user6284781860667377211").await?;
    assert_eq!(read.value().map(|v| v.len()), Some(1000));

    for (db, file) in [("ringkv", "workloada"), ("ringkv-proxy", "workloadf")] {
        let path = workload(file);
        let mut args = vec![
            "run",
            "-P",
            &path,
            "-p",
            "recordcount=200",
            "-p",
            "operationcount=300",
            "--threads",
            "4",
            "--db",
            db,
        ];
        args.extend(common);
        let run = bench(&args, dir.path(), db)?;
        let (reads, read_errors) = ops(&run, "READ");
        let write = if file == "workloada" {
            "UPDATE"
        } else {
            "READ-MODIFY-WRITE"
        };
        let (writes, write_errors) = ops(&run, write);
        assert_eq!((read_errors, write_errors), (0, 0), "{db}: {run}");
        assert_eq!(reads + writes, 300, "{db}: {run}");
        assert!(
            reads > 60 && writes > 60,
            "{db}: a 50/50 mix gave {reads}/{writes}"
        );
        assert!(run["cpu"]["client_ms"].is_number(), "{run}");
    }

    // Workload D inserts new keys and reads them back.
    let wd = workload("workloadd");
    let mut args = vec![
        "run",
        "-P",
        &wd,
        "-p",
        "recordcount=200",
        "-p",
        "operationcount=400",
        "--threads",
        "2",
    ];
    args.extend(common);
    let run = bench(&args, dir.path(), "d")?;
    let (inserts, insert_errors) = ops(&run, "INSERT");
    assert!(inserts > 0 && insert_errors == 0, "{run}");
    assert_eq!(ops(&run, "READ").1, 0, "{run}");

    // Batched reads: each READ is one get_many of 8 keys, and counts as 8 operations.
    let wc = workload("workloadc");
    let mut args = vec![
        "run",
        "-P",
        &wc,
        "-p",
        "recordcount=200",
        "-p",
        "operationcount=50",
        "-p",
        "batchsize=8",
        "--threads",
        "2",
    ];
    args.extend(common);
    let run = bench(&args, dir.path(), "batched")?;
    assert_eq!(ops(&run, "READ"), (50, 0), "{run}");
    assert_eq!(run["operations"].as_u64(), Some(400), "{run}");
    Ok(())
}

#[test]
fn scans_are_refused_with_the_reason() -> anyhow::Result<()> {
    let output = Command::new(workspace_bin("ringkv-bench"))
        .args(["run", "-p", "scanproportion=0.05", "-p", "operationcount=1"])
        .output()?;
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("no range scans"), "{stderr}");
    Ok(())
}

#[test]
fn the_floor_reports_latency_throughput_and_cpu() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let fsync_dir = dir.path().display().to_string();
    for mode in ["fan-out", "proxy", "fsync"] {
        let args = [
            "floor",
            "--mode",
            mode,
            "--threads",
            "2",
            "--duration",
            "0.5",
            "--fsync-dir",
            &fsync_dir,
        ];
        let report = bench(&args, dir.path(), mode)?;
        assert!(report["operations"].as_u64().unwrap_or(0) > 0, "{report}");
        assert!(
            report["cpu"]["per_op_us"].as_f64().unwrap_or(0.0) > 0.0,
            "{report}"
        );
    }
    // The fsync floor cleaned up its files.
    let left: Vec<_> = std::fs::read_dir(dir.path())?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .collect();
    assert!(left.is_empty(), "{left:?}");
    Ok(())
}

/// The session workload: sessions are created, read with a touch, updated, and ended by a
/// logout or left to expire; every kind of operation ran, none failed, and the sessions
/// left behind by users who stopped expire (a two-second time to live).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_session_workload_creates_touches_updates_and_ends_sessions() -> anyhow::Result<()> {
    let cluster = TestCluster::start(ClusterSpec::default()).await?;
    let hosts = cluster.addrs().join(",");
    let dir = tempfile::tempdir()?;
    let args = [
        "sessions",
        "--hosts",
        &hosts,
        "--users",
        "200",
        "--threads",
        "4",
        "--duration",
        "3",
        "--ttl",
        "2",
        "--requests",
        "4",
        "--update-every",
        "3",
        "--value-len",
        "200",
    ];
    let report = bench(&args, dir.path(), "sessions")?;
    for op in ["CREATE", "READ-TOUCH", "UPDATE", "LOGOUT"] {
        let (done, errors) = ops(&report, op);
        assert!(done > 0, "no {op} ran: {report}");
        assert_eq!(errors, 0, "{op} failed: {report}");
    }
    // A session of a user who stopped coming expires on every replica.
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let client = cluster.client().await?;
    let all = ringkv::ReadOptions::default().with_r(3);
    for n in 0..20 {
        for user in 0..200 {
            let read = client.get_with(format!("session:{user}:{n}"), &all).await?;
            assert!(
                !read.is_found(),
                "session {user}:{n} outlived its time to live"
            );
        }
    }
    Ok(())
}
