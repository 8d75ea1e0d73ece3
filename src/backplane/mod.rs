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

use crate::config::{Config, EngineConfig};
use crate::shard::{Ack, Ask, Cluster, Directory, Done, Handover, Mesh, Moved, Relay, Until};
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
    /// Directory work from the workers, waiting for the link (`link::directory`).
    ops: Mutex<Vec<Op>>,
    ops_ready: tokio::sync::Notify,
    /// Directory work queued or being written.
    ops_open: std::sync::atomic::AtomicUsize,
}

/// The other processes' part of a presence count ([`Backplane::presence`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Presence {
    /// Other processes alive (their heartbeat is recent).
    pub processes: usize,
    /// Those that answered in time.
    pub answered: usize,
    /// Their clients a publish on the channel would reach.
    pub clients: u64,
}

/// Directory work a worker hands the link.
enum Op {
    Opened {
        mount: usize,
        client_id: String,
        ack: Ack,
    },
    Subscribed {
        mount: usize,
        client_id: String,
        channels: Vec<String>,
        on: bool,
        ack: Ack,
    },
    Closed {
        mount: usize,
        client_id: String,
    },
    /// Look the owner up, ask it; `tries` counts the owners that no longer had it.
    Fetch {
        worker: usize,
        mount: usize,
        client_id: String,
        relay: Option<Relay>,
        done: Done,
        tries: u8,
    },
    /// The reply to a relayed request (`Directory::answered`).
    Answered {
        ask: Ask,
        reply: Vec<u8>,
    },
    Gave {
        ask: Ask,
        session: Option<Handover>,
    },
    Checkpoint {
        worker: usize,
        mount: usize,
        pos: u64,
    },
    /// A session to write to the directory again after Redis came back.
    Resync {
        worker: usize,
        mount: usize,
        client_id: String,
        subscriptions: Vec<String>,
    },
    /// The process leaves: every worker parks its sessions (`Envelope::Leave`).
    LeaveAll,
    /// From the admin listener: ask every other live process how many of its clients a
    /// publish on `channel` would reach.
    Presence {
        mount: usize,
        channel: String,
        reply: std::sync::mpsc::SyncSender<Presence>,
    },
    /// This process's count, for the process that asked (`to`, its question `token`).
    PresenceAnswer {
        to: u64,
        token: u64,
        clients: u64,
    },
    /// A session left in the directory by a process that leaves.
    Park {
        mount: usize,
        client_id: String,
        cut: String,
        session: Handover,
        expires_ms: u64,
    },
}

impl Directory for Backplane {
    fn opened(&self, mount: usize, client_id: &str, ack: Ack) {
        // While Redis is away the session is this process's alone: nothing to wait for.
        if self.stats.is_up() {
            self.push_op(Op::Opened {
                mount,
                client_id: client_id.into(),
                ack,
            });
        }
    }

    fn subscribed(&self, mount: usize, client_id: &str, channels: &[String], on: bool, ack: Ack) {
        if self.stats.is_up() {
            self.push_op(Op::Subscribed {
                mount,
                client_id: client_id.into(),
                channels: channels.to_vec(),
                on,
                ack,
            });
        }
    }

    fn closed(&self, mount: usize, client_id: &str) {
        if self.stats.is_up() {
            self.push_op(Op::Closed {
                mount,
                client_id: client_id.into(),
            });
        }
    }

    fn fetch(
        &self,
        worker: usize,
        mount: usize,
        client_id: &str,
        relay: Option<Relay>,
        done: Done,
    ) {
        // Redis away: no other process's session can move here; the client gets `401` now.
        if !self.stats.is_up() {
            let _ = done.send(Moved::Gone);
            return;
        }
        self.push_op(Op::Fetch {
            worker,
            mount,
            client_id: client_id.into(),
            relay,
            done,
            tries: 0,
        });
    }

    fn checkpoint(&self, worker: usize, mount: usize, pos: u64) {
        if self.stats.is_up() {
            self.push_op(Op::Checkpoint { worker, mount, pos });
        }
    }

    fn gave(&self, ask: Ask, session: Option<Handover>) {
        // Queued even while Redis is away: the link puts a session it cannot send back.
        self.push_op(Op::Gave { ask, session });
    }

    fn resync(&self, worker: usize, mount: usize, client_id: &str, subscriptions: Vec<String>) {
        if self.stats.is_up() {
            self.push_op(Op::Resync {
                worker,
                mount,
                client_id: client_id.into(),
                subscriptions,
            });
        }
    }

    fn answered(&self, ask: Ask, reply: Vec<u8>) {
        self.push_op(Op::Answered { ask, reply });
    }

    fn parked(&self, mount: usize, client_id: &str, cut: &str, session: Handover, expires_ms: u64) {
        self.push_op(Op::Park {
            mount,
            client_id: client_id.into(),
            cut: cut.into(),
            session,
            expires_ms,
        });
    }
}

impl Cluster for Backplane {
    fn publish(
        &self,
        _worker: usize,
        mount: usize,
        channel: &Arc<str>,
        msg: &Bytes,
        ack: Ack,
        until: Until,
    ) -> bool {
        // While Redis is away the worker delivers here, and the log gets a copy marked so.
        let up = self.stats.is_up();
        let item = Item {
            mount,
            channel: channel.clone(),
            msg: msg.clone(),
            ack: up.then_some(ack),
            until,
            local: !up,
        };
        self.outbound.push(item) && up
    }

    fn reachable(&self) -> bool {
        self.stats.is_up()
    }

    fn backed_up(&self) -> bool {
        self.stats.is_up() && self.outbound.nearly_full()
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
    /// Whether no directory work waits for the link (a drain ends only then).
    /// The drain window is over: every session still here is parked in the directory, for
    /// the process its client reaches next. [`Backplane::idle`] once they are written.
    pub fn leave(&self) {
        if self.stats.is_up() {
            self.push_op(Op::LeaveAll);
        }
    }

    /// How many clients of the other live processes a publish on `channel` of `mount` would
    /// reach; answered on the receiver within about a second (those that did not answer by
    /// then are left out, and counted in `processes` but not in `answered`). Nothing arrives
    /// while Redis is away.
    pub fn presence(&self, mount: usize, channel: String) -> std::sync::mpsc::Receiver<Presence> {
        let (reply, rx) = std::sync::mpsc::sync_channel(1);
        if self.stats.is_up() {
            self.push_op(Op::Presence {
                mount,
                channel,
                reply,
            });
        }
        rx
    }

    pub fn idle(&self) -> bool {
        self.ops_open.load(std::sync::atomic::Ordering::Acquire) == 0
    }

    fn push_op(&self, op: Op) {
        self.ops_open
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        self.ops.lock().unwrap_or_else(|e| e.into_inner()).push(op);
        self.ops_ready.notify_one();
    }

    /// `n` ops taken by the link are done (written, or let go).
    fn ops_done(&self, n: usize) {
        self.ops_open
            .fetch_sub(n, std::sync::atomic::Ordering::AcqRel);
    }

    fn take_ops(&self) -> Vec<Op> {
        std::mem::take(&mut *self.ops.lock().unwrap_or_else(|e| e.into_inner()))
    }

    fn take_changes(&self) -> Vec<Change> {
        std::mem::take(&mut *self.changes.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// rustls with ring, for rediss:// (a second call finds it installed: fine).
#[expect(
    deprecated,
    reason = "ring has no post-quantum key exchange; aws-lc-rs, which has, needs cmake and a C \
              toolchain in every build image. Redis TLS inside a VPC does not need it yet."
)]
fn install_tls_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Starts the backplane the configuration asks for (none for `--engine memory`): its thread
/// connects in the background, so the workers serve at once, Redis reachable or not.
pub fn start(config: &Config, mesh: Arc<Mesh>) -> Result<Option<Arc<Backplane>>, String> {
    let EngineConfig::Redis {
        url,
        shown,
        db,
        ca_file,
    } = &config.engine
    else {
        return Ok(None);
    };
    install_tls_provider();
    let client = match ca_file {
        None => redis::Client::open(url.as_str()),
        Some(path) => {
            let root_cert = std::fs::read(path)
                .map_err(|e| format!("engine_ca_file {}: {e}", path.display()))?;
            let certs = redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(root_cert),
            };
            redis::Client::build_with_tls(url.as_str(), certs)
        }
    }
    .map_err(|e| format!("engine {shown}: {e}"))?;
    let stats = Arc::new(Stats::default());
    let backplane = Arc::new(Backplane {
        node: rand::random(),
        outbound: Outbound::new(stats.clone()),
        stats,
        changes: Mutex::new(Vec::new()),
        changed: tokio::sync::Notify::new(),
        ops: Mutex::new(Vec::new()),
        ops_ready: tokio::sync::Notify::new(),
        ops_open: std::sync::atomic::AtomicUsize::new(0),
    });
    let prefixes: Vec<String> = (config.mounts.iter())
        .map(|m| naming::mount_prefix(*db, m))
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
        link::Names {
            db: *db,
            mounts: config.mounts.clone(),
            prefixes,
        },
        retention,
        shown.clone(),
    )
    .map_err(|e| format!("starting the redis backplane thread: {e}"))?;
    Ok(Some(backplane))
}

static_assertions::assert_impl_all!(Backplane: Send, Sync);
