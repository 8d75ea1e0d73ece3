//! Per-worker state: sessions, the local subscription index, the interest tables of the
//! channels this worker owns, held connects and expiry. Synchronous and `!Send`; time comes in
//! as `now`. What must reach other workers comes out as [`Effect`]s for the shard layer.

pub mod interest;
pub mod outbox;
pub mod session;
pub mod signal;

use crate::bayeux::{channel, id};
use bytes::{BufMut, Bytes, BytesMut};
pub use interest::WorkerSet;
pub use outbox::{Kind as OutboxKind, Outbox};
use session::{Pending, Session, Target};
pub use signal::Signal;
use slab::Slab;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::rc::Rc;
use std::time::{Duration, Instant};

/// Messages kept for a client with no connection before the oldest are dropped.
pub const SESSION_QUEUE_LIMIT: usize = 1000;

/// A change other workers must hear about: this worker's interest in a channel or pattern
/// turned on or off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Effect {
    pub mount: usize,
    pub channel: Box<str>,
    pub on: bool,
}

#[derive(Default)]
struct Mount {
    sessions: Slab<Session>,
    by_id: HashMap<Box<str>, usize>,
    /// Channel or pattern -> local sessions subscribed to it.
    local: HashMap<Box<str>, HashSet<usize>>,
    /// Exact channels owned by this worker -> workers with local subscribers.
    owned: HashMap<Box<str>, WorkerSet>,
    /// Patterns -> workers with local subscribers (replicated on every worker).
    patterns: HashMap<Box<str>, WorkerSet>,
}

/// What a connect turned into.
pub enum ConnectOutcome {
    /// Answer now with these delivered messages after the reply.
    Now(Vec<Bytes>),
    /// Wait for the signal, then call [`Engine::finish_connect`] with this pending id.
    Held(Rc<Signal>, u64),
    /// The reply will be written to the bound socket.
    OnSocket,
}

pub struct Engine {
    pub worker: usize,
    pub workers: usize,
    timeout: Duration,
    mounts: Vec<Mount>,
    seq: u64,
    next_pending: u64,
    effects: Vec<Effect>,
    expiry: BinaryHeap<Reverse<(Instant, usize, usize)>>,
    holds: BinaryHeap<Reverse<(Instant, usize, usize, u64)>>,
    /// Push sockets bound to a session: socket id -> (mount, clientId).
    bound: HashMap<u64, (usize, Box<str>)>,
    /// Delivered messages dropped because a session queue was full, per mount.
    pub dropped: Vec<u64>,
}

fn ws_frame(msg: &Bytes) -> Bytes {
    let mut out = BytesMut::with_capacity(msg.len() + 12);
    crate::websocket::frame::text_header(msg.len() + 2, &mut out);
    out.put_u8(b'[');
    out.extend_from_slice(msg);
    out.put_u8(b']');
    out.freeze()
}

fn es_frame(msg: &Bytes) -> Bytes {
    let mut out = BytesMut::with_capacity(msg.len() + 12);
    out.extend_from_slice(b"data: [");
    out.extend_from_slice(msg);
    out.extend_from_slice(b"]\r\n\r\n");
    out.freeze()
}

/// The frame carrying `json` (a reply array) on a socket of this kind.
pub fn frame_for(kind: OutboxKind, json: &[u8]) -> Bytes {
    match kind {
        OutboxKind::WebSocket => {
            let mut out = BytesMut::with_capacity(json.len() + 10);
            crate::websocket::frame::text_header(json.len(), &mut out);
            out.extend_from_slice(json);
            out.freeze()
        }
        OutboxKind::EventSource => {
            let mut out = BytesMut::with_capacity(json.len() + 12);
            out.extend_from_slice(b"data: ");
            out.extend_from_slice(json);
            out.extend_from_slice(b"\r\n\r\n");
            out.freeze()
        }
    }
}

fn single(msg: &Bytes) -> Vec<u8> {
    let mut v = Vec::with_capacity(msg.len() + 2);
    v.push(b'[');
    v.extend_from_slice(msg);
    v.push(b']');
    v
}

impl Engine {
    pub fn new(worker: usize, workers: usize, mounts: usize, timeout: Duration) -> Engine {
        Engine {
            worker,
            workers,
            timeout,
            mounts: (0..mounts).map(|_| Mount::default()).collect(),
            seq: 0,
            next_pending: 0,
            effects: Vec::new(),
            expiry: BinaryHeap::new(),
            holds: BinaryHeap::new(),
            bound: HashMap::new(),
            dropped: vec![0; mounts],
        }
    }

    pub fn take_effects(&mut self) -> Vec<Effect> {
        std::mem::take(&mut self.effects)
    }

    fn slot(&self, mount: usize, client_id: &str) -> Option<usize> {
        self.mounts.get(mount)?.by_id.get(client_id).copied()
    }

    pub fn exists(&self, mount: usize, client_id: &str) -> bool {
        self.slot(mount, client_id).is_some()
    }

    pub fn session_count(&self, mount: usize) -> usize {
        self.mounts[mount].sessions.len()
    }

    fn ping(&mut self, mount: usize, slot: usize, now: Instant) {
        let at = now + 2 * self.timeout;
        if let Some(s) = self.mounts[mount].sessions.get_mut(slot) {
            s.expires_at = at;
            self.expiry.push(Reverse((at, mount, slot)));
        }
    }

    /// Creates a session and returns its clientId.
    pub fn handshake(&mut self, mount: usize, now: Instant) -> String {
        let m = &mut self.mounts[mount];
        let client_id = loop {
            let id = id::generate(self.worker, self.workers);
            if !m.by_id.contains_key(id.as_str()) {
                break id;
            }
        };
        let slot = m
            .sessions
            .insert(Session::new(client_id.as_str().into(), now));
        m.by_id.insert(client_id.as_str().into(), slot);
        self.ping(mount, slot, now);
        client_id
    }

    /// Subscribes a client; idempotent. Emits interest effects when this worker's interest flips on.
    pub fn subscribe(&mut self, mount: usize, client_id: &str, channels: &[String]) {
        let Some(slot) = self.slot(mount, client_id) else {
            return;
        };
        let m = &mut self.mounts[mount];
        for ch in channels {
            let set = m.local.entry(ch.as_str().into()).or_default();
            if set.insert(slot) {
                if set.len() == 1 {
                    self.effects.push(Effect {
                        mount,
                        channel: ch.as_str().into(),
                        on: true,
                    });
                }
                m.sessions[slot].subscriptions.push(ch.as_str().into());
            }
        }
    }

    pub fn unsubscribe(&mut self, mount: usize, client_id: &str, channels: &[String]) {
        let Some(slot) = self.slot(mount, client_id) else {
            return;
        };
        for ch in channels {
            self.drop_subscription(mount, slot, ch);
        }
    }

    fn drop_subscription(&mut self, mount: usize, slot: usize, ch: &str) {
        let m = &mut self.mounts[mount];
        let Some(set) = m.local.get_mut(ch) else {
            return;
        };
        if !set.remove(&slot) {
            return;
        }
        if set.is_empty() {
            m.local.remove(ch);
            self.effects.push(Effect {
                mount,
                channel: ch.into(),
                on: false,
            });
        }
        if let Some(s) = m.sessions.get_mut(slot) {
            s.subscriptions.retain(|c| c.as_ref() != ch);
        }
    }

    /// Handles a validated connect (spec 4.2 with the fixes of 11.1 to 11.3).
    pub fn connect(
        &mut self,
        mount: usize,
        client_id: &str,
        reply: Bytes,
        hold: Duration,
        socket: Option<Rc<Outbox>>,
        now: Instant,
    ) -> ConnectOutcome {
        let Some(slot) = self.slot(mount, client_id) else {
            return ConnectOutcome::Now(Vec::new());
        };
        self.ping(mount, slot, now);
        self.answer_pending(mount, slot);
        let session = &mut self.mounts[mount].sessions[slot];
        if let Some(out) = socket {
            let rebind = session.socket.as_ref().map(|s| s.id) != Some(out.id);
            if let Some(old) = session.socket.replace(out.clone()) {
                self.bound.remove(&old.id);
            }
            self.bound.insert(out.id, (mount, client_id.into()));
            if rebind {
                for msg in session.queue.drain(..) {
                    out.push(match out.kind {
                        OutboxKind::WebSocket => ws_frame(&msg),
                        OutboxKind::EventSource => es_frame(&msg),
                    });
                }
            }
            if hold.is_zero() {
                out.push(frame_for(out.kind, &single(&reply)));
                return ConnectOutcome::OnSocket;
            }
            self.next_pending += 1;
            let id = self.next_pending;
            session.pending = Some(Pending {
                id,
                reply,
                target: Target::Socket(out),
            });
            self.holds.push(Reverse((now + hold, mount, slot, id)));
            return ConnectOutcome::OnSocket;
        }
        if hold.is_zero() || !session.queue.is_empty() {
            return ConnectOutcome::Now(session.queue.drain(..).collect());
        }
        self.next_pending += 1;
        let id = self.next_pending;
        let signal = Rc::new(Signal::default());
        session.pending = Some(Pending {
            id,
            reply,
            target: Target::Http(signal.clone()),
        });
        self.holds.push(Reverse((now + hold, mount, slot, id)));
        ConnectOutcome::Held(signal, id)
    }

    /// Ends a held HTTP connect: the messages to send after its reply.
    pub fn finish_connect(&mut self, mount: usize, client_id: &str, pending: u64) -> Vec<Bytes> {
        let Some(slot) = self.slot(mount, client_id) else {
            return Vec::new();
        };
        let session = &mut self.mounts[mount].sessions[slot];
        if session.pending.as_ref().is_some_and(|p| p.id == pending) {
            session.pending = None;
        }
        session.queue.drain(..).collect()
    }

    /// Answers a waiting connect now (a newer connect, a disconnect, or its deadline).
    fn answer_pending(&mut self, mount: usize, slot: usize) {
        let Some(session) = self.mounts[mount].sessions.get_mut(slot) else {
            return;
        };
        match session.pending.take() {
            // The waiting request collects the queue itself when it runs.
            Some(Pending {
                target: Target::Http(signal),
                ..
            }) => signal.notify(),
            Some(Pending {
                target: Target::Socket(out),
                reply,
                ..
            }) => {
                out.push(frame_for(out.kind, &single(&reply)));
            }
            None => {}
        }
    }

    /// Destroys a client (disconnect or expiry): unsubscribes everything, answers its connect,
    /// and closes its socket with 1000 once what is queued is written.
    pub fn destroy(&mut self, mount: usize, client_id: &str) {
        let Some(slot) = self.slot(mount, client_id) else {
            return;
        };
        self.answer_pending(mount, slot);
        let subs = std::mem::take(&mut self.mounts[mount].sessions[slot].subscriptions);
        for ch in subs.iter() {
            self.drop_subscription(mount, slot, ch);
        }
        let m = &mut self.mounts[mount];
        let session = m.sessions.remove(slot);
        m.by_id.remove(client_id);
        if let Some(out) = session.socket {
            self.bound.remove(&out.id);
            out.close_after_flush(1000);
        }
    }

    /// Answers every held HTTP connect now (the process is draining).
    pub fn answer_all_pending(&mut self) {
        for m in &mut self.mounts {
            for (_, s) in m.sessions.iter_mut() {
                if let Some(Pending {
                    target: Target::Http(signal),
                    ..
                }) = &s.pending
                {
                    signal.notify();
                    s.pending = None;
                }
            }
        }
    }

    /// Binds an EventSource stream to a client, if it exists (Faye binds without checking).
    pub fn bind_stream(&mut self, mount: usize, client_id: &str, out: Rc<Outbox>) {
        let Some(slot) = self.slot(mount, client_id) else {
            return;
        };
        let session = &mut self.mounts[mount].sessions[slot];
        for msg in session.queue.drain(..) {
            out.push(es_frame(&msg));
        }
        self.bound.insert(out.id, (mount, client_id.into()));
        if let Some(old) = session.socket.replace(out) {
            self.bound.remove(&old.id);
        }
    }

    /// Whether a push socket is bound to a session here.
    pub fn is_bound(&self, socket_id: u64) -> bool {
        self.bound.contains_key(&socket_id)
    }

    /// A push socket closed: unbind it if it is still bound.
    pub fn socket_gone(&mut self, socket_id: u64) {
        if let Some((mount, client_id)) = self.bound.remove(&socket_id) {
            self.socket_closed(mount, &client_id, socket_id);
        }
    }

    /// A socket closed: unbind it from its client, only if it is the one bound (spec 11.4).
    pub fn socket_closed(&mut self, mount: usize, client_id: &str, socket_id: u64) {
        let Some(slot) = self.slot(mount, client_id) else {
            return;
        };
        let session = &mut self.mounts[mount].sessions[slot];
        if session.socket.as_ref().is_some_and(|s| s.id == socket_id) {
            session.socket = None;
            if matches!(
                session.pending,
                Some(Pending {
                    target: Target::Socket(_),
                    ..
                })
            ) {
                session.pending = None;
            }
        }
    }

    /// Delivers a publish to every local subscriber of the channel, once per client.
    pub fn deliver(&mut self, mount: usize, name: &str, msg: &Bytes) -> usize {
        self.seq += 1;
        let seq = self.seq;
        let (mut ws, mut es) = (None::<Bytes>, None::<Bytes>);
        let mut count = 0;
        let m = &mut self.mounts[mount];
        for key in channel::expand(name) {
            let Some(set) = m.local.get(key.as_str()) else {
                continue;
            };
            for &slot in set {
                let Some(session) = m.sessions.get_mut(slot) else {
                    continue;
                };
                if session.last_seq == seq {
                    continue;
                }
                session.last_seq = seq;
                count += 1;
                if let Some(out) = &session.socket {
                    let frame = match out.kind {
                        OutboxKind::WebSocket => ws.get_or_insert_with(|| ws_frame(msg)),
                        OutboxKind::EventSource => es.get_or_insert_with(|| es_frame(msg)),
                    };
                    out.push(frame.clone());
                    continue;
                }
                if session.queue.len() >= SESSION_QUEUE_LIMIT {
                    session.queue.pop_front();
                    self.dropped[mount] += 1;
                }
                session.queue.push_back(msg.clone());
                if let Some(Pending {
                    target: Target::Http(signal),
                    ..
                }) = &session.pending
                {
                    signal.notify();
                }
            }
        }
        count
    }

    /// Owner side: the workers to forward a publish on `name` to.
    pub fn interested(&self, mount: usize, name: &str) -> WorkerSet {
        let m = &self.mounts[mount];
        let mut set = m.owned.get(name).cloned().unwrap_or_default();
        if !m.patterns.is_empty() {
            for key in channel::expand(name).iter().skip(1) {
                if let Some(p) = m.patterns.get(key.as_str()) {
                    set.union(p);
                }
            }
        }
        set
    }

    /// Records that `worker`'s interest in a channel (owned here) or a pattern changed.
    /// Returns true when the name gained its first interested worker or lost its last.
    pub fn apply_interest(&mut self, mount: usize, name: &str, worker: usize, on: bool) -> bool {
        let m = &mut self.mounts[mount];
        let table = if channel::is_pattern(name) {
            &mut m.patterns
        } else {
            &mut m.owned
        };
        if on {
            let set = table.entry(name.into()).or_default();
            let was_empty = set.is_empty();
            set.insert(worker);
            was_empty
        } else if let Some(set) = table.get_mut(name) {
            set.remove(worker);
            let now_empty = set.is_empty();
            if now_empty {
                table.remove(name);
            }
            now_empty
        } else {
            false
        }
    }

    /// Sizes of the tables, to check that nothing leaks: (sessions, local keys, owned, patterns).
    pub fn table_sizes(&self, mount: usize) -> (usize, usize, usize, usize) {
        let m = &self.mounts[mount];
        (
            m.sessions.len(),
            m.local.len(),
            m.owned.len(),
            m.patterns.len(),
        )
    }

    /// Runs expiry and hold deadlines up to `now`.
    pub fn tick(&mut self, now: Instant) {
        while let Some(&Reverse((at, mount, slot, id))) = self.holds.peek() {
            if at > now {
                break;
            }
            self.holds.pop();
            let due = self.mounts[mount]
                .sessions
                .get(slot)
                .and_then(|s| s.pending.as_ref())
                .is_some_and(|p| p.id == id);
            if due {
                self.answer_pending(mount, slot);
            }
        }
        while let Some(&Reverse((at, mount, slot))) = self.expiry.peek() {
            if at > now {
                break;
            }
            self.expiry.pop();
            let expired = self.mounts[mount]
                .sessions
                .get(slot)
                .filter(|s| s.expires_at <= now)
                .map(|s| s.client_id.clone());
            if let Some(client_id) = expired {
                self.destroy(mount, &client_id);
            }
        }
    }
}

#[cfg(test)]
mod tests;
