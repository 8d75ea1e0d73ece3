//! EventSource streams (spec 2.7): `GET <mount>/<clientId>` with `Accept: text/event-stream`,
//! written raw as faye-websocket does, one `data:` event per delivery, keep-alive comments.

use super::io::{COALESCE_MAX, into_owned_fd, write_frames};
use crate::config::EVENTSOURCE_PING_SECS;
use crate::engine::{Outbox, OutboxKind};
use crate::shard::{Adopt, Envelope, Node};
use bytes::Bytes;
use monoio::io::{AsyncWriteRent, AsyncWriteRentExt};
use monoio::net::TcpStream;
use std::rc::Rc;
use std::time::Duration;

const HEAD: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache, no-store\r\nConnection: close\r\n\r\nretry: 5000\r\n\r\n";

/// Starts a stream, first moving the socket to the worker of the session if it is another one.
pub async fn start(node: Rc<Node>, stream: TcpStream, mount: usize, client_id: String) {
    if let Some(to) = node.foreign_owner(client_id.as_bytes()) {
        let fd = into_owned_fd(stream);
        node.send(
            to,
            Envelope::Adopt {
                fd,
                mount,
                kind: Adopt::EventSource { client_id },
            },
        );
        return;
    }
    run(node, stream, mount, client_id).await;
}

pub async fn run(node: Rc<Node>, mut stream: TcpStream, mount: usize, client_id: String) {
    // With a cluster, the session comes to the stream (as Faye, a stream for no session is
    // still opened: it gets nothing).
    node.take_session(mount, &client_id).await;
    if stream.write_all(HEAD).await.0.is_err() {
        return;
    }
    let _gauge =
        crate::metrics::Open::new(&node.stats, node.me, crate::metrics::Transport::EventSource);
    let stats = &node.my_stats().mounts[mount];
    crate::metrics::add(&stats.eventsources, 1);
    let _mount_gauge = OnDrop(|| crate::metrics::sub(&stats.eventsources, 1));
    let outbox = Rc::new(Outbox::new(node.socket_id(), OutboxKind::EventSource));
    node.register_socket(&outbox);
    node.engine
        .borrow_mut()
        .bind_stream(mount, &client_id, outbox.clone());
    let every = node
        .settings
        .policy(mount)
        .ping
        .unwrap_or(Duration::from_secs_f64(EVENTSOURCE_PING_SECS));
    let mut frames = Vec::new();
    loop {
        if !outbox.has_queued()
            && monoio::time::timeout(every, outbox.signal.wait())
                .await
                .is_err()
        {
            outbox.push(Bytes::from_static(b":\r\n\r\n"));
        }
        // A write's worth at a time: what waits behind it goes back to the session if the
        // stream breaks.
        outbox.drain_upto(&mut frames, COALESCE_MAX);
        if !frames.is_empty() {
            if write_frames(&mut stream, &mut frames).await.is_err() {
                break;
            }
            node.wrote();
        }
        if outbox.closing().is_some() {
            let _ = stream.shutdown().await;
            break;
        }
    }
    node.engine.borrow_mut().socket_gone(&outbox);
    node.unregister_socket(outbox.id);
}

/// Runs a closure when dropped (a gauge taken back however the stream ends).
struct OnDrop<F: FnMut()>(F);

impl<F: FnMut()> Drop for OnDrop<F> {
    fn drop(&mut self) {
        (self.0)();
    }
}
