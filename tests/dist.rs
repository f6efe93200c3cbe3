//! What ships besides the binaries, checked as far as this machine can: the systemd unit is
//! one systemd accepts (`systemd-analyze verify`, with the unit's binary pointed at the one
//! built here), and `ringkvd` notifies systemd once it listens (`Type=notify`).

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use ringkv_tests::ringkvd_bin;

#[test]
fn the_systemd_unit_is_one_systemd_accepts() -> anyhow::Result<()> {
    let unit = Path::new(env!("CARGO_MANIFEST_DIR")).join("../dist/systemd/ringkvd.service");
    let text = std::fs::read_to_string(&unit)?;
    assert!(text.contains("Type=notify"), "ringkvd notifies systemd");
    let dir = tempfile::tempdir()?;
    let here = dir.path().join("ringkvd.service");
    let bin = ringkvd_bin();
    std::fs::write(
        &here,
        text.replace("/usr/bin/ringkvd", &bin.display().to_string()),
    )?;
    let out = match Command::new("systemd-analyze")
        .arg("verify")
        .arg(&here)
        .output()
    {
        Ok(out) => out,
        Err(e) => {
            // Debian's `systemd` package has it; a machine without it cannot check a unit.
            eprintln!("systemd-analyze unavailable ({e}): the unit was not verified");
            return Ok(());
        }
    };
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success() && said.trim().is_empty(), "{said}");
    Ok(())
}

/// `READY=1` reaches the socket systemd names in `NOTIFY_SOCKET` once the node listens, and
/// `STOPPING=1` when it is told to stop.
#[test]
fn ringkvd_tells_systemd_when_it_is_ready_and_when_it_stops() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let socket = dir.path().join("notify");
    let systemd = UnixDatagram::bind(&socket)?;
    systemd.set_read_timeout(Some(Duration::from_secs(60)))?;
    let port = ringkv_tests::free_port();
    let mut node = Command::new(ringkvd_bin())
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .env("NOTIFY_SOCKET", &socket)
        .stderr(std::process::Stdio::null())
        .spawn()?;
    let mut buf = [0u8; 256];
    let got = systemd.recv(&mut buf);
    let ready = got.as_ref().map(|n| buf[..*n].to_vec());
    // Stop it whatever happened, then check.
    let _ = Command::new("kill")
        .args(["-TERM", &node.id().to_string()])
        .status();
    let stopping = systemd.recv(&mut buf).map(|n| buf[..n].to_vec());
    let waited = node.wait();
    assert_eq!(ready.ok().as_deref(), Some(&b"READY=1"[..]));
    assert_eq!(stopping.ok().as_deref(), Some(&b"STOPPING=1"[..]));
    assert!(waited.is_ok_and(|s| s.success()));
    Ok(())
}
