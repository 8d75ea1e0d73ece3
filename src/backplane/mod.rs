//! The Redis backplane (`--engine redis://...`): several Bayou processes serve one set of
//! channels through Redis pub/sub. Only this layer knows other processes exist; the workers
//! see it through [`crate::shard::Cluster`].
//!
//! # Layout
//!
//! * `naming`: Redis channel names, glob patterns and the payload format (pure);
//! * `interest`: what this process wants from Redis and the commands to get it (pure);
//! * `outbound`: the bounded queues from the workers to Redis;
//! * `link`: the backplane's thread, two Redis connections, reconnection with back-off
//!   (`link::inbound`: what arrives from Redis);
//! * `stats`: what `/metrics` and `/readyz` show.
//!
//! # Flow
//!
//! * **Interest.** The owner worker of an exact channel, and worker 0 for a pattern, report
//!   when the process's interest turns on or off; the link SUBSCRIBEs or PSUBSCRIBEs (and
//!   undoes it when the last local subscriber leaves). A subscribe is answered once Redis has
//!   confirmed it, so a publish on any process after the reply reaches the new subscriber.
//! * **Publish.** The ingress worker delivers locally as always and queues the delivered form
//!   here; the link PUBLISHes it once (pipelined in batches, in the order accepted).
//! * **Receive.** Redis sends each publish once to each process with interest. The link skips
//!   its own echoes and repeats, checks glob matches against the Bayeux patterns, and hands the
//!   message to the channel's owner worker as a mesh publish, which delivers it through the
//!   process's own shards, once per client, and never sends it back to Redis.

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
    fn publish(&self, _worker: usize, mount: usize, channel: &Arc<str>, msg: &Bytes) {
        let item = Item {
            mount,
            channel: channel.clone(),
            msg: msg.clone(),
        };
        self.outbound.push(item);
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
    let prefixes = config
        .mounts
        .iter()
        .map(|m| naming::mount_prefix(*db, m))
        .collect();
    link::spawn(backplane.clone(), client, mesh, prefixes, shown.clone())
        .map_err(|e| format!("starting the redis backplane thread: {e}"))?;
    Ok(Some(backplane))
}

static_assertions::assert_impl_all!(Backplane: Send, Sync);
