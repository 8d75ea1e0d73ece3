//! A worker's side of sessions moving between processes (the Redis engine). A request naming
//! a clientId this process does not hold waits while the session moves here
//! ([`Node::fetch`]); another process's request for one of ours takes it out of the engine
//! ([`Node::depart`]). The cut between the two owners is the link's: see
//! [`super::cluster::Directory`].

use super::node::Node;
use super::{Ask, Handover, Moved, Relay, Via};
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

    /// Waits while the session `client_id` moves here from the process that has it, or, with
    /// `relay` (the request, when it is not a push socket's), until the owner answers it
    /// because it keeps the session (its EventSource stream is there). Requests for one
    /// session share one move.
    pub(super) async fn fetch(
        self: &Rc<Self>,
        mount: usize,
        client_id: String,
        relay: Option<Relay>,
    ) -> Moved {
        let Some(cluster) = self.cluster.get() else {
            return Moved::Gone;
        };
        let key = (mount, Box::from(client_id.as_str()));
        loop {
            let behind = {
                let mut arriving = self.arriving.borrow_mut();
                match arriving.get_mut(&key) {
                    Some(waiting) => {
                        let (tx, rx) = oneshot::channel();
                        waiting.push(tx);
                        Some(rx)
                    }
                    None => {
                        arriving.insert(key.clone(), Vec::new());
                        None
                    }
                }
            };
            let Some(rx) = behind else { break };
            match rx.await {
                Ok(Some(true)) if self.engine.borrow().exists(mount, &client_id) => {
                    return Moved::Here;
                }
                Ok(Some(_)) => return Moved::Gone,
                // The owner answered the first request alone: ask for this one.
                Ok(None) | Err(_) => continue,
            }
        }
        let (tx, rx) = oneshot::channel();
        cluster.fetch(self.me, mount, &client_id, relay, tx);
        let moved = rx.await.unwrap_or(Moved::Gone);
        // The Arrive envelope, queued ahead of the answer, has been handled by now.
        let told = match moved {
            Moved::Here => Some(true),
            Moved::Gone => Some(false),
            Moved::Answered(_) => None,
        };
        for waiting in self.arriving.borrow_mut().remove(&key).unwrap_or_default() {
            let _ = waiting.send(told);
        }
        match moved {
            Moved::Here if !self.engine.borrow().exists(mount, &client_id) => Moved::Gone,
            other => other,
        }
    }

    /// For a push socket (an EventSource stream) naming a session another process holds:
    /// moves the session here, since the socket's deliveries must come from this process.
    /// Whether the session is here.
    pub async fn take_session(self: &Rc<Self>, mount: usize, client_id: &str) -> bool {
        if self.cluster.get().is_none() || self.engine.borrow().exists(mount, client_id) {
            return self.engine.borrow().exists(mount, client_id);
        }
        self.fetch(mount, client_id.to_owned(), None).await == Moved::Here
    }

    /// Another process asks for one of this worker's sessions: it leaves, with its
    /// subscriptions and undelivered messages, and the cluster takes them to the asker.
    pub(super) fn depart(self: &Rc<Self>, ask: Ask) {
        let Some(cluster) = self.cluster.get() else {
            return;
        };
        // Its EventSource stream is here: moving the session would cut the stream (and the
        // client's next request would move it back), so this worker answers the request.
        if let Some(relay) = ask.relay.clone()
            && self.engine.borrow().has_stream(ask.mount, &ask.client_id)
        {
            let node = self.clone();
            monoio::spawn(async move {
                let reply = node
                    .process(ask.mount, relay.body.to_vec(), Via::Http, relay.peer)
                    .await
                    .unwrap_or_else(|_| b"[]".to_vec());
                if let Some(cluster) = node.cluster.get() {
                    cluster.answered(ask, reply);
                }
            });
            return;
        }
        let floor = self.checkpoint_floor(ask.mount);
        let left = self
            .engine
            .borrow_mut()
            .depart(ask.mount, &ask.client_id, floor);
        tracing::debug!(
            client_id = %ask.client_id,
            to = %format_args!("{:016x}", ask.from),
            cut = %ask.cut,
            here = left.is_some(),
            queued = left.as_ref().map_or(0, |l| l.queue.len()),
            "session asked for: leaves"
        );
        self.dispatch_effects(None);
        self.release_ended();
        let session = left.map(|d| Handover {
            subscriptions: d.subscriptions,
            queue: d.queue,
            since: d.since,
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
            let floor = self.checkpoint_floor(mount);
            let left = self.engine.borrow_mut().depart(mount, &client_id, floor);
            if let Some(d) = left {
                let session = Handover {
                    subscriptions: d.subscriptions,
                    queue: d.queue,
                    since: d.since,
                };
                cluster.parked(mount, &client_id, cut, session, expires_ms);
            }
        }
        self.dispatch_effects(None);
        self.release_ended();
        self.refresh_gauges();
    }

    /// Redis is back: every session here is written to the directory again.
    pub(super) fn resync(self: &Rc<Self>) {
        let Some(cluster) = self.cluster.get() else {
            return;
        };
        for mount in 0..self.settings.mounts.len() {
            let entries = self.engine.borrow().directory_entries(mount);
            for (client_id, subscriptions) in entries {
                cluster.resync(self.me, mount, &client_id, subscriptions);
            }
        }
    }

    /// Another process took this session while this one was cut off from Redis: this copy
    /// goes (the directory entry is the other's, so it stays).
    pub(super) fn forget(self: &Rc<Self>, mount: usize, client_id: &str) {
        tracing::debug!(%client_id, "session owned elsewhere now: dropped here");
        let _ = self.engine.borrow_mut().depart(mount, client_id, 0);
        self.dispatch_effects(None);
        self.release_ended();
    }

    /// A session moving in: installed with its queue and then the messages of the log it
    /// missed; `done` lets the request that asked for it go on.
    pub(super) fn arrive(
        self: &Rc<Self>,
        mount: usize,
        client_id: &str,
        session: Handover,
        replay: Vec<Bytes>,
        done: super::Done,
    ) {
        let Handover {
            subscriptions,
            mut queue,
            since,
        } = session;
        let (queued, replayed) = (queue.len(), replay.len());
        queue.extend(replay);
        let here = self.engine.borrow_mut().arrive(
            mount,
            client_id,
            &subscriptions,
            queue,
            since,
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
        let _ = done.send(if here { Moved::Here } else { Moved::Gone });
    }

    /// The position of this worker's last checkpoint on `mount` (0: none yet): every push
    /// made before it came after it.
    fn checkpoint_floor(&self, mount: usize) -> u64 {
        self.last_checkpoint
            .borrow()
            .get(mount)
            .copied()
            .unwrap_or(0)
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
