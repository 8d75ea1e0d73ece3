//! Per-worker state: sessions, the local subscription index, the interest tables of the
//! channels this worker owns, held connects and expiry. Synchronous and `!Send`; time comes in
//! as `now`. What must reach other workers comes out as [`Effect`]s for the shard layer.

mod connect;
mod delivery;
pub use delivery::frame_for;
use delivery::unframe;
pub mod interest;
mod moves;
pub use moves::Departed;
pub mod outbox;
pub mod session;
pub mod signal;

use crate::bayeux::channel::{self, Pattern};
use crate::bayeux::id;
use bytes::{Bytes, BytesMut};
pub use interest::{PatternTable, WorkerSet};
pub use outbox::{Doorbell, Kind as OutboxKind, Outbox};
use session::{Pending, Session, Subscribers, Target};
pub use signal::Signal;
use slab::Slab;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};
use std::net::IpAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// A table keyed by channel names, which clients choose: hashed with per-process random keys
/// (so colliding names cannot be precomputed), cheaper than std's SipHash on short names.
pub(crate) type ChannelMap<K, V> = HashMap<K, V, ahash::RandomState>;

/// The hasher of a table whose keys are already hashes (the session index's clientId hashes).
#[derive(Default)]
struct Prehashed(u64);

impl Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

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
    /// Hash of a clientId -> its session's slot. Handshakes never hand out an id whose hash is
    /// taken, and a lookup compares the whole id, so the session holds the only copy.
    by_id: HashMap<u64, u32, BuildHasherDefault<Prehashed>>,
    /// Channel or pattern -> local sessions subscribed to it (the text shared with them).
    local: ChannelMap<Rc<str>, Subscribers>,
    /// How many keys of `local` are patterns: a delivery looks them up only when some are.
    local_patterns: usize,
    /// Exact channels owned by this worker -> workers with local subscribers.
    owned: ChannelMap<Box<str>, WorkerSet>,
    /// Patterns -> workers with local subscribers (replicated on every worker).
    patterns: PatternTable,
    /// Slot -> client address, for sessions the per-address count includes (kept beside the
    /// sessions so that sessions without it pay nothing).
    ips: HashMap<u32, IpAddr>,
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
    /// Each mount's `/meta/connect` hold; sessions expire after twice it.
    timeouts: Vec<Duration>,
    mounts: Vec<Mount>,
    seq: u64,
    next_pending: u64,
    effects: Vec<Effect>,
    /// Deadlines are kept as milliseconds since this instant: (ms, mount, slot).
    epoch: Instant,
    /// One live entry per session (`Session::expiry_entry`), moved on when it comes due early.
    expiry: BinaryHeap<Reverse<(u64, u32, u32)>>,
    holds: BinaryHeap<Reverse<(u64, u32, u32, u64)>>,
    /// The seed of the session index's clientId hashes ([`id::hash`]).
    ids: u64,
    /// Delivered messages dropped because a session queue was full, per mount.
    pub dropped: Vec<u64>,
    /// Messages waiting in session queues, per mount.
    pub queued: Vec<u64>,
    /// Copies the last `deliver` handed to a socket or a waiting connect (written soon, as
    /// opposed to queued for a client with no connection).
    pub pushed: usize,
    /// Client addresses of sessions that ended, for the per-address session count.
    ended: Vec<(usize, IpAddr)>,
    /// Sessions that expired, for the session directory (None: not tracked).
    closed: Option<Vec<(usize, String)>>,
    /// Where `deliver` writes the text of a pattern to look it up (reused, so no allocation).
    key: String,
}

/// Unbinds a session's socket and queues again, ahead of anything queued since, the
/// deliveries a cut socket never wrote (oldest dropped beyond the session's bound). Returns
/// how many were queued and how many dropped.
fn unbind_cut(session: &mut Session) -> (u64, u64) {
    let Some(out) = session.socket.take() else {
        return (0, 0);
    };
    out.binding.set(None);
    let msgs: Vec<Bytes> = (out.take_undelivered().iter())
        .filter_map(|f| unframe(out.kind, f))
        .collect();
    session.requeue_front(msgs, SESSION_QUEUE_LIMIT)
}

impl Engine {
    pub fn new(worker: usize, workers: usize, mounts: usize, timeout: Duration) -> Engine {
        Engine {
            worker,
            workers,
            timeouts: vec![timeout; mounts],
            mounts: (0..mounts).map(|_| Mount::default()).collect(),
            seq: 0,
            next_pending: 0,
            effects: Vec::new(),
            epoch: Instant::now(),
            expiry: BinaryHeap::new(),
            holds: BinaryHeap::new(),
            ids: rand::random(),
            dropped: vec![0; mounts],
            queued: vec![0; mounts],
            pushed: 0,
            ended: Vec::new(),
            closed: None,
            key: String::new(),
        }
    }

    /// Sets one mount's hold (its sessions expire after twice it).
    pub fn set_timeout(&mut self, mount: usize, timeout: Duration) {
        if let Some(t) = self.timeouts.get_mut(mount) {
            *t = timeout;
        }
    }

    /// Addresses of the sessions that ended since the last call.
    pub fn take_ended(&mut self) -> Vec<(usize, IpAddr)> {
        std::mem::take(&mut self.ended)
    }

    /// Number of subscriptions a client holds (0 when unknown).
    pub fn subscription_count(&self, mount: usize, client_id: &str) -> usize {
        self.slot(mount, client_id)
            .and_then(|slot| self.mounts[mount].sessions.get(slot))
            .map_or(0, |s| s.subscriptions.len())
    }

    pub fn take_effects(&mut self) -> Vec<Effect> {
        std::mem::take(&mut self.effects)
    }

    fn ms(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.epoch).as_millis() as u64
    }

    fn slot(&self, mount: usize, client_id: &str) -> Option<usize> {
        let m = self.mounts.get(mount)?;
        let slot = *m.by_id.get(&id::hash(self.ids, client_id))? as usize;
        m.sessions.get(slot)?.is(client_id).then_some(slot)
    }

    pub fn exists(&self, mount: usize, client_id: &str) -> bool {
        self.slot(mount, client_id).is_some()
    }

    pub fn session_count(&self, mount: usize) -> usize {
        self.mounts[mount].sessions.len()
    }

    fn ping(&mut self, mount: usize, slot: usize, now: Instant) {
        let at = self.ms(now + 2 * self.timeouts[mount]);
        if let Some(s) = self.mounts[mount].sessions.get_mut(slot) {
            s.expires_at = at;
            if s.expiry_entry == 0 {
                s.expiry_entry = at;
                self.expiry.push(Reverse((at, mount as u32, slot as u32)));
            }
        }
    }

    /// Creates a session and returns its clientId.
    pub fn handshake(&mut self, mount: usize, now: Instant) -> String {
        self.handshake_from(mount, now, None)
    }

    /// Creates a session for a client at `ip` (reported by [`Engine::take_ended`] when it
    /// ends) and returns its clientId.
    pub fn handshake_from(&mut self, mount: usize, now: Instant, ip: Option<IpAddr>) -> String {
        let m = &mut self.mounts[mount];
        let (client_id, hash) = loop {
            let id = id::generate(self.worker, self.workers);
            let hash = id::hash(self.ids, &id);
            if !m.by_id.contains_key(&hash) {
                break (id, hash);
            }
        };
        let slot = m.sessions.insert(Session::new(&client_id, 0));
        m.by_id.insert(hash, slot as u32);
        if let Some(ip) = ip {
            m.ips.insert(slot as u32, ip);
        }
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
            let key = match m
                .local
                .get_mut(ch.as_str())
                .map(|subs| subs.insert(slot as u32))
            {
                Some(false) => continue,
                Some(true) => m.local.get_key_value(ch.as_str()).map(|(k, _)| k.clone()),
                None => None,
            };
            let key = key.unwrap_or_else(|| {
                let key: Rc<str> = Rc::from(ch.as_str());
                m.local.insert(key.clone(), Subscribers::One(slot as u32));
                m.local_patterns += usize::from(channel::is_pattern(ch));
                self.effects.push(Effect {
                    mount,
                    channel: ch.as_str().into(),
                    on: true,
                });
                key
            });
            m.sessions[slot].add_subscription(key);
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
        let Some(subs) = m.local.get_mut(ch) else {
            return;
        };
        let Some(now_empty) = subs.remove(slot as u32) else {
            return;
        };
        if now_empty {
            m.local.remove(ch);
            m.local_patterns -= usize::from(channel::is_pattern(ch));
            self.effects.push(Effect {
                mount,
                channel: ch.into(),
                on: false,
            });
        }
        if let Some(s) = m.sessions.get_mut(slot) {
            s.remove_subscription(ch);
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
        let mut session = m.sessions.remove(slot);
        self.queued[mount] -= session.take_queue().len() as u64;
        m.by_id.remove(&id::hash(self.ids, client_id));
        if let Some(ip) = m.ips.remove(&(slot as u32)) {
            self.ended.push((mount, ip));
        }
        if let Some(out) = session.socket {
            out.binding.set(None);
            out.close_after_flush(1000);
        }
    }

    /// Owner side: the workers to forward a publish on `name` to.
    pub fn interested(&self, mount: usize, name: &str) -> WorkerSet {
        let m = &self.mounts[mount];
        let mut set = m.owned.get(name).cloned().unwrap_or_default();
        if !m.patterns.is_empty() {
            m.patterns.add_matches(name, &mut set);
        }
        set
    }

    /// Records that `worker`'s interest in a channel (owned here) or a pattern changed.
    /// Returns true when the name gained its first interested worker or lost its last.
    pub fn apply_interest(&mut self, mount: usize, name: &str, worker: usize, on: bool) -> bool {
        let m = &mut self.mounts[mount];
        if let Some(pattern) = Pattern::parse(name) {
            return m.patterns.update(pattern, worker, on);
        }
        let table = &mut m.owned;
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
        let now = self.ms(now);
        while let Some(&Reverse((at, mount, slot, id))) = self.holds.peek() {
            if at > now {
                break;
            }
            self.holds.pop();
            let (mount, slot) = (mount as usize, slot as usize);
            let due = self.mounts[mount]
                .sessions
                .get(slot)
                .and_then(|s| s.pending.as_ref())
                .is_some_and(|p| p.id == id as u32);
            if due {
                self.answer_pending(mount, slot);
            }
        }
        while let Some(&Reverse((at, mount, slot))) = self.expiry.peek() {
            if at > now {
                break;
            }
            self.expiry.pop();
            let Some(s) = self.mounts[mount as usize].sessions.get_mut(slot as usize) else {
                continue;
            };
            if s.expiry_entry != at {
                continue;
            }
            if s.expires_at > now {
                // Pinged since: the entry moves to the new deadline.
                s.expiry_entry = s.expires_at;
                self.expiry.push(Reverse((s.expires_at, mount, slot)));
                continue;
            }
            let client_id = s.client_id().to_owned();
            self.destroy(mount as usize, &client_id);
            if let Some(closed) = &mut self.closed {
                closed.push((mount as usize, client_id));
            }
        }
    }
}

#[cfg(test)]
mod tests;
