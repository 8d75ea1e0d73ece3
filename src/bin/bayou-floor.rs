//! bayou-floor: the physical floor for Bayou's CPU budgets (DESIGN.md, "Budgets").
//!
//! A bare server that performs the socket operations Bayou performs for each unit of work
//! (accept, read a request, write its reply, write each delivery, wake another worker) with
//! no protocol logic: canned replies, and published messages copied byte for byte into
//! delivery frames after finding only their channel. It speaks just enough Bayeux for
//! `bayou-bench` to drive it (handshake, connect, subscribe, publish; WebSocket and
//! long-polling), so `perf/compare.sh` can divide Bayou's CPU per unit of work by the
//! floor's, measured in the same run. Never a server to deploy: no validation, no expiry, no
//! unsubscribe, connects held over WebSocket are never answered.
//!
//! Shape, as Bayou's: one thread per worker on its own monoio runtime (same drivers), one
//! SO_REUSEPORT listener each, a reader and a writer task per WebSocket, and a publish handed
//! once to each other worker through a lock-free queue with one wake-up per batch.

use bayou::config::Driver;
use bayou::engine::{OutboxKind, Signal, frame_for};
use bayou::shard::worker;
use bayou::transport::{io::write_frames, read_more};
use bayou::websocket::{Decoder, Message};
use bytes::{Buf, Bytes, BytesMut};
use clap::Parser;
use crossbeam_queue::SegQueue;
use futures::task::AtomicWaker;
use memchr::memmem;
use monoio::io::{AsyncWriteRentExt, OwnedWriteHalf, Splitable};
use monoio::net::{TcpListener, TcpStream};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The floor: a bare server doing Bayou's socket operations without its protocol logic.
#[derive(Debug, Parser)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Worker threads.
    #[arg(long, default_value_t = 2)]
    workers: usize,
    /// I/O driver, as Bayou's --driver.
    #[arg(long, value_enum, default_value = "auto")]
    driver: Driver,
    /// Accepted for command-line compatibility with Bayou; every path is served.
    #[arg(long)]
    mount: Vec<String>,
    /// Accepted for compatibility with Bayou and ignored.
    #[arg(long)]
    admin_listen: Option<String>,
}

/// Seconds a long-polling connect is held when nothing arrives.
const HOLD: Duration = Duration::from_secs(45);

/// A publish handed to another worker: channel and the message's bytes.
type Envelope = (Bytes, Bytes);

/// One unbounded queue per worker and a wake-up flag, as Bayou's mesh (which is bounded).
struct Hub {
    queues: Vec<SegQueue<Envelope>>,
    sleeping: Vec<AtomicBool>,
    wakers: Vec<AtomicWaker>,
}

impl Hub {
    fn send(&self, to: usize, env: Envelope) {
        self.queues[to].push(env);
        if self.sleeping[to].swap(false, Ordering::SeqCst) {
            self.wakers[to].wake();
        }
    }

    async fn ready(&self, me: usize) {
        std::future::poll_fn(|cx| {
            self.wakers[me].register(cx.waker());
            self.sleeping[me].store(true, Ordering::SeqCst);
            if self.queues[me].is_empty() {
                std::task::Poll::Pending
            } else {
                self.sleeping[me].store(false, Ordering::SeqCst);
                std::task::Poll::Ready(())
            }
        })
        .await
    }
}

/// Where a subscriber's deliveries go.
#[derive(Clone)]
enum Sink {
    /// Ready-made frames for a WebSocket's writer task.
    Socket(Rc<Queue>),
    /// Messages for a long-polling client's next connect reply.
    Poll(Rc<Queue>),
}

#[derive(Default)]
struct Queue {
    items: RefCell<Vec<Bytes>>,
    signal: Signal,
}

impl Queue {
    fn push(&self, b: Bytes) {
        self.items.borrow_mut().push(b);
        self.signal.notify();
    }
}

struct Worker {
    me: usize,
    hub: Arc<Hub>,
    subs: RefCell<HashMap<Bytes, Vec<Sink>>>,
    polls: RefCell<HashMap<Bytes, Rc<Queue>>>,
    next_id: Cell<u64>,
}

/// The `"key":"value"` string value in a message, found by search rather than parsing.
fn string_field<'a>(msg: &'a [u8], key: &[u8]) -> Option<&'a [u8]> {
    let at = memmem::find(msg, key)? + key.len();
    let len = memchr::memchr(b'"', &msg[at..])?;
    Some(&msg[at..at + len])
}

/// The top-level objects of a JSON array (or a lone object), by brace depth.
fn objects(body: &[u8]) -> Vec<&[u8]> {
    let (mut out, mut depth, mut start) = (Vec::new(), 0usize, 0);
    let (mut in_str, mut escaped) = (false, false);
    for (i, &b) in body.iter().enumerate() {
        if in_str {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_str = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_str = true,
            b'{' => {
                if depth == 0 {
                    start = i;
                }
                depth += 1;
            }
            b'}' if depth > 0 => {
                depth -= 1;
                if depth == 0 {
                    out.push(&body[start..=i]);
                }
            }
            _ => {}
        }
    }
    out
}

/// How a request's replies go back.
enum Via<'a> {
    Socket(&'a Rc<Queue>),
    Http,
}

impl Worker {
    /// Handles one request body; returns the reply array and, for a long-poll connect, the
    /// client's queue and whether to answer without holding.
    fn handle(&self, body: &[u8], via: Via) -> (Vec<u8>, Option<(Rc<Queue>, bool)>) {
        let mut reply = b"[".to_vec();
        let mut held = None;
        for msg in objects(body) {
            if reply.len() > 1 {
                reply.push(b',');
            }
            let channel = string_field(msg, br#""channel":""#).unwrap_or_default();
            match channel {
                b"/meta/handshake" => {
                    let id = format!("f{}x{}", self.me, self.next_id.get());
                    self.next_id.set(self.next_id.get() + 1);
                    if matches!(via, Via::Http) {
                        let key = Bytes::from(id.clone().into_bytes());
                        self.polls.borrow_mut().insert(key, Rc::default());
                    }
                    reply.extend_from_slice(format!(
                        r#"{{"channel":"/meta/handshake","successful":true,"version":"1.0","supportedConnectionTypes":["long-polling","websocket"],"clientId":"{id}","advice":{{"reconnect":"retry","interval":0,"timeout":45000}}}}"#
                    ).as_bytes());
                }
                b"/meta/connect" => {
                    reply.extend_from_slice(br#"{"channel":"/meta/connect","successful":true}"#);
                    if matches!(via, Via::Http) {
                        let cid = string_field(msg, br#""clientId":""#).unwrap_or_default();
                        let now = memmem::find(msg, br#""timeout":0"#).is_some();
                        held = self.polls.borrow().get(cid).cloned().map(|q| (q, now));
                    }
                }
                b"/meta/subscribe" => {
                    let sub = string_field(msg, br#""subscription":""#).unwrap_or_default();
                    let sink = match via {
                        Via::Socket(q) => Some(Sink::Socket(q.clone())),
                        Via::Http => string_field(msg, br#""clientId":""#)
                            .and_then(|c| self.polls.borrow().get(c).cloned())
                            .map(Sink::Poll),
                    };
                    if let Some(sink) = sink {
                        let key = Bytes::copy_from_slice(sub);
                        self.subs.borrow_mut().entry(key).or_default().push(sink);
                    }
                    reply.extend_from_slice(
                        br#"{"channel":"/meta/subscribe","successful":true,"subscription":""#,
                    );
                    reply.extend_from_slice(sub);
                    reply.extend_from_slice(b"\"}");
                }
                _ => {
                    let (channel, msg) =
                        (Bytes::copy_from_slice(channel), Bytes::copy_from_slice(msg));
                    for to in (0..self.hub.queues.len()).filter(|&w| w != self.me) {
                        self.hub.send(to, (channel.clone(), msg.clone()));
                    }
                    reply.extend_from_slice(br#"{"channel":""#);
                    reply.extend_from_slice(&channel);
                    reply.extend_from_slice(br#"","successful":true}"#);
                    self.deliver(&channel, msg);
                }
            }
        }
        reply.push(b']');
        (reply, held)
    }

    /// Queues a message for this worker's subscribers of `channel`, framing it once.
    fn deliver(&self, channel: &Bytes, msg: Bytes) {
        let subs = self.subs.borrow();
        let Some(sinks) = subs.get(channel) else {
            return;
        };
        let mut frame = None;
        for sink in sinks {
            match sink {
                Sink::Socket(q) => q.push(
                    frame
                        .get_or_insert_with(|| {
                            let mut one = Vec::with_capacity(msg.len() + 2);
                            one.push(b'[');
                            one.extend_from_slice(&msg);
                            one.push(b']');
                            frame_for(OutboxKind::WebSocket, &one)
                        })
                        .clone(),
                ),
                Sink::Poll(q) => q.push(msg.clone()),
            }
        }
    }

    async fn run_hub(self: Rc<Self>) {
        loop {
            self.hub.ready(self.me).await;
            while let Some((channel, msg)) = self.hub.queues[self.me].pop() {
                self.deliver(&channel, msg);
            }
        }
    }
}

/// Reads one request: (is an upgrade, body); `None` at end of stream or on garbage.
async fn read_request(s: &mut TcpStream, buf: &mut BytesMut) -> Option<(bool, Vec<u8>)> {
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(buf) {
            Ok(httparse::Status::Complete(used)) => {
                let find = |n: &str| {
                    req.headers
                        .iter()
                        .find(|h| h.name.eq_ignore_ascii_case(n))
                        .map(|h| h.value)
                };
                let upgrade = find("upgrade").is_some();
                let len: usize = find("content-length")
                    .and_then(|v| std::str::from_utf8(v).ok()?.trim().parse().ok())
                    .unwrap_or(0);
                if upgrade {
                    let key = find("sec-websocket-key").unwrap_or_default().to_vec();
                    buf.advance(used);
                    return Some((true, key));
                }
                buf.advance(used);
                while buf.len() < len {
                    let (res, b) = read_more(s, std::mem::take(buf)).await;
                    *buf = b;
                    if !matches!(res, Ok(n) if n > 0) {
                        return None;
                    }
                }
                return Some((false, buf.split_to(len).to_vec()));
            }
            Ok(httparse::Status::Partial) => {}
            Err(_) => return None,
        }
        let (res, b) = read_more(s, std::mem::take(buf)).await;
        *buf = b;
        if !matches!(res, Ok(n) if n > 0) {
            return None;
        }
    }
}

async fn serve(w: Rc<Worker>, mut s: TcpStream) {
    let mut buf = BytesMut::with_capacity(4096);
    while let Some((upgrade, body)) = read_request(&mut s, &mut buf).await {
        if upgrade {
            return websocket(w, s, buf, &body).await;
        }
        let (mut reply, held) = w.handle(&body, Via::Http);
        if let Some((q, immediate)) = held {
            let until = Instant::now() + HOLD;
            while !immediate && q.items.borrow().is_empty() && Instant::now() < until {
                let _ = monoio::time::timeout(until - Instant::now(), q.signal.wait()).await;
            }
            for m in q.items.borrow_mut().drain(..) {
                reply.pop();
                reply.push(b',');
                reply.extend_from_slice(&m);
                reply.push(b']');
            }
        }
        let mut out = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: {}\r\n\r\n",
            reply.len()
        )
        .into_bytes();
        out.extend_from_slice(&reply);
        if s.write_all(out).await.0.is_err() {
            return;
        }
    }
}

async fn websocket(w: Rc<Worker>, mut s: TcpStream, mut buf: BytesMut, key: &[u8]) {
    let Ok(accept) =
        bayou::websocket::handshake::accept(Some(b"websocket"), Some(b"13"), Some(key))
    else {
        return;
    };
    let resp = bayou::websocket::handshake::response_101(&accept);
    if s.write_all(resp).await.0.is_err() {
        return;
    }
    let (mut rd, wr) = s.into_split();
    let queue = Rc::new(Queue::default());
    let writer = monoio::spawn(write_loop(wr, queue.clone()));
    let mut decoder = Decoder::new(1 << 20);
    loop {
        match decoder.decode(&mut buf) {
            Ok(Some(Message::Text(text))) => {
                let (reply, _) = w.handle(&text, Via::Socket(&queue));
                if reply.len() > 2 && memmem::find(&text, b"/meta/connect").is_none() {
                    queue.push(frame_for(OutboxKind::WebSocket, &reply));
                }
            }
            Ok(Some(_)) => {}
            Err(_) => break,
            Ok(None) => {
                let (res, b) = read_more(&mut rd, buf).await;
                buf = b;
                if !matches!(res, Ok(n) if n > 0) {
                    break;
                }
            }
        }
    }
    for sinks in w.subs.borrow_mut().values_mut() {
        sinks.retain(|s| !matches!(s, Sink::Socket(q) if Rc::ptr_eq(q, &queue)));
    }
    drop(writer);
}

/// One write per wake-up for everything queued, as Bayou's writer task.
async fn write_loop(mut wr: OwnedWriteHalf<TcpStream>, queue: Rc<Queue>) {
    let mut frames = Vec::new();
    loop {
        queue.signal.wait().await;
        frames.append(&mut queue.items.borrow_mut());
        if !frames.is_empty() && write_frames(&mut wr, &mut frames).await.is_err() {
            return;
        }
    }
}

async fn accept_loop(w: Rc<Worker>, listener: TcpListener) {
    loop {
        if let Ok((stream, _)) = listener.accept().await {
            let _ = stream.set_nodelay(true);
            monoio::spawn(serve(w.clone(), stream));
        }
    }
}

fn main() {
    let args = Args::parse();
    let listeners = bayou::server::bind(args.listen, args.workers).expect("bind the listeners");
    let addr = listeners[0].local_addr().expect("a local address");
    let hub = Arc::new(Hub {
        queues: (0..args.workers).map(|_| SegQueue::new()).collect(),
        sleeping: (0..args.workers).map(|_| AtomicBool::new(false)).collect(),
        wakers: (0..args.workers).map(|_| AtomicWaker::new()).collect(),
    });
    let threads: Vec<_> = listeners
        .into_iter()
        .enumerate()
        .map(|(me, listener)| {
            let (hub, driver) = (hub.clone(), args.driver);
            std::thread::spawn(move || {
                worker::pin(me);
                let res = worker::block_on(driver, |running| async move {
                    // One write, so the line cannot be split by the main thread's output.
                    let line = format!("floor worker {me} on {}\n", running.name());
                    let _ = std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes());
                    let w = Rc::new(Worker {
                        me,
                        hub,
                        subs: RefCell::default(),
                        polls: RefCell::default(),
                        next_id: Cell::new(0),
                    });
                    monoio::spawn(w.clone().run_hub());
                    let listener = TcpListener::from_std(listener).expect("a monoio listener");
                    accept_loop(w, listener).await;
                });
                if let Err(e) = res {
                    eprintln!("floor worker {me}: {e}");
                    std::process::exit(1);
                }
            })
        })
        .collect();
    println!("listening on http://{addr}");
    for t in threads {
        let _ = t.join();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_of_a_batch_ignore_braces_in_strings() {
        let body = br#"[{"channel":"/a","data":{"x":"}{\"}"}},{"channel":"/b"}]"#;
        let got = objects(body);
        assert_eq!(got.len(), 2);
        assert_eq!(string_field(got[0], br#""channel":""#), Some(&b"/a"[..]));
        assert_eq!(got[1], br#"{"channel":"/b"}"#);
        assert_eq!(objects(br#"{"channel":"/c"}"#).len(), 1);
    }
}
