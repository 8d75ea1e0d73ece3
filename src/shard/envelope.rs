//! What crosses between workers. Everything here is `Send`; nothing else is.

use bytes::{Bytes, BytesMut};
use futures::channel::oneshot;
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::Instant;

/// Completion of a batch's cross-worker work: every envelope carries a clone, and when the
/// last clone is dropped (the work is done, or the envelope was discarded) the waiter wakes.
pub struct Ack(Option<oneshot::Sender<()>>);

impl Ack {
    pub fn new() -> (Arc<Ack>, oneshot::Receiver<()>) {
        let (tx, rx) = oneshot::channel();
        (Arc::new(Ack(Some(tx))), rx)
    }
}

impl Drop for Ack {
    fn drop(&mut self) {
        if let Some(tx) = self.0.take() {
            let _ = tx.send(());
        }
    }
}

/// A request body, owned and mutable because the JSON parser works in place: a WebSocket
/// message's Vec, or an HTTP body split off the connection's read buffer (neither is copied).
pub enum RequestBody {
    Vec(Vec<u8>),
    Split(BytesMut),
}

impl std::ops::Deref for RequestBody {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            RequestBody::Vec(v) => v,
            RequestBody::Split(b) => b,
        }
    }
}

impl std::ops::DerefMut for RequestBody {
    fn deref_mut(&mut self) -> &mut [u8] {
        match self {
            RequestBody::Vec(v) => v,
            RequestBody::Split(b) => b,
        }
    }
}

impl From<Vec<u8>> for RequestBody {
    fn from(v: Vec<u8>) -> RequestBody {
        RequestBody::Vec(v)
    }
}

impl From<BytesMut> for RequestBody {
    fn from(b: BytesMut) -> RequestBody {
        RequestBody::Split(b)
    }
}

/// A socket handed to the worker that owns its session.
pub enum Adopt {
    /// A WebSocket: `first` is a complete text message not yet handled, `leftover` the bytes
    /// read after it.
    WebSocket {
        first: Vec<u8>,
        leftover: Vec<u8>,
        peer: super::Peer,
    },
    /// An EventSource stream for this clientId (response head not yet written).
    EventSource { client_id: String },
}

pub enum Envelope {
    /// To the channel's owner: route to the interested workers.
    Publish {
        mount: usize,
        channel: Arc<str>,
        msg: Bytes,
        ack: Option<Arc<Ack>>,
        /// When the publish was accepted (for the publish-to-write latency).
        at: Instant,
    },
    /// From the owner: deliver to local subscribers.
    Deliver {
        mount: usize,
        channel: Arc<str>,
        msg: Bytes,
        ack: Option<Arc<Ack>>,
        at: Instant,
    },
    /// A worker's interest in a channel (to its owner) or a pattern (to all) turned on or off.
    Interest {
        mount: usize,
        channel: Arc<str>,
        worker: usize,
        on: bool,
        ack: Option<Arc<Ack>>,
    },
    /// A request body naming a session of the receiver: process it there, send the reply back.
    Batch {
        mount: usize,
        body: RequestBody,
        peer: super::Peer,
        reply: oneshot::Sender<Option<Vec<u8>>>,
    },
    /// A socket whose session lives on the receiver.
    Adopt {
        fd: OwnedFd,
        mount: usize,
        kind: Adopt,
    },
}
