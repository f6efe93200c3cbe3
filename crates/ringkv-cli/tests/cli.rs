//! The `ringkv` binary against a real three-node cluster.

use std::process::Command;

use ringkv_tests::{ClusterSpec, TestCluster};
use serde_json::Value;

fn ringkv(cluster: &TestCluster, args: &[&str]) -> (bool, String, String) {
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

fn json(cluster: &TestCluster, args: &[&str]) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let (ok, stdout, stderr) = ringkv(cluster, &all);
    assert!(ok, "ringkv {args:?} failed: {stderr}");
    serde_json::from_str(&stdout).expect("JSON output")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_put_delete_status_and_ring_from_the_command_line() -> anyhow::Result<()> {
    let mut cluster = TestCluster::start(ClusterSpec::default()).await?;

    let put = json(&cluster, &["put", "greeting", "hello"]);
    assert!(
        put["home"].as_array().is_some_and(|h| h.len() >= 2),
        "{put}"
    );
    let got = json(&cluster, &["get", "greeting"]);
    assert_eq!(got["siblings"], serde_json::json!(["hello"]));
    let context = got["context"].as_str().expect("context").to_string();

    // Two writes from the same context become siblings, shown as such.
    json(&cluster, &["put", "greeting", "hi", "--context", &context]);
    json(&cluster, &["put", "greeting", "hey", "--context", &context]);
    let both = json(&cluster, &["get", "greeting", "--r", "3"]);
    assert_eq!(both["siblings"].as_array().map(Vec::len), Some(2), "{both}");
    let (ok, text, _) = ringkv(&cluster, &["get", "greeting", "--r", "3"]);
    assert!(ok && text.contains("sibling 2:"), "{text}");

    let merged = both["context"].as_str().expect("context").to_string();
    json(&cluster, &["delete", "greeting", "--context", &merged]);
    assert_eq!(json(&cluster, &["get", "greeting"])["found"], false);

    // Status: every member up, ownership summing to 100%.
    let status = json(&cluster, &["status"]);
    let members = status["members"].as_array().expect("members");
    assert_eq!(members.len(), 3);
    assert!(members.iter().all(|m| m["state"] == "up"), "{status}");
    let owned: f64 = members.iter().filter_map(|m| m["ownership"].as_f64()).sum();
    assert!((owned - 1.0).abs() < 1e-6, "{owned}");
    let (ok, table, _) = ringkv(&cluster, &["status"]);
    assert!(
        ok && table.contains("owns") && table.lines().count() == 5,
        "{table}"
    );

    // The ring of a key: three home replicas; one shows down once it is killed.
    let ring = json(&cluster, &["ring", "--key", "greeting"]);
    let list = ring["preference_list"].as_array().expect("list");
    assert_eq!(list.len(), 3);
    assert!(list.iter().all(|r| r["role"] == "home"));
    cluster.kill(0);
    let down = ringkv_tests::eventually(std::time::Duration::from_secs(20), || async {
        let status = json(&cluster, &["status"]);
        status["members"]
            .as_array()
            .is_some_and(|m| m.iter().filter(|x| x["state"] == "down").count() == 1)
    })
    .await;
    assert!(down, "status never showed the killed node down");

    // Bad input: a clear message and a non-zero exit, no panic.
    let (ok, _, err) = ringkv(&cluster, &["put", "k", "v", "--context", "é1"]);
    assert!(!ok && err.contains("--context"), "{err}");
    let (ok, _, err) = ringkv(&cluster, &["get", "k", "--r", "9"]);
    assert!(!ok && err.contains("r = 9"), "{err}");
    Ok(())
}
