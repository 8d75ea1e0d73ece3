//! WebSocket connections (spec 2.6): a reader task decoding frames and running each text
//! message as a Bayeux batch, a writer task draining the outbox in one write per wake-up.
//! When a message names a session of another worker, the socket moves to that worker, so a
//! session's deliveries are always written by the worker that holds it.

use super::read_more;
use crate::bayeux::json::BodyError;
use crate::engine::{Outbox, OutboxKind, frame_for};
use crate::http::Head;
use crate::http::response::plain;
use crate::shard::router::first_client_id;
use crate::shard::{Adopt, Envelope, Node, Peer, Via};
use crate::websocket::frame::{CloseCode, Decoder, Message, Opcode, close_payload, encode};
use crate::websocket::handshake;
use bytes::{Bytes, BytesMut};
use monoio::io::{AsyncWriteRent, AsyncWriteRentExt, OwnedWriteHalf, Splitable};
use monoio::net::TcpStream;
use std::cell::Cell;
use std::net::IpAddr;
use std::os::fd::{FromRawFd, IntoRawFd, OwnedFd};
use std::rc::Rc;

/// The headers of an upgrade request that matter.
pub struct Upgrade {
    upgrade: Option<Vec<u8>>,
    version: Option<Vec<u8>>,
    key: Option<Vec<u8>>,
    origin: Option<String>,
    authorization: Option<String>,
    ip: Option<IpAddr>,
}

impl Upgrade {
    pub fn from_head(head: &Head, ip: Option<IpAddr>) -> Upgrade {
        let get = |name| head.header(name).map(<[u8]>::to_vec);
        let text = |name| head.header_str(name).map(str::to_owned);
        Upgrade {
            upgrade: get("upgrade"),
            version: get("sec-websocket-version"),
            key: get("sec-websocket-key"),
            origin: text("origin"),
            authorization: text("authorization"),
            ip,
        }
    }
}

/// Answers an upgrade request and runs the socket.
pub async fn upgrade(
    node: Rc<Node>,
    mut stream: TcpStream,
    mount: usize,
    req: Upgrade,
    leftover: BytesMut,
) {
    let auth = &node.settings.policy(mount).auth;
    if !auth.origin_ok(req.origin.as_deref()) {
        let mut out = BytesMut::new();
        plain(403, "Origin not allowed")
            .header("Connection", "close")
            .write_to(&mut out);
        let _ = stream.write_all(out).await;
        return;
    }
    let peer = Peer {
        ip: req.ip,
        bearer: auth.bearer_ok(req.authorization.as_deref()),
    };
    let accepted = handshake::accept(
        req.upgrade.as_deref(),
        req.version.as_deref(),
        req.key.as_deref(),
    );
    drop(req);
    let bytes = match accepted {
        Ok(key) => handshake::response_101(&key),
        Err(refusal) => {
            let mut out = BytesMut::new();
            plain(handshake::Refusal::STATUS, &refusal.body())
                .header("Connection", "close")
                .write_to(&mut out);
            let _ = stream.write_all(out).await;
            return;
        }
    };
    if stream.write_all(bytes).await.0.is_err() {
        return;
    }
    run(node, stream, mount, leftover, None, peer).await;
}

/// Why the reader stopped.
enum End {
    Closed,
    /// The socket must move to this worker, starting with this message.
    HandOff(usize, Vec<u8>),
}

/// Runs an upgraded socket; `first` is a message another worker read but did not handle.
pub async fn run(
    node: Rc<Node>,
    stream: TcpStream,
    mount: usize,
    mut buf: BytesMut,
    first: Option<Vec<u8>>,
    peer: Peer,
) {
    let _gauge =
        crate::metrics::Open::new(&node.stats, node.me, crate::metrics::Transport::WebSocket);
    let outbox = Rc::new(Outbox::new(node.socket_id(), OutboxKind::WebSocket));
    node.register_socket(&outbox);
    let hand_off = Rc::new(Cell::new(false));
    let (mut rd, wr) = stream.into_split();
    let writer = monoio::spawn(write_loop(
        node.clone(),
        mount,
        wr,
        outbox.clone(),
        hand_off.clone(),
    ));
    let mut decoder = Decoder::new(node.settings.max_message);
    let mut end = End::Closed;
    if let Some(text) = first {
        end = Box::pin(on_text(&node, mount, &outbox, text, peer)).await;
    }
    while matches!(end, End::Closed) && outbox.closing().is_none() {
        match decoder.decode(&mut buf) {
            Ok(Some(Message::Text(text))) => {
                end = Box::pin(on_text(&node, mount, &outbox, text, peer)).await
            }
            Ok(Some(Message::Ping(payload))) => outbox.push(control(Opcode::Pong, &payload)),
            Ok(Some(Message::Close { code, .. })) => outbox.close_after_flush(code.unwrap_or(1000)),
            Ok(Some(Message::Binary(_) | Message::Pong(_))) => {}
            Err(code) => outbox.close_after_flush(code.0),
            Ok(None) => {
                if buf.is_empty() && decoder.is_idle() {
                    // Idle: hold no read buffer while waiting (a readiness poll needs none).
                    buf = BytesMut::new();
                    // SAFETY: waiting for readiness touches no buffer and runs beside the writer
                    // exactly as a read would; monoio's split halves share the stream this way.
                    let stream = unsafe { &*rd.0.get() };
                    if stream.readable(false).await.is_err() {
                        break;
                    }
                }
                let (res, b) = read_more(&mut rd, buf).await;
                buf = b;
                if !matches!(res, Ok(n) if n > 0) {
                    break;
                }
            }
        }
    }
    if let End::HandOff(to, text) = end {
        node.unregister_socket(outbox.id);
        hand_off.set(true);
        outbox.signal.notify();
        if let Some(wr) = writer.await
            && let Ok(stream) = rd.reunite(wr)
        {
            let fd = unsafe { OwnedFd::from_raw_fd(stream.into_raw_fd()) };
            let kind = Adopt::WebSocket {
                first: text,
                leftover: buf.to_vec(),
                peer,
            };
            node.send(to, Envelope::Adopt { fd, mount, kind });
        }
        return;
    }
    if outbox.closing().is_none() {
        outbox.close_after_flush(CloseCode::NORMAL.0);
    }
    node.engine.borrow_mut().socket_gone(outbox.id);
    node.unregister_socket(outbox.id);
    let _ = writer.await;
}

async fn on_text(
    node: &Rc<Node>,
    mount: usize,
    outbox: &Rc<Outbox>,
    text: Vec<u8>,
    peer: Peer,
) -> End {
    let foreign = first_client_id(&text).and_then(|c| {
        node.foreign_owner(c)
            .filter(|_| !node.engine.borrow().exists(mount, c))
    });
    if let Some(to) = foreign
        && !node.engine.borrow().is_bound(outbox.id)
    {
        return End::HandOff(to, text);
    }
    // Malformed frames are ignored and the socket stays open, as in Faye (spec 2.6).
    match node
        .process(mount, text, Via::Socket(outbox.clone()), peer)
        .await
    {
        Ok(reply) if !reply.is_empty() => outbox.push(frame_for(OutboxKind::WebSocket, &reply)),
        // Over a limit: say so and close (1008, policy violation).
        Err(BodyError::TooMany) => outbox.close_after_flush(CloseCode::POLICY.0),
        _ => {}
    }
    End::Closed
}

fn control(op: Opcode, payload: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(payload.len() + 2);
    encode(&mut out, op, payload);
    out.freeze()
}

/// Writes whatever is queued, pings when configured, and closes when asked. Returns the write
/// half when the socket is being handed to another worker.
async fn write_loop(
    node: Rc<Node>,
    mount: usize,
    mut wr: OwnedWriteHalf<TcpStream>,
    outbox: Rc<Outbox>,
    hand_off: Rc<Cell<bool>>,
) -> Option<OwnedWriteHalf<TcpStream>> {
    let ping = node.settings.policy(mount).ping;
    let mut pings: u64 = 0;
    let mut frames = Vec::new();
    loop {
        match ping {
            Some(every) => {
                if monoio::time::timeout(every, outbox.signal.wait())
                    .await
                    .is_err()
                {
                    pings += 1;
                    outbox.push(control(Opcode::Ping, pings.to_string().as_bytes()));
                }
            }
            None => outbox.signal.wait().await,
        }
        outbox.drain(&mut frames);
        if !frames.is_empty() && write_frames(&mut wr, &mut frames).await.is_err() {
            return None;
        }
        if let Some(code) = outbox.closing() {
            let reason = if code == CloseCode::NORMAL.0 {
                ""
            } else {
                "protocol error"
            };
            let _ = wr
                .write_all(control(
                    Opcode::Close,
                    &close_payload(CloseCode(code), reason),
                ))
                .await;
            let _ = wr.shutdown().await;
            return None;
        }
        if hand_off.get() {
            return Some(wr);
        }
    }
}

/// One write for everything queued.
pub async fn write_frames<W: AsyncWriteRent>(
    wr: &mut W,
    frames: &mut Vec<Bytes>,
) -> std::io::Result<()> {
    let res = if frames.len() == 1 {
        let frame = frames.pop().unwrap_or_default();
        wr.write_all(frame).await.0
    } else {
        let mut out = BytesMut::with_capacity(frames.iter().map(Bytes::len).sum());
        for f in frames.drain(..) {
            out.extend_from_slice(&f);
        }
        wr.write_all(out).await.0
    };
    frames.clear();
    res.map(|_| ())
}
