//! A WebSocket's states: active (run by a reader and a writer task sharing `Live`) or parked
//! (held by its table `Record` alone), and what moves between them.

use crate::engine::{Outbox, Signal};
use crate::shard::Peer;
use crate::websocket::frame::Decoder;
use bytes::BytesMut;
use std::cell::Cell;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::rc::Rc;

/// What the reader and writer of an active socket share.
#[derive(Default)]
pub struct Live {
    /// The socket turned readable (or hung up) while the reader waited.
    pub input: Signal,
    /// The writer wrote everything it had.
    pub writer_idle: Signal,
    /// The reader wants the write half back (to park or hand the socket over).
    pub stop_writer: Cell<bool>,
}

/// Input read before a socket's tasks ran.
#[derive(Default)]
pub struct ReadAhead {
    /// Bytes not yet decoded.
    pub buf: BytesMut,
    /// A message decoded but not yet run (one another worker read, or one for another worker).
    pub first: Option<Vec<u8>>,
    /// The decoder, when it holds part of a fragmented message.
    pub decoder: Option<Decoder>,
}

/// A parked socket whose input an inline task runs (`watch::serve_parked`). The record keeps
/// owning `fd` meanwhile: a socket is not resumed nor removed while its inline task runs.
pub struct Parked {
    pub key: u32,
    pub fd: RawFd,
    pub mount: usize,
    pub outbox: Rc<Outbox>,
    pub peer: Peer,
}

/// Who owns a socket's descriptor.
pub enum Fd {
    /// A stream does (the socket's tasks, or the caller that is parking a new socket); this is
    /// its number, valid while the record is in the table.
    Stream(RawFd),
    /// The record does: the socket is parked.
    Record(OwnedFd),
}

impl Fd {
    pub fn raw(&self) -> RawFd {
        match self {
            Fd::Stream(fd) => *fd,
            Fd::Record(fd) => fd.as_raw_fd(),
        }
    }

    /// The descriptor, if the record owns it, for a stream to take over; only its number stays.
    pub fn take(&mut self) -> Option<OwnedFd> {
        match std::mem::replace(self, Fd::Stream(self.raw())) {
            Fd::Record(fd) => Some(fd),
            Fd::Stream(_) => None,
        }
    }
}

/// The ping bookkeeping of a socket.
#[derive(Default)]
pub struct Pings {
    /// Pings sent (their payloads count up from 1, as Faye's do).
    sent: u32,
    /// Ping tick of the oldest ping no frame has followed; 0 when none.
    unanswered: u32,
    /// A frame arrived since the last ping tick.
    pub heard: bool,
}

impl Pings {
    /// One ping tick (ticks count from 1): the number of the ping to send, or `None` when the
    /// socket has been silent since a ping `limit` or more ticks old.
    pub fn tick(&mut self, tick: u32, limit: u32) -> Option<u32> {
        if self.heard {
            self.heard = false;
            self.unanswered = 0;
        }
        if self.unanswered != 0 && tick - self.unanswered >= limit {
            return None;
        }
        if self.unanswered == 0 {
            self.unanswered = tick;
        }
        self.sent += 1;
        Some(self.sent)
    }
}

/// A socket's entry in its worker's table.
pub struct Record {
    pub fd: Fd,
    pub mount: u32,
    pub outbox: Rc<Outbox>,
    /// The active socket's shared state; `None` while parked.
    pub live: Option<Rc<Live>>,
    pub pings: Pings,
    /// Cut (slow consumer or ping timeout): the connection is being torn down.
    pub cut: bool,
    /// Parked, with its input being run by a task of its own (`watch::serve_parked`).
    pub inline: bool,
    /// Asked to run tasks again while `inline`: the inline task promotes it when done.
    pub resume: bool,
    /// The client's address and credentials, as the upgrade request showed them.
    pub peer: Peer,
}

impl Record {
    /// A new socket, whose stream still owns `fd`: neither active nor parked yet.
    pub fn new(fd: RawFd, mount: usize, outbox: Rc<Outbox>, peer: Peer) -> Record {
        Record {
            fd: Fd::Stream(fd),
            mount: mount as u32,
            outbox,
            live: None,
            pings: Pings::default(),
            cut: false,
            inline: false,
            resume: false,
            peer,
        }
    }

    /// The socket's tasks have ended: the record takes the descriptor over.
    pub fn park(&mut self, fd: OwnedFd) {
        debug_assert_eq!(fd.as_raw_fd(), self.fd.raw());
        self.fd = Fd::Record(fd);
        self.live = None;
    }

    /// What an inline task needs to run the parked socket's input.
    pub fn parked(&self, key: u32) -> Parked {
        Parked {
            key,
            fd: self.fd.raw(),
            mount: self.mount as usize,
            outbox: self.outbox.clone(),
            peer: self.peer.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixStream;

    #[test]
    fn pings_count_from_one_and_a_frame_clears_the_wait() {
        let mut p = Pings::default();
        assert_eq!(p.tick(1, 2), Some(1));
        assert_eq!(p.tick(2, 2), Some(2));
        p.heard = true;
        assert_eq!(p.tick(3, 2), Some(3));
        assert_eq!(p.tick(4, 2), Some(4));
        assert_eq!(p.tick(5, 2), None, "silent since the ping of tick 3");
    }

    #[test]
    fn a_limit_of_one_tick_closes_at_the_next() {
        let mut p = Pings::default();
        assert_eq!(p.tick(7, 1), Some(1));
        assert_eq!(p.tick(8, 1), None);
    }

    #[test]
    fn the_record_owns_a_parked_descriptor_until_a_stream_takes_it() {
        let (a, b) = UnixStream::pair().unwrap();
        let raw = a.as_raw_fd();
        let mut fd = Fd::Stream(raw);
        assert!(fd.take().is_none(), "a stream owns it");
        fd = Fd::Record(OwnedFd::from(a));
        let owned = fd.take().expect("the record owned it");
        assert_eq!((owned.as_raw_fd(), fd.raw()), (raw, raw));
        assert!(fd.take().is_none(), "given once");
        // Dropping the one owner closes the socket: the peer reads end of stream.
        drop(owned);
        let mut b = b;
        let mut byte = [0u8];
        assert_eq!(std::io::Read::read(&mut b, &mut byte).unwrap(), 0);
    }
}
