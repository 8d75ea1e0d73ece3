//! The HTTP/1.1 connection loop: keep-alive, pipelining, chunked bodies; hands the socket over
//! to the WebSocket or EventSource loop when a request asks for one.

use super::bayeux_http::{self, Outcome};
use super::io::{READ_CHUNK, read_more};
use super::{eventsource, ws};
use crate::http::body::ChunkedDecoder;
use crate::http::request::Expect;
use crate::http::response::CONTINUE;
use crate::http::response::{Response, plain};
use crate::http::{BodyKind, Head, Limits, parse_head_into};
use crate::shard::{Node, RequestBody};
use bytes::{Buf, BytesMut};
use futures::future::Either;
use monoio::io::{AsyncWriteRent, AsyncWriteRentExt};
use monoio::net::TcpStream;
use std::net::IpAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::time::{Duration, Instant};

enum Body {
    /// A Content-Length body is split off the read buffer rather than copied out of it.
    Complete(RequestBody),
    Refused(u16),
    Closed,
}

/// A connection's one timer. It is moved, not made anew, for each read: moving it later only
/// updates the entry (the wheel files it again when the earlier time comes), so a busy
/// keep-alive connection does no timer-wheel work per request.
type Timer = Pin<Box<monoio::time::Sleep>>;

/// Reads more of a request, or gives up at `deadline`.
async fn read_until(
    stream: &mut TcpStream,
    buf: BytesMut,
    timer: &mut Timer,
    deadline: Instant,
) -> Option<BytesMut> {
    let deadline = monoio::time::Instant::from_std(deadline);
    if timer.deadline() != deadline {
        timer.as_mut().reset(deadline);
    }
    let read = std::pin::pin!(read_more(stream, buf));
    match futures::future::select(read, timer.as_mut()).await {
        Either::Left(((Ok(n), b), _)) if n > 0 => Some(b),
        _ => None,
    }
}

/// Whether the connection's time ran out in the middle of a request (answer 408) rather than
/// between requests (just close).
fn mid_request(buf_len: usize, deadline: Option<Instant>) -> bool {
    buf_len > 0 && deadline.is_some_and(|d| Instant::now() >= d)
}

/// Serves one accepted connection; `peer_ip` is the address `accept` gave.
pub async fn serve(node: Rc<Node>, mut stream: TcpStream, peer_ip: Option<IpAddr>) {
    let _http = crate::metrics::Open::new(&node.stats, node.me, crate::metrics::Transport::Http);
    let limits = Limits::default();
    let (head_time, idle) = (node.settings.header_timeout, node.settings.idle_timeout);
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    // A new connection owes its first request head within the header timeout.
    let mut deadline = Some(Instant::now() + head_time);
    let mut timer: Timer = Box::pin(monoio::time::sleep(head_time));
    let mut out = Vec::new();
    // One head for all the connection's requests, so each parse reuses its buffers.
    let mut head = Head::default();
    loop {
        match parse_head_into(&buf, &limits, &mut head) {
            Ok(Some(used)) => {
                buf.advance(used);
                deadline = None;
            }
            Ok(None) => {
                let len = buf.len();
                // Part of a head is already here (pipelined after the last request): the header
                // timeout runs from now, not the idle one.
                if len > 0 && deadline.is_none() {
                    deadline = Some(Instant::now() + head_time);
                }
                // Between requests the connection may wait `idle` for the next one.
                let until = deadline.unwrap_or_else(|| Instant::now() + idle);
                match read_until(&mut stream, buf, &mut timer, until).await {
                    Some(b) => buf = b,
                    None => {
                        if mid_request(len, deadline) {
                            let timeout = plain(408, "Request timeout");
                            let _ = write(&mut stream, timeout.header("Connection", "close")).await;
                        }
                        return;
                    }
                }
                // A head that this read left incomplete gets its deadline above, on the next
                // turn, so a head read whole takes no time reading.
                continue;
            }
            Err(e) => {
                let _ = write(
                    &mut stream,
                    plain(e.status(), "Bad request").header("Connection", "close"),
                )
                .await;
                return;
            }
        }
        let path = head.path();
        let mount = node.settings.mount_for(path);
        if crate::websocket::handshake::wants_upgrade(
            head.header("connection"),
            head.header("upgrade"),
        ) && head.method() == "GET"
        {
            match mount {
                Some(mount) => {
                    // The socket leaves this loop (parked, or in a task of its own), so an
                    // idle socket keeps none of its state.
                    let ip = client_ip(&node, &head).or(peer_ip);
                    let upgrade = ws::Upgrade::from_head(&node, mount, &head, ip);
                    drop(head);
                    ws::upgrade(node, stream, mount, upgrade, buf);
                    return;
                }
                None => {
                    let _ = write(
                        &mut stream,
                        Response::new(404).header("Connection", "close"),
                    )
                    .await;
                    return;
                }
            }
        }
        let max_body = node.settings.max_body;
        let body = match read_body(
            &mut stream,
            &mut buf,
            &head,
            max_body,
            &mut timer,
            head_time,
        )
        .await
        {
            Body::Complete(b) => b,
            Body::Closed => return,
            Body::Refused(status) => {
                let text = match status {
                    413 => "Request body too large",
                    408 => "Request timeout",
                    417 => "Only 100-continue is supported in Expect",
                    _ => "Bad request",
                };
                let _ = write(
                    &mut stream,
                    plain(status, text).header("Connection", "close"),
                )
                .await;
                return;
            }
        };
        let outcome = match mount {
            None => Outcome::Reply(Response::new(404)),
            Some(mount) => {
                let ip = client_ip(&node, &head).or(peer_ip);
                bayeux_http::respond(&node, mount, &head, path, body, ip).await
            }
        };
        match outcome {
            Outcome::EventSource { mount, client_id } => {
                monoio::spawn(eventsource::start(node, stream, mount, client_id));
                return;
            }
            Outcome::Reply(mut resp) => {
                // While draining, every reply closes its connection so clients reconnect elsewhere.
                // The process-wide flag, not only this worker's (which follows it on its next
                // tick): a reply from another worker's drain must close this connection too.
                let keep_alive =
                    head.keep_alive && !node.draining() && !node.lifecycle.is_draining();
                if !keep_alive {
                    resp = resp.header("Connection", "close");
                }
                let written = send(&mut stream, &mut out, resp).await;
                node.wrote();
                if written.is_err() || !keep_alive {
                    let _ = stream.shutdown().await;
                    return;
                }
            }
        }
        if buf.is_empty() && buf.capacity() > 4 * READ_CHUNK {
            buf = BytesMut::with_capacity(READ_CHUNK);
        }
    }
}

/// Largest reply buffer a connection keeps for its next reply.
const KEEP_OUT: usize = 16 * 1024;

/// Writes a response through `out`, the connection's reply buffer (empty between replies),
/// which is kept for the next one unless it grew past `KEEP_OUT`.
async fn send(stream: &mut TcpStream, out: &mut Vec<u8>, resp: Response) -> std::io::Result<()> {
    let mut buf = std::mem::take(out);
    resp.write_to(&mut buf);
    let (res, mut buf) = stream.write_all(buf).await;
    if buf.capacity() <= KEEP_OUT {
        buf.clear();
        *out = buf;
    }
    res.map(|_| ())
}

/// Writes a last response, before the connection closes.
async fn write(stream: &mut TcpStream, resp: Response) -> std::io::Result<()> {
    send(stream, &mut Vec::new(), resp).await
}

/// The client address a trusted proxy put in the configured header (its last entry, the one the
/// proxy itself added).
pub fn client_ip(node: &Node, head: &Head) -> Option<IpAddr> {
    let name = node.settings.client_ip_header.as_deref()?;
    let value = head.header_str(name)?;
    let last = value.rsplit(',').next()?.trim();
    last.parse::<IpAddr>()
        .ok()
        .or_else(|| last.parse::<std::net::SocketAddr>().ok().map(|a| a.ip()))
}

/// Reads the body the head announced; the part not already read must come within `time`.
async fn read_body(
    stream: &mut TcpStream,
    buf: &mut BytesMut,
    head: &Head,
    max: usize,
    timer: &mut Timer,
    time: Duration,
) -> Body {
    // Taken at the first read, so a body that came with its head takes no time reading.
    let mut deadline = None;
    let mut deadline = || *deadline.get_or_insert_with(|| Instant::now() + time);
    // A client that sent `Expect: 100-continue` waits for the 100 before its body; it is sent
    // once, just before the first read of a body that will be read (a refusal is sent instead
    // of it, and the connection closes before any body arrives).
    let mut expecting = match head.expect() {
        Expect::Unmet => return Body::Refused(417),
        Expect::Continue => true,
        Expect::Nothing => false,
    };
    match head.body {
        BodyKind::Empty => Body::Complete(Vec::new().into()),
        BodyKind::Length(n) => {
            let Ok(n) = usize::try_from(n) else {
                return Body::Refused(413);
            };
            if n > max {
                return Body::Refused(413);
            }
            while buf.len() < n {
                if std::mem::take(&mut expecting) && stream.write_all(CONTINUE).await.0.is_err() {
                    return Body::Closed;
                }
                let deadline = deadline();
                match read_until(stream, std::mem::take(buf), timer, deadline).await {
                    Some(b) => *buf = b,
                    None if Instant::now() >= deadline => return Body::Refused(408),
                    None => return Body::Closed,
                }
            }
            Body::Complete(buf.split_to(n).into())
        }
        BodyKind::Chunked => {
            let mut decoder = ChunkedDecoder::new(max);
            let mut out = Vec::new();
            loop {
                match decoder.decode(buf, &mut out) {
                    Ok(true) => return Body::Complete(out.into()),
                    Ok(false) => {}
                    Err(e) => return Body::Refused(e.status()),
                }
                if std::mem::take(&mut expecting) && stream.write_all(CONTINUE).await.0.is_err() {
                    return Body::Closed;
                }
                let deadline = deadline();
                match read_until(stream, std::mem::take(buf), timer, deadline).await {
                    Some(b) => *buf = b,
                    None if Instant::now() >= deadline => return Body::Refused(408),
                    None => return Body::Closed,
                }
            }
        }
    }
}
