//! A shopping cart that two browser tabs update at once: neither update is lost, the next
//! read sees both as siblings, and the application merges them.
//!
//! Against a running cluster (`./scripts/demo.sh` starts one, or `docker compose up`):
//! `cargo run -p ringkv --example shopping_cart -- 127.0.0.1:7401`.

use std::collections::BTreeSet;
use std::time::Duration;

use ringkv::{Client, ReadOptions, WriteOptions};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let seeds: Vec<String> = std::env::args().skip(1).collect();
    if seeds.is_empty() {
        return Err("usage: shopping_cart SEED_ADDR [SEED_ADDR ...]".into());
    }
    let client = Client::builder().seeds(seeds).build().await?;
    let carts = client.bucket(ringkv::DEFAULT_BUCKET);
    let key = format!("cart:example-{}", std::process::id());

    // A cart that expires a day after it was last written.
    let day = WriteOptions::default().with_ttl(Duration::from_secs(86_400));
    carts.put_with(&key, "milk", None, &day).await?;

    // Two tabs read the same version and each adds an item.
    let seen = carts.get(&key).await?;
    carts
        .put_with(&key, "milk,eggs", Some(seen.context()), &day)
        .await?;
    carts
        .put_with(&key, "milk,bread", Some(seen.context()), &day)
        .await?;

    // Both updates survived, as siblings. Merge them (a union of items) and write the merge
    // with the context of the read that saw both: it replaces exactly those siblings.
    let both = carts
        .get_with(&key, &ReadOptions::default().with_r(2))
        .await?;
    let items: BTreeSet<String> = both
        .siblings()
        .iter()
        .flat_map(|s| {
            String::from_utf8_lossy(s)
                .split(',')
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect();
    println!("{} siblings, items {items:?}", both.siblings().len());
    let merged = items.into_iter().collect::<Vec<_>>().join(",");
    carts
        .put_with(&key, merged, Some(both.context()), &day)
        .await?;
    println!("cart is now {:?}", carts.get(&key).await?.siblings());

    let last = carts.get(&key).await?;
    carts.delete(&key, Some(last.context())).await?;
    Ok(())
}
