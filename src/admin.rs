//! The admin listener: `GET /healthz` (the process is alive), `GET /readyz` (every worker
//! serves, and not draining) and `GET /metrics` (Prometheus text). It runs on its own small thread with blocking I/O, away from the workers, so a
//! probe can never queue behind client traffic.

use crate::http::response::plain;
use crate::http::{Limits, parse_head};
use crate::metrics::Stats;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// How long a probe may take to send its request.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// What the admin endpoints report.
#[derive(Default)]
pub struct Health {
    /// Every worker is serving.
    pub ready: AtomicBool,
}

/// Binds the admin listener and serves it on a thread of its own.
pub fn start(
    addr: SocketAddr,
    health: Arc<Health>,
    stats: Arc<Stats>,
) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr)?;
    let bound = listener.local_addr()?;
    std::thread::Builder::new()
        .name("bayou-admin".into())
        .spawn(move || {
            for stream in listener.incoming().flatten() {
                let _ = serve(stream, &health, &stats);
            }
        })?;
    Ok(bound)
}

fn serve(mut stream: TcpStream, health: &Health, stats: &Stats) -> std::io::Result<()> {
    stream.set_read_timeout(Some(PROBE_TIMEOUT))?;
    stream.set_write_timeout(Some(PROBE_TIMEOUT))?;
    let mut buf = vec![0u8; 2048];
    let mut len = 0;
    let head = loop {
        let n = stream.read(&mut buf[len..])?;
        if n == 0 {
            return Ok(());
        }
        len += n;
        match parse_head(
            &buf[..len],
            &Limits {
                max_head: buf.len(),
                max_headers: 32,
            },
        ) {
            Ok(Some((head, _))) => break head,
            Ok(None) if len < buf.len() => continue,
            _ => return write(&mut stream, plain(400, "Bad request")),
        }
    };
    let resp = match (head.method(), head.path()) {
        ("GET", "/healthz") => plain(200, "ok\n"),
        ("GET", "/readyz") if health.ready.load(Ordering::Acquire) => plain(200, &readiness(stats)),
        ("GET", "/readyz") => plain(503, "not ready\n"),
        ("GET", "/metrics") => crate::http::Response::new(200)
            .header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
            .body(stats.render()),
        _ => plain(404, "Not found\n"),
    };
    write(&mut stream, resp)
}

/// The ready answer's body: with a backplane, whether it is up. A task whose Redis is down
/// stays ready (its own clients are still served); the body and `/metrics` say so.
fn readiness(stats: &Stats) -> String {
    match stats.backplane.get() {
        Some(b) if b.is_up() => "ready\nbackplane: up\n".into(),
        Some(_) => "ready\nbackplane: down (local delivery only; reconnecting)\n".into(),
        None => "ready\n".into(),
    }
}

fn write(stream: &mut TcpStream, resp: crate::http::Response) -> std::io::Result<()> {
    let mut out = Vec::new();
    resp.header("Connection", "close").write_to(&mut out);
    stream.write_all(&out)
}

/// `bayou --health-check`: true when the admin listener answers /healthz with 200.
pub fn probe(mut addr: SocketAddr) -> bool {
    if addr.ip().is_unspecified() {
        addr.set_ip(if addr.is_ipv4() {
            [127, 0, 0, 1].into()
        } else {
            std::net::Ipv6Addr::LOCALHOST.into()
        });
    }
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, PROBE_TIMEOUT) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(PROBE_TIMEOUT));
    if stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: bayou\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut reply = Vec::new();
    let _ = stream.take(4096).read_to_end(&mut reply);
    reply.starts_with(b"HTTP/1.1 200 ")
}
