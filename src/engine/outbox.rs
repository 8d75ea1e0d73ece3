//! The write side of a push socket (WebSocket or EventSource): ready-made frames queued by the
//! engine and drained, several at a time, by whoever writes the socket: its writer task while
//! the socket is active, the worker's WebSocket table (through the [`Doorbell`]) while it is
//! parked.
//!
//! Pending output is bounded: a push that takes the frames queued plus those being written over
//! the outbox's limit aborts the socket instead (the queue is freed at once and the doorbell
//! rung, so the socket's owner can cut the connection even while a write is stuck). Each frame
//! is charged its length plus [`FRAME_OVERHEAD`], so the bound holds for memory even when many
//! sockets share one fan-out frame or frames are tiny.

use super::signal::Signal;
use bytes::Bytes;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    WebSocket,
    EventSource,
}

/// Bytes charged per queued frame on top of its length: its `Bytes` handle in the queue.
pub const FRAME_OVERHEAD: usize = std::mem::size_of::<Bytes>();

// The configuration checks `max_pending` against a framed message's cost without importing the
// engine (it is a leaf); this keeps its figure the outbox's.
const _: () = assert!(crate::config::DELIVERY_OVERHEAD == 2 + 10 + FRAME_OVERHEAD);

/// The socket has no task: pushes ring the doorbell.
const PARKED: u8 = 1;
/// The doorbell holds this outbox's key and has not handled it yet.
const RUNG: u8 = 2;
/// Aborted (over its limit, or cut by its owner): nothing more is queued or written.
const ABORTED: u8 = 4;
/// The socket may park: it rings this worker's doorbell.
const RINGS: u8 = 8;

/// A queued frame, and whether it carries one delivered message (which a cut socket gives back
/// to its session, see [`Outbox::take_undelivered`]) rather than a reply.
struct Frame {
    bytes: Bytes,
    delivery: bool,
}

/// The frames waiting for the writer. A socket mostly holds one at a time (a parked socket
/// between a push and its doorbell round), which needs no buffer: only a frame queued behind
/// another allocates one.
#[derive(Default)]
enum Queue {
    #[default]
    Empty,
    One(Frame),
    Many(VecDeque<Frame>),
}

impl Queue {
    fn push_back(&mut self, frame: Frame) {
        *self = match std::mem::take(self) {
            Queue::Empty => Queue::One(frame),
            Queue::One(first) => {
                let mut q = VecDeque::with_capacity(4);
                q.extend([first, frame]);
                Queue::Many(q)
            }
            Queue::Many(mut q) => {
                q.push_back(frame);
                Queue::Many(q)
            }
        };
    }

    fn is_empty(&self) -> bool {
        match self {
            Queue::Empty => true,
            Queue::One(_) => false,
            Queue::Many(q) => q.is_empty(),
        }
    }

    /// Bytes of buffer held beyond the outbox itself.
    fn capacity(&self) -> usize {
        match self {
            Queue::Many(q) => q.capacity(),
            _ => 0,
        }
    }

    /// Moves every frame to `into`, oldest first; keeps a buffer of at most `keep` frames.
    fn drain_into(&mut self, into: &mut Vec<Bytes>, keep: usize) {
        match std::mem::take(self) {
            Queue::Empty => {}
            Queue::One(frame) => into.push(frame.bytes),
            Queue::Many(mut q) => {
                into.extend(q.drain(..).map(|f| f.bytes));
                if q.capacity() <= keep {
                    *self = Queue::Many(q);
                }
            }
        }
    }

    /// Moves frames from the front to `into` while they fit in `max` bytes (always at least
    /// one); returns the bytes charged for them. Keeps a buffer of at most `keep` frames.
    fn drain_upto(&mut self, into: &mut Vec<Bytes>, max: usize, keep: usize) -> usize {
        let Queue::Many(q) = self else {
            let cost = match self {
                Queue::One(f) => f.bytes.len() + FRAME_OVERHEAD,
                _ => 0,
            };
            self.drain_into(into, keep);
            return cost;
        };
        let (mut size, mut cost) = (0, 0);
        while let Some(f) = q.front() {
            if size > 0 && size + f.bytes.len() > max {
                break;
            }
            size += f.bytes.len();
            cost += f.bytes.len() + FRAME_OVERHEAD;
            into.extend(q.pop_front().map(|f| f.bytes));
        }
        if q.is_empty() && q.capacity() > keep {
            *self = Queue::Empty;
        }
        cost
    }

    /// Keeps only the deliveries, in order.
    fn retain_deliveries(&mut self) {
        match std::mem::take(self) {
            Queue::One(f) if f.delivery => *self = Queue::One(f),
            Queue::Many(mut q) => {
                q.retain(|f| f.delivery);
                if !q.is_empty() {
                    *self = Queue::Many(q);
                }
            }
            _ => {}
        }
    }

    /// Puts `frames` (handed back by a writer, so no longer told apart) ahead of what is
    /// queued, in order.
    fn push_front(&mut self, frames: Vec<Bytes>) {
        if frames.is_empty() {
            return;
        }
        let mut q: VecDeque<Frame> = (frames.into_iter())
            .map(|bytes| Frame {
                bytes,
                delivery: false,
            })
            .collect();
        match std::mem::take(self) {
            Queue::Empty => {}
            Queue::One(frame) => q.push_back(frame),
            Queue::Many(rest) => q.extend(rest),
        }
        *self = Queue::Many(q);
    }
}

/// The outboxes of one worker that need their owner's attention: parked sockets with
/// something to write or close, and aborted sockets. Keys are the sockets' table slots.
#[derive(Default)]
pub struct Doorbell {
    keys: RefCell<Vec<u32>>,
    pub signal: Signal,
}

thread_local! {
    /// The doorbell of the worker running on this thread.
    static BELL: Rc<Doorbell> = Rc::new(Doorbell::default());
}

impl Doorbell {
    /// This worker's doorbell.
    pub fn current() -> Rc<Doorbell> {
        BELL.with(Rc::clone)
    }

    fn ring(&self, key: u32) {
        self.keys.borrow_mut().push(key);
        self.signal.notify();
    }

    /// Takes the keys rung since the last call.
    pub fn take(&self, into: &mut Vec<u32>) {
        into.append(&mut self.keys.borrow_mut());
    }
}

pub struct Outbox {
    pub id: u64,
    pub kind: Kind,
    /// This socket's slot in its worker's socket table (WebSocket only).
    pub key: u32,
    flags: Cell<u8>,
    close: Cell<Option<u16>>,
    queue: RefCell<Queue>,
    /// Bytes charged for the frames queued (lengths plus overhead).
    queued_bytes: Cell<u32>,
    /// Bytes charged for the frames drained by the writer and not yet reported written.
    writing: Cell<u32>,
    /// Most bytes queued plus being written before the socket is aborted.
    limit: u32,
    pub signal: Signal,
    /// The session this socket is bound to, as (mount, slot); the engine keeps it.
    pub(crate) binding: Cell<Option<(u32, u32)>>,
}

impl Outbox {
    /// An outbox with no limit and no doorbell, written by a task for its whole life.
    pub fn new(id: u64, kind: Kind) -> Outbox {
        Outbox::with_bell(id, kind, 0, usize::MAX, false)
    }

    /// An outbox whose socket may park (`bell`: it rings this worker's [`Doorbell`]): `key` is
    /// its slot in the worker's socket table, `limit` caps its pending output.
    pub fn with_bell(id: u64, kind: Kind, key: u32, limit: usize, bell: bool) -> Outbox {
        Outbox {
            id,
            kind,
            key,
            flags: Cell::new(if bell { RINGS } else { 0 }),
            close: Cell::new(None),
            queue: RefCell::new(Queue::Empty),
            queued_bytes: Cell::new(0),
            writing: Cell::new(0),
            limit: u32::try_from(limit).unwrap_or(u32::MAX),
            signal: Signal::default(),
            binding: Cell::new(None),
        }
    }

    fn has(&self, flag: u8) -> bool {
        self.flags.get() & flag != 0
    }

    /// Rings the doorbell once until the owner handles it.
    fn ring(&self) {
        if self.has(RINGS) && !self.has(RUNG) {
            self.flags.set(self.flags.get() | RUNG);
            BELL.with(|bell| bell.ring(self.key));
        }
    }

    /// Queues a reply frame (or any frame that is not one delivered message).
    pub fn push(&self, frame: Bytes) {
        self.push_frame(Frame {
            bytes: frame,
            delivery: false,
        });
    }

    /// Queues the frame of one delivered message (`[msg]`, framed for this socket's kind).
    pub fn push_delivery(&self, frame: Bytes) {
        self.push_frame(Frame {
            bytes: frame,
            delivery: true,
        });
    }

    fn push_frame(&self, frame: Frame) {
        if self.has(ABORTED) {
            return;
        }
        let cost = (frame.bytes.len() + FRAME_OVERHEAD) as u64;
        let queued = u64::from(self.queued_bytes.get());
        let pending = queued + u64::from(self.writing.get());
        // A socket with nothing else pending takes any one frame, however large: a message
        // the server accepted is always deliverable. Past that the bound holds.
        if pending > 0 && pending + cost > u64::from(self.limit) {
            let delivery = frame.delivery;
            self.abort(1008);
            if delivery {
                // The frame that did not fit goes back to the session with the others.
                self.queue.borrow_mut().push_back(frame);
            }
            self.ring();
            return;
        }
        self.queued_bytes
            .set(u32::try_from(queued + cost).unwrap_or(u32::MAX));
        self.queue.borrow_mut().push_back(frame);
        self.notify();
    }

    fn notify(&self) {
        if self.has(PARKED) {
            self.ring();
        } else {
            self.signal.notify();
        }
    }

    /// Takes everything queued, oldest first; the bytes count as being written until
    /// [`Outbox::written`].
    pub fn drain(&self, into: &mut Vec<Bytes>) {
        // A parked socket keeps no queue buffer between pushes; an active one keeps a small one.
        let keep = if self.has(PARKED) { 0 } else { 16 };
        self.queue.borrow_mut().drain_into(into, keep);
        let drained = self.queued_bytes.replace(0);
        self.writing.set(self.writing.get().saturating_add(drained));
    }

    /// Takes frames from the front, oldest first, while they fit in `max` bytes (at least
    /// one). A writer takes its output this way, a write's worth at a time, so what waits
    /// behind the write in flight stays here, where a cut socket gives it back to its session.
    pub fn drain_upto(&self, into: &mut Vec<Bytes>, max: usize) {
        let keep = if self.has(PARKED) { 0 } else { 16 };
        let cost = self.queue.borrow_mut().drain_upto(into, max, keep) as u32;
        self.queued_bytes
            .set(self.queued_bytes.get().saturating_sub(cost));
        self.writing.set(self.writing.get().saturating_add(cost));
    }

    /// Whether frames wait to be drained.
    pub fn has_queued(&self) -> bool {
        !self.queue.borrow().is_empty()
    }

    /// What was drained has been written (or given up on).
    pub fn written(&self) {
        self.writing.set(0);
    }

    /// Puts frames that could not be written back at the front, in order.
    pub fn requeue_front(&self, frames: Vec<Bytes>) {
        if self.has(ABORTED) {
            return;
        }
        for f in &frames {
            let len = u32::try_from(f.len() + FRAME_OVERHEAD).unwrap_or(u32::MAX);
            self.queued_bytes
                .set(self.queued_bytes.get().saturating_add(len));
        }
        self.queue.borrow_mut().push_front(frames);
    }

    pub fn queued_bytes(&self) -> usize {
        self.queued_bytes.get() as usize
    }

    /// Bytes drained by a writer and not yet written.
    pub fn writing(&self) -> usize {
        self.writing.get() as usize
    }

    /// Nothing queued, nothing being written, no close asked for.
    pub fn is_idle(&self) -> bool {
        self.queued_bytes.get() == 0
            && self.queue.borrow().is_empty()
            && self.writing.get() == 0
            && self.close.get().is_none()
    }

    pub fn close_after_flush(&self, code: u16) {
        if self.close.get().is_none() {
            self.close.set(Some(code));
        }
        self.notify();
    }

    pub fn closing(&self) -> Option<u16> {
        self.close.get()
    }

    /// Stops all output for good with `code`: drops the queued replies and keeps the queued
    /// deliveries for [`Outbox::take_undelivered`] (nothing more is written). The caller cuts
    /// the connection (or rings the doorbell so the socket's owner does).
    pub fn abort(&self, code: u16) {
        if self.has(ABORTED) {
            return;
        }
        self.close.set(Some(code));
        self.flags.set(self.flags.get() | ABORTED);
        self.queue.borrow_mut().retain_deliveries();
        self.queued_bytes.set(0);
        self.signal.notify();
    }

    /// The delivery frames a socket that will write no more (cut, or closed) never wrote,
    /// oldest first, for its session to queue again. Frames already handed to a writer are
    /// not among them: part of them may be on the wire.
    pub fn take_undelivered(&self) -> Vec<Bytes> {
        let mut frames = Vec::new();
        let mut queue = self.queue.borrow_mut();
        queue.retain_deliveries();
        queue.drain_into(&mut frames, 0);
        self.queued_bytes.set(0);
        frames
    }

    pub fn aborted(&self) -> bool {
        self.has(ABORTED)
    }

    /// The socket's tasks ended: from now on pushes ring the doorbell.
    pub fn park(&self) {
        self.flags.set(self.flags.get() | PARKED);
        let mut q = self.queue.borrow_mut();
        if q.is_empty() && q.capacity() > 0 {
            // An idle socket keeps no queue buffer.
            *q = Queue::Empty;
        }
        drop(q);
        if !self.is_idle() || self.aborted() {
            self.ring();
        }
    }

    /// The socket runs tasks again.
    pub fn unpark(&self) {
        self.flags.set(self.flags.get() & !PARKED);
    }

    pub fn parked(&self) -> bool {
        self.has(PARKED)
    }

    /// The owner took this outbox's key from the doorbell.
    pub fn answered(&self) {
        self.flags.set(self.flags.get() & !RUNG);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outbox(limit: usize) -> (Rc<Doorbell>, Outbox) {
        let out = Outbox::with_bell(1, Kind::WebSocket, 7, limit, true);
        (Doorbell::current(), out)
    }

    fn rung(bell: &Doorbell) -> Vec<u32> {
        let mut keys = Vec::new();
        bell.take(&mut keys);
        keys
    }

    #[test]
    fn parked_pushes_ring_once_until_answered() {
        let (bell, out) = outbox(100);
        out.push(Bytes::from_static(b"a"));
        assert!(
            rung(&bell).is_empty(),
            "an active socket's writer is woken instead"
        );
        let mut frames = Vec::new();
        out.drain(&mut frames);
        out.written();
        out.park();
        out.push(Bytes::from_static(b"b"));
        out.push(Bytes::from_static(b"c"));
        assert_eq!(rung(&bell), vec![7]);
        out.drain(&mut frames);
        assert_eq!(frames, vec!["a", "b", "c"]);
        assert_eq!(
            out.queue.borrow().capacity(),
            0,
            "a parked socket keeps no queue buffer"
        );
        out.answered();
        out.close_after_flush(1000);
        assert_eq!(rung(&bell), vec![7]);
    }

    #[test]
    fn over_the_limit_aborts_and_frees_the_queue() {
        let (bell, out) = outbox(10 + 3 * FRAME_OVERHEAD);
        out.push(Bytes::from_static(b"123456"));
        let mut frames = Vec::new();
        out.drain(&mut frames);
        assert_eq!(out.writing(), 6 + FRAME_OVERHEAD);
        out.push(Bytes::from_static(b"1"));
        out.push(Bytes::from_static(b"123"));
        assert!(!out.aborted());
        out.push(Bytes::from_static(b""));
        assert!(out.aborted());
        assert_eq!((out.queued_bytes(), out.closing()), (0, Some(1008)));
        assert_eq!(rung(&bell), vec![7]);
        out.push(Bytes::from_static(b"x"));
        assert_eq!(out.queued_bytes(), 0);
    }

    #[test]
    fn requeued_frames_come_first() {
        let (_bell, out) = outbox(100);
        out.push(Bytes::from_static(b"c"));
        out.requeue_front(vec![Bytes::from_static(b"a"), Bytes::from_static(b"b")]);
        let mut frames = Vec::new();
        out.drain(&mut frames);
        assert_eq!(frames, vec!["a", "b", "c"]);
        assert_eq!(out.writing(), 3 * (1 + FRAME_OVERHEAD));
    }

    #[test]
    fn an_empty_outbox_takes_one_frame_larger_than_its_limit() {
        let (_bell, out) = outbox(100);
        out.push_delivery(Bytes::from(vec![b'x'; 500]));
        assert!(!out.aborted(), "a lone frame is always deliverable");
        out.push_delivery(Bytes::from_static(b"y"));
        assert!(out.aborted(), "behind it the bound holds");
    }

    #[test]
    fn a_cut_keeps_its_deliveries_in_order_and_drops_its_replies() {
        let (_bell, out) = outbox(40 + 3 * FRAME_OVERHEAD);
        out.push_delivery(Bytes::from_static(b"d1"));
        out.push(Bytes::from_static(b"reply"));
        out.push_delivery(Bytes::from_static(b"d2"));
        out.push_delivery(Bytes::from(vec![b'z'; 64]));
        assert!(out.aborted());
        assert_eq!(out.queued_bytes(), 0);
        let z = Bytes::from(vec![b'z'; 64]);
        assert_eq!(
            out.take_undelivered(),
            vec![Bytes::from_static(b"d1"), Bytes::from_static(b"d2"), z]
        );
        assert!(out.take_undelivered().is_empty());
    }

    #[test]
    fn a_writer_takes_a_writes_worth_and_leaves_the_rest_queued() {
        let (_bell, out) = outbox(1000);
        for f in [&b"aaaa"[..], b"bbbb", b"cccc"] {
            out.push_delivery(Bytes::copy_from_slice(f));
        }
        let mut frames = Vec::new();
        out.drain_upto(&mut frames, 8);
        assert_eq!(frames, vec!["aaaa", "bbbb"]);
        assert_eq!(out.writing(), 2 * (4 + FRAME_OVERHEAD));
        assert_eq!(out.queued_bytes(), 4 + FRAME_OVERHEAD);
        assert!(out.has_queued());
        frames.clear();
        out.drain_upto(&mut frames, 1);
        assert_eq!(frames, vec!["cccc"], "at least one frame, however large");
        assert!(!out.has_queued());
        assert_eq!(out.queued_bytes(), 0);
    }
}
