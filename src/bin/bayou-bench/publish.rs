//! The publishers: keep-alive HTTP connections POSTing to the ingest (the mount), as backend
//! services do, without a handshake. Each POST is a JSON array of `batch` publish messages;
//! one POST is in flight per connection, so `connections` bounds what is in flight. With a
//! rate, message `seq` is sent no earlier than `seq / rate` seconds after the start.

use crate::fleet::histogram;
use crate::plan::Plan;
use crate::scan::{self, Stamp};
use crate::sys::now_us;
use crate::wire::{HttpConn, Target};
use hdrhistogram::Histogram;
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

pub struct Options {
    pub connections: usize,
    /// Messages per POST.
    pub batch: usize,
    /// Messages per second over all connections; 0 is as fast as the connections allow.
    pub rate: f64,
    /// Padding bytes in each message's data.
    pub pad: usize,
    /// Stop taking new messages after this instant.
    pub deadline: Instant,
}

/// What the publishers did.
#[derive(Debug)]
pub struct Published {
    /// Messages the server acknowledged with `successful: true`.
    pub acked: u64,
    pub posts: u64,
    /// Messages refused, unanswered, or sent on a connection that failed.
    pub errors: u64,
    pub first_send_us: u64,
    pub last_ack_us: u64,
    /// POST round trips, microseconds.
    pub round_trip: Histogram<u64>,
}

struct Shared {
    plan: Plan,
    opts: Options,
    start: Instant,
    next: Cell<u64>,
    acked: Cell<u64>,
    posts: Cell<u64>,
    errors: Cell<u64>,
    first_send_us: Cell<u64>,
    last_ack_us: Cell<u64>,
    round_trip: RefCell<Histogram<u64>>,
}

/// Publishes every message of the plan; returns once all are answered (or the deadline).
pub async fn run(target: &Target, plan: Plan, opts: Options) -> Published {
    let connections = opts.connections.max(1);
    let shared = Rc::new(Shared {
        plan,
        opts,
        start: Instant::now(),
        next: Cell::new(0),
        acked: Cell::new(0),
        posts: Cell::new(0),
        errors: Cell::new(0),
        first_send_us: Cell::new(0),
        last_ack_us: Cell::new(0),
        round_trip: RefCell::new(histogram()),
    });
    let tasks: Vec<_> = (0..connections)
        .map(|_| monoio::spawn(publisher(shared.clone(), target.clone())))
        .collect();
    for t in tasks {
        t.await;
    }
    Published {
        acked: shared.acked.get(),
        posts: shared.posts.get(),
        errors: shared.errors.get(),
        first_send_us: shared.first_send_us.get(),
        last_ack_us: shared.last_ack_us.get(),
        round_trip: shared.round_trip.replace(histogram()),
    }
}

impl Shared {
    /// The next batch to send, `(first seq, count)`, after waiting for its turn at the rate.
    async fn take(&self) -> Option<(u64, u64)> {
        let first = self.next.get();
        let total = self.plan.messages;
        if first >= total || Instant::now() >= self.opts.deadline {
            return None;
        }
        let n = (self.opts.batch.max(1) as u64).min(total - first);
        self.next.set(first + n);
        if self.opts.rate > 0.0 {
            let due = self.start + Duration::from_secs_f64(first as f64 / self.opts.rate);
            let now = Instant::now();
            if due > now {
                monoio::time::sleep(due - now).await;
            }
        }
        Some((first, n))
    }

    fn body(&self, first: u64, n: u64) -> Vec<u8> {
        let sent_us = now_us();
        if self.first_send_us.get() == 0 {
            self.first_send_us.set(sent_us);
        }
        let mut body = Vec::with_capacity(n as usize * (60 + self.opts.pad) + 2);
        body.push(b'[');
        for seq in first..first + n {
            if seq > first {
                body.push(b',');
            }
            let channel = self.plan.channel_of_message(seq);
            scan::push_publish(&mut body, &channel, Stamp { seq, sent_us }, self.opts.pad);
        }
        body.push(b']');
        body
    }

    fn count(cell: &Cell<u64>, n: u64) {
        cell.set(cell.get() + n);
    }
}

async fn publisher(sh: Rc<Shared>, target: Target) {
    let mut conn = None;
    while let Some((first, n)) = sh.take().await {
        if conn.is_none() {
            conn = HttpConn::open(&target).await.ok();
        }
        let Some(c) = conn.as_mut() else {
            Shared::count(&sh.errors, n);
            continue;
        };
        let body = sh.body(first, n);
        let t0 = now_us();
        match c.post(&body).await {
            Ok((200, reply)) => {
                let now = now_us();
                let ok = (scan::count_successful(&reply) as u64).min(n);
                Shared::count(&sh.acked, ok);
                Shared::count(&sh.errors, n - ok);
                Shared::count(&sh.posts, 1);
                sh.last_ack_us.set(sh.last_ack_us.get().max(now));
                let _ = sh.round_trip.borrow_mut().record((now - t0).max(1));
            }
            Ok((status, reply)) => {
                Shared::count(&sh.errors, n);
                if sh.errors.get() <= n {
                    let text = String::from_utf8_lossy(&reply[..reply.len().min(200)]);
                    eprintln!("publish answered {status}: {text}");
                }
            }
            Err(e) => {
                Shared::count(&sh.errors, n);
                eprintln!("publish connection failed: {e}");
                conn = None;
            }
        }
    }
}
