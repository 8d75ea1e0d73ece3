//! Sockets: the accept loop, the HTTP/1.1 connection loop and its Bayeux endpoints (JSON POST,
//! form POST, JSON-P GET, CORS, static client), WebSocket and EventSource push sockets, and the
//! per-worker table where idle WebSockets park without a task.

pub mod bayeux_http;
pub mod conn;
pub mod eventsource;
pub mod hook;
pub mod io;

pub mod ws;

pub use io::{READ_CHUNK, read_more};

use crate::http::Head;
use crate::shard::{Adopt, Forwarded, Node, Peer};
use bytes::BytesMut;
use monoio::net::{TcpListener, TcpStream};
use std::net::IpAddr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::rc::Rc;
use std::time::Duration;

/// Who sent a request on `mount`: its address, whether it carried the publish secret as a
/// bearer token, and the headers the mount's authorisation hook forwards.
pub fn peer_of(node: &Node, mount: usize, head: &Head, ip: Option<IpAddr>) -> Peer {
    let policy = node.settings.policy(mount);
    Peer {
        ip,
        bearer: policy.auth.bearer_ok(head.header_str("authorization")),
        forwarded: policy
            .hook
            .as_ref()
            .filter(|h| !h.config.headers.is_empty())
            .map(|h| forwarded(head, &h.config.headers)),
    }
}

/// The headers called `names` that `head` has; a repeated one is joined as HTTP joins it
/// (`; ` for cookies, `, ` otherwise).
fn forwarded(head: &Head, names: &[String]) -> Forwarded {
    let mut out = Vec::new();
    for name in names {
        let mut value: Option<String> = None;
        for (n, v) in head.headers() {
            if !n.eq_ignore_ascii_case(name) {
                continue;
            }
            let v = String::from_utf8_lossy(v);
            let v = v.trim_matches(|c| c == ' ' || c == '\t');
            match value.as_mut() {
                Some(joined) => {
                    joined.push_str(if name == "cookie" { "; " } else { ", " });
                    joined.push_str(v);
                }
                None => value = Some(v.to_owned()),
            }
        }
        if let Some(v) = value {
            out.push((name.clone(), v));
        }
    }
    out.into()
}

/// Accepts connections until the drain begins, serving each on this worker. Then the
/// listening socket stops listening, so that a balancer's new connections are refused (and
/// retried on another process) rather than accepted and closed unanswered.
pub async fn accept_loop(node: Rc<Node>, listener: TcpListener) {
    if let Err(e) = ws::start(&node) {
        tracing::error!(worker = node.me, error = %e, "cannot start the WebSocket table");
        return;
    }
    let fd = listener.as_raw_fd();
    node.at_drain(Box::new(move || {
        // SAFETY: `fd` is the listener's, open until the loop below ends and drops it, and the
        // loop ends only once it sees the drain, after this ran (both on this thread).
        // shutdown() on a listening socket stops it listening and wakes the pending accept
        // with an error; it does not close the descriptor.
        unsafe { libc::shutdown(fd, libc::SHUT_RD) };
    }));
    loop {
        match listener.accept().await {
            _ if node.draining() => break,
            Ok((stream, addr)) => {
                let _ = stream.set_nodelay(true);
                monoio::spawn(conn::serve(node.clone(), stream, Some(addr.ip())));
            }
            Err(e) => {
                tracing::warn!(worker = node.me, error = %e, "accept failed");
                monoio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    // Closed now; the worker goes on serving its connections until the process exits (its
    // main future must not end: that is how a worker that failed is told apart).
    drop(listener);
    std::future::pending::<()>().await
}

/// Takes a socket another worker handed over because its session lives here.
pub fn adopt(node: &Rc<Node>, fd: OwnedFd, mount: usize, kind: Adopt) {
    let std_stream = std::net::TcpStream::from(fd);
    let _ = std_stream.set_nonblocking(true);
    let stream = match TcpStream::from_std(std_stream) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(worker = node.me, error = %e, "could not adopt a socket");
            return;
        }
    };
    let node = node.clone();
    match kind {
        Adopt::WebSocket {
            first,
            leftover,
            peer,
        } => {
            monoio::spawn(ws::run(
                node,
                stream,
                mount,
                BytesMut::from(&leftover[..]),
                Some(first),
                peer,
            ));
        }
        Adopt::EventSource { client_id } => {
            monoio::spawn(eventsource::run(node, stream, mount, client_id));
        }
    }
}
