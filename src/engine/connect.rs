//! Connects and push streams: a connect answered now or held until a message or its timeout,
//! and the WebSocket or EventSource stream a session is bound to.

use super::delivery::{es_frame, single, ws_frame};
use super::*;

impl Engine {
    /// Handles a validated connect (spec 4.2 with the fixes of 11.1 to 11.3). `socket`: the
    /// push socket the connect came on and its encoded reply, which the engine writes there
    /// now or when the hold ends; an HTTP connect writes its own reply once it is answered.
    pub fn connect(
        &mut self,
        mount: usize,
        client_id: &str,
        hold: Duration,
        socket: Option<(Rc<Outbox>, &[u8])>,
        now: Instant,
    ) -> ConnectOutcome {
        let Some(slot) = self.slot(mount, client_id) else {
            return ConnectOutcome::Now(Vec::new());
        };
        self.ping(mount, slot, now);
        self.answer_pending(mount, slot);
        let session = &mut self.mounts[mount].sessions[slot];
        // A connect with nothing queued confirms what the previous reply carried.
        if !session.has_queue() && session.socket.as_ref().is_none_or(|s| s.is_idle()) {
            session.confirm();
        }
        if let Some((out, reply)) = socket {
            let rebind = session.socket.as_ref().map(|s| s.id) != Some(out.id);
            if let Some(old) = session.socket.replace(out.clone()) {
                old.binding.set(None);
            }
            out.binding.set(Some((mount as u32, slot as u32)));
            if rebind {
                let queue = session.take_queue();
                self.queued[mount] -= queue.len() as u64;
                for msg in queue {
                    out.push_delivery(match out.kind {
                        OutboxKind::WebSocket => ws_frame(&msg),
                        OutboxKind::EventSource => es_frame(&msg),
                    });
                }
            }
            if hold.is_zero() {
                out.push(frame_for(out.kind, &single(reply)));
                return ConnectOutcome::OnSocket;
            }
            self.next_pending += 1;
            let id = self.next_pending;
            session.pending = Some(Pending::socket(id, reply, client_id, out));
            let at = self.ms(now + hold);
            self.holds
                .push(Reverse((at, mount as u32, slot as u32, id)));
            return ConnectOutcome::OnSocket;
        }
        if hold.is_zero() || session.has_queue() {
            let queue = session.take_queue();
            self.queued[mount] -= queue.len() as u64;
            return ConnectOutcome::Now(queue.into());
        }
        self.next_pending += 1;
        let id = self.next_pending;
        let signal = Rc::new(Signal::default());
        session.pending = Some(Pending::http(id, signal.clone()));
        let at = self.ms(now + hold);
        self.holds
            .push(Reverse((at, mount as u32, slot as u32, id)));
        ConnectOutcome::Held(signal, id)
    }

    /// Takes the messages queued for a session (none for an unknown one), with no other
    /// effect: for a connect that must have them before a disconnect later in its batch.
    pub fn take_queue(&mut self, mount: usize, client_id: &str) -> Vec<Bytes> {
        let Some(slot) = self.slot(mount, client_id) else {
            return Vec::new();
        };
        let queue = self.mounts[mount].sessions[slot].take_queue();
        self.queued[mount] -= queue.len() as u64;
        queue.into()
    }

    /// Ends a held HTTP connect: the messages to send after its reply.
    pub fn finish_connect(&mut self, mount: usize, client_id: &str, pending: u64) -> Vec<Bytes> {
        let Some(slot) = self.slot(mount, client_id) else {
            return Vec::new();
        };
        let session = &mut self.mounts[mount].sessions[slot];
        if session
            .pending
            .as_ref()
            .is_some_and(|p| p.id == pending as u32)
        {
            session.pending = None;
        }
        let queue = session.take_queue();
        self.queued[mount] -= queue.len() as u64;
        queue.into()
    }

    /// Answers a waiting connect now (a newer connect, a disconnect, or its deadline).
    pub(super) fn answer_pending(&mut self, mount: usize, slot: usize) {
        let Some(session) = self.mounts[mount].sessions.get_mut(slot) else {
            return;
        };
        match session.pending.take() {
            // The waiting request collects the queue itself when it runs.
            Some(Pending {
                target: Target::Http(signal),
                ..
            }) => signal.notify(),
            Some(
                p @ Pending {
                    target: Target::Socket(_),
                    ..
                },
            ) => {
                let Target::Socket(out) = &p.target else {
                    return;
                };
                let reply = p.reply(session.client_id());
                out.push(frame_for(out.kind, &single(&reply)));
            }
            None => {}
        }
    }

    /// Answers every held HTTP connect now (the process is draining).
    pub fn answer_all_pending(&mut self) {
        for m in &mut self.mounts {
            for (_, s) in m.sessions.iter_mut() {
                if let Some(Pending {
                    target: Target::Http(signal),
                    ..
                }) = &s.pending
                {
                    signal.notify();
                    s.pending = None;
                }
            }
        }
    }

    /// Binds an EventSource stream to a client, if it exists (Faye binds without checking).
    pub fn bind_stream(&mut self, mount: usize, client_id: &str, out: Rc<Outbox>) {
        let Some(slot) = self.slot(mount, client_id) else {
            return;
        };
        let session = &mut self.mounts[mount].sessions[slot];
        let queue = session.take_queue();
        self.queued[mount] -= queue.len() as u64;
        for msg in queue {
            out.push_delivery(es_frame(&msg));
        }
        out.binding.set(Some((mount as u32, slot as u32)));
        if let Some(old) = session.socket.replace(out) {
            old.binding.set(None);
        }
    }

    /// Whether a push socket is bound to a session here.
    pub fn is_bound(&self, out: &Outbox) -> bool {
        out.binding.get().is_some()
    }

    /// A push socket closed: unbind it from its client, only if it is still the one bound
    /// (spec 11.4).
    pub fn socket_gone(&mut self, out: &Outbox) {
        let Some((mount, slot)) = out.binding.take() else {
            return;
        };
        let Some(session) = self.mounts[mount as usize].sessions.get_mut(slot as usize) else {
            return;
        };
        if session.socket.as_ref().is_some_and(|s| s.id == out.id) {
            let (queued, dropped) = unbind_cut(session);
            self.queued[mount as usize] += queued;
            self.dropped[mount as usize] += dropped;
            if matches!(
                session.pending,
                Some(Pending {
                    target: Target::Socket(_),
                    ..
                })
            ) {
                session.pending = None;
            }
        }
    }
}
