//! A worker's node: its engine, its end of the mesh, and what the rest of the shard layer
//! hangs on it. Each job has its own file: `spill` (sending on the mesh, and the overflow),
//! `dispatch` (the mesh receive loop, routing and delivery), `drain` (the socket registry and
//! the drain), `split` (where a request body runs), `batch` (running a batch here) and
//! `checks` (each meta channel's checks); `moves` and `hook` are the cluster's and the
//! authorisation backend's parts.

use super::{Adopt, Cluster, Envelope, Mesh};
use crate::bayeux;
use crate::engine::{Engine, Outbox};
use crate::lifecycle::Lifecycle;
use crate::metrics::{self, Stats, WorkerStats};
use crate::policy::hook::AskBackend;
use crate::settings::Settings;
use futures::channel::oneshot;
use std::cell::{Cell, OnceCell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::os::fd::OwnedFd;
use std::rc::Rc;
use std::rc::Weak;
use std::sync::Arc;
use std::task::Waker;
use std::time::{Duration, Instant};

/// Where a batch came from, which decides where connect replies go.
#[derive(Clone)]
pub enum Via {
    Http,
    Socket(Rc<Outbox>),
}

/// Who sent a batch, as the transport saw the request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Peer {
    /// The client's address (from the configured proxy header when there is one).
    pub ip: Option<IpAddr>,
    /// The request carried `Authorization: Bearer <the mount's publish secret>`.
    pub bearer: bool,
    /// The request headers the mount's authorisation hook forwards (those it names that the
    /// request had; for a WebSocket, its upgrade request's). None without a hook.
    pub forwarded: Option<Forwarded>,
}

/// Request headers kept for the authorisation hook: lower-case name and value.
pub type Forwarded = Arc<[(String, String)]>;

/// A session moving here: its mount and clientId.
pub(super) type Arriving = (usize, Box<str>);

/// Lists push sockets kept outside the node's registry (set by the transport layer).
pub type SocketList = Box<dyn Fn() -> Vec<Weak<Outbox>>>;

/// Hands an adopted socket to the transport layer (set by the server wiring).
pub type AdoptFn = Box<dyn Fn(&Rc<Node>, OwnedFd, usize, Adopt)>;

pub struct Node {
    pub me: usize,
    pub settings: Arc<Settings>,
    pub engine: RefCell<Engine>,
    pub(super) mesh: Arc<Mesh>,
    /// Per destination and class: envelopes that met a full queue, in order (the spill).
    pub(super) spill: RefCell<Vec<[VecDeque<Envelope>; 2]>>,
    /// Whether the task that empties the spill runs.
    pub(super) flushing: Cell<bool>,
    /// Tasks waiting for the spill to shrink (`room`, `uncongested`).
    pub(super) room_waiters: RefCell<Vec<Waker>>,
    pub(super) adopt: RefCell<Option<AdoptFn>>,
    pub(super) next_socket: Cell<u64>,
    pub lifecycle: Arc<Lifecycle>,
    pub stats: Arc<Stats>,
    /// Live push sockets of this worker, to close them when draining.
    pub(super) sockets: RefCell<HashMap<u64, Weak<Outbox>>>,
    /// The push sockets a transport keeps in a table of its own (the WebSockets), listed
    /// when draining; so they need no entry in `sockets`.
    pub(super) more_sockets: RefCell<Option<SocketList>>,
    /// What the transport does when the drain begins (stop listening).
    pub(super) at_drain: RefCell<Vec<Box<dyn FnOnce()>>>,
    pub(super) draining: Cell<bool>,
    /// Per mount: when the oldest publish delivered here but not yet written was accepted.
    pub(super) unwritten_since: RefCell<Vec<Option<Instant>>>,
    /// The other processes serving these channels (`--engine redis://...`), if any.
    pub(super) cluster: OnceCell<Arc<dyn Cluster>>,
    /// Per mount: its success advice, written once.
    pub(super) advice: Vec<bayeux::Advice>,
    /// Sessions being moved here from another process, with the requests waiting for them
    /// beside the one that asked (`moves`).
    /// Requests waiting for a move another request of the same session asked for: told
    /// whether the session is here now, or None when the owner answered that request alone
    /// (then each asks for itself).
    pub(super) arriving: RefCell<HashMap<Arriving, Vec<oneshot::Sender<Option<bool>>>>>,
    /// The position of the link's previous checkpoint (`moves`).
    pub(super) last_checkpoint: RefCell<Vec<u64>>,
    /// Per mount: the client of its authorisation backend, when it has a hook (`hook`).
    pub(super) backends: RefCell<Vec<Option<Rc<dyn AskBackend>>>>,
}

impl Node {
    pub fn new(
        me: usize,
        settings: Arc<Settings>,
        mesh: Arc<Mesh>,
        lifecycle: Arc<Lifecycle>,
        stats: Arc<Stats>,
    ) -> Rc<Node> {
        let workers = mesh.workers();
        let mounts = settings.mounts.len();
        let mut engine = Engine::new(me, workers, settings.mounts.len(), settings.timeout);
        for (mount, policy) in settings.policies.iter().enumerate() {
            engine.set_timeout(mount, policy.timeout);
        }
        let advice = (settings.policies.iter())
            .map(|p| bayeux::Advice::new(settings.interval_ms, p.timeout.as_millis() as u64))
            .collect();
        Rc::new(Node {
            me,
            settings,
            engine: RefCell::new(engine),
            spill: RefCell::new((0..workers).map(|_| Default::default()).collect()),
            mesh,
            flushing: Cell::new(false),
            room_waiters: RefCell::new(Vec::new()),
            adopt: RefCell::new(None),
            next_socket: Cell::new(0),
            lifecycle,
            stats,
            sockets: RefCell::new(HashMap::new()),
            more_sockets: RefCell::new(None),
            at_drain: RefCell::new(Vec::new()),
            draining: Cell::new(false),
            unwritten_since: RefCell::new(vec![None; mounts]),
            cluster: OnceCell::new(),
            advice,
            arriving: RefCell::new(HashMap::new()),
            last_checkpoint: RefCell::new(vec![0; mounts]),
            backends: RefCell::new(vec![None; mounts]),
        })
    }

    pub fn workers(&self) -> usize {
        self.mesh.workers()
    }

    pub fn set_adopt(&self, f: AdoptFn) {
        *self.adopt.borrow_mut() = Some(f);
    }

    /// Joins this worker to the other processes serving the same channels (set once, at start).
    pub fn set_cluster(&self, cluster: Arc<dyn Cluster>) {
        self.engine.borrow_mut().track_closed();
        let _ = self.cluster.set(cluster);
    }

    /// This worker's counters.
    pub fn my_stats(&self) -> &WorkerStats {
        &self.stats.workers[self.me]
    }

    /// Refreshes this worker's gauges from the engine.
    pub(super) fn refresh_gauges(&self) {
        let engine = self.engine.borrow();
        for (mount, m) in self.my_stats().mounts.iter().enumerate() {
            let (sessions, local, owned, patterns) = engine.table_sizes(mount);
            metrics::set(&m.sessions, sessions as u64);
            metrics::set(&m.subscriptions, local as u64);
            metrics::set(&m.channels, owned as u64);
            // Patterns are replicated: count them once, on worker 0.
            metrics::set(&m.patterns, if self.me == 0 { patterns as u64 } else { 0 });
            metrics::set(&m.dropped, engine.dropped[mount]);
            metrics::set(&m.queued, engine.queued[mount]);
        }
        let spilled: usize = (self.spill.borrow().iter())
            .flatten()
            .map(VecDeque::len)
            .sum();
        let depth = self.mesh.depth(self.me) + spilled;
        metrics::set(&self.my_stats().mesh_depth, depth as u64);
    }

    /// Something was written to clients: the oldest publish delivered here since the last
    /// write has now reached a socket. Records its publish-to-write time, once per write round
    /// (a sample per round, not per message, so the delivery path stays free of timing).
    pub fn wrote(&self) {
        let mut since = self.unwritten_since.borrow_mut();
        if since.iter().all(Option::is_none) {
            return;
        }
        let now = Instant::now();
        for (mount, at) in since.iter_mut().enumerate() {
            if let Some(at) = at.take() {
                let latency = now.saturating_duration_since(at);
                self.my_stats().mounts[mount].write_latency.observe(latency);
            }
        }
    }

    /// A process-unique id for a new push socket.
    pub fn socket_id(&self) -> u64 {
        let n = self.next_socket.get() + 1;
        self.next_socket.set(n);
        (n << 12) | self.me as u64
    }

    /// The worker owning the session a clientId names, when it is another one.
    pub fn foreign_owner(&self, client_id: &[u8]) -> Option<usize> {
        bayeux::id::worker_of(client_id, self.workers()).filter(|&w| w != self.me)
    }

    /// Runs hold and expiry deadlines forever.
    pub async fn run_timers(self: Rc<Self>) {
        loop {
            monoio::time::sleep(Duration::from_millis(100)).await;
            if !self.draining.get() && self.lifecycle.is_draining() {
                self.begin_drain();
            }
            self.engine.borrow_mut().tick(Instant::now());
            self.close_expired();
            self.dispatch_effects(None);
            self.release_ended();
            self.refresh_gauges();
        }
    }

    /// Returns the per-address session counts of the sessions that ended.
    pub(super) fn release_ended(&self) {
        let ended = self.engine.borrow_mut().take_ended();
        for (mount, ip) in ended {
            self.settings.policy(mount).limiter.release(ip);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{handshake, nodes, run};
    use std::collections::HashSet;
    use std::sync::atomic::Ordering;

    #[test]
    fn socket_ids_are_unique_and_name_their_worker() {
        let nodes = nodes(2, &[]);
        let ids: Vec<u64> = (0..100).map(|_| nodes[1].socket_id()).collect();
        assert!(ids.iter().all(|id| id & 0xfff == 1), "{ids:?}");
        assert_eq!(ids.iter().collect::<HashSet<_>>().len(), ids.len());
    }

    #[test]
    fn a_foreign_owner_is_the_worker_whose_session_it_is() {
        run(|| async {
            let nodes = nodes(2, &[]);
            let theirs = handshake(&nodes[1]).await;
            assert_eq!(nodes[0].foreign_owner(theirs.as_bytes()), Some(1));
            assert_eq!(nodes[1].foreign_owner(theirs.as_bytes()), None);
            assert_eq!(nodes[0].foreign_owner(b"not a clientId"), None);
        });
    }

    #[test]
    fn the_gauges_count_what_the_engine_holds() {
        run(|| async {
            let nodes = nodes(2, &[]);
            for _ in 0..3 {
                handshake(&nodes[0]).await;
            }
            nodes[0].refresh_gauges();
            nodes[1].refresh_gauges();
            let sessions = |w: usize| {
                nodes[0].stats.workers[w].mounts[0]
                    .sessions
                    .load(Ordering::Relaxed)
            };
            assert_eq!((sessions(0), sessions(1)), (3, 0));
        });
    }
}
