//! A minimal HTTP/1.1 client for the nodes' admin endpoint (`/health`, `/ready`, `/metrics`).
//!
//! One request per connection, `Connection: close`, the whole answer read to the end: enough
//! to check a status code and a body, with no HTTP library to build.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;

/// `GET path` from an HTTP server at `addr` (the admin endpoint): its status and body.
pub fn http_get(addr: SocketAddr, path: &str) -> anyhow::Result<(u16, String)> {
    http_request(addr, "GET", path, None)
}

/// `POST path` with an empty body; see [`http_get`].
pub fn http_post(addr: SocketAddr, path: &str) -> anyhow::Result<(u16, String)> {
    http_request(addr, "POST", path, None)
}

/// `POST path` with `Authorization: Bearer <bearer>`.
pub fn http_post_bearer(
    addr: SocketAddr,
    path: &str,
    bearer: &str,
) -> anyhow::Result<(u16, String)> {
    http_request(addr, "POST", path, Some(bearer))
}

fn http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    bearer: Option<&str>,
) -> anyhow::Result<(u16, String)> {
    use std::io::{Read as _, Write as _};
    let mut stream = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let auth = bearer
        .map(|b| format!("Authorization: Bearer {b}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Content-Length: 0\r\nConnection: close\r\n\r\n"
    )?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    let (head, body) = answer
        .split_once("\r\n\r\n")
        .context("an HTTP answer without a blank line")?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context("an HTTP status line")?;
    Ok((status, body.to_string()))
}
