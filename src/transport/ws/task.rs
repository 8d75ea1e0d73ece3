//! The tasks of an active WebSocket: a reader that decodes frames and runs each text message
//! as a Bayeux batch, and a writer that drains the outbox in one write per wake-up. They end
//! when the socket closes, parks in the table (both idle), or moves to the worker of the
//! session its message names.

use super::state::{Live, ReadAhead};
use super::sys::{close_frame, control, lend_back, recv_now, spare_buf};
use super::table::{self, Parts, Resumed, outbox};
use crate::bayeux::json::BodyError;
use crate::bayeux::scan::first_client_id;
use crate::engine::{Outbox, OutboxKind, frame_for};
use crate::shard::{Adopt, Envelope, Node, Peer, Via};
use crate::transport::io::{COALESCE_MAX, into_owned_fd, read_more, write_frames};
use crate::websocket::frame::{CloseCode, Decoder, Message, Opcode};
use bytes::BytesMut;
use monoio::io::{AsyncWriteRent, AsyncWriteRentExt, OwnedReadHalf, OwnedWriteHalf, Splitable};
use monoio::net::TcpStream;
use std::os::fd::AsRawFd;
use std::rc::Rc;

/// Why the reader stopped.
pub enum End {
    Closed,
    /// Nothing to read or write: hand the socket to the worker's table.
    Park,
    /// The socket must move to this worker, starting with this message.
    HandOff(usize, Vec<u8>),
}

/// Runs a socket the table made active again, if it did.
pub fn restart(node: &Rc<Node>, resumed: Option<Resumed>) {
    if let Some(Resumed {
        stream,
        parts,
        ahead,
    }) = resumed
    {
        monoio::spawn(serve(node.clone(), stream, parts, ahead));
    }
}

/// Parks a new socket that has nothing to run yet (its client waits for the 101 before it
/// sends).
pub fn park_new(node: &Rc<Node>, stream: TcpStream, mount: usize, peer: Peer) {
    let table = table::get();
    let fd = stream.as_raw_fd();
    match table.insert(node, fd, mount, peer, |key| outbox(node, key)) {
        Ok(outbox) => {
            let resumed = table.park(node, outbox.key, into_owned_fd(stream), &Live::default());
            restart(node, resumed);
        }
        Err(e) => tracing::warn!(worker = node.me, error = %e, "could not watch a WebSocket"),
    }
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
    let table = table::get();
    let fd = stream.as_raw_fd();
    let outbox = match table.insert(&node, fd, mount, peer.clone(), |key| outbox(&node, key)) {
        Ok(outbox) => outbox,
        Err(e) => {
            tracing::warn!(worker = node.me, error = %e, "could not watch a WebSocket");
            return;
        }
    };
    let live = Rc::new(Live::default());
    table.activate(&node, outbox.key, live.clone());
    let parts = Parts {
        key: outbox.key,
        fd,
        table,
        mount,
        outbox,
        live,
        peer,
    };
    let ahead = ReadAhead {
        buf,
        first,
        decoder: None,
    };
    serve(node, stream, parts, ahead).await;
}

/// Runs an active socket until it closes, parks or moves to another worker.
pub async fn serve(node: Rc<Node>, stream: TcpStream, parts: Parts, ahead: ReadAhead) {
    let (rd, wr) = stream.into_split();
    let writer = monoio::spawn(write_loop(
        node.clone(),
        wr,
        parts.outbox.clone(),
        parts.live.clone(),
    ));
    let (end, rd, buf) = Box::pin(read_loop(&node, &parts, rd, ahead)).await;
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
            let fd = into_owned_fd(stream);
            let resumed = parts.table.park(&node, parts.key, fd, &parts.live);
            restart(&node, resumed);
        }
        End::HandOff(to, text) => {
            parts.table.remove(&node, parts.key);
            let fd = into_owned_fd(stream);
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
    parts.table.remove(node, parts.key);
    drop(rd);
}

/// Decodes and handles frames until the socket closes, idles or must move.
async fn read_loop(
    node: &Rc<Node>,
    parts: &Parts,
    mut rd: OwnedReadHalf<TcpStream>,
    ahead: ReadAhead,
) -> (End, OwnedReadHalf<TcpStream>, BytesMut) {
    let outbox = &parts.outbox;
    let ReadAhead {
        mut buf,
        first,
        decoder,
    } = ahead;
    let mut decoder = decoder.unwrap_or_else(|| Decoder::new(node.settings.max_message));
    let mut end = End::Closed;
    if let Some(text) = first {
        end = on_text(node, parts.mount, outbox, text, parts.peer.clone()).await;
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
        parts.table.heard(parts.key);
        end = on_message(node, parts.mount, outbox, msg, parts.peer.clone()).await;
    }
    (end, rd, buf)
}

/// Runs one decoded message: a text message as a Bayeux batch, a ping answered, a close
/// answered after what is queued. `End::HandOff` when the batch belongs to another worker.
pub async fn on_message(
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

#[derive(PartialEq, Eq)]
enum Idle {
    Input,
    Park,
}

/// Waits until the socket turns readable, or until nothing is left to write (park). An input
/// signal from before the wait counts: the one-shot watch fired, so bytes are waiting.
async fn wait_input(parts: &Parts) -> Idle {
    let live = &parts.live;
    if parts.table.arm(parts.key).is_err() {
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
            let _ = wr.write_all(close_frame(code, reason)).await;
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
