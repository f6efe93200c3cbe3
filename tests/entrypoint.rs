//! The container entrypoint (`dist/container/entrypoint.sh`), run outside a container: this
//! machine cannot start containers, but what the image does at start is this script, with the
//! binaries built here. Three nodes found a cluster by themselves, with the zones a (fake)
//! Kubernetes API gives their machines; a fourth joins by itself; a founder restarted after
//! the cluster grew founds nothing; a stop reaches ringkvd and its status comes back; a node
//! that cannot be founded, or whose zone cannot be read, stops rather than serve half-made.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use ringkv_tests::{free_port, http_get, ringkvd_bin, workspace_bin};

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../dist/container/entrypoint.sh")
}

/// One entrypoint process, in a process group of its own: dropping it stops the script and
/// the ringkvd it started (SIGTERM to the group, SIGKILL after 10 s).
struct Entrypoint {
    child: Child,
    log: PathBuf,
    admin: SocketAddr,
    addr: String,
}

impl Entrypoint {
    fn start(dir: &Path, name: &str, env: &[(&str, String)]) -> anyhow::Result<Entrypoint> {
        let port = free_port();
        let admin_port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let log = dir.join(format!("{name}.log"));
        let mut command = Command::new("bash");
        command
            .arg(script())
            .env("RINGKVD_BIN", ringkvd_bin())
            .env("RINGKV_BIN", workspace_bin("ringkv"))
            .env("RINGKVD_LISTEN", &addr)
            .env("RINGKVD_ADMIN_LISTEN", format!("127.0.0.1:{admin_port}"))
            .env("RINGKVD_DATA_DIR", dir.join(name))
            .env("RINGKVD_GOSSIP__INTERVAL_MS", "100")
            .env_remove("RINGKVD_ADVERTISE")
            .env_remove("RINGKVD_ZONE")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log)?)
            .stderr(std::fs::File::options().append(true).open(&log)?)
            .process_group(0);
        for (k, v) in env {
            command.env(k, v);
        }
        Ok(Entrypoint {
            child: command.spawn()?,
            log,
            admin: SocketAddr::from(([127, 0, 0, 1], admin_port)),
            addr,
        })
    }

    fn said(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn wait_ready(&mut self, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if matches!(http_get(self.admin, "/ready"), Ok((200, _))) {
                return Ok(());
            }
            if let Some(status) = self.child.try_wait()? {
                anyhow::bail!("the entrypoint exited ({status}):\n{}", self.said());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        anyhow::bail!("not ready after {timeout:?}:\n{}", self.said())
    }

    fn wait_exit(&mut self, timeout: Duration) -> anyhow::Result<ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        anyhow::bail!("still running after {timeout:?}:\n{}", self.said())
    }

    /// Waits until its ringkvd answers `/health`, while the script runs.
    fn wait_health(&mut self, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        while http_get(self.admin, "/health").is_err() {
            anyhow::ensure!(Instant::now() < deadline, "no health:\n{}", self.said());
            if let Some(status) = self.child.try_wait()? {
                anyhow::bail!("the entrypoint exited ({status}):\n{}", self.said());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        Ok(())
    }

    /// Waits until the script's log says `what`, while it runs.
    fn wait_said(&mut self, what: &str, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        while !self.said().contains(what) {
            anyhow::ensure!(
                Instant::now() < deadline,
                "{what:?} not said after {timeout:?}:\n{}",
                self.said()
            );
            if let Some(status) = self.child.try_wait()? {
                anyhow::bail!("the entrypoint exited ({status}):\n{}", self.said());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        Ok(())
    }

    /// SIGTERM to the script alone: it must pass the signal on to ringkvd.
    fn terminate(&self) {
        signal(self.child.id() as i32, libc::SIGTERM);
    }
}

impl Drop for Entrypoint {
    fn drop(&mut self) {
        let group = -(self.child.id() as i32);
        signal(group, libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline && signal(group, 0) {
            let _ = self.child.try_wait();
            std::thread::sleep(Duration::from_millis(50));
        }
        signal(group, libc::SIGKILL);
        let _ = self.child.wait();
    }
}

/// `kill(pid, sig)`; true if it was delivered (the process or group exists).
fn signal(pid: i32, sig: i32) -> bool {
    Command::new("kill")
        .arg(format!("-{sig}"))
        .arg("--")
        .arg(pid.to_string())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A Kubernetes API server as far as the entrypoint asks it: `GET /api/v1/nodes/<name>`
/// answers the machine's labels, with its zone when `zones` has one. Serves until the test
/// process ends (a thread blocked in accept; each answer is bounded).
fn fake_kubernetes(zones: &'static [(&'static str, &'static str)]) -> anyhow::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
            // The whole head, however the client's writes were cut.
            let (mut head, mut buf) = (Vec::new(), [0u8; 1024]);
            while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 64 * 1024 {
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            let head = String::from_utf8_lossy(&head).to_string();
            let path = head.split_whitespace().nth(1).unwrap_or("").to_string();
            let authorised = head.contains("Authorization: Bearer test-token");
            let name = path.strip_prefix("/api/v1/nodes/").unwrap_or("");
            let (status, body) = if !authorised {
                ("401 Unauthorized", "{}".to_string())
            } else if let Some((_, zone)) = zones.iter().find(|(m, _)| *m == name) {
                // Pretty-printed, as kubectl would show it: the script must not care.
                let labels = if zone.is_empty() {
                    "\"kubernetes.io/hostname\": \"x\"".to_string()
                } else {
                    format!(
                        "\"kubernetes.io/hostname\": \"x\",\n      \"topology.kubernetes.io/zone\": \"{zone}\""
                    )
                };
                (
                    "200 OK",
                    format!(
                        "{{\n  \"kind\": \"Node\",\n  \"metadata\": {{\n    \"name\": \"{name}\",\n    \"labels\": {{\n      {labels}\n    }}\n  }}\n}}"
                    ),
                )
            } else {
                ("404 Not Found", "{}".to_string())
            };
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    Ok(port)
}

/// A service account directory: the token the fake API wants, and a CA file curl is given.
fn service_account(dir: &Path) -> anyhow::Result<PathBuf> {
    let sa = dir.join("serviceaccount");
    std::fs::create_dir_all(&sa)?;
    std::fs::write(sa.join("token"), "test-token")?;
    std::fs::write(sa.join("ca.crt"), "")?;
    Ok(sa)
}

/// `ringkv --seeds SEEDS status --json`: the members' addresses and zones.
fn members(seeds: &str) -> anyhow::Result<Vec<(String, String)>> {
    let out = Command::new(workspace_bin("ringkv"))
        .args(["--seeds", seeds, "--timeout", "5", "--json", "status"])
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "ringkv status: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let mut members: Vec<(String, String)> = status["members"]
        .as_array()
        .map(|rows| {
            rows.iter()
                .map(|m| {
                    (
                        m["address"].as_str().unwrap_or("").to_string(),
                        m["zone"].as_str().unwrap_or("").to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    members.sort();
    Ok(members)
}

fn cli(seeds: &str, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new(workspace_bin("ringkv"))
        .args(["--seeds", seeds, "--timeout", "5"])
        .args(args)
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "ringkv {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).to_string())
}

#[test]
fn nodes_found_a_cluster_by_themselves_and_a_fourth_joins_by_itself() -> anyhow::Result<()> {
    static ZONES: [(&str, &str); 4] = [
        ("machine-0", "zone-a"),
        ("machine-1", "zone-b"),
        ("machine-2", "zone-c"),
        ("machine-3", "zone-a"),
    ];
    let dir = tempfile::tempdir()?;
    let api = format!("http://127.0.0.1:{}", fake_kubernetes(&ZONES)?);
    let sa = service_account(dir.path())?;
    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let founders: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    let founders = founders.join(",");
    let cluster = format!("entrypoint-{}", std::process::id());
    let env = |machine: &str| {
        vec![
            ("RINGKVD_SEEDS", founders.clone()),
            ("RINGKVD_CLUSTER_NAME", cluster.clone()),
            ("RINGKV_NODE_NAME", machine.to_string()),
            ("RINGKV_KUBE_API", api.clone()),
            ("RINGKV_KUBE_SA", sa.display().to_string()),
            ("RINGKV_BOOTSTRAP_TIMEOUT", "120".to_string()),
        ]
    };
    let founder_env = |i: usize| {
        let mut env = env(&format!("machine-{i}"));
        env.push(("RINGKV_FOUNDERS", founders.clone()));
        env.push(("RINGKVD_LISTEN", format!("127.0.0.1:{}", ports[i])));
        env
    };
    // The first founder starts alone and waits for the others, as pods scheduled apart do.
    let mut nodes = vec![Entrypoint::start(dir.path(), "node0", &founder_env(0))?];
    std::thread::sleep(Duration::from_secs(2));
    for i in 1..3 {
        nodes.push(Entrypoint::start(
            dir.path(),
            &format!("node{i}"),
            &founder_env(i),
        )?);
    }
    for (node, port) in nodes.iter_mut().zip(&ports) {
        node.addr = format!("127.0.0.1:{port}");
        node.wait_ready(Duration::from_secs(120))?;
    }
    let mut want: Vec<(String, String)> = ports
        .iter()
        .zip(["zone-a", "zone-b", "zone-c"])
        .map(|(p, z)| (format!("127.0.0.1:{p}"), z.to_string()))
        .collect();
    want.sort();
    assert_eq!(
        members(&founders)?,
        want,
        "founded with the machines' zones"
    );
    nodes[0].wait_said("founded a cluster", Duration::from_secs(60))?;
    for node in &mut nodes[1..] {
        node.wait_said("it founds nothing", Duration::from_secs(60))?;
    }
    cli(&founders, &["put", "kept", "through-it-all"])?;

    // A fourth node, not a founder, joins and commits by itself.
    let mut env4 = env("machine-3");
    env4.push(("RINGKV_JOIN", "auto".to_string()));
    let mut fourth = Entrypoint::start(dir.path(), "node3", &env4)?;
    fourth.wait_ready(Duration::from_secs(120))?;
    let deadline = Instant::now() + Duration::from_secs(120);
    while members(&founders)?.len() < 4 {
        anyhow::ensure!(
            Instant::now() < deadline,
            "the fourth node did not join:\n{}",
            fourth.said()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(
        members(&founders)?.contains(&(fourth.addr.clone(), "zone-a".to_string())),
        "{:?}",
        members(&founders)?
    );

    // SIGTERM to the script reaches ringkvd, which drains and exits 0; the script says so.
    nodes[0].terminate();
    let status = nodes[0].wait_exit(Duration::from_secs(60))?;
    assert!(status.success(), "{status}: {}", nodes[0].said());
    // Restarted after the cluster grew, the first founder founds nothing and serves again.
    let mut again = Entrypoint::start(dir.path(), "node0", &founder_env(0))?;
    again.addr = nodes[0].addr.clone();
    again.wait_ready(Duration::from_secs(120))?;
    again.wait_said("it founds nothing", Duration::from_secs(60))?;
    assert!(
        !again.said().contains("founded a cluster"),
        "{}",
        again.said()
    );
    assert_eq!(members(&founders)?.len(), 4);
    let got = cli(&founders, &["get", "kept"])?;
    assert!(got.contains("through-it-all"), "{got}");

    // Its volume lost, it comes back as a new node at the founder's address: it must not
    // found a second cluster around the others (it hears of theirs and waits to replace).
    again.terminate();
    again.wait_exit(Duration::from_secs(60))?;
    std::fs::remove_dir_all(dir.path().join("node0"))?;
    let mut wiped = Entrypoint::start(dir.path(), "node0", &founder_env(0))?;
    wiped.wait_said("it founds nothing", Duration::from_secs(60))?;
    assert!(
        !wiped.said().contains("founded a cluster"),
        "{}",
        wiped.said()
    );
    let seeds = format!("{},{}", nodes[1].addr, nodes[2].addr);
    let now = members(&seeds)?;
    assert_eq!(now.len(), 4, "{now:?}");
    let got = cli(&seeds, &["get", "kept"])?;
    assert!(got.contains("through-it-all"), "{got}");
    // Not a member (its place is the old node0's, until `cluster replace`): not ready.
    let (status, body) = http_get(wiped.admin, "/ready")?;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("not a member"), "{body}");
    nodes[0] = wiped;

    // The same for a node that joined by itself: back with a wiped disk, it must not join
    // again as a second member at its old address.
    fourth.terminate();
    fourth.wait_exit(Duration::from_secs(60))?;
    std::fs::remove_dir_all(dir.path().join("node3"))?;
    let mut env4 = env("machine-3");
    env4.push(("RINGKV_JOIN", "auto".to_string()));
    env4.push(("RINGKVD_LISTEN", fourth.addr.clone()));
    let mut wiped = Entrypoint::start(dir.path(), "node3", &env4)?;
    wiped.wait_said("cluster replace", Duration::from_secs(60))?;
    let now = members(&seeds)?;
    assert_eq!(now.len(), 4, "{now:?}");
    assert_eq!(
        now.iter().filter(|(addr, _)| *addr == fourth.addr).count(),
        1,
        "{now:?}"
    );
    Ok(())
}

/// The environment of a founder whose fellow founder never starts: its founding cannot
/// happen, and gives up after `timeout` seconds.
fn founder_without_its_peer(timeout: u32) -> Vec<(&'static str, String)> {
    let me = format!("127.0.0.1:{}", free_port());
    let absent = format!("127.0.0.1:{}", free_port());
    vec![
        ("RINGKVD_LISTEN", me.clone()),
        ("RINGKVD_SEEDS", absent.clone()),
        ("RINGKV_FOUNDERS", format!("{me},{absent}")),
        ("RINGKV_BOOTSTRAP_TIMEOUT", timeout.to_string()),
    ]
}

/// A stop during founding (the other founders not there yet) reaches ringkvd at once, not
/// after the founding gives up, and the script exits with ringkvd's status.
#[test]
fn a_stop_while_founding_stops_the_node_at_once() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let env = founder_without_its_peer(3600);
    let mut node = Entrypoint::start(dir.path(), "founding", &env)?;
    node.wait_health(Duration::from_secs(60))?;
    // Founding is under way (and cannot succeed): stop.
    std::thread::sleep(Duration::from_secs(1));
    node.terminate();
    // Well under the founding's own retries and the CLI's waits (10 s and more).
    let status = node.wait_exit(Duration::from_secs(8))?;
    assert!(status.success(), "{status}: {}", node.said());
    assert!(!node.said().contains("gave up"), "{}", node.said());
    Ok(())
}

#[test]
fn a_node_that_cannot_be_founded_stops_instead_of_serving_alone() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    // The other founder never starts.
    let env = founder_without_its_peer(3);
    let mut node = Entrypoint::start(dir.path(), "alone", &env)?;
    let status = node.wait_exit(Duration::from_secs(60))?;
    assert_eq!(status.code(), Some(1), "{}", node.said());
    assert!(node.said().contains("gave up after 3s"), "{}", node.said());
    // It stopped its ringkvd: nothing answers on the admin port.
    assert!(
        http_get(node.admin, "/health").is_err(),
        "ringkvd still runs"
    );
    Ok(())
}

#[test]
fn a_node_whose_zone_cannot_be_read_does_not_start() -> anyhow::Result<()> {
    static ZONES: [(&str, &str); 1] = [("unlabelled", "")];
    let dir = tempfile::tempdir()?;
    let api = format!("http://127.0.0.1:{}", fake_kubernetes(&ZONES)?);
    let sa = service_account(dir.path())?;
    let base = |machine: &str| {
        vec![
            ("RINGKV_NODE_NAME", machine.to_string()),
            ("RINGKV_KUBE_API", api.clone()),
            ("RINGKV_KUBE_SA", sa.display().to_string()),
        ]
    };
    // An API error (an unknown machine: 404) stops the node before ringkvd starts.
    let mut node = Entrypoint::start(dir.path(), "unknown", &base("no-such-machine"))?;
    let status = node.wait_exit(Duration::from_secs(60))?;
    assert_eq!(status.code(), Some(1), "{}", node.said());
    assert!(node.said().contains("could not read"), "{}", node.said());
    assert!(!dir.path().join("unknown").exists(), "ringkvd never ran");
    // A machine without a zone label: the node runs, with no zone.
    let mut node = Entrypoint::start(dir.path(), "plain", &base("unlabelled"))?;
    node.wait_health(Duration::from_secs(60))?;
    assert!(
        node.said().contains("no topology.kubernetes.io/zone label"),
        "{}",
        node.said()
    );
    Ok(())
}
