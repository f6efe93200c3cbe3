//! Telling systemd how the node is doing, for a unit of `Type=notify`: `READY=1` once the node
//! listens (a dependent unit starts only then, and `systemctl start` returns), `STOPPING=1`
//! when a graceful shutdown begins. Outside systemd (`NOTIFY_SOCKET` unset) nothing is sent.
//! The protocol is one datagram to a Unix socket, simple enough to need no crate.

use std::os::unix::net::UnixDatagram;

use tracing::warn;

/// Sends `state` (`READY=1`, `STOPPING=1`) to systemd, if it asked for notifications.
pub fn notify(state: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    if let Err(e) = send(&path, state) {
        warn!(error = %e, state, "could not notify systemd");
    }
}

fn send(path: &std::ffi::OsStr, state: &str) -> std::io::Result<()> {
    let socket = UnixDatagram::unbound()?;
    let bytes = std::os::unix::ffi::OsStrExt::as_bytes(path);
    match bytes.strip_prefix(b"@") {
        // An abstract socket (systemd's usual choice, Linux only): '@' stands for the NUL.
        #[cfg(target_os = "linux")]
        Some(name) => {
            use std::os::linux::net::SocketAddrExt as _;
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
            socket.send_to_addr(state.as_bytes(), &addr)?;
        }
        _ => {
            socket.send_to(state.as_bytes(), path)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::unix::net::UnixDatagram;

    /// What systemd would receive, on a socket of its own kind.
    #[test]
    fn the_state_reaches_the_notify_socket() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("notify");
        let systemd = UnixDatagram::bind(&path).expect("bind");
        super::send(path.as_os_str(), "READY=1").expect("send");
        let mut buf = [0u8; 64];
        let n = systemd.recv(&mut buf).expect("recv");
        assert_eq!(&buf[..n], b"READY=1");
    }
}
