//! Running a batch on the worker of its sessions: each message in order as if it came alone,
//! with its completion made only when work crosses to another worker, and the batch's connects
//! answered last (spec section 3).

use super::hook::HOOK_RETRY_MS;
use super::node::{Node, Peer, Via};
use super::{Ack, AckDone, Moved, Relay, RequestBody, Until};
use crate::bayeux::json::{BodyError, JsonArray, Reply, parse_batch};
use crate::bayeux::{self, Kind, connect, disconnect, handshake};
use crate::engine::ConnectOutcome;
use crate::metrics;
use crate::policy::hook::Asked;
use bytes::Bytes;
use std::cell::{Cell, OnceCell};
use std::ops::ControlFlow;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// A batch's completion, made only when some of its work goes to another worker: a batch done
/// entirely here (a connect, a publish to this worker's own channel) allocates none.
#[derive(Default)]
pub(super) struct LazyAck {
    pub(super) ack: OnceCell<Ack>,
    pub(super) done: Cell<Option<AckDone>>,
}

impl LazyAck {
    /// An envelope's completion, already made by the worker that sent it.
    pub(super) fn of(ack: Ack) -> LazyAck {
        LazyAck {
            ack: OnceCell::from(ack),
            done: Cell::new(None),
        }
    }

    /// A clone to send with work that crosses to another worker.
    pub(super) fn get(&self) -> Ack {
        let ack = self.ack.get_or_init(|| {
            let (ack, done) = Ack::new();
            self.done.set(Some(done));
            ack
        });
        ack.clone()
    }

    /// Waits for the work sent so far, and starts afresh: what the batch sends next gets a
    /// new completion.
    pub(super) async fn settle(&mut self) {
        drop(self.ack.take());
        if let Some(done) = self.done.take() {
            done.await;
        }
    }

    /// Waits until every clone handed out has been dropped (the work they went with is done).
    pub(super) async fn wait(self) {
        let LazyAck { ack, done } = self;
        drop(ack);
        if let Some(done) = done.into_inner() {
            done.await;
        }
    }
}

/// A validated connect whose engine call waits until the rest of the batch is done.
pub(super) struct HeldConnect {
    pub(super) client_id: String,
    /// The reply without its advice, which is chosen when the connect is answered.
    pub(super) reply: Reply,
    /// Which of the mount's advices it gets.
    pub(super) eventsource: bool,
    pub(super) hold: Duration,
    /// What it took from the queue before a disconnect later in its batch ended the session
    /// (Faye hands a connect its messages when it is processed, and answers it last).
    pub(super) taken: Option<Vec<Bytes>>,
}

impl HeldConnect {
    /// Writes the reply as sent: with the connect's advice, or a retry pause while draining.
    pub(super) fn write(&self, node: &Node, mount: usize, out: &mut Vec<u8>) {
        if node.draining.get() {
            let advice = node.drain_advice(mount);
            self.reply.write_with(out, "advice", advice.as_bytes());
        } else {
            let advice = node.advice[mount].connect(self.eventsource);
            self.reply.write_with(out, "advice", advice);
        }
    }
}
impl Node {
    pub(super) async fn process_here(
        self: &Rc<Self>,
        mount: usize,
        mut body: RequestBody,
        via: Via,
        peer: Peer,
    ) -> Result<Vec<u8>, BodyError> {
        // With a cluster, a plain HTTP request for a session held elsewhere may be answered by
        // its owner (`Node::fetch`): it needs the body as received (parsing works in place).
        let raw = (self.cluster.get().is_some()
            && matches!(via, Via::Http)
            && bayeux::scan::may_name_client(&body))
        .then(|| Bytes::copy_from_slice(&body));
        let msgs = parse_batch(&mut body)?;
        let policy = self.settings.policy(mount);
        if msgs.len() > policy.limits.max_batch {
            return Err(BodyError::TooMany);
        }
        // Not a batch with a connect the owner would hold (it is answered within the wait
        // for a move): an EventSource client's connects are answered at once.
        let raw = raw.filter(|_| {
            msgs.iter().all(|m| {
                bayeux::classify(m) != Kind::Connect
                    || bayeux::json::str_field(m, "connectionType") == Some("eventsource")
            })
        });
        // Sessions not here while the directory is unreachable: their connects are told to
        // retry, not to handshake again (the session may live on another process).
        let mut unreachable = Vec::new();
        if let Some(cluster) = self.cluster.get() {
            for client_id in self.elsewhere(mount, msgs.iter()) {
                if !cluster.reachable() {
                    unreachable.push(client_id);
                    continue;
                }
                let relay = raw.clone().map(|body| Relay {
                    body,
                    peer: peer.clone(),
                });
                if let Moved::Answered(reply) = self.fetch(mount, client_id, relay).await {
                    return Ok(reply);
                }
            }
        }
        let mut ack = LazyAck::default();
        // Each message runs as if it came alone, in order: a subscribe, unsubscribe or
        // disconnect waits for the batch's publishes still on their way to subscribers, and a
        // publish for its interest changes still on their way to the channels' owners. Runs of
        // one kind (the client's batched subscribes) still go out together.
        let mut publishing = false;
        let mut subscribing = false;
        let mut out = JsonArray::expecting(REPLY_BYTES * msgs.len());
        let mut held: smallvec::SmallVec<[HeldConnect; 1]> = smallvec::SmallVec::new();
        let timeout_ms = policy.timeout.as_millis() as u64;
        // Publishes after the batch's last subscription change or disconnect need only be
        // shared before the reply; earlier ones must be delivered here first.
        let last_change = (msgs.iter().enumerate())
            .filter(|(_, m)| {
                matches!(
                    bayeux::classify(*m),
                    Kind::Subscribe | Kind::Unsubscribe | Kind::Disconnect
                )
            })
            .map(|(i, _)| i)
            .last();
        // A falsy message (null, false, 0, "") gets no reply at all (spec 3, step 3).
        for (i, msg) in msgs.iter().enumerate() {
            if !bayeux::json::truthy(msg) {
                continue;
            }
            let reply = match bayeux::classify(msg) {
                Kind::Handshake => Some(match self.admit_handshake(mount, msg, &peer) {
                    ControlFlow::Break(refused) => refused,
                    ControlFlow::Continue(mut r) => {
                        let asked = Asked::Handshake;
                        match self
                            .hook_refuses(mount, asked, "/meta/handshake", msg, &peer)
                            .await
                        {
                            Some(error) => {
                                handshake::refuse(&mut r, &error, HOOK_RETRY_MS);
                                r
                            }
                            None => self.open_session(mount, r, &peer, &ack),
                        }
                    }
                }),
                Kind::Connect => {
                    let engine = self.engine.borrow();
                    match connect::check(msg, |c| engine.exists(mount, c), timeout_ms) {
                        Err(_)
                            if let Some(cid) = bayeux::json::str_field(msg, "clientId")
                                && unreachable.iter().any(|u| u == cid) =>
                        {
                            Some(connect::unreachable(msg, cid, 1000, timeout_ms))
                        }
                        Err(r) => Some(r),
                        Ok((r, c)) => {
                            held.push(HeldConnect {
                                client_id: c.client_id,
                                reply: r,
                                eventsource: c.eventsource,
                                hold: Duration::from_millis(c.hold_ms),
                                taken: None,
                            });
                            None
                        }
                    }
                }
                Kind::Subscribe | Kind::Unsubscribe => {
                    if std::mem::take(&mut publishing) {
                        ack.settle().await;
                    }
                    subscribing = true;
                    // Its interest changes go to the channels' owners: wait while this
                    // worker's outbound work is backed up.
                    self.uncongested().await;
                    let (mut r, mut channels) = self.check_subscription(mount, msg);
                    let on = bayeux::classify(msg) == Kind::Subscribe;
                    if on && r.successful && !channels.is_empty() {
                        let asked = Asked::Subscribe;
                        let refused =
                            self.hook_refuses(mount, asked, "/meta/subscribe", msg, &peer);
                        if let Some(error) = refused.await {
                            r.fail(error);
                            r.settle();
                            channels.clear();
                        }
                    }
                    if let Some(cid) = bayeux::json::str_field(msg, "clientId") {
                        let mut engine = self.engine.borrow_mut();
                        if on {
                            engine.subscribe(mount, cid, &channels);
                        } else {
                            engine.unsubscribe(mount, cid, &channels);
                        }
                        if let Some(cluster) = self.cluster.get()
                            && !channels.is_empty()
                            && engine.exists(mount, cid)
                        {
                            cluster.subscribed(mount, cid, &channels, on, ack.get());
                        }
                    }
                    self.dispatch_effects(Some(&ack));
                    Some(r)
                }
                Kind::Disconnect => {
                    let (r, cid) =
                        disconnect::check(msg, |c| self.engine.borrow().exists(mount, c));
                    if let Some(cid) = cid {
                        if let Some(h) = held.iter_mut().find(|h| h.client_id == cid) {
                            if std::mem::take(&mut publishing) {
                                ack.settle().await;
                            }
                            h.taken = Some(self.engine.borrow_mut().take_queue(mount, &cid));
                        }
                        self.engine.borrow_mut().destroy(mount, &cid);
                        if let Some(cluster) = self.cluster.get() {
                            cluster.closed(mount, &cid);
                        }
                        self.dispatch_effects(None);
                        self.release_ended();
                    }
                    Some(r)
                }
                Kind::ForbiddenMeta => Some(bayeux::forbidden_meta(msg)),
                Kind::Publish => {
                    let (mut r, mut accepted) = self.check_publish(mount, msg, &peer);
                    let stats = &self.my_stats().mounts[mount];
                    if let Some((channel, _)) = accepted
                        && !self.has_ingest_secret(mount, msg, &peer)
                        && bayeux::json::truthy_field(msg, "clientId").is_some()
                        && let Some(error) = self
                            .hook_refuses(mount, Asked::Publish, channel, msg, &peer)
                            .await
                    {
                        r.fail(error);
                        r.settle();
                        accepted = None;
                        metrics::add(&stats.publishes_refused, 1);
                    }
                    if let Some((channel, delivered)) = accepted {
                        metrics::add(&stats.publishes, 1);
                        if std::mem::take(&mut subscribing) {
                            ack.settle().await;
                        }
                        self.room_to_publish(channel).await;
                        let until = match last_change {
                            Some(last) if last > i => Until::DeliveredHere,
                            _ => Until::Shared,
                        };
                        self.publish(mount, channel, delivered, &ack, until);
                        publishing = true;
                    }
                    Some(r)
                }
            };
            if let Some(r) = reply {
                out.push_reply(&r);
            }
        }
        drop(msgs);
        ack.wait().await;
        let on_socket = !held.is_empty() && matches!(via, Via::Socket(_));
        for h in held {
            self.finish_connect(mount, h, &via, &mut out).await;
        }
        if on_socket && out.is_empty() {
            // Everything went to the socket (a lone held connect): no frame to send now.
            return Ok(Vec::new());
        }
        Ok(out.finish())
    }

    /// Runs a connect once the rest of its batch is done: its reply and the messages it
    /// collects come last (spec 3, rule 5). The reply is encoded once: for a socket before the
    /// engine keeps it, for HTTP straight into `out` when the connect is answered.
    pub(super) async fn finish_connect(
        self: &Rc<Self>,
        mount: usize,
        mut h: HeldConnect,
        via: &Via,
        out: &mut JsonArray,
    ) {
        let hold = if self.draining.get() {
            Duration::ZERO
        } else {
            h.hold
        };
        let now = Instant::now();
        let outcome = match (h.taken.take(), via) {
            // A disconnect later in the batch already handed it its messages.
            (Some(msgs), _) => ConnectOutcome::Now(msgs),
            // The engine writes the reply on the socket, now or when the hold ends.
            (None, Via::Socket(socket)) => {
                let mut reply = Vec::with_capacity(REPLY_BYTES);
                h.write(self, mount, &mut reply);
                let socket = Some((socket.clone(), &reply[..]));
                let mut engine = self.engine.borrow_mut();
                engine.connect(mount, &h.client_id, hold, socket, now)
            }
            (None, Via::Http) => {
                let mut engine = self.engine.borrow_mut();
                engine.connect(mount, &h.client_id, hold, None, now)
            }
        };
        let msgs = match outcome {
            ConnectOutcome::OnSocket => return,
            ConnectOutcome::Now(msgs) => msgs,
            ConnectOutcome::Held(signal, id) => {
                signal.wait().await;
                let mut engine = self.engine.borrow_mut();
                engine.finish_connect(mount, &h.client_id, id)
            }
        };
        out.reserve(REPLY_BYTES * 2 + msgs.iter().map(|m| m.len() + 1).sum::<usize>());
        // Written after the hold: a drain may have begun during it.
        h.write(self, mount, out.next_item());
        for msg in &msgs {
            out.push_raw(msg);
        }
    }
}

/// What a typical reply takes, to size a batch's reply array (it grows past this when needed).
pub(super) const REPLY_BYTES: usize = 128;

#[cfg(test)]
mod tests {
    use super::super::spill::yield_now;
    use super::super::testing::{handshake, nodes, post, run};
    use super::*;

    #[test]
    fn a_connect_is_answered_last_with_what_its_batch_published() {
        run(|| async {
            let nodes = nodes(1, &[]);
            let node = &nodes[0];
            let cid = handshake(node).await;
            let body = format!(
                r#"[{{"channel":"/meta/connect","clientId":"{cid}","connectionType":"long-polling"}},
                   {{"channel":"/meta/subscribe","clientId":"{cid}","subscription":"/a"}},
                   {{"channel":"/a","clientId":"{cid}","data":{{"n":1}}}}]"#
            );
            let reply = post(node, &body).await;
            let channels: Vec<&str> = reply
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["channel"].as_str().unwrap())
                .collect();
            assert_eq!(
                channels,
                ["/meta/subscribe", "/a", "/meta/connect", "/a"],
                "{reply}"
            );
            assert_eq!(reply[3]["data"]["n"], 1);
        });
    }

    #[test]
    fn a_falsy_message_gets_no_reply_and_a_long_batch_none_at_all() {
        run(|| async {
            let nodes = nodes(1, &["--max-batch", "2"]);
            let node = &nodes[0];
            let publish = r#"{"channel":"/a","data":1}"#;
            let reply = post(node, &format!("[null,{publish}]")).await;
            assert_eq!(reply.as_array().unwrap().len(), 1, "{reply}");
            let three = format!("[{publish},{publish},{publish}]").into_bytes();
            let refused = node.process(0, three, Via::Http, Peer::default()).await;
            assert_eq!(refused, Err(BodyError::TooMany));
        });
    }

    #[test]
    fn a_completion_is_made_only_when_work_leaves_and_waits_for_all_of_it() {
        run(|| async {
            // Nothing sent elsewhere: no completion to wait for.
            LazyAck::default().wait().await;
            let ack = LazyAck::default();
            let clone = ack.get();
            let done = Rc::new(Cell::new(false));
            let (flag, waiting) = (done.clone(), monoio::spawn(async move { ack.wait().await }));
            monoio::spawn(async move {
                yield_now().await;
                flag.set(true);
                drop(clone);
            });
            waiting.await;
            assert!(done.get(), "the wait ended only once the clone was dropped");
        });
    }
}
