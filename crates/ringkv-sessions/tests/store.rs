//! The session store on a real three-node cluster, through axum and `tower-sessions`: a
//! session is saved, read back, kept alive by use alone (touches), expires once unused, and
//! concurrent saves are resolved.

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use axum::routing::get;
use ringkv_sessions::RingkvStore;
use ringkv_tests::{ClusterSpec, TestCluster};
use time::OffsetDateTime;
use tower::ServiceExt;
use tower_sessions::session::{Id, Record};
use tower_sessions::{Expiry, Session, SessionManagerLayer, SessionStore};

/// Counts the visits of a session (a write on every request).
async fn visit(session: Session) -> String {
    let n: u64 = session.get("visits").await.ok().flatten().unwrap_or(0);
    let _ = session.insert("visits", n + 1).await;
    (n + 1).to_string()
}

/// Shows the visits without changing the session: only the store's touch keeps it alive.
async fn peek(session: Session) -> String {
    let n: u64 = session.get("visits").await.ok().flatten().unwrap_or(0);
    n.to_string()
}

fn app(store: RingkvStore, inactivity: Duration) -> Router {
    let inactivity = time::Duration::try_from(inactivity).expect("duration");
    Router::new()
        .route("/visit", get(visit))
        .route("/peek", get(peek))
        .layer(
            SessionManagerLayer::new(store)
                .with_secure(false)
                .with_expiry(Expiry::OnInactivity(inactivity)),
        )
}

/// GET `path` with `cookie`; the body and the session cookie set, if any.
async fn call(app: &Router, path: &str, cookie: Option<&str>) -> (String, Option<String>) {
    let mut request = Request::builder().uri(path);
    if let Some(cookie) = cookie {
        request = request.header(header::COOKIE, cookie);
    }
    let response = app
        .clone()
        .oneshot(request.body(Body::empty()).expect("request"))
        .await
        .expect("response");
    assert_eq!(response.status(), StatusCode::OK);
    let cookie = response
        .headers()
        .get(header::SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(str::to_string);
    let body = axum::body::to_bytes(response.into_body(), 1024)
        .await
        .expect("body");
    (String::from_utf8_lossy(&body).into_owned(), cookie)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_live_while_used_and_expire_once_idle() -> anyhow::Result<()> {
    let cluster = TestCluster::start(ClusterSpec::default()).await?;
    let client = cluster.client().await?;
    let idle = Duration::from_secs(3);
    let store = RingkvStore::new(client.bucket("default")).with_sliding_expiry(idle);
    let app = app(store.clone(), idle);

    let (body, cookie) = call(&app, "/visit", None).await;
    assert_eq!(body, "1");
    let cookie = cookie.expect("a session cookie");
    let (body, _) = call(&app, "/visit", Some(&cookie)).await;
    assert_eq!(body, "2", "the session was not saved");
    let id: Id = cookie
        .split_once('=')
        .map(|(_, v)| v)
        .expect("id")
        .parse()
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    assert!(
        client.get(id.to_string()).await?.is_found(),
        "not in ringkv"
    );

    // Read every second for twice its idle time, never modified: the touches keep it.
    for _ in 0..6 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let (body, _) = call(&app, "/peek", Some(&cookie)).await;
        assert_eq!(body, "2", "a session in use expired");
    }
    // Unused for longer than its idle time: gone from every replica.
    tokio::time::sleep(idle + Duration::from_millis(1_500)).await;
    let read = client
        .get_with(id.to_string(), &ringkv::ReadOptions::default().with_r(3))
        .await?;
    assert!(!read.is_found(), "an idle session did not expire");
    let (body, _) = call(&app, "/peek", Some(&cookie)).await;
    assert_eq!(body, "0", "an expired session was served");
    assert!(store.load(&id).await?.is_none());
    Ok(())
}

/// Two app servers saved one session concurrently: the default keeps the later save, and a
/// resolver can merge them instead; the resolved session replaces both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_saves_are_resolved_last_writer_wins_or_by_the_resolver() -> anyhow::Result<()> {
    let cluster = TestCluster::start(ClusterSpec::default()).await?;
    let client = cluster.client().await?;
    let bucket = client.bucket("default");
    let record = |id: Id, item: &str| Record {
        id,
        data: [("cart".to_string(), serde_json::json!([item]))].into(),
        expiry_date: OffsetDateTime::now_utc() + time::Duration::minutes(5),
    };
    // Two blind writes without a context: the cluster keeps both, as siblings.
    let concurrent = |id: Id| {
        let bucket = bucket.clone();
        async move {
            for (saved_ms, item) in [(1_000u64, "apples"), (2_000, "pears")] {
                // What the store writes (its own `Stored`): the session and its save time.
                #[derive(serde::Serialize)]
                struct Stored {
                    saved_ms: u64,
                    record: Record,
                }
                let stored = Stored {
                    saved_ms,
                    record: record(id, item),
                };
                bucket
                    .put(id.to_string(), serde_json::to_vec(&stored)?, None)
                    .await?;
            }
            anyhow::Ok(())
        }
    };

    let id = Id::default();
    concurrent(id).await?;
    assert_eq!(bucket.get(id.to_string()).await?.siblings().len(), 2);
    let latest = RingkvStore::new(bucket.clone());
    let loaded = latest.load(&id).await?.expect("found");
    assert_eq!(
        loaded.data["cart"],
        serde_json::json!(["pears"]),
        "not the later save"
    );
    assert_eq!(
        bucket.get(id.to_string()).await?.siblings().len(),
        1,
        "the resolution was not written back"
    );

    let id = Id::default();
    concurrent(id).await?;
    let union = RingkvStore::new(bucket.clone()).with_resolver(|versions| {
        let mut items: Vec<serde_json::Value> = Vec::new();
        for (_, r) in &versions {
            if let Some(serde_json::Value::Array(cart)) = r.data.get("cart") {
                items.extend(cart.iter().cloned());
            }
        }
        items.sort_by_key(|v| v.to_string());
        items.dedup();
        let mut merged = versions[0].1.clone();
        merged
            .data
            .insert("cart".into(), serde_json::Value::Array(items));
        merged
    });
    let loaded = union.load(&id).await?.expect("found");
    assert_eq!(loaded.data["cart"], serde_json::json!(["apples", "pears"]));

    // Delete removes it; create never reuses a taken id.
    union.delete(&id).await?;
    assert!(union.load(&id).await?.is_none());
    let taken = Id::default();
    latest.save(&record(taken, "figs")).await?;
    let mut fresh = record(taken, "kiwis");
    latest.create(&mut fresh).await?;
    assert_ne!(fresh.id, taken, "create overwrote a live session");
    assert_eq!(
        latest.load(&taken).await?.expect("kept").data["cart"],
        serde_json::json!(["figs"])
    );
    Ok(())
}
