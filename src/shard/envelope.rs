//! What crosses between workers. Everything here is `Send`; nothing else is.

use bytes::{Bytes, BytesMut};
use futures::channel::oneshot;
use futures::task::AtomicWaker;
use std::future::Future;
use std::os::fd::OwnedFd;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Instant;

/// Completion of a batch's cross-worker work: every envelope carries a clone, and when the
/// last clone is dropped (the work is done, or the envelope was discarded) the waiter wakes.
/// The clones and the waiter share one allocation, with a count of the clones alive.
pub struct Ack(Arc<AckState>);

struct AckState {
    clones: AtomicUsize,
    waiter: AtomicWaker,
}

/// Waits until every [`Ack`] made with it has been dropped.
pub struct AckDone(Arc<AckState>);

impl Ack {
    pub fn new() -> (Ack, AckDone) {
        let state = Arc::new(AckState {
            clones: AtomicUsize::new(1),
            waiter: AtomicWaker::new(),
        });
        (Ack(state.clone()), AckDone(state))
    }
}

impl Clone for Ack {
    fn clone(&self) -> Ack {
        self.0.clones.fetch_add(1, Ordering::Relaxed);
        Ack(self.0.clone())
    }
}

impl Drop for Ack {
    fn drop(&mut self) {
        // AcqRel: the work done under each clone happens before the waiter's return.
        if self.0.clones.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.waiter.wake();
        }
    }
}

impl Future for AckDone {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let state = &self.0;
        if state.clones.load(Ordering::Acquire) == 0 {
            return Poll::Ready(());
        }
        state.waiter.register(cx.waker());
        // Checked again after registering: a last drop in between woke no one.
        if state.clones.load(Ordering::Acquire) == 0 {
            return Poll::Ready(());
        }
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
    /// From the owner: deliver to local subscribers.
    Deliver {
        mount: usize,
        channel: Arc<str>,
        msg: Bytes,
        ack: Option<Ack>,
        at: Instant,
    },
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
        reply: oneshot::Sender<Option<Vec<u8>>>,
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
