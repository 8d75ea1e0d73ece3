//! WebSocket connections (spec 2.6), and the worker's table where idle ones park.
//!
//! While a socket has work, a reader task decodes frames and runs each text message as a Bayeux
//! batch, and a writer task drains the outbox in one write per wake-up (`task.rs`). When it has
//! nothing to read or write (no partial frame, no handler running, nothing queued or being
//! written), both tasks end and the socket *parks*: its record in the worker's table
//! (`table.rs`) owns its file descriptor and keeps its outbox, and no task, buffer or timer is
//! held for it. When a message names a session of another worker, the socket moves to that
//! worker, so a session's deliveries are always written by the worker that holds it. Three
//! tasks per worker serve all the records (`watch.rs`):
//!
//! * `ready_loop`: an epoll set of this table's own (not the runtime's) watches every socket
//!   for input, one-shot, re-armed by the reader each time it waits. A readable parked socket's
//!   input is read and run by a short task of its own (`serve_parked`) while the socket stays
//!   parked, its replies going out through the outbox like any push; the socket is promoted
//!   back into tasks only when the input needs them (a partial frame, a close, end of input, a
//!   message for another worker's session). An active reader waiting for input is woken. The
//!   set itself is watched through the runtime, so it works the same on io_uring and on epoll.
//! * `bell_loop`: a push to a parked socket's outbox rings the worker's doorbell; the frames
//!   are written at once with non-blocking sends, one per socket per batch, and the socket is
//!   promoted only when the send would block or a close is due. An outbox that went over its
//!   limit (a slow consumer) rings it too, and is cut here.
//! * `ping_loop` (with `--ping`): pings every socket, parked ones through their outbox (so
//!   without promoting them), and closes those silent for longer than `--ping-timeout`.
//!
//! Drivers: a parked descriptor belongs to its record alone. On epoll, monoio's registration
//! ends when the stream is taken apart (`into_raw_fd` deregisters it) and is made again on
//! promotion, so a parked fd is never registered twice or left behind (an *active* socket is in
//! both sets: the runtime's for its reads and writes, this table's for its reader's idle
//! wait). On io_uring a socket parks only with no operation in flight: its reader waits for
//! input through this table's epoll set, never through a cancellable runtime poll, and its
//! writer is waiting on a signal.
//!
//! Files, each using only those above it: `sys` (the raw socket: syscalls, the spare read
//! buffer, control frames) <- `state` (active and parked, the record) <- `table` (the records
//! and the changes between states) <- `task` (an active socket's reader and writer) <-
//! `upgrade` (the handshake) and `watch` (the table's tasks, inline input).
//!
//! Descriptor ownership: the upgraded `TcpStream` owns it; parking turns it into an `OwnedFd`
//! (`io::into_owned_fd`) that the record holds (`state::Fd::Record`); promotion moves that
//! `OwnedFd` into a new stream (`std::net::TcpStream::from`), the record keeping only its
//! number; a hand-over sends the `OwnedFd` to the other worker. Whoever holds it last closes it.

mod state;
mod sys;
mod table;
mod task;
mod upgrade;
mod watch;

pub use task::run;
pub use upgrade::{Upgrade, upgrade};
pub use watch::start;
