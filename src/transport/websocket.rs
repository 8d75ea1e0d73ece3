//! WebSocket connections (spec 2.6). While a socket has work, a reader task decodes frames and
//! runs each text message as a Bayeux batch, and a writer task drains the outbox in one write
//! per wake-up. When both are idle the socket parks in the worker's table (`park.rs`) and its
//! tasks end. When a message names a session of another worker, the socket moves to that
//! worker, so a session's deliveries are always written by the worker that holds it.

use super::io::{COALESCE_MAX, read_more, write_frames};
use super::park::{self, Live, Parked, Parker};
use crate::bayeux::json::BodyError;
use crate::bayeux::scan::first_client_id;
use crate::engine::{Outbox, OutboxKind, frame_for};
use crate::http::Head;
use crate::http::response::{Response, plain};
use crate::shard::{Adopt, Envelope, Node, Peer, Via};
use crate::websocket::frame::{CloseCode, Decoder, Message, Opcode, close_payload, encode};
use crate::websocket::handshake;
use bytes::{Bytes, BytesMut};
use monoio::io::{AsyncWriteRent, AsyncWriteRentExt, OwnedReadHalf, OwnedWriteHalf, Splitable};
use monoio::net::TcpStream;
use std::net::IpAddr;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd};
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
        let peer = Peer {
            ip,
            bearer: auth.bearer_ok(head.header_str("authorization")),
        };
        let answer = if !auth.origin_ok(head.header_str("origin")) {
            Err(plain(403, "Origin not allowed"))
        } else {
            handshake::accept(
                head.header("upgrade"),
                head.header("sec-websocket-version"),
                head.header("sec-websocket-key"),
            )
            .map_err(|refusal| plain(handshake::Refusal::STATUS, &refusal.body()))
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
    if park::send_now(stream.as_raw_fd(), &mut reply).is_err() {
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

/// Parks a new socket that has nothing to run yet (its client waits for the 101 before it
/// sends).
fn park_new(node: &Rc<Node>, stream: TcpStream, mount: usize, peer: Peer) {
    let parker = park::get();
    let fd = stream.as_raw_fd();
    match parker.insert(node, fd, mount, peer, |key| park::outbox(node, key)) {
        Ok(outbox) => {
            let fd = stream.into_raw_fd();
            parker.park(node, outbox.key, fd, &Live::default());
        }
        Err(e) => tracing::warn!(worker = node.me, error = %e, "could not watch a WebSocket"),
    }
}

/// Why the reader stopped.
enum End {
    Closed,
    /// Nothing to read or write: hand the socket to the worker's table.
    Park,
    /// The socket must move to this worker, starting with this message.
    HandOff(usize, Vec<u8>),
}

/// What a socket's tasks need besides the stream.
pub struct Parts {
    pub parker: Rc<Parker>,
    /// The socket (owned by the stream while the socket is active).
    pub fd: std::os::fd::RawFd,
    pub key: u32,
    pub mount: usize,
    pub outbox: Rc<Outbox>,
    pub live: Rc<Live>,
    /// Who is on the other end (kept in the record while parked).
    pub peer: Peer,
}

/// Input read before a socket's tasks ran.
#[derive(Default)]
pub struct Pending {
    /// Bytes not yet decoded.
    pub buf: BytesMut,
    /// A message decoded but not yet run (one another worker read, or one for another worker).
    pub first: Option<Vec<u8>>,
    /// The decoder, when it holds part of a fragmented message.
    pub decoder: Option<Decoder>,
}

/// Runs a new upgraded socket; `first` is a message another worker read but did not handle.
pub async fn run(
    node: Rc<Node>,
    stream: TcpStream,
    mount: usize,
    buf: BytesMut,
    first: Option<Vec<u8>>,
    peer: Peer,
) {
    if buf.is_empty() && first.is_none() {
        park_new(&node, stream, mount, peer);
        return;
    }
    let parker = park::get();
    let fd = stream.as_raw_fd();
    let outbox = match parker.insert(&node, fd, mount, peer, |key| park::outbox(&node, key)) {
        Ok(outbox) => outbox,
        Err(e) => {
            tracing::warn!(worker = node.me, error = %e, "could not watch a WebSocket");
            return;
        }
    };
    let live = Rc::new(Live::default());
    parker.activate(&node, outbox.key, live.clone());
    let parts = Parts {
        key: outbox.key,
        fd,
        parker,
        mount,
        outbox,
        live,
        peer,
    };
    let pending = Pending {
        buf,
        first,
        decoder: None,
    };
    serve(node, stream, parts, pending).await;
}

/// Runs an active socket until it closes, parks or moves to another worker.
pub async fn serve(node: Rc<Node>, stream: TcpStream, parts: Parts, pending: Pending) {
    let (rd, wr) = stream.into_split();
    let writer = monoio::spawn(write_loop(
        node.clone(),
        wr,
        parts.outbox.clone(),
        parts.live.clone(),
    ));
    let (end, rd, buf) = Box::pin(read_loop(&node, &parts, rd, pending)).await;
    if matches!(end, End::Closed) {
        return close(&node, &parts, Some(writer), rd).await;
    }
    parts.live.stop_writer.set(true);
    parts.outbox.signal.notify();
    let Some(wr) = writer.await else {
        return close(&node, &parts, None, rd).await;
    };
    let stream = match rd.reunite(wr) {
        Ok(stream) => stream,
        Err(halves) => return close(&node, &parts, None, halves.0).await,
    };
    match end {
        End::Park => {
            let fd = stream.into_raw_fd();
            parts.parker.park(&node, parts.key, fd, &parts.live);
        }
        End::HandOff(to, text) => {
            parts.parker.remove(&node, parts.key);
            // SAFETY: the stream gave up its descriptor, which nothing else owns.
            let fd = unsafe { OwnedFd::from_raw_fd(stream.into_raw_fd()) };
            let kind = Adopt::WebSocket {
                first: text,
                leftover: buf.to_vec(),
                peer: parts.peer,
            };
            let mount = parts.mount;
            node.send(to, Envelope::Adopt { fd, mount, kind });
        }
        End::Closed => {}
    }
}

/// Ends a closed socket: unbinds it, lets the writer finish (a close frame), and takes it out
/// of the table while `rd` still holds the descriptor open.
async fn close(
    node: &Rc<Node>,
    parts: &Parts,
    writer: Option<monoio::task::JoinHandle<Option<OwnedWriteHalf<TcpStream>>>>,
    rd: OwnedReadHalf<TcpStream>,
) {
    if parts.outbox.closing().is_none() {
        parts.outbox.close_after_flush(CloseCode::NORMAL.0);
    }
    node.engine.borrow_mut().socket_gone(&parts.outbox);
    if let Some(writer) = writer {
        drop(writer.await);
    }
    parts.parker.remove(node, parts.key);
    drop(rd);
}

/// Decodes and handles frames until the socket closes, idles or must move.
async fn read_loop(
    node: &Rc<Node>,
    parts: &Parts,
    mut rd: OwnedReadHalf<TcpStream>,
    pending: Pending,
) -> (End, OwnedReadHalf<TcpStream>, BytesMut) {
    let outbox = &parts.outbox;
    let Pending {
        mut buf,
        first,
        decoder,
    } = pending;
    let mut decoder = decoder.unwrap_or_else(|| Decoder::new(node.settings.max_message));
    let mut end = End::Closed;
    if let Some(text) = first {
        end = on_text(node, parts.mount, outbox, text, parts.peer).await;
    }
    while matches!(end, End::Closed) && outbox.closing().is_none() {
        let msg = match decoder.decode(&mut buf) {
            Ok(Some(msg)) => msg,
            Err(code) => {
                outbox.close_after_flush(code.0);
                break;
            }
            Ok(None) => {
                if buf.is_empty() && decoder.is_idle() {
                    // Idle: hold no read buffer while waiting.
                    lend_back(std::mem::take(&mut buf));
                    if wait_input(parts).await == Idle::Park {
                        return (End::Park, rd, buf);
                    }
                    buf = spare_buf();
                    // Readiness can be stale (it fired for bytes already read): take what is
                    // there without waiting, and wait again if nothing is.
                    match recv_now(parts.fd, &mut buf) {
                        Ok(0) => break,
                        Ok(_) => continue,
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                        Err(_) => break,
                    }
                }
                let (res, b) = read_more(&mut rd, buf).await;
                buf = b;
                if !matches!(res, Ok(n) if n > 0) {
                    break;
                }
                continue;
            }
        };
        parts.parker.heard(parts.key);
        end = on_message(node, parts.mount, outbox, msg, parts.peer).await;
    }
    (end, rd, buf)
}

/// Runs one decoded message: a text message as a Bayeux batch, a ping answered, a close
/// answered after what is queued. `End::HandOff` when the batch belongs to another worker.
async fn on_message(
    node: &Rc<Node>,
    mount: usize,
    outbox: &Rc<Outbox>,
    msg: Message,
    peer: Peer,
) -> End {
    match msg {
        Message::Text(text) => return on_text(node, mount, outbox, text, peer).await,
        Message::Ping(payload) => outbox.push(control(Opcode::Pong, &payload)),
        Message::Close { code, .. } => outbox.close_after_flush(code.unwrap_or(1000)),
        Message::Binary(_) | Message::Pong(_) => {}
    }
    End::Closed
}

/// Handles the input of a parked socket without giving it tasks: the common case of whole
/// messages that the engine answers through the outbox (which, parked, is written by the
/// worker's table). The socket gets its tasks back when the input needs them: a partial frame,
/// a close, a decoding error, end of input, or a message for a session of another worker.
pub async fn serve_parked(node: Rc<Node>, parker: Rc<Parker>, parked: Parked) {
    let mut pending = Pending {
        buf: spare_buf(),
        ..Pending::default()
    };
    let promote = match recv_now(parked.fd, &mut pending.buf) {
        // Readiness was stale.
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => false,
        // End of input or an error: the reader meets it and closes the socket.
        Ok(0) | Err(_) => true,
        Ok(_) => handle_parked(&node, &parker, &parked, &mut pending).await,
    };
    if pending.buf.is_empty() {
        lend_back(std::mem::take(&mut pending.buf));
    }
    parker.handled(&node, parked.key, promote, pending);
}

/// Runs the whole messages read into `pending.buf`; true when the socket needs its tasks for
/// the rest, which is left in `pending`.
async fn handle_parked(
    node: &Rc<Node>,
    parker: &Parker,
    parked: &Parked,
    pending: &mut Pending,
) -> bool {
    let outbox = &parked.outbox;
    let mut decoder = Decoder::new(node.settings.max_message);
    loop {
        let msg = match decoder.decode(&mut pending.buf) {
            Ok(Some(msg)) => msg,
            Ok(None) if pending.buf.is_empty() && decoder.is_idle() => return false,
            // Part of a frame or of a fragmented message: the reader goes on from here.
            Ok(None) => {
                pending.decoder = Some(decoder);
                return true;
            }
            Err(code) => {
                outbox.close_after_flush(code.0);
                return true;
            }
        };
        parker.heard(parked.key);
        if let End::HandOff(_, text) =
            on_message(node, parked.mount, outbox, msg, parked.peer).await
        {
            pending.first = Some(text);
            return true;
        }
        // A close (asked for, or to answer one) is sent by the socket's writer.
        if outbox.closing().is_some() {
            return true;
        }
    }
}

thread_local! {
    /// This worker's spare read buffer. A socket with nothing left to decode lends its buffer
    /// back before it waits, so the next read of any socket on the worker reuses it instead of
    /// allocating `READ_CHUNK` bytes anew (idle sockets hold no buffer at all).
    static SPARE: std::cell::Cell<BytesMut> = std::cell::Cell::new(BytesMut::new());
}

/// The worker's spare read buffer, or an empty one (which allocates at its first read) when
/// another socket holds it.
fn spare_buf() -> BytesMut {
    SPARE.take()
}

/// Keeps an emptied read buffer as the worker's spare, unless it has no room for a read (it
/// would take the place of a spare that has) or grew past the usual size.
fn lend_back(buf: BytesMut) {
    debug_assert!(buf.is_empty());
    if (super::READ_CHUNK / 2..=4 * super::READ_CHUNK).contains(&buf.capacity()) {
        SPARE.set(buf);
    }
}

/// Reads what the socket holds now, without blocking; `WouldBlock` when it holds nothing.
fn recv_now(fd: std::os::fd::RawFd, buf: &mut BytesMut) -> std::io::Result<usize> {
    if buf.capacity() - buf.len() < super::READ_CHUNK / 2 {
        buf.reserve(super::READ_CHUNK);
    }
    let spare = buf.spare_capacity_mut();
    loop {
        // SAFETY: the kernel writes at most `spare.len()` bytes into the spare capacity.
        let n = unsafe {
            libc::recv(
                fd,
                spare.as_mut_ptr().cast(),
                spare.len(),
                libc::MSG_DONTWAIT,
            )
        };
        if n >= 0 {
            // SAFETY: the first `n` spare bytes were just written.
            unsafe { buf.set_len(buf.len() + n as usize) };
            return Ok(n as usize);
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

#[derive(PartialEq, Eq)]
enum Idle {
    Input,
    Park,
}

/// Waits until the socket turns readable, or until nothing is left to write (park). An input
/// signal from before the wait counts: the one-shot watch fired, so bytes are waiting.
async fn wait_input(parts: &Parts) -> Idle {
    let live = &parts.live;
    if parts.parker.arm(parts.key).is_err() {
        // Without the watch, wait in a read.
        return Idle::Input;
    }
    std::future::poll_fn(|cx| {
        if live.input.poll_fired(cx) {
            return std::task::Poll::Ready(Idle::Input);
        }
        // Consume any notification and leave the waker registered for the next one.
        while live.writer_idle.poll_fired(cx) {}
        if parts.outbox.is_idle() {
            std::task::Poll::Ready(Idle::Park)
        } else {
            std::task::Poll::Pending
        }
    })
    .await
}

async fn on_text(
    node: &Rc<Node>,
    mount: usize,
    outbox: &Rc<Outbox>,
    text: Vec<u8>,
    peer: Peer,
) -> End {
    let foreign = first_client_id(&text).and_then(|c| {
        let here = |c| node.engine.borrow().exists(mount, c);
        node.foreign_owner(&c)
            .filter(|_| !std::str::from_utf8(&c).is_ok_and(here))
    });
    if let Some(to) = foreign
        && !node.engine.borrow().is_bound(outbox)
    {
        return End::HandOff(to, text);
    }
    // Malformed frames are ignored and the socket stays open, as in Faye (spec 2.6).
    match Box::pin(node.process(mount, text, Via::Socket(outbox.clone()), peer)).await {
        Ok(reply) if !reply.is_empty() => outbox.push(frame_for(OutboxKind::WebSocket, &reply)),
        // Over a limit: say so and close (1008, policy violation).
        Err(BodyError::TooMany) => outbox.close_after_flush(CloseCode::POLICY.0),
        _ => {}
    }
    End::Closed
}

pub fn control(op: Opcode, payload: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(payload.len() + 2);
    encode(&mut out, op, payload);
    out.freeze()
}

/// Writes whatever is queued and closes when asked. Returns the write half when the reader
/// asks for it back (to park or hand the socket over).
async fn write_loop(
    node: Rc<Node>,
    mut wr: OwnedWriteHalf<TcpStream>,
    outbox: Rc<Outbox>,
    live: Rc<Live>,
) -> Option<OwnedWriteHalf<TcpStream>> {
    let mut frames = Vec::new();
    loop {
        if !outbox.has_queued() {
            outbox.signal.wait().await;
        }
        if outbox.aborted() {
            // The table cuts the connection.
            return None;
        }
        // A write's worth at a time: a cut gives what waits behind it back to the session.
        outbox.drain_upto(&mut frames, COALESCE_MAX);
        if !frames.is_empty() {
            let res = write_frames(&mut wr, &mut frames).await;
            outbox.written();
            node.wrote();
            if res.is_err() {
                return None;
            }
        }
        if outbox.aborted() {
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
        if live.stop_writer.get() {
            return Some(wr);
        }
        if outbox.is_idle() {
            live.writer_idle.notify();
        }
    }
}
