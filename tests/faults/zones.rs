//! Failure domains: a whole zone going dark under load, and zones turned on in a running
//! cluster.

use super::*;

/// The zones of the scenarios' six nodes: uneven, 1, 2 and 3 nodes.
const ZONES: [&str; 6] = ["a", "b", "b", "c", "c", "c"];

/// Checks that every one of `keys` has its three homes in three zones.
fn homes_span_zones(ring: &ringkv_core::Ring, keys: &[String]) -> anyhow::Result<()> {
    for key in keys {
        let zones: BTreeSet<String> = ring
            .home_replicas("default", key.as_bytes())
            .iter()
            .map(|m| m.zone.clone())
            .collect();
        anyhow::ensure!(zones.len() == 3, "{key}: homes in zones {zones:?}");
    }
    Ok(())
}

/// zone-down: six nodes in three uneven zones (1, 2 and 3 nodes), a read-modify-write load
/// at R=2/W=2. Every node of the largest zone, half the cluster, is killed at once and kept
/// down for ten seconds, then brought back. Each key has a copy in each zone, so reads and
/// writes keep succeeding on the other two; nothing acknowledged may be lost.
#[test]
fn zone_down() {
    if !in_own_netns("zones::zone_down") {
        return;
    }
    run(async {
        let mut spec = spec(ZONES.len());
        spec.zones = ZONES.iter().map(|z| z.to_string()).collect();
        let mut cluster = TestCluster::start(spec).await?;
        let client = cluster.client_with(client_config()).await?;
        let bucket = client.bucket("default");
        let history = Arc::new(History::default());
        let ring = client.ring();
        anyhow::ensure!(ring.zones() == vec!["a", "b", "c"], "{:?}", ring.zones());
        let (cold, load) = operations::cold_keys_then_load(&bucket, &history, 12_000).await?;
        homes_span_zones(&ring, &cold)?;

        let zone_c: Vec<usize> = (0..ZONES.len()).filter(|&i| ZONES[i] == "c").collect();
        let down = Instant::now();
        for &i in &zone_c {
            cluster.kill(i);
        }
        tokio::time::sleep(Duration::from_secs(10)).await;
        let outage = history.error_rate_between(down, Instant::now());
        let (ok, failed) = history.outcomes_between(down, Instant::now());
        // Every cold key is still readable at R=2 with its zone down.
        for key in cold.iter().take(100) {
            let read = bucket.get(key.as_str()).await?;
            anyhow::ensure!(
                read.siblings().contains(&Bytes::from(key.clone())),
                "{key} unreadable with zone c down: {:?}",
                read.siblings()
            );
        }
        let up = Instant::now();
        for &i in &zone_c {
            cluster.restart(i).await?;
        }
        let back = eventually(Duration::from_secs(30), || async {
            alive_views(&cluster).await.iter().all(|&alive| alive == 6)
        })
        .await;
        anyhow::ensure!(back, "zone c was not seen alive again by every node");
        println!(
            "  zone c (3 of 6 nodes) down for {:.1} s: {ok} operations succeeded, {failed} \
             failed ({:.2}%); back after {:.1} s",
            up.duration_since(down).as_secs_f64(),
            outage * 100.0,
            up.elapsed().as_secs_f64()
        );
        load.await?;
        until_replicas_answer(&client, 3).await?;
        let report = check("zone-down", &history, &bucket, &cluster, 3).await?;
        assert_eq!(report.lost, 0, "{report}");
        assert!(
            outage <= 0.01,
            "{:.2}% of operations failed with one zone down",
            outage * 100.0
        );
        Ok(())
    });
}

/// zones-turned-on: six nodes without zones, the load running; every member is given a zone
/// (`cluster zone` for each, one commit) and the data moves so that every key has a copy in
/// each zone. Then a client that speaks the protocol before zones is refused the ring, with
/// the reason, rather than handed one it would misplace keys by.
#[test]
fn zones_turned_on() {
    if !in_own_netns("zones::zones_turned_on") {
        return;
    }
    run(async {
        use ringkv::transport::{ConnectOptions, Pool};
        use ringkv_core::wire::{ProtocolRange, ZONES_PROTOCOL_VERSION};

        let (cluster, client, bucket, history) = setup(ZONES.len()).await?;
        anyhow::ensure!(client.ring().zones() == vec![""], "zones before labelling");
        let (cold, load) = operations::cold_keys_then_load(&bucket, &history, 10_000).await?;
        let started = Instant::now();
        for (i, zone) in ZONES.iter().enumerate() {
            let id = cluster.member_of(i).await?.id;
            let change = ringkv_core::Change::Zone {
                id,
                zone: zone.to_string(),
            };
            cluster.stage(0, change).await?;
        }
        cluster.commit(0).await?;
        let settled = cluster.wait_settled(Duration::from_secs(90)).await?;
        let took = started.elapsed();
        for (i, zone) in ZONES.iter().enumerate() {
            let id = cluster.member_of(i).await?.id;
            let member = settled.member(id).map(|m| m.zone.clone());
            anyhow::ensure!(member.as_deref() == Some(*zone), "node {i}: {member:?}");
        }
        client.refresh_ring().await?;
        let ring = client.ring();
        homes_span_zones(&ring, &cold)?;
        let streamed: u64 = cluster
            .stats()
            .await?
            .iter()
            .filter_map(|s| s.transfer.as_ref())
            .map(|t| t.sent_keys)
            .sum();
        let errors = history.error_rate_between(started, Instant::now());
        println!(
            "  zones on in {:.1} s: {streamed} copies streamed; errors meanwhile {:.2}%",
            took.as_secs_f64(),
            errors * 100.0
        );
        load.await?;
        let placement = cluster.placement(&ring, "default", &cold).await?;
        anyhow::ensure!(
            placement.missing_on_homes == 0,
            "copies missing on their new homes: {placement:?}"
        );
        until_replicas_answer(&client, 3).await?;
        let report = check("zones-turned-on", &history, &bucket, &cluster, 3).await?;
        assert_eq!(report.lost, 0, "{report}");

        // A process of the release before zones gets a refusal that says why.
        let old = ProtocolRange::new(ZONES_PROTOCOL_VERSION - 1, ZONES_PROTOCOL_VERSION - 1)
            .expect("range");
        let pool = Pool::with_options(ConnectOptions::default().with_protocol(old));
        let addr = cluster.nodes[0].addr.to_string();
        let answer = pool
            .call(
                &addr,
                Duration::from_secs(2),
                Default::default(),
                Request::Ring,
            )
            .await;
        match answer {
            Err(e) if e.to_string().contains("by zone") => {}
            other => anyhow::bail!("an old client was answered {other:?}"),
        }
        Ok(())
    });
}
