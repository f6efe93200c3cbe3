//! Zones from the command line: nodes started with a zone found a zoned cluster, `status`
//! and `plan` show zones, `cluster join --zone` and `cluster zone` change them.

mod run;

use ringkv_tests::{ClusterSpec, TestCluster};
use serde_json::Value;

use run::{commit_and_watch, json, ringkv};

fn zone_shares(status: &Value) -> Vec<(String, f64)> {
    status["zones"]
        .as_array()
        .expect("zones")
        .iter()
        .map(|z| {
            (
                z["zone"].as_str().unwrap_or_default().to_string(),
                z["copies_share"].as_f64().unwrap_or(0.0),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zones_are_labelled_shown_and_changed_from_the_command_line() -> anyhow::Result<()> {
    let mut cluster = TestCluster::start(ClusterSpec {
        found: false,
        zones: ["a", "b", "c"].map(String::from).to_vec(),
        ..ClusterSpec::default()
    })
    .await?;
    // `cluster init` takes each node's configured zone.
    let founded = json(&cluster, &["cluster", "init"]);
    let zones: Vec<&str> = founded["members"]
        .as_array()
        .expect("members")
        .iter()
        .filter_map(|m| m["zone"].as_str())
        .collect();
    assert_eq!(zones.len(), 3, "{founded}");
    cluster.wait_converged(3).await?;
    let status = json(&cluster, &["status"]);
    let shares = zone_shares(&status);
    assert_eq!(shares.len(), 3, "{status}");
    assert!(
        shares.iter().all(|(_, s)| (s - 1.0 / 3.0).abs() < 1e-6),
        "{status}"
    );
    let (ok, text, _) = ringkv(&cluster, &["status"]);
    assert!(ok && text.contains("in 3 zones"), "{text}");
    assert!(
        text.contains("zone a · 1 node(s) · holds 33.3% of the copies"),
        "{text}"
    );
    let placed = json(&cluster, &["ring", "--key", "k"]);
    let homes: std::collections::BTreeSet<&str> = placed["preference_list"]
        .as_array()
        .expect("list")
        .iter()
        .take(3)
        .filter_map(|r| r["zone"].as_str())
        .collect();
    assert_eq!(homes.len(), 3, "{placed}");

    // A node started without a zone joins zone b by the flag.
    let fourth = cluster.start_node()?;
    let fourth_id = cluster.member_of(fourth).await?.id.to_string();
    let addr = cluster.nodes[fourth].addr.to_string();
    let staged = json(&cluster, &["cluster", "join", &addr, "--zone", "b"]);
    assert!(
        staged["staged"][0]
            .as_str()
            .is_some_and(|s| s.contains("zone b")),
        "{staged}"
    );
    let plan = json(&cluster, &["cluster", "plan"]);
    let b = plan["zones"]
        .as_array()
        .expect("zones")
        .iter()
        .find(|z| z["zone"] == "b")
        .expect("zone b")
        .clone();
    assert_eq!(
        (b["nodes_before"].as_u64(), b["nodes_after"].as_u64()),
        (Some(1), Some(2))
    );
    let (ok, text, _) = ringkv(&cluster, &["cluster", "plan"]);
    assert!(
        ok && text.contains("share of the copies per zone"),
        "{text}"
    );
    let status = commit_and_watch(&cluster).await?;
    // Zone b's third is now split between its two nodes; every zone still holds a third.
    let shares = zone_shares(&status);
    assert!(
        shares.iter().all(|(_, s)| (s - 1.0 / 3.0).abs() < 1e-6),
        "{status}"
    );

    // Labels are checked, and a member moves zones by a staged change.
    let (ok, _, err) = ringkv(&cluster, &["cluster", "zone", &fourth_id, "rack 1"]);
    assert!(!ok && err.contains("use letters"), "{err}");
    json(&cluster, &["cluster", "zone", &fourth_id, "d"]);
    let status = commit_and_watch(&cluster).await?;
    let zones: Vec<String> = zone_shares(&status).into_iter().map(|z| z.0).collect();
    assert_eq!(zones, vec!["a", "b", "c", "d"], "{status}");
    let row = status["members"]
        .as_array()
        .expect("members")
        .iter()
        .find(|m| m["node"] == fourth_id.as_str())
        .expect("the fourth node")
        .clone();
    assert_eq!(row["zone"], "d", "{row}");

    // A process of the release before zones (here: a node that speaks only its protocol)
    // would drop the labels: the nodes refuse to make it a member (and to hand it the layout,
    // which `faults::zones::zones_turned_on` shows).
    let old = (ringkv_core::wire::ZONES_PROTOCOL_VERSION - 1).to_string();
    let fifth = cluster.start_node()?;
    cluster.member_of(fifth).await?;
    cluster.terminate(fifth, std::time::Duration::from_secs(10))?;
    cluster.set_env(fifth, "RINGKVD_TEST_PROTOCOL_MAX", &old);
    cluster.restart(fifth).await?;
    let addr = cluster.nodes[fifth].addr.to_string();
    let refused = ringkv_tests::eventually(std::time::Duration::from_secs(10), || async {
        // Until gossip has told the nodes what the restarted one speaks.
        let (ok, _, err) = ringkv(&cluster, &["cluster", "join", &addr, "--zone", "c"]);
        if ok {
            json(&cluster, &["cluster", "clear"]);
        }
        !ok && err.contains(&format!("speaks protocol {old}"))
    })
    .await;
    assert!(
        refused,
        "a node of protocol {old} was staged into a cluster with zones"
    );
    Ok(())
}
