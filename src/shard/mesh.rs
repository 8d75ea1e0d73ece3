//! Bounded lock-free queues between every pair of workers (crossbeam's `ArrayQueue`), drained
//! in batches with one wake-up per batch.
//!
//! Capacity and back-pressure: each ordered pair gets `CAPACITY` slots. A sender whose queue is
//! full keeps the envelope in its own per-destination overflow (in order) and retries; an HTTP
//! publish is acknowledged only after its deliveries ran, so a slow receiver slows publishers
//! down instead of losing what they sent.
//!
//! Besides the workers, one thread outside them may send: the cluster backplane, through the
//! sender index [`Mesh::external`]. It has its own queue to each worker, so every queue keeps
//! a single producer.

use super::Envelope;
use crossbeam_queue::ArrayQueue;
use futures::task::AtomicWaker;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

/// Slots per ordered pair of workers: 1,024 envelopes of about 80 bytes, 80 KiB per pair.
pub const CAPACITY: usize = 1024;

struct Inbox {
    sleeping: AtomicBool,
    waker: AtomicWaker,
}

pub struct Mesh {
    workers: usize,
    /// Senders per receiver: every worker plus the external sender.
    senders: usize,
    /// queues[to * senders + from]
    queues: Vec<ArrayQueue<Envelope>>,
    inboxes: Vec<Inbox>,
}

impl Mesh {
    pub fn new(workers: usize) -> Mesh {
        let senders = workers + 1;
        Mesh {
            workers,
            senders,
            queues: (0..workers * senders)
                .map(|_| ArrayQueue::new(CAPACITY))
                .collect(),
            inboxes: (0..workers)
                .map(|_| Inbox {
                    sleeping: AtomicBool::new(false),
                    waker: AtomicWaker::new(),
                })
                .collect(),
        }
    }

    /// Envelopes waiting in the queues into worker `me`.
    pub fn depth(&self, me: usize) -> usize {
        self.queues[me * self.workers..(me + 1) * self.workers]
            .iter()
            .map(ArrayQueue::len)
            .sum()
    }

    pub fn workers(&self) -> usize {
        self.workers
    }

    /// The sender index of the one thread outside the workers (the backplane).
    pub fn external(&self) -> usize {
        self.workers
    }

    /// Queues an envelope; hands it back when the queue is full.
    pub fn try_send(&self, from: usize, to: usize, env: Envelope) -> Result<(), Envelope> {
        self.queues[to * self.senders + from].push(env)?;
        let inbox = &self.inboxes[to];
        if inbox.sleeping.swap(false, Ordering::SeqCst) {
            inbox.waker.wake();
        }
        Ok(())
    }

    fn has_any(&self, me: usize) -> bool {
        let row = &self.queues[me * self.senders..(me + 1) * self.senders];
        row.iter().any(|q| !q.is_empty())
    }

    /// Handles up to `per_peer` envelopes from each peer; returns how many were handled.
    pub fn drain(&self, me: usize, per_peer: usize, mut f: impl FnMut(Envelope)) -> usize {
        let mut n = 0;
        for q in &self.queues[me * self.senders..(me + 1) * self.senders] {
            for _ in 0..per_peer {
                match q.pop() {
                    Some(env) => {
                        f(env);
                        n += 1;
                    }
                    None => break,
                }
            }
        }
        n
    }

    /// Resolves when something may be waiting for `me`.
    pub fn ready(&self, me: usize) -> Ready<'_> {
        Ready { mesh: self, me }
    }
}

pub struct Ready<'a> {
    mesh: &'a Mesh,
    me: usize,
}

impl Future for Ready<'_> {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let inbox = &self.mesh.inboxes[self.me];
        inbox.waker.register(cx.waker());
        inbox.sleeping.store(true, Ordering::SeqCst);
        if self.mesh.has_any(self.me) {
            inbox.sleeping.store(false, Ordering::SeqCst);
            return Poll::Ready(());
        }
        Poll::Pending
    }
}
