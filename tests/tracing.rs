//! The SDK's per-call tracing spans, captured by a recording layer: a read's span names the
//! replicas it asked and those that answered, and says how many it repaired.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ringkv::ReadOptions;
use ringkv_tests::{ClusterSpec, TestCluster, until_replicas_answer};
use tracing::span::{Attributes, Id, Record};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::{Context, SubscriberExt as _};
use tracing_subscriber::registry::LookupSpan;

/// Fields of one span, as text.
#[derive(Clone, Debug, Default)]
struct Fields(BTreeMap<String, String>);

impl tracing::field::Visit for Fields {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0
            .insert(field.name().to_string(), format!("{value:?}"));
    }
}

/// Every closed span: its name and its fields.
#[derive(Clone, Debug, Default)]
struct Closed(Arc<Mutex<Vec<(String, Fields)>>>);

impl Closed {
    fn find(&self, name: &str, key_len: usize) -> Option<Fields> {
        let spans = self.0.lock().unwrap_or_else(|p| p.into_inner());
        spans
            .iter()
            .rev()
            .find(|(n, f)| n == name && f.0.get("key_len") == Some(&key_len.to_string()))
            .map(|(_, f)| f.clone())
    }
}

impl<S> Layer<S> for Closed
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(fields);
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id)
            && let Some(fields) = span.extensions_mut().get_mut::<Fields>()
        {
            values.record(fields);
        }
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(&id) {
            let fields = span.extensions_mut().remove::<Fields>().unwrap_or_default();
            self.0
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push((span.name().to_string(), fields));
        }
    }
}

/// Polls until a closed span `name` for a key of `key_len` bytes shows up.
async fn closed_span(closed: &Closed, name: &str, key_len: usize) -> Fields {
    for _ in 0..200 {
        if let Some(fields) = closed.find(name, key_len) {
            return fields;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("no closed {name} span for a key of {key_len} bytes");
}

fn count_ids(list: &str) -> usize {
    list.trim_matches(|c| c == '[' || c == ']')
        .split(", ")
        .filter(|s| !s.is_empty())
        .count()
}

// One thread: the thread-local subscriber sees every task, the background repair included.
#[tokio::test(flavor = "current_thread")]
async fn a_read_span_names_its_replicas_and_says_what_it_repaired() -> anyhow::Result<()> {
    let closed = Closed::default();
    let _subscriber =
        tracing::subscriber::set_default(tracing_subscriber::registry().with(closed.clone()));
    let mut cluster = TestCluster::start(ClusterSpec::default()).await?;
    let client = cluster.client().await?;

    let fresh = "traced-fresh-key";
    client.put(fresh, "v", None).await?;
    let write = closed_span(&closed, "ringkv.write", fresh.len()).await;
    assert_eq!(count_ids(&write.0["targets"]), 3, "{write:?}");
    assert!(count_ids(&write.0["home_acks"]) >= 2, "{write:?}");
    client.get(fresh).await?;
    let read = closed_span(&closed, "ringkv.get", fresh.len()).await;
    assert_eq!(count_ids(&read.0["targets"]), 3, "{read:?}");
    assert!(count_ids(&read.0["answered"]) >= 2, "{read:?}");
    assert_eq!(read.0["repaired"], "0", "{read:?}");

    // A replica misses a write while down; the read that sees all three repairs it.
    let stale = "traced-stale";
    cluster.kill(2);
    client.put(stale, "v", None).await?;
    cluster.restart(2).await?;
    until_replicas_answer(&client, 3).await?;
    client
        .get_with(stale, &ReadOptions::default().with_r(3))
        .await?;
    let read = closed_span(&closed, "ringkv.get", stale.len()).await;
    assert_eq!(count_ids(&read.0["answered"]), 3, "{read:?}");
    assert_eq!(read.0["repaired"], "1", "{read:?}");
    Ok(())
}
