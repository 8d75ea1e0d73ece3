//! One Bayeux client as its worker sees it.

use super::outbox::Outbox;
use super::signal::Signal;
use bytes::Bytes;
use std::collections::VecDeque;
use std::net::IpAddr;
use std::rc::Rc;
use std::time::Instant;

/// A `/meta/connect` waiting for its reply.
pub struct Pending {
    pub id: u64,
    /// The encoded connect reply, sent when the hold ends.
    pub reply: Bytes,
    pub target: Target,
}

pub enum Target {
    /// An HTTP request waits on this signal, then collects the reply and the queue.
    Http(Rc<Signal>),
    /// The reply goes out as a frame on the bound socket.
    Socket(Rc<Outbox>),
}

pub struct Session {
    pub client_id: Box<str>,
    pub subscriptions: Vec<Box<str>>,
    /// Delivered messages (encoded objects) waiting for a connect, oldest first.
    pub queue: VecDeque<Bytes>,
    pub pending: Option<Pending>,
    pub socket: Option<Rc<Outbox>>,
    pub expires_at: Instant,
    /// Number of the last publish delivered, so a client matching several patterns gets one copy.
    pub last_seq: u64,
    /// The client's address, when the per-address session count applies.
    pub ip: Option<IpAddr>,
}

impl Session {
    pub fn new(client_id: Box<str>, expires_at: Instant) -> Session {
        Session {
            client_id,
            subscriptions: Vec::new(),
            queue: VecDeque::new(),
            pending: None,
            socket: None,
            expires_at,
            last_seq: 0,
            ip: None,
        }
    }
}
