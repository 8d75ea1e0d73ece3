//! Where a request body runs: here, on the one other worker whose sessions it names (one
//! hop each way), or message by message when it names several workers' sessions.

use super::batch::REPLY_BYTES;
use super::mesh::Class;
use super::node::{Node, Peer, Via};
use super::{Envelope, RequestBody};
use crate::bayeux::json::{BodyError, JsonArray, parse_batch};
use crate::bayeux::{self, scan};
use futures::channel::oneshot;
use std::ops::Range;
use std::rc::Rc;

impl Node {
    /// Processes a request body (a JSON batch) and returns the reply array, or nothing when
    /// a socket batch's only reply will be written to the socket later. Each message runs on
    /// the worker of its own top-level clientId, as if it had come alone: a body whose
    /// messages all name one other worker's sessions is processed there (one hop each way),
    /// and a body naming several workers' sessions is split (`process_split`).
    pub async fn process(
        self: &Rc<Self>,
        mount: usize,
        body: impl Into<RequestBody>,
        via: Via,
        peer: Peer,
    ) -> Result<Vec<u8>, BodyError> {
        let body = body.into();
        match self.target(&body) {
            Target::Here => self.process_here(mount, body, via, peer).await,
            Target::Worker(to) => self.process_on(to, mount, body, peer).await,
            Target::Split => self.process_split(mount, body, via, peer).await,
        }
    }

    /// Where a raw body's messages must run, read from each one's top-level clientId
    /// (`bayeux::scan`); a body that names no clientId costs two vectorised searches.
    pub(super) fn target(&self, body: &[u8]) -> Target {
        if !bayeux::scan::may_name_client(body) {
            return Target::Here;
        }
        let mut target = None;
        for item in bayeux::scan::messages(body) {
            let Some(w) = item.client_id.and_then(|c| self.session_worker(&c)) else {
                continue;
            };
            match target {
                None => target = Some(w),
                Some(t) if t == w => {}
                Some(_) => return Target::Split,
            }
        }
        match target {
            Some(w) if w != self.me => Target::Worker(w),
            _ => Target::Here,
        }
    }

    /// The worker holding the session a clientId names, when it names one of ours.
    pub(super) fn session_worker(&self, client_id: &[u8]) -> Option<usize> {
        bayeux::id::home_worker(client_id, self.workers())
    }

    /// Processes a body on another worker, which sends its reply (or its refusal) back.
    pub(super) async fn process_on(
        self: &Rc<Self>,
        to: usize,
        mount: usize,
        body: RequestBody,
        peer: Peer,
    ) -> Result<Vec<u8>, BodyError> {
        self.room(to, Class::Work).await;
        let (tx, rx) = oneshot::channel();
        let env = Envelope::Batch {
            mount,
            body,
            peer,
            reply: tx,
        };
        self.send(to, env);
        // A dropped sender (the receiving worker is gone) reads as a body not processed.
        rx.await.unwrap_or(Err(BodyError::NotJson))
    }

    /// A body whose messages name sessions of several workers: each message runs alone on its
    /// session's worker (the others here), in request order, and the replies are gathered as
    /// Faye gathers a batch's (spec 3, rule 5): connects, which may be held, run beside the
    /// rest and their replies come last. Rare (the Faye client batches one client's messages),
    /// so it copies each message out rather than burden the common paths.
    pub(super) async fn process_split(
        self: &Rc<Self>,
        mount: usize,
        body: RequestBody,
        via: Via,
        peer: Peer,
    ) -> Result<Vec<u8>, BodyError> {
        // The body is judged whole first, as if it were processed in one piece: a refusal
        // (not JSON, too deep, too many messages) refuses all of it, and nothing runs.
        let mut copy = body.to_vec();
        let n = parse_batch(&mut copy)?.len();
        if n > self.settings.policy(mount).limits.max_batch {
            return Err(BodyError::TooMany);
        }
        let mut replies = JsonArray::expecting(REPLY_BYTES * n);
        // Connects are answered last, with what the rest of the batch delivered (as Faye
        // does), so they run after it; a connect whose client disconnects later in the batch
        // runs with that disconnect, which hands it the queue before the session ends.
        let mut aside: Vec<scan::Item<'_>> = Vec::new();
        let mut connects = Vec::new();
        for item in scan::messages(&body) {
            if item.connect {
                aside.push(item);
                continue;
            }
            let mut spans = smallvec::SmallVec::<[Range<usize>; 2]>::new();
            if item.disconnect && item.client_id.is_some() {
                if let Some(at) = aside.iter().position(|c| c.client_id == item.client_id) {
                    spans.push(aside.remove(at).span);
                }
            }
            spans.push(item.span.clone());
            let run = self.run_alone(
                mount,
                &body,
                &spans,
                item.client_id.as_deref(),
                &via,
                peer.clone(),
            );
            push_items(&mut replies, &run.await?);
        }
        for item in aside {
            let spans = [item.span.clone()];
            let run = self.run_alone(
                mount,
                &body,
                &spans,
                item.client_id.as_deref(),
                &via,
                peer.clone(),
            );
            connects.push(monoio::spawn(run));
        }
        for connect in connects {
            push_items(&mut replies, &connect.await?);
        }
        Ok(replies.finish())
    }

    /// The messages at `spans` of `body`, as a batch of their own, run on the worker of
    /// `client_id`'s session (here when it names none of ours). Still a batch: a `1` or `[]`
    /// among messages is a message that gets its reply, where a body of just `1` is refused.
    pub(super) fn run_alone(
        self: &Rc<Self>,
        mount: usize,
        body: &[u8],
        spans: &[Range<usize>],
        client_id: Option<&[u8]>,
        via: &Via,
        peer: Peer,
    ) -> impl Future<Output = Result<Vec<u8>, BodyError>> + 'static {
        let mut one = Vec::with_capacity(spans.iter().map(|s| s.len() + 1).sum::<usize>() + 1);
        for span in spans {
            one.push(if one.is_empty() { b'[' } else { b',' });
            one.extend_from_slice(&body[span.clone()]);
        }
        one.push(b']');
        let to = client_id
            .and_then(|c| self.session_worker(c))
            .unwrap_or(self.me);
        let (node, via, one) = (self.clone(), via.clone(), RequestBody::Vec(one));
        async move {
            if to == node.me {
                node.process_here(mount, one, via, peer).await
            } else {
                node.process_on(to, mount, one, peer).await
            }
        }
    }
}

/// Where a body's messages run.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Target {
    Here,
    Worker(usize),
    /// Its messages name sessions of several workers.
    Split,
}

/// Appends the items of a reply array (`[a,b]`, or `[]`, or nothing) to `out`.
pub(super) fn push_items(out: &mut JsonArray, reply: &[u8]) {
    let inner = reply
        .strip_prefix(b"[")
        .and_then(|r| r.strip_suffix(b"]"))
        .unwrap_or_default();
    if !inner.is_empty() {
        out.push_raw(inner);
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{handshake, nodes, post, run};
    use super::*;

    fn connect(cid: &str) -> String {
        format!(
            r#"{{"channel":"/meta/connect","clientId":"{cid}","connectionType":"long-polling"}}"#
        )
    }

    #[test]
    fn a_body_runs_where_its_sessions_are() {
        run(|| async {
            let nodes = nodes(2, &[]);
            let (mine, theirs) = (handshake(&nodes[0]).await, handshake(&nodes[1]).await);
            let target =
                |msgs: &[&str]| nodes[0].target(format!("[{}]", msgs.join(",")).as_bytes());
            let publish = r#"{"channel":"/a","data":1}"#;
            assert_eq!(target(&[publish]), Target::Here);
            assert_eq!(target(&[&connect(&mine)]), Target::Here);
            assert_eq!(target(&[&connect(&theirs), publish]), Target::Worker(1));
            assert_eq!(target(&[&connect(&mine), &connect(&theirs)]), Target::Split);
            // A clientId that names no session of ours (another process's) runs here.
            assert_eq!(
                target(&[&connect("zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz")]),
                Target::Here
            );
        });
    }

    #[test]
    fn reply_items_are_appended_without_their_brackets() {
        let mut out = JsonArray::expecting(16);
        for reply in [&b"[1,2]"[..], b"[]", b"", b"[3]"] {
            push_items(&mut out, reply);
        }
        assert_eq!(out.finish(), b"[1,2,3]");
    }

    #[test]
    fn a_body_for_another_workers_session_is_processed_there() {
        run(|| async {
            let nodes = nodes(2, &[]);
            for node in &nodes {
                monoio::spawn(node.clone().run_mesh());
            }
            let theirs = handshake(&nodes[1]).await;
            let body = format!(
                r#"[{{"channel":"/meta/subscribe","clientId":"{theirs}","subscription":"/a"}}]"#
            );
            let reply = post(&nodes[0], &body).await;
            assert_eq!(reply[0]["successful"], true, "{reply}");
            let held = |w: usize| nodes[w].engine.borrow().subscription_count(0, &theirs);
            assert_eq!((held(0), held(1)), (0, 1));
        });
    }
}
