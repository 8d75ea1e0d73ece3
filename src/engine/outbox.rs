//! The write side of a push socket (WebSocket or EventSource): ready-made frames queued by the
//! engine and drained, several at a time, by the socket's writer task.

use super::signal::Signal;
use bytes::Bytes;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    WebSocket,
    EventSource,
}

pub struct Outbox {
    pub id: u64,
    pub kind: Kind,
    queue: RefCell<VecDeque<Bytes>>,
    queued_bytes: Cell<usize>,
    pub signal: Signal,
    /// Set when the socket must close (with this WebSocket code) once the queue is written.
    close: Cell<Option<u16>>,
}

impl Outbox {
    pub fn new(id: u64, kind: Kind) -> Outbox {
        Outbox {
            id,
            kind,
            queue: RefCell::new(VecDeque::new()),
            queued_bytes: Cell::new(0),
            signal: Signal::default(),
            close: Cell::new(None),
        }
    }

    pub fn push(&self, frame: Bytes) {
        self.queued_bytes.set(self.queued_bytes.get() + frame.len());
        self.queue.borrow_mut().push_back(frame);
        self.signal.notify();
    }

    /// Takes everything queued, oldest first.
    pub fn drain(&self, into: &mut Vec<Bytes>) {
        let mut q = self.queue.borrow_mut();
        into.extend(q.drain(..));
        self.queued_bytes.set(0);
        if q.capacity() > 16 {
            q.shrink_to_fit();
        }
    }

    pub fn queued_bytes(&self) -> usize {
        self.queued_bytes.get()
    }

    pub fn close_after_flush(&self, code: u16) {
        if self.close.get().is_none() {
            self.close.set(Some(code));
        }
        self.signal.notify();
    }

    pub fn closing(&self) -> Option<u16> {
        self.close.get()
    }
}
