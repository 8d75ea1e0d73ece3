//! Bayeux batches on hostile input: `parse_batch`, then the meta-channel handlers and the
//! per-worker `Engine`s, driven the way `shard::router::Node::process_here` drives them, minus
//! sockets, tasks and the mesh. Two workers are simulated in one thread: interest effects and
//! publishes are routed between their engines synchronously, and a held connect is answered by
//! moving the clock to its deadline.
//!
//! Input: requests separated by '\n' (which JSON never needs), each a control byte then a body.
//! The control byte is XORed with 0x20 first, so that a space is a plain HTTP request on
//! worker 0 and seed files read as text; then
//! - bits 0-1: where it arrives: 0, 1 over HTTP (on the worker owning its first clientId,
//!   else worker 0 or 1); 2, 3 on the WebSocket of worker 0 or 1
//! - bit 2: the mount (0 or 1)
//! - bits 3-4: the time that passes first (none, 1 s, the timeout, twice the timeout + 1 s)
//! - bit 5: afterwards the sockets of the worker close
//! - bit 6: first an EventSource stream opens for the newest client
//! - bit 7: the server is draining (connects are answered at once)
//!
//! A clientId of one digit `d` stands for the `d`-th newest client handshaken so far, so that
//! the fuzzer can reach sessions whose ids are random.
//!
//! Invariants: every reply body and pushed frame is valid JSON (an array), an HTTP batch gets a
//! reply per truthy message, a held connect is answered by its deadline, and once every client
//! has expired no table of any engine holds anything.

#![no_main]

use bayou::bayeux::json::{self, JsonArray, Reply, parse_batch, truthy};
use bayou::bayeux::{self, Kind, connect, disconnect, handshake, id, publish, subscribe};
use bayou::engine::{ConnectOutcome, Engine, Outbox, OutboxKind};
use bayou::bayeux::ChannelSet;
use bayou::config::Secret;
use bayou::policy::{Auth, CREDENTIAL_KEYS, Credentials, Strip, Verifier};
use bayou::shard::owner;
use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use bayou::bayeux::json::Value;
use simd_json::BorrowedValue;
use simd_json::prelude::*;
use std::borrow::Cow;
use std::rc::Rc;
use std::time::{Duration, Instant};

const WORKERS: usize = 2;
const MOUNTS: usize = 2;
const TIMEOUT: Duration = Duration::from_secs(45);
const INTERVAL_MS: u64 = 0;
/// Newest clientIds kept for the one-digit aliases.
const ALIASES: usize = 10;

fuzz_target!(|data: &[u8]| {
    let mut cluster = Cluster::new();
    for request in data.split(|&b| b == b'\n') {
        if let Some((&ctrl, body)) = request.split_first() {
            cluster.request(ctrl ^ 0x20, body);
        }
    }
    cluster.expire_everything();
});

/// A validated connect waiting for the rest of its batch (`router::HeldConnect`).
struct HeldConnect {
    client_id: String,
    reply: Reply,
    advice: Vec<u8>,
    hold: Duration,
}

/// What a delivered message must never carry in secure mode: credentials and publisher advice.
fn assert_stripped(delivered: &[u8]) {
    let v: serde_json::Value = serde_json::from_slice(delivered).expect("delivered JSON");
    assert!(v.get("advice").is_none(), "{v}");
    assert!(v.get("clientId").is_none(), "{v}");
    if let Some(ext) = v.get("ext").and_then(|e| e.as_object()) {
        for key in CREDENTIAL_KEYS {
            assert!(!ext.contains_key(key), "{v}");
        }
    }
}

/// The secure rules the handlers run under: a publish secret, client publishing to `/chat/**`
/// only, and `/users/**` behind HS256 tokens.
fn secure_auth() -> Auth {
    let set = |s: &str| ChannelSet::parse(s).expect("valid pattern");
    Auth {
        publish_secret: Some(Secret::new("s")),
        verifier: Some(Verifier::new(b"k")),
        protected: vec![set("/users/**")],
        client_publish: Some(vec![set("/chat/**")]),
        ..Auth::default()
    }
}

struct Cluster {
    auth: Auth,
    engines: Vec<Engine>,
    now: Instant,
    /// Newest last.
    clients: Vec<String>,
    /// Per worker: its WebSocket and its EventSource stream.
    websockets: Vec<Rc<Outbox>>,
    streams: Vec<Rc<Outbox>>,
    next_socket: u64,
}

impl Cluster {
    fn new() -> Cluster {
        let mut cluster = Cluster {
            auth: secure_auth(),
            engines: (0..WORKERS)
                .map(|w| Engine::new(w, WORKERS, MOUNTS, TIMEOUT))
                .collect(),
            now: Instant::now(),
            clients: Vec::new(),
            websockets: Vec::new(),
            streams: Vec::new(),
            next_socket: 0,
        };
        for w in 0..WORKERS {
            let ws = cluster.socket(w, OutboxKind::WebSocket);
            let es = cluster.socket(w, OutboxKind::EventSource);
            cluster.websockets.push(ws);
            cluster.streams.push(es);
        }
        cluster
    }

    /// A fresh push socket of worker `w`, numbered like `Node::socket_id`.
    fn socket(&mut self, w: usize, kind: OutboxKind) -> Rc<Outbox> {
        self.next_socket += 1;
        Rc::new(Outbox::new(self.next_socket << 12 | w as u64, kind))
    }

    fn request(&mut self, ctrl: u8, body: &[u8]) {
        let mount = usize::from(ctrl >> 2 & 1);
        let pause = [
            Duration::ZERO,
            Duration::from_secs(1),
            TIMEOUT,
            2 * TIMEOUT + Duration::from_secs(1),
        ][usize::from(ctrl >> 3 & 3)];
        self.advance(pause);
        if ctrl & 0x40 != 0 {
            self.open_stream(mount);
        }
        // The parser alone, on the raw bytes (an HTTP body may not even be UTF-8).
        let mut raw = body.to_vec();
        let _ = parse_batch(&mut raw);
        let socket = (ctrl & 2 != 0).then(|| usize::from(ctrl & 1));
        let draining = ctrl & 0x80 != 0;
        let worker = self.process(mount, lossy(body), socket, usize::from(ctrl & 1), draining);
        self.flush_sockets();
        if ctrl & 0x20 != 0 {
            let worker = socket.or(worker).unwrap_or(0);
            self.close_sockets(worker);
        }
    }

    /// `GET /faye/<clientId>` with `Accept: text/event-stream`, on the owner of the session.
    fn open_stream(&mut self, mount: usize) {
        let Some(client_id) = self.clients.last().cloned() else {
            return;
        };
        let w = id::worker_of(&client_id, WORKERS).unwrap_or(0);
        let stream = self.streams[w].clone();
        self.engines[w].bind_stream(mount, &client_id, stream);
    }

    /// `Node::process` and `process_here`; returns the worker that ran the batch.
    fn process(
        &mut self,
        mount: usize,
        mut body: Vec<u8>,
        socket: Option<usize>,
        default_worker: usize,
        draining: bool,
    ) -> Option<usize> {
        body = self.resolve_aliases(body);
        let Ok(msgs) = parse_batch(&mut body) else {
            return None;
        };
        let w = socket.unwrap_or_else(|| {
            first_client_id(&msgs)
                .and_then(|c| id::worker_of(c, WORKERS))
                .unwrap_or(default_worker)
        });
        let now = self.now;
        let mut out = JsonArray::expecting(0);
        let mut held = Vec::new();
        let truthy_count = msgs.iter().filter(|m| truthy(*m)).count();
        for msg in msgs.iter().filter(|m| truthy(*m)) {
            if let Some(reply) = self.handle(w, mount, msg, now, &mut held) {
                out.push_reply(&reply);
            }
        }
        drop(msgs);
        let ws = socket.map(|s| self.websockets[s].clone());
        for h in held {
            self.finish_connect(w, mount, h, ws.clone(), draining, &mut out);
        }
        if socket.is_none() {
            assert!(
                out.len() >= truthy_count,
                "{} replies for {truthy_count}",
                out.len()
            );
        }
        let items = out.len();
        let reply = out.finish();
        assert_eq!(valid_json_array(&reply), items);
        Some(w)
    }

    /// One truthy message of a batch on worker `w`: its reply, unless it is a connect that
    /// waits for the rest of the batch.
    fn handle(
        &mut self,
        w: usize,
        mount: usize,
        msg: Value,
        now: Instant,
        held: &mut Vec<HeldConnect>,
    ) -> Option<Reply> {
        let engine = &mut self.engines[w];
        let timeout_ms = TIMEOUT.as_millis() as u64;
        let reply = match bayeux::classify(msg) {
            Kind::Handshake => {
                let mut r = handshake::check(msg);
                if r.successful {
                    let cid = engine.handshake(mount, now);
                    assert_eq!(id::worker_of(&cid, WORKERS), Some(w));
                    let advice = bayeux::advice_retry(INTERVAL_MS, timeout_ms);
                    handshake::accept(&mut r, &cid, advice.as_bytes());
                    self.clients.push(cid);
                    if self.clients.len() > ALIASES {
                        self.clients.remove(0);
                    }
                }
                r
            }
            Kind::Connect => {
                match connect::check(msg, |c| engine.exists(mount, c), timeout_ms) {
                    Err(r) => r,
                    Ok((r, c)) => {
                        assert!(engine.exists(mount, &c.client_id));
                        held.push(HeldConnect {
                            client_id: c.client_id,
                            reply: r,
                            advice: bayeux::Advice::new(INTERVAL_MS, timeout_ms)
                                .connect(c.eventsource)
                                .to_vec(),
                            hold: Duration::from_millis(c.hold_ms),
                        });
                        return None;
                    }
                }
            }
            kind @ (Kind::Subscribe | Kind::Unsubscribe) => {
                let token = json::field(msg, "ext").and_then(|e| json::str_field(e, "token"));
                let auth = &self.auth;
                let (r, channels) = subscribe::check_with(
                    msg,
                    |c| engine.exists(mount, c),
                    |name, _| {
                        if kind == Kind::Subscribe {
                            auth.subscribe(name, token).map_err(|d| d.to_string())
                        } else {
                            Ok(())
                        }
                    },
                );
                if kind == Kind::Subscribe {
                    // Nothing protected is subscribed without a valid token.
                    for ch in &channels {
                        assert!(auth.subscribe(ch, token).is_ok(), "{ch}");
                    }
                }
                if let Some(cid) = json::str_field(msg, "clientId") {
                    if kind == Kind::Subscribe {
                        engine.subscribe(mount, cid, &channels);
                    } else {
                        engine.unsubscribe(mount, cid, &channels);
                    }
                }
                self.dispatch_effects(w);
                r
            }
            Kind::Disconnect => {
                let (r, cid) = disconnect::check(msg, |c| engine.exists(mount, c));
                if let Some(cid) = cid {
                    engine.destroy(mount, &cid);
                    assert!(!engine.exists(mount, &cid));
                    self.dispatch_effects(w);
                }
                r
            }
            Kind::ForbiddenMeta => bayeux::forbidden_meta(msg),
            Kind::Publish => match publish::check(msg) {
                Ok((mut r, name)) => {
                    let cred = Credentials {
                        password: json::field(msg, "ext")
                            .and_then(|e| json::str_field(e, "password")),
                        bearer: false,
                        from_client: json::truthy_field(msg, "clientId").is_some(),
                    };
                    match self.auth.publish(name, cred) {
                        Ok(()) => {
                            let strip = Strip {
                                advice: true,
                                ext_keys: &CREDENTIAL_KEYS,
                            };
                            let delivered = publish::delivered(msg, strip);
                            assert_stripped(&delivered);
                            self.publish(mount, name, Bytes::from(delivered));
                        }
                        Err(denied) => {
                            r.fail(denied.to_string());
                            r.settle();
                        }
                    }
                    r
                }
                Err(r) => {
                    assert!(!r.successful);
                    r
                }
            },
        };
        Some(reply)
    }

    /// `router::Node::finish_connect`, with the wait replaced by a jump to the deadline.
    fn finish_connect(
        &mut self,
        w: usize,
        mount: usize,
        h: HeldConnect,
        socket: Option<Rc<Outbox>>,
        draining: bool,
        out: &mut JsonArray,
    ) {
        let hold = if draining { Duration::ZERO } else { h.hold };
        let mut reply = h.reply.clone();
        reply.push_raw("advice", &h.advice);
        let reply = encode(&reply);
        let now = self.now;
        let socket = socket.map(|s| (s, &reply[..]));
        let outcome = self.engines[w].connect(mount, &h.client_id, hold, socket, now);
        let msgs = match outcome {
            ConnectOutcome::OnSocket => return,
            ConnectOutcome::Now(msgs) => msgs,
            ConnectOutcome::Held(signal, pending) => {
                if !signal.is_set() {
                    self.advance(hold);
                }
                assert!(signal.is_set(), "a held connect outlived its deadline");
                self.engines[w].finish_connect(mount, &h.client_id, pending)
            }
        };
        out.push_raw(&reply);
        for msg in &msgs {
            out.push_raw(msg);
        }
    }

    /// `Node::publish` and `route`: to the owner, then to every interested worker.
    fn publish(&mut self, mount: usize, channel: &str, msg: Bytes) {
        let to = owner(channel, WORKERS);
        let targets = self.engines[to].interested(mount, channel);
        for w in targets.iter() {
            self.engines[w].deliver(mount, channel, &msg);
        }
    }

    /// `Node::dispatch_effects`: interest changes to the owner (channels) or all (patterns).
    fn dispatch_effects(&mut self, from: usize) {
        for e in self.engines[from].take_effects() {
            let targets = if bayeux::channel::is_pattern(&e.channel) {
                (0..WORKERS).collect()
            } else {
                vec![owner(&e.channel, WORKERS)]
            };
            for to in targets {
                self.engines[to].apply_interest(e.mount, &e.channel, from, e.on);
            }
        }
    }

    /// Lets time pass: the timers of every worker run (`Node::run_timers`).
    fn advance(&mut self, by: Duration) {
        self.now += by;
        for w in 0..WORKERS {
            self.engines[w].tick(self.now);
            self.dispatch_effects(w);
        }
    }

    /// Takes what the engines queued on push sockets and checks every frame; a socket asked
    /// to close is closed, as its writer task would.
    fn flush_sockets(&mut self) {
        for w in 0..WORKERS {
            for out in [self.websockets[w].clone(), self.streams[w].clone()] {
                let mut frames = Vec::new();
                out.drain(&mut frames);
                for frame in &frames {
                    check_frame(out.kind, frame);
                }
                if out.closing().is_some() {
                    self.close_socket(w, out.kind);
                }
            }
        }
    }

    fn close_sockets(&mut self, w: usize) {
        self.close_socket(w, OutboxKind::WebSocket);
        self.close_socket(w, OutboxKind::EventSource);
    }

    fn close_socket(&mut self, w: usize, kind: OutboxKind) {
        let fresh = self.socket(w, kind);
        let old = match kind {
            OutboxKind::WebSocket => std::mem::replace(&mut self.websockets[w], fresh),
            OutboxKind::EventSource => std::mem::replace(&mut self.streams[w], fresh),
        };
        self.engines[w].socket_gone(&old);
        assert!(!self.engines[w].is_bound(&old));
    }

    /// Once every client has expired and every effect is applied, nothing may be left.
    fn expire_everything(&mut self) {
        self.advance(3 * TIMEOUT);
        self.flush_sockets();
        for (w, engine) in self.engines.iter().enumerate() {
            for mount in 0..MOUNTS {
                assert_eq!(
                    engine.table_sizes(mount),
                    (0, 0, 0, 0),
                    "worker {w} mount {mount}"
                );
                assert_eq!(engine.queued[mount], 0, "queued count, worker {w}");
            }
            for out in self.websockets.iter().chain(&self.streams) {
                assert!(!engine.is_bound(out));
            }
        }
    }

    /// Replaces each one-digit clientId with the client it stands for, in a body re-encoded
    /// from a tree parse (the batch parse's tape cannot be changed).
    fn resolve_aliases(&self, body: Vec<u8>) -> Vec<u8> {
        if self.clients.is_empty() || json::depth_exceeds(&body, json::MAX_DEPTH) {
            return body;
        }
        let mut copy = body.clone();
        let Ok(mut tree) = simd_json::to_borrowed_value(&mut copy) else {
            return body;
        };
        let msgs = match &mut tree {
            BorrowedValue::Array(items) => &mut items[..],
            other => std::slice::from_mut(other),
        };
        for msg in msgs {
            let BorrowedValue::Object(fields) = msg else {
                continue;
            };
            let Some(value) = fields.get_mut("clientId") else {
                continue;
            };
            let digit = match value {
                BorrowedValue::String(s) if s.len() == 1 => s.as_bytes()[0].wrapping_sub(b'0'),
                _ => continue,
            };
            if digit < 10 {
                let newest = self.clients.len() - 1;
                let client = &self.clients[newest - usize::from(digit) % self.clients.len()];
                *value = BorrowedValue::String(Cow::Owned(client.clone()));
            }
        }
        tree.encode().into_bytes()
    }
}

/// The clientId `bayeux::scan::first_client_id` finds on the raw body, as the parsed batch has it.
fn first_client_id<'i>(msgs: &json::Batch<'i>) -> Option<&'i str> {
    msgs.iter().find_map(|m| json::str_field(m, "clientId"))
}

fn encode(reply: &Reply) -> Vec<u8> {
    let mut out = Vec::new();
    reply.write(&mut out);
    out
}

/// Node's decoding of a request body (`bayeux_http::lossy`).
fn lossy(bytes: &[u8]) -> Vec<u8> {
    String::from_utf8_lossy(bytes).into_owned().into_bytes()
}

/// Parses `bytes` with a strict parser; they must be a JSON array. Returns its length.
fn valid_json_array(bytes: &[u8]) -> usize {
    match serde_json::from_slice::<serde_json::Value>(bytes) {
        Ok(serde_json::Value::Array(items)) => items.len(),
        other => panic!(
            "not a JSON array: {other:?}\n{}",
            String::from_utf8_lossy(bytes)
        ),
    }
}

/// A frame the engine pushed: an unmasked text frame, or one single-line `data:` event, each
/// carrying a JSON array of one message.
fn check_frame(kind: OutboxKind, frame: &[u8]) {
    let payload = match kind {
        OutboxKind::WebSocket => {
            assert_eq!(frame[0], 0x81, "not a final text frame");
            let (len, at) = match frame[1] {
                126 => (usize::from(u16::from_be_bytes([frame[2], frame[3]])), 4),
                127 => (
                    u64::from_be_bytes(frame[2..10].try_into().unwrap()) as usize,
                    10,
                ),
                n => (usize::from(n), 2),
            };
            assert_eq!(frame.len(), at + len, "frame length");
            &frame[at..]
        }
        OutboxKind::EventSource => {
            let event = frame
                .strip_prefix(b"data: ")
                .expect("an event starts with data:");
            let json = event
                .strip_suffix(b"\r\n\r\n")
                .expect("an event ends with a blank line");
            assert!(
                !json.iter().any(|&b| b == b'\r' || b == b'\n'),
                "a multi-line event"
            );
            json
        }
    };
    assert_eq!(valid_json_array(payload), 1);
}
