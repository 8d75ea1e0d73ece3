//! One Bayeux client as its worker sees it, kept small: an idle client is mostly this record.

use super::outbox::Outbox;
use super::signal::Signal;
use crate::bayeux::id;
use bytes::Bytes;
use std::collections::{HashSet, VecDeque};
use std::rc::Rc;

/// A `/meta/connect` waiting for its reply.
pub struct Pending {
    /// The low bits of the connect's number, enough to tell a stale deadline from this one.
    pub id: u32,
    /// Where the clientId goes back into `reply` (`u16::MAX`: it was not in it).
    client_id_at: u16,
    /// The encoded connect reply without its clientId, sent on the socket when the hold ends
    /// (empty for HTTP, whose waiting request answers with its own copy).
    reply: Box<[u8]>,
    pub target: Target,
}

impl Pending {
    pub fn http(id: u64, signal: Rc<Signal>) -> Pending {
        Pending {
            id: id as u32,
            client_id_at: u16::MAX,
            reply: Box::default(),
            target: Target::Http(signal),
        }
    }

    /// A reply held for a socket, kept without the clientId text (the session has it): a held
    /// connect is most of an idle client's memory.
    pub fn socket(id: u64, reply: &[u8], client_id: &str, out: Rc<Outbox>) -> Pending {
        let at = reply
            .windows(client_id.len().max(1))
            .position(|w| w == client_id.as_bytes())
            .filter(|&at| at < usize::from(u16::MAX));
        let reply = match at {
            Some(at) => [&reply[..at], &reply[at + client_id.len()..]].concat(),
            None => reply.to_vec(),
        };
        Pending {
            id: id as u32,
            client_id_at: at.map_or(u16::MAX, |at| at as u16),
            reply: reply.into_boxed_slice(),
            target: Target::Socket(out),
        }
    }

    /// The held reply as it was given.
    pub fn reply(&self, client_id: &str) -> Vec<u8> {
        let at = usize::from(self.client_id_at);
        if self.client_id_at == u16::MAX || at > self.reply.len() {
            return self.reply.to_vec();
        }
        [&self.reply[..at], client_id.as_bytes(), &self.reply[at..]].concat()
    }
}

pub enum Target {
    /// An HTTP request waits on this signal, then collects the reply and the queue.
    Http(Rc<Signal>),
    /// The reply goes out as a frame on the bound socket.
    Socket(Rc<Outbox>),
}

/// What waits for a client between two connects.
#[derive(Default)]
pub struct Queue {
    /// Delivered messages (encoded objects), oldest first.
    pub msgs: VecDeque<Bytes>,
    /// With the Redis engine: the log position (packed) of the oldest message queued for the
    /// client that it has not confirmed yet by a later connect (0: none). The process's
    /// checkpoint stays at or before it, so that another process adopting the session after
    /// a crash replays from there.
    pub unconfirmed: u64,
}

pub struct Session {
    /// The clientId, inline (every clientId this engine makes is `id::LEN` ASCII characters).
    client_id: [u8; id::LEN],
    /// Channels and patterns, sharing their text with the worker's subscription index.
    pub subscriptions: Box<[Rc<str>]>,
    /// Delivered messages (encoded objects) waiting for a connect, oldest first; boxed, as
    /// a client with a socket never needs one (8 bytes in every session instead of 32).
    #[allow(clippy::box_collection)]
    queue: Option<Box<Queue>>,
    pub pending: Option<Pending>,
    pub socket: Option<Rc<Outbox>>,
    /// Expiry deadline, in milliseconds of the engine's clock.
    pub expires_at: u64,
    /// Number of the last publish delivered, so a client matching several patterns gets one copy.
    pub last_seq: u64,
    /// Deadline of this session's entry in the expiry queue (0: none). Entries with another
    /// deadline for this slot are stale (a destroyed session's) and ignored.
    pub expiry_entry: u64,
}

impl Session {
    /// A session for a clientId made by `id::generate` (`id::LEN` ASCII characters).
    pub fn new(client_id: &str, expires_at: u64) -> Session {
        let mut inline = [0u8; id::LEN];
        let n = client_id.len().min(id::LEN);
        inline[..n].copy_from_slice(&client_id.as_bytes()[..n]);
        Session {
            client_id: inline,
            subscriptions: Box::default(),
            queue: None,
            pending: None,
            socket: None,
            expires_at,
            last_seq: 0,
            expiry_entry: 0,
        }
    }

    /// Whether this session's clientId is `id` (a byte compare, no UTF-8 check).
    pub fn is(&self, id: &str) -> bool {
        self.client_id[..] == *id.as_bytes()
    }

    pub fn client_id(&self) -> &str {
        std::str::from_utf8(&self.client_id).unwrap_or_default()
    }

    pub fn add_subscription(&mut self, channel: Rc<str>) {
        let mut subs = std::mem::take(&mut self.subscriptions).into_vec();
        subs.push(channel);
        self.subscriptions = subs.into_boxed_slice();
    }

    pub fn remove_subscription(&mut self, channel: &str) {
        let mut subs = std::mem::take(&mut self.subscriptions).into_vec();
        subs.retain(|c| c.as_ref() != channel);
        self.subscriptions = subs.into_boxed_slice();
    }

    pub fn has_queue(&self) -> bool {
        self.queue.as_ref().is_some_and(|q| !q.msgs.is_empty())
    }

    /// Takes the queued messages, leaving no buffer behind (unless the client has still to
    /// confirm them: see [`Queue::unconfirmed`]).
    pub fn take_queue(&mut self) -> VecDeque<Bytes> {
        let Some(q) = self.queue.as_mut() else {
            return VecDeque::new();
        };
        let msgs = std::mem::take(&mut q.msgs);
        if q.unconfirmed == 0 {
            self.queue = None;
        }
        msgs
    }

    /// Notes that a message at log position `pos` (packed; 0: none) was queued for the client.
    pub fn mark_unconfirmed(&mut self, pos: u64) {
        if pos == 0 {
            return;
        }
        let q = self.queue.get_or_insert_with(Box::default);
        if q.unconfirmed == 0 {
            q.unconfirmed = pos;
        }
    }

    /// The client confirmed what it was sent (a connect found nothing queued).
    pub fn confirm(&mut self) {
        if self.queue.as_ref().is_some_and(|q| q.msgs.is_empty()) {
            self.queue = None;
        }
    }

    /// See [`Queue::unconfirmed`] (0: none).
    pub fn unconfirmed(&self) -> u64 {
        self.queue.as_ref().map_or(0, |q| q.unconfirmed)
    }

    /// Puts `msgs` (older than anything queued) at the front, in order, then drops the oldest
    /// beyond `limit`. Returns how many messages the queue gained and how many it dropped.
    pub fn requeue_front(&mut self, msgs: Vec<Bytes>, limit: usize) -> (u64, u64) {
        if msgs.is_empty() {
            return (0, 0);
        }
        let q = &mut self.queue.get_or_insert_with(Box::default).msgs;
        let before = q.len();
        for msg in msgs.into_iter().rev() {
            q.push_front(msg);
        }
        let over = q.len().saturating_sub(limit);
        q.drain(..over);
        ((q.len() - before) as u64, over as u64)
    }

    /// Queues a message, dropping the oldest beyond `limit`; true when one was dropped.
    pub fn enqueue(&mut self, msg: Bytes, limit: usize) -> bool {
        let q = &mut self.queue.get_or_insert_with(Box::default).msgs;
        let full = q.len() >= limit;
        if full {
            q.pop_front();
        }
        q.push_back(msg);
        full
    }
}

/// The local sessions subscribed to one channel or pattern: most channels (per-user ones) have
/// exactly one, which needs no set of its own.
pub enum Subscribers {
    One(u32),
    Many(Box<HashSet<u32>>),
}

impl Subscribers {
    /// Adds a session; false when it was already there.
    pub fn insert(&mut self, slot: u32) -> bool {
        match self {
            Subscribers::One(s) if *s == slot => false,
            Subscribers::One(s) => {
                *self = Subscribers::Many(Box::new(HashSet::from([*s, slot])));
                true
            }
            Subscribers::Many(set) => set.insert(slot),
        }
    }

    /// Removes a session: `None` when it was not there, else whether none are left.
    pub fn remove(&mut self, slot: u32) -> Option<bool> {
        match self {
            Subscribers::One(s) => (*s == slot).then_some(true),
            Subscribers::Many(set) => {
                let removed = set.remove(&slot);
                removed.then_some(set.is_empty())
            }
        }
    }

    pub fn for_each(&self, mut f: impl FnMut(u32)) {
        match self {
            Subscribers::One(s) => f(*s),
            Subscribers::Many(set) => set.iter().for_each(|&s| f(s)),
        }
    }
}
