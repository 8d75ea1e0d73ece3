//! Delivery on this worker: a publish's frames, made once per transport when first needed and
//! shared by every local subscriber (the last one moves it), and the per-channel lookups of
//! who is subscribed here.

use super::*;

pub(super) fn ws_frame(msg: &Bytes) -> Bytes {
    let payload = msg.len() + 2;
    let mut out = Vec::with_capacity(crate::websocket::frame::header_len(payload) + payload);
    crate::websocket::frame::text_header(payload, &mut out);
    out.push(b'[');
    out.extend_from_slice(msg);
    out.push(b']');
    exact(out)
}

pub(super) fn es_frame(msg: &Bytes) -> Bytes {
    const OPEN: &[u8] = b"data: [";
    const CLOSE: &[u8] = b"]\r\n\r\n";
    let mut out = Vec::with_capacity(OPEN.len() + msg.len() + CLOSE.len());
    out.extend_from_slice(OPEN);
    out.extend_from_slice(msg);
    out.extend_from_slice(CLOSE);
    exact(out)
}

/// A frame built in a buffer of exactly its size, which `Bytes` takes without allocating a
/// shared header (it makes one only if the frame is cloned).
pub(super) fn exact(frame: Vec<u8>) -> Bytes {
    debug_assert_eq!(frame.len(), frame.capacity());
    Bytes::from(frame)
}

/// One publish being delivered on this worker: the frames made for it so far and its counts.
pub(super) struct Delivery<'m> {
    pub(super) seq: u64,
    /// Its log position (packed; 0: none, as with the memory engine).
    pub(super) pos: u64,
    pub(super) msg: &'m Bytes,
    /// The frame for WebSockets and for EventSource streams, each made once, when first needed.
    pub(super) ws: Option<Bytes>,
    pub(super) es: Option<Bytes>,
    /// The socket of each kind whose push waits for the next one, so that the last push moves
    /// the frame instead of cloning it: a frame with a single subscriber is never shared.
    pub(super) ws_last: Option<Rc<Outbox>>,
    pub(super) es_last: Option<Rc<Outbox>>,
    pub(super) count: usize,
    pub(super) pushed: usize,
    pub(super) dropped: u64,
    pub(super) queued: u64,
}

impl Delivery<'_> {
    /// Hands the message to the subscribers of one key that have not had it yet.
    fn to(&mut self, subs: &Subscribers, sessions: &mut Slab<Session>) {
        subs.for_each(|slot| {
            let Some(session) = sessions.get_mut(slot as usize) else {
                return;
            };
            if session.last_seq == self.seq {
                return;
            }
            session.last_seq = self.seq;
            self.count += 1;
            if session.socket.as_ref().is_some_and(|out| out.aborted()) {
                // Cut (a slow consumer): from now on the session queues, behind what the
                // socket never wrote.
                let (queued, dropped) = unbind_cut(session);
                self.queued += queued;
                self.dropped += dropped;
            }
            if let Some(out) = &session.socket {
                let (frame, last) = match out.kind {
                    OutboxKind::WebSocket => (
                        self.ws.get_or_insert_with(|| ws_frame(self.msg)),
                        &mut self.ws_last,
                    ),
                    OutboxKind::EventSource => (
                        self.es.get_or_insert_with(|| es_frame(self.msg)),
                        &mut self.es_last,
                    ),
                };
                if let Some(earlier) = last.replace(out.clone()) {
                    earlier.push_delivery(frame.clone());
                }
                self.pushed += 1;
                return;
            }
            if session.enqueue(self.msg.clone(), SESSION_QUEUE_LIMIT) {
                self.dropped += 1;
            } else {
                self.queued += 1;
            }
            session.mark_unconfirmed(self.pos);
            if let Some(Pending {
                target: Target::Http(signal),
                ..
            }) = &session.pending
            {
                signal.notify();
                self.pushed += 1;
            }
        });
    }

    /// Makes the pushes held back for the last socket of each kind.
    fn finish(&mut self) {
        if let (Some(out), Some(frame)) = (self.ws_last.take(), self.ws.take()) {
            out.push_delivery(frame);
        }
        if let (Some(out), Some(frame)) = (self.es_last.take(), self.es.take()) {
            out.push_delivery(frame);
        }
    }
}

/// The message a delivery frame (`ws_frame`, `es_frame`) carries.
pub(super) fn unframe(kind: OutboxKind, frame: &Bytes) -> Option<Bytes> {
    let (open, close) = match kind {
        OutboxKind::WebSocket => (crate::websocket::frame::server_header_len(frame)? + 1, 1),
        OutboxKind::EventSource => (b"data: [".len(), b"]\r\n\r\n".len()),
    };
    (frame.len() >= open + close).then(|| frame.slice(open..frame.len() - close))
}

/// The frame carrying `json` (a reply array) on a socket of this kind.
pub fn frame_for(kind: OutboxKind, json: &[u8]) -> Bytes {
    match kind {
        OutboxKind::WebSocket => {
            let mut out = BytesMut::with_capacity(json.len() + 10);
            crate::websocket::frame::text_header(json.len(), &mut out);
            out.extend_from_slice(json);
            out.freeze()
        }
        OutboxKind::EventSource => {
            let mut out = BytesMut::with_capacity(json.len() + 12);
            out.extend_from_slice(b"data: ");
            out.extend_from_slice(json);
            out.extend_from_slice(b"\r\n\r\n");
            out.freeze()
        }
    }
}

pub(super) fn single(msg: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(msg.len() + 2);
    v.push(b'[');
    v.extend_from_slice(msg);
    v.push(b']');
    v
}

impl Engine {
    /// Delivers a publish to every local subscriber of the channel, once per client.
    pub fn deliver(&mut self, mount: usize, name: &str, msg: &Bytes) -> usize {
        self.deliver_at(mount, name, msg, 0)
    }

    /// [`Engine::deliver`] for an entry of the mount's log at `pos` (packed): the sessions
    /// it reaches keep the oldest such position their client may not have received.
    pub fn deliver_at(&mut self, mount: usize, name: &str, msg: &Bytes, pos: u64) -> usize {
        self.seq += 1;
        let mut run = Delivery {
            seq: self.seq,
            pos,
            msg,
            ws: None,
            es: None,
            ws_last: None,
            es_last: None,
            count: 0,
            pushed: 0,
            dropped: 0,
            queued: 0,
        };
        let m = &mut self.mounts[mount];
        if let Some(subs) = m.local.get(name) {
            run.to(subs, &mut m.sessions);
        }
        if m.local_patterns > 0 {
            for p in channel::patterns(name) {
                if let Some(subs) = m.local.get(p.write_into(&mut self.key)) {
                    run.to(subs, &mut m.sessions);
                }
            }
        }
        run.finish();
        self.dropped[mount] += run.dropped;
        self.queued[mount] += run.queued;
        self.pushed = run.pushed;
        run.count
    }

    /// How many of this worker's sessions a publish on `name` would reach (exact and wildcard
    /// subscribers, each once): walks that channel's subscribers only, never every session.
    pub fn presence(&self, mount: usize, name: &str) -> usize {
        let m = &self.mounts[mount];
        let exact = m.local.get(name);
        if m.local_patterns == 0 {
            return exact.map_or(0, |subs| {
                let mut n = 0;
                subs.for_each(|_| n += 1);
                n
            });
        }
        let mut seen = std::collections::HashSet::new();
        if let Some(subs) = exact {
            subs.for_each(|s| {
                seen.insert(s);
            });
        }
        let mut key = String::new();
        for p in channel::patterns(name) {
            if let Some(subs) = m.local.get(p.write_into(&mut key)) {
                subs.for_each(|s| {
                    seen.insert(s);
                });
            }
        }
        seen.len()
    }
}
