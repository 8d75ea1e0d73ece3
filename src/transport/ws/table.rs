//! The worker's table of WebSockets: one record per socket, the state changes between active
//! and parked, and what is done for a parked socket without a task (non-blocking sends, cuts,
//! pings). A change that needs the socket's tasks back returns a `Resumed` for the caller to
//! run; the table itself starts no task.

use super::state::{Live, Parked, ReadAhead, Record};
use super::sys::{self, close_frame, control};
use crate::engine::{Doorbell, Outbox, OutboxKind};
use crate::metrics;
use crate::shard::{Node, Peer};
use crate::transport::io::COALESCE_MAX;
use crate::websocket::frame::{CloseCode, Opcode};
use bytes::Bytes;
use monoio::net::TcpStream;
use slab::Slab;
use std::cell::RefCell;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::rc::Rc;

/// Close code for a socket that stopped answering pings: the server is going away from it.
pub const PING_TIMEOUT_CLOSE: u16 = CloseCode::GOING_AWAY.0;

/// The worker's WebSockets, active and parked, keyed by the slot their outbox rings.
pub struct ParkedTable {
    /// The epoll set that watches every socket for input (owned by the readiness task's
    /// stream, `watch::ready_loop`).
    pub epoll: RawFd,
    records: RefCell<Slab<Record>>,
    pub bell: Rc<Doorbell>,
}

/// What an active socket's tasks hold besides the stream.
pub struct Parts {
    pub table: Rc<ParkedTable>,
    /// The socket's number (its stream owns it while the socket is active).
    pub fd: RawFd,
    pub key: u32,
    pub mount: usize,
    pub outbox: Rc<Outbox>,
    pub live: Rc<Live>,
    /// Who is on the other end (kept in the record while parked).
    pub peer: Peer,
}

/// A parked socket made active again, for the caller to run (`task::serve`).
pub struct Resumed {
    pub stream: TcpStream,
    pub parts: Parts,
    pub ahead: ReadAhead,
}

thread_local! {
    static TABLE: RefCell<Option<Rc<ParkedTable>>> = const { RefCell::new(None) };
}

/// This worker's table (started with the worker's accept loop).
pub fn get() -> Rc<ParkedTable> {
    TABLE
        .with(|t| t.borrow().clone())
        .expect("the worker's WebSocket table is started")
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

impl ParkedTable {
    /// Makes this worker's table, watching input through the set `epoll`.
    pub fn install(node: &Node, epoll: RawFd) -> Rc<ParkedTable> {
        let table = Rc::new(ParkedTable {
            epoll,
            records: RefCell::new(Slab::new()),
            bell: Doorbell::current(),
        });
        TABLE.with(|t| *t.borrow_mut() = Some(table.clone()));
        // The drain closes this table's sockets; they have no entry in the node's registry.
        let weak = Rc::downgrade(&table);
        node.set_socket_list(Box::new(move || {
            weak.upgrade().map_or_else(Vec::new, |t| {
                let records = t.records.borrow();
                records
                    .iter()
                    .map(|(_, r)| Rc::downgrade(&r.outbox))
                    .collect()
            })
        }));
        table
    }

    /// Adds a new socket, whose stream still owns `fd`; `make` builds its outbox for the table
    /// slot it gets.
    pub fn insert(
        &self,
        node: &Node,
        fd: RawFd,
        mount: usize,
        peer: Peer,
        make: impl FnOnce(u32) -> Outbox,
    ) -> std::io::Result<Rc<Outbox>> {
        let mut records = self.records.borrow_mut();
        let entry = records.vacant_entry();
        let key = entry.key() as u32;
        sys::epoll_ctl(self.epoll, libc::EPOLL_CTL_ADD, fd, key)?;
        let outbox = Rc::new(make(key));
        entry.insert(Record::new(fd, mount, outbox.clone(), peer));
        if node.draining() {
            outbox.close_after_flush(CloseCode::GOING_AWAY.0);
        }
        metrics::add(&node.my_stats().websocket_open, 1);
        metrics::add(&node.my_stats().mounts[mount].websockets, 1);
        Ok(outbox)
    }

    /// Marks a socket active with this shared state.
    pub fn activate(&self, node: &Node, key: u32, live: Rc<Live>) {
        if let Some(r) = self.records.borrow_mut().get_mut(key as usize) {
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
        let fd = match self.records.borrow().get(key as usize) {
            Some(r) => r.fd.raw(),
            None => return Err(std::io::ErrorKind::NotFound.into()),
        };
        sys::epoll_ctl(self.epoll, libc::EPOLL_CTL_MOD, fd, key)
    }

    /// A frame arrived on the socket: it is alive.
    pub fn heard(&self, key: u32) {
        if let Some(r) = self.records.borrow_mut().get_mut(key as usize) {
            r.pings.heard = true;
        }
    }

    /// The socket's tasks have ended and gave up its descriptor: the record holds it now (or
    /// closes it, if the socket is no longer in the table). Input that came meanwhile resumes
    /// the socket at once.
    #[must_use = "a resumed socket must be run"]
    pub fn park(
        self: &Rc<Self>,
        node: &Rc<Node>,
        key: u32,
        fd: OwnedFd,
        live: &Live,
    ) -> Option<Resumed> {
        let outbox = {
            let mut records = self.records.borrow_mut();
            let r = records.get_mut(key as usize)?;
            r.park(fd);
            r.outbox.clone()
        };
        metrics::add(&node.my_stats().websocket_parked, 1);
        outbox.park();
        if live.input.is_set() {
            return self.promote(node, key, true);
        }
        None
    }

    /// Forgets a socket whose tasks are closing it or handing it over (its fd still open).
    pub fn remove(&self, node: &Node, key: u32) {
        let Some(r) = self.records.borrow_mut().try_remove(key as usize) else {
            return;
        };
        let _ = sys::epoll_ctl(self.epoll, libc::EPOLL_CTL_DEL, r.fd.raw(), key);
        if r.live.is_none() && r.outbox.parked() {
            metrics::sub(&node.my_stats().websocket_parked, 1);
        }
        metrics::sub(&node.my_stats().websocket_open, 1);
        metrics::sub(&node.my_stats().mounts[r.mount as usize].websockets, 1);
    }

    /// Makes a parked socket active again; `readable`: input is waiting, read it first.
    #[must_use = "a resumed socket must be run"]
    fn promote(self: &Rc<Self>, node: &Rc<Node>, key: u32, readable: bool) -> Option<Resumed> {
        self.resume(node, key, readable, ReadAhead::default())
    }

    /// Makes a parked socket active again, starting with the input already read: its record
    /// hands the descriptor to a new stream. While an inline task handles its input, the socket
    /// is promoted when that task ends instead.
    #[must_use = "a resumed socket must be run"]
    fn resume(
        self: &Rc<Self>,
        node: &Rc<Node>,
        key: u32,
        readable: bool,
        ahead: ReadAhead,
    ) -> Option<Resumed> {
        let (fd, mount, outbox, peer) = match self.records.borrow_mut().get_mut(key as usize) {
            Some(r) if r.live.is_none() && r.inline => {
                r.resume = true;
                return None;
            }
            // A parked record owns its descriptor (`Record::park`), so `take` gives it.
            Some(r) if r.live.is_none() => (
                r.fd.take()?,
                r.mount as usize,
                r.outbox.clone(),
                r.peer.clone(),
            ),
            _ => return None,
        };
        let live = Rc::new(Live::default());
        if readable {
            live.input.notify();
        }
        metrics::add(&node.my_stats().websocket_resumed, 1);
        self.activate(node, key, live.clone());
        let raw = fd.as_raw_fd();
        let std_stream = std::net::TcpStream::from(fd);
        let _ = std_stream.set_nonblocking(true);
        match TcpStream::from_std(std_stream) {
            Ok(stream) => {
                let parts = Parts {
                    table: self.clone(),
                    fd: raw,
                    key,
                    mount,
                    outbox,
                    live,
                    peer,
                };
                Some(Resumed {
                    stream,
                    parts,
                    ahead,
                })
            }
            Err(e) => {
                // The descriptor was closed with the failed stream.
                tracing::warn!(worker = node.me, error = %e, "could not resume a WebSocket");
                node.engine.borrow_mut().socket_gone(&outbox);
                self.remove(node, key);
                None
            }
        }
    }

    /// An input event for the socket `tag` names: wakes an active reader, or gives a parked
    /// socket's input to an inline task (returned, for the caller to run).
    pub fn on_ready(&self, tag: u64) -> Option<Parked> {
        let key = sys::tag_key(tag);
        let live = {
            let mut records = self.records.borrow_mut();
            let r = records
                .get_mut(key as usize)
                .filter(|r| sys::tag(r.fd.raw(), key) == tag)?;
            match &r.live {
                Some(live) => live.clone(),
                None => {
                    r.inline = true;
                    return Some(r.parked(key));
                }
            }
        };
        live.input.notify();
        None
    }

    /// An inline task has handled a parked socket's input: resume its tasks if that was asked
    /// for meanwhile or the input needs them (`promote`, with what is left in `ahead`), or
    /// watch for more input.
    #[must_use = "a resumed socket must be run"]
    pub fn handled(
        self: &Rc<Self>,
        node: &Rc<Node>,
        key: u32,
        promote: bool,
        ahead: ReadAhead,
    ) -> Option<Resumed> {
        let resume = match self.records.borrow_mut().get_mut(key as usize) {
            Some(r) => {
                r.inline = false;
                std::mem::take(&mut r.resume) || r.cut
            }
            None => return None,
        };
        if promote || resume {
            self.resume(node, key, true, ahead)
        } else if self.arm(key).is_err() {
            self.promote(node, key, true)
        } else {
            None
        }
    }

    /// The bell rang for `key`: cut it if its outbox went over its limit; if it is parked,
    /// write what is queued with non-blocking sends, resuming its tasks when a send would block
    /// or a close is due.
    #[must_use = "a resumed socket must be run"]
    pub fn on_bell(
        self: &Rc<Self>,
        node: &Rc<Node>,
        key: u32,
        frames: &mut Vec<Bytes>,
    ) -> Option<Resumed> {
        let (fd, outbox, parked, cut, mount) = match self.records.borrow().get(key as usize) {
            Some(r) => (
                r.fd.raw(),
                r.outbox.clone(),
                r.live.is_none(),
                r.cut,
                r.mount as usize,
            ),
            None => return None,
        };
        outbox.answered();
        if outbox.aborted() {
            if !cut {
                metrics::add(&node.my_stats().mounts[mount].slow_consumers, 1);
                return self.cut(node, key, CloseCode::POLICY.0);
            }
            return None;
        }
        if !parked {
            return None;
        }
        if outbox.closing().is_some() {
            return self.promote(node, key, false);
        }
        // A send's worth at a time, as the writer task takes it (`task::write_loop`).
        loop {
            outbox.drain_upto(frames, COALESCE_MAX);
            let sent = sys::send_now(fd, frames);
            outbox.written();
            match sent {
                Ok(()) if frames.is_empty() => {
                    if !outbox.has_queued() {
                        return None;
                    }
                }
                Ok(()) => {
                    outbox.requeue_front(std::mem::take(frames));
                    return self.promote(node, key, false);
                }
                Err(_) => {
                    // The reader meets the same error and closes the socket.
                    frames.clear();
                    return self.promote(node, key, false);
                }
            }
        }
    }

    /// Cuts a connection now: its output is dropped, a close frame is sent if the socket can
    /// take it at once, and the TCP connection is shut down, which also ends any read or write
    /// in flight. The reader then tears the socket down as for any closed connection.
    #[must_use = "a resumed socket must be run"]
    pub fn cut(self: &Rc<Self>, node: &Rc<Node>, key: u32, code: u16) -> Option<Resumed> {
        let (fd, outbox, live) = {
            let mut records = self.records.borrow_mut();
            let r = records.get_mut(key as usize).filter(|r| !r.cut)?;
            r.cut = true;
            (r.fd.raw(), r.outbox.clone(), r.live.clone())
        };
        let writer_mid_frame = outbox.writing() > 0;
        outbox.abort(code);
        if !writer_mid_frame {
            let reason = match code {
                PING_TIMEOUT_CLOSE => "ping timeout",
                _ => "slow consumer",
            };
            let _ = sys::send_now(fd, &mut vec![close_frame(code, reason)]);
        }
        // The record is in the table, so `fd` is open: its own, or its active stream's.
        sys::shutdown(fd);
        match live {
            Some(live) => {
                live.input.notify();
                None
            }
            None => self.promote(node, key, true),
        }
    }

    /// One ping round for `mount`: pings its sockets and returns those silent since a ping
    /// older than `limit` ticks (for the caller to cut).
    pub fn ping_all(&self, limit: u32, mount: usize, tick: u32) -> Vec<u32> {
        let mut silent = Vec::new();
        for (key, r) in self.records.borrow_mut().iter_mut() {
            if r.cut || r.mount as usize != mount {
                continue;
            }
            match r.pings.tick(tick, limit) {
                Some(n) => r
                    .outbox
                    .push(control(Opcode::Ping, n.to_string().as_bytes())),
                None => silent.push(key as u32),
            }
        }
        silent
    }
}
