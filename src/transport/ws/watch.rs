//! The worker's three tasks that serve every record of its table: input readiness (a parked
//! socket's input run by a short inline task), the doorbell of pushes to parked sockets, and
//! the ping rounds.

use super::state::{Parked, ReadAhead};
use super::sys::{self, lend_back, recv_now, spare_buf};
use super::table::{PING_TIMEOUT_CLOSE, ParkedTable};
use super::task::{End, on_message, restart};
use crate::metrics;
use crate::shard::Node;
use crate::websocket::frame::Decoder;
use monoio::net::TcpStream;
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::time::Duration;

/// Readiness events taken from the epoll set per call.
const EVENTS: usize = 256;

/// Creates this worker's table and starts its tasks.
pub fn start(node: &Rc<Node>) -> std::io::Result<()> {
    // The runtime watches the epoll set as if it were a socket: readable when events wait.
    let waiter = TcpStream::from_std(std::net::TcpStream::from(sys::epoll_create()?))?;
    let table = ParkedTable::install(node, waiter.as_raw_fd());
    monoio::spawn(ready_loop(node.clone(), table.clone(), waiter));
    monoio::spawn(bell_loop(node.clone(), table.clone()));
    // One ping round per mount with pings (a mount's `ping` may differ from the default);
    // the ping timeout is the same number of intervals as the default's.
    let intervals = match (node.settings.ping, node.settings.ping_timeout) {
        (Some(every), Some(timeout)) => timeout.as_secs_f64() / every.as_secs_f64(),
        _ => f64::from(crate::config::DEFAULT_PING_TIMEOUT_INTERVALS),
    };
    let ticks = intervals.ceil().max(1.0) as u32;
    for (mount, policy) in node.settings.policies.iter().enumerate() {
        if let Some(every) = policy.ping {
            monoio::spawn(ping_loop(node.clone(), table.clone(), every, ticks, mount));
        }
    }
    Ok(())
}

/// Takes the epoll set's events each time the runtime sees it readable. `waiter` owns the set.
async fn ready_loop(node: Rc<Node>, table: Rc<ParkedTable>, waiter: TcpStream) {
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; EVENTS];
    loop {
        if let Err(e) = waiter.readable(false).await {
            tracing::error!(worker = node.me, error = %e, "WebSocket readiness loop failed");
            return;
        }
        while let Ok(n) = sys::epoll_wait(table.epoll, &mut events) {
            for ev in &events[..n] {
                if let Some(parked) = table.on_ready(ev.u64) {
                    monoio::spawn(serve_parked(node.clone(), table.clone(), parked));
                }
            }
            if n < EVENTS {
                break;
            }
        }
    }
}

async fn bell_loop(node: Rc<Node>, table: Rc<ParkedTable>) {
    let (mut keys, mut frames) = (Vec::new(), Vec::new());
    loop {
        table.bell.signal.wait().await;
        table.bell.take(&mut keys);
        for key in keys.drain(..) {
            restart(&node, table.on_bell(&node, key, &mut frames));
        }
        node.wrote();
    }
}

async fn ping_loop(
    node: Rc<Node>,
    table: Rc<ParkedTable>,
    every: Duration,
    limit: u32,
    mount: usize,
) {
    // Ticks start at 1: 0 marks "no ping unanswered" in the records.
    for tick in 1u32.. {
        monoio::time::sleep(every).await;
        for key in table.ping_all(limit, mount, tick) {
            metrics::add(&node.my_stats().mounts[mount].ping_timeouts, 1);
            restart(&node, table.cut(&node, key, PING_TIMEOUT_CLOSE));
        }
    }
}

/// Handles the input of a parked socket without giving it tasks: the common case of whole
/// messages that the engine answers through the outbox (which, parked, is written by the
/// worker's table). The socket gets its tasks back when the input needs them: a partial frame,
/// a close, a decoding error, end of input, or a message for a session of another worker.
async fn serve_parked(node: Rc<Node>, table: Rc<ParkedTable>, parked: Parked) {
    let mut ahead = ReadAhead {
        buf: spare_buf(),
        ..ReadAhead::default()
    };
    let promote = match recv_now(parked.fd, &mut ahead.buf) {
        // Readiness was stale.
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => false,
        // End of input or an error: the reader meets it and closes the socket.
        Ok(0) | Err(_) => true,
        Ok(_) => handle_parked(&node, &table, &parked, &mut ahead).await,
    };
    if ahead.buf.is_empty() {
        lend_back(std::mem::take(&mut ahead.buf));
    }
    restart(&node, table.handled(&node, parked.key, promote, ahead));
}

/// Runs the whole messages read into `ahead.buf`; true when the socket needs its tasks for
/// the rest, which is left in `ahead`.
async fn handle_parked(
    node: &Rc<Node>,
    table: &ParkedTable,
    parked: &Parked,
    ahead: &mut ReadAhead,
) -> bool {
    let outbox = &parked.outbox;
    let mut decoder = Decoder::new(node.settings.max_message);
    loop {
        let msg = match decoder.decode(&mut ahead.buf) {
            Ok(Some(msg)) => msg,
            Ok(None) if ahead.buf.is_empty() && decoder.is_idle() => return false,
            // Part of a frame or of a fragmented message: the reader goes on from here.
            Ok(None) => {
                ahead.decoder = Some(decoder);
                return true;
            }
            Err(code) => {
                outbox.close_after_flush(code.0);
                return true;
            }
        };
        table.heard(parked.key);
        if let End::HandOff(_, text) =
            on_message(node, parked.mount, outbox, msg, parked.peer.clone()).await
        {
            ahead.first = Some(text);
            return true;
        }
        // A close (asked for, or to answer one) is sent by the socket's writer.
        if outbox.closing().is_some() {
            return true;
        }
    }
}
