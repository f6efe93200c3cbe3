//! What ships besides the binaries, checked as far as this machine can: the systemd unit is
//! one systemd accepts (`systemd-analyze verify`, with the unit's binary pointed at the one
//! built here), `ringkvd` notifies systemd once it listens (`Type=notify`), the alert rules
//! pass `promtool check rules`, and every metric the rules and the Grafana dashboard use is
//! one a real node serves.

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use ringkv_tests::{ClusterSpec, TestCluster, ringkvd_bin};

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
    // Bounded: a node that does not stop in time is killed, and the test fails.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let mut exited = None;
    while std::time::Instant::now() < deadline {
        if let Some(status) = node.try_wait()? {
            exited = Some(status);
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    if exited.is_none() {
        let _ = node.kill();
        let _ = node.wait();
    }
    assert_eq!(ready.ok().as_deref(), Some(&b"READY=1"[..]));
    assert_eq!(stopping.ok().as_deref(), Some(&b"STOPPING=1"[..]));
    assert!(exited.is_some_and(|s| s.success()), "{exited:?}");
    Ok(())
}

fn dist(path: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../dist")
        .join(path)
}

/// The rules parse, and the cluster-wide ones fire on the series a node serves (their
/// matching is what `check` cannot see: `ringkv-alerts.test.yml`).
#[test]
fn the_alert_rules_pass_promtool() -> anyhow::Result<()> {
    let runs: [&[&str]; 2] = [
        &["check", "rules", "ringkv-alerts.yml"],
        &["test", "rules", "ringkv-alerts.test.yml"],
    ];
    for args in runs {
        match Command::new("promtool")
            .args(args)
            .current_dir(dist("prometheus"))
            .output()
        {
            Ok(out) => {
                let said = String::from_utf8_lossy(&out.stdout).into_owned()
                    + &String::from_utf8_lossy(&out.stderr);
                assert!(
                    out.status.success() && said.contains("SUCCESS"),
                    "promtool {args:?}: {said}"
                );
            }
            // scripts/bootstrap.sh installs Debian's prometheus, which has it.
            Err(e) => eprintln!("promtool unavailable ({e}): the rules were not checked"),
        }
    }
    Ok(())
}

/// The metric names an expression file uses: `ringkv_*` and `process_*` words.
fn metric_names(text: &str) -> Vec<String> {
    let mut names: Vec<String> = text
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with("ringkv_") || w.starts_with("process_"))
        .map(str::to_string)
        .collect();
    names.sort();
    names.dedup();
    names
}

/// Whether a `/metrics` text serves `name`: as a sample, or as the family a sample name
/// (`_total`, `_bucket`, `_sum`, `_count`) belongs to, declared with `# TYPE`.
fn serves(text: &str, name: &str) -> bool {
    let family = ["_total", "_bucket", "_sum", "_count"]
        .iter()
        .find_map(|suffix| name.strip_suffix(suffix))
        .unwrap_or(name);
    text.lines().any(|line| {
        line.starts_with(&format!("{name} "))
            || line.starts_with(&format!("{name}{{"))
            || line.starts_with(&format!("# TYPE {family} "))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_the_dashboard_and_the_alerts_use_is_served() -> anyhow::Result<()> {
    let cluster = TestCluster::start(ClusterSpec {
        admin: true,
        ..ClusterSpec::default()
    })
    .await?;
    let client = cluster.client().await?;
    for i in 0..10 {
        client.put(format!("dash-{i}"), "v", None).await?;
        client.get(format!("dash-{i}")).await?;
    }
    let admin = cluster.nodes[0].admin.expect("an admin port");
    let (status, text) = ringkv_tests::http_get(admin, "/metrics")?;
    assert_eq!(status, 200);
    let used = [
        std::fs::read_to_string(dist("prometheus/ringkv-alerts.yml"))?,
        std::fs::read_to_string(dist("grafana/ringkv.json"))?,
    ];
    let dashboard: serde_json::Value = serde_json::from_str(&used[1])?;
    assert!(
        dashboard["panels"]
            .as_array()
            .is_some_and(|p| p.len() >= 10),
        "a dashboard with its panels"
    );
    let mut missing = Vec::new();
    let mut checked = 0;
    for file in &used {
        for name in metric_names(file) {
            checked += 1;
            if !serves(&text, &name) {
                missing.push(name);
            }
        }
    }
    assert!(checked > 20, "only {checked} names found");
    assert!(missing.is_empty(), "not served: {missing:?}\n{text}");
    Ok(())
}
