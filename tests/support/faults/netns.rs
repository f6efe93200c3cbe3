//! A scenario's own network namespace, and the firewall rules that cut links inside it.
//!
//! [`in_own_netns`] re-runs one test under `unshare --net`, so every rule [`Firewall`] adds
//! lives and dies with that namespace: a failed or interrupted scenario cannot leave the
//! machine's own network broken. Inside, nodes get 127.0.0.2, .3, ... ([`node_ip`]) and the
//! client keeps 127.0.0.1 ([`CLIENT_IP`]), so rules can single out any link.

use std::io::Write as _;
use std::net::Ipv4Addr;
use std::process::Command;
use std::sync::Mutex;

const NETNS_ENV: &str = "RINGKV_IN_NETNS";

/// Scenarios run one at a time: they share two cores and some measure timing.
static SERIAL: Mutex<()> = Mutex::new(());

/// Returns true inside the scenario's own network namespace (the caller then runs it).
/// Outside, re-runs this test binary, filtered to `test`, under `unshare --net`, waits for it,
/// and panics if it failed; then returns false and the caller returns.
pub fn in_own_netns(test: &str) -> bool {
    if std::env::var_os(NETNS_ENV).is_some() {
        let up = Command::new("ip")
            .args(["link", "set", "lo", "up"])
            .status();
        assert!(
            matches!(up, Ok(s) if s.success()),
            "cannot bring lo up in the namespace"
        );
        return true;
    }
    let _one_at_a_time = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let exe = std::env::current_exe().expect("test binary path");
    let output = Command::new("unshare")
        .args(["--net", "--"])
        .arg(exe)
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(NETNS_ENV, "1")
        .output()
        .expect("running unshare (util-linux; needs root or CAP_SYS_ADMIN)");
    // Pass the scenario's own lines through (straight to stdout, past the test harness's
    // capture, so they show in every run), but not the inner harness's summary lines: the
    // outer harness reports this test once.
    let mut out = std::io::stdout().lock();
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let harness = line.starts_with("running ")
            || line.starts_with("test result:")
            || line.is_empty()
            || line.ends_with(" ok")
            || line == "ok";
        if !harness {
            let _ = writeln!(
                out,
                "{}",
                line.trim_start_matches(&format!("test {test} ... "))
            );
        }
    }
    if !output.status.success() {
        let _ = out.write_all(&output.stderr);
    }
    drop(out);
    assert!(
        output.status.success(),
        "scenario {test} failed in its network namespace"
    );
    false
}

/// The address of node `i` of a cluster started with `own_addresses`.
pub fn node_ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, 2 + i as u8)
}

/// The client's address inside a scenario's namespace.
pub const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 1);

/// iptables rules in the scenario's own namespace (never the machine's).
#[derive(Debug)]
pub struct Firewall;

impl Firewall {
    /// Drops every packet from `from` to `to` (one direction).
    pub fn drop(from: Ipv4Addr, to: Ipv4Addr) {
        drop_rule(from, to, &[]);
    }

    /// Drops packets from `from` to `to` with probability `p`.
    pub fn drop_randomly(from: Ipv4Addr, to: Ipv4Addr, p: f64) {
        let p = p.to_string();
        drop_rule(
            from,
            to,
            &["-m", "statistic", "--mode", "random", "--probability", &p],
        );
    }

    /// Cuts `a` and `b` apart in both directions.
    pub fn partition(a: Ipv4Addr, b: Ipv4Addr) {
        Firewall::drop(a, b);
        Firewall::drop(b, a);
    }

    /// Removes every rule.
    pub fn heal() {
        iptables(&["-F", "OUTPUT"]);
    }
}

/// Appends an OUTPUT rule dropping packets from `from` to `to` that match `matches`.
fn drop_rule(from: Ipv4Addr, to: Ipv4Addr, matches: &[&str]) {
    let (from, to) = (from.to_string(), to.to_string());
    let mut args = vec!["-A", "OUTPUT", "-s", &from, "-d", &to];
    args.extend_from_slice(matches);
    args.extend_from_slice(&["-j", "DROP"]);
    iptables(&args);
}

fn iptables(args: &[&str]) {
    assert!(
        std::env::var_os(NETNS_ENV).is_some(),
        "iptables outside a test namespace"
    );
    let status = Command::new("iptables")
        .args(args)
        .status()
        .expect("running iptables");
    assert!(status.success(), "iptables {args:?} failed");
}
