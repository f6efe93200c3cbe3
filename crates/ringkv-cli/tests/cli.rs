//! The `ringkv` binary against a real three-node cluster.

use std::process::Command;

mod run;

use ringkv_tests::{ClusterSpec, TestCluster};
use serde_json::Value;

use run::{commit_and_watch, json, json_lines, ringkv};

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
    assert_eq!(got["encoding"], "utf-8");
    let context = got["context"].as_str().expect("context").to_string();

    // Binary values: written from a file and from standard input, shown in base64 (the
    // encoding named), read back byte for byte with --output.
    let dir = tempfile::tempdir()?;
    let (value_in, value_out) = (dir.path().join("in.bin"), dir.path().join("out.bin"));
    let binary: Vec<u8> = vec![0, 0x9f, 0x92, 0x96, 0xff, b'\n', 7];
    std::fs::write(&value_in, &binary)?;
    let path = value_in.to_str().expect("utf-8 path");
    json(&cluster, &["put", "blob", "--file", path]);
    let shown = json(&cluster, &["get", "blob"]);
    assert_eq!(shown["encoding"], "base64", "{shown}");
    assert_eq!(
        shown["siblings"],
        serde_json::json!(["AJ+Slv8KBw=="]),
        "{shown}"
    );
    let (ok, text, _) = ringkv(&cluster, &["get", "blob"]);
    assert!(
        ok && text.contains("sibling 1 (base64): AJ+Slv8KBw=="),
        "{text}"
    );
    let out = value_out.to_str().expect("utf-8 path");
    let (ok, _, err) = ringkv(&cluster, &["get", "blob", "--output", out]);
    assert!(ok, "{err}");
    assert_eq!(std::fs::read(&value_out)?, binary);
    let mut put = Command::new(env!("CARGO_BIN_EXE_ringkv"))
        .args([
            "--seeds",
            &cluster.addrs().join(","),
            "put",
            "piped",
            "--file",
            "-",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()?;
    {
        use std::io::Write as _;
        let mut stdin = put.stdin.take().expect("stdin");
        stdin.write_all(&binary)?;
    }
    assert!(put.wait()?.success());
    let (ok, stdout) = {
        let out = Command::new(env!("CARGO_BIN_EXE_ringkv"))
            .args([
                "--seeds",
                &cluster.addrs().join(","),
                "get",
                "piped",
                "--output",
                "-",
            ])
            .output()?;
        (out.status.success(), out.stdout)
    };
    assert!(ok);
    assert_eq!(
        stdout, binary,
        "standard input to standard output, byte for byte"
    );
    let (ok, _, err) = ringkv(&cluster, &["put", "neither"]);
    assert!(
        !ok && err.contains("<VALUE>"),
        "a value or --file is required: {err}"
    );

    // Two writes from the same context become siblings, shown as such.
    json(&cluster, &["put", "greeting", "hi", "--context", &context]);
    json(&cluster, &["put", "greeting", "hey", "--context", &context]);
    let both = json(&cluster, &["get", "greeting", "--r", "3"]);
    assert_eq!(both["siblings"].as_array().map(Vec::len), Some(2), "{both}");
    let (ok, text, _) = ringkv(&cluster, &["get", "greeting", "--r", "3"]);
    assert!(ok && text.contains("sibling 2:"), "{text}");

    // get-many: one JSON line per key, in order; a failing key fails the command after
    // the others are shown.
    let many = json_lines(
        &cluster,
        &["get-many", "greeting", "never-written", "--r", "3"],
    );
    assert_eq!(many.len(), 2, "{many:?}");
    assert_eq!(many[0]["key"], "greeting");
    assert_eq!(many[0]["siblings"], both["siblings"]);
    assert_eq!(many[0]["context"], both["context"]);
    assert_eq!(many[1]["found"], false);
    let too_long = "k".repeat(70 * 1024);
    let (ok, text, err) = ringkv(&cluster, &["--json", "get-many", "greeting", &too_long]);
    assert!(!ok && err.contains("1 of 2 keys"), "{err}");
    let lines: Vec<Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert_eq!(lines[0]["key"], "greeting");
    assert!(lines[1]["error"].is_string(), "{text}");

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

    // With a context key, contexts are printed sealed (for their key), and one altered or
    // unsealed is refused.
    let key_file = cluster.path().join("context.key");
    std::fs::write(&key_file, "app key\n")?;
    let key_arg = key_file.to_string_lossy().into_owned();
    let sealed = ["--context-key-file", key_arg.as_str()];
    let with_key = |args: &[&str]| json(&cluster, &[&sealed[..], args].concat());
    with_key(&["put", "sealed", "one"]);
    let read = with_key(&["get", "sealed"]);
    let context = read["context"].as_str().expect("context").to_string();
    assert!(
        context.starts_with("53"),
        "sealed contexts open with 'S': {context}"
    );
    with_key(&["put", "sealed", "two", "--context", &context]);
    let (head, last) = context.split_at(context.len() - 2);
    let flipped = u8::from_str_radix(last, 16).expect("hex") ^ 1;
    let altered = format!("{head}{flipped:02x}");
    for bad in [altered.as_str(), merged.as_str()] {
        let (ok, _, err) = ringkv(
            &cluster,
            &[&sealed[..], &["put", "sealed", "forged", "--context", bad]].concat(),
        );
        assert!(!ok && err.contains("context"), "{err}");
    }
    let (ok, _, err) = ringkv(
        &cluster,
        &[
            &sealed[..],
            &["put", "other", "moved", "--context", &context],
        ]
        .concat(),
    );
    assert!(!ok && err.contains("seal"), "{err}");

    // Bad input: a clear message and a non-zero exit, no panic.
    let (ok, _, err) = ringkv(&cluster, &["put", "k", "v", "--context", "é1"]);
    assert!(!ok && err.contains("--context"), "{err}");
    let (ok, _, err) = ringkv(&cluster, &["get", "k", "--r", "9"]);
    assert!(!ok && err.contains("r = 9"), "{err}");
    Ok(())
}

/// The lines of JSON `ringkv --json ...` printed (one per snapshot for `handoff --watch`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_is_founded_grown_and_shrunk_from_the_command_line() -> anyhow::Result<()> {
    // No anti-entropy: below, only a read may repair the replica that missed a write.
    let mut cluster = TestCluster::start(ClusterSpec {
        found: false,
        extra_toml: "[anti_entropy]\ninterval_ms = 0\n".into(),
        ..ClusterSpec::default()
    })
    .await?;
    // Nodes that only gossip belong to no cluster: clients are told what to do.
    let (ok, _, err) = ringkv(&cluster, &["get", "k"]);
    assert!(!ok && err.contains("cluster init"), "{err}");
    let founded = json(&cluster, &["cluster", "init"]);
    assert_eq!(founded["members"].as_array().map(Vec::len), Some(3));
    // `cluster init` returns once every node sees every member alive: a client started at
    // once writes to all three replicas (a demo's first run once failed here with
    // "3 replicas required, 2 available", racing gossip).
    let first = cluster.client().await?;
    let all = ringkv::WriteOptions::default().with_w(3);
    first.put_with("first", "v", None, &all).await?;
    drop(first);
    // Founding again what exists is a no-op, so scripts may retry.
    let again = json(&cluster, &["cluster", "init"]);
    assert_eq!(again["done"], "already a cluster of these nodes");
    cluster.wait_converged(3).await?;

    let client = cluster.client().await?;
    let keys: Vec<String> = (0..300).map(|i| format!("cli-{i}")).collect();
    for key in &keys {
        client.put(key, key.clone(), None).await?;
    }

    // Explain a stale replica: node 2 misses a write while it is down, then comes back.
    cluster.kill(2);
    client.put("stale-one", "v", None).await?;
    cluster.restart(2).await?;
    let stale = cluster.nodes[2].addr.to_string();
    let explained = json(&cluster, &["explain", "stale-one"]);
    assert_eq!(
        explained["read_would_repair"],
        serde_json::json!([stale]),
        "{explained}"
    );
    let (ok, text, _) = ringkv(&cluster, &["explain", "stale-one"]);
    assert!(ok && text.contains("a read now would repair"), "{text}");
    // A read of all three replicas repairs it (in the background, so poll), once the client
    // trusts the restarted node again.
    ringkv_tests::until_replicas_answer(&client, 3).await?;
    client
        .get_with("stale-one", &ringkv::ReadOptions::default().with_r(3))
        .await?;
    let repaired = ringkv_tests::eventually(std::time::Duration::from_secs(10), || async {
        json(&cluster, &["explain", "stale-one"])["read_would_repair"] == serde_json::json!([])
    })
    .await;
    assert!(repaired, "the read did not repair {stale}");

    // Grow: join, plan, commit, watch.
    let fourth = cluster.start_node()?;
    cluster.member_of(fourth).await?; // waits until it answers
    let addr = cluster.nodes[fourth].addr.to_string();
    let (ok, _, err) = ringkv(&cluster, &["cluster", "commit"]);
    assert!(!ok && err.contains("nothing is staged"), "{err}");
    // Staged, then dropped: nothing is left to commit.
    json(&cluster, &["cluster", "join", &addr]);
    let cleared = json(&cluster, &["cluster", "clear"]);
    assert_eq!(cleared["staged"], serde_json::json!([]), "{cleared}");
    assert_eq!(
        json(&cluster, &["cluster", "plan"])["staged"],
        serde_json::json!([])
    );
    json(&cluster, &["cluster", "join", &addr, "--weight", "1"]);
    let plan = json(&cluster, &["cluster", "plan"]);
    let nodes = plan["nodes"].as_array().expect("nodes");
    assert_eq!(nodes.len(), 4, "{plan}");
    let newcomer = nodes
        .iter()
        .find(|n| n["address"] == addr.as_str())
        .expect("the newcomer is in the plan");
    assert_eq!(newcomer["share_before"].as_f64(), Some(0.0));
    let after = newcomer["share_after"].as_f64().unwrap_or(0.0);
    assert!((after - 0.25).abs() < 0.05, "{plan}");
    // With n = 3 on four nodes the newcomer holds 3/4 of the keys: a quarter of all copies.
    let moved = plan["moved_fraction"].as_f64().unwrap_or(0.0);
    assert!((moved - 0.25).abs() < 0.05, "{plan}");
    assert!(plan["moved_keys"].as_u64().unwrap_or(0) > 0, "{plan}");
    let (ok, text, _) = ringkv(&cluster, &["cluster", "plan"]);
    assert!(
        ok && text.contains("would move") && text.contains(&addr),
        "{text}"
    );

    let status = commit_and_watch(&cluster).await?;
    assert_eq!(
        status["members"].as_array().map(Vec::len),
        Some(4),
        "{status}"
    );

    // Explain: three home replicas agree, so a read would repair nothing.
    let explained = json(&cluster, &["explain", "cli-7"]);
    let replicas = explained["replicas"].as_array().expect("replicas");
    let homes: Vec<&Value> = replicas.iter().filter(|r| r["role"] == "home").collect();
    assert_eq!(homes.len(), 3, "{explained}");
    assert!(homes.iter().all(|r| r["holds"]["live"] == 1), "{explained}");
    assert_eq!(explained["read_would_repair"], serde_json::json!([]));
    assert_eq!(explained["merged"]["values"], serde_json::json!(["cli-7"]));

    // A weight changed later: the fourth node doubles its share.
    json(&cluster, &["cluster", "weight", &addr, "2"]);
    let plan = json(&cluster, &["cluster", "plan"]);
    let heavier = plan["nodes"]
        .as_array()
        .and_then(|nodes| nodes.iter().find(|n| n["address"] == addr.as_str()))
        .expect("the node is in the plan");
    let (now, then) = (
        heavier["share_before"].as_f64().unwrap_or(0.0),
        heavier["share_after"].as_f64().unwrap_or(0.0),
    );
    // With three copies on four nodes a node holds each key at most once, so its stored
    // share barely grows; what the weight sets is its share as first replica (below).
    assert!(then > now, "weight 2 should store more: {plan}");
    let status = commit_and_watch(&cluster).await?;
    let row = status["members"]
        .as_array()
        .and_then(|m| m.iter().find(|r| r["address"] == addr.as_str()).cloned())
        .expect("status row");
    assert_eq!(row["weight"], 2, "{status}");
    // Weights 2, 1, 1, 1: it is the first replica of 2/5 of the ring.
    let owns = row["ownership"].as_f64().unwrap_or(0.0);
    assert!((owns - 0.4).abs() < 0.05, "{status}");

    // Shrink: the first node leaves, by address.
    let first = cluster.nodes[0].addr.to_string();
    let (ok, _, err) = ringkv(&cluster, &["cluster", "leave", "no-such-node"]);
    assert!(!ok && err.contains("no member"), "{err}");
    json(&cluster, &["cluster", "leave", &first]);
    let status = commit_and_watch(&cluster).await?;
    let members = status["members"].as_array().expect("members");
    assert_eq!(members.len(), 3, "{status}");
    assert!(
        members.iter().all(|m| m["address"] != first.as_str()),
        "{status}"
    );

    // Every key survived both changes, with the node that left gone for good.
    cluster.kill(0);
    client.refresh_ring().await?;
    for key in &keys {
        let read = client.get(key).await?;
        assert_eq!(read.siblings().len(), 1, "{key}");
        assert_eq!(&read.siblings()[0][..], key.as_bytes());
    }
    let (ok, _, err) = ringkv(&cluster, &["cluster", "join", "127.0.0.1:1"]);
    assert!(!ok && err.contains("is ringkvd running there"), "{err}");
    Ok(())
}

/// Two operators change the layout through two nodes at the same moment: the cluster keeps
/// one of the two layouts of that version. Whichever wins, `ringkv` succeeds exactly when its
/// change survived, and says so when it did not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_membership_change_lost_to_a_concurrent_one_is_reported() -> anyhow::Result<()> {
    let mut cluster = TestCluster::start(ClusterSpec::default()).await?;
    let (a, b) = (cluster.start_node()?, cluster.start_node()?);
    let (member_a, member_b) = (cluster.member_of(a).await?, cluster.member_of(b).await?);
    // The other operator, through node 1, at the same moment as `ringkv` through node 0.
    cluster
        .stage(
            1,
            ringkv_core::Change::Join {
                id: member_a.id,
                addr: member_a.addr.clone(),
                weight: 1,
                zone: String::new(),
            },
        )
        .await?;
    let out = Command::new(env!("CARGO_BIN_EXE_ringkv"))
        .arg("--seeds")
        .arg(cluster.nodes[0].addr.to_string())
        .args(["cluster", "join", &member_b.addr])
        .output()?;
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    // Wait until the three members hold one layout.
    let mut agreed = None;
    for _ in 0..100 {
        let mut layouts = Vec::new();
        for i in 0..3 {
            layouts.push(cluster.admin(i, ringkv_core::wire::Request::Layout).await?);
        }
        if layouts.iter().all(|l| l == &layouts[0]) {
            agreed = Some(layouts.swap_remove(0));
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let layout = agreed.expect("the members agree on a layout");
    let kept = layout.staged.iter().any(|c| c.node() == member_b.id);
    assert_eq!(
        out.status.success(),
        kept,
        "ringkv's answer must say whether its change was kept: {stderr} {:?}",
        layout.staged
    );
    if !kept {
        assert!(stderr.contains("replaced this one"), "{stderr}");
    }
    println!(
        "  ringkv's change was {} (layout version {})",
        if kept {
            "kept"
        } else {
            "replaced, and said so"
        },
        layout.version
    );
    Ok(())
}

/// Bucket settings from the command line, held by the cluster: a bucket created with n=2
/// keeps two copies of each key; `bucket set --n 3` is a planned transfer after which every
/// key has its three (and the settings survive every node's config file saying otherwise);
/// the conflict policy cannot be switched; `bucket list` shows the table.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buckets_are_created_listed_and_their_n_raised_from_the_command_line() -> anyhow::Result<()>
{
    let cluster = TestCluster::start(ClusterSpec {
        nodes: 4,
        ..ClusterSpec::default()
    })
    .await?;
    let settle = std::time::Duration::from_secs(60);
    json(
        &cluster,
        &[
            "bucket", "create", "carts", "--n", "2", "--r", "1", "--w", "1",
        ],
    );
    cluster.wait_settled(settle).await?;
    let client = cluster.client().await?;
    client.refresh_ring().await?;
    assert_eq!(client.ring().bucket("carts").n, 2);
    let bucket = client.bucket("carts");
    let keys: Vec<String> = (0..100).map(|i| format!("cart-{i}")).collect();
    for key in &keys {
        bucket.put(key.as_str(), key.clone(), None).await?;
    }
    let placement = cluster.placement(&client.ring(), "carts", &keys).await?;
    assert_eq!(
        (placement.missing_on_homes, placement.left_elsewhere),
        (0, 0)
    );

    json(&cluster, &["bucket", "set", "carts", "--n", "3"]);
    cluster.wait_settled(settle).await?;
    client.refresh_ring().await?;
    assert_eq!(client.ring().bucket("carts").n, 3);
    let placement = cluster.placement(&client.ring(), "carts", &keys).await?;
    assert_eq!(
        (placement.missing_on_homes, placement.left_elsewhere),
        (0, 0),
        "every key on its three homes after the transfer"
    );

    // Lowered again: the copies a home no longer needs are cleaned up once it settles.
    json(
        &cluster,
        &["bucket", "set", "carts", "--n", "2", "--r", "1", "--w", "1"],
    );
    cluster.wait_settled(settle).await?;
    client.refresh_ring().await?;
    let lowered = ringkv_tests::eventually(settle, || async {
        let placement = cluster.placement(&client.ring(), "carts", &keys).await;
        placement.is_ok_and(|p| (p.missing_on_homes, p.left_elsewhere) == (0, 0))
    })
    .await;
    assert!(lowered, "copies left after lowering n");

    let (ok, _, stderr) = ringkv(&cluster, &["bucket", "set", "carts", "--conflict", "lww"]);
    assert!(!ok && stderr.contains("cannot be merged"), "{stderr}");
    let (ok, _, stderr) = ringkv(&cluster, &["bucket", "create", "carts"]);
    assert!(!ok && stderr.contains("exists already"), "{stderr}");
    // A bucket whose keys were written under the default policy cannot become lww.
    client.bucket("sessions").put("s-1", "x", None).await?;
    let (ok, _, stderr) = ringkv(
        &cluster,
        &["bucket", "create", "sessions", "--conflict", "lww"],
    );
    assert!(!ok && stderr.contains("already holds keys"), "{stderr}");
    json(
        &cluster,
        &["bucket", "create", "tokens", "--conflict", "lww"],
    );
    // A default time to live, set and cleared from the command line.
    json(&cluster, &["bucket", "set", "tokens", "--ttl", "30m"]);
    let list = json(&cluster, &["bucket", "list"]);
    assert_eq!(list["buckets"]["tokens"]["ttl_ms"], 1_800_000, "{list}");
    json(&cluster, &["bucket", "set", "tokens", "--no-ttl"]);
    let (ok, _, stderr) = ringkv(&cluster, &["bucket", "set", "tokens", "--ttl", "0"]);
    assert!(!ok && stderr.contains("positive"), "{stderr}");
    let list = json(&cluster, &["bucket", "list"]);
    assert!(list["buckets"]["tokens"]["ttl_ms"].is_null(), "{list}");
    assert_eq!(list["buckets"]["carts"]["n"], 2, "{list}");
    assert_eq!(list["buckets"]["tokens"]["conflict"], "lww", "{list}");
    assert!(list["buckets"].get("sessions").is_none(), "{list}");
    assert_eq!(list["buckets"]["carts"]["conflict"], "siblings", "{list}");
    for key in &keys {
        let read = bucket.get(key.as_str()).await?;
        assert_eq!(read.siblings(), &[bytes::Bytes::from(key.clone())]);
    }
    Ok(())
}
