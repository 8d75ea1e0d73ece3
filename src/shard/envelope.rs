//! What crosses between workers. Everything here is `Send`; nothing else is.

use bytes::{Bytes, BytesMut};
use futures::channel::oneshot;
use futures::task::AtomicWaker;
use std::future::Future;
use std::os::fd::OwnedFd;
use std::pin::Pin;
use std::sync::atomic::{Ordering, fence};
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};
use std::time::Instant;

/// Completion of a batch's cross-worker work: every envelope carries a clone, and when the
/// last clone is dropped (the work is done, or the envelope was discarded) the waiter wakes.
/// The clones share one `Arc`, whose count is the count of clones; the waiter holds it weakly,
/// so the state is dropped, and wakes it, with the last clone.
#[derive(Clone)]
pub struct Ack(
    #[expect(
        dead_code,
        reason = "never read: the clones exist to be counted and dropped"
    )]
    Arc<AckState>,
);

struct AckState {
    waiter: AtomicWaker,
}

impl Drop for AckState {
    fn drop(&mut self) {
        self.waiter.wake();
    }
}

/// Waits until every [`Ack`] made with it has been dropped.
pub struct AckDone(Weak<AckState>);

impl Ack {
    pub fn new() -> (Ack, AckDone) {
        let state = Arc::new(AckState {
            waiter: AtomicWaker::new(),
        });
        let done = AckDone(Arc::downgrade(&state));
        (Ack(state), done)
    }
}

impl Future for AckDone {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let Some(state) = self.0.upgrade() else {
            // Every clone is gone: what was done under them happens before this return.
            fence(Ordering::Acquire);
            return Poll::Ready(());
        };
        state.waiter.register(cx.waker());
        // If this was the last reference, its drop wakes this task, which then finds none.
        drop(state);
        Poll::Pending
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
        ack: Option<Ack>,
        /// When the publish was accepted (for the publish-to-write latency).
        at: Instant,
    },
    /// From the owner: deliver to local subscribers. From the link, `pos` is the entry's
    /// position in the mount's log (packed, [`crate::backplane::naming::pack`]; else 0).
    Deliver {
        mount: usize,
        channel: Arc<str>,
        msg: Bytes,
        ack: Option<Ack>,
        at: Instant,
        pos: u64,
    },
    /// From the link, every second: every entry of the log up to `pos` (packed) came before
    /// this; the worker answers with the oldest position a client of its may still miss
    /// ([`super::Cluster::checkpoint`]).
    Checkpoint { mount: usize, pos: u64 },
    /// A worker's interest in a channel (to its owner) or a pattern (to all) turned on or off.
    Interest {
        mount: usize,
        channel: Arc<str>,
        worker: usize,
        on: bool,
        ack: Option<Ack>,
    },
    /// A request body naming a session of the receiver: process it there, send the reply back.
    Batch {
        mount: usize,
        body: RequestBody,
        peer: super::Peer,
        /// The reply, or why the body was refused (the same refusal on every worker).
        reply: oneshot::Sender<Result<Vec<u8>, crate::bayeux::json::BodyError>>,
    },
    /// From the link: another process asks for a session of the receiver; every entry of
    /// the log up to `ask.cut` reached the receiver before this.
    Depart { ask: Box<super::cluster::Ask> },
    /// From the link: Redis is reachable again (and may have restarted empty): every session
    /// of the receiver is written to the directory again, unless another process took it
    /// meanwhile ([`Envelope::Forget`]).
    Resync,
    /// From the admin listener: how many of the receiver's sessions on `mount` a publish on
    /// `channel` would reach, answered on `reply` (`/api/presence`).
    Presence {
        mount: usize,
        channel: String,
        reply: std::sync::mpsc::SyncSender<usize>,
    },
    /// From the link: a session of the receiver that another process owns now (it adopted it
    /// while this one was cut off from Redis): this copy goes, and its client is served there.
    Forget { mount: usize, client_id: String },
    /// From the link: this process leaves for good, its drain window over; every session of
    /// `mount` still on the receiver is parked in the directory. Every entry of the log up to
    /// `cut` reached the receiver before this.
    Leave { mount: usize, cut: String },
    /// From the link: a session moving in from another process, with the messages of the log
    /// it missed between its old owner's cut and this process's position. Entries after that
    /// position follow this envelope.
    Arrive {
        mount: usize,
        client_id: String,
        session: super::cluster::Handover,
        replay: Vec<Bytes>,
        done: super::cluster::Done,
    },
    /// A socket whose session lives on the receiver.
    Adopt {
        fd: OwnedFd,
        mount: usize,
        kind: Adopt,
    },
}

#[cfg(test)]
mod tests {
    use super::Ack;
    use std::future::Future;
    use std::pin::pin;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::task::{Context, Poll, Wake, Waker};

    struct Flag(AtomicBool);

    impl Wake for Flag {
        fn wake(self: Arc<Self>) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    #[test]
    fn the_waiter_wakes_once_the_last_clone_is_dropped_on_any_thread() {
        let (ack, done) = Ack::new();
        let clones: Vec<Ack> = (0..8).map(|_| ack.clone()).collect();
        drop(ack);
        let flag = Arc::new(Flag(AtomicBool::new(false)));
        let waker = Waker::from(flag.clone());
        let mut cx = Context::from_waker(&waker);
        let mut done = pin!(done);
        assert_eq!(done.as_mut().poll(&mut cx), Poll::Pending);
        let mut clones = clones.into_iter();
        let last = clones.next();
        std::thread::scope(|s| {
            for c in clones {
                s.spawn(move || drop(c));
            }
        });
        assert!(
            !flag.0.load(Ordering::SeqCst),
            "woken with a clone still alive"
        );
        assert_eq!(done.as_mut().poll(&mut cx), Poll::Pending);
        std::thread::spawn(move || drop(last)).join().unwrap();
        assert!(
            flag.0.load(Ordering::SeqCst),
            "the last drop did not wake the waiter"
        );
        assert_eq!(done.as_mut().poll(&mut cx), Poll::Ready(()));
    }

    #[test]
    fn a_waiter_polled_after_every_drop_is_ready_at_once() {
        let (ack, done) = Ack::new();
        drop(ack.clone());
        drop(ack);
        let waker = Waker::noop();
        assert_eq!(
            pin!(done).poll(&mut Context::from_waker(waker)),
            Poll::Ready(())
        );
    }
}
