//! The `ringkvd` command line: precedence of flags, environment and file, and clear errors.
//! (Being an integration test of this package also makes `cargo test` build the binary that
//! the end-to-end tests in `tests/` start.)

use std::process::Command;

fn ringkvd() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ringkvd"));
    for (key, _) in std::env::vars() {
        if key.starts_with("RINGKVD_") {
            cmd.env_remove(key);
        }
    }
    cmd
}

fn effective_config(cmd: &mut Command) -> String {
    let out = cmd.arg("--print-config").output().expect("run ringkvd");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

#[test]
fn flag_beats_environment_beats_file_beats_default() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("n.toml");
    std::fs::write(
        &file,
        "weight = 2\ncluster_name = \"from-file\"\nlisten = \"127.0.0.1:9100\"\n",
    )
    .expect("write");

    let defaults = effective_config(&mut ringkvd());
    assert!(defaults.contains("weight = 1"), "{defaults}");

    let from_file = effective_config(ringkvd().arg("-c").arg(&file));
    assert!(
        from_file.contains("weight = 2") && from_file.contains("from-file"),
        "{from_file}"
    );

    let from_env = effective_config(ringkvd().arg("-c").arg(&file).env("RINGKVD_WEIGHT", "3"));
    assert!(
        from_env.contains("weight = 3") && from_env.contains("from-file"),
        "{from_env}"
    );

    let from_flag = effective_config(
        ringkvd()
            .arg("-c")
            .arg(&file)
            .env("RINGKVD_WEIGHT", "3")
            .args(["--weight", "4"]),
    );
    assert!(from_flag.contains("weight = 4"), "{from_flag}");
}

#[test]
fn bad_settings_are_refused_with_a_message_naming_them() {
    let out = ringkvd()
        .args(["--weight", "0", "--print-config"])
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("weight must be at least 1"));

    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("typo.toml");
    std::fs::write(&file, "wieght = 2\n").expect("write");
    let out = ringkvd()
        .arg("-c")
        .arg(&file)
        .arg("--print-config")
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("wieght"));

    let out = ringkvd()
        .arg("-c")
        .arg(dir.path().join("missing.toml"))
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.toml"));
}

#[test]
fn json_logs_are_one_object_per_line() {
    use std::io::BufRead as _;
    let dir = tempfile::tempdir().expect("tempdir");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let mut child = ringkvd()
        .args([
            "--log-format",
            "json",
            "--listen",
            &format!("127.0.0.1:{port}"),
        ])
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .env("RUST_LOG", "info")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start ringkvd");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let mut ready = None;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while ready.is_none() && std::time::Instant::now() < deadline {
        let Ok(line) = rx.recv_timeout(std::time::Duration::from_secs(1)) else {
            continue;
        };
        let event: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        if event["fields"]["message"] == "ringkvd ready" {
            ready = Some(event);
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let ready = ready.expect("ringkvd logged its start");
    assert_eq!(ready["level"], "INFO", "{ready}");
    assert!(ready["timestamp"].is_string(), "{ready}");
}
