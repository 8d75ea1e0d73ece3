//! The WebSocket upgrade (spec 2.6): checks an upgrade request, answers it, and gives the
//! socket to the table (parked) or to its tasks.

use super::sys::send_now;
use super::task::{park_new, run};
use crate::http::Head;
use crate::http::response::{Response, plain};
use crate::shard::{Node, Peer};
use crate::websocket::handshake;
use bytes::{Bytes, BytesMut};
use monoio::io::AsyncWriteRentExt;
use monoio::net::TcpStream;
use std::net::IpAddr;
use std::os::fd::AsRawFd;
use std::rc::Rc;

/// An upgrade request, answered while its head is still at hand: the origin and bearer checks
/// and the handshake read the header values in place, so nothing is copied out of the head.
pub struct Upgrade {
    peer: Peer,
    /// The 101's `Sec-WebSocket-Accept` value, or the refusal to send before closing.
    answer: Result<String, Response>,
}

impl Upgrade {
    pub fn from_head(node: &Node, mount: usize, head: &Head, ip: Option<IpAddr>) -> Upgrade {
        let auth = &node.settings.policy(mount).auth;
        let peer = crate::transport::peer_of(node, mount, head, ip);
        let answer = if !auth.origin_ok(head.header_str("origin")) {
            Err(plain(403, "Origin not allowed"))
        } else {
            handshake::accept(
                head.header("upgrade"),
                head.header("sec-websocket-version"),
                head.header("sec-websocket-key"),
            )
            .map_err(|refusal| plain(handshake::UpgradeRefusal::STATUS, &refusal.body()))
        };
        Upgrade { peer, answer }
    }
}

/// Answers an upgrade request and runs the socket. Most sockets need no task for it: the 101
/// goes out in one non-blocking send (a new connection's send buffer is empty) and a socket
/// with nothing sent behind its request parks at once. A refusal, a send that took only part
/// of the 101 and input already waiting go on in a task.
pub fn upgrade(node: Rc<Node>, stream: TcpStream, mount: usize, req: Upgrade, leftover: BytesMut) {
    let Upgrade { peer, answer } = req;
    let key = match answer {
        Ok(key) => key,
        Err(refusal) => {
            monoio::spawn(refuse(stream, refusal));
            return;
        }
    };
    let mut reply = vec![Bytes::from(handshake::response_101(&key))];
    if send_now(stream.as_raw_fd(), &mut reply).is_err() {
        // The connection is gone: dropping the stream closes it.
        return;
    }
    if reply.is_empty() && leftover.is_empty() {
        park_new(&node, stream, mount, peer);
        return;
    }
    monoio::spawn(async move {
        let mut stream = stream;
        if let Some(rest) = reply.pop()
            && stream.write_all(rest).await.0.is_err()
        {
            return;
        }
        run(node, stream, mount, leftover, None, peer).await;
    });
}

/// Sends an upgrade's refusal, then closes.
async fn refuse(mut stream: TcpStream, refusal: Response) {
    let mut out = Vec::new();
    refusal.header("Connection", "close").write_to(&mut out);
    let _ = stream.write_all(out).await;
}
