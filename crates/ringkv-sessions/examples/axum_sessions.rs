//! An axum app whose sessions live in ringkv: `cargo run -p ringkv-sessions --example
//! axum_sessions -- 127.0.0.1:7401` with a cluster running (`./scripts/demo.sh` starts one),
//! then `curl -c jar -b jar 127.0.0.1:3000/` a few times: the visit count is the session's.
//! Sessions unused for 30 minutes expire on every replica; each request extends them.

use std::time::Duration;

use axum::Router;
use axum::routing::get;
use ringkv_sessions::RingkvStore;
use tower_sessions::{Expiry, Session, SessionManagerLayer};

async fn visits(session: Session) -> String {
    let n: u64 = session.get("visits").await.ok().flatten().unwrap_or(0);
    let _ = session.insert("visits", n + 1).await;
    format!("visit {}\n", n + 1)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let seeds: Vec<String> = std::env::args().skip(1).collect();
    let seeds = if seeds.is_empty() {
        vec!["127.0.0.1:7401".to_string()]
    } else {
        seeds
    };
    let client = ringkv::Client::builder().seeds(seeds).build().await?;
    let store =
        RingkvStore::new(client.bucket("default")).with_sliding_expiry(Duration::from_secs(1800));
    let app = Router::new().route("/", get(visits)).layer(
        SessionManagerLayer::new(store)
            .with_secure(false)
            .with_expiry(Expiry::OnInactivity(time::Duration::minutes(30))),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    println!("listening on http://127.0.0.1:3000");
    axum::serve(listener, app).await?;
    Ok(())
}
