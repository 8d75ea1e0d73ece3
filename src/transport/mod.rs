//! Sockets: the accept loop, the HTTP/1.1 connection loop and its Bayeux endpoints (JSON POST,
//! form POST, JSON-P GET, CORS, static client), WebSocket and EventSource push sockets, and the
//! per-worker table where idle WebSockets park without a task.

pub mod bayeux_http;
pub mod conn;
pub mod eventsource;
pub mod io;
pub mod static_files;
pub mod ws;

pub use io::{READ_CHUNK, read_more};

use crate::shard::{Adopt, Node};
use bytes::BytesMut;
use monoio::net::{TcpListener, TcpStream};
use std::os::fd::{AsRawFd, OwnedFd};
use std::rc::Rc;
use std::time::Duration;

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
