//! The worker's WebSocket table, where idle sockets park.
//!
//! Every WebSocket of a worker has a record here. An *active* socket runs a reader and a writer
//! task (`websocket.rs`). When it has nothing to read or write (no partial frame, no handler
//! running, nothing queued or being written), both tasks end and the socket *parks*: the record
//! keeps its file descriptor and outbox, and no task, buffer or timer is held for it. Three
//! tasks per worker serve all the records:
//!
//! * `ready_loop`: an epoll set of this table's own (not the runtime's) watches every socket
//!   for input, one-shot, re-armed by the reader each time it waits. A readable parked socket's
//!   input is read and run by a short task of its own (`websocket::serve_parked`) while the
//!   socket stays parked, its replies going out through the outbox like any push; the socket is
//!   promoted back into tasks only when the input needs them (a partial frame, a close, end of
//!   input, a message for another worker's session). An active reader waiting for input is
//!   woken. The set itself is watched through the runtime, so it works the same on io_uring
//!   and on epoll.
//! * `bell_loop`: a push to a parked socket's outbox rings the worker's doorbell; the frames
//!   are written at once with non-blocking sends, one per socket per batch, and the socket is
//!   promoted only when the send would block or a close is due. An outbox that went over its
//!   limit (a slow consumer) rings it too, and is cut here.
//! * `ping_loop` (with `--ping`): pings every socket, parked ones through their outbox (so
//!   without promoting them), and closes those silent for longer than `--ping-timeout`.
//!
//! Drivers: a parked descriptor belongs to this table alone. On epoll, monoio's registration
//! ends when the stream is taken apart (`into_raw_fd` deregisters it) and is made again on
//! promotion, so a parked fd is never registered twice or left behind (an *active* socket is in
//! both sets: the runtime's for its reads and writes, this table's for its reader's idle wait). On io_uring a socket
//! parks only with no operation in flight: its reader waits for input through this table's
//! epoll set, never through a cancellable runtime poll, and its writer is waiting on a signal.

use super::websocket::{self, Pending, control};
use crate::engine::{Doorbell, Outbox, OutboxKind, Signal};
use crate::metrics;
use crate::shard::{Node, Peer};
use crate::websocket::frame::{CloseCode, Opcode, close_payload};
use bytes::Bytes;
use monoio::net::TcpStream;
use slab::Slab;
use std::cell::{Cell, RefCell};
use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::rc::Rc;
use std::time::Duration;

/// Readiness events taken from the epoll set per call.
const EVENTS: usize = 256;
/// Frames written by one non-blocking send at most (below IOV_MAX).
const MAX_IOV: usize = 64;
/// Close code for a socket that stopped answering pings: the server is going away from it.
pub const PING_TIMEOUT_CLOSE: u16 = CloseCode::GOING_AWAY.0;

/// What the reader and writer of an active socket share.
#[derive(Default)]
pub struct Live {
    /// The socket turned readable (or hung up) while the reader waited.
    pub input: Signal,
    /// The writer wrote everything it had.
    pub writer_idle: Signal,
    /// The reader wants the write half back (to park or hand the socket over).
    pub stop_writer: Cell<bool>,
}

/// A parked socket whose input an inline task runs (`websocket::serve_parked`).
pub struct Parked {
    pub key: u32,
    pub fd: RawFd,
    pub mount: usize,
    pub outbox: Rc<Outbox>,
    pub peer: Peer,
}

struct Record {
    fd: RawFd,
    mount: u32,
    outbox: Rc<Outbox>,
    /// The active socket's shared state; `None` while parked.
    live: Option<Rc<Live>>,
    /// Pings sent (their payloads count up from 1, as Faye's do).
    pings: u32,
    /// Ping tick of the oldest ping no frame has followed; 0 when none.
    unanswered: u32,
    /// A frame arrived since the last ping tick.
    heard: bool,
    /// Cut (slow consumer or ping timeout): the connection is being torn down.
    cut: bool,
    /// Parked, with its input being run by a task of its own (`websocket::serve_parked`).
    inline: bool,
    /// Asked to run tasks again while `inline`: the inline task promotes it when done.
    resume: bool,
    /// The client's address and credentials, as the upgrade request showed them.
    peer: Peer,
}

pub struct Parker {
    epoll: RawFd,
    table: RefCell<Slab<Record>>,
    pub bell: Rc<Doorbell>,
}

thread_local! {
    static PARKER: RefCell<Option<Rc<Parker>>> = const { RefCell::new(None) };
}

/// Creates this worker's table and starts its tasks.
pub fn start(node: &Rc<Node>) -> std::io::Result<()> {
    // SAFETY: plain syscall; the result is checked.
    let epoll = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    if epoll < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // The runtime watches the epoll set as if it were a socket: readable when events wait.
    // SAFETY: `epoll` is a fresh descriptor owned by nothing else.
    let waiter = TcpStream::from_std(unsafe { std::net::TcpStream::from_raw_fd(epoll) })?;
    let parker = Rc::new(Parker {
        epoll: waiter.as_raw_fd(),
        table: RefCell::new(Slab::new()),
        bell: Doorbell::current(),
    });
    PARKER.with(|p| *p.borrow_mut() = Some(parker.clone()));
    // The drain closes this table's sockets; they have no entry in the node's registry.
    let table = Rc::downgrade(&parker);
    node.set_socket_list(Box::new(move || {
        table.upgrade().map_or_else(Vec::new, |p| {
            let t = p.table.borrow();
            t.iter().map(|(_, r)| Rc::downgrade(&r.outbox)).collect()
        })
    }));
    monoio::spawn(ready_loop(node.clone(), parker.clone(), waiter));
    monoio::spawn(bell_loop(node.clone(), parker.clone()));
    // One ping round per mount with pings (a mount's `ping` may differ from the default);
    // the ping timeout is the same number of intervals as the default's.
    let intervals = match (node.settings.ping, node.settings.ping_timeout) {
        (Some(every), Some(timeout)) => timeout.as_secs_f64() / every.as_secs_f64(),
        _ => f64::from(crate::config::DEFAULT_PING_TIMEOUT_INTERVALS),
    };
    let ticks = intervals.ceil().max(1.0) as u32;
    for (mount, policy) in node.settings.policies.iter().enumerate() {
        if let Some(every) = policy.ping {
            monoio::spawn(ping_loop(node.clone(), parker.clone(), every, ticks, mount));
        }
    }
    Ok(())
}

/// This worker's table (started with the worker's accept loop).
pub fn get() -> Rc<Parker> {
    PARKER
        .with(|p| p.borrow().clone())
        .expect("the worker's WebSocket table is started")
}

fn tag(fd: RawFd, key: u32) -> u64 {
    (u64::from(fd as u32) << 32) | u64::from(key)
}

fn epoll_ctl(epoll: RawFd, op: i32, fd: RawFd, key: u32) -> std::io::Result<()> {
    let mut ev = libc::epoll_event {
        events: (libc::EPOLLIN | libc::EPOLLRDHUP | libc::EPOLLONESHOT) as u32,
        u64: tag(fd, key),
    };
    // SAFETY: `ev` outlives the call; the kernel validates the descriptors.
    if unsafe { libc::epoll_ctl(epoll, op, fd, &mut ev) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

impl Parker {
    /// Adds a new active socket; `make` builds its outbox for the table slot it gets.
    pub fn insert(
        &self,
        node: &Node,
        fd: RawFd,
        mount: usize,
        peer: Peer,
        make: impl FnOnce(u32) -> Outbox,
    ) -> std::io::Result<Rc<Outbox>> {
        let mut table = self.table.borrow_mut();
        let entry = table.vacant_entry();
        let key = entry.key() as u32;
        epoll_ctl(self.epoll, libc::EPOLL_CTL_ADD, fd, key)?;
        let outbox = Rc::new(make(key));
        entry.insert(Record {
            fd,
            mount: mount as u32,
            outbox: outbox.clone(),
            live: None,
            pings: 0,
            unanswered: 0,
            heard: false,
            cut: false,
            inline: false,
            resume: false,
            peer,
        });
        if node.draining() {
            outbox.close_after_flush(CloseCode::GOING_AWAY.0);
        }
        metrics::add(&node.my_stats().websocket_open, 1);
        Ok(outbox)
    }

    /// Marks a socket active with this shared state.
    pub fn activate(&self, node: &Node, key: u32, live: Rc<Live>) {
        if let Some(r) = self.table.borrow_mut().get_mut(key as usize) {
            if r.live.is_none() && r.outbox.parked() {
                metrics::sub(&node.my_stats().websocket_parked, 1);
            }
            r.outbox.unpark();
            // Whatever was queued while parked (a close, frames a send could not take).
            r.outbox.signal.notify();
            r.live = Some(live);
        }
    }

    /// Re-arms the one-shot input watch of a socket whose reader is about to wait.
    pub fn arm(&self, key: u32) -> std::io::Result<()> {
        let fd = match self.table.borrow().get(key as usize) {
            Some(r) => r.fd,
            None => return Err(std::io::ErrorKind::NotFound.into()),
        };
        epoll_ctl(self.epoll, libc::EPOLL_CTL_MOD, fd, key)
    }

    /// A frame arrived on the socket: it is alive.
    pub fn heard(&self, key: u32) {
        if let Some(r) = self.table.borrow_mut().get_mut(key as usize) {
            r.heard = true;
        }
    }

    /// The socket's tasks have ended and `fd` is no longer the runtime's: hold it here.
    pub fn park(self: &Rc<Self>, node: &Rc<Node>, key: u32, fd: RawFd, live: &Live) {
        let outbox = {
            let mut table = self.table.borrow_mut();
            let Some(r) = table.get_mut(key as usize) else {
                return;
            };
            r.fd = fd;
            r.live = None;
            r.outbox.clone()
        };
        metrics::add(&node.my_stats().websocket_parked, 1);
        outbox.park();
        if live.input.is_set() {
            self.promote(node, key, true);
        }
    }

    /// Forgets a socket whose tasks are closing it or handing it over (its fd still open).
    pub fn remove(&self, node: &Node, key: u32) {
        let Some(r) = self.table.borrow_mut().try_remove(key as usize) else {
            return;
        };
        let _ = epoll_ctl(self.epoll, libc::EPOLL_CTL_DEL, r.fd, key);
        if r.live.is_none() && r.outbox.parked() {
            metrics::sub(&node.my_stats().websocket_parked, 1);
        }
        metrics::sub(&node.my_stats().websocket_open, 1);
    }

    /// Runs a parked socket's tasks again; `readable`: input is waiting, read it first.
    fn promote(self: &Rc<Self>, node: &Rc<Node>, key: u32, readable: bool) {
        self.resume(node, key, readable, Pending::default());
    }

    /// Runs a parked socket's tasks again, starting with the input already read. While an
    /// inline task handles its input, the socket is promoted when that task ends instead.
    fn resume(self: &Rc<Self>, node: &Rc<Node>, key: u32, readable: bool, pending: Pending) {
        let (fd, mount, outbox, peer) = match self.table.borrow_mut().get_mut(key as usize) {
            Some(r) if r.live.is_none() && r.inline => {
                r.resume = true;
                return;
            }
            Some(r) if r.live.is_none() => (r.fd, r.mount as usize, r.outbox.clone(), r.peer),
            _ => return,
        };
        let live = Rc::new(Live::default());
        if readable {
            live.input.notify();
        }
        metrics::add(&node.my_stats().websocket_resumed, 1);
        self.activate(node, key, live.clone());
        // SAFETY: the record owns `fd` while parked; the stream takes it over.
        let std_stream = unsafe { std::net::TcpStream::from_raw_fd(fd) };
        let _ = std_stream.set_nonblocking(true);
        match TcpStream::from_std(std_stream) {
            Ok(stream) => {
                let parts = websocket::Parts {
                    parker: self.clone(),
                    fd,
                    key,
                    mount,
                    outbox,
                    live,
                    peer,
                };
                monoio::spawn(websocket::serve(node.clone(), stream, parts, pending));
            }
            Err(e) => {
                // The descriptor was closed with the failed stream.
                tracing::warn!(worker = node.me, error = %e, "could not resume a WebSocket");
                node.engine.borrow_mut().socket_gone(&outbox);
                self.remove(node, key);
            }
        }
    }

    fn on_ready(self: &Rc<Self>, node: &Rc<Node>, tag_value: u64) {
        let key = tag_value as u32;
        let parked = {
            let mut table = self.table.borrow_mut();
            let Some(r) = table
                .get_mut(key as usize)
                .filter(|r| tag(r.fd, key) == tag_value)
            else {
                return;
            };
            match &r.live {
                Some(live) => Err(live.clone()),
                None => {
                    r.inline = true;
                    Ok(Parked {
                        key,
                        fd: r.fd,
                        mount: r.mount as usize,
                        outbox: r.outbox.clone(),
                        peer: r.peer,
                    })
                }
            }
        };
        match parked {
            Ok(parked) => {
                monoio::spawn(websocket::serve_parked(node.clone(), self.clone(), parked));
            }
            Err(live) => live.input.notify(),
        }
    }

    /// An inline task has handled a parked socket's input: resume its tasks if that was asked
    /// for meanwhile or the input needs them (`promote`, with what is left in `pending`), or
    /// watch for more input.
    pub fn handled(self: &Rc<Self>, node: &Rc<Node>, key: u32, promote: bool, pending: Pending) {
        let resume = match self.table.borrow_mut().get_mut(key as usize) {
            Some(r) => {
                r.inline = false;
                std::mem::take(&mut r.resume) || r.cut
            }
            None => return,
        };
        if promote || resume {
            self.resume(node, key, true, pending);
        } else if self.arm(key).is_err() {
            self.promote(node, key, true);
        }
    }

    fn on_bell(self: &Rc<Self>, node: &Rc<Node>, key: u32, frames: &mut Vec<Bytes>) {
        let (fd, outbox, parked, cut, mount) = match self.table.borrow().get(key as usize) {
            Some(r) => (
                r.fd,
                r.outbox.clone(),
                r.live.is_none(),
                r.cut,
                r.mount as usize,
            ),
            None => return,
        };
        outbox.answered();
        if outbox.aborted() {
            if !cut {
                metrics::add(&node.my_stats().mounts[mount].slow_consumers, 1);
                self.cut(node, key, CloseCode::POLICY.0);
            }
            return;
        }
        if !parked {
            return;
        }
        if outbox.closing().is_some() {
            self.promote(node, key, false);
            return;
        }
        // A send's worth at a time, as the writer task takes it (`websocket::write_loop`).
        loop {
            outbox.drain_upto(frames, super::io::COALESCE_MAX);
            let sent = send_now(fd, frames);
            outbox.written();
            match sent {
                Ok(()) if frames.is_empty() => {
                    if !outbox.has_queued() {
                        return;
                    }
                }
                Ok(()) => {
                    outbox.requeue_front(std::mem::take(frames));
                    self.promote(node, key, false);
                    return;
                }
                Err(_) => {
                    // The reader meets the same error and closes the socket.
                    frames.clear();
                    self.promote(node, key, false);
                    return;
                }
            }
        }
    }

    /// Cuts a connection now: its output is dropped, a close frame is sent if the socket can
    /// take it at once, and the TCP connection is shut down, which also ends any read or write
    /// in flight. The reader then tears the socket down as for any closed connection.
    fn cut(self: &Rc<Self>, node: &Rc<Node>, key: u32, code: u16) {
        let (fd, outbox, live) = {
            let mut table = self.table.borrow_mut();
            let Some(r) = table.get_mut(key as usize).filter(|r| !r.cut) else {
                return;
            };
            r.cut = true;
            (r.fd, r.outbox.clone(), r.live.clone())
        };
        let writer_mid_frame = outbox.writing() > 0;
        outbox.abort(code);
        if !writer_mid_frame {
            let reason = match code {
                PING_TIMEOUT_CLOSE => "ping timeout",
                _ => "slow consumer",
            };
            let mut frame = vec![control(
                Opcode::Close,
                &close_payload(CloseCode(code), reason),
            )];
            let _ = send_now(fd, &mut frame);
        }
        // SAFETY: `fd` is this record's open socket.
        unsafe { libc::shutdown(fd, libc::SHUT_RDWR) };
        match live {
            Some(live) => live.input.notify(),
            None => self.promote(node, key, true),
        }
    }

    /// One ping round: closes the sockets silent since a ping older than `limit` ticks and
    /// pings the others.
    fn ping_all(self: &Rc<Self>, node: &Rc<Node>, limit: u32, mount: usize, tick: u32) {
        let mut silent = Vec::new();
        for (key, r) in self.table.borrow_mut().iter_mut() {
            if r.cut || r.mount as usize != mount {
                continue;
            }
            if r.heard {
                r.heard = false;
                r.unanswered = 0;
            }
            if r.unanswered != 0 && tick - r.unanswered >= limit {
                silent.push((key as u32, r.mount as usize));
                continue;
            }
            if r.unanswered == 0 {
                r.unanswered = tick;
            }
            r.pings += 1;
            r.outbox
                .push(control(Opcode::Ping, r.pings.to_string().as_bytes()));
        }
        for (key, mount) in silent {
            metrics::add(&node.my_stats().mounts[mount].ping_timeouts, 1);
            self.cut(node, key, PING_TIMEOUT_CLOSE);
        }
    }
}

/// Writes as much of `frames` as the socket takes without blocking, leaving the rest in
/// `frames` (the first one shortened if it went out in part).
pub(super) fn send_now(fd: RawFd, frames: &mut Vec<Bytes>) -> std::io::Result<()> {
    let mut iov = [libc::iovec {
        iov_base: std::ptr::null_mut(),
        iov_len: 0,
    }; MAX_IOV];
    while !frames.is_empty() {
        let count = frames.len().min(MAX_IOV);
        for (v, f) in iov.iter_mut().zip(&frames[..count]) {
            v.iov_base = f.as_ptr() as *mut libc::c_void;
            v.iov_len = f.len();
        }
        let iov = &iov[..count];
        // SAFETY: a zeroed msghdr is valid; it points at `iov`, alive for the call.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = iov.as_ptr() as *mut libc::iovec;
        msg.msg_iovlen = iov.len();
        // SAFETY: every iovec points into a frame kept alive by `frames`.
        let n = unsafe { libc::sendmsg(fd, &msg, libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            return match e.kind() {
                std::io::ErrorKind::WouldBlock => Ok(()),
                std::io::ErrorKind::Interrupted => continue,
                _ => Err(e),
            };
        }
        let mut left = n as usize;
        let done = frames.iter().take_while(|f| {
            let whole = f.len() <= left;
            if whole {
                left -= f.len();
            }
            whole
        });
        let done = done.count();
        frames.drain(..done);
        if left > 0 {
            let rest = frames[0].slice(left..);
            frames[0] = rest;
        }
        if (n as usize) < iov.iter().map(|v| v.iov_len).sum::<usize>() {
            return Ok(());
        }
    }
    Ok(())
}

async fn ready_loop(node: Rc<Node>, parker: Rc<Parker>, waiter: TcpStream) {
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; EVENTS];
    loop {
        if let Err(e) = waiter.readable(false).await {
            tracing::error!(worker = node.me, error = %e, "WebSocket readiness loop failed");
            return;
        }
        loop {
            // SAFETY: `events` has room for EVENTS entries.
            let n =
                unsafe { libc::epoll_wait(parker.epoll, events.as_mut_ptr(), EVENTS as i32, 0) };
            if n < 0 {
                break;
            }
            for ev in &events[..n as usize] {
                let tag_value = ev.u64;
                parker.on_ready(&node, tag_value);
            }
            if (n as usize) < EVENTS {
                break;
            }
        }
    }
}

async fn bell_loop(node: Rc<Node>, parker: Rc<Parker>) {
    let (mut keys, mut frames) = (Vec::new(), Vec::new());
    loop {
        parker.bell.signal.wait().await;
        parker.bell.take(&mut keys);
        for key in keys.drain(..) {
            parker.on_bell(&node, key, &mut frames);
        }
        node.wrote();
    }
}

async fn ping_loop(node: Rc<Node>, parker: Rc<Parker>, every: Duration, limit: u32, mount: usize) {
    // Ticks start at 1: 0 marks "no ping unanswered" in the records.
    for tick in 1u32.. {
        monoio::time::sleep(every).await;
        parker.ping_all(&node, limit, mount, tick);
    }
}

/// The outbox of a new WebSocket at `key`, bounded as configured, ringing this worker's bell.
pub fn outbox(node: &Node, key: u32) -> Outbox {
    Outbox::with_bell(
        node.socket_id(),
        OutboxKind::WebSocket,
        key,
        node.settings.max_pending,
        true,
    )
}
