//! This process's share of the subscribers: each one a task that sets up a Bayeux client the
//! way the real Faye client does, then reads deliveries into its book until the process ends.
//!
//! * WebSocket: upgrade, `/meta/handshake`, then `/meta/connect` and `/meta/subscribe` as two
//!   frames; every held connect the server answers is sent again at once.
//! * Long-polling: one keep-alive connection per client; handshake, a first connect with
//!   `advice.timeout` 0 batched with the subscribe, then a loop of held connects whose replies
//!   carry the deliveries.

use crate::plan::{Book, Plan};
use crate::scan;
use crate::sys::now_us;
use crate::wire::{HttpConn, Target, push_text_frame, ws_connect, ws_read};
use bytes::Bytes;
use hdrhistogram::Histogram;
use monoio::io::AsyncWriteRentExt;
use monoio::net::TcpStream;
use serde::{Deserialize, Serialize};
use std::cell::{Cell, RefCell};
use std::io::{Error, Result};
use std::rc::Rc;
use std::time::{Duration, Instant};

/// How the subscribers talk to the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    WebSocket,
    LongPolling,
}

/// Errors printed per process before the rest are only counted.
const ERRORS_SHOWN: usize = 5;

/// A histogram of microseconds, 1 us to one hour, 3 significant digits.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds")
}

/// What a set of subscribers saw; children send it to the parent as JSON.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Tally {
    pub reached: usize,
    pub failed: usize,
    /// Clients whose connection ended after set-up.
    pub dropped: usize,
    pub expected: u64,
    pub unique: u64,
    pub duplicated: u64,
    pub unexpected: u64,
    pub last_delivery_us: u64,
    /// Publish-to-delivery latency, (microseconds, count) pairs.
    pub latency: Vec<(u64, u64)>,
    /// Client set-up time, (microseconds, count) pairs.
    pub setup: Vec<(u64, u64)>,
    /// CPU time of the process that ran these clients (children only).
    pub cpu_us: u64,
}

pub fn to_pairs(h: &Histogram<u64>) -> Vec<(u64, u64)> {
    h.iter_recorded()
        .map(|v| (v.value_iterated_to(), v.count_at_value()))
        .collect()
}

pub fn add_pairs(h: &mut Histogram<u64>, pairs: &[(u64, u64)]) {
    for &(v, n) in pairs {
        let _ = h.record_n(v.max(1), n);
    }
}

pub struct Fleet {
    pub plan: Plan,
    target: Target,
    transport: Transport,
    /// The global index of each local client (its channel is `/u/<global>`).
    globals: Vec<usize>,
    books: RefCell<Vec<Book>>,
    latency: RefCell<Histogram<u64>>,
    setup: RefCell<Histogram<u64>>,
    started: Cell<usize>,
    pub reached: Cell<usize>,
    pub failed: Cell<usize>,
    dropped: Cell<usize>,
    /// Deliveries counted so far (duplicates included).
    pub received: Cell<u64>,
    last_delivery_us: Cell<u64>,
}

impl Fleet {
    pub fn new(plan: Plan, target: Target, transport: Transport, globals: Vec<usize>) -> Fleet {
        let books = globals
            .iter()
            .map(|&g| Book::new(plan.expected_by(g)))
            .collect();
        Fleet {
            plan,
            target,
            transport,
            globals,
            books: RefCell::new(books),
            latency: RefCell::new(histogram()),
            setup: RefCell::new(histogram()),
            started: Cell::new(0),
            reached: Cell::new(0),
            failed: Cell::new(0),
            dropped: Cell::new(0),
            received: Cell::new(0),
            last_delivery_us: Cell::new(0),
        }
    }

    pub fn len(&self) -> usize {
        self.globals.len()
    }

    /// Deliveries the clients that are set up should receive.
    pub fn expected(&self) -> u64 {
        self.books.borrow().iter().map(|b| b.expected).sum()
    }

    /// Starts every client, at most `concurrency` setting up at once.
    pub fn start(self: &Rc<Self>, concurrency: usize) {
        let fleet = self.clone();
        monoio::spawn(async move {
            for local in 0..fleet.len() {
                while fleet.started.get() - fleet.reached.get() - fleet.failed.get()
                    >= concurrency.max(1)
                {
                    monoio::time::sleep(Duration::from_millis(1)).await;
                }
                fleet.started.set(fleet.started.get() + 1);
                monoio::spawn(fleet.clone().client(local));
            }
        });
    }

    async fn client(self: Rc<Self>, local: usize) {
        let is_set_up = Cell::new(false);
        let res = match self.transport {
            Transport::WebSocket => self.ws_client(local, &is_set_up).await,
            Transport::LongPolling => self.lp_client(local, &is_set_up).await,
        };
        let Err(e) = res else { return };
        let counter = if is_set_up.get() {
            &self.dropped
        } else {
            // A client that never set up has no deliveries to expect.
            self.books.borrow_mut()[local] = Book::new(0);
            &self.failed
        };
        counter.set(counter.get() + 1);
        if self.failed.get() + self.dropped.get() <= ERRORS_SHOWN {
            eprintln!("client {}: {e}", self.globals[local]);
        }
    }

    fn set_up(&self, started: Instant, flag: &Cell<bool>) {
        flag.set(true);
        self.reached.set(self.reached.get() + 1);
        let us = started.elapsed().as_micros() as u64;
        let _ = self.setup.borrow_mut().record(us.max(1));
    }

    /// Books every bench delivery in a frame or reply.
    fn on_payload(&self, local: usize, payload: &[u8]) {
        let now = now_us();
        let global = self.globals[local];
        let (mut books, mut latency) = (self.books.borrow_mut(), self.latency.borrow_mut());
        let mut n = 0;
        scan::for_each_delivery(payload, |stamp| {
            books[local].record(self.plan.slot(global, stamp.seq));
            let _ = latency.record(now.saturating_sub(stamp.sent_us).max(1));
            n += 1;
        });
        if n > 0 {
            self.received.set(self.received.get() + n);
            self.last_delivery_us.set(now);
        }
    }

    async fn ws_client(&self, local: usize, set_up: &Cell<bool>) -> Result<()> {
        let started = Instant::now();
        let (mut s, mut buf) = ws_connect(&self.target).await?;
        send_frames(&mut s, &[scan::handshake("websocket")]).await?;
        let reply = ws_read(&mut s, &mut buf).await?;
        let cid = scan::client_id(&reply).ok_or_else(|| refused("handshake", &reply))?;
        let connect = format!("[{}]", scan::connect(&cid, "websocket", false));
        let channel = self.plan.channel_of_client(self.globals[local]);
        let subscribe = format!("[{}]", scan::subscribe(&cid, &channel));
        send_frames(&mut s, &[connect.clone(), subscribe]).await?;
        loop {
            let reply = ws_read(&mut s, &mut buf).await?;
            if scan::subscribed(&reply) {
                break;
            }
            if reply.windows(18).any(|w| w == b"\"successful\":false") {
                return Err(refused("subscribe", &reply));
            }
            if scan::has_connect_reply(&reply) {
                send_frames(&mut s, std::slice::from_ref(&connect)).await?;
            }
        }
        self.set_up(started, set_up);
        loop {
            let payload = ws_read(&mut s, &mut buf).await?;
            self.on_payload(local, &payload);
            if scan::has_connect_reply(&payload) {
                send_frames(&mut s, std::slice::from_ref(&connect)).await?;
            }
        }
    }

    async fn lp_client(&self, local: usize, set_up: &Cell<bool>) -> Result<()> {
        let started = Instant::now();
        let mut conn = HttpConn::open(&self.target).await?;
        let (_, reply) = ok(conn
            .post(scan::handshake("long-polling").as_bytes())
            .await?)?;
        let cid = scan::client_id(&reply).ok_or_else(|| refused("handshake", &reply))?;
        let channel = self.plan.channel_of_client(self.globals[local]);
        let first = format!(
            "[{},{}]",
            scan::connect(&cid, "long-polling", true),
            scan::subscribe(&cid, &channel)
        );
        let (_, reply) = ok(conn.post(first.as_bytes()).await?)?;
        if !scan::subscribed(&reply) {
            return Err(refused("subscribe", &reply));
        }
        self.set_up(started, set_up);
        let held =
            conn.request(format!("[{}]", scan::connect(&cid, "long-polling", false)).as_bytes());
        loop {
            let (_, reply) = ok(conn.send(held.clone()).await?)?;
            self.on_payload(local, &reply);
            if !scan::has_connect_reply(&reply) || scan::count_successful(&reply) == 0 {
                return Err(refused("connect", &reply));
            }
        }
    }

    /// What these clients saw so far.
    pub fn tally(&self) -> Tally {
        let books = self.books.borrow();
        Tally {
            reached: self.reached.get(),
            failed: self.failed.get(),
            dropped: self.dropped.get(),
            expected: books.iter().map(|b| b.expected).sum(),
            unique: books.iter().map(|b| b.unique).sum(),
            duplicated: books.iter().map(|b| b.duplicated).sum(),
            unexpected: books.iter().map(|b| b.unexpected).sum(),
            last_delivery_us: self.last_delivery_us.get(),
            latency: to_pairs(&self.latency.borrow()),
            setup: to_pairs(&self.setup.borrow()),
            cpu_us: 0,
        }
    }
}

fn ok((status, body): (u16, Bytes)) -> Result<(u16, Bytes)> {
    if status == 200 {
        Ok((status, body))
    } else {
        Err(Error::other(format!("HTTP {status}")))
    }
}

fn refused(what: &str, reply: &[u8]) -> Error {
    let text = String::from_utf8_lossy(&reply[..reply.len().min(300)]).into_owned();
    Error::other(format!("{what} refused: {text}"))
}

/// Writes each message as its own frame, all in one send.
async fn send_frames(s: &mut TcpStream, messages: &[String]) -> Result<()> {
    let mut out = Vec::with_capacity(messages.iter().map(|m| m.len() + 14).sum());
    for m in messages {
        push_text_frame(&mut out, m.as_bytes());
    }
    s.write_all(out).await.0.map(|_| ())
}
