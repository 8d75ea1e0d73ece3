//! Bounded lock-free queues between every pair of workers (crossbeam's `ArrayQueue`), drained
//! in batches with one wake-up per batch.
//!
//! Two queues per ordered pair, one per [`Class`]: publishes on their way to their channel's
//! owner (`Route`), and everything else (`Work`: deliveries, interest, forwarded batches,
//! adopted sockets). Handling `Work` never sends into the mesh, so a receiver always drains it;
//! handling a `Route` envelope sends deliveries, so a worker whose own outbound deliveries are
//! backed up stops taking `Route` envelopes until they drain. That is what bounds the mesh:
//! back-pressure runs from a slow receiver to the owner's routing and on to the publishers'
//! queues, and it cannot close a cycle, because the class that every worker waits on (`Work`)
//! is the one that is always drained.
//!
//! A sender whose queue is full keeps the envelope in its own spill (in order, see
//! `shard::spill`) and waits in [`Mesh::poll_space`], which the receiver wakes after it takes
//! from a queue whose sender asked for room: a wake-up, not a polling loop.
//!
//! Besides the workers, one thread outside them may send: the cluster backplane, through the
//! sender index [`Mesh::external`]. It has its own queues to each worker, so every queue keeps
//! a single producer.

use super::Envelope;
use crossbeam_queue::ArrayQueue;
use futures::task::AtomicWaker;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

/// Slots per queue: 1,024 envelopes of about 80 bytes, 80 KiB per queue, two per ordered pair.
pub const CAPACITY: usize = 1024;

/// Which of a pair's two queues an envelope travels in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// A publish to its channel's owner, whose handling sends deliveries.
    Route = 0,
    /// Everything whose handling sends nothing into the mesh.
    Work = 1,
}

impl Class {
    pub const ALL: [Class; 2] = [Class::Route, Class::Work];

    pub fn of(env: &Envelope) -> Class {
        match env {
            Envelope::Publish { .. } => Class::Route,
            _ => Class::Work,
        }
    }
}

struct Inbox {
    sleeping: AtomicBool,
    waker: AtomicWaker,
}

/// One queue and whether its sender waits for room in it.
struct Queue {
    items: ArrayQueue<Envelope>,
    wants_space: AtomicBool,
}

pub struct Mesh {
    workers: usize,
    /// Senders per receiver: every worker plus the external sender.
    senders: usize,
    /// queues[(class * workers + to) * senders + from]
    queues: Vec<Queue>,
    inboxes: Vec<Inbox>,
    /// Per sender: woken when a receiver made room in a queue the sender asked about.
    space: Vec<AtomicWaker>,
}

impl Mesh {
    pub fn new(workers: usize) -> Mesh {
        Mesh::with_capacity(workers, CAPACITY)
    }

    /// A mesh whose queues hold `capacity` envelopes each (at least one).
    pub fn with_capacity(workers: usize, capacity: usize) -> Mesh {
        let senders = workers + 1;
        Mesh {
            workers,
            senders,
            queues: (0..2 * workers * senders)
                .map(|_| Queue {
                    items: ArrayQueue::new(capacity.max(1)),
                    wants_space: AtomicBool::new(false),
                })
                .collect(),
            inboxes: (0..workers)
                .map(|_| Inbox {
                    sleeping: AtomicBool::new(false),
                    waker: AtomicWaker::new(),
                })
                .collect(),
            space: (0..senders).map(|_| AtomicWaker::new()).collect(),
        }
    }

    fn queue(&self, class: Class, from: usize, to: usize) -> &Queue {
        &self.queues[(class as usize * self.workers + to) * self.senders + from]
    }

    /// The queues into worker `me` of one class, one per sender.
    fn row(&self, class: Class, me: usize) -> &[Queue] {
        let start = (class as usize * self.workers + me) * self.senders;
        &self.queues[start..start + self.senders]
    }

    /// Envelopes waiting in the queues into worker `me`, from every sender, of both classes.
    pub fn depth(&self, me: usize) -> usize {
        (Class::ALL.iter())
            .flat_map(|&c| self.row(c, me))
            .map(|q| q.items.len())
            .sum()
    }

    pub fn workers(&self) -> usize {
        self.workers
    }

    /// Envelopes each queue holds.
    pub fn capacity(&self) -> usize {
        self.queues[0].items.capacity()
    }

    /// The sender index of the one thread outside the workers (the backplane).
    pub fn external(&self) -> usize {
        self.workers
    }

    /// Queues an envelope; hands it back when its queue is full.
    pub fn try_send(&self, from: usize, to: usize, env: Envelope) -> Result<(), Envelope> {
        self.queue(Class::of(&env), from, to).items.push(env)?;
        self.wake(to);
        Ok(())
    }

    /// Wakes worker `to`'s receiver if it sleeps.
    pub fn wake(&self, to: usize) {
        let inbox = &self.inboxes[to];
        if inbox.sleeping.swap(false, Ordering::SeqCst) {
            inbox.waker.wake();
        }
    }

    /// Wakes sender `me`'s task waiting in [`Mesh::poll_space`] (its own worker, when it
    /// spilled towards a queue that task does not wait on).
    pub fn wake_sender(&self, me: usize) {
        self.space[me].wake();
    }

    /// Ready when any of the `blocked` queues (as (receiver, class), from sender `me`) has
    /// room; otherwise pending until a receiver takes from one of them and wakes `cx`. The
    /// waker is registered before the queues are marked and looked at, so a receiver taking
    /// in between either sees the mark (and wakes it) or leaves the room this poll finds.
    pub fn poll_space(
        &self,
        me: usize,
        blocked: &[(usize, Class)],
        cx: &mut Context<'_>,
    ) -> Poll<()> {
        self.space[me].register(cx.waker());
        let mut room = false;
        for &(to, class) in blocked {
            let q = self.queue(class, me, to);
            q.wants_space.store(true, Ordering::SeqCst);
            room |= q.items.len() < q.items.capacity();
        }
        if room { Poll::Ready(()) } else { Poll::Pending }
    }

    fn has_any(&self, me: usize, routes: bool) -> bool {
        let work = self.row(Class::Work, me).iter();
        let route = routes.then(|| self.row(Class::Route, me).iter());
        work.chain(route.into_iter().flatten())
            .any(|q| !q.items.is_empty())
    }

    /// Handles up to `per_peer` envelopes from each sender: always its `Work`, and its `Route`
    /// ones while `routes()` says this worker may route (asked before each one). Returns how
    /// many were handled.
    pub fn drain(
        &self,
        me: usize,
        per_peer: usize,
        mut routes: impl FnMut() -> bool,
        mut f: impl FnMut(Envelope),
    ) -> usize {
        let mut n = 0;
        for class in [Class::Work, Class::Route] {
            for (from, q) in self.row(class, me).iter().enumerate() {
                let mut took = 0;
                while took < per_peer && (class == Class::Work || routes()) {
                    let Some(env) = q.items.pop() else { break };
                    f(env);
                    took += 1;
                }
                if took > 0 && q.wants_space.swap(false, Ordering::SeqCst) {
                    self.space[from].wake();
                }
                n += took;
            }
        }
        n
    }

    /// Resolves when something may be waiting for `me`: any `Work`, and `Route` envelopes only
    /// when `routes` (a worker that may not route now waits for work, or for [`Mesh::wake`]).
    /// Once woken it resolves, whatever it finds: the wake may say that the worker may route
    /// again, which only its caller can tell.
    pub fn ready(&self, me: usize, routes: bool) -> Ready<'_> {
        Ready {
            mesh: self,
            me,
            routes,
            waited: false,
        }
    }
}

pub struct Ready<'a> {
    mesh: &'a Mesh,
    me: usize,
    routes: bool,
    waited: bool,
}

impl Future for Ready<'_> {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.waited {
            return Poll::Ready(());
        }
        self.waited = true;
        let inbox = &self.mesh.inboxes[self.me];
        inbox.waker.register(cx.waker());
        inbox.sleeping.store(true, Ordering::SeqCst);
        if self.mesh.has_any(self.me, self.routes) {
            inbox.sleeping.store(false, Ordering::SeqCst);
            return Poll::Ready(());
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use std::sync::Arc;
    use std::task::Waker;
    use std::time::Instant;

    fn deliver(n: u32) -> Envelope {
        Envelope::Deliver {
            mount: 0,
            channel: Arc::from("/a"),
            msg: Bytes::from(n.to_string()),
            ack: None,
            at: Instant::now(),
            pos: 0,
        }
    }

    fn publish() -> Envelope {
        Envelope::Publish {
            mount: 0,
            channel: Arc::from("/a"),
            msg: Bytes::new(),
            ack: None,
            at: Instant::now(),
        }
    }

    #[test]
    fn depth_counts_what_waits_for_each_receiver_from_every_sender() {
        let workers = 3;
        let mesh = Mesh::new(workers);
        // Traffic between every ordered pair, the external sender included: receiver `to`
        // gets `to + 1` envelopes from each sender, half of them publishes.
        for from in 0..=workers {
            for to in 0..workers {
                for i in 0..=to {
                    let env = if i % 2 == 0 { deliver(0) } else { publish() };
                    assert!(mesh.try_send(from, to, env).is_ok());
                }
            }
        }
        for to in 0..workers {
            assert_eq!(mesh.depth(to), (to + 1) * (workers + 1), "receiver {to}");
        }
        let handled = mesh.drain(2, usize::MAX, || true, drop);
        assert_eq!(handled, 3 * (workers + 1));
        assert_eq!(mesh.depth(2), 0);
        assert_eq!(mesh.depth(1), 2 * (workers + 1));
    }

    #[test]
    fn a_full_queue_hands_back_and_the_receiver_wakes_the_waiting_sender() {
        let mesh = Mesh::with_capacity(2, 2);
        assert!(mesh.try_send(0, 1, deliver(1)).is_ok());
        assert!(mesh.try_send(0, 1, deliver(2)).is_ok());
        let Err(back) = mesh.try_send(0, 1, deliver(3)) else {
            panic!("a full queue took an envelope");
        };
        // The other class has its own room.
        assert!(mesh.try_send(0, 1, publish()).is_ok());
        let flag = Arc::new(Flag(AtomicBool::new(false)));
        let waker = Waker::from(flag.clone());
        let mut cx = Context::from_waker(&waker);
        let blocked = [(1, Class::Work)];
        assert_eq!(mesh.poll_space(0, &blocked, &mut cx), Poll::Pending);
        // A receiver that may not route takes only the work, and wakes the sender.
        let mut got = Vec::new();
        let n = mesh.drain(1, 1, || false, |env| got.push(env));
        assert_eq!(n, 1);
        assert!(matches!(got[0], Envelope::Deliver { .. }));
        assert!(flag.0.load(Ordering::SeqCst), "the sender was not woken");
        assert_eq!(mesh.poll_space(0, &blocked, &mut cx), Poll::Ready(()));
        assert!(mesh.try_send(0, 1, back).is_ok());
        // The publish waits until the receiver may route.
        assert_eq!(mesh.drain(1, 8, || false, drop), 2);
        assert_eq!(mesh.depth(1), 1);
        assert_eq!(mesh.drain(1, 8, || true, drop), 1);
    }

    #[test]
    fn a_receiver_that_may_not_route_sleeps_through_publishes() {
        let mesh = Mesh::new(2);
        assert!(mesh.try_send(0, 1, publish()).is_ok());
        let waker = Waker::noop();
        let mut cx = Context::from_waker(waker);
        assert_eq!(
            std::pin::pin!(mesh.ready(1, false)).poll(&mut cx),
            Poll::Pending
        );
        assert_eq!(
            std::pin::pin!(mesh.ready(1, true)).poll(&mut cx),
            Poll::Ready(())
        );
        // Woken (here by its own worker, which may route again), it resolves: the caller looks.
        let mut sleeping = std::pin::pin!(mesh.ready(1, false));
        assert_eq!(sleeping.as_mut().poll(&mut cx), Poll::Pending);
        mesh.wake(1);
        assert_eq!(sleeping.as_mut().poll(&mut cx), Poll::Ready(()));
    }

    struct Flag(AtomicBool);

    impl std::task::Wake for Flag {
        fn wake(self: Arc<Self>) {
            self.0.store(true, Ordering::SeqCst);
        }
    }
}
