//! The receiving side of the link: messages from Redis, checked (own echo, repeat, glob
//! match, format) and handed to the owner worker of their channel through the mesh.

use super::{Link, Result};
use crate::backplane::naming;
use crate::bayeux::channel;
use crate::shard::{Envelope, owner};
use bytes::Bytes;
use futures::StreamExt;
use redis::aio::PubSubStream;
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

/// Received messages held per worker while its queue is full; beyond, dropped and counted.
const INBOUND_HELD: usize = 4096;
/// Origins whose last sequence number is remembered (more only after many restarts).
const ORIGINS: usize = 4096;

impl Link {
    pub(super) async fn receive(&self, mut stream: PubSubStream) -> Result<()> {
        loop {
            let holding = self.held.borrow().iter().any(|q| !q.is_empty());
            tokio::select! {
                msg = stream.next() => match msg {
                    Some(msg) => self.incoming(&msg),
                    None => return Err("the subscribed connection closed".into()),
                },
                _ = tokio::time::sleep(Duration::from_micros(500)), if holding => {}
            }
            if holding {
                self.flush_held();
            }
        }
    }

    /// One message from Redis: checked, then handed to the owner worker of its channel.
    fn incoming(&self, msg: &redis::Msg) {
        let stats = &self.bp.stats;
        stats.received.fetch_add(1, Relaxed);
        let payload = msg.get_payload_bytes();
        let Some((origin, seq, at)) = naming::decode(payload) else {
            stats.invalid.fetch_add(1, Relaxed);
            return;
        };
        if origin == self.bp.node {
            stats.echoes.fetch_add(1, Relaxed);
            return;
        }
        if !self.first_sight(origin, seq) {
            stats.duplicates.fetch_add(1, Relaxed);
            return;
        }
        let redis_channel = msg.get_channel_name();
        let interest = self.interest.borrow();
        let target = naming::split(redis_channel)
            .and_then(|(prefix, name)| Some((interest.mount_of(prefix)?, name)))
            .filter(|(_, name)| channel::is_name(name));
        let Some((mount, name)) = target else {
            stats.invalid.fetch_add(1, Relaxed);
            return;
        };
        // A glob lets more through than the Bayeux pattern behind it.
        if msg.from_pattern() && !interest.wants(mount, name) {
            stats.unmatched.fetch_add(1, Relaxed);
            return;
        }
        let env = Envelope::Publish {
            mount,
            channel: Arc::from(name),
            msg: Bytes::copy_from_slice(&payload[at..]),
            ack: None,
            // Timed from its arrival here: another process's clock is not comparable.
            at: std::time::Instant::now(),
        };
        drop(interest);
        self.hand_over(owner(name, self.mesh.workers()), env);
    }

    /// Whether this is the first time `seq` from `origin` arrives (one publish may come through
    /// a channel and a pattern subscription, or twice when its batch was sent again).
    fn first_sight(&self, origin: u64, seq: u64) -> bool {
        let mut seen = self.seen.borrow_mut();
        if seen.len() >= ORIGINS && !seen.contains_key(&origin) {
            seen.clear();
        }
        let last = seen.entry(origin).or_insert(0);
        if seq <= *last {
            return false;
        }
        *last = seq;
        true
    }

    fn hand_over(&self, to: usize, env: Envelope) {
        let mut held = self.held.borrow_mut();
        if held[to].is_empty() {
            match self.mesh.try_send(self.mesh.external(), to, env) {
                Ok(()) => {
                    self.bp.stats.delivered.fetch_add(1, Relaxed);
                }
                Err(env) => held[to].push_back(env),
            }
        } else if held[to].len() < INBOUND_HELD {
            held[to].push_back(env);
        } else {
            self.bp.stats.dropped_in.fetch_add(1, Relaxed);
            if !self.dropping_in.replace(true) {
                tracing::warn!(
                    worker = to,
                    "redis backplane: a worker's queue is full; dropping messages from other \
                     processes until it drains"
                );
            }
        }
    }

    fn flush_held(&self) {
        let mut held = self.held.borrow_mut();
        for (to, q) in held.iter_mut().enumerate() {
            while let Some(env) = q.pop_front() {
                if let Err(env) = self.mesh.try_send(self.mesh.external(), to, env) {
                    q.push_front(env);
                    break;
                }
                self.bp.stats.delivered.fetch_add(1, Relaxed);
            }
        }
        if held.iter().all(VecDeque::is_empty) {
            self.dropping_in.set(false);
        }
    }
}
