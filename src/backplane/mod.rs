//! The Redis backplane (`--engine redis://...`): several Bayou processes serve one set of
//! channels through one Redis stream per mount, the mount's log. Only this layer knows other
//! processes exist; the workers see it through [`crate::shard::Cluster`].
//!
//! # Layout
//!
//! * `naming`: Redis key names and the payload format (pure);
//! * `interest`: the channels and patterns with subscribers here (pure);
//! * `outbound`: the bounded queue from the workers to Redis;
//! * `link`: the backplane's thread, two Redis connections, reconnection with back-off
//!   (`link::inbound`: reading the logs);
//! * `stats`: what `/metrics` and `/readyz` show.
//!
//! # Flow
//!
//! * **Publish.** While Redis is up, the ingress worker does not deliver a publish itself: it
//!   queues it here, the link XADDs it to the mount's log (pipelined, in the order accepted),
//!   and the publish is answered once Redis has confirmed it. So one order holds for every
//!   process: a publisher's messages keep their order whichever processes accepted them.
//! * **Receive.** Each process reads every log (XREAD), in that order, and hands an entry with
//!   a subscriber here to its channel's owner worker as a mesh publish, which delivers it to
//!   this process's clients once each. The log is trimmed to a retention window (XADD MINID).
//! * **Interest.** The owner worker of an exact channel, and worker 0 for a pattern, report
//!   when the process's interest turns on or off; the link notes it before the subscribe is
//!   answered, so every publish accepted after the reply is delivered to the new subscriber.
//! * **Redis away.** Publishes are delivered here at once, as with the memory engine, and
//!   wait in the bounded outbound queue marked as delivered; once Redis is back they go to the
//!   log, the other processes deliver them late, and this one skips them. Publishes queued
//!   when the connection failed are delivered here then, and marked so too.

pub mod interest;
mod link;
pub mod naming;
pub mod outbound;
pub mod stats;

use crate::config::{Config, Engine};
use crate::shard::{Ack, Cluster, Mesh};
use bytes::Bytes;
use outbound::{Item, Outbound};
pub use stats::Stats;
use std::sync::{Arc, Mutex};

/// An interest change reported by a worker, waiting for the link.
struct Change {
    mount: usize,
    key: Box<str>,
    on: bool,
    ack: Option<Ack>,
}

/// The part shared by the workers and the link thread.
pub struct Backplane {
    pub stats: Arc<Stats>,
    /// This process's id on Redis, random per start: it recognises its own echoes.
    node: u64,
    outbound: Outbound,
    changes: Mutex<Vec<Change>>,
    changed: tokio::sync::Notify,
}

impl Cluster for Backplane {
    fn publish(
        &self,
        _worker: usize,
        mount: usize,
        channel: &Arc<str>,
        msg: &Bytes,
        ack: Ack,
    ) -> bool {
        // While Redis is away the worker delivers here, and the log gets a copy marked so.
        let up = self.stats.is_up();
        let item = Item {
            mount,
            channel: channel.clone(),
            msg: msg.clone(),
            ack: up.then_some(ack),
            local: !up,
        };
        self.outbound.push(item) && up
    }

    fn interest(&self, mount: usize, key: &str, on: bool, ack: Option<Ack>) {
        let change = Change {
            mount,
            key: key.into(),
            on,
            ack,
        };
        self.changes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(change);
        self.changed.notify_one();
    }
}

impl Backplane {
    fn take_changes(&self) -> Vec<Change> {
        std::mem::take(&mut *self.changes.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// Starts the backplane the configuration asks for (none for `--engine memory`): its thread
/// connects in the background, so the workers serve at once, Redis reachable or not.
pub fn start(config: &Config, mesh: Arc<Mesh>) -> Result<Option<Arc<Backplane>>, String> {
    let Engine::Redis { url, shown, db } = &config.engine else {
        return Ok(None);
    };
    let client = redis::Client::open(url.as_str()).map_err(|e| format!("engine {shown}: {e}"))?;
    let stats = Arc::new(Stats::default());
    let backplane = Arc::new(Backplane {
        node: rand::random(),
        outbound: Outbound::new(stats.clone()),
        stats,
        changes: Mutex::new(Vec::new()),
        changed: tokio::sync::Notify::new(),
    });
    let logs = config
        .mounts
        .iter()
        .map(|m| naming::log(&naming::mount_prefix(*db, m)))
        .collect();
    // Long enough for a client between two connects, on any mount, to be served its messages
    // by another process after a failure.
    let longest = (config.per_mount.iter().map(|m| m.timeout))
        .max()
        .unwrap_or(config.timeout);
    let retention = longest * 2 + std::time::Duration::from_secs(30);
    link::spawn(
        backplane.clone(),
        client,
        mesh,
        logs,
        retention,
        shown.clone(),
    )
    .map_err(|e| format!("starting the redis backplane thread: {e}"))?;
    Ok(Some(backplane))
}

static_assertions::assert_impl_all!(Backplane: Send, Sync);
