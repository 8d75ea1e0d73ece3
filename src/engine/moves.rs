//! Sessions moving between processes (the Redis engine): one leaves its worker with its
//! subscriptions and undelivered messages, and arrives on another process's worker under the
//! same clientId. Which messages each side delivers is the link's business (the cut); here a
//! session only leaves and arrives whole.

use super::{Engine, SESSION_QUEUE_LIMIT, Session, unbind_cut};
use crate::bayeux::id;
use bytes::Bytes;
use std::time::Instant;

/// A session that left ([`Engine::depart`]).
#[derive(Debug, PartialEq)]
pub struct Departed {
    pub subscriptions: Vec<String>,
    pub queue: Vec<Bytes>,
    /// A log position (packed; 0: none) at or before every message of `queue`.
    pub since: u64,
}

impl Engine {
    /// Removes a session that moves to another process; None when it is not here. Returns
    /// its subscriptions, the messages it has not been sent, oldest first, those a bound
    /// socket had not written yet included, and a log position (packed; 0: none) at or
    /// before every one of them: its unconfirmed position, or `floor` (the last checkpoint's
    /// position) while its socket had pushes to write. A held connect is answered now (with
    /// nothing: its messages move) and a bound socket is closed, as on a disconnect.
    pub fn depart(&mut self, mount: usize, client_id: &str, floor: u64) -> Option<Departed> {
        let slot = self.slot(mount, client_id)?;
        let session = &mut self.mounts[mount].sessions[slot];
        let socket = session.socket.clone();
        let mut since = session.unconfirmed();
        if floor != 0 && socket.as_ref().is_some_and(|o| !o.is_idle()) {
            since = if since == 0 { floor } else { since.min(floor) };
        }
        let (queued, dropped) = unbind_cut(session);
        self.queued[mount] += queued;
        self.dropped[mount] += dropped;
        let subscriptions = (session.subscriptions.iter())
            .map(|s| s.to_string())
            .collect();
        let queue = self.take_queue(mount, client_id);
        self.destroy(mount, client_id);
        if let Some(out) = socket {
            out.close_after_flush(1000);
        }
        Some(Departed {
            subscriptions,
            queue,
            since,
        })
    }

    /// Whether the session has an open EventSource stream here (its deliveries must come from
    /// this process, and its client's other requests come by plain HTTP).
    pub fn has_stream(&self, mount: usize, client_id: &str) -> bool {
        let Some(slot) = self.slot(mount, client_id) else {
            return false;
        };
        let session = &self.mounts[mount].sessions[slot];
        (session.socket.as_ref())
            .is_some_and(|o| o.kind == super::OutboxKind::EventSource && o.closing().is_none())
    }

    /// Every session on `mount` with its subscriptions (to write the directory again).
    pub fn directory_entries(&self, mount: usize) -> Vec<(String, Vec<String>)> {
        (self.mounts.get(mount).into_iter())
            .flat_map(|m| m.sessions.iter())
            .map(|(_, s)| {
                let subs = s.subscriptions.iter().map(|c| c.to_string()).collect();
                (s.client_id().to_owned(), subs)
            })
            .collect()
    }

    /// The clientIds of every session on `mount` (for a process that leaves for good).
    pub fn client_ids(&self, mount: usize) -> Vec<String> {
        (self.mounts.get(mount).into_iter())
            .flat_map(|m| m.sessions.iter().map(|(_, s)| s.client_id().to_owned()))
            .collect()
    }

    /// Installs a session moving in from another process, under its clientId, with its
    /// subscriptions and the messages waiting for it; false (nothing done) when the id is
    /// not one of Bayou's or a session here already has it (or its hash).
    pub fn arrive(
        &mut self,
        mount: usize,
        client_id: &str,
        subscriptions: &[String],
        queue: Vec<Bytes>,
        since: u64,
        now: Instant,
    ) -> bool {
        let well_formed =
            client_id.len() == id::LEN && client_id.bytes().all(|b| b.is_ascii_alphanumeric());
        let hash = id::hash(self.ids, client_id);
        let Some(m) = self.mounts.get_mut(mount) else {
            return false;
        };
        if !well_formed || m.by_id.contains_key(&hash) {
            return false;
        }
        let slot = m.sessions.insert(Session::new(client_id, 0));
        m.by_id.insert(hash, slot as u32);
        self.ping(mount, slot, now);
        self.subscribe(mount, client_id, subscriptions);
        let session = &mut self.mounts[mount].sessions[slot];
        if !queue.is_empty() {
            // Unconfirmed here too: a crash of this process replays from there.
            session.mark_unconfirmed(since);
        }
        for msg in queue {
            if session.enqueue(msg, SESSION_QUEUE_LIMIT) {
                self.dropped[mount] += 1;
            } else {
                self.queued[mount] += 1;
            }
        }
        true
    }

    /// The oldest log position (packed) on `mount` that a client here may not have received,
    /// or None: the oldest unconfirmed queued message, or `floor` (a position every push
    /// made before it came after) while a socket still has pushes to write.
    pub fn oldest_unconfirmed(&self, mount: usize, floor: u64) -> Option<u64> {
        let m = self.mounts.get(mount)?;
        let mut oldest: Option<u64> = None;
        for (_, s) in m.sessions.iter() {
            let mut pos = s.unconfirmed();
            if floor != 0 && s.socket.as_ref().is_some_and(|o| !o.is_idle()) {
                pos = if pos == 0 { floor } else { pos.min(floor) };
            }
            if pos != 0 {
                oldest = Some(oldest.map_or(pos, |o| o.min(pos)));
            }
        }
        oldest
    }

    /// From now on, sessions that expire are listed for [`Engine::take_closed`] (the
    /// directory removes them); the memory engine keeps no such list.
    pub fn track_closed(&mut self) {
        self.closed.get_or_insert_with(Vec::new);
    }

    /// The sessions that expired since the last call, by mount.
    pub fn take_closed(&mut self) -> Vec<(usize, String)> {
        self.closed.as_mut().map(std::mem::take).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn engine() -> Engine {
        Engine::new(0, 2, 1, Duration::from_secs(30))
    }

    #[test]
    fn a_session_leaves_with_its_subscriptions_and_queue_and_arrives_whole() {
        let now = Instant::now();
        let mut a = engine();
        let cid = a.handshake(0, now);
        a.subscribe(0, &cid, &["/a".into(), "/p/*".into()]);
        a.take_effects();
        a.deliver(0, "/a", &Bytes::from_static(b"1"));
        a.deliver(0, "/p/x", &Bytes::from_static(b"2"));
        let Departed {
            subscriptions: subs,
            queue,
            since,
        } = a.depart(0, &cid, 0).expect("here");
        assert_eq!(since, 0, "delivered with no log position (memory-style)");
        assert_eq!(subs, ["/a", "/p/*"]);
        assert_eq!(queue, [Bytes::from_static(b"1"), Bytes::from_static(b"2")]);
        assert!(!a.exists(0, &cid));
        assert_eq!(a.table_sizes(0).1, 0, "its subscriptions went with it");
        let off: Vec<bool> = a.take_effects().iter().map(|e| e.on).collect();
        assert_eq!(off, [false, false]);
        assert!(a.depart(0, &cid, 0).is_none(), "gone");

        let mut b = Engine::new(1, 2, 1, Duration::from_secs(30));
        assert!(b.arrive(0, &cid, &subs, queue, 7, now));
        assert_eq!(
            b.oldest_unconfirmed(0, 0),
            Some(7),
            "what arrived counts from its position"
        );
        assert!(b.exists(0, &cid));
        assert_eq!(b.take_effects().len(), 2, "its interest turns on here");
        assert!(
            !b.arrive(0, &cid, &subs, Vec::new(), 0, now),
            "already here"
        );
        b.deliver(0, "/p/y", &Bytes::from_static(b"3"));
        assert_eq!(b.take_queue(0, &cid), [&b"1"[..], b"2", b"3"]);
    }

    #[test]
    fn the_oldest_unconfirmed_position_holds_until_a_connect_confirms_it() {
        let now = Instant::now();
        let mut e = engine();
        let (a, b) = (e.handshake(0, now), e.handshake(0, now));
        e.subscribe(0, &a, &["/a".into()]);
        e.subscribe(0, &b, &["/b".into()]);
        assert_eq!(e.oldest_unconfirmed(0, 0), None);
        e.deliver_at(0, "/a", &Bytes::from_static(b"1"), 10);
        e.deliver_at(0, "/b", &Bytes::from_static(b"2"), 20);
        e.deliver_at(0, "/a", &Bytes::from_static(b"3"), 30);
        assert_eq!(e.oldest_unconfirmed(0, 0), Some(10));
        // The connect that takes a's messages does not confirm them; the next one does.
        let zero = std::time::Duration::ZERO;
        let _ = e.connect(0, &a, zero, None, now);
        assert_eq!(e.oldest_unconfirmed(0, 0), Some(10));
        let _ = e.connect(0, &a, zero, None, now);
        assert_eq!(e.oldest_unconfirmed(0, 0), Some(20), "b's is left");
        e.deliver(0, "/b", &Bytes::from_static(b"4"));
        let _ = e.connect(0, &b, zero, None, now);
        let _ = e.connect(0, &b, zero, None, now);
        assert_eq!(e.oldest_unconfirmed(0, 0), None);
    }

    #[test]
    fn a_forged_id_does_not_arrive() {
        let mut e = engine();
        assert!(!e.arrive(0, "short", &[], Vec::new(), 0, Instant::now()));
        assert!(!e.arrive(0, &"é".repeat(16), &[], Vec::new(), 0, Instant::now()));
        assert!(!e.arrive(7, &"a".repeat(id::LEN), &[], Vec::new(), 0, Instant::now()));
    }

    #[test]
    fn expired_sessions_are_listed_only_when_asked_for() {
        let now = Instant::now();
        let mut e = engine();
        let a = e.handshake(0, now);
        e.tick(now + Duration::from_secs(61));
        assert!(!e.exists(0, &a));
        assert!(e.take_closed().is_empty(), "not tracked");
        e.track_closed();
        let b = e.handshake(0, now + Duration::from_secs(61));
        let c = e.handshake(0, now + Duration::from_secs(61));
        e.destroy(0, &c);
        e.tick(now + Duration::from_secs(200));
        assert_eq!(
            e.take_closed(),
            [(0, b)],
            "expiry only: a disconnect is the router's"
        );
    }
}
