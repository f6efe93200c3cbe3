#![cfg(feature = "rocksdb")]
//! Scenario disk-full (../shared/FAULTS.md): a node's data directory on a 4 MiB tmpfs. Writes
//! get the typed `StorageFull` error, reads go on, writes resume once space is freed, and the
//! store reopens cleanly with every acknowledged write.
//!
//! Mounting a tmpfs needs root (CI runs as root), like the network-namespace fault tests.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use ringkv_core::wire::{Request, Response, WireError};
use ringkv_core::{Member, Ring, RingConfig};
use ringkv_server::cluster::ClusterView;
use ringkv_server::config::{Limits, Storage};
use ringkv_server::request::Service;
use ringkv_server::storage::{RocksStore, Store};
use tokio::sync::watch;

/// A tmpfs mounted for the test, unmounted when dropped.
struct Tmpfs {
    path: PathBuf,
    _dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Tmpfs {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("disk");
        std::fs::create_dir(&path).expect("mount point");
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&path)
            .status()
            .expect("running mount");
        assert!(status.success(), "mounting a tmpfs needs root");
        Tmpfs { path, _dir: dir }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

/// A one-node ring served from `store`.
fn one_node(store: Arc<dyn Store>) -> Service {
    let me = store.node_id();
    let members = ringkv_core::claim::found(
        &[Member {
            id: me,
            addr: "127.0.0.1:7400".into(),
            weight: 1,
            tokens: Vec::new(),
            zone: String::new(),
        }],
        8,
    )
    .expect("members");
    let ring = Ring::new(RingConfig::of(members)).expect("ring");
    let (_tx, rx) = watch::channel(Arc::new(ClusterView::fixed(ring)));
    Service::new(store, rx, Limits::default())
}

fn put(key: &str, value: Bytes) -> Request {
    Request::Put {
        bucket: "b".into(),
        key: Bytes::copy_from_slice(key.as_bytes()),
        context: None,
        value: Some(value),
        overwrite: true,
        write_id: None,
        hint: None,
        sync: false,
        defer_sync: false,
        ttl_ms: None,
    }
}

fn get(service: &Service, key: &str) -> Option<Bytes> {
    let request = Request::Get {
        bucket: "b".into(),
        key: Bytes::copy_from_slice(key.as_bytes()),
    };
    match service.handle(service.epoch(), request) {
        Ok(Response::Value { state }) => state.and_then(|s| s.live().next()?.value.clone()),
        other => panic!("read of {key} failed: {other:?}"),
    }
}

fn open(dir: &Path) -> Arc<dyn Store> {
    Arc::new(RocksStore::open_with(dir, &Storage::default()).expect("open the store"))
}

#[test]
fn a_full_disk_refuses_writes_with_a_typed_error_serves_reads_and_recovers() {
    let disk = Tmpfs::mount("4m");
    // Room to free later, as an operator would by deleting old logs or checkpoints.
    let ballast = disk.path.join("ballast");
    std::fs::write(&ballast, vec![0u8; 1 << 20]).expect("ballast");
    let data = disk.path.join("data");
    let service = one_node(open(&data));

    let value = Bytes::from(vec![7u8; 32 * 1024]);
    let mut acknowledged = Vec::new();
    let mut refusal = None;
    for i in 0..1000 {
        let key = format!("k{i:04}");
        match service.handle(service.epoch(), put(&key, value.clone())) {
            Ok(_) => acknowledged.push(key),
            Err(e) => {
                refusal = Some(e);
                break;
            }
        }
    }
    assert_eq!(
        refusal,
        Some(WireError::StorageFull),
        "after {} writes",
        acknowledged.len()
    );
    assert!(acknowledged.len() > 10, "the disk filled too early");
    eprintln!(
        "the disk was full after {} writes of 32 KiB",
        acknowledged.len()
    );

    // Reads go on while the disk is full, and further writes keep failing the same way.
    for key in acknowledged.iter().step_by(10) {
        assert_eq!(get(&service, key).as_ref(), Some(&value), "{key}");
    }
    assert_eq!(
        service
            .handle(service.epoch(), put("more", value.clone()))
            .err(),
        Some(WireError::StorageFull)
    );

    // Space freed: writes resume (RocksDB recovers from a full disk by itself).
    std::fs::remove_file(&ballast).expect("free space");
    let freed = Instant::now();
    let deadline = freed + Duration::from_secs(30);
    loop {
        match service.handle(service.epoch(), put("after", Bytes::from("freed"))) {
            Ok(_) => {
                eprintln!("writes resumed {:?} after space was freed", freed.elapsed());
                break;
            }
            Err(WireError::StorageFull) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(200));
            }
            Err(e) => panic!("writes did not resume after space was freed: {e:?}"),
        }
    }

    // Every acknowledged write is there after a clean reopen.
    drop(service);
    let service = one_node(open(&data));
    for key in &acknowledged {
        assert_eq!(get(&service, key).as_ref(), Some(&value), "{key} was lost");
    }
    assert_eq!(get(&service, "after"), Some(Bytes::from("freed")));
}
