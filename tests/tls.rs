//! TLS: a cluster whose nodes require mutual TLS serves clients with a certificate from its CA,
//! and nodes reach each other over TLS; plain TCP, a client without a certificate and a
//! client trusting another CA are refused (scenario dos-and-auth, "a wrong certificate").

use std::time::Duration;

use bytes::Bytes;
use ringkv::{ClientConfig, ClientTls, Error};
use ringkv_tests::{ClusterSpec, RawConnection, TestCluster, TlsFiles};

/// Whether the client could not connect. (The error depends on which side refused: a node
/// refusing a client's certificate does so after the client's side of the handshake.)
fn refused(result: Result<ringkv::Client, Error>) -> bool {
    match result {
        Ok(_) => false,
        Err(e) => {
            eprintln!("refused as expected: {e}");
            true
        }
    }
}

async fn client_with_tls(
    cluster: &TestCluster,
    tls: Option<ClientTls>,
) -> ringkv::Result<ringkv::Client> {
    let mut config = ClientConfig::default().with_timeout(Duration::from_secs(2));
    config.connect.tls = tls;
    ringkv::Client::builder()
        .seeds(cluster.addrs())
        .config(config)
        .build()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_serves_certified_clients_and_refuses_the_rest() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let files = TlsFiles::generate(&dir.path().join("pki"), true)?;
    let spec = ClusterSpec {
        tls: Some(files.clone()),
        ..ClusterSpec::default()
    };
    // Founding goes through the nodes' TLS, and every node fetches the layout from the
    // others over it.
    let mut cluster = TestCluster::start(spec).await?;

    let client = cluster.client().await?;
    for i in 0..20 {
        client.put(format!("k{i}"), format!("v{i}"), None).await?;
    }
    assert_eq!(client.get("k7").await?.value(), Some(&Bytes::from("v7")));

    // A node added later joins through TLS and receives its share of the data by streaming,
    // node to node over TLS.
    let added = cluster.add_node().await?;
    let on_added = cluster.stats().await?[added].keys;
    assert!(
        on_added > 0,
        "nothing was streamed to the new node over TLS"
    );

    // Plain TCP is not TLS: the handshake fails.
    assert!(RawConnection::open(cluster.nodes[0].addr).await.is_err());
    // TLS without a client certificate, where the nodes require one.
    let anonymous = ClientTls::from_files(&files.ca, None, None)?;
    assert!(refused(client_with_tls(&cluster, Some(anonymous)).await));
    // A client trusting another CA does not accept the nodes.
    let other = TlsFiles::generate(&dir.path().join("other"), true)?;
    assert!(refused(
        client_with_tls(&cluster, Some(other.client()?)).await
    ));
    // A certificate from another CA is not accepted by the nodes.
    let forged = ClientTls::from_files(
        &files.ca,
        Some((&other.client_cert, &other.client_key)),
        None,
    )?;
    assert!(refused(client_with_tls(&cluster, Some(forged)).await));

    // The certified client still works.
    assert_eq!(client.get("k3").await?.value(), Some(&Bytes::from("v3")));
    Ok(())
}
