//! The raw socket, below the runtime: non-blocking `recv` and `sendmsg`, the table's epoll
//! set, `shutdown`, the worker's spare read buffer, and the control frames sent that way.

use crate::transport::io::READ_CHUNK;
use crate::websocket::frame::{CloseCode, Opcode, close_payload, encode};
use bytes::{Bytes, BytesMut};
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

/// Frames written by one non-blocking send at most (below IOV_MAX).
const MAX_IOV: usize = 64;

/// A new epoll set.
pub fn epoll_create() -> std::io::Result<OwnedFd> {
    // SAFETY: a plain syscall with no pointer arguments; the result is checked.
    let epoll = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    if epoll < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `epoll` is a descriptor just made, owned by nothing else.
    Ok(unsafe { OwnedFd::from_raw_fd(epoll) })
}

/// An epoll event's tag: the descriptor and the table key, so an event for a descriptor that
/// has since been reused under the same key is told apart.
pub fn tag(fd: RawFd, key: u32) -> u64 {
    (u64::from(fd as u32) << 32) | u64::from(key)
}

/// The table key a tag names.
pub fn tag_key(tag: u64) -> u32 {
    tag as u32
}

/// Adds, re-arms or removes (`op`) a one-shot input watch of `fd` in the set `epoll`.
pub fn epoll_ctl(epoll: RawFd, op: i32, fd: RawFd, key: u32) -> std::io::Result<()> {
    let mut ev = libc::epoll_event {
        events: (libc::EPOLLIN | libc::EPOLLRDHUP | libc::EPOLLONESHOT) as u32,
        u64: tag(fd, key),
    };
    // SAFETY: `ev` outlives the call; the kernel checks both descriptors and fails the call
    // (it is checked) on one that is not open.
    if unsafe { libc::epoll_ctl(epoll, op, fd, &mut ev) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Takes the events waiting in `epoll` without blocking; how many were written into `events`.
pub fn epoll_wait(epoll: RawFd, events: &mut [libc::epoll_event]) -> std::io::Result<usize> {
    let room = events.len().min(i32::MAX as usize) as i32;
    // SAFETY: the kernel writes at most `room` entries, and `events` has that many.
    let n = unsafe { libc::epoll_wait(epoll, events.as_mut_ptr(), room, 0) };
    if n < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(n as usize)
}

/// Shuts both directions of a connection down, which also ends any read or write in flight.
pub fn shutdown(fd: RawFd) {
    // SAFETY: a plain syscall with no pointer arguments; a descriptor that is not a socket
    // only makes it fail, and the result is not needed.
    unsafe { libc::shutdown(fd, libc::SHUT_RDWR) };
}

/// Reads what the socket holds now, without blocking; `WouldBlock` when it holds nothing.
pub fn recv_now(fd: RawFd, buf: &mut BytesMut) -> std::io::Result<usize> {
    if buf.capacity() - buf.len() < READ_CHUNK / 2 {
        buf.reserve(READ_CHUNK);
    }
    let spare = buf.spare_capacity_mut();
    loop {
        // SAFETY: the kernel writes at most `spare.len()` bytes, into the spare capacity.
        let n = unsafe {
            libc::recv(
                fd,
                spare.as_mut_ptr().cast(),
                spare.len(),
                libc::MSG_DONTWAIT,
            )
        };
        if n >= 0 {
            // SAFETY: the first `n` spare bytes were just written, and `n <= spare.len()`.
            unsafe { buf.set_len(buf.len() + n as usize) };
            return Ok(n as usize);
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Writes as much of `frames` as the socket takes without blocking, leaving the rest in
/// `frames` (the first one shortened if it went out in part).
pub fn send_now(fd: RawFd, frames: &mut Vec<Bytes>) -> std::io::Result<()> {
    let mut iov = [libc::iovec {
        iov_base: std::ptr::null_mut(),
        iov_len: 0,
    }; MAX_IOV];
    while !frames.is_empty() {
        let count = frames.len().min(MAX_IOV);
        for (v, f) in iov.iter_mut().zip(&frames[..count]) {
            v.iov_base = f.as_ptr() as *mut libc::c_void;
            v.iov_len = f.len();
        }
        let iov = &iov[..count];
        // SAFETY: all-zero bytes are a valid `msghdr` (null pointers, zero lengths).
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = iov.as_ptr() as *mut libc::iovec;
        msg.msg_iovlen = iov.len();
        // SAFETY: `msg` points at `iov`, and every iovec at a frame that `frames` keeps alive,
        // for the whole call; the kernel only reads them.
        let n = unsafe { libc::sendmsg(fd, &msg, libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            return match e.kind() {
                std::io::ErrorKind::WouldBlock => Ok(()),
                std::io::ErrorKind::Interrupted => continue,
                _ => Err(e),
            };
        }
        let offered = iov.iter().map(|v| v.iov_len).sum::<usize>();
        consume(frames, n as usize);
        if (n as usize) < offered {
            return Ok(());
        }
    }
    Ok(())
}

/// Drops the first `sent` bytes of `frames`: the whole frames they cover, and the start of the
/// next one.
fn consume(frames: &mut Vec<Bytes>, sent: usize) {
    let mut left = sent;
    let done = frames.iter().take_while(|f| {
        let whole = f.len() <= left;
        if whole {
            left -= f.len();
        }
        whole
    });
    let done = done.count();
    frames.drain(..done);
    if left > 0 {
        let rest = frames[0].slice(left..);
        frames[0] = rest;
    }
}

/// A control frame (ping, pong, close) with this payload.
pub fn control(op: Opcode, payload: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(payload.len() + 2);
    encode(&mut out, op, payload);
    out.freeze()
}

/// A close frame with this code and reason.
pub fn close_frame(code: u16, reason: &str) -> Bytes {
    control(Opcode::Close, &close_payload(CloseCode(code), reason))
}

thread_local! {
    /// This worker's spare read buffer. A socket with nothing left to decode lends its buffer
    /// back before it waits, so the next read of any socket on the worker reuses it instead of
    /// allocating `READ_CHUNK` bytes anew (idle sockets hold no buffer at all).
    static SPARE: std::cell::Cell<BytesMut> = std::cell::Cell::new(BytesMut::new());
}

/// The worker's spare read buffer, or an empty one (which allocates at its first read) when
/// another socket holds it.
pub fn spare_buf() -> BytesMut {
    SPARE.take()
}

/// Keeps an emptied read buffer as the worker's spare, unless it has no room for a read (it
/// would take the place of a spare that has) or grew past the usual size.
pub fn lend_back(buf: BytesMut) {
    debug_assert!(buf.is_empty());
    if worth_keeping(&buf) {
        SPARE.set(buf);
    }
}

fn worth_keeping(buf: &BytesMut) -> bool {
    (READ_CHUNK / 2..=4 * READ_CHUNK).contains(&buf.capacity())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixStream;

    fn pair() -> (UnixStream, UnixStream) {
        let (a, b) = UnixStream::pair().unwrap();
        a.set_nonblocking(true).unwrap();
        b.set_nonblocking(true).unwrap();
        (a, b)
    }

    #[test]
    fn consume_drops_whole_frames_and_shortens_the_next() {
        let mut f = vec![
            Bytes::from_static(b"abc"),
            Bytes::from_static(b"de"),
            Bytes::from_static(b"fgh"),
        ];
        consume(&mut f, 6);
        assert_eq!(f, vec![Bytes::from_static(b"gh")]);
        consume(&mut f, 0);
        assert_eq!(f, vec![Bytes::from_static(b"gh")]);
        consume(&mut f, 2);
        assert!(f.is_empty());
    }

    #[test]
    fn send_now_writes_every_frame_in_order() {
        let (a, mut b) = pair();
        let mut frames: Vec<Bytes> = (0..100).map(|i| Bytes::from(format!("{i},"))).collect();
        let want: Vec<u8> = frames.iter().flat_map(|f| f.to_vec()).collect();
        send_now(a.as_raw_fd(), &mut frames).unwrap();
        assert!(frames.is_empty());
        let mut got = vec![0; want.len()];
        b.read_exact(&mut got).unwrap();
        assert_eq!(got, want);
    }

    #[test]
    fn send_now_keeps_what_the_socket_would_not_take() {
        let (a, mut b) = pair();
        let big = Bytes::from(vec![7u8; 4 << 20]);
        let mut frames = vec![big.clone()];
        send_now(a.as_raw_fd(), &mut frames).unwrap();
        assert_eq!(frames.len(), 1, "a full buffer leaves the rest queued");
        let left = frames[0].len();
        assert!(left > 0 && left < big.len());
        let mut got = vec![0; big.len() - left];
        b.read_exact(&mut got).unwrap();
        assert!(got.iter().all(|&x| x == 7));
    }

    #[test]
    fn recv_now_reads_what_is_there_and_would_block_after() {
        let (a, mut b) = pair();
        let mut buf = BytesMut::new();
        let e = recv_now(a.as_raw_fd(), &mut buf).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::WouldBlock);
        b.write_all(b"hello").unwrap();
        assert_eq!(recv_now(a.as_raw_fd(), &mut buf).unwrap(), 5);
        assert_eq!(&buf[..], b"hello");
        drop(b);
        assert_eq!(recv_now(a.as_raw_fd(), &mut buf).unwrap(), 0);
    }

    #[test]
    fn a_one_shot_watch_fires_once_until_rearmed() {
        let (a, mut b) = pair();
        let epoll = epoll_create().unwrap();
        let (ep, fd) = (epoll.as_raw_fd(), a.as_raw_fd());
        let mut events = [libc::epoll_event { events: 0, u64: 0 }; 4];
        epoll_ctl(ep, libc::EPOLL_CTL_ADD, fd, 9).unwrap();
        assert_eq!(epoll_wait(ep, &mut events).unwrap(), 0);
        b.write_all(b"x").unwrap();
        assert_eq!(epoll_wait(ep, &mut events).unwrap(), 1);
        let ev = events[0].u64;
        assert_eq!((ev, tag_key(ev)), (tag(fd, 9), 9));
        assert_eq!(epoll_wait(ep, &mut events).unwrap(), 0, "one-shot");
        epoll_ctl(ep, libc::EPOLL_CTL_MOD, fd, 9).unwrap();
        assert_eq!(
            epoll_wait(ep, &mut events).unwrap(),
            1,
            "re-armed, bytes still waiting"
        );
        epoll_ctl(ep, libc::EPOLL_CTL_DEL, fd, 9).unwrap();
    }

    #[test]
    fn only_usual_sized_buffers_are_kept() {
        assert!(!worth_keeping(&BytesMut::new()));
        assert!(worth_keeping(&BytesMut::with_capacity(READ_CHUNK)));
        assert!(!worth_keeping(&BytesMut::with_capacity(8 * READ_CHUNK)));
    }
}
