//! Addresses that move, on real processes: names wherever an address is, a node restarted
//! at a new address moving its member there by itself with clients following, and a second
//! process of one node id (a copied data directory started twice) never serving.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use ringkv::WriteOptions;
use ringkv_core::NodeId;
use ringkv_core::wire::Request;
use ringkv_tests::{ClusterSpec, TestCluster, eventually, free_port};

fn three() -> ClusterSpec {
    ClusterSpec {
        nodes: 3,
        ..ClusterSpec::default()
    }
}

/// The address the layout held by node `via` lists member `id` at.
async fn listed_at(cluster: &TestCluster, via: usize, id: NodeId) -> Option<String> {
    let layout = cluster.admin(via, Request::Layout).await.ok()?;
    layout.member(id).map(|m| m.addr.clone())
}

/// Waits up to 30 s for the process of node `i` to exit by itself, and checks that it failed
/// saying another process serves its id.
fn refused_as_twin(cluster: &mut TestCluster, i: usize) -> anyhow::Result<()> {
    let status = cluster.wait_exit(i, Duration::from_secs(30))?;
    let log = cluster.log(i);
    anyhow::ensure!(
        status.is_some_and(|s| !s.success()),
        "the second process of one node id kept running ({status:?}):\n{log}"
    );
    anyhow::ensure!(
        log.contains("another process answers as node"),
        "the refusal does not say why:\n{log}"
    );
    Ok(())
}

/// A client whose seeds are names, not IPs: `localhost:<port>`.
async fn client_by_name(cluster: &TestCluster) -> anyhow::Result<ringkv::Client> {
    let seeds: Vec<String> = cluster
        .nodes
        .iter()
        .map(|n| format!("localhost:{}", n.addr.port()))
        .collect();
    Ok(ringkv::Client::builder().seeds(seeds).build().await?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_moved_node_moves_its_member_by_itself_and_a_copy_of_it_never_serves()
-> anyhow::Result<()> {
    let mut cluster = TestCluster::start(three()).await?;
    let client = client_by_name(&cluster).await?;
    let all = WriteOptions::default().with_w(3);
    client.put_with("moved", "v1", None, &all).await?;
    let id = cluster.member_of(2).await?.id;
    let home = cluster.nodes[2].addr;

    // A copy of node 2's data directory, started elsewhere while node 2 runs at its member
    // address, refuses to start.
    cluster.terminate(2, Duration::from_secs(10))?;
    let snapshot = cluster.snapshot_data(2)?;
    cluster.restart(2).await?;
    let elsewhere = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let copy = cluster.start_on_copy(&snapshot, elsewhere)?;
    refused_as_twin(&mut cluster, copy)?;
    assert_eq!(listed_at(&cluster, 0, id).await, Some(home.to_string()));

    // Node 2 restarted at a new port, advertising a name: the member moves there, and a
    // client refreshing its ring once reaches it (W=3 needs every replica).
    cluster.terminate(2, Duration::from_secs(10))?;
    let port = free_port();
    let name = format!("localhost:{port}");
    cluster
        .restart_at(2, SocketAddr::from(([127, 0, 0, 1], port)), Some(&name))
        .await?;
    let moved = eventually(Duration::from_secs(20), || async {
        for via in 0..3 {
            if listed_at(&cluster, via, id).await.as_deref() != Some(&name) {
                return false;
            }
        }
        true
    })
    .await;
    assert!(
        moved,
        "the member never moved: {:?}",
        listed_at(&cluster, 0, id).await
    );
    client.refresh_ring().await?;
    let member = client.ring().members().iter().find(|m| m.id == id).cloned();
    assert_eq!(member.map(|m| m.addr), Some(name.clone()));
    client.put_with("after-move", "v2", None, &all).await?;

    // The stale copy started at the old address: its layout lists it there, so it starts,
    // and stops as soon as it learns where the member is now and finds node 2 answering.
    let stale = cluster.start_on_copy(&snapshot, home)?;
    refused_as_twin(&mut cluster, stale)?;
    assert_eq!(
        listed_at(&cluster, 0, id).await,
        Some(name),
        "the copy moved it back"
    );
    client.put_with("after-copy", "v3", None, &all).await?;
    for (key, value) in [("moved", "v1"), ("after-move", "v2"), ("after-copy", "v3")] {
        let read = client.get(key).await?;
        assert_eq!(read.siblings(), &[Bytes::from(value)], "{key}");
    }
    Ok(())
}
