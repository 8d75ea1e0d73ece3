//! A worker's side of sessions moving between processes (the Redis engine). A request naming
//! a clientId this process does not hold waits while the session moves here
//! ([`Node::fetch`]); another process's request for one of ours takes it out of the engine
//! ([`Node::depart`]). The cut between the two owners is the link's: see
//! [`super::cluster::Directory`].

use super::router::Node;
use super::{Ask, Handover};
use crate::bayeux::{self, Kind};
use bytes::Bytes;
use futures::channel::oneshot;
use std::rc::Rc;
use std::time::Instant;

impl Node {
    /// The clientIds a batch names that no session here has (handshakes name none), each once.
    pub(super) fn elsewhere<'v, 'i: 'v>(
        &self,
        mount: usize,
        msgs: impl Iterator<Item = bayeux::json::Value<'v, 'i>>,
    ) -> Vec<String> {
        let engine = self.engine.borrow();
        let mut missing: Vec<String> = Vec::new();
        for msg in msgs {
            if bayeux::classify(msg) == Kind::Handshake {
                continue;
            }
            let Some(cid) = bayeux::json::str_field(msg, "clientId") else {
                continue;
            };
            if !engine.exists(mount, cid) && !missing.iter().any(|m| m == cid) {
                missing.push(cid.to_owned());
            }
        }
        missing
    }

    /// Waits while the session `client_id` moves here from the process that has it; returns
    /// whether it is here now. Requests for one session share one move.
    pub(super) async fn fetch(self: &Rc<Self>, mount: usize, client_id: String) -> bool {
        let Some(cluster) = self.cluster.get() else {
            return false;
        };
        let (tx, rx) = oneshot::channel();
        let key = (mount, Box::from(client_id.as_str()));
        let first = {
            let mut arriving = self.arriving.borrow_mut();
            match arriving.get_mut(&key) {
                Some(waiting) => {
                    waiting.push(tx);
                    false
                }
                None => {
                    arriving.insert(key.clone(), Vec::new());
                    cluster.fetch(self.me, mount, &client_id, tx);
                    true
                }
            }
        };
        let here = rx.await.unwrap_or(false);
        if first {
            // The Arrive envelope, queued ahead of the answer, has been handled by now.
            for waiting in self.arriving.borrow_mut().remove(&key).unwrap_or_default() {
                let _ = waiting.send(here);
            }
        }
        here && self.engine.borrow().exists(mount, &client_id)
    }

    /// Another process asks for one of this worker's sessions: it leaves, with its
    /// subscriptions and undelivered messages, and the cluster takes them to the asker.
    pub(super) fn depart(self: &Rc<Self>, ask: Ask) {
        let Some(cluster) = self.cluster.get() else {
            return;
        };
        let left = self.engine.borrow_mut().depart(ask.mount, &ask.client_id);
        tracing::debug!(
            client_id = %ask.client_id,
            to = %format_args!("{:016x}", ask.from),
            cut = %ask.cut,
            here = left.is_some(),
            queued = left.as_ref().map_or(0, |l| l.1.len()),
            "session asked for: leaves"
        );
        self.dispatch_effects(None);
        self.release_ended();
        let session = left.map(|(subscriptions, queue)| Handover {
            subscriptions,
            queue,
        });
        cluster.gave(ask, session);
    }

    /// The process leaves for good: every session of `mount` here is parked in the directory
    /// at `cut`, with its queue, for the process its client reaches next (no crash adoption,
    /// so nothing is replayed twice).
    pub(super) fn leave(self: &Rc<Self>, mount: usize, cut: &str) {
        let Some(cluster) = self.cluster.get() else {
            return;
        };
        let expires_ms = 2 * self.settings.policy(mount).timeout.as_millis() as u64;
        let ids = self.engine.borrow().client_ids(mount);
        for client_id in ids {
            let left = self.engine.borrow_mut().depart(mount, &client_id);
            if let Some((subscriptions, queue)) = left {
                let session = Handover {
                    subscriptions,
                    queue,
                };
                cluster.parked(mount, &client_id, cut, session, expires_ms);
            }
        }
        self.dispatch_effects(None);
        self.release_ended();
        self.refresh_gauges();
    }

    /// A session moving in: installed with its queue and then the messages of the log it
    /// missed; `done` lets the request that asked for it go on.
    pub(super) fn arrive(
        self: &Rc<Self>,
        mount: usize,
        client_id: &str,
        session: Handover,
        replay: Vec<Bytes>,
        done: oneshot::Sender<bool>,
    ) {
        let Handover {
            subscriptions,
            mut queue,
        } = session;
        let (queued, replayed) = (queue.len(), replay.len());
        queue.extend(replay);
        let here = self.engine.borrow_mut().arrive(
            mount,
            client_id,
            &subscriptions,
            queue,
            Instant::now(),
        );
        tracing::debug!(
            %client_id,
            installed = here,
            queued,
            replayed,
            "session arrived"
        );
        self.dispatch_effects(None);
        let _ = done.send(here);
    }

    /// The link's checkpoint: every entry up to `pos` reached this worker; answers with the
    /// oldest position a client here may still miss (a socket with pushes still to write
    /// counts from the previous checkpoint's position).
    pub(super) fn checkpoint(&self, mount: usize, pos: u64) {
        let Some(cluster) = self.cluster.get() else {
            return;
        };
        let Some(floor) = (self.last_checkpoint.borrow_mut().get_mut(mount))
            .map(|last| std::mem::replace(last, pos))
        else {
            return;
        };
        let oldest = self.engine.borrow().oldest_unconfirmed(mount, floor.max(1));
        let low = oldest.map_or(pos, |o| o.min(pos));
        cluster.checkpoint(self.me, mount, low);
    }

    /// Removes the directory entries of the sessions that expired here.
    pub(super) fn close_expired(&self) {
        let closed = self.engine.borrow_mut().take_closed();
        if let Some(cluster) = self.cluster.get() {
            for (mount, client_id) in closed {
                cluster.closed(mount, &client_id);
            }
        }
    }
}
