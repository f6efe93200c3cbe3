//! Running the `ringkv` binary against a test cluster, shared by the CLI's test files.

use std::process::Command;

use ringkv_tests::TestCluster;
use serde_json::Value;

pub fn ringkv(cluster: &TestCluster, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ringkv"))
        .arg("--seeds")
        .arg(cluster.addrs().join(","))
        .args(args)
        .output()
        .expect("run ringkv");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

pub fn json(cluster: &TestCluster, args: &[&str]) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let (ok, stdout, stderr) = ringkv(cluster, &all);
    assert!(ok, "ringkv {args:?} failed: {stderr}");
    serde_json::from_str(&stdout).expect("JSON output")
}

pub fn json_lines(cluster: &TestCluster, args: &[&str]) -> Vec<Value> {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let (ok, stdout, stderr) = ringkv(cluster, &all);
    assert!(ok, "ringkv {args:?} failed: {stderr}");
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect()
}

/// `cluster commit`, then `handoff --watch` until it says nothing is left, then the cluster
/// settled everywhere; returns `status --json` after it.
pub async fn commit_and_watch(cluster: &TestCluster) -> anyhow::Result<Value> {
    json(cluster, &["cluster", "commit"]);
    let watched = json_lines(cluster, &["handoff", "--watch", "--max-wait", "60"]);
    let last = watched.last().expect("a snapshot");
    assert_eq!(last["finished"], true, "{last}");
    cluster
        .wait_settled(std::time::Duration::from_secs(30))
        .await?;
    Ok(json(cluster, &["status"]))
}
