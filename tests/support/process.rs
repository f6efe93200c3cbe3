//! The processes behind a test cluster: where the binaries are, which ports they get, and
//! how they are signalled.
//!
//! Everything here is plain std and libc, with no knowledge of ringkv's protocol: a binary is
//! found next to the test binary cargo built, a port is picked so that no two nodes of a test
//! run ever share one, and a paused node is only reported paused once every one of its threads
//! has stopped.

use std::net::{TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Child;

/// The `ringkvd` binary: `$RINGKVD_BIN`, or the one cargo built next to this test binary.
pub fn ringkvd_bin() -> PathBuf {
    if let Some(path) = std::env::var_os("RINGKVD_BIN") {
        return PathBuf::from(path);
    }
    workspace_bin("ringkvd")
}

/// A binary of the workspace, as cargo built it next to this test binary (build the
/// workspace first: `cargo test -p ringkv-tests` alone does not build other packages' bins).
pub fn workspace_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    // target/<profile>/deps/<test> -> target/<profile>/<name>
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target dir layout");
    profile_dir.join(name)
}

/// A loopback port free for both TCP and UDP (ringkvd uses both on one port), and never
/// handed out before by this process: the kernel may offer a just-released port again, and
/// two nodes given one address would make a cluster that silently misses a member.
///
/// Ports come from below the kernel's ephemeral range (32768 and up): while a test has a node
/// down, an outgoing connection could otherwise be given that node's port as its local port,
/// and the node could not bind it again when it restarts.
pub fn free_port() -> u16 {
    const FIRST: u16 = 20_000;
    const SPAN: u16 = 12_000;
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|p| p.into_inner());
    // Test binaries run one after another: start each one somewhere else in the range.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let start = (nanos ^ std::process::id()) % u32::from(SPAN);
    for step in 0..u32::from(SPAN) {
        let port = FIRST + ((start + step) % u32::from(SPAN)) as u16;
        if given.contains(&port) {
            continue;
        }
        let Ok(_tcp) = TcpListener::bind(("127.0.0.1", port)) else {
            continue;
        };
        if UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            given.push(port);
            return port;
        }
    }
    panic!("no free loopback port for tcp and udp");
}

/// Whether every thread of `pid` is stopped (state `T` in `/proc/<pid>/task/*/stat`).
pub(crate) fn all_threads_stopped(pid: u32) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return true;
    };
    tasks.filter_map(Result::ok).all(|task| {
        let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
        // The state follows the command name, which ends at the last `)`.
        stat.rfind(')')
            .and_then(|end| stat[end + 1..].split_whitespace().next())
            .is_none_or(|state| state == "T" || state == "t")
    })
}

pub(crate) fn signal(child: &Child, sig: libc::c_int) {
    // SAFETY: kill(2) on a pid this process spawned and has not reaped yet.
    #[allow(unsafe_code)]
    unsafe {
        libc::kill(child.id() as libc::pid_t, sig);
    }
}
