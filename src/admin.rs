//! The admin listener: `GET /healthz` (the process is alive), `GET /readyz` (every worker
//! serves, and not draining), `GET /metrics` (Prometheus text), and the operator's console
//! (`GET /`, `/api/stats`: `crate::console`). It runs on threads of its own with blocking I/O,
//! one per connection up to [`MAX_CONNECTIONS`], away from the workers, so a probe never queues
//! behind client traffic, nor behind a console page being read slowly.

use crate::console::Console;
use crate::http::response::plain;
use crate::http::{Limits, parse_head};
use crate::metrics::Stats;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

/// How long a probe may take to send its request.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// Admin connections served at once; more are answered 503 at once.
const MAX_CONNECTIONS: usize = 32;
/// The largest request body read (the console's sign-in form).
const MAX_BODY: usize = 4096;

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
    console: Arc<Console>,
) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr)?;
    let bound = listener.local_addr()?;
    let open = Arc::new(AtomicUsize::new(0));
    std::thread::Builder::new()
        .name("bayou-admin".into())
        .spawn(move || {
            for mut stream in listener.incoming().flatten() {
                if open.fetch_add(1, Ordering::AcqRel) >= MAX_CONNECTIONS {
                    open.fetch_sub(1, Ordering::AcqRel);
                    let _ = write(&mut stream, plain(503, "Busy\n"));
                    continue;
                }
                let (health, stats, console, done) =
                    (health.clone(), stats.clone(), console.clone(), open.clone());
                let spawned = std::thread::Builder::new()
                    .name("bayou-admin-conn".into())
                    .spawn(move || {
                        let _ = serve(stream, &health, &stats, &console);
                        done.fetch_sub(1, Ordering::AcqRel);
                    });
                if spawned.is_err() {
                    open.fetch_sub(1, Ordering::AcqRel);
                }
            }
        })?;
    Ok(bound)
}

fn serve(
    mut stream: TcpStream,
    health: &Health,
    stats: &Stats,
    console: &Console,
) -> std::io::Result<()> {
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
            Ok(Some((head, used))) => break (head, used),
            Ok(None) if len < buf.len() => continue,
            _ => return write(&mut stream, plain(400, "Bad request")),
        }
    };
    let (head, used) = head;
    // A small body (the sign-in form), read whole.
    let want = head
        .header_str("content-length")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(0);
    if want > MAX_BODY {
        return write(&mut stream, plain(413, "Request body too large"));
    }
    let mut body = buf[used..len].to_vec();
    while body.len() < want {
        let mut more = [0u8; 1024];
        let n = stream.read(&mut more)?;
        if n == 0 {
            return Ok(());
        }
        body.extend_from_slice(&more[..n]);
    }
    body.truncate(want);
    if let Some(resp) = console.answer(&head, &body, stats) {
        return write(&mut stream, resp);
    }
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
