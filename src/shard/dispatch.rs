//! The mesh receive loop and what it does with each envelope: route a publish to the workers
//! interested in its channel, deliver here, apply interest changes, and the cluster's letters.

use super::batch::LazyAck;
use super::node::{Node, Via};
use super::spill::yield_now;
use super::{Envelope, Until, owner};
use crate::bayeux;
use crate::metrics;
use bytes::Bytes;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

impl Node {
    /// Runs the mesh receiver for this worker forever. While congested it takes only the
    /// envelopes whose handling sends nothing (`Class::Work`), so its deliveries drain first.
    pub async fn run_mesh(self: Rc<Self>) {
        loop {
            let node = self.clone();
            let may_route = || !node.congested();
            let handled = self
                .mesh
                .drain(self.me, 256, may_route, |env| node.handle(env));
            if handled == 0 {
                let routes = !self.congested();
                self.mesh.ready(self.me, routes).await;
            } else {
                yield_now().await;
            }
        }
    }

    pub(super) fn handle(self: &Rc<Self>, env: Envelope) {
        match env {
            Envelope::Publish {
                mount,
                channel,
                msg,
                ack,
                at,
            } => self.route(mount, channel, msg, ack.map(LazyAck::of).as_ref(), at),
            Envelope::Deliver {
                mount,
                channel,
                msg,
                ack: _ack,
                at,
                pos,
            } => {
                self.deliver_here(mount, &channel, &msg, at, pos);
            }
            Envelope::Checkpoint { mount, pos } => self.checkpoint(mount, pos),
            Envelope::Interest {
                mount,
                channel,
                worker,
                on,
                ack,
            } => {
                let ack = ack.map(LazyAck::of);
                self.apply_interest(mount, &channel, worker, on, ack.as_ref());
            }
            Envelope::Batch {
                mount,
                body,
                peer,
                reply,
            } => {
                let node = self.clone();
                monoio::spawn(async move {
                    let out = node.process_here(mount, body, Via::Http, peer).await;
                    let _ = reply.send(out);
                });
            }
            Envelope::Depart { ask } => self.depart(*ask),
            Envelope::Leave { mount, cut } => self.leave(mount, &cut),
            Envelope::Resync => self.resync(),
            Envelope::Presence {
                mount,
                channel,
                reply,
            } => {
                let n = self.engine.borrow().presence(mount, &channel);
                let _ = reply.try_send(n);
            }
            Envelope::Forget { mount, client_id } => self.forget(mount, &client_id),
            Envelope::Arrive {
                mount,
                client_id,
                session,
                replay,
                done,
            } => self.arrive(mount, &client_id, session, replay, done),
            Envelope::Adopt { fd, mount, kind } => {
                if let Some(adopt) = self.adopt.borrow().as_ref() {
                    adopt(self, fd, mount, kind);
                }
            }
        }
    }

    /// Records a worker's interest change here and, when the process's interest as a whole
    /// turns on or off, tells the cluster: the owner does it for an exact channel, worker 0
    /// for a pattern (patterns are replicated on every worker).
    pub(super) fn apply_interest(
        &self,
        mount: usize,
        channel: &str,
        worker: usize,
        on: bool,
        ack: Option<&LazyAck>,
    ) {
        let flipped = self
            .engine
            .borrow_mut()
            .apply_interest(mount, channel, worker, on);
        if flipped
            && (self.me == 0 || !bayeux::channel::is_pattern(channel))
            && let Some(cluster) = self.cluster.get()
        {
            cluster.interest(mount, channel, on, ack.map(LazyAck::get));
        }
    }

    pub(super) fn deliver_here(
        &self,
        mount: usize,
        channel: &str,
        msg: &Bytes,
        at: Instant,
        pos: u64,
    ) {
        let (n, pushed) = {
            let mut engine = self.engine.borrow_mut();
            let n = engine.deliver_at(mount, channel, msg, pos);
            (n, engine.pushed)
        };
        metrics::add(&self.my_stats().mounts[mount].deliveries, n as u64);
        if pushed > 0 {
            let mut since = self.unwritten_since.borrow_mut();
            if since[mount].is_none_or(|t| at < t) {
                since[mount] = Some(at);
            }
        }
    }

    /// Sends this worker's interest changes to the owners (channels) or everyone (patterns).
    pub(super) fn dispatch_effects(self: &Rc<Self>, ack: Option<&LazyAck>) {
        let effects = self.engine.borrow_mut().take_effects();
        for e in effects {
            let channel: Arc<str> = Arc::from(e.channel);
            let targets: Vec<usize> = if bayeux::channel::is_pattern(&channel) {
                (0..self.workers()).collect()
            } else {
                vec![owner(&channel, self.workers())]
            };
            for to in targets {
                if to == self.me {
                    let ack = if e.on { ack } else { None };
                    self.apply_interest(e.mount, &channel, self.me, e.on, ack);
                    continue;
                }
                let ack = if e.on { ack.map(LazyAck::get) } else { None };
                let env = Envelope::Interest {
                    mount: e.mount,
                    channel: channel.clone(),
                    worker: self.me,
                    on: e.on,
                    ack,
                };
                self.send(to, env);
            }
        }
    }

    /// Owner side of a publish: forward once to each interested worker.
    pub(super) fn route(
        self: &Rc<Self>,
        mount: usize,
        channel: Arc<str>,
        msg: Bytes,
        ack: Option<&LazyAck>,
        at: Instant,
    ) {
        let targets = self.engine.borrow().interested(mount, &channel);
        for w in targets.iter() {
            if w == self.me {
                self.deliver_here(mount, &channel, &msg, at, 0);
            } else {
                let env = Envelope::Deliver {
                    mount,
                    channel: channel.clone(),
                    msg: msg.clone(),
                    ack: ack.map(LazyAck::get),
                    at,
                    pos: 0,
                };
                self.send(w, env);
            }
        }
    }

    pub(super) fn publish(
        self: &Rc<Self>,
        mount: usize,
        channel: &str,
        msg: Bytes,
        ack: &LazyAck,
        until: Until,
    ) {
        let channel: Arc<str> = Arc::from(channel);
        // With a cluster that takes it, every process delivers it from the shared order, this
        // one included; the batch's reply waits until it is shared (or delivered here).
        if let Some(cluster) = self.cluster.get()
            && cluster.publish(self.me, mount, &channel, &msg, ack.get(), until)
        {
            return;
        }
        let to = owner(&channel, self.workers());
        let at = Instant::now();
        if to == self.me {
            self.route(mount, channel, msg, Some(ack), at);
        } else {
            self.send(
                to,
                Envelope::Publish {
                    mount,
                    channel,
                    msg,
                    ack: Some(ack.get()),
                    at,
                },
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::spill::yield_now;
    use super::super::testing::{handshake, nodes, post, run};
    use super::super::{Envelope, owner};

    fn subscribe(cid: &str, channel: &str) -> String {
        format!(
            r#"[{{"channel":"/meta/subscribe","clientId":"{cid}","subscription":"{channel}"}}]"#
        )
    }

    #[test]
    fn presence_counts_this_workers_subscribers_of_a_channel() {
        run(|| async {
            let nodes = nodes(1, &[]);
            let node = &nodes[0];
            for _ in 0..2 {
                let cid = handshake(node).await;
                assert_eq!(
                    post(node, &subscribe(&cid, "/a")).await[0]["successful"],
                    true
                );
            }
            let count = |channel: &str| {
                let (tx, rx) = std::sync::mpsc::sync_channel(1);
                let channel = channel.to_owned();
                node.handle(Envelope::Presence {
                    mount: 0,
                    channel,
                    reply: tx,
                });
                rx.try_recv().expect("answered at once")
            };
            assert_eq!((count("/a"), count("/b")), (2, 0));
        });
    }

    #[test]
    fn a_subscription_tells_the_channels_owner_and_waits_for_it() {
        run(|| async {
            let nodes = nodes(2, &[]);
            let a = nodes[0].clone();
            let channel = (0..)
                .map(|i| format!("/c/{i}"))
                .find(|c| owner(c, 2) == 1)
                .unwrap();
            let cid = handshake(&a).await;
            let body = subscribe(&cid, &channel);
            let reply = monoio::spawn(async move { post(&a, &body).await });
            // Worker 1 stands by: the interest change reaches its queue, and the reply waits
            // until it has been handled (here, taken and dropped).
            let mut told = None;
            for _ in 0..1000 {
                nodes[0].mesh.drain(
                    1,
                    16,
                    || true,
                    |env| {
                        if let Envelope::Interest {
                            channel,
                            worker,
                            on,
                            ..
                        } = env
                        {
                            told = Some((channel.to_string(), worker, on));
                        }
                    },
                );
                if told.is_some() {
                    break;
                }
                yield_now().await;
            }
            assert_eq!(told, Some((channel, 0, true)));
            assert_eq!(reply.await[0]["successful"], true);
        });
    }
}
