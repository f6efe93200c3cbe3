//! What ships besides the binaries, checked as far as this machine can: the systemd unit is
//! one systemd accepts (`systemd-analyze verify`, with the unit's binary pointed at the one
//! built here), `ringkvd` notifies systemd once it listens (`Type=notify`), the alert rules
//! pass `promtool check rules`, every metric the rules and the Grafana dashboard use is one a
//! real node serves, `compose.yaml` passes docker-compose's schema, and every Kubernetes
//! overlay renders (`kubectl kustomize`) into manifests the Kubernetes API schemas accept
//! (`kubernetes-validate --strict`). The tools come from `scripts/bootstrap.sh` and
//! `scripts/python-env.sh`; a missing one fails the test, saying which.

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
    let out = run(Command::new("systemd-analyze").arg("verify").arg(&here))?;
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
        let out = run(Command::new("promtool")
            .args(args)
            .current_dir(dist("prometheus")))?;
        let said = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && said.contains("SUCCESS"),
            "promtool {args:?}: {said}"
        );
    }
    Ok(())
}

/// Runs a checking tool; its absence is a failure that names where it comes from.
fn run(command: &mut Command) -> anyhow::Result<std::process::Output> {
    let tool = command.get_program().to_string_lossy().into_owned();
    command.output().map_err(|e| {
        anyhow::anyhow!(
            "{tool}: {e}; scripts/bootstrap.sh and scripts/python-env.sh install the tools \
             these checks need"
        )
    })
}

fn said(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

fn root() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// compose.yaml passes docker-compose's schema check, and says what the image and the
/// entrypoint need: three nodes founding together, each advertising its service name, their
/// data on volumes.
#[test]
fn the_compose_file_is_valid_and_founds_three_nodes() -> anyhow::Result<()> {
    let out = run(Command::new("docker-compose")
        .args(["-f", "compose.yaml", "config"])
        .current_dir(root()))?;
    assert!(
        out.status.success(),
        "docker-compose config: {}",
        said(&out)
    );
    let config = String::from_utf8_lossy(&out.stdout);
    for node in ["node0", "node1", "node2"] {
        assert!(
            config.contains(&format!("RINGKVD_ADVERTISE: {node}:7400")),
            "{config}"
        );
        // docker-compose 1.x prints a volume as `- node0:/var/lib/ringkvd:rw`.
        assert!(
            config.contains(&format!("{node}:/var/lib/ringkvd")),
            "{node}'s data volume: {config}"
        );
    }
    assert_eq!(
        config
            .matches("RINGKV_FOUNDERS: node0:7400,node1:7400,node2:7400")
            .count(),
        3,
        "{config}"
    );
    // The Dockerfile runs the entrypoint this suite tests (tests/entrypoint.rs).
    let dockerfile = std::fs::read_to_string(root().join("Dockerfile"))?;
    assert!(dockerfile.contains("COPY dist/container/entrypoint.sh"));
    assert!(dockerfile.contains("HEALTHCHECK"));
    assert!(dockerfile.contains("USER ringkv"));
    Ok(())
}

/// Every overlay renders, and every manifest passes the Kubernetes API schemas, strictly
/// (an unknown or misspelt field fails), for the oldest and the newest version the docs
/// name. Then what the design needs of them: pods found the cluster in parallel, by stable
/// names, published before they are ready; the zone comes from the machine.
#[test]
fn the_kubernetes_overlays_render_into_valid_manifests() -> anyhow::Result<()> {
    let validate = root().join(".venv/bin/kubernetes-validate");
    let dir = tempfile::tempdir()?;
    for overlay in ["dev", "production"] {
        let out = run(Command::new("kubectl")
            .args(["kustomize", &format!("dist/kubernetes/overlays/{overlay}")])
            .current_dir(root()))?;
        assert!(
            out.status.success(),
            "kubectl kustomize {overlay}: {}",
            said(&out)
        );
        let rendered = dir.path().join(format!("{overlay}.yaml"));
        std::fs::write(&rendered, &out.stdout)?;
        for version in ["1.30.0", "1.33.0"] {
            let out = run(Command::new(&validate)
                .args(["--strict", "--no-warn", "-k", version])
                .arg(&rendered))?;
            assert!(
                out.status.success(),
                "kubernetes-validate {overlay} {version}: {}",
                said(&out)
            );
        }
        let text = String::from_utf8_lossy(&out.stdout);
        for kind in [
            "kind: StatefulSet",
            "kind: PodDisruptionBudget",
            "kind: Secret",
            "kind: Namespace",
        ] {
            // The production overlay expects the secret to exist already.
            if kind == "kind: Secret" && overlay == "production" {
                assert!(!text.contains(kind), "production generates no secret");
                continue;
            }
            assert!(text.contains(kind), "{overlay} lacks {kind}");
        }
        // Cluster-wide names differ per overlay, and the binding names this overlay's account.
        let namespace = if overlay == "dev" {
            "ringkv-dev"
        } else {
            "ringkv"
        };
        assert!(
            text.contains(&format!("name: ringkv-node-zone-{namespace}")),
            "{overlay}: the ClusterRole's name is not the namespace's own"
        );
        assert!(
            text.contains(&format!("  name: ringkv\n  namespace: {namespace}\n")),
            "{overlay}: the role binding's subject is not in {namespace}"
        );
        for needed in [
            "name: RINGKV_CLUSTER_SECRET_FILE",
            "fsGroupChangePolicy: OnRootMismatch",
            "podManagementPolicy: Parallel",
            "publishNotReadyAddresses: true",
            "path: /ready",
            "topology.kubernetes.io/zone",
            "fieldPath: spec.nodeName",
            "secretName: ringkv-cluster-secret",
            "volumeClaimTemplates",
        ] {
            assert!(text.contains(needed), "{overlay} lacks {needed}");
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
